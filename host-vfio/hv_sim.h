/* SPDX-License-Identifier: MIT */
/*
 * hv_sim.h - a simulated PCI function (device ops "sim") and a simulated
 * type1 container (IOMMU ops "sim"), faithful to what the kernel's vfio-pci
 * and type1 do, for unit tests of the bridge and for native benchmarks of
 * the message path. Not used by the daemon in production (the daemon can run
 * on it with --sim for demos and tests).
 *
 * The two halves are split like the kernel back ends: hv_sim_iommu_open
 * makes a simulated container, hv_sim_open_on attaches a simulated device to
 * one (several devices may share it, as functions of one IOMMU group share a
 * container), and hv_sim_open does both with a container of the device's
 * own.
 *
 * What it models:
 *  - 9 regions like a kernel vfio-pci device: BAR0 (configurable size,
 *    mmappable, backed by a memfd so a client's mmap and pread/pwrite see the
 *    same bytes), optional BAR2 holding an MSI-X table + PBA (reported with
 *    the kernel's MSIX_MAPPABLE cap, or with a sparse-mmap cap, or none),
 *    unused BARs size 0 flags 0, ROM, config space (4 KiB) with a few
 *    registers that behave (ids read-only, COMMAND writable, BAR sizing),
 *    VGA answering -EINVAL. Region offsets are index << 40 like the kernel's
 *    (the memfd is sparse).
 *  - edu-like registers in BAR0 (the model: hv_sim_edu.c, edu_regs.h): 0x00
 *    id 0x010000ed, 0x04 liveness (reads the inverse of what was written),
 *    0x08 factorial, 0x60 raise interrupt (signals MSI vector 0 if set, else
 *    INTx), 0x80/0x88/0x90/0x98 DMA src/dst/count/cmd performing the copy
 *    through the DMA map table.
 *    (Registers are evaluated on pwrite through region_write; a client
 *    writing through its mmap only changes memory.)
 *  - IRQ indexes INTx (1, EVENTFD|MASKABLE|AUTOMASKED), MSI (1 or more,
 *    EVENTFD|NORESIZE), MSI-X (configurable, EVENTFD|NORESIZE), ERR (1), REQ
 *    (1); SET_IRQS validated like the kernel (MSI/MSI-X sized on the first
 *    enable: a later start+count beyond it is -EINVAL until disabled), with
 *    the eventfds dup'd (the kernel takes references) and recorded.
 *  - a DMA map table with the kernel's rules: overlap -EEXIST, iova outside
 *    the usable ranges or not aligned to the smallest page size -EINVAL, entry
 *    limit -ENOSPC, exact unmap, unmap of a range covering several whole
 *    mappings allowed (kernel type1 behaviour), unmap-all. A mapping pins
 *    its pages like the kernel's: the sim keeps a mapping of its own of a
 *    shared (MAP_SHARED) range, so the device side still reaches the pages
 *    after the caller has unmapped its vaddr.
 *  - reset (FLAGS_RESET configurable; without it reset is -ENOTTY): like
 *    VFIO_DEVICE_RESET on the kernel, the device's own state goes back to
 *    power-on (BAR registers, edu state, MSI-X table entries masked, a
 *    pending INTx dropped) while what the kernel saves and restores around
 *    the function reset stays: config space (COMMAND, BARs), the IRQ
 *    eventfds and the INTx mask state, and the IOMMU mappings. (The kernel
 *    does not tear interrupts down on reset; QEMU does that itself first.)
 *  - hot reset (bus_reset): the devices of one simulated context with
 *    bus_reset on are one bus; GET_PCI_HOT_RESET_INFO names them all,
 *    HOT_RESET resets each one's state like reset does.
 *  - BAR access by region_read/write fails -EIO while COMMAND memory
 *    decode (bit 1) is off, like the kernel; it starts on.
 */
#ifndef HV_SIM_H
#define HV_SIM_H

#include "hv.h"

enum hv_sim_msix_cap {
    HV_SIM_MSIX_NONE = 0,        /* no MSI-X BAR */
    HV_SIM_MSIX_MAPPABLE_CAP,    /* BAR with the kernel's MSIX_MAPPABLE cap (nvme on 6.1) */
    HV_SIM_MSIX_SPARSE_CAP,      /* BAR with a sparse-mmap cap around the table (older kernels) */
};

