/* SPDX-License-Identifier: MIT */
/* report.c - the Markdown table, the JSON, and the targets of the issue. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "bench.h"

/* ---- meta ------------------------------------------------------------------ */

static void cpu_model(char *out, size_t sz)
{
    char line[256];
    snprintf(out, sz, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ')
                    p++;
                p[strcspn(p, "\n")] = 0;
                snprintf(out, sz, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

static long mem_mib(void)
{
    char line[256];
    long kib = 0;
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemTotal: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib / 1024;
}

void bench_meta_fill(struct bench_meta *m, const struct bench_config *cfg, int argc, char **argv)
{
    memset(m, 0, sizeof(*m));
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(m->date, sizeof(m->date), "%Y-%m-%d %H:%M UTC", &tm);

    char cpu[160];
    cpu_model(cpu, sizeof(cpu));
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof(m->kernel), "Linux %s %s", u.release, u.machine);
    snprintf(m->machine, sizeof(m->machine), "%s, %ld CPUs, %ld MiB RAM", cpu,
             sysconf(_SC_NPROCESSORS_ONLN), mem_mib());

    size_t off = 0;
    for (int i = 0; i < argc && off < sizeof(m->command) - 1; i++) {
        int n = snprintf(m->command + off, sizeof(m->command) - off, "%s%s", i ? " " : "",
                         argv[i]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    m->mode = cfg->sim ? "sim" : "device";
    m->device = cfg->sim ? "simulated edu (hv_sim)" : cfg->device;
}

/* ---- targets --------------------------------------------------------------- */

static bool both(const struct bench_figure *f)
{
    return f->has[0] && f->has[1];
}

static double ratio(const struct bench_figure *f)
{
    return both(f) && f->st[1].median > 0 ? f->st[0].median / f->st[1].median : NAN;
}

static double rel_iqr(const struct bench_stats *s)
{
    return s->median > 0 ? (s->p75 - s->p25) / s->median : 0;
}

static void target_rt(const struct bench_result *r, enum bench_fig f, struct bench_target *t)
{
    const struct bench_figure *fl = &r->fig[FIG_FLOOR], *rt = &r->fig[f];
    t->applicable = fl->has[0] && both(rt);
    if (!t->applicable)
        return;
    double base = fl->st[0].median + rt->st[1].median;
    double x = rt->st[0].median / base;
    t->met = x <= 1.3;
    snprintf(t->value, sizeof(t->value), "%.2fx (%.2f us vs %.2f + %.2f us)", x,
             rt->st[0].median, fl->st[0].median, rt->st[1].median);
}

void bench_targets(const struct bench_result *r, struct bench_target t[BENCH_NTARGETS])
{
    memset(t, 0, sizeof(*t) * BENCH_NTARGETS);
    t[0].name = "Trapped config read";
    t[0].goal = "bridge <= 1.3 x (socket floor + direct pread)";
    target_rt(r, FIG_RT_CONFIG, &t[0]);
    t[1].name = "Trapped BAR read";
    t[1].goal = t[0].goal;
    target_rt(r, FIG_RT_BAR, &t[1]);

    /* "1.00 within noise": the ratio departs from 1 by no more than the
     * noise, the largest of: 5 %, the spread of the samples (mean relative
     * IQR of both sides), and how far the direct median moved between its
     * two halves (taken before and after the bridge phase: the same
     * mapping measured at two times). */
    t[2].name = "MMIO through the handed-out mmap";
    t[2].goal = "bridge/direct = 1.00 within noise";
    const struct bench_figure *mr = &r->fig[FIG_MMIO_READ], *mw = &r->fig[FIG_MMIO_WRITE];
    t[2].applicable = both(mr) && both(mw);
    if (t[2].applicable) {
        double tr = fmax(fmax(0.05, (rel_iqr(&mr->st[0]) + rel_iqr(&mr->st[1])) / 2), mr->st[1].drift);
        double tw = fmax(fmax(0.05, (rel_iqr(&mw->st[0]) + rel_iqr(&mw->st[1])) / 2), mw->st[1].drift);
        t[2].met = fabs(ratio(mr) - 1) <= tr && fabs(ratio(mw) - 1) <= tw;
        snprintf(t[2].value, sizeof(t[2].value), "read %.3f (noise %.0f %%), write %.3f (noise %.0f %%)",
                 ratio(mr), tr * 100, ratio(mw), tw * 100);
    }

    t[3].name = "Bridge CPU per interrupt";
    t[3].goal = "zero (no tick, no wake-up of the bridge)";
    t[3].applicable = r->irq_cpu_valid && !r->irq_through_bridge;
    if (r->irq_cpu_valid) {
        t[3].met = t[3].applicable && r->irq_ticks == 0 &&
                   (uint64_t)r->irq_wakeups * 1000 < r->irq_count;
        snprintf(t[3].value, sizeof(t[3].value), "%lld ticks, %lld ns run, %lld wake-ups / %llu irqs%s",
                 r->irq_ticks, r->irq_sched_ns, r->irq_wakeups, (unsigned long long)r->irq_count,
                 r->irq_through_bridge ? " (sim: raised through the bridge)" : "");
    }

    t[4].name = "DMA map, 2 MiB pieces";
    t[4].goal = "bridge <= 1.2 x direct";
    const struct bench_figure *dm = &r->fig[FIG_DMA_MAP_2M];
    t[4].applicable = both(dm);
    if (t[4].applicable) {
        const struct bench_figure *fr = &r->fig[FIG_DMA_MAP_2M_FRESH];
        t[4].met = ratio(dm) <= 1.2;
        if (fr->has[1] && fr->st[1].median > 0)
            snprintf(t[4].value, sizeof(t[4].value),
                     "%.2fx (%.2fx of direct with a fresh mmap per piece)", ratio(dm),
                     dm->st[0].median / fr->st[1].median);
        else
            snprintf(t[4].value, sizeof(t[4].value), "%.2fx", ratio(dm));
    }

    /* issue 18: the message path against the bare socket, same run */
    const struct bench_figure *fl = &r->fig[FIG_FLOOR], *rt = &r->fig[FIG_RT_CONFIG];
    t[5].name = "Trapped round trip vs the socket floor";
    t[5].goal = "bridge config read <= 1.10 x floor";
    t[5].applicable = fl->has[0] && rt->has[0] && fl->st[0].median > 0;
    if (t[5].applicable) {
        double x = rt->st[0].median / fl->st[0].median;
        t[5].met = x <= 1.10;
        snprintf(t[5].value, sizeof(t[5].value), "%.2fx (%.2f us vs %.2f us)", x,
                 rt->st[0].median, fl->st[0].median);
    }
    const struct bench_figure *po = &r->fig[FIG_POSTED];
    t[6].name = "Posted REGION_WRITE";
    t[6].goal = "bridge <= 1.5 x direct write";
    t[6].applicable = both(po);
    if (t[6].applicable) {
        t[6].met = ratio(po) <= 1.5;
        snprintf(t[6].value, sizeof(t[6].value), "%.2fx (%.3f us vs %.3f us)", ratio(po),
                 po->st[0].median, po->st[1].median);
    }
    const struct bench_figure *rp = &r->fig[FIG_RT_POLL], *fs = &r->fig[FIG_FLOOR_SPIN];
    t[7].name = "Busy-polled round trip vs the blocking floor";
    t[7].goal = "bridge --poll-us, spinning client <= 0.8 x floor";
    t[7].applicable = fl->has[0] && rp->has[0] && fl->st[0].median > 0;
    if (t[7].applicable) {
        double x = rp->st[0].median / fl->st[0].median;
        t[7].met = x <= 0.8;
        if (fs->has[0])
            snprintf(t[7].value, sizeof(t[7].value),
                     "%.2fx (%.2f us vs %.2f us; spinning floor %.2f us)", x,
                     rp->st[0].median, fl->st[0].median, fs->st[0].median);
        else
            snprintf(t[7].value, sizeof(t[7].value), "%.2fx (%.2f us vs %.2f us)", x,
                     rp->st[0].median, fl->st[0].median);
    }
    /* the bridge's own work in a vIOMMU map/unmap cycle: what it costs
     * beyond the direct cycle and the two messages' socket floor */
    t[8].name = "vIOMMU cycle (4 KiB map + unmap)";
    t[8].goal = "bridge's own work <= 10 % of the cycle";
    const struct bench_figure *vc = &r->fig[FIG_VIOMMU_CYCLE], *vf = &r->fig[FIG_VIOMMU_FLOOR];
    t[8].applicable = both(vc) && vf->has[0] && vc->st[0].median > 0;
    if (t[8].applicable) {
        double own = vc->st[0].median - vc->st[1].median - vf->st[0].median;
        t[8].met = own <= 0.10 * vc->st[0].median;
        snprintf(t[8].value, sizeof(t[8].value),
                 "%.1f %% (%.2f us of %.2f; direct %.2f, floor %.2f)",
                 100 * own / vc->st[0].median, own, vc->st[0].median, vc->st[1].median,
                 vf->st[0].median);
    }
    /* the same with the client framed by hand: the bridge's work alone,
     * without the client library's (which the floor's client does not do
     * either) */
    t[9].name = "vIOMMU cycle, client framed by hand";
    t[9].goal = "bridge's own work <= 10 % of the cycle";
    const struct bench_figure *vh = &r->fig[FIG_VIOMMU_FRAMED];
    /* against the floor and direct cycle of its own turns (the real
     * device's direct cycle is the direct phase's) */
    double hdirect = r->viommu_framed_direct > 0 ? r->viommu_framed_direct
                     : vc->has[1] ? vc->st[1].median : 0;
    t[9].applicable = vh->has[0] && vh->st[0].median > 0 && r->viommu_framed_floor > 0 &&
                      hdirect > 0;
    if (t[9].applicable) {
        double own = vh->st[0].median - hdirect - r->viommu_framed_floor;
        t[9].met = own <= 0.10 * vh->st[0].median;
        snprintf(t[9].value, sizeof(t[9].value),
                 "%.1f %% (%.2f us of %.2f; direct %.2f, floor %.2f)",
                 100 * own / vh->st[0].median, own, vh->st[0].median, hdirect,
                 r->viommu_framed_floor);
    }
    /* simulated device: beyond a minimal server that makes the same
     * simulator calls between the same messages (the served floor) */
    t[10].name = "vIOMMU cycle against a minimal server";
    t[10].goal = "bridge's own work beyond a server making the same calls <= 10 % of the cycle";
    t[10].applicable = r->viommu_served_cycle > 0 && r->viommu_served_floor > 0 &&
                       r->viommu_served_plain > 0;
    if (t[10].applicable) {
        double own = r->viommu_served_cycle - r->viommu_served_floor;
        t[10].met = own <= 0.10 * r->viommu_served_cycle;
        snprintf(t[10].value, sizeof(t[10].value),
                 "%.1f %% (%.2f us of %.2f; served floor %.2f = floor %.2f + calls %.2f)",
                 100 * own / r->viommu_served_cycle, own, r->viommu_served_cycle,
                 r->viommu_served_floor, r->viommu_served_plain,
                 r->viommu_served_floor - r->viommu_served_plain);
    }
}

/* ---- Markdown ----------------------------------------------------------------- */

static void fmt_num(char *b, size_t sz, double v)
{
    double a = fabs(v);
    if (a >= 1000)
        snprintf(b, sz, "%.0f", v);
    else if (a >= 100)
        snprintf(b, sz, "%.1f", v);
    else if (a >= 10)
        snprintf(b, sz, "%.2f", v);
    else
        snprintf(b, sz, "%.3f", v);
}

static void fmt_rate(char *b, size_t sz, double per_s)
{
    if (per_s >= 1e6)
        snprintf(b, sz, "%.2f M/s", per_s / 1e6);
    else if (per_s >= 1e3)
        snprintf(b, sz, "%.1f k/s", per_s / 1e3);
    else
        snprintf(b, sz, "%.0f /s", per_s);
}

static double unit_ns(const char *unit)
{
    if (strcmp(unit, "us") == 0)
        return 1e3;
    if (strcmp(unit, "ms") == 0)
        return 1e6;
    return 1;
}

static void cell(char *b, size_t sz, const struct bench_figure *f, int k)
{
    if (!f->has[k]) {
        snprintf(b, sz, "-");
        return;
    }
    const struct bench_stats *s = &f->st[k];
    char m[32], lo[32], hi[32], rate[32] = "";
    fmt_num(m, sizeof(m), s->median);
    if (s->n < 2) {
        snprintf(b, sz, "%s %s", m, f->unit);
        return;
    }
    fmt_num(lo, sizeof(lo), s->p10);
    fmt_num(hi, sizeof(hi), s->p90);
    if (f->rate && s->median > 0) {
        char r[24];
        fmt_rate(r, sizeof(r), 1e9 / (s->median * unit_ns(f->unit)));
        snprintf(rate, sizeof(rate), " (%s)", r);
    }
    snprintf(b, sz, "%s %s [%s, %s]%s", m, f->unit, lo, hi, rate);
}

int bench_write_markdown(const char *path, const struct bench_meta *m, const struct bench_result *r)
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "we");
    if (!f)
        return -errno;
    fprintf(f, "Measured %s on %s (%s), device: %s.\n\n", m->date, m->machine, m->kernel,
            m->device);
    fprintf(f, "Command: `%s`\n\n", m->command);
    fprintf(f, "| Figure | Bridge: median [p10, p90] | Direct: median [p10, p90] | Bridge/direct |\n");
    fprintf(f, "|---|---|---|---|\n");
    for (int i = 0; i < FIG_COUNT; i++) {
        const struct bench_figure *fg = &r->fig[i];
        if (!fg->has[0] && !fg->has[1])
            continue;
        char b[128], d[128], q[32] = "-";
        cell(b, sizeof(b), fg, 0);
        cell(d, sizeof(d), fg, 1);
        if (both(fg))
            snprintf(q, sizeof(q), "%.2f", ratio(fg));
        const char *label = fg->label;
        char lab[200];
        if (i == FIG_MULTI) {
            snprintf(lab, sizeof(lab), "%s (%u per message)", fg->label, r->multi_batch);
            label = lab;
        } else if (i == FIG_DMA_TOTAL_4K || i == FIG_DMA_TOTAL_2M) {
            snprintf(lab, sizeof(lab), "%s (%llu MiB)", fg->label,
                     (unsigned long long)(r->dma_area >> 20));
            label = lab;
        }
        fprintf(f, "| %s | %s | %s | %s |\n", label, b, d, q);
    }
    if (r->rss_anon[1] || r->rss_shmem[1])
        fprintf(f, "\nResident memory with 1000 mappings: %ld KiB anonymous, %ld KiB file, "
                   "%ld KiB shared memory (the client's pinned pages, mapped by the bridge).\n",
                r->rss_anon[1], r->rss_file[1], r->rss_shmem[1]);
    if (r->rss_anon[0] || r->rss_file[0])
        fprintf(f, "Idle: %ld KiB anonymous, %ld KiB file.\n", r->rss_anon[0], r->rss_file[0]);
    if (r->viommu_pinned)
        fprintf(f, "vIOMMU cycle and its floor: the bench, the floor peer and the bridge all on "
                   "CPU %d.\n", r->viommu_cpu);

    struct bench_target t[BENCH_NTARGETS];
    bench_targets(r, t);
    fprintf(f, "\n| Target | Goal | Measured | Verdict |\n|---|---|---|---|\n");
    for (int i = 0; i < BENCH_NTARGETS; i++)
        fprintf(f, "| %s | %s | %s | %s |\n", t[i].name, t[i].goal, t[i].value[0] ? t[i].value : "-",
                !t[i].applicable ? "n/a" : t[i].met ? "met" : "missed");
    if (r->errors)
        fprintf(f, "\n%u figure(s) failed; see the error output.\n", r->errors);
    if (f != stdout)
        fclose(f);
    else
        fflush(f);
    return 0;
}

/* ---- JSON ------------------------------------------------------------------- */

static json_object *stats_json(const struct bench_stats *s, uint64_t ops)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "median", json_object_new_double(s->median));
    json_object_object_add(o, "p10", json_object_new_double(s->p10));
    json_object_object_add(o, "p25", json_object_new_double(s->p25));
    json_object_object_add(o, "p75", json_object_new_double(s->p75));
    json_object_object_add(o, "p90", json_object_new_double(s->p90));
    json_object_object_add(o, "min", json_object_new_double(s->min));
    json_object_object_add(o, "max", json_object_new_double(s->max));
    json_object_object_add(o, "mean", json_object_new_double(s->mean));
    json_object_object_add(o, "drift", json_object_new_double(s->drift));
    json_object_object_add(o, "samples", json_object_new_int64((int64_t)s->n));
    json_object_object_add(o, "operations", json_object_new_int64((int64_t)ops));
    return o;
}

