/* SPDX-License-Identifier: MIT */
/*
 * vfio-user-bench - what the bridge costs, measured side by side with direct
 * VFIO in one run. See docs/performance.md.
 *
 * Order of a run: the socket floor; the direct phase (the device opened in
 * this process; a VFIO group has one container at a time, so it is closed
 * again before the bridge starts); the bridge's start-up, spawned a few times;
 * the bridge phase through one client connection; the report.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "hv.h"
#include "hv_iommufd.h"
#include "hv_sim.h"
#include "vu_client.h"

#define BRIDGE_NAME "vfio-user-bridge"
#define REPLY_TIMEOUT_MS 60000   /* a TCG guest can stall for seconds */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: vfio-user-bench (--device DDDD:BB:DD.F | --sim) [options]\n"
        "Measures the vfio-user bridge against direct VFIO access, in one run.\n"
        "  --device ADDR      a real edu function bound to vfio-pci (needs root)\n"
        "  --sim              the simulated edu device (bridge --sim=edu; direct =\n"
        "                     the simulator's ops called in this process)\n"
        "  --bridge PATH      the bridge binary (default: found next to this one)\n"
        "  --bridge-arg ARG   pass ARG to the bridge (repeatable, at most 8)\n"
        "  --iommu KIND       the direct side's IOMMU back end: type1 (default) or\n"
        "                     iommufd (the bridge's: --bridge-arg --iommu ...)\n"
        "  --dma-only         measure the DMA map/unmap figures only\n"
        "  --quick            a short smoke run (few iterations)\n"
        "  --iterations N     samples per latency figure (default 2000, quick 50)\n"
        "  --irqs N           interrupts per side (default 10000, quick 200)\n"
        "  --dma-mib N        DMA area in MiB (default 256, quick 16)\n"
        "  --dma-reps N       passes over the DMA area per piece size (default 3, quick 1)\n"
        "  --startups N       bridge start-ups timed (default 5, quick 2)\n"
"  --poll-us N        also measure busy polling (--sim only): a second bridge\n"
"                     with --poll-us N and a client that spins as long for its\n"
"                     replies, against a socket floor whose ends do the same;\n"
"                     burns both cores while it runs (default 0 = not measured)\n"
        "  --json FILE        write the results as JSON ('-' = stdout)\n"
        "  --markdown FILE    write the Markdown table to FILE as well as to stdout\n"
        "  --help, --version\n"
        "Exit status: 0 when every figure was measured, 1 when one failed, 2 on usage.\n"
        "Timings never affect the exit status.\n");
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* The bridge binary next to this one: same directory (installed), or the
 * build tree's bridge/ (this binary lives in <build>/tools/bench/). */
static int find_bridge(char *out, size_t sz)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return -ENOENT;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash)
        return -ENOENT;
    *slash = 0;
    static const char *const rel[] = {
        BRIDGE_NAME, "../../bridge/" BRIDGE_NAME, "../bridge/" BRIDGE_NAME,
        "../sbin/" BRIDGE_NAME, "../libexec/" BRIDGE_NAME,
    };
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        int n2 = snprintf(out, sz, "%s/%s", self, rel[i]);
        if (n2 > 0 && (size_t)n2 < sz && access(out, X_OK) == 0)
            return 0;
    }
    return -ENOENT;
}

static int open_direct(const struct bench_config *cfg, struct bench_side **out)
{
    struct hv_device *d = NULL;
    struct vub_err err = {{0}};
    int rc;
    if (cfg->sim) {
        struct hv_sim_config sc;
        hv_sim_config_defaults(&sc);
        rc = hv_sim_open(&sc, &d, &err);
    } else if (strcmp(cfg->iommu, "iommufd") == 0) {
        rc = hv_iommufd_open(cfg->device, NULL, &d, &err);
    } else {
        rc = hv_type1_open(cfg->device, NULL, &d, &err);
    }
    if (rc < 0) {
        fprintf(stderr, "vfio-user-bench: direct open: %s\n", err.msg[0] ? err.msg : strerror(-rc));
        return rc;
    }
    return bench_side_direct(d, out);
}

