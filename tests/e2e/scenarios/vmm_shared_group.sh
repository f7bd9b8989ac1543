#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One daemon for the functions of one IOMMU group (issue 15; testbed
# --topology shared: edu and nvme behind a conventional PCI bridge): edu and
# nvme on two sockets, one IOMMU context, started the way the group unit
# starts it (its ExecStart from udev/vfio-user-bridge-group@.service.in:
# --policy P --iommu-group N, the policy naming both sockets). Without a
# VM: SIGHUP refused, edu's reset (a hot reset of the bus: edu has no FLR),
# a client of another uid on the free function of the busy group refused. A QEMU 11 guest with
# both devices (two vfio-user-pci) does nvme I/O and edu DMA, reboots and
# does both again (QEMU's DMA_MAPs on the two sockets are shared in the
# IOMMU); both sessions end clean when it powers off and when a second QEMU
# is SIGKILLed. Then nvme is unbound from vfio-pci while edu is served, and
# served again once it is bound again.
# e2e-topology: shared
# e2e-timeout: 1500
# e2e-group: shared
# e2e-cost: 220
. "$VUB_SRC/tests/e2e/lib.sh"
. "$VUB_SRC/tests/e2e/vmm/lib-vmm.sh"
require "$VUB_BRIDGE" "$VUB_PROBE"
vmm_prepare
LOG=$VUB_OUT/bridge-edu.log
as_other=(setpriv --reuid 65534 --regid 65534 --clear-groups)

