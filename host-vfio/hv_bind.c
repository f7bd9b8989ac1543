/* SPDX-License-Identifier: MIT */
/*
 * hv_bind.c - hand a function to vfio-pci through driver_override and give
 * it back. The kernel binds synchronously inside the sysfs writes, so the
 * result can be checked right after.
 */
#include "hv.h"
#include "hv_internal.h"

#include <errno.h>
#include <string.h>

static int write_or_fail(const char *path, const char *what, const char *addr,
                         struct vub_err *err)
{
    int r = hv_sysfs_write(path, what);
    if (r == -EACCES || r == -EPERM)
        return vub_fail(err, r, "%s: permission denied writing %s", addr, path);
    if (r < 0)
        return vub_fail(err, r, "%s: writing '%s' to %s failed: %s", addr, what, path,
                       strerror(-r));
    return 0;
}

static int canon_driver(const char *sysfs, const char *addr_in, char addr[HV_ADDR_LEN],
                        char *drv, size_t drvsz, struct vub_err *err)
{
    if (hv_pci_addr_parse(addr_in, addr) < 0)
        return vub_fail(err, -EINVAL, "'%s' is not a PCI address (want DDDD:BB:DD.F)", addr_in);
    int r = hv_sysfs_driver(sysfs, addr, drv, drvsz);
    if (r == -ENODEV)
        return vub_fail(err, -ENODEV, "no PCI function %s", addr);
    if (r < 0)
        return vub_fail(err, r, "%s: cannot read its driver link: %s", addr, strerror(-r));
    return 0;
}

int hv_bind_vfio(const char *sysfs, const char *addr_in, char *prev, size_t prevsz,
                 struct vub_err *err)
{
    char addr[HV_ADDR_LEN], drv[64], path[HV_PATH_MAX];
    int r;

    if (!sysfs)
        sysfs = HV_SYSFS_DEFAULT;
    if (prev && prevsz)
        prev[0] = '\0';
    if ((r = canon_driver(sysfs, addr_in, addr, drv, sizeof(drv), err)) < 0)
        return r;
    if (prev && prevsz)
        hv_strlcpy(prev, drv, prevsz);
    if (strcmp(drv, "vfio-pci") == 0)
        return 0;
    /* Refuse before touching anything if the group would stay unusable. */
    if ((r = hv_sysfs_check_group_would_be_viable(sysfs, addr, err)) < 0)
        return r;

    if ((r = hv_path(path, sizeof(path), "%s/bus/pci/devices/%s/driver_override", sysfs,
                     addr)) < 0)
        return vub_fail(err, r, "%s: path too long", addr);
    if ((r = write_or_fail(path, "vfio-pci", addr, err)) < 0)
        return r;
    if (drv[0]) {
        if ((r = hv_path(path, sizeof(path), "%s/bus/pci/drivers/%s/unbind", sysfs, drv)) < 0)
            return vub_fail(err, r, "%s: path too long", addr);
        if ((r = write_or_fail(path, addr, addr, err)) < 0)
            return r;
    }
    if ((r = hv_path(path, sizeof(path), "%s/bus/pci/drivers_probe", sysfs)) < 0)
        return vub_fail(err, r, "%s: path too long", addr);
    if ((r = write_or_fail(path, addr, addr, err)) < 0)
        return r;

    if ((r = hv_sysfs_driver(sysfs, addr, drv, sizeof(drv))) < 0)
        return vub_fail(err, r, "%s: gone after drivers_probe", addr);
    if (strcmp(drv, "vfio-pci") != 0)
        return vub_fail(err, -ENODEV, "%s: still %s%s after drivers_probe, not vfio-pci (is the "
                       "vfio-pci module loaded?); driver_override stays vfio-pci until release",
                       addr, drv[0] ? "bound to " : "without a driver", drv);
    return 0;
}

int hv_release(const char *sysfs, const char *addr_in, const char *prev, struct vub_err *err)
{
    char addr[HV_ADDR_LEN], drv[64], path[HV_PATH_MAX];
    int r;

    if (!sysfs)
        sysfs = HV_SYSFS_DEFAULT;
    if ((r = canon_driver(sysfs, addr_in, addr, drv, sizeof(drv), err)) < 0)
        return r;
    if ((r = hv_path(path, sizeof(path), "%s/bus/pci/devices/%s/driver_override", sysfs,
                     addr)) < 0)
        return vub_fail(err, r, "%s: path too long", addr);
    if ((r = write_or_fail(path, "\n", addr, err)) < 0)
        return r;
    if (drv[0] && strcmp(drv, "vfio-pci") != 0)
        return 0;   /* someone else's now: leave it alone */
    if (drv[0]) {
        if ((r = hv_path(path, sizeof(path), "%s/bus/pci/drivers/vfio-pci/unbind", sysfs)) < 0)
            return vub_fail(err, r, "%s: path too long", addr);
        if ((r = write_or_fail(path, addr, addr, err)) < 0)
            return r;
    }
    if (prev && prev[0] && strcmp(prev, "vfio-pci") != 0) {
        if ((r = hv_path(path, sizeof(path), "%s/bus/pci/drivers/%s/bind", sysfs, prev)) < 0)
            return vub_fail(err, r, "%s: path too long", addr);
        /* The named driver may be gone or refuse; then let the kernel pick. */
        if (hv_sysfs_write(path, addr) == 0)
            return 0;
    }
    if ((r = hv_path(path, sizeof(path), "%s/bus/pci/drivers_probe", sysfs)) < 0)
        return vub_fail(err, r, "%s: path too long", addr);
    return write_or_fail(path, addr, addr, err);
}
