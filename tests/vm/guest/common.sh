# shellcheck shell=dash
# Helpers for the guest tests (busybox ash).  Sourced by /init.
#
# A test is a function t_<name> (dashes in the name become underscores) in
# /vm/t/t-*.sh.  It prints "PASS <case>" once a case has passed every check,
# or "FAIL <case>: <reason>" and returns non-zero.  run_test runs it in a
# subshell under a deadline, then tears down whatever it left behind.

# shellcheck disable=SC2034  # used by the t-*.sh scenarios
D=/dev/mapper
PIDF=/run/dmulogd.pid
DLOG=/tmp/dmulogd.log

say()  { echo "  $*"; }
pass() { echo "PASS $1"; }
fail() {
  # NEGATIVE=1: a self-test expects this check to fail; report it quietly.
  if [ -n "${NEGATIVE:-}" ]; then echo "  caught: $1: $2"; return 1; fi
  echo "FAIL $1: $2"; dump_diag; return 1
}

dms() { dmsetup --noudevsync "$@"; }
# dmsetup calls that reach the log server get a deadline: a daemon that never
# answers must fail the test, not hang it.
dmt() { timeout "${DMT:-60}" dmsetup --noudevsync "$@"; }

now() { cut -d. -f1 /proc/uptime; }
# norm WORDS...: numbers sorted, one space apart (to compare region lists)
# shellcheck disable=SC2046,SC2005  # unquoted on purpose: the words on one line
norm() { echo $(printf '%s\n' "$@" | sort -n); }

# alive PID: running and not a zombie (orphans are reaped late by PID 1).
alive() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
  ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null
}

# wait_for SECONDS CMD...: poll CMD until it succeeds; 1 on deadline.
wait_for() {
  local end=$(( $(now) + $1 )); shift
  while ! "$@"; do
    [ "$(now)" -ge "$end" ] && return 1
    sleep 0.2
  done
  return 0
}

# ---------------------------------------------------------------- daemon
daemon_pid() { cat "$PIDF" 2>/dev/null; }
daemon_alive() { alive "$(daemon_pid)"; }

# daemon_start [args...]: --daemon returns once the socket is bound.
# shellcheck disable=SC2120  # callers may pass dmulogd options; none do today
daemon_start() {
  local v=
  case "$(sed -n 's/.*dmverbose=\([0-9]\).*/\1/p' /proc/cmdline)" in
    1) v=-v ;; 2) v=-vv ;;
  esac
  echo "--- dmulogd start $v $* at $(cat /proc/uptime)" >> "$DLOG"
  dmulogd -d -p "$PIDF" $v "$@" 2>>"$DLOG" </dev/null || { say "dmulogd -d exited $?"; return 1; }
  daemon_alive || { say "dmulogd -d returned 0 but no live pid in $PIDF"; return 1; }
}

# daemon_stop SIG: send SIG, wait for the process to go; kill -9 if it won't.
daemon_stop() {
  local p; p=$(daemon_pid)
  alive "$p" || return 0
  kill -"${1:-QUIT}" "$p"
  if ! wait_for 15 eval '! alive '"$p"; then
    say "dmulogd $p ignored SIG${1:-QUIT}; killing it"
    kill -9 "$p"; wait_for 5 eval '! alive '"$p"
    return 1
  fi
  return 0
}

# ---------------------------------------------------------------- devices
# devno DEV -> MAJ:MIN in decimal
devno() {
  local mm
  mm=$(stat -L -c '%t %T' "$1") || return 1
  # shellcheck disable=SC2086  # two words: major and minor
  set -- $mm
  echo "$((0x$1)):$((0x$2))"
}
sectors() { blockdev --getsz "$1"; }

# pattern N: an 8 MiB file of random bytes, the same for the whole boot.
pattern() {
  [ -f "/tmp/pat$1" ] || dd if=/dev/urandom of="/tmp/pat$1" bs=1M count=8 2>/dev/null
  echo "/tmp/pat$1"
}

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# fill DEV SRC SECTORS: copy the first SECTORS of SRC (a file or /dev/zero)
# onto DEV with direct I/O.
fill() {
  dd if="$2" of="$1" bs=64k count=$(( $3 / 128 )) oflag=direct conv=notrunc 2>/dev/null
}

