#!/usr/bin/env bash
# Benchmark 3 — the real kernel, in a QEMU VM (TCG), one boot: fio 4 KiB
# random writes and reads (direct I/O, libaio, queue depths 1 and 16) on
# dm-mirror
#   - over RAM disks (brd) with the kernel's `core` and `disk` logs,
#     dmulogd's, and the floor: bench/vm/floor.c, a responder that answers
#     every request at once (every region in sync, no state, no I/O), run
#     right before and right after each dmulogd core / disk run;
#   - with the log on a real-cost device: a virtio disk on a host file
#     opened with cache=none, legs on dm-zero, ordinary and large (2^21
#     regions, 256 KiB bitmap) geometry, the kernel's `disk` log and
#     dmulogd's taking turns (k u k u ...);
#   - then short untimed runs that count the server's system calls.
#
# Reuses tests/vm/lib.sh (kernel download and cache, base initramfs with
# busybox, modules and dmsetup, the qemu boot helper, vm_disk). On top of
# that base it adds a cached layer with Debian's fio and every library
# `ldd` lists (fio is dynamically linked), and a small layer with
# bench/vm/init, the settings, the current static dmulogd and the floor
# (built here with gcc -static). bench/vm-report.awk turns the serial log
# into the report.
#
# Usage: bench/vm.sh [OUTDIR]      (make bench runs it through bench/run.sh)
# Writes OUTDIR/3-vm.md and appends target rows to OUTDIR/targets.md.
# Settings (environment):
#   BENCH_VM_RT (guest s per fio run, default 3), BENCH_VM_RAMP (1), BENCH_VM_REPS (2),
#   BENCH_VM_ICOUNT (qemu -icount, default shift=4,sleep=on; "" for none),
#   BENCH_VM_QEMU (more qemu arguments),
#   BENCH_VM_MEM (MiB, 1536), BENCH_VM_TIMEOUT (s, from the number of runs),
#   BENCH_VM_CASES / BENCH_VM_LCASES (logs on RAM disks, see bench/vm/init;
#   LCASES, the large bitmap on RAM disks, is off by default),
#   BENCH_VM_FLOOR (1: floor runs around dmulogd core/disk), BENCH_VM_WL /
#   BENCH_VM_LWL (workloads), BENCH_VM_RGEOS ("std large": real-cost device
#   geometries, "" skips them), BENCH_VM_RCASES ("kdisk fdisk udisk": the floor
#   there is what no userspace log server can beat), BENCH_VM_RWL
#   ("w1 w16"), BENCH_VM_RREPS (3), BENCH_VM_RDIR (directory of the
#   real-cost device's image file, default the log directory),
#   BENCH_VM_PROF (server system-call counts, "" skips), BENCH_VM_PRT (2).
# A/B comparison of another dmulogd build in the same boot:
# BENCH_VM_XBIN=path/to/static/dmulogd plus x* cases, e.g.
#   BENCH_VM_XBIN=/tmp/exp/target/static/dmulogd BENCH_VM_CASES="udisk xdisk" \
#   BENCH_VM_RCASES="kdisk udisk xdisk" bench/vm.sh /tmp/ab
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$BENCH_DIR/.." && pwd)
OUT=${1:-$TOP/target/bench}
mkdir -p "$OUT"
FRAG=$OUT/3-vm.md

# Our own log directory: tests/vm/run-suite.sh empties target/vm-logs when
# it starts, and may run while we do.
export VM_LOGDIR=${BENCH_VM_LOGDIR:-$OUT/vm}
mkdir -p "$VM_LOGDIR"
# shellcheck source=../tests/vm/lib.sh
. "$TOP/tests/vm/lib.sh"

RT=${BENCH_VM_RT:-3}
RAMP=${BENCH_VM_RAMP:-1}
REPS=${BENCH_VM_REPS:-2}
MEM=${BENCH_VM_MEM:-1536}
CASES=${BENCH_VM_CASES-"kcore kdisk ucore udisk udiskif"}
FLOOR=${BENCH_VM_FLOOR:-1}
LCASES=${BENCH_VM_LCASES-""}
WL=${BENCH_VM_WL-"w1 w16 r1 r16"}
LWL=${BENCH_VM_LWL-"w1 w16"}
RGEOS=${BENCH_VM_RGEOS-"std large"}
RCASES=${BENCH_VM_RCASES-"kdisk fdisk udisk"}
RWL=${BENCH_VM_RWL-"w1 w16"}
RREPS=${BENCH_VM_RREPS:-3}
PROF=${BENCH_VM_PROF-"std:fcore std:ucore std:udisk rstd:udisk rlarge:udisk"}
PRT=${BENCH_VM_PRT:-2}
# Ordinary geometry: a 256 MiB mirror in 512 KiB regions (LVM's classic
# mirror region size): 512 regions, a 64-byte bitmap.
LEN=${BENCH_VM_LEN:-524288}
RS=${BENCH_VM_RS:-1024}
# Large bitmap: an 8 GiB mirror in 4 KiB regions: 2^21 regions, a 256 KiB
# bitmap that the kernel's disk log writes whole on every flush. On RAM
# disks brd allocates only the pages fio writes (fio repeats the same
# offsets every run); on the real-cost device the legs are dm-zero.
LLEN=${BENCH_VM_LLEN:-16777216}
LRS=${BENCH_VM_LRS:-8}

