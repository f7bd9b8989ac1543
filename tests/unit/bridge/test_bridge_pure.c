/* SPDX-License-Identifier: MIT */
/* Pure parts of the bridge: MSI-X holes, region cap chain rebuild, CLI. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"
#include "config.h"
#include "log.h"
#include "device.h"
#include "list.h"
#include "msix.h"

#define PG 4096u

static struct br_msix_layout layout(uint32_t tbir, uint64_t toff, uint32_t n, uint32_t pbir,
                                    uint64_t poff)
{
    return (struct br_msix_layout){
        .present = true, .table_bir = tbir, .table_offset = toff, .table_size = n,
        .pba_bir = pbir, .pba_offset = poff,
    };
}

static void expect_areas(const struct vu_sparse_mmap_area *got, int n,
                         const struct vu_sparse_mmap_area *want, int nwant)
{
    assert_int_equal(n, nwant);
    for (int i = 0; i < n; i++) {
        assert_int_equal(got[i].offset, want[i].offset);
        assert_int_equal(got[i].size, want[i].size);
    }
}

/* ---- the MSI-X capability in config space -------------------------------------- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void test_parse_config_walks_list(void **state)
{
    uint8_t cfg[256] = { 0 };
    put16(cfg + 0x06, 0x0010);           /* capability list */
    cfg[0x34] = 0x40;
    cfg[0x40] = 0x01; cfg[0x41] = 0x50;  /* PM -> 0x50 */
    cfg[0x50] = 0x05; cfg[0x51] = 0x70;  /* MSI -> 0x70 */
    cfg[0x70] = BR_PCI_CAP_ID_MSIX; cfg[0x71] = 0x00;
    put16(cfg + 0x72, 64);               /* 65 entries */
    put32(cfg + 0x74, 0x2000 | 2);       /* table in BAR2 @0x2000 */
    put32(cfg + 0x78, 0x3000 | 4);       /* PBA in BAR4 @0x3000 */
    struct br_msix_layout l;
    assert_int_equal(br_msix_parse_config(cfg, &l), 0);
    assert_true(l.present);
    assert_int_equal(l.table_size, 65);
    assert_int_equal(l.table_bir, 2);
    assert_int_equal(l.table_offset, 0x2000);
    assert_int_equal(l.pba_bir, 4);
    assert_int_equal(l.pba_offset, 0x3000);
}

static void test_parse_config_absent_and_bad(void **state)
{
    uint8_t cfg[256] = { 0 };
    struct br_msix_layout l;
    /* no capability list bit */
    cfg[0x34] = 0x40;
    cfg[0x40] = BR_PCI_CAP_ID_MSIX;
    assert_int_equal(br_msix_parse_config(cfg, &l), 0);
    assert_false(l.present);
    /* a loop in the list terminates */
    put16(cfg + 0x06, 0x0010);
    cfg[0x40] = 0x01; cfg[0x41] = 0x40;
    assert_int_equal(br_msix_parse_config(cfg, &l), 0);
    assert_false(l.present);
    /* reserved BIR 7 */
    cfg[0x40] = BR_PCI_CAP_ID_MSIX; cfg[0x41] = 0;
    put32(cfg + 0x44, 0x2000 | 7);
    assert_int_equal(br_msix_parse_config(cfg, &l), -EINVAL);
    assert_false(l.present);
}

/* ---- sparse areas around the table and PBA ---------------------------------------- */

static void test_holes_page_aligned(void **state)
{
    /* nvme-like: 16 KiB BAR2, table (65 x 16 = 1040 B) at 0x2000, PBA at 0x3000 */
    struct br_msix_layout l = layout(2, 0x2000, 65, 2, 0x3000);
    struct vu_sparse_mmap_area a[8];
    int n = br_msix_sparse_areas(&l, 2, 0x4000, PG, NULL, 0, a, 8);
    const struct vu_sparse_mmap_area want[] = { { 0, 0x2000 } };
    expect_areas(a, n, want, 1);
}

