/* SPDX-License-Identifier: MIT */
/* Device watch: event classification, state checks on a fake sysfs, the
 * VFIO request eventfd, and a real kernel uevent (root, a PCI device). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "devwatch.h"
#include "fake_sysfs.h"
#include "testutil.h"

#define ADDR "0000:00:03.0"

static struct fake_sysfs g_fs;
static char *g_root = g_fs.root;

static void set_driver(const char *drv)
{
    fs_set_driver(&g_fs, ADDR, drv);
}

static int setup(void **state)
{
    (void)state;
    if (fake_sysfs_init(&g_fs) < 0)
        return -1;
    fs_add_driver(&g_fs, "nvme");
    fs_add_dev(&g_fs, ADDR, "vfio-pci", 3, 0x1234, 0x11e8, 0x00ff00);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_sysfs_destroy(&g_fs);
    return 0;
}

static bool readable(int fd, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(dw_classify("remove", NULL, false, ""), DW_REMOVED);
    assert_int_equal(dw_classify("remove", "vfio-pci", true, "vfio-pci"), DW_REMOVED);
    assert_int_equal(dw_classify("unbind", NULL, true, ""), DW_UNBOUND);
    assert_int_equal(dw_classify("bind", "vfio-pci", true, "vfio-pci"), DW_NONE);
    assert_int_equal(dw_classify("bind", "nvme", true, "nvme"), DW_UNBOUND);
    assert_int_equal(dw_classify("bind", NULL, true, ""), DW_UNBOUND);
    assert_int_equal(dw_classify("change", NULL, true, "vfio-pci"), DW_NONE);
    assert_int_equal(dw_classify("change", NULL, true, "nvme"), DW_UNBOUND);
    assert_int_equal(dw_classify("change", NULL, true, ""), DW_UNBOUND);
    assert_int_equal(dw_classify("add", NULL, false, ""), DW_REMOVED);
    assert_int_equal(dw_classify("online", NULL, true, "vfio-pci"), DW_NONE);
    assert_int_equal(dw_classify(NULL, NULL, true, "vfio-pci"), DW_NONE);
    assert_string_equal(dw_kind_name(DW_REQUEST), "request");
}

static struct dw *open_watch(const char *addr, const char *sysfs)
{
    struct dw_opts o = { .addr = addr, .sysfs = sysfs, .source = DW_SOURCE_KERNEL };
    struct vub_err err = { { 0 } };
    struct dw *w = NULL;
    int r = dw_open(&o, &w, &err);
    if (r != 0)
        fail_msg("dw_open: %d %s", r, err.msg);
    return w;
}

static void test_bad_options(void **state)
{
    (void)state;
    struct dw *w = (struct dw *)0x1;
    struct vub_err err = { { 0 } };
    struct dw_opts o = { .addr = NULL };
    assert_int_equal(dw_open(&o, &w, &err), -EINVAL);
    assert_null(w);
    o.addr = ADDR;
    o.source = (enum dw_source)7;
    assert_int_equal(dw_open(&o, &w, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "source"));
}

static void test_state_checks(void **state)
{
    (void)state;
    int fds = tu_count_fds();
    struct dw *w = open_watch(ADDR, g_root);
    struct dw_event ev;

    assert_int_equal(dw_check_now(w, &ev), 0);
    assert_int_equal(ev.kind, DW_NONE);

    set_driver("nvme");
    assert_int_equal(dw_check_now(w, &ev), 0);
    assert_int_equal(ev.kind, DW_UNBOUND);
    assert_non_null(strstr(ev.what, ADDR));
    assert_non_null(strstr(ev.what, "bound to nvme"));

    set_driver(NULL);
    assert_int_equal(dw_check_now(w, &ev), 0);
    assert_int_equal(ev.kind, DW_UNBOUND);
    assert_non_null(strstr(ev.what, "unbound from vfio-pci"));

    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/bus/pci/devices/" ADDR, g_root);
    assert_int_equal(rename(p, "/tmp/vub-dw-moved"), 0);
    assert_int_equal(dw_check_now(w, &ev), 0);
    assert_int_equal(ev.kind, DW_REMOVED);
    assert_non_null(strstr(ev.what, "removed"));
    assert_int_equal(rename("/tmp/vub-dw-moved", p), 0);
    set_driver("vfio-pci");

    dw_close(w);
    assert_int_equal(tu_count_fds(), fds);
}

static void test_request_eventfd(void **state)
{
    (void)state;
    struct dw *w = open_watch(ADDR, g_root);
    struct dw_event ev;
    int rfd = dw_request_fd(w);
    assert_true(rfd >= 0);
    assert_int_not_equal(rfd, dw_fd(w));

    /* nothing pending */
    assert_false(readable(dw_fd(w), 0));
    assert_int_equal(dw_poll(w, &ev), 0);
    assert_int_equal(ev.kind, DW_NONE);

    /* what the kernel does when someone unbinds the device we hold */
    uint64_t one = 1;
    assert_int_equal(write(rfd, &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_int_equal(write(rfd, &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_true(readable(dw_fd(w), 1000));
    assert_int_equal(dw_poll(w, &ev), 0);
    assert_int_equal(ev.kind, DW_REQUEST);
    assert_non_null(strstr(ev.what, ADDR));
    assert_non_null(strstr(ev.what, "asks for"));
    /* drained */
    assert_false(readable(dw_fd(w), 0));
    assert_int_equal(dw_poll(w, &ev), 0);
    assert_int_equal(ev.kind, DW_NONE);
    dw_close(w);
}

/* A real PCI function of this machine not bound to vfio-pci, or "". */
static void some_pci_function(char *addr, size_t sz)
{
    addr[0] = '\0';
    DIR *d = opendir("/sys/bus/pci/devices");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char link[PATH_MAX], t[PATH_MAX];
        snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/driver", e->d_name);
        ssize_t n = readlink(link, t, sizeof(t) - 1);
        if (n > 0) {
            t[n] = '\0';
            if (strstr(t, "/vfio-pci"))
                continue;
        }
        if (strlen(e->d_name) >= sz)
            continue;
        memcpy(addr, e->d_name, strlen(e->d_name) + 1);
        break;
    }
    closedir(d);
}

static void test_real_uevent(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("SKIP: needs root to trigger a uevent\n");
        skip();
    }
    char addr[64];
    some_pci_function(addr, sizeof(addr));
    if (!addr[0]) {
        print_message("SKIP: no PCI function outside vfio-pci on this machine\n");
        skip();
    }
    /* `mine` watches that function (bound to something other than vfio-pci,
     * so any event for it means "not ours"); `other` watches an address no
     * event will name (ff:1f.7 in the fake tree, bound to vfio-pci). */
    struct dw *mine = open_watch(addr, NULL);
    struct dw *other = open_watch("0000:ff:1f.7", g_root);
    struct dw_event ev;

    char p[PATH_MAX];
    snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/uevent", addr);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "change", 6) != 6) {
        if (fd >= 0)
            close(fd);
        dw_close(mine);
        dw_close(other);
        print_message("SKIP: cannot write %s (%s)\n", p, strerror(errno));
        skip();
    }
    close(fd);

    /* a deadline, not a measurement: uevents arrive in microseconds */
    assert_true(readable(dw_fd(mine), 10000));
    assert_int_equal(dw_poll(mine, &ev), 0);
    assert_int_equal(ev.kind, DW_UNBOUND);
    assert_non_null(strstr(ev.what, addr));
    assert_non_null(strstr(ev.what, "change event"));

    /* the same event reached `other` (multicast), and it is ignored there */
    assert_true(readable(dw_fd(other), 10000));
    assert_int_equal(dw_poll(other, &ev), 0);
    assert_int_equal(ev.kind, DW_NONE);
    assert_false(readable(dw_fd(other), 0));
    dw_close(mine);
    dw_close(other);
}

