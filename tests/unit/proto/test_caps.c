/* SPDX-License-Identifier: MIT */
/* Capability JSON parse/emit and the server's VERSION answer. */
#include <errno.h>
#include <stdio.h>

#include "proto_test.h"

/* What QEMU 10.1 sends (its writer's spacing, its key order). */
static const char qemu_json[] =
    "{\"capabilities\": {\"max_msg_fds\": 16, \"max_data_xfer_size\": 1048576, "
    "\"pgsizes\": 4096, \"max_dma_maps\": 65535, "
    "\"migration\": {\"pgsize\": 4096, \"max_bitmap_size\": 268435456}, "
    "\"write_multiple\": true}}";

static int parse(const char *s, struct vu_caps *c, struct vu_err *e)
{
    return vu_caps_parse(s, strlen(s), c, e);
}

static void test_defaults(void **state)
{
    (void)state;
    struct vu_caps c;
    memset(&c, 0xaa, sizeof(c));
    vu_caps_defaults(&c);
    assert_int_equal(c.max_msg_fds, 1);
    assert_int_equal(c.max_data_xfer_size, 1048576);
    assert_int_equal(c.max_dma_maps, 65535);
    assert_int_equal(c.pgsizes, 4096);
    assert_false(c.twin_socket);
    assert_false(c.write_multiple);
    assert_false(c.has_migration);
    assert_int_equal(c.migration_pgsize, 0);
    /* empty capabilities object = defaults */
    assert_int_equal(parse("{\"capabilities\":{}}", &c, NULL), 0);
    assert_int_equal(c.max_msg_fds, 1);
    assert_int_equal(c.pgsizes, 4096);
}

static void test_parse_qemu(void **state)
{
    (void)state;
    struct vu_caps c;
    struct vu_err e;
    assert_int_equal(parse(qemu_json, &c, &e), 0);
    assert_int_equal(c.max_msg_fds, 16);
    assert_int_equal(c.max_data_xfer_size, 1048576);
    assert_int_equal(c.max_dma_maps, 65535);
    assert_int_equal(c.pgsizes, 4096);
    assert_true(c.write_multiple);
    assert_true(c.has_migration);
    assert_int_equal(c.migration_pgsize, 4096);
    assert_int_equal(c.migration_max_bitmap_size, 268435456);
    assert_false(c.twin_socket);
}

static void test_parse_libvfio_user(void **state)
{
    (void)state;
    struct vu_caps c;
    assert_int_equal(parse("{\"capabilities\": {\"max_msg_fds\": 8, \"max_data_xfer_size\": "
                           "1048576, \"migration\": {\"pgsize\": 4096}, \"twin_socket\": "
                           "{\"supported\": true, \"fd_index\": 0}}}",
                           &c, NULL),
                     0);
    assert_int_equal(c.max_msg_fds, 8);
    assert_true(c.has_migration);
    assert_int_equal(c.migration_max_bitmap_size, 0);
    assert_true(c.twin_socket);
    assert_false(c.write_multiple);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    struct vu_caps c;
    assert_int_equal(parse("{\"capabilities\":{\"future\":[1,2,{\"x\":null}],\"max_msg_fds\":4,"
                           "\"migration\":{\"pgsize\":8192,\"other\":\"s\"}},\"extra\":1}",
                           &c, NULL),
                     0);
    assert_int_equal(c.max_msg_fds, 4);
    assert_int_equal(c.migration_pgsize, 8192);
}

static void bad(int line, const char *json, int rc, const char *sub)
{
    struct vu_caps c;
    struct vu_err e = {{0}};
    int r = parse(json, &c, &e);
    if (r != rc)
        fail_msg("line %d: rc %d, expected %d for %s (%s)", line, r, rc, json, e.msg);
    if (sub && !strstr(e.msg, sub))
        fail_msg("line %d: reason \"%s\" lacks \"%s\"", line, e.msg, sub);
    /* a failed parse leaves defaults, never half-parsed values */
    assert_int_equal(c.max_msg_fds, 1);
    assert_int_equal(c.max_data_xfer_size, VU_DEFAULT_DATA_XFER);
}
#define BAD(j, rc, sub) bad(__LINE__, j, rc, sub)
#define CAPS(x) "{\"capabilities\":{" x "}}"

