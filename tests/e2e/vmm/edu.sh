#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# VMM scenario 2: the edu device served by the bridge is visible in the
# inner guest with its ids, and its BAR0 (mapped by the inner guest through
# sysfs; QEMU maps the bridge's region fd) answers: id, liveness, factorial.
. "$VUB_SRC/tests/e2e/lib.sh"
. "$VUB_SRC/tests/e2e/vmm/lib-vmm.sh"
require "$VUB_BRIDGE"
vmm_prepare
start_bridge edu "$VUB_EDU" --log-level=debug || { fail "the edu bridge starts"; finish; }
vmm_start edu edu "$(sock edu)"
vmm_wait edu
check "QEMU exited 0 after the inner guest powered off" test $? -eq 0
vmm_result edu edu
check "the bridge is still serving" bridge_alive edu
stop_bridge edu
check "the bridge exits 0 on SIGTERM" test $? -eq 0
vmm_conversation edu
vmm_bridge_summary edu
finish
