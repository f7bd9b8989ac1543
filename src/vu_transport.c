/* SPDX-License-Identifier: MIT */
/*
 * Transports: an AF_UNIX stream socket with SCM_RIGHTS, and a plain byte
 * stream (two fds, no fd passing) for fuzzing. Whole messages only: a send
 * is one sendmsg of header and payload pieces with the fds (partial writes
 * are completed, the fds go with the first byte); a receive reads whatever
 * is queued, up to the size of the connection's buffer, in one call, and
 * hands out the messages in it one by one, each header checked against the
 * limits before its body is waited for. The buffer is reused: no allocation
 * per message once it has grown to the largest message seen.
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
/* First size of a connection's receive buffer; it grows (never shrinks) up
 * to the largest message the limit lets in, when one needs it. */
#define VU_RX_INITIAL (64u << 10)

/* Fds collected by one read. */
struct fdbag {
    int fds[VU_MAX_FDS_PER_MSG];
    size_t n;
    size_t dropped;   /* arrived beyond VU_MAX_FDS_PER_MSG: closed at once */
    bool ctrunc;
};

static void fdbag_close(struct fdbag *b)
{
    for (size_t i = 0; i < b->n; i++)
        close(b->fds[i]);
    b->n = 0;
}

/* Close the fds held for a message not yet handed out. */
static void rx_close_fds(struct vu_conn *c)
{
    for (size_t i = 0; i < c->rx_nfds; i++)
        close(c->rx_fds[i]);
    c->rx_nfds = 0;
}

/* One read of at most len bytes: > 0 bytes, 0 EOF, -errno. */
typedef ssize_t (*read_fn)(struct vu_conn *c, void *buf, size_t len, struct fdbag *bag);

