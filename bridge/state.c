/* SPDX-License-Identifier: MIT */
/* The state format of a live re-exec (state.h): one walk over the fields,
 * run to write them or to read them, so that both directions cannot
 * disagree on the order; then a validation of what was read. */
#include "state.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t br_crc32(const uint8_t *p, size_t n)
{
    static uint32_t table[256];
    static bool ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = true;
    }
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

struct codec {
    bool dec;
    uint8_t *buf;
    size_t len, pos;   /* dec: bytes to read; enc: bytes written, cap in len */
    int err;           /* first error (negative errno) */
    char *why;
    size_t whysz;
};

__attribute__((format(printf, 3, 4)))
static void bad(struct codec *c, int err, const char *fmt, ...)
{
    if (c->err)
        return;
    c->err = err;
    if (c->why && c->whysz) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why, c->whysz, fmt, ap);
        va_end(ap);
    }
}

static void raw(struct codec *c, void *p, size_t n, const char *what)
{
    if (c->err || n == 0)
        return;
    if (c->dec) {
        if (c->len - c->pos < n) {
            bad(c, -EBADMSG, "truncated at %s (byte %zu of %zu)", what, c->pos, c->len);
            memset(p, 0, n);
            return;
        }
        memcpy(p, c->buf + c->pos, n);
    } else {
        if (c->len - c->pos < n) {
            size_t cap = c->len * 2 > c->pos + n ? c->len * 2 : c->pos + n + 4096;
            uint8_t *nb = realloc(c->buf, cap);
            if (!nb) {
                bad(c, -ENOMEM, "out of memory");
                return;
            }
            c->buf = nb;
            c->len = cap;
        }
        memcpy(c->buf + c->pos, p, n);
    }
    c->pos += n;
}

/* Integers little-endian whatever the host. */
static void u64(struct codec *c, uint64_t *v, const char *what)
{
    uint8_t b[8];
    if (!c->dec)
        for (int i = 0; i < 8; i++)
            b[i] = (uint8_t)(*v >> (8 * i));
    raw(c, b, 8, what);
    if (c->dec) {
        *v = 0;
        for (int i = 0; i < 8; i++)
            *v |= (uint64_t)b[i] << (8 * i);
    }
}

static void u32(struct codec *c, uint32_t *v, const char *what)
{
    uint64_t x = *v;
    if (c->dec) {
        u64(c, &x, what);
        if (!c->err && x > UINT32_MAX)
            bad(c, -EBADMSG, "%s out of range", what);
        *v = (uint32_t)x;
    } else {
        u64(c, &x, what);
    }
}

static void i32(struct codec *c, int32_t *v, const char *what)
{
    uint32_t x = (uint32_t)*v;
    u32(c, &x, what);
    *v = (int32_t)x;
}

static void u16(struct codec *c, uint16_t *v, const char *what)
{
    uint32_t x = *v;
    u32(c, &x, what);
    if (c->dec && !c->err && x > UINT16_MAX)
        bad(c, -EBADMSG, "%s out of range", what);
    *v = (uint16_t)x;
}

static void u8(struct codec *c, uint8_t *v, const char *what)
{
    uint32_t x = *v;
    u32(c, &x, what);
    if (c->dec && !c->err && x > UINT8_MAX)
        bad(c, -EBADMSG, "%s out of range", what);
    *v = (uint8_t)x;
}

static void flag(struct codec *c, bool *v, const char *what)
{
    uint32_t x = *v;
    u32(c, &x, what);
    if (c->dec && !c->err && x > 1)
        bad(c, -EBADMSG, "%s is not a boolean", what);
    *v = x == 1;
}

/* An fd: -1 (none) or 0..INT32_MAX, with its file's identity. */
static void fd(struct codec *c, struct br_state_fd *f, bool optional, const char *what)
{
    i32(c, &f->fd, what);
    u64(c, &f->dev, what);
    u64(c, &f->ino, what);
    if (c->dec && !c->err && (f->fd < -1 || (f->fd == -1 && !optional)))
        bad(c, -EBADMSG, "%s: fd %d is not valid", what, (int)f->fd);
}

/* A NUL-terminated string in a fixed field. */
static void str(struct codec *c, char *s, size_t cap, const char *what)
{
    uint32_t n = c->dec ? 0 : (uint32_t)strnlen(s, cap - 1);
    u32(c, &n, what);
    if (c->dec && !c->err && n >= cap) {
        bad(c, -EBADMSG, "%s: %u bytes, at most %zu", what, n, cap - 1);
        return;
    }
    raw(c, s, n, what);
    if (c->dec && !c->err) {
        s[n] = '\0';
        if (strlen(s) != n)
            bad(c, -EBADMSG, "%s has a NUL inside", what);
    }
}

