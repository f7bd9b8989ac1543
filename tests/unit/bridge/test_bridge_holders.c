/* SPDX-License-Identifier: MIT */
/* The holder scanner (bridge/holders.c) against real processes: it must find
 * an open file wherever it went (an fd inherited, an fd received over
 * SCM_RIGHTS by an unrelated process, a thread's own fd table, a mapping
 * whose fd was closed) and nothing else (another file of the same name, an
 * eventfd), and kill only holders. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "holders.h"

#define FILE_SIZE (64u << 10)

static int g_devfd = -1;     /* closed in every child before it does anything */
static int g_fd = -1;        /* what a child keeps (set before fork) */

/* A memfd like the simulator's BAR memory, and a file of it of our own
 * (reopened, as hv_sim's mmap_fd does): the file we look for. */
struct fx {
    int memfd;
    struct br_devfile *f;
};

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof(*x));
    x->memfd = memfd_create("holders-test", MFD_CLOEXEC);
    assert_true(x->memfd >= 0);
    assert_int_equal(ftruncate(x->memfd, FILE_SIZE), 0);
    char p[64];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", x->memfd);
    int fd = open(p, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    struct br_file_range r = { 0, FILE_SIZE, false };
    assert_int_equal(br_devfile_new(&x->f, fd, &r, 1, getpid(), getuid()), 0);
    assert_false(x->f->shared_inode);
    g_devfd = x->f->fd;
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    br_devfile_free(x->f);
    close(x->memfd);
    free(x);
    return 0;
}

/* A child that runs `fn` and then waits to be ended (SIGTERM from reap).
 * Returns once it said it is ready. */
struct child {
    pid_t pid;
};

static void wait_forever(void)
{
    for (;;)
        pause();
}

static struct child spawn(void (*fn)(void *), void *arg)
{
    int ready[2];
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlives a failed test */
        close(ready[0]);
        /* Our reference copy: a child holds only what the test gives it. */
        if (g_devfd >= 0)
            close(g_devfd);
        fn(arg);
        char c = 'R';
        if (write(ready[1], &c, 1) != 1)
            _exit(2);
        wait_forever();
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    return (struct child){ .pid = pid };
}

/* End it (if still alive) and collect it: 0 if it was alive and ended by
 * us, else its wait status. */
static int reap(struct child *c)
{
    kill(c->pid, SIGTERM);
    int st = 0;
    assert_int_equal(waitpid(c->pid, &st, 0), c->pid);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM ? 0 : (st ? st : -1);
}

static int scan_n(struct fx *x, struct br_holders_scan *sc)
{
    assert_int_equal(br_holders_scan(x->f, 0, sc), 0);
    return (int)sc->n;
}

static const struct br_holder *find(const struct br_holders_scan *sc, pid_t pid)
{
    for (size_t i = 0; i < sc->n; i++)
        if (sc->h[i].pid == pid)
            return &sc->h[i];
    return NULL;
}

/* ---- children -------------------------------------------------------------------- */

static void keep_fd(void *arg)
{
    (void)arg;   /* the fd is inherited: CLOEXEC does not matter for fork */
}

static void close_it(void *arg)
{
    (void)arg;
    close(g_fd);
}

/* ---- tests --------------------------------------------------------------------- */

static void test_nobody_holds(void **state)
{
    struct fx *x = *state;
    struct br_holders_scan sc;
    /* We ourselves (the bridge) are never counted, nor our own memfd. */
    assert_int_equal(scan_n(x, &sc), 0);
}

static void test_inherited_fd_found(void **state)
{
    struct fx *x = *state;
    struct br_holders_scan sc;
    int fd = fcntl(x->f->fd, F_DUPFD_CLOEXEC, 0);
    g_fd = fd;
    struct child c = spawn(keep_fd, NULL);
    close(fd);
    assert_int_equal(scan_n(x, &sc), 1);
    const struct br_holder *h = find(&sc, c.pid);
    assert_non_null(h);
    assert_int_equal(h->fd, fd);
    assert_int_equal(h->uid, getuid());
    assert_true(h->comm[0] != '\0');
    assert_int_equal(reap(&c), 0);
    assert_int_equal(scan_n(x, &sc), 0);
}

