/* SPDX-License-Identifier: MIT */
/* access.c - socket ownership, peer credentials, privilege drop (access.h). */
#include "access.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
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

/* ---- the listening socket -------------------------------------------------------- */

/* Where a socket file is reached by name below a directory fd: the fd's
 * /proc/self/fd link, which the kernel resolves to that very directory
 * (bind() and connect() take no dirfd). */
static int fd_path(char *out, size_t sz, int dir_fd, const char *name, struct vub_err *err)
{
    int n = snprintf(out, sz, "/proc/self/fd/%d/%s", dir_fd, name);
    if (n < 0 || (size_t)n >= sz)
        return vub_fail(err, -ENAMETOOLONG, "socket name %s is too long", name);
    return 0;
}

/* Whether a directory on the way to the socket can be trusted not to change
 * under us: owned by root or by us, and not writable by anyone else unless
 * it is sticky and root's (like /tmp: others cannot rename or remove what
 * is ours in it). `shown` names it in messages. */
static int check_dir(int fd, const char *shown, struct vub_err *err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return vub_fail(err, -errno, "cannot stat %s: %s", shown, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return vub_fail(err, -ENOTDIR, "%s is not a directory", shown);
    if (st.st_uid != 0 && st.st_uid != geteuid())
        return vub_fail(err, -EPERM, "directory %s on the socket path belongs to uid %u, who could "
                                "move it; it must belong to root or to the bridge", shown,
                    (unsigned)st.st_uid);
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !((st.st_mode & S_ISVTX) && st.st_uid == 0))
        return vub_fail(err, -EPERM, "directory %s on the socket path is writable by others "
                                "(mode %04o) and not sticky and root's", shown,
                    (unsigned)(st.st_mode & 07777));
    return 0;
}

/* Open the directory part of `path` component by component from "/",
 * never following a symlink, creating what is missing (0755), each one
 * checked with check_dir. *dir_fd gets an O_PATH fd of the last one and
 * `name` the last component. */
static int open_parent(const char *path, int *dir_fd, char *name, size_t namesz,
                       struct vub_err *err)
{
    char buf[PATH_MAX], shown[PATH_MAX];
    int cur = -1, r;
    snprintf(buf, sizeof(buf), "%s", path);
    char *last = strrchr(buf, '/');
    if (!last[1] || strcmp(last + 1, ".") == 0 || strcmp(last + 1, "..") == 0)
        return vub_fail(err, -EINVAL, "socket path %s does not end in a file name", path);
    if (strlen(last + 1) >= namesz)
        return vub_fail(err, -ENAMETOOLONG, "socket name in %s is too long", path);
    snprintf(name, namesz, "%s", last + 1);
    *last = '\0';

    cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0)
        return vub_fail(err, -errno, "cannot open /: %s", strerror(errno));
    snprintf(shown, sizeof(shown), "/");
    if ((r = check_dir(cur, shown, err)) < 0)
        goto fail;
    size_t shown_len = 0;
    char *save = NULL;
    for (char *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            r = vub_fail(err, -EINVAL, "socket path %s has a \"..\" component", path);
            goto fail;
        }
        int n = snprintf(shown + shown_len, sizeof(shown) - shown_len, "/%s", c);
        shown_len += (size_t)n;
        int next = openat(cur, c, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
        if (next < 0 && errno == ENOENT) {
            /* fchmodat by name is safe here: cur is checked, so only root
             * or we can replace what we just made */
            if (mkdirat(cur, c, 0755) == 0)
                (void)fchmodat(cur, c, 0755, 0);   /* whatever the umask */
            else if (errno != EEXIST) {
                r = vub_fail(err, -errno, "cannot create directory %s: %s", shown, strerror(errno));
                goto fail;
            }
            next = openat(cur, c, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
        }
        if (next < 0) {
            int e = errno;
            struct stat st;
            if ((e == ELOOP || e == ENOTDIR) && fstatat(cur, c, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISLNK(st.st_mode))
                r = vub_fail(err, -ELOOP, "%s on the socket path is a symlink; give the path it "
                                     "points to", shown);
            else
                r = vub_fail(err, -e, "cannot open directory %s: %s", shown, strerror(e));
            goto fail;
        }
        close(cur);
        cur = next;
        if ((r = check_dir(cur, shown, err)) < 0)
            goto fail;
    }
    *dir_fd = cur;
    return 0;
fail:
    close(cur);
    return r;
}

/* An existing `name` in dir: remove it if it is a socket nobody listens on.
 * The liveness probe is a SOCK_DGRAM connect(): a stream listener answers it
 * with EPROTOTYPE without the connection ever reaching its backlog, so a
 * running bridge is not disturbed (its session slot is not taken). */
static int clear_stale(int dir, const char *name, const char *path, struct vub_err *err)
{
    struct stat st, st2;
    char p[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int r;
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return vub_fail(err, -errno, "cannot stat %s: %s", path, strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return vub_fail(err, -EEXIST, "%s exists and is not a socket; not replacing it", path);
    if ((r = fd_path(p, sizeof(p), dir, name, err)) < 0)
        return r;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return vub_fail(err, -errno, "socket: %s", strerror(errno));
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, p, strlen(p) + 1);
    r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    close(fd);
    if (r == 0 || e == EPROTOTYPE)
        return vub_fail(err, -EADDRINUSE, "%s: another process is listening on it", path);
    if (e != ECONNREFUSED)
        return vub_fail(err, -e, "cannot probe existing socket %s: %s", path, strerror(e));
    /* still the file we probed */
    if (fstatat(dir, name, &st2, AT_SYMLINK_NOFOLLOW) < 0 || st2.st_dev != st.st_dev ||
        st2.st_ino != st.st_ino)
        return vub_fail(err, -EAGAIN, "%s changed while it was checked; not replacing it", path);
    if (unlinkat(dir, name, 0) < 0 && errno != ENOENT)
        return vub_fail(err, -errno, "cannot remove stale socket %s: %s", path, strerror(errno));
    return 0;
}

/* A private directory ".<name>.XXXXXX" (0700) in dir: the socket is bound
 * and given its mode and owner there, out of everyone's reach. */
static int make_private_dir(int dir, const char *name, char *priv, size_t sz, int *priv_fd,
                            struct vub_err *err)
{
    for (int tries = 0; tries < 16; tries++) {
        uint8_t rnd[6];
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
            return vub_fail(err, errno ? -errno : -EIO, "getrandom: %s", strerror(errno));
        static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        char suf[7];
        for (int i = 0; i < 6; i++)
            suf[i] = abc[rnd[i] % (sizeof(abc) - 1)];
        suf[6] = '\0';
        int n = snprintf(priv, sz, ".%.*s.%s", (int)(sz > 16 ? sz - 16 : 1), name, suf);
        if (n < 0 || (size_t)n >= sz || strlen(priv) > NAME_MAX)
            snprintf(priv, sz, ".vub-sock.%s", suf);
        if (mkdirat(dir, priv, 0700) < 0) {
            if (errno == EEXIST)
                continue;
            return vub_fail(err, -errno, "cannot create a private directory beside %s: %s", name,
                        strerror(errno));
        }
        int fd = openat(dir, priv, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_uid != geteuid() ||
            (st.st_mode & 077) != 0) {
            int e = fd < 0 ? errno : EPERM;
            if (fd >= 0)
                close(fd);
            return vub_fail(err, -e, "private directory %s beside %s is not ours", priv, name);
        }
        *priv_fd = fd;
        return 0;
    }
    return vub_fail(err, -EEXIST, "cannot find a free private directory name beside %s", name);
}

/* Put `from` (in priv) at `name` (in dir), never replacing anything. */
static int move_into_place(int priv, const char *from, int dir, const char *name)
{
    if (renameat2(priv, from, dir, name, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL)
        return -errno;
    /* a file system without RENAME_NOREPLACE: link() never replaces either */
    if (linkat(priv, from, dir, name, 0) < 0)
        return -errno;
    unlinkat(priv, from, 0);
    return 0;
}

#define ACC_TMP_NAME "s"

int acc_listen_unix(const struct acc_sock_opts *o, struct acc_sock *out, struct vub_err *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char priv[NAME_MAX + 1];
    int fd = -1, priv_fd = -1, r;
    bool bound = false;

    *out = (struct acc_sock){ .fd = -1, .dir_fd = -1 };
    if (!o->path || o->path[0] != '/')
        return vub_fail(err, -EINVAL, "socket path \"%s\" is not absolute", o->path ? o->path : "");
    size_t len = strlen(o->path);
    if (len >= sizeof(sa.sun_path))
        return vub_fail(err, -ENAMETOOLONG, "socket path %s is longer than %zu bytes", o->path,
                    sizeof(sa.sun_path) - 1);
    if (o->mode > 0777)
        return vub_fail(err, -EINVAL, "socket mode %04o has bits beyond 0777", (unsigned)o->mode);

    if ((r = open_parent(o->path, &out->dir_fd, out->name, sizeof(out->name), err)) < 0)
        return r;
    if ((r = clear_stale(out->dir_fd, out->name, o->path, err)) < 0 ||
        (r = make_private_dir(out->dir_fd, out->name, priv, sizeof(priv), &priv_fd, err)) < 0)
        goto out_dir;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = vub_fail(err, -errno, "socket: %s", strerror(errno));
        goto out_priv;
    }
    if ((r = fd_path(sa.sun_path, sizeof(sa.sun_path), priv_fd, ACC_TMP_NAME, err)) < 0)
        goto out_priv;
    /* Nobody can reach the private directory: the umask does not matter,
     * the mode is set below through the directory fd. */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        if (e == ENOENT && access("/proc/self/fd", F_OK) < 0)
            r = vub_fail(err, -e, "bind %s: /proc is not mounted (the socket is bound through "
                             "/proc/self/fd)", o->path);
        else
            r = vub_fail(err, -e, "bind %s: %s", o->path, strerror(e));
        goto out_priv;
    }
    bound = true;
    /* chmod while we still own the file (no CAP_FOWNER needed), then chown
     * (CAP_CHOWN; it keeps the permission bits of a socket). By name in
     * the private directory, which only we can change. */
    if (fchmodat(priv_fd, ACC_TMP_NAME, o->mode, 0) < 0) {
        r = vub_fail(err, -errno, "chmod %s to %04o: %s", o->path, (unsigned)o->mode,
                 strerror(errno));
        goto out_priv;
    }
    if ((o->owner != (uid_t)-1 || o->group != (gid_t)-1) &&
        fchownat(priv_fd, ACC_TMP_NAME, o->owner, o->group, AT_SYMLINK_NOFOLLOW) < 0) {
        r = vub_fail(err, -errno, "chown %s to %d:%d: %s", o->path, (int)o->owner, (int)o->group,
                 strerror(errno));
        goto out_priv;
    }
    struct stat st;
    if (fstatat(priv_fd, ACC_TMP_NAME, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        r = vub_fail(err, -errno, "stat %s: %s", o->path, strerror(errno));
        goto out_priv;
    }
    if (!S_ISSOCK(st.st_mode) || (st.st_mode & 07777) != o->mode ||
        (o->owner != (uid_t)-1 && st.st_uid != o->owner) ||
        (o->group != (gid_t)-1 && st.st_gid != o->group)) {
        r = vub_fail(err, -EIO, "%s does not have the requested owner, group and mode after setting "
                           "them (uid %u gid %u mode %04o)", o->path, (unsigned)st.st_uid,
                 (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777));
        goto out_priv;
    }
    if (listen(fd, o->backlog > 0 ? o->backlog : 16) < 0) {
        r = vub_fail(err, -errno, "listen on %s: %s", o->path, strerror(errno));
        goto out_priv;
    }
    /* Only now does the socket appear under its name, complete. */
    if ((r = move_into_place(priv_fd, ACC_TMP_NAME, out->dir_fd, out->name)) < 0) {
        r = vub_fail(err, r, "cannot move the socket into place at %s: %s", o->path,
                 strerror(-r));
        goto out_priv;
    }
    bound = false;
    out->dev = st.st_dev;
    out->ino = st.st_ino;
    close(priv_fd);
    unlinkat(out->dir_fd, priv, AT_REMOVEDIR);
    out->fd = fd;
    return 0;

out_priv:
    if (bound)
        unlinkat(priv_fd, ACC_TMP_NAME, 0);
    if (priv_fd >= 0) {
        close(priv_fd);
        unlinkat(out->dir_fd, priv, AT_REMOVEDIR);
    }
    if (fd >= 0)
        close(fd);
out_dir:
    close(out->dir_fd);
    out->dir_fd = -1;
    return r;
}

int acc_sock_unlink(struct acc_sock *s)
{
    struct stat st;
    if (s->dir_fd < 0 || !s->ino)
        return 0;
    if (fstatat(s->dir_fd, s->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (st.st_dev != s->dev || st.st_ino != s->ino)
        return 0;    /* someone else's file now */
    if (unlinkat(s->dir_fd, s->name, 0) < 0)
        return errno == ENOENT ? 0 : -errno;
    s->ino = 0;
    return 1;
}

void acc_sock_release(struct acc_sock *s)
{
    if (s->dir_fd >= 0)
        close(s->dir_fd);
    s->dir_fd = -1;
    s->ino = 0;
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
                   struct vub_err *err)
{
    struct acc_peer p;
    int r = acc_peer_get(fd, &p);
    if (r < 0)
        return vub_fail(err, r, "cannot read peer credentials: %s", strerror(-r));
    if (peer)
        *peer = p;
    if (!allow || (allow->n_uids == 0 && allow->n_gids == 0))
        return 1;
    if (in_uids(allow, p.uid) || in_gids(allow, p.gid))
        return 1;
    if (allow->n_gids) {
        r = peer_groups_allowed(fd, allow);
        if (r < 0)
            return vub_fail(err, r, "cannot read groups of peer pid %d uid %u: %s", (int)p.pid,
                        (unsigned)p.uid, strerror(-r));
        if (r > 0)
            return 1;
    }
    vub_fail(err, -EPERM, "peer pid %d uid %u gid %u is not in the allow-list", (int)p.pid,
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

int acc_drop_privileges(uid_t uid, gid_t gid, struct vub_err *err)
{
    if (uid == 0 || uid == (uid_t)-1 || gid == (gid_t)-1)
        return vub_fail(err, -EINVAL, "refusing to drop privileges to uid %d gid %d", (int)uid,
                    (int)gid);
    if (setgroups(0, NULL) < 0)
        return vub_fail(err, -errno, "setgroups: %s", strerror(errno));
    if (setresgid(gid, gid, gid) < 0)
        return vub_fail(err, -errno, "setresgid(%u): %s", (unsigned)gid, strerror(errno));
    if (setresuid(uid, uid, uid) < 0)
        return vub_fail(err, -errno, "setresuid(%u): %s", (unsigned)uid, strerror(errno));

    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
        return vub_fail(err, -EIO, "cannot read back ids: %s", strerror(errno));
    if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid)
        return vub_fail(err, -EIO, "ids did not stick: uid %u/%u/%u gid %u/%u/%u", (unsigned)ru,
                    (unsigned)eu, (unsigned)su, (unsigned)rg, (unsigned)eg, (unsigned)sg);
    int ng = getgroups(0, NULL);
    if (ng != 0)
        return vub_fail(err, -EIO, "%d supplementary groups remain", ng);
    if (setuid(0) == 0 || seteuid(0) == 0)
        return vub_fail(err, -EIO, "could get root back after dropping to uid %u", (unsigned)uid);
    bool any = true;
    int r = caps_left(&any);
    if (r < 0)
        return vub_fail(err, r, "capget: %s", strerror(-r));
    if (any)
        return vub_fail(err, -EIO, "capabilities remain after dropping to uid %u", (unsigned)uid);
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
