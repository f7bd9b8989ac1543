/* SPDX-License-Identifier: MIT */
/* The per-client DMA map table: client memory fd -> mmap -> IOMMU map. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "dma.h"
#include "log.h"

/* Largest mmap alignment taken from a file's block size (1 GiB huge pages). */
#define BR_DMA_MAX_MAP_ALIGN (1ull << 30)

void br_dma_init(struct br_dma_table *t, uint32_t max_maps, uint64_t max_bytes, uint64_t page)
{
    memset(t, 0, sizeof(*t));
    t->max_maps = max_maps;
    t->max_bytes = max_bytes;
    t->page_size = page ? page : 4096;
    t->pin_chunk = BR_DMA_PIN_CHUNK;
    /* Treap priorities a client cannot predict (it chooses the keys, so a
     * fixed sequence would let it shape the tree). */
    if (getrandom(&t->rng, sizeof(t->rng), GRND_NONBLOCK) != (ssize_t)sizeof(t->rng)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t->rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)t;
    }
    t->rng |= 1;
}

static uint64_t last_byte(const struct br_dma_map *m) { return m->iova + (m->size - 1); }

/* ---- the ordered tree ----------------------------------------------------------
 * A treap keyed by iova (the ranges are disjoint, so ordering by start orders
 * them completely), heap-ordered by random priorities: expected depth
 * O(log n) whatever the order of the keys. Range removal splits out the
 * subtree of the mappings inside the range: O(log n + k). Nodes are
 * intrusive (struct br_dma_map) and kept on a free list for reuse, so a
 * steady map/unmap cycle allocates nothing. */

static uint32_t next_prio(struct br_dma_table *t)
{
    /* xorshift64* */
    t->rng ^= t->rng >> 12;
    t->rng ^= t->rng << 25;
    t->rng ^= t->rng >> 27;
    return (uint32_t)((t->rng * 2685821657736338717ull) >> 32);
}

/* Split n into the nodes with iova < key (*l) and the others (*r). */
static void split(struct br_dma_map *n, uint64_t key, struct br_dma_map **l, struct br_dma_map **r)
{
    if (!n) {
        *l = *r = NULL;
    } else if (n->iova < key) {
        split(n->right, key, &n->right, r);
        *l = n;
    } else {
        split(n->left, key, l, &n->left);
        *r = n;
    }
}

/* Join a and b, every key of a below every key of b. */
static struct br_dma_map *merge(struct br_dma_map *a, struct br_dma_map *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (a->prio > b->prio) {
        a->right = merge(a->right, b);
        return a;
    }
    b->left = merge(a, b->left);
    return b;
}

static void tree_insert(struct br_dma_table *t, struct br_dma_map *m)
{
    struct br_dma_map *l, *r;
    m->left = m->right = NULL;
    m->prio = next_prio(t);
    split(t->root, m->iova, &l, &r);
    t->root = merge(merge(l, m), r);
}

/* A stored map overlapping [iova, last], or NULL. */
static struct br_dma_map *find_overlap(const struct br_dma_table *t, uint64_t iova, uint64_t last)
{
    struct br_dma_map *n = t->root;
    while (n) {
        if (last_byte(n) < iova)
            n = n->right;
        else if (n->iova > last)
            n = n->left;
        else
            return n;
    }
    return NULL;
}

static struct br_dma_map *node_get(struct br_dma_table *t)
{
    struct br_dma_map *m = t->free_nodes;
    if (m) {
        t->free_nodes = m->right;
        return m;
    }
    return malloc(sizeof(*m));
}

