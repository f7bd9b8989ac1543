/* SPDX-License-Identifier: MIT */
/* The vfio-user-bridge executable: CLI, readiness, SIGTERM/SIGINT. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <linux/fs.h>

#include <cmocka.h>

#include "edu_regs.h"
#include "fake_sysfs.h"
#include "vu_client.h"

#define RW (VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE)

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Run the bridge with args; its stdout (which = 1) or stderr (2) into out
 * (NUL-terminated), the other to /dev/null. Returns the exit status (or
 * 128 + signal). */
static int run_capture_fd(const char *const *args, int which, char *out, size_t outsz)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(which == 1 ? p[1] : devnull, 1);
        dup2(which == 1 ? devnull : p[1], 2);
        execv(BRIDGE_EXE, (char *const *)args);
        _exit(127);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t n;
    while ((n = read(p[0], out + got, outsz - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run_capture(const char *const *args, char *out, size_t outsz)
{
    return run_capture_fd(args, 1, out, outsz);
}

/* --iommu: shown by --help; iommufd where the kernel has none is refused
 * with the reason before any device is looked at, never silently served by
 * type1. */
static void test_iommu_option(void **state)
{
    (void)state;
    static char out[16384];
    const char *help[] = { BRIDGE_EXE, "--help", NULL };
    assert_int_equal(run_capture(help, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "--iommu KIND"));
    const char *fd[] = { BRIDGE_EXE, "--device", "0000:00:1f.6", "--iommu", "iommufd",
                         "--socket", "/tmp/vub-iommufd-never.sock", NULL };
    assert_int_equal(run_capture_fd(fd, 2, out, sizeof(out)), 1);
    if (access("/dev/iommu", F_OK) == 0) {
        /* a kernel with iommufd: the device is looked for */
        assert_non_null(strstr(out, "no PCI function 0000:00:1f.6"));
    } else {
        assert_non_null(strstr(out, "--iommu iommufd: this kernel has no iommufd (no /dev/iommu)"));
        assert_null(strstr(out, "no PCI function"));
    }
    const char *t1[] = { BRIDGE_EXE, "--device", "0000:00:1f.6", "--iommu", "type1",
                         "--socket", "/tmp/vub-iommufd-never.sock", NULL };
    assert_int_equal(run_capture_fd(t1, 2, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "no PCI function 0000:00:1f.6"));
    const char *bad[] = { BRIDGE_EXE, "--sim", "--iommu", "vfio", "--socket", "/tmp/x", NULL };
    assert_int_equal(run_capture_fd(bad, 2, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "--iommu vfio: unknown back end (auto, type1, iommufd, "
                                "iommufd-group)"));
    /* the group file attached to an iommufd: refused where there is none */
    const char *fg[] = { BRIDGE_EXE, "--device", "0000:00:1f.6", "--iommu", "iommufd-group",
                         "--socket", "/tmp/vub-iommufd-never.sock", NULL };
    assert_int_equal(run_capture_fd(fg, 2, out, sizeof(out)), 1);
    if (access("/dev/iommu", F_OK) == 0)
        assert_non_null(strstr(out, "no PCI function 0000:00:1f.6"));
    else
        assert_non_null(strstr(out, "--iommu iommufd-group: this kernel has no iommufd (no "
                                    "/dev/iommu); use --iommu type1"));
    const char *sg[] = { BRIDGE_EXE, "--sim", "--iommu", "iommufd-group", "--socket", "/tmp/x",
                         NULL };
    assert_int_equal(run_capture_fd(sg, 2, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "--iommu iommufd-group: the simulated device has a simulated "
                                "type1 container only"));
}

static void test_help_version_usage(void **state)
{
    static char out[16384];
    const char *help[] = { BRIDGE_EXE, "--help", NULL };
    assert_int_equal(run_capture(help, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "--device"));
    assert_non_null(strstr(out, "serve a simulated device, for tests and demos"));
    assert_non_null(strstr(out, "--no-mmap"));
    assert_non_null(strstr(out, "--sparse-msix"));
    assert_non_null(strstr(out, "--handshake-timeout MS"));
    assert_non_null(strstr(out, "list [--json]"));
    assert_non_null(strstr(out, "status --socket PATH"));
    const char *ver[] = { BRIDGE_EXE, "--version", NULL };
    assert_int_equal(run_capture(ver, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "vfio-user-bridge "));
    const char *bad[] = { BRIDGE_EXE, "--frobnicate", NULL };
    assert_int_equal(run_capture(bad, out, sizeof(out)), 2);
    const char *nodev[] = { BRIDGE_EXE, "--socket", "/tmp/x", NULL };
    assert_int_equal(run_capture(nodev, out, sizeof(out)), 2);
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        fail_msg("no \"%s\" in %s", key, json_object_to_json_string(o));
    return json_object_is_type(v, json_type_null) ? NULL : json_object_get_string(v);
}

/* `list` on a fake tree: every function, sorted, with what sysfs says. */
static void test_list_json(void **state)
{
    static char out[1 << 20];
    struct fake_sysfs fs;
    assert_int_equal(fake_sysfs_init(&fs), 0);
    fs_add_driver(&fs, "nvme");
    fs_add_dev(&fs, "10000:e1:00.0", "vfio-pci", 5, 0x8086, 0x0a54, 0x010802);
    fs_add_dev(&fs, "0000:00:04.0", "nvme", 4, 0x1b36, 0x0010, 0x010802);
    fs_add_dev(&fs, "0000:00:03.0", "vfio-pci", 3, 0x1234, 0x11e8, 0x00ff00);
    /* a VFIO cdev (a device number: iommufd's), and 00:03.0's entry of a
     * kernel without VFIO_DEVICE_CDEV (no number: no cdev) */
    char cd[PATH_MAX];
    fs_path(&fs, cd, sizeof(cd), "devices/pci0000:00/10000:e1:00.0/vfio-dev/vfio7");
    fs_mkdirs(cd);
    fs_path(&fs, cd, sizeof(cd), "devices/pci0000:00/10000:e1:00.0/vfio-dev/vfio7/dev");
    fs_write_file(cd, "511:7\n");
    fs_path(&fs, cd, sizeof(cd), "devices/pci0000:00/0000:00:03.0/vfio-dev/vfio0");
    fs_mkdirs(cd);
    const char *args[] = { BRIDGE_EXE, "list", "--json", "--sysfs", fs.root, NULL };
    assert_int_equal(run_capture(args, out, sizeof(out)), 0);
    json_object *j = json_tokener_parse(out);
    if (!j || !json_object_is_type(j, json_type_array))
        fail_msg("not a JSON array: %s", out);
    assert_int_equal(json_object_array_length(j), 3);

    json_object *e = json_object_array_get_idx(j, 0);
    assert_string_equal(jstr(e, "address"), "0000:00:03.0");
    assert_string_equal(jstr(e, "vendor_id"), "1234");
    assert_string_equal(jstr(e, "device_id"), "11e8");
    assert_string_equal(jstr(e, "driver"), "vfio-pci");
    assert_string_equal(jstr(e, "iommu_group"), "3");
    assert_string_equal(jstr(e, "exportable"), "true");
    assert_null(jstr(e, "reason"));
    assert_null(jstr(e, "vfio_cdev"));
    assert_string_equal(jstr(e, "iommu"), "type1");

    e = json_object_array_get_idx(j, 1);
    assert_string_equal(jstr(e, "address"), "0000:00:04.0");
    assert_string_equal(jstr(e, "driver"), "nvme");
    assert_string_equal(jstr(e, "exportable"), "false");
    const char *why = jstr(e, "reason");
    assert_non_null(why);
    if (!strstr(why, "0000:00:04.0") || !strstr(why, "nvme"))
        fail_msg("reason \"%s\" names neither the function nor its driver", why);

    e = json_object_array_get_idx(j, 2);
    assert_string_equal(jstr(e, "address"), "10000:e1:00.0");   /* a VMD domain */
    assert_string_equal(jstr(e, "vendor_id"), "8086");
    assert_string_equal(jstr(e, "device_id"), "0a54");
    assert_string_equal(jstr(e, "exportable"), "true");
    assert_string_equal(jstr(e, "vfio_cdev"), "vfio7");
    assert_string_equal(jstr(e, "iommu"), "iommufd");
    json_object_put(j);

    /* the text form says the same */
    const char *text[] = { BRIDGE_EXE, "list", "--sysfs", fs.root, NULL };
    assert_int_equal(run_capture(text, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "0000:00:03.0  1234:11e8"));
    assert_non_null(strstr(out, "driver vfio-pci, IOMMU group 3: exportable (type1)"));
    assert_non_null(strstr(out, "driver vfio-pci, IOMMU group 5, VFIO cdev vfio7: exportable "
                                "(iommufd)"));
    assert_non_null(strstr(out, "driver nvme, IOMMU group 4: not exportable: "));

    /* a tree without a PCI bus: an error, not a crash and not an empty list */
    fake_sysfs_destroy(&fs);
    assert_int_equal(run_capture(args, out, sizeof(out)), 1);
    assert_string_equal(out, "");
}

/* ---- a daemon per test, killed in the teardown whatever happened ---------------- */

#define MAX_EXTRA_ARGS 8

struct dfix {
    pid_t pid;             /* the daemon under test, 0 = none */
    char dir[64];
    char sock[128];
    char log[128];         /* its stderr */
};

static int fix_setup(void **state)
{
    struct dfix *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/vub-daemon-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->sock, sizeof(f->sock), "%s/bridge.sock", f->dir);
    snprintf(f->log, sizeof(f->log), "%s/log", f->dir);
    *state = f;
    return 0;
}

static void reap(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

static int fix_teardown(void **state)
{
    struct dfix *f = *state;
    if (f->pid > 0)
        reap(f->pid);
    if (getenv("VUB_TEST_LOG")) {
        char cmd[160];
        snprintf(cmd, sizeof(cmd), "cat %s >&2", f->log);
        if (system(cmd) != 0) {
        }
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    int r = system(cmd);
    free(f);
    return r == 0 ? 0 : -1;
}

/* Exec the bridge on --sim=nvme-like at `sock` with $NOTIFY_SOCKET and the
 * extra args, stderr appended to `log`. Returns its pid, or -1 if it
 * exited before READY=1 (*status then holds the exit status). */
static pid_t spawn_daemon(const char *dir, const char *sock, const char *log,
                          const char *const *extra, int *status)
{
    char notify[128];
    static unsigned seq;
    snprintf(notify, sizeof(notify), "%s/notify%u", dir, seq++);
    int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(nfd >= 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, notify);
    assert_int_equal(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0);

    /* sock NULL: the extra args name the sockets (several functions) */
    const char *argv[16] = { BRIDGE_EXE, "--sim=nvme-like", "--log-level", "info", "--socket",
                             sock };
    size_t n = sock ? 6 : 4;
    for (size_t i = 0; extra && extra[i] && i < MAX_EXTRA_ARGS; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("NOTIFY_SOCKET", notify, 1);
        int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (lfd >= 0)
            dup2(lfd, 2);
        execv(BRIDGE_EXE, (char *const *)argv);
        _exit(127);
    }
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    assert_true(pidfd >= 0);
    struct pollfd p[2] = { { .fd = nfd, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
    assert_true(poll(p, 2, 30000) >= 1);     /* guard only */
    pid_t ret = pid;
    if (p[0].revents & POLLIN) {
        char msg[64] = "";
        ssize_t got = recv(nfd, msg, sizeof(msg) - 1, 0);
        assert_true(got > 0);
        msg[got] = '\0';
        assert_string_equal(msg, "READY=1");
    } else {
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        ret = -1;
    }
    close(pidfd);
    close(nfd);
    unlink(notify);
    return ret;
}

/* Start the fixture's daemon; READY=1 means listening. */
static void start_daemon(struct dfix *f, const char *const *extra)
{
    int st = 0;
    f->pid = spawn_daemon(f->dir, f->sock, f->log, extra, &st);
    if (f->pid < 0)
        fail_msg("the bridge exited with status %d before READY=1", st);
    struct stat sb;
    assert_int_equal(stat(f->sock, &sb), 0);
    assert_true(S_ISSOCK(sb.st_mode));
}

/* Stop the fixture's daemon with sig; returns its exit status. */
static int stop_daemon(struct dfix *f, int sig)
{
    assert_int_equal(kill(f->pid, sig), 0);
    int st;
    assert_int_equal(waitpid(f->pid, &st, 0), f->pid);
    f->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Lines of the daemon's log containing `needle`. */
static unsigned log_count(const struct dfix *f, const char *needle)
{
    FILE *fp = fopen(f->log, "r");
    if (!fp)
        return 0;
    char line[1024];
    unsigned n = 0;
    while (fgets(line, sizeof(line), fp))
        if (strstr(line, needle))
            n++;
    fclose(fp);
    return n;
}

static struct vu_client *client(const struct dfix *f, bool negotiate)
{
    struct vu_client *c = NULL;
    struct vub_err err = { "" };
    if (vu_client_connect(f->sock, &c, &err) < 0)
        fail_msg("connect %s: %s", f->sock, err.msg);
    vu_client_set_timeout(c, 20000);
    if (negotiate && vu_client_negotiate(c, NULL, NULL) < 0)
        fail_msg("negotiate: %s", vu_client_error(c));
    return c;
}

static void stop_with(void **state, int sig)
{
    struct dfix *f = *state;
    assert_int_equal(access(f->sock, F_OK), -1);
    start_daemon(f, NULL);
    struct stat sb;
    assert_int_equal(stat(f->sock, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    struct vu_client *c = client(f, true);
    int mfd = memfd_create("dma", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 1 << 20), 0);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 1 << 20, mfd, 0, RW), 0);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);

    assert_int_equal(stop_daemon(f, sig), 0);
    /* the socket file is gone and the client sees the end */
    assert_int_equal(access(f->sock, F_OK), -1);
    assert_true(vu_client_get_info(c, &di) < 0);
    vu_client_close(c);
    close(mfd);
}

static void test_sigterm(void **state) { stop_with(state, SIGTERM); }
static void test_sigint(void **state) { stop_with(state, SIGINT); }

/* A second bridge on a live socket exits 1 and leaves the first one alone:
 * its liveness probe never becomes a connection of the first (which would
 * hold the one session slot while a VMM connects), and a client that
 * connects at once is served. Repeated, since it used to be a race. */
static void test_second_daemon_on_live_socket(void **state)
{
    struct dfix *f = *state;
    start_daemon(f, NULL);
    static char out[4096];
    const char *args[] = { BRIDGE_EXE, "--sim", "--socket", f->sock, NULL };
    for (int i = 0; i < 4; i++) {     /* 8 connect/disconnect lines: under the rate limit */
        assert_int_equal(run_capture(args, out, sizeof(out)), 1);
        struct vu_client *c = client(f, true);
        vu_client_close(c);
    }
    /* the first bridge saw exactly our 4 clients, no probe */
    char mine[96];
    snprintf(mine, sizeof(mine), "client pid %d uid %u gid %u connected", (int)getpid(),
             (unsigned)getuid(), (unsigned)getgid());
    assert_int_equal(log_count(f, " connected"), 4);   /* (written before VERSION's reply) */
    assert_int_equal(log_count(f, mine), 4);
    assert_int_equal(log_count(f, "refusing"), 0);
    assert_int_equal(stop_daemon(f, SIGTERM), 0);
}

/* A client that shrinks its memory file after DMA_MAP, then makes the
 * (simulated) device DMA into it: the daemon must not die of SIGBUS. */
static void test_shrunk_memfd_does_not_kill(void **state)
{
    struct dfix *f = *state;
    start_daemon(f, NULL);
    struct vu_client *c = client(f, true);
    int mfd = memfd_create("dma", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 1 << 20), 0);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 1 << 20, mfd, 0, RW), 0);
    assert_int_equal(ftruncate(mfd, 0), 0);
    uint64_t src = EDU_BUF_ADDR, dst = 0x100000, cnt = 4096, cmd = EDU_DMA_START | EDU_DMA_TO_RAM;
    assert_int_equal(vu_client_region_write(c, 0, EDU_DMA_SRC, &src, 8, false), 8);
    assert_int_equal(vu_client_region_write(c, 0, EDU_DMA_DST, &dst, 8, false), 8);
    assert_int_equal(vu_client_region_write(c, 0, EDU_DMA_CNT, &cnt, 8, false), 8);
    assert_int_equal(vu_client_region_write(c, 0, EDU_DMA_CMD, &cmd, 4, false), 4);
    cmd = 1;   /* from RAM */
    assert_int_equal(vu_client_region_write(c, 0, EDU_DMA_SRC, &dst, 8, false), 8);
    assert_int_equal(vu_client_region_write(c, 0, EDU_DMA_DST, &src, 8, false), 8);
    assert_int_equal(vu_client_region_write(c, 0, EDU_DMA_CMD, &cmd, 4, false), 4);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);
    /* and a DMA_MAP of the shrunk range is refused, not a crash */
    assert_true(vu_client_dma_map(c, 0x200000, 1 << 20, mfd, 0, RW) < 0);
    assert_int_equal(vu_client_get_info(c, &di), 0);
    vu_client_close(c);
    close(mfd);
    assert_int_equal(stop_daemon(f, SIGTERM), 0);
    assert_int_equal(access(f->sock, F_OK), -1);
}

/* A connection that never sends a byte is closed after the handshake
 * deadline (and logged), then a real client gets in; a negotiated session
 * may stay idle past it. */
static void test_handshake_deadline(void **state)
{
    struct dfix *f = *state;
    const char *extra[] = { "--handshake-timeout", "300", NULL };
    start_daemon(f, extra);
    int silent = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, f->sock);
    assert_int_equal(connect(silent, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct pollfd p = { .fd = silent, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 30000), 1);      /* guard only: closed by the bridge */
    char b;
    assert_int_equal(read(silent, &b, 1), 0);
    close(silent);
    assert_int_equal(log_count(f, "sent no VERSION within 300 ms"), 1);

    struct vu_client *c = client(f, true);
    struct timespec ts = { .tv_sec = 1, .tv_nsec = 0 };   /* > 3 deadlines */
    nanosleep(&ts, NULL);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);
    vu_client_close(c);
    assert_int_equal(stop_daemon(f, SIGTERM), 0);
}

