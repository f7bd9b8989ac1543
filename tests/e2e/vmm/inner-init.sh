#!/bin/busybox sh
# SPDX-License-Identifier: MIT
#
# /init of the INNER guest: the Linux guest that QEMU's vfio-user-pci client
# boots on the devices the bridge serves. It uses the nvme with Linux's own,
# unmodified driver and the edu through a sysfs mapping of its BAR0, and
# reports on the serial console:
#
#   VMM-RESULT <name> PASS|FAIL <details>      one per check group
#   VMM: ...                                   progress
#
# Kernel command line (set by run-inner.sh):
#   vmm.mode=io     nvme I/O once (result nvme_io), power off
#   vmm.mode=edu    edu checks (result edu), power off
#   vmm.mode=reboot boot 1: nvme I/O and edu (nvme_io, edu), then a mark on
#                   the disk and a reboot; boot 2 (the mark is there): both
#                   again (reboot_nvme_io, reboot_edu), power off
#   vmm.mode=loop   nvme I/O in a loop until the VMM is killed
#   vmm.mode=viommu with a guest IOMMU (intel_iommu=on): boot 1: nvme I/O
#                   (viommu_io), driver unbind, rebind and I/O again
#                   (viommu_rebind_io), a reboot; boot 2: I/O (viommu_reboot_io).
#                   "VMM-CHECKPOINT <step>" after each, then idle until the
#                   host has taken its snapshot of the bridge's mappings (a
#                   line on the control port, below) and
#                   "VMM-CHECKPOINT-END <step>"
#   vmm.mode=viommu_edu  with a guest IOMMU: the edu bound to vfio-pci, its
#                   DMA engine through the guest IOMMU (guest-tool edu-vfio,
#                   result viommu_edu), checkpoints edu_mapped and edu_done
#   vmm.mode=side (or viommu_side, with a guest IOMMU) the VM side-by-side
#                   bench (tools/bench/vm-side.sh): two nvme controllers, the
#                   bridged one (serial vmm.serial) and one passed directly;
#                   the time each block device appeared ("VMM-SIDE-READY"),
#                   then vmm.rounds rounds of guest-tool side, power off
#   vmm.run=TOKEN   names this run (the reboot mark carries it)
#   vmm.serial=S    the nvme's serial number
#   vmm.dmesg=1     the kernel's log at the power off: on the nvme at 14 MiB
#                   (at most 2 MiB, NUL-padded; read it from the testbed's
#                   image, OUT/nvme.img) when there is one, else on the
#                   console (lines "VMM-DMESG ..."). With initcall_debug and
#                   log_buf_len=4M in VMM_KARGS: where the boot's time went
#                   (docs/vmm.md). The console costs ~2 ms per
#                   byte under KVM in the TCG testbed guest (each byte is an
#                   exit to the inner QEMU), so the log goes to the disk.
#
# The control port: a second serial port (ttyS1; lib-vmm.sh connects it to
# a pair of FIFOs for the checkpoint modes) on which the host writes one
# line per checkpoint once it is done with it. Without the port, or without
# a line within 120 s, a checkpoint idles 20 s / goes on (the host then sees
# CHECKPOINT-END before its snapshot and says so).
#
# Disk layout (the testbed's image: LBA 0..2047 hold a known pattern):
#   LBA 0..2047 read-only pattern, 4 MiB: reboot mark, 8 MiB: rw area of the
#   checks, 12 MiB: loop area, 14 MiB: the kernel log (vmm.dmesg=1).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

MODE=io RUN=none SERIAL= ROUNDS=4 DMESG=
for a in $(cat /proc/cmdline); do
  case "$a" in
    vmm.mode=*) MODE=${a#vmm.mode=} ;;
    vmm.run=*) RUN=${a#vmm.run=} ;;
    vmm.serial=*) SERIAL=${a#vmm.serial=} ;;
    vmm.rounds=*) ROUNDS=${a#vmm.rounds=} ;;
    vmm.dmesg=1) DMESG=1 ;;
  esac
