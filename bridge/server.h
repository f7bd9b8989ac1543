/* SPDX-License-Identifier: MIT */
/*
 * server.h - the daemon's single-threaded event loop: one listening socket,
 * at most one client session per device (a second client is accepted, told
 * nothing, logged and closed; the first is undisturbed; but a session whose
 * peer has already hung up is finished first, so a client that reconnects
 * at once is served), a handshake deadline (VERSION within
 * cfg->handshake_timeout_ms of connecting), commands handled in arrival
 * order, SIGTERM/SIGINT through a signalfd, a stop request from any thread
 * or signal handler, and extra fds with callbacks (for example a udev
 * monitor that reports the device going away). Connect, refusal and
 * disconnect log lines are rate-limited (BR_CONN_LOG_BURST per interval).
 * All of the loop's fds are in one epoll set: a wake-up is one epoll_wait,
 * whatever the number of fds, and the messages already read are served
 * (up to a batch) before it waits again.
 */
#ifndef BR_SERVER_H
#define BR_SERVER_H

#include <stdbool.h>

#include "device.h"

#define BR_MAX_EXTRA_FDS 4

struct br_server;

/* Called from the loop when an extra fd has events. It may call
 * br_server_stop or br_server_drop_client. It is also called between the
 * prefault chunks of a long DMA_MAP (so that a device removal is seen while
 * one runs), and may then be called again in the same loop turn with
 * nothing left to read: the fd must be non-blocking, and the callback must
 * not touch the session's DMA table. */
typedef void (*br_fd_cb)(struct br_server *srv, int fd, short revents, void *arg);

struct br_server_stats {
    unsigned accepted;        /* sessions opened */
    unsigned refused;         /* connections refused (busy or not allowed) */
    unsigned closed;          /* sessions closed (device quiesced) */
    bool connected;           /* a session is open now */
};

/* A server on `dev` (not owned) listening on listen_fd (owned from now on,
 * also on error). */
int br_server_new(struct br_server **out, struct br_dev *dev, int listen_fd);
/* Watch SIGTERM and SIGINT through a signalfd (the caller blocks them with
 * sigprocmask first, in every thread). Either one makes br_server_run end. */
int br_server_watch_signals(struct br_server *srv);
/* Watch one more fd (at most BR_MAX_EXTRA_FDS; one that epoll can watch:
 * a socket, eventfd, pipe, netlink..., each fd once); fd stays owned by the
 * caller. Loop thread only once the loop runs (callbacks). */
int br_server_add_fd(struct br_server *srv, int fd, short events, br_fd_cb cb, void *arg);
/* Stop watching fd: its callback is not called again, not even for events
 * of the same wake-up (arg may be freed right after). */
void br_server_remove_fd(struct br_server *srv, int fd);
/* Run until stopped. On the way out the session (if any) is closed, which
 * quiesces the device. Returns 0, or -errno if the loop itself failed, or
 * BR_SERVER_REEXEC: a SIGHUP asked for a live re-exec (bridge/reexec.h) and
 * the loop stopped between two messages with the session left as it is
 * (no delayed reply held); calling br_server_run again goes on serving. */
#define BR_SERVER_REEXEC 1
int br_server_run(struct br_server *srv);
/* Whether SIGHUP asks for a re-exec (why_not NULL) or is refused with a log
 * line naming why_not (a static string; the default refuses "live re-exec
 * is not available here"): e.g. a simulated device lives in this process
 * and cannot be handed over. */
void br_server_allow_reexec(struct br_server *srv, const char *why_not);
/* Ask the loop to end. Async-signal-safe and callable from any thread. */
void br_server_stop(struct br_server *srv);
/* Close the current session (if any) at the next loop turn, with a reason
 * for the log. Only from the loop's thread (callbacks). */
void br_server_drop_client(struct br_server *srv, const char *reason);
/* Counters; safe to read from another thread. */
void br_server_get_stats(const struct br_server *srv, struct br_server_stats *out);
/* The current session, NULL if none (for the status view; loop thread only). */
struct br_session;
const struct br_session *br_server_session(const struct br_server *srv);
/* Live re-exec: the listening fd (still owned by srv); the session's
 * ownership moves in (adopt: srv serves it from now on, as if accepted; the
 * handshake deadline starts again if it has not negotiated); the counters
 * carry on from the previous process. */
int br_server_listen_fd(const struct br_server *srv);
void br_server_adopt_session(struct br_server *srv, struct br_session *s);
void br_server_set_stats(struct br_server *srv, const struct br_server_stats *st);
/* Close the session if any, the listening socket and the loop's fds. */
void br_server_free(struct br_server *srv);

#endif /* BR_SERVER_H */
