/* SPDX-License-Identifier: MIT */
/* Issue 13, item 1: a client that has left cannot touch the device. Client A
 * takes BAR0's region fd, maps it, hands both (or only the mapping) to a
 * process of its own and disconnects; client B connects and writes a secret
 * into BAR0. Whatever the policy, A's process must not read it: under
 * --stale-holders kill it is gone before B's session, under refuse B is
 * refused (with a log line naming A's process) until it is gone.
 * On the landed code (a dup of the bridge's own device fd, nobody looking)
 * A's process reads B's secret. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "log.h"

#define SECRET_OFF 0x1000u   /* plain memory in the sim's BAR0 (no register) */
#define SECRET     0x5ec7e7b0u

/* A's process that kept the file: answers each byte on `cmd` with what it
 * reads at SECRET_OFF through its mapping and (if kept) its fd. */
struct keeper {
    pid_t pid;
    int cmd, ans;   /* our ends */
    bool reaped;
};

struct answer {
    uint32_t via_map, via_fd;
};

static void keeper_main(int cmd, int ans, volatile uint32_t *map, int fd)
{
    char c;
    while (read(cmd, &c, 1) == 1) {
        struct answer a = { .via_map = map[0], .via_fd = 0 };
        if (fd >= 0 && pread(fd, &a.via_fd, 4, (off_t)SECRET_OFF) != 4)
            a.via_fd = 0;
        if (write(ans, &a, sizeof(a)) != (ssize_t)sizeof(a))
            _exit(2);
    }
    _exit(0);
}

/* Client A: negotiate, take BAR0's fd, map the page with the secret's
 * offset, fork the keeper (it keeps the mapping, and the fd if keep_fd;
 * nothing else of ours), disconnect. */
static struct keeper client_a_leaves(struct th *t, unsigned closed_before, bool keep_fd)
{
    struct vu_client *a = th_connect(t, true);
    struct vu_client_region r;
    assert_int_equal(vu_client_get_region_info(a, 0, 0, &r), 0);
    assert_true(r.info.flags & VU_REGION_INFO_FLAG_MMAP);
    assert_true(r.fd >= 0);
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd,
                   (off_t)(r.info.offset + SECRET_OFF));
    assert_true(m != MAP_FAILED);

    int cmdp[2], ansp[2];
    assert_int_equal(pipe2(cmdp, O_CLOEXEC), 0);
    assert_int_equal(pipe2(ansp, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlives a failed test */
        /* Only async-signal-safe calls here (the bridge runs in a thread of
         * the parent). Close every fd but the pipes and the kept one: what
         * the keeper holds is exactly what A chose to keep. */
        for (int fd = 3; fd < 4096; fd++)
            if (fd != cmdp[0] && fd != ansp[1] && !(keep_fd && fd == r.fd))
                close(fd);
        keeper_main(cmdp[0], ansp[1], m, keep_fd ? r.fd : -1);
    }
    close(cmdp[0]);
    close(ansp[1]);
    close(r.fd);
    munmap(m, 4096);
    vu_client_close(a);
    th_wait_closed(t, closed_before + 1);
    return (struct keeper){ .pid = pid, .cmd = cmdp[1], .ans = ansp[0] };
}

/* What the keeper reads now; false if it is gone. */
static bool keeper_reads(struct keeper *k, struct answer *out)
{
    char c = 'r';
    if (write(k->cmd, &c, 1) != 1)
        return false;   /* EPIPE: it is dead (SIGPIPE is ignored by the harness) */
    struct pollfd p = { .fd = k->ans, .events = POLLIN };
    if (poll(&p, 1, 10000) != 1)
        fail_msg("the keeper did not answer");
    return read(k->ans, out, sizeof(*out)) == (ssize_t)sizeof(*out);
}

/* Wait (guard 10 s) for the keeper to have died; its wait status. */
static int keeper_wait_dead(struct keeper *k)
{
    for (int i = 0; i < 10000; i++) {
        int st;
        pid_t r = waitpid(k->pid, &st, WNOHANG);
        if (r == k->pid) {
            k->reaped = true;
            return st;
        }
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    fail_msg("pid %d still alive", (int)k->pid);
    return -1;
}

static void keeper_end(struct keeper *k)
{
    if (!k->reaped) {
        kill(k->pid, SIGKILL);
        keeper_wait_dead(k);
    }
    close(k->cmd);
    close(k->ans);
}

/* Capture what the bridge logs (stderr) between begin and end. */
struct logcap {
    int saved, fd;
};

static struct logcap log_begin(void)
{
    struct logcap l;
    fflush(stderr);
    l.saved = dup(2);
    l.fd = memfd_create("log", MFD_CLOEXEC);
    assert_true(l.saved >= 0 && l.fd >= 0);
    dup2(l.fd, 2);
    br_log_set_level(BR_LOG_WARN);
    return l;
}

static char *log_end(struct logcap *l)
{
    fflush(stderr);
    dup2(l->saved, 2);
    close(l->saved);
    off_t n = lseek(l->fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)n + 1);
    if (n > 0 && pread(l->fd, buf, (size_t)n, 0) != n)
        buf[0] = '\0';
    close(l->fd);
    /* Show it too, for whoever reads the test's output. */
    fputs(buf, stderr);
    return buf;
}

