/* SPDX-License-Identifier: MIT */
/* st_nvme.c - drive an NVMe controller (QEMU's 1b36:0010) through a
 * vfio-user server: admin queues in client memory, doorbells through the
 * mmapped BAR, IDENTIFY by DMA, completions on MSI-X eventfds, optionally a
 * READ of LBA 0 through an I/O queue pair, and a reset. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "probe.h"

#define NVME_CAP 0x00
#define NVME_VS 0x08
#define NVME_CC 0x14
#define NVME_CSTS 0x1c
#define NVME_AQA 0x24
#define NVME_ASQ 0x28
#define NVME_ACQ 0x30
#define NVME_DB 0x1000

#define QDEPTH 16u
#define IOVA 0x2000000u        /* 32 MiB: any usable IOVA would do */
/* pages of client memory */
#define PG_ASQ 0
#define PG_ACQ 1
#define PG_IDENT 2
#define PG_IOSQ 3
#define PG_IOCQ 4
#define PG_DATA 5
#define NPAGES 6
#define PAGE 4096u
#define CQE_WAIT_MS 5000

static const uint32_t BAR0 = VU_PCI_BAR0_REGION_INDEX;
static const uint32_t CFG = VU_PCI_CONFIG_REGION_INDEX;

struct nvme {
    struct st *t;
    struct st_map bar;        /* doorbells through here when mapped */
    struct st_mem mem;
    uint32_t dstrd;           /* doorbell stride in bytes */
    int efd[2];               /* MSI-X vectors 0 (admin) and 1 (I/O) */
    uint16_t sq_tail[2], cq_head[2];
    uint8_t phase[2];
    uint16_t next_cid;
};

static uint64_t iova_of(int page)
{
    return IOVA + (uint64_t)page * PAGE;
}

static int wr64(struct st *t, uint64_t off, uint64_t v)
{
    int rc = st_wr32(t, BAR0, off, (uint32_t)v);
    return rc ? rc : st_wr32(t, BAR0, off + 4, (uint32_t)(v >> 32));
}

static int rd64(struct st *t, uint64_t off, uint64_t *v)
{
    uint32_t lo = 0, hi = 0;
    int rc = st_rd32(t, BAR0, off, &lo);
    if (!rc)
        rc = st_rd32(t, BAR0, off + 4, &hi);
    *v = lo | (uint64_t)hi << 32;
    return rc;
}

static void doorbell(struct nvme *n, uint32_t idx, uint32_t val)
{
    uint64_t off = NVME_DB + idx * n->dstrd;
    if (n->bar.p)
        *(volatile uint32_t *)(n->bar.p + off) = val;
    else
        st_wr32(n->t, BAR0, off, val);
}

static bool wait_csts(struct st *t, uint32_t want_rdy, int ms)
{
    uint64_t end = st_now_ms() + (uint64_t)ms;
    uint32_t v = 0;
    do {
        if (st_rd32(t, BAR0, NVME_CSTS, &v) < 0)
            return false;
        if ((v & 1) == want_rdy && !(v & 2))
            return true;
        usleep(5000);
    } while (st_now_ms() < end);
    return false;
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* Submit one command on queue q (0 admin, 1 I/O), wait for its completion
 * on vector q, return the status field (0 = success) or -1 on no answer. */
static int submit(struct nvme *n, int q, uint8_t opc, uint32_t nsid, uint64_t prp1, uint32_t cdw10,
                  uint32_t cdw11, uint32_t cdw12, const char *what)
{
    struct st *t = n->t;
    uint8_t *sq = n->mem.p + (q ? PG_IOSQ : PG_ASQ) * PAGE;
    uint8_t *cq = n->mem.p + (q ? PG_IOCQ : PG_ACQ) * PAGE;
    uint16_t cid = ++n->next_cid;
    uint8_t *e = sq + 64u * n->sq_tail[q];

    memset(e, 0, 64);
    put32(e, opc | (uint32_t)cid << 16);
    put32(e + 4, nsid);
    put64(e + 24, prp1);
    put32(e + 40, cdw10);
    put32(e + 44, cdw11);
    put32(e + 48, cdw12);
    n->sq_tail[q] = (uint16_t)((n->sq_tail[q] + 1) % QDEPTH);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    doorbell(n, 2u * (uint32_t)q, n->sq_tail[q]);

    int64_t fired = st_wait_eventfd(n->efd[q], CQE_WAIT_MS);
    st_check(t, fired > 0, "%s: completion signalled on MSI-X vector %d", what, q);

    volatile uint8_t *c = cq + 16u * n->cq_head[q];
    uint32_t dw3 = 0;
    uint64_t end = st_now_ms() + 1000;
    do { /* the entry may land just after the interrupt if it was lost */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        dw3 = c[12] | (uint32_t)c[13] << 8 | (uint32_t)c[14] << 16 | (uint32_t)c[15] << 24;
        if (((dw3 >> 16) & 1) == n->phase[q])
            break;
        usleep(1000);
    } while (st_now_ms() < end);
    bool posted = ((dw3 >> 16) & 1) == n->phase[q];
    if (!st_check(t, posted && (dw3 & 0xffff) == cid, "%s: completion entry written by DMA (cid %u)", what,
                  dw3 & 0xffff))
        return -1;
    n->cq_head[q] = (uint16_t)((n->cq_head[q] + 1) % QDEPTH);
    if (n->cq_head[q] == 0)
        n->phase[q] ^= 1;
    doorbell(n, 2u * (uint32_t)q + 1, n->cq_head[q]);
    int status = (int)(dw3 >> 17);
    st_check(t, status == 0, "%s: status 0x%x", what, status);
    return status;
}

static void trim(char *s)
{
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == 0))
        s[--l] = 0;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* BAR0 as the server describes it: MSI-X mappable, or (--sparse-msix)
 * sparse areas that leave out the MSI-X table and PBA. */
