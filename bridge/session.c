/* SPDX-License-Identifier: MIT */
/* Client session lifecycle: open on accept, quiesce and release on close. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "group.h"
#include "holders.h"
#include "log.h"
#include "session.h"

#define PCI_COMMAND        0x04u
#define PCI_COMMAND_MASTER 0x04u

int br_dev_restore_command(const struct br_dev *dev)
{
    uint16_t v = dev->command0 & (uint16_t)~PCI_COMMAND_MASTER;
    uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
    ssize_t n = hv_region_write(dev->hv, VU_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, b, 2);
    if (n < 0)
        return (int)n;
    return n == 2 ? 0 : -EIO;
}

int br_dev_bus_master_off(struct hv_device *hv)
{
    uint8_t b[2];
    ssize_t n = hv_region_read(hv, VU_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, b, 2);
    if (n < 0)
        return (int)n;
    if (n != 2)
        return -EIO;
    if (!(b[0] & PCI_COMMAND_MASTER))
        return 0;
    b[0] &= (uint8_t)~PCI_COMMAND_MASTER;
    n = hv_region_write(hv, VU_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, b, 2);
    if (n < 0)
        return (int)n;
    return n == 2 ? 0 : -EIO;
}

/* ---- the session's own device file and its holders (bridge/holders.h) ------------ */

/* How long a session end waits for holders that are exiting anyway (a dying
 * client's socket can be closed before the rest of its fd table). */
#define BR_HOLDERS_SETTLE_MS 300
/* Kill-and-look-again rounds (a holder may pass the file on as it dies). */
#define BR_HOLDERS_KILL_ROUNDS 3
/* A search of every process costs tens of ms: within this time of the last
 * search a connection only looks at the holders it found (and is refused,
 * logged at debug level, while one still holds the file), so a peer
 * connecting in a loop cannot make the bridge scan /proc, or log, at its
 * pace. */
#define BR_HOLDERS_RECHECK_MS 1000

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void holder_what(const struct br_holder *h, char *buf, size_t sz)
{
    if (h->fd >= 0 && h->tid != h->pid)
        snprintf(buf, sz, "fd %d of its task %d", h->fd, (int)h->tid);
    else if (h->fd >= 0)
        snprintf(buf, sz, "fd %d", h->fd);
    else
        snprintf(buf, sz, "a mapping at 0x%llx", (unsigned long long)h->map_start);
}

/* Look for the processes that hold f; with settle, give exiting ones a
 * moment; under --stale-holders kill, end them and look again. Returns how
 * many hold it now (sc lists them); a scan that cannot run counts as held. */
static size_t find_holders(const struct br_dev *dev, const struct br_devfile *f, bool settle,
                           struct br_holders_scan *sc)
{
    bool kill = dev->cfg->stale_holders == BR_STALE_KILL;
    int r = br_holders_scan(f, 0, sc);
    if (r == 0 && sc->n && settle) {
        br_holders_wait(f, sc, false, BR_HOLDERS_SETTLE_MS);
        r = br_holders_scan(f, 0, sc);
    }
    for (unsigned round = 0; r == 0 && sc->n && kill && round < BR_HOLDERS_KILL_ROUNDS; round++) {
        for (size_t i = 0; i < sc->n; i++) {
            char what[64];
            holder_what(&sc->h[i], what, sizeof(what));
            br_warn("killing pid %d uid %u (%s): it holds %s of the device file given to "
                    "client pid %d uid %u (--stale-holders kill)", (int)sc->h[i].pid,
                    (unsigned)sc->h[i].uid, sc->h[i].comm, what, (int)f->owner_pid,
                    (unsigned)f->owner_uid);
        }
        int left = br_holders_wait(f, sc, true, BR_HOLDERS_KILL_WAIT_MS);
        if (left > 0)
            br_warn("%d of them still alive after %d ms", left, BR_HOLDERS_KILL_WAIT_MS);
        r = br_holders_scan(f, 0, sc);
    }
    if (r < 0) {
        br_err("cannot look for holders of the device file given to client pid %d: %s; "
               "taking it as held", (int)f->owner_pid, strerror(-r));
        return 1;
    }
    if (sc->uninspectable)
        br_warn("%u processes could not be inspected for holders of the device file (no "
                "permission): a holder among them would not be found (docs/security.md)",
                sc->uninspectable);
    if (sc->ambiguous)
        br_info("%u processes map a region like this device's but also hold other VFIO "
                "devices: not counted as holders (docs/security.md)", sc->ambiguous);
    return sc->n + (sc->truncated ? 1 : 0);
}

/* Refuse a new session while a retired device file is held; forget those
 * that are no longer held. */
