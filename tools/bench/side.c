/* SPDX-License-Identifier: MIT */
/*
 * side.c - the two sides the bench compares, behind one small ops table:
 *  - direct: the device opened in this process through host-vfio (the kernel
 *    type1 back end, or the simulated device natively); every operation is
 *    the ops-table call a VMM holding the VFIO fds would make (pread/pwrite
 *    on the device fd, VFIO_IOMMU_MAP_DMA, VFIO_DEVICE_SET_IRQS);
 *  - bridge: the same operation as a vfio-user message to vfio-user-bridge.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "hv.h"
#include "vu_client.h"

static int side_fail(struct bench_side *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int side_fail(struct bench_side *s, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    return rc < 0 ? rc : -EIO;
}

/* ---- direct -------------------------------------------------------------- */

struct direct_side {
    struct bench_side s;
    struct hv_device *d;
    struct hv_region_info ri;   /* scratch: 4 KiB of caps, kept off the stack */
};

static struct hv_device *dev_of(struct bench_side *s)
{
    return ((struct direct_side *)s)->d;
}

static int d_read(struct bench_side *s, uint32_t region, uint64_t off, void *buf, uint32_t len)
{
    struct hv_device *d = dev_of(s);
    ssize_t n = hv_region_read(d, region, off, buf, len);
    if (n != (ssize_t)len)
        return side_fail(s, (int)n, "read region %u +0x%llx: %s", region,
                         (unsigned long long)off, n < 0 ? strerror((int)-n) : "short");
    return 0;
}

static int d_write(struct bench_side *s, uint32_t region, uint64_t off, const void *buf,
                   uint32_t len, bool posted)
{
    struct hv_device *d = dev_of(s);
    (void)posted; /* a pwrite is done when it returns */
    ssize_t n = hv_region_write(d, region, off, buf, len);
    if (n != (ssize_t)len)
        return side_fail(s, (int)n, "write region %u +0x%llx: %s", region,
                         (unsigned long long)off, n < 0 ? strerror((int)-n) : "short");
    return 0;
}

