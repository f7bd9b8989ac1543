/* SPDX-License-Identifier: MIT */
/*
 * Strict decoders for every request and the replies a client needs, and the
 * region-info capability chain. Every field a peer controls is checked
 * before it is used; nothing here allocates.
 */
#include <errno.h>
#include <string.h>

#include "vu_proto.h"

#define NAME(m) vu_cmd_name((m)->hdr.cmd)

/* offset + len (len > 0) ends at or below 2^64. */
static bool range_ok(uint64_t start, uint64_t len)
{
    return len == 0 || len - 1 <= UINT64_MAX - start;
}

static unsigned popcount32(uint32_t v)
{
    unsigned n = 0;
    for (; v; v &= v - 1)
        n++;
    return n;
}

/* Common checks of a request: the right command, type command, a payload
 * length consistent with the header. The slow path, one check at a time,
 * for the reason; req_begin below makes the same checks in one test. */
__attribute__((noinline, cold))
static int req_begin_fail(const struct vu_msg *m, unsigned cmd, struct vub_err *err)
{
    if (m->hdr.cmd != cmd)
        return vub_fail(err, -EINVAL, "%s: decoder called for command %u (%s)",
                       vu_cmd_name(cmd), m->hdr.cmd, NAME(m));
    if ((m->hdr.flags & VU_F_TYPE_MASK) != VU_F_TYPE_CMD)
        return vub_fail(err, -EINVAL, "%s: message is not a command (flags 0x%x)",
                       NAME(m), m->hdr.flags);
    if (m->hdr.msg_size < VU_HDR_SIZE || m->payload_len != m->hdr.msg_size - VU_HDR_SIZE ||
        (m->payload_len && !m->payload))
        return vub_fail(err, -EINVAL, "%s: payload length %zu does not match msg_size %u",
                       NAME(m), m->payload_len, m->hdr.msg_size);
    if (m->nfds > VU_MAX_FDS_PER_MSG)
        return vub_fail(err, -EINVAL, "%s: %zu fds", NAME(m), m->nfds);
    return 0;
}

static inline int req_begin(const struct vu_msg *m, unsigned cmd, struct vub_err *err)
{
    if (m->hdr.cmd == cmd && (m->hdr.flags & VU_F_TYPE_MASK) == VU_F_TYPE_CMD &&
        m->hdr.msg_size >= VU_HDR_SIZE && m->payload_len == m->hdr.msg_size - VU_HDR_SIZE &&
        (m->payload_len == 0 || m->payload) && m->nfds <= VU_MAX_FDS_PER_MSG)
        return 0;
    return req_begin_fail(m, cmd, err);
}

/* The checks below: a test inline, the reason's formatting out of line. */
__attribute__((noinline, cold))
static int no_fds_fail(const struct vu_msg *m, struct vub_err *err)
{
    return vub_fail(err, -EINVAL, "%s: %zu unexpected fds", NAME(m), m->nfds);
}

static inline int no_fds(const struct vu_msg *m, struct vub_err *err)
{
    return m->nfds ? no_fds_fail(m, err) : 0;
}

__attribute__((noinline, cold))
static int payload_exact_fail(const struct vu_msg *m, size_t want, struct vub_err *err)
{
    return vub_fail(err, -EINVAL, "%s: payload is %zu bytes, expected %zu", NAME(m),
                    m->payload_len, want);
}

static inline int payload_exact(const struct vu_msg *m, size_t want, struct vub_err *err)
{
    return m->payload_len != want ? payload_exact_fail(m, want, err) : 0;
}

__attribute__((noinline, cold))
static int payload_min_fail(const struct vu_msg *m, size_t want, struct vub_err *err)
{
    return vub_fail(err, -EINVAL, "%s: payload is %zu bytes, at least %zu needed", NAME(m),
                    m->payload_len, want);
}

static inline int payload_min(const struct vu_msg *m, size_t want, struct vub_err *err)
{
    return m->payload_len < want ? payload_min_fail(m, want, err) : 0;
}

/* begin + no fds + exact payload, the common case. */
static int req_fixed(const struct vu_msg *m, unsigned cmd, size_t len, struct vub_err *err)
{
    int r = req_begin(m, cmd, err);
    if (!r)
        r = no_fds(m, err);
    if (!r)
        r = payload_exact(m, len, err);
    return r;
}

static int argsz_min(const struct vu_msg *m, uint32_t argsz, uint32_t min, struct vub_err *err)
{
    if (argsz < min)
        return vub_fail(err, -EINVAL, "%s: argsz %u is smaller than %u", NAME(m), argsz, min);
    return 0;
}

/* An info query: begin + no fds + a payload of the fixed struct, or of up
 * to argsz bytes (a client may send its whole reply buffer, as SPDK does);
 * argsz >= the struct. The struct is copied to out. */
static int req_query(const struct vu_msg *m, unsigned cmd, size_t len, void *out,
                     struct vub_err *err)
{
    int r = req_begin(m, cmd, err);
    if (!r)
        r = no_fds(m, err);
    if (!r)
        r = payload_min(m, len, err);
    if (r)
        return r;
    uint32_t argsz;
    memcpy(&argsz, m->payload, sizeof(argsz));   /* argsz is first in every query */
    if ((r = argsz_min(m, argsz, (uint32_t)len, err)))
        return r;
    if (m->payload_len > len && m->payload_len > argsz)
        return vub_fail(err, -EINVAL, "%s: payload is %zu bytes, more than argsz %u", NAME(m),
                       m->payload_len, argsz);
    memcpy(out, m->payload, len);
    return 0;
}

