# shellcheck shell=dash
# Scenario 7: the log device fails under writes.  Mirror A's disk log sits on
# a dm-linear device that is switched to the `error` target while A is being
# written; mirror B, served by the same log server, has a healthy log.
# The log server must answer (an error, not silence): dmsetup status of A
# returns and shows the log D (I/O error) or F (flush error); B keeps
# working; nothing in the kernel breaks.  With handle_errors the kernel then
# holds A's writes until A is suspended (dm-raid1), which errors them.

logfail() {
  local c=$1 kind=$2 a=lf-a b=lf-b lgd=lf-log wpid st t0 i
  fill /dev/ram0 "$(pattern 3)" "$LEN"; fill /dev/ram1 "$(pattern 3)" "$LEN"
  fill /dev/ram3 "$(pattern 3)" "$LEN"; fill /dev/ram4 "$(pattern 3)" "$LEN"
  fill /dev/ram2 /dev/zero 2048; fill /dev/ram5 /dev/zero 2048
  dmt create $lgd --table "0 2048 linear /dev/ram2 0" || { fail "$c" "cannot create the log's linear device"; return 1; }
  dmt create $a --table "$(mirror_table "$kind" disk nosync 0 DMULOGD-TEST-LOGFAIL-A "$LEN" "$RS" "$D/$lgd" /dev/ram0 /dev/ram1)" ||
    { fail "$c" "create mirror A failed"; return 1; }
  dmt create $b --table "$(mirror_table "$kind" disk nosync 0 DMULOGD-TEST-LOGFAIL-B "$LEN" "$RS" /dev/ram5 /dev/ram3 /dev/ram4)" ||
    { fail "$c" "create mirror B failed"; return 1; }
  wr "$D/$a" "$(pattern 1)" 0 1048576 || { fail "$c" "first writes to A failed"; return 1; }

  # A is written to, region after region, while its log device dies.
  bg a_writer "$D/$a"
  wpid=$BG_PID
  # shellcheck disable=SC2016  # eval expands it at each poll
  wait_for 30 eval '[ $(writes_done dm-$(dm_minor '$a')) -ge 300 ]' || { fail "$c" "writes to A did not get going"; return 1; }
  say "$c: switching A's log device to the error target"
  # shellcheck disable=SC2015  # the || branch is for either step failing
  dmt load $lgd --table "0 2048 error" && dmt resume $lgd || { fail "$c" "cannot switch the log device to error"; return 1; }
  # the next marks need a flush of the log: it fails
  t0=$(now)
  # shellcheck disable=SC2016  # eval expands it at each poll
  if ! wait_for 60 eval 'case "$(log_status '$a')" in *" D"|*" F") true ;; *) false ;; esac'; then
    fail "$c" "log status of A still '$(log_status $a)' 60 s after its device failed"; return 1
  fi
  st=$(log_status $a)
  say "$c: A's log status after $(( $(now) - t0 )) s: '$st'; A: $(dmt status $a)"
  case "$st" in "3 disk $(devno "$D/$lgd") "[DF]) ;; *) fail "$c" "log status of A is '$st', want '3 disk $(devno "$D/$lgd") D|F'"; return 1 ;; esac
  if [ "$kind" = u ]; then
    daemon_alive || { fail "$c" "dmulogd died after the log device failed"; return 1; }
  fi

  # B is unaffected.
  expect_from /dev/ram3 "$LEN"
  write_all "$D/$b" || { fail "$c" "writes to B failed while A's log is dead"; return 1; }
  wait_sync $b 60 || { fail "$c" "B not in sync"; return 1; }
  check_content "$c" "$D/$b" /dev/ram3 /dev/ram4 || return 1
  st=$(log_status $b)
  [ "$st" = "3 disk $(devno /dev/ram5) A" ] || { fail "$c" "B's log status '$st' after A's log failed"; return 1; }

  # Suspending A errors its held writes; then A goes away cleanly.
  kill "$wpid" 2>/dev/null
  dmt suspend $a || say "$c: suspend of A returned an error (its log is dead)"
  wait_for 60 eval '! pidof dd >/dev/null' || { fail "$c" "writes to A still stuck after suspending A"; return 1; }
  dmt remove $a || { fail "$c" "cannot remove A"; return 1; }
  if [ "$kind" = u ]; then
    daemon_alive || { fail "$c" "dmulogd died"; return 1; }
  fi
  # B still answers and still writes.
  wr "$D/$b" "$(pattern 2)" 0 1048576 || { fail "$c" "writes to B failed after A was removed"; return 1; }
  wait_sync $b 60 || { fail "$c" "B not in sync at the end"; return 1; }
  check_content "$c" "$D/$b" /dev/ram3 /dev/ram4 || return 1
  dmt remove $b || { fail "$c" "cannot remove B"; return 1; }
  pass "$c"
}

# a_writer DEV: 4 KiB direct writes, one per region in turn, until stopped
# (or until a write fails).
a_writer() {
  local i=0
  while :; do
    dd if=/tmp/pat1 of="$1" bs=4096 count=1 seek=$(( (i % NREG) * RS / 8 + i / NREG % 128 )) \
       oflag=direct conv=notrunc 2>/dev/null || return 1
    i=$(( i + 1 ))
  done
}

# shellcheck disable=SC2034  # read by run_test
TMO_t_klogfail=200 TMO_t_logfail=200
t_klogfail() { logfail k-logfail k; }
t_logfail() { with_daemon logfail logfail logfail u; }
