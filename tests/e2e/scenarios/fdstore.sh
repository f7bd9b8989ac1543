#!/usr/bin/env bash
# Restart from the fd store (issue 14 item 3) on the real edu, with the test
# playing systemd's side (progs/fdstore_keeper: notify socket, FDSTORE=1 /
# FDSTOREREMOVE=1, LISTEN_FDS/LISTEN_FDNAMES, Restart=on-failure; the
# testbed's init is not systemd). One client connection keeps doing edu DMA
# round trips with checksums and an MSI each while the bridge is SIGKILLed
# 3 times between two of its messages (a crash: restarted from the store), re-executed by SIGHUP once
# with the store on, and restarted once as `systemctl restart` does
# (SIGTERM, a new process). 0 errors, 0 mismatches, the same connection (one
# session accepted, none closed), unmaps after the restarts reach the IOMMU.
# Then `systemctl stop` (SIGTERM, the store dropped): the client's
# connection ends, the kernel releases the device, a new bridge serves it.
# The pause per restart (the process's death to its successor's READY=1).
# e2e-group: restart
# e2e-cost: 90
# e2e-timeout: 900
. "$VUB_SRC/tests/e2e/lib.sh"
CLIENT=$VUB_PROGS/reexec_client
KEEPER=$VUB_PROGS/fdstore_keeper
require "$VUB_BRIDGE" "$CLIENT" "$KEEPER" "$VUB_PROBE"
KILLS=3
WORK=$VUB_OUT/fdstore
# the keeper's notify socket needs a local file system (not the 9p out dir)
KDIR=/run/vub-fdstore
rm -rf "$WORK" "$KDIR"; mkdir -p "$WORK" "$KDIR"
SOCK=/tmp/fs.sock
LOG=$VUB_OUT/bridge-fs.log
rm -f "$SOCK"
"$KEEPER" "$KDIR" -- "$VUB_BRIDGE" --device "$VUB_EDU" --socket "$SOCK" --fd-store >"$LOG" 2>&1 &
keeper=$!
bpid() { local p=; read -r p <"$KDIR/pid"; echo "$p"; }
n_ready() { grep -c '^ready ' "$KDIR/events"; }
# waits by the clock, not by a count of polls: a loaded TCG guest takes
# seconds per command
wait_ready() { # wait_ready N: until the Nth READY=1 (120 s)
  local end=$((SECONDS + 120))
  while [ $SECONDS -lt $end ]; do
    [ "$(n_ready)" -ge "$1" ] && return 0
    kill -0 $keeper 2>/dev/null || return 1
    nap 0.2
  done
  return 1
}
rounds() { local n=0; read -r n 2>/dev/null <"$WORK/rounds"; echo "${n:-0}"; }
wait_rounds() { # wait_rounds N: until the client has done N rounds (120 s)
  local end=$((SECONDS + 120))
  while [ $SECONDS -lt $end ]; do
    [ "$(rounds)" -ge "$1" ] && return 0
    kill -0 "$client" 2>/dev/null || return 1
    nap 0.2
  done
  return 1
}
status_json() { timeout 60 "$VUB_BRIDGE" status --socket "$SOCK"; }
# client pid, sessions accepted and closed, DMA map count: one python run
# (a start costs seconds in the test guest)
status_fields() {
  python3 -S -c 'import json,sys; d=json.load(sys.stdin); c=d["client"]; s=d["sessions"]
print(c["pid"], s["accepted"], s["closed"], c["dma"]["count"])'
}
msi_vectors() { grep -c "vfio-msi.*($VUB_EDU)" /proc/interrupts; }

if ! wait_ready 1; then
  fail "the bridge under the keeper says READY=1"
  sed 's/^/  | /' "$LOG"
  finish
fi
check "the state memfd and the fixed fds are in the store" \
  grep -q "^store [5-9]" "$KDIR/events"
REEXEC_CLIENT_PACE_MS=20 "$CLIENT" "$SOCK" "$WORK" >"$WORK/client.out" 2>"$WORK/client.err" &
client=$!
check "the client negotiated, mapped 3 DMA ranges, armed MSI and runs rounds" wait_rounds 3
ready=1
step() { # step WHAT: do it, wait for the next READY=1 and 2 more rounds
  local what=$1 r0 n0
  r0=$(rounds)
  n0=$(grep -c 'resumed after a re-exec' "$LOG")
  echo "  step $what: bridge pid $(bpid), round $r0, $(n_ready) READY so far"
  case $what in
    kill)
      # between two messages: the client stopped, the bridge given time to
      # answer what it had in hand (a kill in the middle of a message ends
      # the session by design: unit test bridge_fdstore, docs/architecture.md)
      kill -STOP "$client"; sleep 2
      kill -KILL "$(bpid)"
      kill -CONT "$client" ;;
    hup) kill -HUP "$(bpid)" ;;
    restart) kill -USR1 $keeper ;;
  esac
  if [ "$what" = hup ]; then
    local end=$((SECONDS + 120))
    ready=$((ready + 1))   # a re-exec says RELOADING=1, then READY=1
    while [ $SECONDS -lt $end ]; do
      [ "$(grep -c 'resumed after a re-exec' "$LOG")" -gt "$n0" ] && break
      nap 0.2
    done
  else
    ready=$((ready + 1))
    wait_ready $ready || { fail "$what: the bridge came back (READY=1)"; return 1; }
  fi
  wait_rounds $((r0 + 2)) || { fail "$what: the client's rounds go on (stuck at $(rounds))"; return 1; }
}
for i in $(seq $KILLS); do
  step kill || break
  [ "$i" = 2 ] && { step hup || break; }
