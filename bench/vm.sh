#!/usr/bin/env bash
# Benchmark 3 — the real kernel, in a QEMU VM (TCG): fio 4 KiB random writes
# and reads (direct I/O, libaio, queue depths 1 and 16) on dm-mirror over
# RAM disks (brd) with the kernel's `core` and `disk` logs and dmulogd's,
# in one boot, on the same devices; then a large-bitmap geometry where the
# kernel's `disk` log rewrites its whole bitmap on every flush.
#
# Reuses tests/vm/lib.sh (kernel download and cache, base initramfs with
# busybox, modules and dmsetup, the qemu boot helper). On top of that base
# it adds a cached layer with Debian's fio and every library `ldd` lists
# (fio is dynamically linked), and a small layer with bench/vm/init, the
# settings and the current static dmulogd.
#
# Usage: bench/vm.sh [OUTDIR]      (make bench runs it through bench/run.sh)
# Writes OUTDIR/3-vm.md and appends target rows to OUTDIR/targets.md.
# Settings (environment): BENCH_VM_RT (s per fio run, default 4),
# BENCH_VM_REPS (3), BENCH_VM_MEM (MiB, 1536), BENCH_VM_TIMEOUT (s, 720),
# BENCH_VM_CASES / BENCH_VM_LCASES (logs, see bench/vm/init), BENCH_VM_WL /
# BENCH_VM_LWL (workloads). A/B comparison of another dmulogd build in the
# same boot: BENCH_VM_XBIN=path/to/static/dmulogd plus x* cases, e.g.
#   BENCH_VM_XBIN=/tmp/exp/target/static/dmulogd BENCH_VM_CASES="udisk xdisk" \
#   BENCH_VM_LCASES="udisk xdisk" bench/vm.sh /tmp/ab
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

RT=${BENCH_VM_RT:-4}
RAMP=${BENCH_VM_RAMP:-1}
REPS=${BENCH_VM_REPS:-3}
MEM=${BENCH_VM_MEM:-1536}
TMO=${BENCH_VM_TIMEOUT:-720}
CASES=${BENCH_VM_CASES-"kcore kdisk ucore udisk udiskif"}
LCASES=${BENCH_VM_LCASES-"kdisk udisk udiskif"}
WL=${BENCH_VM_WL-"w1 w16 r1 r16"}
LWL=${BENCH_VM_LWL-"w1 w16"}
# Ordinary geometry: a 256 MiB mirror in 512 KiB regions (LVM's classic
# mirror region size): 512 regions, a 64-byte bitmap.
LEN=${BENCH_VM_LEN:-524288}
RS=${BENCH_VM_RS:-1024}
# Large bitmap: an 8 GiB mirror in 4 KiB regions: 2^21 regions, a 256 KiB
# bitmap that the kernel's disk log writes whole on every flush. The RAM
# disks are this big but brd allocates only the pages fio writes (fio
# repeats the same offsets every run), so they fit in $MEM.
LLEN=${BENCH_VM_LLEN:-16777216}
LRS=${BENCH_VM_LRS:-8}

