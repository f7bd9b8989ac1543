/* SPDX-License-Identifier: MIT */
/* DMA_MAP / DMA_UNMAP: the client's memory really is what the device sees. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "dma.h"
#include "harness.h"
#include "session.h"
#include "testutil.h"

#define RW (VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE)
#define MiB (1u << 20)

static int setup(void **state)
{
    *state = th_new(false, NULL);
    return 0;
}

static void test_map_is_zero_copy(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    int mfd = th_memfd(4 * MiB);
    /* 1 MiB of the memfd, from offset 2 MiB, at IOVA 16 MiB */
    assert_int_equal(vu_client_dma_map(c, 16 * MiB, MiB, mfd, 2 * MiB, RW), 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 1);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_bytes, MiB);

    /* device writes land in the client's memfd at the right offset */
    const char msg[] = "written by the device";
    assert_int_equal(hv_sim_dma_write(t->hv, 16 * MiB + 100, msg, sizeof(msg)), 0);
    char got[sizeof(msg)] = "";
    assert_int_equal(pread(mfd, got, sizeof(got), 2 * MiB + 100), (ssize_t)sizeof(got));
    assert_memory_equal(got, msg, sizeof(msg));
    /* and client writes are what the device reads */
    const char back[] = "written by the client";
    assert_int_equal(pwrite(mfd, back, sizeof(back), 3 * MiB - 64), (ssize_t)sizeof(back));
    char dev[sizeof(back)] = "";
    assert_int_equal(hv_sim_dma_read(t->hv, 17 * MiB - 64, dev, sizeof(dev)), 0);
    assert_memory_equal(dev, back, sizeof(back));
    /* outside the map the device faults */
    assert_int_equal(hv_sim_dma_write(t->hv, 17 * MiB, msg, 1), -EFAULT);

    assert_int_equal(vu_client_dma_unmap(c, 16 * MiB, MiB, 0), 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    assert_int_equal(hv_sim_dma_write(t->hv, 16 * MiB + 100, msg, 1), -EFAULT);
    vu_client_close(c);
    close(mfd);
}

static void test_map_rules(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    int mfd = th_memfd(4 * MiB);
    assert_int_equal(vu_client_dma_map(c, 0x100000, MiB, mfd, 0, RW), 0);
    /* overlaps: inside, straddling the start, straddling the end, covering */
    assert_int_equal(vu_client_dma_map(c, 0x180000, 0x1000, mfd, 0, RW), -EEXIST);
    assert_int_equal(vu_client_dma_map(c, 0x0ff000, 0x2000, mfd, 0, RW), -EEXIST);
    assert_int_equal(vu_client_dma_map(c, 0x1ff000, 0x2000, mfd, 0, RW), -EEXIST);
    assert_int_equal(vu_client_dma_map(c, 0, 4 * MiB, mfd, 0, RW), -EEXIST);
    assert_int_equal(vu_client_dma_map(c, 0x180000, 0x1000, -1, 0, RW), -EEXIST);
    /* adjacent on both sides is fine */
    assert_int_equal(vu_client_dma_map(c, 0x0ff000, 0x1000, mfd, 0x1000, RW), 0);
    assert_int_equal(vu_client_dma_map(c, 0x200000, 0x1000, mfd, 0x2000, RW), 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 3);
    /* beyond the end of the memfd */
    assert_int_equal(vu_client_dma_map(c, 0x10000000, MiB, mfd, 3 * MiB + 4096, RW), -EINVAL);
    /* misaligned IOVA: the IOMMU's rule */
    assert_int_equal(vu_client_dma_map(c, 0x10000800, 0x1000, mfd, 0, RW), -EINVAL);
    /* an fd that is not memory */
    int efd = th_eventfd();
    assert_true(vu_client_dma_map(c, 0x10000000, 0x1000, efd, 0, RW) < 0);
    close(efd);
    /* an unmap that cuts through a mapping is refused and removes nothing,
     * even the whole mappings it also covers (0x0ff000+0x1000) */
    assert_int_equal(vu_client_dma_unmap(c, 0x100000, 0x1000, 0), -EINVAL);
    assert_int_equal(vu_client_dma_unmap(c, 0x180000, MiB, 0), -EINVAL);
    assert_int_equal(vu_client_dma_unmap(c, 0x0ff000, 0x2000, 0), -EINVAL);
    assert_int_equal(vu_client_dma_unmap(c, 0x100000, 0, 0), -EINVAL);
    assert_int_equal(vu_client_dma_unmap(c, UINT64_MAX - 0xfff, 0x2000, 0), -EINVAL);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 3);
    /* a range holding no mapping is a success */
    assert_int_equal(vu_client_dma_unmap(c, 0x10000000, MiB, 0), 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 3);
    assert_int_equal(vu_client_dma_unmap(c, 0x100000, MiB, 0), 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 2);
    /* bad unmap flags: GET_DIRTY_BITMAP, ALL with an address */
    struct vu_dma_unmap u = { .argsz = 24, .flags = 1, .address = 0x0ff000, .size = 0x1000 };
    assert_int_equal(th_call(c, VU_CMD_DMA_UNMAP, 0, &u, sizeof(u), NULL, 0, NULL), -EINVAL);
    u.flags = VU_DMA_UNMAP_FLAG_ALL;
    assert_int_equal(th_call(c, VU_CMD_DMA_UNMAP, 0, &u, sizeof(u), NULL, 0, NULL), -EINVAL);
    /* the reply of a good unmap echoes the request */
    u.flags = 0;
    struct vu_msg m;
    assert_int_equal(th_call(c, VU_CMD_DMA_UNMAP, 0, &u, sizeof(u), NULL, 0, &m), 0);
    assert_int_equal(m.payload_len, sizeof(u));
    assert_memory_equal(m.payload, &u, sizeof(u));
    vu_msg_release(&m);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 1);
    vu_client_close(c);
    close(mfd);
}

