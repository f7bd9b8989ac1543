/* SPDX-License-Identifier: MIT */
/*
 * measure.c - the figures. Every one is run the same way on each side (k = 0
 * bridge, k = 1 direct) so that only the path differs; see bench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "edu_regs.h"
#include "hv_sim.h"
#include "vu_client.h"


#define REGION_BAR0   0u
#define REGION_CONFIG 7u
#define IRQ_MSI       1u

#define K_BRIDGE 0
#define K_DIRECT 1

/* Most DMA mappings held at once in the DMA figures: the kernel's type1
 * default (dma_entry_limit 65535) cannot hold the 65536 4-KiB pieces of
 * 256 MiB, so the area is done in equal rounds of at most this many. */
#define DMA_ROUND_MAX 32768u
#define FOOTPRINT_MAPS 1000u
#define IRQ_TIMEOUT_MS 5000

void bench_figures_init(struct bench_result *r)
{
    static const struct {
        const char *key, *label, *unit;
        bool rate;
    } d[FIG_COUNT] = {
        [FIG_FLOOR] = {"socket_pingpong", "UNIX socket ping-pong, 32 B / 36 B (floor)", "us", false},
        [FIG_FLOOR_FRAMED] = {"socket_pingpong_framed", "Same, with the transport's system calls (sendmsg, recvmsg; poll, recvmsg, sendmsg)", "us", false},
        [FIG_FLOOR_SPIN] = {"socket_pingpong_spin", "Same, both ends busy-polling (spin up to --poll-us, then block)", "us", false},
        [FIG_RT_CONFIG] = {"trapped_config_read4", "Trapped 4-byte config space read", "us", false},
        [FIG_RT_BAR] = {"trapped_bar_read4", "Trapped 4-byte BAR0 register read", "us", false},
        [FIG_RT_POLL] = {"trapped_config_read4_poll", "Trapped 4-byte config space read, bridge --poll-us and a busy-polling client", "us", false},
        [FIG_POSTED] = {"posted_write4", "Posted 4-byte REGION_WRITE (No_reply), per write", "us", true},
        [FIG_MULTI] = {"write_multi4", "REGION_WRITE_MULTI, per 4-byte write", "us", true},
        [FIG_MMIO_READ] = {"mmio_read4", "4-byte read through the mmapped BAR0", "ns", false},
        [FIG_MMIO_WRITE] = {"mmio_write4", "4-byte write through the mmapped BAR0", "ns", false},
        [FIG_DMA_MAP_4K] = {"dma_map_4k", "DMA map, 4 KiB pieces, per map", "us", true},
        [FIG_DMA_UNMAP_4K] = {"dma_unmap_4k", "DMA unmap, 4 KiB pieces, per unmap", "us", true},
        [FIG_DMA_MAP_2M] = {"dma_map_2m", "DMA map, 2 MiB pieces, per map", "us", true},
        [FIG_DMA_UNMAP_2M] = {"dma_unmap_2m", "DMA unmap, 2 MiB pieces, per unmap", "us", true},
        [FIG_DMA_TOTAL_4K] = {"dma_total_4k", "DMA map + unmap of the whole area, 4 KiB pieces", "ms", false},
        [FIG_DMA_TOTAL_2M] = {"dma_total_2m", "DMA map + unmap of the whole area, 2 MiB pieces", "ms", false},
        [FIG_DMA_MAP_2M_FRESH] = {"dma_map_2m_fresh_mmap", "DMA map, 2 MiB pieces, each piece freshly mmapped first (the bridge's work, in-process)", "us", true},
        [FIG_DMA_UNMAP_2M_FRESH] = {"dma_unmap_2m_fresh_mmap", "DMA unmap, 2 MiB pieces, then munmap of the piece", "us", true},
        [FIG_IRQ_LATENCY] = {"irq_latency", "Interrupt: raise register written to eventfd wake-up", "us", false},
        [FIG_IRQ_BRIDGE_CPU] = {"irq_bridge_cpu", "Bridge CPU time per interrupt", "us", false},
        [FIG_RSS_IDLE] = {"rss_idle", "Bridge resident memory, listening, idle", "KiB", false},
        [FIG_RSS_MAPS] = {"rss_1000_maps", "Bridge resident memory, 1000 DMA mappings of 4 KiB", "KiB", false},
        [FIG_STARTUP] = {"startup", "Bridge start-up to listening", "ms", false},
        [FIG_VIOMMU_CYCLE] = {"viommu_cycle", "vIOMMU cycle: 4 KiB map + unmap of one IOVA, re-mapped to another page each time", "us", true},
        [FIG_VIOMMU_FLOOR] = {"viommu_floor", "Floor of the cycle's two messages: framed ping-pongs, one passing an fd, in turns with it", "us", false},
        [FIG_VIOMMU_FRAMED] = {"viommu_cycle_framed", "Same cycle, the client's messages framed by hand (no vu_client), in turns with its own floor and direct cycle", "us", true},
    };
    for (int i = 0; i < FIG_COUNT; i++) {
        r->fig[i].key = d[i].key;
        r->fig[i].label = d[i].label;
        r->fig[i].unit = d[i].unit;
        r->fig[i].rate = d[i].rate;
    }
}

/* Samples are taken in ns; figures are kept in their display unit. */
static double unit_div(const char *unit)
{
    if (strcmp(unit, "us") == 0)
        return 1e3;
    if (strcmp(unit, "ms") == 0)
        return 1e6;
    return 1;
}

static int fig_set(struct bench_result *r, enum bench_fig f, int k, struct bench_samples *s,
                   uint64_t ops, bool in_ns)
{
    struct bench_figure *fg = &r->fig[f];
    double div = in_ns ? unit_div(fg->unit) : 1;
    for (size_t i = 0; i < s->n; i++)
        s->v[i] /= div;
    int rc = bench_stats_compute(s, &fg->st[k]);
    if (rc == 0) {
        fg->has[k] = true;
        fg->ops[k] = ops;
    }
    bench_samples_free(s);
    return rc;
}

static void fig_fail(struct bench_result *r, enum bench_fig f, const char *side, const char *why)
{
    fprintf(stderr, "vfio-user-bench: %s (%s): %s\n", r->fig[f].key, side, why);
    r->errors++;
}

/* ---- the plans ------------------------------------------------------------ */

static struct bench_plan plan_latency(const struct bench_config *cfg)
{
    return (struct bench_plan){
        .samples = cfg->samples,
        .warmup = cfg->quick ? 20 : 200,
        .batch = 0,
        .min_batch_ns = 20000,
    };
}

static unsigned posted_samples(const struct bench_config *cfg)
{
    unsigned n = cfg->samples / 8;
    return n < 10 ? 10 : n;
}

/* ---- trapped accesses and posted writes ----------------------------------- */

struct rw_ctx {
    struct bench_side *s;
    uint32_t region;
    uint64_t off;
    uint32_t expect;
    bool have_expect;
    struct vu_write_multi_entry *multi;
    uint32_t nmulti;
};

static int op_read4(void *p, uint64_t i)
{
    struct rw_ctx *c = p;
    uint32_t v = 0;
    (void)i;
    int rc = c->s->ops->read(c->s, c->region, c->off, &v, 4);
    if (rc < 0)
        return rc;
    if (!c->have_expect) {
        c->expect = v;
        c->have_expect = true;
    } else if (v != c->expect) {
        snprintf(c->s->err, sizeof(c->s->err), "read 0x%08x, earlier 0x%08x", v, c->expect);
        return -EIO;
    }
    return 0;
}

static int op_posted4(void *p, uint64_t i)
{
    struct rw_ctx *c = p;
    uint32_t v = (uint32_t)i;
    return c->s->ops->write(c->s, c->region, c->off, &v, 4, true);
}

static int op_multi(void *p, uint64_t i)
{
    struct rw_ctx *c = p;
    for (uint32_t k = 0; k < c->nmulti; k++) {
        uint32_t v = (uint32_t)(i * c->nmulti + k);
        memcpy(c->multi[k].data, &v, 4);
    }
    return c->s->ops->write_multi(c->s, c->multi, c->nmulti);
}

static int op_sync(void *p, uint64_t i)
{
    struct rw_ctx *c = p;
    (void)i;
    return c->s->ops->sync(c->s);
}

