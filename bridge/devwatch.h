/* SPDX-License-Identifier: MIT */
/*
 * devwatch.h - notice when the exported function stops being ours: unbound
 * from vfio-pci, bound to another driver, or removed.
 *
 * Two sources feed one pollable fd:
 *  - a libudev monitor on the "pci" subsystem (kernel uevents by default, so
 *    it works with or without systemd-udevd), filtered to our address;
 *  - an eventfd the daemon registers with VFIO_DEVICE_SET_IRQS on
 *    VFIO_PCI_REQ_IRQ_INDEX. While the bridge holds the device open, an
 *    unbind or removal blocks in the kernel until the device is released;
 *    the kernel signals this "request" eventfd (and keeps re-signalling) so
 *    the holder can let go. The uevent only follows once it has.
 *
 * The daemon polls dw_fd() and calls dw_poll() when it is readable; a result
 * other than DW_NONE means: tear the client down, close the device and exit
 * with DW_EXIT_DEVICE_GONE. Nothing here prints.
 */
#ifndef VUB_DEVWATCH_H
#define VUB_DEVWATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "vub_err.h"

/* Exit status of the daemon when its device went away (documented in
 * docs/install.md; the unit treats it as success and does not restart). */
#define DW_EXIT_DEVICE_GONE 3

#define DW_VFIO_DRIVER "vfio-pci"


enum dw_kind {
    DW_NONE = 0,     /* nothing that concerns us */
    DW_UNBOUND,      /* no longer bound to vfio-pci (unbound or bound elsewhere) */
    DW_REMOVED,      /* the function is gone from the bus */
    DW_REQUEST,      /* the kernel asks for the device back (unbind/remove pending) */
};

struct dw_event {
    enum dw_kind kind;
    char what[200];  /* one line for the log, naming the device */
};

enum dw_source {
    DW_SOURCE_KERNEL = 0,  /* kernel uevents (no udevd needed) */
    DW_SOURCE_UDEV,        /* events after udevd processed them */
};

struct dw_opts {
    const char *addr;      /* canonical "DDDD:BB:DD.F" */
    const char *sysfs;     /* NULL = "/sys" (state checks only; events are real) */
    enum dw_source source;
    /* An eventfd to use as the request eventfd (taken by dw_open, also on
     * error), e.g. one the previous process of a re-exec armed with the
     * kernel; -1 or 0 with request_fd_set false: make a new one. */
    bool request_fd_set;
    int request_fd;
};

struct dw;

/* Start watching. The monitor is listening before this returns, so a caller
 * that checks the state with dw_check_now() afterwards misses nothing.
 * -EINVAL bad options; -errno from libudev/netlink/eventfd (with message). */
int dw_open(const struct dw_opts *o, struct dw **out, struct vub_err *err);
void dw_close(struct dw *w);

/* One fd to poll for POLLIN (an epoll fd over both sources; owned by w). */
int dw_fd(const struct dw *w);

/* The request eventfd (owned by w; non-blocking) to hand to
 * VFIO_DEVICE_SET_IRQS(DATA_EVENTFD | ACTION_TRIGGER, VFIO_PCI_REQ_IRQ_INDEX). */
int dw_request_fd(const struct dw *w);

/* Drain what is pending without blocking and report the most serious thing
 * seen (REMOVED > UNBOUND > REQUEST > NONE). 0 or -errno. */
int dw_poll(struct dw *w, struct dw_event *ev);

/* Look at sysfs now: REMOVED if the function is missing, UNBOUND if its
 * driver is not vfio-pci, NONE otherwise. */
int dw_check_now(const struct dw *w, struct dw_event *ev);

/* Classify one uevent for our device: `action` as libudev reports it,
 * `event_driver` the DRIVER property (NULL if none), `sysfs_driver` the
 * driver now in sysfs ("" none) and `exists` whether the function is still
 * in sysfs. Pure; exposed for tests. */
enum dw_kind dw_classify(const char *action, const char *event_driver, bool exists,
                         const char *sysfs_driver);

const char *dw_kind_name(enum dw_kind k);

/* ---- functions of an IOMMU group bound later (the group daemon) -------------------
 *
 * A kernel uevent monitor on the "pci" subsystem that tells the group
 * daemon when to look at its group's members again: a member was bound to
 * a driver (or added, or changed), or events were lost (the socket's
 * buffer overflowed). What to do is read from sysfs then, not from the
 * event. */
struct dw_group;

/* Start listening (before the caller's first look at sysfs, so nothing is
 * missed in between). sysfs NULL = "/sys". -errno with message. */
int dw_group_open(const char *sysfs, int group, struct dw_group **out, struct vub_err *err);
void dw_group_close(struct dw_group *w);
int dw_group_fd(const struct dw_group *w);   /* poll for POLLIN */
/* Drain at most DW_MAX_EVENTS_PER_POLL events without blocking: *rescan
 * true when one concerned the group (dw_group_concerns) or some were lost.
 * 0 or -errno. */
int dw_group_poll(struct dw_group *w, bool *rescan);
/* Whether a uevent (`action`, device `sysname`) concerns group `group`:
 * "bind", "add", "change" or "move" of a function that is a member of it
 * now (<sysfs>/kernel/iommu_groups/<group>/devices/<sysname>). Exposed for
 * tests. */
bool dw_group_concerns(const char *sysfs, int group, const char *action, const char *sysname);

#endif /* VUB_DEVWATCH_H */
