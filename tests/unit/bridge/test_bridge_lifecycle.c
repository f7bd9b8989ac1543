/* SPDX-License-Identifier: MIT */
/* Client lifecycle: whatever way a client goes, the device is quiesced and
 * the next client finds it as new; one client at a time. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "edu_regs.h"
#include "harness.h"
#include "testutil.h"

#define RW (VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE)
#define TRIG_FD (VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER)
#define MSIX VU_PCI_MSIX_IRQ_INDEX
#define NVEC 65

struct ctx {
    struct th t;
    int mfd;
    int efd[NVEC];
    int base_fds;     /* process fds with the test's own memfd/eventfds open */
};

static int setup_with(void **state, void (*tweak)(struct th *))
{
    struct ctx *x = malloc(sizeof(*x));
    th_init_nvme(&x->t);
    if (tweak)
        tweak(&x->t);
    th_start(&x->t);
    x->mfd = th_memfd(8u << 20);
    for (int i = 0; i < NVEC; i++)
        x->efd[i] = th_eventfd();
    x->base_fds = tu_count_fds();
    *state = x;
    return 0;
}

static int setup(void **state) { return setup_with(state, NULL); }

static int teardown(void **state)
{
    struct ctx *x = *state;
    th_stop(&x->t);
    close(x->mfd);
    for (int i = 0; i < NVEC; i++)
        close(x->efd[i]);
    free(x);
    return 0;
}

/* A client that set up everything a VM would: DMA (fd-backed and fd-less),
 * 65 MSI-X vectors, the ERR eventfd, bus mastering. */
static struct vu_client *busy_client(struct ctx *x)
{
    struct vu_client *c = th_connect(&x->t, true);
    assert_int_equal(vu_client_dma_map(c, 0, 4u << 20, x->mfd, 0, RW), 0);
    assert_int_equal(vu_client_dma_map(c, 0x100000000ull, 4u << 20, x->mfd, 4u << 20, RW), 0);
    assert_int_equal(vu_client_dma_map(c, 0xfffc0000, 0x40000, -1, 0, VU_DMA_MAP_FLAG_READ), 0);
    for (uint32_t s = 0; s < NVEC; s += 16) {
        uint32_t n = NVEC - s < 16 ? NVEC - s : 16;
        assert_int_equal(vu_client_set_irqs(c, TRIG_FD, MSIX, s, n, &x->efd[s], n, NULL), 0);
    }
    assert_int_equal(vu_client_set_irqs(c, TRIG_FD, VU_PCI_ERR_IRQ_INDEX, 0, 1, &x->efd[0], 1,
                                        NULL), 0);
    uint16_t cmd = 0x0006;   /* MEM | MASTER */
    assert_int_equal(vu_client_region_write(c, 7, 4, &cmd, 2, false), 2);
    assert_int_equal(hv_sim_stats_of(x->t.hv).dma_maps, 2);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], NVEC);
    assert_true(hv_sim_stats_of(x->t.hv).open_irq_fds >= NVEC + 1);
    assert_true(hv_sim_stats_of(x->t.hv).command & 4);
    assert_true(tu_count_fds() > x->base_fds);
    return c;
}

/* The device is as new and nothing of the client is held any more. */
static void assert_quiesced(struct ctx *x, unsigned resets_before)
{
    assert_int_equal(hv_sim_stats_of(x->t.hv).dma_maps, 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).dma_bytes, 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).open_irq_fds, 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).resets, resets_before + 1);
    assert_false(hv_sim_stats_of(x->t.hv).command & 4);
    assert_int_equal(tu_count_fds(), x->base_fds);
    for (int i = 0; i < NVEC; i++)
        assert_int_equal(hv_sim_fire_irq(x->t.hv, MSIX, (uint32_t)i) > 0, 0);
}

