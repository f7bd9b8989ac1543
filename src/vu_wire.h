/* SPDX-License-Identifier: MIT */
/*
 * vu_wire.h - the vfio-user wire format (final protocol, QEMU 10.1+ client).
 *
 * Every structure is packed and in host byte order, exactly as it travels on
 * the socket. Payload offsets are relative to the first byte after the
 * 16-byte header. Sizes and offsets are checked at compile time at the end of
 * this file. This header knows nothing of kernels or devices; the numeric
 * values of the VFIO constants are repeated here (prefixed VU_) so that src/
 * stands alone.
 */
#ifndef VU_WIRE_H
#define VU_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define VU_PACKED __attribute__((packed))

/* ---- header ------------------------------------------------------------ */

struct vu_hdr {
    uint16_t msg_id;
    uint16_t cmd;
    uint32_t msg_size;  /* including this header */
    uint32_t flags;
    uint32_t error_no;  /* positive errno in error replies; 0 in commands */
} VU_PACKED;

#define VU_HDR_SIZE 16u

#define VU_F_TYPE_MASK   0x0fu
#define VU_F_TYPE_CMD    0x00u
#define VU_F_TYPE_REPLY  0x01u
#define VU_F_NO_REPLY    0x10u
#define VU_F_ERROR       0x20u
#define VU_F_KNOWN       (VU_F_TYPE_MASK | VU_F_NO_REPLY | VU_F_ERROR)

/* ---- commands (final protocol numbering) -------------------------------- */

enum vu_cmd {
    VU_CMD_VERSION = 1,
    VU_CMD_DMA_MAP = 2,
    VU_CMD_DMA_UNMAP = 3,
    VU_CMD_DEVICE_GET_INFO = 4,
    VU_CMD_DEVICE_GET_REGION_INFO = 5,
    VU_CMD_DEVICE_GET_REGION_IO_FDS = 6,
    VU_CMD_DEVICE_GET_IRQ_INFO = 7,
    VU_CMD_DEVICE_SET_IRQS = 8,
    VU_CMD_REGION_READ = 9,
    VU_CMD_REGION_WRITE = 10,
    VU_CMD_DMA_READ = 11,   /* server -> client */
    VU_CMD_DMA_WRITE = 12,  /* server -> client */
    VU_CMD_DEVICE_RESET = 13,
    /* 14 retired (was DIRTY_PAGES) */
    VU_CMD_REGION_WRITE_MULTI = 15,
    VU_CMD_DEVICE_FEATURE = 16,
    VU_CMD_MIG_DATA_READ = 17,
    VU_CMD_MIG_DATA_WRITE = 18,
    VU_CMD_MAX = 18,
};

/* Name of a command for logs ("DMA_MAP"); "UNKNOWN" for others. Never NULL. */
const char *vu_cmd_name(unsigned cmd);

/* ---- VERSION (1) -------------------------------------------------------- */

struct vu_version {
    uint16_t major;
    uint16_t minor;
    /* followed by optional NUL-terminated JSON, NUL counted in msg_size */
} VU_PACKED;

/* ---- DMA_MAP (2) / DMA_UNMAP (3) ----------------------------------------- */

#define VU_DMA_MAP_FLAG_READ   (1u << 0)
#define VU_DMA_MAP_FLAG_WRITE  (1u << 1)

struct vu_dma_map {
    uint32_t argsz;   /* 32: size of this request payload */
    uint32_t flags;
    uint64_t offset;  /* offset into the attached fd; 0 without fd */
    uint64_t address; /* DMA address (IOVA) */
    uint64_t size;
} VU_PACKED;

#define VU_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP (1u << 0) /* pre-2023, rejected */
#define VU_DMA_UNMAP_FLAG_ALL              (1u << 1)

struct vu_dma_unmap {
    uint32_t argsz;   /* request: max reply payload (24) */
    uint32_t flags;   /* 0 or VU_DMA_UNMAP_FLAG_ALL */
    uint64_t address;
    uint64_t size;
} VU_PACKED;

/* ---- DEVICE_GET_INFO (4) ------------------------------------------------- */

#define VU_DEVICE_FLAGS_RESET (1u << 0)
#define VU_DEVICE_FLAGS_PCI   (1u << 1)

struct vu_device_info {
    uint32_t argsz;
    uint32_t flags;
    uint32_t num_regions;
    uint32_t num_irqs;
} VU_PACKED;

/* ---- DEVICE_GET_REGION_INFO (5) ----------------------------------------- */

#define VU_REGION_INFO_FLAG_READ  (1u << 0)
#define VU_REGION_INFO_FLAG_WRITE (1u << 1)
#define VU_REGION_INFO_FLAG_MMAP  (1u << 2)
#define VU_REGION_INFO_FLAG_CAPS  (1u << 3)

