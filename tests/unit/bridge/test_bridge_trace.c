/* SPDX-License-Identifier: MIT */
/* The message trace (--trace) and fault injection (--inject), through the
 * whole bridge on the simulated device (bridge/tap.h). */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "cli.h"
#include "harness.h"
#include "inject.h"
#include "log.h"
#include "trace.h"

/* ---- helpers ----------------------------------------------------------------------- */

struct fx {
    struct th *t;
    char trace[64];
};

static char g_rules[4][BR_INJECT_MAX_TEXT];
static size_t g_nrules;
static bool g_data;
static char g_trace_path[64];

static void tweak(struct th *t)
{
    t->cfg.trace_path = g_trace_path;
    t->cfg.trace_data = g_data;
    t->cfg.n_inject = g_nrules;
    for (size_t i = 0; i < g_nrules; i++)
        t->cfg.inject[i] = g_rules[i];
}

/* A harness with a trace file and the given rules (NULL-terminated). DATA
 * is an int: va_start after a parameter that undergoes promotion (a bool)
 * is undefined. */
static struct fx *fx_new(bool nvme, int data, ...)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->trace, sizeof(f->trace), "/tmp/vub-trace-XXXXXX");
    int fd = mkstemp(f->trace);
    assert_true(fd >= 0);
    close(fd);
    snprintf(g_trace_path, sizeof(g_trace_path), "%s", f->trace);
    g_data = data != 0;
    g_nrules = 0;
    va_list ap;
    va_start(ap, data);
    const char *r;
    while ((r = va_arg(ap, const char *)) && g_nrules < 4)
        snprintf(g_rules[g_nrules++], sizeof(g_rules[0]), "%s", r);
    va_end(ap);
    f->t = th_new(nvme, tweak);
    return f;
}

static void fx_free(struct fx *f)
{
    th_stop(f->t);
    free(f->t);
    unlink(f->trace);
    free(f);
}

/* Every line of the trace, parsed (each must be one JSON object within the bound). */
struct lines {
    size_t n;
    json_object *o[512];
};

static void lines_load(const char *path, struct lines *L)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char buf[4096];
    L->n = 0;
    while (fgets(buf, sizeof(buf), fp)) {
        size_t len = strlen(buf);
        assert_true(len <= BR_TRACE_LINE_MAX);
        assert_true(len > 0 && buf[len - 1] == '\n');
        json_object *o = json_tokener_parse(buf);
        if (!o)
            fail_msg("trace line is not JSON: %s", buf);
        assert_true(json_object_is_type(o, json_type_object));
        assert_true(L->n < 512);
        L->o[L->n++] = o;
    }
    fclose(fp);
}

/* The client leaves, the loop stops once `sessions` sessions have ended,
 * and the trace they left is read. */
static void end_and_load(struct fx *f, struct vu_client *c, unsigned sessions, struct lines *L)
{
    vu_client_close(c);
    th_wait_closed(f->t, sessions);
    th_stop_loop(f->t);
    lines_load(f->trace, L);
}

static void lines_free(struct lines *L)
{
    for (size_t i = 0; i < L->n; i++)
        json_object_put(L->o[i]);
    L->n = 0;
}

