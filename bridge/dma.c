/* SPDX-License-Identifier: MIT */
/* The per-client DMA map table: client memory fd -> mmap -> IOMMU map. */
#include <errno.h>
#include <inttypes.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "session.h"

/* Largest mmap alignment taken from a file's block size (1 GiB huge pages). */
#define BR_DMA_MAX_MAP_ALIGN (1ull << 30)

void br_dma_init(struct br_dma_table *t, uint32_t max_maps, uint64_t max_bytes, uint64_t page)
{
    memset(t, 0, sizeof(*t));
    t->max_maps = max_maps;
    t->max_bytes = max_bytes;
    t->page_size = page ? page : 4096;
}

static uint64_t last_byte(const struct br_dma_map *m) { return m->iova + (m->size - 1); }

/* Order of the tree: ranges that overlap compare equal. The ranges in the
 * tree are disjoint, so this is a total order on them, and looking up any
 * range finds a stored one that overlaps it (if there is one). */
static int range_cmp(const void *a, const void *b)
{
    const struct br_dma_map *x = a, *y = b;
    if (last_byte(x) < y->iova)
        return -1;
    if (x->iova > last_byte(y))
        return 1;
    return 0;
}

/* A stored map overlapping [iova, iova+size), or NULL. */
static struct br_dma_map *find_overlap(const struct br_dma_table *t, uint64_t iova, uint64_t size)
{
    struct br_dma_map key = { .iova = iova, .size = size };
    void *node = tfind(&key, &t->root, range_cmp);
    return node ? *(struct br_dma_map **)node : NULL;
}

/* Fill the bridge's page tables for [vaddr, vaddr+size) before the kernel
 * pins it: a read prefault maps the object's pages in batches (fault-around)
 * where pinning would fault them in one at a time. Only the range about to
 * be pinned is touched, so nothing the client did not ask for is allocated.
 *
 * MADV_POPULATE_READ (Linux 5.14) never raises SIGBUS: a page beyond the end
 * of a file the client shrank is EFAULT. Best effort: on any failure
 * (EFAULT, or EINVAL from a kernel without it) the pin that follows faults
 * what is left and reports the real error. In chunks of
 * BR_DMA_PREFAULT_CHUNK with t->interrupted asked between them (-EINTR). */
static int prefault(const struct br_dma_table *t, void *vaddr, uint64_t size)
{
    uintptr_t a = (uintptr_t)vaddr & ~(uintptr_t)(t->page_size - 1);
    uint64_t left = (uint64_t)((uintptr_t)vaddr - a) + size;
    bool check = t->interrupted && size > BR_DMA_PREFAULT_CHUNK;
    while (left) {
        size_t n = (size_t)(left < BR_DMA_PREFAULT_CHUNK ? left : BR_DMA_PREFAULT_CHUNK);
        if (madvise((void *)a, n, MADV_POPULATE_READ) < 0)
            return errno == EINTR ? -EINTR : 0;
        a += n;
        left -= n;
        if (check && t->interrupted(t->interrupted_arg))
            return -EINTR;
    }
    return 0;
}

/* Backing object for fd (taking fd): an existing one with the same inode
 * (fd closed) or a new slot. Returns the slot or -errno (fd closed). */
