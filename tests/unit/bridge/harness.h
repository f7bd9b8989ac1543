/* SPDX-License-Identifier: MIT */
/*
 * harness.h - run the whole bridge (bridgecore's server loop) on a simulated
 * device in a thread, listening on a socket in a fresh temporary directory,
 * and talk to it with the vu_client API through that real socket.
 */
#ifndef BR_TEST_HARNESS_H
#define BR_TEST_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "access.h"
#include "config.h"
#include "device.h"
#include "group.h"
#include "hv_sim.h"
#include "server.h"
#include "vu_client.h"

struct th {
    struct hv_sim_config sc;   /* edit between th_init and th_start */
    struct br_config cfg;      /* idem */
    uint32_t reserved_irqs;    /* idem: copied to br_dev.reserved_irqs */
    /* idem: attach the device to this simulated IOMMU context (NULL: a
     * context of its own) and add it to this group (NULL: served alone),
     * for functions of one IOMMU group (bridge/group.h) */
    struct hv_iommu *io;
    struct br_group *group;
    struct hv_device *hv;
    struct br_dev *dev;
    struct br_server *srv;
    pthread_t thread;
    bool running;
    int run_ret;
    char dir[64];
    char path[128];
    struct acc_sock sock;      /* the listening socket's file */
};

/* Defaults: sim defaults (edu-like), bridge defaults, log level error
 * (VUB_TEST_LOG=debug etc. to see the daemon's log). */
void th_init(struct th *t);
/* nvme-like: a 65-vector MSI-X BAR2 with the kernel's MSIX_MAPPABLE cap. */
void th_init_nvme(struct th *t);
/* Open the sim, build the device facts, listen and run the loop in a thread.
 * Fails the test on error. */
void th_start(struct th *t);
/* Stop the loop (quiescing any session), join, free everything. */
void th_stop(struct th *t);
/* Only stop and join the loop (the device stays open for inspection). */
void th_stop_loop(struct th *t);

/* For cmocka setup/teardown: a started harness on the heap (nvme-like or
 * edu-like), `tweak` (may be NULL) applied between init and start; and its
 * stop + free. */
struct th *th_new(bool nvme, void (*tweak)(struct th *t));
int th_teardown(void **state);

/* Connect (and with negotiate, VERSION with a QEMU-like offer). */
struct vu_client *th_connect(struct th *t, bool negotiate);
/* Wait (guard: 10 s) until the server has closed `n` sessions in total. */
void th_wait_closed(struct th *t, unsigned n);
/* Wait (guard: 10 s) until the server has accepted or refused n in total. */
void th_wait_accepted(struct th *t, unsigned n);
void th_wait_refused(struct th *t, unsigned n);

/* Send a command, return 0 for a success reply, -error_no for an error
 * reply (the reply is released unless out is given). */
int th_call(struct vu_client *c, uint16_t cmd, uint32_t flags, const void *p, size_t len,
            const int *fds, size_t nfds, struct vu_msg *out);

/* A memfd of `size` bytes. */
int th_memfd(size_t size);
/* An eventfd (non-blocking) and whether it was signalled (reads it). */
int th_eventfd(void);
uint64_t th_eventfd_read(int fd);

#endif /* BR_TEST_HARNESS_H */
