/* SPDX-License-Identifier: MIT */
#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "access.h"
#include "log.h"

/* How long `status` waits for the daemon's answer. */
#define BR_STATUS_CLIENT_TIMEOUT_MS 5000

struct out {
    char *p;
    size_t len, used;
    bool full;
};

__attribute__((format(printf, 2, 3)))
static void put(struct out *o, const char *fmt, ...)
{
    if (o->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->used, o->len - o->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->len - o->used)
        o->full = true;
    else
        o->used += (size_t)n;
}

static const char *dir_str(uint32_t flags)
{
    switch (flags & (VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE)) {
    case VU_DMA_MAP_FLAG_READ: return "r";
    case VU_DMA_MAP_FLAG_WRITE: return "w";
    case VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE: return "rw";
    default: return "";
    }
}

int br_status_format(char *buf, size_t len, const struct br_dev *dev,
                     const struct br_session *s, const struct br_server_stats *st)
{
    struct out o = { .p = buf, .len = len };
    if (len == 0)
        return -ENOSPC;
    buf[0] = '\0';
    /* the device address is canonical (hex digits, ':' and '.'); the socket
     * path comes from the operator: neither needs escaping beyond this check */
    const char *sock = dev->cfg && dev->cfg->socket_path ? dev->cfg->socket_path : "";
    bool plain = true;
    for (const char *c = sock; *c; c++)
        plain &= *c >= 0x20 && *c != '"' && *c != '\\';
    put(&o, "{\"device\":\"%s\",\"socket\":\"%s\",", dev->hv->addr, plain ? sock : "?");
    put(&o, "\"sessions\":{\"accepted\":%u,\"refused\":%u,\"closed\":%u},", st->accepted,
        st->refused, st->closed);
    if (!s) {
        put(&o, "\"client\":null}\n");
    } else {
        put(&o, "\"client\":{\"pid\":%d,\"uid\":%u,\"gid\":%u,\"negotiated\":%s,"
                "\"messages\":%" PRIu64 ",\"errors\":%" PRIu64 ",",
            (int)s->peer.pid, (unsigned)s->peer.uid, (unsigned)s->peer.gid,
            s->negotiated ? "true" : "false", s->n_msgs, s->n_errors);
        /* per thread: the functions of a group are served in threads of their own */
        static _Thread_local struct br_dma_range r[BR_STATUS_MAX_RANGES];
        size_t k = br_dma_ranges(&s->dma, r, BR_STATUS_MAX_RANGES);
        put(&o, "\"dma\":{\"count\":%zu,\"bytes\":%" PRIu64 ",\"ranges_truncated\":%s,"
                "\"ranges\":[", s->dma.n, s->dma.bytes, k < s->dma.n ? "true" : "false");
        for (size_t i = 0; i < k; i++)
            put(&o, "%s{\"iova\":\"0x%" PRIx64 "\",\"size\":\"0x%" PRIx64 "\",\"dir\":\"%s\","
                    "\"iommu\":%s}", i ? "," : "", r[i].iova, r[i].size, dir_str(r[i].flags),
                r[i].fd ? "true" : "false");
        put(&o, "]},\"irqs\":[");
        bool first = true;
        for (uint32_t i = 0; i < s->irq.n && i < BR_MAX_IRQ_INDEXES; i++) {
            const struct br_irq_index *ix = &s->irq.idx[i];
            if (!ix->used && !ix->active)
                continue;
            put(&o, "%s{\"index\":%u,\"vectors\":%u,\"enabled\":%u}", first ? "" : ",", i,
                ix->count, ix->active);
            first = false;
        }
        put(&o, "]}}\n");
    }
    return o.full ? -ENOSPC : (int)o.used;
}

int br_status_path(const char *socket_path, char *out, size_t outsz)
{
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
    int n = snprintf(out, outsz, "%s%s", socket_path, BR_STATUS_SUFFIX);
    if (n < 0 || (size_t)n >= outsz || (size_t)n >= max)
        return -ENAMETOOLONG;
    return 0;
}

/* One connection: check the peer, send the document, close. */
static void on_status(struct br_server *srv, int lfd, short revents, void *arg)
{
    struct br_dev *dev = arg;
    (void)revents;
    for (int i = 0; i < 4; i++) {     /* a few per loop turn, never a flood */
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        struct ucred cr;
        socklen_t cl = sizeof(cr);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
            (cr.uid != 0 && cr.uid != geteuid())) {
            br_warn("status: refused a peer (uid %d): only root or the daemon's user",
                    cl == sizeof(cr) ? (int)cr.uid : -1);
            close(fd);
            continue;
        }
        static _Thread_local char doc[BR_STATUS_MAX_LEN];
        struct br_server_stats st;
        br_server_get_stats(srv, &st);
        int n = br_status_format(doc, sizeof(doc), dev, br_server_session(srv), &st);
        if (n < 0)
            n = snprintf(doc, sizeof(doc), "{\"error\":\"status too long\"}\n");
        /* the document fits a socket buffer: never blocks the loop */
        if (send(fd, doc, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n)
            br_debug("status: peer pid %d did not take the whole answer", (int)cr.pid);
        close(fd);
    }
}

int br_status_attach(struct br_server *srv, struct br_dev *dev, struct acc_sock *out)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    int r = br_status_path(dev->cfg->socket_path, path, sizeof(path));
    if (r < 0) {
        br_warn("no status socket: %s%s: path too long", dev->cfg->socket_path,
                BR_STATUS_SUFFIX);
        return r;
    }
    struct acc_sock_opts o = { .path = path, .owner = (uid_t)-1, .group = (gid_t)-1,
                               .mode = 0600, .backlog = 4 };
    struct vub_err err = { "" };
    r = acc_listen_unix(&o, out, &err);
    if (r < 0) {
        br_warn("no status socket: %s", err.msg[0] ? err.msg : strerror(-r));
        return r;
    }
    int fl = fcntl(out->fd, F_GETFL);
    if (fl < 0 || fcntl(out->fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        (r = br_server_add_fd(srv, out->fd, POLLIN, on_status, dev)) < 0) {
        r = r < 0 ? r : -errno;
        br_warn("no status socket %s: %s", path, strerror(-r));
        close(out->fd);
        out->fd = -1;
        acc_sock_unlink(out);
        acc_sock_release(out);
        return r;
    }
    return 0;
}

int br_status_attach_existing(struct br_server *srv, struct br_dev *dev, struct acc_sock *sock)
{
    int fl = fcntl(sock->fd, F_GETFL);
    int r = fl < 0 || fcntl(sock->fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
    if (r == 0)
        r = br_server_add_fd(srv, sock->fd, POLLIN, on_status, dev);
    if (r < 0)
        br_warn("no status socket: %s", strerror(-r));
    return r;
}

int br_cmd_status(const char *socket_path)
{
    char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    if (br_status_path(socket_path, path, sizeof(path)) < 0) {
        fprintf(stderr, "vfio-user-bridge status: %s%s: path too long\n", socket_path,
                BR_STATUS_SUFFIX);
        return 2;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "vfio-user-bridge status: cannot connect to %s: %s\n", path,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    static char buf[BR_STATUS_MAX_LEN + 1];
    size_t got = 0;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, BR_STATUS_CLIENT_TIMEOUT_MS) != 1)
            break;
        ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == sizeof(buf) - 1)
            break;
    }
    close(fd);
    if (got == 0) {
        fprintf(stderr, "vfio-user-bridge status: %s closed without an answer (only root or "
                "the daemon's user may ask)\n", path);
        return 1;
    }
    fwrite(buf, 1, got, stdout);
    return 0;
}
