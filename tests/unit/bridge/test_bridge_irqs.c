/* SPDX-License-Identifier: MIT */
/* SET_IRQS: eventfds straight to the device, QEMU's chunks merged. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "testutil.h"

#define TRIG_FD   (VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER)
#define TRIG_NONE (VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_TRIGGER)
#define TRIG_BOOL (VU_IRQ_SET_DATA_BOOL | VU_IRQ_SET_ACTION_TRIGGER)
#define MSIX VU_PCI_MSIX_IRQ_INDEX
#define NVEC 65

struct ctx {
    struct th t;
    struct vu_client *c;
    int efd[NVEC];
};

static int setup(void **state)
{
    struct ctx *x = malloc(sizeof(*x));
    th_init_nvme(&x->t);
    th_start(&x->t);
    x->c = th_connect(&x->t, true);
    for (int i = 0; i < NVEC; i++)
        x->efd[i] = th_eventfd();
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct ctx *x = *state;
    vu_client_close(x->c);
    th_wait_closed(&x->t, 1);
    for (int i = 0; i < NVEC; i++)
        close(x->efd[i]);
    th_stop(&x->t);
    free(x);
    return 0;
}

/* Send fds [start, start+count) of x->efd in chunks of at most 16. */
static void enable_chunked(struct ctx *x, uint32_t start, uint32_t count)
{
    for (uint32_t s = start; s < start + count; s += 16) {
        uint32_t n = start + count - s < 16 ? start + count - s : 16;
        assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, MSIX, s, n, &x->efd[s], n, NULL), 0);
    }
}

/* Fire vector v: whether the sim signalled and our eventfd saw it. */
static bool fires(struct ctx *x, uint32_t v)
{
    int r = hv_sim_fire_irq(x->t.hv, MSIX, v);
    assert_true(r >= 0);
    uint64_t got = th_eventfd_read(x->efd[v]);
    assert_int_equal(r == 1, got == 1);
    return got == 1;
}

static void test_chunk_merge_65(void **state)
{
    struct ctx *x = *state;
    int base = tu_count_fds();
    enable_chunked(x, 0, NVEC);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], NVEC);
    assert_true(fires(x, 40));
    /* only vector 40's eventfd saw it */
    for (int i = 0; i < NVEC; i++)
        assert_int_equal(th_eventfd_read(x->efd[i]), 0);
    /* vectors of the first and of the last chunk survived the re-enables */
    assert_true(fires(x, 0));
    assert_true(fires(x, 15));
    assert_true(fires(x, 64));
    assert_true(hv_sim_irq_fd(x->t.hv, MSIX, 40) >= 0);
    /* disable: every reference goes, in the sim and in the bridge */
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_NONE, MSIX, 0, 0, NULL, 0, NULL), 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).open_irq_fds, 0);
    assert_false(fires(x, 40));
    assert_int_equal(tu_count_fds(), base);
}

static void test_later_vector_extends_set(void **state)
{
    struct ctx *x = *state;
    enable_chunked(x, 0, 16);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 16);
    /* one more vector far beyond: the set grows to 31 and keeps 0..15 */
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, MSIX, 30, 1, &x->efd[30], 1, NULL), 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 31);
    assert_true(fires(x, 30));
    assert_true(fires(x, 7));
    assert_false(fires(x, 20));     /* never given an eventfd */
    /* a vector inside the set is updated in place */
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, MSIX, 20, 1, &x->efd[20], 1, NULL), 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 31);
    assert_true(fires(x, 20));
}

static void test_msix_on_without_vectors(void **state)
{
    struct ctx *x = *state;
    /* QEMU: "MSI-X on, no vector yet" */
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, MSIX, 0, 1, NULL, 0, NULL), 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 1);
    assert_false(fires(x, 0));
    /* then with NORESIZE: disable and the whole array in chunks */
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_NONE, MSIX, 0, 0, NULL, 0, NULL), 0);
    enable_chunked(x, 0, 40);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 40);
    assert_true(fires(x, 39));
}

