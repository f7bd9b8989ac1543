/* SPDX-License-Identifier: MIT */
/*
 * Socket and stream transports over real socketpairs with real fds (memfd,
 * eventfd): every command's encode/send/receive/decode round trip, truncated
 * ancillary data, too many fds, fds on body bytes, EOF in the middle of a
 * message, oversize headers, non-blocking sockets and partial writes. Every
 * error path is checked for leaked fds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "proto_test.h"

/* Counters of the calls the transport makes (linked with --wrap, see
 * CMakeLists.txt). Not atomic: read only while one thread runs. */
static unsigned long n_alloc, n_recvmsg, n_sendmsg;
void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
ssize_t __real_recvmsg(int fd, struct msghdr *mh, int flags);
ssize_t __real_sendmsg(int fd, const struct msghdr *mh, int flags);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
ssize_t __wrap_recvmsg(int fd, struct msghdr *mh, int flags);
ssize_t __wrap_sendmsg(int fd, const struct msghdr *mh, int flags);
void *__wrap_malloc(size_t n) { n_alloc++; return __real_malloc(n); }
void *__wrap_calloc(size_t k, size_t n) { n_alloc++; return __real_calloc(k, n); }
void *__wrap_realloc(void *p, size_t n) { n_alloc++; return __real_realloc(p, n); }
ssize_t __wrap_recvmsg(int fd, struct msghdr *mh, int flags)
{
    n_recvmsg++;
    return __real_recvmsg(fd, mh, flags);
}
ssize_t __wrap_sendmsg(int fd, const struct msghdr *mh, int flags)
{
    n_sendmsg++;
    return __real_sendmsg(fd, mh, flags);
}