/* A count read before an array: bounded before anything is allocated. */
static void count(struct codec *c, uint32_t *n, uint32_t max, const char *what)
{
    u32(c, n, what);
    if (!c->err && *n > max)
        bad(c, -EBADMSG, "%u %s, at most %u", *n, what, max);
}

static void *array(struct codec *c, void **p, size_t n, size_t each)
{
    if (c->dec && !c->err) {
        *p = n ? calloc(n, each) : NULL;
        if (n && !*p)
            bad(c, -ENOMEM, "out of memory");
    }
    return c->err ? NULL : *p;
}

static void sock(struct codec *c, struct br_state_sock *s, const char *what)
{
    fd(c, &s->fd, true, what);
    fd(c, &s->dir_fd, true, what);
    str(c, s->name, sizeof(s->name), what);
    u64(c, &s->file_dev, what);
    u64(c, &s->file_ino, what);
}

static void devfile(struct codec *c, struct br_state_devfile *d, const char *what)
{
    fd(c, &d->fd, false, what);
    i32(c, &d->owner_pid, what);
    u32(c, &d->owner_uid, what);
}

static void caps(struct codec *c, struct vu_caps *k, const char *what)
{
    u32(c, &k->present, what);
    u32(c, &k->max_msg_fds, what);
    u64(c, &k->max_data_xfer_size, what);
    u32(c, &k->max_dma_maps, what);
    u64(c, &k->pgsizes, what);
    flag(c, &k->twin_socket, what);
    flag(c, &k->write_multiple, what);
    flag(c, &k->has_migration, what);
    u64(c, &k->migration_pgsize, what);
    u64(c, &k->migration_max_bitmap_size, what);
}

static void session(struct codec *c, struct br_state_session *s)
{
    fd(c, &s->conn, false, "the client's socket");
    i32(c, &s->pid, "peer pid");
    u32(c, &s->uid, "peer uid");
    u32(c, &s->gid, "peer gid");
    flag(c, &s->negotiated, "negotiated");
    caps(c, &s->client_caps, "the client's capabilities");
    caps(c, &s->agreed, "the agreed capabilities");
    u32(c, &s->lim_max_msg_size, "max_msg_size");
    u32(c, &s->lim_max_fds, "max_fds");
    u64(c, &s->n_msgs, "messages");
    u64(c, &s->n_errors, "errors");
    uint64_t rx_len = s->rx_len;
    u64(c, &rx_len, "read-ahead bytes");
    if (c->dec && !c->err && rx_len > BR_STATE_MAX_RX)
        bad(c, -EBADMSG, "%llu read-ahead bytes, at most %zu", (unsigned long long)rx_len,
            BR_STATE_MAX_RX);
    s->rx_len = (size_t)rx_len;
    if (array(c, (void **)&s->rx, s->rx_len, 1) || !s->rx_len)
        raw(c, s->rx, s->rx_len, "read-ahead bytes");
    count(c, &s->rx_nfds, VU_MAX_FDS_PER_MSG, "read-ahead fds");
    for (uint32_t i = 0; i < s->rx_nfds && !c->err; i++)
        fd(c, &s->rx_fds[i], false, "a read-ahead fd");
    u32(c, &s->rx_fds_at, "read-ahead fds' message");
    flag(c, &s->has_devfile, "device file");
    if (s->has_devfile)
        devfile(c, &s->devfile, "the session's device file");
    u64(c, &s->dma_bytes, "DMA bytes");
    u64(c, &s->idle_clock, "idle clock");
    count(c, &s->nb, BR_STATE_MAX_BACKINGS, "DMA backings");
    if (array(c, (void **)&s->backings, s->nb, sizeof(*s->backings))) {
        for (uint32_t i = 0; i < s->nb && !c->err; i++) {
            struct br_state_backing *b = &s->backings[i];
            fd(c, &b->fd, false, "a DMA backing");
            u64(c, &b->len, "backing length");
            flag(c, &b->writable, "backing writable");
            flag(c, &b->idle, "backing idle");
            u32(c, &b->refs, "backing references");
            u64(c, &b->idle_seq, "backing idle sequence");
        }
    }
    count(c, &s->nm, BR_STATE_MAX_MAPS, "DMA maps");
    if (array(c, (void **)&s->maps, s->nm, sizeof(*s->maps))) {
        for (uint32_t i = 0; i < s->nm && !c->err; i++) {
            struct br_state_map *m = &s->maps[i];
            u64(c, &m->iova, "map iova");
            u64(c, &m->size, "map size");
            u64(c, &m->offset, "map offset");
            u32(c, &m->flags, "map flags");
            i32(c, &m->backing, "map backing");
            u64(c, &m->own_off, "map own offset");
            u64(c, &m->own_len, "map own length");
        }
    }
    count(c, &s->n_irq, BR_STATE_MAX_IRQ_INDEXES, "IRQ indexes");
    for (uint32_t i = 0; i < s->n_irq && !c->err; i++) {
        struct br_state_irq *q = &s->irq[i];
        count(c, &q->count, BR_STATE_MAX_IRQ_VECTORS, "IRQ vectors");
        u32(c, &q->flags, "IRQ flags");
        u32(c, &q->active, "IRQ active");
        flag(c, &q->used, "IRQ used");
        flag(c, &q->has_fds, "IRQ fds");
        if (q->has_fds && array(c, (void **)&q->fds, q->count, sizeof(*q->fds)))
            for (uint32_t k = 0; k < q->count && !c->err; k++)
                fd(c, &q->fds[k], true, "an IRQ eventfd");
    }
}