static void test_holes_table_not_page_aligned(void **state)
{
    /* 64 KiB BAR0; 16 entries (256 B) at 0x2800 -> hole 0x2000..0x3000;
     * PBA at 0x9f00 (8 B) -> hole 0x9000..0xa000 */
    struct br_msix_layout l = layout(0, 0x2800, 16, 0, 0x9f00);
    struct vu_sparse_mmap_area a[8];
    int n = br_msix_sparse_areas(&l, 0, 0x10000, PG, NULL, 0, a, 8);
    const struct vu_sparse_mmap_area want[] = {
        { 0, 0x2000 }, { 0x3000, 0x6000 }, { 0xa000, 0x6000 },
    };
    expect_areas(a, n, want, 3);
}

static void test_holes_table_straddles_pages(void **state)
{
    /* 2 entries at 0x0ff0 span 0x0ff0..0x1010: both pages are out */
    struct br_msix_layout l = layout(1, 0x0ff0, 2, 3, 0);
    struct vu_sparse_mmap_area a[8];
    int n = br_msix_sparse_areas(&l, 1, 0x8000, PG, NULL, 0, a, 8);
    const struct vu_sparse_mmap_area want[] = { { 0x2000, 0x6000 } };
    expect_areas(a, n, want, 1);
}

static void test_holes_bar_smaller_than_page(void **state)
{
    struct br_msix_layout l = layout(2, 0x100, 4, 2, 0x200);
    struct vu_sparse_mmap_area a[8];
    assert_int_equal(br_msix_sparse_areas(&l, 2, 0x800, PG, NULL, 0, a, 8), 0);
    /* even with nothing of MSI-X in it, a sub-page BAR has no area */
    assert_int_equal(br_msix_sparse_areas(&l, 3, 0x800, PG, NULL, 0, a, 8), 0);
}

static void test_holes_partial_last_page_and_other_bar(void **state)
{
    struct br_msix_layout l = layout(2, 0, 8, 2, 0x800);
    struct vu_sparse_mmap_area a[8];
    /* table and PBA share page 0; BAR of 0x2800: page 1 remains, tail cut */
    int n = br_msix_sparse_areas(&l, 2, 0x2800, PG, NULL, 0, a, 8);
    const struct vu_sparse_mmap_area want[] = { { 0x1000, 0x1000 } };
    expect_areas(a, n, want, 1);
    /* a BAR without the table or PBA: whole (page-rounded down) */
    n = br_msix_sparse_areas(&l, 0, 0x2800, PG, NULL, 0, a, 8);
    const struct vu_sparse_mmap_area want0[] = { { 0, 0x2000 } };
    expect_areas(a, n, want0, 1);
}

static void test_holes_intersect_kernel_areas(void **state)
{
    /* the kernel already offers two areas; our holes cut the second one */
    struct br_msix_layout l = layout(0, 0x5000, 32, 0, 0x5200);
    const struct vu_sparse_mmap_area kern[] = { { 0x4000, 0x4000 }, { 0, 0x2000 } };
    struct vu_sparse_mmap_area a[8];
    int n = br_msix_sparse_areas(&l, 0, 0x8000, PG, kern, 2, a, 8);
    const struct vu_sparse_mmap_area want[] = { { 0, 0x2000 }, { 0x4000, 0x1000 },
                                                { 0x6000, 0x2000 } };
    expect_areas(a, n, want, 3);
}

static void test_holes_limits(void **state)
{
    struct br_msix_layout l = layout(0, 0x2800, 16, 0, 0x9f00);
    struct vu_sparse_mmap_area a[8];
    assert_int_equal(br_msix_sparse_areas(&l, 0, 0x10000, PG, NULL, 0, a, 2), -ENOSPC);
    assert_int_equal(br_msix_sparse_areas(&l, 0, 0x10000, 3000, NULL, 0, a, 8), -EINVAL);
    /* 64 KiB pages: the 64 KiB BAR is entirely a hole */
    assert_int_equal(br_msix_sparse_areas(&l, 0, 0x10000, 0x10000, NULL, 0, a, 8), 0);
}

/* ---- region info chain rebuild --------------------------------------------------- */

/* A kernel region info with caps: MSIX_MAPPABLE @32, an unknown cap @40
 * (id 9, 24 bytes), TYPE @64. */
