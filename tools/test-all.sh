#!/usr/bin/env bash
# The project's one test command (README, .ci/run): installs what is missing,
# builds twice (warnings as errors; ASan+UBSan), runs the unit tests in both
# builds, then the end-to-end tests against real kernel VFIO devices in a QEMU
# guest (tests/e2e/README.md), including QEMU 11's own vfio-user-pci client on
# the bridge (tests/e2e/vmm/, docs/vmm.md; its QEMU is provisioned once into
# /var/cache/vfio-user-bridge). Exits non-zero on the first failing stage.
#
#   tools/test-all.sh            everything
#   VUB_E2E=0 tools/test-all.sh  unit tests only (a quick local loop)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
jobs=$(nproc)
t0=$(date +%s)
stage() { printf '\n==== %s (%ds)\n' "$*" $(( $(date +%s) - t0 )); }

stage "dependencies"
tools/deps.sh

stage "build (warnings are errors)"
cmake -S . -B build -DVUB_WERROR=ON >/dev/null
cmake --build build -j"$jobs"

stage "build (AddressSanitizer + UndefinedBehaviorSanitizer)"
cmake -S . -B build-asan -DVUB_SANITIZE=ON -DVUB_WERROR=ON >/dev/null
cmake --build build-asan -j"$jobs"

stage "unit tests"
ctest --test-dir build -L unit --output-on-failure -j"$jobs"

stage "unit tests under the sanitizers"
ctest --test-dir build-asan -L unit --output-on-failure -j"$jobs"

if [ "${VUB_E2E:-1}" != 0 ]; then
  stage "QEMU 11 with the vfio-user-pci client (cached trixie root) and the VMM tests' inner guest"
  tools/provision-qemu-vfio-user.sh

  stage "end-to-end tests (QEMU guest, kernel VFIO)"
  ctest --test-dir build -L e2e --output-on-failure
fi
stage "all tests passed"
