# shellcheck shell=dash
# shellcheck disable=SC3028  # busybox ash, which runs this, has $RANDOM
# Scenario 6: power cut with writes in flight, on persistent virtio disks
# (vda = leg 0, vdb = leg 1, behind dm-delay, vdc = log), over two boots.
# Boot 1 (powercut1): mirror with a dmulogd disk log (nosync over all-zero
#   legs), 32 direct writers (each with its own blocks), leg 1's writes held 1 s, then sysrq b.
# Boot 2 (powercut2): every region where the legs differ must be dirty in
#   the on-disk bitmap (else a mark was lost); the mirror comes back with
#   exactly those regions out of sync, resyncs them, the legs end identical.
# The cost of the cut (pcdirty): in the same boot 1, mirror B, a fixed
#   runtime of random writes over 2^21 regions, stopped a few seconds
#   before the cut; boot 2 counts B's regions left dirty on its log device.

PC_LEN=16384 PC_RS=256 PC_NREG=64 PC_WRITERS=32
# Writes held by the slow leg at the cut: enough to leave the legs
# different. Not all PC_WRITERS writers: with a log that flushes the legs (the
# kernel's, dmulogd's), the mirror's worker waits on the slow leg's flush
# and fewer writes reach it at a time.
# shellcheck disable=SC2034  # read in the eval strings below
PC_HELD=8
# Mirror B: 2^21 regions of 4 KiB, so its bitmap spans 65 pages (a log
# written lazily page by page shows); legs are dm-zero (only the log
# counts here), its log a slice of vdc past mirror A's.  PCB_WRITERS
# random 4 KiB direct writers (the workload's iodepth) for PCB_SECS, then
# at least PCB_SETTLE s idle before the cut.  Boot 2 allows at most the
# writes that can be in flight plus PCB_SLACK dirty regions.
PCB_LEN=16777216 PCB_RS=8 PCB_NREG=2097152
PCB_LOGOFF=1024 PCB_LOGLEN=1024
PCB_WRITERS=16 PCB_SECS=6 PCB_SETTLE=3 PCB_SLACK=8

pc_disks_ok() {
  local c=$1 d
  for d in vda vdb vdc; do
    [ -b /dev/$d ] || { fail "$c" "/dev/$d missing (virtio disks not attached?)"; return 1; }
  done
  # shellcheck disable=SC2015  # the || branch is for either step failing
  [ "$(sectors /dev/vda)" -ge $PC_LEN ] && [ "$(sectors /dev/vdb)" -ge $PC_LEN ] ||
    { fail "$c" "legs smaller than $PC_LEN sectors"; return 1; }
}

# check_marks CASE DIFFERING DIRTY: every differing region is dirty.
check_marks() {
  local r
  for r in $2; do
    case " $3 " in *" $r "*) ;; *) fail "$1" "region $r differs between the legs but is clean on disk (a lost mark)"; return 1 ;; esac
  done
}

# kmsg MSG: straight to the console through printk, which is synchronous:
# it is out on the serial line before the reset, unlike a tty write.
kmsg() { echo "<3>$*" > /dev/kmsg; }

# pc_writer DEV I: random 4 KiB direct writes of pattern 1, forever, to
# the blocks b with b % PC_WRITERS = I.  Each block has one writer, so no
# two writes to a block are ever in flight together: two such writes may
# land in either order on each leg, leaving the legs different in a
# region that is rightly clean (both writes completed), which the
# lost-mark check would blame on the log.
pc_writer() {
  while :; do
    # new data on every write, also when a block is written again
    dd if=/tmp/pat1 of="$1" bs=4096 count=1 \
       seek=$(( (RANDOM * 32768 + RANDOM) % (LEN / 8 / PC_WRITERS) * PC_WRITERS + $2 )) \
       skip=$(( RANDOM % 2048 )) oflag=direct conv=notrunc 2>/dev/null || return 1
  done
}

# pcb_writer DEV END: random 4 KiB direct writes over mirror B until
# uptime END.
pcb_writer() {
  while [ "$(now)" -lt "$2" ]; do
    dd if=/tmp/pat1 of="$1" bs=4096 count=1 seek=$(( (RANDOM * 32768 + RANDOM) % PCB_NREG )) \
       skip=$(( RANDOM % 2048 )) oflag=direct conv=notrunc 2>/dev/null || return 1
  done
}

