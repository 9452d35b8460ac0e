#!/usr/bin/env bash
# `make demo`: boot Debian's kernel in QEMU, run dmulogd under a real
# dm-mirror, and tell what happened.  The guest side is guest/t-demo.sh; the
# raw serial log is kept in target/vm-logs/demo.log.
set -u
cd "$(dirname "$0")" || exit 1
. ./lib.sh

vm_setup
[ -x "$VM_DMULOGD" ] || vm_die "$VM_DMULOGD is missing: run 'make static' (make demo does)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dmulogd-demo.XXXXXX")
export VM_PIDFILE=$WORK/qemu.pids
cleanup() {
  local p
  [ -f "$VM_PIDFILE" ] && while read -r p; do kill "$p" 2>/dev/null; done < "$VM_PIDFILE"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

VM_INITRD=$WORK/initrd.gz
vm_initrd "$VM_INITRD"
echo "Booting Debian's kernel $(cat "$VM_KDIR/release") in QEMU (emulated CPU, no KVM); this takes about a minute."
echo
rc=0
vm_boot demo demo 420 || rc=$?
log=$VM_LOGDIR/demo.log
tr -d '\r' < "$log" | sed -n 's/^DEMO| \{0,1\}//p'
echo
if vm_check demo "$rc" demo > "$WORK/verdict"; then
  echo "Summary: dmulogd served a real dm-mirror's disk log: the mirror resynced,"
  echo "took 8 MiB of writes, survived a SIGKILL of the daemon under I/O (the kernel"
  echo "reconnected by itself), and ended with both legs identical; no kernel errors."
  echo "Whole run: $(cat "$VM_LOGDIR/demo.secs") s.  Raw serial log: $log"
  echo "Next: make vm-test runs every real-kernel scenario (tests/vm/README.md)."
else
  cat "$WORK/verdict"
  echo "The demo FAILED; raw serial log: $log"
  exit 1
fi
