/* SPDX-License-Identifier: MIT */
#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdstore.h"
#include "handlers.h"
#include "hooks.h"
#include "log.h"
#include "session.h"
#include "tap.h"

/* Connections taken from the backlog per loop turn. */
#define BR_ACCEPT_BATCH 16
/* Out of fds for accept(): retry after this long (or when a session ends)
 * instead of polling a listener that stays readable. */
#define BR_ACCEPT_RETRY_MS 1000

struct extra_fd {
    int fd;
    short events;
    br_fd_cb cb;
    void *arg;
};

/* What an epoll event is about (the low 32 bits of its data; an extra fd's
 * event carries the fd in the high 32 bits). */
enum { EV_STOP, EV_SIGNAL, EV_LISTEN, EV_CLIENT, EV_EXTRA };
/* Events taken per wait: every fd the loop watches fits. */
#define BR_EP_EVENTS (4 + BR_MAX_EXTRA_FDS)

struct br_server {
    struct br_dev *dev;
    int listen_fd;
    int stop_fd;              /* eventfd */
    int signal_fd;            /* -1 unless watching signals */
    int ep_fd;                /* epoll: all of the loop's fds */
    int client_fd;            /* the session's fd in ep_fd, -1 none */
    uint32_t client_events;   /* what ep_fd waits for on it */
    bool listen_watched;      /* the listener waits for EPOLLIN */
    struct br_session *sess;
    const char *drop_reason;  /* set by br_server_drop_client */
    struct extra_fd extra[BR_MAX_EXTRA_FDS];
    unsigned n_extra;
    atomic_uint accepted, refused, closed;
    atomic_bool connected;
    bool accept_stalled;      /* accept() ran out of fds; listener not watched */
    uint64_t hs_deadline_ns;  /* the session must have negotiated by then */
    struct br_ratelimit conn_rl;  /* connect / refusal / disconnect lines */
    char why[64 + sizeof(struct vub_err)];   /* reason of the last session close */
    bool reexec_allowed;      /* SIGHUP re-executes (br_server_allow_reexec) */
    const char *reexec_why_not; /* else the reason logged (static) */
    bool reexec_wanted;       /* a SIGHUP came: stop for it at the next safe point */
    bool stop_pending;        /* a stop signal was read by work_interrupted */
};

static void conn_log_summary(unsigned missed)
{
    if (missed)
        br_warn("%u connect/refusal log lines not logged in the last %u ms (at most %u per "
                "interval)", missed, BR_CONN_LOG_INTERVAL_MS, BR_CONN_LOG_BURST);
}

/* Whether one more connect, refusal or disconnect line may be logged: any
 * peer that can reach the socket causes these at will, so they share one
 * rate limit. A summary of what an ended interval suppressed goes first. */
static bool conn_log_allowed(struct br_server *srv)
{
    unsigned missed = 0;
    bool ok = br_ratelimit_allow(&srv->conn_rl, br_now_ns(), &missed);
    conn_log_summary(missed);
    return ok;
}

__attribute__((format(printf, 3, 4)))
static void conn_log(struct br_server *srv, enum br_log_level lvl, const char *fmt, ...)
{
    if (!conn_log_allowed(srv))
        return;
    va_list ap;
    va_start(ap, fmt);
    br_vlog(lvl, fmt, ap);
    va_end(ap);
}

/* The summary when its interval is over, without waiting for an event. */
static void conn_log_flush(struct br_server *srv)
{
    if (srv->conn_rl.suppressed)     /* else nothing to say: no clock read */
        conn_log_summary(br_ratelimit_flush(&srv->conn_rl, br_now_ns()));
}

static int ep_ctl(struct br_server *srv, int op, int fd, uint32_t events, uint32_t what)
{
    struct epoll_event ev = { .events = events,
                              .data.u64 = (uint64_t)(uint32_t)fd << 32 | what };
    return epoll_ctl(srv->ep_fd, op, fd, &ev) < 0 ? -errno : 0;
}

