/* SPDX-License-Identifier: MIT */
/* vfio-user-export-check (the program udev runs) on a fake sysfs tree:
 * its properties for exported, to-be-bound, excluded and unknown functions,
 * and its errors. EXPORT_CHECK is the built binary's path. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_sysfs.h"
#include "hv.h"

static struct fake_sysfs g_fs;
static char *g_root = g_fs.root;
static char g_policy[128];

static const char *policy_text =
    "{\n"
    "  \"devices\": [\n"
    "    { \"match\": { \"id\": \"1234:11e8\" }, \"socket\": \"/run/x/{address}.sock\" },\n"
    "    { \"match\": { \"id\": \"1b36:0010\" }, \"bind\": true },\n"
    "    { \"match\": { \"class\": \"0c03\" }, \"export\": false },\n"
    "    { \"match\": { \"class\": \"0c\" } }\n"
    "  ]\n"
    "}\n";

static void write_policy(const char *text)
{
    FILE *f = fopen(g_policy, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A VMD-style domain (above 0xffff): the kernel names such functions with a
 * five-digit domain, e.g. 10000:e1:00.0. */
#define VMD_ADDR "10000:e1:00.0"

static int setup(void **state)
{
    (void)state;
    if (fake_sysfs_init(&g_fs) < 0)
        return -1;
    fs_add_driver(&g_fs, "nvme");
    fs_add_driver(&g_fs, "xhci_hcd");
    fs_add_dev(&g_fs, "0000:00:03.0", "vfio-pci", 3, 0x1234, 0x11e8, 0x00ff00);
    fs_add_dev(&g_fs, "0000:00:04.0", "nvme", 4, 0x1b36, 0x0010, 0x010802);
    fs_add_dev(&g_fs, "0000:00:05.0", "xhci_hcd", 5, 0x8086, 0x1234, 0x0c0330);
    fs_add_dev(&g_fs, "0000:00:06.0", NULL, 6, 0xabcd, 0x0001, 0x020000);
    fs_add_dev(&g_fs, "0000:00:07.0", NULL, 7, 0x1234, 0x11e8, 0x00ff00);
    fs_add_dev(&g_fs, "0000:00:08.0", "vfio-pci", 8, 0x8086, 0x0002, 0x0c0500);
    fs_add_dev(&g_fs, VMD_ADDR, "vfio-pci", 9, 0x1234, 0x11e8, 0x00ff00);
    snprintf(g_policy, sizeof(g_policy), "%s/policy.json", g_root);
    write_policy(policy_text);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_sysfs_destroy(&g_fs);
    return 0;
}

struct run {
    int status;
    char out[2048];
    char err[2048];
};