static int backing_get(struct br_dma_table *t, int fd, const struct stat *st)
{
    ssize_t free_slot = -1;
    for (size_t i = 0; i < t->nb; i++) {
        struct br_dma_backing *b = &t->backings[i];
        if (b->fd < 0) {
            if (free_slot < 0)
                free_slot = (ssize_t)i;
            continue;
        }
        if (b->dev == st->st_dev && b->ino == st->st_ino) {
            close(fd);
            return (int)i;
        }
    }
    if (free_slot < 0) {
        /* no slot free: nb live objects already */
        if (t->nb >= BR_DMA_MAX_BACKINGS) {
            close(fd);
            return -ENOSPC;
        }
        if (t->nb == t->capb) {
            size_t cap = t->capb ? t->capb * 2 : 8;
            struct br_dma_backing *nb = realloc(t->backings, cap * sizeof(*nb));
            if (!nb) {
                close(fd);
                return -ENOMEM;
            }
            t->backings = nb;
            t->capb = cap;
        }
        free_slot = (ssize_t)t->nb++;
    }
    t->backings[free_slot] = (struct br_dma_backing){
        .dev = st->st_dev, .ino = st->st_ino, .fd = fd, .refs = 0,
    };
    struct br_dma_backing *b = &t->backings[free_slot];
    /* The whole object, read-write if the fd allows it, else read-only;
     * if neither works each map gets its own mmap. */
    if (st->st_size > 0 && (uint64_t)st->st_size <= SIZE_MAX) {
        b->len = (size_t)st->st_size;
        b->base = mmap(NULL, b->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        b->writable = b->base != MAP_FAILED;
        if (b->base == MAP_FAILED)
            b->base = mmap(NULL, b->len, PROT_READ, MAP_SHARED, fd, 0);
        if (b->base == MAP_FAILED) {
            b->base = NULL;
            b->len = 0;
        }
    }
    return (int)free_slot;
}

static void backing_put_if_unused(struct br_dma_table *t, int slot)
{
    struct br_dma_backing *b = &t->backings[slot];
    if (b->refs == 0 && b->fd >= 0) {
        if (b->base)
            munmap(b->base, b->len);
        b->base = NULL;
        close(b->fd);
        b->fd = -1;
        while (t->nb > 0 && t->backings[t->nb - 1].fd < 0)
            t->nb--;
    }
}

int br_dma_map(struct br_dma_table *t, struct hv_device *hv, uint64_t iova, uint64_t size,
               uint64_t offset, uint32_t flags, int fd)
{
    int r;
    int slot = -1;
    void *base = NULL;
    size_t len = 0;
    struct br_dma_map *m = NULL;
    bool iommu_mapped = false;

    if (size == 0 || size - 1 > UINT64_MAX - iova ||
        (flags & ~(uint32_t)(VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE))) {
        r = -EINVAL;
        goto fail;
    }
    if (t->n >= t->max_maps) {
        r = -ENOSPC;
        goto fail;
    }
    if (find_overlap(t, iova, size)) {
        r = -EEXIST;
        goto fail;
    }
    m = malloc(sizeof(*m));
    if (!m) {
        r = -ENOMEM;
        goto fail;
    }

    if (fd >= 0) {
        struct stat st;
        if (!(flags & (VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE))) {
            r = -EINVAL;    /* the IOMMU needs a direction */
            goto fail;
        }
        if (fstat(fd, &st) < 0) {
            r = -errno;
            goto fail;
        }
        /* Only regular files (memfd, shm, hugetlbfs, files) and only inside
         * them: pages beyond the end cannot be pinned. */
        if (!S_ISREG(st.st_mode) || st.st_size < 0 || offset > (uint64_t)st.st_size ||
            size > (uint64_t)st.st_size - offset) {
            r = -EINVAL;
            goto fail;
        }
        if (t->max_bytes && (size > t->max_bytes || t->bytes > t->max_bytes - size)) {
            r = -ENOMEM;
            goto fail;
        }
        slot = backing_get(t, fd, &st);
        fd = -1;   /* taken */
        if (slot < 0) {
            r = slot;
            goto fail;
        }
        struct br_dma_backing *b = &t->backings[slot];
        uint8_t *vaddr;
        if (b->base && offset <= b->len && size <= b->len - offset &&
            (b->writable || !(flags & VU_DMA_MAP_FLAG_WRITE))) {
            vaddr = (uint8_t *)b->base + offset;    /* inside the whole mapping */
        } else {
            /* Own mmap (the object grew since, or the whole mapping failed).
             * Granularity: the page size, or the object's block size when
             * larger (hugetlbfs wants offsets aligned to its huge pages;
             * QEMU's are only as aligned as the section). */
            uint64_t pg = t->page_size;
            uint64_t blk = (uint64_t)st.st_blksize;
            if (blk > pg && blk <= BR_DMA_MAX_MAP_ALIGN && (blk & (blk - 1)) == 0)
                pg = blk;
            uint64_t aligned = offset & ~(pg - 1);
            uint64_t delta = offset - aligned;
            if (size > SIZE_MAX - delta - pg) {
                r = -EINVAL;
                goto fail;
            }
            len = (size_t)((size + delta + pg - 1) & ~(pg - 1));
            int prot = ((flags & VU_DMA_MAP_FLAG_READ) ? PROT_READ : 0) |
                       ((flags & VU_DMA_MAP_FLAG_WRITE) ? PROT_WRITE : 0);
            base = mmap(NULL, len, prot, MAP_SHARED, b->fd, (off_t)aligned);
            if (base == MAP_FAILED) {
                r = -errno;
                base = NULL;
                goto fail;
            }
            vaddr = (uint8_t *)base + delta;
        }
        uint32_t hvf = ((flags & VU_DMA_MAP_FLAG_READ) ? HV_DMA_READ : 0) |
                       ((flags & VU_DMA_MAP_FLAG_WRITE) ? HV_DMA_WRITE : 0);
        if ((r = prefault(t, vaddr, size)) < 0)
            goto fail;
        r = hv_dma_map(hv, iova, vaddr, size, hvf);
        if (r < 0)
            goto fail;
        iommu_mapped = true;
    }

    *m = (struct br_dma_map){
        .iova = iova, .size = size, .flags = flags, .backing = slot,
        .map_base = base, .map_len = len,
    };
    if (!tsearch(m, &t->root, range_cmp)) {
        r = -ENOMEM;
        goto fail;
    }
    if (slot >= 0) {
        t->backings[slot].refs++;
        t->bytes += size;
    }
    t->n++;
    return 0;

fail:
    if (iommu_mapped)
        hv_dma_unmap(hv, iova, size, 0);
    free(m);
    if (base)
        munmap(base, len);
    if (slot >= 0)
        backing_put_if_unused(t, slot);
    if (fd >= 0)
        close(fd);
    return r;
}

/* Forget m (the IOMMU no longer maps it): its own mmap, its share of the
 * backing object, its node. */
static void drop_entry(struct br_dma_table *t, struct br_dma_map *m)
{
    if (m->backing >= 0) {
        if (m->map_base)
            munmap(m->map_base, m->map_len);
        t->bytes -= m->size;
        t->backings[m->backing].refs--;
        backing_put_if_unused(t, m->backing);
    }
    tdelete(m, &t->root, range_cmp);
    t->n--;
    free(m);
}

int br_dma_unmap(struct br_dma_table *t, struct hv_device *hv, uint64_t iova, uint64_t size)
{
    if (size == 0 || size - 1 > UINT64_MAX - iova)
        return -ENOENT;
    struct br_dma_map *m = find_overlap(t, iova, 1);
    if (!m || m->iova != iova || m->size != size)
        return -ENOENT;
    if (m->backing >= 0) {
        int r = hv_dma_unmap(hv, iova, size, 0);
        if (r < 0)
            return r;
    }
    drop_entry(t, m);
    return 0;
}

int br_dma_unmap_all(struct br_dma_table *t, struct hv_device *hv)
{
    int first = 0;
    while (t->root) {
        struct br_dma_map *m = *(struct br_dma_map **)t->root;
        if (m->backing >= 0) {
            int r = hv_dma_unmap(hv, m->iova, m->size, 0);
            if (r < 0 && first == 0) {
                first = r;
                br_err("IOMMU unmap of 0x%" PRIx64 "+0x%" PRIx64 " failed: %s", m->iova,
                       m->size, strerror(-r));
            }
        }
        drop_entry(t, m);
    }
    if (first < 0) {
        /* Make sure nothing of this client stays reachable by the device. */
        int r = hv_dma_unmap(hv, 0, 0, HV_DMA_UNMAP_ALL);
        if (r < 0)
            br_err("IOMMU unmap-all failed: %s", strerror(-r));
    }
    return first;
}

void br_dma_free(struct br_dma_table *t)
{
    for (size_t i = 0; i < t->nb; i++) {
        if (t->backings[i].fd < 0)
            continue;
        if (t->backings[i].base)
            munmap(t->backings[i].base, t->backings[i].len);
        close(t->backings[i].fd);
    }
    /* unmap_all emptied the tree; anything left is only memory */
    while (t->root) {
        struct br_dma_map *m = *(struct br_dma_map **)t->root;
        tdelete(m, &t->root, range_cmp);
        if (m->map_base)
            munmap(m->map_base, m->map_len);
        free(m);
    }
    free(t->backings);
    memset(t, 0, sizeof(*t));
}
