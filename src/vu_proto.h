/* SPDX-License-Identifier: MIT */
/*
 * vu_proto.h - messages, strict decoding, transport and capability
 * negotiation of the vfio-user protocol. Used by the server (bridge/) and by
 * clients (tools/, tests). Knows nothing of kernels or devices.
 *
 * Conventions: functions that can fail return 0 (or a non-negative count)
 * on success and a negative errno on failure. Where a `struct vub_err *` is
 * taken (it may be NULL), a failure also leaves a human-readable reason in it
 * ("DMA_MAP: argsz 16 is smaller than 32"). Nothing here prints.
 */
#ifndef VU_PROTO_H
#define VU_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "vub_err.h"

#include "vu_wire.h"

/* ---- errors --------------------------------------------------------------- */

/* struct vub_err and vub_fail (common/vub_err.h): the reason of a failure. */

/* ---- limits ---------------------------------------------------------------- */

/* Hard caps, whatever was negotiated. */
#define VU_MAX_FDS_PER_MSG     16u          /* most fds one message may carry */
#define VU_MAX_DATA_XFER       (64u << 20)  /* largest max_data_xfer_size accepted */
#define VU_DEFAULT_DATA_XFER   (1u << 20)   /* spec default */
#define VU_MAX_JSON            4096u        /* largest VERSION JSON accepted */
#define VU_MAX_SPARSE_AREAS    64u          /* areas kept from a sparse-mmap cap */
#define VU_MAX_REGION_CAPS     1024u        /* largest cap chain accepted (bytes) */

/* What one connection's receive path accepts. Checked on the header, before
 * the body is allocated. */
struct vu_limits {
    uint32_t max_msg_size;  /* including header */
    uint32_t max_fds;       /* fds in one message, <= VU_MAX_FDS_PER_MSG */
};

/* max_msg_size 16 + 16 + VU_DEFAULT_DATA_XFER, max_fds VU_MAX_FDS_PER_MSG. */
void vu_limits_default(struct vu_limits *lim);

/* ---- messages --------------------------------------------------------------- */

/* A received message. Owns its payload and its fds until released. A handler
 * that keeps an fd takes it with vu_msg_take_fd(); every fd still in the
 * message is closed by vu_msg_release(). */
struct vu_msg {
    struct vu_hdr hdr;
    uint8_t *payload;       /* hdr.msg_size - 16 bytes, NULL if 0; points into the
                             * connection's receive buffer: valid until the next
                             * vu_recv() or vu_conn_close() on that connection */
    size_t payload_len;
    int fds[VU_MAX_FDS_PER_MSG];
    size_t nfds;
};

/* An empty message: no header, payload or fds (every fd slot -1). Inline:
 * every message starts and ends here, twice on each side. The fds are set
 * with one block store (all bytes 0xff is -1 in two's complement). */
static inline void vu_msg_init(struct vu_msg *m)
{
    memset(&m->hdr, 0, sizeof(m->hdr));
    m->payload = NULL;
    m->payload_len = 0;
    memset(m->fds, 0xff, sizeof(m->fds));
    m->nfds = 0;
}
/* Close all fds of the message now (e.g. a command that may not carry fds). */
void vu_msg_close_fds(struct vu_msg *m);
/* Close every fd not taken, re-init (the payload belongs to the connection).
 * Safe to call twice. Inline, like vu_msg_init. */
static inline void vu_msg_release(struct vu_msg *m)
{
    if (m->nfds)
        vu_msg_close_fds(m);
    vu_msg_init(m);
}
/* Take ownership of fd i (returns it and leaves -1 in its slot); -EBADF if
 * i >= nfds or the fd was already taken. */
int vu_msg_take_fd(struct vu_msg *m, size_t i);

/* ---- header validation ------------------------------------------------------ */

/* Check a received header against the protocol and the limits: size >= 16,
 * size <= lim->max_msg_size, type 0 or 1, no unknown flag bits, no Error or
 * error_no in a command, No_reply only in a command. -EINVAL/-E2BIG. */
