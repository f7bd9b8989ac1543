/* SPDX-License-Identifier: MIT */
/* Fault injection rules: parser, matcher, deterministic choice (inject.h). */
#include "inject.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- errno names ------------------------------------------------------------ */

const char *br_errno_name(int n)
{
    if (n <= 0 || n > 4095)
        return NULL;
    return strerrorname_np(n);
}

int br_errno_parse(const char *s, int *out)
{
    if (!s || !*s)
        return -EINVAL;
    if (isdigit((unsigned char)*s)) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || *end || v == 0 || v > 4095)
            return -EINVAL;
        *out = (int)v;
        return 0;
    }
    for (int i = 1; i < 4096; i++) {
        const char *name = strerrorname_np(i);
        if (name && strcasecmp(name, s) == 0) {
            *out = i;
            return 0;
        }
    }
    return -EINVAL;
}

/* ---- parsing ------------------------------------------------------------------ */

struct cur {
    const char *p;
    const char *rule;
    struct vub_err *err;
};

/* A token of [A-Za-z0-9_.] at c->p into buf; returns its length (0 = none). */
static size_t token(struct cur *c, char *buf, size_t sz)
{
    size_t n = 0;
    while (isalnum((unsigned char)c->p[n]) || c->p[n] == '_' || c->p[n] == '.')
        n++;
    if (n >= sz)
        n = sz - 1;   /* cut: the value is then refused as a whole below */
    memcpy(buf, c->p, n);
    buf[n] = '\0';
    c->p += n;
    return n;
}

static int bad(struct cur *c, const char *what)
{
    return vub_fail(c->err, -EINVAL, "--inject %s: %s", c->rule, what);
}

