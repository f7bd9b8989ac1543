/* SPDX-License-Identifier: MIT */
/* policy.c - load, validate and apply the export policy (see policy.h). */
#include "policy.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "hv.h"
#include "inject.h"

#define ADDR_TOKEN "{address}"
#define PATH_BUF 96

/* Parsing context: the file name for messages. */
struct ctx {
    const char *file;
    struct vub_err *err;
};

/* The reason, prefixed with the file and the JSON path (if any), and the
 * negative errno errnum. */
__attribute__((format(printf, 4, 5)))
static int fail_at(struct ctx *c, const char *path, int errnum, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (path && path[0])
        return vub_fail(c->err, errnum, "%s: %s: %s", c->file, path, what);
    return vub_fail(c->err, errnum, "%s: %s", c->file, what);
}

/* parent.key into out (cut short if it does not fit: it is only a message). */
static void subpath(char *out, size_t sz, const char *parent, const char *key)
{
    int n = parent[0] ? snprintf(out, sz, "%s.%s", parent, key) : snprintf(out, sz, "%s", key);
    if (n < 0)
        out[0] = '\0';
}

static const char *type_name(const struct json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_double: return "a number with a fraction";
    case json_type_int: return "a number";
    case json_type_object: return "an object";
    case json_type_array: return "an array";
    case json_type_string: return "a string";
    }
    return "something else";
}

/* ---- addresses, ids, classes ----------------------------------------------- */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Exactly n hex digits at s into *v. */
static bool hexn(const char *s, size_t n, unsigned *v)
{
    unsigned x = 0;
    for (size_t i = 0; i < n; i++) {
        int h = hexval((unsigned char)s[i]);
        if (h < 0)
            return false;
        x = x << 4 | (unsigned)h;
    }
    *v = x;
    return true;
}

/* "8086:1234", "8086:*" */
static bool parse_id(const char *s, int32_t *vendor, int32_t *device)
{
    unsigned v, d;
    if (strlen(s) < 6 || !hexn(s, 4, &v) || s[4] != ':')
        return false;
    if (strcmp(s + 5, "*") == 0) {
        *vendor = (int32_t)v;
        *device = -1;
        return true;
    }
    if (strlen(s + 5) != 4 || !hexn(s + 5, 4, &d))
        return false;
    *vendor = (int32_t)v;
    *device = (int32_t)d;
    return true;
}

/* "01", "0108", "010802", each optionally with "0x" */
static bool parse_class(const char *s, uint32_t *code, uint32_t *mask)
{
    unsigned v;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    size_t n = strlen(s);
    if ((n != 2 && n != 4 && n != 6) || !hexn(s, n, &v))
        return false;
    *code = v << (4 * (6 - n));
    *mask = (0xffffffu << (4 * (6 - n))) & 0xffffffu;
    return true;
}

/* ---- users and groups -------------------------------------------------------- */

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* A JSON number or a digit string as an id below 2^32-1 (-1 is "no id"). */
static int id_number(struct ctx *c, const char *path, struct json_object *v, uint32_t *out,
                     bool *is_number)
{
    int64_t n;
    *is_number = false;
    if (json_object_is_type(v, json_type_int)) {
        n = json_object_get_int64(v);
    } else if (json_object_is_type(v, json_type_string) &&
               all_digits(json_object_get_string(v))) {
        const char *s = json_object_get_string(v);
        if (strlen(s) > 10)
            return fail_at(c, path, -EINVAL, "id %s is out of range", s);
        n = strtoll(s, NULL, 10);
    } else {
        return 0;
    }
    if (n < 0 || n >= (int64_t)UINT32_MAX)
        return fail_at(c, path, -EINVAL, "id %lld is out of range (0-4294967294)", (long long)n);
    *out = (uint32_t)n;
    *is_number = true;
    return 0;
}

/* The negative errno for a name getpwnam_r/getgrnam_r did not find (e is
 * what it returned). A name that is not there is a mistake in the policy:
 * -EINVAL, as for any other wrong value, never -ENOENT, which callers read as
 * "the policy file is not there". 0, ENOENT, ESRCH, EBADF and EPERM all mean "not found"
 * (getpwnam_r(3)); anything else is the lookup failing. */
static int lookup_errno(int e)
{
    if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM)
        return -EINVAL;
    return -e;
}

static int resolve_user(struct ctx *c, const char *path, struct json_object *v, uid_t *uid,
                        gid_t *gid, bool *has_gid, char *name, size_t namesz)
{
    uint32_t n;
    bool num;
    int r = id_number(c, path, v, &n, &num);
    if (r < 0)
        return r;
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (num) {
        *uid = (uid_t)n;
        getpwuid_r(*uid, &pw, buf, sizeof(buf), &res);
        if (name)
            snprintf(name, namesz, "%s", res ? res->pw_name : json_object_get_string(v));
    } else {
        if (!json_object_is_type(v, json_type_string))
            return fail_at(c, path, -EINVAL, "must be a user name or a uid, not %s", type_name(v));
        const char *s = json_object_get_string(v);
        if (!*s)
            return fail_at(c, path, -EINVAL, "empty user name");
        int e = getpwnam_r(s, &pw, buf, sizeof(buf), &res);
        if (!res)
            return fail_at(c, path, lookup_errno(e), "no such user \"%s\"%s%s", s,
                           e ? ": " : "", e ? strerror(e) : "");
        *uid = res->pw_uid;
        if (name)
            snprintf(name, namesz, "%s", s);
    }
    if (has_gid) {
        *has_gid = res != NULL;
        if (res)
            *gid = res->pw_gid;
    }
    return 0;
}