int vu_hdr_check(const struct vu_hdr *h, const struct vu_limits *lim, struct vub_err *err);
/* vu_hdr_check's answer without the reason (inline, for the message path):
 * true exactly when vu_hdr_check returns 0. Known flags only, and either a
 * command (type 0, maybe No_reply, no Error flag, error_no 0) or a reply
 * (type 1, maybe the Error flag, no No_reply, error_no only with Error). */
static inline bool vu_hdr_valid(const struct vu_hdr *h, const struct vu_limits *lim)
{
    uint32_t f = h->flags;
    return h->msg_size >= VU_HDR_SIZE && (!lim || h->msg_size <= lim->max_msg_size) &&
           (((f & ~VU_F_NO_REPLY) == VU_F_TYPE_CMD && h->error_no == 0) ||
            ((f & ~VU_F_ERROR) == VU_F_TYPE_REPLY && ((f & VU_F_ERROR) || h->error_no == 0)));
}

/* ---- decoding of requests (server side) --------------------------------------
 *
 * Each decoder checks msg_size against the command's rules, argsz (section 5.3
 * of the protocol reference), flag combinations, counts against payload
 * length, and the number of fds the command may carry. On success it fills
 * `out` (pointers inside `out` point into m->payload and live as long as m).
 * It never takes fds; a caller that wants them uses vu_msg_take_fd(). On
 * failure: negative errno (normally -EINVAL; -E2BIG for a count above the
 * negotiated transfer size) and a reason in err.
 */

struct vu_version_req {
    uint16_t major, minor;
    const char *json;   /* NUL-terminated inside the payload, or NULL (no version
                         * data, or only its NUL) */
    size_t json_len;    /* without the NUL */
};
int vu_decode_version(const struct vu_msg *m, struct vu_version_req *out, struct vub_err *err);

/* fd count 0 or 1; flags only READ|WRITE; argsz == 32; size != 0;
 * address + size does not wrap; offset == 0 when no fd is attached. */
int vu_decode_dma_map(const struct vu_msg *m, struct vu_dma_map *out, struct vub_err *err);
/* at most 1 fd (SPDK attaches its memory fd to the unmap too; it is not
 * used and is closed with the message); payload 24; argsz >= 24; flags 0 or
 * ALL; ALL requires address == size == 0. */
int vu_decode_dma_unmap(const struct vu_msg *m, struct vu_dma_unmap *out, struct vub_err *err);
/* Info queries (GET_INFO, GET_REGION_INFO, GET_IRQ_INFO): argsz is the
 * largest reply the client takes, and a client may send its whole argsz-
 * sized buffer as the request (SPDK: argsz 4064 with a 4064-byte body), so
 * the payload may be anything from the fixed struct up to
 * max(struct, argsz) bytes; the bytes after the struct are ignored. */
/* no fds; 16 <= payload <= max(16, argsz); argsz >= 16. */
int vu_decode_device_get_info(const struct vu_msg *m, struct vu_device_info *out, struct vub_err *err);
/* no fds; 32 <= payload <= max(32, argsz); argsz >= 32; flags, cap_offset,
 * size, offset == 0. */
int vu_decode_region_info(const struct vu_msg *m, struct vu_region_info *out, struct vub_err *err);
/* no fds; payload 16; argsz >= 16; flags == 0 and count == 0. */
int vu_decode_region_io_fds(const struct vu_msg *m, struct vu_region_io_fds_request *out, struct vub_err *err);
/* no fds; 16 <= payload <= max(16, argsz); argsz >= 16. index range is the
 * device's business. */
int vu_decode_irq_info(const struct vu_msg *m, struct vu_irq_info *out, struct vub_err *err);

struct vu_irq_set_req {
    struct vu_irq_set set;
    const uint8_t *bools;   /* DATA_BOOL: count bytes; else NULL */
    size_t nfds;            /* DATA_EVENTFD: m->nfds (0 = de-assign, or == count) */
};
/* exactly one DATA and one ACTION bit; argsz == payload length; BOOL:
 * payload == 20 + count; NONE/EVENTFD: payload == 20; fds only with
 * DATA_EVENTFD and then 0 or exactly count; count 0 only with start 0,
 * DATA_NONE and ACTION_TRIGGER; start + count does not wrap. */