/* The service manager that keeps the bridge's fds in its fd store holds
 * every device file by design: with it named as the keeper, a scan does
 * not count it; another holder is still found. */
static void test_keeper_not_a_holder(void **state)
{
    struct fx *x = *state;
    struct br_holders_scan sc;
    int fd = fcntl(x->f->fd, F_DUPFD_CLOEXEC, 0);
    g_fd = fd;
    struct child keeper = spawn(keep_fd, NULL);
    struct child other = spawn(keep_fd, NULL);
    close(fd);
    assert_int_equal(scan_n(x, &sc), 2);
    br_holders_set_keeper(keeper.pid);
    assert_int_equal(scan_n(x, &sc), 1);
    assert_non_null(find(&sc, other.pid));
    assert_null(find(&sc, keeper.pid));
    br_holders_set_keeper(0);
    assert_int_equal(scan_n(x, &sc), 2);
    assert_int_equal(reap(&keeper), 0);
    assert_int_equal(reap(&other), 0);
}

/* A process that holds the same memory through another open file (the
 * bridge's own memfd, or another session's file) is not a holder: only the
 * very open file counts. So is a process with an eventfd and a memfd of the
 * same name. */
static void test_other_files_not_found(void **state)
{
    struct fx *x = *state;
    struct br_holders_scan sc;
    g_fd = x->memfd;   /* the same inode, another open file */
    struct child c1 = spawn(keep_fd, NULL);
    int other = memfd_create("holders-test", MFD_CLOEXEC);
    assert_true(other >= 0);
    assert_int_equal(ftruncate(other, 4096), 0);
    int ev = eventfd(0, EFD_CLOEXEC);
    assert_true(ev >= 0);
    g_fd = other;
    struct child c2 = spawn(keep_fd, NULL);
    close(other);
    close(ev);
    assert_int_equal(scan_n(x, &sc), 0);
    assert_int_equal(reap(&c1), 0);
    assert_int_equal(reap(&c2), 0);
}

/* A process that was not there when the file was made and only received it
 * over SCM_RIGHTS. */
struct recv_arg {
    int sock;
};

static void recv_fd(void *arg)
{
    struct recv_arg *a = arg;
    char b;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = &b, .iov_len = 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof(u.buf) };
    if (recvmsg(a->sock, &mh, 0) != 1)
        _exit(4);
    /* keep the received fd open */
}

static void test_fd_passed_over_scm_rights_found(void **state)
{
    struct fx *x = *state;
    struct br_holders_scan sc;
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    /* The child is forked first and blocks in recvmsg; it is ready only
     * after it received. Send from here meanwhile. */
    int ready[2];
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    /* Close our copy of the file in the child before it receives: whatever
     * it holds then came over the socket. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(x->f->fd);
        close(sp[0]);
        struct recv_arg a = { .sock = sp[1] };
        recv_fd(&a);
        char c = 'R';
        if (write(ready[1], &c, 1) != 1)
            _exit(2);
        wait_forever();
    }
    close(sp[1]);
    close(ready[1]);
    assert_int_equal(scan_n(x, &sc), 0);
    char b = 'x';
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct iovec iov = { .iov_base = &b, .iov_len = 1 };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof(u.buf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &x->f->fd, sizeof(int));
    assert_int_equal(sendmsg(sp[0], &mh, 0), 1);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    close(sp[0]);
    assert_int_equal(scan_n(x, &sc), 1);
    const struct br_holder *h = find(&sc, pid);
    assert_non_null(h);
    assert_true(h->fd >= 0);
    assert_false(h->mapped);
    struct child ch = { .pid = pid };
    assert_int_equal(reap(&ch), 0);
}

/* Nothing but a mapping: the child closes every fd of the file. */
static void map_only(void *arg)
{
    (void)arg;
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, g_fd, 4096);
    if (p == MAP_FAILED)
        _exit(3);
    close(g_fd);
}

