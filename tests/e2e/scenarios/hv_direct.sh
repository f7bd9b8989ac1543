#!/usr/bin/env bash
# host-vfio's type1 back end straight on the kernel (no bridge): the kernel's
# view of edu and nvme, edu DMA through an IOMMU mapping of a memfd, an edu
# MSI on an eventfd, the kernel rules the simulated device models, edu and nvme
# in one container, the error paths (non-vfio function, double open) and a
# release/bind cycle of edu. On the iommufd kernel: with iommufd, then with
# iommufd-group (the IOAS through the group file: mmap fds of their own).
# e2e-group: host
# e2e-cost: 7
# e2e-iommufd: core
. "$VUB_SRC/tests/e2e/lib.sh"
HV_DIRECT=$VUB_PROGS/hv_direct
require "$HV_DIRECT"

"$HV_DIRECT" "$VUB_EDU" "$VUB_NVME" 2>&1 | tee "$VUB_OUT/hv_direct.txt"
check "hv_direct: every check passed" test "${PIPESTATUS[0]}" -eq 0
if [ "$VUB_IOMMU" = iommufd ]; then
  # the same IOAS reached through the group file: device files of their own
  VUB_IOMMU=iommufd-group "$HV_DIRECT" "$VUB_EDU" "$VUB_NVME" 2>&1 | tee "$VUB_OUT/hv_direct-group.txt"
  check "hv_direct with iommufd-group: every check passed" test "${PIPESTATUS[0]}" -eq 0
fi
check "edu is on vfio-pci again afterwards" \
  test "$(basename "$(readlink /sys/bus/pci/devices/$VUB_EDU/driver)")" = vfio-pci
finish