/* ---- VERSION --------------------------------------------------------------- */

static int version_body(const struct vu_msg *m, struct vu_version_req *out, struct vub_err *err)
{
    int r = payload_min(m, sizeof(struct vu_version), err);
    if (r)
        return r;
    struct vu_version v;
    memcpy(&v, m->payload, sizeof(v));
    out->major = v.major;
    out->minor = v.minor;
    out->json = NULL;
    out->json_len = 0;
    if (m->payload_len == sizeof(v))
        return 0;

    const char *json = (const char *)m->payload + sizeof(v);
    size_t n = m->payload_len - sizeof(v);  /* including the NUL */
    if (json[n - 1] != '\0')
        return vub_fail(err, -EINVAL, "%s: JSON is not NUL-terminated", NAME(m));
    if (n - 1 > VU_MAX_JSON)
        return vub_fail(err, -E2BIG, "%s: JSON of %zu bytes exceeds %u", NAME(m), n - 1,
                       VU_MAX_JSON);
    if (n == 1)   /* a lone NUL: empty version data, i.e. none */
        return 0;
    if (memchr(json, '\0', n - 1))
        return vub_fail(err, -EINVAL, "%s: NUL byte inside the JSON at %zu", NAME(m),
                       (size_t)((const char *)memchr(json, '\0', n - 1) - json));
    out->json = json;
    out->json_len = n - 1;
    return 0;
}

int vu_decode_version(const struct vu_msg *m, struct vu_version_req *out, struct vub_err *err)
{
    int r = req_begin(m, VU_CMD_VERSION, err);
    if (!r)
        r = no_fds(m, err);
    if (!r)
        r = version_body(m, out, err);
    return r;
}

/* ---- DMA_MAP / DMA_UNMAP ----------------------------------------------------- */

int vu_decode_dma_map(const struct vu_msg *m, struct vu_dma_map *out, struct vub_err *err)
{
    int r = req_begin(m, VU_CMD_DMA_MAP, err);
    if (r)
        return r;
    if (m->nfds > 1)
        return vub_fail(err, -EINVAL, "%s: %zu fds, at most 1 allowed", NAME(m), m->nfds);
    if ((r = payload_exact(m, sizeof(*out), err)))
        return r;
    struct vu_dma_map d;
    memcpy(&d, m->payload, sizeof(d));
    if (d.argsz != sizeof(d))
        return vub_fail(err, -EINVAL, "%s: argsz %u, expected %zu", NAME(m), d.argsz, sizeof(d));
    if (d.flags & ~(VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE))
        return vub_fail(err, -EINVAL, "%s: unknown flags 0x%x", NAME(m),
                       d.flags & ~(VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE));
    if (d.size == 0)
        return vub_fail(err, -EINVAL, "%s: size 0", NAME(m));
    if (!range_ok(d.address, d.size))
        return vub_fail(err, -EINVAL, "%s: address 0x%llx + size 0x%llx wraps", NAME(m),
                       (unsigned long long)d.address, (unsigned long long)d.size);
    if (m->nfds == 0 && d.offset != 0)
        return vub_fail(err, -EINVAL, "%s: offset 0x%llx without an fd", NAME(m),
                       (unsigned long long)d.offset);
    if (!range_ok(d.offset, d.size))
        return vub_fail(err, -EINVAL, "%s: offset 0x%llx + size 0x%llx wraps", NAME(m),
                       (unsigned long long)d.offset, (unsigned long long)d.size);
    *out = d;
    return 0;
}

int vu_decode_dma_unmap(const struct vu_msg *m, struct vu_dma_unmap *out, struct vub_err *err)
{
    int r = req_begin(m, VU_CMD_DMA_UNMAP, err);
    if (r)
        return r;
    if (m->nfds > 1)   /* SPDK sends its memory fd with the unmap: harmless, unused */
        return vub_fail(err, -EINVAL, "%s: %zu fds, at most 1 allowed", NAME(m), m->nfds);
    if ((r = payload_exact(m, sizeof(*out), err)))
        return r;
    struct vu_dma_unmap d;
    memcpy(&d, m->payload, sizeof(d));
    if ((r = argsz_min(m, d.argsz, sizeof(d), err)))
        return r;
    if (d.flags & VU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP)
        return vub_fail(err, -EINVAL, "%s: GET_DIRTY_BITMAP (pre-2023 protocol) not supported",
                       NAME(m));
    if (d.flags & ~VU_DMA_UNMAP_FLAG_ALL)
        return vub_fail(err, -EINVAL, "%s: unknown flags 0x%x", NAME(m), d.flags);
    if (d.flags & VU_DMA_UNMAP_FLAG_ALL) {
        if (d.address || d.size)
            return vub_fail(err, -EINVAL, "%s: ALL with address 0x%llx size 0x%llx", NAME(m),
                           (unsigned long long)d.address, (unsigned long long)d.size);
    } else {
        if (d.size == 0)
            return vub_fail(err, -EINVAL, "%s: size 0", NAME(m));
        if (!range_ok(d.address, d.size))
            return vub_fail(err, -EINVAL, "%s: address 0x%llx + size 0x%llx wraps", NAME(m),
                           (unsigned long long)d.address, (unsigned long long)d.size);
    }
    *out = d;
    return 0;
}

/* ---- info queries -------------------------------------------------------------- */

