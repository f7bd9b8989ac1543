/* SPDX-License-Identifier: MIT */
/*
 * pers.h - vu-personality: test clients that speak vfio-user the way one
 * real client does (QEMU 11, cloud-hypervisor's rust-vmm vfio_user::Client,
 * SPDK's NVMe initiator, libvfio-user's sample client, a minimal spec-only
 * client) and check what that client would accept.
 *
 * Each personality builds its own bytes (only the struct layouts of
 * src/vu_wire.h are shared; the project's client library is NOT used, so a
 * personality cannot inherit the project's own habits). The facts behind
 * each one are in shared/CLIENTS.md and docs/clients.md.
 *
 * A personality fails with a message naming the step and what the real
 * client would have done ("ch: GET_REGION_INFO 8: reply is 16 bytes, ch
 * reads exactly 48: the stream desynchronises").
 */
#ifndef PERS_H
#define PERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vu_wire.h"

/* Bounds on what a server may make us hold. */
#define P_MAX_REPLY     ((1u << 20) + 4096u)  /* largest reply read whole */
#define P_MAX_FDS       64                    /* fds collected from one reply */
#define P_MAX_REGIONS   16
#define P_MAX_AREAS     16
#define P_MAX_MAPS      32
#define P_MAX_VECTORS   2048

enum p_device { P_DEV_EDU, P_DEV_NVME };

/* One whole received message. */
struct p_msg {
    struct vu_hdr hdr;
    uint8_t *body;            /* msg_size - 16 bytes, malloc'd */
    uint32_t len;             /* body length */
    int fds[P_MAX_FDS];
    int nfds;                 /* fds that came with the header bytes */
    int late_fds;             /* fds that came with later bytes */
    bool ctrunc;              /* more fds were sent than we could take */
};

/* What a personality learnt about one region. */
struct p_region {
    bool valid;
    uint32_t flags, cap_offset, argsz;
    uint64_t size, offset;
    bool has_sparse, has_msix_mappable;
    uint32_t nr_areas;
    struct vu_sparse_mmap_area areas[P_MAX_AREAS];
    int fds[P_MAX_AREAS];     /* fds as the client holds them (-1 none) */
    int nfds;
};

/* A mapping of part of a region into our address space. */
struct p_map {
    uint32_t region;
    uint64_t off, size;       /* region-relative */
    void *ptr;
};

struct p_ctx;

/* The operations a personality implements, each with its client's bytes and
 * its client's acceptance rules. Return 0, or -1 after p_fail(). For a
 * client that ignores error replies, an error reply may return 0. */
struct p_ops {
    const char *name;         /* "qemu" */
    const char *what;         /* "QEMU 11.1 vfio-user-pci" */
    int (*version)(struct p_ctx *c);
    int (*get_info)(struct p_ctx *c, struct vu_device_info *out);
    /* Fill c->reg[index] (and its fds). */
    int (*region_info)(struct p_ctx *c, uint32_t index);
    /* Map the mmappable parts of a region the way the client does. */
    int (*map_region)(struct p_ctx *c, uint32_t index);
    int (*irq_info)(struct p_ctx *c, uint32_t index, struct vu_irq_info *out);
    /* count fds (count may be 0 with fds NULL for DATA_NONE). */
    int (*set_irqs)(struct p_ctx *c, uint32_t index, uint32_t flags, uint32_t start,
                    uint32_t count, const int *fds);
    int (*region_read)(struct p_ctx *c, uint32_t region, uint64_t off, void *buf, uint32_t len);
    int (*region_write)(struct p_ctx *c, uint32_t region, uint64_t off, const void *buf,
                        uint32_t len);
    int (*dma_map)(struct p_ctx *c, int fd, uint64_t fd_off, uint64_t iova, uint64_t size);
    int (*dma_unmap)(struct p_ctx *c, int fd, uint64_t iova, uint64_t size);
    int (*reset)(struct p_ctx *c);      /* NULL: never resets */

    /* Behaviour of the client around those messages. */
    enum { P_RESET_IF_FLAG, P_RESET_IF_NOT_FLAG, P_RESET_NEVER } reset_when;
    bool reset_early;         /* right after the region walk (ch), else after DMA */
    enum { P_IRQ_NONE, P_IRQ_MSI, P_IRQ_INTX } irq_kind;   /* on edu */
    bool nvme_msix;           /* enables MSI-X vectors on nvme */
    bool requires_bar0_doorbells;   /* nvme: BAR0 0x1000-0x2000 must be mapped */
    bool refuses_msix_in_map;       /* an MSI-X table or PBA inside a mapping fails */
    bool iova_is_vaddr;       /* DMA address = the client's virtual address */
    uint64_t dma_size;        /* bytes of "guest RAM" it maps */
    /* Region indexes it asks about: all of 0..num_regions-1, or a mask. */
    uint32_t region_mask;     /* 0 = every index */
    uint32_t irq_mask;        /* IRQ indexes it asks about; 0 = every index */
};

