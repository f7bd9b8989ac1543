/* SPDX-License-Identifier: MIT */
/* Restart from the service manager's fd store (fdstore.h). */
#include "fdstore.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "holders.h"
#include "log.h"
#include "notify.h"

#define CTL_MAGIC "VUBFDST1"
#define CTL_VERSION 1u
#define ENV_STATE_FD "VUB_FDSTORE_STATE_FD"
#define NO_SLOT 2u

_Static_assert(sizeof(struct br_fdstore_ctl) <= BR_FDSTORE_CTL_SIZE, "control page");
_Static_assert(BR_FDSTORE_MAX_FDS >= 16 + BR_STATE_MAX_RETIRED + BR_STATE_MAX_BACKINGS +
                                         VU_MAX_FDS_PER_MSG + 3 * 512,
               "the token table holds a session's fds");

struct tok_ent {
    uint32_t fd, token;
};

struct tok {
    int fd;            /* the fd in this process */
    int dup;           /* our own reference, for kcmp (fd may be closed and reused) */
    uint32_t token;
    uint64_t dev, ino;
    bool seen;
};

static struct {
    bool on;
    int memfd;
    uint8_t *map;                  /* [0, BR_FDSTORE_TABLE_END) */
    struct br_fdstore_ctl *ctl;
    struct tok *t;
    size_t n, cap;
    struct br_reexec_parts parts;
    bool have_parts;
    uint64_t seq, done_seq;
    uint64_t file_size;
    int exec_fl;                   /* the memfd's fd flags before an exec */
} g = { .memfd = -1 };

bool br_fdstore_on(void) { return g.on; }

/* ---- the decision ------------------------------------------------------------------ */

void br_fdstore_recover(const struct br_fdstore_wal *w, bool unread, uint64_t done_seq,
                        const struct br_state_map *maps, size_t nm,
                        struct br_fdstore_recovery *out)
{
    *out = (struct br_fdstore_recovery){ .msg_id = w->msg_id, .cmd = w->cmd };
    if (!w->in_hand || unread || (w->seq && w->seq == done_seq))
        return;
    out->end_session = true;
    if (!w->map_intent || w->size == 0 || w->iova + w->size < w->iova)
        return;
    for (size_t i = 0; i < nm; i++)
        if (maps[i].iova < w->iova + w->size && w->iova < maps[i].iova + maps[i].size)
            return;   /* refused before any kernel call: EEXIST */
    out->unmap = true;
    out->iova = w->iova;
    out->size = w->size;
}

/* ---- the store --------------------------------------------------------------------- */

static int push(int fd, uint32_t token)
{
    char msg[64];
    snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=" BR_FDSTORE_NAME_PREFIX "%u", token);
    int r = br_notify_fds(msg, &fd, 1);
    return r == 0 ? -ENOTCONN : r < 0 ? r : 0;
}

static void unstore(const char *name)
{
    char msg[BR_FDNAME_MAX + 32];
    snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
    (void)br_notify(msg);
}

static void unstore_token(uint32_t token)
{
    char name[32];
    snprintf(name, sizeof(name), BR_FDSTORE_NAME_PREFIX "%u", token);
    unstore(name);
}

/* Whether fd is still the open file entry e was made for. */
static bool same_file(const struct tok *e, int fd, uint64_t dev, uint64_t ino)
{
    if (e->dev != dev || e->ino != ino)
        return false;
    long r = syscall(SYS_kcmp, (long)getpid(), (long)getpid(), (long)KCMP_FILE, (long)e->dup,
                     (long)fd);
    /* kcmp unavailable: the same inode counts as the same file (the
     * service manager keeps one copy of an open file whatever its name) */
    return r <= 0;
}

static int tok_add(int fd, uint32_t token, uint64_t dev, uint64_t ino)
{
    if (g.n == g.cap) {
        size_t cap = g.cap ? g.cap * 2 : 64;
        struct tok *t = realloc(g.t, cap * sizeof(*t));
        if (!t)
            return -ENOMEM;
        g.t = t;
        g.cap = cap;
    }
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dup < 0)
        return -errno;
    g.t[g.n++] = (struct tok){ .fd = fd, .dup = dup, .token = token, .dev = dev, .ino = ino,
                               .seen = true };
    return 0;
}

