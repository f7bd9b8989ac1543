#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# VMM scenario 1: QEMU's vfio-user-pci client boots a Linux guest on the nvme
# the bridge serves; the guest's own nvme driver reads the testbed's pattern,
# writes and reads back with O_DIRECT, and its interrupt counts grow.
# e2e-iommufd: core
. "$VUB_SRC/tests/e2e/lib.sh"
. "$VUB_SRC/tests/e2e/vmm/lib-vmm.sh"
require "$VUB_BRIDGE"
vmm_prepare
start_bridge nvme "$VUB_NVME" --log-level=debug || { fail "the nvme bridge starts"; finish; }
vmm_start io io "$(sock nvme)"
vmm_wait io
check "QEMU exited 0 after the inner guest powered off" test $? -eq 0
vmm_result io nvme_io
check "the bridge is still serving" bridge_alive nvme
stop_bridge nvme
check "the bridge exits 0 on SIGTERM" test $? -eq 0
vmm_conversation io
vmm_bridge_summary nvme
finish
