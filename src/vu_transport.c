/* SPDX-License-Identifier: MIT */
/*
 * Transports: an AF_UNIX stream socket with SCM_RIGHTS, and a plain byte
 * stream (two fds, no fd passing) for fuzzing. Whole messages only: a send
 * completes partial writes with the fds on the first byte; a receive reads
 * the header (collecting fds), checks it against the limits, then reads the
 * body into a buffer of the checked size.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vu_proto.h"

#define MAX_IOV 8
#define DEFAULT_IO_TIMEOUT_MS 10000

/* Fds collected while reading one piece of a message. */
struct fdbag {
    int fds[VU_MAX_FDS_PER_MSG];
    size_t n;
    size_t cap;       /* how many may be kept (0 while reading the body) */
    size_t dropped;   /* arrived beyond cap: closed at once */
    bool ctrunc;
};

static void fdbag_close(struct fdbag *b)
{
    for (size_t i = 0; i < b->n; i++)
        close(b->fds[i]);
    b->n = 0;
}

/* One read of at most len bytes: > 0 bytes, 0 EOF, -errno. */
typedef ssize_t (*read_fn)(struct vu_conn *c, void *buf, size_t len, struct fdbag *bag);

static ssize_t sock_read(struct vu_conn *c, void *buf, size_t len, struct fdbag *bag)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS_PER_MSG)];
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = ctl.buf,
        .msg_controllen = sizeof(ctl.buf),
    };
    ssize_t r = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC);
    if (r < 0)
        return -errno;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(cm);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (bag->n < bag->cap) {
                bag->fds[bag->n++] = fd;
            } else {
                close(fd);
                bag->dropped++;
            }
        }
    }
    if (mh.msg_flags & MSG_CTRUNC)
        bag->ctrunc = true;
    return r;
}

static ssize_t stream_read(struct vu_conn *c, void *buf, size_t len, struct fdbag *bag)
{
    (void)bag;
    ssize_t r = read(c->fd, buf, len);
    return r < 0 ? -errno : r;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for ev on fd until *deadline (monotonic ms; 0 = not set yet: set it
 * to now + timeout_ms on the first wait). One deadline covers a whole
 * message, so a peer that trickles bytes cannot stretch the wait. */
static int wait_fd(int fd, short ev, int timeout_ms, int64_t *deadline)
{
    struct pollfd p = {.fd = fd, .events = ev};
    for (;;) {
        int left = -1;
        if (timeout_ms >= 0) {
            int64_t now = now_ms();
            if (*deadline == 0)
                *deadline = now + timeout_ms;
            if (*deadline <= now)
                return -ETIMEDOUT;
            left = (int)(*deadline - now);
        }
        int r = poll(&p, 1, left);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

/* Read exactly len bytes. `fresh`: nothing of this message consumed yet, so
 * EOF before the first byte is an orderly close and EAGAIN may be returned. */
static int read_full(struct vu_conn *c, read_fn rd, void *buf, size_t len, bool fresh,
                     struct fdbag *bag, int64_t *deadline)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = rd(c, (uint8_t *)buf + got, len - got, bag);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0) {
            if (fresh && got == 0)
                return vu_fail(&c->err, -ECONNRESET, "peer closed the connection");
            return vu_fail(&c->err, -EPROTO, "peer closed the connection inside a message "
                           "(%zu of %zu bytes)", got, len);
        }
        if (r == -EINTR)
            continue;
        if (r == -EAGAIN || r == -EWOULDBLOCK) {
            if (fresh && got == 0)
                return -EAGAIN;
            int w = wait_fd(c->fd, POLLIN, c->io_timeout_ms, deadline);
            if (w)
                return vu_fail(&c->err, w, "waiting for the rest of a message: %s",
                               strerror(-w));
            continue;
        }
        return vu_fail(&c->err, (int)r, "receive failed: %s", strerror((int)-r));
    }
    return 0;
}

