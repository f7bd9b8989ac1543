/* SPDX-License-Identifier: MIT */
/* Policy file: parsing, defaults, matching, decisions and every error. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_sysfs.h"
#include "policy.h"
#include "testutil.h"

static uid_t uid_of(const char *name)
{
    struct passwd *pw = getpwnam(name);
    assert_non_null(pw);
    return pw->pw_uid;
}

static gid_t pgid_of(const char *name)
{
    struct passwd *pw = getpwnam(name);
    assert_non_null(pw);
    return pw->pw_gid;
}

static gid_t gid_of(const char *name)
{
    struct group *gr = getgrnam(name);
    assert_non_null(gr);
    return gr->gr_gid;
}

static struct pol *load_ok(const char *text)
{
    struct pol *p = NULL;
    struct vub_err err = { { 0 } };
    int r = pol_load_string("ok.json", text, strlen(text), &p, &err);
    if (r != 0)
        fail_msg("unexpected failure %d: %s", r, err.msg);
    assert_non_null(p);
    return p;
}

/* Load must fail with errnum and a message containing every given piece. */
static void load_fails(const char *text, int errnum, ...)
{
    struct pol *p = (struct pol *)0x1;
    struct vub_err err = { { 0 } };
    int r = pol_load_string("bad.json", text, strlen(text), &p, &err);
    assert_null(p);
    if (r != -errnum)
        fail_msg("expected %d, got %d (%s) for: %s", -errnum, r, err.msg, text);
    /* every message starts with the file name */
    if (strncmp(err.msg, "bad.json: ", 10) != 0)
        fail_msg("message does not start with the file name: %s", err.msg);
    va_list ap;
    va_start(ap, errnum);
    const char *piece;
    while ((piece = va_arg(ap, const char *)) != NULL)
        if (!strstr(err.msg, piece))
            fail_msg("message \"%s\" lacks \"%s\"", err.msg, piece);
    va_end(ap);
}

static struct pol_ident ident(const char *addr, uint16_t v, uint16_t d, uint32_t cls)
{
    struct pol_ident id;
    memset(&id, 0, sizeof(id));
    assert_int_equal(hv_pci_addr_parse(addr, id.addr), 0);
    id.vendor = v;
    id.device = d;
    id.class_code = cls;
    return id;
}

/* ---- a complete policy ------------------------------------------------------- */

static const char *full_policy =
    "{\n"
    "  \"version\": 1,\n"
    "  \"comment\": \"example\",\n"
    "  \"defaults\": {\n"
    "    \"socket_owner\": \"root\",\n"
    "    \"socket_group\": \"nogroup\",\n"
    "    \"socket_mode\": \"0660\",\n"
    "    \"allow_uids\": [\"nobody\", 4242],\n"
    "    \"reset_on_disconnect\": true\n"
    "  },\n"
    "  \"devices\": [\n"
    "    { \"match\": { \"address\": \"01:00.0\" }, \"socket\": \"/run/x/{address}.s\",\n"
    "      \"no_mmap\": true, \"allow_gids\": [\"kvm\", \"77\"], \"allow_uids\": [] },\n"
    "    { \"match\": { \"id\": \"1234:11e8\" }, \"sparse_msix\": true, \"bind\": true,\n"
    "      \"user\": \"nobody\", \"reset_on_disconnect\": false },\n"
    "    { \"match\": { \"id\": \"8086:*\", \"class\": \"0x0108\" }, \"socket_mode\": \"0600\",\n"
    "      \"msix_mmap\": \"kernel\" },\n"
    "    { \"match\": { \"class\": \"03\" }, \"export\": false },\n"
    "    { \"match\": { \"class\": \"030000\" } },\n"
    "    { \"match\": { \"address\": \"0000:02:00.1\" }, \"user\": 4321, \"user_group\": 99 }\n"
    "  ]\n"
    "}\n";

