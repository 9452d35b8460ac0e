# shellcheck shell=dash
# Scenarios 8-10: a log changing hands under a live mirror, a daemon
# restart between a table's load and its first resume, and requests the
# kernel cannot deliver (a full netlink receive queue).
#
# handover (scenario 8): one mapped device, its table reloaded live
#   (dmsetup load + resume) between dmulogd's and the kernel's `disk` log on
#   one log device, while a resync is running (leg 1 behind dm-delay, 3 s
#   per write, so a resync takes ~3 s per region).  The kernel's disk log
#   writes its bitmap with dm-io, past the log device's page cache, and a
#   live table keeps the device open across the reload, so any cached view
#   of the device (left by a udev probe, a backup, `dmulogd inspect`, or the
#   daemon itself) is stale: whoever takes the log must read the device.
#   The legs differ in every region before the kernel's `sync` resync, so a
#   region it leaves out shows as differing legs at the end.
#   - handover-kref: kernel (nosync) -> kernel (sync) -> kernel (no sync
#     word): the reference, proving the checks below.
#   - handover-inspect: `dmulogd inspect` of the log device while the
#     kernel's log is live and resyncing shows what is on the device (read
#     with O_DIRECT before and after it).
#   - handover-u2k2u: dmulogd (nosync) -> kernel (sync) -> dmulogd (no sync
#     word) before the resync ends: not in sync at once, resyncs the rest
#     (at least the regions still dirty on the device), legs end equal.
#   - handover-k2u2k: kernel (nosync) -> kernel (sync) -> dmulogd -> kernel,
#     each hand-over during the resync: each taker continues from what the
#     previous log left on the device; legs end equal.
#
# ctrrestart (scenario 9): `dmsetup load` (CTR reaches dmulogd), kill -9,
#   start dmulogd again, `dmsetup resume`.  The resume's RESUME gets -ESRCH
#   (the kernel ignores that), the next request reconnects (a CTR ending in
#   NUL, then RESUME).  That log was never resumed: it is a new activation,
#   not a live mirror to continue.  The log device holds a valid log with
#   every region clean; the legs differ in three regions.
#   - ctr-restart-sync: with `sync` the log starts all dirty, as the
#     kernel's own disk log writes it: while the resync runs, every region
#     where the legs differ is dirty on the device (else a crash now leaves
#     it unsynced for good); the legs end equal.
#   - ctr-restart-default: with no sync word the on-disk bitmap is trusted:
#     N/N right away (no full resync), the legs still differ in exactly the
#     three regions the log called clean.
#
# lostresume (scenario 10), with the VM's nlpoke helper (guest/nlpoke.c):
#   - lost-resume: the kernel's userspace_resume() sends RESUME once and
#     ignores a failure.  Lose it while dmulogd knows the log: kmirrord's
#     GET_SYNC_COUNT from the load is kept waiting (nlpoke swallows its
#     reply), dmulogd's receive queue is filled with junk, `dmsetup resume`
#     (RESUME cannot be delivered: "log resume failed"), the queue drains,
#     kmirrord resends after 15 s and carries on with a log dmulogd never
#     resumed.  Writes must then complete (the daemon gets the kernel to
#     reconnect: CTR + RESUME), the mirror stays healthy, the legs equal.
#   - overflow-writes: dmulogd stopped (SIGSTOP) during writes, its queue
#     overflowed with junk until the kernel fails to deliver a request, then
#     continued: every write completes, the kernel reconnects, nothing hangs.

HV_L0=/dev/ram0 HV_L1=/dev/ram1 HV_LG=/dev/ram2 HV_UUID=DMULOGD-TEST-HANDOVER

# hv_table KIND SYNC: the mirror's table with a log of KIND (u, k) and SYNC.
hv_table() { mirror_table "$1" disk "$2" 0 $HV_UUID "$LEN" "$RS" $HV_LG $HV_L0 "$D/hv-s1"; }

# hv_setup CASE M KIND SYNC: legs that differ in every region (leg 1 behind
# the delay device hv-s1, fast for now), a blank log device, mirror M.
hv_setup() {
  local c="$1"
  fill $HV_L0 "$(pattern 3)" "$LEN"; fill $HV_L1 "$(pattern 4)" "$LEN"; fill $HV_LG /dev/zero 2048
  expect_from $HV_L0 "$LEN"
  slow_leg hv-s1 $HV_L1 0 || { fail "$c" "cannot create the delay device"; return 1; }
  dmt create "$2" --table "$(hv_table "$3" "$4")" || { fail "$c" "dmsetup create ($3 $4) failed"; return 1; }
  in_sync "$2" || { fail "$c" "$3 nosync mirror not in sync: $(dmt status "$2")"; return 1; }
}

