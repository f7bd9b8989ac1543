/* SPDX-License-Identifier: MIT */
/* The functions of one IOMMU group in one daemon (group.h). */
#include "group.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "device.h"
#include "log.h"
#include "waits.h"

const char *br_group_clients_name(enum br_group_clients rule)
{
    switch (rule) {
    case BR_GROUP_CLIENTS_SAME_UID: return "same-uid";
    case BR_GROUP_CLIENTS_ANY: return "any";
    case BR_GROUP_CLIENTS_SAME_VM: break;
    }
    return "same-vm";
}

void br_group_init(struct br_group *g, int number, enum br_group_clients rule)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->lock, NULL);
    br_cond_init_monotonic(&g->left);
    g->number = number;
    g->rule = rule;
    br_dma_shared_init(&g->dma);
}

void br_group_destroy(struct br_group *g)
{
    for (size_t i = 0; i < g->n; i++)
        g->fn[i].dev->group = NULL;
    br_dma_shared_destroy(&g->dma);
    pthread_cond_destroy(&g->left);
    pthread_mutex_destroy(&g->lock);
    g->n = 0;
}

int br_group_add(struct br_group *g, struct br_dev *dev)
{
    pthread_mutex_lock(&g->lock);
    int r = -ENOSPC;
    if (g->n < BR_GROUP_MAX_FUNCTIONS) {
        g->fn[g->n++] = (struct br_group_fn){ .dev = dev, .fd = -1 };
        dev->group = g;
        r = 0;
    }
    pthread_mutex_unlock(&g->lock);
    return r;
}

static struct br_group_fn *fn_of(struct br_group *g, const struct br_dev *dev)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->fn[i].dev == dev)
            return &g->fn[i];
    return NULL;
}

void br_group_remove(struct br_group *g, const struct br_dev *dev)
{
    pthread_mutex_lock(&g->lock);
    struct br_group_fn *me = fn_of(g, dev);
    if (me) {
        me->dev->group = NULL;
        *me = g->fn[--g->n];
    }
    pthread_cond_broadcast(&g->left);
    pthread_mutex_unlock(&g->lock);
}

static bool same_client(enum br_group_clients rule, const struct ucred *a, const struct ucred *b)
{
    switch (rule) {
    case BR_GROUP_CLIENTS_ANY: return true;
    case BR_GROUP_CLIENTS_SAME_UID: return a->uid == b->uid;
    case BR_GROUP_CLIENTS_SAME_VM: break;
    }
    return a->uid == b->uid && a->pid == b->pid;
}

/* Whether the peer of a session socket has hung up (its own thread will
 * end the session soon). */
