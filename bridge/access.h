/* SPDX-License-Identifier: MIT */
/*
 * access.h - who may connect: the listening socket created with its final
 * owner, group and mode before anyone can connect, by file descriptor, the per-peer check with
 * SO_PEERCRED against an allow-list, and dropping root after the VFIO group
 * is open.
 *
 * All functions return 0 (or a documented non-negative value) on success and
 * a negative errno on failure, with one line in `struct vub_err` (may be
 * NULL) naming the path or peer, the step and the cause. Nothing here prints.
 */
#ifndef VUB_ACCESS_H
#define VUB_ACCESS_H

#include <stdbool.h>
#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "vub_err.h"


#define ACC_MAX_PEER_GROUPS 256u   /* supplementary groups of a peer looked at */

/* ---- the listening socket ------------------------------------------------------ */

struct acc_sock_opts {
    const char *path;   /* absolute path, shorter than sun_path */
    uid_t owner;        /* (uid_t)-1: keep the creating process's uid */
    gid_t group;        /* (gid_t)-1: keep the creating process's gid */
    mode_t mode;        /* permission bits (<= 0777) */
    int backlog;        /* listen() backlog; <= 0 means 16 */
};

/* A listening socket and how to remove its file again: by the directory
 * fd and name, and only while the name still refers to the file created. */
struct acc_sock {
    int fd;                  /* the listening socket; the caller takes it */
    int dir_fd;              /* O_PATH fd of the socket's directory (owned) */
    char name[NAME_MAX + 1]; /* the socket's name in it */
    dev_t dev;               /* the socket file created */
    ino_t ino;               /* 0 once removed */
};

/* Create a SOCK_STREAM | SOCK_CLOEXEC UNIX socket listening on opts->path,
 * by file descriptor from start to end (nothing by path name after the
 * walk, so no directory swap can redirect a step):
 *
 *  1. The directories are opened one by one from "/" with O_PATH |
 *     O_NOFOLLOW | O_DIRECTORY, missing ones created (0755) relative to
 *     their parent. Refused: a symlink on the way (-ELOOP), a ".."
 *     component (-EINVAL), a directory owned by another non-root user or
 *     writable by others unless it is sticky and root's, like /tmp (-EPERM).
 *  2. An existing file of that name: a socket nobody listens on is removed
 *     (unlinkat, after checking it is still the file probed); a live one is
 *     -EADDRINUSE, anything else -EEXIST. The probe is a SOCK_DGRAM
 *     connect(), which a running bridge never sees as a connection.
 *  3. The socket is bound in a private 0700 directory made beside the name,
 *     given its mode and then owner and group there (chmod first, so that
 *     only CAP_CHOWN is needed), verified, set listening, and renamed into
 *     place (RENAME_NOREPLACE, or link() where the file system lacks it).
 *     The umask does not matter.
 *
 * *out gets the fd, the directory fd and the file's identity (release with
 * acc_sock_release; the fd is the caller's). Nothing is left behind on
 * error. */
int acc_listen_unix(const struct acc_sock_opts *opts, struct acc_sock *out,
                    struct vub_err *err);
/* Remove the socket file if its name still refers to the file created
 * (st_dev/st_ino). 1 removed, 0 not there or someone else's, -errno. */
int acc_sock_unlink(struct acc_sock *s);
/* Close the directory fd (not the listening fd). */
void acc_sock_release(struct acc_sock *s);

/* ---- peers ---------------------------------------------------------------------- */

struct acc_allow {
    size_t n_uids, n_gids;
    const uid_t *uids;
    const gid_t *gids;
};

struct acc_peer {
    pid_t pid;
    uid_t uid;
    gid_t gid;
};

/* The peer credentials of a connected UNIX socket (SO_PEERCRED). */
int acc_peer_get(int fd, struct acc_peer *out);

/* Whether the peer on `fd` may use the bridge: with an empty allow-list,
 * anyone who could connect is allowed (the socket mode decides); otherwise
 * the peer's uid must be in uids, or its primary gid or one of its
 * supplementary groups (SO_PEERGROUPS) in gids. Returns 1 allowed, 0 refused
 * (err says who and why, for the log), negative errno if the credentials
 * cannot be read. `peer` (may be NULL) gets the credentials. */
int acc_peer_check(int fd, const struct acc_allow *allow, struct acc_peer *peer,
                   struct vub_err *err);

/* ---- privileges ------------------------------------------------------------------ */

/* Become uid/gid for good: supplementary groups cleared (setgroups to just
 * gid), real, effective and saved gid then uid set, and verified: the ids
 * read back must all match, getting root back (setuid(0)) must fail, and no
 * capability may remain permitted or effective. Refuses uid 0 (-EINVAL).
 * -EPERM if the process is not allowed to change ids; -EIO if the change
 * did not stick (the caller must exit). Fds opened before (the VFIO group,
 * container, device, listening socket) stay usable. */
int acc_drop_privileges(uid_t uid, gid_t gid, struct vub_err *err);

/* RLIMIT_MEMLOCK as it applies to this process once unprivileged: the soft
 * limit in bytes, or -1 for unlimited. Pinning guest memory for DMA counts
 * against it (type1 IOMMU) unless CAP_IPC_LOCK is held. */
long long acc_memlock_limit(void);

#endif /* VUB_ACCESS_H */