int vu_decode_set_irqs(const struct vu_msg *m, struct vu_irq_set_req *out, struct vub_err *err);

struct vu_region_access_req {
    struct vu_region_access acc;
    const uint8_t *data;    /* WRITE: count bytes; READ: NULL */
};
/* READ: payload == 16; WRITE: payload == 16 + count. count <= max_xfer
 * (else -E2BIG); offset + count does not wrap; no fds. */
int vu_decode_region_read(const struct vu_msg *m, uint32_t max_xfer,
                          struct vu_region_access_req *out, struct vub_err *err);
int vu_decode_region_write(const struct vu_msg *m, uint32_t max_xfer,
                           struct vu_region_access_req *out, struct vub_err *err);

struct vu_write_multi_req {
    uint64_t wr_cnt;
    const struct vu_write_multi_entry *wrs;  /* unaligned: read with memcpy */
};
/* payload == 8 + 24 * wr_cnt; 1 <= wr_cnt <= VU_WRITE_MULTI_MAX_ENTRIES;
 * every entry's count in 1..8; no fds. */
int vu_decode_write_multi(const struct vu_msg *m, struct vu_write_multi_req *out, struct vub_err *err);
/* payload == 0; no fds. */
int vu_decode_device_reset(const struct vu_msg *m, struct vub_err *err);

struct vu_device_feature_req {
    struct vu_device_feature feat;
    const uint8_t *data;
    size_t data_len;
};
/* payload >= 8; GET and SET exclusive unless PROBE; no fds. */
int vu_decode_device_feature(const struct vu_msg *m, struct vu_device_feature_req *out, struct vub_err *err);

struct vu_mig_data_req {
    struct vu_mig_data mig;
    const uint8_t *data;  /* WRITE only */
};
/* no fds; size <= max_xfer (else -E2BIG); argsz >= 8 + size;
 * READ: payload == 8; WRITE: payload == 8 + size. */
int vu_decode_mig_data_read(const struct vu_msg *m, uint32_t max_xfer,
                            struct vu_mig_data_req *out, struct vub_err *err);
int vu_decode_mig_data_write(const struct vu_msg *m, uint32_t max_xfer,
                             struct vu_mig_data_req *out, struct vub_err *err);

/* Server -> client DMA_READ (11) / DMA_WRITE (12), decoded by a client.
 * no fds; count <= max_xfer (else -E2BIG); address + count does not wrap;
 * READ: payload == 16; WRITE: payload == 16 + count. */
struct vu_dma_access_req {
    struct vu_dma_access acc;
    const uint8_t *data;  /* WRITE: count bytes; READ: NULL */
};
int vu_decode_dma_read(const struct vu_msg *m, uint32_t max_xfer,
                       struct vu_dma_access_req *out, struct vub_err *err);
int vu_decode_dma_write(const struct vu_msg *m, uint32_t max_xfer,
                        struct vu_dma_access_req *out, struct vub_err *err);

/* Any request, decoded by its command through the one command table
 * (vu_decode.c: a command's name and its decoder side by side): the member
 * named like the command holds the result (reset: none). max_xfer as for
 * the REGION/DMA/MIG decoders. -EINVAL for a command without a decoder. */
union vu_request {
    struct vu_version_req version;
    struct vu_dma_map dma_map;
    struct vu_dma_unmap dma_unmap;
    struct vu_device_info device_info;
    struct vu_region_info region_info;
    struct vu_region_io_fds_request region_io_fds;
    struct vu_irq_info irq_info;
    struct vu_irq_set_req set_irqs;
    struct vu_region_access_req region_access;   /* REGION_READ and _WRITE */
    struct vu_dma_access_req dma_access;         /* DMA_READ and _WRITE */
    struct vu_write_multi_req write_multi;
    struct vu_device_feature_req device_feature;
    struct vu_mig_data_req mig_data;             /* MIG_DATA_READ and _WRITE */
};
int vu_decode_request(const struct vu_msg *m, uint32_t max_xfer, union vu_request *out,
                      struct vub_err *err);

