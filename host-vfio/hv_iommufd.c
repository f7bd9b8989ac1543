/* SPDX-License-Identifier: MIT */
/*
 * hv_iommufd.c - the iommufd IOMMU context (see hv_iommufd.h): /dev/iommu,
 * one IOAS, the functions' VFIO cdevs bound and attached to it, DMA map and
 * unmap on the IOAS with type1's rules kept by a table of the mappings.
 * The pure parts are unit-tested; the rest runs in the e2e testbed on its
 * own kernel (tests/e2e/kernel).
 */
#include "hv_iommufd.h"
#include "hv_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ioctl.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* ---- uapi, defined here ------------------------------------------------------
 * Debian 12's headers (Linux 6.1) have no <linux/iommufd.h> (6.2), no VFIO
 * cdev ioctls (6.6) and no IOMMU_IOAS_MAP_FILE (6.13). Layouts and numbers
 * are those of Linux's include/uapi/linux/iommufd.h and vfio.h; the names
 * carry a hvi_ prefix so that they never clash with a newer system header.
 * The kernel takes a structure as long as its size covers the fields it
 * needs, so these (the first, shortest versions) stay valid on newer ones. */
typedef uint64_t hvi_u64 __attribute__((aligned(8)));   /* __aligned_u64 */
#define HVI_IOMMUFD_TYPE ';'
enum {
    HVI_CMD_DESTROY = 0x80,
    HVI_CMD_IOAS_ALLOC = 0x81,
    HVI_CMD_IOAS_IOVA_RANGES = 0x84,
    HVI_CMD_IOAS_MAP = 0x85,
    HVI_CMD_IOAS_UNMAP = 0x86,
    HVI_CMD_VFIO_IOAS = 0x88,
    HVI_CMD_IOAS_MAP_FILE = 0x8f,
};
struct hvi_destroy {
    uint32_t size, id;
};
struct hvi_ioas_alloc {
    uint32_t size, flags, out_ioas_id;
};
struct hvi_iova_range {
    hvi_u64 start, last;
};
struct hvi_ioas_iova_ranges {
    uint32_t size, ioas_id, num_iovas, reserved;
    hvi_u64 allowed_iovas;        /* user pointer to struct hvi_iova_range[] */
    hvi_u64 out_iova_alignment;
};
#define HVI_MAP_FIXED_IOVA (1u << 0)
#define HVI_MAP_WRITEABLE (1u << 1)
#define HVI_MAP_READABLE (1u << 2)
struct hvi_ioas_map {
    uint32_t size, flags, ioas_id, reserved;
    hvi_u64 user_va, length, iova;
};
struct hvi_ioas_map_file {
    uint32_t size, flags, ioas_id;
    int32_t fd;
    hvi_u64 start, length, iova;
};
struct hvi_ioas_unmap {
    uint32_t size, ioas_id;
    hvi_u64 iova, length;
};
#define HVI_VFIO_IOAS_SET 1u
struct hvi_vfio_ioas {             /* IOMMU_VFIO_IOAS: the compat IOAS */
    uint32_t size, ioas_id;
    uint16_t op, reserved;
};
#define HVI_IOMMU_DESTROY _IO(HVI_IOMMUFD_TYPE, HVI_CMD_DESTROY)
#define HVI_IOMMU_IOAS_ALLOC _IO(HVI_IOMMUFD_TYPE, HVI_CMD_IOAS_ALLOC)
#define HVI_IOMMU_IOAS_IOVA_RANGES _IO(HVI_IOMMUFD_TYPE, HVI_CMD_IOAS_IOVA_RANGES)
#define HVI_IOMMU_IOAS_MAP _IO(HVI_IOMMUFD_TYPE, HVI_CMD_IOAS_MAP)
#define HVI_IOMMU_IOAS_UNMAP _IO(HVI_IOMMUFD_TYPE, HVI_CMD_IOAS_UNMAP)
#define HVI_IOMMU_IOAS_MAP_FILE _IO(HVI_IOMMUFD_TYPE, HVI_CMD_IOAS_MAP_FILE)
#define HVI_IOMMU_VFIO_IOAS _IO(HVI_IOMMUFD_TYPE, HVI_CMD_VFIO_IOAS)

struct hvi_bind_iommufd {          /* VFIO_DEVICE_BIND_IOMMUFD */
    uint32_t argsz, flags;
    int32_t iommufd;
    uint32_t out_devid;
};
struct hvi_attach_iommufd_pt {     /* VFIO_DEVICE_ATTACH_IOMMUFD_PT */
    uint32_t argsz, flags, pt_id;
};
#define HVI_VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
#define HVI_VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)

_Static_assert(sizeof(struct hvi_ioas_iova_ranges) == 32, "iommu_ioas_iova_ranges");
_Static_assert(sizeof(struct hvi_ioas_map) == 40, "iommu_ioas_map");
_Static_assert(sizeof(struct hvi_ioas_map_file) == 40, "iommu_ioas_map_file");
_Static_assert(sizeof(struct hvi_ioas_unmap) == 24, "iommu_ioas_unmap");
_Static_assert(sizeof(struct hvi_vfio_ioas) == 12, "iommu_vfio_ioas");
_Static_assert(sizeof(struct hvi_bind_iommufd) == 16, "vfio_device_bind_iommufd");
_Static_assert(sizeof(struct hvi_attach_iommufd_pt) == 12, "vfio_device_attach_iommufd_pt");