done
read up _ </proc/uptime
echo "VMM: init at ${up}s, mode $MODE, run $RUN"

DMESG_LBA=28672    # 14 MiB
show_dmesg() {
  [ -n "$DMESG" ] || return 0
  if [ -b "$DEV" ]; then
    dmesg | head -c 2097152 >/dmesg.txt
    dd if=/dmesg.txt of="$DEV" bs=512 seek=$DMESG_LBA conv=sync,fsync 2>/dev/null
    echo "VMM: dmesg ($(wc -c </dmesg.txt) bytes) on $DEV at LBA $DMESG_LBA"
  else
    dmesg | sed 's/^/VMM-DMESG /'
  fi
}
off() { sync; show_dmesg; echo "VMM: power off"; poweroff -f; sleep 10; }
result() { echo "VMM-RESULT $*"; }
MARK_LBA=8192      # 4 MiB
RW_OFF=8388608     # 8 MiB
LOOP_OFF=12582912  # 12 MiB

for m in $(cat /lib/modules/order); do
  case "$m" in
    *vfio*|*irqbypass*) [ "$MODE" = viommu_edu ] || continue ;;
  esac
  p=
  # the guest IOMMU has no interrupt remapping (QEMU's intel-iommu under
  # KVM without a split irqchip): VFIO refuses a container without this
  case "$m" in *vfio_iommu_type1*) p=allow_unsafe_interrupts=1 ;; esac
  insmod /lib/modules/$m $p || echo "VMM: insmod $m failed"
done

# The nvme's block device (the driver probes asynchronously).
DEV=/dev/nvme0n1
if [ "$MODE" != edu ] && [ "$MODE" != viommu_edu ]; then
  i=0
  while [ ! -b $DEV ] && [ $i -lt 600 ]; do
    # A probe that failed (no DMA: Identify times out) will not come back.
    dmesg | grep -q 'nvme.*probe failure' && break
    sleep 0.2; i=$((i + 1))
  done
  read up _ </proc/uptime
  echo "VMM: $DEV present: $([ -b $DEV ] && echo yes || echo no) at ${up}s"
fi

# Sum of the nvme's interrupt counts over all CPUs and vectors.
nvme_irqs() {
  awk '/nvme/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }' /proc/interrupts
}

