/* SPDX-License-Identifier: MIT */
/*
 * edu_regs.h - the register map of QEMU's edu device (1234:11e8, BAR0;
 * QEMU's docs/specs/edu.rst), the one copy the project uses: the simulated
 * device models it (hv_sim_edu.c), the probe's edu self-test (tools/probe), the
 * bench (tools/bench) and the tests drive it. Header-only and free of any
 * host-vfio type, so a tool that must not link host-vfio may include it.
 * All registers are 32-bit except the 64-bit DMA ones.
 */
#ifndef VUB_EDU_REGS_H
#define VUB_EDU_REGS_H

#define EDU_VENDOR_ID    0x1234u
#define EDU_DEVICE_ID    0x11e8u
#define EDU_BAR_SIZE     (1u << 20)     /* BAR0 is 1 MiB */

#define EDU_ID           0x00u   /* RO: 0x010000ed (major 1, minor 0, "ed") */
#define EDU_LIVENESS     0x04u   /* RW: reads back the inverse of what was written */
#define EDU_FACT         0x08u   /* RW: write n, read n! (32 bits) */
#define EDU_STATUS       0x20u   /* RW: bit 0 computing (RO), bit 7 IRQ after factorial */
#define EDU_IRQ_STATUS   0x24u   /* RO: raised interrupt bits */
#define EDU_IRQ_RAISE    0x60u   /* WO: OR the value into IRQ_STATUS and interrupt */
#define EDU_IRQ_ACK      0x64u   /* WO: clear these IRQ_STATUS bits */
#define EDU_DMA_SRC      0x80u   /* RW 64-bit: source address */
#define EDU_DMA_DST      0x88u   /* RW 64-bit: destination address */
#define EDU_DMA_CNT      0x90u   /* RW 64-bit: bytes to transfer */
#define EDU_DMA_CMD      0x98u   /* RW 64-bit: EDU_DMA_* bits; START clears when done */
#define EDU_REGS_END     0x100u  /* the registers live below this offset */

#define EDU_ID_VALUE     0x010000edu
#define EDU_STATUS_BUSY     0x01u
#define EDU_STATUS_FACT_IRQ 0x80u
#define EDU_IRQ_FACT     0x001u  /* IRQ_STATUS bit raised by a factorial (STATUS bit 7) */
#define EDU_IRQ_DMA      0x100u  /* IRQ_STATUS bit raised by a DMA with EDU_DMA_IRQ */
#define EDU_DMA_START    0x1u
#define EDU_DMA_TO_RAM   0x2u    /* direction: set = device buffer to RAM */
#define EDU_DMA_IRQ      0x4u    /* raise EDU_IRQ_DMA when done */

/* The device-side DMA buffer (addresses as seen in DMA_SRC/DMA_DST) and the
 * DMA address mask (edu masks bus addresses to 28 bits). */
#define EDU_BUF_ADDR     0x40000u
#define EDU_BUF_SIZE     4096u
#define EDU_DMA_MASK     ((1ull << 28) - 1)

#endif /* VUB_EDU_REGS_H */
