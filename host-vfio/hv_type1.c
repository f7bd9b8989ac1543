/* SPDX-License-Identifier: MIT */
/*
 * hv_type1.c - the kernel back end: a PCI function opened through the VFIO
 * container/group API with the type1v2 IOMMU. Every ops call is one ioctl,
 * pread or pwrite on the device or container fd; the region's kernel offset
 * is added here and nowhere else.
 */
#include "hv.h"
#include "hv_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define T1_MAX_REGIONS 64u        /* regions cached (vfio-pci has 9 + a few) */
#define T1_MAX_IRQ_COUNT 4096u    /* MSI-X has at most 2048 vectors */
#define T1_MAX_INFO_BYTES 65536u  /* largest IOMMU info + caps we accept */

struct t1_region {
    bool valid;
    int err;           /* cached failure of GET_REGION_INFO (e.g. VGA) */
    uint32_t flags;
    uint64_t size, offset;
};

struct t1_device {
    struct hv_device base;
    int container, groupfd, devfd;
    bool unmap_all;                 /* VFIO_UNMAP_ALL extension */
    uint64_t min_pgsize;
    struct hv_device_info info;
    struct hv_iommu_info iommu;
    struct t1_region regions[T1_MAX_REGIONS];
};

static struct t1_device *t1(struct hv_device *d) { return (struct t1_device *)d; }

static int t1_get_info(struct hv_device *d, struct hv_device_info *out)
{
    struct vfio_device_info di = { .argsz = sizeof(di) };
    if (ioctl(t1(d)->devfd, VFIO_DEVICE_GET_INFO, &di) < 0)
        return -errno;
    out->flags = di.flags;
    out->num_regions = di.num_regions;
    out->num_irqs = di.num_irqs;
    return 0;
}

