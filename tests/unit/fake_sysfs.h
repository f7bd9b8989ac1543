/* SPDX-License-Identifier: MIT */
/*
 * fake_sysfs.h - a temporary directory laid out like /sys for the PCI bits
 * the project reads and writes (header-only; the one builder every unit test
 * with a sysfs tree uses: host-vfio, the policy, the device watch, the udev
 * helper and `vfio-user-bridge list --sysfs`):
 *   devices/pci0000:00/<addr>/{vendor,device,class,subsystem_*,driver_override}
 *   devices/pci0000:00/<addr>/driver      -> ../../../bus/pci/drivers/<drv>
 *   devices/pci0000:00/<addr>/iommu_group -> ../../../kernel/iommu_groups/<n>
 *   bus/pci/devices/<addr>                -> ../../../devices/pci0000:00/<addr>
 *   bus/pci/drivers/<drv>/{bind,unbind}   plain files the test reads back
 *   bus/pci/drivers_probe                 plain file
 *   kernel/iommu_groups/<n>/devices/<addr> -> ../../../../devices/pci0000:00/<addr>
 */
#ifndef VUB_FAKE_SYSFS_H
#define VUB_FAKE_SYSFS_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fake_sysfs {
    char root[64];
};

static inline void fs_path(const struct fake_sysfs *f, char *buf, size_t sz, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline void fs_path(const struct fake_sysfs *f, char *buf, size_t sz, const char *fmt, ...)
{
    size_t n = (size_t)snprintf(buf, sz, "%s/", f->root);
    va_list ap;
    va_start(ap, fmt);
    if (n < sz)
        vsnprintf(buf + n, sz - n, fmt, ap);
    va_end(ap);
}

/* mkdir -p */
static inline int fs_mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    return mkdir(tmp, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

static inline void fs_write_file(const char *path, const char *content)
{
    FILE *fp = fopen(path, "w");
    if (fp) {
        fputs(content, fp);
        fclose(fp);
    }
}

/* Whole content of a file ("" if missing). */
static inline const char *fs_read_file(const char *path)
{
    static char buf[256];
    buf[0] = '\0';
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return buf;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static inline void fs_add_driver(struct fake_sysfs *f, const char *drv)
{
    char p[PATH_MAX];
    fs_path(f, p, sizeof(p), "bus/pci/drivers/%s", drv);
    fs_mkdirs(p);
    fs_path(f, p, sizeof(p), "bus/pci/drivers/%s/bind", drv);
    fs_write_file(p, "");
    fs_path(f, p, sizeof(p), "bus/pci/drivers/%s/unbind", drv);
    fs_write_file(p, "");
}

static inline int fake_sysfs_init(struct fake_sysfs *f)
{
    snprintf(f->root, sizeof(f->root), "/tmp/vub-sysfs.XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    chmod(f->root, 0755);   /* traversable by an unprivileged child */
    char p[PATH_MAX];
    fs_path(f, p, sizeof(p), "devices/pci0000:00");
    fs_mkdirs(p);
    fs_path(f, p, sizeof(p), "bus/pci/devices");
    fs_mkdirs(p);
    fs_path(f, p, sizeof(p), "kernel/iommu_groups");
    fs_mkdirs(p);
    fs_path(f, p, sizeof(p), "bus/pci/drivers_probe");
    fs_write_file(p, "");
    fs_add_driver(f, "vfio-pci");
    return 0;
}

/* Set (or with drv NULL remove) the driver link of a function. */
static inline void fs_set_driver(struct fake_sysfs *f, const char *addr, const char *drv)
{
    char p[PATH_MAX], t[PATH_MAX];
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/driver", addr);
    unlink(p);
    if (!drv)
        return;
    fs_add_driver(f, drv);
    snprintf(t, sizeof(t), "../../../bus/pci/drivers/%s", drv);
    if (symlink(t, p) < 0)
        perror("symlink driver");
}

/* A function with ids, a driver (NULL: none) and an IOMMU group (-1: none). */
static inline void fs_add_dev(struct fake_sysfs *f, const char *addr, const char *drv, int group,
                              unsigned vendor, unsigned device, unsigned class_code)
{
    char p[PATH_MAX], t[PATH_MAX], v[32];
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s", addr);
    fs_mkdirs(p);
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/vendor", addr);
    snprintf(v, sizeof(v), "0x%04x\n", vendor);
    fs_write_file(p, v);
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/device", addr);
    snprintf(v, sizeof(v), "0x%04x\n", device);
    fs_write_file(p, v);
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/class", addr);
    snprintf(v, sizeof(v), "0x%06x\n", class_code);
    fs_write_file(p, v);
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/subsystem_vendor", addr);
    fs_write_file(p, "0x1af4\n");
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/subsystem_device", addr);
    fs_write_file(p, "0x1100\n");
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/driver_override", addr);
    fs_write_file(p, "(null)\n");
    fs_path(f, p, sizeof(p), "bus/pci/devices/%s", addr);
    snprintf(t, sizeof(t), "../../../devices/pci0000:00/%s", addr);
    if (symlink(t, p) < 0)
        perror("symlink dev");
    fs_set_driver(f, addr, drv);
    if (group >= 0) {
        fs_path(f, p, sizeof(p), "kernel/iommu_groups/%d/devices", group);
        fs_mkdirs(p);
        fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/iommu_group", addr);
        snprintf(t, sizeof(t), "../../../kernel/iommu_groups/%d", group);
        if (symlink(t, p) < 0)
            perror("symlink group");
        fs_path(f, p, sizeof(p), "kernel/iommu_groups/%d/devices/%s", group, addr);
        snprintf(t, sizeof(t), "../../../../devices/pci0000:00/%s", addr);
        if (symlink(t, p) < 0)
            perror("symlink member");
    }
}

/* Overwrite (or create) one attribute file of a function with raw text, e.g.
 * a garbled "device" to test how readers cope. */
static inline void fs_set_attr(struct fake_sysfs *f, const char *addr, const char *name,
                               const char *text)
{
    char p[PATH_MAX];
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/%s", addr, name);
    fs_write_file(p, text);
}

static inline int fs_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static inline void fake_sysfs_destroy(struct fake_sysfs *f)
{
    if (f->root[0])
        nftw(f->root, fs_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    f->root[0] = '\0';
}

#endif /* VUB_FAKE_SYSFS_H */
