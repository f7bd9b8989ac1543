/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <string.h>

void br_config_defaults(struct br_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_msg_fds = BR_MAX_MSG_FDS;
    cfg->io_timeout_ms = BR_DEFAULT_IO_TIMEOUT_MS;
    cfg->socket_mode = 0600;
    cfg->log_level = BR_LOG_INFO;
}