/* ---- pure parts ------------------------------------------------------------------ */

int hv_iommufd_cdev_path(const char *sysfs, const char *dev_vfio, const char *addr, char *out,
                         size_t outsz, struct vub_err *err)
{
    char dir[HV_PATH_MAX], name[64] = "";
    int r;
    if ((r = hv_path(dir, sizeof(dir), "%s/bus/pci/devices/%s/vfio-dev", sysfs, addr)) < 0)
        return vub_fail(err, r, "%s: sysfs path too long", addr);
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        if (e == ENOENT)
            return vub_fail(err, -e, "%s has no VFIO device cdev (no %s: a kernel without "
                           "VFIO_DEVICE_CDEV, or not bound to vfio-pci)", addr, dir);
        return vub_fail(err, -e, "%s: cannot read %s: %s", addr, dir, strerror(e));
    }
    unsigned found = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strncmp(n, "vfio", 4) != 0 || !n[4] || strspn(n + 4, "0123456789") != strlen(n + 4))
            continue;
        if (found++ == 0)
            hv_strlcpy(name, n, sizeof(name));
    }
    closedir(d);
    if (found == 0)
        return vub_fail(err, -ENOENT, "%s has no VFIO device cdev (%s is empty)", addr, dir);
    if (found > 1)
        return vub_fail(err, -EEXIST, "%s: %u VFIO device cdevs in %s, expected one", addr, found,
                       dir);
    /* Linux 6.1 already has vfio-dev/vfioN, as a device without a number:
     * only a kernel with VFIO_DEVICE_CDEV gives it a dev (and a node). */
    char devattr[HV_PATH_MAX];
    if ((r = hv_path(devattr, sizeof(devattr), "%s/%s/dev", dir, name)) < 0)
        return vub_fail(err, r, "%s: sysfs path too long", addr);
    if (access(devattr, F_OK) < 0)
        return vub_fail(err, -ENOENT, "%s has no VFIO device cdev (%s/%s has no device number: "
                       "a kernel without VFIO_DEVICE_CDEV)", addr, dir, name);
    if ((r = hv_path(out, outsz, "%s/devices/%s", dev_vfio, name)) < 0)
        return vub_fail(err, r, "%s: path of its VFIO cdev too long", addr);
    return 0;
}

void hv_iommufd_fill_info(const struct hv_iova_range *ranges, uint32_t n, uint64_t align,
                          uint64_t page, struct hv_iommu_info *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t min = align > page ? align : page;
    if (!min || (min & (min - 1)))
        min = 4096;   /* not a power of two: the kernel never says so; be safe */
    out->pgsizes = ~(min - 1);
    if (n > HV_MAX_IOVA_RANGES)
        n = HV_MAX_IOVA_RANGES;
    for (uint32_t i = 0; i < n; i++)
        out->ranges[i] = ranges[i];
    out->nr_ranges = n;   /* the caller refuses n == 0 (no usable IOVA at all) */
}

/* ---- the table of mappings ------------------------------------------------------
 * iommufd's IOMMU_IOAS_UNMAP removes the areas inside a range one after the
 * other and stops with ENOENT at one the range cuts, leaving the ones before
 * it unmapped, and says ENOENT for a range that holds none: the table
 * answers type1's questions (does the range cut a mapping? does it hold
 * any?) before the kernel is asked, so a refused unmap changes nothing.
 * A treap keyed by start (the ranges are disjoint), random priorities:
 * O(log n) look-ups and inserts, O(log n + k) removal of k mappings, which
 * a guest IOMMU's stream of single-page maps and unmaps needs. */
struct hv_ifd_node {
    uint64_t start, end;   /* inclusive */
    uint32_t prio;
    struct hv_ifd_node *l, *r;
};

static uint32_t maps_prio(struct hv_ifd_maps *m)
{
    if (!m->rng)
        m->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)m;
    m->rng ^= m->rng >> 12;   /* xorshift64* */
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return (uint32_t)((m->rng * 2685821657736338717ull) >> 32);
}

/* n into the nodes with start < key (*a) and the others (*b). */
static void maps_split(struct hv_ifd_node *n, uint64_t key, struct hv_ifd_node **a,
                       struct hv_ifd_node **b)
{
    if (!n) {
        *a = *b = NULL;
    } else if (n->start < key) {
        maps_split(n->r, key, &n->r, b);
        *a = n;
    } else {
        maps_split(n->l, key, a, &n->l);
        *b = n;
    }
}

static struct hv_ifd_node *maps_merge(struct hv_ifd_node *a, struct hv_ifd_node *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (a->prio > b->prio) {
        a->r = maps_merge(a->r, b);
        return a;
    }
    b->l = maps_merge(a, b->l);
    return b;
}

