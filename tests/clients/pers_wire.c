/* SPDX-License-Identifier: MIT */
/* pers_wire.c - reporting, socket I/O and a small JSON reader for the
 * personalities. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "pers.h"

__attribute__((format(printf, 4, 0)))
static void vreport(struct p_ctx *c, const char *tag, const char *step, const char *fmt,
                    va_list ap)
{
    printf("%s %s#%u %s: ", tag, c->ops->name, c->round, step);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
}

void p_ok(struct p_ctx *c, const char *step, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(c, "ok  ", step, fmt, ap);
    va_end(ap);
}

void p_note(struct p_ctx *c, const char *step, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(c, "note", step, fmt, ap);
    va_end(ap);
}

char p_first_failure[512];

int p_fail(struct p_ctx *c, const char *step, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(c, "FAIL", step, fmt, ap);
    va_end(ap);
    if (!p_first_failure[0]) {
        int n = snprintf(p_first_failure, sizeof(p_first_failure), "%s: ", step);
        if (n > 0 && (size_t)n < sizeof(p_first_failure)) {
            va_start(ap, fmt);
            vsnprintf(p_first_failure + n, sizeof(p_first_failure) - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

/* ---- transport ---------------------------------------------------------------- */

static int send_all(struct p_ctx *c, const char *step, const uint8_t *buf, size_t len,
                    const int *fds, int nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * P_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    if (nfds > P_MAX_FDS)
        return p_fail(c, step, "internal: %d fds", nfds);
    size_t done = 0;
    while (done < len) {
        struct iovec iov = { .iov_base = (void *)(buf + done), .iov_len = len - done };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (done == 0 && nfds > 0) {
            memset(&ctl, 0, sizeof(ctl));
            mh.msg_control = ctl.buf;
            mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
            memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
        }
        ssize_t n = sendmsg(c->sock, &mh, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return p_fail(c, step, "send: %s (the server closed the connection?)",
                          strerror(errno));
        }
        done += (size_t)n;
    }
    return 0;
}

int p_send_raw(struct p_ctx *c, const char *step, const void *buf, size_t len, const int *fds,
               int nfds)
{
    return send_all(c, step, buf, len, fds, nfds);
}

int p_send(struct p_ctx *c, const char *step, uint16_t id, uint16_t cmd, const void *payload,
           uint32_t len, const int *fds, int nfds)
{
    uint8_t *buf = malloc(VU_HDR_SIZE + (size_t)len);
    if (!buf)
        return p_fail(c, step, "out of memory");
    struct vu_hdr h = { .msg_id = id, .cmd = cmd, .msg_size = VU_HDR_SIZE + len };
    memcpy(buf, &h, sizeof(h));
    if (len)
        memcpy(buf + VU_HDR_SIZE, payload, len);
    int r = send_all(c, step, buf, VU_HDR_SIZE + (size_t)len, fds, nfds);
    free(buf);
    return r;
}

static int wait_readable(struct p_ctx *c, const char *step)
{
    struct pollfd p = { .fd = c->sock, .events = POLLIN };
    for (;;) {
        int r = poll(&p, 1, P_REPLY_TIMEOUT_MS);
        if (r > 0)
            return 0;
        if (r == 0)
            return p_fail(c, step, "no reply within %d ms (the client would hang here)",
                          P_REPLY_TIMEOUT_MS);
        if (errno != EINTR)
            return p_fail(c, step, "poll: %s", strerror(errno));
    }
}

/* recvmsg up to len bytes; collects fds into m. Returns bytes or -1. */
static ssize_t recv_some(struct p_ctx *c, const char *step, uint8_t *buf, size_t len,
                         struct p_msg *m, bool header)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * P_MAX_FDS)];
        struct cmsghdr align;
    } ctl;
    if (wait_readable(c, step) < 0)
        return -1;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf) };
    ssize_t n;
    do
        n = recvmsg(c->sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return p_fail(c, step, "recv: %s", strerror(errno));
    if (n == 0)
        return p_fail(c, step, "the server closed the connection");
    if (mh.msg_flags & MSG_CTRUNC)
        m->ctrunc = true;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int got[P_MAX_FDS];
        memcpy(got, CMSG_DATA(cm), sizeof(int) * (size_t)k);
        for (int i = 0; i < k; i++) {
            int have = m->nfds + m->late_fds;
            if (have < P_MAX_FDS) {
                m->fds[have] = got[i];
                if (header)
                    m->nfds++;
                else
                    m->late_fds++;
            } else {
                close(got[i]);
                m->ctrunc = true;
            }
        }
    }
    return n;
}

