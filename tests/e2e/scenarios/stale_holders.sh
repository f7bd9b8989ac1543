#!/usr/bin/env bash
# Issue 13: a client that has left cannot touch the device. Client A (uid
# 65534) takes edu's BAR0 fd and mapping, leaves a keeper process with them
# and disconnects; client B (uid 65533) comes next.
#  1. default policy (refuse), keeper with fd and mapping: B is refused with
#     a line naming the keeper for as long as it lives; if B were served the
#     keeper must not reach the device during B's session (the landed code
#     fails here: it did). Once the keeper is gone B is served.
#  2. --stale-holders kill, keeper with the mapping only (no fd left): the
#     bridge kills it at session end; B then runs the edu self-test.
# On the iommufd kernel (e2e_iommufd_core) it runs with --iommu
# iommufd-group: a cdev gives a client no file, the group file does.
# e2e-group: devices
# e2e-cost: 15
# e2e-iommufd: core
[ "${VUB_IOMMU:-}" = iommufd ] && VUB_IOMMU=iommufd-group
. "$VUB_SRC/tests/e2e/lib.sh"
require "$VUB_BRIDGE" "$VUB_PROBE" "$VUB_PROGS/stale_client"

as_a=(setpriv --reuid 65534 --regid 65534 --clear-groups)
as_b=(setpriv --reuid 65533 --regid 65533 --clear-groups)
if ! command -v setpriv >/dev/null; then
  echo "no setpriv: clients run as root"
  as_a=(); as_b=()
fi

work=$(mktemp -d /tmp/stale.XXXXXX)
chmod 0777 "$work"

# wait_gone PID: up to 10 s for it to disappear.
wait_gone() {
  local i
  for i in $(seq 100); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# poke DIR PID: ask the keeper to try the device; print "reached N".
poke() {
  local dir=$1 pid=$2 i
  rm -f "$dir/keeper.result"
  kill -USR1 "$pid" 2>/dev/null || { echo "reached gone"; return; }
  for i in $(seq 100); do
    [ -f "$dir/keeper.result" ] && { head -n1 "$dir/keeper.result"; return; }
    sleep 0.1
  done
  echo "reached noanswer"
}

# ---- 1. refuse (the default), keeper with fd and mapping ------------------------
if start_bridge stale "$VUB_EDU" --socket-mode 0666; then
  d1=$work/one; mkdir -m 0777 "$d1"
  check "client A (uid 65534) maps BAR0 and leaves a keeper with fd and mapping" \
    "${as_a[@]}" "$VUB_PROGS/stale_client" "$(sock stale)" fd-and-map "$d1"
  k1=$(cat "$d1/keeper.pid" 2>/dev/null)
  echo "keeper pid ${k1:-?}"
  sleep 1   # the bridge has seen A go and looked for holders
  check "A's keeper still reaches the device with no session running" \
    test "$(poke "$d1" "$k1")" = "reached 1"

  # B holds a session (DMA, MSI) if it is let in at all.
  "${as_b[@]}" "$VUB_PROBE" --selftest edu --hold "$(sock stale)" >"$VUB_OUT/stale-b1.log" 2>&1 &
  b1=$!
  for i in $(seq 300); do
    grep -q '^holding' "$VUB_OUT/stale-b1.log" && break
    kill -0 $b1 2>/dev/null || break
    sleep 0.1
  done
  sed 's/^/  B| /' "$VUB_OUT/stale-b1.log"
  if grep -q '^holding' "$VUB_OUT/stale-b1.log"; then
    fail "client B (uid 65533) is refused while A's keeper holds the device file"
    check "A's keeper cannot reach the device during B's session" \
      test "$(poke "$d1" "$k1")" != "reached 1"
    kill -KILL $b1 2>/dev/null
  else
    pass "client B (uid 65533) is refused while A's keeper holds the device file"
  fi
  wait $b1 2>/dev/null
  check "the refusal names the keeper (pid, uid 65534, what it holds)" \
    grep -q "refusing client pid [0-9]* uid 65533: pid $k1 uid 65534 (stale_client) still holds fd" \
    "$VUB_OUT/bridge-stale.log"
  check "the bridge still serves" bridge_alive stale

  kill -KILL "$k1" 2>/dev/null
  check "the keeper is gone" wait_gone "$k1"
  check "then client B is served: the edu self-test" \
    "${as_b[@]}" "$VUB_PROBE" --selftest edu "$(sock stale)"
  stop_bridge stale
  check "bridge exits 0 on SIGTERM" test $? -eq 0
  echo "bridge log (last 15 lines):"
  tail -n 15 "$VUB_OUT/bridge-stale.log" | sed 's/^/  | /'
else
  fail "bridge serves $VUB_EDU"
fi

# ---- 2. kill, keeper with the mapping only -----------------------------------------
if start_bridge stalek "$VUB_EDU" --socket-mode 0666 --stale-holders kill; then
  d2=$work/two; mkdir -m 0777 "$d2"
  check "client A maps BAR0 and leaves a keeper with the mapping only" \
    "${as_a[@]}" "$VUB_PROGS/stale_client" "$(sock stalek)" map-only "$d2"
  k2=$(cat "$d2/keeper.pid" 2>/dev/null)
  echo "keeper pid ${k2:-?}"
  check "the bridge killed the keeper at the end of A's session" wait_gone "$k2"
  check "and said so, naming it and its mapping" \
    grep -q "killing pid $k2 uid 65534 (stale_client): it holds a mapping at 0x" \
    "$VUB_OUT/bridge-stalek.log"
  check "client B runs the edu self-test" \
    "${as_b[@]}" "$VUB_PROBE" --selftest edu "$(sock stalek)"
  stop_bridge stalek
  check "bridge exits 0 on SIGTERM" test $? -eq 0
  echo "bridge log (last 15 lines):"
  tail -n 15 "$VUB_OUT/bridge-stalek.log" | sed 's/^/  | /'
  [ -n "${k2:-}" ] && kill -KILL "$k2" 2>/dev/null
else
  fail "bridge serves $VUB_EDU with --stale-holders kill"
fi
[ -n "${k1:-}" ] && kill -KILL "$k1" 2>/dev/null
finish