static void test_wrong_types(void **state)
{
    (void)state;
    BAD("[]", -EINVAL, "not an object");
    BAD("\"capabilities\"", -EINVAL, "not an object");
    BAD("{}", -EINVAL, "no \"capabilities\"");
    BAD("{\"capabilities\":[]}", -EINVAL, "\"capabilities\" is not an object");
    BAD("{\"capabilities\":null}", -EINVAL, "not an object");
    BAD(CAPS("\"max_msg_fds\":\"16\""), -EINVAL, "\"max_msg_fds\" is not an integer");
    BAD(CAPS("\"max_msg_fds\":16.0"), -EINVAL, "\"max_msg_fds\" is not an integer");
    BAD(CAPS("\"max_msg_fds\":true"), -EINVAL, "not an integer");
    BAD(CAPS("\"max_msg_fds\":null"), -EINVAL, "not an integer");
    BAD(CAPS("\"max_data_xfer_size\":{}"), -EINVAL, "\"max_data_xfer_size\" is not an integer");
    BAD(CAPS("\"pgsizes\":[4096]"), -EINVAL, "\"pgsizes\" is not an integer");
    BAD(CAPS("\"max_dma_maps\":1e3"), -EINVAL, "\"max_dma_maps\" is not an integer");
    BAD(CAPS("\"write_multiple\":1"), -EINVAL, "\"write_multiple\" is not a boolean");
    BAD(CAPS("\"write_multiple\":\"true\""), -EINVAL, "not a boolean");
    BAD(CAPS("\"twin_socket\":true"), -EINVAL, "\"twin_socket\" is not an object");
    BAD(CAPS("\"twin_socket\":{\"supported\":1}"), -EINVAL, "twin_socket.supported");
    BAD(CAPS("\"twin_socket\":{\"supported\":true,\"fd_index\":\"0\"}"), -EINVAL,
        "twin_socket.fd_index");
    BAD(CAPS("\"migration\":4096"), -EINVAL, "\"migration\" is not an object");
    BAD(CAPS("\"migration\":{\"pgsize\":\"4096\"}"), -EINVAL, "migration.pgsize");
}

static void test_out_of_range(void **state)
{
    (void)state;
    struct vu_caps c;
    BAD(CAPS("\"max_msg_fds\":-1"), -EINVAL, "\"max_msg_fds\" is negative");
    BAD(CAPS("\"max_msg_fds\":1025"), -EINVAL, "\"max_msg_fds\" 1025 not in 0..1024");
    assert_int_equal(parse(CAPS("\"max_msg_fds\":1024"), &c, NULL), 0);
    assert_int_equal(parse(CAPS("\"max_msg_fds\":0"), &c, NULL), 0);
    assert_int_equal(c.max_msg_fds, 0);
    BAD(CAPS("\"max_data_xfer_size\":0"), -EINVAL, "max_data_xfer_size");
    BAD(CAPS("\"max_data_xfer_size\":67108865"), -EINVAL, "67108865");
    assert_int_equal(parse(CAPS("\"max_data_xfer_size\":67108864"), &c, NULL), 0);
    BAD(CAPS("\"max_dma_maps\":0"), -EINVAL, "max_dma_maps");
    BAD(CAPS("\"max_dma_maps\":65536"), -EINVAL, "65536");
    BAD(CAPS("\"pgsizes\":0"), -EINVAL, "pgsizes");
    BAD(CAPS("\"pgsizes\":4097"), -EINVAL, "bits below 4 KiB");
    BAD(CAPS("\"pgsizes\":2048"), -EINVAL, "bits below 4 KiB");
    /* above INT64_MAX is still a valid mask */
    assert_int_equal(parse(CAPS("\"pgsizes\":18446744073709547520"), &c, NULL), 0);
    assert_true(c.pgsizes == 0xfffffffffffff000ull);
    BAD(CAPS("\"pgsizes\":99999999999999999999999"), -EINVAL, NULL);
    BAD(CAPS("\"max_msg_fds\":-9999999999999999999999"), -EINVAL, NULL);
    BAD(CAPS("\"migration\":{\"pgsize\":100}"), -EINVAL, "multiple of 4096");
    BAD(CAPS("\"migration\":{\"pgsize\":0}"), -EINVAL, "multiple of 4096");
    BAD(CAPS("\"migration\":{\"max_bitmap_size\":268435457}"), -EINVAL, "max_bitmap_size");
}