int bench_write_json(const char *path, const struct bench_meta *m, const struct bench_result *r)
{
    json_object *root = json_object_new_object();
    json_object_object_add(root, "tool", json_object_new_string("vfio-user-bench"));
    json_object_object_add(root, "version", json_object_new_string(VUB_VERSION));
    json_object_object_add(root, "date", json_object_new_string(m->date));
    json_object_object_add(root, "machine", json_object_new_string(m->machine));
    json_object_object_add(root, "kernel", json_object_new_string(m->kernel));
    json_object_object_add(root, "command", json_object_new_string(m->command));
    json_object_object_add(root, "mode", json_object_new_string(m->mode));
    json_object_object_add(root, "device", json_object_new_string(m->device));
    json_object_object_add(root, "errors", json_object_new_int((int)r->errors));

    json_object *figs = json_object_new_object();
    for (int i = 0; i < FIG_COUNT; i++) {
        const struct bench_figure *fg = &r->fig[i];
        if (!fg->has[0] && !fg->has[1])
            continue;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "label", json_object_new_string(fg->label));
        json_object_object_add(o, "unit", json_object_new_string(fg->unit));
        if (fg->has[0])
            json_object_object_add(o, "bridge", stats_json(&fg->st[0], fg->ops[0]));
        if (fg->has[1])
            json_object_object_add(o, "direct", stats_json(&fg->st[1], fg->ops[1]));
        if (both(fg))
            json_object_object_add(o, "ratio", json_object_new_double(ratio(fg)));
        json_object_object_add(figs, fg->key, o);
    }
    json_object_object_add(root, "figures", figs);

    json_object *irq = json_object_new_object();
    json_object_object_add(irq, "interrupts", json_object_new_int64((int64_t)r->irq_count));
    json_object_object_add(irq, "bridge_ticks", json_object_new_int64(r->irq_ticks));
    json_object_object_add(irq, "bridge_run_ns", json_object_new_int64(r->irq_sched_ns));
    json_object_object_add(irq, "bridge_wakeups", json_object_new_int64(r->irq_wakeups));
    json_object_object_add(irq, "raised_through_bridge", json_object_new_boolean(r->irq_through_bridge));
    json_object_object_add(root, "interrupt_cpu", r->irq_cpu_valid ? irq : NULL);
    if (!r->irq_cpu_valid)
        json_object_put(irq);

    json_object *fp = json_object_new_object();
    json_object_object_add(fp, "idle_anon_kib", json_object_new_int64(r->rss_anon[0]));
    json_object_object_add(fp, "idle_file_kib", json_object_new_int64(r->rss_file[0]));
    json_object_object_add(fp, "maps_anon_kib", json_object_new_int64(r->rss_anon[1]));
    json_object_object_add(fp, "maps_file_kib", json_object_new_int64(r->rss_file[1]));
    json_object_object_add(fp, "maps_shmem_kib", json_object_new_int64(r->rss_shmem[1]));
    json_object_object_add(root, "footprint", fp);
    json_object_object_add(root, "dma_area_bytes", json_object_new_int64((int64_t)r->dma_area));
    json_object_object_add(root, "viommu_cpu",
                           r->viommu_pinned ? json_object_new_int(r->viommu_cpu) : NULL);
    if (r->viommu_served_cycle > 0) {
        json_object *sv = json_object_new_object();
        json_object_object_add(sv, "cycle_framed_us", json_object_new_double(r->viommu_served_cycle));
        json_object_object_add(sv, "served_floor_us", json_object_new_double(r->viommu_served_floor));
        json_object_object_add(sv, "floor_us", json_object_new_double(r->viommu_served_plain));
        json_object_object_add(root, "viommu_served", sv);
    }
    json_object_object_add(root, "dma_repetitions", json_object_new_int((int)r->dma_reps));
    json_object_object_add(root, "write_multi_entries", json_object_new_int((int)r->multi_batch));

    struct bench_target t[BENCH_NTARGETS];
    bench_targets(r, t);
    json_object *ta = json_object_new_array();
    for (int i = 0; i < BENCH_NTARGETS; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(t[i].name));
        json_object_object_add(o, "goal", json_object_new_string(t[i].goal));
        json_object_object_add(o, "measured", json_object_new_string(t[i].value));
        json_object_object_add(o, "verdict", json_object_new_string(
            !t[i].applicable ? "n/a" : t[i].met ? "met" : "missed"));
        json_object_array_add(ta, o);
    }
    json_object_object_add(root, "targets", ta);

    const char *txt = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
    int rc = 0;
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "we");
    if (!f) {
        rc = -errno;
    } else {
        if (fprintf(f, "%s\n", txt) < 0)
            rc = -EIO;
        if (f != stdout && fclose(f) != 0)
            rc = -errno;
    }
    json_object_put(root);
    return rc;
}