# pcb_start CASE KIND: mirror B and its writers (PCB_PIDS).
pcb_start() {
  local c=$1 kind=$2 i end
  # shellcheck disable=SC2015  # the || branch is for either step failing
  dmt create pcb-z0 --table "0 $PCB_LEN zero" && dmt create pcb-z1 --table "0 $PCB_LEN zero" ||
    { fail "$c" "cannot create mirror B's dm-zero legs (dm-zero loaded? $(grep -c '^dm_zero ' /proc/modules))"; return 1; }
  dmt create pcb-log --table "0 $PCB_LOGLEN linear /dev/vdc $PCB_LOGOFF" ||
    { fail "$c" "cannot create mirror B's log slice of vdc"; return 1; }
  dmt create pcb --table "$(mirror_table "$kind" disk nosync 0 DMULOGD-TEST-PCDIRTY $PCB_LEN $PCB_RS "$D/pcb-log" "$D/pcb-z0" "$D/pcb-z1")" ||
    { fail "$c" "dmsetup create pcb (mirror B) failed"; return 1; }
  in_sync pcb || { fail "$c" "nosync mirror B not in sync: $(dmt status pcb)"; return 1; }
  pattern 1 >/dev/null
  end=$(( $(now) + PCB_SECS ))
  PCB_PIDS=
  i=0
  while [ $i -lt $PCB_WRITERS ]; do
    bg pcb_writer "$D/pcb" $end
    PCB_PIDS="$PCB_PIDS $BG_PID"
    i=$(( i + 1 ))
  done
}

# pcb_finish CASE: B's writers have stopped, B is idle PCB_SETTLE s.
pcb_finish() {
  local c=$1 p sysn
  for p in $PCB_PIDS; do
    wait "$p" || { fail "$c" "a writer of mirror B failed"; return 1; }
  done
  sysn=dm-$(dm_minor pcb)
  # shellcheck disable=SC2016  # eval expands it at each poll
  wait_for 30 eval '[ "$(inflight_writes '"$sysn"')" = 0 ]' || { fail "$c" "mirror B never got idle"; return 1; }
  sleep $PCB_SETTLE
  kmsg "pcdirty: mirror B: $(writes_done "$sysn") writes by $PCB_WRITERS writers in ${PCB_SECS}s over $PCB_NREG regions, idle since ${PCB_SETTLE}s"
}

# pile_up SYSN: wait until some writes are done, every writer is held up
# by the slow leg and leg 0 has finished its copies of those writes
# (nothing in flight on vda, not even inside QEMU): then the legs differ.
pile_up() {
  local n0; n0=$(writes_done "$1")
  # shellcheck disable=SC2016  # eval expands it at each poll
  wait_for 150 eval '[ $(writes_done '"$1"') -ge $(( '"$n0"' + 64 )) ] && [ $(delayed_writes pc-s1) -ge $PC_HELD ] && [ $(inflight_writes vda) = 0 ]'
}