/* A mapping holding byte `at`, or NULL. */
static const struct hv_ifd_node *maps_holding(const struct hv_ifd_maps *m, uint64_t at)
{
    const struct hv_ifd_node *n = m->root;
    while (n) {
        if (n->end < at)
            n = n->r;
        else if (n->start > at)
            n = n->l;
        else
            return n;
    }
    return NULL;
}

int hv_ifd_maps_check_add(struct hv_ifd_maps *m, uint64_t iova, uint64_t size)
{
    if (!size || iova + (size - 1) < iova)
        return -EINVAL;
    uint64_t last = iova + (size - 1);
    for (const struct hv_ifd_node *n = m->root; n;) {
        if (n->end < iova)
            n = n->r;
        else if (n->start > last)
            n = n->l;
        else
            return -EEXIST;
    }
    if (m->n >= m->max)
        return -ENOSPC;
    if (!m->spare && !(m->spare = malloc(sizeof(*m->spare))))
        return -ENOMEM;
    return 0;
}

void hv_ifd_maps_add(struct hv_ifd_maps *m, uint64_t iova, uint64_t size)
{
    struct hv_ifd_node *x = m->spare, *a, *b;
    m->spare = NULL;
    *x = (struct hv_ifd_node){ .start = iova, .end = iova + (size - 1), .prio = maps_prio(m) };
    maps_split(m->root, iova, &a, &b);
    m->root = maps_merge(maps_merge(a, x), b);
    m->n++;
}

/* Count and span of the nodes of n with start in [lo, hi]. */
static void maps_span(const struct hv_ifd_node *n, uint64_t lo, uint64_t hi, uint32_t *count,
                      struct hv_iova_range *span)
{
    while (n) {
        if (n->start < lo) {
            n = n->r;
        } else if (n->start > hi) {
            n = n->l;
        } else {
            if (!*count || n->start < span->start)
                span->start = n->start;
            if (!*count || n->end > span->end)
                span->end = n->end;
            (*count)++;
            maps_span(n->l, lo, hi, count, span);
            n = n->r;
        }
    }
}

int hv_ifd_maps_find(const struct hv_ifd_maps *m, uint64_t iova, uint64_t size, uint32_t *count,
                     struct hv_iova_range *span)
{
    if (!size || iova + (size - 1) < iova)
        return -EINVAL;
    uint64_t last = iova + (size - 1);
    const struct hv_ifd_node *a = maps_holding(m, iova), *b = maps_holding(m, last);
    if ((a && a->start < iova) || (b && b->end > last))
        return -EINVAL;   /* cuts the mapping holding its first or last byte */
    *count = 0;
    *span = (struct hv_iova_range){ 0, 0 };
    maps_span(m->root, iova, last, count, span);
    return 0;
}

static void maps_free_tree(struct hv_ifd_node *n)
{
    while (n) {
        struct hv_ifd_node *r = n->r;
        maps_free_tree(n->l);
        free(n);
        n = r;
    }
}

static uint32_t maps_count(const struct hv_ifd_node *n)
{
    uint32_t c = 0;
    for (; n; n = n->r)
        c += 1 + maps_count(n->l);
    return c;
}

void hv_ifd_maps_remove(struct hv_ifd_maps *m, uint64_t iova, uint64_t size)
{
    struct hv_ifd_node *a, *mid, *b;
    maps_split(m->root, iova, &a, &mid);
    if (size && iova + (size - 1) != UINT64_MAX)
        maps_split(mid, iova + size, &mid, &b);
    else
        b = NULL;
    m->n -= maps_count(mid);
    maps_free_tree(mid);
    m->root = maps_merge(a, b);
}

void hv_ifd_maps_free(struct hv_ifd_maps *m)
{
    maps_free_tree(m->root);
    free(m->spare);
    m->root = m->spare = NULL;
    m->n = 0;
}

/* ---- the context -------------------------------------------------------------- */

#define IFD_MAX_RANGES 64u   /* IOVA ranges asked for (a few in practice) */
#define IFD_MAX_GROUPS 16u   /* group files one context holds (through the group) */

struct ifd_group {
    int number, fd;
    unsigned devices;               /* devices attached through it */
};

struct ifd_iommu {
    struct hv_iommu base;
    pthread_mutex_t lock;           /* the table and info against every call */
    char sysfs[HV_PATH_MAX], devdir[HV_PATH_MAX];
    int fd;                         /* /dev/iommu */
    uint32_t ioas;
    bool map_file;                  /* the kernel has IOMMU_IOAS_MAP_FILE */
    uint64_t align;                 /* IOVA and size granularity (>= the page size) */
    struct hv_iommu_info info;
    struct hv_ifd_maps maps;
    /* through the group (hv_iommufd_group_iommu_new): the group files,
     * each attached to this iommufd, whose compat IOAS is ours */
    struct ifd_group groups[IFD_MAX_GROUPS];
    unsigned ngroups;
};

static struct ifd_iommu *ifd(struct hv_iommu *io) { return (struct ifd_iommu *)io; }