static void kernel_info(struct hv_region_info *ri)
{
    memset(ri, 0, sizeof(*ri));
    ri->index = 2;
    ri->flags = VU_REGION_INFO_FLAG_READ | VU_REGION_INFO_FLAG_WRITE | VU_REGION_INFO_FLAG_MMAP |
                VU_REGION_INFO_FLAG_CAPS;
    ri->size = 0x4000;
    ri->offset = 2ull << 40;
    ri->cap_offset = 32;
    struct vu_cap_header h1 = { VU_REGION_INFO_CAP_MSIX_MAPPABLE, 1, 40 };
    struct vu_cap_header h2 = { 9, 1, 64 };
    struct vu_region_cap_type t = { { VU_REGION_INFO_CAP_TYPE, 1, 0 }, 0x8086, 3 };
    memcpy(ri->caps + 0, &h1, sizeof(h1));
    memcpy(ri->caps + 8, &h2, sizeof(h2));
    memcpy(ri->caps + 32, &t, sizeof(t));
    ri->caps_len = 48;
}

static void test_rebuild_keeps_known_caps(void **state)
{
    struct hv_region_info *ri = malloc(sizeof(*ri));
    kernel_info(ri);
    uint8_t out[512];
    ssize_t n = br_region_info_rebuild(ri, false, NULL, 0, out, sizeof(out));
    assert_int_equal(n, 32 + 8 + 16 + 32);   /* + a sparse cap: one area, the whole BAR */
    struct vu_region_info h;
    memcpy(&h, out, sizeof(h));
    assert_int_equal(h.argsz, n);
    assert_int_equal(h.cap_offset, 32);
    assert_int_equal(h.flags, VU_REGION_INFO_FLAG_READ | VU_REGION_INFO_FLAG_WRITE |
                              VU_REGION_INFO_FLAG_MMAP | VU_REGION_INFO_FLAG_CAPS);
    assert_int_equal(h.offset, 2ull << 40);
    struct vu_region_caps caps;
    assert_int_equal(vu_region_caps_parse(out, (size_t)n, &caps, NULL), 0);
    assert_true(caps.msix_mappable);
    assert_true(caps.has_type);
    assert_int_equal(caps.type, 0x8086);
    assert_int_equal(caps.subtype, 3);
    assert_int_equal(caps.nr_caps, 3);   /* the unknown one is gone */
    /* the kernel gave no sparse areas: the whole region is the one area, so
     * that the reply is never complete at argsz 32 (libvfio-user's client) */
    assert_true(caps.has_sparse);
    assert_int_equal(caps.nr_areas, 1);
    assert_int_equal(caps.areas[0].offset, 0);
    assert_int_equal(caps.areas[0].size, 0x4000);
    free(ri);
}

static void test_rebuild_no_mmap_and_sparse(void **state)
{
    struct hv_region_info *ri = malloc(sizeof(*ri));
    kernel_info(ri);
    uint8_t out[512];
    struct vu_region_info h;
    struct vu_region_caps caps;

    ssize_t n = br_region_info_rebuild(ri, true, NULL, 0, out, sizeof(out));
    assert_int_equal(n, 32 + 16);                        /* only TYPE left */
    memcpy(&h, out, sizeof(h));
    assert_false(h.flags & VU_REGION_INFO_FLAG_MMAP);
    assert_int_equal(vu_region_caps_parse(out, (size_t)n, &caps, NULL), 0);
    assert_false(caps.msix_mappable);
    assert_true(caps.has_type);

    const struct vu_sparse_mmap_area areas[] = { { 0, 0x2000 } };
    n = br_region_info_rebuild(ri, false, areas, 1, out, sizeof(out));
    assert_int_equal(n, 32 + 16 + 16 + 16);             /* sparse(1 area) + TYPE */
    assert_int_equal(vu_region_caps_parse(out, (size_t)n, &caps, NULL), 0);
    assert_true(caps.has_sparse);
    assert_int_equal(caps.nr_areas, 1);
    assert_int_equal(caps.areas[0].size, 0x2000);
    assert_false(caps.msix_mappable);                    /* replaced */
    memcpy(&h, out, sizeof(h));
    assert_true(h.flags & VU_REGION_INFO_FLAG_MMAP);

    /* no area at all: MMAP cleared */
    n = br_region_info_rebuild(ri, false, areas, 0, out, sizeof(out));
    memcpy(&h, out, sizeof(h));
    assert_false(h.flags & VU_REGION_INFO_FLAG_MMAP);
    assert_int_equal(vu_region_caps_parse(out, (size_t)n, &caps, NULL), 0);
    assert_false(caps.has_sparse);

    /* too small an output */
    assert_int_equal(br_region_info_rebuild(ri, false, NULL, 0, out, 40), -ENOSPC);
    free(ri);
}

