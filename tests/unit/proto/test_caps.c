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

static int parse(const char *s, struct vu_caps *c, struct vub_err *e)
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
    assert_int_equal(c.present, VU_CAP_NUMERIC_ALL);
    /* empty capabilities object = defaults, nothing stated */
    assert_int_equal(parse("{\"capabilities\":{}}", &c, NULL), 0);
    assert_int_equal(c.max_msg_fds, 1);
    assert_int_equal(c.pgsizes, 4096);
    assert_int_equal(c.present, 0);
    /* the spec makes "capabilities" optional too: {} and unknown keys only */
    assert_int_equal(parse("{}", &c, NULL), 0);
    assert_int_equal(c.present, 0);
    assert_int_equal(c.max_msg_fds, 1);
    assert_int_equal(parse("{\"future\":{\"a\":1}}", &c, NULL), 0);
    assert_int_equal(c.present, 0);
    assert_int_equal(parse("{\"capabilities\":{\"pgsizes\":8192,\"max_msg_fds\":0}}", &c, NULL), 0);
    assert_int_equal(c.present, VU_CAP_PGSIZES | VU_CAP_MAX_MSG_FDS);
    assert_int_equal(c.max_msg_fds, 0);
}

static void test_parse_qemu(void **state)
{
    (void)state;
    struct vu_caps c;
    struct vub_err e;
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
    struct vub_err e = {{0}};
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
    struct vub_err e;
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
    struct vub_err e;
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
    struct vub_err e;
    server_caps(&srv);
    mk_version(&m, 0, 0, qemu_json, 0);
    assert_int_equal(vu_version_answer(&m, &srv, &cl, &ag, json, sizeof(json), &len, NULL, &e), 0);
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
    pt_release(&m);
}

/* Answer `json` (NULL = none) proposed as 0.minor with `pad` spaces; checks
 * what every answer must satisfy and returns the reply JSON in json_out. */
static void answer(const struct vu_caps *srv, uint16_t minor, const char *js, size_t pad,
                   char *json_out, struct vu_caps *ag, struct vu_version_out *vo)
{
    struct vu_msg m;
    size_t len = 0;
    struct vub_err e = {{0}};
    mk_version(&m, 0, minor, js, pad);
    int r = vu_version_answer(&m, srv, NULL, ag, json_out, VU_MAX_JSON, &len, vo, &e);
    if (r)
        fail_msg("answer to %s: %d %s", js ? js : "(no JSON)", r, e.msg);
    /* always JSON with its NUL (cloud-hypervisor panics otherwise) */
    assert_true(len >= sizeof("{\"capabilities\":{}}"));
    assert_int_equal(strlen(json_out) + 1, len);
    struct vu_caps back;
    assert_int_equal(vu_caps_parse(json_out, len - 1, &back, NULL), 0);
    /* never larger than the request, unless even the minimal JSON is */
    if (js && !vo->over_bound)
        assert_true(VU_HDR_SIZE + 4 + len <= m.hdr.msg_size);
    if (vo->over_bound)
        assert_string_equal(json_out, "{\"capabilities\":{}}");
    assert_true(vo->minor <= minor);
    assert_int_equal(vo->minor, 0);
    pt_release(&m);
}

/* Every VERSION shape real clients send is answered (none was refused
 * before... except those the landed code refused: {}, a 64-byte JSON, the
 * 92-byte cloud-hypervisor one). */
