/* SPDX-License-Identifier: MIT */
/*
 * pers_lvu.c - a client in the style of libvfio-user's samples/client.c and
 * its lib/tran_sock.c: fixed per-command msg ids (0xbada55 truncated to 16
 * bits for VERSION, 0xb10c GET_INFO, 0xabcd GET_REGION_INFO, 0x1bad
 * GET_IRQ_INFO, 0x1bae SET_IRQS, region accesses counting down from 0xf00f);
 * every reply must echo the request's id and command, its error field is
 * checked and its payload must fit the receive buffer. VERSION proposes 0.2
 * with max_msg_fds 32 and max_data_xfer_size 1024 (small on purpose). Region
 * info is asked with argsz 32 and no fd buffer, then with the full argsz;
 * a cap other than sparse-mmap/type is fatal ("bad VFIO cap ID"); a sparse
 * cap needs one fd per area. Interrupts: INTx (index 0) with one eventfd.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pers.h"

static uint16_t lvu_access_id = 0xf00f;

static const char lvu_caps[] =
    "{\"capabilities\":{\"max_msg_fds\":32,\"max_data_xfer_size\":1024,"
    "\"migration\":{\"pgsize\":4096}}}";

static int xfer(struct p_ctx *c, const char *step, uint16_t id, uint16_t cmd,
                const void *payload, uint32_t len, const int *fds, int nfds, uint32_t buf_len,
                int max_fds, struct p_msg *m)
{
    if (p_send(c, step, id, cmd, payload, len, fds, nfds) < 0 || p_recv(c, step, m) < 0)
        return -1;
    if (p_check_reply(c, step, m, cmd, id) < 0)
        goto bad;
    if (m->hdr.flags & VU_F_ERROR) {
        p_fail(c, step, "error reply: %s", strerror((int)m->hdr.error_no));
        goto bad;
    }
    if (m->len > buf_len) {
        p_fail(c, step, "reply payload %u bytes, receive buffer %u: -EINVAL", m->len, buf_len);
        goto bad;
    }
    if (m->nfds + m->late_fds > max_fds || m->ctrunc) {
        if (!max_fds)
            p_fail(c, step, "reply carries %d fd(s) where the request gave no fd buffer: "
                   "libvfio-user's recvmsg sees MSG_CTRUNC and fails (-EFAULT)",
                   m->nfds + m->late_fds);
        else
            p_fail(c, step, "reply carries %d fds, room for %d", m->nfds + m->late_fds,
                   max_fds);
        goto bad;
    }
    return 0;
bad:
    p_msg_free(m);
    return -1;
}

static int l_version(struct p_ctx *c)
{
    const char *step = "version";
    uint8_t buf[4 + sizeof(lvu_caps)];
    struct vu_version v = { .major = 0, .minor = 2 };
    memcpy(buf, &v, 4);
    memcpy(buf + 4, lvu_caps, sizeof(lvu_caps));
    struct p_msg m;
    if (xfer(c, step, (uint16_t)0xbada55, VU_CMD_VERSION, buf, sizeof(buf), NULL, 0, 1u << 20, 0,
             &m) < 0)
        return -1;
    int r = -1;
    struct vu_version sv = { 0 };
    if (m.len < sizeof(sv)) {
        p_fail(c, step, "\"invalid size %u\"", m.len);
        goto out;
    }
    memcpy(&sv, m.body, sizeof(sv));
    if (sv.major != 0 || sv.minor > 2) {
        p_fail(c, step, "server %u.%u: \"unsupported server major/minor\"", sv.major, sv.minor);
        goto out;
    }
    c->max_msg_fds = 1;
    c->max_xfer = 1u << 20;
    if (m.len > sizeof(sv)) {
        if (m.body[m.len - 1] != '\0') {
            p_fail(c, step, "\"ignoring invalid JSON from server\" (not NUL-terminated) is fatal");
            goto out;
        }
        struct p_json j;
        char why[128];
        if (p_json_parse((const char *)m.body + 4, &j, why, sizeof(why)) < 0) {
            p_fail(c, step, "\"failed to parse server JSON\": %s", why);
            goto out;
        }
        enum p_jtype t;
        uint64_t u;
        bool isu;
        if (p_json_get(&j, "capabilities.max_msg_fds", &t, &u, &isu, NULL)) {
            if (t != P_J_NUM || !isu) {
                p_fail(c, step, "max_msg_fds is not an integer");
                goto out;
            }
            c->max_msg_fds = (uint32_t)u;
        }
        if (p_json_get(&j, "capabilities.max_data_xfer_size", &t, &u, &isu, NULL)) {
            if (t != P_J_NUM || !isu) {
                p_fail(c, step, "max_data_xfer_size is not an integer");
                goto out;
            }
            c->max_xfer = (uint32_t)u;
        }
    }
    p_ok(c, step, "proposed 0.2, max_data_xfer_size 1024; reply 0.%u, server max_msg_fds %u",
         sv.minor, c->max_msg_fds);
    r = 0;
out:
    p_msg_free(&m);
    return r;
}

static int l_get_info(struct p_ctx *c, struct vu_device_info *out)
{
    struct vu_device_info di = { .argsz = sizeof(di) };
    struct p_msg m;
    if (xfer(c, "get_info", 0xb10c, VU_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0, sizeof(di),
             0, &m) < 0)
        return -1;
    memset(out, 0, sizeof(*out));
    memcpy(out, m.body, m.len);
    p_msg_free(&m);
    return 0;
}

static int l_region_info(struct p_ctx *c, uint32_t index)
{
    char step[32];
    snprintf(step, sizeof(step), "region_info %u", index);
    struct p_region *r = &c->reg[index];
    struct vu_region_info ri = { .argsz = sizeof(ri), .index = index }, rep = { 0 };
    struct p_msg m;
    /* first ask: no fd buffer */
    if (xfer(c, step, 0xabcd, VU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0,
             sizeof(ri), 0, &m) < 0)
        return -1;
    memcpy(&rep, m.body, m.len < sizeof(rep) ? m.len : sizeof(rep));
    if (rep.argsz > sizeof(ri)) {
        uint32_t size = rep.argsz;
        p_msg_free(&m);
        if (size > 65536)
            return p_fail(c, step, "argsz %u is implausible", size);
        uint8_t *b = calloc(1, size);
        if (!b)
            return p_fail(c, step, "out of memory");
        ri.argsz = size;
        memcpy(b, &ri, sizeof(ri));
        int rc = xfer(c, step, 0xabcd, VU_CMD_DEVICE_GET_REGION_INFO, b, size, NULL, 0, size,
                      P_MAX_AREAS, &m);
        free(b);
        if (rc < 0)
            return -1;
        memcpy(&rep, m.body, m.len < sizeof(rep) ? m.len : sizeof(rep));
        if (rep.argsz != size) {
            p_msg_free(&m);
            return p_fail(c, step, "full reply argsz %u, asked %u: assert fails", rep.argsz,
                          size);
        }
    }
    r->valid = true;
    r->flags = rep.flags;
    r->size = rep.size;
    r->offset = rep.offset;
    r->argsz = rep.argsz;
    char why[128];
    if (p_parse_caps(m.body, m.len, r, why, sizeof(why)) < 0) {
        p_msg_free(&m);
        return p_fail(c, step, "%s", why);
    }
    if (r->has_msix_mappable) {
        p_msg_free(&m);
        return p_fail(c, step, "cap id 3 (MSIX_MAPPABLE): the sample client knows only sparse "
                      "mmap and type caps: \"bad VFIO cap ID\"");
    }
    r->nfds = m.nfds + m.late_fds;
    for (int i = 0; i < r->nfds; i++) {
        r->fds[i] = m.fds[i];
        m.fds[i] = -1;
    }
    m.nfds = m.late_fds = 0;
    p_msg_free(&m);
    if (r->has_sparse && (uint32_t)r->nfds != r->nr_areas)
        return p_fail(c, step, "sparse cap with %u areas but %d fds: assert(nr_fds == "
                      "nr_areas) fails", r->nr_areas, r->nfds);
    p_ok(c, step, "size %#llx flags %#x argsz %u%s, %d fds", (unsigned long long)r->size,
         r->flags, r->argsz, r->has_sparse ? " sparse" : "", r->nfds);
    return 0;
}

