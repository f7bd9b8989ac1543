/* SPDX-License-Identifier: MIT */
/*
 * probe.h - vfio-user-probe: an lspci-like view of any vfio-user socket and
 * self-tests that drive an edu or nvme device through it.
 */
#ifndef PROBE_H
#define PROBE_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include "vu_client.h"

struct probe_opts {
    const char *socket;
    bool json;
    const char *selftest;       /* "edu", "nvme" or NULL */
    const char *expect_serial;  /* nvme: serial number IDENTIFY must report */
    const char *expect_data;    /* nvme: LBA 0 of namespace 1 must start with this */
    bool expect_sparse;         /* nvme: BAR0 must carry the MSI-X holes as sparse areas */
    bool expect_no_mmap;        /* no region may be offered for mmap (bridge --no-mmap) */
    bool hold;                  /* edu: stop with DMA mapped and MSI armed, wait to be killed */
    int timeout_ms;             /* per reply */
};

/* ---- config space decoding (pcicfg.c) -------------------------------------- */

enum pv_kind { PV_U64, PV_HEX, PV_STR, PV_BOOL };

struct pv_field {
    const char *key;
    enum pv_kind kind;
    uint64_t u;
    char s[64];
};

#define PV_MAX_FIELDS 16
#define PV_MAX_CAPS 48

struct pv_cap {
    uint16_t id;
    uint16_t off;
    bool ext;            /* PCIe extended capability */
    uint8_t version;     /* ext caps: the header's version */
    const char *name;
    int nf;
    struct pv_field f[PV_MAX_FIELDS];
};

struct pv_config {
    size_t len;          /* bytes of config space that were read */
    uint16_t vendor, device, subsys_vendor, subsys_device, command, status;
    uint32_t class_code; /* base << 16 | sub << 8 | prog-if */
    uint8_t revision, header_type, int_pin, int_line;
    uint32_t bar[6];
    int ncaps;
    struct pv_cap caps[PV_MAX_CAPS];
    char problem[128];   /* a loop or a bad pointer in a chain, if any */
};

/* Decode what config space bytes say (len 64..4096). Never reads outside
 * cfg[0..len). */
void pv_config_decode(const uint8_t *cfg, size_t len, struct pv_config *out);
/* The capability of that id (standard or extended), or NULL. */
const struct pv_cap *pv_config_find(const struct pv_config *pc, bool ext, uint16_t id);
/* A field of a capability by key, or NULL. */
const struct pv_field *pv_cap_field(const struct pv_cap *cap, const char *key);

/* ---- names (names.c, libpci) ----------------------------------------------- */

struct pv_names {
    char vendor[128], device[128], subsys[160], class_name[128], progif[64];
};
void pv_lookup_names(const struct pv_config *pc, struct pv_names *out);

/* ---- the view (view.c) -------------------------------------------------------- */

int probe_view(struct vu_client *c, const struct probe_opts *o);
/* Read `len` bytes of config space (region 7) in pieces the server accepts. */
int probe_read_config(struct vu_client *c, uint8_t *buf, size_t len);

/* ---- self-tests (selftest.c, st_edu.c, st_nvme.c) ---------------------------- */

struct st {
    int passed, failed, skipped;
    struct vu_client *c;
    const struct probe_opts *o;
};
/* Record one check and print "ok   - what" or "FAIL - what"; returns cond. */
bool st_check(struct st *t, bool cond, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void st_skip(struct st *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void st_info(struct st *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the summary line; 0 if nothing failed, else 1. */
int st_finish(struct st *t);

/* Little-endian register access through REGION_READ/WRITE; -errno or 0. */
int st_rd32(struct st *t, uint32_t region, uint64_t off, uint32_t *v);
int st_wr32(struct st *t, uint32_t region, uint64_t off, uint32_t v);
int st_rd64(struct st *t, uint32_t region, uint64_t off, uint64_t *v);
int st_wr64(struct st *t, uint32_t region, uint64_t off, uint64_t v);
int st_rd16(struct st *t, uint32_t region, uint64_t off, uint16_t *v);
int st_wr16(struct st *t, uint32_t region, uint64_t off, uint16_t v);
/* Wait up to ms for an eventfd to fire; returns its counter (> 0), 0 on
 * timeout, -errno on error. */
int64_t st_wait_eventfd(int efd, int ms);
/* Monotonic milliseconds. */
uint64_t st_now_ms(void);

/* A region mmapped through the fd of its region info reply. */
struct st_map {
    volatile uint8_t *p;
    size_t len;
};
/* Map region `index` if the server allows it: the whole region, or with a
 * sparse-mmap capability only its areas (the holes stay PROT_NONE). 0 with
 * m->p NULL when the region is not mmappable, -errno on failure. */
int st_map_region(struct st *t, uint32_t index, struct st_map *m, struct vu_client_region *info);
void st_unmap(struct st_map *m);

/* A memfd of `len` bytes, mapped here. */
struct st_mem {
    int fd;
    uint8_t *p;
    size_t len;
};
int st_mem_alloc(struct st_mem *m, size_t len);
void st_mem_free(struct st_mem *m);

int selftest_edu(struct vu_client *c, const struct probe_opts *o);
int selftest_nvme(struct vu_client *c, const struct probe_opts *o);

/* ---- trace summary (summary.c) ------------------------------------------------ */

/* Read a bridge trace (vfio-user-bridge --trace, one JSON object per line)
 * from `in` and print for a human: per command the count, errors, injected
 * faults and handling time (median, p99 by nearest rank, max, in us); the
 * errnos per command; the first error with its request's fields and reason;
 * the first injected fault; how the sessions ended. Unreadable lines are
 * counted and skipped. 0 or -ENOMEM. */
int probe_summarize(FILE *in, const char *name, FILE *out);

#endif /* PROBE_H */