/* A peer that connects again and again while the device is in use cannot
 * flood the log: a few refusal lines, then one line saying how many were
 * not logged. */
static void test_refusal_log_rate_limited(void **state)
{
    struct dfix *f = *state;
    start_daemon(f, NULL);
    struct vu_client *c = client(f, true);
    enum { N = 300 };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, f->sock);
    for (int i = 0; i < N; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        char b;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        assert_int_equal(poll(&p, 1, 30000), 1);   /* refused: closed by the bridge */
        assert_int_equal(read(fd, &b, 1), 0);
        close(fd);
    }
    /* the summary comes once its interval is over, without another event */
    for (int i = 0; i < 300 && log_count(f, "not logged") == 0; i++) {
        struct timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };
        nanosleep(&ts, NULL);
    }
    unsigned lines = log_count(f, "refusing client");
    assert_true(lines >= 1);
    assert_true(lines < N / 2);
    assert_true(log_count(f, "not logged") >= 1);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);   /* the client never noticed */
    vu_client_close(c);
    assert_int_equal(stop_daemon(f, SIGTERM), 0);
}

/* ---- the socket directory cannot be swapped under a starting daemon ------------- */

struct swapper {
    char a[160], b[160];
    atomic_bool stop;
    unsigned swaps;
};

static void *swap_loop(void *arg)
{
    struct swapper *sw = arg;
    while (!atomic_load(&sw->stop)) {
        if (syscall(SYS_renameat2, AT_FDCWD, sw->a, AT_FDCWD, sw->b, RENAME_EXCHANGE) == 0)
            sw->swaps++;
    }
    return NULL;
}

