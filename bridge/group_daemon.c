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
 * on. With --iommu-group (the group unit) the main thread also watches
 * kernel uevents (devwatch.h, dw_group_*): a member the policy exports that
 * is bound to vfio-pci and not served (bound after the daemon started, or
 * bound again after an unbind ended it) gets a free slot, its policy
 * entry's config (service.h, br_service_group_configure) and a thread of
 * its own, opened on the daemon's IOMMU context. The daemon exits when it
 * serves no function any more (status 3 when every one went away).
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
#include "devwatch.h"
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
    bool used;                     /* the slot holds a function (set up or running) */
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
    bool failed;                   /* ... because its loop failed */
    bool in_group;                 /* br_group_add done */
    int ended_fd;                  /* the main thread's eventfd */
    struct br_group *group;
};

/* The daemon: its slots (slot k of a function configured from the policy
 * is the policy's slot k, bridge/service.h), the IOMMU context every
 * function is opened on (the daemon holds a reference, so that a function
 * bound later joins the same one), and what ends it. */
struct gd {
    const struct br_config *cfg;
    struct hv_iommu *io;
    struct br_group group;
    bool group_ready;
    int gnum;
    int efd;
    bool dropped;                  /* privileges dropped: nothing new can be set up */
    size_t running;                /* threads started and not yet reaped */
    size_t ended_gone, ended_failed;
    struct dw_group *watch;        /* --iommu-group: members bound later */
    struct gfn fn[BR_GROUP_MAX_FUNCTIONS];
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
    f->failed = r < 0;
    if (f->gone)
        br_warn("no longer served; the group's other functions are");
    gfn_release(f);
    uint64_t one = 1;
    ssize_t n = write(f->ended_fd, &one, sizeof(one));
    (void)n;
    return NULL;
}


static void stop_all(struct gd *d)
{
    for (size_t i = 0; i < BR_GROUP_MAX_FUNCTIONS; i++) {
        struct gfn *f = &d->fn[i];
        if (!f->started)
            continue;
        pthread_mutex_lock(&f->lock);
        if (f->srv && !f->ended)
            br_server_stop(f->srv);
        pthread_mutex_unlock(&f->lock);
    }
}

/* The slot is free again: what a function that was set up holds, whether
 * its thread ran (and was joined) or not. */
static void gfn_discard(struct gfn *f)
{
    if (!f->started && f->hv) {
        if (f->srv) {
            gfn_release(f);
        } else {
            acc_sock_unlink(&f->sock);
            acc_sock_release(&f->sock);
            if (f->in_group)
                br_group_remove(f->group, &f->dev);
            hv_close(f->hv);
        }
    }
    br_service_free(f->svc);
    br_tap_free(f->dev.tap);
    pthread_mutex_destroy(&f->lock);
    memset(f, 0, sizeof(*f));
}

/* Open the function of slot k (its cfg is set) on the daemon's context and
 * set up everything it is served with, in the main thread. On failure the
 * slot is free again. */