# pc_load CASE KIND [restart] (KIND u: dmulogd, k: the kernel's disk log,
# as a reference).  With restart, dmulogd is killed with SIGKILL and
# started again under the load, and the power is cut after the kernel
# reconnected and writes piled up again.
pc_load() {
  local c=$1 kind=$2 m=pc lg=/dev/vdc i sysn old
  local LEN=$PC_LEN RS=$PC_RS NREG=$PC_NREG
  pc_disks_ok "$c" || return 1
  if [ "$kind" = u ]; then daemon_start || { fail "$c" "dmulogd did not start"; return 1; }; fi
  slow_leg pc-s1 /dev/vdb 1000 || { fail "$c" "cannot create the delay device"; return 1; }
  dmt create $m --table "$(mirror_table "$kind" disk nosync 0 DMULOGD-TEST-POWERCUT $LEN $RS $lg /dev/vda "$D/pc-s1")" ||
    { fail "$c" "dmsetup create failed"; return 1; }
  in_sync $m || { fail "$c" "nosync mirror not in sync: $(dmt status $m)"; return 1; }
  sysn=dm-$(dm_minor $m)
  PCB_PIDS=
  if [ "${3:-}" != restart ]; then pcb_start "$c" "$kind" || return 1; fi
  pattern 1 >/dev/null
  i=0
  while [ $i -lt $PC_WRITERS ]; do
    bg pc_writer "$D/$m" $i
    i=$(( i + 1 ))
  done
  if [ -n "$PCB_PIDS" ]; then pcb_finish "$c" || return 1; fi
  if ! pile_up "$sysn"; then
    fail "$c" "writes did not pile up: $(writes_done "$sysn") done, $(delayed_writes pc-s1) held by the slow leg, $(inflight_writes vda) in flight on leg 0"
    return 1
  fi
  if [ "${3:-}" = restart ]; then
    dmesg_mark
    old=$(daemon_pid)
    kill -9 "$old"
    wait_for 10 eval '! alive '"$old" || { fail "$c" "dmulogd survived SIGKILL"; return 1; }
    daemon_start || { fail "$c" "dmulogd did not start again"; return 1; }
    wait_for 90 eval 'dmesg_since | grep -q "Reconnected to userspace log server"' ||
      { fail "$c" "the kernel never reconnected"; return 1; }
    if ! pile_up "$sysn"; then
      fail "$c" "writes did not pile up after the restart: $(writes_done "$sysn") done, $(delayed_writes pc-s1) held, $(inflight_writes vda) in flight on leg 0"
      return 1
    fi
  fi
  # No dmsetup status here: it asks the log server, which may be busy
  # flushing the slow leg for longer than the leg holds a write.
  kmsg "powercut: $(writes_done "$sysn") writes done; cutting power once writes are held by the slow leg"
  kmsg "PASS $c"
  # Cut with nothing between the last look and the reset: a cut after the
  # held writes landed leaves the legs identical and tests nothing.
  # shellcheck disable=SC2016  # eval expands it at each poll
  wait_for 120 eval '[ $(delayed_writes pc-s1) -ge $PC_HELD ] && [ $(inflight_writes vda) = 0 ]' ||
    { fail "$c" "writes never held by the slow leg at the cut"; return 1; }
  echo b > /proc/sysrq-trigger
  sleep 30
  fail "$c" "still running after sysrq b"
}

pc_recover() {
  local c=$1 kind=$2 m=pc lg=/dev/vdc st dirty insp diff r first
  local LEN=$PC_LEN RS=$PC_RS NREG=$PC_NREG
  pc_disks_ok "$c" || return 1
  if [ "$kind" = u ]; then daemon_start || { fail "$c" "dmulogd did not start"; return 1; }; fi
  st=$(disk_header $lg)
  [ "$st" = "4d695272 2 $NREG" ] || { fail "$c" "on-disk header after the cut is '$st', want '4d695272 2 $NREG'"; return 1; }
  dirty=$(disk_dirty $lg $NREG)
  if [ -x /sbin/dmulogd ]; then
    insp=$(inspect_dirty $lg) || { fail "$c" "dmulogd inspect $lg failed"; return 1; }
    # shellcheck disable=SC2086  # region lists: one word per region
    [ "$(norm $insp)" = "$(norm $dirty)" ] || { fail "$c" "dmulogd inspect says dirty '$insp', the bitmap says '$dirty'"; return 1; }
  fi
  diff=$(diff_regions /dev/vda /dev/vdb $LEN $RS)
  # shellcheck disable=SC2086  # region lists: one word per region
  set -- $dirty; local nd=$#
  # shellcheck disable=SC2086  # region lists: one word per region
  set -- $diff; local nf=$#
  say "$c: $nf regions differ between the legs, $nd regions dirty on disk"
  # shellcheck disable=SC2086  # region lists: one word per region
  say "$c: differ: $(norm $diff)"
  # shellcheck disable=SC2086  # region lists: one word per region
  say "$c: dirty:  $(norm $dirty)"
  [ $nf -gt 0 ] || { fail "$c" "the power cut left the legs identical: nothing was tested"; return 1; }
  check_marks "$c" "$diff" "$dirty" || return 1
  [ $nd -lt $NREG ] || say "$c: (every region is dirty: the no-full-resync check is weak)"
  slow_leg pc-s1 /dev/vdb 3000 || { fail "$c" "cannot create the delay device"; return 1; }
  dmt create $m --table "$(mirror_table "$kind" disk - 0 DMULOGD-TEST-POWERCUT $LEN $RS $lg /dev/vda "$D/pc-s1")" ||
    { fail "$c" "dmsetup create failed"; return 1; }
  first=$(sync_counts $m)
  [ "$first" = "$(( NREG - nd )) $NREG" ] || { fail "$c" "first sync count '$first', want '$(( NREG - nd )) $NREG' (clean regions only)"; return 1; }
  slow_leg pc-s1 /dev/vdb 0 || { fail "$c" "cannot speed leg 1 up"; return 1; }
  wait_sync $m 180 || { fail "$c" "never got in sync"; return 1; }
  drop_caches
  st=$(diff_regions /dev/vda /dev/vdb $LEN $RS)
  [ -z "$st" ] || { fail "$c" "legs still differ after the resync in regions $st"; return 1; }
  dmt remove $m || { fail "$c" "dmsetup remove failed"; return 1; }
  st=$(disk_dirty $lg $NREG)
  [ -z "${st# }" ] || { fail "$c" "regions left dirty on disk after a clean remove: $st"; return 1; }
  pass "$c"
}