/* Bytes queued on a socket, not yet read. */
static int inq(int fd)
{
    int n = -1;
    assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

/* Wait (up to 10 s) until the reader has taken every queued byte. */
static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void wait_drained(int fd)
{
    for (int i = 0; i < 10000 && inq(fd) > 0; i++)
        sleep_ms(1);
    assert_int_equal(inq(fd), 0);
}

static bool same_file(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

struct pair {
    struct vu_conn a, b;  /* a sends, b receives (both directions work) */
};

static void pair_open(struct pair *p, const struct vu_limits *lim)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    vu_conn_init_socket(&p->a, sv[0], lim);
    vu_conn_init_socket(&p->b, sv[1], lim);
}

static void pair_close(struct pair *p)
{
    vu_conn_close(&p->a);
    vu_conn_close(&p->b);
}

/* One side non-blocking, with an I/O timeout for a started message (0: the
 * connection's default). */
static void nonblocking(struct vu_conn *c, int io_timeout_ms)
{
    assert_int_equal(fcntl(c->fd, F_SETFL, O_NONBLOCK), 0);
    if (io_timeout_ms)
        c->io_timeout_ms = io_timeout_ms;
}

static int make_memfd(size_t size)
{
    int fd = memfd_create("vu-test", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    return fd;
}

/* Send cmd with payload and fds from a, receive on b, check the copy. */
static void xfer(struct pair *p, uint16_t cmd, uint32_t flags, const void *pl, size_t len,
                 const int *fds, size_t nfds, struct vu_msg *m)
{
    static uint16_t id = 100;
    struct vu_hdr h = {.msg_id = ++id, .cmd = cmd, .flags = flags};
    assert_int_equal(vu_send(&p->a, &h, pl, len, fds, nfds), 0);
    assert_int_equal(h.msg_size, VU_HDR_SIZE + len);
    int r = vu_recv(&p->b, m);
    if (r)
        fail_msg("%s: vu_recv %d: %s", vu_cmd_name(cmd), r, p->b.err.msg);
    assert_int_equal(m->hdr.msg_id, id);
    assert_int_equal(m->hdr.cmd, cmd);
    assert_int_equal(m->hdr.msg_size, VU_HDR_SIZE + len);
    assert_int_equal(m->hdr.flags, flags);
    assert_int_equal(m->payload_len, len);
    if (len)
        assert_memory_equal(m->payload, pl, len);
    assert_int_equal(m->nfds, nfds);
}

static void test_roundtrip_all(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct pair p;
    pair_open(&p, NULL);
    struct vu_msg m;
    struct vub_err e;

    /* VERSION */
    {
        struct pt_buf b = {.n = 0};
        struct vu_version v = {0, 0};
        PT_PUT(&b, v);
        pt_put(&b, "{\"capabilities\":{}}", 20);
        xfer(&p, VU_CMD_VERSION, 0, b.b, b.n, NULL, 0, &m);
        struct vu_version_req o;
        assert_int_equal(vu_decode_version(&m, &o, &e), 0);
        assert_string_equal(o.json, "{\"capabilities\":{}}");
        vu_msg_release(&m);
    }
    /* DMA_MAP with a memfd: the received fd reaches the same memory */
    {
        int mfd = make_memfd(0x4000);
        struct vu_dma_map d = {32, 3, 0x2000, 0x100000, 0x2000};
        xfer(&p, VU_CMD_DMA_MAP, 0, &d, sizeof(d), &mfd, 1, &m);
        struct vu_dma_map o;
        assert_int_equal(vu_decode_dma_map(&m, &o, &e), 0);
        assert_int_equal(o.offset, 0x2000);
        assert_int_equal(o.size, 0x2000);
        int got = vu_msg_take_fd(&m, 0);
        assert_true(got >= 0 && got != mfd);
        assert_true(fcntl(got, F_GETFD) & FD_CLOEXEC);
        uint8_t *map = mmap(NULL, 0x2000, PROT_READ | PROT_WRITE, MAP_SHARED, got, 0x2000);
        assert_true(map != MAP_FAILED);
        memcpy(map, "shared", 6);
        char back[6];
        assert_int_equal(pread(mfd, back, 6, 0x2000), 6);
        assert_memory_equal(back, "shared", 6);
        munmap(map, 0x2000);
        close(got);
        close(mfd);
        vu_msg_release(&m);
    }
    /* DMA_UNMAP */
    {
        struct vu_dma_unmap d = {24, 0, 0x100000, 0x2000}, o;
        xfer(&p, VU_CMD_DMA_UNMAP, 0, &d, sizeof(d), NULL, 0, &m);
        assert_int_equal(vu_decode_dma_unmap(&m, &o, &e), 0);
        assert_int_equal(o.address, 0x100000);
        vu_msg_release(&m);
    }
    /* GET_INFO, GET_REGION_INFO, GET_REGION_IO_FDS, GET_IRQ_INFO */
    {
        struct vu_device_info d = {16, 0, 0, 0}, o;
        xfer(&p, VU_CMD_DEVICE_GET_INFO, 0, &d, sizeof(d), NULL, 0, &m);
        assert_int_equal(vu_decode_device_get_info(&m, &o, &e), 0);
        vu_msg_release(&m);
        struct vu_region_info r = {.argsz = 32, .index = 4}, ro;
        xfer(&p, VU_CMD_DEVICE_GET_REGION_INFO, 0, &r, sizeof(r), NULL, 0, &m);
        assert_int_equal(vu_decode_region_info(&m, &ro, &e), 0);
        assert_int_equal(ro.index, 4);
        vu_msg_release(&m);
        struct vu_region_io_fds_request io = {.argsz = 256, .index = 2}, ioo;
        xfer(&p, VU_CMD_DEVICE_GET_REGION_IO_FDS, 0, &io, sizeof(io), NULL, 0, &m);
        assert_int_equal(vu_decode_region_io_fds(&m, &ioo, &e), 0);
        assert_int_equal(ioo.argsz, 256);
        vu_msg_release(&m);
        struct vu_irq_info ii = {.argsz = 16, .index = 2}, iio;
        xfer(&p, VU_CMD_DEVICE_GET_IRQ_INFO, 0, &ii, sizeof(ii), NULL, 0, &m);
        assert_int_equal(vu_decode_irq_info(&m, &iio, &e), 0);
        assert_int_equal(iio.index, 2);
        vu_msg_release(&m);
    }
    /* SET_IRQS with 4 eventfds: signalling a received copy wakes the original */
    {
        int efd[4];
        pt_open_fds(efd, 4);
        struct vu_irq_set s = {20, VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER, 2, 0, 4};
        xfer(&p, VU_CMD_DEVICE_SET_IRQS, 0, &s, sizeof(s), efd, 4, &m);
        struct vu_irq_set_req o;
        assert_int_equal(vu_decode_set_irqs(&m, &o, &e), 0);
        assert_int_equal(o.nfds, 4);
        for (size_t i = 0; i < 4; i++) {
            uint64_t one = i + 1, got = 0;
            assert_int_equal(write(m.fds[i], &one, 8), 8);
            assert_int_equal(read(efd[i], &got, 8), 8);
            assert_int_equal(got, i + 1); /* order preserved */
        }
        vu_msg_release(&m);
        pt_close_fds(efd, 4);
    }
    /* REGION_READ / REGION_WRITE (posted) */
    {
        struct vu_region_access a = {0x10, 7, 4};
        struct vu_region_access_req o;
        xfer(&p, VU_CMD_REGION_READ, 0, &a, sizeof(a), NULL, 0, &m);
        assert_int_equal(vu_decode_region_read(&m, 4096, &o, &e), 0);
        vu_msg_release(&m);
        struct pt_buf b = {.n = 0};
        PT_PUT(&b, a);
        pt_put(&b, "\x01\x02\x03\x04", 4);
        xfer(&p, VU_CMD_REGION_WRITE, VU_F_NO_REPLY, b.b, b.n, NULL, 0, &m);
        assert_int_equal(vu_decode_region_write(&m, 4096, &o, &e), 0);
        assert_memory_equal(o.data, "\x01\x02\x03\x04", 4);
        vu_msg_release(&m);
    }
    /* DMA_READ / DMA_WRITE (server -> client direction: b sends, a receives) */
    {
        struct vu_dma_access a = {0x1000, 2};
        struct vu_dma_access_req o;
        xfer(&p, VU_CMD_DMA_READ, 0, &a, sizeof(a), NULL, 0, &m);
        assert_int_equal(vu_decode_dma_read(&m, 4096, &o, &e), 0);
        vu_msg_release(&m);
        struct pt_buf b = {.n = 0};
        PT_PUT(&b, a);
        pt_put(&b, "hi", 2);
        xfer(&p, VU_CMD_DMA_WRITE, 0, b.b, b.n, NULL, 0, &m);
        assert_int_equal(vu_decode_dma_write(&m, 4096, &o, &e), 0);
        vu_msg_release(&m);
    }
    /* DEVICE_RESET, WRITE_MULTI, DEVICE_FEATURE, MIG_DATA_* */
    {
        xfer(&p, VU_CMD_DEVICE_RESET, 0, NULL, 0, NULL, 0, &m);
        assert_int_equal(vu_decode_device_reset(&m, &e), 0);
        vu_msg_release(&m);

        struct pt_buf b = {.n = 0};
        struct vu_write_multi w = {1};
        struct vu_write_multi_entry en = {0x40, 0, 2, {0xaa, 0xbb}};
        PT_PUT(&b, w);
        PT_PUT(&b, en);
        struct vu_write_multi_req wo;
        xfer(&p, VU_CMD_REGION_WRITE_MULTI, VU_F_NO_REPLY, b.b, b.n, NULL, 0, &m);
        assert_int_equal(vu_decode_write_multi(&m, &wo, &e), 0);
        assert_int_equal(wo.wr_cnt, 1);
        vu_msg_release(&m);

        struct vu_device_feature f = {16, VU_DEVICE_FEATURE_GET | 1};
        struct vu_device_feature_req fo;
        xfer(&p, VU_CMD_DEVICE_FEATURE, 0, &f, sizeof(f), NULL, 0, &m);
        assert_int_equal(vu_decode_device_feature(&m, &fo, &e), 0);
        vu_msg_release(&m);

        struct vu_mig_data md = {8 + 64, 64};
        struct vu_mig_data_req mo;
        xfer(&p, VU_CMD_MIG_DATA_READ, 0, &md, sizeof(md), NULL, 0, &m);
        assert_int_equal(vu_decode_mig_data_read(&m, 4096, &mo, &e), 0);
        assert_int_equal(mo.mig.size, 64);
        vu_msg_release(&m);
        b.n = 0;
        md.size = 3;
        md.argsz = 11;
        PT_PUT(&b, md);
        pt_put(&b, "abc", 3);
        xfer(&p, VU_CMD_MIG_DATA_WRITE, 0, b.b, b.n, NULL, 0, &m);
        assert_int_equal(vu_decode_mig_data_write(&m, 4096, &mo, &e), 0);
        assert_memory_equal(mo.data, "abc", 3);
        vu_msg_release(&m);
    }
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);
}

static void test_reply_helpers(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct pair p;
    pair_open(&p, NULL);
    struct vu_msg req, rep;
    pt_mk(&req, VU_CMD_REGION_READ, NULL, 0);
    req.hdr.msg_id = 0xbeef;

    struct vu_region_access a = {0x10, 7, 3};
    assert_int_equal(vu_send_reply(&p.b, &req, &a, sizeof(a), "xyz", 3, NULL, 0), 0);
    assert_int_equal(vu_recv(&p.a, &rep), 0);
    assert_int_equal(rep.hdr.msg_id, 0xbeef);
    assert_int_equal(rep.hdr.flags, VU_F_TYPE_REPLY);
    assert_int_equal(rep.hdr.msg_size, 16 + 16 + 3);
    struct vu_region_access_req out;
    assert_int_equal(vu_decode_region_read_reply(&rep, 3, &out, NULL), 0);
    assert_memory_equal(out.data, "xyz", 3);
    vu_msg_release(&rep);

    /* an fd in a reply (region info) */
    int mfd = make_memfd(4096);
    req.hdr.cmd = VU_CMD_DEVICE_GET_REGION_INFO;
    struct vu_region_info ri = {.argsz = 32, .flags = VU_REGION_INFO_FLAG_MMAP, .size = 4096};
    assert_int_equal(vu_send_reply(&p.b, &req, &ri, sizeof(ri), NULL, 0, &mfd, 1), 0);
    assert_int_equal(vu_recv(&p.a, &rep), 0);
    assert_int_equal(rep.nfds, 1);
    vu_msg_release(&rep);
    close(mfd);

    assert_int_equal(vu_send_error(&p.b, &req, EEXIST), 0);
    assert_int_equal(vu_recv(&p.a, &rep), 0);
    assert_int_equal(rep.hdr.flags, VU_F_TYPE_REPLY | VU_F_ERROR);
    assert_int_equal(rep.hdr.error_no, EEXIST);
    assert_int_equal(rep.hdr.msg_size, 16);
    assert_int_equal(rep.hdr.cmd, VU_CMD_DEVICE_GET_REGION_INFO);
    assert_int_equal(vu_reply_status(&rep, VU_CMD_DEVICE_GET_REGION_INFO, NULL), -EEXIST);
    vu_msg_release(&rep);
    /* 0 and negative errno normalised; never error_no 0 on the wire */
    assert_int_equal(vu_send_error(&p.b, &req, 0), 0);
    assert_int_equal(vu_recv(&p.a, &rep), 0);
    assert_int_equal(rep.hdr.error_no, EIO);
    vu_msg_release(&rep);
    assert_int_equal(vu_send_error(&p.b, &req, -EINVAL), 0);
    assert_int_equal(vu_recv(&p.a, &rep), 0);
    assert_int_equal(rep.hdr.error_no, EINVAL);
    vu_msg_release(&rep);

    /* No_reply: nothing at all goes out */
    req.hdr.flags = VU_F_NO_REPLY;
    assert_int_equal(vu_send_reply(&p.b, &req, &a, sizeof(a), NULL, 0, NULL, 0), 0);
    assert_int_equal(vu_send_error(&p.b, &req, EINVAL), 0);
    nonblocking(&p.a, 0);
    assert_int_equal(vu_recv(&p.a, &rep), -EAGAIN);

    vu_msg_release(&req);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);
}

