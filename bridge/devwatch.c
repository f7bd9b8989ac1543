/* SPDX-License-Identifier: MIT */
/* devwatch.c - the device's uevents and VFIO request eventfd (devwatch.h). */
#include "devwatch.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libudev.h>

/* Events handled per dw_poll() call, so a flood of uevents for other
 * devices cannot keep the loop here; the rest waits for the next call. */
#define DW_MAX_EVENTS_PER_POLL 64

struct dw {
    struct udev *udev;
    struct udev_monitor *mon;
    int req_fd;
    int ep_fd;
    char addr[32];
    char sysfs[PATH_MAX];
};

const char *dw_kind_name(enum dw_kind k)
{
    switch (k) {
    case DW_NONE: return "none";
    case DW_UNBOUND: return "unbound";
    case DW_REMOVED: return "removed";
    case DW_REQUEST: return "request";
    }
    return "?";
}

enum dw_kind dw_classify(const char *action, const char *event_driver, bool exists,
                         const char *sysfs_driver)
{
    if (!action)
        return DW_NONE;
    if (strcmp(action, "remove") == 0)
        return DW_REMOVED;
    if (strcmp(action, "unbind") == 0)
        return DW_UNBOUND;
    if (strcmp(action, "bind") == 0)
        return event_driver && strcmp(event_driver, DW_VFIO_DRIVER) == 0 ? DW_NONE : DW_UNBOUND;
    /* add, change, move, online, offline: look at the state now */
    if (!exists)
        return DW_REMOVED;
    if (!sysfs_driver || strcmp(sysfs_driver, DW_VFIO_DRIVER) != 0)
        return DW_UNBOUND;
    return DW_NONE;
}

/* Whether the function exists; its driver into drv ("" none). */
static bool sysfs_state(const struct dw *w, char *drv, size_t sz)
{
    char dir[PATH_MAX + 64], link[PATH_MAX + 80], target[PATH_MAX];
    struct stat st;
    drv[0] = '\0';
    snprintf(dir, sizeof(dir), "%s/bus/pci/devices/%s", w->sysfs, w->addr);
    if (stat(dir, &st) < 0)
        return false;
    snprintf(link, sizeof(link), "%s/driver", dir);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n > 0) {
        target[n] = '\0';
        const char *b = strrchr(target, '/');
        b = b ? b + 1 : target;
        size_t l = strlen(b) < sz ? strlen(b) : sz - 1;   /* cut: still not vfio-pci */
        memcpy(drv, b, l);
        drv[l] = '\0';
    }
    return true;
}

static void describe(const struct dw *w, enum dw_kind k, const char *action, const char *drv,
                     struct dw_event *ev)
{
    ev->kind = k;
    switch (k) {
    case DW_NONE:
        ev->what[0] = '\0';
        break;
    case DW_REMOVED:
        snprintf(ev->what, sizeof(ev->what), "%s was removed from the PCI bus (%s event)",
                 w->addr, action);
        break;
    case DW_UNBOUND:
        if (drv && drv[0])
            snprintf(ev->what, sizeof(ev->what), "%s is now bound to %s, not %s (%s event)",
                     w->addr, drv, DW_VFIO_DRIVER, action);
        else
            snprintf(ev->what, sizeof(ev->what), "%s was unbound from %s (%s event)", w->addr,
                     DW_VFIO_DRIVER, action);
        break;
    case DW_REQUEST:
        snprintf(ev->what, sizeof(ev->what), "the kernel asks for %s back (an unbind or "
                                             "removal is waiting for the bridge to let go)",
                 w->addr);
        break;
    }
}

int dw_check_now(const struct dw *w, struct dw_event *ev)
{
    char drv[64];
    bool exists = sysfs_state(w, drv, sizeof(drv));
    enum dw_kind k = !exists ? DW_REMOVED
                             : strcmp(drv, DW_VFIO_DRIVER) != 0 ? DW_UNBOUND : DW_NONE;
    describe(w, k, "state check", drv, ev);
    return 0;
}

