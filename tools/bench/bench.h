/* SPDX-License-Identifier: MIT */
/*
 * bench.h - internals of vfio-user-bench.
 *
 * The bench measures every figure twice: through the bridge (a spawned
 * vfio-user-bridge, driven with the vu_client API) and directly (the same
 * operation done in-process on the device through the host-vfio ops table,
 * the way a VMM holding the VFIO fds would). That is why this tool, unlike
 * the other tools which only speak the protocol (tools -> src), also links
 * host-vfio: the direct side IS host-vfio.
 */
#ifndef VUB_BENCH_H
#define VUB_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vu_wire.h"

/* ---- time and statistics (stats.c) -------------------------------------- */

uint64_t bench_now_ns(void);

/* Summary of a set of samples (each sample a cost per operation in ns, or
 * whatever unit the figure uses). Percentiles interpolate linearly between
 * the sorted samples (the p-th quantile of n samples sits at (n-1)*p). */
struct bench_stats {
    size_t n;
    double median, p10, p25, p75, p90, min, max, mean;
    /* |median(first half) - median(second half)| / median: how far the
     * median moved during the run (a stability check; 0 when n < 4). */
    double drift;
};

/* A growable array of samples. */
struct bench_samples {
    double *v;
    size_t n, cap;
};
int bench_samples_add(struct bench_samples *s, double x);
void bench_samples_free(struct bench_samples *s);
/* Sorts a copy; s itself keeps its order (needed for the drift). -ENOMEM,
 * -EINVAL when s is empty. */
int bench_stats_compute(const struct bench_samples *s, struct bench_stats *out);
/* Quantile q in [0,1] of n sorted values. */
double bench_quantile(const double *sorted, size_t n, double q);

/* ---- one measured operation --------------------------------------------- */

/* One operation; i counts from 0. Returns 0 or -errno (stops the figure). */
typedef int (*bench_op_fn)(void *ctx, uint64_t i);

struct bench_plan {
    unsigned samples;      /* samples kept */
    unsigned warmup;       /* operations run and discarded first */
    unsigned batch;        /* operations per sample; 0 = calibrate so one
                              sample lasts at least min_batch_ns */
    uint64_t min_batch_ns;
    bench_op_fn end;       /* run once at the end of every sample, inside the
                              timing (drains posted work); may be NULL */
    unsigned div;          /* the sample is divided by batch * div (operations
                              that each stand for `div` units, e.g. writes in
                              one WRITE_MULTI); 0 = 1 */
    unsigned turn;         /* bench_run_many: samples per turn; 0 = 1 */
};

/* Run op as planned and add one sample (ns per unit) per batch to out.
 * Returns 0 or the first error of op/end. *ops_done counts operations. */
int bench_run(const struct bench_plan *p, bench_op_fn op, void *ctx,
              struct bench_samples *out, uint64_t *ops_done);

/* Several operations measured in turns: each warmed up and its batch
 * calibrated alone, then plan.turn samples of each in round robin (each turn
 * led by one batch not kept), so that all see the same state of the
 * machine (plan.end and plan.div are not used).
 * outs[k] gets op k's samples; ops_done[k] (may be NULL) its count. */
#define BENCH_MANY_MAX 8
int bench_run_many(const struct bench_plan *p, unsigned n, bench_op_fn *ops, void **ctxs,
                   struct bench_samples *outs, uint64_t *ops_done);

/* ---- the two sides (side.c) --------------------------------------------- */

/* A region as one side sees it. */
struct bench_region {
    uint64_t size;
    uint64_t offset;  /* into fd, for mmap */
    uint32_t flags;   /* VU_REGION_INFO_FLAG_* (== VFIO's) */
};

struct bench_side;
struct bench_side_ops {
    int (*read)(struct bench_side *s, uint32_t region, uint64_t off, void *buf, uint32_t len);
    int (*write)(struct bench_side *s, uint32_t region, uint64_t off, const void *buf,
                 uint32_t len, bool posted);
    int (*write_multi)(struct bench_side *s, const struct vu_write_multi_entry *w, uint32_t n);
    /* Wait until every posted write has been done. */
    int (*sync)(struct bench_side *s);
    /* Region info; *fd (if non-NULL) gets a new fd to mmap the region
     * through, or -1 when it is not mmappable. */
    int (*region)(struct bench_side *s, uint32_t index, struct bench_region *out, int *fd);
    /* Map [iova, iova+size) to the memory at `fd_off` in memfd (mapped in
     * this process at vaddr). */
    int (*dma_map)(struct bench_side *s, uint64_t iova, uint64_t size, int memfd,
                   uint64_t fd_off, void *vaddr);
    int (*dma_unmap)(struct bench_side *s, uint64_t iova, uint64_t size);
    /* Route sub-index 0 of IRQ `index` to efd (-1: disable the index). */
    int (*irq_eventfd)(struct bench_side *s, uint32_t index, int efd);
    /* Most DMA mappings one may hold at once. */
    uint32_t (*max_maps)(struct bench_side *s);
    void (*close)(struct bench_side *s);
};

