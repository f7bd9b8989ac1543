/* SPDX-License-Identifier: MIT */
/*
 * hv.h - the host side: one PCI function driven through the host kernel's
 * VFIO, behind two ops tables: the device's (regions, IRQs, reset) and its
 * IOMMU context's (DMA map/unmap, IOVA ranges). Nothing of vfio-user in here.
 *
 * Back ends: the kernel's VFIO device fd with the type1 container
 * (hv_type1_open), the same device fd from its VFIO cdev bound to an
 * iommufd IOAS (hv_iommufd.h), and a simulated device with a simulated type1
 * container (hv_sim.h) for unit tests and native benchmarks. The two kernel
 * IOMMU back ends are two IOMMU ops tables; the device ops are shared.
 *
 * Conventions: 0 / non-negative on success, negative errno on failure. Where
 * a `struct vub_err *` is taken (may be NULL) a failure leaves a message that
 * names the device, the step and the cause, e.g.
 *   "0000:01:00.0 is bound to nvme, not vfio-pci"
 *   "group 7 is not viable: 0000:01:00.1 is bound to igb"
 *   "permission denied opening /dev/vfio/7"
 * Nothing here prints.
 */
#ifndef HV_H
#define HV_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vub_err.h"   /* struct vub_err, vub_fail: the reason of a failure */

#define HV_ADDR_LEN 16  /* "DDDDDD:BB:DD.F" + NUL, rounded */

/* Parse and canonicalise a PCI address the way the kernel names functions
 * ("%04x:%02x:%02x.%d"): the full "DDDD:BB:DD.F" with a domain of 4 to 6 hex
 * digits (domains above 0xffff exist: Intel VMD puts its child buses at
 * 10000 and up, e.g. "10000:e1:00.0"), or the short "BB:DD.F" meaning domain
 * 0. "1:0.0" is refused. out gets "0000:01:00.0". -EINVAL on bad syntax.
 * The one PCI address grammar of the project (the policy uses it too). */
int hv_pci_addr_parse(const char *in, char out[HV_ADDR_LEN]);

/* ---- what the device and its IOMMU say (kernel structs, cut down) ---------- */

/* flags are the kernel's VFIO_DEVICE_FLAGS_* as reported */
struct hv_device_info {
    uint32_t flags;
    uint32_t num_regions;
    uint32_t num_irqs;
};

#define HV_MAX_REGION_CAPS 4096u   /* raw cap chain bytes kept */

/* One region as the kernel reports it. `caps` is the raw capability chain
 * exactly as the kernel wrote it after its 32-byte struct (cap offsets in it
 * are relative to the start of that struct, i.e. the first cap is normally at
 * 32 and caps[0] is the byte at offset 32). */
struct hv_region_info {
    uint32_t index;
    uint32_t flags;        /* VFIO_REGION_INFO_FLAG_* as reported */
    uint64_t size;
    uint64_t offset;       /* offset into the device fd (kernel: index << 40) */
    uint32_t cap_offset;   /* as reported (0 if none) */
    uint32_t caps_len;     /* bytes in caps */
    uint8_t caps[HV_MAX_REGION_CAPS];
};

struct hv_irq_info {
    uint32_t index;
    uint32_t flags;        /* VFIO_IRQ_INFO_* */
    uint32_t count;
};

#define HV_MAX_IOVA_RANGES 16
struct hv_iova_range {
    uint64_t start, end;   /* inclusive */
};

struct hv_iommu_info {
    uint64_t pgsizes;             /* iova_pgsizes */
    uint32_t nr_ranges;           /* 0 = the whole 64-bit space */
    struct hv_iova_range ranges[HV_MAX_IOVA_RANGES];
    bool has_dma_avail;
    uint32_t dma_avail;           /* available DMA mapping entries */
};

