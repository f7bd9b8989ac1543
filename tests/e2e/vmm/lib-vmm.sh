# SPDX-License-Identifier: MIT
# lib-vmm.sh - helpers for the VMM scenarios: QEMU's own vfio-user client
# (vfio-user-pci, QEMU 11 from the trixie root that
# tools/provision-qemu-vfio-user.sh keeps) boots an INNER Linux guest on the
# devices the bridge serves. Sourced by the scenario scripts in this directory
# after tests/e2e/lib.sh; they run inside the testbed guest (see
# tests/e2e/README.md and docs/vmm.md).
#
#   vmm_prepare                   QEMU root, inner kernel+initramfs, accel
#   vmm_start NAME MODE SOCK...   start QEMU (background) on the bridge sockets;
#                                 console in $VUB_OUT/vmm-NAME.console
#   vmm_wait NAME [SECONDS]       wait for it to exit (kill it at the timeout)
#   vmm_wait_line NAME REGEX SEC  wait for a console line
#   vmm_kill NAME                 SIGKILL it
#   vmm_result NAME CHECK         "ok"/"FAIL" from its VMM-RESULT CHECK line
#   vmm_two_boots NAME [WHO]      vmm_wait and the checks of a `reboot`-mode guest
#   vmm_tell NAME WORD            a line on its control port (viommu modes:
#                                 ends the inner guest's checkpoint idle)
#
# Settings (the testbed gives scenarios a clean environment, so they are also
# read from BUILD/tests/e2e/vmm.conf, lines KEY=VALUE, when it exists):
#   VUB_VMM_ACCEL        auto (default: KVM in the testbed guest when its
#                        emulated CPU offers SVM and /dev/kvm appears, behind
#                        a 150 s probe, else TCG), tcg or kvm
#   VUB_VMM_TIMEOUT      seconds one inner QEMU may run (default by accel)
#   VUB_VMM_MSG_TIMEOUT  QEMU's x-msg-timeout in ms (default 30000)
#   VUB_VMM_GUEST_CACHE  the host-built inner guest
#   VUB_VMM_KARGS        more inner kernel options, e.g. "vmm.dmesg=1
#                        initcall_debug log_buf_len=4M" (inner-init.sh: the
#                        kernel's log on the nvme image at 14 MiB)
if [ -f "$VUB_BUILD/tests/e2e/vmm.conf" ]; then
  while IFS='=' read -r _k _v; do
    case "$_k" in
      VUB_VMM_ACCEL|VUB_VMM_TIMEOUT|VUB_VMM_MSG_TIMEOUT|VUB_VMM_GUEST_CACHE|VUB_VMM_KARGS)
        [ -n "${!_k:-}" ] || printf -v "$_k" '%s' "$_v" ;;
    esac
  done <"$VUB_BUILD/tests/e2e/vmm.conf"
fi

VMM_DIR=$VUB_SRC/tests/e2e/vmm
VMM_PROV=$VUB_SRC/tools/provision-qemu-vfio-user.sh
VMM_CACHE=${VUB_VMM_GUEST_CACHE:-/var/cache/vfio-user-bridge/inner-guest}
VMM_MEM=128M
VMM_MSG_TIMEOUT=${VUB_VMM_MSG_TIMEOUT:-30000}
declare -A VMM_PID=()
VMM_EXTRA=()   # more QEMU arguments for the next vmm_cmd (a directly assigned function)
VMM_RUN=r$$-$(date +%s)
VMM_CTL=/run/vmm-ctl-$$

VMM_START=$(date +%s.%N)
vmm_log() { echo "vmm [$(vmm_since "$VMM_START")s]: $*"; }
vmm_now() { date +%s.%N; }
vmm_since() { awk -v a="$1" -v b="$(vmm_now)" 'BEGIN { printf "%.1f", b - a }'; }

