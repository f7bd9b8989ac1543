/* SPDX-License-Identifier: MIT */
/* daemon.h - open the device, listen, serve until SIGTERM/SIGINT. */
#ifndef BR_DAEMON_H
#define BR_DAEMON_H

#include "config.h"
#include "hv.h"

/* Open the device cfg names: the simulated one for cfg->sim, else through
 * kernel VFIO (type1). Logs the failure. */
int br_open_device(const struct br_config *cfg, struct hv_device **out);

/* The whole daemon: open the device, create the socket, notify readiness,
 * run the loop, quiesce and clean up. Returns the process exit status. On
 * SIGHUP it re-executes argv's program (bridge/reexec.h) and so does not
 * return; with cfg->resume_state_fd it takes over what the previous process
 * handed over instead of opening anything, or exits 1 (logged) without
 * touching the device if it cannot. */
int br_daemon_run(const struct br_config *cfg, int argc, char **argv);

#endif /* BR_DAEMON_H */
