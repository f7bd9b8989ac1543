#!/usr/bin/env bash
# Auto-export through udev, with the project's real rules and unit.
#
# A real systemd-udevd runs in the guest with udev/70-vfio-user-bridge.rules
# (from the source template, paths pointing into the build tree) in
# /run/udev/rules.d and a policy in /run. systemd itself cannot run here
# (the guest's PID 1 is the testbed's init), so this script stands in for
# it: it reads SYSTEMD_WANTS from the udev database and starts the exact
# ExecStart= of udev/vfio-user-bridge@.service with %I substituted, under
# the unit's LimitMEMLOCK and RuntimeDirectory, with $NOTIFY_SOCKET.
#
#  1. edu is unbound and bound to vfio-pci again (real kernel uevents): the
#     rule wants vfio-user-bridge@<edu>.service; started from the unit's
#     command line, the bridge takes socket, mode, group, allow-list and
#     user from the policy, signals READY=1, serves a client after dropping
#     root, and refuses a uid outside the allow-list.
#  2. edu is unbound while a client holds DMA and an MSI: the bridge tears
#     the client down, closes the device (so the unbind completes) and exits
#     with status 3; udev then marks the device not ready.
#  3. nvme ("bind": true) is released from vfio-pci and "appears" (add): the
#     rule's helper binds it to vfio-pci and the bind event wants its unit.
#  4. a function the policy does not name is left alone.
# e2e-group: host
# e2e-cost: 40
. "$VUB_SRC/tests/e2e/lib.sh"

CHECK=$VUB_BUILD/udev/vfio-user-export-check
require "$VUB_BRIDGE" "$VUB_PROBE" "$CHECK"
udevd_require

W=/run/vub-udev
RULES=/run/udev/rules.d/70-vfio-user-bridge.rules
POLICY=$W/policy.json
UNIT=$W/vfio-user-bridge@.service
XGROUP=4242
mkdir -p $W /run/udev/rules.d
SYS=/sys/bus/pci/devices
prop() { udevadm info -q property -p "$SYS/$1" 2>/dev/null | sed -n "s/^$2=//p"; }

cat >$POLICY <<EOF
{
  "version": 1,
  "defaults": { "socket_group": $XGROUP, "socket_mode": "0660", "allow_uids": [0] },
  "devices": [
    { "match": { "address": "$VUB_EDU" }, "user": "nobody" },
    { "match": { "address": "$VUB_NVME" }, "bind": true }
  ]
}
EOF
subst() {
  sed -e "s|@VUB_EXPORT_CHECK@|$CHECK|g" -e "s|@VUB_POLICY@|$POLICY|g" \
      -e "s|@VUB_BRIDGE@|$VUB_BRIDGE|g" -e "s|@VUB_DOCDIR@|$VUB_SRC/docs|g" "$1"
}
subst "$VUB_SRC/udev/70-vfio-user-bridge.rules.in" >$RULES
subst "$VUB_SRC/udev/vfio-user-bridge@.service.in" >$UNIT
check "the rule and unit have no unsubstituted @VAR@" sh -c "! grep -q '@VUB_' $RULES $UNIT"

# ---- udevadm test: what the rules do, without a daemon ----------------------
udevadm test --action=bind "$SYS/$VUB_EDU" >$VUB_OUT/udevadm-test.log 2>&1
check "udevadm test: the rule wants vfio-user-bridge@$VUB_EDU.service" \
  grep -q "SYSTEMD_WANTS=vfio-user-bridge@$VUB_EDU.service" $VUB_OUT/udevadm-test.log

# ---- a real udevd --------------------------------------------------------------
# Whatever happens, both devices are left on vfio-pci for the next scenario.
udevd_start $RULES

# ---- 1. bind -> wanted unit -> the unit's command line ------------------------
echo "$VUB_EDU" >/sys/bus/pci/drivers/vfio-pci/unbind
udev_settle
check "after unbind: edu matched but not ready (SYSTEMD_READY=0)" \
  test "$(prop $VUB_EDU SYSTEMD_READY)" = 0
echo "$VUB_EDU" >/sys/bus/pci/drivers_probe
udev_settle
check "edu is bound to vfio-pci again" test "$(pci_driver $VUB_EDU)" = vfio-pci
check "udev: VFIO_USER_EXPORT=1" test "$(prop $VUB_EDU VFIO_USER_EXPORT)" = 1
check "udev: tagged for systemd ($(prop $VUB_EDU TAGS))" \
  sh -c "udevadm info -q property -p $SYS/$VUB_EDU | grep -q '^TAGS=.*:systemd:'"
