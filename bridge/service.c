/* SPDX-License-Identifier: MIT */
/* service.c - policy, device watch and privilege drop for the daemon
 * (service.h). */
#include "service.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "access.h"
#include "devwatch.h"
#include "group.h"
#include "log.h"
#include "policy.h"

_Static_assert(BR_MAX_ALLOW_UIDS >= POL_MAX_PEERS, "allow-lists must fit br_config");
_Static_assert(BR_EXIT_DEVICE_GONE == DW_EXIT_DEVICE_GONE, "one exit status for a gone device");

/* ---- the policy ------------------------------------------------------------------ */

/* What the policy's strings are copied to: one slot per function served. */
static struct {
    char device[POL_ADDR_LEN];
    char socket[POL_SOCKET_MAX];
    char owner[16], group[16];
    char trace[POL_TRACE_MAX];
    char inject[POL_MAX_INJECT][POL_INJECT_MAX];
} g_pol[BR_GROUP_MAX_FUNCTIONS];
_Static_assert(POL_MAX_INJECT <= sizeof(((struct br_config *)0)->inject) / sizeof(const char *),
               "policy rules must fit br_config");
/* With --iommu-group: each function's config. */
static struct br_config g_fn_cfg[BR_GROUP_MAX_FUNCTIONS];

static void not_exported(const struct pol *p, const struct pol_ident *id,
                         const struct pol_decision *d)
{
    if (d->entry)
        br_err("%s: devices[%u] excludes %s (%04x:%04x class %06x)", p->path,
               d->entry->index, id->addr, id->vendor, id->device, id->class_code);
    else
        br_err("%s: no entry matches %s (%04x:%04x class %06x); not exporting it", p->path,
               id->addr, id->vendor, id->device, id->class_code);
}

/* Fill what the command line left unset in cfg from an exporting decision;
 * the strings go to g_pol[slot]. */
static void apply_settings(struct br_config *cfg, const struct pol *p, const struct pol_ident *id,
                           const struct pol_decision *d, size_t slot)
{
    const struct pol_settings *s = &d->entry->s;
    if (!cfg->socket_path) {
        memcpy(g_pol[slot].socket, d->socket, sizeof(g_pol[slot].socket));
        cfg->socket_path = g_pol[slot].socket;
    }
    if (!cfg->socket_mode_set) {
        cfg->socket_mode = s->socket_mode;
        cfg->socket_mode_set = true;
    }
    if (!cfg->socket_owner && s->owner_set) {
        snprintf(g_pol[slot].owner, sizeof(g_pol[slot].owner), "%u", (unsigned)s->socket_owner);
        cfg->socket_owner = g_pol[slot].owner;
    }
    if (!cfg->socket_group && s->group_set) {
        snprintf(g_pol[slot].group, sizeof(g_pol[slot].group), "%u", (unsigned)s->socket_group);
        cfg->socket_group = g_pol[slot].group;
    }
    if (cfg->n_allow_uids == 0 && cfg->n_allow_gids == 0) {
        cfg->n_allow_uids = s->n_uids;
        for (size_t i = 0; i < s->n_uids; i++)
            cfg->allow_uids[i] = s->allow_uids[i];
        cfg->n_allow_gids = s->n_gids;
        for (size_t i = 0; i < s->n_gids; i++)
            cfg->allow_gids[i] = s->allow_gids[i];
    }
    if (!cfg->drop_privileges && s->user_set) {
        cfg->drop_privileges = true;
        cfg->run_uid = s->user_uid;
        cfg->run_gid = s->user_gid;
    }
    cfg->no_mmap |= s->no_mmap;
    if (cfg->msix_mmap == BR_MSIX_MMAP_UNSET)   /* the command line wins */
        cfg->msix_mmap = s->msix_mmap_kernel && !s->sparse_msix ? BR_MSIX_MMAP_KERNEL
                                                                : BR_MSIX_MMAP_SPARSE;
    if (!cfg->stale_holders_set)
        cfg->stale_holders = s->stale_kill ? BR_STALE_KILL : BR_STALE_REFUSE;
    cfg->no_reset |= !s->reset_on_disconnect;
    if (!cfg->max_dma_bytes_set && s->max_dma_bytes_set)
        cfg->max_dma_bytes = s->max_dma_bytes;
    if (!cfg->handshake_timeout_set && s->handshake_timeout_ms)
        cfg->handshake_timeout_ms = s->handshake_timeout_ms;
    /* testing clients: the command line's trace and rules win */
    if (!cfg->trace_path && s->trace[0]) {
        memcpy(g_pol[slot].trace, s->trace, sizeof(g_pol[slot].trace));
        cfg->trace_path = g_pol[slot].trace;
        cfg->trace_data |= s->trace_data;
    }
    if (cfg->n_inject == 0) {
        for (size_t i = 0; i < s->n_inject; i++) {
            memcpy(g_pol[slot].inject[i], s->inject[i], sizeof(g_pol[slot].inject[i]));
            cfg->inject[i] = g_pol[slot].inject[i];
        }
        cfg->n_inject = s->n_inject;
    }
    br_info("policy %s: devices[%u] exports %s (%04x:%04x) on %s, mode %04o, %zu uids and "
            "%zu gids allowed%s%s", p->path, d->entry->index, id->addr, id->vendor, id->device,
            cfg->socket_path, (unsigned)cfg->socket_mode, cfg->n_allow_uids, cfg->n_allow_gids,
            cfg->drop_privileges ? ", dropping to user " : "",
            cfg->drop_privileges ? s->user_name : "");
}

