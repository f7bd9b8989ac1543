/* SPDX-License-Identifier: MIT */
/*
 * session.h - the state of one client connection (session.c): the
 * negotiated limits, its DMA map table (dma.h) and IRQ shadow tables
 * (irq.h), and how all of it is released when the client goes
 * (br_session_close quiesces the device). Everything a client creates is
 * owned here and has exactly one release path.
 */
#ifndef BR_SESSION_H
#define BR_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "device.h"
#include "dma.h"
#include "irq.h"
#include "vu_proto.h"

/* ---- the session ------------------------------------------------------------------ */

struct br_session {
    struct vu_conn conn;
    struct br_dev *dev;
    struct ucred peer;           /* SO_PEERCRED at accept */
    bool negotiated;             /* VERSION done */
    struct vu_caps client_caps;  /* what the client offered */
    struct vu_caps agreed;
    struct br_dma_table dma;
    struct br_irq_state irq;
    uint64_t n_msgs, n_errors;
    const char *close_reason;    /* set by whoever ends the session */
    bool log_quiet;              /* disconnect line at debug level (rate limit hit) */
    /* This session's own device file (hv ops->mmap_fd), opened at the first
     * region fd handed out; never the bridge's own. NULL until then. */
    struct br_devfile *devfile;
};

/* Create a session on an accepted socket (ownership of fd taken, even on
 * error). The socket is made non-blocking; a message once started must be
 * complete, and a reply sent, within the configured I/O timeout.
 * -EBUSY (logged, naming each holder) while a process still holds the
 * device file of an ended session (dev->retired; looked for again here,
 * and under --stale-holders kill ended first). */
int br_session_open(struct br_session **out, struct br_dev *dev, int fd, const struct ucred *peer);
/* Quiesce the device and release everything the client held, in this order:
 * bus mastering off, IRQs disabled (and shadow fds closed), every DMA mapping
 * removed from the IOMMU and unmapped, memory fds closed, device reset (if it
 * has FLAGS_RESET), COMMAND back to its value at start with bus mastering
 * off (a client may have turned decoding off; a reset restores what the
 * client wrote), socket closed, then the session's device file looked for
 * in every process (bridge/holders.h): still held, it is kept on
 * dev->retired (under --stale-holders kill the holders are killed first).
 * Logs the disconnect line. A session that never completed
 * VERSION cannot have changed anything (every other command is refused
 * before it), so the device is left alone then. */
void br_session_close(struct br_session *s);

/* A new fd (the caller owns it) of this session's own device file, for a
 * client to mmap regions through: the first call opens the file (hv
 * ops->mmap_fd), later ones dup it. At the session's end the bridge looks for
 * every process that still holds that file or a mapping of it. */
int br_session_device_file(struct br_session *s);
/* Live re-exec: a device file another process of the bridge gave a client
 * (fd taken, also on error), with the mapping ranges looked up again as for
 * a new one; *out is the caller's (a session's devfile or dev->retired). */
struct br_devfile;
int br_devfile_adopt(const struct br_dev *dev, int fd, pid_t owner_pid, uid_t owner_uid,
                     struct br_devfile **out);
/* At exit: close the device files of ended sessions still held (the bridge
 * serves no one after this). */
void br_session_release_retired(struct br_dev *dev);

/* Clear the bus-master bit of the COMMAND register through config space. */
int br_dev_bus_master_off(struct hv_device *hv);
/* Put COMMAND back as it was at start (dev->command0: memory/IO decoding as
 * the kernel enabled it), bus mastering off whatever it was. */
int br_dev_restore_command(const struct br_dev *dev);

#endif /* BR_SESSION_H */
