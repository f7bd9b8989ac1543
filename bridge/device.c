/* SPDX-License-Identifier: MIT */
#include "device.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define CHAIN_MAX_STEPS 64u

/* ---- kernel capability chain walking ---------------------------------------- */

/* One cap of the kernel chain, located and sized. */
struct kcap {
    uint32_t off;        /* from the start of the region info struct */
    uint32_t len;        /* 0 = unknown id (size unknown) */
    uint16_t id;
    uint32_t next;
    const uint8_t *p;    /* ri->caps + off - 32 */
};

/* Iterate the chain: *pos is the offset of the next cap (0 = done). Returns
 * 1 with *c filled, 0 at the end, -EINVAL for a malformed chain. */
static int kcap_next(const struct hv_region_info *ri, uint32_t *pos, unsigned *steps,
                     struct kcap *c)
{
    uint32_t off = *pos;
    if (off == 0)
        return 0;
    const uint32_t end = 32u + ri->caps_len;
    if (ri->caps_len > HV_MAX_REGION_CAPS || off < 32 || off > end || end - off < 8 ||
        ++*steps > CHAIN_MAX_STEPS)
        return -EINVAL;
    struct vu_cap_header h;
    memcpy(&h, ri->caps + (off - 32), sizeof(h));
    c->off = off;
    c->id = h.id;
    c->next = h.next;
    c->p = ri->caps + (off - 32);
    switch (h.id) {
    case VU_REGION_INFO_CAP_SPARSE_MMAP: {
        struct vu_region_cap_sparse_mmap sp;
        if (end - off < sizeof(sp))
            return -EINVAL;
        memcpy(&sp, c->p, sizeof(sp));
        if (sp.nr_areas > (end - off - sizeof(sp)) / sizeof(struct vu_sparse_mmap_area))
            return -EINVAL;
        c->len = (uint32_t)(sizeof(sp) + sp.nr_areas * sizeof(struct vu_sparse_mmap_area));
        break;
    }
    case VU_REGION_INFO_CAP_TYPE:
        if (end - off < sizeof(struct vu_region_cap_type))
            return -EINVAL;
        c->len = sizeof(struct vu_region_cap_type);
        break;
    case VU_REGION_INFO_CAP_MSIX_MAPPABLE:
        c->len = sizeof(struct vu_cap_header);
        break;
    default:
        c->len = 0;
        break;
    }
    if (h.next != 0 && h.next <= off)   /* strictly forward: no loops */
        return -EINVAL;
    *pos = h.next;
    return 1;
}

static uint32_t kernel_chain_start(const struct hv_region_info *ri)
{
    return (ri->flags & VU_REGION_INFO_FLAG_CAPS) ? ri->cap_offset : 0;
}

uint32_t br_region_kernel_areas(const struct hv_region_info *ri, struct vu_sparse_mmap_area *out,
                                uint32_t max)
{
    uint32_t pos = kernel_chain_start(ri);
    unsigned steps = 0;
    struct kcap c;
    while (kcap_next(ri, &pos, &steps, &c) == 1) {
        if (c.id != VU_REGION_INFO_CAP_SPARSE_MMAP)
            continue;
        uint32_t n = (c.len - sizeof(struct vu_region_cap_sparse_mmap)) /
                     sizeof(struct vu_sparse_mmap_area);
        if (n > max)
            n = max;
        memcpy(out, c.p + sizeof(struct vu_region_cap_sparse_mmap),
               n * sizeof(struct vu_sparse_mmap_area));
        return n;
    }
    return 0;
}