/* The attack of issue 13: a user owns a directory above the socket's and
 * keeps exchanging the socket's real directory with a symlink to a
 * directory of root's, while the daemon starts with --socket-mode 0666 again
 * and again. Root's 0600 file of the socket's name must stay as it is. With
 * `root_owned` the upper directory is root's (the swap then needs root,
 * but it exercises the by-fd steps instead of the ownership refusal).
 * Bounded: 100 starts or 15 s. */
static void race_socket_dir(struct dfix *f, bool root_owned)
{
    char up[96], victim_dir[96], victim[128], sock[160];
    snprintf(up, sizeof(up), "%s/up", f->dir);
    snprintf(victim_dir, sizeof(victim_dir), "%s/victim", f->dir);
    snprintf(victim, sizeof(victim), "%s/victim/s", f->dir);
    assert_int_equal(mkdir(up, 0755), 0);
    assert_int_equal(mkdir(victim_dir, 0755), 0);
    int vf = open(victim, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(vf >= 0);
    assert_int_equal(write(vf, "secret\n", 7), 7);
    close(vf);
    assert_int_equal(chmod(victim, 0600), 0);

    struct swapper sw = { .swaps = 0 };
    atomic_init(&sw.stop, false);
    snprintf(sw.a, sizeof(sw.a), "%s/d", up);
    snprintf(sw.b, sizeof(sw.b), "%s/e", up);
    assert_int_equal(mkdir(sw.a, 0755), 0);
    assert_int_equal(symlink(victim_dir, sw.b), 0);
    if (!root_owned)
        assert_int_equal(chown(up, 65534, 65534), 0);
    snprintf(sock, sizeof(sock), "%s/d/s", up);

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, swap_loop, &sw), 0);
    const char *extra[] = { "--socket-mode", "0666", NULL };
    uint64_t t0 = now_ms();
    unsigned starts = 0, served = 0;
    bool changed = false;
    for (; starts < 100 && now_ms() - t0 < 15000 && !changed; starts++) {
        int st = 0;
        pid_t pid = spawn_daemon(f->dir, sock, f->log, extra, &st);
        if (pid > 0) {
            served++;
            kill(pid, SIGTERM);
            waitpid(pid, NULL, 0);
        }
        struct stat sb;
        changed = lstat(victim, &sb) < 0 || !S_ISREG(sb.st_mode) ||
                  (sb.st_mode & 07777) != 0600 || sb.st_uid != 0;
    }
    atomic_store(&sw.stop, true);
    pthread_join(th, NULL);
    print_message("%s upper directory: %u starts, %u served, %u swaps\n",
                  root_owned ? "root's" : "a user's", starts, served, sw.swaps);
    if (changed)
        fail_msg("root's 0600 file %s was changed or removed after %u daemon starts", victim,
                 starts);
    assert_true(sw.swaps > 0);
    if (!root_owned)
        assert_int_equal(served, 0);    /* a user's directory on the way: always refused */
}

