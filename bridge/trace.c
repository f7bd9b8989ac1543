/* SPDX-License-Identifier: MIT */
/* The message trace: bounded JSON lines (trace.h). */
#include "trace.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "inject.h"
#include "log.h"

struct br_trace {
    int fd;              /* -1: the log */
    bool data;
    bool failed;         /* a write failed: given up (logged once) */
    char path[256];
};

/* ---- a bounded line ------------------------------------------------------------ */

/* Room kept for `,"truncated":true}` and the newline. */
#define TB_RESERVE 24u

struct tb {
    char buf[BR_TRACE_LINE_MAX];
    size_t len;
    bool full;           /* a field did not fit: no more fields */
    bool first;
};

__attribute__((format(printf, 2, 3)))
static void tb_raw(struct tb *b, const char *fmt, ...)
{
    if (b->full)
        return;
    size_t room = sizeof(b->buf) - TB_RESERVE - b->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->buf + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        b->buf[b->len] = '\0';
        b->full = true;
        return;
    }
    b->len += (size_t)n;
}

/* A field is all or nothing: cut back to where it began if it overflowed. */
struct tb_mark { size_t len; bool first; };
static struct tb_mark tb_begin(struct tb *b, const char *key)
{
    struct tb_mark mk = { b->len, b->first };
    tb_raw(b, "%s\"%s\":", b->first ? "" : ",", key);
    b->first = false;
    return mk;
}
static void tb_end(struct tb *b, struct tb_mark mk)
{
    if (b->full) {
        b->len = mk.len;
        b->first = mk.first;
        b->buf[b->len] = '\0';
    }
}

static void tb_u(struct tb *b, const char *key, uint64_t v)
{
    struct tb_mark mk = tb_begin(b, key);
    tb_raw(b, "%llu", (unsigned long long)v);
    tb_end(b, mk);
}

/* 64-bit addresses, offsets and sizes as "0x..." strings (exact in any reader). */
static void tb_x(struct tb *b, const char *key, uint64_t v)
{
    struct tb_mark mk = tb_begin(b, key);
    tb_raw(b, "\"0x%llx\"", (unsigned long long)v);
    tb_end(b, mk);
}

static void tb_b(struct tb *b, const char *key, bool v)
{
    struct tb_mark mk = tb_begin(b, key);
    tb_raw(b, "%s", v ? "true" : "false");
    tb_end(b, mk);
}

/* A JSON string of at most `max` input bytes; control and non-ASCII bytes
 * escaped as \u00XX so that the line stays valid UTF-8 whatever came in.
 * The string is cut where the line would leave less than TB_TAIL bytes for
 * the fields after it. Returns whether it was cut (shorter than n). */
