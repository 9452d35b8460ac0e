# shellcheck shell=dash
# Scenario 4: dmulogd killed with SIGKILL while writes are running (or
# while idle: restart-idle), then started again.  The kernel must find the new server ("Reconnected to
# userspace log server"), re-create the log (CTR + RESUME, state from disk
# for a disk log), the writes must finish and the mirror end in sync.

restart_case() {
  local c=$1 type=$2 m=rs-$2 l0=/dev/ram0 l1=/dev/ram1 lg=/dev/ram2 tbl sysn wpid old st want
  fill $l0 "$(pattern 3)" "$LEN"; fill $l1 "$(pattern 3)" "$LEN"; fill $lg /dev/zero 2048
  expect_from $l0 "$LEN"
  tbl=$(mirror_table u "$type" nosync 0 "DMULOGD-TEST-$c" "$LEN" "$RS" $lg $l0 $l1)
  dmt create "$m" --table "$tbl" || { fail "$c" "dmsetup create failed"; return 1; }
  sysn=dm-$(dm_minor "$m")
  dmesg_mark
  # 8 MiB in 4 KiB direct writes: thousands of requests to the log server.
  bg wr "$D/$m" "$(pattern 1)" 0 $(( LEN * 512 )) 4096
  wpid=$BG_PID
  # shellcheck disable=SC2016  # eval expands it at each poll
  wait_for 60 eval '[ $(writes_done '"$sysn"') -ge 128 ]' ||
    { fail "$c" "the writes did not get going ($(writes_done "$sysn") done)"; return 1; }
  old=$(daemon_pid)
  kill -9 "$old"
  wait_for 10 eval '! alive '"$old" || { fail "$c" "dmulogd survived SIGKILL"; return 1; }
  alive "$wpid" || { fail "$c" "the writes were over before the kill: nothing tested"; return 1; }
  say "$c: killed dmulogd $old after $(writes_done "$sysn") writes; starting it again"
  daemon_start || { fail "$c" "dmulogd did not start again after SIGKILL (stale pid file $PIDF?)"; return 1; }
  wait_for 90 eval 'dmesg_since | grep -q "Reconnected to userspace log server"' ||
    { fail "$c" "the kernel never reconnected to the new dmulogd"; return 1; }
  wait_for 180 eval '! alive '"$wpid" || { fail "$c" "writes still stuck 180 s after the restart"; return 1; }
  wait "$wpid" || { fail "$c" "writes failed across the restart"; return 1; }
  say "$c: writes finished; $(dmesg_since | grep -c 'Request timed out') request timeouts, $(dmesg_since | grep -c 'Attempting to contact') reconnect attempts"
  wait_sync "$m" 60 || { fail "$c" "never got in sync after the restart: stuck at $(sync_counts "$m" | tr ' ' /)"; return 1; }
  st=$(dmesg_since | grep -E 'Insufficient space|Incomplete message' | head -n 3)
  check_content "$c" "$D/$m" $l0 $l1 || { say "$c: kernel said: ${st:-nothing unusual}"; return 1; }
  [ -z "$st" ] || { fail "$c" "kernel complained about a reply: $st"; return 1; }
  st=$(log_status "$m")
  if [ "$type" = disk ]; then want="3 disk $(devno $lg) A"; else want="1 core"; fi
  [ "$st" = "$want" ] || { fail "$c" "log status after the restart '$st', want '$want'"; return 1; }
  dmt remove "$m" || { fail "$c" "dmsetup remove failed"; return 1; }
  if [ "$type" = disk ]; then
    st=$(disk_dirty $lg "$NREG")
    [ -z "${st# }" ] || { fail "$c" "regions left dirty on disk after a clean remove: $st"; return 1; }
  fi
  pass "$c"
}

# restart_idle CASE: SIGKILL while no I/O runs, start again, then write.
# The first request after the restart is the write's IN_SYNC for a log the
# new server does not know yet: the kernel must get it re-created (CTR +
# RESUME) and the write must still reach both legs.
restart_idle() {
  local c=$1 m=ri l0=/dev/ram0 l1=/dev/ram1 lg=/dev/ram2 old st
  fill $l0 "$(pattern 3)" "$LEN"; fill $l1 "$(pattern 3)" "$LEN"; fill $lg /dev/zero 2048
  expect_from $l0 "$LEN"
  dmt create $m --table "$(mirror_table u disk nosync 0 "DMULOGD-TEST-$c" "$LEN" "$RS" $lg $l0 $l1)" ||
    { fail "$c" "dmsetup create failed"; return 1; }
  wr "$D/$m" "$(pattern 1)" 0 $(( LEN * 512 )) || { fail "$c" "first writes failed"; return 1; }
  wait_sync $m 60 || { fail "$c" "not in sync before the kill"; return 1; }
  check_content "$c" "$D/$m" $l0 $l1 || return 1
  dmesg_mark
  old=$(daemon_pid)
  kill -9 "$old"
  wait_for 10 eval '! alive '"$old" || { fail "$c" "dmulogd survived SIGKILL"; return 1; }
  daemon_start || { fail "$c" "dmulogd did not start again after SIGKILL"; return 1; }
  wr "$D/$m" "$(pattern 2)" $(( 5 * RS * 512 + 4096 )) 4096 4096 || { fail "$c" "4 KiB write after the restart failed"; return 1; }
  wr "$D/$m" "$(pattern 2)" $(( 9 * RS * 512 )) 65536 || { fail "$c" "64 KiB write after the restart failed"; return 1; }
  dmesg_since | grep -q "Reconnected to userspace log server" || { fail "$c" "writes done but the kernel never reconnected"; return 1; }
  st=$(dmesg_since | grep -E 'Insufficient space|Incomplete message' | head -n 3)
  drop_caches
  if ! same_content "$c" $l0 $l1 "$LEN"; then
    fail "$c" "a write right after the restart reached leg 0 only (the region stays 'in sync', so the legs stay different); kernel said: ${st:-nothing}"
    return 1
  fi
  [ -z "$st" ] || { fail "$c" "kernel complained after the restart: $st"; return 1; }
  check_content "$c" "$D/$m" $l0 $l1 || return 1
  wait_sync $m 60 || { fail "$c" "not in sync after the restart"; return 1; }
  dmt remove $m || { fail "$c" "dmsetup remove failed"; return 1; }
  pass "$c"
}