int br_server_new(struct br_server **out, struct br_dev *dev, int listen_fd)
{
    struct br_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        close(listen_fd);
        return -ENOMEM;
    }
    srv->dev = dev;
    srv->listen_fd = listen_fd;
    srv->signal_fd = -1;
    br_ratelimit_init(&srv->conn_rl, BR_CONN_LOG_BURST, BR_CONN_LOG_INTERVAL_MS);
    srv->client_fd = -1;
    srv->ep_fd = -1;
    srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int r = srv->stop_fd < 0 ? -errno : 0;
    if (r == 0 && (srv->ep_fd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        r = -errno;
    if (r == 0)
        r = ep_ctl(srv, EPOLL_CTL_ADD, srv->stop_fd, EPOLLIN, EV_STOP);
    if (r == 0)
        r = ep_ctl(srv, EPOLL_CTL_ADD, listen_fd, EPOLLIN, EV_LISTEN);
    if (r < 0) {
        if (srv->ep_fd >= 0)
            close(srv->ep_fd);
        if (srv->stop_fd >= 0)
            close(srv->stop_fd);
        close(listen_fd);
        free(srv);
        return r;
    }
    srv->listen_watched = true;
    *out = srv;
    return 0;
}

int br_server_watch_signals(struct br_server *srv)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    int r = ep_ctl(srv, EPOLL_CTL_ADD, fd, EPOLLIN, EV_SIGNAL);
    if (r < 0) {
        close(fd);
        return r;
    }
    if (srv->signal_fd >= 0)
        close(srv->signal_fd);   /* leaves the epoll set with its last fd */
    srv->signal_fd = fd;
    return 0;
}

int br_server_add_fd(struct br_server *srv, int fd, short events, br_fd_cb cb, void *arg)
{
    if (fd < 0 || !cb)
        return -EINVAL;
    if (srv->n_extra == BR_MAX_EXTRA_FDS)
        return -ENOSPC;
    /* poll's and epoll's event bits are the same on Linux */
    int r = ep_ctl(srv, EPOLL_CTL_ADD, fd, (uint16_t)events, EV_EXTRA);
    if (r < 0)
        return r;
    srv->extra[srv->n_extra++] = (struct extra_fd){ fd, events, cb, arg };
    return 0;
}

_Static_assert(POLLIN == EPOLLIN && POLLPRI == EPOLLPRI && POLLOUT == EPOLLOUT &&
               POLLERR == EPOLLERR && POLLHUP == EPOLLHUP && POLLRDHUP == EPOLLRDHUP,
               "poll and epoll event bits agree");

void br_server_remove_fd(struct br_server *srv, int fd)
{
    for (unsigned i = 0; i < srv->n_extra; i++) {
        if (srv->extra[i].fd == fd) {
            /* fails only if the caller closed fd already: then it has left */
            epoll_ctl(srv->ep_fd, EPOLL_CTL_DEL, fd, NULL);
            srv->extra[i] = srv->extra[--srv->n_extra];
            return;
        }
    }
}

void br_server_stop(struct br_server *srv)
{
    uint64_t one = 1;
    ssize_t n = write(srv->stop_fd, &one, sizeof(one));
    (void)n;   /* a full counter already means "stop" */
}

void br_server_drop_client(struct br_server *srv, const char *reason)
{
    if (srv->sess)
        srv->drop_reason = reason ? reason : "dropped";
}

const struct br_session *br_server_session(const struct br_server *srv) { return srv->sess; }

void br_server_get_stats(const struct br_server *srv, struct br_server_stats *out)
{
    out->accepted = atomic_load(&srv->accepted);
    out->refused = atomic_load(&srv->refused);
    out->closed = atomic_load(&srv->closed);
    out->connected = atomic_load(&srv->connected);
}