# hv_swap CASE M KIND SYNC: live reload of M to a log of KIND and SYNC.
hv_swap() {
  dmt load "$2" --table "$(hv_table "$3" "$4")" || { fail "$1" "dmsetup load ($3 ${4#-}) failed"; return 1; }
  dmt resume "$2" || { fail "$1" "dmsetup resume (to $3 ${4#-}) failed"; return 1; }
}

# hv_prime: read the log device through its page cache, as a udev probe,
# a backup or an older `dmulogd inspect` would; the kernel's dm-io writes
# never update what this leaves cached.
hv_prime() { dd if=$HV_LG of=/dev/null bs=4096 count=2 2>/dev/null; }

ndirty() { disk_dirty $HV_LG "$NREG" | wc -w; }
kernel_cleaned_one() { [ "$(ndirty)" -lt "$NREG" ]; }
# count_above DEV N: DEV's sync count is above N
count_above() { [ "$(sync_counts "$1" | cut -d' ' -f1)" -gt "$2" ]; }
# sorted WORDS -> the numbers in the string WORDS, sorted, one space apart
sorted() { printf '%s\n' "$1" | tr -s ' ' '\n' | grep -v '^$' | sort -n | tr '\n' ' ' | sed 's/ $//'; }
# subset A B: every word of A is in B
subset() {
  local w
  for w in $1; do case " $2 " in *" $w "*) ;; *) return 1 ;; esac; done
}

# hv_kernel_sync CASE M: live reload to the kernel's disk log with `sync`,
# leg 1 slow; wait until the kernel has resynced at least one region (its
# clean bit is on the device).  Sets HV_D0 to the dirty regions then.
hv_kernel_sync() {
  local c="$1" m="$2" n
  slow_leg hv-s1 $HV_L1 3000 || { fail "$c" "cannot slow leg 1 down"; return 1; }
  hv_swap "$c" "$m" k sync || return 1
  n=$(ndirty)
  [ "$n" = "$NREG" ] || { fail "$c" "setup: right after the swap to the kernel's sync log $n regions are dirty on the device, want all $NREG"; return 1; }
  wait_for 60 kernel_cleaned_one ||
    { fail "$c" "setup: the kernel's resync cleaned no region within 60 s ($(dmt status "$m"))"; return 1; }
  HV_D0=$(disk_dirty $HV_LG "$NREG")
  [ -n "$HV_D0" ] || { fail "$c" "setup: the kernel's resync already finished: nothing tested"; return 1; }
  say "$c: kernel resyncing, dirty on the device: $(sorted "$HV_D0")"
}

# hv_check_taker CASE M WHO: right after a hand-over to WHO during a resync
# that had HV_D0 dirty on the device just before the reload: some region is
# still out of sync, and none of the regions clean on the device then is
# resynced again.  Sets HV_C1 to the first sync count.
hv_check_taker() {
  local c="$1" m="$2" who="$3" st n
  st=$(sync_counts "$m")
  HV_C1=${st% *}
  n=$(( $(echo "$HV_D0" | wc -w) ))
  say "$c: first sync count after the hand-over to $who: ${st% *}/${st#* } ($n regions were dirty on the device just before the reload)"
  if [ "$HV_C1" = "$NREG" ]; then
    fail "$c" "right after the hand-over to $who the mirror is $NREG/$NREG in sync at once, but the device said regions '$(sorted "$HV_D0")' were still dirty (not resynced yet) just before the reload: $who took a stale view of the log device, and those regions will never be resynced"
    return 1
  fi
  [ "$HV_C1" -ge $(( NREG - n )) ] ||
    { fail "$c" "first sync count after the hand-over to $who is $HV_C1/$NREG: below the $(( NREG - n )) regions that were clean on the device (a needless resync of regions the previous log had finished)"; return 1; }
  st=$(log_status "$m")
  [ "$st" = "3 disk $(devno $HV_LG) A" ] || { fail "$c" "log status after the hand-over to $who: '$st'"; return 1; }
}