static struct tok *tok_find(int fd)
{
    for (size_t i = 0; i < g.n; i++)
        if (g.t[i].fd == fd && !g.t[i].seen)
            return &g.t[i];
    return NULL;
}

static void write_table(void)
{
    struct tok_ent *e = (struct tok_ent *)(g.map + BR_FDSTORE_CTL_SIZE);
    for (size_t i = 0; i < g.n; i++)
        e[i] = (struct tok_ent){ .fd = (uint32_t)g.t[i].fd, .token = g.t[i].token };
    atomic_thread_fence(memory_order_release);
    g.ctl->n_table = (uint32_t)g.n;
}

static int write_blob(const uint8_t *buf, size_t len, uint32_t slot)
{
    struct br_fdstore_slot s = g.ctl->slot[slot];
    if (s.cap < len || s.off < BR_FDSTORE_TABLE_END) {
        s.off = g.file_size;
        s.cap = ((uint64_t)len + len / 2 + 4095) & ~4095ull;
        if (ftruncate(g.memfd, (off_t)(s.off + s.cap)) < 0)
            return -errno;
        g.file_size = s.off + s.cap;
    }
    for (size_t done = 0; done < len;) {
        ssize_t n = pwrite(g.memfd, buf + done, len - done, (off_t)(s.off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    s.len = len;
    s.done_seq = g.done_seq;
    g.ctl->slot[slot] = s;
    atomic_thread_fence(memory_order_release);
    g.ctl->active = slot;          /* the one store that makes it current */
    atomic_thread_fence(memory_order_release);
    return 0;
}

static int snapshot(void)
{
    struct br_state st;
    memset(&st, 0, sizeof(st));
    struct br_state_fd **fds = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int r = br_reexec_gather(&g.parts, &st);
    if (r < 0)
        goto out;
    size_t n = br_state_fds_mut(&st, NULL, 0);
    if (n > BR_FDSTORE_MAX_FDS) {
        r = -E2BIG;
        goto out;
    }
    fds = calloc(n + 1, sizeof(*fds));
    if (!fds) {
        r = -ENOMEM;
        goto out;
    }
    br_state_fds_mut(&st, fds, n);
    for (size_t i = 0; i < g.n; i++)
        g.t[i].seen = false;
    size_t old_n = g.n;
    for (size_t i = 0; i < n; i++) {
        /* gather fstat'ed each fd already: its st_dev/st_ino are in the state */
        struct tok *e = tok_find(fds[i]->fd);
        if (e && e - g.t < (ptrdiff_t)old_n && same_file(e, fds[i]->fd, fds[i]->dev, fds[i]->ino)) {
            e->seen = true;
            fds[i]->fd = (int32_t)e->token;
            continue;
        }
        if (g.ctl->next_token >= INT32_MAX) {
            r = -EOVERFLOW;
            goto out;
        }
        uint32_t token = g.ctl->next_token;
        if ((r = push(fds[i]->fd, token)) < 0)
            goto out;
        g.ctl->next_token = token + 1;
        /* pushed: from here on the entry must exist, or the store would
         * keep a copy nothing removes */
        if ((r = tok_add(fds[i]->fd, token, fds[i]->dev, fds[i]->ino)) < 0) {
            unstore_token(token);
            goto out;
        }
        fds[i]->fd = (int32_t)token;
    }
    if ((r = br_state_encode(&st, &buf, &len)) < 0)
        goto out;
    uint32_t slot = g.ctl->active == 0 ? 1 : 0;
    if ((r = write_blob(buf, len, slot)) < 0)
        goto out;
    /* current now: what it does not name leaves the store */
    size_t k = 0;
    for (size_t i = 0; i < g.n; i++) {
        if (g.t[i].seen) {
            g.t[k++] = g.t[i];
            continue;
        }
        unstore_token(g.t[i].token);
        close(g.t[i].dup);
    }
    g.n = k;
    write_table();
out:
    if (r < 0) {
        /* new entries stay (their fds are in the store); unseen old ones
         * too (the current snapshot still names them) */
        for (size_t i = 0; i < g.n; i++)
            g.t[i].seen = false;
    }
    free(buf);
    free(fds);
    br_reexec_gather_free(&st);
    return r;
}

int br_fdstore_changed(void)
{
    if (!g.on || !g.have_parts)
        return 0;
    int r = snapshot();
    if (r < 0) {
        /* the previous snapshot no longer matches the kernel: a new process
         * must not resume it (a mapping it lacks would stay in the IOMMU) */
        g.ctl->active = NO_SLOT;
        atomic_thread_fence(memory_order_release);
        br_err("fd store: cannot write the state (%s): until the next change is written, a "
               "restart starts afresh (the session ends, the kernel releases the device)",
               strerror(-r));
    }
    return r;
}

void br_fdstore_set_parts(const struct br_reexec_parts *p)
{
    g.parts = *p;
    g.have_parts = true;
}

/* ---- the message path ------------------------------------------------------------- */

void br_fdstore_peeked(void *arg, const struct vu_hdr *h)
{
    (void)arg;
    if (!g.on)
        return;
    struct br_fdstore_wal *w = &g.ctl->wal;
    w->in_hand = 0;
    atomic_thread_fence(memory_order_release);
    w->msg_id = h->msg_id;
    w->cmd = h->cmd;
    w->seq = ++g.seq;
    w->map_intent = 0;
    atomic_thread_fence(memory_order_release);
    w->in_hand = 1;
    atomic_thread_fence(memory_order_release);
}

void br_fdstore_received(const struct vu_msg *m)
{
    if (!g.on || m->hdr.cmd != VU_CMD_DMA_MAP)
        return;
    struct vu_dma_map dm;
    struct vub_err err;
    if (vu_decode_dma_map(m, &dm, &err) < 0)
        return;   /* refused before any kernel call */
    struct br_fdstore_wal *w = &g.ctl->wal;
    w->iova = dm.address;
    w->size = dm.size;
    atomic_thread_fence(memory_order_release);
    w->map_intent = 1;
    atomic_thread_fence(memory_order_release);
}

void br_fdstore_handled(uint16_t cmd)
{
    if (!g.on)
        return;
    g.done_seq = g.seq;
    switch (cmd) {
    case VU_CMD_VERSION:
    case VU_CMD_DMA_MAP:
    case VU_CMD_DMA_UNMAP:
    case VU_CMD_DEVICE_SET_IRQS:
    case VU_CMD_DEVICE_RESET:
        (void)br_fdstore_changed();
        break;
    default:
        break;
    }
    atomic_thread_fence(memory_order_release);
    g.ctl->wal.in_hand = 0;
    atomic_thread_fence(memory_order_release);
}

/* ---- start ------------------------------------------------------------------------ */

static int map_ctl(int memfd, bool fresh)
{
    struct stat sb;
    if (fstat(memfd, &sb) < 0)
        return -errno;
    if (fresh) {
        if (ftruncate(memfd, BR_FDSTORE_TABLE_END) < 0)
            return -errno;
        sb.st_size = BR_FDSTORE_TABLE_END;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size < (off_t)BR_FDSTORE_TABLE_END)
        return -EINVAL;
    void *p = mmap(NULL, BR_FDSTORE_TABLE_END, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (p == MAP_FAILED)
        return -errno;
    g.map = p;
    g.ctl = p;
    g.memfd = memfd;
    g.file_size = (uint64_t)sb.st_size;
    if (!fresh && (memcmp(g.ctl->magic, CTL_MAGIC, 8) != 0 || g.ctl->version != CTL_VERSION))
        return -EPROTO;
    return 0;
}

static void unmap_ctl(void)
{
    if (g.map)
        munmap(g.map, BR_FDSTORE_TABLE_END);
    g.map = NULL;
    g.ctl = NULL;
}

int br_fdstore_open(bool after_reexec)
{
    int r;
    if (g.on)
        return 0;
    if (!getenv("NOTIFY_SOCKET")) {
        br_err("--fd-store: $NOTIFY_SOCKET is not set: no service manager keeps the fds "
               "(run it as a systemd service with FileDescriptorStoreMax=)");
        return -ENOTCONN;
    }
    const char *env = getenv(ENV_STATE_FD);
    if (after_reexec && env) {
        int fd = atoi(env);
        unsetenv(ENV_STATE_FD);
        if ((r = map_ctl(fd, false)) < 0) {
            br_err("fd store: the state memfd the previous program left (fd %d): %s", fd,
                   strerror(-r));
            return r;
        }
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
        g.ctl->pid = (int32_t)getpid();
        /* exec kept every fd number: the table is still true; our own
         * references (close-on-exec) are made again */
        const struct tok_ent *e = (const struct tok_ent *)(g.map + BR_FDSTORE_CTL_SIZE);
        uint32_t n = g.ctl->n_table;
        for (uint32_t i = 0; i < n && i < BR_FDSTORE_MAX_FDS; i++) {
            struct stat sb;
            if (fstat((int)e[i].fd, &sb) < 0 ||
                tok_add((int)e[i].fd, e[i].token, (uint64_t)sb.st_dev, (uint64_t)sb.st_ino) < 0)
                unstore_token(e[i].token);
        }
        g.seq = g.done_seq = g.ctl->slot[g.ctl->active < NO_SLOT ? g.ctl->active : 0].done_seq;
        g.on = true;
        br_holders_set_keeper(getppid());
        return 0;
    }
    int fd = memfd_create("vfio-user-bridge-fdstore", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if ((r = map_ctl(fd, true)) < 0) {
        close(fd);
        return r;
    }
    memcpy(g.ctl->magic, CTL_MAGIC, 8);
    g.ctl->version = CTL_VERSION;
    g.ctl->pid = (int32_t)getpid();
    g.ctl->active = NO_SLOT;
    g.ctl->next_token = 1;
    int sfd = fd;
    r = br_notify_fds("FDSTORE=1\nFDNAME=" BR_FDSTORE_STATE_NAME, &sfd, 1);
    if (r <= 0) {
        br_err("fd store: cannot hand the state memfd to $NOTIFY_SOCKET: %s",
               r == 0 ? "not set" : strerror(-r));
        unmap_ctl();
        close(fd);
        g.memfd = -1;
        return r == 0 ? -ENOTCONN : r;
    }
    g.on = true;
    /* the service manager: its parent (systemd's PID 1 for a unit) */
    br_holders_set_keeper(getppid());
    return 0;
}

void br_fdstore_before_exec(void)
{
    if (!g.on)
        return;
    char num[16];
    snprintf(num, sizeof(num), "%d", g.memfd);
    setenv(ENV_STATE_FD, num, 1);
    g.exec_fl = fcntl(g.memfd, F_GETFD);
    (void)fcntl(g.memfd, F_SETFD, 0);
}

void br_fdstore_exec_failed(void)
{
    if (!g.on)
        return;
    unsetenv(ENV_STATE_FD);
    (void)fcntl(g.memfd, F_SETFD, g.exec_fl >= 0 ? g.exec_fl : FD_CLOEXEC);
}

/* ---- a new process: take the state back ------------------------------------------- */

#define REFUSE "cannot resume from the fd store"

static void drop_all(struct br_listen_fds *lf, const bool *keep)
{
    for (size_t i = 0; i < lf->n; i++) {
        if (keep && keep[i])
            continue;
        unstore(lf->names[i]);
        close(BR_LISTEN_FDS_START + (int)i);
    }
}

static int find_name(const struct br_listen_fds *lf, const char *name)
{
    for (size_t i = 0; i < lf->n; i++)
        if (strcmp(lf->names[i], name) == 0)
            return (int)i;
    return -1;
}

int br_fdstore_take(const struct br_config *cfg, struct br_state *st,
                    struct br_fdstore_recovery *rec)
{
    struct br_listen_fds lf;
    memset(st, 0, sizeof(*st));
    *rec = (struct br_fdstore_recovery){ 0 };
    int n = br_listen_fds(&lf);
    if (n < 0) {
        br_err(REFUSE ": $LISTEN_FDS/$LISTEN_FDNAMES are malformed");
        return n;
    }
    if (n == 0)
        return 0;
    bool *keep = calloc(lf.n, sizeof(bool));
    struct br_state_fd **fds = NULL;
    uint8_t *buf = NULL;
    int r = 0;
    if (!keep) {
        r = -ENOMEM;
        goto fail;
    }
    int si = find_name(&lf, BR_FDSTORE_STATE_NAME);
    if (si < 0) {
        br_warn("fd store: %zu fds given but no " BR_FDSTORE_STATE_NAME ": starting afresh",
                lf.n);
        drop_all(&lf, NULL);
        r = 0;
        goto out;
    }
    int memfd = BR_LISTEN_FDS_START + si;
    if ((r = map_ctl(memfd, false)) < 0) {
        br_err(REFUSE ": its " BR_FDSTORE_STATE_NAME " is not a state of this program: %s",
               strerror(-r));
        goto fail;
    }
    uint32_t active = g.ctl->active;
    if (active >= NO_SLOT) {
        /* the previous process died before its first snapshot */
        br_warn("fd store: the state holds no snapshot yet: starting afresh");
        unmap_ctl();
        drop_all(&lf, NULL);
        r = 0;
        goto out;
    }
    struct br_fdstore_slot s = g.ctl->slot[active];
    if (s.len > BR_STATE_MAX_BYTES || s.off + s.len > g.file_size || s.off < BR_FDSTORE_TABLE_END) {
        br_err(REFUSE ": its snapshot lies outside the state memfd");
        r = -EBADMSG;
        goto fail;
    }
    buf = malloc(s.len ? s.len : 1);
    if (!buf) {
        r = -ENOMEM;
        goto fail;
    }
    if (pread(memfd, buf, s.len, (off_t)s.off) != (ssize_t)s.len) {
        r = -EIO;
        goto fail;
    }
    char why[256] = "";
    if ((r = br_state_decode(buf, s.len, st, why, sizeof(why))) < 0) {
        br_err(REFUSE ": %s", why[0] ? why : strerror(-r));
        goto fail;
    }
    size_t nf = br_state_fds_mut(st, NULL, 0);
    fds = calloc(nf + 1, sizeof(*fds));
    if (!fds) {
        r = -ENOMEM;
        goto fail;
    }
    br_state_fds_mut(st, fds, nf);
    keep[si] = true;
    uint32_t *tokens = calloc(nf + 1, sizeof(uint32_t));
    if (!tokens) {
        r = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < nf; i++) {
        char name[32];
        tokens[i] = (uint32_t)fds[i]->fd;
        snprintf(name, sizeof(name), BR_FDSTORE_NAME_PREFIX "%u", tokens[i]);
        int k = find_name(&lf, name);
        if (k < 0 || keep[k]) {
            br_err(REFUSE ": the store lacks %s, which the state names", name);
            free(tokens);
            r = -EBADF;
            goto fail;
        }
        keep[k] = true;
        fds[i]->fd = BR_LISTEN_FDS_START + k;
    }
    if ((r = br_reexec_check_state(cfg, st)) < 0) {
        free(tokens);
        goto fail;
    }
    /* the message in hand: is it still unread at the head of the connection? */
    struct br_fdstore_wal w = g.ctl->wal;
    bool unread = false;
    if (w.in_hand && st->has_session) {
        struct vu_hdr h;
        ssize_t pn = recv(st->s.conn.fd, &h, sizeof(h), MSG_PEEK | MSG_DONTWAIT);
        unread = pn == (ssize_t)sizeof(h) && h.msg_id == w.msg_id && h.cmd == w.cmd;
    }
    br_fdstore_recover(&w, unread, s.done_seq, st->has_session ? st->s.maps : NULL,
                       st->has_session ? st->s.nm : 0, rec);
    /* this process keeps the store from here on */
    for (size_t i = 0; i < nf; i++) {
        /* checked against st_dev/st_ino above: the state's values are the fd's */
        if ((r = tok_add(fds[i]->fd, tokens[i], fds[i]->dev, fds[i]->ino)) < 0) {
            free(tokens);
            goto fail;
        }
    }
    free(tokens);
    drop_all(&lf, keep);   /* what the snapshot does not name */
    g.ctl->pid = (int32_t)getpid();
    g.seq = g.done_seq = (w.seq > s.done_seq ? w.seq : s.done_seq);
    g.on = true;
    br_holders_set_keeper(getppid());
    r = 1;
    goto out;
fail:
    /* a state that cannot be taken is dropped from the store: the next
     * start is a fresh one (the kernel releases the device when the last
     * copy of its fds closes, and the client sees its connection end) */
    br_err("fd store: dropping the stored state and its %zu fds", lf.n);
    unmap_ctl();
    drop_all(&lf, NULL);
    br_state_free(st);
    memset(st, 0, sizeof(*st));
    while (g.n)
        close(g.t[--g.n].dup);
out:
    free(buf);
    free(fds);
    free(keep);
    br_listen_fds_free(&lf);
    return r;
}