static int l_map_region(struct p_ctx *c, uint32_t index)
{
    /* the sample maps sparse areas only, each with its own fd */
    struct p_region *r = &c->reg[index];
    for (uint32_t i = 0; r->has_sparse && i < r->nr_areas; i++)
        if (p_map_area(c, index, r->fds[i], r->areas[i].offset, r->areas[i].size) < 0)
            return -1;
    return 0;
}

static int l_irq_info(struct p_ctx *c, uint32_t index, struct vu_irq_info *out)
{
    char step[32];
    snprintf(step, sizeof(step), "irq_info %u", index);
    struct vu_irq_info ii = { .argsz = sizeof(ii), .index = index };
    struct p_msg m;
    if (xfer(c, step, 0x1bad, VU_CMD_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii), NULL, 0, sizeof(ii), 0,
             &m) < 0)
        return -1;
    memset(out, 0, sizeof(*out));
    memcpy(out, m.body, m.len);
    p_msg_free(&m);
    p_ok(c, step, "count %u flags %#x", out->count, out->flags);
    return 0;
}

static int l_set_irqs(struct p_ctx *c, uint32_t index, uint32_t flags, uint32_t start,
                      uint32_t count, const int *fds)
{
    struct vu_irq_set s = { .argsz = sizeof(s), .flags = flags, .index = index, .start = start,
                            .count = count };
    struct p_msg m;
    int n = (flags & VU_IRQ_SET_DATA_EVENTFD) ? (int)count : 0;
    if (n > (int)c->max_msg_fds)
        return p_fail(c, "set_irqs", "%d fds exceed the server's max_msg_fds %u", n,
                      c->max_msg_fds);
    if (xfer(c, "set_irqs", 0x1bae, VU_CMD_DEVICE_SET_IRQS, &s, sizeof(s), fds, n, 0, 0, &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int l_region_read(struct p_ctx *c, uint32_t region, uint64_t off, void *buf, uint32_t len)
{
    if (len > c->max_xfer)
        return p_fail(c, "region_read", "%u bytes exceed the server's max_data_xfer_size", len);
    struct vu_region_access a = { .offset = off, .region = region, .count = len };
    struct p_msg m;
    if (xfer(c, "region_read", lvu_access_id--, VU_CMD_REGION_READ, &a, sizeof(a), NULL, 0,
             (uint32_t)sizeof(a) + len, 0, &m) < 0)
        return -1;
    if (m.len != sizeof(a) + len) {
        p_msg_free(&m);
        return p_fail(c, "region_read", "reply %u bytes for %u asked", m.len, len);
    }
    memcpy(buf, m.body + sizeof(a), len);
    p_msg_free(&m);
    return 0;
}

static int l_region_write(struct p_ctx *c, uint32_t region, uint64_t off, const void *buf,
                          uint32_t len)
{
    uint8_t b[P_WRITE_BODY];
    const uint32_t asz = sizeof(struct vu_region_access);
    if (p_pack_write(c, b, region, off, buf, len) < 0)
        return -1;
    struct p_msg m;
    if (xfer(c, "region_write", lvu_access_id--, VU_CMD_REGION_WRITE, b,
             (uint32_t)asz + len, NULL, 0, asz, 0, &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int l_dma_map(struct p_ctx *c, int fd, uint64_t fd_off, uint64_t iova, uint64_t size)
{
    struct vu_dma_map d = p_dma_map_rw(fd_off, iova, size);
    struct p_msg m;
    if (xfer(c, "dma_map", 0x1000, VU_CMD_DMA_MAP, &d, sizeof(d), &fd, 1, 0, 0, &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int l_dma_unmap(struct p_ctx *c, int fd, uint64_t iova, uint64_t size)
{
    struct vu_dma_unmap d = { .argsz = sizeof(d), .address = iova, .size = size };
    struct p_msg m;
    if (xfer(c, "dma_unmap", 0x1001, VU_CMD_DMA_UNMAP, &d, sizeof(d), NULL, 0, sizeof(d), 0,
             &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int l_reset(struct p_ctx *c)
{
    struct p_msg m;
    if (xfer(c, "reset", 1, VU_CMD_DEVICE_RESET, NULL, 0, NULL, 0, 0, 0, &m) < 0)
        return -1;
    p_msg_free(&m);
    p_ok(c, "reset", "DEVICE_RESET done");
    return 0;
}

const struct p_ops p_lvu_ops = {
    .name = "lvu",
    .what = "libvfio-user samples/client style",
    .version = l_version,
    .get_info = l_get_info,
    .region_info = l_region_info,
    .map_region = l_map_region,
    .irq_info = l_irq_info,
    .set_irqs = l_set_irqs,
    .region_read = l_region_read,
    .region_write = l_region_write,
    .dma_map = l_dma_map,
    .dma_unmap = l_dma_unmap,
    .reset = l_reset,
    .reset_when = P_RESET_IF_FLAG,
    .irq_kind = P_IRQ_INTX,
    .nvme_msix = false,
    .dma_size = 1u << 20,
    .region_mask = 0,
    .irq_mask = 0x1f,
};
