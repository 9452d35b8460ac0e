# shellcheck shell=dash
# shellcheck disable=SC3028  # busybox ash, which runs this, has $RANDOM
# Clear ordering: a region may be recorded clean on the log device only
# once the leg writes in it are on stable media.  The kernel's `disk` log
# (dm-log.c disk_flush) sends the mirror's flush callback, an empty
# PREFLUSH to every leg, before it writes a bitmap carrying newly set clean
# bits; a userspace log must keep that order, or a power cut can lose a
# completed write on a leg with a volatile cache while the log says clean.
#
# Method: both legs and the log device are dm-linear slices of ONE
# dm-log-writes device over a RAM disk, so every write and every FLUSH to
# any of them lands in one ordered log (dm-log-writes logs a write only
# once a FLUSH has covered it: the log is the order in which data reaches
# stable media).  The write log goes to three more RAM disks joined into
# one, and is copied to the virtio disk vda, one slice per case, once the
# log-writes device is gone: removing that device waits until every entry
# is logged, and logging straight to vda made that wait as slow as the
# host's disk (a loaded CI host blocked `dmsetup remove` for minutes).
# The guest runs random direct writes through a mirror
# and tears it all down; the host (tests/vm/check_clear_order.py, run by
# run-suite.sh after the boot) reads the logs back from the disk image and
# checks that every bitmap write turning a region's bit from 0 to 1 comes
# after a FLUSH that follows the last leg write in that region.  It prints
# PASS/FAIL k-clear-order (the kernel's disk log, proving the checker) and
# u-clear-order (dmulogd).  The guest prints one `clear-order-geometry`
# line per case for the checker.

CO_DEV_LEN=32768        # sectors of the RAM disk under dm-log-writes (16 MiB)
CO_LEG0=0 CO_LEG1=8192  # leg slices (sectors into the log-writes device)
CO_LEN=8192             # mirror length = leg length (4 MiB)
CO_LOG=16384 CO_LOGLEN=2048   # the mirror's log device slice
CO_RS=16                # region size: 8 KiB, 512 regions
CO_WLOG_LEN=98304       # sectors of vda per case for the write log (48 MiB)
CO_WLOG_RAMS='/dev/ram2 /dev/ram3 /dev/ram4'  # joined: where it is written
CO_WRITERS=8 CO_WRITES=60

# co_writer DEV N: N random 4 KiB direct writes of new data.
co_writer() {
  local n=0
  while [ $n -lt "$2" ]; do
    dd if=/tmp/pat1 of="$1" bs=4096 count=1 seek=$(( RANDOM % (CO_LEN / 8) )) \
       skip=$(( RANDOM % 2048 )) oflag=direct conv=notrunc 2>/dev/null || return 1
    n=$(( n + 1 ))
  done
}

# co_wlog_table: a table joining CO_WLOG_RAMS into CO_WLOG_LEN sectors.
co_wlog_table() {
  local r at=0 n
  for r in $CO_WLOG_RAMS; do
    [ $at -lt $CO_WLOG_LEN ] || break
    n=$(sectors "$r") || return 1
    [ "$n" -le $(( CO_WLOG_LEN - at )) ] || n=$(( CO_WLOG_LEN - at ))
    echo "$at $n linear $r 0"
    at=$(( at + n ))
  done
  [ $at = $CO_WLOG_LEN ]
}