/* The next client gets a working device and can set up the same again. */
static void next_client_works(struct ctx *x)
{
    unsigned closed = 0;
    struct br_server_stats st;
    br_server_get_stats(x->t.srv, &st);
    closed = st.closed;
    struct vu_client *c = busy_client(x);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);
    uint32_t id = 0;
    assert_int_equal(vu_client_region_read(c, 0, 0, &id, 4), 4);
    assert_int_equal(id, EDU_ID_VALUE);
    vu_client_close(c);
    th_wait_closed(&x->t, closed + 1);
}

static void test_client_vanishes(void **state)
{
    struct ctx *x = *state;
    unsigned resets = hv_sim_stats_of(x->t.hv).resets;
    struct vu_client *c = busy_client(x);
    vu_client_close(c);              /* gone, mid-conversation */
    th_wait_closed(&x->t, 1);
    assert_quiesced(x, resets);
    next_client_works(x);
}

static void test_protocol_break_bad_header(void **state)
{
    struct ctx *x = *state;
    unsigned resets = hv_sim_stats_of(x->t.hv).resets;
    struct vu_client *c = busy_client(x);
    struct vu_hdr h = { .msg_id = 7, .cmd = VU_CMD_DEVICE_GET_INFO, .msg_size = 16, .flags = 3 };
    struct vu_msg reply;
    int r = vu_client_raw(c, &h, sizeof(h), NULL, 0, true, &reply);
    assert_true(r < 0);              /* no reply: the bridge hung up */
    th_wait_closed(&x->t, 1);
    vu_client_close(c);
    assert_quiesced(x, resets);
    next_client_works(x);
}

static void test_protocol_break_eof_mid_message(void **state)
{
    struct ctx *x = *state;
    unsigned resets = hv_sim_stats_of(x->t.hv).resets;
    struct vu_client *c = busy_client(x);
    /* a REGION_WRITE announcing 100 bytes of which 40 arrive, then EOF */
    uint8_t part[40] = { 0 };
    struct vu_hdr h = { .msg_id = 9, .cmd = VU_CMD_REGION_WRITE, .msg_size = 100 };
    memcpy(part, &h, sizeof(h));
    assert_int_equal(vu_client_raw(c, part, sizeof(part), NULL, 0, false, NULL), 0);
    vu_client_close(c);
    th_wait_closed(&x->t, 1);
    assert_quiesced(x, resets);
    next_client_works(x);
}

static void test_protocol_break_oversized(void **state)
{
    struct ctx *x = *state;
    unsigned resets = hv_sim_stats_of(x->t.hv).resets;
    struct vu_client *c = busy_client(x);
    struct vu_hdr h = { .msg_id = 9, .cmd = VU_CMD_REGION_WRITE, .msg_size = 0x7fffffff };
    struct vu_msg reply;
    assert_true(vu_client_raw(c, &h, sizeof(h), NULL, 0, true, &reply) < 0);
    th_wait_closed(&x->t, 1);
    vu_client_close(c);
    assert_quiesced(x, resets);
}

static void short_timeout(struct th *t) { t->cfg.io_timeout_ms = 100; }
static int setup_short_timeout(void **state) { return setup_with(state, short_timeout); }

static void test_stalled_client_is_dropped(void **state)
{
    struct ctx *x = *state;
    unsigned resets = hv_sim_stats_of(x->t.hv).resets;
    struct vu_client *c = busy_client(x);
    /* half a header, then nothing: the single-threaded loop must not hang */
    struct vu_hdr h = { .msg_id = 9, .cmd = VU_CMD_DEVICE_GET_INFO, .msg_size = 32 };
    assert_int_equal(vu_client_raw(c, &h, 8, NULL, 0, false, NULL), 0);
    th_wait_closed(&x->t, 1);
    vu_client_close(c);              /* our end of the socket (the bridge's is gone) */
    assert_quiesced(x, resets);
    next_client_works(x);
}