static void close_session(struct br_server *srv, const char *reason)
{
    if (!srv->sess)
        return;
    if (srv->client_fd >= 0)
        epoll_ctl(srv->ep_fd, EPOLL_CTL_DEL, srv->client_fd, NULL);
    srv->client_fd = -1;
    srv->sess->close_reason = reason;
    /* the disconnect line shares the connect lines' rate limit */
    srv->sess->log_quiet = !conn_log_allowed(srv);
    br_tap_session_end(srv->sess, reason);
    br_session_close(srv->sess);
    srv->sess = NULL;
    srv->drop_reason = NULL;
    srv->hs_deadline_ns = 0;
    srv->accept_stalled = false;   /* its fds are free again */
    atomic_store(&srv->connected, false);
    atomic_fetch_add(&srv->closed, 1);
    (void)br_fdstore_changed();
}

/* Whether the current session's peer has closed its end (POLLHUP: both
 * directions shut; what it left unread can no longer be answered). */
static bool peer_gone(const struct br_server *srv)
{
    struct pollfd p = { .fd = srv->sess->conn.fd, .events = 0 };
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

static bool handle_signal(struct br_server *srv);

/* Whether the session has a reply held back by an injected delay; without
 * --trace and --inject the device has no tap and nothing is ever held. */
static inline bool holding(const struct br_server *srv)
{
    return srv->sess && srv->dev->tap && br_tap_holding(srv->sess);
}

/* Between prefault chunks of a long DMA_MAP (dma.c): run the extra fds'
 * callbacks that have events (a device watch that sees the device go calls
 * br_server_stop) and say whether the loop has been asked to stop (stop
 * request or signal pending; neither is consumed here). */
static bool work_interrupted(void *arg)
{
    struct br_server *srv = arg;
    struct pollfd p[2 + BR_MAX_EXTRA_FDS];
    struct extra_fd extra[BR_MAX_EXTRA_FDS];
    unsigned n_extra = srv->n_extra;
    memcpy(extra, srv->extra, sizeof(extra));
    p[0] = (struct pollfd){ .fd = srv->stop_fd, .events = POLLIN };
    p[1] = (struct pollfd){ .fd = srv->signal_fd, .events = POLLIN };
    for (unsigned i = 0; i < n_extra; i++)
        p[2 + i] = (struct pollfd){ .fd = extra[i].fd, .events = extra[i].events };
    if (poll(p, 2 + n_extra, 0) <= 0)
        return false;
    for (unsigned i = 0; i < n_extra; i++)
        if (p[2 + i].revents)
            extra[i].cb(srv, extra[i].fd, p[2 + i].revents, extra[i].arg);
    /* a SIGHUP only asks for a re-exec after this message: not a stop */
    if (p[1].revents && handle_signal(srv))
        srv->stop_pending = true;
    if (p[0].revents || srv->stop_pending)
        return true;
    p[0].revents = 0;
    return poll(p, 1, 0) == 1;   /* a callback asked to stop */
}

static void accept_clients(struct br_server *srv)
{
    for (int i = 0; i < BR_ACCEPT_BATCH; i++) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The listener stays readable: polling it again at once
                 * would spin (and log) until fds are free. */
                if (!srv->accept_stalled)
                    br_warn("accept: %s; not accepting for %d ms or until the client "
                            "leaves", strerror(errno), BR_ACCEPT_RETRY_MS);
                srv->accept_stalled = true;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                       errno != ECONNABORTED) {
                br_warn("accept: %s", strerror(errno));
            }
            return;
        }
        srv->accept_stalled = false;
        struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
        socklen_t len = sizeof(cred);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
            conn_log(srv, BR_LOG_WARN, "SO_PEERCRED: %s; refusing the connection",
                     strerror(errno));
            close(fd);
            atomic_fetch_add(&srv->refused, 1);
            continue;
        }
        char why[320];
        if (!br_peer_allowed(srv->dev->cfg, fd, &cred, why, sizeof(why))) {
            conn_log(srv, BR_LOG_WARN, "%s", why);
            close(fd);
            atomic_fetch_add(&srv->refused, 1);
            continue;
        }
        /* A client that closed and connected again at once: its old
         * connection may still be the session (both were in the backlog,
         * or its EOF is not read yet). Finish it; only a live peer keeps
         * the device. */
        if (srv->sess && peer_gone(srv))
            close_session(srv, "disconnected");
        if (srv->sess) {
            conn_log(srv, BR_LOG_WARN,
                     "refusing client pid %d uid %u: the device is in use by pid %d uid %u",
                     (int)cred.pid, (unsigned)cred.uid, (int)srv->sess->peer.pid,
                     (unsigned)srv->sess->peer.uid);
            close(fd);
            atomic_fetch_add(&srv->refused, 1);
            continue;
        }
        int r = br_session_open(&srv->sess, srv->dev, fd, &cred);
        if (r < 0) {
            /* -EBUSY: refused, and br_session_open said why (a holder of an
             * ended session's device file, a client of another function of
             * the group) */
            if (r == -EBUSY)
                br_debug("no session for pid %d: %s", (int)cred.pid, strerror(-r));
            else
                br_err("cannot open a session for pid %d: %s", (int)cred.pid, strerror(-r));
            srv->sess = NULL;
            atomic_fetch_add(&srv->refused, 1);
            continue;
        }
        srv->sess->dma.interrupted = work_interrupted;
        srv->sess->dma.interrupted_arg = srv;
        if (br_fdstore_on())
            (void)vu_conn_set_rx_hook(&srv->sess->conn, br_fdstore_peeked, NULL);
        uint32_t hs = srv->dev->cfg->handshake_timeout_ms ? srv->dev->cfg->handshake_timeout_ms
                                                          : BR_DEFAULT_HANDSHAKE_TIMEOUT_MS;
        srv->hs_deadline_ns = br_now_ns() + (uint64_t)hs * 1000000ull;
        atomic_store(&srv->connected, true);
        atomic_fetch_add(&srv->accepted, 1);
        conn_log(srv, BR_LOG_INFO, "client pid %d uid %u gid %u connected", (int)cred.pid,
                 (unsigned)cred.uid, (unsigned)cred.gid);
        (void)br_fdstore_changed();
    }
}

