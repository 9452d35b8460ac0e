# shellcheck shell=dash
# Self-test of the harness: plant the faults the scenarios look for and
# check that the same check functions catch them (no dmulogd involved).

# shellcheck disable=SC2034  # read by run_test
TMO_t_selftest=200
t_selftest() {
  local c=selftest out l0=/dev/ram0 l1=/dev/ram1
  # 1. One changed 4 KiB block in a leg: the content check fails and names
  #    the region.
  fill $l0 "$(pattern 3)" "$LEN"; fill $l1 "$(pattern 3)" "$LEN"
  expect_from $l0 "$LEN"
  dd if="$(pattern 4)" of=$l1 bs=4096 count=1 seek=$(( 6 * RS / 8 + 2 )) oflag=direct conv=notrunc 2>/dev/null
  out=$(NEGATIVE=1 check_content planted $l0 $l0 $l1) && { fail $c "check_content missed a changed block"; return 1; }
  case "$out" in *"in regions: 6 "*) ;; *) fail $c "check_content did not name region 6: $out"; return 1 ;; esac
  # 2. A region that differs between the legs but is clean on disk: the
  #    power-cut check reports a lost mark.
  out=$(NEGATIVE=1 check_marks planted "3 5 9" "1 3 9") && { fail $c "check_marks missed a lost mark"; return 1; }
  case "$out" in *"region 5 differs"*) ;; *) fail $c "check_marks did not name region 5: $out"; return 1 ;; esac
  check_marks $c "3 9" "1 3 9" || return 1
  # 3. A full resync where only the dirty regions should be resynced (the
  #    kernel's disk log told to 'sync'): the takeover check catches it.
  kernel_log_setup $c || return 1
  out=$(NEGATIVE=1 takeover planted kernel k "3 7" 5 sync) && { fail $c "takeover checks missed a full resync"; return 1; }
  case "$out" in *"first sync count '0 16'"*) ;; *) fail $c "takeover did not report the full resync: $out"; return 1 ;; esac
  teardown || return 1
  # 4. The on-disk bitmap reader sees planted dirty bits.
  kernel_log_setup $c || return 1
  disk_set_dirty /dev/ram2 0 7 8 15
  out=$(disk_dirty /dev/ram2 "$NREG")
  # shellcheck disable=SC2086  # region lists: one word per region
  [ "$(norm $out)" = "0 7 8 15" ] || { fail $c "disk_dirty read '$out' after setting 0 7 8 15"; return 1; }
  pass $c
}