static void test_socket_dir_swap_race_user_dir(void **state)
{
    if (geteuid() != 0)
        skip();
    race_socket_dir(*state, false);
}

static void test_socket_dir_swap_race_root_dir(void **state)
{
    if (geteuid() != 0)
        skip();
    race_socket_dir(*state, true);
}

/* `status --socket PATH` through the control socket: what the client holds,
 * and nothing once it has unmapped or gone. */
static json_object *status_of(const char *sock)
{
    static char out[1 << 16];
    const char *args[] = { BRIDGE_EXE, "status", "--socket", sock, NULL };
    assert_int_equal(run_capture(args, out, sizeof(out)), 0);
    json_object *j = json_tokener_parse(out);
    assert_non_null(j);
    return j;
}

static json_object *at(json_object *j, const char *k)
{
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(j, k, &v));
    return v;
}

static void test_status(void **state)
{
    struct dfix *f = *state;
    const char *sock = f->sock;
    char ctl[160];
    start_daemon(f, NULL);
    snprintf(ctl, sizeof(ctl), "%s.ctl", sock);
    struct stat st;
    assert_int_equal(stat(ctl, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);

    json_object *j = status_of(sock);
    assert_true(json_object_is_type(at(j, "client"), json_type_null));
    json_object_put(j);

    struct vu_client *c = client(f, true);
    int mfd = memfd_create("dma", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 1 << 20), 0);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 1 << 20, mfd, 0, RW), 0);
    assert_int_equal(vu_client_dma_map(c, 0x200000, 0x1000, mfd, 0, VU_DMA_MAP_FLAG_READ), 0);
    assert_int_equal(vu_client_dma_map(c, 0xc0000, 0x20000, -1, 0, RW), 0);
    assert_int_equal(vu_client_dma_unmap(c, 0x100000, 0x1000, 0), -EINVAL);   /* an error */

    j = status_of(sock);
    json_object *cl = at(j, "client");
    assert_int_equal(json_object_get_int(at(cl, "pid")), getpid());
    assert_int_equal(json_object_get_int(at(cl, "uid")), (int)getuid());
    assert_int_equal(json_object_get_int(at(cl, "errors")), 1);
    assert_true(json_object_get_int(at(cl, "messages")) >= 5);
    json_object *dma = at(cl, "dma");
    assert_int_equal(json_object_get_int(at(dma, "count")), 3);
    assert_int_equal(json_object_get_int64(at(dma, "bytes")), (1 << 20) + 0x1000);
    json_object *rs = at(dma, "ranges");
    assert_int_equal(json_object_array_length(rs), 3);
    json_object *r0 = json_object_array_get_idx(rs, 0), *r2 = json_object_array_get_idx(rs, 2);
    assert_string_equal(json_object_get_string(at(r0, "iova")), "0xc0000");
    assert_string_equal(json_object_get_string(at(r0, "size")), "0x20000");
    assert_false(json_object_get_boolean(at(r0, "iommu")));
    assert_string_equal(json_object_get_string(at(r2, "iova")), "0x200000");
    assert_string_equal(json_object_get_string(at(r2, "dir")), "r");
    assert_true(json_object_get_boolean(at(r2, "iommu")));
    json_object_put(j);

    /* one range unmap takes all three */
    assert_int_equal(vu_client_dma_unmap(c, 0, 0x400000, 0), 0);
    j = status_of(sock);
    dma = at(at(j, "client"), "dma");
    assert_int_equal(json_object_get_int(at(dma, "count")), 0);
    assert_int_equal(json_object_get_int64(at(dma, "bytes")), 0);
    json_object_put(j);

    vu_client_close(c);
    close(mfd);
    for (int i = 0; i < 200; i++) {       /* guard: 10 s */
        j = status_of(sock);
        bool gone = json_object_is_type(at(j, "client"), json_type_null);
        if (gone)
            assert_int_equal(json_object_get_int(at(at(j, "sessions"), "closed")), 1);
        json_object_put(j);
        if (gone)
            break;
        assert_true(i < 199);
        usleep(50000);
    }
    assert_int_equal(stop_daemon(f, SIGTERM), 0);
    assert_int_equal(access(ctl, F_OK), -1);
    /* no daemon: a clear failure */
    static char out[256];
    const char *args[] = { BRIDGE_EXE, "status", "--socket", sock, NULL };
    assert_int_equal(run_capture(args, out, sizeof(out)), 1);
}

