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
#include <unistd.h>

#include <cmocka.h>

#include "vu_client.h"

#define RW (VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE)

/* Run the bridge with args; its stdout into out (NUL-terminated). Returns the
 * exit status (or 128 + signal). */
static int run_capture(const char *const *args, char *out, size_t outsz)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
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

static void test_help_version_usage(void **state)
{
    static char out[16384];
    const char *help[] = { BRIDGE_EXE, "--help", NULL };
    assert_int_equal(run_capture(help, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "--device"));
    assert_non_null(strstr(out, "serve a simulated device, for tests and demos"));
    assert_non_null(strstr(out, "--no-mmap"));
    assert_non_null(strstr(out, "--sparse-msix"));
    assert_non_null(strstr(out, "list [--json]"));
    const char *ver[] = { BRIDGE_EXE, "--version", NULL };
    assert_int_equal(run_capture(ver, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "vfio-user-bridge "));
    const char *bad[] = { BRIDGE_EXE, "--frobnicate", NULL };
    assert_int_equal(run_capture(bad, out, sizeof(out)), 2);
    const char *nodev[] = { BRIDGE_EXE, "--socket", "/tmp/x", NULL };
    assert_int_equal(run_capture(nodev, out, sizeof(out)), 2);
}

static void test_list_json(void **state)
{
    static char out[1 << 20];
    const char *args[] = { BRIDGE_EXE, "list", "--json", NULL };
    int st = run_capture(args, out, sizeof(out));
    if (st != 0)
        skip();      /* no PCI bus visible here */
    json_object *j = json_tokener_parse(out);
    assert_non_null(j);
    assert_true(json_object_is_type(j, json_type_array));
    for (size_t i = 0; i < json_object_array_length(j); i++) {
        json_object *e = json_object_array_get_idx(j, i), *v;
        assert_true(json_object_object_get_ex(e, "address", &v));
        assert_int_equal(strlen(json_object_get_string(v)), 12);
        assert_true(json_object_object_get_ex(e, "exportable", &v));
        assert_true(json_object_object_get_ex(e, "vendor_id", &v));
    }
    json_object_put(j);
}

/* Start the daemon on a sim with $NOTIFY_SOCKET; wait for READY=1. */
static pid_t start_daemon(const char *dir, char *sock, size_t socksz)
{
    char notify[128];
    snprintf(sock, socksz, "%s/bridge.sock", dir);
    snprintf(notify, sizeof(notify), "%s/notify", dir);
    int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(nfd >= 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, notify);
    assert_int_equal(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("NOTIFY_SOCKET", notify, 1);
        int devnull = open("/dev/null", O_WRONLY);
        if (!getenv("VUB_TEST_LOG"))
            dup2(devnull, 2);
        execl(BRIDGE_EXE, BRIDGE_EXE, "--sim=nvme-like", "--socket", sock, "--log-level",
              getenv("VUB_TEST_LOG") ? getenv("VUB_TEST_LOG") : "info", (char *)NULL);
        _exit(127);
    }
    struct pollfd p = { .fd = nfd, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 20000), 1);     /* guard only */
    char msg[64] = "";
    ssize_t n = recv(nfd, msg, sizeof(msg) - 1, 0);
    assert_true(n > 0);
    msg[n] = '\0';
    assert_string_equal(msg, "READY=1");
    close(nfd);
    unlink(notify);
    /* ready means listening */
    struct stat st;
    assert_int_equal(stat(sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    return pid;
}

static void stop_with(int sig)
{
    char dir[] = "/tmp/vub-daemon-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sock[128];
    pid_t pid = start_daemon(dir, sock, sizeof(sock));

    struct vu_client *c = NULL;
    assert_int_equal(vu_client_connect(sock, &c, NULL), 0);
    assert_int_equal(vu_client_negotiate(c, NULL, NULL), 0);
    int mfd = memfd_create("dma", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 1 << 20), 0);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 1 << 20, mfd, 0, RW), 0);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);

    assert_int_equal(kill(pid, sig), 0);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* the socket file is gone and the client sees the end */
    assert_int_equal(access(sock, F_OK), -1);
    assert_true(vu_client_get_info(c, &di) < 0);
    vu_client_close(c);
    close(mfd);
    rmdir(dir);
}

static void test_sigterm(void **state) { stop_with(SIGTERM); }
static void test_sigint(void **state) { stop_with(SIGINT); }

static void test_second_daemon_on_live_socket(void **state)
{
    char dir[] = "/tmp/vub-daemon-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sock[128];
    pid_t pid = start_daemon(dir, sock, sizeof(sock));
    static char out[4096];
    const char *args[] = { BRIDGE_EXE, "--sim", "--socket", sock, NULL };
    assert_int_equal(run_capture(args, out, sizeof(out)), 1);
    /* the first one still serves */
    struct vu_client *c = NULL;
    assert_int_equal(vu_client_connect(sock, &c, NULL), 0);
    assert_int_equal(vu_client_negotiate(c, NULL, NULL), 0);
    vu_client_close(c);
    kill(pid, SIGTERM);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    rmdir(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_version_usage),
        cmocka_unit_test(test_list_json),
        cmocka_unit_test(test_sigterm),
        cmocka_unit_test(test_sigint),
        cmocka_unit_test(test_second_daemon_on_live_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
