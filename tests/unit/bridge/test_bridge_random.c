/* SPDX-License-Identifier: MIT */
/*
 * A long random conversation (fixed seed, so reproducible): plausible and
 * implausible messages of every command, with and without fds, posted or
 * not, now and then a broken header. Whatever happens, the bridge must keep
 * answering or hang up cleanly, and once the client is gone the device must
 * be quiesced and every fd the bridge took released.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "edu_regs.h"
#include "harness.h"
#include "testutil.h"

#define ITERATIONS 20000
#define MiB (1u << 20)

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static uint64_t pick(const uint64_t *v, size_t n) { return v[rnd() % n]; }
#define PICK(a) pick(a, sizeof(a) / sizeof(a[0]))

static const uint64_t addrs[] = { 0, 0x1000, 0x100000, 0x7ff000, 0xfee00000, 0xfffff000,
                                  0xffffffffffff0000ull, 0x800, 1 };
static const uint64_t sizes[] = { 0, 1, 0x1000, 0x2000, MiB, 0x100000000ull,
                                  0xffffffffffffffffull, 0x800 };

struct conv {
    struct th t;
    struct vu_client *c;
    int mfd, efd[16];
    unsigned reconnects, replies, errors;
};

static void connect_again(struct conv *x)
{
    if (x->c)
        vu_client_close(x->c);
    x->c = th_connect(&x->t, true);
    x->reconnects++;
}

/* One random message; returns false if the connection broke. */
static bool one(struct conv *x)
{
    uint8_t p[256];
    size_t len = 0;
    int fds[16];
    size_t nfds = 0;
    uint16_t cmd = (uint16_t)(rnd() % 21);
    uint32_t flags = 0;
    uint64_t r = rnd() % 100;
    if (r < 15)
        flags = VU_F_NO_REPLY;
    else if (r == 99)
        flags = 0x2;                    /* bad type: the bridge hangs up */
    memset(p, 0, sizeof(p));

    switch (rnd() % 4 ? cmd : 255) {
    case VU_CMD_DMA_MAP: {
        struct vu_dma_map m = { .argsz = rnd() % 8 ? 32 : (uint32_t)rnd(),
                                .flags = (uint32_t)(rnd() % 5),
                                .offset = PICK(addrs) & 0xfffff, .address = PICK(addrs),
                                .size = PICK(sizes) };
        if (rnd() % 2)
            fds[nfds++] = x->mfd;
        else
            m.offset = 0;
        memcpy(p, &m, sizeof(m));
        len = sizeof(m);
        break;
    }
    case VU_CMD_DMA_UNMAP: {
        struct vu_dma_unmap u = { .argsz = 24, .flags = (uint32_t)(rnd() % 4),
                                  .address = PICK(addrs), .size = PICK(sizes) };
        memcpy(p, &u, sizeof(u));
        len = sizeof(u);
        break;
    }
    case VU_CMD_DEVICE_GET_REGION_INFO: {
        struct vu_region_info q = { .argsz = (uint32_t)(rnd() % 2 ? 32 + rnd() % 64 : rnd()),
                                    .index = (uint32_t)(rnd() % 12) };
        memcpy(p, &q, sizeof(q));
        len = sizeof(q);
        break;
    }
    case VU_CMD_DEVICE_SET_IRQS: {
        struct vu_irq_set s = { .argsz = 20,
                                .flags = (uint32_t)(1u << (rnd() % 3)) |
                                         (uint32_t)(8u << (rnd() % 3)),
                                .index = (uint32_t)(rnd() % 6), .start = (uint32_t)(rnd() % 70),
                                .count = (uint32_t)(rnd() % 17) };
        if (rnd() % 3 == 0) {
            s.start = 0;
            s.count = 0;
            s.flags = VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_TRIGGER;
        }
        memcpy(p, &s, sizeof(s));
        len = sizeof(s);
        if (s.flags & VU_IRQ_SET_DATA_BOOL) {
            for (uint32_t i = 0; i < s.count; i++)
                p[20 + i] = (uint8_t)(rnd() % 2);
            len += s.count;
            s.argsz = (uint32_t)len;
            memcpy(p, &s, sizeof(s));
        } else if ((s.flags & VU_IRQ_SET_DATA_EVENTFD) && rnd() % 2) {
            for (uint32_t i = 0; i < s.count; i++)
                fds[nfds++] = x->efd[i];
        }
        break;
    }
    case VU_CMD_REGION_READ:
    case VU_CMD_REGION_WRITE: {
        struct vu_region_access a = { .offset = rnd() % 2 ? rnd() % 0x200 : PICK(addrs),
                                      .region = (uint32_t)(rnd() % 10),
                                      .count = (uint32_t)(rnd() % 9) };
        if (a.region == 0 && a.offset >= 0x80 && a.offset < 0xa0)
            a.offset += 0x100;          /* keep the sim's DMA engine out of it */
        memcpy(p, &a, sizeof(a));
        len = sizeof(a);
        if (cmd == VU_CMD_REGION_WRITE) {
            for (uint32_t i = 0; i < a.count; i++)
                p[16 + i] = (uint8_t)rnd();
            len += rnd() % 8 ? a.count : rnd() % 9;
        }
        break;
    }
    default:
        len = rnd() % 40;
        for (size_t i = 0; i < len; i++)
            p[i] = (uint8_t)rnd();
        if (rnd() % 4 == 0)
            fds[nfds++] = x->efd[0];
        break;
    }

    struct vu_msg reply;
    int rc = vu_client_call(x->c, cmd, flags, p, len, fds, nfds, &reply);
    if (rc < 0)
        return false;
    if (!(flags & VU_F_NO_REPLY)) {
        /* every reply is well-formed: right command, errno when failed */
        assert_int_equal(reply.hdr.cmd, cmd);
        if (reply.hdr.flags & VU_F_ERROR) {
            assert_true(reply.hdr.error_no > 0 && reply.hdr.error_no < 4096);
            assert_int_equal(reply.payload_len, 0);
            x->errors++;
        }
        assert_true(reply.nfds <= 1);
        x->replies++;
        vu_msg_release(&reply);
    }
    return true;
}