static void slurp(int fd, char *buf, size_t sz)
{
    size_t n = 0;
    ssize_t r;
    while (n < sz - 1 && (r = read(fd, buf + n, sz - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
}

/* Run the helper with args (NULL-terminated), --sysfs prepended. */
static void run_helper(struct run *res, ...)
{
    const char *argv[16];
    int n = 0;
    argv[n++] = EXPORT_CHECK;
    argv[n++] = "--sysfs";
    argv[n++] = g_root;
    va_list ap;
    va_start(ap, res);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 15)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;

    int o[2], e[2];
    assert_int_equal(pipe(o), 0);
    assert_int_equal(pipe(e), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(o[1], 1);
        dup2(e[1], 2);
        close(o[0]);
        close(e[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(o[1]);
    close(e[1]);
    slurp(o[0], res->out, sizeof(res->out));   /* small outputs: no deadlock */
    slurp(e[0], res->err, sizeof(res->err));
    close(o[0]);
    close(e[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    res->status = WEXITSTATUS(st);
}

static void props(const char *addr, const char *want)
{
    struct run r;
    run_helper(&r, "--policy", g_policy, addr, NULL);
    if (r.status != 0 || strcmp(r.out, want) != 0)
        fail_msg("%s: status %d\nstdout:\n%s\nwanted:\n%s\nstderr:\n%s", addr, r.status, r.out,
                 want, r.err);
}

static void test_properties(void **state)
{
    (void)state;
    /* exported, bound to vfio-pci: serve it */
    props("0000:00:03.0", "VFIO_USER_MATCH=1\nVFIO_USER_EXPORT=1\nVFIO_USER_BIND=0\n"
                          "VFIO_USER_SOCKET=/run/x/0000:00:03.0.sock\nVFIO_USER_ENTRY=0\n"
                          "VFIO_USER_GROUP=3\n"
                          "VFIO_USER_UNIT=vfio-user-bridge@0000:00:03.0.service\n");
    /* the same ids but not bound (no "bind"): wanted, not yet served */
    props("00:07.0", "VFIO_USER_MATCH=1\nVFIO_USER_EXPORT=0\nVFIO_USER_BIND=0\n"
                     "VFIO_USER_SOCKET=/run/x/0000:00:07.0.sock\nVFIO_USER_ENTRY=0\n"
                     "VFIO_USER_GROUP=7\nVFIO_USER_UNIT=\n");
    /* "bind": true and on another driver: bind first */
    props("0000:00:04.0", "VFIO_USER_MATCH=1\nVFIO_USER_EXPORT=0\nVFIO_USER_BIND=1\n"
                          "VFIO_USER_SOCKET=/run/vfio-user/0000:00:04.0.sock\n"
                          "VFIO_USER_ENTRY=1\nVFIO_USER_GROUP=4\nVFIO_USER_UNIT=\n");
    /* excluded by "export": false ahead of a matching entry */
    props("0000:00:05.0", "VFIO_USER_MATCH=0\nVFIO_USER_EXPORT=0\nVFIO_USER_BIND=0\n"
                          "VFIO_USER_ENTRY=2\n");
    /* matched by the later class entry */
    props("0000:00:08.0", "VFIO_USER_MATCH=1\nVFIO_USER_EXPORT=1\nVFIO_USER_BIND=0\n"
                          "VFIO_USER_SOCKET=/run/vfio-user/0000:00:08.0.sock\n"
                          "VFIO_USER_ENTRY=3\nVFIO_USER_GROUP=8\n"
                          "VFIO_USER_UNIT=vfio-user-bridge@0000:00:08.0.service\n");
    /* nothing matches */
    props("0000:00:06.0", "VFIO_USER_MATCH=0\nVFIO_USER_EXPORT=0\nVFIO_USER_BIND=0\n");
}

static void test_no_policy_exports_nothing(void **state)
{
    (void)state;
    struct run r;
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/none.json", g_root);
    run_helper(&r, "--policy", missing, "0000:00:03.0", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "VFIO_USER_MATCH=0\nVFIO_USER_EXPORT=0\nVFIO_USER_BIND=0\n");
}

static void test_errors(void **state)
{
    (void)state;
    struct run r;

    /* a broken policy: no properties, exit 1, and the message locates it */
    write_policy("{\n  \"devices\": [\n    { \"match\": { \"id\": \"1234:11e8\" } }\n    {}\n]}\n");
    run_helper(&r, "--policy", g_policy, "0000:00:03.0", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "");
    char want[256];
    snprintf(want, sizeof(want), "%s: line 4, column 5: ", g_policy);
    if (!strstr(r.err, want))
        fail_msg("stderr \"%s\" lacks \"%s\"", r.err, want);

    write_policy("{\"devices\": [{\"match\": {\"id\": \"1234:11e8\"}, \"socket_mode\": \"0999\"}]}");
    run_helper(&r, "--policy", g_policy, "0000:00:03.0", NULL);
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "devices[0].socket_mode"));
    write_policy(policy_text);

    /* A user or group that does not exist is an error in the policy, as it
     * is for the daemon: not "no policy, export nothing". The message names
     * the file, the key and the name. */
    static const struct {
        const char *text, *key, *name;
    } unknown[] = {
        { "{\"devices\": [{\"match\": {\"id\": \"1234:11e8\"}, "
          "\"socket_owner\": \"vub-no-such-user\"}]}",
          "devices[0].socket_owner", "\"vub-no-such-user\"" },
        { "{\"devices\": [{\"match\": {\"id\": \"1234:11e8\"}, "
          "\"socket_group\": \"vub-no-such-group\"}]}",
          "devices[0].socket_group", "\"vub-no-such-group\"" },
        { "{\"defaults\": {\"user\": \"vub-no-such-user\"}, "
          "\"devices\": [{\"match\": {\"id\": \"1234:11e8\"}}]}",
          "defaults.user", "\"vub-no-such-user\"" },
        { "{\"devices\": [{\"match\": {\"id\": \"1234:11e8\"}, \"user\": 4242, "
          "\"user_group\": \"vub-no-such-group\"}]}",
          "devices[0].user_group", "\"vub-no-such-group\"" },
    };
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        write_policy(unknown[i].text);
        run_helper(&r, "--policy", g_policy, "0000:00:03.0", NULL);
        char where[256];
        snprintf(where, sizeof(where), "%s: %s: ", g_policy, unknown[i].key);
        if (r.status != 1 || r.out[0] || !strstr(r.err, where) ||
            !strstr(r.err, unknown[i].name))
            fail_msg("%s: status %d\nstdout:\n%s\nstderr:\n%s\nwanted exit 1, no "
                     "properties and \"%s...%s\"", unknown[i].key, r.status, r.out, r.err,
                     where, unknown[i].name);
    }
    write_policy(policy_text);

    /* no such function */
    run_helper(&r, "--policy", g_policy, "0000:00:1f.0", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "");
    assert_non_null(strstr(r.err, "0000:00:1f.0"));
    assert_non_null(strstr(r.err, "no such PCI function"));

    /* usage */
    run_helper(&r, "--policy", g_policy, NULL);
    assert_int_equal(r.status, 2);
    run_helper(&r, "--bogus", "0000:00:03.0", NULL);
    assert_int_equal(r.status, 2);
}

static void read_override(const char *addr, char *buf, size_t sz)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/bus/pci/devices/%s/driver_override", g_root, addr);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    slurp(fd, buf, sz);
    close(fd);
}

static void test_bind(void **state)
{
    (void)state;
    struct run r;
    char ov[64];

    /* the policy does not ask to bind 0000:00:07.0: nothing is written */
    run_helper(&r, "--policy", g_policy, "--bind", "0000:00:07.0", NULL);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.err, "does not ask to bind"));
    read_override("0000:00:07.0", ov, sizeof(ov));
    assert_string_equal(ov, "(null)\n");

    /* already on vfio-pci: nothing to do */
    run_helper(&r, "--policy", g_policy, "--bind", "0000:00:03.0", NULL);
    assert_int_equal(r.status, 0);
    read_override("0000:00:03.0", ov, sizeof(ov));
    assert_string_equal(ov, "(null)\n");

    /* "bind": true: driver_override is set and the function unbound from
     * nvme; in a fake tree no kernel binds it, so the helper reports that */
    run_helper(&r, "--policy", g_policy, "--bind", "0000:00:04.0", NULL);
    read_override("0000:00:04.0", ov, sizeof(ov));
    assert_string_equal(ov, "vfio-pci");
    char unb[64];
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/bus/pci/drivers/nvme/unbind", g_root);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    slurp(fd, unb, sizeof(unb));
    close(fd);
    assert_string_equal(unb, "0000:00:04.0");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "cannot bind to vfio-pci"));
}