# hv_finish CASE M: leg 1 fast again; in sync; both legs hold what leg 0
# held (every region resynced, none from the wrong side); clean removal
# leaves no dirty region.
hv_finish() {
  local c="$1" m="$2" st
  slow_leg hv-s1 $HV_L1 0 || { fail "$c" "cannot speed leg 1 up"; return 1; }
  wait_sync "$m" 120 || { fail "$c" "never got in sync"; return 1; }
  drop_caches
  st=$(diff_regions $HV_L0 $HV_L1 "$LEN" "$RS")
  [ -z "$st" ] || { fail "$c" "in sync, but the legs differ in regions '$(sorted "$st")': the resync left them out"; return 1; }
  same_content "$c" $HV_L0 /tmp/expect "$LEN" || { fail "$c" "leg 0 changed (a resync copied the wrong way?)"; return 1; }
  dmt remove "$m" || { fail "$c" "dmsetup remove failed"; return 1; }
  dmt remove hv-s1 || { fail "$c" "removing the delay device failed"; return 1; }
  st=$(disk_dirty $HV_LG "$NREG")
  [ -z "$st" ] || { fail "$c" "regions '$st' left dirty on the device after a clean remove"; return 1; }
}

# inspect_live CASE: `dmulogd inspect` sees what is on the device while the
# kernel's log writes it: a resync only cleans regions, so inspect's dirty
# set lies between two direct reads taken before and after it.
inspect_live() {
  local c="$1" before after got
  before=$(disk_dirty $HV_LG "$NREG")
  got=$(inspect_dirty $HV_LG) || { fail "$c" "dmulogd inspect $HV_LG failed or printed no 'dirty regions:' line: $(cat /tmp/inspect.out)"; return 1; }
  after=$(disk_dirty $HV_LG "$NREG")
  [ -n "$after" ] || { fail "$c" "setup: no region dirty on the device during the resync: nothing tested"; return 1; }
  if ! subset "$after" "$got" || ! subset "$got" "$before"; then
    fail "$c" "dmulogd inspect $HV_LG says dirty '$(sorted "$got")' while the kernel's live log has '$(sorted "$before")' dirty on the device (O_DIRECT read; '$(sorted "$after")' just after): inspect read a stale cached copy of the device"
    return 1
  fi
  pass "$c"
}

# The kernel's own disk log taking over in the last step: the reference
# that the checks hold for a log that reads its device.
handover_kref() {
  local c=handover-kref m=hv
  hv_setup $c $m k nosync || return 1
  hv_prime
  hv_kernel_sync $c $m || return 1
  hv_swap $c $m k - || return 1
  hv_check_taker $c $m kernel || return 1
  hv_finish $c $m || return 1
  pass $c
}

handover_u2k2u() {
  local c=handover-u2k2u m=hv rc=0
  hv_setup $c $m u nosync || return 1
  hv_prime
  hv_kernel_sync $c $m || return 1
  inspect_live handover-inspect || rc=1
  hv_swap $c $m u - || return 1
  hv_check_taker $c $m dmulogd || return 1
  hv_finish $c $m || return 1
  pass $c
  return $rc
}

handover_k2u2k() {
  local c=handover-k2u2k m=hv prev st
  hv_setup $c $m k nosync || return 1
  hv_prime
  hv_kernel_sync $c $m || return 1
  hv_swap $c $m u - || return 1
  hv_check_taker $c $m dmulogd || return 1
  # dmulogd resyncs on; hand back once it has finished a region of its own
  prev=$HV_C1
  wait_for 60 count_above $m "$prev" ||
    { fail $c "dmulogd resynced no region within 60 s of the hand-over ($(dmt status $m))"; return 1; }
  st=$(sync_counts $m)
  HV_D0=$(disk_dirty $HV_LG "$NREG")
  [ -n "$HV_D0" ] || { fail $c "setup: dmulogd's resync already finished: nothing tested"; return 1; }
  hv_swap $c $m k - || return 1
  hv_check_taker $c $m kernel || return 1
  [ "$HV_C1" -ge "${st% *}" ] ||
    { fail $c "the kernel took over at $HV_C1/$NREG, dmulogd had ${st% *}/$NREG in sync before the reload: regions it had resynced were not clean on the device after its suspend (resynced again)"; return 1; }
  hv_finish $c $m || return 1
  pass $c
}

# shellcheck disable=SC2034  # read by run_test
TMO_t_handover=360
t_handover() {
  local rc=0
  with_daemon handover-kref handover_kref || rc=1
  with_daemon handover-u2k2u handover_u2k2u || rc=1
  with_daemon handover-k2u2k handover_k2u2k || rc=1
  return $rc
}

# ---------------------------------------------------------------- ctrrestart
CR_DIFF="5 9 13"

