/* SPDX-License-Identifier: MIT */
/*
 * The client API against a small server loop built from the library's own
 * decoders and reply helpers, over a real socketpair with real fds: memfds
 * for DMA and region mmap, eventfds for interrupts. Also bad clients (raw
 * messages, too many fds, truncated ancillary data, a close mid-message) and
 * bad servers (wrong id, unexpected command, oversize reply, no reply, a
 * close mid-message), each checked for leaked fds.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>

#include "proto_test.h"
#include "vu_client.h"

#define SRV_FDS 8
#define NMAPS 8
#define BAR0_SIZE 0x10000u

enum srv_mode {
    SRV_GOOD,
    SRV_SMALL_REPLY_WITH_FD, /* fd also on the argsz-too-small region info reply */
    SRV_WRONG_ID,
    SRV_COMMAND_FIRST,       /* sends DMA_READ before the reply */
    SRV_OVERSIZE_REPLY,      /* more region-info payload than argsz */
    SRV_SILENT_RESET,        /* never answers DEVICE_RESET */
    SRV_CLOSE_MID_REPLY,     /* half a reply to GET_INFO, then close */
};

struct srv {
    struct vu_conn c;
    pthread_t thread;
    enum srv_mode mode;
    int rc;                   /* why the loop ended */
    char why[sizeof(struct vub_err)];
    struct vu_caps caps;
    struct {
        uint64_t iova, size;
        int fd;
    } maps[NMAPS];
    int irq_fds[4];           /* MSI-X triggers */
    uint8_t config[256];
    int bar_fd;
    bool reset_done;
    int region_info_calls;
    uint8_t mig[64];
    uint32_t mig_len;
};

static int srv_region_info(struct srv *s, const struct vu_msg *m)
{
    struct vu_region_info q;
    struct vub_err e;
    if (vu_decode_region_info(m, &q, &e))
        return vu_send_error(&s->c, m, EINVAL);
    s->region_info_calls++;
    struct {
        struct vu_region_info ri;
        uint8_t caps[48];
    } rep;
    memset(&rep, 0, sizeof(rep));
    rep.ri.index = q.index;
    if (q.index == VU_PCI_CONFIG_REGION_INDEX) {
        rep.ri.argsz = 32;
        rep.ri.flags = VU_REGION_INFO_FLAG_READ | VU_REGION_INFO_FLAG_WRITE;
        rep.ri.size = sizeof(s->config);
        return vu_send_reply(&s->c, m, &rep.ri, 32, NULL, 0, NULL, 0);
    }
    if (q.index != 0)
        return vu_send_error(&s->c, m, EINVAL);
    rep.ri.argsz = 32 + 48;
    rep.ri.flags = VU_REGION_INFO_FLAG_READ | VU_REGION_INFO_FLAG_WRITE |
                   VU_REGION_INFO_FLAG_MMAP;
    rep.ri.size = BAR0_SIZE;
    rep.ri.offset = 0;
    if (q.argsz < rep.ri.argsz && s->mode != SRV_OVERSIZE_REPLY) {
        /* fixed part only, no CAPS flag; an fd only if misbehaving */
        bool fd = s->mode == SRV_SMALL_REPLY_WITH_FD;
        return vu_send_reply(&s->c, m, &rep.ri, 32, NULL, 0, fd ? &s->bar_fd : NULL, fd);
    }
    rep.ri.flags |= VU_REGION_INFO_FLAG_CAPS;
    rep.ri.cap_offset = 32;
    struct vu_sparse_mmap_area a[2] = {{0, 0x2000}, {0x3000, BAR0_SIZE - 0x3000}};
    assert_int_equal(vu_region_cap_sparse_build(&rep, sizeof(rep), 32, a, 2), 48);
    return vu_send_reply(&s->c, m, &rep, sizeof(rep), NULL, 0, &s->bar_fd, 1);
}

static int srv_set_irqs(struct srv *s, struct vu_msg *m)
{
    struct vu_irq_set_req q;
    struct vub_err e;
    if (vu_decode_set_irqs(m, &q, &e) || q.set.index != VU_PCI_MSIX_IRQ_INDEX ||
        q.set.start + q.set.count > 4)
        return vu_send_error(&s->c, m, EINVAL);
    uint32_t data = q.set.flags & VU_IRQ_SET_DATA_MASK;
    if (data == VU_IRQ_SET_DATA_EVENTFD) {
        for (uint32_t i = 0; i < q.set.count; i++) {
            int *slot = &s->irq_fds[q.set.start + i];
            if (*slot >= 0)
                close(*slot);
            *slot = q.nfds ? vu_msg_take_fd(m, i) : -1;
        }
    } else if (data == VU_IRQ_SET_DATA_NONE && q.set.count == 0) {
        pt_close_fds(s->irq_fds, 4);
        for (int i = 0; i < 4; i++)
            s->irq_fds[i] = -1;
    } else {
        /* TRIGGER with NONE/BOOL: fire the selected vectors */
        for (uint32_t i = 0; i < q.set.count; i++) {
            bool on = data == VU_IRQ_SET_DATA_NONE || q.bools[i];
            uint64_t one = 1;
            if (on && s->irq_fds[q.set.start + i] >= 0 &&
                write(s->irq_fds[q.set.start + i], &one, 8) != 8)
                return vu_send_error(&s->c, m, EIO);
        }
    }
    return vu_send_reply(&s->c, m, NULL, 0, NULL, 0, NULL, 0);
}