static void test_map_without_fd(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    /* QEMU maps ROM/BIOS without an fd: accepted, not reachable by the device */
    assert_int_equal(vu_client_dma_map(c, 0xfffc0000, 0x40000, -1, 0, VU_DMA_MAP_FLAG_READ), 0);
    assert_int_equal(vu_client_dma_map(c, 0xc0000, 0x20000, -1, 0, RW), 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    uint8_t b = 0;
    assert_int_equal(hv_sim_dma_read(t->hv, 0xfffc0000, &b, 1), -EFAULT);
    /* they are in the table: overlap and exact unmap apply */
    int mfd = th_memfd(MiB);
    assert_int_equal(vu_client_dma_map(c, 0xc0000, 0x1000, mfd, 0, RW), -EEXIST);
    assert_int_equal(vu_client_dma_unmap(c, 0xc0000, 0x20000, 0), 0);
    assert_int_equal(vu_client_dma_map(c, 0xc0000, 0x1000, mfd, 0, RW), 0);
    /* an offset without an fd is malformed; so are unknown flags and size 0 */
    struct vu_dma_map q = { .argsz = 32, .flags = RW, .offset = 0x1000, .address = 0x40000000,
                            .size = 0x1000 };
    assert_int_equal(th_call(c, VU_CMD_DMA_MAP, 0, &q, sizeof(q), NULL, 0, NULL), -EINVAL);
    q.offset = 0;
    q.flags = 4;
    assert_int_equal(th_call(c, VU_CMD_DMA_MAP, 0, &q, sizeof(q), NULL, 0, NULL), -EINVAL);
    q.flags = RW;
    q.size = 0;
    assert_int_equal(th_call(c, VU_CMD_DMA_MAP, 0, &q, sizeof(q), NULL, 0, NULL), -EINVAL);
    /* two fds */
    q.size = 0x1000;
    int two[2] = { mfd, mfd };
    assert_int_equal(th_call(c, VU_CMD_DMA_MAP, 0, &q, sizeof(q), two, 2, NULL), -EINVAL);
    vu_client_close(c);
    close(mfd);
}

static void test_read_only_map(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    int mfd = th_memfd(MiB);
    assert_int_equal(pwrite(mfd, "rom", 3, 0), 3);
    assert_int_equal(vu_client_dma_map(c, 0x100000, MiB, mfd, 0, VU_DMA_MAP_FLAG_READ), 0);
    char b[3];
    assert_int_equal(hv_sim_dma_read(t->hv, 0x100000, b, 3), 0);
    assert_memory_equal(b, "rom", 3);
    assert_int_equal(hv_sim_dma_write(t->hv, 0x100000, "x", 1), -EPERM);
    vu_client_close(c);
    close(mfd);
}

static void test_dedup_and_unmap_all(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    int mfd = th_memfd(8 * MiB);
    int base = tu_count_fds();
    /* QEMU sends a fresh fd number for every map of the same RAM block */
    for (unsigned i = 0; i < 4; i++) {
        int d = dup(mfd);
        assert_int_equal(vu_client_dma_map(c, (uint64_t)(i + 1) * 16 * MiB, MiB, d,
                                           (uint64_t)i * MiB, RW), 0);
        close(d);
    }
    /* the bridge (same process) keeps one fd for the object, not four; the
     * three duplicates wait for a batched close (BR_DMA_CLOSE_BATCH) */
    assert_int_equal(tu_count_fds(), base + 1 + 3);
    int other = th_memfd(MiB);
    assert_int_equal(vu_client_dma_map(c, 0x100000, MiB, other, 0, RW), 0);
    close(other);
    assert_int_equal(tu_count_fds(), base + 2 + 3);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 5);
    /* the dedup kept each map's own offset */
    assert_int_equal(hv_sim_dma_write(t->hv, 48 * MiB, "3", 1), 0);
    char x = 0;
    assert_int_equal(pread(mfd, &x, 1, 2 * MiB), 1);
    assert_int_equal(x, '3');

    assert_int_equal(vu_client_dma_unmap(c, 0, 0, VU_DMA_UNMAP_FLAG_ALL), 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    assert_int_equal(tu_count_fds(), base);
    /* a map after unmap-all works again */
    assert_int_equal(vu_client_dma_map(c, 16 * MiB, MiB, mfd, 0, RW), 0);
    assert_int_equal(vu_client_dma_unmap(c, 16 * MiB, MiB, 0), 0);
    /* the object stays open (idle: in the bridge only, not in the IOMMU)
     * for the next map; BR_DMA_MAX_IDLE_BACKINGS of them at most */
    assert_int_equal(tu_count_fds(), base + 1);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    for (unsigned i = 0; i < BR_DMA_MAX_IDLE_BACKINGS + 2; i++) {
        int o = th_memfd(MiB);
        assert_int_equal(vu_client_dma_map(c, 0x100000, 0x1000, o, 0, RW), 0);
        close(o);
        assert_int_equal(vu_client_dma_unmap(c, 0x100000, 0x1000, 0), 0);
    }
    assert_int_equal(tu_count_fds(), base + (int)BR_DMA_MAX_IDLE_BACKINGS);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    /* unmap-all lets go of the idle ones too */
    assert_int_equal(vu_client_dma_unmap(c, 0, 0, VU_DMA_UNMAP_FLAG_ALL), 0);
    assert_int_equal(tu_count_fds(), base);
    /* and so does the end of the session */
    assert_int_equal(vu_client_dma_map(c, 16 * MiB, MiB, mfd, 0, RW), 0);
    assert_int_equal(vu_client_dma_unmap(c, 16 * MiB, MiB, 0), 0);
    assert_int_equal(tu_count_fds(), base + 1);
    vu_client_close(c);
    th_wait_closed(t, 1);
    /* base less the two ends of the connection */
    assert_int_equal(tu_count_fds(), base - 2);
    close(mfd);
}

/* A client cannot make the bridge hold an unbounded number of memory
 * objects (each costs an fd and a whole-object mapping): the next new one
 * beyond BR_DMA_MAX_BACKINGS is refused, nothing leaks, and more maps of an
 * object already held still work. */
static void test_backing_limit(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    int base = tu_count_fds();
    int first = -1;
    for (unsigned i = 0; i < BR_DMA_MAX_BACKINGS; i++) {
        int m = th_memfd(8192);
        assert_int_equal(vu_client_dma_map(c, (uint64_t)(i + 1) * MiB, 4096, m, 0, RW), 0);
        if (i == 0)
            first = m;
        else
            close(m);
    }
    assert_int_equal(tu_count_fds(), base + 1 + (int)BR_DMA_MAX_BACKINGS);
    int extra = th_memfd(8192);
    assert_int_equal(vu_client_dma_map(c, 0x80000000ull, 4096, extra, 0, RW), -ENOSPC);
    close(extra);
    assert_int_equal(tu_count_fds(), base + 1 + (int)BR_DMA_MAX_BACKINGS);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, BR_DMA_MAX_BACKINGS);
    /* the second page of an object the bridge already holds */
    assert_int_equal(vu_client_dma_map(c, 0x80000000ull, 4096, first, 4096, RW), 0);
    assert_int_equal(vu_client_dma_unmap(c, 0, 0, VU_DMA_UNMAP_FLAG_ALL), 0);
    close(first);
    assert_int_equal(tu_count_fds(), base);
    /* once released, new objects are accepted again */
    extra = th_memfd(8192);
    assert_int_equal(vu_client_dma_map(c, 0x80000000ull, 4096, extra, 0, RW), 0);
    close(extra);
    vu_client_close(c);
}

