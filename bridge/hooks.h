/* SPDX-License-Identifier: MIT */
/*
 * hooks.h - the two places where access control plugs into the daemon.
 *
 * hooks.c implements them on top of bridge/access.h (socket created with its
 * final owner, group and mode; peers checked with SO_PEERCRED).
 */
#ifndef BR_HOOKS_H
#define BR_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "access.h"
#include "config.h"

/* Create the listening AF_UNIX SOCK_STREAM socket at cfg->socket_path
 * (non-blocking, close-on-exec, listening), with the owner, group and mode of
 * cfg, by file descriptor (acc_listen_unix: no symlinks or directories
 * others can change on the path). A stale socket file (nobody listening) is
 * replaced; a live one is -EADDRINUSE; a path that is not a socket is
 * -EEXIST. Returns the fd (also in sock->fd; the caller owns it) or -errno
 * (and logs why). At exit: acc_sock_unlink(sock), acc_sock_release(sock). */
int br_listen(const struct br_config *cfg, struct acc_sock *sock);

/* Whether the peer of an accepted connection `fd` (credentials from
 * SO_PEERCRED in cred) may use the device. On refusal `why` gets one log
 * line naming the peer and the reason (the caller logs it, rate-limited).
 * With empty allow-lists every peer the socket's permissions let in is
 * allowed; otherwise its uid must be listed, or its primary or a
 * supplementary gid. */
bool br_peer_allowed(const struct br_config *cfg, int fd, const struct ucred *cred, char *why,
                     size_t whysz);

/* A user or group given by name or number -> id. -ENOENT unknown name. */
int br_resolve_id(const char *s, bool group, unsigned *out);

#endif /* BR_HOOKS_H */
