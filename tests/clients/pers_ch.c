/* SPDX-License-Identifier: MIT */
/*
 * pers_ch.c - cloud-hypervisor's vfio-user client, rust-vmm/vfio
 * vfio-user/src/lib.rs `Client` (as used by pci/src/vfio_user.rs).
 *
 * It reads every reply with a fixed-size read_exact and never looks at the
 * error field or the header's size: a reply of any other size leaves the
 * stream out of step (it hangs, or parses the next reply's bytes). This
 * personality therefore fails on any reply whose size differs from what ch
 * reads, and otherwise ignores errors exactly as ch does. Ids count up from
 * 0 per connection. VERSION proposes 0.1 with serde's compact JSON; the
 * reply must carry JSON (ch parses data[..len-1]; no JSON = a panic).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pers.h"

static const char ch_caps[] =
    "{\"capabilities\":{\"max_msg_fds\":1,\"max_data_xfer_size\":1048576,"
    "\"migration\":{\"pgsize\":4096}}}";

/* Send, receive, and require the reply to be exactly `want` bytes. */
static int xfer_exact(struct p_ctx *c, const char *step, uint16_t cmd, const void *payload,
                      uint32_t len, const int *fds, int nfds, uint32_t want, struct p_msg *m)
{
    uint16_t id = c->next_id++;
    if (p_send(c, step, id, cmd, payload, len, fds, nfds) < 0 || p_recv(c, step, m) < 0)
        return -1;
    if (m->hdr.msg_size != want) {
        p_fail(c, step, "reply is %u bytes%s; ch reads exactly %u and never checks the size or "
               "error field: the stream desynchronises",
               m->hdr.msg_size, m->hdr.flags & VU_F_ERROR ? " (an error reply)" : "", want);
        p_msg_free(m);
        return -1;
    }
    if (m->hdr.flags & VU_F_ERROR)
        p_note(c, step, "error reply (%s) of the size ch reads: ch carries on as if it worked",
               strerror((int)m->hdr.error_no));
    return 0;
}

static int ch_version(struct p_ctx *c)
{
    const char *step = "version";
    uint8_t buf[4 + sizeof(ch_caps)];
    struct vu_version v = { .major = 0, .minor = 1 };
    memcpy(buf, &v, 4);
    memcpy(buf + 4, ch_caps, sizeof(ch_caps));
    uint16_t id = c->next_id++;
    struct p_msg m;
    uint32_t size = (uint32_t)(VU_HDR_SIZE + sizeof(buf));
    if (p_send(c, step, id, VU_CMD_VERSION, buf, sizeof(buf), NULL, 0) < 0 ||
        p_recv(c, step, &m) < 0)
        return -1;
    int r = -1;
    if (m.hdr.msg_size < 20) {
        p_fail(c, step, "reply is %u bytes: ch reads a 20-byte version first and hangs or "
               "underflows (an error reply is never recognised)", m.hdr.msg_size);
        goto out;
    }
    if (m.hdr.msg_size == 20) {
        p_fail(c, step, "reply without JSON: ch slices data[..len-1] of an empty buffer and "
               "panics");
        goto out;
    }
    m.body[m.len - 1] = '\0';       /* ch drops the last byte, whatever it is */
    struct p_json j;
    char why[128];
    const char *js = (const char *)m.body + 4;
    if (strlen(js) != m.len - 5) {
        p_fail(c, step, "JSON has a NUL before its last byte: serde sees trailing characters");
        goto out;
    }
    if (p_json_parse(js, &j, why, sizeof(why)) < 0) {
        p_fail(c, step, "serde_json cannot parse the reply: %s", why);
        goto out;
    }
    enum p_jtype t;
    uint64_t u;
    bool isu;
    p_json_get(&j, "capabilities", &t, NULL, NULL, NULL);
    if (t != P_J_OBJ) {
        p_fail(c, step, "reply JSON lacks the \"capabilities\" object ch requires");
        goto out;
    }
    static const char *u32keys[] = { "capabilities.max_msg_fds",
                                     "capabilities.max_data_xfer_size" };
    for (size_t i = 0; i < 2; i++)
        if (p_json_get(&j, u32keys[i], &t, &u, &isu, NULL) &&
            (t != P_J_NUM || !isu || u > UINT32_MAX)) {
            p_fail(c, step, "%s is not a u32: serde fails", u32keys[i]);
            goto out;
        }
    p_json_get(&j, "capabilities.migration", &t, NULL, NULL, NULL);
    if (t != P_J_NONE) {
        if (t != P_J_OBJ || !p_json_get(&j, "capabilities.migration.pgsize", &t, &u, &isu, NULL) ||
            t != P_J_NUM || !isu || u > UINT32_MAX) {
            p_fail(c, step, "\"migration\" without a u32 \"pgsize\": serde fails");
            goto out;
        }
    }
    struct vu_version sv;
    memcpy(&sv, m.body, 4);
    p_ok(c, step, "proposed 0.1 in %u bytes; reply %u bytes, %u.%u, JSON parsed", size,
         m.hdr.msg_size, sv.major, sv.minor);
    r = 0;
out:
    p_msg_free(&m);
    return r;
}

