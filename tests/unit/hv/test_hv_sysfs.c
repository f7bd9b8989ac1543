/* SPDX-License-Identifier: MIT */
/* sysfs checks, listing and binding of host-vfio on a fake sysfs tree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "fake_sysfs.h"
#include "hv.h"
#include "hv_internal.h"
#include "testutil.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#define A0 "0000:01:00.0"
#define A1 "0000:01:00.1"
#define A2 "0000:01:00.2"

static int setup(void **state)
{
    static struct fake_sysfs f;
    if (fake_sysfs_init(&f) < 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fake_sysfs_destroy(*state);
    return 0;
}

static void test_addr_parse(void **state)
{
    (void)state;
    char out[HV_ADDR_LEN];
    assert_int_equal(hv_pci_addr_parse("0000:01:00.0", out), 0);
    assert_string_equal(out, "0000:01:00.0");
    assert_int_equal(hv_pci_addr_parse("01:1F.7", out), 0);
    assert_string_equal(out, "0000:01:1f.7");
    assert_int_equal(hv_pci_addr_parse("ABCD:ff:00.3", out), 0);
    assert_string_equal(out, "abcd:ff:00.3");
    assert_int_equal(hv_pci_addr_parse("10000:00:02.0", out), 0);   /* VMD-style domain */
    assert_string_equal(out, "10000:00:02.0");
    const char *bad[] = { "1:0.0", "0000:1:00.0", "0000:01:0.0", "0000:01:00", "0000:01:00.8",
                          "0000:01:20.0", "0000:01:00.0x", "000:01:00.0", "", "x0:00.0",
                          "0000:01:00.0 ", "1234567:00:00.0", "0000:01.00.0" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (hv_pci_addr_parse(bad[i], out) != -EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
    }
}

static void test_fail_formats(void **state)
{
    (void)state;
    struct vub_err e;
    assert_int_equal(vub_fail(&e, -EBUSY, "x %d", 7), -EBUSY);
    assert_string_equal(e.msg, "x 7");
    assert_int_equal(vub_fail(&e, -ENOENT, "y"), -ENOENT);
    assert_int_equal(vub_fail(NULL, -EIO, "z"), -EIO);
}

static void test_driver_and_group(void **state)
{
    struct fake_sysfs *f = *state;
    struct vub_err e;
    char drv[64];
    fs_add_dev(f, A0, "nvme", 7, 0x1b36, 0x0010, 0x010802);
    fs_add_dev(f, A1, NULL, -1, 0x1234, 0x11e8, 0x00ff00);

    assert_int_equal(hv_sysfs_driver(f->root, A0, drv, sizeof(drv)), 0);
    assert_string_equal(drv, "nvme");
    assert_int_equal(hv_sysfs_driver(f->root, A1, drv, sizeof(drv)), 0);
    assert_string_equal(drv, "");
    assert_int_equal(hv_sysfs_driver(f->root, "0000:09:00.0", drv, sizeof(drv)), -ENODEV);

    assert_int_equal(hv_sysfs_iommu_group(f->root, A0, &e), 7);
    assert_int_equal(hv_sysfs_iommu_group(f->root, A1, &e), -ENOENT);
    tu_assert_msg(e, A1 " has no IOMMU group");
    assert_int_equal(hv_sysfs_iommu_group(f->root, "0000:09:00.0", &e), -ENODEV);
    tu_assert_msg(e, "no PCI function 0000:09:00.0");
}

static void test_exportable_errors(void **state)
{
    struct fake_sysfs *f = *state;
    struct vub_err e;

    fs_add_dev(f, A0, "nvme", 7, 0x1b36, 0x0010, 0x010802);
    assert_int_equal(hv_sysfs_check_exportable(f->root, A0, &e), -EBUSY);
    assert_string_equal(e.msg, "0000:01:00.0 is bound to nvme, not vfio-pci");

    fs_set_driver(f, A0, NULL);
    assert_int_equal(hv_sysfs_check_exportable(f->root, A0, &e), -ENODEV);
    tu_assert_msg(e, A0 " is bound to no driver, not vfio-pci");

    assert_int_equal(hv_sysfs_check_exportable(f->root, "0000:02:00.0", &e), -ENODEV);
    tu_assert_msg(e, "no PCI function 0000:02:00.0");

    assert_int_equal(hv_sysfs_check_exportable(f->root, "2:0.0", &e), -EINVAL);
    tu_assert_msg(e, "'2:0.0' is not a PCI address");

    fs_add_dev(f, "0000:03:00.0", "vfio-pci", -1, 1, 2, 3);
    assert_int_equal(hv_sysfs_check_exportable(f->root, "0000:03:00.0", &e), -ENOENT);
    tu_assert_msg(e, "0000:03:00.0 has no IOMMU group");
}

