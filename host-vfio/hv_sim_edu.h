/* SPDX-License-Identifier: MIT */
/*
 * hv_sim_edu.h - the edu model in the simulated device's BAR0 (QEMU's edu,
 * registers in edu_regs.h), private to the simulator: hv_sim.c owns the
 * device (config space, regions, interrupts, the IOMMU context) and calls
 * sim_edu_write after every region_write to BAR0; hv_sim_edu.c evaluates the
 * registers and reaches back through the three sim_* calls at the end. Both
 * run under the device's lock.
 */
#ifndef HV_SIM_EDU_H
#define HV_SIM_EDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edu_regs.h"

struct sim;

struct sim_edu {
    struct sim *dev;             /* the device it sits in (the sim_* calls) */
    int memfd;                   /* BAR0 is [0, bar0_size) of it */
    uint64_t bar0_size;          /* < EDU_REGS_END: no registers, writes are memory */
    uint32_t irq_status;         /* raised interrupt bits (EDU_IRQ_STATUS) */
    uint8_t buf[EDU_BUF_SIZE];   /* the device-side DMA buffer at EDU_BUF_ADDR */
    unsigned dma_faults;         /* DMA the engine attempted that was refused */
};

/* Attach the model to BAR0 (memfd already sized) and put it in its
 * power-on state. */
void sim_edu_init(struct sim_edu *e, struct sim *dev, int memfd, uint64_t bar0_size);
/* Evaluate the registers a write of [off, off+len) in BAR0 touched; the raw
 * bytes are already in memory. */
void sim_edu_write(struct sim_edu *e, uint64_t off, size_t len);
/* A function reset: ID register, DMA buffer and IRQ status back to power-on
 * (the rest of BAR0 the caller clears). dma_faults is kept (a test count). */
void sim_edu_reset(struct sim_edu *e);

/* What the model needs of the device around it (hv_sim.c). */
/* Assert the edu's interrupt: MSI/MSI-X vector 0 when enabled, else INTx. */
void sim_irq_assert(struct sim *s);
/* All IRQ status bits acknowledged: the INTx line goes down. */
void sim_intx_deassert(struct sim *s);
/* A bus-master transfer through the device's IOMMU context: -EFAULT if the
 * range is not entirely mapped, -EPERM if a mapping lacks the direction. */
int sim_bus_dma(struct sim *s, uint64_t iova, void *buf, size_t len, bool to_ram);

#endif /* HV_SIM_EDU_H */
