/* SPDX-License-Identifier: MIT */
/* The message tap: trace and fault injection at the dispatch point (tap.h). */
#include "tap.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* A reply held back by a delay rule (at most one: the client is not read
 * while it is held). */
struct held {
    const struct br_session *owner;   /* NULL = none */
    struct timespec due;
    struct vu_msg req;                /* the request's header only */
    int err;                          /* negative errno: an error reply */
    char reason[sizeof(((struct vub_err *)0)->msg)];
    uint8_t *payload;
    size_t l1, len;                   /* first piece, whole payload */
    int fd;                           /* owned; -1 none */
    unsigned fd_copies;               /* times it is sent */
    uint64_t handling_ns;
    int rule;
};

struct br_tap {
    struct br_trace *trace;           /* NULL: no trace */
    struct br_inject inj;
    char close_reason[BR_INJECT_MAX_RULES][64];
    char action[BR_INJECT_MAX_RULES][16 + 2 * BR_INJECT_MAX_DATA];
    struct held held;
};

_Static_assert(sizeof(((struct br_config *)0)->inject) / sizeof(const char *) ==
               BR_INJECT_MAX_RULES, "br_config holds every rule");

static uint64_t ns_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (uint64_t)(t1.tv_sec - t0->tv_sec) * 1000000000u + (uint64_t)t1.tv_nsec -
           (uint64_t)t0->tv_nsec;
}

int br_tap_new(struct br_tap **out, const struct br_config *cfg, const char *device)
{
    *out = NULL;
    if (!cfg->trace_path && !cfg->n_inject)
        return 0;
    struct br_tap *tap = calloc(1, sizeof(*tap));
    if (!tap)
        return -ENOMEM;
    tap->held.fd = -1;
    struct vub_err err = { "" };
    int r = br_inject_init(&tap->inj, cfg->inject, cfg->n_inject, &err);
    if (r == 0 && cfg->trace_path)
        r = br_trace_open(&tap->trace, cfg->trace_path, cfg->trace_data, device, &err);
    if (r < 0) {
        br_err("%s", err.msg[0] ? err.msg : strerror(-r));
        free(tap);
        return r;
    }
    for (size_t i = 0; i < tap->inj.n; i++) {
        const struct br_inject_rule *rule = &tap->inj.rules[i];
        br_inject_action_str(rule, tap->action[i], sizeof(tap->action[i]));
        snprintf(tap->close_reason[i], sizeof(tap->close_reason[i]),
                 "fault injected: close (rule %zu)", i);
        br_warn("fault injection rule %zu: %s", i, rule->text);
    }
    if (cfg->trace_path)
        br_info("tracing every message to %s%s", strcmp(cfg->trace_path, "-") ? cfg->trace_path
                                                                             : "the log",
                cfg->trace_data ? " (with up to 64 payload bytes)" : "");
    *out = tap;
    return 0;
}

static void held_release(struct held *h)
{
    if (h->fd >= 0)
        close(h->fd);
    free(h->payload);
    memset(h, 0, sizeof(*h));
    h->fd = -1;
}

void br_tap_free(struct br_tap *tap)
{
    if (!tap)
        return;
    held_release(&tap->held);
    br_trace_close(tap->trace);
    free(tap);
}

/* ---- per message ------------------------------------------------------------------ */

void br_tap_begin(struct br_tap_msg *tm, struct br_session *s, const struct vu_msg *m)
{
    struct br_tap *tap = s->dev->tap;
    tm->tap = tap;
    tm->rule = -1;
    tm->fault = NULL;
    if (!tap)
        return;
    clock_gettime(CLOCK_MONOTONIC, &tm->t0);
    if (tap->trace) {
        if (s->n_msgs == 1)
            br_trace_session(tap->trace, s->peer.pid, s->peer.uid);
        br_trace_rx(tap->trace, m);
    }
    if (!tap->inj.n || (m->hdr.flags & VU_F_TYPE_MASK) != VU_F_TYPE_CMD)
        return;
    int i = br_inject_pick(&tap->inj, m);
    if (i < 0)
        return;
    tm->rule = i;
    tm->fault = &tap->inj.rules[i];
    uint64_t k = tap->inj.fired[i];
    br_log(k <= BR_INJECT_MAX_LOGGED ? BR_LOG_WARN : BR_LOG_DEBUG,
           "client pid %d: fault injected on %s (id %u), match %" PRIu64 " of rule %d (%s): "
           "%s%s", (int)s->peer.pid, vu_cmd_name(m->hdr.cmd), m->hdr.msg_id,
           tap->inj.matched[i], i, tm->fault->text, tap->action[i],
           k == BR_INJECT_MAX_LOGGED ? " (further ones of this rule at debug level)" : "");
}