/* A VMM holding the fds has no batching: one pwrite per write. */
static int d_write_multi(struct bench_side *s, const struct vu_write_multi_entry *w, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        struct vu_write_multi_entry e;
        memcpy(&e, &w[i], sizeof(e));
        int rc = d_write(s, e.region, e.offset, e.data, e.count, true);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int d_sync(struct bench_side *s)
{
    (void)s;
    return 0;
}

static int d_region(struct bench_side *s, uint32_t index, struct bench_region *out, int *fd)
{
    struct direct_side *ds = (struct direct_side *)s;
    struct hv_device *d = ds->d;
    int rc = hv_get_region_info(d, index, &ds->ri);
    if (rc < 0)
        return side_fail(s, rc, "region %u info: %s", index, strerror(-rc));
    out->size = ds->ri.size;
    out->offset = ds->ri.offset;
    out->flags = ds->ri.flags;
    if (fd) {
        *fd = -1;
        if (ds->ri.flags & VU_REGION_INFO_FLAG_MMAP) {
            int f = hv_mmap_fd(d);
            if (f < 0)
                return side_fail(s, f, "region %u mmap fd: %s", index, strerror(-f));
            *fd = f;
        }
    }
    return 0;
}

static int d_dma_map(struct bench_side *s, uint64_t iova, uint64_t size, int memfd,
                     uint64_t fd_off, void *vaddr)
{
    struct hv_device *d = dev_of(s);
    (void)memfd;
    (void)fd_off;
    int rc = hv_dma_map(d, iova, vaddr, size, HV_DMA_READ | HV_DMA_WRITE);
    if (rc < 0)
        return side_fail(s, rc, "DMA map 0x%llx+0x%llx: %s", (unsigned long long)iova,
                         (unsigned long long)size, strerror(-rc));
    return 0;
}

static int d_dma_unmap(struct bench_side *s, uint64_t iova, uint64_t size)
{
    struct hv_device *d = dev_of(s);
    int rc = hv_dma_unmap(d, iova, size, 0);
    if (rc < 0)
        return side_fail(s, rc, "DMA unmap 0x%llx+0x%llx: %s", (unsigned long long)iova,
                         (unsigned long long)size, strerror(-rc));
    return 0;
}

static int d_irq_eventfd(struct bench_side *s, uint32_t index, int efd)
{
    struct hv_device *d = dev_of(s);
    int rc;
    if (efd >= 0) {
        int32_t fd32 = efd;
        rc = hv_set_irqs(d, VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER, index,
                              0, 1, &fd32);
    } else {
        rc = hv_set_irqs(d, VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_TRIGGER, index, 0, 0,
                              NULL);
    }
    if (rc < 0)
        return side_fail(s, rc, "SET_IRQS index %u: %s", index, strerror(-rc));
    return 0;
}

static uint32_t d_max_maps(struct bench_side *s)
{
    struct hv_device *d = dev_of(s);
    struct hv_iommu_info ii;
    if (hv_iommu_get_info(d, &ii) == 0 && ii.has_dma_avail)
        return ii.dma_avail;
    return 65535;
}

static void d_close(struct bench_side *s)
{
    struct direct_side *ds = (struct direct_side *)s;
    hv_close(ds->d);
    free(ds);
}

static const struct bench_side_ops direct_ops = {
    .read = d_read, .write = d_write, .write_multi = d_write_multi, .sync = d_sync,
    .region = d_region, .dma_map = d_dma_map, .dma_unmap = d_dma_unmap,
    .irq_eventfd = d_irq_eventfd, .max_maps = d_max_maps, .close = d_close,
};

int bench_side_direct(struct hv_device *d, struct bench_side **out)
{
    struct direct_side *ds = calloc(1, sizeof(*ds));
    if (!ds) {
        hv_close(d);
        return -ENOMEM;
    }
    ds->s.ops = &direct_ops;
    ds->s.name = "direct";
    ds->d = d;
    *out = &ds->s;
    return 0;
}

/* ---- bridge --------------------------------------------------------------- */

struct bridge_side {
    struct bench_side s;
    struct vu_client *c;
};

static struct vu_client *cl_of(struct bench_side *s)
{
    return ((struct bridge_side *)s)->c;
}

#define B_FAIL(s, rc, what, ...) \
    side_fail(s, (int)(rc), what ": %s (%s)", __VA_ARGS__, strerror((int)-(rc)), \
              vu_client_error(cl_of(s)))

static int b_read(struct bench_side *s, uint32_t region, uint64_t off, void *buf, uint32_t len)
{
    ssize_t n = vu_client_region_read(cl_of(s), region, off, buf, len);
    if (n != (ssize_t)len)
        return B_FAIL(s, n < 0 ? n : -EIO, "REGION_READ %u +0x%llx", region,
                      (unsigned long long)off);
    return 0;
}

static int b_write(struct bench_side *s, uint32_t region, uint64_t off, const void *buf,
                   uint32_t len, bool posted)
{
    ssize_t n = vu_client_region_write(cl_of(s), region, off, buf, len, posted);
    if (n != (ssize_t)len)
        return B_FAIL(s, n < 0 ? n : -EIO, "REGION_WRITE %u +0x%llx", region,
                      (unsigned long long)off);
    return 0;
}

static int b_write_multi(struct bench_side *s, const struct vu_write_multi_entry *w, uint32_t n)
{
    ssize_t rc = vu_client_region_write_multi(cl_of(s), w, n, true);
    if (rc != (ssize_t)n)
        return B_FAIL(s, rc < 0 ? rc : -EIO, "REGION_WRITE_MULTI of %u", n);
    return 0;
}

/* The bridge handles a connection's messages in order, so any reply means
 * every posted write sent before it has been done. */
static int b_sync(struct bench_side *s)
{
    struct vu_device_info di;
    int rc = vu_client_get_info(cl_of(s), &di);
    if (rc < 0)
        return B_FAIL(s, rc, "%s", "DEVICE_GET_INFO");
    return 0;
}

static int b_region(struct bench_side *s, uint32_t index, struct bench_region *out, int *fd)
{
    struct vu_client_region r;
    int rc = vu_client_get_region_info(cl_of(s), index, 0, &r);
    if (rc < 0)
        return B_FAIL(s, rc, "GET_REGION_INFO %u", index);
    out->size = r.info.size;
    out->offset = r.info.offset;
    out->flags = r.info.flags;
    if (fd)
        *fd = r.fd;
    else if (r.fd >= 0)
        close(r.fd);
    return 0;
}

static int b_dma_map(struct bench_side *s, uint64_t iova, uint64_t size, int memfd,
                     uint64_t fd_off, void *vaddr)
{
    (void)vaddr;
    int rc = vu_client_dma_map(cl_of(s), iova, size, memfd, fd_off,
                               VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE);
    if (rc < 0)
        return B_FAIL(s, rc, "DMA_MAP 0x%llx+0x%llx", (unsigned long long)iova,
                      (unsigned long long)size);
    return 0;
}

static int b_dma_unmap(struct bench_side *s, uint64_t iova, uint64_t size)
{
    int rc = vu_client_dma_unmap(cl_of(s), iova, size, 0);
    if (rc < 0)
        return B_FAIL(s, rc, "DMA_UNMAP 0x%llx+0x%llx", (unsigned long long)iova,
                      (unsigned long long)size);
    return 0;
}

static int b_irq_eventfd(struct bench_side *s, uint32_t index, int efd)
{
    int rc;
    if (efd >= 0)
        rc = vu_client_set_irqs(cl_of(s), VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER,
                                index, 0, 1, &efd, 1, NULL);
    else
        rc = vu_client_set_irqs(cl_of(s), VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_TRIGGER,
                                index, 0, 0, NULL, 0, NULL);
    if (rc < 0)
        return B_FAIL(s, rc, "SET_IRQS index %u", index);
    return 0;
}

static uint32_t b_max_maps(struct bench_side *s)
{
    const struct vu_caps *caps = vu_client_server_caps(cl_of(s));
    return caps ? caps->max_dma_maps : 65535;
}

static void b_close(struct bench_side *s)
{
    struct bridge_side *bs = (struct bridge_side *)s;
    vu_client_close(bs->c);
    free(bs);
}

static const struct bench_side_ops bridge_ops = {
    .read = b_read, .write = b_write, .write_multi = b_write_multi, .sync = b_sync,
    .region = b_region, .dma_map = b_dma_map, .dma_unmap = b_dma_unmap,
    .irq_eventfd = b_irq_eventfd, .max_maps = b_max_maps, .close = b_close,
};

int bench_side_bridge_fd(struct bench_side *s)
{
    return s->ops == &bridge_ops ? vu_client_fd(cl_of(s)) : -1;
}

int bench_side_bridge(struct vu_client *c, struct bench_side **out)
{
    struct bridge_side *bs = calloc(1, sizeof(*bs));
    if (!bs) {
        vu_client_close(c);
        return -ENOMEM;
    }
    bs->s.ops = &bridge_ops;
    bs->s.name = "bridge";
    bs->c = c;
    *out = &bs->s;
    return 0;
}
