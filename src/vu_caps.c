/* SPDX-License-Identifier: MIT */
/* Capability JSON (json-c) and the server's VERSION answer. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "vu_proto.h"

#define JSON_DEPTH 8
#define MAX_MSG_FDS_ACCEPTED 1024u
#define MAX_DMA_MAPS 65535u
#define MIG_MAX_BITMAP (256ull << 20)

void vu_caps_defaults(struct vu_caps *caps)
{
    memset(caps, 0, sizeof(*caps));
    caps->max_msg_fds = 1;
    caps->max_data_xfer_size = VU_DEFAULT_DATA_XFER;
    caps->max_dma_maps = MAX_DMA_MAPS;
    caps->pgsizes = 4096;
    caps->present = VU_CAP_NUMERIC_ALL;
}

/* A non-negative JSON integer (json-c keeps values above INT64_MAX as
 * uint64). Doubles, strings, booleans are type errors. */
static int get_u64(json_object *o, const char *key, uint64_t *v, struct vub_err *err)
{
    if (!json_object_is_type(o, json_type_int))
        return vub_fail(err, -EINVAL, "capabilities: \"%s\" is not an integer", key);
    errno = 0;
    int64_t s = json_object_get_int64(o);
    if (s < 0)
        return vub_fail(err, -EINVAL, "capabilities: \"%s\" is negative", key);
    if (s == INT64_MAX) {
        /* Clamped or genuinely large: ask for the unsigned view. */
        errno = 0;
        uint64_t u = json_object_get_uint64(o);
        if (errno || u == UINT64_MAX)
            return vub_fail(err, -EINVAL, "capabilities: \"%s\" is out of range", key);
        *v = u;
        return 0;
    }
    *v = (uint64_t)s;
    return 0;
}

static int get_bool(json_object *o, const char *key, bool *v, struct vub_err *err)
{
    if (!json_object_is_type(o, json_type_boolean))
        return vub_fail(err, -EINVAL, "capabilities: \"%s\" is not a boolean", key);
    *v = json_object_get_boolean(o);
    return 0;
}

static int parse_range(json_object *caps, const char *key, uint64_t min, uint64_t max,
                       uint64_t *out, uint32_t bit, uint32_t *present, struct vub_err *err)
{
    json_object *o;
    if (!json_object_object_get_ex(caps, key, &o))
        return 0;
    *present |= bit;
    uint64_t v;
    int r = get_u64(o, key, &v, err);
    if (r)
        return r;
    if (v < min || v > max)
        return vub_fail(err, -EINVAL, "capabilities: \"%s\" %" PRIu64 " not in %" PRIu64
                       "..%" PRIu64, key, v, min, max);
    *out = v;
    return 0;
}

static int parse_migration(json_object *caps, struct vu_caps *out, struct vub_err *err)
{
    json_object *mig, *o;
    if (!json_object_object_get_ex(caps, "migration", &mig))
        return 0;
    if (!json_object_is_type(mig, json_type_object))
        return vub_fail(err, -EINVAL, "capabilities: \"migration\" is not an object");
    out->has_migration = true;
    if (json_object_object_get_ex(mig, "pgsize", &o)) {
        uint64_t v;
        int r = get_u64(o, "migration.pgsize", &v, err);
        if (r)
            return r;
        if (v == 0 || v % 4096)
            return vub_fail(err, -EINVAL, "capabilities: \"migration.pgsize\" %" PRIu64
                           " is not a multiple of 4096", v);
        out->migration_pgsize = v;
    }
    if (json_object_object_get_ex(mig, "max_bitmap_size", &o)) {
        uint64_t v;
        int r = get_u64(o, "migration.max_bitmap_size", &v, err);
        if (r)
            return r;
        if (v > MIG_MAX_BITMAP)
            return vub_fail(err, -EINVAL, "capabilities: \"migration.max_bitmap_size\" %" PRIu64
                           " exceeds %llu", v, MIG_MAX_BITMAP);
        out->migration_max_bitmap_size = v;
    }
    return 0;
}