static void run_read(const struct bench_config *cfg, struct bench_side *s, int k,
                     struct bench_result *r, enum bench_fig f, uint32_t region, uint64_t off,
                     uint32_t *seen)
{
    struct rw_ctx c = {.s = s, .region = region, .off = off};
    struct bench_plan p = plan_latency(cfg);
    struct bench_samples smp = {0};
    uint64_t ops = 0;
    int rc = bench_run(&p, op_read4, &c, &smp, &ops);
    if (rc == 0)
        rc = fig_set(r, f, k, &smp, ops, true);
    if (rc < 0) {
        bench_samples_free(&smp);
        fig_fail(r, f, s->name, s->err[0] ? s->err : strerror(-rc));
        return;
    }
    *seen = c.expect;
}

static void run_posted(const struct bench_config *cfg, struct bench_side *s, int k,
                       struct bench_result *r)
{
    struct rw_ctx c = {.s = s, .region = REGION_BAR0, .off = EDU_LIVENESS};
    struct bench_plan p = {
        .samples = posted_samples(cfg),
        .warmup = cfg->quick ? 32 : 256,
        .batch = cfg->quick ? 32 : 256,
        .end = op_sync,
    };
    struct bench_samples smp = {0};
    uint64_t ops = 0;
    int rc = bench_run(&p, op_posted4, &c, &smp, &ops);
    if (rc == 0)
        rc = fig_set(r, FIG_POSTED, k, &smp, ops, true);
    if (rc < 0) {
        bench_samples_free(&smp);
        fig_fail(r, FIG_POSTED, s->name, s->err[0] ? s->err : strerror(-rc));
    }
}

static void run_multi(const struct bench_config *cfg, struct bench_side *s, int k,
                      struct bench_result *r)
{
    uint32_t n = cfg->quick ? 50 : VU_WRITE_MULTI_MAX_ENTRIES;
    struct vu_write_multi_entry *w = calloc(n, sizeof(*w));
    if (!w) {
        fig_fail(r, FIG_MULTI, s->name, "out of memory");
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct vu_write_multi_entry e = {.offset = EDU_LIVENESS, .region = REGION_BAR0, .count = 4};
        memcpy(&w[i], &e, sizeof(e));
    }
    struct rw_ctx c = {.s = s, .multi = w, .nmulti = n};
    struct bench_plan p = {
        .samples = posted_samples(cfg),
        .warmup = 2,
        .batch = cfg->quick ? 2 : 4,
        .end = op_sync,
        .div = n,
    };
    struct bench_samples smp = {0};
    uint64_t ops = 0;
    int rc = bench_run(&p, op_multi, &c, &smp, &ops);
    if (rc == 0)
        rc = fig_set(r, FIG_MULTI, k, &smp, ops * n, true);
    if (rc < 0) {
        bench_samples_free(&smp);
        fig_fail(r, FIG_MULTI, s->name, s->err[0] ? s->err : strerror(-rc));
    }
    r->multi_batch = n;
    free(w);
}

/* ---- MMIO through the mapped BAR -------------------------------------------- */

struct bar_map {
    volatile uint32_t *p;
    size_t len;
};

static int bar_map_open(struct bench_side *s, struct bar_map *m)
{
    struct bench_region reg;
    int fd = -1;
    int rc = s->ops->region(s, REGION_BAR0, &reg, &fd);
    if (rc < 0)
        return rc;
    if (fd < 0) {
        snprintf(s->err, sizeof(s->err), "BAR0 is not mmappable (flags 0x%x)", reg.flags);
        return -ENOTSUP;
    }
    void *p = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)reg.offset);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) {
        snprintf(s->err, sizeof(s->err), "mmap BAR0 (%llu bytes at 0x%llx): %s",
                 (unsigned long long)reg.size, (unsigned long long)reg.offset, strerror(e));
        return -e;
    }
    m->p = p;
    m->len = reg.size;
    return 0;
}

static void bar_map_close(struct bar_map *m)
{
    if (m->p)
        munmap((void *)m->p, m->len);
    m->p = NULL;
}

struct mmio_ctx {
    struct bench_side *s;
    volatile uint32_t *p;
    uint32_t expect;
};

/* MMIO_UNROLL accesses per call, so that on memory-backed BARs (the
 * simulated device) the figure is the access and not the indirect call. */
#define MMIO_UNROLL 16

static int op_mmio_read(void *p, uint64_t i)
{
    struct mmio_ctx *c = p;
    volatile uint32_t *reg = &c->p[EDU_ID / 4];
    const uint32_t expect = c->expect;
    uint32_t acc = 0;
    (void)i;
    for (int k = 0; k < MMIO_UNROLL; k++)
        acc |= *reg ^ expect;
    if (acc) {
        snprintf(c->s->err, sizeof(c->s->err), "mmio read 0x%08x, expected 0x%08x", *reg,
                 c->expect);
        return -EIO;
    }
    return 0;
}

static int op_mmio_write(void *p, uint64_t i)
{
    struct mmio_ctx *c = p;
    volatile uint32_t *reg = &c->p[EDU_LIVENESS / 4];
    for (int k = 0; k < MMIO_UNROLL; k++)
        *reg = (uint32_t)i + (uint32_t)k;
    return 0;
}

/* keep == NULL: the figures are set now. Else the samples (ns) are added
 * to keep[0] (reads) and keep[1] (writes), for bench_mmio_finish. */
static void run_mmio(const struct bench_config *cfg, struct bench_side *s, int k,
                     struct bench_result *r, volatile uint32_t *bar, unsigned samples,
                     struct bench_samples *keep)
{
    static const enum bench_fig figs[2] = {FIG_MMIO_READ, FIG_MMIO_WRITE};
    static const bench_op_fn fns[2] = {op_mmio_read, op_mmio_write};
    struct mmio_ctx c = {.s = s, .p = bar, .expect = EDU_ID_VALUE};
    struct bench_plan p = plan_latency(cfg);
    p.div = MMIO_UNROLL;
    p.samples = samples;
    for (int w = 0; w < 2; w++) {
        struct bench_samples smp = {0};
        struct bench_samples *into = keep ? &keep[w] : &smp;
        uint64_t ops = 0;
        int rc = bench_run(&p, fns[w], &c, into, &ops);
        r->fig[figs[w]].ops[k] += ops * MMIO_UNROLL;
        if (rc == 0 && !keep)
            rc = fig_set(r, figs[w], k, &smp, r->fig[figs[w]].ops[k], true);
        if (rc < 0)
            fig_fail(r, figs[w], s->name, s->err[0] ? s->err : strerror(-rc));
        bench_samples_free(&smp);
    }
}

void bench_mmio_finish(struct bench_result *r)
{
    static const enum bench_fig figs[2] = {FIG_MMIO_READ, FIG_MMIO_WRITE};
    for (int w = 0; w < 2; w++) {
        if (r->mmio_keep[w].n)
            fig_set(r, figs[w], K_DIRECT, &r->mmio_keep[w], r->fig[figs[w]].ops[K_DIRECT], true);
        bench_samples_free(&r->mmio_keep[w]);
    }
}

/* Simulated device: its memory-backed BAR costs a cycle or two per access,
 * where a drift of the host between two phases would decide the ratio. The
 * bench opens a second simulated device in-process (the simulator is not
 * exclusive like a VFIO group) and measures both mappings in turns. */
static void run_mmio_sim_turns(const struct bench_config *cfg, struct bench_side *s,
                               struct bench_result *r, volatile uint32_t *bar)
{
    static const enum bench_fig figs[2] = {FIG_MMIO_READ, FIG_MMIO_WRITE};
    static const bench_op_fn fns[2] = {op_mmio_read, op_mmio_write};
    struct hv_sim_config sc;
    struct hv_device *d = NULL;
    struct bench_side *ds = NULL;
    struct bar_map dbar = {0};
    int rc;

