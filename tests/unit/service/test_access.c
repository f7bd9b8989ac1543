/* SPDX-License-Identifier: MIT */
/* Socket owner/group/mode, peer credentials over real sockets with other
 * uids, and the privilege drop. Needs root (to be other users); skips
 * otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "access.h"
#include "testutil.h"

#define NOBODY 65534u
#define XGROUP 4242u   /* a supplementary group no one has */

static char g_dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/vub-acc-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    /* other users must be able to reach sockets in it */
    return chmod(g_dir, 0755);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void need_root(void)
{
    if (geteuid() != 0) {
        print_message("SKIP: needs root to create sockets for other users and to connect "
                      "as another uid\n");
        skip();
    }
}

static void sock_path(char *out, size_t sz, const char *name)
{
    snprintf(out, sz, "%s/%s", g_dir, name);
}

static int connect_to(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* ---- the socket file -------------------------------------------------------------- */

/* acc_listen_unix for tests that only want the fd (the directory fd is
 * released; the file stays). */
static int listen_at(const struct acc_sock_opts *o, int *fd, struct vub_err *err)
{
    struct acc_sock s;
    int r = acc_listen_unix(o, &s, err);
    *fd = r == 0 ? s.fd : -1;
    if (r == 0)
        acc_sock_release(&s);
    return r;
}

static void test_socket_owner_mode(void **state)
{
    (void)state;
    need_root();
    char path[128];
    sock_path(path, sizeof(path), "a.sock");
    struct acc_sock_opts o = { .path = path, .owner = NOBODY, .group = XGROUP, .mode = 0660 };
    struct vub_err err = { { 0 } };
    mode_t old = umask(022);
    int fd = -1;
    int fds = tu_count_fds();
    assert_int_equal(listen_at(&o, &fd, &err), 0);
    assert_true(tu_fd_is_open(fd));
    assert_int_equal(umask(old), 022);   /* restored */

    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_uid, NOBODY);
    assert_int_equal(st.st_gid, XGROUP);
    assert_int_equal(st.st_mode & 07777, 0660);

    /* it listens */
    int c = connect_to(path);
    assert_true(c >= 0);
    close(c);
    close(fd);
    assert_int_equal(tu_count_fds(), fds);

    /* owner-only, kept owner: the creator's ids */
    o.owner = (uid_t)-1;
    o.group = (gid_t)-1;
    o.mode = 0600;
    assert_int_equal(listen_at(&o, &fd, &err), 0);   /* stale file replaced */
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_uid, geteuid());
    assert_int_equal(st.st_gid, getegid());
    assert_int_equal(st.st_mode & 07777, 0600);
    close(fd);
    unlink(path);
}

/* The unit gives the daemon CAP_CHOWN but not CAP_FOWNER or
 * CAP_DAC_OVERRIDE: creating a socket for another owner must work so. */
static void test_socket_with_only_cap_chown(void **state)
{
    (void)state;
    need_root();
    char path[128];
    sock_path(path, sizeof(path), "capchown.sock");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2];
        memset(d, 0, sizeof(d));
        d[0].effective = d[0].permitted = 1u << CAP_CHOWN;
        if (syscall(SYS_capset, &h, d) < 0)
            _exit(2);
        struct acc_sock_opts o = { .path = path, .owner = NOBODY, .group = XGROUP,
                                   .mode = 0660 };
        struct vub_err e = { { 0 } };
        int fd;
        _exit(listen_at(&o, &fd, &e) == 0 ? 0 : 3);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    struct stat sb;
    assert_int_equal(lstat(path, &sb), 0);
    assert_int_equal(sb.st_uid, NOBODY);
    assert_int_equal(sb.st_mode & 07777, 0660);
    unlink(path);
}