# ctr_restart CASE SYNC
ctr_restart() {
  local c="$1" syn="$2" m=cr l0=/dev/ram0 l1=/dev/ram1 lg=/dev/ram2 old st first dirty diff r
  fill $l0 "$(pattern 3)" "$LEN"; fill $l1 "$(pattern 3)" "$LEN"; fill $lg /dev/zero 2048
  expect_from $l0 "$LEN"
  # an earlier mirror, removed cleanly, left a valid log: every region clean
  if ! dmt create cr0 --table "$(mirror_table k disk nosync 0 - "$LEN" "$RS" $lg $l0 $l1)" || ! dmt remove cr0; then
    fail "$c" "setup: the earlier (kernel nosync) mirror failed"; return 1
  fi
  st=$(disk_header $lg)
  [ "$st" = "4d695272 2 $NREG" ] || { fail "$c" "setup: header '$st'"; return 1; }
  st=$(disk_dirty $lg "$NREG")
  [ -z "$st" ] || { fail "$c" "setup: regions '$st' dirty after a clean remove"; return 1; }
  # the legs differ in three regions, written behind the mirror's back
  for r in $CR_DIFF; do region_write $l1 "$(pattern 4)" "$r"; done
  slow_leg cr-s1 $l1 3000 || { fail "$c" "cannot create the delay device"; return 1; }

  dms create $m --notable || { fail "$c" "dmsetup create --notable failed"; return 1; }
  dmt load $m --table "$(mirror_table u disk "$syn" 0 "DMULOGD-TEST-$c" "$LEN" "$RS" $lg $l0 "$D/cr-s1")" ||
    { fail "$c" "dmsetup load failed"; return 1; }
  dmesg_mark
  old=$(daemon_pid)
  kill -9 "$old"
  wait_for 10 eval '! alive '"$old" || { fail "$c" "dmulogd survived SIGKILL"; return 1; }
  daemon_start || { fail "$c" "dmulogd did not start again after SIGKILL"; return 1; }
  dmt resume $m || { fail "$c" "dmsetup resume failed"; return 1; }
  # the RESUME got -ESRCH; the next request (kmirrord's resync work, or
  # this status) reconnects
  first=$(sync_counts $m)
  wait_for 30 eval 'dmesg_since | grep -q "Reconnected to userspace log server"' ||
    { fail "$c" "the kernel never reconnected to the new dmulogd"; return 1; }
  st=$(log_status $m)
  [ "$st" = "3 disk $(devno $lg) A" ] || { fail "$c" "log status '$st'"; return 1; }
  say "$c: first sync count after the restart: $(echo "$first" | tr ' ' /)"
  if [ "$syn" = sync ]; then
    [ "${first% *}" -lt "$NREG" ] || { fail "$c" "with 'sync' the mirror is $NREG/$NREG at once: no resync"; return 1; }
    # a crash from here on must find every differing region dirty
    dirty=$(disk_dirty $lg "$NREG")
    drop_caches
    diff=$(diff_regions $l0 $l1 "$LEN" "$RS")
    say "$c: resyncing at $(sync_counts $m | tr ' ' /): legs differ in '$(sorted "$diff")', dirty on the device: '$(sorted "$dirty")'"
    subset "$CR_DIFF" "$diff" ||
      { fail "$c" "setup: the resync reached the planted regions before the check (legs differ in '$(sorted "$diff")')"; return 1; }
    for r in $diff; do
      case " $dirty " in *" $r "*) ;; *)
        fail "$c" "region $r differs between the legs but is clean on the device while the 'sync' resync has not reached it (dirty: '$(sorted "$dirty")'): a crash now would never resync it; 'sync' starts a new log, every region dirty on the device, as the kernel's disk log writes it"
        return 1 ;;
      esac
    done
    slow_leg cr-s1 $l1 0 || { fail "$c" "cannot speed leg 1 up"; return 1; }
    wait_sync $m 120 || { fail "$c" "never got in sync"; return 1; }
    drop_caches
    st=$(diff_regions $l0 $l1 "$LEN" "$RS")
    [ -z "$st" ] || { fail "$c" "with 'sync', in sync but the legs still differ in '$(sorted "$st")': no full resync"; return 1; }
  else
    [ "$first" = "$NREG $NREG" ] ||
      { fail "$c" "first sync count $(echo "$first" | tr ' ' /), want $NREG/$NREG: every region was clean on the device, yet the log restarted between load and resume resyncs them"; return 1; }
    slow_leg cr-s1 $l1 0 || { fail "$c" "cannot speed leg 1 up"; return 1; }
    wr "$D/$m" "$(pattern 2)" $(( 7 * RS * 512 )) 65536 || { fail "$c" "write after the restart failed"; return 1; }
    wait_sync $m 60 || { fail "$c" "not in sync"; return 1; }
    drop_caches
    st=$(diff_regions $l0 $l1 "$LEN" "$RS")
    [ "$(sorted "$st")" = "$(sorted "$CR_DIFF")" ] ||
      { fail "$c" "the legs differ in '$(sorted "$st")', want exactly the regions the log called clean, '$CR_DIFF' (a region resynced or a write lost)"; return 1; }
  fi
  st=$(dmesg_since | grep -E 'Insufficient space|Incomplete message' | head -n 3)
  [ -z "$st" ] || { fail "$c" "kernel complained about a reply: $st"; return 1; }
  dmt remove $m || { fail "$c" "dmsetup remove failed"; return 1; }
  pass "$c"
}