static int srv_dma(struct srv *s, struct vu_msg *m)
{
    struct vub_err e;
    if (m->hdr.cmd == VU_CMD_DMA_MAP) {
        struct vu_dma_map d;
        if (vu_decode_dma_map(m, &d, &e))
            return vu_send_error(&s->c, m, EINVAL);
        for (int i = 0; i < NMAPS; i++) {
            if (s->maps[i].fd >= 0 || s->maps[i].size)
                continue;
            s->maps[i].iova = d.address;
            s->maps[i].size = d.size;
            s->maps[i].fd = m->nfds ? vu_msg_take_fd(m, 0) : -1;
            if (s->maps[i].fd >= 0) {
                /* prove the memory is shared: stamp the first bytes */
                void *p = mmap(NULL, d.size, PROT_READ | PROT_WRITE, MAP_SHARED, s->maps[i].fd,
                               (off_t)d.offset);
                if (p == MAP_FAILED)
                    return vu_send_error(&s->c, m, EFAULT);
                memcpy(p, "srv", 3);
                munmap(p, d.size);
            }
            return vu_send_reply(&s->c, m, NULL, 0, NULL, 0, NULL, 0);
        }
        return vu_send_error(&s->c, m, ENOSPC);
    }
    struct vu_dma_unmap d;
    if (vu_decode_dma_unmap(m, &d, &e))
        return vu_send_error(&s->c, m, EINVAL);
    for (int i = 0; i < NMAPS; i++) {
        bool all = d.flags & VU_DMA_UNMAP_FLAG_ALL;
        if (!s->maps[i].size || (!all && (s->maps[i].iova != d.address ||
                                          s->maps[i].size != d.size)))
            continue;
        if (s->maps[i].fd >= 0)
            close(s->maps[i].fd);
        s->maps[i].fd = -1;
        s->maps[i].size = 0;
        if (!all)
            return vu_send_reply(&s->c, m, &d, sizeof(d), NULL, 0, NULL, 0);
    }
    if (d.flags & VU_DMA_UNMAP_FLAG_ALL)
        return vu_send_reply(&s->c, m, &d, sizeof(d), NULL, 0, NULL, 0);
    return vu_send_error(&s->c, m, ENOENT);
}

static int srv_region_rw(struct srv *s, struct vu_msg *m)
{
    struct vu_region_access_req q;
    struct vub_err e;
    bool wr = m->hdr.cmd == VU_CMD_REGION_WRITE;
    int r = wr ? vu_decode_region_write(m, 4096, &q, &e) : vu_decode_region_read(m, 4096, &q, &e);
    if (r)
        return vu_send_error(&s->c, m, -r);
    if (q.acc.region != VU_PCI_CONFIG_REGION_INDEX || q.acc.offset > sizeof(s->config) ||
        q.acc.count > sizeof(s->config) - q.acc.offset)
        return vu_send_error(&s->c, m, EINVAL);
    if (wr) {
        memcpy(s->config + q.acc.offset, q.data, q.acc.count);
        return vu_send_reply(&s->c, m, &q.acc, sizeof(q.acc), NULL, 0, NULL, 0);
    }
    return vu_send_reply(&s->c, m, &q.acc, sizeof(q.acc), s->config + q.acc.offset, q.acc.count,
                         NULL, 0);
}