static void test_socket_refusals(void **state)
{
    (void)state;
    char path[128];
    struct vub_err err = { { 0 } };
    int fd = -1, fd2 = -1;
    struct acc_sock_opts o = { .owner = (uid_t)-1, .group = (gid_t)-1, .mode = 0600 };

    o.path = "relative.sock";
    assert_int_equal(listen_at(&o, &fd, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not absolute"));

    char longp[200];
    memset(longp, 'a', sizeof(longp));
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    o.path = longp;
    assert_int_equal(listen_at(&o, &fd, &err), -ENAMETOOLONG);

    sock_path(path, sizeof(path), "b.sock");
    o.path = path;
    o.mode = 04600;
    assert_int_equal(listen_at(&o, &fd, &err), -EINVAL);
    o.mode = 0600;

    /* someone listening: not stolen */
    assert_int_equal(listen_at(&o, &fd, &err), 0);
    assert_int_equal(listen_at(&o, &fd2, &err), -EADDRINUSE);
    assert_int_equal(fd2, -1);
    assert_non_null(strstr(err.msg, "another process is listening"));
    close(fd);

    /* not a socket: never removed */
    sock_path(path, sizeof(path), "file");
    int f = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    assert_true(f >= 0);
    close(f);
    o.path = path;
    assert_int_equal(listen_at(&o, &fd, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "not a socket"));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));

    /* a missing directory is created */
    sock_path(path, sizeof(path), "sub/dir/c.sock");
    o.path = path;
    assert_int_equal(listen_at(&o, &fd, &err), 0);
    close(fd);

    /* a directory others can write to (not sticky) is refused */
    char wdir[128];
    sock_path(wdir, sizeof(wdir), "open");
    assert_int_equal(mkdir(wdir, 0755), 0);
    assert_int_equal(chmod(wdir, 0777), 0);
    sock_path(path, sizeof(path), "open/d.sock");
    assert_int_equal(listen_at(&o, &fd, &err), -EPERM);
    assert_non_null(strstr(err.msg, "writable by others"));
    /* ... unless sticky, like /tmp */
    assert_int_equal(chmod(wdir, 01777), 0);
    assert_int_equal(listen_at(&o, &fd, &err), 0);
    close(fd);
}


/* Each refusal of the walk from "/" (acc_listen_unix step 1), with nothing
 * created where it was refused. */