static void check_bar0(struct st *t, const struct vu_client_region *ri, const struct pv_config *pc)
{
    const struct pv_cap *mx = pv_config_find(pc, false, 0x11);
    st_check(t, ri->info.size >= 0x2000 && (ri->info.flags & 7) == 7, "BAR0: %llu bytes, READ|WRITE|MMAP",
             (unsigned long long)ri->info.size);
    if (!t->o->expect_sparse) {
        st_check(t, ri->caps.msix_mappable, "BAR0 carries the MSIX_MAPPABLE capability");
        return;
    }
    if (!st_check(t, ri->caps.has_sparse && ri->caps.nr_areas_kept > 0, "BAR0 carries %u sparse mmap areas",
                  ri->caps.nr_areas_kept) || !mx)
        return;
    uint64_t tsz = pv_cap_field(mx, "table_size")->u;
    uint64_t toff = pv_cap_field(mx, "table_offset")->u, poff = pv_cap_field(mx, "pba_offset")->u;
    bool table_bar0 = pv_cap_field(mx, "table_bir")->u == 0, pba_bar0 = pv_cap_field(mx, "pba_bir")->u == 0;
    bool clear = true, regs = false, dbs = false;
    for (uint32_t a = 0; a < ri->caps.nr_areas_kept; a++) {
        const struct vu_sparse_mmap_area *ar = &ri->caps.areas[a];
        st_info(t, "sparse area 0x%llx-0x%llx", (unsigned long long)ar->offset,
                (unsigned long long)(ar->offset + ar->size - 1));
        if (table_bar0 && overlaps(ar->offset, ar->size, toff, tsz * 16))
            clear = false;
        if (pba_bar0 && overlaps(ar->offset, ar->size, poff, (tsz + 63) / 64 * 8))
            clear = false;
        regs |= ar->offset == 0 && ar->size >= 0x40;
        dbs |= ar->offset <= NVME_DB && ar->offset + ar->size >= NVME_DB + 0x10;
    }
    st_check(t, clear, "no sparse area covers the MSI-X table (0x%llx) or PBA (0x%llx)",
             (unsigned long long)toff, (unsigned long long)poff);
    st_check(t, regs && dbs, "the registers and the doorbells are in sparse areas");
}