/* ---- the two ops tables ------------------------------------------------------
 *
 * A device is two things: the VFIO device (regions, IRQs, reset, the fd a
 * client mmaps) and the IOMMU context it is attached to (DMA map/unmap, page
 * sizes and IOVA ranges). Every kernel back end reaches the device through
 * the same VFIO device fd, so there is one set of device ops for all of them
 * (hv_vfio.c); what differs is how the device fd is obtained and where DMA
 * is mapped: the type1 container (hv_type1.c), or an iommufd IOAS
 * (hv_iommufd.c: the function's VFIO cdev bound to /dev/iommu, or its group
 * file attached to it).
 *
 *                 struct hv_device ---- iommu ---> struct hv_iommu
 *                 hv_device_ops                    hv_iommu_ops
 *   kernel:       "vfio"  (hv_vfio.c)              "type1" (hv_type1.c)
 *                                                  "iommufd" (hv_iommufd.c, cdevs)
 *                                                  "iommufd-group" (the same
 *                                                  IOAS, through the group file)
 *   simulator:    "sim"   (hv_sim.c, edu-like)     "sim"   (hv_sim.c, type1 rules)
 *
 * Several devices may share one IOMMU context (the context is reference
 * counted; each device holds one reference): that is one DMA address space,
 * as the functions of one IOMMU group must have. */

struct hv_device;
struct hv_iommu;

/* One function a hot reset of a device resets too (itself included), as
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO reports it. */
#define HV_MAX_RESET_DEPS 32u
struct hv_reset_dep {
    char addr[HV_ADDR_LEN];
    int group;               /* its IOMMU group (a cdev's kernel reports
                              * iommufd device ids instead: read from
                              * sysfs then; -1 if it has none) */
};

struct hv_device_ops {
    const char *name;   /* "vfio", "sim" */
    int (*get_info)(struct hv_device *d, struct hv_device_info *out);
    /* Retries with the argsz the kernel asks for. -EINVAL for a bad index. */
    int (*get_region_info)(struct hv_device *d, uint32_t index, struct hv_region_info *out);
    int (*get_irq_info)(struct hv_device *d, uint32_t index, struct hv_irq_info *out);
    /* Access inside a region: off + len must lie inside the region (-EINVAL
     * otherwise, nothing done). The back end adds the region's kernel offset.
     * Returns bytes done (the kernel may do fewer) or -errno. */
    ssize_t (*region_read)(struct hv_device *d, uint32_t index, uint64_t off, void *buf, size_t len);
    ssize_t (*region_write)(struct hv_device *d, uint32_t index, uint64_t off, const void *buf, size_t len);
    /* VFIO_DEVICE_SET_IRQS. flags are the kernel's VFIO_IRQ_SET_* bits (same
     * values as vfio-user's). data: DATA_EVENTFD: `count` int32 fds (-1 =
     * de-assign); DATA_BOOL: `count` bytes; DATA_NONE: NULL. The kernel takes
     * its own references to eventfds: the caller keeps and closes its fds. */
    int (*set_irqs)(struct hv_device *d, uint32_t flags, uint32_t index, uint32_t start,
                    uint32_t count, const void *data);
    /* VFIO_DEVICE_RESET; -ENOTTY/-ENOTSUP when the device has none. */
    int (*reset)(struct hv_device *d);
    /* VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: the functions a reset of the
     * device's slot or bus resets (itself among them) into out[0, max),
     * their count in *n (also when more than max: then -ENOSPC). -ENODEV
     * when neither a slot nor a bus reset is possible. */
    int (*hot_reset_info)(struct hv_device *d, struct hv_reset_dep *out, size_t max, size_t *n);
    /* VFIO_DEVICE_PCI_HOT_RESET: reset the slot or bus. type1 and
     * iommufd-group: with the
     * files of every group in the scope, each of which must be attached to
     * the device's IOMMU context (-EPERM naming the group otherwise).
     * iommufd (a cdev): with no group files; every function in the scope
     * must be bound to the device's iommufd or be in the IOMMU group of one
     * that is (the kernel's ownership check; -EPERM naming the first that
     * is not, before the kernel is asked). */
    int (*hot_reset)(struct hv_device *d, struct vub_err *err);
    /* A new open file of the device (the caller owns the fd) that a client
     * can mmap regions through, at the region's `offset`. Each call gives a
     * file of its own, never a dup of the back end's: kcmp(KCMP_FILE) tells
     * it apart from the back end's and from every earlier one (kernel: the IOMMU
     * context's reopen, type1 a new VFIO_GROUP_GET_DEVICE_FD; sim: the BAR
     * memfd reopened). Whoever holds
     * it (or a mapping of it) reaches the device until it is closed. */
    int (*mmap_fd)(struct hv_device *d);
    /* Close the device and drop its reference on its IOMMU context. */
    void (*close)(struct hv_device *d);
};