/* The group daemon's watch: which uevents make it look at its group again
 * (a member bound, added or changed; not an unbind, not another group's
 * function); and a real "change" uevent of a PCI function of this machine,
 * made a member of fake group 7, reaches a watch of group 7 and not one of
 * group 8. */
static void test_group_watch(void **state)
{
    (void)state;
    fs_add_dev(&g_fs, "0000:00:07.0", NULL, 7, 0x1b36, 0x0010, 0x010802);
    assert_true(dw_group_concerns(g_root, 7, "bind", "0000:00:07.0"));
    assert_true(dw_group_concerns(g_root, 7, "add", "0000:00:07.0"));
    assert_true(dw_group_concerns(g_root, 7, "change", "0000:00:07.0"));
    assert_false(dw_group_concerns(g_root, 7, "unbind", "0000:00:07.0"));
    assert_false(dw_group_concerns(g_root, 7, "remove", "0000:00:07.0"));
    assert_false(dw_group_concerns(g_root, 3, "bind", "0000:00:07.0"));   /* another group */
    assert_true(dw_group_concerns(g_root, 3, "bind", ADDR));
    assert_false(dw_group_concerns(g_root, 7, "bind", ADDR));
    assert_false(dw_group_concerns(g_root, 7, NULL, "0000:00:07.0"));
    assert_false(dw_group_concerns(g_root, 7, "bind", NULL));
    assert_false(dw_group_concerns(g_root, 7, "bind", "../7/devices/0000:00:07.0"));
    struct dw_group *w = NULL;
    struct vub_err err = { "" };
    assert_int_equal(dw_group_open(g_root, -1, &w, &err), -EINVAL);

    if (geteuid() != 0) {
        print_message("SKIP (the real uevent): needs root\n");
        return;
    }
    char addr[64];
    some_pci_function(addr, sizeof(addr));
    if (!addr[0]) {
        print_message("SKIP (the real uevent): no PCI function on this machine\n");
        return;
    }
    fs_add_dev(&g_fs, addr, NULL, 7, 0x1234, 0x11e8, 0x00ff00);
    struct dw_group *g7 = NULL, *g8 = NULL;
    assert_int_equal(dw_group_open(g_root, 7, &g7, &err), 0);
    assert_int_equal(dw_group_open(g_root, 8, &g8, &err), 0);
    bool rescan = true;
    assert_int_equal(dw_group_poll(g7, &rescan), 0);   /* nothing yet */
    assert_false(rescan);
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/uevent", addr);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "change", 6) != 6) {
        if (fd >= 0)
            close(fd);
        dw_group_close(g7);
        dw_group_close(g8);
        print_message("SKIP (the real uevent): cannot write %s (%s)\n", p, strerror(errno));
        return;
    }
    close(fd);
    /* a deadline, not a measurement */
    assert_true(readable(dw_group_fd(g7), 10000));
    assert_int_equal(dw_group_poll(g7, &rescan), 0);
    assert_true(rescan);
    assert_true(readable(dw_group_fd(g8), 10000));   /* multicast: g8 got it too */
    assert_int_equal(dw_group_poll(g8, &rescan), 0);
    assert_false(rescan);
    dw_group_close(g7);
    dw_group_close(g8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_state_checks),
        cmocka_unit_test(test_request_eventfd),
        cmocka_unit_test(test_real_uevent),
        cmocka_unit_test(test_group_watch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
