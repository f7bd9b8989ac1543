/* SPDX-License-Identifier: MIT */
/*
 * config.h - every option of the daemon in one struct, and the named limits
 * on what a client controls. Two writers, in this order, both before the
 * device is opened: br_cli_parse (cli.c) fills a br_config with
 * br_config_defaults and then the command line; br_service_apply_policy
 * (service.c) fills from the policy file what the command line left unset
 * (socket path and access, allow-lists, user, MSI-X mapping, DMA cap,
 * handshake timeout, reset on disconnect). main.c only passes it on;
 * everything after br_daemon_run only reads it.
 */
#ifndef BR_CONFIG_H
#define BR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"

/* ---- limits (a client controls these quantities; each has a cap) ---------- */

/* vfio-user's own ceiling for max_dma_maps (QEMU rejects more). */
#define BR_DMA_MAPS_CEILING      65535u
/* Smallest max_data_xfer_size advertised (the spec's default); raised to fit
 * the ROM, capped by VU_MAX_DATA_XFER (64 MiB). */
#define BR_MIN_DATA_XFER         (1u << 20)
/* Fds one message may carry (vfio-user: QEMU rejects a server value > 16). */
#define BR_MAX_MSG_FDS           16u
/* Regions and IRQ indexes exposed (QEMU rejects > 100 regions / 50 irqs). */
#define BR_MAX_REGIONS           64u
#define BR_MAX_IRQ_INDEXES       5u
/* Vectors per IRQ index (PCI MSI-X has at most 2048). */
#define BR_MAX_IRQ_VECTORS       2048u
/* A client that starts a message must finish it (and read its replies)
 * within this time, or it is disconnected: the loop is single-threaded. */
#define BR_DEFAULT_IO_TIMEOUT_MS 5000u
/* Longest --poll-us: a spin longer than this is a core given away. */
#define BR_MAX_POLL_US 1000000u
/* Copies of the region fd one GET_REGION_INFO reply may carry with
 * --region-fds=per-area (SPDK's receive array holds 8). */
#define BR_MAX_REGION_FDS        8u
/* Peer uids an allow-list may hold. */
#define BR_MAX_ALLOW_UIDS        64u
/* A new connection must complete VERSION within this time or it is closed:
 * the device serves one client, and a connection that says nothing would
 * hold it. A negotiated session may idle for ever. */
#define BR_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000u
#define BR_MAX_HANDSHAKE_TIMEOUT_MS     3600000u
/* Default cap on the bytes one client may have mapped (and so pinned) for
 * DMA: this fraction of physical RAM (1/BR_DMA_BYTES_RAM_DIVISOR). A VM
 * larger than half the host needs --max-dma-bytes or the policy's
 * "max_dma_bytes"; the kernel's RLIMIT_MEMLOCK applies on top. */
#define BR_DMA_BYTES_RAM_DIVISOR 2u
/* Connect, refusal and disconnect log lines: at most this many per
 * BR_CONN_LOG_INTERVAL_MS, then one line saying how many were not logged. */
#define BR_CONN_LOG_BURST        10u
#define BR_CONN_LOG_INTERVAL_MS  1000u

/* Functions of one IOMMU group one daemon serves (bridge/group.h): a
 * GPU with its audio function, the functions behind a PCIe-to-PCI bridge. */
#define BR_GROUP_MAX_FUNCTIONS   8u

/* Who may be the clients of a group's functions at once (--group-clients). */
enum br_group_clients {
    BR_GROUP_CLIENTS_SAME_VM = 0, /* the same process (pid and uid): one VM */
    BR_GROUP_CLIENTS_SAME_UID,    /* any processes of one uid */
    BR_GROUP_CLIENTS_ANY,         /* anyone the socket admits (one trust domain anyway) */
};

/* One function of a group: its address and socket (--device A --socket SA
 * --device B --socket SB). */
struct br_function {
    const char *device;
    const char *socket_path;
    /* NULL: the daemon's own; with --iommu-group, this function's config with
     * the policy applied (bridge/service.c) */
    const struct br_config *cfg;
};

enum br_sim_kind {
    BR_SIM_NONE = 0,
    BR_SIM_EDU,        /* edu-like: 1 MiB BAR0, INTx + 1 MSI, no MSI-X */
    BR_SIM_NVME_LIKE,  /* plus a 16 KiB MSI-X BAR2 with the MSIX_MAPPABLE cap */
};

/* How a BAR holding the MSI-X table or PBA is published (--msix-mmap). */
enum br_msix_mmap {
    BR_MSIX_MMAP_UNSET = 0,  /* not chosen: sparse (the policy may choose) */
    BR_MSIX_MMAP_SPARSE,     /* sparse areas that leave out the page-rounded
                              * table and PBA: every client traps them */
    BR_MSIX_MMAP_KERNEL,     /* the kernel's caps as they are (MSIX_MAPPABLE:
                              * whole BAR; QEMU traps the table itself) */
};

/* How many fds a GET_REGION_INFO reply with sparse areas carries (--region-fds). */
enum br_region_fds {
    BR_REGION_FDS_UNSET = 0, /* not chosen: one */
    BR_REGION_FDS_ONE,       /* one fd that every area shares (the spec; QEMU
                              * refuses more than one) */
    BR_REGION_FDS_PER_AREA,  /* one per area, in area order (SPDK), to a client
                              * that did not state max_msg_fds; one otherwise */
};