int p_recv(struct p_ctx *c, const char *step, struct p_msg *m)
{
    memset(m, 0, sizeof(*m));
    uint8_t *h = (uint8_t *)&m->hdr;
    size_t got = 0;
    while (got < VU_HDR_SIZE) {
        ssize_t n = recv_some(c, step, h + got, VU_HDR_SIZE - got, m, got == 0);
        if (n < 0)
            goto fail;
        got += (size_t)n;
    }
    if (m->hdr.msg_size < VU_HDR_SIZE || m->hdr.msg_size > P_MAX_REPLY) {
        p_fail(c, step, "reply header says msg_size %u (cmd %u)", m->hdr.msg_size, m->hdr.cmd);
        goto fail;
    }
    m->len = m->hdr.msg_size - VU_HDR_SIZE;
    m->body = calloc(1, m->len + 1);
    if (!m->body) {
        p_fail(c, step, "out of memory");
        goto fail;
    }
    got = 0;
    while (got < m->len) {
        ssize_t n = recv_some(c, step, m->body + got, m->len - got, m, false);
        if (n < 0)
            goto fail;
        got += (size_t)n;
    }
    return 0;
fail:
    p_msg_free(m);
    return -1;
}

void p_msg_close_fds(struct p_msg *m)
{
    for (int i = 0; i < m->nfds + m->late_fds; i++)
        if (m->fds[i] >= 0)
            close(m->fds[i]);
    m->nfds = m->late_fds = 0;
}

void p_msg_free(struct p_msg *m)
{
    p_msg_close_fds(m);
    free(m->body);
    m->body = NULL;
    m->len = 0;
}

int p_check_reply(struct p_ctx *c, const char *step, const struct p_msg *m, uint16_t cmd,
                  int want_id)
{
    if ((m->hdr.flags & VU_F_TYPE_MASK) != VU_F_TYPE_REPLY)
        return p_fail(c, step, "got a message of type %u, not a reply", m->hdr.flags & 0xf);
    if (m->hdr.cmd != cmd)
        return p_fail(c, step, "reply is for command %u, expected %u", m->hdr.cmd, cmd);
    if (want_id >= 0 && m->hdr.msg_id != (uint16_t)want_id)
        return p_fail(c, step, "reply id %u, request id %d", m->hdr.msg_id, want_id);
    return 0;
}

/* ---- JSON ---------------------------------------------------------------------- */

struct jp {
    const char *s;
    struct p_json *out;
    char *why;
    size_t whysz;
    int depth;
};

static void ws(struct jp *p)
{
    while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
        p->s++;
}

static int jerr(struct jp *p, const char *what)
{
    snprintf(p->why, p->whysz, "%s at \"%.12s\"", what, p->s);
    return -1;
}

static int add_key(struct jp *p, const char *path, enum p_jtype t)
{
    if (p->out->n >= P_JSON_MAX_KEYS)
        return jerr(p, "too many keys");
    struct p_json *j = p->out;
    snprintf(j->k[j->n].path, sizeof(j->k[j->n].path), "%s", path);
    j->k[j->n].type = t;
    return j->n++;
}

static int parse_string(struct jp *p, char *buf, size_t bufsz)
{
    size_t n = 0;
    if (*p->s != '"')
        return jerr(p, "expected a string");
    p->s++;
    while (*p->s && *p->s != '"') {
        char ch = *p->s++;
        if ((unsigned char)ch < 0x20)
            return jerr(p, "control character in string");
        if (ch == '\\') {
            char e = *p->s;
            if (!e)
                return jerr(p, "unterminated string");
            p->s++;
            if (e == 'u') {
                for (int i = 0; i < 4; i++, p->s++)
                    if (!*p->s || !strchr("0123456789abcdefABCDEF", *p->s))
                        return jerr(p, "bad \\u escape");
                ch = '?';
            } else if (e && strchr("\"\\/bfnrt", e)) {
                ch = e;
            } else {
                return jerr(p, "bad escape");
            }
        }
        if (n + 1 < bufsz)
            buf[n++] = ch;
    }
    if (*p->s != '"')
        return jerr(p, "unterminated string");
    p->s++;
    buf[n] = '\0';
    return 0;
}

static int parse_value(struct jp *p, const char *path);

static int parse_object(struct jp *p, const char *path)
{
    p->s++;   /* { */
    ws(p);
    if (*p->s == '}') {
        p->s++;
        return 0;
    }
    for (;;) {
        char key[64], sub[96];
        ws(p);
        if (parse_string(p, key, sizeof(key)) < 0)
            return -1;
        ws(p);
        if (*p->s != ':')
            return jerr(p, "expected ':'");
        p->s++;
        snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
        if (parse_value(p, sub) < 0)
            return -1;
        ws(p);
        if (*p->s == ',') {
            p->s++;
            continue;
        }
        if (*p->s == '}') {
            p->s++;
            return 0;
        }
        return jerr(p, "expected ',' or '}'");
    }
}