/* A guest IOMMU's cycle: every DMA_MAP brings a new fd of the same object.
 * The duplicates are closed BR_DMA_CLOSE_BATCH at a time: never more wait
 * than that, each batch really closes them (no fd leaks over many cycles),
 * and neither the batch's close_range nor the one-by-one close ever takes
 * an fd that is not a waiting duplicate: the object's own fd (the device
 * still reaches the memory), the client's socket (the calls go on), an fd
 * of the test's that sits between the bridge's numbers. */
static void test_duplicate_fds_closed_in_batches(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    int mfd = th_memfd(16 * 4096);
    int base = tu_count_fds();
    unsigned cycles = 3 * BR_DMA_CLOSE_BATCH + 5;
    /* pass 0: the same fd each time (the bridge's numbers are consecutive:
     * the close_range path); pass 1: a dup the test holds across the call
     * and an fd it opens after every fifth, so the numbers interleave with
     * the test's (the one-by-one path) */
    int sentinel[2 * BR_DMA_CLOSE_BATCH];
    unsigned ns = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < cycles; i++) {
            uint64_t off = (uint64_t)(i % 16) * 4096;
            int d = pass ? dup(mfd) : mfd;
            assert_true(d >= 0);
            assert_int_equal(vu_client_dma_map(c, 0x100000, 4096, d, off, RW), 0);
            if (pass)
                close(d);
            if (pass && i % 5 == 0 && ns < sizeof(sentinel) / sizeof(sentinel[0]))
                assert_true((sentinel[ns++] = eventfd(0, EFD_CLOEXEC)) >= 0);
            /* the first map of pass 0 keeps its fd for the object; each
             * later one is a duplicate, closed with a full batch */
            unsigned k = pass * cycles + i;   /* duplicates so far */
            assert_int_equal(tu_count_fds(), base + (int)ns + 1 + (int)(k % BR_DMA_CLOSE_BATCH));
            char v = (char)('a' + i % 26), x = 0;
            assert_int_equal(hv_sim_dma_write(t->hv, 0x100000, &v, 1), 0);
            assert_int_equal(pread(mfd, &x, 1, (off_t)off), 1);
            assert_int_equal(x, v);
            for (unsigned j = 0; j < ns; j++)
                assert_true(fcntl(sentinel[j], F_GETFD) >= 0);
            assert_int_equal(vu_client_dma_unmap(c, 0x100000, 4096, 0), 0);
        }
    }
    /* any message but DMA_MAP/DMA_UNMAP closes what waits: once a guest
     * IOMMU's stream pauses the bridge holds the object's fd and no
     * duplicate (the e2e reexec scenario counts the bridge's fds) */
    unsigned waiting = (2 * cycles - 1) % BR_DMA_CLOSE_BATCH;
    assert_true(waiting > 0);
    assert_int_equal(tu_count_fds(), base + (int)ns + 1 + (int)waiting);
    struct vu_device_info di;
    assert_int_equal(vu_client_get_info(c, &di), 0);
    assert_int_equal(tu_count_fds(), base + (int)ns + 1);
    /* and the cycle goes on from an empty batch */
    assert_int_equal(vu_client_dma_map(c, 0x100000, 4096, mfd, 0, RW), 0);
    assert_int_equal(tu_count_fds(), base + (int)ns + 2);
    assert_int_equal(vu_client_dma_unmap(c, 0x100000, 4096, 0), 0);
    assert_int_equal(tu_count_fds(), base + (int)ns + 2);
    /* unmap-all closes what waits and the idle object */
    assert_int_equal(vu_client_dma_unmap(c, 0, 0, VU_DMA_UNMAP_FLAG_ALL), 0);
    assert_int_equal(tu_count_fds(), base + (int)ns);
    for (unsigned j = 0; j < ns; j++)
        close(sentinel[j]);
    vu_client_close(c);
    close(mfd);
}

static void test_object_grows_and_read_only_fd(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    int mfd = th_memfd(MiB);
    assert_int_equal(vu_client_dma_map(c, 0x100000, MiB, mfd, 0, RW), 0);
    /* the object grows (memory hot-add in the same file): a map of the new
     * part is beyond what the bridge mapped of it at first */
    assert_int_equal(ftruncate(mfd, 3 * MiB), 0);
    assert_int_equal(vu_client_dma_map(c, 0x1000000, 2 * MiB, mfd, MiB, RW), 0);
    assert_int_equal(hv_sim_dma_write(t->hv, 0x1000000 + MiB + 8, "grown", 5), 0);
    char b[5];
    assert_int_equal(pread(mfd, b, 5, 2 * MiB + 8), 5);
    assert_memory_equal(b, "grown", 5);
    assert_int_equal(vu_client_dma_unmap(c, 0x1000000, 2 * MiB, 0), 0);
    assert_int_equal(vu_client_dma_unmap(c, 0x100000, MiB, 0), 0);

    /* a read-only fd of another object: read maps work, write maps cannot */
    int other = th_memfd(MiB);
    assert_int_equal(pwrite(other, "ro", 2, 4096), 2);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", other);
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(ro >= 0);
    assert_int_equal(vu_client_dma_map(c, 0x200000, MiB, ro, 0, VU_DMA_MAP_FLAG_READ), 0);
    assert_int_equal(hv_sim_dma_read(t->hv, 0x201000, b, 2), 0);
    assert_memory_equal(b, "ro", 2);
    assert_true(vu_client_dma_map(c, 0x400000, MiB, ro, 0, RW) < 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 1);
    vu_client_close(c);
    close(ro);
    close(other);
    close(mfd);
}

