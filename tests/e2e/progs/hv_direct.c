/* SPDX-License-Identifier: MIT */
/*
 * hv_direct - host-vfio's kernel back ends against the real kernel VFIO stack
 * (run inside the e2e guest), type1 or, with VUB_IOMMU=iommufd (testbed.sh
 * --kernel iommufd --iommu iommufd), the VFIO cdev in an iommufd IOAS: opens the edu and nvme functions, checks what
 * the kernel reports, runs the edu DMA engine through an IOMMU mapping of a
 * memfd, receives an edu MSI on an eventfd, checks the kernel rules the sim
 * models, two functions sharing one container, the error paths and the bind
 * helpers. One line per check; exit 0 only if every check passed.
 *
 * usage: hv_direct EDU_ADDR NVME_ADDR
 *        hv_direct --same-group EDU_ADDR NVME_ADDR   (testbed --topology shared)
 */
#include "edu_regs.h"
#include "hv.h"
#include "hv_iommufd.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int checks, fails;

static bool check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool check(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s - ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    checks++;
    fails += !ok;
    return ok;
}

static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("#      ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* The back end under test: "type1", "iommufd" or "iommufd-group" ($VUB_IOMMU). */
static const char *kind = "type1";
/* an iommufd IOAS (either way: cdev or group file) */
static bool ifd_mode(void) { return strncmp(kind, "iommufd", 7) == 0; }
static bool group_mode(void) { return strcmp(kind, "iommufd-group") == 0; }

static int open_dev(const char *addr, struct hv_device **d, struct vub_err *e)
{
    if (group_mode())
        return hv_iommufd_group_open(addr, NULL, d, e);
    return ifd_mode() ? hv_iommufd_open(addr, NULL, d, e) : hv_type1_open(addr, NULL, d, e);
}

static int new_context(struct hv_iommu **io, struct vub_err *e)
{
    if (group_mode())
        return hv_iommufd_group_iommu_new(NULL, io, e);
    return ifd_mode() ? hv_iommufd_iommu_new(NULL, io, e) : hv_type1_iommu_new(NULL, io, e);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t rd32(struct hv_device *d, uint32_t idx, uint64_t off, ssize_t *r)
{
    uint32_t v = 0;
    *r = hv_region_read(d, idx, off, &v, 4);
    return v;
}

static ssize_t wr32(struct hv_device *d, uint32_t idx, uint64_t off, uint32_t v)
{
    return hv_region_write(d, idx, off, &v, 4);
}

static ssize_t wr64(struct hv_device *d, uint32_t idx, uint64_t off, uint64_t v)
{
    return hv_region_write(d, idx, off, &v, 8);
}

/* Poll an edu register until (value & mask) == 0, up to 5 s. */
static bool edu_wait_clear(struct hv_device *d, uint64_t off, uint32_t mask)
{
    double end = now() + 5;
    ssize_t r;
    do {
        if (!(rd32(d, 0, off, &r) & mask) && r == 4)
            return true;
        usleep(1000);
    } while (now() < end);
    return false;
}

/* The cap ids in a raw region cap chain (offsets relative to the struct). */
static bool chain_has(const struct hv_region_info *ri, uint16_t want)
{
    uint32_t off = ri->cap_offset;
    for (int hops = 0; off >= 32 && hops < 16; hops++) {
        uint32_t at = off - 32;
        if (at + 8 > ri->caps_len)
            return false;
        uint16_t id;
        uint32_t next;
        memcpy(&id, ri->caps + at, 2);
        memcpy(&next, ri->caps + at + 4, 4);
        if (id == want)
            return true;
        if (next <= off)
            return false;
        off = next;
    }
    return false;
}

static void check_iommu(struct hv_device *d)
{
    struct hv_iommu_info io;
    int r = hv_iommu_get_info(d, &io);
    check(r == 0 && (io.pgsizes & 0x1000), "IOMMU info: page sizes %#" PRIx64 " include 4K",
          io.pgsizes);
    check(io.nr_ranges >= 1, "IOMMU info: %u usable IOVA range(s)", io.nr_ranges);
    for (uint32_t i = 0; i < io.nr_ranges; i++)
        info("IOVA range %#" PRIx64 "-%#" PRIx64, io.ranges[i].start, io.ranges[i].end);
    if (ifd_mode())   /* iommufd has no entry limit of its own to report */
        check(!io.has_dma_avail && !(io.pgsizes & 0xfff), "IOMMU info: no DMA_AVAIL, no page "
              "size below 4K (iommufd)");
    else
        check(io.has_dma_avail && io.dma_avail > 0, "IOMMU info: DMA_AVAIL %u entries",
              io.dma_avail);
}

static void edu_tests(const char *addr)
{
    struct vub_err e = { "" };
    struct hv_device *d = NULL;
    ssize_t r;

    int rc = open_dev(addr, &d, &e);
    if (!check(rc == 0, "open edu %s through %s (%s)", addr, kind, rc ? e.msg : "ok"))
        return;
    check(strcmp(hv_iommu_kind(d), kind) == 0 && d->group >= 0 && strcmp(d->addr, addr) == 0,
          "edu: back end %s, group %d", hv_iommu_kind(d), d->group);
    check_iommu(d);

    struct hv_device_info di;
    rc = hv_get_info(d, &di);
    check(rc == 0 && di.num_regions == 9 && di.num_irqs == 5 && (di.flags & VFIO_DEVICE_FLAGS_PCI),
          "edu: %u regions, %u irqs, flags %#x", di.num_regions, di.num_irqs, di.flags);
    check(!(di.flags & VFIO_DEVICE_FLAGS_RESET), "edu: no RESET flag");

    struct hv_region_info *ri = calloc(1, sizeof(*ri));
    rc = hv_get_region_info(d, 0, ri);
    check(rc == 0 && ri->size == (1u << 20) && (ri->flags & VFIO_REGION_INFO_FLAG_MMAP) &&
              ri->offset == 0,
          "edu: BAR0 %#" PRIx64 " bytes, flags %#x, mmappable", ri->size, ri->flags);
    uint64_t bar0_off = ri->offset;
    rc = hv_get_region_info(d, 1, ri);
    check(rc == 0 && ri->size == 0 && ri->flags == 0 && ri->offset == (1ull << 40),
          "edu: unused BAR1 size 0 flags 0 at offset 1<<40");
    rc = hv_get_region_info(d, 7, ri);
    check(rc == 0 && ri->size >= 256, "edu: config region %#" PRIx64 " bytes", ri->size);
    rc = hv_get_region_info(d, 8, ri);
    check(rc == -EINVAL, "edu: VGA region answers -EINVAL (%d)", rc);
    free(ri);

    struct hv_irq_info ii[3];
    int r0 = hv_get_irq_info(d, 0, &ii[0]), r1 = hv_get_irq_info(d, 1, &ii[1]),
        r2 = hv_get_irq_info(d, 2, &ii[2]);
    check(r0 == 0 && ii[0].count == 1 &&
              ii[0].flags == (VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
                              VFIO_IRQ_INFO_AUTOMASKED),
          "edu: INTx count 1, flags %#x", ii[0].flags);
    check(r1 == 0 && ii[1].count == 1, "edu: MSI count %u, flags %#x", ii[1].count, ii[1].flags);
    check(r2 == 0 && ii[2].count == 0, "edu: MSI-X count %u", ii[2].count);

    uint32_t ids = rd32(d, 7, 0, &r);
    check(r == 4 && ids == 0x11e81234, "edu: config ids %08x", ids);
    uint16_t cmd = 0;
    r = hv_region_read(d, 7, 4, &cmd, 2);
    info("COMMAND before: %#x", cmd);
    cmd |= 0x6;   /* memory decode + bus master */
    check(r == 2 && hv_region_write(d, 7, 4, &cmd, 2) == 2,
          "edu: COMMAND memory + bus master on");

    uint32_t id = rd32(d, 0, 0, &r);
    check(r == 4 && id == EDU_ID_VALUE, "edu: id register %#x by pread", id);
    uint8_t buf[8];
    check(hv_region_read(d, 0, (1u << 20) - 4, buf, 8) == -EINVAL,
          "edu: a read past BAR0's end is refused");

    int mfd = hv_mmap_fd(d);
    volatile uint32_t *bar = MAP_FAILED;
    if (ifd_mode() && !group_mode()) {
        /* a VFIO cdev takes one open file: nothing to hand a client */
        check(mfd == -ENOTSUP && d->one_file, "edu: no second device file from a cdev (%d)",
              mfd);
        mfd = -1;
    } else if (check(mfd >= 0 && !d->one_file, "edu: mmap fd %d", mfd)) {
        /* a file of its own each time (a client's session file), never a dup */
        int mfd2 = hv_mmap_fd(d);
        long same = mfd2 >= 0 ? syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, mfd,
                                        mfd2) : -1;
        check(mfd2 >= 0 && same > 0, "edu: a second mmap fd %d is another open file (kcmp %ld)",
              mfd2, same);
        if (mfd2 >= 0)
            close(mfd2);
        bar = mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, (off_t)bar0_off);
    }
    if (mfd >= 0 && check(bar != MAP_FAILED, "edu: BAR0 mmapped through the mmap fd")) {
        check(bar[0] == EDU_ID_VALUE, "edu: id register %#x through mmap", bar[0]);
        bar[1] = 0x12345678;
        check(bar[1] == ~0x12345678u, "edu: liveness through mmap %#x", bar[1]);
        munmap((void *)bar, 1u << 20);
    }
    if (mfd >= 0)
        close(mfd);

    wr32(d, 0, EDU_FACT, 10);
    bool done = edu_wait_clear(d, EDU_STATUS, EDU_STATUS_BUSY);
    uint32_t f = rd32(d, 0, EDU_FACT, &r);
    check(done && f == 3628800, "edu: factorial of 10 = %u", f);

    /* DMA: a memfd mapped at IOVA 0x100000, bytes RAM -> device -> RAM. */
    size_t len = 4 * 4096;
    int memfd = memfd_create("hv-direct-dma", MFD_CLOEXEC);
    uint8_t *mem = MAP_FAILED;
    if (memfd >= 0 && ftruncate(memfd, (off_t)len) == 0)
        mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (check(mem != MAP_FAILED, "memfd for DMA")) {
        for (size_t i = 0; i < 4096; i++)
            mem[i] = (uint8_t)(i * 13 + 1);
        memset(mem + 4096, 0, 4096);
        rc = hv_dma_map(d, 0x100000, mem, 2 * 4096, HV_DMA_READ | HV_DMA_WRITE);
        check(rc == 0, "DMA map of the memfd at IOVA 0x100000 (%d)", rc);
        rc = hv_dma_map(d, 0x101000, mem + 2 * 4096, 4096, HV_DMA_READ | HV_DMA_WRITE);
        check(rc == -EEXIST, "overlapping map -> -EEXIST (%d)", rc);
        rc = hv_dma_map(d, 0x200800, mem + 2 * 4096, 4096, HV_DMA_READ | HV_DMA_WRITE);
        check(rc == -EINVAL, "misaligned iova -> -EINVAL (%d)", rc);
        rc = hv_dma_map(d, 0xfee00000, mem + 2 * 4096, 4096, HV_DMA_READ | HV_DMA_WRITE);
        check(rc == -EINVAL, "iova in the MSI window -> -EINVAL (%d)", rc);
        void *hole = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        munmap(hole, 4096);
        rc = hv_dma_map(d, 0x300000, hole, 4096, HV_DMA_READ | HV_DMA_WRITE);
        check(rc == -EFAULT, "unmapped vaddr -> -EFAULT (%d)", rc);

        /* 1 KiB: QEMU 7.2's edu aborts on a transfer ending exactly at the
         * end of its 4 KiB buffer (off by one in its range check). */
        wr64(d, 0, EDU_DMA_SRC, 0x100000);
        wr64(d, 0, EDU_DMA_DST, EDU_BUF_ADDR);
        wr64(d, 0, EDU_DMA_CNT, 1024);
        wr32(d, 0, EDU_DMA_CMD, EDU_DMA_START);
        bool ok1 = edu_wait_clear(d, EDU_DMA_CMD, EDU_DMA_START);
        wr64(d, 0, EDU_DMA_SRC, EDU_BUF_ADDR);
        wr64(d, 0, EDU_DMA_DST, 0x101000);
        wr64(d, 0, EDU_DMA_CNT, 1024);
        wr32(d, 0, EDU_DMA_CMD, EDU_DMA_START | EDU_DMA_TO_RAM);
        bool ok2 = edu_wait_clear(d, EDU_DMA_CMD, EDU_DMA_START);
        check(ok1 && ok2 && memcmp(mem, mem + 4096, 1024) == 0 && mem[4096 + 1024] == 0,
              "edu DMA: 1 KiB RAM -> device -> RAM through the IOMMU mapping");

        /* type1v2 unmap rules the sim models */
        rc = hv_dma_unmap(d, 0x101000, 4096, 0);
        check(rc == -EINVAL, "unmap bisecting a mapping -> -EINVAL (%d)", rc);
        rc = hv_dma_unmap(d, 0x100000, 2 * 4096, 0);
        check(rc == 0, "exact unmap (%d)", rc);
        rc = hv_dma_unmap(d, 0x100000, 2 * 4096, 0);
        check(rc == 0, "unmap of nothing succeeds (%d)", rc);
        int a = hv_dma_map(d, 0x100000, mem, 4096, HV_DMA_READ);
        int b = hv_dma_map(d, 0x101000, mem + 4096, 4096, HV_DMA_READ);
        int c = hv_dma_unmap(d, 0x0f0000, 0x20000, 0);
        int again = hv_dma_map(d, 0x100000, mem, 4096, HV_DMA_READ);
        check(a == 0 && b == 0 && c == 0 && again == 0,
              "one unmap covering two whole mappings removes both (%d %d %d %d)", a, b, c,
              again);
        /* an unmap cutting the second of two mappings removes neither */
        a = hv_dma_map(d, 0x102000, mem + 2 * 4096, 2 * 4096, HV_DMA_READ);
        c = hv_dma_unmap(d, 0x100000, 0x3000, 0);
        b = hv_dma_map(d, 0x100000, mem, 4096, HV_DMA_READ);
        check(a == 0 && c == -EINVAL && b == -EEXIST,
              "an unmap cutting the last mapping it reaches changes nothing (%d %d %d)", a, c, b);
        rc = hv_dma_unmap(d, 0, 0, HV_DMA_UNMAP_ALL);
        int after = hv_dma_map(d, 0x100000, mem, 4096, HV_DMA_READ);
        check(rc == 0 && after == 0, "unmap-all (%d), the range is free again (%d)", rc, after);
        hv_dma_unmap(d, 0, 0, HV_DMA_UNMAP_ALL);

        /* the memfd mapped by fd and offset (IOMMU_IOAS_MAP_FILE): the
         * device reaches it with no mapping of it in this process's view */
        if (ifd_mode() && hv_iommufd_has_map_file(d->iommu)) {
            memset(mem + 3 * 4096, 0, 4096);
            rc = hv_dma_map_file(d, 0x400000, memfd, 0, 4 * 4096, HV_DMA_READ | HV_DMA_WRITE);
            check(rc == 0, "DMA map of the memfd by fd at IOVA 0x400000 (%d)", rc);
            rc = hv_dma_map_file(d, 0x402000, memfd, 0, 4096, HV_DMA_READ);
            check(rc == -EEXIST, "overlapping map by fd -> -EEXIST (%d)", rc);
            wr64(d, 0, EDU_DMA_SRC, 0x400000);
            wr64(d, 0, EDU_DMA_DST, EDU_BUF_ADDR);
            wr64(d, 0, EDU_DMA_CNT, 1024);
            wr32(d, 0, EDU_DMA_CMD, EDU_DMA_START);
            ok1 = edu_wait_clear(d, EDU_DMA_CMD, EDU_DMA_START);
            wr64(d, 0, EDU_DMA_SRC, EDU_BUF_ADDR);
            wr64(d, 0, EDU_DMA_DST, 0x403000);
            wr64(d, 0, EDU_DMA_CNT, 1024);
            wr32(d, 0, EDU_DMA_CMD, EDU_DMA_START | EDU_DMA_TO_RAM);
            ok2 = edu_wait_clear(d, EDU_DMA_CMD, EDU_DMA_START);
            check(ok1 && ok2 && memcmp(mem, mem + 3 * 4096, 1024) == 0,
                  "edu DMA: 1 KiB RAM -> device -> RAM through a mapping by fd");
            rc = hv_dma_unmap(d, 0x400000, 4 * 4096, 0);
            check(rc == 0, "unmap of the mapping by fd (%d)", rc);
        } else if (ifd_mode()) {
            info("this kernel has no IOMMU_IOAS_MAP_FILE");
        } else {
            rc = hv_dma_map_file(d, 0x400000, memfd, 0, 4096, HV_DMA_READ);
            check(rc == -ENOTSUP, "type1 maps no file by fd (%d)", rc);
        }
        munmap(mem, len);
    }
    if (memfd >= 0)
        close(memfd);

    /* MSI on an eventfd through SET_IRQS, raised by register 0x60. */
    int efd = eventfd(0, EFD_CLOEXEC);
    int32_t fd32 = efd;
    rc = hv_set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                          VFIO_PCI_MSI_IRQ_INDEX, 0, 1, &fd32);
    check(rc == 0, "SET_IRQS MSI eventfd (%d)", rc);
    wr32(d, 0, EDU_IRQ_RAISE, 1);
    struct pollfd p = { .fd = efd, .events = POLLIN };
    uint64_t cnt = 0;
    int pr = poll(&p, 1, 5000);
    if (pr == 1 && read(efd, &cnt, 8) != 8)
        cnt = 0;
    check(pr == 1 && cnt >= 1, "edu MSI arrived on the eventfd (count %" PRIu64 ")", cnt);
    wr32(d, 0, EDU_IRQ_ACK, 1);
    rc = hv_set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                          VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &fd32);
    check(rc == -EINVAL, "INTx refused while MSI is enabled (%d)", rc);
    rc = hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                          VFIO_PCI_MSI_IRQ_INDEX, 0, 0, NULL);
    check(rc == 0, "MSI disabled (%d)", rc);
    rc = hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                          VFIO_PCI_MSI_IRQ_INDEX, 0, 0, NULL);
    check(rc == -EINVAL, "disabling MSI again -> -EINVAL (%d)", rc);
    close(efd);

    check(hv_reset(d) == -ENOTTY, "edu: reset -> -ENOTTY (no RESET flag)");

    /* A second open of the same group (type1) or cdev (iommufd) must fail
     * clearly. */
    struct hv_device *d2 = NULL;
    rc = open_dev(addr, &d2, &e);
    check(rc == -EBUSY && d2 == NULL && strstr(e.msg, "busy") && strstr(e.msg, addr),
          "double open refused: %s", e.msg);
    hv_close(d);

    rc = open_dev(addr, &d2, &e);
    check(rc == 0, "edu opens again after close (%s)", rc ? e.msg : "ok");
    hv_close(d2);
}