static void walk(struct codec *c, struct br_state *st)
{
    str(c, st->addr, sizeof(st->addr), "device address");
    fd(c, &st->container, false, "the VFIO container");
    fd(c, &st->group_fd, false, "the VFIO group");
    fd(c, &st->devfd, false, "the VFIO device");
    i32(c, &st->group, "group number");
    u16(c, &st->command0, "COMMAND at start");
    u32(c, &st->reserved_irqs, "reserved IRQs");
    fd(c, &st->req_fd, true, "the request eventfd");
    sock(c, &st->listen, "the listening socket");
    sock(c, &st->status, "the status socket");
    u32(c, &st->accepted, "accepted");
    u32(c, &st->refused, "refused");
    u32(c, &st->closed, "closed");
    u64(c, &st->lim.max_dma_bytes, "max_dma_bytes");
    u32(c, &st->lim.max_dma_maps, "max_dma_maps");
    u32(c, &st->lim.handshake_timeout_ms, "handshake timeout");
    u32(c, &st->lim.io_timeout_ms, "I/O timeout");
    flag(c, &st->lim.no_mmap, "no_mmap");
    flag(c, &st->lim.no_reset, "no_reset");
    u8(c, &st->lim.msix_mmap, "msix_mmap");
    u8(c, &st->lim.stale_holders, "stale_holders");
    count(c, &st->n_retired, BR_STATE_MAX_RETIRED, "retired device files");
    for (uint32_t i = 0; i < st->n_retired && !c->err; i++)
        devfile(c, &st->retired[i], "a retired device file");
    flag(c, &st->has_session, "session");
    if (st->has_session)
        session(c, &st->s);
    u64(c, &st->stopped_ns, "stop time");
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int br_state_encode(const struct br_state *st_in, uint8_t **out, size_t *len)
{
    struct br_state st = *st_in;   /* the walk takes non-const pointers */
    struct codec c = { .dec = false };
    uint8_t hdr[BR_STATE_HDR_SIZE] = { 0 };
    raw(&c, hdr, sizeof(hdr), "header");
    walk(&c, &st);
    if (!c.err && c.pos > BR_STATE_MAX_BYTES)
        c.err = -EINVAL;
    if (c.err) {
        free(c.buf);
        return c.err;
    }
    size_t body = c.pos - BR_STATE_HDR_SIZE;
    memcpy(c.buf, BR_STATE_MAGIC, 8);
    put_le(c.buf + 8, BR_STATE_VERSION, 4);
    put_le(c.buf + 16, body, 8);
    put_le(c.buf + 24, br_crc32(c.buf + BR_STATE_HDR_SIZE, body), 4);
    *out = c.buf;
    *len = c.pos;
    return 0;
}

static int fail(char *why, size_t whysz, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *why, size_t whysz, int err, const char *fmt, ...)
{
    if (why && whysz) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whysz, fmt, ap);
        va_end(ap);
    }
    return err;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* What the walk cannot check field by field. */
