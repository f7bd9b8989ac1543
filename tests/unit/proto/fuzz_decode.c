/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as a vfio-user byte stream. Each input is
 * read message by message through the stream transport (with the real
 * header checks and limits); every message is then fed to every request
 * decoder (by retyping the command), every reply decoder, the region-cap
 * parser, the capability JSON parser and the VERSION answer. Anything the
 * decoders accept is checked against the invariants they promise.
 *
 * Build: cmake -DVUB_FUZZ=ON -DCMAKE_C_COMPILER=clang; run build/.../fuzz_decode.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vu_proto.h"

#define MAX_XFER 4096u

static void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

static bool inside(const struct vu_msg *m, const void *p, size_t n)
{
    const uint8_t *b = p;
    return b >= m->payload && n <= m->payload_len && (size_t)(b - m->payload) <= m->payload_len - n;
}

/* Every request decoder on the same bytes (through the command table), and
 * what each promises about a message it accepts. */
static void all_requests(struct vu_msg *m)
{
    struct vub_err e;
    union vu_request o;
    uint16_t saved = m->hdr.cmd;
    uint32_t flags = m->hdr.flags;
    m->hdr.flags &= ~(VU_F_TYPE_MASK | VU_F_ERROR);
    for (unsigned cmd = 1; cmd <= VU_CMD_MAX; cmd++) {
        m->hdr.cmd = (uint16_t)cmd;
        if (vu_decode_request(m, MAX_XFER, &o, &e) < 0)
            continue;
        switch (cmd) {
        case VU_CMD_VERSION:
            if (o.version.json) {
                check(inside(m, o.version.json, o.version.json_len + 1));
                check(o.version.json[o.version.json_len] == '\0');
                check(strlen(o.version.json) == o.version.json_len);
                struct vu_caps c;
                (void)vu_caps_parse(o.version.json, o.version.json_len, &c, &e);
            }
            break;
        case VU_CMD_DMA_MAP:
            check(o.dma_map.size && o.dma_map.argsz == 32);
            break;
        case VU_CMD_DEVICE_SET_IRQS:
            if (o.set_irqs.bools)
                check(inside(m, o.set_irqs.bools, o.set_irqs.set.count));
            break;
        case VU_CMD_REGION_WRITE:
            check(o.region_access.acc.count <= MAX_XFER &&
                  inside(m, o.region_access.data, o.region_access.acc.count));
            break;
        case VU_CMD_DMA_WRITE:
            check(inside(m, o.dma_access.data, o.dma_access.acc.count));
            break;
        case VU_CMD_REGION_WRITE_MULTI:
            check(inside(m, o.write_multi.wrs,
                         o.write_multi.wr_cnt * sizeof(struct vu_write_multi_entry)));
            for (uint64_t i = 0; i < o.write_multi.wr_cnt; i++) {
                struct vu_write_multi_entry en;
                memcpy(&en, &o.write_multi.wrs[i], sizeof(en));
                check(en.count >= 1 && en.count <= 8);
            }
            break;
        case VU_CMD_DEVICE_FEATURE:
            if (o.device_feature.data)
                check(inside(m, o.device_feature.data, o.device_feature.data_len));
            break;
        case VU_CMD_MIG_DATA_WRITE:
            check(inside(m, o.mig_data.data, o.mig_data.mig.size));
            break;
        default:
            break;   /* accepted; nothing more promised */
        }
    }
    m->hdr.cmd = saved;
    m->hdr.flags = flags;
}