static int parse_value(struct jp *p, const char *path)
{
    ws(p);
    if (++p->depth > 16)
        return jerr(p, "nested too deep");
    int r = 0, k;
    char tmp[256];
    if (*p->s == '{') {
        if ((k = add_key(p, path, P_J_OBJ)) < 0)
            return -1;
        r = parse_object(p, path);
    } else if (*p->s == '[') {
        if ((k = add_key(p, path, P_J_ARR)) < 0)
            return -1;
        p->s++;
        ws(p);
        if (*p->s == ']') {
            p->s++;
        } else {
            for (;;) {
                if (parse_value(p, "[]") < 0)
                    return -1;
                ws(p);
                if (*p->s == ',') {
                    p->s++;
                    continue;
                }
                if (*p->s == ']') {
                    p->s++;
                    break;
                }
                return jerr(p, "expected ',' or ']'");
            }
        }
    } else if (*p->s == '"') {
        if ((k = add_key(p, path, P_J_STR)) < 0)
            return -1;
        r = parse_string(p, tmp, sizeof(tmp));
    } else if (!strncmp(p->s, "true", 4) || !strncmp(p->s, "false", 5)) {
        if ((k = add_key(p, path, P_J_BOOL)) < 0)
            return -1;
        p->out->k[k].b = *p->s == 't';
        p->s += *p->s == 't' ? 4 : 5;
    } else if (!strncmp(p->s, "null", 4)) {
        if ((k = add_key(p, path, P_J_NULL)) < 0)
            return -1;
        p->s += 4;
    } else if (*p->s == '-' || (*p->s >= '0' && *p->s <= '9')) {
        if ((k = add_key(p, path, P_J_NUM)) < 0)
            return -1;
        const char *start = p->s;
        bool integer = true;
        if (*p->s == '-')
            p->s++;
        if (!(*p->s >= '0' && *p->s <= '9'))
            return jerr(p, "bad number");
        while ((*p->s >= '0' && *p->s <= '9') || (*p->s && strchr(".eE+-", *p->s))) {
            if (*p->s && strchr(".eE", *p->s))
                integer = false;
            p->s++;
        }
        char num[40];
        size_t nl = (size_t)(p->s - start);
        if (nl >= sizeof(num))
            return jerr(p, "number too long");
        memcpy(num, start, nl);
        num[nl] = '\0';
        p->out->k[k].num = strtod(num, NULL);
        if (integer && num[0] != '-') {
            errno = 0;
            unsigned long long v = strtoull(num, NULL, 10);
            p->out->k[k].is_uint = errno == 0;
            p->out->k[k].u = v;
        }
    } else {
        return jerr(p, "unexpected character");
    }
    p->depth--;
    return r;
}

int p_json_parse(const char *text, struct p_json *out, char *why, size_t whysz)
{
    memset(out, 0, sizeof(*out));
    struct jp p = { .s = text, .out = out, .why = why, .whysz = whysz };
    ws(&p);
    if (*p.s != '{')
        return jerr(&p, "top level is not an object");
    if (parse_value(&p, "") < 0)
        return -1;
    ws(&p);
    if (*p.s)
        return jerr(&p, "trailing bytes");
    return 0;
}

const void *p_json_get(const struct p_json *j, const char *path, enum p_jtype *type,
                       uint64_t *u, bool *is_uint, bool *b)
{
    for (int i = 0; i < j->n; i++) {
        if (strcmp(j->k[i].path, path))
            continue;
        if (type)
            *type = j->k[i].type;
        if (u)
            *u = j->k[i].u;
        if (is_uint)
            *is_uint = j->k[i].is_uint;
        if (b)
            *b = j->k[i].b;
        return &j->k[i];
    }
    if (type)
        *type = P_J_NONE;
    return NULL;
}

int p_json_children(const struct p_json *j, const char *path)
{
    int n = 0;
    size_t pl = strlen(path);
    for (int i = 0; i < j->n; i++) {
        const char *k = j->k[i].path;
        if (pl) {
            if (strncmp(k, path, pl) || k[pl] != '.')
                continue;
            k += pl + 1;
        } else if (!*k) {
            continue;
        }
        if (!strchr(k, '.'))
            n++;
    }
    return n;
}

int p_pack_write(struct p_ctx *c, uint8_t *b, uint32_t region, uint64_t off, const void *buf,
                 uint32_t len)
{
    if (len > P_WRITE_BODY - sizeof(struct vu_region_access))
        return p_fail(c, "region_write", "internal: %u bytes", len);
    struct vu_region_access a = { .offset = off, .region = region, .count = len };
    memcpy(b, &a, sizeof(a));
    memcpy(b + sizeof(a), buf, len);
    return 0;
}

struct vu_dma_map p_dma_map_rw(uint64_t fd_off, uint64_t iova, uint64_t size)
{
    return (struct vu_dma_map){ .argsz = sizeof(struct vu_dma_map),
                                .flags = VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE,
                                .offset = fd_off, .address = iova, .size = size };
}