/* Wait timeout: until the handshake deadline of a session that has not
 * negotiated, a due rate-limit summary, or the accept retry; -1 = none.
 * The clock is read only when one of them is pending (not per message). */
static int next_timeout_ms(struct br_server *srv)
{
    if (srv->drop_reason)
        return 0;   /* asked before the loop ran (a restart that ends the session) */
    bool hs = srv->sess && !srv->sess->negotiated && srv->hs_deadline_ns;
    if (!hs && !srv->conn_rl.suppressed && !srv->accept_stalled)
        return -1;
    uint64_t now = br_now_ns();
    int64_t ns = -1;
    if (hs)
        ns = srv->hs_deadline_ns > now ? (int64_t)(srv->hs_deadline_ns - now) : 0;
    int64_t rl = br_ratelimit_due_ns(&srv->conn_rl, now);
    if (rl >= 0 && (ns < 0 || rl < ns))
        ns = rl;
    if (srv->accept_stalled && (ns < 0 || ns > (int64_t)BR_ACCEPT_RETRY_MS * 1000000))
        ns = (int64_t)BR_ACCEPT_RETRY_MS * 1000000;
    if (ns < 0)
        return -1;
    return (int)((ns + 999999) / 1000000);
}

static void check_handshake_deadline(struct br_server *srv)
{
    if (!srv->sess || srv->sess->negotiated || !srv->hs_deadline_ns ||
        br_now_ns() < srv->hs_deadline_ns)
        return;
    uint32_t hs = srv->dev->cfg->handshake_timeout_ms ? srv->dev->cfg->handshake_timeout_ms
                                                      : BR_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    conn_log(srv, BR_LOG_WARN, "client pid %d uid %u sent no VERSION within %u ms; closing "
             "the connection", (int)srv->sess->peer.pid, (unsigned)srv->sess->peer.uid, hs);
    snprintf(srv->why, sizeof(srv->why), "no VERSION within %u ms", hs);
    close_session(srv, srv->why);
}

