/* SPDX-License-Identifier: MIT */
/* notify.h - systemd readiness notification without libsystemd. */
#ifndef BR_NOTIFY_H
#define BR_NOTIFY_H

/* Send `state` (e.g. "READY=1", "STOPPING=1") as one datagram to the socket
 * named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
 * Returns 1 if sent, 0 if $NOTIFY_SOCKET is not set, -errno on failure. */
int br_notify(const char *state);

#endif /* BR_NOTIFY_H */