/* What an IOMMU back end's attach gives the VFIO device layer. */
struct hv_attach {
    int devfd;     /* the VFIO device fd (the device layer owns it from here) */
    int group;     /* IOMMU group number, -1 if none */
};

struct hv_iommu_ops {
    const char *name;   /* "type1", "iommufd", "iommufd-group", "sim" */
    /* Map `size` bytes of this process at vaddr to iova. flags:
     * HV_DMA_READ|HV_DMA_WRITE. Kernel rules: -EEXIST on overlap, -EINVAL for
     * an iova outside the usable ranges or misaligned, -ENOSPC when the entry
     * limit is reached. */
    int (*dma_map)(struct hv_iommu *io, uint64_t iova, void *vaddr, uint64_t size,
                   uint32_t flags);
    /* Kernel type1 v2 rules: unmap every mapping inside [iova, iova+size),
     * success if there is none, -EINVAL (nothing done) if the range cuts a
     * mapping or is misaligned; with HV_DMA_UNMAP_ALL, iova = size = 0,
     * everything. */
    int (*dma_unmap)(struct hv_iommu *io, uint64_t iova, uint64_t size, uint32_t flags);
    /* Map `size` bytes of the memory file fd from byte `offset` to iova
     * without a mapping in this process (iommufd's IOMMU_IOAS_MAP_FILE,
     * Linux 6.13; memfd/shmem and hugetlbfs files only). The same rules as
     * dma_map. The kernel does not check the fd's open mode: the caller
     * must (a WRITE map of a read-only fd would let the device write what
     * the caller may only read). NULL, or -ENOTSUP from the call, where the
     * kernel has none: the caller maps the file and uses dma_map. */
    int (*dma_map_file)(struct hv_iommu *io, uint64_t iova, int fd, uint64_t offset,
                        uint64_t size, uint32_t flags);
    int (*info)(struct hv_iommu *io, struct hv_iommu_info *out);
    /* The open path of a kernel device, called by the VFIO device layer
     * (hv_vfio_open), not by users: check the function in sysfs, get its
     * VFIO device fd attached to this context. Every failure names the
     * device, the step and the cause. NULL for the simulator (its devices
     * attach in hv_sim_open_on). */
    int (*attach)(struct hv_iommu *io, const char *addr, struct hv_attach *out,
                  struct vub_err *err);
    /* Another open file of an attached device (a new VFIO device fd, never
     * a dup of a.devfd), for the device's mmap_fd. type1 and
     * iommufd-group: the group's VFIO_GROUP_GET_DEVICE_FD again. NULL where
     * there is none: iommufd (a
     * VFIO cdev takes one bound open file; the device's mmap_fd answers
     * -ENOTSUP and hv_device.one_file is set), the simulator (its devices
     * reopen their own memfd). */
    int (*reopen)(struct hv_iommu *io, const char *addr, const struct hv_attach *a);
    /* Undo one attach, after the device fd is closed. */
    void (*detach)(struct hv_iommu *io, const struct hv_attach *a);
    /* Free the context (the last reference went). */
    void (*destroy)(struct hv_iommu *io);
};

