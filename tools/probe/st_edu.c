/* SPDX-License-Identifier: MIT */
/* st_edu.c - drive QEMU's edu device (1234:11e8) through a vfio-user server:
 * registers over the socket and through the mmapped BAR, the factorial unit,
 * DMA into client memory, MSI and INTx on the client's eventfds, reset. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "edu_regs.h"
#include "probe.h"


/* QEMU's edu (7.2) aborts the whole VM on a transfer that ends exactly at
 * the end of its 4 KiB buffer (off by one in its range check): stay inside. */
#define XFER 2048u
#define DMA_IOVA 0x100000u     /* below the edu's 28-bit DMA mask */
#define DMA_LEN 8192u
#define IRQ_WAIT_MS 5000
#define QUIET_MS 300

static const uint32_t BAR0 = VU_PCI_BAR0_REGION_INDEX;
static const uint32_t CFG = VU_PCI_CONFIG_REGION_INDEX;

static bool wait_clear(struct st *t, uint64_t reg, uint32_t bit, int ms)
{
    uint64_t end = st_now_ms() + (uint64_t)ms;
    uint32_t v = 0;
    do {
        if (st_rd32(t, BAR0, reg, &v) < 0)
            return false;
        if (!(v & bit))
            return true;
        usleep(2000);
    } while (st_now_ms() < end);
    return false;
}

/* Run one DMA transfer and wait for the engine to finish. */
static bool edu_dma(struct st *t, uint32_t src, uint32_t dst, uint32_t cnt, uint32_t cmd)
{
    if (st_wr32(t, BAR0, EDU_DMA_SRC, src) || st_wr32(t, BAR0, EDU_DMA_DST, dst) ||
        st_wr32(t, BAR0, EDU_DMA_CNT, cnt) || st_wr32(t, BAR0, EDU_DMA_CMD, cmd | EDU_DMA_START))
        return false;
    return wait_clear(t, EDU_DMA_CMD, EDU_DMA_START, 5000);
}

static int set_eventfd(struct st *t, uint32_t index, int efd)
{
    return vu_client_set_irqs(t->c, VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER, index, 0, 1,
                              &efd, 1, NULL);
}

static int irq_off(struct st *t, uint32_t index)
{
    return vu_client_set_irqs(t->c, VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_TRIGGER, index, 0, 0,
                              NULL, 0, NULL);
}

static void test_registers(struct st *t, bool expect_no_mmap)
{
    uint32_t v = 0;
    bool ok = st_rd32(t, BAR0, EDU_ID, &v) == 0;
    st_check(t, ok && v == EDU_ID_VALUE, "REGION_READ id register = 0x%08x (want 0x%08x)", v, EDU_ID_VALUE);
    v = 0;
    ok = st_wr32(t, BAR0, EDU_LIVENESS, 0x12345678u) == 0 && st_rd32(t, BAR0, EDU_LIVENESS, &v) == 0;
    st_check(t, ok && v == ~0x12345678u, "REGION_WRITE/READ liveness: wrote 0x12345678, read 0x%08x", v);

    struct st_map m;
    struct vu_client_region ri;
    int rc = st_map_region(t, BAR0, &m, &ri);
    if (expect_no_mmap) {
        st_check(t, rc == 0 && !m.p && !(ri.info.flags & VU_REGION_INFO_FLAG_MMAP),
                 "BAR0 is not offered for mmap (--expect-no-mmap)");
        st_unmap(&m);
        return;
    }
    if (!st_check(t, rc == 0 && m.p, "BAR0 mmapped through the reply's fd (%s)",
                  rc ? strerror(-rc) : m.p ? "ok" : "no MMAP flag"))
        return;
    volatile uint32_t *r = (volatile uint32_t *)m.p;
    uint32_t id = r[EDU_ID / 4];
    st_check(t, id == EDU_ID_VALUE, "mmapped id register = 0x%08x", id);
    r[EDU_LIVENESS / 4] = 0xa5a5f00du;
    v = 0;
    ok = st_rd32(t, BAR0, EDU_LIVENESS, &v) == 0;
    st_check(t, ok && v == ~0xa5a5f00du, "liveness written through mmap, REGION_READ gives 0x%08x", v);
    st_wr32(t, BAR0, EDU_LIVENESS, 0x0badcafeu);
    v = r[EDU_LIVENESS / 4];
    st_check(t, v == ~0x0badcafeu, "liveness written by REGION_WRITE, mmap reads 0x%08x", v);
    st_unmap(&m);
}