static void test_full_policy(void **state)
{
    (void)state;
    struct pol *p = load_ok(full_policy);
    assert_int_equal(p->version, 1);
    assert_int_equal(p->n_entries, 6);

    /* defaults */
    const struct pol_settings *d = &p->defaults;
    assert_true(d->owner_set && d->group_set && d->mode_set);
    assert_int_equal(d->socket_owner, 0);
    assert_int_equal(d->socket_group, gid_of("nogroup"));
    assert_int_equal(d->socket_mode, 0660);
    assert_int_equal(d->n_uids, 2);
    assert_int_equal(d->allow_uids[0], uid_of("nobody"));
    assert_int_equal(d->allow_uids[1], 4242);
    assert_false(d->no_mmap);

    /* entry 0 inherits owner/group/mode, overrides the lists */
    const struct pol_entry *e = &p->entries[0];
    assert_int_equal(e->index, 0);
    assert_true(e->export_);
    assert_int_equal(e->match.keys, POL_MATCH_ADDR);
    assert_string_equal(e->match.addr, "0000:01:00.0");
    assert_string_equal(e->s.socket, "/run/x/{address}.s");
    assert_true(e->s.no_mmap);
    assert_int_equal(e->s.socket_mode, 0660);
    assert_int_equal(e->s.socket_group, gid_of("nogroup"));
    assert_int_equal(e->s.n_uids, 0);
    assert_int_equal(e->s.n_gids, 2);
    assert_int_equal(e->s.allow_gids[0], gid_of("kvm"));
    assert_int_equal(e->s.allow_gids[1], 77);
    assert_true(e->s.reset_on_disconnect);

    e = &p->entries[1];
    assert_int_equal(e->match.keys, POL_MATCH_ID);
    assert_int_equal(e->match.vendor, 0x1234);
    assert_int_equal(e->match.device, 0x11e8);
    assert_true(e->s.sparse_msix && e->s.bind);
    assert_false(e->s.msix_mmap_kernel);
    assert_true(p->entries[2].s.msix_mmap_kernel);
    assert_true(e->s.user_set);
    assert_int_equal(e->s.user_uid, uid_of("nobody"));
    assert_int_equal(e->s.user_gid, pgid_of("nobody"));
    assert_string_equal(e->s.user_name, "nobody");
    assert_false(e->s.reset_on_disconnect);
    assert_int_equal(e->s.n_uids, 2);   /* inherited */

    e = &p->entries[2];
    assert_int_equal(e->match.keys, POL_MATCH_ID | POL_MATCH_CLASS);
    assert_int_equal(e->match.device, -1);
    assert_int_equal(e->match.class_code, 0x010800);
    assert_int_equal(e->match.class_mask, 0xffff00);
    assert_int_equal(e->s.socket_mode, 0600);

    assert_false(p->entries[3].export_);
    assert_int_equal(p->entries[3].match.class_mask, 0xff0000);

    e = &p->entries[5];
    assert_int_equal(e->s.user_uid, 4321);
    assert_int_equal(e->s.user_gid, 99);
    pol_free(p);
}

static void test_matching(void **state)
{
    (void)state;
    struct pol *p = load_ok(full_policy);
    struct pol_ident id;

    /* by address: whatever the ids */
    id = ident("0000:01:00.0", 0xabcd, 0x1, 0x020000);
    assert_ptr_equal(pol_lookup(p, &id), &p->entries[0]);
    /* by id, on any address */
    id = ident("0000:05:00.0", 0x1234, 0x11e8, 0x00ff00);
    assert_ptr_equal(pol_lookup(p, &id), &p->entries[1]);
    /* same vendor, other device: no */
    id = ident("0000:05:00.0", 0x1234, 0x11e9, 0x00ff00);
    assert_null(pol_lookup(p, &id));
    /* id wildcard AND class prefix: both must hold */
    id = ident("0000:06:00.0", 0x8086, 0x0953, 0x010802);
    assert_ptr_equal(pol_lookup(p, &id), &p->entries[2]);
    id = ident("0000:06:00.0", 0x8086, 0x0953, 0x010600);
    assert_null(pol_lookup(p, &id));
    id = ident("0000:06:00.0", 0x8087, 0x0953, 0x010802);
    assert_null(pol_lookup(p, &id));
    /* first match wins: a display controller is excluded by entry 3 even
     * though entry 4 would export it */
    id = ident("0000:07:00.0", 0x10de, 0x1, 0x030000);
    assert_ptr_equal(pol_lookup(p, &id), &p->entries[3]);
    /* the address entry comes first, so it wins over the class exclusion */
    id = ident("0000:01:00.0", 0x10de, 0x1, 0x030000);
    assert_ptr_equal(pol_lookup(p, &id), &p->entries[0]);
    pol_free(p);
}