static void test_socket_path_refusals(void **state)
{
    (void)state;
    need_root();
    char path[160], d[160];
    struct vub_err err = { { 0 } };
    int fd = -1;
    struct acc_sock_opts o = { .path = path, .owner = (uid_t)-1, .group = (gid_t)-1,
                               .mode = 0600 };

    /* a symlink on the way, even to a good directory */
    snprintf(d, sizeof(d), "%s/real", g_dir);
    assert_int_equal(mkdir(d, 0755), 0);
    snprintf(d, sizeof(d), "%s/link", g_dir);
    assert_int_equal(symlink("real", d), 0);
    snprintf(path, sizeof(path), "%s/link/x.sock", g_dir);
    assert_int_equal(listen_at(&o, &fd, &err), -ELOOP);
    assert_non_null(strstr(err.msg, "is a symlink"));
    snprintf(path, sizeof(path), "%s/real/x.sock", g_dir);
    assert_int_equal(access(path, F_OK), -1);

    /* ".." and a name that is no file name */
    snprintf(path, sizeof(path), "%s/real/../y.sock", g_dir);
    assert_int_equal(listen_at(&o, &fd, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "\"..\""));
    snprintf(path, sizeof(path), "%s/real/", g_dir);
    assert_int_equal(listen_at(&o, &fd, &err), -EINVAL);

    /* a directory of another user, even one that is not writable now:
     * its owner can chmod it and swap what is inside */
    snprintf(d, sizeof(d), "%s/theirs", g_dir);
    assert_int_equal(mkdir(d, 0755), 0);
    assert_int_equal(chown(d, NOBODY, NOBODY), 0);
    snprintf(path, sizeof(path), "%s/theirs/x.sock", g_dir);
    assert_int_equal(listen_at(&o, &fd, &err), -EPERM);
    assert_non_null(strstr(err.msg, "belongs to uid 65534"));
    /* ... also higher up than the immediate parent, and not created below */
    snprintf(d, sizeof(d), "%s/theirs/mine", g_dir);
    assert_int_equal(mkdir(d, 0755), 0);
    snprintf(path, sizeof(path), "%s/theirs/mine/x.sock", g_dir);
    assert_int_equal(listen_at(&o, &fd, &err), -EPERM);
    snprintf(path, sizeof(path), "%s/theirs/new/x.sock", g_dir);
    assert_int_equal(listen_at(&o, &fd, &err), -EPERM);
    snprintf(d, sizeof(d), "%s/theirs/new", g_dir);
    assert_int_equal(access(d, F_OK), -1);

    /* group-writable (not sticky) */
    snprintf(d, sizeof(d), "%s/grp", g_dir);
    assert_int_equal(mkdir(d, 0755), 0);
    assert_int_equal(chmod(d, 0775), 0);
    snprintf(path, sizeof(path), "%s/grp/x.sock", g_dir);
    assert_int_equal(listen_at(&o, &fd, &err), -EPERM);
    assert_non_null(strstr(err.msg, "writable by others"));
    /* sticky and world-writable but not root's (a user's own "tmp") */
    snprintf(d, sizeof(d), "%s/utmp", g_dir);
    assert_int_equal(mkdir(d, 0755), 0);
    assert_int_equal(chmod(d, 01777), 0);
    assert_int_equal(chown(d, NOBODY, NOBODY), 0);
    snprintf(path, sizeof(path), "%s/utmp/x.sock", g_dir);
    assert_int_equal(listen_at(&o, &fd, &err), -EPERM);
    /* a file where a directory should be */
    snprintf(d, sizeof(d), "%s/afile", g_dir);
    int f = open(d, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    assert_true(f >= 0);
    close(f);
    snprintf(path, sizeof(path), "%s/afile/x.sock", g_dir);
    assert_int_equal(listen_at(&o, &fd, &err), -ENOTDIR);
    /* a symlink where the socket should be: not a socket, never replaced */
    snprintf(path, sizeof(path), "%s/real/l.sock", g_dir);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    assert_int_equal(listen_at(&o, &fd, &err), -EEXIST);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
}

/* What acc_listen_unix leaves: the socket under its name with the mode
 * asked for whatever the umask, no private directory; a running listener
 * is not disturbed by the liveness probe of a second one (nothing in its
 * backlog); the file is removed at the end only while it is ours. */
static void test_socket_by_fd_lifecycle(void **state)
{
    (void)state;
    need_root();
    char dir[160], path[200];
    snprintf(dir, sizeof(dir), "%s/life", g_dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(path, sizeof(path), "%s/a.sock", dir);
    struct acc_sock_opts o = { .path = path, .owner = (uid_t)-1, .group = (gid_t)-1,
                               .mode = 0666 };
    struct vub_err err = { { 0 } };
    struct acc_sock s, s2;
    mode_t old = umask(0777);
    assert_int_equal(acc_listen_unix(&o, &s, &err), 0);
    umask(old);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0666);
    assert_int_equal(st.st_ino, s.ino);
    char cmd[300], out[64] = "";
    snprintf(cmd, sizeof(cmd), "ls -A %s", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    pclose(p);
    assert_string_equal(out, "a.sock\n");

    /* a second one finds it live; the first one's backlog stays empty */
    assert_int_equal(acc_listen_unix(&o, &s2, &err), -EADDRINUSE);
    assert_int_equal(s2.fd, -1);
    assert_int_equal(s2.dir_fd, -1);
    int fl = fcntl(s.fd, F_GETFL);
    assert_int_equal(fcntl(s.fd, F_SETFL, fl | O_NONBLOCK), 0);
    assert_int_equal(accept(s.fd, NULL, NULL), -1);
    assert_int_equal(errno, EAGAIN);

    /* someone put another file at the name: not ours, not removed */
    char other[200];
    snprintf(other, sizeof(other), "%s/other", dir);
    int f = open(other, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(f >= 0);
    close(f);
    assert_int_equal(rename(other, path), 0);
    assert_int_equal(acc_sock_unlink(&s), 0);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(unlink(path), 0);
    close(s.fd);
    acc_sock_release(&s);

    /* ours: removed, once; even after the directory was renamed away */
    assert_int_equal(acc_listen_unix(&o, &s, &err), 0);
    char moved[200];
    snprintf(moved, sizeof(moved), "%s/life-moved", g_dir);
    assert_int_equal(rename(dir, moved), 0);
    assert_int_equal(mkdir(dir, 0755), 0);    /* a new one at the old name */
    int fake = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    assert_true(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fake, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(acc_sock_unlink(&s), 1);
    assert_int_equal(acc_sock_unlink(&s), 0);
    assert_int_equal(lstat(path, &st), 0);     /* the other directory's is untouched */
    char gone[220];
    snprintf(gone, sizeof(gone), "%s/a.sock", moved);
    assert_int_equal(lstat(gone, &st), -1);
    close(fake);
    close(s.fd);
    acc_sock_release(&s);
}

/* ---- peers ------------------------------------------------------------------------- */

/* Fork a child that becomes uid/gid (with one optional supplementary group),
 * connects to path, waits for the parent to close, and exits 0 if connect
 * worked, 10 + errno otherwise. */
static pid_t client_as(const char *path, uid_t uid, gid_t gid, gid_t extra)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        gid_t g[1] = { extra };
        if (setgroups(extra != (gid_t)-1 ? 1 : 0, g) < 0 || setresgid(gid, gid, gid) < 0 ||
            setresuid(uid, uid, uid) < 0)
            _exit(2);
        int fd = connect_to(path);
        if (fd < 0)
            _exit(10 + (-fd > 100 ? 100 : -fd));
        char b;
        while (read(fd, &b, 1) > 0) {
        }
        _exit(0);
    }
    return pid;
}

static int wait_child(pid_t pid)
{
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* Accept one connection from a child running as uid/gid/extra and check it
 * against allow; returns acc_peer_check's result. */
static int check_child(const char *path, int lfd, uid_t uid, gid_t gid, gid_t extra,
                       const struct acc_allow *allow, struct acc_peer *peer, struct vub_err *err)
{
    pid_t pid = client_as(path, uid, gid, extra);
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(c >= 0);
    int r = acc_peer_check(c, allow, peer, err);
    close(c);
    assert_int_equal(wait_child(pid), 0);
    if (peer)
        assert_int_equal(peer->pid, pid);
    return r;
}

static void test_peer_allow_list(void **state)
{
    (void)state;
    need_root();
    char path[128];
    sock_path(path, sizeof(path), "peer.sock");
    struct acc_sock_opts o = { .path = path, .owner = 0, .group = 0, .mode = 0666 };
    struct vub_err err = { { 0 } };
    int lfd;
    assert_int_equal(listen_at(&o, &lfd, &err), 0);
    struct acc_peer peer;

    /* empty list: anyone the mode lets in */
    struct acc_allow any = { 0 };
    assert_int_equal(check_child(path, lfd, NOBODY, NOBODY, (gid_t)-1, &any, &peer, &err), 1);
    assert_int_equal(peer.uid, NOBODY);
    assert_int_equal(peer.gid, NOBODY);

    /* a uid list without the peer: refused, and the message says who */
    uid_t uids[] = { 0, 1000 };
    struct acc_allow by_uid = { .n_uids = 2, .uids = uids };
    memset(&err, 0, sizeof(err));
    assert_int_equal(check_child(path, lfd, NOBODY, NOBODY, (gid_t)-1, &by_uid, &peer, &err),
                     0);
    assert_non_null(strstr(err.msg, "uid 65534"));
    assert_non_null(strstr(err.msg, "not in the allow-list"));
    char pidtxt[32];
    snprintf(pidtxt, sizeof(pidtxt), "pid %d ", (int)peer.pid);
    assert_non_null(strstr(err.msg, pidtxt));

    /* the same list lets root (uid 0) in */
    pid_t me_c = -1;
    int c = connect_to(path);
    assert_true(c >= 0);
    int a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_int_equal(acc_peer_check(a, &by_uid, &peer, &err), 1);
    assert_int_equal(peer.pid, getpid());
    close(a);
    close(c);
    (void)me_c;

    /* listed uid */
    uid_t uids2[] = { 1000, NOBODY };
    struct acc_allow by_uid2 = { .n_uids = 2, .uids = uids2 };
    assert_int_equal(check_child(path, lfd, NOBODY, NOBODY, (gid_t)-1, &by_uid2, NULL, &err), 1);

    /* listed primary gid */
    gid_t gids[] = { 7, NOBODY };
    struct acc_allow by_gid = { .n_uids = 1, .uids = uids, .n_gids = 2, .gids = gids };
    assert_int_equal(check_child(path, lfd, 1234, NOBODY, (gid_t)-1, &by_gid, NULL, &err), 1);

    /* listed supplementary gid (SO_PEERGROUPS) */
    gid_t xg[] = { XGROUP };
    struct acc_allow by_sup = { .n_gids = 1, .gids = xg };
    assert_int_equal(check_child(path, lfd, 1234, 1234, XGROUP, &by_sup, NULL, &err), 1);
    assert_int_equal(check_child(path, lfd, 1234, 1234, (gid_t)-1, &by_sup, NULL, &err), 0);
    assert_non_null(strstr(err.msg, "uid 1234 gid 1234"));

    close(lfd);
    unlink(path);
}

/* The file mode is enforced by the kernel before any check of ours. */
static void test_socket_mode_keeps_others_out(void **state)
{
    (void)state;
    need_root();
    char path[128];
    sock_path(path, sizeof(path), "mode.sock");
    struct acc_sock_opts o = { .path = path, .owner = 0, .group = XGROUP, .mode = 0660 };
    struct vub_err err = { { 0 } };
    int lfd;
    assert_int_equal(listen_at(&o, &lfd, &err), 0);

    /* not owner, not in the group: connect() itself fails with EACCES */
    pid_t pid = client_as(path, NOBODY, NOBODY, (gid_t)-1);
    assert_int_equal(wait_child(pid), 10 + EACCES);

    /* in the group through a supplementary group: connects */
    pid = client_as(path, NOBODY, NOBODY, XGROUP);
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(c >= 0);
    close(c);
    assert_int_equal(wait_child(pid), 0);
    close(lfd);
    unlink(path);
}

/* ---- privileges ------------------------------------------------------------------------ */

static void test_drop_privileges(void **state)
{
    (void)state;
    need_root();
    struct vub_err err = { { 0 } };
    assert_int_equal(acc_drop_privileges(0, 0, &err), -EINVAL);
    assert_int_equal(getuid(), 0);   /* nothing changed */

    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* a root-only file opened before the drop stays usable after it */
        int keep = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        gid_t g[2] = { 0, XGROUP };
        if (keep < 0 || setgroups(2, g) < 0)
            _exit(2);
        struct vub_err e = { { 0 } };
        if (acc_drop_privileges(NOBODY, NOBODY, &e) != 0) {
            ssize_t w = write(pfd[1], e.msg, strlen(e.msg));
            (void)w;
            _exit(3);
        }
        uid_t r, ef, s;
        gid_t gr, ge, gs;
        if (getresuid(&r, &ef, &s) || r != NOBODY || ef != NOBODY || s != NOBODY)
            _exit(4);
        if (getresgid(&gr, &ge, &gs) || gr != NOBODY || ge != NOBODY || gs != NOBODY)
            _exit(5);
        if (getgroups(0, NULL) != 0)
            _exit(6);
        if (setuid(0) == 0 || errno != EPERM)
            _exit(7);
        char b[8];
        if (read(keep, b, sizeof(b)) != (ssize_t)sizeof(b))
            _exit(8);
        /* a root-only path is now out of reach */
        if (open("/root/.vub-nonexistent", O_CREAT | O_WRONLY, 0600) >= 0 || errno != EACCES)
            _exit(9);
        _exit(0);
    }
    close(pfd[1]);
    char msg[256] = "";
    ssize_t n = read(pfd[0], msg, sizeof(msg) - 1);
    if (n > 0)
        msg[n] = '\0';
    close(pfd[0]);
    int st = wait_child(pid);
    if (st != 0)
        fail_msg("child exited %d: %s", st, msg);
}

static void test_drop_privileges_unprivileged_fails(void **state)
{
    (void)state;
    need_root();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setresgid(NOBODY, NOBODY, NOBODY) < 0 || setresuid(NOBODY, NOBODY, NOBODY) < 0)
            _exit(2);
        struct vub_err e = { { 0 } };
        int r = acc_drop_privileges(1234, 1234, &e);
        _exit(r == -EPERM && strstr(e.msg, "setgroups") ? 0 : 3);
    }
    assert_int_equal(wait_child(pid), 0);
}