int vu_decode_device_get_info(const struct vu_msg *m, struct vu_device_info *out,
                              struct vub_err *err)
{
    return req_query(m, VU_CMD_DEVICE_GET_INFO, sizeof(*out), out, err);
}

int vu_decode_region_info(const struct vu_msg *m, struct vu_region_info *out, struct vub_err *err)
{
    struct vu_region_info d;
    int r = req_query(m, VU_CMD_DEVICE_GET_REGION_INFO, sizeof(d), &d, err);
    if (r)
        return r;
    if (d.flags || d.cap_offset || d.size || d.offset)
        return vub_fail(err, -EINVAL,
                       "%s: request fields must be 0 (flags 0x%x cap_offset %u size 0x%llx "
                       "offset 0x%llx)",
                       NAME(m), d.flags, d.cap_offset, (unsigned long long)d.size,
                       (unsigned long long)d.offset);
    *out = d;
    return 0;
}

int vu_decode_region_io_fds(const struct vu_msg *m, struct vu_region_io_fds_request *out,
                            struct vub_err *err)
{
    int r = req_fixed(m, VU_CMD_DEVICE_GET_REGION_IO_FDS, sizeof(*out), err);
    if (r)
        return r;
    struct vu_region_io_fds_request d;
    memcpy(&d, m->payload, sizeof(d));
    if ((r = argsz_min(m, d.argsz, sizeof(d), err)))
        return r;
    if (d.flags || d.count)
        return vub_fail(err, -EINVAL, "%s: flags 0x%x and count %u must be 0", NAME(m), d.flags,
                       d.count);
    *out = d;
    return 0;
}

int vu_decode_irq_info(const struct vu_msg *m, struct vu_irq_info *out, struct vub_err *err)
{
    return req_query(m, VU_CMD_DEVICE_GET_IRQ_INFO, sizeof(*out), out, err);
}

/* ---- SET_IRQS ----------------------------------------------------------------- */

int vu_decode_set_irqs(const struct vu_msg *m, struct vu_irq_set_req *out, struct vub_err *err)
{
    int r = req_begin(m, VU_CMD_DEVICE_SET_IRQS, err);
    if (r || (r = payload_min(m, sizeof(struct vu_irq_set), err)))
        return r;
    struct vu_irq_set s;
    memcpy(&s, m->payload, sizeof(s));
    if (s.argsz != m->payload_len)
        return vub_fail(err, -EINVAL, "%s: argsz %u differs from the payload length %zu",
                       NAME(m), s.argsz, m->payload_len);
    uint32_t known = VU_IRQ_SET_DATA_MASK | VU_IRQ_SET_ACTION_MASK_ALL;
    if (s.flags & ~known)
        return vub_fail(err, -EINVAL, "%s: unknown flags 0x%x", NAME(m), s.flags & ~known);
    uint32_t data = s.flags & VU_IRQ_SET_DATA_MASK;
    uint32_t action = s.flags & VU_IRQ_SET_ACTION_MASK_ALL;
    if (popcount32(data) != 1)
        return vub_fail(err, -EINVAL, "%s: flags 0x%x need exactly one DATA bit", NAME(m),
                       s.flags);
    if (popcount32(action) != 1)
        return vub_fail(err, -EINVAL, "%s: flags 0x%x need exactly one ACTION bit", NAME(m),
                       s.flags);
    size_t want = sizeof(s) + (data == VU_IRQ_SET_DATA_BOOL ? (size_t)s.count : 0);
    if (m->payload_len != want)
        return vub_fail(err, -EINVAL, "%s: payload %zu bytes for count %u, expected %zu",
                       NAME(m), m->payload_len, s.count, want);
    if (data != VU_IRQ_SET_DATA_EVENTFD && m->nfds)
        return vub_fail(err, -EINVAL, "%s: %zu fds without DATA_EVENTFD", NAME(m), m->nfds);
    if (data == VU_IRQ_SET_DATA_EVENTFD && m->nfds && m->nfds != s.count)
        return vub_fail(err, -EINVAL, "%s: %zu fds for count %u", NAME(m), m->nfds, s.count);
    if (s.count == 0 &&
        (s.start != 0 || data != VU_IRQ_SET_DATA_NONE || action != VU_IRQ_SET_ACTION_TRIGGER))
        return vub_fail(err, -EINVAL,
                       "%s: count 0 only with start 0 and DATA_NONE|ACTION_TRIGGER "
                       "(start %u flags 0x%x)",
                       NAME(m), s.start, s.flags);
    if (s.count > UINT32_MAX - s.start)
        return vub_fail(err, -EINVAL, "%s: start %u + count %u wraps", NAME(m), s.start, s.count);
    out->set = s;
    out->bools = data == VU_IRQ_SET_DATA_BOOL ? m->payload + sizeof(s) : NULL;
    out->nfds = data == VU_IRQ_SET_DATA_EVENTFD ? m->nfds : 0;
    return 0;
}

/* ---- region access ----------------------------------------------------------- */