static void test_group_viability(void **state)
{
    struct fake_sysfs *f = *state;
    struct vub_err e;

    fs_add_dev(f, A0, "vfio-pci", 7, 0x8086, 0x10d3, 0x020000);
    fs_add_dev(f, A1, "igb", 7, 0x8086, 0x10d3, 0x020000);
    assert_int_equal(hv_sysfs_check_exportable(f->root, A0, &e), -EBUSY);
    tu_assert_msg(e, "group 7 is not viable: 0000:01:00.1 is bound to igb");
    tu_assert_msg(e, A0);   /* names the device asked for too */
    assert_null(strstr(e.msg, A0 " is bound"));   /* and not as an offender */

    /* Two offenders: both named. */
    fs_add_dev(f, A2, "e1000e", 7, 0x8086, 0x10d3, 0x020000);
    assert_int_equal(hv_sysfs_check_exportable(f->root, A0, &e), -EBUSY);
    tu_assert_msg(e, "0000:01:00.1 is bound to igb, 0000:01:00.2 is bound to e1000e");

    /* Tolerated members: no driver, pci-stub, pcieport, vfio-pci. */
    fs_set_driver(f, A1, NULL);
    fs_set_driver(f, A2, "pci-stub");
    fs_add_dev(f, "0000:00:1c.0", "pcieport", 7, 0x8086, 0x1234, 0x060400);
    fs_add_dev(f, "0000:01:00.3", "vfio-pci", 7, 0x8086, 0x10d3, 0x020000);
    assert_int_equal(hv_sysfs_check_exportable(f->root, A0, &e), 7);

    /* Would-be-viable ignores the function itself but not the others. */
    fs_set_driver(f, A0, "igb");
    assert_int_equal(hv_sysfs_check_group_would_be_viable(f->root, A0, &e), 0);
    fs_set_driver(f, A2, "igb");
    assert_int_equal(hv_sysfs_check_group_would_be_viable(f->root, A0, &e), -EBUSY);
    tu_assert_msg(e, "group 7 is not viable: 0000:01:00.2 is bound to igb");
    assert_null(strstr(e.msg, A0 " is bound"));
}

/* The members named when a group is busy (issue 15: a shared group is one
 * process's): every other member with its driver, sorted, itself left out. */
static void test_group_members(void **state)
{
    struct fake_sysfs *f = *state;
    char out[256];
    fs_add_dev(f, A1, "vfio-pci", 3, 0x1b36, 0x0010, 0x010802);
    fs_add_dev(f, A0, "vfio-pci", 3, 0x1234, 0x11e8, 0x00ff00);
    fs_add_dev(f, "0000:00:1e.0", NULL, 3, 0x1b36, 0x0001, 0x060400);
    fs_add_dev(f, A2, "igb", 4, 0x8086, 0x10d3, 0x020000);
    assert_int_equal(hv_sysfs_group_members(f->root, 3, A0, out, sizeof(out)), 2);
    assert_string_equal(out, "0000:00:1e.0 (no driver), 0000:01:00.1 (vfio-pci)");
    assert_int_equal(hv_sysfs_group_members(f->root, 3, NULL, out, sizeof(out)), 3);
    assert_non_null(strstr(out, "0000:01:00.0 (vfio-pci)"));
    assert_int_equal(hv_sysfs_group_members(f->root, 4, A2, out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_true(hv_sysfs_group_members(f->root, 9, NULL, out, sizeof(out)) < 0);
    /* a short buffer is cut, never overrun */
    char tiny[12];
    assert_int_equal(hv_sysfs_group_members(f->root, 3, NULL, tiny, sizeof(tiny)), 3);
    assert_true(strlen(tiny) < sizeof(tiny));
}

/* The processes named when /dev/vfio/<group> is busy: a child that holds
 * the file is found with its command line, this process never. */
static void test_proc_holders(void **state)
{
    (void)state;
    char path[] = "/tmp/hv-holder-XXXXXX", out[512];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(hv_proc_holders(NULL, path, out, sizeof(out)), 0);   /* only we hold it */
    assert_string_equal(out, "");
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        pause();   /* holds fd (inherited) until killed */
        _exit(0);
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    close(fd);   /* now only the child has it */
    char want[32];
    snprintf(want, sizeof(want), "pid %ld (", (long)pid);
    int n = hv_proc_holders(NULL, path, out, sizeof(out));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    unlink(path);
    assert_int_equal(n, 1);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "hv_sysfs"));   /* its command line */
    assert_int_equal(hv_proc_holders(NULL, path, out, sizeof(out)), 0);
    assert_true(hv_proc_holders("/nonexistent-proc", path, out, sizeof(out)) < 0);
}

