/* SPDX-License-Identifier: MIT */
/*
 * A small synchronous vfio-user client: one request in flight, replies
 * matched by message id. Each call bounds the reply it accepts to what the
 * request allows (argsz, count), so a misbehaving server cannot make it
 * allocate more.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "vu_client.h"

#define DEFAULT_TIMEOUT_MS 10000
/* Largest reply accepted where no tighter bound is known. */
#define GENEROUS_REPLY (VU_HDR_SIZE + 16u + VU_MAX_DATA_XFER)

struct vu_client {
    struct vu_conn conn;
    struct vub_err err;
    uint16_t next_id;
    int timeout_ms;
    unsigned spin_us;       /* busy polling for a reply before sleeping */
    bool rcvtimeo;          /* blocking socket with SO_RCVTIMEO = timeout_ms: a
                             * reply is waited for in recvmsg itself, no poll */
    bool negotiated;
    struct vu_caps server;
};

static int fail_conn(struct vu_client *c, int r)
{
    c->err = c->conn.err;
    return r;
}

int vu_client_from_fd(int fd, struct vu_client **out, struct vub_err *err)
{
    *out = NULL;
    if (fd < 0)
        return vub_fail(err, -EBADF, "client: invalid fd %d", fd);
    struct vu_client *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return vub_fail(err, -ENOMEM, "client: out of memory");
    }
    struct vu_limits lim = {.max_msg_size = GENEROUS_REPLY, .max_fds = VU_MAX_FDS_PER_MSG};
    vu_conn_init_socket(&c->conn, fd, &lim);
    c->next_id = 1;
    vu_caps_defaults(&c->server);
    vu_client_set_timeout(c, DEFAULT_TIMEOUT_MS);
    *out = c;
    return 0;
}

int vu_client_connect(const char *path, struct vu_client **out, struct vub_err *err)
{
    *out = NULL;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(sa.sun_path))
        return vub_fail(err, -ENAMETOOLONG, "client: socket path of %zu bytes", n);
    memcpy(sa.sun_path, path, n + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return vub_fail(err, -errno, "client: socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return vub_fail(err, -e, "client: connect %s: %s", path, strerror(e));
    }
    return vu_client_from_fd(fd, out, err);
}

void vu_client_close(struct vu_client *c)
{
    if (!c)
        return;
    vu_conn_close(&c->conn);
    free(c);
}

const char *vu_client_error(const struct vu_client *c)
{
    return c->err.msg;
}

int vu_client_fd(const struct vu_client *c)
{
    return c->conn.fd;
}