static int parse_caps_object(json_object *root, struct vu_caps *out, struct vub_err *err)
{
    json_object *caps, *o;
    if (!json_object_is_type(root, json_type_object))
        return vub_fail(err, -EINVAL, "capabilities: JSON is not an object");
    out->present = 0;
    if (!json_object_object_get_ex(root, "capabilities", &caps))
        return 0;   /* optional: the sender states nothing, defaults apply */
    if (!json_object_is_type(caps, json_type_object))
        return vub_fail(err, -EINVAL, "capabilities: \"capabilities\" is not an object");

    uint64_t v;
    int r;
    v = out->max_msg_fds;
    if ((r = parse_range(caps, "max_msg_fds", 0, MAX_MSG_FDS_ACCEPTED, &v,
                         VU_CAP_MAX_MSG_FDS, &out->present, err)))
        return r;
    out->max_msg_fds = (uint32_t)v;
    if ((r = parse_range(caps, "max_data_xfer_size", 1, VU_MAX_DATA_XFER,
                         &out->max_data_xfer_size, VU_CAP_MAX_DATA_XFER, &out->present, err)))
        return r;
    v = out->max_dma_maps;
    if ((r = parse_range(caps, "max_dma_maps", 1, MAX_DMA_MAPS, &v,
                         VU_CAP_MAX_DMA_MAPS, &out->present, err)))
        return r;
    out->max_dma_maps = (uint32_t)v;
    if ((r = parse_range(caps, "pgsizes", 1, UINT64_MAX, &out->pgsizes, VU_CAP_PGSIZES,
                         &out->present, err)))
        return r;
    if (out->pgsizes & 4095)
        return vub_fail(err, -EINVAL, "capabilities: \"pgsizes\" 0x%" PRIx64
                       " has bits below 4 KiB", out->pgsizes);
    if (json_object_object_get_ex(caps, "write_multiple", &o) &&
        (r = get_bool(o, "write_multiple", &out->write_multiple, err)))
        return r;
    if (json_object_object_get_ex(caps, "twin_socket", &o)) {
        json_object *s;
        if (!json_object_is_type(o, json_type_object))
            return vub_fail(err, -EINVAL, "capabilities: \"twin_socket\" is not an object");
        if (json_object_object_get_ex(o, "supported", &s) &&
            (r = get_bool(s, "twin_socket.supported", &out->twin_socket, err)))
            return r;
        if (json_object_object_get_ex(o, "fd_index", &s)) {
            uint64_t idx;
            if ((r = get_u64(s, "twin_socket.fd_index", &idx, err)))
                return r;
        }
    }
    return parse_migration(caps, out, err);
}

int vu_caps_parse(const char *json, size_t json_len, struct vu_caps *out, struct vub_err *err)
{
    vu_caps_defaults(out);
    if (!json)
        return vub_fail(err, -EINVAL, "capabilities: no JSON");
    if (json_len > VU_MAX_JSON)
        return vub_fail(err, -E2BIG, "capabilities: JSON of %zu bytes exceeds %u", json_len,
                       VU_MAX_JSON);
    if (memchr(json, '\0', json_len))
        return vub_fail(err, -EINVAL, "capabilities: NUL byte inside the JSON");

    json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
    if (!tok)
        return vub_fail(err, -ENOMEM, "capabilities: no memory for the JSON parser");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *root = json_tokener_parse_ex(tok, json, (int)json_len);
    enum json_tokener_error te = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    int r = 0;
    if (!root || te != json_tokener_success) {
        /* An incomplete document is "continue" with no object. */
        r = vub_fail(err, -EINVAL, "capabilities: bad JSON: %s",
                    te == json_tokener_continue ? "incomplete" : json_tokener_error_desc(te));
        goto out;
    }
    for (size_t i = end; i < json_len; i++) {
        char ch = json[i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
            r = vub_fail(err, -EINVAL, "capabilities: trailing bytes after the JSON at %zu", i);
            goto out;
        }
    }
    r = parse_caps_object(root, out, err);
out:
    json_object_put(root);
    json_tokener_free(tok);
    if (r)
        vu_caps_defaults(out);
    return r;
}

/* snprintf into buf at *pos; false when it no longer fits. */
static bool put(char *buf, size_t bufsz, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#include <stdarg.h>
static bool put(char *buf, size_t bufsz, size_t *pos, const char *fmt, ...)
{
    if (*pos >= bufsz)
        return false;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *pos, bufsz - *pos, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= bufsz - *pos)
        return false;
    *pos += (size_t)n;
    return true;
}