/* Read the IOAS's usable ranges again (every attach and detach changes them). */
static int refresh_info(struct ifd_iommu *t)
{
    struct hvi_iova_range kr[IFD_MAX_RANGES];
    struct hvi_ioas_iova_ranges q = {
        .size = sizeof(q), .ioas_id = t->ioas, .num_iovas = IFD_MAX_RANGES,
        .allowed_iovas = (uint64_t)(uintptr_t)kr,
    };
    if (ioctl(t->fd, HVI_IOMMU_IOAS_IOVA_RANGES, &q) < 0)
        return -errno;   /* EMSGSIZE: more than IFD_MAX_RANGES */
    if (q.num_iovas == 0)
        return -ENOSPC;  /* hv_iommu_info's 0 would mean the whole space */
    struct hv_iova_range r[HV_MAX_IOVA_RANGES];
    uint32_t n = q.num_iovas < HV_MAX_IOVA_RANGES ? q.num_iovas : HV_MAX_IOVA_RANGES;
    for (uint32_t i = 0; i < n; i++)
        r[i] = (struct hv_iova_range){ kr[i].start, kr[i].last };
    long pg = sysconf(_SC_PAGESIZE);
    hv_iommufd_fill_info(r, n, q.out_iova_alignment, pg > 0 ? (uint64_t)pg : 4096, &t->info);
    t->align = t->info.pgsizes & -t->info.pgsizes;
    return 0;
}

/* Whether [iova, iova+size) lies inside one usable range (size > 0, no wrap). */
static bool iova_usable(const struct hv_iommu_info *info, uint64_t iova, uint64_t size)
{
    uint64_t last = iova + (size - 1);
    for (uint32_t i = 0; i < info->nr_ranges; i++)
        if (iova >= info->ranges[i].start && last <= info->ranges[i].end)
            return true;
    return false;
}

/* type1's answers before the kernel's: misaligned or outside the usable
 * ranges -EINVAL, overlap -EEXIST, the table full -ENOSPC (t->lock held). */
static int check_map(struct ifd_iommu *t, uint64_t iova, uint64_t size, uint32_t flags)
{
    if (flags & ~(uint32_t)(HV_DMA_READ | HV_DMA_WRITE) || !flags)
        return -EINVAL;
    if (!size || (iova | size) & (t->align - 1) || iova + (size - 1) < iova)
        return -EINVAL;
    if (!iova_usable(&t->info, iova, size))
        return -EINVAL;
    return hv_ifd_maps_check_add(&t->maps, iova, size);
}

static uint32_t map_flags(uint32_t flags)
{
    return HVI_MAP_FIXED_IOVA | (flags & HV_DMA_READ ? HVI_MAP_READABLE : 0) |
           (flags & HV_DMA_WRITE ? HVI_MAP_WRITEABLE : 0);
}

static int ifd_dma_map(struct hv_iommu *io, uint64_t iova, void *vaddr, uint64_t size,
                       uint32_t flags)
{
    struct ifd_iommu *t = ifd(io);
    struct hvi_ioas_map m = {
        .size = sizeof(m), .flags = map_flags(flags), .ioas_id = t->ioas,
        .user_va = (uint64_t)(uintptr_t)vaddr, .length = size, .iova = iova,
    };
    pthread_mutex_lock(&t->lock);
    int r = check_map(t, iova, size, flags);
    if (r == 0 && ioctl(t->fd, HVI_IOMMU_IOAS_MAP, &m) < 0)
        r = -errno;
    if (r == 0)
        hv_ifd_maps_add(&t->maps, iova, size);
    pthread_mutex_unlock(&t->lock);
    return r;
}

static int ifd_dma_map_file(struct hv_iommu *io, uint64_t iova, int fd, uint64_t offset,
                            uint64_t size, uint32_t flags)
{
    struct ifd_iommu *t = ifd(io);
    if (!t->map_file)
        return -ENOTSUP;
    if (fd < 0)
        return -EBADF;
    struct hvi_ioas_map_file m = {
        .size = sizeof(m), .flags = map_flags(flags), .ioas_id = t->ioas, .fd = fd,
        .start = offset, .length = size, .iova = iova,
    };
    pthread_mutex_lock(&t->lock);
    int r = check_map(t, iova, size, flags);
    if (r == 0 && ioctl(t->fd, HVI_IOMMU_IOAS_MAP_FILE, &m) < 0)
        r = -errno;
    if (r == 0)
        hv_ifd_maps_add(&t->maps, iova, size);
    pthread_mutex_unlock(&t->lock);
    return r;
}

static int ioas_unmap(struct ifd_iommu *t, uint64_t iova, uint64_t length)
{
    struct hvi_ioas_unmap u = {
        .size = sizeof(u), .ioas_id = t->ioas, .iova = iova, .length = length,
    };
    return ioctl(t->fd, HVI_IOMMU_IOAS_UNMAP, &u) < 0 ? -errno : 0;
}

