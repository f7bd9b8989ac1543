/* SPDX-License-Identifier: MIT */
/*
 * cli.h - the command line: `vfio-user-bridge [options]` serves a device,
 * `vfio-user-bridge list [--json]` lists the host's PCI functions,
 * `vfio-user-bridge status --socket PATH` prints a running daemon's state.
 */
#ifndef BR_CLI_H
#define BR_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "hv.h"

enum br_action {
    BR_ACT_SERVE,
    BR_ACT_LIST,
    BR_ACT_STATUS,     /* status --socket PATH */
    BR_ACT_HELP,       /* --help printed */
    BR_ACT_VERSION,    /* --version printed */
};

struct br_cli {
    enum br_action action;
    struct br_config cfg;
    char device_buf[HV_ADDR_LEN];                          /* the first --device */
    char device_bufs[BR_GROUP_MAX_FUNCTIONS][HV_ADDR_LEN]; /* the others */
    bool list_json;
    const char *sysfs;   /* list: sysfs root (default /sys) */
};

/* Parse argv into cli (strings point into argv). Help and version text go
 * to `out`; errors to `errout` with a hint. Returns 0 or -EINVAL. */
int br_cli_parse(int argc, char **argv, struct br_cli *cli, FILE *out, FILE *errout);
void br_cli_usage(FILE *out);

/* Parse "4096", "64K", "16M", "2G" (binary units). -EINVAL / -ERANGE. */
int br_parse_size(const char *s, uint64_t *out);

#endif /* BR_CLI_H */