static void test_bind_refused_when_group_stays_unviable(void **state)
{
    struct fake_sysfs *f = *state;
    struct vub_err e;
    char prev[64], p[PATH_MAX];

    fs_add_dev(f, A0, "igb", 4, 0x8086, 0x10d3, 0x020000);
    fs_add_dev(f, A1, "igb", 4, 0x8086, 0x10d3, 0x020000);
    assert_int_equal(hv_bind_vfio(f->root, A0, prev, sizeof(prev), &e), -EBUSY);
    tu_assert_msg(e, "group 4 is not viable: 0000:01:00.1 is bound to igb");
    /* Nothing was touched. */
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/driver_override", A0);
    assert_string_equal(fs_read_file(p), "(null)\n");
    fs_path(f, p, sizeof(p), "bus/pci/drivers/igb/unbind");
    assert_string_equal(fs_read_file(p), "");
    fs_path(f, p, sizeof(p), "bus/pci/drivers_probe");
    assert_string_equal(fs_read_file(p), "");
}

static void test_bind_writes(void **state)
{
    struct fake_sysfs *f = *state;
    struct vub_err e;
    char prev[64] = "junk", p[PATH_MAX];

    fs_add_dev(f, A0, "nvme", 4, 0x1b36, 0x0010, 0x010802);
    /* Nothing in a fake tree binds: the writes happen in order, then the
     * check after drivers_probe reports that vfio-pci did not take it. */
    assert_int_equal(hv_bind_vfio(f->root, A0, prev, sizeof(prev), &e), -ENODEV);
    assert_string_equal(prev, "nvme");
    tu_assert_msg(e, A0 ": still bound to nvme after drivers_probe, not vfio-pci");
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/driver_override", A0);
    assert_string_equal(fs_read_file(p), "vfio-pci");
    fs_path(f, p, sizeof(p), "bus/pci/drivers/nvme/unbind");
    assert_string_equal(fs_read_file(p), A0);
    fs_path(f, p, sizeof(p), "bus/pci/drivers_probe");
    assert_string_equal(fs_read_file(p), A0);

    /* Already on vfio-pci: success, nothing written. */
    fs_write_file(p, "");
    fs_set_driver(f, A0, "vfio-pci");
    assert_int_equal(hv_bind_vfio(f->root, A0, prev, sizeof(prev), &e), 0);
    assert_string_equal(prev, "vfio-pci");
    assert_string_equal(fs_read_file(p), "");

    /* Unknown function. */
    assert_int_equal(hv_bind_vfio(f->root, "0000:0a:00.0", prev, sizeof(prev), &e), -ENODEV);
    tu_assert_msg(e, "no PCI function 0000:0a:00.0");
}

static void test_bind_unbound_device(void **state)
{
    struct fake_sysfs *f = *state;
    struct vub_err e;
    char prev[64], p[PATH_MAX];

    fs_add_dev(f, A0, NULL, 4, 0x1234, 0x11e8, 0x00ff00);
    assert_int_equal(hv_bind_vfio(f->root, A0, prev, sizeof(prev), &e), -ENODEV);
    assert_string_equal(prev, "");
    tu_assert_msg(e, "still without a driver after drivers_probe");
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/driver_override", A0);
    assert_string_equal(fs_read_file(p), "vfio-pci");
    fs_path(f, p, sizeof(p), "bus/pci/drivers_probe");
    assert_string_equal(fs_read_file(p), A0);
    fs_path(f, p, sizeof(p), "bus/pci/drivers/vfio-pci/unbind");
    assert_string_equal(fs_read_file(p), "");
}

static void test_bind_permission(void **state)
{
    struct fake_sysfs *f = *state;
    struct vub_err e;
    char prev[64], p[PATH_MAX];

    fs_add_dev(f, A0, "nvme", 4, 0x1b36, 0x0010, 0x010802);
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/driver_override", A0);
    /* A directory in the way makes the open fail whoever we are. */
    unlink(p);
    mkdir(p, 0755);
    int r = hv_bind_vfio(f->root, A0, prev, sizeof(prev), &e);
    assert_int_equal(r, -EISDIR);
    tu_assert_msg(e, "writing 'vfio-pci' to ");
    tu_assert_msg(e, "driver_override failed");
    rmdir(p);
}

