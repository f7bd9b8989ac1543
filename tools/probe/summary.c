/* SPDX-License-Identifier: MIT */
/* vfio-user-probe --summarize TRACE: a bridge trace (--trace) for a human
 * (probe.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "probe.h"

#define SUM_MAX_CMDS 32     /* command names kept apart; the rest are "other" */
#define SUM_LINE_MAX 65536  /* longer lines are counted as unreadable */
#define SUM_RX_RING 64      /* recent requests kept to show a failed one's fields */

struct cmd_stat {
    char name[40];
    uint64_t count, errors, injected;
    uint64_t *ns;           /* handling times */
    size_t n_ns, cap_ns;
    struct { char name[24]; uint64_t n; } by_errno[8];
    size_t n_errnos;
};

struct sum {
    struct cmd_stat cmds[SUM_MAX_CMDS + 1];
    size_t n_cmds;
    uint64_t lines, bad_lines, rx, tx, done, sessions, errors, injected;
    char header[256];
    char first_error[1024];
    char first_injected[512];
    char ends[512];
    struct { long long id; char text[512]; } ring[SUM_RX_RING];
    size_t ring_next;
};

static const char *js(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static bool ji(json_object *o, const char *key, long long *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v))
        return false;
    *out = (long long)json_object_get_int64(v);
    return true;
}

static struct cmd_stat *stat_of(struct sum *s, const char *name)
{
    for (size_t i = 0; i < s->n_cmds; i++)
        if (strcmp(s->cmds[i].name, name) == 0)
            return &s->cmds[i];
    if (s->n_cmds == SUM_MAX_CMDS)
        name = "(other)";
    for (size_t i = 0; i < s->n_cmds; i++)
        if (strcmp(s->cmds[i].name, name) == 0)
            return &s->cmds[i];
    struct cmd_stat *c = &s->cmds[s->n_cmds++];
    snprintf(c->name, sizeof(c->name), "%s", name);
    return c;
}

/* The request fields of a line: every key but the bookkeeping ones. */
static void fields(json_object *o, char *buf, size_t sz)
{
    static const char *const skip[] = { "t", "dir", "id", "cmd", "flags", "size", "fds",
                                        "handling_ns", "errno", "error", "injected", "rule" };
    size_t n = 0;
    buf[0] = '\0';
    json_object_object_foreach(o, key, val) {
        bool hide = false;
        for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
            hide |= strcmp(key, skip[i]) == 0;
        if (hide || n + 2 >= sz)
            continue;
        int w = snprintf(buf + n, sz - n, "%s%s=%s", n ? " " : "", key,
                         json_object_get_string(val));
        n = w < 0 || (size_t)w >= sz - n ? sz - 1 : n + (size_t)w;
    }
}

