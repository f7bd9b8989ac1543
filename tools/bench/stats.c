/* SPDX-License-Identifier: MIT */
/* stats.c - clock, samples and their summary; the generic timing loop. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int bench_samples_add(struct bench_samples *s, double x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        double *v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

void bench_samples_free(struct bench_samples *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_quantile(const double *sorted, size_t n, double q)
{
    if (n == 0)
        return NAN;
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo + 1 >= n)
        return sorted[n - 1];
    double frac = pos - (double)lo;
    return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * frac;
}

static double median_of(const double *v, size_t n, double *tmp)
{
    memcpy(tmp, v, n * sizeof(*v));
    qsort(tmp, n, sizeof(*tmp), cmp_double);
    return bench_quantile(tmp, n, 0.5);
}

int bench_stats_compute(const struct bench_samples *s, struct bench_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (s->n == 0)
        return -EINVAL;
    double *t = malloc(s->n * sizeof(*t));
    if (!t)
        return -ENOMEM;
    double sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += s->v[i];
    out->n = s->n;
    out->mean = sum / (double)s->n;
    if (s->n >= 4) {
        size_t h = s->n / 2;
        double m1 = median_of(s->v, h, t);
        double m2 = median_of(s->v + h, s->n - h, t);
        double mid = (m1 + m2) / 2;
        out->drift = mid > 0 ? fabs(m1 - m2) / mid : 0;
    }
    memcpy(t, s->v, s->n * sizeof(*t));
    qsort(t, s->n, sizeof(*t), cmp_double);
    out->min = t[0];
    out->max = t[s->n - 1];
    out->p10 = bench_quantile(t, s->n, 0.10);
    out->p25 = bench_quantile(t, s->n, 0.25);
    out->median = bench_quantile(t, s->n, 0.50);
    out->p75 = bench_quantile(t, s->n, 0.75);
    out->p90 = bench_quantile(t, s->n, 0.90);
    free(t);
    return 0;
}

/* Time `n` operations starting at index *i, plus the end hook. */
static int timed_batch(const struct bench_plan *p, bench_op_fn op, void *ctx, uint64_t *i,
                       unsigned n, uint64_t *ns)
{
    uint64_t t0 = bench_now_ns();
    for (unsigned k = 0; k < n; k++) {
        int rc = op(ctx, (*i)++);
        if (rc < 0)
            return rc;
    }
    if (p->end) {
        int rc = p->end(ctx, *i);
        if (rc < 0)
            return rc;
    }
    *ns = bench_now_ns() - t0;
    return 0;
}

#define BENCH_MAX_BATCH 1000000u

int bench_run(const struct bench_plan *p, bench_op_fn op, void *ctx,
              struct bench_samples *out, uint64_t *ops_done)
{
    uint64_t i = 0, ns = 0;
    unsigned div = p->div ? p->div : 1;
    int rc;

    /* Warm-up: caches, page tables, the peer's wake-up path. It also gives
     * the cost estimate used to size a batch. */
    unsigned warm = p->warmup ? p->warmup : 1;
    rc = timed_batch(p, op, ctx, &i, warm, &ns);
    if (rc < 0)
        return rc;
    unsigned batch = p->batch;
    if (batch == 0) {
        double per = (double)ns / warm;
        batch = 1;
        if (per > 0 && per * batch < (double)p->min_batch_ns)
            batch = (unsigned)fmin((double)p->min_batch_ns / per + 1, BENCH_MAX_BATCH);
    }
    for (unsigned s = 0; s < p->samples; s++) {
        rc = timed_batch(p, op, ctx, &i, batch, &ns);
        if (rc < 0)
            return rc;
        rc = bench_samples_add(out, (double)ns / ((double)batch * div));
        if (rc < 0)
            return rc;
    }
    if (ops_done)
        *ops_done = i;
    return 0;
}