int dw_open(const struct dw_opts *o, struct dw **out, struct vub_err *err)
{
    *out = NULL;
    if (!o || !o->addr || !o->addr[0] || strlen(o->addr) >= sizeof(((struct dw *)0)->addr))
        return vub_fail(err, -EINVAL, "devwatch: no device address given");
    if (o->source != DW_SOURCE_KERNEL && o->source != DW_SOURCE_UDEV)
        return vub_fail(err, -EINVAL, "devwatch: unknown event source %d", (int)o->source);

    struct dw *w = calloc(1, sizeof(*w));
    if (!w) {
        if (o->request_fd_set && o->request_fd >= 0)
            close(o->request_fd);
        return vub_fail(err, -ENOMEM, "devwatch: out of memory");
    }
    w->req_fd = o->request_fd_set ? o->request_fd : -1;
    w->ep_fd = -1;
    snprintf(w->addr, sizeof(w->addr), "%s", o->addr);
    snprintf(w->sysfs, sizeof(w->sysfs), "%s", o->sysfs ? o->sysfs : "/sys");
    int r;

    w->udev = udev_new();
    if (!w->udev) {
        r = vub_fail(err, errno ? -errno : -ENOMEM, "udev_new failed");
        goto fail_out;
    }
    const char *src = o->source == DW_SOURCE_UDEV ? "udev" : "kernel";
    w->mon = udev_monitor_new_from_netlink(w->udev, src);
    if (!w->mon) {
        r = vub_fail(err, errno ? -errno : -EIO, "cannot open a %s uevent monitor: %s", src,
                 strerror(errno ? errno : EIO));
        goto fail_out;
    }
    if ((r = udev_monitor_filter_add_match_subsystem_devtype(w->mon, "pci", NULL)) < 0) {
        r = vub_fail(err, r, "uevent filter: %s", strerror(-r));
        goto fail_out;
    }
    if ((r = udev_monitor_enable_receiving(w->mon)) < 0) {
        r = vub_fail(err, r, "cannot listen for %s uevents: %s", src, strerror(-r));
        goto fail_out;
    }
    if (w->req_fd < 0)
        w->req_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->req_fd < 0) {
        r = vub_fail(err, -errno, "eventfd: %s", strerror(errno));
        goto fail_out;
    }
    w->ep_fd = epoll_create1(EPOLL_CLOEXEC);
    if (w->ep_fd < 0) {
        r = vub_fail(err, -errno, "epoll_create1: %s", strerror(errno));
        goto fail_out;
    }
    struct epoll_event e1 = { .events = EPOLLIN, .data.u32 = 1 };
    struct epoll_event e2 = { .events = EPOLLIN, .data.u32 = 2 };
    if (epoll_ctl(w->ep_fd, EPOLL_CTL_ADD, udev_monitor_get_fd(w->mon), &e1) < 0 ||
        epoll_ctl(w->ep_fd, EPOLL_CTL_ADD, w->req_fd, &e2) < 0) {
        r = vub_fail(err, -errno, "epoll_ctl: %s", strerror(errno));
        goto fail_out;
    }
    *out = w;
    return 0;

fail_out:
    dw_close(w);
    return r;
}

void dw_close(struct dw *w)
{
    if (!w)
        return;
    if (w->ep_fd >= 0)
        close(w->ep_fd);
    if (w->req_fd >= 0)
        close(w->req_fd);
    udev_monitor_unref(w->mon);
    udev_unref(w->udev);
    free(w);
}

int dw_fd(const struct dw *w)
{
    return w ? w->ep_fd : -1;
}

int dw_request_fd(const struct dw *w)
{
    return w ? w->req_fd : -1;
}

static int severity(enum dw_kind k)
{
    switch (k) {
    case DW_REMOVED: return 3;
    case DW_UNBOUND: return 2;
    case DW_REQUEST: return 1;
    case DW_NONE: break;
    }
    return 0;
}

static void keep_worst(struct dw_event *ev, const struct dw_event *cand)
{
    if (severity(cand->kind) > severity(ev->kind))
        *ev = *cand;
}

