# shellcheck shell=dash
# Scenario 3: table reloads with the same uuid.  While a table sits in the
# inactive slot the kernel has two logs with one uuid and different luids;
# dmulogd must keep them apart, keep the live one live, and hand a disk
# log's state over on resume without a full resync.

# tables_present DEV -> "LIVE", "LIVE & INACTIVE", ...
tables_present() { dms info "$1" | sed -n 's/^Tables present: *//p'; }

# check_counts CASE DEV WANT("N M") WHAT
check_counts() {
  local got; got=$(sync_counts "$2")
  [ "$got" = "$3" ] && return 0
  fail "$1" "$4: sync count '$got', want '$3' (status: $(dmt status "$2"))"
}

reload_disk() {
  local c=reload-disk m=rl-disk l0=/dev/ram0 l1=/dev/ram1 lg=/dev/ram2 uuid=DMULOGD-TEST-RELOAD tbl st
  fill $l0 "$(pattern 3)" "$LEN"; fill $l1 "$(pattern 4)" "$LEN"; fill $lg /dev/zero 2048
  expect_from $l0 "$LEN"
  slow_leg rl-s1 $l1 0 || { fail $c "cannot create the delay device"; return 1; }
  # No sync/nosync argument: a fresh log device means a full resync, the
  # reloaded table then takes the on-disk state as it is.
  tbl=$(mirror_table u disk - 0 $uuid "$LEN" "$RS" $lg $l0 "$D/rl-s1")
  say "$c: $tbl"
  dmt create $m --table "$tbl" || { fail $c "dmsetup create failed"; return 1; }
  write_all "$D/$m" || { fail $c "writes failed"; return 1; }
  wait_sync $m 120 || { fail $c "never got in sync"; return 1; }
  check_content $c "$D/$m" $l0 $l1 || return 1
  dmesg_mark

  # 1. load + resume: the inactive log takes over the live one's device.
  dmt load $m --table "$tbl" || { fail $c "dmsetup load (same uuid) failed"; return 1; }
  st=$(tables_present $m)
  [ "$st" = "LIVE & INACTIVE" ] || { fail $c "after load: tables present '$st'"; return 1; }
  check_counts $c $m "$NREG $NREG" "with a table in the inactive slot" || return 1
  # the live log still serves writes
  wr "$D/$m" "$(pattern 2)" $(( 3 * RS * 512 )) 65536 || { fail $c "write with an inactive table loaded failed"; return 1; }
  wait_sync $m 60 || { fail $c "not in sync with an inactive table loaded"; return 1; }
  # Any resync from here on would take >= 3 s per region: "right after the
  # swap" is then well defined.
  slow_leg rl-s1 $l1 3000 || { fail $c "cannot slow leg 1"; return 1; }
  dmt resume $m || { fail $c "dmsetup resume (swap) failed"; return 1; }
  check_counts $c $m "$NREG $NREG" "right after the swap (a full resync would start at 0)" || return 1
  st=$(tables_present $m)
  [ "$st" = "LIVE" ] || { fail $c "after the swap: tables present '$st'"; return 1; }
  st=$(log_status $m)
  [ "$st" = "3 disk $(devno $lg) A" ] || { fail $c "log status after the swap '$st'"; return 1; }
  slow_leg rl-s1 $l1 0 || { fail $c "cannot speed leg 1 up"; return 1; }
  write_all "$D/$m" || { fail $c "writes after the swap failed"; return 1; }
  wait_sync $m 120 || { fail $c "never got in sync after the swap"; return 1; }
  check_content $c "$D/$m" $l0 $l1 || return 1

  # 2. load + clear: the inactive log goes, the live one must stay.
  dmt load $m --table "$tbl" || { fail $c "second dmsetup load failed"; return 1; }
  dmt clear $m || { fail $c "dmsetup clear failed"; return 1; }
  st=$(tables_present $m)
  [ "$st" = "LIVE" ] || { fail $c "after clear: tables present '$st'"; return 1; }
  check_counts $c $m "$NREG $NREG" "after load + clear" || return 1
  write_all "$D/$m" || { fail $c "writes after clear failed"; return 1; }
  wait_sync $m 120 || { fail $c "never got in sync after clear"; return 1; }
  check_content $c "$D/$m" $l0 $l1 || return 1
  slow_leg rl-s1 $l1 3000 || { fail $c "cannot slow leg 1"; return 1; }
  # shellcheck disable=SC2015  # the || branch is for either step failing
  dmt suspend $m && dmt resume $m || { fail $c "suspend/resume after clear failed"; return 1; }
  check_counts $c $m "$NREG $NREG" "right after suspend + resume" || return 1
  slow_leg rl-s1 $l1 0
  dmt remove $m || { fail $c "dmsetup remove failed"; return 1; }
  st=$(disk_dirty $lg "$NREG")
  [ -z "${st# }" ] || { fail $c "regions left dirty on disk after a clean remove: $st"; return 1; }
  st=$(dm_complaints)
  [ -z "$st" ] || { fail $c "kernel complained (lost log?): $st"; return 1; }
  pass $c
}

# A core log reloaded with another region size: the region count in the
# status tells which of the two logs answers.
reload_core() {
  local c=reload-core m=rl-core l0=/dev/ram0 l1=/dev/ram1 uuid=DMULOGD-TEST-RELOAD-CORE t1 t2
  fill $l0 "$(pattern 3)" "$LEN"; fill $l1 "$(pattern 3)" "$LEN"
  expect_from $l0 "$LEN"
  t1=$(mirror_table u core nosync 0 $uuid "$LEN" "$RS" - $l0 $l1)
  t2=$(mirror_table u core nosync 0 $uuid "$LEN" $(( RS / 2 )) - $l0 $l1)
  dmt create $m --table "$t1" || { fail $c "dmsetup create failed"; return 1; }
  dmesg_mark
  check_counts $c $m "$NREG $NREG" "fresh" || return 1
  dmt load $m --table "$t2" || { fail $c "dmsetup load (region size $(( RS / 2 ))) failed"; return 1; }
  check_counts $c $m "$NREG $NREG" "live log with an inactive one loaded" || return 1
  write_all "$D/$m" || { fail $c "writes with an inactive table loaded failed"; return 1; }
  wait_sync $m 60 || { fail $c "not in sync"; return 1; }
  dmt clear $m || { fail $c "dmsetup clear failed"; return 1; }
  check_counts $c $m "$NREG $NREG" "after clear" || return 1
  wr "$D/$m" "$(pattern 2)" 0 1048576 || { fail $c "write after clear failed"; return 1; }
  dmt load $m --table "$t2" || { fail $c "dmsetup load failed"; return 1; }
  dmt resume $m || { fail $c "dmsetup resume (swap) failed"; return 1; }
  check_counts $c $m "$(( NREG * 2 )) $(( NREG * 2 ))" "after the swap to region size $(( RS / 2 ))" || return 1
  local RS=$(( RS / 2 )) NREG=$(( NREG * 2 ))
  write_all "$D/$m" || { fail $c "writes after the swap failed"; return 1; }
  wait_sync $m 60 || { fail $c "not in sync after the swap"; return 1; }
  check_content $c "$D/$m" $l0 $l1 || return 1
  dmt remove $m || { fail $c "dmsetup remove failed"; return 1; }
  st=$(dm_complaints)
  [ -z "$st" ] || { fail $c "kernel complained (lost log?): $st"; return 1; }
  pass $c
}

t_reload() {
  local rc=0
  with_daemon reload-disk reload_disk || rc=1
  with_daemon reload-core reload_core || rc=1
  return $rc
}
