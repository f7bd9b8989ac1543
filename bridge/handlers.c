/* SPDX-License-Identifier: MIT */
/*
 * One handler per vfio-user command. Each decodes its message with the
 * strict decoder of src/vu_proto.h, checks it against the device and the
 * session, makes its host-vfio call and describes the reply; br_handle_message
 * sends it (or the error) and releases what the reply held.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handlers.h"
#include "log.h"
#include "tap.h"

/* Errors logged per session at warning level; later ones at debug. */
#define BR_MAX_LOGGED_ERRORS 20u
/* A reset or DMA_MAP slower than this is logged: QEMU waits 5 s for a reply. */
#define BR_SLOW_REPLY_MS 1000

/* For the slow-reply warnings: a clock of the scheduler tick's resolution
 * (milliseconds), cheaper to read than the precise one; the threshold is a
 * second. */
#define BR_SLOW_CLOCK CLOCK_MONOTONIC_COARSE

/* Milliseconds elapsed on BR_SLOW_CLOCK since *t0. */
static long ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(BR_SLOW_CLOCK, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* REGION_READ data up to this size goes out of the reply's own buffer (no
 * allocation per message for register and config space reads). */
#define BR_REPLY_INLINE 64

/* A reply under construction: up to two payload pieces and one fd (sent
 * fd_copies times: --region-fds=per-area). Set up by reply_init: the error
 * text is only written on failure (not cleared per message: 512 bytes). */
struct reply {
    const void *p1, *p2;
    size_t l1, l2;
    int fd;              /* owned by the reply; -1 = none */
    unsigned fd_copies;  /* 0 = once */
    void *heap;          /* freed after sending */
    union {
        struct vu_version version;
        struct vu_dma_unmap unmap;
        struct vu_device_info info;
        struct vu_irq_info irq;
        struct vu_region_access acc;
        struct vu_write_multi multi;
    } fixed;
    uint8_t data[BR_REPLY_INLINE];   /* small REGION_READ data */
    struct vub_err err;   /* the reason of a failure, for the log */
    bool expected;       /* a failure that is an answer, not a fault (an index
                          * the device does not have): logged at debug level */
};

static void reply_init(struct reply *rep)
{
    rep->p1 = rep->p2 = NULL;
    rep->l1 = rep->l2 = 0;
    rep->fd = -1;
    rep->fd_copies = 0;
    rep->heap = NULL;
    rep->err.msg[0] = '\0';
    rep->expected = false;
}

typedef int (*handler_fn)(struct br_session *s, struct vu_msg *m, struct reply *rep);

#define DEV(s) ((s)->dev)
#define HV(s)  ((s)->dev->hv)

/* ---- VERSION (1) --------------------------------------------------------------- */

static int h_version(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    if (s->negotiated)
        return vub_fail(&rep->err, -EINVAL, "VERSION: already negotiated");
    char *json = malloc(VU_MAX_JSON);
    if (!json)
        return -ENOMEM;
    size_t len = 0;
    struct vu_version_out vo;
    int r = vu_version_answer(m, &DEV(s)->caps, &s->client_caps, &s->agreed, json, VU_MAX_JSON,
                              &len, &vo, &rep->err);
    if (r < 0) {
        free(json);
        return r;
    }
    rep->heap = json;
    rep->fixed.version = (struct vu_version){ .major = 0, .minor = vo.minor };
    rep->p1 = &rep->fixed.version;
    rep->l1 = sizeof(rep->fixed.version);
    rep->p2 = json;
    rep->l2 = len;
    s->negotiated = true;
    /* the DMA table's limit: the smaller of the two sides' */
    if (s->agreed.max_dma_maps < s->dma.max_maps)
        s->dma.max_maps = s->agreed.max_dma_maps;
    struct vu_version_req vr;
    vu_decode_version(m, &vr, NULL);   /* decoded above already: cannot fail */
    br_info("client pid %d: negotiated %u.%u (client proposed 0.%u%s; max_msg_fds %u, "
            "max_data_xfer_size %" PRIu64 "); answered: %s%s", (int)s->peer.pid, 0u, vo.minor,
            vr.minor, vr.json ? "" : ", no capabilities", s->client_caps.max_msg_fds,
            s->client_caps.max_data_xfer_size, json,
            vo.over_bound ? " (larger than the request: nothing smaller is valid JSON)"
            : vo.dropped ? " (keys dropped to fit the request)" : "");
    return 0;
}