static int recv_common(struct vu_conn *c, struct vu_msg *m, read_fn rd)
{
    struct fdbag bag = {.cap = VU_MAX_FDS_PER_MSG};
    struct vu_hdr h;
    int64_t deadline = 0;   /* for the whole message, header and body */
    int r = read_full(c, rd, &h, sizeof(h), true, &bag, &deadline);
    if (r)
        goto fail_fds;
    m->hdr = h;
    if (bag.ctrunc || bag.dropped) {
        r = vu_fail(&c->err, -EPROTO, "%s: ancillary data truncated (more than %u fds sent)",
                    vu_cmd_name(h.cmd), VU_MAX_FDS_PER_MSG);
        goto fail_fds;
    }
    if (bag.n > c->lim.max_fds) {
        r = vu_fail(&c->err, -EPROTO, "%s: %zu fds exceed the limit of %u", vu_cmd_name(h.cmd),
                    bag.n, c->lim.max_fds);
        goto fail_fds;
    }
    r = vu_hdr_check(&h, &c->lim, &c->err);
    if (r) {
        if (r != -E2BIG)
            r = -EPROTO;
        goto fail_fds;
    }

    size_t len = h.msg_size - VU_HDR_SIZE;
    if (len) {
        m->payload = malloc(len);
        if (!m->payload) {
            r = vu_fail(&c->err, -ENOMEM, "%s: no memory for %zu bytes", vu_cmd_name(h.cmd),
                        len);
            goto fail_fds;
        }
        struct fdbag late = {.cap = 0};
        r = read_full(c, rd, m->payload, len, false, &late, &deadline);
        if (!r && (late.dropped || late.ctrunc))
            r = vu_fail(&c->err, -EPROTO, "%s: %zu fds arrived with body bytes",
                        vu_cmd_name(h.cmd), late.dropped);
        if (r)
            goto fail_payload;
        m->payload_len = len;
    }
    memcpy(m->fds, bag.fds, bag.n * sizeof(int));
    m->nfds = bag.n;
    return 0;

fail_payload:
    free(m->payload);
    m->payload = NULL;
fail_fds:
    fdbag_close(&bag);
    return r;
}

static int sock_recv(struct vu_conn *c, struct vu_msg *m)
{
    return recv_common(c, m, sock_read);
}

static int stream_recv(struct vu_conn *c, struct vu_msg *m)
{
    return recv_common(c, m, stream_read);
}

/* Drop `n` sent bytes from the front of an iovec array. */
static void iov_advance(struct iovec **iov, int *cnt, size_t n)
{
    while (n && *cnt) {
        if (n >= (*iov)->iov_len) {
            n -= (*iov)->iov_len;
            (*iov)++;
            (*cnt)--;
        } else {
            (*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
            (*iov)->iov_len -= n;
            n = 0;
        }
    }
    while (*cnt && (*iov)->iov_len == 0) {
        (*iov)++;
        (*cnt)--;
    }
}

/* Copy iov (dropping empty entries) into local storage. */
static int iov_copy(struct iovec *dst, const struct iovec *src, int cnt, struct vu_err *err)
{
    if (cnt < 0 || cnt > MAX_IOV)
        return vu_fail(err, -EINVAL, "send: %d iovecs (at most %d)", cnt, MAX_IOV);
    int n = 0;
    for (int i = 0; i < cnt; i++)
        if (src[i].iov_len)
            dst[n++] = src[i];
    return n;
}

static int send_loop(struct vu_conn *c, const struct iovec *iov_in, int iovcnt, const int *fds,
                     size_t nfds, bool sock)
{
    struct iovec local[MAX_IOV];
    int cnt = iov_copy(local, iov_in, iovcnt, &c->err);
    if (cnt < 0)
        return cnt;
    if (nfds > VU_MAX_FDS_PER_MSG)
        return vu_fail(&c->err, -EINVAL, "send: %zu fds (at most %u)", nfds,
                       VU_MAX_FDS_PER_MSG);
    if (nfds && !sock)
        return vu_fail(&c->err, -EINVAL, "send: this transport cannot pass fds");
    if (nfds && cnt == 0)
        return vu_fail(&c->err, -EINVAL, "send: fds without bytes");
    struct iovec *iov = local;
    bool fds_sent = nfds == 0;
    int64_t deadline = 0;   /* for the whole message */
    while (cnt > 0) {
        ssize_t r;
        if (sock) {
            union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS_PER_MSG)];
            } ctl;
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
            if (!fds_sent) {
                memset(&ctl, 0, sizeof(ctl));
                mh.msg_control = ctl.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
            }
            r = sendmsg(c->wfd, &mh, MSG_NOSIGNAL);
        } else {
            r = writev(c->wfd, iov, cnt);
        }
        if (r < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK) {
                int w = wait_fd(c->wfd, POLLOUT, c->io_timeout_ms, &deadline);
                if (w)
                    return vu_fail(&c->err, w, "send: waiting for space: %s", strerror(-w));
                continue;
            }
            return vu_fail(&c->err, -e, "send failed: %s", strerror(e));
        }
        fds_sent = true;
        iov_advance(&iov, &cnt, (size_t)r);
    }
    return 0;
}

static int sock_send(struct vu_conn *c, const struct iovec *iov, int iovcnt, const int *fds,
                     size_t nfds)
{
    return send_loop(c, iov, iovcnt, fds, nfds, true);
}

static int stream_send(struct vu_conn *c, const struct iovec *iov, int iovcnt, const int *fds,
                       size_t nfds)
{
    return send_loop(c, iov, iovcnt, fds, nfds, false);
}

static void conn_close(struct vu_conn *c)
{
    if (c->wfd >= 0 && c->wfd != c->fd)
        close(c->wfd);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->wfd = -1;
}

