/* SPDX-License-Identifier: MIT */
/* vfio-user-probe against the bridge serving its simulated device: what the
 * probe prints (JSON and text) must be what the device is. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[64], sock[128];
static pid_t bridge = -1;

static int start(const char *sim, const char *extra)
{
    snprintf(dir, sizeof(dir), "/tmp/vub-probe-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(sock, sizeof(sock), "%s/s", dir);
    bridge = fork();
    if (bridge == 0) {
        int nul = open("/dev/null", O_WRONLY);
        dup2(nul, 2);
        execl(BRIDGE_EXE, BRIDGE_EXE, sim, "--socket", sock, extra, (char *)NULL);
        _exit(127);
    }
    struct stat st;
    for (int i = 0; i < 500; i++) {
        if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode))
            return 0;
        usleep(10000);
    }
    return -1;
}

static int stop(void **state)
{
    (void)state;
    if (bridge > 0) {
        kill(bridge, SIGTERM);
        waitpid(bridge, NULL, 0);
    }
    bridge = -1;
    unlink(sock);
    rmdir(dir);
    return 0;
}

/* Run the probe with args; its stdout into a malloc'd string. */
static char *run_probe(const char *args, int *status)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s %s %s", PROBE_EXE, args, sock);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int st = pclose(f);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return buf;
}

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(o, key, &v));
    return v;
}

static const json_object *cap_by_id(json_object *caps, int id)
{
    for (size_t i = 0; i < json_object_array_length(caps); i++) {
        json_object *c = json_object_array_get_idx(caps, i);
        if (json_object_get_int(get(c, "id")) == id && !json_object_get_boolean(get(c, "extended")))
            return c;
    }
    return NULL;
}

static void test_edu_json(void **state)
{
    (void)state;
    assert_int_equal(start("--sim=edu", NULL), 0);
    int status;
    char *out = run_probe("--json", &status);
    assert_int_equal(status, 0);
    json_object *root = json_tokener_parse(out);
    assert_non_null(root);
    json_object *id = get(root, "id");
    assert_int_equal(json_object_get_int(get(id, "vendor_id")), 0x1234);
    assert_int_equal(json_object_get_int(get(id, "device_id")), 0x11e8);
    json_object *regs = get(root, "regions");
    assert_int_equal(json_object_array_length(regs), 9);
    json_object *bar0 = json_object_array_get_idx(regs, 0);
    assert_int_equal(json_object_get_int64(get(bar0, "size")), 1 << 20);
    assert_true(json_object_get_boolean(get(bar0, "fd")));
    /* VGA, which the device lacks (the kernel says EINVAL): size 0, not an error */
    json_object *vga = json_object_array_get_idx(regs, 8);
    json_object *unused;
    assert_false(json_object_object_get_ex(vga, "errno", &unused));
    assert_int_equal(json_object_get_int64(get(vga, "size")), 0);
    json_object *irqs = get(root, "irqs");
    assert_int_equal(json_object_get_int(get(json_object_array_get_idx(irqs, 1), "count")), 1);
    json_object *caps = get(get(root, "config"), "capabilities");
    assert_non_null(cap_by_id(caps, 0x05));
    json_object_put(root);
    free(out);
}

static void test_nvme_like_sparse_text_and_json(void **state)
{
    (void)state;
    assert_int_equal(start("--sim=nvme-like", "--sparse-msix"), 0);
    int status;
    char *out = run_probe("--json", &status);
    assert_int_equal(status, 0);
    json_object *root = json_tokener_parse(out);
    assert_non_null(root);
    /* the sim puts its MSI-X table in BAR2 (16 KiB, table 0x2000, PBA 0x3000) */
    json_object *bar2 = json_object_array_get_idx(get(root, "regions"), 2);
    assert_int_equal(json_object_get_int64(get(bar2, "size")), 16384);
    json_object *areas = get(bar2, "sparse_mmap");
    assert_true(json_object_array_length(areas) >= 1);
    for (size_t i = 0; i < json_object_array_length(areas); i++) {
        json_object *a = json_object_array_get_idx(areas, i);
        uint64_t off = (uint64_t)json_object_get_int64(get(a, "offset"));
        uint64_t sz = (uint64_t)json_object_get_int64(get(a, "size"));
        assert_true(off + sz <= 0x2000 || off >= 0x3000 + 8);
    }
    json_object *irqs = get(root, "irqs");
    assert_int_equal(json_object_get_int(get(json_object_array_get_idx(irqs, 2), "count")), 65);
    json_object_put(root);
    free(out);

    out = run_probe("", &status);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "cap SPARSE_MMAP"));
    assert_non_null(strstr(out, "MSI-X  count 65"));
    free(out);
}

static void test_no_server(void **state)
{
    (void)state;
    snprintf(sock, sizeof(sock), "/nonexistent/vub.sock");
    int status;
    char *out = run_probe("", &status);
    assert_int_equal(status, 2);
    free(out);
    sock[0] = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_edu_json, stop),
        cmocka_unit_test_teardown(test_nvme_like_sparse_text_and_json, stop),
        cmocka_unit_test(test_no_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
