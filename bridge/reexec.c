/* SPDX-License-Identifier: MIT */
/* Live re-exec (reexec.h): gather the state, hand it over, take it back. */
#include "reexec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdstore.h"
#include "holders.h"
#include "log.h"
#include "notify.h"
#include "session.h"

_Static_assert(BR_MAX_IRQ_INDEXES <= BR_STATE_MAX_IRQ_INDEXES, "IRQ indexes must fit the state");
_Static_assert(BR_MAX_IRQ_VECTORS <= BR_STATE_MAX_IRQ_VECTORS, "IRQ vectors must fit the state");
_Static_assert(BR_DMA_MAX_BACKINGS <= BR_STATE_MAX_BACKINGS, "backings must fit the state");
_Static_assert(BR_DMA_MAPS_CEILING <= BR_STATE_MAX_MAPS, "DMA maps must fit the state");

static char g_exe[PATH_MAX];
static int g_argc;
static char **g_argv;
static uint64_t g_started_ns;

static bool g_restart;

void br_reexec_started(void) { g_started_ns = br_now_ns(); }
void br_reexec_note_restart(void) { g_restart = true; }

int br_reexec_init(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
    ssize_t n = readlink("/proc/self/exe", g_exe, sizeof(g_exe) - 1);
    if (n > 0) {
        g_exe[n] = '\0';
        return 0;
    }
    /* no /proc: the path it was started with, if it names a file */
    if (argc > 0 && argv[0][0] == '/' && strlen(argv[0]) < sizeof(g_exe)) {
        snprintf(g_exe, sizeof(g_exe), "%s", argv[0]);
        return 0;
    }
    g_exe[0] = '\0';
    return -ENOENT;
}

/* ---- the old process: gather ----------------------------------------------------- */

static int sfd(int fd, struct br_state_fd *out)
{
    *out = (struct br_state_fd){ .fd = -1 };
    if (fd < 0)
        return 0;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    *out = (struct br_state_fd){ .fd = fd, .dev = (uint64_t)st.st_dev,
                                 .ino = (uint64_t)st.st_ino };
    return 0;
}

struct map_walk {
    struct br_state_session *s;
    const int *slot_index;   /* old backing slot -> index in the state */
    uint32_t n;
};

static void put_map(const struct br_dma_map *m, void *arg)
{
    struct map_walk *w = arg;
    struct br_state_map *o = &w->s->maps[w->n++];
    *o = (struct br_state_map){
        .iova = m->iova, .size = m->size, .offset = m->offset, .flags = m->flags,
        .backing = m->backing >= 0 ? w->slot_index[m->backing] : -1,
        .own_off = m->map_base ? m->map_off : 0, .own_len = m->map_base ? m->map_len : 0,
    };
}

