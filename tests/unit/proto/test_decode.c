/* SPDX-License-Identifier: MIT */
/*
 * Strict request/reply decoders and header validation: for each command the
 * accepted shape and every malformed variant (sizes, argsz, flags, counts,
 * fds). Every case also proves that a decoder neither closes nor leaks the
 * fds of the message: they are open after decoding and closed by release.
 */
#include <errno.h>
#include <stdio.h>

#include "proto_test.h"

#define MAX_XFER 4096u

/* Every command through the one command table (vu_decode_request). */
static int decode_any(const struct vu_msg *m, struct vub_err *err)
{
    union vu_request o;
    return vu_decode_request(m, MAX_XFER, &o, err);
}

/* Decode cmd/payload with nfds fds attached; expect rc and (for failures) a
 * reason containing `sub` and the command name. */
static void check_case(int line, uint16_t cmd, const void *p, size_t len, size_t nfds, int rc,
                       const char *sub)
{
    int base = tu_count_fds();
    struct vu_msg m;
    struct vub_err err = {{0}};
    pt_mk(&m, cmd, p, len);
    pt_add_fds(&m, nfds);
    int got = decode_any(&m, &err);
    if (got != rc)
        fail_msg("line %d: %s: rc %d, expected %d (%s)", line, vu_cmd_name(cmd), got, rc,
                 err.msg);
    if (rc && sub && !strstr(err.msg, sub))
        fail_msg("line %d: reason \"%s\" lacks \"%s\"", line, err.msg, sub);
    if (rc && !strstr(err.msg, vu_cmd_name(cmd)))
        fail_msg("line %d: reason \"%s\" does not name the command", line, err.msg);
    int fds[VU_MAX_FDS_PER_MSG];
    for (size_t i = 0; i < nfds; i++) {
        fds[i] = m.fds[i];
        if (!tu_fd_is_open(fds[i]))
            fail_msg("line %d: decoder closed fd %zu", line, i);
    }
    pt_release(&m);
    for (size_t i = 0; i < nfds; i++)
        if (tu_fd_is_open(fds[i]))
            fail_msg("line %d: release left fd %d open", line, fds[i]);
    if (tu_count_fds() != base)
        fail_msg("line %d: fd count %d, was %d", line, tu_count_fds(), base);
}

#define OK(cmd, p, len, nfds) check_case(__LINE__, cmd, p, len, nfds, 0, NULL)
#define BAD(cmd, p, len, nfds, rc, sub) check_case(__LINE__, cmd, p, len, nfds, rc, sub)
#define OKS(cmd, s, nfds) OK(cmd, &(s), sizeof(s), nfds)
#define BADS(cmd, s, nfds, rc, sub) BAD(cmd, &(s), sizeof(s), nfds, rc, sub)

/* ---- header -------------------------------------------------------------- */

static void test_hdr_check(void **state)
{
    (void)state;
    struct vu_limits lim = {.max_msg_size = 1000, .max_fds = 4};
    struct vub_err e;
    struct vu_hdr h = {.msg_id = 1, .cmd = 2, .msg_size = 48, .flags = 0};
    assert_int_equal(vu_hdr_check(&h, &lim, &e), 0);
    h.msg_size = 15;
    assert_int_equal(vu_hdr_check(&h, &lim, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "msg_size 15"));
    h.msg_size = 1000;
    assert_int_equal(vu_hdr_check(&h, &lim, &e), 0);
    h.msg_size = 1001;
    assert_int_equal(vu_hdr_check(&h, &lim, &e), -E2BIG);
    h.msg_size = 48;
    h.flags = 0x40;
    assert_int_equal(vu_hdr_check(&h, &lim, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "unknown header flags 0x40"));
    h.flags = 2; /* type 2 */
    assert_int_equal(vu_hdr_check(&h, &lim, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "type 2"));
    h.flags = VU_F_TYPE_CMD | VU_F_ERROR;
    assert_int_equal(vu_hdr_check(&h, &lim, &e), -EINVAL);
    h.flags = VU_F_TYPE_CMD;
    h.error_no = 5;
    assert_int_equal(vu_hdr_check(&h, &lim, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "error_no 5 in a command"));
    h.error_no = 0;
    h.flags = VU_F_TYPE_CMD | VU_F_NO_REPLY;
    assert_int_equal(vu_hdr_check(&h, &lim, &e), 0);
    h.flags = VU_F_TYPE_REPLY | VU_F_NO_REPLY;
    assert_int_equal(vu_hdr_check(&h, &lim, &e), -EINVAL);
    h.flags = VU_F_TYPE_REPLY;
    h.error_no = 3;
    assert_int_equal(vu_hdr_check(&h, &lim, &e), -EINVAL);
    h.flags = VU_F_TYPE_REPLY | VU_F_ERROR;
    assert_int_equal(vu_hdr_check(&h, &lim, &e), 0);
    h.error_no = 0; /* allowed by the spec; vu_reply_status maps it to EIO */
    assert_int_equal(vu_hdr_check(&h, &lim, &e), 0);
    /* NULL err is fine */
    h.msg_size = 3;
    assert_int_equal(vu_hdr_check(&h, &lim, NULL), -EINVAL);
}

/* vu_hdr_check and vu_reply_status accept in one test what their checks
 * one by one would (the per-message fast path): every flag byte, error_no
 * and size around the limits against the rules written out here. */
static bool hdr_ok_ref(const struct vu_hdr *h, uint32_t max)
{
    uint32_t type = h->flags & VU_F_TYPE_MASK;
    if (h->msg_size < VU_HDR_SIZE || h->msg_size > max || (h->flags & ~VU_F_KNOWN))
        return false;
    if (type == VU_F_TYPE_CMD)
        return !(h->flags & VU_F_ERROR) && h->error_no == 0;
    if (type == VU_F_TYPE_REPLY)
        return !(h->flags & VU_F_NO_REPLY) && ((h->flags & VU_F_ERROR) || h->error_no == 0);
    return false;
}