/* --iommu-group: what the daemon keeps to configure a member bound to
 * vfio-pci after it started (br_service_group_scan/_configure): the policy
 * as loaded at start, the command line's config, the sysfs root. */
static struct {
    struct pol *p;
    struct br_config base;
    char sysfs[256];
    int number;
} g_grp = { .number = -1 };

_Static_assert((int)POL_GROUP_CLIENTS_SAME_VM == (int)BR_GROUP_CLIENTS_SAME_VM &&
               (int)POL_GROUP_CLIENTS_SAME_UID == (int)BR_GROUP_CLIENTS_SAME_UID &&
               (int)POL_GROUP_CLIENTS_ANY == (int)BR_GROUP_CLIENTS_ANY,
               "the policy's group_clients are the bridge's");

/* Member m (exported, on vfio-pci) into slot: its config from the
 * command line's and its entry. */
static struct br_config *configure_member(const struct pol *p, const struct pol_group_member *m,
                                          size_t slot)
{
    struct br_config *fc = &g_fn_cfg[slot];
    *fc = g_grp.base;
    fc->n_functions = 1;
    memcpy(g_pol[slot].device, m->id.addr, sizeof(g_pol[slot].device));
    fc->device = g_pol[slot].device;
    apply_settings(fc, p, &m->id, &m->d, slot);
    return fc;
}

/* --iommu-group: the group's functions that the policy exports and that are
 * bound to vfio-pci, each with its own config (br_function.cfg). */
static int apply_group(struct br_config *cfg, const struct pol *p, const char *sysfs)
{
    static struct pol_group g;
    struct vub_err err = { "" };
    int r = pol_group_decide(p, sysfs, cfg->iommu_group, &g, &err);
    if (r < 0) {
        br_err("%s", err.msg);
        return r;
    }
    /* one rule for the group: the command line's, else the policy's */
    if (!cfg->group_clients_set)
        cfg->group_clients = (enum br_group_clients)g.clients;
    g_grp.base = *cfg;
    g_grp.number = g.number;
    snprintf(g_grp.sysfs, sizeof(g_grp.sysfs), "%s", sysfs);
    struct br_function fns[BR_GROUP_MAX_FUNCTIONS];
    size_t n = 0;
    for (size_t i = 0; i < g.n; i++) {
        const struct pol_group_member *m = &g.m[i];
        if (m->unreadable) {
            br_warn("IOMMU group %d: %s left out: %s", g.number, m->id.addr, m->why);
            continue;
        }
        if (!m->d.exported) {
            br_debug("IOMMU group %d: %s is not exported by the policy", g.number, m->id.addr);
            continue;
        }
        if (strcmp(m->id.driver, "vfio-pci") != 0) {
            br_warn("IOMMU group %d: %s is exported by the policy but bound to %s, not "
                    "vfio-pci: not served until it is bound to vfio-pci", g.number, m->id.addr,
                    m->id.driver[0] ? m->id.driver : "no driver");
            continue;
        }
        if (n == BR_GROUP_MAX_FUNCTIONS) {
            br_err("IOMMU group %d: the policy exports more than %u functions of it",
                   g.number, BR_GROUP_MAX_FUNCTIONS);
            return -E2BIG;
        }
        struct br_config *fc = configure_member(p, m, n);
        if (n > 0 && (fc->drop_privileges != g_fn_cfg[0].drop_privileges ||
                      fc->run_uid != g_fn_cfg[0].run_uid || fc->run_gid != g_fn_cfg[0].run_gid)) {
            br_err("IOMMU group %d: the policy runs %s and %s as different users; one daemon "
                   "serves the group (give their entries one \"user\")", g.number,
                   g_fn_cfg[0].device, fc->device);
            return -EINVAL;
        }
        for (size_t j = 0; j < n; j++)
            if (strcmp(g_fn_cfg[j].socket_path, fc->socket_path) == 0) {
                br_err("IOMMU group %d: the policy gives %s and %s one socket %s", g.number,
                       g_fn_cfg[j].device, fc->device, fc->socket_path);
                return -EINVAL;
            }
        fns[n] = (struct br_function){ .device = fc->device,
                                                  .socket_path = fc->socket_path, .cfg = fc };
        n++;
    }
    if (n == 0) {
        br_err("%s: IOMMU group %d has no function the policy exports that is bound to vfio-pci",
               p->path, g.number);
        return -ENOENT;
    }
    /* the daemon's own: the first function's (the process-wide user among them) */
    *cfg = g_fn_cfg[0];
    memset(cfg->functions, 0, sizeof(cfg->functions));
    memcpy(cfg->functions, fns, n * sizeof(fns[0]));
    cfg->n_functions = n;
    return 0;
}

