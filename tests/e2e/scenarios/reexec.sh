#!/usr/bin/env bash
# Live re-exec (issue 14 item 2) on the real edu: one client connection
# keeps doing edu DMA round trips with checksums and an MSI per round while
# the bridge is SIGHUPed 20 times, its binary replaced on disk halfway
# (an upgrade). 0 errors, 0 mismatches, an MSI every round, the same
# connection throughout (one session accepted, none closed), the same pid
# (execve keeps it), the same DMA table in `status` before and after, the
# kernel's MSI vector kept; the pause per re-exec (the bridge's own "resumed
# after a re-exec in N us") as median and p99. Then a state handed to a
# binary that cannot read it (a wrapper that rewrites its version to 2):
# the bridge says why and exits 1, the client's connection closes, the
# device is released, and a new bridge serves it.
# e2e-group: restart
# e2e-cost: 120
# e2e-timeout: 600
BIN_DIR=/run/vub-reexec
mkdir -p "$BIN_DIR"
VUB_BRIDGE=$BIN_DIR/vfio-user-bridge
REAL_BRIDGE=$VUB_BUILD/bridge/vfio-user-bridge
cp "$REAL_BRIDGE" "$VUB_BRIDGE"
. "$VUB_SRC/tests/e2e/lib.sh"
CLIENT=$VUB_PROGS/reexec_client
require "$VUB_BRIDGE" "$CLIENT" "$VUB_PROBE"
N=20
WORK=$VUB_OUT/reexec
rm -rf "$WORK"; mkdir -p "$WORK"
LOG=$VUB_OUT/bridge-rx.log

if ! start_bridge rx "$VUB_EDU"; then
  fail "bridge serves $VUB_EDU"
  finish
fi
pid=$(bridge_pid rx)
status_json() { "$REAL_BRIDGE" status --socket "$(sock rx)"; }
# What the checks need from the status JSON, in one python run (a start
# costs seconds in the test guest): DMA map count, client pid, sessions
# accepted and closed, then the DMA table (JSON, keys sorted).
status_fields() {
  python3 -S -c 'import json,sys; d=json.load(sys.stdin); c=d["client"]; s=d["sessions"]
print(c["dma"]["count"], c["pid"], s["accepted"], s["closed"], json.dumps(c["dma"], sort_keys=True))'
}
rounds() { local n=0; read -r n 2>/dev/null <"$WORK/rounds"; echo "${n:-0}"; }
wait_rounds() { # wait_rounds N: until the client has done N rounds (60 s)
  local i
  for i in $(seq 600); do
    [ "$(rounds)" -ge "$1" ] && return 0
    kill -0 "$client" 2>/dev/null || return 1
    nap 0.1
  done
  return 1
}
msi_vectors() { grep -c "vfio-msi.*($VUB_EDU)" /proc/interrupts; }

phase "bridge up; starting the client"
"$CLIENT" "$(sock rx)" "$WORK" >"$WORK/client.out" 2>"$WORK/client.err" &
client=$!
check "the client negotiated, mapped 3 DMA ranges, armed MSI and runs rounds" wait_rounds 3
before=$(status_json)
echo "$before" >"$WORK/status-before.json"
read -r b_count _ _ _ b_dma <<<"$(echo "$before" | status_fields)"
check "status shows the client with 3 DMA maps" test "$b_count" = 3
check "the kernel has the MSI vector set up" test "$(msi_vectors)" -eq 1
exe_before=$(stat -L -c %i "/proc/$pid/exe")
nfds_before=$(ls "/proc/$pid/fd" | wc -l)

phase "client running; $N re-execs"
for i in $(seq $N); do
  [ $((i % 5)) -eq 1 ] && phase "re-exec $i"
  if [ "$i" -eq $((N / 2 + 1)) ]; then
    # an upgrade: a new file at the same path (as dpkg does: write, rename)
    cp "$REAL_BRIDGE" "$VUB_BRIDGE.new" && mv -f "$VUB_BRIDGE.new" "$VUB_BRIDGE"
  fi
  r0=$(rounds)
  kill -HUP "$pid"
  for t in $(seq 600); do
    [ "$(grep -c 'resumed after a re-exec' "$LOG")" -ge "$i" ] && break
    kill -0 "$pid" 2>/dev/null || break
    nap 0.1
  done
  if [ "$(grep -c 'resumed after a re-exec' "$LOG")" -lt "$i" ]; then
    fail "re-exec $i: the bridge resumed"
    break
  fi
  # I/O goes on after each re-exec, on the same connection
  if ! wait_rounds $((r0 + 2)); then
    fail "re-exec $i: the client's rounds go on (stuck at $(rounds))"
    break
  fi
done
phase "re-execs done"
check "the bridge resumed $N times" test "$(grep -c 'resumed after a re-exec' "$LOG")" -eq $N
check "the bridge's pid is unchanged ($pid)" kill -0 "$pid"
check "the process is a re-exec'ed one (--resume-state in its argv)" \
  grep -qa -- --resume-state "/proc/$pid/cmdline"
exe_after=$(stat -L -c %i "/proc/$pid/exe")
check "the upgraded binary on disk runs now (exe inode $exe_before -> $exe_after)" \
  test "$exe_after" = "$(stat -c %i "$VUB_BRIDGE")" -a "$exe_after" != "$exe_before"