static void test_bad_json(void **state)
{
    (void)state;
    BAD("", -EINVAL, "bad JSON");
    BAD("{", -EINVAL, "bad JSON");
    BAD("{\"capabilities\":{}", -EINVAL, "bad JSON");
    BAD("{\"capabilities\":{}} x", -EINVAL, NULL); /* json-c strict mode or our check */
    BAD("{\"capabilities\":{}}{}", -EINVAL, NULL);
    BAD("{\"capabilities\":{\"a\":1,}}", -EINVAL, "bad JSON");
    BAD("{\"capabilities\":{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}}", -EINVAL,
        "bad JSON");
    /* trailing whitespace is fine */
    struct vu_caps c;
    assert_int_equal(parse("{\"capabilities\":{}}  \n", &c, NULL), 0);

    /* embedded NUL, with the length covering it */
    const char withnul[] = "{\"capabilities\":{}}\0{}";
    struct vu_err e;
    assert_int_equal(vu_caps_parse(withnul, sizeof(withnul) - 1, &c, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "NUL byte"));
    /* not NUL-terminated input: only json_len is read */
    char raw[19];
    memcpy(raw, "{\"capabilities\":{}}", 19);
    assert_int_equal(vu_caps_parse(raw, 19, &c, &e), 0);
    assert_int_equal(vu_caps_parse(NULL, 0, &c, &e), -EINVAL);
}

static void test_oversized(void **state)
{
    (void)state;
    size_t n = VU_MAX_JSON + 1;
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, ' ', n);
    memcpy(s, "{\"capabilities\":{}}", 19);
    s[n] = '\0';
    struct vu_caps c;
    struct vu_err e;
    assert_int_equal(vu_caps_parse(s, n, &c, &e), -E2BIG);
    assert_non_null(strstr(e.msg, "4097"));
    assert_int_equal(vu_caps_parse(s, n - 1, &c, &e), 0); /* exactly VU_MAX_JSON */
    free(s);
}

static void test_emit(void **state)
{
    (void)state;
    struct vu_caps c, back;
    char buf[512];
    /* an empty legacy migration object survives emit + parse */
    assert_int_equal(parse(CAPS("\"migration\":{}"), &c, NULL), 0);
    assert_true(vu_caps_emit(&c, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "\"migration\":{}"));
    assert_int_equal(parse(buf, &back, NULL), 0);
    assert_true(back.has_migration);
    c.migration_max_bitmap_size = 4096;
    assert_true(vu_caps_emit(&c, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "\"migration\":{\"max_bitmap_size\":4096}"));

    vu_caps_defaults(&c);
    c.max_msg_fds = 16;
    ssize_t n = vu_caps_emit(&c, buf, sizeof(buf));
    const char *want = "{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576,"
                       "\"max_dma_maps\":65535,\"pgsizes\":4096}}";
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want) + 1);
    /* exact fit and one byte short */
    assert_int_equal(vu_caps_emit(&c, buf, (size_t)n), n);
    assert_int_equal(vu_caps_emit(&c, buf, (size_t)n - 1), -ENOSPC);
    assert_int_equal(vu_caps_emit(&c, buf, 0), -ENOSPC);

    c.write_multiple = true;
    c.twin_socket = true;
    c.has_migration = true;
    c.migration_pgsize = 4096;
    c.migration_max_bitmap_size = 1 << 20;
    c.pgsizes = 0x201000;
    n = vu_caps_emit(&c, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(strlen(buf) + 1, (size_t)n);
    assert_int_equal(vu_caps_parse(buf, (size_t)n - 1, &back, NULL), 0);
    assert_int_equal(back.max_msg_fds, c.max_msg_fds);
    assert_int_equal(back.max_data_xfer_size, c.max_data_xfer_size);
    assert_int_equal(back.max_dma_maps, c.max_dma_maps);
    assert_int_equal(back.pgsizes, c.pgsizes);
    assert_true(back.write_multiple && back.twin_socket && back.has_migration);
    assert_int_equal(back.migration_pgsize, c.migration_pgsize);
    assert_int_equal(back.migration_max_bitmap_size, c.migration_max_bitmap_size);
}

