/* SPDX-License-Identifier: MIT */
/*
 * hv_type1.c - the type1 IOMMU context: one VFIO container with the type1v2
 * IOMMU, the groups attached to it, and DMA map/unmap on the container fd.
 * Its attach is the kernel open path of a function (sysfs checks, group
 * file, container, group into the container, device fd); the device fd's
 * own calls are hv_vfio.c's.
 */
#include "hv.h"
#include "hv_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define T1_MAX_INFO_BYTES 65536u  /* largest IOMMU info + caps we accept */
#define T1_MAX_GROUPS 16u         /* groups one container holds */

struct t1_group {
    int number, fd;
    unsigned devices;               /* devices attached through it */
};

struct t1_iommu {
    struct hv_iommu base;
    pthread_mutex_t lock;           /* attach/detach against each other and info */
    char sysfs[HV_PATH_MAX], devdir[HV_PATH_MAX];
    int container;                  /* -1 until the first attach opens it */
    bool iommu_set;                 /* VFIO_SET_IOMMU done (while a group is in) */
    bool unmap_all;                 /* VFIO_UNMAP_ALL extension */
    uint64_t min_pgsize;
    struct hv_iommu_info iommu;
    struct t1_group groups[T1_MAX_GROUPS];
    unsigned ngroups;
};

static struct t1_iommu *t1(struct hv_iommu *io) { return (struct t1_iommu *)io; }

static int t1_dma_map(struct hv_iommu *io, uint64_t iova, void *vaddr, uint64_t size,
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
    return ioctl(t1(io)->container, VFIO_IOMMU_MAP_DMA, &m) < 0 ? -errno : 0;
}

static int t1_unmap(struct t1_iommu *t, uint32_t flags, uint64_t iova, uint64_t size)
{
    struct vfio_iommu_type1_dma_unmap u = {
        .argsz = sizeof(u), .flags = flags, .iova = iova, .size = size,
    };
    return ioctl(t->container, VFIO_IOMMU_UNMAP_DMA, &u) < 0 ? -errno : 0;
}

static int t1_dma_unmap(struct hv_iommu *io, uint64_t iova, uint64_t size, uint32_t flags)
{
    struct t1_iommu *t = t1(io);
    if (flags & ~(uint32_t)HV_DMA_UNMAP_ALL)
        return -EINVAL;
    if (!(flags & HV_DMA_UNMAP_ALL))
        return t1_unmap(t, 0, iova, size);
    if (iova || size)
        return -EINVAL;
    pthread_mutex_lock(&t->lock);   /* a later attach may change these */
    bool all = t->unmap_all;
    uint64_t min_pgsize = t->min_pgsize;
    pthread_mutex_unlock(&t->lock);
    if (all)
        return t1_unmap(t, VFIO_DMA_UNMAP_FLAG_ALL, 0, 0);
    /* Older kernels: two ranges that cover the whole space and bisect
     * nothing (type1v2 allows one call to remove many whole mappings). */
    int r = t1_unmap(t, 0, 0, 1ull << 63);
    if (r == 0)
        r = t1_unmap(t, 0, 1ull << 63, (1ull << 63) - min_pgsize);
    return r;
}