static void test_command_register_restored(void **state)
{
    struct ctx *x = *state;
    uint16_t start = hv_sim_stats_of(x->t.hv).command;
    assert_true(start & 2);                         /* memory decoding on at start */
    struct vu_client *c = th_connect(&x->t, true);
    uint16_t off = 0x0400;                          /* decoding off, INTx disabled */
    assert_int_equal(vu_client_region_write(c, 7, 4, &off, 2, false), 2);
    uint32_t id;
    assert_int_equal(vu_client_region_read(c, 0, 0, &id, 4), -EIO);
    vu_client_close(c);
    th_wait_closed(&x->t, 1);
    /* the next client finds the device as the bridge found it */
    assert_int_equal(hv_sim_stats_of(x->t.hv).command, start & ~4u);
    c = th_connect(&x->t, true);
    assert_int_equal(vu_client_region_read(c, 0, 0, &id, 4), 4);
    assert_int_equal(id, EDU_ID_VALUE);
    vu_client_close(c);
}

static void test_second_client_refused(void **state)
{
    struct ctx *x = *state;
    struct vu_client *a = busy_client(x);
    struct vu_client *b = th_connect(&x->t, false);
    th_wait_refused(&x->t, 1);
    assert_true(vu_client_negotiate(b, NULL, NULL) < 0);   /* closed on it */
    vu_client_close(b);
    /* the first client is undisturbed */
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(a, &di), 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).dma_maps, 2);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], NVEC);
    uint32_t id = 0;
    assert_int_equal(vu_client_region_read(a, 0, 0, &id, 4), 4);
    assert_int_equal(id, EDU_ID_VALUE);
    struct br_server_stats st;
    br_server_get_stats(x->t.srv, &st);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.closed, 0);
    assert_true(st.connected);
    vu_client_close(a);
    th_wait_closed(&x->t, 1);
    /* now a new client is served */
    next_client_works(x);
}

/* A client that closes and connects again at once is served, whatever the
 * server had read of the old connection: 200 cycles of connect, close
 * (half of them after half a header, a quarter right after VERSION),
 * connect again and negotiate, each new connection accepted while the old
 * one may still be the session. */
static void test_reconnect_at_once(void **state)
{
    struct ctx *x = *state;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    assert_true(strlen(x->t.path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, x->t.path, strlen(x->t.path) + 1);
    unsigned failed = 0;
    for (int i = 0; i < 200; i++) {
        if (i % 4 == 2) {
            /* closes right after VERSION (its session negotiated) */
            struct vu_client *v = th_connect(&x->t, true);
            vu_client_close(v);
        } else {
            int raw = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            assert_true(raw >= 0);
            assert_int_equal(connect(raw, (struct sockaddr *)&sa, sizeof(sa)), 0);
            if (i & 1) {
                uint8_t half[VU_HDR_SIZE / 2] = { 1, 0, VU_CMD_VERSION, 0 };
                assert_int_equal(write(raw, half, sizeof(half)), (ssize_t)sizeof(half));
            }
            close(raw);
        }
        struct vu_client *c = NULL;
        assert_int_equal(vu_client_connect(x->t.path, &c, NULL), 0);
        vu_client_set_timeout(c, 10000);
        if (vu_client_negotiate(c, NULL, NULL) < 0)
            failed++;
        vu_client_close(c);
    }
    assert_int_equal(failed, 0);
    th_wait_closed(&x->t, 400);
    struct br_server_stats st;
    br_server_get_stats(x->t.srv, &st);
    assert_int_equal(st.refused, 0);
    assert_int_equal(st.accepted, 400);
    /* and a live client still keeps the device: the rule for a second one */
    struct vu_client *a = th_connect(&x->t, true);
    struct vu_client *b = th_connect(&x->t, false);
    th_wait_refused(&x->t, 1);
    assert_true(vu_client_negotiate(b, NULL, NULL) < 0);
    vu_client_close(b);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(a, &di), 0);
    vu_client_close(a);
}

