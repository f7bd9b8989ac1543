/* SPDX-License-Identifier: MIT */
/*
 * hv_sysfs.c - what sysfs says about a PCI function: its driver, its IOMMU
 * group, and whether the group can be handed to VFIO. Every look-up takes the
 * sysfs root so tests can build a fake tree.
 */
#include "hv.h"
#include "hv_internal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const tolerated[] = { "vfio-pci", "pci-stub", "pcieport" };

bool hv_driver_tolerated(const char *drv)
{
    if (!drv || !drv[0])
        return true;
    for (size_t i = 0; i < sizeof(tolerated) / sizeof(tolerated[0]); i++)
        if (strcmp(drv, tolerated[i]) == 0)
            return true;
    /* vfio-pci variant drivers (e.g. mlx5_vfio_pci) also leave DMA to vfio. */
    size_t n = strlen(drv);
    return n > 8 && (strcmp(drv + n - 8, "vfio_pci") == 0 || strcmp(drv + n - 8, "vfio-pci") == 0);
}

int hv_sysfs_read(const char *path, char *buf, size_t bufsz)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, bufsz - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return 0;
}

int hv_sysfs_write(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(s);
    ssize_t n = write(fd, s, len);
    int e = errno;
    if (close(fd) < 0 && n >= 0)
        return -errno;
    if (n < 0)
        return -e;
    return (size_t)n == len ? 0 : -EIO;
}

/* Basename of a symlink's target into out ("" and 0 when there is no link). */
static int link_basename(const char *path, char *out, size_t outsz)
{
    char target[HV_PATH_MAX];
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0) {
        out[0] = '\0';
        return errno == ENOENT ? 0 : -errno;
    }
    target[n] = '\0';
    const char *b = strrchr(target, '/');
    hv_strlcpy(out, b ? b + 1 : target, outsz);
    return 0;
}

static int dev_dir(const char *sysfs, const char *addr, char *buf, size_t bufsz)
{
    return hv_path(buf, bufsz, "%s/bus/pci/devices/%s", sysfs ? sysfs : HV_SYSFS_DEFAULT, addr);
}

int hv_sysfs_driver(const char *sysfs, const char *addr, char *drv, size_t drvsz)
{
    char dir[HV_PATH_MAX], path[HV_PATH_MAX];
    struct stat st;
    int r;

    if (drvsz)
        drv[0] = '\0';
    if ((r = dev_dir(sysfs, addr, dir, sizeof(dir))) < 0)
        return r;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
        return -ENODEV;
    if ((r = hv_path(path, sizeof(path), "%s/driver", dir)) < 0)
        return r;
    return link_basename(path, drv, drvsz);
}

int hv_sysfs_hex_attr(const char *sysfs, const char *addr, const char *name, unsigned digits,
                      uint32_t *out, struct vub_err *err)
{
    char dir[HV_PATH_MAX], path[HV_PATH_MAX], buf[32];
    int r;

    *out = 0;
    if ((r = dev_dir(sysfs, addr, dir, sizeof(dir))) < 0 ||
        (r = hv_path(path, sizeof(path), "%s/%s", dir, name)) < 0)
        return vub_fail(err, r, "%s: sysfs path too long", addr);
    if ((r = hv_sysfs_read(path, buf, sizeof(buf))) < 0)
        return vub_fail(err, r, "%s: cannot read %s: %s", addr, path, strerror(-r));
    uint32_t v = 0;
    bool ok = digits >= 1 && digits <= 8 && strlen(buf) == 2 + digits && buf[0] == '0' &&
              buf[1] == 'x';
    for (unsigned i = 0; ok && i < digits; i++) {
        int ch = (unsigned char)buf[2 + i];
        ok = isxdigit(ch);
        v = v << 4 | (uint32_t)(ch <= '9' ? ch - '0' : tolower(ch) - 'a' + 10);
    }
    if (!ok)
        return vub_fail(err, -EIO, "%s: %s holds \"%s\", not a %u-digit hex number", addr, path,
                       buf, digits);
    *out = v;
    return 0;
}