static void test_identify_and_read(struct nvme *n, uint64_t cap)
{
    struct st *t = n->t;
    const struct probe_opts *o = t->o;
    int rc;
    uint32_t v = 0;

    /* disable first, as a driver would */
    if (st_rd32(t, BAR0, NVME_CC, &v) == 0 && (v & 1))
        st_wr32(t, BAR0, NVME_CC, 0);
    uint32_t to_ms = (uint32_t)((cap >> 24) & 0xff) * 500;
    if (to_ms < 2000)
        to_ms = 2000;
    if (to_ms > 15000)
        to_ms = 15000;
    st_check(t, wait_csts(t, 0, (int)to_ms), "controller disabled (CSTS.RDY 0)");

    rc = vu_client_dma_map(t->c, IOVA, (uint64_t)NPAGES * PAGE, n->mem.fd, 0,
                           VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE);
    if (!st_check(t, rc == 0, "DMA_MAP %u pages of queues and buffers at IOVA 0x%x (%s)", NPAGES, IOVA,
                  rc ? vu_client_error(t->c) : "ok"))
        return;

    rc = vu_client_set_irqs(t->c, VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER, VU_PCI_MSIX_IRQ_INDEX, 0,
                            2, n->efd, 2, NULL);
    st_check(t, rc == 0, "SET_IRQS MSI-X vectors 0-1 -> our eventfds (%s)", rc ? vu_client_error(t->c) : "ok");

    n->phase[0] = n->phase[1] = 1;
    st_wr32(t, BAR0, NVME_AQA, (QDEPTH - 1) << 16 | (QDEPTH - 1));
    wr64(t, NVME_ASQ, iova_of(PG_ASQ));
    wr64(t, NVME_ACQ, iova_of(PG_ACQ));
    uint64_t asq = 0;
    rd64(t, NVME_ASQ, &asq);
    st_check(t, asq == iova_of(PG_ASQ), "admin queue registers written (ASQ 0x%llx)", (unsigned long long)asq);
    st_wr32(t, BAR0, NVME_CC, 4u << 20 | 6u << 16 | 1u);   /* IOCQES 16, IOSQES 64, 4K pages, EN */
    if (!st_check(t, wait_csts(t, 1, (int)to_ms), "controller enabled (CSTS.RDY 1)"))
        goto unmap;

    if (submit(n, 0, 0x06, 0, iova_of(PG_IDENT), 1, 0, 0, "IDENTIFY CONTROLLER") != 0)
        goto unmap;
    const uint8_t *id = n->mem.p + PG_IDENT * PAGE;
    uint16_t vid = (uint16_t)(id[0] | id[1] << 8);
    char sn[21], mn[41];
    memcpy(sn, id + 4, 20);
    sn[20] = 0;
    memcpy(mn, id + 24, 40);
    mn[40] = 0;
    trim(sn);
    trim(mn);
    st_check(t, vid == 0x1b36, "IDENTIFY data arrived by DMA: PCI vendor 0x%04x, model \"%s\"", vid, mn);
    if (o->expect_serial)
        st_check(t, strcmp(sn, o->expect_serial) == 0, "serial number \"%s\" (want \"%s\")", sn, o->expect_serial);
    else
        st_info(t, "serial number \"%s\"", sn);

    if (o->expect_data) {
        /* I/O CQ 1 on vector 1 (interrupts on), then I/O SQ 1 feeding it. */
        if (submit(n, 0, 0x05, 0, iova_of(PG_IOCQ), (QDEPTH - 1) << 16 | 1, 1u << 16 | 3, 0,
                   "CREATE I/O CQ") != 0 ||
            submit(n, 0, 0x01, 0, iova_of(PG_IOSQ), (QDEPTH - 1) << 16 | 1, 1u << 16 | 1, 0,
                   "CREATE I/O SQ") != 0)
            goto unmap;
        uint8_t *data = n->mem.p + PG_DATA * PAGE;
        memset(data, 0, PAGE);
        if (submit(n, 1, 0x02, 1, iova_of(PG_DATA), 0, 0, 0, "READ LBA 0 of namespace 1") != 0)
            goto unmap;
        size_t l = strlen(o->expect_data);
        char got[41];
        snprintf(got, sizeof(got), "%.*s", (int)(l < 40 ? l : 40), (const char *)data);
        st_check(t, l <= PAGE && memcmp(data, o->expect_data, l) == 0, "LBA 0 starts with \"%s\" (read \"%s\")",
                 o->expect_data, got);
    }
unmap:
    rc = vu_client_dma_unmap(t->c, IOVA, (uint64_t)NPAGES * PAGE, 0);
    st_check(t, rc == 0, "DMA_UNMAP (%s)", rc ? vu_client_error(t->c) : "ok");
}

static void test_reset(struct nvme *n, uint32_t dev_flags, uint64_t cap)
{
    struct st *t = n->t;
    if (!(dev_flags & VU_DEVICE_FLAGS_RESET)) {
        st_skip(t, "device has no reset");
        return;
    }
    int rc = vu_client_reset(t->c);
    st_check(t, rc == 0, "DEVICE_RESET (%s)", rc ? vu_client_error(t->c) : "ok");
    uint32_t cc = 1, csts = 1;
    bool ok = st_rd32(t, BAR0, NVME_CC, &cc) == 0 && st_rd32(t, BAR0, NVME_CSTS, &csts) == 0;
    st_check(t, ok && !(cc & 1) && !(csts & 1), "the reset disabled the controller (CC 0x%x, CSTS 0x%x)", cc, csts);
    if (n->bar.p) {
        uint32_t lo = *(volatile uint32_t *)(n->bar.p + NVME_CAP);
        st_check(t, lo == (uint32_t)cap, "the BAR mapping still works after the reset (CAP 0x%08x)", lo);
    }
}

