/* SPDX-License-Identifier: MIT */
/* The server loop's message batching and --poll-us busy polling, through a
 * real socket (no timing asserted: only that every message is served, in
 * order, and that a client leaving is noticed while the bridge spins), and
 * its extra fds. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define EDU_LIVE 0x04u
#define N_POSTED 40u   /* more than the server's batch of 16 per wake-up */

static void spin_on(struct th *t) { t->cfg.poll_us = 2000; }
/* the device keeps its registers across a session's end (for inspection) */
static void no_reset(struct th *t) { t->cfg.no_reset = true; }

static int setup_plain(void **state)
{
    *state = th_new(false, NULL);
    return 0;
}

static int setup_spin(void **state)
{
    *state = th_new(false, spin_on);
    return 0;
}

static int setup_no_reset(void **state)
{
    *state = th_new(false, no_reset);
    return 0;
}

static uint32_t rd32(struct vu_client *c, uint32_t region, uint64_t off)
{
    uint32_t v = 0;
    assert_int_equal(vu_client_region_read(c, region, off, &v, 4), 4);
    return v;
}

/* N_POSTED posted writes and a read in one send: the bridge takes them with
 * one read into its buffer and serves them over several batches; the
 * messages left in the buffer after a batch must be served without the
 * client sending anything more (the socket is then empty: a loop that slept
 * in poll would never answer the read). */
static void test_queued_in_one_send(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    uint8_t buf[N_POSTED * 36 + 32];
    size_t n = 0;
    for (uint32_t i = 0; i < N_POSTED; i++) {
        struct vu_hdr h = { .msg_id = (uint16_t)(100 + i), .cmd = VU_CMD_REGION_WRITE,
                            .msg_size = 36, .flags = VU_F_NO_REPLY };
        struct vu_region_access a = { .offset = EDU_LIVE, .region = 0, .count = 4 };
        uint32_t v = 0x1000 + i;
        memcpy(buf + n, &h, 16);
        memcpy(buf + n + 16, &a, 16);
        memcpy(buf + n + 32, &v, 4);
        n += 36;
    }
    struct vu_hdr h = { .msg_id = 999, .cmd = VU_CMD_REGION_READ, .msg_size = 32 };
    struct vu_region_access a = { .offset = EDU_LIVE, .region = 0, .count = 4 };
    memcpy(buf + n, &h, 16);
    memcpy(buf + n + 16, &a, 16);
    n += 32;
    struct vu_msg reply;
    assert_int_equal(vu_client_raw(c, buf, n, NULL, 0, true, &reply), 0);
    assert_int_equal(reply.hdr.msg_id, 999);
    assert_int_equal(reply.hdr.flags & VU_F_ERROR, 0);
    assert_int_equal(reply.payload_len, 20);
    uint32_t v;
    memcpy(&v, reply.payload + 16, 4);
    assert_int_equal(v, ~(0x1000u + N_POSTED - 1));   /* the last write's, inverted */
    vu_msg_release(&reply);
    vu_client_close(c);
    th_wait_closed(t, 1);
}

/* Round trips and posted writes with --poll-us: the same answers as without. */
static void test_poll_serves_in_order(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    for (uint32_t i = 0; i < 200; i++) {
        uint32_t v = 0x20000 + i;
        assert_int_equal(vu_client_region_write(c, 0, EDU_LIVE, &v, 4, (i & 1) != 0), 4);
        if (i % 8 == 7)
            assert_int_equal(rd32(c, 0, EDU_LIVE), ~v);
    }
    assert_int_equal(rd32(c, 7, 0), 0x11e81234u);   /* config space: edu's ids */
    vu_client_close(c);
    th_wait_closed(t, 1);
    /* the next client is served as well */
    c = th_connect(t, true);
    assert_int_equal(rd32(c, 7, 0), 0x11e81234u);
    vu_client_close(c);
    th_wait_closed(t, 2);
}

/* A client that leaves while the bridge spins after its last message: the
 * session ends (EOF seen by the spin, then by the receive). */
static void test_poll_sees_eof(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    uint32_t v = 7;
    assert_int_equal(vu_client_region_write(c, 0, EDU_LIVE, &v, 4, true), 4);
    vu_client_close(c);
    th_wait_closed(t, 1);
}


/* ---- several messages in one write, a hang-up behind them ---- */

struct wbuf {
    uint8_t b[4096];
    size_t n;
};

