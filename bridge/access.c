/* SPDX-License-Identifier: MIT */
/* access.c - socket ownership, peer credentials, privilege drop (access.h). */
#include "access.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

#define MAX_GROUPS_TOTAL 65536u   /* the kernel's NGROUPS_MAX */

__attribute__((format(printf, 3, 4)))
static int fail(struct acc_err *err, int errnum, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return -errnum;
}

/* ---- the listening socket -------------------------------------------------------- */

/* The directory part of path into dir ("/" for "/x"). */
static void parent_of(const char *path, char *dir, size_t sz)
{
    snprintf(dir, sz, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
}

/* mkdir -p for the socket's directory (0755, owned by whoever we are). */
static int make_parents(const char *dir, struct acc_err *err)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", dir);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                return fail(err, errno, "cannot create directory %s: %s", buf, strerror(errno));
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return 0;
}

/* Between bind() and chmod() the path is used by name: refuse a directory
 * in which someone else could swap the file (writable by others and not
 * sticky, or owned by another non-root user). */
static int check_parent(const char *dir, struct acc_err *err)
{
    struct stat st;
    if (stat(dir, &st) < 0)
        return fail(err, errno, "cannot stat %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fail(err, ENOTDIR, "%s is not a directory", dir);
    if (st.st_uid != 0 && st.st_uid != geteuid())
        return fail(err, EPERM, "socket directory %s belongs to uid %u; it must belong to root "
                                "or to the bridge", dir, (unsigned)st.st_uid);
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
        return fail(err, EPERM, "socket directory %s is writable by others (mode %04o) and not "
                                "sticky", dir, (unsigned)(st.st_mode & 07777));
    return 0;
}

/* An existing file at path: remove it if it is a socket nobody listens on. */
static int clear_stale(const char *path, struct acc_err *err)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return fail(err, errno, "cannot stat %s: %s", path, strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return fail(err, EEXIST, "%s exists and is not a socket; not replacing it", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return fail(err, errno, "socket: %s", strerror(errno));
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    close(fd);
    if (r == 0 || e == EAGAIN || e == EINPROGRESS)
        return fail(err, EADDRINUSE, "%s: another process is listening on it", path);
    if (e != ECONNREFUSED)
        return fail(err, e, "cannot probe existing socket %s: %s", path, strerror(e));
    if (unlink(path) < 0 && errno != ENOENT)
        return fail(err, errno, "cannot remove stale socket %s: %s", path, strerror(errno));
    return 0;
}

int acc_listen_unix(const struct acc_sock_opts *o, int *fd_out, struct acc_err *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char dir[sizeof(sa.sun_path)];
    int fd = -1, r;

    *fd_out = -1;
    if (!o->path || o->path[0] != '/')
        return fail(err, EINVAL, "socket path \"%s\" is not absolute", o->path ? o->path : "");
    size_t len = strlen(o->path);
    if (len >= sizeof(sa.sun_path))
        return fail(err, ENAMETOOLONG, "socket path %s is longer than %zu bytes", o->path,
                    sizeof(sa.sun_path) - 1);
    if (o->mode > 0777)
        return fail(err, EINVAL, "socket mode %04o has bits beyond 0777", (unsigned)o->mode);
    memcpy(sa.sun_path, o->path, len + 1);

    parent_of(o->path, dir, sizeof(dir));
    if ((r = make_parents(dir, err)) < 0 || (r = check_parent(dir, err)) < 0 ||
        (r = clear_stale(o->path, err)) < 0)
        return r;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(err, errno, "socket: %s", strerror(errno));

    /* Created owner-only: nobody else can even connect() until chmod below,
     * and nobody at all can before listen(). */
    mode_t old = umask(0177);
    r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    umask(old);
    if (r < 0) {
        r = fail(err, e, "bind %s: %s", o->path, strerror(e));
        goto out_close;
    }
    /* chmod while we still own the file (no CAP_FOWNER needed), then chown
     * (CAP_CHOWN; it keeps the permission bits of a socket). */
    if (chmod(o->path, o->mode) < 0) {
        r = fail(err, errno, "chmod %s to %04o: %s", o->path, (unsigned)o->mode,
                 strerror(errno));
        goto out_unlink;
    }
    if ((o->owner != (uid_t)-1 || o->group != (gid_t)-1) &&
        fchownat(AT_FDCWD, o->path, o->owner, o->group, AT_SYMLINK_NOFOLLOW) < 0) {
        r = fail(err, errno, "chown %s to %d:%d: %s", o->path, (int)o->owner, (int)o->group,
                 strerror(errno));
        goto out_unlink;
    }
    /* Verify what is on disk is our socket with what we asked for. */
    struct stat st, fst;
    if (lstat(o->path, &st) < 0 || fstat(fd, &fst) < 0) {
        r = fail(err, errno, "stat %s: %s", o->path, strerror(errno));
        goto out_unlink;
    }
    if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != o->mode ||
        (o->owner != (uid_t)-1 && st.st_uid != o->owner) ||
        (o->group != (gid_t)-1 && st.st_gid != o->group)) {
        r = fail(err, EIO, "%s does not have the requested owner, group and mode after setting "
                           "them (uid %u gid %u mode %04o)", o->path, (unsigned)st.st_uid,
                 (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777));
        goto out_unlink;
    }
    if (listen(fd, o->backlog > 0 ? o->backlog : 16) < 0) {
        r = fail(err, errno, "listen on %s: %s", o->path, strerror(errno));
        goto out_unlink;
    }
    *fd_out = fd;
    return 0;

out_unlink:
    unlink(o->path);
out_close:
    close(fd);
    return r;
}

/* ---- peers ------------------------------------------------------------------------ */

int acc_peer_get(int fd, struct acc_peer *out)
{
    struct ucred uc;
    socklen_t len = sizeof(uc);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
        return -errno;
    if (len != sizeof(uc))
        return -EIO;
    out->pid = uc.pid;
    out->uid = uc.uid;
    out->gid = uc.gid;
    return 0;
}

static bool in_uids(const struct acc_allow *a, uid_t u)
{
    for (size_t i = 0; i < a->n_uids; i++)
        if (a->uids[i] == u)
            return true;
    return false;
}

static bool in_gids(const struct acc_allow *a, gid_t g)
{
    for (size_t i = 0; i < a->n_gids; i++)
        if (a->gids[i] == g)
            return true;
    return false;
}

/* 1 if one of the peer's supplementary groups is allowed, 0 if none, -errno. */
static int peer_groups_allowed(int fd, const struct acc_allow *a)
{
    gid_t small[ACC_MAX_PEER_GROUPS];
    gid_t *g = small;
    socklen_t len = sizeof(small);
    int r;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
        if (errno == ENOPROTOOPT)
            return 0;   /* kernel without SO_PEERGROUPS: primary gid only */
        if (errno != ERANGE || len > MAX_GROUPS_TOTAL * sizeof(gid_t))
            return -errno;
        g = malloc(len);
        if (!g)
            return -ENOMEM;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) {
            r = -errno;
            goto out;
        }
    }
    r = 0;
    for (size_t i = 0; i < len / sizeof(gid_t); i++)
        if (in_gids(a, g[i])) {
            r = 1;
            break;
        }