static void test_decide(void **state)
{
    (void)state;
    struct pol *p = load_ok(full_policy);
    struct pol_decision d;
    struct vub_err err = { { 0 } };
    struct pol_ident id;

    id = ident("0000:01:00.0", 1, 2, 0);
    assert_int_equal(pol_decide(p, &id, &d, &err), 0);
    assert_true(d.exported);
    assert_string_equal(d.socket, "/run/x/0000:01:00.0.s");

    id = ident("0000:05:00.0", 0x1234, 0x11e8, 0);
    assert_int_equal(pol_decide(p, &id, &d, &err), 0);
    assert_true(d.exported);
    assert_string_equal(d.socket, POL_DEFAULT_SOCKET_DIR "/0000:05:00.0.sock");

    id = ident("0000:07:00.0", 0x10de, 1, 0x030000);
    assert_int_equal(pol_decide(p, &id, &d, &err), 0);
    assert_non_null(d.entry);
    assert_false(d.exported);
    assert_string_equal(d.socket, "");

    id = ident("0000:08:00.0", 0xffff, 1, 0x0c0330);
    assert_int_equal(pol_decide(p, &id, &d, &err), 0);
    assert_null(d.entry);
    assert_false(d.exported);
    pol_free(p);
}

static void test_defaults_without_defaults(void **state)
{
    (void)state;
    struct pol *p = load_ok("{\"devices\":[{\"match\":{\"address\":\"0000:00:03.0\"}}]}");
    const struct pol_entry *e = &p->entries[0];
    assert_false(e->s.owner_set || e->s.group_set || e->s.mode_set || e->s.user_set);
    assert_int_equal(e->s.socket_mode, POL_DEFAULT_SOCKET_MODE);
    assert_true(e->s.reset_on_disconnect);
    assert_false(e->s.no_mmap || e->s.sparse_msix || e->s.bind);
    assert_int_equal(e->s.n_uids + e->s.n_gids, 0);
    pol_free(p);

    /* an empty list is valid and exports nothing */
    p = load_ok("{\"devices\":[]}");
    struct pol_ident id = ident("0000:00:03.0", 1, 1, 0);
    assert_null(pol_lookup(p, &id));
    pol_free(p);
}

/* The pinned-memory cap and the handshake deadline, in defaults and per entry. */
static void test_limits_keys(void **state)
{
    (void)state;
    struct pol *p = load_ok(
        "{\"defaults\": {\"max_dma_bytes\": \"64G\", \"handshake_timeout_ms\": 2000},"
        " \"devices\": [{\"match\": {\"address\": \"0000:00:03.0\"}},"
        "               {\"match\": {\"address\": \"0000:00:04.0\"},"
        "                \"max_dma_bytes\": 1048576}]}");
    const struct pol_entry *e = &p->entries[0];
    assert_true(e->s.max_dma_bytes_set);
    assert_int_equal(e->s.max_dma_bytes, 64ull << 30);
    assert_int_equal(e->s.handshake_timeout_ms, 2000);
    e = &p->entries[1];
    assert_int_equal(e->s.max_dma_bytes, 1u << 20);
    assert_int_equal(e->s.handshake_timeout_ms, 2000);
    pol_free(p);
    p = load_ok("{\"devices\":[{\"match\":{\"address\":\"0000:00:03.0\"}}]}");
    assert_false(p->entries[0].s.max_dma_bytes_set);
    assert_int_equal(p->entries[0].s.handshake_timeout_ms, 0);
    pol_free(p);
    load_fails("{\"defaults\": {\"max_dma_bytes\": 0}, \"devices\": []}", EINVAL,
               "defaults.max_dma_bytes", "positive", NULL);
    load_fails("{\"defaults\": {\"max_dma_bytes\": \"lots\"}, \"devices\": []}", EINVAL,
               "is not a size", NULL);
    load_fails("{\"defaults\": {\"max_dma_bytes\": \"99999999999T\"}, \"devices\": []}",
               EINVAL, "is not a size", NULL);
    load_fails("{\"defaults\": {\"handshake_timeout_ms\": 0}, \"devices\": []}", EINVAL,
               "handshake_timeout_ms", "milliseconds", NULL);
    load_fails("{\"defaults\": {\"handshake_timeout_ms\": \"10\"}, \"devices\": []}",
               EINVAL, "milliseconds", NULL);
    /* group_clients: defaults, an entry's own, unset */
    p = load_ok("{\"defaults\": {\"group_clients\": \"any\"},"
                " \"devices\": [{\"match\": {\"address\": \"0000:00:03.0\"}},"
                "               {\"match\": {\"address\": \"0000:00:04.0\"},"
                "                \"group_clients\": \"same-uid\"}]}");
    assert_true(p->entries[0].s.group_clients_set);
    assert_int_equal(p->entries[0].s.group_clients, POL_GROUP_CLIENTS_ANY);
    assert_int_equal(p->entries[1].s.group_clients, POL_GROUP_CLIENTS_SAME_UID);
    pol_free(p);
    p = load_ok("{\"devices\":[{\"match\":{\"address\":\"0000:00:03.0\"}}]}");
    assert_false(p->entries[0].s.group_clients_set);
    pol_free(p);
    load_fails("{\"devices\": [{\"match\": {\"address\": \"0000:00:03.0\"},"
               " \"group_clients\": \"vm\"}]}", EINVAL, "devices[0].group_clients",
               "\"same-vm\", \"same-uid\" or \"any\", not \"vm\"", NULL);
    load_fails("{\"defaults\": {\"group_clients\": 1}, \"devices\": []}", EINVAL,
               "defaults.group_clients", NULL);
}

