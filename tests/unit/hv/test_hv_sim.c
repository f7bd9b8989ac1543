/* SPDX-License-Identifier: MIT */
/*
 * The simulated device against the kernel rules it claims to model: region
 * layout and bounds, BAR memory shared between pread and mmap, config space
 * registers, edu registers and DMA engine, SET_IRQS semantics, the type1 DMA
 * map table, and reset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/vfio.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "edu_regs.h"
#include "hv_sim.h"
#include "testutil.h"

#define MiB (1ull << 20)
#define PG 4096ull

static struct hv_device *open_sim(const struct hv_sim_config *cfg)
{
    struct hv_device *d = NULL;
    struct vub_err e = { "" };
    int r = hv_sim_open(cfg, &d, &e);
    if (r != 0)
        fail_msg("hv_sim_open: %d %s", r, e.msg);
    return d;
}

static struct hv_device *open_nvme_like(enum hv_sim_msix_cap cap)
{
    struct hv_sim_config c;
    hv_sim_config_defaults(&c);
    c.addr = "0000:00:04.0";
    c.bar0_size = 16 << 10;
    c.msix = cap;
    c.msix_bar = 0;
    c.msi_count = 0;
    return open_sim(&c);
}

/* Read an eventfd's count without blocking (0 if not signalled). */
static uint64_t efd_take(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t v = 0;
    if (poll(&p, 1, 0) == 1 && read(fd, &v, sizeof(v)) != sizeof(v))
        v = 0;
    return v;
}

static uint32_t rd32(struct hv_device *d, uint32_t idx, uint64_t off)
{
    uint32_t v = 0xdeadbeef;
    assert_int_equal(hv_region_read(d, idx, off, &v, 4), 4);
    return v;
}

static void wr32(struct hv_device *d, uint32_t idx, uint64_t off, uint32_t v)
{
    assert_int_equal(hv_region_write(d, idx, off, &v, 4), 4);
}

static void wr64(struct hv_device *d, uint32_t idx, uint64_t off, uint64_t v)
{
    assert_int_equal(hv_region_write(d, idx, off, &v, 8), 8);
}

static int set_efds(struct hv_device *d, uint32_t index, uint32_t start, uint32_t count,
                    const int32_t *fds)
{
    return hv_set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index,
                            start, count, fds);
}

static int irq_disable(struct hv_device *d, uint32_t index)
{
    return hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index, 0,
                            0, NULL);
}

/* ---- layout ------------------------------------------------------------------ */