struct bench_side {
    const struct bench_side_ops *ops;
    const char *name;        /* "bridge", "direct" */
    char err[256];           /* reason of the last failure */
};

struct hv_device;
struct vu_client;
/* Wrap a device (takes ownership). */
int bench_side_direct(struct hv_device *d, struct bench_side **out);
/* Wrap a negotiated client (takes ownership). */
int bench_side_bridge(struct vu_client *c, struct bench_side **out);
/* The socket of a bridge side's client (for messages framed by hand while
 * the client is idle), -1 for any other side. */
int bench_side_bridge_fd(struct bench_side *s);

/* ---- the figures (measure.c) --------------------------------------------- */

enum bench_fig {
    FIG_FLOOR,          /* socket ping-pong, REGION_READ sizes */
    FIG_FLOOR_FRAMED,   /* the same with the transport's system calls */
    FIG_FLOOR_SPIN,     /* the same, both ends busy-polling (--poll-us) */
    FIG_RT_CONFIG,      /* trapped 4-byte config read */
    FIG_RT_BAR,         /* trapped 4-byte BAR0 read */
    FIG_RT_POLL,        /* trapped config read, bridge --poll-us, spinning client */
    FIG_POSTED,         /* REGION_WRITE No_reply, per write */
    FIG_MULTI,          /* REGION_WRITE_MULTI, per write */
    FIG_MMIO_READ,      /* 4-byte read through the mmapped BAR */
    FIG_MMIO_WRITE,
    FIG_DMA_MAP_4K,
    FIG_DMA_UNMAP_4K,
    FIG_DMA_MAP_2M,
    FIG_DMA_UNMAP_2M,
    FIG_DMA_TOTAL_4K,   /* map + unmap of the whole area, ms */
    FIG_DMA_TOTAL_2M,
    FIG_DMA_MAP_2M_FRESH,   /* direct only: mmap of the piece + map, as the */
    FIG_DMA_UNMAP_2M_FRESH, /* bridge does it, minus the message */
    FIG_IRQ_LATENCY,
    FIG_IRQ_BRIDGE_CPU, /* ns of bridge CPU per interrupt */
    FIG_RSS_IDLE,       /* KiB */
    FIG_RSS_MAPS,
    FIG_STARTUP,        /* ms to listening */
    FIG_VIOMMU_CYCLE,   /* 4 KiB map + unmap of one IOVA, a new page each time */
    FIG_VIOMMU_FLOOR,   /* bridge only: two framed ping-pongs, in turns with it */
    FIG_VIOMMU_FRAMED,  /* bridge only: the cycle with the client framed by hand */
    FIG_COUNT
};

struct bench_figure {
    const char *key, *label, *unit;
    bool rate;                   /* also show operations per second */
    bool has[2];                 /* [0] bridge, [1] direct */
    struct bench_stats st[2];
    uint64_t ops[2];
    char note[160];
};

/* Everything a run produces, besides the figures. */
struct bench_result {
    struct bench_figure fig[FIG_COUNT];
    /* interrupt CPU detail */
    bool irq_cpu_valid;
    uint64_t irq_count;
    long long irq_ticks;         /* utime+stime delta, clock ticks */
    long long irq_sched_ns;      /* schedstat run time delta */
    long long irq_wakeups;       /* voluntary+involuntary ctxt switch delta */
    bool irq_through_bridge;     /* trigger written through the bridge (sim) */
    /* footprint detail, KiB */
    long rss_anon[2], rss_file[2], rss_shmem[2];
    uint64_t dma_area;           /* bytes mapped in the DMA figures */
    unsigned dma_reps;
    unsigned multi_batch;
    /* what each side read (checked equal across sides): [0] bridge [1] direct */
    uint32_t cfg_id[2], bar_id[2];
    /* direct MMIO samples (ns), taken half before and half after the bridge
     * phase so that a change of the machine's state between the phases
     * shows up as spread and not as a ratio */
    struct bench_samples mmio_keep[2];
    /* the CPU that the bench, the floor peer and the bridge shared while
     * the vIOMMU cycle was measured (measure.c) */
    bool viommu_pinned;
    int viommu_cpu;
    /* the floor and (simulated device) the direct cycle measured in turns
     * with viommu_cycle_framed, medians in us; 0 = not measured */
    double viommu_framed_floor, viommu_framed_direct;
    /* simulated device: the served floor (the floor's two ping-pongs with
     * the peer making the simulator's map and unmap between receiving and
     * replying, as any server of the cycle must), the hand-framed cycle and
     * the plain floor measured in turns with it; medians in us, 0 = not
     * measured */
    double viommu_served_floor, viommu_served_cycle, viommu_served_plain;
    unsigned errors;             /* figures that failed */
};