static void put_msg(struct wbuf *w, uint16_t id, uint16_t cmd, uint32_t flags, const void *p,
                    size_t len)
{
    struct vu_hdr h = { .msg_id = id, .cmd = cmd, .msg_size = (uint32_t)(16 + len),
                        .flags = flags };
    assert_true(w->n + 16 + len <= sizeof(w->b));
    memcpy(w->b + w->n, &h, 16);
    memcpy(w->b + w->n + 16, p, len);
    w->n += 16 + len;
}

static void put_write(struct wbuf *w, uint16_t id, uint32_t flags, uint32_t v)
{
    uint8_t p[20];
    struct vu_region_access a = { .offset = EDU_LIVE, .region = 0, .count = 4 };
    memcpy(p, &a, 16);
    memcpy(p + 16, &v, 4);
    put_msg(w, id, VU_CMD_REGION_WRITE, flags, p, sizeof(p));
}

/* One whole reply from the raw socket (blocking, with the client's timeout). */
static void get_reply(int fd, struct vu_hdr *h, uint8_t *payload, size_t max)
{
    assert_int_equal(recv(fd, h, 16, MSG_WAITALL), 16);
    assert_true(h->msg_size >= 16 && h->msg_size - 16 <= max);
    size_t len = h->msg_size - 16;
    if (len)
        assert_int_equal(recv(fd, payload, len, MSG_WAITALL), (ssize_t)len);
}

#define N_ROUNDS 8u   /* 4 messages each, with replies: 32 > a batch of 16 */

/* Commands that all want replies, 32 of them: a DMA_MAP with its fd in one
 * write (fds travel with their own message, as QEMU and libvfio-user send
 * them), the 31 others in the next, sent without waiting: every one is
 * answered, in order, with its own result, although after the first batch
 * the socket holds nothing more. */
static void test_replies_in_order_one_send(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    int memfd = th_memfd(1 << 20);
    struct wbuf w0 = { .n = 0 }, w = { .n = 0 };
    for (uint32_t i = 0; i < N_ROUNDS; i++) {
        uint16_t id = (uint16_t)(10 + 4 * i);
        struct vu_dma_map m = { .argsz = sizeof(m), .flags = VU_DMA_MAP_FLAG_READ |
                                VU_DMA_MAP_FLAG_WRITE, .offset = i == 0 ? 0x3000 : 0,
                                .address = 0x100000u + i * 0x10000u, .size = 0x1000 };
        put_msg(i == 0 ? &w0 : &w, id, VU_CMD_DMA_MAP, 0, &m, sizeof(m));
        put_write(&w, (uint16_t)(id + 1), 0, 0x5000 + i);
        struct vu_region_access a = { .offset = EDU_LIVE, .region = 0, .count = 4 };
        put_msg(&w, (uint16_t)(id + 2), VU_CMD_REGION_READ, 0, &a, sizeof(a));
        struct vu_dma_unmap u = { .argsz = sizeof(u), .address = m.address, .size = m.size };
        put_msg(&w, (uint16_t)(id + 3), VU_CMD_DMA_UNMAP, 0, &u, sizeof(u));
    }
    assert_int_equal(vu_client_raw(c, w0.b, w0.n, &memfd, 1, false, NULL), 0);
    assert_int_equal(vu_client_raw(c, w.b, w.n, NULL, 0, false, NULL), 0);
    int fd = vu_client_fd(c);
    for (uint32_t i = 0; i < N_ROUNDS; i++) {
        uint16_t id = (uint16_t)(10 + 4 * i);
        struct vu_hdr h;
        uint8_t p[64];
        get_reply(fd, &h, p, sizeof(p));            /* DMA_MAP: header only */
        assert_int_equal(h.msg_id, id);
        assert_int_equal(h.cmd, VU_CMD_DMA_MAP);
        assert_int_equal(h.flags & VU_F_ERROR, 0);
        assert_int_equal(h.msg_size, 16);
        get_reply(fd, &h, p, sizeof(p));            /* REGION_WRITE */
        assert_int_equal(h.msg_id, id + 1);
        assert_int_equal(h.flags & VU_F_ERROR, 0);
        get_reply(fd, &h, p, sizeof(p));            /* REGION_READ: ~ this round's write */
        assert_int_equal(h.msg_id, id + 2);
        assert_int_equal(h.flags & VU_F_ERROR, 0);
        assert_int_equal(h.msg_size, 16 + 20);
        uint32_t v;
        memcpy(&v, p + 16, 4);
        assert_int_equal(v, ~(0x5000u + i));
        get_reply(fd, &h, p, sizeof(p));            /* DMA_UNMAP echoes the range */
        assert_int_equal(h.msg_id, id + 3);
        assert_int_equal(h.flags & VU_F_ERROR, 0);
        struct vu_dma_unmap u;
        assert_int_equal(h.msg_size, 16 + sizeof(u));
        memcpy(&u, p, sizeof(u));
        assert_int_equal(u.address, 0x100000u + i * 0x10000u);
    }
    /* nothing more: the session is still in step */
    assert_int_equal(rd32(c, 7, 0), 0x11e81234u);
    close(memfd);
    vu_client_close(c);
    th_wait_closed(t, 1);
}