static void test_release(void **state)
{
    struct fake_sysfs *f = *state;
    struct vub_err e;
    char p[PATH_MAX];

    fs_add_dev(f, A0, "vfio-pci", 4, 0x1b36, 0x0010, 0x010802);
    fs_add_driver(f, "nvme");
    fs_path(f, p, sizeof(p), "devices/pci0000:00/%s/driver_override", A0);
    fs_write_file(p, "vfio-pci\n");

    /* Back to the previous driver by name. */
    assert_int_equal(hv_release(f->root, A0, "nvme", &e), 0);
    assert_string_equal(fs_read_file(p), "\n");
    fs_path(f, p, sizeof(p), "bus/pci/drivers/vfio-pci/unbind");
    assert_string_equal(fs_read_file(p), A0);
    fs_path(f, p, sizeof(p), "bus/pci/drivers/nvme/bind");
    assert_string_equal(fs_read_file(p), A0);
    fs_path(f, p, sizeof(p), "bus/pci/drivers_probe");
    assert_string_equal(fs_read_file(p), "");

    /* No previous driver: the kernel picks through drivers_probe. */
    fs_path(f, p, sizeof(p), "bus/pci/drivers/vfio-pci/unbind");
    fs_write_file(p, "");
    assert_int_equal(hv_release(f->root, A0, "", &e), 0);
    assert_string_equal(fs_read_file(p), A0);
    fs_path(f, p, sizeof(p), "bus/pci/drivers_probe");
    assert_string_equal(fs_read_file(p), A0);

    /* A previous driver that is gone: the kernel picks instead. */
    fs_write_file(p, "");
    fs_set_driver(f, A0, "vfio-pci");
    assert_int_equal(hv_release(f->root, A0, "no-such-driver", &e), 0);
    assert_string_equal(fs_read_file(p), A0);

    /* Bound to someone else meanwhile: only the override is cleared. */
    fs_write_file(p, "");
    fs_set_driver(f, A0, "nvme");
    fs_path(f, p, sizeof(p), "bus/pci/drivers/nvme/unbind");
    assert_int_equal(hv_release(f->root, A0, NULL, &e), 0);
    assert_string_equal(fs_read_file(p), "");
    fs_path(f, p, sizeof(p), "bus/pci/drivers_probe");
    assert_string_equal(fs_read_file(p), "");
}

static void test_list(void **state)
{
    struct fake_sysfs *f = *state;
    struct vub_err e;
    struct hv_list_entry *l;
    size_t n;

    fs_add_dev(f, "0000:02:00.0", "vfio-pci", 9, 0x1234, 0x11e8, 0x00ff00);
    fs_add_dev(f, A1, "igb", 5, 0x8086, 0x10c9, 0x020000);
    fs_add_dev(f, A0, "vfio-pci", 5, 0x8086, 0x10c9, 0x020000);
    fs_add_dev(f, "0000:00:1f.0", NULL, -1, 0x8086, 0x2918, 0x060100);

    int fds = tu_count_fds();
    assert_int_equal(hv_list(f->root, &l, &n, &e), 0);
    assert_int_equal(tu_count_fds(), fds);
    assert_int_equal(n, 4);
    /* sorted by address */
    assert_string_equal(l[0].addr, "0000:00:1f.0");
    assert_string_equal(l[1].addr, A0);
    assert_string_equal(l[2].addr, A1);
    assert_string_equal(l[3].addr, "0000:02:00.0");

    assert_int_equal(l[0].group, -1);
    assert_string_equal(l[0].driver, "");
    assert_false(l[0].exportable);
    assert_non_null(strstr(l[0].why, "bound to no driver"));

    assert_int_equal(l[1].id.vendor, 0x8086);
    assert_int_equal(l[1].id.device, 0x10c9);
    assert_int_equal(l[1].id.class_code, 0x020000);
    assert_int_equal(l[1].id.subsys_vendor, 0x1af4);
    assert_string_equal(l[1].driver, "vfio-pci");
    assert_int_equal(l[1].group, 5);
    assert_false(l[1].exportable);
    assert_non_null(strstr(l[1].why, "group 5 is not viable: 0000:01:00.1 is bound to igb"));

    assert_false(l[2].exportable);
    assert_string_equal(l[2].why, A1 " is bound to igb, not vfio-pci");

    assert_true(l[3].exportable);
    assert_string_equal(l[3].why, "");
    assert_int_equal(l[3].group, 9);
    /* Names come from pci.ids when installed, else the numeric fallback.
     * 1234 is no assigned vendor (QEMU's edu borrows it), so it always gets
     * the fallback, which must name the function's own ids. */
    assert_string_equal(l[3].id.vendor_name, "Unknown vendor 1234");
    assert_string_equal(l[3].id.device_name, "Unknown device 11e8");
    assert_true(strcmp(l[1].id.vendor_name, "Intel Corporation") == 0 ||
                strcmp(l[1].id.vendor_name, "Unknown vendor 8086") == 0);
    free(l);

    /* With a /dev/vfio directory: a missing group node is a reason too. */
    char dv[PATH_MAX];
    fs_path(f, dv, sizeof(dv), "devvfio");
    mkdir(dv, 0755);
    assert_int_equal(hv_list_ex(f->root, dv, &l, &n, &e), 0);
    assert_false(l[3].exportable);
    assert_non_null(strstr(l[3].why, "devvfio/9 does not exist"));
    free(l);
    char g[PATH_MAX];
    fs_path(f, g, sizeof(g), "devvfio/9");
    fs_write_file(g, "");
    assert_int_equal(hv_list_ex(f->root, dv, &l, &n, &e), 0);
    assert_true(l[3].exportable);
    free(l);
}