static void policy_kill(struct th *t) { t->cfg.stale_holders = BR_STALE_KILL; }

static int setup_refuse(void **state)
{
    *state = th_new(false, NULL);
    return 0;
}

static int setup_kill(void **state)
{
    *state = th_new(false, policy_kill);
    return 0;
}

/* B, once connected: writes the secret, reads it back. */
static void client_b_writes_secret(struct vu_client *b)
{
    uint32_t v = SECRET, back = 0;
    assert_int_equal(vu_client_region_write(b, 0, SECRET_OFF, &v, 4, false), 4);
    assert_int_equal(vu_client_region_read(b, 0, SECRET_OFF, &back, 4), 4);
    assert_int_equal(back, SECRET);
}

static void keeper_learns_nothing(struct keeper *k)
{
    struct answer a;
    if (keeper_reads(k, &a)) {
        assert_int_not_equal(a.via_map, SECRET);
        assert_int_not_equal(a.via_fd, SECRET);
    }
}

static void kill_policy(void **state, bool keep_fd)
{
    struct th *t = *state;
    struct logcap l = log_begin();
    struct keeper k = client_a_leaves(t, 0, keep_fd);
    char *log = log_end(&l);
    /* The holder was killed before the session's end was complete. */
    int st = keeper_wait_dead(&k);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    char want[64];
    snprintf(want, sizeof(want), "killing pid %d ", (int)k.pid);
    assert_non_null(strstr(log, want));
    free(log);

    struct vu_client *b = th_connect(t, true);
    client_b_writes_secret(b);
    keeper_learns_nothing(&k);
    vu_client_close(b);
    keeper_end(&k);
}

static void test_kill_fd_and_mapping(void **state) { kill_policy(state, true); }
static void test_kill_mapping_only(void **state) { kill_policy(state, false); }

static void refuse_policy(void **state, bool keep_fd)
{
    struct th *t = *state;
    struct keeper k = client_a_leaves(t, 0, keep_fd);

    /* B comes while A's process holds the file: refused, and told why. */
    struct logcap l = log_begin();
    struct vu_client *b = NULL;
    struct vub_err err = { "" };
    assert_int_equal(vu_client_connect(t->path, &b, &err), 0);
    vu_client_set_timeout(b, 10000);
    int r = vu_client_negotiate(b, NULL, NULL);
    if (r < 0)
        th_wait_refused(t, 1);
    char *log = log_end(&l);
    if (r == 0)
        client_b_writes_secret(b);   /* the landed code gets here */
    keeper_learns_nothing(&k);
    assert_true(r < 0);
    vu_client_close(b);
    char want[96];
    snprintf(want, sizeof(want), "pid %d uid %u (", (int)k.pid, (unsigned)getuid());
    assert_non_null(strstr(log, "refusing client pid"));
    assert_non_null(strstr(log, want));
    assert_non_null(strstr(log, keep_fd ? "still holds fd " : "still holds a mapping at 0x"));
    free(log);

    /* Again at once: refused on the last search's result (the holders it
     * found are looked at, not every process). */
    assert_int_equal(vu_client_connect(t->path, &b, &err), 0);
    vu_client_set_timeout(b, 10000);
    assert_true(vu_client_negotiate(b, NULL, NULL) < 0);
    th_wait_refused(t, 2);
    vu_client_close(b);

    /* Still alive: the keeper was left alone. Once it is gone the next
     * client gets the device at once, with nothing of A's left to see it. */
    struct answer a;
    assert_true(keeper_reads(&k, &a));
    keeper_end(&k);
    b = th_connect(t, true);
    client_b_writes_secret(b);
    vu_client_close(b);
    th_wait_closed(t, 2);
}

static void test_refuse_fd_and_mapping(void **state) { refuse_policy(state, true); }
static void test_refuse_mapping_only(void **state) { refuse_policy(state, false); }

/* A client that closed and unmapped everything leaves nothing behind: the
 * next client is served at once, under the default policy. */
static void test_clean_client_leaves_nothing(void **state)
{
    struct th *t = *state;
    for (unsigned i = 0; i < 3; i++) {
        struct vu_client *a = th_connect(t, true);
        struct vu_client_region r;
        assert_int_equal(vu_client_get_region_info(a, 0, 0, &r), 0);
        assert_true(r.fd >= 0);
        /* Each session's file is a new open file. */
        void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, r.fd, (off_t)r.info.offset);
        assert_true(m != MAP_FAILED);
        munmap(m, 4096);
        close(r.fd);
        vu_client_close(a);
        th_wait_closed(t, i + 1);
        assert_null(t->dev->retired);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill_fd_and_mapping, setup_kill, th_teardown),
        cmocka_unit_test_setup_teardown(test_kill_mapping_only, setup_kill, th_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_fd_and_mapping, setup_refuse, th_teardown),
        cmocka_unit_test_setup_teardown(test_refuse_mapping_only, setup_refuse, th_teardown),
        cmocka_unit_test_setup_teardown(test_clean_client_leaves_nothing, setup_refuse,
                                        th_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