/* ---- decoding of replies (client side) --------------------------------------
 * Each checks the reply header (type reply, cmd matches, no Error bit: an
 * error reply yields -error_no, or -EIO if error_no is 0 or > 4096) and then
 * the payload layout. */

int vu_reply_status(const struct vu_msg *reply, unsigned cmd, struct vub_err *err);
int vu_decode_version_reply(const struct vu_msg *m, struct vu_version_req *out, struct vub_err *err);
int vu_decode_dma_unmap_reply(const struct vu_msg *m, struct vu_dma_unmap *out, struct vub_err *err);
int vu_decode_device_info_reply(const struct vu_msg *m, struct vu_device_info *out, struct vub_err *err);
int vu_decode_irq_info_reply(const struct vu_msg *m, struct vu_irq_info *out, struct vub_err *err);
/* READ reply: payload == 16 + count, count <= requested. */
int vu_decode_region_read_reply(const struct vu_msg *m, uint32_t requested,
                                struct vu_region_access_req *out, struct vub_err *err);
/* Reply without payload and fds (DMA_MAP, SET_IRQS, RESET, MIG_DATA_WRITE). */
int vu_decode_empty_reply(const struct vu_msg *m, unsigned cmd, struct vub_err *err);
/* WRITE reply: payload == 16, count <= requested. */
int vu_decode_region_write_reply(const struct vu_msg *m, uint32_t requested,
                                 struct vu_region_access *out, struct vub_err *err);
/* WRITE_MULTI reply: payload == 8, wr_cnt <= requested. */
int vu_decode_write_multi_reply(const struct vu_msg *m, uint64_t requested, uint64_t *done,
                                struct vub_err *err);
/* MIG_DATA_READ reply: size <= requested; 8 + size <= payload <= 8 + requested
 * (libvfio-user pads to the requested size). */
int vu_decode_mig_data_read_reply(const struct vu_msg *m, uint32_t requested,
                                  struct vu_mig_data_req *out, struct vub_err *err);

/* ---- region info capability chains ------------------------------------------ */

/* What a capability chain says, parsed and bounded. */
struct vu_region_caps {
    bool has_sparse;
    uint32_t nr_areas;        /* as the cap said */
    uint32_t nr_areas_kept;   /* min(nr_areas, VU_MAX_SPARSE_AREAS) */
    struct vu_sparse_mmap_area areas[VU_MAX_SPARSE_AREAS];
    bool has_type;
    uint32_t type, subtype;
    bool msix_mappable;
    uint32_t nr_caps;         /* every cap seen, known or not */
};

/* Parse the chain of a region info buffer `info` of `len` bytes (the 32-byte
 * struct followed by caps; cap offsets are from the start of info). Checks
 * every cap header lies inside the buffer, offsets >= 32, no loops (each next
 * strictly greater), known caps' sizes; unknown ids are counted and skipped.
 * A reply with FLAG_CAPS but cap_offset 0 or out of range is -EINVAL.
 * With no CAPS flag, out is zeroed and 0 returned. */
int vu_region_caps_parse(const void *info, size_t len, struct vu_region_caps *out, struct vub_err *err);

/* Build a sparse-mmap capability at `buf + at` (at relative to the start of the
 * region info), next = 0. Returns bytes written or -ENOSPC. */
ssize_t vu_region_cap_sparse_build(void *buf, size_t bufsz, size_t at,
                                   const struct vu_sparse_mmap_area *areas, uint32_t n);

/* ---- transport -------------------------------------------------------------- */

struct vu_conn;