static int srv_misc(struct srv *s, struct vu_msg *m)
{
    struct vub_err e;
    switch (m->hdr.cmd) {
    case VU_CMD_REGION_WRITE_MULTI: {
        struct vu_write_multi_req q;
        if (vu_decode_write_multi(m, &q, &e))
            return vu_send_error(&s->c, m, EINVAL);
        for (uint64_t i = 0; i < q.wr_cnt; i++) {
            struct vu_write_multi_entry en;
            memcpy(&en, &q.wrs[i], sizeof(en));
            if (en.region == VU_PCI_CONFIG_REGION_INDEX && en.offset + en.count <= 256)
                memcpy(s->config + en.offset, en.data, en.count);
        }
        return vu_send_reply(&s->c, m, &q.wr_cnt, 8, NULL, 0, NULL, 0);
    }
    case VU_CMD_DEVICE_GET_REGION_IO_FDS: {
        struct vu_region_io_fds_request q;
        if (vu_decode_region_io_fds(m, &q, &e))
            return vu_send_error(&s->c, m, EINVAL);
        struct vu_ioeventfd_entry en = {.offset = 0x100, .size = 4, .fd_index = 0};
        q.count = 1;
        uint32_t need = sizeof(q) + sizeof(en);
        if (q.argsz < need) {
            q.argsz = need;
            return vu_send_reply(&s->c, m, &q, sizeof(q), NULL, 0, NULL, 0);
        }
        q.argsz = need;
        int efd = eventfd(0, EFD_CLOEXEC);
        int r = vu_send_reply(&s->c, m, &q, sizeof(q), &en, sizeof(en), &efd, 1);
        close(efd);
        return r;
    }
    case VU_CMD_DEVICE_FEATURE: {
        struct vu_device_feature_req q;
        if (vu_decode_device_feature(m, &q, &e) ||
            (q.feat.flags & VU_DEVICE_FEATURE_MASK) != 1 || !(q.feat.flags & VU_DEVICE_FEATURE_GET))
            return vu_send_error(&s->c, m, EINVAL);
        uint64_t mflags = 1; /* STOP_COPY */
        q.feat.argsz = 16;
        return vu_send_reply(&s->c, m, &q.feat, 8, &mflags, 8, NULL, 0);
    }
    case VU_CMD_MIG_DATA_READ: {
        struct vu_mig_data_req q;
        if (vu_decode_mig_data_read(m, 4096, &q, &e))
            return vu_send_error(&s->c, m, EINVAL);
        uint32_t n = q.mig.size < s->mig_len ? q.mig.size : s->mig_len;
        struct vu_mig_data r = {8 + n, n};
        return vu_send_reply(&s->c, m, &r, 8, s->mig, n, NULL, 0);
    }
    case VU_CMD_MIG_DATA_WRITE: {
        struct vu_mig_data_req q;
        if (vu_decode_mig_data_write(m, 4096, &q, &e) || q.mig.size > sizeof(s->mig))
            return vu_send_error(&s->c, m, EINVAL);
        memcpy(s->mig, q.data, q.mig.size);
        s->mig_len = q.mig.size;
        return vu_send_reply(&s->c, m, NULL, 0, NULL, 0, NULL, 0);
    }
    default:
        return vu_send_error(&s->c, m, ENOSYS);
    }
}

static int srv_handle(struct srv *s, struct vu_msg *m)
{
    struct vub_err e;
    if (s->mode == SRV_WRONG_ID && m->hdr.cmd == VU_CMD_DEVICE_GET_INFO)
        m->hdr.msg_id++;
    if (s->mode == SRV_COMMAND_FIRST && m->hdr.cmd == VU_CMD_DEVICE_GET_INFO) {
        struct vu_dma_access a = {0x1000, 4};
        struct vu_hdr h = {.msg_id = 1, .cmd = VU_CMD_DMA_READ};
        vu_send(&s->c, &h, &a, sizeof(a), NULL, 0);
    }
    switch (m->hdr.cmd) {
    case VU_CMD_VERSION: {
        char json[VU_MAX_JSON];
        size_t len;
        struct vu_version v = {0, 0};
        int r = vu_version_answer(m, &s->caps, NULL, NULL, json, sizeof(json), &len, NULL, &e);
        if (r)
            return vu_send_error(&s->c, m, -r);
        return vu_send_reply(&s->c, m, &v, sizeof(v), json, len, NULL, 0);
    }
    case VU_CMD_DMA_MAP:
    case VU_CMD_DMA_UNMAP:
        return srv_dma(s, m);
    case VU_CMD_DEVICE_GET_INFO: {
        struct vu_device_info q;
        if (vu_decode_device_get_info(m, &q, &e))
            return vu_send_error(&s->c, m, EINVAL);
        struct vu_device_info r = {16, VU_DEVICE_FLAGS_PCI | VU_DEVICE_FLAGS_RESET, 9, 5};
        if (s->mode == SRV_CLOSE_MID_REPLY) {
            struct vu_hdr h = {.msg_id = m->hdr.msg_id, .cmd = m->hdr.cmd, .msg_size = 32,
                               .flags = VU_F_TYPE_REPLY};
            uint8_t half[24];
            memcpy(half, &h, 16);
            memcpy(half + 16, &r, 8);
            if (write(s->c.fd, half, sizeof(half)) != (ssize_t)sizeof(half))
                return -EIO;
            return -ECONNABORTED;
        }
        return vu_send_reply(&s->c, m, &r, sizeof(r), NULL, 0, NULL, 0);
    }
    case VU_CMD_DEVICE_GET_REGION_INFO:
        return srv_region_info(s, m);
    case VU_CMD_DEVICE_GET_IRQ_INFO: {
        struct vu_irq_info q;
        if (vu_decode_irq_info(m, &q, &e) || q.index >= VU_PCI_NUM_IRQS)
            return vu_send_error(&s->c, m, EINVAL);
        q.flags = VU_IRQ_INFO_EVENTFD | (q.index == VU_PCI_MSIX_IRQ_INDEX ? VU_IRQ_INFO_NORESIZE : 0);
        q.count = q.index == VU_PCI_MSIX_IRQ_INDEX ? 4 : 1;
        return vu_send_reply(&s->c, m, &q, sizeof(q), NULL, 0, NULL, 0);
    }
    case VU_CMD_DEVICE_SET_IRQS:
        return srv_set_irqs(s, m);
    case VU_CMD_REGION_READ:
    case VU_CMD_REGION_WRITE:
        return srv_region_rw(s, m);
    case VU_CMD_DEVICE_RESET:
        if (vu_decode_device_reset(m, &e))
            return vu_send_error(&s->c, m, EINVAL);
        if (s->mode == SRV_SILENT_RESET)
            return 0;
        s->reset_done = true;
        return vu_send_reply(&s->c, m, NULL, 0, NULL, 0, NULL, 0);
    default:
        return srv_misc(s, m);
    }
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    for (;;) {
        struct vu_msg m;
        int r = vu_recv(&s->c, &m);
        if (r) {
            s->rc = r;
            snprintf(s->why, sizeof(s->why), "%s", s->c.err.msg);
            break;
        }
        r = srv_handle(s, &m);
        vu_msg_release(&m);
        if (r) {
            s->rc = r;
            break;
        }
    }
    vu_conn_close(&s->c);
    return NULL;
}