static void nvme_tests(const char *addr)
{
    struct vub_err e = { "" };
    struct hv_device *d = NULL;

    int rc = open_dev(addr, &d, &e);
    if (!check(rc == 0, "open nvme %s through %s (%s)", addr, kind, rc ? e.msg : "ok"))
        return;
    struct hv_device_info di;
    rc = hv_get_info(d, &di);
    check(rc == 0 && di.num_regions == 9 && di.num_irqs == 5 &&
              (di.flags & VFIO_DEVICE_FLAGS_RESET),
          "nvme: %u regions, %u irqs, flags %#x (RESET)", di.num_regions, di.num_irqs, di.flags);

    struct hv_region_info *ri = calloc(1, sizeof(*ri));
    rc = hv_get_region_info(d, 0, ri);
    check(rc == 0 && ri->size == 16384 && (ri->flags & VFIO_REGION_INFO_FLAG_MMAP) &&
              (ri->flags & VFIO_REGION_INFO_FLAG_CAPS),
          "nvme: BAR0 %#" PRIx64 " bytes, flags %#x", ri->size, ri->flags);
    check(ri->cap_offset == 32 && chain_has(ri, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE),
          "nvme: MSIX_MAPPABLE cap in the raw chain (cap_offset %u, %u bytes)", ri->cap_offset,
          ri->caps_len);
    rc = hv_get_region_info(d, 7, ri);
    check(rc == 0 && ri->size == 4096, "nvme: config region %#" PRIx64 " bytes", ri->size);
    free(ri);

    struct hv_irq_info ii;
    rc = hv_get_irq_info(d, VFIO_PCI_MSIX_IRQ_INDEX, &ii);
    check(rc == 0 && ii.count == 65, "nvme: MSI-X count %u, flags %#x", ii.count, ii.flags);
    bool noresize = ii.flags & VFIO_IRQ_INFO_NORESIZE;
    rc = hv_get_irq_info(d, VFIO_PCI_MSI_IRQ_INDEX, &ii);
    info("nvme MSI count %u flags %#x", ii.count, ii.flags);

    /* MSI-X is sized on the first enable; a later chunk past it is refused. */
    int efd = eventfd(0, EFD_CLOEXEC);
    int32_t fds[2] = { efd, efd };
    rc = hv_set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                          VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, fds);
    check(rc == 0, "nvme: MSI-X enabled with 2 vectors (%d)", rc);
    rc = hv_set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                          VFIO_PCI_MSIX_IRQ_INDEX, 2, 2, fds);
    if (noresize)
        check(rc == -EINVAL, "nvme: extending MSI-X past its first size -> -EINVAL (%d)", rc);
    else
        info("MSI-X without NORESIZE: extension gave %d", rc);
    int32_t off[2] = { -1, -1 };
    rc = hv_set_irqs(d, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                          VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, off);
    check(rc == 0, "nvme: -1 entries de-assign (%d)", rc);
    rc = hv_set_irqs(d, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                          VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, NULL);
    check(rc == 0, "nvme: MSI-X disabled (%d)", rc);
    close(efd);

    rc = hv_reset(d);
    check(rc == 0, "nvme: VFIO_DEVICE_RESET (%d)", rc);
    ssize_t r;
    uint32_t ids = rd32(d, 7, 0, &r);
    check(r == 4 && ids == 0x00101b36, "nvme: config ids %08x after reset", ids);
    hv_close(d);
}

