#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# QEMU's vfio-user-pci client on the bridge: the scenario lives in
# tests/e2e/vmm/kill.sh (see docs/vmm.md); this file registers it as the ctest
# test e2e_vmm_kill.
# e2e-cost: 320
# e2e-timeout: 900
exec bash "$VUB_SRC/tests/e2e/vmm/kill.sh"