done
step restart
check "$KILLS SIGKILLs and a restart: $((KILLS + 1)) resumes from the fd store" \
  test "$(grep -c 'resumed from the fd store' "$LOG")" -eq $((KILLS + 1))
check "a re-exec with the store on" test "$(grep -c 'resumed after a re-exec' "$LOG")" -eq 1
check "no session ended by a message in hand" test "$(grep -c 'ending the session' "$LOG")" -eq 0
after=$(status_json)
echo "$after" >"$WORK/status-after.json"
read -r a_pid a_accepted a_closed a_count <<<"$(echo "$after" | status_fields)"
check "the same client connection (pid $client) throughout" test "$a_pid" = "$client"
check "one session accepted, none closed" test "$a_accepted,$a_closed" = "1,0"
check "status shows the client's 3 DMA maps" test "$a_count" = 3
check "the kernel kept the MSI vector" test "$(msi_vectors)" -eq 1
check "the bridge logged no disconnect" test "$(grep -c 'disconnected' "$LOG")" -eq 0
touch "$WORK/stop"
end=$((SECONDS + 120))
while [ $SECONDS -lt $end ]; do kill -0 "$client" 2>/dev/null || break; nap 0.2; done
kill -0 "$client" 2>/dev/null && { echo "  the client did not stop; killing it"; kill -KILL "$client"; }
wait "$client"; crc=$?
sed 's/^/  | /' "$WORK/client.out" "$WORK/client.err"
check "the client: 0 errors, 0 mismatches, an MSI every round" test "$crc" -eq 0
check "unmaps after the restarts reach the IOMMU (the device cannot write an unmapped range; the IOVA maps again)" \
  grep -qx 'unmap ok' "$WORK/client.out"

# the pause per restart: the process's death to its successor's READY=1
python3 - "$KDIR/events" <<'PY'
import sys
ev = [l.split() for l in open(sys.argv[1])]
p, dead = [], None
for e in ev:
    if e[0] == 'exit': dead = int(e[-1])
    elif e[0] == 'ready' and dead is not None: p.append(int(e[-1]) - dead); dead = None
p.sort()
if p:
    print("fd-store restart pause over %d restarts: median %d us, p99 %d us" %
          (len(p), p[(len(p) + 1) // 2 - 1], p[min(len(p) - 1, (len(p) * 99 + 99) // 100 - 1)]))
PY

# systemctl stop: SIGTERM, the store dropped
mkdir -p "$WORK/2"
REEXEC_CLIENT_PACE_MS=20 "$CLIENT" "$SOCK" "$WORK/2" >"$WORK/client2.out" 2>"$WORK/client2.err" &
client2=$!
end=$((SECONDS + 120))
while [ $SECONDS -lt $end ]; do [ -e "$WORK/2/rounds" ] && break; kill -0 $client2 2>/dev/null || break; nap 0.2; done
kill -TERM $keeper
wait $keeper
check "stop: the keeper dropped the store" test "$(tail -1 "$KDIR/events" | cut -d' ' -f1,2)" = "store 0"
check "stop: the bridge left its session to the store" grep -q 'stay in the service manager' "$LOG"
wait "$client2"
check "stop: the client sees its connection gone" test $? -ne 0
end=$((SECONDS + 30))
while [ $SECONDS -lt $end ]; do [ "$(msi_vectors)" -eq 0 ] && break; nap 0.2; done
check "stop: the kernel released the MSI vector with the last copy of the fds" test "$(msi_vectors)" -eq 0
if start_bridge fs2 "$VUB_EDU"; then
  check "a new bridge serves the released device: edu self-test passes" \
    "$VUB_PROBE" --selftest edu "$(sock fs2)"
  stop_bridge fs2
else
  fail "a new bridge serves the released device"
fi
grep -E 'fd store|resumed from' "$LOG" | tail -5 | sed 's/^/  | /'
cp "$KDIR/events" "$WORK/keeper-events"
finish