    hv_sim_config_defaults(&sc);
    rc = hv_sim_open(&sc, &d, NULL);
    if (rc == 0)
        rc = bench_side_direct(d, &ds);
    if (rc == 0)
        rc = bar_map_open(ds, &dbar);
    for (int w = 0; rc == 0 && w < 2; w++) {
        struct mmio_ctx cb = {.s = s, .p = bar, .expect = EDU_ID_VALUE};
        struct mmio_ctx cd = {.s = ds, .p = dbar.p, .expect = EDU_ID_VALUE};
        bench_op_fn ops[2] = {fns[w], fns[w]};
        void *ctxs[2] = {&cb, &cd};
        struct bench_samples smp[2] = {{0}};
        uint64_t done[2] = {0};
        struct bench_plan p = plan_latency(cfg);
        p.turn = cfg->quick ? 10 : 25;
        rc = bench_run_many(&p, 2, ops, ctxs, smp, done);
        for (int k = 0; k < 2; k++) {
            /* bench_run_many does not divide by the unroll */
            for (size_t i = 0; i < smp[k].n; i++)
                smp[k].v[i] /= MMIO_UNROLL;
            if (rc == 0)
                rc = fig_set(r, figs[w], k, &smp[k], done[k] * MMIO_UNROLL, true);
            bench_samples_free(&smp[k]);
        }
    }
    if (rc < 0)
        fig_fail(r, FIG_MMIO_READ, s->name,
                 s->err[0] ? s->err : ds && ds->err[0] ? ds->err : strerror(-rc));
    bar_map_close(&dbar);
    if (ds)
        ds->ops->close(ds);
}

/* ---- DMA mapping -------------------------------------------------------- */

struct dma_area {
    int memfd;
    uint8_t *va;
    uint64_t size;
};

static int dma_area_open(uint64_t size, struct dma_area *a)
{
    a->memfd = memfd_create("vub-bench-dma", MFD_CLOEXEC);
    if (a->memfd < 0)
        return -errno;
    /* Allocate every page now, so neither side pays for first touch. */
    if (ftruncate(a->memfd, (off_t)size) < 0 || fallocate(a->memfd, 0, 0, (off_t)size) < 0) {
        int e = -errno;
        close(a->memfd);
        return e;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, a->memfd, 0);
    if (p == MAP_FAILED) {
        int e = -errno;
        close(a->memfd);
        return e;
    }
    a->va = p;
    a->size = size;
    /* Fault the pages into this process too (the direct side pins through
     * this mapping), as a VMM's guest RAM would be. */
    for (uint64_t o = 0; o < size; o += 4096)
        a->va[o] = 1;
    return 0;
}

static void dma_area_close(struct dma_area *a)
{
    if (a->va)
        munmap(a->va, a->size);
    if (a->memfd >= 0)
        close(a->memfd);
    a->va = NULL;
    a->memfd = -1;
}

/* Map the whole area in `piece`-byte pieces (in rounds of at most `round`
 * pieces), unmapping each round; per-map and per-unmap samples (ns per op,
 * averaged over batches of `batch` ops) and the total time in ns. */
static int dma_pass(struct bench_side *s, const struct dma_area *a, uint64_t piece,
                    uint64_t round, unsigned batch, struct bench_samples *maps,
                    struct bench_samples *unmaps, uint64_t *total_ns)
{
    uint64_t npieces = a->size / piece;
    uint64_t nrounds = (npieces + round - 1) / round;
    uint64_t per_round = npieces / nrounds;
    uint64_t total = 0;
    int rc = 0;

    for (uint64_t rd = 0; rd < nrounds; rd++) {
        uint64_t first = rd * per_round;
        uint64_t n = rd + 1 == nrounds ? npieces - first : per_round;
        uint64_t mapped = 0;
        while (mapped < n) {
            unsigned b = (unsigned)(n - mapped < batch ? n - mapped : batch);
            uint64_t t0 = bench_now_ns();
            for (unsigned j = 0; j < b; j++) {
                uint64_t off = (first + mapped) * piece;
                rc = s->ops->dma_map(s, off, piece, a->memfd, off, a->va + off);
                if (rc < 0)
                    break;
                mapped++;
            }
            uint64_t dt = bench_now_ns() - t0;
            if (rc == 0)
                rc = bench_samples_add(maps, (double)dt / b);
            if (rc < 0) {
                /* leave nothing of this round mapped behind */
                for (uint64_t j = 0; j < mapped; j++)
                    s->ops->dma_unmap(s, (first + j) * piece, piece);
                return rc;
            }
            total += dt;
        }
        uint64_t done = 0;
        while (done < n) {
            unsigned b = (unsigned)(n - done < batch ? n - done : batch);
            uint64_t t0 = bench_now_ns();
            for (unsigned j = 0; j < b; j++) {
                uint64_t off = (first + done) * piece;
                rc = s->ops->dma_unmap(s, off, piece);
                if (rc < 0)
                    return rc;
                done++;
            }
            uint64_t dt = bench_now_ns() - t0;
            total += dt;
            if ((rc = bench_samples_add(unmaps, (double)dt / b)) < 0)
                return rc;
        }
    }
    *total_ns = total;
    return 0;

}

/* A direct side that, like the bridge, mmaps each piece of the memory fd
 * for its map and munmaps it after the unmap: the bridge's work without the
 * message, to tell the two costs apart. */
struct fresh_side {
    struct bench_side s;
    struct bench_side *inner;
    void **va;          /* by piece index */
    size_t n;
    uint64_t piece;
};

static int f_dma_map(struct bench_side *s, uint64_t iova, uint64_t size, int memfd,
                     uint64_t fd_off, void *vaddr)
{
    struct fresh_side *f = (struct fresh_side *)s;
    size_t i = iova / f->piece;
    (void)vaddr;
    if (size != f->piece || i >= f->n || f->va[i])
        return -EINVAL;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, (off_t)fd_off);
    if (p == MAP_FAILED) {
        snprintf(s->err, sizeof(s->err), "mmap of a piece: %s", strerror(errno));
        return -errno;
    }
    int rc = f->inner->ops->dma_map(f->inner, iova, size, memfd, fd_off, p);
    if (rc < 0) {
        snprintf(s->err, sizeof(s->err), "%s", f->inner->err);
        munmap(p, size);
        return rc;
    }
    f->va[i] = p;
    return 0;
}

static int f_dma_unmap(struct bench_side *s, uint64_t iova, uint64_t size)
{
    struct fresh_side *f = (struct fresh_side *)s;
    size_t i = iova / f->piece;
    if (size != f->piece || i >= f->n || !f->va[i])
        return -EINVAL;
    int rc = f->inner->ops->dma_unmap(f->inner, iova, size);
    if (rc < 0) {
        snprintf(s->err, sizeof(s->err), "%s", f->inner->err);
        return rc;
    }
    munmap(f->va[i], size);
    f->va[i] = NULL;
    return 0;
}

static uint32_t f_max_maps(struct bench_side *s)
{
    struct fresh_side *f = (struct fresh_side *)s;
    return f->inner->ops->max_maps(f->inner);
}

static const struct bench_side_ops fresh_ops = {
    .dma_map = f_dma_map, .dma_unmap = f_dma_unmap, .max_maps = f_max_maps,
};

static void run_dma_size(const struct bench_config *cfg, struct bench_side *s, int k,
                         struct bench_result *r, const struct dma_area *a, uint64_t piece,
                         enum bench_fig fmap, enum bench_fig funmap, enum bench_fig ftotal)
{
    uint32_t lim = s->ops->max_maps(s);
    uint64_t round = lim > 16 ? lim - 16 : lim;
    if (round > DMA_ROUND_MAX)
        round = DMA_ROUND_MAX;
    unsigned batch = piece >= (1u << 20) ? 1 : 64;
    struct bench_samples maps = {0}, unmaps = {0}, totals = {0};
    uint64_t tns = 0;
    int rc = 0;

    /* warm-up: a few maps and unmaps of this size */
    struct dma_area w = *a;
    w.size = piece * 4 <= a->size ? piece * 4 : a->size;
    struct bench_samples junk1 = {0}, junk2 = {0};
    rc = dma_pass(s, &w, piece, round, batch, &junk1, &junk2, &tns);
    bench_samples_free(&junk1);
    bench_samples_free(&junk2);
    for (unsigned rep = 0; rc == 0 && rep < cfg->dma_reps; rep++) {
        rc = dma_pass(s, a, piece, round, batch, &maps, &unmaps, &tns);
        if (rc == 0)
            rc = bench_samples_add(&totals, (double)tns);
    }
    uint64_t nops = a->size / piece * cfg->dma_reps;
    if (rc == 0)
        rc = fig_set(r, fmap, k, &maps, nops, true);
    if (rc == 0)
        rc = fig_set(r, funmap, k, &unmaps, nops, true);
    if (rc == 0 && ftotal != FIG_COUNT)
        rc = fig_set(r, ftotal, k, &totals, cfg->dma_reps, true);
    if (rc < 0) {
        fig_fail(r, fmap, s->name, s->err[0] ? s->err : strerror(-rc));
    }
    bench_samples_free(&maps);
    bench_samples_free(&unmaps);
    bench_samples_free(&totals);
}