words() { wc -w <<<"$1"; }
# Runs, for the timeout and the progress line.
nfloor=0
if [ "$FLOOR" = 1 ]; then
  for c in $CASES; do case $c in ucore|udisk) nfloor=$((nfloor + 2)) ;; esac; done
fi
nstd=$(( REPS * ($(words "$CASES") + nfloor) * $(words "$WL") ))
nlarge=$(( REPS * $(words "$LCASES") * $(words "$LWL") ))
nreal=$(( $(words "$RGEOS") * RREPS * $(words "$RCASES") * $(words "$RWL") ))
nprof=$(( $(words "$PROF") * 4 ))
# Guest seconds are counted in instructions (ICOUNT, below): on a busy
# host one can take two real ones.
TMO=${BENCH_VM_TIMEOUT:-$(( 300 + 2 * ((nstd + nlarge + nreal) * (RAMP + RT + 6) + nprof * (PRT + 6)) ))}
# The guest's clock: with -icount shift=4 it advances 16 ns per emulated
# instruction while the guest runs, and with real time only while it is
# idle (sleep=on: waiting for the host's disk). Emulation speed on a
# shared machine varies several-fold from second to second; counted in
# instructions, CPU-bound runs repeat to within a few per cent. "" turns
# it off (guest time = host time).
ICOUNT=${BENCH_VM_ICOUNT-"shift=4,sleep=on"}

fail_fragment() {
  {
    echo "## 3. Real kernel in a VM (fio on dm-mirror)"
    echo
    echo "**Not run:** $*"
    echo
  } > "$FRAG"
  echo "| fio in the VM | — | — | not measured: $* |" >> "$OUT/targets.md"
  echo "bench/vm.sh: $*" >&2
}

# ---------------------------------------------------------------- set-up
( vm_setup ) || { fail_fragment "VM set-up failed (tests/vm/lib.sh vm_setup)"; exit 1; }
vm_setup   # cheap now: everything is cached; sets VM_KDIR and VM_BASE here
if ! command -v fio >/dev/null; then
  _vm_apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fio >/dev/null ||
    { fail_fragment "apt-get install fio failed"; exit 1; }
fi
FIO=$(command -v fio)
[ -x "$VM_DMULOGD" ] || { fail_fragment "$VM_DMULOGD is missing (make static)"; exit 1; }

# The compressor for our layers: zstd decompresses several times faster
# than gzip in the emulated guest, and the fio layer is ~80 MiB unpacked.
if command -v zstd >/dev/null && grep -q '^CONFIG_RD_ZSTD=y' "$VM_KDIR/config"; then
  PACK="zstd -q -3 -T0"; EXT=zst
else
  PACK="gzip -1"; EXT=gz
fi

# fio + libraries, cached by the hash of what goes in.
fio_libs() { ldd "$FIO" | awk '/=>/ && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }'; }
key=$( { echo "bench-fio-1 $EXT"; sha256sum "$FIO"; fio_libs | xargs -r sha256sum; } | sha256sum | cut -c1-16)
FIO_LAYER=$VM_CACHE/bench-fio-$key.cpio.$EXT
if [ ! -f "$FIO_LAYER" ]; then
  vm_say "building the fio layer $FIO_LAYER"
  root=$(mktemp -d "${TMPDIR:-/tmp}/dmulogd-bench-fio.XXXXXX")
  mkdir -p "$root/usr/bin"
  cp "$FIO" "$root/usr/bin/fio"
  for lib in $(fio_libs); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | $PACK > "$FIO_LAYER.tmp"
  mv "$FIO_LAYER.tmp" "$FIO_LAYER"
  rm -rf "$root"
fi