static void test_hdr_check_exhaustive(void **state)
{
    (void)state;
    struct vu_limits lim = {.max_msg_size = 1000, .max_fds = 4};
    const uint32_t sizes[] = {0, 15, 16, 17, 999, 1000, 1001, UINT32_MAX};
    const uint32_t errs[] = {0, 1, 5, 4096, UINT32_MAX};
    unsigned accepted = 0;
    for (uint32_t fl = 0; fl < 0x100; fl++)
        for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++)
            for (size_t ei = 0; ei < sizeof(errs) / sizeof(errs[0]); ei++) {
                struct vu_hdr h = {.msg_id = 7, .cmd = VU_CMD_REGION_READ,
                                   .msg_size = sizes[si], .flags = fl, .error_no = errs[ei]};
                struct vub_err e = {{0}};
                int r = vu_hdr_check(&h, &lim, &e);
                bool ok = hdr_ok_ref(&h, lim.max_msg_size);
                if (ok != (r == 0))
                    fail_msg("flags 0x%x size %u error_no %u: %d (%s)", fl, sizes[si], errs[ei],
                             r, e.msg);
                if (!ok)
                    assert_true(r == -EINVAL || r == -E2BIG);
                if (!ok)
                    assert_true(e.msg[0] != '\0');
                accepted += ok;
                /* without limits: only the upper bound goes */
                r = vu_hdr_check(&h, NULL, NULL);
                assert_int_equal(r == 0, hdr_ok_ref(&h, UINT32_MAX));
            }
    assert_true(accepted > 0);
}

static void test_reply_status_exhaustive(void **state)
{
    (void)state;
    uint8_t pl[8] = {0};
    const uint32_t errs[] = {0, 5, 4096, 4097};
    for (uint32_t fl = 0; fl < 0x100; fl++)
        for (unsigned cmd = VU_CMD_DMA_MAP; cmd <= VU_CMD_DMA_UNMAP; cmd++)
            for (size_t ei = 0; ei < sizeof(errs) / sizeof(errs[0]); ei++)
                for (unsigned shape = 0; shape < 4; shape++) {
                    struct vu_msg m;
                    vu_msg_init(&m);
                    m.hdr = (struct vu_hdr){.msg_id = 1, .cmd = VU_CMD_DMA_UNMAP,
                                            .msg_size = VU_HDR_SIZE + 8, .flags = fl,
                                            .error_no = errs[ei]};
                    m.payload = pl;
                    m.payload_len = 8;
                    if (shape == 1)
                        m.payload_len = 7;      /* not what msg_size says */
                    if (shape == 2)
                        m.payload = NULL;       /* a length without bytes */
                    if (shape == 3)
                        m.hdr.msg_size = 15;
                    bool ok = (fl & VU_F_TYPE_MASK) == VU_F_TYPE_REPLY && !(fl & VU_F_ERROR) &&
                              cmd == VU_CMD_DMA_UNMAP && shape == 0;
                    struct vub_err e = {{0}};
                    int r = vu_reply_status(&m, cmd, &e);
                    if (ok != (r == 0))
                        fail_msg("flags 0x%x cmd %u error_no %u shape %u: %d (%s)", fl, cmd,
                                 errs[ei], shape, r, e.msg);
                    if (r)
                        assert_true(e.msg[0] != '\0');
                    /* an error reply's errno, when it is the only fault */
                    if ((fl & (VU_F_TYPE_MASK | VU_F_ERROR)) == (VU_F_TYPE_REPLY | VU_F_ERROR) &&
                        cmd == VU_CMD_DMA_UNMAP && shape == 0)
                        assert_int_equal(r, errs[ei] == 0 || errs[ei] > 4096 ? -EIO
                                                                             : -(int)errs[ei]);
                }
}

static void test_cmd_names(void **state)
{
    (void)state;
    assert_string_equal(vu_cmd_name(VU_CMD_DMA_MAP), "DMA_MAP");
    assert_string_equal(vu_cmd_name(VU_CMD_MIG_DATA_WRITE), "MIG_DATA_WRITE");
    assert_string_equal(vu_cmd_name(14), "UNKNOWN");
    assert_string_equal(vu_cmd_name(0), "UNKNOWN");
    assert_string_equal(vu_cmd_name(19), "UNKNOWN");
    assert_string_equal(vu_cmd_name(0xffff), "UNKNOWN");
    /* The one command table: every named command decodes (an empty payload
     * is refused by its own rules, naming it), and only those. */
    for (unsigned cmd = 0; cmd <= VU_CMD_MAX + 1; cmd++) {
        struct vu_msg m;
        struct vub_err e = {{0}};
        union vu_request o;
        pt_mk(&m, (uint16_t)cmd, NULL, 0);
        int r = vu_decode_request(&m, MAX_XFER, &o, &e);
        bool named = strcmp(vu_cmd_name(cmd), "UNKNOWN") != 0;
        if (!named) {
            assert_int_equal(r, -EINVAL);
            assert_non_null(strstr(e.msg, "has no decoder"));
        } else if (r < 0 && !strstr(e.msg, vu_cmd_name(cmd))) {
            fail_msg("%s: reason \"%s\" does not name it", vu_cmd_name(cmd), e.msg);
        } else if (r < 0) {
            assert_null(strstr(e.msg, "has no decoder"));
        }
        pt_release(&m);
    }
}

static void test_msg_fds(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct vu_msg m;
    pt_mk(&m, VU_CMD_DMA_MAP, NULL, 0);
    pt_add_fds(&m, 3);
    int fd1 = vu_msg_take_fd(&m, 1);
    assert_true(fd1 >= 0);
    assert_int_equal(vu_msg_take_fd(&m, 1), -EBADF);
    assert_int_equal(vu_msg_take_fd(&m, 3), -EBADF);
    int fd0 = m.fds[0], fd2 = m.fds[2];
    pt_release(&m);
    assert_false(tu_fd_is_open(fd0));
    assert_false(tu_fd_is_open(fd2));
    assert_true(tu_fd_is_open(fd1));
    close(fd1);
    pt_release(&m); /* twice is safe */
    assert_int_equal(tu_count_fds(), base);
}

static void test_fail_formats(void **state)
{
    (void)state;
    struct vub_err e;
    assert_int_equal(vub_fail(&e, -EINVAL, "SET_IRQS: %d fds for count %d", 2, 3), -EINVAL);
    assert_string_equal(e.msg, "SET_IRQS: 2 fds for count 3");
    assert_int_equal(vub_fail(NULL, -E2BIG, "x"), -E2BIG);
    /* not a negative errno: never a success */
    assert_int_equal(vub_fail(&e, 0, "y"), -EIO);
    assert_int_equal(vub_fail(&e, EINVAL, "z"), -EIO);
    assert_string_equal(e.msg, "z");
}

/* ---- per command ------------------------------------------------------------ */