# wr DEV PATFILE OFF_BYTES LEN_BYTES [BS]: copy PATFILE[OFF..OFF+LEN) onto the
# same offset of DEV with direct I/O, and into the expected-content file
# /tmp/expect, so that the device can be checked against it.
wr() {
  local dev=$1 pat=$2 off=$3 len=$4 bs=${5:-65536}
  dd if="$pat" of="$dev" bs="$bs" count=$(( len / bs )) iflag=skip_bytes skip="$off" \
     oflag=direct,seek_bytes seek="$off" conv=notrunc 2>/tmp/dd.err ||
    { say "dd to $dev at $off+$len failed: $(cat /tmp/dd.err)"; return 1; }
  dd if="$pat" of=/tmp/expect bs="$bs" count=$(( len / bs )) iflag=skip_bytes skip="$off" \
     oflag=seek_bytes seek="$off" conv=notrunc 2>/dev/null
}

# expect_from DEV SECTORS: start the expected-content file from DEV.
expect_from() {
  dd if="$1" of=/tmp/expect bs=64k count=$(( $2 / 128 )) iflag=direct 2>/dev/null
}

# sum DEV OFF_BYTES LEN_BYTES: md5 of a direct read (files: plain read).
sum() {
  local fl=,direct
  [ -b "$1" ] || fl=
  dd if="$1" bs=64k iflag=skip_bytes,count_bytes$fl skip="$2" count="$3" 2>/dev/null | md5sum | cut -d' ' -f1
}

# same_content NAME A B SECTORS: A and B hold the same bytes.
same_content() {
  local a b
  a=$(sum "$2" 0 $(( $4 * 512 ))); b=$(sum "$3" 0 $(( $4 * 512 )))
  [ "$a" = "$b" ] && return 0
  say "$2 and $3 differ (md5 $a vs $b) in regions: $(diff_regions "$2" "$3" "$4" "${RS:-1024}")"
  return 1
}

# diff_regions A B SECTORS REGION_SECTORS: regions where A and B differ.
diff_regions() {
  local a=$1 b=$2 n=$(( ($3 + $4 - 1) / $4 )) rs=$(( $4 * 512 )) r=0 out=
  while [ $r -lt $n ]; do
    [ "$(sum "$a" $(( r * rs )) $rs)" = "$(sum "$b" $(( r * rs )) $rs)" ] || out="$out$r "
    r=$(( r + 1 ))
  done
  echo "$out"
}

# slow_leg NAME DEV MS: /dev/mapper/NAME is DEV with writes delayed by MS ms
# (reads are not); on an existing NAME it swaps the delay in place.
slow_leg() {
  local n=$1 dev=$2 ms=$3 t
  t="0 $(sectors "$dev") delay $dev 0 0 $dev 0 $ms"
  if dms info "$n" >/dev/null 2>&1; then
    dmt load "$n" --table "$t" && dmt resume "$n"
  else
    dmt create "$n" --table "$t"
  fi
}

# dm_minor NAME -> the dm device's minor (for /sys/block/dm-N)
dm_minor() { dms info -c --noheadings -o minor "$1" | tr -d ' '; }
# writes_done DEV_SYSNAME -> completed writes (field 5 of /sys/block/X/stat)
writes_done() { awk '{ print $5 }' "/sys/block/$1/stat"; }
# inflight_writes SYSNAME -> writes in flight on /sys/block/SYSNAME
inflight_writes() { awk '{ print $2 }' "/sys/block/$1/inflight"; }
# delayed_writes NAME -> writes held by the dm-delay device NAME now
delayed_writes() { dms status "$1" | awk '$3 == "delay" { print $5 }'; }