static void node_put(struct br_dma_table *t, struct br_dma_map *m)
{
    m->right = t->free_nodes;
    t->free_nodes = m;
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

/* The kernel map of [iova, iova+size) at vaddr, or (vaddr NULL) of the
 * file fd from offset: one call, or with t->interrupted set pieces of
 * t->pin_chunk with the question between them. -EINTR or an error leaves
 * nothing mapped. */
static int pin(const struct br_dma_table *t, struct hv_device *hv, uint64_t iova,
               uint8_t *vaddr, int fd, uint64_t offset, uint64_t size, uint32_t hvf)
{
    uint64_t chunk = t->interrupted && t->pin_chunk ? t->pin_chunk : size;
    uint64_t done = 0;
    while (done < size) {
        uint64_t n = size - done < chunk ? size - done : chunk;
        int r = vaddr ? hv_dma_map(hv, iova + done, vaddr + done, n, hvf)
                      : hv_dma_map_file(hv, iova + done, fd, offset + done, n, hvf);
        if (r == 0) {
            done += n;
            if (done < size && t->interrupted(t->interrupted_arg))
                r = -EINTR;
        }
        if (r < 0) {
            if (done)
                hv_dma_unmap(hv, iova, done, 0);
            return r;
        }
    }
    return 0;
}

/* The kernel map of one piece the group's registry asks for (dma_shared.h):
 * prefault and pin as for a map of this table's own. */
struct shared_pin_arg {
    const struct br_dma_table *t;
    struct hv_device *hv;
    uint32_t hvf;
};

static int shared_pin(void *arg, uint64_t iova, uint8_t *vaddr, uint64_t size)
{
    const struct shared_pin_arg *a = arg;
    int r = 0;
    if (size > a->t->page_size && (r = prefault(a->t, vaddr, size)) < 0)
        return r;
    return pin(a->t, a->hv, iova, vaddr, -1, 0, size, a->hvf);
}

/* May the device reach the memory of b's fd with VU_DMA_MAP_FLAG_*
 * `flags`? The answers of an mmap of it: READ a readable fd, WRITE a
 * read-write one (-EACCES) whose memfd seals allow writing (-EPERM). The
 * kernel's IOMMU_IOAS_MAP_FILE checks neither. The open mode is read once
 * (an open file keeps it), the seals once they are final (F_SEAL_SEAL set,
 * or a file that takes no seals); until then each WRITE map asks again, so
 * a seal added since is obeyed. */
static int file_access(struct br_dma_backing *b, uint32_t flags)
{
    if (!b->acc_known) {
        int fl = fcntl(b->fd, F_GETFL);
        if (fl < 0)
            return -errno;
        b->acc = fl & O_ACCMODE;
        b->acc_known = true;
    }
    if ((flags & VU_DMA_MAP_FLAG_READ) && b->acc != O_RDONLY && b->acc != O_RDWR)
        return -EACCES;
    if (flags & VU_DMA_MAP_FLAG_WRITE) {
        if (b->acc != O_RDWR)
            return -EACCES;
        int seals = b->seals;
        if (!b->seals_final) {
            seals = fcntl(b->fd, F_GET_SEALS);
            if (seals < 0)   /* EINVAL: not a memfd, it takes no seals, ever */
                seals = errno == EINVAL ? F_SEAL_SEAL : 0;
            if (seals & F_SEAL_SEAL) {
                b->seals = seals;
                b->seals_final = true;
            }
        }
        if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))
            return -EPERM;
    }
    return 0;
}

/* Close a backing nobody uses (idle or just made). */
static void backing_release(struct br_dma_table *t, int slot)
{
    struct br_dma_backing *b = &t->backings[slot];
    if (b->fd < 0)
        return;
    if (b->base)
        munmap(b->base, b->len);
    b->base = NULL;
    close(b->fd);
    b->fd = -1;
    if (b->idle)
        t->n_idle--;
    b->idle = false;
    while (t->nb > 0 && t->backings[t->nb - 1].fd < 0)
        t->nb--;
}

static void release_oldest_idle(struct br_dma_table *t)
{
    int old = -1;
    for (size_t i = 0; i < t->nb; i++) {
        const struct br_dma_backing *b = &t->backings[i];
        if (b->fd >= 0 && b->idle && (old < 0 || b->idle_seq < t->backings[old].idle_seq))
            old = (int)i;
    }
    if (old >= 0)
        backing_release(t, old);
}

