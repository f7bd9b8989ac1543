/* SPDX-License-Identifier: MIT */
/*
 * reexec_client SOCKET DIR - one client connection that keeps edu busy
 * while the bridge is re-executed under it (scenario reexec.sh). It
 * negotiates once, maps three DMA ranges (two pieces of one memfd at
 * different offsets, one of a second memfd), arms MSI vector 0 on an
 * eventfd, and then runs rounds until DIR/stop exists:
 *   fill 2 KiB of a source range with bytes from a per-round seed, DMA them
 *   into edu's buffer, DMA them back to a destination range with an MSI on
 *   completion, wait for the MSI, compare checksums.
 * Every register access goes through the bridge (REGION_READ/WRITE); while
 * a transfer runs (edu takes 100 ms of virtual time per DMA) the client reads
 * its status every 5 ms ($REEXEC_CLIENT_POLL_US, in microseconds), so at
 * every SIGHUP a request is in hand or waits in the socket for the new
 * process (a re-exec takes hundreds of ms here), without the client and
 * the bridge keeping the guest's one CPU busy (it polled every 0.5 ms
 * before). It never reconnects: a
 * connection the bridge lost shows up as errors. Each round writes
 * DIR/rounds (the count so far). At the end it unmaps one range and checks
 * the device can no longer write it, unmaps all and maps an IOVA again
 * ("unmap ok"), and prints
 *   rounds N errors E mismatches M irqs I max_round_ms T
 * and exits 0 only if E == M == 0 and I == N. $REEXEC_CLIENT_PACE_MS: a
 * pause between rounds.
 *
 * e2e-needs: vuproto
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "edu_regs.h"
#include "vu_client.h"

/* QEMU 7.2's edu aborts on a transfer that ends at the end of its buffer. */
#define XFER 2048u
#define IOVA_A 0x100000u    /* memfd A [0, 64K) */
#define IOVA_C 0x200000u    /* memfd A [64K, 128K) */
#define IOVA_B 0x300000u    /* memfd B [0, 64K) */
#define MAP_LEN 0x10000u
#define WAIT_MS 20000       /* a slow TCG guest while a re-exec runs */

static const uint32_t BAR0 = VU_PCI_BAR0_REGION_INDEX;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int wr(struct vu_client *c, uint64_t reg, uint64_t v, unsigned sz)
{
    return vu_client_region_write(c, BAR0, reg, &v, sz, false) == (ssize_t)sz ? 0 : -1;
}

static int rd32(struct vu_client *c, uint64_t reg, uint32_t *v)
{
    return vu_client_region_read(c, BAR0, reg, v, 4) == 4 ? 0 : -1;
}

/* The pause between two reads of the DMA status while a transfer runs. */
static useconds_t poll_us = 5000;

static int dma(struct vu_client *c, uint64_t src, uint64_t dst, uint32_t cmd)
{
    if (wr(c, EDU_DMA_SRC, src, 8) || wr(c, EDU_DMA_DST, dst, 8) || wr(c, EDU_DMA_CNT, XFER, 8) ||
        wr(c, EDU_DMA_CMD, cmd | EDU_DMA_START, 8))
        return -1;
    uint64_t end = now_ms() + WAIT_MS;
    uint32_t v = 0;
    do {
        if (rd32(c, EDU_DMA_CMD, &v))
            return -1;
        if (!(v & EDU_DMA_START))
            return 0;
        usleep(poll_us);
    } while (now_ms() < end);
    return -1;
}

