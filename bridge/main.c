/* SPDX-License-Identifier: MIT */
/* vfio-user-bridge: serve a kernel VFIO device over vfio-user. */
#include "cli.h"
#include "daemon.h"
#include "list.h"
#include "log.h"
#include "reexec.h"
#include "service.h"
#include "status.h"

int main(int argc, char **argv)
{
    static struct br_cli cli;
    br_reexec_started();
    if (br_cli_parse(argc, argv, &cli, stdout, stderr) < 0)
        return 2;
    switch (cli.action) {
    case BR_ACT_HELP:
    case BR_ACT_VERSION:
        return 0;
    case BR_ACT_LIST:
        return br_cmd_list(cli.sysfs, cli.list_json);
    case BR_ACT_STATUS:
        return br_cmd_status(cli.cfg.socket_path);
    case BR_ACT_SERVE:
        break;
    }
    br_log_set_level(cli.cfg.log_level);
    br_log_set_device(cli.cfg.device);
    if (br_service_apply_policy(&cli.cfg) < 0)
        return BR_EXIT_CONFIG;
    if (cli.cfg.iommu_group >= 0 && cli.cfg.n_functions == 1)
        br_log_set_device(cli.cfg.device);   /* the group's one exported function */
    return br_daemon_run(&cli.cfg, argc, argv);
}