void vu_client_set_timeout(struct vu_client *c, int ms)
{
    c->timeout_ms = ms < 0 ? 0 : ms;
    /* On a blocking socket the kernel can time the wait for a reply: one
     * recvmsg instead of poll + recvmsg per reply. */
    int fl = fcntl(c->conn.fd, F_GETFL);
    struct timeval tv = {.tv_sec = c->timeout_ms / 1000,
                         .tv_usec = (c->timeout_ms % 1000) * 1000};
    c->rcvtimeo = fl >= 0 && !(fl & O_NONBLOCK) &&
                  setsockopt(c->conn.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0;
}

void vu_client_set_busy_poll(struct vu_client *c, unsigned us)
{
    c->spin_us = us;
}

const struct vu_caps *vu_client_server_caps(const struct vu_client *c)
{
    return &c->server;
}

/* Receive one message within the client's timeout, accepting at most
 * max_msg bytes. m is initialised already (both callers do it before they
 * send: a failed send leaves it empty too). */
__attribute__((always_inline))
static inline int recv_timed(struct vu_client *c, uint32_t max_msg, struct vu_msg *m)
{
    struct pollfd p = {.fd = c->conn.fd, .events = POLLIN};
    /* a reply already read with an earlier one, or caught spinning: no sleep */
    bool there = vu_conn_rx_ready(&c->conn) ||
                 (c->spin_us && vu_conn_rx_spin(&c->conn, c->spin_us)) || c->rcvtimeo;
    while (!there) {
        int r = poll(&p, 1, c->timeout_ms ? c->timeout_ms : -1);
        if (r > 0)
            break;
        if (r == 0)
            return vub_fail(&c->err, -ETIMEDOUT, "no reply within %d ms", c->timeout_ms);
        if (errno != EINTR)
            return vub_fail(&c->err, -errno, "poll: %s", strerror(errno));
    }
    c->conn.lim.max_msg_size = max_msg;
    int r;
    /* A non-blocking socket may still say EAGAIN after POLLIN. */
    while ((r = vu_recv(&c->conn, m)) == -EAGAIN) {
        if (c->rcvtimeo) {   /* SO_RCVTIMEO ran out with nothing read */
            c->conn.lim.max_msg_size = GENEROUS_REPLY;
            return vub_fail(&c->err, -ETIMEDOUT, "no reply within %d ms", c->timeout_ms);
        }
        if (poll(&p, 1, c->timeout_ms ? c->timeout_ms : -1) == 0) {
            c->conn.lim.max_msg_size = GENEROUS_REPLY;
            return vub_fail(&c->err, -ETIMEDOUT, "no reply within %d ms", c->timeout_ms);
        }
    }
    c->conn.lim.max_msg_size = GENEROUS_REPLY;
    return r ? fail_conn(c, r) : 0;
}

__attribute__((always_inline))
static inline int send_cmd(struct vu_client *c, uint16_t cmd, uint32_t flags, uint16_t *id,
                           const void *p1, size_t l1, const void *p2, size_t l2,
                           const int *fds, size_t nfds)
{
    if (c->negotiated && nfds > c->server.max_msg_fds)
        return vub_fail(&c->err, -E2BIG, "%s: %zu fds, the server accepts %u",
                       vu_cmd_name(cmd), nfds, c->server.max_msg_fds);
    if (l1 > UINT32_MAX - VU_HDR_SIZE || l2 > UINT32_MAX - VU_HDR_SIZE - l1)
        return vub_fail(&c->err, -E2BIG, "%s: payload too large", vu_cmd_name(cmd));
    struct vu_hdr h = {
        .msg_id = c->next_id++,
        .cmd = cmd,
        .msg_size = (uint32_t)(VU_HDR_SIZE + l1 + l2),
        .flags = flags,
    };
    struct iovec iov[3] = {
        {.iov_base = &h, .iov_len = sizeof(h)},
        {.iov_base = (void *)p1, .iov_len = p1 ? l1 : 0},
        {.iov_base = (void *)p2, .iov_len = p2 ? l2 : 0},
    };
    *id = h.msg_id;
    int r = vu_conn_sendv(&c->conn, iov, 3, h.msg_size, fds, nfds);
    return r ? fail_conn(c, r) : 0;
}

/* Wait for the reply to `id`; anything else is a protocol error. */
__attribute__((always_inline))
static inline int wait_reply(struct vu_client *c, uint16_t cmd, uint16_t id,
                             uint32_t max_payload, struct vu_msg *reply)
{
    uint64_t max_msg = (uint64_t)VU_HDR_SIZE + max_payload;
    int r = recv_timed(c, max_msg > GENEROUS_REPLY ? GENEROUS_REPLY : (uint32_t)max_msg, reply);
    if (r)
        return r;
    if ((reply->hdr.flags & VU_F_TYPE_MASK) != VU_F_TYPE_REPLY) {
        r = vub_fail(&c->err, -EPROTO, "%s: server sent command %u (%s) while a reply was due",
                    vu_cmd_name(cmd), reply->hdr.cmd, vu_cmd_name(reply->hdr.cmd));
        vu_msg_release(reply);
        return r;
    }
    if (reply->hdr.msg_id != id) {
        r = vub_fail(&c->err, -EPROTO, "%s: reply id %u, expected %u", vu_cmd_name(cmd),
                    reply->hdr.msg_id, id);
        vu_msg_release(reply);
        return r;
    }
    return 0;
}

/* Send, and unless No_reply, receive the matching reply (payload at most
 * max_payload bytes). Inlined into the message path's calls (REGION_READ,
 * DMA_MAP, DMA_UNMAP: their constant arguments fold away), called by the
 * others through call2. */
__attribute__((always_inline))
static inline int call_inline(struct vu_client *c, uint16_t cmd, uint32_t flags, const void *p1,
                              size_t l1, const void *p2, size_t l2, const int *fds, size_t nfds,
                              uint32_t max_payload, struct vu_msg *reply)
{
    uint16_t id = 0;
    vu_msg_init(reply);
    int r = send_cmd(c, cmd, flags, &id, p1, l1, p2, l2, fds, nfds);
    if (r || (flags & VU_F_NO_REPLY))
        return r;
    return wait_reply(c, cmd, id, max_payload, reply);
}

static int call2(struct vu_client *c, uint16_t cmd, uint32_t flags, const void *p1, size_t l1,
                 const void *p2, size_t l2, const int *fds, size_t nfds, uint32_t max_payload,
                 struct vu_msg *reply)
{
    return call_inline(c, cmd, flags, p1, l1, p2, l2, fds, nfds, max_payload, reply);
}

int vu_client_call(struct vu_client *c, uint16_t cmd, uint32_t flags, const void *payload,
                   size_t len, const int *fds, size_t nfds, struct vu_msg *reply)
{
    return call2(c, cmd, flags, payload, len, NULL, 0, fds, nfds,
                 GENEROUS_REPLY - VU_HDR_SIZE, reply);
}

int vu_client_raw(struct vu_client *c, const void *bytes, size_t len, const int *fds,
                  size_t nfds, bool want_reply, struct vu_msg *reply)
{
    if (reply)
        vu_msg_init(reply);
    struct iovec iov = {.iov_base = (void *)bytes, .iov_len = len};
    int r = vu_conn_sendv(&c->conn, &iov, 1, len, fds, nfds);
    if (r)
        return fail_conn(c, r);
    if (!want_reply)
        return 0;
    if (!reply)
        return vub_fail(&c->err, -EINVAL, "raw: want_reply without a reply message");
    return recv_timed(c, GENEROUS_REPLY, reply);
}

/* Run a decoder's status through the client's error. */
static int note(struct vu_client *c, int r, const struct vub_err *e)
{
    if (r)
        c->err = *e;
    return r;
}

static void caps_qemu_like(struct vu_caps *o)
{
    vu_caps_defaults(o);
    o->max_msg_fds = VU_MAX_FDS_PER_MSG;
    o->max_data_xfer_size = VU_DEFAULT_DATA_XFER;
    o->max_dma_maps = 65535;
    o->pgsizes = 4096;
    o->write_multiple = true;
    o->has_migration = true;
    o->migration_pgsize = 4096;
    o->migration_max_bitmap_size = 256u << 20;
}

int vu_client_negotiate(struct vu_client *c, const struct vu_caps *offer, struct vu_caps *server)
{
    if (c->negotiated)
        return vub_fail(&c->err, -EALREADY, "VERSION: already negotiated");
    struct vu_caps def;
    if (!offer) {
        caps_qemu_like(&def);
        offer = &def;
    }
    char json[VU_MAX_JSON + 1];
    ssize_t jl = vu_caps_emit(offer, json, sizeof(json));
    if (jl < 0)
        return vub_fail(&c->err, (int)jl, "VERSION: offer does not fit in %u bytes", VU_MAX_JSON);
    struct vu_version v = {.major = 0, .minor = 0};
    struct vu_msg reply;
    int r = call2(c, VU_CMD_VERSION, 0, &v, sizeof(v), json, (size_t)jl, NULL, 0,
                  sizeof(v) + VU_MAX_JSON + 1, &reply);
    if (r)
        return r;
    struct vub_err e;
    struct vu_version_req vr;
    struct vu_caps sc;
    r = vu_decode_version_reply(&reply, &vr, &e);
    if (!r && (vr.major != 0 || vr.minor != 0))
        r = vub_fail(&e, -EPROTO, "VERSION: server answered %u.%u to our 0.0", vr.major,
                    vr.minor);
    if (!r) {
        if (vr.json)
            r = vu_caps_parse(vr.json, vr.json_len, &sc, &e);
        else
            vu_caps_defaults(&sc);
        if (r)
            r = -EPROTO;
    }
    vu_msg_release(&reply);
    if (r)
        return note(c, r, &e);
    c->server = sc;
    c->negotiated = true;
    c->conn.lim.max_fds = offer->max_msg_fds < VU_MAX_FDS_PER_MSG ? offer->max_msg_fds
                                                                   : VU_MAX_FDS_PER_MSG;
    if (server)
        *server = sc;
    return 0;
}

/* A command whose reply has no payload. */
static int simple_call(struct vu_client *c, uint16_t cmd, uint32_t flags, const void *p1,
                       size_t l1, const void *p2, size_t l2, const int *fds, size_t nfds)
{
    struct vu_msg reply;
    int r = call_inline(c, cmd, flags, p1, l1, p2, l2, fds, nfds, 0, &reply);
    if (r || (flags & VU_F_NO_REPLY))
        return r;
    struct vub_err e;
    r = note(c, vu_decode_empty_reply(&reply, cmd, &e), &e);
    vu_msg_release(&reply);
    return r;
}

int vu_client_dma_map(struct vu_client *c, uint64_t iova, uint64_t size, int fd, uint64_t offset,
                      uint32_t flags)
{
    if (fd < 0 && offset)
        return vub_fail(&c->err, -EINVAL, "DMA_MAP: offset without an fd");
    struct vu_dma_map d = {
        .argsz = sizeof(d), .flags = flags, .offset = offset, .address = iova, .size = size,
    };
    return simple_call(c, VU_CMD_DMA_MAP, 0, &d, sizeof(d), NULL, 0, fd >= 0 ? &fd : NULL,
                       fd >= 0 ? 1 : 0);
}

int vu_client_dma_unmap(struct vu_client *c, uint64_t iova, uint64_t size, uint32_t flags)
{
    struct vu_dma_unmap d = {.argsz = sizeof(d), .flags = flags, .address = iova, .size = size};
    struct vu_msg reply;
    int r = call_inline(c, VU_CMD_DMA_UNMAP, 0, &d, sizeof(d), NULL, 0, NULL, 0, sizeof(d),
                        &reply);
    if (r)
        return r;
    struct vub_err e;
    struct vu_dma_unmap got;
    r = vu_decode_dma_unmap_reply(&reply, &got, &e);
    if (!r && (got.address != iova || got.size != size || got.flags != flags))
        r = vub_fail(&e, -EPROTO, "DMA_UNMAP: reply does not echo the request");
    vu_msg_release(&reply);
    return note(c, r, &e);
}

int vu_client_get_info(struct vu_client *c, struct vu_device_info *out)
{
    struct vu_device_info d = {.argsz = sizeof(d)};
    struct vu_msg reply;
    int r = call2(c, VU_CMD_DEVICE_GET_INFO, 0, &d, sizeof(d), NULL, 0, NULL, 0, sizeof(d),
                  &reply);
    if (r)
        return r;
    struct vub_err e;
    r = note(c, vu_decode_device_info_reply(&reply, out, &e), &e);
    vu_msg_release(&reply);
    return r;
}

/* One GET_REGION_INFO round. On success *reply holds the checked reply. */
static int region_info_round(struct vu_client *c, uint32_t index, uint32_t ask,
                             struct vu_region_info *info, struct vu_msg *reply)
{
    struct vu_region_info q = {.argsz = ask, .index = index};
    int r = call2(c, VU_CMD_DEVICE_GET_REGION_INFO, 0, &q, sizeof(q), NULL, 0, NULL, 0, ask,
                  reply);
    if (r)
        return r;
    struct vub_err e;
    r = vu_reply_status(reply, VU_CMD_DEVICE_GET_REGION_INFO, &e);
    if (!r && reply->nfds > 1)
        r = vub_fail(&e, -EPROTO, "DEVICE_GET_REGION_INFO: %zu fds in the reply", reply->nfds);
    if (!r && reply->payload_len < sizeof(*info))
        r = vub_fail(&e, -EPROTO, "DEVICE_GET_REGION_INFO: reply payload %zu < 32",
                    reply->payload_len);
    if (!r) {
        memcpy(info, reply->payload, sizeof(*info));
        if (info->index != index)
            r = vub_fail(&e, -EPROTO, "DEVICE_GET_REGION_INFO: reply for index %u, asked %u",
                        info->index, index);
    }
    if (r) {
        vu_msg_release(reply);
        return note(c, r, &e);
    }
    return 0;
}

int vu_client_get_region_info(struct vu_client *c, uint32_t index, uint32_t argsz,
                              struct vu_client_region *out)
{
    const uint32_t max_ask = sizeof(struct vu_region_info) + VU_MAX_REGION_CAPS;
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    uint32_t ask = argsz ? argsz : sizeof(struct vu_region_info);
    if (ask < sizeof(struct vu_region_info) || ask > max_ask)
        return vub_fail(&c->err, -EINVAL, "DEVICE_GET_REGION_INFO: argsz %u not in 32..%u", ask,
                       max_ask);
    struct vu_msg reply;
    struct vu_region_info info;
    for (int round = 0;; round++) {
        int r = region_info_round(c, index, ask, &info, &reply);
        if (r)
            return r;
        if (info.argsz <= ask)
            break;
        /* Too small: drop this reply (and any fd with it) and ask again. */
        vu_msg_release(&reply);
        if (round > 0)
            return vub_fail(&c->err, -EPROTO,
                           "DEVICE_GET_REGION_INFO: server wants argsz %u after %u", info.argsz,
                           ask);
        if (info.argsz > max_ask)
            return vub_fail(&c->err, -E2BIG, "DEVICE_GET_REGION_INFO: argsz %u exceeds %u",
                           info.argsz, max_ask);
        ask = info.argsz;
    }
    struct vub_err e;
    int r = vu_region_caps_parse(reply.payload, reply.payload_len, &out->caps, &e);
    if (r) {
        vu_msg_release(&reply);
        return note(c, -EPROTO, &e);
    }
    out->info = info;
    if (reply.nfds)
        out->fd = vu_msg_take_fd(&reply, 0);
    vu_msg_release(&reply);
    return 0;
}

int vu_client_get_irq_info(struct vu_client *c, uint32_t index, struct vu_irq_info *out)
{
    struct vu_irq_info q = {.argsz = sizeof(q), .index = index};
    struct vu_msg reply;
    int r = call2(c, VU_CMD_DEVICE_GET_IRQ_INFO, 0, &q, sizeof(q), NULL, 0, NULL, 0, sizeof(q),
                  &reply);
    if (r)
        return r;
    struct vub_err e;
    r = vu_decode_irq_info_reply(&reply, out, &e);
    if (!r && out->index != index)
        r = vub_fail(&e, -EPROTO, "DEVICE_GET_IRQ_INFO: reply for index %u, asked %u",
                    out->index, index);
    vu_msg_release(&reply);
    return note(c, r, &e);
}

int vu_client_set_irqs(struct vu_client *c, uint32_t flags, uint32_t index, uint32_t start,
                       uint32_t count, const int *fds, size_t nfds, const uint8_t *bools)
{
    bool with_bools = (flags & VU_IRQ_SET_DATA_BOOL) != 0;
    if (with_bools && !bools && count)
        return vub_fail(&c->err, -EINVAL, "DEVICE_SET_IRQS: DATA_BOOL without data");
    size_t extra = with_bools ? count : 0;
    if (extra > VU_MAX_DATA_XFER)
        return vub_fail(&c->err, -E2BIG, "DEVICE_SET_IRQS: count %u", count);
    struct vu_irq_set s = {
        .argsz = (uint32_t)(sizeof(s) + extra),
        .flags = flags,
        .index = index,
        .start = start,
        .count = count,
    };
    return simple_call(c, VU_CMD_DEVICE_SET_IRQS, 0, &s, sizeof(s), extra ? bools : NULL, extra,
                       fds, nfds);
}

static int check_xfer(struct vu_client *c, const char *what, uint64_t count)
{
    if (count > VU_MAX_DATA_XFER)
        return vub_fail(&c->err, -E2BIG, "%s: %llu bytes exceed %u", what,
                       (unsigned long long)count, VU_MAX_DATA_XFER);
    if (c->negotiated && count > c->server.max_data_xfer_size)
        return vub_fail(&c->err, -E2BIG, "%s: %llu bytes exceed the server's "
                       "max_data_xfer_size %llu", what, (unsigned long long)count,
                       (unsigned long long)c->server.max_data_xfer_size);
    return 0;
}

ssize_t vu_client_region_read(struct vu_client *c, uint32_t index, uint64_t offset, void *buf,
                              uint32_t count)
{
    int r = check_xfer(c, "REGION_READ", count);
    if (r)
        return r;
    struct vu_region_access a = {.offset = offset, .region = index, .count = count};
    struct vu_msg reply;
    r = call_inline(c, VU_CMD_REGION_READ, 0, &a, sizeof(a), NULL, 0, NULL, 0, sizeof(a) + count,
                    &reply);
    if (r)
        return r;
    struct vub_err e;
    struct vu_region_access_req got;
    r = vu_decode_region_read_reply(&reply, count, &got, &e);
    if (!r && (got.acc.offset != offset || got.acc.region != index))
        r = vub_fail(&e, -EPROTO, "REGION_READ: reply for region %u offset 0x%llx",
                    got.acc.region, (unsigned long long)got.acc.offset);
    if (!r && got.acc.count)
        memcpy(buf, got.data, got.acc.count);
    ssize_t ret = r ? note(c, r, &e) : (ssize_t)got.acc.count;
    vu_msg_release(&reply);
    return ret;
}

ssize_t vu_client_region_write(struct vu_client *c, uint32_t index, uint64_t offset,
                               const void *buf, uint32_t count, bool no_reply)
{
    int r = check_xfer(c, "REGION_WRITE", count);
    if (r)
        return r;
    struct vu_region_access a = {.offset = offset, .region = index, .count = count};
    struct vu_msg reply;
    uint32_t fl = no_reply ? VU_F_NO_REPLY : 0;
    r = call2(c, VU_CMD_REGION_WRITE, fl, &a, sizeof(a), buf, count, NULL, 0, sizeof(a), &reply);
    if (r)
        return r;
    if (no_reply)
        return count;
    struct vub_err e;
    struct vu_region_access got;
    r = vu_decode_region_write_reply(&reply, count, &got, &e);
    vu_msg_release(&reply);
    return r ? note(c, r, &e) : (ssize_t)got.count;
}

ssize_t vu_client_region_write_multi(struct vu_client *c, const struct vu_write_multi_entry *wrs,
                                     uint32_t n, bool no_reply)
{
    if (n == 0 || n > VU_WRITE_MULTI_MAX_ENTRIES)
        return vub_fail(&c->err, -EINVAL, "REGION_WRITE_MULTI: %u entries", n);
    struct vu_write_multi w = {.wr_cnt = n};
    struct vu_msg reply;
    uint32_t fl = no_reply ? VU_F_NO_REPLY : 0;
    int r = call2(c, VU_CMD_REGION_WRITE_MULTI, fl, &w, sizeof(w), wrs, (size_t)n * sizeof(*wrs),
                  NULL, 0, sizeof(w), &reply);
    if (r)
        return r;
    if (no_reply)
        return n;
    struct vub_err e;
    uint64_t done = 0;
    r = vu_decode_write_multi_reply(&reply, n, &done, &e);
    vu_msg_release(&reply);
    return r ? note(c, r, &e) : (ssize_t)done;
}

int vu_client_reset(struct vu_client *c)
{
    return simple_call(c, VU_CMD_DEVICE_RESET, 0, NULL, 0, NULL, 0, NULL, 0);
}

ssize_t vu_client_get_region_io_fds(struct vu_client *c, uint32_t index, uint32_t argsz,
                                    void *buf, int *fds, size_t *nfds)
{
    size_t cap = *nfds;
    *nfds = 0;
    if (argsz < sizeof(struct vu_region_io_fds_request))
        return vub_fail(&c->err, -EINVAL, "DEVICE_GET_REGION_IO_FDS: argsz %u < 16", argsz);
    struct vu_region_io_fds_request q = {.argsz = argsz, .index = index};
    struct vu_msg reply;
    int r = call2(c, VU_CMD_DEVICE_GET_REGION_IO_FDS, 0, &q, sizeof(q), NULL, 0, NULL, 0, argsz,
                  &reply);
    if (r)
        return r;
    struct vub_err e;
    r = vu_reply_status(&reply, VU_CMD_DEVICE_GET_REGION_IO_FDS, &e);
    if (!r && reply.payload_len < sizeof(q))
        r = vub_fail(&e, -EPROTO, "DEVICE_GET_REGION_IO_FDS: reply payload %zu < 16",
                    reply.payload_len);
    if (!r && reply.nfds > cap)
        r = vub_fail(&e, -E2BIG, "DEVICE_GET_REGION_IO_FDS: %zu fds, room for %zu", reply.nfds,
                    cap);
    ssize_t ret = r;
    if (!r) {
        memcpy(buf, reply.payload, reply.payload_len);
        for (size_t i = 0; i < reply.nfds; i++)
            fds[i] = vu_msg_take_fd(&reply, i);
        *nfds = reply.nfds;
        ret = (ssize_t)reply.payload_len;
    } else {
        note(c, r, &e);
    }
    vu_msg_release(&reply);
    return ret;
}

ssize_t vu_client_device_feature(struct vu_client *c, uint32_t flags, const void *data,
                                 size_t data_len, uint32_t argsz, void *reply_buf,
                                 size_t reply_sz)
{
    size_t req_len = sizeof(struct vu_device_feature) + data_len;
    if (data_len > VU_MAX_DATA_XFER)
        return vub_fail(&c->err, -E2BIG, "DEVICE_FEATURE: %zu bytes of data", data_len);
    if (argsz == 0)
        argsz = (uint32_t)req_len;
    struct vu_device_feature f = {.argsz = argsz, .flags = flags};
    struct vu_msg reply;
    uint32_t max = argsz > req_len ? argsz : (uint32_t)req_len;
    int r = call2(c, VU_CMD_DEVICE_FEATURE, 0, &f, sizeof(f), data, data_len, NULL, 0, max,
                  &reply);
    if (r)
        return r;
    struct vub_err e;
    r = vu_reply_status(&reply, VU_CMD_DEVICE_FEATURE, &e);
    if (!r && reply.nfds)
        r = vub_fail(&e, -EPROTO, "DEVICE_FEATURE: %zu fds in the reply", reply.nfds);
    if (!r && reply.payload_len > reply_sz)
        r = vub_fail(&e, -E2BIG, "DEVICE_FEATURE: reply of %zu bytes, room for %zu",
                    reply.payload_len, reply_sz);
    ssize_t ret = r;
    if (!r) {
        if (reply.payload_len)
            memcpy(reply_buf, reply.payload, reply.payload_len);
        ret = (ssize_t)reply.payload_len;
    } else {
        note(c, r, &e);
    }
    vu_msg_release(&reply);
    return ret;
}

ssize_t vu_client_mig_data_read(struct vu_client *c, void *buf, uint32_t size)
{
    int r = check_xfer(c, "MIG_DATA_READ", size);
    if (r)
        return r;
    if (size > UINT32_MAX - sizeof(struct vu_mig_data))
        return vub_fail(&c->err, -E2BIG, "MIG_DATA_READ: size %u", size);
    struct vu_mig_data q = {.argsz = (uint32_t)(sizeof(q) + size), .size = size};
    struct vu_msg reply;
    r = call2(c, VU_CMD_MIG_DATA_READ, 0, &q, sizeof(q), NULL, 0, NULL, 0, q.argsz, &reply);
    if (r)
        return r;
    struct vub_err e;
    struct vu_mig_data_req got;
    r = vu_decode_mig_data_read_reply(&reply, size, &got, &e);
    if (!r && got.mig.size)
        memcpy(buf, got.data, got.mig.size);
    ssize_t ret = r ? note(c, r, &e) : (ssize_t)got.mig.size;
    vu_msg_release(&reply);
    return ret;
}

int vu_client_mig_data_write(struct vu_client *c, const void *buf, uint32_t size)
{
    int r = check_xfer(c, "MIG_DATA_WRITE", size);
    if (r)
        return r;
    if (size > UINT32_MAX - sizeof(struct vu_mig_data))
        return vub_fail(&c->err, -E2BIG, "MIG_DATA_WRITE: size %u", size);
    struct vu_mig_data q = {.argsz = (uint32_t)(sizeof(q) + size), .size = size};
    return simple_call(c, VU_CMD_MIG_DATA_WRITE, 0, &q, sizeof(q), buf, size, NULL, 0);
}