struct p_ctx {
    const struct p_ops *ops;
    enum p_device dev;
    const char *sock_path;
    int sock;
    unsigned round;           /* 0 first connection, 1.. reconnects */
    uint16_t next_id;
    /* negotiated */
    uint32_t max_msg_fds;     /* what the server said (default 1) */
    uint32_t max_xfer;        /* what the server said (default 1 MiB) */
    /* device */
    struct vu_device_info info;
    struct p_region reg[P_MAX_REGIONS];
    struct p_map maps[P_MAX_MAPS];
    int nmaps;
    /* config space facts */
    uint8_t msi_cap, msix_cap;
    uint32_t msix_bir, msix_table_off, msix_pba_bir, msix_pba_off, msix_count;
};

/* ---- reporting ------------------------------------------------------------- */
/* Print "ok   <client> <step>: ..." */
void p_ok(struct p_ctx *c, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Print "FAIL <client> <step>: ..." to stdout; returns -1. */
int p_fail(struct p_ctx *c, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "step: reason" of the first p_fail() of the run ("" if none). */
extern char p_first_failure[512];
void p_note(struct p_ctx *c, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- transport --------------------------------------------------------------- */
/* Send one request: header (msg_id, cmd, size = 16 + len, flags 0) and len
 * payload bytes in one sendmsg, with nfds fds attached. -1 after p_fail. */
int p_send(struct p_ctx *c, const char *step, uint16_t id, uint16_t cmd, const void *payload,
           uint32_t len, const int *fds, int nfds);
/* Send raw bytes (a header the caller built) with fds. */
int p_send_raw(struct p_ctx *c, const char *step, const void *buf, size_t len, const int *fds,
               int nfds);
/* Receive one whole message: the header with one recvmsg (fds there count as
 * "with the header"), then the rest. Bounded by P_MAX_REPLY. Waits at most
 * P_REPLY_TIMEOUT_MS. -1 after p_fail. */
int p_recv(struct p_ctx *c, const char *step, struct p_msg *m);
/* A REGION_WRITE body: the access header and up to 8 data bytes, as every
 * personality sends it (the framing and ids stay each client's own).
 * 0, or -1 after p_fail for a longer write. */
#define P_WRITE_BODY (sizeof(struct vu_region_access) + 8)
int p_pack_write(struct p_ctx *c, uint8_t *b, uint32_t region, uint64_t off, const void *buf,
                 uint32_t len);
/* A DMA_MAP body for a read/write mapping of the fd at fd_off, as every
 * personality sends it. */
struct vu_dma_map p_dma_map_rw(uint64_t fd_off, uint64_t iova, uint64_t size);
void p_msg_free(struct p_msg *m);
/* Common checks on a reply: it is a reply (type 1), of command cmd. When
 * want_id >= 0, its id must match. -1 after p_fail. */
int p_check_reply(struct p_ctx *c, const char *step, const struct p_msg *m, uint16_t cmd,
                  int want_id);
/* Close every fd in m (the client would not keep them). */
void p_msg_close_fds(struct p_msg *m);

/* ---- JSON (what the clients parse of a VERSION reply) ------------------------- */
enum p_jtype { P_J_NONE, P_J_OBJ, P_J_ARR, P_J_STR, P_J_NUM, P_J_BOOL, P_J_NULL };
#define P_JSON_MAX_KEYS 64
struct p_json {
    int n;
    struct {
        char path[96];        /* "capabilities.migration.pgsize" */
        enum p_jtype type;
        double num;           /* numbers */
        bool is_uint;         /* a non-negative integer literal */
        uint64_t u;
        bool b;
    } k[P_JSON_MAX_KEYS];
};
/* Parse a NUL-terminated JSON text. 0 if valid JSON whose top level is an
 * object; -1 with a reason in why otherwise. */
int p_json_parse(const char *text, struct p_json *out, char *why, size_t whysz);
/* The entry for path, or NULL. */
const void *p_json_get(const struct p_json *j, const char *path, enum p_jtype *type,
                       uint64_t *u, bool *is_uint, bool *b);
/* Number of direct children of the object at path ("" = top level). */
int p_json_children(const struct p_json *j, const char *path);

/* ---- life of a device ---------------------------------------------------------- */
/* Run one connection's whole life. 0 when everything the client would
 * accept held. */
int p_life(struct p_ctx *c);

/* Shared by personalities. */
int p_map_area(struct p_ctx *c, uint32_t index, int fd, uint64_t off, uint64_t size);
/* Parse the caps in a region info reply body (b, len bytes: the
 * vu_region_info and what follows) into r. -1 with reason. */
int p_parse_caps(const uint8_t *b, uint32_t len, struct p_region *r, char *why, size_t whysz);
uint32_t p_cfg_read(struct p_ctx *c, uint32_t off, uint32_t len, int *err);

/* The personalities. */
extern const struct p_ops p_qemu_ops, p_ch_ops, p_spdk_ops, p_lvu_ops, p_min_ops;

#define P_REPLY_TIMEOUT_MS 20000   /* guard only; replies are immediate */

#endif /* PERS_H */