static int ifd_dma_unmap(struct hv_iommu *io, uint64_t iova, uint64_t size, uint32_t flags)
{
    struct ifd_iommu *t = ifd(io);
    if (flags & ~(uint32_t)HV_DMA_UNMAP_ALL)
        return -EINVAL;
    if ((flags & HV_DMA_UNMAP_ALL) && (iova || size))
        return -EINVAL;
    pthread_mutex_lock(&t->lock);
    int r;
    if (flags & HV_DMA_UNMAP_ALL) {
        /* iova 0, length U64_MAX: everything */
        r = t->maps.n ? ioas_unmap(t, 0, UINT64_MAX) : 0;
        if (r == 0 || r == -ENOENT) {
            r = 0;
            hv_ifd_maps_remove(&t->maps, 0, 0);   /* everything */
        }
    } else {
        uint32_t count = 0;
        struct hv_iova_range span;
        r = size && ((iova | size) & (t->align - 1)) ? -EINVAL
                                                      : hv_ifd_maps_find(&t->maps, iova, size,
                                                                         &count, &span);
        /* nothing inside: success without asking (the kernel says ENOENT) */
        if (r == 0 && count) {
            r = ioas_unmap(t, span.start, span.end - span.start + 1);
            if (r == 0)
                hv_ifd_maps_remove(&t->maps, iova, size);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return r;
}

static int ifd_info(struct hv_iommu *io, struct hv_iommu_info *out)
{
    struct ifd_iommu *t = ifd(io);
    pthread_mutex_lock(&t->lock);
    *out = t->info;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

/* snprintf whose truncation is fine (a long command line cut short). */
__attribute__((format(printf, 3, 4)))
static void say(char *out, size_t outsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, outsz, fmt, ap);
    va_end(ap);
}

/* Who keeps `addr` from being bound to this iommufd, into who: a process
 * with its cdev open; or with its group open through /dev/vfio/<group> (a
 * type1 user); or with the cdev of another function of its group open (a
 * group's functions are one iommufd's). Empty when none is seen (this
 * process itself, or one we may not inspect). */
static void busy_holder(struct ifd_iommu *t, const char *addr, int group, const char *path,
                        char *who, size_t whosz)
{
    char p[HV_PATH_MAX], tmp[384];
    who[0] = '\0';
    if (hv_proc_holders(NULL, path, tmp, sizeof(tmp)) > 0) {
        say(who, whosz, "%s is open in %s", path, tmp);
        return;
    }
    if (hv_path(p, sizeof(p), "%s/%d", t->devdir, group) == 0 &&
        hv_proc_holders(NULL, p, tmp, sizeof(tmp)) > 0) {
        say(who, whosz, "%s is open in %s", p, tmp);
        return;
    }
    if (hv_path(p, sizeof(p), "%s/kernel/iommu_groups/%d/devices", t->sysfs, group) < 0)
        return;
    DIR *d = opendir(p);
    if (!d)
        return;
    struct dirent *de;
    unsigned seen = 0;
    while ((de = readdir(d)) != NULL && !who[0] && seen++ < 256) {
        char other[HV_ADDR_LEN], cdev[HV_PATH_MAX];
        if (hv_pci_addr_parse(de->d_name, other) < 0 || strcmp(other, addr) == 0 ||
            hv_iommufd_cdev_path(t->sysfs, t->devdir, other, cdev, sizeof(cdev), NULL) < 0)
            continue;
        if (hv_proc_holders(NULL, cdev, tmp, sizeof(tmp)) > 0)
            say(who, whosz, "%s's VFIO cdev %s is open in %s", other, cdev, tmp);
    }
    closedir(d);
}

/* The message of a cdev that cannot be had (open EBUSY, bind EINVAL or
 * EBUSY): -EBUSY, naming who has it and the group's other functions. */
static int busy_fail(struct ifd_iommu *t, const char *addr, int group, const char *path,
                     const char *step, int e, struct vub_err *err)
{
    char who[512], members[256];
    busy_holder(t, addr, group, path, who, sizeof(who));
    if (hv_sysfs_group_members(t->sysfs, group, addr, members, sizeof(members)) <= 0)
        snprintf(members, sizeof(members), "no other function");
    if (who[0])
        return vub_fail(err, -EBUSY, "%s: group %d is busy: %s (%s failed: %s; a VFIO cdev "
                        "takes one user, and a group's functions one iommufd; the group also "
                        "holds %s)", addr, group, who, step, strerror(e), members);
    return vub_fail(err, -EBUSY, "%s: group %d is busy: %s on %s failed (%s): the device, or "
                    "another function of its group, is open already, maybe in this process "
                    "(a VFIO cdev takes one user, and a group's functions one iommufd; the "
                    "group also holds %s)", addr, group, step, path, strerror(e), members);
}

static int ifd_attach(struct hv_iommu *io, const char *addr, struct hv_attach *out,
                      struct vub_err *err)
{
    struct ifd_iommu *t = ifd(io);
    char path[HV_PATH_MAX];
    int r;

    /* The group must be viable for iommufd as well. */
    int group = hv_sysfs_check_exportable(t->sysfs, addr, err);
    if (group < 0)
        return group;
    if ((r = hv_iommufd_cdev_path(t->sysfs, t->devdir, addr, path, sizeof(path), err)) < 0)
        return r;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EACCES || e == EPERM)
            return vub_fail(err, -e, "%s: permission denied opening %s", addr, path);
        /* (7.3 refuses at the bind, not here, while the group is open
         * through /dev/vfio/<group>; an EBUSY here names the same holders) */
        if (e == EBUSY)
            return busy_fail(t, addr, group, path, "open", e, err);
        return vub_fail(err, -e, "%s: cannot open %s: %s", addr, path, strerror(e));
    }
    struct hvi_bind_iommufd b = { .argsz = sizeof(b), .iommufd = t->fd };
    if (ioctl(fd, HVI_VFIO_DEVICE_BIND_IOMMUFD, &b) < 0) {
        int e = errno;
        /* EINVAL: the cdev is bound already; EBUSY: its group is open
         * through /dev/vfio/<group>; EPERM (7.3): the group is another
         * iommufd's, i.e. another function's cdev is bound elsewhere
         * (EPERM without a holder to name is left as it is: it also
         * means a platform without MSI isolation) */
        char who[512];
        if (e == EPERM)
            busy_holder(t, addr, group, path, who, sizeof(who));
        if (e == EINVAL || e == EBUSY || (e == EPERM && who[0]))
            r = busy_fail(t, addr, group, path, "VFIO_DEVICE_BIND_IOMMUFD", e, err);
        else
            r = vub_fail(err, -e, "%s: VFIO_DEVICE_BIND_IOMMUFD on %s failed: %s", addr, path,
                        strerror(e));
        goto fail;
    }
    struct hvi_attach_iommufd_pt a = { .argsz = sizeof(a), .pt_id = t->ioas };
    if (ioctl(fd, HVI_VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a) < 0) {
        r = vub_fail(err, -errno, "%s: VFIO_DEVICE_ATTACH_IOMMUFD_PT to IOAS %u failed: %s", addr,
                    t->ioas, strerror(errno));
        goto fail;
    }
    pthread_mutex_lock(&t->lock);
    r = refresh_info(t);
    pthread_mutex_unlock(&t->lock);
    if (r < 0) {
        r = vub_fail(err, r, "%s: IOMMU_IOAS_IOVA_RANGES failed: %s", addr, strerror(-r));
        goto fail;
    }
    out->devfd = fd;
    out->group = group;
    return 0;

fail:
    close(fd);   /* unbinds and detaches */
    return r;
}

