/* SPDX-License-Identifier: MIT */
/* The daemon's service glue: a policy applied to br_config for a real PCI
 * function of this machine (identified through /sys), precedence of the
 * command line, refusals; the daemon's exit status for a config error. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
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

#include "config.h"
#include "fake_sysfs.h"
#include "service.h"

static char g_addr[32];
static char g_policy[64];

static int setup(void **state)
{
    (void)state;
    DIR *d = opendir("/sys/bus/pci/devices");
    struct dirent *e;
    g_addr[0] = '\0';
    while (d && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.' && strlen(e->d_name) == 12) {
            memcpy(g_addr, e->d_name, 13);
            break;
        }
    if (d)
        closedir(d);
    snprintf(g_policy, sizeof(g_policy), "/tmp/vub-svc-%d.json", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(g_policy);
    return 0;
}

static void need_pci(void)
{
    if (!g_addr[0]) {
        print_message("SKIP: no PCI function in /sys on this machine\n");
        skip();
    }
}

__attribute__((format(printf, 1, 2)))
static void write_policy(const char *fmt, ...)
{
    FILE *f = fopen(g_policy, "w");
    assert_non_null(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

static void test_policy_fills_config(void **state)
{
    (void)state;
    need_pci();
    write_policy("{\"devices\": [{\"match\": {\"address\": \"%s\"},"
                 " \"socket\": \"/run/t/{address}.sock\", \"socket_owner\": 65534,"
                 " \"socket_group\": 4242, \"socket_mode\": \"0660\","
                 " \"allow_uids\": [0, 1000], \"allow_gids\": [4242],"
                 " \"user\": \"nobody\", \"no_mmap\": true, \"reset_on_disconnect\": false}]}",
                 g_addr);
    struct br_config cfg;
    br_config_defaults(&cfg);
    cfg.device = g_addr;
    cfg.policy_path = g_policy;
    assert_int_equal(br_service_apply_policy(&cfg), 0);
    char want[128];
    snprintf(want, sizeof(want), "/run/t/%s.sock", g_addr);
    assert_string_equal(cfg.socket_path, want);
    assert_true(cfg.socket_mode_set);
    assert_int_equal(cfg.socket_mode, 0660);
    assert_string_equal(cfg.socket_owner, "65534");
    assert_string_equal(cfg.socket_group, "4242");
    assert_int_equal(cfg.n_allow_uids, 2);
    assert_int_equal(cfg.allow_uids[1], 1000);
    assert_int_equal(cfg.n_allow_gids, 1);
    assert_int_equal(cfg.allow_gids[0], 4242);
    struct passwd *pw = getpwnam("nobody");
    assert_non_null(pw);
    assert_true(cfg.drop_privileges);
    assert_int_equal(cfg.run_uid, pw->pw_uid);
    assert_int_equal(cfg.run_gid, pw->pw_gid);
    assert_true(cfg.no_mmap);
    assert_true(cfg.no_reset);
    assert_int_equal(cfg.msix_mmap, BR_MSIX_MMAP_SPARSE);   /* the default */
}

/* trace and inject from the policy; the command line's win. */
static void test_policy_testing_keys(void **state)
{
    (void)state;
    need_pci();
    write_policy("{\"devices\": [{\"match\": {\"address\": \"%s\"}, \"trace\": \"/var/tmp/p.jsonl\","
                 " \"trace_data\": true, \"inject\": [\"DEVICE_RESET=close\", \"DMA_MAP=drop\"]}]}",
                 g_addr);
    struct br_config cfg;
    br_config_defaults(&cfg);
    cfg.device = g_addr;
    cfg.policy_path = g_policy;
    cfg.socket_path = "/run/explicit.sock";
    assert_int_equal(br_service_apply_policy(&cfg), 0);
    assert_string_equal(cfg.trace_path, "/var/tmp/p.jsonl");
    assert_true(cfg.trace_data);
    assert_int_equal(cfg.n_inject, 2);
    assert_string_equal(cfg.inject[0], "DEVICE_RESET=close");
    assert_string_equal(cfg.inject[1], "DMA_MAP=drop");

    br_config_defaults(&cfg);
    cfg.device = g_addr;
    cfg.policy_path = g_policy;
    cfg.socket_path = "/run/explicit.sock";
    cfg.trace_path = "-";
    cfg.inject[0] = "REGION_READ=drop";
    cfg.n_inject = 1;
    assert_int_equal(br_service_apply_policy(&cfg), 0);
    assert_string_equal(cfg.trace_path, "-");
    assert_false(cfg.trace_data);
    assert_int_equal(cfg.n_inject, 1);
    assert_string_equal(cfg.inject[0], "REGION_READ=drop");
}