static int gather_session(const struct br_session *se, struct br_state_session *s)
{
    int r;
    const struct vu_conn *c = &se->conn;
    if ((r = sfd(c->fd, &s->conn)) < 0)
        return r;
    s->pid = se->peer.pid;
    s->uid = se->peer.uid;
    s->gid = se->peer.gid;
    s->negotiated = se->negotiated;
    s->client_caps = se->client_caps;
    s->agreed = se->agreed;
    s->lim_max_msg_size = c->lim.max_msg_size;
    s->lim_max_fds = c->lim.max_fds;
    s->n_msgs = se->n_msgs;
    s->n_errors = se->n_errors;
    s->rx_len = c->rx_tail - c->rx_head;
    if (s->rx_len > BR_STATE_MAX_RX)
        return -E2BIG;
    s->rx = s->rx_len ? c->rx + c->rx_head : NULL;   /* borrowed; not freed */
    s->rx_nfds = (uint32_t)c->rx_nfds;
    for (size_t i = 0; i < c->rx_nfds; i++)
        if ((r = sfd(c->rx_fds[i], &s->rx_fds[i])) < 0)
            return r;
    s->rx_fds_at = c->rx_nfds ? (uint32_t)(c->rx_fds_at - c->rx_head) : 0;
    if (se->devfile) {
        s->has_devfile = true;
        if ((r = sfd(se->devfile->fd, &s->devfile.fd)) < 0)
            return r;
        s->devfile.owner_pid = se->devfile->owner_pid;
        s->devfile.owner_uid = se->devfile->owner_uid;
    }
    const struct br_dma_table *t = &se->dma;
    s->dma_bytes = t->bytes;
    s->idle_clock = t->idle_clock;
    int slot_index[BR_STATE_MAX_BACKINGS];
    s->backings = calloc(t->nb ? t->nb : 1, sizeof(*s->backings));
    s->maps = calloc(t->n ? t->n : 1, sizeof(*s->maps));
    if (!s->backings || !s->maps)
        return -ENOMEM;
    if (t->nb > BR_STATE_MAX_BACKINGS || t->n > BR_STATE_MAX_MAPS)
        return -E2BIG;
    for (size_t i = 0; i < t->nb; i++) {
        const struct br_dma_backing *b = &t->backings[i];
        slot_index[i] = -1;
        if (b->fd < 0)
            continue;
        struct br_state_backing *o = &s->backings[s->nb];
        if ((r = sfd(b->fd, &o->fd)) < 0)
            return r;
        o->len = b->base ? b->len : 0;
        o->writable = b->writable;
        o->idle = b->idle;
        o->refs = b->refs;
        o->idle_seq = b->idle_seq;
        slot_index[i] = (int)s->nb++;
    }
    struct map_walk w = { .s = s, .slot_index = slot_index };
    br_dma_foreach(t, put_map, &w);
    s->nm = w.n;
    s->n_irq = se->irq.n;
    for (uint32_t i = 0; i < se->irq.n && i < BR_STATE_MAX_IRQ_INDEXES; i++) {
        const struct br_irq_index *ix = &se->irq.idx[i];
        struct br_state_irq *q = &s->irq[i];
        q->count = ix->count;
        q->flags = ix->flags;
        q->active = ix->active;
        q->used = ix->used;
        if (ix->fds && ix->count) {
            q->has_fds = true;
            q->fds = calloc(ix->count, sizeof(*q->fds));
            if (!q->fds)
                return -ENOMEM;
            for (uint32_t k = 0; k < ix->count; k++)
                if ((r = sfd(ix->fds[k], &q->fds[k])) < 0)
                    return r;
        }
    }
    return 0;
}

int br_reexec_gather(const struct br_reexec_parts *p, struct br_state *st)
{
    struct hv_kernel_fds k;
    int r = hv_vfio_kernel_fds(p->hv, &k);
    if (r < 0)
        return r;
    snprintf(st->addr, sizeof(st->addr), "%s", p->hv->addr);
    if ((r = sfd(k.container, &st->container)) < 0 || (r = sfd(k.group_fd, &st->group_fd)) < 0 ||
        (r = sfd(k.devfd, &st->devfd)) < 0 ||
        (r = sfd(br_service_request_fd(p->svc), &st->req_fd)) < 0 ||
        (r = sfd(br_server_listen_fd(p->srv), &st->listen.fd)) < 0 ||
        (r = sfd(p->sock->dir_fd, &st->listen.dir_fd)) < 0 ||
        (r = sfd(p->ctl->fd, &st->status.fd)) < 0 ||
        (r = sfd(p->ctl->fd >= 0 ? p->ctl->dir_fd : -1, &st->status.dir_fd)) < 0)
        return r;
    st->group = k.group;
    st->command0 = p->dev->command0;
    st->reserved_irqs = p->dev->reserved_irqs;
    snprintf(st->listen.name, sizeof(st->listen.name), "%s", p->sock->name);
    st->listen.file_dev = (uint64_t)p->sock->dev;
    st->listen.file_ino = (uint64_t)p->sock->ino;
    if (p->ctl->fd >= 0) {
        snprintf(st->status.name, sizeof(st->status.name), "%s", p->ctl->name);
        st->status.file_dev = (uint64_t)p->ctl->dev;
        st->status.file_ino = (uint64_t)p->ctl->ino;
    }
    struct br_server_stats ss;
    br_server_get_stats(p->srv, &ss);
    st->accepted = ss.accepted;
    st->refused = ss.refused;
    st->closed = ss.closed;
    st->lim = (struct br_state_limits){
        .max_dma_bytes = p->cfg->max_dma_bytes, .max_dma_maps = p->dev->caps.max_dma_maps,
        .handshake_timeout_ms = p->cfg->handshake_timeout_ms,
        .io_timeout_ms = p->cfg->io_timeout_ms, .no_mmap = p->cfg->no_mmap,
        .no_reset = p->cfg->no_reset, .msix_mmap = (uint8_t)p->cfg->msix_mmap,
        .stale_holders = (uint8_t)p->cfg->stale_holders,
    };
    for (const struct br_devfile *f = p->dev->retired; f; f = f->next) {
        if (st->n_retired == BR_STATE_MAX_RETIRED)
            return -E2BIG;
        struct br_state_devfile *o = &st->retired[st->n_retired++];
        if ((r = sfd(f->fd, &o->fd)) < 0)
            return r;
        o->owner_pid = f->owner_pid;
        o->owner_uid = f->owner_uid;
    }
    const struct br_session *se = br_server_session(p->srv);
    if (se) {
        st->has_session = true;
        if ((r = gather_session(se, &st->s)) < 0)
            return r;
    }
    st->stopped_ns = br_now_ns();
    return 0;
}

