#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# QEMU's vfio-user-pci client on the bridge with a guest IOMMU: the scenario
# lives in tests/e2e/vmm/viommu.sh (see docs/vmm.md); this file registers it
# as the ctest test e2e_vmm_viommu. Three inner boots: on a loaded machine
# longer than the testbed's default.
# e2e-timeout: 2400
# e2e-cost: 250
exec bash "$VUB_SRC/tests/e2e/vmm/viommu.sh"