bool br_tap_replaces(const struct br_tap_msg *tm)
{
    return tm->fault && (tm->fault->action == BR_INJ_ERRNO || tm->fault->action == BR_INJ_CLOSE ||
                         tm->fault->action == BR_INJ_DATA);
}

int br_tap_instead(struct br_tap_msg *tm, struct br_session *s, const struct vu_msg *m,
                   const void **p1, size_t *l1, void **heap, struct vub_err *err)
{
    const struct br_inject_rule *f = tm->fault;
    if (f->action == BR_INJ_ERRNO)
        return vub_fail(err, -f->errnum, "fault injected by rule %d (%s)", tm->rule, f->text);
    if (f->action == BR_INJ_CLOSE)
        return 0;
    /* data: the request must be one the bridge would serve */
    struct vu_region_access_req q;
    int r = vu_decode_region_read(m, (uint32_t)s->dev->caps.max_data_xfer_size, &q, err);
    if (r < 0)
        return r;
    if (!br_dev_access_ok(s->dev, q.acc.region, q.acc.offset, q.acc.count))
        return vub_fail(err, -EINVAL, "REGION_READ %u @0x%" PRIx64 "+%u: outside the region",
                       q.acc.region, q.acc.offset, q.acc.count);
    size_t n = sizeof(q.acc) + q.acc.count;
    uint8_t *b = malloc(n);
    if (!b)
        return -ENOMEM;
    memcpy(b, &q.acc, sizeof(q.acc));
    for (uint32_t i = 0; i < q.acc.count; i++)
        b[sizeof(q.acc) + i] = f->data[i % f->data_len];
    *heap = b;
    *p1 = b;
    *l1 = n;
    return 0;
}

static void trace_out(struct br_tap *tap, const struct vu_msg *m, bool sent, int r,
                      const char *reason, const void *p1, size_t l1, const void *p2, size_t l2,
                      size_t nfds, uint64_t ns, int rule, uint32_t delayed, int send_err)
{
    if (!tap->trace)
        return;
    struct br_trace_out o = {
        .req = m, .sent = sent, .err = r < 0 ? r : 0, .reason = reason,
        .p1 = p1, .l1 = l1, .p2 = p2, .l2 = l2, .nfds = nfds, .handling_ns = ns,
        .injected = rule >= 0 ? tap->action[rule] : NULL, .rule = rule, .delayed_ms = delayed,
        .send_err = send_err,
    };
    br_trace_out(tap->trace, &o);
}

int br_tap_send_now(struct br_session *s, const struct vu_msg *m, int r, const void *p1,
                    size_t l1, const void *p2, size_t l2, int fd, unsigned copies)
{
    if (r < 0)
        return vu_send_error(&s->conn, m, -r);
    int fds[BR_MAX_REGION_FDS];
    size_t nfds = 0;
    if (fd >= 0)
        for (nfds = 0; nfds < copies && nfds < BR_MAX_REGION_FDS; nfds++)
            fds[nfds] = fd;   /* the same file, once per sparse area */
    return vu_send_reply(&s->conn, m, p1, l1, p2, l2, nfds ? fds : NULL, nfds);
}