static int t1_iommu_info(struct hv_iommu *io, struct hv_iommu_info *out)
{
    struct t1_iommu *t = t1(io);
    pthread_mutex_lock(&t->lock);
    *out = t->iommu;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

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

static struct t1_group *find_group(struct t1_iommu *t, int number)
{
    for (unsigned i = 0; i < t->ngroups; i++)
        if (t->groups[i].number == number)
            return &t->groups[i];
    return NULL;
}

/* Open /dev/vfio/<group>: its errors (permission, busy) are the ones people
 * meet, so this comes before the container. */
static int open_group(struct t1_iommu *t, const char *addr, int group, struct vub_err *err)
{
    char path[HV_PATH_MAX];
    int r;
    if ((r = hv_path(path, sizeof(path), "%s/%d", t->devdir, group)) < 0)
        return vub_fail(err, r, "%s: path of group %d too long", addr, group);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    int e = errno;
    if (e == EACCES || e == EPERM)
        return vub_fail(err, -e, "%s: permission denied opening %s (group %d)", addr, path, group);
    if (e == EBUSY) {
        /* A group is one process's at a time: name it, with the group's
         * other functions (the usual reason on a shared group). */
        char who[384], members[256];
        if (hv_proc_holders(NULL, path, who, sizeof(who)) <= 0)
            snprintf(who, sizeof(who), "another process or an earlier open in this one");
        if (hv_sysfs_group_members(t->sysfs, group, addr, members, sizeof(members)) <= 0)
            snprintf(members, sizeof(members), "no other function");
        return vub_fail(err, -e, "%s: group %d is busy: %s is open in %s (the group also holds "
                       "%s)", addr, group, path, who, members);
    }
    if (e == ENOENT)
        return vub_fail(err, -e, "%s: cannot open %s (group %d): no such file (is vfio-pci "
                       "loaded?)", addr, path, group);
    return vub_fail(err, -e, "%s: cannot open %s (group %d): %s", addr, path, group, strerror(e));
}

/* The container: API version and type1v2. */
static int open_container(struct t1_iommu *t, const char *addr, struct vub_err *err)
{
    char path[HV_PATH_MAX];
    int r;
    if ((r = hv_path(path, sizeof(path), "%s/vfio", t->devdir)) < 0)
        return vub_fail(err, r, "%s: path of the VFIO container too long", addr);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EACCES || e == EPERM)
            return vub_fail(err, -e, "%s: permission denied opening %s", addr, path);
        return vub_fail(err, -e, "%s: cannot open the VFIO container %s: %s", addr, path,
                       strerror(e));
    }
    int api = ioctl(fd, VFIO_GET_API_VERSION);
    if (api < 0)
        r = vub_fail(err, -errno, "%s: VFIO_GET_API_VERSION on %s failed: %s (not a VFIO "
                    "container?)", addr, path, strerror(errno));
    else if (api != VFIO_API_VERSION)
        r = vub_fail(err, -EPROTO, "%s: %s speaks VFIO API %d, this program %d", addr, path, api,
                    VFIO_API_VERSION);
    else if (ioctl(fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0)
        r = vub_fail(err, -ENOTSUP, "%s: the VFIO container %s does not offer the type1v2 "
                    "IOMMU", addr, path);
    else
        return fd;
    close(fd);
    return r;
}

/* A group newly opened: viable, into the container, IOMMU type set (for
 * the first group), IOMMU info read again (a group's reserved regions cut
 * the usable IOVA ranges). */