struct bench_config {
    bool sim;
    const char *device;          /* PCI address (real) */
    const char *bridge_path;
    const char *sockdir;         /* private temporary directory */
    bool quick;
    unsigned samples;            /* --iterations */
    unsigned irqs;               /* interrupts per side */
    uint64_t dma_area;
    unsigned dma_reps;
    unsigned startups;
    const char *bridge_args[8];  /* extra arguments for the bridge */
    unsigned nbridge_args;
    unsigned poll_us;            /* --poll-us: busy-polling figures (sim only); 0 = none */
    const char *sock_name;       /* in sockdir; NULL = "bridge.sock" */
    const char *iommu;           /* --iommu: the direct side's back end, "type1" or "iommufd" */
    bool dma_only;               /* --dma-only: the DMA figures and nothing else */
    bool verbose;
};

void bench_figures_init(struct bench_result *r);

/* Socket name of the second bridge (with --poll-us) in sockdir. */
#define BENCH_POLL_SOCK "bridge-poll.sock"

/* The bridge process as the bench sees it. */
struct bench_bridge {
    pid_t pid;
    char sock[256];
    char log[256];
};

/* Phases. Each fills what it can; a failing figure is counted in r->errors
 * with a reason on stderr and the rest goes on. */
int bench_phase_direct(const struct bench_config *cfg, struct bench_side *s,
                       struct bench_result *r);
/* The second half of the direct MMIO samples (device reopened after the
 * bridge stopped), then bench_mmio_finish sets the direct MMIO figures. */
int bench_phase_direct_after(const struct bench_config *cfg, struct bench_side *s,
                             struct bench_result *r);
void bench_mmio_finish(struct bench_result *r);
int bench_phase_bridge(const struct bench_config *cfg, struct bench_side *s,
                       const struct bench_bridge *b, struct bench_result *r);

/* ---- process helpers (proc.c) ---------------------------------------------- */

struct bench_proc_stat {
    long long ticks;       /* utime + stime */
    long long sched_ns;    /* sum over threads of schedstat run time */
    long long switches;    /* voluntary + involuntary, all threads */
    long rss, anon, file, shmem;  /* KiB */
};
int bench_proc_read(pid_t pid, struct bench_proc_stat *out);

/* Spawn the bridge on cfg's device with its socket in b->sock, wait until it
 * accepts connections (probing with connect), return the time that took. */
int bench_bridge_spawn(const struct bench_config *cfg, struct bench_bridge *b,
                       uint64_t *startup_ns, unsigned idx);
/* Ask it to stop (SIGTERM), wait (then SIGKILL after 5 s). */
int bench_bridge_stop(struct bench_bridge *b);
/* Print the tail of its log to stderr. */
void bench_bridge_dump_log(const struct bench_bridge *b);

/* ---- output (report.c) --------------------------------------------------- */

struct bench_meta {
    char date[64];
    char machine[256];
    char kernel[192];
    char command[1024];
    const char *mode;        /* "device" / "sim" */
    const char *device;
};
void bench_meta_fill(struct bench_meta *m, const struct bench_config *cfg, int argc, char **argv);
int bench_write_markdown(const char *path, const struct bench_meta *m, const struct bench_result *r);
int bench_write_json(const char *path, const struct bench_meta *m, const struct bench_result *r);

/* The targets of the issue, judged from the result. */
struct bench_target {
    const char *name;
    const char *goal;
    bool applicable;
    bool met;
    char value[128];
};
#define BENCH_NTARGETS 11
void bench_targets(const struct bench_result *r, struct bench_target t[BENCH_NTARGETS]);

#endif /* VUB_BENCH_H */
