/* SPDX-License-Identifier: MIT */
#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "access.h"
#include "device.h"
#include "hooks.h"
#include "hv_iommufd.h"
#include "hv_sim.h"
#include "log.h"
#include "fdstore.h"
#include "notify.h"
#include "reexec.h"
#include "server.h"
#include "service.h"
#include "session.h"
#include "status.h"
#include "tap.h"

/* Whether every function the daemon serves has a VFIO cdev, on a kernel
 * with /dev/iommu: what --iommu auto takes iommufd for. */
static bool cdevs_everywhere(const struct br_config *cfg)
{
    if (access("/dev/iommu", F_OK) != 0)
        return false;
    size_t n = cfg->n_functions > 1 ? cfg->n_functions : 1;
    for (size_t i = 0; i < n; i++) {
        const char *fn = cfg->n_functions > 1 ? cfg->functions[i].device : cfg->device;
        char addr[HV_ADDR_LEN], cdev[512];
        if (!fn || hv_pci_addr_parse(fn, addr) < 0 ||
            hv_iommufd_cdev_path(HV_SYSFS_DEFAULT, "/dev/vfio", addr, cdev, sizeof(cdev),
                                 NULL) < 0)
            return false;
    }
    return true;
}

/* The kernel IOMMU context --iommu asks for: iommufd, type1, or (auto)
 * iommufd where the kernel has /dev/iommu and every function a VFIO cdev,
 * type1 otherwise. Never the other one in place of the one asked for. */
int br_open_iommu(const struct br_config *cfg, struct hv_iommu **io, struct vub_err *err)
{
    if (cfg->iommu == BR_IOMMU_IOMMUFD_GROUP) {
        int r = hv_iommufd_group_iommu_new(NULL, io, err);
        if (r < 0) {
            struct vub_err why = *err;
            return vub_fail(err, r, "--iommu iommufd-group: %s; use --iommu type1", why.msg);
        }
        return 0;
    }
    bool want = cfg->iommu == BR_IOMMU_IOMMUFD ||
                (cfg->iommu == BR_IOMMU_AUTO && cdevs_everywhere(cfg));
    if (!want)
        return hv_type1_iommu_new(NULL, io, err);
    int r = hv_iommufd_iommu_new(NULL, io, err);
    if (r < 0 && cfg->iommu == BR_IOMMU_IOMMUFD) {
        struct vub_err why = *err;
        return vub_fail(err, r, "--iommu iommufd: %s; use --iommu type1", why.msg);
    }
    return r;
}

int br_open_device(const struct br_config *cfg, struct hv_device **out)
{
    struct vub_err err = { "" };
    int r;
    if (cfg->sim != BR_SIM_NONE) {
        struct hv_sim_config sc;
        hv_sim_config_defaults(&sc);
        if (cfg->device)
            sc.addr = cfg->device;
        if (cfg->sim == BR_SIM_NVME_LIKE)
            sc.msix = HV_SIM_MSIX_MAPPABLE_CAP;
        r = hv_sim_open(&sc, out, &err);
    } else {
        struct hv_iommu *io = NULL;
        r = br_open_iommu(cfg, &io, &err);
        if (r == 0)
            r = hv_vfio_open(io, cfg->device, out, &err);
        hv_iommu_put(io);   /* the device holds its own reference */
    }
    if (r < 0)
        br_err("cannot open %s: %s", cfg->sim ? "the simulated device" : cfg->device,
               err.msg[0] ? err.msg : strerror(-r));
    return r;
}

/* A client makes the bridge hold fds (one per memory object it maps, its
 * interrupt eventfds): use the hard limit, not the 1024 soft default. The
 * loop uses poll(), so no FD_SETSIZE bound applies. */
void br_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            br_debug("cannot raise the fd limit: %s", strerror(errno));
    }
}

/* The listening or status socket handed over by the previous process. */
static void sock_from_state(const struct br_state_sock *in, struct acc_sock *out)
{
    *out = (struct acc_sock){ .fd = in->fd.fd, .dir_fd = in->dir_fd.fd,
                              .dev = (dev_t)in->file_dev, .ino = (ino_t)in->file_ino };
    snprintf(out->name, sizeof(out->name), "%s", in->name);
}

/* Whether a stop leaves everything in the fd store (a signal, not the device
 * going away). */
static bool r_store_keep(int status) { return br_fdstore_on() && status == 0; }

