#!/usr/bin/env bash
# Client lifecycle: a client killed with SIGKILL while it has DMA mapped and
# MSI armed; the bridge must clean up (IRQs off, mappings gone) so that a
# second client runs the whole edu self-test, and after the bridge exits the
# device opens directly and the same IOVA maps again.
# e2e-group: devices
# e2e-cost: 10
# e2e-iommufd: core
. "$VUB_SRC/tests/e2e/lib.sh"
require "$VUB_BRIDGE" "$VUB_PROBE" "$VUB_PROGS/iommu_map_check"

if ! start_bridge life "$VUB_EDU"; then
  fail "bridge serves $VUB_EDU"
  finish
fi
check_iommu_log life

"$VUB_PROBE" --selftest edu ${VUB_NOMMAP[@]+"${VUB_NOMMAP[@]}"} --hold "$(sock life)" >"$VUB_OUT/hold.log" 2>&1 &
holder=$!
for i in $(seq 600); do
  grep -q '^holding' "$VUB_OUT/hold.log" && break
  kill -0 $holder 2>/dev/null || break
  sleep 0.1
done
sed 's/^/  | /' "$VUB_OUT/hold.log"
if grep -q '^holding' "$VUB_OUT/hold.log"; then
  pass "first client holds DMA at 0x100000 and an armed MSI"
else
  fail "first client did not get to the holding point"
fi
# The kernel lists a vector vfio-pci set up for MSI as vfio-msi[N](ADDR).
msi_vectors() { grep -c "vfio-msi.*($VUB_EDU)" /proc/interrupts; }
check "the kernel has the MSI vector set up for it" test "$(msi_vectors)" -eq 1
kill -KILL $holder 2>/dev/null
wait $holder 2>/dev/null
pass "first client killed with SIGKILL"
sleep 0.5
check "bridge survives the client's death" bridge_alive life

check "the dead client's MSI vector was torn down" test "$(msi_vectors)" -eq 0
"$VUB_PROBE" "$(sock life)" >"$VUB_OUT/after-kill-view.txt" 2>&1
check "a new client connects" test $? -eq 0
check "a second client runs the whole edu self-test (same IOVA)" \
  "$VUB_PROBE" --selftest edu ${VUB_NOMMAP[@]+"${VUB_NOMMAP[@]}"} "$(sock life)"

stop_bridge life
check "bridge exits 0 on SIGTERM" test $? -eq 0
check "after the bridge: device opens directly, IOVA 0x100000 maps again" \
  "$VUB_PROGS/iommu_map_check" "$VUB_EDU" 0x100000 0x2000
finish