__attribute__((always_inline))
static inline ssize_t sock_read_inline(struct vu_conn *c, void *buf, size_t len,
                                       struct fdbag *bag)
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
    if (mh.msg_controllen == 0)
        return r;     /* the common case: no ancillary data at all */
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(cm);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (bag->n < VU_MAX_FDS_PER_MSG) {
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

/* The read of recv_common (called through a pointer); sock_recv has its
 * own copy inline, the message path's one read. */
static ssize_t sock_read(struct vu_conn *c, void *buf, size_t len, struct fdbag *bag)
{
    return sock_read_inline(c, buf, len, bag);
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

static uint32_t rx_size_at(const struct vu_conn *c, size_t at)
{
    struct vu_hdr h;
    memcpy(&h, c->rx + at, sizeof(h));
    return h.msg_size;
}

/* The last message that starts at or after `from` in the buffered bytes,
 * walking the headers from rx_head; SIZE_MAX if none does. A bad size ends
 * the walk (the message that has it fails when it is parsed). */
static size_t rx_last_start(const struct vu_conn *c, size_t from)
{
    size_t last = SIZE_MAX;
    size_t pos = c->rx_head;
    while (pos < c->rx_tail) {
        if (pos >= from)
            last = pos;
        if (c->rx_tail - pos < VU_HDR_SIZE)
            break;
        uint32_t sz = rx_size_at(c, pos);
        if (sz < VU_HDR_SIZE)
            break;
        pos += sz;
    }
    return last;
}

/* Room for `need` bytes from rx_head: move the started message to the front
 * of the buffer or grow it (need <= the checked limit). */
static int rx_reserve(struct vu_conn *c, size_t need)
{
    if (c->rx_head == c->rx_tail) {
        c->rx_head = c->rx_tail = 0;
    }
    if (c->rx_cap - c->rx_head >= need && c->rx_tail < c->rx_cap)
        return 0;
    if (c->rx_head) {
        size_t have = c->rx_tail - c->rx_head;
        memmove(c->rx, c->rx + c->rx_head, have);
        if (c->rx_nfds)
            c->rx_fds_at -= c->rx_head;
        c->rx_head = 0;
        c->rx_tail = have;
    }
    if (c->rx_cap >= need && c->rx_tail < c->rx_cap)
        return 0;
    /* double (amortised), at least the initial size, at most what the
     * limit lets a message need */
    size_t cap = c->rx_cap * 2;
    if (cap < VU_RX_INITIAL)
        cap = VU_RX_INITIAL;
    size_t most = c->lim.max_msg_size > need ? c->lim.max_msg_size : need;
    if (cap > most)
        cap = most;
    if (cap < need)
        cap = need;
    uint8_t *p = realloc(c->rx, cap);
    if (!p)
        return vub_fail(&c->err, -ENOMEM, "no memory for a %zu-byte receive buffer", cap);
    c->rx = p;
    c->rx_cap = cap;
    return 0;
}

/* Fds came with the bytes a read appended at `from`: keep them for the
 * message they belong to (see rx_fill), or fail (closing them). */
static int rx_took_fds(struct vu_conn *c, size_t from, struct fdbag *bag)
{
    size_t at = rx_last_start(c, from);
    if (!bag->ctrunc && !bag->dropped && at != SIZE_MAX && !c->rx_nfds) {
        memcpy(c->rx_fds, bag->fds, bag->n * sizeof(int));
        c->rx_nfds = bag->n;
        c->rx_fds_at = at;
        return 0;     /* fds with a message's first bytes: the common case */
    }
    const char *name = "message";
    if (at != SIZE_MAX && c->rx_tail - at >= VU_HDR_SIZE) {
        struct vu_hdr h;
        memcpy(&h, c->rx + at, sizeof(h));
        name = vu_cmd_name(h.cmd);
    }
    if (bag->ctrunc || bag->dropped) {
        fdbag_close(bag);
        return vub_fail(&c->err, -EPROTO, "%s: ancillary data truncated (more than %u "
                       "fds sent)", name, VU_MAX_FDS_PER_MSG);
    }
    /* at == SIZE_MAX or c->rx_nfds: */
    size_t k = bag->n;
    fdbag_close(bag);
    return vub_fail(&c->err, -EPROTO, "%s: %zu fds arrived with body bytes", name, k);
}

/* One read into the buffer for the message at rx_head, of which `need`
 * bytes are wanted (the header, or the whole checked message). Fds that come
 * with it are kept for the message they arrived with: the kernel ends a read
 * after the bytes that carried them, and a sender attaches them to the first
 * byte of a message, so they belong to the last message that starts in this
 * read; a read with fds but no message start put them on body bytes. While
 * fds are held the read is cut at the end of their message, so that one set
 * is held at a time. `wait`: a started message is waited for (up to the
 * deadline) when nothing is there. Returns 0 when bytes arrived. */
static int rx_fill(struct vu_conn *c, read_fn rd, size_t need, int64_t *deadline)
{
    int r = rx_reserve(c, need);
    if (r)
        return r;
    size_t have = c->rx_tail - c->rx_head;
    size_t len = c->rx_cap - c->rx_tail;
    if ((c->rx_nfds || c->rx_hook) && need - have < len)
        len = need - have;
    for (;;) {
        struct fdbag bag;   /* fds[] only written as far as n */
        bag.n = bag.dropped = 0;
        bag.ctrunc = false;
        ssize_t n = rd(c, c->rx + c->rx_tail, len, &bag);
        if (n > 0) {
            size_t from = c->rx_tail;
            c->rx_tail += (size_t)n;
            if (!bag.n && !bag.dropped && !bag.ctrunc)
                return 0;
            return rx_took_fds(c, from, &bag);
        }
        if (n == 0) {
            if (have == 0)
                return vub_fail(&c->err, -ECONNRESET, "peer closed the connection");
            if (have < VU_HDR_SIZE)
                return vub_fail(&c->err, -EPROTO, "peer closed the connection inside a "
                               "message (%zu of %u bytes)", have, VU_HDR_SIZE);
            return vub_fail(&c->err, -EPROTO, "peer closed the connection inside a message "
                           "(%zu of %zu bytes)", have - VU_HDR_SIZE, need - VU_HDR_SIZE);
        }
        if (n == -EINTR)
            continue;
        if (n == -EAGAIN || n == -EWOULDBLOCK) {
            if (have == 0)
                return -EAGAIN;
            int w = wait_fd(c->fd, POLLIN, c->io_timeout_ms, deadline);
            if (w)
                return vub_fail(&c->err, w, "waiting for the rest of a message: %s",
                               strerror(-w));
            continue;
        }
        return vub_fail(&c->err, (int)n, "receive failed: %s", strerror((int)-n));
    }
}

/* The header at rx_head, read whole: its fds and its size against the
 * limits. */
__attribute__((always_inline))
static inline int rx_check_head(struct vu_conn *c, struct vu_hdr *h)
{
    memcpy(h, c->rx + c->rx_head, sizeof(*h));
    size_t nfds = c->rx_nfds && c->rx_fds_at == c->rx_head ? c->rx_nfds : 0;
    if (nfds > c->lim.max_fds)
        return vub_fail(&c->err, -EPROTO, "%s: %zu fds exceed the limit of %u",
                       vu_cmd_name(h->cmd), nfds, c->lim.max_fds);
    if (vu_hdr_valid(h, &c->lim))
        return 0;
    int r = vu_hdr_check(h, &c->lim, &c->err);
    if (r && r != -E2BIG)
        r = -EPROTO;
    return r;
}

/* Receive one message: whole messages already in the buffer cost no system
 * call; otherwise one read takes whatever is queued (up to the buffer's
 * size), usually this message and the ones behind it. */
/* Exact reads: the next message's header, peeked at and shown to the hook
 * before a byte of it is taken. 0, -EAGAIN (nothing there), or 1: EOF or
 * an error the read that follows reports. */
static int rx_peek_header(struct vu_conn *c, int64_t *deadline)
{
    struct vu_hdr h;
    for (;;) {
        ssize_t n = recv(c->fd, &h, sizeof(h), MSG_PEEK | MSG_DONTWAIT);
        if (n == (ssize_t)sizeof(h)) {
            c->rx_hook(c->rx_hook_arg, &h);
            return 0;
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return 1;
        if (n < 0 && errno != EINTR)
            return -EAGAIN;
        if (n > 0) {
            /* part of a header: wait for the rest, within the message's
             * deadline (the socket stays readable, so poll cannot wait) */
            int64_t now = now_ms();
            if (*deadline == 0)
                *deadline = now + (c->io_timeout_ms >= 0 ? c->io_timeout_ms : INT32_MAX);
            if (c->io_timeout_ms >= 0 && now >= *deadline)
                return vub_fail(&c->err, -ETIMEDOUT, "waiting for the rest of a message: %s",
                               strerror(ETIMEDOUT));
            struct timespec ts = { 0, 200000 };
            nanosleep(&ts, NULL);
        }
    }
}

/* Hand out the message at rx_head, whole in the buffer, its header checked
 * (and in m->hdr): the payload points into the buffer, its fds go with it. */
static inline void rx_handout(struct vu_conn *c, struct vu_msg *m, uint32_t size)
{
    size_t len = size - VU_HDR_SIZE;
    m->payload = len ? c->rx + c->rx_head + VU_HDR_SIZE : NULL;
    m->payload_len = len;
    if (c->rx_nfds && c->rx_fds_at == c->rx_head) {
        memcpy(m->fds, c->rx_fds, c->rx_nfds * sizeof(int));
        m->nfds = c->rx_nfds;
        c->rx_nfds = 0;
    }
    c->rx_head += size;
}

static int recv_common(struct vu_conn *c, struct vu_msg *m, read_fn rd)
{
    int64_t deadline = 0;   /* for the whole message, header and body */
    struct vu_hdr h;
    bool checked = false;
    int r;
    if (c->rx_hook && c->rx_tail == c->rx_head && rd == sock_read) {
        r = rx_peek_header(c, &deadline);
        if (r < 0)
            return r;
    }
    for (;;) {
        size_t have = c->rx_tail - c->rx_head;
        if (!checked && have >= VU_HDR_SIZE) {
            r = rx_check_head(c, &h);
            m->hdr = h;
            if (r)
                goto fail;
            checked = true;
        }
        if (checked && have >= h.msg_size)
            break;
        r = rx_fill(c, rd, checked ? h.msg_size : VU_HDR_SIZE, &deadline);
        if (r)
            goto fail;
    }
    rx_handout(c, m, h.msg_size);
    return 0;

fail:
    /* the stream is out of step: nothing buffered is worth keeping */
    rx_close_fds(c);
    c->rx_head = c->rx_tail = 0;
    return r;
}

/* A socket read ahead freely (no exact reads) with nothing buffered: the
 * common case of a message that arrives whole. One recvmsg into the
 * buffer; if it brought the whole next message, that is checked like any
 * other and handed out here. Everything else (nothing there, an error, a
 * part of a message, a bad header) is left to recv_common as it stands,
 * which decides, waits and reports exactly as for a message read in
 * pieces. */
__attribute__((always_inline))
static inline int sock_recv(struct vu_conn *c, struct vu_msg *m)
{
    if (c->rx_head != c->rx_tail || c->rx_hook || !c->rx || c->rx_nfds)
        return recv_common(c, m, sock_read);
    c->rx_head = c->rx_tail = 0;
    struct fdbag bag;   /* fds[] only written as far as n */
    bag.n = bag.dropped = 0;
    bag.ctrunc = false;
    ssize_t n = sock_read_inline(c, c->rx, c->rx_cap, &bag);
    if (n <= 0) {
        if (n == 0)
            return vub_fail(&c->err, -ECONNRESET, "peer closed the connection");
        if (n == -EAGAIN || n == -EWOULDBLOCK)
            return -EAGAIN;
        if (n == -EINTR)
            return recv_common(c, m, sock_read);
        return vub_fail(&c->err, (int)n, "receive failed: %s", strerror((int)-n));
    }
    c->rx_tail = (size_t)n;
    if (bag.n || bag.dropped || bag.ctrunc) {
        int r = rx_took_fds(c, 0, &bag);
        if (r) {
            c->rx_head = c->rx_tail = 0;
            return r;
        }
    }
    if ((size_t)n >= VU_HDR_SIZE) {
        struct vu_hdr h;
        if (rx_check_head(c, &h) == 0 && (size_t)n >= h.msg_size) {
            m->hdr = h;
            rx_handout(c, m, h.msg_size);
            return 0;
        }
    }
    return recv_common(c, m, sock_read);   /* a part, or a header it refuses */
}

/* sock_recv for the ops table (vu_recv has its own copy inline) */
static int sock_recv_op(struct vu_conn *c, struct vu_msg *m)
{
    return sock_recv(c, m);
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
static int iov_copy(struct iovec *dst, const struct iovec *src, int cnt, struct vub_err *err)
{
    if (cnt < 0 || cnt > MAX_IOV)
        return vub_fail(err, -EINVAL, "send: %d iovecs (at most %d)", cnt, MAX_IOV);
    int n = 0;
    for (int i = 0; i < cnt; i++)
        if (src[i].iov_len)
            dst[n++] = src[i];
    return n;
}

/* What sock_send_total's one sendmsg did not finish (`sent` bytes went,
 * with the fds if any), or the whole message when that one was not tried
 * (not a socket, or an iovec or fd count it refuses): every check, waits
 * for room, partial sends. */
__attribute__((noinline))
static int send_rest(struct vu_conn *c, const struct iovec *iov_in, int iovcnt, const int *fds,
                     size_t nfds, bool sock, size_t sent)
{
    struct iovec local[MAX_IOV];
    int cnt = iov_copy(local, iov_in, iovcnt, &c->err);
    if (cnt < 0)
        return cnt;
    if (nfds > VU_MAX_FDS_PER_MSG)
        return vub_fail(&c->err, -EINVAL, "send: %zu fds (at most %u)", nfds,
                       VU_MAX_FDS_PER_MSG);
    if (nfds && !sock)
        return vub_fail(&c->err, -EINVAL, "send: this transport cannot pass fds");
    if (nfds && cnt == 0)
        return vub_fail(&c->err, -EINVAL, "send: fds without bytes");
    struct iovec *iov = local;
    iov_advance(&iov, &cnt, sent);
    bool fds_sent = nfds == 0 || sent > 0;
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
                    return vub_fail(&c->err, w, "send: waiting for space: %s", strerror(-w));
                continue;
            }
            return vub_fail(&c->err, -e, "send failed: %s", strerror(e));
        }
        fds_sent = true;
        iov_advance(&iov, &cnt, (size_t)r);
    }
    return 0;
}

/* The common case: a socket, everything taken by one sendmsg of the
 * caller's iovecs (sendmsg does not write to them), the fds (if any) with
 * it. What a short send left, and everything else, goes to send_rest.
 * total: the pieces' length, which the senders below know from msg_size
 * (inline into them); a wrong one only ends in send_rest. */
__attribute__((always_inline))
static inline int sock_send_total(struct vu_conn *c, const struct iovec *iov_in, int iovcnt,
                                  size_t total, const int *fds, size_t nfds)
{
    size_t sent = 0;
    if (iovcnt > 0 && iovcnt <= MAX_IOV && nfds <= VU_MAX_FDS_PER_MSG) {
        union {
            struct cmsghdr align;
            char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS_PER_MSG)];
        } ctl;
        struct msghdr mh = {.msg_iov = (struct iovec *)iov_in, .msg_iovlen = (size_t)iovcnt};
        if (nfds) {
            mh.msg_control = ctl.buf;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
            memset(ctl.buf, 0, mh.msg_controllen);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
            memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
        }
        ssize_t r = total ? sendmsg(c->wfd, &mh, MSG_NOSIGNAL) : 0;
        if (r > 0 && (size_t)r == total)
            return 0;
        if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return vub_fail(&c->err, -errno, "send failed: %s", strerror(errno));
        if (r > 0)
            sent = (size_t)r;   /* bytes and fds went; the rest in send_rest */
    }
    return send_rest(c, iov_in, iovcnt, fds, nfds, true, sent);
}