/* Messages handled per wake-up at most, before the other fds are looked at
 * (the rest stay in the receive buffer: the loop then waits without
 * sleeping). */
#define BR_MSG_BATCH 16

/* One message from the client. Returns true if another may follow at once. */
static bool serve_one(struct br_server *srv)
{
    struct vu_msg m;
    int r = vu_recv(&srv->sess->conn, &m);
    if (r == -EAGAIN)
        return false;     /* nothing after all */
    if (r < 0) {
        if (r == -ECONNRESET) {
            close_session(srv, "disconnected");
        } else {
            snprintf(srv->why, sizeof(srv->why), "protocol error: %s: %s", strerror(-r),
                     srv->sess->conn.err.msg[0] ? srv->sess->conn.err.msg : "receive failed");
            close_session(srv, srv->why);
        }
        return false;
    }
    uint16_t cmd = m.hdr.cmd;
    /* Duplicate DMA fds wait for a batched close only while DMA_MAPs and
     * DMA_UNMAPs follow each other (a guest IOMMU's stream, dma.h); any
     * other message closes them before it is answered, so once the stream
     * pauses the bridge holds no client fd its DMA table does not need. */
    if (cmd != VU_CMD_DMA_MAP && cmd != VU_CMD_DMA_UNMAP && srv->sess->dma.n_close_q)
        br_dma_close_pending(&srv->sess->dma);
    br_fdstore_received(&m);
    r = br_handle_message(srv->sess, &m);
    vu_msg_release(&m);
    br_fdstore_handled(cmd);
    if (r < 0) {
        snprintf(srv->why, sizeof(srv->why), "cannot send a reply: %s", strerror(-r));
        close_session(srv, r == -ECONNABORTED && srv->sess->close_reason
                               ? srv->sess->close_reason : srv->why);
        return false;
    }
    return !srv->drop_reason;
}

/* What the client has queued, up to BR_MSG_BATCH messages: those already in
 * the receive buffer, and with --poll-us those that come while spinning. */
static void serve_client(struct br_server *srv)
{
    unsigned poll_us = srv->dev->cfg->poll_us;
    for (unsigned n = 0; n < BR_MSG_BATCH && serve_one(srv); n++) {
        struct vu_conn *c = &srv->sess->conn;
        if (holding(srv))
            break;      /* a delayed reply (tap.h): nothing more until it is sent */
        if (!vu_conn_rx_ready(c) && !(poll_us && vu_conn_rx_spin(c, poll_us)))
            break;
    }
}

static bool handle_signal(struct br_server *srv)
{
    struct signalfd_siginfo si;
    ssize_t n = read(srv->signal_fd, &si, sizeof(si));
    if (n != (ssize_t)sizeof(si))
        return false;
    if (si.ssi_signo == SIGHUP) {
        if (!srv->reexec_allowed)
            br_warn("SIGHUP: not re-executing: %s",
                    srv->reexec_why_not ? srv->reexec_why_not
                                        : "live re-exec is not available here");
        else
            srv->reexec_wanted = true;
        return false;
    }
    br_info("received %s, shutting down", strsignal((int)si.ssi_signo));
    return true;
}

/* Bring the epoll set in line with the session and the listener: the
 * session's fd is watched for input unless a delayed reply is held (then
 * only for a hang-up, which epoll always reports), the listener unless
 * accept() ran out of fds. Changes only when the state does (a session
 * opens or closes, a delay starts or ends): no system call per message.
 * Returns -errno when the session's fd cannot be watched. */