static void test_version(void **state)
{
    (void)state;
    struct pt_buf p = {.n = 0};
    struct vu_version v = {0, 0};
    PT_PUT(&p, v);
    OK(VU_CMD_VERSION, p.b, p.n, 0); /* no JSON */
    const char js[] = "{\"capabilities\":{}}";
    pt_put(&p, js, sizeof(js));
    OK(VU_CMD_VERSION, p.b, p.n, 0);

    struct vu_msg m;
    struct vu_version_req out;
    pt_mk(&m, VU_CMD_VERSION, p.b, p.n);
    assert_int_equal(vu_decode_version(&m, &out, NULL), 0);
    assert_int_equal(out.json_len, strlen(js));
    assert_string_equal(out.json, js);
    pt_release(&m);

    BAD(VU_CMD_VERSION, p.b, p.n, 1, -EINVAL, "unexpected fds");
    BAD(VU_CMD_VERSION, p.b, 3, 0, -EINVAL, "at least 4");
    BAD(VU_CMD_VERSION, p.b, p.n - 1, 0, -EINVAL, "not NUL-terminated");
    p.b[8] = '\0';
    BAD(VU_CMD_VERSION, p.b, p.n, 0, -EINVAL, "NUL byte inside");
    /* a lone NUL is empty version data: the same as none */
    uint8_t only_nul[5] = {0, 0, 0, 0, 0};
    OK(VU_CMD_VERSION, only_nul, 5, 0);
    pt_mk(&m, VU_CMD_VERSION, only_nul, 5);
    assert_int_equal(vu_decode_version(&m, &out, NULL), 0);
    assert_null(out.json);
    pt_release(&m);

    /* JSON of VU_MAX_JSON bytes passes the decoder, one more does not. */
    size_t n = 4 + VU_MAX_JSON + 1;
    uint8_t *big = calloc(1, n + 1);
    assert_non_null(big);
    memset(big + 4, ' ', VU_MAX_JSON);
    big[n - 1] = '\0';
    OK(VU_CMD_VERSION, big, n, 0);
    memset(big + 4, ' ', VU_MAX_JSON + 1);
    big[n] = '\0';
    BAD(VU_CMD_VERSION, big, n + 1, 0, -E2BIG, "exceeds");
    free(big);
}

static void test_version_not_command(void **state)
{
    (void)state;
    struct vu_version v = {0, 0};
    struct vu_msg m;
    struct vub_err e;
    struct vu_version_req out;
    pt_mk(&m, VU_CMD_VERSION, &v, sizeof(v));
    m.hdr.flags = VU_F_TYPE_REPLY;
    assert_int_equal(vu_decode_version(&m, &out, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "not a command"));
    m.hdr.flags = 0;
    m.hdr.cmd = VU_CMD_DMA_MAP;
    assert_int_equal(vu_decode_version(&m, &out, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "decoder called for command 2"));
    m.hdr.cmd = VU_CMD_VERSION;
    m.hdr.msg_size = 40; /* inconsistent with the payload */
    assert_int_equal(vu_decode_version(&m, &out, &e), -EINVAL);
    pt_release(&m);
}

static void test_dma_map(void **state)
{
    (void)state;
    struct vu_dma_map d = {.argsz = 32, .flags = 3, .offset = 0, .address = 0x10000, .size = 0x1000};
    OKS(VU_CMD_DMA_MAP, d, 0);
    d.offset = 0x2000;
    OKS(VU_CMD_DMA_MAP, d, 1);
    BADS(VU_CMD_DMA_MAP, d, 0, -EINVAL, "offset 0x2000 without an fd");
    BADS(VU_CMD_DMA_MAP, d, 2, -EINVAL, "2 fds, at most 1");
    d.offset = 0;
    BAD(VU_CMD_DMA_MAP, &d, 31, 0, -EINVAL, "payload is 31 bytes, expected 32");
    uint8_t big[33] = {0};
    memcpy(big, &d, 32);
    BAD(VU_CMD_DMA_MAP, big, 33, 0, -EINVAL, "payload is 33 bytes");
    BAD(VU_CMD_DMA_MAP, big, 33, 1, -EINVAL, "payload is 33 bytes");
    d.argsz = 16;
    BADS(VU_CMD_DMA_MAP, d, 0, -EINVAL, "argsz 16, expected 32");
    d.argsz = 40;
    BADS(VU_CMD_DMA_MAP, d, 0, -EINVAL, "argsz 40");
    d.argsz = 32;
    d.flags = 4;
    BADS(VU_CMD_DMA_MAP, d, 0, -EINVAL, "unknown flags 0x4");
    d.flags = 0; /* no access bits: the device layer decides */
    OKS(VU_CMD_DMA_MAP, d, 0);
    d.flags = 1;
    d.size = 0;
    BADS(VU_CMD_DMA_MAP, d, 0, -EINVAL, "size 0");
    d.address = UINT64_MAX - 0xfff;
    d.size = 0x1000; /* ends exactly at 2^64 */
    OKS(VU_CMD_DMA_MAP, d, 0);
    d.size = 0x1001;
    BADS(VU_CMD_DMA_MAP, d, 0, -EINVAL, "wraps");
    d.address = 0;
    d.offset = UINT64_MAX;
    d.size = 2;
    BADS(VU_CMD_DMA_MAP, d, 1, -EINVAL, "offset 0xffffffffffffffff + size 0x2 wraps");

    /* decoded values */
    struct vu_dma_map in = {32, 2, 0x3000, 0xfee00000, 0x200000}, out;
    struct vu_msg m;
    pt_mk(&m, VU_CMD_DMA_MAP, &in, sizeof(in));
    pt_add_fds(&m, 1);
    assert_int_equal(vu_decode_dma_map(&m, &out, NULL), 0);
    assert_memory_equal(&in, &out, sizeof(in));
    pt_release(&m);
}

static void test_dma_unmap(void **state)
{
    (void)state;
    struct vu_dma_unmap d = {.argsz = 24, .flags = 0, .address = 0x10000, .size = 0x1000};
    OKS(VU_CMD_DMA_UNMAP, d, 0);
    d.argsz = 64; /* larger reply room is fine */
    OKS(VU_CMD_DMA_UNMAP, d, 0);
    d.argsz = 23;
    BADS(VU_CMD_DMA_UNMAP, d, 0, -EINVAL, "argsz 23 is smaller than 24");
    d.argsz = 24;
    OKS(VU_CMD_DMA_UNMAP, d, 1);       /* SPDK attaches its memory fd: unused */
    BADS(VU_CMD_DMA_UNMAP, d, 2, -EINVAL, "2 fds, at most 1");
    BAD(VU_CMD_DMA_UNMAP, &d, 23, 0, -EINVAL, "payload is 23 bytes");
    uint8_t big[40] = {0};
    memcpy(big, &d, 24);
    BAD(VU_CMD_DMA_UNMAP, big, 40, 0, -EINVAL, "payload is 40 bytes, expected 24");
    d.flags = VU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
    BADS(VU_CMD_DMA_UNMAP, d, 0, -EINVAL, "GET_DIRTY_BITMAP");
    d.flags = 4;
    BADS(VU_CMD_DMA_UNMAP, d, 0, -EINVAL, "unknown flags 0x4");
    d.flags = VU_DMA_UNMAP_FLAG_ALL;
    BADS(VU_CMD_DMA_UNMAP, d, 0, -EINVAL, "ALL with address");
    d.address = 0;
    d.size = 0;
    OKS(VU_CMD_DMA_UNMAP, d, 0);
    d.flags = 0;
    BADS(VU_CMD_DMA_UNMAP, d, 0, -EINVAL, "size 0");
    d.address = UINT64_MAX;
    d.size = 2;
    BADS(VU_CMD_DMA_UNMAP, d, 0, -EINVAL, "wraps");
}