/* The helper and `vfio-user-bridge list` read the same tree the same way:
 * every function host-vfio lists (hv_list, what `list --sysfs` prints) is one
 * the helper can decide on. A VMD-domain function is among them. */
static void test_agrees_with_list(void **state)
{
    (void)state;
    struct hv_list_entry *v = NULL;
    size_t n = 0;
    struct vub_err err = { { 0 } };
    assert_int_equal(hv_list_ex(g_root, NULL, &v, &n, &err), 0);
    bool vmd_listed = false;
    for (size_t i = 0; i < n; i++) {
        struct run r;
        run_helper(&r, "--policy", g_policy, v[i].addr, NULL);
        if (r.status != 0)
            fail_msg("list shows %s but the helper says (status %d): %s", v[i].addr, r.status,
                     r.err);
        vmd_listed |= strcmp(v[i].addr, VMD_ADDR) == 0;
    }
    free(v);
    assert_true(vmd_listed);
    props(VMD_ADDR, "VFIO_USER_MATCH=1\nVFIO_USER_EXPORT=1\nVFIO_USER_BIND=0\n"
                    "VFIO_USER_SOCKET=/run/x/" VMD_ADDR ".sock\nVFIO_USER_ENTRY=0\n"
                    "VFIO_USER_GROUP=9\nVFIO_USER_UNIT=vfio-user-bridge@" VMD_ADDR ".service\n");
}