int hv_sysfs_iommu_group(const char *sysfs, const char *addr, struct vub_err *err)
{
    char dir[HV_PATH_MAX], path[HV_PATH_MAX], name[64];
    struct stat st;
    int r;

    if ((r = dev_dir(sysfs, addr, dir, sizeof(dir))) < 0)
        return vub_fail(err, r, "%s: sysfs path too long", addr);
    if (stat(dir, &st) < 0)
        return vub_fail(err, -ENODEV, "no PCI function %s (nothing at %s)", addr, dir);
    if ((r = hv_path(path, sizeof(path), "%s/iommu_group", dir)) < 0)
        return vub_fail(err, r, "%s: sysfs path too long", addr);
    if ((r = link_basename(path, name, sizeof(name))) < 0)
        return vub_fail(err, r, "%s: cannot read %s: %s", addr, path, strerror(-r));
    if (!name[0])
        return vub_fail(err, -ENOENT,
                       "%s has no IOMMU group (is the IOMMU enabled, e.g. intel_iommu=on?)",
                       addr);
    char *end;
    errno = 0;
    long g = strtol(name, &end, 10);
    if (errno || *end || end == name || g < 0 || g > 0x7fffffff)
        return vub_fail(err, -EINVAL, "%s: IOMMU group link %s has an odd name '%s'", addr,
                       path, name);
    return (int)g;
}

