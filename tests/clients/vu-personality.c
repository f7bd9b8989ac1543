/* SPDX-License-Identifier: MIT */
/*
 * vu-personality - run the whole life of a device through a vfio-user
 * server the way one real client would, and check what that client would
 * accept. See pers.h and docs/clients.md.
 *
 *   vu-personality --client qemu|ch|spdk|lvu|min --socket PATH
 *                  --device edu|nvme [--reconnect N] [--expect-fail TEXT]
 *
 * Prints one line per step ("ok   qemu#0 version: ..."); exits 0 only if
 * every step held for every connection, 1 on the first failure (the FAIL
 * line names the step and what the client would have done), 2 on usage.
 *
 * --expect-fail TEXT turns a known limit into a test: exit 0 only if the run
 * fails and its first failure ("step: reason") contains TEXT; a pass, or a
 * failure elsewhere, exits 1. docs/clients.md lists every such limit.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pers.h"

static const struct p_ops *const all[] = { &p_qemu_ops, &p_ch_ops, &p_spdk_ops, &p_lvu_ops,
                                           &p_min_ops };

static int usage(FILE *f, int rc)
{
    fprintf(f, "usage: vu-personality --client qemu|ch|spdk|lvu|min --socket PATH\n"
               "                      --device edu|nvme [--reconnect N] [--expect-fail TEXT]\n"
               "Runs a device's whole life over vfio-user as that client does and checks\n"
               "what it would accept; --reconnect N does it N more times on new connections.\n"
               "--expect-fail TEXT: pass only if the first failure contains TEXT (a known limit).\n");
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "client", required_argument, NULL, 'c' },
        { "socket", required_argument, NULL, 's' },
        { "device", required_argument, NULL, 'd' },
        { "reconnect", required_argument, NULL, 'r' },
        { "expect-fail", required_argument, NULL, 'x' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct p_ctx c = { .sock = -1, .dev = P_DEV_EDU };
    const char *dev = NULL, *expect = NULL;
    unsigned long reconnect = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
                if (!strcmp(optarg, all[i]->name))
                    c.ops = all[i];
            if (!c.ops) {
                fprintf(stderr, "vu-personality: unknown client '%s'\n", optarg);
                return 2;
            }
            break;
        case 's': c.sock_path = optarg; break;
        case 'd': dev = optarg; break;
        case 'r': {
            char *end;
            reconnect = strtoul(optarg, &end, 10);
            if (*end || reconnect > 1000) {
                fprintf(stderr, "vu-personality: --reconnect takes 0..1000\n");
                return 2;
            }
            break;
        }
        case 'x': expect = optarg; break;
        case 'h': return usage(stdout, 0);
        default: return usage(stderr, 2);
        }
    }
    if (!c.ops || !c.sock_path || !dev || optind != argc)
        return usage(stderr, 2);
    if (!strcmp(dev, "edu"))
        c.dev = P_DEV_EDU;
    else if (!strcmp(dev, "nvme"))
        c.dev = P_DEV_NVME;
    else
        return usage(stderr, 2);
    signal(SIGPIPE, SIG_IGN);
    printf("# %s (%s) on %s, %s, %lu reconnect(s)\n", c.ops->name, c.ops->what, c.sock_path, dev,
           reconnect);
    int failed = 0;
    for (c.round = 0; c.round <= reconnect && !failed; c.round++)
        if (p_life(&c) < 0) {
            printf("# %s: FAILED on connection %u\n", c.ops->name, c.round);
            failed = 1;
        }
    if (expect) {
        if (!failed) {
            printf("# %s: the known limit \"%s\" no longer occurs: every step passed; update "
                   "the test and docs/clients.md\n", c.ops->name, expect);
            return 1;
        }
        if (!strstr(p_first_failure, expect)) {
            printf("# %s: failed, but not with the known limit \"%s\"\n", c.ops->name, expect);
            return 1;
        }
        printf("# %s: known limit reproduced: %s\n", c.ops->name, p_first_failure);
        return 0;
    }
    if (failed)
        return 1;
    printf("# %s: all %lu connection(s) passed\n", c.ops->name, reconnect + 1);
    return 0;
}
