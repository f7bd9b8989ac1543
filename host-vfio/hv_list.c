/* SPDX-License-Identifier: MIT */
/*
 * hv_list.c - every PCI function under sysfs with its identity, driver,
 * IOMMU group, VFIO cdev, and whether it could be exported now (and why not).
 * Data only: printing belongs to the bridge.
 */
#include "hv.h"
#include "hv_internal.h"
#include "hv_iommufd.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HV_LIST_MAX 4096u   /* functions listed at most */

/* An id attribute, 0 when it is missing or garbled (the listing goes on). */
static uint32_t read_hex(const char *sysfs, const char *addr, const char *name, unsigned digits)
{
    uint32_t v;
    return hv_sysfs_hex_attr(sysfs, addr, name, digits, &v, NULL) < 0 ? 0 : v;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const struct hv_list_entry *)a)->addr,
                  ((const struct hv_list_entry *)b)->addr);
}

static void fill_entry(const char *sysfs, const char *dev_vfio, struct pci_access *names,
                       struct hv_list_entry *e)
{
    struct vub_err err;

    e->id.vendor = (uint16_t)read_hex(sysfs, e->addr, "vendor", 4);
    e->id.device = (uint16_t)read_hex(sysfs, e->addr, "device", 4);
    e->id.subsys_vendor = (uint16_t)read_hex(sysfs, e->addr, "subsystem_vendor", 4);
    e->id.subsys_device = (uint16_t)read_hex(sysfs, e->addr, "subsystem_device", 4);
    e->id.class_code = read_hex(sysfs, e->addr, "class", 6);
    hv_pci_fill_names(names, &e->id);
    if (hv_sysfs_driver(sysfs, e->addr, e->driver, sizeof(e->driver)) < 0)
        e->driver[0] = '\0';
    e->group = hv_sysfs_iommu_group(sysfs, e->addr, NULL);
    if (e->group < 0)
        e->group = -1;
    char cdev[HV_PATH_MAX];
    if (hv_iommufd_cdev_path(sysfs, dev_vfio ? dev_vfio : "/dev/vfio", e->addr, cdev,
                             sizeof(cdev), NULL) == 0)
        hv_strlcpy(e->cdev, strrchr(cdev, '/') + 1, sizeof(e->cdev));

    int r = hv_sysfs_check_exportable(sysfs, e->addr, &err);
    if (r >= 0 && dev_vfio) {
        char path[HV_PATH_MAX];
        if (hv_path(path, sizeof(path), "%s/%d", dev_vfio, r) < 0)
            r = vub_fail(&err, -ENAMETOOLONG, "%s: path too long", e->addr);
        else if (access(path, F_OK) < 0)
            r = vub_fail(&err, -ENOENT, "%s: %s does not exist", e->addr, path);
        else if (access(path, R_OK | W_OK) < 0)
            r = vub_fail(&err, -EACCES, "%s: permission denied opening %s", e->addr, path);
    }
    e->exportable = r >= 0;
    if (r < 0)
        hv_strlcpy(e->why, err.msg, sizeof(e->why));
}

int hv_list_ex(const char *sysfs, const char *dev_vfio, struct hv_list_entry **out, size_t *n,
               struct vub_err *err)
{
    char dir[HV_PATH_MAX];
    struct hv_list_entry *v = NULL;
    size_t cnt = 0, cap = 0;

    *out = NULL;
    *n = 0;
    if (!sysfs)
        sysfs = HV_SYSFS_DEFAULT;
    if (hv_path(dir, sizeof(dir), "%s/bus/pci/devices", sysfs) < 0)
        return vub_fail(err, -ENAMETOOLONG, "sysfs path %s too long", sysfs);
    DIR *d = opendir(dir);
    if (!d)
        return vub_fail(err, -errno, "cannot list PCI functions in %s: %s", dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char addr[HV_ADDR_LEN];
        if (de->d_name[0] == '.' || hv_pci_addr_parse(de->d_name, addr) < 0 ||
            strcmp(addr, de->d_name) != 0)
            continue;
        if (cnt == HV_LIST_MAX)
            break;
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            struct hv_list_entry *nv = realloc(v, ncap * sizeof(*v));
            if (!nv) {
                closedir(d);
                free(v);
                return vub_fail(err, -ENOMEM, "listing PCI functions: out of memory");
            }
            v = nv;
            cap = ncap;
        }
        memset(&v[cnt], 0, sizeof(v[cnt]));
        hv_strlcpy(v[cnt].addr, addr, sizeof(v[cnt].addr));
        cnt++;
    }
    closedir(d);
    if (cnt)
        qsort(v, cnt, sizeof(*v), cmp_entry);

    struct pci_access *names = hv_pci_names_open();
    for (size_t i = 0; i < cnt; i++)
        fill_entry(sysfs, dev_vfio, names, &v[i]);
    hv_pci_names_close(names);
    *out = v;
    *n = cnt;
    return 0;
}

int hv_list(const char *sysfs, struct hv_list_entry **out, size_t *n, struct vub_err *err)
{
    /* Against the real sysfs, also check the group's /dev/vfio node. */
    bool real = !sysfs || strcmp(sysfs, HV_SYSFS_DEFAULT) == 0;
    return hv_list_ex(sysfs, real ? "/dev/vfio" : NULL, out, n, err);
}