static void test_device_and_regions(void **state)
{
    (void)state;
    struct hv_device *d = open_sim(NULL);
    struct hv_device_info di;
    struct hv_region_info ri;

    assert_string_equal(hv_device_kind(d), "sim");
    assert_string_equal(d->addr, "0000:00:00.0");
    assert_int_equal(d->group, -1);
    assert_int_equal(hv_get_info(d, &di), 0);
    assert_int_equal(di.num_regions, 9);
    assert_int_equal(di.num_irqs, 5);
    assert_int_equal(di.flags, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);

    assert_int_equal(hv_get_region_info(d, 0, &ri), 0);
    assert_int_equal(ri.size, MiB);
    assert_int_equal(ri.offset, 0);
    assert_int_equal(ri.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                                   VFIO_REGION_INFO_FLAG_MMAP);
    assert_int_equal(ri.caps_len, 0);
    assert_int_equal(ri.cap_offset, 0);
    for (uint32_t i = 1; i <= 6; i++) {   /* unused BARs and the ROM */
        assert_int_equal(hv_get_region_info(d, i, &ri), 0);
        assert_int_equal(ri.size, 0);
        assert_int_equal(ri.flags, 0);
        assert_int_equal(ri.offset, (uint64_t)i << 40);
    }
    assert_int_equal(hv_get_region_info(d, 7, &ri), 0);
    assert_int_equal(ri.size, 4096);
    assert_int_equal(ri.offset, 7ull << 40);
    assert_int_equal(ri.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE);
    assert_int_equal(hv_get_region_info(d, 8, &ri), -EINVAL);   /* VGA */
    assert_int_equal(hv_get_region_info(d, 9, &ri), -EINVAL);

    struct hv_irq_info ii;
    assert_int_equal(hv_get_irq_info(d, 0, &ii), 0);
    assert_int_equal(ii.count, 1);
    assert_int_equal(ii.flags, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
                                   VFIO_IRQ_INFO_AUTOMASKED);
    assert_int_equal(hv_get_irq_info(d, 1, &ii), 0);
    assert_int_equal(ii.count, 1);
    assert_int_equal(ii.flags, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
    assert_int_equal(hv_get_irq_info(d, 2, &ii), 0);
    assert_int_equal(ii.count, 0);   /* no MSI-X on the edu */
    assert_int_equal(hv_get_irq_info(d, 5, &ii), -EINVAL);

    struct hv_iommu_info io;
    assert_int_equal(hv_iommu_get_info(d, &io), 0);
    assert_int_equal(io.pgsizes, 0x40201000);
    assert_int_equal(io.nr_ranges, 2);
    assert_int_equal(io.ranges[0].end, 0xfedfffff);
    assert_int_equal(io.ranges[1].start, 0xfef00000);
    assert_true(io.has_dma_avail);
    assert_int_equal(io.dma_avail, 65535);
    hv_close(d);
}

static void test_msix_caps(void **state)
{
    (void)state;
    struct hv_region_info ri;
    struct hv_irq_info ii;
    struct hv_device *d = open_nvme_like(HV_SIM_MSIX_MAPPABLE_CAP);

    assert_int_equal(hv_get_region_info(d, 0, &ri), 0);
    assert_int_equal(ri.size, 16 << 10);
    assert_true(ri.flags & VFIO_REGION_INFO_FLAG_CAPS);
    assert_true(ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
    assert_int_equal(ri.cap_offset, 32);
    assert_int_equal(ri.caps_len, 8);
    /* vfio_info_cap_header: id 3 (MSIX_MAPPABLE), version 1, next 0 */
    const uint8_t want[8] = { 3, 0, 1, 0, 0, 0, 0, 0 };
    assert_memory_equal(ri.caps, want, 8);
    assert_int_equal(hv_get_irq_info(d, 2, &ii), 0);
    assert_int_equal(ii.count, 65);
    assert_int_equal(hv_get_irq_info(d, 1, &ii), 0);
    assert_int_equal(ii.count, 0);
    hv_close(d);

    /* Sparse variant, table in BAR2 at 0x2000 (65 entries: one page). */
    struct hv_sim_config c;
    hv_sim_config_defaults(&c);
    c.msix = HV_SIM_MSIX_SPARSE_CAP;
    d = open_sim(&c);
    assert_int_equal(hv_get_region_info(d, 2, &ri), 0);
    assert_int_equal(ri.size, 16 << 10);
    assert_int_equal(ri.offset, 2ull << 40);
    assert_int_equal(ri.cap_offset, 32);
    uint16_t id;
    uint32_t nr;
    uint64_t a[4];
    memcpy(&id, ri.caps, 2);
    memcpy(&nr, ri.caps + 8, 4);
    memcpy(a, ri.caps + 16, sizeof(a));
    assert_int_equal(id, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
    assert_int_equal(nr, 2);
    assert_int_equal(ri.caps_len, 16 + 2 * 16);
    assert_int_equal(a[0], 0);
    assert_int_equal(a[1], 0x2000);
    assert_int_equal(a[2], 0x3000);
    assert_int_equal(a[3], 0x1000);
    hv_close(d);

    /* Configurations that cannot exist are refused. */
    struct vub_err e;
    struct hv_device *bad = NULL;
    hv_sim_config_defaults(&c);
    c.msix = HV_SIM_MSIX_MAPPABLE_CAP;
    c.msix_count = 2048;   /* 32 KiB of table in a 16 KiB BAR */
    assert_int_equal(hv_sim_open(&c, &bad, &e), -EINVAL);
    assert_null(bad);
    hv_sim_config_defaults(&c);
    c.bar0_size = 3000;
    assert_int_equal(hv_sim_open(&c, &bad, &e), -EINVAL);
}

/* ---- region access --------------------------------------------------------- */

static void test_region_bounds(void **state)
{
    (void)state;
    struct hv_device *d = open_sim(NULL);
    uint8_t buf[16];

    assert_int_equal(hv_region_read(d, 0, MiB - 4, buf, 4), 4);
    assert_int_equal(hv_region_read(d, 0, MiB - 4, buf, 8), -EINVAL);
    assert_int_equal(hv_region_write(d, 0, MiB, buf, 1), -EINVAL);
    assert_int_equal(hv_region_read(d, 0, UINT64_MAX - 2, buf, 8), -EINVAL);
    assert_int_equal(hv_region_read(d, 1, 0, buf, 4), -EINVAL);   /* size 0 */
    assert_int_equal(hv_region_read(d, 6, 0, buf, 4), -EINVAL);   /* no ROM */
    assert_int_equal(hv_region_read(d, 8, 0, buf, 4), -EINVAL);
    assert_int_equal(hv_region_read(d, 7, 4092, buf, 4), 4);
    assert_int_equal(hv_region_read(d, 7, 4093, buf, 4), -EINVAL);
    hv_close(d);
}

static void test_bar_memfd_coherent(void **state)
{
    (void)state;
    struct hv_device *d = open_sim(NULL);
    struct hv_region_info ri;
    assert_int_equal(hv_get_region_info(d, 0, &ri), 0);

    int fds = tu_count_fds();
    int fd = hv_mmap_fd(d);
    assert_true(fd >= 0);
    assert_int_equal(tu_count_fds(), fds + 1);
    uint8_t *bar = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)ri.offset);
    assert_true(bar != MAP_FAILED);
    close(fd);   /* the mapping lives on without the fd */

    /* written through the mmap, seen by region_read */
    memcpy(bar + 0x1000, "through-mmap", 12);
    char buf[16] = "";
    assert_int_equal(hv_region_read(d, 0, 0x1000, buf, 12), 12);
    assert_memory_equal(buf, "through-mmap", 12);
    /* written by region_write, seen in the mmap */
    assert_int_equal(hv_region_write(d, 0, 0x80000, "by-pwrite", 9), 9);
    assert_memory_equal(bar + 0x80000, "by-pwrite", 9);
    /* registers: the id is in memory and a written liveness value inverted */
    uint32_t id;
    memcpy(&id, bar, 4);
    assert_int_equal(id, EDU_ID_VALUE);
    wr32(d, 0, EDU_LIVENESS, 0x12345678);
    uint32_t live;
    memcpy(&live, bar + 4, 4);
    assert_int_equal(live, ~0x12345678u);
    /* a write through the mmap only changes memory: no evaluation */
    uint32_t n = 5;
    memcpy(bar + 8, &n, 4);
    assert_int_equal(rd32(d, 0, 8), 5);
    munmap(bar, ri.size);
    hv_close(d);
}

static void test_edu_registers(void **state)
{
    (void)state;
    struct hv_device *d = open_sim(NULL);
    assert_int_equal(rd32(d, 0, EDU_ID), EDU_ID_VALUE);
    wr32(d, 0, EDU_ID, 0);
    assert_int_equal(rd32(d, 0, EDU_ID), EDU_ID_VALUE);   /* read-only */
    wr32(d, 0, EDU_LIVENESS, 0xa5a5a5a5);
    assert_int_equal(rd32(d, 0, EDU_LIVENESS), 0x5a5a5a5a);
    wr32(d, 0, EDU_FACT, 10);
    assert_int_equal(rd32(d, 0, EDU_FACT), 3628800);
    wr32(d, 0, EDU_FACT, 12);
    assert_int_equal(rd32(d, 0, EDU_FACT), 479001600);
    wr32(d, 0, EDU_FACT, 13);   /* 13! wraps in 32 bits like the edu */
    assert_int_equal(rd32(d, 0, EDU_FACT), (uint32_t)6227020800ull);
    wr32(d, 0, EDU_STATUS, 0xff);
    assert_int_equal(rd32(d, 0, EDU_STATUS), 0x80);   /* only the irq-enable bit sticks */
    hv_close(d);
}

static void test_msix_table_hidden(void **state)
{
    (void)state;
    struct hv_device *d = open_nvme_like(HV_SIM_MSIX_MAPPABLE_CAP);
    uint32_t v = 0x11223344;
    /* table 0x2000..0x2000+65*16: writes dropped, reads all ones */
    assert_int_equal(hv_region_write(d, 0, 0x2000, &v, 4), 4);
    assert_int_equal(rd32(d, 0, 0x2000), 0xffffffff);
    assert_int_equal(rd32(d, 0, 0x2000 + 65 * 16 - 4), 0xffffffff);
    /* right after the table and the PBA are ordinary */
    wr32(d, 0, 0x2000 + 65 * 16, 0x55);
    assert_int_equal(rd32(d, 0, 0x2000 + 65 * 16), 0x55);
    assert_int_equal(rd32(d, 0, 0x3000), 0);
    /* an access straddling the table start: the part before is written */
    uint8_t b[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    assert_int_equal(hv_region_write(d, 0, 0x1ffc, b, 8), 8);
    uint8_t r[8];
    assert_int_equal(hv_region_read(d, 0, 0x1ffc, r, 8), 8);
    const uint8_t want[8] = { 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff };
    assert_memory_equal(r, want, 8);
    hv_close(d);
}

static void test_config_space(void **state)
{
    (void)state;
    struct hv_device *d = open_sim(NULL);
    assert_int_equal(rd32(d, 7, 0), 0x11e81234);
    wr32(d, 7, 0, 0);
    assert_int_equal(rd32(d, 7, 0), 0x11e81234);   /* ids read-only */
    assert_int_equal(rd32(d, 7, 8) >> 8, 0x00ff00);   /* class */
    assert_int_equal(hv_sim_stats_of(d).command, 0x0002);      /* memory decode on */

    uint16_t cmd = 0x0006;
    assert_int_equal(hv_region_write(d, 7, 4, &cmd, 2), 2);
    assert_int_equal(hv_sim_stats_of(d).command, 0x0006);
    cmd = 0xffff;
    assert_int_equal(hv_region_write(d, 7, 4, &cmd, 2), 2);
    assert_int_equal(hv_sim_stats_of(d).command, 0x0547);      /* only writable bits */

    /* BAR sizing: all ones reads back the size mask */
    wr32(d, 7, 0x10, 0xffffffff);
    assert_int_equal(rd32(d, 7, 0x10), 0xfff00000);
    wr32(d, 7, 0x14, 0xffffffff);
    assert_int_equal(rd32(d, 7, 0x14), 0);            /* unused BAR */
    wr32(d, 7, 0x10, 0xfe123456);
    assert_int_equal(rd32(d, 7, 0x10), 0xfe100000);

    /* capability list: MSI (1 vector, 64-bit) then PCIe */
    uint8_t ptr;
    assert_int_equal(hv_region_read(d, 7, 0x34, &ptr, 1), 1);
    uint32_t hdr = rd32(d, 7, ptr);
    assert_int_equal(hdr & 0xff, 0x05);
    assert_int_equal(hdr >> 16 & 0x80, 0x80);
    uint8_t next = (uint8_t)(hdr >> 8);
    assert_int_equal(rd32(d, 7, next) & 0xff, 0x10);

    /* memory decode off: BAR access refused like the kernel does */
    cmd = 0x0004;
    assert_int_equal(hv_region_write(d, 7, 4, &cmd, 2), 2);
    uint32_t v;
    assert_int_equal(hv_region_read(d, 0, 0, &v, 4), -EIO);
    assert_int_equal(hv_region_write(d, 0, 0, &v, 4), -EIO);
    hv_close(d);
}

/* ---- DMA map table ------------------------------------------------------------ */

struct dma_fixture {
    struct hv_device *d;
    uint8_t *mem;
    size_t len;
};

static int dma_setup(void **state)
{
    static struct dma_fixture f;
    struct hv_sim_config c;
    hv_sim_config_defaults(&c);
    c.dma_entry_limit = 4;
    f.d = open_sim(&c);
    f.len = 64 * PG;
    f.mem = mmap(NULL, f.len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (f.mem == MAP_FAILED)
        return -1;
    *state = &f;
    return 0;
}

static int dma_teardown(void **state)
{
    struct dma_fixture *f = *state;
    hv_close(f->d);
    munmap(f->mem, f->len);
    return 0;
}

#define RW (HV_DMA_READ | HV_DMA_WRITE)

static void test_dma_overlap_eexist(void **state)
{
    struct dma_fixture *f = *state;
    struct hv_device *d = f->d;
    assert_int_equal(hv_dma_map(d, 0x100000, f->mem, 4 * PG, RW), 0);
    /* identical, inside, straddling either end, enclosing */
    assert_int_equal(hv_dma_map(d, 0x100000, f->mem, 4 * PG, RW), -EEXIST);
    assert_int_equal(hv_dma_map(d, 0x101000, f->mem, PG, RW), -EEXIST);
    assert_int_equal(hv_dma_map(d, 0x0ff000, f->mem, 2 * PG, RW), -EEXIST);
    assert_int_equal(hv_dma_map(d, 0x103000, f->mem, 2 * PG, RW), -EEXIST);
    assert_int_equal(hv_dma_map(d, 0x0f0000, f->mem, 32 * PG, RW), -EEXIST);
    /* adjacent on both sides is fine */
    assert_int_equal(hv_dma_map(d, 0x0ff000, f->mem, PG, RW), 0);
    assert_int_equal(hv_dma_map(d, 0x104000, f->mem + PG, PG, HV_DMA_READ), 0);
    assert_int_equal(hv_sim_stats_of(d).dma_maps, 3);
    assert_int_equal(hv_sim_stats_of(d).dma_bytes, 6 * PG);
}

static void test_dma_einval(void **state)
{
    struct dma_fixture *f = *state;
    struct hv_device *d = f->d;
    /* misaligned iova, size, vaddr; zero size; no direction; unknown flag */
    assert_int_equal(hv_dma_map(d, 0x100800, f->mem, PG, RW), -EINVAL);
    assert_int_equal(hv_dma_map(d, 0x100000, f->mem, PG + 1, RW), -EINVAL);
    assert_int_equal(hv_dma_map(d, 0x100000, f->mem + 8, PG, RW), -EINVAL);
    assert_int_equal(hv_dma_map(d, 0x100000, f->mem, 0, RW), -EINVAL);
    assert_int_equal(hv_dma_map(d, 0x100000, f->mem, PG, 0), -EINVAL);
    assert_int_equal(hv_dma_map(d, 0x100000, f->mem, PG, RW | 4), -EINVAL);
    /* outside the usable ranges: the MSI window, straddling it, too high, wrapping */
    assert_int_equal(hv_dma_map(d, 0xfee00000, f->mem, PG, RW), -EINVAL);
    assert_int_equal(hv_dma_map(d, 0xfedff000, f->mem, 2 * PG, RW), -EINVAL);
    assert_int_equal(hv_dma_map(d, 0x8000000000, f->mem, PG, RW), -EINVAL);
    assert_int_equal(hv_dma_map(d, 0x7ffffff000, f->mem, 2 * PG, RW), -EINVAL);
    assert_int_equal(hv_dma_map(d, UINT64_MAX - PG + 1, f->mem, 2 * PG, RW), -EINVAL);
    /* the edges of the ranges themselves are usable */
    assert_int_equal(hv_dma_map(d, 0xfedff000, f->mem, PG, RW), 0);
    assert_int_equal(hv_dma_map(d, 0xfef00000, f->mem, PG, RW), 0);
    assert_int_equal(hv_dma_map(d, 0x7ffffff000, f->mem, PG, RW), 0);
    /* memory that is not mapped in the process cannot be pinned */
    uint8_t *hole = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(hole, PG);
    assert_int_equal(hv_dma_map(d, 0x200000, hole, PG, RW), -EFAULT);
    assert_int_equal(hv_sim_stats_of(d).dma_maps, 3);
}

static void test_dma_enospc(void **state)
{
    struct dma_fixture *f = *state;
    struct hv_device *d = f->d;
    struct hv_iommu_info io;
    for (int i = 0; i < 4; i++)
        assert_int_equal(hv_dma_map(d, 0x100000 + (uint64_t)i * 0x10000, f->mem, PG, RW), 0);
    assert_int_equal(hv_iommu_get_info(d, &io), 0);
    assert_int_equal(io.dma_avail, 0);
    assert_int_equal(hv_dma_map(d, 0x900000, f->mem, PG, RW), -ENOSPC);
    /* overlap is checked before the limit, like the kernel */
    assert_int_equal(hv_dma_map(d, 0x100000, f->mem, PG, RW), -EEXIST);
    assert_int_equal(hv_dma_unmap(d, 0x100000, PG, 0), 0);
    assert_int_equal(hv_dma_map(d, 0x900000, f->mem, PG, RW), 0);
}

static void test_dma_unmap_rules(void **state)
{
    struct dma_fixture *f = *state;
    struct hv_device *d = f->d;
    assert_int_equal(hv_dma_map(d, 0x100000, f->mem, 2 * PG, RW), 0);
    assert_int_equal(hv_dma_map(d, 0x102000, f->mem, 2 * PG, RW), 0);
    assert_int_equal(hv_dma_map(d, 0x200000, f->mem, PG, RW), 0);

    /* bisecting a mapping at either end is refused and changes nothing */
    assert_int_equal(hv_dma_unmap(d, 0x101000, PG, 0), -EINVAL);
    assert_int_equal(hv_dma_unmap(d, 0x100000, PG, 0), -EINVAL);
    assert_int_equal(hv_dma_unmap(d, 0x100000, 3 * PG, 0), -EINVAL);
    /* misaligned, empty, wrapping, unknown flags */
    assert_int_equal(hv_dma_unmap(d, 0x100800, 2 * PG, 0), -EINVAL);
    assert_int_equal(hv_dma_unmap(d, 0x100000, 0, 0), -EINVAL);
    assert_int_equal(hv_dma_unmap(d, UINT64_MAX - PG + 1, 2 * PG, 0), -EINVAL);
    assert_int_equal(hv_dma_unmap(d, 0x100000, 2 * PG, 1), -EINVAL);
    assert_int_equal(hv_sim_stats_of(d).dma_maps, 3);

    /* one range covering two whole mappings removes both */
    assert_int_equal(hv_dma_unmap(d, 0x0f0000, 0x20000, 0), 0);
    assert_int_equal(hv_sim_stats_of(d).dma_maps, 1);
    assert_int_equal(hv_sim_stats_of(d).dma_bytes, PG);
    /* nothing there: success, nothing done (type1v2 reports size 0) */
    assert_int_equal(hv_dma_unmap(d, 0x500000, PG, 0), 0);
    /* exact */
    assert_int_equal(hv_dma_unmap(d, 0x200000, PG, 0), 0);
    assert_int_equal(hv_sim_stats_of(d).dma_maps, 0);

    /* unmap-all: iova and size must be 0 */
    assert_int_equal(hv_dma_map(d, 0x100000, f->mem, PG, RW), 0);
    assert_int_equal(hv_dma_map(d, 0x300000, f->mem, PG, RW), 0);
    assert_int_equal(hv_dma_unmap(d, 0x100000, 0, HV_DMA_UNMAP_ALL), -EINVAL);
    assert_int_equal(hv_dma_unmap(d, 0, PG, HV_DMA_UNMAP_ALL), -EINVAL);
    assert_int_equal(hv_sim_stats_of(d).dma_maps, 2);
    assert_int_equal(hv_dma_unmap(d, 0, 0, HV_DMA_UNMAP_ALL), 0);
    assert_int_equal(hv_sim_stats_of(d).dma_maps, 0);
    assert_int_equal(hv_sim_stats_of(d).dma_bytes, 0);
}

static void test_dma_device_access(void **state)
{
    struct dma_fixture *f = *state;
    struct hv_device *d = f->d;
    memset(f->mem, 0, 4 * PG);
    assert_int_equal(hv_dma_map(d, 0x100000, f->mem, PG, RW), 0);
    assert_int_equal(hv_dma_map(d, 0x101000, f->mem + PG, PG, RW), 0);
    assert_int_equal(hv_dma_map(d, 0x102000, f->mem + 2 * PG, PG, HV_DMA_READ), 0);

    /* a write spanning two adjacent mappings lands in both */
    uint8_t buf[64];
    memset(buf, 0xab, sizeof(buf));
    assert_int_equal(hv_sim_dma_write(d, 0x101000 - 32, buf, 64), 0);
    assert_int_equal(f->mem[PG - 32], 0xab);
    assert_int_equal(f->mem[PG + 31], 0xab);
    assert_int_equal(f->mem[PG + 32], 0);
    memcpy(f->mem + 2 * PG, "read-only", 9);
    assert_int_equal(hv_sim_dma_read(d, 0x102000, buf, 9), 0);
    assert_memory_equal(buf, "read-only", 9);
    /* direction and holes */
    assert_int_equal(hv_sim_dma_write(d, 0x102000, buf, 1), -EPERM);
    assert_int_equal(hv_sim_dma_read(d, 0x103000 - 4, buf, 8), -EFAULT);
    memset(buf, 0xcd, sizeof(buf));
    assert_int_equal(hv_sim_dma_write(d, 0x0ff000 + PG - 4, buf, 8), -EFAULT);
    assert_int_equal(f->mem[0], 0);   /* nothing partially written */
}

static void test_edu_dma_round_trip(void **state)
{
    struct dma_fixture *f = *state;
    struct hv_device *d = f->d;
    int efd = eventfd(0, EFD_CLOEXEC);
    int32_t fd32 = efd;
    assert_int_equal(set_efds(d, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &fd32), 0);
    assert_int_equal(hv_dma_map(d, 0x100000, f->mem, 2 * PG, RW), 0);
    for (int i = 0; i < 256; i++)
        f->mem[i] = (uint8_t)(i * 7);

    /* RAM -> device buffer (0x40000) */
    wr64(d, 0, EDU_DMA_SRC, 0x100000);
    wr64(d, 0, EDU_DMA_DST, EDU_BUF_ADDR);
    wr64(d, 0, EDU_DMA_CNT, 256);
    wr32(d, 0, EDU_DMA_CMD, EDU_DMA_START);
    assert_int_equal(rd32(d, 0, EDU_DMA_CMD) & EDU_DMA_START, 0);   /* done */
    /* device -> RAM at another page, with the completion interrupt */
    wr64(d, 0, EDU_DMA_SRC, EDU_BUF_ADDR);
    wr64(d, 0, EDU_DMA_DST, 0x101000);
    wr64(d, 0, EDU_DMA_CNT, 256);
    wr32(d, 0, EDU_DMA_CMD, EDU_DMA_START | EDU_DMA_TO_RAM | EDU_DMA_IRQ);
    assert_memory_equal(f->mem + PG, f->mem, 256);
    assert_int_equal(efd_take(efd), 1);
    assert_int_equal(rd32(d, 0, EDU_IRQ_STATUS), EDU_IRQ_DMA);
    wr32(d, 0, EDU_IRQ_ACK, EDU_IRQ_DMA);
    assert_int_equal(rd32(d, 0, EDU_IRQ_STATUS), 0);
    assert_int_equal(hv_sim_stats_of(d).dma_faults, 0);

    /* unmapped IOVA: an IOMMU fault, nothing copied */
    wr64(d, 0, EDU_DMA_DST, 0x900000);
    wr32(d, 0, EDU_DMA_CMD, EDU_DMA_START | EDU_DMA_TO_RAM);
    assert_int_equal(hv_sim_stats_of(d).dma_faults, 1);
    assert_int_equal(irq_disable(d, VFIO_PCI_MSI_IRQ_INDEX), 0);
    close(efd);
}

/* ---- device ops and IOMMU ops apart ---------------------------------------- */

/* Two devices attached to one simulated IOMMU context (what the functions
 * of one IOMMU group need: one container): one DMA address space, the
 * context's limits rather than a device's, the context outliving the
 * device that mapped, and a device of its own context seeing none of it. */
static void test_two_devices_one_iommu(void **state)
{
    (void)state;
    struct hv_sim_config ic, c1, c2;
    struct hv_iommu *io = NULL;
    struct hv_device *d1 = NULL, *d2 = NULL, *d3 = NULL;
    struct vub_err e = { "" };
    int fds = tu_count_fds();

    hv_sim_config_defaults(&ic);
    ic.dma_entry_limit = 2;
    assert_int_equal(hv_sim_iommu_open(&ic, &io, &e), 0);
    hv_sim_config_defaults(&c1);
    c1.addr = "0000:01:00.0";
    hv_sim_config_defaults(&c2);
    c2.addr = "0000:01:00.1";
    c2.dma_entry_limit = 100;   /* a device's own IOMMU fields do not count */
    assert_int_equal(hv_sim_open_on(&c1, io, &d1, &e), 0);
    assert_int_equal(hv_sim_open_on(&c2, io, &d2, &e), 0);
    assert_ptr_equal(d1->iommu, io);
    assert_ptr_equal(d2->iommu, io);
    assert_string_equal(hv_device_kind(d1), "sim");
    assert_string_equal(hv_iommu_kind(d2), "sim");
    hv_iommu_put(io);   /* the devices hold it now */

    size_t len = 4 * PG;
    uint8_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(mem != MAP_FAILED);
    memset(mem, 0, len);
    memcpy(mem, "shared", 6);
    assert_int_equal(hv_dma_map(d1, 0x100000, mem, 2 * PG, RW), 0);
    /* one address space: the same IOVA through the other device overlaps */
    assert_int_equal(hv_dma_map(d2, 0x100000, mem, PG, RW), -EEXIST);
    assert_int_equal(hv_sim_stats_of(d2).dma_maps, 1);
    struct hv_iommu_info ii;
    assert_int_equal(hv_iommu_get_info(d2, &ii), 0);
    assert_int_equal(ii.dma_avail, 1);
    assert_int_equal(hv_dma_map(d2, 0x200000, mem + 2 * PG, PG, RW), 0);
    assert_int_equal(hv_dma_map(d2, 0x300000, mem + 3 * PG, PG, RW), -ENOSPC);

    /* d2's edu engine reads what was mapped through d1 */
    wr64(d2, 0, EDU_DMA_SRC, 0x100000);
    wr64(d2, 0, EDU_DMA_DST, 0x40000);
    wr64(d2, 0, EDU_DMA_CNT, 6);
    wr32(d2, 0, EDU_DMA_CMD, 1);
    wr64(d2, 0, EDU_DMA_SRC, 0x40000);
    wr64(d2, 0, EDU_DMA_DST, 0x101000);
    wr32(d2, 0, EDU_DMA_CMD, 1 | 2);
    assert_int_equal(hv_sim_stats_of(d2).dma_faults, 0);
    assert_memory_equal(mem + PG, "shared", 6);
    /* device state stays per device: d1's buffer and registers untouched */
    assert_int_equal(rd32(d1, 0, EDU_DMA_SRC), 0);
    assert_int_equal(hv_reset(d2), 0);
    assert_int_equal(hv_sim_stats_of(d1).resets, 0);
    assert_int_equal(hv_sim_stats_of(d1).dma_maps, 2);   /* reset leaves the IOMMU alone */

    /* the context outlives the device that made the mapping */
    hv_close(d1);
    assert_int_equal(hv_sim_stats_of(d2).dma_maps, 2);
    assert_int_equal(hv_sim_dma_read(d2, 0x100000, mem + 3 * PG, 6), 0);
    assert_memory_equal(mem + 3 * PG, "shared", 6);

    /* a device with a context of its own sees none of it */
    d3 = open_sim(NULL);
    assert_ptr_not_equal(d3->iommu, d2->iommu);
    assert_int_equal(hv_sim_stats_of(d3).dma_maps, 0);
    assert_int_equal(hv_dma_map(d3, 0x100000, mem, PG, RW), 0);
    assert_int_equal(hv_dma_unmap(d2, 0, 0, HV_DMA_UNMAP_ALL), 0);
    assert_int_equal(hv_sim_stats_of(d2).dma_maps, 0);
    assert_int_equal(hv_sim_stats_of(d3).dma_maps, 1);
    hv_close(d3);
    hv_close(d2);   /* the last reference: the context goes too */
    munmap(mem, len);
    assert_int_equal(tu_count_fds(), fds);
}

/* Each kind of device attaches only to its own kind of context. */
static void test_attach_refuses_other_kinds(void **state)
{
    (void)state;
    struct hv_iommu *io = NULL;
    struct hv_device *d = (struct hv_device *)1;
    struct vub_err e = { "" };
    assert_int_equal(hv_sim_iommu_open(NULL, &io, &e), 0);
    assert_int_equal(io->refs, 1);
    assert_int_equal(hv_vfio_open(io, "0000:01:00.0", &d, &e), -EINVAL);
    assert_null(d);
    assert_string_equal(e.msg, "0000:01:00.0: the sim IOMMU context cannot take a VFIO device");
    assert_int_equal(io->refs, 1);
    hv_iommu_put(io);

    struct hv_iommu *t1 = NULL;
    assert_int_equal(hv_type1_iommu_new(NULL, &t1, &e), 0);
    d = (struct hv_device *)1;
    assert_int_equal(hv_sim_open_on(NULL, t1, &d, &e), -EINVAL);
    assert_null(d);
    assert_string_equal(e.msg, "sim: a simulated device attaches only to a simulated IOMMU "
                               "context, not to type1");
    hv_iommu_put(t1);
}

/* ---- interrupts ------------------------------------------------------------ */

static void test_irq_msix_sizing(void **state)
{
    (void)state;
    struct hv_device *d = open_nvme_like(HV_SIM_MSIX_MAPPABLE_CAP);
    int e[4];
    for (int i = 0; i < 4; i++)
        e[i] = eventfd(0, EFD_CLOEXEC);
    int32_t fds[2] = { e[0], e[1] };

    /* first enable sizes the table to start + count = 2 */
    assert_int_equal(set_efds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, fds), 0);
    assert_int_equal(hv_sim_stats_of(d).irq_enabled[VFIO_PCI_MSIX_IRQ_INDEX], 2);
    /* a later chunk beyond it is refused (QEMU's split fd arrays) */
    int32_t more[2] = { e[2], e[3] };
    assert_int_equal(set_efds(d, VFIO_PCI_MSIX_IRQ_INDEX, 2, 2, more), -EINVAL);
    assert_int_equal(hv_sim_stats_of(d).irq_enabled[VFIO_PCI_MSIX_IRQ_INDEX], 2);
    /* inside it, vectors can be replaced and de-assigned with -1 */
    int32_t swap[2] = { -1, e[2] };
    assert_int_equal(set_efds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, swap), 0);
    assert_int_equal(hv_sim_irq_fd(d, VFIO_PCI_MSIX_IRQ_INDEX, 0), -1);
    assert_int_equal(hv_sim_fire_irq(d, VFIO_PCI_MSIX_IRQ_INDEX, 0), 0);
    assert_int_equal(hv_sim_fire_irq(d, VFIO_PCI_MSIX_IRQ_INDEX, 1), 1);
    assert_int_equal(efd_take(e[2]), 1);
    assert_int_equal(efd_take(e[1]), 0);
    /* beyond the device's count */
    assert_int_equal(hv_sim_fire_irq(d, VFIO_PCI_MSIX_IRQ_INDEX, 65), -EINVAL);
    assert_int_equal(set_efds(d, VFIO_PCI_MSIX_IRQ_INDEX, 64, 2, more), -EINVAL);
    /* INTx and MSI are refused while MSI-X is on; MSI-X mask is not offered */
    int32_t one = e[3];
    assert_int_equal(set_efds(d, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &one), -EINVAL);
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
                                      VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, NULL), -ENOTTY);

    /* a bad fd in a block: the vectors this call touched end up de-assigned,
     * the others are kept (the kernel's unwind) */
    int32_t bad[2] = { e[0], 999 };
    assert_int_equal(set_efds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, bad), -EBADF);
    assert_int_equal(hv_sim_irq_fd(d, VFIO_PCI_MSIX_IRQ_INDEX, 0), -1);
    assert_int_equal(hv_sim_irq_fd(d, VFIO_PCI_MSIX_IRQ_INDEX, 1), -1);
    assert_int_equal(hv_sim_stats_of(d).irq_enabled[VFIO_PCI_MSIX_IRQ_INDEX], 2);
    assert_int_equal(set_efds(d, VFIO_PCI_MSIX_IRQ_INDEX, 1, 1, &bad[0]), 0);
    assert_int_equal(set_efds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &bad[1]), -EBADF);
    assert_true(hv_sim_irq_fd(d, VFIO_PCI_MSIX_IRQ_INDEX, 1) >= 0);

    /* disable, then a full-size enable works; enabling with no vector (all
     * -1) sizes it too, as QEMU does */
    assert_int_equal(irq_disable(d, VFIO_PCI_MSIX_IRQ_INDEX), 0);
    assert_int_equal(hv_sim_stats_of(d).irq_enabled[VFIO_PCI_MSIX_IRQ_INDEX], 0);
    assert_int_equal(hv_sim_stats_of(d).open_irq_fds, 0);
    int32_t none[65];
    for (int i = 0; i < 65; i++)
        none[i] = -1;
    assert_int_equal(set_efds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 65, none), 0);
    assert_int_equal(hv_sim_stats_of(d).irq_enabled[VFIO_PCI_MSIX_IRQ_INDEX], 65);
    assert_int_equal(set_efds(d, VFIO_PCI_MSIX_IRQ_INDEX, 64, 1, &one), 0);
    assert_int_equal(hv_sim_fire_irq(d, VFIO_PCI_MSIX_IRQ_INDEX, 64), 1);
    assert_int_equal(efd_take(e[3]), 1);
    /* disabling what is not enabled is an error in the kernel */
    assert_int_equal(irq_disable(d, VFIO_PCI_INTX_IRQ_INDEX), -EINVAL);
    hv_close(d);
    for (int i = 0; i < 4; i++)
        close(e[i]);
}