static void test_rebuild_rejects_bad_chains(void **state)
{
    struct hv_region_info *ri = malloc(sizeof(*ri));
    uint8_t out[512];
    kernel_info(ri);
    struct vu_cap_header loop = { VU_REGION_INFO_CAP_MSIX_MAPPABLE, 1, 32 };
    memcpy(ri->caps, &loop, sizeof(loop));               /* next points at itself */
    assert_int_equal(br_region_info_rebuild(ri, false, NULL, 0, out, sizeof(out)), -EINVAL);

    kernel_info(ri);
    ri->cap_offset = 60;                                 /* header past the end */
    ri->caps_len = 30;
    assert_int_equal(br_region_info_rebuild(ri, false, NULL, 0, out, sizeof(out)), -EINVAL);

    kernel_info(ri);                                     /* sparse with too many areas */
    struct vu_region_cap_sparse_mmap sp = { { VU_REGION_INFO_CAP_SPARSE_MMAP, 1, 0 }, 1000, 0 };
    memcpy(ri->caps, &sp, sizeof(sp));
    assert_int_equal(br_region_info_rebuild(ri, false, NULL, 0, out, sizeof(out)), -EINVAL);

    /* no CAPS flag: a cap_offset is ignored (only the whole-region area) */
    kernel_info(ri);
    ri->flags &= ~VU_REGION_INFO_FLAG_CAPS;
    assert_int_equal(br_region_info_rebuild(ri, false, NULL, 0, out, sizeof(out)), 32 + 32);
    /* ...and not mappable: no cap at all */
    ri->flags &= ~VU_REGION_INFO_FLAG_MMAP;
    assert_int_equal(br_region_info_rebuild(ri, false, NULL, 0, out, sizeof(out)), 32);
    free(ri);
}

/* ---- log rate limit ---------------------------------------------------------------- */

#define MS 1000000ull

static void test_ratelimit(void **state)
{
    (void)state;
    struct br_ratelimit rl;
    br_ratelimit_init(&rl, 3, 1000);
    unsigned sum = 99;
    uint64_t t = 5000 * MS;
    assert_int_equal(br_ratelimit_due_ns(&rl, t), -1);
    /* a burst: 3 lines, then counted */
    for (int i = 0; i < 3; i++) {
        assert_true(br_ratelimit_allow(&rl, t + (uint64_t)i * MS, &sum));
        assert_int_equal(sum, 0);
    }
    for (int i = 0; i < 7; i++)
        assert_false(br_ratelimit_allow(&rl, t + 10 * MS, &sum));
    assert_int_equal(sum, 0);
    /* the summary is due when the interval ends, not before */
    assert_int_equal(br_ratelimit_due_ns(&rl, t + 400 * MS), 600 * MS);
    assert_int_equal(br_ratelimit_flush(&rl, t + 999 * MS), 0);
    assert_int_equal(br_ratelimit_due_ns(&rl, t + 1000 * MS), 0);
    assert_int_equal(br_ratelimit_flush(&rl, t + 1000 * MS), 7);
    assert_int_equal(br_ratelimit_flush(&rl, t + 1001 * MS), 0);    /* once */
    assert_int_equal(br_ratelimit_due_ns(&rl, t + 1001 * MS), -1);
    /* a new interval: lines again; a later event hands the summary back */
    assert_true(br_ratelimit_allow(&rl, t + 1001 * MS, &sum));
    assert_int_equal(sum, 0);
    assert_true(br_ratelimit_allow(&rl, t + 1002 * MS, &sum));
    assert_true(br_ratelimit_allow(&rl, t + 1003 * MS, &sum));
    assert_false(br_ratelimit_allow(&rl, t + 1004 * MS, &sum));
    assert_false(br_ratelimit_allow(&rl, t + 1005 * MS, &sum));
    assert_true(br_ratelimit_allow(&rl, t + 2100 * MS, &sum));
    assert_int_equal(sum, 2);
    /* a flood of 10000 in one interval still logs 3 */
    unsigned logged = 0;
    for (int i = 0; i < 10000; i++)
        logged += br_ratelimit_allow(&rl, t + 5000 * MS, NULL);
    assert_int_equal(logged, 3);
    assert_int_equal(br_ratelimit_flush(&rl, t + 6000 * MS), 9997);
}

