/* SPDX-License-Identifier: MIT */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "hooks.h"
#include "hv.h"
#include "inject.h"
#include "vu_proto.h"

void br_cli_usage(FILE *out)
{
    fputs(
"Usage: vfio-user-bridge --device DDDD:BB:DD.F --socket PATH [options]\n"
"       vfio-user-bridge --device A --socket PATH_A --device B --socket PATH_B ...\n"
"       vfio-user-bridge --device DDDD:BB:DD.F --policy FILE [options]\n"
"       vfio-user-bridge --sim[=edu|nvme-like] --socket PATH [options]\n"
"       vfio-user-bridge list [--json] [--sysfs DIR]\n"
"       vfio-user-bridge status --socket PATH\n"
"\n"
"Serve one PCI function, opened through the host kernel's VFIO (it must be\n"
"bound to vfio-pci), to one vfio-user client at a time on a UNIX socket.\n"
"\n"
"  -d, --device ADDR        PCI function to serve (DDDD:BB:DD.F or BB:DD.F)\n"
"  -s, --socket PATH        UNIX socket to listen on (a stale one is replaced;\n"
"                           no symlink on the way, every directory root's and\n"
"                           not writable by others unless sticky, like /tmp)\n"
"                           Several --device, each followed by its --socket\n"
"                           (at most 8): functions of ONE IOMMU group served\n"
"                           by one daemon, one socket and one client session\n"
"                           each, one IOMMU address space for all (identical\n"
"                           DMA mappings shared, conflicting ones refused);\n"
"                           SIGHUP does not re-execute such a daemon\n"
"      --group-clients RULE who may be the clients of a group's functions at\n"
"                           once: same-vm (default: one pid and uid), same-uid\n"
"                           or any; another client is refused and logged;\n"
"                           wins over the policy's group_clients\n"
"      --sim[=KIND]         serve a simulated device, for tests and demos;\n"
"                           KIND edu (default) or nvme-like (MSI-X BAR)\n"
"      --iommu KIND         IOMMU back end: auto (default), type1, iommufd or\n"
"                           iommufd-group; auto is iommufd where the kernel\n"
"                           has /dev/iommu and the function a VFIO cdev,\n"
"                           type1 otherwise (iommufd: DMA mapped by file where\n"
"                           the kernel can, no region mmap, no live re-exec;\n"
"                           iommufd-group: the same IOAS reached through the\n"
"                           group file, so regions are mmapped as with type1)\n"
"      --no-mmap            never give the client a region fd: every BAR\n"
"                           access comes as a message and is checked\n"
"      --msix-mmap=MODE     how a BAR holding the MSI-X table or PBA is offered\n"
"                           for mmap: sparse (default) publishes sparse areas\n"
"                           that leave out the page-rounded table and PBA, so\n"
"                           every client traps them (cloud-hypervisor needs\n"
"                           it); kernel passes the kernel's caps on as they are\n"
"                           (MSI-X-mappable: QEMU maps the whole BAR and traps\n"
"                           the table itself). --sparse-msix = sparse\n"
"      --region-fds=MODE    fds in a region-info reply with several sparse\n"
"                           areas: one (default; the spec, QEMU) or per-area\n"
"                           (one per area, for SPDK's initiator; only to a\n"
"                           client that did not state max_msg_fds)\n"
"      --stale-holders refuse|kill\n"
"                           a process still holds an ended session's device\n"
"                           file or a mapping of it: refuse the next client,\n"
"                           naming the holders, until they are gone (default),\n"
"                           or SIGKILL them at session end (docs/security.md)\n"
"      --max-dma-maps N     most DMA mappings a client may hold\n"
"                           (default and ceiling: min(65535, kernel entries))\n"
"      --max-dma-bytes SIZE most bytes a client may map (and so pin) for DMA\n"
"                           (default: half the host's RAM; the kernel also\n"
"                           charges pinned pages to RLIMIT_MEMLOCK)\n"
"      --max-xfer SIZE      largest region access in one message (default:\n"
"                           1M, or the ROM size if larger; at most 64M)\n"
"      --max-msg-fds N      max_msg_fds the bridge advertises (1-16, default\n"
"                           16); it accepts 16 fds per message whatever this\n"
"                           says (cloud-hypervisor sends up to 16 regardless)\n"
"      --io-timeout MS      a client must finish a message it started and\n"
"                           read its replies within MS (default 5000)\n"
"      --handshake-timeout MS  a new connection must complete VERSION\n"
"                           within MS or it is closed (default 10000); a\n"
"                           negotiated session may idle as long as it likes\n"
"      --poll-us N          busy polling: after each message, spin on the\n"
"                           client's socket for up to N microseconds before\n"
"                           sleeping (default 0 = off, at most 1000000). Cuts\n"
"                           the wake-up from a round trip; COSTS one CPU core\n"
"                           spinning for up to N us after every message\n"
"      --socket-mode MODE   socket permissions, octal (default 0600)\n"
"      --socket-owner USER  socket owner (name or uid)\n"
"      --socket-group GROUP socket group (name or gid)\n"
"      --allow-uid USER     accept only these peers (repeatable; name or uid)\n"
"      --allow-gid GROUP    ... or peers in these groups (repeatable)\n"
"      --policy FILE        export policy (JSON, docs/policy.md): the device\n"
"                           must be exported by it; it supplies what the\n"
"                           options above leave unset (socket, owner, mode,\n"
"                           allowed peers, user to drop to, options)\n"
"      --iommu-group N      with --policy, instead of --device: serve every\n"
"                           function of IOMMU group N that the policy exports\n"
"                           and that is bound to vfio-pci, each on the socket\n"
"                           and with the settings the policy gives it, also\n"
"                           those bound to vfio-pci later; exits 3 when none\n"
"                           is left (what vfio-user-bridge-group@N.service\n"
"                           runs)\n"
"  -l, --log-level LEVEL    error, warn, info (default) or debug\n"
"      --fd-store           keep the session's fds and state in the service\n"
"                           manager's fd store ($NOTIFY_SOCKET; the unit sets\n"
"                           FileDescriptorStoreMax=), resume it after a crash\n"
"                           or a restart, and leave it there on SIGTERM\n"
"                           (docs/install.md, \"What survives what\")\n"
"      --resume-state FD    internal: set by the bridge itself when it re-executes\n"
"                           on SIGHUP; FD holds the state handed over (never\n"
"                           give it by hand; docs/install.md, \"Upgrading\")\n"
"  -h, --help               show this help\n"
"  -V, --version            show the version\n"
"\n"
"Testing clients (docs/testing-clients.md):\n"
"      --trace FILE         one JSON line per message, both directions, with\n"
"                           decoded fields, errors and handling time (FILE is\n"
"                           appended to; - = the log); lines <= 1024 bytes;\n"
"                           vfio-user-probe(1) summarizes it for a human\n"
"      --trace-data         ... with payload bytes too (hex, <= 64 per message)\n"
"      --inject RULE        make the device side misbehave (repeatable, <= 16):\n"
"                           CMD[:COND,...][@WHEN]=ACTION\n"
"                           CMD: a command name (REGION_READ, GET_REGION_INFO,\n"
"                           DEVICE_RESET, DMA_MAP, ...) or ANY\n"
"                           COND: region=N, index=N (IRQ), iova=X, offset=X\n"
"                           WHEN: nth=N, every=K or prob=P[,seed=S] (counted\n"
"                           per rule over the daemon's life; default: all)\n"
"                           ACTION: errno=NAME (answer it; handler not run),\n"
"                           delay=MS (reply later; 1..600000), drop (no reply),\n"
"                           close (end the session: quiesce as on a failure),\n"
"                           data=HEX (REGION_READ: these bytes, repeated)\n"
"                           e.g. --inject 'REGION_READ:region=7,offset=0@nth=2=errno=EIO'\n"
"\n"
"Sizes take K, M, G or T (binary) suffixes. Logs go to stderr, one line per\n"
"client connect and disconnect and per error. SIGTERM or SIGINT quiesces the\n"
"device and exits 0. SIGHUP (systemctl reload) re-executes the binary on\n"
"disk with the whole state handed over: the client's connection, its DMA\n"
"mappings and interrupts go on untouched (refused with --sim). With $NOTIFY_SOCKET set, READY=1 is sent once the\n"
"socket listens. Exit status: 0 stopped by a signal, 1 the device or socket\n"
"could not be set up, 2 bad command line or policy (or the policy does not\n"
"export the device), 3 the device was unbound from vfio-pci or removed.\n"
"\n"
"list [--json] [--sysfs DIR]: every PCI function with its ids, names, driver, IOMMU group,\n"
"and whether it can be exported now (or why not).\n"
"\n"
"status --socket PATH: the state of the daemon serving PATH, as JSON, from its\n"
"control socket PATH.ctl (mode 0600; root or the daemon's user): the client's\n"
"pid and uid, messages and errors, DMA mappings (count, bytes, the lowest 256\n"
"ranges), IRQ indexes enabled.\n",
        out);
}

