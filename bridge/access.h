/* SPDX-License-Identifier: MIT */
/*
 * access.h - who may connect: the listening socket created with its final
 * owner, group and mode before anyone can connect, the per-peer check with
 * SO_PEERCRED against an allow-list, and dropping root after the VFIO group
 * is open.
 *
 * All functions return 0 (or a documented non-negative value) on success and
 * a negative errno on failure, with one line in `struct acc_err` (may be
 * NULL) naming the path or peer, the step and the cause. Nothing here prints.
 */
#ifndef VUB_ACCESS_H
#define VUB_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct acc_err {
    char msg[256];
};

#define ACC_MAX_PEER_GROUPS 256u   /* supplementary groups of a peer looked at */

/* ---- the listening socket ------------------------------------------------------ */

struct acc_sock_opts {
    const char *path;   /* absolute path, shorter than sun_path */
    uid_t owner;        /* (uid_t)-1: keep the creating process's uid */
    gid_t group;        /* (gid_t)-1: keep the creating process's gid */
    mode_t mode;        /* permission bits (<= 0777) */
    int backlog;        /* listen() backlog; <= 0 means 16 */
};

/* Create a SOCK_STREAM | SOCK_CLOEXEC UNIX socket listening on opts->path.
 *
 * No window: the socket file is bound under umask 0177 (so it exists as
 * owner-only), then given the requested mode, owner and group (chmod first,
 * so that only CAP_CHOWN is needed), verified, and only then does listen()
 * start accepting. The parent directory is
 * created (0755) if missing; a stale socket file with nobody listening is
 * replaced, a live one gives -EADDRINUSE, a non-socket file -EEXIST.
 * *fd_out gets the listening fd (the caller owns it). The process umask is
 * restored before returning. */
int acc_listen_unix(const struct acc_sock_opts *opts, int *fd_out, struct acc_err *err);

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
                   struct acc_err *err);

/* ---- privileges ------------------------------------------------------------------ */

/* Become uid/gid for good: supplementary groups cleared (setgroups to just
 * gid), real, effective and saved gid then uid set, and verified: the ids
 * read back must all match, getting root back (setuid(0)) must fail, and no
 * capability may remain permitted or effective. Refuses uid 0 (-EINVAL).
 * -EPERM if the process is not allowed to change ids; -EIO if the change
 * did not stick (the caller must exit). Fds opened before (the VFIO group,
 * container, device, listening socket) stay usable. */
int acc_drop_privileges(uid_t uid, gid_t gid, struct acc_err *err);

/* RLIMIT_MEMLOCK as it applies to this process once unprivileged: the soft
 * limit in bytes, or -1 for unlimited. Pinning guest memory for DMA counts
 * against it (type1 IOMMU) unless CAP_IPC_LOCK is held. */
long long acc_memlock_limit(void);

#endif /* VUB_ACCESS_H */