static int validate(const struct br_state *st, char *why, size_t whysz)
{
    char addr[HV_ADDR_LEN];
    if (hv_pci_addr_parse(st->addr, addr) < 0 || strcmp(addr, st->addr) != 0)
        return fail(why, whysz, -EBADMSG, "'%s' is not a canonical PCI address", st->addr);
    if (st->group < 0)
        return fail(why, whysz, -EBADMSG, "group %d", (int)st->group);
    if (st->listen.fd.fd < 0)
        return fail(why, whysz, -EBADMSG, "no listening socket");
    if (st->lim.max_dma_maps == 0 || st->lim.max_dma_maps > BR_STATE_MAX_MAPS)
        return fail(why, whysz, -EBADMSG, "max_dma_maps %u", st->lim.max_dma_maps);
    if (st->has_session) {
        const struct br_state_session *s = &st->s;
        if (s->rx_nfds && s->rx_fds_at >= s->rx_len)
            return fail(why, whysz, -EBADMSG, "read-ahead fds at byte %u of %zu",
                        s->rx_fds_at, s->rx_len);
        if (s->lim_max_fds > VU_MAX_FDS_PER_MSG || s->lim_max_msg_size < VU_HDR_SIZE)
            return fail(why, whysz, -EBADMSG, "connection limits %u fds, %u bytes",
                        s->lim_max_fds, s->lim_max_msg_size);
        if (s->nm > st->lim.max_dma_maps)
            return fail(why, whysz, -EBADMSG, "%u DMA maps over the limit %u", s->nm,
                        st->lim.max_dma_maps);
        uint32_t *refs = calloc(s->nb ? s->nb : 1, sizeof(*refs));
        if (!refs)
            return fail(why, whysz, -ENOMEM, "out of memory");
        uint64_t bytes = 0;
        int r = 0;
        for (uint32_t i = 0; i < s->nm && !r; i++) {
            const struct br_state_map *m = &s->maps[i];
            if (m->size == 0 || m->size - 1 > UINT64_MAX - m->iova ||
                (m->flags & ~(uint32_t)(VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE)))
                r = fail(why, whysz, -EBADMSG, "DMA map %u: bad range or flags", i);
            else if (i && s->maps[i - 1].iova + (s->maps[i - 1].size - 1) >= m->iova)
                r = fail(why, whysz, -EBADMSG, "DMA map %u: not after map %u", i, i - 1);
            else if (m->backing < -1 || m->backing >= (int32_t)s->nb)
                r = fail(why, whysz, -EBADMSG, "DMA map %u: backing %d of %u", i,
                         (int)m->backing, s->nb);
            else if (m->backing >= 0 && (m->offset > UINT64_MAX - m->size ||
                                         m->own_off > m->offset ||
                                         (m->own_len && m->own_len < m->size)))
                r = fail(why, whysz, -EBADMSG, "DMA map %u: bad offsets", i);
            else if (m->backing >= 0) {
                refs[m->backing]++;
                bytes += m->size;
            }
        }
        for (uint32_t i = 0; i < s->nb && !r; i++) {
            const struct br_state_backing *b = &s->backings[i];
            if (b->refs != refs[i] || b->idle != (refs[i] == 0))
                r = fail(why, whysz, -EBADMSG, "DMA backing %u: %u references, %u maps use "
                         "it", i, b->refs, refs[i]);
        }
        free(refs);
        if (r)
            return r;
        if (bytes != s->dma_bytes)
            return fail(why, whysz, -EBADMSG, "DMA bytes %llu, the maps add up to %llu",
                        (unsigned long long)s->dma_bytes, (unsigned long long)bytes);
        if (st->lim.max_dma_bytes && bytes > st->lim.max_dma_bytes)
            return fail(why, whysz, -EBADMSG, "%llu DMA bytes over the limit %llu",
                        (unsigned long long)bytes, (unsigned long long)st->lim.max_dma_bytes);
        for (uint32_t i = 0; i < s->n_irq; i++)
            if (s->irq[i].active > s->irq[i].count)
                return fail(why, whysz, -EBADMSG, "IRQ index %u: %u of %u vectors enabled", i,
                            s->irq[i].active, s->irq[i].count);
    }
    /* no fd twice: each is one open file with one owner */
    size_t n = br_state_fds(st, NULL, 0);
    int *all = malloc((n ? n : 1) * sizeof(int));
    const struct br_state_fd **fds = malloc((n ? n : 1) * sizeof(*fds));
    int r = 0;
    if (!all || !fds) {
        r = fail(why, whysz, -ENOMEM, "out of memory");
    } else {
        br_state_fds(st, fds, n);
        for (size_t i = 0; i < n; i++)
            all[i] = fds[i]->fd;
        qsort(all, n, sizeof(int), cmp_int);
        for (size_t i = 1; i < n && !r; i++)
            if (all[i] == all[i - 1])
                r = fail(why, whysz, -EBADMSG, "fd %d is named twice", all[i]);
    }
    free(all);
    free(fds);
    return r;
}