static int gfn_setup(struct gd *d, size_t k)
{
    struct gfn *f = &d->fn[k];
    const struct br_config *cfg = d->cfg;
    struct vub_err err = { "" };
    int r;
    f->used = true;
    f->sock = f->ctl = (struct acc_sock){ .fd = -1, .dir_fd = -1 };
    f->ended_fd = d->efd;
    f->group = &d->group;
    pthread_mutex_init(&f->lock, NULL);
    br_log_set_thread_device(f->cfg.device);
    if (cfg->sim != BR_SIM_NONE) {
        struct hv_sim_config sc;
        hv_sim_config_defaults(&sc);
        sc.addr = f->cfg.device;
        if (cfg->sim == BR_SIM_NVME_LIKE)
            sc.msix = HV_SIM_MSIX_MAPPABLE_CAP;
        r = hv_sim_open_on(&sc, d->io, &f->hv, &err);
    } else {
        r = hv_vfio_open(d->io, f->cfg.device, &f->hv, &err);
    }
    if (r < 0) {
        br_err("cannot open %s: %s", f->cfg.device, err.msg[0] ? err.msg : strerror(-r));
        goto fail;
    }
    if (d->gnum == -2) {
        d->gnum = f->hv->group;   /* the first function names the group */
    } else if (f->hv->group != d->gnum) {
        br_err("%s is in IOMMU group %d, the daemon serves group %d: one daemon serves the "
               "functions of one group (start one per group)", f->cfg.device, f->hv->group,
               d->gnum);
        r = -EINVAL;
        goto fail;
    }
    if (!d->group_ready) {
        br_group_init(&d->group, d->gnum, cfg->group_clients);
        d->group_ready = true;
    }
    if ((r = br_dev_init(&f->dev, f->hv, &f->cfg)) < 0 ||
        (r = br_group_add(&d->group, &f->dev)) < 0)
        goto fail;
    f->in_group = true;
    if ((r = br_tap_new(&f->dev.tap, &f->cfg, f->hv->addr)) < 0 ||
        (r = br_service_start(&f->svc, &f->cfg, f->hv)) < 0)
        goto fail;
    int lfd = br_listen(&f->cfg, &f->sock);
    if (lfd < 0) {
        r = lfd;
        goto fail;
    }
    if ((r = br_server_new(&f->srv, &f->dev, lfd)) < 0 ||
        (r = br_service_attach(f->svc, f->srv, &f->dev)) < 0) {
        br_err("cannot set up the event loop");
        goto fail;
    }
    (void)br_status_attach(f->srv, &f->dev, &f->ctl);
    br_log_set_thread_device(NULL);
    return 0;
fail:
    br_log_set_thread_device(NULL);
    gfn_discard(f);
    return r < 0 ? r : -EIO;
}

static int gfn_start(struct gd *d, size_t k)
{
    struct gfn *f = &d->fn[k];
    if (pthread_create(&f->thread, NULL, gfn_thread, f) != 0) {
        br_err("cannot start the thread of %s", f->cfg.device);
        return -EAGAIN;
    }
    f->started = true;
    d->running++;
    return 0;
}

/* Join the functions whose loop has ended and free their slots. */
static void reap(struct gd *d)
{
    for (size_t k = 0; k < BR_GROUP_MAX_FUNCTIONS; k++) {
        struct gfn *f = &d->fn[k];
        if (!f->started)
            continue;
        pthread_mutex_lock(&f->lock);
        bool ended = f->ended;
        pthread_mutex_unlock(&f->lock);
        if (!ended)
            continue;
        pthread_join(f->thread, NULL);   /* it is past its release */
        d->running--;
        d->ended_gone += f->gone;
        d->ended_failed += !f->gone;   /* its loop failed */
        gfn_discard(f);
    }
}

static bool served(const struct gd *d, const char *addr)
{
    for (size_t k = 0; k < BR_GROUP_MAX_FUNCTIONS; k++)
        if (d->fn[k].used && strcmp(d->fn[k].cfg.device, addr) == 0)
            return true;
    return false;
}

/* --iommu-group: serve the members the policy exports that are bound to
 * vfio-pci now and not served yet (bound after the daemon started, or
 * bound again after an unbind ended them). */
