/* SPDX-License-Identifier: MIT */
/*
 * Functions of one IOMMU group served by one daemon (bridge/group.h): the
 * counted IOMMU mappings their DMA tables share (dma_shared.h), checked
 * through the simulated container both devices are attached to, and the
 * sessions of two servers on one group (who may be their clients, what a
 * client leaving releases).
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dma.h"
#include "dma_shared.h"
#include "group.h"
#include "harness.h"
#include "session.h"

#define RW (VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE)
#define PG 0x1000u

/* Two simulated functions on one simulated container, a registry and a
 * DMA table for each, as two sessions of one group have. */
struct pair {
    struct hv_iommu *io;
    struct hv_device *a, *b;
    struct br_dma_shared sh;
    struct br_dma_table ta, tb;
    int mem;                /* 1 MiB memfd, page n filled with byte n */
    int other;              /* another memory object */
};

static int pair_setup(void **state)
{
    struct pair *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    struct vub_err err = { "" };
    struct hv_sim_config sc;
    hv_sim_config_defaults(&sc);
    assert_int_equal(hv_sim_iommu_open(&sc, &p->io, &err), 0);
    sc.addr = "0000:01:01.0";
    assert_int_equal(hv_sim_open_on(&sc, p->io, &p->a, &err), 0);
    sc.addr = "0000:01:02.0";
    assert_int_equal(hv_sim_open_on(&sc, p->io, &p->b, &err), 0);
    br_dma_shared_init(&p->sh);
    br_dma_init(&p->ta, 1000, 0, 4096);
    br_dma_init(&p->tb, 1000, 0, 4096);
    p->ta.shared = p->tb.shared = &p->sh;
    p->mem = th_memfd(1u << 20);
    uint8_t *m = mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE, MAP_SHARED, p->mem, 0);
    assert_true(m != MAP_FAILED);
    for (unsigned i = 0; i < 256; i++)
        memset(m + i * PG, (int)i, PG);
    munmap(m, 1u << 20);
    p->other = th_memfd(1u << 20);
    *state = p;
    return 0;
}

static int pair_teardown(void **state)
{
    struct pair *p = *state;
    br_dma_unmap_all(&p->ta, p->a);
    br_dma_unmap_all(&p->tb, p->b);
    br_dma_free(&p->ta);
    br_dma_free(&p->tb);
    br_dma_shared_destroy(&p->sh);
    close(p->mem);
    close(p->other);
    hv_close(p->a);
    hv_close(p->b);
    hv_iommu_put(p->io);
    free(p);
    return 0;
}

static size_t iommu_maps(struct pair *p) { return hv_sim_stats_of(p->a).dma_maps; }

/* The byte the device reads at iova (through function d), or -errno. */
static int device_byte(struct hv_device *d, uint64_t iova)
{
    uint8_t b;
    int r = hv_sim_dma_read(d, iova, &b, 1);
    return r < 0 ? r : b;
}

/* Identical mappings on both functions: one IOMMU mapping, counted twice.
 * (Without the registry, the code this started from, the second function's
 * map reaches the IOMMU again and the kernel refuses it with EEXIST.) */
static void test_identical_shared(void **state)
{
    struct pair *p = *state;
    assert_int_equal(br_dma_map(&p->ta, p->a, 0x100000, 4 * PG, 8 * PG, RW, dup(p->mem)), 0);
    assert_int_equal(br_dma_map(&p->tb, p->b, 0x100000, 4 * PG, 8 * PG, RW, dup(p->mem)), 0);
    assert_int_equal(iommu_maps(p), 1);
    assert_int_equal(p->sh.nk, 1);
    assert_int_equal(p->sh.nh, 2);
    assert_int_equal(p->sh.shared_hits, 1);
    assert_int_equal(p->ta.n, 1);
    assert_int_equal(p->tb.n, 1);
    /* both devices see the one mapping: page 8 of the object at the IOVA */
    assert_int_equal(device_byte(p->a, 0x100000), 8);
    assert_int_equal(device_byte(p->b, 0x100000 + 3 * PG), 11);

    /* the landed behaviour: a table without the registry maps again */
    struct br_dma_table alone;
    br_dma_init(&alone, 16, 0, 4096);
    assert_int_equal(br_dma_map(&alone, p->b, 0x100000, 4 * PG, 8 * PG, RW, dup(p->mem)),
                     -EEXIST);
    br_dma_free(&alone);
}

