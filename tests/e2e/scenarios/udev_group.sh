#!/usr/bin/env bash
# Auto-export of a shared IOMMU group through udev (testbed --topology
# shared: edu and nvme behind a PCI bridge, one group). A real
# systemd-udevd runs the project's rule with a policy that exports both;
# this script stands in for systemd (as udev_export does):
#  1. udevadm test on edu: the rule wants vfio-user-bridge-group@<group>,
#     not the per-function unit;
#  2. nvme is unbound from vfio-pci: udev marks it not ready and wants no
#     unit, while edu, still bound, wants the group's unit (the first
#     member bound starts it);
#  3. the group unit's ExecStart (with %I) serves edu alone; nvme bound to
#     vfio-pci then wants the group's unit too, and the running daemon
#     picks it up: nvme's socket appears with the mode its entry names and
#     serves (status, a self-test); unbound, nvme ends alone; bound again,
#     it is served again; with both unbound the daemon exits 3.
# e2e-topology: shared
# e2e-group: shared
# e2e-cost: 50
. "$VUB_SRC/tests/e2e/lib.sh"

CHECK=$VUB_BUILD/udev/vfio-user-export-check
require "$VUB_BRIDGE" "$CHECK" "$VUB_PROBE"
udevd_require
group_of() { basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"; }
g=$(group_of "$VUB_EDU")
check "edu and nvme are in one IOMMU group ($g)" test "$g" = "$(group_of "$VUB_NVME")"

W=/run/vub-udev-group
RULES=/run/udev/rules.d/70-vfio-user-bridge.rules
POLICY=$W/policy.json
UNIT=$W/vfio-user-bridge-group@.service
mkdir -p $W /run/udev/rules.d
SYS=/sys/bus/pci/devices
prop() { udevadm info -q property -p "$SYS/$1" 2>/dev/null | sed -n "s/^$2=//p"; }
cat >$POLICY <<EOF
{
  "version": 1,
  "defaults": { "group_clients": "same-uid" },
  "devices": [
    { "match": { "address": "$VUB_EDU" }, "socket": "/run/vfio-user/g-edu.sock",
      "socket_mode": "0600" },
    { "match": { "address": "$VUB_NVME" }, "socket": "/run/vfio-user/g-nvme.sock",
      "socket_mode": "0660" }
  ]
}
EOF
subst() {
  sed -e "s|@VUB_EXPORT_CHECK@|$CHECK|g" -e "s|@VUB_POLICY@|$POLICY|g" \
      -e "s|@VUB_BRIDGE@|$VUB_BRIDGE|g" -e "s|@VUB_DOCDIR@|$VUB_SRC/docs|g" "$1"
}
subst "$VUB_SRC/udev/70-vfio-user-bridge.rules.in" >$RULES
subst "$VUB_SRC/udev/vfio-user-bridge-group@.service.in" >$UNIT
GUNIT="vfio-user-bridge-group@$g.service"

# ---- 1. udevadm test ------------------------------------------------------------
udevadm test --action=bind "$SYS/$VUB_EDU" >$VUB_OUT/udevadm-test.log 2>&1
check "udevadm test: edu wants $GUNIT" grep -q "SYSTEMD_WANTS=$GUNIT" $VUB_OUT/udevadm-test.log
check "udevadm test: not the per-function unit" \
  sh -c "! grep -q 'SYSTEMD_WANTS=vfio-user-bridge@' $VUB_OUT/udevadm-test.log"

# ---- 2. a real udevd ------------------------------------------------------------
udevd_start $RULES   # stopped at exit, both devices back on vfio-pci
echo "$VUB_NVME" >/sys/bus/pci/drivers/vfio-pci/unbind
udev_settle
check "nvme unbound: not ready, no unit wanted" \
  sh -c "test '$(prop $VUB_NVME SYSTEMD_READY)' = 0 && test -z '$(prop $VUB_NVME VFIO_USER_UNIT)'"
udevadm test --action=change "$SYS/$VUB_EDU" >$VUB_OUT/udevadm-test-edu.log 2>&1
check "edu, bound while nvme has no driver, wants $GUNIT (the first member bound starts it)" \
  grep -q "SYSTEMD_WANTS=$GUNIT" $VUB_OUT/udevadm-test-edu.log

# ---- 3. the group unit's command line, members bound later ---------------------------
EXEC=$(sed -n 's/^ExecStart=//p' $UNIT)
EXEC=${EXEC//%I/$g}
check "the unit runs the bridge with --policy and --iommu-group" \
  test "$EXEC" = "$VUB_BRIDGE --policy $POLICY --iommu-group $g"
mkdir -p -m 0755 /run/vfio-user
LOG=$VUB_OUT/bridge-group.log
(ulimit -l unlimited && exec $EXEC) >$LOG 2>&1 &
BPID=$!
VUB_BRIDGE_PID[group]=$BPID
wait_sock() {   # wait_sock PATH: up to 30 s while the daemon runs
  for i in $(seq 300); do [ -S "$1" ] && return 0; kill -0 $BPID 2>/dev/null || return 1; sleep 0.1; done
  return 1
}
ES=/run/vfio-user/g-edu.sock NS=/run/vfio-user/g-nvme.sock
check "the group daemon serves edu alone ($ES)" wait_sock $ES
check_fails "no socket for nvme, which has no driver" test -e $NS
check "the policy's group_clients is the daemon's rule" grep -q "clients: same-uid" $LOG
check "its log: nvme not served until it is bound to vfio-pci" \
  grep -q "$VUB_NVME is exported by the policy but bound to no driver, not vfio-pci: not served until it is bound" $LOG
echo "$VUB_NVME" >/sys/bus/pci/drivers_probe
udev_settle
check "nvme is bound to vfio-pci again" test "$(pci_driver $VUB_NVME)" = vfio-pci
WANTS=$(prop $VUB_NVME SYSTEMD_WANTS)
check "udev: nvme wants $GUNIT too ($WANTS)" test "$WANTS" = "$GUNIT"
check "udev: VFIO_USER_GROUP=$g" test "$(prop $VUB_NVME VFIO_USER_GROUP)" = "$g"
check "the running daemon picked nvme up: its socket appears" wait_sock $NS
check "its log says so" \
  grep -q "serving $VUB_NVME on $NS (IOMMU group $g; bound to vfio-pci after the daemon started; 2 functions served)" $LOG
check "edu's socket mode 0600, nvme's 0660 (each its own entry)" \
  sh -c "test $(stat -c %a $ES 2>/dev/null) = 600 && test $(stat -c %a $NS 2>/dev/null) = 660"
check "status answers on edu's socket" "$VUB_BRIDGE" status --socket $ES
check "status answers on nvme's socket" "$VUB_BRIDGE" status --socket $NS
check "nvme, bound after the daemon started, serves (self-test)" \
  "$VUB_PROBE" --selftest nvme --expect-sparse-msix --expect-serial "$VUB_NVME_SERIAL" $NS

timeout 60 sh -c "echo $VUB_NVME >/sys/bus/pci/drivers/vfio-pci/unbind"
for i in $(seq 100); do [ -e $NS ] || break; sleep 0.1; done
check "nvme unbound: it ends alone (its socket goes)" test ! -e $NS
check "edu is still served" "$VUB_BRIDGE" status --socket $ES
echo "$VUB_NVME" >/sys/bus/pci/drivers_probe
check "nvme bound again: served again" wait_sock $NS
check "status answers on nvme's socket again" "$VUB_BRIDGE" status --socket $NS
check "the daemon still runs" kill -0 $BPID

timeout 60 sh -c "echo $VUB_NVME >/sys/bus/pci/drivers/vfio-pci/unbind"
timeout 60 sh -c "echo $VUB_EDU >/sys/bus/pci/drivers/vfio-pci/unbind"
for i in $(seq 300); do kill -0 $BPID 2>/dev/null || break; sleep 0.1; done
wait $BPID; st=$?
unset "VUB_BRIDGE_PID[group]"
check "both unbound: the group daemon exits 3, which the unit does not restart ($st)" test $st = 3
check "its log says why" grep -q "no function of IOMMU group $g is served any more" $LOG
sed 's/^/  | /' $LOG
finish