# bg CMD...: run CMD in the background and remember it, so that teardown
# stops it even when the test gave up half way.  Sets BG_PID.
bg() {
  "$@" &
  BG_PID=$!
  echo $BG_PID >> /tmp/bg.pids
}
stop_bg() {
  local p
  [ -f /tmp/bg.pids ] || return 0
  # shellcheck disable=SC2013  # pids, one a line
  for p in $(cat /tmp/bg.pids); do kill "$p" 2>/dev/null; done
  rm -f /tmp/bg.pids
  # shellcheck disable=SC2086  # pidof prints every dd's pid
  p=$(pidof dd) && kill $p 2>/dev/null
  # a dd inside the kernel ends when its I/O does
  wait_for 60 eval '! pidof dd >/dev/null' || say "teardown: dd still running: $(pidof dd)"
}

# ---------------------------------------------------------------- status
# sync_counts DEV -> "N M" from the N/M field of dmsetup status (by shape).
sync_counts() {
  dmt status "$1" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\/[0-9]+$/) { split($i, a, "/"); print a[1], a[2]; exit } }'
}
in_sync() {
  local c; c=$(sync_counts "$1")
  [ -n "$c" ] && [ "${c% *}" = "${c#* }" ]
}
# wait_sync DEV SECONDS
wait_sync() {
  wait_for "$2" in_sync "$1" && return 0
  say "$1 not in sync after $2 s: $(dmt status "$1")"
  return 1
}

# log_status DEV -> the log's part of dmsetup status (after the mirror
# health chars), e.g. "3 disk 1:2 A" or "1 core".
log_status() {
  dmt status "$1" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\/[0-9]+$/) { s = ""; for (j = i + 3; j <= NF; j++) s = s (s == "" ? "" : " ") $j; print s; exit } }'
}

# ---------------------------------------------------------------- mirrors
# mirror_table KIND TYPE SYNC IFLUSH UUID LEN RS LOGDEV LEG0 LEG1
#   KIND u (dmulogd) or k (the kernel's own log); SYNC sync|nosync|-;
#   IFLUSH 1 for integrated_flush (u only).
mirror_table() {
  local kind=$1 type=$2 syn=$3 ifl=$4 uuid=$5 len=$6 rs=$7 logdev=$8 l0=$9 l1=${10}
  local a
  if [ "$kind" = u ]; then
    a=$uuid; [ "$ifl" = 1 ] && a="$a integrated_flush"
    a="$a $type"
  else
    a=
  fi
  [ "$type" = disk ] && a="$a $logdev"
  a="$a $rs"
  [ "$syn" = - ] || a="$a $syn"
  # shellcheck disable=SC2086  # one word per table argument, counted by $#
  set -- $a
  if [ "$kind" = u ]; then
    echo "0 $len mirror userspace $# $* 2 $l0 0 $l1 0 1 handle_errors"
  else
    echo "0 $len mirror $type $# $* 2 $l0 0 $l1 0 1 handle_errors"
  fi
}

# ---------------------------------------------------------------- test bodies
# Default geometry; a test may override these with `local`.
LEN=16384   # sectors (8 MiB)
RS=1024     # region size in sectors (512 KiB)
NREG=16

# with_daemon CASE FN ARGS...: start a fresh dmulogd (if FN needs one), run
# FN, tear everything down again.  Returns FN's status.
with_daemon() {
  local c=$1 rc; shift
  if ! daemon_start; then fail "$c" "dmulogd did not start"; return 1; fi
  "$@"; rc=$?
  teardown || rc=1
  return $rc
}

# write_all DEV: the whole device, then writes across every region boundary
# (one 8 KiB bio straddling each boundary, 1 MiB spanning three regions),
# then single 4 KiB writes here and there.  /tmp/expect follows along.
write_all() {
  local dev=$1 b off
  wr "$dev" "$(pattern 1)" 0 $(( LEN * 512 )) || return 1
  b=1
  while [ $b -lt $NREG ]; do
    off=$(( b * RS * 512 - 4096 ))
    wr "$dev" "$(pattern 2)" $off 8192 8192 || return 1
    b=$(( b + 1 ))
  done
  wr "$dev" "$(pattern 2)" $(( RS * 512 / 2 )) 1048576 1048576 || return 1
  for off in 0 12288 $(( 5 * RS * 512 + 8192 )) $(( (LEN - 8) * 512 )); do
    wr "$dev" "$(pattern 3)" $off 4096 4096 || return 1
  done
}