static int t1_get_region_info(struct hv_device *d, uint32_t index, struct hv_region_info *out)
{
    /* 8-byte aligned scratch big enough for the struct and the kept caps. */
    uint64_t buf[(sizeof(struct vfio_region_info) + HV_MAX_REGION_CAPS) / 8];
    struct vfio_region_info *ri = (struct vfio_region_info *)buf;
    uint32_t argsz = sizeof(*ri);

    for (int attempt = 0; attempt < 2; attempt++) {
        memset(buf, 0, sizeof(buf));
        ri->argsz = argsz;
        ri->index = index;
        if (ioctl(t1(d)->devfd, VFIO_DEVICE_GET_REGION_INFO, ri) < 0)
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

static int t1_get_irq_info(struct hv_device *d, uint32_t index, struct hv_irq_info *out)
{
    struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = index };
    if (ioctl(t1(d)->devfd, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0)
        return -errno;
    out->index = ii.index;
    out->flags = ii.flags;
    out->count = ii.count;
    return 0;
}

/* Size and kernel offset of every region, read once at open so the data
 * path only reads the cache (safe from several threads). */
static void t1_cache_regions(struct t1_device *t)
{
    for (uint32_t i = 0; i < t->info.num_regions && i < T1_MAX_REGIONS; i++) {
        struct t1_region *r = &t->regions[i];
        struct vfio_region_info ri = { .argsz = sizeof(ri), .index = i };
        r->err = ioctl(t->devfd, VFIO_DEVICE_GET_REGION_INFO, &ri) < 0 ? -errno : 0;
        r->flags = ri.flags;
        r->size = ri.size;
        r->offset = ri.offset;
        r->valid = true;
    }
}

static int t1_region(struct t1_device *t, uint32_t index, struct t1_region **out)
{
    if (index >= t->info.num_regions || index >= T1_MAX_REGIONS || !t->regions[index].valid)
        return -EINVAL;
    struct t1_region *r = &t->regions[index];
    if (r->err)
        return r->err;
    *out = r;
    return 0;
}

static int t1_bounds(struct t1_device *t, uint32_t index, uint64_t off, size_t len,
                     uint64_t *kernel_off)
{
    struct t1_region *r = NULL;
    int e = t1_region(t, index, &r);
    if (e < 0)
        return e;
    if (off > r->size || len > r->size - off)
        return -EINVAL;
    *kernel_off = r->offset + off;
    return 0;
}

static ssize_t t1_region_read(struct hv_device *d, uint32_t index, uint64_t off, void *buf,
                              size_t len)
{
    uint64_t ko;
    int e = t1_bounds(t1(d), index, off, len, &ko);
    if (e < 0)
        return e;
    ssize_t n = pread(t1(d)->devfd, buf, len, (off_t)ko);
    return n < 0 ? -errno : n;
}

static ssize_t t1_region_write(struct hv_device *d, uint32_t index, uint64_t off,
                               const void *buf, size_t len)
{
    uint64_t ko;
    int e = t1_bounds(t1(d), index, off, len, &ko);
    if (e < 0)
        return e;
    ssize_t n = pwrite(t1(d)->devfd, buf, len, (off_t)ko);
    return n < 0 ? -errno : n;
}

static int t1_set_irqs(struct hv_device *d, uint32_t flags, uint32_t index, uint32_t start,
                       uint32_t count, const void *data)
{
    size_t each;
    switch (flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
    case VFIO_IRQ_SET_DATA_NONE: each = 0; break;
    case VFIO_IRQ_SET_DATA_BOOL: each = 1; break;
    case VFIO_IRQ_SET_DATA_EVENTFD: each = 4; break;
    default: return -EINVAL;
    }
    if (count > T1_MAX_IRQ_COUNT || (each && count && !data))
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
    int r = ioctl(t1(d)->devfd, VFIO_DEVICE_SET_IRQS, s) < 0 ? -errno : 0;
    free(s);
    return r;
}

static int t1_reset(struct hv_device *d)
{
    if (!(t1(d)->info.flags & VFIO_DEVICE_FLAGS_RESET))
        return -ENOTTY;   /* the kernel would say EINVAL */
    return ioctl(t1(d)->devfd, VFIO_DEVICE_RESET) < 0 ? -errno : 0;
}

/* A device file of its own: each VFIO_GROUP_GET_DEVICE_FD is a new open
 * file of the device (the group path allows several; the kernel resets the
 * device only when the last one closes), so a client's copy is never the
 * bridge's own devfd and kcmp(KCMP_FILE) can tell where it went. */
static int t1_mmap_fd(struct hv_device *d)
{
    struct t1_device *t = t1(d);
    int fd = ioctl(t->groupfd, VFIO_GROUP_GET_DEVICE_FD, t->base.addr);
    if (fd < 0)
        return -errno;
    /* Older kernels do not set CLOEXEC on the device fd. */
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static int t1_dma_map(struct hv_device *d, uint64_t iova, void *vaddr, uint64_t size,
                      uint32_t flags)
{
    struct vfio_iommu_type1_dma_map m = {
        .argsz = sizeof(m),
        .flags = flags,
        .vaddr = (uint64_t)(uintptr_t)vaddr,
        .iova = iova,
        .size = size,
    };
    if (flags & ~(uint32_t)(HV_DMA_READ | HV_DMA_WRITE))
        return -EINVAL;
    return ioctl(t1(d)->container, VFIO_IOMMU_MAP_DMA, &m) < 0 ? -errno : 0;
}

static int t1_unmap(struct t1_device *t, uint32_t flags, uint64_t iova, uint64_t size)
{
    struct vfio_iommu_type1_dma_unmap u = {
        .argsz = sizeof(u), .flags = flags, .iova = iova, .size = size,
    };
    return ioctl(t->container, VFIO_IOMMU_UNMAP_DMA, &u) < 0 ? -errno : 0;
}

static int t1_dma_unmap(struct hv_device *d, uint64_t iova, uint64_t size, uint32_t flags)
{
    struct t1_device *t = t1(d);
    if (flags & ~(uint32_t)HV_DMA_UNMAP_ALL)
        return -EINVAL;
    if (!(flags & HV_DMA_UNMAP_ALL))
        return t1_unmap(t, 0, iova, size);
    if (iova || size)
        return -EINVAL;
    if (t->unmap_all)
        return t1_unmap(t, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0);
    /* Older kernels: two ranges that cover the whole space and bisect
     * nothing (type1v2 allows one call to remove many whole mappings). */
    int r = t1_unmap(t, 0, 0, 1ull << 63);
    if (r == 0)
        r = t1_unmap(t, 0, 1ull << 63, (1ull << 63) - t->min_pgsize);
    return r;
}

static int t1_iommu_info(struct hv_device *d, struct hv_iommu_info *out)
{
    *out = t1(d)->iommu;
    return 0;
}

static void t1_close(struct hv_device *d)
{
    struct t1_device *t = t1(d);
    if (t->devfd >= 0)
        close(t->devfd);
    if (t->groupfd >= 0)
        close(t->groupfd);      /* also detaches the group from the container */
    if (t->container >= 0)
        close(t->container);
    free(t);
}

static const struct hv_ops t1_ops = {
    .name = "type1",
    .get_info = t1_get_info,
    .get_region_info = t1_get_region_info,
    .get_irq_info = t1_get_irq_info,
    .region_read = t1_region_read,
    .region_write = t1_region_write,
    .set_irqs = t1_set_irqs,
    .reset = t1_reset,
    .mmap_fd = t1_mmap_fd,
    .dma_map = t1_dma_map,
    .dma_unmap = t1_dma_unmap,
    .iommu_info = t1_iommu_info,
    .close = t1_close,
};

/* Walk the IOMMU info capability chain (offsets from the struct start). */
static void parse_iommu_caps(const uint8_t *buf, uint32_t len, uint32_t first,
                             struct hv_iommu_info *out)
{
    uint32_t off = first;
    for (unsigned hops = 0; off && hops < 64; hops++) {
        struct vfio_info_cap_header h;
        if (off < sizeof(struct vfio_iommu_type1_info) || off > len || len - off < sizeof(h))
            return;
        memcpy(&h, buf + off, sizeof(h));
        if (h.id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
            struct vfio_iommu_type1_info_cap_iova_range c;
            if (len - off >= sizeof(c)) {
                memcpy(&c, buf + off, sizeof(c));
                uint64_t room = (len - off - sizeof(c)) / sizeof(struct vfio_iova_range);
                uint32_t n = c.nr_iovas;
                if (n > room)
                    n = (uint32_t)room;
                if (n > HV_MAX_IOVA_RANGES)
                    n = HV_MAX_IOVA_RANGES;
                for (uint32_t i = 0; i < n; i++) {
                    struct vfio_iova_range r;
                    memcpy(&r, buf + off + sizeof(c) + i * sizeof(r), sizeof(r));
                    out->ranges[i].start = r.start;
                    out->ranges[i].end = r.end;
                }
                out->nr_ranges = n;
            }
        } else if (h.id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
            struct vfio_iommu_type1_info_dma_avail c;
            if (len - off >= sizeof(c)) {
                memcpy(&c, buf + off, sizeof(c));
                out->has_dma_avail = true;
                out->dma_avail = c.avail;
            }
        }
        if (h.next && h.next <= off)
            return;   /* chains only go forward */
        off = h.next;
    }
}

static int get_iommu_info(int container, struct hv_iommu_info *out)
{
    struct vfio_iommu_type1_info hdr = { .argsz = sizeof(hdr) };
    memset(out, 0, sizeof(*out));
    if (ioctl(container, VFIO_IOMMU_GET_INFO, &hdr) < 0)
        return -errno;
    out->pgsizes = hdr.iova_pgsizes;
    if (!(hdr.flags & VFIO_IOMMU_INFO_CAPS) || hdr.argsz <= sizeof(hdr))
        return 0;
    if (hdr.argsz > T1_MAX_INFO_BYTES)
        return -E2BIG;
    uint32_t len = hdr.argsz;
    uint8_t *buf = calloc(1, len);
    if (!buf)
        return -ENOMEM;
    struct vfio_iommu_type1_info *info = (struct vfio_iommu_type1_info *)buf;
    info->argsz = len;
    int r = 0;
    if (ioctl(container, VFIO_IOMMU_GET_INFO, info) < 0)
        r = -errno;
    else if (info->argsz > len)
        r = -EAGAIN;     /* grew between the calls */
    else if (info->flags & VFIO_IOMMU_INFO_CAPS)
        parse_iommu_caps(buf, len, info->cap_offset, out);
    free(buf);
    return r;
}

static int open_fail(struct t1_device *t, int r)
{
    t1_close(&t->base);
    return r;
}

int hv_type1_open(const char *addr_in, const struct hv_open_opts *opts, struct hv_device **out,
                  struct hv_err *err)
{
    const char *sysfs = opts && opts->sysfs ? opts->sysfs : HV_SYSFS_DEFAULT;
    const char *devdir = opts && opts->dev_vfio ? opts->dev_vfio : "/dev/vfio";
    char addr[HV_ADDR_LEN], path[HV_PATH_MAX];
    int r;

    *out = NULL;
    if (hv_pci_addr_parse(addr_in, addr) < 0)
        return hv_fail(err, EINVAL, "'%s' is not a PCI address (want DDDD:BB:DD.F)", addr_in);

    /* 1. sysfs: exists, bound to vfio-pci, has a viable group. */
    int group = hv_sysfs_check_exportable(sysfs, addr, err);
    if (group < 0)
        return group;

    struct t1_device *t = calloc(1, sizeof(*t));
    if (!t)
        return hv_fail(err, ENOMEM, "%s: out of memory", addr);
    t->base.ops = &t1_ops;
    hv_strlcpy(t->base.addr, addr, sizeof(t->base.addr));
    t->base.group = group;
    t->container = t->groupfd = t->devfd = -1;

    /* 2. The group file first: its errors (permission, busy) are the ones
     * people meet. */
    if ((r = hv_path(path, sizeof(path), "%s/%d", devdir, group)) < 0)
        return open_fail(t, hv_fail(err, -r, "%s: path of group %d too long", addr, group));
    t->groupfd = open(path, O_RDWR | O_CLOEXEC);
    if (t->groupfd < 0) {
        int e = errno;
        if (e == EACCES || e == EPERM)
            r = hv_fail(err, e, "%s: permission denied opening %s (group %d)", addr, path, group);
        else if (e == EBUSY)
            r = hv_fail(err, e, "%s: group %d is busy: %s is already open (by another process "
                        "or an earlier open in this one)", addr, group, path);
        else if (e == ENOENT)
            r = hv_fail(err, e, "%s: cannot open %s (group %d): no such file (is vfio-pci "
                        "loaded?)", addr, path, group);
        else
            r = hv_fail(err, e, "%s: cannot open %s (group %d): %s", addr, path, group,
                        strerror(e));
        return open_fail(t, r);
    }

    /* 3. The container: API version and type1v2. */
    if ((r = hv_path(path, sizeof(path), "%s/vfio", devdir)) < 0)
        return open_fail(t, hv_fail(err, -r, "%s: path of the VFIO container too long", addr));
    t->container = open(path, O_RDWR | O_CLOEXEC);
    if (t->container < 0) {
        int e = errno;
        if (e == EACCES || e == EPERM)
            r = hv_fail(err, e, "%s: permission denied opening %s", addr, path);
        else
            r = hv_fail(err, e, "%s: cannot open the VFIO container %s: %s", addr, path,
                        strerror(e));
        return open_fail(t, r);
    }
    int api = ioctl(t->container, VFIO_GET_API_VERSION);
    if (api < 0)
        return open_fail(t, hv_fail(err, errno, "%s: VFIO_GET_API_VERSION on %s failed: %s "
                                    "(not a VFIO container?)", addr, path, strerror(errno)));
    if (api != VFIO_API_VERSION)
        return open_fail(t, hv_fail(err, EPROTO, "%s: %s speaks VFIO API %d, this program %d",
                                    addr, path, api, VFIO_API_VERSION));
    if (ioctl(t->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0)
        return open_fail(t, hv_fail(err, ENOTSUP, "%s: the VFIO container %s does not offer "
                                    "the type1v2 IOMMU", addr, path));

    /* 4. Group viable, into the container, IOMMU type set. */
    struct vfio_group_status gs = { .argsz = sizeof(gs) };
    if (ioctl(t->groupfd, VFIO_GROUP_GET_STATUS, &gs) < 0)
        return open_fail(t, hv_fail(err, errno, "%s: VFIO_GROUP_GET_STATUS on group %d "
                                    "failed: %s", addr, group, strerror(errno)));
    if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        struct hv_err why;
        if (hv_sysfs_group_viable(sysfs, group, NULL, addr, &why) < 0)
            return open_fail(t, hv_fail(err, EBUSY, "%s", why.msg));
        return open_fail(t, hv_fail(err, EBUSY, "%s: group %d is not viable (the kernel "
                                    "says a member is held by a host driver)", addr, group));
    }
    if (ioctl(t->groupfd, VFIO_GROUP_SET_CONTAINER, &t->container) < 0)
        return open_fail(t, hv_fail(err, errno, "%s: VFIO_GROUP_SET_CONTAINER for group %d "
                                    "failed: %s", addr, group, strerror(errno)));
    if (ioctl(t->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
        return open_fail(t, hv_fail(err, errno, "%s: VFIO_SET_IOMMU(type1v2) for group %d "
                                    "failed: %s", addr, group, strerror(errno)));
    t->unmap_all = ioctl(t->container, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL) > 0;
    if ((r = get_iommu_info(t->container, &t->iommu)) < 0)
        return open_fail(t, hv_fail(err, r, "%s: VFIO_IOMMU_GET_INFO failed: %s", addr,
                                    strerror(-r)));
    t->min_pgsize = t->iommu.pgsizes ? t->iommu.pgsizes & -t->iommu.pgsizes : 4096;

    /* 5. The device. */
    t->devfd = ioctl(t->groupfd, VFIO_GROUP_GET_DEVICE_FD, addr);
    if (t->devfd < 0)
        return open_fail(t, hv_fail(err, errno, "%s: VFIO_GROUP_GET_DEVICE_FD in group %d "
                                    "failed: %s", addr, group, strerror(errno)));
    /* Older kernels do not set CLOEXEC on the device fd. */
    fcntl(t->devfd, F_SETFD, FD_CLOEXEC);
    if ((r = t1_get_info(&t->base, &t->info)) < 0)
        return open_fail(t, hv_fail(err, r, "%s: VFIO_DEVICE_GET_INFO failed: %s", addr,
                                    strerror(-r)));
    t1_cache_regions(t);
    *out = &t->base;
    return 0;
}