static int resolve_group(struct ctx *c, const char *path, struct json_object *v, gid_t *gid)
{
    uint32_t n;
    bool num;
    int r = id_number(c, path, v, &n, &num);
    if (r < 0)
        return r;
    if (num) {
        *gid = (gid_t)n;
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return fail_at(c, path, -EINVAL, "must be a group name or a gid, not %s", type_name(v));
    const char *s = json_object_get_string(v);
    if (!*s)
        return fail_at(c, path, -EINVAL, "empty group name");
    struct group gr, *res = NULL;
    char buf[8192];
    int e = getgrnam_r(s, &gr, buf, sizeof(buf), &res);
    if (!res)
        return fail_at(c, path, lookup_errno(e), "no such group \"%s\"%s%s", s,
                       e ? ": " : "", e ? strerror(e) : "");
    *gid = res->gr_gid;
    return 0;
}

/* ---- typed values ------------------------------------------------------------- */

static int get_bool(struct ctx *c, const char *path, struct json_object *v, bool *out)
{
    if (!json_object_is_type(v, json_type_boolean))
        return fail_at(c, path, -EINVAL, "must be true or false, not %s", type_name(v));
    *out = json_object_get_boolean(v);
    return 0;
}

/* A byte count: a positive integer, or a string with a K/M/G/T (binary)
 * suffix such as "64G". */
static int get_size(struct ctx *c, const char *path, struct json_object *v, uint64_t *out)
{
    if (json_object_is_type(v, json_type_int)) {
        int64_t n = json_object_get_int64(v);
        if (n <= 0)
            return fail_at(c, path, -EINVAL, "must be a positive number of bytes");
        *out = (uint64_t)n;
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return fail_at(c, path, -EINVAL, "must be a size such as \"64G\" or a number of bytes, "
                                        "not %s", type_name(v));
    const char *s = json_object_get_string(v);
    char *end;
    errno = 0;
    unsigned long long n = (*s >= '0' && *s <= '9') ? strtoull(s, &end, 10) : 0;
    if (!n || errno)
        goto bad;
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'K': case 'k': shift = 10; end++; break;
    case 'M': case 'm': shift = 20; end++; break;
    case 'G': case 'g': shift = 30; end++; break;
    case 'T': case 't': shift = 40; end++; break;
    default: goto bad;
    }
    if (*end || (shift && n > (UINT64_MAX >> shift)))
        goto bad;
    *out = (uint64_t)n << shift;
    return 0;
bad:
    return fail_at(c, path, -EINVAL, "\"%s\" is not a size such as \"64G\"", s);
}

static int get_string(struct ctx *c, const char *path, struct json_object *v, const char **out)
{
    if (!json_object_is_type(v, json_type_string))
        return fail_at(c, path, -EINVAL, "must be a string, not %s", type_name(v));
    *out = json_object_get_string(v);
    return 0;
}

static int get_mode(struct ctx *c, const char *path, struct json_object *v, mode_t *out)
{
    if (!json_object_is_type(v, json_type_string))
        return fail_at(c, path, -EINVAL, "must be an octal string such as \"0660\", not %s",
                       type_name(v));
    const char *s = json_object_get_string(v);
    size_t n = strlen(s);
    unsigned m = 0;
    if (n < 3 || n > 4)
        goto bad;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '7')
            goto bad;
        m = m * 8 + (unsigned)(s[i] - '0');
    }
    if (m > 0777)
        return fail_at(c, path, -EINVAL, "\"%s\": setuid, setgid and sticky bits are not allowed",
                       s);
    if (!(m & 0200))
        return fail_at(c, path, -EINVAL,
                       "\"%s\": the owner needs write permission to connect to a socket", s);
    *out = (mode_t)m;
    return 0;
bad:
    return fail_at(c, path, -EINVAL, "\"%s\" is not an octal mode (\"0000\" to \"0777\")", s);
}

