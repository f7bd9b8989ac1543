/* SPDX-License-Identifier: MIT */
/*
 * pers_spdk.c - SPDK's NVMe-over-vfio-user initiator (lib/vfio_user/host/
 * vfio_user.c, vfio_user_pci.c, lib/nvme/nvme_vfio_user.c).
 *
 * msg_id 0 in every message; one request at a time. A reply's header is
 * read with one recvmsg (with room for 8 fds: more is -ENOTSUP), its error
 * flag makes the request fail, its payload is read with one read() into a
 * 4096-byte buffer and must fit the caller's buffer. VERSION: 20 bytes, 0.1,
 * no JSON; the reply is not inspected. GET_REGION_INFO: argsz 4064 and a
 * 4064-byte body, every index walked, any error fatal. Sparse areas are
 * mapped with fds[i] for area i (one fd per area). DMA_MAP and DMA_UNMAP
 * both carry the memory's fd. No SET_IRQS, no DEVICE_RESET: it polls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pers.h"

#define SPDK_MAX_PAYLOAD 4096u
#define SPDK_MAX_FDS 8

static int xfer(struct p_ctx *c, const char *step, uint16_t cmd, const void *payload,
                uint32_t len, const int *fds, int nfds, uint32_t buf_len, struct p_msg *m)
{
    if (p_send(c, step, 0, cmd, payload, len, fds, nfds) < 0 || p_recv(c, step, m) < 0)
        return -1;
    if (m->ctrunc || m->nfds > SPDK_MAX_FDS) {
        p_fail(c, step, "reply carries more than %d fds: recvmsg MSG_CTRUNC, -ENOTSUP",
               SPDK_MAX_FDS);
        goto bad;
    }
    if (m->late_fds) {
        p_fail(c, step, "%d fds arrived after the header; SPDK takes fds only with the header "
               "(its payload read() drops them)", m->late_fds);
        goto bad;
    }
    if (m->hdr.flags & VU_F_ERROR) {
        p_fail(c, step, "error reply (%s): SPDK's request fails (\"Command %u return "
               "failure\")", strerror((int)m->hdr.error_no), cmd);
        goto bad;
    }
    if (m->len > SPDK_MAX_PAYLOAD) {
        p_fail(c, step, "reply payload %u bytes overflows SPDK's 4096-byte buffer", m->len);
        goto bad;
    }
    if ((m->hdr.flags & VU_F_TYPE_MASK) != VU_F_TYPE_REPLY) {
        p_fail(c, step, "not a reply");
        goto bad;
    }
    /* DMA_MAP/UNMAP replies are not copied anywhere: no size check there */
    if (cmd != VU_CMD_DMA_MAP && cmd != VU_CMD_DMA_UNMAP && m->len > buf_len) {
        p_fail(c, step, "\"Payload size error sz %u, buf_len %u\": -EIO", m->len, buf_len);
        goto bad;
    }
    return 0;
bad:
    p_msg_free(m);
    return -1;
}

static int s_version(struct p_ctx *c)
{
    struct vu_version v = { .major = 0, .minor = 1 };
    struct p_msg m;
    if (xfer(c, "version", VU_CMD_VERSION, &v, sizeof(v), NULL, 0, SPDK_MAX_PAYLOAD, &m) < 0)
        return -1;
    p_ok(c, "version", "proposed 0.1 in 20 bytes without JSON; reply %u bytes accepted",
         m.hdr.msg_size);
    p_msg_free(&m);
    return 0;
}

static int s_get_info(struct p_ctx *c, struct vu_device_info *out)
{
    struct vu_device_info di = { .argsz = sizeof(di) };
    struct p_msg m;
    if (xfer(c, "get_info", VU_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0, sizeof(di), &m) < 0)
        return -1;
    memset(out, 0, sizeof(*out));
    memcpy(out, m.body, m.len < sizeof(*out) ? m.len : sizeof(*out));
    p_msg_free(&m);
    return 0;
}

static int s_region_info(struct p_ctx *c, uint32_t index)
{
    char step[32];
    snprintf(step, sizeof(step), "region_info %u", index);
    const uint32_t len = 4096;
    uint8_t *buf = calloc(1, len);
    if (!buf)
        return p_fail(c, step, "out of memory");
    struct vu_region_info ri = { .argsz = len - sizeof(ri), .index = index };
    memcpy(buf, &ri, sizeof(ri));
    struct p_msg m;
    int rc = xfer(c, step, VU_CMD_DEVICE_GET_REGION_INFO, buf, ri.argsz, NULL, 0, len, &m);
    free(buf);
    if (rc < 0)
        return p_fail(c, step, "\"Device setup bar -14 failed\": the attach ends");
    struct p_region *r = &c->reg[index];
    struct vu_region_info rep = { 0 };
    memcpy(&rep, m.body, m.len < sizeof(rep) ? m.len : sizeof(rep));
    r->valid = true;
    r->flags = rep.flags;
    r->size = rep.size;
    r->offset = rep.offset;
    r->argsz = rep.argsz;
    char why[128];
    /* SPDK looks caps up only when FLAG_CAPS is set */
    if (p_parse_caps(m.body, m.len, r, why, sizeof(why)) < 0) {
        p_msg_free(&m);
        return p_fail(c, step, "%s", why);
    }
    r->nfds = m.nfds;
    for (int i = 0; i < m.nfds; i++) {
        r->fds[i] = m.fds[i];
        m.fds[i] = -1;
    }
    m.nfds = 0;
    p_msg_free(&m);
    p_ok(c, step, "size %#llx flags %#x%s (%u areas), %d fds", (unsigned long long)r->size,
         r->flags, r->has_sparse ? " sparse" : "", r->nr_areas, r->nfds);
    return 0;
}