static void test_info_queries(void **state)
{
    (void)state;
    struct vu_device_info di = {.argsz = 16};
    OKS(VU_CMD_DEVICE_GET_INFO, di, 0);
    BADS(VU_CMD_DEVICE_GET_INFO, di, 1, -EINVAL, "unexpected fds");
    BAD(VU_CMD_DEVICE_GET_INFO, &di, 15, 0, -EINVAL, "payload is 15 bytes");
    BAD(VU_CMD_DEVICE_GET_INFO, NULL, 0, 0, -EINVAL, "payload is 0 bytes");
    /* a payload may carry up to argsz bytes (a client sends its whole buffer) */
    uint8_t big[40] = {16};
    BAD(VU_CMD_DEVICE_GET_INFO, big, 17, 0, -EINVAL, "payload is 17 bytes, more than argsz 16");
    big[0] = 32;   /* cloud-hypervisor: argsz 32 (its header counted), 16-byte payload */
    OK(VU_CMD_DEVICE_GET_INFO, big, 16, 0);
    OK(VU_CMD_DEVICE_GET_INFO, big, 32, 0);
    BAD(VU_CMD_DEVICE_GET_INFO, big, 33, 0, -EINVAL, "more than argsz 32");
    di.argsz = 15;
    BADS(VU_CMD_DEVICE_GET_INFO, di, 0, -EINVAL, "argsz 15 is smaller than 16");

    struct vu_region_info ri = {.argsz = 32, .index = 7};
    OKS(VU_CMD_DEVICE_GET_REGION_INFO, ri, 0);
    ri.argsz = 4096;
    OKS(VU_CMD_DEVICE_GET_REGION_INFO, ri, 0);
    {
        /* SPDK: argsz 4064 and a 4064-byte body, zeros after the struct */
        uint8_t *sp = calloc(1, 4065);
        assert_non_null(sp);
        struct vu_region_info q = {.argsz = 4064, .index = 8};
        memcpy(sp, &q, sizeof(q));
        OK(VU_CMD_DEVICE_GET_REGION_INFO, sp, 4064, 0);
        struct vu_msg m;
        struct vu_region_info o;
        pt_mk(&m, VU_CMD_DEVICE_GET_REGION_INFO, sp, 4064);
        assert_int_equal(vu_decode_region_info(&m, &o, NULL), 0);
        assert_int_equal(o.index, 8);
        assert_int_equal(o.argsz, 4064);
        pt_release(&m);
        BAD(VU_CMD_DEVICE_GET_REGION_INFO, sp, 4065, 0, -EINVAL, "more than argsz 4064");
        free(sp);
    }
    ri.argsz = 31;
    BADS(VU_CMD_DEVICE_GET_REGION_INFO, ri, 0, -EINVAL, "argsz 31");
    ri.argsz = 32;
    BADS(VU_CMD_DEVICE_GET_REGION_INFO, ri, 1, -EINVAL, "unexpected fds");
    BAD(VU_CMD_DEVICE_GET_REGION_INFO, &ri, 16, 0, -EINVAL, "payload is 16 bytes");
    ri.flags = VU_REGION_INFO_FLAG_CAPS;
    BADS(VU_CMD_DEVICE_GET_REGION_INFO, ri, 0, -EINVAL, "must be 0");
    ri.flags = 0;
    ri.cap_offset = 32;
    BADS(VU_CMD_DEVICE_GET_REGION_INFO, ri, 0, -EINVAL, "must be 0");
    ri.cap_offset = 0;
    ri.size = 1;
    BADS(VU_CMD_DEVICE_GET_REGION_INFO, ri, 0, -EINVAL, "must be 0");
    ri.size = 0;
    ri.offset = 1;
    BADS(VU_CMD_DEVICE_GET_REGION_INFO, ri, 0, -EINVAL, "must be 0");

    struct vu_region_io_fds_request io = {.argsz = 16, .index = 0};
    OKS(VU_CMD_DEVICE_GET_REGION_IO_FDS, io, 0);
    io.argsz = 15;
    BADS(VU_CMD_DEVICE_GET_REGION_IO_FDS, io, 0, -EINVAL, "argsz 15");
    io.argsz = 56;
    io.flags = 1;
    BADS(VU_CMD_DEVICE_GET_REGION_IO_FDS, io, 0, -EINVAL, "flags 0x1 and count 0");
    io.flags = 0;
    io.count = 2;
    BADS(VU_CMD_DEVICE_GET_REGION_IO_FDS, io, 0, -EINVAL, "count 2");
    io.count = 0;
    BADS(VU_CMD_DEVICE_GET_REGION_IO_FDS, io, 2, -EINVAL, "2 unexpected fds");
    BAD(VU_CMD_DEVICE_GET_REGION_IO_FDS, &io, 12, 0, -EINVAL, "payload is 12");

    struct vu_irq_info ii = {.argsz = 16, .index = 2};
    OKS(VU_CMD_DEVICE_GET_IRQ_INFO, ii, 0);
    ii.argsz = 8;
    BADS(VU_CMD_DEVICE_GET_IRQ_INFO, ii, 0, -EINVAL, "argsz 8");
    ii.argsz = 16;
    BADS(VU_CMD_DEVICE_GET_IRQ_INFO, ii, 1, -EINVAL, "unexpected fds");
    BAD(VU_CMD_DEVICE_GET_IRQ_INFO, &ii, 12, 0, -EINVAL, "payload is 12");
    uint8_t iib[64] = {64};
    OK(VU_CMD_DEVICE_GET_IRQ_INFO, iib, 64, 0);
    iib[0] = 16;
    BAD(VU_CMD_DEVICE_GET_IRQ_INFO, iib, 20, 0, -EINVAL, "payload is 20 bytes, more than argsz 16");
}