static void raw_hdr(struct vu_hdr *h, uint16_t cmd, uint32_t size)
{
    memset(h, 0, sizeof(*h));
    h->msg_id = 1;
    h->cmd = cmd;
    h->msg_size = size;
}

/* MSG_CTRUNC: more fds than the receive buffer holds (VU_MAX_FDS_PER_MSG). */
static void test_ctrunc(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct pair p;
    pair_open(&p, NULL);
    uint8_t msg[48];
    struct vu_hdr h;
    raw_hdr(&h, VU_CMD_DMA_MAP, sizeof(msg));
    memcpy(msg, &h, 16);
    struct vu_dma_map d = {32, 3, 0, 0x1000, 0x1000};
    memcpy(msg + 16, &d, 32);
    int fds[24];
    pt_open_fds(fds, 24);
    assert_int_equal(pt_sendmsg(p.a.fd, msg, sizeof(msg), fds, 24), (ssize_t)sizeof(msg));
    pt_close_fds(fds, 24);
    struct vu_msg m;
    assert_int_equal(vu_recv(&p.b, &m), -EPROTO);
    assert_non_null(strstr(p.b.err.msg, "truncated"));
    assert_null(m.payload);
    assert_int_equal(m.nfds, 0);
    /* every fd that did arrive was closed */
    assert_int_equal(tu_count_fds(), base + 2);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);

    /* the same behind a whole message that comes in the same read */
    pair_open(&p, NULL);
    struct vu_hdr rh;
    raw_hdr(&rh, VU_CMD_DEVICE_RESET, 16);
    assert_int_equal(pt_sendmsg(p.a.fd, &rh, 16, NULL, 0), 16);
    pt_open_fds(fds, 24);
    assert_int_equal(pt_sendmsg(p.a.fd, msg, sizeof(msg), fds, 24), (ssize_t)sizeof(msg));
    pt_close_fds(fds, 24);
    unsigned long rd0 = n_recvmsg;
    assert_int_equal(vu_recv(&p.b, &m), -EPROTO);
    assert_int_equal(n_recvmsg - rd0, 1);
    assert_non_null(strstr(p.b.err.msg, "DMA_MAP: ancillary data truncated"));
    assert_int_equal(m.nfds, 0);
    assert_false(vu_conn_rx_ready(&p.b));
    assert_int_equal(tu_count_fds(), base + 2);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);
}

/* More fds than the connection's limit, fewer than the buffer. */
static void test_fds_over_limit(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct vu_limits lim = {.max_msg_size = 4096, .max_fds = 2};
    struct pair p;
    pair_open(&p, &lim);
    int fds[3];
    pt_open_fds(fds, 3);
    struct vu_irq_set s = {20, VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER, 2, 0, 3};
    struct vu_hdr h = {.msg_id = 9, .cmd = VU_CMD_DEVICE_SET_IRQS};
    assert_int_equal(vu_send(&p.a, &h, &s, sizeof(s), fds, 3), 0);
    struct vu_msg m;
    assert_int_equal(vu_recv(&p.b, &m), -EPROTO);
    assert_non_null(strstr(p.b.err.msg, "3 fds exceed the limit of 2"));
    assert_int_equal(tu_count_fds(), base + 2 + 3);
    /* exactly at the limit is fine (new pair: the old stream is out of step) */
    pair_close(&p);
    pair_open(&p, &lim);
    s.count = 2;
    assert_int_equal(vu_send(&p.a, &h, &s, sizeof(s), fds, 2), 0);
    assert_int_equal(vu_recv(&p.b, &m), 0);
    assert_int_equal(m.nfds, 2);
    vu_msg_release(&m);
    pt_close_fds(fds, 3);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);
}

struct rx_job {
    struct vu_conn *c;
    int rc;
    struct vu_msg m;
};

static void *rx_thread(void *arg)
{
    struct rx_job *j = arg;
    j->rc = vu_recv(j->c, &j->m);
    return NULL;
}

/* fds attached to body bytes instead of the first byte: the reader has taken
 * the header (nothing left queued) when the body comes with an fd. */
