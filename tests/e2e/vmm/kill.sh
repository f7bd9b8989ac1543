#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# VMM scenario 4: a QEMU guest does continuous checksummed nvme I/O
# (guest-tool loop: write, fdatasync, read back, compare, for ever) while
# the bridge under it is re-executed 20 times (SIGHUP, as systemctl reload)
# and then SIGKILLed 5 times and brought back from the fd store each time
# (issue 14 item 4; the test plays systemd's side: progs/fdstore_keeper).
# The guest must not notice: its loop never stops (an I/O error or a
# mismatch ends it with "VMM-RESULT loop FAIL") and goes on after each
# step; the pause per re-exec and per restart is printed (median, p99).
# Then the VMM is SIGKILLed; the bridge cleans up and serves a second QEMU
# on the same socket: the guest of vmm/reboot.sh (nvme I/O and edu, the
# edu on a bridge of its own; a guest reboot: QEMU resets the machine,
# sends DEVICE_RESET and sets both devices up again; both checks again in
# the second boot), so that CI boots one QEMU less than with a reboot
# scenario of its own; `systemctl stop` (SIGTERM to the keeper) ends it all
# and drops the store.
. "$VUB_SRC/tests/e2e/lib.sh"
. "$VUB_SRC/tests/e2e/vmm/lib-vmm.sh"
KEEPER=$VUB_PROGS/fdstore_keeper
require "$VUB_BRIDGE" "$KEEPER"
REEXECS=${VUB_VMM_REEXECS:-20}
KILLS=${VUB_VMM_KILLS:-5}
vmm_prepare
# the keeper's notify socket needs a local file system (not the out dir)
KDIR=/run/vub-vmm-kill
rm -rf "$KDIR"; mkdir -p "$KDIR"
LOG=$VUB_OUT/bridge-nvme.log
SOCK=$(sock nvme)
rm -f "$SOCK"
"$KEEPER" "$KDIR" -- "$VUB_BRIDGE" --device "$VUB_NVME" --socket "$SOCK" --fd-store \
  --log-level=debug >"$LOG" 2>&1 &
keeper=$!
n_ready() { grep -c '^ready ' "$KDIR/events" 2>/dev/null; }
wait_ready() { # wait_ready N: until the Nth READY=1 (120 s by the clock)
  local end=$((SECONDS + 120))
  while [ $SECONDS -lt $end ]; do
    [ "$(n_ready)" -ge "$1" ] && return 0
    kill -0 $keeper 2>/dev/null || return 1
    nap 0.3
  done
  return 1
}
bpid() { local p=; read -r p <"$KDIR/pid"; echo "$p"; }
if ! wait_ready 1; then
  fail "the nvme bridge starts under the fd-store keeper"
  show_log nvme
  finish
fi
VUB_BRIDGE_PID[nvme]=$(bpid)
vmm_start loop loop "$SOCK"
CON=$VUB_OUT/vmm-$VUB_SCENARIO-loop.console
loops() { tr -d '\r' <"$CON" | grep -c '^loop '; }
if vmm_wait_line loop '^loop 4$' "$VMM_TIMEOUT"; then
  pass "the first guest is doing nvme I/O ($(loops) loop lines)"
else
  fail "the first guest never reached its I/O loop"
fi

