/* SPDX-License-Identifier: MIT */
/*
 * A hostile client against the whole bridge (server loop on the simulated
 * device, real sockets): fds that are not memory, memory it may not write,
 * ranges beyond the object, an object shrunk under a mapping, fd floods,
 * a client that never reads its replies, unsolicited replies flooding the
 * log, and the bridge running out of fds while a second client knocks.
 * Each case checks the bridge answers (or drops the client) and that
 * nothing of the client stays open afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "log.h"
#include "testutil.h"

#define RW (VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE)
#define MiB (1u << 20)

static void setup_tweak(struct th *t)
{
    t->cfg.io_timeout_ms = 300;
}

static int setup(void **state)
{
    *state = th_new(false, setup_tweak);
    return 0;
}

/* ---- stderr capture: what the daemon logged ----------------------------------- */

struct capture {
    int saved;   /* the real stderr */
    int fd;      /* memfd standing in for it */
};

static void capture_start(struct capture *cap)
{
    fflush(stderr);
    cap->fd = memfd_create("vub-log", MFD_CLOEXEC);
    assert_true(cap->fd >= 0);
    cap->saved = dup(STDERR_FILENO);
    assert_true(cap->saved >= 0);
    assert_int_equal(dup2(cap->fd, STDERR_FILENO), STDERR_FILENO);
}

/* Stop capturing; count the lines containing `needle`. */
static unsigned capture_stop(struct capture *cap, const char *needle)
{
    fflush(stderr);
    assert_int_equal(dup2(cap->saved, STDERR_FILENO), STDERR_FILENO);
    close(cap->saved);
    struct stat st;
    assert_int_equal(fstat(cap->fd, &st), 0);
    char *buf = calloc(1, (size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(pread(cap->fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(cap->fd);
    unsigned n = 0;
    for (char *p = buf; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(buf);
    return n;
}

/* ---- DMA_MAP with fds that are not client memory ----------------------------- */

static void test_dma_map_not_memory(void **state)
{
    struct th *t = *state;
    int base = tu_count_fds();
    struct vu_client *c = th_connect(t, true);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int zero = open("/dev/zero", O_RDWR | O_CLOEXEC);
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int efd = th_eventfd();
    assert_true(zero >= 0 && dir >= 0);
    const int bad[] = { p[0], p[1], sv[0], zero, dir, efd };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(vu_client_dma_map(c, 0x100000, 0x1000, bad[i], 0, RW), -EINVAL);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    /* the session is still good */
    int mfd = th_memfd(MiB);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 0x1000, mfd, 0, RW), 0);
    vu_client_close(c);
    th_wait_closed(t, 1);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        close(bad[i]);
    close(sv[1]);
    close(mfd);
    assert_int_equal(tu_count_fds(), base);
}

/* A file the client may only read: READ maps, WRITE is refused (the bridge
 * never gains write access through a read-only fd). */
static void test_dma_map_read_only_fd(void **state)
{
    struct th *t = *state;
    int base = tu_count_fds();
    struct vu_client *c = th_connect(t, true);
    int mfd = th_memfd(MiB);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(ro >= 0);
    assert_true(vu_client_dma_map(c, 0x100000, 0x1000, ro, 0, RW) < 0);
    assert_true(vu_client_dma_map(c, 0x100000, 0x1000, ro, 0, VU_DMA_MAP_FLAG_WRITE) < 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 0x1000, ro, 0, VU_DMA_MAP_FLAG_READ), 0);
    /* the device can read, not write */
    char b[4];
    assert_int_equal(hv_sim_dma_read(t->hv, 0x100000, b, sizeof(b)), 0);
    assert_int_equal(hv_sim_dma_write(t->hv, 0x100000, "x", 1), -EPERM);
    vu_client_close(c);
    th_wait_closed(t, 1);
    close(ro);
    close(mfd);
    assert_int_equal(tu_count_fds(), base);
}

/* Ranges beyond the object's end: refused before anything is mapped. */
static void test_dma_map_beyond_object(void **state)
{
    struct th *t = *state;
    int base = tu_count_fds();
    struct vu_client *c = th_connect(t, true);
    int mfd = th_memfd(MiB);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 0x1000, mfd, MiB, RW), -EINVAL);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 0x2000, mfd, MiB - 0x1000, RW), -EINVAL);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 0x1000, mfd, 4 * MiB, RW), -EINVAL);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 2 * MiB, mfd, 0, RW), -EINVAL);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 0x1000, mfd, UINT64_MAX - 0xfff, RW),
                     -EINVAL);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);

    /* mapped, then the client shrinks the object: the bridge never touches
     * the memory itself, a new map is checked against the new size, and
     * everything is released on unmap */
    assert_int_equal(vu_client_dma_map(c, 0x100000, MiB, mfd, 0, RW), 0);
    assert_int_equal(ftruncate(mfd, 0x1000), 0);
    assert_int_equal(vu_client_dma_map(c, 0x400000, 0x2000, mfd, 0, RW), -EINVAL);
    assert_int_equal(vu_client_dma_map(c, 0x400000, 0x1000, mfd, 0, RW), 0);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);
    assert_int_equal(vu_client_dma_unmap(c, 0, 0, VU_DMA_UNMAP_FLAG_ALL), 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    vu_client_close(c);
    th_wait_closed(t, 1);
    close(mfd);
    assert_int_equal(tu_count_fds(), base);
}