ssize_t vu_caps_emit(const struct vu_caps *caps, char *buf, size_t bufsz)
{
    size_t pos = 0;
    const char *sep = "";
    bool ok = put(buf, bufsz, &pos, "{\"capabilities\":{");
    if (ok && (caps->present & VU_CAP_MAX_MSG_FDS)) {
        ok = put(buf, bufsz, &pos, "%s\"max_msg_fds\":%" PRIu32, sep, caps->max_msg_fds);
        sep = ",";
    }
    if (ok && (caps->present & VU_CAP_MAX_DATA_XFER)) {
        ok = put(buf, bufsz, &pos, "%s\"max_data_xfer_size\":%" PRIu64, sep,
                 caps->max_data_xfer_size);
        sep = ",";
    }
    if (ok && (caps->present & VU_CAP_MAX_DMA_MAPS)) {
        ok = put(buf, bufsz, &pos, "%s\"max_dma_maps\":%" PRIu32, sep, caps->max_dma_maps);
        sep = ",";
    }
    if (ok && (caps->present & VU_CAP_PGSIZES)) {
        ok = put(buf, bufsz, &pos, "%s\"pgsizes\":%" PRIu64, sep, caps->pgsizes);
        sep = ",";
    }
    if (ok && caps->write_multiple) {
        ok = put(buf, bufsz, &pos, "%s\"write_multiple\":true", sep);
        sep = ",";
    }
    if (ok && caps->twin_socket) {
        ok = put(buf, bufsz, &pos, "%s\"twin_socket\":{\"supported\":true}", sep);
        sep = ",";
    }
    if (ok && caps->has_migration) {
        ok = put(buf, bufsz, &pos, "%s\"migration\":{", sep);
        if (ok && caps->migration_pgsize)
            ok = put(buf, bufsz, &pos, "\"pgsize\":%" PRIu64, caps->migration_pgsize);
        if (ok && caps->migration_max_bitmap_size)
            ok = put(buf, bufsz, &pos, "%s\"max_bitmap_size\":%" PRIu64,
                     caps->migration_pgsize ? "," : "", caps->migration_max_bitmap_size);
        if (ok)
            ok = put(buf, bufsz, &pos, "}");
    }
    if (ok)
        ok = put(buf, bufsz, &pos, "}}");
    if (!ok) {
        if (bufsz)
            buf[0] = '\0';
        return -ENOSPC;
    }
    return (ssize_t)(pos + 1);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Keys of the reply, in the order they are given up when the reply does
 * not fit (see vu_proto.h). */
enum drop_key { D_WRITE_MULTIPLE, D_MIGRATION, D_PGSIZES, D_MAX_MSG_FDS, D_MAX_DMA_MAPS,
                D_MAX_DATA_XFER, D_N };

static bool has_key(const struct vu_caps *c, enum drop_key k)
{
    switch (k) {
    case D_WRITE_MULTIPLE: return c->write_multiple;
    case D_MIGRATION: return c->has_migration;
    case D_PGSIZES: return c->present & VU_CAP_PGSIZES;
    case D_MAX_MSG_FDS: return c->present & VU_CAP_MAX_MSG_FDS;
    case D_MAX_DMA_MAPS: return c->present & VU_CAP_MAX_DMA_MAPS;
    case D_MAX_DATA_XFER: return c->present & VU_CAP_MAX_DATA_XFER;
    default: return false;
    }
}

/* The key states what the receiver would assume without it. */
static bool is_default(const struct vu_caps *c, enum drop_key k)
{
    struct vu_caps d;
    vu_caps_defaults(&d);
    switch (k) {
    case D_PGSIZES: return c->pgsizes == d.pgsizes;
    case D_MAX_MSG_FDS: return c->max_msg_fds == d.max_msg_fds;
    case D_MAX_DMA_MAPS: return c->max_dma_maps == d.max_dma_maps;
    case D_MAX_DATA_XFER: return c->max_data_xfer_size == d.max_data_xfer_size;
    default: return false;
    }
}

static void drop_key(struct vu_caps *c, enum drop_key k)
{
    switch (k) {
    case D_WRITE_MULTIPLE: c->write_multiple = false; break;
    case D_MIGRATION: c->has_migration = false; break;
    case D_PGSIZES: c->present &= ~VU_CAP_PGSIZES; break;
    case D_MAX_MSG_FDS: c->present &= ~VU_CAP_MAX_MSG_FDS; break;
    case D_MAX_DMA_MAPS: c->present &= ~VU_CAP_MAX_DMA_MAPS; break;
    case D_MAX_DATA_XFER: c->present &= ~VU_CAP_MAX_DATA_XFER; break;
    default: break;
    }
}

/* The next key to give up: a default-valued one first, then by order. */
static bool next_drop(const struct vu_caps *c, enum drop_key *k)
{
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < D_N; i++)
            if (has_key(c, (enum drop_key)i) && (pass == 1 || is_default(c, (enum drop_key)i))) {
                *k = (enum drop_key)i;
                return true;
            }
    return false;
}

