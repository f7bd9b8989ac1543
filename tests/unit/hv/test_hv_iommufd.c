/* SPDX-License-Identifier: MIT */
/*
 * The pure parts of the iommufd IOMMU context: finding a function's VFIO
 * cdev through sysfs, turning IOMMU_IOAS_IOVA_RANGES' answer into
 * hv_iommu_info, the table of mappings that keeps type1's unmap rules. And
 * on a kernel without iommufd (Debian's), that opening the context says so.
 * The ioctl paths run in the e2e testbed (hv_direct with --kernel iommufd).
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
    /* Linux 6.1-6.5: the entry without a device number is no cdev */
    assert_int_equal(hv_iommufd_cdev_path(fs->root, "/dev/vfio", A0, out, sizeof(out), &e),
                     -ENOENT);
    assert_non_null(strstr(e.msg, "vfio12 has no device number"));
    fs_path(fs, p, sizeof(p), "devices/pci0000:00/%s/vfio-dev/vfio12/dev", A0);
    fs_write_file(p, "511:12\n");
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

/* The table of mappings gives type1's answers: overlap -EEXIST, the limit
 * -ENOSPC, an unmap range that cuts a mapping at either end -EINVAL, one
 * that holds none 0 mappings, one covering several all of them. */
static void test_maps(void **state)
{
    (void)state;
    struct hv_ifd_maps m = { .max = 5 };
    uint32_t count = 99;
    struct hv_iova_range span;
    const uint64_t K4 = 4096;
    assert_int_equal(hv_ifd_maps_find(&m, 0, K4, &count, &span), 0);
    assert_int_equal(count, 0);
    /* added out of order: [0x10000,+8K) [0x20000,+4K) [0x5000,+4K) */
    assert_int_equal(hv_ifd_maps_check_add(&m, 0x10000, 2 * K4), 0);
    hv_ifd_maps_add(&m, 0x10000, 2 * K4);
    assert_int_equal(hv_ifd_maps_check_add(&m, 0x20000, K4), 0);
    hv_ifd_maps_add(&m, 0x20000, K4);
    assert_int_equal(hv_ifd_maps_check_add(&m, 0x5000, K4), 0);
    hv_ifd_maps_add(&m, 0x5000, K4);
    assert_int_equal(m.n, 3);
    assert_int_equal(hv_ifd_maps_find(&m, 0, UINT64_MAX, &count, &span), 0);
    assert_true(count == 3 && span.start == 0x5000 && span.end == 0x20fff);
    /* overlaps: inside, across the start, across the end, covering */
    assert_int_equal(hv_ifd_maps_check_add(&m, 0x11000, K4), -EEXIST);
    assert_int_equal(hv_ifd_maps_check_add(&m, 0xf000, 2 * K4), -EEXIST);
    assert_int_equal(hv_ifd_maps_check_add(&m, 0x11000, 4 * K4), -EEXIST);
    assert_int_equal(hv_ifd_maps_check_add(&m, 0, 0x100000), -EEXIST);
    /* touching is not overlapping */
    assert_int_equal(hv_ifd_maps_check_add(&m, 0x12000, K4), 0);
    assert_int_equal(hv_ifd_maps_check_add(&m, 0xf000, K4), 0);
    assert_int_equal(hv_ifd_maps_check_add(&m, 0, 0), -EINVAL);
    assert_int_equal(hv_ifd_maps_check_add(&m, UINT64_MAX - K4 + 2, K4), -EINVAL);

    /* unmap: cutting the first or last mapping reached is refused */
    assert_int_equal(hv_ifd_maps_find(&m, 0x11000, K4, &count, &span), -EINVAL);
    assert_int_equal(hv_ifd_maps_find(&m, 0x5000, 0xc000, &count, &span), -EINVAL);
    assert_int_equal(hv_ifd_maps_find(&m, 0x0, 0x11000, &count, &span), -EINVAL);
    /* a hole: nothing */
    assert_int_equal(hv_ifd_maps_find(&m, 0x6000, 0xa000, &count, &span), 0);
    assert_int_equal(count, 0);
    /* two whole ones, with room around them */
    assert_int_equal(hv_ifd_maps_find(&m, 0x1000, 0x11000, &count, &span), 0);
    assert_true(count == 2 && span.start == 0x5000 && span.end == 0x11fff);
    hv_ifd_maps_remove(&m, 0x1000, 0x11000);
    assert_int_equal(m.n, 1);
    assert_int_equal(hv_ifd_maps_find(&m, 0, UINT64_MAX, &count, &span), 0);
    assert_true(count == 1 && span.start == 0x20000 && span.end == 0x20fff);
    assert_int_equal(hv_ifd_maps_check_add(&m, 0x10000, K4), 0);   /* free again */
    /* the limit */
    for (uint64_t i = 0; i < 4; i++) {
        assert_int_equal(hv_ifd_maps_check_add(&m, 0x100000 + i * K4, K4), 0);
        hv_ifd_maps_add(&m, 0x100000 + i * K4, K4);
    }
    assert_int_equal(hv_ifd_maps_check_add(&m, 0x200000, K4), -ENOSPC);
    assert_int_equal(hv_ifd_maps_find(&m, 0, UINT64_MAX, &count, &span), 0);
    assert_true(count == 5 && span.start == 0x20000 && span.end == 0x103fff);
    /* a range reaching the top of the space; then everything */
    hv_ifd_maps_remove(&m, 0x102000, UINT64_MAX - 0x102000 + 1);
    assert_int_equal(m.n, 3);
    hv_ifd_maps_remove(&m, 0, 0);
    assert_int_equal(m.n, 0);
    hv_ifd_maps_free(&m);
    assert_true(m.n == 0 && m.max == 5);
}