static void test_command_line_wins(void **state)
{
    (void)state;
    need_pci();
    write_policy("{\"devices\": [{\"match\": {\"address\": \"%s\"}, \"socket_mode\": \"0666\","
                 " \"allow_uids\": [5]}]}", g_addr);
    struct br_config cfg;
    br_config_defaults(&cfg);
    cfg.device = g_addr;
    cfg.policy_path = g_policy;
    cfg.socket_path = "/run/explicit.sock";
    cfg.socket_mode = 0600;
    cfg.socket_mode_set = true;
    cfg.allow_uids[0] = 7;
    cfg.n_allow_uids = 1;
    assert_int_equal(br_service_apply_policy(&cfg), 0);
    assert_string_equal(cfg.socket_path, "/run/explicit.sock");
    assert_int_equal(cfg.socket_mode, 0600);
    assert_int_equal(cfg.n_allow_uids, 1);
    assert_int_equal(cfg.allow_uids[0], 7);
    assert_null(cfg.socket_owner);
    assert_false(cfg.drop_privileges);
    assert_false(cfg.no_reset);
}

static void test_refusals(void **state)
{
    (void)state;
    struct br_config cfg;

    /* no policy: nothing changes */
    br_config_defaults(&cfg);
    assert_int_equal(br_service_apply_policy(&cfg), 0);
    assert_null(cfg.socket_path);

    /* a policy with a simulated device makes no sense */
    br_config_defaults(&cfg);
    cfg.sim = BR_SIM_EDU;
    cfg.policy_path = g_policy;
    assert_int_equal(br_service_apply_policy(&cfg), -EINVAL);

    need_pci();
    /* excluded */
    write_policy("{\"devices\": [{\"match\": {\"address\": \"%s\"}, \"export\": false}]}",
                 g_addr);
    br_config_defaults(&cfg);
    cfg.device = g_addr;
    cfg.policy_path = g_policy;
    assert_int_equal(br_service_apply_policy(&cfg), -ENOENT);
    assert_null(cfg.socket_path);
    /* not matched */
    write_policy("{\"devices\": [{\"match\": {\"address\": \"0000:ff:1f.7\"}}]}");
    assert_int_equal(br_service_apply_policy(&cfg), -ENOENT);
    /* broken */
    write_policy("{\"devices\": [{\"match\": {\"address\": \"%s\"}, \"mode\": 1}]}", g_addr);
    assert_int_equal(br_service_apply_policy(&cfg), -EINVAL);
}

/* --iommu-group N on a fake sysfs: the group's functions the policy exports
 * and that are on vfio-pci, each with its own socket and settings; the
 * refusals. */
