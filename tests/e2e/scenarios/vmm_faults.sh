#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# QEMU's vfio-user-pci client against injected faults: the scenario lives in
# tests/e2e/vmm/faults.sh (see docs/testing-clients.md); this file registers
# it as the ctest test e2e_vmm_faults.
# e2e-cost: 180
exec bash "$VUB_SRC/tests/e2e/vmm/faults.sh"