void br_reexec_gather_free(struct br_state *st)
{
    st->s.rx = NULL;   /* borrowed from the connection */
    br_state_free(st);
}

static int set_cloexec(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0)
        return -errno;
    fl = on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC;
    return fcntl(fd, F_SETFD, fl) < 0 ? -errno : 0;
}

/* argv again, without an earlier --resume-state, with the new one. */
static char **new_argv(int memfd, char *numbuf, size_t numsz)
{
    char **av = calloc((size_t)g_argc + 3, sizeof(char *));
    if (!av)
        return NULL;
    int n = 0;
    for (int i = 0; i < g_argc; i++) {
        if (strcmp(g_argv[i], "--resume-state") == 0) {
            i++;
            continue;
        }
        if (strncmp(g_argv[i], "--resume-state=", 15) == 0)
            continue;
        av[n++] = g_argv[i];
    }
    snprintf(numbuf, numsz, "%d", memfd);
    av[n++] = "--resume-state";
    av[n++] = numbuf;
    av[n] = NULL;
    return av;
}

int br_reexec(const struct br_reexec_parts *p)
{
    struct br_state st;
    memset(&st, 0, sizeof(st));
    uint8_t *buf = NULL;
    size_t len = 0;
    int memfd = -1;
    const struct br_state_fd **fds = NULL;
    size_t nfds = 0, cleared = 0;
    char **av = NULL;
    char num[16];
    int r;

    if (!g_exe[0]) {
        br_err("SIGHUP: not re-executing: the path of this program is unknown (no "
               "/proc/self/exe at start)");
        return -ENOENT;
    }
    if ((r = br_reexec_gather(p, &st)) < 0) {
        br_err("SIGHUP: not re-executing: cannot gather the state: %s", strerror(-r));
        goto out;
    }
    if ((r = br_state_encode(&st, &buf, &len)) < 0) {
        br_err("SIGHUP: not re-executing: cannot encode the state: %s", strerror(-r));
        goto out;
    }
    memfd = memfd_create("vfio-user-bridge-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd < 0) {
        r = -errno;
        br_err("SIGHUP: not re-executing: memfd_create: %s", strerror(errno));
        goto out;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = write(memfd, buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = n < 0 ? -errno : -EIO;
            br_err("SIGHUP: not re-executing: cannot write the state: %s", strerror(-r));
            goto out;
        }
        off += (size_t)n;
    }
    /* the new process reads exactly what was written */
    (void)fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
    nfds = br_state_fds(&st, NULL, 0);
    fds = calloc(nfds + 1, sizeof(*fds));
    av = new_argv(memfd, num, sizeof(num));
    if (!fds || !av) {
        r = -ENOMEM;
        br_err("SIGHUP: not re-executing: out of memory");
        goto out;
    }
    br_state_fds(&st, fds, nfds);
    for (cleared = 0; cleared < nfds; cleared++)
        if ((r = set_cloexec(fds[cleared]->fd, false)) < 0)
            break;
    if (r == 0 && (r = set_cloexec(memfd, false)) == 0) {
        br_info("SIGHUP: re-executing %s with %zu fds and %zu bytes of state (%u DMA maps, "
                "%zu bytes read ahead)", g_exe, nfds, len, st.has_session ? st.s.nm : 0,
                st.has_session ? st.s.rx_len : (size_t)0);
        /* systemd: reloading until the new process says READY=1 */
        char msg[64];
        snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
                 (unsigned long long)(br_now_ns() / 1000));
        (void)br_notify(msg);
        br_fdstore_before_exec();
        execv(g_exe, av);
        r = -errno;
        br_fdstore_exec_failed();
        (void)br_notify("READY=1");
    }
    br_err("SIGHUP: cannot execute %s: %s; serving on in this process", g_exe, strerror(-r));
    for (size_t i = 0; i < cleared; i++)
        set_cloexec(fds[i]->fd, true);