/* edu and nvme opened in one new type1 context (the devices hold it); on
 * failure nothing stays open. */
static bool open_pair(const char *edu, const char *nvme, struct hv_device **a,
                      struct hv_device **b, const char *what)
{
    struct vub_err e = { "" };
    struct hv_iommu *io = NULL;
    int rc = new_context(&io, &e);
    if (!check(rc == 0, "a %s context (%s)", kind, rc ? e.msg : "ok"))
        return false;
    rc = hv_vfio_open(io, edu, a, &e);
    if (rc == 0)
        rc = hv_vfio_open(io, nvme, b, &e);
    hv_iommu_put(io);
    if (!check(rc == 0, "%s (%s)", what, rc ? e.msg : "ok")) {
        hv_close(*a);
        *a = NULL;
        return false;
    }
    return true;
}

/* Two functions of different groups in one type1 container (the shape
 * issue 15 needs: several devices, one IOMMU address space): a mapping made
 * through one is there for the other and outlives the first one's close,
 * and a closed device's group is free for a container of its own. */
static void shared_container(const char *edu, const char *nvme)
{
    struct vub_err e = { "" };
    struct hv_device *a = NULL, *b = NULL;
    int rc;
    if (!open_pair(edu, nvme, &a, &b, "edu and nvme attached to one container"))
        return;
    check(a->iommu == b->iommu && a->group != b->group && strcmp(hv_iommu_kind(b), kind) == 0,
          "one %s context for groups %d and %d", hv_iommu_kind(b), a->group, b->group);
    uint8_t *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (check(mem != MAP_FAILED, "memory for the shared container")) {
        int m = hv_dma_map(a, 0x100000, mem, 4096, HV_DMA_READ | HV_DMA_WRITE);
        int x = hv_dma_map(b, 0x100000, mem, 4096, HV_DMA_READ | HV_DMA_WRITE);
        check(m == 0 && x == -EEXIST, "a mapping made through edu is there for nvme (%d, %d)", m,
              x);
        hv_close(a);
        a = NULL;
        x = hv_dma_map(b, 0x100000, mem, 4096, HV_DMA_READ | HV_DMA_WRITE);
        int u = hv_dma_unmap(b, 0x100000, 4096, 0);
        int again = hv_dma_map(b, 0x100000, mem, 4096, HV_DMA_READ | HV_DMA_WRITE);
        check(x == -EEXIST && u == 0 && again == 0,
              "the mapping outlives edu's close; nvme unmaps it (%d %d %d)", x, u, again);
        hv_dma_unmap(b, 0, 0, HV_DMA_UNMAP_ALL);
        munmap(mem, 4096);
    }
    hv_close(a);
    struct hv_device *alone = NULL;
    rc = open_dev(edu, &alone, &e);
    check(rc == 0, "edu's group is free again while nvme stays in the container (%s)",
          rc ? e.msg : "ok");
    hv_close(alone);
    hv_close(b);
}

