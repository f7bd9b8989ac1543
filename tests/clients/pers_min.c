/* SPDX-License-Identifier: MIT */
/*
 * pers_min.c - a minimal client written from the protocol text alone:
 * VERSION 0.0 with `{}` (first connection) or with no JSON at all
 * (reconnects), so every capability takes its spec default (max_msg_fds 1,
 * max_data_xfer_size 1 MiB); exact-size structures; ids counting up; it
 * checks what the spec promises: reply major equal and minor <= proposed,
 * a capability set that is a subset of the proposed (empty) one, ids and
 * commands echoed, replies no larger than argsz allows, at most
 * max_msg_fds (1) fds in any reply, and it treats every error as fatal.
 * On the edu it uses INTx (with UNMASK), on the nvme all MSI-X vectors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pers.h"

static int xfer(struct p_ctx *c, const char *step, uint16_t cmd, const void *payload,
                uint32_t len, const int *fds, int nfds, uint32_t max_payload, struct p_msg *m)
{
    uint16_t id = c->next_id++;
    if (p_send(c, step, id, cmd, payload, len, fds, nfds) < 0 || p_recv(c, step, m) < 0)
        return -1;
    if (p_check_reply(c, step, m, cmd, id) < 0)
        goto bad;
    if (m->hdr.flags & VU_F_ERROR) {
        p_fail(c, step, "error reply: %s", strerror((int)m->hdr.error_no));
        goto bad;
    }
    if (m->len > max_payload) {
        p_fail(c, step, "reply payload %u bytes, more than the %u the request allows", m->len,
               max_payload);
        goto bad;
    }
    /* the spec default of max_msg_fds is 1; this client proposed nothing */
    if (m->nfds + m->late_fds > 1 || m->ctrunc) {
        p_fail(c, step, "reply carries %d fds; the client's max_msg_fds is the default 1",
               m->nfds + m->late_fds);
        goto bad;
    }
    return 0;
bad:
    p_msg_free(m);
    return -1;
}

static int m_version(struct p_ctx *c)
{
    const char *step = "version";
    bool with_json = c->round % 2 == 0;
    uint8_t buf[4 + 3];
    struct vu_version v = { .major = 0, .minor = 0 };
    memcpy(buf, &v, 4);
    memcpy(buf + 4, "{}", 3);
    struct p_msg m;
    if (xfer(c, step, VU_CMD_VERSION, buf, with_json ? 7 : 4, NULL, 0, 4096, &m) < 0)
        return -1;
    int r = -1;
    struct vu_version sv = { 0 };
    if (m.len < 4) {
        p_fail(c, step, "reply payload %u bytes, no version", m.len);
        goto out;
    }
    memcpy(&sv, m.body, 4);
    if (sv.major != 0 || sv.minor > 0) {
        p_fail(c, step, "reply %u.%u to a 0.0 proposal", sv.major, sv.minor);
        goto out;
    }
    if (m.len > 4) {
        if (m.body[m.len - 1] != '\0') {
            p_fail(c, step, "reply JSON is not NUL-terminated");
            goto out;
        }
        struct p_json j;
        char why[128];
        if (p_json_parse((const char *)m.body + 4, &j, why, sizeof(why)) < 0) {
            p_fail(c, step, "reply JSON invalid: %s", why);
            goto out;
        }
        enum p_jtype t;
        p_json_get(&j, "capabilities", &t, NULL, NULL, NULL);
        if (t != P_J_NONE && t != P_J_OBJ) {
            p_fail(c, step, "\"capabilities\" is not an object");
            goto out;
        }
        int extra = p_json_children(&j, "capabilities");
        if (extra) {
            p_fail(c, step, "reply offers %d capabilities; the client proposed none, and the "
                   "reply's set must be a subset of the proposed one", extra);
            goto out;
        }
    }
    p_ok(c, step, "proposed 0.0 %s; reply %u bytes, 0.%u", with_json ? "with {}" : "without JSON",
         m.hdr.msg_size, sv.minor);
    r = 0;
out:
    p_msg_free(&m);
    return r;
}

