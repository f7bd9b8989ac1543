/* SPDX-License-Identifier: MIT */
/* hv_internal.h - helpers shared by the host-vfio sources (not installed). */
#ifndef HV_INTERNAL_H
#define HV_INTERNAL_H

#include "hv.h"

#include <stddef.h>

#define HV_PATH_MAX 512

/* snprintf into buf; -ENAMETOOLONG if it does not fit. */
int hv_path(char *buf, size_t bufsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Bounded copy that always terminates (dstsz > 0). */
void hv_strlcpy(char *dst, const char *src, size_t dstsz);

/* Whether a driver may hold a member of a group that vfio uses: none,
 * vfio-pci (and its variants), pci-stub, pcieport. */
bool hv_driver_tolerated(const char *drv);

/* Check every member of IOMMU group `group` other than `skip` (may be NULL)
 * is held by a tolerated driver. 0, or -EBUSY with "group N is not viable:
 * A is bound to X, ..." in err (prefixed by `who: ` when who != NULL). */
int hv_sysfs_group_viable(const char *sysfs, int group, const char *skip, const char *who,
                          struct vub_err *err);

/* The members of IOMMU group `group` other than `skip` (may be NULL), as
 * "ADDR (driver), ..." ("no driver" for none) in out, sorted. Returns how
 * many or -errno. */
int hv_sysfs_group_members(const char *sysfs, int group, const char *skip, char *out,
                           size_t outsz);

/* Read a small sysfs file (trailing newline stripped). */
int hv_sysfs_read(const char *path, char *buf, size_t bufsz);
/* Write a string to a sysfs file (one write). */
int hv_sysfs_write(const char *path, const char *s);

/* The processes other than this one (at most HV_PROC_HOLDERS_MAX) with an
 * fd open on `path`, as "pid N (command line), ..." in out (empty when
 * none). `proc` is the proc root (NULL: /proc); processes it may not
 * inspect are not seen. Returns how many were found or -errno. */
#define HV_PROC_HOLDERS_MAX 8u
int hv_proc_holders(const char *proc, const char *path, char *out, size_t outsz);

struct pci_access;
/* Fill the names of out->vendor/device/class_code using pacc (may be NULL:
 * numbers only). */
void hv_pci_fill_names(struct pci_access *pacc, struct hv_pci_ident *out);
struct pci_access *hv_pci_names_open(void);
void hv_pci_names_close(struct pci_access *pacc);

/* type1 side of hv_vfio_kernel_fds / hv_vfio_adopt (hv_type1.c). */
int hv_type1_fds(struct hv_iommu *io, int group, int *container, int *group_fd);
/* The file of group `group` in a type1 context (still the context's), or
 * -ENOENT when the context does not hold it, -ENOTSUP for another context. */
int hv_type1_group_fd(struct hv_iommu *io, int group);
/* The sysfs root of an iommufd context, NULL for another context
 * (hv_iommufd.c). */
const char *hv_iommufd_sysfs(const struct hv_iommu *io);
/* The file of group `group` in an iommufd context reached through the
 * group, as hv_type1_group_fd (-ENOTSUP for another context). */
int hv_iommufd_group_fd(struct hv_iommu *io, int group);
int hv_type1_adopt(int container, int group, int group_fd, struct hv_iommu **out,
                   struct vub_err *err);

#endif /* HV_INTERNAL_H */