int vu_version_answer(const struct vu_msg *req, const struct vu_caps *server,
                      struct vu_caps *client_out, struct vu_caps *agreed, char *reply_json,
                      size_t reply_json_sz, size_t *reply_len, struct vu_version_out *out,
                      struct vub_err *err)
{
    struct vu_version_req v;
    struct vu_caps client;
    int r = vu_decode_version(req, &v, err);
    if (r)
        return r;
    if (v.major != 0)
        return vub_fail(err, -ENOTSUP, "VERSION: major %u not supported (only 0)", v.major);
    if (v.json) {
        if ((r = vu_caps_parse(v.json, v.json_len, &client, err)))
            return r;
    } else {
        vu_caps_defaults(&client);
        client.present = 0;     /* it stated nothing */
    }

    /* The reply: a subset of what the client proposed. */
    struct vu_caps ans;
    vu_caps_defaults(&ans);
    ans.present = client.present;
    ans.max_msg_fds = server->max_msg_fds;
    ans.max_data_xfer_size = server->max_data_xfer_size;
    ans.max_dma_maps = (uint32_t)min_u64(server->max_dma_maps, client.max_dma_maps);
    ans.pgsizes = server->pgsizes & client.pgsizes ? server->pgsizes & client.pgsizes
                                                   : server->pgsizes;
    ans.write_multiple = server->write_multiple && client.write_multiple;
    ans.twin_socket = false;
    ans.has_migration = server->has_migration && client.has_migration;
    ans.migration_pgsize = server->migration_pgsize;
    if (ans.has_migration && client.migration_pgsize &&
        (ans.migration_pgsize == 0 || client.migration_pgsize < ans.migration_pgsize))
        ans.migration_pgsize = client.migration_pgsize;
    ans.migration_max_bitmap_size = ans.has_migration ? server->migration_max_bitmap_size : 0;

    /* Whole reply (16 + 4 + JSON with NUL) <= the request message when the
     * request carries JSON (QEMU's bound; it always sends JSON). */
    size_t room = reply_json_sz;
    if (v.json && req->hdr.msg_size - VU_HDR_SIZE - sizeof(struct vu_version) < room)
        room = req->hdr.msg_size - VU_HDR_SIZE - sizeof(struct vu_version);
    unsigned dropped = 0;
    bool over = false;
    ssize_t n;
    for (;;) {
        n = vu_caps_emit(&ans, reply_json, room);
        if (n >= 0)
            break;
        enum drop_key k;
        if (next_drop(&ans, &k)) {
            drop_key(&ans, k);
            dropped++;
            continue;
        }
        /* nothing left to drop: the minimal JSON, over the bound if need be */
        n = vu_caps_emit(&ans, reply_json, reply_json_sz);
        if (n < 0)
            return vub_fail(err, -ENOSPC, "VERSION: no room for the reply JSON (%zu bytes)",
                           reply_json_sz);
        over = true;
        break;
    }
    *reply_len = (size_t)n;

    if (client_out)
        *client_out = client;
    if (agreed) {
        *agreed = ans;
        agreed->max_msg_fds = (uint32_t)min_u64(server->max_msg_fds, client.max_msg_fds);
        agreed->max_data_xfer_size = min_u64(server->max_data_xfer_size,
                                             client.max_data_xfer_size);
        agreed->max_dma_maps = (uint32_t)min_u64(server->max_dma_maps, client.max_dma_maps);
        agreed->pgsizes = server->pgsizes & client.pgsizes ? server->pgsizes & client.pgsizes
                                                           : server->pgsizes;
        agreed->migration_max_bitmap_size = ans.has_migration
                                                ? client.migration_max_bitmap_size
                                                : 0;
        if (!ans.has_migration)
            agreed->migration_pgsize = 0;
    }
    if (out) {
        out->minor = (uint16_t)min_u64(v.minor, VU_PROTO_MINOR);
        out->dropped = dropped;
        out->over_bound = over;
    }
    return 0;
}