static void test_hugetlb_offset_not_huge_aligned(void **state)
{
    struct th *t = *state;
    int hfd = memfd_create("vub-test-huge", MFD_CLOEXEC | MFD_HUGETLB);
    if (hfd < 0)
        skip();
    void *probe = MAP_FAILED;
    if (ftruncate(hfd, 4 * MiB) == 0)
        probe = mmap(NULL, 4 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED, hfd, 0);
    if (probe == MAP_FAILED) {      /* no huge pages reserved on this machine */
        close(hfd);
        skip();
    }
    struct vu_client *c = th_connect(t, true);
    /* QEMU: a section starting 0xc0000 into a huge-page RAM block */
    assert_int_equal(vu_client_dma_map(c, 0xc0000, 0x20000, hfd, 0xc0000, RW), 0);
    assert_int_equal(hv_sim_dma_write(t->hv, 0xc0010, "huge", 4), 0);
    assert_memory_equal((char *)probe + 0xc0010, "huge", 4);
    vu_client_close(c);
    munmap(probe, 4 * MiB);
    close(hfd);
}

/* The DMA table against a plain model: 5000 random maps and range unmaps in
 * a small IOVA space (so that overlaps, cut-through, empty and multi-mapping
 * unmaps are all common); after every step the IOMMU (the sim) holds exactly
 * the model's fd-backed mappings. */
struct model_map {
    uint64_t iova, size;
    bool used, fd;
};

/* The table's in-order walk is the model's mappings sorted by iova, each
 * with its size and whether it is in the IOMMU (the tree kept its shape
 * through every insert and removal). */
static void check_ranges(const struct br_dma_table *tab, const struct model_map *model,
                         size_t nmodel)
{
    static struct br_dma_range got[512];
    size_t n = br_dma_ranges(tab, got, 512), seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            assert_true(got[i - 1].iova + got[i - 1].size <= got[i].iova);
        size_t k = 0;
        while (k < nmodel && !(model[k].used && model[k].iova == got[i].iova))
            k++;
        assert_true(k < nmodel);
        assert_int_equal(got[i].size, model[k].size);
        assert_int_equal(got[i].fd, model[k].fd);
        seen++;
    }
    for (size_t k = 0; k < nmodel; k++)
        seen -= model[k].used;
    assert_int_equal(seen, 0);
}

static void test_table_against_model(void **state)
{
    struct th *t = *state;
    static struct model_map model[512];
    memset(model, 0, sizeof(model));
    struct br_dma_table tab;
    br_dma_init(&tab, 400, 0, 4096);
    int mfd = th_memfd(MiB);
    uint64_t seed = 12345;
    unsigned maps = 0, eexist = 0, cut = 0, empty = 0, multi = 0, unmaps = 0, exact = 0;
    for (int i = 0; i < 5000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t iova = ((seed >> 20) % 256) * 0x1000;
        bool is_map = (seed >> 8) % 3 != 0;
        /* unmaps: sometimes wide ranges */
        uint64_t size = (((seed >> 40) % (is_map ? 8 : (seed >> 50) % 2 ? 64 : 8)) + 1) * 0x1000;
        if (!is_map && (seed >> 30) % 3 == 0) {
            /* a third of the unmaps: exactly one mapping (what a vIOMMU sends) */
            for (size_t j = 0, k = (seed >> 33) % 512; j < 512; j++, k = (k + 1) % 512) {
                if (model[k].used) {
                    iova = model[k].iova;
                    size = model[k].size;
                    break;
                }
            }
        }
        bool overlap = false, cuts = false;
        size_t n = 0, inside = 0, nfd = 0;
        bool one = false;   /* the range is exactly one mapping */
        for (size_t k = 0; k < 512; k++) {
            if (!model[k].used)
                continue;
            n++;
            nfd += model[k].fd;
            one |= model[k].iova == iova && model[k].size == size;
            bool ov = model[k].iova < iova + size && iova < model[k].iova + model[k].size;
            bool in = model[k].iova >= iova && model[k].iova + model[k].size <= iova + size;
            overlap |= ov;
            cuts |= ov && !in;
            inside += in;
        }
        assert_int_equal(tab.n, n);
        assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, nfd);
        check_ranges(&tab, model, 512);
        if (is_map) {
            int fd = (seed >> 12) % 4 == 0 ? dup(mfd) : -1;
            int r = br_dma_map(&tab, t->hv, iova, size, 0, RW, fd);
            if (overlap) {
                assert_int_equal(r, -EEXIST);
                eexist++;
            } else if (n >= 400) {
                assert_int_equal(r, -ENOSPC);
            } else {
                assert_int_equal(r, 0);
                for (size_t k = 0; k < 512; k++) {
                    if (!model[k].used) {
                        model[k] = (struct model_map){ iova, size, true, fd >= 0 };
                        break;
                    }
                }
                maps++;
            }
        } else {
            int r = br_dma_unmap(&tab, t->hv, iova, size);
            if (cuts) {
                assert_int_equal(r, -EINVAL);
                cut++;
                continue;
            }
            assert_int_equal(r, (int)inside);
            empty += inside == 0;
            multi += inside > 1;
            exact += one;
            unmaps++;
            for (size_t k = 0; k < 512; k++) {
                if (model[k].used && model[k].iova >= iova &&
                    model[k].iova + model[k].size <= iova + size)
                    model[k].used = false;
            }
        }
    }
    assert_true(maps > 100 && eexist > 100 && cut > 100 && empty > 20 && multi > 20 &&
                unmaps > 50 && exact > 20);
    /* the sim has exactly the fd-backed ones */
    assert_int_equal(br_dma_unmap_all(&tab, t->hv), 0);
    assert_int_equal(tab.n, 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    br_dma_free(&tab);
    close(mfd);
}