/* The scope of a hot reset of edu's bus (behind the shared topology's
 * bridge): edu and nvme, both in edu's group (a cdev's kernel reports
 * iommufd device ids where a group file's reports group numbers: the
 * numbers then come from sysfs); and the reset itself (type1: with the
 * group's file; iommufd: no files, the kernel checks that every function
 * is bound to the context or in the group of one that is). */
static void bus_reset(struct hv_device *d, const char *nvme, const char *what)
{
    struct vub_err e = { "" };
    struct hv_reset_dep deps[HV_MAX_RESET_DEPS];
    size_t n = 0;
    int rc = hv_hot_reset_info(d, deps, HV_MAX_RESET_DEPS, &n);
    bool self = false, other = false, groups = n > 0;
    char list[256] = "";
    for (size_t i = 0; rc == 0 && i < n; i++) {
        self |= strcmp(deps[i].addr, d->addr) == 0;
        other |= strcmp(deps[i].addr, nvme) == 0;
        groups &= deps[i].group == d->group;
        size_t l = strlen(list);
        if (snprintf(list + l, sizeof(list) - l, "%s%s group %d", i ? ", " : "", deps[i].addr,
                     deps[i].group) < 0)
            break;
    }
    check(rc == 0 && self && other && groups, "%s: a reset of edu's bus resets %s (want edu and "
          "nvme, both in group %d; rc %d)", what, list, d->group, rc);
    rc = hv_hot_reset(d, &e);
    check(rc == 0, "%s: the hot reset of edu's bus (%s)", what, rc ? e.msg : "done");
}