/* ---- fd floods --------------------------------------------------------------- */

/* 16 fds on every message of a command that takes none, and on SET_IRQS
 * with fds that are not eventfds: every one is closed by the bridge. */
static void test_fd_flood(void **state)
{
    struct th *t = *state;
    int base = tu_count_fds();
    struct vu_client *c = th_connect(t, true);
    int fds[16];
    for (int i = 0; i < 16; i++)
        fds[i] = th_eventfd();
    struct vu_device_info req = { .argsz = sizeof(req) };
    for (int i = 0; i < 300; i++)
        assert_int_equal(th_call(c, VU_CMD_DEVICE_GET_INFO, 0, &req, sizeof(req), fds, 16,
                                 NULL), -EINVAL);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    int notev[16];
    for (int i = 0; i < 16; i++)
        notev[i] = p[i & 1];
    for (int i = 0; i < 50; i++)
        assert_true(vu_client_set_irqs(c, VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER,
                                       VU_PCI_MSI_IRQ_INDEX, 0, 1, notev, 1, NULL) < 0);
    assert_int_equal(hv_sim_stats_of(t->hv).open_irq_fds, 0);
    vu_client_close(c);
    th_wait_closed(t, 1);
    for (int i = 0; i < 16; i++)
        close(fds[i]);
    close(p[0]);
    close(p[1]);
    assert_int_equal(tu_count_fds(), base);
}

/* ---- a client that never reads its replies ---------------------------------- */

static void test_client_never_reads(void **state)
{
    struct th *t = *state;
    int base = tu_count_fds();
    struct vu_client *c = th_connect(t, true);
    int fd = vu_client_fd(c);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    /* posted 64 KiB reads of BAR0, never a reply taken */
    struct {
        struct vu_hdr h;
        struct vu_region_access a;
    } rd = {
        .h = { .cmd = VU_CMD_REGION_READ, .msg_size = sizeof(rd) },
        .a = { .offset = 0, .region = VU_PCI_BAR0_REGION_INDEX, .count = 64u << 10 },
    };
    int fl = fcntl(fd, F_GETFL);
    assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
    for (int i = 0; i < 4096; i++) {
        rd.h.msg_id = (uint16_t)i;
        if (send(fd, &rd, sizeof(rd), MSG_NOSIGNAL) != (ssize_t)sizeof(rd))
            break;   /* the bridge stopped reading too, or dropped us */
    }
    /* the bridge gives up on the client after --io-timeout and stays free */
    th_wait_closed(t, 1);
    struct vu_client *c2 = th_connect(t, true);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c2, &di), 0);
    vu_client_close(c2);
    vu_client_close(c);
    th_wait_closed(t, 2);
    assert_int_equal(tu_count_fds(), base);
}

/* ---- log flooding --------------------------------------------------------------- */

/* Attack: replies the bridge never asked for, as fast as the socket takes
 * them. They are counted with the errors, so at most BR_MAX_LOGGED_ERRORS
 * (20) reach the warning level. */
static void test_unsolicited_replies_rate_limited(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    enum br_log_level lvl = br_log_get_level();
    br_log_set_level(BR_LOG_WARN);
    struct capture cap;
    capture_start(&cap);
    struct vu_hdr h = { .cmd = VU_CMD_DMA_READ, .msg_size = VU_HDR_SIZE,
                        .flags = VU_F_TYPE_REPLY };
    for (int i = 0; i < 200; i++) {
        h.msg_id = (uint16_t)i;
        assert_int_equal(vu_client_raw(c, &h, sizeof(h), NULL, 0, false, NULL), 0);
    }
    struct vu_device_info di;   /* answered after all of them */
    assert_int_equal(vu_client_get_info(c, &di), 0);
    unsigned n = capture_stop(&cap, "unsolicited reply");
    br_log_set_level(lvl);
    assert_true(n >= 1);
    assert_true(n <= 20);
    vu_client_close(c);
    th_wait_closed(t, 1);
}