static void test_iommu_group(void **state)
{
    (void)state;
    struct fake_sysfs fs;
    assert_int_equal(fake_sysfs_init(&fs), 0);
    fs_add_driver(&fs, "nvme");
    fs_add_dev(&fs, "0000:00:10.0", NULL, 20, 0x1b36, 0x0001, 0x060400);       /* bridge */
    fs_add_dev(&fs, "0000:00:10.2", "vfio-pci", 20, 0x1b36, 0x0010, 0x010802); /* nvme */
    fs_add_dev(&fs, "0000:00:10.1", "vfio-pci", 20, 0x1234, 0x11e8, 0x00ff00); /* edu */
    fs_add_dev(&fs, "0000:00:11.0", "vfio-pci", 21, 0x1234, 0x11e8, 0x00ff00); /* alone */
    write_policy("{\"devices\": ["
                 "{\"match\": {\"id\": \"1234:11e8\"}, \"allow_uids\": [1000],"
                 " \"no_mmap\": true, \"socket\": \"/run/x/edu-{address}.sock\"},"
                 "{\"match\": {\"id\": \"1b36:0010\"}, \"allow_uids\": [2000, 2001],"
                 " \"socket_mode\": \"0660\"}]}");
    struct br_config cfg;
    br_config_defaults(&cfg);
    cfg.policy_path = g_policy;
    cfg.iommu_group = 20;
    assert_int_equal(br_service_apply_policy_at(&cfg, fs.root), 0);
    assert_int_equal(cfg.n_functions, 2);   /* the bridge is not exported */
    const struct br_function *f = cfg.functions;
    assert_string_equal(f[0].device, "0000:00:10.1");   /* in address order */
    assert_string_equal(f[0].socket_path, "/run/x/edu-0000:00:10.1.sock");
    assert_string_equal(f[1].device, "0000:00:10.2");
    assert_string_equal(f[1].socket_path, "/run/vfio-user/0000:00:10.2.sock");
    assert_non_null(f[0].cfg);
    assert_non_null(f[1].cfg);
    assert_int_equal(f[0].cfg->n_allow_uids, 1);
    assert_int_equal(f[0].cfg->allow_uids[0], 1000);
    assert_true(f[0].cfg->no_mmap);
    assert_int_equal(f[1].cfg->n_allow_uids, 2);
    assert_int_equal(f[1].cfg->allow_uids[1], 2001);
    assert_false(f[1].cfg->no_mmap);
    assert_int_equal(f[1].cfg->socket_mode, 0660);
    assert_string_equal(f[1].cfg->device, "0000:00:10.2");
    assert_string_equal(cfg.device, "0000:00:10.1");
    assert_string_equal(cfg.socket_path, f[0].socket_path);

    /* one exported function on another driver: left out, the other alone */
    fs_set_driver(&fs, "0000:00:10.2", "nvme");
    br_config_defaults(&cfg);
    cfg.policy_path = g_policy;
    cfg.iommu_group = 20;
    assert_int_equal(br_service_apply_policy_at(&cfg, fs.root), 0);
    assert_int_equal(cfg.n_functions, 1);
    assert_string_equal(cfg.device, "0000:00:10.1");
    assert_string_equal(cfg.socket_path, "/run/x/edu-0000:00:10.1.sock");
    assert_int_equal(cfg.allow_uids[0], 1000);

    /* none left */
    fs_set_driver(&fs, "0000:00:10.1", NULL);
    br_config_defaults(&cfg);
    cfg.policy_path = g_policy;
    cfg.iommu_group = 20;
    assert_int_equal(br_service_apply_policy_at(&cfg, fs.root), -ENOENT);
    /* no such group */
    cfg.iommu_group = 99;
    assert_int_equal(br_service_apply_policy_at(&cfg, fs.root), -ENOENT);

    /* two functions on one socket */
    fs_set_driver(&fs, "0000:00:10.1", "vfio-pci");
    fs_set_driver(&fs, "0000:00:10.2", "vfio-pci");
    write_policy("{\"devices\": [{\"match\": {\"class\": \"00\"}, \"socket\": \"/run/x/one.sock\"},"
                 "{\"match\": {\"class\": \"01\"}, \"socket\": \"/run/x/one.sock\"}]}");
    br_config_defaults(&cfg);
    cfg.policy_path = g_policy;
    cfg.iommu_group = 20;
    assert_int_equal(br_service_apply_policy_at(&cfg, fs.root), -EINVAL);
    fake_sysfs_destroy(&fs);
}

/* --iommu-group while the daemon runs: edu alone on vfio-pci at start;
 * nvme bound later is found by the scan and configured from its own entry
 * into the slot the daemon gives; not exported or not on vfio-pci: not
 * found. And "group_clients": the policy's rule for the group, the command
 * line's over it, disagreeing entries refused. */