static int u64_of(const char *s, uint64_t *out)
{
    char *end;
    if (!*s || *s == '-' || *s == '+')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

static int cmd_of(const char *s)
{
    if (strcasecmp(s, "ANY") == 0)
        return -1;
    uint64_t v;
    if (u64_of(s, &v) == 0)
        return v >= 1 && v <= VU_CMD_MAX && strcmp(vu_cmd_name((unsigned)v), "UNKNOWN") != 0
                   ? (int)v : -2;
    for (unsigned i = 1; i <= VU_CMD_MAX; i++) {
        const char *name = vu_cmd_name(i);
        if (strcmp(name, "UNKNOWN") == 0)
            continue;
        if (strcasecmp(name, s) == 0 ||
            (strncmp(name, "DEVICE_", 7) == 0 && strcasecmp(name + 7, s) == 0))
            return (int)i;
    }
    return -2;
}

static bool cond_applies(unsigned cond, int cmd)
{
    switch (cond) {
    case BR_INJ_COND_REGION:
        return cmd == VU_CMD_DEVICE_GET_REGION_INFO || cmd == VU_CMD_DEVICE_GET_REGION_IO_FDS ||
               cmd == VU_CMD_REGION_READ || cmd == VU_CMD_REGION_WRITE ||
               cmd == VU_CMD_REGION_WRITE_MULTI;
    case BR_INJ_COND_INDEX:
        return cmd == VU_CMD_DEVICE_GET_IRQ_INFO || cmd == VU_CMD_DEVICE_SET_IRQS;
    case BR_INJ_COND_IOVA:
        return cmd == VU_CMD_DMA_MAP || cmd == VU_CMD_DMA_UNMAP;
    case BR_INJ_COND_OFFSET:
        return cmd == VU_CMD_REGION_READ || cmd == VU_CMD_REGION_WRITE ||
               cmd == VU_CMD_REGION_WRITE_MULTI;
    }
    return false;
}

static int parse_conds(struct cur *c, struct br_inject_rule *r)
{
    static const struct { const char *key; unsigned bit; const char *applies; } keys[] = {
        { "region", BR_INJ_COND_REGION, "DEVICE_GET_REGION_INFO, DEVICE_GET_REGION_IO_FDS, "
                                        "REGION_READ, REGION_WRITE and REGION_WRITE_MULTI" },
        { "index", BR_INJ_COND_INDEX, "DEVICE_GET_IRQ_INFO and DEVICE_SET_IRQS" },
        { "iova", BR_INJ_COND_IOVA, "DMA_MAP and DMA_UNMAP" },
        { "offset", BR_INJ_COND_OFFSET, "REGION_READ, REGION_WRITE and REGION_WRITE_MULTI" },
    };
    for (;;) {
        char key[16], val[32], msg[160];
        if (!token(c, key, sizeof(key)) || *c->p != '=')
            return bad(c, "a condition is KEY=VALUE (region=N, index=N, iova=X, offset=X)");
        c->p++;
        if (!token(c, val, sizeof(val)))
            return bad(c, "a condition needs a value");
        size_t k;
        for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            if (strcmp(key, keys[k].key) == 0)
                break;
        if (k == sizeof(keys) / sizeof(keys[0])) {
            snprintf(msg, sizeof(msg), "unknown condition \"%s\" (region, index, iova, offset)",
                     key);
            return bad(c, msg);
        }
        if (r->cmd < 0 || !cond_applies(keys[k].bit, r->cmd)) {
            snprintf(msg, sizeof(msg), "%s= applies to %s only", key, keys[k].applies);
            return bad(c, msg);
        }
        if (r->conds & keys[k].bit) {
            snprintf(msg, sizeof(msg), "%s= given twice", key);
            return bad(c, msg);
        }
        uint64_t v;
        bool is32 = keys[k].bit == BR_INJ_COND_REGION || keys[k].bit == BR_INJ_COND_INDEX;
        if (u64_of(val, &v) < 0 || (is32 && v > UINT32_MAX)) {
            snprintf(msg, sizeof(msg), "%s=%s is not a number%s", key, val,
                     is32 ? " (0..4294967295)" : " (decimal or 0x hex)");
            return bad(c, msg);
        }
        r->conds |= keys[k].bit;
        switch (keys[k].bit) {
        case BR_INJ_COND_REGION: r->region = (uint32_t)v; break;
        case BR_INJ_COND_INDEX: r->index = (uint32_t)v; break;
        case BR_INJ_COND_IOVA: r->iova = v; break;
        case BR_INJ_COND_OFFSET: r->offset = v; break;
        }
        if (*c->p != ',')
            return 0;
        c->p++;
    }
}

static int parse_when(struct cur *c, struct br_inject_rule *r)
{
    char key[16], val[32];
    if (!token(c, key, sizeof(key)) || *c->p != '=')
        return bad(c, "after '@': nth=N, every=K or prob=P[,seed=S]");
    c->p++;
    if (!token(c, val, sizeof(val)))
        return bad(c, "after '@': a value is missing");
    if (strcmp(key, "nth") == 0 || strcmp(key, "every") == 0) {
        bool nth = key[0] == 'n';
        if (u64_of(val, &r->n) < 0 || r->n == 0)
            return bad(c, nth ? "nth=N wants N >= 1 (the first match is 1)"
                              : "every=K wants K >= 1");
        r->when = nth ? BR_INJ_NTH : BR_INJ_EVERY;
        return 0;
    }
    if (strcmp(key, "prob") != 0)
        return bad(c, "after '@': nth=N, every=K or prob=P[,seed=S]");
    char *end;
    errno = 0;
    double p = strtod(val, &end);
    if (errno || *end || !(p > 0.0 && p <= 1.0))
        return bad(c, "prob=P wants 0 < P <= 1 (e.g. prob=0.1)");
    r->when = BR_INJ_PROB;
    r->prob = p;
    r->seed = 1;
    if (*c->p == ',') {
        c->p++;
        if (!token(c, key, sizeof(key)) || strcmp(key, "seed") != 0 || *c->p != '=')
            return bad(c, "after prob=P only ,seed=S may follow");
        c->p++;
        if (!token(c, val, sizeof(val)) || u64_of(val, &r->seed) < 0)
            return bad(c, "seed=S wants a number");
    }
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)tolower((unsigned char)ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static int parse_action(struct cur *c, struct br_inject_rule *r)
{
    const char *a = c->p;
    char msg[160];
    if (strcmp(a, "drop") == 0) {
        r->action = BR_INJ_DROP;
        return 0;
    }
    if (strcmp(a, "close") == 0) {
        r->action = BR_INJ_CLOSE;
        return 0;
    }
    if (strncmp(a, "errno=", 6) == 0) {
        if (br_errno_parse(a + 6, &r->errnum) < 0) {
            snprintf(msg, sizeof(msg), "errno=%.40s: not an errno name (EIO, EINVAL, ENODEV, "
                     "...) or a number 1..4095", a + 6);
            return bad(c, msg);
        }
        r->action = BR_INJ_ERRNO;
        return 0;
    }
    if (strncmp(a, "delay=", 6) == 0) {
        uint64_t v;
        if (u64_of(a + 6, &v) < 0 || v == 0 || v > BR_INJECT_MAX_DELAY_MS) {
            snprintf(msg, sizeof(msg), "delay=MS wants milliseconds 1..%u", BR_INJECT_MAX_DELAY_MS);
            return bad(c, msg);
        }
        r->action = BR_INJ_DELAY;
        r->delay_ms = (uint32_t)v;
        return 0;
    }
    if (strncmp(a, "data=", 5) == 0) {
        const char *h = a + 5;
        if (h[0] == '0' && (h[1] == 'x' || h[1] == 'X'))
            h += 2;
        size_t len = strlen(h);
        if (r->cmd != VU_CMD_REGION_READ)
            return bad(c, "data= applies to REGION_READ only");
        if (len == 0 || len % 2 || len / 2 > BR_INJECT_MAX_DATA) {
            snprintf(msg, sizeof(msg), "data=HEX wants 1..%u bytes as an even number of hex "
                     "digits", BR_INJECT_MAX_DATA);
            return bad(c, msg);
        }
        for (size_t i = 0; i < len; i += 2) {
            int hi = hexval(h[i]), lo = hexval(h[i + 1]);
            if (hi < 0 || lo < 0)
                return bad(c, "data=HEX: not a hex digit");
            r->data[i / 2] = (uint8_t)(hi << 4 | lo);
        }
        r->data_len = len / 2;
        r->action = BR_INJ_DATA;
        return 0;
    }
    snprintf(msg, sizeof(msg), "unknown action \"%.40s\" (errno=NAME, delay=MS, drop, close, "
             "data=HEX)", a);
    return bad(c, msg);
}

int br_inject_parse(const char *text, struct br_inject_rule *out, struct vub_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!text || !*text)
        return vub_fail(err, -EINVAL, "--inject: empty rule");
    if (strlen(text) >= sizeof(out->text))
        return vub_fail(err, -EINVAL, "--inject: a rule is at most %zu characters",
                       sizeof(out->text) - 1);
    snprintf(out->text, sizeof(out->text), "%s", text);
    struct cur c = { .p = text, .rule = out->text, .err = err };
    char name[40];
    if (!token(&c, name, sizeof(name)))
        return bad(&c, "starts with a command name (REGION_READ, DMA_MAP, ..., or ANY)");
    out->cmd = cmd_of(name);
    if (out->cmd == -2) {
        char msg[96];
        snprintf(msg, sizeof(msg), "unknown command \"%s\"", name);
        return bad(&c, msg);
    }
    int r;
    if (*c.p == ':') {
        c.p++;
        if ((r = parse_conds(&c, out)) < 0)
            return r;
    }
    if (*c.p == '@') {
        c.p++;
        if ((r = parse_when(&c, out)) < 0)
            return r;
    }
    if (*c.p != '=')
        return bad(&c, "expected '=ACTION' (errno=NAME, delay=MS, drop, close, data=HEX)");
    c.p++;
    return parse_action(&c, out);
}

int br_inject_init(struct br_inject *inj, const char *const *texts, size_t n, struct vub_err *err)
{
    memset(inj, 0, sizeof(*inj));
    if (n > BR_INJECT_MAX_RULES)
        return vub_fail(err, -E2BIG, "--inject: at most %u rules", BR_INJECT_MAX_RULES);
    for (size_t i = 0; i < n; i++) {
        int r = br_inject_parse(texts[i], &inj->rules[i], err);
        if (r < 0)
            return r;
        inj->rng[i] = inj->rules[i].seed;
    }
    inj->n = n;
    return 0;
}

/* ---- matching ----------------------------------------------------------------- */

static bool in_range(uint64_t x, uint64_t start, uint64_t len)
{
    return len && x >= start && x - start < len;
}

bool br_inject_matches(const struct br_inject_rule *rule, const struct vu_msg *m)
{
    if ((m->hdr.flags & VU_F_TYPE_MASK) != VU_F_TYPE_CMD)
        return false;
    if (rule->cmd < 0)
        return true;
    if (m->hdr.cmd != (unsigned)rule->cmd)
        return false;
    if (!rule->conds)
        return true;
    unsigned ok = 0;
    switch (m->hdr.cmd) {
    case VU_CMD_DEVICE_GET_REGION_INFO: {
        struct vu_region_info q;
        if (vu_decode_region_info(m, &q, NULL) == 0 && q.index == rule->region)
            ok |= BR_INJ_COND_REGION;
        break;
    }
    case VU_CMD_DEVICE_GET_REGION_IO_FDS: {
        struct vu_region_io_fds_request q;
        if (vu_decode_region_io_fds(m, &q, NULL) == 0 && q.index == rule->region)
            ok |= BR_INJ_COND_REGION;
        break;
    }
    case VU_CMD_DEVICE_GET_IRQ_INFO: {
        struct vu_irq_info q;
        if (vu_decode_irq_info(m, &q, NULL) == 0 && q.index == rule->index)
            ok |= BR_INJ_COND_INDEX;
        break;
    }
    case VU_CMD_DEVICE_SET_IRQS: {
        struct vu_irq_set_req q;
        if (vu_decode_set_irqs(m, &q, NULL) == 0 && q.set.index == rule->index)
            ok |= BR_INJ_COND_INDEX;
        break;
    }
    case VU_CMD_DMA_MAP: {
        struct vu_dma_map q;
        if (vu_decode_dma_map(m, &q, NULL) == 0 && in_range(rule->iova, q.address, q.size))
            ok |= BR_INJ_COND_IOVA;
        break;
    }
    case VU_CMD_DMA_UNMAP: {
        struct vu_dma_unmap q;
        if (vu_decode_dma_unmap(m, &q, NULL) == 0 &&
            ((q.flags & VU_DMA_UNMAP_FLAG_ALL) || in_range(rule->iova, q.address, q.size)))
            ok |= BR_INJ_COND_IOVA;
        break;
    }
    case VU_CMD_REGION_READ:
    case VU_CMD_REGION_WRITE: {
        struct vu_region_access_req q;
        int r = m->hdr.cmd == VU_CMD_REGION_READ
                    ? vu_decode_region_read(m, VU_MAX_DATA_XFER, &q, NULL)
                    : vu_decode_region_write(m, VU_MAX_DATA_XFER, &q, NULL);
        if (r == 0) {
            if (q.acc.region == rule->region)
                ok |= BR_INJ_COND_REGION;
            if (in_range(rule->offset, q.acc.offset, q.acc.count))
                ok |= BR_INJ_COND_OFFSET;
        }
        break;
    }
    case VU_CMD_REGION_WRITE_MULTI: {
        struct vu_write_multi_req q;
        if (vu_decode_write_multi(m, &q, NULL) < 0)
            break;
        /* one entry must satisfy every condition given */
        for (uint64_t i = 0; i < q.wr_cnt; i++) {
            struct vu_write_multi_entry e;
            memcpy(&e, &q.wrs[i], sizeof(e));
            unsigned got = 0;
            if (e.region == rule->region)
                got |= BR_INJ_COND_REGION;
            if (in_range(rule->offset, e.offset, e.count))
                got |= BR_INJ_COND_OFFSET;
            if ((got & rule->conds) == rule->conds) {
                ok = got;
                break;
            }
        }
        break;
    }
    default:
        break;
    }
    return (ok & rule->conds) == rule->conds;
}

/* splitmix64: small, fast and the same everywhere. */
static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int br_inject_pick(struct br_inject *inj, const struct vu_msg *m)
{
    int pick = -1;
    for (size_t i = 0; i < inj->n; i++) {
        const struct br_inject_rule *r = &inj->rules[i];
        if (!br_inject_matches(r, m))
            continue;
        uint64_t k = ++inj->matched[i];
        bool fire;
        switch (r->when) {
        case BR_INJ_NTH: fire = k == r->n; break;
        case BR_INJ_EVERY: fire = k % r->n == 0; break;
        case BR_INJ_PROB:
            fire = (double)(next_u64(&inj->rng[i]) >> 11) * 0x1.0p-53 < r->prob;
            break;
        default: fire = true; break;
        }
        if (fire && pick < 0) {
            pick = (int)i;
            inj->fired[i]++;
        }
    }
    return pick;
}

void br_inject_action_str(const struct br_inject_rule *r, char *buf, size_t sz)
{
    const char *name;
    switch (r->action) {
    case BR_INJ_ERRNO:
        name = br_errno_name(r->errnum);
        if (name)
            snprintf(buf, sz, "errno=%s", name);
        else
            snprintf(buf, sz, "errno=%d", r->errnum);
        return;
    case BR_INJ_DELAY: snprintf(buf, sz, "delay=%u", r->delay_ms); return;
    case BR_INJ_DROP: snprintf(buf, sz, "drop"); return;
    case BR_INJ_CLOSE: snprintf(buf, sz, "close"); return;
    case BR_INJ_DATA: {
        size_t n = snprintf(buf, sz, "data=");
        for (size_t i = 0; i < r->data_len && n + 3 <= sz; i++)
            n += (size_t)snprintf(buf + n, sz - n, "%02x", r->data[i]);
        return;
    }
    }
    snprintf(buf, sz, "?");
}