/* SIGHUP on --sim: the simulated device lives in the process, so a live
 * re-exec cannot hand it over; the daemon says so and serves on: same
 * process, same connection, the DMA map still there. */
static void test_sighup_sim_refused(void **state)
{
    struct dfix *f = *state;
    start_daemon(f, NULL);
    struct vu_client *c = client(f, true);
    int mfd = memfd_create("ram", MFD_CLOEXEC);
    assert_true(mfd >= 0);
    assert_int_equal(ftruncate(mfd, 1 << 20), 0);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 1 << 20, mfd, 0, RW), 0);
    close(mfd);
    assert_int_equal(kill(f->pid, SIGHUP), 0);
    uint64_t t0 = now_ms();
    while (log_count(f, "SIGHUP: not re-executing") == 0 && now_ms() - t0 < 20000)
        usleep(10000);
    assert_int_equal(log_count(f, "SIGHUP: not re-executing"), 1);
    assert_int_equal(log_count(f, "simulated device"), 1);
    assert_int_equal(kill(f->pid, 0), 0);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);
    assert_int_equal(vu_client_dma_unmap(c, 0x100000, 1 << 20, 0), 0);
    vu_client_close(c);
    assert_int_equal(stop_daemon(f, SIGTERM), 0);
}

/* One daemon, two simulated functions of one group (--device A --socket SA
 * --device B --socket SB): both sockets and status sockets, one VM (this
 * process) on both with the same DMA_MAP, another process refused, SIGHUP
 * refused with the reason, SIGTERM ends both and removes the sockets. */
