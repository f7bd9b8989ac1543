/* SPDX-License-Identifier: MIT */
/* vfio-user-probe: show what a vfio-user server offers (lspci-like, or
 * JSON), or drive a known device through it (--selftest). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"

static void usage(FILE *f)
{
    fputs("usage: vfio-user-probe [options] SOCKET\n"
          "       vfio-user-probe --summarize TRACE\n"
          "Connect to a vfio-user server and show its device: ids and names, regions,\n"
          "IRQs and the decoded config space.\n"
          "\n"
          "  -j, --json               machine-readable output\n"
          "  -s, --selftest DEV       drive the device instead: edu or nvme; one line per\n"
          "                           check, exit status 1 if any check fails\n"
          "      --expect-serial S    nvme: IDENTIFY must report serial number S\n"
          "      --expect-data STR    nvme: read LBA 0 of namespace 1 through an I/O\n"
          "                           queue; it must start with STR\n"
          "      --expect-sparse-msix nvme: BAR0 must have sparse areas around MSI-X\n"
          "      --expect-no-mmap     no region may be offered for mmap\n"
          "      --hold               edu: stop with DMA mapped and MSI armed, print\n"
          "                           \"holding\" and wait to be killed (for tests)\n"
          "  -t, --timeout MS         per-reply timeout (default 10000)\n"
          "      --summarize TRACE    read a trace the bridge wrote (- = stdin)\n"
          "                           and print per command: count, errors, injected\n"
          "                           faults, handling time (median, p99, max); the\n"
          "                           first error with its request; how sessions ended\n"
          "  -h, --help\n"
          "\n"
          "Exit status: 0 ok, 1 a check failed, 2 usage or connection error.\n",
          f);
}

int main(int argc, char **argv)
{
    struct probe_opts o = {.timeout_ms = 10000};
    enum { O_SERIAL = 256, O_DATA, O_SPARSE, O_NOMMAP, O_HOLD, O_SUMMARIZE };
    const char *summarize = NULL;
    static const struct option lopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"selftest", required_argument, NULL, 's'},
        {"expect-serial", required_argument, NULL, O_SERIAL},
        {"expect-data", required_argument, NULL, O_DATA},
        {"expect-sparse-msix", no_argument, NULL, O_SPARSE},
        {"expect-no-mmap", no_argument, NULL, O_NOMMAP},
        {"hold", no_argument, NULL, O_HOLD},
        {"summarize", required_argument, NULL, O_SUMMARIZE},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "js:t:h", lopts, NULL)) != -1) {
        switch (ch) {
        case 'j': o.json = true; break;
        case 's': o.selftest = optarg; break;
        case O_SERIAL: o.expect_serial = optarg; break;
        case O_DATA: o.expect_data = optarg; break;
        case O_SPARSE: o.expect_sparse = true; break;
        case O_NOMMAP: o.expect_no_mmap = true; break;
        case O_HOLD: o.hold = true; break;
        case O_SUMMARIZE: summarize = optarg; break;
        case 't': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 0 || v > 3600000) {
                fprintf(stderr, "vfio-user-probe: bad --timeout %s\n", optarg);
                return 2;
            }
            o.timeout_ms = (int)v;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (summarize) {
        if (optind != argc) {
            usage(stderr);
            return 2;
        }
        FILE *in = strcmp(summarize, "-") ? fopen(summarize, "r") : stdin;
        if (!in) {
            fprintf(stderr, "vfio-user-probe: %s: %s\n", summarize, strerror(errno));
            return 2;
        }
        int r = probe_summarize(in, summarize, stdout);
        if (in != stdin)
            fclose(in);
        return r < 0 ? 2 : 0;
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    o.socket = argv[optind];
    if (o.selftest && strcmp(o.selftest, "edu") != 0 && strcmp(o.selftest, "nvme") != 0) {
        fprintf(stderr, "vfio-user-probe: unknown self-test \"%s\" (edu or nvme)\n", o.selftest);
        return 2;
    }

    struct vub_err err = {{0}};
    struct vu_client *c = NULL;
    int rc = vu_client_connect(o.socket, &c, &err);
    if (rc < 0) {
        fprintf(stderr, "vfio-user-probe: %s: %s\n", o.socket, err.msg[0] ? err.msg : "cannot connect");
        return 2;
    }
    vu_client_set_timeout(c, o.timeout_ms);
    rc = vu_client_negotiate(c, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "vfio-user-probe: %s: VERSION: %s\n", o.socket, vu_client_error(c));
        vu_client_close(c);
        return 2;
    }

    int status;
    if (o.selftest && strcmp(o.selftest, "edu") == 0)
        status = selftest_edu(c, &o);
    else if (o.selftest)
        status = selftest_nvme(c, &o);
    else
        status = probe_view(c, &o) < 0 ? 2 : 0;
    vu_client_close(c);
    return status;
}
