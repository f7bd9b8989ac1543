/* SPDX-License-Identifier: MIT */
/*
 * service.h - the daemon as a system service: the export policy applied to
 * the configuration, the device watch wired into the event loop, and the
 * privilege drop. Glue between config/daemon/server and the self-contained
 * modules policy.h, devwatch.h and access.h. Everything here logs.
 */
#ifndef BR_SERVICE_H
#define BR_SERVICE_H

#include <stdbool.h>

#include "config.h"
#include "group.h"
#include "device.h"
#include "hv.h"
#include "server.h"

/* Exit statuses of the daemon (docs/install.md). */
#define BR_EXIT_OK           0   /* stopped by SIGTERM/SIGINT */
#define BR_EXIT_FAILURE      1   /* the device or the socket could not be set up */
#define BR_EXIT_CONFIG       2   /* bad command line or policy, or not exported */
#define BR_EXIT_DEVICE_GONE  3   /* unbound from vfio-pci or removed (== DW_EXIT_DEVICE_GONE) */

/* With cfg->policy_path: load the policy, find the entry for cfg->device
 * (identified through /sys) and fill what the command line left unset:
 * socket path, owner, group, mode, allow-lists, the user to drop to; the
 * options no_mmap and sparse_msix are turned on if the entry says so,
 * reset_on_disconnect off. Strings live in static storage (one daemon per
 * process). 0, or -errno with the reason logged (-ENOENT: not exported). */
int br_service_apply_policy(struct br_config *cfg);
/* The same on the sysfs tree at `sysfs` (tests). With cfg->iommu_group
 * (--iommu-group N) instead of a device: every function of group N that the
 * policy exports and that is bound to vfio-pci becomes one of
 * cfg->functions, with its socket and its own config (br_function.cfg,
 * static storage) filled from its entry; a function exported but bound to
 * another driver is left out with a warning; the daemon's own config is the
 * first function's. -ENOENT none to serve; -EINVAL two functions with one
 * socket or different "user"s (one process drops to one user). */
int br_service_apply_policy_at(struct br_config *cfg, const char *sysfs);

/* --iommu-group N, once the daemon runs (after br_service_apply_policy*):
 * the members of group N that the policy, as loaded at start, exports and
 * that are bound to vfio-pci now, in address order (read from sysfs again:
 * a function bound to vfio-pci later). 0, or -errno logged (the group's
 * entries no longer agree on "group_clients", sysfs unreadable). */
struct br_group_scan {
    size_t n;
    char addr[BR_GROUP_MAX_FUNCTIONS][HV_ADDR_LEN];
};
int br_service_group_scan(struct br_group_scan *out);
/* The config of member `addr` with its entry applied, into static slot
 * `slot` (< BR_GROUP_MAX_FUNCTIONS; the caller's slot, which no running
 * function uses: its strings live there): 1 and *out, 0 when it is not to
 * be served (no longer exported, not on vfio-pci), -errno logged. */
int br_service_group_configure(const char *addr, size_t slot, const struct br_config **out);

struct br_service;

/* Start watching the device (not for simulated devices: then *out is a
 * service that watches nothing) and arm the VFIO request eventfd on hv. */
int br_service_start(struct br_service **out, const struct br_config *cfg,
                     struct hv_device *hv);
/* Live re-exec (bridge/reexec.h): the same with the request eventfd the
 * previous process armed (req_fd >= 0: taken, also on error; the kernel
 * still signals it, nothing is armed again) or none (-1). */
int br_service_resume(struct br_service **out, const struct br_config *cfg,
                      struct hv_device *hv, int req_fd);
/* The armed request eventfd (owned by svc), -1 if none. */
int br_service_request_fd(const struct br_service *svc);
/* Hook the watch into the loop: a device event stops srv; and re-arm the
 * request eventfd whenever a client session has quiesced the device. */
int br_service_attach(struct br_service *svc, struct br_server *srv, struct br_dev *dev);
/* After the socket is created: become cfg->run_uid/run_gid if configured. */
int br_service_drop_privileges(const struct br_config *cfg);
/* Whether the loop was stopped because the device went away. */
bool br_service_device_gone(const struct br_service *svc);
void br_service_free(struct br_service *svc);

#endif /* BR_SERVICE_H */