/* ---- DMA_MAP (2) / DMA_UNMAP (3) -------------------------------------------------- */

static int h_dma_map(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    struct vu_dma_map req;
    int r = vu_decode_dma_map(m, &req, &rep->err);
    if (r < 0)
        return r;
    int fd = m->nfds ? vu_msg_take_fd(m, 0) : -1;
    struct timespec t0;
    clock_gettime(BR_SLOW_CLOCK, &t0);
    r = br_dma_map(&s->dma, HV(s), req.address, req.size, req.offset, req.flags, fd);
    long ms = ms_since(&t0);
    if (ms >= BR_SLOW_REPLY_MS)
        br_warn("DMA_MAP 0x%" PRIx64 "+0x%" PRIx64 " took %ld ms pinning memory (QEMU gives up on "
                "a reply after its x-msg-timeout, 5000 ms by default)", req.address, req.size, ms);
    if (r < 0)
        return vub_fail(&rep->err, r, "DMA_MAP 0x%" PRIx64 "+0x%" PRIx64 "%s: %s", req.address,
                       req.size, fd < 0 ? " (no fd)" : "", strerror(-r));
    br_debug("DMA_MAP 0x%" PRIx64 "+0x%" PRIx64 " off 0x%" PRIx64 " flags %u%s", req.address,
             req.size, req.offset, req.flags, fd < 0 ? " no fd: not reachable by the device" : "");
    return 0;   /* header-only reply */
}

static int h_dma_unmap(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    struct vu_dma_unmap req;
    int r = vu_decode_dma_unmap(m, &req, &rep->err);
    if (r < 0)
        return r;
    if (req.flags & VU_DMA_UNMAP_FLAG_ALL)
        r = br_dma_unmap_all(&s->dma, HV(s));
    else
        r = br_dma_unmap(&s->dma, HV(s), req.address, req.size);
    if (r < 0)
        return vub_fail(&rep->err, r, "DMA_UNMAP 0x%" PRIx64 "+0x%" PRIx64 ": %s", req.address,
                       req.size,
                       r == -EINVAL && !(req.flags & VU_DMA_UNMAP_FLAG_ALL)
                           ? "the range is empty, wraps, or cuts through a mapping"
                           : strerror(-r));
    if (!(req.flags & VU_DMA_UNMAP_FLAG_ALL))
        br_debug("DMA_UNMAP 0x%" PRIx64 "+0x%" PRIx64 ": %d mappings removed", req.address,
                 req.size, r);
    /* everything is released from the IOMMU already (a range unmap removes
     * every mapping inside it, like the kernel's type1); the reply echoes
     * the request */
    rep->fixed.unmap = req;
    rep->p1 = &rep->fixed.unmap;
    rep->l1 = sizeof(req);
    return 0;
}

/* ---- DEVICE_GET_INFO (4) -------------------------------------------------------- */

static int h_get_info(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    struct vu_device_info req;
    int r = vu_decode_device_get_info(m, &req, &rep->err);
    if (r < 0)
        return r;
    rep->fixed.info = (struct vu_device_info){
        .argsz = sizeof(struct vu_device_info),
        .flags = DEV(s)->flags,
        .num_regions = DEV(s)->num_regions,
        .num_irqs = DEV(s)->num_irqs,
    };
    rep->p1 = &rep->fixed.info;
    rep->l1 = sizeof(rep->fixed.info);
    return 0;
}

/* ---- DEVICE_GET_REGION_INFO (5) -------------------------------------------------- */

