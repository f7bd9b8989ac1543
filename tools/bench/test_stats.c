/* SPDX-License-Identifier: MIT */
/* Unit tests of the bench's statistics and of its timing loop's bookkeeping. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench.h"

static void add_all(struct bench_samples *s, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(bench_samples_add(s, v[i]), 0);
}

static void test_quantiles_odd(void **state)
{
    (void)state;
    struct bench_samples s = {0};
    const double v[] = {9, 1, 5, 3, 7};   /* sorted: 1 3 5 7 9 */
    add_all(&s, v, 5);
    struct bench_stats st;
    assert_int_equal(bench_stats_compute(&s, &st), 0);
    assert_int_equal(st.n, 5);
    assert_true(st.median == 5);
    assert_true(st.min == 1 && st.max == 9);
    assert_true(st.mean == 5);
    assert_true(fabs(st.p25 - 3) < 1e-12);
    assert_true(fabs(st.p75 - 7) < 1e-12);
    assert_true(fabs(st.p10 - 1.8) < 1e-12);   /* 0.4 of the way from 1 to 3 */
    assert_true(fabs(st.p90 - 8.2) < 1e-12);
    /* the input keeps its order */
    assert_true(s.v[0] == 9 && s.v[4] == 7);
    bench_samples_free(&s);
}

static void test_quantiles_even_and_growth(void **state)
{
    (void)state;
    struct bench_samples s = {0};
    for (int i = 1000; i >= 1; i--)   /* more than the first allocation */
        assert_int_equal(bench_samples_add(&s, i), 0);
    struct bench_stats st;
    assert_int_equal(bench_stats_compute(&s, &st), 0);
    assert_int_equal(st.n, 1000);
    assert_true(fabs(st.median - 500.5) < 1e-9);
    assert_true(st.min == 1 && st.max == 1000);
    bench_samples_free(&s);
    assert_null(s.v);
    assert_int_equal(bench_stats_compute(&s, &st), -EINVAL);
}

static void test_drift(void **state)
{
    (void)state;
    struct bench_samples s = {0};
    /* first half around 10, second half around 30: the median moved */
    const double v[] = {10, 10, 10, 10, 30, 30, 30, 30};
    add_all(&s, v, 8);
    struct bench_stats st;
    assert_int_equal(bench_stats_compute(&s, &st), 0);
    assert_true(fabs(st.drift - 1.0) < 1e-12);  /* |10-30| / 20 */
    bench_samples_free(&s);

    const double w[] = {5, 6, 5, 6, 6, 5, 6, 5};
    add_all(&s, w, 8);
    assert_int_equal(bench_stats_compute(&s, &st), 0);
    assert_true(st.drift == 0);
    bench_samples_free(&s);
}

struct count_ctx {
    uint64_t ops, ends, last_i;
    int fail_at;
};

static int count_op(void *p, uint64_t i)
{
    struct count_ctx *c = p;
    if (c->fail_at >= 0 && c->ops == (uint64_t)c->fail_at)
        return -EIO;
    assert_int_equal(i, c->ops);  /* indices count up without gaps */
    c->ops++;
    c->last_i = i;
    return 0;
}

static int count_end(void *p, uint64_t i)
{
    struct count_ctx *c = p;
    assert_int_equal(i, c->ops);  /* called after the batch's operations */
    c->ends++;
    return 0;
}

static void test_run_fixed_batch(void **state)
{
    (void)state;
    struct count_ctx c = {.fail_at = -1};
    struct bench_plan p = {.samples = 7, .warmup = 3, .batch = 5, .end = count_end, .div = 2};
    struct bench_samples s = {0};
    uint64_t ops = 0;
    assert_int_equal(bench_run(&p, count_op, &c, &s, &ops), 0);
    assert_int_equal(s.n, 7);
    assert_int_equal(c.ops, 3 + 7 * 5);
    assert_int_equal(ops, 3 + 7 * 5);
    assert_int_equal(c.ends, 1 + 7);   /* the warm-up is one timed batch too */
    for (size_t i = 0; i < s.n; i++)
        assert_true(s.v[i] >= 0);
    bench_samples_free(&s);
}

static void test_run_error_stops(void **state)
{
    (void)state;
    struct count_ctx c = {.fail_at = 10};
    struct bench_plan p = {.samples = 100, .warmup = 2, .batch = 4};
    struct bench_samples s = {0};
    assert_int_equal(bench_run(&p, count_op, &c, &s, NULL), -EIO);
    assert_int_equal(c.ops, 10);
    assert_int_equal(s.n, 2);   /* the two whole batches before the failure */
    bench_samples_free(&s);
}

static void test_run_calibrates(void **state)
{
    (void)state;
    /* With no minimum batch time a calibrated batch is one operation: the
     * count of operations done is what is checked, not any time. */
    struct count_ctx c = {.fail_at = -1};
    struct bench_plan p = {.samples = 3, .warmup = 10, .batch = 0, .min_batch_ns = 0};
    struct bench_samples s = {0};
    assert_int_equal(bench_run(&p, count_op, &c, &s, NULL), 0);
    assert_int_equal(c.ops, 10 + 3);
    bench_samples_free(&s);
}

/* Round robin: after the warm-ups, calls go a, b, a, b, ... one batch each. */
struct seq_ctx {
    char name;
    char *log;
    size_t *pos;
};

static int seq_op(void *p, uint64_t i)
{
    struct seq_ctx *c = p;
    (void)i;
    c->log[(*c->pos)++] = c->name;
    return 0;
}

static void test_run_many_turns(void **state)
{
    (void)state;
    char log[64] = {0};
    size_t pos = 0;
    struct seq_ctx a = {'a', log, &pos}, b = {'b', log, &pos};
    bench_op_fn fns[2] = {seq_op, seq_op};
    void *ctxs[2] = {&a, &b};
    struct bench_samples out[2] = {{0}};
    uint64_t done[2];
    /* 3 samples in turns of 2: warm-ups, then per turn one batch not kept
     * and up to two kept, a's turn then b's */
    struct bench_plan p = {.samples = 3, .warmup = 2, .batch = 1, .turn = 2};
    assert_int_equal(bench_run_many(&p, 2, fns, ctxs, out, done), 0);
    assert_string_equal(log, "aa" "bb" "aaa" "bbb" "aa" "bb");
    assert_int_equal(out[0].n, 3);
    assert_int_equal(out[1].n, 3);
    assert_int_equal(done[0], 2 + 3 + 2);
    assert_int_equal(done[1], 2 + 3 + 2);
    bench_samples_free(&out[0]);
    bench_samples_free(&out[1]);
    assert_int_equal(bench_run_many(&p, 0, fns, ctxs, out, done), -EINVAL);
    assert_int_equal(bench_run_many(&p, BENCH_MANY_MAX + 1, fns, ctxs, out, done), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantiles_odd),
        cmocka_unit_test(test_quantiles_even_and_growth),
        cmocka_unit_test(test_drift),
        cmocka_unit_test(test_run_fixed_batch),
        cmocka_unit_test(test_run_error_stops),
        cmocka_unit_test(test_run_calibrates),
        cmocka_unit_test(test_run_many_turns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
