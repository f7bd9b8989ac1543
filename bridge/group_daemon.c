/* SPDX-License-Identifier: MIT */
/*
 * group_daemon.c - the daemon for several functions of one IOMMU group
 * (--device A --socket SA --device B --socket SB; bridge/group.h): one
 * IOMMU context for all, and per function a br_dev, a device watch, a
 * listening and a status socket and a server, each server in a thread of
 * its own (br_server_run as for one function). The main thread owns the
 * signals: SIGTERM/SIGINT stop every server; SIGHUP is refused (live
 * re-exec hands over one session). A function whose device goes (unbound
 * from vfio-pci, removed) ends alone: its client's session is closed, its
 * device file released (so the unbind can go on) and the others are served
 * on; the daemon exits when every function has ended.
 */
#include "daemon.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "access.h"
#include "device.h"
#include "group.h"
#include "hooks.h"
#include "hv_sim.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "service.h"
#include "session.h"
#include "status.h"
#include "tap.h"

struct gfn {
    struct br_config cfg;          /* the daemon's, with this function's device and socket */
    struct hv_device *hv;
    struct br_dev dev;
    struct br_service *svc;
    struct br_server *srv;
    struct acc_sock sock, ctl;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;          /* srv against its release */
    bool ended;                    /* the server has stopped and the device is closed */
    bool gone;                     /* ... because the device went away */
    int ended_fd;                  /* the main thread's eventfd */
    struct br_group *group;
};

/* Everything of one function after its loop ended, in the loop's thread:
 * the session is closed (quiesced) already; the device file goes last, so
 * that a waiting unbind of this function proceeds while the others are
 * still served. */
static void gfn_release(struct gfn *f)
{
    pthread_mutex_lock(&f->lock);
    br_server_free(f->srv);
    f->srv = NULL;
    f->ended = true;
    pthread_mutex_unlock(&f->lock);
    br_session_release_retired(&f->dev);
    int ur = acc_sock_unlink(&f->sock);
    if (ur < 0)
        br_debug("cannot remove %s: %s", f->cfg.socket_path, strerror(-ur));
    acc_sock_release(&f->sock);
    if (f->ctl.fd >= 0) {
        close(f->ctl.fd);
        f->ctl.fd = -1;
        acc_sock_unlink(&f->ctl);
    }
    acc_sock_release(&f->ctl);
    br_group_remove(f->group, &f->dev);
    hv_close(f->hv);          /* the container stays: the others hold it */
    f->hv = NULL;
    f->dev.hv = NULL;
}

static void *gfn_thread(void *arg)
{
    struct gfn *f = arg;
    br_log_set_thread_device(f->cfg.device);
    int r = br_server_run(f->srv);
    if (r < 0)
        br_err("the event loop failed: %s", strerror(-r));
    f->gone = br_service_device_gone(f->svc);
    if (f->gone)
        br_warn("no longer served; the group's other functions are");
    gfn_release(f);
    uint64_t one = 1;
    ssize_t n = write(f->ended_fd, &one, sizeof(one));
    (void)n;
    return NULL;
}

static void stop_all(struct gfn *fns, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&fns[i].lock);
        if (fns[i].srv && !fns[i].ended)
            br_server_stop(fns[i].srv);
        pthread_mutex_unlock(&fns[i].lock);
    }
}

/* Open every function on one context; all must be in one IOMMU group. */
static int open_functions(const struct br_config *cfg, struct gfn *fns, size_t n, int *group)
{
    struct vub_err err = { "" };
    struct hv_iommu *io = NULL;
    int r;
    if (cfg->sim != BR_SIM_NONE)
        r = hv_sim_iommu_open(NULL, &io, &err);
    else
        r = br_open_iommu(cfg, &io, &err);
    if (r < 0) {
        br_err("cannot open the IOMMU context: %s", err.msg[0] ? err.msg : strerror(-r));
        return r;
    }
    for (size_t i = 0; i < n && r == 0; i++) {
        if (cfg->sim != BR_SIM_NONE) {
            struct hv_sim_config sc;
            hv_sim_config_defaults(&sc);
            sc.addr = fns[i].cfg.device;
            if (cfg->sim == BR_SIM_NVME_LIKE)
                sc.msix = HV_SIM_MSIX_MAPPABLE_CAP;
            r = hv_sim_open_on(&sc, io, &fns[i].hv, &err);
        } else {
            r = hv_vfio_open(io, fns[i].cfg.device, &fns[i].hv, &err);
        }
        if (r < 0) {
            br_err("cannot open %s: %s", fns[i].cfg.device, err.msg[0] ? err.msg : strerror(-r));
            break;
        }
        if (i > 0 && fns[i].hv->group != fns[0].hv->group) {
            br_err("%s is in IOMMU group %d, %s in group %d: one daemon serves the functions "
                   "of one group (start one per group)", fns[0].cfg.device, fns[0].hv->group,
                   fns[i].cfg.device, fns[i].hv->group);
            r = -EINVAL;
        }
    }
    hv_iommu_put(io);   /* the devices hold their references */
    *group = n && fns[0].hv ? fns[0].hv->group : -1;
    return r;
}