static void test_group_daemon(void **state)
{
    struct dfix *f = *state;
    char sock_b[160];
    snprintf(sock_b, sizeof(sock_b), "%s/b.sock", f->dir);
    const char *extra[] = { "--device", "01:01.0", "--socket", f->sock, "--device", "01:02.0",
                            "--socket", sock_b, NULL };
    int st = 0;
    f->pid = spawn_daemon(f->dir, NULL, f->log, extra, &st);
    if (f->pid < 0)
        fail_msg("the group daemon exited with status %d before READY=1", st);
    struct stat sb;
    assert_int_equal(stat(sock_b, &sb), 0);
    json_object *ja = status_of(f->sock), *jb = status_of(sock_b);
    assert_string_equal(jstr(ja, "device"), "0000:01:01.0");
    assert_string_equal(jstr(jb, "device"), "0000:01:02.0");
    json_object_put(ja);
    json_object_put(jb);
    assert_int_equal(log_count(f, "function 2 of 2"), 1);

    struct vu_client *a = client(f, true), *b = NULL;
    struct vub_err err = { "" };
    assert_int_equal(vu_client_connect(sock_b, &b, &err), 0);
    vu_client_set_timeout(b, 20000);
    assert_int_equal(vu_client_negotiate(b, NULL, NULL), 0);
    int mfd = memfd_create("ram", MFD_CLOEXEC);
    assert_true(mfd >= 0);
    assert_int_equal(ftruncate(mfd, 1 << 20), 0);
    assert_int_equal(vu_client_dma_map(a, 0x100000, 1 << 20, mfd, 0, RW), 0);
    assert_int_equal(vu_client_dma_map(b, 0x100000, 1 << 20, mfd, 0, RW), 0);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(b, &di), 0);
    vu_client_close(b);
    for (uint64_t t0 = now_ms(); log_count(f, "disconnected") == 0 && now_ms() - t0 < 20000;)
        usleep(10000);
    /* another process on the free function of the busy group: refused */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct vu_client *c = NULL;
        struct vub_err e = { "" };
        if (vu_client_connect(sock_b, &c, &e) < 0)
            _exit(2);
        vu_client_set_timeout(c, 20000);
        _exit(vu_client_negotiate(c, NULL, NULL) < 0 ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(log_count(f, "IOMMU group is in use by pid"), 1);
    /* one line says why, no generic error after it */
    assert_int_equal(log_count(f, "cannot open a session"), 0);

    assert_int_equal(kill(f->pid, SIGHUP), 0);
    uint64_t t0 = now_ms();
    while (log_count(f, "SIGHUP: not re-executing: this daemon serves 2 functions") == 0 &&
           now_ms() - t0 < 20000)
        usleep(10000);
    assert_int_equal(log_count(f, "SIGHUP: not re-executing: this daemon serves 2 functions"), 1);
    assert_int_equal(vu_client_get_info(a, &di), 0);
    vu_client_close(a);
    close(mfd);
    assert_int_equal(stop_daemon(f, SIGTERM), 0);
    assert_int_equal(stat(f->sock, &sb), -1);
    assert_int_equal(stat(sock_b, &sb), -1);
    assert_int_equal(log_count(f, "released 1 DMA maps"), 2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_version_usage),
        cmocka_unit_test(test_iommu_option),
        cmocka_unit_test(test_list_json),
        cmocka_unit_test_setup_teardown(test_sigterm, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_sighup_sim_refused, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_sigint, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_second_daemon_on_live_socket, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_shrunk_memfd_does_not_kill, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_handshake_deadline, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_refusal_log_rate_limited, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_socket_dir_swap_race_user_dir, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_socket_dir_swap_race_root_dir, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_status, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_group_daemon, fix_setup, fix_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
