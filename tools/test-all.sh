#!/usr/bin/env bash
# The project's one test command (README, .ci/run): installs what is missing,
# builds twice (warnings as errors; ASan+UBSan), runs the unit tests in both
# builds, then the end-to-end tests against real kernel VFIO devices in a QEMU
# guest (tests/e2e/README.md), including QEMU 11's own vfio-user-pci client on
# the bridge (tests/e2e/vmm/, docs/vmm.md; its QEMU is provisioned once into
# /var/cache/vfio-user-bridge), and the core scenarios on a kernel of the
# testbed's own with iommufd (built from Debian's linux-source once, cached
# there too: tools/provision-iommufd-kernel.sh). Between the two: every libFuzzer target for
# VUB_FUZZ_SECONDS (60) each in a clang build (tests/fuzz/README.md), and the
# Debian package built, checked by lintian and installed into a clean bookworm
# root (tools/test-package.sh; that root is cached there too). Exits non-zero
# on the first failing stage.
#
#   tools/test-all.sh            everything
#   VUB_E2E=0 tools/test-all.sh  unit tests only (a quick local loop)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
t0=$(date +%s)
stage() { printf '\n==== %s (%ds)\n' "$*" $(( $(date +%s) - t0 )); }

stage "dependencies"
tools/deps.sh

# The iommufd kernel (a first build is ~10 min of both cores) is made in the
# background of the builds, unit tests, fuzzing and the package stage, whose
# downloads and debootstrap leave the CPU idle much of the time; it runs under
# nice -n 10, so the foreground stages keep priority. Its output is shown
# at its stage below, where the run waits for it.
kernel_pid=
if [ "${VUB_E2E:-1}" != 0 ]; then
  kernel_log=$(mktemp /tmp/vub-kernel-provision.XXXXXX)
  # its own session, so that a failing stage stops the whole build with it
  setsid tools/provision-iommufd-kernel.sh >"$kernel_log" 2>&1 &
  kernel_pid=$!
  trap '[ -z "$kernel_pid" ] || kill -- -"$kernel_pid" 2>/dev/null || true' EXIT
fi

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
  fuzz_s=${VUB_FUZZ_SECONDS:-60}
  stage "fuzz targets, ${fuzz_s} s each (clang, libFuzzer + ASan + UBSan; fails only on a finding)"
  cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DVUB_FUZZ=ON -DVUB_WERROR=ON \
        -DVUB_FUZZ_SECONDS="$fuzz_s" >/dev/null
  # Every ctest entry labelled fuzz is a target of the same name (vub_fuzz_test).
  fuzz_targets=$(ctest --test-dir build-fuzz -N -L fuzz 2>/dev/null | sed -n 's/^ *Test *#[0-9]*: *//p')
  [ -n "$fuzz_targets" ] || { echo "no fuzz targets registered" >&2; exit 1; }
  # shellcheck disable=SC2086  # one word per target
  cmake --build build-fuzz -j"$jobs" --target $fuzz_targets
  # all at once: each runs for its seconds of wall time whatever the cores
  # (a target gets a share of them), so the stage takes one target's time
  n_fuzz=$(wc -w <<<"$fuzz_targets")
  ctest --test-dir build-fuzz -L fuzz --output-on-failure -j"$n_fuzz"

  stage "Debian package: build, lintian, install into a clean bookworm root"
  tools/test-package.sh

  stage "QEMU 11 with the vfio-user-pci client (cached trixie root) and the VMM tests' inner guest"
  tools/provision-qemu-vfio-user.sh

  stage "the testbed's kernel with iommufd and VFIO cdevs (cached; built once, started in the background at the top)"
  kernel_rc=0
  wait "$kernel_pid" || kernel_rc=$?
  kernel_pid=
  cat "$kernel_log"; rm -f "$kernel_log"
  [ "$kernel_rc" = 0 ] || { echo "provisioning the iommufd kernel failed (exit $kernel_rc)" >&2; exit 1; }

  # One testbed guest per core: each is one TCG vCPU, and the scenarios share
  # nothing on the host (tests/e2e/CMakeLists.txt); VUB_E2E_JOBS overrides.
  # A test that fails runs once more (both runs are in the output): the VMM
  # scenarios' inner guests run under KVM inside the TCG testbed guest, which
  # has hung now and then with the bridge idle (tests/e2e/vmm/lib-vmm.sh,
  # vmm_stalled); a failure that repeats fails the run.
  e2e_jobs=${VUB_E2E_JOBS:-$jobs}
  stage "end-to-end tests (QEMU guests, kernel VFIO; $e2e_jobs at a time)"
  ctest --test-dir build -L e2e --output-on-failure -j"$e2e_jobs" --repeat until-pass:2
fi
stage "all tests passed"