static int sock_send(struct vu_conn *c, const struct iovec *iov_in, int iovcnt, const int *fds,
                     size_t nfds)
{
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov_in[i].iov_len;
    return sock_send_total(c, iov_in, iovcnt, total, fds, nfds);
}

static int stream_send(struct vu_conn *c, const struct iovec *iov, int iovcnt, const int *fds,
                       size_t nfds)
{
    return send_rest(c, iov, iovcnt, fds, nfds, false, 0);
}

static void conn_close(struct vu_conn *c)
{
    rx_close_fds(c);
    free(c->rx);
    c->rx = NULL;
    c->rx_cap = c->rx_head = c->rx_tail = 0;
    if (c->wfd >= 0 && c->wfd != c->fd)
        close(c->wfd);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->wfd = -1;
}

static const struct vu_transport_ops sock_ops = {
    .send = sock_send,
    .recv = sock_recv_op,
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

/* A socket's send and receive are called directly (the message path: no
 * indirect call), with the total length where the sender knows it. */
int vu_conn_sendv(struct vu_conn *c, const struct iovec *iov, int iovcnt, size_t total,
                  const int *fds, size_t nfds)
{
    if (c->ops == &sock_ops)
        return sock_send_total(c, iov, iovcnt, total, fds, nfds);
    return c->ops->send(c, iov, iovcnt, fds, nfds);
}

int vu_recv(struct vu_conn *c, struct vu_msg *m)
{
    vu_msg_init(m);
    if (c->fd < 0)
        return vub_fail(&c->err, -EBADF, "receive on a closed connection");
    return c->ops == &sock_ops ? sock_recv(c, m) : c->ops->recv(c, m);
}

int vu_conn_preload(struct vu_conn *c, const void *bytes, size_t n, const int *fds, size_t nfds,
                    size_t fds_at)
{
    if (c->fd < 0 || c->rx_tail != c->rx_head || c->rx_nfds || nfds > VU_MAX_FDS_PER_MSG ||
        nfds > c->lim.max_fds || (nfds && fds_at >= n) || (n && !bytes))
        return -EINVAL;
    if (n == 0)
        return 0;
    int r = rx_reserve(c, n);
    if (r < 0)
        return r;
    memcpy(c->rx, bytes, n);
    c->rx_head = 0;
    c->rx_tail = n;
    for (size_t i = 0; i < nfds; i++)
        c->rx_fds[i] = fds[i];
    c->rx_nfds = nfds;
    c->rx_fds_at = fds_at;
    return 0;
}

int vu_conn_set_rx_hook(struct vu_conn *c, void (*hook)(void *arg, const struct vu_hdr *h),
                        void *arg)
{
    if (hook && c->rx_tail != c->rx_head)
        return -EBUSY;
    c->rx_hook = hook;
    c->rx_hook_arg = arg;
    return 0;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int vu_conn_rx_spin(struct vu_conn *c, unsigned us)
{
    if (c->fd < 0 || vu_conn_rx_ready(c))
        return 1;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int64_t end = now_us() + us;
    do {
        int r = poll(&p, 1, 0);
        if (r > 0 || (r < 0 && errno != EINTR))
            return 1;   /* bytes, EOF or an error: vu_recv() tells which */
    } while (now_us() < end);
    return 0;
}

int vu_send(struct vu_conn *c, struct vu_hdr *hdr, const void *payload, size_t len,
            const int *fds, size_t nfds)
{
    if (c->wfd < 0)
        return vub_fail(&c->err, -EBADF, "send on a closed connection");
    if (len > UINT32_MAX - VU_HDR_SIZE)
        return vub_fail(&c->err, -E2BIG, "%s: payload of %zu bytes", vu_cmd_name(hdr->cmd), len);
    hdr->msg_size = (uint32_t)(VU_HDR_SIZE + len);
    struct iovec iov[2] = {
        {.iov_base = hdr, .iov_len = sizeof(*hdr)},
        {.iov_base = (void *)payload, .iov_len = payload ? len : 0},
    };
    if (len && !payload)
        return vub_fail(&c->err, -EINVAL, "%s: payload NULL with length %zu",
                       vu_cmd_name(hdr->cmd), len);
    if (c->ops == &sock_ops)
        return sock_send_total(c, iov, 2, hdr->msg_size, fds, nfds);
    return c->ops->send(c, iov, 2, fds, nfds);
}

int vu_send_reply(struct vu_conn *c, const struct vu_msg *req, const void *p1, size_t l1,
                  const void *p2, size_t l2, const int *fds, size_t nfds)
{
    if (req->hdr.flags & VU_F_NO_REPLY)
        return 0;
    if (c->wfd < 0)
        return vub_fail(&c->err, -EBADF, "send on a closed connection");
    if ((l1 && !p1) || (l2 && !p2) || l1 > UINT32_MAX - VU_HDR_SIZE ||
        l2 > UINT32_MAX - VU_HDR_SIZE - l1)
        return vub_fail(&c->err, -EINVAL, "%s: bad reply payload (%zu + %zu bytes)",
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
    if (c->ops == &sock_ops)
        return sock_send_total(c, iov, 3, h.msg_size, fds, nfds);
    return c->ops->send(c, iov, 3, fds, nfds);
}

int vu_send_error(struct vu_conn *c, const struct vu_msg *req, int errnum)
{
    if (req->hdr.flags & VU_F_NO_REPLY)
        return 0;
    if (c->wfd < 0)
        return vub_fail(&c->err, -EBADF, "send on a closed connection");
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
    if (c->ops == &sock_ops)
        return sock_send_total(c, &iov, 1, sizeof(h), NULL, 0);
    return c->ops->send(c, &iov, 1, NULL, 0);
}