static void test_memlock_limit(void **state)
{
    (void)state;
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &old), 0);
    struct rlimit rl = { .rlim_cur = 64 * 4096, .rlim_max = old.rlim_max };
    if (old.rlim_max != RLIM_INFINITY && old.rlim_max < rl.rlim_cur)
        rl.rlim_cur = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
    assert_int_equal(acc_memlock_limit(), (long long)rl.rlim_cur);
    if (old.rlim_max == RLIM_INFINITY) {
        rl.rlim_cur = RLIM_INFINITY;
        assert_int_equal(setrlimit(RLIMIT_MEMLOCK, &rl), 0);
        assert_int_equal(acc_memlock_limit(), -1);
    }
    assert_int_equal(setrlimit(RLIMIT_MEMLOCK, &old), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socket_owner_mode),
        cmocka_unit_test(test_socket_with_only_cap_chown),
        cmocka_unit_test(test_socket_refusals),
        cmocka_unit_test(test_socket_path_refusals),
        cmocka_unit_test(test_socket_by_fd_lifecycle),
        cmocka_unit_test(test_peer_allow_list),
        cmocka_unit_test(test_socket_mode_keeps_others_out),
        cmocka_unit_test(test_drop_privileges),
        cmocka_unit_test(test_drop_privileges_unprivileged_fails),
        cmocka_unit_test(test_memlock_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