#define HV_DMA_READ  (1u << 0)  /* == VFIO_DMA_MAP_FLAG_READ */
#define HV_DMA_WRITE (1u << 1)
#define HV_DMA_UNMAP_ALL (1u << 1) /* == VFIO_DMA_UNMAP_FLAG_ALL */

/* Common head of every IOMMU context. refs: one per device attached plus
 * one per holder that opened it; changed only (atomically) by
 * hv_iommu_get/put, and the context goes with the last one. */
struct hv_iommu {
    const struct hv_iommu_ops *ops;
    unsigned refs;
};
void hv_iommu_get(struct hv_iommu *io);
void hv_iommu_put(struct hv_iommu *io);   /* NULL is a no-op */

/* Common head of every back end's device. */
struct hv_device {
    const struct hv_device_ops *ops;
    struct hv_iommu *iommu;  /* the context the device is attached to (one reference) */
    char addr[HV_ADDR_LEN];  /* "0000:01:00.0" (sim: whatever the test set) */
    int group;               /* IOMMU group number, -1 if none (sim) */
    bool one_file;           /* mmap_fd cannot give a second open file of
                              * the device (a VFIO cdev): -ENOTSUP */
};

/* The calls every user makes (bridge, tools, tests): one wrapper per op, so
 * that no caller depends on which table an op lives in. */
static inline const char *hv_device_kind(const struct hv_device *d) { return d->ops->name; }
static inline const char *hv_iommu_kind(const struct hv_device *d) { return d->iommu->ops->name; }
static inline int hv_get_info(struct hv_device *d, struct hv_device_info *out)
{
    return d->ops->get_info(d, out);
}
static inline int hv_get_region_info(struct hv_device *d, uint32_t index,
                                     struct hv_region_info *out)
{
    return d->ops->get_region_info(d, index, out);
}
static inline int hv_get_irq_info(struct hv_device *d, uint32_t index, struct hv_irq_info *out)
{
    return d->ops->get_irq_info(d, index, out);
}
static inline ssize_t hv_region_read(struct hv_device *d, uint32_t index, uint64_t off,
                                     void *buf, size_t len)
{
    return d->ops->region_read(d, index, off, buf, len);
}
static inline ssize_t hv_region_write(struct hv_device *d, uint32_t index, uint64_t off,
                                      const void *buf, size_t len)
{
    return d->ops->region_write(d, index, off, buf, len);
}
static inline int hv_set_irqs(struct hv_device *d, uint32_t flags, uint32_t index,
                              uint32_t start, uint32_t count, const void *data)
{
    return d->ops->set_irqs(d, flags, index, start, count, data);
}
static inline int hv_reset(struct hv_device *d) { return d->ops->reset(d); }
static inline int hv_hot_reset_info(struct hv_device *d, struct hv_reset_dep *out, size_t max,
                                    size_t *n)
{
    return d->ops->hot_reset_info(d, out, max, n);
}
static inline int hv_hot_reset(struct hv_device *d, struct vub_err *err)
{
    return d->ops->hot_reset(d, err);
}
static inline int hv_mmap_fd(struct hv_device *d) { return d->ops->mmap_fd(d); }
static inline int hv_dma_map(struct hv_device *d, uint64_t iova, void *vaddr, uint64_t size,
                             uint32_t flags)
{
    return d->iommu->ops->dma_map(d->iommu, iova, vaddr, size, flags);
}
static inline int hv_dma_unmap(struct hv_device *d, uint64_t iova, uint64_t size, uint32_t flags)
{
    return d->iommu->ops->dma_unmap(d->iommu, iova, size, flags);
}
/* -ENOTSUP where the IOMMU context cannot map a file by fd (then map it
 * and use hv_dma_map). */