/* Two functions of one IOMMU group (testbed --topology shared): one group
 * file (type1) or one iommufd (iommufd), both device fds in one context; a
 * mapping through one is the other's; the group is one context's, and a
 * second open of it is refused naming the group's other members; closing
 * one function keeps the group for the other, closing both frees it; the
 * bus resets with both open, and with edu alone. */
static void same_group(const char *edu, const char *nvme)
{
    struct vub_err e = { "" };
    struct hv_device *a = NULL, *b = NULL, *c = NULL;
    ssize_t r;
    int rc;
    if (!open_pair(edu, nvme, &a, &b, "edu and nvme of one group opened in one context"))
        return;
    check(a->group >= 0 && a->group == b->group && a->iommu == b->iommu,
          "one group (%d, %d), one container", a->group, b->group);
    bus_reset(a, nvme, "both open");
    rc = open_dev(nvme, &c, &e);
    info("a second open of the group: %s", e.msg);
    check(rc == -EBUSY && c == NULL && strstr(e.msg, "is busy") &&
              strstr(e.msg, "the group also holds") && strstr(e.msg, edu),
          "a second context cannot take the held group; the error names its other members");
    uint32_t ida = rd32(a, 7, 0, &r);
    uint32_t idb = rd32(b, 7, 0, &r);
    check(ida == 0x11e81234 && idb == 0x00101b36, "both functions answer (%08x, %08x)", ida,
          idb);
    uint8_t *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (check(mem != MAP_FAILED, "memory for the group's container")) {
        int m = hv_dma_map(a, 0x200000, mem, 4096, HV_DMA_READ | HV_DMA_WRITE);
        int x = hv_dma_map(b, 0x200000, mem, 4096, HV_DMA_READ | HV_DMA_WRITE);
        check(m == 0 && x == -EEXIST, "one IOMMU address space for the group (%d, %d)", m, x);
        hv_close(a);
        a = NULL;
        idb = rd32(b, 7, 0, &r);
        x = hv_dma_map(b, 0x200000, mem, 4096, HV_DMA_READ | HV_DMA_WRITE);
        check(r == 4 && idb == 0x00101b36 && x == -EEXIST,
              "edu closed: nvme still answers and the mapping stays (%08x, %d)", idb, x);
        check(hv_dma_unmap(b, 0, 0, HV_DMA_UNMAP_ALL) == 0, "unmap all through nvme");
        munmap(mem, 4096);
    }
    hv_close(a);
    hv_close(b);
    rc = open_dev(edu, &c, &e);
    check(rc == 0, "both closed: the group opens again (%s)", rc ? e.msg : "ok");
    if (rc == 0)
        bus_reset(c, nvme, "edu alone");
    hv_close(c);
}

