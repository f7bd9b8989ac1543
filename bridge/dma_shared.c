/* SPDX-License-Identifier: MIT */
/* The IOMMU mappings of one IOMMU group, shared by its functions' tables
 * (dma_shared.h). */
#include "dma_shared.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "waits.h"
#include "vu_proto.h"

void br_dma_shared_init(struct br_dma_shared *sh)
{
    memset(sh, 0, sizeof(*sh));
    pthread_mutex_init(&sh->lock, NULL);
    br_cond_init_monotonic(&sh->changed);
    sh->conflict_wait_ms = BR_DMA_SHARED_CONFLICT_WAIT_MS;
}

void br_dma_shared_destroy(struct br_dma_shared *sh)
{
    free(sh->h);
    free(sh->k);
    pthread_cond_destroy(&sh->changed);
    pthread_mutex_destroy(&sh->lock);
    memset(sh, 0, sizeof(*sh));
}

static uint64_t last_of(uint64_t iova, uint64_t size) { return iova + (size - 1); }
static bool overlaps(uint64_t a, uint64_t al, uint64_t b, uint64_t bl) { return a <= bl && b <= al; }

static uint32_t hv_flags(uint32_t f)
{
    return ((f & VU_DMA_MAP_FLAG_READ) ? HV_DMA_READ : 0) |
           ((f & VU_DMA_MAP_FLAG_WRITE) ? HV_DMA_WRITE : 0);
}

/* Whether two holders that overlap map every shared IOVA to the same byte
 * of the same object with the same protection. */
static bool agree(const struct br_dma_holder *a, uint64_t iova, dev_t dev, ino_t ino,
                  uint64_t offset, uint32_t flags)
{
    return a->dev == dev && a->ino == ino && a->flags == flags &&
           a->offset - a->iova == offset - iova;   /* modulo 2^64: one translation */
}