static void test_iommu_group_late(void **state)
{
    (void)state;
    struct fake_sysfs fs;
    assert_int_equal(fake_sysfs_init(&fs), 0);
    fs_add_driver(&fs, "nvme");
    fs_add_dev(&fs, "0000:00:10.0", NULL, 20, 0x1b36, 0x0001, 0x060400);       /* bridge */
    fs_add_dev(&fs, "0000:00:10.1", "vfio-pci", 20, 0x1234, 0x11e8, 0x00ff00); /* edu */
    fs_add_dev(&fs, "0000:00:10.2", NULL, 20, 0x1b36, 0x0010, 0x010802);       /* nvme */
    write_policy("{\"defaults\": {\"group_clients\": \"same-uid\"}, \"devices\": ["
                 "{\"match\": {\"id\": \"1234:11e8\"}, \"socket\": \"/run/x/edu.sock\"},"
                 "{\"match\": {\"id\": \"1b36:0010\"}, \"allow_uids\": [2000],"
                 " \"socket\": \"/run/x/nvme.sock\", \"socket_mode\": \"0660\"}]}");
    struct br_config cfg;
    br_config_defaults(&cfg);
    cfg.policy_path = g_policy;
    cfg.iommu_group = 20;
    assert_int_equal(br_service_apply_policy_at(&cfg, fs.root), 0);
    assert_int_equal(cfg.n_functions, 1);
    assert_string_equal(cfg.functions[0].device, "0000:00:10.1");
    assert_int_equal(cfg.group_clients, BR_GROUP_CLIENTS_SAME_UID);   /* the policy's */

    struct br_group_scan sc;
    assert_int_equal(br_service_group_scan(&sc), 0);
    assert_int_equal(sc.n, 1);   /* nvme has no driver yet */
    assert_string_equal(sc.addr[0], "0000:00:10.1");
    const struct br_config *fc = (const struct br_config *)1;
    assert_int_equal(br_service_group_configure("0000:00:10.2", 1, &fc), 0);
    assert_null(fc);

    fs_set_driver(&fs, "0000:00:10.2", "vfio-pci");   /* bound later */
    assert_int_equal(br_service_group_scan(&sc), 0);
    assert_int_equal(sc.n, 2);
    assert_string_equal(sc.addr[1], "0000:00:10.2");
    assert_int_equal(br_service_group_configure("0000:00:10.2", 1, &fc), 1);
    assert_non_null(fc);
    assert_string_equal(fc->device, "0000:00:10.2");
    assert_string_equal(fc->socket_path, "/run/x/nvme.sock");
    assert_int_equal(fc->socket_mode, 0660);
    assert_int_equal(fc->n_allow_uids, 1);
    assert_int_equal(fc->allow_uids[0], 2000);
    assert_int_equal(fc->group_clients, BR_GROUP_CLIENTS_SAME_UID);
    /* slot 0 (edu's, running) is untouched by slot 1 */
    assert_string_equal(cfg.functions[0].cfg->socket_path, "/run/x/edu.sock");
    assert_string_equal(cfg.functions[0].cfg->device, "0000:00:10.1");
    /* the bridge: not exported */
    assert_int_equal(br_service_group_configure("0000:00:10.0", 2, &fc), 0);
    /* a slot out of range */
    assert_int_equal(br_service_group_configure("0000:00:10.2", BR_GROUP_MAX_FUNCTIONS, &fc),
                     -EINVAL);
    /* a policy changed on disk changes nothing: the daemon keeps the one it loaded */
    write_policy("{\"devices\": []}");
    assert_int_equal(br_service_group_scan(&sc), 0);
    assert_int_equal(sc.n, 2);

    /* the command line's rule wins over the policy's */
    write_policy("{\"defaults\": {\"group_clients\": \"any\"}, \"devices\": ["
                 "{\"match\": {\"class\": \"00\"}, \"socket\": \"/run/x/a.sock\"},"
                 "{\"match\": {\"class\": \"01\"}, \"socket\": \"/run/x/b.sock\"}]}");
    br_config_defaults(&cfg);
    cfg.policy_path = g_policy;
    cfg.iommu_group = 20;
    cfg.group_clients = BR_GROUP_CLIENTS_SAME_VM;
    cfg.group_clients_set = true;
    assert_int_equal(br_service_apply_policy_at(&cfg, fs.root), 0);
    assert_int_equal(cfg.group_clients, BR_GROUP_CLIENTS_SAME_VM);
    assert_int_equal(cfg.functions[1].cfg->group_clients, BR_GROUP_CLIENTS_SAME_VM);
    br_config_defaults(&cfg);
    cfg.policy_path = g_policy;
    cfg.iommu_group = 20;
    assert_int_equal(br_service_apply_policy_at(&cfg, fs.root), 0);
    assert_int_equal(cfg.group_clients, BR_GROUP_CLIENTS_ANY);
    assert_int_equal(cfg.functions[1].cfg->group_clients, BR_GROUP_CLIENTS_ANY);

    /* entries that disagree: refused */
    write_policy("{\"devices\": ["
                 "{\"match\": {\"class\": \"00\"}, \"group_clients\": \"same-uid\"},"
                 "{\"match\": {\"class\": \"01\"}}]}");
    br_config_defaults(&cfg);
    cfg.policy_path = g_policy;
    cfg.iommu_group = 20;
    assert_int_equal(br_service_apply_policy_at(&cfg, fs.root), -EINVAL);
    /* a wrong value: refused when the policy is loaded */
    write_policy("{\"devices\": [{\"match\": {\"class\": \"00\"}, \"group_clients\": \"vm\"}]}");
    assert_int_equal(br_service_apply_policy_at(&cfg, fs.root), -EINVAL);
    fake_sysfs_destroy(&fs);
}