static int m_get_info(struct p_ctx *c, struct vu_device_info *out)
{
    struct vu_device_info di = { .argsz = sizeof(di) };
    struct p_msg m;
    if (xfer(c, "get_info", VU_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0, sizeof(di), &m) < 0)
        return -1;
    if (m.len != sizeof(di)) {
        p_msg_free(&m);
        return p_fail(c, "get_info", "reply payload %u bytes, expected %zu", m.len, sizeof(di));
    }
    memcpy(out, m.body, sizeof(*out));
    p_msg_free(&m);
    return 0;
}

static int m_region_info(struct p_ctx *c, uint32_t index)
{
    char step[32];
    snprintf(step, sizeof(step), "region_info %u", index);
    struct p_region *r = &c->reg[index];
    uint32_t argsz = sizeof(struct vu_region_info);
    struct p_msg m;
    for (int tries = 0;; tries++) {
        /* exact size: the payload is argsz bytes, zero beyond the struct */
        uint8_t *b = calloc(1, argsz);
        if (!b)
            return p_fail(c, step, "out of memory");
        struct vu_region_info ri = { .argsz = argsz, .index = index };
        memcpy(b, &ri, sizeof(ri));
        int rc = xfer(c, step, VU_CMD_DEVICE_GET_REGION_INFO, b, argsz, NULL, 0, argsz, &m);
        free(b);
        if (rc < 0)
            return -1;
        struct vu_region_info rep = { 0 };
        if (m.len < sizeof(rep)) {
            p_msg_free(&m);
            return p_fail(c, step, "reply payload %u bytes", m.len);
        }
        memcpy(&rep, m.body, sizeof(rep));
        if (rep.index != index) {
            p_msg_free(&m);
            return p_fail(c, step, "reply is for index %u", rep.index);
        }
        if (rep.argsz > argsz && tries == 0) {
            if (m.len != sizeof(rep)) {
                p_msg_free(&m);
                return p_fail(c, step, "argsz %u too small for the caps, yet the reply carries "
                              "%u bytes", argsz, m.len);
            }
            argsz = rep.argsz;
            p_msg_free(&m);
            if (argsz > 65536)
                return p_fail(c, step, "argsz %u is implausible", argsz);
            continue;
        }
        if (rep.argsz > argsz) {
            p_msg_free(&m);
            return p_fail(c, step, "the server asks for argsz %u after being given %u",
                          rep.argsz, argsz);
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
        if (!rep.size && rep.flags) {
            p_msg_free(&m);
            return p_fail(c, step, "size 0 with flags %#x", rep.flags);
        }
        r->nfds = m.nfds + m.late_fds;
        if (r->nfds) {
            r->fds[0] = m.fds[0];
            m.nfds = m.late_fds = 0;
        }
        p_msg_free(&m);
        p_ok(c, step, "size %#llx flags %#x argsz %u%s, %d fd", (unsigned long long)r->size,
             r->flags, r->argsz, r->has_sparse ? " sparse" : "", r->nfds);
        return 0;
    }
}

static int m_map_region(struct p_ctx *c, uint32_t index)
{
    struct p_region *r = &c->reg[index];
    if (!r->nfds) {
        p_note(c, "mmap", "region %u has MMAP but no fd: accessed by messages", index);
        return 0;
    }
    if (!r->has_sparse)
        return p_map_area(c, index, r->fds[0], 0, r->size);
    for (uint32_t i = 0; i < r->nr_areas; i++)
        if (r->areas[i].size &&
            p_map_area(c, index, r->fds[0], r->areas[i].offset, r->areas[i].size) < 0)
            return -1;
    return 0;
}

static int m_irq_info(struct p_ctx *c, uint32_t index, struct vu_irq_info *out)
{
    char step[32];
    snprintf(step, sizeof(step), "irq_info %u", index);
    struct vu_irq_info ii = { .argsz = sizeof(ii), .index = index };
    struct p_msg m;
    if (xfer(c, step, VU_CMD_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii), NULL, 0, sizeof(ii), &m) < 0)
        return -1;
    if (m.len != sizeof(*out)) {
        p_msg_free(&m);
        return p_fail(c, step, "reply payload %u bytes", m.len);
    }
    memcpy(out, m.body, sizeof(*out));
    p_msg_free(&m);
    if (out->index != index)
        return p_fail(c, step, "reply is for index %u", out->index);
    p_ok(c, step, "count %u flags %#x", out->count, out->flags);
    return 0;
}