/* A mapping that differs in anything (object, offset, protection, range)
 * from one the IOMMU has is refused, and changes nothing. */
static void test_conflict_refused(void **state)
{
    struct pair *p = *state;
    p->sh.conflict_wait_ms = 20;   /* nothing will change: refused after the wait */
    assert_int_equal(br_dma_map(&p->ta, p->a, 0x100000, 4 * PG, 0, RW, dup(p->mem)), 0);
    /* another object */
    assert_int_equal(br_dma_map(&p->tb, p->b, 0x100000, 4 * PG, 0, RW, dup(p->other)), -EEXIST);
    /* another offset */
    assert_int_equal(br_dma_map(&p->tb, p->b, 0x100000, 4 * PG, PG, RW, dup(p->mem)), -EEXIST);
    /* another protection */
    assert_int_equal(br_dma_map(&p->tb, p->b, 0x100000, 4 * PG, 0, VU_DMA_MAP_FLAG_READ,
                                dup(p->mem)), -EEXIST);
    /* a part of it, and a range around it, each with another offset */
    assert_int_equal(br_dma_map(&p->tb, p->b, 0x101000, PG, 0, RW, dup(p->mem)), -EEXIST);
    assert_int_equal(br_dma_map(&p->tb, p->b, 0x0ff000, 6 * PG, 0, RW, dup(p->mem)), -EEXIST);
    assert_int_equal(p->sh.conflicts, 5);
    assert_int_equal(p->tb.n, 0);
    assert_int_equal(p->tb.bytes, 0);
    assert_int_equal(iommu_maps(p), 1);
    assert_int_equal(p->sh.nh, 1);
    /* next to it is fine */
    assert_int_equal(br_dma_map(&p->tb, p->b, 0x104000, PG, 0, RW, dup(p->other)), 0);
    assert_int_equal(iommu_maps(p), 2);
}

/* The IOMMU unmap waits for the last table: the first one's unmap (and
 * even its memory going: the mapping pins the pages) leaves the device
 * reaching the pages. */
static void test_last_user_unmaps(void **state)
{
    struct pair *p = *state;
    assert_int_equal(br_dma_map(&p->ta, p->a, 0x200000, 2 * PG, 4 * PG, RW, dup(p->mem)), 0);
    assert_int_equal(br_dma_map(&p->tb, p->b, 0x200000, 2 * PG, 4 * PG, RW, dup(p->mem)), 0);
    assert_int_equal(br_dma_unmap(&p->ta, p->a, 0x200000, 2 * PG), 1);
    assert_int_equal(p->ta.n, 0);
    assert_int_equal(iommu_maps(p), 1);
    /* A lets go of its memory altogether */
    br_dma_free(&p->ta);
    br_dma_init(&p->ta, 1000, 0, 4096);
    p->ta.shared = &p->sh;
    assert_int_equal(device_byte(p->b, 0x200000 + PG), 5);
    assert_int_equal(br_dma_unmap(&p->tb, p->b, 0x200000, 2 * PG), 1);
    assert_int_equal(iommu_maps(p), 0);
    assert_int_equal(p->sh.nh, 0);
    assert_int_equal(device_byte(p->b, 0x200000), -EFAULT);
    /* and the range is free for anything now */
    assert_int_equal(br_dma_map(&p->ta, p->a, 0x200000, 2 * PG, 0, RW, dup(p->other)), 0);
}

/* One function's unmap-all (what its session's end does) removes from the
 * IOMMU only what the other does not hold. */
