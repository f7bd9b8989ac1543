#!/usr/bin/env bash
# Auto-export of a shared IOMMU group through udev (testbed --topology
# shared: edu and nvme behind a PCI bridge, one group). A real
# systemd-udevd runs the project's rule with a policy that exports both;
# this script stands in for systemd (as udev_export does):
#  1. udevadm test on edu: the rule wants vfio-user-bridge-group@<group>,
#     not the per-function unit;
#  2. nvme is unbound from vfio-pci: udev marks it not ready and wants no
#     unit; bound again, the last function of the group on vfio-pci wants
#     the group's unit;
#  3. the group unit's ExecStart (with %I) serves both functions, each on
#     the socket and with the mode the policy names, and `status` answers
#     on each.
# e2e-topology: shared
# e2e-group: shared
# e2e-cost: 30
. "$VUB_SRC/tests/e2e/lib.sh"

CHECK=$VUB_BUILD/udev/vfio-user-export-check
require "$VUB_BRIDGE" "$CHECK"
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
echo "$VUB_NVME" >/sys/bus/pci/drivers_probe
udev_settle
check "nvme is bound to vfio-pci again" test "$(pci_driver $VUB_NVME)" = vfio-pci
WANTS=$(prop $VUB_NVME SYSTEMD_WANTS)
check "udev: nvme, the last of the group bound, wants $GUNIT ($WANTS)" test "$WANTS" = "$GUNIT"
check "udev: VFIO_USER_GROUP=$g" test "$(prop $VUB_NVME VFIO_USER_GROUP)" = "$g"

# ---- 3. the group unit's command line ---------------------------------------------
EXEC=$(sed -n 's/^ExecStart=//p' $UNIT)
EXEC=${EXEC//%I/$g}
check "the unit runs the bridge with --policy and --iommu-group" \
  test "$EXEC" = "$VUB_BRIDGE --policy $POLICY --iommu-group $g"
mkdir -p -m 0755 /run/vfio-user
(ulimit -l unlimited && exec $EXEC) >$VUB_OUT/bridge-group.log 2>&1 &
BPID=$!
VUB_BRIDGE_PID[group]=$BPID
for s in /run/vfio-user/g-edu.sock /run/vfio-user/g-nvme.sock; do
  for i in $(seq 300); do [ -S $s ] && break; kill -0 $BPID 2>/dev/null || break; sleep 0.1; done
  check "the group daemon listens on $s" test -S $s
done
check "edu's socket mode 0600, nvme's 0660 (each its own entry)" \
  sh -c "test $(stat -c %a /run/vfio-user/g-edu.sock 2>/dev/null) = 600 && test $(stat -c %a /run/vfio-user/g-nvme.sock 2>/dev/null) = 660"
check "status answers on edu's socket" "$VUB_BRIDGE" status --socket /run/vfio-user/g-edu.sock
check "status answers on nvme's socket" "$VUB_BRIDGE" status --socket /run/vfio-user/g-nvme.sock
check "one daemon serves both (log)" grep -q "function 2 of 2" $VUB_OUT/bridge-group.log
kill -TERM $BPID
wait $BPID; st=$?
check "SIGTERM: the group daemon exits 0 ($st)" test $st = 0
cat $VUB_OUT/bridge-group.log
finish
