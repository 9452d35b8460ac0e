# shellcheck shell=dash
# `make demo`: a guided tour.  Lines starting "DEMO| " are what demo.sh shows.

demo() { echo "DEMO| $*"; }
# demo_run CMD...: show the command and its output; keeps its exit status.
demo_run() {
  local rc
  echo "DEMO| \$ $*"
  "$@" > /tmp/demo.out 2>&1; rc=$?
  sed 's/^/DEMO|     /' /tmp/demo.out
  [ $rc = 0 ] || echo "DEMO|     (exit status $rc)"
  return $rc
}

# shellcheck disable=SC2034  # read by run_test
TMO_t_demo=400
t_demo() {
  local c=demo m=demo l0=/dev/ram0 l1=/dev/ram1 lg=/dev/ram2 tbl t0 t1 old wpid sysn n
  demo "Linux $(uname -r) in QEMU; dm-mirror and dm-log-userspace are loaded."
  demo "Legs: /dev/ram0 and /dev/ram1 (8 MiB used of each); log device: /dev/ram2."
  fill $l0 "$(pattern 3)" "$LEN"; fill $l1 "$(pattern 4)" "$LEN"; fill $lg /dev/zero 2048
  expect_from $l0 "$LEN"
  demo ""
  demo "1. Start the log server; --daemon returns once it listens."
  demo "\$ dmulogd --daemon --pidfile $PIDF 2>>$DLOG"
  daemon_start || { fail $c "dmulogd did not start"; return 1; }
  demo "   dmulogd runs as pid $(daemon_pid); it logs to stderr:"
  grep -v '^---' "$DLOG" | sed 's/^/DEMO|     /'
  demo ""
  demo "2. A mirror whose dirty log is served by dmulogd, kept on /dev/ram2."
  tbl=$(mirror_table u disk - 0 DEMO-MIRROR "$LEN" "$RS" $lg $l0 $l1)
  demo "\$ dmsetup create $m --table '$tbl'"
  dms create $m --table "$tbl" || { fail $c "dmsetup create failed"; return 1; }
  demo "   The legs started with different data and the log device was blank, so"
  demo "   every region started out of sync; the kernel copies leg 0 to leg 1, region"
  demo "   by region, asking dmulogd what to copy next (GET_RESYNC_WORK)."
  demo_run dmsetup table $m
  wait_sync $m 120 || { fail $c "never got in sync"; return 1; }
  demo_run dmsetup status $m
  demo "   (16/16: all 16 regions in sync; AA: both legs alive; '3 disk 1:2 A': the log is alive.)"
  drop_caches
  demo "   legs identical after the resync: $(same_content $c $l0 $l1 "$LEN" >/dev/null && echo yes || echo NO)"
  demo_run dmsetup deps $m
  demo "   (the log device is a dependency, like the legs)"
  demo ""
  demo "3. Write 8 MiB of random data with direct I/O."
  t0=$(cut -d' ' -f1 /proc/uptime)
  wr "$D/$m" "$(pattern 1)" 0 $(( LEN * 512 )) || { fail $c "writes failed"; return 1; }
  t1=$(cut -d' ' -f1 /proc/uptime)
  demo "   done in $(echo "$t0 $t1" | awk '{ printf "%.1f", $2 - $1 }') s (emulated CPU, no KVM)."
  wait_sync $m 60 || { fail $c "not in sync"; return 1; }
  drop_caches
  demo "   legs identical: $(same_content $c $l0 $l1 "$LEN" >/dev/null && echo yes || echo NO)"
  demo_run dmulogd inspect $lg
  demo "   (what is on the log device now: header + one bit per region, 1 = clean)"
  demo ""
  demo "4. Kill dmulogd with SIGKILL in the middle of 8 MiB of 4 KiB writes, start it again."
  sysn=dm-$(dm_minor $m)
  bg wr "$D/$m" "$(pattern 2)" 0 $(( LEN * 512 )) 4096
  wpid=$BG_PID
  # shellcheck disable=SC2016  # eval expands it at each poll
  wait_for 60 eval '[ $(writes_done '"$sysn"') -ge 256 ]' || { fail $c "writes did not start"; return 1; }
  old=$(daemon_pid)
  dmesg_mark
  demo_run kill -9 "$old"
  wait_for 10 eval '! alive '"$old"
  demo "   The kernel now gets no answers; mirror writes wait."
  demo "\$ dmulogd --daemon --pidfile $PIDF 2>>$DLOG"
  daemon_start || { fail $c "dmulogd did not start again"; return 1; }
  wait_for 90 eval 'dmesg_since | grep -q "Reconnected to userspace log server"' || { fail $c "no reconnection"; return 1; }
  demo "   The kernel's side (dmesg):"
  dmesg_since | grep -E 'userspace|dm_ulog|Request timed out' | sed 's/^/DEMO|     /'
  demo "   (the request in flight at the kill timed out; the new dmulogd answered"
  demo "   'unknown log', so the kernel sent the table again (CTR) and RESUME, and the"
  demo "   log came back from /dev/ram2)"
  wait_for 180 eval '! alive '"$wpid" || { fail $c "writes stuck"; return 1; }
  wait "$wpid" || { fail $c "writes failed"; return 1; }
  wait_sync $m 120 || { fail $c "not in sync after the restart"; return 1; }
  drop_caches
  demo "   Writes finished. In sync: $(sync_counts $m | tr ' ' /). Legs identical and equal to what was written: $(check_content $c "$D/$m" $l0 $l1 >/dev/null && echo yes || echo NO)"
  demo ""
  demo "5. SIGUSR1: one state line per log (on dmulogd's stderr):"
  n=$(wc -l < "$DLOG")
  kill -USR1 "$(daemon_pid)"
  # shellcheck disable=SC2016  # eval expands it at each poll
  wait_for 10 eval '[ $(wc -l < $DLOG) -gt '"$n"' ]' || demo "   (nothing logged)"
  tail -n +$(( n + 1 )) "$DLOG" | sed 's/^/DEMO|     /'
  demo ""
  demo "6. Remove the mirror; the log is left clean on disk."
  demo_run dmsetup --noudevsync remove $m || { fail $c "remove failed"; return 1; }
  demo_run dmulogd inspect $lg
  demo "   dmulogd's own log is in the serial log (lines 'dmulogd| ')."
  sed 's/^/dmulogd| /' "$DLOG"
  check_content $c $l0 $l0 $l1 >/dev/null || { fail $c "legs differ at the end"; return 1; }
  pass $c
}
