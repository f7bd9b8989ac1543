#!/usr/bin/env bash
# Every client personality (tests/clients, docs/clients.md: QEMU 11,
# cloud-hypervisor's vfio_user::Client, SPDK's initiator, a libvfio-user
# sample-style client, a minimal spec-only client) through the whole life of
# the real edu and the real nvme behind the bridge: negotiate, region and
# IRQ info, mmap through the handed fds, registers, DMA (edu: its DMA engine
# RAM->device->RAM), interrupts where the client uses them, reset as the
# client does it, DMA_UNMAP, disconnect, and once more after a reconnect.
# One bridge per device serves all five clients one after the other.
# A known limit (docs/clients.md) is checked to reproduce exactly, like the
# unit tests in tests/clients/CMakeLists.txt do.
# e2e-group: host
# e2e-cost: 30
. "$VUB_SRC/tests/e2e/lib.sh"
declare -A KNOWN=()
VUB_PERSONALITY=${VUB_PERSONALITY:-$VUB_BUILD/tests/clients/vu-personality}
require "$VUB_BRIDGE" "$VUB_PERSONALITY"

for dev in edu nvme; do
  if [ "$dev" = edu ]; then addr=$VUB_EDU; else addr=$VUB_NVME; fi
  if ! start_bridge "clients-$dev" "$addr"; then
    fail "bridge serves $addr ($dev)"
    continue
  fi
  pass "bridge serves $addr ($dev)"
  for client in qemu ch spdk lvu min; do
    log=$VUB_OUT/client-$client-$dev.txt
    known=${KNOWN[$client-$dev]:-}
    args=(--client "$client" --socket "$(sock "clients-$dev")" --device "$dev" --reconnect 1)
    [ -n "$known" ] && args+=(--expect-fail "$known")
    "$VUB_PERSONALITY" "${args[@]}" >"$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && [ -n "$known" ]; then
      pass "$client personality on the real $dev: known limit reproduced ($known)"
    elif [ $rc -eq 0 ]; then
      pass "$client personality on the real $dev (2 connections)"
    else
      fail "$client personality on the real $dev (exit $rc)"
      grep -E '^(FAIL|note|#)' "$log" | sed 's/^/  | /'
    fi
    check "bridge still running after $client on $dev" bridge_alive "clients-$dev"
  done
  stop_bridge "clients-$dev"
  check "bridge on $dev exits 0 on SIGTERM" test $? -eq 0
  if [ "$VUB_FAILS" -ne 0 ]; then
    echo "bridge log ($dev), last 40 lines:"
    tail -n 40 "$VUB_OUT/bridge-clients-$dev.log" | sed 's/^/  | /'
  fi
done
finish