#define TB_TAIL 96u
static bool tb_sn(struct tb *b, const char *key, const char *s, size_t n, size_t max)
{
    struct tb_mark mk = tb_begin(b, key);
    tb_raw(b, "\"");
    size_t i;
    for (i = 0; i < n && i < max && !b->full; i++) {
        if (b->len + TB_TAIL + TB_RESERVE + 8 > sizeof(b->buf))
            break;
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            tb_raw(b, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            tb_raw(b, "\\u%04x", ch);
        else
            tb_raw(b, "%c", ch);
    }
    tb_raw(b, "\"");
    tb_end(b, mk);
    return i < n;
}

static void tb_s(struct tb *b, const char *key, const char *s)
{
    tb_sn(b, key, s, strlen(s), 512);
}

static void tb_hex(struct tb *b, const char *key, const void *p, size_t n)
{
    const uint8_t *d = p;
    size_t shown = n < BR_TRACE_DATA_MAX ? n : BR_TRACE_DATA_MAX;
    struct tb_mark mk = tb_begin(b, key);
    tb_raw(b, "\"");
    for (size_t i = 0; i < shown; i++)
        tb_raw(b, "%02x", d[i]);
    tb_raw(b, "\"");
    tb_end(b, mk);
    if (shown < n)
        tb_b(b, "data_cut", true);
}

static void tb_start(struct tb *b)
{
    b->len = 0;
    b->full = false;
    b->first = true;
    tb_raw(b, "{");
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    struct tb_mark mk = tb_begin(b, "t");
    tb_raw(b, "%lld.%09ld", (long long)ts.tv_sec, ts.tv_nsec);
    tb_end(b, mk);
}

static void tb_emit(struct br_trace *t, struct tb *b)
{
    if (b->full) {
        b->full = false;   /* the reserve is there for exactly this */
        tb_raw(b, ",\"truncated\":true");
    }
    b->buf[b->len++] = '}';
    b->buf[b->len] = '\0';
    if (t->fd < 0) {
        /* the line alone: with any prefix the log's 1024-byte lines could cut it */
        br_info("%s", b->buf);
        return;
    }
    if (t->failed)
        return;
    b->buf[b->len++] = '\n';
    ssize_t w = write(t->fd, b->buf, b->len);
    if (w != (ssize_t)b->len) {
        t->failed = true;
        br_err("trace %s: %s; no more trace lines", t->path,
               w < 0 ? strerror(errno) : "short write");
    }
}

/* ---- open / close ------------------------------------------------------------------ */

int br_trace_open(struct br_trace **out, const char *path, bool data, const char *device,
                  struct vub_err *err)
{
    struct br_trace *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->fd = -1;
    t->data = data;
    snprintf(t->path, sizeof(t->path), "%s", path);
    if (strcmp(path, "-") != 0) {
        t->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
        if (t->fd < 0) {
            int r = -errno;
            free(t);
            return vub_fail(err, r, "--trace %s: %s", path, strerror(-r));
        }
    }
    struct tb b;
    tb_start(&b);
    tb_s(&b, "trace", "vfio-user-bridge");
    tb_s(&b, "version", VUB_VERSION);
    tb_s(&b, "device", device ? device : "");
    tb_b(&b, "data", data);
    tb_u(&b, "data_max", BR_TRACE_DATA_MAX);
    tb_u(&b, "line_max", BR_TRACE_LINE_MAX);
    tb_emit(t, &b);
    *out = t;
    return 0;
}

void br_trace_close(struct br_trace *t)
{
    if (!t)
        return;
    if (t->fd >= 0)
        close(t->fd);
    free(t);
}

void br_trace_session(struct br_trace *t, pid_t pid, uid_t uid)
{
    struct tb b;
    tb_start(&b);
    tb_s(&b, "dir", "session");
    tb_u(&b, "pid", (uint64_t)pid);
    tb_u(&b, "uid", (uint64_t)uid);
    tb_emit(t, &b);
}

void br_trace_end(struct br_trace *t, const char *reason, uint64_t msgs, uint64_t errors)
{
    struct tb b;
    tb_start(&b);
    tb_s(&b, "dir", "end");
    tb_s(&b, "reason", reason ? reason : "closed");
    tb_u(&b, "msgs", msgs);
    tb_u(&b, "errors", errors);
    tb_emit(t, &b);
}

/* ---- decoded fields ------------------------------------------------------------------ */

static void head(struct tb *b, const char *dir, const struct vu_msg *m, bool reply, bool error,
                 bool no_reply)
{
    tb_s(b, "dir", dir);
    tb_u(b, "id", m->hdr.msg_id);
    tb_s(b, "cmd", vu_cmd_name(m->hdr.cmd));
    if (m->hdr.cmd > VU_CMD_MAX || strcmp(vu_cmd_name(m->hdr.cmd), "UNKNOWN") == 0)
        tb_u(b, "cmd_no", m->hdr.cmd);
    struct tb_mark mk = tb_begin(b, "flags");
    tb_raw(b, "[%s%s%s]", reply ? "\"reply\"" : "\"command\"",
           no_reply ? ",\"no_reply\"" : "", error ? ",\"error\"" : "");
    tb_end(b, mk);
}

static void irq_flags(struct tb *b, uint32_t f)
{
    tb_s(b, "data", f & VU_IRQ_SET_DATA_NONE ? "none" : f & VU_IRQ_SET_DATA_BOOL ? "bool"
                    : f & VU_IRQ_SET_DATA_EVENTFD ? "eventfd" : "?");
    tb_s(b, "action", f & VU_IRQ_SET_ACTION_MASK ? "mask" : f & VU_IRQ_SET_ACTION_UNMASK
                      ? "unmask" : f & VU_IRQ_SET_ACTION_TRIGGER ? "trigger" : "?");
}

/* The request's fields, from the strict decoder (what the handler sees). */
static void request_fields(struct br_trace *t, struct tb *b, const struct vu_msg *m)
{
    unsigned cmd = m->hdr.cmd;
    /* Commands the bridge has no business decoding: unknown ones, and
     * DMA_READ/WRITE, which go from server to client. */
    if (cmd == VU_CMD_DMA_READ || cmd == VU_CMD_DMA_WRITE ||
        strcmp(vu_cmd_name(cmd), "UNKNOWN") == 0)
        return;
    struct vub_err e = { "" };
    union vu_request o;
    if (vu_decode_request(m, VU_MAX_DATA_XFER, &o, &e) < 0) {
        tb_s(b, "malformed", e.msg);
        return;
    }
    switch (cmd) {
    case VU_CMD_VERSION: {
        const struct vu_version_req *q = &o.version;
        tb_u(b, "major", q->major);
        tb_u(b, "minor", q->minor);
        if (q->json) {
            if (tb_sn(b, "json", q->json, q->json_len, BR_TRACE_JSON_MAX))
                tb_b(b, "json_cut", true);
        }
        break;
    }
    case VU_CMD_DMA_MAP: {
        const struct vu_dma_map *q = &o.dma_map;
        tb_u(b, "argsz", q->argsz);
        tb_u(b, "flags_rw", q->flags);
        tb_x(b, "iova", q->address);
        tb_x(b, "size", q->size);
        tb_x(b, "offset", q->offset);
        break;
    }
    case VU_CMD_DMA_UNMAP: {
        const struct vu_dma_unmap *q = &o.dma_unmap;
        tb_u(b, "argsz", q->argsz);
        tb_x(b, "iova", q->address);
        tb_x(b, "size", q->size);
        if (q->flags & VU_DMA_UNMAP_FLAG_ALL)
            tb_b(b, "all", true);
        break;
    }
    case VU_CMD_DEVICE_GET_INFO: {
        const struct vu_device_info *q = &o.device_info;
        tb_u(b, "argsz", q->argsz);
        break;
    }
    case VU_CMD_DEVICE_GET_REGION_INFO: {
        const struct vu_region_info *q = &o.region_info;
        tb_u(b, "argsz", q->argsz);
        tb_u(b, "region", q->index);
        break;
    }
    case VU_CMD_DEVICE_GET_REGION_IO_FDS: {
        const struct vu_region_io_fds_request *q = &o.region_io_fds;
        tb_u(b, "argsz", q->argsz);
        tb_u(b, "region", q->index);
        break;
    }
    case VU_CMD_DEVICE_GET_IRQ_INFO: {
        const struct vu_irq_info *q = &o.irq_info;
        tb_u(b, "argsz", q->argsz);
        tb_u(b, "index", q->index);
        break;
    }
    case VU_CMD_DEVICE_SET_IRQS: {
        const struct vu_irq_set_req *q = &o.set_irqs;
        tb_u(b, "argsz", q->set.argsz);
        tb_u(b, "index", q->set.index);
        tb_u(b, "start", q->set.start);
        tb_u(b, "count", q->set.count);
        irq_flags(b, q->set.flags);
        if (q->bools && t->data)
            tb_hex(b, "bools", q->bools, q->set.count);
        break;
    }
    case VU_CMD_REGION_READ:
    case VU_CMD_REGION_WRITE: {
        const struct vu_region_access_req *q = &o.region_access;
        tb_u(b, "region", q->acc.region);
        tb_x(b, "offset", q->acc.offset);
        tb_u(b, "count", q->acc.count);
        if (q->data && t->data)
            tb_hex(b, "bytes", q->data, q->acc.count);
        break;
    }
    case VU_CMD_REGION_WRITE_MULTI: {
        const struct vu_write_multi_req *q = &o.write_multi;
        tb_u(b, "wr_cnt", q->wr_cnt);
        /* the first entries only: the line stays bounded */
        struct tb_mark mk = tb_begin(b, "writes");
        tb_raw(b, "[");
        for (uint64_t i = 0; i < q->wr_cnt && i < 4; i++) {
            struct vu_write_multi_entry w;
            memcpy(&w, &q->wrs[i], sizeof(w));
            tb_raw(b, "%s{\"region\":%u,\"offset\":\"0x%llx\",\"count\":%u}", i ? "," : "",
                   w.region, (unsigned long long)w.offset, w.count);
        }
        tb_raw(b, "]");
        tb_end(b, mk);
        break;
    }
    case VU_CMD_DEVICE_FEATURE: {
        const struct vu_device_feature_req *q = &o.device_feature;
        tb_u(b, "argsz", q->feat.argsz);
        tb_u(b, "feature", q->feat.flags & VU_DEVICE_FEATURE_MASK);
        tb_s(b, "op", q->feat.flags & VU_DEVICE_FEATURE_PROBE ? "probe"
                      : q->feat.flags & VU_DEVICE_FEATURE_GET ? "get" : "set");
        break;
    }
    case VU_CMD_MIG_DATA_READ:
    case VU_CMD_MIG_DATA_WRITE: {
        const struct vu_mig_data_req *q = &o.mig_data;
        tb_u(b, "argsz", q->mig.argsz);
        tb_u(b, "size", q->mig.size);
        break;
    }
    default:
        break;   /* DEVICE_RESET: no fields */
    }
}

/* The reply's fields, from the bytes the bridge sends. */
static void reply_fields(struct br_trace *t, struct tb *b, const struct br_trace_out *o)
{
    const uint8_t *p = o->p1;
    switch (o->req->hdr.cmd) {
    case VU_CMD_VERSION: {
        struct vu_version v;
        if (o->l1 < sizeof(v))
            break;
        memcpy(&v, p, sizeof(v));
        tb_u(b, "major", v.major);
        tb_u(b, "minor", v.minor);
        if (o->l2)
            tb_sn(b, "json", o->p2, strnlen(o->p2, o->l2), BR_TRACE_JSON_MAX);
        break;
    }
    case VU_CMD_DMA_UNMAP: {
        struct vu_dma_unmap v;
        if (o->l1 < sizeof(v))
            break;
        memcpy(&v, p, sizeof(v));
        tb_u(b, "argsz", v.argsz);
        tb_x(b, "iova", v.address);
        tb_x(b, "size", v.size);
        break;
    }
    case VU_CMD_DEVICE_GET_INFO: {
        struct vu_device_info v;
        if (o->l1 < sizeof(v))
            break;
        memcpy(&v, p, sizeof(v));
        tb_u(b, "argsz", v.argsz);
        tb_u(b, "dev_flags", v.flags);
        tb_u(b, "num_regions", v.num_regions);
        tb_u(b, "num_irqs", v.num_irqs);
        break;
    }
    case VU_CMD_DEVICE_GET_REGION_INFO: {
        struct vu_region_info v;
        if (o->l1 < sizeof(v))
            break;
        memcpy(&v, p, sizeof(v));
        tb_u(b, "argsz", v.argsz);
        tb_u(b, "region", v.index);
        tb_u(b, "region_flags", v.flags);
        tb_x(b, "size", v.size);
        tb_x(b, "offset", v.offset);
        tb_u(b, "cap_offset", v.cap_offset);
        struct vu_region_caps *caps = malloc(sizeof(*caps));
        if (caps && vu_region_caps_parse(p, o->l1, caps, NULL) == 0 && caps->nr_caps) {
            if (caps->has_sparse)
                tb_u(b, "sparse_areas", caps->nr_areas);
            if (caps->msix_mappable)
                tb_b(b, "msix_mappable", true);
            if (caps->has_type) {
                tb_u(b, "type", caps->type);
                tb_u(b, "subtype", caps->subtype);
            }
        }
        free(caps);
        break;
    }
    case VU_CMD_DEVICE_GET_IRQ_INFO: {
        struct vu_irq_info v;
        if (o->l1 < sizeof(v))
            break;
        memcpy(&v, p, sizeof(v));
        tb_u(b, "argsz", v.argsz);
        tb_u(b, "index", v.index);
        tb_u(b, "irq_flags", v.flags);
        tb_u(b, "count", v.count);
        break;
    }
    case VU_CMD_REGION_READ:
    case VU_CMD_REGION_WRITE: {
        struct vu_region_access v;
        if (o->l1 < sizeof(v))
            break;
        memcpy(&v, p, sizeof(v));
        tb_u(b, "region", v.region);
        tb_x(b, "offset", v.offset);
        tb_u(b, "count", v.count);
        /* the data follow as a second piece, or in the first (injected data=) */
        if (o->l2 && t->data)
            tb_hex(b, "bytes", o->p2, o->l2);
        else if (o->l1 > sizeof(v) && t->data)
            tb_hex(b, "bytes", p + sizeof(v), o->l1 - sizeof(v));
        break;
    }
    case VU_CMD_REGION_WRITE_MULTI: {
        struct vu_write_multi v;
        if (o->l1 < sizeof(v))
            break;
        memcpy(&v, p, sizeof(v));
        tb_u(b, "wr_cnt", v.wr_cnt);
        break;
    }
    default:
        break;
    }
}

void br_trace_rx(struct br_trace *t, const struct vu_msg *m)
{
    struct tb b;
    bool reply = (m->hdr.flags & VU_F_TYPE_MASK) != VU_F_TYPE_CMD;
    tb_start(&b);
    head(&b, "rx", m, reply, m->hdr.flags & VU_F_ERROR, m->hdr.flags & VU_F_NO_REPLY);
    tb_u(&b, "size", m->hdr.msg_size);
    tb_u(&b, "fds", m->nfds);
    if (reply)
        tb_s(&b, "note", "unsolicited reply: ignored");
    else
        request_fields(t, &b, m);
    tb_emit(t, &b);
}

void br_trace_out(struct br_trace *t, const struct br_trace_out *o)
{
    struct tb b;
    tb_start(&b);
    head(&b, o->sent ? "tx" : "done", o->req, o->sent, o->sent && o->err < 0,
         o->req->hdr.flags & VU_F_NO_REPLY);
    if (o->sent)
        tb_u(&b, "size", VU_HDR_SIZE + (o->err < 0 ? 0 : o->l1 + o->l2));
    tb_u(&b, "fds", o->nfds);
    tb_u(&b, "handling_ns", o->handling_ns);
    if (o->injected) {
        tb_s(&b, "injected", o->injected);
        tb_u(&b, "rule", (uint64_t)o->rule);
    }
    if (o->delayed_ms)
        tb_u(&b, "delayed_ms", o->delayed_ms);
    if (o->send_err < 0) {
        const char *name = br_errno_name(-o->send_err);
        tb_s(&b, "send_failed", name ? name : "?");
    }
    if (o->err < 0) {
        const char *name = br_errno_name(-o->err);
        if (name)
            tb_s(&b, "errno", name);
        else
            tb_u(&b, "errno_no", (uint64_t)-o->err);
        if (o->reason && o->reason[0])
            tb_s(&b, "error", o->reason);
    } else if (o->sent) {
        reply_fields(t, &b, o);
    } else if (o->reason && o->reason[0]) {
        tb_s(&b, "note", o->reason);
    }
    tb_emit(t, &b);
}