static const struct vu_transport_ops sock_ops = {
    .send = sock_send,
    .recv = sock_recv,
    .close = conn_close,
};

static const struct vu_transport_ops stream_ops = {
    .send = stream_send,
    .recv = stream_recv,
    .close = conn_close,
};

static void conn_init(struct vu_conn *c, const struct vu_transport_ops *ops, int rfd, int wfd,
                      const struct vu_limits *lim)
{
    memset(c, 0, sizeof(*c));
    c->ops = ops;
    c->fd = rfd;
    c->wfd = wfd;
    if (lim)
        c->lim = *lim;
    else
        vu_limits_default(&c->lim);
    if (c->lim.max_fds > VU_MAX_FDS_PER_MSG)
        c->lim.max_fds = VU_MAX_FDS_PER_MSG;
    c->io_timeout_ms = DEFAULT_IO_TIMEOUT_MS;
}

void vu_conn_init_socket(struct vu_conn *c, int fd, const struct vu_limits *lim)
{
    conn_init(c, &sock_ops, fd, fd, lim);
}

void vu_conn_init_stream(struct vu_conn *c, int rfd, int wfd, const struct vu_limits *lim)
{
    conn_init(c, &stream_ops, rfd, wfd, lim);
    c->lim.max_fds = 0;
}

void vu_conn_close(struct vu_conn *c)
{
    if (c->ops && c->ops->close)
        c->ops->close(c);
}

int vu_recv(struct vu_conn *c, struct vu_msg *m)
{
    vu_msg_init(m);
    if (c->fd < 0)
        return vu_fail(&c->err, -EBADF, "receive on a closed connection");
    return c->ops->recv(c, m);
}

int vu_send(struct vu_conn *c, struct vu_hdr *hdr, const void *payload, size_t len,
            const int *fds, size_t nfds)
{
    if (c->wfd < 0)
        return vu_fail(&c->err, -EBADF, "send on a closed connection");
    if (len > UINT32_MAX - VU_HDR_SIZE)
        return vu_fail(&c->err, -E2BIG, "%s: payload of %zu bytes", vu_cmd_name(hdr->cmd), len);
    hdr->msg_size = (uint32_t)(VU_HDR_SIZE + len);
    struct iovec iov[2] = {
        {.iov_base = hdr, .iov_len = sizeof(*hdr)},
        {.iov_base = (void *)payload, .iov_len = payload ? len : 0},
    };
    if (len && !payload)
        return vu_fail(&c->err, -EINVAL, "%s: payload NULL with length %zu",
                       vu_cmd_name(hdr->cmd), len);
    return c->ops->send(c, iov, 2, fds, nfds);
}

int vu_send_reply(struct vu_conn *c, const struct vu_msg *req, const void *p1, size_t l1,
                  const void *p2, size_t l2, const int *fds, size_t nfds)
{
    if (req->hdr.flags & VU_F_NO_REPLY)
        return 0;
    if (c->wfd < 0)
        return vu_fail(&c->err, -EBADF, "send on a closed connection");
    if ((l1 && !p1) || (l2 && !p2) || l1 > UINT32_MAX - VU_HDR_SIZE ||
        l2 > UINT32_MAX - VU_HDR_SIZE - l1)
        return vu_fail(&c->err, -EINVAL, "%s: bad reply payload (%zu + %zu bytes)",
                       vu_cmd_name(req->hdr.cmd), l1, l2);
    struct vu_hdr h = {
        .msg_id = req->hdr.msg_id,
        .cmd = req->hdr.cmd,
        .msg_size = (uint32_t)(VU_HDR_SIZE + l1 + l2),
        .flags = VU_F_TYPE_REPLY,
        .error_no = 0,
    };
    struct iovec iov[3] = {
        {.iov_base = &h, .iov_len = sizeof(h)},
        {.iov_base = (void *)p1, .iov_len = l1},
        {.iov_base = (void *)p2, .iov_len = l2},
    };
    return c->ops->send(c, iov, 3, fds, nfds);
}

int vu_send_error(struct vu_conn *c, const struct vu_msg *req, int errnum)
{
    if (req->hdr.flags & VU_F_NO_REPLY)
        return 0;
    if (c->wfd < 0)
        return vu_fail(&c->err, -EBADF, "send on a closed connection");
    if (errnum < 0)
        errnum = -errnum;
    if (errnum == 0 || errnum > 4096)
        errnum = EIO;
    struct vu_hdr h = {
        .msg_id = req->hdr.msg_id,
        .cmd = req->hdr.cmd,
        .msg_size = VU_HDR_SIZE,
        .flags = VU_F_TYPE_REPLY | VU_F_ERROR,
        .error_no = (uint32_t)errnum,
    };
    struct iovec iov = {.iov_base = &h, .iov_len = sizeof(h)};
    return c->ops->send(c, &iov, 1, NULL, 0);
}