# shellcheck disable=SC2034  # read by run_test
TMO_t_ctrrestart=300
t_ctrrestart() {
  local rc=0
  with_daemon ctr-restart-sync ctr_restart ctr-restart-sync sync || rc=1
  with_daemon ctr-restart-default ctr_restart ctr-restart-default - || rc=1
  return $rc
}

# ---------------------------------------------------------------- lostresume
# mirror_health DEV -> the leg health letters of dmsetup status ("AA")
mirror_health() {
  dmt status "$1" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\/[0-9]+$/) { print $(i + 2); exit } }'
}

# flood CASE: fill dmulogd's netlink receive queue until it drops one.
flood() {
  nlpoke flood > /tmp/flood.out 2>&1 || { fail "$1" "nlpoke flood: $(cat /tmp/flood.out)"; return 1; }
  say "$1: $(cat /tmp/flood.out)"
}

lost_resume() {
  local c=lost-resume m=lr l0=/dev/ram0 l1=/dev/ram1 lg=/dev/ram2 uuid=DMULOGD-TEST-LOST-RESUME np wpid st t0
  command -v nlpoke >/dev/null || { fail $c "nlpoke is missing from the initramfs"; return 1; }
  fill $l0 "$(pattern 3)" "$LEN"; fill $l1 "$(pattern 3)" "$LEN"; fill $lg /dev/zero 2048
  expect_from $l0 "$LEN"
  dms create $m --notable || { fail $c "dmsetup create --notable failed"; return 1; }
  : > /tmp/np.out
  bg nlpoke swallow "$(daemon_pid)" 14 $uuid > /tmp/np.out 2>&1
  np=$BG_PID
  wait_for 10 grep -q attached /tmp/np.out || { fail $c "nlpoke swallow did not attach: $(cat /tmp/np.out)"; return 1; }
  dmt load $m --table "$(mirror_table u disk nosync 0 $uuid "$LEN" "$RS" $lg $l0 $l1)" || { fail $c "dmsetup load failed"; return 1; }
  # kmirrord's GET_SYNC_COUNT after the load: dmulogd answers, nlpoke
  # swallows the answer and keeps dmulogd stopped
  wait_for 20 grep -q held /tmp/np.out ||
    { fail $c "dmulogd never answered a GET_SYNC_COUNT of the new log: $(cat /tmp/np.out)"; return 1; }
  t0=$(now)
  dmesg_mark
  flood $c || { kill "$np"; return 1; }
  dmt resume $m || { kill "$np"; fail $c "dmsetup resume failed"; return 1; }
  st=$(dmesg_since | grep -c 'log resume failed')
  kill "$np"; wait "$np"
  [ "$st" -ge 1 ] || { fail $c "setup: the RESUME was not lost (no 'log resume failed' in dmesg): $(dmesg_since | tail -n 5)"; return 1; }
  say "$c: RESUME lost, dmulogd held for $(( $(now) - t0 )) s: $(dmesg_since | grep -E 'Unable to send|log resume failed' | head -n 2 | tr '\n' ' ')"
  # kmirrord resends its GET_SYNC_COUNT after 15 s, once dmulogd has read
  # the junk, then asks for resync work: the log is in use, never resumed
  wait_for 40 eval 'dmesg_since | grep -q "Request timed out"' ||
    { fail $c "setup: kmirrord never resent its request: $(dmesg_since | tail -n 5)"; return 1; }
  # had the resend found the queue still full, the kernel would have
  # reconnected (CTR + RESUME) by itself: nothing tested
  st=$(dmesg_since | grep 'Unable to send' | grep -v 'request \[5\]')
  [ -z "$st" ] || { fail $c "setup: more than the RESUME failed to deliver (held too long?): $st"; return 1; }
  bg wr "$D/$m" "$(pattern 1)" 0 $(( LEN * 512 ))
  wpid=$BG_PID
  if ! wait_for 30 eval '! alive '"$wpid"; then
    st=$(grep -E 'MARK|FLUSH|not resumed' "$DLOG" | tail -n 2 | tr '\n' ' ')
    # a suspend errors the writes dm-raid1 holds, so they end
    dmt suspend $m
    fail $c "writes stuck for 30 s after a lost RESUME (dm-raid1 holds them: the log failed); mirror: $(dms status $m); dmulogd said: ${st:-nothing}"
    return 1
  fi
  wait "$wpid" || { fail $c "writes after the lost RESUME failed"; return 1; }
  wait_sync $m 60 || { fail $c "not in sync"; return 1; }
  st=$(mirror_health $m)
  [ "$st" = AA ] || { fail $c "mirror health '$st', want AA: $(dmt status $m)"; return 1; }
  st=$(log_status $m)
  [ "$st" = "3 disk $(devno $lg) A" ] || { fail $c "log status '$st'"; return 1; }
  check_content $c "$D/$m" $l0 $l1 || return 1
  say "$c: $(dmesg_since | grep -c 'Reconnected to userspace log server') reconnects"
  dmt remove $m || { fail $c "dmsetup remove failed"; return 1; }
  pass $c
}