static void test_fds_on_body(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct pair p;
    pair_open(&p, NULL);
    struct vu_hdr h;
    raw_hdr(&h, VU_CMD_DMA_MAP, 48);
    struct vu_dma_map d = {32, 3, 0, 0x1000, 0x1000};
    int fd = make_memfd(4096);
    struct rx_job j = {.c = &p.b};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, rx_thread, &j), 0);
    assert_int_equal(pt_sendmsg(p.a.fd, &h, 16, NULL, 0), 16);
    wait_drained(p.b.fd);
    assert_int_equal(pt_sendmsg(p.a.fd, &d, 32, &fd, 1), 32);
    assert_int_equal(pthread_join(t, NULL), 0);
    close(fd);
    assert_int_equal(j.rc, -EPROTO);
    assert_non_null(strstr(p.b.err.msg, "arrived with body bytes"));
    assert_null(j.m.payload);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);
}

/* The kernel hands out bytes queued before an fd-carrying piece together
 * with it: a header sent alone and its body sent with an fd, both queued
 * before the read, come as one read; the fd goes to that message (the one
 * that starts in the read). Nothing leaks either way. */
static void test_fds_glued(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct pair p;
    pair_open(&p, NULL);
    struct vu_hdr h;
    raw_hdr(&h, VU_CMD_DMA_MAP, 48);
    struct vu_dma_map d = {32, 3, 0, 0x1000, 0x1000};
    int fd = make_memfd(4096);
    assert_int_equal(pt_sendmsg(p.a.fd, &h, 16, NULL, 0), 16);
    assert_int_equal(pt_sendmsg(p.a.fd, &d, 32, &fd, 1), 32);
    struct vu_msg m;
    assert_int_equal(vu_recv(&p.b, &m), 0);
    assert_int_equal(m.nfds, 1);
    assert_true(same_file(m.fds[0], fd));
    vu_msg_release(&m);
    close(fd);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);
}

/* Several queued messages: one recvmsg takes them all, the next vu_recv
 * calls make no system call; an fd goes to the message it was sent with
 * (the kernel ends a read after the piece that carried fds). */
static void test_several_in_one_read(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct pair p;
    pair_open(&p, NULL);
    uint32_t v = 0x12345678;
    struct vu_region_access acc = {.offset = 0, .region = 0, .count = 4};
    uint8_t wr[20];
    memcpy(wr, &acc, 16);
    memcpy(wr + 16, &v, 4);
    struct vu_hdr h = {.cmd = VU_CMD_REGION_WRITE, .flags = VU_F_NO_REPLY};
    for (uint16_t i = 0; i < 5; i++) {
        h.msg_id = i;
        assert_int_equal(vu_send(&p.a, &h, wr, sizeof(wr), NULL, 0), 0);
    }
    struct vu_msg m;
    unsigned long rd0 = n_recvmsg;
    for (uint16_t i = 0; i < 5; i++) {
        assert_int_equal(vu_recv(&p.b, &m), 0);
        assert_int_equal(m.hdr.msg_id, i);
        assert_int_equal(m.payload_len, sizeof(wr));
        assert_memory_equal(m.payload, wr, sizeof(wr));
        assert_int_equal(inq(p.b.fd), 0);
        assert_int_equal(vu_conn_rx_ready(&p.b), i < 4);
        vu_msg_release(&m);
    }
    assert_int_equal(n_recvmsg - rd0, 1);

    /* write, map (fd), write, write: the read ends after the map's bytes */
    int fd = make_memfd(4096);
    struct vu_dma_map d = {32, 3, 0, 0x1000, 0x1000};
    struct vu_hdr mh = {.msg_id = 50, .cmd = VU_CMD_DMA_MAP};
    h.msg_id = 49;
    assert_int_equal(vu_send(&p.a, &h, wr, sizeof(wr), NULL, 0), 0);
    assert_int_equal(vu_send(&p.a, &mh, &d, sizeof(d), &fd, 1), 0);
    for (uint16_t i = 51; i < 53; i++) {
        h.msg_id = i;
        assert_int_equal(vu_send(&p.a, &h, wr, sizeof(wr), NULL, 0), 0);
    }
    rd0 = n_recvmsg;
    for (uint16_t i = 49; i < 53; i++) {
        assert_int_equal(vu_recv(&p.b, &m), 0);
        assert_int_equal(m.hdr.msg_id, i);
        assert_int_equal(m.nfds, i == 50);
        if (i == 50)
            assert_true(same_file(m.fds[0], fd));
        vu_msg_release(&m);
    }
    assert_int_equal(n_recvmsg - rd0, 2);
    close(fd);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);
}

/* Two messages, the first with an fd, the stream cut at every byte: the
 * reader has taken the first part before the rest is sent. Each sendmsg
 * holds bytes of one message only (as every known client sends). */
static void test_split_every_byte(void **state)
{
    (void)state;
    int base = tu_count_fds();
    uint8_t a[48], b[36];
    struct vu_hdr h;
    raw_hdr(&h, VU_CMD_DMA_MAP, sizeof(a));
    h.msg_id = 7;
    memcpy(a, &h, 16);
    struct vu_dma_map d = {32, 3, 0, 0x1000, 0x1000};
    memcpy(a + 16, &d, 32);
    raw_hdr(&h, VU_CMD_REGION_WRITE, sizeof(b));
    h.msg_id = 8;
    memcpy(b, &h, 16);
    struct vu_region_access acc = {.offset = 4, .region = 0, .count = 4};
    memcpy(b + 16, &acc, 16);
    memcpy(b + 32, "\x01\x02\x03\x04", 4);
    int fd = make_memfd(4096);
    for (size_t k = 1; k < sizeof(a) + sizeof(b); k++) {
        struct pair p;
        pair_open(&p, NULL);
        struct rx_job j = {.c = &p.b}, jb = {.c = &p.b};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, rx_thread, &j), 0);
        size_t kb = k < sizeof(a) ? 0 : k - sizeof(a);
        if (k < sizeof(a)) {
            assert_int_equal(pt_sendmsg(p.a.fd, a, k, &fd, 1), (ssize_t)k);
            wait_drained(p.b.fd);
            assert_int_equal(pt_sendmsg(p.a.fd, a + k, sizeof(a) - k, NULL, 0),
                             (ssize_t)(sizeof(a) - k));
        } else {
            assert_int_equal(pt_sendmsg(p.a.fd, a, sizeof(a), &fd, 1), (ssize_t)sizeof(a));
        }
        assert_int_equal(pthread_join(t, NULL), 0);
        if (j.rc)
            fail_msg("split at %zu: first message: %d %s", k, j.rc, p.b.err.msg);
        assert_int_equal(j.m.hdr.msg_id, 7);
        assert_int_equal(j.m.payload_len, 32);
        assert_memory_equal(j.m.payload, a + 16, 32);
        assert_int_equal(j.m.nfds, 1);
        assert_true(same_file(j.m.fds[0], fd));
        vu_msg_release(&j.m);
        assert_int_equal(pthread_create(&t, NULL, rx_thread, &jb), 0);
        if (kb) {
            assert_int_equal(pt_sendmsg(p.a.fd, b, kb, NULL, 0), (ssize_t)kb);
            wait_drained(p.b.fd);
        }
        assert_int_equal(pt_sendmsg(p.a.fd, b + kb, sizeof(b) - kb, NULL, 0),
                         (ssize_t)(sizeof(b) - kb));
        assert_int_equal(pthread_join(t, NULL), 0);
        if (jb.rc)
            fail_msg("split at %zu: second message: %d %s", k, jb.rc, p.b.err.msg);
        assert_int_equal(jb.m.hdr.msg_id, 8);
        assert_int_equal(jb.m.nfds, 0);
        assert_memory_equal(jb.m.payload, b + 16, 20);
        vu_msg_release(&jb.m);
        struct vu_msg m;
        vu_conn_close(&p.a);
        assert_int_equal(vu_recv(&p.b, &m), -ECONNRESET);
        vu_conn_close(&p.b);
    }
    close(fd);
    assert_int_equal(tu_count_fds(), base);
}