int br_parse_size(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s)
        return -EINVAL;
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: return -EINVAL;
    }
    if (*end == 'i' || *end == 'B' || *end == 'b')   /* "16MiB", "16MB" */
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (*end)
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -EINVAL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

enum {
    OPT_SIM = 256, OPT_FD_STORE, OPT_NO_MMAP, OPT_SPARSE_MSIX, OPT_MSIX_MMAP, OPT_REGION_FDS, OPT_MAX_DMA_MAPS, OPT_MAX_DMA_BYTES,
    OPT_MAX_XFER, OPT_MAX_MSG_FDS, OPT_IO_TIMEOUT, OPT_POLL_US, OPT_SOCKET_MODE, OPT_SOCKET_OWNER,
    OPT_SOCKET_GROUP, OPT_ALLOW_UID, OPT_ALLOW_GID, OPT_POLICY, OPT_JSON, OPT_SYSFS,
    OPT_HANDSHAKE_TIMEOUT,
    OPT_STALE_HOLDERS, OPT_TRACE, OPT_TRACE_DATA, OPT_INJECT,
    OPT_RESUME_STATE,
    OPT_GROUP_CLIENTS, OPT_IOMMU_GROUP,
    OPT_IOMMU,
};

__attribute__((format(printf, 2, 3)))
static int bad(FILE *errout, const char *fmt, ...)
{
    va_list ap;
    fputs("vfio-user-bridge: ", errout);
    va_start(ap, fmt);
    vfprintf(errout, fmt, ap);
    va_end(ap);
    fputs("\nTry 'vfio-user-bridge --help'.\n", errout);
    return -EINVAL;
}