static void ifd_detach(struct hv_iommu *io, const struct hv_attach *a)
{
    (void)a;   /* closing the device fd detached it */
    struct ifd_iommu *t = ifd(io);
    pthread_mutex_lock(&t->lock);
    if (refresh_info(t) < 0) {
        /* keep the narrower ranges of before: still safe to use */
    }
    pthread_mutex_unlock(&t->lock);
}

/* ---- through the group -----------------------------------------------------------
 * VFIO_GROUP_SET_CONTAINER takes an iommufd in place of a container (Linux
 * 6.2, with VFIO_GROUP): the group's devices are then bound to the iommufd
 * and attached to its compat IOAS, which the context made its own IOAS
 * (IOMMU_VFIO_IOAS SET). Each VFIO_GROUP_GET_DEVICE_FD is a new open file
 * of the device, as with type1: a client gets a file of its own (reopen),
 * and DMA is the IOAS's, by file included. */

static struct ifd_group *find_group(struct ifd_iommu *t, int number)
{
    for (unsigned i = 0; i < t->ngroups; i++)
        if (t->groups[i].number == number)
            return &t->groups[i];
    return NULL;
}

/* The group file of `group`, opened and attached to the iommufd (t->lock held). */
static int group_open(struct ifd_iommu *t, const char *addr, int group, struct ifd_group **out,
                      struct vub_err *err)
{
    char path[HV_PATH_MAX];
    int r;
    if ((*out = find_group(t, group)) != NULL)
        return 0;
    if (t->ngroups >= IFD_MAX_GROUPS)
        return vub_fail(err, -ENOSPC, "%s: the iommufd context holds %u groups already", addr,
                        IFD_MAX_GROUPS);
    if ((r = hv_path(path, sizeof(path), "%s/%d", t->devdir, group)) < 0)
        return vub_fail(err, r, "%s: path of group %d too long", addr, group);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EACCES || e == EPERM)
            return vub_fail(err, -e, "%s: permission denied opening %s (group %d)", addr, path,
                            group);
        if (e == EBUSY)   /* another process has the group file, or a cdev of the group */
            return busy_fail(t, addr, group, path, "open", e, err);
        return vub_fail(err, -e, "%s: cannot open %s (group %d): %s", addr, path, group,
                        strerror(e));
    }
    struct vfio_group_status gs = { .argsz = sizeof(gs) };
    if (ioctl(fd, VFIO_GROUP_GET_STATUS, &gs) < 0) {
        r = vub_fail(err, -errno, "%s: VFIO_GROUP_GET_STATUS on group %d failed: %s", addr,
                     group, strerror(errno));
        goto fail;
    }
    if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        struct vub_err why;
        if (hv_sysfs_group_viable(t->sysfs, group, NULL, addr, &why) < 0)
            r = vub_fail(err, -EBUSY, "%s", why.msg);
        else
            r = vub_fail(err, -EBUSY, "%s: group %d is not viable (the kernel says a member is "
                         "held by a host driver)", addr, group);
        goto fail;
    }
    if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &t->fd) < 0) {
        r = vub_fail(err, -errno, "%s: VFIO_GROUP_SET_CONTAINER of group %d with an iommufd "
                     "failed: %s (a kernel without iommufd's VFIO group support?)", addr, group,
                     strerror(errno));
        goto fail;
    }
    t->groups[t->ngroups] = (struct ifd_group){ .number = group, .fd = fd };
    *out = &t->groups[t->ngroups++];
    return 0;
