# shellcheck shell=dash
# Scenario 5: the same log device handed between the kernel's own `disk` log
# and dmulogd's, both ways.  A crash is simulated by clearing clean bits on
# the device (regions left dirty) and making the legs differ there; one more
# region is made to differ but left clean.  The taker must resync exactly
# the dirty regions: afterwards the legs differ only in the clean one (no
# full resync), and the first sync count equals the number of clean regions.

# region_write DEV PATFILE REGION: overwrite one region of DEV directly.
region_write() {
  local o=$(( $3 * RS * 512 ))
  dd if="$2" of="$1" bs=64k count=$(( RS / 128 )) iflag=skip_bytes skip=$o \
     oflag=direct,seek_bytes seek=$o conv=notrunc 2>/dev/null
}
region_copy() {  # FROM TO REGION
  local o=$(( $3 * RS * 512 ))
  dd if="$1" of="$2" bs=64k count=$(( RS / 128 )) iflag=direct,skip_bytes skip=$o \
     oflag=direct,seek_bytes seek=$o conv=notrunc 2>/dev/null
}

# both_views CASE DEV WANT: the kernel-format reader and `dmulogd inspect`
# both see exactly the dirty regions WANT.
both_views() {
  local c=$1 got
  got=$(disk_dirty "$2" "$NREG")
  # shellcheck disable=SC2086  # region lists: one word per region
  [ "$(norm $got)" = "$(norm $3)" ] || { fail "$c" "on-disk bitmap has dirty regions '$got', want '$3'"; return 1; }
  got=$(inspect_dirty "$2") || { fail "$c" "dmulogd inspect $2 failed or printed no 'dirty regions:' line: $(cat /tmp/inspect.out)"; return 1; }
  # shellcheck disable=SC2086  # region lists: one word per region
  [ "$(norm $got)" = "$(norm $3)" ] && return 0
  drop_caches
  got=$(inspect_dirty "$2")
  # shellcheck disable=SC2086  # region lists: one word per region
  if [ "$(norm $got)" = "$(norm $3)" ]; then
    fail "$c" "dmulogd inspect read a stale page cache of $2: it agreed with the bitmap ('$3') only after drop_caches"
  else
    fail "$c" "dmulogd inspect says dirty '$got', the bitmap says '$3' (inspect output: $(cat /tmp/inspect.out))"
  fi
}

# inflight_dirty CASE MIRROR LOGDEV REGION: while a write to REGION is held
# up by the slow leg, REGION's bit on the log device must already be 0: the
# mark is durable before the kernel issues the write.
inflight_dirty() {
  local c=$1 m=$2 lg=$3 r=$4 wpid
  bg dd if="$(pattern 1)" of="$D/$m" bs=4096 count=1 seek=$(( r * RS / 8 )) skip=$(( r * RS / 8 )) \
       oflag=direct conv=notrunc 2>/dev/null
  wpid=$BG_PID
  # shellcheck disable=SC2016  # eval expands it at each poll
  if ! wait_for 20 eval 'case " $(disk_dirty '"$lg"' '"$NREG"') " in *" '"$r"' "*) true ;; *) false ;; esac'; then
    fail "$c" "region $r never showed dirty on the log device while a write to it was in flight"; return 1
  fi
  alive "$wpid" || say "$c: (the write to region $r completed before the check)"
  wait_for 30 eval '! alive '"$wpid" || { fail "$c" "write to region $r stuck"; return 1; }
  wait "$wpid" || { fail "$c" "write to region $r failed"; return 1; }
  dd if="$(pattern 1)" of=/tmp/expect bs=4096 count=1 seek=$(( r * RS / 8 )) skip=$(( r * RS / 8 )) conv=notrunc 2>/dev/null
}