__attribute__((always_inline))
static inline int region_access(const struct vu_msg *m, unsigned cmd, bool write,
                                uint32_t max_xfer, struct vu_region_access_req *out,
                                struct vub_err *err)
{
    int r = req_begin(m, cmd, err);
    if (r || (r = no_fds(m, err)) ||
        (r = payload_min(m, sizeof(struct vu_region_access), err)))
        return r;
    struct vu_region_access a;
    memcpy(&a, m->payload, sizeof(a));
    if (a.count > max_xfer)
        return vub_fail(err, -E2BIG, "%s: count %u exceeds max_data_xfer_size %u", NAME(m),
                       a.count, max_xfer);
    if ((r = payload_exact(m, sizeof(a) + (write ? (size_t)a.count : 0), err)))
        return r;
    if (!range_ok(a.offset, a.count))
        return vub_fail(err, -EINVAL, "%s: offset 0x%llx + count %u wraps", NAME(m),
                       (unsigned long long)a.offset, a.count);
    out->acc = a;
    out->data = write ? m->payload + sizeof(a) : NULL;
    return 0;
}

int vu_decode_region_read(const struct vu_msg *m, uint32_t max_xfer,
                          struct vu_region_access_req *out, struct vub_err *err)
{
    return region_access(m, VU_CMD_REGION_READ, false, max_xfer, out, err);
}

int vu_decode_region_write(const struct vu_msg *m, uint32_t max_xfer,
                           struct vu_region_access_req *out, struct vub_err *err)
{
    return region_access(m, VU_CMD_REGION_WRITE, true, max_xfer, out, err);
}

int vu_decode_write_multi(const struct vu_msg *m, struct vu_write_multi_req *out,
                          struct vub_err *err)
{
    int r = req_begin(m, VU_CMD_REGION_WRITE_MULTI, err);
    if (r || (r = no_fds(m, err)) || (r = payload_min(m, sizeof(struct vu_write_multi), err)))
        return r;
    struct vu_write_multi w;
    memcpy(&w, m->payload, sizeof(w));
    if (w.wr_cnt == 0 || w.wr_cnt > VU_WRITE_MULTI_MAX_ENTRIES)
        return vub_fail(err, -EINVAL, "%s: wr_cnt %llu not in 1..%u", NAME(m),
                       (unsigned long long)w.wr_cnt, VU_WRITE_MULTI_MAX_ENTRIES);
    size_t want = sizeof(w) + (size_t)w.wr_cnt * sizeof(struct vu_write_multi_entry);
    if ((r = payload_exact(m, want, err)))
        return r;
    const uint8_t *p = m->payload + sizeof(w);
    for (uint64_t i = 0; i < w.wr_cnt; i++) {
        struct vu_write_multi_entry e;
        memcpy(&e, p + i * sizeof(e), sizeof(e));
        if (e.count == 0 || e.count > VU_WRITE_MULTI_MAX_DATA)
            return vub_fail(err, -EINVAL, "%s: entry %llu count %u not in 1..%u", NAME(m),
                           (unsigned long long)i, e.count, VU_WRITE_MULTI_MAX_DATA);
        if (!range_ok(e.offset, e.count))
            return vub_fail(err, -EINVAL, "%s: entry %llu offset 0x%llx wraps", NAME(m),
                           (unsigned long long)i, (unsigned long long)e.offset);
    }
    out->wr_cnt = w.wr_cnt;
    out->wrs = (const struct vu_write_multi_entry *)(const void *)p;
    return 0;
}

int vu_decode_device_reset(const struct vu_msg *m, struct vub_err *err)
{
    return req_fixed(m, VU_CMD_DEVICE_RESET, 0, err);
}

int vu_decode_device_feature(const struct vu_msg *m, struct vu_device_feature_req *out,
                             struct vub_err *err)
{
    int r = req_begin(m, VU_CMD_DEVICE_FEATURE, err);
    if (r || (r = no_fds(m, err)) || (r = payload_min(m, sizeof(struct vu_device_feature), err)))
        return r;
    struct vu_device_feature f;
    memcpy(&f, m->payload, sizeof(f));
    if ((r = argsz_min(m, f.argsz, sizeof(f), err)))
        return r;
    uint32_t ops = VU_DEVICE_FEATURE_GET | VU_DEVICE_FEATURE_SET | VU_DEVICE_FEATURE_PROBE;
    if (f.flags & ~(VU_DEVICE_FEATURE_MASK | ops))
        return vub_fail(err, -EINVAL, "%s: unknown flags 0x%x", NAME(m),
                       f.flags & ~(VU_DEVICE_FEATURE_MASK | ops));
    if (!(f.flags & ops))
        return vub_fail(err, -EINVAL, "%s: none of GET, SET, PROBE in flags 0x%x", NAME(m),
                       f.flags);
    if ((f.flags & VU_DEVICE_FEATURE_GET) && (f.flags & VU_DEVICE_FEATURE_SET) &&
        !(f.flags & VU_DEVICE_FEATURE_PROBE))
        return vub_fail(err, -EINVAL, "%s: GET and SET together without PROBE", NAME(m));
    out->feat = f;
    out->data_len = m->payload_len - sizeof(f);
    out->data = out->data_len ? m->payload + sizeof(f) : NULL;
    return 0;
}

static int mig_data(const struct vu_msg *m, unsigned cmd, bool write, uint32_t max_xfer,
                    struct vu_mig_data_req *out, struct vub_err *err)
{
    int r = req_begin(m, cmd, err);
    if (r || (r = no_fds(m, err)) || (r = payload_min(m, sizeof(struct vu_mig_data), err)))
        return r;
    struct vu_mig_data d;
    memcpy(&d, m->payload, sizeof(d));
    if (d.size > max_xfer)
        return vub_fail(err, -E2BIG, "%s: size %u exceeds max_data_xfer_size %u", NAME(m),
                       d.size, max_xfer);
    if ((r = payload_exact(m, sizeof(d) + (write ? (size_t)d.size : 0), err)))
        return r;
    if ((uint64_t)d.argsz < sizeof(d) + (uint64_t)d.size)
        return vub_fail(err, -EINVAL, "%s: argsz %u is smaller than 8 + size %u", NAME(m),
                       d.argsz, d.size);
    out->mig = d;
    out->data = write ? m->payload + sizeof(d) : NULL;
    return 0;
}