static void test_unmap_all_leaves_other(void **state)
{
    struct pair *p = *state;
    /* A: X (shared) and Y; B: X and Z */
    assert_int_equal(br_dma_map(&p->ta, p->a, 0x100000, PG, 1 * PG, RW, dup(p->mem)), 0);
    assert_int_equal(br_dma_map(&p->ta, p->a, 0x300000, PG, 2 * PG, RW, dup(p->mem)), 0);
    assert_int_equal(br_dma_map(&p->tb, p->b, 0x100000, PG, 1 * PG, RW, dup(p->mem)), 0);
    assert_int_equal(br_dma_map(&p->tb, p->b, 0x500000, PG, 3 * PG, RW, dup(p->mem)), 0);
    assert_int_equal(iommu_maps(p), 3);
    assert_int_equal(br_dma_unmap_all(&p->ta, p->a), 0);
    br_dma_free(&p->ta);   /* its backings unmapped and closed, as at a session end */
    br_dma_init(&p->ta, 1000, 0, 4096);
    p->ta.shared = &p->sh;
    assert_int_equal(iommu_maps(p), 2);
    assert_int_equal(device_byte(p->b, 0x100000), 1);   /* X: B's still */
    assert_int_equal(device_byte(p->b, 0x300000), -EFAULT);   /* Y: gone */
    assert_int_equal(device_byte(p->b, 0x500000), 3);   /* Z */
    assert_int_equal(p->tb.n, 2);
    assert_int_equal(br_dma_unmap_all(&p->tb, p->b), 0);
    assert_int_equal(iommu_maps(p), 0);
    assert_int_equal(p->sh.nh, 0);
    assert_int_equal(p->sh.nk, 0);
    assert_int_equal(p->sh.bytes, 0);
}

/* A range unmap by one function (a guest IOMMU invalidating a range)
 * removes every mapping of its own inside the range from its table, and
 * from the IOMMU those the other function does not hold. */
static void test_range_unmap_one_function(void **state)
{
    struct pair *p = *state;
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(br_dma_map(&p->ta, p->a, 0x100000 + i * PG, PG, i * PG, RW,
                                    dup(p->mem)), 0);
    /* B holds the second and an own one inside the range */
    assert_int_equal(br_dma_map(&p->tb, p->b, 0x101000, PG, PG, RW, dup(p->mem)), 0);
    assert_int_equal(br_dma_map(&p->tb, p->b, 0x108000, PG, 8 * PG, RW, dup(p->mem)), 0);
    assert_int_equal(iommu_maps(p), 5);
    /* a range that cuts a mapping of A's: refused, nothing removed */
    assert_int_equal(br_dma_unmap(&p->ta, p->a, 0x100800, 0x2000), -EINVAL);
    assert_int_equal(p->ta.n, 4);
    /* A's whole range: its 4 gone from its table, 3 from the IOMMU */
    assert_int_equal(br_dma_unmap(&p->ta, p->a, 0x100000, 0x10000), 4);
    assert_int_equal(p->ta.n, 0);
    assert_int_equal(iommu_maps(p), 2);
    assert_int_equal(device_byte(p->b, 0x101000), 1);
    assert_int_equal(device_byte(p->b, 0x108000), 8);
    assert_int_equal(device_byte(p->b, 0x100000), -EFAULT);
    assert_int_equal(device_byte(p->b, 0x103000), -EFAULT);
    /* B's range unmap over everything */
    assert_int_equal(br_dma_unmap(&p->tb, p->b, 0, 1ull << 40), 2);
    assert_int_equal(iommu_maps(p), 0);
    assert_int_equal(p->sh.nh, 0);
}

/* QEMU's two sockets while the guest's memory layout changes, interleaved
 * (seen in the e2e run: one function unmapped RAM [0, 128M) and mapped
 * [0, 0xc0000) of it while the other still had the whole): a piece of a
 * mapping the other function has, of the same object at the same offset,
 * is no conflict; once the other unmaps the whole, the IOMMU keeps exactly
 * the piece. */