/* Functions behind a PCIe-to-PCI bridge share a group: the policy exports
 * two of them, so the group's unit serves both, started once both are on
 * vfio-pci (not before: a group daemon opened early would miss the second);
 * the bridge itself is not exported and does not count. */
static void test_shared_group(void **state)
{
    (void)state;
    fs_add_dev(&g_fs, "0000:00:10.0", NULL, 20, 0x1b36, 0x0001, 0x060400);
    fs_add_dev(&g_fs, "0000:00:10.1", "vfio-pci", 20, 0x1234, 0x11e8, 0x00ff00);
    fs_add_dev(&g_fs, "0000:00:10.2", "nvme", 20, 0x1b36, 0x0010, 0x010802);
    props("0000:00:10.1", "VFIO_USER_MATCH=1\nVFIO_USER_EXPORT=1\nVFIO_USER_BIND=0\n"
                          "VFIO_USER_SOCKET=/run/x/0000:00:10.1.sock\nVFIO_USER_ENTRY=0\n"
                          "VFIO_USER_GROUP=20\nVFIO_USER_UNIT=\n");
    props("0000:00:10.2", "VFIO_USER_MATCH=1\nVFIO_USER_EXPORT=0\nVFIO_USER_BIND=1\n"
                          "VFIO_USER_SOCKET=/run/vfio-user/0000:00:10.2.sock\n"
                          "VFIO_USER_ENTRY=1\nVFIO_USER_GROUP=20\nVFIO_USER_UNIT=\n");
    props("0000:00:10.0", "VFIO_USER_MATCH=0\nVFIO_USER_EXPORT=0\nVFIO_USER_BIND=0\n");
    /* nvme on no driver (the group is viable): edu, bound, starts the group's
     * unit, whose daemon serves nvme once it is bound; nvme wants nothing yet */
    fs_set_driver(&g_fs, "0000:00:10.2", NULL);
    props("0000:00:10.1", "VFIO_USER_MATCH=1\nVFIO_USER_EXPORT=1\nVFIO_USER_BIND=0\n"
                          "VFIO_USER_SOCKET=/run/x/0000:00:10.1.sock\nVFIO_USER_ENTRY=0\n"
                          "VFIO_USER_GROUP=20\n"
                          "VFIO_USER_UNIT=vfio-user-bridge-group@20.service\n");
    props("0000:00:10.2", "VFIO_USER_MATCH=1\nVFIO_USER_EXPORT=0\nVFIO_USER_BIND=1\n"
                          "VFIO_USER_SOCKET=/run/vfio-user/0000:00:10.2.sock\n"
                          "VFIO_USER_ENTRY=1\nVFIO_USER_GROUP=20\nVFIO_USER_UNIT=\n");
    fs_set_driver(&g_fs, "0000:00:10.2", "vfio-pci");
    props("0000:00:10.1", "VFIO_USER_MATCH=1\nVFIO_USER_EXPORT=1\nVFIO_USER_BIND=0\n"
                          "VFIO_USER_SOCKET=/run/x/0000:00:10.1.sock\nVFIO_USER_ENTRY=0\n"
                          "VFIO_USER_GROUP=20\n"
                          "VFIO_USER_UNIT=vfio-user-bridge-group@20.service\n");
    props("0000:00:10.2", "VFIO_USER_MATCH=1\nVFIO_USER_EXPORT=1\nVFIO_USER_BIND=0\n"
                          "VFIO_USER_SOCKET=/run/vfio-user/0000:00:10.2.sock\n"
                          "VFIO_USER_ENTRY=1\nVFIO_USER_GROUP=20\n"
                          "VFIO_USER_UNIT=vfio-user-bridge-group@20.service\n");
    /* the policy now excludes one: the other is alone again, its own unit */
    char text[512];
    snprintf(text, sizeof(text), "{ \"devices\": [ { \"match\": { \"address\": "
             "\"0000:00:10.2\" }, \"export\": false }, { \"match\": { \"id\": "
             "\"1234:11e8\" } } ] }");
    write_policy(text);
    props("0000:00:10.1", "VFIO_USER_MATCH=1\nVFIO_USER_EXPORT=1\nVFIO_USER_BIND=0\n"
                          "VFIO_USER_SOCKET=/run/vfio-user/0000:00:10.1.sock\n"
                          "VFIO_USER_ENTRY=1\nVFIO_USER_GROUP=20\n"
                          "VFIO_USER_UNIT=vfio-user-bridge@0000:00:10.1.service\n");
    /* a member whose sysfs cannot be read (here the bridge's vendor
     * attribute) is left out with a message; the others are judged */
    write_policy(policy_text);
    char attr[PATH_MAX];
    fs_path(&g_fs, attr, sizeof(attr), "devices/pci0000:00/0000:00:10.0/vendor");
    assert_int_equal(unlink(attr), 0);
    {
        struct run r;
        run_helper(&r, "--policy", g_policy, "0000:00:10.1", NULL);
        assert_int_equal(r.status, 0);
        if (!strstr(r.out, "VFIO_USER_UNIT=vfio-user-bridge-group@20.service\n") ||
            !strstr(r.err, "IOMMU group 20: member 0000:00:10.0 left out: "))
            fail_msg("stdout \"%s\" stderr \"%s\"", r.out, r.err);
    }
    fs_write_file(attr, "0x1b36\n");
    /* the members' entries disagree on group_clients: an error naming the
     * key and both devices, for either member */
    snprintf(text, sizeof(text), "{ \"devices\": [ { \"match\": { \"address\": "
             "\"0000:00:10.2\" }, \"group_clients\": \"any\" }, { \"match\": { \"id\": "
             "\"1234:11e8\" } } ] }");
    write_policy(text);
    struct run r;
    run_helper(&r, "--policy", g_policy, "0000:00:10.1", NULL);
    assert_int_equal(r.status, 1);
    const char *want = "IOMMU group 20: ";
    if (!strstr(r.err, want) || !strstr(r.err, "devices[1] gives 0000:00:10.1 \"group_clients\": "
                                                "\"same-vm\", devices[0] gives 0000:00:10.2 \"any\""))
        fail_msg("stderr \"%s\"", r.err);
    /* they agree (through "defaults"): served as before */
    snprintf(text, sizeof(text), "{ \"defaults\": { \"group_clients\": \"same-uid\" }, "
             "\"devices\": [ { \"match\": { \"id\": \"1234:11e8\" } }, { \"match\": { "
             "\"address\": \"0000:00:10.2\" } } ] }");
    write_policy(text);
    props("0000:00:10.1", "VFIO_USER_MATCH=1\nVFIO_USER_EXPORT=1\nVFIO_USER_BIND=0\n"
                          "VFIO_USER_SOCKET=/run/vfio-user/0000:00:10.1.sock\n"
                          "VFIO_USER_ENTRY=0\nVFIO_USER_GROUP=20\n"
                          "VFIO_USER_UNIT=vfio-user-bridge-group@20.service\n");
    write_policy(policy_text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_properties),
        cmocka_unit_test(test_no_policy_exports_nothing),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bind),
        cmocka_unit_test(test_agrees_with_list),
        cmocka_unit_test(test_shared_group),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