static int run_bridge(const struct bench_config *cfg, struct bench_result *r)
{
    struct bench_bridge b = {.pid = -1};
    struct bench_samples st = {0};
    struct bench_proc_stat ps;
    uint64_t ns = 0;
    int rc = 0;

    /* start-up: spawned cfg->startups times, the last one stays */
    for (unsigned i = 0; i < cfg->startups; i++) {
        rc = bench_bridge_spawn(cfg, &b, &ns, i);
        if (rc < 0)
            break;
        rc = bench_samples_add(&st, (double)ns / 1e6);
        if (rc < 0 || i + 1 == cfg->startups)
            break;
        if (bench_bridge_stop(&b) < 0) {
            fprintf(stderr, "vfio-user-bench: the bridge did not exit cleanly on SIGTERM\n");
            bench_bridge_dump_log(&b);
            r->errors++;
        }
    }
    if (rc < 0) {
        r->errors++;
        bench_samples_free(&st);
        bench_bridge_stop(&b);
        return rc;
    }
    bench_stats_compute(&st, &r->fig[FIG_STARTUP].st[0]);
    r->fig[FIG_STARTUP].has[0] = true;
    r->fig[FIG_STARTUP].ops[0] = st.n;
    bench_samples_free(&st);

    /* idle footprint: let it finish with the probe connection first */
    usleep(200000);
    if (bench_proc_read(b.pid, &ps) == 0) {
        struct bench_stats *s = &r->fig[FIG_RSS_IDLE].st[0];
        memset(s, 0, sizeof(*s));
        s->n = 1;
        s->median = s->min = s->max = s->mean = s->p10 = s->p25 = s->p75 = s->p90 = (double)ps.rss;
        r->fig[FIG_RSS_IDLE].has[0] = true;
        r->rss_anon[0] = ps.anon;
        r->rss_file[0] = ps.file;
    }

    struct vu_client *c = NULL;
    struct vub_err verr = {{0}};
    struct bench_side *s = NULL;
    rc = vu_client_connect(b.sock, &c, &verr);
    if (rc < 0) {
        fprintf(stderr, "vfio-user-bench: connect %s: %s\n", b.sock, verr.msg[0] ? verr.msg : strerror(-rc));
        goto fail;
    }
    vu_client_set_timeout(c, REPLY_TIMEOUT_MS);
    rc = vu_client_negotiate(c, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "vfio-user-bench: VERSION: %s\n", vu_client_error(c));
        vu_client_close(c);
        goto fail;
    }
    rc = bench_side_bridge(c, &s);
    if (rc < 0)
        goto fail;
    bench_phase_bridge(cfg, s, &b, r);
    s->ops->close(s);
    if (bench_bridge_stop(&b) < 0) {
        fprintf(stderr, "vfio-user-bench: the bridge did not exit cleanly on SIGTERM\n");
        bench_bridge_dump_log(&b);
        r->errors++;
    }
    return 0;

fail:
    r->errors++;
    bench_bridge_stop(&b);
    bench_bridge_dump_log(&b);
    return rc;
}