int br_group_daemon_run(const struct br_config *cfg)
{
    size_t n = cfg->n_functions;
    struct gfn *fns = calloc(n, sizeof(*fns));
    static struct br_group group;
    int status = 1, sfd = -1, efd = -1;
    size_t started = 0;
    bool group_ready = false;
    if (!fns) {
        br_err("out of memory");
        return 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);   /* every thread inherits it */
    signal(SIGPIPE, SIG_IGN);
    br_raise_fd_limit();
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sfd < 0 || efd < 0) {
        br_err("cannot set up signals: %s", strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct gfn *f = &fns[i];
        f->cfg = cfg->functions[i].cfg ? *cfg->functions[i].cfg : *cfg;
        f->cfg.device = cfg->functions[i].device;
        f->cfg.socket_path = cfg->functions[i].socket_path;
        f->cfg.n_functions = 1;
        f->sock = f->ctl = (struct acc_sock){ .fd = -1, .dir_fd = -1 };
        f->ended_fd = efd;
        f->group = &group;
        pthread_mutex_init(&f->lock, NULL);
    }
    int gnum = -1;
    if (open_functions(cfg, fns, n, &gnum) < 0)
        goto out;
    br_group_init(&group, gnum, cfg->group_clients);
    group_ready = true;
    char gname[32];
    snprintf(gname, sizeof(gname), "group %d", gnum);
    br_log_set_device(gname);   /* the main thread's lines; each function's name its device */
    for (size_t i = 0; i < n; i++) {
        struct gfn *f = &fns[i];
        br_log_set_thread_device(f->cfg.device);
        if (br_dev_init(&f->dev, f->hv, &f->cfg) < 0 || br_group_add(&group, &f->dev) < 0 ||
            br_tap_new(&f->dev.tap, &f->cfg, f->hv->addr) < 0 ||
            br_service_start(&f->svc, &f->cfg, f->hv) < 0)
            goto out;
        int lfd = br_listen(&f->cfg, &f->sock);
        if (lfd < 0)
            goto out;
        if (br_server_new(&f->srv, &f->dev, lfd) < 0 ||
            br_service_attach(f->svc, f->srv, &f->dev) < 0) {
            br_err("cannot set up the event loop");
            goto out;
        }
        (void)br_status_attach(f->srv, &f->dev, &f->ctl);
    }
    br_log_set_thread_device(NULL);
    if (br_service_drop_privileges(cfg) < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        br_info("serving %s%s on %s (IOMMU group %d, function %zu of %zu)", fns[i].hv->addr,
                cfg->sim ? " (simulated)" : "", fns[i].cfg.socket_path, gnum, i + 1, n);
    br_info("one IOMMU %s context for the group's %zu functions; clients: %s; a client may pin "
            "%llu MiB; SIGHUP does not re-execute a daemon serving several functions",
            hv_iommu_kind(fns[0].hv), n, br_group_clients_name(cfg->group_clients),
            (unsigned long long)(cfg->max_dma_bytes >> 20));
    if (cfg->fd_store)
        br_warn("--fd-store: not used by a daemon serving several functions (like the live "
                "re-exec): a crash or a restart ends their sessions");
    for (size_t i = 0; i < n; i++) {
        if (pthread_create(&fns[i].thread, NULL, gfn_thread, &fns[i]) != 0) {
            br_err("cannot start the thread of %s", fns[i].cfg.device);
            stop_all(fns, started);
            goto out_join;
        }
        fns[i].started = true;
        started++;
    }
    if (br_notify("READY=1") < 0)
        br_warn("cannot notify readiness to $NOTIFY_SOCKET");
    size_t ended = 0;
    bool signalled = false;
    while (ended < n && !signalled) {
        struct pollfd p[2] = { { .fd = sfd, .events = POLLIN }, { .fd = efd, .events = POLLIN } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            br_err("poll: %s", strerror(errno));
            break;
        }
        struct signalfd_siginfo si;
        if (p[0].revents && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            if (si.ssi_signo == SIGHUP) {
                br_warn("SIGHUP: not re-executing: this daemon serves %zu functions of IOMMU "
                        "group %d, and a live re-exec hands over one session (restart it "
                        "instead; the clients' sessions end)", n, gnum);
            } else {
                br_info("received %s, shutting down", strsignal((int)si.ssi_signo));
                signalled = true;
            }
        }
        uint64_t v;
        if (p[1].revents && read(efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
            ended += (size_t)v;
    }
    br_notify("STOPPING=1");
    stop_all(fns, n);
out_join:
    for (size_t i = 0; i < n; i++)
        if (fns[i].started)
            pthread_join(fns[i].thread, NULL);
    bool all_gone = started == n;
    for (size_t i = 0; i < n; i++)
        all_gone &= fns[i].gone;
    status = all_gone ? BR_EXIT_DEVICE_GONE : 0;
    if (started < n)
        status = 1;
out:
    /* functions whose thread never ran */
    for (size_t i = 0; i < n; i++) {
        struct gfn *f = &fns[i];
        if (!f->started && f->hv) {
            if (f->srv)
                gfn_release(f);
            else {
                acc_sock_unlink(&f->sock);
                acc_sock_release(&f->sock);
                if (group_ready)
                    br_group_remove(&group, &f->dev);
                hv_close(f->hv);
            }
        }
        br_service_free(f->svc);
        br_tap_free(f->dev.tap);
        pthread_mutex_destroy(&f->lock);
    }
    if (group_ready)
        br_group_destroy(&group);
    if (sfd >= 0)
        close(sfd);
    if (efd >= 0)
        close(efd);
    free(fns);
    br_info("exiting");
    return status;
}