fail:
    close(fd);
    return r;
}

static void group_put(struct ifd_iommu *t, struct ifd_group *g)
{
    if (g->devices)
        return;
    close(g->fd);   /* detaches the group from the iommufd */
    *g = t->groups[--t->ngroups];
}

static int ifdg_attach(struct hv_iommu *io, const char *addr, struct hv_attach *out,
                       struct vub_err *err)
{
    struct ifd_iommu *t = ifd(io);
    int group = hv_sysfs_check_exportable(t->sysfs, addr, err);
    if (group < 0)
        return group;
    pthread_mutex_lock(&t->lock);
    struct ifd_group *g = NULL;
    int r = group_open(t, addr, group, &g, err);
    if (r == 0) {
        int fd = ioctl(g->fd, VFIO_GROUP_GET_DEVICE_FD, addr);
        if (fd < 0) {
            r = vub_fail(err, -errno, "%s: VFIO_GROUP_GET_DEVICE_FD in group %d failed: %s", addr,
                         group, strerror(errno));
            group_put(t, g);
        } else if ((r = refresh_info(t)) < 0) {
            r = vub_fail(err, r, "%s: IOMMU_IOAS_IOVA_RANGES failed: %s", addr, strerror(-r));
            close(fd);
            group_put(t, g);
        } else {
            g->devices++;
            out->devfd = fd;
            out->group = group;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return r;
}

static int ifdg_reopen(struct hv_iommu *io, const char *addr, const struct hv_attach *a)
{
    struct ifd_iommu *t = ifd(io);
    pthread_mutex_lock(&t->lock);
    struct ifd_group *g = find_group(t, a->group);
    int fd = g ? ioctl(g->fd, VFIO_GROUP_GET_DEVICE_FD, addr) : -1;
    int r = fd >= 0 ? fd : g ? -errno : -ENOENT;
    pthread_mutex_unlock(&t->lock);
    return r;
}

static void ifdg_detach(struct hv_iommu *io, const struct hv_attach *a)
{
    struct ifd_iommu *t = ifd(io);
    pthread_mutex_lock(&t->lock);
    struct ifd_group *g = find_group(t, a->group);
    if (g && g->devices) {
        g->devices--;
        group_put(t, g);
    }
    if (refresh_info(t) < 0) {
        /* keep the narrower ranges of before: still safe to use */
    }
    pthread_mutex_unlock(&t->lock);
}

static void ifd_destroy(struct hv_iommu *io)
{
    struct ifd_iommu *t = ifd(io);
    for (unsigned i = 0; i < t->ngroups; i++)
        close(t->groups[i].fd);
    struct hvi_destroy d = { .size = sizeof(d), .id = t->ioas };
    if (ioctl(t->fd, HVI_IOMMU_DESTROY, &d) < 0) {
        /* closing the iommufd frees the IOAS anyway */
    }
    close(t->fd);
    hv_ifd_maps_free(&t->maps);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static const struct hv_iommu_ops ifd_ops = {
    .name = "iommufd",
    .dma_map = ifd_dma_map,
    .dma_unmap = ifd_dma_unmap,
    .dma_map_file = ifd_dma_map_file,
    .info = ifd_info,
    .attach = ifd_attach,
    .detach = ifd_detach,
    .destroy = ifd_destroy,
};

static const struct hv_iommu_ops ifdg_ops = {
    .name = "iommufd-group",
    .dma_map = ifd_dma_map,
    .dma_unmap = ifd_dma_unmap,
    .dma_map_file = ifd_dma_map_file,
    .info = ifd_info,
    .attach = ifdg_attach,
    .reopen = ifdg_reopen,
    .detach = ifdg_detach,
    .destroy = ifd_destroy,
};

static bool is_ifd(const struct hv_iommu *io)
{
    return io && (io->ops == &ifd_ops || io->ops == &ifdg_ops);
}

/* IOMMU_IOAS_MAP_FILE (6.13) of nothing: a kernel that has it checks the
 * arguments (length 0: EINVAL), an older one does not know the command
 * (ENOTTY). */
static bool probe_map_file(int fd, uint32_t ioas)
{
    struct hvi_ioas_map_file m = {
        .size = sizeof(m), .flags = HVI_MAP_FIXED_IOVA | HVI_MAP_READABLE, .ioas_id = ioas,
        .fd = -1, .length = 0,
    };
    return ioctl(fd, HVI_IOMMU_IOAS_MAP_FILE, &m) < 0 && errno == EINVAL;
}

bool hv_iommufd_has_map_file(const struct hv_iommu *io)
{
    return is_ifd(io) && ((const struct ifd_iommu *)io)->map_file;
}

int hv_iommufd_group_fd(struct hv_iommu *io, int group)
{
    if (!io || io->ops != &ifdg_ops)
        return -ENOTSUP;
    struct ifd_iommu *t = ifd(io);
    pthread_mutex_lock(&t->lock);
    struct ifd_group *g = find_group(t, group);
    int fd = g ? g->fd : -ENOENT;
    pthread_mutex_unlock(&t->lock);
    return fd;
}

const char *hv_iommufd_sysfs(const struct hv_iommu *io)
{
    return is_ifd(io) ? ((const struct ifd_iommu *)io)->sysfs : NULL;
}

static int iommu_new(const struct hv_open_opts *opts, bool via_group, struct hv_iommu **out,
                     struct vub_err *err)
{
    const char *sysfs = opts && opts->sysfs ? opts->sysfs : HV_SYSFS_DEFAULT;
    const char *devdir = opts && opts->dev_vfio ? opts->dev_vfio : "/dev/vfio";
    const char *dev_iommu = opts && opts->dev_iommu ? opts->dev_iommu : "/dev/iommu";
    int r;

    *out = NULL;
    struct ifd_iommu *t = calloc(1, sizeof(*t));
    if (!t)
        return vub_fail(err, -ENOMEM, "iommufd: out of memory");
    if (hv_path(t->sysfs, sizeof(t->sysfs), "%s", sysfs) < 0 ||
        hv_path(t->devdir, sizeof(t->devdir), "%s", devdir) < 0) {
        free(t);
        return vub_fail(err, -ENAMETOOLONG, "iommufd: the sysfs or /dev/vfio path is too long");
    }
    t->fd = open(dev_iommu, O_RDWR | O_CLOEXEC);
    if (t->fd < 0) {
        int e = errno;
        free(t);
        if (e == ENOENT)
            return vub_fail(err, -e, "this kernel has no iommufd (no %s)", dev_iommu);
        return vub_fail(err, -e, "cannot open %s: %s", dev_iommu, strerror(e));
    }
    struct hvi_ioas_alloc a = { .size = sizeof(a) };
    if (ioctl(t->fd, HVI_IOMMU_IOAS_ALLOC, &a) < 0) {
        r = vub_fail(err, -errno, "IOMMU_IOAS_ALLOC on %s failed: %s", dev_iommu,
                    strerror(errno));
        close(t->fd);
        free(t);
        return r;
    }
    t->ioas = a.out_ioas_id;
    t->base.ops = via_group ? &ifdg_ops : &ifd_ops;
    t->base.refs = 1;
    t->maps.max = HV_IOMMUFD_MAX_MAPS;
    pthread_mutex_init(&t->lock, NULL);
    if ((r = refresh_info(t)) < 0) {
        r = vub_fail(err, r, "IOMMU_IOAS_IOVA_RANGES failed: %s", strerror(-r));
        ifd_destroy(&t->base);
        return r;
    }
    t->map_file = probe_map_file(t->fd, t->ioas);
    if (via_group) {
        /* the IOAS a group attached to this iommufd goes into */
        struct hvi_vfio_ioas v = { .size = sizeof(v), .ioas_id = t->ioas,
                                   .op = HVI_VFIO_IOAS_SET };
        if (ioctl(t->fd, HVI_IOMMU_VFIO_IOAS, &v) < 0) {
            r = vub_fail(err, -errno, "IOMMU_VFIO_IOAS on %s failed: %s (a kernel without "
                         "iommufd's VFIO group support?)", dev_iommu, strerror(errno));
            ifd_destroy(&t->base);
            return r;
        }
    }
    *out = &t->base;
    return 0;
}

int hv_iommufd_iommu_new(const struct hv_open_opts *opts, struct hv_iommu **out,
                         struct vub_err *err)
{
    return iommu_new(opts, false, out, err);
}

int hv_iommufd_group_iommu_new(const struct hv_open_opts *opts, struct hv_iommu **out,
                               struct vub_err *err)
{
    return iommu_new(opts, true, out, err);
}

static int open_one(const char *addr, const struct hv_open_opts *opts, bool via_group,
                    struct hv_device **out, struct vub_err *err)
{
    struct hv_iommu *io;
    *out = NULL;
    int r = iommu_new(opts, via_group, &io, err);
    if (r < 0)
        return r;
    r = hv_vfio_open(io, addr, out, err);
    hv_iommu_put(io);   /* the device holds its own reference */
    return r;
}

int hv_iommufd_open(const char *addr, const struct hv_open_opts *opts, struct hv_device **out,
                    struct vub_err *err)
{
    return open_one(addr, opts, false, out, err);
}

int hv_iommufd_group_open(const char *addr, const struct hv_open_opts *opts,
                          struct hv_device **out, struct vub_err *err)
{
    return open_one(addr, opts, true, out, err);
}
