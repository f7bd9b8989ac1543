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

int bench_run_many(const struct bench_plan *p, unsigned n, bench_op_fn *ops, void **ctxs,
                   struct bench_samples *outs, uint64_t *ops_done)
{
    unsigned batch[BENCH_MANY_MAX];
    uint64_t idx[BENCH_MANY_MAX];
    uint64_t ns = 0;
    int rc;

    if (n == 0 || n > BENCH_MANY_MAX)
        return -EINVAL;
    unsigned warm = p->warmup ? p->warmup : 1;
    struct bench_plan one = *p;
    one.end = NULL;
    for (unsigned k = 0; k < n; k++) {
        idx[k] = 0;
        rc = timed_batch(&one, ops[k], ctxs[k], &idx[k], warm, &ns);
        if (rc < 0)
            return rc;
        batch[k] = p->batch;
        if (batch[k] == 0) {
            double per = (double)ns / warm;
            batch[k] = 1;
            if (per > 0 && per < (double)p->min_batch_ns)
                batch[k] = (unsigned)fmin((double)p->min_batch_ns / per + 1, BENCH_MAX_BATCH);
        }
    }
    /* Turns of `turn` samples each, round robin: every operation sees the
     * same conditions of the machine. Each turn starts with one batch not
     * kept, so that a peer woken from idle does not count: what is measured
     * is the warm exchange, as in a run of one operation alone. */
    unsigned turn = p->turn ? p->turn : 1;
    for (unsigned s = 0; s < p->samples; s += turn) {
        unsigned m = p->samples - s < turn ? p->samples - s : turn;
        for (unsigned k = 0; k < n; k++) {
            rc = timed_batch(&one, ops[k], ctxs[k], &idx[k], batch[k], &ns);
            for (unsigned j = 0; rc == 0 && j < m; j++) {
                rc = timed_batch(&one, ops[k], ctxs[k], &idx[k], batch[k], &ns);
                if (rc == 0)
                    rc = bench_samples_add(&outs[k], (double)ns / batch[k]);
            }
            if (rc < 0)
                return rc;
        }
    }
    if (ops_done)
        for (unsigned k = 0; k < n; k++)
            ops_done[k] = idx[k];
    return 0;
}