static int h_get_region_info(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    struct vu_region_info req;
    int r = vu_decode_region_info(m, &req, &rep->err);
    if (r < 0)
        return r;
    if (req.index >= DEV(s)->num_regions)
        return vub_fail(&rep->err, -EINVAL, "GET_REGION_INFO: no region %u", req.index);
    size_t bufsz = sizeof(struct vu_region_info) + BR_MAX_CHAIN, len = 0;
    uint8_t *buf = malloc(bufsz);
    if (!buf)
        return -ENOMEM;
    rep->heap = buf;
    /* a client that takes no fds (max_msg_fds 0) cannot map anything; a
     * device with one open file (a VFIO cdev) has none to give */
    bool no_mmap = DEV(s)->cfg->no_mmap || s->client_caps.max_msg_fds == 0 || DEV(s)->hv->one_file;
    r = br_dev_region_info(DEV(s), req.index, no_mmap, buf, bufsz, &len);
    if (r < 0)
        return vub_fail(&rep->err, r, "GET_REGION_INFO %u: %s", req.index, strerror(-r));

    struct vu_region_info out;
    memcpy(&out, buf, sizeof(out));
    if (req.argsz < len) {
        /* Only the fixed part fits: say how much is needed, and neither
         * claim caps that are not there (QEMU rejects CAPS with cap_offset
         * outside the reply) nor send an fd. */
        out.flags &= ~VU_REGION_INFO_FLAG_CAPS;
        out.cap_offset = 0;
        memcpy(buf, &out, sizeof(out));
        rep->p1 = buf;
        rep->l1 = sizeof(out);
        return 0;
    }
    if (out.flags & VU_REGION_INFO_FLAG_MMAP) {
        struct vu_region_caps *rc = malloc(sizeof(*rc));
        if (!rc)
            return -ENOMEM;
        uint32_t areas = 0;
        if (vu_region_caps_parse(buf, len, rc, NULL) == 0 && rc->has_sparse)
            areas = rc->nr_areas;
        free(rc);
        unsigned n = br_region_fd_count(DEV(s)->cfg->region_fds, &s->client_caps, areas);
        if (n == 0)   /* cannot happen: no_mmap above; never MMAP without the fd */
            return vub_fail(&rep->err, -EINVAL, "GET_REGION_INFO %u: MMAP without an fd",
                           req.index);
        rep->fd = br_session_device_file(s);
        if (rep->fd < 0) {
            r = rep->fd;
            rep->fd = -1;
            return vub_fail(&rep->err, r, "GET_REGION_INFO %u: no mmap fd: %s", req.index,
                           strerror(-r));
        }
        rep->fd_copies = n;
    }
    rep->p1 = buf;
    rep->l1 = len;
    return 0;
}

/* ---- DEVICE_GET_REGION_IO_FDS (6): not supported ----------------------------------- */

static int h_get_region_io_fds(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    struct vu_region_io_fds_request req;
    int r = vu_decode_region_io_fds(m, &req, &rep->err);
    if (r < 0)
        return r;
    return vub_fail(&rep->err, -ENOTSUP, "GET_REGION_IO_FDS: not supported");
}

/* ---- DEVICE_GET_IRQ_INFO (7) -------------------------------------------------- */

static int h_get_irq_info(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    struct vu_irq_info req;
    int r = vu_decode_irq_info(m, &req, &rep->err);
    if (r < 0)
        return r;
    if (req.index >= DEV(s)->num_irqs)
        return vub_fail(&rep->err, -EINVAL, "GET_IRQ_INFO: no IRQ index %u", req.index);
    struct hv_irq_info ii;
    r = hv_get_irq_info(HV(s), req.index, &ii);
    if (r == -EINVAL) {
        /* an index the device lacks (ERR (3), which QEMU asks for, on
         * conventional PCI): no interrupts of that kind, not an error
         * (cloud-hypervisor's client never reads an error reply) */
        memset(&ii, 0, sizeof(ii));
    } else if (r < 0) {
        return vub_fail(&rep->err, r, "GET_IRQ_INFO %u: %s", req.index, strerror(-r));
    }
    rep->fixed.irq = (struct vu_irq_info){
        .argsz = sizeof(struct vu_irq_info),
        .flags = ii.flags & BR_IRQ_FLAGS_PASSED,
        .index = req.index,
        .count = ii.count < BR_MAX_IRQ_VECTORS ? ii.count : BR_MAX_IRQ_VECTORS,
    };
    if (DEV(s)->reserved_irqs & (1u << req.index))
        rep->fixed.irq.count = 0;    /* the bridge's own (e.g. REQ for the device watch) */
    rep->p1 = &rep->fixed.irq;
    rep->l1 = sizeof(rep->fixed.irq);
    return 0;
}

/* ---- DEVICE_SET_IRQS (8) -------------------------------------------------------- */

