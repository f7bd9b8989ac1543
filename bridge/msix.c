/* SPDX-License-Identifier: MIT */
#include "msix.h"

#include <errno.h>
#include <string.h>

#define PCI_STATUS          0x06u
#define PCI_STATUS_CAP_LIST 0x10u
#define PCI_CAP_PTR         0x34u
#define PCI_MAX_CAPS        48u    /* (256 - 64) / 4 */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int br_msix_parse_config(const uint8_t cfg[256], struct br_msix_layout *out)
{
    memset(out, 0, sizeof(*out));
    if (!(rd16(cfg + PCI_STATUS) & PCI_STATUS_CAP_LIST))
        return 0;
    unsigned pos = cfg[PCI_CAP_PTR] & 0xfcu;
    for (unsigned steps = 0; pos >= 0x40 && pos <= 256 - 12 && steps < PCI_MAX_CAPS; steps++) {
        if (cfg[pos] == BR_PCI_CAP_ID_MSIX) {
            uint16_t ctl = rd16(cfg + pos + 2);
            uint32_t table = rd32(cfg + pos + 4);
            uint32_t pba = rd32(cfg + pos + 8);
            out->table_size = (ctl & 0x7ffu) + 1u;
            out->table_bir = table & 7u;
            out->table_offset = table & ~7u;
            out->pba_bir = pba & 7u;
            out->pba_offset = pba & ~7u;
            if (out->table_bir > 5 || out->pba_bir > 5) {
                memset(out, 0, sizeof(*out));
                return -EINVAL;
            }
            out->present = true;
            return 0;
        }
        pos = cfg[pos + 1] & 0xfcu;
    }
    return 0;
}

int br_msix_read(struct hv_device *d, struct br_msix_layout *out)
{
    uint8_t cfg[256];
    memset(out, 0, sizeof(*out));
    ssize_t n = hv_region_read(d, VU_PCI_CONFIG_REGION_INDEX, 0, cfg, sizeof(cfg));
    if (n < 0)
        return (int)n;
    if ((size_t)n != sizeof(cfg))
        return -EIO;
    return br_msix_parse_config(cfg, out);
}

struct span {
    uint64_t start, end; /* [start, end) */
};

static void add_hole(struct span *h, unsigned *nh, uint64_t off, uint64_t len, uint64_t page,
                     uint64_t bar_size)
{
    if (len == 0 || off >= bar_size)
        return;
    uint64_t end = off + len;            /* off < 2^32 + len small: no wrap */
    uint64_t s = off & ~(page - 1);
    uint64_t e = end > UINT64_MAX - (page - 1) ? UINT64_MAX : (end + page - 1) & ~(page - 1);
    h[(*nh)++] = (struct span){ s, e };
}

int br_msix_sparse_areas(const struct br_msix_layout *l, uint32_t bar, uint64_t bar_size,
                         uint64_t page, const struct vu_sparse_mmap_area *allowed,
                         uint32_t n_allowed, struct vu_sparse_mmap_area *out, uint32_t max)
{
    if (page == 0 || (page & (page - 1)))
        return -EINVAL;

    struct span holes[2];
    unsigned nh = 0;
    if (l && l->present) {
        if (l->table_bir == bar)
            add_hole(holes, &nh, l->table_offset, br_msix_table_bytes(l), page, bar_size);
        if (l->pba_bir == bar)
            add_hole(holes, &nh, l->pba_offset, br_msix_pba_bytes(l), page, bar_size);
    }
    if (nh == 2 && holes[1].start < holes[0].start) {
        struct span t = holes[0];
        holes[0] = holes[1];
        holes[1] = t;
    }

    const struct vu_sparse_mmap_area whole = { 0, bar_size };
    if (n_allowed == 0) {
        allowed = &whole;
        n_allowed = 1;
    }

    uint32_t n = 0;
    uint64_t bar_end = bar_size & ~(page - 1);   /* a partial last page is not mappable */
    for (uint32_t i = 0; i < n_allowed; i++) {
        uint64_t s = allowed[i].offset, len = allowed[i].size;
        if (s >= bar_end || len == 0)
            continue;
        uint64_t e = len > bar_end - s ? bar_end : s + len;
        s = (s + page - 1) & ~(page - 1);        /* s < bar_end <= 2^64 - page */
        e &= ~(page - 1);
        uint64_t cur = s;
        for (unsigned k = 0; k <= nh && cur < e; k++) {
            uint64_t piece_end = k < nh ? holes[k].start : e;
            if (piece_end > e)
                piece_end = e;
            if (piece_end > cur) {
                if (n == max)
                    return -ENOSPC;
                out[n++] = (struct vu_sparse_mmap_area){ cur, piece_end - cur };
            }
            if (k < nh && holes[k].end > cur)
                cur = holes[k].end;
        }
    }

    /* sort by offset (few areas: insertion sort) */
    for (uint32_t i = 1; i < n; i++) {
        struct vu_sparse_mmap_area a = out[i];
        uint32_t j = i;
        while (j > 0 && out[j - 1].offset > a.offset) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = a;
    }
    return (int)n;
}
