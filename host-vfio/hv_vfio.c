/* SPDX-License-Identifier: MIT */
/*
 * hv_vfio.c - the device ops of every kernel back end: a PCI function's VFIO
 * device fd. Every ops call is one ioctl, pread or pwrite on the device fd;
 * the region's kernel offset is added here and nowhere else. How the fd is
 * obtained and where DMA goes is the IOMMU context's business (hv_type1.c,
 * hv_iommufd.c): hv_vfio_open asks the context to attach the function.
 */
#include "hv.h"
#include "hv_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define VD_MAX_REGIONS 64u        /* regions cached (vfio-pci has 9 + a few) */
#define VD_MAX_IRQ_COUNT 4096u    /* MSI-X has at most 2048 vectors */

struct vd_region {
    bool valid;
    int err;           /* cached failure of GET_REGION_INFO (e.g. VGA) */
    uint32_t flags;
    uint64_t size, offset;
};

struct vd_device {
    struct hv_device base;
    int devfd;
    struct hv_attach at;            /* what the IOMMU context's attach gave */
    struct hv_device_info info;
    struct vd_region regions[VD_MAX_REGIONS];
};

static struct vd_device *vd(struct hv_device *d) { return (struct vd_device *)d; }

static int vd_get_info(struct hv_device *d, struct hv_device_info *out)
{
    struct vfio_device_info di = { .argsz = sizeof(di) };
    if (ioctl(vd(d)->devfd, VFIO_DEVICE_GET_INFO, &di) < 0)
        return -errno;
    out->flags = di.flags;
    out->num_regions = di.num_regions;
    out->num_irqs = di.num_irqs;
    return 0;
}

static int vd_get_region_info(struct hv_device *d, uint32_t index, struct hv_region_info *out)
{
    /* 8-byte aligned scratch big enough for the struct and the kept caps. */
    uint64_t buf[(sizeof(struct vfio_region_info) + HV_MAX_REGION_CAPS) / 8];
    struct vfio_region_info *ri = (struct vfio_region_info *)buf;
    uint32_t argsz = sizeof(*ri);

    for (int attempt = 0; attempt < 2; attempt++) {
        memset(buf, 0, sizeof(buf));
        ri->argsz = argsz;
        ri->index = index;
        if (ioctl(vd(d)->devfd, VFIO_DEVICE_GET_REGION_INFO, ri) < 0)
            return -errno;
        if (ri->argsz <= argsz)
            break;
        /* The kernel wants more room for its capability chain. */
        if (ri->argsz > sizeof(buf))
            return -E2BIG;
        if (attempt == 1)
            return -EIO;   /* asked twice for more: give up */
        argsz = ri->argsz;
    }
    memset(out, 0, offsetof(struct hv_region_info, caps));
    out->index = index;
    out->flags = ri->flags;
    out->size = ri->size;
    out->offset = ri->offset;
    out->cap_offset = ri->cap_offset;
    if ((ri->flags & VFIO_REGION_INFO_FLAG_CAPS) && ri->cap_offset >= sizeof(*ri) &&
        argsz > sizeof(*ri)) {
        out->caps_len = argsz - (uint32_t)sizeof(*ri);
        memcpy(out->caps, (uint8_t *)buf + sizeof(*ri), out->caps_len);
    }
    return 0;
}

static int vd_get_irq_info(struct hv_device *d, uint32_t index, struct hv_irq_info *out)
{
    struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = index };
    if (ioctl(vd(d)->devfd, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0)
        return -errno;
    out->index = ii.index;
    out->flags = ii.flags;
    out->count = ii.count;
    return 0;
}

/* Size and kernel offset of every region, read once at open so the data
 * path only reads the cache (safe from several threads). */