/* Against a plain bitmap of pages, many random maps and unmaps: the same
 * answers, and the same mappings afterwards. */
static void test_maps_against_model(void **state)
{
    (void)state;
    enum { PAGES = 512 };
    static int owner[PAGES];   /* 0: free, else the id of the mapping holding it */
    memset(owner, 0, sizeof(owner));
    struct hv_ifd_maps m = { .max = 100 };
    uint64_t rng = 88172645463325252ull;
    int next_id = 1, live = 0;
    for (int step = 0; step < 20000; step++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        uint64_t a = rng % PAGES, n = 1 + (rng >> 20) % 8;
        if (a + n > PAGES)
            n = PAGES - a;
        bool free = true;
        for (uint64_t p = a; p < a + n; p++)
            free &= owner[p] == 0;
        if ((rng >> 40) & 1) {
            int want = !free ? -EEXIST : live >= 100 ? -ENOSPC : 0;
            int r = hv_ifd_maps_check_add(&m, a * 4096, n * 4096);
            assert_int_equal(r, want);
            if (r == 0) {
                hv_ifd_maps_add(&m, a * 4096, n * 4096);
                for (uint64_t p = a; p < a + n; p++)
                    owner[p] = next_id;
                next_id++;
                live++;
            }
        } else {
            /* cut: the first or last page's owner reaches outside */
            bool cut = (owner[a] && a > 0 && owner[a - 1] == owner[a]) ||
                       (owner[a + n - 1] && a + n < PAGES && owner[a + n] == owner[a + n - 1]);
            uint32_t inside = 0, count = 0;
            for (uint64_t p = a; p < a + n; p++)
                inside += owner[p] && (p == 0 || owner[p - 1] != owner[p]);
            struct hv_iova_range span;
            int r = hv_ifd_maps_find(&m, a * 4096, n * 4096, &count, &span);
            assert_int_equal(r, cut ? -EINVAL : 0);
            if (r == 0) {
                assert_int_equal(count, inside);
                hv_ifd_maps_remove(&m, a * 4096, n * 4096);
                for (uint64_t p = a; p < a + n; p++)
                    owner[p] = 0;
                live -= (int)inside;
            }
        }
        assert_int_equal(m.n, (uint32_t)live);
    }
    hv_ifd_maps_free(&m);
}

/* A /dev/iommu that is no iommufd: the IOAS allocation fails, named, and
 * nothing stays open. */
static void test_not_an_iommufd(void **state)
{
    (void)state;
    char path[] = "/tmp/vub-not-iommufd-XXXXXX";
    int f = mkstemp(path);
    assert_true(f >= 0);
    close(f);
    struct hv_open_opts o = { .dev_iommu = path };
    struct hv_iommu *io = (struct hv_iommu *)1;
    struct vub_err e = { "" };
    int fds = tu_count_fds();
    assert_int_equal(hv_iommufd_iommu_new(&o, &io, &e), -ENOTTY);
    assert_null(io);
    assert_non_null(strstr(e.msg, "IOMMU_IOAS_ALLOC on /tmp/vub-not-iommufd-"));
    assert_int_equal(tu_count_fds(), fds);
    /* the context through the group file: the same open path */
    io = (struct hv_iommu *)1;
    assert_int_equal(hv_iommufd_group_iommu_new(&o, &io, &e), -ENOTTY);
    assert_null(io);
    assert_non_null(strstr(e.msg, "IOMMU_IOAS_ALLOC on /tmp/vub-not-iommufd-"));
    assert_int_equal(tu_count_fds(), fds);
    unlink(path);
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
    io = (struct hv_iommu *)1;
    assert_int_equal(hv_iommufd_group_iommu_new(NULL, &io, &e), -ENOENT);
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
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_maps_against_model),
        cmocka_unit_test(test_not_an_iommufd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
