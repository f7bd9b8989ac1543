/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the whole bridge: the input is one hostile client's
 * byte stream. A session is opened on the simulated device exactly as the
 * server opens one, its connection is replaced by a byte-stream transport
 * reading the input, and every message goes through the real receive path
 * (header checks, limits) and the real dispatch (br_handle_message), until
 * the stream ends or breaks; then the session is closed as the server
 * closes it.
 *
 * The stream transport carries no fds, so a thin wrapper gives some
 * messages the fds a client could attach, chosen by the message id:
 *   DMA_MAP:  id & 3 = 0 none, 1 a 2 MiB memfd, 2 a pipe, 3 the memfd
 *             opened read-only;
 *   SET_IRQS with DATA_EVENTFD: id & 1 = count eventfds (count <= 16).
 * Fds the bridge sends back (GET_REGION_INFO) are dropped, the bytes kept.
 *
 * The first input byte picks the device and options: bit 0 MSI-X BAR with
 * a sparse-mmap cap instead of MSIX_MAPPABLE, bit 1 --no-mmap, bit 2
 * --sparse-msix, bit 3 no FLAGS_RESET, bit 4 --max-dma-bytes 4 MiB,
 * bit 5 --max-dma-maps 8.
 *
 * After each input: no fd of this process leaked, the simulated IOMMU has
 * no mapping left, the simulated device holds no eventfd, bus mastering
 * is off. Any violation traps.
 *
 * Build: cmake -DVUB_FUZZ=ON -DCMAKE_C_COMPILER=clang; run tests/fuzz/fuzz_bridge.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "device.h"
#include "handlers.h"
#include "hv_sim.h"
#include "log.h"
#include "session.h"
#include "testutil.h"

#define MEMFD_SIZE (2u << 20)

static void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

/* ---- a transport: the stream transport plus synthesized fds ----------------- */

struct fuzz_conn {
    struct vu_conn inner;      /* stream transport over the input */
    int memfd;                 /* the client's memory object (owned here) */
};

static struct fuzz_conn fz;

