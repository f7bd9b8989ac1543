#!/usr/bin/env bash
# Functions that share an IOMMU group (issue 15; testbed --topology shared:
# edu and nvme behind a conventional PCI bridge, one group with the bridge),
# on either back end (e2e_iommufd_shared runs it with iommufd): the kernel's
# group is one process's (type1: one group file; iommufd: the functions'
# cdevs bound to one iommufd), so host-vfio opens both functions in one
# context (one IOMMU address space, and the bus resets with both open and
# with one: hv_direct --same-group); two bridge PROCESSES cannot share it,
# so a second bridge on the other function of a busy group is refused, and
# its error names the group, the process that holds it and the group's
# other members; once the first bridge has gone, the second serves. Then
# one daemon serves both functions: one context, edu reset with its bus
# (no FLR), which also resets nvme. (With a VM: vmm_shared_group.)
# e2e-topology: shared
# e2e-group: shared
# e2e-cost: 55
# e2e-iommufd: shared
. "$VUB_SRC/tests/e2e/lib.sh"
HV_DIRECT=$VUB_PROGS/hv_direct
NM=(${VUB_NOMMAP[@]+"${VUB_NOMMAP[@]}"})
# no mmap with iommufd: no sparse MSI-X areas either
if mmap_offered; then SPARSE=(--expect-sparse-msix); else SPARSE=("${NM[@]}"); fi
require "$VUB_BRIDGE" "$VUB_PROBE" "$HV_DIRECT"

group_of() { basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"; }
g=$(group_of "$VUB_EDU")
check "the testbed runs the shared topology" test "${VUB_TOPOLOGY:-}" = shared
check "edu ($VUB_EDU) and nvme ($VUB_NVME) are in one IOMMU group ($g)" \
  test "$g" = "$(group_of "$VUB_NVME")"
bridge_dev=
for d in /sys/kernel/iommu_groups/"$g"/devices/*; do
  [ "$(cat "$d/vendor"):$(cat "$d/device")" = 0x1b36:0x0001 ] && bridge_dev=${d##*/}
done
check "the group also holds the PCI bridge 1b36:0001 (${bridge_dev:-none})" test -n "$bridge_dev"
ls /sys/kernel/iommu_groups/"$g"/devices | sed 's/^/  group member: /'

"$VUB_BRIDGE" list --json >"$VUB_OUT/list.json" 2>&1
list_ok='import json, sys
l = {e["address"]: e for e in json.load(open(sys.argv[1]))}
sys.exit(0 if all(l[a]["iommu_group"] == int(sys.argv[4]) and l[a]["exportable"]
                  for a in sys.argv[2:4]) else 1)'
check "list: edu and nvme in group $g, both exportable" \
  python3 -c "$list_ok" "$VUB_OUT/list.json" "$VUB_EDU" "$VUB_NVME" "$g"

"$HV_DIRECT" --same-group "$VUB_EDU" "$VUB_NVME" 2>&1 | tee "$VUB_OUT/hv_direct.txt"
check "hv_direct --same-group: every check passed" test "${PIPESTATUS[0]}" -eq 0
if [ "$VUB_IOMMU" = iommufd ]; then
  VUB_IOMMU=iommufd-group "$HV_DIRECT" --same-group "$VUB_EDU" "$VUB_NVME" 2>&1 |
    tee "$VUB_OUT/hv_direct-group.txt"
  check "hv_direct --same-group with iommufd-group: every check passed" test "${PIPESTATUS[0]}" -eq 0
fi

start_bridge edu "$VUB_EDU" || { fail "the edu bridge starts"; finish; }
check_iommu_log edu
check "edu self-test through the bridge" "$VUB_PROBE" --selftest edu "${NM[@]}" "$(sock edu)"
edu_pid=$(bridge_pid edu)
rm -f "$(sock nvme)"
timeout 30 "$VUB_BRIDGE" --device "$VUB_NVME" --socket "$(sock nvme)" --iommu "$VUB_IOMMU" >"$VUB_OUT/bridge-nvme-busy.log" 2>&1
rc=$?
sed 's/^/  | /' "$VUB_OUT/bridge-nvme-busy.log"
check "a second bridge on nvme of the busy group exits with an error (status $rc)" \
  test "$rc" -ne 0 -a "$rc" -ne 124
check "its error names the group and says it is busy" grep -q "group $g is busy" "$VUB_OUT/bridge-nvme-busy.log"
check "it names the process that holds the group (pid $edu_pid, the edu bridge)" \
  grep -qE "pid $edu_pid \([^)]*vfio-user-bridge[^)]*--device $VUB_EDU" "$VUB_OUT/bridge-nvme-busy.log"
check "it names the group's other members" \
  grep -q "the group also holds .*$VUB_EDU (vfio-pci)" "$VUB_OUT/bridge-nvme-busy.log"
check_fails "and leaves no socket behind" test -e "$(sock nvme)"
check "the edu bridge is unaffected" "$VUB_PROBE" --selftest edu "${NM[@]}" "$(sock edu)"
stop_bridge edu
check "the edu bridge exits 0 on SIGTERM" test $? -eq 0

start_bridge nvme "$VUB_NVME" || { fail "the nvme bridge starts once the group is free"; finish; }
check "nvme self-test through the bridge once edu's bridge has gone" \
  "$VUB_PROBE" --selftest nvme "${SPARSE[@]}" --expect-serial "$VUB_NVME_SERIAL" "$(sock nvme)"
stop_bridge nvme
check "the nvme bridge exits 0 on SIGTERM" test $? -eq 0

# ---- one daemon for the group's two functions ------------------------------------
LOG=$VUB_OUT/bridge-group.log
start_bridge group "$VUB_EDU" --device "$VUB_NVME" --socket "$(sock nvme)" ||
  { fail "the group daemon starts"; finish; }
for _ in $(seq 100); do [ -S "$(sock nvme)" ] && break; sleep 0.1; done
check "one daemon serves edu and nvme (both sockets)" test -S "$(sock nvme)"
check "in one IOMMU $VUB_IOMMU context" grep -q "one IOMMU $VUB_IOMMU context for the group's functions" "$LOG"
check "serving both of group $g's functions" \
  test "$(grep -c "(IOMMU group $g, function [12] of 2)" "$LOG")" -eq 2
check "edu is reset with its bus (no FLR), which also resets nvme" \
  grep -q "vfio-user-bridge\[$VUB_EDU\] info: reset: a hot reset of the bus .*also resets $VUB_NVME" "$LOG"
check "edu self-test (its DEVICE_RESET is the hot reset; nvme has no client)" \
  "$VUB_PROBE" --selftest edu "${NM[@]}" "$(sock group)"
check "nvme self-test (its own FLR)" \
  "$VUB_PROBE" --selftest nvme "${SPARSE[@]}" --expect-serial "$VUB_NVME_SERIAL" "$(sock nvme)"
check_fails "no reset was refused or failed" grep -qE "DEVICE_RESET .*failed|device reset failed|not reset yet" "$LOG"
stop_bridge group
check "the group daemon exits 0 on SIGTERM" test $? -eq 0
grep -E "IOMMU|reset" "$LOG" | sed 's/^/  | /'
finish