# The small layer: /init, settings, dmulogd, the floor.
root=$(mktemp -d "${TMPDIR:-/tmp}/dmulogd-bench-init.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bench" "$root/sbin"
install -m 755 "$BENCH_DIR/vm/init" "$root/init"
install -m 755 "$VM_DMULOGD" "$root/sbin/dmulogd"
gcc -static -O2 -s -Wall -Wextra -o "$root/sbin/floor" "$BENCH_DIR/vm/floor.c" ||
  { fail_fragment "cannot build bench/vm/floor.c with gcc -static"; exit 1; }
if [ -n "${BENCH_VM_XBIN:-}" ]; then
  file_is_static "$BENCH_VM_XBIN" || { fail_fragment "BENCH_VM_XBIN=$BENCH_VM_XBIN is not a static binary"; exit 1; }
  install -m 755 "$BENCH_VM_XBIN" "$root/sbin/dmulogd-x"
fi
cat > "$root/bench/config" <<EOF
RT=$RT
RAMP=$RAMP
REPS=$REPS
CASES="$CASES"
FLOOR=$FLOOR
LCASES="$LCASES"
WL="$WL"
LWL="$LWL"
LEN=$LEN
RS=$RS
LLEN=$LLEN
LRS=$LRS
RGEOS="$RGEOS"
RCASES="$RCASES"
RWL="$RWL"
RREPS=$RREPS
PROF="$PROF"
PRT=$PRT
EOF
VM_INITRD=$VM_LOGDIR/bench-initrd.img
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 > "$root.cpio.gz"
cat "$VM_BASE" "$FIO_LAYER" "$root.cpio.gz" > "$VM_INITRD"
rm -f "$root.cpio.gz"
export VM_INITRD

# The real-cost log device: a sparse image on a host file system that
# takes O_DIRECT (vm_disk falls back to cache=writeback where it does not,
# and the report says which), 16 MiB: room for the large bitmap.
drive=()
rdev_note="" rcache="" RIMG=""
if [ -n "$RGEOS" ] && [ -n "$RCASES" ]; then
  RDIR=${BENCH_VM_RDIR:-$VM_LOGDIR}
  RIMG=$RDIR/bench-log.img
  read -r -a drive <<<"$(vm_disk "$RIMG" 16M)"
  rcache=${drive[1]##*cache=}
  rdev_note="\`${RIMG#"$TOP"/}\` on the host's $(stat -f -c %T "$RDIR" 2>/dev/null || echo '?') ($(df -P "$RDIR" | awk 'NR == 2 { print $1 }'))"
fi

# ---------------------------------------------------------------- boot
vm_say "benchmark VM: $nstd + $nlarge + $nreal fio runs of ${RAMP}+${RT} s and $nprof short profiling runs, -m $MEM, timeout ${TMO}s"
rc=0
qargs=()
[ -z "$ICOUNT" ] || qargs+=(-icount "$ICOUNT")
if [ -n "${BENCH_VM_QEMU:-}" ]; then
  read -r -a extra <<<"$BENCH_VM_QEMU"
  qargs+=("${extra[@]}")
fi
vm_boot bench bench "$TMO" -m "$MEM" "${drive[@]}" "${qargs[@]}" || rc=$?
LOG=$VM_LOGDIR/bench.log
secs=$(cat "$VM_LOGDIR/bench.secs" 2>/dev/null || echo '?')
tr -d '\r' < "$LOG" > "$LOG.clean"
if ! grep -q '^BENCH ' "$LOG.clean"; then
  fail_fragment "the VM produced no results (qemu status $rc after ${secs}s; serial log $LOG)"
  tail -n 30 "$LOG.clean" >&2
  exit 1
fi
fails=$(grep -c 'BENCH-FAIL' "$LOG.clean" || true)
ended=$(grep -c '^VM-END' "$LOG.clean" || true)
memline=$(grep -o -m1 'VM-START.*' "$LOG.clean" | cut -d' ' -f2- || true)
# The kernel's own complaints (tests/vm/lib.sh): "Insufficient space to
# receive package" would mean a reply (the floor's or dmulogd's) that does
# not fit its request.
kbad=$(grep -vE '^(dmulogd\| |BENCH)' "$LOG.clean" | grep -E "$VM_KERNEL_BAD" | head -n 3 | tr '\n|' ' /' || true)
rdevline=$(grep -o -m1 'BENCH-RDEV.*' "$LOG.clean" | cut -d' ' -f2- || true)
[ -z "$RIMG" ] || rm -f "$RIMG"

# ---------------------------------------------------------------- report
awk -v rt="$RT" -v ramp="$RAMP" -v reps="$REPS" -v rreps="$RREPS" -v prt="$PRT" -v secs="$secs" -v mem="$memline" \
    -v len="$LEN" -v rs="$RS" -v llen="$LLEN" -v lrs="$LRS" -v fails="$fails" -v ended="$ended" \
    -v rdev="$rdev_note" -v rdevguest="$rdevline" -v cache="$rcache" \
    -v qemu="$(qemu-system-x86_64 --version | head -n 1)" -v icount="$ICOUNT" \
    -v kbad="$kbad" -v frag="$FRAG" -v targets="$OUT/targets.md" -v xbin="${BENCH_VM_XBIN:-}" \
    -f "$BENCH_DIR/vm-report.awk" "$LOG.clean"
rm -f "$LOG.clean"
cat "$FRAG"
if [ "$fails" != 0 ] || [ "$ended" = 0 ] || [ -n "$kbad" ]; then
  vm_say "warning: $fails failed step(s), end reached: $ended, kernel errors: ${kbad:-none} (serial log $LOG)"
fi
exit 0
