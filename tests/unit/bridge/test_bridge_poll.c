/* SPDX-License-Identifier: MIT */
/* The server loop's message batching and --poll-us busy polling, through a
 * real socket (no timing asserted: only that every message is served, in
 * order, and that a client leaving is noticed while the bridge spins). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define EDU_LIVE 0x04u
#define N_POSTED 40u   /* more than the server's batch of 16 per wake-up */

static void spin_on(struct th *t) { t->cfg.poll_us = 2000; }

static int setup_plain(void **state)
{
    *state = th_new(false, NULL);
    return 0;
}

static int setup_spin(void **state)
{
    *state = th_new(false, spin_on);
    return 0;
}

static uint32_t rd32(struct vu_client *c, uint32_t region, uint64_t off)
{
    uint32_t v = 0;
    assert_int_equal(vu_client_region_read(c, region, off, &v, 4), 4);
    return v;
}

/* N_POSTED posted writes and a read in one send: the bridge takes them with
 * one read into its buffer and serves them over several batches; the
 * messages left in the buffer after a batch must be served without the
 * client sending anything more (the socket is then empty: a loop that slept
 * in poll would never answer the read). */
static void test_queued_in_one_send(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    uint8_t buf[N_POSTED * 36 + 32];
    size_t n = 0;
    for (uint32_t i = 0; i < N_POSTED; i++) {
        struct vu_hdr h = { .msg_id = (uint16_t)(100 + i), .cmd = VU_CMD_REGION_WRITE,
                            .msg_size = 36, .flags = VU_F_NO_REPLY };
        struct vu_region_access a = { .offset = EDU_LIVE, .region = 0, .count = 4 };
        uint32_t v = 0x1000 + i;
        memcpy(buf + n, &h, 16);
        memcpy(buf + n + 16, &a, 16);
        memcpy(buf + n + 32, &v, 4);
        n += 36;
    }
    struct vu_hdr h = { .msg_id = 999, .cmd = VU_CMD_REGION_READ, .msg_size = 32 };
    struct vu_region_access a = { .offset = EDU_LIVE, .region = 0, .count = 4 };
    memcpy(buf + n, &h, 16);
    memcpy(buf + n + 16, &a, 16);
    n += 32;
    struct vu_msg reply;
    assert_int_equal(vu_client_raw(c, buf, n, NULL, 0, true, &reply), 0);
    assert_int_equal(reply.hdr.msg_id, 999);
    assert_int_equal(reply.hdr.flags & VU_F_ERROR, 0);
    assert_int_equal(reply.payload_len, 20);
    uint32_t v;
    memcpy(&v, reply.payload + 16, 4);
    assert_int_equal(v, ~(0x1000u + N_POSTED - 1));   /* the last write's, inverted */
    vu_msg_release(&reply);
    vu_client_close(c);
    th_wait_closed(t, 1);
}

/* Round trips and posted writes with --poll-us: the same answers as without. */
static void test_poll_serves_in_order(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    for (uint32_t i = 0; i < 200; i++) {
        uint32_t v = 0x20000 + i;
        assert_int_equal(vu_client_region_write(c, 0, EDU_LIVE, &v, 4, (i & 1) != 0), 4);
        if (i % 8 == 7)
            assert_int_equal(rd32(c, 0, EDU_LIVE), ~v);
    }
    assert_int_equal(rd32(c, 7, 0), 0x11e81234u);   /* config space: edu's ids */
    vu_client_close(c);
    th_wait_closed(t, 1);
    /* the next client is served as well */
    c = th_connect(t, true);
    assert_int_equal(rd32(c, 7, 0), 0x11e81234u);
    vu_client_close(c);
    th_wait_closed(t, 2);
}

/* A client that leaves while the bridge spins after its last message: the
 * session ends (EOF seen by the spin, then by the receive). */
static void test_poll_sees_eof(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    uint32_t v = 7;
    assert_int_equal(vu_client_region_write(c, 0, EDU_LIVE, &v, 4, true), 4);
    vu_client_close(c);
    th_wait_closed(t, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_queued_in_one_send, setup_plain, th_teardown),
        cmocka_unit_test_setup_teardown(test_queued_in_one_send, setup_spin, th_teardown),
        cmocka_unit_test_setup_teardown(test_poll_serves_in_order, setup_spin, th_teardown),
        cmocka_unit_test_setup_teardown(test_poll_sees_eof, setup_spin, th_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
