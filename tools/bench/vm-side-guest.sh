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
ROUNDS=${VUB_SIDE_ROUNDS:-4} MODES="side viommu_side" TRACE=0 SWAP=0
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
# --swap: the second controller through the bridge, the testbed's own passed
# directly (the inner guest tells them apart by the bridged one's serial)
bridged_bdf=$VUB_NVME
if [ "$SWAP" = 1 ]; then
  bridged_bdf=$direct direct=$VUB_NVME VUB_NVME_SERIAL=VUBSIDEDIRECT01
  echo "controllers swapped: $bridged_bdf through the bridge, $direct passed directly"
fi
# the bridge's CPU time (user + system, seconds) into cpu-MODE.txt
bridge_cpu() {
  local tck
  tck=$(getconf CLK_TCK)
  awk -v w="$1" -v k="$tck" '{ printf "BRIDGE-CPU %s %.2f\n", w, ($14 + $15) / k }' \
    "/proc/$(bridge_pid nvme)/stat" >>"$VUB_OUT/cpu-$2.txt"
}
targs=()
# (on the guest's tmpfs: a write to the 9p export is a round trip to the
# testbed's QEMU, and the bridge writes a line per message)
[ "$TRACE" = 1 ] && targs=(--trace /tmp/bridge-trace.jsonl)
start_bridge nvme "$bridged_bdf" "${targs[@]}" || { fail "the bridge starts"; finish; }

for mode in $MODES; do
  VMM_EXTRA=(-device "vfio-pci,host=$direct")
  [ "$TRACE" = 1 ] && VMM_EXTRA+=(-msg timestamp=on)
  VMM_KARGS="vmm.rounds=$ROUNDS"
  : >"$VUB_OUT/cpu-$mode.txt"
  [ "$TRACE" = 1 ] && : >/tmp/bridge-trace.jsonl && bridge_cpu before "$mode"
  vmm_start "$mode" "$mode" "$(sock nvme)"
  vmm_wait "$mode" $((VMM_TIMEOUT * 4))
  check "$mode: QEMU exited 0 after the inner guest powered off" test $? -eq 0
  vmm_result "$mode" side
  tr -d '\r' <"$VUB_OUT/vmm-$VUB_SCENARIO-$mode.console" | grep -E '^(SIDE|VMM-SIDE-READY) ' \
    >"$VUB_OUT/side-$mode.txt"
  vmm_conversation "$mode"
  if [ "$TRACE" = 1 ]; then
    bridge_cpu after "$mode"
    python3 "$VUB_SRC/tools/bench/vm-side-msgs.py" "$VUB_OUT/vmm-$VUB_SCENARIO-$mode.trace" \
      /tmp/bridge-trace.jsonl "$VUB_OUT/cpu-$mode.txt" >"$VUB_OUT/msgs-$mode.md"
    check "$mode: where the messages' time went" test $? -eq 0
    cp /tmp/bridge-trace.jsonl "$VUB_OUT/bridge-trace-$mode.jsonl"
    cat "$VUB_OUT/msgs-$mode.md"
  fi
  # Issue 18: every doorbell goes through the BAR mapping; region accesses
  # over the socket are config space (region 7) only, however much I/O ran.
  n=$(grep -cE 'vfio_user_region_rw +region [0-5] ' "$VUB_OUT/vmm-$VUB_SCENARIO-$mode.trace")
  check "$mode: no BAR access crossed the socket during the workload ($n)" test "$n" -eq 0
done
check "the bridge is still serving" bridge_alive nvme
stop_bridge nvme
python3 "$VUB_SRC/tools/bench/vm-side-report.py" "$VUB_OUT" $MODES \
  >"$VUB_OUT/vm-side.md" 2>&1
check "the report" test $? -eq 0
if [ "$SWAP" = 1 ]; then
  echo "- controllers swapped: the second nvme ($bridged_bdf) through the bridge, the testbed's own ($direct) passed directly" >>"$VUB_OUT/vm-side.md"
fi
cat "$VUB_OUT/vm-side.md"
finish
