/* SPDX-License-Identifier: MIT */
/*
 * hv_sim_edu.c - the edu model of the simulated device (hv_sim_edu.h):
 * identification, liveness, factorial, interrupt raise/acknowledge and the
 * DMA engine, evaluated on region_write to BAR0 as QEMU's edu does on an
 * MMIO write. Registers live in the BAR's memory, so a read through
 * region_read or a client's mmap sees what the model left there.
 */
#include "hv_sim_edu.h"

#include <string.h>
#include <unistd.h>

static uint32_t reg_get(struct sim_edu *e, uint32_t off)
{
    uint8_t b[4] = { 0 };
    if (pread(e->memfd, b, 4, (off_t)off) != 4)
        return 0;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void reg_set(struct sim_edu *e, uint32_t off, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    if (pwrite(e->memfd, b, 4, (off_t)off) != 4) {
        /* the memfd is sized at open; nothing sensible to do */
    }
}

static uint64_t reg_get64(struct sim_edu *e, uint32_t off)
{
    return reg_get(e, off) | (uint64_t)reg_get(e, off + 4) << 32;
}

static void edu_raise(struct sim_edu *e, uint32_t bits)
{
    e->irq_status |= bits;
    reg_set(e, EDU_IRQ_STATUS, e->irq_status);
    sim_irq_assert(e->dev);
}

static void edu_dma(struct sim_edu *e, uint32_t cmd)
{
    uint64_t src = reg_get64(e, EDU_DMA_SRC), dst = reg_get64(e, EDU_DMA_DST);
    uint64_t cnt = reg_get64(e, EDU_DMA_CNT);
    bool to_ram = cmd & EDU_DMA_TO_RAM;
    uint64_t dev = to_ram ? src : dst, iova = (to_ram ? dst : src) & EDU_DMA_MASK;

    if (dev < EDU_BUF_ADDR || cnt > EDU_BUF_SIZE || dev - EDU_BUF_ADDR > EDU_BUF_SIZE - cnt)
        e->dma_faults++;   /* the real edu aborts QEMU here; the sim refuses */
    else if (sim_bus_dma(e->dev, iova, e->buf + (dev - EDU_BUF_ADDR), (size_t)cnt, to_ram) < 0)
        e->dma_faults++;   /* an IOMMU fault: nothing transferred */
    reg_set(e, EDU_DMA_CMD, cmd & ~EDU_DMA_START);
    if (cmd & EDU_DMA_IRQ)
        edu_raise(e, EDU_IRQ_DMA);
}

static uint32_t factorial(uint32_t v)
{
    if (v >= 64)
        return 0;   /* 64! and beyond wrap to 0 in 32 bits */
    uint32_t f = 1;
    for (uint32_t i = 2; i <= v; i++)
        f *= i;
    return f;
}

void sim_edu_write(struct sim_edu *e, uint64_t off, size_t len)
{
    if (e->bar0_size < EDU_REGS_END || off >= EDU_REGS_END)
        return;
    uint64_t end = off + len < EDU_REGS_END ? off + len : EDU_REGS_END;
    for (uint32_t r = (uint32_t)(off & ~3ull); r < end; r += 4) {
        uint32_t v = reg_get(e, r);
        switch (r) {
        case EDU_ID: reg_set(e, r, EDU_ID_VALUE); break;
        case EDU_LIVENESS: reg_set(e, r, ~v); break;
        case EDU_FACT:
            reg_set(e, r, factorial(v));
            if (reg_get(e, EDU_STATUS) & EDU_STATUS_FACT_IRQ)
                edu_raise(e, EDU_IRQ_FACT);
            break;
        case EDU_STATUS: reg_set(e, r, v & EDU_STATUS_FACT_IRQ); break;   /* never busy */
        case EDU_IRQ_STATUS: reg_set(e, r, e->irq_status); break;
        case EDU_IRQ_RAISE: edu_raise(e, v); break;
        case EDU_IRQ_ACK:
            e->irq_status &= ~v;
            reg_set(e, EDU_IRQ_STATUS, e->irq_status);
            if (!e->irq_status)
                sim_intx_deassert(e->dev);   /* line deasserted */
            break;
        case EDU_DMA_CMD:
            if (v & EDU_DMA_START)
                edu_dma(e, v);
            break;
        default: break;
        }
    }
}

void sim_edu_reset(struct sim_edu *e)
{
    if (e->bar0_size >= EDU_REGS_END)
        reg_set(e, EDU_ID, EDU_ID_VALUE);
    memset(e->buf, 0, sizeof(e->buf));
    e->irq_status = 0;
}

void sim_edu_init(struct sim_edu *e, struct sim *dev, int memfd, uint64_t bar0_size)
{
    e->dev = dev;
    e->memfd = memfd;
    e->bar0_size = bar0_size;
    e->dma_faults = 0;
    sim_edu_reset(e);
}
