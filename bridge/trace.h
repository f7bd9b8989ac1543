/* SPDX-License-Identifier: MIT */
/*
 * trace.h - the message trace (`--trace FILE`, docs/testing-clients.md): one
 * JSON object per line for every message, received ("rx") and sent ("tx"),
 * with the request's or reply's fields decoded by src/'s strict decoders.
 * A command that gets no reply (No_reply, an injected drop or close) ends
 * with a "done" line instead of "tx", so every command has its handling
 * time and outcome on exactly one line after its "rx".
 *
 * Every line is at most BR_TRACE_LINE_MAX bytes whatever the client sends:
 * strings are escaped and cut, payload bytes (only with --trace-data) are at
 * most BR_TRACE_DATA_MAX per message, and a line that would grow beyond the
 * bound ends with "truncated":true instead. Nothing here decides anything;
 * a trace that cannot be written is logged once and then given up.
 */
#ifndef BR_TRACE_H
#define BR_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vu_proto.h"

#define BR_TRACE_LINE_MAX 1024u   /* bytes per line, newline included */
#define BR_TRACE_DATA_MAX 64u     /* payload bytes shown per message (hex) */
#define BR_TRACE_JSON_MAX 256u    /* VERSION JSON bytes shown */

struct br_trace;

/* Open a trace: `path` is a file (created 0600 or appended to) or "-" for
 * the daemon's log (info level). `data`: also show payload bytes. Writes a
 * first line naming the program, the device and the bounds. -errno with a
 * reason in err. */
int br_trace_open(struct br_trace **out, const char *path, bool data, const char *device,
                  struct vub_err *err);
void br_trace_close(struct br_trace *t);

/* A client connected: a "session" line with its pid and uid. */
void br_trace_session(struct br_trace *t, pid_t pid, uid_t uid);

/* The session ended ("end" line): why, and its message and error counts. */
void br_trace_end(struct br_trace *t, const char *reason, uint64_t msgs, uint64_t errors);

/* A received message (before it is handled). */
void br_trace_rx(struct br_trace *t, const struct vu_msg *m);

/* The outcome of a command. */
struct br_trace_out {
    const struct vu_msg *req;
    bool sent;                  /* a reply went out ("tx"), else "done" */
    int err;                    /* 0 or negative errno of the answer */
    const char *reason;         /* why, for errors (may be NULL) */
    const void *p1, *p2;        /* reply payload pieces (success only) */
    size_t l1, l2;
    size_t nfds;                /* fds sent with the reply */
    uint64_t handling_ns;       /* from receipt to the reply's send (or the end) */
    const char *injected;       /* the injected action ("errno=EIO"), or NULL */
    int rule;                   /* its rule's index (0-based) when injected */
    uint32_t delayed_ms;        /* an injected delay that was served */
    int send_err;               /* the reply could not be sent: negative errno */
};
void br_trace_out(struct br_trace *t, const struct br_trace_out *o);

#endif /* BR_TRACE_H */
