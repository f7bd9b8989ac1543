#!/usr/bin/env bash
# The testbed itself: the devices are bound to vfio-pci with their groups in
# /dev/vfio, the chroot has what scenarios rely on, results come back.
# e2e-group: devices
# e2e-cost: 8
. "$VUB_SRC/tests/e2e/lib.sh"

for v in VUB_SRC VUB_BUILD VUB_OUT VUB_EDU VUB_NVME VUB_NVME_SERIAL VUB_NVME_IMG; do
  check "$v is set (${!v:-})" test -n "${!v:-}"
done
for a in "$VUB_EDU" "$VUB_NVME"; do
  check "$a is bound to vfio-pci" test "$(basename "$(readlink /sys/bus/pci/devices/$a/driver)")" = vfio-pci
  g=$(basename "$(readlink /sys/bus/pci/devices/$a/iommu_group)")
  check "$a group $g has /dev/vfio/$g" test -c /dev/vfio/$g
done
check "/dev/vfio/vfio exists" test -c /dev/vfio/vfio
check "edu is 1234:11e8" test "$(cat /sys/bus/pci/devices/$VUB_EDU/vendor):$(cat /sys/bus/pci/devices/$VUB_EDU/device)" = 0x1234:0x11e8
check "nvme is 1b36:0010" test "$(cat /sys/bus/pci/devices/$VUB_NVME/vendor):$(cat /sys/bus/pci/devices/$VUB_NVME/device)" = 0x1b36:0x0010
check "the nvme image holds the LBA pattern" test "$(head -c 18 "$VUB_NVME_IMG")" = "VUB-E2E-NVME LBA 0"
check "the build dir is visible" test -d "$VUB_BUILD"
echo hello >"$VUB_OUT/env-probe" 
check "VUB_OUT is writable" test "$(cat "$VUB_OUT/env-probe")" = hello
check "/tmp is a writable tmpfs" sh -c 'stat -f -c %T /tmp | grep -q tmpfs && touch /tmp/x'

finish