static int check_retired(struct br_dev *dev, const struct ucred *peer)
{
    struct br_devfile **pp = &dev->retired;
    int r = 0;
    uint64_t now = mono_ns();
    while (*pp) {
        struct br_devfile *f = *pp;
        struct br_holders_scan sc;
        bool still = false;
        if (f->checked_ns && now - f->checked_ns < BR_HOLDERS_RECHECK_MS * 1000000ull) {
            struct br_holder h;
            for (unsigned i = 0; i < f->n_held && !still; i++)
                still = br_holders_check_pid(f, f->held_by[i], &h) == 1;
        }
        if (still) {
            br_debug("refusing client pid %d uid %u: the device file given to client pid %d "
                     "was still held %llu ms ago", (int)peer->pid, (unsigned)peer->uid,
                     (int)f->owner_pid,
                     (unsigned long long)((now - f->checked_ns) / 1000000ull));
            r = -EBUSY;
            pp = &f->next;
            continue;
        }
        f->checked_ns = now;
        if (find_holders(dev, f, false, &sc) == 0) {
            br_info("the device file given to client pid %d uid %u is no longer held",
                    (int)f->owner_pid, (unsigned)f->owner_uid);
            *pp = f->next;
            br_devfile_free(f);
            continue;
        }
        for (size_t i = 0; i < sc.n; i++) {
            char what[64];
            holder_what(&sc.h[i], what, sizeof(what));
            br_warn("refusing client pid %d uid %u: pid %d uid %u (%s) still holds %s of the "
                    "device file given to client pid %d uid %u", (int)peer->pid,
                    (unsigned)peer->uid, (int)sc.h[i].pid, (unsigned)sc.h[i].uid, sc.h[i].comm,
                    what, (int)f->owner_pid, (unsigned)f->owner_uid);
        }
        f->n_held = 0;
        for (size_t i = 0; i < sc.n; i++)
            f->held_by[f->n_held++] = sc.h[i].pid;
        r = -EBUSY;
        pp = &f->next;
    }
    return r;
}

/* At session end: forget the device file if nobody else holds it, else keep
 * it on dev->retired so that no new session starts while it is held. */
static void retire_device_file(struct br_session *s)
{
    struct br_devfile *f = s->devfile;
    s->devfile = NULL;
    if (!f)
        return;
    struct br_holders_scan sc;
    if (find_holders(s->dev, f, true, &sc) == 0) {
        br_devfile_free(f);
        return;
    }
    for (size_t i = 0; i < sc.n; i++) {
        char what[64];
        holder_what(&sc.h[i], what, sizeof(what));
        br_warn("pid %d uid %u (%s) still holds %s of the device file given to client pid %d "
                "uid %u: no new client until it is gone", (int)sc.h[i].pid,
                (unsigned)sc.h[i].uid, sc.h[i].comm, what, (int)f->owner_pid,
                (unsigned)f->owner_uid);
    }
    f->next = s->dev->retired;
    s->dev->retired = f;
}

void br_session_release_retired(struct br_dev *dev)
{
    while (dev->retired) {
        struct br_devfile *f = dev->retired;
        dev->retired = f->next;
        br_devfile_free(f);
    }
}

/* The file offsets a mapping of this device can show in maps: its
 * mmappable regions' offsets (index << 40 on the kernel), and for a real
 * function each BAR's bus address (what older kernels show). */
static int device_file_ranges(const struct br_dev *dev, struct br_file_range *ranges,
                              unsigned *out_n)
{
    struct hv_device *hv = dev->hv;
    unsigned n = 0;
    struct hv_region_info *ri = malloc(sizeof(*ri));
    if (!ri)
        return -ENOMEM;
    for (uint32_t i = 0; i < dev->num_regions && n + 2 <= BR_HOLDERS_MAX_RANGES; i++) {
        const struct br_region *reg = &dev->regions[i];
        uint64_t start, size;
        if (!reg->valid || !(reg->flags & VU_REGION_INFO_FLAG_MMAP) || !reg->size)
            continue;
        if (hv_get_region_info(hv, i, ri) < 0 || ri->offset + ri->size < ri->offset)
            continue;
        ranges[n++] = (struct br_file_range){ ri->offset, ri->offset + ri->size, false };
        if (hv->group >= 0 && i < 6 && hv_sysfs_bar_phys(NULL, hv->addr, i, &start, &size) == 0 &&
            start + size > start)
            ranges[n++] = (struct br_file_range){ start, start + size, true };
    }
    free(ri);
    *out_n = n;
    return 0;
}

static int open_device_file(struct br_session *s)
{
    struct br_file_range ranges[BR_HOLDERS_MAX_RANGES];
    unsigned n = 0;
    int r = device_file_ranges(s->dev, ranges, &n);
    if (r < 0)
        return r;
    int fd = hv_mmap_fd(s->dev->hv);
    if (fd < 0)
        return fd;
    return br_devfile_new(&s->devfile, fd, ranges, n, s->peer.pid, s->peer.uid);
}