/* The first IOMMU mapping whose last byte is >= iova. */
static size_t k_lower(const struct br_dma_shared *sh, uint64_t iova)
{
    size_t lo = 0, hi = sh->nk;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (last_of(sh->k[mid].iova, sh->k[mid].size) < iova)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int k_insert(struct br_dma_shared *sh, uint64_t iova, uint64_t size)
{
    if (sh->nk >= BR_DMA_SHARED_MAX)
        return -ENOSPC;
    if (sh->nk == sh->capk) {
        size_t cap = sh->capk ? sh->capk * 2 : 16;
        struct br_dma_kmap *k = realloc(sh->k, cap * sizeof(*k));
        if (!k)
            return -ENOMEM;
        sh->k = k;
        sh->capk = cap;
    }
    size_t i = k_lower(sh, iova);
    memmove(&sh->k[i + 1], &sh->k[i], (sh->nk - i) * sizeof(*sh->k));
    sh->k[i] = (struct br_dma_kmap){ .iova = iova, .size = size };
    sh->nk++;
    sh->bytes += size;
    return 0;
}

static void k_remove_at(struct br_dma_shared *sh, size_t i)
{
    sh->bytes -= sh->k[i].size;
    memmove(&sh->k[i], &sh->k[i + 1], (sh->nk - i - 1) * sizeof(*sh->k));
    sh->nk--;
}

/* Room for one more holder and, for a map, up to `gaps` more IOMMU
 * mappings (reserved before anything is mapped, so that nothing fails
 * half way). */
static int reserve(struct br_dma_shared *sh, size_t gaps)
{
    if (sh->nh >= BR_DMA_SHARED_MAX || sh->nk + gaps > BR_DMA_SHARED_MAX)
        return -ENOSPC;
    if (sh->nh == sh->caph) {
        size_t cap = sh->caph ? sh->caph * 2 : 16;
        struct br_dma_holder *h = realloc(sh->h, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        sh->h = h;
        sh->caph = cap;
    }
    if (sh->nk + gaps > sh->capk) {
        size_t cap = sh->capk ? sh->capk : 16;
        while (cap < sh->nk + gaps)
            cap *= 2;
        struct br_dma_kmap *k = realloc(sh->k, cap * sizeof(*k));
        if (!k)
            return -ENOMEM;
        sh->k = k;
        sh->capk = cap;
    }
    return 0;
}

int br_dma_shared_map(struct br_dma_shared *sh, struct hv_device *hv, const void *owner,
                      uint64_t iova, uint64_t size, dev_t dev, ino_t ino, uint64_t offset,
                      uint32_t flags, uint8_t *vaddr, br_dma_pin_fn pin, void *pin_arg,
                      bool *hit, struct br_dma_holder *other)
{
    uint64_t last = last_of(iova, size);
    int r = 0;
    *hit = false;
    pthread_mutex_lock(&sh->lock);
    struct timespec until = br_deadline_ms(sh->conflict_wait_ms);
    bool waited = false;
again:
    for (size_t i = 0; i < sh->nh; i++) {
        const struct br_dma_holder *o = &sh->h[i];
        if (overlaps(o->iova, last_of(o->iova, o->size), iova, last) &&
            !agree(o, iova, dev, ino, offset, flags)) {
            /* another function's old mapping may be about to go: wait for
             * a change (the lock is released meanwhile), then look again */
            if (o->owner != owner &&
                pthread_cond_timedwait(&sh->changed, &sh->lock, &until) == 0) {
                if (!waited)
                    sh->conflict_waits++;
                waited = true;
                goto again;
            }
            if (other)
                *other = *o;
            sh->conflicts++;
            r = -EEXIST;
            goto out;
        }
    }
    /* the IOMMU mappings inside the range: [first, end) */
    size_t first = k_lower(sh, iova), end = first;
    while (end < sh->nk && sh->k[end].iova <= last)
        end++;
    size_t max_gaps = end - first + 1;
    if ((r = reserve(sh, max_gaps)) < 0)
        goto out;
    struct br_dma_kmap *done = calloc(max_gaps, sizeof(*done));
    if (!done) {
        r = -ENOMEM;
        goto out;
    }
    /* pin the gaps between them, in order */
    size_t nd = 0;
    uint64_t cur = iova;
    for (size_t i = first;; i++) {
        uint64_t gap_last = i < end ? sh->k[i].iova - 1 : last;
        if (i == end || sh->k[i].iova > cur) {
            if ((r = pin(pin_arg, cur, vaddr + (cur - iova), gap_last - cur + 1)) < 0)
                break;
            done[nd++] = (struct br_dma_kmap){ cur, gap_last - cur + 1 };
        }
        if (i == end)
            break;
        uint64_t kl = last_of(sh->k[i].iova, sh->k[i].size);
        if (kl >= last)
            break;
        cur = kl + 1;
    }
    if (r < 0) {
        for (size_t j = 0; j < nd; j++)
            hv_dma_unmap(hv, done[j].iova, done[j].size, 0);
    } else {
        for (size_t j = 0; j < nd; j++)
            (void)k_insert(sh, done[j].iova, done[j].size);   /* room reserved */
        sh->h[sh->nh++] = (struct br_dma_holder){ .owner = owner, .iova = iova, .size = size,
                                                 .dev = dev, .ino = ino, .offset = offset,
                                                 .flags = flags, .vaddr = vaddr };
        *hit = nd == 0;
        sh->shared_hits += nd == 0;
    }
    free(done);
out:
    pthread_mutex_unlock(&sh->lock);
    return r;
}

/* The remaining holder that covers iova and reaches furthest, or NULL. */
static const struct br_dma_holder *cover(const struct br_dma_shared *sh, uint64_t iova)
{
    const struct br_dma_holder *best = NULL;
    for (size_t i = 0; i < sh->nh; i++) {
        const struct br_dma_holder *o = &sh->h[i];
        if (o->iova <= iova && iova <= last_of(o->iova, o->size) &&
            (!best || last_of(o->iova, o->size) > last_of(best->iova, best->size)))
            best = o;
    }
    return best;
}

/* The lowest start of a remaining holder in (iova, limit], or limit + 1
 * as "none" (limit < UINT64_MAX here: callers pass a mapping's last byte
 * only when it is not the last of the space, else they stop first). */
static uint64_t next_start(const struct br_dma_shared *sh, uint64_t iova, uint64_t limit,
                           bool *found)
{
    uint64_t best = 0;
    *found = false;
    for (size_t i = 0; i < sh->nh; i++) {
        uint64_t s = sh->h[i].iova;
        if (s > iova && s <= limit && (!*found || s < best)) {
            best = s;
            *found = true;
        }
    }
    return best;
}

/* IOMMU mapping k (at index ki) is no longer wholly held: unmap it, then map
 * again the parts remaining holders have. 0, or the unmap's error (nothing
 * changed then). */
static int cut_down(struct br_dma_shared *sh, struct hv_device *hv, size_t ki)
{
    struct br_dma_kmap k = sh->k[ki];
    uint64_t klast = last_of(k.iova, k.size);
    int r = hv_dma_unmap(hv, k.iova, k.size, 0);
    if (r < 0)
        return r;
    k_remove_at(sh, ki);
    sh->remaps++;
    uint64_t cur = k.iova;
    for (;;) {
        const struct br_dma_holder *o = cover(sh, cur);
        if (!o) {
            bool found;
            uint64_t nx = next_start(sh, cur, klast, &found);
            if (!found)
                break;
            cur = nx;
            continue;
        }
        uint64_t olast = last_of(o->iova, o->size);
        uint64_t plast = olast < klast ? olast : klast;
        uint64_t psize = plast - cur + 1;
        int m = hv_dma_map(hv, cur, o->vaddr + (cur - o->iova), psize, hv_flags(o->flags));
        if (m == 0)
            m = k_insert(sh, cur, psize);
        if (m < 0)
            br_err("IOMMU: cannot map 0x%" PRIx64 "+0x%" PRIx64 " again for another function "
                   "of the group: %s (its device cannot reach it)", cur, psize, strerror(-m));
        if (plast == klast)
            break;
        cur = plast + 1;
    }
    return 0;
}

int br_dma_shared_unmap(struct br_dma_shared *sh, struct hv_device *hv, const void *owner,
                        uint64_t iova, uint64_t size)
{
    uint64_t last = last_of(iova, size);
    pthread_mutex_lock(&sh->lock);
    size_t hi = sh->nh;
    for (size_t i = 0; i < sh->nh && hi == sh->nh; i++)
        if (sh->h[i].owner == owner && sh->h[i].iova == iova && sh->h[i].size == size)
            hi = i;
    if (hi == sh->nh) {
        pthread_mutex_unlock(&sh->lock);
        return -ENOENT;
    }
    struct br_dma_holder gone = sh->h[hi];
    sh->h[hi] = sh->h[--sh->nh];
    int r = 0;
    /* every IOMMU mapping inside the range that the others do not hold whole */
    size_t i = k_lower(sh, iova);
    while (i < sh->nk && sh->k[i].iova <= last) {
        const struct br_dma_kmap *k = &sh->k[i];
        uint64_t klast = last_of(k->iova, k->size);
        /* held whole: one remaining holder chain covers it from start to end */
        bool whole = true;
        for (uint64_t cur = k->iova;;) {
            const struct br_dma_holder *o = cover(sh, cur);
            if (!o) {
                whole = false;
                break;
            }
            uint64_t olast = last_of(o->iova, o->size);
            if (olast >= klast)
                break;
            cur = olast + 1;
        }
        if (whole) {
            i++;
            continue;
        }
        size_t before = sh->nk;
        if ((r = cut_down(sh, hv, i)) < 0)
            break;
        /* the pieces mapped again are at i.. and are held: skip them */
        i += sh->nk + 1 - before;
    }
    if (r < 0)
        sh->h[sh->nh++] = gone;   /* the IOMMU still has it: so does the registry */
    else
        pthread_cond_broadcast(&sh->changed);   /* a map waiting on it looks again */
    pthread_mutex_unlock(&sh->lock);
    return r;
}
