/* SPDX-License-Identifier: MIT */
/* Helpers shared by the protocol unit tests (header-only). */
#ifndef PROTO_TEST_H
#define PROTO_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include "vu_proto.h"

/* A command message built by hand: header + copy of payload (malloc'd: free
 * it with pt_release), no fds. */
static inline void pt_mk(struct vu_msg *m, uint16_t cmd, const void *payload, size_t len)
{
    vu_msg_init(m);
    m->hdr.msg_id = 7;
    m->hdr.cmd = cmd;
    m->hdr.msg_size = (uint32_t)(VU_HDR_SIZE + len);
    m->hdr.flags = VU_F_TYPE_CMD;
    if (len) {
        m->payload = malloc(len);
        assert_non_null(m->payload);
        memcpy(m->payload, payload, len);
    }
    m->payload_len = len;
}

/* Release a message made with pt_mk: its payload is the test's (a received
 * message's belongs to the connection, so vu_msg_release leaves it). */
static inline void pt_release(struct vu_msg *m)
{
    free(m->payload);
    m->payload = NULL;
    vu_msg_release(m);
}

/* Attach n fresh eventfds to m (the message owns them). */
static inline void pt_add_fds(struct vu_msg *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int fd = eventfd(0, EFD_CLOEXEC);
        assert_true(fd >= 0);
        m->fds[m->nfds++] = fd;
    }
}

/* sendmsg with any number of fds (up to 64) on the first byte, no checks:
 * for tests that need to break the rules. */
static inline ssize_t pt_sendmsg(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
    union {
        struct cmsghdr align;
        char b[CMSG_SPACE(sizeof(int) * 64)];
    } ctl;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

/* Open n eventfds into fds[]. */
static inline void pt_open_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fds[i] = eventfd(0, EFD_CLOEXEC);
        assert_true(fds[i] >= 0);
    }
}

static inline void pt_close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* Byte buffer builder for payloads. */
struct pt_buf {
    uint8_t b[8192];
    size_t n;
};

static inline void pt_put(struct pt_buf *p, const void *d, size_t len)
{
    assert_true(p->n + len <= sizeof(p->b));
    memcpy(p->b + p->n, d, len);
    p->n += len;
}

#define PT_PUT(p, v) pt_put((p), &(v), sizeof(v))

#endif /* PROTO_TEST_H */