group_of() { basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"; }
g=$(group_of "$VUB_EDU")
check "edu ($VUB_EDU) and nvme ($VUB_NVME) share IOMMU group $g" test "$g" = "$(group_of "$VUB_NVME")"
for d in "$VUB_EDU" "$VUB_NVME"; do
  echo "  $d reset_method: $(cat "/sys/bus/pci/devices/$d/reset_method" 2>&1)"
done
"$VUB_BRIDGE" list >"$VUB_OUT/list.txt" 2>&1
sed -n '/^IOMMU groups/,$p' "$VUB_OUT/list.txt" | sed 's/^/  | /'
check "list: group $g is exportable by one daemon serving edu and nvme" \
  grep -q "exportable: vfio-user-bridge --device $VUB_EDU --socket PATH --device $VUB_NVME --socket PATH" "$VUB_OUT/list.txt"

# sessions ended so far (connect and disconnect lines name the function)
ended() { grep -c "vfio-user-bridge\[$1\] info: client pid .* disconnected" "$LOG"; }
status_client_null() { "$VUB_BRIDGE" status --socket "$(sock "$1")" | grep -q '"client":null'; }
hold_edu() {
  "$VUB_PROBE" --selftest edu --hold "$(sock edu)" >"$VUB_OUT/hold-$1.log" 2>&1 &
  holder=$!
  for _ in $(seq 300); do
    grep -q '^holding' "$VUB_OUT/hold-$1.log" && return 0
    kill -0 $holder 2>/dev/null || break
    sleep 0.1
  done
  return 1
}

# the group unit's command line (with --log-level=debug: checks below read
# debug lines), the policy giving each function its socket
POLICY=$VUB_OUT/policy.json
cat >"$POLICY" <<EOF
{
  "version": 1,
  "defaults": { "socket_mode": "0666" },
  "devices": [
    { "match": { "address": "$VUB_EDU" }, "socket": "$(sock edu)" },
    { "match": { "address": "$VUB_NVME" }, "socket": "$(sock nvme)" }
  ]
}
EOF
EXEC=$(sed -n 's/^ExecStart=//p' "$VUB_SRC/udev/vfio-user-bridge-group@.service.in")
EXEC=${EXEC//@VUB_BRIDGE@/$VUB_BRIDGE}
EXEC=${EXEC//@VUB_POLICY@/$POLICY}
EXEC=${EXEC//%I/$g}
check "the group unit's command: --policy and --iommu-group" \
  test "$EXEC" = "$VUB_BRIDGE --policy $POLICY --iommu-group $g"
rm -f "$(sock edu)" "$(sock nvme)"
(ulimit -l unlimited && exec $EXEC --log-level=debug) >"$LOG" 2>&1 &
VUB_BRIDGE_PID[edu]=$!
for _ in $(seq 300); do
  [ -S "$(sock edu)" ] && break
  bridge_alive edu || break
  sleep 0.1
done
[ -S "$(sock edu)" ] || { show_log edu; fail "the group daemon starts"; finish; }
for _ in $(seq 100); do [ -S "$(sock nvme)" ] && break; sleep 0.1; done
check "one daemon serves edu and nvme (both sockets)" test -S "$(sock nvme)"
check "its log names the group's two functions" \
  grep -q "serving $VUB_NVME on $(sock nvme) (IOMMU group $g, function 2 of 2)" "$LOG"
check "edu is reset with its bus (no function reset), which also resets nvme" \
  grep -q "vfio-user-bridge\[$VUB_EDU\] info: reset: a hot reset of the bus .*also resets $VUB_NVME" "$LOG"
pid=$(bridge_pid edu)
kill -HUP "$pid"; sleep 1
check "SIGHUP is refused with a log line" grep -q "SIGHUP: not re-executing: this daemon serves 2 functions" "$LOG"
check "and the daemon goes on" bridge_alive edu

check "edu self-test (with DEVICE_RESET: the hot reset, nvme has no client)" \
  "$VUB_PROBE" --selftest edu "$(sock edu)"
check_fails "no reset was refused or failed" grep -qE "DEVICE_RESET .*failed|device reset failed|not reset yet" "$LOG"
check "nvme self-test (with DEVICE_RESET: its own FLR)" \
  "$VUB_PROBE" --selftest nvme --expect-sparse-msix --expect-serial "$VUB_NVME_SERIAL" "$(sock nvme)"

if hold_edu busy; then
  pass "a client holds edu (pid $holder, uid 0)"
  "${as_other[@]}" "$VUB_PROBE" "$(sock nvme)" >"$VUB_OUT/other-uid.log" 2>&1
  check "a client of uid 65534 on nvme, the free function of the busy group, fails" test $? -ne 0
  sleep 0.5
  check "the log says why: the group is in use by the edu client" \
    grep -qE "vfio-user-bridge\[$VUB_NVME\] warn: refusing client pid [0-9]+ uid 65534: IOMMU group $g is in use by pid $holder uid 0 on $VUB_EDU" "$LOG"
  kill $holder; wait $holder 2>/dev/null
else
  fail "a client holds edu"
fi

# ---- the VM -----------------------------------------------------------------------
e0=$(ended "$VUB_EDU") n0=$(ended "$VUB_NVME")
vmm_start shared reboot "$(sock nvme)" "$(sock edu)"
vmm_two_boots shared
shared=$(grep -c "shared with another function of the group" "$LOG")
check "QEMU's DMA_MAPs on the two sockets were shared in the IOMMU ($shared)" test "$shared" -gt 0
check_fails "no DMA_MAP conflicted (the layout changes interleave on the two sockets)" \
  grep -qE "DMA_MAP .*File exists" "$LOG"
qpid=$(sed -n 's/.*\[\(0000:[^]]*\)\] info: client pid \([0-9]*\) uid 0 gid 0 connected/\2/p' "$LOG" | tail -n 1)
check "QEMU's DEVICE_RESET of edu while nvme had its client was refused, naming nvme" \
  grep -q "DEVICE_RESET: a hot reset of the bus would also reset $VUB_NVME (pid $qpid uid 0), which has a client" "$LOG"
grep -E "DEVICE_RESET|not reset|reset now" "$LOG" | tail -n 4 | sed 's/^/  | /'
sleep 2
check "both sessions ended (edu $(( $(ended "$VUB_EDU") - e0 )), nvme $(( $(ended "$VUB_NVME") - n0 )))" \
  test $(( $(ended "$VUB_EDU") - e0 )) -ge 1 -a $(( $(ended "$VUB_NVME") - n0 )) -ge 1
check "edu has no client" status_client_null edu
check "nvme has no client" status_client_null nvme

e0=$(ended "$VUB_EDU") n0=$(ended "$VUB_NVME")
vmm_start killed loop "$(sock nvme)" "$(sock edu)"
if vmm_wait_line killed '^loop 4$' "$VMM_TIMEOUT"; then
  pass "the second guest is doing nvme I/O"
else
  fail "the second guest never reached its I/O loop"
fi
vmm_kill killed
vmm_log "killed: QEMU SIGKILLed after $(vmm_since "$VMM_T0") s"
for _ in $(seq 100); do
  [ $(( $(ended "$VUB_EDU") - e0 )) -ge 1 ] && [ $(( $(ended "$VUB_NVME") - n0 )) -ge 1 ] && break
  sleep 0.1
done
check "after the SIGKILL both sessions ended" \
  test $(( $(ended "$VUB_EDU") - e0 )) -ge 1 -a $(( $(ended "$VUB_NVME") - n0 )) -ge 1
check "edu has no client" status_client_null edu
check "nvme has no client" status_client_null nvme
check "the daemon survived the VMM's death" bridge_alive edu

# ---- nvme leaves vfio-pci while edu is served --------------------------------------
if hold_edu unbind; then
  timeout 60 sh -c "echo $VUB_NVME >/sys/bus/pci/drivers/vfio-pci/unbind"
  check "nvme unbinds from vfio-pci while edu is served (status $?)" test ! -e "/sys/bus/pci/devices/$VUB_NVME/driver"
  sleep 1
  check "the daemon ended nvme alone" grep -q "vfio-user-bridge\[$VUB_NVME\] warn: no longer served" "$LOG"
  check_fails "nvme's socket is gone" test -e "$(sock nvme)"
  check "the edu client is still there" kill -0 $holder
  kill $holder; wait $holder 2>/dev/null
  check "edu's session ended with the device left unreset: the kernel resets the bus only with nvme on vfio-pci" \
    grep -q "device reset failed: .*VFIO_DEVICE_PCI_HOT_RESET: Invalid argument (the kernel resets a bus only while every function on it is bound to vfio-pci" "$LOG"
  echo "$VUB_NVME" >/sys/bus/pci/drivers_probe   # driver_override: back to vfio-pci
  check "nvme is bound to vfio-pci again" test "$(basename "$(readlink "/sys/bus/pci/devices/$VUB_NVME/driver")")" = vfio-pci
  for _ in $(seq 300); do [ -S "$(sock nvme)" ] && break; sleep 0.1; done
  check "the daemon serves nvme again (bound again)" "$VUB_BRIDGE" status --socket "$(sock nvme)"
  check "edu self-test (and its hot reset, nvme served again without a client)" \
    "$VUB_PROBE" --selftest edu "$(sock edu)"
else
  fail "a client holds edu before the unbind"
fi
stop_bridge edu
check "the daemon exits 0 on SIGTERM" test $? -eq 0
vmm_bridge_summary edu
finish