int vu_decode_mig_data_read(const struct vu_msg *m, uint32_t max_xfer,
                            struct vu_mig_data_req *out, struct vub_err *err)
{
    return mig_data(m, VU_CMD_MIG_DATA_READ, false, max_xfer, out, err);
}

int vu_decode_mig_data_write(const struct vu_msg *m, uint32_t max_xfer,
                             struct vu_mig_data_req *out, struct vub_err *err)
{
    return mig_data(m, VU_CMD_MIG_DATA_WRITE, true, max_xfer, out, err);
}

/* ---- DMA_READ / DMA_WRITE (server -> client) ------------------------------------ */

static int dma_access(const struct vu_msg *m, unsigned cmd, bool write, uint32_t max_xfer,
                      struct vu_dma_access_req *out, struct vub_err *err)
{
    int r = req_begin(m, cmd, err);
    if (r || (r = no_fds(m, err)) || (r = payload_min(m, sizeof(struct vu_dma_access), err)))
        return r;
    struct vu_dma_access a;
    memcpy(&a, m->payload, sizeof(a));
    if (a.count > max_xfer)
        return vub_fail(err, -E2BIG, "%s: count %llu exceeds max_data_xfer_size %u", NAME(m),
                       (unsigned long long)a.count, max_xfer);
    if ((r = payload_exact(m, sizeof(a) + (write ? (size_t)a.count : 0), err)))
        return r;
    if (!range_ok(a.address, a.count))
        return vub_fail(err, -EINVAL, "%s: address 0x%llx + count %llu wraps", NAME(m),
                       (unsigned long long)a.address, (unsigned long long)a.count);
    out->acc = a;
    out->data = write ? m->payload + sizeof(a) : NULL;
    return 0;
}

int vu_decode_dma_read(const struct vu_msg *m, uint32_t max_xfer, struct vu_dma_access_req *out,
                       struct vub_err *err)
{
    return dma_access(m, VU_CMD_DMA_READ, false, max_xfer, out, err);
}

int vu_decode_dma_write(const struct vu_msg *m, uint32_t max_xfer,
                        struct vu_dma_access_req *out, struct vub_err *err)
{
    return dma_access(m, VU_CMD_DMA_WRITE, true, max_xfer, out, err);
}

/* ---- replies ---------------------------------------------------------------------- */

/* vu_reply_status's slow path: which check fails, and the reason (every
 * error reply comes here: not cold). */
__attribute__((noinline))
static int reply_status_fail(const struct vu_msg *reply, unsigned cmd, struct vub_err *err)
{
    const struct vu_hdr *h = &reply->hdr;
    if ((h->flags & VU_F_TYPE_MASK) != VU_F_TYPE_REPLY)
        return vub_fail(err, -EPROTO, "%s: expected a reply, got flags 0x%x", vu_cmd_name(cmd),
                       h->flags);
    if (h->cmd != cmd)
        return vub_fail(err, -EPROTO, "%s: reply is for command %u (%s)", vu_cmd_name(cmd),
                       h->cmd, vu_cmd_name(h->cmd));
    if (h->msg_size < VU_HDR_SIZE || reply->payload_len != h->msg_size - VU_HDR_SIZE ||
        (reply->payload_len && !reply->payload))
        return vub_fail(err, -EPROTO, "%s: reply payload %zu does not match msg_size %u",
                       vu_cmd_name(cmd), reply->payload_len, h->msg_size);
    if (h->flags & VU_F_ERROR) {
        uint32_t e = h->error_no;
        if (e == 0 || e > 4096)
            return vub_fail(err, -EIO, "%s: error reply with error_no %u", vu_cmd_name(cmd), e);
        return vub_fail(err, -(int)e, "%s: server replied error %u (%s)", vu_cmd_name(cmd), e,
                       strerror((int)e));
    }
    return 0;
}

/* vu_reply_status, inline in the reply decoders */
__attribute__((always_inline))
static inline int reply_status(const struct vu_msg *reply, unsigned cmd, struct vub_err *err)
{
    /* a reply (type 1, no Error flag) to cmd, its payload as the header
     * says: reply_status_fail's checks in one test */
    const struct vu_hdr *h = &reply->hdr;
    if ((h->flags & (VU_F_TYPE_MASK | VU_F_ERROR)) == VU_F_TYPE_REPLY && h->cmd == cmd &&
        h->msg_size >= VU_HDR_SIZE && reply->payload_len == h->msg_size - VU_HDR_SIZE &&
        (reply->payload_len == 0 || reply->payload))
        return 0;
    return reply_status_fail(reply, cmd, err);
}

int vu_reply_status(const struct vu_msg *reply, unsigned cmd, struct vub_err *err)
{
    return reply_status(reply, cmd, err);
}

/* status + no fds + exact payload */
static int reply_fixed(const struct vu_msg *m, unsigned cmd, size_t len, struct vub_err *err)
{
    int r = reply_status(m, cmd, err);
    if (r)
        return r;
    if (m->nfds)
        return vub_fail(err, -EPROTO, "%s: %zu unexpected fds in the reply", NAME(m), m->nfds);
    if (m->payload_len != len)
        return vub_fail(err, -EPROTO, "%s: reply payload is %zu bytes, expected %zu", NAME(m),
                       m->payload_len, len);
    return 0;
}

