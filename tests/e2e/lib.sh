# SPDX-License-Identifier: MIT
# lib.sh - helpers for scenario scripts (sourced by bash). See README.md.
set -u

VUB_FAILS=0
VUB_CHECKS=0
: "${VUB_BUILD:?}" "${VUB_OUT:?}"
# Several scenarios may share one boot (an e2e-group, CMakeLists.txt): then
# each keeps its files (bridge logs, traces) in a directory of its own.
if [ -n "${VUB_SCENARIO:-}" ] && [ "${VUB_OUT##*/}" != "$VUB_SCENARIO" ]; then
  VUB_OUT=$VUB_OUT/$VUB_SCENARIO
  mkdir -p "$VUB_OUT"
fi

# Where the binaries are. A path that does not exist is left as is; the check
# that runs it then fails loudly.
VUB_BRIDGE=${VUB_BRIDGE:-$VUB_BUILD/bridge/vfio-user-bridge}
VUB_PROBE=${VUB_PROBE:-$VUB_BUILD/tools/probe/vfio-user-probe}
VUB_PROGS=${VUB_PROGS:-$VUB_BUILD/tests/e2e}
# Sanitizer builds: fail on the first report, leaks included.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# check "what" cmd args...: run cmd, print one "ok"/"FAIL" line.
check() {
  local what=$1; shift
  VUB_CHECKS=$((VUB_CHECKS + 1))
  if "$@"; then
    echo "ok   - $what"
  else
    echo "FAIL - $what (exit $?)"
    VUB_FAILS=$((VUB_FAILS + 1))
  fi
}
# check_fails "what" cmd args...: the command must exit non-zero.
check_fails() {
  local what=$1; shift
  VUB_CHECKS=$((VUB_CHECKS + 1))
  if "$@"; then
    echo "FAIL - $what (it succeeded)"
    VUB_FAILS=$((VUB_FAILS + 1))
  else
    echo "ok   - $what"
  fi
}
fail() { VUB_CHECKS=$((VUB_CHECKS + 1)); echo "FAIL - $*"; VUB_FAILS=$((VUB_FAILS + 1)); }
pass() { VUB_CHECKS=$((VUB_CHECKS + 1)); echo "ok   - $*"; }

# require FILE...: each must be an executable, or the scenario fails now.
require() {
  local f
  for f in "$@"; do
    if [ ! -x "$f" ]; then
      fail "missing executable $f (not built yet?)"
      finish
    fi
  done
}

declare -A VUB_BRIDGE_PID=()

# start_bridge NAME ADDR [bridge args...]: start the bridge on ADDR serving
# /tmp/NAME.sock with --iommu $VUB_IOMMU (testbed.sh --iommu; later args
# win), log in $VUB_OUT/bridge-NAME.log; wait (30 s) for the socket.
# Returns non-zero if it does not come up.
VUB_IOMMU=${VUB_IOMMU:-type1}
# With iommufd a device is one open file (its VFIO cdev), so the bridge
# offers no region for mmap: the probe's self-tests then run with
# "${VUB_NOMMAP[@]}" (--expect-no-mmap), and a scenario asks mmap_offered
# before checking what an mmap would show.
if [ "$VUB_IOMMU" = iommufd ]; then VUB_NOMMAP=(--expect-no-mmap); else VUB_NOMMAP=(); fi
mmap_offered() { [ "$VUB_IOMMU" != iommufd ]; }
# check_iommu_log NAME: the bridge's start-up line names the back end asked for.
check_iommu_log() {
  check "bridge $1 serves with IOMMU $VUB_IOMMU" grep -q "IOMMU $VUB_IOMMU" "$VUB_OUT/bridge-$1.log"
}
start_bridge() {
  local name=$1 addr=$2; shift 2
  local sock=/tmp/$name.sock i
  rm -f "$sock"
  "$VUB_BRIDGE" --device "$addr" --socket "$sock" --iommu "$VUB_IOMMU" "$@" \
    >"$VUB_OUT/bridge-$name.log" 2>&1 &
  VUB_BRIDGE_PID[$name]=$!
  for i in $(seq 300); do
    [ -S "$sock" ] && return 0
    kill -0 "${VUB_BRIDGE_PID[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "bridge $name did not come up; its log:"
  sed 's/^/  | /' "$VUB_OUT/bridge-$name.log"
  return 1
}
sock() { echo "/tmp/$1.sock"; }
bridge_pid() { echo "${VUB_BRIDGE_PID[$1]}"; }
bridge_alive() { kill -0 "${VUB_BRIDGE_PID[$1]}" 2>/dev/null; }

