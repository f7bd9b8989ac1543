/* SPDX-License-Identifier: MIT */
/*
 * dma_shared.h - the IOMMU mappings of one IOMMU group, shared by the DMA
 * tables of its functions (issue 15).
 *
 * The functions of a group share one container: one IOMMU address space.
 * Each function has its own session and its own DMA table (dma.h), and a VM
 * with two functions of a group sends its DMA_MAPs on both sockets (QEMU
 * keeps one DMA view per vfio-user device), interleaved: when the guest's
 * memory layout changes, one socket may map a piece of a range that the
 * other still has whole. The registry holds every fd-backed mapping of
 * every table (a holder) and the IOMMU mappings (disjoint) that cover
 * exactly their union:
 *  - holders that overlap must agree: the same memory object (st_dev,
 *    st_ino), the same object offset for every IOVA they share, the same
 *    protection; one that does not is a conflict (-EEXIST, nothing done)
 *    - after waiting up to conflict_wait_ms for the other function's table
 *    to change: QEMU sends a layout change on each socket in turn, so a
 *    map on one socket can meet the old mapping of the other socket whose
 *    unmap is still on its way (seen in the e2e: 0x0+0xd8000 against the
 *    other function's 0xc3000+0x25000, unmapped a moment later);
 *  - a map makes IOMMU mappings only for the parts no other holder has
 *    (an identical mapping on the other socket costs no IOMMU call);
 *  - an unmap removes from the IOMMU what no other holder has: an IOMMU
 *    mapping that another holder covers only in part is unmapped and its
 *    remaining parts mapped again (from that holder's memory): the IOMMU
 *    never keeps what no table has mapped.
 *
 * Thread-safe: the tables of a group live in different threads (one server
 * per function); every call takes the registry's lock.
 */
#ifndef BR_DMA_SHARED_H
#define BR_DMA_SHARED_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hv.h"

/* Most holders, and most IOMMU mappings, the registry keeps: the kernel's
 * own ceiling on a container's mappings (type1's dma_entry_limit
 * default). Operations are linear in the holders overlapping a range and
 * in the number of IOMMU mappings (a few for a VM without guest IOMMU). */
#define BR_DMA_SHARED_MAX 65535u
/* How long a map that conflicts with another function's mapping waits for
 * that mapping to go before it is refused (-EEXIST). The wait releases the
 * lock: the other function's thread goes on; only this socket waits. */
#define BR_DMA_SHARED_CONFLICT_WAIT_MS 2000u

struct br_dma_holder {
    const void *owner;       /* the table */
    uint64_t iova, size;
    dev_t dev;
    ino_t ino;
    uint64_t offset;
    uint32_t flags;          /* VU_DMA_MAP_FLAG_READ|WRITE */
    uint8_t *vaddr;          /* the owner's mapping of [offset, offset+size) */
};

struct br_dma_kmap {
    uint64_t iova, size;     /* one IOMMU mapping (sorted, disjoint) */
};

struct br_dma_shared {
    pthread_mutex_t lock;
    pthread_cond_t changed;  /* broadcast when a holder goes */
    unsigned conflict_wait_ms;   /* BR_DMA_SHARED_CONFLICT_WAIT_MS by default */
    struct br_dma_holder *h;
    size_t nh, caph;
    struct br_dma_kmap *k;
    size_t nk, capk;
    uint64_t bytes;          /* bytes the IOMMU maps for the group */
    unsigned shared_hits;    /* maps wholly covered already: no IOMMU call */
    unsigned conflicts;      /* maps refused: an overlapping holder disagrees */
    unsigned conflict_waits; /* maps that waited for another function's unmap */
    unsigned remaps;         /* IOMMU mappings cut down after an unmap */
};

/* The kernel map of one piece for br_dma_shared_map (dma.c pins in
 * chunks, interruptible): 0 or -errno with nothing left mapped. */
typedef int (*br_dma_pin_fn)(void *arg, uint64_t iova, uint8_t *vaddr, uint64_t size);

void br_dma_shared_init(struct br_dma_shared *sh);
void br_dma_shared_destroy(struct br_dma_shared *sh);

/* Add a holder (owner, [iova, iova+size), object dev/ino at offset, flags,
 * its mapping at vaddr): 0 (*hit set when the IOMMU had it all already),
 * -EEXIST when an overlapping holder disagrees (*other gets it, if given),
 * -ENOSPC beyond BR_DMA_SHARED_MAX, -ENOMEM, or pin's error. Nothing
 * changes on error. */
int br_dma_shared_map(struct br_dma_shared *sh, struct hv_device *hv, const void *owner,
                      uint64_t iova, uint64_t size, dev_t dev, ino_t ino, uint64_t offset,
                      uint32_t flags, uint8_t *vaddr, br_dma_pin_fn pin, void *pin_arg,
                      bool *hit, struct br_dma_holder *other);
/* Remove the holder (owner, exactly [iova, iova+size)) and from the IOMMU
 * (through hv) what no other holder has. -ENOENT when there is none; the
 * back end's error when an IOMMU unmap fails (then the holder stays). A
 * failure to map again what another holder still needs is logged (the
 * caller's unmap has taken effect: 0). */
int br_dma_shared_unmap(struct br_dma_shared *sh, struct hv_device *hv, const void *owner,
                        uint64_t iova, uint64_t size);

#endif /* BR_DMA_SHARED_H */