static void cleanup_dir(const char *dir, unsigned startups)
{
    char p[PATH_MAX + 32];
    if (snprintf(p, sizeof(p), "%s/bridge.sock", dir) < (int)sizeof(p))
        unlink(p);
    if (snprintf(p, sizeof(p), "%s/%s", dir, BENCH_POLL_SOCK) < (int)sizeof(p))
        unlink(p);
    if (snprintf(p, sizeof(p), "%s/bridge.sock.ctl", dir) < (int)sizeof(p))
        unlink(p);   /* the status socket, if a bridge was killed */
    if (snprintf(p, sizeof(p), "%s/%s.ctl", dir, BENCH_POLL_SOCK) < (int)sizeof(p))
        unlink(p);
    for (unsigned i = 0; i <= startups; i++)   /* the --poll-us bridge's is last */
        if (snprintf(p, sizeof(p), "%s/bridge-%u.log", dir, i) < (int)sizeof(p))
            unlink(p);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    enum { O_DEVICE = 256, O_SIM, O_BRIDGE, O_BRIDGE_ARG, O_QUICK, O_ITER, O_IRQS, O_DMA_MIB,
           O_DMA_REPS, O_STARTUPS, O_POLL_US, O_JSON, O_MD, O_HELP, O_VERSION, O_IOMMU,
           O_DMA_ONLY };
    static const struct option opts[] = {
        {"device", required_argument, NULL, O_DEVICE},
        {"sim", no_argument, NULL, O_SIM},
        {"bridge", required_argument, NULL, O_BRIDGE},
        {"bridge-arg", required_argument, NULL, O_BRIDGE_ARG},
        {"quick", no_argument, NULL, O_QUICK},
        {"iterations", required_argument, NULL, O_ITER},
        {"irqs", required_argument, NULL, O_IRQS},
        {"dma-mib", required_argument, NULL, O_DMA_MIB},
        {"dma-reps", required_argument, NULL, O_DMA_REPS},
        {"startups", required_argument, NULL, O_STARTUPS},
        {"poll-us", required_argument, NULL, O_POLL_US},
        {"iommu", required_argument, NULL, O_IOMMU},
        {"dma-only", no_argument, NULL, O_DMA_ONLY},
        {"json", required_argument, NULL, O_JSON},
        {"markdown", required_argument, NULL, O_MD},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {0},
    };
    struct bench_config cfg = {0};
    unsigned samples = 0, irqs = 0, dma_mib = 0, dma_reps = 0, startups = 0;
    const char *json = NULL, *md = NULL;
    char addr[HV_ADDR_LEN], bridge[PATH_MAX];
    int o;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (o) {
        case O_DEVICE:
            if (hv_pci_addr_parse(optarg, addr) < 0) {
                fprintf(stderr, "vfio-user-bench: bad PCI address '%s'\n", optarg);
                return 2;
            }
            cfg.device = addr;
            break;
        case O_SIM: cfg.sim = true; break;
        case O_BRIDGE: cfg.bridge_path = optarg; break;
        case O_BRIDGE_ARG:
            if (cfg.nbridge_args == sizeof(cfg.bridge_args) / sizeof(cfg.bridge_args[0]))
                bad = 1;
            else
                cfg.bridge_args[cfg.nbridge_args++] = optarg;
            break;
        case O_QUICK: cfg.quick = true; break;
        case O_ITER: bad = parse_uint(optarg, 5, 10000000, &samples); break;
        case O_IRQS: bad = parse_uint(optarg, 1, 10000000, &irqs); break;
        case O_DMA_MIB: bad = parse_uint(optarg, 4, 65536, &dma_mib); break;
        case O_DMA_REPS: bad = parse_uint(optarg, 1, 1000, &dma_reps); break;
        case O_STARTUPS: bad = parse_uint(optarg, 1, 1000, &startups); break;
        case O_POLL_US: bad = parse_uint(optarg, 0, 1000000, &cfg.poll_us); break;
        case O_IOMMU:
            bad = strcmp(optarg, "type1") != 0 && strcmp(optarg, "iommufd") != 0;
            cfg.iommu = optarg;
            break;
        case O_DMA_ONLY: cfg.dma_only = true; break;
        case O_JSON: json = optarg; break;
        case O_MD: md = optarg; break;
        case O_HELP: usage(stdout); return 0;
        case O_VERSION: printf("vfio-user-bench %s\n", VUB_VERSION); return 0;
        default: usage(stderr); return 2;
        }
        if (bad) {
            fprintf(stderr, "vfio-user-bench: bad value for --%s: '%s'\n", argv[optind - 1] + 2, optarg);
            return 2;
        }
    }
    if (optind != argc || cfg.sim == (cfg.device != NULL) || (cfg.sim && cfg.iommu)) {
        usage(stderr);
        return 2;
    }
    if (!cfg.iommu)
        cfg.iommu = "type1";
    cfg.samples = samples ? samples : cfg.quick ? 50 : 2000;
    cfg.irqs = irqs ? irqs : cfg.quick ? 200 : 10000;
    cfg.dma_area = (uint64_t)(dma_mib ? dma_mib : cfg.quick ? 16 : 256) << 20;
    cfg.dma_reps = dma_reps ? dma_reps : cfg.quick ? 1 : 3;
    cfg.startups = startups ? startups : cfg.quick ? 2 : 5;
    if (!cfg.bridge_path) {
        if (find_bridge(bridge, sizeof(bridge)) < 0) {
            fprintf(stderr, "vfio-user-bench: no %s next to this binary; give --bridge PATH\n",
                    BRIDGE_NAME);
            return 2;
        }
        cfg.bridge_path = bridge;
    }

    char dir[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/vub-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "vfio-user-bench: mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    cfg.sockdir = dir;
    signal(SIGPIPE, SIG_IGN);

    struct bench_result *r = calloc(1, sizeof(*r));
    if (!r) {
        rmdir(dir);
        return 1;
    }
    bench_figures_init(r);

    fprintf(stderr, "vfio-user-bench: direct phase\n");
    struct bench_side *direct = NULL;
    if (open_direct(&cfg, &direct) == 0) {
        bench_phase_direct(&cfg, direct, r);
        direct->ops->close(direct);  /* releases the group before the bridge opens it */
    } else {
        r->errors++;
    }

    fprintf(stderr, "vfio-user-bench: bridge phase (%s)\n", cfg.bridge_path);
    run_bridge(&cfg, r);
    cleanup_dir(dir, cfg.startups);

    if (!cfg.sim && !cfg.dma_only) {
        fprintf(stderr, "vfio-user-bench: direct phase, second half of the MMIO samples\n");
        if (open_direct(&cfg, &direct) == 0) {
            bench_phase_direct_after(&cfg, direct, r);
            direct->ops->close(direct);
        } else {
            r->errors++;
        }
        bench_mmio_finish(r);
    }

    /* both paths must have seen the same device (check_device saw edu on
     * both in a --dma-only run) */
    if (!cfg.dma_only && (r->cfg_id[0] != r->cfg_id[1] || r->bar_id[0] != r->bar_id[1])) {
        fprintf(stderr, "vfio-user-bench: the sides disagree: config id 0x%08x/0x%08x, "
                        "BAR0 id 0x%08x/0x%08x (bridge/direct)\n",
                r->cfg_id[0], r->cfg_id[1], r->bar_id[0], r->bar_id[1]);
        r->errors++;
    }

    /* a figure neither measured nor reported as failed would be a bench bug */
    for (int i = 0; i < FIG_COUNT; i++) {
        bool polled = i == FIG_FLOOR_SPIN || i == FIG_RT_POLL;
        if (polled && !(cfg.poll_us && cfg.sim))
            continue;
        if (cfg.dma_only && !(i >= FIG_DMA_MAP_4K && i <= FIG_DMA_UNMAP_2M_FRESH) &&
            i != FIG_STARTUP)
            continue;
        bool bridge_only = polled || i == FIG_FLOOR || i == FIG_FLOOR_FRAMED || i == FIG_IRQ_BRIDGE_CPU ||
                           i == FIG_RSS_IDLE ||
                           i == FIG_RSS_MAPS || i == FIG_STARTUP || i == FIG_VIOMMU_FLOOR ||
                           i == FIG_VIOMMU_FRAMED;
        bool direct_only = i == FIG_DMA_MAP_2M_FRESH || i == FIG_DMA_UNMAP_2M_FRESH;
        if (r->errors == 0 && ((!direct_only && !r->fig[i].has[0]) ||
                               (!bridge_only && !r->fig[i].has[1]))) {
            fprintf(stderr, "vfio-user-bench: figure %s was not measured\n", r->fig[i].key);
            r->errors++;
        }
    }

    struct bench_meta meta;
    bench_meta_fill(&meta, &cfg, argc, argv);
    int rc = bench_write_markdown("-", &meta, r);
    if (rc == 0 && md)
        rc = bench_write_markdown(md, &meta, r);
    if (rc == 0 && json)
        rc = bench_write_json(json, &meta, r);
    if (rc < 0) {
        fprintf(stderr, "vfio-user-bench: writing the results: %s\n", strerror(-rc));
        r->errors++;
    }
    int status = r->errors ? 1 : 0;
    free(r);
    return status;
}