static int sync_watch(struct br_server *srv, bool held)
{
    if (srv->listen_watched == srv->accept_stalled) {
        uint32_t ev = srv->accept_stalled ? 0 : EPOLLIN;
        if (ep_ctl(srv, EPOLL_CTL_MOD, srv->listen_fd, ev, EV_LISTEN) == 0)
            srv->listen_watched = !srv->accept_stalled;
    }
    if (!srv->sess)
        return 0;
    uint32_t want = held ? 0 : EPOLLIN;
    int fd = srv->sess->conn.fd;
    if (srv->client_fd == fd && srv->client_events == want)
        return 0;
    int r = ep_ctl(srv, srv->client_fd == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, want,
                   EV_CLIENT);
    if (r < 0)
        return r;
    srv->client_fd = fd;
    srv->client_events = want;
    return 0;
}

static const struct extra_fd *extra_of(const struct br_server *srv, int fd)
{
    for (unsigned i = 0; i < srv->n_extra; i++)
        if (srv->extra[i].fd == fd)
            return &srv->extra[i];
    return NULL;
}

/* The steady state of a served session, where the loop's preparation is
 * known to do nothing: negotiated (no handshake deadline), no tap (nothing
 * held, no tap timeout), the epoll set in line (the client's fd watched for
 * input, the listener watched: sync_watch would change nothing), and no
 * drop, stop, re-exec, connect-log summary or accept retry pending (the
 * wait has no timeout). Then a wait that only the client's input ended goes
 * straight to serve_client and the checks after it; any other event goes
 * through the whole loop, exactly as from a wait made there. */
static inline bool steady(const struct br_server *srv)
{
    const struct br_session *s = srv->sess;
    return s && s->negotiated && !srv->dev->tap && srv->client_fd == s->conn.fd &&
           srv->client_events == EPOLLIN && srv->listen_watched && !srv->accept_stalled &&
           !srv->drop_reason && !srv->conn_rl.suppressed && !srv->reexec_wanted &&
           !srv->stop_pending;
}

/* What every turn of the loop ends with. */
static inline void end_turn(struct br_server *srv)
{
    if (srv->drop_reason)
        close_session(srv, srv->drop_reason);
    check_handshake_deadline(srv);
    conn_log_flush(srv);
}