static void test_factorial(struct st *t)
{
    uint32_t v = 0;
    bool ok = st_wr32(t, BAR0, EDU_FACT, 10) == 0 && wait_clear(t, EDU_STATUS, EDU_STATUS_BUSY, 5000) &&
              st_rd32(t, BAR0, EDU_FACT, &v) == 0;
    st_check(t, ok && v == 3628800u, "factorial of 10 = %u", v);
}

/* DMA both ways with an MSI on completion. (The kernel keeps the MSI enable
 * bit of the config space virtual: it does not show what SET_IRQS did.) */
static void test_dma_msi(struct st *t, bool hold)
{
    struct st_mem mem;
    uint16_t cmd = 0;
    int efd = -1;

    if (!st_check(t, st_mem_alloc(&mem, DMA_LEN) == 0, "memfd of %u bytes for DMA", DMA_LEN))
        return;
    for (uint32_t i = 0; i < XFER; i++)
        mem.p[i] = (uint8_t)(i * 7 + 3);

    bool ok = st_rd16(t, CFG, 4, &cmd) == 0 && st_wr16(t, CFG, 4, cmd | 0x6) == 0 && st_rd16(t, CFG, 4, &cmd) == 0;
    st_check(t, ok && (cmd & 0x4), "bus master enabled in config space (command 0x%04x)", cmd);
    int rc = vu_client_dma_map(t->c, DMA_IOVA, DMA_LEN, mem.fd, 0,
                               VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE);
    if (!st_check(t, rc == 0, "DMA_MAP memfd at IOVA 0x%x (%s)", DMA_IOVA, rc ? vu_client_error(t->c) : "ok"))
        goto out;

    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rc = set_eventfd(t, VU_PCI_MSI_IRQ_INDEX, efd);
    st_check(t, rc == 0, "SET_IRQS MSI vector 0 -> our eventfd (%s)", rc ? vu_client_error(t->c) : "ok");

    st_check(t, edu_dma(t, DMA_IOVA, EDU_BUF_ADDR, XFER, 0), "DMA client memory -> device done");
    memset(mem.p + 4096, 0, 4096);
    bool done = edu_dma(t, EDU_BUF_ADDR, DMA_IOVA + 4096, XFER, EDU_DMA_TO_RAM | EDU_DMA_IRQ);
    st_check(t, done, "DMA device -> client memory done");
    int64_t n = st_wait_eventfd(efd, IRQ_WAIT_MS);
    st_check(t, n > 0, "MSI of the DMA completion arrived on our eventfd");
    st_check(t, memcmp(mem.p, mem.p + 4096, XFER) == 0, "%u bytes came back through the device intact", XFER);
    st_wr32(t, BAR0, EDU_IRQ_ACK, EDU_IRQ_DMA);

    st_wr32(t, BAR0, EDU_IRQ_RAISE, 1);
    n = st_wait_eventfd(efd, IRQ_WAIT_MS);
    st_check(t, n > 0, "MSI raised by the raise register arrived");
    st_wr32(t, BAR0, EDU_IRQ_ACK, 1);

    if (hold) {
        printf("holding: DMA mapped at IOVA 0x%x, MSI armed; waiting to be killed\n", DMA_IOVA);
        fflush(stdout);
        for (;;)
            pause();
    }

    st_info(t, "next: the device writes to an unmapped IOVA; the kernel may log an IOMMU (DMAR) fault");
    rc = vu_client_dma_unmap(t->c, DMA_IOVA, DMA_LEN, 0);
    st_check(t, rc == 0, "DMA_UNMAP (%s)", rc ? vu_client_error(t->c) : "ok");
    memset(mem.p + 4096, 0, 4096);
    edu_dma(t, EDU_BUF_ADDR, DMA_IOVA + 4096, XFER, EDU_DMA_TO_RAM);
    bool untouched = true;
    for (uint32_t i = 4096; i < DMA_LEN; i++)
        untouched &= mem.p[i] == 0;
    st_check(t, untouched, "after DMA_UNMAP the device can no longer write our memory");

    rc = irq_off(t, VU_PCI_MSI_IRQ_INDEX);
    st_check(t, rc == 0, "MSI disabled again (%s)", rc ? vu_client_error(t->c) : "ok");
out:
    if (efd >= 0)
        close(efd);
    st_mem_free(&mem);
}