# auto by default: KVM inside the testbed guest (never the build host's
# /dev/kvm, which hangs here) when it is there, TCG otherwise. The testbed
# guest's TCG CPU emulates AMD SVM, so the guest kernel's kvm_amd runs and the
# inner guest runs at the outer TCG's speed (measured: inner /init at 10-25 s instead of ~50 s; all
# four scenarios 4.3 min instead of 12). "auto" falls back to TCG when
# anything is missing, and a KVM run that does not reach the inner /init in
# 150 s is retried once with TCG (vmm_start).
vmm_pick_accel() {
  VMM_ACCEL=${VUB_VMM_ACCEL:-auto}
  case "$VMM_ACCEL" in
    auto|kvm)
      # kvm_amd on the testbed guest's emulated SVM (never the build host's KVM)
      if [ ! -c /dev/kvm ] && grep -qw svm /proc/cpuinfo; then
        modprobe kvm_amd >/dev/null 2>&1 || true
      fi
      if [ "$VMM_ACCEL" = auto ]; then
        VMM_ACCEL=tcg
        [ "${VUB_IN_GUEST:-0}" = 1 ] && [ -c /dev/kvm ] && VMM_ACCEL=kvm
      fi ;;
    tcg) ;;
    *) fail "VUB_VMM_ACCEL=$VMM_ACCEL: want tcg, auto or kvm"; finish ;;
  esac
  if [ "$VMM_ACCEL" = kvm ]; then
    VMM_TIMEOUT=${VUB_VMM_TIMEOUT:-240}
  else
    VMM_TIMEOUT=${VUB_VMM_TIMEOUT:-400}
  fi
}

# The inner guest: the copy the host built into the cache when its inputs are
# unchanged, else a fresh build in /tmp (slower under TCG, same result).
vmm_guest() {
  local t0
  t0=$(vmm_now)
  if "$VMM_DIR/build-inner-guest.sh" --check "$VMM_CACHE" 2>/dev/null; then
    VMM_GUEST=$VMM_CACHE
  else
    VMM_GUEST=/tmp/vmm-inner-guest
    vmm_log "no current inner guest in $VMM_CACHE; building one in $VMM_GUEST"
    "$VMM_DIR/build-inner-guest.sh" "$VMM_GUEST" || return 1
  fi
  vmm_log "inner guest: $VMM_GUEST (kernel $(cat "$VMM_GUEST/kver"), $(vmm_since "$t0") s)"
}

vmm_prepare() {
  # The stamp only: running this QEMU to ask it costs ~15 s in the test guest
  # (its 31 MB binary and 50 libraries come over 9p and are relocated under
  # TCG); a broken root shows at the first real start anyway.
  if ! "$VMM_PROV" --check-stamp; then
    fail "QEMU with vfio-user-pci is not provisioned: run tools/provision-qemu-vfio-user.sh on the host first"
    finish
  fi
  vmm_guest || { fail "could not build the inner guest"; finish; }
  vmm_pick_accel
  vmm_log "QEMU $("$VMM_PROV" --version), accel $VMM_ACCEL, timeout ${VMM_TIMEOUT}s"
}

# The inner kernel's command line. Every exit of the inner guest is very
# expensive under KVM in the TCG testbed guest (a PCI config read through
# port I/O or ECAM ~0.3 ms), so the boot skips the PCI scans that find
# nothing on QEMU's q35: pci=noearly the early searches for an AMD GART/AGP
# bridge (all 256 buses through port I/O: the kernel sees an AMD CPU; 6.4 s
# of a 16.6 s boot), lastbus=0 the search for peer root buses on buses
# 1-255 (2.5 s). Measured with initcall_debug (vmm.dmesg=1, docs/vmm.md):
# /init at 26.4 s of the inner guest's clock before, 10.4-12.5 s after, in
# the same testbed guest.
VMM_APPEND="console=ttyS0 quiet panic=-1 cryptomgr.notests no_timer_check tsc=reliable audit=0 random.trust_cpu=on"
# The PCI scans skipped (a scenario that needs them sets this empty).
VMM_PCI_SKIP="pci=noearly,lastbus=0"

