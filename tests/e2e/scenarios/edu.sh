#!/usr/bin/env bash
# edu through the bridge: the probe's view, then its edu self-test (registers
# over the socket and through the mmapped BAR, factorial, DMA both ways, MSI,
# INTx with unmask, reset), then the same with --no-mmap (and, on the
# iommufd kernel, with --iommu iommufd-group: mmap through the group file).
# e2e-group: devices
# e2e-cost: 12
# e2e-iommufd: core
. "$VUB_SRC/tests/e2e/lib.sh"
require "$VUB_BRIDGE" "$VUB_PROBE"

if start_bridge edu "$VUB_EDU"; then
  pass "bridge serves $VUB_EDU"
  check_iommu_log edu
  "$VUB_PROBE" "$(sock edu)" >"$VUB_OUT/edu-view.txt" 2>&1
  check "probe shows the device" test $? -eq 0
  sed 's/^/  | /' "$VUB_OUT/edu-view.txt"
  check "view: ids 1234:11e8" grep -q '1234:11e8' "$VUB_OUT/edu-view.txt"
  if mmap_offered; then
    check "view: BAR0 1M mmappable" grep -Eq 'BAR0 +size 1M .*MMAP' "$VUB_OUT/edu-view.txt"
  else
    check "view: BAR0 1M, not mmappable (iommufd)" bash -c "grep -E 'BAR0 +size 1M' '$VUB_OUT/edu-view.txt' | grep -vq MMAP"
  fi
  check "view: MSI capability decoded" grep -q '0x05 MSI: enabled=no' "$VUB_OUT/edu-view.txt"
  check "view: INTx eventfd maskable" grep -Eq 'INTx +count 1, flags EVENTFD\|MASKABLE' "$VUB_OUT/edu-view.txt"
  "$VUB_PROBE" --json "$(sock edu)" >"$VUB_OUT/edu-view.json" 2>&1
  check "probe --json" grep -Eq '"vendor_id": *4660' "$VUB_OUT/edu-view.json"
  check "edu self-test through the bridge" "$VUB_PROBE" --selftest edu ${VUB_NOMMAP[@]+"${VUB_NOMMAP[@]}"} "$(sock edu)"
  check "bridge still running after its clients left" bridge_alive edu
  stop_bridge edu
  check "bridge exits 0 on SIGTERM" test $? -eq 0
else
  fail "bridge serves $VUB_EDU"
fi

# On the iommufd kernel: the same IOAS through edu's group file
# (--iommu iommufd-group), where each session gets a device file of its own
# again, so BAR0 is mmapped as with type1, and DMA is still by file.
if [ "$VUB_IOMMU" = iommufd ]; then
  if start_bridge edu-group "$VUB_EDU" --iommu iommufd-group; then
    check "the bridge serves through the group file with DMA by file, mmap offered" \
      bash -c "grep 'IOMMU iommufd-group (DMA by file)' '$VUB_OUT/bridge-edu-group.log' | grep -vq 'no mmap'"
    check "edu self-test with BAR0 mmapped (iommufd-group)" "$VUB_PROBE" --selftest edu "$(sock edu-group)"
    check "a second session (a device file of its own) too" "$VUB_PROBE" --selftest edu "$(sock edu-group)"
    stop_bridge edu-group
    check "bridge (iommufd-group) exits 0" test $? -eq 0
  else
    fail "bridge --iommu iommufd-group serves $VUB_EDU"
  fi
fi

if start_bridge edu-nommap "$VUB_EDU" --no-mmap; then
  check "edu self-test with --no-mmap (every access trapped)" \
    "$VUB_PROBE" --selftest edu --expect-no-mmap "$(sock edu-nommap)"
  stop_bridge edu-nommap
  check "bridge --no-mmap exits 0" test $? -eq 0
else
  fail "bridge --no-mmap serves $VUB_EDU"
fi
finish
