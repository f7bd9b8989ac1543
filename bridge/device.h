/* SPDX-License-Identifier: MIT */
/*
 * device.h - what the bridge knows about the device it serves, read once from
 * the host back end at start: device flags, regions, IRQ indexes, the MSI-X
 * layout, the IOMMU's page sizes and entry limit, and from those the
 * capabilities advertised in VERSION. Also the translation of one kernel
 * region info (with its capability chain) into the vfio-user reply.
 */
#ifndef BR_DEVICE_H
#define BR_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hv.h"
#include "msix.h"
#include "vu_proto.h"

/* Region info flags and IRQ info flags passed on to a client. */
#define BR_REGION_FLAGS_PASSED (VU_REGION_INFO_FLAG_READ | VU_REGION_INFO_FLAG_WRITE | \
                                VU_REGION_INFO_FLAG_MMAP | VU_REGION_INFO_FLAG_CAPS)
#define BR_IRQ_FLAGS_PASSED (VU_IRQ_INFO_EVENTFD | VU_IRQ_INFO_MASKABLE | \
                             VU_IRQ_INFO_AUTOMASKED | VU_IRQ_INFO_NORESIZE)
/* Largest capability chain the bridge sends (bytes after the 32-byte struct). */
#define BR_MAX_CHAIN 1024u

struct br_region {
    bool valid;          /* the kernel answered GET_REGION_INFO for it */
    int info_err;        /* its error otherwise (negative errno) */
    uint32_t flags;      /* kernel flags */
    uint64_t size;
};

struct br_devfile;
struct br_group;

/* How the device is reset (VFIO_DEVICE_RESET or a hot reset of its bus). */
enum br_reset_kind {
    BR_RESET_NONE = 0,
    BR_RESET_FUNCTION,   /* the kernel's own (FLR, PM, a bus it is alone on) */
    BR_RESET_BUS,        /* VFIO_DEVICE_PCI_HOT_RESET: every function in
                          * reset_scope is reset too; all are in the device's
                          * own IOMMU group, which this process holds */
};

struct br_dev {
    struct hv_device *hv;          /* not owned */
    const struct br_config *cfg;   /* not owned */
    uint32_t flags;                /* VU_DEVICE_FLAGS_RESET | _PCI as reported; RESET
                                    * also when only a hot reset can reset it */
    enum br_reset_kind reset_kind;
    size_t n_reset_scope;          /* BR_RESET_BUS: the other functions it resets */
    char reset_scope[HV_MAX_RESET_DEPS][HV_ADDR_LEN];
    uint32_t num_regions;          /* exposed (<= BR_MAX_REGIONS) */
    uint32_t num_irqs;             /* exposed (<= BR_MAX_IRQ_INDEXES) */
    struct br_region regions[BR_MAX_REGIONS];
    struct hv_irq_info irqs[BR_MAX_IRQ_INDEXES];
    struct br_msix_layout msix;
    struct hv_iommu_info iommu;
    uint64_t page_size;            /* host page size (mmap granularity) */
    struct vu_caps caps;           /* what VERSION advertises */
    struct vu_limits lim;          /* receive limits of a client connection */
    uint16_t command0;             /* config COMMAND when the bridge started */
    /* IRQ indexes the bridge itself drives (bit per index, e.g. REQ for the
     * device watch): clients see them with count 0, cannot set them, and a
     * session's quiesce leaves them alone. Set before the first client. */
    uint32_t reserved_irqs;
    /* Device files of ended sessions that some process still held at the
     * last look (bridge/holders.h; owned by session.c). While there is one,
     * no new session starts. */
    struct br_devfile *retired;
    /* The message trace and fault injection (tap.h), NULL if neither is
     * configured; owned by whoever set it (daemon.c, the test harness). */
    struct br_tap *tap;
    /* The IOMMU group this function shares with others served by the same
     * daemon (bridge/group.h), NULL when it is served alone. */
    struct br_group *group;
};