int br_devfile_adopt(const struct br_dev *dev, int fd, pid_t owner_pid, uid_t owner_uid,
                     struct br_devfile **out)
{
    struct br_file_range ranges[BR_HOLDERS_MAX_RANGES];
    unsigned n = 0;
    int r = device_file_ranges(dev, ranges, &n);
    if (r < 0) {
        close(fd);
        return r;
    }
    return br_devfile_new(out, fd, ranges, n, owner_pid, owner_uid);
}

int br_session_device_file(struct br_session *s)
{
    if (!s->devfile) {
        int r = open_device_file(s);
        if (r < 0)
            return r;
    }
    int fd = fcntl(s->devfile->fd, F_DUPFD_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

int br_session_open(struct br_session **out, struct br_dev *dev, int fd, const struct ucred *peer)
{
    int r = check_retired(dev, peer);
    if (r < 0) {
        close(fd);
        return r;
    }
    if (dev->group) {
        char why[384];
        if ((r = br_group_join(dev->group, dev, fd, peer, why, sizeof(why))) < 0) {
            br_warn("%s", why);
            close(fd);
            return r;
        }
    }
    struct br_session *s = calloc(1, sizeof(*s));
    if (!s) {
        if (dev->group)
            br_group_leave(dev->group, dev);
        close(fd);
        return -ENOMEM;
    }
    s->dev = dev;
    s->peer = *peer;
    /* Non-blocking: the loop never waits on a client longer than the I/O
     * timeout (a message it started, or room for a reply). */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        r = -errno;
        if (dev->group)
            br_group_leave(dev->group, dev);
        close(fd);
        free(s);
        return r;
    }
    vu_conn_init_socket(&s->conn, fd, &dev->lim);
    s->conn.io_timeout_ms = (int)(dev->cfg->io_timeout_ms ? dev->cfg->io_timeout_ms
                                                          : BR_DEFAULT_IO_TIMEOUT_MS);
    br_dma_init(&s->dma, dev->caps.max_dma_maps, dev->cfg->max_dma_bytes, dev->page_size);
    if (dev->group)
        s->dma.shared = &dev->group->dma;   /* one IOMMU for the group's functions */
    br_irq_init(&s->irq, dev);
    *out = s;
    return 0;
}

void br_session_close(struct br_session *s)
{
    if (!s)
        return;
    struct hv_device *hv = s->dev->hv;
    size_t maps = s->dma.n;
    if (s->dev->group)
        br_group_closing(s->dev->group, s->dev);   /* a client of another function may wait */
    unsigned irq_fds = br_irq_open_fds(&s->irq);
    bool reset_failed = false;
    int r;

    /* Before VERSION every command is refused: such a client (a connection
     * probe, a refused handshake) cannot have touched the device. */
    bool quiesce = s->negotiated;
    if (quiesce) {
        /* Stop the device mastering the bus before its memory goes away. */
        if ((r = br_dev_bus_master_off(hv)) < 0)
            br_warn("clearing bus master failed: %s", strerror(-r));
        br_irq_disable_all(&s->irq, hv);
        br_dma_unmap_all(&s->dma, hv);
        if ((s->dev->flags & VU_DEVICE_FLAGS_RESET) && !s->dev->cfg->no_reset) {
            char why[384];
            if ((r = br_dev_reset(s->dev, why, sizeof(why))) < 0) {
                reset_failed = true;
                if (r == -EBUSY && s->dev->group)
                    br_group_defer_reset(s->dev->group, s->dev);
                br_warn("%s: %s", r == -EBUSY ? "not reset yet (once its bus is free)"
                                              : "device reset failed", why);
            }
        }
        if ((r = br_dev_restore_command(s->dev)) < 0)
            br_warn("restoring the COMMAND register failed: %s", strerror(-r));
    }

    vu_conn_close(&s->conn);
    br_irq_free(&s->irq);
    br_dma_free(&s->dma);
    retire_device_file(s);
    br_log(s->log_quiet ? BR_LOG_DEBUG : BR_LOG_INFO,
           "client pid %d uid %u disconnected (%s): %llu messages, %llu errors; released "
           "%zu DMA maps, %u IRQ eventfds%s",
            (int)s->peer.pid, (unsigned)s->peer.uid, s->close_reason ? s->close_reason : "closed",
            (unsigned long long)s->n_msgs, (unsigned long long)s->n_errors, maps, irq_fds,
            !quiesce ? ", device untouched"
                     : (s->dev->flags & VU_DEVICE_FLAGS_RESET) && !s->dev->cfg->no_reset &&
                               !reset_failed
                           ? ", device reset" : "");
    if (s->dev->group)
        br_group_leave(s->dev->group, s->dev);
    free(s);
}