/* A transport moves whole messages. send: one message (header+payload) with
 * fds in one system call when the socket has room, all or nothing from the
 * caller's view (partial writes are completed; the fds go with the first
 * byte). recv: one read takes what is queued into the connection's buffer
 * (several messages, when they are there); each header is checked against
 * lim before the buffer grows for its body; fds belong to the message whose
 * first byte they came with; MSG_CTRUNC is an error (and every fd that did
 * arrive is closed). */
struct vu_transport_ops {
    int (*send)(struct vu_conn *c, const struct iovec *iov, int iovcnt,
                const int *fds, size_t nfds);
    int (*recv)(struct vu_conn *c, struct vu_msg *m);
    void (*close)(struct vu_conn *c);
};

struct vu_conn {
    const struct vu_transport_ops *ops;
    int fd;                 /* socket, or read end for the pipe transport */
    int wfd;                /* write end (== fd for sockets) */
    struct vu_limits lim;
    struct vub_err err;      /* reason of the last failure */
    int io_timeout_ms;      /* longest wait, in total, for the rest of a started
                             * message (and for send space for a whole
                             * message), counted from the first wait: bytes
                             * trickling in do not extend it; < 0 = forever.
                             * Default 10000. Expiry: -ETIMEDOUT. */

    /* Receive buffer: bytes read ahead, [rx_head, rx_tail) not yet handed
     * out; at most one set of fds held, for the message at rx_fds_at. */
    uint8_t *rx;
    size_t rx_cap, rx_head, rx_tail;
    int rx_fds[VU_MAX_FDS_PER_MSG];
    size_t rx_nfds;
    size_t rx_fds_at;

    /* Exact reads (vu_conn_set_rx_hook): nothing is read beyond the message
     * being received, and each message's header is first peeked at (not
     * consumed) and shown to rx_hook. A process that can die at any point
     * then never holds bytes the peer sent that are neither handled nor
     * still in the socket, and knows a message's id before it is taken
     * (the bridge's fd store, bridge/fdstore.h). NULL: read ahead freely. */
    void (*rx_hook)(void *arg, const struct vu_hdr *h);
    void *rx_hook_arg;
};

/* Socket transport on a connected AF_UNIX SOCK_STREAM fd (takes ownership).
 * lim NULL = vu_limits_default(); lim->max_fds is clamped to
 * VU_MAX_FDS_PER_MSG. The fd may be blocking or non-blocking. */
void vu_conn_init_socket(struct vu_conn *c, int fd, const struct vu_limits *lim);
/* Byte-stream transport without fds (for fuzzing from stdin/pipes). Sent fds
 * are refused with -EINVAL. Takes ownership of both fds (may be equal). */
void vu_conn_init_stream(struct vu_conn *c, int rfd, int wfd, const struct vu_limits *lim);
void vu_conn_close(struct vu_conn *c);

/* Put bytes another process of this program had read ahead on this
 * connection, and the fds held for the message at fds_at, back into a fresh
 * connection's receive buffer (live re-exec): the next vu_recv hands them out
 * as if just read. The saving side reads them from rx[rx_head, rx_tail),
 * rx_fds[0, rx_nfds) and rx_fds_at - rx_head. The fds are owned by c on
 * success; on error (-EINVAL: c not fresh, fds_at outside the bytes, too many
 * fds; -ENOMEM) nothing is taken. */
int vu_conn_preload(struct vu_conn *c, const void *bytes, size_t n, const int *fds, size_t nfds,
                    size_t fds_at);

/* Exact reads with a hook (see struct vu_conn); hook NULL turns them off.
 * Costs one more system call per message (the peek). Nothing may be read
 * ahead when it is set (-EBUSY otherwise). */
int vu_conn_set_rx_hook(struct vu_conn *c, void (*hook)(void *arg, const struct vu_hdr *h),
                        void *arg);