static void run_dma(const struct bench_config *cfg, struct bench_side *s, int k,
                    struct bench_result *r, const struct dma_area *a)
{
    run_dma_size(cfg, s, k, r, a, 4096, FIG_DMA_MAP_4K, FIG_DMA_UNMAP_4K, FIG_DMA_TOTAL_4K);
    run_dma_size(cfg, s, k, r, a, 2u << 20, FIG_DMA_MAP_2M, FIG_DMA_UNMAP_2M, FIG_DMA_TOTAL_2M);
    if (k == K_DIRECT) {
        struct fresh_side f = {
            .s = {.ops = &fresh_ops, .name = "direct (fresh mmap)"},
            .inner = s, .piece = 2u << 20, .n = a->size / (2u << 20),
        };
        f.va = calloc(f.n, sizeof(*f.va));
        if (!f.va) {
            fig_fail(r, FIG_DMA_MAP_2M_FRESH, s->name, "out of memory");
        } else {
            run_dma_size(cfg, &f.s, k, r, a, f.piece, FIG_DMA_MAP_2M_FRESH,
                         FIG_DMA_UNMAP_2M_FRESH, FIG_COUNT);
            free(f.va);
        }
    }
    r->dma_area = a->size;
    r->dma_reps = cfg->dma_reps;
}

/* The DMA figures in a fresh area of cfg->dma_area bytes. */
static void run_dma_in_area(const struct bench_config *cfg, struct bench_side *s, int k,
                            struct bench_result *r)
{
    struct dma_area area = {.memfd = -1};
    int rc = dma_area_open(cfg->dma_area, &area);
    if (rc < 0)
        fig_fail(r, FIG_DMA_MAP_4K, s->name, strerror(-rc));
    else
        run_dma(cfg, s, k, r, &area);
    dma_area_close(&area);
}

/* ---- interrupts ------------------------------------------------------------ */

struct irq_ctx {
    struct bench_side *s;
    volatile uint32_t *bar;   /* trigger through the mapping, or NULL */
    int efd;
};

static int irq_trigger(struct irq_ctx *c, uint32_t reg, uint32_t val)
{
    if (c->bar) {
        c->bar[reg / 4] = val;
        return 0;
    }
    return c->s->ops->write(c->s, REGION_BAR0, reg, &val, 4, true);
}

/* One interrupt: raise, wait for the eventfd, acknowledge. *ns is the time
 * from just before the raise to the wake-up. */
static int irq_once(struct irq_ctx *c, uint64_t *ns)
{
    struct pollfd pfd = {.fd = c->efd, .events = POLLIN};
    uint64_t t0 = bench_now_ns();
    int rc = irq_trigger(c, EDU_IRQ_RAISE, 1);
    if (rc < 0)
        return rc;
    int n = poll(&pfd, 1, IRQ_TIMEOUT_MS);
    uint64_t t1 = bench_now_ns();
    if (n == 0) {
        snprintf(c->s->err, sizeof(c->s->err), "no interrupt within %d ms", IRQ_TIMEOUT_MS);
        return -ETIMEDOUT;
    }
    if (n < 0)
        return -errno;
    uint64_t cnt;
    if (read(c->efd, &cnt, sizeof(cnt)) != (ssize_t)sizeof(cnt))
        return -EIO;
    *ns = t1 - t0;
    return irq_trigger(c, EDU_IRQ_ACK, 1);
}

/* MSI is a memory write by the device: QEMU drops it unless bus mastering
 * is on (config COMMAND bit 2), and vfio-pci does not set it. */
static int bus_master_on(struct bench_side *s)
{
    uint16_t cmd = 0;
    int rc = s->ops->read(s, REGION_CONFIG, 4, &cmd, 2);
    if (rc == 0 && !(cmd & 0x4)) {
        cmd |= 0x4;
        rc = s->ops->write(s, REGION_CONFIG, 4, &cmd, 2, false);
    }
    return rc;
}

static void run_irq(const struct bench_config *cfg, struct bench_side *s, int k,
                    struct bench_result *r, volatile uint32_t *bar, pid_t bridge_pid)
{
    struct irq_ctx c = {.s = s, .bar = cfg->sim ? NULL : bar, .efd = -1};
    struct bench_samples smp = {0};
    struct bench_proc_stat st0, st1;
    uint64_t ns;
    int rc;

    c.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c.efd < 0) {
        fig_fail(r, FIG_IRQ_LATENCY, s->name, strerror(errno));
        return;
    }
    rc = bus_master_on(s);
    if (rc < 0)
        goto out;
    rc = s->ops->irq_eventfd(s, IRQ_MSI, c.efd);
    if (rc < 0)
        goto out;
    for (unsigned i = 0; i < (cfg->quick ? 10u : 100u) && rc == 0; i++)
        rc = irq_once(&c, &ns);
    if (rc < 0)
        goto out_disable;
    if (bridge_pid > 0 && (rc = bench_proc_read(bridge_pid, &st0)) < 0)
        goto out_disable;
    for (unsigned i = 0; i < cfg->irqs && rc == 0; i++) {
        rc = irq_once(&c, &ns);
        if (rc == 0)
            rc = bench_samples_add(&smp, (double)ns);
    }
    if (rc == 0 && bridge_pid > 0 && (rc = bench_proc_read(bridge_pid, &st1)) == 0) {
        r->irq_cpu_valid = true;
        r->irq_count = cfg->irqs;
        r->irq_ticks = st1.ticks - st0.ticks;
        r->irq_sched_ns = st1.sched_ns - st0.sched_ns;
        r->irq_wakeups = st1.switches - st0.switches;
        r->irq_through_bridge = c.bar == NULL;
        struct bench_samples one = {0};
        rc = bench_samples_add(&one, (double)r->irq_sched_ns / cfg->irqs);
        if (rc == 0)
            rc = fig_set(r, FIG_IRQ_BRIDGE_CPU, K_BRIDGE, &one, cfg->irqs, true);
        bench_samples_free(&one);
    }
    if (rc == 0)
        rc = fig_set(r, FIG_IRQ_LATENCY, k, &smp, cfg->irqs, true);
out_disable:
    {
        int rc2 = s->ops->irq_eventfd(s, IRQ_MSI, -1);
        if (rc == 0)
            rc = rc2;
    }
out:
    if (rc < 0)
        fig_fail(r, FIG_IRQ_LATENCY, s->name, s->err[0] ? s->err : strerror(-rc));
    bench_samples_free(&smp);
    close(c.efd);
}

/* ---- the phases ------------------------------------------------------------ */

static void run_reads_with_floor(const struct bench_config *cfg, struct bench_side *s,
                                 struct bench_result *r);

static int check_device(struct bench_side *s, struct bench_result *r)
{
    uint32_t id = 0, bar = 0;
    int rc = s->ops->read(s, REGION_CONFIG, 0, &id, 4);
    if (rc == 0)
        rc = s->ops->read(s, REGION_BAR0, EDU_ID, &bar, 4);
    if (rc < 0) {
        fprintf(stderr, "vfio-user-bench: %s: %s\n", s->name, s->err);
        r->errors++;
        return rc;
    }
    if (id != (EDU_DEVICE_ID << 16 | EDU_VENDOR_ID) || bar != EDU_ID_VALUE) {
        fprintf(stderr,
                "vfio-user-bench: %s: not an edu device (config id 0x%08x, BAR0 id 0x%08x); "
                "the bench writes edu registers and runs on edu (or --sim) only\n",
                s->name, id, bar);
        r->errors++;
        return -ENODEV;
    }
    return 0;
}

static void run_viommu(const struct bench_config *cfg, struct bench_side *s, int k,
                       struct bench_result *r, pid_t bridge_pid);

/* Every figure both sides have. */
static void measure_side(const struct bench_config *cfg, struct bench_side *s, int k,
                         struct bench_result *r, pid_t bridge_pid)
{
    struct bar_map bar = {0};
    int rc;