/* ---- a guest with its own IOMMU ---------------------------------------------------- */

#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_CNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_BUF 0x40000u

static void wr64(struct vu_client *c, uint64_t off, uint64_t v)
{
    assert_int_equal(vu_client_region_write(c, 0, off, &v, 8, false), 8);
}

/* The edu's DMA engine copies `len` bytes of its buffer to RAM at iova (as a
 * guest driver would start it through BAR0); returns the device's refused
 * DMA count afterwards. */
static unsigned edu_to_ram(struct th *t, struct vu_client *c, uint64_t iova, uint64_t len)
{
    wr64(c, EDU_DMA_SRC, EDU_BUF);
    wr64(c, EDU_DMA_DST, iova);
    wr64(c, EDU_DMA_CNT, len);
    uint32_t cmd = 1 | 2;
    assert_int_equal(vu_client_region_write(c, 0, EDU_DMA_CMD, &cmd, 4, false), 4);
    return hv_sim_stats_of(t->hv).dma_faults;
}

/* And from RAM at iova into its buffer. */
static unsigned edu_from_ram(struct th *t, struct vu_client *c, uint64_t iova, uint64_t len)
{
    wr64(c, EDU_DMA_SRC, iova);
    wr64(c, EDU_DMA_DST, EDU_BUF);
    wr64(c, EDU_DMA_CNT, len);
    uint32_t cmd = 1;
    assert_int_equal(vu_client_region_write(c, 0, EDU_DMA_CMD, &cmd, 4, false), 4);
    return hv_sim_stats_of(t->hv).dma_faults;
}

/* QEMU's unmap of an address space on a guest IOMMU invalidation or reset:
 * [start, end) cut into the largest aligned power-of-two pieces. */
static unsigned unmap_pow2(struct vu_client *c, uint64_t start, uint64_t end)
{
    unsigned pieces = 0;
    while (start < end) {
        uint64_t sz = start ? start & -start : 1ull << 63;
        while (sz > end - start)
            sz >>= 1;
        assert_int_equal(vu_client_dma_unmap(c, start, sz, 0), 0);
        start += sz;
        pieces++;
    }
    return pieces;
}

static void test_viommu_invalidation_pattern(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    int mfd = th_memfd(MiB);
    /* guest IOMMU mappings spread over the space, as a vIOMMU makes them */
    const uint64_t at[] = { 0x1000, 0x200000, 0xfff000, 0x7ff0000, 0x80000000, 0xfef00000,
                            0xff800000, 0x100000000ull, 0x2345678000ull, 0x7ffffff000ull };
    for (unsigned i = 0; i < sizeof(at) / sizeof(at[0]); i++)
        assert_int_equal(vu_client_dma_map(c, at[i], 0x1000, mfd, (uint64_t)i * 0x1000, RW), 0);
    assert_int_equal(vu_client_dma_map(c, 0x300000, 0x4000, mfd, 0x10000, RW), 0);
    assert_int_equal(vu_client_dma_map(c, 0xc0000, 0x20000, -1, 0, RW), 0);   /* no fd */
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 11);
    /* reachable before */
    unsigned f0 = hv_sim_stats_of(t->hv).dma_faults;
    assert_int_equal(edu_to_ram(t, c, 0x1000, 64), f0);
    assert_int_equal(edu_to_ram(t, c, 0x7ff0000, 64), f0);

    /* the invalidation: below the interrupt window and above it, up to 2^48
     * (pieces 0x0+0x80000000 ... 0xfef00000+0x100000, 0xff000000+0x1000000,
     * 0x100000000+0x100000000 ... 0x800000000000+0x800000000000) */
    unsigned pieces = unmap_pow2(c, 0, 0xfee00000ull);
    pieces += unmap_pow2(c, 0xfef00000ull, 1ull << 48);
    assert_true(pieces >= 25);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_bytes, 0);
    /* nothing the guest unmapped is reachable: the engine is refused */
    assert_int_equal(edu_to_ram(t, c, 0x1000, 64), f0 + 1);
    assert_int_equal(edu_to_ram(t, c, 0x7ff0000, 64), f0 + 2);
    assert_int_equal(edu_to_ram(t, c, 0x300000 + 0x3000, 64), f0 + 3);
    uint8_t b;
    for (unsigned i = 0; i < sizeof(at) / sizeof(at[0]); i++)
        assert_int_equal(hv_sim_dma_read(t->hv, at[i], &b, 1), -EFAULT);
    /* the no-fd mapping left the table too: its range can be mapped again */
    assert_int_equal(vu_client_dma_map(c, 0xc0000, 0x1000, mfd, 0, RW), 0);
    /* a device reset brings nothing back */
    assert_int_equal(vu_client_reset(c), 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 1);
    assert_int_equal(edu_to_ram(t, c, 0x1000, 64), f0 + 4);
    vu_client_close(c);
    th_wait_closed(t, 1);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    close(mfd);
}