/* ---- command line ------------------------------------------------------------------ */

#define PARSE(cli, a) parse(cli, (int)(sizeof(a) / sizeof(a[0])), a)

static int parse(struct br_cli *cli, int argc, const char **argv)
{
    FILE *devnull = fopen("/dev/null", "w");
    int r = br_cli_parse(argc, (char **)argv, cli, devnull, devnull);
    fclose(devnull);
    return r;
}

static void test_cli(void **state)
{
    struct br_cli *cli = malloc(sizeof(*cli));
    const char *a1[] = { "vfio-user-bridge", "--device", "01:00.0", "--socket", "/run/x.sock",
                         "--no-mmap", "--max-dma-maps", "100", "--max-dma-bytes", "2G",
                         "--max-xfer", "16M", "--log-level", "debug", "--socket-mode", "660",
                         "--allow-uid", "1000", "--sparse-msix" };
    assert_int_equal(PARSE(cli, a1), 0);
    assert_int_equal(cli->action, BR_ACT_SERVE);
    assert_string_equal(cli->cfg.device, "0000:01:00.0");
    assert_string_equal(cli->cfg.socket_path, "/run/x.sock");
    assert_true(cli->cfg.no_mmap);
    assert_int_equal(cli->cfg.msix_mmap, BR_MSIX_MMAP_SPARSE);
    assert_int_equal(cli->cfg.region_fds, BR_REGION_FDS_UNSET);
    assert_int_equal(cli->cfg.max_dma_maps, 100);
    assert_int_equal(cli->cfg.max_dma_bytes, 2ull << 30);
    assert_int_equal(cli->cfg.max_data_xfer, 16u << 20);
    assert_int_equal(cli->cfg.log_level, BR_LOG_DEBUG);
    assert_int_equal(cli->cfg.socket_mode, 0660);
    assert_int_equal(cli->cfg.n_allow_uids, 1);
    assert_int_equal(cli->cfg.allow_uids[0], 1000);

    const char *a2[] = { "vfio-user-bridge", "--sim=nvme-like", "-s", "/tmp/s" };
    assert_int_equal(PARSE(cli, a2), 0);
    assert_int_equal(cli->cfg.sim, BR_SIM_NVME_LIKE);
    assert_null(cli->cfg.device);
    assert_int_equal(cli->cfg.msix_mmap, BR_MSIX_MMAP_UNSET);   /* sparse unless chosen */
    const char *a3[] = { "vfio-user-bridge", "--sim", "-s", "/tmp/s", "--msix-mmap=kernel",
                         "--region-fds=per-area" };
    assert_int_equal(PARSE(cli, a3), 0);
    assert_int_equal(cli->cfg.sim, BR_SIM_EDU);
    assert_int_equal(cli->cfg.msix_mmap, BR_MSIX_MMAP_KERNEL);
    assert_int_equal(cli->cfg.region_fds, BR_REGION_FDS_PER_AREA);
    const char *a4[] = { "vfio-user-bridge", "--sim", "-s", "/tmp/s", "--msix-mmap", "sparse",
                         "--region-fds", "one" };
    assert_int_equal(PARSE(cli, a4), 0);
    assert_int_equal(cli->cfg.msix_mmap, BR_MSIX_MMAP_SPARSE);
    assert_int_equal(cli->cfg.region_fds, BR_REGION_FDS_ONE);
    assert_int_equal(cli->cfg.poll_us, 0);   /* busy polling is off by default */
    const char *p1[] = { "vfio-user-bridge", "--sim", "-s", "/tmp/s", "--poll-us", "50" };
    assert_int_equal(PARSE(cli, p1), 0);
    assert_int_equal(cli->cfg.poll_us, 50);
    const char *p2[] = { "vfio-user-bridge", "--sim", "-s", "/tmp/s", "--poll-us", "1000001" };
    assert_int_equal(PARSE(cli, p2), -EINVAL);
    const char *p3[] = { "vfio-user-bridge", "--sim", "-s", "/tmp/s", "--poll-us", "-1" };
    assert_int_equal(PARSE(cli, p3), -EINVAL);
    const char *badm1[] = { "vfio-user-bridge", "--sim", "-s", "/tmp/s", "--msix-mmap=whole" };
    assert_int_equal(PARSE(cli, badm1), -EINVAL);
    const char *badm2[] = { "vfio-user-bridge", "--sim", "-s", "/tmp/s", "--region-fds=2" };
    assert_int_equal(PARSE(cli, badm2), -EINVAL);
    /* defaults: a handshake deadline and a pinned-memory cap of half the RAM */
    assert_int_equal(cli->cfg.handshake_timeout_ms, 10000);
    assert_false(cli->cfg.handshake_timeout_set);
    uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    assert_int_equal(cli->cfg.max_dma_bytes, ram / 2);
    assert_int_equal(br_default_max_dma_bytes(), ram / 2);
    assert_false(cli->cfg.max_dma_bytes_set);
    const char *a5[] = { "vfio-user-bridge", "--sim", "-s", "/tmp/s", "--handshake-timeout",
                         "250", "--max-dma-bytes", "1T" };
    assert_int_equal(PARSE(cli, a5), 0);
    assert_int_equal(cli->cfg.handshake_timeout_ms, 250);
    assert_true(cli->cfg.handshake_timeout_set);
    assert_int_equal(cli->cfg.max_dma_bytes, 1024ull << 30);
    assert_true(cli->cfg.max_dma_bytes_set);
    const char *bad_hs[] = { "vfio-user-bridge", "--sim", "-s", "/tmp/s",
                             "--handshake-timeout", "0" };
    assert_int_equal(PARSE(cli, bad_hs), -EINVAL);
    assert_int_equal(cli->cfg.iommu, BR_IOMMU_AUTO);
    const char *io_a4[] = { "vfio-user-bridge", "-d", "01:00.0", "-s", "/tmp/s", "--iommu", "type1" };
    assert_int_equal(PARSE(cli, io_a4), 0);
    assert_int_equal(cli->cfg.iommu, BR_IOMMU_TYPE1);
    const char *io_a5[] = { "vfio-user-bridge", "-d", "01:00.0", "-s", "/tmp/s", "--iommu", "iommufd" };
    assert_int_equal(PARSE(cli, io_a5), 0);   /* refused when the device is opened */
    assert_int_equal(cli->cfg.iommu, BR_IOMMU_IOMMUFD);
    const char *iofd_sim[] = { "vfio-user-bridge", "--sim", "-s", "/tmp/s", "--iommu", "iommufd" };
    assert_int_equal(PARSE(cli, iofd_sim), -EINVAL);
    const char *io_bad[] = { "vfio-user-bridge", "-d", "01:00.0", "-s", "/tmp/s", "--iommu", "x" };
    assert_int_equal(PARSE(cli, io_bad), -EINVAL);

    const char *bad1[] = { "vfio-user-bridge", "--socket", "/tmp/s" };          /* no device */
    assert_int_equal(PARSE(cli, bad1), -EINVAL);
    const char *bad2[] = { "vfio-user-bridge", "--device", "1:0.0", "-s", "/tmp/s" };
    assert_int_equal(PARSE(cli, bad2), -EINVAL);
    const char *bad3[] = { "vfio-user-bridge", "--sim", "-s", "/tmp/s", "--max-msg-fds", "17" };
    assert_int_equal(PARSE(cli, bad3), -EINVAL);
    const char *bad4[] = { "vfio-user-bridge", "--sim", "-s", "/tmp/s", "--max-xfer", "128M" };
    assert_int_equal(PARSE(cli, bad4), -EINVAL);
    const char *bad5[] = { "vfio-user-bridge", "--sim=gpu", "-s", "/tmp/s" };
    assert_int_equal(PARSE(cli, bad5), -EINVAL);
    const char *bad6[] = { "vfio-user-bridge", "--sim", "-s" };
    assert_int_equal(PARSE(cli, bad6), -EINVAL);

    const char *l1[] = { "vfio-user-bridge", "list", "--json" };
    assert_int_equal(PARSE(cli, l1), 0);
    assert_int_equal(cli->action, BR_ACT_LIST);
    assert_true(cli->list_json);
    const char *h[] = { "vfio-user-bridge", "--help" };
    assert_int_equal(PARSE(cli, h), 0);
    assert_int_equal(cli->action, BR_ACT_HELP);
    free(cli);
}