static int h_set_irqs(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    struct vu_irq_set_req req;
    int r = vu_decode_set_irqs(m, &req, &rep->err);
    if (r < 0)
        return r;
    /* the eventfds stay owned by the message: the kernel (and the shadow
     * table) take their own references */
    r = br_irq_set(&s->irq, HV(s), &req.set, req.bools, m->fds, req.nfds);
    if (r < 0)
        return vub_fail(&rep->err, r, "SET_IRQS index %u flags 0x%x start %u count %u: %s",
                       req.set.index, req.set.flags, req.set.start, req.set.count, strerror(-r));
    br_debug("SET_IRQS index %u flags 0x%x start %u count %u fds %zu", req.set.index,
             req.set.flags, req.set.start, req.set.count, req.nfds);
    return 0;
}

/* ---- REGION_READ (9) / REGION_WRITE (10) ---------------------------------------- */

static int h_region_read(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    struct vu_region_access_req req;
    /* The reply carries count bytes: no more than both sides take. Except
     * the ROM, up to the bridge's own value (raised to the ROM's size):
     * QEMU reads the whole ROM in one request bounded only by the server's
     * value, whatever it stated itself (its own bounds DMA_READ/WRITE). */
    uint32_t max = (uint32_t)s->agreed.max_data_xfer_size;
    if (m->payload_len >= sizeof(struct vu_region_access)) {
        struct vu_region_access a;
        memcpy(&a, m->payload, sizeof(a));
        if (a.region == VU_PCI_ROM_REGION_INDEX)
            max = (uint32_t)DEV(s)->caps.max_data_xfer_size;
    }
    int r = vu_decode_region_read(m, max, &req, &rep->err);
    if (r == -E2BIG) {   /* the decoder only says so once the header is there */
        struct vu_region_access a;
        memcpy(&a, m->payload, sizeof(a));
        return vub_fail(&rep->err, r, "REGION_READ %u @0x%" PRIx64 ": count %u exceeds the "
                       "negotiated max_data_xfer_size %u (the client's %" PRIu64 ", the "
                       "bridge's %" PRIu64 ")", a.region, a.offset, a.count, max,
                       s->client_caps.max_data_xfer_size, DEV(s)->caps.max_data_xfer_size);
    }
    if (r < 0)
        return r;
    if (!br_dev_access_ok(DEV(s), req.acc.region, req.acc.offset, req.acc.count))
        return vub_fail(&rep->err, -EINVAL, "REGION_READ %u @0x%" PRIx64 "+%u: outside the region",
                       req.acc.region, req.acc.offset, req.acc.count);
    rep->fixed.acc = req.acc;
    rep->p1 = &rep->fixed.acc;
    rep->l1 = sizeof(rep->fixed.acc);
    if (req.acc.count == 0)
        return 0;
    void *data = rep->data;
    if (req.acc.count > sizeof(rep->data)) {
        if (!(data = malloc(req.acc.count)))
            return -ENOMEM;
        rep->heap = data;
    }
    ssize_t n = hv_region_read(HV(s), req.acc.region, req.acc.offset, data,
                                        req.acc.count);
    if (n < 0)
        return vub_fail(&rep->err, (int)n, "REGION_READ %u @0x%" PRIx64 "+%u: %s", req.acc.region,
                       req.acc.offset, req.acc.count, strerror((int)-n));
    if ((size_t)n > req.acc.count)
        n = req.acc.count;
    rep->fixed.acc.count = (uint32_t)n;
    rep->p2 = data;
    rep->l2 = (size_t)n;
    return 0;
}

static int h_region_write(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    struct vu_region_access_req req;
    int r = vu_decode_region_write(m, (uint32_t)DEV(s)->caps.max_data_xfer_size, &req, &rep->err);
    if (r < 0)
        return r;
    if (!br_dev_access_ok(DEV(s), req.acc.region, req.acc.offset, req.acc.count))
        return vub_fail(&rep->err, -EINVAL, "REGION_WRITE %u @0x%" PRIx64 "+%u: outside the region",
                       req.acc.region, req.acc.offset, req.acc.count);
    ssize_t n = 0;
    if (req.acc.count) {
        n = hv_region_write(HV(s), req.acc.region, req.acc.offset, req.data,
                                     req.acc.count);
        if (n < 0)
            return vub_fail(&rep->err, (int)n, "REGION_WRITE %u @0x%" PRIx64 "+%u: %s",
                           req.acc.region, req.acc.offset, req.acc.count, strerror((int)-n));
    }
    rep->fixed.acc = req.acc;
    rep->fixed.acc.count = (uint32_t)((size_t)n > req.acc.count ? req.acc.count : (size_t)n);
    rep->p1 = &rep->fixed.acc;
    rep->l1 = sizeof(rep->fixed.acc);
    return 0;
}