# restart_dirty CASE: SIGKILL while a write to region 7 is held up by the
# slow leg (its mark is on disk, its clear not yet), start again.  The new
# server re-reads the log at the reconnect's RESUME and finds region 7
# dirty.  Checked, all reported together:
#  1. the mirror gets back to N/N by itself;
#  2. after one more write to region 7 and a suspend (which flushes the
#     log), every region where the legs differ is dirty on disk, so that the
#     next activation would resync it (a clean differing region is lost);
#  3. after resume the mirror syncs and both legs hold what was written.
restart_dirty() {
  local c=$1 m=rd l0=/dev/ram0 l1=/dev/ram1 lg=/dev/ram2 old wpid st diff dirty problems=
  fill $l0 "$(pattern 3)" "$LEN"; fill $l1 "$(pattern 3)" "$LEN"; fill $lg /dev/zero 2048
  expect_from $l0 "$LEN"
  slow_leg rd-s1 $l1 0 || { fail "$c" "cannot create the delay device"; return 1; }
  dmt create $m --table "$(mirror_table u disk nosync 0 "DMULOGD-TEST-$c" "$LEN" "$RS" $lg $l0 "$D/rd-s1")" ||
    { fail "$c" "dmsetup create failed"; return 1; }
  slow_leg rd-s1 $l1 3000 || { fail "$c" "cannot slow leg 1 down"; return 1; }
  bg wr "$D/$m" "$(pattern 1)" $(( 7 * RS * 512 )) 4096 4096
  wpid=$BG_PID
  # shellcheck disable=SC2016  # eval expands it at each poll
  wait_for 20 eval 'case " $(disk_dirty '"$lg"' '"$NREG"') " in *" 7 "*) true ;; *) false ;; esac' ||
    { fail "$c" "region 7 never showed dirty on disk while being written"; return 1; }
  dmesg_mark
  old=$(daemon_pid)
  kill -9 "$old"
  wait_for 10 eval '! alive '"$old" || { fail "$c" "dmulogd survived SIGKILL"; return 1; }
  alive "$wpid" || { fail "$c" "the write was over before the kill: nothing tested"; return 1; }
  daemon_start || { fail "$c" "dmulogd did not start again after SIGKILL"; return 1; }
  slow_leg rd-s1 $l1 0 || { fail "$c" "cannot speed leg 1 up"; return 1; }
  wait_for 60 eval '! alive '"$wpid" || { fail "$c" "the held write never finished"; return 1; }
  wait "$wpid" || { fail "$c" "the held write failed"; return 1; }
  wait_for 60 eval 'dmesg_since | grep -q "Reconnected to userspace log server"' ||
    { fail "$c" "the kernel never reconnected"; return 1; }
  # 1.
  if ! wait_sync $m 30; then
    problems="$problems; stuck at $(sync_counts $m | tr ' ' /) after the reconnect (the re-created log holds region 7 out of sync, but after a reconnect the kernel asks no resync work: its in_sync_hint still equals the region count, only a resume resets it)"
  fi
  # 2.
  wr "$D/$m" "$(pattern 2)" $(( 7 * RS * 512 + 65536 )) 65536 || { fail "$c" "write to region 7 after the restart failed"; return 1; }
  dmt suspend $m || { fail "$c" "dmsetup suspend failed"; return 1; }
  drop_caches
  diff=$(diff_regions $l0 $l1 "$LEN" "$RS")
  dirty=$(disk_dirty $lg "$NREG")
  say "$c: suspended: legs differ in '$diff', dirty on disk: '$dirty'"
  if ! NEGATIVE=1 check_marks "$c" "$diff" "$dirty" >/dev/null; then
    # shellcheck disable=SC2086  # region lists: one word per region
    problems="$problems; with the mirror suspended, regions '$(norm $diff)' differ between the legs but only '$(norm $dirty)' are dirty on disk: the next activation would never resync the others (a write after the reconnect went to leg 0 only, and the region's clean bit was persisted)"
  fi
  # 3.
  dmt resume $m || { fail "$c" "dmsetup resume failed"; return 1; }
  wait_sync $m 60 || problems="$problems; not in sync even after suspend + resume"
  st=$(dmesg_since | grep -E 'Insufficient space|Incomplete message' | head -n 3)
  [ -z "$st" ] || problems="$problems; kernel complained about a reply: $st"
  drop_caches
  same_content "$c" $l0 $l1 "$LEN" || problems="$problems; legs differ at the end"
  [ -z "$problems" ] || { fail "$c" "${problems#; }"; return 1; }
  check_content "$c" "$D/$m" $l0 $l1 || return 1
  dmt remove $m || { fail "$c" "dmsetup remove failed"; return 1; }
  pass "$c"
}

# shellcheck disable=SC2034  # read by run_test
TMO_t_restart=400
t_restart() {
  local rc=0
  with_daemon restart-disk restart_case restart-disk disk || rc=1
  with_daemon restart-core restart_case restart-core core || rc=1
  with_daemon restart-idle restart_idle restart-idle || rc=1
  with_daemon restart-dirty restart_dirty restart-dirty || rc=1
  return $rc
}
