#!/usr/bin/env bash
# Real-kernel scenarios for dmulogd in QEMU (`make vm-test`).
#
#   tests/vm/run-suite.sh [BOOT...]     default: every boot below
#
# Each boot is one VM run executing a list of guest tests
# (tests/vm/guest/t-*.sh); chains of boots (the power cut) run in order on the
# same disk images.  Chains run in parallel, VM_JOBS at a time (default: the
# number of CPUs, at most 4).  Serial logs: target/vm-logs/<boot>.log.
# README.md in this directory says what each scenario checks.  Boots named
# arm64* run an aarch64 guest (Debian's arm64 kernel under
# qemu-system-aarch64, target/static-aarch64/dmulogd); the others x86_64.
set -u
cd "$(dirname "$0")" || exit 1
. ./lib.sh

# boot name | guest tests | timeout (s) | expected PASS markers
# (a leading '-' on the markers: the boot ends in a power cut, no end marker)
BOOTS='
base|selftest,kbase,klogfail,mirror,deps|420|selftest k-core-nosync k-core-sync k-disk-sync k-disk-nosync k-logfail u-core-nosync u-core-sync u-disk-sync u-disk-nosync u-disk-default u-core-iflush u-disk-iflush k-deps deps
restart|restart|480|restart-disk restart-core restart-idle restart-dirty
more|reload,interop,logfail,doctables|480|reload-disk reload-core interop-setup interop-k2u interop-u2k interop-k2u-again logfail doc-table-1 doc-table-2 doc-table-3 doc-tables
powercut1|powercut1|420|-powercut-load
powercut2|pcdirty,powercut2|420|powercut-dirty powercut-recover
rpowercut1|rpowercut1|480|-restart-powercut-load
rpowercut2|rpowercut2|420|restart-powercut-recover
kpowercut1|kpowercut1|420|-k-powercut-load
kpowercut2|kpcdirty,kpowercut2|420|k-powercut-dirty k-powercut-recover
handover|handover|360|handover-kref handover-inspect handover-u2k2u handover-k2u2k
firstresume|ctrrestart,lostresume|360|ctr-restart-sync ctr-restart-default lost-resume overflow-writes
clearorder|kclearorder,uclearorder|360|k-clear-order-run u-clear-order-run k-clear-order u-clear-order
arm64|mirror,restart,interop|1500|u-core-nosync u-core-sync u-disk-sync u-disk-nosync u-disk-default u-core-iflush u-disk-iflush restart-disk restart-core restart-idle restart-dirty interop-setup interop-k2u interop-u2k interop-k2u-again
'
# chains: boots that share state run in order in one job (the slowest,
# the emulated arm64 one, first)
CHAINS='arm64 restart base more powercut1+powercut2 rpowercut1+rpowercut2 kpowercut1+kpowercut2 clearorder handover firstresume'

boot_field() { echo "$BOOTS" | awk -F'|' -v b="$1" -v f="$2" '$1 == b { print $f }'; }
boot_arch() { case $1 in arm64*) echo aarch64 ;; *) echo x86_64 ;; esac; }

