#!/usr/bin/env bash
# The demo's guest side (tools/demo.sh): serve the emulated NVMe and edu
# through the bridge, show them with vfio-user-probe, run both self-tests.
. "$VUB_SRC/tests/e2e/lib.sh"
require "$VUB_BRIDGE" "$VUB_PROBE"

banner() { printf '\n---------- %s ----------\n' "$*"; }

banner "the devices in this guest, bound to vfio-pci"
for a in "$VUB_NVME" "$VUB_EDU"; do
  echo "$a $(cat /sys/bus/pci/devices/$a/vendor):$(cat /sys/bus/pci/devices/$a/device)" \
       "driver $(basename "$(readlink /sys/bus/pci/devices/$a/driver)")" \
       "group $(basename "$(readlink /sys/bus/pci/devices/$a/iommu_group)")"
done

banner "vfio-user-bridge --device $VUB_NVME --socket $(sock nvme)"
start_bridge nvme "$VUB_NVME" && pass "bridge serving the NVMe" || fail "bridge serving the NVMe"
banner "vfio-user-bridge --device $VUB_EDU --socket $(sock edu)"
start_bridge edu "$VUB_EDU" && pass "bridge serving edu" || fail "bridge serving edu"

banner "vfio-user-probe $(sock nvme)"
check "probe view of the NVMe" "$VUB_PROBE" "$(sock nvme)"
banner "vfio-user-probe --selftest nvme $(sock nvme)"
check "NVMe self-test (IDENTIFY, READ of LBA 0, MSI-X, reset)" "$VUB_PROBE" --selftest nvme \
  --expect-sparse-msix --expect-serial "$VUB_NVME_SERIAL" --expect-data "VUB-E2E-NVME LBA 0" "$(sock nvme)"

banner "vfio-user-probe $(sock edu)"
check "probe view of edu" "$VUB_PROBE" "$(sock edu)"
banner "vfio-user-probe --selftest edu $(sock edu)"
check "edu self-test (registers, mmap, DMA, MSI, INTx)" "$VUB_PROBE" --selftest edu "$(sock edu)"

banner "stopping the bridges"
stop_bridge nvme; check "NVMe bridge exited cleanly" test $? -eq 0
stop_bridge edu; check "edu bridge exited cleanly" test $? -eq 0
banner "bridge logs"
show_log nvme
show_log edu
banner "summary"
finish
