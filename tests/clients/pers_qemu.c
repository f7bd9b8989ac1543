/* SPDX-License-Identifier: MIT */
/*
 * pers_qemu.c - QEMU 11's vfio-user-pci (hw/vfio-user/{proxy,device,
 * container}.c, hw/vfio/device.c): ids from one process-wide counter;
 * VERSION 0.0 with its ~200-byte JSON; every reply is read into a buffer of
 * a known size (the request's own buffer unless said otherwise) and a
 * larger reply is an error ("reply larger than recv buffer"); fds are
 * accepted only where a buffer for them was given (GET_REGION_INFO, one)
 * ("unexpected FDs"); error replies are checked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pers.h"

#define QEMU_MAX_MAX_FDS 16u
#define QEMU_DEF_MAX_FDS 8u            /* assumed when the server omits it */
#define QEMU_MAX_MAX_XFER (64u << 20)
#define QEMU_DEF_MAP_MAX 65535u
#define QEMU_MAX_BITMAP (256ull << 20)

static uint16_t qemu_next_id;          /* QEMU's counter is static: it survives reconnects */

static const char qemu_caps[] =
    "{\"capabilities\": {\"max_msg_fds\": 16, \"max_data_xfer_size\": 1048576, "
    "\"pgsizes\": 4096, \"max_dma_maps\": 65535, "
    "\"migration\": {\"pgsize\": 4096, \"max_bitmap_size\": 268435456}, "
    "\"write_multiple\": true}}";

/* Send, then receive the reply into "a buffer of rsize bytes" (header
 * included) with room for max_fds fds. */
static int xfer(struct p_ctx *c, const char *step, uint16_t cmd, const void *payload,
                uint32_t len, const int *fds, int nfds, uint32_t rsize, int max_fds,
                struct p_msg *m)
{
    uint16_t id = qemu_next_id++;
    if (p_send(c, step, id, cmd, payload, len, fds, nfds) < 0 || p_recv(c, step, m) < 0)
        return -1;
    if (p_check_reply(c, step, m, cmd, id) < 0)
        goto bad;
    if (m->nfds + m->late_fds > max_fds || m->ctrunc) {
        p_fail(c, step, "reply carries %d fds, QEMU had room for %d: \"unexpected FDs\"",
               m->nfds + m->late_fds, max_fds);
        goto bad;
    }
    if (m->hdr.msg_size > rsize) {
        p_fail(c, step, "reply is %u bytes, QEMU's receive buffer %u: \"reply larger than recv "
               "buffer\"", m->hdr.msg_size, rsize);
        goto bad;
    }
    return 0;
bad:
    p_msg_free(m);
    return -1;
}

static int err_reply(struct p_ctx *c, const char *step, struct p_msg *m)
{
    if (!(m->hdr.flags & VU_F_ERROR))
        return 0;
    p_fail(c, step, "error reply: %s", strerror((int)m->hdr.error_no));
    p_msg_free(m);
    return -1;
}