# vmm_cmd NAME MODE SOCK...: the QEMU command line (array VMM_CMD).
vmm_cmd() {
  local name=$1 mode=$2 s; shift 2
  local reboot=-no-reboot smp=1 iommu=() kargs= ctl=()
  [ "$mode" = reboot ] && reboot=
  # The checkpoint modes get a control port (inner-init.sh): ttyS1 on two
  # FIFOs in the test guest's /run (vmm_tell writes NAME.in).
  case "$mode" in
    viommu|viommu_edu)
      mkdir -p "$VMM_CTL"
      rm -f "$VMM_CTL/$name.in" "$VMM_CTL/$name.out"
      mkfifo "$VMM_CTL/$name.in" "$VMM_CTL/$name.out"
      ctl=(-serial "pipe:$VMM_CTL/$name") ;;
  esac
  # A guest IOMMU (before the vfio-user-pci devices), strict: every unmap
  # reaches the bridge at once; 2 vCPUs for the nvme (one I/O queue each).
  case "$mode" in
    viommu) reboot= smp=2 ;;&
    side|viommu_side) smp=2 ;;&
    viommu*) iommu=(-device intel-iommu,caching-mode=on) kargs="intel_iommu=on iommu.strict=1" ;;&
    # a function passed directly under the guest IOMMU: QEMU refuses an
    # address width above the host IOMMU's (the testbed's is 39 bits)
    viommu_side) iommu=(-device intel-iommu,caching-mode=on,aw-bits=39) ;;
  esac
  VMM_CMD=("$VMM_PROV" --exec
    -machine "q35,accel=$VMM_ACCEL,memory-backend=mem"
    -object "memory-backend-memfd,id=mem,size=$VMM_MEM,share=on"
    -m "$VMM_MEM" -smp $smp -nodefaults -no-user-config -display none $reboot "${iommu[@]}"
    -kernel "$VMM_GUEST/kernel" -initrd "$VMM_GUEST/initramfs.cpio"
    -append "$VMM_APPEND $VMM_PCI_SKIP $kargs vmm.mode=$mode vmm.run=$VMM_RUN-$name vmm.serial=${VUB_NVME_SERIAL:-} ${VUB_VMM_KARGS:-} ${VMM_KARGS:-}"
    -serial "file:$VUB_OUT/vmm-$VUB_SCENARIO-$name.console" "${ctl[@]}"
    -trace 'vfio_user_*' -D "$(vmm_trace_live "$name")")
  # x-msg-timeout: QEMU waits 5 s by default for a reply; the bridge and this
  # QEMU share one emulated CPU here, and pinning the guest's RAM for a
  # DMA_MAP alone can take longer (QEMU then prints "vfio_wait_reqs - timed
  # out" and, when the reply comes, "unexpected reply").
  for s in "$@"; do
    VMM_CMD+=(-device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"type\":\"unix\",\"path\":\"$s\"},\"x-msg-timeout\":$VMM_MSG_TIMEOUT}")
  done
  # more devices (tools/bench/vm-side.sh: a function passed directly)
  VMM_CMD+=("${VMM_EXTRA[@]}")
}

# QEMU's trace goes to the guest's tmpfs while QEMU runs, with a symlink
# at its place in $VUB_OUT, and is copied there when QEMU is gone (vmm_wait,
# vmm_kill): QEMU flushes its log after every event, and on the 9p export
# each flush is a round trip to the testbed's QEMU made in the inner VMM's
# vCPU thread with its lock held, several per vfio-user message - which made
# every guest-IOMMU mapping several times slower than the bridge's work on it.
vmm_trace_live() { echo "/tmp/vmm-$VUB_SCENARIO-$1.trace"; }
vmm_trace_keep() {
  local t=$VUB_OUT/vmm-$VUB_SCENARIO-$1.trace
  [ -L "$t" ] || return 0
  rm -f "$t"
  cp "$(vmm_trace_live "$1")" "$t" 2>/dev/null || :
}

vmm_start_once() {
  local name=$1; shift
  unset "VMM_STALLED[$name]" "VMM_ACT_LAST[$name]" "VMM_ACT_SINCE[$name]"
  vmm_cmd "$name" "$@"
  rm -f "$VUB_OUT/vmm-$VUB_SCENARIO-$name.trace" "$(vmm_trace_live "$name")"
  ln -s "$(vmm_trace_live "$name")" "$VUB_OUT/vmm-$VUB_SCENARIO-$name.trace"
  : >"$VUB_OUT/vmm-$VUB_SCENARIO-$name.console"
  echo "${VMM_CMD[*]}" >"$VUB_OUT/vmm-$VUB_SCENARIO-$name.cmdline"
  "${VMM_CMD[@]}" </dev/null >"$VUB_OUT/vmm-$VUB_SCENARIO-$name.qemu.log" 2>&1 &
  VMM_PID[$name]=$!
  VMM_T0=$(vmm_now)
}

# vmm_start NAME MODE SOCK...
vmm_start() {
  local name=$1
  vmm_start_once "$@"
  vmm_log "$name: QEMU pid ${VMM_PID[$name]} started (mode $2, accel $VMM_ACCEL)"
  if [ "$VMM_ACCEL" = kvm ] && [ "${VUB_VMM_ACCEL:-auto}" = auto ]; then
    # The short probe: KVM in the testbed guest must bring the inner guest to
    # /init quickly, or it is not used.
    if ! vmm_wait_line "$name" '^VMM: init at' 150; then
      vmm_log "$name: no inner /init under KVM in 150 s; retrying with TCG"
      vmm_kill "$name"
      VMM_ACCEL=tcg VMM_TIMEOUT=${VUB_VMM_TIMEOUT:-400}
      vmm_start_once "$@"
    fi
  fi
}