static void set_irqs_case(int line, uint32_t flags, uint32_t start, uint32_t count,
                          size_t nbools, size_t nfds, int argsz_delta, int rc, const char *sub)
{
    struct pt_buf p = {.n = 0};
    struct vu_irq_set s = {
        .argsz = (uint32_t)((int)(sizeof(s) + nbools) + argsz_delta),
        .flags = flags, .index = 2, .start = start, .count = count,
    };
    PT_PUT(&p, s);
    for (size_t i = 0; i < nbools; i++) {
        uint8_t b = (uint8_t)(i & 1);
        PT_PUT(&p, b);
    }
    check_case(line, VU_CMD_DEVICE_SET_IRQS, p.b, p.n, nfds, rc, sub);
}

#define SI(flags, start, count, nbools, nfds, dargsz, rc, sub) \
    set_irqs_case(__LINE__, flags, start, count, nbools, nfds, dargsz, rc, sub)

static void test_set_irqs(void **state)
{
    (void)state;
    const uint32_t NT = VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_TRIGGER;
    const uint32_t BT = VU_IRQ_SET_DATA_BOOL | VU_IRQ_SET_ACTION_TRIGGER;
    const uint32_t ET = VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER;
    const uint32_t EU = VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_UNMASK;
    const uint32_t NM = VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_MASK;

    SI(NT, 0, 0, 0, 0, 0, 0, NULL);     /* disable all */
    SI(NT, 0, 4, 0, 0, 0, 0, NULL);
    SI(NM, 3, 1, 0, 0, 0, 0, NULL);
    SI(BT, 0, 3, 3, 0, 0, 0, NULL);
    SI(ET, 0, 3, 0, 3, 0, 0, NULL);
    SI(ET, 5, 3, 0, 0, 0, 0, NULL);     /* de-assign */
    SI(EU, 0, 1, 0, 1, 0, 0, NULL);     /* unmask eventfd (resample) */
    SI(ET, 0, 16, 0, 16, 0, 0, NULL);

    SI(ET, 0, 3, 0, 2, 0, -EINVAL, "2 fds for count 3");
    SI(ET, 0, 1, 0, 2, 0, -EINVAL, "2 fds for count 1");
    SI(NT, 0, 1, 0, 1, 0, -EINVAL, "1 fds without DATA_EVENTFD");
    SI(BT, 0, 2, 2, 1, 0, -EINVAL, "without DATA_EVENTFD");
    SI(NT | VU_IRQ_SET_DATA_BOOL, 0, 1, 0, 0, 0, -EINVAL, "exactly one DATA bit");
    SI(VU_IRQ_SET_ACTION_TRIGGER, 0, 1, 0, 0, 0, -EINVAL, "exactly one DATA bit");
    SI(VU_IRQ_SET_DATA_NONE, 0, 1, 0, 0, 0, -EINVAL, "exactly one ACTION bit");
    SI(NT | VU_IRQ_SET_ACTION_MASK, 0, 1, 0, 0, 0, -EINVAL, "exactly one ACTION bit");
    SI(NT | 0x40, 0, 1, 0, 0, 0, -EINVAL, "unknown flags 0x40");
    SI(NT, 0, 1, 0, 0, 4, -EINVAL, "argsz 24 differs from the payload length 20");
    SI(NT, 0, 1, 0, 0, -1, -EINVAL, "argsz 19 differs");
    SI(BT, 0, 3, 2, 0, 0, -EINVAL, "payload 22 bytes for count 3, expected 23");
    SI(BT, 0, 3, 4, 0, 0, -EINVAL, "payload 24 bytes for count 3");
    SI(NT, 0, 2, 2, 0, 0, -EINVAL, "payload 22 bytes for count 2, expected 20");
    SI(ET, 0, 2, 2, 2, 0, -EINVAL, "expected 20");
    SI(NT, 1, 0, 0, 0, 0, -EINVAL, "count 0 only with start 0");
    SI(ET, 0, 0, 0, 0, 0, -EINVAL, "count 0 only");
    SI(VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_UNMASK, 0, 0, 0, 0, 0, -EINVAL, "count 0 only");
    SI(NT, UINT32_MAX, 2, 0, 0, 0, -EINVAL, "wraps");
    SI(NT, UINT32_MAX, 1, 0, 0, 0, -EINVAL, "wraps"); /* start + count must fit in u32 */
    SI(NT, UINT32_MAX - 1, 1, 0, 0, 0, 0, NULL);

    uint8_t shortp[19] = {0};
    BAD(VU_CMD_DEVICE_SET_IRQS, shortp, 19, 0, -EINVAL, "at least 20");

    /* decoded values */
    struct pt_buf p = {.n = 0};
    struct vu_irq_set s = {.argsz = 23, .flags = BT, .index = 1, .start = 4, .count = 3};
    PT_PUT(&p, s);
    pt_put(&p, "\x01\x00\x01", 3);
    struct vu_msg m;
    struct vu_irq_set_req out;
    pt_mk(&m, VU_CMD_DEVICE_SET_IRQS, p.b, p.n);
    assert_int_equal(vu_decode_set_irqs(&m, &out, NULL), 0);
    assert_int_equal(out.set.start, 4);
    assert_int_equal(out.set.count, 3);
    assert_memory_equal(out.bools, "\x01\x00\x01", 3);
    assert_int_equal(out.nfds, 0);
    pt_release(&m);
}

