/* SPDX-License-Identifier: MIT */
/*
 * tap.h - the message tap at the bridge's one dispatch point
 * (br_handle_message in handlers.c): traces every message (trace.h) and
 * carries out the faults the --inject rules pick (inject.h).
 *
 * Safety: an injected fault never bypasses the bridge's own rules. errno,
 * close and data take the handler's place, so nothing is mapped, written or
 * set up for them (a DMA_MAP answered with an injected error leaves no
 * mapping; its fd is closed with the message); close ends the session
 * through the server's normal path, which quiesces the device; data= is
 * only served for a REGION_READ the bridge would itself accept (decoded
 * strictly, inside the region). delay and drop let the handler run and only
 * hold back or discard its reply. A held reply keeps the client's later
 * messages unread (replies stay in order) while the loop goes on serving
 * signals, the listener and the device watch; it is released with the
 * session.
 *
 * With neither --trace nor --inject the device has no tap (dev->tap NULL)
 * and every function here is a plain send or a no-op.
 */
#ifndef BR_TAP_H
#define BR_TAP_H

#include <stdbool.h>
#include <time.h>

#include "config.h"
#include "inject.h"
#include "session.h"
#include "trace.h"

struct br_tap;

/* Create the tap for cfg's trace and inject options (*out NULL if none are
 * given). Logs and returns -errno when the trace cannot be opened or a rule
 * is bad (rules are also checked by the command line). */
int br_tap_new(struct br_tap **out, const struct br_config *cfg, const char *device);
void br_tap_free(struct br_tap *tap);

/* Per message, on br_handle_message's stack. */
struct br_tap_msg {
    struct br_tap *tap;                 /* NULL: no tap */
    struct timespec t0;                 /* receipt */
    int rule;                           /* the rule that acts, -1 none */
    const struct br_inject_rule *fault; /* idem */
};

/* At receipt: trace the message, start its clock, pick a fault. */
void br_tap_begin(struct br_tap_msg *tm, struct br_session *s, const struct vu_msg *m);

/* Whether the picked fault takes the handler's place (errno, close, data). */
bool br_tap_replaces(const struct br_tap_msg *tm);
/* Carry out such a fault: errno -> its negative errno (reason in err);
 * close -> 0 (br_tap_send then ends the session); data -> 0 and *heap
 * (malloc'd, the caller frees it) = *p1 holds the whole reply payload, *l1
 * bytes: the request's vu_region_access followed by the pattern repeated to
 * `count`; a REGION_READ the bridge would refuse gets the bridge's own error. */
int br_tap_instead(struct br_tap_msg *tm, struct br_session *s, const struct vu_msg *m,
                   const void **p1, size_t *l1, void **heap, struct vub_err *err);

/* Send the answer (r < 0: error reply with -r; else p1/p2 and *fd if >= 0,
 * sent fd_copies times (one per sparse area, at most BR_MAX_REGION_FDS);
 * *fd stays the caller's unless a delay takes it, then *fd is -1), trace
 * it, or hold it back / drop it / end the session as the fault says.
 * Returns 0, or -errno when the session must be closed (the send failed,
 * or an injected close: -ECONNABORTED with s->close_reason set). */
int br_tap_send(struct br_tap_msg *tm, struct br_session *s, const struct vu_msg *m, int r,
                const char *reason, const void *p1, size_t l1, const void *p2, size_t l2,
                int *fd, unsigned fd_copies);

/* The plain send br_tap_send makes: r < 0 an error reply with -r, else
 * p1/p2 and fd (if >= 0, fd_copies times, at most BR_MAX_REGION_FDS; fd
 * stays the caller's). With no tap (dev->tap NULL) br_handle_message calls
 * this directly, skipping begin and send. 0 or -errno. */
int br_tap_send_now(struct br_session *s, const struct vu_msg *m, int r, const void *p1,
                    size_t l1, const void *p2, size_t l2, int fd, unsigned fd_copies);

/* ---- for the server loop (server.c) ---- */

/* Whether s has a reply held back: do not read from its socket. */
bool br_tap_holding(const struct br_session *s);
/* The poll timeout: `timeout` (ms, -1 = none) or less, to wake when a held
 * reply is due. */
int br_tap_poll_timeout(const struct br_session *s, int timeout);
/* Send s's held reply if it is due. 0, or -errno: close the session. */
int br_tap_flush(struct br_session *s);
/* The session is closing (reason for the trace): drop its held reply. */
void br_tap_session_end(struct br_session *s, const char *reason);

#endif /* BR_TAP_H */