static void test_random_conversation(void **state)
{
    struct conv *x = calloc(1, sizeof(*x));
    th_init_nvme(&x->t);
    x->t.cfg.io_timeout_ms = 2000;
    th_start(&x->t);
    x->mfd = th_memfd(2 * MiB);
    for (int i = 0; i < 16; i++)
        x->efd[i] = th_eventfd();
    int base = tu_count_fds();
    unsigned resets = hv_sim_stats_of(x->t.hv).resets;

    connect_again(x);
    for (int i = 0; i < ITERATIONS; i++) {
        if (!one(x)) {
            /* the bridge hung up (a broken header): it must serve anew */
            th_wait_closed(&x->t, x->reconnects);
            connect_again(x);
        }
    }
    vu_client_close(x->c);
    x->c = NULL;
    th_wait_closed(&x->t, x->reconnects);

    print_message("%d messages, %u replies (%u errors), %u connections\n", ITERATIONS,
                  x->replies, x->errors, x->reconnects);
    assert_true(x->replies > ITERATIONS / 2);
    assert_true(x->errors > 0 && x->errors < x->replies);
    /* quiesced, nothing held */
    assert_int_equal(hv_sim_stats_of(x->t.hv).dma_maps, 0);
    assert_int_equal(hv_sim_stats_of(x->t.hv).open_irq_fds, 0);
    assert_false(hv_sim_stats_of(x->t.hv).command & 4);
    assert_true(hv_sim_stats_of(x->t.hv).resets >= resets + 1);
    assert_int_equal(tu_count_fds(), base);

    /* and a normal client still gets a normal device */
    struct vu_client *c = th_connect(&x->t, true);
    uint32_t id = 0;
    assert_int_equal(vu_client_region_read(c, 0, 0, &id, 4), 4);
    assert_int_equal(id, EDU_ID_VALUE);
    vu_client_close(c);

    th_stop(&x->t);
    close(x->mfd);
    for (int i = 0; i < 16; i++)
        close(x->efd[i]);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_conversation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