static void test_layout_change_interleaved(void **state)
{
    struct pair *p = *state;
    const uint64_t ram = 64 * PG;
    assert_int_equal(br_dma_map(&p->ta, p->a, 0, ram, 0, RW, dup(p->mem)), 0);
    assert_int_equal(br_dma_map(&p->tb, p->b, 0, ram, 0, RW, dup(p->mem)), 0);
    assert_int_equal(br_dma_unmap(&p->ta, p->a, 0, ram), 1);
    assert_int_equal(iommu_maps(p), 1);   /* B's */
    assert_int_equal(br_dma_map(&p->ta, p->a, 0, 12 * PG, 0, RW, dup(p->mem)), 0);
    assert_int_equal(br_dma_map(&p->ta, p->a, 16 * PG, ram - 16 * PG, 16 * PG, RW,
                                dup(p->mem)), 0);
    assert_int_equal(p->sh.conflicts, 0);
    assert_int_equal(iommu_maps(p), 1);   /* all inside B's: nothing new */
    assert_int_equal(br_dma_unmap(&p->tb, p->b, 0, ram), 1);
    /* the IOMMU has exactly A's two pieces now */
    assert_int_equal(iommu_maps(p), 2);
    assert_true(hv_sim_stats_of(p->a).dma_bytes == ram - 4 * PG);
    assert_int_equal(device_byte(p->a, 11 * PG), 11);
    assert_int_equal(device_byte(p->a, 12 * PG), -EFAULT);
    assert_int_equal(device_byte(p->a, 15 * PG), -EFAULT);
    assert_int_equal(device_byte(p->a, 16 * PG), 16);
    assert_int_equal(device_byte(p->a, ram - 1), 63);
    /* B follows A's layout: shared again */
    assert_int_equal(br_dma_map(&p->tb, p->b, 0, 12 * PG, 0, RW, dup(p->mem)), 0);
    assert_int_equal(iommu_maps(p), 2);
    assert_int_equal(br_dma_unmap_all(&p->ta, p->a), 0);
    assert_int_equal(iommu_maps(p), 1);
    assert_true(hv_sim_stats_of(p->a).dma_bytes == 12 * PG);
}

/* QEMU's layout change reaches the two sockets one after the other: a map
 * on A can meet B's old mapping while B's unmap of it is still on its way.
 * The map waits for B's table to change and then succeeds; B's mapping
 * that never goes is refused after conflict_wait_ms. (Without the wait, the
 * landed code, the first map is refused at once: the e2e's "DMA_MAP
 * 0x0+0xd8000: File exists".) */
struct late_unmap {
    struct pair *p;
    uint64_t iova, size;
    int r;
};

static void *unmap_later(void *arg)
{
    struct late_unmap *u = arg;
    struct timespec d = { 0, 100 * 1000 * 1000 };
    nanosleep(&d, NULL);
    u->r = br_dma_unmap(&u->p->tb, u->p->b, u->iova, u->size);
    return NULL;
}

static void test_conflict_waits_for_other_unmap(void **state)
{
    struct pair *p = *state;
    p->sh.conflict_wait_ms = 10000;   /* generous: the unmap comes after 100 ms */
    /* B: the old layout, [12, 16) pages read-only (a ROM window) */
    assert_int_equal(br_dma_map(&p->tb, p->b, 12 * PG, 4 * PG, 12 * PG, VU_DMA_MAP_FLAG_READ,
                                dup(p->mem)), 0);
    /* A has moved on: [0, 20) writable, which B's old window contradicts */
    struct late_unmap u = { p, 12 * PG, 4 * PG, -1 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, unmap_later, &u), 0);
    assert_int_equal(br_dma_map(&p->ta, p->a, 0, 20 * PG, 0, RW, dup(p->mem)), 0);
    pthread_join(t, NULL);
    assert_int_equal(u.r, 1);
    assert_int_equal(p->sh.conflict_waits, 1);
    assert_int_equal(p->sh.conflicts, 0);
    assert_int_equal(device_byte(p->a, 13 * PG), 13);
    /* a conflict that stays is still refused, after the wait */
    p->sh.conflict_wait_ms = 50;
    assert_int_equal(br_dma_map(&p->tb, p->b, 4 * PG, PG, 0, RW, dup(p->other)), -EEXIST);
    assert_int_equal(p->sh.conflicts, 1);
    assert_int_equal(device_byte(p->a, 4 * PG), 4);
}

/* Overlapping ranges that agree, neither inside the other: the IOMMU
 * covers their union, and keeps what the remaining one has. */