ssize_t br_region_info_rebuild(const struct hv_region_info *ri, bool no_mmap,
                               const struct vu_sparse_mmap_area *msix_areas,
                               uint32_t n_msix_areas, uint8_t *out, size_t outsz)
{
    struct vu_region_info h = {
        .flags = ri->flags & (VU_REGION_INFO_FLAG_READ | VU_REGION_INFO_FLAG_WRITE |
                              VU_REGION_INFO_FLAG_MMAP),
        .index = ri->index,
        .size = ri->size,
        .offset = ri->offset,
    };
    if (outsz < sizeof(h))
        return -ENOSPC;
    size_t at = sizeof(h);
    size_t prev_next = 0;   /* where the previous cap's `next` lives (0 = none yet) */
    bool replace_mapping = msix_areas != NULL && (h.flags & VU_REGION_INFO_FLAG_MMAP);
    bool has_sparse = false;   /* a SPARSE_MMAP cap is in the chain */

    if (no_mmap)
        h.flags &= ~VU_REGION_INFO_FLAG_MMAP;

    if (replace_mapping && !no_mmap) {
        if (n_msix_areas == 0) {
            h.flags &= ~VU_REGION_INFO_FLAG_MMAP;
        } else {
            ssize_t n = vu_region_cap_sparse_build(out, outsz, at, msix_areas, n_msix_areas);
            if (n < 0)
                return n;
            prev_next = at + offsetof(struct vu_cap_header, next);
            at += (size_t)n;
            has_sparse = true;
        }
    }

    uint32_t pos = kernel_chain_start(ri);
    unsigned steps = 0;
    struct kcap c;
    int r;
    while ((r = kcap_next(ri, &pos, &steps, &c)) == 1) {
        bool mapping_cap = c.id == VU_REGION_INFO_CAP_SPARSE_MMAP ||
                           c.id == VU_REGION_INFO_CAP_MSIX_MAPPABLE;
        if (c.len == 0)                           /* unknown to vfio-user: dropped */
            continue;
        if (mapping_cap && (no_mmap || replace_mapping))
            continue;
        if (outsz - at < c.len)
            return -ENOSPC;
        memcpy(out + at, c.p, c.len);
        uint32_t zero = 0;
        memcpy(out + at + offsetof(struct vu_cap_header, next), &zero, sizeof(zero));
        if (prev_next) {
            uint32_t here = (uint32_t)at;
            memcpy(out + prev_next, &here, sizeof(here));
        }
        prev_next = at + offsetof(struct vu_cap_header, next);
        at += c.len;
        has_sparse |= c.id == VU_REGION_INFO_CAP_SPARSE_MMAP;
    }
    if (r < 0)
        return r;

    /* A mappable region the kernel gave no sparse areas is published with
     * one area, the whole region: a reply with caps is never complete at
     * the 32-byte argsz, so the fd only ever comes with the second, full
     * request. libvfio-user's client sends the first request without room
     * for an fd and fails on one (MSG_CTRUNC); QEMU, cloud-hypervisor and
     * SPDK map one whole area exactly as they map a region without caps. */
    if ((h.flags & VU_REGION_INFO_FLAG_MMAP) && !has_sparse && h.size) {
        const struct vu_sparse_mmap_area whole = { .offset = 0, .size = h.size };
        ssize_t n = vu_region_cap_sparse_build(out, outsz, at, &whole, 1);
        if (n < 0)
            return n;
        if (prev_next) {
            uint32_t here = (uint32_t)at;
            memcpy(out + prev_next, &here, sizeof(here));
        }
        at += (size_t)n;
    }

    if (at > sizeof(h)) {
        h.flags |= VU_REGION_INFO_FLAG_CAPS;
        h.cap_offset = sizeof(h);
    }
    h.argsz = (uint32_t)at;
    memcpy(out, &h, sizeof(h));
    return (ssize_t)at;
}

/* ---- device facts -------------------------------------------------------------- */

unsigned br_region_fd_count(enum br_region_fds mode, const struct vu_caps *client,
                            uint32_t nr_areas)
{
    if (client->max_msg_fds == 0)
        return 0;
    if (mode != BR_REGION_FDS_PER_AREA || nr_areas <= 1 || nr_areas > BR_MAX_REGION_FDS)
        return 1;
    if (client->present & VU_CAP_MAX_MSG_FDS)
        return 1;   /* a client that states its fds follows the spec: one fd */
    return nr_areas;
}

/* The answer for a region the device lacks: size 0, no flags, no caps. */
static size_t absent_region(uint32_t index, uint8_t *buf)
{
    struct vu_region_info h = { .argsz = sizeof(h), .index = index };
    memcpy(buf, &h, sizeof(h));
    return sizeof(h);
}

int br_dev_region_info(const struct br_dev *dev, uint32_t index, bool no_mmap, uint8_t *buf,
                       size_t bufsz, size_t *len)
{
    if (bufsz < sizeof(struct vu_region_info))
        return -ENOSPC;
    struct hv_region_info *ri = malloc(sizeof(*ri));
    if (!ri)
        return -ENOMEM;
    int r = hv_get_region_info(dev->hv, index, ri);
    if (r == -EINVAL && index < dev->num_regions) {
        *len = absent_region(index, buf);
        r = 0;
        goto out;
    }
    if (r < 0)
        goto out;

    struct vu_sparse_mmap_area areas[VU_MAX_SPARSE_AREAS];
    const struct vu_sparse_mmap_area *msix_areas = NULL;
    int n_areas = 0;
    const struct br_msix_layout *l = &dev->msix;
    if (dev->cfg->msix_mmap != BR_MSIX_MMAP_KERNEL && l->present &&
        (index == l->table_bir || index == l->pba_bir) && (ri->flags & VU_REGION_INFO_FLAG_MMAP)) {
        struct vu_sparse_mmap_area kern[VU_MAX_SPARSE_AREAS];
        uint32_t nk = br_region_kernel_areas(ri, kern, VU_MAX_SPARSE_AREAS);
        n_areas = br_msix_sparse_areas(l, index, ri->size, dev->page_size, kern, nk, areas,
                                       VU_MAX_SPARSE_AREAS);
        if (n_areas < 0) {
            r = n_areas;
            goto out;
        }
        msix_areas = areas;
    }
    ssize_t n = br_region_info_rebuild(ri, no_mmap, msix_areas, (uint32_t)n_areas, buf, bufsz);
    if (n < 0) {
        r = (int)n;
        goto out;
    }
    *len = (size_t)n;
    r = 0;
out:
    free(ri);
    return r;
}