static int add_group(struct t1_iommu *t, const char *addr, int group, int groupfd,
                     struct vub_err *err)
{
    struct vfio_group_status gs = { .argsz = sizeof(gs) };
    int r;
    if (ioctl(groupfd, VFIO_GROUP_GET_STATUS, &gs) < 0)
        return vub_fail(err, -errno, "%s: VFIO_GROUP_GET_STATUS on group %d failed: %s", addr,
                       group, strerror(errno));
    if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        struct vub_err why;
        if (hv_sysfs_group_viable(t->sysfs, group, NULL, addr, &why) < 0)
            return vub_fail(err, -EBUSY, "%s", why.msg);
        return vub_fail(err, -EBUSY, "%s: group %d is not viable (the kernel says a member is "
                       "held by a host driver)", addr, group);
    }
    if (ioctl(groupfd, VFIO_GROUP_SET_CONTAINER, &t->container) < 0)
        return vub_fail(err, -errno, "%s: VFIO_GROUP_SET_CONTAINER for group %d failed: %s", addr,
                       group, strerror(errno));
    if (!t->iommu_set) {
        if (ioctl(t->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
            return vub_fail(err, -errno, "%s: VFIO_SET_IOMMU(type1v2) for group %d failed: %s",
                           addr, group, strerror(errno));
        t->iommu_set = true;
        t->unmap_all = ioctl(t->container, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL) > 0;
    }
    struct hv_iommu_info info;
    if ((r = get_iommu_info(t->container, &info)) < 0)
        return vub_fail(err, r, "%s: VFIO_IOMMU_GET_INFO failed: %s", addr, strerror(-r));
    t->iommu = info;
    t->min_pgsize = t->iommu.pgsizes ? t->iommu.pgsizes & -t->iommu.pgsizes : 4096;
    return 0;
}

static int t1_attach(struct hv_iommu *io, const char *addr, struct hv_attach *out,
                     struct vub_err *err)
{
    struct t1_iommu *t = t1(io);
    int r;

    /* sysfs: exists, bound to vfio-pci, has a viable group. */
    int group = hv_sysfs_check_exportable(t->sysfs, addr, err);
    if (group < 0)
        return group;

    pthread_mutex_lock(&t->lock);
    struct t1_group *g = find_group(t, group);
    int groupfd = g ? g->fd : -1;
    bool new_container = false;
    if (!g) {
        if (t->ngroups == T1_MAX_GROUPS) {
            r = vub_fail(err, -ENOSPC, "%s: the VFIO container already holds %u groups", addr,
                        T1_MAX_GROUPS);
            goto out;
        }
        if ((groupfd = r = open_group(t, addr, group, err)) < 0)
            goto out;
        if (t->container < 0) {
            if ((r = open_container(t, addr, err)) < 0)
                goto fail_group;
            t->container = r;
            new_container = true;
        }
        if ((r = add_group(t, addr, group, groupfd, err)) < 0)
            goto fail_group;
    }
    int devfd = ioctl(groupfd, VFIO_GROUP_GET_DEVICE_FD, addr);
    if (devfd < 0) {
        r = vub_fail(err, -errno, "%s: VFIO_GROUP_GET_DEVICE_FD in group %d failed: %s", addr,
                    group, strerror(errno));
        if (g)
            goto out;
        goto fail_group;
    }
    /* Older kernels do not set CLOEXEC on the device fd. */
    fcntl(devfd, F_SETFD, FD_CLOEXEC);
    if (!g) {
        g = &t->groups[t->ngroups++];
        *g = (struct t1_group){ .number = group, .fd = groupfd };
    }
    g->devices++;
    out->devfd = devfd;
    out->group = group;
    r = 0;
    goto out;

fail_group:
    close(groupfd);             /* also detaches the group from the container */
    if (t->ngroups == 0)
        t->iommu_set = false;   /* the kernel drops the IOMMU with the last group */
    if (new_container) {
        close(t->container);
        t->container = -1;
    }
out:
    pthread_mutex_unlock(&t->lock);
    return r;
}

/* A device file of its own: each VFIO_GROUP_GET_DEVICE_FD is a new open
 * file of the device (the group path allows several; the kernel resets the
 * device only when the last one closes), so a client's copy is never the
 * bridge's own devfd and kcmp(KCMP_FILE) can tell where it went. */
static int t1_reopen(struct hv_iommu *io, const char *addr, const struct hv_attach *a)
{
    struct t1_iommu *t = t1(io);
    pthread_mutex_lock(&t->lock);
    struct t1_group *g = find_group(t, a->group);
    int fd = g ? ioctl(g->fd, VFIO_GROUP_GET_DEVICE_FD, addr) : -1;
    int e = g ? errno : ENODEV;
    pthread_mutex_unlock(&t->lock);
    if (fd < 0)
        return -e;
    /* Older kernels do not set CLOEXEC on the device fd. */
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static void t1_detach(struct hv_iommu *io, const struct hv_attach *a)
{
    struct t1_iommu *t = t1(io);
    pthread_mutex_lock(&t->lock);
    struct t1_group *g = find_group(t, a->group);
    if (g && --g->devices == 0) {
        close(g->fd);           /* also detaches the group from the container */
        *g = t->groups[--t->ngroups];
        if (t->ngroups == 0)
            t->iommu_set = false;
    }
    pthread_mutex_unlock(&t->lock);
}

static void t1_destroy(struct hv_iommu *io)
{
    struct t1_iommu *t = t1(io);
    for (unsigned i = 0; i < t->ngroups; i++)
        close(t->groups[i].fd);
    if (t->container >= 0)
        close(t->container);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static const struct hv_iommu_ops t1_ops = {
    .name = "type1",
    .dma_map = t1_dma_map,
    .dma_unmap = t1_dma_unmap,
    .info = t1_iommu_info,
    .attach = t1_attach,
    .reopen = t1_reopen,
    .detach = t1_detach,
    .destroy = t1_destroy,
};

int hv_type1_fds(struct hv_iommu *io, int group, int *container, int *group_fd)
{
    if (!io || io->ops != &t1_ops)
        return -ENOTSUP;
    struct t1_iommu *t = t1(io);
    pthread_mutex_lock(&t->lock);
    int r = -ENOTSUP;
    struct t1_group *g = find_group(t, group);
    if (g && t->ngroups == 1 && g->devices == 1 && t->container >= 0) {
        *container = t->container;
        *group_fd = g->fd;
        r = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return r;
}

int hv_type1_group_fd(struct hv_iommu *io, int group)
{
    if (!io || io->ops != &t1_ops)
        return -ENOTSUP;
    struct t1_iommu *t = t1(io);
    pthread_mutex_lock(&t->lock);
    struct t1_group *g = find_group(t, group);
    int r = g ? g->fd : -ENOENT;
    pthread_mutex_unlock(&t->lock);
    return r;
}

int hv_type1_adopt(int container, int group, int group_fd, struct hv_iommu **out,
                   struct vub_err *err)
{
    struct vfio_group_status gs = { .argsz = sizeof(gs) };
    *out = NULL;
    if (ioctl(group_fd, VFIO_GROUP_GET_STATUS, &gs) < 0)
        return vub_fail(err, -errno, "group %d: VFIO_GROUP_GET_STATUS on the inherited fd %d "
                       "failed: %s", group, group_fd, strerror(errno));
    if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE) || !(gs.flags & VFIO_GROUP_FLAGS_CONTAINER_SET))
        return vub_fail(err, -EINVAL, "group %d: the inherited fd %d is %s", group, group_fd,
                       !(gs.flags & VFIO_GROUP_FLAGS_VIABLE) ? "not viable"
                                                             : "in no container");
    if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
        return vub_fail(err, -EINVAL, "the inherited fd %d is not a VFIO container of API %d",
                       container, VFIO_API_VERSION);
    struct hv_iommu_info info;
    int r = get_iommu_info(container, &info);
    if (r < 0)   /* ENODEV/EINVAL when no IOMMU is set on the container */
        return vub_fail(err, r, "VFIO_IOMMU_GET_INFO on the inherited container fd %d "
                       "failed: %s", container, strerror(-r));
    struct t1_iommu *t = calloc(1, sizeof(*t));
    if (!t)
        return vub_fail(err, -ENOMEM, "type1: out of memory");
    hv_strlcpy(t->sysfs, HV_SYSFS_DEFAULT, sizeof(t->sysfs));
    hv_strlcpy(t->devdir, "/dev/vfio", sizeof(t->devdir));
    t->base.ops = &t1_ops;
    t->base.refs = 1;
    t->container = container;
    t->iommu_set = true;
    t->unmap_all = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL) > 0;
    t->iommu = info;
    t->min_pgsize = info.pgsizes ? info.pgsizes & -info.pgsizes : 4096;
    /* the one device hv_vfio_adopt makes (its close detaches it) */
    t->groups[0] = (struct t1_group){ .number = group, .fd = group_fd, .devices = 1 };
    t->ngroups = 1;
    pthread_mutex_init(&t->lock, NULL);
    *out = &t->base;
    return 0;
}

int hv_type1_iommu_new(const struct hv_open_opts *opts, struct hv_iommu **out,
                       struct vub_err *err)
{
    const char *sysfs = opts && opts->sysfs ? opts->sysfs : HV_SYSFS_DEFAULT;
    const char *devdir = opts && opts->dev_vfio ? opts->dev_vfio : "/dev/vfio";

    *out = NULL;
    struct t1_iommu *t = calloc(1, sizeof(*t));
    if (!t)
        return vub_fail(err, -ENOMEM, "type1: out of memory");
    if (hv_path(t->sysfs, sizeof(t->sysfs), "%s", sysfs) < 0 ||
        hv_path(t->devdir, sizeof(t->devdir), "%s", devdir) < 0) {
        free(t);
        return vub_fail(err, -ENAMETOOLONG, "type1: the sysfs or /dev/vfio path is too long");
    }
    t->base.ops = &t1_ops;
    t->base.refs = 1;
    t->container = -1;
    pthread_mutex_init(&t->lock, NULL);
    *out = &t->base;
    return 0;
}

int hv_type1_open(const char *addr, const struct hv_open_opts *opts, struct hv_device **out,
                  struct vub_err *err)
{
    struct hv_iommu *io;
    *out = NULL;
    int r = hv_type1_iommu_new(opts, &io, err);
    if (r < 0)
        return r;
    r = hv_vfio_open(io, addr, out, err);
    hv_iommu_put(io);   /* the device holds its own reference */
    return r;
}