struct fx {
    int base;
    struct srv srv;
    struct vu_client *cl;
};

static void fx_start(struct fx *f, enum srv_mode mode)
{
    memset(f, 0, sizeof(*f));
    f->base = tu_count_fds();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct srv *s = &f->srv;
    s->mode = mode;
    struct vu_limits lim = {.max_msg_size = VU_HDR_SIZE + 16 + 4096, .max_fds = SRV_FDS};
    vu_conn_init_socket(&s->c, sv[1], &lim);
    vu_caps_defaults(&s->caps);
    s->caps.max_msg_fds = SRV_FDS;
    s->caps.max_data_xfer_size = 4096;
    s->caps.write_multiple = true;
    for (int i = 0; i < NMAPS; i++)
        s->maps[i].fd = -1;
    for (int i = 0; i < 4; i++)
        s->irq_fds[i] = -1;
    for (int i = 0; i < 256; i++)
        s->config[i] = (uint8_t)i;
    s->bar_fd = memfd_create("bar0", MFD_CLOEXEC);
    assert_true(s->bar_fd >= 0);
    assert_int_equal(ftruncate(s->bar_fd, BAR0_SIZE), 0);
    assert_int_equal(pwrite(s->bar_fd, "BAR0", 4, 0x3000), 4);
    assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
    struct vub_err e;
    assert_int_equal(vu_client_from_fd(sv[0], &f->cl, &e), 0);
}

/* Close the client, wait for the server, release its resources, check fds. */
static void fx_stop(struct fx *f)
{
    vu_client_close(f->cl);
    assert_int_equal(pthread_join(f->srv.thread, NULL), 0);
    for (int i = 0; i < NMAPS; i++)
        if (f->srv.maps[i].fd >= 0)
            close(f->srv.maps[i].fd);
    pt_close_fds(f->srv.irq_fds, 4);
    close(f->srv.bar_fd);
    assert_int_equal(tu_count_fds(), f->base);
}

static void negotiate(struct fx *f)
{
    struct vu_caps sc;
    int r = vu_client_negotiate(f->cl, NULL, &sc);
    if (r)
        fail_msg("negotiate: %d %s", r, vu_client_error(f->cl));
    assert_int_equal(sc.max_msg_fds, SRV_FDS);
    assert_int_equal(sc.max_data_xfer_size, 4096);
    assert_true(sc.write_multiple);
    assert_false(sc.has_migration); /* the server has none */
    assert_int_equal(vu_client_server_caps(f->cl)->max_msg_fds, SRV_FDS);
}

