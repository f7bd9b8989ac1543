/* SPDX-License-Identifier: MIT */
/*
 * state.h - the daemon's whole state as bytes, for a live re-exec
 * (bridge/reexec.h): what one process of the bridge hands to the next one
 * through a memfd, with the fds themselves passed by number over execve().
 *
 * The format (all integers little-endian):
 *   header  "VUBSTATE" | u32 version | u32 0 | u64 body length | u32 CRC-32
 *           of the body | u32 0                               (32 bytes)
 *   body    the fields of struct br_state in a fixed order (state.c).
 * Every fd is written with the st_dev and st_ino it had in the old process,
 * so that the new one can check it inherited the same open file
 * (br_reexec_check_fds) before it uses any.
 *
 * Pure: no fd is opened, closed or looked at here; nothing is printed.
 * br_state_decode parses and validates everything (lengths, counts against
 * their limits, DMA ranges ordered and disjoint, backing references, fd
 * numbers distinct) before it returns, so a caller applies a state that is
 * whole or nothing at all.
 */
#ifndef BR_STATE_H
#define BR_STATE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hv.h"
#include "vu_proto.h"

#define BR_STATE_MAGIC "VUBSTATE"
#define BR_STATE_VERSION 1u
#define BR_STATE_HDR_SIZE 32u
/* Largest state accepted: a full DMA table (65535 maps) and the largest
 * read-ahead fit in well under this. */
#define BR_STATE_MAX_BYTES (96u << 20)
/* Bytes of read-ahead carried (a message the limits let in, and a bit). */
#define BR_STATE_MAX_RX ((size_t)VU_MAX_DATA_XFER + (1u << 20))
#define BR_STATE_MAX_MAPS 65535u
#define BR_STATE_MAX_BACKINGS 256u
#define BR_STATE_MAX_RETIRED 16u
#define BR_STATE_MAX_IRQ_INDEXES 16u
#define BR_STATE_MAX_IRQ_VECTORS 2048u

/* One fd and the open file it was (fd -1: none; dev/ino then 0). */
struct br_state_fd {
    int32_t fd;
    uint64_t dev, ino;
};

struct br_state_sock {
    struct br_state_fd fd;       /* the listening socket; fd -1: none */
    struct br_state_fd dir_fd;   /* O_PATH fd of its directory */
    char name[NAME_MAX + 1];
    uint64_t file_dev, file_ino; /* the socket file created (ino 0: removed) */
};

struct br_state_devfile {
    struct br_state_fd fd;
    int32_t owner_pid;
    uint32_t owner_uid;
};

/* Limits and policy decisions in force (they stay in force for the
 * session whatever the new process's command line or policy says). */
struct br_state_limits {
    uint64_t max_dma_bytes;
    uint32_t max_dma_maps;
    uint32_t handshake_timeout_ms, io_timeout_ms;
    bool no_mmap, no_reset;
    uint8_t msix_mmap;           /* enum br_msix_mmap */
    uint8_t stale_holders;       /* enum br_stale */
};

struct br_state_backing {
    struct br_state_fd fd;       /* dev/ino also identify the object (dedup) */
    uint64_t len;                /* the whole-object mapping; 0: none */
    bool writable, idle;
    uint32_t refs;               /* maps that use it (checked against them) */
    uint64_t idle_seq;
};

struct br_state_map {
    uint64_t iova, size, offset; /* offset: into the backing's object */
    uint32_t flags;              /* VU_DMA_MAP_FLAG_READ|WRITE */
    int32_t backing;             /* index into backings, -1: no fd */
    /* an own mmap of [own_off, own_off + own_len) of the object (the whole
     * mapping did not cover it); own_len 0: none */
    uint64_t own_off, own_len;
};

struct br_state_irq {
    uint32_t count, flags, active;
    bool used;
    bool has_fds;                /* fds[] exists (count entries, fd -1: none) */
    struct br_state_fd *fds;
};

struct br_state_session {
    struct br_state_fd conn;
    int32_t pid;
    uint32_t uid, gid;
    bool negotiated;
    struct vu_caps client_caps, agreed;
    uint32_t lim_max_msg_size, lim_max_fds;
    uint64_t n_msgs, n_errors;
    /* the transport's read-ahead: bytes not handed out yet and the fds held
     * for the message at rx_fds_at (an offset into rx) */
    uint8_t *rx;
    size_t rx_len;
    uint32_t rx_nfds;
    struct br_state_fd rx_fds[VU_MAX_FDS_PER_MSG];
    uint32_t rx_fds_at;
    bool has_devfile;
    struct br_state_devfile devfile;
    /* the DMA table */
    uint64_t dma_bytes, idle_clock;
    uint32_t nb, nm;
    struct br_state_backing *backings;
    struct br_state_map *maps;   /* in IOVA order */
    uint32_t n_irq;
    struct br_state_irq irq[BR_STATE_MAX_IRQ_INDEXES];
};

struct br_state {
    char addr[HV_ADDR_LEN];      /* the device served */
    struct br_state_fd container, group_fd, devfd;
    int32_t group;
    uint16_t command0;
    uint32_t reserved_irqs;
    struct br_state_fd req_fd;   /* the device watch's request eventfd, -1 none */
    struct br_state_sock listen, status;
    uint32_t accepted, refused, closed;
    struct br_state_limits lim;
    uint32_t n_retired;
    struct br_state_devfile retired[BR_STATE_MAX_RETIRED];
    bool has_session;
    struct br_state_session s;
    uint64_t stopped_ns;         /* CLOCK_MONOTONIC when the old loop stopped */
};

/* Serialise st into a new buffer (*out, *len; the caller frees it). Every
 * count must be within the limits above (-EINVAL otherwise), -ENOMEM. */
int br_state_encode(const struct br_state *st, uint8_t **out, size_t *len);
/* Parse and validate len bytes into st (its arrays allocated; free with
 * br_state_free, also after an error). On error st holds nothing worth
 * applying, and why (<= whysz bytes) says what is wrong: -EBADMSG wrong
 * magic or corrupt (length, checksum, a field out of range), -EPROTO a
 * version this program does not read, -E2BIG over BR_STATE_MAX_BYTES. */
int br_state_decode(const uint8_t *buf, size_t len, struct br_state *st, char *why, size_t whysz);
void br_state_free(struct br_state *st);
/* Every fd the state names (>= 0), into out (up to max); returns how many
 * there are (may exceed max). */
size_t br_state_fds(const struct br_state *st, const struct br_state_fd **out, size_t max);
/* The same, to rewrite the fds (the fd store renames them). */
size_t br_state_fds_mut(struct br_state *st, struct br_state_fd **out, size_t max);

/* CRC-32 (IEEE 802.3, the zlib one). */
uint32_t br_crc32(const uint8_t *p, size_t n);

#endif /* BR_STATE_H */
