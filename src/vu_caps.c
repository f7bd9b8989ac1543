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
}

/* A non-negative JSON integer (json-c keeps values above INT64_MAX as
 * uint64). Doubles, strings, booleans are type errors. */
static int get_u64(json_object *o, const char *key, uint64_t *v, struct vu_err *err)
{
    if (!json_object_is_type(o, json_type_int))
        return vu_fail(err, -EINVAL, "capabilities: \"%s\" is not an integer", key);
    errno = 0;
    int64_t s = json_object_get_int64(o);
    if (s < 0)
        return vu_fail(err, -EINVAL, "capabilities: \"%s\" is negative", key);
    if (s == INT64_MAX) {
        /* Clamped or genuinely large: ask for the unsigned view. */
        errno = 0;
        uint64_t u = json_object_get_uint64(o);
        if (errno || u == UINT64_MAX)
            return vu_fail(err, -EINVAL, "capabilities: \"%s\" is out of range", key);
        *v = u;
        return 0;
    }
    *v = (uint64_t)s;
    return 0;
}

static int get_bool(json_object *o, const char *key, bool *v, struct vu_err *err)
{
    if (!json_object_is_type(o, json_type_boolean))
        return vu_fail(err, -EINVAL, "capabilities: \"%s\" is not a boolean", key);
    *v = json_object_get_boolean(o);
    return 0;
}

static int parse_range(json_object *caps, const char *key, uint64_t min, uint64_t max,
                       uint64_t *out, struct vu_err *err)
{
    json_object *o;
    if (!json_object_object_get_ex(caps, key, &o))
        return 0;
    uint64_t v;
    int r = get_u64(o, key, &v, err);
    if (r)
        return r;
    if (v < min || v > max)
        return vu_fail(err, -EINVAL, "capabilities: \"%s\" %" PRIu64 " not in %" PRIu64
                       "..%" PRIu64, key, v, min, max);
    *out = v;
    return 0;
}

static int parse_migration(json_object *caps, struct vu_caps *out, struct vu_err *err)
{
    json_object *mig, *o;
    if (!json_object_object_get_ex(caps, "migration", &mig))
        return 0;
    if (!json_object_is_type(mig, json_type_object))
        return vu_fail(err, -EINVAL, "capabilities: \"migration\" is not an object");
    out->has_migration = true;
    if (json_object_object_get_ex(mig, "pgsize", &o)) {
        uint64_t v;
        int r = get_u64(o, "migration.pgsize", &v, err);
        if (r)
            return r;
        if (v == 0 || v % 4096)
            return vu_fail(err, -EINVAL, "capabilities: \"migration.pgsize\" %" PRIu64
                           " is not a multiple of 4096", v);
        out->migration_pgsize = v;
    }
    if (json_object_object_get_ex(mig, "max_bitmap_size", &o)) {
        uint64_t v;
        int r = get_u64(o, "migration.max_bitmap_size", &v, err);
        if (r)
            return r;
        if (v > MIG_MAX_BITMAP)
            return vu_fail(err, -EINVAL, "capabilities: \"migration.max_bitmap_size\" %" PRIu64
                           " exceeds %llu", v, MIG_MAX_BITMAP);
        out->migration_max_bitmap_size = v;
    }
    return 0;
}