    if (check_device(s, r) < 0)
        return;
    if (cfg->dma_only) {
        run_dma_in_area(cfg, s, k, r);
        return;
    }
    if (k == K_BRIDGE) {
        run_reads_with_floor(cfg, s, r);
    } else {
        run_read(cfg, s, k, r, FIG_RT_CONFIG, REGION_CONFIG, 0, &r->cfg_id[k]);
        run_read(cfg, s, k, r, FIG_RT_BAR, REGION_BAR0, EDU_ID, &r->bar_id[k]);
    }
    run_posted(cfg, s, k, r);
    run_multi(cfg, s, k, r);

    rc = bar_map_open(s, &bar);
    if (rc < 0) {
        fig_fail(r, FIG_MMIO_READ, s->name, s->err);
    } else {
        /* Real device: direct takes half its samples now and half after
         * the bridge phase (one container at a time). Simulated device: the
         * bridge phase measures both mappings in turns. */
        if (cfg->sim) {
            if (k == K_BRIDGE)
                run_mmio_sim_turns(cfg, s, r, bar.p);
        } else if (k == K_DIRECT) {
            run_mmio(cfg, s, k, r, bar.p, (cfg->samples + 1) / 2, r->mmio_keep);
        } else {
            run_mmio(cfg, s, k, r, bar.p, cfg->samples, NULL);
        }
    }

    run_dma_in_area(cfg, s, k, r);

    if (bar.p || cfg->sim)
        run_irq(cfg, s, k, r, bar.p, bridge_pid);
    bar_map_close(&bar);
    /* simulated device: both sides in the bridge phase, in turns */
    if (k == K_BRIDGE || !cfg->sim)
        run_viommu(cfg, s, k, r, bridge_pid);
}

int bench_phase_direct(const struct bench_config *cfg, struct bench_side *s,
                       struct bench_result *r)
{
    measure_side(cfg, s, K_DIRECT, r, -1);
    return 0;
}

int bench_phase_direct_after(const struct bench_config *cfg, struct bench_side *s,
                             struct bench_result *r)
{
    struct bar_map bar = {0};
    uint32_t id = 0;
    int rc = s->ops->read(s, REGION_BAR0, EDU_ID, &id, 4);
    if (rc == 0 && id != EDU_ID_VALUE)
        rc = -ENODEV;
    if (rc == 0)
        rc = bar_map_open(s, &bar);
    if (rc < 0) {
        fig_fail(r, FIG_MMIO_READ, s->name, s->err[0] ? s->err : strerror(-rc));
    } else {
        run_mmio(cfg, s, K_DIRECT, r, bar.p, cfg->samples / 2 ? cfg->samples / 2 : 1,
                 r->mmio_keep);
        bar_map_close(&bar);
    }
    return rc;
}

/* Resident memory of the bridge holding FOOTPRINT_MAPS mappings of 4 KiB. */
static void run_footprint(struct bench_side *s, const struct bench_bridge *b,
                          struct bench_result *r)
{
    struct dma_area a = {.memfd = -1};
    struct bench_proc_stat st;
    uint32_t n = 0;
    int rc = dma_area_open((uint64_t)FOOTPRINT_MAPS * 4096, &a);
    if (rc < 0)
        goto out;
    for (; n < FOOTPRINT_MAPS; n++) {
        uint64_t off = (uint64_t)n * 4096;
        rc = s->ops->dma_map(s, off, 4096, a.memfd, off, a.va + off);
        if (rc < 0)
            goto out;
    }
    rc = bench_proc_read(b->pid, &st);
    if (rc == 0) {
        struct bench_samples one = {0};
        rc = bench_samples_add(&one, (double)st.rss);
        if (rc == 0)
            rc = fig_set(r, FIG_RSS_MAPS, K_BRIDGE, &one, 1, false);
        bench_samples_free(&one);
        r->rss_anon[1] = st.anon;
        r->rss_file[1] = st.file;
        r->rss_shmem[1] = st.shmem;
    }
out:
    if (rc < 0)
        fig_fail(r, FIG_RSS_MAPS, s->name, s->err[0] ? s->err : strerror(-rc));
    while (n > 0) {
        n--;
        s->ops->dma_unmap(s, (uint64_t)n * 4096, 4096);
    }
    dma_area_close(&a);
}

int bench_phase_bridge(const struct bench_config *cfg, struct bench_side *s,
                       const struct bench_bridge *b, struct bench_result *r)
{
    /* footprint first: the DMA figures grow the bridge's tables to 32768
     * entries, and a heap does not shrink back when they are freed */
    if (!cfg->dma_only)
        run_footprint(s, b, r);
    measure_side(cfg, s, K_BRIDGE, r, b->pid);
    return 0;
}

/* ---- the floor: a bare socket ping-pong with a child process --------------- */

#define FLOOR_REQ 32   /* REGION_READ request: header + access */
#define FLOOR_REP 36   /* its reply: header + access + 4 data bytes */

static int full_io(int fd, void *buf, size_t len, bool wr)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = wr ? write(fd, (char *)buf + done, len - done)
                       : read(fd, (char *)buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? -ECONNRESET : -errno;
        done += (size_t)n;
    }
    return 0;
}

/* The framed variant makes the system calls a vfio-user exchange makes
 * with this project's transport, without any protocol work: the client
 * sends and receives the reply with one recvmsg; the peer polls, takes the
 * message with one recvmsg and sends the reply in one sendmsg. */
static int poll_in(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n;
    while ((n = poll(&p, 1, -1)) < 0 && errno == EINTR)
        ;
    return n < 0 ? -errno : 0;
}

static int framed_send(int fd, const void *buf, size_t len)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

static int framed_recv(int fd, void *buf, size_t len)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = recvmsg(fd, &mh, MSG_WAITALL);
    return n == (ssize_t)len ? 0 : n < 0 ? -errno : -ECONNRESET;
}

/* A request carrying one fd (as a DMA_MAP does), and the peer's receive of
 * a header that may carry one: it takes the fd and closes it, as the bridge
 * does with an fd of a memory object it already holds (keep non-NULL: the
 * first fd is left open in *keep, -1 if none came). */
static int framed_send_fd(int fd, const void *buf, size_t len, int pass)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
                        .msg_controllen = sizeof(cm.b)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass, sizeof(int));
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    return n == (ssize_t)len ? 0 : n < 0 ? -errno : -EIO;
}

static int framed_recv_hdr(int fd, void *buf, size_t len, int *keep)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(4 * sizeof(int))];
    } cm;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
                        .msg_controllen = sizeof(cm.b)};
    if (keep)
        *keep = -1;
    ssize_t n = recvmsg(fd, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC);
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); n > 0 && c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t j = 0; j < k; j++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
            if (keep && *keep < 0)
                *keep = got;
            else
                close(got);
        }
    }
    return n == (ssize_t)len ? 0 : n < 0 ? -errno : -ECONNRESET;
}

struct floor_ctx {
    int fd;
    bool framed;
    bool served;        /* served_peer: each reply's rep[1] is its mapping count */
    unsigned spin_us;   /* busy-poll each read this long, then block */
};

/* Read len bytes spinning on non-blocking reads for up to us microseconds,
 * then blocking (what the bridge and the client do with --poll-us). */
static int spin_read(int fd, void *buf, size_t len, unsigned us)
{
    size_t done = 0;
    uint64_t end = bench_now_ns() + (uint64_t)us * 1000;
    while (done < len) {
        ssize_t n = recv(fd, (char *)buf + done, len - done, MSG_DONTWAIT);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        if (bench_now_ns() >= end)
            return full_io(fd, (char *)buf + done, len - done, false);
    }
    return 0;
}

static int op_pingpong(void *p, uint64_t i)
{
    struct floor_ctx *c = p;
    uint8_t req[FLOOR_REQ], rep[FLOOR_REP];
    int rc;
    memset(req, (int)(i & 0xff), sizeof(req));
    if (c->framed) {
        rc = framed_send(c->fd, req, sizeof(req));
        if (rc == 0)
            rc = framed_recv(c->fd, rep, sizeof(rep));
    } else if (c->spin_us) {
        rc = full_io(c->fd, req, sizeof(req), true);
        if (rc == 0)
            rc = spin_read(c->fd, rep, sizeof(rep), c->spin_us);
    } else {
        rc = full_io(c->fd, req, sizeof(req), true);
        if (rc == 0)
            rc = full_io(c->fd, rep, sizeof(rep), false);
    }
    if (rc == 0 && (rep[0] != req[0] || (c->served && rep[1] != 0)))
        rc = -EIO;
    return rc;
}