# vmm_wait_line NAME REGEX SECONDS: 0 once the console has a matching line;
# 1 at the timeout or when QEMU exited without it.
# An inner guest that writes nothing on its console and sends nothing over
# vfio-user for a long time has hung: seen twice under KVM inside the TCG
# testbed guest (once in the firmware after a reboot, once in the middle of
# O_DIRECT reads), with the bridge idle and every message QEMU had sent
# answered. The waits below then give up at once instead of at their
# timeouts. The longest silence a scenario has on purpose is a 40 s held
# reply (faults B); a checkpoint idles until the scenario's word (vmm_tell).
declare -A VMM_ACT_LAST=() VMM_ACT_SINCE=() VMM_STALLED=()
vmm_stall_limit() { [ "$VMM_ACCEL" = kvm ] && echo "${VUB_VMM_STALL:-150}" || echo "${VUB_VMM_STALL:-300}"; }
# vmm_stalled NAME: called every 10 s of a wait; 0 (and logged once) when
# the console and the trace have not grown for the stall limit.
vmm_stalled() {
  local name=$1 now
  [ -n "${VMM_STALLED[$name]:-}" ] && return 0
  now=$(cat "$VUB_OUT/vmm-$VUB_SCENARIO-$name.console" "$VUB_OUT/vmm-$VUB_SCENARIO-$name.trace" 2>/dev/null | wc -c)
  if [ "$now" != "${VMM_ACT_LAST[$name]:-}" ]; then
    VMM_ACT_LAST[$name]=$now VMM_ACT_SINCE[$name]=0
    return 1
  fi
  VMM_ACT_SINCE[$name]=$(( ${VMM_ACT_SINCE[$name]:-0} + 10 ))
  [ "${VMM_ACT_SINCE[$name]}" -ge "$(vmm_stall_limit)" ] || return 1
  VMM_STALLED[$name]=1
  vmm_log "$name: the inner guest stalled: no console output and no vfio-user message for ${VMM_ACT_SINCE[$name]} s"
  return 0
}

vmm_wait_line() {
  local name=$1 re=$2 secs=$3 i
  # (1 s polls: every fork costs CPU the inner guest and the bridge need)
  for i in $(seq "$secs"); do
    tr -d '\r' <"$VUB_OUT/vmm-$VUB_SCENARIO-$name.console" | grep -qE "$re" && return 0
    kill -0 "${VMM_PID[$name]}" 2>/dev/null || break
    [ $((i % 10)) -eq 0 ] && vmm_stalled "$name" && return 1
    nap 1
  done
  tr -d '\r' <"$VUB_OUT/vmm-$VUB_SCENARIO-$name.console" | grep -qE "$re"
}

# vmm_wait NAME [SECONDS]: QEMU's exit status (124 if it had to be killed:
# at the timeout, or at once when the inner guest stalled).
vmm_wait() {
  local name=$1 secs=${2:-$VMM_TIMEOUT} pid=${VMM_PID[$1]} i rc
  for i in $(seq "$secs"); do
    kill -0 "$pid" 2>/dev/null || break
    { [ -n "${VMM_STALLED[$name]:-}" ] || { [ $((i % 10)) -eq 0 ] && vmm_stalled "$name"; }; } && break
    nap 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    vmm_log "$name: still running after ${i}s of ${secs}s; killing it"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=124
  else
    wait "$pid"; rc=$?
  fi
  unset "VMM_PID[$name]"
  vmm_trace_keep "$name"
  vmm_log "$name: QEMU exited $rc after $(vmm_since "$VMM_T0") s"
  vmm_show "$name"
  return $rc
}