/* Append to a message buffer, keeping it terminated; "..." when full. */
static void msg_append(char *buf, size_t bufsz, const char *s)
{
    size_t len = strlen(buf), add = strlen(s);
    if (len + add < bufsz) {
        memcpy(buf + len, s, add + 1);
    } else if (bufsz > 4 && len + 4 < bufsz) {
        memcpy(buf + len, "...", 4);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The members of IOMMU group `group`, sorted (strdup'ed into names[], at
 * most max; the caller frees them), and the group's devices directory in
 * dir. 0 or -errno. */
static int group_members(const char *sysfs, int group, char *dir, size_t dirsz, char **names,
                         size_t max, size_t *n)
{
    int r;
    *n = 0;
    if ((r = hv_path(dir, dirsz, "%s/kernel/iommu_groups/%d/devices",
                     sysfs ? sysfs : HV_SYSFS_DEFAULT, group)) < 0)
        return r;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && *n < max) {
        if (e->d_name[0] == '.')
            continue;
        names[*n] = strdup(e->d_name);
        if (!names[*n])
            break;
        (*n)++;
    }
    closedir(d);
    qsort(names, *n, sizeof(names[0]), cmp_str);   /* stable messages */
    return 0;
}

int hv_sysfs_group_members(const char *sysfs, int group, const char *skip, char *out,
                           size_t outsz)
{
    char dir[HV_PATH_MAX], path[HV_PATH_MAX], drv[64];
    char *names[256];
    size_t n = 0;
    int count = 0;
    if (outsz == 0)
        return -EINVAL;
    out[0] = '\0';
    int r = group_members(sysfs, group, dir, sizeof(dir), names, 256, &n);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        if (skip && strcmp(names[i], skip) == 0)
            continue;
        if (hv_path(path, sizeof(path), "%s/%s/driver", dir, names[i]) < 0 ||
            link_basename(path, drv, sizeof(drv)) < 0)
            drv[0] = '\0';
        char item[160];
        snprintf(item, sizeof(item), "%s%s (%s)", count ? ", " : "", names[i],
                 drv[0] ? drv : "no driver");
        msg_append(out, outsz, item);
        count++;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return count;
}

int hv_sysfs_group_viable(const char *sysfs, int group, const char *skip, const char *who,
                          struct vub_err *err)
{
    char dir[HV_PATH_MAX], path[HV_PATH_MAX], drv[64];
    char list[sizeof(err->msg)] = "";
    char *names[256];
    size_t n = 0, bad = 0;
    int r = group_members(sysfs, group, dir, sizeof(dir), names, 256, &n);
    if (r == -ENAMETOOLONG)
        return vub_fail(err, r, "group %d: sysfs path too long", group);
    if (r < 0)
        return vub_fail(err, r, "%s%sgroup %d: cannot list %s: %s", who ? who : "",
                       who ? ": " : "", group, dir, strerror(-r));

    for (size_t i = 0; i < n; i++) {
        if (skip && strcmp(names[i], skip) == 0)
            continue;
        if (hv_path(path, sizeof(path), "%s/%s/driver", dir, names[i]) < 0)
            continue;
        if (link_basename(path, drv, sizeof(drv)) < 0 || hv_driver_tolerated(drv))
            continue;
        char item[160];
        snprintf(item, sizeof(item), "%s%s is bound to %s", bad ? ", " : "", names[i], drv);
        msg_append(list, sizeof(list), item);
        bad++;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    if (bad)
        return vub_fail(err, -EBUSY, "%s%sgroup %d is not viable: %s", who ? who : "",
                       who ? ": " : "", group, list);
    return 0;
}

int hv_sysfs_check_exportable(const char *sysfs, const char *addr_in, struct vub_err *err)
{
    char addr[HV_ADDR_LEN], dir[HV_PATH_MAX], drv[64];
    int r;

    if (hv_pci_addr_parse(addr_in, addr) < 0)
        return vub_fail(err, -EINVAL, "'%s' is not a PCI address (want DDDD:BB:DD.F)", addr_in);
    r = hv_sysfs_driver(sysfs, addr, drv, sizeof(drv));
    if (r == -ENODEV) {
        dev_dir(sysfs, addr, dir, sizeof(dir));
        return vub_fail(err, -ENODEV, "no PCI function %s (nothing at %s)", addr, dir);
    }
    if (r < 0)
        return vub_fail(err, r, "%s: cannot read its driver link: %s", addr, strerror(-r));
    if (!drv[0])
        return vub_fail(err, -ENODEV, "%s is bound to no driver, not vfio-pci", addr);
    if (strcmp(drv, "vfio-pci") != 0)
        return vub_fail(err, -EBUSY, "%s is bound to %s, not vfio-pci", addr, drv);
    int group = hv_sysfs_iommu_group(sysfs, addr, err);
    if (group < 0)
        return group;
    r = hv_sysfs_group_viable(sysfs, group, addr, addr, err);
    return r < 0 ? r : group;
}

int hv_sysfs_check_group_would_be_viable(const char *sysfs, const char *addr_in,
                                         struct vub_err *err)
{
    char addr[HV_ADDR_LEN];
    if (hv_pci_addr_parse(addr_in, addr) < 0)
        return vub_fail(err, -EINVAL, "'%s' is not a PCI address (want DDDD:BB:DD.F)", addr_in);
    int group = hv_sysfs_iommu_group(sysfs, addr, err);
    if (group < 0)
        return group;
    return hv_sysfs_group_viable(sysfs, group, addr, addr, err);
}

int hv_sysfs_bar_phys(const char *sysfs, const char *addr, unsigned index, uint64_t *start,
                      uint64_t *size)
{
    char path[HV_PATH_MAX], line[128];
    int r = hv_path(path, sizeof(path), "%s/bus/pci/devices/%s/resource",
                    sysfs ? sysfs : HV_SYSFS_DEFAULT, addr);
    if (r < 0)
        return r;
    if (index > 5)
        return -EINVAL;
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    r = -ENOENT;
    for (unsigned i = 0; fgets(line, sizeof(line), f); i++) {
        if (i != index)
            continue;
        unsigned long long s, e, fl;
        if (sscanf(line, "%llx %llx %llx", &s, &e, &fl) != 3)
            r = -EIO;
        else if (s == 0 || e < s)
            r = -ENOENT;   /* not assigned */
        else {
            *start = s;
            *size = e - s + 1;
            r = 0;
        }
        break;
    }
    fclose(f);
    return r;
}