static uint32_t pick_data_xfer(const struct br_dev *dev)
{
    if (dev->cfg->max_data_xfer)
        return dev->cfg->max_data_xfer;
    uint64_t want = BR_MIN_DATA_XFER;
    const struct br_region *rom = &dev->regions[VU_PCI_ROM_REGION_INDEX];
    if (rom->valid && rom->size > want)
        want = rom->size;
    return want > VU_MAX_DATA_XFER ? VU_MAX_DATA_XFER : (uint32_t)want;
}

/* A device without a reset of its own may still be reset with its bus
 * (VFIO_DEVICE_PCI_HOT_RESET), if every function that resets with it is
 * in its own IOMMU group: the group this process holds, whose other
 * functions nobody else can use. Then DEVICE_GET_INFO says RESET. */
static void probe_bus_reset(struct br_dev *dev)
{
    struct hv_reset_dep deps[HV_MAX_RESET_DEPS];
    size_t n = 0;
    int r = hv_hot_reset_info(dev->hv, deps, HV_MAX_RESET_DEPS, &n);
    if (r < 0) {
        br_debug("no function reset, and no bus reset (%s)", strerror(-r));
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (deps[i].group != dev->hv->group) {
            br_info("no reset: the device has no function reset, and a reset of its bus "
                    "would also reset %s in IOMMU group %d, which is not this device's",
                    deps[i].addr, deps[i].group);
            return;
        }
        if (strcmp(deps[i].addr, dev->hv->addr) != 0)
            memcpy(dev->reset_scope[k++], deps[i].addr, HV_ADDR_LEN);
    }
    dev->n_reset_scope = k;
    dev->reset_kind = BR_RESET_BUS;
    dev->flags |= VU_DEVICE_FLAGS_RESET;
    char names[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < k && used < sizeof(names); i++) {
        int w = snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                         dev->reset_scope[i]);
        used += w > 0 ? (size_t)w : 0;
    }
    br_info("reset: a hot reset of the bus (no function reset), which also resets %s%s",
            k ? names : "nothing else",
            k ? " (with them served by this daemon: refused while one has a client)" : "");
}

