#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# VMM scenario 3: the inner guest reboots (QEMU resets the machine: the
# client sends DEVICE_RESET and sets the devices up again) and both devices
# work in the second boot as in the first. For running by hand: in CI
# this guest is the second QEMU of kill.sh (e2e_vmm_kill), with the same checks.
. "$VUB_SRC/tests/e2e/lib.sh"
. "$VUB_SRC/tests/e2e/vmm/lib-vmm.sh"
require "$VUB_BRIDGE"
vmm_prepare
start_bridge nvme "$VUB_NVME" --log-level=debug || { fail "the nvme bridge starts"; finish; }
start_bridge edu "$VUB_EDU" --log-level=debug || { fail "the edu bridge starts"; finish; }
vmm_start reboot reboot "$(sock nvme)" "$(sock edu)"
vmm_two_boots reboot
check "the nvme bridge is still serving" bridge_alive nvme
check "the edu bridge is still serving" bridge_alive edu
stop_bridge nvme
check "the nvme bridge exits 0 on SIGTERM" test $? -eq 0
stop_bridge edu
check "the edu bridge exits 0 on SIGTERM" test $? -eq 0
vmm_conversation reboot
vmm_bridge_summary nvme
vmm_bridge_summary edu
finish