struct hv_sim_config {
    const char *addr;            /* reported name, default "0000:00:00.0" */
    uint64_t bar0_size;          /* default 1 MiB (edu); 0 = no BAR0 */
    enum hv_sim_msix_cap msix;   /* default NONE */
    uint32_t msix_bar;           /* BAR index of the MSI-X table, default 2 */
    uint64_t msix_bar_size;      /* default 16 KiB */
    uint64_t msix_table_offset;  /* default 0x2000 */
    uint32_t msix_count;         /* default 65 when msix != NONE */
    uint64_t msix_pba_offset;    /* default 0x3000 */
    uint32_t msi_count;          /* default 1 */
    bool reset;                  /* FLAGS_RESET, default true */
    /* On a simulated bus that can be reset (a function behind a PCI
     * bridge): hot_reset_info names every device of the same IOMMU
     * context that has bus_reset too, and hot_reset resets all of them
     * (as the kernel's secondary bus reset; the config space is saved and
     * restored). Default false: -ENODEV. */
    bool bus_reset;
    /* The IOMMU context's fields (used by hv_sim_iommu_open; a device
     * attached by hv_sim_open_on uses its context's): */
    uint32_t dma_entry_limit;    /* default 65535 */
    uint64_t pgsizes;            /* default 0x40201000 */
    uint16_t vendor, device;     /* default 1234:11e8 */
    uint32_t class_code;         /* default 0x00ff00 */
    /* Usable IOVA ranges (inclusive), like the kernel's IOVA_RANGE cap;
     * nr_iova_ranges 0 = the whole 64-bit space. Default: the two ranges
     * the testbed's kernel reports (0-0xfedfffff, 0xfef00000-0x7fffffffff). */
    uint32_t nr_iova_ranges;
    struct hv_iova_range iova_ranges[HV_MAX_IOVA_RANGES];
};

void hv_sim_config_defaults(struct hv_sim_config *cfg);
/* A simulated type1 container from cfg's IOMMU fields (cfg NULL: defaults;
 * the whole cfg must be valid). The caller holds one reference
 * (hv_iommu_put). */
int hv_sim_iommu_open(const struct hv_sim_config *cfg, struct hv_iommu **out,
                      struct vub_err *err);
/* A simulated device attached to `io`, which must be a simulated context
 * (-EINVAL otherwise); it takes a reference on it. */
int hv_sim_open_on(const struct hv_sim_config *cfg, struct hv_iommu *io,
                   struct hv_device **out, struct vub_err *err);
/* Both: a device with a simulated container of its own. */
int hv_sim_open(const struct hv_sim_config *cfg, struct hv_device **out, struct vub_err *err);

/* Test hooks. */
/* Fire sub-index `sub` of IRQ `index` as hardware would: write 1 to the
 * trigger eventfd if one is set and the vector is not masked (INTx: then
 * automask). Returns 1 if an eventfd was signalled, 0 if not, -errno. */
int hv_sim_fire_irq(struct hv_device *d, uint32_t index, uint32_t sub);
/* Current trigger eventfd of (index, sub) in the sim's table (its own dup),
 * -1 if none. */
int hv_sim_irq_fd(struct hv_device *d, uint32_t index, uint32_t sub);
/* Device-side DMA through the map table of the device's IOMMU context (like
 * a bus master): -EFAULT if the range is not entirely mapped, -EPERM if the
 * mapping lacks the direction. */
int hv_sim_dma_write(struct hv_device *d, uint64_t iova, const void *buf, size_t len);
int hv_sim_dma_read(struct hv_device *d, uint64_t iova, void *buf, size_t len);
/* What the simulated device and its IOMMU context hold now, taken in one
 * call under their locks (a consistent snapshot of each). */
#define HV_SIM_NUM_IRQS 5u   /* INTx, MSI, MSI-X, ERR, REQ (VFIO_PCI_*_IRQ_INDEX) */
struct hv_sim_stats {
    /* per IRQ index: INTx, ERR, REQ 1 if a trigger is set; MSI/MSI-X the
     * vectors enabled (0: off) */
    uint32_t irq_enabled[HV_SIM_NUM_IRQS];
    bool intx_masked;        /* after taking a pending unmask eventfd write */
    unsigned open_irq_fds;   /* eventfd references the sim holds */
    unsigned resets;         /* times reset was called */
    unsigned bus_resets;     /* times a hot reset of its bus reset it */
    uint16_t command;        /* config space COMMAND (bus master = bit 2) */
    unsigned dma_faults;     /* device-side DMA the edu engine attempted that the
                              * map table refused (an IOMMU fault on hardware) */
    size_t dma_maps;         /* mappings in the device's IOMMU context (shared with */
    uint64_t dma_bytes;      /* every device attached to it) and bytes they map */
};
/* Fill *out (zeroed first); -EINVAL for a device of another back end. */
int hv_sim_stats(struct hv_device *d, struct hv_sim_stats *out);
/* The same as a value, for tests (all zero for a device of another back
 * end): hv_sim_stats_of(d).dma_maps. */
static inline struct hv_sim_stats hv_sim_stats_of(struct hv_device *d)
{
    struct hv_sim_stats st;
    (void)hv_sim_stats(d, &st);
    return st;
}

#endif /* HV_SIM_H */