static void test_mapping_only_found(void **state)
{
    struct fx *x = *state;
    struct br_holders_scan sc;
    g_fd = fcntl(x->f->fd, F_DUPFD_CLOEXEC, 0);
    struct child c = spawn(map_only, NULL);
    close(g_fd);
    assert_int_equal(scan_n(x, &sc), 1);
    const struct br_holder *h = find(&sc, c.pid);
    assert_non_null(h);
    assert_int_equal(h->fd, -1);
    assert_true(h->mapped);
    assert_true(h->map_start != 0);
    assert_int_equal(reap(&c), 0);
    assert_int_equal(scan_n(x, &sc), 0);
}

/* A thread created without CLONE_FILES has an fd table of its own, which
 * /proc/<pid>/fd does not show. */
static int g_thread_fd = -1;
static char g_stack[64 << 10] __attribute__((aligned(16)));

static int thread_fn(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return 0;
}

static void own_table_thread(void *arg)
{
    (void)arg;
    /* The thread's copy of the table has the fd; then the leader drops it. */
    if (clone(thread_fn, g_stack + sizeof(g_stack),
              CLONE_VM | CLONE_THREAD | CLONE_SIGHAND | CLONE_FS, NULL) < 0)
        _exit(5);
    close(g_thread_fd);
}

static void test_fd_in_thread_own_table_found(void **state)
{
    struct fx *x = *state;
    struct br_holders_scan sc;
    g_thread_fd = fcntl(x->f->fd, F_DUPFD_CLOEXEC, 0);
    struct child c = spawn(own_table_thread, NULL);
    close(g_thread_fd);
    assert_int_equal(scan_n(x, &sc), 1);
    const struct br_holder *h = find(&sc, c.pid);
    assert_non_null(h);
    assert_true(h->fd >= 0);
    assert_int_not_equal(h->tid, c.pid);
    assert_int_equal(reap(&c), 0);
}

static void test_kill_ends_holders_only(void **state)
{
    struct fx *x = *state;
    struct br_holders_scan sc;
    g_fd = fcntl(x->f->fd, F_DUPFD_CLOEXEC, 0);
    struct child holder = spawn(keep_fd, NULL);
    struct child innocent = spawn(close_it, NULL);   /* had it, closed it */
    close(g_fd);
    assert_int_equal(scan_n(x, &sc), 1);
    /* A stale entry for the innocent process: the re-check before the
     * signal must spare it. */
    sc.h[sc.n] = sc.h[0];
    sc.h[sc.n].pid = innocent.pid;
    sc.n++;
    assert_int_equal(br_holders_wait(x->f, &sc, true, BR_HOLDERS_KILL_WAIT_MS), 0);
    int st = 0;
    assert_int_equal(waitpid(holder.pid, &st, 0), holder.pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    assert_int_equal(reap(&innocent), 0);
    assert_int_equal(scan_n(x, &sc), 0);
}

/* Without kill the wait only watches: a holder that does not exit is still
 * there at the end. */
static void test_wait_without_kill(void **state)
{
    struct fx *x = *state;
    struct br_holders_scan sc;
    g_fd = fcntl(x->f->fd, F_DUPFD_CLOEXEC, 0);
    struct child c = spawn(keep_fd, NULL);
    close(g_fd);
    assert_int_equal(scan_n(x, &sc), 1);
    assert_int_equal(br_holders_wait(x->f, &sc, false, 100), 1);
    assert_int_equal(reap(&c), 0);
}

/* ---- a shared (anon) inode, like the kernel's "[vfio-device]" ------------------- */

/* io_uring's rings are an mmappable anon-inode file, the closest thing to a
 * VFIO device file an unprivileged test can open. */
static int uring_fd(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    return (int)syscall(SYS_io_uring_setup, 4, &p);
}

static void map_ring(void *arg)
{
    int *fds = arg;   /* two fds of our ring: map through one, close both */
    void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fds[0], 0);
    if (m == MAP_FAILED)
        _exit(3);
    close(fds[0]);
    close(fds[1]);
}