static void test_parse_size(void **state)
{
    uint64_t v;
    assert_int_equal(br_parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(br_parse_size("64K", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(br_parse_size("16MiB", &v), 0);
    assert_int_equal(v, 16u << 20);
    assert_int_equal(br_parse_size("3g", &v), 0);
    assert_int_equal(v, 3ull << 30);
    assert_int_equal(br_parse_size("", &v), -EINVAL);
    assert_int_equal(br_parse_size("-1", &v), -EINVAL);
    assert_int_equal(br_parse_size("12X", &v), -EINVAL);
    assert_int_equal(br_parse_size("99999999999999G", &v), -ERANGE);
}

/* Several --device, each with its --socket after it: one group daemon. */
static void test_cli_group(void **state)
{
    (void)state;
    struct br_cli *cli = malloc(sizeof(*cli));
    const char *a1[] = { "vfio-user-bridge", "--device", "01:01.0", "--socket", "/run/a",
                         "--device", "0000:01:02.0", "-s", "/run/b", "--group-clients",
                         "same-uid" };
    assert_int_equal(PARSE(cli, a1), 0);
    assert_int_equal(cli->cfg.n_functions, 2);
    assert_string_equal(cli->cfg.device, "0000:01:01.0");
    assert_string_equal(cli->cfg.socket_path, "/run/a");
    assert_string_equal(cli->cfg.functions[0].device, "0000:01:01.0");
    assert_string_equal(cli->cfg.functions[0].socket_path, "/run/a");
    assert_string_equal(cli->cfg.functions[1].device, "0000:01:02.0");
    assert_string_equal(cli->cfg.functions[1].socket_path, "/run/b");
    assert_int_equal(cli->cfg.group_clients, BR_GROUP_CLIENTS_SAME_UID);
    assert_true(cli->cfg.group_clients_set);   /* it wins over the policy's */
    /* one function: the socket may come first, as always */
    const char *a2[] = { "vfio-user-bridge", "-s", "/run/a", "-d", "01:01.0" };
    assert_int_equal(PARSE(cli, a2), 0);
    assert_int_equal(cli->cfg.n_functions, 1);
    assert_int_equal(cli->cfg.group_clients, BR_GROUP_CLIENTS_SAME_VM);
    assert_false(cli->cfg.group_clients_set);
    const char *bad1[] = { "vfio-user-bridge", "-d", "01:01.0", "-s", "/run/a", "-d", "01:02.0" };
    const char *bad2[] = { "vfio-user-bridge", "-s", "/run/a", "-d", "01:01.0", "-d", "01:02.0",
                           "-s", "/run/b" };
    const char *bad3[] = { "vfio-user-bridge", "-d", "01:01.0", "-s", "/run/a", "-d", "01:02.0",
                           "-s", "/run/a" };
    const char *bad4[] = { "vfio-user-bridge", "-d", "01:01.0", "-s", "/run/a", "-d", "01:01.0",
                           "-s", "/run/b" };
    const char *bad5[] = { "vfio-user-bridge", "-d", "01:01.0", "-s", "/run/a", "-d", "01:02.0",
                           "-s", "/run/b", "-s", "/run/c" };
    const char *bad6[] = { "vfio-user-bridge", "-d", "01:01.0", "-s", "/run/a",
                           "--group-clients", "anyone" };
    const char *bad7[] = { "vfio-user-bridge", "-d", "01:01.0", "-s", "/run/a", "-d", "01:02.0",
                           "-s", "/run/b", "--policy", "/etc/p.json" };
    assert_int_equal(PARSE(cli, bad1), -EINVAL);   /* no socket for the second */
    assert_int_equal(PARSE(cli, bad2), -EINVAL);   /* a socket before the first device */
    assert_int_equal(PARSE(cli, bad3), -EINVAL);   /* one socket twice */
    assert_int_equal(PARSE(cli, bad4), -EINVAL);   /* one device twice */
    assert_int_equal(PARSE(cli, bad5), -EINVAL);   /* two sockets for one */
    assert_int_equal(PARSE(cli, bad6), -EINVAL);
    assert_int_equal(PARSE(cli, bad7), -EINVAL);
    free(cli);
}

static struct hv_list_entry entry(const char *addr, const char *drv, int group, bool ok,
                                  const char *why)
{
    struct hv_list_entry e;
    memset(&e, 0, sizeof(e));
    snprintf(e.addr, sizeof(e.addr), "%s", addr);
    snprintf(e.driver, sizeof(e.driver), "%s", drv);
    e.group = group;
    e.exportable = ok;
    snprintf(e.why, sizeof(e.why), "%s", why);
    return e;
}

/* `list`: each group with its members, what one daemon can export, and
 * why a group cannot be. */
static void test_list_groups(void **state)
{
    (void)state;
    struct hv_list_entry e[] = {
        entry("0000:00:03.0", "", 3, false, "0000:00:03.0 is bound to no driver"),
        entry("0000:00:1f.0", "lpc_ich", 4, false, "bound to lpc_ich"),
        entry("0000:00:1f.2", "vfio-pci", 4, false, "group 4 is not viable: 0000:00:1f.0 is "
                                                   "bound to lpc_ich"),
        entry("0000:01:01.0", "vfio-pci", 3, true, ""),
        entry("0000:01:02.0", "vfio-pci", 3, true, ""),
        entry("0000:02:00.0", "e1000e", 5, false, "bound to e1000e, not vfio-pci"),
    };
    struct br_list_group g[8];
    assert_int_equal(br_list_groups(e, 6, g, 8), 3);
    assert_int_equal(g[0].number, 3);
    assert_int_equal(g[0].n, 3);
    assert_int_equal(g[0].n_export, 2);
    assert_int_equal(g[1].number, 4);
    assert_int_equal(g[1].n_export, 0);
    assert_string_equal(g[1].why, "group 4 is not viable: 0000:00:1f.0 is bound to lpc_ich");
    assert_string_equal(g[2].why, "no member is bound to vfio-pci");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_int_equal(br_list_print(f, e, 6, false), 0);
    fclose(f);
    assert_non_null(strstr(buf, "group 3: 0000:00:03.0 (no driver) 0000:01:01.0 (vfio-pci) "
                                "0000:01:02.0 (vfio-pci)\n    exportable: vfio-user-bridge "
                                "--device 0000:01:01.0 --socket PATH --device 0000:01:02.0 "
                                "--socket PATH\n"));
    assert_non_null(strstr(buf, "group 4: 0000:00:1f.0 (lpc_ich) 0000:00:1f.2 (vfio-pci)\n"
                                "    not exportable: group 4 is not viable"));
    free(buf);
    f = open_memstream(&buf, &len);
    assert_int_equal(br_list_print(f, e, 6, true), 0);
    fclose(f);
    assert_non_null(strstr(buf, "\"functions\":[\n") || strstr(buf, "\"functions\": ["));
    assert_non_null(strstr(buf, "\"0000:01:02.0\""));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_config_walks_list),
        cmocka_unit_test(test_parse_config_absent_and_bad),
        cmocka_unit_test(test_holes_page_aligned),
        cmocka_unit_test(test_holes_table_not_page_aligned),
        cmocka_unit_test(test_holes_table_straddles_pages),
        cmocka_unit_test(test_holes_bar_smaller_than_page),
        cmocka_unit_test(test_holes_partial_last_page_and_other_bar),
        cmocka_unit_test(test_holes_intersect_kernel_areas),
        cmocka_unit_test(test_holes_limits),
        cmocka_unit_test(test_rebuild_keeps_known_caps),
        cmocka_unit_test(test_rebuild_no_mmap_and_sparse),
        cmocka_unit_test(test_rebuild_rejects_bad_chains),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_cli_group),
        cmocka_unit_test(test_list_groups),
        cmocka_unit_test(test_ratelimit),
        cmocka_unit_test(test_parse_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
