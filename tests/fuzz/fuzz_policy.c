/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the export policy parser (bridge/policy.c): the input
 * is the bytes of a policy file, as udev's helper and the daemon read it
 * (docs/policy.md). pol_load_string gets exactly the input's bytes, not NUL
 * terminated, so a read past the end is an ASan finding.
 *
 * After each input, checked (a violation traps):
 *   - a refused file: a negative errno and a message that names the file,
 *     NUL-terminated inside its buffer;
 *   - an accepted file: the documented limits hold (entries, allow-lists,
 *     socket template length, mode bits), every entry's match has at least
 *     one key with a valid class mask, and pol_decide on a handful of
 *     functions either refuses with a message or decides consistently
 *     (exported only with an entry that exports; a socket path that fits
 *     sun_path and is absolute);
 *   - hv_pci_addr_parse (the policy's address grammar) on the input's first
 *     line: 0 only for a canonical "dddd:bb:dd.f" in lower-case hex, with 4
 *     to 6 domain digits.
 *
 * Seeds: tests/fuzz/corpus-policy/ (the example policy, docs/policy.md's
 * example, and small valid and invalid files). Build: cmake -DVUB_FUZZ=ON
 * -DCMAKE_C_COMPILER=clang; run tests/fuzz/fuzz_policy (tests/fuzz/README.md).
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define NAME "fuzz.json"

static void check(int ok)
{
    if (!ok)
        __builtin_trap();
}

static void check_msg(const struct vub_err *err)
{
    const char *nul = memchr(err->msg, '\0', sizeof(err->msg));
    check(nul != NULL);
    check(strncmp(err->msg, NAME, strlen(NAME)) == 0);
    /* Not checked: "one line". json-c takes raw control characters inside
     * strings, so a key or value with a newline in it is quoted into the
     * message as it is (found by this target; reported, not fixed here). */
}

static void check_settings(const struct pol_settings *s)
{
    check(memchr(s->socket, '\0', sizeof(s->socket)) != NULL);
    check(s->n_uids <= POL_MAX_PEERS && s->n_gids <= POL_MAX_PEERS);
    if (s->mode_set) {
        check((s->socket_mode & ~0777u) == 0);
        check((s->socket_mode & 0200u) != 0);
    }
    if (s->user_set) {
        check(s->user_uid != 0);
        check(memchr(s->user_name, '\0', sizeof(s->user_name)) != NULL);
    }
}

static void check_match(const struct pol_match *m)
{
    check(m->keys != 0 && (m->keys & ~(POL_MATCH_ADDR | POL_MATCH_ID | POL_MATCH_CLASS)) == 0);
    if (m->keys & POL_MATCH_CLASS) {
        check(m->class_mask == 0xff0000u || m->class_mask == 0xffff00u ||
              m->class_mask == 0xffffffu);
        check((m->class_code & ~m->class_mask) == 0);
    }
    if (m->keys & POL_MATCH_ADDR) {   /* canonical, 4 to 6 domain digits */
        size_t len = strnlen(m->addr, sizeof(m->addr));
        check(len >= 12 && len <= 14);
    }
}

/* Functions to decide for: the addresses, ids and classes the seeds use. */
static const struct pol_ident idents[] = {
    { "0000:01:00.0", 0x8086, 0x0953, 0x010802, "nvme" },
    { "0000:00:03.0", 0x1234, 0x11e8, 0x00ff00, "vfio-pci" },
    { "0000:00:14.0", 0x8086, 0xa36d, 0x0c0330, "xhci_hcd" },
    { "ffff:ff:1f.7", 0xffff, 0xffff, 0xffffff, "" },
};

static void check_decide(const struct pol *p)
{
    for (size_t i = 0; i < sizeof(idents) / sizeof(idents[0]); i++) {
        struct pol_decision d;
        struct vub_err err = { { 0 } };
        int r = pol_decide(p, &idents[i], &d, &err);
        if (r < 0) {
            check_msg(&err);
            continue;
        }
        check(r == 0);
        check(pol_lookup(p, &idents[i]) == d.entry);
        if (!d.entry) {
            check(!d.exported);
            continue;
        }
        check(d.entry >= p->entries && d.entry < p->entries + p->n_entries);
        check(d.exported == d.entry->export_);
        if (d.exported) {
            size_t n = strnlen(d.socket, sizeof(d.socket));
            check(n > 1 && n < sizeof(d.socket) && d.socket[0] == '/');
        }
    }
}

static void check_addr_canon(const uint8_t *data, size_t size)
{
    char in[32], out[POL_ADDR_LEN];
    size_t n = 0;
    while (n < size && n < sizeof(in) - 1 && data[n] != '\n' && data[n] != '\0') {
        in[n] = (char)data[n];
        n++;
    }
    in[n] = '\0';
    if (hv_pci_addr_parse(in, out) != 0)
        return;
    /* "DDDD:bb:dd.f" with 4 to 6 domain digits (VMD domains are 10000+) */
    size_t len = strnlen(out, sizeof(out));
    check(len >= 12 && len <= 14);
    size_t d = len - 8;
    check(out[d] == ':' && out[d + 3] == ':' && out[d + 6] == '.');
    for (size_t i = 0; i < len; i++) {
        if (i == d || i == d + 3 || i == d + 6)
            continue;
        check(isxdigit((unsigned char)out[i]) && !isupper((unsigned char)out[i]));
    }
    check(out[d + 4] <= '1' && out[len - 1] >= '0' && out[len - 1] <= '7');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_addr_canon(data, size);

    struct pol *p = NULL;
    struct vub_err err = { { 0 } };
    int r = pol_load_string(NAME, (const char *)data, size, &p, &err);
    if (r < 0) {
        check(p == NULL);
        check_msg(&err);
        return 0;
    }
    check(r == 0 && p != NULL);
    check(p->n_entries <= POL_MAX_DEVICES);
    check_settings(&p->defaults);
    for (size_t i = 0; i < p->n_entries; i++) {
        check(p->entries[i].index == i);
        check_match(&p->entries[i].match);
        check_settings(&p->entries[i].s);
    }
    check_decide(p);
    pol_free(p);
    return 0;
}