static void test_shared_inode_mapping(void **state)
{
    (void)state;
    int fd = uring_fd();
    if (fd < 0)
        skip();   /* io_uring disabled here */
    char link[128];
    char p[64];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(p, link, sizeof(link) - 1);
    assert_true(n > 0);
    link[n] = '\0';
    if (strncmp(link, "anon_inode:", 11) != 0) {
        close(fd);
        skip();
    }
    int mine = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    struct br_file_range r_in = { 0, 4096, false };
    struct br_file_range r_out = { 1ull << 40, 2ull << 40, false };
    struct br_devfile *in, *out;
    assert_int_equal(br_devfile_new(&in, fd, &r_in, 1, getpid(), 0), 0);
    assert_int_equal(br_devfile_new(&out, mine, &r_out, 1, getpid(), 0), 0);
    assert_true(in->shared_inode);
    g_devfd = -1;

    /* A child maps the ring at offset 0 and closes every fd of it. */
    int fds[2] = { in->fd, out->fd };
    struct child c = spawn(map_ring, fds);
    struct br_holders_scan sc;
    assert_int_equal(br_holders_scan(in, 0, &sc), 0);
    assert_non_null(find(&sc, c.pid));
    assert_true(find(&sc, c.pid)->mapped);
    /* Offset outside the file's ranges: not ours. */
    assert_int_equal(br_holders_scan(out, 0, &sc), 0);
    assert_null(find(&sc, c.pid));
    assert_int_equal(reap(&c), 0);

    /* A child that maps ours but also holds another file of that name: the
     * mapping cannot be attributed and is counted as ambiguous. */
    int other = uring_fd();
    assert_true(other >= 0);
    struct child c2 = spawn(map_ring, fds);
    close(other);
    assert_int_equal(br_holders_scan(in, 0, &sc), 0);
    assert_null(find(&sc, c2.pid));
    assert_true(sc.ambiguous >= 1);
    /* ... unless the offset is one only this device has (a BAR's bus
     * address on older kernels): an exact range counts anyway. */
    in->ranges[0].exact = true;
    assert_int_equal(br_holders_scan(in, 0, &sc), 0);
    assert_non_null(find(&sc, c2.pid));
    assert_true(find(&sc, c2.pid)->mapped);
    assert_int_equal(reap(&c2), 0);

    br_devfile_free(in);
    br_devfile_free(out);
}

static void test_devfile_new_errors(void **state)
{
    (void)state;
    struct br_devfile *f = (struct br_devfile *)1;
    assert_int_equal(br_devfile_new(&f, -1, NULL, 0, 1, 0), -EBADF);
    assert_null(f);
    int fd = eventfd(0, EFD_CLOEXEC);
    struct br_file_range r[BR_HOLDERS_MAX_RANGES + 1];
    memset(r, 0, sizeof(r));
    assert_int_equal(br_devfile_new(&f, fd, r, BR_HOLDERS_MAX_RANGES + 1, 1, 0), -E2BIG);
    /* fd was taken (closed) even on error */
    assert_int_equal(fcntl(fd, F_GETFD), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nobody_holds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inherited_fd_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keeper_not_a_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_files_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_passed_over_scm_rights_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_only_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fd_in_thread_own_table_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_ends_holders_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_without_kill, setup, teardown),
        cmocka_unit_test(test_shared_inode_mapping),
        cmocka_unit_test(test_devfile_new_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
