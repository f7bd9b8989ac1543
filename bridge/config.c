/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <string.h>
#include <unistd.h>

uint64_t br_default_max_dma_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), pg = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || pg <= 0)
        return 1ull << 30;
    uint64_t v = (uint64_t)pages * (uint64_t)pg / BR_DMA_BYTES_RAM_DIVISOR;
    return v < (64ull << 20) ? 64ull << 20 : v;
}

void br_config_defaults(struct br_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_msg_fds = BR_MAX_MSG_FDS;
    cfg->io_timeout_ms = BR_DEFAULT_IO_TIMEOUT_MS;
    cfg->handshake_timeout_ms = BR_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    cfg->max_dma_bytes = br_default_max_dma_bytes();
    cfg->socket_mode = 0600;
    cfg->log_level = BR_LOG_INFO;
    cfg->resume_state_fd = -1;
    cfg->iommu_group = -1;
}
