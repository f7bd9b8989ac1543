/* SPDX-License-Identifier: MIT */
/*
 * hv_sim.c - a simulated PCI function and a simulated type1 container,
 * behind the two ops tables, that behave like the kernel's vfio-pci and
 * type1v2 (see hv_sim.h for what is modelled). BARs live in one sparse memfd
 * at index << 40 so an mmap through mmap_fd and region_read/write see the
 * same bytes. One mutex per device serialises the device; one per IOMMU
 * context its map table (taken after a device's when the edu engine does
 * DMA, never the other way round).
 */
#include "hv_sim.h"
#include "hv_internal.h"
#include "hv_sim_edu.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define SIM_NUM_REGIONS 9u
#define SIM_NUM_IRQS HV_SIM_NUM_IRQS
#define SIM_CFG_SIZE 4096u
#define SIM_MAX_MSIX 2048u
#define SIM_MAX_MSI 32u
#define SIM_REGION_SHIFT 40

/* config space layout of the sim */
#define PCI_COMMAND_OFF 0x04
#define CFG_CAP_MSI 0x40
#define CFG_CAP_MSIX 0x50
#define CFG_CAP_PCIE 0x60

enum { IRQ_NONE = -1 };

struct sim_map {
    uint64_t iova, size;
    uint8_t *vaddr;
    uint32_t flags;
    bool own;            /* vaddr is the sim's own mapping of the pages (a pin) */
};

/* The kernel pins the pages of a mapping: the IOMMU reaches them whatever
 * the mapping process does with its vaddr later (munmap it, map something
 * else there). The sim keeps a mapping of its own of the same pages
 * (mremap with old size 0 duplicates a shared mapping), so that its device
 * side behaves the same: the functions of one group share mappings, and
 * the table that made one may let go of its vaddr while another still
 * uses it. A private mapping cannot be duplicated: then the caller's vaddr
 * is used as it is. */
static void sim_pin(struct sim_map *m)
{
    void *p = mremap(m->vaddr, 0, (size_t)m->size, MREMAP_MAYMOVE);
    if (p != MAP_FAILED) {
        m->vaddr = p;
        m->own = true;
    }
}

static void sim_unpin(struct sim_map *m)
{
    if (m->own)
        munmap(m->vaddr, (size_t)m->size);
    m->own = false;
}

struct sim_bar {
    uint64_t size;
    uint32_t flags;
    uint32_t caps_len;
    uint8_t caps[64];
};

/* The simulated type1 container: a DMA map table with the kernel's rules.
 * Of cfg only the IOMMU fields (pgsizes, dma_entry_limit, IOVA ranges) are
 * used. */
struct sim_iommu {
    struct hv_iommu base;
    pthread_mutex_t lock;
    struct hv_sim_config cfg;
    uint64_t pgsize;           /* smallest IOMMU page */
    struct sim_map *maps;      /* sorted by iova, never overlapping */
    size_t nmaps, capmaps;
    uint64_t mapped_bytes;
    struct sim *devs[HV_MAX_RESET_DEPS];   /* attached devices (a simulated bus) */
    size_t ndevs;
};

struct sim {
    struct hv_device base;     /* base.iommu: a struct sim_iommu */
    pthread_mutex_t lock;
    struct hv_sim_config cfg;
    int memfd;
    struct sim_bar bars[6];
    uint8_t cs[SIM_CFG_SIZE];  /* config space */
    uint8_t wm[SIM_CFG_SIZE];  /* writable bits of each config byte */

    /* interrupts */
    int irq_type;              /* IRQ_NONE or VFIO_PCI_{INTX,MSI,MSIX}_IRQ_INDEX */
    int intx_trigger, intx_unmask;
    bool intx_masked, intx_pending;
    uint32_t nvec;             /* MSI/MSI-X vectors allocated on enable */
    int vec[SIM_MAX_MSIX];
    int err_trigger, req_trigger;

    struct sim_edu edu;        /* the model in BAR0 (hv_sim_edu.c) */
    unsigned bus_resets;
    unsigned resets;
};

static const struct hv_device_ops sim_ops;
static const struct hv_iommu_ops sim_iommu_ops;
static struct sim *S(struct hv_device *d) { return (struct sim *)d; }
static struct sim_iommu *SIO(struct hv_iommu *io) { return (struct sim_iommu *)io; }
/* The IOMMU context a sim device is attached to (always a sim one). */
static struct sim_iommu *IO(struct sim *s) { return SIO(s->base.iommu); }
/* The test hooks refuse devices of other back ends. */
#define SIM_OR(d, bad) do { if (!(d) || (d)->ops != &sim_ops) return (bad); } while (0)

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t irq_count(struct sim *s, uint32_t index)
{
    switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX: return 1;
    case VFIO_PCI_MSI_IRQ_INDEX: return s->cfg.msi_count;
    case VFIO_PCI_MSIX_IRQ_INDEX: return s->cfg.msix != HV_SIM_MSIX_NONE ? s->cfg.msix_count : 0;
    case VFIO_PCI_ERR_IRQ_INDEX: return 1;   /* the sim is PCIe */
    case VFIO_PCI_REQ_IRQ_INDEX: return 1;
    default: return 0;
    }
}

/* ---- eventfds -------------------------------------------------------------- */

static void signal_fd(int fd)
{
    uint64_t one = 1;
    if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
        /* counter saturated: the consumer is gone or far behind; drop */
    }
}

/* Take a reference like eventfd_ctx_fdget(): -EBADF for no fd, -EINVAL for
 * an fd that is not an eventfd; else our own dup. */
static int take_eventfd(int fd)
{
    char path[64], target[64];
    if (fcntl(fd, F_GETFD) < 0)
        return -EBADF;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return -EBADF;
    target[n] = '\0';
    if (strcmp(target, "anon_inode:[eventfd]") != 0)
        return -EINVAL;
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    return dup < 0 ? -errno : dup;
}

static void drop_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* ---- INTx ---------------------------------------------------------------- */

static void intx_deliver(struct sim *s)
{
    /* The kernel's handler masks the line, then signals (AUTOMASKED). */
    s->intx_masked = true;
    s->intx_pending = false;
    signal_fd(s->intx_trigger);
}

static void intx_unmask(struct sim *s)
{
    s->intx_masked = false;
    if (s->intx_pending && s->intx_trigger >= 0)
        intx_deliver(s);   /* still asserted: fires again at once */
}

/* An unmask eventfd (KVM resample fd) the client wrote unmasks INTx, as the
 * kernel's virqfd would. Polled (not read blocking: the fd is shared with the
 * client and its flags are not ours to change). */