static int s_map_region(struct p_ctx *c, uint32_t index)
{
    struct p_region *r = &c->reg[index];
    if (r->has_sparse) {
        if (!r->nfds) {
            p_note(c, "mmap", "region %u: sparse cap but no fd: SPDK skips the mmap", index);
            return 0;
        }
        /* area i is mapped with fds[i]; a missing fd reads as 0 (its stdin) */
        for (uint32_t i = 0, j = 0; i < r->nr_areas; i++) {
            if (!r->areas[i].size)
                continue;
            if ((int)i >= r->nfds)
                return p_fail(c, "mmap", "region %u area %u has no fd of its own (%d fds for %u "
                              "areas): SPDK mmaps fd 0 and fails (\"Device SPARSE MMAP "
                              "failed\")", index, i, r->nfds, r->nr_areas);
            if (p_map_area(c, index, r->fds[i], r->areas[i].offset, r->areas[i].size) < 0)
                return -1;
            j++;
        }
        return 0;
    }
    if (!r->nfds)
        return p_fail(c, "mmap", "region %u has MMAP but no fd: SPDK mmaps fd 0 and fails "
                      "(\"Device Region MMAP failed\")", index);
    return p_map_area(c, index, r->fds[0], 0, r->size);
}

static int s_irq_info(struct p_ctx *c, uint32_t index, struct vu_irq_info *out)
{
    return p_fail(c, "irq_info", "internal: SPDK never asks for IRQ info");
}

static int s_set_irqs(struct p_ctx *c, uint32_t index, uint32_t flags, uint32_t start,
                      uint32_t count, const int *fds)
{
    return p_fail(c, "set_irqs", "internal: SPDK never sets IRQs");
}

static int s_region_read(struct p_ctx *c, uint32_t region, uint64_t off, void *buf, uint32_t len)
{
    struct vu_region_access a = { .offset = off, .region = region, .count = len };
    struct p_msg m;
    if (xfer(c, "region_read", VU_CMD_REGION_READ, &a, sizeof(a), NULL, 0,
             (uint32_t)sizeof(a) + len, &m) < 0)
        return -1;
    /* SPDK copies len bytes from after the access header, whatever came */
    memset(buf, 0, len);
    if (m.len > sizeof(a))
        memcpy(buf, m.body + sizeof(a), m.len - sizeof(a) < len ? m.len - sizeof(a) : len);
    if (m.len < sizeof(a) + len)
        p_note(c, "region_read", "reply has %u data bytes for %u asked; SPDK uses stale bytes",
               m.len > sizeof(a) ? m.len - (uint32_t)sizeof(a) : 0, len);
    p_msg_free(&m);
    return 0;
}

static int s_region_write(struct p_ctx *c, uint32_t region, uint64_t off, const void *buf,
                          uint32_t len)
{
    uint8_t b[P_WRITE_BODY];
    const uint32_t asz = sizeof(struct vu_region_access);
    if (p_pack_write(c, b, region, off, buf, len) < 0)
        return -1;
    struct p_msg m;
    if (xfer(c, "region_write", VU_CMD_REGION_WRITE, b, (uint32_t)asz + len, NULL, 0,
             (uint32_t)asz + len, &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int s_dma_map(struct p_ctx *c, int fd, uint64_t fd_off, uint64_t iova, uint64_t size)
{
    struct vu_dma_map d = p_dma_map_rw(fd_off, iova, size);
    struct p_msg m;
    if (xfer(c, "dma_map", VU_CMD_DMA_MAP, &d, sizeof(d), &fd, 1, sizeof(d), &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int s_dma_unmap(struct p_ctx *c, int fd, uint64_t iova, uint64_t size)
{
    struct vu_dma_unmap d = { .argsz = sizeof(d), .address = iova, .size = size };
    struct p_msg m;
    /* SPDK attaches the memory's fd to DMA_UNMAP as well */
    if (xfer(c, "dma_unmap", VU_CMD_DMA_UNMAP, &d, sizeof(d), &fd, 1, sizeof(d), &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

const struct p_ops p_spdk_ops = {
    .name = "spdk",
    .what = "SPDK v25.09 NVMe vfio-user initiator",
    .version = s_version,
    .get_info = s_get_info,
    .region_info = s_region_info,
    .map_region = s_map_region,
    .irq_info = s_irq_info,
    .set_irqs = s_set_irqs,
    .region_read = s_region_read,
    .region_write = s_region_write,
    .dma_map = s_dma_map,
    .dma_unmap = s_dma_unmap,
    .reset = NULL,
    .reset_when = P_RESET_NEVER,
    .irq_kind = P_IRQ_NONE,
    .nvme_msix = false,
    .requires_bar0_doorbells = true,
    .iova_is_vaddr = true,
    .dma_size = 256u << 20,
    .region_mask = 0,
    .irq_mask = 1u << 31,      /* asks about none (num_irqs is far below 31) */
};