int vu_decode_empty_reply(const struct vu_msg *m, unsigned cmd, struct vub_err *err)
{
    return reply_fixed(m, cmd, 0, err);
}

int vu_decode_version_reply(const struct vu_msg *m, struct vu_version_req *out,
                            struct vub_err *err)
{
    int r = reply_status(m, VU_CMD_VERSION, err);
    if (r)
        return r;
    if (m->nfds)
        return vub_fail(err, -EPROTO, "%s: %zu unexpected fds in the reply", NAME(m), m->nfds);
    r = version_body(m, out, err);
    return r == -EINVAL ? -EPROTO : r;
}

int vu_decode_dma_unmap_reply(const struct vu_msg *m, struct vu_dma_unmap *out,
                              struct vub_err *err)
{
    int r = reply_fixed(m, VU_CMD_DMA_UNMAP, sizeof(*out), err);
    if (!r)
        memcpy(out, m->payload, sizeof(*out));
    return r;
}

int vu_decode_device_info_reply(const struct vu_msg *m, struct vu_device_info *out,
                                struct vub_err *err)
{
    int r = reply_fixed(m, VU_CMD_DEVICE_GET_INFO, sizeof(*out), err);
    if (!r)
        memcpy(out, m->payload, sizeof(*out));
    return r;
}

int vu_decode_irq_info_reply(const struct vu_msg *m, struct vu_irq_info *out, struct vub_err *err)
{
    int r = reply_fixed(m, VU_CMD_DEVICE_GET_IRQ_INFO, sizeof(*out), err);
    if (!r)
        memcpy(out, m->payload, sizeof(*out));
    return r;
}

int vu_decode_region_read_reply(const struct vu_msg *m, uint32_t requested,
                                struct vu_region_access_req *out, struct vub_err *err)
{
    int r = reply_status(m, VU_CMD_REGION_READ, err);
    if (r)
        return r;
    if (m->nfds)
        return vub_fail(err, -EPROTO, "%s: %zu unexpected fds in the reply", NAME(m), m->nfds);
    if (m->payload_len < sizeof(struct vu_region_access))
        return vub_fail(err, -EPROTO, "%s: reply payload %zu is shorter than 16", NAME(m),
                       m->payload_len);
    struct vu_region_access a;
    memcpy(&a, m->payload, sizeof(a));
    if (a.count > requested)
        return vub_fail(err, -EPROTO, "%s: reply count %u exceeds the requested %u", NAME(m),
                       a.count, requested);
    if (m->payload_len != sizeof(a) + (size_t)a.count)
        return vub_fail(err, -EPROTO, "%s: reply payload %zu for count %u", NAME(m),
                       m->payload_len, a.count);
    out->acc = a;
    out->data = m->payload + sizeof(a);
    return 0;
}

int vu_decode_region_write_reply(const struct vu_msg *m, uint32_t requested,
                                 struct vu_region_access *out, struct vub_err *err)
{
    int r = reply_fixed(m, VU_CMD_REGION_WRITE, sizeof(*out), err);
    if (r)
        return r;
    memcpy(out, m->payload, sizeof(*out));
    if (out->count > requested)
        return vub_fail(err, -EPROTO, "%s: reply count %u exceeds the requested %u", NAME(m),
                       out->count, requested);
    return 0;
}

int vu_decode_write_multi_reply(const struct vu_msg *m, uint64_t requested, uint64_t *done,
                                struct vub_err *err)
{
    int r = reply_fixed(m, VU_CMD_REGION_WRITE_MULTI, sizeof(struct vu_write_multi), err);
    if (r)
        return r;
    struct vu_write_multi w;
    memcpy(&w, m->payload, sizeof(w));
    if (w.wr_cnt > requested)
        return vub_fail(err, -EPROTO, "%s: reply wr_cnt %llu exceeds the requested %llu",
                       NAME(m), (unsigned long long)w.wr_cnt, (unsigned long long)requested);
    *done = w.wr_cnt;
    return 0;
}

int vu_decode_mig_data_read_reply(const struct vu_msg *m, uint32_t requested,
                                  struct vu_mig_data_req *out, struct vub_err *err)
{
    int r = reply_status(m, VU_CMD_MIG_DATA_READ, err);
    if (r)
        return r;
    if (m->nfds)
        return vub_fail(err, -EPROTO, "%s: %zu unexpected fds in the reply", NAME(m), m->nfds);
    if (m->payload_len < sizeof(struct vu_mig_data))
        return vub_fail(err, -EPROTO, "%s: reply payload %zu is shorter than 8", NAME(m),
                       m->payload_len);
    struct vu_mig_data d;
    memcpy(&d, m->payload, sizeof(d));
    if (d.size > requested)
        return vub_fail(err, -EPROTO, "%s: reply size %u exceeds the requested %u", NAME(m),
                       d.size, requested);
    /* libvfio-user pads the reply to 8 + requested: use size, not msg_size. */
    if (m->payload_len < sizeof(d) + (size_t)d.size ||
        m->payload_len > sizeof(d) + (size_t)requested)
        return vub_fail(err, -EPROTO, "%s: reply payload %zu for size %u (requested %u)",
                       NAME(m), m->payload_len, d.size, requested);
    out->mig = d;
    out->data = m->payload + sizeof(d);
    return 0;
}