static const char *sget(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int64_t iget(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        fail_msg("no key %s in %s", key, json_object_to_json_string(o));
    return json_object_get_int64(v);
}

static bool has(json_object *o, const char *key)
{
    return json_object_object_get_ex(o, key, NULL);
}

static bool has_flag(json_object *o, const char *flag)
{
    json_object *a;
    if (!json_object_object_get_ex(o, "flags", &a))
        return false;
    for (size_t i = 0; i < json_object_array_length(a); i++)
        if (strcmp(json_object_get_string(json_object_array_get_idx(a, i)), flag) == 0)
            return true;
    return false;
}

/* The k-th (0-based) line with this dir and cmd. */
static json_object *find(struct lines *L, const char *dir, const char *cmd, int k)
{
    for (size_t i = 0; i < L->n; i++) {
        const char *d = sget(L->o[i], "dir"), *c = sget(L->o[i], "cmd");
        if (d && strcmp(d, dir) == 0 && (!cmd || (c && strcmp(c, cmd) == 0)) && k-- == 0)
            return L->o[i];
    }
    fail_msg("no %s line for %s", dir, cmd ? cmd : "-");
    return NULL;
}

/* The line answering rx line `rx` (same id, after it): tx or done. */
static json_object *answer(struct lines *L, json_object *rx)
{
    size_t i = 0;
    while (i < L->n && L->o[i] != rx)
        i++;
    for (i++; i < L->n; i++) {
        const char *d = sget(L->o[i], "dir");
        if (d && (strcmp(d, "tx") == 0 || strcmp(d, "done") == 0) &&
            iget(L->o[i], "id") == iget(rx, "id") &&
            strcmp(sget(L->o[i], "cmd"), sget(rx, "cmd")) == 0)
            return L->o[i];
    }
    fail_msg("no answer to %s", json_object_to_json_string(rx));
    return NULL;
}

static int read_cfg(struct vu_client *c, uint64_t off, uint32_t *v)
{
    ssize_t n = vu_client_region_read(c, VU_PCI_CONFIG_REGION_INDEX, off, v, 4);
    return n < 0 ? (int)n : 0;
}

/* ---- the trace: every command --------------------------------------------------------- */

static void test_trace_every_command(void **state)
{
    struct fx *f = fx_new(true, true, NULL);
    struct vu_client *c = th_connect(f->t, true);

    int mfd = th_memfd(1 << 20);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 1 << 20, mfd, 0,
                                       VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE), 0);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 0x1000, -1, 0, VU_DMA_MAP_FLAG_READ),
                     -EEXIST);
    assert_int_equal(vu_client_dma_unmap(c, 0x100000, 1 << 20, 0), 0);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);
    struct vu_client_region reg;
    assert_int_equal(vu_client_get_region_info(c, 2, 0, &reg), 0);   /* small, then full */
    if (reg.fd >= 0)
        close(reg.fd);
    assert_int_equal(vu_client_get_region_info(c, 20, 0, &reg), -EINVAL);   /* no such region */
    uint8_t iobuf[64];
    int iofds[4];
    size_t niofds = 4;
    assert_true(vu_client_get_region_io_fds(c, 0, 64, iobuf, iofds, &niofds) < 0);
    struct vu_irq_info ii;
    assert_int_equal(vu_client_get_irq_info(c, 2, &ii), 0);
    int efd = th_eventfd();
    assert_int_equal(vu_client_set_irqs(c, VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER,
                                        VU_PCI_MSIX_IRQ_INDEX, 0, 1, &efd, 1, NULL), 0);
    uint32_t v;
    assert_int_equal(read_cfg(c, 0, &v), 0);
    uint32_t liv = 0x12345678;
    assert_int_equal(vu_client_region_write(c, 0, 4, &liv, 4, false), 4);
    assert_int_equal(vu_client_region_write(c, 0, 4, &liv, 4, true), 4);   /* no reply */
    struct vu_dma_access da = { 0x1000, 4 };
    assert_int_equal(th_call(c, VU_CMD_DMA_READ, 0, &da, sizeof(da), NULL, 0, NULL), -EINVAL);
    assert_int_equal(vu_client_reset(c), 0);
    struct vu_write_multi_entry w[2] = { { .offset = 4, .region = 0, .count = 4 },
                                         { .offset = 8, .region = 0, .count = 4 } };
    assert_int_equal(vu_client_region_write_multi(c, w, 2, false), 2);
    uint8_t fb[64];
    assert_true(vu_client_device_feature(c, VU_DEVICE_FEATURE_PROBE | 1, NULL, 0, 0, fb,
                                         sizeof(fb)) < 0);
    assert_true(vu_client_mig_data_read(c, fb, 16) < 0);
    assert_true(vu_client_mig_data_write(c, fb, 16) < 0);
    assert_int_equal(th_call(c, 30, 0, NULL, 0, NULL, 0, NULL), -ENOSYS);
    uint32_t junk = 7;   /* DEVICE_GET_INFO with a 4-byte payload: malformed */
    assert_int_equal(th_call(c, VU_CMD_DEVICE_GET_INFO, 0, &junk, 4, NULL, 0, NULL), -EINVAL);
    vu_client_close(c);
    th_wait_closed(f->t, 1);
    close(mfd);
    close(efd);
    th_stop_loop(f->t);

    struct lines L;
    lines_load(f->trace, &L);
    json_object *o = L.o[0];
    assert_string_equal(sget(o, "trace"), "vfio-user-bridge");
    assert_int_equal(iget(o, "data_max"), BR_TRACE_DATA_MAX);
    assert_string_equal(sget(find(&L, "session", NULL, 0), "dir"), "session");

    /* VERSION: the client's JSON in, the bridge's out */
    json_object *rx = find(&L, "rx", "VERSION", 0), *tx = answer(&L, rx);
    assert_int_equal(iget(rx, "major"), 0);
    assert_non_null(strstr(sget(rx, "json"), "capabilities"));
    assert_true(has_flag(rx, "command"));
    assert_string_equal(sget(tx, "dir"), "tx");
    assert_true(has_flag(tx, "reply"));
    assert_false(has_flag(tx, "error"));
    assert_non_null(strstr(sget(tx, "json"), "max_dma_maps"));
    assert_true(iget(tx, "handling_ns") > 0);

    /* DMA_MAP with its fd, then one without (EEXIST) */
    rx = find(&L, "rx", "DMA_MAP", 0);
    tx = answer(&L, rx);
    assert_string_equal(sget(rx, "iova"), "0x100000");
    assert_string_equal(sget(rx, "size"), "0x100000");
    assert_int_equal(iget(rx, "argsz"), 32);
    assert_int_equal(iget(rx, "fds"), 1);
    assert_int_equal(iget(rx, "flags_rw"), 3);
    assert_false(has(tx, "errno"));
    rx = find(&L, "rx", "DMA_MAP", 1);
    tx = answer(&L, rx);
    assert_int_equal(iget(rx, "fds"), 0);
    assert_string_equal(sget(tx, "errno"), "EEXIST");
    assert_true(has_flag(tx, "error"));
    assert_int_equal(iget(tx, "size"), 16);
    assert_non_null(strstr(sget(tx, "error"), "DMA_MAP 0x100000"));

    rx = find(&L, "rx", "DMA_UNMAP", 0);
    tx = answer(&L, rx);
    assert_string_equal(sget(rx, "iova"), "0x100000");
    assert_string_equal(sget(tx, "size"), "0x100000");
    assert_int_equal(iget(tx, "argsz"), 24);

    tx = answer(&L, find(&L, "rx", "DEVICE_GET_INFO", 0));
    assert_int_equal(iget(tx, "num_regions"), 9);
    assert_int_equal(iget(tx, "num_irqs"), 5);
    assert_int_equal(iget(tx, "dev_flags"), di.flags);

    /* GET_REGION_INFO of the MSI-X BAR: argsz 32 (too small, no fd), then the full one */
    rx = find(&L, "rx", "DEVICE_GET_REGION_INFO", 0);
    tx = answer(&L, rx);
    assert_int_equal(iget(rx, "region"), 2);
    assert_int_equal(iget(rx, "argsz"), 32);
    assert_true(iget(tx, "argsz") > 32);
    assert_int_equal(iget(tx, "fds"), 0);
    rx = find(&L, "rx", "DEVICE_GET_REGION_INFO", 1);
    tx = answer(&L, rx);
    assert_int_equal(iget(rx, "argsz"), iget(answer(&L, find(&L, "rx", "DEVICE_GET_REGION_INFO",
                                                             0)), "argsz"));
    assert_int_equal(iget(tx, "fds"), 1);
    assert_string_equal(sget(tx, "size"), "0x4000");
    assert_true(iget(tx, "sparse_areas") >= 1);   /* around the MSI-X table and PBA */
    assert_true(iget(tx, "cap_offset") >= 32);
    tx = answer(&L, find(&L, "rx", "DEVICE_GET_REGION_INFO", 2));
    assert_string_equal(sget(tx, "errno"), "EINVAL");

    rx = find(&L, "rx", "DEVICE_GET_REGION_IO_FDS", 0);
    assert_int_equal(iget(rx, "region"), 0);
    assert_string_equal(sget(answer(&L, rx), "errno"), "EOPNOTSUPP");

    tx = answer(&L, find(&L, "rx", "DEVICE_GET_IRQ_INFO", 0));
    assert_int_equal(iget(tx, "index"), 2);
    assert_int_equal(iget(tx, "count"), 65);

    rx = find(&L, "rx", "DEVICE_SET_IRQS", 0);
    assert_int_equal(iget(rx, "index"), 2);
    assert_int_equal(iget(rx, "start"), 0);
    assert_int_equal(iget(rx, "count"), 1);
    assert_int_equal(iget(rx, "fds"), 1);
    assert_string_equal(sget(rx, "data"), "eventfd");
    assert_string_equal(sget(rx, "action"), "trigger");
    assert_false(has(answer(&L, rx), "errno"));

    /* REGION_READ of config space: the ids, with --trace-data */
    rx = find(&L, "rx", "REGION_READ", 0);
    tx = answer(&L, rx);
    assert_int_equal(iget(rx, "region"), 7);
    assert_string_equal(sget(rx, "offset"), "0x0");
    assert_int_equal(iget(rx, "count"), 4);
    assert_int_equal(iget(tx, "count"), 4);
    char hex[9];
    snprintf(hex, sizeof(hex), "%02x%02x%02x%02x", v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff,
             v >> 24);
    assert_string_equal(sget(tx, "bytes"), hex);

    rx = find(&L, "rx", "REGION_WRITE", 0);
    assert_string_equal(sget(rx, "bytes"), "78563412");
    assert_int_equal(iget(answer(&L, rx), "count"), 4);
    rx = find(&L, "rx", "REGION_WRITE", 1);
    assert_true(has_flag(rx, "no_reply"));
    tx = answer(&L, rx);
    assert_string_equal(sget(tx, "dir"), "done");    /* no reply went out */
    assert_true(has(tx, "handling_ns"));

    assert_string_equal(sget(answer(&L, find(&L, "rx", "DMA_READ", 0)), "errno"), "EINVAL");
    assert_false(has(answer(&L, find(&L, "rx", "DEVICE_RESET", 0)), "errno"));

    rx = find(&L, "rx", "REGION_WRITE_MULTI", 0);
    assert_int_equal(iget(rx, "wr_cnt"), 2);
    assert_int_equal(json_object_array_length(json_object_object_get(rx, "writes")), 2);
    assert_int_equal(iget(answer(&L, rx), "wr_cnt"), 2);

    rx = find(&L, "rx", "DEVICE_FEATURE", 0);
    assert_string_equal(sget(rx, "op"), "probe");
    assert_int_equal(iget(rx, "feature"), 1);
    assert_string_equal(sget(answer(&L, rx), "errno"), "EOPNOTSUPP");
    rx = find(&L, "rx", "MIG_DATA_READ", 0);
    assert_int_equal(iget(rx, "size"), 16);
    assert_string_equal(sget(answer(&L, rx), "errno"), "EOPNOTSUPP");
    assert_string_equal(sget(answer(&L, find(&L, "rx", "MIG_DATA_WRITE", 0)), "errno"),
                        "EOPNOTSUPP");

    rx = find(&L, "rx", "UNKNOWN", 0);
    assert_int_equal(iget(rx, "cmd_no"), 30);
    assert_string_equal(sget(answer(&L, rx), "errno"), "ENOSYS");

    rx = find(&L, "rx", "DEVICE_GET_INFO", 1);
    assert_non_null(strstr(sget(rx, "malformed"), "payload"));
    assert_string_equal(sget(answer(&L, rx), "errno"), "EINVAL");

    json_object *end = find(&L, "end", NULL, 0);
    assert_string_equal(sget(end, "reason"), "disconnected");
    lines_free(&L);
    fx_free(f);
}