# writes_at_least SYSNAME N: N writes completed on /sys/block/SYSNAME
writes_at_least() { [ "$(writes_done "$1")" -ge "$2" ]; }

overflow_writes() {
  local c=overflow-writes m=ow l0=/dev/ram0 l1=/dev/ram1 lg=/dev/ram2 pid sysn wpid st
  command -v nlpoke >/dev/null || { fail $c "nlpoke is missing from the initramfs"; return 1; }
  fill $l0 "$(pattern 3)" "$LEN"; fill $l1 "$(pattern 3)" "$LEN"; fill $lg /dev/zero 2048
  expect_from $l0 "$LEN"
  dmt create $m --table "$(mirror_table u disk nosync 0 DMULOGD-TEST-OVERFLOW "$LEN" "$RS" $lg $l0 $l1)" ||
    { fail $c "dmsetup create failed"; return 1; }
  sysn=dm-$(dm_minor $m)
  bg wr "$D/$m" "$(pattern 1)" 0 $(( 2 * 1048576 )) 4096
  wpid=$BG_PID
  wait_for 60 writes_at_least "$sysn" 64 || { fail $c "the writes did not get going"; return 1; }
  dmesg_mark
  pid=$(daemon_pid)
  kill -STOP "$pid"
  flood $c || { kill -CONT "$pid"; return 1; }
  # a status request now cannot be delivered: it waits in the kernel's
  # reconnect loop (as do the writes' requests once their 15 s are over)
  bg dmt status $m > /dev/null
  if ! wait_for 30 eval 'dmesg_since | grep -q "Unable to send"'; then
    kill -CONT "$pid"
    fail $c "setup: no request failed to deliver within 30 s: $(dmesg_since | tail -n 3)"
    return 1
  fi
  kill -CONT "$pid"
  alive "$wpid" || { fail $c "the writes were over before the overflow: nothing tested"; return 1; }
  wait_for 90 eval '! alive '"$wpid" || { fail $c "writes still stuck 90 s after the overflow"; return 1; }
  wait "$wpid" || { fail $c "writes failed across the overflow"; return 1; }
  dmesg_since | grep -q "Reconnected to userspace log server" || { fail $c "the kernel never reconnected"; return 1; }
  wait_sync $m 60 || { fail $c "not in sync after the overflow"; return 1; }
  check_content $c "$D/$m" $l0 $l1 || return 1
  st=$(dmesg_since | grep -E 'blocked for more than|Insufficient space|Incomplete message' | head -n 3)
  [ -z "$st" ] || { fail $c "kernel: $st"; return 1; }
  daemon_alive || { fail $c "dmulogd died"; return 1; }
  dmt remove $m || { fail $c "dmsetup remove failed"; return 1; }
  pass $c
}

# shellcheck disable=SC2034  # read by run_test
TMO_t_lostresume=240
t_lostresume() {
  local rc=0
  with_daemon lost-resume lost_resume || rc=1
  with_daemon overflow-writes overflow_writes || rc=1
  return $rc
}