static void test_consistent_overlap(void **state)
{
    struct pair *p = *state;
    assert_int_equal(br_dma_map(&p->tb, p->b, 0x100000, 0x20000, 0, RW, dup(p->mem)), 0);
    /* A: [0x110000, 0x130000), the same translation (offset - iova) */
    assert_int_equal(br_dma_map(&p->ta, p->a, 0x110000, 0x20000, 0x10000, RW, dup(p->mem)), 0);
    assert_int_equal(iommu_maps(p), 2);   /* B's and the gap [0x120000, 0x130000) */
    assert_true(hv_sim_stats_of(p->a).dma_bytes == 0x30000);
    assert_int_equal(p->sh.shared_hits, 0);
    /* the same overlap with another translation is a conflict */
    assert_int_equal(br_dma_map(&p->ta, p->a, 0x0f0000, 0x18000, 0x20000, RW, dup(p->mem)),
                     -EEXIST);
    assert_int_equal(br_dma_unmap(&p->tb, p->b, 0x100000, 0x20000), 1);
    /* B's mapping cut down to what A has */
    assert_true(hv_sim_stats_of(p->a).dma_bytes == 0x20000);
    assert_int_equal(device_byte(p->a, 0x100000), -EFAULT);
    assert_int_equal(device_byte(p->a, 0x110000), 16);
    assert_int_equal(device_byte(p->a, 0x12f000), 47);
    assert_int_equal(p->sh.remaps, 1);
    assert_int_equal(br_dma_unmap(&p->ta, p->a, 0x110000, 0x20000), 1);
    assert_int_equal(iommu_maps(p), 0);
    assert_int_equal(p->sh.nk, 0);
}

/* ---- two servers on one group ---------------------------------------------------- */

struct two {
    struct hv_iommu *io;
    struct br_group g;
    struct th a, b;
};

static struct two *two_new_ex(enum br_group_clients rule, bool bus_only);
static struct two *two_new(enum br_group_clients rule) { return two_new_ex(rule, false); }

/* bus_only: neither function has a reset of its own; their bus can be reset. */
static struct two *two_new_ex(enum br_group_clients rule, bool bus_only)
{
    struct two *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    struct vub_err err = { "" };
    assert_int_equal(hv_sim_iommu_open(NULL, &w->io, &err), 0);
    br_group_init(&w->g, 7, rule);
    th_init(&w->a);
    w->a.sc.addr = "0000:01:01.0";
    th_init_nvme(&w->b);
    w->b.sc.addr = "0000:01:02.0";
    if (bus_only) {
        w->a.sc.reset = w->b.sc.reset = false;
        w->a.sc.bus_reset = w->b.sc.bus_reset = true;
    }
    w->a.io = w->b.io = w->io;
    w->a.group = w->b.group = &w->g;
    th_start(&w->a);
    th_start(&w->b);
    return w;
}

static void two_free(struct two *w)
{
    th_stop(&w->a);
    th_stop(&w->b);
    br_group_destroy(&w->g);
    hv_iommu_put(w->io);
    free(w);
}

static int dma_map_msg(struct vu_client *c, uint64_t iova, uint64_t size, uint64_t off, int fd)
{
    struct vu_dma_map req = { .argsz = sizeof(req), .flags = RW, .offset = off,
                                  .address = iova, .size = size };
    return th_call(c, VU_CMD_DMA_MAP, 0, &req, sizeof(req), &fd, 1, NULL);
}

/* One VM (this process) on both functions: the same DMA_MAP on both
 * sockets is one IOMMU mapping; the first client leaving quiesces and
 * resets its function only, and the device still reaches the memory
 * through the other. */
