#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# VMM scenario: the inner guest has its own IOMMU (intel-iommu, caching mode;
# the inner kernel with intel_iommu=on iommu.strict=1), so QEMU sends a
# DMA_MAP and a DMA_UNMAP per guest IOMMU mapping, and on every context
# invalidation or reset DMA_UNMAPs of whole ranges (kernel type1 semantics,
# docs/architecture.md).
#
# QEMU 1, the nvme, 2 vCPUs: I/O; driver unbind; rebind and I/O; a guest
# reboot and I/O. QEMU 2, the edu bound to vfio-pci in the inner guest: its
# DMA engine reaches what the guest IOMMU maps and nothing else (guest-tool
# edu-vfio). At each inner checkpoint the bridge's DMA table (from
# `vfio-user-bridge status`) must be exactly QEMU's (its DMA_MAP/UNMAP trace
# replayed with type1 rules up to the same message,
# tests/e2e/vmm/viommu-compare.py); with the edu's two pages mapped it holds
# two, after the edu's last unmap none. (After the nvme driver's unbind the
# guest IOMMU still maps 8 pages; the bridge holds exactly those.) Neither bridge may
# log a failed DMA_MAP or DMA_UNMAP. One device per QEMU, so that each trace
# is one device's conversation.
. "$VUB_SRC/tests/e2e/lib.sh"
. "$VUB_SRC/tests/e2e/vmm/lib-vmm.sh"
require "$VUB_BRIDGE"
command -v python3 >/dev/null || { fail "python3 (for viommu-compare.py)"; finish; }
vmm_prepare
start_bridge nvme "$VUB_NVME" --log-level=debug || { fail "the nvme bridge starts"; finish; }
start_bridge edu "$VUB_EDU" --log-level=debug || { fail "the edu bridge starts"; finish; }

# viommu_checkpoint QEMU BRIDGE STEP [WANT_COUNT [final]]: at the inner
# guest's checkpoint STEP (it then idles until told, vmm_tell, or 120 s),
# compare the bridge's table with QEMU's. The comparison is exact whenever
# the snapshot is taken (the replay stops at the message the bridge had got
# to); the count is checked only on a snapshot taken while the guest idled,
# or at a "final" step (nothing maps after it).
viommu_checkpoint() {
  local q=$1 br=$2 step=$3 want=${4:-} final=${5:-} late= st out rc n
  local con=$VUB_OUT/vmm-$VUB_SCENARIO-$1.console
  if ! vmm_wait_line "$q" "^VMM-CHECKPOINT $step\$" "$VMM_TIMEOUT"; then
    fail "$step: the inner guest reached the checkpoint"
    return
  fi
  # the snapshot: the bridge's table and how far QEMU's trace had got, both
  # while the guest idles (the comparison itself may take longer: python
  # starts slowly here)
  st=$VUB_OUT/status-$br-$step.json
  "$VUB_BRIDGE" status --socket "$(sock "$br")" >"$st" 2>&1
  tsize=$(stat -L -c %s "$VUB_OUT/vmm-$VUB_SCENARIO-$q.trace")
  tr -d '\r' <"$con" | grep -q "^VMM-CHECKPOINT-END $step\$" && late=1
  vmm_tell "$q" "$step" || fail "$step: QEMU $q has a control port"
  # (-S: no site module; a python start costs seconds in the test guest)
  out=$(python3 -S "$VMM_DIR/viommu-compare.py" "$VUB_OUT/vmm-$VUB_SCENARIO-$q.trace" "$st" "$tsize" 2>&1)
  rc=$?
  echo "$out" | sed 's/^/  /'
  check "$step: the $br bridge's DMA table is exactly what QEMU mapped" test $rc -eq 0
  if [ -n "$want" ] && [ -n "$late" ] && [ -z "$final" ]; then
    fail "$step: the count taken while the guest idled (it had moved on; a loaded machine?)"
  elif [ -n "$want" ]; then
    # the bridge's count, as the comparison read it from the same status
    n=$(echo "$out" | sed -n 's/^bridge \([0-9]*\) mappings .*/\1/p')
    check "$step: the $br bridge holds $want DMA mappings (has ${n:-?})" test "${n:-x}" = "$want"
  fi
}

# dma_errors BRIDGE: failed DMA_MAP/DMA_UNMAP lines in its log.
dma_errors() { grep -cE '(DMA_MAP|DMA_UNMAP) \(id [0-9]+\) failed' "$VUB_OUT/bridge-$1.log"; }

vmm_start viommu viommu "$(sock nvme)"
viommu_checkpoint viommu nvme io
viommu_checkpoint viommu nvme unbound
viommu_checkpoint viommu nvme rebind
viommu_checkpoint viommu nvme boot2
vmm_wait viommu $((VMM_TIMEOUT * 2))
check "QEMU (nvme) exited 0 after the second boot powered off" test $? -eq 0
check "the inner guest booted twice" \
  test "$(tr -d '\r' <"$VUB_OUT/vmm-$VUB_SCENARIO-viommu.console" | grep -c '^VMM: init at')" -eq 2
vmm_result viommu viommu_io
vmm_result viommu viommu_rebind_io
vmm_result viommu viommu_reboot_io
vmm_conversation viommu

vmm_start edu viommu_edu "$(sock edu)"
viommu_checkpoint edu edu edu_mapped 2
viommu_checkpoint edu edu edu_done 0 final
vmm_wait edu
check "QEMU (edu) exited 0 after the inner guest powered off" test $? -eq 0
vmm_result edu viommu_edu
vmm_conversation edu

check "the nvme bridge is still serving" bridge_alive nvme
check "the edu bridge is still serving" bridge_alive edu
stop_bridge nvme
check "the nvme bridge exits 0 on SIGTERM" test $? -eq 0
stop_bridge edu
check "the edu bridge exits 0 on SIGTERM" test $? -eq 0
for b in nvme edu; do
  grep -E 'disconnected' "$VUB_OUT/bridge-$b.log" | sed "s/^/  $b: /"
  n=$(dma_errors $b)
  check "the $b bridge logged no failed DMA_MAP or DMA_UNMAP (has $n)" test "$n" -eq 0
  [ "$n" -eq 0 ] || grep -E '(DMA_MAP|DMA_UNMAP) \(id [0-9]+\) failed' "$VUB_OUT/bridge-$b.log" | head -n 5 | sed 's/^/  | /'
done
vmm_bridge_summary nvme
vmm_bridge_summary edu
finish