static void intx_poll_unmask(struct sim *s)
{
    if (s->intx_unmask < 0)
        return;
    struct pollfd p = { .fd = s->intx_unmask, .events = POLLIN };
    if (poll(&p, 1, 0) == 1 && (p.revents & POLLIN)) {
        uint64_t v;
        if (read(s->intx_unmask, &v, sizeof(v)) == (ssize_t)sizeof(v) &&
            s->irq_type == VFIO_PCI_INTX_IRQ_INDEX)
            intx_unmask(s);
    }
}

static int intx_fire(struct sim *s)
{
    intx_poll_unmask(s);
    if (s->irq_type != VFIO_PCI_INTX_IRQ_INDEX || s->intx_trigger < 0)
        return 0;   /* no handler installed: nothing seen, nothing masked */
    if (s->intx_masked) {
        s->intx_pending = true;
        return 0;
    }
    intx_deliver(s);
    return 1;
}

static void intx_disable(struct sim *s)
{
    drop_fd(&s->intx_trigger);
    drop_fd(&s->intx_unmask);
    s->intx_masked = s->intx_pending = false;
    s->irq_type = IRQ_NONE;
}

static int set_intx(struct sim *s, uint32_t flags, uint32_t start, uint32_t count,
                    const void *data)
{
    uint32_t action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    uint32_t dtype = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    bool is_intx = s->irq_type == VFIO_PCI_INTX_IRQ_INDEX;

    if (action == VFIO_IRQ_SET_ACTION_MASK || action == VFIO_IRQ_SET_ACTION_UNMASK) {
        if (!is_intx || start != 0 || count != 1)
            return -EINVAL;
        bool yes = dtype == VFIO_IRQ_SET_DATA_NONE ||
                   (dtype == VFIO_IRQ_SET_DATA_BOOL && *(const uint8_t *)data);
        if (action == VFIO_IRQ_SET_ACTION_MASK) {
            if (dtype == VFIO_IRQ_SET_DATA_EVENTFD)
                return -ENOTTY;   /* the kernel has no mask eventfd */
            if (yes)
                s->intx_masked = true;
            return 0;
        }
        if (dtype == VFIO_IRQ_SET_DATA_EVENTFD) {
            int32_t fd;
            memcpy(&fd, data, sizeof(fd));
            if (fd < 0) {
                drop_fd(&s->intx_unmask);
                return 0;
            }
            int mine = take_eventfd(fd);
            if (mine < 0)
                return mine;
            drop_fd(&s->intx_unmask);
            s->intx_unmask = mine;
            return 0;
        }
        if (yes)
            intx_unmask(s);
        return 0;
    }
    /* TRIGGER */
    if (is_intx && count == 0 && dtype == VFIO_IRQ_SET_DATA_NONE) {
        intx_disable(s);
        return 0;
    }
    if (!(is_intx || s->irq_type == IRQ_NONE) || start != 0 || count != 1)
        return -EINVAL;
    if (dtype == VFIO_IRQ_SET_DATA_EVENTFD) {
        int32_t fd;
        memcpy(&fd, data, sizeof(fd));
        /* Like vfio_intx_set_signal(): the old trigger goes first, then the
         * new fd is looked at; a failed fresh enable is undone. */
        drop_fd(&s->intx_trigger);
        int mine = fd >= 0 ? take_eventfd(fd) : -1;
        if (fd >= 0 && mine < 0) {
            if (!is_intx)
                intx_disable(s);
            return mine;
        }
        if (!is_intx) {
            s->irq_type = VFIO_PCI_INTX_IRQ_INDEX;
            s->intx_masked = s->intx_pending = false;
        }
        s->intx_trigger = mine;
        return 0;
    }
    if (!is_intx)
        return -EINVAL;
    /* NONE / BOOL: loopback, the eventfd is signalled without masking */
    if (dtype == VFIO_IRQ_SET_DATA_NONE || *(const uint8_t *)data)
        signal_fd(s->intx_trigger);
    return 0;
}

/* ---- MSI / MSI-X --------------------------------------------------------- */

static void msi_disable(struct sim *s)
{
    for (uint32_t i = 0; i < s->nvec; i++)
        drop_fd(&s->vec[i]);
    s->nvec = 0;
    s->irq_type = IRQ_NONE;
}

static int msi_set_block(struct sim *s, uint32_t start, uint32_t count, const int32_t *fds)
{
    if (start >= s->nvec || count > s->nvec - start)
        return -EINVAL;
    uint32_t i;
    int r = 0;
    for (i = 0; i < count; i++) {
        int32_t fd = fds ? fds[i] : -1;
        /* the vector's old eventfd goes before the new one is looked at */
        drop_fd(&s->vec[start + i]);
        if (fd >= 0) {
            int mine = take_eventfd(fd);
            if (mine < 0) {
                r = mine;
                break;
            }
            s->vec[start + i] = mine;
        }
    }
    if (r < 0) {
        /* Like the kernel: what this call already set is de-assigned. */
        while (i-- > 0)
            drop_fd(&s->vec[start + i]);
    }
    return r;
}

static int set_msi(struct sim *s, uint32_t index, uint32_t flags, uint32_t start,
                   uint32_t count, const void *data)
{
    uint32_t action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    uint32_t dtype = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
    bool is_this = s->irq_type == (int)index;

    if (action != VFIO_IRQ_SET_ACTION_TRIGGER)
        return -ENOTTY;   /* no MSI/MSI-X masking through SET_IRQS */
    if (is_this && count == 0 && dtype == VFIO_IRQ_SET_DATA_NONE) {
        msi_disable(s);
        return 0;
    }
    if (!(is_this || s->irq_type == IRQ_NONE))
        return -EINVAL;
    if (dtype == VFIO_IRQ_SET_DATA_EVENTFD) {
        int32_t fds[SIM_MAX_MSIX];
        if (count)
            memcpy(fds, data, count * sizeof(int32_t));
        if (is_this)
            return msi_set_block(s, start, count, fds);
        /* First enable sizes the vector table: start + count (NORESIZE). */
        uint32_t n = start + count;
        if (n == 0)
            return -EINVAL;
        s->irq_type = (int)index;
        s->nvec = n;
        for (uint32_t i = 0; i < n; i++)
            s->vec[i] = -1;
        int r = msi_set_block(s, start, count, fds);
        if (r < 0)
            msi_disable(s);
        return r;
    }
    if (!is_this)
        return -EINVAL;
    for (uint32_t i = start; i < start + count && i < s->nvec; i++) {
        if (s->vec[i] < 0)
            continue;
        if (dtype == VFIO_IRQ_SET_DATA_NONE || ((const uint8_t *)data)[i - start])
            signal_fd(s->vec[i]);
    }
    return 0;
}

/* ---- ERR / REQ ----------------------------------------------------------- */

