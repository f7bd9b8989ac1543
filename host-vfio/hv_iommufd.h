/* SPDX-License-Identifier: MIT */
/*
 * hv_iommufd.h - the iommufd IOMMU context (issue 16), NOT FINISHED.
 *
 * Written against the kernel's uapi (iommufd 6.2+, VFIO device cdevs 6.6+,
 * IOMMU_IOAS_MAP_FILE 6.13+) but never run: no kernel this project tests on
 * has CONFIG_IOMMUFD, so the daemon does not offer it (--iommu iommufd is
 * refused) and nothing but the unit tests of its pure parts (cdev look-up,
 * IOVA range conversion) calls into it. What it will do: /dev/iommu, one
 * IOAS per context; attach opens the function's VFIO cdev
 * (/dev/vfio/devices/vfioN, found through sysfs), binds it to the iommufd
 * and attaches it to the IOAS; DMA map and unmap are IOMMU_IOAS_MAP/UNMAP
 * with a fixed IOVA. The device ops are hv_vfio.c's, as for type1. Not
 * written yet: reopen (so a device's mmap_fd answers -ENOTSUP here),
 * IOMMU_IOAS_MAP_FILE (its structure is defined, nothing uses it).
 */
#ifndef HV_IOMMUFD_H
#define HV_IOMMUFD_H

#include "hv.h"

/* The VFIO cdev of a function: "<dev_vfio>/devices/vfioN" for the one
 * "<sysfs>/bus/pci/devices/<addr>/vfio-dev/vfioN" entry. -ENOENT (with a
 * message) when the function has none (a kernel without VFIO_DEVICE_CDEV,
 * or not bound to vfio-pci), -EEXIST for more than one. */
int hv_iommufd_cdev_path(const char *sysfs, const char *dev_vfio, const char *addr, char *out,
                         size_t outsz, struct vub_err *err);

/* IOMMU info from IOMMU_IOAS_IOVA_RANGES: `n` inclusive ranges, n >= 1 (more
 * than HV_MAX_IOVA_RANGES: the first ones kept, the rest not offered) and the
 * minimum IOVA alignment. iommufd maps any multiple of the alignment, so
 * every power of two from max(align, page) up is a usable page size; it has
 * no entry limit (has_dma_avail false). */
void hv_iommufd_fill_info(const struct hv_iova_range *ranges, uint32_t n, uint64_t align,
                          uint64_t page, struct hv_iommu_info *out);

/* The context itself (untested, see above): opens /dev/iommu and allocates
 * an IOAS. The caller holds one reference (hv_iommu_put). */
int hv_iommufd_iommu_new(const struct hv_open_opts *opts, struct hv_iommu **out,
                         struct vub_err *err);

#endif /* HV_IOMMUFD_H */