static void test_session(void **state)
{
    (void)state;
    struct fx f;
    fx_start(&f, SRV_GOOD);
    negotiate(&f);
    assert_int_equal(vu_client_negotiate(f.cl, NULL, NULL), -EALREADY);

    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(f.cl, &di), 0);
    assert_int_equal(di.num_regions, 9);
    assert_int_equal(di.flags, VU_DEVICE_FLAGS_PCI | VU_DEVICE_FLAGS_RESET);

    /* DMA with a memfd: the server stamps the memory through its copy */
    int mfd = memfd_create("guest", MFD_CLOEXEC);
    assert_int_equal(ftruncate(mfd, 0x20000), 0);
    assert_int_equal(vu_client_dma_map(f.cl, 0x100000, 0x10000, mfd, 0x10000,
                                       VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE), 0);
    char stamp[3];
    assert_int_equal(pread(mfd, stamp, 3, 0x10000), 3);
    assert_memory_equal(stamp, "srv", 3);
    assert_int_equal(vu_client_dma_map(f.cl, 0x200000, 0x1000, -1, 0, VU_DMA_MAP_FLAG_READ), 0);
    assert_int_equal(vu_client_dma_map(f.cl, 0x300000, 0x1000, -1, 4096, 1), -EINVAL);
    assert_int_equal(vu_client_dma_unmap(f.cl, 0x100000, 0x10000, 0), 0);
    assert_int_equal(vu_client_dma_unmap(f.cl, 0x100000, 0x10000, 0), -ENOENT);
    assert_non_null(strstr(vu_client_error(f.cl), "DMA_UNMAP"));
    assert_int_equal(vu_client_dma_unmap(f.cl, 0, 0, VU_DMA_UNMAP_FLAG_ALL), 0);
    close(mfd);

    /* region info: the argsz retry, the fd, the sparse areas */
    struct vu_client_region reg;
    assert_int_equal(vu_client_get_region_info(f.cl, 0, 0, &reg), 0);
    assert_int_equal(f.srv.region_info_calls, 2);
    assert_int_equal(reg.info.size, BAR0_SIZE);
    assert_true(reg.info.flags & VU_REGION_INFO_FLAG_CAPS);
    assert_true(reg.caps.has_sparse);
    assert_int_equal(reg.caps.nr_areas, 2);
    assert_int_equal(reg.caps.areas[1].offset, 0x3000);
    assert_true(reg.fd >= 0);
    char bar[4];
    assert_int_equal(pread(reg.fd, bar, 4, 0x3000), 4);
    assert_memory_equal(bar, "BAR0", 4);
    close(reg.fd);
    /* asking with enough room at once: one round */
    assert_int_equal(vu_client_get_region_info(f.cl, 0, 80, &reg), 0);
    assert_int_equal(f.srv.region_info_calls, 3);
    close(reg.fd);
    assert_int_equal(vu_client_get_region_info(f.cl, 7, 0, &reg), 0);
    assert_int_equal(reg.fd, -1);
    assert_false(reg.caps.has_sparse);
    assert_int_equal(vu_client_get_region_info(f.cl, 12, 0, &reg), -EINVAL);
    assert_int_equal(reg.fd, -1);
    assert_int_equal(vu_client_get_region_info(f.cl, 0, 16, &reg), -EINVAL);

    /* config space access */
    uint8_t cfg[8];
    assert_int_equal(vu_client_region_read(f.cl, 7, 4, cfg, 4), 4);
    assert_memory_equal(cfg, "\x04\x05\x06\x07", 4);
    assert_int_equal(vu_client_region_write(f.cl, 7, 4, "\xaa\xbb", 2, false), 2);
    assert_int_equal(vu_client_region_write(f.cl, 7, 8, "\xcc", 1, true), 1); /* posted */
    assert_int_equal(vu_client_region_read(f.cl, 7, 4, cfg, 5), 5);
    assert_memory_equal(cfg, "\xaa\xbb\x06\x07\xcc", 5);
    assert_int_equal(vu_client_region_read(f.cl, 7, 250, cfg, 8), -EINVAL);
    uint8_t *big = malloc(8192);
    assert_non_null(big);
    assert_int_equal(vu_client_region_read(f.cl, 7, 0, big, 4097), -E2BIG); /* server's limit */
    free(big);

    struct vu_write_multi_entry w[2] = {{16, 7, 2, {1, 2}}, {20, 7, 1, {3}}};
    assert_int_equal(vu_client_region_write_multi(f.cl, w, 2, false), 2);
    assert_int_equal(vu_client_region_write_multi(f.cl, w, 1, true), 1);
    assert_int_equal(vu_client_region_read(f.cl, 7, 16, cfg, 5), 5);
    assert_memory_equal(cfg, "\x01\x02\x12\x13\x03", 5);
    assert_int_equal(vu_client_region_write_multi(f.cl, w, 0, false), -EINVAL);

    /* interrupts through eventfds */
    struct vu_irq_info ii;
    assert_int_equal(vu_client_get_irq_info(f.cl, VU_PCI_MSIX_IRQ_INDEX, &ii), 0);
    assert_int_equal(ii.count, 4);
    assert_int_equal(vu_client_get_irq_info(f.cl, 9, &ii), -EINVAL);
    int efd[4];
    pt_open_fds(efd, 4);
    const uint32_t ET = VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER;
    const uint32_t NT = VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_TRIGGER;
    const uint32_t BT = VU_IRQ_SET_DATA_BOOL | VU_IRQ_SET_ACTION_TRIGGER;
    assert_int_equal(vu_client_set_irqs(f.cl, ET, 2, 0, 4, efd, 4, NULL), 0);
    assert_int_equal(vu_client_set_irqs(f.cl, NT, 2, 1, 2, NULL, 0, NULL), 0);
    uint64_t v = 0;
    assert_int_equal(read(efd[1], &v, 8), 8);
    assert_int_equal(v, 1);
    assert_int_equal(read(efd[2], &v, 8), 8);
    const uint8_t sel[4] = {0, 0, 0, 1};
    assert_int_equal(vu_client_set_irqs(f.cl, BT, 2, 0, 4, NULL, 0, sel), 0);
    assert_int_equal(read(efd[3], &v, 8), 8);
    assert_int_equal(fcntl(efd[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(read(efd[0], &v, 8), -1); /* not fired */
    assert_int_equal(vu_client_set_irqs(f.cl, ET, 2, 0, 2, NULL, 0, NULL), 0); /* de-assign */
    assert_int_equal(vu_client_set_irqs(f.cl, NT, 2, 0, 0, NULL, 0, NULL), 0); /* disable all */
    assert_int_equal(vu_client_set_irqs(f.cl, ET, 2, 0, 2, efd, 1, NULL), -EINVAL);
    int many[9];
    pt_open_fds(many, 9);
    /* more than the server's max_msg_fds: refused locally */
    assert_int_equal(vu_client_set_irqs(f.cl, ET, 2, 0, 9, many, 9, NULL), -E2BIG);
    pt_close_fds(many, 9);
    pt_close_fds(efd, 4);

    /* io fds, feature, migration data, reset */
    uint8_t iob[128];
    int iofds[2];
    size_t nio = 2;
    assert_int_equal(vu_client_get_region_io_fds(f.cl, 0, 16, iob, iofds, &nio), 16);
    assert_int_equal(nio, 0);
    struct vu_region_io_fds_request ioh;
    memcpy(&ioh, iob, sizeof(ioh));
    assert_int_equal(ioh.argsz, 56);
    nio = 2;
    assert_int_equal(vu_client_get_region_io_fds(f.cl, 0, 56, iob, iofds, &nio), 56);
    assert_int_equal(nio, 1);
    assert_true(tu_fd_is_open(iofds[0]));
    close(iofds[0]);
    nio = 0; /* no room for the fd: refused, and nothing leaks */
    assert_int_equal(vu_client_get_region_io_fds(f.cl, 0, 56, iob, iofds, &nio), -E2BIG);

    uint8_t fr[32];
    assert_int_equal(vu_client_device_feature(f.cl, VU_DEVICE_FEATURE_GET | 1, NULL, 0, 16, fr,
                                              sizeof(fr)), 16);
    uint64_t mig_flags;
    memcpy(&mig_flags, fr + 8, 8);
    assert_int_equal(mig_flags, 1);
    assert_int_equal(vu_client_device_feature(f.cl, VU_DEVICE_FEATURE_GET | 2, NULL, 0, 16, fr,
                                              sizeof(fr)), -EINVAL);
    assert_int_equal(vu_client_device_feature(f.cl, VU_DEVICE_FEATURE_GET | 1, NULL, 0, 16, fr,
                                              8), -E2BIG);

    assert_int_equal(vu_client_mig_data_write(f.cl, "state", 5), 0);
    char mig[16];
    assert_int_equal(vu_client_mig_data_read(f.cl, mig, 16), 5);
    assert_memory_equal(mig, "state", 5);
    assert_int_equal(vu_client_mig_data_read(f.cl, mig, 3), 3);

    assert_int_equal(vu_client_reset(f.cl), 0);
    assert_true(f.srv.reset_done);

    /* raw call of an unknown command: server answers ENOSYS */
    struct vu_msg rep;
    assert_int_equal(vu_client_call(f.cl, 14, 0, NULL, 0, NULL, 0, &rep), 0);
    assert_int_equal(vu_reply_status(&rep, 14, NULL), -ENOSYS);
    vu_msg_release(&rep);
    fx_stop(&f);
    assert_int_equal(f.srv.rc, -ECONNRESET);
}

/* A server that attaches an fd to the argsz-too-small reply: the client
 * closes it and retries. */
static void test_region_info_small_reply_fd(void **state)
{
    (void)state;
    struct fx f;
    fx_start(&f, SRV_SMALL_REPLY_WITH_FD);
    negotiate(&f);
    int before = tu_count_fds();
    struct vu_client_region reg;
    assert_int_equal(vu_client_get_region_info(f.cl, 0, 0, &reg), 0);
    assert_int_equal(f.srv.region_info_calls, 2);
    assert_true(reg.fd >= 0);
    assert_int_equal(tu_count_fds(), before + 1); /* only the returned fd */
    close(reg.fd);
    fx_stop(&f);
}

/* Bad clients: the server's decoders refuse, fds are closed, the stream
 * stays usable where the message was whole. */
static void test_bad_client(void **state)
{
    (void)state;
    struct fx f;
    fx_start(&f, SRV_GOOD);
    negotiate(&f);
    struct vu_device_info di;
    int before = tu_count_fds();

    /* DMA_MAP with two fds */
    int mfd[2];
    pt_open_fds(mfd, 2);
    struct vu_dma_map d = {32, 3, 0, 0x1000, 0x1000};
    struct vu_msg rep;
    assert_int_equal(vu_client_call(f.cl, VU_CMD_DMA_MAP, 0, &d, sizeof(d), mfd, 2, &rep), 0);
    assert_int_equal(vu_reply_status(&rep, VU_CMD_DMA_MAP, NULL), -EINVAL);
    vu_msg_release(&rep);
    pt_close_fds(mfd, 2);
    assert_int_equal(vu_client_get_info(f.cl, &di), 0); /* server has moved on */
    assert_int_equal(tu_count_fds(), before);

    /* GET_INFO carrying an fd, and a short DMA_UNMAP, by raw bytes */
    int efd;
    pt_open_fds(&efd, 1);
    uint8_t raw[16 + 16];
    struct vu_hdr h = {.msg_id = 900, .cmd = VU_CMD_DEVICE_GET_INFO, .msg_size = 32};
    struct vu_device_info q = {16, 0, 0, 0};
    memcpy(raw, &h, 16);
    memcpy(raw + 16, &q, 16);
    assert_int_equal(vu_client_raw(f.cl, raw, sizeof(raw), &efd, 1, true, &rep), 0);
    assert_int_equal(rep.hdr.msg_id, 900);
    assert_int_equal(vu_reply_status(&rep, VU_CMD_DEVICE_GET_INFO, NULL), -EINVAL);
    vu_msg_release(&rep);
    close(efd);
    h = (struct vu_hdr){.msg_id = 901, .cmd = VU_CMD_DMA_UNMAP, .msg_size = 16 + 8};
    memcpy(raw, &h, 16);
    assert_int_equal(vu_client_raw(f.cl, raw, 24, NULL, 0, true, &rep), 0);
    assert_int_equal(vu_reply_status(&rep, VU_CMD_DMA_UNMAP, NULL), -EINVAL);
    vu_msg_release(&rep);
    /* No_reply on a bad command: no answer at all, next call still matches */
    h = (struct vu_hdr){.msg_id = 902, .cmd = VU_CMD_DEVICE_RESET, .msg_size = 20,
                        .flags = VU_F_NO_REPLY};
    memset(raw + 16, 0, 4);
    memcpy(raw, &h, 16);
    assert_int_equal(vu_client_raw(f.cl, raw, 20, NULL, 0, false, NULL), 0);
    assert_int_equal(vu_client_get_info(f.cl, &di), 0);
    assert_false(f.srv.reset_done);
    assert_int_equal(tu_count_fds(), before);
    fx_stop(&f);
}

/* More fds than the server's limit (8) but fewer than the buffer: the server
 * drops the connection, having closed them. */
static void test_client_fds_over_server_limit(void **state)
{
    (void)state;
    struct fx f;
    fx_start(&f, SRV_GOOD);
    negotiate(&f);
    int fds[12];
    pt_open_fds(fds, 12);
    struct vu_irq_set s = {20, VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER, 2, 0, 12};
    uint8_t raw[36];
    struct vu_hdr h = {.msg_id = 50, .cmd = VU_CMD_DEVICE_SET_IRQS, .msg_size = 36};
    memcpy(raw, &h, 16);
    memcpy(raw + 16, &s, 20);
    assert_int_equal(vu_client_raw(f.cl, raw, sizeof(raw), fds, 12, false, NULL), 0);
    pt_close_fds(fds, 12);
    struct vu_device_info di;
    int r = vu_client_get_info(f.cl, &di);
    assert_true(r == -ECONNRESET || r == -EPIPE);
    fx_stop(&f);
    assert_int_equal(f.srv.rc, -EPROTO);
    assert_non_null(strstr(f.srv.why, "12 fds exceed the limit of 8"));
}

/* MSG_CTRUNC at the server: 20 fds on one message. */
static void test_client_ctrunc(void **state)
{
    (void)state;
    struct fx f;
    fx_start(&f, SRV_GOOD);
    negotiate(&f);
    int fds[20];
    pt_open_fds(fds, 20);
    uint8_t raw[36] = {0};
    struct vu_hdr h = {.msg_id = 51, .cmd = VU_CMD_DEVICE_SET_IRQS, .msg_size = 36};
    memcpy(raw, &h, 16);
    assert_int_equal(pt_sendmsg(vu_client_fd(f.cl), raw, sizeof(raw), fds, 20), 36);
    pt_close_fds(fds, 20);
    fx_stop(&f);
    assert_int_equal(f.srv.rc, -EPROTO);
    assert_non_null(strstr(f.srv.why, "truncated"));
}

/* The client closes in the middle of a message (fd attached): the server
 * sees -EPROTO and the fd is closed. */
static void test_client_closes_mid_message(void **state)
{
    (void)state;
    struct fx f;
    fx_start(&f, SRV_GOOD);
    negotiate(&f);
    int mfd = memfd_create("g", MFD_CLOEXEC);
    uint8_t raw[30] = {0};
    struct vu_hdr h = {.msg_id = 52, .cmd = VU_CMD_DMA_MAP, .msg_size = 48};
    memcpy(raw, &h, 16);
    assert_int_equal(vu_client_raw(f.cl, raw, sizeof(raw), &mfd, 1, false, NULL), 0);
    close(mfd);
    fx_stop(&f);
    assert_int_equal(f.srv.rc, -EPROTO);
    assert_non_null(strstr(f.srv.why, "inside a message"));
}

static void test_bad_servers(void **state)
{
    (void)state;
    struct fx f;
    struct vu_device_info di;

    fx_start(&f, SRV_WRONG_ID);
    negotiate(&f);
    assert_int_equal(vu_client_get_info(f.cl, &di), -EPROTO);
    assert_non_null(strstr(vu_client_error(f.cl), "reply id"));
    fx_stop(&f);

    fx_start(&f, SRV_COMMAND_FIRST);
    negotiate(&f);
    assert_int_equal(vu_client_get_info(f.cl, &di), -EPROTO);
    assert_non_null(strstr(vu_client_error(f.cl), "server sent command 11"));
    fx_stop(&f);

    fx_start(&f, SRV_OVERSIZE_REPLY);
    negotiate(&f);
    struct vu_client_region reg;
    assert_int_equal(vu_client_get_region_info(f.cl, 0, 32, &reg), -E2BIG);
    assert_int_equal(reg.fd, -1);
    fx_stop(&f);

    fx_start(&f, SRV_SILENT_RESET);
    negotiate(&f);
    vu_client_set_timeout(f.cl, 100);
    assert_int_equal(vu_client_reset(f.cl), -ETIMEDOUT);
    fx_stop(&f);

    fx_start(&f, SRV_CLOSE_MID_REPLY);
    negotiate(&f);
    assert_int_equal(vu_client_get_info(f.cl, &di), -EPROTO);
    assert_non_null(strstr(vu_client_error(f.cl), "inside a message"));
    fx_stop(&f);
}

/* A server that rejects the VERSION (bad offer) and one that is not there. */
static void test_negotiate_errors(void **state)
{
    (void)state;
    struct fx f;
    fx_start(&f, SRV_GOOD);
    struct vu_caps offer;
    vu_caps_defaults(&offer);
    offer.max_msg_fds = 2000; /* the server's parser refuses it */
    assert_int_equal(vu_client_negotiate(f.cl, &offer, NULL), -EINVAL);
    fx_stop(&f);

    struct vu_client *c;
    struct vub_err e;
    assert_int_equal(vu_client_connect("/nonexistent/vu.sock", &c, &e), -ENOENT);
    assert_null(c);
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    assert_int_equal(vu_client_connect(longp, &c, &e), -ENAMETOOLONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session),
        cmocka_unit_test(test_region_info_small_reply_fd),
        cmocka_unit_test(test_bad_client),
        cmocka_unit_test(test_client_fds_over_server_limit),
        cmocka_unit_test(test_client_ctrunc),
        cmocka_unit_test(test_client_closes_mid_message),
        cmocka_unit_test(test_bad_servers),
        cmocka_unit_test(test_negotiate_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