/* One message a -> b, received: b's buffer exists and is empty, so the
 * next receive takes the path for a message that arrives whole. */
static void warm(struct pair *p)
{
    struct vu_hdr h;
    raw_hdr(&h, VU_CMD_DEVICE_RESET, 16);
    h.msg_id = 1;
    assert_int_equal(pt_sendmsg(p->a.fd, &h, 16, NULL, 0), 16);
    struct vu_msg m;
    assert_int_equal(vu_recv(&p->b, &m), 0);
    assert_int_equal(m.hdr.msg_id, 1);
    vu_msg_release(&m);
    assert_false(vu_conn_rx_ready(&p->b));
}

/* The path for a message that arrives whole (a warm connection, nothing
 * buffered), and everything it hands on: one recvmsg per whole message
 * with its fd; several messages in one read, the fds on the one they came
 * with; a message split across reads; a hang-up inside a message (its fd
 * closed); a hang-up between messages; nothing there on a non-blocking
 * socket (nothing consumed); a header over the limit or malformed; too
 * many fds. The same errors, texts and fd accounting as the general path
 * (the tests above run it on fresh connections). */
static void test_whole_message_path(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct vu_limits lim = {.max_msg_size = 4096, .max_fds = 4};
    struct pair p;
    struct vu_msg m;
    struct vu_hdr h;
    int fd = make_memfd(4096);
    uint8_t map[48];
    raw_hdr(&h, VU_CMD_DMA_MAP, sizeof(map));
    h.msg_id = 2;
    memcpy(map, &h, 16);
    struct vu_dma_map d = {32, 3, 0, 0x1000, 0x1000};
    memcpy(map + 16, &d, 32);

    /* whole, with its fd: one recvmsg */
    pair_open(&p, &lim);
    warm(&p);
    unsigned long rd0 = n_recvmsg;
    assert_int_equal(pt_sendmsg(p.a.fd, map, sizeof(map), &fd, 1), (ssize_t)sizeof(map));
    assert_int_equal(vu_recv(&p.b, &m), 0);
    assert_int_equal(n_recvmsg - rd0, 1);
    assert_int_equal(m.hdr.msg_id, 2);
    assert_int_equal(m.payload_len, 32);
    assert_memory_equal(m.payload, &d, 32);
    assert_int_equal(m.nfds, 1);
    assert_true(same_file(m.fds[0], fd));
    vu_msg_release(&m);
    assert_false(vu_conn_rx_ready(&p.b));

    /* three queued, the fd with the second: one read, the fd on message 4
     * only; the two around it carry none */
    raw_hdr(&h, VU_CMD_DEVICE_RESET, 16);
    h.msg_id = 3;
    assert_int_equal(pt_sendmsg(p.a.fd, &h, 16, NULL, 0), 16);
    memcpy(&h, map, 16);
    h.msg_id = 4;
    uint8_t map4[48];
    memcpy(map4, &h, 16);
    memcpy(map4 + 16, &d, 32);
    assert_int_equal(pt_sendmsg(p.a.fd, map4, sizeof(map4), &fd, 1), (ssize_t)sizeof(map4));
    raw_hdr(&h, VU_CMD_DEVICE_RESET, 16);
    h.msg_id = 5;
    assert_int_equal(pt_sendmsg(p.a.fd, &h, 16, NULL, 0), 16);
    rd0 = n_recvmsg;
    for (uint16_t id = 3; id <= 5; id++) {
        assert_int_equal(vu_recv(&p.b, &m), 0);
        assert_int_equal(m.hdr.msg_id, id);
        assert_int_equal(m.nfds, id == 4);
        if (id == 4)
            assert_true(same_file(m.fds[0], fd));
        vu_msg_release(&m);
    }
    /* the kernel ends a read after the piece with the fds: two reads */
    assert_int_equal(n_recvmsg - rd0, 2);

    /* split: header and 5 body bytes with the fd, the rest later */
    struct rx_job j = {.c = &p.b};
    pthread_t t;
    map[0] = 6;   /* msg_id 6 (little endian, low byte) */
    assert_int_equal(pthread_create(&t, NULL, rx_thread, &j), 0);
    assert_int_equal(pt_sendmsg(p.a.fd, map, 21, &fd, 1), 21);
    wait_drained(p.b.fd);
    assert_int_equal(pt_sendmsg(p.a.fd, map + 21, sizeof(map) - 21, NULL, 0),
                     (ssize_t)(sizeof(map) - 21));
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(j.rc, 0);
    assert_int_equal(j.m.hdr.msg_id, 6);
    assert_memory_equal(j.m.payload, &d, 32);
    assert_int_equal(j.m.nfds, 1);
    assert_true(same_file(j.m.fds[0], fd));
    vu_msg_release(&j.m);

    /* a part of a header only, then the rest */
    j = (struct rx_job){.c = &p.b};
    map[0] = 7;
    assert_int_equal(pthread_create(&t, NULL, rx_thread, &j), 0);
    assert_int_equal(pt_sendmsg(p.a.fd, map, 9, &fd, 1), 9);
    wait_drained(p.b.fd);
    assert_int_equal(pt_sendmsg(p.a.fd, map + 9, sizeof(map) - 9, NULL, 0),
                     (ssize_t)(sizeof(map) - 9));
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(j.rc, 0);
    assert_int_equal(j.m.hdr.msg_id, 7);
    assert_int_equal(j.m.nfds, 1);
    vu_msg_release(&j.m);

    /* a hang-up inside the body: its fd closed, nothing handed out */
    assert_int_equal(pt_sendmsg(p.a.fd, map, 26, &fd, 1), 26);
    vu_conn_close(&p.a);
    assert_int_equal(vu_recv(&p.b, &m), -EPROTO);
    assert_non_null(strstr(p.b.err.msg, "(10 of 32 bytes)"));
    assert_null(m.payload);
    assert_int_equal(m.nfds, 0);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base + 1);

    /* a hang-up between messages; inside a header */
    pair_open(&p, &lim);
    warm(&p);
    vu_conn_close(&p.a);
    assert_int_equal(vu_recv(&p.b, &m), -ECONNRESET);
    pair_close(&p);
    pair_open(&p, &lim);
    warm(&p);
    assert_int_equal(write(p.a.fd, map, 10), 10);
    vu_conn_close(&p.a);
    assert_int_equal(vu_recv(&p.b, &m), -EPROTO);
    assert_non_null(strstr(p.b.err.msg, "inside a message (10 of 16"));
    pair_close(&p);

    /* non-blocking, nothing there: -EAGAIN, and a message after it is whole */
    pair_open(&p, &lim);
    warm(&p);
    nonblocking(&p.b, 0);
    assert_int_equal(vu_recv(&p.b, &m), -EAGAIN);
    map[0] = 8;
    assert_int_equal(pt_sendmsg(p.a.fd, map, sizeof(map), &fd, 1), (ssize_t)sizeof(map));
    assert_int_equal(vu_recv(&p.b, &m), 0);
    assert_int_equal(m.hdr.msg_id, 8);
    assert_int_equal(m.nfds, 1);
    vu_msg_release(&m);
    pair_close(&p);

    /* over the limit (its fd closed), below the header, too many fds */
    pair_open(&p, &lim);
    warm(&p);
    raw_hdr(&h, VU_CMD_REGION_WRITE, 1u << 30);
    assert_int_equal(pt_sendmsg(p.a.fd, &h, 16, &fd, 1), 16);
    assert_int_equal(vu_recv(&p.b, &m), -E2BIG);
    assert_int_equal(m.hdr.msg_size, 1u << 30);
    assert_null(m.payload);
    assert_int_equal(m.nfds, 0);
    pair_close(&p);
    pair_open(&p, &lim);
    warm(&p);
    raw_hdr(&h, VU_CMD_DEVICE_RESET, 8);
    assert_int_equal(write(p.a.fd, &h, 16), 16);
    assert_int_equal(vu_recv(&p.b, &m), -EPROTO);
    assert_non_null(strstr(p.b.err.msg, "smaller than the header"));
    pair_close(&p);
    pair_open(&p, &lim);
    warm(&p);
    int five[5];
    pt_open_fds(five, 5);
    map[0] = 9;
    assert_int_equal(pt_sendmsg(p.a.fd, map, sizeof(map), five, 5), (ssize_t)sizeof(map));
    pt_close_fds(five, 5);
    assert_int_equal(vu_recv(&p.b, &m), -EPROTO);
    assert_non_null(strstr(p.b.err.msg, "exceed the limit of 4"));
    assert_int_equal(m.nfds, 0);
    pair_close(&p);
    pair_open(&p, NULL);
    warm(&p);
    int many[24];
    pt_open_fds(many, 24);
    assert_int_equal(pt_sendmsg(p.a.fd, map, sizeof(map), many, 24), (ssize_t)sizeof(map));
    pt_close_fds(many, 24);
    assert_int_equal(vu_recv(&p.b, &m), -EPROTO);
    assert_non_null(strstr(p.b.err.msg, "DMA_MAP: ancillary data truncated"));
    assert_int_equal(m.nfds, 0);
    pair_close(&p);

    close(fd);
    assert_int_equal(tu_count_fds(), base);
}