/* ---- DMA_READ (11) / DMA_WRITE (12): server -> client only ------------------------- */

static int h_dma_rw(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    return vub_fail(&rep->err, -EINVAL, "%s: a server-to-client command",
                   vu_cmd_name(m->hdr.cmd));
}

/* ---- DEVICE_RESET (13) -------------------------------------------------------- */

static int h_device_reset(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    int r = vu_decode_device_reset(m, &rep->err);
    if (r < 0)
        return r;
    if (!(DEV(s)->flags & VU_DEVICE_FLAGS_RESET))
        return vub_fail(&rep->err, -ENOTSUP, "DEVICE_RESET: the device has no reset");
    struct timespec t0;
    clock_gettime(BR_SLOW_CLOCK, &t0);
    char why[384];
    r = br_dev_reset(DEV(s), why, sizeof(why));
    long ms = ms_since(&t0);
    if (ms >= BR_SLOW_REPLY_MS)
        br_warn("DEVICE_RESET took %ld ms (QEMU gives up on a reply after 5000 ms)", ms);
    if (r < 0)
        return vub_fail(&rep->err, r, "DEVICE_RESET: %s", why);
    return 0;
}

/* ---- REGION_WRITE_MULTI (15) ---------------------------------------------------- */

static int h_region_write_multi(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    struct vu_write_multi_req req;
    int r = vu_decode_write_multi(m, &req, &rep->err);
    if (r < 0)
        return r;
    uint64_t done = 0;
    for (uint64_t i = 0; i < req.wr_cnt; i++) {
        struct vu_write_multi_entry e;
        memcpy(&e, &req.wrs[i], sizeof(e));
        if (!br_dev_access_ok(DEV(s), e.region, e.offset, e.count))
            return vub_fail(&rep->err, -EINVAL,
                           "REGION_WRITE_MULTI entry %" PRIu64 " (%u @0x%" PRIx64 "+%u): outside "
                           "the region; %" PRIu64 " done", i, e.region, e.offset, e.count, done);
        ssize_t n = hv_region_write(HV(s), e.region, e.offset, e.data, e.count);
        if (n < 0 || (size_t)n != e.count)
            return vub_fail(&rep->err, n < 0 ? (int)n : -EIO,
                           "REGION_WRITE_MULTI entry %" PRIu64 ": %s; %" PRIu64 " done", i,
                           n < 0 ? strerror((int)-n) : "short write", done);
        done++;
    }
    rep->fixed.multi.wr_cnt = done;
    rep->p1 = &rep->fixed.multi;
    rep->l1 = sizeof(rep->fixed.multi);
    return 0;
}

/* ---- DEVICE_FEATURE (16), MIG_DATA_READ (17), MIG_DATA_WRITE (18) ------------------- */

static int h_device_feature(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    struct vu_device_feature_req req;
    int r = vu_decode_device_feature(m, &req, &rep->err);
    if (r < 0)
        return r;
    return vub_fail(&rep->err, -ENOTSUP, "DEVICE_FEATURE %u: not supported (no migration)",
                   req.feat.flags & VU_DEVICE_FEATURE_MASK);
}

static int h_mig_data_read(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    struct vu_mig_data_req req;
    int r = vu_decode_mig_data_read(m, (uint32_t)DEV(s)->caps.max_data_xfer_size, &req, &rep->err);
    if (r < 0)
        return r;
    return vub_fail(&rep->err, -ENOTSUP, "MIG_DATA_READ: not supported (no migration)");
}

static int h_mig_data_write(struct br_session *s, struct vu_msg *m, struct reply *rep)
{
    struct vu_mig_data_req req;
    int r = vu_decode_mig_data_write(m, (uint32_t)DEV(s)->caps.max_data_xfer_size, &req,
                                     &rep->err);
    if (r < 0)
        return r;
    return vub_fail(&rep->err, -ENOTSUP, "MIG_DATA_WRITE: not supported (no migration)");
}

/* ---- dispatch -------------------------------------------------------------------- */