static void test_deassign_and_runs(void **state)
{
    struct ctx *x = *state;
    /* QEMU splits into runs of valid and invalid fds */
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, MSIX, 0, 4, &x->efd[0], 4, NULL), 0);
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, MSIX, 4, 6, NULL, 0, NULL), 0);
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, MSIX, 10, 1, &x->efd[10], 1, NULL), 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 11);
    assert_true(fires(x, 2));
    assert_false(fires(x, 7));
    assert_true(fires(x, 10));
    /* de-assign one vector: no fds = -1 */
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, MSIX, 2, 1, NULL, 0, NULL), 0);
    assert_false(fires(x, 2));
    assert_true(fires(x, 3));
    assert_int_equal(hv_sim_irq_fd(x->t.hv, MSIX, 2), -1);
}

static void test_bool_and_none_trigger(void **state)
{
    struct ctx *x = *state;
    enable_chunked(x, 0, 4);
    const uint8_t b[4] = { 0, 1, 0, 1 };
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_BOOL, MSIX, 0, 4, NULL, 0, b), 0);
    assert_int_equal(th_eventfd_read(x->efd[0]), 0);
    assert_int_equal(th_eventfd_read(x->efd[1]), 1);
    assert_int_equal(th_eventfd_read(x->efd[2]), 0);
    assert_int_equal(th_eventfd_read(x->efd[3]), 1);
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_NONE, MSIX, 2, 1, NULL, 0, NULL), 0);
    assert_int_equal(th_eventfd_read(x->efd[2]), 1);
}

static void test_intx(void **state)
{
    struct ctx *x = *state;
    uint32_t I = VU_PCI_INTX_IRQ_INDEX;
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, I, 0, 1, &x->efd[0], 1, NULL), 0);
    assert_int_equal(hv_sim_fire_irq(x->t.hv, I, 0), 1);
    assert_int_equal(th_eventfd_read(x->efd[0]), 1);
    assert_true(hv_sim_stats_of(x->t.hv).intx_masked);               /* automasked */
    assert_int_equal(vu_client_set_irqs(x->c, VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_UNMASK, I,
                                        0, 1, NULL, 0, NULL), 0);
    assert_false(hv_sim_stats_of(x->t.hv).intx_masked);
    assert_int_equal(vu_client_set_irqs(x->c, VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_MASK, I,
                                        0, 1, NULL, 0, NULL), 0);
    assert_true(hv_sim_stats_of(x->t.hv).intx_masked);
    const uint8_t one = 1;
    assert_int_equal(vu_client_set_irqs(x->c, VU_IRQ_SET_DATA_BOOL | VU_IRQ_SET_ACTION_UNMASK, I,
                                        0, 1, NULL, 0, &one), 0);
    assert_false(hv_sim_stats_of(x->t.hv).intx_masked);
    /* the resample eventfd (KVM's) as an unmask eventfd */
    assert_int_equal(vu_client_set_irqs(x->c, VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_UNMASK,
                                        I, 0, 1, &x->efd[1], 1, NULL), 0);
    assert_int_equal(hv_sim_fire_irq(x->t.hv, I, 0), 1);
    assert_int_equal(th_eventfd_read(x->efd[0]), 1);
    assert_true(hv_sim_stats_of(x->t.hv).intx_masked);
    uint64_t v = 1;
    assert_int_equal(write(x->efd[1], &v, sizeof(v)), (ssize_t)sizeof(v));   /* "EOI" */
    /* the sim notices the signalled unmask eventfd at its next SET_IRQS
     * (the kernel at once); de-assigning it does not unmask by itself */
    assert_int_equal(vu_client_set_irqs(x->c, VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_UNMASK,
                                        I, 0, 1, NULL, 0, NULL), 0);
    assert_false(hv_sim_stats_of(x->t.hv).intx_masked);
    /* disable */
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_NONE, I, 0, 0, NULL, 0, NULL), 0);
    assert_int_equal(hv_sim_fire_irq(x->t.hv, I, 0), 0);
}

static void test_err_req(void **state)
{
    struct ctx *x = *state;
    uint32_t E = VU_PCI_ERR_IRQ_INDEX;
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, E, 0, 1, &x->efd[0], 1, NULL), 0);
    assert_int_equal(hv_sim_fire_irq(x->t.hv, E, 0), 1);
    assert_int_equal(th_eventfd_read(x->efd[0]), 1);
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, E, 0, 2, &x->efd[0], 2, NULL), -EINVAL);
    /* torn down with a no-fd message, as QEMU does */
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, E, 0, 1, NULL, 0, NULL), 0);
    assert_int_equal(hv_sim_fire_irq(x->t.hv, E, 0), 0);
}