vmm_kill() {
  local pid=${VMM_PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  unset "VMM_PID[$1]"
  vmm_trace_keep "$1"
}

# The inner console and QEMU's own messages, indented.
vmm_show() {
  echo "  --- inner console ($1) ---"
  tr -d '\r' <"$VUB_OUT/vmm-$VUB_SCENARIO-$1.console" | sed 's/^/  | /'
  if [ -s "$VUB_OUT/vmm-$VUB_SCENARIO-$1.qemu.log" ]; then
    echo "  --- QEMU stderr ($1) ---"
    sed 's/^/  | /' "$VUB_OUT/vmm-$VUB_SCENARIO-$1.qemu.log"
  fi
}

# vmm_two_boots NAME [WHO]: wait for the guest NAME started in mode
# `reboot` and check what its two boots must show: QEMU (WHO, for the
# messages) exits 0 after the second boot powered off, the inner guest
# reached /init twice, and its nvme I/O and edu DMA passed in each boot.
vmm_two_boots() {
  local name=$1 who=${2:-QEMU} rc=0 r
  vmm_wait "$name" || rc=$?
  check "$who exited 0 after the second boot powered off" test "$rc" -eq 0
  check "the inner guest of $who booted twice" \
    test "$(tr -d '\r' <"$VUB_OUT/vmm-$VUB_SCENARIO-$name.console" | grep -c '^VMM: init at')" -eq 2
  for r in nvme_io edu reboot_nvme_io reboot_edu; do vmm_result "$name" "$r"; done
}

# vmm_result NAME CHECK: record one check from the inner guest's result line.
vmm_result() {
  local line
  line=$(tr -d '\r' <"$VUB_OUT/vmm-$VUB_SCENARIO-$1.console" | grep -E "^VMM-RESULT $2 " | tail -n 1)
  case "$line" in
    "VMM-RESULT $2 PASS"*) pass "inner guest: $2 (${line#VMM-RESULT $2 PASS})" ;;
    "") fail "inner guest: no result for $2" ;;
    *) fail "inner guest: $2: ${line#VMM-RESULT $2 FAIL}" ;;
  esac
}

# vmm_tell NAME WORD: one line on QEMU NAME's control port. Opened
# read-write, so it neither blocks nor fails when QEMU is gone (the line
# then stays in the FIFO).
vmm_tell() {
  [ -p "$VMM_CTL/$1.in" ] || return 1
  printf '%s\n' "$2" 1<>"$VMM_CTL/$1.in"
}

# vmm_conversation NAME: the vfio-user messages QEMU exchanged, from its
# trace (vfio_user_* events): replies received per command, messages sent.
vmm_conversation() {
  local t=$VUB_OUT/vmm-$VUB_SCENARIO-$1.trace
  [ -f "$t" ] || return 0
  echo "  --- vfio-user conversation of QEMU $1 (trace $t) ---"
  # (mawk: no strtonum or and())
  awk '
    function hex(s,   v, i, d) {
      sub(/^0x/, "", s); v = 0
      for (i = 1; i <= length(s); i++) {
        d = index("0123456789abcdef", tolower(substr(s, i, 1))) - 1
        v = v * 16 + d
      }
      return v
    }
    BEGIN { split("VERSION DMA_MAP DMA_UNMAP DEVICE_GET_INFO GET_REGION_INFO GET_REGION_IO_FDS GET_IRQ_INFO SET_IRQS REGION_READ REGION_WRITE DMA_READ DMA_WRITE DEVICE_RESET 14 REGION_WRITE_MULTI DEVICE_FEATURE", n, " ") }
    /vfio_user_send_write/ { sent++ }
    /vfio_user_recv_hdr/ {
      for (i = 1; i < NF; i++) {
        if ($i == "cmd") c = hex($(i + 1))
        if ($i == "flags") f = hex($(i + 1))
      }
      name = (c in n) ? n[c] : "cmd" c
      replies[name]++; total++
      if (int(f / 32) % 2) errs[name]++     # header flag bit 5: error reply
    }
    END {
      printf "  messages sent %d, replies received %d\n", sent, total
      for (k in replies) printf "    %-18s %5d replies%s\n", k, replies[k], (k in errs) ? sprintf(", %d errors", errs[k]) : ""
    }' "$t" | sort
}

# vmm_bridge_summary NAME: the bridge's own account of the QEMU sessions.
vmm_bridge_summary() {
  echo "  --- bridge $1: $(wc -l <"$VUB_OUT/bridge-$1.log") log lines ($VUB_OUT/bridge-$1.log) ---"
  show_log "$1" | grep -vE 'debug: (DMA_MAP|SET_IRQS|region [0-9])' | tail -n 25
}

vmm_cleanup() {
  local n
  for n in "${!VMM_PID[@]}"; do vmm_kill "$n"; done
  rm -rf "$VMM_CTL"
}
# lib.sh's trap kills the bridges; QEMU first.
trap 'vmm_cleanup; vub_cleanup' EXIT