void br_dma_close_pending(struct br_dma_table *t)
{
    unsigned n = t->n_close_q;
    if (!n)
        return;
    t->n_close_q = 0;
    int lo = t->close_q[0], hi = t->close_q[0];
    for (unsigned i = 1; i < n; i++) {
        if (t->close_q[i] < lo)
            lo = t->close_q[i];
        if (t->close_q[i] > hi)
            hi = t->close_q[i];
    }
    /* n distinct open fds of ours within [lo, hi] of n numbers: the range
     * holds nothing else, one call closes them all */
    if ((unsigned)(hi - lo) + 1u == n && close_range((unsigned)lo, (unsigned)hi, 0) == 0)
        return;
    for (unsigned i = 0; i < n; i++)
        close(t->close_q[i]);
}

/* fd duplicates an object a backing holds: close it, in a batch. */
static void close_duplicate(struct br_dma_table *t, int fd)
{
    t->close_q[t->n_close_q++] = fd;
    if (t->n_close_q == BR_DMA_CLOSE_BATCH)
        br_dma_close_pending(t);
}

/* Backing object for fd (taking fd): an existing one with the same inode
 * (fd closed, batched; an idle one is in use again) or a new slot (*fresh set).
 * Returns the slot or -errno (fd closed). */
static int backing_get(struct br_dma_table *t, int fd, const struct stat *st, bool *fresh)
{
    ssize_t free_slot = -1;
    *fresh = false;
    for (size_t i = 0; i < t->nb; i++) {
        struct br_dma_backing *b = &t->backings[i];
        if (b->fd < 0) {
            if (free_slot < 0)
                free_slot = (ssize_t)i;
            continue;
        }
        if (b->dev == st->st_dev && b->ino == st->st_ino) {
            close_duplicate(t, fd);
            if (b->idle) {
                b->idle = false;
                t->n_idle--;
            }
            return (int)i;
        }
    }
    if (free_slot < 0 && t->nb >= BR_DMA_MAX_BACKINGS && t->n_idle > 0) {
        release_oldest_idle(t);   /* a new object before one no longer used */
        for (size_t i = 0; i < t->nb && free_slot < 0; i++)
            if (t->backings[i].fd < 0)
                free_slot = (ssize_t)i;
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
    *fresh = true;
    struct br_dma_backing *b = &t->backings[free_slot];
    struct statfs sfs;
    bool shmem = false;
    if (fstatfs(fd, &sfs) == 0) {
        shmem = sfs.f_type == TMPFS_MAGIC;
        b->memfile = shmem || sfs.f_type == HUGETLBFS_MAGIC;
    }
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
    /* QEMU asks for transparent huge pages on its guest RAM (its memfd
     * mapping carries MADV_HUGEPAGE), but the first DMA_MAP's pin through
     * this mapping is usually what allocates that RAM, and the allocating
     * mapping decides: without the same request here, a host that gives
     * shared memory huge pages on request (shmem_enabled "advise") would
     * give a VM behind the bridge small pages where the same VM with kernel
     * VFIO gets huge ones. No effect under "never" (the kernel's default)
     * or "always"; hugetlbfs is huge anyway. Best effort: a kernel without
     * THP says EINVAL. (It does not make the pin faster: zeroing 2 MiB
     * pages cost more per GiB than 4 KiB ones on the test machine.) */
    if (b->base && shmem)
        (void)madvise(b->base, b->len, MADV_HUGEPAGE);
    return (int)free_slot;
}

/* The last mapping of a backing went: keep it idle (bounded). */
static void backing_put_if_unused(struct br_dma_table *t, int slot)
{
    struct br_dma_backing *b = &t->backings[slot];
    if (b->refs != 0 || b->fd < 0 || b->idle)
        return;
    b->idle = true;
    b->idle_seq = ++t->idle_clock;
    if (++t->n_idle > BR_DMA_MAX_IDLE_BACKINGS)
        release_oldest_idle(t);
}

int br_dma_map(struct br_dma_table *t, struct hv_device *hv, uint64_t iova, uint64_t size,
               uint64_t offset, uint32_t flags, int fd)
{
    int r;
    int slot = -1;
    bool fresh = false;
    void *base = NULL;
    size_t len = 0;
    struct br_dma_map *m = NULL;
    bool iommu_mapped = false;
    uint64_t map_off = 0;

    /* size, wrap and flags: checked by the decoder (dma.h) */
    if (t->n >= t->max_maps) {
        r = -ENOSPC;
        goto fail;
    }
    if (find_overlap(t, iova, iova + (size - 1))) {
        r = -EEXIST;
        goto fail;
    }
    m = node_get(t);
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
        slot = backing_get(t, fd, &st, &fresh);
        fd = -1;   /* taken */
        if (slot < 0) {
            r = slot;
            goto fail;
        }
        struct br_dma_backing *b = &t->backings[slot];
        uint32_t hvf = ((flags & VU_DMA_MAP_FLAG_READ) ? HV_DMA_READ : 0) |
                       ((flags & VU_DMA_MAP_FLAG_WRITE) ? HV_DMA_WRITE : 0);
        if (b->memfile && hv->iommu->ops->dma_map_file && !t->shared) {
            /* By fd: what an mmap of this fd would be allowed decides. */
            if ((r = file_access(b, flags)) < 0)
                goto fail;
            r = pin(t, hv, iova, NULL, b->fd, offset, size, hvf);
            if (r == 0) {
                iommu_mapped = true;
                goto mapped;
            }
            if (r != -ENOTSUP)
                goto fail;
        }
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
            map_off = aligned;
        }
        if (t->shared) {
            /* the group's IOMMU: only what no other function has is pinned */
            struct shared_pin_arg pa = { t, hv, hvf };
            struct br_dma_holder other;
            bool hit = false;
            r = br_dma_shared_map(t->shared, hv, t, iova, size, b->dev, b->ino, offset, flags,
                                  vaddr, shared_pin, &pa, &hit, &other);
            if (r == -EEXIST)
                br_debug("DMA_MAP 0x%" PRIx64 "+0x%" PRIx64 ": another function of the group "
                         "has 0x%" PRIx64 "+0x%" PRIx64 " mapped to other memory (object, offset "
                         "or protection)", iova, size, other.iova, other.size);
            if (r < 0)
                goto fail;
            if (hit)
                br_debug("DMA_MAP 0x%" PRIx64 "+0x%" PRIx64 ": shared with another function "
                         "of the group (the IOMMU has it all; no IOMMU call)", iova, size);
        } else {
            /* one page gains nothing from a prefault (pinning faults it
             * once); a vIOMMU guest maps mostly single pages */
            if (size > t->page_size && (r = prefault(t, vaddr, size)) < 0)
                goto fail;
            r = pin(t, hv, iova, vaddr, -1, 0, size, hvf);
            if (r < 0)
                goto fail;
            iommu_mapped = true;
        }
    }