/* PCI region indexes (same as the kernel's) */
enum {
    VU_PCI_BAR0_REGION_INDEX = 0,
    VU_PCI_BAR5_REGION_INDEX = 5,
    VU_PCI_ROM_REGION_INDEX = 6,
    VU_PCI_CONFIG_REGION_INDEX = 7,
    VU_PCI_VGA_REGION_INDEX = 8,
    VU_PCI_NUM_REGIONS = 9,
};

struct vu_region_info {
    uint32_t argsz;      /* request: max reply payload; reply: size needed */
    uint32_t flags;
    uint32_t index;
    uint32_t cap_offset; /* from the start of this struct; 0 = none */
    uint64_t size;
    uint64_t offset;     /* mmap offset into the fd sent with the reply */
} VU_PACKED;

struct vu_cap_header {
    uint16_t id;
    uint16_t version;
    uint32_t next;       /* from the start of vu_region_info; 0 ends */
} VU_PACKED;

#define VU_REGION_INFO_CAP_SPARSE_MMAP   1
#define VU_REGION_INFO_CAP_TYPE          2
#define VU_REGION_INFO_CAP_MSIX_MAPPABLE 3 /* kernel's; not in the spec */

struct vu_sparse_mmap_area {
    uint64_t offset;     /* relative to the start of the region */
    uint64_t size;
} VU_PACKED;

struct vu_region_cap_sparse_mmap {
    struct vu_cap_header header;
    uint32_t nr_areas;
    uint32_t reserved;
    /* struct vu_sparse_mmap_area areas[nr_areas]; */
} VU_PACKED;

struct vu_region_cap_type {
    struct vu_cap_header header;
    uint32_t type;
    uint32_t subtype;
} VU_PACKED;

/* ---- DEVICE_GET_REGION_IO_FDS (6) --------------------------------------- */

struct vu_region_io_fds_request {
    uint32_t argsz;
    uint32_t flags;  /* 0 */
    uint32_t index;
    uint32_t count;  /* 0 in requests */
} VU_PACKED;

#define VU_IO_FD_TYPE_IOEVENTFD   0
#define VU_IO_FD_TYPE_IOREGIONFD  1

struct vu_ioeventfd_entry {  /* spec layout, 40 bytes */
    uint64_t offset;
    uint64_t size;
    uint32_t fd_index;
    uint32_t type;
    uint32_t flags;
    uint32_t padding;
    uint64_t datamatch;
} VU_PACKED;

/* ---- DEVICE_GET_IRQ_INFO (7) -------------------------------------------- */

#define VU_IRQ_INFO_EVENTFD    (1u << 0)
#define VU_IRQ_INFO_MASKABLE   (1u << 1)
#define VU_IRQ_INFO_AUTOMASKED (1u << 2)
#define VU_IRQ_INFO_NORESIZE   (1u << 3)

enum {
    VU_PCI_INTX_IRQ_INDEX = 0,
    VU_PCI_MSI_IRQ_INDEX = 1,
    VU_PCI_MSIX_IRQ_INDEX = 2,
    VU_PCI_ERR_IRQ_INDEX = 3,
    VU_PCI_REQ_IRQ_INDEX = 4,
    VU_PCI_NUM_IRQS = 5,
};

struct vu_irq_info {
    uint32_t argsz;
    uint32_t flags;
    uint32_t index;
    uint32_t count;
} VU_PACKED;

/* ---- DEVICE_SET_IRQS (8) ------------------------------------------------- */

#define VU_IRQ_SET_DATA_NONE      (1u << 0)
#define VU_IRQ_SET_DATA_BOOL      (1u << 1)
#define VU_IRQ_SET_DATA_EVENTFD   (1u << 2)
#define VU_IRQ_SET_ACTION_MASK    (1u << 3)
#define VU_IRQ_SET_ACTION_UNMASK  (1u << 4)
#define VU_IRQ_SET_ACTION_TRIGGER (1u << 5)
#define VU_IRQ_SET_DATA_MASK   (VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_DATA_BOOL | VU_IRQ_SET_DATA_EVENTFD)
#define VU_IRQ_SET_ACTION_MASK_ALL \
    (VU_IRQ_SET_ACTION_MASK | VU_IRQ_SET_ACTION_UNMASK | VU_IRQ_SET_ACTION_TRIGGER)

struct vu_irq_set {
    uint32_t argsz;  /* size of the request payload including data */
    uint32_t flags;
    uint32_t index;
    uint32_t start;
    uint32_t count;
    /* uint8_t data[count] for DATA_BOOL; eventfds travel as SCM_RIGHTS */
} VU_PACKED;

/* ---- REGION_READ (9) / REGION_WRITE (10) --------------------------------- */

struct vu_region_access {
    uint64_t offset;
    uint32_t region;
    uint32_t count;
    /* uint8_t data[count]: write request, read reply */
} VU_PACKED;