int br_server_run(struct br_server *srv)
{
    struct epoll_event ev[BR_EP_EVENTS];
    bool stop = false;
    int ret = 0;

    while (!stop) {
        bool held, queued;
        int n;
        if (steady(srv) && !vu_conn_rx_ready(&srv->sess->conn)) {
            /* what the preparation below comes to here: held and queued
             * false, no watch to change, no timeout */
            held = queued = false;
            n = epoll_wait(srv->ep_fd, ev, BR_EP_EVENTS, -1);
            if (n == 1 && (uint32_t)ev[0].data.u64 == EV_CLIENT) {
                /* the client's input alone: what the loop below does for it */
                serve_client(srv);
                end_turn(srv);
                continue;
            }
        } else {
            /* a reply held back by an injected delay (tap.h): nothing more
             * is read or served (replies stay in order), but a hang-up is
             * still seen */
            held = holding(srv);
            int r = sync_watch(srv, held);
            if (r < 0) {
                snprintf(srv->why, sizeof(srv->why), "cannot watch the connection: %s",
                         strerror(-r));
                br_err("client pid %d: %s", (int)srv->sess->peer.pid, srv->why);
                close_session(srv, srv->why);
                continue;
            }

            /* whole messages already read: look at the other fds, do not sleep */
            queued = srv->sess && !held && vu_conn_rx_ready(&srv->sess->conn);
            int timeout = queued ? 0 : next_timeout_ms(srv);
            if (!queued && srv->dev->tap)
                timeout = br_tap_poll_timeout(srv->sess, timeout);
            n = epoll_wait(srv->ep_fd, ev, BR_EP_EVENTS, timeout);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            br_err("epoll_wait: %s", strerror(errno));
            break;
        }
        uint32_t stop_ev = 0, sig_ev = 0, listen_ev = 0, client_ev = 0;
        int extra_fd[BR_EP_EVENTS];
        short extra_ev[BR_EP_EVENTS];
        unsigned n_extra = 0;
        for (int i = 0; i < n; i++) {
            uint32_t what = (uint32_t)ev[i].data.u64, e = ev[i].events;
            switch (what) {
            case EV_STOP: stop_ev = e; break;
            case EV_SIGNAL: sig_ev = e; break;
            case EV_LISTEN: listen_ev = e; break;
            case EV_CLIENT: client_ev = e; break;
            default:
                extra_fd[n_extra] = (int)(ev[i].data.u64 >> 32);
                extra_ev[n_extra++] = (short)e;
                break;
            }
        }
        if (stop_ev) {
            uint64_t v;
            if (read(srv->stop_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
                br_debug("stop requested");
            stop = true;
        }
        if ((sig_ev && handle_signal(srv)) || srv->stop_pending)
            stop = true;
        if (stop)
            break;
        /* A re-exec between two messages: whatever was read ahead goes
         * with the state (bridge/reexec.h); a reply held back by an
         * injected delay is sent first. */
        if (srv->reexec_wanted && !held) {
            srv->reexec_wanted = false;
            if (srv->sess)   /* duplicates only; the next process needs none */
                br_dma_close_pending(&srv->sess->dma);
            return BR_SERVER_REEXEC;
        }
        if (held && (client_ev & (EPOLLHUP | EPOLLERR)))
            close_session(srv, "disconnected while a delayed reply was held");
        else if (held && br_tap_flush(srv->sess) < 0)
            close_session(srv, "cannot send a delayed reply");
        /* the client first: its commands are answered in arrival order */
        else if (srv->sess && !held && (client_ev || queued))
            serve_client(srv);
        if (listen_ev || (n == 0 && srv->accept_stalled && !queued))
            accept_clients(srv);
        /* looked up again: an earlier callback may have removed one */
        for (unsigned i = 0; i < n_extra; i++) {
            const struct extra_fd *x = extra_of(srv, extra_fd[i]);
            if (x) {
                struct extra_fd e = *x;
                e.cb(srv, e.fd, extra_ev[i], e.arg);
            }
        }
        end_turn(srv);
    }
    /* with the fd store a stop leaves the session to the next process
     * (br_server_free ends it if the daemon does not exit for that) */
    if (!(stop && br_fdstore_on()))
        close_session(srv, stop ? "server shutting down" : "server error");
    return ret;
}

void br_server_allow_reexec(struct br_server *srv, const char *why_not)
{
    srv->reexec_allowed = !why_not;
    srv->reexec_why_not = why_not;
}

int br_server_listen_fd(const struct br_server *srv) { return srv->listen_fd; }

void br_server_adopt_session(struct br_server *srv, struct br_session *s)
{
    srv->sess = s;
    s->dma.interrupted = work_interrupted;
    s->dma.interrupted_arg = srv;
    if (br_fdstore_on() && vu_conn_set_rx_hook(&s->conn, br_fdstore_peeked, NULL) < 0)
        br_warn("fd store: bytes read ahead before it was on: this session's messages are "
                "not recorded (a crash now ends it)");
    uint32_t hs = srv->dev->cfg->handshake_timeout_ms ? srv->dev->cfg->handshake_timeout_ms
                                                      : BR_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    srv->hs_deadline_ns = s->negotiated ? 0 : br_now_ns() + (uint64_t)hs * 1000000ull;
    atomic_store(&srv->connected, true);
}

void br_server_set_stats(struct br_server *srv, const struct br_server_stats *st)
{
    atomic_store(&srv->accepted, st->accepted);
    atomic_store(&srv->refused, st->refused);
    atomic_store(&srv->closed, st->closed);
}

void br_server_free(struct br_server *srv)
{
    if (!srv)
        return;
    close_session(srv, "server shutting down");
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    if (srv->signal_fd >= 0)
        close(srv->signal_fd);
    close(srv->stop_fd);
    close(srv->ep_fd);
    free(srv);
}