/* ---- syntax errors: file, line and column ----------------------------------------- */

static void test_syntax_errors(void **state)
{
    (void)state;
    /* missing comma between members on line 3 */
    load_fails("{\n  \"version\": 1\n  \"devices\": []\n}\n", EINVAL, "line 3, column 3: ",
               "JSON syntax error", NULL);
    /* truncated */
    load_fails("{\n  \"devices\": [\n", EINVAL, "unexpected end of file", "line 3, column 1: ", NULL);
    /* trailing garbage after the object (strict mode) */
    load_fails("{\"devices\": []}\nxyz\n", EINVAL, "line 2, column 1: ", "JSON syntax error",
               NULL);
    /* comments are not JSON */
    load_fails("{\n/* hi */ \"devices\": []}", EINVAL, "line 2, column 1: ", NULL);
    /* a bad token deeper in */
    load_fails("{\n\n  \"devices\": [ tru ]}", EINVAL, "line 3, column 19: ", "boolean expected", NULL);
    load_fails("", EINVAL, "unexpected end of file", "line 1, column 1: ", NULL);
    /* NUL inside the text */
    struct pol *p = NULL;
    struct vub_err err = { { 0 } };
    assert_int_equal(pol_load_string("nul.json", "{}\0{}", 5, &p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "nul.json: "));
    assert_non_null(strstr(err.msg, "NUL"));
}

/* ---- semantic errors: file, JSON path and what is wrong ----------------------------- */

#define DEV(x) "{\"devices\":[{\"match\":{\"address\":\"0000:00:03.0\"}}, {\"match\":" \
               "{\"address\":\"0000:00:04.0\"}, " x "}]}"