static int get_socket(struct ctx *c, const char *path, struct json_object *v, char *out)
{
    const char *s = NULL;
    int r = get_string(c, path, v, &s);
    if (r < 0)
        return r;
    if (s[0] != '/')
        return fail_at(c, path, -EINVAL, "\"%s\" is not an absolute path", s);
    /* Length after replacing every {address} by a 12-character address. */
    size_t len = 0, tok = strlen(ADDR_TOKEN);
    for (const char *p = s; *p;) {
        if (strncmp(p, ADDR_TOKEN, tok) == 0) {
            len += 12;
            p += tok;
        } else {
            len++;
            p++;
        }
    }
    if (len >= POL_SOCKET_MAX)
        return fail_at(c, path, -ENAMETOOLONG,
                       "socket path is %zu bytes when expanded; at most %u fit a UNIX socket",
                       len, POL_SOCKET_MAX - 1);
    if (s[strlen(s) - 1] == '/')
        return fail_at(c, path, -EINVAL, "\"%s\" names a directory, not a socket", s);
    snprintf(out, POL_SOCKET_MAX, "%s", s);
    return 0;
}

/* "trace": an absolute path that fits. */
static int get_trace(struct ctx *c, const char *path, struct json_object *v, char *out)
{
    const char *s = NULL;
    int r = get_string(c, path, v, &s);
    if (r < 0)
        return r;
    if (s[0] != '/')
        return fail_at(c, path, -EINVAL, "\"%s\" is not an absolute path", s);
    if (strlen(s) >= POL_TRACE_MAX)
        return fail_at(c, path, -ENAMETOOLONG, "the path is longer than %u bytes",
                       POL_TRACE_MAX - 1);
    snprintf(out, POL_TRACE_MAX, "%s", s);
    return 0;
}

/* "inject": fault injection rules, each checked as --inject checks it. */
static int get_inject(struct ctx *c, const char *path, struct json_object *v,
                      struct pol_settings *s)
{
    if (!json_object_is_type(v, json_type_array))
        return fail_at(c, path, -EINVAL, "must be an array of rule strings, not %s", type_name(v));
    size_t len = json_object_array_length(v);
    if (len > POL_MAX_INJECT)
        return fail_at(c, path, -EINVAL, "%zu rules; at most %u", len, POL_MAX_INJECT);
    for (size_t i = 0; i < len; i++) {
        char p[PATH_BUF];
        snprintf(p, sizeof(p), "%s[%zu]", path, i);
        const char *rule = NULL;
        int r = get_string(c, p, json_object_array_get_idx(v, i), &rule);
        if (r < 0)
            return r;
        if (strlen(rule) >= POL_INJECT_MAX)
            return fail_at(c, p, -EINVAL, "a rule is at most %u characters", POL_INJECT_MAX - 1);
        struct br_inject_rule parsed;
        struct vub_err e = { "" };
        if (br_inject_parse(rule, &parsed, &e) < 0)
            return fail_at(c, p, -EINVAL, "%s", e.msg);
        snprintf(s->inject[i], POL_INJECT_MAX, "%s", rule);
    }
    s->n_inject = len;
    return 0;
}

/* allow_uids / allow_gids */
static int get_id_list(struct ctx *c, const char *path, struct json_object *v, bool users,
                       uint32_t *ids, size_t *n)
{
    if (!json_object_is_type(v, json_type_array))
        return fail_at(c, path, -EINVAL, "must be an array of %s, not %s",
                       users ? "user names or uids" : "group names or gids", type_name(v));
    size_t len = json_object_array_length(v);
    if (len > POL_MAX_PEERS)
        return fail_at(c, path, -E2BIG, "%zu entries; at most %u are allowed", len, POL_MAX_PEERS);
    for (size_t i = 0; i < len; i++) {
        char p[PATH_BUF];
        snprintf(p, sizeof(p), "%s[%zu]", path, i);
        struct json_object *e = json_object_array_get_idx(v, i);
        int r;
        if (users) {
            uid_t u;
            r = resolve_user(c, p, e, &u, NULL, NULL, NULL, 0);
            ids[i] = u;
        } else {
            gid_t g;
            r = resolve_group(c, p, e, &g);
            ids[i] = g;
        }
        if (r < 0)
            return r;
    }
    *n = len;
    return 0;
}

/* ---- objects ------------------------------------------------------------------- */