static void test_region_access(void **state)
{
    (void)state;
    struct vu_region_access a = {.offset = 0x10, .region = 7, .count = 4};
    OKS(VU_CMD_REGION_READ, a, 0);
    BADS(VU_CMD_REGION_READ, a, 1, -EINVAL, "unexpected fds");
    BAD(VU_CMD_REGION_READ, &a, 15, 0, -EINVAL, "at least 16");
    uint8_t withdata[20] = {0};
    memcpy(withdata, &a, 16);
    BAD(VU_CMD_REGION_READ, withdata, 20, 0, -EINVAL, "payload is 20 bytes, expected 16");
    a.count = MAX_XFER;
    OKS(VU_CMD_REGION_READ, a, 0);
    a.count = MAX_XFER + 1;
    BADS(VU_CMD_REGION_READ, a, 0, -E2BIG, "count 4097 exceeds");
    a.count = 0; /* zero-length access: the device layer decides */
    OKS(VU_CMD_REGION_READ, a, 0);
    a.offset = UINT64_MAX - 1;
    a.count = 4;
    BADS(VU_CMD_REGION_READ, a, 0, -EINVAL, "wraps");

    struct pt_buf p = {.n = 0};
    struct vu_region_access w = {.offset = 0x20, .region = 0, .count = 4};
    PT_PUT(&p, w);
    pt_put(&p, "\xde\xad\xbe\xef", 4);
    OK(VU_CMD_REGION_WRITE, p.b, p.n, 0);
    BAD(VU_CMD_REGION_WRITE, p.b, p.n, 2, -EINVAL, "2 unexpected fds");
    BAD(VU_CMD_REGION_WRITE, p.b, p.n - 1, 0, -EINVAL, "payload is 19 bytes, expected 20");
    pt_put(&p, "x", 1);
    BAD(VU_CMD_REGION_WRITE, p.b, p.n, 0, -EINVAL, "payload is 21 bytes, expected 20");
    BAD(VU_CMD_REGION_WRITE, p.b, 15, 0, -EINVAL, "at least 16");
    /* count above the limit is E2BIG even though the payload is short */
    w.count = 1u << 20;
    BADS(VU_CMD_REGION_WRITE, w, 0, -E2BIG, "exceeds max_data_xfer_size 4096");

    struct vu_msg m;
    struct vu_region_access_req out;
    p.n = 0;
    w.count = 4;
    PT_PUT(&p, w);
    pt_put(&p, "\xde\xad\xbe\xef", 4);
    pt_mk(&m, VU_CMD_REGION_WRITE, p.b, p.n);
    assert_int_equal(vu_decode_region_write(&m, MAX_XFER, &out, NULL), 0);
    assert_int_equal(out.acc.offset, 0x20);
    assert_memory_equal(out.data, "\xde\xad\xbe\xef", 4);
    pt_release(&m);
}

static void test_write_multi(void **state)
{
    (void)state;
    struct pt_buf p = {.n = 0};
    struct vu_write_multi w = {.wr_cnt = 2};
    struct vu_write_multi_entry e1 = {.offset = 0x100, .region = 0, .count = 4, .data = {1, 2, 3, 4}};
    struct vu_write_multi_entry e2 = {.offset = 0x108, .region = 2, .count = 8, .data = {9}};
    PT_PUT(&p, w);
    PT_PUT(&p, e1);
    PT_PUT(&p, e2);
    OK(VU_CMD_REGION_WRITE_MULTI, p.b, p.n, 0);
    BAD(VU_CMD_REGION_WRITE_MULTI, p.b, p.n, 1, -EINVAL, "unexpected fds");
    BAD(VU_CMD_REGION_WRITE_MULTI, p.b, p.n - 1, 0, -EINVAL, "payload is 55 bytes, expected 56");
    BAD(VU_CMD_REGION_WRITE_MULTI, p.b, 7, 0, -EINVAL, "at least 8");

    struct vu_msg m;
    struct vu_write_multi_req out;
    pt_mk(&m, VU_CMD_REGION_WRITE_MULTI, p.b, p.n);
    assert_int_equal(vu_decode_write_multi(&m, &out, NULL), 0);
    assert_int_equal(out.wr_cnt, 2);
    struct vu_write_multi_entry got;
    memcpy(&got, &out.wrs[1], sizeof(got));
    assert_int_equal(got.offset, 0x108);
    assert_int_equal(got.region, 2);
    pt_release(&m);

    e2.count = 9;
    p.n = 0;
    PT_PUT(&p, w);
    PT_PUT(&p, e1);
    PT_PUT(&p, e2);
    BAD(VU_CMD_REGION_WRITE_MULTI, p.b, p.n, 0, -EINVAL, "entry 1 count 9");
    e2.count = 0;
    memcpy(p.b + 8 + 24, &e2, sizeof(e2));
    BAD(VU_CMD_REGION_WRITE_MULTI, p.b, p.n, 0, -EINVAL, "entry 1 count 0");

    w.wr_cnt = 0;
    BADS(VU_CMD_REGION_WRITE_MULTI, w, 0, -EINVAL, "wr_cnt 0");
    w.wr_cnt = VU_WRITE_MULTI_MAX_ENTRIES + 1;
    BADS(VU_CMD_REGION_WRITE_MULTI, w, 0, -EINVAL, "wr_cnt 201");
    w.wr_cnt = UINT64_MAX; /* must not overflow the size computation */
    BADS(VU_CMD_REGION_WRITE_MULTI, w, 0, -EINVAL, "not in 1..200");

    /* 200 entries, the most QEMU sends */
    size_t n = 8 + 200 * 24;
    uint8_t *big = calloc(1, n);
    assert_non_null(big);
    w.wr_cnt = 200;
    memcpy(big, &w, 8);
    for (int i = 0; i < 200; i++) {
        struct vu_write_multi_entry e = {.offset = (uint64_t)i * 4, .count = 4};
        memcpy(big + 8 + i * 24, &e, 24);
    }
    OK(VU_CMD_REGION_WRITE_MULTI, big, n, 0);
    free(big);
}

static void test_reset(void **state)
{
    (void)state;
    OK(VU_CMD_DEVICE_RESET, NULL, 0, 0);
    BAD(VU_CMD_DEVICE_RESET, NULL, 0, 1, -EINVAL, "1 unexpected fds");
    uint32_t x = 0;
    BADS(VU_CMD_DEVICE_RESET, x, 0, -EINVAL, "payload is 4 bytes, expected 0");
}

static void test_device_feature(void **state)
{
    (void)state;
    struct vu_device_feature f = {.argsz = 16, .flags = VU_DEVICE_FEATURE_GET | 1};
    OKS(VU_CMD_DEVICE_FEATURE, f, 0);
    f.flags = VU_DEVICE_FEATURE_PROBE | VU_DEVICE_FEATURE_GET | VU_DEVICE_FEATURE_SET | 2;
    OKS(VU_CMD_DEVICE_FEATURE, f, 0);
    f.flags = VU_DEVICE_FEATURE_GET | VU_DEVICE_FEATURE_SET | 2;
    BADS(VU_CMD_DEVICE_FEATURE, f, 0, -EINVAL, "GET and SET together");
    f.flags = 2;
    BADS(VU_CMD_DEVICE_FEATURE, f, 0, -EINVAL, "none of GET, SET, PROBE");
    f.flags = VU_DEVICE_FEATURE_SET | (1u << 19);
    BADS(VU_CMD_DEVICE_FEATURE, f, 0, -EINVAL, "unknown flags 0x80000");
    f.flags = VU_DEVICE_FEATURE_SET | 2;
    BADS(VU_CMD_DEVICE_FEATURE, f, 1, -EINVAL, "unexpected fds");
    BAD(VU_CMD_DEVICE_FEATURE, &f, 7, 0, -EINVAL, "at least 8");
    f.argsz = 4;
    BADS(VU_CMD_DEVICE_FEATURE, f, 0, -EINVAL, "argsz 4 is smaller than 8");

    struct pt_buf p = {.n = 0};
    f.argsz = 16;
    PT_PUT(&p, f);
    uint32_t st[2] = {2, 0};
    PT_PUT(&p, st);
    struct vu_msg m;
    struct vu_device_feature_req out;
    pt_mk(&m, VU_CMD_DEVICE_FEATURE, p.b, p.n);
    assert_int_equal(vu_decode_device_feature(&m, &out, NULL), 0);
    assert_int_equal(out.data_len, 8);
    assert_memory_equal(out.data, st, 8);
    assert_int_equal(out.feat.flags & VU_DEVICE_FEATURE_MASK, 2);
    pt_release(&m);
}

