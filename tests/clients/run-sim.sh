#!/bin/bash
# SPDX-License-Identifier: MIT
# run-sim.sh BRIDGE PERSONALITY SIM CLIENT DEVICE [KNOWN-LIMIT [BRIDGE-ARGS...]]:
# start the bridge on --sim=SIM (plus BRIDGE-ARGS), run one client
# personality through a device's whole life and one reconnect, then stop
# the bridge; pass only if the personality passed (or, with a non-empty
# KNOWN-LIMIT, failed exactly there: --expect-fail) and the bridge exits 0
# on SIGTERM. The bridge's log is shown on failure.
set -u
bridge=$1 pers=$2 sim=$3 client=$4 dev=$5 known=${6:-}
shift 5; [ $# -gt 0 ] && shift
dir=$(mktemp -d "${TMPDIR:-/tmp}/vub-client-XXXXXX") || exit 1
sock=$dir/bridge.sock
"$bridge" --sim="$sim" --socket "$sock" --log-level debug "$@" >"$dir/bridge.log" 2>&1 &
bpid=$!
cleanup() { kill -KILL "$bpid" 2>/dev/null; wait "$bpid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 400); do            # guard only: the socket appears within milliseconds
  [ -S "$sock" ] && break
  kill -0 "$bpid" 2>/dev/null || break
  sleep 0.05
done
if [ ! -S "$sock" ]; then
  echo "bridge on --sim=$sim did not come up:"; sed 's/^/  | /' "$dir/bridge.log"; exit 1
fi
if [ -n "$known" ]; then
  "$pers" --client "$client" --socket "$sock" --device "$dev" --reconnect 1 --expect-fail "$known"
else
  "$pers" --client "$client" --socket "$sock" --device "$dev" --reconnect 1
fi
rc=$?
kill -TERM "$bpid"
wait "$bpid"; brc=$?
if [ "$rc" -ne 0 ] || [ "$brc" -ne 0 ]; then
  echo "personality exit $rc, bridge exit $brc; the bridge's log:"
  sed 's/^/  | /' "$dir/bridge.log"
  exit 1
fi
exit 0