mapped:
    *m = (struct br_dma_map){
        .iova = iova, .size = size, .flags = flags, .backing = slot, .offset = offset,
        .map_base = base, .map_len = len, .map_off = base ? map_off : 0,
    };
    tree_insert(t, m);
    if (slot >= 0) {
        t->backings[slot].refs++;
        t->bytes += size;
    }
    t->n++;
    return 0;

fail:
    if (iommu_mapped)
        hv_dma_unmap(hv, iova, size, 0);
    if (m)
        node_put(t, m);
    if (base)
        munmap(base, len);
    /* a backing made for this map goes again; one held before stays */
    if (slot >= 0 && fresh && t->backings[slot].refs == 0)
        backing_release(t, slot);
    else if (slot >= 0)
        backing_put_if_unused(t, slot);
    if (fd >= 0)
        close(fd);
    return r;
}

/* The IOMMU side of removing fd-backed m: with a group registry only the
 * last table that holds it unmaps it. 0 or the back end's error (then the
 * registry is as before). */
static int iommu_release(struct br_dma_table *t, struct hv_device *hv, const struct br_dma_map *m)
{
    if (!t->shared)
        return hv_dma_unmap(hv, m->iova, m->size, 0);
    int r = br_dma_shared_unmap(t->shared, hv, t, m->iova, m->size);
    if (r == -ENOENT) {
        /* not in the registry: cannot happen (every fd-backed mapping of a
         * group's table is there); the IOMMU must not keep it */
        br_err("DMA 0x%" PRIx64 "+0x%" PRIx64 " is missing from the group's IOMMU table",
               m->iova, m->size);
        r = hv_dma_unmap(hv, m->iova, m->size, 0);
    }
    return r;
}

