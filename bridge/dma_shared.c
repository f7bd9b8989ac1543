/* SPDX-License-Identifier: MIT */
/* The counted IOMMU mappings of one IOMMU group (dma_shared.h). */
#include "dma_shared.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void br_dma_shared_init(struct br_dma_shared *sh)
{
    memset(sh, 0, sizeof(*sh));
    pthread_mutex_init(&sh->lock, NULL);
}

void br_dma_shared_destroy(struct br_dma_shared *sh)
{
    free(sh->e);
    pthread_mutex_destroy(&sh->lock);
    memset(sh, 0, sizeof(*sh));
}

void br_dma_shared_lock(struct br_dma_shared *sh) { pthread_mutex_lock(&sh->lock); }
void br_dma_shared_unlock(struct br_dma_shared *sh) { pthread_mutex_unlock(&sh->lock); }

/* The first entry whose last byte is >= iova (entries are disjoint and
 * sorted, so their last bytes are sorted too). */
static size_t lower(const struct br_dma_shared *sh, uint64_t iova)
{
    size_t lo = 0, hi = sh->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct br_dma_shared_entry *m = &sh->e[mid];
        if (m->iova + (m->size - 1) < iova)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct br_dma_shared_entry *exact(struct br_dma_shared *sh, uint64_t iova, uint64_t size)
{
    size_t i = lower(sh, iova);
    if (i < sh->n && sh->e[i].iova == iova && sh->e[i].size == size)
        return &sh->e[i];
    return NULL;
}

int br_dma_shared_get(struct br_dma_shared *sh, uint64_t iova, uint64_t size, dev_t dev,
                      ino_t ino, uint64_t offset, uint32_t flags,
                      struct br_dma_shared_entry *other)
{
    size_t i = lower(sh, iova);
    if (i == sh->n || sh->e[i].iova > iova + (size - 1))
        return 0;   /* nothing overlaps */
    struct br_dma_shared_entry *m = &sh->e[i];
    if (m->iova == iova && m->size == size && m->dev == dev && m->ino == ino &&
        m->offset == offset && m->flags == flags) {
        m->refs++;
        sh->shared_hits++;
        return 1;
    }
    if (other)
        *other = *m;
    sh->conflicts++;
    return -EEXIST;
}

int br_dma_shared_insert(struct br_dma_shared *sh, uint64_t iova, uint64_t size, dev_t dev,
                         ino_t ino, uint64_t offset, uint32_t flags)
{
    if (sh->n >= BR_DMA_SHARED_MAX)
        return -ENOSPC;
    if (sh->n == sh->cap) {
        size_t cap = sh->cap ? sh->cap * 2 : 16;
        struct br_dma_shared_entry *e = realloc(sh->e, cap * sizeof(*e));
        if (!e)
            return -ENOMEM;
        sh->e = e;
        sh->cap = cap;
    }
    size_t i = lower(sh, iova);
    memmove(&sh->e[i + 1], &sh->e[i], (sh->n - i) * sizeof(*sh->e));
    sh->e[i] = (struct br_dma_shared_entry){ .iova = iova, .size = size, .dev = dev, .ino = ino,
                                             .offset = offset, .flags = flags, .refs = 1 };
    sh->n++;
    sh->bytes += size;
    return 0;
}

int br_dma_shared_put(struct br_dma_shared *sh, uint64_t iova, uint64_t size)
{
    struct br_dma_shared_entry *m = exact(sh, iova, size);
    if (!m || m->refs == 0)
        return -ENOENT;
    return (int)--m->refs;
}

void br_dma_shared_unput(struct br_dma_shared *sh, uint64_t iova, uint64_t size)
{
    struct br_dma_shared_entry *m = exact(sh, iova, size);
    if (m)
        m->refs++;
}

void br_dma_shared_remove(struct br_dma_shared *sh, uint64_t iova, uint64_t size)
{
    struct br_dma_shared_entry *m = exact(sh, iova, size);
    if (!m)
        return;
    size_t i = (size_t)(m - sh->e);
    sh->bytes -= m->size;
    memmove(&sh->e[i], &sh->e[i + 1], (sh->n - i - 1) * sizeof(*sh->e));
    sh->n--;
}