static int q_version(struct p_ctx *c)
{
    const char *step = "version";
    uint32_t jl = (uint32_t)sizeof(qemu_caps);      /* NUL included */
    uint8_t buf[4 + sizeof(qemu_caps)];
    struct vu_version v = { .major = 0, .minor = 0 };
    memcpy(buf, &v, 4);
    memcpy(buf + 4, qemu_caps, jl);
    struct p_msg m;
    uint32_t size = VU_HDR_SIZE + 4 + jl;
    if (xfer(c, step, VU_CMD_VERSION, buf, 4 + jl, NULL, 0, size, 0, &m) < 0)
        return -1;
    if (err_reply(c, step, &m) < 0)
        return -1;
    int r = -1;
    struct vu_version sv = { 0 };
    if (m.len < 5) {
        p_fail(c, step, "reply has no JSON (%u payload bytes): QEMU reads the byte before it "
               "as the NUL and parses nothing: \"malformed capabilities\"", m.len);
        goto out;
    }
    memcpy(&sv, m.body, 4);
    if (sv.major != 0 || sv.minor > 0) {
        p_fail(c, step, "reply version %u.%u: \"incompatible server version\" (QEMU takes 0.0)",
               sv.major, sv.minor);
        goto out;
    }
    const char *js = (const char *)m.body + 4;
    if (m.body[m.len - 1] != '\0') {
        p_fail(c, step, "JSON not NUL-terminated: \"corrupt version reply\"");
        goto out;
    }
    struct p_json j;
    char why[128];
    if (p_json_parse(js, &j, why, sizeof(why)) < 0) {
        p_fail(c, step, "\"malformed capabilities\": %s", why);
        goto out;
    }
    enum p_jtype t;
    uint64_t u;
    bool isu, b;
    c->max_msg_fds = QEMU_DEF_MAX_FDS;
    c->max_xfer = 1u << 20;
    p_json_get(&j, "capabilities", &t, NULL, NULL, NULL);
    if (t != P_J_NONE && t != P_J_OBJ) {
        p_fail(c, step, "\"malformed capabilities\" (not an object)");
        goto out;
    }
    if (p_json_get(&j, "capabilities.max_msg_fds", &t, &u, &isu, NULL)) {
        if (t != P_J_NUM || !isu || u > QEMU_MAX_MAX_FDS) {
            p_fail(c, step, "\"malformed max_msg_fds\" (QEMU takes an integer <= 16)");
            goto out;
        }
        c->max_msg_fds = (uint32_t)u;
    }
    if (p_json_get(&j, "capabilities.max_data_xfer_size", &t, &u, &isu, NULL)) {
        if (t != P_J_NUM || !isu || u > QEMU_MAX_MAX_XFER) {
            p_fail(c, step, "\"malformed max_data_xfer_size\"");
            goto out;
        }
        c->max_xfer = (uint32_t)u;
    }
    if (p_json_get(&j, "capabilities.pgsizes", &t, &u, &isu, NULL) &&
        (t != P_J_NUM || !isu || (u & 4095))) {
        p_fail(c, step, "pgsizes %#llx: QEMU needs an integer with the low 12 bits clear",
               (unsigned long long)u);
        goto out;
    }
    if (p_json_get(&j, "capabilities.max_dma_maps", &t, &u, &isu, NULL) &&
        (t != P_J_NUM || !isu || u > QEMU_DEF_MAP_MAX)) {
        p_fail(c, step, "\"max_dma_maps too large\" or malformed");
        goto out;
    }
    if (p_json_get(&j, "capabilities.migration.pgsize", &t, &u, &isu, NULL) &&
        (t != P_J_NUM || !isu || (u & 4095))) {
        p_fail(c, step, "migration.pgsize malformed or too small");
        goto out;
    }
    if (p_json_get(&j, "capabilities.migration.max_bitmap_size", &t, &u, &isu, NULL) &&
        (t != P_J_NUM || !isu || u > QEMU_MAX_BITMAP)) {
        p_fail(c, step, "\"max_bitmap_size too large\" or malformed");
        goto out;
    }
    if (p_json_get(&j, "capabilities.write_multiple", &t, NULL, NULL, &b) && t != P_J_BOOL) {
        p_fail(c, step, "\"malformed write_multiple\"");
        goto out;
    }
    p_ok(c, step, "proposed 0.0 in %u bytes; reply %u bytes (fits), 0.%u, max_msg_fds %u, "
         "max_data_xfer_size %u", size, m.hdr.msg_size, sv.minor, c->max_msg_fds, c->max_xfer);
    r = 0;
out:
    p_msg_free(&m);
    return r;
}

static int q_get_info(struct p_ctx *c, struct vu_device_info *out)
{
    struct vu_device_info di = { .argsz = sizeof(di) };
    struct p_msg m;
    if (xfer(c, "get_info", VU_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0,
             VU_HDR_SIZE + sizeof(di), 0, &m) < 0 || err_reply(c, "get_info", &m) < 0)
        return -1;
    memset(out, 0, sizeof(*out));
    memcpy(out, m.body, m.len < sizeof(*out) ? m.len : sizeof(*out));
    p_msg_free(&m);
    if (out->num_regions > 100 || out->num_irqs > 50)
        return p_fail(c, "get_info", "\"invalid reply\": %u regions, %u irqs", out->num_regions,
                      out->num_irqs);
    return 0;
}

