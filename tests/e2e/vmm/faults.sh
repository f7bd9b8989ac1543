#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# VMM scenario 5: QEMU 11's vfio-user-pci against a device side that
# misbehaves on purpose (bridge --inject), each run traced (--trace) and the
# trace read back with vfio-user-probe --summarize (docs/testing-clients.md).
#
#   A  GET_REGION_INFO of BAR0 fails (EIO): QEMU gives up at realize.
#   B  the first DMA_MAP's reply is held for 40 s, longer than the
#      x-msg-timeout (30 s) the tests give QEMU: QEMU goes on without it.
#   C  the inner guest's boot: a config-space REGION_READ fails (EIO), and
#      a later one closes the connection (the session is quiesced as on a
#      real failure); then what QEMU does without its server.
#
# Each check names what QEMU did; docs/testing-clients.md records it.
. "$VUB_SRC/tests/e2e/lib.sh"
. "$VUB_SRC/tests/e2e/vmm/lib-vmm.sh"
require "$VUB_BRIDGE" "$VUB_PROBE"
vmm_prepare
# TCG for the inner guest whatever vmm_pick_accel found: no run here needs a
# full boot (C ends in the inner firmware), and a KVM that does not work in
# the testbed guest would only be noticed after lib-vmm's 150 s probe.
VMM_ACCEL=tcg
VMM_TIMEOUT=${VUB_VMM_TIMEOUT:-400}
# C closes the connection at the 28th config read, the inner kernel's early
# PCI scan (the firmware makes 24): keep that scan, which lib-vmm skips for
# speed elsewhere. Closed inside the firmware instead (the 22nd read, between
# SeaBIOS's read and write of the command register) QEMU 11.1.3 aborted
# (exit 134) in a CI run of 2026-12-02; without the early scan the 28th read
# comes minutes later under TCG and C timed out.
VMM_PCI_SKIP=

tr_file() { echo "$VUB_OUT/trace-$1.jsonl"; }
# Runs A and B end at QEMU's realize: start QEMU once, without lib-vmm's
# KVM probe (which would take the early exit for a KVM failure and retry).
start_once() {
  vmm_start_once "$@"
  vmm_log "$1: QEMU pid ${VMM_PID[$1]} started (mode $2, accel $VMM_ACCEL)"
}
console() { tr -d '\r' <"$VUB_OUT/vmm-$VUB_SCENARIO-$1.console"; }
qemu_err() { cat "$VUB_OUT/vmm-$VUB_SCENARIO-$1.qemu.log"; }
summary() {
  "$VUB_PROBE" --summarize "$(tr_file "$1")" >"$VUB_OUT/summary-$1.txt" 2>&1
  echo "  --- vfio-user-probe --summarize $(tr_file "$1") ---"
  sed 's/^/  | /' "$VUB_OUT/summary-$1.txt"
}
# trace_has NAME REGEX...: one trace line matches every regex.
trace_has() {
  local f; f=$(tr_file "$1"); shift
  local filter="cat"
  local re
  for re in "$@"; do filter="$filter | grep -E -- '$re'"; done
  [ -n "$(eval "$filter" <"$f" | head -n 1)" ]
}

# ---- A: GET_REGION_INFO of BAR0 fails --------------------------------------------------
rm -f "$(tr_file a)"
start_bridge fa "$VUB_EDU" --trace "$(tr_file a)" \
  --inject 'GET_REGION_INFO:region=0=errno=EIO' || { fail "bridge A starts"; finish; }
start_once a edu "$(sock fa)"
vmm_wait a 300; rc=$?
check "A: QEMU exits with an error (status $rc) when BAR0's GET_REGION_INFO fails" \
  test "$rc" -ne 0 -a "$rc" -ne 124
check_fails "A: the inner guest never started" grep -q '^VMM: init' "$VUB_OUT/vmm-$VUB_SCENARIO-a.console"
echo "  QEMU A said: $(qemu_err a | grep -v '^$' | head -n 3 | tr '\n' ' ')"
check "A: QEMU's error names the failed region info" \
  bash -c "grep -qiE 'region|BAR' '$VUB_OUT/vmm-$VUB_SCENARIO-a.qemu.log'"
check "A: the bridge survived" bridge_alive fa
stop_bridge fa
check "A: the trace has the injected EIO on region 0's GET_REGION_INFO" \
  trace_has a '"dir":"tx"' '"cmd":"DEVICE_GET_REGION_INFO"' '"errno":"EIO"' '"injected":"errno=EIO"'
summary a
check "A: the summary's first error is the injected one, with its request" \
  grep -qE '^first error: .*DEVICE_GET_REGION_INFO .*region=0 -> EIO: fault injected' "$VUB_OUT/summary-a.txt"