/* A VERSION request as QEMU sends it, with `pad` extra spaces in the JSON. */
static void mk_version(struct vu_msg *m, uint16_t major, uint16_t minor, const char *json,
                       size_t pad)
{
    struct pt_buf p = {.n = 0};
    struct vu_version v = {major, minor};
    PT_PUT(&p, v);
    if (json) {
        pt_put(&p, json, strlen(json));
        for (size_t i = 0; i < pad; i++)
            pt_put(&p, " ", 1);
        pt_put(&p, "", 1);
    }
    pt_mk(m, VU_CMD_VERSION, p.b, p.n);
}

static void server_caps(struct vu_caps *s)
{
    vu_caps_defaults(s);
    s->max_msg_fds = 8;
    s->max_data_xfer_size = 1 << 20;
    s->max_dma_maps = 32768;
    s->pgsizes = 4096;
    s->write_multiple = true;
    s->has_migration = true;
    s->migration_pgsize = 8192;
}

static void test_answer_qemu(void **state)
{
    (void)state;
    struct vu_msg m;
    struct vu_caps srv, cl, ag, back;
    char json[VU_MAX_JSON];
    size_t len = 0;
    struct vu_err e;
    server_caps(&srv);
    mk_version(&m, 0, 0, qemu_json, 0);
    assert_int_equal(vu_version_answer(&m, &srv, &cl, &ag, json, sizeof(json), &len, &e), 0);
    /* the whole reply is no larger than the request */
    assert_true(VU_HDR_SIZE + 4 + len <= m.hdr.msg_size);
    assert_int_equal(strlen(json) + 1, len);
    assert_int_equal(cl.max_msg_fds, 16);
    assert_true(cl.write_multiple);
    assert_int_equal(vu_caps_parse(json, len - 1, &back, NULL), 0);
    assert_int_equal(back.max_msg_fds, 8);
    assert_int_equal(back.max_dma_maps, 32768);
    assert_true(back.write_multiple);
    assert_true(back.has_migration);
    assert_int_equal(back.migration_pgsize, 4096); /* smaller of the two */
    assert_false(back.twin_socket);
    assert_int_equal(ag.max_msg_fds, 8);
    assert_int_equal(ag.max_dma_maps, 32768);
    assert_true(ag.write_multiple);
    assert_int_equal(ag.migration_max_bitmap_size, 268435456);
    vu_msg_release(&m);
}

