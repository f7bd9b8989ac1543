/* SPDX-License-Identifier: MIT */
/*
 * The kernel back end's open path, as far as it can be driven without VFIO
 * hardware: sysfs refusals, missing and unreadable /dev/vfio nodes, and a
 * "container" that is not one. Every failure must name the device, the step
 * and the cause, and leave no fd behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <sys/wait.h>

#include "fake_sysfs.h"
#include "hv.h"
#include "testutil.h"

#define A0 "0000:01:00.0"

struct fixture {
    struct fake_sysfs fs;
    char devdir[200];
    struct hv_open_opts opts;
};

static int setup(void **state)
{
    static struct fixture fx;
    if (fake_sysfs_init(&fx.fs) < 0)
        return -1;
    fs_add_dev(&fx.fs, A0, "vfio-pci", 7, 0x1234, 0x11e8, 0x00ff00);
    fs_path(&fx.fs, fx.devdir, sizeof(fx.devdir), "dev-vfio");
    mkdir(fx.devdir, 0755);
    fx.opts.sysfs = fx.fs.root;
    fx.opts.dev_vfio = fx.devdir;
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    fake_sysfs_destroy(&fx->fs);
    return 0;
}

/* Open and check the failure leaves nothing open and no device. */
static int open_fails(struct fixture *fx, const char *addr, struct vub_err *e)
{
    struct hv_device *d = (struct hv_device *)1;
    int fds = tu_count_fds();
    memset(e, 0, sizeof(*e));
    int r = hv_type1_open(addr, &fx->opts, &d, e);
    assert_true(r < 0);
    assert_null(d);
    assert_int_equal(tu_count_fds(), fds);
    return r;
}

static void test_bad_address(void **state)
{
    struct vub_err e;
    assert_int_equal(open_fails(*state, "1:0.0", &e), -EINVAL);
    tu_assert_msg(e, "'1:0.0' is not a PCI address");
}

static void test_sysfs_refusals(void **state)
{
    struct fixture *fx = *state;
    struct vub_err e;

    fs_add_dev(&fx->fs, "0000:02:00.0", "nvme", 8, 0x1b36, 0x0010, 0x010802);
    assert_int_equal(open_fails(fx, "0000:02:00.0", &e), -EBUSY);
    assert_string_equal(e.msg, "0000:02:00.0 is bound to nvme, not vfio-pci");

    fs_add_dev(&fx->fs, "0000:01:00.1", "igb", 7, 0x8086, 0x10c9, 0x020000);
    assert_int_equal(open_fails(fx, A0, &e), -EBUSY);
    tu_assert_msg(e, "group 7 is not viable: 0000:01:00.1 is bound to igb");

    assert_int_equal(open_fails(fx, "0000:05:00.0", &e), -ENODEV);
    tu_assert_msg(e, "no PCI function 0000:05:00.0");
}

static void test_no_group_node(void **state)
{
    struct fixture *fx = *state;
    struct vub_err e;
    char path[PATH_MAX + 8];
    assert_int_equal(open_fails(fx, "01:00.0", &e), -ENOENT);
    snprintf(path, sizeof(path), "%s/7 (group 7)", fx->devdir);
    tu_assert_msg(e, A0);
    tu_assert_msg(e, "cannot open ");
    tu_assert_msg(e, path);
}

static void test_no_container(void **state)
{
    struct fixture *fx = *state;
    struct vub_err e;
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/7", fx->devdir);
    fs_write_file(path, "");
    assert_int_equal(open_fails(fx, A0, &e), -ENOENT);
    snprintf(path, sizeof(path), "cannot open the VFIO container %s/vfio", fx->devdir);
    tu_assert_msg(e, A0 ": ");
    tu_assert_msg(e, path);
}