# takeover CASE FROM TO DIRTY CLEANDIFF [SYNCARG]: FROM's mirror (already
# removed) left the log; mark DIRTY regions dirty, make the legs differ in
# DIRTY and CLEANDIFF, load the log with TO (k or u), check the outcome.
# SYNCARG (default none) is only for the self-test.
takeover() {
  local c=$1 to=$3 dirty=$4 cd=$5 syn=${6:--} l0=/dev/ram0 l1=/dev/ram1 lg=/dev/ram2 m=io-$3 r st nclean
  st=$(disk_header $lg)
  [ "$st" = "4d695272 2 $NREG" ] || { fail "$c" "header left by the $2 log is '$st', want '4d695272 2 $NREG'"; return 1; }
  both_views "$c" $lg "" || return 1
  # shellcheck disable=SC2086  # region lists: one word per region
  disk_set_dirty $lg $dirty
  both_views "$c" $lg "$dirty" || return 1
  for r in $dirty $cd; do region_write $l1 "$(pattern 4)" "$r"; done
  st=$(diff_regions $l0 $l1 "$LEN" "$RS")
  # shellcheck disable=SC2086  # region lists: one word per region
  [ "$(norm $st)" = "$(norm $dirty $cd)" ] || { fail "$c" "setup: legs differ in '$st', want '$dirty $cd'"; return 1; }

  slow_leg io-s1 $l1 3000 || { fail "$c" "cannot create the delay device"; return 1; }
  dmt create "$m" --table "$(mirror_table "$to" disk "$syn" 0 DMULOGD-TEST-INTEROP "$LEN" "$RS" $lg $l0 "$D/io-s1")" ||
    { fail "$c" "dmsetup create ($to) failed"; return 1; }
  # shellcheck disable=SC2086  # region lists: one word per region
  set -- $dirty
  nclean=$(( NREG - $# ))
  st=$(sync_counts "$m")
  [ "$st" = "$nclean $NREG" ] || { fail "$c" "first sync count '$st', want '$nclean $NREG' (the clean regions, no full resync)"; return 1; }
  st=$(log_status "$m")
  [ "$st" = "3 disk $(devno $lg) A" ] || { fail "$c" "log status '$st'"; return 1; }
  slow_leg io-s1 $l1 0 || { fail "$c" "cannot speed leg 1 up"; return 1; }
  wait_sync "$m" 60 || { fail "$c" "never got in sync"; return 1; }
  drop_caches
  st=$(diff_regions $l0 $l1 "$LEN" "$RS")
  # shellcheck disable=SC2086  # region lists: one word per region
  [ "$(norm $st)" = "$(norm $cd)" ] || { fail "$c" "after resync the legs differ in '$st', want only the clean region '$cd' (dirty ones resynced, clean one left alone)"; return 1; }
  same_content "$c" $l0 /tmp/expect "$LEN" || { fail "$c" "leg 0 changed"; return 1; }
  # A write under this log: its region is dirty on disk while in flight.
  slow_leg io-s1 $l1 1000 || return 1
  inflight_dirty "$c" "$m" $lg 9 || return 1
  slow_leg io-s1 $l1 0 || return 1
  wait_sync "$m" 60 || { fail "$c" "not in sync after the in-flight write"; return 1; }
  dmt remove "$m" || { fail "$c" "dmsetup remove failed"; return 1; }
  dmt remove io-s1 || { fail "$c" "removing the delay device failed"; return 1; }
  # put the clean region right again for the next round
  region_copy $l0 $l1 "$cd"
  drop_caches
  same_content "$c" $l0 $l1 "$LEN" || { fail "$c" "legs differ after the round"; return 1; }
  pass "$c"
}

# kernel_log_setup CASE: the kernel's disk log writes /dev/ram2 first.
kernel_log_setup() {
  local c=$1 l0=/dev/ram0 l1=/dev/ram1 lg=/dev/ram2
  fill $l0 "$(pattern 3)" "$LEN"; fill $l1 "$(pattern 3)" "$LEN"; fill $lg /dev/zero 2048
  expect_from $l0 "$LEN"
  dmt create io-k0 --table "$(mirror_table k disk nosync 0 - "$LEN" "$RS" $lg $l0 $l1)" || { fail "$c" "create (kernel disk log) failed"; return 1; }
  wr "$D/io-k0" "$(pattern 1)" 0 $(( 8 * RS * 512 )) || { fail "$c" "writes failed"; return 1; }
  wait_sync io-k0 60 || { fail "$c" "not in sync"; return 1; }
  dmt remove io-k0 || { fail "$c" "remove failed"; return 1; }
}

interop() {
  kernel_log_setup interop-setup || return 1
  pass interop-setup
  # kernel -> dmulogd, then dmulogd -> kernel, then once more each way
  takeover interop-k2u kernel u "3 7 12" 5 || return 1
  takeover interop-u2k dmulogd k "2 9 10" 14 || return 1
  takeover interop-k2u-again kernel u "0 15" 8 || return 1
}

t_interop() {
  with_daemon interop interop
}