static void all_replies(struct vu_msg *m)
{
    struct vub_err e;
    uint32_t flags = m->hdr.flags;
    uint16_t saved = m->hdr.cmd;
    m->hdr.flags = (m->hdr.flags & ~VU_F_TYPE_MASK & ~VU_F_NO_REPLY) | VU_F_TYPE_REPLY;
    struct vu_version_req vr;
    struct vu_dma_unmap du;
    struct vu_device_info di;
    struct vu_irq_info ii;
    struct vu_region_access_req ra;
    struct vu_region_access wa;
    struct vu_mig_data_req mr;
    uint64_t done;
    m->hdr.cmd = VU_CMD_VERSION;
    (void)vu_decode_version_reply(m, &vr, &e);
    m->hdr.cmd = VU_CMD_DMA_UNMAP;
    (void)vu_decode_dma_unmap_reply(m, &du, &e);
    m->hdr.cmd = VU_CMD_DEVICE_GET_INFO;
    (void)vu_decode_device_info_reply(m, &di, &e);
    m->hdr.cmd = VU_CMD_DEVICE_GET_IRQ_INFO;
    (void)vu_decode_irq_info_reply(m, &ii, &e);
    m->hdr.cmd = VU_CMD_REGION_READ;
    if (!vu_decode_region_read_reply(m, 64, &ra, &e))
        check(ra.acc.count <= 64 && inside(m, ra.data, ra.acc.count));
    m->hdr.cmd = VU_CMD_REGION_WRITE;
    (void)vu_decode_region_write_reply(m, 64, &wa, &e);
    m->hdr.cmd = VU_CMD_REGION_WRITE_MULTI;
    (void)vu_decode_write_multi_reply(m, 200, &done, &e);
    m->hdr.cmd = VU_CMD_MIG_DATA_READ;
    if (!vu_decode_mig_data_read_reply(m, 64, &mr, &e))
        check(mr.mig.size <= 64 && inside(m, mr.data, mr.mig.size));
    m->hdr.cmd = VU_CMD_DEVICE_RESET;
    (void)vu_decode_empty_reply(m, VU_CMD_DEVICE_RESET, &e);
    m->hdr.cmd = saved;
    m->hdr.flags = flags;
}

static void other_parsers(struct vu_msg *m)
{
    struct vub_err e;
    struct vu_region_caps caps;
    if (!vu_region_caps_parse(m->payload, m->payload_len, &caps, &e)) {
        check(caps.nr_areas_kept <= VU_MAX_SPARSE_AREAS);
        check(caps.nr_areas_kept <= caps.nr_areas);
    }
    if (m->payload_len && m->payload_len <= VU_MAX_JSON) {
        struct vu_caps c;
        if (!vu_caps_parse((const char *)m->payload, m->payload_len, &c, &e)) {
            char buf[VU_MAX_JSON];
            ssize_t n = vu_caps_emit(&c, buf, sizeof(buf));
            struct vu_caps back;
            check(n > 0);
            check(vu_caps_parse(buf, (size_t)n - 1, &back, &e) == 0);
            check(back.max_msg_fds == c.max_msg_fds && back.pgsizes == c.pgsizes &&
                  back.max_data_xfer_size == c.max_data_xfer_size);
        }
    }
    if (m->hdr.cmd == VU_CMD_VERSION) {
        struct vu_caps server, client, agreed;
        vu_caps_defaults(&server);
        server.max_msg_fds = 8;
        server.write_multiple = true;
        server.has_migration = true;
        server.migration_pgsize = 4096;
        char json[VU_MAX_JSON];
        size_t len = 0;
        uint32_t flags = m->hdr.flags;
        m->hdr.flags = 0;
        struct vu_version_out vo;
        if (!vu_version_answer(m, &server, &client, &agreed, json, sizeof(json), &len, &vo, &e)) {
            /* never larger than the request, unless not even the minimal
             * JSON fits (then it is exactly that) */
            if (vo.over_bound)
                check(strcmp(json, "{\"capabilities\":{}}") == 0);
            else if (m->payload_len > sizeof(struct vu_version) + 1)
                check(VU_HDR_SIZE + sizeof(struct vu_version) + len <= m->hdr.msg_size);
            check(vo.minor == 0);
            check(len >= 1 && json[len - 1] == '\0' && strlen(json) == len - 1);
            check(agreed.max_msg_fds <= server.max_msg_fds);
        }
        m->hdr.flags = flags;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    int wfd = memfd_create("fuzz-out", MFD_CLOEXEC);
    if (fd < 0 || wfd < 0)
        abort();
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
    lseek(fd, 0, SEEK_SET);
    struct vu_conn c;
    struct vu_limits lim = {.max_msg_size = VU_HDR_SIZE + 16 + 2 * MAX_XFER, .max_fds = 0};
    vu_conn_init_stream(&c, fd, wfd, &lim);
    for (int i = 0; i < 64; i++) {
        struct vu_msg m;
        int r = vu_recv(&c, &m);
        if (r) {
            check(m.payload == NULL && m.nfds == 0);
            break;
        }
        check(m.payload_len == m.hdr.msg_size - VU_HDR_SIZE);
        check(vu_hdr_check(&m.hdr, &lim, NULL) == 0);
        all_requests(&m);
        all_replies(&m);
        other_parsers(&m);
        /* errors and replies go out through the same transport */
        (void)vu_send_error(&c, &m, 22);
        (void)vu_send_reply(&c, &m, m.payload, m.payload_len, NULL, 0, NULL, 0);
        vu_msg_release(&m);
    }
    vu_conn_close(&c);
    return 0;
}