/* What to do with processes that still hold an ended session's device file
 * (bridge/holders.h) when the next client comes. */
enum br_stale_holders {
    BR_STALE_REFUSE = 0,  /* refuse the next client, naming them, until they are gone */
    BR_STALE_KILL,        /* SIGKILL them when the session ends; wait until gone */
};

/* The IOMMU back end a kernel device is opened with (--iommu). */
enum br_iommu_kind {
    BR_IOMMU_AUTO = 0, /* iommufd where /dev/iommu and the device's cdev exist, else type1 */
    BR_IOMMU_TYPE1,    /* VFIO container, type1v2 */
    BR_IOMMU_IOMMUFD,  /* the VFIO cdev in an IOAS; refused where the kernel has none */
    BR_IOMMU_IOMMUFD_GROUP, /* the group file attached to an iommufd IOAS (mmap possible) */
};

struct br_config {
    /* what to serve and where */
    const char *device;          /* canonical "DDDD:BB:DD.F" (sim: reported name) */
    const char *socket_path;
    enum br_sim_kind sim;
    enum br_iommu_kind iommu;
    /* Several functions of one IOMMU group (n_functions > 1): each with its
     * socket; device and socket_path are the first one's. 0 or 1: one. */
    size_t n_functions;
    struct br_function functions[BR_GROUP_MAX_FUNCTIONS];
    enum br_group_clients group_clients;
    bool group_clients_set;      /* given on the command line (the policy's yields) */

    /* mapping policy */
    bool no_mmap;                /* never hand out a region fd; clear MMAP */
    enum br_msix_mmap msix_mmap; /* MSI-X BARs: sparse (default) or the kernel's caps */
    enum br_region_fds region_fds; /* fds per region-info reply: one (default) or per area */
    enum br_stale_holders stale_holders;  /* default BR_STALE_REFUSE */
    bool stale_holders_set;      /* given on the command line (the policy yields) */

    /* limits; 0 = default */
    uint32_t max_dma_maps;       /* default min(65535, kernel's available entries) */
    uint64_t max_dma_bytes;      /* default br_default_max_dma_bytes(); 0 = no bridge cap */
    bool max_dma_bytes_set;      /* given on the command line (the policy does not override) */
    uint32_t max_data_xfer;      /* default max(1 MiB, ROM size), <= 64 MiB */
    uint32_t max_msg_fds;        /* advertised; default 16, at most 16 (the bridge
                                  * accepts 16 per message whatever it says:
                                  * cloud-hypervisor sends up to 16 regardless) */
    uint32_t io_timeout_ms;      /* default BR_DEFAULT_IO_TIMEOUT_MS */
    uint32_t handshake_timeout_ms; /* default BR_DEFAULT_HANDSHAKE_TIMEOUT_MS */
    bool handshake_timeout_set;  /* given on the command line */
    uint32_t poll_us;            /* busy polling after each message, us; 0 = off
                                  * (default), at most BR_MAX_POLL_US */

    /* socket access (used by br_listen / br_peer_allowed, bridge/hooks.h) */
    bool socket_mode_set;
    mode_t socket_mode;          /* default 0600 */
    const char *socket_owner;    /* user name or uid; NULL = keep */
    const char *socket_group;    /* group name or gid; NULL = keep */
    size_t n_allow_uids, n_allow_gids;  /* both 0 = any peer the socket mode lets in */
    uid_t allow_uids[BR_MAX_ALLOW_UIDS];
    gid_t allow_gids[BR_MAX_ALLOW_UIDS];
    const char *policy_path;     /* JSON policy file (bridge/policy.*), or NULL */
    int iommu_group;             /* --iommu-group N: serve the group's functions the
                                  * policy exports (service.c); -1 not given */

    /* only the policy sets these (bridge/service.c); it also fills the
     * fields above that the command line left unset */
    bool no_reset;               /* no VFIO_DEVICE_RESET when a client leaves */
    bool drop_privileges;        /* become run_uid/run_gid once the device is open */
    uid_t run_uid;
    gid_t run_gid;

    enum br_log_level log_level;

    /* message trace and fault injection (bridge/tap.h, docs/testing-clients.md) */
    const char *trace_path;      /* --trace FILE, "-" = the log; NULL = none */
    bool trace_data;             /* --trace-data: payload bytes too (bounded) */
    size_t n_inject;
    const char *inject[16];      /* --inject RULE texts (BR_INJECT_MAX_RULES) */

    /* live re-exec (bridge/reexec.h): the fd of the memfd holding the state
     * a previous process of the bridge handed over; -1 = a fresh start */
    int resume_state_fd;
    /* --fd-store: keep every fd and the state in the service manager's fd
     * store and resume from it after a restart (bridge/fdstore.h) */
    bool fd_store;
};

void br_config_defaults(struct br_config *cfg);
/* Physical RAM / BR_DMA_BYTES_RAM_DIVISOR (at least 64 MiB; 1 GiB if the
 * RAM size cannot be read). */
uint64_t br_default_max_dma_bytes(void);

#endif /* BR_CONFIG_H */