/* One key of the per-device settings; 1 if `key` is not a settings key. */
static int settings_key(struct ctx *c, const char *path, const char *key, struct json_object *v,
                        struct pol_settings *s, struct json_object **user_group)
{
    if (strcmp(key, "socket") == 0)
        return get_socket(c, path, v, s->socket);
    if (strcmp(key, "socket_owner") == 0) {
        s->owner_set = true;
        return resolve_user(c, path, v, &s->socket_owner, NULL, NULL, NULL, 0);
    }
    if (strcmp(key, "socket_group") == 0) {
        s->group_set = true;
        return resolve_group(c, path, v, &s->socket_group);
    }
    if (strcmp(key, "socket_mode") == 0) {
        s->mode_set = true;
        return get_mode(c, path, v, &s->socket_mode);
    }
    if (strcmp(key, "allow_uids") == 0) {
        uint32_t ids[POL_MAX_PEERS];
        int r = get_id_list(c, path, v, true, ids, &s->n_uids);
        for (size_t i = 0; r == 0 && i < s->n_uids; i++)
            s->allow_uids[i] = ids[i];
        return r;
    }
    if (strcmp(key, "allow_gids") == 0) {
        uint32_t ids[POL_MAX_PEERS];
        int r = get_id_list(c, path, v, false, ids, &s->n_gids);
        for (size_t i = 0; r == 0 && i < s->n_gids; i++)
            s->allow_gids[i] = ids[i];
        return r;
    }
    if (strcmp(key, "user") == 0) {
        bool has_gid = false;
        int r = resolve_user(c, path, v, &s->user_uid, &s->user_gid, &has_gid, s->user_name,
                             sizeof(s->user_name));
        if (r < 0)
            return r;
        if (s->user_uid == 0)
            return fail_at(c, path, -EINVAL, "dropping privileges to root makes no sense; "
                                            "leave \"user\" out to keep running as root");
        s->user_set = true;
        if (!has_gid && !*user_group)
            return fail_at(c, path, -EINVAL, "uid %u has no passwd entry; give \"user_group\" too",
                           (unsigned)s->user_uid);
        return 0;
    }
    if (strcmp(key, "user_group") == 0) {
        *user_group = v;   /* resolved once the whole object is read */
        return 0;
    }
    if (strcmp(key, "no_mmap") == 0)
        return get_bool(c, path, v, &s->no_mmap);
    if (strcmp(key, "sparse_msix") == 0)
        return get_bool(c, path, v, &s->sparse_msix);
    if (strcmp(key, "msix_mmap") == 0) {
        const char *m = NULL;
        int r = get_string(c, path, v, &m);
        if (r < 0)
            return r;
        if (strcmp(m, "sparse") != 0 && strcmp(m, "kernel") != 0)
            return fail_at(c, path, -EINVAL, "must be \"sparse\" or \"kernel\", not \"%s\"", m);
        s->msix_mmap_kernel = strcmp(m, "kernel") == 0;
        return 0;
    }
    if (strcmp(key, "reset_on_disconnect") == 0)
        return get_bool(c, path, v, &s->reset_on_disconnect);
    if (strcmp(key, "bind") == 0)
        return get_bool(c, path, v, &s->bind);
    if (strcmp(key, "max_dma_bytes") == 0) {
        s->max_dma_bytes_set = true;
        return get_size(c, path, v, &s->max_dma_bytes);
    }
    if (strcmp(key, "handshake_timeout_ms") == 0) {
        int64_t n = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
        if (n < 1 || n > POL_MAX_HANDSHAKE_TIMEOUT_MS)
            return fail_at(c, path, -EINVAL, "must be a number of milliseconds, 1 to %u",
                           POL_MAX_HANDSHAKE_TIMEOUT_MS);
        s->handshake_timeout_ms = (uint32_t)n;
        return 0;
    }
    if (strcmp(key, "stale_holders") == 0) {
        const char *str = NULL;
        int r = get_string(c, path, v, &str);
        if (r < 0)
            return r;
        if (strcmp(str, "refuse") != 0 && strcmp(str, "kill") != 0)
            return fail_at(c, path, -EINVAL, "must be \"refuse\" or \"kill\", not \"%s\"", str);
        s->stale_kill = strcmp(str, "kill") == 0;
        return 0;
    }
    if (strcmp(key, "group_clients") == 0) {
        const char *str = NULL;
        int r = get_string(c, path, v, &str);
        if (r < 0)
            return r;
        for (int i = POL_GROUP_CLIENTS_SAME_VM; i <= POL_GROUP_CLIENTS_ANY; i++)
            if (strcmp(str, pol_group_clients_name((enum pol_group_clients)i)) == 0) {
                s->group_clients = (enum pol_group_clients)i;
                s->group_clients_set = true;
                return 0;
            }
        return fail_at(c, path, -EINVAL, "must be \"same-vm\", \"same-uid\" or \"any\", not "
                                        "\"%s\"", str);
    }
    if (strcmp(key, "trace") == 0)
        return get_trace(c, path, v, s->trace);
    if (strcmp(key, "trace_data") == 0)
        return get_bool(c, path, v, &s->trace_data);
    if (strcmp(key, "inject") == 0)
        return get_inject(c, path, v, s);
    return 1;
}

static int finish_user_group(struct ctx *c, const char *parent, struct json_object *user_group,
                             struct pol_settings *s)
{
    char p[PATH_BUF];
    if (!user_group)
        return 0;
    subpath(p, sizeof(p), parent, "user_group");
    if (!s->user_set)
        return fail_at(c, p, -EINVAL, "only makes sense together with \"user\"");
    return resolve_group(c, p, user_group, &s->user_gid);
}

