# shellcheck shell=dash
# Scenarios 1 and 2: mirrors over RAM disks with every kind of log.
#   kbase : the kernel's own core/disk logs (proves the harness, no dmulogd)
#   mirror: dmulogd core/disk, sync/nosync, integrated_flush
#   deps  : dmsetup deps lists a dmulogd disk log's device

# mirror_case CASE KIND TYPE SYNC IFLUSH
mirror_case() {
  local c=$1 kind=$2 type=$3 syn=$4 ifl=$5
  local l0=/dev/ram0 l1=/dev/ram1 lg=/dev/ram2 m=m-$1 uuid=DMULOGD-TEST-$1 tbl st want
  # sync: legs start different, so only a real resync makes them equal;
  # nosync: legs start equal, as nosync promises.
  fill $l0 "$(pattern 3)" "$LEN"
  if [ "$syn" = nosync ]; then fill $l1 "$(pattern 3)" "$LEN"; else fill $l1 "$(pattern 4)" "$LEN"; fi
  fill $lg /dev/zero 2048
  expect_from $l0 "$LEN"
  tbl=$(mirror_table "$kind" "$type" "$syn" "$ifl" "$uuid" "$LEN" "$RS" $lg $l0 $l1)
  say "$c: $tbl"
  dmt create "$m" --table "$tbl" || { fail "$c" "dmsetup create failed"; return 1; }

  st=$(dmt table "$m")
  case "$kind" in
    u) want="userspace" ;;
    k) want="mirror $type" ;;
  esac
  case " $st " in *" $want "*) ;; *) fail "$c" "table '$st' has no '$want'"; return 1 ;; esac
  [ "$kind" = u ] && case " $st " in *" $uuid "*) ;; *) fail "$c" "table '$st' lost the uuid"; return 1 ;; esac
  [ "$ifl" = 1 ] && case " $st " in *" integrated_flush "*) ;; *) fail "$c" "table '$st' lost integrated_flush"; return 1 ;; esac

  if [ "$type" = disk ]; then want="3 disk $(devno $lg) A"; else want="1 core"; fi
  st=$(log_status "$m")
  [ "$st" = "$want" ] || { fail "$c" "log status '$st', want '$want' (status: $(dmt status "$m"))"; return 1; }
  if [ "$syn" = nosync ]; then
    in_sync "$m" || { fail "$c" "nosync mirror not in sync at once: $(dmt status "$m")"; return 1; }
  else
    # The legs started different: only a real resync makes them equal.
    wait_sync "$m" 120 || { fail "$c" "initial resync never finished"; return 1; }
    drop_caches
    same_content "$c" $l0 $l1 "$LEN" || { fail "$c" "in sync by the status, but the legs differ: the initial resync did not copy leg 0"; return 1; }
  fi

  write_all "$D/$m" || { fail "$c" "writes failed"; return 1; }
  wait_sync "$m" 120 || { fail "$c" "never got in sync"; return 1; }
  st=$(log_status "$m")
  [ "$st" = "$want" ] || { fail "$c" "log status after writes '$st', want '$want'"; return 1; }
  check_content "$c" "$D/$m" $l0 $l1 || return 1

  dmt remove "$m" || { fail "$c" "dmsetup remove failed"; return 1; }
  if [ "$type" = disk ]; then
    st=$(disk_header $lg)
    [ "$st" = "4d695272 2 $NREG" ] || { fail "$c" "on-disk header after remove is '$st', want '4d695272 2 $NREG'"; return 1; }
    st=$(disk_dirty $lg "$NREG")
    [ -z "${st# }" ] || { fail "$c" "regions left dirty on disk after a clean remove: $st"; return 1; }
  fi
  st=$(dm_complaints)
  [ -z "$st" ] || { fail "$c" "kernel complained: $st"; return 1; }
  pass "$c"
}

t_kbase() {
  local rc=0
  mirror_case k-core-nosync k core nosync 0 || rc=1; teardown || rc=1
  mirror_case k-core-sync k core sync 0 || rc=1; teardown || rc=1
  mirror_case k-disk-sync k disk sync 0 || rc=1; teardown || rc=1
  mirror_case k-disk-nosync k disk nosync 0 || rc=1; teardown || rc=1
  return $rc
}

t_mirror() {
  local rc=0
  with_daemon u-core-nosync mirror_case u-core-nosync u core nosync 0 || rc=1
  with_daemon u-core-sync mirror_case u-core-sync u core sync 0 || rc=1
  with_daemon u-disk-sync mirror_case u-disk-sync u disk sync 0 || rc=1
  with_daemon u-disk-nosync mirror_case u-disk-nosync u disk nosync 0 || rc=1
  with_daemon u-disk-default mirror_case u-disk-default u disk - 0 || rc=1
  with_daemon u-core-iflush mirror_case u-core-iflush u core sync 1 || rc=1
  with_daemon u-disk-iflush mirror_case u-disk-iflush u disk nosync 1 || rc=1
  return $rc
}

# deps_case CASE KIND: dmsetup deps of a disk-log mirror lists the log device.
deps_case() {
  local c=$1 kind=$2 m=d-$1 lg=/dev/ram2 want got
  fill $lg /dev/zero 2048
  dmt create "$m" --table "$(mirror_table "$kind" disk nosync 0 "DMULOGD-TEST-$c" "$LEN" "$RS" $lg /dev/ram0 /dev/ram1)" ||
    { fail "$c" "dmsetup create failed"; return 1; }
  want=$(devno $lg | sed 's/:/, /')
  got=$(dmt deps "$m")
  case "$got" in *"($want)"*) ;; *) fail "$c" "deps '$got' do not list the log device ($want)"; return 1 ;; esac
  for want in /dev/ram0 /dev/ram1; do
    want=$(devno $want | sed 's/:/, /')
    case "$got" in *"($want)"*) ;; *) fail "$c" "deps '$got' do not list leg ($want)"; return 1 ;; esac
  done
  dmt remove "$m" || { fail "$c" "dmsetup remove failed"; return 1; }
  pass "$c"
}

t_deps() {
  local rc=0
  deps_case k-deps k || rc=1; teardown || rc=1
  with_daemon deps deps_case deps u || rc=1
  return $rc
}