int br_service_group_scan(struct br_group_scan *out)
{
    static struct pol_group g;
    struct vub_err err = { "" };
    out->n = 0;
    if (!g_grp.p)
        return -EINVAL;
    int r = pol_group_decide(g_grp.p, g_grp.sysfs, g_grp.number, &g, &err);
    if (r < 0) {
        br_err("%s", err.msg);
        return r;
    }
    if (!g_grp.base.group_clients_set && (enum br_group_clients)g.clients != g_grp.base.group_clients) {
        br_err("IOMMU group %d: %s: \"group_clients\" is now \"%s\", the daemon serves with "
               "\"%s\": nothing more is served until it is restarted", g.number, g_grp.p->path,
               pol_group_clients_name(g.clients),
               br_group_clients_name(g_grp.base.group_clients));
        return -EINVAL;
    }
    for (size_t i = 0; i < g.n && out->n < BR_GROUP_MAX_FUNCTIONS; i++) {
        const struct pol_group_member *m = &g.m[i];
        if (m->d.exported && strcmp(m->id.driver, "vfio-pci") == 0)
            memcpy(out->addr[out->n++], m->id.addr, sizeof(out->addr[0]));
    }
    return 0;
}

int br_service_group_configure(const char *addr, size_t slot, const struct br_config **out)
{
    struct vub_err err = { "" };
    struct pol_group_member m;
    *out = NULL;
    if (!g_grp.p || slot >= BR_GROUP_MAX_FUNCTIONS)
        return -EINVAL;
    int r = pol_ident_from_sysfs(g_grp.sysfs, addr, &m.id, &err);
    if (r == 0)
        r = pol_decide(g_grp.p, &m.id, &m.d, &err);
    if (r < 0) {
        br_err("%s", err.msg);
        return r;
    }
    if (!m.d.exported || strcmp(m.id.driver, "vfio-pci") != 0)
        return 0;
    *out = configure_member(g_grp.p, &m, slot);
    return 1;
}

int br_service_apply_policy(struct br_config *cfg)
{
    return br_service_apply_policy_at(cfg, HV_SYSFS_DEFAULT);
}

int br_service_apply_policy_at(struct br_config *cfg, const char *sysfs)
{
    if (!cfg->policy_path)
        return 0;
    if (cfg->iommu_group < 0 && (cfg->sim != BR_SIM_NONE || !cfg->device)) {
        br_err("--policy applies to a real device given with --device");
        return -EINVAL;
    }
    struct vub_err err = { "" };
    struct pol *p = NULL;
    struct pol_ident id;
    struct pol_decision d;
    int r = pol_load_file(cfg->policy_path, &p, &err);
    if (r < 0) {
        br_err("%s", err.msg);
        return r;
    }
    if (cfg->iommu_group >= 0) {
        r = apply_group(cfg, p, sysfs);
        if (r == 0) {   /* kept for the members bound later */
            pol_free(g_grp.p);
            g_grp.p = p;
            p = NULL;
        }
        goto out;
    }
    if ((r = pol_ident_from_sysfs(sysfs, cfg->device, &id, &err)) < 0 ||
        (r = pol_decide(p, &id, &d, &err)) < 0) {
        br_err("%s", err.msg);
        goto out;
    }
    if (!d.exported) {
        not_exported(p, &id, &d);
        r = -ENOENT;
        goto out;
    }
    apply_settings(cfg, p, &id, &d, 0);
    r = 0;
out:
    pol_free(p);
    return r;
}

/* ---- the device watch ---------------------------------------------------------------- */

struct br_service {
    struct dw *dw;
    struct hv_device *hv;
    struct br_server *srv;
    bool req_armed;
    bool gone;
};

/* Point VFIO_PCI_REQ_IRQ_INDEX at our eventfd, once, before any client
 * connects. br_service_attach then reserves the index: clients see it with
 * count 0, and a session's quiesce (br_irq_disable_all skips count-0
 * indexes) leaves it armed for the daemon's whole life. */