static void test_answer_shrinks(void **state)
{
    (void)state;
    struct vu_caps srv, ag, back;
    char json[VU_MAX_JSON];
    size_t len = 0, full = 0, nowm = 0;
    struct vu_msg m;
    server_caps(&srv);
    const char *small = "{\"capabilities\":{\"migration\":{}}}";
    /* find how much room each variant needs, by padding the request */
    for (size_t pad = 0; pad < 300; pad++) {
        mk_version(&m, 0, 0, small, pad);
        int r = vu_version_answer(&m, &srv, NULL, &ag, json, sizeof(json), &len, NULL);
        if (r == 0) {
            assert_true(VU_HDR_SIZE + 4 + len <= m.hdr.msg_size);
            assert_int_equal(vu_caps_parse(json, len - 1, &back, NULL), 0);
            if (back.write_multiple) {
                assert_true(back.has_migration);
                if (!full)
                    full = pad;
            } else if (back.has_migration) {
                if (!nowm)
                    nowm = pad;
                assert_false(ag.write_multiple);
            } else {
                assert_false(ag.write_multiple);
                assert_false(ag.has_migration);
            }
        } else {
            assert_int_equal(r, -ENOSPC);
        }
        vu_msg_release(&m);
    }
    /* write_multiple is dropped first, then migration */
    assert_true(nowm > 0 && full > nowm);

    mk_version(&m, 0, 0, small, 0);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, sizeof(json), &len, NULL),
                     -ENOSPC);
    vu_msg_release(&m);
    /* the caller's buffer bounds it too */
    mk_version(&m, 0, 0, qemu_json, 0);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, 20, &len, NULL), -ENOSPC);
    vu_msg_release(&m);
}

/* The spec makes the VERSION JSON optional: a request without it still gets
 * a full answer (the reply-size bound exists only for QEMU, which always
 * sends JSON), and the client is taken to have the spec's defaults. */
static void test_answer_no_json(void **state)
{
    (void)state;
    struct vu_caps srv, ag, back;
    char json[VU_MAX_JSON];
    size_t len = 0;
    struct vu_msg m;
    server_caps(&srv);
    mk_version(&m, 0, 0, NULL, 0);
    assert_int_equal(m.hdr.msg_size, VU_HDR_SIZE + 4);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, &ag, json, sizeof(json), &len, NULL), 0);
    assert_true(len > 1);
    assert_int_equal(json[len - 1], '\0');
    assert_int_equal(vu_caps_parse(json, len - 1, &back, NULL), 0);
    assert_int_equal(back.max_msg_fds, srv.max_msg_fds);
    assert_int_equal(back.max_dma_maps, srv.max_dma_maps);
    assert_true(back.write_multiple);
    assert_false(back.has_migration);        /* not offered by the client */
    assert_int_equal(ag.max_msg_fds, 1);     /* the spec's default for the client */
    vu_msg_release(&m);
}

static void test_answer_rules(void **state)
{
    (void)state;
    struct vu_caps srv, back;
    char json[VU_MAX_JSON];
    size_t len;
    struct vu_msg m;
    struct vu_err e;
    server_caps(&srv);
    srv.twin_socket = true; /* never offered, whatever the server says */

    mk_version(&m, 1, 0, qemu_json, 0);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, sizeof(json), &len, &e),
                     -ENOTSUP);
    assert_non_null(strstr(e.msg, "major 1"));
    vu_msg_release(&m);

    mk_version(&m, 0, 7, "{\"capabilities\":{\"twin_socket\":{\"supported\":true}}}", 200);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, sizeof(json), &len, &e), 0);
    assert_null(strstr(json, "twin"));
    assert_int_equal(vu_caps_parse(json, len - 1, &back, NULL), 0);
    assert_false(back.has_migration); /* the client did not offer it */
    vu_msg_release(&m);

    mk_version(&m, 0, 0, "{\"capabilities\":{\"max_msg_fds\":\"x\"}}", 0);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, sizeof(json), &len, &e),
                     -EINVAL);
    assert_non_null(strstr(e.msg, "max_msg_fds"));
    vu_msg_release(&m);

    mk_version(&m, 0, 0, "not json", 300);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, sizeof(json), &len, &e),
                     -EINVAL);
    vu_msg_release(&m);

    /* fds on VERSION are refused */
    mk_version(&m, 0, 0, qemu_json, 0);
    pt_add_fds(&m, 1);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, sizeof(json), &len, &e),
                     -EINVAL);
    vu_msg_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_parse_qemu),
        cmocka_unit_test(test_parse_libvfio_user),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_emit),
        cmocka_unit_test(test_answer_qemu),
        cmocka_unit_test(test_answer_shrinks),
        cmocka_unit_test(test_answer_no_json),
        cmocka_unit_test(test_answer_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