# wait_loops N: until the guest has printed N loop lines (each is 4 more
# rounds of 256 KiB written, synced, read back and compared)
wait_loops() {
  local end=$((SECONDS + 180))
  while [ $SECONDS -lt $end ]; do
    [ "$(loops)" -ge "$1" ] && return 0
    kill -0 "${VMM_PID[loop]}" 2>/dev/null || return 1
    tr -d '\r' <"$CON" | grep -q '^VMM-RESULT loop FAIL' && return 1
    nap 1
  done
  return 1
}
ready=1 ok_steps=0 l0=0 hups=0
step() { # step hup|kill: do it, wait for the bridge to be back and the guest to go on
  local what=$1 end back=
  [ "$what" = kill ] || [ $((ok_steps % 5)) -eq 0 ] && l0=$(loops)
  if [ "$what" = hup ]; then
    # (one grep per poll: the guest's I/O loop keeps this CPU busy, and
    # every exec here takes from it)
    kill -HUP "$(bpid)"
    end=$((SECONDS + 120))
    while [ $SECONDS -lt $end ]; do
      [ "$(grep -c 'resumed after a re-exec' "$LOG")" -gt "$hups" ] && { back=1; break; }
      nap 0.3
    done
    [ -n "$back" ] || { fail "re-exec: the bridge resumed"; return 1; }
    hups=$((hups + 1))
    ready=$((ready + 1))   # RELOADING=1, then READY=1 from the new binary
  else
    kill -KILL "$(bpid)"
    ready=$((ready + 1))
    wait_ready $ready || { fail "SIGKILL: the bridge came back from the fd store"; return 1; }
  fi
  # the guest's I/O goes on: after every restart, and after every 5th
  # re-exec (a loop line takes ~5 s in the nested guest; the re-execs in
  # between land in the middle of its I/O all the same)
  if [ "$what" = kill ] || [ $(( (ok_steps + 1) % 5 )) -eq 0 ]; then
    wait_loops $((l0 + 1)) || { fail "$what: the guest's I/O goes on (loop lines stuck at $(loops))"; return 1; }
  fi
  ok_steps=$((ok_steps + 1))
}
for i in $(seq "$REEXECS"); do step hup || break; done
check "$REEXECS re-execs under the guest's I/O, each followed by more I/O" test "$ok_steps" -eq "$REEXECS"
for i in $(seq "$KILLS"); do step kill || break; done
check "$KILLS SIGKILLs, each restarted from the fd store and followed by more I/O" \
  test "$ok_steps" -eq $((REEXECS + KILLS))
VUB_BRIDGE_PID[nvme]=$(bpid)
check "the bridge logged $KILLS resumes from the fd store" \
  test "$(grep -c 'resumed from the fd store' "$LOG")" -eq "$KILLS"
check "no session was ended by a restart" test "$(grep -c 'ending the session' "$LOG")" -eq 0
check "the guest's I/O loop never failed (no I/O error, no mismatch)" \
  sh -c "! tr -d '\r' <'$CON' | grep -qE '^VMM-RESULT loop FAIL|^rw: mismatch|I/O error'"
check "one session for the whole time: accepted 1, closed 0" \
  test "$(timeout 60 "$VUB_BRIDGE" status --socket "$SOCK" | python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["sessions"]; print(s["accepted"], s["closed"])')" = "1 0"
# the pauses: a re-exec's from the bridge's own line, a restart's from the
# process's death to its successor's READY=1 (the keeper's clock)
pct() { # pct NAME: median and p99 of the numbers on stdin (us)
  sort -n | awk -v n="$1" '{ v[NR] = $1 } END { if (NR) printf "%s over %d: median %d us, p99 %d us\n", n, NR, v[int((NR + 1) / 2)], v[int((NR * 99 + 99) / 100)] }'
}
sed -n 's/.*resumed after a re-exec in \([0-9]*\) us.*/\1/p' "$LOG" | pct "re-exec pause under guest I/O"
awk '$1 == "exit" { t = $NF } $1 == "ready" && t { print $NF - t; t = 0 }' "$KDIR/events" |
  pct "fd-store restart pause under guest I/O (death to READY=1)"
vmm_log "loop: $(loops) loop lines after the re-execs and restarts"

vmm_kill loop
vmm_log "loop: QEMU SIGKILLed after $(vmm_since "$VMM_T0") s"
vmm_show loop
sleep 2
check "the bridge survived the VMM's death" bridge_alive nvme
start_bridge edu "$VUB_EDU" --log-level=debug || fail "the edu bridge starts"
vmm_start reboot reboot "$SOCK" "$(sock edu)"
vmm_two_boots reboot "the second QEMU"
check "the nvme bridge is still serving" bridge_alive nvme
check "the edu bridge is still serving" bridge_alive edu
stop_bridge edu
check "the edu bridge exits 0 on SIGTERM" test $? -eq 0
# systemctl stop: SIGTERM, the bridge leaves it all to the store, which is dropped
kill -TERM $keeper
wait $keeper
unset "VUB_BRIDGE_PID[nvme]"
check "the bridge exits 0 on SIGTERM" grep -q "^exit $(bpid) status-0 " "$KDIR/events"
check "the store is dropped on stop" test "$(tail -1 "$KDIR/events" | cut -d' ' -f1,2)" = "store 0"
vmm_conversation loop
vmm_conversation reboot
vmm_bridge_summary nvme
vmm_bridge_summary edu
cp "$KDIR/events" "$VUB_OUT/keeper-events-$VUB_SCENARIO"
finish