out:
    if (g != small)
        free(g);
    return r;
}

int acc_peer_check(int fd, const struct acc_allow *allow, struct acc_peer *peer,
                   struct acc_err *err)
{
    struct acc_peer p;
    int r = acc_peer_get(fd, &p);
    if (r < 0)
        return fail(err, -r, "cannot read peer credentials: %s", strerror(-r));
    if (peer)
        *peer = p;
    if (!allow || (allow->n_uids == 0 && allow->n_gids == 0))
        return 1;
    if (in_uids(allow, p.uid) || in_gids(allow, p.gid))
        return 1;
    if (allow->n_gids) {
        r = peer_groups_allowed(fd, allow);
        if (r < 0)
            return fail(err, -r, "cannot read groups of peer pid %d uid %u: %s", (int)p.pid,
                        (unsigned)p.uid, strerror(-r));
        if (r > 0)
            return 1;
    }
    fail(err, EPERM, "peer pid %d uid %u gid %u is not in the allow-list", (int)p.pid,
         (unsigned)p.uid, (unsigned)p.gid);
    return 0;
}

/* ---- privileges ---------------------------------------------------------------------- */

static int caps_left(bool *any)
{
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof(d));
    if (syscall(SYS_capget, &h, d) < 0)
        return -errno;
    *any = d[0].effective || d[1].effective || d[0].permitted || d[1].permitted;
    return 0;
}

int acc_drop_privileges(uid_t uid, gid_t gid, struct acc_err *err)
{
    if (uid == 0 || uid == (uid_t)-1 || gid == (gid_t)-1)
        return fail(err, EINVAL, "refusing to drop privileges to uid %d gid %d", (int)uid,
                    (int)gid);
    if (setgroups(0, NULL) < 0)
        return fail(err, errno, "setgroups: %s", strerror(errno));
    if (setresgid(gid, gid, gid) < 0)
        return fail(err, errno, "setresgid(%u): %s", (unsigned)gid, strerror(errno));
    if (setresuid(uid, uid, uid) < 0)
        return fail(err, errno, "setresuid(%u): %s", (unsigned)uid, strerror(errno));

    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
        return fail(err, EIO, "cannot read back ids: %s", strerror(errno));
    if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid)
        return fail(err, EIO, "ids did not stick: uid %u/%u/%u gid %u/%u/%u", (unsigned)ru,
                    (unsigned)eu, (unsigned)su, (unsigned)rg, (unsigned)eg, (unsigned)sg);
    int ng = getgroups(0, NULL);
    if (ng != 0)
        return fail(err, EIO, "%d supplementary groups remain", ng);
    if (setuid(0) == 0 || seteuid(0) == 0)
        return fail(err, EIO, "could get root back after dropping to uid %u", (unsigned)uid);
    bool any = true;
    int r = caps_left(&any);
    if (r < 0)
        return fail(err, -r, "capget: %s", strerror(-r));
    if (any)
        return fail(err, EIO, "capabilities remain after dropping to uid %u", (unsigned)uid);
    return 0;
}

long long acc_memlock_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0)
        return 0;
    if (rl.rlim_cur == RLIM_INFINITY)
        return -1;
    return (long long)rl.rlim_cur;
}