/* Whatever a client sends, a line stays within the bound and valid JSON. */
static void test_trace_bounded(void **state)
{
    struct fx *f = fx_new(false, true, NULL);
    struct vu_client *c = th_connect(f->t, false);
    /* VERSION with a 4000-byte JSON of quotes and bytes >= 0x80 */
    static uint8_t msg[4 + 4001];
    struct vu_version ver = { 0, 0 };
    memcpy(msg, &ver, sizeof(ver));
    for (size_t i = 0; i < 4000; i++)
        msg[4 + i] = i % 2 ? '"' : 0xc3;
    msg[4 + 4000] = 0;
    th_call(c, VU_CMD_VERSION, 0, msg, sizeof(msg), NULL, 0, NULL);
    vu_client_close(c);
    c = th_connect(f->t, true);
    static uint8_t big[8192];
    memset(big, 0xab, sizeof(big));
    assert_int_equal(vu_client_region_write(c, 0, 0x1000, big, sizeof(big), false),
                     (ssize_t)sizeof(big));
    struct lines L;
    end_and_load(f, c, 2, &L);   /* asserts the bound and JSON on every line */
    json_object *rx = find(&L, "rx", "VERSION", 0);
    assert_true(has(rx, "json_cut"));
    rx = find(&L, "rx", "REGION_WRITE", 0);
    assert_int_equal(strlen(sget(rx, "bytes")), 2 * BR_TRACE_DATA_MAX);
    assert_true(has(rx, "data_cut"));
    assert_int_equal(iget(rx, "count"), 8192);
    lines_free(&L);
    fx_free(f);
}

