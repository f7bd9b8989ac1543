/* SPDX-License-Identifier: MIT */
/* pers_life.c - the whole life of a device, driven through one
 * personality's operations: negotiate, device/region/IRQ info, mmap, the
 * registers, DMA, interrupts, reset, DMA_UNMAP, disconnect. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "edu_regs.h"
#include "pers.h"

#define EDU_XFER 256u           /* well inside the 4 KiB buffer */
#define SETTLE_MS 5000          /* guard for the edu's timer-driven DMA / IRQ */
#define FIXED_VADDR 0x4000000ull /* SPDK-like iova = vaddr, below edu's 28-bit mask */

static const char *cmdname(unsigned i)
{
    static const char *n[] = { "BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5",
                               "ROM", "CONFIG", "VGA" };
    return i < 9 ? n[i] : "region";
}

int p_map_area(struct p_ctx *c, uint32_t index, int fd, uint64_t off, uint64_t size)
{
    if (c->nmaps >= P_MAX_MAPS)
        return p_fail(c, "mmap", "too many mappings");
    struct p_region *r = &c->reg[index];
    int prot = (r->flags & VU_REGION_INFO_FLAG_READ ? PROT_READ : 0) |
               (r->flags & VU_REGION_INFO_FLAG_WRITE ? PROT_WRITE : 0);
    void *p = mmap(NULL, size, prot, MAP_SHARED, fd, (off_t)(r->offset + off));
    if (p == MAP_FAILED)
        return p_fail(c, "mmap", "%s [%#llx, +%#llx) through fd %d at %#llx: %s", cmdname(index),
                      (unsigned long long)off, (unsigned long long)size, fd,
                      (unsigned long long)(r->offset + off), strerror(errno));
    c->maps[c->nmaps++] = (struct p_map){ .region = index, .off = off, .size = size, .ptr = p };
    p_ok(c, "mmap", "%s [%#llx, +%#llx) mapped through the handed fd", cmdname(index),
         (unsigned long long)off, (unsigned long long)size);
    return 0;
}

int p_parse_caps(const uint8_t *b, uint32_t len, struct p_region *r, char *why, size_t whysz)
{
    struct vu_region_info ri;
    if (len < sizeof(ri)) {
        snprintf(why, whysz, "reply payload %u bytes, smaller than a region info", len);
        return -1;
    }
    memcpy(&ri, b, sizeof(ri));
    r->has_sparse = r->has_msix_mappable = false;
    r->nr_areas = 0;
    if (!(ri.flags & VU_REGION_INFO_FLAG_CAPS))
        return 0;
    uint32_t off = ri.cap_offset;
    for (int hops = 0; off; hops++) {
        struct vu_cap_header ch;
        if (hops > 16 || off < sizeof(ri) || off > len || len - off < sizeof(ch)) {
            snprintf(why, whysz, "cap at %u lies outside the %u-byte reply", off, len);
            return -1;
        }
        memcpy(&ch, b + off, sizeof(ch));
        if (ch.id == VU_REGION_INFO_CAP_SPARSE_MMAP) {
            struct vu_region_cap_sparse_mmap sp;
            if (len - off < sizeof(sp)) {
                snprintf(why, whysz, "sparse cap truncated");
                return -1;
            }
            memcpy(&sp, b + off, sizeof(sp));
            if (sp.nr_areas > P_MAX_AREAS ||
                (len - off - sizeof(sp)) / sizeof(struct vu_sparse_mmap_area) < sp.nr_areas) {
                snprintf(why, whysz, "sparse cap with %u areas does not fit", sp.nr_areas);
                return -1;
            }
            r->has_sparse = true;
            r->nr_areas = sp.nr_areas;
            memcpy(r->areas, b + off + sizeof(sp), sizeof(r->areas[0]) * sp.nr_areas);
        } else if (ch.id == VU_REGION_INFO_CAP_MSIX_MAPPABLE) {
            r->has_msix_mappable = true;
        }
        if (ch.next && ch.next <= off) {
            snprintf(why, whysz, "cap chain goes backwards (%u -> %u)", off, ch.next);
            return -1;
        }
        off = ch.next;
    }
    return 0;
}

