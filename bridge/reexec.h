/* SPDX-License-Identifier: MIT */
/*
 * reexec.h - live re-exec: on SIGHUP the daemon stops between two messages,
 * writes its whole state (bridge/state.h) into a memfd and execve()s its
 * binary (the path /proc/self/exe named at start, so an upgraded file at
 * that path is what runs), passing every fd the state names with
 * FD_CLOEXEC cleared for the exec only, and the memfd's number as
 * `--resume-state FD`. The new process reads the state, checks it whole
 * (format, then every fd: open, and the same file by st_dev/st_ino), and
 * only then applies it; the client's connection, its DMA mappings (kept in
 * the IOMMU by the container fd) and its interrupts (kept wired by the
 * device fd) never stop. The read-ahead of the client's connection (bytes
 * and fds not yet handed out) travels in the state, so a re-exec can happen
 * between any two messages. docs/architecture.md, "Live re-exec".
 */
#ifndef BR_REEXEC_H
#define BR_REEXEC_H

#include "access.h"
#include "config.h"
#include "device.h"
#include "hv.h"
#include "server.h"
#include "service.h"
#include "state.h"

/* Note when this program started (first thing in main): the resume log
 * line splits the pause into the exec and the take-over. */
void br_reexec_started(void);
/* This process resumes from the fd store (bridge/fdstore.h): says so in the
 * resume line. */
void br_reexec_note_restart(void);

/* Remember the binary and argv to execute again (at start, before any
 * upgrade can replace the file). 0 or -errno. */
int br_reexec_init(int argc, char **argv);

/* What the running daemon consists of. */
struct br_reexec_parts {
    const struct br_config *cfg;
    struct hv_device *hv;
    struct br_dev *dev;
    struct br_server *srv;
    struct br_service *svc;
    struct acc_sock *sock, *ctl;   /* ctl->fd -1: no status socket */
};

/* The state as it is now (fds by number, the read-ahead borrowed from the
 * connection): free with br_reexec_gather_free. 0 or -errno. */
int br_reexec_gather(const struct br_reexec_parts *p, struct br_state *st);
void br_reexec_gather_free(struct br_state *st);
/* A decoded state belongs to cfg (device address, not --sim) and every fd
 * it names is open and the file the old process had (st_dev/st_ino); they
 * get FD_CLOEXEC. 0 or -errno (logged). */
int br_reexec_check_state(const struct br_config *cfg, const struct br_state *st);

/* Hand everything over and execve(). Returns only on failure (-errno, logged),
 * with everything as it was: the caller goes on serving. */
int br_reexec(const struct br_reexec_parts *p);

/* The new process: read the state from cfg->resume_state_fd (closed here),
 * decode it, check it belongs to cfg (device address, not --sim) and that
 * every fd it names is the file the old process had. Nothing is applied.
 * 0, or -errno with the reason logged. */
int br_reexec_load(const struct br_config *cfg, struct br_state *st);
/* The kernel device from the state. */
int br_reexec_open_device(const struct br_state *st, struct hv_device **out);
/* Check the state against the device the new process sees (IRQ indexes and
 * their vector counts): nothing applied yet. */
int br_reexec_check_device(const struct br_state *st, const struct br_dev *dev);
/* The limits in force, over what cfg says (a copy the daemon owns). */
void br_reexec_apply_limits(const struct br_state *st, struct br_config *cfg);
/* The client session, retired device files and counters into srv/dev. The
 * fds move from st to their new owners (st's copies set to -1). -errno
 * (logged) if something cannot be rebuilt (then the process must exit). */
int br_reexec_apply(struct br_state *st, struct br_server *srv, struct br_dev *dev);

#endif /* BR_REEXEC_H */