static int parse_settings_object(struct ctx *c, const char *path, struct json_object *o,
                                 struct pol_settings *s)
{
    if (!json_object_is_type(o, json_type_object))
        return fail_at(c, path, -EINVAL, "must be an object, not %s", type_name(o));
    struct json_object *user_group = NULL;
    /* "user" is looked at after "user_group" so that the latter can stand in
     * for a missing passwd entry whatever the key order. */
    struct json_object *ug = NULL;
    if (json_object_object_get_ex(o, "user_group", &ug))
        user_group = ug;
    struct json_object_iter it;
    json_object_object_foreachC(o, it) {
        char p[PATH_BUF];
        subpath(p, sizeof(p), path, it.key);
        if (strcmp(it.key, "comment") == 0)
            continue;
        int r = settings_key(c, p, it.key, it.val, s, &user_group);
        if (r < 0)
            return r;
        if (r > 0)
            return fail_at(c, p, -EINVAL, "unknown key \"%s\"", it.key);
    }
    return finish_user_group(c, path, user_group, s);
}

static int parse_match(struct ctx *c, const char *path, struct json_object *o,
                       struct pol_match *m)
{
    if (!json_object_is_type(o, json_type_object))
        return fail_at(c, path, -EINVAL, "must be an object with \"address\", \"id\" or "
                                        "\"class\", not %s", type_name(o));
    memset(m, 0, sizeof(*m));
    struct json_object_iter it;
    json_object_object_foreachC(o, it) {
        char p[PATH_BUF];
        const char *s = NULL;
        int r;
        subpath(p, sizeof(p), path, it.key);
        if (strcmp(it.key, "address") == 0) {
            if ((r = get_string(c, p, it.val, &s)) < 0)
                return r;
            if (hv_pci_addr_parse(s, m->addr) < 0)
                return fail_at(c, p, -EINVAL, "\"%s\" is not a PCI address like \"0000:01:00.0\"",
                               s);
            m->keys |= POL_MATCH_ADDR;
        } else if (strcmp(it.key, "id") == 0) {
            if ((r = get_string(c, p, it.val, &s)) < 0)
                return r;
            if (!parse_id(s, &m->vendor, &m->device))
                return fail_at(c, p, -EINVAL,
                               "\"%s\" is not \"vendor:device\" in hex, like \"8086:10fb\" "
                               "or \"8086:*\"", s);
            m->keys |= POL_MATCH_ID;
        } else if (strcmp(it.key, "class") == 0) {
            if ((r = get_string(c, p, it.val, &s)) < 0)
                return r;
            if (!parse_class(s, &m->class_code, &m->class_mask))
                return fail_at(c, p, -EINVAL, "\"%s\" is not a class code of 2, 4 or 6 hex "
                                             "digits, like \"0108\"", s);
            m->keys |= POL_MATCH_CLASS;
        } else if (strcmp(it.key, "comment") != 0) {
            return fail_at(c, p, -EINVAL, "unknown key \"%s\" (a match has \"address\", \"id\" "
                                         "and \"class\")", it.key);
        }
    }
    if (!m->keys)
        return fail_at(c, path, -EINVAL, "matches nothing: give \"address\", \"id\" or \"class\"");
    return 0;
}

static int parse_entry(struct ctx *c, const char *path, struct json_object *o,
                       const struct pol_settings *defaults, struct pol_entry *e)
{
    if (!json_object_is_type(o, json_type_object))
        return fail_at(c, path, -EINVAL, "must be an object, not %s", type_name(o));
    e->s = *defaults;
    e->export_ = true;
    struct json_object *user_group = NULL, *ug = NULL;
    if (json_object_object_get_ex(o, "user_group", &ug))
        user_group = ug;
    bool have_match = false;
    struct json_object_iter it;
    json_object_object_foreachC(o, it) {
        char p[PATH_BUF];
        int r;
        subpath(p, sizeof(p), path, it.key);
        if (strcmp(it.key, "comment") == 0)
            continue;
        if (strcmp(it.key, "match") == 0) {
            if ((r = parse_match(c, p, it.val, &e->match)) < 0)
                return r;
            have_match = true;
            continue;
        }
        if (strcmp(it.key, "export") == 0) {
            if ((r = get_bool(c, p, it.val, &e->export_)) < 0)
                return r;
            continue;
        }
        r = settings_key(c, p, it.key, it.val, &e->s, &user_group);
        if (r < 0)
            return r;
        if (r > 0)
            return fail_at(c, p, -EINVAL, "unknown key \"%s\"", it.key);
    }
    if (!have_match)
        return fail_at(c, path, -EINVAL, "has no \"match\"");
    return finish_user_group(c, path, user_group, &e->s);
}

static void settings_init(struct pol_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->socket_mode = POL_DEFAULT_SOCKET_MODE;
    s->reset_on_disconnect = true;
}