uint32_t p_cfg_read(struct p_ctx *c, uint32_t off, uint32_t len, int *err)
{
    uint32_t v = 0;
    if (*err)
        return 0;
    if (c->ops->region_read(c, VU_PCI_CONFIG_REGION_INDEX, off, &v, len) < 0)
        *err = -1;
    return v;
}

static bool wanted(uint32_t mask, uint32_t i) { return !mask || (mask & (1u << i)); }

static void *map_ptr(struct p_ctx *c, uint32_t region, uint64_t off, uint64_t len)
{
    for (int i = 0; i < c->nmaps; i++) {
        struct p_map *m = &c->maps[i];
        if (m->region == region && off >= m->off && off + len <= m->off + m->size)
            return (uint8_t *)m->ptr + (off - m->off);
    }
    return NULL;
}

static int do_connect(struct p_ctx *c)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(c->sock_path) >= sizeof(sa.sun_path))
        return p_fail(c, "connect", "socket path too long");
    strcpy(sa.sun_path, c->sock_path);
    /* A reconnect may race the server's teardown of the last session. */
    for (int tries = 0;; tries++) {
        c->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->sock < 0)
            return p_fail(c, "connect", "socket: %s", strerror(errno));
        if (connect(c->sock, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        int e = errno;
        close(c->sock);
        c->sock = -1;
        if (tries >= 100 || (e != ECONNREFUSED && e != EAGAIN && e != ENOENT))
            return p_fail(c, "connect", "%s: %s", c->sock_path, strerror(e));
        usleep(50 * 1000);
    }
    p_ok(c, "connect", "%s", c->sock_path);
    return 0;
}

