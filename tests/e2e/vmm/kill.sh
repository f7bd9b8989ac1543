#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# VMM scenario 4: the VMM is SIGKILLed while its guest does nvme I/O; the
# bridge cleans up and serves a second QEMU on the same socket, whose guest
# does I/O again.
. "$VUB_SRC/tests/e2e/lib.sh"
. "$VUB_SRC/tests/e2e/vmm/lib-vmm.sh"
require "$VUB_BRIDGE"
vmm_prepare
start_bridge nvme "$VUB_NVME" --log-level=debug || { fail "the nvme bridge starts"; finish; }
vmm_start loop loop "$(sock nvme)"
if vmm_wait_line loop '^loop 16$' "$VMM_TIMEOUT"; then
  pass "the first guest is doing nvme I/O ($(tr -d '\r' <"$VUB_OUT/vmm-$VUB_SCENARIO-loop.console" | grep -c '^loop ') loop lines)"
else
  fail "the first guest never reached its I/O loop"
fi
vmm_kill loop
vmm_log "loop: QEMU SIGKILLed after $(vmm_since "$VMM_T0") s"
vmm_show loop
sleep 2
check "the bridge survived the VMM's death" bridge_alive nvme
vmm_start io io "$(sock nvme)"
vmm_wait io
check "the second QEMU exited 0 after its guest powered off" test $? -eq 0
vmm_result io nvme_io
check "the bridge is still serving" bridge_alive nvme
stop_bridge nvme
check "the bridge exits 0 on SIGTERM" test $? -eq 0
vmm_conversation loop
vmm_conversation io
vmm_bridge_summary nvme
finish