static unsigned open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    unsigned n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* A client that writes a DMA_MAP with an fd, then 40 posted writes in one
 * go (none wants a reply), and hangs up at once: whatever it queued before
 * the hang-up is carried out, in order (the last write is the one that
 * stays), the session ends, the fd goes with it, and the next client is
 * served. */
static void test_hangup_with_queue(void **state)
{
    struct th *t = *state;
    unsigned fds_before = open_fds();
    struct vu_client *c = th_connect(t, true);
    int memfd = th_memfd(1 << 20);
    struct wbuf w0 = { .n = 0 }, w = { .n = 0 };
    struct vu_dma_map m = { .argsz = sizeof(m), .flags = VU_DMA_MAP_FLAG_READ, .offset = 0,
                            .address = 0x200000, .size = 0x1000 };
    put_msg(&w0, 1, VU_CMD_DMA_MAP, VU_F_NO_REPLY, &m, sizeof(m));
    for (uint32_t i = 0; i < N_POSTED; i++)
        put_write(&w, (uint16_t)(2 + i), VU_F_NO_REPLY, 0x7000 + i);
    assert_int_equal(vu_client_raw(c, w0.b, w0.n, &memfd, 1, false, NULL), 0);
    assert_int_equal(vu_client_raw(c, w.b, w.n, NULL, 0, false, NULL), 0);
    vu_client_close(c);
    close(memfd);
    th_wait_closed(t, 1);
    uint32_t v = 0;
    assert_int_equal(hv_region_read(t->hv, 0, EDU_LIVE, &v, 4), 4);
    assert_int_equal(v, ~(0x7000u + N_POSTED - 1));
    assert_int_equal(open_fds(), fds_before);   /* the memfd's copy went with the session */
    c = th_connect(t, true);
    assert_int_equal(rd32(c, 7, 0), 0x11e81234u);
    vu_client_close(c);
    th_wait_closed(t, 2);
}

/* ---- extra fds ---- */

struct pair {
    struct br_server *srv;
    int fd[2];
    unsigned calls[2];
};

/* Each callback removes the other fd and stops the loop. */
static void on_pair(struct br_server *srv, int fd, short revents, void *arg)
{
    struct pair *p = arg;
    int me = fd == p->fd[1];
    p->calls[me]++;
    br_server_remove_fd(srv, p->fd[!me]);
    br_server_remove_fd(srv, fd);
    br_server_stop(srv);
}

/* Two extra fds ready in the same wake-up, the first one's callback
 * removing the second: the second's callback is not called after its
 * removal (its owner may have freed what arg points to). */
static void test_removed_fd_not_called(void **state)
{
    struct th *t = *state;
    th_stop_loop(t);      /* the loop runs in this thread below */
    struct pair p = { .srv = t->srv, .fd = { th_eventfd(), th_eventfd() } };
    uint64_t one = 1;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(write(p.fd[i], &one, sizeof(one)), (ssize_t)sizeof(one));
        assert_int_equal(br_server_add_fd(t->srv, p.fd[i], POLLIN, on_pair, &p), 0);
    }
    assert_int_equal(br_server_run(t->srv), 0);
    assert_int_equal(p.calls[0] + p.calls[1], 1);
    close(p.fd[0]);
    close(p.fd[1]);
}

/* The loop's steady state (a negotiated session, nothing pending: one
 * event on the client's fd goes straight to the client) must still see
 * every other event: a connection attempt, an extra fd's event and a drop
 * its callback asks for, and a stop. The loop runs in this thread, the
 * clients in another (no cmocka asserts there: it records what it saw). */