# ---- B: a DMA_MAP reply later than x-msg-timeout ---------------------------------------
# QEMU sends its DMA_MAPs without waiting and then waits for all of them
# (vfio_wait_reqs) at most x-msg-timeout (30 s here). The first one's reply
# is held 40 s (the bridge reads nothing else meanwhile).
rm -f "$(tr_file b)"
start_bridge fb "$VUB_EDU" --trace "$(tr_file b)" \
  --inject 'DMA_MAP@nth=1=delay=40000' || { fail "bridge B starts"; finish; }
start_once b edu "$(sock fb)"
went_on=no
for i in $(seq "$VMM_TIMEOUT"); do
  # QEMU's next command after the map, answered: it went on
  trace_has b '"dir":"tx"' '"cmd":"DEVICE_GET_INFO"' && { went_on=yes; break; }
  kill -0 "${VMM_PID[b]}" 2>/dev/null || break
  sleep 1
done
sleep 2
if kill -0 "${VMM_PID[b]}" 2>/dev/null; then
  vmm_log "b: QEMU is still running (the guest boots on); killing it"
  vmm_kill b
  qemu_b=running
else
  wait "${VMM_PID[b]}" 2>/dev/null; qemu_b="exited $?"
  unset "VMM_PID[b]"
fi
echo "  QEMU B (x-msg-timeout $VMM_MSG_TIMEOUT ms, $qemu_b) said: $(qemu_err b | grep -v '^$' | head -n 4 | tr '\n' ' ')"
check "B: QEMU's wait for its DMA_MAP replies timed out (vfio_wait_reqs - timed out)" \
  grep -q 'vfio_wait_reqs - timed out' "$VUB_OUT/vmm-$VUB_SCENARIO-b.qemu.log"
check "B: QEMU refused the late reply (unexpected reply)" \
  grep -q 'unexpected reply' "$VUB_OUT/vmm-$VUB_SCENARIO-b.qemu.log"
check "B: and went on: its DEVICE_GET_INFO after the late reply was answered" test "$went_on" = yes
check "B: QEMU was still running then" test "$qemu_b" = running
check "B: the trace has the DMA_MAP reply held 40000 ms, as injected" \
  trace_has b '"dir":"tx"' '"cmd":"DMA_MAP"' '"injected":"delay=40000"' '"delayed_ms":40000'
check "B: the bridge survived" bridge_alive fb
stop_bridge fb
summary b

# ---- C: one boot with a config read failing, then the connection closed ----------------
# The 20th config-space REGION_READ fails (in the inner firmware's PCI
# enumeration), the 28th ends the connection (the kernel's early PCI scan,
# seconds later, before the slow rest of the kernel boot), so the run needs
# no complete boot.
rm -f "$(tr_file c)"
start_bridge fc "$VUB_EDU" --trace "$(tr_file c)" \
  --inject 'REGION_READ:region=7@nth=20=errno=EIO' \
  --inject 'REGION_READ:region=7@nth=28=close' || { fail "bridge C starts"; finish; }
start_once c edu "$(sock fc)"
closed=no
for i in $(seq "$VMM_TIMEOUT"); do
  trace_has c '"dir":"end"' && { closed=yes; break; }
  kill -0 "${VMM_PID[c]}" 2>/dev/null || break
  sleep 1
done
vmm_log "c: the bridge ended the session: $closed"
# What QEMU does next: it may exit, or run on without the device; 30 s tell.
vmm_wait c 30; rc=$?
echo "  QEMU C exited $rc (124: still running after 30 s, killed); its stderr: $(qemu_err c | grep -v '^$' | head -n 8 | tr '\n' ' ')"
echo "  inner guest C: $(console c | grep -E '^VMM' | tr '\n' ' ')"
check "C: QEMU reports the failed config read (vfio_pci_read_config ... Input/output error)" \
  grep -qE 'vfio_pci_read_config.*Input/output error' "$VUB_OUT/vmm-$VUB_SCENARIO-c.qemu.log"
check "C: the trace has the injected EIO on a config read" \
  trace_has c '"dir":"tx"' '"cmd":"REGION_READ"' '"errno":"EIO"' '"injected":"errno=EIO"'
check "C: the trace has the injected close" \
  trace_has c '"dir":"done"' '"cmd":"REGION_READ"' '"injected":"close"'
check "C: the session ended because of it" \
  trace_has c '"dir":"end"' 'fault injected: close \(rule 1\)'
check "C: the bridge quiesced the device as for a client that left" \
  grep -qE 'disconnected \(fault injected: close \(rule 1\)\): .*released [0-9]+ DMA maps' \
  "$VUB_OUT/bridge-fc.log"
check "C: QEMU was not killed by a signal of its own (no crash)" test "$rc" -lt 128 -o "$rc" -eq 124
check "C: the bridge survived" bridge_alive fc
stop_bridge fc
check "C: the bridge exits 0 on SIGTERM" test $? -eq 0
summary c
vmm_conversation c
finish