WANTS=$(prop $VUB_EDU SYSTEMD_WANTS)
check "udev: SYSTEMD_WANTS=vfio-user-bridge@$VUB_EDU.service ($WANTS)" \
  test "$WANTS" = "vfio-user-bridge@$VUB_EDU.service"
check "udev: not marked unready" test -z "$(prop $VUB_EDU SYSTEMD_READY)"

# The service manager's part, from the unit file.
inst=${WANTS#vfio-user-bridge@}; inst=${inst%.service}
EXEC=$(sed -n 's/^ExecStart=//p' $UNIT)
EXEC=${EXEC//%I/$inst}
echo "ExecStart: $EXEC"
check "the unit runs the bridge with --policy, --device and --fd-store" \
  test "$EXEC" = "$VUB_BRIDGE --policy $POLICY --device $VUB_EDU --fd-store"
check "the unit gives the bridge a file descriptor store" \
  grep -qx "FileDescriptorStoreMax=8192" $UNIT
check "the unit is Type=notify" grep -qx "Type=notify" $UNIT
check "the unit sets LimitMEMLOCK=infinity" grep -qx "LimitMEMLOCK=infinity" $UNIT
check "the unit treats status 3 as success, no restart" \
  sh -c "grep -qx 'SuccessExitStatus=3' $UNIT && grep -qx 'RestartPreventExitStatus=2 3' $UNIT"
mkdir -p -m 0755 /run/vfio-user   # RuntimeDirectory=vfio-user
NOTIFY=$W/notify.sock
PY=/usr/bin/python3
if [ -x $PY ]; then
  $PY -c '
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)   # as /run/systemd/notify: the bridge sends after dropping root
while True:
    m = s.recv(4096).decode()
    print(m, flush=True)
    if "READY=1" in m:
        break
' $NOTIFY >$W/notify.log 2>&1 &
  NPID=$!
  for i in $(seq 50); do [ -S $NOTIFY ] && break; sleep 0.1; done
fi
(ulimit -l unlimited && NOTIFY_SOCKET=$NOTIFY exec $EXEC) >$VUB_OUT/bridge-udev.log 2>&1 &
BPID=$!
VUB_BRIDGE_PID[udev]=$BPID   # killed by lib.sh at exit if still running
SOCK=/run/vfio-user/$VUB_EDU.sock
for i in $(seq 300); do [ -S $SOCK ] && break; kill -0 $BPID 2>/dev/null || break; sleep 0.1; done
check "the bridge listens on the policy's socket $SOCK" test -S $SOCK
if [ -x $PY ]; then
  for i in $(seq 100); do grep -q READY=1 $W/notify.log && break; sleep 0.1; done
  check "READY=1 reached \$NOTIFY_SOCKET" grep -q READY=1 $W/notify.log
  kill $NPID 2>/dev/null; wait $NPID 2>/dev/null
else
  echo "note: no /usr/bin/python3; READY=1 not checked here (unit tests do)"
fi
check "socket mode 0660 (policy)" test "$(stat -c %a $SOCK)" = 660
check "socket group $XGROUP (policy), owner root" test "$(stat -c %u:%g $SOCK)" = "0:$XGROUP"
NOBODY=$(id -u nobody)
check "the bridge dropped to nobody (uid $NOBODY)" \
  sh -c "grep -q '^Uid:[[:space:]]*$NOBODY[[:space:]]*$NOBODY[[:space:]]*$NOBODY' /proc/$BPID/status"
check "no capabilities left" sh -c "grep -q '^CapEff:[[:space:]]*0*$' /proc/$BPID/status"
check "root (allowed) runs the edu self-test through the unprivileged bridge" \
  "$VUB_PROBE" --selftest edu $SOCK
# uid 1000 in group $XGROUP passes the socket mode but not the allow-list
setpriv --reuid=1000 --regid=$XGROUP --clear-groups "$VUB_PROBE" $SOCK >$VUB_OUT/refused.log 2>&1
check_fails "uid 1000 is refused" test $? -eq 0
sleep 0.3
check "the bridge logged the refusal" grep -q "refusing client pid [0-9]* uid 1000" $VUB_OUT/bridge-udev.log
# uid 1001 without the group cannot even connect (socket mode)
setpriv --reuid=1001 --regid=1001 --clear-groups "$VUB_PROBE" $SOCK >$VUB_OUT/refused2.log 2>&1
check_fails "uid 1001 outside the group cannot connect" test $? -eq 0
check "... because of the socket's permissions" grep -qi "permission denied" $VUB_OUT/refused2.log

# ---- 2. unbind while a client holds the device ------------------------------------
"$VUB_PROBE" --selftest edu --hold $SOCK >$VUB_OUT/hold.log 2>&1 &
HPID=$!
for i in $(seq 600); do grep -q '^holding' $VUB_OUT/hold.log && break; kill -0 $HPID 2>/dev/null || break; sleep 0.1; done
check "a client holds DMA and an armed MSI" grep -q '^holding' $VUB_OUT/hold.log
msi() { grep -c "vfio-msi.*($VUB_EDU)" /proc/interrupts; }
check "the kernel has its MSI vector" test "$(msi)" -eq 1
# The kernel blocks this write until the bridge lets go of the device.
timeout 60 sh -c "echo $VUB_EDU > /sys/bus/pci/drivers/vfio-pci/unbind" &
UPID=$!
for i in $(seq 300); do kill -0 $BPID 2>/dev/null || break; sleep 0.1; done
if kill -0 $BPID 2>/dev/null; then
  fail "the bridge is still running 30 s after the unbind"
  kill -TERM $BPID
fi
wait $BPID; rc=$?
unset "VUB_BRIDGE_PID[udev]"
check "the bridge exited with status 3 (device gone), got $rc" test $rc -eq 3
wait $UPID; urc=$?
check "the unbind completed" test $urc -eq 0
check "edu is unbound now" test -z "$(pci_driver $VUB_EDU)"
check "the log says why it exited" grep -Eq "(asks for $VUB_EDU back|$VUB_EDU was unbound).*exiting \(status 3\)" $VUB_OUT/bridge-udev.log
check "the client was torn down first" grep -q "disconnected" $VUB_OUT/bridge-udev.log
check "its MSI vector is gone" test "$(msi)" -eq 0
kill -KILL $HPID 2>/dev/null; wait $HPID 2>/dev/null
udev_settle
check "udev: edu not ready after the unbind" test "$(prop $VUB_EDU SYSTEMD_READY)" = 0
check "udev: VFIO_USER_EXPORT=0" test "$(prop $VUB_EDU VFIO_USER_EXPORT)" = 0
echo "$VUB_EDU" >/sys/bus/pci/drivers_probe   # driver_override is still vfio-pci
udev_settle
check "edu back on vfio-pci for the next scenario" test "$(pci_driver $VUB_EDU)" = vfio-pci

# ---- 3. "bind": true -----------------------------------------------------------------
echo >$SYS/$VUB_NVME/driver_override
echo "$VUB_NVME" >/sys/bus/pci/drivers/vfio-pci/unbind
udev_settle
check "nvme released by hand stays released (no binding on unbind events)" \
  test -z "$(pci_driver $VUB_NVME)"
udevadm trigger --action=add "$SYS/$VUB_NVME"
udev_settle
check "the rule bound nvme to vfio-pci as it appeared" test "$(pci_driver $VUB_NVME)" = vfio-pci
check "through driver_override" test "$(cat $SYS/$VUB_NVME/driver_override)" = vfio-pci
check "udev: nvme wants vfio-user-bridge@$VUB_NVME.service" \
  test "$(prop $VUB_NVME SYSTEMD_WANTS)" = "vfio-user-bridge@$VUB_NVME.service"

# ---- 4. not in the policy --------------------------------------------------------------
other=""
for d in $SYS/*; do
  a=$(basename $d)
  [ "$a" != "$VUB_EDU" ] && [ "$a" != "$VUB_NVME" ] && { other=$a; break; }
done
if [ -n "$other" ]; then
  udevadm trigger --action=change "$SYS/$other"
  udev_settle
  check "$other (not in the policy): VFIO_USER_MATCH=0" test "$(prop $other VFIO_USER_MATCH)" = 0
  check "$other: no SYSTEMD_WANTS from us" sh -c "! udevadm info -q property -p $SYS/$other | grep -q vfio-user-bridge"
fi

udevd_stop
rm -rf $W
finish