static int parse_top(struct ctx *c, struct json_object *root, struct pol *p)
{
    if (!json_object_is_type(root, json_type_object))
        return fail_at(c, NULL, -EINVAL, "the policy must be a JSON object, not %s",
                       type_name(root));
    struct json_object *v;
    p->version = 1;
    if (json_object_object_get_ex(root, "version", &v)) {
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 1)
            return fail_at(c, "version", -EINVAL, "unsupported version %s (this bridge reads 1)",
                           json_object_to_json_string(v));
    }
    settings_init(&p->defaults);
    if (json_object_object_get_ex(root, "defaults", &v)) {
        int r = parse_settings_object(c, "defaults", v, &p->defaults);
        if (r < 0)
            return r;
    }
    struct json_object_iter it;
    json_object_object_foreachC(root, it) {
        if (strcmp(it.key, "version") && strcmp(it.key, "defaults") &&
            strcmp(it.key, "devices") && strcmp(it.key, "comment"))
            return fail_at(c, it.key, -EINVAL, "unknown key \"%s\" (the top level has "
                                              "\"version\", \"defaults\" and \"devices\")",
                           it.key);
    }
    if (!json_object_object_get_ex(root, "devices", &v))
        return fail_at(c, NULL, -EINVAL, "no \"devices\" list: the policy would export nothing");
    if (!json_object_is_type(v, json_type_array))
        return fail_at(c, "devices", -EINVAL, "must be an array, not %s", type_name(v));
    size_t n = json_object_array_length(v);
    if (n > POL_MAX_DEVICES)
        return fail_at(c, "devices", -E2BIG, "%zu entries; at most %u are allowed", n,
                       POL_MAX_DEVICES);
    p->entries = calloc(n ? n : 1, sizeof(*p->entries));
    if (!p->entries)
        return fail_at(c, NULL, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char path[PATH_BUF];
        snprintf(path, sizeof(path), "devices[%zu]", i);
        p->entries[i].index = (unsigned)i;
        int r = parse_entry(c, path, json_object_array_get_idx(v, i), &p->defaults,
                            &p->entries[i]);
        if (r < 0)
            return r;
        p->n_entries = i + 1;
    }
    return 0;
}

/* ---- loading ------------------------------------------------------------------- */

static void line_col(const char *text, size_t end, unsigned *line, unsigned *col)
{
    unsigned l = 1, cl = 1;
    for (size_t i = 0; i < end; i++) {
        if (text[i] == '\n') {
            l++;
            cl = 1;
        } else {
            cl++;
        }
    }
    *line = l;
    *col = cl;
}

int pol_load_string(const char *name, const char *text, size_t len, struct pol **out,
                    struct vub_err *err)
{
    struct ctx c = { .file = name ? name : "(policy)", .err = err };
    *out = NULL;
    if (len > POL_MAX_FILE_SIZE)
        return fail_at(&c, NULL, -EFBIG, "%zu bytes; a policy may have at most %u", len,
                       POL_MAX_FILE_SIZE);
    if (memchr(text, '\0', len))
        return fail_at(&c, NULL, -EINVAL, "contains a NUL byte; not a JSON text");

    struct json_tokener *tok = json_tokener_new();
    if (!tok)
        return fail_at(&c, NULL, -ENOMEM, "out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    struct json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!root || jerr != json_tokener_success) {
        unsigned line, col;
        /* json_tokener_continue: the text ended inside a value. */
        const char *why = jerr == json_tokener_continue ? "unexpected end of file"
                                                        : json_tokener_error_desc(jerr);
        /* parse_end is the offset of the byte that failed */
        if (jerr == json_tokener_continue || end > len)
            end = len;
        line_col(text, end, &line, &col);
        json_object_put(root);
        char where[32];
        snprintf(where, sizeof(where), "line %u, column %u", line, col);
        return fail_at(&c, where, -EINVAL, "JSON syntax error: %s", why);
    }

    struct pol *p = calloc(1, sizeof(*p));
    if (!p) {
        json_object_put(root);
        return fail_at(&c, NULL, -ENOMEM, "out of memory");
    }
    snprintf(p->path, sizeof(p->path), "%s", c.file);
    int r = parse_top(&c, root, p);
    json_object_put(root);
    if (r < 0) {
        pol_free(p);
        return r;
    }
    *out = p;
    return 0;
}