# pc_dirty CASE WHO: after the cut, count mirror B's dirty regions on its log
# device; at most the writes that can be in flight plus a few.
pc_dirty() {
  local c=$1 who=$2 st dirty n bound=$(( PCB_WRITERS + PCB_SLACK ))
  pc_disks_ok "$c" || return 1
  dmt create pcb-log --table "0 $PCB_LOGLEN linear /dev/vdc $PCB_LOGOFF" ||
    { fail "$c" "cannot create mirror B's log slice of vdc"; return 1; }
  st=$(disk_header "$D/pcb-log")
  [ "$st" = "4d695272 2 $PCB_NREG" ] || { fail "$c" "mirror B's on-disk header after the cut is '$st', want '4d695272 2 $PCB_NREG'"; return 1; }
  dirty=$(pcb_dirty "$D/pcb-log" $PCB_NREG)
  # shellcheck disable=SC2086  # region lists: one word per region
  set -- $dirty; n=$#
  echo "powercut-dirty: $who $n regions (in flight <= $PCB_WRITERS)"
  # shellcheck disable=SC2086  # the list on one line, one space apart
  say "$c: first dirty regions: $(echo $dirty | cut -d' ' -f1-20)"
  [ $n -le $bound ] || { fail "$c" "$n regions of mirror B dirty after the cut, more than the $PCB_WRITERS writes that can be in flight + $PCB_SLACK: clears did not reach the log device"; return 1; }
  pass "$c"
}

# pcb_dirty DEV NREG: disk_dirty for large, mostly clean bitmaps (skips
# all-clean lines of od's output).  bs=4096 keeps O_DIRECT (see disk_header).
pcb_dirty() {
  local bytes=$(( ($2 + 7) / 8 ))
  dd if="$1" bs=4096 count=$(( (1024 + bytes + 4095) / 4096 )) iflag=direct 2>/dev/null |
    od -An -tu1 -v -j1024 -N$bytes | awk -v n="$2" '
      /^( +255)+ *$/ { byte += NF; next }
      { for (i = 1; i <= NF; i++) { b = $i; if (b != 255) for (k = 0; k < 8; k++) { r = byte * 8 + k
          if (r < n && b % 2 == 0) printf "%d ", r; b = int(b / 2) } byte++ } }'
  echo
}

# shellcheck disable=SC2034  # read by run_test
TMO_t_powercut1=200 TMO_t_powercut2=400 \
  TMO_t_kpowercut1=200 TMO_t_rpowercut1=300 \
  TMO_t_rpowercut2=400 TMO_t_kpowercut2=400
t_powercut1() { pc_load powercut-load u; }
t_powercut2() { pc_recover powercut-recover u; }
t_kpowercut1() { pc_load k-powercut-load k; }
t_rpowercut1() { pc_load restart-powercut-load u restart; }
t_rpowercut2() { pc_recover restart-powercut-recover u; }
t_kpowercut2() { pc_recover k-powercut-recover k; }
t_pcdirty() { pc_dirty powercut-dirty dmulogd; }
t_kpcdirty() { pc_dirty k-powercut-dirty kernel; }