int br_state_decode(const uint8_t *buf, size_t len, struct br_state *st, char *why, size_t whysz)
{
    memset(st, 0, sizeof(*st));
    if (len < BR_STATE_HDR_SIZE)
        return fail(why, whysz, -EBADMSG, "%zu bytes, shorter than the %u-byte header", len,
                    BR_STATE_HDR_SIZE);
    if (memcmp(buf, BR_STATE_MAGIC, 8) != 0)
        return fail(why, whysz, -EBADMSG, "not a vfio-user-bridge state (no magic)");
    uint32_t version = (uint32_t)get_le(buf + 8, 4);
    if (version != BR_STATE_VERSION)
        return fail(why, whysz, -EPROTO, "state version %u, this program reads version %u",
                    version, BR_STATE_VERSION);
    if (len > BR_STATE_MAX_BYTES)
        return fail(why, whysz, -E2BIG, "%zu bytes, more than %u", len, BR_STATE_MAX_BYTES);
    uint64_t body = get_le(buf + 16, 8);
    if (get_le(buf + 12, 4) || get_le(buf + 28, 4) || body != len - BR_STATE_HDR_SIZE)
        return fail(why, whysz, -EBADMSG, "the header says %llu body bytes, %zu are there",
                    (unsigned long long)body, len - BR_STATE_HDR_SIZE);
    uint32_t crc = (uint32_t)get_le(buf + 24, 4);
    if (br_crc32(buf + BR_STATE_HDR_SIZE, (size_t)body) != crc)
        return fail(why, whysz, -EBADMSG, "checksum mismatch");
    struct codec c = { .dec = true, .buf = (uint8_t *)buf, .len = len,
                       .pos = BR_STATE_HDR_SIZE, .why = why, .whysz = whysz };
    walk(&c, st);
    if (!c.err && c.pos != len)
        bad(&c, -EBADMSG, "%zu bytes left over after the last field", len - c.pos);
    if (c.err)
        return c.err;
    return validate(st, why, whysz);
}

void br_state_free(struct br_state *st)
{
    free(st->s.rx);
    free(st->s.backings);
    free(st->s.maps);
    for (uint32_t i = 0; i < BR_STATE_MAX_IRQ_INDEXES; i++)
        free(st->s.irq[i].fds);
    memset(st, 0, sizeof(*st));
}

static void add(const struct br_state_fd *f, const struct br_state_fd **out, size_t max,
                size_t *n)
{
    if (f->fd < 0)
        return;
    if (*n < max)
        out[*n] = f;
    (*n)++;
}

size_t br_state_fds(const struct br_state *st, const struct br_state_fd **out, size_t max)
{
    size_t n = 0;
    add(&st->container, out, max, &n);
    add(&st->group_fd, out, max, &n);
    add(&st->devfd, out, max, &n);
    add(&st->req_fd, out, max, &n);
    add(&st->listen.fd, out, max, &n);
    add(&st->listen.dir_fd, out, max, &n);
    add(&st->status.fd, out, max, &n);
    add(&st->status.dir_fd, out, max, &n);
    for (uint32_t i = 0; i < st->n_retired; i++)
        add(&st->retired[i].fd, out, max, &n);
    if (!st->has_session)
        return n;
    const struct br_state_session *s = &st->s;
    add(&s->conn, out, max, &n);
    for (uint32_t i = 0; i < s->rx_nfds; i++)
        add(&s->rx_fds[i], out, max, &n);
    if (s->has_devfile)
        add(&s->devfile.fd, out, max, &n);
    for (uint32_t i = 0; i < s->nb; i++)
        add(&s->backings[i].fd, out, max, &n);
    for (uint32_t i = 0; i < s->n_irq; i++)
        if (s->irq[i].fds)
            for (uint32_t k = 0; k < s->irq[i].count; k++)
                add(&s->irq[i].fds[k], out, max, &n);
    return n;
}

size_t br_state_fds_mut(struct br_state *st, struct br_state_fd **out, size_t max)
{
    /* the entries point into st, which the caller may change */
    return br_state_fds(st, (const struct br_state_fd **)out, max);
}
