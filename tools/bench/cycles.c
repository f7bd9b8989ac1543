/* SPDX-License-Identifier: MIT */
/*
 * vfio-user-cycles: a fixed amount of the bench's per-message work against
 * a running bridge, and nothing else, for instruction counts
 * (tools/bench/count.sh runs it and the bridge under callgrind twice, with
 * two counts, and takes the difference per operation; docs/performance.md).
 *
 *     vfio-user-cycles SOCKET CYCLES READS
 *
 * connects with the project's client (src/vu_client.h), negotiates like the
 * bench, then makes CYCLES vIOMMU cycles exactly as the bench's
 * `viommu_cycle` does (a 4 KiB DMA_MAP of the next of 16 pages of a memfd
 * at IOVA 0x100000, then its DMA_UNMAP) and READS 4-byte REGION_READs of
 * config space offset 0 (the trapped round trip), and exits 0 if every one
 * succeeded. No timing: the counts are what it is for.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vu_client.h"

#define CYC_IOVA  0x100000u
#define CYC_PAGES 16u

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s SOCKET CYCLES READS\n", argv[0]);
        return 2;
    }
    char *end;
    unsigned long cycles = strtoul(argv[2], &end, 10);
    if (*end || cycles > 100000000ul) {
        fprintf(stderr, "vfio-user-cycles: bad CYCLES %s\n", argv[2]);
        return 2;
    }
    unsigned long reads = strtoul(argv[3], &end, 10);
    if (*end || reads > 100000000ul) {
        fprintf(stderr, "vfio-user-cycles: bad READS %s\n", argv[3]);
        return 2;
    }
    struct vub_err err = {{0}};
    struct vu_client *c = NULL;
    int rc = vu_client_connect(argv[1], &c, &err);
    if (rc < 0) {
        fprintf(stderr, "vfio-user-cycles: %s\n", err.msg);
        return 1;
    }
    if ((rc = vu_client_negotiate(c, NULL, NULL)) < 0)
        goto fail;
    int memfd = memfd_create("vub-cycles", MFD_CLOEXEC);
    if (memfd < 0 || ftruncate(memfd, CYC_PAGES * 4096) < 0 ||
        fallocate(memfd, 0, 0, CYC_PAGES * 4096) < 0) {
        perror("vfio-user-cycles: memfd");
        vu_client_close(c);
        return 1;
    }
    for (unsigned long i = 0; i < cycles; i++) {
        uint64_t off = (i % CYC_PAGES) * 4096;
        rc = vu_client_dma_map(c, CYC_IOVA, 4096, memfd, off,
                               VU_DMA_MAP_FLAG_READ | VU_DMA_MAP_FLAG_WRITE);
        if (rc == 0)
            rc = vu_client_dma_unmap(c, CYC_IOVA, 4096, 0);
        if (rc < 0)
            goto fail;
    }
    for (unsigned long i = 0; i < reads; i++) {
        uint32_t v;
        ssize_t n = vu_client_region_read(c, VU_PCI_CONFIG_REGION_INDEX, 0, &v, sizeof(v));
        if (n != (ssize_t)sizeof(v)) {
            rc = n < 0 ? (int)n : -EIO;
            goto fail;
        }
    }
    close(memfd);
    vu_client_close(c);
    return 0;
fail:
    fprintf(stderr, "vfio-user-cycles: %s (%s)\n", strerror(-rc), vu_client_error(c));
    vu_client_close(c);
    return 1;
}
