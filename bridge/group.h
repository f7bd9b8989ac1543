/* SPDX-License-Identifier: MIT */
/*
 * group.h - the functions of one IOMMU group served by one daemon (issue 15).
 *
 * A group is one container and one IOMMU address space: one trust domain.
 * The daemon serves each function on a socket of its own, with a server
 * (bridge/server.h) and a session of its own per function (IRQ shadow
 * tables, negotiated caps, client), in a thread of its own; what the
 * functions share lives here:
 *  - the IOMMU mappings (dma_shared.h): a VM with two functions sends the
 *    same DMA_MAPs on both sockets;
 *  - who may be a client: the clients of one group's functions must be one
 *    VM (--group-clients: same pid and uid by default, or same uid, or any);
 *    another client on another function of a busy group is refused with a
 *    log line naming the function and the client in the way;
 *  - the reset scope: a function without its own reset (FLR, PM) is reset
 *    with a hot reset of its bus, which resets every function on it; that
 *    is done only while no other function in the scope has a client
 *    (br_group_busy_others).
 * Thread-safe (one lock); the br_dev of every function outlives the group's
 * use of it.
 */
#ifndef BR_GROUP_H
#define BR_GROUP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"
#include "dma_shared.h"
#include "hv.h"

struct br_dev;

struct br_group_fn {
    struct br_dev *dev;
    bool busy;               /* a client is connected */
    struct ucred peer;       /* its credentials */
    int fd;                  /* its socket (polled for a hang-up only) */
    bool closing;            /* its session is being closed */
    bool reset_pending;      /* its session ended unreset: its bus was busy */
};

/* How long a client waits in br_group_join for a session of another
 * function whose peer has hung up to finish (that function's thread
 * quiesces it): a VM that is restarted connects again at once. */
#define BR_GROUP_GONE_WAIT_MS 3000u

struct br_group {
    pthread_mutex_t lock;
    pthread_cond_t left;     /* a function's client left */
    int number;              /* IOMMU group number, -1 unknown (sim) */
    enum br_group_clients rule;
    struct br_dma_shared dma;
    size_t n;
    struct br_group_fn fn[BR_GROUP_MAX_FUNCTIONS];
};

void br_group_init(struct br_group *g, int number, enum br_group_clients rule);
void br_group_destroy(struct br_group *g);
/* Add a function (sets dev->group). -ENOSPC beyond BR_GROUP_MAX_FUNCTIONS. */
int br_group_add(struct br_group *g, struct br_dev *dev);
/* The function is no longer served (its device closes next): it is
 * forgotten, busy or not. */
void br_group_remove(struct br_group *g, const struct br_dev *dev);
/* A client (socket fd, credentials peer) connects to dev: 0 (dev is busy
 * from now on), or -EBUSY when another function of the group has a client
 * the rule does not let share the group with this one; `why` then says
 * so, naming both. A client in the way whose peer has already hung up is
 * waited for (its session ends in its own thread), at most
 * BR_GROUP_GONE_WAIT_MS. */
int br_group_join(struct br_group *g, const struct br_dev *dev, int fd, const struct ucred *peer,
                  char *why, size_t whysz);
/* Its session starts closing (before its socket is closed), and its
 * client has left (after the quiesce). */
void br_group_closing(struct br_group *g, const struct br_dev *dev);
/* The leave also resets every function whose reset was deferred and whose
 * bus has become free (before any client may join). */
void br_group_leave(struct br_group *g, const struct br_dev *dev);
/* A session end could not reset dev (its bus reset would have reset a
 * function with a client): reset it when the bus is free. */
void br_group_defer_reset(struct br_group *g, const struct br_dev *dev);
/* The functions other than dev whose address is in addrs[0, n) (NULL: all
 * of the group) that have a client now, as "ADDR (pid P uid U), ..." into
 * out. Returns how many. */
size_t br_group_busy_others(struct br_group *g, const struct br_dev *dev,
                            const char (*addrs)[HV_ADDR_LEN], size_t n, char *out,
                            size_t outsz);
/* The rule's name for logs ("same-vm", "same-uid", "any"). */
const char *br_group_clients_name(enum br_group_clients rule);

#endif /* BR_GROUP_H */
