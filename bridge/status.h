/* SPDX-License-Identifier: MIT */
/*
 * status.h - the bridge's state seen from outside, for operators and tests:
 * a control socket next to the main one (SOCKET.ctl, mode 0600, peers only
 * root or the daemon's own user) that answers every connection with one
 * JSON document (device, session counters, the client's pid/uid, messages
 * and errors, DMA mappings: count, bytes and the lowest
 * BR_STATUS_MAX_RANGES ranges, IRQ indexes enabled) and closes it.
 * `vfio-user-bridge status --socket SOCKET` prints it. Nothing is read from
 * the peer; the answer is bounded (BR_STATUS_MAX_LEN) whatever the client
 * of the main socket did. docs/architecture.md describes the fields.
 */
#ifndef BR_STATUS_H
#define BR_STATUS_H

#include <stddef.h>

#include "access.h"
#include "device.h"
#include "server.h"
#include "session.h"

#define BR_STATUS_MAX_RANGES 256u
#define BR_STATUS_MAX_LEN    (BR_STATUS_MAX_RANGES * 96u + 4096u)
#define BR_STATUS_SUFFIX     ".ctl"

/* The JSON document into buf (NUL-terminated). s may be NULL (no client).
 * Returns its length, or -ENOSPC if buf is too small. */
int br_status_format(char *buf, size_t len, const struct br_dev *dev,
                     const struct br_session *s, const struct br_server_stats *st);
/* Control socket path for a main socket path. -ENAMETOOLONG if it does not
 * fit a sun_path. */
int br_status_path(const char *socket_path, char *out, size_t outsz);
/* Create the control socket for cfg->socket_path and watch it in srv's
 * loop; *out gets it (after the loop the caller closes out->fd, removes the
 * file with acc_sock_unlink and calls acc_sock_release). 0, or -errno with
 * a warning logged (the daemon serves on without a status view). */
int br_status_attach(struct br_server *srv, struct br_dev *dev, struct acc_sock *out);
/* The same with a control socket already listening (*sock, from a live
 * re-exec: the previous process created it); on error it is left to the
 * caller. */
int br_status_attach_existing(struct br_server *srv, struct br_dev *dev, struct acc_sock *sock);
/* `status --socket PATH`: connect to PATH.ctl and copy the answer to stdout.
 * Errors go to stderr. Returns an exit status. */
int br_cmd_status(const char *socket_path);

#endif /* BR_STATUS_H */
