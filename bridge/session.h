/* SPDX-License-Identifier: MIT */
/*
 * session.h - the state of one client connection: the negotiated limits,
 * the DMA map table and the per-index IRQ shadow tables, and how all of it
 * is released when the client goes (br_session_close quiesces the device).
 *
 * dma.c implements the DMA table, irq.c the IRQ shadow tables, session.c the
 * lifecycle. Everything a client creates is owned here and has exactly one
 * release path.
 */
#ifndef BR_SESSION_H
#define BR_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "device.h"
#include "vu_proto.h"

/* ---- DMA table ------------------------------------------------------------------ */

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

struct br_dma_backing {
    dev_t dev;
    ino_t ino;
    int fd;
    unsigned refs;
    void *base;              /* the whole object [0, len), NULL if that failed */
    size_t len;
    bool writable;           /* base is PROT_WRITE too */
    bool idle;               /* refs == 0, kept open (BR_DMA_MAX_IDLE_BACKINGS) */
    uint64_t idle_seq;       /* when it became idle (oldest goes first) */
};

struct br_dma_map {
    uint64_t iova, size;
    uint32_t flags;          /* VU_DMA_MAP_FLAG_READ|WRITE */
    int backing;             /* index into backings, -1 = no fd (not reachable) */
    void *map_base;          /* an mmap of this map's own (when the object's
                              * whole mapping does not cover it), else NULL */
    size_t map_len;
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
/* Map [iova, iova+size). fd: the client's memory fd (ownership taken in all
 * cases: kept, or closed if an identical object is already open, or closed
 * on error), -1 = no fd (recorded, not reachable by the device).
 * -EEXIST overlap, -ENOSPC count limit, -ENOMEM byte limit, -EINVAL bad
 * range/fd/flags, -EINTR interrupted (t->interrupted), or the back end's
 * error. Nothing is left behind on error.
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
 * the back end's error (nothing removed either). O(log n + removed). */
int br_dma_unmap(struct br_dma_table *t, struct hv_device *hv, uint64_t iova, uint64_t size);
/* Remove every mapping. Returns the first error but removes all it can. */
int br_dma_unmap_all(struct br_dma_table *t, struct hv_device *hv);
/* Free the table's arrays (after unmap_all). */
void br_dma_free(struct br_dma_table *t);

/* A summary of the table for the status view: count, bytes, and up to
 * `max` mappings in IOVA order from the lowest (fills out[0..returned)). */
struct br_dma_range {
    uint64_t iova, size;
    uint32_t flags;
    bool fd;                 /* backed by client memory (in the IOMMU) */
};
size_t br_dma_ranges(const struct br_dma_table *t, struct br_dma_range *out, size_t max);

/* ---- IRQ shadow tables ---------------------------------------------------------- */

struct br_irq_index {
    uint32_t count;          /* vectors the device has (<= BR_MAX_IRQ_VECTORS) */
    uint32_t flags;          /* kernel IRQ info flags */
    int *fds;                /* [count] our dups of the client's trigger eventfds, -1 = none
                              * (MSI/MSI-X only; allocated on first use) */
    uint32_t active;         /* MSI/MSI-X: vectors the kernel has enabled (0 = off) */
    bool used;               /* anything was set since the last disable */
};

struct br_irq_state {
    uint32_t n;
    struct br_irq_index idx[BR_MAX_IRQ_INDEXES];
};

void br_irq_init(struct br_irq_state *st, const struct br_dev *dev);
/* One SET_IRQS, validated against the device (index, range, ERR/REQ count),
 * with the client's eventfds `fds` (nfds 0 or count; borrowed: the caller
 * still owns them). MSI/MSI-X trigger eventfds are merged into the shadow
 * table, and when a chunk extends an enabled vector set the whole set is
 * disabled and re-enabled with one kernel call. Returns 0 or -errno; on
 * error the kernel state and the shadow table are as before where possible. */
int br_irq_set(struct br_irq_state *st, struct hv_device *hv, const struct vu_irq_set *set,
               const uint8_t *bools, const int *fds, size_t nfds);
/* Disable every index with the kernel (DATA_NONE|TRIGGER, count 0) and close
 * every shadow fd. */
void br_irq_disable_all(struct br_irq_state *st, struct hv_device *hv);
void br_irq_free(struct br_irq_state *st);
/* Open shadow fds (for tests and logs). */
unsigned br_irq_open_fds(const struct br_irq_state *st);

/* ---- the session ------------------------------------------------------------------ */

struct br_session {
    struct vu_conn conn;
    struct br_dev *dev;
    struct ucred peer;           /* SO_PEERCRED at accept */
    bool negotiated;             /* VERSION done */
    struct vu_caps client_caps;  /* what the client offered */
    struct vu_caps agreed;
    struct br_dma_table dma;
    struct br_irq_state irq;
    uint64_t n_msgs, n_errors;
    const char *close_reason;    /* set by whoever ends the session */
    bool log_quiet;              /* disconnect line at debug level (rate limit hit) */
    /* This session's own device file (hv ops->mmap_fd), opened at the first
     * region fd handed out; never the bridge's own. NULL until then. */
    struct br_devfile *devfile;
};

/* Create a session on an accepted socket (ownership of fd taken, even on
 * error). The socket is made non-blocking; a message once started must be
 * complete, and a reply sent, within the configured I/O timeout.
 * -EBUSY (logged, naming each holder) while a process still holds the
 * device file of an ended session (dev->retired; looked for again here,
 * and under --stale-holders kill ended first). */
int br_session_open(struct br_session **out, struct br_dev *dev, int fd, const struct ucred *peer);
/* Quiesce the device and release everything the client held, in this order:
 * bus mastering off, IRQs disabled (and shadow fds closed), every DMA mapping
 * removed from the IOMMU and unmapped, memory fds closed, device reset (if it
 * has FLAGS_RESET), COMMAND back to its value at start with bus mastering
 * off (a client may have turned decoding off; a reset restores what the
 * client wrote), socket closed, then the session's device file looked for
 * in every process (bridge/holders.h): still held, it is kept on
 * dev->retired (under --stale-holders kill the holders are killed first).
 * Logs the disconnect line. A session that never completed
 * VERSION cannot have changed anything (every other command is refused
 * before it), so the device is left alone then. */
void br_session_close(struct br_session *s);

/* A new fd (the caller owns it) of this session's own device file, for a
 * client to mmap regions through: the first call opens the file (hv
 * ops->mmap_fd), later ones dup it. At the session's end the bridge looks for
 * every process that still holds that file or a mapping of it. */
int br_session_device_file(struct br_session *s);
/* At exit: close the device files of ended sessions still held (the bridge
 * serves no one after this). */
void br_session_release_retired(struct br_dev *dev);

/* Clear the bus-master bit of the COMMAND register through config space. */
int br_dev_bus_master_off(struct hv_device *hv);
/* Put COMMAND back as it was at start (dev->command0: memory/IO decoding as
 * the kernel enabled it), bus mastering off whatever it was. */
int br_dev_restore_command(const struct br_dev *dev);

#endif /* BR_SESSION_H */