static void test_one_vm_two_functions(void **state)
{
    (void)state;
    struct two *w = two_new(BR_GROUP_CLIENTS_SAME_VM);
    int mem = th_memfd(1u << 20);
    uint8_t *m = mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mem, 0);
    assert_true(m != MAP_FAILED);
    memset(m, 0x5a, 1u << 20);
    struct vu_client *ca = th_connect(&w->a, true), *cb = th_connect(&w->b, true);
    assert_int_equal(dma_map_msg(ca, 0x100000, 0x10000, 0, mem), 0);
    assert_int_equal(dma_map_msg(cb, 0x100000, 0x10000, 0, mem), 0);
    assert_int_equal(hv_sim_stats_of(w->a.hv).dma_maps, 1);
    /* a conflicting map on the other socket is refused */
    assert_int_equal(dma_map_msg(cb, 0x108000, 0x1000, 0x1000, mem), -EEXIST);
    vu_client_close(ca);
    th_wait_closed(&w->a, 1);
    assert_int_equal(hv_sim_stats_of(w->a.hv).resets, 1);
    assert_int_equal(hv_sim_stats_of(w->b.hv).resets, 0);
    assert_int_equal(hv_sim_stats_of(w->b.hv).dma_maps, 1);
    uint8_t b = 0;
    assert_int_equal(hv_sim_dma_read(w->b.hv, 0x10f000, &b, 1), 0);
    assert_int_equal(b, 0x5a);
    vu_client_close(cb);
    th_wait_closed(&w->b, 1);
    assert_int_equal(hv_sim_stats_of(w->b.hv).dma_maps, 0);
    assert_int_equal(w->g.dma.nh, 0);
    munmap(m, 1u << 20);
    close(mem);
    two_free(w);
}

/* Connect to path from a child process; exit 0 if the bridge closed the
 * connection without answering VERSION (refused), 1 if it negotiated. */
