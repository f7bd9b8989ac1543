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

/* The daemon itself: a policy that does not export the device is a
 * configuration error (status 2, so the unit does not restart it), and the
 * log says why. */
static void test_daemon_exit_status(void **state)
{
    (void)state;
    need_pci();
    write_policy("{\"devices\": [{\"match\": {\"address\": \"%s\"}, \"export\": false}]}",
                 g_addr);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s --policy %s --device %s 2>&1", BRIDGE, g_policy, g_addr);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[1024] = "";
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), BR_EXIT_CONFIG);
    assert_non_null(strstr(out, "devices[0] excludes"));
    assert_non_null(strstr(out, g_addr));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_fills_config),
        cmocka_unit_test(test_command_line_wins),
        cmocka_unit_test(test_policy_testing_keys),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_daemon_exit_status),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