/* Without --trace-data no payload bytes appear. */
static void test_trace_no_data(void **state)
{
    struct fx *f = fx_new(false, false, NULL);
    struct vu_client *c = th_connect(f->t, true);
    uint32_t v;
    assert_int_equal(read_cfg(c, 0, &v), 0);
    struct lines L;
    end_and_load(f, c, 1, &L);
    json_object *tx = answer(&L, find(&L, "rx", "REGION_READ", 0));
    assert_int_equal(iget(tx, "count"), 4);
    assert_false(has(tx, "bytes"));
    lines_free(&L);
    fx_free(f);
}

/* --trace - : the lines go to the log, each one whole. */
static void test_trace_to_log(void **state)
{
    char logpath[] = "/tmp/vub-tracelog-XXXXXX";
    int lfd = mkstemp(logpath);
    assert_true(lfd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(lfd, STDERR_FILENO) >= 0);
    static struct th t;
    th_init(&t);
    t.cfg.trace_path = "-";
    br_log_set_level(BR_LOG_INFO);
    th_start(&t);
    struct vu_client *c = th_connect(&t, true);
    uint32_t v;
    assert_int_equal(read_cfg(c, 0, &v), 0);
    vu_client_close(c);
    th_wait_closed(&t, 1);
    th_stop(&t);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    br_log_set_level(BR_LOG_ERR);
    FILE *fp = fdopen(lfd, "r");
    assert_non_null(fp);
    rewind(fp);
    char buf[2048];
    int rx = 0, tx = 0;
    while (fgets(buf, sizeof(buf), fp)) {
        char *j = strstr(buf, "info: {\"t\":");
        if (!j)
            continue;
        json_object *o = json_tokener_parse(j + 6);
        assert_non_null(o);
        const char *d = sget(o, "dir"), *cmd = sget(o, "cmd");
        if (d && cmd && strcmp(cmd, "REGION_READ") == 0) {
            rx += strcmp(d, "rx") == 0;
            tx += strcmp(d, "tx") == 0;
        }
        json_object_put(o);
    }
    fclose(fp);
    unlink(logpath);
    assert_int_equal(rx, 1);
    assert_int_equal(tx, 1);
}

/* ---- injection --------------------------------------------------------------------------- */

/* errno: the handler does not run, so an injected DMA_MAP failure maps nothing. */
static void test_inject_errno_dma_map(void **state)
{
    struct fx *f = fx_new(false, false, "DMA_MAP@nth=1=errno=EIO", NULL);
    struct vu_client *c = th_connect(f->t, true);
    int mfd = th_memfd(1 << 20);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 1 << 20, mfd, 0, VU_DMA_MAP_FLAG_READ),
                     -EIO);
    assert_int_equal(hv_sim_stats_of(f->t->hv).dma_maps, 0);
    /* nth=1: the second is served */
    assert_int_equal(vu_client_dma_map(c, 0x100000, 1 << 20, mfd, 0, VU_DMA_MAP_FLAG_READ), 0);
    assert_int_equal(hv_sim_stats_of(f->t->hv).dma_maps, 1);
    vu_client_close(c);
    th_wait_closed(f->t, 1);
    assert_int_equal(hv_sim_stats_of(f->t->hv).dma_maps, 0);
    close(mfd);
    th_stop_loop(f->t);
    struct lines L;
    lines_load(f->trace, &L);
    json_object *tx = answer(&L, find(&L, "rx", "DMA_MAP", 0));
    assert_string_equal(sget(tx, "errno"), "EIO");
    assert_string_equal(sget(tx, "injected"), "errno=EIO");
    assert_int_equal(iget(tx, "rule"), 0);
    tx = answer(&L, find(&L, "rx", "DMA_MAP", 1));
    assert_false(has(tx, "injected"));
    assert_false(has(tx, "errno"));
    lines_free(&L);
    fx_free(f);
}