/* trace, trace_data and inject (docs/testing-clients.md): checked when loaded */
static void test_testing_keys(void **state)
{
    (void)state;
    struct pol *p = load_ok("{\"defaults\": {\"trace\": \"/var/tmp/t.jsonl\"}, \"devices\": ["
                            "{\"match\": {\"address\": \"0000:00:03.0\"}, \"trace_data\": true,"
                            " \"inject\": [\"GET_REGION_INFO:region=0=errno=EIO\","
                            " \"DEVICE_RESET=close\"]}]}");
    const struct pol_settings *s = &p->entries[0].s;
    assert_string_equal(s->trace, "/var/tmp/t.jsonl");   /* from defaults */
    assert_true(s->trace_data);
    assert_int_equal(s->n_inject, 2);
    assert_string_equal(s->inject[1], "DEVICE_RESET=close");
    assert_int_equal(p->defaults.n_inject, 0);
    pol_free(p);
    load_fails("{\"defaults\": {\"trace\": \"t.jsonl\"}, \"devices\": []}", EINVAL,
               "defaults.trace: \"t.jsonl\" is not an absolute path", NULL);
    load_fails("{\"defaults\": {\"inject\": \"DEVICE_RESET=close\"}, \"devices\": []}", EINVAL,
               "defaults.inject: must be an array", NULL);
    load_fails("{\"defaults\": {\"inject\": [\"DEVICE_RESET=close\", \"REGION_READ:index=1=drop\"]},"
               " \"devices\": []}", EINVAL, "defaults.inject[1]: --inject REGION_READ:index=1=drop: "
               "index= applies to", NULL);
    load_fails("{\"defaults\": {\"inject\": [1]}, \"devices\": []}", EINVAL,
               "defaults.inject[0]: must be a string", NULL);
    load_fails("{\"defaults\": {\"inject\": [\"ANY=drop\",\"ANY=drop\",\"ANY=drop\",\"ANY=drop\","
               "\"ANY=drop\",\"ANY=drop\",\"ANY=drop\",\"ANY=drop\",\"ANY=drop\"]}, \"devices\": []}",
               EINVAL, "9 rules; at most 8", NULL);
}