static void line(struct sum *s, json_object *o, uint64_t lineno)
{
    const char *dir = js(o, "dir"), *cmd = js(o, "cmd");
    char buf[512];
    if (js(o, "trace")) {
        snprintf(s->header, sizeof(s->header), "%s %s, device %s%s", js(o, "trace"),
                 js(o, "version") ? js(o, "version") : "?", js(o, "device") ? js(o, "device") : "?",
                 json_object_get_boolean(json_object_object_get(o, "data"))
                     ? ", with payload bytes" : "");
        return;
    }
    if (!dir)
        return;
    if (strcmp(dir, "session") == 0) {
        s->sessions++;
        return;
    }
    if (strcmp(dir, "end") == 0) {
        size_t n = strlen(s->ends);
        if (n + 80 < sizeof(s->ends))
            snprintf(s->ends + n, sizeof(s->ends) - n, "%s\"%s\"", n ? ", " : "",
                     js(o, "reason") ? js(o, "reason") : "?");
        return;
    }
    if (!cmd)
        return;
    long long id = -1;
    ji(o, "id", &id);
    if (strcmp(dir, "rx") == 0) {
        s->rx++;
        fields(o, buf, sizeof(buf));
        s->ring[s->ring_next].id = id;
        snprintf(s->ring[s->ring_next].text, sizeof(s->ring[0].text), "%s", buf);
        s->ring_next = (s->ring_next + 1) % SUM_RX_RING;
        return;
    }
    if (strcmp(dir, "tx") != 0 && strcmp(dir, "done") != 0)
        return;
    if (dir[0] == 't')
        s->tx++;
    else
        s->done++;
    struct cmd_stat *c = stat_of(s, cmd);
    c->count++;
    long long ns;
    if (ji(o, "handling_ns", &ns) && ns >= 0) {
        if (c->n_ns == c->cap_ns) {
            size_t cap = c->cap_ns ? 2 * c->cap_ns : 64;
            uint64_t *p = realloc(c->ns, cap * sizeof(*p));
            if (p) {
                c->ns = p;
                c->cap_ns = cap;
            }
        }
        if (c->n_ns < c->cap_ns)
            c->ns[c->n_ns++] = (uint64_t)ns;
    }
    const char *inj = js(o, "injected");
    if (inj) {
        c->injected++;
        s->injected++;
        if (!s->first_injected[0])
            snprintf(s->first_injected, sizeof(s->first_injected), "line %llu: %s (id %lld): %s",
                     (unsigned long long)lineno, cmd, id, inj);
    }
    const char *en = js(o, "errno");
    char num[24];
    long long eno;
    if (!en && ji(o, "errno_no", &eno)) {
        snprintf(num, sizeof(num), "%lld", eno);
        en = num;
    }
    if (!en)
        return;
    c->errors++;
    s->errors++;
    size_t k;
    for (k = 0; k < c->n_errnos; k++)
        if (strcmp(c->by_errno[k].name, en) == 0)
            break;
    if (k == c->n_errnos && k < sizeof(c->by_errno) / sizeof(c->by_errno[0]))
        snprintf(c->by_errno[c->n_errnos++].name, sizeof(c->by_errno[0].name), "%s", en);
    if (k < c->n_errnos)
        c->by_errno[k].n++;
    if (!s->first_error[0]) {
        const char *req = "";
        for (size_t i = 0; i < SUM_RX_RING; i++) {
            size_t j = (s->ring_next + SUM_RX_RING - 1 - i) % SUM_RX_RING;
            if (s->ring[j].id == id && s->ring[j].text[0]) {
                req = s->ring[j].text;
                break;
            }
        }
        const char *t = js(o, "t");
        snprintf(s->first_error, sizeof(s->first_error),
                 "line %llu, t=%s: %s (id %lld)%s%s -> %s%s%s%s%s", (unsigned long long)lineno,
                 t ? t : "?", cmd, id, req[0] ? " " : "", req, en,
                 js(o, "error") ? ": " : "", js(o, "error") ? js(o, "error") : "",
                 inj ? " [injected: " : "", inj ? inj : "");
        if (inj) {
            size_t n = strlen(s->first_error);
            if (n + 1 < sizeof(s->first_error))
                snprintf(s->first_error + n, sizeof(s->first_error) - n, "]");
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest value with at least p of the values at or below it. */
static uint64_t rank(const uint64_t *v, size_t n, double p)
{
    size_t k = (size_t)(p * (double)n + 0.999999999);
    if (k < 1)
        k = 1;
    return v[k > n ? n - 1 : k - 1];
}

int probe_summarize(FILE *in, const char *name, FILE *out)
{
    struct sum *s = calloc(1, sizeof(*s));
    char *buf = malloc(SUM_LINE_MAX);
    if (!s || !buf) {
        free(s);
        free(buf);
        return -ENOMEM;
    }
    while (fgets(buf, SUM_LINE_MAX, in)) {
        s->lines++;
        size_t len = strlen(buf);
        bool whole = len && buf[len - 1] == '\n';
        if (!whole && !feof(in)) {
            int ch;
            while ((ch = fgetc(in)) != EOF && ch != '\n')
                ;
            s->bad_lines++;
            continue;
        }
        json_object *o = json_tokener_parse(buf);
        if (!o || !json_object_is_type(o, json_type_object)) {
            s->bad_lines++;
            json_object_put(o);
            continue;
        }
        line(s, o, s->lines);
        json_object_put(o);
    }
    free(buf);

    fprintf(out, "%s: %s\n", name, s->header[0] ? s->header : "(no trace header line)");
    fprintf(out, "%llu sessions, %llu requests, %llu replies, %llu without reply, %llu errors, "
            "%llu injected faults\n", (unsigned long long)s->sessions,
            (unsigned long long)s->rx, (unsigned long long)s->tx, (unsigned long long)s->done,
            (unsigned long long)s->errors, (unsigned long long)s->injected);
    if (s->bad_lines)
        fprintf(out, "%llu unreadable lines skipped\n", (unsigned long long)s->bad_lines);
    fprintf(out, "\n%-26s %7s %7s %8s %11s %11s %11s\n", "command", "count", "errors",
            "injected", "median_us", "p99_us", "max_us");
    for (size_t i = 0; i < s->n_cmds; i++) {
        struct cmd_stat *c = &s->cmds[i];
        char med[24] = "-", p99[24] = "-", mx[24] = "-";
        if (c->n_ns) {
            qsort(c->ns, c->n_ns, sizeof(c->ns[0]), cmp_u64);
            snprintf(med, sizeof(med), "%.1f", rank(c->ns, c->n_ns, 0.5) / 1e3);
            snprintf(p99, sizeof(p99), "%.1f", rank(c->ns, c->n_ns, 0.99) / 1e3);
            snprintf(mx, sizeof(mx), "%.1f", c->ns[c->n_ns - 1] / 1e3);
        }
        fprintf(out, "%-26s %7llu %7llu %8llu %11s %11s %11s\n", c->name,
                (unsigned long long)c->count, (unsigned long long)c->errors,
                (unsigned long long)c->injected, med, p99, mx);
    }
    if (s->errors) {
        fprintf(out, "\nerrors by command:\n");
        for (size_t i = 0; i < s->n_cmds; i++) {
            struct cmd_stat *c = &s->cmds[i];
            if (!c->errors)
                continue;
            fprintf(out, "  %s:", c->name);
            for (size_t k = 0; k < c->n_errnos; k++)
                fprintf(out, "%s %s x%llu", k ? "," : "", c->by_errno[k].name,
                        (unsigned long long)c->by_errno[k].n);
            fprintf(out, "\n");
        }
        fprintf(out, "\nfirst error: %s\n", s->first_error);
    } else {
        fprintf(out, "\nno errors\n");
    }
    if (s->first_injected[0])
        fprintf(out, "first injected fault: %s\n", s->first_injected);
    if (s->ends[0])
        fprintf(out, "sessions ended: %s\n", s->ends);
    for (size_t i = 0; i < s->n_cmds; i++)
        free(s->cmds[i].ns);
    free(s);
    return 0;
}