static int dup_or(int fd)
{
    return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

static size_t attach_fds(struct vu_msg *m, int *fds)
{
    uint32_t kind = m->hdr.msg_id;
    if (m->hdr.cmd == VU_CMD_DMA_MAP) {
        switch (kind & 3) {
        case 1:
            fds[0] = dup_or(fz.memfd);
            return fds[0] >= 0;
        case 2: {
            int p[2];
            if (pipe2(p, O_CLOEXEC) < 0)
                return 0;
            close(p[1]);
            fds[0] = p[0];
            return 1;
        }
        case 3: {
            char path[64];
            snprintf(path, sizeof(path), "/proc/self/fd/%d", fz.memfd);
            fds[0] = open(path, O_RDONLY | O_CLOEXEC);
            return fds[0] >= 0;
        }
        default:
            return 0;
        }
    }
    if (m->hdr.cmd == VU_CMD_DEVICE_SET_IRQS && (kind & 1) &&
        m->payload_len >= sizeof(struct vu_irq_set)) {
        struct vu_irq_set s;
        memcpy(&s, m->payload, sizeof(s));
        if (!(s.flags & VU_IRQ_SET_DATA_EVENTFD) || s.count == 0 ||
            s.count > VU_MAX_FDS_PER_MSG)
            return 0;
        size_t n = 0;
        for (; n < s.count; n++) {
            fds[n] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (fds[n] < 0)
                break;
        }
        return n;
    }
    return 0;
}

static int fz_recv(struct vu_conn *c, struct vu_msg *m)
{
    int r = vu_recv(&fz.inner, m);
    c->err = fz.inner.err;
    if (r < 0)
        return r;
    m->nfds = attach_fds(m, m->fds);
    return 0;
}

static int fz_send(struct vu_conn *c, const struct iovec *iov, int iovcnt, const int *fds,
                   size_t nfds)
{
    (void)fds;
    (void)nfds;   /* the caller still owns (and closes) what it sends */
    int r = fz.inner.ops->send(&fz.inner, iov, iovcnt, NULL, 0);
    c->err = fz.inner.err;
    return r;
}

static void fz_close(struct vu_conn *c)
{
    vu_conn_close(&fz.inner);
    c->fd = c->wfd = -1;
}

static const struct vu_transport_ops fz_ops = {
    .send = fz_send,
    .recv = fz_recv,
    .close = fz_close,
};

/* ---- one input ------------------------------------------------------------ */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    br_log_set_level(getenv("VUB_FUZZ_LOG") ? BR_LOG_DEBUG : BR_LOG_ERR);
    br_log_set_device("0000:00:04.0");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    data++;
    size--;

    /* counted per input: libFuzzer itself opens files between inputs */
    int baseline_fds = tu_count_fds();

    struct hv_sim_config sc;
    hv_sim_config_defaults(&sc);
    sc.addr = "0000:00:04.0";
    sc.msix = (opt & 1) ? HV_SIM_MSIX_SPARSE_CAP : HV_SIM_MSIX_MAPPABLE_CAP;
    sc.reset = !(opt & 8);
    sc.bar0_size = 64u << 10;
    struct br_config cfg;
    br_config_defaults(&cfg);
    cfg.no_mmap = opt & 2;
    cfg.msix_mmap = (opt & 4) ? BR_MSIX_MMAP_KERNEL : BR_MSIX_MMAP_SPARSE;
    if (opt & 16)
        cfg.max_dma_bytes = 4u << 20;
    if (opt & 32)
        cfg.max_dma_maps = 8;
    cfg.io_timeout_ms = 100;

    struct hv_device *hv = NULL;
    struct vub_err herr;
    check(hv_sim_open(&sc, &hv, &herr) == 0);
    static struct br_dev dev;
    check(br_dev_init(&dev, hv, &cfg) == 0);

    /* the input as the client's byte stream; replies go nowhere */
    int in = memfd_create("fuzz-in", MFD_CLOEXEC);
    int out = open("/dev/null", O_WRONLY | O_CLOEXEC);
    fz.memfd = memfd_create("fuzz-client-ram", MFD_CLOEXEC);
    check(in >= 0 && out >= 0 && fz.memfd >= 0);
    check(ftruncate(fz.memfd, MEMFD_SIZE) == 0);
    for (size_t done = 0; done < size;) {
        ssize_t n = write(in, data + done, size - done);
        check(n > 0);
        done += (size_t)n;
    }
    check(lseek(in, 0, SEEK_SET) == 0);

    /* a session opened exactly as the server does, then given the stream */
    int sp[2];
    check(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
    close(sp[1]);
    struct ucred peer = { .pid = 1, .uid = 0, .gid = 0 };
    struct br_session *s = NULL;
    check(br_session_open(&s, &dev, sp[0], &peer) == 0);
    int timeout = s->conn.io_timeout_ms;
    vu_conn_close(&s->conn);
    vu_conn_init_stream(&fz.inner, in, out, &dev.lim);
    fz.inner.io_timeout_ms = timeout;
    s->conn = (struct vu_conn){ .ops = &fz_ops, .fd = in, .wfd = out, .lim = dev.lim,
                                .io_timeout_ms = timeout };
    s->conn.lim.max_fds = VU_MAX_FDS_PER_MSG;

    /* the server's loop for this client */
    for (;;) {
        struct vu_msg m;
        int r = vu_recv(&s->conn, &m);
        if (r < 0)
            break;
        r = br_handle_message(s, &m);
        vu_msg_release(&m);
        if (r < 0)
            break;
    }
    br_session_close(s);

    /* everything the client had is gone */
    check(hv_sim_stats_of(hv).dma_maps == 0);
    check(hv_sim_stats_of(hv).open_irq_fds == 0);
    check(!(hv_sim_stats_of(hv).command & 0x4));
    close(fz.memfd);
    fz.memfd = -1;
    hv_close(hv);
    check(tu_count_fds() == baseline_fds);
    return 0;
}