/* A bitmask of which of n config reads failed with EIO. */
static uint64_t read_pattern(struct vu_client *c, int n)
{
    uint64_t mask = 0;
    for (int i = 0; i < n; i++) {
        uint32_t v;
        int r = read_cfg(c, 0, &v);
        if (r == -EIO)
            mask |= 1ull << i;
        else
            assert_int_equal(r, 0);
    }
    return mask;
}

static void test_inject_nth_every(void **state)
{
    struct fx *f = fx_new(false, false, "REGION_READ:region=7@every=3=errno=EIO",
                          "REGION_READ:region=7@nth=2=errno=ENODEV",
                          "REGION_READ:region=0=errno=EIO", NULL);
    struct vu_client *c = th_connect(f->t, true);
    /* read 2: rule 1 (nth=2); 3, 6, 9: rule 0 (every=3) */
    int want[9] = { 0, -ENODEV, -EIO, 0, 0, -EIO, 0, 0, -EIO };
    for (int i = 0; i < 9; i++) {
        uint32_t v;
        assert_int_equal(read_cfg(c, 0, &v), want[i]);
    }
    /* region 0 is another rule's; region 7 rules do not see it */
    uint32_t v;
    assert_int_equal(vu_client_region_read(c, 0, 0, &v, 4), -EIO);
    vu_client_close(c);
    /* counting is per daemon, not per session: the next session's 1st read is
     * match 10 (no fault), its 2nd match 11, its 3rd match 12 (every=3) */
    c = th_connect(f->t, true);
    assert_int_equal(read_cfg(c, 0, &v), 0);
    assert_int_equal(read_cfg(c, 0, &v), 0);
    assert_int_equal(read_cfg(c, 0, &v), -EIO);
    struct lines L;
    end_and_load(f, c, 2, &L);
    json_object *tx = answer(&L, find(&L, "rx", "REGION_READ", 1));
    assert_string_equal(sget(tx, "injected"), "errno=ENODEV");
    assert_int_equal(iget(tx, "rule"), 1);
    tx = answer(&L, find(&L, "rx", "REGION_READ", 2));
    assert_int_equal(iget(tx, "rule"), 0);
    lines_free(&L);
    fx_free(f);
}

static uint64_t prob_run(const char *rule)
{
    struct fx *f = fx_new(false, false, rule, NULL);
    struct vu_client *c = th_connect(f->t, true);
    uint64_t mask = read_pattern(c, 64);
    vu_client_close(c);
    th_wait_closed(f->t, 1);
    fx_free(f);
    return mask;
}

static void test_inject_prob_deterministic(void **state)
{
    uint64_t a = prob_run("REGION_READ@prob=0.5,seed=42=errno=EIO");
    uint64_t b = prob_run("REGION_READ@prob=0.5,seed=42=errno=EIO");
    uint64_t other = prob_run("REGION_READ@prob=0.5,seed=43=errno=EIO");
    assert_true(a == b);                    /* same seed, same faults */
    assert_true(a != other);                /* another seed, other faults */
    int n = __builtin_popcountll(a);
    assert_true(n >= 16 && n <= 48);        /* about half of 64 */
    uint64_t low = prob_run("REGION_READ@prob=0.05,seed=42=errno=EIO");
    assert_true(__builtin_popcountll(low) < n);
}

static bool readable(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, ms) == 1;
}

static void raw_cmd(struct vu_client *c, uint16_t id, uint16_t cmd, const void *p, size_t len,
                    bool want, struct vu_msg *reply)
{
    uint8_t buf[256];
    struct vu_hdr h = { .msg_id = id, .cmd = cmd, .msg_size = (uint32_t)(VU_HDR_SIZE + len) };
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), p, len);
    assert_int_equal(vu_client_raw(c, buf, sizeof(h) + len, NULL, 0, want, reply), 0);
}

/* Receive one message from the bridge on a receive-only connection over a
 * dup of c's socket (one connection for all: it may read ahead). */