/* Receive one message into m (m is initialised here). Returns 0;
 * -ECONNRESET on orderly EOF at a message boundary; -EPROTO on EOF inside a
 * message, a bad header, truncated ancillary data or too many fds; -E2BIG
 * when msg_size exceeds the limit (nothing allocated); -errno on I/O error.
 * On error m holds nothing. Header checked with vu_hdr_check().
 * Also: -EAGAIN if the fd is non-blocking and not one byte of a new message
 * is there (nothing consumed); -ETIMEDOUT if the rest of a started message
 * does not come within io_timeout_ms; -EPROTO for fds that arrive with body
 * bytes instead of the first byte. After -E2BIG or -EPROTO for a bad header,
 * m->hdr still holds the header that was read (for an error reply), but the
 * stream is out of step: the caller should close the connection. */
int vu_recv(struct vu_conn *c, struct vu_msg *m);

/* A whole message (or a header that fails its check) is in the receive
 * buffer: vu_recv() answers without a system call. A server loop that
 * sleeps in poll() must not sleep while this is true. */
static inline bool vu_conn_rx_ready(const struct vu_conn *c)
{
    size_t have = c->rx_tail - c->rx_head;
    if (have < VU_HDR_SIZE)
        return false;
    struct vu_hdr h;
    memcpy(&h, c->rx + c->rx_head, sizeof(h));
    return have >= h.msg_size || h.msg_size > c->lim.max_msg_size;
}
/* Busy polling: spin (poll with timeout 0) for up to `us` microseconds until
 * the connection has something to receive (bytes, EOF or an error), without
 * sleeping. Returns 1 when it has (or vu_conn_rx_ready), 0 when the time ran
 * out. Costs one core for up to `us` per call. */
int vu_conn_rx_spin(struct vu_conn *c, unsigned us);

/* Send iovcnt (<= 8) pieces as one message (the header is the caller's,
 * msg_size included) with nfds fds: the transport's send (ops->send), for
 * callers that build their own pieces. total is the pieces' length in all
 * (a socket's one sendmsg is complete when it took that much; a wrong total
 * only costs the partial-send path, never a byte). 0 or -errno (reason in
 * c->err). */
int vu_conn_sendv(struct vu_conn *c, const struct iovec *iov, int iovcnt, size_t total,
                  const int *fds, size_t nfds);
/* Send a message. hdr->msg_size is set here from len. */
int vu_send(struct vu_conn *c, struct vu_hdr *hdr, const void *payload, size_t len,
            const int *fds, size_t nfds);
/* Send a reply to req (same msg_id and cmd, Type reply). Two payload pieces
 * so fixed part + data go in one sendmsg. Does nothing and returns 0 if req
 * had No_reply. */
int vu_send_reply(struct vu_conn *c, const struct vu_msg *req, const void *p1, size_t l1,
                  const void *p2, size_t l2, const int *fds, size_t nfds);
/* Header-only error reply with positive errno `errnum` (> 0; 0 becomes EIO).
 * Does nothing if req had No_reply. */
int vu_send_error(struct vu_conn *c, const struct vu_msg *req, int errnum);

/* ---- capabilities and version negotiation ------------------------------------ */

/* Bits of vu_caps.present: the numeric keys a JSON stated (after
 * vu_caps_parse) or that vu_caps_emit writes. */
#define VU_CAP_MAX_MSG_FDS   0x1u
#define VU_CAP_MAX_DATA_XFER 0x2u
#define VU_CAP_MAX_DMA_MAPS  0x4u
#define VU_CAP_PGSIZES       0x8u
#define VU_CAP_NUMERIC_ALL   0xfu

/* The protocol minor this implementation speaks: the final spec defines
 * nothing "added in version 0.Y" for Y > 0 (QEMU rejects a reply minor > 0). */
#define VU_PROTO_MINOR 0u

struct vu_caps {
    uint32_t present;           /* VU_CAP_* bits, see above */
    uint32_t max_msg_fds;
    uint64_t max_data_xfer_size;
    uint32_t max_dma_maps;
    uint64_t pgsizes;
    bool twin_socket;           /* "twin_socket": {"supported": bool} */
    bool write_multiple;
    bool has_migration;         /* legacy "migration" object present */
    uint64_t migration_pgsize;
    uint64_t migration_max_bitmap_size;
};