int br_dev_init(struct br_dev *dev, struct hv_device *hv, const struct br_config *cfg)
{
    memset(dev, 0, sizeof(*dev));
    dev->hv = hv;
    dev->cfg = cfg;

    struct hv_device_info info;
    int r = hv_get_info(hv, &info);
    if (r < 0) {
        br_err("cannot get device info: %s", strerror(-r));
        return r;
    }
    dev->flags = info.flags & (VU_DEVICE_FLAGS_RESET | VU_DEVICE_FLAGS_PCI);
    if (!(dev->flags & VU_DEVICE_FLAGS_PCI) || info.num_regions <= VU_PCI_CONFIG_REGION_INDEX) {
        br_err("not a PCI device (flags 0x%x, %u regions)", info.flags, info.num_regions);
        return -ENODEV;
    }
    dev->reset_kind = (dev->flags & VU_DEVICE_FLAGS_RESET) ? BR_RESET_FUNCTION : BR_RESET_NONE;
    if (dev->reset_kind == BR_RESET_NONE)
        probe_bus_reset(dev);
    dev->num_regions = info.num_regions < BR_MAX_REGIONS ? info.num_regions : BR_MAX_REGIONS;
    dev->num_irqs = info.num_irqs < BR_MAX_IRQ_INDEXES ? info.num_irqs : BR_MAX_IRQ_INDEXES;
    if (info.num_regions > dev->num_regions || info.num_irqs > dev->num_irqs)
        br_warn("device reports %u regions and %u IRQ indexes; exposing %u and %u",
                info.num_regions, info.num_irqs, dev->num_regions, dev->num_irqs);

    struct hv_region_info *ri = malloc(sizeof(*ri));
    if (!ri)
        return -ENOMEM;
    for (uint32_t i = 0; i < dev->num_regions; i++) {
        struct br_region *reg = &dev->regions[i];
        r = hv_get_region_info(hv, i, ri);
        if (r < 0) {
            reg->info_err = r;
            br_debug("region %u: no info (%s)", i, strerror(-r));
            continue;
        }
        reg->valid = true;
        reg->flags = ri->flags;
        reg->size = ri->size;
        br_debug("region %u: size 0x%" PRIx64 " flags 0x%x", i, ri->size, ri->flags);
    }
    free(ri);
    if (!dev->regions[VU_PCI_CONFIG_REGION_INDEX].valid) {
        br_err("no config space region");
        return -ENODEV;
    }

    for (uint32_t i = 0; i < dev->num_irqs; i++) {
        r = hv_get_irq_info(hv, i, &dev->irqs[i]);
        if (r < 0) {
            br_warn("IRQ index %u: no info (%s)", i, strerror(-r));
            memset(&dev->irqs[i], 0, sizeof(dev->irqs[i]));
        }
        dev->irqs[i].index = i;
        if (dev->irqs[i].count > BR_MAX_IRQ_VECTORS)
            dev->irqs[i].count = BR_MAX_IRQ_VECTORS;
    }

    /* the COMMAND register as the kernel left it when it enabled the
     * device for us (memory/IO decoding on): what a new client finds */
    uint8_t cmd[2] = { 0, 0 };
    if (hv_region_read(hv, VU_PCI_CONFIG_REGION_INDEX, 4, cmd, 2) == 2)
        dev->command0 = (uint16_t)(cmd[0] | cmd[1] << 8);

    r = br_msix_read(hv, &dev->msix);
    if (r < 0) {
        br_warn("cannot read the MSI-X capability: %s", strerror(-r));
        memset(&dev->msix, 0, sizeof(dev->msix));
    } else if (dev->msix.present) {
        br_debug("MSI-X: %u vectors, table BAR %u @0x%" PRIx64 ", PBA BAR %u @0x%" PRIx64,
                 dev->msix.table_size, dev->msix.table_bir, dev->msix.table_offset,
                 dev->msix.pba_bir, dev->msix.pba_offset);
    }

    r = hv_iommu_get_info(hv, &dev->iommu);
    if (r < 0) {
        br_err("cannot get IOMMU info: %s", strerror(-r));
        return r;
    }
    long pg = sysconf(_SC_PAGESIZE);
    dev->page_size = pg > 0 ? (uint64_t)pg : 4096u;

    vu_caps_defaults(&dev->caps);
    dev->caps.max_msg_fds = cfg->max_msg_fds && cfg->max_msg_fds < BR_MAX_MSG_FDS
                                ? cfg->max_msg_fds : BR_MAX_MSG_FDS;
    dev->caps.max_data_xfer_size = pick_data_xfer(dev);
    const struct br_region *rom = &dev->regions[VU_PCI_ROM_REGION_INDEX];
    if (rom->valid && rom->size > dev->caps.max_data_xfer_size)
        br_warn("the ROM (%" PRIu64 " bytes) is larger than max_data_xfer_size %" PRIu64
                ": QEMU will not be able to read it", rom->size, dev->caps.max_data_xfer_size);
    uint32_t maps = BR_DMA_MAPS_CEILING;
    if (dev->iommu.has_dma_avail && dev->iommu.dma_avail < maps)
        maps = dev->iommu.dma_avail;
    if (cfg->max_dma_maps && cfg->max_dma_maps < maps)
        maps = cfg->max_dma_maps;
    if (maps == 0)
        maps = 1;   /* vfio-user cannot say 0; the kernel will refuse with ENOSPC */
    dev->caps.max_dma_maps = maps;
    dev->caps.pgsizes = dev->iommu.pgsizes & ~(uint64_t)0xfff;
    if (dev->caps.pgsizes == 0)
        dev->caps.pgsizes = 4096;
    dev->caps.write_multiple = true;

    /* The receive limit is the bridge's own, whatever it advertised or the
     * client said: cloud-hypervisor sends up to 16 eventfds per SET_IRQS
     * whatever max_msg_fds was negotiated. */
    dev->lim.max_fds = VU_MAX_FDS_PER_MSG;
    dev->lim.max_msg_size = VU_HDR_SIZE + (uint32_t)sizeof(struct vu_region_access) +
                            (uint32_t)dev->caps.max_data_xfer_size;

    br_info("device: %u regions, %u IRQ indexes,%s reset; IOMMU pgsizes 0x%" PRIx64
            ", %u DMA maps, max transfer %" PRIu64 " bytes",
            dev->num_regions, dev->num_irqs, (dev->flags & VU_DEVICE_FLAGS_RESET) ? "" : " no",
            dev->caps.pgsizes, dev->caps.max_dma_maps, dev->caps.max_data_xfer_size);
    return 0;
}