static void test_irq_eventfd_refs(void **state)
{
    (void)state;
    struct hv_device *d = open_sim(NULL);
    int fds_before = tu_count_fds();
    int efd = eventfd(0, EFD_CLOEXEC);
    int32_t fd32 = efd;
    assert_int_equal(set_efds(d, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &fd32), 0);
    int mine = hv_sim_irq_fd(d, VFIO_PCI_MSI_IRQ_INDEX, 0);
    assert_true(mine >= 0);
    assert_int_not_equal(mine, efd);   /* its own reference */
    assert_int_equal(hv_sim_stats_of(d).open_irq_fds, 1);
    assert_int_equal(tu_count_fds(), fds_before + 2);

    /* the edu's raise-interrupt register signals MSI vector 0 */
    wr32(d, 0, EDU_IRQ_RAISE, 0x1);
    assert_int_equal(efd_take(efd), 1);
    assert_int_equal(rd32(d, 0, EDU_IRQ_STATUS), 1);
    /* factorial with the completion interrupt enabled */
    wr32(d, 0, EDU_STATUS, 0x80);
    wr32(d, 0, EDU_FACT, 4);
    assert_int_equal(efd_take(efd), 1);

    /* loopback triggers: NONE and BOOL */
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                                      VFIO_PCI_MSI_IRQ_INDEX, 0, 1, NULL), 0);
    assert_int_equal(efd_take(efd), 1);
    uint8_t no = 0, yes = 1;
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER,
                                      VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &no), 0);
    assert_int_equal(efd_take(efd), 0);
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER,
                                      VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &yes), 0);
    assert_int_equal(efd_take(efd), 1);

    /* the caller's close does not disturb the sim's reference */
    int dup_efd = dup(efd);
    close(efd);
    assert_int_equal(hv_sim_fire_irq(d, VFIO_PCI_MSI_IRQ_INDEX, 0), 1);
    assert_int_equal(efd_take(dup_efd), 1);
    close(dup_efd);
    assert_int_equal(irq_disable(d, VFIO_PCI_MSI_IRQ_INDEX), 0);
    assert_int_equal(hv_sim_stats_of(d).open_irq_fds, 0);
    assert_int_equal(tu_count_fds(), fds_before);

    /* bad fds: -EBADF, not an eventfd: -EINVAL; a failed enable is undone */
    int p[2];
    assert_int_equal(pipe(p), 0);
    fd32 = p[0];
    assert_int_equal(set_efds(d, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &fd32), -EINVAL);
    fd32 = 1000;
    assert_int_equal(set_efds(d, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &fd32), -EBADF);
    assert_int_equal(hv_sim_stats_of(d).irq_enabled[VFIO_PCI_MSI_IRQ_INDEX], 0);
    assert_int_equal(set_efds(d, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &fd32), -EBADF);
    assert_int_equal(hv_sim_stats_of(d).irq_enabled[VFIO_PCI_INTX_IRQ_INDEX], 0);
    close(p[0]);
    close(p[1]);

    /* validation: flags, index, ranges, several actions at once */
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER | 0x100,
                                      0, 0, 1, NULL), -EINVAL);
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL |
                                      VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, 1, &yes), -EINVAL);
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                                      5, 0, 0, NULL), -EINVAL);
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                                      VFIO_PCI_MSI_IRQ_INDEX, 1, 1, NULL), -EINVAL);
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER |
                                      VFIO_IRQ_SET_ACTION_MASK, 0, 0, 1, NULL), -ENOTTY);
    /* MSI-X does not exist on this device: count 0 refuses everything */
    assert_int_equal(irq_disable(d, VFIO_PCI_MSIX_IRQ_INDEX), -EINVAL);
    hv_close(d);
}

