#!/usr/bin/env bash
# nvme through the bridge: view, then the nvme self-test (admin queues in
# client memory, doorbells through the mmapped BAR, IDENTIFY, a READ of LBA 0
# on an I/O queue, MSI-X completions, reset), with the kernel's MSIX_MAPPABLE
# passed on (--msix-mmap=kernel) and with the default sparse MSI-X areas.
# e2e-group: devices
# e2e-cost: 10
# e2e-iommufd: core
. "$VUB_SRC/tests/e2e/lib.sh"
require "$VUB_BRIDGE" "$VUB_PROBE"
LBA0="VUB-E2E-NVME LBA 0"

NM=${VUB_NOMMAP[@]+"${VUB_NOMMAP[@]}"}
if start_bridge nvme "$VUB_NVME" --msix-mmap=kernel; then
  check_iommu_log nvme
  "$VUB_PROBE" "$(sock nvme)" >"$VUB_OUT/nvme-view.txt" 2>&1
  check "probe shows the device" test $? -eq 0
  sed 's/^/  | /' "$VUB_OUT/nvme-view.txt"
  check "view: ids 1b36:0010" grep -q '1b36:0010' "$VUB_OUT/nvme-view.txt"
  if mmap_offered; then
    check "view: BAR0 MSIX_MAPPABLE" grep -q 'cap MSIX_MAPPABLE' "$VUB_OUT/nvme-view.txt"
  else
    check "view: no mmap caps (iommufd)" bash -c "! grep -Eq 'cap (MSIX_MAPPABLE|SPARSE_MMAP)' '$VUB_OUT/nvme-view.txt'"
  fi
  check "view: MSI-X capability decoded" grep -Eq '0x11 MSI-X: table_size=65' "$VUB_OUT/nvme-view.txt"
  check "view: PCI Express capability decoded" grep -q 'PCI Express:' "$VUB_OUT/nvme-view.txt"
  check "nvme self-test through the bridge" "$VUB_PROBE" --selftest nvme $NM \
    --expect-serial "$VUB_NVME_SERIAL" --expect-data "$LBA0" "$(sock nvme)"
  check "a second client runs it again" "$VUB_PROBE" --selftest nvme $NM \
    --expect-serial "$VUB_NVME_SERIAL" "$(sock nvme)"
  stop_bridge nvme
  check "bridge exits 0" test $? -eq 0
else
  fail "bridge serves $VUB_NVME"
fi

# the default: sparse areas around the MSI-X table and PBA (every client traps them)
if ! mmap_offered; then
  : # no mmap, no sparse areas to look at (iommufd)
elif start_bridge nvme-sparse "$VUB_NVME"; then
  "$VUB_PROBE" "$(sock nvme-sparse)" >"$VUB_OUT/nvme-sparse-view.txt" 2>&1
  check "view by default shows sparse areas" grep -q 'cap SPARSE_MMAP' "$VUB_OUT/nvme-sparse-view.txt"
  check "view by default: no MSIX_MAPPABLE" bash -c "! grep -q 'cap MSIX_MAPPABLE' '$VUB_OUT/nvme-sparse-view.txt'"
  grep -A4 'cap SPARSE_MMAP' "$VUB_OUT/nvme-sparse-view.txt" | sed 's/^/  | /'
  check "nvme self-test with the default sparse MSI-X" "$VUB_PROBE" --selftest nvme --expect-sparse-msix \
    --expect-serial "$VUB_NVME_SERIAL" --expect-data "$LBA0" "$(sock nvme-sparse)"
  stop_bridge nvme-sparse
  check "bridge (sparse MSI-X) exits 0" test $? -eq 0
else
  fail "bridge (sparse MSI-X) serves $VUB_NVME"
fi
finish