/* The spec's defaults when a key is absent: max_msg_fds 1, max_data_xfer_size
 * 1 MiB, max_dma_maps 65535, pgsizes 4096, others false/0; present =
 * VU_CAP_NUMERIC_ALL (so an emit of defaults states the four numbers). */
void vu_caps_defaults(struct vu_caps *caps);

/* Parse version data (json of json_len bytes, not necessarily
 * NUL-terminated; json_len <= VU_MAX_JSON). The spec makes everything
 * optional: `{}` (no "capabilities") is the defaults; absent keys keep
 * defaults; unknown keys are ignored; out->present gets a bit for each
 * numeric key the JSON stated. Wrong types, negative or out-of-range values
 * (max_msg_fds > 1024, max_data_xfer_size 0 or > 64 MiB, max_dma_maps 0 or
 * > 65535, pgsizes 0 or with bits below 4 KiB), a "capabilities" that is
 * not an object, a document that is not an object or not JSON are -EINVAL
 * with the key named in err. */
int vu_caps_parse(const char *json, size_t json_len, struct vu_caps *out, struct vub_err *err);

/* Emit `{"capabilities":{...}}` into buf, NUL-terminated, compact: the
 * numeric keys whose bit is in caps->present, write_multiple only when
 * true, twin_socket only when true, migration only when has_migration.
 * With nothing to say: `{"capabilities":{}}`. Returns the length including
 * the NUL, or -ENOSPC. */
ssize_t vu_caps_emit(const struct vu_caps *caps, char *buf, size_t bufsz);

/* What vu_version_answer decided besides the JSON. */
struct vu_version_out {
    uint16_t minor;       /* reply minor: min(proposed, VU_PROTO_MINOR) */
    unsigned dropped;     /* keys left out of the reply to fit the request */
    bool over_bound;      /* even `{"capabilities":{}}` made the reply larger
                           * than the request: sent anyway (only QEMU has the
                           * bound, and its request is ~200 bytes) */
};

/* Server side: given the client's VERSION request and the server's own caps,
 * compute what to answer. Never refuses a well-formed VERSION: no version
 * data, `{}`, unknown keys, any minor. Refused: major != 0 (-ENOTSUP), fds,
 * JSON that is not NUL-terminated or does not parse or has wrong value types
 * (-EINVAL).
 * The reply (spec: "a subset of those proposed") states only keys the client
 * stated: max_msg_fds and max_data_xfer_size with the server's own values,
 * max_dma_maps min(server, client), pgsizes server & client (the server's if
 * they share none); write_multiple only if both say true, migration only if
 * both have it (pgsize the smaller); never twin_socket.
 * Fit: when the request carries JSON, the whole reply message must be no
 * larger than the request (QEMU receives it into the request buffer). Keys
 * are dropped until it fits: first those whose value is the spec default
 * (nothing is lost), then write_multiple, migration, pgsizes, max_msg_fds
 * (the server accepts VU_MAX_FDS_PER_MSG whatever it said), max_dma_maps,
 * max_data_xfer_size. The reply always carries JSON with a NUL (at least
 * `{"capabilities":{}}`, also to a client that sent none:
 * cloud-hypervisor's client panics on a reply without it), even when that is
 * over the bound (out->over_bound).
 * *client_out: what the client offered (defaults for absent keys, present =
 * stated keys). *agreed: the effective limits: max_msg_fds, max_data_xfer_size,
 * max_dma_maps min of both; pgsizes as replied; write_multiple/migration as
 * replied. reply_json receives the NUL-terminated text, *reply_len its length
 * with the NUL (-ENOSPC only if reply_json_sz cannot hold the minimal JSON).
 * client_out, agreed, out may be NULL. */
int vu_version_answer(const struct vu_msg *req, const struct vu_caps *server,
                      struct vu_caps *client_out, struct vu_caps *agreed,
                      char *reply_json, size_t reply_json_sz, size_t *reply_len,
                      struct vu_version_out *out, struct vub_err *err);

#endif /* VU_PROTO_H */
