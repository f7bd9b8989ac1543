/* SPDX-License-Identifier: MIT */
/*
 * vu_client.h - a small, synchronous vfio-user client. One typed call per
 * command; replies are matched by message id (a reply with another id, or a
 * server->client command that is not answerable, is a protocol error:
 * -EPROTO). Used by tools (vfio-user-probe, vfio-user-bench) and tests.
 *
 * All calls return 0 (or a byte count where said) or a negative errno; an
 * error reply from the server yields -error_no. The reason of the last
 * failure is in vu_client_error(). Nothing here prints.
 */
#ifndef VU_CLIENT_H
#define VU_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "vu_proto.h"

struct vu_client;

/* Connect to a UNIX socket path. *out is allocated; free with vu_client_close. */
int vu_client_connect(const char *path, struct vu_client **out, struct vub_err *err);
/* Wrap an already-connected socket (takes ownership of fd). */
int vu_client_from_fd(int fd, struct vu_client **out, struct vub_err *err);
void vu_client_close(struct vu_client *c);
const char *vu_client_error(const struct vu_client *c);
/* The underlying socket (for poll, or for raw tests). */
int vu_client_fd(const struct vu_client *c);
/* Per-reply timeout in ms (default 10000; 0 = none). Expiry gives -ETIMEDOUT. */
void vu_client_set_timeout(struct vu_client *c, int ms);
/* Busy polling: spin up to `us` microseconds for each reply before sleeping
 * in poll (0 = off, the default). Burns a core while it waits. */
void vu_client_set_busy_poll(struct vu_client *c, unsigned us);

/* VERSION: send `offer` (NULL = a QEMU-like offer: max_msg_fds 16, 1 MiB,
 * 65535 maps, pgsizes 4096, write_multiple true, migration object), parse the
 * server's reply into *server (may be NULL). Must be the first call. Sends
 * at most the server's max_msg_fds fds per message afterwards. */
int vu_client_negotiate(struct vu_client *c, const struct vu_caps *offer, struct vu_caps *server);
/* The server's capabilities after negotiation. */
const struct vu_caps *vu_client_server_caps(const struct vu_client *c);

/* DMA_MAP: fd may be -1 (no fd attached; offset must then be 0). The fd is
 * not closed. flags: VU_DMA_MAP_FLAG_READ|WRITE. */
int vu_client_dma_map(struct vu_client *c, uint64_t iova, uint64_t size, int fd,
                      uint64_t offset, uint32_t flags);
/* DMA_UNMAP: flags 0 or VU_DMA_UNMAP_FLAG_ALL (iova = size = 0). */
int vu_client_dma_unmap(struct vu_client *c, uint64_t iova, uint64_t size, uint32_t flags);

int vu_client_get_info(struct vu_client *c, struct vu_device_info *out);

struct vu_client_region {
    struct vu_region_info info;   /* as replied (argsz = size needed) */
    struct vu_region_caps caps;   /* parsed chain (zeroed if none) */
    int fd;                       /* region fd for mmap, or -1; owned by caller */
};
/* GET_REGION_INFO with the argsz-retry dance: first asks with argsz 32 (or
 * `argsz` if non-zero), and if the server needs more, asks again with the
 * size it said (capped at 32 + VU_MAX_REGION_CAPS). An fd that came with a
 * too-small reply is closed. out->fd must be closed by the caller. */
int vu_client_get_region_info(struct vu_client *c, uint32_t index, uint32_t argsz,
                              struct vu_client_region *out);

int vu_client_get_irq_info(struct vu_client *c, uint32_t index, struct vu_irq_info *out);

/* SET_IRQS. DATA_EVENTFD: fds[nfds] (nfds 0 = de-assign; else nfds == count;
 * the fds are not closed). DATA_BOOL: bools[count]. DATA_NONE: neither. Longer
 * fd arrays than the server's max_msg_fds are NOT split here (that is the
 * caller's business, so tests can reproduce QEMU's chunks). */
int vu_client_set_irqs(struct vu_client *c, uint32_t flags, uint32_t index, uint32_t start,
                       uint32_t count, const int *fds, size_t nfds, const uint8_t *bools);

/* REGION_READ: returns bytes read (may be < count) or -errno. */
ssize_t vu_client_region_read(struct vu_client *c, uint32_t index, uint64_t offset,
                              void *buf, uint32_t count);
/* REGION_WRITE: returns bytes written; with no_reply returns count after
 * the send (posted write). */
ssize_t vu_client_region_write(struct vu_client *c, uint32_t index, uint64_t offset,
                               const void *buf, uint32_t count, bool no_reply);
/* REGION_WRITE_MULTI: returns writes completed (no_reply: n after the send). */
ssize_t vu_client_region_write_multi(struct vu_client *c, const struct vu_write_multi_entry *wrs,
                                     uint32_t n, bool no_reply);

int vu_client_reset(struct vu_client *c);

/* GET_REGION_IO_FDS: returns the reply payload in buf (argsz bytes at most)
 * and the received fds (caller closes). Returns payload bytes. *nfds is in/out:
 * on entry the room in fds[], on return the number received; more fds than
 * room is -E2BIG (all of them closed). */
ssize_t vu_client_get_region_io_fds(struct vu_client *c, uint32_t index, uint32_t argsz,
                                    void *buf, int *fds, size_t *nfds);
/* DEVICE_FEATURE: request data in/out; returns reply payload bytes. argsz 0
 * means 8 + data_len. A reply payload larger than reply_sz is -E2BIG. */
ssize_t vu_client_device_feature(struct vu_client *c, uint32_t flags, const void *data,
                                 size_t data_len, uint32_t argsz, void *reply, size_t reply_sz);
ssize_t vu_client_mig_data_read(struct vu_client *c, void *buf, uint32_t size);
int vu_client_mig_data_write(struct vu_client *c, const void *buf, uint32_t size);

/* Raw exchange for tests of bad input: send exactly `len` bytes from `bytes`
 * (a whole message or garbage; no header is built) with fds, then, if
 * want_reply, receive one message into *reply (caller releases). */
int vu_client_raw(struct vu_client *c, const void *bytes, size_t len, const int *fds,
                  size_t nfds, bool want_reply, struct vu_msg *reply);
/* Send a command built here (header filled in with a fresh msg_id) and, unless
 * VU_F_NO_REPLY is in flags, wait for the reply with the same id. */
int vu_client_call(struct vu_client *c, uint16_t cmd, uint32_t flags, const void *payload,
                   size_t len, const int *fds, size_t nfds, struct vu_msg *reply);

#endif /* VU_CLIENT_H */