int pol_load_file(const char *path, struct pol **out, struct vub_err *err)
{
    struct ctx c = { .file = path, .err = err };
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return fail_at(&c, NULL, -errno, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return fail_at(&c, NULL, -e, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fail_at(&c, NULL, -EINVAL, "not a regular file");
    }
    if (st.st_size > (off_t)POL_MAX_FILE_SIZE) {
        close(fd);
        return fail_at(&c, NULL, -EFBIG, "%lld bytes; a policy may have at most %u",
                       (long long)st.st_size, POL_MAX_FILE_SIZE);
    }
    /* Read up to one byte more than allowed, in case it grew since fstat. */
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return fail_at(&c, NULL, -ENOMEM, "out of memory");
    }
    for (;;) {
        if (len == cap) {
            if (cap > POL_MAX_FILE_SIZE)
                break;
            size_t ncap = cap * 2 > POL_MAX_FILE_SIZE + 1 ? POL_MAX_FILE_SIZE + 1 : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                close(fd);
                return fail_at(&c, NULL, -ENOMEM, "out of memory");
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return fail_at(&c, NULL, -e, "read error: %s", strerror(e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    int r = pol_load_string(path, buf, len, out, err);
    free(buf);
    return r;
}

void pol_free(struct pol *p)
{
    if (!p)
        return;
    free(p->entries);
    free(p);
}

/* ---- matching ------------------------------------------------------------------- */

static bool entry_matches(const struct pol_match *m, const struct pol_ident *id)
{
    if ((m->keys & POL_MATCH_ADDR) && strcmp(m->addr, id->addr) != 0)
        return false;
    if (m->keys & POL_MATCH_ID) {
        if (m->vendor != id->vendor)
            return false;
        if (m->device >= 0 && m->device != id->device)
            return false;
    }
    if ((m->keys & POL_MATCH_CLASS) &&
        (id->class_code & m->class_mask) != (m->class_code & m->class_mask))
        return false;
    return m->keys != 0;
}

const struct pol_entry *pol_lookup(const struct pol *p, const struct pol_ident *id)
{
    for (size_t i = 0; p && i < p->n_entries; i++)
        if (entry_matches(&p->entries[i].match, id))
            return &p->entries[i];
    return NULL;
}

int pol_decide(const struct pol *p, const struct pol_ident *id, struct pol_decision *out,
               struct vub_err *err)
{
    memset(out, 0, sizeof(*out));
    out->entry = pol_lookup(p, id);
    if (!out->entry || !out->entry->export_)
        return 0;
    const char *tmpl = out->entry->s.socket;
    size_t len = 0, tok = strlen(ADDR_TOKEN), alen = strlen(id->addr);
    int n;
    if (!tmpl[0]) {
        n = snprintf(out->socket, sizeof(out->socket), "%s/%s.sock", POL_DEFAULT_SOCKET_DIR,
                     id->addr);
        len = n < 0 ? sizeof(out->socket) : (size_t)n;
    } else {
        for (const char *s = tmpl; *s;) {
            bool is_tok = strncmp(s, ADDR_TOKEN, tok) == 0;
            size_t add = is_tok ? alen : 1;
            if (len + add >= sizeof(out->socket)) {
                len = sizeof(out->socket);
                break;
            }
            memcpy(out->socket + len, is_tok ? id->addr : s, add);
            len += add;
            s += is_tok ? tok : 1;
        }
        if (len < sizeof(out->socket))
            out->socket[len] = '\0';
    }
    if (len >= sizeof(out->socket)) {
        struct ctx c = { .file = p->path, .err = err };
        char path[PATH_BUF];
        snprintf(path, sizeof(path), "devices[%u].socket", out->entry->index);
        out->socket[0] = '\0';
        return fail_at(&c, path, -ENAMETOOLONG, "the socket path for %s does not fit a UNIX "
                                               "socket address", id->addr);
    }
    out->exported = true;
    return 0;
}

/* ---- sysfs --------------------------------------------------------------------- */

/* Through host-vfio, so that the policy, `vfio-user-bridge list` and the
 * daemon read the same tree with the same address grammar. */
int pol_ident_from_sysfs(const char *sysfs, const char *addr, struct pol_ident *out,
                         struct vub_err *err)
{
    struct ctx c = { .file = "sysfs", .err = err };
    struct vub_err he = { { 0 } };
    memset(out, 0, sizeof(*out));
    if (hv_pci_addr_parse(addr, out->addr) < 0)
        return fail_at(&c, NULL, -EINVAL, "\"%s\" is not a PCI address like \"0000:01:00.0\"",
                       addr ? addr : "(null)");
    if (!sysfs)
        sysfs = HV_SYSFS_DEFAULT;
    c.file = out->addr;
    int r = hv_sysfs_driver(sysfs, out->addr, out->driver, sizeof(out->driver));
    if (r == -ENODEV)
        return fail_at(&c, NULL, -ENODEV, "no such PCI function (nothing at "
                                         "%s/bus/pci/devices/%s)", sysfs, out->addr);
    if (r < 0)
        return fail_at(&c, "driver", -EIO, "cannot read its driver link in %s: %s", sysfs,
                       strerror(-r));
    uint32_t v, d, cls;
    if (hv_sysfs_hex_attr(sysfs, out->addr, "vendor", 4, &v, &he) < 0 ||
        hv_sysfs_hex_attr(sysfs, out->addr, "device", 4, &d, &he) < 0 ||
        hv_sysfs_hex_attr(sysfs, out->addr, "class", 6, &cls, &he) < 0) {
        if (err)   /* host-vfio's message names the function, the file and the content */
            snprintf(err->msg, sizeof(err->msg), "%s", he.msg);
        return -EIO;
    }
    out->vendor = (uint16_t)v;
    out->device = (uint16_t)d;
    out->class_code = cls;
    return 0;
}

/* ---- IOMMU groups --------------------------------------------------------------- */

const char *pol_group_clients_name(enum pol_group_clients v)
{
    switch (v) {
    case POL_GROUP_CLIENTS_SAME_UID: return "same-uid";
    case POL_GROUP_CLIENTS_ANY: return "any";
    case POL_GROUP_CLIENTS_SAME_VM: break;
    }
    return "same-vm";
}

int pol_group_of(const char *sysfs, const char *addr, int *number, struct vub_err *err)
{
    struct ctx c = { .file = "sysfs", .err = err };
    char a[POL_ADDR_LEN], path[PATH_MAX], link[PATH_MAX];
    if (hv_pci_addr_parse(addr, a) < 0)
        return fail_at(&c, NULL, -EINVAL, "\"%s\" is not a PCI address like \"0000:01:00.0\"",
                       addr ? addr : "(null)");
    if (!sysfs)
        sysfs = HV_SYSFS_DEFAULT;
    c.file = a;
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s", sysfs, a);
    struct stat st;
    if (stat(path, &st) < 0)
        return fail_at(&c, NULL, -ENODEV, "no such PCI function (nothing at %s)", path);
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/iommu_group", sysfs, a);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n < 0)
        return fail_at(&c, NULL, -ENOENT, "no IOMMU group (no %s: IOMMU off?)", path);
    link[n] = '\0';
    const char *base = strrchr(link, '/');
    base = base ? base + 1 : link;
    char *end;
    errno = 0;
    long v = strtol(base, &end, 10);
    if (!isdigit((unsigned char)base[0]) || *end || errno || v > INT_MAX)
        return fail_at(&c, NULL, -EIO, "%s points to \"%s\", not a group number", path, link);
    *number = (int)v;
    return 0;
}

static int member_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pol_group_member *)a)->id.addr,
                  ((const struct pol_group_member *)b)->id.addr);
}