static void error_paths(const char *edu)
{
    struct vub_err e = { "" };
    struct hv_device *d = NULL;
    struct hv_list_entry *l = NULL;
    size_t n = 0;

    int rc = hv_list(NULL, &l, &n, &e);
    check(rc == 0 && n > 2, "hv_list: %zu functions", n);
    const struct hv_list_entry *other = NULL, *me = NULL;
    for (size_t i = 0; i < n; i++) {
        info("%s %04x:%04x %-10s group %3d %s %s", l[i].addr, l[i].id.vendor, l[i].id.device,
             l[i].driver[0] ? l[i].driver : "-", l[i].group,
             l[i].exportable ? "exportable" : "no:", l[i].why);
        if (!other && l[i].driver[0] && strcmp(l[i].driver, "vfio-pci") != 0)
            other = &l[i];
        if (strcmp(l[i].addr, edu) == 0)
            me = &l[i];
    }
    check(me && me->exportable && strcmp(me->driver, "vfio-pci") == 0 && me->group >= 0 &&
              me->id.vendor == 0x1234 && me->id.device == 0x11e8,
          "hv_list: edu is exportable on vfio-pci");
    check(me && (ifd_mode() ? strncmp(me->cdev, "vfio", 4) == 0 : me->cdev[0] == '\0'),
          "hv_list: edu's VFIO cdev '%s'", me ? me->cdev : "?");
    if (other) {
        char want[160];
        snprintf(want, sizeof(want), "%s is bound to %s, not vfio-pci", other->addr,
                 other->driver);
        rc = open_dev(other->addr, &d, &e);
        check(rc == -EBUSY && d == NULL && strcmp(e.msg, want) == 0,
              "opening a non-vfio function: %s", e.msg);
    } else {
        check(false, "a function bound to another driver to try");
    }
    rc = open_dev("0000:00:1f.6", &d, &e);
    check(rc == -ENODEV && strstr(e.msg, "no PCI function 0000:00:1f.6"),
          "opening a missing function: %s", e.msg);
    free(l);

    struct hv_pci_ident id;
    rc = hv_pci_identify(edu, &id, &e);
    check(rc == 0 && id.vendor == 0x1234 && id.device == 0x11e8 && id.class_code == 0x00ff00,
          "libpci identity of edu: %04x:%04x class %06x (%s / %s)", id.vendor, id.device,
          id.class_code, id.vendor_name, id.device_name);
}