static int parse_list(int argc, char **argv, struct br_cli *cli, FILE *errout)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, OPT_JSON },
        { "sysfs", required_argument, NULL, OPT_SYSFS },
        { NULL, 0, NULL, 0 },
    };
    int c;
    cli->action = BR_ACT_LIST;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: cli->list_json = true; break;
        case OPT_SYSFS: cli->sysfs = optarg; break;
        default: return bad(errout, "%s: bad option for list", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad(errout, "list: unexpected argument %s", argv[optind]);
    return 0;
}

static int parse_status(int argc, char **argv, struct br_cli *cli, FILE *errout)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    cli->action = BR_ACT_STATUS;
    while ((c = getopt_long(argc, argv, "s:", opts, NULL)) != -1) {
        switch (c) {
        case 's': cli->cfg.socket_path = optarg; break;
        default: return bad(errout, "%s: bad option for status", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad(errout, "status: unexpected argument %s", argv[optind]);
    if (!cli->cfg.socket_path)
        return bad(errout, "%s", "status: --socket PATH is required");
    return 0;
}

int br_cli_parse(int argc, char **argv, struct br_cli *cli, FILE *out, FILE *errout)
{
    static const struct option opts[] = {
        { "device", required_argument, NULL, 'd' },
        { "socket", required_argument, NULL, 's' },
        { "sim", optional_argument, NULL, OPT_SIM },
        { "iommu", required_argument, NULL, OPT_IOMMU },
        { "no-mmap", no_argument, NULL, OPT_NO_MMAP },
        { "fd-store", no_argument, NULL, OPT_FD_STORE },
        { "sparse-msix", no_argument, NULL, OPT_SPARSE_MSIX },
        { "msix-mmap", required_argument, NULL, OPT_MSIX_MMAP },
        { "region-fds", required_argument, NULL, OPT_REGION_FDS },
        { "stale-holders", required_argument, NULL, OPT_STALE_HOLDERS },
        { "max-dma-maps", required_argument, NULL, OPT_MAX_DMA_MAPS },
        { "max-dma-bytes", required_argument, NULL, OPT_MAX_DMA_BYTES },
        { "max-xfer", required_argument, NULL, OPT_MAX_XFER },
        { "max-msg-fds", required_argument, NULL, OPT_MAX_MSG_FDS },
        { "io-timeout", required_argument, NULL, OPT_IO_TIMEOUT },
        { "handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT },
        { "poll-us", required_argument, NULL, OPT_POLL_US },
        { "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
        { "socket-owner", required_argument, NULL, OPT_SOCKET_OWNER },
        { "socket-group", required_argument, NULL, OPT_SOCKET_GROUP },
        { "allow-uid", required_argument, NULL, OPT_ALLOW_UID },
        { "allow-gid", required_argument, NULL, OPT_ALLOW_GID },
        { "policy", required_argument, NULL, OPT_POLICY },
        { "log-level", required_argument, NULL, 'l' },
        { "trace", required_argument, NULL, OPT_TRACE },
        { "trace-data", no_argument, NULL, OPT_TRACE_DATA },
        { "inject", required_argument, NULL, OPT_INJECT },
        { "resume-state", required_argument, NULL, OPT_RESUME_STATE },
        { "group-clients", required_argument, NULL, OPT_GROUP_CLIENTS },
        { "iommu-group", required_argument, NULL, OPT_IOMMU_GROUP },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    memset(cli, 0, sizeof(*cli));
    br_config_defaults(&cli->cfg);
    struct br_config *cfg = &cli->cfg;
    cli->action = BR_ACT_SERVE;
    optind = 0;      /* full re-initialisation (GNU), so parse can run twice */
    opterr = 0;

    if (argc > 1 && strcmp(argv[1], "list") == 0)
        return parse_list(argc - 1, argv + 1, cli, errout);
    if (argc > 1 && strcmp(argv[1], "status") == 0)
        return parse_status(argc - 1, argv + 1, cli, errout);

    int c;
    uint64_t size;
    unsigned u;
    bool socket_first = false;   /* a --socket before any --device */
    while ((c = getopt_long(argc, argv, ":d:s:l:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'd': {
            if (cfg->n_functions == BR_GROUP_MAX_FUNCTIONS)
                return bad(errout, "--device %s: at most %u functions of a group", optarg,
                           BR_GROUP_MAX_FUNCTIONS);
            char *buf = cfg->n_functions ? cli->device_bufs[cfg->n_functions] : cli->device_buf;
            if (hv_pci_addr_parse(optarg, buf) < 0)
                return bad(errout, "%s: not a PCI address (DDDD:BB:DD.F)", optarg);
            cfg->functions[cfg->n_functions++].device = buf;
            cfg->device = cli->device_buf;
            break;
        }
        case 's':
            /* one function: anywhere; several: the one of the --device before */
            if (cfg->n_functions > 1 && cfg->functions[cfg->n_functions - 1].socket_path)
                return bad(errout, "--socket %s: %s has a socket already (give each --device "
                           "its own --socket after it)", optarg,
                           cfg->functions[cfg->n_functions - 1].device);
            if (cfg->n_functions > 1)
                cfg->functions[cfg->n_functions - 1].socket_path = optarg;
            else
                cfg->socket_path = optarg;
            if (cfg->n_functions == 0)
                socket_first = true;
            break;
        case OPT_GROUP_CLIENTS:
            if (strcmp(optarg, "same-vm") == 0)
                cfg->group_clients = BR_GROUP_CLIENTS_SAME_VM;
            else if (strcmp(optarg, "same-uid") == 0)
                cfg->group_clients = BR_GROUP_CLIENTS_SAME_UID;
            else if (strcmp(optarg, "any") == 0)
                cfg->group_clients = BR_GROUP_CLIENTS_ANY;
            else
                return bad(errout, "--group-clients %s: want same-vm, same-uid or any", optarg);
            cfg->group_clients_set = true;
            break;
        case OPT_SIM:
            if (!optarg || strcmp(optarg, "edu") == 0)
                cfg->sim = BR_SIM_EDU;
            else if (strcmp(optarg, "nvme-like") == 0 || strcmp(optarg, "nvme") == 0)
                cfg->sim = BR_SIM_NVME_LIKE;
            else
                return bad(errout, "--sim=%s: unknown kind (edu, nvme-like)", optarg);
            break;
        case OPT_IOMMU:
            if (strcmp(optarg, "auto") == 0)
                cfg->iommu = BR_IOMMU_AUTO;
            else if (strcmp(optarg, "type1") == 0)
                cfg->iommu = BR_IOMMU_TYPE1;
            else if (strcmp(optarg, "iommufd") == 0)
                cfg->iommu = BR_IOMMU_IOMMUFD;
            else if (strcmp(optarg, "iommufd-group") == 0)
                cfg->iommu = BR_IOMMU_IOMMUFD_GROUP;
            else
                return bad(errout, "--iommu %s: unknown back end (auto, type1, iommufd, "
                           "iommufd-group)", optarg);
            break;
        case OPT_NO_MMAP: cfg->no_mmap = true; break;
        case OPT_FD_STORE: cfg->fd_store = true; break;
        case OPT_SPARSE_MSIX: cfg->msix_mmap = BR_MSIX_MMAP_SPARSE; break;
        case OPT_MSIX_MMAP:
            if (strcmp(optarg, "sparse") == 0)
                cfg->msix_mmap = BR_MSIX_MMAP_SPARSE;
            else if (strcmp(optarg, "kernel") == 0)
                cfg->msix_mmap = BR_MSIX_MMAP_KERNEL;
            else
                return bad(errout, "--msix-mmap=%s: want sparse or kernel", optarg);
            break;
        case OPT_REGION_FDS:
            if (strcmp(optarg, "one") == 0)
                cfg->region_fds = BR_REGION_FDS_ONE;
            else if (strcmp(optarg, "per-area") == 0)
                cfg->region_fds = BR_REGION_FDS_PER_AREA;
            else
                return bad(errout, "--region-fds=%s: want one or per-area", optarg);
            break;
        case OPT_STALE_HOLDERS:
            if (strcmp(optarg, "refuse") == 0)
                cfg->stale_holders = BR_STALE_REFUSE;
            else if (strcmp(optarg, "kill") == 0)
                cfg->stale_holders = BR_STALE_KILL;
            else
                return bad(errout, "--stale-holders %s: want refuse or kill", optarg);
            cfg->stale_holders_set = true;
            break;
        case OPT_MAX_DMA_MAPS:
            if (parse_u32(optarg, 1, 65535, &cfg->max_dma_maps) < 0)
                return bad(errout, "--max-dma-maps %s: want 1..65535", optarg);
            break;
        case OPT_MAX_DMA_BYTES:
            if (br_parse_size(optarg, &cfg->max_dma_bytes) < 0 || cfg->max_dma_bytes == 0)
                return bad(errout, "--max-dma-bytes %s: want a size like 4G", optarg);
            cfg->max_dma_bytes_set = true;
            break;
        case OPT_MAX_XFER:
            if (br_parse_size(optarg, &size) < 0 || size < 4096 || size > VU_MAX_DATA_XFER)
                return bad(errout, "--max-xfer %s: want 4K..64M", optarg);
            cfg->max_data_xfer = (uint32_t)size;
            break;
        case OPT_MAX_MSG_FDS:
            if (parse_u32(optarg, 1, BR_MAX_MSG_FDS, &cfg->max_msg_fds) < 0)
                return bad(errout, "--max-msg-fds %s: want 1..16", optarg);
            break;
        case OPT_IO_TIMEOUT:
            if (parse_u32(optarg, 1, 3600000, &cfg->io_timeout_ms) < 0)
                return bad(errout, "--io-timeout %s: want milliseconds (1..3600000)", optarg);
            break;
        case OPT_HANDSHAKE_TIMEOUT:
            if (parse_u32(optarg, 1, BR_MAX_HANDSHAKE_TIMEOUT_MS, &cfg->handshake_timeout_ms) < 0)
                return bad(errout, "--handshake-timeout %s: want milliseconds (1..%u)", optarg,
                           BR_MAX_HANDSHAKE_TIMEOUT_MS);
            cfg->handshake_timeout_set = true;
            break;
        case OPT_POLL_US:
            if (parse_u32(optarg, 0, BR_MAX_POLL_US, &cfg->poll_us) < 0)
                return bad(errout, "--poll-us %s: want microseconds (0..%u)", optarg,
                           BR_MAX_POLL_US);
            break;
        case OPT_SOCKET_MODE: {
            char *end;
            unsigned long m = strtoul(optarg, &end, 8);
            if (!*optarg || *end || m > 0777)
                return bad(errout, "--socket-mode %s: want octal like 0660", optarg);
            cfg->socket_mode = (mode_t)m;
            cfg->socket_mode_set = true;
            break;
        }
        case OPT_SOCKET_OWNER: cfg->socket_owner = optarg; break;
        case OPT_SOCKET_GROUP: cfg->socket_group = optarg; break;
        case OPT_ALLOW_UID:
            if (cfg->n_allow_uids == BR_MAX_ALLOW_UIDS)
                return bad(errout, "--allow-uid %s: too many users", optarg);
            if (br_resolve_id(optarg, false, &u) < 0)
                return bad(errout, "--allow-uid %s: no such user", optarg);
            cfg->allow_uids[cfg->n_allow_uids++] = (uid_t)u;
            break;
        case OPT_ALLOW_GID:
            if (cfg->n_allow_gids == BR_MAX_ALLOW_UIDS)
                return bad(errout, "--allow-gid %s: too many groups", optarg);
            if (br_resolve_id(optarg, true, &u) < 0)
                return bad(errout, "--allow-gid %s: no such group", optarg);
            cfg->allow_gids[cfg->n_allow_gids++] = (gid_t)u;
            break;
        case OPT_POLICY: cfg->policy_path = optarg; break;
        case OPT_IOMMU_GROUP: {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (!isdigit((unsigned char)optarg[0]) || *end || errno || v > INT_MAX)
                return bad(errout, "--iommu-group %s: want a group number", optarg);
            cfg->iommu_group = (int)v;
            break;
        }
        case 'l':
            if (br_log_parse_level(optarg, &cfg->log_level) < 0)
                return bad(errout, "--log-level %s: want error, warn, info or debug", optarg);
            break;
        case OPT_TRACE: cfg->trace_path = optarg; break;
        case OPT_TRACE_DATA: cfg->trace_data = true; break;
        case OPT_INJECT: {
            static struct br_inject_rule rule;   /* large; only checked here */
            struct vub_err e = { "" };
            if (cfg->n_inject == BR_INJECT_MAX_RULES)
                return bad(errout, "--inject %s: at most %u rules", optarg, BR_INJECT_MAX_RULES);
            if (br_inject_parse(optarg, &rule, &e) < 0)
                return bad(errout, "%s", e.msg);
            cfg->inject[cfg->n_inject++] = optarg;
            break;
        }
        case OPT_RESUME_STATE: {
            char *end;
            errno = 0;
            long fd = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || fd < 0 || fd > INT_MAX)
                return bad(errout, "--resume-state %s: not an fd number", optarg);
            cfg->resume_state_fd = (int)fd;
            break;
        }
        case 'h':
            br_cli_usage(out);
            cli->action = BR_ACT_HELP;
            return 0;
        case 'V':
            fprintf(out, "vfio-user-bridge %s\n", VUB_VERSION);
            cli->action = BR_ACT_VERSION;
            return 0;
        case ':':
            return bad(errout, "%s needs an argument", argv[optind - 1]);
        default:
            return bad(errout, "%s: unknown option", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad(errout, "unexpected argument %s", argv[optind]);
    if (cfg->iommu_group >= 0) {
        /* the policy names the functions and their sockets (service.c) */
        if (!cfg->policy_path)
            return bad(errout, "%s", "--iommu-group needs --policy");
        if (cfg->device || cfg->socket_path || cfg->sim != BR_SIM_NONE)
            return bad(errout, "%s", "--iommu-group: the group's functions and sockets come "
                       "from the policy, not --device, --socket or --sim");
        if (cfg->resume_state_fd >= 0)
            return bad(errout, "%s", "--resume-state: a daemon serving a group is never "
                       "re-executed");
        return 0;
    }
    if (cfg->n_functions > 1) {
        /* the first function's socket came while it was still alone */
        cfg->functions[0].socket_path = cfg->socket_path;
        if (socket_first)
            return bad(errout, "%s", "with several --device, each --socket goes after its "
                       "--device");
        for (size_t i = 0; i < cfg->n_functions; i++) {
            const struct br_function *f = &cfg->functions[i];
            if (!f->socket_path)
                return bad(errout, "--device %s has no --socket (each function of a group "
                           "has its own)", f->device);
            for (size_t j = 0; j < i; j++) {
                if (strcmp(cfg->functions[j].device, f->device) == 0)
                    return bad(errout, "--device %s given twice", f->device);
                if (strcmp(cfg->functions[j].socket_path, f->socket_path) == 0)
                    return bad(errout, "--socket %s given for two functions", f->socket_path);
            }
        }
        if (cfg->policy_path)
            return bad(errout, "%s", "--policy serves one function; several --device take "
                       "their sockets on the command line");
        if (cfg->resume_state_fd >= 0)
            return bad(errout, "%s", "--resume-state: a daemon serving several functions "
                       "is never re-executed");
    } else if (cfg->n_functions == 1) {
        cfg->functions[0].socket_path = cfg->socket_path;
    }
    if (!cfg->device && cfg->sim == BR_SIM_NONE)
        return bad(errout, "%s", "--device is required (or --sim)");
    if (cfg->sim != BR_SIM_NONE &&
        (cfg->iommu == BR_IOMMU_IOMMUFD || cfg->iommu == BR_IOMMU_IOMMUFD_GROUP))
        return bad(errout, "--iommu %s: the simulated device has a simulated type1 "
                   "container only", cfg->iommu == BR_IOMMU_IOMMUFD ? "iommufd" : "iommufd-group");
    if (!cfg->socket_path && !cfg->policy_path)
        return bad(errout, "%s", "--socket is required (or --policy)");
    if (cfg->trace_data && !cfg->trace_path)
        return bad(errout, "%s", "--trace-data needs --trace");
    return 0;
}
