/* SPDX-License-Identifier: MIT */
/*
 * dma.h - the per-client DMA map table (dma.c): client memory fd -> mmap ->
 * IOMMU map, with its limits. One table per session (session.h).
 */
#ifndef BR_DMA_H
#define BR_DMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dma_shared.h"
#include "hv.h"
#include "vu_proto.h"

/* One memory object (file) a client shared; kept open and mmapped once,
 * whole, however many DMA mappings use it (deduplicated by st_dev/st_ino),
 * so that a DMA_MAP/UNMAP costs one IOMMU call and no mmap/munmap. */
/* Most distinct memory objects one client may share at once (QEMU shares
 * one per RAM block: a handful). Each costs the bridge an fd and a mapping
 * of the whole object, so a client may not make it hold an unbounded
 * number; beyond this a DMA_MAP with a new object gets ENOSPC. */
#define BR_DMA_MAX_BACKINGS 256u
/* Objects no mapping uses any more that stay open and mapped (in the
 * bridge only, never in the IOMMU) for the next map of the same object: a
 * guest IOMMU maps and unmaps single pages of guest RAM all the time, and
 * mapping the whole object again for each would cost an mmap and a munmap
 * per cycle. The oldest idle one is released beyond this many, when a new
 * object needs the slot, and on unmap-all and disconnect. */
#define BR_DMA_MAX_IDLE_BACKINGS 4u
/* A DMA_MAP's fd whose object a backing holds already (a guest IOMMU sends
 * the same RAM block's fd with every page it maps) is only a duplicate: it
 * is kept until this many have gathered and then all are closed with one
 * close_range where their numbers are consecutive (they are, in a steady
 * map/unmap cycle: each arrives at the lowest free number), instead of one
 * close per map. They refer to objects the table holds open anyway. They
 * wait only while DMA_MAPs and DMA_UNMAPs follow each other: the server
 * closes them at any other message and before a re-exec
 * (br_dma_close_pending), and unmap-all and freeing the table do too. */
#define BR_DMA_CLOSE_BATCH 16u

struct br_dma_backing {
    dev_t dev;
    ino_t ino;
    int fd;
    unsigned refs;
    void *base;              /* the whole object [0, len), NULL if that failed */
    size_t len;
    bool writable;           /* base is PROT_WRITE too */
    bool memfile;            /* shmem or hugetlbfs: an IOMMU context with
                              * dma_map_file maps it by fd (no page tables
                              * of the bridge's to fill) */
    bool idle;               /* refs == 0, kept open (BR_DMA_MAX_IDLE_BACKINGS) */
    uint64_t idle_seq;       /* when it became idle (oldest goes first) */
    /* For maps by file (memfile): what fd's open mode and seals allow,
     * read once where it cannot change. The open mode of an open file never
     * changes; seals only grow, and not at all once F_SEAL_SEAL is set (or
     * the file takes none), so they are kept only then. */
    bool acc_known;          /* acc holds fd's O_ACCMODE */
    bool seals_final;        /* seals holds fd's seals for good */
    int acc;
    int seals;
};

struct br_dma_map {
    uint64_t iova, size;
    uint32_t flags;          /* VU_DMA_MAP_FLAG_READ|WRITE */
    int backing;             /* index into backings, -1 = no fd (not reachable) */
    uint64_t offset;         /* where in the backing's object it starts */
    void *map_base;          /* an mmap of this map's own (when the object's
                              * whole mapping does not cover it), else NULL */
    size_t map_len;
    uint64_t map_off;        /* the object offset map_base maps */
    /* the table's ordered tree (a treap keyed by iova); on the free list
     * `right` links the free nodes */
    struct br_dma_map *left, *right;
    uint32_t prio;
};

struct br_dma_table {
    struct br_dma_map *root;   /* treap by iova; the ranges are disjoint */
    size_t n;
    struct br_dma_map *free_nodes;   /* nodes kept for reuse (at most the
                                      * peak of n, itself <= max_maps) */
    uint64_t rng;              /* treap priorities (seeded at init) */
    struct br_dma_backing *backings;
    size_t nb, capb;
    unsigned n_idle;           /* backings with idle set */
    uint64_t idle_clock;
    uint64_t bytes;            /* bytes mapped into the IOMMU (fd-backed maps) */
    uint32_t max_maps;         /* limit on n */
    uint64_t max_bytes;        /* limit on bytes; 0 = none */
    uint64_t page_size;
    /* Asked between prefault chunks of a DMA_MAP (NULL = never): true makes
     * the map fail with -EINTR, undone, so that the loop can handle a stop
     * request, a signal or the device going away. Set by the server. */
    bool (*interrupted)(void *arg);
    void *interrupted_arg;
    /* With `interrupted` set, the kernel map (the pin) goes in pieces of
     * this size with the same question between them (BR_DMA_PIN_CHUNK). */
    uint64_t pin_chunk;
    /* The functions of one IOMMU group share the IOMMU: their tables go
     * through one registry (dma_shared.h; not owned, NULL for a function
     * served alone). With it a map pins only what no other function has
     * mapped already, one that disagrees with an overlapping mapping of
     * another function is -EEXIST, and an unmap removes from the IOMMU
     * only what no other function still maps. */
    struct br_dma_shared *shared;
    /* Duplicate fds waiting to be closed (BR_DMA_CLOSE_BATCH). */
    int close_q[BR_DMA_CLOSE_BATCH];
    unsigned n_close_q;
};