static int q_region_info(struct p_ctx *c, uint32_t index)
{
    char step[32];
    snprintf(step, sizeof(step), "region_info %u", index);
    struct p_region *r = &c->reg[index];
    uint32_t argsz = sizeof(struct vu_region_info);
    for (int tries = 0;; tries++) {
        struct vu_region_info ri = { .argsz = argsz, .index = index };
        struct p_msg m;
        /* the message is always the 32-byte struct; argsz says how much comes back */
        if (xfer(c, step, VU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0,
                 VU_HDR_SIZE + argsz, 1, &m) < 0)
            return -1;
        if (m.hdr.flags & VU_F_ERROR) {
            int e = (int)m.hdr.error_no;
            p_msg_free(&m);
            if (index == VU_PCI_ROM_REGION_INDEX) {
                p_note(c, step, "error reply (%s): QEMU only notes that it has no ROM info",
                       strerror(e));
                return 0;
            }
            return p_fail(c, step, "error reply: %s (QEMU cannot set up the region)",
                          strerror(e));
        }
        struct vu_region_info rep = { 0 };
        memcpy(&rep, m.body, m.len < sizeof(rep) ? m.len : sizeof(rep));
        if (rep.argsz > argsz && tries < 2) {
            argsz = rep.argsz;
            p_msg_free(&m);
            continue;
        }
        if ((rep.flags & VU_REGION_INFO_FLAG_CAPS) &&
            (rep.cap_offset < sizeof(rep) || rep.cap_offset > argsz)) {
            p_msg_free(&m);
            return p_fail(c, step, "cap_offset %u outside [32, %u]: -EINVAL", rep.cap_offset,
                          argsz);
        }
        char why[128];
        r->valid = true;
        r->flags = rep.flags;
        r->size = rep.size;
        r->offset = rep.offset;
        r->argsz = rep.argsz;
        if (p_parse_caps(m.body, m.len, r, why, sizeof(why)) < 0) {
            p_msg_free(&m);
            return p_fail(c, step, "%s", why);
        }
        r->nfds = 0;
        if (m.nfds + m.late_fds == 1) {
            r->fds[0] = m.fds[0];
            r->nfds = 1;
            m.nfds = m.late_fds = 0;
        }
        p_msg_free(&m);
        if ((r->flags & VU_REGION_INFO_FLAG_MMAP) && r->size && !r->nfds &&
            index <= VU_PCI_BAR5_REGION_INDEX)
            p_note(c, step, "MMAP flag but no fd: QEMU falls back to trapped access");
        p_ok(c, step, "size %#llx flags %#x argsz %u%s%s, %d fd", (unsigned long long)r->size,
             r->flags, r->argsz, r->has_sparse ? " sparse" : "",
             r->has_msix_mappable ? " msix-mappable" : "", r->nfds);
        return 0;
    }
}

static int q_map_region(struct p_ctx *c, uint32_t index)
{
    struct p_region *r = &c->reg[index];
    if (!r->nfds)
        return 0;
    if (r->has_sparse) {
        for (uint32_t i = 0; i < r->nr_areas; i++)
            if (r->areas[i].size &&
                p_map_area(c, index, r->fds[0], r->areas[i].offset, r->areas[i].size) < 0)
                return -1;
        return 0;
    }
    /* No sparse cap and the MSI-X table in this BAR without MSIX_MAPPABLE:
     * QEMU cuts the mapping around the table itself. */
    if (c->msix_cap && c->msix_bir == index && !r->has_msix_mappable) {
        uint64_t start = c->msix_table_off & ~0xfffull;
        uint64_t end = (c->msix_table_off + 16ull * c->msix_count + 0xfff) & ~0xfffull;
        if (start && p_map_area(c, index, r->fds[0], 0, start) < 0)
            return -1;
        if (end < r->size && p_map_area(c, index, r->fds[0], end, r->size - end) < 0)
            return -1;
        return 0;
    }
    return p_map_area(c, index, r->fds[0], 0, r->size);
}