static void test_set_irqs_errors(void **state)
{
    struct ctx *x = *state;
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, 5, 0, 1, &x->efd[0], 1, NULL), -EINVAL);
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, MSIX, 60, 6, &x->efd[0], 6, NULL), -EINVAL);
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, MSIX, UINT32_MAX, 1, NULL, 0, NULL),
                     -EINVAL);
    /* the raw message: 2 fds for count 3, two data bits, no action */
    struct vu_irq_set s = { .argsz = 20, .flags = TRIG_FD, .index = MSIX, .start = 0, .count = 3 };
    assert_int_equal(th_call(x->c, VU_CMD_DEVICE_SET_IRQS, 0, &s, sizeof(s), x->efd, 2, NULL),
                     -EINVAL);
    s.flags = VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER;
    assert_int_equal(th_call(x->c, VU_CMD_DEVICE_SET_IRQS, 0, &s, sizeof(s), NULL, 0, NULL),
                     -EINVAL);
    s.flags = VU_IRQ_SET_DATA_NONE;
    assert_int_equal(th_call(x->c, VU_CMD_DEVICE_SET_IRQS, 0, &s, sizeof(s), NULL, 0, NULL),
                     -EINVAL);
    /* MSI while MSI-X is on: refused by the device, MSI-X untouched */
    enable_chunked(x, 0, 16);
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, VU_PCI_MSI_IRQ_INDEX, 0, 1, &x->efd[20], 1,
                                        NULL), -EINVAL);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 16);
    assert_true(fires(x, 9));
    /* a failed extension keeps the enabled set working */
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, MSIX, 60, 6, &x->efd[0], 6, NULL), -EINVAL);
    assert_true(fires(x, 9));
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 16);
}

/* ---- a host that cannot give the device as many vectors as asked -------------------- */

/* The kernel can fail an MSI-X enable for the host's reasons (no interrupt
 * vectors left: pci_alloc_irq_vectors() -ENOSPC) while a smaller set works.
 * The sim's ops with set_irqs wrapped: an enable of more than g_vec_limit
 * vectors fails like that. */
static const struct hv_device_ops *g_sim_ops;
static struct hv_device_ops g_limited_ops;
static uint32_t g_vec_limit;

static int limited_set_irqs(struct hv_device *d, uint32_t flags, uint32_t index, uint32_t start,
                            uint32_t count, const void *data)
{
    if (index == MSIX && (flags & VU_IRQ_SET_DATA_EVENTFD) && start + count > g_vec_limit)
        return -ENOSPC;
    return g_sim_ops->set_irqs(d, flags, index, start, count, data);
}

/* Extending an enabled NORESIZE set disables it and enables the larger set;
 * when the larger one fails the previous set must be put back (irq.c's
 * restore), with the client's eventfds, not left disabled. */
static void test_failed_extension_restores_the_set(void **state)
{
    struct ctx *x = *state;
    enable_chunked(x, 0, 16);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 16);

    g_sim_ops = x->t.hv->ops;
    g_limited_ops = *g_sim_ops;
    g_limited_ops.set_irqs = limited_set_irqs;
    g_vec_limit = 16;
    x->t.hv->ops = &g_limited_ops;   /* the loop is idle: no message in flight */

    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, MSIX, 30, 1, &x->efd[30], 1, NULL),
                     -ENOSPC);
    x->t.hv->ops = g_sim_ops;        /* the sim's test hooks want their own ops */
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 16);
    for (uint32_t v = 0; v < 16; v++)
        assert_true(fires(x, v));
    assert_int_equal(hv_sim_irq_fd(x->t.hv, MSIX, 30), -1);

    /* the shadow still holds the 16: a later extension the host can serve
     * carries them along */
    assert_int_equal(vu_client_set_irqs(x->c, TRIG_FD, MSIX, 20, 1, &x->efd[20], 1, NULL), 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 21);
    assert_true(fires(x, 3));
    assert_true(fires(x, 20));
    assert_false(fires(x, 17));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chunk_merge_65, setup, teardown),
        cmocka_unit_test_setup_teardown(test_later_vector_extends_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msix_on_without_vectors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deassign_and_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bool_and_none_trigger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_err_req, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_irqs_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_extension_restores_the_set, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