static void pick_up(struct gd *d)
{
    struct br_group_scan sc;
    reap(d);   /* a function unbound and bound again: its old slot first */
    if (br_service_group_scan(&sc) < 0)
        return;
    for (size_t i = 0; i < sc.n; i++) {
        const char *addr = sc.addr[i];
        if (served(d, addr))
            continue;
        if (d->dropped) {
            br_warn("%s is bound to vfio-pci: not served: this daemon runs as uid %u (the "
                    "policy's \"user\") and can no longer set up a function (restart it to "
                    "serve %s)", addr, (unsigned)d->cfg->run_uid, addr);
            continue;
        }
        size_t k = 0;
        while (k < BR_GROUP_MAX_FUNCTIONS && d->fn[k].used)
            k++;
        if (k == BR_GROUP_MAX_FUNCTIONS) {
            br_warn("%s is bound to vfio-pci: not served: this daemon serves %u functions "
                    "already", addr, BR_GROUP_MAX_FUNCTIONS);
            continue;
        }
        const struct br_config *fc = NULL;
        if (br_service_group_configure(addr, k, &fc) <= 0)
            continue;
        if (fc->drop_privileges) {
            br_err("%s is bound to vfio-pci: not served: the policy runs it as user %u, and "
                   "this daemon runs as root for the group's other functions (give their "
                   "entries one \"user\" and restart it)", addr, (unsigned)fc->run_uid);
            continue;
        }
        bool clash = false;
        for (size_t j = 0; j < BR_GROUP_MAX_FUNCTIONS && !clash; j++)
            if (d->fn[j].used && strcmp(d->fn[j].cfg.socket_path, fc->socket_path) == 0) {
                br_err("%s is bound to vfio-pci: not served: the policy gives it the socket "
                       "%s of %s", addr, fc->socket_path, d->fn[j].cfg.device);
                clash = true;
            }
        if (clash)
            continue;
        struct gfn *f = &d->fn[k];
        f->cfg = *fc;
        if (gfn_setup(d, k) < 0)
            continue;
        if (gfn_start(d, k) < 0) {
            gfn_discard(f);
            continue;
        }
        br_info("serving %s on %s (IOMMU group %d; bound to vfio-pci after the daemon "
                "started; %zu functions served)", addr, f->cfg.socket_path, d->gnum, d->running);
    }
}

