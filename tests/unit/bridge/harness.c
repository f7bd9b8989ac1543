/* SPDX-License-Identifier: MIT */
#include "harness.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hooks.h"
#include "log.h"
#include "session.h"
#include "tap.h"

void th_init(struct th *t)
{
    memset(t, 0, sizeof(*t));
    t->sock = (struct acc_sock){ .fd = -1, .dir_fd = -1 };
    hv_sim_config_defaults(&t->sc);
    t->sc.addr = "0000:00:04.0";
    br_config_defaults(&t->cfg);
    const char *lvl = getenv("VUB_TEST_LOG");
    enum br_log_level l = BR_LOG_ERR;
    if (lvl)
        br_log_parse_level(lvl, &l);
    br_log_set_level(l);
    br_log_set_device(t->sc.addr);
    signal(SIGPIPE, SIG_IGN);
}

void th_init_nvme(struct th *t)
{
    th_init(t);
    t->sc.msix = HV_SIM_MSIX_MAPPABLE_CAP;
}

static void *run_thread(void *arg)
{
    struct th *t = arg;
    t->run_ret = br_server_run(t->srv);
    return NULL;
}

void th_start(struct th *t)
{
    struct vub_err err = { "" };
    int r = t->io ? hv_sim_open_on(&t->sc, t->io, &t->hv, &err) : hv_sim_open(&t->sc, &t->hv, &err);
    if (r < 0)
        fail_msg("hv_sim_open: %s (%d)", err.msg, r);
    t->dev = calloc(1, sizeof(*t->dev));
    assert_non_null(t->dev);
    assert_int_equal(br_dev_init(t->dev, t->hv, &t->cfg), 0);
    t->dev->reserved_irqs = t->reserved_irqs;
    if (t->group)
        assert_int_equal(br_group_add(t->group, t->dev), 0);
    assert_int_equal(br_tap_new(&t->dev->tap, &t->cfg, t->sc.addr), 0);

    snprintf(t->dir, sizeof(t->dir), "/tmp/vub-bridge-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/sock", t->dir);
    t->cfg.socket_path = t->path;
    int lfd = br_listen(&t->cfg, &t->sock);
    assert_true(lfd >= 0);
    assert_int_equal(br_server_new(&t->srv, t->dev, lfd), 0);
    assert_int_equal(pthread_create(&t->thread, NULL, run_thread, t), 0);
    t->running = true;
}

void th_stop_loop(struct th *t)
{
    if (t->running) {
        br_server_stop(t->srv);
        pthread_join(t->thread, NULL);
        t->running = false;
        assert_int_equal(t->run_ret, 0);
    }
}

void th_stop(struct th *t)
{
    th_stop_loop(t);
    br_server_free(t->srv);
    t->srv = NULL;
    br_session_release_retired(t->dev);
    if (t->group && t->dev)
        br_group_remove(t->group, t->dev);
    if (t->dev)
        br_tap_free(t->dev->tap);
    free(t->dev);
    t->dev = NULL;
    hv_close(t->hv);
    t->hv = NULL;
    acc_sock_unlink(&t->sock);
    acc_sock_release(&t->sock);
    rmdir(t->dir);
}

struct vu_client *th_connect(struct th *t, bool negotiate)
{
    struct vu_client *c = NULL;
    struct vub_err err = { "" };
    int r = vu_client_connect(t->path, &c, &err);
    if (r < 0)
        fail_msg("connect %s: %s", t->path, err.msg);
    vu_client_set_timeout(c, 10000);
    if (negotiate) {
        r = vu_client_negotiate(c, NULL, NULL);
        if (r < 0)
            fail_msg("negotiate: %s", vu_client_error(c));
    }
    return c;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

enum which { W_CLOSED, W_ACCEPTED, W_REFUSED };

static void wait_stat(struct th *t, enum which w, unsigned n)
{
    for (int i = 0; i < 10000; i++) {
        struct br_server_stats st;
        br_server_get_stats(t->srv, &st);
        unsigned v = w == W_CLOSED ? st.closed : w == W_ACCEPTED ? st.accepted : st.refused;
        if (v >= n)
            return;
        sleep_ms(1);
    }
    fail_msg("server did not reach %u %s sessions", n,
             w == W_CLOSED ? "closed" : w == W_ACCEPTED ? "accepted" : "refused");
}

void th_wait_closed(struct th *t, unsigned n) { wait_stat(t, W_CLOSED, n); }
void th_wait_accepted(struct th *t, unsigned n) { wait_stat(t, W_ACCEPTED, n); }
void th_wait_refused(struct th *t, unsigned n) { wait_stat(t, W_REFUSED, n); }

int th_call(struct vu_client *c, uint16_t cmd, uint32_t flags, const void *p, size_t len,
            const int *fds, size_t nfds, struct vu_msg *out)
{
    struct vu_msg reply;
    int r = vu_client_call(c, cmd, flags, p, len, fds, nfds, &reply);
    if (r < 0)
        fail_msg("%s: transport failure %d: %s", vu_cmd_name(cmd), r, vu_client_error(c));
    if (flags & VU_F_NO_REPLY)
        return 0;
    assert_int_equal(reply.hdr.cmd, cmd);
    assert_int_equal(reply.hdr.flags & VU_F_TYPE_MASK, VU_F_TYPE_REPLY);
    if (reply.hdr.flags & VU_F_ERROR) {
        r = -(int)reply.hdr.error_no;
        assert_true(r < 0);                 /* never an error without errno */
        assert_int_equal(reply.hdr.msg_size, VU_HDR_SIZE);
        assert_int_equal(reply.nfds, 0);
    }
    if (out)
        *out = reply;
    else
        vu_msg_release(&reply);
    return r;
}

int th_memfd(size_t size)
{
    int fd = memfd_create("vub-test-dma", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    return fd;
}

int th_eventfd(void)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    assert_true(fd >= 0);
    return fd;
}

uint64_t th_eventfd_read(int fd)
{
    uint64_t v = 0;
    if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
        return 0;
    return v;
}

struct th *th_new(bool nvme, void (*tweak)(struct th *t))
{
    struct th *t = malloc(sizeof(*t));
    assert_non_null(t);
    if (nvme)
        th_init_nvme(t);
    else
        th_init(t);
    if (tweak)
        tweak(t);
    th_start(t);
    return t;
}

int th_teardown(void **state)
{
    struct th *t = *state;
    th_stop(t);
    free(t);
    return 0;
}
