/* SPDX-License-Identifier: MIT */
/*
 * bad_client SOCKET - send a vfio-user server a set of malformed messages,
 * each on a fresh connection, and check that it answers each with an error
 * reply (and keeps serving that connection) or drops the connection where
 * the stream can no longer be trusted; then that a well-behaved client is
 * still served. One line per case; exit 1 if any case failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vu_client.h"

enum expect {
    ERR,        /* an error reply, then the connection still works */
    ERR_OR_DROP,/* an error reply (then still works) or the connection closed */
    DROP,       /* the connection closed (an error reply before it is fine) */
    ERR_ANY,    /* an error reply (the connection may then close) or closed */
    IGNORE,     /* no answer (then still works) or the connection closed */
    SILENT,     /* No_reply command: no answer at all; the next reply matches */
};

struct outcome {
    bool replied_error;
    uint32_t error_no;
    bool dropped;
    char what[160];
};

static const char *sock_path;
static int failures, passed;

static uint8_t msgbuf[8192];

/* Build header + payload into msgbuf; returns the length. */
static size_t build(uint16_t id, uint16_t cmd, uint32_t flags, uint32_t msg_size, const void *payload,
                    size_t plen)
{
    struct vu_hdr h = {.msg_id = id, .cmd = cmd, .msg_size = msg_size, .flags = flags};
    memcpy(msgbuf, &h, sizeof(h));
    if (plen)
        memcpy(msgbuf + sizeof(h), payload, plen);
    return sizeof(h) + plen;
}

static size_t msg(uint16_t id, uint16_t cmd, const void *payload, size_t plen)
{
    return build(id, cmd, 0, (uint32_t)(VU_HDR_SIZE + plen), payload, plen);
}

static struct vu_client *open_client(bool negotiate)
{
    struct vub_err e = {{0}};
    struct vu_client *c = NULL;
    if (vu_client_connect(sock_path, &c, &e) < 0) {
        printf("# connect: %s\n", e.msg);
        return NULL;
    }
    vu_client_set_timeout(c, 5000);
    if (negotiate && vu_client_negotiate(c, NULL, NULL) < 0) {
        printf("# VERSION: %s\n", vu_client_error(c));
        vu_client_close(c);
        return NULL;
    }
    return c;
}

/* sendmsg() past the client library (which refuses more fds than the
 * server's max_msg_fds). */