static void test_answer_shapes(void **state)
{
    (void)state;
    struct vu_caps srv, ag;
    struct vu_version_out vo;
    char json[VU_MAX_JSON];
    /* the bridge's own values */
    vu_caps_defaults(&srv);
    srv.max_msg_fds = 16;
    srv.max_data_xfer_size = 1 << 20;
    srv.max_dma_maps = 65535;
    srv.pgsizes = 0x40201000;
    srv.write_multiple = true;

    /* SPDK: 20 bytes, version 0.1, no JSON at all */
    answer(&srv, 1, NULL, 0, json, &ag, &vo);
    assert_string_equal(json, "{\"capabilities\":{}}");   /* it proposed nothing */
    assert_false(vo.over_bound);
    assert_int_equal(ag.max_msg_fds, 1);                    /* the spec's default */
    assert_int_equal(ag.max_data_xfer_size, 1 << 20);
    assert_false(ag.write_multiple);

    /* {}: valid, proposes nothing; the minimal reply is larger than the
     * 23-byte request and is sent anyway */
    answer(&srv, 0, "{}", 0, json, &ag, &vo);
    assert_string_equal(json, "{\"capabilities\":{}}");
    assert_true(vo.over_bound);

    /* unknown keys only */
    answer(&srv, 0, "{\"capabilities\":{\"future\":[1]},\"other\":true}", 0, json, &ag, &vo);
    assert_string_equal(json, "{\"capabilities\":{}}");
    assert_false(vo.over_bound);

    /* a 64-byte JSON (refused with ENOSPC before) */
    const char *j64 = "{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576}}";
    assert_int_equal(strlen(j64), 64);
    answer(&srv, 0, j64, 0, json, &ag, &vo);
    assert_string_equal(json, j64);
    assert_int_equal(vo.dropped, 0);

    /* cloud-hypervisor: minor 1, 91 bytes of JSON, 112-byte message
     * (refused before: "reply JSON does not fit in 92 bytes") */
    const char *jch = "{\"capabilities\":{\"max_msg_fds\":1,\"max_data_xfer_size\":1048576,"
                      "\"migration\":{\"pgsize\":4096}}}";
    assert_int_equal(strlen(jch), 91);
    answer(&srv, 1, jch, 0, json, &ag, &vo);
    assert_string_equal(json, j64);     /* no migration here; nothing it did not propose */
    assert_int_equal(ag.max_msg_fds, 1);

    /* QEMU: 0.0, ~200 bytes; everything it proposed that we have */
    answer(&srv, 0, qemu_json, 0, json, &ag, &vo);
    assert_string_equal(json, "{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":"
                              "1048576,\"max_dma_maps\":65535,\"pgsizes\":4096,"
                              "\"write_multiple\":true}}");
    assert_int_equal(vo.dropped, 0);
    assert_true(ag.write_multiple);
    assert_int_equal(ag.max_msg_fds, 16);
}

/* The reply is a subset of the proposal, with min/intersection values. */
static void test_answer_subset(void **state)
{
    (void)state;
    struct vu_caps srv, ag;
    struct vu_version_out vo;
    char json[VU_MAX_JSON];
    server_caps(&srv);   /* 8 fds, 1 MiB, 32768 maps, 4096, write_multiple, migration */
    srv.pgsizes = 0x40201000;

    answer(&srv, 0, "{\"capabilities\":{\"max_dma_maps\":100,\"write_multiple\":false}}", 0,
           json, &ag, &vo);
    assert_string_equal(json, "{\"capabilities\":{\"max_dma_maps\":100}}");
    assert_int_equal(ag.max_dma_maps, 100);
    assert_false(ag.write_multiple);     /* not proposed: not agreed, not offered */
    assert_false(ag.has_migration);

    answer(&srv, 0, "{\"capabilities\":{\"pgsizes\":2101248,\"max_dma_maps\":65535}}", 0, json,
           &ag, &vo);
    assert_string_equal(json, "{\"capabilities\":{\"max_dma_maps\":32768,\"pgsizes\":2101248}}");
    assert_int_equal(ag.pgsizes, 0x201000);
    assert_int_equal(ag.max_dma_maps, 32768);

    /* nothing in common: the server's own sizes */
    answer(&srv, 0, "{\"capabilities\":{\"pgsizes\":8192}}", 20, json, &ag, &vo);
    assert_string_equal(json, "{\"capabilities\":{\"pgsizes\":1075843072}}");

    /* max_msg_fds 0: agreed 0 (no fds to this client), the server's own stated */
    answer(&srv, 0, "{\"capabilities\":{\"max_msg_fds\":0,\"max_data_xfer_size\":4096}}", 9,
           json, &ag, &vo);
    assert_string_equal(json, "{\"capabilities\":{\"max_msg_fds\":8,\"max_data_xfer_size\":"
                              "1048576}}");
    assert_int_equal(ag.max_msg_fds, 0);
    assert_int_equal(ag.max_data_xfer_size, 4096);

    /* migration only when both have it, pgsize the smaller */
    answer(&srv, 0, "{\"capabilities\":{\"migration\":{\"pgsize\":4096}}}", 40, json, &ag, &vo);
    assert_string_equal(json, "{\"capabilities\":{\"migration\":{\"pgsize\":4096}}}");
    srv.has_migration = false;
    answer(&srv, 0, "{\"capabilities\":{\"migration\":{\"pgsize\":4096}}}", 40, json, &ag, &vo);
    assert_string_equal(json, "{\"capabilities\":{}}");
}

/* Keys are given up in order until the reply fits the request: default-
 * valued ones first (the client assumes them anyway), then write_multiple,
 * then migration. */