int pol_group_decide(const struct pol *p, const char *sysfs, int number, struct pol_group *out,
                     struct vub_err *err)
{
    struct ctx c = { .file = "sysfs", .err = err };
    char path[PATH_MAX], gname[32];
    memset(out, 0, sizeof(*out));
    out->number = number;
    if (!sysfs)
        sysfs = HV_SYSFS_DEFAULT;
    snprintf(gname, sizeof(gname), "IOMMU group %d", number);
    c.file = gname;
    if (number < 0)
        return fail_at(&c, NULL, -EINVAL, "%s", "not a group number");
    snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%d/devices", sysfs, number);
    DIR *dir = opendir(path);
    if (!dir)
        return fail_at(&c, NULL, -ENOENT, "no such group (%s: %s)", path, strerror(errno));
    int r = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        char canon[POL_ADDR_LEN];
        if (e->d_name[0] == '.' || hv_pci_addr_parse(e->d_name, canon) < 0)
            continue;   /* not a PCI function */
        if (out->n == POL_GROUP_MAX_MEMBERS) {
            r = fail_at(&c, NULL, -E2BIG, "more than %u members", POL_GROUP_MAX_MEMBERS);
            break;
        }
        struct pol_group_member *m = &out->m[out->n];
        struct vub_err merr = { "" };
        if (pol_ident_from_sysfs(sysfs, e->d_name, &m->id, &merr) < 0) {
            /* judged alone: the others are decided */
            memset(m, 0, sizeof(*m));
            memcpy(m->id.addr, canon, sizeof(m->id.addr));
            m->unreadable = true;
            snprintf(m->why, sizeof(m->why), "%s", merr.msg);
            out->n_unreadable++;
            out->n++;
            continue;
        }
        if ((r = pol_decide(p, &m->id, &m->d, err)) < 0)
            break;
        out->n++;
    }
    closedir(dir);
    if (r < 0)
        return r;
    qsort(out->m, out->n, sizeof(out->m[0]), member_cmp);
    const struct pol_group_member *first = NULL;   /* the first exported */
    for (size_t i = 0; i < out->n; i++) {
        const struct pol_group_member *m = &out->m[i];
        if (!m->d.exported)
            continue;
        out->n_exported++;
        out->n_on_vfio += strcmp(m->id.driver, "vfio-pci") == 0;
        out->n_elsewhere += m->id.driver[0] && strcmp(m->id.driver, "vfio-pci") != 0;
        const struct pol_settings *s = &m->d.entry->s;
        enum pol_group_clients v = s->group_clients_set ? s->group_clients
                                                        : POL_GROUP_CLIENTS_SAME_VM;
        out->clients_set |= s->group_clients_set;
        if (!first) {
            first = m;
            out->clients = v;
        } else if (v != out->clients) {
            return fail_at(&c, NULL, -EINVAL, "%s: devices[%u] gives %s \"group_clients\": \"%s\", "
                           "devices[%u] gives %s \"%s\"; one daemon serves the group with one "
                           "rule (give both the same, e.g. in \"defaults\")",
                           p->path, first->d.entry->index, first->id.addr,
                           pol_group_clients_name(out->clients), m->d.entry->index, m->id.addr,
                           pol_group_clients_name(v));
        }
    }
    return 0;
}