out:
    if (memfd >= 0)
        close(memfd);
    free(av);
    free(fds);
    free(buf);
    br_reexec_gather_free(&st);
    return r < 0 ? r : -EIO;
}

/* ---- the new process: load, check, apply ------------------------------------------ */

#define REFUSE "cannot resume from the state the previous process handed over"

int br_reexec_load(const struct br_config *cfg, struct br_state *st)
{
    int fd = cfg->resume_state_fd;
    memset(st, 0, sizeof(*st));
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        br_err(REFUSE ": fd %d: %s", fd, strerror(errno));
        return -errno;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size < 0 || (uint64_t)sb.st_size > BR_STATE_MAX_BYTES) {
        br_err(REFUSE ": fd %d is not a state file of at most %u bytes", fd, BR_STATE_MAX_BYTES);
        close(fd);
        return -EINVAL;
    }
    size_t len = (size_t)sb.st_size;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    char why[256] = "";
    int r = got == len ? br_state_decode(buf, len, st, why, sizeof(why)) : -EIO;
    free(buf);
    if (r < 0) {
        br_err(REFUSE ": %s", why[0] ? why : strerror(-r));
        return r;
    }
    return br_reexec_check_state(cfg, st);
}

int br_reexec_check_state(const struct br_config *cfg, const struct br_state *st)
{
    int r;
    if (cfg->sim != BR_SIM_NONE) {
        br_err(REFUSE ": it is for %s, and this process was asked to simulate a device", st->addr);
        return -EINVAL;
    }
    if (!cfg->device || strcmp(cfg->device, st->addr) != 0) {
        br_err(REFUSE ": it is for %s, not %s", st->addr, cfg->device ? cfg->device : "(none)");
        return -EINVAL;
    }
    /* every fd is the open file the old process had */
    size_t n = br_state_fds(st, NULL, 0);
    const struct br_state_fd **fds = calloc(n + 1, sizeof(*fds));
    if (!fds)
        return -ENOMEM;
    br_state_fds(st, fds, n);
    r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        struct stat fs;
        if (fstat(fds[i]->fd, &fs) < 0) {
            r = -errno;
            br_err(REFUSE ": fd %d: %s", (int)fds[i]->fd, strerror(errno));
        } else if ((uint64_t)fs.st_dev != fds[i]->dev || (uint64_t)fs.st_ino != fds[i]->ino) {
            r = -EBADF;
            br_err(REFUSE ": fd %d is not the file the previous process had", (int)fds[i]->fd);
        }
    }
    /* inherited without FD_CLOEXEC for the exec only: no child gets them */
    for (size_t i = 0; i < n && r == 0; i++)
        (void)set_cloexec(fds[i]->fd, true);
    free(fds);
    return r;
}