static int ch_get_info(struct p_ctx *c, struct vu_device_info *out)
{
    /* ch's argsz is the whole message, header included */
    struct vu_device_info di = { .argsz = VU_HDR_SIZE + sizeof(di) };
    struct p_msg m;
    if (xfer_exact(c, "get_info", VU_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0,
                   VU_HDR_SIZE + sizeof(di), &m) < 0)
        return -1;
    memcpy(out, m.body, sizeof(*out));
    p_msg_free(&m);
    return 0;
}

/* One GET_REGION_INFO as ch sends it: 48 bytes; the reply is taken with a
 * single recvmsg into 48 bytes and one fd. */
static int ch_region_once(struct p_ctx *c, const char *step, uint32_t index, uint32_t argsz,
                          struct p_msg *m, struct vu_region_info *rep)
{
    struct vu_region_info ri = { .argsz = argsz, .index = index };
    uint16_t id = c->next_id++;
    if (p_send(c, step, id, VU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0) < 0 ||
        p_recv(c, step, m) < 0)
        return -1;
    memset(rep, 0, sizeof(*rep));
    memcpy(rep, m->body, m->len < sizeof(*rep) ? m->len : sizeof(*rep));
    if (m->nfds + m->late_fds > 1)
        p_note(c, step, "%d fds; ch's recv_with_fd keeps the first", m->nfds + m->late_fds);
    return 0;
}

static int ch_region_info(struct p_ctx *c, uint32_t index)
{
    char step[32];
    snprintf(step, sizeof(step), "region_info %u", index);
    struct p_region *r = &c->reg[index];
    struct p_msg m;
    struct vu_region_info rep;
    if (ch_region_once(c, step, index, sizeof(rep), &m, &rep) < 0)
        return -1;
    if (m.hdr.msg_size > VU_HDR_SIZE + sizeof(rep)) {
        p_fail(c, step, "reply to argsz 32 is %u bytes: caps beyond argsz stay in the stream "
               "and desynchronise ch", m.hdr.msg_size);
        p_msg_free(&m);
        return -1;
    }
    if (m.hdr.msg_size < VU_HDR_SIZE + sizeof(rep))
        p_note(c, step, "short reply (%u bytes%s): ch's single recvmsg leaves the rest zero",
               m.hdr.msg_size, m.hdr.flags & VU_F_ERROR ? ", an error" : "");
    int fd = m.nfds + m.late_fds ? m.fds[0] : -1;
    if (rep.argsz > sizeof(rep)) {
        p_msg_free(&m);
        uint32_t argsz = rep.argsz;
        if (ch_region_once(c, step, index, argsz, &m, &rep) < 0)
            return -1;
        /* assert_eq!(cap_size, message_size - 48) */
        if (rep.argsz < sizeof(rep) || m.hdr.msg_size < VU_HDR_SIZE + sizeof(rep) ||
            rep.argsz - sizeof(rep) != m.hdr.msg_size - VU_HDR_SIZE - sizeof(rep)) {
            p_fail(c, step, "full reply: argsz %u but message %u bytes: ch's assert_eq panics",
                   rep.argsz, m.hdr.msg_size);
            p_msg_free(&m);
            return -1;
        }
        fd = m.nfds + m.late_fds ? m.fds[0] : -1;
    }
    char why[128];
    r->valid = true;
    r->flags = rep.flags;
    r->size = rep.size;
    r->offset = rep.offset;
    r->argsz = rep.argsz;
    r->cap_offset = rep.cap_offset;
    if (p_parse_caps(m.body, m.len, r, why, sizeof(why)) < 0) {
        p_note(c, step, "%s (ch warns and stops parsing caps)", why);
        r->has_sparse = false;
        r->nr_areas = 0;
    }
    r->nfds = 0;
    if (fd >= 0) {
        r->fds[0] = fd;
        r->nfds = 1;
        m.fds[0] = -1;
    }
    p_msg_free(&m);
    p_ok(c, step, "size %#llx flags %#x argsz %u%s, %s", (unsigned long long)r->size, r->flags,
         r->argsz, r->has_sparse ? " sparse" : "", r->nfds ? "fd" : "no fd");
    return 0;
}

