#!/usr/bin/env bash
# Malformed clients: every bad message gets an error reply or a dropped
# connection as the protocol demands, and the bridge goes on serving.
# e2e-group: devices
# e2e-cost: 8
. "$VUB_SRC/tests/e2e/lib.sh"
require "$VUB_BRIDGE" "$VUB_PROBE" "$VUB_PROGS/bad_client"

if ! start_bridge bad "$VUB_EDU"; then
  fail "bridge serves $VUB_EDU"
  finish
fi
check "bad clients are refused one by one" "$VUB_PROGS/bad_client" "$(sock bad)"
check "bridge survived them" bridge_alive bad
check "then a real client runs the edu self-test" "$VUB_PROBE" --selftest edu "$(sock bad)"
stop_bridge bad
check "bridge exits 0 on SIGTERM" test $? -eq 0
echo "bridge log (last 30 lines):"
tail -n 30 "$VUB_OUT/bridge-bad.log" | sed 's/^/  | /'
finish
