/* SPDX-License-Identifier: MIT */
/* vfio-user-probe --summarize on a known trace (tools/probe/summary.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "probe.h"

static char *summarize(const char *text)
{
    FILE *in = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(in);
    char *out = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&out, &len);
    assert_non_null(o);
    assert_int_equal(probe_summarize(in, "t.jsonl", o), 0);
    fclose(o);
    fclose(in);
    return out;
}

/* 100 REGION_READs taking 1..100 us, two errors on GET_REGION_INFO (one
 * injected), a request without reply, a bad line. */
static void test_summary_table(void **state)
{
    char *text = malloc(1 << 16);
    size_t n = 0;
    n += (size_t)sprintf(text + n, "{\"t\":1.0,\"trace\":\"vfio-user-bridge\",\"version\":\"9.9\","
                         "\"device\":\"0000:01:00.0\",\"data\":false}\n");
    n += (size_t)sprintf(text + n, "{\"t\":1.1,\"dir\":\"session\",\"pid\":5,\"uid\":0}\n");
    for (int i = 1; i <= 100; i++) {
        n += (size_t)sprintf(text + n, "{\"t\":2.0,\"dir\":\"rx\",\"id\":%d,\"cmd\":\"REGION_READ\","
                             "\"region\":7}\n", i);
        /* in reverse order: the summary must sort */
        n += (size_t)sprintf(text + n, "{\"t\":2.1,\"dir\":\"tx\",\"id\":%d,\"cmd\":\"REGION_READ\","
                             "\"handling_ns\":%d}\n", i, (101 - i) * 1000);
    }
    n += (size_t)sprintf(text + n,
        "{\"t\":3.0,\"dir\":\"rx\",\"id\":200,\"cmd\":\"DEVICE_GET_REGION_INFO\",\"argsz\":32,\"region\":8}\n"
        "{\"t\":3.1,\"dir\":\"tx\",\"id\":200,\"cmd\":\"DEVICE_GET_REGION_INFO\",\"handling_ns\":5000,"
        "\"errno\":\"EINVAL\",\"error\":\"GET_REGION_INFO 8: Invalid argument\"}\n"
        "this is not json\n"
        "{\"t\":3.2,\"dir\":\"rx\",\"id\":201,\"cmd\":\"DEVICE_GET_REGION_INFO\",\"argsz\":32,\"region\":2}\n"
        "{\"t\":3.3,\"dir\":\"tx\",\"id\":201,\"cmd\":\"DEVICE_GET_REGION_INFO\",\"handling_ns\":7000,"
        "\"errno\":\"EIO\",\"injected\":\"errno=EIO\",\"rule\":0}\n"
        "{\"t\":3.4,\"dir\":\"rx\",\"id\":202,\"cmd\":\"REGION_WRITE\",\"flags\":[\"command\",\"no_reply\"]}\n"
        "{\"t\":3.5,\"dir\":\"done\",\"id\":202,\"cmd\":\"REGION_WRITE\",\"handling_ns\":3000}\n"
        "{\"t\":4.0,\"dir\":\"end\",\"reason\":\"fault injected: close (rule 1)\",\"msgs\":103,\"errors\":2}\n");
    char *out = summarize(text);
    free(text);
    /* nearest rank over 1..100 us: median 50, p99 99, max 100 */
    assert_non_null(strstr(out, "vfio-user-bridge 9.9, device 0000:01:00.0"));
    assert_non_null(strstr(out, "1 sessions, 103 requests, 102 replies, 1 without reply, 2 errors, "
                                "1 injected faults"));
    assert_non_null(strstr(out, "1 unreadable lines skipped"));
    const char *row = strstr(out, "REGION_READ ");
    assert_non_null(row);
    unsigned long count, errs, inj;
    double med, p99, mx;
    assert_int_equal(sscanf(row, "REGION_READ %lu %lu %lu %lf %lf %lf", &count, &errs, &inj, &med,
                            &p99, &mx), 6);
    assert_int_equal(count, 100);
    assert_int_equal(errs, 0);
    assert_true(med == 50.0 && p99 == 99.0 && mx == 100.0);
    row = strstr(out, "DEVICE_GET_REGION_INFO ");
    assert_int_equal(sscanf(row, "DEVICE_GET_REGION_INFO %lu %lu %lu", &count, &errs, &inj), 3);
    assert_int_equal(count, 2);
    assert_int_equal(errs, 2);
    assert_int_equal(inj, 1);
    assert_non_null(strstr(out, "DEVICE_GET_REGION_INFO: EINVAL x1, EIO x1"));
    /* the first error with its request's fields and the reason */
    assert_non_null(strstr(out, "first error: line 204, t=3.1: DEVICE_GET_REGION_INFO (id 200) "
                                "argsz=32 region=8 -> EINVAL: GET_REGION_INFO 8: Invalid argument"));
    assert_non_null(strstr(out, "first injected fault: line 207: DEVICE_GET_REGION_INFO (id 201): "
                                "errno=EIO"));
    assert_non_null(strstr(out, "sessions ended: \"fault injected: close (rule 1)\""));
    free(out);
}

static void test_summary_empty(void **state)
{
    char *out = summarize("");
    assert_non_null(strstr(out, "(no trace header line)"));
    assert_non_null(strstr(out, "no errors"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_table),
        cmocka_unit_test(test_summary_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