int br_group_daemon_run(const struct br_config *cfg)
{
    static struct gd d;
    size_t n = cfg->n_functions ? cfg->n_functions : 1;
    int status = 1, sfd = -1;
    bool all_started = false, signalled = false, poll_failed = false;
    memset(&d, 0, sizeof(d));
    d.cfg = cfg;
    d.gnum = -2;   /* not known yet: the first function's */
    d.efd = -1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);   /* every thread inherits it */
    signal(SIGPIPE, SIG_IGN);
    br_raise_fd_limit();
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    d.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sfd < 0 || d.efd < 0) {
        br_err("cannot set up signals: %s", strerror(errno));
        goto out;
    }
    struct vub_err err = { "" };
    if (cfg->iommu_group >= 0 && cfg->sim == BR_SIM_NONE) {
        /* listening before the functions are opened: a member bound from
         * now on is seen (bridge/service.c read the group before this; the
         * first scan below looks again) */
        if (dw_group_open(NULL, cfg->iommu_group, &d.watch, &err) < 0)
            br_warn("IOMMU group %d: %s; a function bound to vfio-pci later is not served "
                    "until the daemon is restarted", cfg->iommu_group, err.msg);
    }
    int r = cfg->sim != BR_SIM_NONE ? hv_sim_iommu_open(NULL, &d.io, &err)
                                    : br_open_iommu(cfg, &d.io, &err);
    if (r < 0) {
        br_err("cannot open the IOMMU context: %s", err.msg[0] ? err.msg : strerror(-r));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct gfn *f = &d.fn[i];
        const struct br_function *bf = &cfg->functions[i];
        f->cfg = bf->cfg ? *bf->cfg : *cfg;
        if (cfg->n_functions) {
            f->cfg.device = bf->device;
            f->cfg.socket_path = bf->socket_path;
        }
        f->cfg.n_functions = 1;
        if (gfn_setup(&d, i) < 0)
            goto out;
    }
    char gname[32];
    snprintf(gname, sizeof(gname), "group %d", d.gnum);
    br_log_set_device(gname);   /* the main thread's lines; each function's name its device */
    if (br_service_drop_privileges(cfg) < 0)
        goto out;
    d.dropped = cfg->drop_privileges;
    for (size_t i = 0; i < n; i++)
        br_info("serving %s%s on %s (IOMMU group %d, function %zu of %zu)", d.fn[i].hv->addr,
                cfg->sim ? " (simulated)" : "", d.fn[i].cfg.socket_path, d.gnum, i + 1, n);
    br_info("one IOMMU %s context for the group's functions; clients: %s; a client may pin "
            "%llu MiB; SIGHUP does not re-execute a daemon serving a group%s",
            hv_iommu_kind(d.fn[0].hv), br_group_clients_name(cfg->group_clients),
            (unsigned long long)(cfg->max_dma_bytes >> 20),
            !d.watch ? ""
            : d.dropped ? "; functions bound to vfio-pci later are not served (the daemon "
                          "has dropped its privileges)"
                        : "; functions bound to vfio-pci later are served");
    if (cfg->fd_store)
        br_warn("--fd-store: not used by a daemon serving a group (like the live re-exec): a "
                "crash or a restart ends their sessions");
    for (size_t i = 0; i < n; i++) {
        if (gfn_start(&d, i) < 0) {
            stop_all(&d);
            goto out_join;
        }
    }
    all_started = true;
    if (br_notify("READY=1") < 0)
        br_warn("cannot notify readiness to $NOTIFY_SOCKET");
    if (d.watch)
        pick_up(&d);   /* bound between the policy's look at sysfs and the watch */
    while (d.running > 0 && !signalled) {
        struct pollfd p[3] = { { .fd = sfd, .events = POLLIN },
                               { .fd = d.efd, .events = POLLIN },
                               { .fd = dw_group_fd(d.watch), .events = POLLIN } };
        if (poll(p, d.watch ? 3 : 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            br_err("poll: %s", strerror(errno));
            poll_failed = true;
            break;
        }
        struct signalfd_siginfo si;
        if (p[0].revents && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            if (si.ssi_signo == SIGHUP) {
                br_warn("SIGHUP: not re-executing: this daemon serves %zu function%s of IOMMU "
                        "group %d, and a live re-exec hands over one session (restart it "
                        "instead; the clients' sessions end)", d.running,
                        d.running == 1 ? "" : "s", d.gnum);
            } else {
                br_info("received %s, shutting down", strsignal((int)si.ssi_signo));
                signalled = true;
            }
        }
        uint64_t v;
        if (p[1].revents && read(d.efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
            reap(&d);
        if (d.watch && p[2].revents && !signalled) {
            bool rescan = (p[2].revents & POLLERR) != 0;   /* events lost */
            bool concerns = false;
            if (dw_group_poll(d.watch, &concerns) == 0)
                rescan |= concerns;
            if (rescan)
                pick_up(&d);
        }
    }
    if (!signalled && d.running == 0)
        br_info("no function of IOMMU group %d is served any more", d.gnum);
    br_notify("STOPPING=1");
    stop_all(&d);
out_join:
    for (size_t i = 0; i < BR_GROUP_MAX_FUNCTIONS; i++) {
        struct gfn *f = &d.fn[i];
        if (f->started) {
            pthread_join(f->thread, NULL);
            f->started = false;
            d.running--;
            d.ended_gone += f->gone;
            d.ended_failed += !f->gone && f->failed;
        }
    }
    /* stopped by a signal: 0; every function ended because its device went
     * (the unit does not restart it; udev starts it again when a member is
     * bound to vfio-pci again): 3; otherwise 1 */
    if (!all_started || poll_failed)
        status = 1;
    else if (signalled)
        status = 0;
    else
        status = d.ended_failed ? 1 : BR_EXIT_DEVICE_GONE;
out:
    for (size_t i = 0; i < BR_GROUP_MAX_FUNCTIONS; i++)
        if (d.fn[i].used)
            gfn_discard(&d.fn[i]);
    hv_iommu_put(d.io);
    if (d.group_ready)
        br_group_destroy(&d.group);
    dw_group_close(d.watch);
    if (sfd >= 0)
        close(sfd);
    if (d.efd >= 0)
        close(d.efd);
    br_info("exiting");
    return status;
}
