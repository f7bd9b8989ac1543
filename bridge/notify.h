/* SPDX-License-Identifier: MIT */
/*
 * notify.h - the service manager's side channels without libsystemd: the
 * sd_notify datagram (readiness, and the file descriptor store: FDSTORE=1
 * with SCM_RIGHTS, FDNAME=, FDSTOREREMOVE=1) and the fds a service is
 * started with (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES; the first is fd 3).
 * See sd_notify(3), sd_listen_fds(3) and https://systemd.io/FILE_DESCRIPTOR_STORE/.
 */
#ifndef BR_NOTIFY_H
#define BR_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

/* Longest fd name the service manager takes (FDNAME=, LISTEN_FDNAMES). */
#define BR_FDNAME_MAX 255u
/* Most fds passed in one datagram (the kernel's SCM_MAX_FD). */
#define BR_NOTIFY_MAX_FDS 253u
/* Most fds taken from LISTEN_FDS. */
#define BR_LISTEN_MAX_FDS 8192u
#define BR_LISTEN_FDS_START 3

/* Send `state` (e.g. "READY=1", "STOPPING=1") as one datagram to the socket
 * named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
 * Returns 1 if sent, 0 if $NOTIFY_SOCKET is not set, -errno on failure. */
int br_notify(const char *state);
/* The same with fds attached (SCM_RIGHTS; n <= BR_NOTIFY_MAX_FDS). */
int br_notify_fds(const char *state, const int *fds, size_t n);

/* Whether name is one the service manager accepts in FDNAME=: 1 to
 * BR_FDNAME_MAX printable ASCII characters, none of them ':' (the
 * LISTEN_FDNAMES separator). */
bool br_fdname_valid(const char *name);

/* The fds this process was started with: n (0 if LISTEN_PID is not this
 * process or LISTEN_FDS is unset), names[i] for fd 3 + i ("unknown" where
 * LISTEN_FDNAMES gives none). The variables are removed from the
 * environment (no child inherits them) and every fd gets FD_CLOEXEC.
 * Returns n, or -EINVAL for a malformed variable (then nothing is taken).
 * names is allocated (free with br_listen_fds_free). */
struct br_listen_fds {
    size_t n;
    char **names;
};
int br_listen_fds(struct br_listen_fds *out);
void br_listen_fds_free(struct br_listen_fds *l);

#endif /* BR_NOTIFY_H */