/* Release edu from vfio-pci and bind it back (it has no other driver). */
static void bind_cycle(const char *edu)
{
    struct vub_err e = { "" };
    char drv[64], prev[64];
    int rc = hv_release(NULL, edu, "", &e);
    int r2 = hv_sysfs_driver(NULL, edu, drv, sizeof(drv));
    check(rc == 0 && r2 == 0 && drv[0] == '\0', "hv_release: edu unbound (driver '%s') %s", drv,
          rc ? e.msg : "");
    rc = hv_bind_vfio(NULL, edu, prev, sizeof(prev), &e);
    r2 = hv_sysfs_driver(NULL, edu, drv, sizeof(drv));
    check(rc == 0 && strcmp(drv, "vfio-pci") == 0 && prev[0] == '\0',
          "hv_bind_vfio: edu back on vfio-pci %s", rc ? e.msg : "");
    struct hv_device *d = NULL;
    rc = open_dev(edu, &d, &e);
    check(rc == 0, "edu opens after the bind cycle (%s)", rc ? e.msg : "ok");
    hv_close(d);
}

int main(int argc, char **argv)
{
    const char *k = getenv("VUB_IOMMU");
    if (k && strcmp(k, "iommufd") == 0)
        kind = "iommufd";
    else if (k && strcmp(k, "iommufd-group") == 0)
        kind = "iommufd-group";
    else if (k && *k && strcmp(k, "type1") != 0) {
        fprintf(stderr, "VUB_IOMMU=%s: want type1, iommufd or iommufd-group\n", k);
        return 2;
    }
    if (argc == 4 && strcmp(argv[1], "--same-group") == 0) {
        same_group(argv[2], argv[3]);
        printf("%d passed, %d failed\n", checks - fails, fails);
        return fails == 0 && checks > 0 ? 0 : 1;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s EDU_ADDR NVME_ADDR\n"
                "       %s --same-group EDU_ADDR NVME_ADDR\n", argv[0], argv[0]);
        return 2;
    }
    edu_tests(argv[1]);
    nvme_tests(argv[2]);
    shared_container(argv[1], argv[2]);
    error_paths(argv[1]);
    bind_cycle(argv[1]);
    printf("%d passed, %d failed\n", checks - fails, fails);
    return fails == 0 && checks > 0 ? 0 : 1;
}