static void recv_one(struct vu_conn *rc, struct vu_msg *m)
{
    for (int i = 0; i < 300; i++) {     /* 30 s at most */
        int r = vu_recv(rc, m);
        if (r == 0)
            return;
        assert_int_equal(r, -EAGAIN);
        readable(rc->fd, 100);
    }
    fail_msg("no reply within 30 s");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* delay: the reply comes no earlier than asked, replies stay in order, and
 * meanwhile the loop still serves the listener (a second client is refused). */
static void test_inject_delay(void **state)
{
    struct fx *f = fx_new(false, false, "DEVICE_GET_INFO@nth=1=delay=1500", NULL);
    struct vu_client *c = th_connect(f->t, true);
    struct vu_device_info q = { .argsz = sizeof(q) };
    struct vu_region_access acc = { .offset = 0, .region = 7, .count = 4 };
    double t0 = now_s();
    raw_cmd(c, 500, VU_CMD_DEVICE_GET_INFO, &q, sizeof(q), false, NULL);
    raw_cmd(c, 501, VU_CMD_REGION_READ, &acc, sizeof(acc), false, NULL);
    struct vu_client *c2 = th_connect(f->t, false);
    th_wait_refused(f->t, 1);              /* served while the reply is held */
    vu_client_close(c2);
    struct vu_msg r1;
    struct vu_conn rc;
    vu_conn_init_socket(&rc, dup(vu_client_fd(c)), NULL);
    rc.io_timeout_ms = 30000;
    assert_true(readable(vu_client_fd(c), 30000));
    recv_one(&rc, &r1);
    double waited = now_s() - t0;
    assert_int_equal(r1.hdr.msg_id, 500);      /* in order: the delayed one first */
    assert_false(r1.hdr.flags & VU_F_ERROR);
    assert_true(waited >= 1.5);                /* a lower bound: never early */
    vu_msg_release(&r1);
    recv_one(&rc, &r1);
    assert_int_equal(r1.hdr.msg_id, 501);
    vu_msg_release(&r1);
    vu_conn_close(&rc);
    struct lines L;
    end_and_load(f, c, 1, &L);
    json_object *tx = answer(&L, find(&L, "rx", "DEVICE_GET_INFO", 0));
    assert_string_equal(sget(tx, "injected"), "delay=1500");
    assert_int_equal(iget(tx, "delayed_ms"), 1500);
    assert_int_equal(iget(tx, "num_regions"), 9);
    lines_free(&L);
    fx_free(f);
}

/* A held reply does not keep the daemon from stopping, and is released. */
static void test_inject_delay_stop(void **state)
{
    struct fx *f = fx_new(true, false, "GET_REGION_INFO:region=0=delay=600000", NULL);
    struct vu_client *c = th_connect(f->t, true);
    struct vu_region_info q = { .argsz = 32 + 1024, .index = 0 };
    raw_cmd(c, 600, VU_CMD_DEVICE_GET_REGION_INFO, &q, sizeof(q), false, NULL);
    assert_false(readable(vu_client_fd(c), 200));
    th_stop_loop(f->t);          /* returns: the loop was not asleep */
    /* the session ended without the reply: EOF */
    assert_true(readable(vu_client_fd(c), 10000));
    char b;
    assert_int_equal(read(vu_client_fd(c), &b, 1), 0);
    vu_client_close(c);
    struct lines L;
    lines_load(f->trace, &L);
    json_object *d = answer(&L, find(&L, "rx", "DEVICE_GET_REGION_INFO", 0));
    assert_string_equal(sget(d, "dir"), "done");
    assert_string_equal(sget(d, "injected"), "delay=600000");
    assert_non_null(strstr(sget(d, "note"), "before the delayed reply"));
    assert_string_equal(sget(find(&L, "end", NULL, 0), "reason"), "server shutting down");
    lines_free(&L);
    fx_free(f);
}

/* A client that hangs up while its reply is held is noticed at once (not
 * when the delay ends), and the session is quiesced. */
static void test_inject_delay_hangup(void **state)
{
    struct fx *f = fx_new(false, false, "DMA_MAP=delay=600000", NULL);
    struct vu_client *c = th_connect(f->t, true);
    int mfd = th_memfd(1 << 20);
    uint8_t buf[VU_HDR_SIZE + sizeof(struct vu_dma_map)];
    struct vu_hdr h = { .msg_id = 800, .cmd = VU_CMD_DMA_MAP, .msg_size = sizeof(buf) };
    struct vu_dma_map q = { .argsz = 32, .flags = VU_DMA_MAP_FLAG_READ, .address = 0x100000,
                            .size = 1 << 20 };
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), &q, sizeof(q));
    assert_int_equal(vu_client_raw(c, buf, sizeof(buf), &mfd, 1, false, NULL), 0);
    for (int i = 0; i < 10000 && hv_sim_stats_of(f->t->hv).dma_maps == 0; i++)
        usleep(1000);
    assert_int_equal(hv_sim_stats_of(f->t->hv).dma_maps, 1);   /* mapped; the reply is held */
    vu_client_close(c);
    th_wait_closed(f->t, 1);                            /* within the harness's 10 s */
    assert_int_equal(hv_sim_stats_of(f->t->hv).dma_maps, 0);
    close(mfd);
    th_stop_loop(f->t);
    struct lines L;
    lines_load(f->trace, &L);
    assert_string_equal(sget(find(&L, "end", NULL, 0), "reason"),
                        "disconnected while a delayed reply was held");
    lines_free(&L);
    fx_free(f);
}

/* drop: the handler runs (the mapping exists) but no reply ever comes. */
static void test_inject_drop(void **state)
{
    struct fx *f = fx_new(false, false, "DMA_MAP@nth=1=drop", NULL);
    struct vu_client *c = th_connect(f->t, true);
    struct vu_dma_map q = { .argsz = 32, .flags = VU_DMA_MAP_FLAG_READ, .address = 0x200000,
                            .size = 0x1000 };
    raw_cmd(c, 700, VU_CMD_DMA_MAP, &q, sizeof(q), false, NULL);
    struct vu_device_info di = { .argsz = sizeof(di) };
    struct vu_msg r;
    raw_cmd(c, 701, VU_CMD_DEVICE_GET_INFO, &di, sizeof(di), true, &r);
    assert_int_equal(r.hdr.msg_id, 701);        /* 700's reply never came */
    vu_msg_release(&r);
    /* the map was recorded: the same range again overlaps */
    assert_int_equal(vu_client_dma_map(c, 0x200000, 0x1000, -1, 0, VU_DMA_MAP_FLAG_READ),
                     -EEXIST);
    struct lines L;
    end_and_load(f, c, 1, &L);
    json_object *d = answer(&L, find(&L, "rx", "DMA_MAP", 0));
    assert_string_equal(sget(d, "dir"), "done");
    assert_string_equal(sget(d, "injected"), "drop");
    lines_free(&L);
    fx_free(f);
}

/* close: the session ends without running the handler, and the device is
 * quiesced exactly as when a client goes away. */