# check_content CASE MIRROR LEG0 LEG1: mirror and both legs hold /tmp/expect.
check_content() {
  local c=$1
  drop_caches
  same_content "$c" "$2" /tmp/expect $LEN || { fail "$c" "mirror $2 does not read back what was written"; return 1; }
  same_content "$c" "$3" /tmp/expect $LEN || { fail "$c" "leg $3 differs from what was written"; return 1; }
  same_content "$c" "$4" /tmp/expect $LEN || { fail "$c" "leg $4 differs from what was written"; return 1; }
}

# ---------------------------------------------------------------- on-disk log
# Reads the kernel's dm-log disk format directly (the reference view):
# header at 0 (magic 0x4D695272, version 2, nr_regions), clean bitmap at 1024.
# Reads use bs=4096: busybox dd takes a smaller buffer from malloc, and
# when O_DIRECT refuses it (unaligned: EINVAL) it quietly drops O_DIRECT and
# reads the page cache, which the kernel's dm-io writes never update.
disk_header() {  # DEV -> "magic version nr_regions"
  dd if="$1" bs=4096 count=1 iflag=direct 2>/dev/null |
    od -An -tu4 -N16 | awk '{ printf "%x %d %d\n", $1, $2, $3 + $4 * 4294967296 }'
}
# disk_dirty DEV NREG -> dirty (bit 0) regions, space separated
disk_dirty() {
  local bytes=$(( ($2 + 7) / 8 ))
  dd if="$1" bs=4096 count=$(( (1024 + bytes + 4095) / 4096 )) iflag=direct 2>/dev/null |
    od -An -tu1 -v -j1024 -N$bytes | awk -v n="$2" '
      { for (i = 1; i <= NF; i++) { b = $i; for (k = 0; k < 8; k++) { r = byte * 8 + k
          if (r < n && b % 2 == 0) printf "%d ", r; b = int(b / 2) } byte++ } }'
  echo
}
# disk_set_dirty DEV REGION...: clear the clean bits (simulate a crash).
disk_set_dirty() {
  local dev=$1 r off v; shift
  for r in "$@"; do
    off=$(( 1024 + r / 8 ))
    v=$(dd if="$dev" bs=1 skip=$off count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
    v=$(( v & ~(1 << (r % 8)) ))
    # shellcheck disable=SC2059  # the format is the byte as an octal escape
    printf "\\$(printf %o $v)" | dd of="$dev" bs=1 seek=$off count=1 conv=notrunc 2>/dev/null
  done
  drop_caches
}

# inspect_dirty DEV -> dirty regions according to `dmulogd inspect`, expanded
# from its ranges.  Fails when inspect does.
inspect_dirty() {
  dmulogd inspect "$1" > /tmp/inspect.out 2>&1 || { say "dmulogd inspect $1 failed: $(cat /tmp/inspect.out)"; return 1; }
  parse_inspect < /tmp/inspect.out
}

# parse_inspect < inspect output -> the dirty regions, ranges expanded.
# Knows the line "dirty regions: none" / "dirty regions: 1-3 19".
parse_inspect() {
  awk '/^dirty regions: / {
         sub(/^dirty regions: /, "")
         if ($0 == "none") { found = 1; next }
         for (i = 1; i <= NF; i++) {
           if ($i ~ /^[0-9]+$/) printf "%d ", $i
           else if ($i ~ /^[0-9]+-[0-9]+$/) { split($i, r, "-"); for (k = r[1]; k <= r[2]; k++) printf "%d ", k }
           else { bad = 1 }
         }
         found = 1
       }
       END { print ""; exit (found && !bad) ? 0 : 1 }'
}

# ---------------------------------------------------------------- kernel log
dmesg_mark() { dmesg | wc -l > /tmp/dmesg.mark; }
dmesg_since() { dmesg | tail -n +$(( $(cat /tmp/dmesg.mark 2>/dev/null || echo 0) + 1 )); }
# dm_complaints: dm-log-userspace / raid1 lines since dmesg_mark that mean
# the log server misbehaved or was unreachable.
dm_complaints() {
  dmesg_since | grep -E 'dm-log-userspace|userspace log|raid1|dm_ulog|Request timed out|device-mapper: (table|ioctl)' |
    grep -vE 'version [0-9.]+ loaded|mirror: version'
}