static void test_list_no_tree(void **state)
{
    (void)state;
    struct vub_err e;
    struct hv_list_entry *l = (void *)1;
    size_t n = 5;
    assert_int_equal(hv_list("/nonexistent-sysfs", &l, &n, &e), -ENOENT);
    assert_null(l);
    assert_int_equal(n, 0);
    tu_assert_msg(e, "/nonexistent-sysfs/bus/pci/devices");
}

static void test_pci_names(void **state)
{
    (void)state;
    struct hv_pci_ident id;
    hv_pci_names(0xfff7, 0xfff6, 0xfe0000, &id);
    assert_string_equal(id.vendor_name, "Unknown vendor fff7");
    assert_string_equal(id.device_name, "Unknown device fff6");
    assert_int_equal(id.vendor, 0xfff7);
    assert_int_equal(id.class_code, 0xfe0000);
    if (access("/usr/share/misc/pci.ids", R_OK) == 0) {
        hv_pci_names(0x8086, 0x10d3, 0x020000, &id);
        assert_string_equal(id.vendor_name, "Intel Corporation");
        assert_non_null(strstr(id.device_name, "82574L"));
        assert_string_equal(id.class_name, "Ethernet controller");
    }
}

static void test_identify_missing(void **state)
{
    (void)state;
    struct vub_err e;
    struct hv_pci_ident id;
    assert_int_equal(hv_pci_identify("00fe:ff:1f.7", &id, &e), -ENODEV);
    tu_assert_msg(e, "no PCI function 00fe:ff:1f.7");
    assert_int_equal(hv_pci_identify("nonsense", &id, &e), -EINVAL);
}

/* The identity of a function the machine really has, through libpci's
 * config access, agrees with what sysfs says. */
static void test_identify_real(void **state)
{
    (void)state;
    struct hv_list_entry *l;
    size_t n;
    struct vub_err e;
    if (hv_list_ex("/sys", NULL, &l, &n, &e) < 0 || n == 0) {
        skip();
    }
    struct hv_pci_ident id;
    assert_int_equal(hv_pci_identify(l[0].addr, &id, &e), 0);
    assert_int_equal(id.vendor, l[0].id.vendor);
    assert_int_equal(id.device, l[0].id.device);
    assert_int_equal(id.class_code, l[0].id.class_code);
    assert_string_equal(id.vendor_name, l[0].id.vendor_name);
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse),
        cmocka_unit_test(test_fail_formats),
        cmocka_unit_test_setup_teardown(test_driver_and_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exportable_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_viability, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_members, setup, teardown),
        cmocka_unit_test(test_proc_holders),
        cmocka_unit_test_setup_teardown(test_bind_refused_when_group_stays_unviable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_unbound_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_permission, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test(test_list_no_tree),
        cmocka_unit_test(test_pci_names),
        cmocka_unit_test(test_identify_missing),
        cmocka_unit_test(test_identify_real),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
