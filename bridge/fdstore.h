/* SPDX-License-Identifier: MIT */
/*
 * fdstore.h - restart after a crash or `systemctl restart` through the
 * service manager's file descriptor store (--fd-store; the unit sets
 * FileDescriptorStoreMax=). docs/architecture.md, "Restart from the fd
 * store".
 *
 * Every fd the live re-exec state names (bridge/state.h) is also in the
 * store, each under its own name "vub-<token>" (FDSTORE=1, FDNAME=): fds
 * come back renumbered, and the VFIO device fd and every eventfd share one
 * anonymous inode, so neither their numbers nor st_dev/st_ino identify
 * them. One more fd, "vub-state", is a memfd this process keeps mapped:
 *
 *   [0, 4 KiB)          control: which snapshot is current (two slots),
 *                       the token counter and the message in hand
 *   [4 KiB, 64 KiB)     this process's fd -> token table (for a re-exec)
 *   [64 KiB, ...)       snapshot slots: a VUBSTATE blob each, whose fds are
 *                       tokens instead of fd numbers
 *
 * A snapshot is written after every change of the state (a session opens or
 * closes; VERSION, DMA_MAP, DMA_UNMAP, SET_IRQS, DEVICE_RESET) into the slot
 * not in use, and made current by one store; the fds it names that are new
 * are pushed before, the ones it no longer names removed after
 * (FDSTOREREMOVE=1). The message in hand is a write-ahead record: its id
 * when its header is peeked at (the connection reads exactly one message at
 * a time: vu_conn_set_rx_hook), and for a DMA_MAP its range before the
 * kernel call. What a new process does with it: br_fdstore_recover.
 *
 * The hot path when it is on: per message, a peek and three stores into
 * the control page; per state-changing message, one snapshot (an encode of
 * the state with one fstat per fd, one kcmp per fd, one pwrite). Nothing
 * at all when it is off.
 */
#ifndef BR_FDSTORE_H
#define BR_FDSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reexec.h"
#include "state.h"
#include "vu_proto.h"

#define BR_FDSTORE_STATE_NAME "vub-state"
#define BR_FDSTORE_NAME_PREFIX "vub-"
#define BR_FDSTORE_CTL_SIZE 4096u
#define BR_FDSTORE_TABLE_END (64u << 10)
/* Most fds one process keeps in the store (the fd -> token table's room);
 * above every count the state allows at once with the bridge's limits. */
#define BR_FDSTORE_MAX_FDS ((BR_FDSTORE_TABLE_END - BR_FDSTORE_CTL_SIZE) / 8u)
/* FileDescriptorStoreMax= in the unit must cover this (and does: 8192). */

/* The message in hand (in the control page). */
struct br_fdstore_wal {
    uint32_t in_hand;        /* 1: a message was peeked at and not finished */
    uint16_t msg_id, cmd;
    uint64_t seq;            /* this process's message count at the peek */
    uint32_t map_intent;     /* 1: a DMA_MAP of [iova, iova + size) may be
                              * (partly) in the IOMMU and not in a snapshot */
    uint32_t pad;
    uint64_t iova, size;
};

/* What a new process does about the message in hand. */
struct br_fdstore_recovery {
    bool end_session;        /* the client waits for a reply that no process
                              * can give: end the session (like a disconnect) */
    bool unmap;              /* unmap [iova, iova + size) in the IOMMU first */
    uint64_t iova, size;
    uint16_t msg_id, cmd;
};

/* The decision, from the record, whether the message is still unread at
 * the head of the connection (peeked there with the same id), the last
 * snapshot's done_seq, and the snapshot's DMA table (maps in IOVA order):
 *  - nothing in hand, or its seq is the snapshot's done_seq (it was
 *    answered and its effect is in the snapshot): serve on;
 *  - still unread: serve on (it will be read again);
 *  - otherwise the session ends: the request died with the process (its
 *    fds and body with it), the device may or may not have seen it, and a
 *    VMM told at once (a disconnect) is better off than one waiting for a
 *    reply; and an unconfirmed DMA_MAP's range is unmapped if no map of
 *    the snapshot touches it (what is there can only be from that request;
 *    an overlapping request was refused before any kernel call). An
 *    unconfirmed DMA_UNMAP needs nothing: the session's end unmaps the
 *    snapshot's maps, and type1 succeeds on a range already unmapped.
 * Pure. */
void br_fdstore_recover(const struct br_fdstore_wal *w, bool unread, uint64_t done_seq,
                        const struct br_state_map *maps, size_t nm,
                        struct br_fdstore_recovery *out);

/* Is the fd store in use in this process. */
bool br_fdstore_on(void);

/* Start using the store (--fd-store). On a fresh start: a new state memfd,
 * pushed. After a live re-exec: the state memfd and the token table the
 * previous program left ($VUB_FDSTORE_STATE_FD). -errno (logged). */
int br_fdstore_open(bool after_reexec);
/* Before a live re-exec: keep the state memfd open across execve. */
void br_fdstore_before_exec(void);
/* A re-exec failed: back to the state before br_fdstore_before_exec. */
void br_fdstore_exec_failed(void);

/* A new process with $LISTEN_FDS: if the store holds a state, decode its
 * current snapshot into st with the fds it got back (checked: each the file
 * the old process had), drop what the snapshot does not name, and decide
 * about the message in hand. 1: st holds a state to resume (then
 * br_fdstore_open(false) is not needed: the store is in use), 0: no state
 * in the store (a fresh start; the fds given are closed), -errno: a state
 * that cannot be taken (logged; nothing applied). */
int br_fdstore_take(const struct br_config *cfg, struct br_state *st,
                    struct br_fdstore_recovery *rec);

/* What the daemon is made of, for the snapshots (set once serving). */
void br_fdstore_set_parts(const struct br_reexec_parts *p);
/* The state changed: snapshot now. -errno (logged; then no snapshot is
 * current until the next one is written, and a restart starts afresh: the
 * old one might lack a mapping the IOMMU has). */
int br_fdstore_changed(void);

/* The message path (server.c): the connection's rx hook (header peeked),
 * the message received (records a DMA_MAP's range), the message handled
 * and answered (snapshot if it changed the state; then nothing in hand). */
void br_fdstore_peeked(void *arg, const struct vu_hdr *h);
void br_fdstore_received(const struct vu_msg *m);
void br_fdstore_handled(uint16_t cmd);

/* For the unit tests: the pure pieces of the layout. */
struct br_fdstore_slot {
    uint64_t off, len, cap;  /* where in the memfd, bytes, room there */
    uint64_t done_seq;       /* the last message whose effect it holds */
};
struct br_fdstore_ctl {
    char magic[8];           /* "VUBFDST1" */
    uint32_t version;        /* 1 */
    int32_t pid;             /* the process that writes it */
    uint32_t active;         /* current slot, 0 or 1; 2: none yet */
    uint32_t next_token;
    struct br_fdstore_slot slot[2];
    uint32_t n_table;        /* entries in the fd -> token table */
    uint32_t pad;
    struct br_fdstore_wal wal;
};

#endif /* BR_FDSTORE_H */