static int find_caps(struct p_ctx *c)
{
    int err = 0;
    uint32_t id = p_cfg_read(c, 0, 4, &err);
    uint16_t status = (uint16_t)p_cfg_read(c, 6, 2, &err);
    if (err)
        return p_fail(c, "config", "cannot read the config header");
    c->msi_cap = c->msix_cap = 0;
    if (status & 0x10) {
        uint8_t ptr = (uint8_t)p_cfg_read(c, 0x34, 1, &err) & 0xfc;
        for (int n = 0; ptr && n < 48 && !err; n++) {
            uint8_t capid = (uint8_t)p_cfg_read(c, ptr, 1, &err);
            if (capid == 0x05)
                c->msi_cap = ptr;
            if (capid == 0x11) {
                c->msix_cap = ptr;
                uint16_t ctl = (uint16_t)p_cfg_read(c, ptr + 2u, 2, &err);
                uint32_t t = p_cfg_read(c, ptr + 4u, 4, &err);
                uint32_t pba = p_cfg_read(c, ptr + 8u, 4, &err);
                c->msix_count = (ctl & 0x7ffu) + 1;
                c->msix_bir = t & 7;
                c->msix_table_off = t & ~7u;
                c->msix_pba_bir = pba & 7;
                c->msix_pba_off = pba & ~7u;
            }
            ptr = (uint8_t)p_cfg_read(c, ptr + 1u, 1, &err) & 0xfc;
        }
    }
    if (err)
        return p_fail(c, "config", "cannot walk the capability list");
    p_ok(c, "config", "%04x:%04x, MSI cap %#x, MSI-X cap %#x", id & 0xffff, id >> 16, c->msi_cap,
         c->msix_cap);
    if (c->msix_cap)
        p_ok(c, "config", "MSI-X: %u vectors, table BAR%u+%#x, PBA BAR%u+%#x", c->msix_count,
             c->msix_bir, c->msix_table_off, c->msix_pba_bir, c->msix_pba_off);
    return 0;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

static int check_msix_outside_maps(struct p_ctx *c)
{
    if (!c->msix_cap || !c->ops->refuses_msix_in_map)
        return 0;
    uint64_t tlen = 16ull * c->msix_count, plen = ((c->msix_count + 63) / 64) * 8ull;
    for (int i = 0; i < c->nmaps; i++) {
        struct p_map *m = &c->maps[i];
        if ((m->region == c->msix_bir && overlaps(m->off, m->size, c->msix_table_off, tlen)) ||
            (m->region == c->msix_pba_bir && overlaps(m->off, m->size, c->msix_pba_off, plen)))
            return p_fail(c, "msix",
                          "%s maps %s [%#llx, +%#llx), which holds the MSI-X table or PBA: the "
                          "guest would program the table straight into the device and no "
                          "interrupt would ever be set up (it knows no MSIX_MAPPABLE; it needs "
                          "sparse areas around the table and PBA)",
                          c->ops->name, cmdname(m->region), (unsigned long long)m->off,
                          (unsigned long long)m->size);
    }
    p_ok(c, "msix", "no mapping covers the MSI-X table or PBA");
    return 0;
}

static int rd32(struct p_ctx *c, uint32_t reg, uint64_t off, uint32_t *v)
{
    *v = 0;
    return c->ops->region_read(c, reg, off, v, 4);
}

static int wr(struct p_ctx *c, uint64_t off, uint64_t v, uint32_t len)
{
    return c->ops->region_write(c, VU_PCI_BAR0_REGION_INDEX, off, &v, len);
}

static int check_registers(struct p_ctx *c, const char *step, uint64_t *cap_seen)
{
    uint32_t v;
    if (c->dev == P_DEV_EDU) {
        if (rd32(c, 0, EDU_ID, &v) < 0)
            return -1;
        if (v != EDU_ID_VALUE)
            return p_fail(c, step, "edu id by REGION_READ is %#x, expected %#x", v, EDU_ID_VALUE);
        uint32_t *mp = map_ptr(c, 0, EDU_ID, 4);
        if (mp) {
            uint32_t mv = *(volatile uint32_t *)mp;
            if (mv != EDU_ID_VALUE)
                return p_fail(c, step, "edu id through the mmap is %#x, expected %#x", mv,
                              EDU_ID_VALUE);
        }
        uint32_t probe = 0x5a5a0000u ^ (c->round * 0x10001u);
        if (wr(c, EDU_LIVENESS, probe, 4) < 0 || rd32(c, 0, EDU_LIVENESS, &v) < 0)
            return -1;
        if (v != ~probe)
            return p_fail(c, step, "edu liveness: wrote %#x, read %#x, expected %#x", probe, v,
                          ~probe);
        p_ok(c, step, "edu id %#x (REGION_READ%s), liveness %#x -> %#x", EDU_ID_VALUE,
             mp ? " and mmap" : "", probe, v);
        return 0;
    }
    uint64_t cap = 0;
    uint32_t vs = 0;
    if (c->ops->region_read(c, 0, 0, &cap, 8) < 0 || rd32(c, 0, 8, &vs) < 0)
        return -1;
    void *mc = map_ptr(c, 0, 0, 8), *mv = map_ptr(c, 0, 8, 4);
    if (mc && mv) {
        uint64_t cap_m = *(volatile uint64_t *)mc;
        uint32_t vs_m = *(volatile uint32_t *)mv;
        if (cap_m != cap || vs_m != vs)
            return p_fail(c, step,
                          "BAR0 through the mmap (CAP %#llx VS %#x) differs from REGION_READ "
                          "(CAP %#llx VS %#x)",
                          (unsigned long long)cap_m, vs_m, (unsigned long long)cap, vs);
    }
    if (cap_seen) {
        if (*cap_seen && *cap_seen != cap)
            return p_fail(c, step, "CAP changed from %#llx to %#llx",
                          (unsigned long long)*cap_seen, (unsigned long long)cap);
        *cap_seen = cap;
    }
    p_ok(c, step, "nvme CAP %#llx VS %#x (REGION_READ%s)", (unsigned long long)cap, vs,
         mc && mv ? " == mmap" : "");
    return 0;
}

static int wait_efd(int efd, int ms)
{
    struct pollfd p = { .fd = efd, .events = POLLIN };
    int r = poll(&p, 1, ms);
    if (r != 1)
        return -1;
    uint64_t n;
    return read(efd, &n, 8) == 8 ? 0 : -1;
}

static int edu_dma_wait(struct p_ctx *c)
{
    for (int i = 0; i < SETTLE_MS / 5; i++) {
        uint32_t cmd;
        if (rd32(c, 0, EDU_DMA_CMD, &cmd) < 0)
            return -1;
        if (!(cmd & EDU_DMA_START))
            return 0;
        usleep(5000);
    }
    return p_fail(c, "dma", "the edu DMA engine is still busy after %d ms", SETTLE_MS);
}

static int edu_dma(struct p_ctx *c, uint8_t *ram, uint64_t iova)
{
    for (unsigned i = 0; i < EDU_XFER; i++)
        ram[i] = (uint8_t)(i * 7 + c->round * 13 + 1);
    memset(ram + 0x1000, 0, EDU_XFER);
    if (wr(c, EDU_DMA_SRC, iova, 8) < 0 || wr(c, EDU_DMA_DST, EDU_BUF_ADDR, 8) < 0 ||
        wr(c, EDU_DMA_CNT, EDU_XFER, 8) < 0 || wr(c, EDU_DMA_CMD, EDU_DMA_START, 8) < 0 ||
        edu_dma_wait(c) < 0)
        return -1;
    if (wr(c, EDU_DMA_SRC, EDU_BUF_ADDR, 8) < 0 || wr(c, EDU_DMA_DST, iova + 0x1000, 8) < 0 ||
        wr(c, EDU_DMA_CNT, EDU_XFER, 8) < 0 ||
        wr(c, EDU_DMA_CMD, EDU_DMA_START | EDU_DMA_TO_RAM, 8) < 0 || edu_dma_wait(c) < 0)
        return -1;
    if (memcmp(ram, ram + 0x1000, EDU_XFER)) {
        unsigned i = 0;
        while (i < EDU_XFER && ram[i] == ram[0x1000 + i])
            i++;
        return p_fail(c, "dma",
                      "edu DMA RAM->device->RAM: byte %u is %#x, expected %#x (the device did "
                      "not reach the client's memory)",
                      i, ram[0x1000 + i], ram[i]);
    }
    p_ok(c, "dma", "edu DMA %u bytes RAM(iova %#llx) -> device -> RAM(iova %#llx) intact",
         EDU_XFER, (unsigned long long)iova, (unsigned long long)(iova + 0x1000));
    return 0;
}

static int edu_irq(struct p_ctx *c)
{
    const struct p_ops *o = c->ops;
    uint32_t index = o->irq_kind == P_IRQ_MSI ? VU_PCI_MSI_IRQ_INDEX : VU_PCI_INTX_IRQ_INDEX;
    const char *name = index == VU_PCI_MSI_IRQ_INDEX ? "MSI" : "INTx";
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return p_fail(c, "irq", "eventfd: %s", strerror(errno));
    int r = -1;
    if (o->set_irqs(c, index, VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER, 0, 1, &efd) < 0)
        goto out;
    if (wr(c, EDU_IRQ_RAISE, 1, 4) < 0)
        goto out;
    if (wait_efd(efd, SETTLE_MS) < 0) {
        p_fail(c, "irq", "edu raised an interrupt (0x60) but the %s eventfd stayed quiet for %d ms",
               name, SETTLE_MS);
        goto out;
    }
    if (wr(c, EDU_IRQ_ACK, 1, 4) < 0)
        goto out;
    if (index == VU_PCI_INTX_IRQ_INDEX &&
        o->set_irqs(c, index, VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_UNMASK, 0, 1, NULL) < 0)
        goto out;
    if (o->set_irqs(c, index, VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL) < 0)
        goto out;
    p_ok(c, "irq", "%s delivered on the eventfd, acknowledged, disabled", name);
    r = 0;
out:
    close(efd);
    return r;
}

static int nvme_msix(struct p_ctx *c)
{
    /* the vector count comes from the config space capability, as in a driver */
    if (!c->msix_cap)
        return p_fail(c, "irq", "the nvme has no MSI-X capability");
    uint32_t n = c->msix_count;
    if (n > P_MAX_VECTORS)
        return p_fail(c, "irq", "MSI-X count %u is implausible", n);
    int *fds = calloc(n, sizeof(int));
    if (!fds)
        return p_fail(c, "irq", "out of memory");
    int r = -1;
    uint32_t made = 0;
    for (; made < n; made++)
        if ((fds[made] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
            p_fail(c, "irq", "eventfd: %s", strerror(errno));
            goto out;
        }
    if (c->ops->set_irqs(c, VU_PCI_MSIX_IRQ_INDEX,
                         VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER, 0, n, fds) < 0)
        goto out;
    if (c->ops->set_irqs(c, VU_PCI_MSIX_IRQ_INDEX,
                         VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL) < 0)
        goto out;
    p_ok(c, "irq", "MSI-X: %u vectors enabled with eventfds and disabled", n);
    r = 0;
out:
    for (uint32_t i = 0; i < made; i++)
        close(fds[i]);
    free(fds);
    return r;
}

static void teardown(struct p_ctx *c)
{
    for (int i = 0; i < c->nmaps; i++)
        munmap(c->maps[i].ptr, c->maps[i].size);
    c->nmaps = 0;
    for (int i = 0; i < P_MAX_REGIONS; i++) {
        for (int k = 0; k < c->reg[i].nfds; k++)
            if (c->reg[i].fds[k] >= 0)
                close(c->reg[i].fds[k]);
        c->reg[i].nfds = 0;
    }
    if (c->sock >= 0)
        close(c->sock);
    c->sock = -1;
}

static int maybe_reset(struct p_ctx *c, uint64_t *cap0)
{
    const struct p_ops *o = c->ops;
    bool has_reset = c->info.flags & VU_DEVICE_FLAGS_RESET;
    bool do_reset = o->reset && ((o->reset_when == P_RESET_IF_FLAG && has_reset) ||
                                 (o->reset_when == P_RESET_IF_NOT_FLAG && !has_reset));
    if (do_reset) {
        if (o->reset(c) < 0)
            return -1;
        if (check_registers(c, "after-reset", c->dev == P_DEV_NVME ? cap0 : NULL) < 0)
            return -1;
    } else {
        p_ok(c, "reset", "not sent (%s; device %s FLAGS_RESET)",
             o->reset_when == P_RESET_NEVER ? "never resets"
             : o->reset_when == P_RESET_IF_NOT_FLAG ? "resets only without FLAGS_RESET"
                                                    : "resets only with FLAGS_RESET",
             has_reset ? "has" : "lacks");
    }
    return 0;
}

int p_life(struct p_ctx *c)
{
    const struct p_ops *o = c->ops;
    int memfd = -1, r = -1;
    uint8_t *ram = MAP_FAILED;
    uint64_t iova = 0, cap0 = 0;

    memset(c->reg, 0, sizeof(c->reg));
    c->nmaps = 0;
    c->next_id = 0;
    c->max_msg_fds = 1;
    c->max_xfer = 1u << 20;
    if (do_connect(c) < 0)
        return -1;
    if (o->version(c) < 0)
        goto out;
    if (o->get_info(c, &c->info) < 0)
        goto out;
    if (!(c->info.flags & VU_DEVICE_FLAGS_PCI)) {
        p_fail(c, "get_info", "flags %#x lack FLAGS_PCI", c->info.flags);
        goto out;
    }
    if (c->info.num_regions < VU_PCI_NUM_REGIONS - 1 || c->info.num_regions > P_MAX_REGIONS) {
        p_fail(c, "get_info", "num_regions %u", c->info.num_regions);
        goto out;
    }
    p_ok(c, "get_info", "flags %#x, %u regions, %u IRQ indexes", c->info.flags,
         c->info.num_regions, c->info.num_irqs);
    for (uint32_t i = 0; i < c->info.num_regions; i++)
        if (wanted(o->region_mask, i) && o->region_info(c, i) < 0)
            goto out;
    if (o->reset_early && maybe_reset(c, NULL) < 0)
        goto out;
    if (find_caps(c) < 0)
        goto out;
    for (uint32_t i = 0; i <= VU_PCI_BAR5_REGION_INDEX; i++)
        if (c->reg[i].valid && c->reg[i].size && (c->reg[i].flags & VU_REGION_INFO_FLAG_MMAP) &&
            o->map_region(c, i) < 0)
            goto out;
    if (check_msix_outside_maps(c) < 0)
        goto out;
    if (c->dev == P_DEV_NVME && o->requires_bar0_doorbells) {
        if (!map_ptr(c, 0, 0x1000, 0x1000)) {
            p_fail(c, "mmap", "BAR0 0x1000-0x2000 (the doorbells) is not mapped: %s stops with "
                   "\"Error to get device BAR0\"", o->name);
            goto out;
        }
        p_ok(c, "mmap", "BAR0 doorbells 0x1000-0x2000 are mapped");
    }
    for (uint32_t i = 0; i < c->info.num_irqs && i < 32; i++) {
        struct vu_irq_info ii;
        if (wanted(o->irq_mask, i) && o->irq_info(c, i, &ii) < 0)
            goto out;
    }
    {   /* bus master and memory decode, as a driver does first */
        int err = 0;
        uint16_t cmd = (uint16_t)p_cfg_read(c, 4, 2, &err);
        if (err)
            goto out;
        uint16_t ncmd = cmd | 0x0006;
        if (o->region_write(c, VU_PCI_CONFIG_REGION_INDEX, 4, &ncmd, 2) < 0)
            goto out;
        uint16_t back = (uint16_t)p_cfg_read(c, 4, 2, &err);
        if (err)
            goto out;
        if ((back & 0x6) != 0x6) {
            p_fail(c, "config", "COMMAND %#x after writing %#x: bus master did not stick", back,
                   ncmd);
            goto out;
        }
        p_ok(c, "config", "COMMAND %#x -> %#x (memory + bus master)", cmd, back);
    }
    if (check_registers(c, "registers", &cap0) < 0)
        goto out;

    /* DMA: a memfd as the client's RAM */
    memfd = memfd_create("vu-personality-ram", MFD_CLOEXEC);
    if (memfd < 0 || ftruncate(memfd, (off_t)o->dma_size) < 0) {
        p_fail(c, "dma", "memfd: %s", strerror(errno));
        goto out;
    }
    if (o->iova_is_vaddr) {
        ram = mmap((void *)(uintptr_t)FIXED_VADDR, o->dma_size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_FIXED_NOREPLACE, memfd, 0);
        if (ram != MAP_FAILED && ram != (void *)(uintptr_t)FIXED_VADDR) {
            munmap(ram, o->dma_size);
            ram = MAP_FAILED;
        }
        iova = FIXED_VADDR;
    } else {
        ram = mmap(NULL, o->dma_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        iova = 0x100000;
    }
    if (ram == MAP_FAILED) {
        p_fail(c, "dma", "mmap of the RAM memfd: %s", strerror(errno));
        goto out;
    }
    if (o->dma_map(c, memfd, 0, iova, o->dma_size) < 0)
        goto out;
    p_ok(c, "dma_map", "memfd %#llx bytes at iova %#llx", (unsigned long long)o->dma_size,
         (unsigned long long)iova);
    if (c->dev == P_DEV_EDU && edu_dma(c, ram, iova) < 0)
        goto out;

    if (c->dev == P_DEV_EDU && o->irq_kind != P_IRQ_NONE && edu_irq(c) < 0)
        goto out;
    if (c->dev == P_DEV_NVME && o->nvme_msix && nvme_msix(c) < 0)
        goto out;
    if (o->irq_kind == P_IRQ_NONE && !(c->dev == P_DEV_NVME && o->nvme_msix))
        p_ok(c, "irq", "%s never sets up interrupts (it polls)", o->name);

    if (!o->reset_early && maybe_reset(c, &cap0) < 0)
        goto out;
    if (o->dma_unmap(c, memfd, iova, o->dma_size) < 0)
        goto out;
    p_ok(c, "dma_unmap", "iova %#llx +%#llx", (unsigned long long)iova,
         (unsigned long long)o->dma_size);
    r = 0;
out:
    teardown(c);
    if (ram != MAP_FAILED)
        munmap(ram, o->dma_size);
    if (memfd >= 0)
        close(memfd);
    if (r == 0)
        p_ok(c, "disconnect", "closed");
    return r;
}