static void floor_peer(int fd, bool framed, unsigned spin_us)
{
    uint8_t req[FLOOR_REQ], rep[FLOOR_REP];
    memset(rep, 0, sizeof(rep));
    for (;;) {
        int rc;
        if (framed) {
            rc = poll_in(fd);
            if (rc == 0)
                rc = framed_recv_hdr(fd, req, sizeof(req), NULL);   /* one read, fds closed */
        } else if (spin_us) {
            rc = spin_read(fd, req, sizeof(req), spin_us);
        } else {
            rc = full_io(fd, req, sizeof(req), false);
        }
        if (rc < 0)
            break;
        rep[0] = req[0];
        if ((framed ? framed_send(fd, rep, sizeof(rep)) : full_io(fd, rep, sizeof(rep), true)) < 0)
            break;
    }
    _exit(0);
}

struct floor_peer {
    struct floor_ctx c;
    pid_t pid;
};

static void served_peer(int fd) __attribute__((noreturn));

/* served: the vIOMMU cycle's served floor (served_peer) instead of the
 * plain peer */
static int floor_spawn(struct floor_peer *fp, bool framed, unsigned spin_us, bool served)
{
    int sv[2];
    fp->pid = -1;
    fp->c.fd = -1;
    fp->c.framed = framed;
    fp->c.spin_us = spin_us;
    fp->c.served = served;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(sv[0]);
        close(sv[1]);
        return e;
    }
    if (pid == 0) {
        /* keep only the own end: an inherited copy of another peer's socket
         * (or of the bridge connection) would keep that one from seeing EOF */
        if (sv[1] != 3 && dup2(sv[1], 3) < 0)
            _exit(1);
        close_range(4, ~0u, 0);
        if (served)
            served_peer(3);
        floor_peer(3, framed, spin_us);
    }
    close(sv[1]);
    fp->c.fd = sv[0];
    fp->pid = pid;
    return 0;
}

static int floor_start(struct floor_peer *fp, bool framed, unsigned spin_us)
{
    return floor_spawn(fp, framed, spin_us, false);
}

/* Closing the socket ends the peer's loop. */
static void floor_stop(struct floor_peer *fp)
{
    int status;
    if (fp->c.fd >= 0)
        close(fp->c.fd);
    fp->c.fd = -1;
    if (fp->pid > 0)
        while (waitpid(fp->pid, &status, 0) < 0 && errno == EINTR)
            ;
    fp->pid = -1;
}

/* A second bridge on the simulated device, with --poll-us, and a client
 * that busy-polls for its replies as long. */
static int polled_bridge_open(const struct bench_config *cfg, struct bench_bridge *b,
                              struct bench_side **out)
{
    struct bench_config pc = *cfg;
    char us[16];
    snprintf(us, sizeof(us), "%u", cfg->poll_us);
    if (pc.nbridge_args + 2 > sizeof(pc.bridge_args) / sizeof(pc.bridge_args[0]))
        return -E2BIG;
    pc.bridge_args[pc.nbridge_args++] = "--poll-us";
    pc.bridge_args[pc.nbridge_args++] = us;
    pc.sock_name = BENCH_POLL_SOCK;
    uint64_t ns;
    int rc = bench_bridge_spawn(&pc, b, &ns, cfg->startups);
    if (rc < 0)
        return rc;
    /* the spawn's probe connection may still hold the bridge's one session:
     * then this one is refused; try again for up to 10 s */
    for (int tries = 0; tries < 500; tries++) {
        struct vu_client *c = NULL;
        struct vub_err e = {{0}};
        rc = vu_client_connect(b->sock, &c, &e);
        if (rc < 0)
            break;
        vu_client_set_timeout(c, 60000);
        vu_client_set_busy_poll(c, cfg->poll_us);
        rc = vu_client_negotiate(c, NULL, NULL);
        if (rc == 0) {
            rc = bench_side_bridge(c, out);
            break;
        }
        vu_client_close(c);
        usleep(20000);
    }
    if (rc < 0) {
        bench_bridge_dump_log(b);
        bench_bridge_stop(b);
    }
    return rc;
}

/* Bridge side of the trapped round trips, in turns with the floors so that
 * the comparison does not depend on when each was measured (in a TCG guest
 * on a shared host the speed of everything drifts). With --poll-us (sim),
 * also the busy-polling floor and a second bridge that busy-polls. */
static void run_reads_with_floor(const struct bench_config *cfg, struct bench_side *s,
                                 struct bench_result *r)
{
    struct floor_peer fb, ff, fs = {.c = {.fd = -1}, .pid = -1};
    struct rw_ctx cc = {.s = s, .region = REGION_CONFIG, .off = 0};
    struct rw_ctx cb = {.s = s, .region = REGION_BAR0, .off = EDU_ID};
    struct bench_bridge pb = {.pid = -1};
    struct bench_side *ps = NULL;
    bool polled = cfg->poll_us && cfg->sim;
    int rc = floor_start(&fb, false, 0);
    if (rc == 0 && (rc = floor_start(&ff, true, 0)) < 0)
        floor_stop(&fb);
    if (rc == 0 && polled && (rc = floor_start(&fs, false, cfg->poll_us)) < 0) {
        floor_stop(&fb);
        floor_stop(&ff);
    }
    if (rc < 0) {
        fig_fail(r, FIG_FLOOR, "socket", strerror(-rc));
        run_read(cfg, s, K_BRIDGE, r, FIG_RT_CONFIG, REGION_CONFIG, 0, &r->cfg_id[K_BRIDGE]);
        run_read(cfg, s, K_BRIDGE, r, FIG_RT_BAR, REGION_BAR0, EDU_ID, &r->bar_id[K_BRIDGE]);
        return;
    }
    if (polled && (rc = polled_bridge_open(cfg, &pb, &ps)) < 0) {
        fig_fail(r, FIG_RT_POLL, "bridge --poll-us", strerror(-rc));
        floor_stop(&fs);
        polled = false;
    }
    struct rw_ctx cp = {.s = ps, .region = REGION_CONFIG, .off = 0};
    enum bench_fig figs[6] = {FIG_FLOOR, FIG_FLOOR_FRAMED, FIG_RT_CONFIG, FIG_RT_BAR,
                              FIG_FLOOR_SPIN, FIG_RT_POLL};
    bench_op_fn fns[6] = {op_pingpong, op_pingpong, op_read4, op_read4, op_pingpong, op_read4};
    void *ctxs[6] = {&fb.c, &ff.c, &cc, &cb, &fs.c, &cp};
    unsigned n = polled ? 6 : 4;
    struct bench_samples smp[6] = {{0}};
    uint64_t ops[6] = {0};
    struct bench_plan p = plan_latency(cfg);
    p.turn = cfg->quick ? 10 : 25;
    rc = bench_run_many(&p, n, fns, ctxs, smp, ops);
    floor_stop(&fb);
    floor_stop(&ff);
    if (polled) {
        floor_stop(&fs);
        ps->ops->close(ps);
        if (bench_bridge_stop(&pb) < 0) {
            fprintf(stderr, "vfio-user-bench: the --poll-us bridge did not exit cleanly\n");
            bench_bridge_dump_log(&pb);
            r->errors++;
        }
    }
    for (unsigned k = 0; k < n; k++) {
        if (rc == 0 && fig_set(r, figs[k], K_BRIDGE, &smp[k], ops[k], true) < 0)
            rc = -ENOMEM;
        bench_samples_free(&smp[k]);
    }
    if (rc < 0) {
        fig_fail(r, FIG_RT_CONFIG, s->name, s->err[0] ? s->err : strerror(-rc));
        return;
    }
    if (polled && cp.expect != cc.expect) {
        fprintf(stderr, "vfio-user-bench: the --poll-us bridge read config id 0x%08x, "
                "the other 0x%08x\n", cp.expect, cc.expect);
        r->errors++;
    }
    r->cfg_id[K_BRIDGE] = cc.expect;
    r->bar_id[K_BRIDGE] = cb.expect;
}

