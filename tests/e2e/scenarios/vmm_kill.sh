#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# QEMU's vfio-user-pci client on the bridge: the scenario lives in
# tests/e2e/vmm/kill.sh (see docs/vmm.md); this file registers it as the ctest
# test e2e_vmm_kill. Its second QEMU boots the guest of tests/e2e/vmm/reboot.sh
# (which has no test of its own any more: one testbed boot and one inner
# QEMU fewer in CI).
# e2e-cost: 330
# e2e-timeout: 1200
exec bash "$VUB_SRC/tests/e2e/vmm/kill.sh"