int dw_poll(struct dw *w, struct dw_event *ev)
{
    struct dw_event cand;
    memset(ev, 0, sizeof(*ev));

    uint64_t cnt;
    ssize_t n = read(w->req_fd, &cnt, sizeof(cnt));
    if (n == (ssize_t)sizeof(cnt) && cnt > 0) {
        describe(w, DW_REQUEST, "request", NULL, &cand);
        keep_worst(ev, &cand);
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return -errno;
    }

    for (int i = 0; i < DW_MAX_EVENTS_PER_POLL; i++) {
        struct udev_device *d = udev_monitor_receive_device(w->mon);
        if (!d)
            break;   /* nothing more pending (or a message that did not parse) */
        const char *sysname = udev_device_get_sysname(d);
        if (sysname && strcmp(sysname, w->addr) == 0) {
            const char *action = udev_device_get_action(d);
            const char *evdrv = udev_device_get_driver(d);
            char drv[64];
            bool exists = sysfs_state(w, drv, sizeof(drv));
            enum dw_kind k = dw_classify(action, evdrv, exists, drv);
            const char *shown = action && strcmp(action, "bind") == 0 ? evdrv : drv;
            describe(w, k, action ? action : "?", shown, &cand);
            keep_worst(ev, &cand);
        }
        udev_device_unref(d);
    }
    return 0;
}

/* ---- functions of an IOMMU group bound later ---------------------------------------- */

struct dw_group {
    struct udev *udev;
    struct udev_monitor *mon;
    int group;
    char sysfs[PATH_MAX];
};

bool dw_group_concerns(const char *sysfs, int group, const char *action, const char *sysname)
{
    static const char *const actions[] = { "bind", "add", "change", "move" };
    bool act = false;
    if (!action || !sysname || !sysname[0] || strchr(sysname, '/') || sysname[0] == '.')
        return false;
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        act |= strcmp(action, actions[i]) == 0;
    if (!act)
        return false;
    char path[PATH_MAX + 128];
    struct stat st;
    int n = snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%d/devices/%s",
                     sysfs ? sysfs : "/sys", group, sysname);
    return n > 0 && (size_t)n < sizeof(path) && lstat(path, &st) == 0;
}

int dw_group_open(const char *sysfs, int group, struct dw_group **out, struct vub_err *err)
{
    *out = NULL;
    if (group < 0)
        return vub_fail(err, -EINVAL, "group watch: no IOMMU group given");
    struct dw_group *w = calloc(1, sizeof(*w));
    if (!w)
        return vub_fail(err, -ENOMEM, "group watch: out of memory");
    w->group = group;
    snprintf(w->sysfs, sizeof(w->sysfs), "%s", sysfs ? sysfs : "/sys");
    int r;
    w->udev = udev_new();
    if (!w->udev) {
        r = vub_fail(err, errno ? -errno : -ENOMEM, "udev_new failed");
        goto fail;
    }
    w->mon = udev_monitor_new_from_netlink(w->udev, "kernel");
    if (!w->mon) {
        r = vub_fail(err, errno ? -errno : -EIO, "cannot open a kernel uevent monitor: %s",
                     strerror(errno ? errno : EIO));
        goto fail;
    }
    if ((r = udev_monitor_filter_add_match_subsystem_devtype(w->mon, "pci", NULL)) < 0) {
        r = vub_fail(err, r, "uevent filter: %s", strerror(-r));
        goto fail;
    }
    if ((r = udev_monitor_enable_receiving(w->mon)) < 0) {
        r = vub_fail(err, r, "cannot listen for kernel uevents: %s", strerror(-r));
        goto fail;
    }
    *out = w;
    return 0;
fail:
    dw_group_close(w);
    return r;
}

void dw_group_close(struct dw_group *w)
{
    if (!w)
        return;
    udev_monitor_unref(w->mon);
    udev_unref(w->udev);
    free(w);
}

int dw_group_fd(const struct dw_group *w)
{
    return w ? udev_monitor_get_fd(w->mon) : -1;
}

int dw_group_poll(struct dw_group *w, bool *rescan)
{
    *rescan = false;
    for (int i = 0; i < DW_MAX_EVENTS_PER_POLL; i++) {
        errno = 0;
        struct udev_device *d = udev_monitor_receive_device(w->mon);
        if (!d) {
            /* an overflowed receive buffer: events were lost */
            if (errno == ENOBUFS)
                *rescan = true;
            break;
        }
        if (dw_group_concerns(w->sysfs, w->group, udev_device_get_action(d),
                              udev_device_get_sysname(d)))
            *rescan = true;
        udev_device_unref(d);
    }
    return 0;
}