static inline int hv_dma_map_file(struct hv_device *d, uint64_t iova, int fd, uint64_t offset,
                                  uint64_t size, uint32_t flags)
{
    if (!d->iommu->ops->dma_map_file)
        return -ENOTSUP;
    return d->iommu->ops->dma_map_file(d->iommu, iova, fd, offset, size, flags);
}
static inline int hv_iommu_get_info(struct hv_device *d, struct hv_iommu_info *out)
{
    return d->iommu->ops->info(d->iommu, out);
}
static inline void hv_close(struct hv_device *d) { if (d) d->ops->close(d); }

/* ---- sysfs ------------------------------------------------------------------ */

/* All sysfs look-ups take a root (normally "/sys"; tests pass a fake tree). */
#define HV_SYSFS_DEFAULT "/sys"

/* Current driver name of a function into drv ("" if none). -ENODEV when the
 * function does not exist. */
int hv_sysfs_driver(const char *sysfs, const char *addr, char *drv, size_t drvsz);
/* A hex attribute of a function, <sysfs>/bus/pci/devices/<addr>/<name>, that
 * the kernel writes as "0x" and exactly `digits` hex digits (vendor, device,
 * subsystem_*: 4; class: 6). -errno if it cannot be read, -EIO (with the
 * content quoted) if it is not that shape. */
int hv_sysfs_hex_attr(const char *sysfs, const char *addr, const char *name, unsigned digits,
                      uint32_t *out, struct vub_err *err);
/* IOMMU group number of a function; -ENOENT (with message) if it has none. */
int hv_sysfs_iommu_group(const char *sysfs, const char *addr, struct vub_err *err);
/* Check a function exists, is bound to vfio-pci, has a group, and its group is
 * viable (every member bound to vfio-pci or to no driver, or to one of the
 * drivers the kernel's vfio tolerates in a group: pci-stub, pcieport).
 * Returns the group number or -errno with the message naming the offenders. */
int hv_sysfs_check_exportable(const char *sysfs, const char *addr, struct vub_err *err);
/* Whether the group of `addr` would be viable if `addr` were bound to
 * vfio-pci (used before binding). 0 or -EBUSY with the offenders named. */
int hv_sysfs_check_group_would_be_viable(const char *sysfs, const char *addr, struct vub_err *err);

/* Bus address and size of BAR `index` (0-5) of a function, from its sysfs
 * `resource` file. -ENOENT when the BAR is not assigned. (Older kernels,
 * 6.1 among them, show this address, not the region offset, as the file
 * offset of a VFIO BAR mapping in /proc/<pid>/maps.) */
int hv_sysfs_bar_phys(const char *sysfs, const char *addr, unsigned index, uint64_t *start,
                      uint64_t *size);

/* ---- the kernel back ends ------------------------------------------------------ */

struct hv_open_opts {
    const char *sysfs;     /* NULL = "/sys" */
    const char *dev_vfio;  /* NULL = "/dev/vfio" */
    const char *dev_iommu; /* NULL = "/dev/iommu" (iommufd) */
};
/* A type1 IOMMU context: one VFIO container (type1v2). Nothing is opened
 * until the first device attaches (the group file is opened before the
 * container, so the errors people meet come first); devices of several
 * groups, and several devices of one group, may share it. The caller holds
 * one reference (hv_iommu_put). */
int hv_type1_iommu_new(const struct hv_open_opts *opts, struct hv_iommu **out,
                       struct vub_err *err);
/* Open a function by PCI address as a VFIO device attached to the kernel
 * IOMMU context `io` (which it takes a reference on). -EINVAL (with message)
 * for a context that cannot attach kernel devices (the simulator's). */
int hv_vfio_open(struct hv_iommu *io, const char *addr, struct hv_device **out,
                 struct vub_err *err);
/* Both in one: a function opened through sysfs + VFIO container/group/type1v2
 * in a container of its own. Every failure names the device, the step and
 * cause. */