# co_run CASE KIND RAMDISK SLICE: one case; KIND u (dmulogd) or k (kernel).
co_run() {
  local c="$1" kind="$2" ram="$3" wstart=$(( $4 * CO_WLOG_LEN )) m=co-m w=co-w i pids='' st ent
  local LEN=$CO_LEN RS=$CO_RS NREG=$(( CO_LEN / CO_RS ))
  [ -b /dev/vda ] || { fail "$c" "/dev/vda missing (the write-log disk is not attached)"; return 1; }
  [ "$(sectors /dev/vda)" -ge $(( wstart + CO_WLOG_LEN )) ] ||
    { fail "$c" "/dev/vda is smaller than $(( wstart + CO_WLOG_LEN )) sectors"; return 1; }
  [ "$(sectors "$ram")" -ge $CO_DEV_LEN ] || { fail "$c" "$ram is smaller than $CO_DEV_LEN sectors"; return 1; }
  co_wlog_table > /tmp/co-wlog.table || { fail "$c" "the RAM disks $CO_WLOG_RAMS are too small"; return 1; }
  if [ "$kind" = u ]; then daemon_start || { fail "$c" "dmulogd did not start"; return 1; }; fi
  # start from zeros: the checker assumes a zeroed log device
  fill "$ram" /dev/zero $CO_DEV_LEN || { fail "$c" "cannot zero $ram"; return 1; }
  if ! dmt create co-wlog < /tmp/co-wlog.table ||
     ! dd if=/dev/zero of="$D/co-wlog" bs=4096 count=1 oflag=direct 2>/dev/null; then
    fail "$c" "cannot create the write log on $CO_WLOG_RAMS"; return 1
  fi
  if ! dmt create $w --table "0 $CO_DEV_LEN log-writes $ram $D/co-wlog"; then
    fail "$c" "cannot create the log-writes device (is dm-log-writes loaded? $(grep -c log-writes /proc/modules) modules)"
    return 1
  fi
  if ! dmt create co-leg0 --table "0 $CO_LEN linear $D/$w $CO_LEG0" ||
     ! dmt create co-leg1 --table "0 $CO_LEN linear $D/$w $CO_LEG1" ||
     ! dmt create co-log --table "0 $CO_LOGLEN linear $D/$w $CO_LOG"; then
    fail "$c" "cannot create the slices"; return 1
  fi
  dmt create $m --table "$(mirror_table "$kind" disk nosync 0 DMULOGD-TEST-CLEARORDER $LEN $RS \
      "$(devno "$D/co-log")" "$D/co-leg0" "$D/co-leg1")" || { fail "$c" "dmsetup create $m failed"; return 1; }
  in_sync $m || { fail "$c" "nosync mirror not in sync: $(dmt status $m)"; return 1; }
  pattern 1 >/dev/null
  i=0
  while [ $i -lt $CO_WRITERS ]; do
    bg co_writer "$D/$m" $CO_WRITES
    pids="$pids $BG_PID"
    i=$(( i + 1 ))
  done
  for i in $pids; do
    wait "$i" || { fail "$c" "a writer failed"; return 1; }
  done
  say "$c: $(writes_done "dm-$(dm_minor $m)") writes done on the mirror; log-writes status: $(dmt status $w)"
  # removing the mirror suspends it (a userspace log flushes at POSTSUSPEND);
  # removing the log-writes device logs what no FLUSH covered yet, a final
  # mark, and the super block with the entry count
  dmt remove $m || { fail "$c" "dmsetup remove $m failed"; return 1; }
  st=$(dmt status $w)
  case "$st" in *logging_disabled*) fail "$c" "dm-log-writes stopped logging (write log full?): $st"; return 1 ;; esac
  for i in co-log co-leg1 co-leg0 $w; do
    dmt remove "$i" || { fail "$c" "cannot remove $i"; return 1; }
  done
  # super block: magic (le64) and nr_entries (bs=4096: see disk_header)
  ent=$(dd if="$D/co-wlog" bs=4096 count=1 iflag=direct 2>/dev/null | od -An -tu4 -N24 | xargs |
        awk '{ printf "%08x%08x %d", $2, $1, $5 + $6 * 4294967296 }')
  case "$ent" in
    "006a736677736872 "*) ;;
    *) fail "$c" "no dm-log-writes super block on the write log ($ent)"; return 1 ;;
  esac
  # the host reads it from vda's image
  dd if="$D/co-wlog" of=/dev/vda bs=1M count=$(( CO_WLOG_LEN / 2048 )) seek=$(( wstart / 2048 )) \
     iflag=direct oflag=direct conv=notrunc 2>/dev/null || { fail "$c" "cannot copy the write log to /dev/vda"; return 1; }
  dmt remove co-wlog || { fail "$c" "cannot remove the write log"; return 1; }
  # the checker's input, on the serial log
  echo "clear-order-geometry case=${c%-run} kind=$kind wlog=$wstart entries=${ent#* } legs=$CO_LEG0,$CO_LEG1 leglen=$CO_LEN log=$CO_LOG rs=$RS nreg=$NREG"
  pass "$c"
}

# shellcheck disable=SC2034  # read by run_test
TMO_t_kclearorder=240 TMO_t_uclearorder=240
t_kclearorder() { co_run k-clear-order-run k /dev/ram0 0; }
t_uclearorder() { co_run u-clear-order-run u /dev/ram1 1; }
