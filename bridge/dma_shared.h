/* SPDX-License-Identifier: MIT */
/*
 * dma_shared.h - the IOMMU mappings of one IOMMU group, counted (issue 15).
 *
 * The functions of a group share one container: one IOMMU address space.
 * Each function has its own session and its own DMA table (dma.h), and a VM
 * with two functions of a group sends the same DMA_MAPs on both sockets
 * (QEMU keeps one DMA view per vfio-user device). The IOMMU can hold a range
 * only once, so the tables of a group share this registry: an identical
 * mapping (same IOVA range, same memory object by st_dev/st_ino, same
 * offset, same protection) is in the IOMMU once and counted once per table
 * that has it; a different mapping overlapping one is a conflict (-EEXIST);
 * the IOMMU unmap happens when the last table lets go. Every entry is
 * exactly one IOMMU mapping (or a run of pin pieces, dma.h), and the IOMMU
 * holds exactly the registry.
 *
 * Thread-safe: the tables of a group live in different threads (one server
 * per function). A table takes the lock around each of its operations
 * (br_dma_shared_lock) and calls the other functions under it.
 */
#ifndef BR_DMA_SHARED_H
#define BR_DMA_SHARED_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Most entries the registry holds: the kernel's own ceiling on a
 * container's mappings (type1's dma_entry_limit default), so a group can
 * never be made to hold more than the IOMMU would. */
#define BR_DMA_SHARED_MAX 65535u

struct br_dma_shared_entry {
    uint64_t iova, size;
    dev_t dev;
    ino_t ino;
    uint64_t offset;
    uint32_t flags;          /* VU_DMA_MAP_FLAG_READ|WRITE */
    unsigned refs;           /* tables that hold it */
};

struct br_dma_shared {
    pthread_mutex_t lock;
    struct br_dma_shared_entry *e;   /* sorted by iova, disjoint */
    size_t n, cap;
    uint64_t bytes;          /* bytes the IOMMU maps for the group */
    unsigned shared_hits;    /* maps answered by an identical entry (no IOMMU call) */
    unsigned conflicts;      /* maps refused: a different mapping was there */
};

void br_dma_shared_init(struct br_dma_shared *sh);
void br_dma_shared_destroy(struct br_dma_shared *sh);
void br_dma_shared_lock(struct br_dma_shared *sh);
void br_dma_shared_unlock(struct br_dma_shared *sh);

/* Under the lock. Look at [iova, iova+size) for a new mapping of object
 * (dev, ino) at offset with flags: 1 if an identical entry is there (its
 * count is taken: nothing to do in the IOMMU), 0 if the range is free (the
 * caller maps it in the IOMMU, then br_dma_shared_insert), -EEXIST if a
 * different entry overlaps it (*other, if given, gets a copy of it). */
int br_dma_shared_get(struct br_dma_shared *sh, uint64_t iova, uint64_t size, dev_t dev,
                      ino_t ino, uint64_t offset, uint32_t flags,
                      struct br_dma_shared_entry *other);
/* Under the lock: record a mapping just made in the IOMMU, count 1.
 * -ENOSPC beyond BR_DMA_SHARED_MAX, -ENOMEM. */
int br_dma_shared_insert(struct br_dma_shared *sh, uint64_t iova, uint64_t size, dev_t dev,
                         ino_t ino, uint64_t offset, uint32_t flags);
/* Under the lock: drop one count of the entry that is exactly [iova,
 * iova+size). Returns the counts left; at 0 the entry stays until the
 * caller has unmapped it from the IOMMU and called br_dma_shared_remove
 * (or br_dma_shared_unput if the IOMMU refused). -ENOENT if there is none. */
int br_dma_shared_put(struct br_dma_shared *sh, uint64_t iova, uint64_t size);
void br_dma_shared_unput(struct br_dma_shared *sh, uint64_t iova, uint64_t size);
void br_dma_shared_remove(struct br_dma_shared *sh, uint64_t iova, uint64_t size);

#endif /* BR_DMA_SHARED_H */