static void test_irq_intx_automask(void **state)
{
    (void)state;
    struct hv_device *d = open_sim(NULL);
    int efd = eventfd(0, EFD_CLOEXEC), rfd = eventfd(0, EFD_CLOEXEC);
    int32_t fd32 = efd;

    /* masking before INTx is enabled is refused */
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
                                      0, 0, 1, NULL), -EINVAL);
    assert_int_equal(set_efds(d, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &fd32), 0);
    assert_int_equal(hv_sim_stats_of(d).irq_enabled[VFIO_PCI_INTX_IRQ_INDEX], 1);
    assert_false(hv_sim_stats_of(d).intx_masked);
    /* MSI cannot be enabled while INTx is */
    assert_int_equal(set_efds(d, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &fd32), -EINVAL);

    /* fire: signalled and automasked; fire again: held pending */
    assert_int_equal(hv_sim_fire_irq(d, VFIO_PCI_INTX_IRQ_INDEX, 0), 1);
    assert_int_equal(efd_take(efd), 1);
    assert_true(hv_sim_stats_of(d).intx_masked);
    assert_int_equal(hv_sim_fire_irq(d, VFIO_PCI_INTX_IRQ_INDEX, 0), 0);
    assert_int_equal(efd_take(efd), 0);
    /* unmask: the pending one is delivered (and masks again) */
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
                                      0, 0, 1, NULL), 0);
    assert_int_equal(efd_take(efd), 1);
    assert_true(hv_sim_stats_of(d).intx_masked);
    /* BOOL unmask 0 does nothing, 1 unmasks */
    uint8_t b = 0;
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_UNMASK,
                                      0, 0, 1, &b), 0);
    assert_true(hv_sim_stats_of(d).intx_masked);
    b = 1;
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_UNMASK,
                                      0, 0, 1, &b), 0);
    assert_false(hv_sim_stats_of(d).intx_masked);

    /* an unmask (resample) eventfd: writing it unmasks */
    int32_t r32 = rfd;
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK,
                                      0, 0, 1, &r32), 0);
    assert_int_equal(hv_sim_stats_of(d).open_irq_fds, 2);
    wr32(d, 0, EDU_IRQ_RAISE, 1);   /* edu raise: INTx since MSI is off */
    assert_int_equal(efd_take(efd), 1);
    assert_true(hv_sim_stats_of(d).intx_masked);
    uint64_t one = 1;
    assert_int_equal(write(rfd, &one, 8), 8);
    assert_false(hv_sim_stats_of(d).intx_masked);
    /* MASK by eventfd is not something the kernel offers */
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK,
                                      0, 0, 1, &r32), -ENOTTY);
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
                                      0, 0, 1, NULL), 0);
    assert_true(hv_sim_stats_of(d).intx_masked);
    /* masked + edu ack before unmask: the line dropped, nothing delivered */
    wr32(d, 0, EDU_IRQ_RAISE, 1);
    assert_int_equal(efd_take(efd), 0);
    wr32(d, 0, EDU_IRQ_ACK, 1);
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
                                      0, 0, 1, NULL), 0);
    assert_int_equal(efd_take(efd), 0);

    /* -1 de-assigns the trigger but INTx stays enabled */
    fd32 = -1;
    assert_int_equal(set_efds(d, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &fd32), 0);
    assert_int_equal(hv_sim_stats_of(d).irq_enabled[VFIO_PCI_INTX_IRQ_INDEX], 1);
    assert_int_equal(hv_sim_fire_irq(d, VFIO_PCI_INTX_IRQ_INDEX, 0), 0);
    /* disable drops both eventfds */
    assert_int_equal(irq_disable(d, VFIO_PCI_INTX_IRQ_INDEX), 0);
    assert_int_equal(hv_sim_stats_of(d).open_irq_fds, 0);
    assert_int_equal(hv_sim_stats_of(d).irq_enabled[VFIO_PCI_INTX_IRQ_INDEX], 0);
    close(efd);
    close(rfd);
    hv_close(d);
}