static void test_intx(struct st *t)
{
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = set_eventfd(t, VU_PCI_INTX_IRQ_INDEX, efd);
    if (!st_check(t, rc == 0, "SET_IRQS INTx -> our eventfd (%s)", rc ? vu_client_error(t->c) : "ok"))
        goto out;
    st_wr32(t, BAR0, EDU_IRQ_RAISE, 1);
    st_check(t, st_wait_eventfd(efd, IRQ_WAIT_MS) > 0, "INTx arrived on our eventfd");
    st_wr32(t, BAR0, EDU_IRQ_ACK, 1);
    st_wr32(t, BAR0, EDU_IRQ_RAISE, 1);
    st_check(t, st_wait_eventfd(efd, QUIET_MS) == 0, "INTx stays masked until unmasked");
    rc = vu_client_set_irqs(t->c, VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_UNMASK, VU_PCI_INTX_IRQ_INDEX,
                            0, 1, NULL, 0, NULL);
    st_check(t, rc == 0 && st_wait_eventfd(efd, IRQ_WAIT_MS) > 0,
             "after UNMASK the pending INTx arrives (%s)", rc ? vu_client_error(t->c) : "ok");
    st_wr32(t, BAR0, EDU_IRQ_ACK, 1);
    vu_client_set_irqs(t->c, VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_UNMASK, VU_PCI_INTX_IRQ_INDEX, 0, 1,
                       NULL, 0, NULL);
    st_check(t, irq_off(t, VU_PCI_INTX_IRQ_INDEX) == 0, "INTx disabled again");
out:
    close(efd);
}

static void test_reset(struct st *t, uint32_t dev_flags)
{
    int rc = vu_client_reset(t->c);
    uint32_t v = 0;
    if (dev_flags & VU_DEVICE_FLAGS_RESET)
        st_check(t, rc == 0, "DEVICE_RESET succeeds (%s)", rc ? vu_client_error(t->c) : "ok");
    else
        st_check(t, rc < 0, "DEVICE_RESET refused: the device has no reset (%s)",
                 rc < 0 ? strerror(-rc) : "it succeeded");
    bool ok = st_rd32(t, BAR0, EDU_ID, &v) == 0;
    st_check(t, ok && v == EDU_ID_VALUE, "the device still answers after the reset request");
}

int selftest_edu(struct vu_client *c, const struct probe_opts *o)
{
    struct st t = {.c = c, .o = o};
    struct vu_device_info di;
    struct vu_client_region ri;
    uint8_t cfg[256];
    struct pv_config pc;

    int rc = vu_client_get_info(c, &di);
    st_check(&t, rc == 0 && (di.flags & VU_DEVICE_FLAGS_PCI) && di.num_regions >= VU_PCI_NUM_REGIONS &&
                     di.num_irqs >= 2,
             "DEVICE_GET_INFO: PCI device, %u regions, %u IRQ indexes", di.num_regions, di.num_irqs);
    if (rc)
        return st_finish(&t);
    rc = probe_read_config(c, cfg, sizeof(cfg));
    pv_config_decode(cfg, sizeof(cfg), &pc);
    if (!st_check(&t, rc == 0 && pc.vendor == 0x1234 && pc.device == 0x11e8, "config space says %04x:%04x",
                  pc.vendor, pc.device))
        return st_finish(&t);
    st_check(&t, pv_config_find(&pc, false, 0x05) != NULL, "config space lists an MSI capability");

    ri.fd = -1;
    rc = vu_client_get_region_info(c, BAR0, 0, &ri);
    if (ri.fd >= 0)
        close(ri.fd);
    st_check(&t, rc == 0 && ri.info.size == EDU_BAR_SIZE &&
                     (ri.info.flags & (VU_REGION_INFO_FLAG_READ | VU_REGION_INFO_FLAG_WRITE)) ==
                         (VU_REGION_INFO_FLAG_READ | VU_REGION_INFO_FLAG_WRITE),
             "BAR0: 1 MiB, readable and writable");
    struct vu_irq_info ii;
    rc = vu_client_get_irq_info(c, VU_PCI_INTX_IRQ_INDEX, &ii);
    st_check(&t, rc == 0 && ii.count == 1 && (ii.flags & VU_IRQ_INFO_EVENTFD) && (ii.flags & VU_IRQ_INFO_MASKABLE),
             "INTx: 1 vector, eventfd, maskable");
    rc = vu_client_get_irq_info(c, VU_PCI_MSI_IRQ_INDEX, &ii);
    st_check(&t, rc == 0 && ii.count == 1 && (ii.flags & VU_IRQ_INFO_EVENTFD), "MSI: 1 vector, eventfd");

    test_registers(&t, o->expect_no_mmap);
    test_factorial(&t);
    test_dma_msi(&t, o->hold);
    test_intx(&t);
    test_reset(&t, di.flags);
    return st_finish(&t);
}
