/* SPDX-License-Identifier: MIT */
/*
 * iommu_map_check ADDR IOVA SIZE - open ADDR directly through host-vfio
 * (type1, or iommufd with VUB_IOMMU=iommufd) and map SIZE bytes of fresh memory at IOVA, then unmap. Exit 0 if
 * both worked: the device is free again and nothing is left mapped there
 * (a leaked mapping in the same container would answer EEXIST; a device
 * still held by someone else cannot be opened at all).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hv.h"
#include "hv_iommufd.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: iommu_map_check ADDR IOVA SIZE\n");
        return 2;
    }
    char *end;
    uint64_t iova = strtoull(argv[2], &end, 0);
    uint64_t size = *end ? 0 : strtoull(argv[3], &end, 0);
    if (*end || !size) {
        fprintf(stderr, "iommu_map_check: bad IOVA or SIZE\n");
        return 2;
    }
    struct vub_err err = {{0}};
    struct hv_device *d = NULL;
    const char *k = getenv("VUB_IOMMU");
    int rc = k && strcmp(k, "iommufd") == 0 ? hv_iommufd_open(argv[1], NULL, &d, &err)
                                             : hv_type1_open(argv[1], NULL, &d, &err);
    if (rc < 0) {
        printf("iommu_map_check: open %s: %s\n", argv[1], err.msg);
        return 1;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        hv_close(d);
        return 2;
    }
    rc = hv_dma_map(d, iova, p, size, HV_DMA_READ | HV_DMA_WRITE);
    printf("iommu_map_check: %s: map 0x%llx+0x%llx: %s\n", argv[1], (unsigned long long)iova,
           (unsigned long long)size, rc ? strerror(-rc) : "ok");
    int status = rc ? 1 : 0;
    if (!rc) {
        rc = hv_dma_unmap(d, iova, size, 0);
        if (rc) {
            printf("iommu_map_check: unmap: %s\n", strerror(-rc));
            status = 1;
        }
    }
    munmap(p, size);
    hv_close(d);
    return status;
}