/* Forget m (the IOMMU no longer maps it, m is out of the tree): its own
 * mmap, its share of the backing object; the node goes to the free list. */
static void drop_entry(struct br_dma_table *t, struct br_dma_map *m)
{
    if (m->backing >= 0) {
        if (m->map_base)
            munmap(m->map_base, m->map_len);
        t->bytes -= m->size;
        t->backings[m->backing].refs--;
        backing_put_if_unused(t, m->backing);
    }
    t->n--;
    node_put(t, m);
}

/* Drop every node of subtree n (out of the tree already). */
static void drop_subtree(struct br_dma_table *t, struct br_dma_map *n)
{
    while (n) {
        struct br_dma_map *l = n->left, *r = n->right;
        drop_entry(t, n);
        drop_subtree(t, l);
        n = r;
    }
}

/* The span [*lo, *hi] of the fd-backed (IOMMU-mapped) nodes of subtree n. */
static void iommu_span(const struct br_dma_map *n, uint64_t *lo, uint64_t *hi, bool *any)
{
    for (; n; n = n->right) {
        iommu_span(n->left, lo, hi, any);
        if (n->backing >= 0) {
            if (!*any || n->iova < *lo)
                *lo = n->iova;
            if (!*any || last_byte(n) > *hi)
                *hi = last_byte(n);
            *any = true;
        }
    }
}

static size_t count_subtree(const struct br_dma_map *n)
{
    size_t k = 0;
    for (; n; n = n->right)
        k += 1 + count_subtree(n->left);
    return k;
}

/* A range unmap in a group's table: mid (out of the tree, between l and
 * r) is released mapping by mapping, since some may still be held by
 * another function; one the IOMMU refuses goes back into the tree. */
static int unmap_shared(struct br_dma_table *t, struct hv_device *hv, struct br_dma_map *l,
                        struct br_dma_map *mid, struct br_dma_map *r)
{
    struct br_dma_map *kept = NULL;
    int first = 0;
    size_t k = 0;
    t->root = merge(l, r);
    while (mid) {
        struct br_dma_map *m = mid;
        mid = merge(m->left, m->right);
        int rc = m->backing >= 0 ? iommu_release(t, hv, m) : 0;
        if (rc < 0) {
            if (first == 0)
                first = rc;
            m->left = kept;   /* a list through left */
            kept = m;
            continue;
        }
        drop_entry(t, m);
        k++;
    }
    while (kept) {
        struct br_dma_map *m = kept;
        kept = m->left;
        tree_insert(t, m);
    }
    if (first < 0)
        return first;
    return (int)(k > INT32_MAX ? INT32_MAX : k);
}

