/* SPDX-License-Identifier: MIT */
/*
 * The pure parts of the (unfinished) iommufd IOMMU context: finding a
 * function's VFIO cdev through sysfs, and turning IOMMU_IOAS_IOVA_RANGES'
 * answer into hv_iommu_info. And, on a kernel without iommufd (every one
 * this project runs on), that opening the context says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fake_sysfs.h"
#include "hv_iommufd.h"
#include "testutil.h"

#define A0 "0000:01:00.0"

static int setup(void **state)
{
    static struct fake_sysfs fs;
    if (fake_sysfs_init(&fs) < 0)
        return -1;
    fs_add_dev(&fs, A0, "vfio-pci", 7, 0x1234, 0x11e8, 0x00ff00);
    *state = &fs;
    return 0;
}

static int teardown(void **state)
{
    fake_sysfs_destroy(*state);
    return 0;
}

static void test_cdev_path(void **state)
{
    struct fake_sysfs *fs = *state;
    struct vub_err e = { "" };
    char p[PATH_MAX], out[256];

    /* no vfio-dev directory: a kernel without VFIO_DEVICE_CDEV */
    assert_int_equal(hv_iommufd_cdev_path(fs->root, "/dev/vfio", A0, out, sizeof(out), &e),
                     -ENOENT);
    assert_non_null(strstr(e.msg, A0 " has no VFIO device cdev"));
    assert_non_null(strstr(e.msg, "VFIO_DEVICE_CDEV"));

    fs_path(fs, p, sizeof(p), "devices/pci0000:00/%s/vfio-dev", A0);
    fs_mkdirs(p);
    assert_int_equal(hv_iommufd_cdev_path(fs->root, "/dev/vfio", A0, out, sizeof(out), &e),
                     -ENOENT);
    assert_non_null(strstr(e.msg, "is empty"));

    /* entries that are not vfioN are not cdevs */
    fs_path(fs, p, sizeof(p), "devices/pci0000:00/%s/vfio-dev/power", A0);
    fs_mkdirs(p);
    fs_path(fs, p, sizeof(p), "devices/pci0000:00/%s/vfio-dev/vfio", A0);
    fs_mkdirs(p);
    fs_path(fs, p, sizeof(p), "devices/pci0000:00/%s/vfio-dev/vfio1x", A0);
    fs_mkdirs(p);
    fs_path(fs, p, sizeof(p), "devices/pci0000:00/%s/vfio-dev/vfio12", A0);
    fs_mkdirs(p);
    assert_int_equal(hv_iommufd_cdev_path(fs->root, "/dev/vfio", A0, out, sizeof(out), &e), 0);
    assert_string_equal(out, "/dev/vfio/devices/vfio12");
    assert_int_equal(hv_iommufd_cdev_path(fs->root, "/x", A0, out, 12, &e), -ENAMETOOLONG);

    fs_path(fs, p, sizeof(p), "devices/pci0000:00/%s/vfio-dev/vfio3", A0);
    fs_mkdirs(p);
    assert_int_equal(hv_iommufd_cdev_path(fs->root, "/dev/vfio", A0, out, sizeof(out), &e),
                     -EEXIST);
    assert_non_null(strstr(e.msg, "2 VFIO device cdevs"));
}

static void test_fill_info(void **state)
{
    (void)state;
    struct hv_iommu_info io;
    struct hv_iova_range r[HV_MAX_IOVA_RANGES + 3];
    for (uint32_t i = 0; i < HV_MAX_IOVA_RANGES + 3; i++)
        r[i] = (struct hv_iova_range){ (uint64_t)i << 32, ((uint64_t)i << 32) + 0xfffff };

    /* alignment 1 (any IOVA): page granularity, every larger power of two */
    hv_iommufd_fill_info(r, 2, 1, 4096, &io);
    assert_int_equal(io.pgsizes, ~0xfffull);
    assert_int_equal(io.nr_ranges, 2);
    assert_int_equal(io.ranges[1].start, 1ull << 32);
    assert_int_equal(io.ranges[1].end, (1ull << 32) + 0xfffff);
    assert_false(io.has_dma_avail);   /* iommufd has no entry limit */

    /* a coarser alignment than the page wins */
    hv_iommufd_fill_info(r, 1, 0x10000, 4096, &io);
    assert_int_equal(io.pgsizes, ~0xffffull);
    /* nonsense (not a power of two) falls back to 4 KiB */
    hv_iommufd_fill_info(r, 1, 0x3000, 0x3000, &io);
    assert_int_equal(io.pgsizes, ~0xfffull);

    /* more ranges than fit: the first ones kept */
    hv_iommufd_fill_info(r, HV_MAX_IOVA_RANGES + 3, 4096, 4096, &io);
    assert_int_equal(io.nr_ranges, HV_MAX_IOVA_RANGES);
    assert_int_equal(io.ranges[HV_MAX_IOVA_RANGES - 1].start,
                     (uint64_t)(HV_MAX_IOVA_RANGES - 1) << 32);
}

/* Where /dev/iommu is missing, the context says so, and leaves nothing. */
static void test_no_iommufd_here(void **state)
{
    (void)state;
    if (access("/dev/iommu", F_OK) == 0) {
        print_message("/dev/iommu exists here: nothing to check\n");
        return;
    }
    struct hv_iommu *io = (struct hv_iommu *)1;
    struct vub_err e = { "" };
    int fds = tu_count_fds();
    assert_int_equal(hv_iommufd_iommu_new(NULL, &io, &e), -ENOENT);
    assert_null(io);
    assert_string_equal(e.msg, "this kernel has no iommufd (no /dev/iommu)");
    assert_int_equal(tu_count_fds(), fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cdev_path, setup, teardown),
        cmocka_unit_test(test_fill_info),
        cmocka_unit_test(test_no_iommufd_here),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