static int m_set_irqs(struct p_ctx *c, uint32_t index, uint32_t flags, uint32_t start,
                      uint32_t count, const int *fds)
{
    struct p_msg m;
    struct vu_irq_set s = { .argsz = sizeof(s), .flags = flags, .index = index, .start = start,
                            .count = count };
    if (!(flags & VU_IRQ_SET_DATA_EVENTFD)) {
        if (xfer(c, "set_irqs", VU_CMD_DEVICE_SET_IRQS, &s, sizeof(s), NULL, 0, 0, &m) < 0)
            return -1;
        p_msg_free(&m);
        return 0;
    }
    /* the server's max_msg_fds is the default 1: one vector per message */
    for (uint32_t i = 0; i < count; i++) {
        s.start = start + i;
        s.count = 1;
        if (xfer(c, "set_irqs", VU_CMD_DEVICE_SET_IRQS, &s, sizeof(s), fds + i, 1, 0, &m) < 0)
            return -1;
        p_msg_free(&m);
    }
    p_ok(c, "set_irqs", "index %u: %u eventfds, one per message", index, count);
    return 0;
}

static int m_region_read(struct p_ctx *c, uint32_t region, uint64_t off, void *buf, uint32_t len)
{
    struct vu_region_access a = { .offset = off, .region = region, .count = len };
    struct p_msg m;
    if (xfer(c, "region_read", VU_CMD_REGION_READ, &a, sizeof(a), NULL, 0,
             (uint32_t)sizeof(a) + len, &m) < 0)
        return -1;
    struct vu_region_access ra = { 0 };
    memcpy(&ra, m.body, m.len < sizeof(ra) ? m.len : sizeof(ra));
    if (m.len != sizeof(a) + len || ra.count != len || ra.offset != off || ra.region != region) {
        p_msg_free(&m);
        return p_fail(c, "region_read", "reply does not echo the access (%u bytes, count %u)",
                      m.len, ra.count);
    }
    memcpy(buf, m.body + sizeof(a), len);
    p_msg_free(&m);
    return 0;
}

static int m_region_write(struct p_ctx *c, uint32_t region, uint64_t off, const void *buf,
                          uint32_t len)
{
    uint8_t b[P_WRITE_BODY];
    const uint32_t asz = sizeof(struct vu_region_access);
    if (p_pack_write(c, b, region, off, buf, len) < 0)
        return -1;
    struct p_msg m;
    if (xfer(c, "region_write", VU_CMD_REGION_WRITE, b, (uint32_t)asz + len, NULL, 0,
             asz, &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int m_dma_map(struct p_ctx *c, int fd, uint64_t fd_off, uint64_t iova, uint64_t size)
{
    struct vu_dma_map d = p_dma_map_rw(fd_off, iova, size);
    struct p_msg m;
    if (xfer(c, "dma_map", VU_CMD_DMA_MAP, &d, sizeof(d), &fd, 1, 0, &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int m_dma_unmap(struct p_ctx *c, int fd, uint64_t iova, uint64_t size)
{
    struct vu_dma_unmap d = { .argsz = sizeof(d), .address = iova, .size = size };
    struct p_msg m;
    if (xfer(c, "dma_unmap", VU_CMD_DMA_UNMAP, &d, sizeof(d), NULL, 0, sizeof(d), &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int m_reset(struct p_ctx *c)
{
    struct p_msg m;
    if (xfer(c, "reset", VU_CMD_DEVICE_RESET, NULL, 0, NULL, 0, 0, &m) < 0)
        return -1;
    p_msg_free(&m);
    p_ok(c, "reset", "DEVICE_RESET done");
    return 0;
}

const struct p_ops p_min_ops = {
    .name = "min",
    .what = "minimal spec-only client",
    .version = m_version,
    .get_info = m_get_info,
    .region_info = m_region_info,
    .map_region = m_map_region,
    .irq_info = m_irq_info,
    .set_irqs = m_set_irqs,
    .region_read = m_region_read,
    .region_write = m_region_write,
    .dma_map = m_dma_map,
    .dma_unmap = m_dma_unmap,
    .reset = m_reset,
    .reset_when = P_RESET_IF_FLAG,
    .irq_kind = P_IRQ_INTX,
    .nvme_msix = true,
    .dma_size = 1u << 20,
    .region_mask = 0,
    .irq_mask = 0,
};