static void test_container_not_vfio(void **state)
{
    struct fixture *fx = *state;
    struct vub_err e;
    char path[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/7", fx->devdir);
    fs_write_file(path, "");
    snprintf(path, sizeof(path), "%s/vfio", fx->devdir);
    fs_write_file(path, "");
    assert_int_equal(open_fails(fx, A0, &e), -ENOTTY);
    snprintf(path, sizeof(path), "VFIO_GET_API_VERSION on %s/vfio failed", fx->devdir);
    tu_assert_msg(e, A0 ": ");
    tu_assert_msg(e, path);
}

/* Run hv_type1_open in a child that cannot override file permissions (an
 * unprivileged uid when we are root); return its result and message. */
static int open_unprivileged(struct fixture *fx, struct vub_err *e)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        if (geteuid() == 0 &&
            (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0))
            _exit(3);
        struct hv_device *d = NULL;
        struct vub_err ce = { "" };
        int r = hv_type1_open(A0, &fx->opts, &d, &ce);
        if (write(p[1], &r, sizeof(r)) != sizeof(r) || write(p[1], &ce, sizeof(ce)) != sizeof(ce))
            _exit(4);
        _exit(d == NULL ? 0 : 5);
    }
    close(p[1]);
    int r = 0, status = 0;
    assert_int_equal(read(p[0], &r, sizeof(r)), sizeof(r));
    assert_int_equal(read(p[0], e, sizeof(*e)), sizeof(*e));
    close(p[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    return r;
}

static void test_permission_denied_group(void **state)
{
    struct fixture *fx = *state;
    struct vub_err e;
    char path[PATH_MAX + 8], want[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/7", fx->devdir);
    fs_write_file(path, "");
    chmod(path, 0600);
    if (geteuid() != 0)
        chmod(path, 0);
    assert_int_equal(open_unprivileged(fx, &e), -EACCES);
    snprintf(want, sizeof(want), A0 ": permission denied opening %s/7", fx->devdir);
    tu_assert_msg(e, want);
}

static void test_permission_denied_container(void **state)
{
    struct fixture *fx = *state;
    struct vub_err e;
    char path[PATH_MAX + 8], want[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/7", fx->devdir);
    fs_write_file(path, "");
    chmod(path, 0666);
    snprintf(path, sizeof(path), "%s/vfio", fx->devdir);
    fs_write_file(path, "");
    chmod(path, geteuid() == 0 ? 0600 : 0);
    assert_int_equal(open_unprivileged(fx, &e), -EACCES);
    snprintf(want, sizeof(want), A0 ": permission denied opening %s/vfio", fx->devdir);
    tu_assert_msg(e, want);
}

/* A type1 IOMMU context that several devices could share: every failed
 * attach is undone inside it (group file and a container it opened closed
 * again, no reference kept), so the context stays usable and the next
 * attempt goes through the same steps. */
static void test_context_failed_attach_unwinds(void **state)
{
    struct fixture *fx = *state;
    struct hv_iommu *io = NULL;
    struct hv_device *d = (struct hv_device *)1;
    struct vub_err e = { "" };
    char path[PATH_MAX + 8];
    int fds = tu_count_fds();

    assert_int_equal(hv_type1_iommu_new(&fx->opts, &io, &e), 0);
    assert_int_equal(tu_count_fds(), fds);   /* nothing opened before an attach */
    assert_int_equal(hv_vfio_open(io, A0, &d, &e), -ENOENT);
    assert_null(d);
    tu_assert_msg(e, "(group 7): no such file");
    assert_int_equal(tu_count_fds(), fds);

    snprintf(path, sizeof(path), "%s/7", fx->devdir);
    fs_write_file(path, "");
    assert_int_equal(hv_vfio_open(io, A0, &d, &e), -ENOENT);
    tu_assert_msg(e, "cannot open the VFIO container");
    assert_int_equal(tu_count_fds(), fds);   /* the group file closed again */

    snprintf(path, sizeof(path), "%s/vfio", fx->devdir);
    fs_write_file(path, "");
    assert_int_equal(hv_vfio_open(io, A0, &d, &e), -ENOTTY);
    tu_assert_msg(e, "VFIO_GET_API_VERSION");
    assert_int_equal(tu_count_fds(), fds);   /* and the container it opened */
    assert_int_equal(io->refs, 1);
    assert_string_equal(io->ops->name, "type1");
    hv_iommu_put(io);
    assert_int_equal(tu_count_fds(), fds);
}

/* The flag rules the back end keeps itself, before any ioctl: with no
 * container yet, a call that passes them reaches the kernel (-EBADF on fd
 * -1), one that breaks them is refused with -EINVAL first. */
static void test_dma_flag_rules(void **state)
{
    struct fixture *fx = *state;
    struct hv_iommu *io = NULL;
    struct vub_err e = { "" };
    static char page[4096];

    assert_int_equal(hv_type1_iommu_new(&fx->opts, &io, &e), 0);
    const struct hv_iommu_ops *o = io->ops;
    assert_int_equal(o->dma_map(io, 0x100000, page, sizeof(page), HV_DMA_READ | HV_DMA_WRITE),
                     -EBADF);
    assert_int_equal(o->dma_map(io, 0x100000, page, sizeof(page), HV_DMA_READ | 4), -EINVAL);
    assert_int_equal(o->dma_map(io, 0x100000, page, sizeof(page), 1u << 31), -EINVAL);
    assert_int_equal(o->dma_unmap(io, 0x100000, sizeof(page), 0), -EBADF);
    assert_int_equal(o->dma_unmap(io, 0x100000, sizeof(page), 4), -EINVAL);
    assert_int_equal(o->dma_unmap(io, 0x100000, 0, HV_DMA_UNMAP_ALL), -EINVAL);
    assert_int_equal(o->dma_unmap(io, 0, sizeof(page), HV_DMA_UNMAP_ALL), -EINVAL);
    hv_iommu_put(io);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sysfs_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_group_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_container, setup, teardown),
        cmocka_unit_test_setup_teardown(test_container_not_vfio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permission_denied_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permission_denied_container, setup, teardown),
        cmocka_unit_test_setup_teardown(test_context_failed_attach_unwinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dma_flag_rules, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