/* ---- a guest with its own IOMMU: the map/unmap cycle ------------------------
 * With a vIOMMU every guest DMA mapping is a DMA_MAP and a DMA_UNMAP: the
 * guest maps a page at an IOVA, the device uses it, the guest unmaps it, and
 * the IOVA comes back for another page. One operation here is one map and
 * one unmap of IOVA VIOMMU_IOVA, each time to the next of VIOMMU_PAGES pages
 * of one memory object. Through the bridge that is two round trips: the
 * bridge's own work is what the cycle costs beyond the direct cycle (the
 * kernel's or the simulator's map and unmap) and two framed ping-pongs (the
 * socket floor), all measured in turns (simulated device: the direct side
 * is a second simulated device in-process; real device: the direct cycle is
 * measured in the direct phase). */
#define VIOMMU_IOVA  0x100000u
#define VIOMMU_PAGES 16u

struct viommu_ctx {
    struct bench_side *s;
    struct dma_area a;
    struct floor_ctx *floor;   /* op_floor2 */
};

static int op_viommu(void *p, uint64_t i)
{
    struct viommu_ctx *c = p;
    uint64_t off = (i % VIOMMU_PAGES) * 4096;
    int rc = c->s->ops->dma_map(c->s, VIOMMU_IOVA, 4096, c->a.memfd, off, c->a.va + off);
    if (rc == 0)
        rc = c->s->ops->dma_unmap(c->s, VIOMMU_IOVA, 4096);
    return rc;
}

/* The floor of one cycle: a framed ping-pong carrying the memory fd (the
 * DMA_MAP) and one without (the DMA_UNMAP). Each makes the client's calls
 * of op_pingpong's framed variant (sendmsg, one recvmsg of the reply: the
 * bench's client waits in recvmsg, SO_RCVTIMEO, without a poll), so the
 * floor has exactly the calls of a cycle through the bridge less the
 * bridge's own. */
static int op_floor2(void *p, uint64_t i)
{
    struct viommu_ctx *c = p;
    uint8_t req[FLOOR_REQ], rep[FLOOR_REP];
    memset(req, (int)(i & 0xff), sizeof(req));
    req[1] = (uint8_t)(i % VIOMMU_PAGES);   /* the page (the served floor maps it) */
    int rc = framed_send_fd(c->floor->fd, req, sizeof(req), c->a.memfd);
    if (rc == 0)
        rc = framed_recv(c->floor->fd, rep, sizeof(rep));
    if (rc == 0 && (rep[0] != req[0] || (c->floor->served && rep[1] != 1)))
        rc = -EIO;   /* the served floor's peer holds the one mapping now */
    return rc ? rc : op_pingpong(c->floor, i + 1);
}

/* The served floor's peer: the plain framed peer's calls (poll, one
 * recvmsg, close of the received fd, one sendmsg per message) and between
 * receiving and replying what any server of the cycle must do besides:
 * the simulator's map of the page the request names (req[1]) at
 * VIOMMU_IOVA, through its one mapping of the received object (made at
 * the first fd, as the bridge maps a backing once), and on the message
 * without an fd the unmap. Its own simulated device, so the calls are the
 * ones the bridge makes of its simulator, in a second process between two
 * messages as in the bridge; what the bridge does beyond this (decoding,
 * checks, its table, the object's fstat and cache, the reply) is its own
 * work. A failed call answers a wrong echo (req[0] inverted), which the
 * client's op reports (-EIO); each reply's rep[1] is the number of
 * mappings its simulator holds, which the client checks (1 after the map,
 * 0 after the unmap), so a peer that skipped the calls fails the run. */
static void served_peer(int fd)
{
    uint8_t req[FLOOR_REQ], rep[FLOOR_REP];
    struct hv_sim_config sc;
    struct hv_device *d = NULL;
    uint8_t *va = NULL;
    bool mapped = false;
    memset(rep, 0, sizeof(rep));
    hv_sim_config_defaults(&sc);
    if (hv_sim_open(&sc, &d, NULL) < 0)
        _exit(1);
    for (;;) {
        int got;
        if (poll_in(fd) < 0 || framed_recv_hdr(fd, req, sizeof(req), &got) < 0)
            break;
        bool ok;
        if (got >= 0) {
            if (!va) {
                void *m = mmap(NULL, (size_t)VIOMMU_PAGES * 4096, PROT_READ | PROT_WRITE,
                               MAP_SHARED, got, 0);
                va = m == MAP_FAILED ? NULL : m;
            }
            ok = va && !mapped && req[1] < VIOMMU_PAGES &&
                 hv_dma_map(d, VIOMMU_IOVA, va + (size_t)req[1] * 4096, 4096,
                            HV_DMA_READ | HV_DMA_WRITE) == 0;
            mapped = mapped || ok;
            close(got);
        } else {
            ok = mapped && hv_dma_unmap(d, VIOMMU_IOVA, 4096, 0) == 0;
            mapped = mapped && !ok;
        }
        rep[0] = ok ? req[0] : (uint8_t)~req[0];
        rep[1] = (uint8_t)hv_sim_stats_of(d).dma_maps;   /* the client checks it */
        if (framed_send(fd, rep, sizeof(rep)) < 0)
            break;
    }
    _exit(0);
}

/* The same cycle through the bridge with the client's side framed by hand,
 * as a VMM's own client would do it: per message one sendmsg (the DMA_MAP
 * carrying the memory fd) and one recvmsg of the reply (MSG_WAITALL: the
 * bench's client socket blocks, with the client library's SO_RCVTIMEO),
 * the floor client's calls; the reply's size, id, command, type and error
 * are checked and the DMA_UNMAP reply's echo compared. The difference to
 * viommu_cycle is what the client library adds (src/vu_client.c): counted
 * in that figure although it is not the bridge's work. The connection is
 * the bench's vu_client's, idle between its calls (one request in flight,
 * nothing read ahead), so the two can take turns on it. */
struct framed_cycle {
    int fd;                  /* the bridge connection */
    uint16_t id;             /* own message ids (the bridge only echoes them) */
    struct dma_area a;
};

static int framed_call(struct framed_cycle *c, uint16_t cmd, const void *body, size_t len,
                       int pass, void *rbody, size_t rlen)
{
    uint8_t req[VU_HDR_SIZE + 32], rep[VU_HDR_SIZE + 32];
    struct vu_hdr h = {.msg_id = ++c->id, .cmd = cmd, .msg_size = (uint32_t)(VU_HDR_SIZE + len)};
    if (len > sizeof(req) - VU_HDR_SIZE || rlen > sizeof(rep) - VU_HDR_SIZE)
        return -EINVAL;
    memcpy(req, &h, sizeof(h));
    memcpy(req + VU_HDR_SIZE, body, len);
    int rc = pass >= 0 ? framed_send_fd(c->fd, req, VU_HDR_SIZE + len, pass)
                       : framed_send(c->fd, req, VU_HDR_SIZE + len);
    if (rc == 0)
        rc = framed_recv(c->fd, rep, VU_HDR_SIZE + rlen);
    if (rc < 0)
        return rc;
    struct vu_hdr r;
    memcpy(&r, rep, sizeof(r));
    if (r.msg_id != h.msg_id || r.cmd != cmd || r.msg_size != VU_HDR_SIZE + rlen ||
        (r.flags & VU_F_TYPE_MASK) != VU_F_TYPE_REPLY || (r.flags & VU_F_ERROR) || r.error_no)
        return -EPROTO;   /* an error reply is shorter: the stream is out of step */
    memcpy(rbody, rep + VU_HDR_SIZE, rlen);
    return 0;
}

static int op_viommu_framed(void *p, uint64_t i)
{
    struct framed_cycle *c = p;
    uint64_t off = (i % VIOMMU_PAGES) * 4096;
    struct vu_dma_map m = {.argsz = sizeof(m), .flags = VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE,
                           .offset = off, .address = VIOMMU_IOVA, .size = 4096};
    uint8_t none[1];
    int rc = framed_call(c, VU_CMD_DMA_MAP, &m, sizeof(m), c->a.memfd, none, 0);
    if (rc < 0)
        return rc;
    struct vu_dma_unmap u = {.argsz = sizeof(u), .address = VIOMMU_IOVA, .size = 4096}, got;
    rc = framed_call(c, VU_CMD_DMA_UNMAP, &u, sizeof(u), -1, &got, sizeof(got));
    if (rc == 0 && memcmp(&got, &u, sizeof(u)) != 0)
        rc = -EPROTO;
    return rc;
}

