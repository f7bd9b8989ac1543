/* SPDX-License-Identifier: MIT */
/*
 * msix.h - where a device's MSI-X table and PBA live, and the mmappable areas
 * of a BAR once they are cut out (the --sparse-msix mode, for clients that do
 * not understand the kernel's MSIX_MAPPABLE capability).
 */
#ifndef BR_MSIX_H
#define BR_MSIX_H

#include <stdbool.h>
#include <stdint.h>

#include "hv.h"
#include "vu_wire.h"

#define BR_PCI_CAP_ID_MSIX 0x11u

struct br_msix_layout {
    bool present;
    uint32_t table_bir;      /* BAR index of the table (0..5) */
    uint64_t table_offset;   /* byte offset of the table in that BAR */
    uint32_t table_size;     /* entries, 1..2048 (16 bytes each) */
    uint32_t pba_bir;
    uint64_t pba_offset;
};

/* Bytes of the table and of the PBA. */
static inline uint64_t br_msix_table_bytes(const struct br_msix_layout *l)
{
    return (uint64_t)l->table_size * 16u;
}
static inline uint64_t br_msix_pba_bytes(const struct br_msix_layout *l)
{
    return ((uint64_t)l->table_size + 63u) / 64u * 8u;
}

/* Parse the MSI-X capability from the first 256 bytes of config space
 * (little-endian, as the device presents it). Walks the capability list
 * (status bit 4, pointer at 0x34) with a bound on the number of steps.
 * No MSI-X capability: out->present = false, returns 0. A capability whose
 * BIR is 6 or 7 (reserved) is -EINVAL. */
int br_msix_parse_config(const uint8_t cfg[256], struct br_msix_layout *out);

/* Read config space through region 7 of d and parse it (above). */
int br_msix_read(struct hv_device *d, struct br_msix_layout *out);

/* The mmappable areas of BAR `bar` (bar_size bytes) that leave out the
 * MSI-X table and PBA of `l` (each rounded outwards to `page`, which must be
 * a power of two) when they lie in this BAR, intersected with `allowed`
 * (the kernel's own sparse areas; n_allowed 0 = the whole BAR). Every area
 * returned starts on a page boundary and is a whole number of pages (the
 * tail of a BAR that is not page-sized is left out; a BAR smaller than a
 * page has no area at all). Areas are sorted and disjoint. Returns the
 * number written to out, -ENOSPC if more than max would be needed, or
 * -EINVAL for a bad page size. Pure function. */
int br_msix_sparse_areas(const struct br_msix_layout *l, uint32_t bar, uint64_t bar_size,
                         uint64_t page, const struct vu_sparse_mmap_area *allowed,
                         uint32_t n_allowed, struct vu_sparse_mmap_area *out, uint32_t max);

#endif /* BR_MSIX_H */