static int q_irq_info(struct p_ctx *c, uint32_t index, struct vu_irq_info *out)
{
    char step[32];
    snprintf(step, sizeof(step), "irq_info %u", index);
    struct vu_irq_info ii = { .argsz = sizeof(ii), .index = index };
    struct p_msg m;
    if (xfer(c, step, VU_CMD_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii), NULL, 0,
             VU_HDR_SIZE + sizeof(ii), 0, &m) < 0)
        return -1;
    /* All three queries are optional to QEMU: MSI-X (only whether it is
     * MASKABLE), ERR ("can fail for an old kernel or legacy PCI dev"), REQ
     * (the notifier is left out). */
    if (m.hdr.flags & VU_F_ERROR) {
        p_note(c, step, "error reply (%s): QEMU goes on without it",
               strerror((int)m.hdr.error_no));
        p_msg_free(&m);
        memset(out, 0, sizeof(*out));
        return 0;
    }
    if (err_reply(c, step, &m) < 0)
        return -1;
    memset(out, 0, sizeof(*out));
    memcpy(out, m.body, m.len < sizeof(*out) ? m.len : sizeof(*out));
    p_msg_free(&m);
    p_ok(c, step, "count %u flags %#x", out->count, out->flags);
    return 0;
}

static int q_set_irqs(struct p_ctx *c, uint32_t index, uint32_t flags, uint32_t start,
                      uint32_t count, const int *fds)
{
    const char *step = "set_irqs";
    struct vu_irq_set s = { .argsz = sizeof(s), .flags = flags, .index = index, .start = start,
                            .count = count };
    struct p_msg m;
    if (!(flags & VU_IRQ_SET_DATA_EVENTFD)) {
        if (xfer(c, step, VU_CMD_DEVICE_SET_IRQS, &s, sizeof(s), NULL, 0,
                 VU_HDR_SIZE + sizeof(s), 0, &m) < 0 || err_reply(c, step, &m) < 0)
            return -1;
        p_msg_free(&m);
        return 0;
    }
    /* eventfds in runs of at most the server's max_msg_fds */
    uint32_t chunk = c->max_msg_fds ? c->max_msg_fds : 1, msgs = 0;
    for (uint32_t sent = 0; sent < count; sent += s.count, msgs++) {
        s.start = start + sent;
        s.count = count - sent < chunk ? count - sent : chunk;
        if (xfer(c, step, VU_CMD_DEVICE_SET_IRQS, &s, sizeof(s), fds + sent, (int)s.count,
                 VU_HDR_SIZE + sizeof(s), 0, &m) < 0 || err_reply(c, step, &m) < 0)
            return -1;
        p_msg_free(&m);
    }
    p_ok(c, step, "index %u: %u eventfds in %u messages of <= %u", index, count, msgs, chunk);
    return 0;
}

static bool any_mmap(const struct p_ctx *c)
{
    for (int i = 0; i < P_MAX_REGIONS; i++)
        if (c->reg[i].valid && (c->reg[i].flags & VU_REGION_INFO_FLAG_MMAP))
            return true;
    return false;
}

static int q_region_read(struct p_ctx *c, uint32_t region, uint64_t off, void *buf, uint32_t len)
{
    if (len > c->max_xfer)
        return p_fail(c, "region_read", "%u bytes exceed max_data_xfer_size %u", len,
                      c->max_xfer);
    struct vu_region_access a = { .offset = off, .region = region, .count = len };
    struct p_msg m;
    if (xfer(c, "region_read", VU_CMD_REGION_READ, &a, sizeof(a), NULL, 0,
             VU_HDR_SIZE + sizeof(a) + len, 0, &m) < 0 || err_reply(c, "region_read", &m) < 0)
        return -1;
    struct vu_region_access ra = { 0 };
    memcpy(&ra, m.body, m.len < sizeof(ra) ? m.len : sizeof(ra));
    if (ra.count > len || m.len < sizeof(ra) + ra.count) {
        p_msg_free(&m);
        return p_fail(c, "region_read", "reply count %u for %u asked: -E2BIG", ra.count, len);
    }
    memcpy(buf, m.body + sizeof(ra), ra.count);
    p_msg_free(&m);
    return 0;
}