static int child_connects(const char *path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct vu_client *c = NULL;
        struct vub_err err = { "" };
        if (vu_client_connect(path, &c, &err) < 0)
            _exit(2);
        vu_client_set_timeout(c, 10000);
        int r = vu_client_negotiate(c, NULL, NULL);
        _exit(r < 0 ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* Another process on the free function of a busy group is refused (same
 * uid, other pid: not the same VM); once the group is free it is served;
 * with --group-clients same-uid it is served at once. */
static void test_other_client_refused(void **state)
{
    (void)state;
    struct two *w = two_new(BR_GROUP_CLIENTS_SAME_VM);
    struct vu_client *ca = th_connect(&w->a, true);
    assert_int_equal(child_connects(w->b.path), 0);
    th_wait_refused(&w->b, 1);
    struct br_server_stats st;
    br_server_get_stats(w->b.srv, &st);
    assert_int_equal(st.accepted, 0);
    /* this process itself is the same VM: served */
    struct vu_client *cb = th_connect(&w->b, true);
    vu_client_close(cb);
    th_wait_closed(&w->b, 1);
    vu_client_close(ca);
    th_wait_closed(&w->a, 1);
    assert_int_equal(child_connects(w->b.path), 1);   /* the group is free */
    two_free(w);

    w = two_new(BR_GROUP_CLIENTS_SAME_UID);
    ca = th_connect(&w->a, true);
    assert_int_equal(child_connects(w->b.path), 1);
    vu_client_close(ca);
    two_free(w);
}

/* Holds the group's IOMMU registry for a while from a thread of its own:
 * a session end that has IOMMU mappings to release waits for it. */
struct holder {
    struct br_dma_shared *sh;
    pthread_mutex_t m;
    pthread_cond_t c;
    bool locked;
};

static void *hold_registry(void *arg)
{
    struct holder *h = arg;
    pthread_mutex_lock(&h->sh->lock);
    pthread_mutex_lock(&h->m);
    h->locked = true;
    pthread_cond_signal(&h->c);
    pthread_mutex_unlock(&h->m);
    sleep(1);
    pthread_mutex_unlock(&h->sh->lock);
    return NULL;
}

/* A VM restarted at once: its old connection to one function has hung up
 * but that session is not closed yet (here: its quiesce is held up for a
 * second) when the new process connects to the other function; the new one
 * waits for that session's end instead of being refused. */
static void test_restarted_vm_waits(void **state)
{
    (void)state;
    struct two *w = two_new(BR_GROUP_CLIENTS_SAME_VM);
    int mem = th_memfd(1u << 20);
    int sync[2];
    assert_int_equal(pipe(sync), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct vu_client *c = NULL;
        struct vub_err err = { "" };
        if (vu_client_connect(w->a.path, &c, &err) < 0)
            _exit(2);
        vu_client_set_timeout(c, 10000);
        if (vu_client_negotiate(c, NULL, NULL) < 0)
            _exit(3);
        struct vu_dma_map req = { .argsz = sizeof(req), .flags = RW, .address = 0x100000,
                                  .size = 0x1000 };
        struct vu_msg rep;
        if (vu_client_call(c, VU_CMD_DMA_MAP, 0, &req, sizeof(req), &mem, 1, &rep) < 0 ||
            (rep.hdr.flags & VU_F_ERROR))
            _exit(4);
        char b = 0;
        if (read(sync[0], &b, 1) != 1)   /* until the registry is held */
            _exit(5);
        _exit(0);
    }
    struct holder h = { .sh = &w->g.dma, .m = PTHREAD_MUTEX_INITIALIZER,
                        .c = PTHREAD_COND_INITIALIZER };
    th_wait_accepted(&w->a, 1);
    while (hv_sim_stats_of(w->a.hv).dma_maps == 0)
        usleep(1000);
    pthread_t thr;
    assert_int_equal(pthread_create(&thr, NULL, hold_registry, &h), 0);
    pthread_mutex_lock(&h.m);
    while (!h.locked)
        pthread_cond_wait(&h.c, &h.m);
    pthread_mutex_unlock(&h.m);
    assert_int_equal(write(sync[1], "x", 1), 1);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* the child has gone; its session on A cannot finish for a second */
    struct vu_client *cb = th_connect(&w->b, true);   /* fails the test if refused */
    th_wait_closed(&w->a, 1);
    vu_client_close(cb);
    pthread_join(thr, NULL);
    struct br_server_stats bs;
    br_server_get_stats(w->b.srv, &bs);
    assert_int_equal(bs.refused, 0);
    close(sync[0]);
    close(sync[1]);
    close(mem);
    two_free(w);
}

static int reset_msg(struct vu_client *c)
{
    return th_call(c, VU_CMD_DEVICE_RESET, 0, NULL, 0, NULL, 0, NULL);
}

static uint32_t info_flags(struct vu_client *c)
{
    struct vu_device_info req = { .argsz = sizeof(req) }, rep;
    struct vu_msg m;
    assert_int_equal(th_call(c, VU_CMD_DEVICE_GET_INFO, 0, &req, sizeof(req), NULL, 0, &m), 0);
    assert_true(m.payload_len >= sizeof(rep));
    memcpy(&rep, m.payload, sizeof(rep));
    vu_msg_release(&m);
    return rep.flags;
}

/* Functions without a reset of their own behind a bus that can be reset:
 * GET_INFO says RESET (the bridge can, with a hot reset), a DEVICE_RESET
 * is refused while the other function has a client and resets both once
 * it has none; a session end resets only when the scope is free, so the
 * last function to end resets the bus. */
static void test_bus_reset_scope(void **state)
{
    (void)state;
    struct two *w = two_new_ex(BR_GROUP_CLIENTS_SAME_VM, true);
    assert_int_equal(w->a.dev->reset_kind, BR_RESET_BUS);
    /* (the scope at start: B was opened after A, so only B's names A) */
    assert_int_equal(w->b.dev->n_reset_scope, 1);
    assert_string_equal(w->b.dev->reset_scope[0], "0000:01:01.0");
    struct vu_client *ca = th_connect(&w->a, true), *cb = th_connect(&w->b, true);
    assert_true(info_flags(ca) & VU_DEVICE_FLAGS_RESET);
    assert_int_equal(reset_msg(ca), -EBUSY);
    assert_int_equal(hv_sim_stats_of(w->a.hv).bus_resets, 0);
    assert_int_equal(hv_sim_stats_of(w->b.hv).bus_resets, 0);
    /* A's session ends while B's goes on: A is not reset (it would reset B) */
    vu_client_close(ca);
    th_wait_closed(&w->a, 1);
    assert_int_equal(hv_sim_stats_of(w->b.hv).bus_resets, 0);
    /* B alone now: its reset resets the bus, both functions */
    assert_int_equal(reset_msg(cb), 0);
    assert_int_equal(hv_sim_stats_of(w->a.hv).bus_resets, 1);
    assert_int_equal(hv_sim_stats_of(w->b.hv).bus_resets, 1);
    /* B's session end resets the bus again (nobody else in the scope) */
    vu_client_close(cb);
    th_wait_closed(&w->b, 1);
    assert_int_equal(hv_sim_stats_of(w->a.hv).bus_resets, 2);
    assert_int_equal(hv_sim_stats_of(w->a.hv).resets, 0);   /* never a function reset */
    two_free(w);
}

/* A function reset only with its bus (A) whose session ends while the
 * other (B, with an FLR of its own) still has a client is reset once B's
 * session has ended too, before anyone may connect again: B's FLR alone
 * would leave A as its client left it. */
static void test_deferred_bus_reset(void **state)
{
    (void)state;
    struct two *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    struct vub_err err = { "" };
    assert_int_equal(hv_sim_iommu_open(NULL, &w->io, &err), 0);
    br_group_init(&w->g, 7, BR_GROUP_CLIENTS_SAME_VM);
    th_init(&w->a);
    w->a.sc.addr = "0000:01:01.0";
    w->a.sc.reset = false;
    w->a.sc.bus_reset = true;
    th_init_nvme(&w->b);
    w->b.sc.addr = "0000:01:02.0";
    w->b.sc.bus_reset = true;    /* and an FLR of its own (reset, the default) */
    w->a.io = w->b.io = w->io;
    w->a.group = w->b.group = &w->g;
    th_start(&w->b);
    th_start(&w->a);
    assert_int_equal(w->a.dev->reset_kind, BR_RESET_BUS);
    assert_int_equal(w->b.dev->reset_kind, BR_RESET_FUNCTION);
    struct vu_client *ca = th_connect(&w->a, true), *cb = th_connect(&w->b, true);
    vu_client_close(ca);
    th_wait_closed(&w->a, 1);
    assert_int_equal(hv_sim_stats_of(w->a.hv).bus_resets, 0);   /* B is busy */
    vu_client_close(cb);
    th_wait_closed(&w->b, 1);
    assert_int_equal(hv_sim_stats_of(w->b.hv).resets, 1);       /* B's own FLR */
    assert_int_equal(hv_sim_stats_of(w->a.hv).bus_resets, 1);   /* A's, deferred */
    /* nothing pending any more: the next sessions reset as usual */
    ca = th_connect(&w->a, true);
    vu_client_close(ca);
    th_wait_closed(&w->a, 2);
    assert_int_equal(hv_sim_stats_of(w->a.hv).bus_resets, 2);
    two_free(w);
}

/* A function with a reset of its own is reset with it, whatever the other
 * function does; one without any reset says so in GET_INFO and refuses
 * DEVICE_RESET (the code this started from did the same for both). */
static void test_function_reset_and_none(void **state)
{
    (void)state;
    struct two *w = two_new(BR_GROUP_CLIENTS_SAME_VM);
    assert_int_equal(w->a.dev->reset_kind, BR_RESET_FUNCTION);
    struct vu_client *ca = th_connect(&w->a, true), *cb = th_connect(&w->b, true);
    assert_int_equal(reset_msg(ca), 0);
    assert_int_equal(hv_sim_stats_of(w->a.hv).resets, 1);
    assert_int_equal(hv_sim_stats_of(w->b.hv).resets, 0);
    vu_client_close(ca);
    vu_client_close(cb);
    two_free(w);

    struct th t;
    th_init(&t);
    t.sc.reset = false;          /* no function reset, no bus reset */
    th_start(&t);
    assert_int_equal(t.dev->reset_kind, BR_RESET_NONE);
    struct vu_client *c = th_connect(&t, true);
    assert_false(info_flags(c) & VU_DEVICE_FLAGS_RESET);
    assert_int_equal(reset_msg(c), -ENOTSUP);
    vu_client_close(c);
    th_stop(&t);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identical_shared, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_conflict_refused, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_last_user_unmaps, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_unmap_all_leaves_other, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_range_unmap_one_function, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_layout_change_interleaved, pair_setup,
                                        pair_teardown),
        cmocka_unit_test_setup_teardown(test_consistent_overlap, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_conflict_waits_for_other_unmap, pair_setup,
                                        pair_teardown),
        cmocka_unit_test(test_one_vm_two_functions),
        cmocka_unit_test(test_other_client_refused),
        cmocka_unit_test(test_restarted_vm_waits),
        cmocka_unit_test(test_bus_reset_scope),
        cmocka_unit_test(test_function_reset_and_none),
        cmocka_unit_test(test_deferred_bus_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
