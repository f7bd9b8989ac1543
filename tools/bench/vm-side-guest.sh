#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The guest half of tools/bench/vm-side.sh (run in the e2e testbed guest,
# which has a second nvme, serial VUBSIDEDIRECT01): one inner QEMU 11 guest
# gets both controllers, the testbed's nvme through the bridge
# (vfio-user-pci) and the second passed directly (-device vfio-pci,host=),
# and guest-tool side alternates the same workloads between them, many
# rounds (tests/e2e/vmm/inner-init.sh mode side). Twice: without and with a
# guest IOMMU. Results: $VUB_OUT/side-<mode>.txt (raw), vm-side.md (table).
. "$VUB_SRC/tests/e2e/lib.sh"
. "$VUB_SRC/tests/e2e/vmm/lib-vmm.sh"
require "$VUB_BRIDGE"
command -v python3 >/dev/null || { fail "python3"; finish; }
vmm_prepare
ROUNDS=${VUB_SIDE_ROUNDS:-4}
[ -f "$VUB_BUILD/tests/e2e/side.conf" ] && . "$VUB_BUILD/tests/e2e/side.conf"

direct=
for d in /sys/bus/pci/devices/*; do
  [ "$(cat "$d/vendor"):$(cat "$d/device")" = 0x1b36:0x0010 ] || continue
  [ "${d##*/}" = "$VUB_NVME" ] && continue
  direct=${d##*/}
done
[ -n "$direct" ] || { fail "a second nvme in the testbed (tools/bench/vm-side.sh adds it)"; finish; }
if [ "$(basename "$(readlink "/sys/bus/pci/devices/$direct/driver" 2>/dev/null)")" != vfio-pci ]; then
  [ -e "/sys/bus/pci/devices/$direct/driver" ] && echo "$direct" >"/sys/bus/pci/devices/$direct/driver/unbind"
  echo vfio-pci >"/sys/bus/pci/devices/$direct/driver_override"
  echo "$direct" >/sys/bus/pci/drivers_probe
fi
check "the second nvme $direct is on vfio-pci for QEMU to take directly" \
  test "$(basename "$(readlink "/sys/bus/pci/devices/$direct/driver")")" = vfio-pci
start_bridge nvme "$VUB_NVME" || { fail "the bridge starts"; finish; }

for mode in side viommu_side; do
  VMM_EXTRA=(-device "vfio-pci,host=$direct")
  VMM_KARGS="vmm.rounds=$ROUNDS"
  vmm_start "$mode" "$mode" "$(sock nvme)"
  vmm_wait "$mode" $((VMM_TIMEOUT * 4))
  check "$mode: QEMU exited 0 after the inner guest powered off" test $? -eq 0
  vmm_result "$mode" side
  tr -d '\r' <"$VUB_OUT/vmm-$VUB_SCENARIO-$mode.console" | grep -E '^(SIDE|VMM-SIDE-READY) ' \
    >"$VUB_OUT/side-$mode.txt"
  vmm_conversation "$mode"
  # Issue 18: every doorbell goes through the BAR mapping; region accesses
  # over the socket are config space (region 7) only, however much I/O ran.
  n=$(grep -cE 'vfio_user_region_rw +region [0-5] ' "$VUB_OUT/vmm-$VUB_SCENARIO-$mode.trace")
  check "$mode: no BAR access crossed the socket during the workload ($n)" test "$n" -eq 0
done
check "the bridge is still serving" bridge_alive nvme
stop_bridge nvme
python3 "$VUB_SRC/tools/bench/vm-side-report.py" "$VUB_OUT" side viommu_side \
  >"$VUB_OUT/vm-side.md" 2>&1
check "the report" test $? -eq 0
cat "$VUB_OUT/vm-side.md"
finish