/* Steady state: a request and its reply, many times; no allocation once the
 * buffers exist, one sendmsg per message and one recvmsg per message. */
static void test_no_alloc_per_message(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, NULL);
    uint8_t data[4096];
    memset(data, 0x5a, sizeof(data));
    struct vu_region_access acc = {.offset = 0, .region = 0, .count = sizeof(data)};
    struct vu_msg m;
    for (int round = 0; round < 2; round++) {
        unsigned long a0 = n_alloc, s0 = n_sendmsg, r0 = n_recvmsg;
        for (int i = 0; i < 1000; i++) {
            struct vu_hdr h = {.msg_id = (uint16_t)i, .cmd = VU_CMD_REGION_WRITE};
            assert_int_equal(vu_send(&p.a, &h, data, sizeof(data), NULL, 0), 0);
            assert_int_equal(vu_recv(&p.b, &m), 0);
            assert_int_equal(vu_send_reply(&p.b, &m, &acc, sizeof(acc), data, 4, NULL, 0), 0);
            vu_msg_release(&m);
            assert_int_equal(vu_recv(&p.a, &m), 0);
            assert_int_equal(m.payload_len, sizeof(acc) + 4);
            vu_msg_release(&m);
        }
        if (round == 1) {
            /* the first round made the two receive buffers */
            assert_int_equal(n_alloc - a0, 0);
        }
        assert_int_equal(n_sendmsg - s0, 2000);
        assert_int_equal(n_recvmsg - r0, 2000);
    }
    pair_close(&p);
}

static void test_eof(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct vu_msg m;
    struct pair p;

    /* orderly close between messages */
    pair_open(&p, NULL);
    vu_conn_close(&p.a);
    assert_int_equal(vu_recv(&p.b, &m), -ECONNRESET);
    vu_conn_close(&p.b);

    /* close inside the header */
    pair_open(&p, NULL);
    struct vu_hdr h;
    raw_hdr(&h, VU_CMD_DMA_MAP, 48);
    assert_int_equal(write(p.a.fd, &h, 10), 10);
    vu_conn_close(&p.a);
    assert_int_equal(vu_recv(&p.b, &m), -EPROTO);
    assert_non_null(strstr(p.b.err.msg, "inside a message (10 of 16"));
    vu_conn_close(&p.b);

    /* close inside the body, with an fd on the header: it is closed */
    pair_open(&p, NULL);
    int fd = make_memfd(4096);
    uint8_t buf[26] = {0};
    memcpy(buf, &h, 16);
    assert_int_equal(pt_sendmsg(p.a.fd, buf, sizeof(buf), &fd, 1), (ssize_t)sizeof(buf));
    close(fd);
    vu_conn_close(&p.a);
    assert_int_equal(vu_recv(&p.b, &m), -EPROTO);
    assert_non_null(strstr(p.b.err.msg, "(10 of 32 bytes)"));
    assert_null(m.payload);
    assert_int_equal(m.nfds, 0);
    vu_conn_close(&p.b);
    vu_conn_close(&p.b); /* twice is harmless */
    assert_int_equal(vu_recv(&p.b, &m), -EBADF);
    assert_int_equal(tu_count_fds(), base);
}