/* ---- region info capability chain ---------------------------------------------------- */

/* Size, placement and content of the cap at `off` (header h). */
static int cap_check(const uint8_t *b, size_t len, uint32_t off, const struct vu_cap_header *h,
                     const struct vu_region_info *ri, struct vu_region_caps *out,
                     struct vub_err *err)
{
    size_t left = len - off;
    size_t csz = sizeof(*h);
    uint32_t nr = 0;
    if (h->id == VU_REGION_INFO_CAP_SPARSE_MMAP) {
        struct vu_region_cap_sparse_mmap sm;
        if (out->has_sparse)
            return vub_fail(err, -EINVAL, "region info %u: second sparse-mmap cap at %u",
                           ri->index, off);
        if (left < sizeof(sm))
            return vub_fail(err, -EINVAL, "region info %u: sparse-mmap cap at %u truncated",
                           ri->index, off);
        memcpy(&sm, b + off, sizeof(sm));
        nr = sm.nr_areas;
        if ((left - sizeof(sm)) / sizeof(struct vu_sparse_mmap_area) < nr)
            return vub_fail(err, -EINVAL,
                           "region info %u: sparse-mmap cap at %u: %u areas do not fit in %zu "
                           "bytes",
                           ri->index, off, nr, left);
        csz = sizeof(sm) + (size_t)nr * sizeof(struct vu_sparse_mmap_area);
    } else if (h->id == VU_REGION_INFO_CAP_TYPE) {
        if (out->has_type)
            return vub_fail(err, -EINVAL, "region info %u: second type cap at %u", ri->index,
                           off);
        if (left < sizeof(struct vu_region_cap_type))
            return vub_fail(err, -EINVAL, "region info %u: type cap at %u truncated", ri->index,
                           off);
        csz = sizeof(struct vu_region_cap_type);
    }
    /* The next cap starts after this one ends: no loops, no overlap. */
    if (h->next != 0 && (h->next <= off || h->next - off < csz))
        return vub_fail(err, -EINVAL,
                       "region info %u: cap at %u (%zu bytes) has next %u (loop or overlap)",
                       ri->index, off, csz, h->next);

    if (h->id == VU_REGION_INFO_CAP_SPARSE_MMAP) {
        const uint8_t *p = b + off + sizeof(struct vu_region_cap_sparse_mmap);
        for (uint32_t i = 0; i < nr; i++) {
            struct vu_sparse_mmap_area a;
            memcpy(&a, p + (size_t)i * sizeof(a), sizeof(a));
            if (!range_ok(a.offset, a.size) || a.offset > ri->size ||
                a.size > ri->size - a.offset)
                return vub_fail(err, -EINVAL,
                               "region info %u: sparse area %u (0x%llx+0x%llx) outside the "
                               "region size 0x%llx",
                               ri->index, i, (unsigned long long)a.offset,
                               (unsigned long long)a.size, (unsigned long long)ri->size);
            if (i < VU_MAX_SPARSE_AREAS)
                out->areas[i] = a;
        }
        out->has_sparse = true;
        out->nr_areas = nr;
        out->nr_areas_kept = nr < VU_MAX_SPARSE_AREAS ? nr : VU_MAX_SPARSE_AREAS;
    } else if (h->id == VU_REGION_INFO_CAP_TYPE) {
        struct vu_region_cap_type t;
        memcpy(&t, b + off, sizeof(t));
        out->has_type = true;
        out->type = t.type;
        out->subtype = t.subtype;
    } else if (h->id == VU_REGION_INFO_CAP_MSIX_MAPPABLE) {
        out->msix_mappable = true;
    }
    return 0;
}

int vu_region_caps_parse(const void *info, size_t len, struct vu_region_caps *out,
                         struct vub_err *err)
{
    const uint8_t *b = info;
    memset(out, 0, sizeof(*out));
    if (len < sizeof(struct vu_region_info))
        return vub_fail(err, -EINVAL, "region info: %zu bytes, at least 32 needed", len);
    struct vu_region_info ri;
    memcpy(&ri, b, sizeof(ri));
    if (!(ri.flags & VU_REGION_INFO_FLAG_CAPS))
        return 0;
    if (len > sizeof(ri) + VU_MAX_REGION_CAPS)
        return vub_fail(err, -E2BIG, "region info %u: %zu bytes of caps exceed %u", ri.index,
                       len - sizeof(ri), VU_MAX_REGION_CAPS);
    uint32_t off = ri.cap_offset;
    int r;
    if (off < sizeof(ri) || off > len || len - off < sizeof(struct vu_cap_header))
        return vub_fail(err, -EINVAL, "region info %u: FLAG_CAPS with cap_offset %u (buffer %zu)",
                       ri.index, off, len);

    while (off) {
        if (off < sizeof(ri) || off > len || len - off < sizeof(struct vu_cap_header))
            return vub_fail(err, -EINVAL, "region info %u: cap at %u outside the %zu bytes",
                           ri.index, off, len);
        struct vu_cap_header h;
        memcpy(&h, b + off, sizeof(h));
        r = cap_check(b, len, off, &h, &ri, out, err);
        if (r) {
            memset(out, 0, sizeof(*out));
            return r;
        }
        out->nr_caps++;
        off = h.next;
    }
    return 0;
}