int br_tap_send(struct br_tap_msg *tm, struct br_session *s, const struct vu_msg *m, int r,
                const char *reason, const void *p1, size_t l1, const void *p2, size_t l2,
                int *fd, unsigned fd_copies)
{
    struct br_tap *tap = tm->tap;
    if (!tap)
        return br_tap_send_now(s, m, r, p1, l1, p2, l2, *fd, fd_copies);

    bool no_reply = m->hdr.flags & VU_F_NO_REPLY;
    enum br_inject_action act = tm->fault ? tm->fault->action : 0;
    size_t nfds = r >= 0 && *fd >= 0 ? (fd_copies < BR_MAX_REGION_FDS ? fd_copies
                                                                     : BR_MAX_REGION_FDS) : 0;
    if (act == BR_INJ_CLOSE || act == BR_INJ_DROP || (no_reply && act != BR_INJ_DATA)) {
        trace_out(tap, m, false, r, reason, NULL, 0, NULL, 0, 0, ns_since(&tm->t0), tm->rule, 0,
                  0);
        if (act != BR_INJ_CLOSE)
            return 0;
        s->close_reason = tap->close_reason[tm->rule];
        return -ECONNABORTED;
    }
    if (act == BR_INJ_DELAY) {
        struct held *h = &tap->held;
        held_release(h);   /* cannot hold one: the client is not read meanwhile */
        uint8_t *copy = NULL;
        size_t len = r < 0 ? 0 : l1 + l2;
        if (len && !(copy = malloc(len)))
            return br_tap_send_now(s, m, -ENOMEM, NULL, 0, NULL, 0, -1, 0);
        if (l1 && r >= 0)
            memcpy(copy, p1, l1);
        if (l2 && r >= 0)
            memcpy(copy + l1, p2, l2);
        h->owner = s;
        vu_msg_init(&h->req);
        h->req.hdr = m->hdr;
        h->err = r < 0 ? r : 0;
        snprintf(h->reason, sizeof(h->reason), "%s", reason ? reason : "");
        h->payload = copy;
        h->l1 = r < 0 ? 0 : l1;
        h->len = len;
        h->fd = -1;
        if (r >= 0 && *fd >= 0) {
            h->fd = *fd;
            h->fd_copies = fd_copies;
            *fd = -1;
        }
        h->handling_ns = ns_since(&tm->t0);
        h->rule = tm->rule;
        clock_gettime(CLOCK_MONOTONIC, &h->due);
        h->due.tv_sec += tm->fault->delay_ms / 1000;
        h->due.tv_nsec += (long)(tm->fault->delay_ms % 1000) * 1000000;
        if (h->due.tv_nsec >= 1000000000) {
            h->due.tv_sec++;
            h->due.tv_nsec -= 1000000000;
        }
        return 0;
    }
    int sr = br_tap_send_now(s, m, r, p1, l1, p2, l2, *fd, fd_copies);
    trace_out(tap, m, !no_reply, r, reason, p1, l1, p2, l2, nfds, ns_since(&tm->t0), tm->rule, 0,
              sr);
    return sr;
}

/* ---- the server loop ----------------------------------------------------------------- */

static struct held *held_of(const struct br_session *s)
{
    struct br_tap *tap = s->dev->tap;
    return tap && tap->held.owner == s ? &tap->held : NULL;
}

bool br_tap_holding(const struct br_session *s)
{
    return held_of(s) != NULL;
}

static long ms_until(const struct timespec *due)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ns = (long long)(due->tv_sec - now.tv_sec) * 1000000000 +
                   (due->tv_nsec - now.tv_nsec);
    return ns <= 0 ? 0 : (long)((ns + 999999) / 1000000);
}

int br_tap_poll_timeout(const struct br_session *s, int timeout)
{
    struct held *h = s ? held_of(s) : NULL;
    if (!h)
        return timeout;
    long ms = ms_until(&h->due);
    return timeout < 0 || ms < timeout ? (int)ms : timeout;
}

int br_tap_flush(struct br_session *s)
{
    struct held *h = held_of(s);
    if (!h || ms_until(&h->due) > 0)
        return 0;
    struct br_tap *tap = s->dev->tap;
    const struct br_inject_rule *rule = &tap->inj.rules[h->rule];
    const uint8_t *p2 = h->payload ? h->payload + h->l1 : NULL;
    int sr = br_tap_send_now(s, &h->req, h->err, h->payload, h->l1, p2, h->len - h->l1, h->fd,
                      h->fd_copies);
    trace_out(tap, &h->req, true, h->err, h->reason, h->payload, h->l1, p2, h->len - h->l1,
              h->err >= 0 && h->fd >= 0 ? h->fd_copies : 0, h->handling_ns, h->rule,
              rule->delay_ms, sr);
    held_release(h);
    return sr;
}

void br_tap_session_end(struct br_session *s, const char *reason)
{
    struct br_tap *tap = s->dev->tap;
    if (!tap)
        return;
    struct held *h = held_of(s);
    if (h) {
        /* the client is gone before its delayed reply: say so, then drop it */
        trace_out(tap, &h->req, false, h->err, "the session ended before the delayed reply",
                  NULL, 0, NULL, 0, 0, h->handling_ns, h->rule, 0, 0);
        held_release(h);
    }
    if (tap->trace)
        br_trace_end(tap->trace, reason, s->n_msgs, s->n_errors);
}