static int send_raw(struct vu_client *c, size_t len, const int *fds, size_t nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 64)];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = msgbuf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 64)
        return -E2BIG;
    if (nfds) {
        memset(&u, 0, sizeof(u));
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
    }
    return sendmsg(vu_client_fd(c), &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

/* Wait up to ms for the first byte of an answer (or EOF). */
static bool answer_pending(struct vu_client *c, int ms)
{
    struct pollfd p = {.fd = vu_client_fd(c), .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

/* Send bytes (with fds), observe what comes back. */
static int exchange(struct vu_client *c, size_t len, const int *fds, size_t nfds, uint16_t id,
                    struct outcome *o)
{
    struct vu_msg reply;
    memset(o, 0, sizeof(*o));
    int r;
    if (nfds > VU_MAX_FDS_PER_MSG) {
        r = send_raw(c, len, fds, nfds);
        if (!r)
            r = vu_client_raw(c, msgbuf, 0, NULL, 0, true, &reply);
    } else {
        r = vu_client_raw(c, msgbuf, len, fds, nfds, true, &reply);
    }
    if (r == -ECONNRESET || r == -EPIPE) {
        o->dropped = true;
        return 0;
    }
    if (r < 0) {
        snprintf(o->what, sizeof(o->what), "no answer: %s", vu_client_error(c));
        return r;
    }
    int rc = 0;
    if ((reply.hdr.flags & VU_F_TYPE_MASK) != VU_F_TYPE_REPLY || reply.hdr.msg_id != id) {
        snprintf(o->what, sizeof(o->what), "answer is not our reply (flags 0x%x, id %u)", reply.hdr.flags,
                 reply.hdr.msg_id);
        rc = -EPROTO;
    } else if (!(reply.hdr.flags & VU_F_ERROR)) {
        snprintf(o->what, sizeof(o->what), "the server said success");
        rc = -EINVAL;
    } else if (reply.hdr.error_no == 0 || reply.hdr.error_no > 4096 || reply.hdr.msg_size != VU_HDR_SIZE) {
        snprintf(o->what, sizeof(o->what), "bad error reply (errno %u, size %u)", reply.hdr.error_no,
                 reply.hdr.msg_size);
        rc = -EPROTO;
    } else {
        o->replied_error = true;
        o->error_no = reply.hdr.error_no;
    }
    vu_msg_release(&reply);
    return rc;
}

/* After an error reply, the same connection must still serve a command. */
static bool still_works(struct vu_client *c)
{
    struct vu_device_info di;
    return vu_client_get_info(c, &di) == 0 && di.num_regions > 0;
}

/* After a drop (or an error reply in a DROP case), the server must close:
 * whatever else it still sends is read and dropped; EOF within 5 s. */
static bool closes(struct vu_client *c)
{
    int fd = vu_client_fd(c);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char buf[4096];
    for (int i = 0; i < 64; i++) {
        if (poll(&p, 1, 5000) <= 0)
            return false;
        ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0 && errno != EAGAIN && errno != EINTR)
            return false;
    }
    return false;
}

static void result(const char *name, bool ok, const struct outcome *o)
{
    char how[200];
    if (o->replied_error)
        snprintf(how, sizeof(how), "error reply %s", strerror((int)o->error_no));
    else if (o->dropped)
        snprintf(how, sizeof(how), "connection closed");
    else
        snprintf(how, sizeof(how), "%s", o->what);
    printf("%s - %s: %s\n", ok ? "ok  " : "FAIL", name, how);
    fflush(stdout);
    if (ok)
        passed++;
    else
        failures++;
}

/* Run one case: open (and negotiate), send, judge, close. */
static void run_case(const char *name, bool negotiate, enum expect ex, size_t len, const int *fds, size_t nfds)
{
    struct outcome o;
    memset(&o, 0, sizeof(o));
    struct vu_client *c = open_client(negotiate);
    if (!c) {
        snprintf(o.what, sizeof(o.what), "the server did not accept a new client");
        result(name, false, &o);
        return;
    }
    uint16_t id;
    memcpy(&id, msgbuf, sizeof(id));
    bool ok = false;
    if (ex == SILENT) {
        int r = vu_client_raw(c, msgbuf, len, fds, nfds, false, NULL);
        ok = r == 0 && still_works(c);
        snprintf(o.what, sizeof(o.what), ok ? "no reply, next command answered in order"
                                            : "answered a No_reply command or stopped serving");
        result(name, ok, &o);
        vu_client_close(c);
        return;
    }
    if (ex == IGNORE) {
        int r = vu_client_raw(c, msgbuf, len, fds, nfds, false, NULL);
        if (r == 0 && !answer_pending(c, 1000)) {
            ok = still_works(c);
            snprintf(o.what, sizeof(o.what), ok ? "ignored, next command answered" : "ignored, then stuck");
        } else {
            ok = r == -EPIPE || r == -ECONNRESET || closes(c);
            snprintf(o.what, sizeof(o.what), ok ? "connection closed" : "it was answered");
        }
        result(name, ok, &o);
        vu_client_close(c);
        return;
    }
    int r = exchange(c, len, fds, nfds, id, &o);
    if (r == 0) {
        switch (ex) {
        case ERR:
            ok = o.replied_error && still_works(c);
            if (o.replied_error && !ok)
                snprintf(o.what, sizeof(o.what), "error reply, but the connection stopped working");
            break;
        case ERR_OR_DROP:
            ok = o.dropped || still_works(c);
            break;
        case ERR_ANY:
            ok = true;
            break;
        case IGNORE:
        case DROP:
            ok = o.dropped || closes(c);
            break;
        case SILENT:
            break;
        }
        if (!ok && o.replied_error && ex != ERR) {
            o.replied_error = false;
            snprintf(o.what, sizeof(o.what), "error reply %u but the connection is in an unusable state",
                     o.error_no);
        }
    }
    result(name, ok, &o);
    vu_client_close(c);
}

/* Cases that stop in the middle of a message: nothing to see but that the
 * next client is served (checked by the next case). */
static void run_truncated(void)
{
    struct vu_client *c = open_client(true);
    if (!c)
        return;
    struct vu_region_access ra = {.offset = 0, .region = VU_PCI_CONFIG_REGION_INDEX, .count = 4};
    size_t len = build(90, VU_CMD_REGION_READ, 0, VU_HDR_SIZE + 64, &ra, 8);
    vu_client_raw(c, msgbuf, len, NULL, 0, false, NULL);
    vu_client_close(c);
    printf("#      sent half a message and closed\n");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bad_client SOCKET\n");
        return 2;
    }
    sock_path = argv[1];
    size_t n;

    /* ---- framing ---- */
    n = build(1, VU_CMD_DEVICE_GET_INFO, 0, 8, NULL, 0);
    run_case("msg_size 8, smaller than the header", true, DROP, n, NULL, 0);
    n = build(2, VU_CMD_DEVICE_GET_INFO, 0, 0xffffffffu, NULL, 0);
    run_case("msg_size 4 GiB", true, DROP, n, NULL, 0);
    {
        struct vu_device_info di = {.argsz = 16};
        n = build(3, VU_CMD_DEVICE_GET_INFO, VU_F_TYPE_REPLY, VU_HDR_SIZE + 16, &di, 16);
        run_case("a reply sent as if it were a command", true, IGNORE, n, NULL, 0);
        n = build(4, VU_CMD_DEVICE_GET_INFO, 5, VU_HDR_SIZE + 16, &di, 16);
        run_case("message type 5", true, ERR_OR_DROP, n, NULL, 0);
        n = build(5, VU_CMD_DEVICE_GET_INFO, 0x100, VU_HDR_SIZE + 16, &di, 16);
        run_case("unknown flag bit 0x100", true, ERR_OR_DROP, n, NULL, 0);
        n = build(6, VU_CMD_DEVICE_GET_INFO, VU_F_ERROR, VU_HDR_SIZE + 16, &di, 16);
        run_case("Error flag in a command", true, ERR_OR_DROP, n, NULL, 0);
    }
    {
        int fds[VU_MAX_FDS_PER_MSG + 4];
        for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
            fds[i] = eventfd(0, EFD_CLOEXEC);
        struct vu_device_info di = {.argsz = 16};
        n = msg(7, VU_CMD_DEVICE_GET_INFO, &di, 16);
        run_case("20 fds in one message", true, ERR_OR_DROP, n, fds, sizeof(fds) / sizeof(fds[0]));
        for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
            close(fds[i]);
    }
    run_truncated();

    /* ---- version negotiation ---- */
    {
        struct vu_device_info di = {.argsz = 16};
        n = msg(8, VU_CMD_DEVICE_GET_INFO, &di, 16);
        run_case("DEVICE_GET_INFO before VERSION", false, ERR_ANY, n, NULL, 0);
        uint8_t v[64];
        struct vu_version ver = {.major = 1, .minor = 0};
        memcpy(v, &ver, 4);
        const char *js = "{\"capabilities\":{}}";
        memcpy(v + 4, js, strlen(js) + 1);
        n = msg(9, VU_CMD_VERSION, v, 4 + strlen(js) + 1);
        run_case("VERSION major 1", false, ERR_ANY, n, NULL, 0);
        ver.major = 0;
        memcpy(v, &ver, 4);
        js = "{\"capabilities\":{\"max_msg_fds\":\"lots\"";
        memcpy(v + 4, js, strlen(js) + 1);
        n = msg(10, VU_CMD_VERSION, v, 4 + strlen(js) + 1);
        run_case("VERSION with broken JSON", false, ERR_ANY, n, NULL, 0);
        js = "{\"capabilities\":{\"max_data_xfer_size\":0}}";
        memcpy(v + 4, js, strlen(js) + 1);
        n = msg(11, VU_CMD_VERSION, v, 4 + strlen(js) + 1);
        run_case("VERSION with max_data_xfer_size 0", false, ERR_ANY, n, NULL, 0);
        js = "{\"capabilities\":{}}";
        memcpy(v + 4, js, strlen(js) + 1);
        n = msg(12, VU_CMD_VERSION, v, 4 + strlen(js) + 1);
        run_case("a second VERSION", true, ERR_OR_DROP, n, NULL, 0);
    }

    /* ---- commands ---- */
    {
        uint32_t junk[4] = {16, 0, 0, 0};
        n = msg(20, 99, junk, sizeof(junk));
        run_case("unknown command 99", true, ERR, n, NULL, 0);
        n = msg(21, 14, junk, sizeof(junk));
        run_case("retired command 14", true, ERR, n, NULL, 0);
        struct vu_dma_access da = {.address = 0x100000, .count = 4};
        n = msg(22, VU_CMD_DMA_READ, &da, sizeof(da));
        run_case("server-to-client DMA_READ sent to the server", true, ERR, n, NULL, 0);
        uint32_t small = 16;
        n = msg(23, VU_CMD_DEVICE_GET_INFO, &small, 4);
        run_case("DEVICE_GET_INFO with a 4-byte payload", true, ERR, n, NULL, 0);
    }
    {
        int mfd = memfd_create("bad_client", MFD_CLOEXEC);
        if (mfd < 0 || ftruncate(mfd, 1 << 20) < 0)
            return 2;
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) < 0)
            return 2;
        int two[2] = {mfd, mfd};
        struct vu_dma_map m = {.argsz = 32, .flags = 3, .offset = 0, .address = 0x100000, .size = 0x1000};
        m.argsz = 16;
        n = msg(30, VU_CMD_DMA_MAP, &m, sizeof(m));
        run_case("DMA_MAP argsz 16", true, ERR, n, &mfd, 1);
        m.argsz = 32;
        m.flags = 0x80;
        n = msg(31, VU_CMD_DMA_MAP, &m, sizeof(m));
        run_case("DMA_MAP unknown flag 0x80", true, ERR, n, &mfd, 1);
        m.flags = 3;
        m.size = 0;
        n = msg(32, VU_CMD_DMA_MAP, &m, sizeof(m));
        run_case("DMA_MAP size 0", true, ERR, n, &mfd, 1);
        m.size = 0x2000;
        m.address = UINT64_MAX - 0xfff;
        n = msg(33, VU_CMD_DMA_MAP, &m, sizeof(m));
        run_case("DMA_MAP address + size wraps", true, ERR, n, &mfd, 1);
        m.address = 0x100000;
        n = msg(34, VU_CMD_DMA_MAP, &m, sizeof(m));
        run_case("DMA_MAP of a pipe", true, ERR, n, &pfd[0], 1);
        m.size = 0x1234;
        n = msg(35, VU_CMD_DMA_MAP, &m, sizeof(m));
        run_case("DMA_MAP size not page aligned", true, ERR, n, &mfd, 1);
        m.size = 0x1000;
        n = msg(36, VU_CMD_DMA_MAP, &m, sizeof(m));
        run_case("DMA_MAP with two fds", true, ERR, n, two, 2);
        m.offset = 1ull << 40;
        n = msg(37, VU_CMD_DMA_MAP, &m, sizeof(m));
        run_case("DMA_MAP offset past the end of the memfd", true, ERR, n, &mfd, 1);
        m.offset = 0;
        m.address = 0xfee00000;
        n = msg(38, VU_CMD_DMA_MAP, &m, sizeof(m));
        run_case("DMA_MAP into the MSI window (no usable IOVA)", true, ERR, n, &mfd, 1);
        /* (a range that holds no mapping is a success: type1 rules, see
         * bridge/README.md; one that wraps is not) */
        struct vu_dma_unmap u = {.argsz = 24, .flags = 0, .address = 0xfffffffffffff000ull,
                                 .size = 0x2000};
        n = msg(39, VU_CMD_DMA_UNMAP, &u, sizeof(u));
        run_case("DMA_UNMAP whose range wraps", true, ERR, n, NULL, 0);
        u.flags = VU_DMA_UNMAP_FLAG_ALL;
        n = msg(40, VU_CMD_DMA_UNMAP, &u, sizeof(u));
        run_case("DMA_UNMAP ALL with an address", true, ERR, n, NULL, 0);
        close(mfd);
        close(pfd[0]);
        close(pfd[1]);
    }
    {
        struct vu_region_info ri = {.argsz = 8, .index = 0};
        n = msg(50, VU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri));
        run_case("GET_REGION_INFO argsz 8", true, ERR, n, NULL, 0);
        ri.argsz = 32;
        ri.index = 1000;
        n = msg(51, VU_CMD_DEVICE_GET_REGION_INFO, &ri, sizeof(ri));
        run_case("GET_REGION_INFO index 1000", true, ERR, n, NULL, 0);
        struct vu_irq_info ii = {.argsz = 16, .index = 99};
        n = msg(52, VU_CMD_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii));
        run_case("GET_IRQ_INFO index 99", true, ERR, n, NULL, 0);
    }
    {
        struct vu_region_access ra = {.offset = 0, .region = 99, .count = 4};
        n = msg(60, VU_CMD_REGION_READ, &ra, sizeof(ra));
        run_case("REGION_READ region 99", true, ERR, n, NULL, 0);
        ra.region = VU_PCI_CONFIG_REGION_INDEX;
        ra.offset = 4094;
        n = msg(61, VU_CMD_REGION_READ, &ra, sizeof(ra));
        run_case("REGION_READ across the end of config space", true, ERR, n, NULL, 0);
        ra.offset = UINT64_MAX - 1;
        n = msg(62, VU_CMD_REGION_READ, &ra, sizeof(ra));
        run_case("REGION_READ offset wraps", true, ERR, n, NULL, 0);
        ra.offset = 0;
        ra.count = 64u << 20;
        n = msg(63, VU_CMD_REGION_READ, &ra, sizeof(ra));
        run_case("REGION_READ of 64 MiB (beyond max_data_xfer_size)", true, ERR, n, NULL, 0);
        ra.region = VU_PCI_BAR0_REGION_INDEX;
        ra.offset = 1ull << 32;
        ra.count = 4;
        n = msg(64, VU_CMD_REGION_READ, &ra, sizeof(ra));
        run_case("REGION_READ of BAR0 at 4 GiB", true, ERR, n, NULL, 0);
        uint8_t w[16 + 2];
        ra.offset = 0;
        ra.count = 8; /* but only 2 data bytes follow */
        memcpy(w, &ra, 16);
        w[16] = w[17] = 0;
        n = msg(65, VU_CMD_REGION_WRITE, w, sizeof(w));
        run_case("REGION_WRITE with fewer data bytes than count", true, ERR, n, NULL, 0);
        int efd = eventfd(0, EFD_CLOEXEC);
        ra.region = VU_PCI_CONFIG_REGION_INDEX;
        ra.count = 4;
        n = msg(66, VU_CMD_REGION_READ, &ra, sizeof(ra));
        run_case("REGION_READ carrying an fd", true, ERR, n, &efd, 1);
        ra.region = 99;
        n = build(67, VU_CMD_REGION_READ, VU_F_NO_REPLY, VU_HDR_SIZE + 16, &ra, 16);
        run_case("a failing No_reply REGION_READ", true, SILENT, n, NULL, 0);
        close(efd);
    }
    {
        int efd = eventfd(0, EFD_CLOEXEC);
        struct vu_irq_set s = {.argsz = 20, .flags = VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER,
                               .index = 42, .start = 0, .count = 1};
        n = msg(70, VU_CMD_DEVICE_SET_IRQS, &s, sizeof(s));
        run_case("SET_IRQS index 42", true, ERR, n, &efd, 1);
        s.index = VU_PCI_MSI_IRQ_INDEX;
        s.flags = VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER | VU_IRQ_SET_ACTION_MASK;
        n = msg(71, VU_CMD_DEVICE_SET_IRQS, &s, sizeof(s));
        run_case("SET_IRQS with two actions", true, ERR, n, &efd, 1);
        s.flags = VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER;
        s.count = 2;
        n = msg(72, VU_CMD_DEVICE_SET_IRQS, &s, sizeof(s));
        run_case("SET_IRQS count 2 with one eventfd", true, ERR, n, &efd, 1);
        s.count = 1;
        s.start = 5;
        n = msg(73, VU_CMD_DEVICE_SET_IRQS, &s, sizeof(s));
        run_case("SET_IRQS MSI vector 5 of 1", true, ERR, n, &efd, 1);
        s.start = 0;
        s.argsz = 200;
        n = msg(74, VU_CMD_DEVICE_SET_IRQS, &s, sizeof(s));
        run_case("SET_IRQS argsz larger than the message", true, ERR, n, &efd, 1);
        s.argsz = 20;
        s.start = 0xffffffffu;
        s.count = 2;
        n = msg(75, VU_CMD_DEVICE_SET_IRQS, &s, sizeof(s));
        run_case("SET_IRQS start + count wraps", true, ERR, n, NULL, 0);
        close(efd);
    }

    /* ---- and then a good client ---- */
    struct outcome o;
    memset(&o, 0, sizeof(o));
    struct vu_client *c = open_client(true);
    struct vu_device_info di;
    bool ok = c && vu_client_get_info(c, &di) == 0;
    snprintf(o.what, sizeof(o.what), ok ? "served (%u regions)" : "not served", ok ? di.num_regions : 0);
    result("a well-behaved client afterwards", ok, &o);
    if (c)
        vu_client_close(c);

    printf("%d passed, %d failed\n", passed, failures);
    return failures ? 1 : 0;
}