static void test_viommu_cut_through_and_remap(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, true);
    int mfd = th_memfd(MiB);
    uint8_t *mem = mmap(NULL, MiB, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    assert_true(mem != MAP_FAILED);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 0x4000, mfd, 0, RW), 0);        /* A */
    assert_int_equal(vu_client_dma_map(c, 0x104000, 0x1000, mfd, 0x8000, RW), 0);   /* B */
    assert_int_equal(vu_client_dma_map(c, 0x200000, 0x2000, mfd, 0x10000, RW), 0);  /* C */
    unsigned f0 = hv_sim_stats_of(t->hv).dma_faults;
    /* cuts A at its start, C at its end, A in the middle: refused, nothing gone */
    assert_int_equal(vu_client_dma_unmap(c, 0x101000, 0x4000, 0), -EINVAL);
    assert_int_equal(vu_client_dma_unmap(c, 0x104000, 0x100000 - 0x4000 + 0x1000, 0), -EINVAL);
    assert_int_equal(vu_client_dma_unmap(c, 0x101000, 0x1000, 0), -EINVAL);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 3);
    assert_int_equal(edu_to_ram(t, c, 0x100000, 64), f0);
    assert_int_equal(edu_to_ram(t, c, 0x104000, 64), f0);
    assert_int_equal(edu_to_ram(t, c, 0x201000, 64), f0);
    /* A and B whole, C untouched */
    assert_int_equal(vu_client_dma_unmap(c, 0, 0x105000, 0), 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 1);
    assert_int_equal(edu_to_ram(t, c, 0x100000, 64), f0 + 1);
    assert_int_equal(edu_to_ram(t, c, 0x104000, 64), f0 + 2);
    assert_int_equal(edu_to_ram(t, c, 0x201000, 64), f0 + 2);

    /* the vIOMMU cycle: the same IOVA re-mapped to another page; the device's
     * writes go to the new page only, never to the old one */
    for (unsigned i = 0; i < 64; i++) {
        uint64_t page = (uint64_t)(0x20 + i % 8) * 0x1000;
        memset(mem + page, 0, 0x1000);
        if (i)
            memset(mem + (uint64_t)(0x20 + (i - 1) % 8) * 0x1000, 0, 0x1000);
        assert_int_equal(vu_client_dma_map(c, 0x400000, 0x1000, mfd, page, RW), 0);
        uint32_t word = 0xa5000000u | i;
        memcpy(mem + 0x10000, &word, 4);   /* C: the source */
        assert_int_equal(edu_from_ram(t, c, 0x200000, 4), f0 + 2 + i);
        assert_int_equal(edu_to_ram(t, c, 0x400000, 4), f0 + 2 + i);
        assert_memory_equal(mem + page, &word, 4);
        assert_int_equal(vu_client_dma_unmap(c, 0x400000, 0x1000, 0), 0);
        assert_int_equal(edu_to_ram(t, c, 0x400000, 4), f0 + 3 + i);
    }
    /* unmap-all, then nothing */
    assert_int_equal(vu_client_dma_unmap(c, 0, 0, VU_DMA_UNMAP_FLAG_ALL), 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    assert_int_equal(edu_to_ram(t, c, 0x201000, 64), f0 + 3 + 64);
    vu_client_close(c);
    munmap(mem, MiB);
    close(mfd);
}

static void setup_limits_tweak(struct th *t)
{
    t->cfg.max_dma_maps = 3;
    t->cfg.max_dma_bytes = 2 * MiB;
}

static int setup_limits(void **state)
{
    *state = th_new(false, setup_limits_tweak);
    return 0;
}

static void test_limits(void **state)
{
    struct th *t = *state;
    struct vu_client *c = th_connect(t, false);
    struct vu_caps sc;
    assert_int_equal(vu_client_negotiate(c, NULL, &sc), 0);
    assert_int_equal(sc.max_dma_maps, 3);
    int mfd = th_memfd(4 * MiB);
    assert_int_equal(vu_client_dma_map(c, 0x100000, 3 * MiB, mfd, 0, RW), -ENOMEM);
    assert_int_equal(vu_client_dma_map(c, 0x100000, MiB, mfd, 0, RW), 0);
    assert_int_equal(vu_client_dma_map(c, 0x200000, MiB, mfd, 0, RW), 0);
    assert_int_equal(vu_client_dma_map(c, 0x300000, 0x1000, mfd, 0, RW), -ENOMEM);
    assert_int_equal(vu_client_dma_map(c, 0x40000000, 0x1000, -1, 0, RW), 0);  /* fd-less: no bytes */
    assert_int_equal(vu_client_dma_map(c, 0x50000000, 0x1000, -1, 0, RW), -ENOSPC);
    assert_int_equal(vu_client_dma_unmap(c, 0x100000, MiB, 0), 0);
    assert_int_equal(vu_client_dma_map(c, 0x300000, 0x1000, mfd, 0, RW), 0);
    vu_client_close(c);
    close(mfd);
}

/* A DMA_MAP larger than a prefault chunk asks, between chunks, whether the
 * loop must stop; when it must, the map fails with EINTR and leaves nothing
 * behind (not in the table, not in the IOMMU). */
struct asked {
    unsigned calls, stop_at;
};

static bool ask(void *arg)
{
    struct asked *a = arg;
    return ++a->calls >= a->stop_at;
}

static void test_prefault_interruptible(void **state)
{
    struct th *t = *state;
    const uint64_t size = 2 * BR_DMA_PREFAULT_CHUNK + 4096;   /* 3 chunks */
    int mfd = th_memfd((size_t)size);
    struct br_dma_table tab;
    struct asked a = { .calls = 0, .stop_at = 2 };
    br_dma_init(&tab, 16, 0, 4096);
    tab.interrupted = ask;
    tab.interrupted_arg = &a;
    assert_int_equal(br_dma_map(&tab, t->hv, 0x100000000ull, size, 0, RW, dup(mfd)), -EINTR);
    assert_int_equal(a.calls, 2);
    assert_int_equal(tab.n, 0);
    assert_int_equal(tab.bytes, 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    /* not asked to stop: asked after every chunk, mapped */
    a = (struct asked){ .calls = 0, .stop_at = 100 };
    assert_int_equal(br_dma_map(&tab, t->hv, 0x100000000ull, size, 0, RW, dup(mfd)), 0);
    assert_int_equal(a.calls, 3);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 1);
    /* a map of one chunk or less is not slowed by the question */
    a.calls = 0;
    assert_int_equal(br_dma_map(&tab, t->hv, 0x200000000ull, BR_DMA_PREFAULT_CHUNK, 0, RW,
                                dup(mfd)), 0);
    assert_int_equal(a.calls, 0);
    assert_int_equal(br_dma_unmap_all(&tab, t->hv), 0);
    br_dma_free(&tab);
    close(mfd);
}

