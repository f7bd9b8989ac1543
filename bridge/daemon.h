/* SPDX-License-Identifier: MIT */
/* daemon.h - open the device, listen, serve until SIGTERM/SIGINT. */
#ifndef BR_DAEMON_H
#define BR_DAEMON_H

#include "config.h"
#include "hv.h"

/* Open the device cfg names: the simulated one for cfg->sim, else through
 * kernel VFIO (type1). Logs the failure. */
int br_open_device(const struct br_config *cfg, struct hv_device **out);
/* The kernel IOMMU context cfg->iommu names (type1 today; iommufd is
 * refused with the reason). The caller holds one reference. */
int br_open_iommu(const struct br_config *cfg, struct hv_iommu **io, struct vub_err *err);
/* Raise the soft RLIMIT_NOFILE to the hard one (clients make the bridge
 * hold fds). */
void br_raise_fd_limit(void);
/* The daemon for several functions of one IOMMU group (cfg->n_functions >
 * 1, or cfg->iommu_group: the group unit, which also serves members bound
 * to vfio-pci later; bridge/group.h, group_daemon.c): one IOMMU context,
 * one server thread per function, signals in the calling thread; SIGHUP is
 * refused with a log line. Returns the exit status (0 stopped by a signal,
 * BR_EXIT_DEVICE_GONE when it serves no function any more because every
 * one's device went away, 1 set-up or loop failure). */
int br_group_daemon_run(const struct br_config *cfg);

/* The whole daemon: open the device, create the socket, notify readiness,
 * run the loop, quiesce and clean up. Returns the process exit status. On
 * SIGHUP it re-executes argv's program (bridge/reexec.h) and so does not
 * return; with cfg->resume_state_fd it takes over what the previous process
 * handed over instead of opening anything, or exits 1 (logged) without
 * touching the device if it cannot. */
int br_daemon_run(const struct br_config *cfg, int argc, char **argv);

#endif /* BR_DAEMON_H */