wanted=" $* "
selected=
for ch in $CHAINS; do
  if [ $# -eq 0 ]; then selected="$selected $ch"; continue; fi
  for b in ${ch//+/ }; do
    case "$wanted" in *" $b "*) selected="$selected $ch"; break ;; esac
  done
done
[ -n "$selected" ] || vm_die "no such boot: $* (boots: $(echo "$BOOTS" | cut -d'|' -f1 | xargs))"

t_start=$SECONDS
arches=$(for ch in $selected; do for b in ${ch//+/ }; do boot_arch "$b"; done; done | sort -u)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dmulogd-vm.XXXXXX")
export VM_PIDFILE=$WORK/qemu.pids
cleanup() {
  local p
  if [ -f "$VM_PIDFILE" ]; then
    # shellcheck disable=SC2013  # pids, one a line
    for p in $(cat "$VM_PIDFILE"); do kill "$p" 2>/dev/null; done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'echo "vm: interrupted"; exit 130' INT TERM

# One kernel, base and initramfs per guest architecture.
declare -A KDIR_OF
for a in $arches; do
  vm_arch "$a"
  vm_setup
  if [ ! -x "$VM_DMULOGD" ]; then
    [ "$a" = x86_64 ] && vm_die "$VM_DMULOGD is missing: run 'make static' (make vm-test does)"
    vm_die "$VM_DMULOGD is missing: run 'make static ARCH=$a' (make vm-test does)"
  fi
  KDIR_OF[$a]=$VM_KDIR
  vm_initrd "$WORK/initrd-$a.gz"
  vm_say "$a: kernel $(cat "$VM_KDIR/release"), initramfs $(du -k "$WORK/initrd-$a.gz" | cut -f1) KiB, dmulogd $(du -k "$VM_DMULOGD" | cut -f1) KiB"
done
rm -f "$VM_LOGDIR"/*.log "$VM_LOGDIR"/*.secs

# run_chain CHAIN: boots in order; writes WORK/CHAIN.{out,pass,fail}.
run_chain() {
  local ch=$1 b tests tmo marks drives='' rc end ok=1 m np=0 nf=0
  for b in ${ch//+/ }; do
    tests=$(boot_field "$b" 2); tmo=$(boot_field "$b" 3); marks=$(boot_field "$b" 4)
    end=
    case "$marks" in -*) marks=${marks#-}; end=--no-end ;; esac
    case "$tests" in *powercut1) drives=$(vm_disks "$WORK/disks-$ch") ;; esac
    case "$b" in clearorder) drives=$(vm_disk "$WORK/disks-$ch/wlog.img" 96M) ;; esac
    if [ -z "$ok" ]; then
      echo "vm: boot $b: skipped (an earlier boot of its chain failed)"
      # shellcheck disable=SC2086  # marks: one word per case
      set -- $marks; nf=$((nf + $#))
      continue
    fi
    vm_arch "$(boot_arch "$b")"
    VM_KDIR=${KDIR_OF[$VM_ARCH]} VM_INITRD=$WORK/initrd-$VM_ARCH.gz
    rc=0
    # shellcheck disable=SC2086  # drives is a list of words
    vm_boot "$b" "$tests" "$tmo" $drives || rc=$?
    # host-side verdicts, read from the boot's disk and added to its log
    case "$b" in clearorder)
      python3 ./check_clear_order.py "$WORK/disks-$ch/wlog.img" "$VM_LOGDIR/$b.log" > "$WORK/$b.host" 2>&1
      cat "$WORK/$b.host" >> "$VM_LOGDIR/$b.log" ;;
    esac
    # shellcheck disable=SC2086  # end: no word or --no-end; marks: one word per case
    if vm_check "$b" "$rc" $end $marks; then
      set -- $marks; np=$((np + $#))
    else
      ok=
      local absent=0
      for m in $marks; do
        if grep -Eq "(^|[][ ])PASS $m\$" <(tr -d '\r' < "$VM_LOGDIR/$b.log") &&
           ! grep -q "^FAIL $m:" <(tr -d '\r' < "$VM_LOGDIR/$b.log"); then
          np=$((np + 1))
        else
          nf=$((nf + 1)); absent=1
        fi
      done
      # every case passed but the boot did not (kernel error, timeout...)
      [ $absent = 1 ] || nf=$((nf + 1))
    fi
  done
  echo "$np" > "$WORK/$ch.pass"; echo "$nf" > "$WORK/$ch.fail"
}

jobs_max=${VM_JOBS:-$(nproc)}
[ "$jobs_max" -ge 1 ] 2>/dev/null || jobs_max=1
[ "$jobs_max" -le 4 ] || jobs_max=4
running=()
for ch in $selected; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
  vm_say "starting ${ch//+/ then }"
  ( run_chain "$ch" > "$WORK/$ch.out" 2>&1; cat "$WORK/$ch.out" ) &
  running+=($!)
done
wait "${running[@]}"

passed=0 failed=0
for ch in $selected; do
  passed=$((passed + $(cat "$WORK/$ch.pass" 2>/dev/null || echo 0)))
  failed=$((failed + $(cat "$WORK/$ch.fail" 2>/dev/null || echo 1)))
done
echo "vm: suite took $((SECONDS - t_start)) s; serial logs in $VM_LOGDIR"
echo "vm-test: $passed passed, $failed failed"
[ "$failed" = 0 ]