int br_daemon_run(const struct br_config *cfg_in, int argc, char **argv)
{
    struct hv_device *hv = NULL;
    struct br_server *srv = NULL;
    static struct br_dev dev;   /* large; one per process */
    static struct br_config cfg_own;
    static struct br_state st;  /* live re-exec: what the previous process handed over */
    static char end_why[128];
    struct br_service *svc = NULL;
    struct acc_sock sock = { .fd = -1, .dir_fd = -1 };
    int status = 1;
    struct acc_sock ctl = { .fd = -1, .dir_fd = -1 };   /* the status socket */
    const struct br_config *cfg = cfg_in;
    bool resume = cfg_in->resume_state_fd >= 0;
    bool from_store = false;
    struct br_fdstore_recovery rec = { 0 };
    if (cfg_in->n_functions > 1 || cfg_in->iommu_group >= 0)
        return br_group_daemon_run(cfg_in);   /* several functions of one group, or
                                               * a group's (members bound later) */

    /* SIGTERM/SIGINT/SIGHUP arrive through the loop's signalfd; a client
     * that vanishes must not kill us with SIGPIPE. (A SIGHUP that comes
     * while a re-exec is under way stays pending across execve() and asks
     * the new process for the next one.) */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    br_raise_fd_limit();
    if (cfg->sim == BR_SIM_NONE && br_reexec_init(argc, argv) < 0)
        br_warn("cannot tell the path of this program: SIGHUP will not re-execute it");

    if (!resume && cfg_in->fd_store && cfg_in->sim == BR_SIM_NONE) {
        /* a restart: what the previous process left in the fd store */
        int r = br_fdstore_take(cfg_in, &st, &rec);
        if (r < 0) {
            br_err("exiting: the client's connection closes with the stored fds, and the "
                   "kernel releases the device; the next start is a fresh one");
            return 1;
        }
        resume = from_store = r == 1;
    }
    if (resume) {
        /* parse and check everything before anything is used: a state this
         * binary cannot take leaves the device alone (the exit closes the
         * fds: the kernel then tears the old session down) */
        if ((!from_store && br_reexec_load(cfg_in, &st) < 0) ||
            br_reexec_open_device(&st, &hv) < 0) {
            br_err("exiting: the client's connection closes with this process, and the "
                   "kernel releases the device (docs/install.md, \"Upgrading\")");
            return 1;
        }
        cfg_own = *cfg_in;
        br_reexec_apply_limits(&st, &cfg_own);
        cfg = &cfg_own;
    } else if (br_open_device(cfg, &hv) < 0) {
        return 1;
    }
    br_log_set_device(hv->addr);
    if (rec.unmap) {
        /* a DMA_MAP the previous process may have made in the IOMMU and not
         * recorded: gone before anything else (fdstore.h) */
        int u = hv_dma_unmap(hv, rec.iova, rec.size, 0);
        br_warn("fd store: the previous process died in DMA_MAP (id %u) of [0x%llx, +0x%llx): "
                "unmapped it again: %s", rec.msg_id, (unsigned long long)rec.iova,
                (unsigned long long)rec.size, u < 0 ? strerror(-u) : "done");
    }
    if (br_dev_init(&dev, hv, cfg) < 0)
        goto out;
    if (resume) {
        dev.caps.max_dma_maps = st.lim.max_dma_maps;  /* the kernel counts the live maps */
        dev.reserved_irqs = st.reserved_irqs;
        if (br_reexec_check_device(&st, &dev) < 0)
            goto out;
    }
    if (br_tap_new(&dev.tap, cfg, hv->addr) < 0)
        goto out;
    int rfd = resume ? st.req_fd.fd : -1;
    st.req_fd.fd = -1;
    if ((resume ? br_service_resume(&svc, cfg, hv, rfd) : br_service_start(&svc, cfg, hv)) < 0)
        goto out;
    int lfd;
    if (resume) {
        sock_from_state(&st.listen, &sock);
        sock_from_state(&st.status, &ctl);
        lfd = sock.fd;
    } else {
        lfd = br_listen(cfg, &sock);
    }
    if (lfd < 0)
        goto out;
    if (br_server_new(&srv, &dev, lfd) < 0 || br_server_watch_signals(srv) < 0 ||
        br_service_attach(svc, srv, &dev) < 0) {
        br_err("cannot set up the event loop");
        goto out_unlink;
    }
    /* a live re-exec hands the type1 container's fds over (iommufd: not yet) */
    if (cfg->sim != BR_SIM_NONE)
        br_server_allow_reexec(srv, "a simulated device lives in this process's memory and "
                                    "cannot be handed to a new one (restart it instead)");
    else if (strcmp(hv_iommu_kind(hv), "type1") != 0)
        br_server_allow_reexec(srv, "a re-exec hands over a type1 container only, and this "
                                    "device is served through iommufd (restart it instead)");
    else
        br_server_allow_reexec(srv, NULL);
    /* the status view is for operators and tests: serving goes on without it */
    if (!resume)
        (void)br_status_attach(srv, &dev, &ctl);
    else if (ctl.fd >= 0 && br_status_attach_existing(srv, &dev, &ctl) < 0) {
        close(ctl.fd);
        ctl.fd = -1;
    }
    /* the fd store holds what a live re-exec hands over: the type1 fds */
    bool store_ok = cfg->sim == BR_SIM_NONE && strcmp(hv_iommu_kind(hv), "type1") == 0;
    if (cfg->fd_store && !store_ok)
        br_warn("--fd-store: not used with %s (only a type1 container is handed over so "
                "far): a crash or a restart ends the session", cfg->sim != BR_SIM_NONE
                    ? "a simulated device" : "the iommufd back end");
    if (cfg->fd_store && store_ok && !from_store && br_fdstore_open(resume) < 0)
        goto out_unlink;
    if (resume) {
        if (from_store)
            br_reexec_note_restart();
        int r = br_reexec_apply(&st, srv, &dev);
        br_state_free(&st);
        if (r < 0)
            goto out_unlink;
        if (rec.end_session) {
            snprintf(end_why, sizeof(end_why), "the previous process died in the middle of %s "
                     "(id %u), whose reply no process can give", vu_cmd_name(rec.cmd),
                     rec.msg_id);
            br_warn("fd store: ending the session: %s", end_why);
            br_server_drop_client(srv, end_why);
        }
    } else if (br_service_drop_privileges(cfg) < 0) {
        /* device open, socket created: root is no longer needed (after a
         * re-exec the process already runs as the user it dropped to) */
        goto out_unlink;
    }
    if (!resume)
        br_info("serving %s%s on %s, IOMMU %s%s%s%s; a client may pin %llu MiB and must say "
                "VERSION within %u ms", hv->addr, cfg->sim ? " (simulated)" : "",
                cfg->socket_path, hv_iommu_kind(hv),
                hv_iommufd_has_map_file(hv->iommu) ? " (DMA by file)" : "",
                cfg->no_mmap ? ", no mmap"
                : hv->one_file ? ", no mmap (a VFIO cdev has one open file)" : "",
                cfg->msix_mmap == BR_MSIX_MMAP_KERNEL ? ", MSI-X BARs as the kernel maps them"
                                                      : "",
                (unsigned long long)(cfg->max_dma_bytes >> 20),
                (unsigned)cfg->handshake_timeout_ms);
    if (br_fdstore_on()) {
        struct br_reexec_parts fp = { .cfg = cfg, .hv = hv, .dev = &dev, .srv = srv,
                                      .svc = svc, .sock = &sock, .ctl = &ctl };
        br_fdstore_set_parts(&fp);
        if (br_fdstore_changed() < 0)
            goto out_unlink;
    }
    if (br_notify("READY=1") < 0)
        br_warn("cannot notify readiness to $NOTIFY_SOCKET");
    for (;;) {
        int r = br_server_run(srv);
        if (r == BR_SERVER_REEXEC) {
            struct br_reexec_parts parts = { .cfg = cfg, .hv = hv, .dev = &dev, .srv = srv,
                                             .svc = svc, .sock = &sock, .ctl = &ctl };
            (void)br_reexec(&parts);   /* returns only if it failed (logged) */
            continue;
        }
        if (r == 0)
            status = br_service_device_gone(svc) ? BR_EXIT_DEVICE_GONE : 0;
        break;
    }
    if (r_store_keep(status)) {
        /* SIGTERM (systemctl stop or restart): the session stays in the fd
         * store as it is, for the next start; the service manager drops
         * it on a stop (docs/install.md, "What survives what") */
        br_notify("STOPPING=1");
        br_info("stopping; the session, the device and the sockets stay in the service "
                "manager's fd store for the next start");
        _exit(0);
    }
    br_notify("STOPPING=1");
out_unlink:
    br_server_free(srv);     /* quiesces the device if a client is still there */
    br_session_release_retired(&dev);
    /* by the directory fd, and only if the name is still our socket */
    int ur = acc_sock_unlink(&sock);
    if (ur < 0)
        br_debug("cannot remove %s: %s", cfg->socket_path, strerror(-ur));
    acc_sock_release(&sock);
    if (ctl.fd >= 0) {
        close(ctl.fd);
        ctl.fd = -1;
        acc_sock_unlink(&ctl);
    }
    acc_sock_release(&ctl);
out:
    hv_close(hv);           /* lets a waiting unbind of the device proceed */
    br_service_free(svc);
    br_tap_free(dev.tap);
    br_info("exiting");
    return status;
}
