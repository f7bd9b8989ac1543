/* SPDX-License-Identifier: MIT */
/*
 * policy.h - the export policy: which PCI functions the bridge exports and
 * how (socket path, owner, group, mode, allowed peers, per-device options).
 *
 * The policy is a JSON file (default POL_DEFAULT_PATH), described for people
 * in docs/policy.md:
 *
 *   {
 *     "version": 1,
 *     "defaults": { "socket_group": "kvm", "socket_mode": "0660" },
 *     "devices": [
 *       { "match": { "address": "0000:01:00.0" }, "allow_uids": ["qemu"] },
 *       { "match": { "id": "8086:*", "class": "0108" }, "bind": true },
 *       { "match": { "class": "03" }, "export": false }
 *     ]
 *   }
 *
 * Entries are tried in order; the first whose match keys all hold decides
 * (an entry with "export": false excludes what it matches). Unknown keys,
 * wrong types and out-of-range values are refused. Users and groups may be
 * names or numbers; names are resolved when the file is loaded.
 *
 * Errors: every failure returns -errno and fills `struct vub_err` with one
 * line that names the file and either the line:column (syntax errors) or the
 * JSON path of the offending value (e.g. `devices[2].socket_mode`) and what is
 * wrong with it. Nothing here prints.
 */
#ifndef VUB_POLICY_H
#define VUB_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hv.h"
#include "vub_err.h"

#define POL_DEFAULT_PATH       "/etc/vfio-user-bridge/policy.json"
#define POL_DEFAULT_SOCKET_DIR "/run/vfio-user"
#define POL_DEFAULT_SOCKET_MODE 0600u   /* owner only unless the policy says otherwise */

#define POL_MAX_FILE_SIZE  (1u << 20)   /* a policy larger than 1 MiB is refused */
#define POL_MAX_DEVICES    256u         /* entries in "devices" */
#define POL_MAX_PEERS      64u          /* entries in allow_uids / allow_gids */
#define POL_SOCKET_MAX     108u         /* sizeof(sun_path), NUL included */
#define POL_ADDR_LEN       HV_ADDR_LEN  /* addresses are host-vfio's (hv_pci_addr_parse) */
#define POL_NAME_MAX       64u
#define POL_MAX_HANDSHAKE_TIMEOUT_MS 3600000u
#define POL_TRACE_MAX      256u         /* "trace" path, NUL included */
#define POL_MAX_INJECT     8u           /* entries in "inject" */
#define POL_INJECT_MAX     160u         /* one "inject" rule, NUL included */


/* What an entry matches. Every key present must hold (AND); at least one. */
#define POL_MATCH_ADDR  (1u << 0)
#define POL_MATCH_ID    (1u << 1)
#define POL_MATCH_CLASS (1u << 2)
struct pol_match {
    unsigned keys;               /* POL_MATCH_* present */
    char addr[POL_ADDR_LEN];     /* canonical "0000:01:00.0" */
    int32_t vendor, device;      /* -1 = any ("8086:*") */
    uint32_t class_code;         /* 24-bit, compared under class_mask */
    uint32_t class_mask;         /* 0xff0000, 0xffff00 or 0xffffff */
};

/* "group_clients" (the values of the bridge's --group-clients). */
enum pol_group_clients {
    POL_GROUP_CLIENTS_SAME_VM = 0,  /* one process (pid and uid): one VM; the default */
    POL_GROUP_CLIENTS_SAME_UID,     /* processes of one uid */
    POL_GROUP_CLIENTS_ANY,          /* anyone each socket admits */
};
/* Its name in the policy ("same-vm", ...). */
const char *pol_group_clients_name(enum pol_group_clients v);

/* Per-device settings (also the shape of "defaults"). A *_set flag says the
 * key was given; unset owner/group mean "leave as created" (the daemon's
 * uid/gid), unset mode means POL_DEFAULT_SOCKET_MODE. */
struct pol_settings {
    char socket[POL_SOCKET_MAX];  /* template; "{address}" is replaced; "" = default */
    bool owner_set, group_set, mode_set;
    uid_t socket_owner;
    gid_t socket_group;
    mode_t socket_mode;
    /* Allow-list checked with SO_PEERCRED. Both empty = anyone who can open
     * the socket; otherwise a peer is allowed if its uid is listed or its
     * primary or a supplementary gid is listed. */
    size_t n_uids, n_gids;
    uid_t allow_uids[POL_MAX_PEERS];
    gid_t allow_gids[POL_MAX_PEERS];
    /* Drop privileges to this user after the VFIO group is open. */
    bool user_set;
    uid_t user_uid;
    gid_t user_gid;
    char user_name[POL_NAME_MAX];
    bool no_mmap;              /* trap every region access, never hand out the device fd */
    bool sparse_msix;          /* report MSI-X table/PBA as holes in a sparse mmap cap
                                * (the default now; kept so old files still load) */
    bool msix_mmap_kernel;     /* "msix_mmap": "kernel": the kernel's caps (MSIX_MAPPABLE) */
    bool reset_on_disconnect;  /* VFIO_DEVICE_RESET when a client goes away (default true) */
    bool bind;                 /* udev helper binds matching devices to vfio-pci */
    /* Cap on the bytes a client may map for DMA (pinned memory); unset =
     * the bridge's default (half the host's RAM). */
    bool max_dma_bytes_set;
    uint64_t max_dma_bytes;
    /* VERSION must come within this time of connecting; 0 = the default. */
    uint32_t handshake_timeout_ms;
    bool stale_kill;           /* "stale_holders": "kill" (default "refuse") */
    /* Who may be the clients of the functions of one IOMMU group at once
     * (a daemon serving several; the members' entries must agree). */
    bool group_clients_set;
    enum pol_group_clients group_clients;
    /* Testing clients (docs/testing-clients.md): --trace, --trace-data, --inject. */
    char trace[POL_TRACE_MAX]; /* absolute path; "" = none */
    bool trace_data;
    size_t n_inject;
    char inject[POL_MAX_INJECT][POL_INJECT_MAX];   /* checked with br_inject_parse */
};

