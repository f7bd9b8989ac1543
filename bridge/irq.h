/* SPDX-License-Identifier: MIT */
/*
 * irq.h - the per-client IRQ shadow tables and the SET_IRQS translation
 * (irq.c). One state per session (session.h).
 */
#ifndef BR_IRQ_H
#define BR_IRQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "hv.h"
#include "vu_proto.h"

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

#endif /* BR_IRQ_H */