static void test_bad_headers(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct vu_limits lim = {.max_msg_size = 4096, .max_fds = 4};
    struct pair p;
    struct vu_msg m;
    struct vu_hdr h;

    /* msg_size above the limit: -E2BIG before any allocation; header kept */
    pair_open(&p, &lim);
    raw_hdr(&h, VU_CMD_REGION_WRITE, 1u << 30);
    int fd = make_memfd(16);
    assert_int_equal(pt_sendmsg(p.a.fd, &h, 16, &fd, 1), 16);
    close(fd);
    assert_int_equal(vu_recv(&p.b, &m), -E2BIG);
    assert_int_equal(m.hdr.msg_size, 1u << 30);
    assert_int_equal(m.hdr.cmd, VU_CMD_REGION_WRITE);
    assert_null(m.payload);
    assert_int_equal(m.nfds, 0);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);

    /* msg_size below the header, invalid type, Error in a command */
    const struct {
        uint32_t size, flags, err;
        const char *why;
    } cases[] = {
        {8, 0, 0, "smaller than the header"},
        {16, 2, 0, "invalid message type 2"},
        {16, 0x80, 0, "unknown header flags"},
        {16, VU_F_ERROR, 0, "Error flag in a command"},
        {16, 0, 22, "error_no 22 in a command"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pair_open(&p, &lim);
        raw_hdr(&h, VU_CMD_DEVICE_RESET, cases[i].size);
        h.flags = cases[i].flags;
        h.error_no = cases[i].err;
        assert_int_equal(write(p.a.fd, &h, 16), 16);
        assert_int_equal(vu_recv(&p.b, &m), -EPROTO);
        if (!strstr(p.b.err.msg, cases[i].why))
            fail_msg("case %zu: \"%s\"", i, p.b.err.msg);
        pair_close(&p);
    }
    assert_int_equal(tu_count_fds(), base);
}

static void test_nonblocking(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct pair p;
    pair_open(&p, NULL);
    nonblocking(&p.b, 0);
    struct vu_msg m;
    assert_int_equal(vu_recv(&p.b, &m), -EAGAIN);
    /* a whole message on a non-blocking socket */
    struct vu_hdr h = {.msg_id = 3, .cmd = VU_CMD_DEVICE_RESET};
    assert_int_equal(vu_send(&p.a, &h, NULL, 0, NULL, 0), 0);
    assert_int_equal(vu_recv(&p.b, &m), 0);
    assert_int_equal(m.hdr.msg_id, 3);
    vu_msg_release(&m);
    assert_int_equal(vu_recv(&p.b, &m), -EAGAIN);
    /* half a header, then silence: the started message times out */
    p.b.io_timeout_ms = 50;
    assert_int_equal(write(p.a.fd, &h, 8), 8);
    assert_int_equal(vu_recv(&p.b, &m), -ETIMEDOUT);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);
}

struct big_rx {
    struct vu_conn *c;
    size_t len;
    int rc;
    bool content_ok;
    size_t nfds;
};

static void *big_rx_thread(void *arg)
{
    struct big_rx *rx = arg;
    struct vu_msg m;
    rx->rc = vu_recv(rx->c, &m);
    if (rx->rc == 0) {
        rx->content_ok = m.payload_len == rx->len;
        for (size_t i = 0; rx->content_ok && i < m.payload_len; i++)
            if (m.payload[i] != (uint8_t)(i * 7 + 1))
                rx->content_ok = false;
        rx->nfds = m.nfds;
        vu_msg_release(&m);
    }
    return NULL;
}

/* A message far larger than the socket buffer, from a non-blocking sender:
 * sendmsg writes it in pieces, the fd goes only with the first piece. */
static void test_partial_writes(void **state)
{
    (void)state;
    int base = tu_count_fds();
    const size_t len = 4u << 20;
    struct vu_limits lim = {.max_msg_size = VU_HDR_SIZE + (8u << 20), .max_fds = 4};
    struct pair p;
    pair_open(&p, &lim);
    int small = 4096;
    setsockopt(p.a.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    nonblocking(&p.a, 0);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 7 + 1);

    struct big_rx rx = {.c = &p.b, .len = len};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, big_rx_thread, &rx), 0);
    int efd;
    pt_open_fds(&efd, 1);
    struct vu_hdr h = {.msg_id = 5, .cmd = VU_CMD_REGION_WRITE};
    int r = vu_send(&p.a, &h, buf, len, &efd, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r, 0);
    assert_int_equal(rx.rc, 0);
    assert_true(rx.content_ok);
    assert_int_equal(rx.nfds, 1);
    close(efd);
    free(buf);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);
}

struct trickle {
    int fd;
    size_t n;          /* bytes to send, one at a time */
    unsigned gap_ms;   /* pause before each byte */
};

static void *trickle_thread(void *arg)
{
    struct trickle *t = arg;
    struct vu_hdr h = {.msg_id = 9, .cmd = VU_CMD_REGION_WRITE,
                       .msg_size = (uint32_t)(VU_HDR_SIZE + 64)};
    uint8_t buf[VU_HDR_SIZE + 64] = {0};
    memcpy(buf, &h, sizeof(h));
    for (size_t i = 0; i < t->n && i < sizeof(buf); i++) {
        sleep_ms(t->gap_ms);
        if (send(t->fd, buf + i, 1, MSG_NOSIGNAL) != 1)
            break;
    }
    return NULL;
}

/* Attack: a slow-loris peer sends one byte of a message at a time, each well
 * inside the I/O timeout. The timeout bounds the whole message, not each
 * wait: the receive gives up with -ETIMEDOUT even though bytes keep coming
 * (before the fix it waited for all 80 bytes, 80 gaps long). */
static void test_trickle_timeout(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct pair p;
    pair_open(&p, NULL);
    nonblocking(&p.b, 150);
    struct trickle t = {.fd = p.a.fd, .n = VU_HDR_SIZE + 64, .gap_ms = 25};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, trickle_thread, &t), 0);
    struct pollfd pf = {.fd = p.b.fd, .events = POLLIN};
    assert_int_equal(poll(&pf, 1, 10000), 1);
    struct vu_msg m;
    int r = vu_recv(&p.b, &m);
    if (r == 0)
        vu_msg_release(&m);
    assert_int_equal(r, -ETIMEDOUT);
    shutdown(p.b.fd, SHUT_RDWR);   /* ends the writer */
    assert_int_equal(pthread_join(th, NULL), 0);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);
}

/* The same for sending: a peer that takes a reply a little at a time. */
static void *slow_reader_thread(void *arg)
{
    struct trickle *t = arg;
    static uint8_t buf[64 << 10];
    for (size_t i = 0; i < t->n; i++) {
        sleep_ms(t->gap_ms);
        if (read(t->fd, buf, sizeof(buf)) <= 0)
            break;
    }
    return NULL;
}