after=$(status_json)
echo "$after" >"$WORK/status-after.json"
read -r _ a_pid a_accepted a_closed a_dma <<<"$(echo "$after" | status_fields)"
nfds_after=$(ls "/proc/$pid/fd" | wc -l)
check "no fd leaked or lost: $nfds_before open before, $nfds_after after" \
  test "$nfds_before" -eq "$nfds_after"
check "the DMA table in status is identical before and after" \
  test -n "$b_dma" -a "$b_dma" = "$a_dma"
check "the same client connection (pid $client) throughout" test "$a_pid" = "$client"
check "one session accepted, none closed" test "$a_accepted,$a_closed" = "1,0"
check "the kernel kept the MSI vector" test "$(msi_vectors)" -eq 1
check "the bridge logged no disconnect" test "$(grep -c 'disconnected' "$LOG")" -eq 0

touch "$WORK/stop"
wait "$client"; crc=$?
sed 's/^/  | /' "$WORK/client.out" "$WORK/client.err"
check "the client: 0 errors, 0 mismatches, an MSI every round" test "$crc" -eq 0
check "unmaps after the re-execs reach the IOMMU (device cannot write an unmapped range; the IOVA maps again)" \
  grep -qx 'unmap ok' "$WORK/client.out"

# the pause per re-exec: from the old loop stopping to the new one resuming
pauses=$(sed -n 's/.*resumed after a re-exec in \([0-9]*\) us.*/\1/p' "$LOG" | sort -n)
count=$(echo "$pauses" | grep -c .)
if [ "$count" -gt 0 ]; then
  median=$(echo "$pauses" | sed -n "$(( (count + 1) / 2 ))p")
  p99=$(echo "$pauses" | sed -n "$(( (count * 99 + 99) / 100 ))p")
  echo "reexec pause over $count re-execs: median $median us, p99 $p99 us (max client round $(sed -n 's/.*max_round_ms \([0-9]*\).*/\1/p' "$WORK/client.out") ms)"
  for part in exec take-over; do
    v=$(sed -n "s/.*resumed after a re-exec in [0-9]* us (.*$part \([0-9]*\) us.*/\1/p" "$LOG" | sort -n)
    echo "  of which $part: median $(echo "$v" | sed -n "$(( (count + 1) / 2 ))p") us, p99 $(echo "$v" | sed -n "$(( (count * 99 + 99) / 100 ))p") us"
  done
  echo "$pauses" >"$WORK/pauses-us.txt"
  # the baseline in the same guest: starting the same binary at all (the
  # median of 9: each start costs more than a second here)
  base=$(for k in $(seq 9); do
    t0=$(date +%s%N); "$REAL_BRIDGE" --version >/dev/null; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 ))
  done | sort -n | sed -n 5p)
  r10=$(( median * 10 / (base > 0 ? base : 1) ))
  echo "  baseline: \`vfio-user-bridge --version\` (exec, loader, exit) median $base us; the pause is $((r10 / 10)).$((r10 % 10)) times that"
fi

phase "version-2 state"
# A binary that cannot read the state: a wrapper that rewrites the state's
# version to 2 and runs the real binary on it.
mkdir -p "$WORK/2"
"$CLIENT" "$(sock rx)" "$WORK/2" >"$WORK/client2.out" 2>"$WORK/client2.err" &
client2=$!
for t in $(seq 600); do [ -e "$WORK/2/rounds" ] && break; kill -0 $client2 2>/dev/null || break; nap 0.1; done
cat >"$VUB_BRIDGE.new" <<EOF
#!/bin/bash
# the last argument is the state's fd (--resume-state FD)
fd=\${!#}
cp /proc/self/fd/\$fd $BIN_DIR/state.v2
printf '\\x02' | dd of=$BIN_DIR/state.v2 bs=1 seek=8 conv=notrunc status=none
eval "exec \$fd<$BIN_DIR/state.v2"
exec "$REAL_BRIDGE" "\$@"
EOF
chmod 755 "$VUB_BRIDGE.new" && mv -f "$VUB_BRIDGE.new" "$VUB_BRIDGE"
disc0=$(grep -c 'disconnected' "$LOG")
kill -HUP "$pid"
for t in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; nap 0.1; done
wait "$pid"; brc=$?
unset "VUB_BRIDGE_PID[rx]"
check "the bridge handed a version-2 state exits 1" test "$brc" -eq 1
check "it says why" grep -q 'cannot resume.*state version 2, this program reads version 1' "$LOG"
check "it did not quiesce or touch the device (no disconnect line)" \
  test "$(grep -c 'disconnected' "$LOG")" -eq "$disc0"
wait "$client2"
check "the client sees its connection gone" test $? -ne 0
check "the kernel released the MSI vector with the last fd" test "$(msi_vectors)" -eq 0
tail -3 "$LOG" | sed 's/^/  | /'
VUB_BRIDGE=$REAL_BRIDGE
if start_bridge rx2 "$VUB_EDU"; then
  check "a new bridge serves the released device: edu self-test passes" \
    "$VUB_PROBE" --selftest edu "$(sock rx2)"
  stop_bridge rx2
  check "it exits 0 on SIGTERM" test $? -eq 0
else
  fail "a new bridge serves the released device"
fi
rm -rf "$BIN_DIR"
phase done
finish