int br_dma_unmap(struct br_dma_table *t, struct hv_device *hv, uint64_t iova, uint64_t size)
{
    if (size == 0 || size - 1 > UINT64_MAX - iova)
        return -EINVAL;
    uint64_t last = iova + (size - 1);
    /* The common case (a vIOMMU unmapping what it mapped): the range is
     * exactly one mapping. Unlink that node where it sits, without the
     * splits and the span walk below; same order as there: the IOMMU first,
     * the table only once the IOMMU no longer maps it. */
    struct br_dma_map **link = &t->root;
    while (*link && (*link)->iova != iova)
        link = iova < (*link)->iova ? &(*link)->left : &(*link)->right;
    struct br_dma_map *m = *link;
    if (m && m->size == size) {
        if (m->backing >= 0) {
            int rc = iommu_release(t, hv, m);
            if (rc < 0)
                return rc;
        }
        *link = merge(m->left, m->right);
        drop_entry(t, m);
        return 1;
    }
    /* A mapping that starts before the range or ends after it is cut:
     * refused before anything is touched (the kernel's type1 v2 rule). */
    m = find_overlap(t, iova, iova);
    if (m && m->iova != iova)
        return -EINVAL;
    m = find_overlap(t, last, last);
    if (m && last_byte(m) != last)
        return -EINVAL;

    /* Now the mappings that overlap the range are exactly those inside it,
     * and they are one subtree between two splits. */
    struct br_dma_map *l, *mid, *r;
    split(t->root, iova, &l, &mid);
    if (last == UINT64_MAX)
        r = NULL;
    else
        split(mid, last + 1, &mid, &r);
    if (!mid) {
        t->root = merge(l, r);
        return 0;   /* an empty range is a success */
    }
    if (t->shared)
        return unmap_shared(t, hv, l, mid, r);
    /* One IOMMU unmap over the span of the fd-backed mappings removed: the
     * IOMMU holds exactly the table's fd-backed mappings, so this removes
     * those and nothing else, all or nothing (the kernel checks the whole
     * range before it unmaps anything). Each fd-backed mapping is aligned
     * (the IOMMU accepted it), so the span is too, whatever the request. */
    uint64_t lo = 0, hi = 0;
    bool any = false;
    iommu_span(mid, &lo, &hi, &any);
    if (any) {
        int rc = hv_dma_unmap(hv, lo, hi - lo + 1, 0);
        if (rc < 0) {
            t->root = merge(merge(l, mid), r);
            return rc;
        }
    }
    size_t k = count_subtree(mid);
    t->root = merge(l, r);
    drop_subtree(t, mid);
    return (int)(k > INT32_MAX ? INT32_MAX : k);
}

int br_dma_unmap_all(struct br_dma_table *t, struct hv_device *hv)
{
    int first = 0;
    while (t->root) {
        struct br_dma_map *m = t->root;
        t->root = merge(m->left, m->right);
        if (m->backing >= 0) {
            int r = iommu_release(t, hv, m);
            if (r < 0 && first == 0) {
                first = r;
                br_err("IOMMU unmap of 0x%" PRIx64 "+0x%" PRIx64 " failed: %s", m->iova,
                       m->size, strerror(-r));
            }
        }
        drop_entry(t, m);
    }
    /* the client let go of everything: so does the bridge */
    br_dma_close_pending(t);
    for (size_t i = 0; i < t->nb; i++)
        if (t->backings[i].fd >= 0 && t->backings[i].refs == 0)
            backing_release(t, (int)i);
    if (first < 0 && !t->shared) {
        /* Make sure nothing of this client stays reachable by the device.
         * (Not in a group: the other functions' mappings are there too;
         * the failed one was logged.) */
        int r = hv_dma_unmap(hv, 0, 0, HV_DMA_UNMAP_ALL);
        if (r < 0)
            br_err("IOMMU unmap-all failed: %s", strerror(-r));
    }
    return first;
}

/* In-order walk filling out[] up to max. */
static void ranges_walk(const struct br_dma_map *n, struct br_dma_range *out, size_t max,
                        size_t *k)
{
    for (; n && *k < max; n = n->right) {
        ranges_walk(n->left, out, max, k);
        if (*k >= max)
            return;
        out[(*k)++] = (struct br_dma_range){ .iova = n->iova, .size = n->size,
                                             .flags = n->flags, .fd = n->backing >= 0 };
    }
}

size_t br_dma_ranges(const struct br_dma_table *t, struct br_dma_range *out, size_t max)
{
    size_t k = 0;
    ranges_walk(t->root, out, max, &k);
    return k;
}

static void free_subtree(struct br_dma_map *n)
{
    while (n) {
        struct br_dma_map *l = n->left, *r = n->right;
        if (n->map_base)
            munmap(n->map_base, n->map_len);
        free(n);
        free_subtree(l);
        n = r;
    }
}