static void test_inject_close_quiesces(void **state)
{
    struct fx *f = fx_new(true, false, "DEVICE_RESET=close", NULL);
    struct th *t = f->t;
    struct vu_client *c = th_connect(t, true);
    int mfd = th_memfd(1 << 20);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 1 << 20, mfd, 0,
                                       VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE), 0);
    int efd = th_eventfd();
    assert_int_equal(vu_client_set_irqs(c, VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER,
                                        VU_PCI_MSIX_IRQ_INDEX, 0, 1, &efd, 1, NULL), 0);
    uint16_t cmdreg = 0x6;   /* memory + bus master */
    assert_int_equal(vu_client_region_write(c, 7, 4, &cmdreg, 2, false), 2);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 1);
    assert_int_equal(hv_sim_stats_of(t->hv).irq_enabled[VU_PCI_MSIX_IRQ_INDEX], 1);
    unsigned resets = hv_sim_stats_of(t->hv).resets;

    assert_true(vu_client_reset(c) < 0);       /* EOF instead of a reply */
    th_wait_closed(t, 1);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    assert_int_equal(hv_sim_stats_of(t->hv).irq_enabled[VU_PCI_MSIX_IRQ_INDEX], 0);
    assert_int_equal(hv_sim_stats_of(t->hv).open_irq_fds, 0);
    assert_int_equal(hv_sim_stats_of(t->hv).resets, resets + 1);   /* the quiesce's, not the handler's */
    assert_false(hv_sim_stats_of(t->hv).command & 0x4);
    vu_client_close(c);
    close(mfd);
    close(efd);
    th_stop_loop(t);
    struct lines L;
    lines_load(f->trace, &L);
    json_object *d = answer(&L, find(&L, "rx", "DEVICE_RESET", 0));
    assert_string_equal(sget(d, "dir"), "done");
    assert_string_equal(sget(d, "injected"), "close");
    assert_non_null(strstr(sget(find(&L, "end", NULL, 0), "reason"), "fault injected: close"));
    lines_free(&L);
    fx_free(f);
}

/* data: REGION_READ answered with the pattern, repeated; only for a read
 * the bridge would serve. */
static void test_inject_data(void **state)
{
    struct fx *f = fx_new(false, true, "REGION_READ:region=7,offset=0=data=ff00", NULL);
    struct vu_client *c = th_connect(f->t, true);
    uint8_t b[6];
    assert_int_equal(vu_client_region_read(c, 7, 0, b, 6), 6);
    static const uint8_t want[6] = { 0xff, 0, 0xff, 0, 0xff, 0 };
    assert_memory_equal(b, want, 6);
    uint32_t v;
    assert_int_equal(read_cfg(c, 8, &v), 0);     /* offset 8: the real register */
    assert_true(v != 0xff00ff00u);
    /* outside config space: the bridge's own EINVAL, not data */
    assert_int_equal(vu_client_region_read(c, 7, 0x10000 - 4, b, 8) < 0, 1);
    struct lines L;
    end_and_load(f, c, 1, &L);
    json_object *tx = answer(&L, find(&L, "rx", "REGION_READ", 0));
    assert_string_equal(sget(tx, "injected"), "data=ff00");
    assert_string_equal(sget(tx, "bytes"), "ff00ff00ff00");
    assert_int_equal(iget(tx, "count"), 6);
    lines_free(&L);
    fx_free(f);
}

/* ---- the rule parser ------------------------------------------------------------------ */

static void test_parse_good(void **state)
{
    struct br_inject_rule r;
    struct vub_err e = { "" };
    assert_int_equal(br_inject_parse("GET_REGION_INFO:region=2=errno=EIO", &r, &e), 0);
    assert_int_equal(r.cmd, VU_CMD_DEVICE_GET_REGION_INFO);
    assert_int_equal(r.conds, BR_INJ_COND_REGION);
    assert_int_equal(r.region, 2);
    assert_int_equal(r.action, BR_INJ_ERRNO);
    assert_int_equal(r.errnum, EIO);
    assert_int_equal(r.when, BR_INJ_ALWAYS);
    assert_int_equal(br_inject_parse("region_read:region=7,offset=0x10@nth=3=data=0xDEADbeef",
                                     &r, &e), 0);
    assert_int_equal(r.cmd, VU_CMD_REGION_READ);
    assert_int_equal(r.offset, 0x10);
    assert_int_equal(r.when, BR_INJ_NTH);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.data_len, 4);
    assert_int_equal(r.data[0], 0xde);
    assert_int_equal(r.data[3], 0xef);
    assert_int_equal(br_inject_parse("ANY@prob=0.25,seed=7=close", &r, &e), 0);
    assert_int_equal(r.cmd, -1);
    assert_true(r.prob == 0.25);
    assert_int_equal(r.seed, 7);
    assert_int_equal(br_inject_parse("13=errno=5", &r, &e), 0);
    assert_int_equal(r.cmd, VU_CMD_DEVICE_RESET);
    assert_int_equal(r.errnum, 5);
    assert_int_equal(br_inject_parse("DMA_MAP:iova=0x100000@every=2=delay=6000", &r, &e), 0);
    assert_int_equal(r.iova, 0x100000);
    assert_int_equal(r.when, BR_INJ_EVERY);
    assert_int_equal(r.delay_ms, 6000);
    assert_int_equal(br_inject_parse("SET_IRQS:index=2=drop", &r, &e), 0);
    assert_int_equal(r.index, 2);
    assert_int_equal(r.action, BR_INJ_DROP);
    char s[64];
    assert_int_equal(br_inject_parse("DEVICE_RESET=errno=etimedout", &r, &e), 0);
    br_inject_action_str(&r, s, sizeof(s));
    assert_string_equal(s, "errno=ETIMEDOUT");
}