static void test_semantic_errors(void **state)
{
    (void)state;
    load_fails("[]", EINVAL, "must be a JSON object", NULL);
    load_fails("{}", EINVAL, "no \"devices\"", NULL);
    load_fails("{\"version\": 2, \"devices\": []}", EINVAL, "version:", "unsupported version 2",
               NULL);
    load_fails("{\"devices\": {}}", EINVAL, "devices: must be an array, not an object", NULL);
    load_fails("{\"devices\": [], \"device\": 1}", EINVAL, "device: unknown key \"device\"",
               NULL);
    load_fails("{\"defaults\": {\"socket_mod\": \"0600\"}, \"devices\": []}", EINVAL,
               "defaults.socket_mod: unknown key", NULL);
    load_fails("{\"defaults\": {\"match\": {}}, \"devices\": []}", EINVAL,
               "defaults.match: unknown key", NULL);
    load_fails("{\"defaults\": [], \"devices\": []}", EINVAL,
               "defaults: must be an object, not an array", NULL);
    load_fails(DEV("\"nommap\": true"), EINVAL, "devices[1].nommap: unknown key \"nommap\"",
               NULL);
    load_fails("{\"devices\": [1]}", EINVAL, "devices[0]: must be an object, not a number", NULL);
    load_fails("{\"devices\": [{}]}", EINVAL, "devices[0]: has no \"match\"", NULL);
    load_fails("{\"devices\": [{\"match\": {}}]}", EINVAL, "devices[0].match: matches nothing",
               NULL);
    load_fails("{\"devices\": [{\"match\": \"0000:00:03.0\"}]}", EINVAL,
               "devices[0].match: must be an object", NULL);
    load_fails("{\"devices\": [{\"match\": {\"vendor\": \"8086\"}}]}", EINVAL,
               "devices[0].match.vendor: unknown key", NULL);
    load_fails("{\"devices\": [{\"match\": {\"address\": \"1:0.0\"}}]}", EINVAL,
               "devices[0].match.address: \"1:0.0\" is not a PCI address", NULL);
    load_fails("{\"devices\": [{\"match\": {\"address\": \"0000:00:20.0\"}}]}", EINVAL,
               "devices[0].match.address", NULL);
    load_fails("{\"devices\": [{\"match\": {\"address\": 3}}]}", EINVAL,
               "devices[0].match.address: must be a string, not a number", NULL);
    load_fails("{\"devices\": [{\"match\": {\"id\": \"8086\"}}]}", EINVAL,
               "devices[0].match.id: \"8086\" is not \"vendor:device\"", NULL);
    load_fails("{\"devices\": [{\"match\": {\"id\": \"8086:12345\"}}]}", EINVAL,
               "devices[0].match.id", NULL);
    load_fails("{\"devices\": [{\"match\": {\"class\": \"010\"}}]}", EINVAL,
               "devices[0].match.class: \"010\" is not a class code", NULL);
    load_fails(DEV("\"export\": 1"), EINVAL, "devices[1].export: must be true or false", NULL);
    load_fails(DEV("\"msix_mmap\": \"whole\""), EINVAL,
               "devices[1].msix_mmap: must be \"sparse\" or \"kernel\"", NULL);

    /* socket, owner, group, mode */
    load_fails(DEV("\"socket_mode\": \"999\""), EINVAL, "devices[1].socket_mode",
               "\"999\" is not an octal mode", NULL);
    load_fails(DEV("\"socket_mode\": 660"), EINVAL, "devices[1].socket_mode",
               "must be an octal string", NULL);
    load_fails(DEV("\"socket_mode\": \"4770\""), EINVAL, "devices[1].socket_mode", "setuid",
               NULL);
    load_fails(DEV("\"socket_mode\": \"0460\""), EINVAL, "devices[1].socket_mode",
               "owner needs write permission", NULL);
    load_fails(DEV("\"socket\": \"run/x.sock\""), EINVAL, "devices[1].socket",
               "not an absolute path", NULL);
    load_fails(DEV("\"socket\": \"/run/vfio-user/\""), EINVAL, "devices[1].socket",
               "names a directory", NULL);
    char longsock[300];
    snprintf(longsock, sizeof(longsock), DEV("\"socket\": \"/run/%0100d/{address}\""), 0);
    load_fails(longsock, ENAMETOOLONG, "devices[1].socket", "at most 107", NULL);
    load_fails(DEV("\"socket_owner\": \"no-such-user-xyz\""), EINVAL, "devices[1].socket_owner",
               "no such user \"no-such-user-xyz\"", NULL);
    load_fails(DEV("\"socket_group\": \"no-such-group-xyz\""), EINVAL,
               "devices[1].socket_group", "no such group", NULL);
    load_fails(DEV("\"socket_group\": -5"), EINVAL, "devices[1].socket_group", "out of range",
               NULL);
    load_fails(DEV("\"socket_owner\": 4294967295"), EINVAL, "devices[1].socket_owner",
               "out of range", NULL);
    load_fails(DEV("\"socket_group\": true"), EINVAL, "devices[1].socket_group",
               "must be a group name or a gid", NULL);

    /* allow-lists */
    load_fails(DEV("\"allow_uids\": \"root\""), EINVAL, "devices[1].allow_uids",
               "must be an array", NULL);
    load_fails(DEV("\"allow_uids\": [0, 1, \"no-such-user-xyz\"]"), EINVAL,
               "devices[1].allow_uids[2]: no such user", NULL);
    load_fails(DEV("\"allow_gids\": [0, 1.5]"), EINVAL, "devices[1].allow_gids[1]",
               "not a number with a fraction", NULL);
    char big[2048];
    int n = snprintf(big, sizeof(big), "{\"devices\":[{\"match\":{\"class\":\"01\"},"
                                       "\"allow_uids\":[");
    for (unsigned i = 0; i <= POL_MAX_PEERS; i++)
        n += snprintf(big + n, sizeof(big) - (size_t)n, "%s%u", i ? "," : "", i);
    snprintf(big + n, sizeof(big) - (size_t)n, "]}]}");
    load_fails(big, E2BIG, "devices[0].allow_uids", "65 entries; at most 64", NULL);

    /* user */
    load_fails(DEV("\"user\": \"root\""), EINVAL, "devices[1].user", "root makes no sense",
               NULL);
    load_fails(DEV("\"user\": 0"), EINVAL, "devices[1].user", NULL);
    load_fails(DEV("\"user\": 54321"), EINVAL, "devices[1].user", "give \"user_group\"", NULL);
    load_fails(DEV("\"user_group\": \"nogroup\""), EINVAL, "devices[1].user_group",
               "together with \"user\"", NULL);
    load_fails(DEV("\"no_mmap\": \"yes\""), EINVAL, "devices[1].no_mmap",
               "must be true or false, not a string", NULL);
}

static void test_too_many_devices(void **state)
{
    (void)state;
    size_t cap = 64 * (POL_MAX_DEVICES + 2);
    char *t = malloc(cap);
    assert_non_null(t);
    size_t n = (size_t)snprintf(t, cap, "{\"devices\":[");
    for (unsigned i = 0; i <= POL_MAX_DEVICES; i++)
        n += (size_t)snprintf(t + n, cap - n, "%s{\"match\":{\"class\":\"01\"}}", i ? "," : "");
    snprintf(t + n, cap - n, "]}");
    load_fails(t, E2BIG, "devices: 257 entries; at most 256", NULL);
    free(t);
}

