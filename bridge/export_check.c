/* SPDX-License-Identifier: MIT */
/*
 * vfio-user-export-check - asks the policy whether a PCI function is to be
 * exported. Called by udev/70-vfio-user-bridge.rules:
 *
 *   IMPORT{program}="vfio-user-export-check $kernel"
 *       prints udev properties (KEY=value lines) and exits 0:
 *         VFIO_USER_MATCH=0|1    the policy exports the function (an entry
 *                                matches and does not exclude it)
 *         VFIO_USER_EXPORT=0|1   it is to be served now (MATCH and bound to
 *                                vfio-pci)
 *         VFIO_USER_BIND=0|1     it is to be bound to vfio-pci first
 *                                ("bind": true and bound to something else)
 *         VFIO_USER_SOCKET=path  the socket it will be served on
 *         VFIO_USER_ENTRY=n      the index of the deciding entry
 *         VFIO_USER_GROUP=n      its IOMMU group (exported functions only)
 *         VFIO_USER_UNIT=name    the unit that serves it, to be started now:
 *                                vfio-user-bridge@<address>.service when it
 *                                is the only function of its group the
 *                                policy exports (and EXPORT=1);
 *                                vfio-user-bridge-group@<n>.service when
 *                                the policy exports several, this one is
 *                                bound to vfio-pci and none of them is
 *                                bound to another driver (the first one
 *                                bound starts it; the daemon serves the
 *                                others as they are bound); empty
 *                                otherwise
 *       A missing policy file means "export nothing" (exit 0, MATCH=0); a
 *       broken one (a syntax error, a wrong value, a user or group that
 *       does not exist) is an error (message on stderr, exit 1).
 *   RUN+="vfio-user-export-check --bind $kernel"
 *       binds the function to vfio-pci if the policy says so (exit 0 done or
 *       nothing to do, 1 failure).
 *
 * Options: --policy FILE (default /etc/vfio-user-bridge/policy.json),
 *          --sysfs DIR (default /sys; tests use a fake tree).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hv.h"
#include "policy.h"

#define PROG "vfio-user-export-check"

static void usage(FILE *f)
{
    fprintf(f, "usage: " PROG " [--policy FILE] [--sysfs DIR] [--bind] PCI-ADDRESS\n"
               "Prints udev properties saying whether the vfio-user bridge exports the\n"
               "function; with --bind, binds it to vfio-pci when the policy asks for it.\n");
}

/* udev property values must stay on one line. */
static void print_prop(const char *key, const char *val)
{
    printf("%s=", key);
    for (const char *p = val; *p; p++)
        putchar(*p == '\n' || *p == '\r' ? ' ' : *p);
    putchar('\n');
}

static int do_bind(const char *sysfs, const struct pol_ident *id, const struct pol_decision *d)
{
    if (!d->exported || !d->entry->s.bind) {
        fprintf(stderr, PROG ": %s: the policy does not ask to bind it; nothing done\n",
                id->addr);
        return 0;
    }
    if (strcmp(id->driver, "vfio-pci") == 0)
        return 0;
    struct vub_err err = { { 0 } };
    char prev[64] = "";
    int r = hv_bind_vfio(sysfs, id->addr, prev, sizeof(prev), &err);
    if (r < 0) {
        fprintf(stderr, PROG ": %s: cannot bind to vfio-pci: %s\n", id->addr, err.msg);
        return 1;
    }
    fprintf(stderr, PROG ": %s: bound to vfio-pci (was %s)\n", id->addr,
            prev[0] ? prev : "unbound");
    return 0;
}

/* Which unit serves an exported function: its own, or its group's when the
 * policy exports several functions of the group (one daemon holds a group). */
static int print_unit(const char *sysfs, const struct pol *p, const struct pol_ident *id,
                      bool on_vfio)
{
    struct vub_err err = { { 0 } };
    int number;
    int r = pol_group_of(sysfs, id->addr, &number, &err);
    if (r == -ENOENT) {   /* no IOMMU group: the daemon says why it cannot open it */
        print_prop("VFIO_USER_UNIT", "");
        return 0;
    }
    static struct pol_group g;
    if (r < 0 || (r = pol_group_decide(p, sysfs, number, &g, &err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < g.n; i++)   /* their trouble is their own; this one is judged */
        if (g.m[i].unreadable)
            fprintf(stderr, PROG ": %s: IOMMU group %d: member %s left out: %s\n", id->addr,
                    number, g.m[i].id.addr, g.m[i].why);
    char v[64];
    snprintf(v, sizeof(v), "%d", number);
    print_prop("VFIO_USER_GROUP", v);
    if (g.n_exported > 1) {
        /* the daemon serves the members bound later itself; a member on a
         * host driver would make the kernel refuse the group (not viable) */
        if (on_vfio && g.n_elsewhere == 0)
            snprintf(v, sizeof(v), "vfio-user-bridge-group@%d.service", number);
        else
            v[0] = '\0';
    } else {
        if (on_vfio)
            snprintf(v, sizeof(v), "vfio-user-bridge@%s.service", id->addr);
        else
            v[0] = '\0';
    }
    print_prop("VFIO_USER_UNIT", v);
    return 0;
}

int main(int argc, char **argv)
{
    const char *policy = POL_DEFAULT_PATH, *sysfs = "/sys";
    bool bind = false;
    static const struct option opts[] = {
        { "policy", required_argument, NULL, 'p' },
        { "sysfs", required_argument, NULL, 's' },
        { "bind", no_argument, NULL, 'b' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "p:s:bh", opts, NULL)) != -1) {
        switch (c) {
        case 'p': policy = optarg; break;
        case 's': sysfs = optarg; break;
        case 'b': bind = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf(PROG " " VUB_VERSION "\n"); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }

    struct vub_err err = { { 0 } };
    struct pol_ident id;
    int r = pol_ident_from_sysfs(sysfs, argv[optind], &id, &err);
    if (r < 0) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 1;
    }
    struct pol *p = NULL;
    struct stat st;
    if (stat(policy, &st) < 0 && errno == ENOENT) {
        /* No policy installed: nothing is exported. */
        if (!bind) {
            print_prop("VFIO_USER_MATCH", "0");
            print_prop("VFIO_USER_EXPORT", "0");
            print_prop("VFIO_USER_BIND", "0");
        }
        return 0;
    }
    /* Any other failure is an error, as in the daemon: a file that cannot be
     * read (or is gone since stat), a syntax error, a user or group name that
     * does not resolve. */
    r = pol_load_file(policy, &p, &err);
    if (r < 0) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 1;
    }
    struct pol_decision d;
    r = pol_decide(p, &id, &d, &err);
    if (r < 0) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        pol_free(p);
        return 1;
    }
    int rc = 0;
    if (bind) {
        rc = do_bind(sysfs, &id, &d);
    } else {
        bool on_vfio = strcmp(id.driver, "vfio-pci") == 0;
        print_prop("VFIO_USER_MATCH", d.exported ? "1" : "0");
        print_prop("VFIO_USER_EXPORT", d.exported && on_vfio ? "1" : "0");
        print_prop("VFIO_USER_BIND", d.exported && !on_vfio && d.entry->s.bind ? "1" : "0");
        if (d.exported)
            print_prop("VFIO_USER_SOCKET", d.socket);
        if (d.entry) {
            char n[16];
            snprintf(n, sizeof(n), "%u", d.entry->index);
            print_prop("VFIO_USER_ENTRY", n);
        }
        if (d.exported)
            rc = print_unit(sysfs, p, &id, on_vfio);
    }
    pol_free(p);
    if (fflush(stdout) != 0)
        rc = 1;
    return rc;
}