# ---------------------------------------------------------------- runner
dump_diag() {
  echo "--- diagnostics at $(cat /proc/uptime)"
  dmsetup --noudevsync info -c 2>&1 | sed 's/^/  dm| /'
  for d in $(dmsetup --noudevsync ls 2>/dev/null | awk '{ print $1 }'); do
    echo "  dm| $d: $(timeout 10 dmsetup --noudevsync table "$d" 2>&1)"
    echo "  dm| $d: $(timeout 10 dmsetup --noudevsync status "$d" 2>&1)"
  done
  [ -f "$DLOG" ] && tail -n 60 "$DLOG" | sed 's/^/dmulogd| /'
  dmesg_since | tail -n 80 | sed 's/^/  kmsg| /'
  echo "--- end of diagnostics"
}

# teardown: remove every dm device (newest first), stop the daemon.
teardown() {
  local d tries=0 left
  stop_bg
  # The mirrors need a log server to be removed.
  if [ -x /sbin/dmulogd ] && ! daemon_alive && dmsetup --noudevsync table 2>/dev/null | grep -q userspace; then
    daemon_start || say "teardown: cannot restart dmulogd"
  fi
  while :; do
    left=$(dmsetup --noudevsync ls 2>/dev/null | grep -v 'No devices found' | awk '{ print $1 }')
    [ -z "$left" ] && break
    tries=$(( tries + 1 ))
    [ $tries -gt 5 ] && { echo "FAIL teardown: cannot remove: $left"; return 1; }
    for d in $left; do
      timeout 60 dmsetup --noudevsync resume "$d" >/dev/null 2>&1
      timeout 60 dmsetup --noudevsync remove "$d" >/dev/null 2>&1
    done
  done
  daemon_stop QUIT || true
  rm -f "$PIDF"
  return 0
}

TESTS_RUN=0
run_test() {
  local t=$1 fn tmo pid end rc
  fn=t_$(echo "$t" | tr '-' '_')
  echo "=== RUN $t at $(cut -d' ' -f1 /proc/uptime)"
  TESTS_RUN=$(( TESTS_RUN + 1 ))
  if ! type "$fn" >/dev/null 2>&1; then
    echo "FAIL $t: no such test"; return 0
  fi
  eval "tmo=\${TMO_$fn:-300}"
  # dmtmoscale=N (vm_boot): an emulated guest that runs slower gets N times
  # the watchdog; the waits inside the tests keep their own deadlines.
  tmo=$(( tmo * $(sed -n 's/.*dmtmoscale=\([0-9]*\).*/\1/p' /proc/cmdline | grep . || echo 1) ))
  dmesg_mark
  ( "$fn" ) &
  pid=$!
  end=$(( $(now) + tmo ))
  while alive $pid; do
    if [ "$(now)" -ge "$end" ]; then
      echo "FAIL $t: still running after ${tmo}s (guest watchdog)"
      # the blocked tasks' stacks, to kmsg: what a hang waits for
      { echo w > /proc/sysrq-trigger; } 2>/dev/null
      dump_diag
      return 1
    fi
    sleep 0.5
  done
  wait $pid; rc=$?
  [ $rc = 0 ] || say "$t returned $rc"
  teardown || { dump_diag; return 1; }
  echo "=== END $t at $(cut -d' ' -f1 /proc/uptime)"
  return 0
}

# With dmverbose=N the daemon's log goes to the serial console as it is
# written (it then survives a power cut).
stream_daemon_log() {
  grep -q 'dmverbose=[1-9]' /proc/cmdline || return 0
  touch "$DLOG"
  tail -f "$DLOG" | sed 's/^/dmulogd| /' &
}

finish_boot() {
  echo "--- dmesg"
  dmesg | sed 's/^/dmesg| /'
  echo "VM-END tests=$TESTS_RUN"
  sync
  poweroff -f
}
