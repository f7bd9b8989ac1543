#!/usr/bin/env bash
# The one command for the numbers in docs/performance.md:
#   tools/bench/run.sh [--build DIR] [--quick] [--native-only | --guest-only]
# Builds (warnings as errors), then runs vfio-user-bench
#  - natively against the simulated device (bridge --sim=edu; the message path
#    at native speed), and
#  - in the e2e testbed's QEMU guest against the real edu through kernel VFIO
#    (under TCG only the ratios mean something),
# and leaves Markdown + JSON in DIR/bench/. --quick: the smoke versions.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD build=$src/build quick=0 native=1 guest=1
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$(realpath -m "$2"); shift 2 ;;
    --quick) quick=1; shift ;;
    --native-only) guest=0; shift ;;
    --guest-only) native=0; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
jobs=$(nproc); [ "$jobs" -gt 2 ] || jobs=2
tools/deps.sh
cmake -S "$src" -B "$build" -DVUB_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs"
mkdir -p "$build/bench"
rc=0
if [ $native = 1 ]; then
  q=(); [ $quick = 1 ] && q=(--quick)
  echo "==== native, simulated device"
  "$build/tools/bench/vfio-user-bench" --sim "${q[@]}" --poll-us 50 \
    --json "$build/bench/native.json" --markdown "$build/bench/native.md" || rc=1
fi
if [ $guest = 1 ]; then
  if [ $quick = 1 ]; then
    script=$src/tests/e2e/scenarios/bench_smoke.sh name=bench_smoke res=bench-smoke
  else
    script=$src/tools/bench/guest-run.sh name=guest-run res=bench
  fi
  echo "==== QEMU guest, real edu through kernel VFIO"
  "$src/tests/e2e/testbed.sh" --build "$build" --src "$src" --timeout 900 "$script" || rc=1
  out=$build/tests/e2e/out/$name
  for ext in md json; do
    [ -f "$out/$res.$ext" ] && cp "$out/$res.$ext" "$build/bench/guest.$ext"
  done
fi
ls -l "$build/bench"
exit $rc