void br_dma_free(struct br_dma_table *t)
{
    br_dma_close_pending(t);
    for (size_t i = 0; i < t->nb; i++) {
        if (t->backings[i].fd < 0)
            continue;
        if (t->backings[i].base)
            munmap(t->backings[i].base, t->backings[i].len);
        close(t->backings[i].fd);
    }
    /* unmap_all emptied the tree; anything left is only memory */
    free_subtree(t->root);
    while (t->free_nodes) {
        struct br_dma_map *m = t->free_nodes;
        t->free_nodes = m->right;
        free(m);
    }
    free(t->backings);
    memset(t, 0, sizeof(*t));
}

/* ---- live re-exec (bridge/reexec.h) ----------------------------------------------- */

static void foreach_walk(const struct br_dma_map *n,
                         void (*fn)(const struct br_dma_map *m, void *arg), void *arg)
{
    for (; n; n = n->right) {
        foreach_walk(n->left, fn, arg);
        fn(n, arg);
    }
}

void br_dma_foreach(const struct br_dma_table *t, void (*fn)(const struct br_dma_map *m, void *arg),
                    void *arg)
{
    foreach_walk(t->root, fn, arg);
}

int br_dma_adopt(struct br_dma_table *t, const struct br_dma_adopt_backing *backings, size_t nb,
                 const struct br_dma_adopt_map *maps, size_t nm, uint64_t idle_clock)
{
    int r = 0;
    if (nb) {
        t->backings = calloc(nb, sizeof(*t->backings));
        if (!t->backings) {
            for (size_t i = 0; i < nb; i++)
                close(backings[i].fd);
            return -ENOMEM;
        }
        t->capb = nb;
    }
    /* every fd is the table's from here, whatever fails */
    for (size_t i = 0; i < nb; i++) {
        const struct br_dma_adopt_backing *a = &backings[i];
        t->backings[i] = (struct br_dma_backing){ .fd = a->fd, .writable = a->writable,
                                                  .idle = a->idle, .idle_seq = a->idle_seq };
        t->nb = i + 1;
        t->n_idle += a->idle;
    }
    for (size_t i = 0; i < nb && r == 0; i++) {
        struct br_dma_backing *b = &t->backings[i];
        struct stat st;
        if (fstat(b->fd, &st) < 0) {
            r = -errno;
            break;
        }
        b->dev = st.st_dev;
        b->ino = st.st_ino;
        if (backings[i].len) {
            b->len = backings[i].len;
            b->base = mmap(NULL, b->len, PROT_READ | (b->writable ? PROT_WRITE : 0), MAP_SHARED,
                           b->fd, 0);
            if (b->base == MAP_FAILED) {
                r = -errno;
                b->base = NULL;
                b->len = 0;
            }
        }
    }
    t->idle_clock = idle_clock;
    for (size_t i = 0; i < nm && r == 0; i++) {
        const struct br_dma_adopt_map *a = &maps[i];
        struct br_dma_map *m = node_get(t);
        if (!m) {
            r = -ENOMEM;
            break;
        }
        *m = (struct br_dma_map){ .iova = a->iova, .size = a->size, .flags = a->flags,
                                  .backing = a->backing, .offset = a->offset };
        if (a->backing >= 0 && a->own_len) {
            int prot = ((a->flags & VU_DMA_MAP_FLAG_READ) ? PROT_READ : 0) |
                       ((a->flags & VU_DMA_MAP_FLAG_WRITE) ? PROT_WRITE : 0);
            void *p = mmap(NULL, (size_t)a->own_len, prot, MAP_SHARED,
                           t->backings[a->backing].fd, (off_t)a->own_off);
            if (p == MAP_FAILED) {
                r = -errno;
                node_put(t, m);
                break;
            }
            m->map_base = p;
            m->map_len = (size_t)a->own_len;
            m->map_off = a->own_off;
        }
        tree_insert(t, m);
        if (a->backing >= 0) {
            t->backings[a->backing].refs++;
            t->bytes += a->size;
        }
        t->n++;
    }
    return r;
}