static int set_single(int *ctx, uint32_t flags, uint32_t start, uint32_t count,
                      const void *data)
{
    uint32_t action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    uint32_t dtype = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;

    if (action != VFIO_IRQ_SET_ACTION_TRIGGER)
        return -ENOTTY;
    if (start != 0 || count > 1)
        return -EINVAL;
    if (dtype == VFIO_IRQ_SET_DATA_NONE) {
        if (*ctx < 0)
            return -EINVAL;
        if (count)
            signal_fd(*ctx);
        else
            drop_fd(ctx);
        return 0;
    }
    if (!count)
        return -EINVAL;
    if (dtype == VFIO_IRQ_SET_DATA_BOOL) {
        if (*(const uint8_t *)data && *ctx >= 0)
            signal_fd(*ctx);
        return 0;
    }
    int32_t fd;
    memcpy(&fd, data, sizeof(fd));
    if (fd == -1) {
        drop_fd(ctx);
    } else if (fd >= 0) {
        int mine = take_eventfd(fd);
        if (mine < 0)
            return mine;
        drop_fd(ctx);
        *ctx = mine;
    }
    return 0;
}

static int sim_set_irqs(struct hv_device *d, uint32_t flags, uint32_t index, uint32_t start,
                        uint32_t count, const void *data)
{
    struct sim *s = S(d);
    const uint32_t known = VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK;
    size_t each;

    /* vfio_set_irqs_validate_and_prepare() */
    if (index >= SIM_NUM_IRQS || (flags & ~known) || count >= UINT32_MAX - start)
        return -EINVAL;
    uint32_t max = irq_count(s, index);
    if (start >= max || start + count > max)
        return -EINVAL;
    switch (flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
    case VFIO_IRQ_SET_DATA_NONE: each = 0; break;
    case VFIO_IRQ_SET_DATA_BOOL: each = 1; break;
    case VFIO_IRQ_SET_DATA_EVENTFD: each = 4; break;
    default: return -EINVAL;
    }
    if (each && count && !data)
        return -EFAULT;
    /* exactly one action, like the kernel's switch */
    uint32_t action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
    if (action != VFIO_IRQ_SET_ACTION_MASK && action != VFIO_IRQ_SET_ACTION_UNMASK &&
        action != VFIO_IRQ_SET_ACTION_TRIGGER)
        return -ENOTTY;

    pthread_mutex_lock(&s->lock);
    intx_poll_unmask(s);
    int r;
    switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX: r = set_intx(s, flags, start, count, data); break;
    case VFIO_PCI_MSI_IRQ_INDEX:
    case VFIO_PCI_MSIX_IRQ_INDEX: r = set_msi(s, index, flags, start, count, data); break;
    case VFIO_PCI_ERR_IRQ_INDEX: r = set_single(&s->err_trigger, flags, start, count, data); break;
    default: r = set_single(&s->req_trigger, flags, start, count, data); break;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* ---- IOMMU --------------------------------------------------------------- */

/* First map whose end is above iova (maps sorted, disjoint). */
static size_t map_lower(struct sim_iommu *s, uint64_t iova)
{
    size_t lo = 0, hi = s->nmaps;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->maps[mid].iova + s->maps[mid].size - 1 < iova)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* A map overlapping [iova, last], or NULL. */
static struct sim_map *map_find(struct sim_iommu *s, uint64_t iova, uint64_t last)
{
    size_t i = map_lower(s, iova);
    if (i < s->nmaps && s->maps[i].iova <= last)
        return &s->maps[i];
    return NULL;
}

static bool iova_valid(struct sim_iommu *s, uint64_t iova, uint64_t last)
{
    if (!s->cfg.nr_iova_ranges)
        return true;
    for (uint32_t i = 0; i < s->cfg.nr_iova_ranges; i++)
        if (iova >= s->cfg.iova_ranges[i].start && last <= s->cfg.iova_ranges[i].end)
            return true;
    return false;
}

/* Whether every page of [p, p+len) is mapped in this process (the kernel's
 * pinning fails with EFAULT otherwise). */
static bool vaddr_mapped(void *p, uint64_t len)
{
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(pg - 1);
    uint64_t l = len + ((uintptr_t)p - a);
    /* msync() reports ENOMEM for any hole in the range. */
    return msync((void *)a, (size_t)l, MS_ASYNC) == 0;
}

static int sim_dma_map(struct hv_iommu *io, uint64_t iova, void *vaddr, uint64_t size,
                       uint32_t flags)
{
    struct sim_iommu *s = SIO(io);
    uint64_t va = (uint64_t)(uintptr_t)vaddr, mask = s->pgsize - 1;

    if (flags & ~(uint32_t)(HV_DMA_READ | HV_DMA_WRITE))
        return -EINVAL;
    if (!(flags & (HV_DMA_READ | HV_DMA_WRITE)))
        return -EINVAL;
    if (!size || ((size | iova | va) & mask))
        return -EINVAL;
    if (iova + size - 1 < iova || va + size - 1 < va)
        return -EINVAL;

    pthread_mutex_lock(&s->lock);
    int r = 0;
    if (map_find(s, iova, iova + size - 1))
        r = -EEXIST;
    else if (s->nmaps >= s->cfg.dma_entry_limit)
        r = -ENOSPC;
    else if (!iova_valid(s, iova, iova + size - 1))
        r = -EINVAL;
    else if (!vaddr_mapped(vaddr, size))
        r = -EFAULT;
    if (r == 0 && s->nmaps == s->capmaps) {
        size_t ncap = s->capmaps ? s->capmaps * 2 : 16;
        struct sim_map *nm = realloc(s->maps, ncap * sizeof(*nm));
        if (!nm)
            r = -ENOMEM;
        else {
            s->maps = nm;
            s->capmaps = ncap;
        }
    }
    if (r == 0) {
        size_t i = map_lower(s, iova);
        memmove(&s->maps[i + 1], &s->maps[i], (s->nmaps - i) * sizeof(*s->maps));
        s->maps[i] = (struct sim_map){ .iova = iova, .size = size, .vaddr = vaddr,
                                       .flags = flags };
        sim_pin(&s->maps[i]);
        s->nmaps++;
        s->mapped_bytes += size;
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int sim_dma_unmap(struct hv_iommu *io, uint64_t iova, uint64_t size, uint32_t flags)
{
    struct sim_iommu *s = SIO(io);
    uint64_t mask = s->pgsize - 1;

    if (flags & ~(uint32_t)HV_DMA_UNMAP_ALL)
        return -EINVAL;
    if (flags & HV_DMA_UNMAP_ALL) {
        if (iova || size)
            return -EINVAL;
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < s->nmaps; i++)
            sim_unpin(&s->maps[i]);
        s->nmaps = 0;
        s->mapped_bytes = 0;
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    if (!size || (size & mask) || iova + size - 1 < iova || (iova & mask))
        return -EINVAL;
    uint64_t last = iova + size - 1;

    pthread_mutex_lock(&s->lock);
    int r = 0;
    /* type1v2: the range may cover several whole mappings, bisect none. */
    struct sim_map *m = map_find(s, iova, iova);
    if (m && m->iova != iova)
        r = -EINVAL;
    m = map_find(s, last, last);
    if (m && m->iova + m->size - 1 != last)
        r = -EINVAL;
    if (r == 0) {
        size_t i = map_lower(s, iova), j = i;
        while (j < s->nmaps && s->maps[j].iova <= last) {
            s->mapped_bytes -= s->maps[j].size;
            sim_unpin(&s->maps[j]);
            j++;
        }
        if (j > i) {   /* nothing inside: maps may still be NULL */
            memmove(&s->maps[i], &s->maps[j], (s->nmaps - j) * sizeof(*s->maps));
            s->nmaps -= j - i;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Copy n bytes between the simulated device's buffer and client memory at
 * `ram` (the bridge's mapping of the client's file). Through the kernel
 * (process_vm_readv/writev on this process), not memcpy: a client that
 * shrank its file after DMA_MAP leaves pages beyond the end, where a load or
 * store raises SIGBUS and kills the daemon; the kernel reports EFAULT
 * instead, which the sim counts as a DMA fault. (Real hardware reaches the
 * pinned pages through the IOMMU and never touches the bridge's mapping.) */
static int copy_self(uint8_t *ram, uint8_t *dev, size_t n, bool to_ram)
{
    struct iovec local = { .iov_base = dev, .iov_len = n };
    struct iovec remote = { .iov_base = ram, .iov_len = n };
    ssize_t r = to_ram ? process_vm_writev(getpid(), &local, 1, &remote, 1, 0)
                       : process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    return r == (ssize_t)n ? 0 : -EFAULT;
}

/* Device-side DMA: check the whole range first, then copy. */
static int dma_access(struct sim_iommu *s, uint64_t iova, void *buf, size_t len, bool to_ram)
{
    uint32_t need = to_ram ? HV_DMA_WRITE : HV_DMA_READ;
    if (len == 0)
        return 0;
    if (iova + len - 1 < iova)
        return -EFAULT;
    for (int pass = 0; pass < 2; pass++) {
        uint64_t cur = iova;
        size_t done = 0;
        while (done < len) {
            struct sim_map *m = map_find(s, cur, cur);
            if (!m)
                return -EFAULT;
            if (!(m->flags & need))
                return -EPERM;
            uint64_t in = cur - m->iova;
            size_t n = (size_t)(m->size - in < len - done ? m->size - in : len - done);
            if (pass == 1 && copy_self((uint8_t *)m->vaddr + in, (uint8_t *)buf + done, n,
                                       to_ram) < 0)
                return -EFAULT;
            done += n;
            cur += n;
        }
    }
    return 0;
}

int hv_sim_dma_write(struct hv_device *d, uint64_t iova, const void *buf, size_t len)
{
    SIM_OR(d, -EINVAL);
    struct sim_iommu *s = IO(S(d));
    pthread_mutex_lock(&s->lock);
    int r = dma_access(s, iova, (void *)buf, len, true);
    pthread_mutex_unlock(&s->lock);
    return r;
}

int hv_sim_dma_read(struct hv_device *d, uint64_t iova, void *buf, size_t len)
{
    SIM_OR(d, -EINVAL);
    struct sim_iommu *s = IO(S(d));
    pthread_mutex_lock(&s->lock);
    int r = dma_access(s, iova, buf, len, false);
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int sim_iommu_info(struct hv_iommu *io, struct hv_iommu_info *out)
{
    struct sim_iommu *s = SIO(io);
    memset(out, 0, sizeof(*out));
    out->pgsizes = s->cfg.pgsizes;
    out->nr_ranges = s->cfg.nr_iova_ranges;
    memcpy(out->ranges, s->cfg.iova_ranges, sizeof(out->ranges));
    out->has_dma_avail = true;
    pthread_mutex_lock(&s->lock);
    out->dma_avail = s->cfg.dma_entry_limit - (uint32_t)s->nmaps;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* ---- what the edu model needs (hv_sim_edu.h) ------------------------------- */

static uint64_t bar_off(uint32_t index) { return (uint64_t)index << SIM_REGION_SHIFT; }

void sim_irq_assert(struct sim *s)
{
    if ((s->irq_type == VFIO_PCI_MSI_IRQ_INDEX || s->irq_type == VFIO_PCI_MSIX_IRQ_INDEX) &&
        s->nvec > 0)
        signal_fd(s->vec[0]);
    else
        intx_fire(s);
}

void sim_intx_deassert(struct sim *s) { s->intx_pending = false; }

int sim_bus_dma(struct sim *s, uint64_t iova, void *buf, size_t len, bool to_ram)
{
    pthread_mutex_lock(&IO(s)->lock);
    int r = dma_access(IO(s), iova, buf, len, to_ram);
    pthread_mutex_unlock(&IO(s)->lock);
    return r;
}

/* ---- regions --------------------------------------------------------------- */

static void msix_layout(struct sim *s, uint64_t *tstart, uint64_t *tend)
{
    *tstart = s->cfg.msix_table_offset;
    *tend = *tstart + (uint64_t)s->cfg.msix_count * 16;
}

static int sim_get_info(struct hv_device *d, struct hv_device_info *out)
{
    out->flags = VFIO_DEVICE_FLAGS_PCI | (S(d)->cfg.reset ? VFIO_DEVICE_FLAGS_RESET : 0);
    out->num_regions = SIM_NUM_REGIONS;
    out->num_irqs = SIM_NUM_IRQS;
    return 0;
}

static int sim_get_region_info(struct hv_device *d, uint32_t index, struct hv_region_info *out)
{
    struct sim *s = S(d);
    memset(out, 0, offsetof(struct hv_region_info, caps));
    out->index = index;
    out->offset = bar_off(index);
    if (index <= VFIO_PCI_BAR5_REGION_INDEX) {
        const struct sim_bar *b = &s->bars[index];
        out->size = b->size;
        out->flags = b->flags;
        if (b->caps_len) {
            out->flags |= VFIO_REGION_INFO_FLAG_CAPS;
            out->cap_offset = sizeof(struct vfio_region_info);
            out->caps_len = b->caps_len;
            memcpy(out->caps, b->caps, b->caps_len);
        }
        return 0;
    }
    if (index == VFIO_PCI_ROM_REGION_INDEX)
        return 0;   /* no ROM: size 0, flags 0 */
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) {
        out->size = SIM_CFG_SIZE;
        out->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        return 0;
    }
    return -EINVAL;   /* VGA and beyond */
}

static int sim_get_irq_info(struct hv_device *d, uint32_t index, struct hv_irq_info *out)
{
    if (index >= SIM_NUM_IRQS)
        return -EINVAL;
    out->index = index;
    out->count = irq_count(S(d), index);
    out->flags = VFIO_IRQ_INFO_EVENTFD;
    if (index == VFIO_PCI_INTX_IRQ_INDEX)
        out->flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
    else
        out->flags |= VFIO_IRQ_INFO_NORESIZE;
    return 0;
}

static bool mem_enabled(struct sim *s)
{
    return get16(&s->cs[PCI_COMMAND_OFF]) & 0x2;
}

static int region_check(struct sim *s, uint32_t index, uint64_t off, size_t len, uint64_t *size)
{
    if (index <= VFIO_PCI_BAR5_REGION_INDEX)
        *size = s->bars[index].size;
    else if (index == VFIO_PCI_CONFIG_REGION_INDEX)
        *size = SIM_CFG_SIZE;
    else
        return -EINVAL;
    if (*size == 0 || off > *size || len > *size - off)
        return -EINVAL;
    if (index <= VFIO_PCI_BAR5_REGION_INDEX && !mem_enabled(s))
        return -EIO;
    return 0;
}

static ssize_t sim_region_read(struct hv_device *d, uint32_t index, uint64_t off, void *buf,
                               size_t len)
{
    struct sim *s = S(d);
    uint64_t size;
    pthread_mutex_lock(&s->lock);
    ssize_t r = region_check(s, index, off, len, &size);
    if (r == 0 && index == VFIO_PCI_CONFIG_REGION_INDEX) {
        memcpy(buf, s->cs + off, len);
        r = (ssize_t)len;
    } else if (r == 0) {
        r = pread(s->memfd, buf, len, (off_t)(bar_off(index) + off));
        if (r < 0)
            r = -errno;
        else if (s->cfg.msix != HV_SIM_MSIX_NONE && index == s->cfg.msix_bar) {
            /* The kernel hides the MSI-X table from read/write: all ones. */
            uint64_t ts, te;
            msix_layout(s, &ts, &te);
            for (uint64_t i = 0; i < (uint64_t)r; i++)
                if (off + i >= ts && off + i < te)
                    ((uint8_t *)buf)[i] = 0xff;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

static void cfg_write(struct sim *s, uint64_t off, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t m = s->wm[off + i];
        s->cs[off + i] = (uint8_t)((s->cs[off + i] & ~m) | (p[i] & m));
    }
}

static ssize_t sim_region_write(struct hv_device *d, uint32_t index, uint64_t off,
                                const void *buf, size_t len)
{
    struct sim *s = S(d);
    uint64_t size;
    pthread_mutex_lock(&s->lock);
    ssize_t r = region_check(s, index, off, len, &size);
    if (r == 0 && index == VFIO_PCI_CONFIG_REGION_INDEX) {
        cfg_write(s, off, buf, len);
        r = (ssize_t)len;
    } else if (r == 0) {
        const uint8_t *p = buf;
        uint64_t ts = 0, te = 0;
        if (s->cfg.msix != HV_SIM_MSIX_NONE && index == s->cfg.msix_bar)
            msix_layout(s, &ts, &te);
        /* Write around the hidden MSI-X table (writes to it are dropped). */
        size_t done = 0;
        while (done < len && r == 0) {
            uint64_t o = off + done;
            size_t n = len - done;
            if (o >= ts && o < te) {
                size_t skip = (size_t)(te - o < n ? te - o : n);
                done += skip;
                continue;
            }
            if (o < ts && ts - o < n)
                n = (size_t)(ts - o);
            ssize_t w = pwrite(s->memfd, p + done, n, (off_t)(bar_off(index) + o));
            if (w < 0)
                r = -errno;
            else
                done += (size_t)w;
        }
        if (r == 0) {
            r = (ssize_t)len;
            if (index == 0)
                sim_edu_write(&s->edu, off, len);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* Like type1's new VFIO_GROUP_GET_DEVICE_FD: a new open file of the same
 * BAR memory (reopened through /proc, so kcmp(KCMP_FILE) tells it from the
 * sim's own memfd and from every other session's), never a dup of it.
 * Whoever keeps it reaches the BARs as long as they like, as on the kernel. */
static int sim_mmap_fd(struct hv_device *d)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", S(d)->memfd);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static void sim_reset_locked(struct sim *s);

static int sim_reset(struct hv_device *d)
{
    struct sim *s = S(d);
    if (!s->cfg.reset)
        return -ENOTTY;
    pthread_mutex_lock(&s->lock);
    sim_reset_locked(s);
    s->resets++;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int sim_hot_reset_info(struct hv_device *d, struct hv_reset_dep *out, size_t max,
                              size_t *n)
{
    struct sim *s = S(d);
    struct sim_iommu *io = IO(s);
    *n = 0;
    if (!s->cfg.bus_reset)
        return -ENODEV;
    pthread_mutex_lock(&io->lock);
    for (size_t i = 0; i < io->ndevs; i++) {
        if (!io->devs[i]->cfg.bus_reset)
            continue;
        if (*n < max) {
            hv_strlcpy(out[*n].addr, io->devs[i]->base.addr, sizeof(out[*n].addr));
            out[*n].group = io->devs[i]->base.group;
        }
        (*n)++;
    }
    pthread_mutex_unlock(&io->lock);
    return *n > max ? -ENOSPC : 0;
}

static int sim_hot_reset(struct hv_device *d, struct vub_err *err)
{
    struct sim *s = S(d);
    struct sim_iommu *io = IO(s);
    if (!s->cfg.bus_reset)
        return vub_fail(err, -ENODEV, "%s: no bus reset", d->addr);
    /* the devices of the bus first, then each under its own lock: a
     * device's lock is taken before its context's elsewhere (the edu DMA
     * engine), never after (the devices stay open: the caller holds them) */
    struct sim *bus[HV_MAX_RESET_DEPS];
    size_t n = 0;
    pthread_mutex_lock(&io->lock);
    for (size_t i = 0; i < io->ndevs; i++)
        if (io->devs[i]->cfg.bus_reset)
            bus[n++] = io->devs[i];
    pthread_mutex_unlock(&io->lock);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&bus[i]->lock);
        sim_reset_locked(bus[i]);
        bus[i]->bus_resets++;
        pthread_mutex_unlock(&bus[i]->lock);
    }
    return 0;
}

/* The device's own state back to power-on (reset and hot reset). */
static void sim_reset_locked(struct sim *s)
{
    for (uint32_t i = 0; i < 6; i++) {
        uint64_t sz = s->bars[i].size;
        if (!sz)
            continue;
        if (fallocate(s->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t)bar_off(i), (off_t)sz) < 0) {
            static const uint8_t zero[4096];
            for (uint64_t o = 0; o < sz; o += sizeof(zero))
                if (pwrite(s->memfd, zero, sz - o < sizeof(zero) ? sz - o : sizeof(zero),
                           (off_t)(bar_off(i) + o)) < 0)
                    break;
        }
    }
    if (s->cfg.msix != HV_SIM_MSIX_NONE) {
        /* MSI-X table entries come out of reset masked (vector control bit 0). */
        uint8_t one[4];
        put32(one, 1);
        for (uint32_t v = 0; v < s->cfg.msix_count; v++)
            if (pwrite(s->memfd, one, 4, (off_t)(bar_off(s->cfg.msix_bar) +
                                                 s->cfg.msix_table_offset + v * 16u + 12)) < 0)
                break;
    }
    sim_edu_reset(&s->edu);
    s->intx_pending = false;
}

static void sim_close(struct hv_device *d)
{
    struct sim *s = S(d);
    if (!s)
        return;
    intx_disable(s);
    msi_disable(s);
    drop_fd(&s->err_trigger);
    drop_fd(&s->req_trigger);
    if (s->memfd >= 0)
        close(s->memfd);
    if (s->base.iommu) {
        struct sim_iommu *io = IO(s);
        pthread_mutex_lock(&io->lock);
        for (size_t i = 0; i < io->ndevs; i++)
            if (io->devs[i] == s)
                io->devs[i] = io->devs[--io->ndevs];
        pthread_mutex_unlock(&io->lock);
    }
    hv_iommu_put(s->base.iommu);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static const struct hv_device_ops sim_ops = {
    .name = "sim",
    .get_info = sim_get_info,
    .get_region_info = sim_get_region_info,
    .get_irq_info = sim_get_irq_info,
    .region_read = sim_region_read,
    .region_write = sim_region_write,
    .set_irqs = sim_set_irqs,
    .reset = sim_reset,
    .hot_reset_info = sim_hot_reset_info,
    .hot_reset = sim_hot_reset,
    .mmap_fd = sim_mmap_fd,
    .close = sim_close,
};

static void sim_iommu_destroy(struct hv_iommu *io)
{
    struct sim_iommu *s = SIO(io);
    for (size_t i = 0; i < s->nmaps; i++)
        sim_unpin(&s->maps[i]);
    free(s->maps);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* No attach/detach: only sim devices attach, in hv_sim_open_on. */
static const struct hv_iommu_ops sim_iommu_ops = {
    .name = "sim",
    .dma_map = sim_dma_map,
    .dma_unmap = sim_dma_unmap,
    .info = sim_iommu_info,
    .destroy = sim_iommu_destroy,
};

/* ---- set-up ---------------------------------------------------------------- */

void hv_sim_config_defaults(struct hv_sim_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->addr = "0000:00:00.0";
    cfg->bar0_size = EDU_BAR_SIZE;
    cfg->msix = HV_SIM_MSIX_NONE;
    cfg->msix_bar = 2;
    cfg->msix_bar_size = 16u << 10;
    cfg->msix_table_offset = 0x2000;
    cfg->msix_count = 65;
    cfg->msix_pba_offset = 0x3000;
    cfg->msi_count = 1;
    cfg->reset = true;
    cfg->dma_entry_limit = 65535;
    cfg->pgsizes = 0x40201000;
    cfg->vendor = EDU_VENDOR_ID;
    cfg->device = EDU_DEVICE_ID;
    cfg->class_code = 0x00ff00;
    cfg->nr_iova_ranges = 2;
    cfg->iova_ranges[0] = (struct hv_iova_range){ 0, 0xfedfffffull };
    cfg->iova_ranges[1] = (struct hv_iova_range){ 0xfef00000ull, 0x7fffffffffull };
}

static bool pow2(uint64_t v) { return v && !(v & (v - 1)); }

static int check_config(const struct hv_sim_config *c, struct vub_err *err)
{
    if (c->bar0_size && (!pow2(c->bar0_size) || c->bar0_size < 16))
        return vub_fail(err, -EINVAL, "sim: BAR0 size %#llx is not a power of two >= 16",
                       (unsigned long long)c->bar0_size);
    if (c->bar0_size > (1ull << SIM_REGION_SHIFT))
        return vub_fail(err, -EINVAL, "sim: BAR0 too large");
    if (c->msi_count > SIM_MAX_MSI || (c->msi_count && !pow2(c->msi_count)))
        return vub_fail(err, -EINVAL, "sim: MSI count %u is not 0 or a power of two <= 32",
                       c->msi_count);
    if (!c->pgsizes || (c->pgsizes & -c->pgsizes) < 4096)
        return vub_fail(err, -EINVAL, "sim: page sizes %#llx lack a size >= 4 KiB",
                       (unsigned long long)c->pgsizes);
    if (c->nr_iova_ranges > HV_MAX_IOVA_RANGES)
        return vub_fail(err, -EINVAL, "sim: too many IOVA ranges");
    if (c->msix == HV_SIM_MSIX_NONE)
        return 0;
    if (c->msix != HV_SIM_MSIX_MAPPABLE_CAP && c->msix != HV_SIM_MSIX_SPARSE_CAP)
        return vub_fail(err, -EINVAL, "sim: unknown MSI-X mode %d", (int)c->msix);
    if (c->msix_bar > 5)
        return vub_fail(err, -EINVAL, "sim: MSI-X BAR %u is not 0-5", c->msix_bar);
    if (c->msix_count == 0 || c->msix_count > SIM_MAX_MSIX)
        return vub_fail(err, -EINVAL, "sim: MSI-X count %u is not 1-2048", c->msix_count);
    uint64_t bsz = c->msix_bar == 0 ? c->bar0_size : c->msix_bar_size;
    if (!pow2(bsz) || bsz > (1ull << SIM_REGION_SHIFT))
        return vub_fail(err, -EINVAL, "sim: MSI-X BAR size %#llx is not a power of two",
                       (unsigned long long)bsz);
    uint64_t tend = c->msix_table_offset + (uint64_t)c->msix_count * 16;
    uint64_t pend = c->msix_pba_offset + ((c->msix_count + 63) / 64) * 8ull;
    if ((c->msix_table_offset & 7) || (c->msix_pba_offset & 7) || tend > bsz || pend > bsz ||
        (c->msix_pba_offset < tend && pend > c->msix_table_offset))
        return vub_fail(err, -EINVAL, "sim: MSI-X table/PBA do not fit BAR %u", c->msix_bar);
    if (c->msix_bar == 0 && c->bar0_size >= EDU_REGS_END && c->msix_table_offset < EDU_REGS_END)
        return vub_fail(err, -EINVAL, "sim: MSI-X table overlaps the edu registers");
    return 0;
}

static void build_bars(struct sim *s)
{
    const struct hv_sim_config *c = &s->cfg;
    const uint32_t rwm = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                         VFIO_REGION_INFO_FLAG_MMAP;
    if (c->bar0_size) {
        s->bars[0].size = c->bar0_size;
        s->bars[0].flags = rwm;
    }
    if (c->msix == HV_SIM_MSIX_NONE)
        return;
    struct sim_bar *b = &s->bars[c->msix_bar];
    if (c->msix_bar != 0) {
        b->size = c->msix_bar_size;
        b->flags = rwm;
    }
    if (c->msix == HV_SIM_MSIX_MAPPABLE_CAP) {
        /* vfio_info_cap_header { id 3, version 1, next 0 } */
        put16(b->caps, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
        put16(b->caps + 2, 1);
        put32(b->caps + 4, 0);
        b->caps_len = 8;
        return;
    }
    /* sparse mmap around the page(s) holding the table, like older kernels */
    uint64_t ts, te;
    msix_layout(s, &ts, &te);
    ts &= ~4095ull;
    te = (te + 4095) & ~4095ull;
    uint64_t areas[2][2];
    uint32_t n = 0;
    if (ts > 0) {
        areas[n][0] = 0;
        areas[n][1] = ts;
        n++;
    }
    if (te < b->size) {
        areas[n][0] = te;
        areas[n][1] = b->size - te;
        n++;
    }
    put16(b->caps, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
    put16(b->caps + 2, 1);
    put32(b->caps + 4, 0);
    put32(b->caps + 8, n);
    put32(b->caps + 12, 0);
    for (uint32_t i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            put32(b->caps + 16 + i * 16 + k * 8, (uint32_t)areas[i][k]);
            put32(b->caps + 16 + i * 16 + k * 8 + 4, (uint32_t)(areas[i][k] >> 32));
        }
    }
    b->caps_len = 16 + n * 16;
}

static void build_config(struct sim *s)
{
    const struct hv_sim_config *c = &s->cfg;
    uint8_t *cs = s->cs, *wm = s->wm;

    put16(cs + 0x00, c->vendor);
    put16(cs + 0x02, c->device);
    put16(cs + PCI_COMMAND_OFF, 0x0002);       /* memory decode on, as vfio-pci leaves it */
    put16(wm + PCI_COMMAND_OFF, 0x0547);       /* IO, MEM, BM, parity, SERR, INTx disable */
    put16(cs + 0x06, 0x0010);                  /* capability list */
    cs[0x08] = 0x10;                           /* revision */
    cs[0x09] = (uint8_t)c->class_code;
    cs[0x0a] = (uint8_t)(c->class_code >> 8);
    cs[0x0b] = (uint8_t)(c->class_code >> 16);
    cs[0x0e] = 0x00;                           /* header type 0 */
    for (uint32_t i = 0; i < 6; i++) {
        uint64_t sz = s->bars[i].size;
        if (!sz)
            continue;
        /* 32-bit non-prefetchable memory BARs with the sizing bits writable */
        uint32_t mask = (uint32_t)~(sz - 1) & 0xfffffff0u;
        put32(cs + 0x10 + 4 * i, (0xe0000000u + i * 0x02000000u) & mask);
        put32(wm + 0x10 + 4 * i, mask);
    }
    put16(cs + 0x2c, 0x1af4);
    put16(cs + 0x2e, 0x1100);
    wm[0x3c] = 0xff;                           /* interrupt line */
    cs[0x3d] = 1;                              /* INTA# */

    uint8_t prev = 0x34;
    if (c->msi_count) {
        uint8_t mmc = 0;
        while ((1u << mmc) < c->msi_count)
            mmc++;
        cs[prev] = CFG_CAP_MSI;
        cs[CFG_CAP_MSI] = 0x05;
        put16(cs + CFG_CAP_MSI + 2, (uint16_t)(0x80 | mmc << 1));   /* 64-bit */
        wm[CFG_CAP_MSI + 2] = 0x71;                                /* enable, MME */
        put32(wm + CFG_CAP_MSI + 4, 0xfffffffc);                   /* address */
        put32(wm + CFG_CAP_MSI + 8, 0xffffffff);
        put16(wm + CFG_CAP_MSI + 12, 0xffff);                      /* data */
        prev = CFG_CAP_MSI + 1;
    }
    if (c->msix != HV_SIM_MSIX_NONE) {
        cs[prev] = CFG_CAP_MSIX;
        cs[CFG_CAP_MSIX] = 0x11;
        put16(cs + CFG_CAP_MSIX + 2, (uint16_t)(c->msix_count - 1));
        wm[CFG_CAP_MSIX + 3] = 0xc0;                               /* enable, mask all */
        put32(cs + CFG_CAP_MSIX + 4, (uint32_t)c->msix_table_offset | c->msix_bar);
        put32(cs + CFG_CAP_MSIX + 8, (uint32_t)c->msix_pba_offset | c->msix_bar);
        prev = CFG_CAP_MSIX + 1;
    }
    cs[prev] = CFG_CAP_PCIE;
    cs[CFG_CAP_PCIE] = 0x10;
    put16(cs + CFG_CAP_PCIE + 2, 0x0002);      /* version 2, endpoint */
}

int hv_sim_iommu_open(const struct hv_sim_config *cfg_in, struct hv_iommu **out,
                      struct vub_err *err)
{
    struct hv_sim_config defaults;
    int r;

    *out = NULL;
    if (!cfg_in) {
        hv_sim_config_defaults(&defaults);
        cfg_in = &defaults;
    }
    if ((r = check_config(cfg_in, err)) < 0)
        return r;
    struct sim_iommu *s = calloc(1, sizeof(*s));
    if (!s)
        return vub_fail(err, -ENOMEM, "sim: out of memory");
    s->cfg = *cfg_in;
    s->cfg.addr = NULL;           /* not the IOMMU's; do not keep the caller's pointer */
    s->base.ops = &sim_iommu_ops;
    s->base.refs = 1;
    s->pgsize = s->cfg.pgsizes & -s->cfg.pgsizes;
    pthread_mutex_init(&s->lock, NULL);
    *out = &s->base;
    return 0;
}

int hv_sim_open_on(const struct hv_sim_config *cfg_in, struct hv_iommu *io,
                   struct hv_device **out, struct vub_err *err)
{
    struct hv_sim_config defaults;
    int r;

    *out = NULL;
    if (!io || io->ops != &sim_iommu_ops)
        return vub_fail(err, -EINVAL, "sim: a simulated device attaches only to a simulated "
                       "IOMMU context, not to %s", io ? io->ops->name : "none");
    if (!cfg_in) {
        hv_sim_config_defaults(&defaults);
        cfg_in = &defaults;
    }
    if ((r = check_config(cfg_in, err)) < 0)
        return r;
    struct sim *s = calloc(1, sizeof(*s));
    if (!s)
        return vub_fail(err, -ENOMEM, "sim: out of memory");
    s->cfg = *cfg_in;
    if (!s->cfg.addr)
        s->cfg.addr = "0000:00:00.0";
    s->base.ops = &sim_ops;
    s->base.iommu = io;
    hv_iommu_get(io);
    hv_strlcpy(s->base.addr, s->cfg.addr, sizeof(s->base.addr));
    s->cfg.addr = s->base.addr;   /* do not keep the caller's pointer */
    s->base.group = -1;
    s->irq_type = IRQ_NONE;
    s->intx_trigger = s->intx_unmask = s->err_trigger = s->req_trigger = -1;
    for (uint32_t i = 0; i < SIM_MAX_MSIX; i++)
        s->vec[i] = -1;
    pthread_mutex_init(&s->lock, NULL);

    build_bars(s);
    build_config(s);
    s->memfd = memfd_create("hv-sim-bars", MFD_CLOEXEC);
    if (s->memfd < 0) {
        r = vub_fail(err, -errno, "sim: memfd_create: %s", strerror(errno));
        sim_close(&s->base);
        return r;
    }
    uint64_t end = 0;
    for (uint32_t i = 0; i < 6; i++)
        if (s->bars[i].size)
            end = bar_off(i) + s->bars[i].size;
    if (end && ftruncate(s->memfd, (off_t)end) < 0) {
        r = vub_fail(err, -errno, "sim: sizing the BAR memfd: %s", strerror(errno));
        sim_close(&s->base);
        return r;
    }
    sim_edu_init(&s->edu, s, s->memfd, s->cfg.bar0_size);
    struct sim_iommu *sio = SIO(io);
    r = 0;
    pthread_mutex_lock(&sio->lock);
    if (sio->ndevs < HV_MAX_RESET_DEPS)
        sio->devs[sio->ndevs++] = s;
    else
        r = -ENOSPC;
    pthread_mutex_unlock(&sio->lock);
    if (r < 0) {
        sim_close(&s->base);
        return vub_fail(err, r, "sim: more than %u devices on one context", HV_MAX_RESET_DEPS);
    }
    *out = &s->base;
    return 0;
}

int hv_sim_open(const struct hv_sim_config *cfg, struct hv_device **out, struct vub_err *err)
{
    struct hv_iommu *io;
    *out = NULL;
    int r = hv_sim_iommu_open(cfg, &io, err);
    if (r < 0)
        return r;
    r = hv_sim_open_on(cfg, io, out, err);
    hv_iommu_put(io);   /* the device holds its own reference */
    return r;
}

/* ---- test hooks ------------------------------------------------------------ */

int hv_sim_fire_irq(struct hv_device *d, uint32_t index, uint32_t sub)
{
    SIM_OR(d, -EINVAL);
    struct sim *s = S(d);
    if (index >= SIM_NUM_IRQS || sub >= irq_count(s, index))
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    int r = 0;
    switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX: r = intx_fire(s); break;
    case VFIO_PCI_MSI_IRQ_INDEX:
    case VFIO_PCI_MSIX_IRQ_INDEX:
        if (s->irq_type == (int)index && sub < s->nvec && s->vec[sub] >= 0) {
            signal_fd(s->vec[sub]);
            r = 1;
        }
        break;
    default: {
        int fd = index == VFIO_PCI_ERR_IRQ_INDEX ? s->err_trigger : s->req_trigger;
        if (fd >= 0) {
            signal_fd(fd);
            r = 1;
        }
        break;
    }
    }
    pthread_mutex_unlock(&s->lock);
    return r;
}

int hv_sim_irq_fd(struct hv_device *d, uint32_t index, uint32_t sub)
{
    SIM_OR(d, -1);
    struct sim *s = S(d);
    int fd = -1;
    pthread_mutex_lock(&s->lock);
    switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
        if (sub == 0 && s->irq_type == VFIO_PCI_INTX_IRQ_INDEX)
            fd = s->intx_trigger;
        break;
    case VFIO_PCI_MSI_IRQ_INDEX:
    case VFIO_PCI_MSIX_IRQ_INDEX:
        if (s->irq_type == (int)index && sub < s->nvec)
            fd = s->vec[sub];
        break;
    case VFIO_PCI_ERR_IRQ_INDEX: fd = sub == 0 ? s->err_trigger : -1; break;
    case VFIO_PCI_REQ_IRQ_INDEX: fd = sub == 0 ? s->req_trigger : -1; break;
    default: break;
    }
    pthread_mutex_unlock(&s->lock);
    return fd;
}

int hv_sim_stats(struct hv_device *d, struct hv_sim_stats *out)
{
    memset(out, 0, sizeof(*out));
    SIM_OR(d, -EINVAL);
    struct sim *s = S(d);
    pthread_mutex_lock(&s->lock);
    intx_poll_unmask(s);
    out->intx_masked = s->intx_masked;
    if (s->irq_type == VFIO_PCI_INTX_IRQ_INDEX)
        out->irq_enabled[VFIO_PCI_INTX_IRQ_INDEX] = 1;
    else if (s->irq_type == VFIO_PCI_MSI_IRQ_INDEX || s->irq_type == VFIO_PCI_MSIX_IRQ_INDEX)
        out->irq_enabled[s->irq_type] = s->nvec;
    out->irq_enabled[VFIO_PCI_ERR_IRQ_INDEX] = s->err_trigger >= 0;
    out->irq_enabled[VFIO_PCI_REQ_IRQ_INDEX] = s->req_trigger >= 0;
    out->open_irq_fds = (s->intx_trigger >= 0) + (s->intx_unmask >= 0) +
                        (s->err_trigger >= 0) + (s->req_trigger >= 0);
    for (uint32_t i = 0; i < s->nvec; i++)
        out->open_irq_fds += s->vec[i] >= 0;
    out->resets = s->resets;
    out->bus_resets = s->bus_resets;
    out->command = get16(&s->cs[PCI_COMMAND_OFF]);
    out->dma_faults = s->edu.dma_faults;
    pthread_mutex_unlock(&s->lock);
    struct sim_iommu *io = IO(s);   /* after the device's lock, as the edu engine */
    pthread_mutex_lock(&io->lock);
    out->dma_maps = io->nmaps;
    out->dma_bytes = io->mapped_bytes;
    pthread_mutex_unlock(&io->lock);
    return 0;
}