int br_reexec_open_device(const struct br_state *st, struct hv_device **out)
{
    struct hv_kernel_fds k = { .container = st->container.fd, .group = st->group,
                               .group_fd = st->group_fd.fd, .devfd = st->devfd.fd };
    struct vub_err err = { "" };
    int r = hv_vfio_adopt(st->addr, &k, out, &err);
    if (r < 0)
        br_err(REFUSE ": %s", err.msg[0] ? err.msg : strerror(-r));
    return r;
}

int br_reexec_check_device(const struct br_state *st, const struct br_dev *dev)
{
    if (!st->has_session)
        return 0;
    if (st->s.n_irq != dev->num_irqs) {
        br_err(REFUSE ": %u IRQ indexes, the device has %u", st->s.n_irq, dev->num_irqs);
        return -EINVAL;
    }
    for (uint32_t i = 0; i < st->s.n_irq; i++) {
        uint32_t count = (st->reserved_irqs & (1u << i)) ? 0 : dev->irqs[i].count;
        if (st->s.irq[i].count != count) {
            br_err(REFUSE ": IRQ index %u has %u vectors, the device %u", i, st->s.irq[i].count,
                   count);
            return -EINVAL;
        }
    }
    return 0;
}

void br_reexec_apply_limits(const struct br_state *st, struct br_config *cfg)
{
    cfg->max_dma_bytes = st->lim.max_dma_bytes;
    cfg->max_dma_maps = st->lim.max_dma_maps;
    cfg->handshake_timeout_ms = st->lim.handshake_timeout_ms;
    cfg->io_timeout_ms = st->lim.io_timeout_ms;
    cfg->no_mmap = st->lim.no_mmap;
    cfg->no_reset = st->lim.no_reset;
    cfg->msix_mmap = (enum br_msix_mmap)st->lim.msix_mmap;
    cfg->stale_holders = (enum br_stale_holders)st->lim.stale_holders;
}

static int take(struct br_state_fd *f)
{
    int fd = f->fd;
    f->fd = -1;
    return fd;
}

static int apply_session(struct br_state_session *ss, struct br_server *srv, struct br_dev *dev,
                         const struct br_state *st)
{
    struct br_session *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->dev = dev;
    s->peer = (struct ucred){ .pid = ss->pid, .uid = ss->uid, .gid = ss->gid };
    struct vu_limits lim = { .max_msg_size = ss->lim_max_msg_size, .max_fds = ss->lim_max_fds };
    vu_conn_init_socket(&s->conn, take(&ss->conn), &lim);
    s->conn.io_timeout_ms = (int)(dev->cfg->io_timeout_ms ? dev->cfg->io_timeout_ms
                                                          : BR_DEFAULT_IO_TIMEOUT_MS);
    br_dma_init(&s->dma, st->lim.max_dma_maps, st->lim.max_dma_bytes, dev->page_size);
    br_irq_init(&s->irq, dev);
    /* from here on the session owns what it was given: a failure below
     * ends the process, and its exit releases all of it */
    br_server_adopt_session(srv, s);
    int rxfds[VU_MAX_FDS_PER_MSG];
    for (uint32_t i = 0; i < ss->rx_nfds; i++)
        rxfds[i] = take(&ss->rx_fds[i]);
    int r = vu_conn_preload(&s->conn, ss->rx, ss->rx_len, rxfds, ss->rx_nfds, ss->rx_fds_at);
    if (r < 0) {
        br_err(REFUSE ": the read-ahead bytes: %s", strerror(-r));
        return r;
    }
    s->negotiated = ss->negotiated;
    s->client_caps = ss->client_caps;
    s->agreed = ss->agreed;
    s->n_msgs = ss->n_msgs;
    s->n_errors = ss->n_errors;

    struct br_dma_adopt_backing *b = calloc(ss->nb ? ss->nb : 1, sizeof(*b));
    struct br_dma_adopt_map *m = calloc(ss->nm ? ss->nm : 1, sizeof(*m));
    if (!b || !m) {
        free(b);
        free(m);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < ss->nb; i++)
        b[i] = (struct br_dma_adopt_backing){ .fd = take(&ss->backings[i].fd),
                                              .len = (size_t)ss->backings[i].len,
                                              .writable = ss->backings[i].writable,
                                              .idle = ss->backings[i].idle,
                                              .idle_seq = ss->backings[i].idle_seq };
    for (uint32_t i = 0; i < ss->nm; i++) {
        const struct br_state_map *x = &ss->maps[i];
        m[i] = (struct br_dma_adopt_map){ .iova = x->iova, .size = x->size, .offset = x->offset,
                                          .flags = x->flags, .backing = x->backing,
                                          .own_off = x->own_off, .own_len = x->own_len };
    }
    r = br_dma_adopt(&s->dma, b, ss->nb, m, ss->nm, ss->idle_clock);
    free(b);
    free(m);
    if (r < 0) {
        br_err(REFUSE ": cannot map the client's memory again: %s", strerror(-r));
        return r;
    }
    for (uint32_t i = 0; i < ss->n_irq; i++) {
        struct br_irq_index *ix = &s->irq.idx[i];
        const struct br_state_irq *q = &ss->irq[i];
        ix->active = q->active;
        ix->used = q->used;
        if (q->has_fds && q->count) {
            ix->fds = malloc(q->count * sizeof(int));
            if (!ix->fds)
                return -ENOMEM;
            for (uint32_t k = 0; k < q->count; k++)
                ix->fds[k] = take(&q->fds[k]);
        }
    }
    if (ss->has_devfile) {
        r = br_devfile_adopt(dev, take(&ss->devfile.fd), ss->devfile.owner_pid,
                             ss->devfile.owner_uid, &s->devfile);
        if (r < 0) {
            br_err(REFUSE ": the session's device file: %s", strerror(-r));
            return r;
        }
    }
    return 0;
}