/* The prefault before pinning goes in chunks of this size, with a check
 * for a stop request between them: a DMA_MAP of a large range never keeps
 * the loop from a SIGTERM or an unbind for long. */
#define BR_DMA_PREFAULT_CHUNK (64ull << 20)
/* The pin of an already prefaulted range: pieces of 1 GiB (a few hundred
 * ms each on 4 KiB pages), each its own kernel mapping; an unmap of the
 * whole range removes them together (type1 rules), and a 1 TiB guest uses
 * 1024 of the kernel's 65535 entries. */
#define BR_DMA_PIN_CHUNK (1ull << 30)

void br_dma_init(struct br_dma_table *t, uint32_t max_maps, uint64_t max_bytes, uint64_t page);
/* Map [iova, iova+size) for a request vu_decode_dma_map accepted: size > 0,
 * neither iova + size nor offset + size wraps, no flags but
 * VU_DMA_MAP_FLAG_READ|WRITE (the wire rules live in the decoder only; the
 * kernel's own rules, alignment and usable ranges, in host-vfio). fd: the
 * client's memory fd (ownership taken in all cases: kept, or closed if an
 * identical object is already open - batched, BR_DMA_CLOSE_BATCH -, or
 * closed on error), -1 = no fd
 * (recorded, not reachable by the device).
 * -EEXIST overlap, -ENOSPC count limit, -ENOMEM byte limit, -EINVAL an fd
 * that is not a regular file or a range beyond its end, or an fd with
 * neither READ nor WRITE, -EINTR interrupted (t->interrupted), or the back
 * end's error. Nothing is left behind on error.
 *
 * Where the IOMMU context maps files (iommufd's IOMMU_IOAS_MAP_FILE) a
 * memfd, shmem or hugetlbfs object is mapped by fd and offset, with no
 * prefault; the open mode and seals of the client's fd decide what it may
 * map, as an mmap of it would (READ needs a readable fd, WRITE a read-write
 * one without F_SEAL_WRITE/F_SEAL_FUTURE_WRITE: -EACCES / -EPERM).
 *
 * The bridge never reads or writes client memory itself: the prefault is
 * MADV_POPULATE_READ, which reports a page beyond the end of a shrunk file
 * as EFAULT instead of raising SIGBUS, so memory objects need no seals. */
int br_dma_map(struct br_dma_table *t, struct hv_device *hv, uint64_t iova, uint64_t size,
               uint64_t offset, uint32_t flags, int fd);
/* Remove every mapping contained in [iova, iova+size) (kernel type1
 * semantics, not the vfio-user spec's exact match): IOMMU unmap, munmap,
 * backings released, all before returning. Returns how many were removed
 * (0: the range held none, a success), -EINVAL for size 0, a range that
 * wraps, or one that cuts through a mapping (then nothing is removed), or
 * the back end's error (nothing removed either). O(log n + removed).
 * With t->shared each mapping is released on its own (one IOMMU unmap for
 * each that no other function holds, none for the others); one the IOMMU
 * refuses stays in the table, the others are removed, and the first error
 * is returned. */
int br_dma_unmap(struct br_dma_table *t, struct hv_device *hv, uint64_t iova, uint64_t size);
/* Remove every mapping (with t->shared: those no other function holds
 * leave the IOMMU, the others stay there for them). Returns the first
 * error but removes all it can. */
int br_dma_unmap_all(struct br_dma_table *t, struct hv_device *hv);
/* Free the table's arrays (after unmap_all). */
void br_dma_free(struct br_dma_table *t);
/* Close the duplicate fds br_dma_map kept for a batched close now (also
 * done by unmap_all and free). */
void br_dma_close_pending(struct br_dma_table *t);

/* A summary of the table for the status view: count, bytes, and up to
 * `max` mappings in IOVA order from the lowest (fills out[0..returned)). */
struct br_dma_range {
    uint64_t iova, size;
    uint32_t flags;
    bool fd;                 /* backed by client memory (in the IOMMU) */
};
size_t br_dma_ranges(const struct br_dma_table *t, struct br_dma_range *out, size_t max);

/* Live re-exec (bridge/reexec.h). Every mapping in IOVA order. */
void br_dma_foreach(const struct br_dma_table *t, void (*fn)(const struct br_dma_map *m, void *arg),
                    void *arg);
/* Take over a table another process of the bridge built, whose mappings the
 * IOMMU still holds: no kernel call. backings[0, nb): fd (taken here, also on
 * error), len of the whole-object mapping (0: none), writable, idle and
 * idle_seq as they were; each is mapped again (MAP_SHARED: the same pages the
 * IOMMU has pinned) and fstat'ed for its identity. maps[0, nm): iova, size,
 * offset, flags, backing index (-1: no fd), own_off/own_len of an own mmap
 * (mapped again too). t is fresh from br_dma_init. The caller has validated
 * the ranges (disjoint, inside limits: bridge/state.h). -errno (mmap,
 * memory); then br_dma_free releases what was taken. */
struct br_dma_adopt_backing {
    int fd;
    size_t len;
    bool writable, idle;
    uint64_t idle_seq;
};
struct br_dma_adopt_map {
    uint64_t iova, size, offset;
    uint32_t flags;
    int backing;
    uint64_t own_off, own_len;
};
int br_dma_adopt(struct br_dma_table *t, const struct br_dma_adopt_backing *backings, size_t nb,
                 const struct br_dma_adopt_map *maps, size_t nm, uint64_t idle_clock);

#endif /* BR_DMA_H */