# One round of nvme checks; prints FAIL lines, returns the number of failures.
nvme_checks() {
  local seed=$1 f=0 before after p addr
  if [ ! -b $DEV ]; then echo "FAIL $DEV missing"; dmesg | tail -n 20; return 1; fi
  p=$(cat /sys/block/${DEV##*/}/device/serial 2>/dev/null | tr -d ' ')
  [ -z "$SERIAL" ] || [ "$p" = "$SERIAL" ] || { echo "FAIL serial '$p', want '$SERIAL'"; f=$((f + 1)); }
  addr=$(basename "$(readlink /sys/block/${DEV##*/}/device/device)")
  echo "VMM: nvme at $addr: $(cat /sys/bus/pci/devices/$addr/vendor):$(cat /sys/bus/pci/devices/$addr/device) driver $(basename "$(readlink /sys/bus/pci/devices/$addr/driver)")"
  before=$(nvme_irqs)
  /bin/guest-tool readlba $DEV 0 "VUB-E2E-NVME LBA 0" || { echo "FAIL LBA 0 lacks the pattern"; f=$((f + 1)); }
  /bin/guest-tool verify $DEV 0 2048 || { echo "FAIL pattern LBA 0..2047"; f=$((f + 1)); }
  /bin/guest-tool rw $DEV $RW_OFF 1048576 $seed || { echo "FAIL rw 1 MiB"; f=$((f + 1)); }
  /bin/guest-tool rw $DEV $((RW_OFF + 1048576)) 4096 $((seed + 1)) || { echo "FAIL rw 4 KiB"; f=$((f + 1)); }
  after=$(nvme_irqs)
  echo "VMM: nvme interrupts $before -> $after"
  [ "$after" -gt "$before" ] || { echo "FAIL nvme interrupt count did not grow"; f=$((f + 1)); }
  # Completions the driver had to poll for mean the interrupts did not come.
  if dmesg | grep -i nvme | grep -qiE 'timeout|polled|abort|reset'; then
    echo "FAIL nvme driver timeouts:"; dmesg | grep -i nvme | tail -n 5; f=$((f + 1))
  fi
  return $f
}

run_nvme() {
  local name=$1 seed=$2 out f
  # (shown as it goes: a check that hangs is visible on the console)
  nvme_checks $seed 2>&1 | tee /nvme-checks.out | sed 's/^/VMM:   /'
  out=$(cat /nvme-checks.out)
  f=$(grep -c '^FAIL' /nvme-checks.out)
  if [ "$f" -eq 0 ]; then result $name PASS; else result $name FAIL "$(echo "$out" | grep FAIL | head -n 3 | tr '\n' ';')"; fi
}

run_edu() {
  local name=$1 d addr= out f
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat $d/vendor):$(cat $d/device)" = 0x1234:0x11e8 ] && addr=${d##*/}
  done
  if [ -z "$addr" ]; then
    result $name FAIL "no 1234:11e8 device"; return
  fi
  echo "VMM: edu at $addr"
  out=$(/bin/guest-tool edu $addr 2>&1); f=$?
  echo "$out" | sed 's/^/VMM:   /'
  if [ $f -eq 0 ]; then result $name PASS "at $addr"; else result $name FAIL "$(echo "$out" | grep FAIL | head -n 3 | tr '\n' ';')"; fi
}

# fd 3: the control port, when there is one (guest-tool inherits it)
CTL=
if [ -c /dev/ttyS1 ] && (exec 3</dev/ttyS1) 2>/dev/null; then
  exec 3</dev/ttyS1
  stty -echo <&3 2>/dev/null
  CTL=1
fi
checkpoint() {
  echo "VMM-CHECKPOINT $1"
  if [ -n "$CTL" ]; then
    read -t 120 _go <&3 || echo "VMM: no word from the host at checkpoint $1 in 120 s"
  else
    sleep 20
  fi
  echo "VMM-CHECKPOINT-END $1"
}

# The nvme's block device after a rebind (the instance number may change).
find_nvme_dev() {
  local i=0 d
  while [ $i -lt 600 ]; do
    for d in /dev/nvme*n1; do
      [ -b "$d" ] && { DEV=$d; return 0; }
    done
    dmesg | grep -q 'nvme.*probe failure' && return 1
    sleep 0.2; i=$((i + 1))
  done
  return 1
}

case "$MODE" in
  side|viommu_side)
    echo "VMM: $(nproc) CPUs, $(ls /sys/class/iommu 2>/dev/null | wc -l) IOMMU(s)"
    bridged= direct= i=0
    while [ $i -lt 600 ] && { [ -z "$bridged" ] || [ -z "$direct" ]; }; do
      for d in /dev/nvme*n1; do
        [ -b "$d" ] || continue
        case "$d" in "$bridged"|"$direct") continue ;; esac
        read up _ </proc/uptime
        p=$(cat /sys/block/${d##*/}/device/serial 2>/dev/null | tr -d ' ')
        if [ "$p" = "$SERIAL" ]; then bridged=$d; w=bridge; else direct=$d; w=direct; fi
        echo "VMM-SIDE-READY $w $d ${up}"
      done
      sleep 0.1; i=$((i + 1))
    done
    if [ -z "$bridged" ] || [ -z "$direct" ]; then
      result side FAIL "bridged '$bridged' direct '$direct'"; dmesg | tail -n 20; off
    fi
    if /bin/guest-tool side "$bridged" "$direct" "$ROUNDS"; then result side PASS; else result side FAIL "guest-tool side"; fi
    off ;;
  viommu)
    echo "VMM: $(nproc) CPUs, $(ls /sys/class/iommu 2>/dev/null | wc -l) IOMMU(s), cmdline: $(cat /proc/cmdline)"
    mark=$( [ -b $DEV ] && /bin/guest-tool getmark $DEV $MARK_LBA 2>/dev/null)
    if [ "$mark" = "viommu $RUN" ]; then
      echo "VMM: boot 2 (after the guest reboot)"
      run_nvme viommu_reboot_io 3000
      checkpoint boot2
      /bin/guest-tool setmark $DEV $MARK_LBA "done $RUN" || echo "VMM: clearing the mark failed"
      off
    fi
    echo "VMM: boot 1"
    run_nvme viommu_io 1000
    checkpoint io
    addr=$(basename "$(readlink /sys/block/${DEV##*/}/device/device)")
    echo "VMM: unbinding $addr from nvme"
    echo "$addr" >/sys/bus/pci/drivers/nvme/unbind
    i=0; while [ -b $DEV ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
    echo "VMM: $DEV gone: $([ -b $DEV ] && echo no || echo yes)"
    checkpoint unbound
    echo "$addr" >/sys/bus/pci/drivers/nvme/bind
    find_nvme_dev
    read up _ </proc/uptime
    echo "VMM: rebound: $DEV present: $([ -b $DEV ] && echo yes || echo no) at ${up}s"
    run_nvme viommu_rebind_io 2000
    checkpoint rebind
    if /bin/guest-tool setmark $DEV $MARK_LBA "viommu $RUN"; then
      echo "VMM: rebooting"
      sync; reboot -f
    fi
    result viommu_reboot_io FAIL "could not write the reboot mark"
    off ;;
  viommu_edu)
    addr=
    for d in /sys/bus/pci/devices/*; do
      [ "$(cat $d/vendor):$(cat $d/device)" = 0x1234:0x11e8 ] && addr=${d##*/}
    done
    if [ -z "$addr" ]; then result viommu_edu FAIL "no 1234:11e8 device"; off; fi
    echo "VMM: edu at $addr, IOMMU group $(basename "$(readlink /sys/bus/pci/devices/$addr/iommu_group)")"
    echo vfio-pci >/sys/bus/pci/devices/$addr/driver_override
    echo "$addr" >/sys/bus/pci/drivers_probe
    # (not captured: its checkpoint line must reach the console in time)
    /bin/guest-tool edu-vfio $addr; f=$?
    if [ $f -eq 0 ]; then result viommu_edu PASS "at $addr"; else result viommu_edu FAIL "see the ok/FAIL lines above"; fi
    checkpoint edu_done
    off ;;
  reboot)
    mark=$( [ -b $DEV ] && /bin/guest-tool getmark $DEV $MARK_LBA 2>/dev/null)
    if [ "$mark" = "reboot $RUN" ]; then
      echo "VMM: boot 2 (after the guest reboot)"
      run_nvme reboot_nvme_io 3000
      run_edu reboot_edu
      /bin/guest-tool setmark $DEV $MARK_LBA "done $RUN" || echo "VMM: clearing the mark failed"
      off
    fi
    echo "VMM: boot 1"
    run_nvme nvme_io 1000
    run_edu edu
    if /bin/guest-tool setmark $DEV $MARK_LBA "reboot $RUN"; then
      echo "VMM: rebooting"
      sync; reboot -f
    fi
    result reboot_nvme_io FAIL "could not write the reboot mark"
    off ;;
  loop)
    echo "VMM: nvme I/O loop on $DEV (until the VMM dies)"
    /bin/guest-tool loop $DEV $LOOP_OFF 262144
    result loop FAIL "the I/O loop stopped"
    off ;;
  io)
    run_nvme nvme_io 5000
    off ;;
  edu)
    run_edu edu
    off ;;
  *)
    echo "VMM: unknown mode $MODE"; off ;;
esac