static int ch_map_region(struct p_ctx *c, uint32_t index)
{
    struct p_region *r = &c->reg[index];
    if (!r->nfds)
        return p_fail(c, "mmap", "region %u has MMAP but came without an fd: ch unwraps "
                      "file_offset and panics", index);
    if (!r->has_sparse || !r->nr_areas)
        return p_map_area(c, index, r->fds[0], 0, r->size);
    for (uint32_t i = 0; i < r->nr_areas; i++)
        if (p_map_area(c, index, r->fds[0], r->areas[i].offset, r->areas[i].size) < 0)
            return -1;
    return 0;
}

static int ch_irq_info(struct p_ctx *c, uint32_t index, struct vu_irq_info *out)
{
    char step[32];
    snprintf(step, sizeof(step), "irq_info %u", index);
    struct vu_irq_info ii = { .argsz = sizeof(ii), .index = index };
    struct p_msg m;
    if (xfer_exact(c, step, VU_CMD_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii), NULL, 0,
                   VU_HDR_SIZE + sizeof(ii), &m) < 0)
        return -1;
    memcpy(out, m.body, sizeof(*out));
    p_msg_free(&m);
    p_ok(c, step, "count %u flags %#x", out->count, out->flags);
    return 0;
}

static int ch_set_irqs(struct p_ctx *c, uint32_t index, uint32_t flags, uint32_t start,
                       uint32_t count, const int *fds)
{
    const char *step = "set_irqs";
    struct p_msg m;
    struct vu_irq_set s = { .argsz = sizeof(s), .flags = flags, .index = index, .start = start,
                            .count = count };
    if (!(flags & VU_IRQ_SET_DATA_EVENTFD)) {
        if (xfer_exact(c, step, VU_CMD_DEVICE_SET_IRQS, &s, sizeof(s), NULL, 0, VU_HDR_SIZE,
                       &m) < 0)
            return -1;
        p_msg_free(&m);
        return 0;
    }
    /* blocks of 16 fds, whatever max_msg_fds said */
    uint32_t msgs = 0;
    for (uint32_t sent = 0; sent < count; sent += s.count, msgs++) {
        s.start = start + sent;
        s.count = count - sent > 16 ? 16 : count - sent;
        if (xfer_exact(c, step, VU_CMD_DEVICE_SET_IRQS, &s, sizeof(s), fds + sent, (int)s.count,
                       VU_HDR_SIZE, &m) < 0)
            return -1;
        bool e = m.hdr.flags & VU_F_ERROR;
        p_msg_free(&m);
        if (e)
            return p_fail(c, step, "SET_IRQS of %u fds (start %u) was refused; ch does not "
                          "notice and the guest's interrupts never arrive", s.count, s.start);
    }
    p_ok(c, step, "index %u: %u eventfds in %u messages of <= 16", index, count, msgs);
    return 0;
}