/* ---- files ------------------------------------------------------------------------- */

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/vub-pol-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[PATH_MAX];
    struct pol *p = NULL;
    struct vub_err err = { { 0 } };
    int fds = tu_count_fds();

    snprintf(path, sizeof(path), "%s/missing.json", dir);
    assert_int_equal(pol_load_file(path, &p, &err), -ENOENT);
    assert_null(p);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "No such file"));

    /* a syntax error in a real file names that file and the line */
    snprintf(path, sizeof(path), "%s/policy.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\n  \"devices\": [\n    { \"match\": { \"class\": \"01\" }, }\n  ]\n}\n", f);
    fclose(f);
    assert_int_equal(pol_load_file(path, &p, &err), -EINVAL);
    char want[PATH_MAX + 32];
    snprintf(want, sizeof(want), "%s: line 3,", path);
    if (!strstr(err.msg, want))
        fail_msg("\"%s\" lacks \"%s\"", err.msg, want);

    /* a valid file */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"devices\": [{\"match\": {\"class\": \"01\"}, \"no_mmap\": true}]}", f);
    fclose(f);
    assert_int_equal(pol_load_file(path, &p, &err), 0);
    assert_string_equal(p->path, path);
    assert_true(p->entries[0].s.no_mmap);
    pol_free(p);
    p = NULL;

    /* semantic errors in a real file name the file and the key */
    f = fopen(path, "w");
    fputs("{\"devices\": [{\"match\": {\"class\": \"01\"}, \"no_mmap\": 1}]}", f);
    fclose(f);
    assert_int_equal(pol_load_file(path, &p, &err), -EINVAL);
    snprintf(want, sizeof(want), "%s: devices[0].no_mmap: ", path);
    if (!strstr(err.msg, want))
        fail_msg("\"%s\" lacks \"%s\"", err.msg, want);

    /* too big */
    assert_int_equal(truncate(path, POL_MAX_FILE_SIZE + 1), 0);
    assert_int_equal(pol_load_file(path, &p, &err), -EFBIG);
    assert_non_null(strstr(err.msg, path));

    /* a directory */
    assert_int_equal(pol_load_file(dir, &p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not a regular file"));

    assert_int_equal(tu_count_fds(), fds);
    unlink(path);
    rmdir(dir);
}

/* ---- sysfs identity -------------------------------------------------------------------- */

static void test_sysfs_ident(void **state)
{
    (void)state;
    struct fake_sysfs fs;
    assert_int_equal(fake_sysfs_init(&fs), 0);
    fs_add_dev(&fs, "0000:00:03.0", "vfio-pci", 3, 0x1234, 0x11e8, 0x00ff00);
    fs_set_attr(&fs, "0000:00:03.0", "device", "0x11E8\n");
    fs_add_dev(&fs, "0000:00:04.0", NULL, 4, 0x1b36, 0x0010, 0x010802);
    fs_set_attr(&fs, "0000:00:04.0", "device", "nonsense\n");
    fs_add_dev(&fs, "10000:e1:00.0", "nvme", 5, 0x8086, 0x0a54, 0x010802);
    const char *root = fs.root;

    struct pol_ident id;
    struct vub_err err = { { 0 } };
    assert_int_equal(pol_ident_from_sysfs(root, "00:03.0", &id, &err), 0);
    assert_string_equal(id.addr, "0000:00:03.0");
    assert_int_equal(id.vendor, 0x1234);
    assert_int_equal(id.device, 0x11e8);
    assert_int_equal(id.class_code, 0x00ff00);
    assert_string_equal(id.driver, "vfio-pci");

    /* a VMD-domain function, named as the kernel names it */
    assert_int_equal(pol_ident_from_sysfs(root, "10000:E1:00.0", &id, &err), 0);
    assert_string_equal(id.addr, "10000:e1:00.0");
    assert_int_equal(id.device, 0x0a54);
    assert_string_equal(id.driver, "nvme");

    assert_int_equal(pol_ident_from_sysfs(root, "0000:00:04.0", &id, &err), -EIO);
    assert_non_null(strstr(err.msg, "0000:00:04.0"));
    assert_non_null(strstr(err.msg, "\"nonsense\""));
    assert_string_equal(id.driver, "");

    assert_int_equal(pol_ident_from_sysfs(root, "0000:00:05.0", &id, &err), -ENODEV);
    assert_non_null(strstr(err.msg, "no such PCI function"));
    assert_int_equal(pol_ident_from_sysfs(root, "bogus", &id, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "\"bogus\""));
    fake_sysfs_destroy(&fs);
}

/* The example installed with the docs must load and mean what it says. */
static void test_example_policy(void **state)
{
    (void)state;
    if (!getgrnam("kvm")) {
        print_message("SKIP: the example names group kvm, which this system lacks\n");
        skip();
    }
    struct pol *p = NULL;
    struct vub_err err = { { 0 } };
    int r = pol_load_file(EXAMPLE_POLICY, &p, &err);
    if (r != 0)
        fail_msg("%s", err.msg);
    struct pol_decision d;
    struct pol_ident id = ident("0000:01:00.0", 0x8086, 0x0953, 0x010802);
    assert_int_equal(pol_decide(p, &id, &d, &err), 0);
    assert_true(d.exported);
    assert_int_equal(d.entry->s.n_uids, 1);
    assert_int_equal(d.entry->s.socket_mode, 0660);
    assert_int_equal(d.entry->s.socket_group, gid_of("kvm"));
    assert_string_equal(d.socket, "/run/vfio-user/0000:01:00.0.sock");
    assert_true(d.entry->s.max_dma_bytes_set);
    assert_int_equal(d.entry->s.max_dma_bytes, 96ull << 30);
    assert_int_equal(d.entry->s.handshake_timeout_ms, 5000);
    id = ident("0000:02:00.0", 0x8086, 0x0953, 0x010802);
    assert_int_equal(pol_decide(p, &id, &d, &err), 0);
    assert_true(d.exported && d.entry->s.bind && d.entry->s.user_set && d.entry->s.sparse_msix);
    assert_string_equal(d.socket, "/run/vfio-user/nvme-0000:02:00.0.sock");
    assert_false(d.entry->s.max_dma_bytes_set);
    id = ident("0000:03:00.0", 0x8086, 0x15e9, 0x0c0330);
    assert_int_equal(pol_decide(p, &id, &d, &err), 0);
    assert_false(d.exported);
    id = ident("0000:00:03.0", 0x1234, 0x11e8, 0x00ff00);
    assert_int_equal(pol_decide(p, &id, &d, &err), 0);
    assert_true(d.exported && d.entry->s.no_mmap);
    pol_free(p);
}

/* The "address" key takes what host-vfio takes (hv_pci_addr_parse), VMD
 * domains included, and canonicalises it. */
static void test_match_address_grammar(void **state)
{
    (void)state;
    struct pol *p = load_ok("{\"devices\":[{\"match\":{\"address\":\"10000:E1:00.0\"}},"
                            "{\"match\":{\"address\":\"AB:1F.7\"}}]}");
    assert_string_equal(p->entries[0].match.addr, "10000:e1:00.0");
    assert_string_equal(p->entries[1].match.addr, "0000:ab:1f.7");
    struct pol_ident id = ident("10000:e1:00.0", 0x8086, 0x0a54, 0x010802);
    const struct pol_entry *e = pol_lookup(p, &id);
    assert_non_null(e);
    assert_int_equal(e->index, 0);
    pol_free(p);
    const char *bad[] = { "0000:01:00.8", "0000:01:20.0", "0000-01:00.0", "0000:01:00.0 ", "",
                          "1234567:01:00.0" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[160];
        snprintf(text, sizeof(text), "{\"devices\":[{\"match\":{\"address\":\"%s\"}}]}",
                 bad[i]);
        load_fails(text, EINVAL, "devices[0].match.address", "is not a PCI address", NULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_policy),
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_defaults_without_defaults),
        cmocka_unit_test(test_limits_keys),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_semantic_errors),
        cmocka_unit_test(test_testing_keys),
        cmocka_unit_test(test_too_many_devices),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_sysfs_ident),
        cmocka_unit_test(test_example_policy),
        cmocka_unit_test(test_match_address_grammar),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