static uint32_t sum(const uint8_t *p, size_t n)
{
    uint32_t a = 1, b = 0;   /* Adler-32 */
    for (size_t i = 0; i < n; i++) {
        a = (a + p[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    return (b << 16) | a;
}

static uint8_t *memfd_map(size_t len, int *fd)
{
    *fd = memfd_create("reexec-client", MFD_CLOEXEC);
    if (*fd < 0 || ftruncate(*fd, (off_t)len) < 0)
        return NULL;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: reexec_client SOCKET DIR\n");
        return 2;
    }
    const char *dir = argv[2];
    char stop_path[512], rounds_path[512], tmp_path[520];
    snprintf(stop_path, sizeof(stop_path), "%s/stop", dir);
    snprintf(rounds_path, sizeof(rounds_path), "%s/rounds", dir);
    snprintf(tmp_path, sizeof(tmp_path), "%s/rounds.tmp", dir);

    struct vu_client *c = NULL;
    struct vub_err err = { "" };
    if (vu_client_connect(argv[1], &c, &err) < 0) {
        fprintf(stderr, "connect: %s\n", err.msg);
        return 1;
    }
    vu_client_set_timeout(c, WAIT_MS);
    if (vu_client_negotiate(c, NULL, NULL) < 0) {
        fprintf(stderr, "negotiate: %s\n", vu_client_error(c));
        return 1;
    }
    int fa, fb;
    uint8_t *a = memfd_map(2 * MAP_LEN, &fa), *b = memfd_map(MAP_LEN, &fb);
    if (!a || !b) {
        perror("memfd");
        return 1;
    }
    const uint32_t RW = VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE;
    uint16_t cmd = 0;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (vu_client_region_read(c, VU_PCI_CONFIG_REGION_INDEX, 4, &cmd, 2) != 2 ||
        (cmd |= 0x6, vu_client_region_write(c, VU_PCI_CONFIG_REGION_INDEX, 4, &cmd, 2, false)) != 2 ||
        vu_client_dma_map(c, IOVA_A, MAP_LEN, fa, 0, RW) < 0 ||
        vu_client_dma_map(c, IOVA_C, MAP_LEN, fa, MAP_LEN, RW) < 0 ||
        vu_client_dma_map(c, IOVA_B, MAP_LEN, fb, 0, RW) < 0 || efd < 0 ||
        vu_client_set_irqs(c, VU_IRQ_SET_DATA_EVENTFD | VU_IRQ_SET_ACTION_TRIGGER,
                           VU_PCI_MSI_IRQ_INDEX, 0, 1, &efd, 1, NULL) < 0) {
        fprintf(stderr, "setup: %s\n", vu_client_error(c));
        return 1;
    }
    printf("ready: 3 DMA maps, MSI armed\n");
    fflush(stdout);

    unsigned long rounds = 0, errors = 0, mismatches = 0, irqs = 0;
    uint64_t max_ms = 0;
    struct stat sb;
    /* $REEXEC_CLIENT_PACE_MS: a pause between rounds, so that a loaded
     * one-vCPU guest has time left for the scenario's own commands */
    const char *pace_s = getenv("REEXEC_CLIENT_PACE_MS");
    long pace_ms = pace_s ? atol(pace_s) : 0;
    const char *poll_s = getenv("REEXEC_CLIENT_POLL_US");
    if (poll_s && atol(poll_s) > 0 && atol(poll_s) <= 100000)
        poll_us = (useconds_t)atol(poll_s);
    while (stat(stop_path, &sb) < 0 && errors < 5) {
        if (pace_ms > 0 && rounds) {
            struct timespec ts = { pace_ms / 1000, (pace_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
        uint64_t t0 = now_ms();
        /* sources and destinations move around the three maps */
        uint64_t src_iova = (rounds % 2) ? IOVA_C : IOVA_A;
        uint8_t *src = (rounds % 2) ? a + MAP_LEN : a;
        uint64_t dst_iova = (rounds % 3 == 2) ? IOVA_A + 0x8000 : IOVA_B;
        uint8_t *dst = (rounds % 3 == 2) ? a + 0x8000 : b;
        uint32_t seed = (uint32_t)rounds * 2654435761u + 1;
        for (uint32_t i = 0; i < XFER; i++) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            src[i] = (uint8_t)seed;
        }
        memset(dst, 0, XFER);
        rounds++;
        if (dma(c, src_iova, EDU_BUF_ADDR, 0) < 0 ||
            dma(c, EDU_BUF_ADDR, dst_iova, EDU_DMA_TO_RAM | EDU_DMA_IRQ) < 0) {
            fprintf(stderr, "round %lu: DMA failed: %s\n", rounds, vu_client_error(c));
            errors++;
            continue;
        }
        struct pollfd p = { .fd = efd, .events = POLLIN };
        uint64_t n = 0;
        if (poll(&p, 1, WAIT_MS) == 1 && read(efd, &n, sizeof(n)) == (ssize_t)sizeof(n) && n > 0)
            irqs++;
        else
            fprintf(stderr, "round %lu: no MSI within %d ms\n", rounds, WAIT_MS);
        if (wr(c, EDU_IRQ_ACK, EDU_IRQ_DMA, 4) < 0) {
            fprintf(stderr, "round %lu: IRQ ack failed: %s\n", rounds, vu_client_error(c));
            errors++;
        }
        if (sum(src, XFER) != sum(dst, XFER)) {
            fprintf(stderr, "round %lu: checksum mismatch\n", rounds);
            mismatches++;
        }
        uint64_t ms = now_ms() - t0;
        if (ms > max_ms)
            max_ms = ms;
        FILE *f = fopen(tmp_path, "w");
        if (f) {
            fprintf(f, "%lu\n", rounds);
            fclose(f);
            rename(tmp_path, rounds_path);
        }
    }
    /* Unmaps after the re-execs take effect in the IOMMU (type1 skips an
     * unmap from another mm without an error: a success reply alone would
     * not show it): after unmapping B the device can no longer write it,
     * and after unmapping all, A's IOVA maps again (EEXIST otherwise). */
    bool unmap_ok = false;
    memset(b, 0, XFER);
    if (vu_client_dma_unmap(c, IOVA_B, MAP_LEN, 0) == 0 &&
        dma(c, EDU_BUF_ADDR, IOVA_B, EDU_DMA_TO_RAM) == 0) {
        unmap_ok = true;
        for (uint32_t i = 0; i < XFER; i++)
            unmap_ok &= b[i] == 0;
    }
    if (vu_client_set_irqs(c, VU_IRQ_SET_DATA_NONE | VU_IRQ_SET_ACTION_TRIGGER,
                           VU_PCI_MSI_IRQ_INDEX, 0, 0, NULL, 0, NULL) < 0 ||
        vu_client_dma_unmap(c, 0, 0, VU_DMA_UNMAP_FLAG_ALL) < 0 ||
        vu_client_dma_map(c, IOVA_A, MAP_LEN, fa, 0, RW) < 0 ||
        vu_client_dma_unmap(c, IOVA_A, MAP_LEN, 0) < 0) {
        fprintf(stderr, "teardown: %s\n", vu_client_error(c));
        unmap_ok = false;
    }
    printf("unmap %s\n", unmap_ok ? "ok" : "FAILED");
    if (!unmap_ok)
        errors++;
    printf("rounds %lu errors %lu mismatches %lu irqs %lu max_round_ms %llu\n", rounds, errors,
           mismatches, irqs, (unsigned long long)max_ms);
    vu_client_close(c);
    return errors == 0 && mismatches == 0 && irqs == rounds && rounds > 0 ? 0 : 1;
}