/* ---- DMA_READ (11) / DMA_WRITE (12), server -> client --------------------- */

struct vu_dma_access {
    uint64_t address;
    uint64_t count;
    /* uint8_t data[count] */
} VU_PACKED;

/* ---- REGION_WRITE_MULTI (15) --------------------------------------------- */

#define VU_WRITE_MULTI_MAX_DATA 8u
#define VU_WRITE_MULTI_MAX_ENTRIES 200u /* QEMU sends at most 200 */

struct vu_write_multi_entry {
    uint64_t offset;
    uint32_t region;
    uint32_t count;   /* 1..8 */
    uint8_t data[VU_WRITE_MULTI_MAX_DATA];
} VU_PACKED;

struct vu_write_multi {
    uint64_t wr_cnt;
    /* struct vu_write_multi_entry wrs[wr_cnt]; */
} VU_PACKED;

/* ---- DEVICE_FEATURE (16) -------------------------------------------------- */

#define VU_DEVICE_FEATURE_MASK  0xffffu
#define VU_DEVICE_FEATURE_GET   (1u << 16)
#define VU_DEVICE_FEATURE_SET   (1u << 17)
#define VU_DEVICE_FEATURE_PROBE (1u << 18)

struct vu_device_feature {
    uint32_t argsz;
    uint32_t flags;
    /* uint8_t data[] */
} VU_PACKED;

/* ---- MIG_DATA_READ (17) / MIG_DATA_WRITE (18) ----------------------------- */

struct vu_mig_data {
    uint32_t argsz;
    uint32_t size;
    /* uint8_t data[size] */
} VU_PACKED;

/* ---- layout checks ------------------------------------------------------- */

#define VU_CHECK_SIZE(t, n) _Static_assert(sizeof(t) == (n), #t " must be " #n " bytes")
#define VU_CHECK_OFF(t, f, n) _Static_assert(offsetof(t, f) == (n), #t "." #f " must be at " #n)

VU_CHECK_SIZE(struct vu_hdr, 16);
VU_CHECK_OFF(struct vu_hdr, cmd, 2);
VU_CHECK_OFF(struct vu_hdr, msg_size, 4);
VU_CHECK_OFF(struct vu_hdr, flags, 8);
VU_CHECK_OFF(struct vu_hdr, error_no, 12);
VU_CHECK_SIZE(struct vu_version, 4);
VU_CHECK_SIZE(struct vu_dma_map, 32);
VU_CHECK_OFF(struct vu_dma_map, offset, 8);
VU_CHECK_OFF(struct vu_dma_map, address, 16);
VU_CHECK_OFF(struct vu_dma_map, size, 24);
VU_CHECK_SIZE(struct vu_dma_unmap, 24);
VU_CHECK_OFF(struct vu_dma_unmap, address, 8);
VU_CHECK_OFF(struct vu_dma_unmap, size, 16);
VU_CHECK_SIZE(struct vu_device_info, 16);
VU_CHECK_OFF(struct vu_device_info, num_irqs, 12);
VU_CHECK_SIZE(struct vu_region_info, 32);
VU_CHECK_OFF(struct vu_region_info, cap_offset, 12);
VU_CHECK_OFF(struct vu_region_info, size, 16);
VU_CHECK_OFF(struct vu_region_info, offset, 24);
VU_CHECK_SIZE(struct vu_cap_header, 8);
VU_CHECK_OFF(struct vu_cap_header, next, 4);
VU_CHECK_SIZE(struct vu_sparse_mmap_area, 16);
VU_CHECK_SIZE(struct vu_region_cap_sparse_mmap, 16);
VU_CHECK_OFF(struct vu_region_cap_sparse_mmap, nr_areas, 8);
VU_CHECK_SIZE(struct vu_region_cap_type, 16);
VU_CHECK_SIZE(struct vu_region_io_fds_request, 16);
VU_CHECK_SIZE(struct vu_ioeventfd_entry, 40);
VU_CHECK_OFF(struct vu_ioeventfd_entry, datamatch, 32);
VU_CHECK_SIZE(struct vu_irq_info, 16);
VU_CHECK_SIZE(struct vu_irq_set, 20);
VU_CHECK_OFF(struct vu_irq_set, count, 16);
VU_CHECK_SIZE(struct vu_region_access, 16);
VU_CHECK_OFF(struct vu_region_access, region, 8);
VU_CHECK_OFF(struct vu_region_access, count, 12);
VU_CHECK_SIZE(struct vu_dma_access, 16);
VU_CHECK_SIZE(struct vu_write_multi_entry, 24);
VU_CHECK_OFF(struct vu_write_multi_entry, data, 16);
VU_CHECK_SIZE(struct vu_write_multi, 8);
VU_CHECK_SIZE(struct vu_device_feature, 8);
VU_CHECK_SIZE(struct vu_mig_data, 8);

#endif /* VU_WIRE_H */