/* The pin goes in pieces too, asked between them; an interrupted one leaves
 * nothing in the IOMMU, and an unmap of the range takes every piece. */
static void test_pin_interruptible(void **state)
{
    struct th *t = *state;
    const uint64_t chunk = 1u << 20, size = 3 * chunk + 4096;   /* 4 pieces */
    int mfd = th_memfd((size_t)size);
    struct br_dma_table tab;
    struct asked a = { .calls = 0, .stop_at = 2 };
    br_dma_init(&tab, 16, 0, 4096);
    assert_int_equal(tab.pin_chunk, BR_DMA_PIN_CHUNK);
    tab.pin_chunk = chunk;
    tab.interrupted = ask;
    tab.interrupted_arg = &a;
    assert_int_equal(br_dma_map(&tab, t->hv, 0x100000000ull, size, 0, RW, dup(mfd)), -EINTR);
    assert_int_equal(a.calls, 2);
    assert_int_equal(tab.n, 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    a = (struct asked){ .calls = 0, .stop_at = 100 };
    assert_int_equal(br_dma_map(&tab, t->hv, 0x100000000ull, size, 0, RW, dup(mfd)), 0);
    assert_int_equal(a.calls, 3);
    assert_int_equal(tab.n, 1);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 4);   /* one kernel mapping per piece */
    assert_int_equal(br_dma_unmap(&tab, t->hv, 0x100000000ull, size), 1);   /* one bridge mapping */
    assert_int_equal(tab.n, 0);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);
    br_dma_free(&tab);
    close(mfd);
}


/* An IOMMU context that maps files by fd (iommufd's IOMMU_IOAS_MAP_FILE):
 * the simulator's ops with a dma_map_file that records what it was asked. */
static struct {
    int calls, ret;
    int fd;
    uint64_t iova, offset, size;
    uint32_t flags;
} by_file;

static int fake_map_file(struct hv_iommu *io, uint64_t iova, int fd, uint64_t offset,
                         uint64_t size, uint32_t flags)
{
    (void)io;
    by_file.calls++;
    by_file.fd = fd;
    by_file.iova = iova;
    by_file.offset = offset;
    by_file.size = size;
    by_file.flags = flags;
    return by_file.ret;
}

static int reopen_as(int fd, int mode)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    return open(p, mode | O_CLOEXEC);
}

/* Memory objects go to dma_map_file by fd and offset (no mapping, no
 * prefault, the simulator's dma_map never called), the fd's open mode and
 * seals allowing what an mmap would; the back end's -ENOTSUP and files that
 * are not shmem or hugetlbfs take the mapping path. */
static void test_map_by_file(void **state)
{
    struct th *t = *state;
    struct hv_iommu *io = t->hv->iommu;
    const struct hv_iommu_ops *sim_ops = io->ops;
    struct hv_iommu_ops ops = *sim_ops;
    ops.dma_map_file = fake_map_file;
    io->ops = &ops;
    memset(&by_file, 0, sizeof(by_file));
    struct br_dma_table tab;
    br_dma_init(&tab, 16, 0, 4096);

    int mfd = th_memfd(4 * MiB);
    assert_int_equal(br_dma_map(&tab, t->hv, 16 * MiB, MiB, 2 * MiB, RW, dup(mfd)), 0);
    assert_int_equal(by_file.calls, 1);
    assert_true(by_file.iova == 16 * MiB && by_file.offset == 2 * MiB && by_file.size == MiB);
    assert_int_equal(by_file.flags, HV_DMA_READ | HV_DMA_WRITE);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 0);   /* no mapping of the bridge's */
    assert_int_equal(tab.n, 1);
    assert_int_equal(br_dma_unmap(&tab, t->hv, 16 * MiB, MiB), 1);

    /* read-only fd (of an object the table has not seen read-write: it
     * keeps one open file per object): READ by file, WRITE refused as an
     * mmap would refuse it */
    int rw2 = th_memfd(MiB);
    int ro = reopen_as(rw2, O_RDONLY);
    close(rw2);
    assert_true(ro >= 0);
    assert_int_equal(br_dma_map(&tab, t->hv, 16 * MiB, MiB, 0, RW, dup(ro)), -EACCES);
    assert_int_equal(br_dma_map(&tab, t->hv, 16 * MiB, MiB, 0, VU_DMA_MAP_FLAG_WRITE, dup(ro)),
                     -EACCES);
    assert_int_equal(by_file.calls, 1);
    assert_int_equal(br_dma_map(&tab, t->hv, 16 * MiB, MiB, 0, VU_DMA_MAP_FLAG_READ, dup(ro)), 0);
    assert_int_equal(by_file.calls, 2);
    assert_int_equal(by_file.flags, HV_DMA_READ);
    assert_int_equal(br_dma_unmap_all(&tab, t->hv), 0);
    close(ro);

    /* a memfd sealed against writes: READ only (-EPERM, as mmap says) */
    int sfd = memfd_create("sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(sfd >= 0 && ftruncate(sfd, (off_t)MiB) == 0);
    assert_int_equal(fcntl(sfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW), 0);
    assert_int_equal(br_dma_map(&tab, t->hv, 32 * MiB, MiB, 0, RW, dup(sfd)), -EPERM);
    assert_int_equal(by_file.calls, 2);
    assert_int_equal(br_dma_map(&tab, t->hv, 32 * MiB, MiB, 0, VU_DMA_MAP_FLAG_READ, dup(sfd)), 0);
    assert_int_equal(by_file.calls, 3);
    assert_int_equal(br_dma_unmap_all(&tab, t->hv), 0);
    close(sfd);

    /* The open mode and final seals are read once per object, seals that
     * may still change on every WRITE map: a memfd that allows sealing is
     * mapped read-write, unmapped (the object stays held, idle), sealed
     * against future writes, and a read-write map of it is then refused;
     * once F_SEAL_SEAL is there the answer stays. */
    int afd = memfd_create("sealable", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(afd >= 0 && ftruncate(afd, (off_t)MiB) == 0);
    int calls0 = by_file.calls;
    assert_int_equal(br_dma_map(&tab, t->hv, 48 * MiB, MiB, 0, RW, dup(afd)), 0);
    assert_int_equal(br_dma_map(&tab, t->hv, 50 * MiB, MiB, 0, RW, dup(afd)), 0);
    assert_int_equal(br_dma_unmap(&tab, t->hv, 48 * MiB, 4 * MiB), 2);
    assert_int_equal(tab.nb, 1);   /* still held, idle: the same backing below */
    assert_int_equal(fcntl(afd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), 0);
    assert_int_equal(br_dma_map(&tab, t->hv, 48 * MiB, MiB, 0, RW, dup(afd)), -EPERM);
    assert_int_equal(br_dma_map(&tab, t->hv, 48 * MiB, MiB, 0, VU_DMA_MAP_FLAG_READ, dup(afd)), 0);
    assert_int_equal(br_dma_unmap_all(&tab, t->hv), 0);
    assert_int_equal(by_file.calls, calls0 + 3);
    close(afd);
    /* seals final from the start (a memfd without MFD_ALLOW_SEALING): read-
     * write maps again and again, each by file */
    int ffinal = th_memfd(MiB);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(br_dma_map(&tab, t->hv, 48 * MiB, MiB, 0, RW, dup(ffinal)), 0);
        assert_int_equal(by_file.flags, HV_DMA_READ | HV_DMA_WRITE);
        assert_int_equal(br_dma_unmap(&tab, t->hv, 48 * MiB, MiB), 1);
    }
    assert_int_equal(by_file.calls, calls0 + 6);
    assert_int_equal(br_dma_unmap_all(&tab, t->hv), 0);
    close(ffinal);

    /* the kernel has no MAP_FILE after all: mapped and pinned by address */
    by_file.ret = -ENOTSUP;
    assert_int_equal(br_dma_map(&tab, t->hv, 16 * MiB, MiB, 0, RW, dup(mfd)), 0);
    assert_int_equal(by_file.calls, calls0 + 7);
    assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 1);
    assert_int_equal(br_dma_unmap_all(&tab, t->hv), 0);
    /* any other error is the map's */
    by_file.ret = -EFAULT;
    assert_int_equal(br_dma_map(&tab, t->hv, 16 * MiB, MiB, 0, RW, dup(mfd)), -EFAULT);
    assert_int_equal(tab.n, 0);
    by_file.ret = 0;

    /* a file that is not shmem or hugetlbfs (where one is at hand) */
    char path[] = "vub-dma-by-file-XXXXXX";
    int ffd = mkstemp(path);
    struct statfs sfs;
    if (ffd >= 0 && fstatfs(ffd, &sfs) == 0 && sfs.f_type != TMPFS_MAGIC &&
        ftruncate(ffd, (off_t)MiB) == 0) {
        int calls = by_file.calls;
        assert_int_equal(br_dma_map(&tab, t->hv, 16 * MiB, MiB, 0, RW, dup(ffd)), 0);
        assert_int_equal(by_file.calls, calls);
        assert_int_equal(hv_sim_stats_of(t->hv).dma_maps, 1);
        assert_int_equal(br_dma_unmap_all(&tab, t->hv), 0);
    } else {
        print_message("the working directory is on tmpfs: no other file to try\n");
    }
    if (ffd >= 0) {
        close(ffd);
        unlink(path);
    }
    br_dma_free(&tab);
    close(mfd);
    io->ops = sim_ops;
}