static int parse_caps_object(json_object *root, struct vu_caps *out, struct vu_err *err)
{
    json_object *caps, *o;
    if (!json_object_is_type(root, json_type_object))
        return vu_fail(err, -EINVAL, "capabilities: JSON is not an object");
    if (!json_object_object_get_ex(root, "capabilities", &caps))
        return vu_fail(err, -EINVAL, "capabilities: no \"capabilities\" key");
    if (!json_object_is_type(caps, json_type_object))
        return vu_fail(err, -EINVAL, "capabilities: \"capabilities\" is not an object");

    uint64_t v;
    int r;
    v = out->max_msg_fds;
    if ((r = parse_range(caps, "max_msg_fds", 0, MAX_MSG_FDS_ACCEPTED, &v, err)))
        return r;
    out->max_msg_fds = (uint32_t)v;
    if ((r = parse_range(caps, "max_data_xfer_size", 1, VU_MAX_DATA_XFER,
                         &out->max_data_xfer_size, err)))
        return r;
    v = out->max_dma_maps;
    if ((r = parse_range(caps, "max_dma_maps", 1, MAX_DMA_MAPS, &v, err)))
        return r;
    out->max_dma_maps = (uint32_t)v;
    if ((r = parse_range(caps, "pgsizes", 1, UINT64_MAX, &out->pgsizes, err)))
        return r;
    if (out->pgsizes & 4095)
        return vu_fail(err, -EINVAL, "capabilities: \"pgsizes\" 0x%" PRIx64
                       " has bits below 4 KiB", out->pgsizes);
    if (json_object_object_get_ex(caps, "write_multiple", &o) &&
        (r = get_bool(o, "write_multiple", &out->write_multiple, err)))
        return r;
    if (json_object_object_get_ex(caps, "twin_socket", &o)) {
        json_object *s;
        if (!json_object_is_type(o, json_type_object))
            return vu_fail(err, -EINVAL, "capabilities: \"twin_socket\" is not an object");
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

int vu_caps_parse(const char *json, size_t json_len, struct vu_caps *out, struct vu_err *err)
{
    vu_caps_defaults(out);
    if (!json)
        return vu_fail(err, -EINVAL, "capabilities: no JSON");
    if (json_len > VU_MAX_JSON)
        return vu_fail(err, -E2BIG, "capabilities: JSON of %zu bytes exceeds %u", json_len,
                       VU_MAX_JSON);
    if (memchr(json, '\0', json_len))
        return vu_fail(err, -EINVAL, "capabilities: NUL byte inside the JSON");

    json_tokener *tok = json_tokener_new_ex(JSON_DEPTH);
    if (!tok)
        return vu_fail(err, -ENOMEM, "capabilities: no memory for the JSON parser");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *root = json_tokener_parse_ex(tok, json, (int)json_len);
    enum json_tokener_error te = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    int r = 0;
    if (!root || te != json_tokener_success) {
        /* An incomplete document is "continue" with no object. */
        r = vu_fail(err, -EINVAL, "capabilities: bad JSON: %s",
                    te == json_tokener_continue ? "incomplete" : json_tokener_error_desc(te));
        goto out;
    }
    for (size_t i = end; i < json_len; i++) {
        char ch = json[i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
            r = vu_fail(err, -EINVAL, "capabilities: trailing bytes after the JSON at %zu", i);
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
    bool ok = put(buf, bufsz, &pos,
                  "{\"capabilities\":{\"max_msg_fds\":%" PRIu32 ",\"max_data_xfer_size\":%" PRIu64
                  ",\"max_dma_maps\":%" PRIu32 ",\"pgsizes\":%" PRIu64,
                  caps->max_msg_fds, caps->max_data_xfer_size, caps->max_dma_maps,
                  caps->pgsizes);
    if (ok && caps->write_multiple)
        ok = put(buf, bufsz, &pos, ",\"write_multiple\":true");
    if (ok && caps->twin_socket)
        ok = put(buf, bufsz, &pos, ",\"twin_socket\":{\"supported\":true}");
    if (ok && caps->has_migration) {
        ok = put(buf, bufsz, &pos, ",\"migration\":{");
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

int vu_version_answer(const struct vu_msg *req, const struct vu_caps *server,
                      struct vu_caps *client_out, struct vu_caps *agreed, char *reply_json,
                      size_t reply_json_sz, size_t *reply_len, struct vu_err *err)
{
    struct vu_version_req v;
    struct vu_caps client;
    int r = vu_decode_version(req, &v, err);
    if (r)
        return r;
    if (v.major != 0)
        return vu_fail(err, -ENOTSUP, "VERSION: major %u not supported (only 0)", v.major);
    if (v.json) {
        if ((r = vu_caps_parse(v.json, v.json_len, &client, err)))
            return r;
    } else {
        vu_caps_defaults(&client);
    }

    /* The reply: the server's own values; optional keys only where they make
     * sense for this client; never a twin socket. */
    struct vu_caps ans = *server;
    ans.twin_socket = false;
    ans.has_migration = server->has_migration && client.has_migration;
    if (ans.has_migration && client.migration_pgsize &&
        (ans.migration_pgsize == 0 || client.migration_pgsize < ans.migration_pgsize))
        ans.migration_pgsize = client.migration_pgsize;

    /* Whole reply (16 + 4 + JSON with NUL) <= the request message: QEMU
     * receives the reply into its request buffer. QEMU always sends JSON; a
     * client that sent none (the spec makes it optional) set no such bound,
     * and gets the full answer rather than a refusal. */
    size_t room = v.json ? req->hdr.msg_size - VU_HDR_SIZE - sizeof(struct vu_version)
                         : reply_json_sz;
    if (room > reply_json_sz)
        room = reply_json_sz;
    ssize_t n;
    for (;;) {
        n = vu_caps_emit(&ans, reply_json, room);
        if (n >= 0)
            break;
        if (ans.write_multiple)
            ans.write_multiple = false;
        else if (ans.has_migration)
            ans.has_migration = false;
        else
            return vu_fail(err, -ENOSPC, "VERSION: reply JSON does not fit in %zu bytes", room);
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
        agreed->migration_max_bitmap_size = ans.has_migration
                                                ? client.migration_max_bitmap_size
                                                : 0;
        if (!ans.has_migration)
            agreed->migration_pgsize = 0;
    }
    return 0;
}