static void test_mig_data(void **state)
{
    (void)state;
    struct vu_mig_data r = {.argsz = 8 + 100, .size = 100};
    OKS(VU_CMD_MIG_DATA_READ, r, 0);
    BADS(VU_CMD_MIG_DATA_READ, r, 1, -EINVAL, "unexpected fds");
    r.argsz = 107;
    BADS(VU_CMD_MIG_DATA_READ, r, 0, -EINVAL, "argsz 107 is smaller than 8 + size 100");
    r.size = MAX_XFER + 1;
    r.argsz = UINT32_MAX;
    BADS(VU_CMD_MIG_DATA_READ, r, 0, -E2BIG, "size 4097 exceeds");
    r.size = 4;
    uint8_t more[12] = {0};
    memcpy(more, &r, 8);
    BAD(VU_CMD_MIG_DATA_READ, more, 12, 0, -EINVAL, "payload is 12 bytes, expected 8");
    BAD(VU_CMD_MIG_DATA_READ, more, 6, 0, -EINVAL, "at least 8");

    struct vu_mig_data w = {.argsz = 12, .size = 4};
    memcpy(more, &w, 8);
    memcpy(more + 8, "abcd", 4);
    OK(VU_CMD_MIG_DATA_WRITE, more, 12, 0);
    BAD(VU_CMD_MIG_DATA_WRITE, more, 11, 0, -EINVAL, "payload is 11 bytes, expected 12");
    BAD(VU_CMD_MIG_DATA_WRITE, more, 12, 1, -EINVAL, "unexpected fds");
    w.argsz = 8;
    memcpy(more, &w, 8);
    BAD(VU_CMD_MIG_DATA_WRITE, more, 12, 0, -EINVAL, "argsz 8 is smaller");
    w.size = MAX_XFER + 1;
    BADS(VU_CMD_MIG_DATA_WRITE, w, 0, -E2BIG, "exceeds");
}

static void test_dma_access(void **state)
{
    (void)state;
    struct vu_dma_access a = {.address = 0x1000, .count = 8};
    OKS(VU_CMD_DMA_READ, a, 0);
    BADS(VU_CMD_DMA_READ, a, 1, -EINVAL, "unexpected fds");
    a.count = MAX_XFER + 1;
    BADS(VU_CMD_DMA_READ, a, 0, -E2BIG, "exceeds");
    a.count = 1ull << 40; /* must not be truncated to 32 bits */
    BADS(VU_CMD_DMA_READ, a, 0, -E2BIG, "exceeds");
    a.count = 16;
    a.address = UINT64_MAX - 8;
    BADS(VU_CMD_DMA_READ, a, 0, -EINVAL, "wraps");
    struct pt_buf p = {.n = 0};
    a.address = 0x2000;
    a.count = 3;
    PT_PUT(&p, a);
    pt_put(&p, "xyz", 3);
    OK(VU_CMD_DMA_WRITE, p.b, p.n, 0);
    BAD(VU_CMD_DMA_WRITE, p.b, p.n - 1, 0, -EINVAL, "expected 19");
    /* QEMU's layout (data at 12, count u32) is not accepted */
    BAD(VU_CMD_DMA_READ, p.b, 12, 0, -EINVAL, "at least 16");
}

/* Every decoder refuses a message whose payload does not match msg_size and
 * a message of the wrong type. */
static void test_all_reject_reply_type(void **state)
{
    (void)state;
    static const uint16_t cmds[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18};
    uint8_t buf[64] = {0};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        struct vu_msg m;
        struct vub_err e = {{0}};
        pt_mk(&m, cmds[i], buf, sizeof(buf));
        m.hdr.flags = VU_F_TYPE_REPLY;
        assert_int_equal(decode_any(&m, &e), -EINVAL);
        assert_non_null(strstr(e.msg, "not a command"));
        m.hdr.flags = 0;
        m.hdr.msg_size = 16 + 32; /* payload_len 64 */
        assert_int_equal(decode_any(&m, &e), -EINVAL);
        assert_non_null(strstr(e.msg, "does not match msg_size"));
        pt_release(&m);
    }
}

/* ---- replies ---------------------------------------------------------------- */

static void mk_reply(struct vu_msg *m, uint16_t cmd, const void *p, size_t len)
{
    pt_mk(m, cmd, p, len);
    m->hdr.flags = VU_F_TYPE_REPLY;
}

static void test_reply_status(void **state)
{
    (void)state;
    struct vu_msg m;
    struct vub_err e;
    mk_reply(&m, VU_CMD_DMA_MAP, NULL, 0);
    assert_int_equal(vu_reply_status(&m, VU_CMD_DMA_MAP, &e), 0);
    assert_int_equal(vu_decode_empty_reply(&m, VU_CMD_DMA_MAP, &e), 0);
    assert_int_equal(vu_reply_status(&m, VU_CMD_DMA_UNMAP, &e), -EPROTO);
    m.hdr.flags = VU_F_TYPE_CMD;
    assert_int_equal(vu_reply_status(&m, VU_CMD_DMA_MAP, &e), -EPROTO);
    m.hdr.flags = VU_F_TYPE_REPLY | VU_F_ERROR;
    m.hdr.error_no = EEXIST;
    assert_int_equal(vu_reply_status(&m, VU_CMD_DMA_MAP, &e), -EEXIST);
    m.hdr.error_no = 0;
    assert_int_equal(vu_reply_status(&m, VU_CMD_DMA_MAP, &e), -EIO);
    m.hdr.error_no = 4097;
    assert_int_equal(vu_reply_status(&m, VU_CMD_DMA_MAP, &e), -EIO);
    m.hdr.error_no = 4096;
    assert_int_equal(vu_reply_status(&m, VU_CMD_DMA_MAP, &e), -4096);
    pt_release(&m);

    uint32_t x = 0;
    mk_reply(&m, VU_CMD_DEVICE_RESET, &x, 4);
    assert_int_equal(vu_decode_empty_reply(&m, VU_CMD_DEVICE_RESET, &e), -EPROTO);
    pt_release(&m);
    mk_reply(&m, VU_CMD_DEVICE_RESET, NULL, 0);
    pt_add_fds(&m, 1);
    assert_int_equal(vu_decode_empty_reply(&m, VU_CMD_DEVICE_RESET, &e), -EPROTO);
    pt_release(&m);
}