ssize_t vu_region_cap_sparse_build(void *buf, size_t bufsz, size_t at,
                                   const struct vu_sparse_mmap_area *areas, uint32_t n)
{
    size_t need = sizeof(struct vu_region_cap_sparse_mmap) +
                  (size_t)n * sizeof(struct vu_sparse_mmap_area);
    if (at > bufsz || bufsz - at < need)
        return -ENOSPC;
    struct vu_region_cap_sparse_mmap sm = {
        .header = {.id = VU_REGION_INFO_CAP_SPARSE_MMAP, .version = 1, .next = 0},
        .nr_areas = n,
        .reserved = 0,
    };
    uint8_t *p = (uint8_t *)buf + at;
    memcpy(p, &sm, sizeof(sm));
    if (n)
        memcpy(p + sizeof(sm), areas, (size_t)n * sizeof(*areas));
    return (ssize_t)need;
}

/* ---- the command table ---------------------------------------------------------
 * One row per command: its name (vu_cmd_name, every log and trace line) and
 * its request decoder (vu_decode_request: the tests and the fuzzers decode
 * any command through it). A new command adds its row here. */

typedef int (*vu_req_decoder)(const struct vu_msg *m, uint32_t max_xfer, union vu_request *o,
                              struct vub_err *err);

/* vu_decode_<fn> into o-><member>, with or without max_xfer. */
#define DEC(fn, member)                                                                    \
    static int dec_##fn(const struct vu_msg *m, uint32_t max_xfer, union vu_request *o,    \
                        struct vub_err *err)                                               \
    {                                                                                      \
        (void)max_xfer;                                                                    \
        return vu_decode_##fn(m, &o->member, err);                                         \
    }
#define DEC_XFER(fn, member)                                                               \
    static int dec_##fn(const struct vu_msg *m, uint32_t max_xfer, union vu_request *o,    \
                        struct vub_err *err)                                               \
    {                                                                                      \
        return vu_decode_##fn(m, max_xfer, &o->member, err);                               \
    }
DEC(version, version)
DEC(dma_map, dma_map)
DEC(dma_unmap, dma_unmap)
DEC(device_get_info, device_info)
DEC(region_info, region_info)
DEC(region_io_fds, region_io_fds)
DEC(irq_info, irq_info)
DEC(set_irqs, set_irqs)
DEC_XFER(region_read, region_access)
DEC_XFER(region_write, region_access)
DEC_XFER(dma_read, dma_access)
DEC_XFER(dma_write, dma_access)
DEC(write_multi, write_multi)
DEC(device_feature, device_feature)
DEC_XFER(mig_data_read, mig_data)
DEC_XFER(mig_data_write, mig_data)
#undef DEC
#undef DEC_XFER

static int dec_device_reset(const struct vu_msg *m, uint32_t max_xfer, union vu_request *o,
                            struct vub_err *err)
{
    (void)max_xfer;
    (void)o;
    return vu_decode_device_reset(m, err);
}

static const struct {
    const char *name;
    vu_req_decoder decode;
} cmd_table[VU_CMD_MAX + 1] = {
    [VU_CMD_VERSION] = { "VERSION", dec_version },
    [VU_CMD_DMA_MAP] = { "DMA_MAP", dec_dma_map },
    [VU_CMD_DMA_UNMAP] = { "DMA_UNMAP", dec_dma_unmap },
    [VU_CMD_DEVICE_GET_INFO] = { "DEVICE_GET_INFO", dec_device_get_info },
    [VU_CMD_DEVICE_GET_REGION_INFO] = { "DEVICE_GET_REGION_INFO", dec_region_info },
    [VU_CMD_DEVICE_GET_REGION_IO_FDS] = { "DEVICE_GET_REGION_IO_FDS", dec_region_io_fds },
    [VU_CMD_DEVICE_GET_IRQ_INFO] = { "DEVICE_GET_IRQ_INFO", dec_irq_info },
    [VU_CMD_DEVICE_SET_IRQS] = { "DEVICE_SET_IRQS", dec_set_irqs },
    [VU_CMD_REGION_READ] = { "REGION_READ", dec_region_read },
    [VU_CMD_REGION_WRITE] = { "REGION_WRITE", dec_region_write },
    [VU_CMD_DMA_READ] = { "DMA_READ", dec_dma_read },
    [VU_CMD_DMA_WRITE] = { "DMA_WRITE", dec_dma_write },
    [VU_CMD_DEVICE_RESET] = { "DEVICE_RESET", dec_device_reset },
    [VU_CMD_REGION_WRITE_MULTI] = { "REGION_WRITE_MULTI", dec_write_multi },
    [VU_CMD_DEVICE_FEATURE] = { "DEVICE_FEATURE", dec_device_feature },
    [VU_CMD_MIG_DATA_READ] = { "MIG_DATA_READ", dec_mig_data_read },
    [VU_CMD_MIG_DATA_WRITE] = { "MIG_DATA_WRITE", dec_mig_data_write },
};

const char *vu_cmd_name(unsigned cmd)
{
    if (cmd <= VU_CMD_MAX && cmd_table[cmd].name)
        return cmd_table[cmd].name;
    return "UNKNOWN";
}

int vu_decode_request(const struct vu_msg *m, uint32_t max_xfer, union vu_request *out,
                      struct vub_err *err)
{
    unsigned cmd = m->hdr.cmd;
    if (cmd > VU_CMD_MAX || !cmd_table[cmd].decode)
        return vub_fail(err, -EINVAL, "command %u has no decoder", cmd);
    return cmd_table[cmd].decode(m, max_xfer, out, err);
}