static void test_answer_fit_order(void **state)
{
    (void)state;
    struct vu_caps srv, ag;
    struct vu_version_out vo;
    char json[VU_MAX_JSON];
    server_caps(&srv);
    srv.max_msg_fds = 16;
    srv.max_data_xfer_size = 64u << 20;
    srv.migration_max_bitmap_size = 268435456;
    /* short values and an empty migration object: the full reply is longer */
    const char *js = "{\"capabilities\":{\"max_msg_fds\":1,\"max_data_xfer_size\":1,"
                     "\"max_dma_maps\":1,\"pgsizes\":4096,\"write_multiple\":true,"
                     "\"migration\":{}}}";
    enum { PG = 1, WM = 2, MIG = 4, FDS = 8, MAPS = 16, XFER = 32 };
    unsigned seen[8];
    size_t nseen = 0;
    for (size_t pad = 120; pad + 1 > 0; pad--) {
        answer(&srv, 0, js, pad, json, &ag, &vo);
        unsigned k = (strstr(json, "\"pgsizes\"") ? PG : 0) |
                     (strstr(json, "\"write_multiple\"") ? WM : 0) |
                     (strstr(json, "\"migration\"") ? MIG : 0) |
                     (strstr(json, "\"max_msg_fds\"") ? FDS : 0) |
                     (strstr(json, "\"max_dma_maps\"") ? MAPS : 0) |
                     (strstr(json, "\"max_data_xfer_size\"") ? XFER : 0);
        /* agreed follows what was answered */
        assert_int_equal(ag.write_multiple, !!(k & WM));
        assert_int_equal(ag.has_migration, !!(k & MIG));
        if (nseen == 0 || seen[nseen - 1] != k) {
            assert_true(nseen < 8);
            seen[nseen++] = k;
        }
    }
    /* full, then pgsizes (4096 = the default) gone, then write_multiple, then migration */
    assert_int_equal(nseen, 4);
    assert_int_equal(seen[0], PG | WM | MIG | FDS | MAPS | XFER);
    assert_int_equal(seen[1], WM | MIG | FDS | MAPS | XFER);
    assert_int_equal(seen[2], MIG | FDS | MAPS | XFER);
    assert_int_equal(seen[3], FDS | MAPS | XFER);

    /* the caller's buffer is a hard bound */
    struct vu_msg m;
    size_t len;
    mk_version(&m, 0, 0, qemu_json, 0);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, 19, &len, NULL, NULL),
                     -ENOSPC);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, 20, &len, NULL, NULL), 0);
    assert_string_equal(json, "{\"capabilities\":{}}");
    pt_release(&m);
}

static void test_answer_rules(void **state)
{
    (void)state;
    struct vu_caps srv, back;
    char json[VU_MAX_JSON];
    size_t len;
    struct vu_msg m;
    struct vub_err e;
    server_caps(&srv);
    srv.twin_socket = true; /* never offered, whatever the server says */

    mk_version(&m, 1, 0, qemu_json, 0);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, sizeof(json), &len, NULL, &e),
                     -ENOTSUP);
    assert_non_null(strstr(e.msg, "major 1"));
    pt_release(&m);

    mk_version(&m, 0, 7, "{\"capabilities\":{\"twin_socket\":{\"supported\":true}}}", 200);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, sizeof(json), &len, NULL, &e), 0);
    assert_null(strstr(json, "twin"));
    assert_int_equal(vu_caps_parse(json, len - 1, &back, NULL), 0);
    assert_false(back.has_migration); /* the client did not offer it */
    pt_release(&m);

    mk_version(&m, 0, 0, "{\"capabilities\":{\"max_msg_fds\":\"x\"}}", 0);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, sizeof(json), &len, NULL, &e),
                     -EINVAL);
    assert_non_null(strstr(e.msg, "max_msg_fds"));
    pt_release(&m);

    mk_version(&m, 0, 0, "not json", 300);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, sizeof(json), &len, NULL, &e),
                     -EINVAL);
    pt_release(&m);

    /* fds on VERSION are refused */
    mk_version(&m, 0, 0, qemu_json, 0);
    pt_add_fds(&m, 1);
    assert_int_equal(vu_version_answer(&m, &srv, NULL, NULL, json, sizeof(json), &len, NULL, &e),
                     -EINVAL);
    pt_release(&m);
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
        cmocka_unit_test(test_answer_shapes),
        cmocka_unit_test(test_answer_subset),
        cmocka_unit_test(test_answer_fit_order),
        cmocka_unit_test(test_answer_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