static int ch_region_read(struct p_ctx *c, uint32_t region, uint64_t off, void *buf, uint32_t len)
{
    struct vu_region_access a = { .offset = off, .region = region, .count = len };
    struct p_msg m;
    if (xfer_exact(c, "region_read", VU_CMD_REGION_READ, &a, sizeof(a), NULL, 0,
                   (uint32_t)(VU_HDR_SIZE + sizeof(a) + len), &m) < 0)
        return -1;
    memcpy(buf, m.body + sizeof(a), len);
    p_msg_free(&m);
    return 0;
}

static int ch_region_write(struct p_ctx *c, uint32_t region, uint64_t off, const void *buf,
                           uint32_t len)
{
    uint8_t b[P_WRITE_BODY];
    const uint32_t asz = sizeof(struct vu_region_access);
    if (p_pack_write(c, b, region, off, buf, len) < 0)
        return -1;
    struct p_msg m;
    /* the reply is read as a header + region access: 32 bytes */
    if (xfer_exact(c, "region_write", VU_CMD_REGION_WRITE, b, (uint32_t)(asz + len), NULL,
                   0, VU_HDR_SIZE + asz, &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int ch_dma_map(struct p_ctx *c, int fd, uint64_t fd_off, uint64_t iova, uint64_t size)
{
    struct vu_dma_map d = p_dma_map_rw(fd_off, iova, size);
    struct p_msg m;
    if (xfer_exact(c, "dma_map", VU_CMD_DMA_MAP, &d, sizeof(d), &fd, 1, VU_HDR_SIZE, &m) < 0)
        return -1;
    bool e = m.hdr.flags & VU_F_ERROR;
    p_msg_free(&m);
    if (e)
        return p_fail(c, "dma_map", "refused; ch does not notice and the device's DMA faults");
    return 0;
}

static int ch_dma_unmap(struct p_ctx *c, int fd, uint64_t iova, uint64_t size)
{
    struct vu_dma_unmap d = { .argsz = sizeof(d), .address = iova, .size = size };
    struct p_msg m;
    /* the reply is read as a whole DmaUnmap: 40 bytes */
    if (xfer_exact(c, "dma_unmap", VU_CMD_DMA_UNMAP, &d, sizeof(d), NULL, 0,
                   VU_HDR_SIZE + sizeof(d), &m) < 0)
        return -1;
    p_msg_free(&m);
    return 0;
}

static int ch_reset(struct p_ctx *c)
{
    struct p_msg m;
    if (xfer_exact(c, "reset", VU_CMD_DEVICE_RESET, NULL, 0, NULL, 0, VU_HDR_SIZE, &m) < 0)
        return -1;
    p_ok(c, "reset", "DEVICE_RESET sent (the device does not advertise FLAGS_RESET: ch's test "
         "is inverted)%s", m.hdr.flags & VU_F_ERROR ? "; error reply ignored" : "");
    p_msg_free(&m);
    return 0;
}

const struct p_ops p_ch_ops = {
    .name = "ch",
    .what = "cloud-hypervisor (rust-vmm vfio_user::Client)",
    .version = ch_version,
    .get_info = ch_get_info,
    .region_info = ch_region_info,
    .map_region = ch_map_region,
    .irq_info = ch_irq_info,
    .set_irqs = ch_set_irqs,
    .region_read = ch_region_read,
    .region_write = ch_region_write,
    .dma_map = ch_dma_map,
    .dma_unmap = ch_dma_unmap,
    .reset = ch_reset,
    .reset_when = P_RESET_IF_NOT_FLAG,
    .reset_early = true,
    .irq_kind = P_IRQ_MSI,
    .nvme_msix = true,
    .refuses_msix_in_map = true,
    .dma_size = 4u << 20,
    .region_mask = 0,
    .irq_mask = (1u << 0) | (1u << 1) | (1u << 2),
};