static int q_region_write(struct p_ctx *c, uint32_t region, uint64_t off, const void *buf,
                          uint32_t len)
{
    if (len > c->max_xfer)
        return p_fail(c, "region_write", "%u bytes exceed max_data_xfer_size %u", len,
                      c->max_xfer);
    uint8_t b[P_WRITE_BODY];
    const uint32_t asz = sizeof(struct vu_region_access);
    if (p_pack_write(c, b, region, off, buf, len) < 0)
        return -1;
    /* BAR writes are posted (NO_REPLY) until some region is mmapped. */
    if (region <= VU_PCI_BAR5_REGION_INDEX && !any_mmap(c)) {
        uint8_t raw[VU_HDR_SIZE + sizeof(b)];
        struct vu_hdr h = { .msg_id = qemu_next_id++, .cmd = VU_CMD_REGION_WRITE,
                            .msg_size = (uint32_t)(VU_HDR_SIZE + asz + len),
                            .flags = VU_F_NO_REPLY };
        memcpy(raw, &h, sizeof(h));
        memcpy(raw + sizeof(h), b, asz + len);
        return p_send_raw(c, "region_write", raw, h.msg_size, NULL, 0);
    }
    struct p_msg m;
    if (xfer(c, "region_write", VU_CMD_REGION_WRITE, b, (uint32_t)asz + len, NULL, 0,
             (uint32_t)(VU_HDR_SIZE + asz + len), 0, &m) < 0 ||
        err_reply(c, "region_write", &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int q_dma_map(struct p_ctx *c, int fd, uint64_t fd_off, uint64_t iova, uint64_t size)
{
    struct vu_dma_map d = p_dma_map_rw(fd_off, iova, size);
    struct p_msg m;
    if (xfer(c, "dma_map", VU_CMD_DMA_MAP, &d, sizeof(d), &fd, 1, VU_HDR_SIZE + sizeof(d), 0,
             &m) < 0 || err_reply(c, "dma_map", &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int q_dma_unmap(struct p_ctx *c, int fd, uint64_t iova, uint64_t size)
{
    struct vu_dma_unmap d = { .argsz = sizeof(d), .address = iova, .size = size };
    struct p_msg m;
    if (xfer(c, "dma_unmap", VU_CMD_DMA_UNMAP, &d, sizeof(d), NULL, 0, VU_HDR_SIZE + sizeof(d),
             0, &m) < 0 || err_reply(c, "dma_unmap", &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int q_reset(struct p_ctx *c)
{
    struct p_msg m;
    if (xfer(c, "reset", VU_CMD_DEVICE_RESET, NULL, 0, NULL, 0, VU_HDR_SIZE, 0, &m) < 0)
        return -1;
    if (m.hdr.flags & VU_F_ERROR)
        p_note(c, "reset", "error reply %s (QEMU prints \"reset reply error\" and goes on)",
               strerror((int)m.hdr.error_no));
    else
        p_ok(c, "reset", "DEVICE_RESET done");
    p_msg_free(&m);
    return 0;
}

const struct p_ops p_qemu_ops = {
    .name = "qemu",
    .what = "QEMU 11.1 vfio-user-pci",
    .version = q_version,
    .get_info = q_get_info,
    .region_info = q_region_info,
    .map_region = q_map_region,
    .irq_info = q_irq_info,
    .set_irqs = q_set_irqs,
    .region_read = q_region_read,
    .region_write = q_region_write,
    .dma_map = q_dma_map,
    .dma_unmap = q_dma_unmap,
    .reset = q_reset,
    .reset_when = P_RESET_IF_FLAG,
    .irq_kind = P_IRQ_MSI,
    .nvme_msix = true,
    .dma_size = 4u << 20,
    /* BARs, ROM, config; no VGA unless x-vga */
    .region_mask = 0xff,
    /* MSI-X (can it mask?), ERR (vfio_pci_populate_device), REQ (the
     * request notifier); INTx and MSI come from config space */
    .irq_mask = (1u << 2) | (1u << 3) | (1u << 4),
};