static void test_irq_err_req(void **state)
{
    (void)state;
    struct hv_device *d = open_sim(NULL);
    int efd = eventfd(0, EFD_CLOEXEC);
    int32_t fd32 = efd;
    /* DATA_NONE with nothing set is an error, count must be <= 1 */
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                                      VFIO_PCI_ERR_IRQ_INDEX, 0, 1, NULL), -EINVAL);
    assert_int_equal(set_efds(d, VFIO_PCI_REQ_IRQ_INDEX, 0, 2, (int32_t[]){ efd, efd }), -EINVAL);
    assert_int_equal(set_efds(d, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &fd32), 0);
    assert_int_equal(hv_sim_fire_irq(d, VFIO_PCI_REQ_IRQ_INDEX, 0), 1);
    assert_int_equal(efd_take(efd), 1);
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                                      VFIO_PCI_REQ_IRQ_INDEX, 0, 1, NULL), 0);
    assert_int_equal(efd_take(efd), 1);
    assert_int_equal(hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                                      VFIO_PCI_REQ_IRQ_INDEX, 0, 0, NULL), 0);
    assert_int_equal(hv_sim_irq_fd(d, VFIO_PCI_REQ_IRQ_INDEX, 0), -1);
    assert_int_equal(hv_sim_fire_irq(d, VFIO_PCI_ERR_IRQ_INDEX, 0), 0);
    close(efd);
    hv_close(d);
}