static void test_probe_connection_leaves_device_alone(void **state)
{
    struct ctx *x = *state;
    unsigned resets = hv_sim_stats_of(x->t.hv).resets;
    struct vu_client *c = th_connect(&x->t, false);   /* never says VERSION */
    vu_client_close(c);
    th_wait_closed(&x->t, 1);
    assert_int_equal(hv_sim_stats_of(x->t.hv).resets, resets);
}

static void test_shutdown_quiesces(void **state)
{
    struct ctx *x = *state;
    unsigned resets = hv_sim_stats_of(x->t.hv).resets;
    struct vu_client *c = busy_client(x);
    th_stop_loop(&x->t);             /* like SIGTERM */
    /* the client sees the bridge go */
    struct vu_device_info di;
    assert_true(vu_client_get_info(c, &di) < 0);
    vu_client_close(c);
    assert_quiesced(x, resets);
}

static void reserve_req(struct th *t) { t->reserved_irqs = 1u << VU_PCI_REQ_IRQ_INDEX; }
static int setup_reserved_req(void **state) { return setup_with(state, reserve_req); }

static void test_reserved_irq_survives_sessions(void **state)
{
    struct ctx *x = *state;
    const uint32_t REQ = VU_PCI_REQ_IRQ_INDEX;
    /* the bridge's own request eventfd, armed as the device watch does */
    int mine = th_eventfd();
    int32_t fd32 = mine;
    assert_int_equal(hv_set_irqs(x->t.hv, TRIG_FD, REQ, 0, 1, &fd32), 0);

    struct vu_client *c = busy_client(x);
    struct vu_irq_info ii;
    assert_int_equal(vu_client_get_irq_info(c, REQ, &ii), 0);
    assert_int_equal(ii.count, 0);                      /* hidden from the client */
    assert_int_equal(vu_client_set_irqs(c, TRIG_FD, REQ, 0, 1, &x->efd[1], 1, NULL), -EINVAL);
    assert_int_equal(vu_client_set_irqs(c, VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_TRIGGER, REQ,
                                        0, 0, NULL, 0, NULL), 0);
    assert_int_equal(hv_sim_fire_irq(x->t.hv, REQ, 0), 1);
    assert_int_equal(th_eventfd_read(mine), 1);
    vu_client_close(c);
    th_wait_closed(&x->t, 1);
    /* the session's quiesce left it armed */
    assert_int_equal(hv_sim_fire_irq(x->t.hv, REQ, 0), 1);
    assert_int_equal(th_eventfd_read(mine), 1);
    assert_int_equal(hv_sim_stats_of(x->t.hv).dma_maps, 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).irq_enabled[MSIX], 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).open_irq_fds, 1);
    fd32 = -1;
    assert_int_equal(hv_set_irqs(x->t.hv, TRIG_FD, REQ, 0, 1, &fd32), 0);
    close(mine);
}

static void not_me(struct th *t)
{
    t->cfg.allow_uids[0] = 4242;
    t->cfg.n_allow_uids = 1;
}
static int setup_not_me(void **state) { return setup_with(state, not_me); }

static void test_peer_not_allowed(void **state)
{
    struct ctx *x = *state;
    if (getuid() == 4242)
        skip();
    struct vu_client *c = th_connect(&x->t, false);
    th_wait_refused(&x->t, 1);
    assert_true(vu_client_negotiate(c, NULL, NULL) < 0);
    vu_client_close(c);
    struct br_server_stats st;
    br_server_get_stats(x->t.srv, &st);
    assert_int_equal(st.accepted, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_vanishes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_break_bad_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_break_eof_mid_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_break_oversized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_client_is_dropped, setup_short_timeout,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_command_register_restored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_client_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_connection_leaves_device_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_quiesces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_not_allowed, setup_not_me, teardown),
        cmocka_unit_test_setup_teardown(test_reserved_irq_survives_sessions, setup_reserved_req,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