struct steady {
    struct th *t;
    int efd;              /* extra fd: its callback drops the session */
    unsigned cb_calls;    /* written by the loop's thread only */
    int reads_ok, refused, dropped, stopped_with_session;
};

static void on_steady_fd(struct br_server *srv, int fd, short revents, void *arg)
{
    struct steady *x = arg;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
        x->cb_calls++;
    br_server_drop_client(srv, "test: dropped from an extra fd's callback");
}

static bool wait_stats(struct br_server *srv, unsigned refused, unsigned closed)
{
    for (int i = 0; i < 10000; i++) {
        struct br_server_stats st;
        br_server_get_stats(srv, &st);
        if (st.refused >= refused && st.closed >= closed)
            return true;
        usleep(1000);
    }
    return false;
}

static bool reads(struct vu_client *c, int n)
{
    for (int i = 0; i < n; i++) {
        uint32_t v;
        if (vu_client_region_read(c, VU_PCI_CONFIG_REGION_INDEX, 0, &v, 4) != 4)
            return false;
    }
    return true;
}

static void *steady_clients(void *arg)
{
    struct steady *x = arg;
    struct vub_err err;
    struct vu_client *c = NULL, *c2 = NULL;
    /* a session in its steady state */
    if (vu_client_connect(x->t->path, &c, &err) < 0 || vu_client_negotiate(c, NULL, NULL) < 0)
        goto out;
    x->reads_ok += reads(c, 20);
    /* a second client while it is steady: refused, the first still served */
    if (vu_client_connect(x->t->path, &c2, &err) == 0)
        x->refused = wait_stats(x->t->srv, 1, 0);
    vu_client_close(c2);
    x->reads_ok += reads(c, 20);
    /* an extra fd's event while steady: its callback drops the session */
    uint64_t one = 1;
    if (write(x->efd, &one, sizeof(one)) == (ssize_t)sizeof(one))
        x->dropped = wait_stats(x->t->srv, 1, 1);
    vu_client_close(c);
    c = NULL;
    /* a stop while a new session is steady ends the loop */
    if (vu_client_connect(x->t->path, &c, &err) < 0 || vu_client_negotiate(c, NULL, NULL) < 0)
        goto out;
    x->reads_ok += reads(c, 20);
    struct br_server_stats st;
    br_server_get_stats(x->t->srv, &st);
    x->stopped_with_session = st.connected;
out:
    br_server_stop(x->t->srv);   /* in every case: the loop must end */
    vu_client_close(c);
    return NULL;
}

static void test_steady_sees_other_events(void **state)
{
    struct th *t = *state;
    th_stop_loop(t);      /* the loop runs in this thread below */
    struct steady x = { .t = t, .efd = th_eventfd() };
    assert_int_equal(br_server_add_fd(t->srv, x.efd, POLLIN, on_steady_fd, &x), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, steady_clients, &x), 0);
    assert_int_equal(br_server_run(t->srv), 0);
    pthread_join(th, NULL);
    assert_int_equal(x.reads_ok, 3);
    assert_true(x.refused);
    assert_true(x.dropped);
    assert_int_equal(x.cb_calls, 1);
    assert_true(x.stopped_with_session);
    struct br_server_stats st;
    br_server_get_stats(t->srv, &st);
    assert_int_equal(st.accepted, 2);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.closed, 2);   /* the drop, and the stop's */
    br_server_remove_fd(t->srv, x.efd);
    close(x.efd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_queued_in_one_send, setup_plain, th_teardown),
        cmocka_unit_test_setup_teardown(test_queued_in_one_send, setup_spin, th_teardown),
        cmocka_unit_test_setup_teardown(test_poll_serves_in_order, setup_spin, th_teardown),
        cmocka_unit_test_setup_teardown(test_poll_sees_eof, setup_spin, th_teardown),
        cmocka_unit_test_setup_teardown(test_replies_in_order_one_send, setup_plain, th_teardown),
        cmocka_unit_test_setup_teardown(test_replies_in_order_one_send, setup_spin, th_teardown),
        cmocka_unit_test_setup_teardown(test_hangup_with_queue, setup_no_reset, th_teardown),
        cmocka_unit_test_setup_teardown(test_removed_fd_not_called, setup_plain, th_teardown),
        cmocka_unit_test_setup_teardown(test_steady_sees_other_events, setup_plain, th_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