/* ---- reset and life cycle -------------------------------------------------- */

static void test_reset(void **state)
{
    (void)state;
    struct hv_device *d = open_sim(NULL);
    uint8_t *mem = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int efd = eventfd(0, EFD_CLOEXEC);
    int32_t fd32 = efd;
    assert_int_equal(set_efds(d, VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &fd32), 0);
    assert_int_equal(hv_dma_map(d, 0x100000, mem, PG, RW), 0);
    wr32(d, 0, EDU_LIVENESS, 0);
    wr32(d, 0, EDU_IRQ_RAISE, 3);
    assert_int_equal(efd_take(efd), 1);
    assert_int_equal(hv_region_write(d, 0, 0x5000, "data", 4), 4);
    uint16_t cmd = 0x0006;
    assert_int_equal(hv_region_write(d, 7, 4, &cmd, 2), 2);

    assert_int_equal(hv_reset(d), 0);
    assert_int_equal(hv_sim_stats_of(d).resets, 1);
    /* device state back to power-on */
    assert_int_equal(rd32(d, 0, EDU_ID), EDU_ID_VALUE);
    assert_int_equal(rd32(d, 0, EDU_LIVENESS), 0);
    assert_int_equal(rd32(d, 0, EDU_IRQ_STATUS), 0);
    assert_int_equal(rd32(d, 0, 0x5000), 0);
    /* what the kernel restores or leaves: config, IRQ set-up, IOMMU */
    assert_int_equal(hv_sim_stats_of(d).command, 0x0006);
    assert_int_equal(hv_sim_stats_of(d).irq_enabled[VFIO_PCI_MSI_IRQ_INDEX], 1);
    wr32(d, 0, EDU_IRQ_RAISE, 1);
    assert_int_equal(efd_take(efd), 1);
    assert_int_equal(hv_sim_stats_of(d).dma_maps, 1);
    hv_close(d);
    close(efd);
    munmap(mem, PG);

    struct hv_sim_config c;
    hv_sim_config_defaults(&c);
    c.reset = false;
    d = open_sim(&c);
    struct hv_device_info di;
    assert_int_equal(hv_get_info(d, &di), 0);
    assert_int_equal(di.flags, VFIO_DEVICE_FLAGS_PCI);
    assert_int_equal(hv_reset(d), -ENOTTY);
    assert_int_equal(hv_sim_stats_of(d).resets, 0);
    hv_close(d);
}