struct pol_entry {
    unsigned index;            /* position in "devices" */
    struct pol_match match;
    bool export_;              /* false: matched devices are explicitly not exported */
    struct pol_settings s;     /* defaults overlaid with this entry's keys */
};

struct pol {
    char path[256];            /* the name used in messages */
    int version;
    struct pol_settings defaults;
    size_t n_entries;
    struct pol_entry *entries;
};

/* Identity of a PCI function, as matched against. */
struct pol_ident {
    char addr[POL_ADDR_LEN];
    uint16_t vendor, device;
    uint32_t class_code;       /* 24-bit */
    char driver[POL_NAME_MAX]; /* current driver, "" if none */
};

/* Load and validate a policy file. *out is malloc'd (free with pol_free).
 * -ENOENT/-EACCES/... if the file cannot be read, -EFBIG if it is larger
 * than POL_MAX_FILE_SIZE, -EINVAL for a syntax or semantic error (a user or
 * group name that does not resolve included: -ENOENT is only ever about the
 * file). */
int pol_load_file(const char *path, struct pol **out, struct vub_err *err);
/* The same from memory; `name` is used in messages as the file name. */
int pol_load_string(const char *name, const char *text, size_t len, struct pol **out,
                    struct vub_err *err);
void pol_free(struct pol *p);

/* The first entry matching `id`, or NULL. */
const struct pol_entry *pol_lookup(const struct pol *p, const struct pol_ident *id);

/* What the policy decides for one device, with the socket path expanded. */
struct pol_decision {
    const struct pol_entry *entry;   /* NULL: no entry matched */
    bool exported;                   /* entry && entry->export_ */
    char socket[POL_SOCKET_MAX];     /* expanded path (only if exported) */
};
/* Decide for `id`. 0 (also when not exported: see out->exported); -ENAMETOOLONG
 * (with message) if the expanded socket path does not fit sun_path. */
int pol_decide(const struct pol *p, const struct pol_ident *id, struct pol_decision *out,
               struct vub_err *err);

/* Read vendor, device, class and driver of `addr` from <sysfs>/bus/pci/devices
 * (through host-vfio: hv_sysfs_driver, hv_sysfs_hex_attr). `addr` is
 * canonicalised first with hv_pci_addr_parse, the grammar of every PCI address
 * in the project (the policy's "address" key too). -EINVAL bad address,
 * -ENODEV no such function, -EIO unreadable/garbled attributes. */
int pol_ident_from_sysfs(const char *sysfs, const char *addr, struct pol_ident *out,
                         struct vub_err *err);

/* ---- IOMMU groups ----------------------------------------------------------------- */

/* Members of one IOMMU group looked at; a group with more is refused. */
#define POL_GROUP_MAX_MEMBERS 32u

/* What the policy decides for every function of one IOMMU group, read from
 * <sysfs>/kernel/iommu_groups/<number>/devices (sorted by address). */
struct pol_group_member {
    struct pol_ident id;
    struct pol_decision d;
    bool unreadable;      /* its sysfs could not be read: not decided (d.exported false) */
    char why[200];        /* ... the message naming it */
};
struct pol_group {
    int number;
    size_t n;
    struct pol_group_member m[POL_GROUP_MAX_MEMBERS];
    size_t n_exported;    /* members the policy exports */
    size_t n_on_vfio;     /* ... of which bound to vfio-pci now */
    size_t n_elsewhere;   /* ... of which bound to another driver */
    size_t n_unreadable;  /* members whose sysfs could not be read (gone since the
                           * listing, unreadable attributes): left out, judged alone */
    /* "group_clients" of the exported members (one value: they must agree;
     * unset counts as "same-vm"); set: some entry gives it. */
    bool clients_set;
    enum pol_group_clients clients;
};
/* The IOMMU group number of `addr` (its iommu_group link): 0, -ENOENT (the
 * function has no group: no IOMMU), -ENODEV/-EINVAL as pol_ident_from_sysfs. */
int pol_group_of(const char *sysfs, const char *addr, int *number, struct vub_err *err);
/* Decide for every member of group `number`. A member whose sysfs cannot be
 * read is marked unreadable and not decided (the others are: one member's
 * trouble is its own). -ENOENT no such group, -E2BIG more than
 * POL_GROUP_MAX_MEMBERS members, -EINVAL when the entries of the
 * exported members give different "group_clients" (the message names the
 * key, both devices and their entries), else as pol_ident_from_sysfs and
 * pol_decide; the message names the group. */
int pol_group_decide(const struct pol *p, const char *sysfs, int number, struct pol_group *out,
                     struct vub_err *err);

#endif /* VUB_POLICY_H */