/* The cycle, its floor and the direct cycle are measured with the bench,
 * the floor peer and the bridge on one CPU. Left to the scheduler, the two
 * ends of a turn share a CPU in one turn and not in the next (a hand-off to
 * a sleeping process on another CPU costs many times a same-CPU switch, on
 * a virtual machine tens of microseconds), so the floor and the bridge
 * would not be measured alike. On one CPU each hand-off is the same switch
 * for both, and what differs is the work each side does. */
struct cpu_pin {
    cpu_set_t self, bridge;
    bool self_set, bridge_set;
    int cpu;
};

static void pin_start(struct cpu_pin *p, pid_t bridge_pid)
{
    cpu_set_t one;
    memset(p, 0, sizeof(*p));
    p->cpu = sched_getcpu();
    if (p->cpu < 0 || sched_getaffinity(0, sizeof(p->self), &p->self) < 0)
        goto fail;
    CPU_ZERO(&one);
    CPU_SET(p->cpu, &one);
    if (sched_setaffinity(0, sizeof(one), &one) < 0)
        goto fail;
    p->self_set = true;
    if (bridge_pid > 0) {
        if (sched_getaffinity(bridge_pid, sizeof(p->bridge), &p->bridge) < 0 ||
            sched_setaffinity(bridge_pid, sizeof(one), &one) < 0)
            goto fail;
        p->bridge_set = true;
    }
    return;
fail:
    fprintf(stderr, "vfio-user-bench: vIOMMU cycle: cannot put the bench and the bridge on one "
            "CPU (%s); its floor and bridge figures may not be comparable\n", strerror(errno));
    p->cpu = -1;
}

static void pin_end(struct cpu_pin *p, pid_t bridge_pid)
{
    if (p->bridge_set)
        sched_setaffinity(bridge_pid, sizeof(p->bridge), &p->bridge);
    if (p->self_set)
        sched_setaffinity(0, sizeof(p->self), &p->self);
}

static void run_viommu(const struct bench_config *cfg, struct bench_side *s, int k,
                       struct bench_result *r, pid_t bridge_pid)
{
    struct cpu_pin pin = {.cpu = -1};
    struct viommu_ctx cb = {.s = s, .a = {.memfd = -1}}, cd = {.a = {.memfd = -1}};
    struct hv_device *d = NULL;
    struct bench_side *ds = NULL;
    struct floor_peer ff = {.pid = -1, .c = {.fd = -1}};
    struct bench_samples smp[3] = {{0}};
    uint64_t done[3] = {0};
    struct bench_plan p = plan_latency(cfg);
    p.turn = cfg->quick ? 10 : 25;
    int rc = dma_area_open((uint64_t)VIOMMU_PAGES * 4096, &cb.a);

    if (rc == 0 && k == K_DIRECT) {
        rc = bench_run(&p, op_viommu, &cb, &smp[0], &done[0]);
        if (rc == 0)
            rc = fig_set(r, FIG_VIOMMU_CYCLE, K_DIRECT, &smp[0], done[0], true);
        goto out;
    }
    pin_start(&pin, bridge_pid);     /* before the fork: the floor peer inherits it */
    r->viommu_pinned = pin.cpu >= 0;
    r->viommu_cpu = pin.cpu;
    if (rc == 0)
        rc = floor_start(&ff, true, 0);
    if (rc == 0 && cfg->sim) {
        struct hv_sim_config sc;
        hv_sim_config_defaults(&sc);
        rc = hv_sim_open(&sc, &d, NULL);
        if (rc == 0) {
            rc = bench_side_direct(d, &ds);
            d = NULL;     /* owned by ds, even on error */
        }
        if (rc == 0)
            rc = dma_area_open((uint64_t)VIOMMU_PAGES * 4096, &cd.a);
        cd.s = ds;
    }
    struct viommu_ctx cf = {.a = cb.a, .floor = &ff.c};
    if (rc == 0) {
        /* turns: the cycle, its floor, and on the simulated device the
         * direct cycle */
        bench_op_fn ops[3] = {op_viommu, op_floor2, op_viommu};
        void *ctxs[3] = {&cb, &cf, &cd};
        rc = bench_run_many(&p, cfg->sim ? 3 : 2, ops, ctxs, smp, done);
    }
    if (rc == 0)
        rc = fig_set(r, FIG_VIOMMU_CYCLE, K_BRIDGE, &smp[0], done[0], true);
    if (rc == 0)
        rc = fig_set(r, FIG_VIOMMU_FLOOR, K_BRIDGE, &smp[1], done[1], true);
    if (rc == 0 && cfg->sim)
        rc = fig_set(r, FIG_VIOMMU_CYCLE, K_DIRECT, &smp[2], done[2], true);
    /* Then the same turns again with the hand-framed cycle in the cycle's
     * place, its own floor and direct cycle beside it. A separate pass,
     * not a fourth operation in the turns above: what runs between a
     * side's turns changes its figure by microseconds on this kind of
     * machine (a run with the framed cycle as a fourth turn gave the
     * vu_client cycle 2-4 us less than the same bridge without it), so
     * the figures above keep exactly their old conditions and the framed
     * one gets the same. */
    for (int j = 0; j < 3; j++) {
        bench_samples_free(&smp[j]);
        done[j] = 0;
    }
    if (rc == 0) {
        struct framed_cycle fc = {.fd = bench_side_bridge_fd(s), .a = cb.a};
        bench_op_fn ops[3] = {op_viommu_framed, op_floor2, op_viommu};
        void *ctxs[3] = {&fc, &cf, &cd};
        rc = fc.fd < 0 ? -EBADF : bench_run_many(&p, cfg->sim ? 3 : 2, ops, ctxs, smp, done);
    }
    if (rc == 0)
        rc = fig_set(r, FIG_VIOMMU_FRAMED, K_BRIDGE, &smp[0], done[0], true);
    struct bench_stats st;
    if (rc == 0 && bench_stats_compute(&smp[1], &st) == 0)
        r->viommu_framed_floor = st.median / 1000.0;   /* samples in ns */
    if (rc == 0 && cfg->sim && bench_stats_compute(&smp[2], &st) == 0)
        r->viommu_framed_direct = st.median / 1000.0;
    /* Simulated device: a third pass, the hand-framed cycle against the
     * served floor (served_peer: the same client calls, a server that makes
     * the same simulator calls and nothing else) and the plain floor. The
     * direct cycle is the simulator's calls in a tight loop in this process;
     * made by a second process between two messages they cost more (caches
     * and TLB, the hand-offs), and that part is not the bridge's work. */
    for (int j = 0; j < 3; j++) {
        bench_samples_free(&smp[j]);
        done[j] = 0;
    }
    if (rc == 0 && cfg->sim) {
        struct floor_peer fs = {.pid = -1, .c = {.fd = -1}};
        rc = floor_spawn(&fs, true, 0, true);
        if (rc == 0) {
            struct framed_cycle fc = {.fd = bench_side_bridge_fd(s), .a = cb.a, .id = 0x8000};
            struct viommu_ctx cs = {.a = cb.a, .floor = &fs.c};
            bench_op_fn ops[3] = {op_viommu_framed, op_floor2, op_floor2};
            void *ctxs[3] = {&fc, &cs, &cf};
            rc = fc.fd < 0 ? -EBADF : bench_run_many(&p, 3, ops, ctxs, smp, done);
        }
        double *to[3] = {&r->viommu_served_cycle, &r->viommu_served_floor,
                         &r->viommu_served_plain};
        for (int j = 0; j < 3 && rc == 0; j++)
            if (bench_stats_compute(&smp[j], &st) == 0)
                *to[j] = st.median / 1000.0;
        floor_stop(&fs);
    }
out:
    if (rc < 0)
        fig_fail(r, FIG_VIOMMU_CYCLE, s->name,
                 s->err[0] ? s->err : ds && ds->err[0] ? ds->err : strerror(-rc));
    for (int j = 0; j < 3; j++)
        bench_samples_free(&smp[j]);
    if (ff.pid > 0 || ff.c.fd >= 0)
        floor_stop(&ff);
    if (k == K_BRIDGE)
        pin_end(&pin, bridge_pid);
    if (ds)
        ds->ops->close(ds);
    dma_area_close(&cb.a);
    dma_area_close(&cd.a);
}