/* The daemon itself: a policy that does not export the device is a
 * configuration error (status 2, so the unit does not restart it), and the
 * log says why. */
/* Run the bridge with args; its output (stdout and stderr) into out, its
 * exit status returned (the test fails if it did not exit). */
static int run_bridge(const char *args, char *out, size_t outsz)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s %s 2>&1", BRIDGE, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, outsz - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_daemon_exit_status(void **state)
{
    (void)state;
    need_pci();
    write_policy("{\"devices\": [{\"match\": {\"address\": \"%s\"}, \"export\": false}]}",
                 g_addr);
    char args[256], out[1024];
    snprintf(args, sizeof(args), "--policy %s --device %s", g_policy, g_addr);
    assert_int_equal(run_bridge(args, out, sizeof(out)), BR_EXIT_CONFIG);
    assert_non_null(strstr(out, "devices[0] excludes"));
    assert_non_null(strstr(out, g_addr));
}

/* The group unit's command line: a group with nothing to serve is a
 * configuration error too (no restart loop); --iommu-group without
 * --policy, or with --device, is a bad command line. */
static void run_status(const char *args, int want, const char *want_out)
{
    char out[1024];
    int st = run_bridge(args, out, sizeof(out));
    if (st != want || !strstr(out, want_out))
        fail_msg("%s: status %d, wanted %d and \"%s\":\n%s", args, st, want, want_out, out);
}

static void test_iommu_group_command_line(void **state)
{
    (void)state;
    char args[256];
    write_policy("{\"devices\": []}");
    snprintf(args, sizeof(args), "--policy %s --iommu-group 999999", g_policy);
    run_status(args, BR_EXIT_CONFIG, "IOMMU group 999999: no such group");
    run_status("--iommu-group 3", BR_EXIT_CONFIG, "--iommu-group needs --policy");
    snprintf(args, sizeof(args), "--policy %s --iommu-group 3 --device 0000:00:01.0", g_policy);
    run_status(args, BR_EXIT_CONFIG, "not --device");
    snprintf(args, sizeof(args), "--policy %s --iommu-group x3", g_policy);
    run_status(args, BR_EXIT_CONFIG, "want a group number");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_fills_config),
        cmocka_unit_test(test_command_line_wins),
        cmocka_unit_test(test_policy_testing_keys),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_iommu_group),
        cmocka_unit_test(test_iommu_group_late),
        cmocka_unit_test(test_daemon_exit_status),
        cmocka_unit_test(test_iommu_group_command_line),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