static void arm_request(struct br_service *svc)
{
    struct hv_irq_info ii;
    if (!svc->dw || !svc->hv)
        return;
    if (hv_get_irq_info(svc->hv, VFIO_PCI_REQ_IRQ_INDEX, &ii) < 0 || ii.count < 1 ||
        !(ii.flags & VFIO_IRQ_INFO_EVENTFD)) {
        br_debug("the device has no request interrupt; relying on uevents");
        return;
    }
    int32_t fd = dw_request_fd(svc->dw);
    int r = hv_set_irqs(svc->hv, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                                   VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &fd);
    if (r < 0)
        br_warn("cannot arm the device request interrupt: %s; an unbind will wait for this "
                "process to exit", strerror(-r));
    svc->req_armed = r == 0;
}

static void on_device_event(struct br_server *srv, int fd, short revents, void *arg)
{
    struct br_service *svc = arg;
    struct dw_event ev;
    (void)fd;
    (void)revents;
    int r = dw_poll(svc->dw, &ev);
    if (r < 0) {
        br_warn("device watch: %s", strerror(-r));
        return;
    }
    if (ev.kind == DW_NONE)
        return;
    br_warn("%s: closing the client and exiting (status %d)", ev.what, BR_EXIT_DEVICE_GONE);
    svc->gone = true;
    br_server_stop(srv);
}

static int service_open(struct br_service **out, const struct br_config *cfg,
                        struct hv_device *hv, bool resume, int req_fd)
{
    struct br_service *svc = calloc(1, sizeof(*svc));
    if (!svc) {
        if (req_fd >= 0)
            close(req_fd);
        return -ENOMEM;
    }
    *out = svc;
    if (cfg->sim != BR_SIM_NONE) {
        if (req_fd >= 0)
            close(req_fd);
        return 0;
    }
    struct dw_opts o = { .addr = hv->addr, .sysfs = NULL, .source = DW_SOURCE_KERNEL,
                         .request_fd_set = resume && req_fd >= 0, .request_fd = req_fd };
    struct vub_err err = { "" };
    int r = dw_open(&o, &svc->dw, &err);
    if (r < 0) {
        br_err("cannot watch the device: %s", err.msg);
        return r;
    }
    svc->hv = hv;
    /* Listening already: whatever happens from here on is seen. */
    struct dw_event ev;
    dw_check_now(svc->dw, &ev);
    if (ev.kind != DW_NONE) {
        br_err("%s", ev.what);
        svc->gone = true;
        return -ENODEV;
    }
    if (!resume)
        arm_request(svc);
    else
        svc->req_armed = req_fd >= 0;   /* the kernel still holds it */
    return 0;
}

int br_service_start(struct br_service **out, const struct br_config *cfg,
                     struct hv_device *hv)
{
    return service_open(out, cfg, hv, false, -1);
}

int br_service_resume(struct br_service **out, const struct br_config *cfg,
                      struct hv_device *hv, int req_fd)
{
    return service_open(out, cfg, hv, true, req_fd);
}

int br_service_request_fd(const struct br_service *svc)
{
    return svc && svc->dw && svc->req_armed ? dw_request_fd(svc->dw) : -1;
}

int br_service_attach(struct br_service *svc, struct br_server *srv, struct br_dev *dev)
{
    svc->srv = srv;
    if (!svc->dw)
        return 0;
    /* The request interrupt is the bridge's own: clients see it with count 0,
     * cannot set it, and a session's quiesce leaves it armed. */
    if (svc->req_armed)
        dev->reserved_irqs |= 1u << VFIO_PCI_REQ_IRQ_INDEX;
    return br_server_add_fd(srv, dw_fd(svc->dw), POLLIN, on_device_event, svc);
}

int br_service_drop_privileges(const struct br_config *cfg)
{
    if (!cfg->drop_privileges)
        return 0;
    struct vub_err err = { "" };
    int r = acc_drop_privileges(cfg->run_uid, cfg->run_gid, &err);
    if (r < 0) {
        br_err("cannot drop privileges: %s", err.msg);
        return r;
    }
    long long lim = acc_memlock_limit();
    if (lim >= 0)
        br_warn("running as uid %u gid %u with RLIMIT_MEMLOCK %lld bytes: DMA mappings beyond "
                "it fail (LimitMEMLOCK=infinity in the unit lifts it)", (unsigned)cfg->run_uid,
                (unsigned)cfg->run_gid, lim);
    else
        br_info("running as uid %u gid %u", (unsigned)cfg->run_uid, (unsigned)cfg->run_gid);
    return 0;
}

bool br_service_device_gone(const struct br_service *svc)
{
    return svc && svc->gone;
}

void br_service_free(struct br_service *svc)
{
    if (!svc)
        return;
    dw_close(svc->dw);
    free(svc);
}
