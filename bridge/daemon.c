/* SPDX-License-Identifier: MIT */
#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "access.h"
#include "device.h"
#include "hooks.h"
#include "hv_sim.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "service.h"
#include "session.h"
#include "status.h"
#include "tap.h"

/* The kernel IOMMU context --iommu asks for. */
static int open_iommu(const struct br_config *cfg, struct hv_iommu **io, struct vub_err *err)
{
    if (cfg->iommu == BR_IOMMU_IOMMUFD) {
        if (access("/dev/iommu", F_OK) < 0)
            return vub_fail(err, -ENOTSUP, "--iommu iommufd: this kernel has no iommufd "
                           "(/dev/iommu: %s); use --iommu type1", strerror(errno));
        return vub_fail(err, -ENOTSUP, "--iommu iommufd: the iommufd back end is not finished "
                       "(never run on a kernel with iommufd); use --iommu type1");
    }
    return hv_type1_iommu_new(NULL, io, err);   /* auto and type1 */
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
        r = open_iommu(cfg, &io, &err);
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
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            br_debug("cannot raise the fd limit: %s", strerror(errno));
    }
}

int br_daemon_run(const struct br_config *cfg)
{
    struct hv_device *hv = NULL;
    struct br_server *srv = NULL;
    static struct br_dev dev;   /* large; one per process */
    struct br_service *svc = NULL;
    struct acc_sock sock = { .fd = -1, .dir_fd = -1 };
    int status = 1;
    struct acc_sock ctl = { .fd = -1, .dir_fd = -1 };   /* the status socket */

    /* SIGTERM/SIGINT arrive through the loop's signalfd; a client that
     * vanishes must not kill us with SIGPIPE. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    if (br_open_device(cfg, &hv) < 0)
        return 1;
    br_log_set_device(hv->addr);
    if (br_dev_init(&dev, hv, cfg) < 0 || br_tap_new(&dev.tap, cfg, hv->addr) < 0 ||
        br_service_start(&svc, cfg, hv) < 0)
        goto out;
    int lfd = br_listen(cfg, &sock);
    if (lfd < 0)
        goto out;
    if (br_server_new(&srv, &dev, lfd) < 0 || br_server_watch_signals(srv) < 0 ||
        br_service_attach(svc, srv, &dev) < 0) {
        br_err("cannot set up the event loop");
        goto out_unlink;
    }
    /* the status view is for operators and tests: serving goes on without it */
    (void)br_status_attach(srv, &dev, &ctl);
    /* device open, socket created: root is no longer needed */
    if (br_service_drop_privileges(cfg) < 0)
        goto out_unlink;
    br_info("serving %s%s on %s, IOMMU %s%s%s; a client may pin %llu MiB and must say VERSION "
            "within %u ms", hv->addr, cfg->sim ? " (simulated)" : "", cfg->socket_path,
            hv_iommu_kind(hv), cfg->no_mmap ? ", no mmap" : "",
            cfg->msix_mmap == BR_MSIX_MMAP_KERNEL ? ", MSI-X BARs as the kernel maps them" : "",
            (unsigned long long)(cfg->max_dma_bytes >> 20), (unsigned)cfg->handshake_timeout_ms);
    if (br_notify("READY=1") < 0)
        br_warn("cannot notify readiness to $NOTIFY_SOCKET");
    if (br_server_run(srv) == 0)
        status = br_service_device_gone(svc) ? BR_EXIT_DEVICE_GONE : 0;
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