int hv_type1_open(const char *addr, const struct hv_open_opts *opts, struct hv_device **out,
                  struct vub_err *err);

/* ---- handing an open device to a new process (live re-exec) ------------------
 *
 * The kernel objects of a type1 device are fds: the container (which holds
 * the IOMMU mappings and the pins), the group file (attached to the
 * container) and the device fd (whose SET_IRQS wiring and BAR mappings live
 * as long as it is open). A process that passes them over execve() keeps the
 * device exactly as it is; the new process adopts them without one call that
 * changes anything (docs/architecture.md, "Live re-exec"). */
struct hv_kernel_fds {
    int container;
    int group;        /* the IOMMU group number */
    int group_fd;
    int devfd;
};
/* The fds of an open kernel device (still owned by d). -ENOTSUP for the
 * simulator or a context with more than one group or device. */
int hv_vfio_kernel_fds(struct hv_device *d, struct hv_kernel_fds *out);
/* A device from fds another process of this program opened (hv_vfio_kernel_fds
 * there). Read-only checks only: the group is viable and in a container
 * (VFIO_GROUP_GET_STATUS), the container has the type1v2 IOMMU set, the
 * device answers VFIO_DEVICE_GET_INFO; the IOMMU info and the region cache
 * are read again. On success the fds are owned by *out; on error nothing is
 * closed (the caller still owns them) and err names the step. */
int hv_vfio_adopt(const char *addr, const struct hv_kernel_fds *fds, struct hv_device **out,
                  struct vub_err *err);

/* ---- identity (libpci) ------------------------------------------------------- */

struct hv_pci_ident {
    uint16_t vendor, device, subsys_vendor, subsys_device;
    uint32_t class_code;        /* 24-bit: base, sub, prog-if */
    char vendor_name[128];
    char device_name[128];
    char class_name[128];
};
/* Identity of a function from its config space via libpci (names from the
 * pci.ids database, or "Unknown vendor 1234" style when absent). */
int hv_pci_identify(const char *addr, struct hv_pci_ident *out, struct vub_err *err);
/* The names for raw ids (no device access), e.g. for a vfio-user peer. */
void hv_pci_names(uint16_t vendor, uint16_t device, uint32_t class_code, struct hv_pci_ident *out);

/* ---- listing and binding ----------------------------------------------------- */

struct hv_list_entry {
    char addr[HV_ADDR_LEN];
    struct hv_pci_ident id;
    char driver[64];          /* "" = none */
    int group;                /* -1 = none */
    char cdev[16];            /* its VFIO device cdev, "vfio3" ("" = none:
                               * no VFIO_DEVICE_CDEV, or not on vfio-pci) */
    bool exportable;          /* could be exported now */
    char why[256];            /* if not: the reason */
};
/* Every PCI function under sysfs, sorted by address. *out malloc'd (the
 * caller frees it). Against the real "/sys" (or NULL) an exportable function
 * also needs its /dev/vfio/<group> node to exist and be read-writable. */
int hv_list(const char *sysfs, struct hv_list_entry **out, size_t *n, struct vub_err *err);
/* The same with the /dev/vfio directory explicit (NULL: skip that check). */
int hv_list_ex(const char *sysfs, const char *dev_vfio, struct hv_list_entry **out, size_t *n,
               struct vub_err *err);

/* Bind addr to vfio-pci through driver_override (refused with -EBUSY when the
 * group would not become viable). The previous driver's name is written to
 * prev (so hv_release can give it back). */
int hv_bind_vfio(const char *sysfs, const char *addr, char *prev, size_t prevsz, struct vub_err *err);
/* Give addr back: clear driver_override, unbind from vfio-pci, and reprobe
 * (to `prev` if given and non-empty, else to whatever drivers_probe picks). */
int hv_release(const char *sysfs, const char *addr, const char *prev, struct vub_err *err);

#endif /* HV_H */