int selftest_nvme(struct vu_client *c, const struct probe_opts *o)
{
    struct st t = {.c = c, .o = o};
    struct nvme n = {.t = &t, .efd = {-1, -1}, .mem = {.fd = -1}};
    struct vu_device_info di = {0};
    struct vu_client_region ri;
    struct vu_irq_info ii = {0};
    static uint8_t cfg[4096];
    struct pv_config pc;
    uint16_t cmd = 0;

    int rc = vu_client_get_info(c, &di);
    st_check(&t, rc == 0 && (di.flags & VU_DEVICE_FLAGS_PCI) && di.num_regions >= VU_PCI_NUM_REGIONS &&
                     di.num_irqs > VU_PCI_MSIX_IRQ_INDEX,
             "DEVICE_GET_INFO: PCI device, %u regions, %u IRQ indexes", di.num_regions, di.num_irqs);
    if (rc)
        return st_finish(&t);
    memset(cfg, 0, sizeof(cfg));
    rc = probe_read_config(c, cfg, 256);
    pv_config_decode(cfg, 256, &pc);
    if (!st_check(&t, rc == 0 && pc.vendor == 0x1b36 && pc.device == 0x0010 && pc.class_code == 0x010802,
                  "config space says %04x:%04x class %06x (NVMe)", pc.vendor, pc.device, pc.class_code))
        return st_finish(&t);
    const struct pv_cap *mx = pv_config_find(&pc, false, 0x11);
    if (!st_check(&t, mx != NULL, "config space lists an MSI-X capability"))
        return st_finish(&t);
    uint64_t tsz = pv_cap_field(mx, "table_size")->u;
    rc = vu_client_get_irq_info(c, VU_PCI_MSIX_IRQ_INDEX, &ii);
    st_check(&t, rc == 0 && ii.count == tsz && ii.count >= 2 && (ii.flags & VU_IRQ_INFO_EVENTFD),
             "MSI-X: %u vectors (capability says %llu), eventfd", ii.count, (unsigned long long)tsz);

    rc = st_map_region(&t, BAR0, &n.bar, &ri);
    if (!st_check(&t, rc == 0, "BAR0 region info (and mmap) (%s)", rc ? strerror(-rc) : "ok"))
        return st_finish(&t);
    if (o->expect_no_mmap) {
        st_check(&t, !n.bar.p && !(ri.info.flags & VU_REGION_INFO_FLAG_MMAP), "BAR0 is not offered for mmap");
    } else {
        check_bar0(&t, &ri, &pc);
        st_check(&t, n.bar.p != NULL, "BAR0 mmapped through the reply's fd");
    }

    uint64_t cap = 0;
    uint32_t vs = 0;
    rc = rd64(&t, NVME_CAP, &cap);
    if (!rc)
        rc = st_rd32(&t, BAR0, NVME_VS, &vs);
    st_check(&t, rc == 0 && cap != 0 && vs >= 0x10000, "REGION_READ CAP 0x%016llx, version %u.%u",
             (unsigned long long)cap, vs >> 16, (vs >> 8) & 0xff);
    if (n.bar.p) {
        uint64_t mcap = *(volatile uint32_t *)(n.bar.p + NVME_CAP) |
                        (uint64_t)*(volatile uint32_t *)(n.bar.p + NVME_CAP + 4) << 32;
        st_check(&t, mcap == cap, "CAP through the mmapped BAR is the same (0x%016llx)", (unsigned long long)mcap);
    }
    n.dstrd = 4u << ((cap >> 32) & 0xf);

    bool ok = st_rd16(&t, CFG, 4, &cmd) == 0 && st_wr16(&t, CFG, 4, cmd | 0x6) == 0 && st_rd16(&t, CFG, 4, &cmd) == 0;
    st_check(&t, ok && (cmd & 0x6) == 0x6, "memory space and bus master enabled (command 0x%04x)", cmd);

    n.efd[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    n.efd[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (st_check(&t, n.efd[0] >= 0 && n.efd[1] >= 0 && st_mem_alloc(&n.mem, (size_t)NPAGES * PAGE) == 0,
                 "eventfds and a memfd for queues"))
        test_identify_and_read(&n, cap);

    test_reset(&n, di.flags, cap);
    rc = vu_client_set_irqs(c, VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_TRIGGER, VU_PCI_MSIX_IRQ_INDEX, 0, 0,
                            NULL, 0, NULL);
    st_check(&t, rc == 0, "MSI-X disabled again (%s)", rc ? vu_client_error(c) : "ok");

    st_unmap(&n.bar);
    st_mem_free(&n.mem);
    for (int i = 0; i < 2; i++)
        if (n.efd[i] >= 0)
            close(n.efd[i]);
    return st_finish(&t);
}