# stop_bridge NAME: SIGTERM, wait up to 20 s; returns the bridge's exit status
# (143 / 137 when it had to be killed by signal).
stop_bridge() {
  local name=$1 pid=${VUB_BRIDGE_PID[$1]:-} i rc
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "bridge $name ignored SIGTERM for 20 s; killing it"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid"; rc=$?
  unset "VUB_BRIDGE_PID[$name]"
  return $rc
}
# show_log NAME: print a bridge's log, indented.
show_log() { sed 's/^/  | /' "$VUB_OUT/bridge-$1.log" 2>/dev/null; }

vub_cleanup() {
  local n
  for n in "${!VUB_BRIDGE_PID[@]}"; do
    kill -KILL "${VUB_BRIDGE_PID[$n]}" 2>/dev/null
    wait "${VUB_BRIDGE_PID[$n]}" 2>/dev/null
  done
  VUB_BRIDGE_PID=()
}
trap vub_cleanup EXIT

# phase WHAT: a line with the guest's uptime, so that a scenario's log shows
# where its time goes (no fork: every exec costs here, under TCG).
phase() {
  local up
  read -r up _ </proc/uptime
  echo "-- [${up}s] $*"
}

# nap SECONDS: sleep without a fork, for polling loops (a read with a
# timeout on a FIFO no one writes; sleep(1) is an exec, and every exec costs
# the CPU a busy guest needs).
VUB_NAP_FD=""
nap() {
  if [ -z "$VUB_NAP_FD" ]; then
    local f=/run/vub-nap.$BASHPID
    if mkfifo "$f" 2>/dev/null; then
      exec {VUB_NAP_FD}<>"$f"
      rm -f "$f"
    fi
  fi
  if [ -n "$VUB_NAP_FD" ]; then
    read -r -t "$1" -u "$VUB_NAP_FD" _ || true
  else
    sleep "$1"
  fi
}

# pci_driver ADDR: the name of the driver ADDR is bound to ("" for none).
pci_driver() {
  local l
  l=$(readlink "/sys/bus/pci/devices/$1/driver" 2>/dev/null) || return 0
  echo "${l##*/}"
}

# A real systemd-udevd for the udev scenarios (udev_export, udev_group).
# udevd_require: it and udevadm are installed, or the scenario fails now.
# udevd_start RULES: start it (log $VUB_OUT/udevd.log, names never
# resolved, debug) and check that it answers; at exit it is stopped, RULES
# removed, and edu and nvme are put back on vfio-pci for the next scenario
# (bridges still running are killed first). udevd_stop: stop it now and
# remove RULES. udev_settle: wait (60 s) for its queue to drain.
VUB_UDEVD="" VUB_UDEVD_PID="" VUB_UDEV_RULES=""
udevd_require() {
  local u
  # udevadm refuses trigger/settle/control inside a chroot unless told not to.
  export SYSTEMD_IGNORE_CHROOT=1
  for u in /lib/systemd/systemd-udevd /usr/lib/systemd/systemd-udevd; do
    [ -x "$u" ] && { VUB_UDEVD=$u; break; }
  done
  if [ -z "$VUB_UDEVD" ] || ! command -v udevadm >/dev/null; then
    fail "systemd-udevd/udevadm not installed (Debian package udev)"
    finish
  fi
}
udevd_stop() {
  if [ -n "$VUB_UDEVD_PID" ]; then
    kill -TERM "$VUB_UDEVD_PID" 2>/dev/null
    wait "$VUB_UDEVD_PID" 2>/dev/null
    VUB_UDEVD_PID=""
  fi
  [ -z "$VUB_UDEV_RULES" ] || rm -f "$VUB_UDEV_RULES"
}
vub_udev_restore() {
  local a d=/sys/bus/pci/devices
  vub_cleanup
  udevd_stop
  for a in "$VUB_EDU" "$VUB_NVME"; do
    if [ "$(pci_driver "$a")" != vfio-pci ]; then
      echo vfio-pci >"$d/$a/driver_override"
      [ -n "$(pci_driver "$a")" ] && echo "$a" >"$d/$a/driver/unbind"
      echo "$a" >/sys/bus/pci/drivers_probe
    fi
  done
}
udevd_start() {
  local i
  VUB_UDEV_RULES=$1
  [ -n "$VUB_UDEVD" ] || udevd_require
  trap vub_udev_restore EXIT
  "$VUB_UDEVD" --resolve-names=never --debug >"$VUB_OUT/udevd.log" 2>&1 &
  VUB_UDEVD_PID=$!
  for i in $(seq 100); do udevadm control --ping 2>/dev/null && break; sleep 0.1; done
  check "systemd-udevd runs" udevadm control --ping
}
udev_settle() { udevadm settle --timeout=60; }

# finish: stop leftovers, print the summary, exit 0 only if all checks passed
# (and at least one ran).
finish() {
  vub_cleanup
  echo "$((VUB_CHECKS - VUB_FAILS)) passed, $VUB_FAILS failed"
  [ "$VUB_FAILS" -eq 0 ] && [ "$VUB_CHECKS" -gt 0 ]
  exit $?
}