fail_fragment() {
  {
    echo "## 3. Real kernel in a VM (fio on dm-mirror over RAM disks)"
    echo
    echo "**Not run:** $*"
    echo
  } > "$FRAG"
  echo "| fio in the VM: dmulogd disk vs kernel disk | — | — | not measured: $* |" >> "$OUT/targets.md"
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

# The small layer: /init, settings, dmulogd.
root=$(mktemp -d "${TMPDIR:-/tmp}/dmulogd-bench-init.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bench" "$root/sbin"
install -m 755 "$BENCH_DIR/vm/init" "$root/init"
install -m 755 "$VM_DMULOGD" "$root/sbin/dmulogd"
if [ -n "${BENCH_VM_XBIN:-}" ]; then
  file_is_static "$BENCH_VM_XBIN" || { fail_fragment "BENCH_VM_XBIN=$BENCH_VM_XBIN is not a static binary"; exit 1; }
  install -m 755 "$BENCH_VM_XBIN" "$root/sbin/dmulogd-x"
fi
cat > "$root/bench/config" <<EOF
RT=$RT
RAMP=$RAMP
REPS=$REPS
CASES="$CASES"
LCASES="$LCASES"
WL="$WL"
LWL="$LWL"
LEN=$LEN
RS=$RS
LLEN=$LLEN
LRS=$LRS
EOF
VM_INITRD=$VM_LOGDIR/bench-initrd.img
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 > "$root.cpio.gz"
cat "$VM_BASE" "$FIO_LAYER" "$root.cpio.gz" > "$VM_INITRD"
rm -f "$root.cpio.gz"
export VM_INITRD

# ---------------------------------------------------------------- boot
nstd=$(( $(wc -w <<<"$CASES") * $(wc -w <<<"$WL") ))
nlarge=$(( $(wc -w <<<"$LCASES") * $(wc -w <<<"$LWL") ))
vm_say "benchmark VM: $REPS reps x ($nstd + $nlarge) fio runs of ${RAMP}+${RT} s, -m $MEM, timeout ${TMO}s"
rc=0
vm_boot bench bench "$TMO" -m "$MEM" || rc=$?
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

# ---------------------------------------------------------------- report
# Medians per (geo, case, wl); ratios between logs of the same boot.
awk -v rt="$RT" -v ramp="$RAMP" -v reps="$REPS" -v secs="$secs" -v mem="$memline" \
    -v len="$LEN" -v rs="$RS" -v llen="$LLEN" -v lrs="$LRS" -v fails="$fails" -v ended="$ended" \
    -v frag="$FRAG" -v targets="$OUT/targets.md" -v xbin="${BENCH_VM_XBIN:-}" '
function median(key,   n, i, j, a, t) {
  n = cnt[key]; if (n == 0) return -1
  for (i = 1; i <= n; i++) a[i] = val[key, i]
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function cell(v) { return v < 0 ? "—" : sprintf("%.0f", v) }
function ratio(x, y) { return (x < 0 || y <= 0) ? "—" : sprintf("%.2fx", x / y) }
function wlname(w) { return (substr(w, 1, 1) == "w" ? "randwrite" : "randread") " QD" substr(w, 2) }
function target(what, x, y, need, higher,   r, pct, v) {
  if (x < 0 || y <= 0) { printf "| %s | — | %s %.2fx | not measured |\n", what, higher ? ">=" : "<=", need >> targets; return }
  r = x / y; pct = (r / need - 1) * 100
  if (higher) v = (r >= need) ? sprintf("**met** (%.0f%% above the bar)", pct) : sprintf("**missed** (%.0f%% below the bar)", -pct)
  printf "| %s | %.2fx | >= %.2fx | %s |\n", what, r, need, v >> targets
}
/^BENCH / {
  delete f
  for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
  key = f["geo"] SUBSEP f["case"] SUBSEP f["wl"]
  cnt[key]++; val[key, cnt[key]] = f["iops"] + 0
  for (d in f) if (d == "idle" || d == "dcpu" || d == "dsys" || d == "rpio") { k2 = d SUBSEP key; cnt[k2]++; val[k2, cnt[k2]] = f[d] + 0 }
  if (!(f["geo"] SUBSEP f["wl"] in seenwl)) { seenwl[f["geo"] SUBSEP f["wl"]] = 1; wls[f["geo"]] = wls[f["geo"]] " " f["wl"] }
  if (!(f["geo"] SUBSEP f["case"] in seenc)) { seenc[f["geo"] SUBSEP f["case"]] = 1; cases[f["geo"]] = cases[f["geo"]] " " f["case"] }
}
END {
  print "## 3. Real kernel in a VM (fio on dm-mirror over RAM disks)" > frag
  print "" > frag
  printf "QEMU TCG (emulated: compare ratios within this run only, never absolute IOPS), guest %s; the whole VM run took %s s. ", mem, secs > frag
  printf "fio %s: 4 KiB random I/O, direct, libaio, %s s after a %s s ramp, %s repetitions, median IOPS; each run on a freshly created mirror, the logs taking turns workload by workload so that compared runs are close in time. ", "in the guest", rt, ramp, reps > frag
  printf "Legs /dev/ram0 and /dev/ram1, log device /dev/ram2 (brd); every mirror `nosync` on a zeroed log device. " > frag
  printf "Logs: *k-core*, *k-disk* = the kernel'"'"'s own; *u-core*, *u-disk* = dmulogd; *u-disk-if* = dmulogd disk with `integrated_flush` (MARK carried by the FLUSH)%s.\n", (xbin == "" ? "" : "; *x-…* = the same served by `" xbin "`") > frag
  if (fails > 0) printf "\n**%d fio run(s) or steps failed** (BENCH-FAIL lines in the serial log).\n", fails > frag
  if (ended == 0) printf "\n**The guest did not reach its end** (timeout?): the figures below are partial.\n" > frag
  ngeo = 0
  for (g in wls) ngeo++
  split("std large", geos, " ")
  for (gi = 1; gi <= 2; gi++) {
    g = geos[gi]; if (!(g in wls)) continue
    if (g == "std") printf "\n### Ordinary bitmap: %d MiB mirror, region %d sectors (%d regions, %d-byte bitmap)\n\n", len / 2048, rs, len / rs, int((len / rs + 63) / 64) * 8 > frag
    else printf "\n### Large bitmap: %d MiB mirror, region %d sectors (%d regions, %d KiB bitmap rewritten whole by the kernel'"'"'s disk log on every flush)\n\n", llen / 2048, lrs, llen / lrs, int((llen / lrs + 63) / 64) * 8 / 1024 > frag
    n = split(substr(cases[g], 2), cs, " ")
    hdr = "| workload |"; sep = "|---|"
    for (i = 1; i <= n; i++) { nm = cs[i]; sub(/^k/, "k-", nm); sub(/^u/, "u-", nm); sub(/diskif$/, "disk-if", nm); hdr = hdr " " nm " IOPS |"; sep = sep "---:|" }
    hdr = hdr " c/a (u-core / k-core) | d/b (u-disk / k-disk) | u-disk-if / k-disk |"; sep = sep "---:|---:|---:|"
    nx = 0
    for (i = 1; i <= n; i++) if (substr(cs[i], 1, 1) == "x") { nx++; xs[nx] = cs[i]; nm = cs[i]; sub(/^x/, "", nm); hdr = hdr " x-" nm " / u-" nm " |"; sep = sep "---:|" }
    print hdr > frag; print sep > frag
    m = split(substr(wls[g], 2), ws, " ")
    for (j = 1; j <= m; j++) {
      w = ws[j]; line = "| " wlname(w) " |"
      for (i = 1; i <= n; i++) line = line " " cell(median(g SUBSEP cs[i] SUBSEP w)) " |"
      kc = median(g SUBSEP "kcore" SUBSEP w); kd = median(g SUBSEP "kdisk" SUBSEP w)
      uc = median(g SUBSEP "ucore" SUBSEP w); ud = median(g SUBSEP "udisk" SUBSEP w); ui = median(g SUBSEP "udiskif" SUBSEP w)
      line = line " " ratio(uc, kc) " | " ratio(ud, kd) " | " ratio(ui, kd) " |"
      for (i = 1; i <= nx; i++) { nm = xs[i]; sub(/^x/, "u", nm); line = line " " ratio(median(g SUBSEP xs[i] SUBSEP w), median(g SUBSEP nm SUBSEP w)) " |" }
      print line > frag
      if (g == "std") target("fio " wlname(w) ", ordinary bitmap: dmulogd disk / kernel disk", ud, kd, 0.9, 1)
      else if (substr(w, 1, 1) == "w") target("fio " wlname(w) ", large bitmap: dmulogd disk faster than kernel disk", ud, kd, 1.0, 1)
    }
  }
  print "" > frag
  print "Where the time goes (medians): guest CPU idle during the run; for dmulogd, its share of the guest CPU and the requests it answered per I/O (≈: I/Os estimated as IOPS × (ramp + runtime)):" > frag
  print "" > frag
  print "| geometry | log | workload | IOPS | guest idle | dmulogd CPU (of it in the kernel) | requests per I/O | µs per request (≈ 1 / (IOPS × req/I/O)) |" > frag
  print "|---|---|---|---:|---:|---:|---:|---:|" > frag
  for (gi = 1; gi <= 2; gi++) {
    g = geos[gi]; if (!(g in wls)) continue
    n = split(substr(cases[g], 2), cs, " "); m = split(substr(wls[g], 2), ws, " ")
    for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) {
      key = g SUBSEP cs[i] SUBSEP ws[j]
      io = median(key); idl = median("idle" SUBSEP key); dc = median("dcpu" SUBSEP key); ds = median("dsys" SUBSEP key); rp = median("rpio" SUBSEP key)
      per = (io > 0 && rp > 0) ? sprintf("%.0f", 1e6 / (io * rp)) : "—"
      printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", g, cs[i], wlname(ws[j]), cell(io), idl < 0 ? "—" : sprintf("%.0f%%", idl), dc < 0 ? "—" : sprintf("%.0f%% (%.0f%%)", dc, ds), rp < 0 ? "—" : sprintf("%.2f", rp), per > frag
    }
  }
  print "" > frag
  print "Every run (IOPS, in repetition order):" > frag
  print "" > frag
  print "| geometry | log | workload | runs |" > frag
  print "|---|---|---|---|" > frag
  for (gi = 1; gi <= 2; gi++) {
    g = geos[gi]; if (!(g in wls)) continue
    n = split(substr(cases[g], 2), cs, " "); m = split(substr(wls[g], 2), ws, " ")
    for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) {
      key = g SUBSEP cs[i] SUBSEP ws[j]; s = ""
      for (k = 1; k <= cnt[key]; k++) s = s (k > 1 ? ", " : "") sprintf("%.0f", val[key, k])
      printf "| %s | %s | %s | %s |\n", g, cs[i], wlname(ws[j]), s > frag
    }
  }
  print "" > frag
}' "$LOG.clean"
rm -f "$LOG.clean"
cat "$FRAG"
[ "$fails" = 0 ] && [ "$ended" != 0 ] || vm_say "warning: $fails failed step(s), end reached: $ended (serial log $LOG)"
exit 0