static void vd_cache_regions(struct vd_device *t)
{
    for (uint32_t i = 0; i < t->info.num_regions && i < VD_MAX_REGIONS; i++) {
        struct vd_region *r = &t->regions[i];
        struct vfio_region_info ri = { .argsz = sizeof(ri), .index = i };
        r->err = ioctl(t->devfd, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0 ? -errno : 0;
        r->flags = ri.flags;
        r->size = ri.size;
        r->offset = ri.offset;
        r->valid = true;
    }
}

static int vd_region(struct vd_device *t, uint32_t index, struct vd_region **out)
{
    if (index >= t->info.num_regions || index >= VD_MAX_REGIONS || !t->regions[index].valid)
        return -EINVAL;
    struct vd_region *r = &t->regions[index];
    if (r->err)
        return r->err;
    *out = r;
    return 0;
}

static int vd_bounds(struct vd_device *t, uint32_t index, uint64_t off, size_t len,
                     uint64_t *kernel_off)
{
    struct vd_region *r = NULL;
    int e = vd_region(t, index, &r);
    if (e < 0)
        return e;
    if (off > r->size || len > r->size - off)
        return -EINVAL;
    *kernel_off = r->offset + off;
    return 0;
}

static ssize_t vd_region_read(struct hv_device *d, uint32_t index, uint64_t off, void *buf,
                              size_t len)
{
    uint64_t ko;
    int e = vd_bounds(vd(d), index, off, len, &ko);
    if (e < 0)
        return e;
    ssize_t n = pread(vd(d)->devfd, buf, len, (off_t)ko);
    return n < 0 ? -errno : n;
}

static ssize_t vd_region_write(struct hv_device *d, uint32_t index, uint64_t off,
                               const void *buf, size_t len)
{
    uint64_t ko;
    int e = vd_bounds(vd(d), index, off, len, &ko);
    if (e < 0)
        return e;
    ssize_t n = pwrite(vd(d)->devfd, buf, len, (off_t)ko);
    return n < 0 ? -errno : n;
}

static int vd_set_irqs(struct hv_device *d, uint32_t flags, uint32_t index, uint32_t start,
                       uint32_t count, const void *data)
{
    size_t each;
    switch (flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
    case VFIO_IRQ_SET_DATA_NONE: each = 0; break;
    case VFIO_IRQ_SET_DATA_BOOL: each = 1; break;
    case VFIO_IRQ_SET_DATA_EVENTFD: each = 4; break;
    default: return -EINVAL;
    }
    if (count > VD_MAX_IRQ_COUNT || (each && count && !data))
        return -EINVAL;
    size_t sz = sizeof(struct vfio_irq_set) + each * count;
    struct vfio_irq_set *s = calloc(1, sz);
    if (!s)
        return -ENOMEM;
    s->argsz = (uint32_t)sz;
    s->flags = flags;
    s->index = index;
    s->start = start;
    s->count = count;
    if (each && count)
        memcpy(s->data, data, each * count);
    int r = ioctl(vd(d)->devfd, VFIO_DEVICE_SET_IRQS, s) < 0 ? -errno : 0;
    free(s);
    return r;
}

static int vd_reset(struct hv_device *d)
{
    if (!(vd(d)->info.flags & VFIO_DEVICE_FLAGS_RESET))
        return -ENOTTY;   /* the kernel would say EINVAL */
    return ioctl(vd(d)->devfd, VFIO_DEVICE_RESET) < 0 ? -errno : 0;
}

/* VFIO_DEVICE_GET_PCI_HOT_RESET_INFO on a VFIO cdev (Linux 6.6; Debian 12's
 * headers are 6.1's, which lack these): the entries then carry iommufd
 * device ids where a group file's carry group numbers, and the kernel says
 * whether every function in the scope is owned by the caller's iommufd
 * (bound to it, or in the IOMMU group of a function that is). The hot reset
 * of a cdev takes no group files (count 0): the kernel checks that
 * ownership itself. Values of Linux's include/uapi/linux/vfio.h. */
#define VD_HOT_RESET_FLAG_DEV_ID (1u << 0)
#define VD_HOT_RESET_FLAG_DEV_ID_OWNED (1u << 1)
#define VD_DEVID_NOT_OWNED 0xffffffffu   /* (VFIO_PCI_DEVID_OWNED is 0) */

struct vd_reset_scope {
    size_t n;                              /* functions in the scope */
    bool dev_id;                           /* a cdev: ids are iommufd device ids */
    bool all_owned;                        /* a cdev: the kernel says all are owned */
    struct hv_reset_dep deps[HV_MAX_RESET_DEPS];
    uint32_t ids[HV_MAX_RESET_DEPS];       /* group numbers, or device ids */
};

/* The scope of a hot reset of d, as the kernel reports it; for a cdev the
 * group numbers come from sysfs. -ENOSPC when it holds more than
 * HV_MAX_RESET_DEPS (s->n still says how many). */
static int vd_reset_scope(struct hv_device *d, struct vd_reset_scope *s)
{
    size_t cap = HV_MAX_RESET_DEPS;
    size_t sz = sizeof(struct vfio_pci_hot_reset_info) + cap * sizeof(struct vfio_pci_dependent_device);
    struct vfio_pci_hot_reset_info *info = calloc(1, sz);
    if (!info)
        return -ENOMEM;
    info->argsz = (uint32_t)sz;
    s->n = 0;
    int r = ioctl(vd(d)->devfd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) < 0 ? -errno : 0;
    if (r == 0 || r == -ENOSPC)
        s->n = info->count;
    if (r == 0 && info->count > cap)
        r = -ENOSPC;
    s->dev_id = info->flags & VD_HOT_RESET_FLAG_DEV_ID;
    s->all_owned = info->flags & VD_HOT_RESET_FLAG_DEV_ID_OWNED;
    const char *sysfs = hv_iommufd_sysfs(d->iommu);
    for (size_t i = 0; r == 0 && i < info->count; i++) {
        const struct vfio_pci_dependent_device *dd = &info->devices[i];
        struct hv_reset_dep *o = &s->deps[i];
        snprintf(o->addr, sizeof(o->addr), "%04x:%02x:%02x.%u", dd->segment, dd->bus,
                 (unsigned)((dd->devfn >> 3) & 0x1f), (unsigned)(dd->devfn & 7));
        s->ids[i] = dd->group_id;
        if (!s->dev_id) {
            o->group = (int)dd->group_id;
        } else {
            int g = hv_sysfs_iommu_group(sysfs ? sysfs : HV_SYSFS_DEFAULT, o->addr, NULL);
            o->group = g < 0 ? -1 : g;
        }
    }
    free(info);
    return r;
}

static int vd_hot_reset_info(struct hv_device *d, struct hv_reset_dep *out, size_t max,
                             size_t *n)
{
    struct vd_reset_scope *s = malloc(sizeof(*s));
    if (!s)
        return -ENOMEM;
    int r = vd_reset_scope(d, s);
    *n = s->n;
    for (size_t i = 0; r == 0 && i < s->n && i < max; i++)
        out[i] = s->deps[i];
    if (r == 0 && s->n > max)
        r = -ENOSPC;
    free(s);
    return r;
}

/* The group files of every group in the scope, in hr (type1; iommufd
 * through the group). */
static int vd_group_fds(struct hv_device *d, const struct vd_reset_scope *s,
                        struct vfio_pci_hot_reset *hr, struct vub_err *err)
{
    uint32_t count = 0;
    int seen[HV_MAX_RESET_DEPS];
    for (size_t i = 0; i < s->n; i++) {
        bool dup = false;
        for (uint32_t j = 0; j < count && !dup; j++)
            dup = seen[j] == s->deps[i].group;
        if (dup)
            continue;
        int fd = hv_type1_group_fd(d->iommu, s->deps[i].group);
        if (fd == -ENOTSUP)
            fd = hv_iommufd_group_fd(d->iommu, s->deps[i].group);
        if (fd < 0)
            return vub_fail(err, -EPERM, "%s: a hot reset also resets %s in IOMMU group %d, "
                            "which this process does not hold", d->addr, s->deps[i].addr,
                            s->deps[i].group);
        seen[count] = s->deps[i].group;
        hr->group_fds[count++] = fd;
    }
    hr->count = count;
    return 0;
}

static int vd_hot_reset(struct hv_device *d, struct vub_err *err)
{
    struct vd_reset_scope *s = malloc(sizeof(*s));
    if (!s)
        return vub_fail(err, -ENOMEM, "%s: out of memory", d->addr);
    struct vfio_pci_hot_reset *hr = NULL;
    int r = vd_reset_scope(d, s);
    if (r < 0) {
        r = vub_fail(err, r, "%s: VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: %s", d->addr,
                     strerror(-r));
        goto out;
    }
    if (s->dev_id && !s->all_owned) {
        /* name what the kernel will refuse for (the first not owned) */
        size_t i = 0;
        while (i + 1 < s->n && s->ids[i] != VD_DEVID_NOT_OWNED)
            i++;
        r = vub_fail(err, -EPERM, "%s: a hot reset also resets %s in IOMMU group %d, which is "
                     "not this process's (the kernel resets a bus only while every function "
                     "on it is on vfio-pci and bound to this iommufd, or in the IOMMU group of "
                     "one that is)", d->addr, s->n ? s->deps[i].addr : "?",
                     s->n ? s->deps[i].group : -1);
        goto out;
    }
    size_t sz = sizeof(*hr) + s->n * sizeof(int32_t);
    if (!(hr = calloc(1, sz))) {
        r = vub_fail(err, -ENOMEM, "%s: out of memory", d->addr);
        goto out;
    }
    /* a cdev: no group files (the kernel checks the iommufd's ownership) */
    if (!s->dev_id && (r = vd_group_fds(d, s, hr, err)) < 0)
        goto out;
    hr->argsz = (uint32_t)(sizeof(*hr) + hr->count * sizeof(int32_t));
    r = ioctl(vd(d)->devfd, VFIO_DEVICE_PCI_HOT_RESET, hr) < 0 ? -errno : 0;
    if (r == -EINVAL)
        r = vub_fail(err, r, "%s: VFIO_DEVICE_PCI_HOT_RESET: %s (the kernel resets a bus "
                     "only while every function on it is bound to vfio-pci and %s)", d->addr,
                     strerror(-r), s->dev_id ? "owned by this iommufd" : "in a group given");
    else if (r < 0)
        r = vub_fail(err, r, "%s: VFIO_DEVICE_PCI_HOT_RESET: %s", d->addr, strerror(-r));
out:
    free(hr);
    free(s);
    return r;
}

/* A device file of its own, never a dup of devfd: how one is had is the
 * IOMMU context's business (type1: the group's VFIO_GROUP_GET_DEVICE_FD;
 * iommufd has none, a VFIO cdev takes one bound open file). */
static int vd_mmap_fd(struct hv_device *d)
{
    struct hv_iommu *io = d->iommu;
    if (!io->ops->reopen)
        return -ENOTSUP;
    return io->ops->reopen(io, d->addr, &vd(d)->at);
}

static void vd_close(struct hv_device *d)
{
    struct vd_device *t = vd(d);
    if (t->devfd >= 0)
        close(t->devfd);
    if (t->base.iommu) {
        t->base.iommu->ops->detach(t->base.iommu, &t->at);
        hv_iommu_put(t->base.iommu);
    }
    free(t);
}

static const struct hv_device_ops vd_ops = {
    .name = "vfio",
    .get_info = vd_get_info,
    .get_region_info = vd_get_region_info,
    .get_irq_info = vd_get_irq_info,
    .region_read = vd_region_read,
    .region_write = vd_region_write,
    .set_irqs = vd_set_irqs,
    .reset = vd_reset,
    .hot_reset_info = vd_hot_reset_info,
    .hot_reset = vd_hot_reset,
    .mmap_fd = vd_mmap_fd,
    .close = vd_close,
};

int hv_vfio_open(struct hv_iommu *io, const char *addr_in, struct hv_device **out,
                 struct vub_err *err)
{
    char addr[HV_ADDR_LEN];
    int r;

    *out = NULL;
    if (hv_pci_addr_parse(addr_in, addr) < 0)
        return vub_fail(err, -EINVAL, "'%s' is not a PCI address (want DDDD:BB:DD.F)", addr_in);
    if (!io || !io->ops->attach)
        return vub_fail(err, -EINVAL, "%s: the %s IOMMU context cannot take a VFIO device", addr,
                       io ? io->ops->name : "(no)");
    struct vd_device *t = calloc(1, sizeof(*t));
    if (!t)
        return vub_fail(err, -ENOMEM, "%s: out of memory", addr);
    t->base.ops = &vd_ops;
    hv_strlcpy(t->base.addr, addr, sizeof(t->base.addr));
    t->at.devfd = t->at.group = -1;
    if ((r = io->ops->attach(io, addr, &t->at, err)) < 0) {
        free(t);
        return r;
    }
    t->devfd = t->at.devfd;
    t->base.group = t->at.group;
    t->base.one_file = !io->ops->reopen;
    t->base.iommu = io;
    hv_iommu_get(io);
    if ((r = vd_get_info(&t->base, &t->info)) < 0) {
        r = vub_fail(err, r, "%s: VFIO_DEVICE_GET_INFO failed: %s", addr, strerror(-r));
        vd_close(&t->base);
        return r;
    }
    vd_cache_regions(t);
    *out = &t->base;
    return 0;
}

int hv_vfio_kernel_fds(struct hv_device *d, struct hv_kernel_fds *out)
{
    if (!d || d->ops != &vd_ops)
        return -ENOTSUP;
    struct vd_device *t = vd(d);
    int r = hv_type1_fds(d->iommu, t->at.group, &out->container, &out->group_fd);
    if (r < 0)
        return r;
    out->group = t->at.group;
    out->devfd = t->devfd;
    return 0;
}

int hv_vfio_adopt(const char *addr_in, const struct hv_kernel_fds *fds, struct hv_device **out,
                  struct vub_err *err)
{
    char addr[HV_ADDR_LEN];
    *out = NULL;
    if (hv_pci_addr_parse(addr_in, addr) < 0)
        return vub_fail(err, -EINVAL, "'%s' is not a PCI address (want DDDD:BB:DD.F)", addr_in);
    struct vd_device *t = calloc(1, sizeof(*t));
    if (!t)
        return vub_fail(err, -ENOMEM, "%s: out of memory", addr);
    t->base.ops = &vd_ops;
    hv_strlcpy(t->base.addr, addr, sizeof(t->base.addr));
    t->devfd = fds->devfd;
    t->at = (struct hv_attach){ .devfd = fds->devfd, .group = fds->group };
    t->base.group = fds->group;
    int r = vd_get_info(&t->base, &t->info);
    if (r < 0) {
        free(t);
        return vub_fail(err, r, "%s: VFIO_DEVICE_GET_INFO on the inherited fd %d failed: %s",
                       addr, fds->devfd, strerror(-r));
    }
    struct hv_iommu *io;
    if ((r = hv_type1_adopt(fds->container, fds->group, fds->group_fd, &io, err)) < 0) {
        free(t);
        return r;
    }
    t->base.iommu = io;   /* the adopt's reference is the device's */
    vd_cache_regions(t);
    *out = &t->base;
    return 0;
}