static void test_reply_decoders(void **state)
{
    (void)state;
    struct vu_msg m;
    struct vub_err e;

    struct vu_dma_unmap u = {24, 0, 0x1000, 0x2000}, uo;
    mk_reply(&m, VU_CMD_DMA_UNMAP, &u, sizeof(u));
    assert_int_equal(vu_decode_dma_unmap_reply(&m, &uo, &e), 0);
    assert_memory_equal(&u, &uo, sizeof(u));
    pt_release(&m);
    mk_reply(&m, VU_CMD_DMA_UNMAP, &u, 16);
    assert_int_equal(vu_decode_dma_unmap_reply(&m, &uo, &e), -EPROTO);
    pt_release(&m);

    struct vu_device_info di = {16, VU_DEVICE_FLAGS_PCI, 9, 5}, dio;
    mk_reply(&m, VU_CMD_DEVICE_GET_INFO, &di, sizeof(di));
    assert_int_equal(vu_decode_device_info_reply(&m, &dio, &e), 0);
    assert_int_equal(dio.num_regions, 9);
    pt_release(&m);

    struct vu_irq_info ii = {16, VU_IRQ_INFO_EVENTFD, 2, 64}, iio;
    mk_reply(&m, VU_CMD_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii));
    assert_int_equal(vu_decode_irq_info_reply(&m, &iio, &e), 0);
    assert_int_equal(iio.count, 64);
    pt_add_fds(&m, 1);
    assert_int_equal(vu_decode_irq_info_reply(&m, &iio, &e), -EPROTO);
    pt_release(&m);

    struct pt_buf p = {.n = 0};
    struct vu_region_access a = {0, 7, 4};
    PT_PUT(&p, a);
    pt_put(&p, "\x86\x80\x11\x22", 4);
    struct vu_region_access_req ar;
    mk_reply(&m, VU_CMD_REGION_READ, p.b, p.n);
    assert_int_equal(vu_decode_region_read_reply(&m, 4, &ar, &e), 0);
    assert_memory_equal(ar.data, "\x86\x80\x11\x22", 4);
    assert_int_equal(vu_decode_region_read_reply(&m, 2, &ar, &e), -EPROTO);
    assert_non_null(strstr(e.msg, "exceeds the requested 2"));
    pt_release(&m);
    mk_reply(&m, VU_CMD_REGION_READ, p.b, p.n - 1);
    assert_int_equal(vu_decode_region_read_reply(&m, 4, &ar, &e), -EPROTO);
    pt_release(&m);

    struct vu_region_access wo;
    mk_reply(&m, VU_CMD_REGION_WRITE, &a, sizeof(a));
    assert_int_equal(vu_decode_region_write_reply(&m, 4, &wo, &e), 0);
    assert_int_equal(wo.count, 4);
    assert_int_equal(vu_decode_region_write_reply(&m, 3, &wo, &e), -EPROTO);
    pt_release(&m);

    uint64_t cnt = 5, done = 0;
    mk_reply(&m, VU_CMD_REGION_WRITE_MULTI, &cnt, 8);
    assert_int_equal(vu_decode_write_multi_reply(&m, 5, &done, &e), 0);
    assert_int_equal(done, 5);
    assert_int_equal(vu_decode_write_multi_reply(&m, 4, &done, &e), -EPROTO);
    pt_release(&m);

    /* MIG_DATA_READ reply: padded (libvfio-user) and exact both accepted */
    p.n = 0;
    struct vu_mig_data md = {8 + 2, 2};
    PT_PUT(&p, md);
    pt_put(&p, "ab\0\0", 4);
    struct vu_mig_data_req mr;
    mk_reply(&m, VU_CMD_MIG_DATA_READ, p.b, p.n);
    assert_int_equal(vu_decode_mig_data_read_reply(&m, 4, &mr, &e), 0);
    assert_int_equal(mr.mig.size, 2);
    assert_memory_equal(mr.data, "ab", 2);
    assert_int_equal(vu_decode_mig_data_read_reply(&m, 3, &mr, &e), -EPROTO); /* padded beyond */
    assert_int_equal(vu_decode_mig_data_read_reply(&m, 1, &mr, &e), -EPROTO);
    pt_release(&m);
    mk_reply(&m, VU_CMD_MIG_DATA_READ, p.b, 9);
    assert_int_equal(vu_decode_mig_data_read_reply(&m, 4, &mr, &e), -EPROTO);
    pt_release(&m);

    /* VERSION reply */
    p.n = 0;
    struct vu_version v = {0, 0};
    PT_PUT(&p, v);
    pt_put(&p, "{}", 3);
    struct vu_version_req vr;
    mk_reply(&m, VU_CMD_VERSION, p.b, p.n);
    assert_int_equal(vu_decode_version_reply(&m, &vr, &e), 0);
    assert_string_equal(vr.json, "{}");
    pt_add_fds(&m, 1);
    assert_int_equal(vu_decode_version_reply(&m, &vr, &e), -EPROTO);
    pt_release(&m);
    mk_reply(&m, VU_CMD_VERSION, p.b, p.n - 1);
    assert_int_equal(vu_decode_version_reply(&m, &vr, &e), -EPROTO);
    pt_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hdr_check),
        cmocka_unit_test(test_hdr_check_exhaustive),
        cmocka_unit_test(test_reply_status_exhaustive),
        cmocka_unit_test(test_cmd_names),
        cmocka_unit_test(test_msg_fds),
        cmocka_unit_test(test_fail_formats),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_version_not_command),
        cmocka_unit_test(test_dma_map),
        cmocka_unit_test(test_dma_unmap),
        cmocka_unit_test(test_info_queries),
        cmocka_unit_test(test_set_irqs),
        cmocka_unit_test(test_region_access),
        cmocka_unit_test(test_write_multi),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_device_feature),
        cmocka_unit_test(test_mig_data),
        cmocka_unit_test(test_dma_access),
        cmocka_unit_test(test_all_reject_reply_type),
        cmocka_unit_test(test_reply_status),
        cmocka_unit_test(test_reply_decoders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