static bool hung_up(int fd)
{
    struct pollfd p = { .fd = fd, .events = 0 };
    return fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

int br_group_join(struct br_group *g, const struct br_dev *dev, int fd, const struct ucred *peer,
                  char *why, size_t whysz)
{
    struct timespec until = br_deadline_ms(BR_GROUP_GONE_WAIT_MS);
    pthread_mutex_lock(&g->lock);
    int r;
    for (;;) {
        struct br_group_fn *me = fn_of(g, dev);
        const struct br_group_fn *in_way = NULL;
        r = me ? 0 : -EINVAL;
        for (size_t i = 0; me && i < g->n && !in_way; i++) {
            const struct br_group_fn *o = &g->fn[i];
            if (o != me && o->busy && !same_client(g->rule, &o->peer, peer))
                in_way = o;
        }
        if (r == 0 && !in_way) {
            me->busy = true;
            me->peer = *peer;
            me->fd = fd;
            me->closing = false;
            break;
        }
        if (in_way && (in_way->closing || hung_up(in_way->fd)) &&
            pthread_cond_timedwait(&g->left, &g->lock, &until) == 0)
            continue;   /* something left: look again */
        if (in_way) {
            char num[16] = "";
            if (g->number >= 0)
                snprintf(num, sizeof(num), " %d", g->number);
            snprintf(why, whysz,
                     "refusing client pid %d uid %u: IOMMU group%s is in use by pid %d uid %u "
                     "on %s (the functions of a group share one IOMMU address space and serve "
                     "one VM; --group-clients %s)", (int)peer->pid, (unsigned)peer->uid, num,
                     (int)in_way->peer.pid, (unsigned)in_way->peer.uid, in_way->dev->hv->addr,
                     br_group_clients_name(g->rule));
            r = -EBUSY;
        }
        break;
    }
    pthread_mutex_unlock(&g->lock);
    return r;
}

void br_group_closing(struct br_group *g, const struct br_dev *dev)
{
    pthread_mutex_lock(&g->lock);
    struct br_group_fn *me = fn_of(g, dev);
    if (me) {
        me->closing = true;
        me->fd = -1;
    }
    pthread_mutex_unlock(&g->lock);
}

/* The functions other than dev with a client, of addrs (NULL: all); lock held. */
static size_t busy_locked(struct br_group *g, const struct br_dev *dev,
                          const char (*addrs)[HV_ADDR_LEN], size_t n, char *out, size_t outsz)
{
    size_t k = 0, used = 0;
    if (outsz)
        out[0] = '\0';
    for (size_t i = 0; i < g->n; i++) {
        const struct br_group_fn *o = &g->fn[i];
        if (o->dev == dev || !o->busy)
            continue;
        bool in = !addrs;
        for (size_t j = 0; addrs && j < n && !in; j++)
            in = strcmp(addrs[j], o->dev->hv->addr) == 0;
        if (!in)
            continue;
        k++;
        if (used < outsz) {
            int w = snprintf(out + used, outsz - used, "%s%s (pid %d uid %u)", k > 1 ? ", " : "",
                             o->dev->hv->addr, (int)o->peer.pid, (unsigned)o->peer.uid);
            if (w > 0)
                used += (size_t)w < outsz - used ? (size_t)w : outsz - used - 1;
        }
    }
    return k;
}

size_t br_group_busy_others(struct br_group *g, const struct br_dev *dev,
                            const char (*addrs)[HV_ADDR_LEN], size_t n, char *out,
                            size_t outsz)
{
    pthread_mutex_lock(&g->lock);
    size_t k = busy_locked(g, dev, addrs, n, out, outsz);
    pthread_mutex_unlock(&g->lock);
    return k;
}

/* A hot reset of dev's bus unless another function in its scope (as the
 * kernel names it now) has a client; lock held, so that no client joins
 * while it runs. */
static int bus_reset_locked(struct br_group *g, struct br_dev *dev, char *why, size_t whysz)
{
    struct hv_reset_dep deps[HV_MAX_RESET_DEPS];
    char scope[HV_MAX_RESET_DEPS][HV_ADDR_LEN];
    size_t n = 0;
    int r = hv_hot_reset_info(dev->hv, deps, HV_MAX_RESET_DEPS, &n);
    if (r < 0) {
        snprintf(why, whysz, "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: %s", strerror(-r));
        return r;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(scope[i], deps[i].addr, HV_ADDR_LEN);
    char busy[256];
    if (busy_locked(g, dev, (const char (*)[HV_ADDR_LEN])scope, n, busy, sizeof(busy))) {
        snprintf(why, whysz, "a hot reset of the bus would also reset %s, which has a client",
                 busy);
        return -EBUSY;
    }
    struct vub_err err = { "" };
    r = hv_hot_reset(dev->hv, &err);
    if (r < 0) {
        snprintf(why, whysz, "%s", err.msg[0] ? err.msg : strerror(-r));
        return r;
    }
    /* every function of the bus has just been reset */
    for (size_t i = 0; i < g->n; i++)
        for (size_t j = 0; j < n; j++)
            if (strcmp(scope[j], g->fn[i].dev->hv->addr) == 0)
                g->fn[i].reset_pending = false;
    return 0;
}

void br_group_defer_reset(struct br_group *g, const struct br_dev *dev)
{
    pthread_mutex_lock(&g->lock);
    struct br_group_fn *me = fn_of(g, dev);
    if (me)
        me->reset_pending = true;
    pthread_mutex_unlock(&g->lock);
}

void br_group_leave(struct br_group *g, const struct br_dev *dev)
{
    pthread_mutex_lock(&g->lock);
    struct br_group_fn *me = fn_of(g, dev);
    if (me) {
        me->busy = false;
        me->closing = false;
        me->fd = -1;
    }
    /* a function whose session ended while its bus was busy is reset once
     * the bus is free (here, before anyone may join) */
    for (size_t i = 0; i < g->n; i++) {
        struct br_group_fn *o = &g->fn[i];
        if (!o->reset_pending || o->busy)
            continue;
        char why[384];
        int r = bus_reset_locked(g, o->dev, why, sizeof(why));
        if (r == -EBUSY)
            continue;
        o->reset_pending = false;
        if (r < 0)
            br_warn("%s: the deferred reset failed: %s", o->dev->hv->addr, why);
        else
            br_info("%s: reset now that no other function of its bus has a client",
                    o->dev->hv->addr);
    }
    pthread_cond_broadcast(&g->left);
    pthread_mutex_unlock(&g->lock);
}

int br_dev_reset(struct br_dev *dev, char *why, size_t whysz)
{
    struct vub_err err = { "" };
    int r;
    switch (dev->reset_kind) {
    case BR_RESET_FUNCTION:
        r = hv_reset(dev->hv);
        if (r < 0)
            snprintf(why, whysz, "VFIO_DEVICE_RESET: %s", strerror(-r));
        return r;
    case BR_RESET_BUS:
        if (dev->group) {
            pthread_mutex_lock(&dev->group->lock);
            r = bus_reset_locked(dev->group, dev, why, whysz);
            pthread_mutex_unlock(&dev->group->lock);
            return r;
        }
        r = hv_hot_reset(dev->hv, &err);
        if (r < 0)
            snprintf(why, whysz, "%s", err.msg[0] ? err.msg : strerror(-r));
        return r;
    case BR_RESET_NONE:
        break;
    }
    snprintf(why, whysz, "the device has no reset");
    return -ENOTSUP;
}