static const handler_fn handlers[VU_CMD_MAX + 1] = {
    [VU_CMD_VERSION] = h_version,
    [VU_CMD_DMA_MAP] = h_dma_map,
    [VU_CMD_DMA_UNMAP] = h_dma_unmap,
    [VU_CMD_DEVICE_GET_INFO] = h_get_info,
    [VU_CMD_DEVICE_GET_REGION_INFO] = h_get_region_info,
    [VU_CMD_DEVICE_GET_REGION_IO_FDS] = h_get_region_io_fds,
    [VU_CMD_DEVICE_GET_IRQ_INFO] = h_get_irq_info,
    [VU_CMD_DEVICE_SET_IRQS] = h_set_irqs,
    [VU_CMD_REGION_READ] = h_region_read,
    [VU_CMD_REGION_WRITE] = h_region_write,
    [VU_CMD_DMA_READ] = h_dma_rw,
    [VU_CMD_DMA_WRITE] = h_dma_rw,
    [VU_CMD_DEVICE_RESET] = h_device_reset,
    [VU_CMD_REGION_WRITE_MULTI] = h_region_write_multi,
    [VU_CMD_DEVICE_FEATURE] = h_device_feature,
    [VU_CMD_MIG_DATA_READ] = h_mig_data_read,
    [VU_CMD_MIG_DATA_WRITE] = h_mig_data_write,
};

int br_handle_message(struct br_session *s, struct vu_msg *m)
{
    struct reply rep;
    reply_init(&rep);
    unsigned cmd = m->hdr.cmd;
    int r;
    struct br_tap_msg tm;
    /* without --trace and --inject there is no tap: nothing to begin, and
     * the answer goes out with the tap's plain send */
    bool tapped = s->dev->tap != NULL;

    s->n_msgs++;
    if (tapped)
        br_tap_begin(&tm, s, m);   /* trace, clock, injected fault (tap.h) */
    if ((m->hdr.flags & VU_F_TYPE_MASK) != VU_F_TYPE_CMD) {
        /* The bridge sends no commands, so no reply can be expected. Counted
         * with the errors: a stream of them must not flood the log. */
        s->n_errors++;
        br_log(s->n_errors <= BR_MAX_LOGGED_ERRORS ? BR_LOG_WARN : BR_LOG_DEBUG,
               "client pid %d: ignoring an unsolicited reply (id %u, cmd %u)",
               (int)s->peer.pid, m->hdr.msg_id, cmd);
        return 0;
    }
    handler_fn fn = cmd <= VU_CMD_MAX ? handlers[cmd] : NULL;
    if (!fn)
        r = vub_fail(&rep.err, -ENOSYS, "unknown command %u", cmd);
    else if (!s->negotiated && cmd != VU_CMD_VERSION)
        r = vub_fail(&rep.err, -EINVAL, "%s before VERSION", vu_cmd_name(cmd));
    else if (tapped && br_tap_replaces(&tm))
        r = br_tap_instead(&tm, s, m, &rep.p1, &rep.l1, &rep.heap, &rep.err);
    else
        r = fn(s, m, &rep);

    if (r < 0) {
        s->n_errors++;
        enum br_log_level lvl = s->n_errors <= BR_MAX_LOGGED_ERRORS && !rep.expected
                                    ? BR_LOG_WARN : BR_LOG_DEBUG;
        br_log(lvl, "client pid %d: %s (id %u) failed: %s%s", (int)s->peer.pid,
               vu_cmd_name(cmd), m->hdr.msg_id, rep.err.msg[0] ? rep.err.msg : strerror(-r),
               s->n_errors == BR_MAX_LOGGED_ERRORS ? " (further errors at debug level)" : "");
    }
    /* the reply (or error) goes out here, through the tap */
    unsigned copies = rep.fd_copies ? rep.fd_copies : 1u;
    int sr = tapped ? br_tap_send(&tm, s, m, r, rep.err.msg, rep.p1, rep.l1, rep.p2, rep.l2,
                                  &rep.fd, copies)
                    : br_tap_send_now(s, m, r, rep.p1, rep.l1, rep.p2, rep.l2, rep.fd, copies);
    if (rep.fd >= 0)
        close(rep.fd);
    if (rep.heap)   /* most replies have none: no call */
        free(rep.heap);
    return sr < 0 ? sr : 0;
}