/* ---- the bridge out of fds ----------------------------------------------------- */

/* Attack: the client makes the bridge hold fds until accept() fails with
 * EMFILE, then a second client connects. The listener stays readable; the
 * loop must not spin on it (one warning, not one per turn), and once the
 * first client is gone the second is served. */
static void test_accept_emfile_no_spin(void **state)
{
    struct th *t = *state;
    int base = tu_count_fds();
    struct vu_client *c = th_connect(t, true);
    enum br_log_level lvl = br_log_get_level();
    br_log_set_level(BR_LOG_WARN);
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);

    struct capture cap;
    capture_start(&cap);
    /* no fd number free but one (for the second client's socket): cap at
     * the highest open fd, fill the holes below it, then allow one more */
    int maxfd = 0;
    for (int fd = 0; fd < 65536; fd++)
        if (tu_fd_is_open(fd))
            maxfd = fd;
    struct rlimit low = { .rlim_cur = (rlim_t)maxfd + 1, .rlim_max = old.rlim_max };
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fill[256];
    size_t nfill = 0;
    while (nfill < 256 && (fill[nfill] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        nfill++;
    assert_true(nfill < 256);
    low.rlim_cur = (rlim_t)maxfd + 2;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int s2 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s2 >= 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", t->path);
    assert_int_equal(connect(s2, (struct sockaddr *)&sa, sizeof(sa)), 0);
    /* the bridge stays responsive to its client meanwhile */
    for (int i = 0; i < 50; i++) {
        struct vu_device_info di;
        assert_int_equal(vu_client_get_info(c, &di), 0);
        struct timespec ts = { 0, 2000000 };
        nanosleep(&ts, NULL);
    }
    /* the first client leaves, which frees fds: the waiting one is taken
     * (and served) */
    vu_client_close(c);
    th_wait_closed(t, 1);
    th_wait_accepted(t, 2);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    for (size_t i = 0; i < nfill; i++)
        close(fill[i]);
    unsigned n = capture_stop(&cap, "accept:");
    br_log_set_level(lvl);
    assert_true(n >= 1);
    assert_true(n <= 2);

    struct vu_client *c2 = NULL;
    struct vub_err err;
    assert_int_equal(vu_client_from_fd(s2, &c2, &err), 0);
    vu_client_set_timeout(c2, 10000);
    assert_int_equal(vu_client_negotiate(c2, NULL, NULL), 0);
    vu_client_close(c2);
    th_wait_closed(t, 2);
    assert_int_equal(tu_count_fds(), base);
}

/* ---- regions ------------------------------------------------------------------ */

static void test_region_edges(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    uint8_t b[8];
    /* an unused BAR (size 0): nothing inside it but the empty access */
    assert_int_equal(vu_client_region_read(c, 1, 0, b, 1), -EINVAL);
    assert_int_equal(vu_client_region_read(c, 1, 0, b, 0), 0);
    /* VGA (no info from the kernel) and beyond the last region */
    assert_int_equal(vu_client_region_read(c, VU_PCI_VGA_REGION_INDEX, 0, b, 0), -EINVAL);
    assert_int_equal(vu_client_region_read(c, 9, 0, b, 1), -EINVAL);
    assert_int_equal(vu_client_region_read(c, UINT32_MAX, 0, b, 1), -EINVAL);
    /* the last bytes of config space, and one past */
    assert_int_equal(vu_client_region_read(c, VU_PCI_CONFIG_REGION_INDEX, 0xffc, b, 4), 4);
    assert_int_equal(vu_client_region_read(c, VU_PCI_CONFIG_REGION_INDEX, 0xffd, b, 4), -EINVAL);
    assert_int_equal(vu_client_region_read(c, VU_PCI_CONFIG_REGION_INDEX, UINT64_MAX - 1, b, 1),
                     -EINVAL);
    /* WRITE_MULTI: the second entry crosses the end of config space; the
     * first is done, the reply is an error */
    struct vu_write_multi_entry w[2] = {
        { .offset = 0x40, .region = VU_PCI_CONFIG_REGION_INDEX, .count = 1, .data = { 0x5a } },
        { .offset = 0xffe, .region = VU_PCI_CONFIG_REGION_INDEX, .count = 4 },
    };
    assert_int_equal(vu_client_region_write_multi(c, w, 2, false), -EINVAL);
    vu_client_close(c);
    th_wait_closed(t, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dma_map_not_memory, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_dma_map_read_only_fd, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_dma_map_beyond_object, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_fd_flood, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_client_never_reads, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_unsolicited_replies_rate_limited, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_accept_emfile_no_spin, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_region_edges, setup, th_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