/* Query the back end and fill dev. Logs what it found (info) and every
 * problem. -errno if the device cannot be served (no GET_INFO, no config
 * region, IOMMU info unavailable...). */
int br_dev_init(struct br_dev *dev, struct hv_device *hv, const struct br_config *cfg);

/* Reset the device the way it can be (dev->reset_kind). A bus reset is
 * refused with -EBUSY while another function in its scope that this
 * daemon serves has a client (bridge/group.h); why then names them.
 * -ENOTSUP without a way; the back end's error otherwise (why says). */
int br_dev_reset(struct br_dev *dev, char *why, size_t whysz);

/* Whether region `index` may be accessed at [off, off+len) (inline: every
 * trapped access asks). */
static inline bool br_dev_access_ok(const struct br_dev *dev, uint32_t index, uint64_t off,
                                    uint64_t len)
{
    if (index >= dev->num_regions || !dev->regions[index].valid)
        return false;
    uint64_t size = dev->regions[index].size;
    return off <= size && len <= size - off;
}

/* The vfio-user answer to GET_REGION_INFO for `index`, complete (no argsz
 * truncation yet): the 32-byte struct followed by the capability chain, into
 * buf (>= 32 + BR_MAX_CHAIN bytes); *len = bytes used (= the argsz needed).
 * The chain is rebuilt from the kernel's: SPARSE_MMAP, TYPE and
 * MSIX_MAPPABLE are kept unchanged, unknown caps dropped; no_mmap (the
 * --no-mmap option, or a client that takes no fds) clears MMAP and drops
 * SPARSE_MMAP/MSIX_MAPPABLE; unless --msix-mmap=kernel, the mapping caps of
 * the MSI-X table/PBA BARs are replaced with computed sparse areas that
 * leave them out (MMAP cleared if no area remains). CAPS/cap_offset
 * describe the chain. A region the kernel refuses with -EINVAL (VGA on a
 * non-VGA device) is answered with size 0, flags 0 and no caps, like a
 * region the device lacks (SPDK treats a region-info error as fatal).
 * Other errors of the back end: -errno. */
int br_dev_region_info(const struct br_dev *dev, uint32_t index, bool no_mmap, uint8_t *buf,
                       size_t bufsz, size_t *len);

/* How many copies of the region fd a GET_REGION_INFO reply for an MMAP
 * region with nr_areas sparse areas carries, for a client that offered
 * `client` (pure): 0 if the client takes no fds (max_msg_fds 0); with
 * BR_REGION_FDS_PER_AREA and 2..BR_MAX_REGION_FDS areas, nr_areas if the
 * client did not state max_msg_fds (SPDK states nothing and wants one fd per
 * area; QEMU and cloud-hypervisor state it and take exactly one); 1
 * otherwise. */
unsigned br_region_fd_count(enum br_region_fds mode, const struct vu_caps *client,
                            uint32_t nr_areas);

/* Rebuild a kernel capability chain (pure; used by br_dev_region_info and
 * tested directly). `ri` is the kernel's answer; `out` receives the full
 * vfio-user reply (32-byte struct + chain). With msix_areas != NULL the
 * region's SPARSE_MMAP and MSIX_MAPPABLE caps are replaced by one sparse cap
 * with those n_msix_areas areas (0 areas: MMAP cleared, no cap). no_mmap:
 * MMAP cleared and mapping caps dropped. Returns bytes used or -errno
 * (-EINVAL for a malformed kernel chain, -ENOSPC if out is too small). */
ssize_t br_region_info_rebuild(const struct hv_region_info *ri, bool no_mmap,
                               const struct vu_sparse_mmap_area *msix_areas,
                               uint32_t n_msix_areas, uint8_t *out, size_t outsz);

/* The kernel's sparse areas of a region (from its chain), for intersecting.
 * Returns the number of areas (0 if none or malformed), at most max. */
uint32_t br_region_kernel_areas(const struct hv_region_info *ri, struct vu_sparse_mmap_area *out,
                                uint32_t max);

#endif /* BR_DEVICE_H */