static void test_slow_reader_timeout(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct pair p;
    pair_open(&p, NULL);
    nonblocking(&p.a, 150);
    const size_t len = 4u << 20;   /* 64 reads of 64 KiB, 20 ms apart: far beyond 150 ms */
    uint8_t *buf = calloc(1, len);
    assert_non_null(buf);
    struct trickle t = {.fd = p.b.fd, .n = len / (64 << 10) + 8, .gap_ms = 20};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, slow_reader_thread, &t), 0);
    struct vu_hdr h = {.msg_id = 5, .cmd = VU_CMD_REGION_READ};
    p.a.lim.max_msg_size = VU_HDR_SIZE + (8u << 20);
    assert_int_equal(vu_send(&p.a, &h, buf, len, NULL, 0), -ETIMEDOUT);
    shutdown(p.a.fd, SHUT_RDWR);   /* ends the reader */
    assert_int_equal(pthread_join(th, NULL), 0);
    free(buf);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);
}

static void test_stream(void **state)
{
    (void)state;
    int base = tu_count_fds();
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    struct vu_conn c;
    vu_conn_init_stream(&c, pfd[0], pfd[1], NULL);
    struct vu_hdr h = {.msg_id = 11, .cmd = VU_CMD_DMA_UNMAP};
    struct vu_dma_unmap d = {24, 0, 0x1000, 0x1000};
    assert_int_equal(vu_send(&c, &h, &d, sizeof(d), NULL, 0), 0);
    struct vu_msg m;
    assert_int_equal(vu_recv(&c, &m), 0);
    assert_int_equal(m.hdr.msg_id, 11);
    struct vu_dma_unmap o;
    assert_int_equal(vu_decode_dma_unmap(&m, &o, NULL), 0);
    vu_msg_release(&m);
    int efd;
    pt_open_fds(&efd, 1);
    assert_int_equal(vu_send(&c, &h, &d, sizeof(d), &efd, 1), -EINVAL);
    assert_non_null(strstr(c.err.msg, "cannot pass fds"));
    close(efd);
    vu_conn_close(&c);

    /* a stream from a file: two messages, then garbage, then EOF */
    int f = memfd_create("stream", MFD_CLOEXEC);
    struct vu_hdr r = {.msg_id = 1, .cmd = VU_CMD_DEVICE_RESET, .msg_size = 16};
    assert_int_equal(write(f, &r, 16), 16);
    assert_int_equal(write(f, &r, 16), 16);
    assert_int_equal(write(f, "garbage", 7), 7);
    lseek(f, 0, SEEK_SET);
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    vu_conn_init_stream(&c, f, devnull, NULL);
    assert_int_equal(vu_recv(&c, &m), 0);
    assert_int_equal(vu_recv(&c, &m), 0);
    assert_int_equal(vu_recv(&c, &m), -EPROTO);
    vu_conn_close(&c);
    assert_int_equal(tu_count_fds(), base);
}

static void test_send_args(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct pair p;
    pair_open(&p, NULL);
    struct iovec iov[9];
    uint8_t x = 0;
    for (int i = 0; i < 9; i++)
        iov[i] = (struct iovec){&x, 1};
    assert_int_equal(p.a.ops->send(&p.a, iov, 9, NULL, 0), -EINVAL);
    int fds[17];
    for (int i = 0; i < 17; i++)
        fds[i] = 0;
    struct vu_hdr h = {.cmd = VU_CMD_DEVICE_SET_IRQS};
    assert_int_equal(vu_send(&p.a, &h, NULL, 0, fds, 17), -EINVAL);
    assert_int_equal(vu_send(&p.a, &h, NULL, 5, NULL, 0), -EINVAL);
    /* peer gone: EPIPE, no SIGPIPE */
    vu_conn_close(&p.b);
    assert_int_equal(vu_send(&p.a, &h, NULL, 0, NULL, 0), -EPIPE);
    vu_conn_close(&p.a);
    assert_int_equal(vu_send(&p.a, &h, NULL, 0, NULL, 0), -EBADF);
    assert_int_equal(tu_count_fds(), base);
}

/* vu_conn_sendv's total is a hint for the one-sendmsg path: a total too
 * small or too large still sends every byte once, with the fd once. */
static void test_sendv_total(void **state)
{
    (void)state;
    int base = tu_count_fds();
    struct pair p;
    pair_open(&p, NULL);
    uint8_t body[40];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)(i * 7 + 1);
    int memfd = memfd_create("sendv", MFD_CLOEXEC);
    assert_true(memfd >= 0);
    const size_t totals[] = {0, 1, VU_HDR_SIZE, VU_HDR_SIZE + 10, VU_HDR_SIZE + 40,
                             VU_HDR_SIZE + 41, 1u << 20};
    for (size_t t = 0; t < sizeof(totals) / sizeof(totals[0]); t++)
        for (int with_fd = 0; with_fd < 2; with_fd++) {
            struct vu_hdr h = {.msg_id = (uint16_t)(t * 2 + with_fd), .cmd = VU_CMD_DMA_MAP,
                               .msg_size = VU_HDR_SIZE + 40};
            struct iovec iov[3] = {{&h, sizeof(h)}, {body, 10}, {body + 10, 30}};
            assert_int_equal(vu_conn_sendv(&p.a, iov, 3, totals[t], with_fd ? &memfd : NULL,
                                           (size_t)with_fd), 0);
            struct vu_msg m;
            assert_int_equal(vu_recv(&p.b, &m), 0);
            assert_int_equal(m.hdr.msg_id, h.msg_id);
            assert_int_equal(m.payload_len, 40);
            assert_memory_equal(m.payload, body, 40);
            assert_int_equal(m.nfds, (size_t)with_fd);
            if (with_fd)
                assert_true(same_file(m.fds[0], memfd));
            vu_msg_release(&m);
        }
    /* nothing more in the socket: every message went exactly once */
    nonblocking(&p.b, 0);
    struct vu_msg m;
    assert_int_equal(vu_recv(&p.b, &m), -EAGAIN);
    close(memfd);
    pair_close(&p);
    assert_int_equal(tu_count_fds(), base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all),
        cmocka_unit_test(test_reply_helpers),
        cmocka_unit_test(test_ctrunc),
        cmocka_unit_test(test_fds_over_limit),
        cmocka_unit_test(test_fds_on_body),
        cmocka_unit_test(test_fds_glued),
        cmocka_unit_test(test_several_in_one_read),
        cmocka_unit_test(test_split_every_byte),
        cmocka_unit_test(test_whole_message_path),
        cmocka_unit_test(test_no_alloc_per_message),
        cmocka_unit_test(test_eof),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_nonblocking),
        cmocka_unit_test(test_partial_writes),
        cmocka_unit_test(test_trickle_timeout),
        cmocka_unit_test(test_slow_reader_timeout),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_send_args),
        cmocka_unit_test(test_sendv_total),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