static void test_close_releases_everything(void **state)
{
    (void)state;
    int before = tu_count_fds();
    struct hv_device *d = open_nvme_like(HV_SIM_MSIX_MAPPABLE_CAP);
    int efd = eventfd(0, EFD_CLOEXEC);
    int32_t fds[3] = { efd, efd, efd };
    assert_int_equal(set_efds(d, VFIO_PCI_MSIX_IRQ_INDEX, 0, 3, fds), 0);
    assert_int_equal(set_efds(d, VFIO_PCI_ERR_IRQ_INDEX, 0, 1, fds), 0);
    assert_int_equal(hv_sim_stats_of(d).open_irq_fds, 4);
    int mfd = hv_mmap_fd(d);
    close(mfd);
    hv_close(d);
    close(efd);
    assert_int_equal(tu_count_fds(), before);
    hv_close(NULL);
}

static void test_hooks_refuse_other_devices(void **state)
{
    (void)state;
    static const struct hv_device_ops other = { .name = "other" };
    struct hv_device fake = { .ops = &other };
    assert_int_equal(hv_sim_fire_irq(&fake, 0, 0), -EINVAL);
    struct hv_sim_stats st;
    memset(&st, 0xff, sizeof(st));
    assert_int_equal(hv_sim_stats(&fake, &st), -EINVAL);
    assert_int_equal(st.dma_maps, 0);     /* zeroed, not left as it was */
    assert_int_equal(st.resets, 0);
    assert_int_equal(hv_sim_irq_fd(&fake, 1, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_and_regions),
        cmocka_unit_test(test_msix_caps),
        cmocka_unit_test(test_region_bounds),
        cmocka_unit_test(test_bar_memfd_coherent),
        cmocka_unit_test(test_edu_registers),
        cmocka_unit_test(test_msix_table_hidden),
        cmocka_unit_test(test_config_space),
        cmocka_unit_test(test_two_devices_one_iommu),
        cmocka_unit_test(test_attach_refuses_other_kinds),
        cmocka_unit_test_setup_teardown(test_dma_overlap_eexist, dma_setup, dma_teardown),
        cmocka_unit_test_setup_teardown(test_dma_einval, dma_setup, dma_teardown),
        cmocka_unit_test_setup_teardown(test_dma_enospc, dma_setup, dma_teardown),
        cmocka_unit_test_setup_teardown(test_dma_unmap_rules, dma_setup, dma_teardown),
        cmocka_unit_test_setup_teardown(test_dma_device_access, dma_setup, dma_teardown),
        cmocka_unit_test_setup_teardown(test_edu_dma_round_trip, dma_setup, dma_teardown),
        cmocka_unit_test(test_irq_msix_sizing),
        cmocka_unit_test(test_irq_eventfd_refs),
        cmocka_unit_test(test_irq_intx_automask),
        cmocka_unit_test(test_irq_err_req),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_close_releases_everything),
        cmocka_unit_test(test_hooks_refuse_other_devices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