/* The VmFlags of this process's mapping of the memfd named NAME (smaps):
 * 1 when it carries "hg" (MADV_HUGEPAGE), 0 when not, -1 when there is no
 * such mapping. */
static int mapping_advised_huge(const char *name)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    char line[512], want[128];
    snprintf(want, sizeof(want), "/memfd:%s ", name);
    int found = -1;
    bool in = false;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            /* a mapping's first line: "start-end perms offset dev inode path" */
            in = strstr(line, want) != NULL;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            found = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

/* The whole-object mapping of a shmem backing asks for transparent huge
 * pages as QEMU does for its RAM (the pin through it is what allocates the
 * guest's memory first). */
static void test_shmem_backing_asks_for_huge_pages(void **state)
{
    struct th *t = *state;
    if (access("/sys/kernel/mm/transparent_hugepage", F_OK) != 0)
        skip();   /* a kernel without THP refuses the request */
    int mfd = memfd_create("vub-test-thp", MFD_CLOEXEC);
    assert_true(mfd >= 0);
    assert_int_equal(ftruncate(mfd, 8 * MiB), 0);
    struct br_dma_table tab;
    br_dma_init(&tab, 16, 0, 4096);
    assert_int_equal(mapping_advised_huge("vub-test-thp"), -1);
    assert_int_equal(br_dma_map(&tab, t->hv, 0x100000000ull, 4096, 2 * MiB, RW, dup(mfd)), 0);
    assert_int_equal(mapping_advised_huge("vub-test-thp"), 1);
    /* and the device still sees the client's page */
    const char msg[] = "huge or not";
    assert_int_equal(pwrite(mfd, msg, sizeof(msg), 2 * MiB), (ssize_t)sizeof(msg));
    char got[sizeof(msg)] = "";
    assert_int_equal(hv_sim_dma_read(t->hv, 0x100000000ull, got, sizeof(got)), 0);
    assert_memory_equal(got, msg, sizeof(msg));
    assert_int_equal(br_dma_unmap_all(&tab, t->hv), 0);
    br_dma_free(&tab);
    assert_int_equal(mapping_advised_huge("vub-test-thp"), -1);
    close(mfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_map_is_zero_copy, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_map_rules, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_map_without_fd, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_read_only_map, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_dedup_and_unmap_all, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_fds_closed_in_batches, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_object_grows_and_read_only_fd, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_table_against_model, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_hugetlb_offset_not_huge_aligned, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup_limits, th_teardown),
        cmocka_unit_test_setup_teardown(test_backing_limit, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_prefault_interruptible, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_pin_interruptible, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_map_by_file, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_viommu_invalidation_pattern, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_viommu_cut_through_and_remap, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_shmem_backing_asks_for_huge_pages, setup, th_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