int br_reexec_apply(struct br_state *st, struct br_server *srv, struct br_dev *dev)
{
    dev->command0 = st->command0;
    for (uint32_t i = 0; i < st->n_retired; i++) {
        struct br_devfile *f = NULL;
        int r = br_devfile_adopt(dev, take(&st->retired[i].fd), st->retired[i].owner_pid,
                                 st->retired[i].owner_uid, &f);
        if (r < 0) {
            br_err(REFUSE ": a retired device file: %s", strerror(-r));
            return r;
        }
        f->next = dev->retired;
        dev->retired = f;
    }
    struct br_server_stats ss = { .accepted = st->accepted, .refused = st->refused,
                                  .closed = st->closed };
    br_server_set_stats(srv, &ss);
    if (st->has_session) {
        int r = apply_session(&st->s, srv, dev, st);
        if (r < 0)
            return r;
    }
    uint64_t now = br_now_ns();
    unsigned long long us = (now - st->stopped_ns) / 1000;
    unsigned long long exec_us = g_started_ns > st->stopped_ns
                                     ? (g_started_ns - st->stopped_ns) / 1000 : 0;
    unsigned long long take_us = g_started_ns && now > g_started_ns
                                     ? (now - g_started_ns) / 1000 : 0;
    if (g_restart)
        br_info("resumed from the fd store (state written %llu us ago, take-over %llu us): %s "
                "pid %d uid %u, %u DMA maps", us, take_us, st->has_session ? "client" : "no client",
                st->has_session ? (int)st->s.pid : 0, st->has_session ? (unsigned)st->s.uid : 0u,
                st->has_session ? st->s.nm : 0u);
    else if (st->has_session)
        br_info("resumed after a re-exec in %llu us (exec %llu us, take-over %llu us): client "
                "pid %d uid %u, %u DMA maps, %zu bytes read ahead", us, exec_us, take_us,
                (int)st->s.pid, (unsigned)st->s.uid, st->s.nm, st->s.rx_len);
    else
        br_info("resumed after a re-exec in %llu us (exec %llu us, take-over %llu us): no "
                "client", us, exec_us, take_us);
    return 0;
}
