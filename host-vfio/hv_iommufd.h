/* SPDX-License-Identifier: MIT */
/*
 * hv_iommufd.h - the iommufd IOMMU context (Linux 6.2+ iommufd, 6.6+ VFIO
 * device cdevs, 6.13+ IOMMU_IOAS_MAP_FILE; the uapi is defined locally in
 * hv_iommufd.c because Debian 12's headers are 6.1's).
 *
 * /dev/iommu, one IOAS per context; attach opens the function's VFIO cdev
 * (/dev/vfio/devices/vfioN, found through sysfs), binds it to the iommufd
 * (VFIO_DEVICE_BIND_IOMMUFD) and attaches it to the IOAS
 * (VFIO_DEVICE_ATTACH_IOMMUFD_PT). DMA map is IOMMU_IOAS_MAP of an address
 * in this process, or IOMMU_IOAS_MAP_FILE of a memfd by fd and offset
 * where the kernel has it (dma_map_file); unmap is IOMMU_IOAS_UNMAP of a
 * range. The rules are type1's (hv.h): a table of the mappings refuses an
 * unmap that cuts one before the kernel is asked (iommufd itself would
 * unmap the areas in front of the cut and then fail). The device ops are
 * hv_vfio.c's, as for type1. A cdev takes one bound open file, so there is
 * no reopen: the device's mmap_fd answers -ENOTSUP (hv_device.one_file).
 */
#ifndef HV_IOMMUFD_H
#define HV_IOMMUFD_H

#include "hv.h"

/* The VFIO cdev of a function: "<dev_vfio>/devices/vfioN" for the one
 * "<sysfs>/bus/pci/devices/<addr>/vfio-dev/vfioN" entry, which must have a
 * "dev" attribute (6.1 to 6.5 have the entry without a device number).
 * -ENOENT (with a message) when the function has none (a kernel without
 * VFIO_DEVICE_CDEV, or not bound to vfio-pci), -EEXIST for more than one. */
int hv_iommufd_cdev_path(const char *sysfs, const char *dev_vfio, const char *addr, char *out,
                         size_t outsz, struct vub_err *err);

/* IOMMU info from IOMMU_IOAS_IOVA_RANGES: `n` inclusive ranges, n >= 1 (more
 * than HV_MAX_IOVA_RANGES: the first ones kept, the rest not offered) and the
 * minimum IOVA alignment. iommufd maps any multiple of the alignment, so
 * every power of two from max(align, page) up is a usable page size; it has
 * no entry limit (has_dma_avail false). */
void hv_iommufd_fill_info(const struct hv_iova_range *ranges, uint32_t n, uint64_t align,
                          uint64_t page, struct hv_iommu_info *out);

/* The table of mappings (exposed for its unit test): disjoint ranges, at
 * most `max` of them, in a treap (O(log n) look-up and insert, O(log n + k)
 * removal). Zero-initialised apart from max. */
#define HV_IOMMUFD_MAX_MAPS 65535u   /* as many as type1's default dma_entry_limit */
struct hv_ifd_node;
struct hv_ifd_maps {
    struct hv_ifd_node *root, *spare;
    uint32_t n, max;
    uint64_t rng;
};
/* Room for [iova, iova+size): 0, -EEXIST (overlap), -ENOSPC (max reached),
 * -EINVAL (size 0 or wraps), -ENOMEM. hv_ifd_maps_add then cannot fail. */
int hv_ifd_maps_check_add(struct hv_ifd_maps *m, uint64_t iova, uint64_t size);
void hv_ifd_maps_add(struct hv_ifd_maps *m, uint64_t iova, uint64_t size);
/* The mappings inside [iova, iova+size): how many, and the span from the
 * first one's start to the last one's end; -EINVAL when the range cuts one
 * (or is empty or wraps). */
int hv_ifd_maps_find(const struct hv_ifd_maps *m, uint64_t iova, uint64_t size, uint32_t *count,
                     struct hv_iova_range *span);
/* Forget the mappings starting inside [iova, iova+size) (size 0: all). */
void hv_ifd_maps_remove(struct hv_ifd_maps *m, uint64_t iova, uint64_t size);
void hv_ifd_maps_free(struct hv_ifd_maps *m);

/* The context: opens /dev/iommu (opts->dev_iommu) and allocates an IOAS;
 * nothing else until a device attaches. The caller holds one reference
 * (hv_iommu_put). -ENOENT (with message) on a kernel without iommufd. */
int hv_iommufd_iommu_new(const struct hv_open_opts *opts, struct hv_iommu **out,
                         struct vub_err *err);
/* The same context reached through the VFIO group interface ("iommufd-group"):
 * attach opens the function's group file (/dev/vfio/<group>), attaches it
 * to the iommufd (VFIO_GROUP_SET_CONTAINER takes an iommufd: Linux 6.2+
 * with VFIO_GROUP), whose compat IOAS is this context's IOAS
 * (IOMMU_VFIO_IOAS), and takes the device fd with VFIO_GROUP_GET_DEVICE_FD.
 * Unlike a cdev, every VFIO_GROUP_GET_DEVICE_FD is a new open file of the
 * device, so there is a reopen (a client gets a file of its session, as
 * with type1) while DMA is the IOAS's (by file included). The group file is
 * this context's: another process can neither open it nor bind a cdev of
 * the group while it is held. */
int hv_iommufd_group_iommu_new(const struct hv_open_opts *opts, struct hv_iommu **out,
                               struct vub_err *err);
/* Whether io is an iommufd context (either kind) whose kernel has IOMMU_IOAS_MAP_FILE. */
bool hv_iommufd_has_map_file(const struct hv_iommu *io);
/* A function opened through its VFIO cdev into an IOAS of its own. */
int hv_iommufd_open(const char *addr, const struct hv_open_opts *opts, struct hv_device **out,
                    struct vub_err *err);
/* A function opened through its group file into an iommufd IOAS of its own. */
int hv_iommufd_group_open(const char *addr, const struct hv_open_opts *opts,
                          struct hv_device **out, struct vub_err *err);

#endif /* HV_IOMMUFD_H */