static void test_parse_bad(void **state)
{
    static const struct { const char *rule, *says; } bad[] = {
        { "", "empty" },
        { "FOO=drop", "unknown command \"FOO\"" },
        { "99=drop", "unknown command" },
        { "REGION_READ", "expected '=ACTION'" },
        { "REGION_READ=", "unknown action" },
        { "REGION_READ=explode", "unknown action \"explode\"" },
        { "REGION_READ=drop junk", "unknown action" },
        { "REGION_READ:index=1=drop", "index= applies to" },
        { "ANY:region=1=drop", "region= applies to" },
        { "DMA_MAP:region=1=drop", "region= applies to" },
        { "REGION_READ:colour=1=drop", "unknown condition \"colour\"" },
        { "REGION_READ:region=x=drop", "region=x is not a number" },
        { "REGION_READ:region=99999999999=drop", "not a number" },
        { "REGION_READ:region=1,region=2=drop", "given twice" },
        { "REGION_READ:=drop", "KEY=VALUE" },
        { "DMA_MAP=data=ff", "REGION_READ only" },
        { "REGION_READ=data=f", "even number" },
        { "REGION_READ=data=zz", "not a hex digit" },
        { "REGION_READ@nth=0=drop", "N >= 1" },
        { "REGION_READ@every=0=drop", "K >= 1" },
        { "REGION_READ@prob=1.5=drop", "0 < P <= 1" },
        { "REGION_READ@prob=0=drop", "0 < P <= 1" },
        { "REGION_READ@sometimes=1=drop", "nth=N, every=K or prob=P" },
        { "REGION_READ@every=2,seed=3=drop", "expected '=ACTION'" },
        { "REGION_READ@prob=0.5,salt=3=drop", "only ,seed=S" },
        { "REGION_READ=delay=0", "1..600000" },
        { "REGION_READ=delay=600001", "1..600000" },
        { "REGION_READ=delay=-5", "1..600000" },
        { "REGION_READ=errno=EFOO", "not an errno name" },
        { "REGION_READ=errno=0", "not an errno name" },
        { "REGION_READ=errno=4096", "not an errno name" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct br_inject_rule r;
        struct vub_err e = { "" };
        if (br_inject_parse(bad[i].rule, &r, &e) != -EINVAL)
            fail_msg("rule \"%s\" was accepted", bad[i].rule);
        if (!strstr(e.msg, bad[i].says))
            fail_msg("rule \"%s\": message \"%s\" does not say \"%s\"", bad[i].rule, e.msg,
                     bad[i].says);
    }
    /* a very long data= */
    char longrule[700];
    snprintf(longrule, sizeof(longrule), "REGION_READ=data=");
    for (size_t i = strlen(longrule); i < sizeof(longrule) - 1; i++)
        longrule[i] = 'a';
    longrule[sizeof(longrule) - 1] = 0;
    struct br_inject_rule r;
    struct vub_err e = { "" };
    assert_int_equal(br_inject_parse(longrule, &r, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "at most"));
}

/* The command line refuses a bad rule at start, naming it. */
static void test_cli_inject(void **state)
{
    static struct br_cli cli;
    char *ok[] = { "vfio-user-bridge", "--sim", "--socket", "/tmp/x", "--trace", "-",
                   "--inject", "REGION_READ=drop", "--inject", "DEVICE_RESET=close", NULL };
    FILE *null = fopen("/dev/null", "w");
    assert_int_equal(br_cli_parse(10, ok, &cli, null, null), 0);
    assert_int_equal(cli.cfg.n_inject, 2);
    assert_string_equal(cli.cfg.inject[1], "DEVICE_RESET=close");
    assert_string_equal(cli.cfg.trace_path, "-");
    char *bad[] = { "vfio-user-bridge", "--sim", "--socket", "/tmp/x", "--inject",
                    "REGION_READ=explode", NULL };
    char errbuf[512] = "";
    FILE *err = fmemopen(errbuf, sizeof(errbuf), "w");
    assert_int_equal(br_cli_parse(6, bad, &cli, null, err), -EINVAL);
    fclose(err);
    assert_non_null(strstr(errbuf, "--inject REGION_READ=explode: unknown action"));
    char *nodata[] = { "vfio-user-bridge", "--sim", "--socket", "/tmp/x", "--trace-data", NULL };
    assert_int_equal(br_cli_parse(5, nodata, &cli, null, null), -EINVAL);
    fclose(null);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_cli_inject),
        cmocka_unit_test(test_trace_every_command),
        cmocka_unit_test(test_trace_bounded),
        cmocka_unit_test(test_trace_no_data),
        cmocka_unit_test(test_trace_to_log),
        cmocka_unit_test(test_inject_errno_dma_map),
        cmocka_unit_test(test_inject_nth_every),
        cmocka_unit_test(test_inject_prob_deterministic),
        cmocka_unit_test(test_inject_delay),
        cmocka_unit_test(test_inject_delay_stop),
        cmocka_unit_test(test_inject_delay_hangup),
        cmocka_unit_test(test_inject_drop),
        cmocka_unit_test(test_inject_close_quiesces),
        cmocka_unit_test(test_inject_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
