/* SPDX-License-Identifier: MIT */
#include "server.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handlers.h"
#include "hooks.h"
#include "log.h"
#include "session.h"

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

struct br_server {
    struct br_dev *dev;
    int listen_fd;
    int stop_fd;              /* eventfd */
    int signal_fd;            /* -1 unless watching signals */
    struct br_session *sess;
    const char *drop_reason;  /* set by br_server_drop_client */
    struct extra_fd extra[BR_MAX_EXTRA_FDS];
    unsigned n_extra;
    atomic_uint accepted, refused, closed;
    atomic_bool connected;
    bool accept_stalled;      /* accept() ran out of fds; listener not polled */
    char why[256];            /* reason of the last session close */
};

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
    srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->stop_fd < 0) {
        int r = -errno;
        close(listen_fd);
        free(srv);
        return r;
    }
    *out = srv;
    return 0;
}

int br_server_watch_signals(struct br_server *srv)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    if (srv->signal_fd >= 0)
        close(srv->signal_fd);
    srv->signal_fd = fd;
    return 0;
}

int br_server_add_fd(struct br_server *srv, int fd, short events, br_fd_cb cb, void *arg)
{
    if (fd < 0 || !cb)
        return -EINVAL;
    if (srv->n_extra == BR_MAX_EXTRA_FDS)
        return -ENOSPC;
    srv->extra[srv->n_extra++] = (struct extra_fd){ fd, events, cb, arg };
    return 0;
}

void br_server_remove_fd(struct br_server *srv, int fd)
{
    for (unsigned i = 0; i < srv->n_extra; i++) {
        if (srv->extra[i].fd == fd) {
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
    srv->sess->close_reason = reason;
    br_session_close(srv->sess);
    srv->sess = NULL;
    srv->drop_reason = NULL;
    srv->accept_stalled = false;   /* its fds are free again */
    atomic_store(&srv->connected, false);
    atomic_fetch_add(&srv->closed, 1);
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
            br_warn("SO_PEERCRED: %s; refusing the connection", strerror(errno));
            close(fd);
            atomic_fetch_add(&srv->refused, 1);
            continue;
        }
        if (!br_peer_allowed(srv->dev->cfg, fd, &cred)) {
            close(fd);
            atomic_fetch_add(&srv->refused, 1);
            continue;
        }
        if (srv->sess) {
            br_warn("refusing client pid %d uid %u: the device is in use by pid %d uid %u",
                    (int)cred.pid, (unsigned)cred.uid, (int)srv->sess->peer.pid,
                    (unsigned)srv->sess->peer.uid);
            close(fd);
            atomic_fetch_add(&srv->refused, 1);
            continue;
        }
        int r = br_session_open(&srv->sess, srv->dev, fd, &cred);
        if (r < 0) {
            br_err("cannot open a session for pid %d: %s", (int)cred.pid, strerror(-r));
            srv->sess = NULL;
            atomic_fetch_add(&srv->refused, 1);
            continue;
        }
        atomic_store(&srv->connected, true);
        atomic_fetch_add(&srv->accepted, 1);
        br_info("client pid %d uid %u gid %u connected", (int)cred.pid, (unsigned)cred.uid,
                (unsigned)cred.gid);
    }
}

/* One message from the client. */
static void serve_client(struct br_server *srv)
{
    struct vu_msg m;
    int r = vu_recv(&srv->sess->conn, &m);
    if (r == -EAGAIN)
        return;     /* nothing after all */
    if (r < 0) {
        if (r == -ECONNRESET) {
            close_session(srv, "disconnected");
        } else {
            snprintf(srv->why, sizeof(srv->why), "protocol error: %s: %s", strerror(-r),
                     srv->sess->conn.err.msg[0] ? srv->sess->conn.err.msg : "receive failed");
            close_session(srv, srv->why);
        }
        return;
    }
    r = br_handle_message(srv->sess, &m);
    vu_msg_release(&m);
    if (r < 0) {
        snprintf(srv->why, sizeof(srv->why), "cannot send a reply: %s", strerror(-r));
        close_session(srv, srv->why);
    }
}

static bool handle_signal(struct br_server *srv)
{
    struct signalfd_siginfo si;
    ssize_t n = read(srv->signal_fd, &si, sizeof(si));
    if (n != (ssize_t)sizeof(si))
        return false;
    br_info("received %s, shutting down", strsignal((int)si.ssi_signo));
    return true;
}

int br_server_run(struct br_server *srv)
{
    enum { P_STOP, P_SIG, P_LISTEN, P_CLIENT, P_EXTRA };
    struct pollfd pfd[P_EXTRA + BR_MAX_EXTRA_FDS];
    struct extra_fd extra[BR_MAX_EXTRA_FDS];
    bool stop = false;
    int ret = 0;

    while (!stop) {
        unsigned n_extra = srv->n_extra;
        memcpy(extra, srv->extra, sizeof(extra));
        pfd[P_STOP] = (struct pollfd){ .fd = srv->stop_fd, .events = POLLIN };
        pfd[P_SIG] = (struct pollfd){ .fd = srv->signal_fd, .events = POLLIN };
        pfd[P_LISTEN] = (struct pollfd){ .fd = srv->accept_stalled ? -1 : srv->listen_fd,
                                         .events = POLLIN };
        pfd[P_CLIENT] = (struct pollfd){ .fd = srv->sess ? srv->sess->conn.fd : -1,
                                         .events = POLLIN };
        for (unsigned i = 0; i < n_extra; i++)
            pfd[P_EXTRA + i] = (struct pollfd){ .fd = extra[i].fd, .events = extra[i].events };

        int n = poll(pfd, P_EXTRA + n_extra, srv->accept_stalled ? BR_ACCEPT_RETRY_MS : -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            br_err("poll: %s", strerror(errno));
            break;
        }
        if (pfd[P_STOP].revents) {
            uint64_t v;
            if (read(srv->stop_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
                br_debug("stop requested");
            stop = true;
        }
        if (pfd[P_SIG].revents && handle_signal(srv))
            stop = true;
        if (stop)
            break;
        /* the client first: its commands are answered in arrival order */
        if (srv->sess && pfd[P_CLIENT].revents)
            serve_client(srv);
        if (pfd[P_LISTEN].revents || (n == 0 && srv->accept_stalled))
            accept_clients(srv);
        for (unsigned i = 0; i < n_extra; i++)
            if (pfd[P_EXTRA + i].revents)
                extra[i].cb(srv, extra[i].fd, pfd[P_EXTRA + i].revents, extra[i].arg);
        if (srv->drop_reason)
            close_session(srv, srv->drop_reason);
    }
    close_session(srv, stop ? "server shutting down" : "server error");
    return ret;
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
    free(srv);
}
