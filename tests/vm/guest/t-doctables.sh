# shellcheck shell=dash
# Every mirror table line the README, dmulogd(8) and docs/protocol.md show
# (/vm/doc-tables, extracted on the host by tests/vm/doc-tables.sh), loaded
# into the real kernel as written: only the device names are swapped for
# this guest's (legs: dm-zero devices of the table's length; a disk log: a
# zeroed slice of /dev/ram2, named the way the document names its device,
# by path or by MAJ:MIN).  Each must load, report the documented log status
# ("3 disk MAJ:MIN A" / "1 core") and sync count N/N with N = length /
# region size, keep its uuid in `dmsetup table`, and a disk log must be a
# log `dmulogd inspect` reads after a clean remove.

# doc_table CASE SOURCE TABLE
doc_table() {
  local c=$1 src=$2 tbl=$3 len argc uuid type logdev rs i nlegs new st want w
  # shellcheck disable=SC2086  # the table, one word per field
  set -- $tbl
  len=$2
  [ "$3 $4" = "mirror userspace" ] || { fail "$c" "$src: not a userspace mirror table: $tbl"; return 1; }
  argc=$5 uuid=$6
  new="$1 $2 $3 $4 $5 $6"
  shift 6
  i=1
  if [ "$1" = integrated_flush ]; then new="$new $1"; shift; i=$(( i + 1 )); fi
  type=$1; new="$new $1"; shift; i=$(( i + 1 ))
  if [ "$type" = disk ]; then
    logdev=$1; shift; i=$(( i + 1 ))
    dmt create dt-log --table "0 2048 linear /dev/ram2 0" || { fail "$c" "cannot create the log slice"; return 1; }
    fill "$D/dt-log" /dev/zero 2048
    case "$logdev" in
      /*) new="$new $D/dt-log" ;;
      *:*) new="$new $(devno "$D/dt-log")" ;;
      *) fail "$c" "$src: log device '$logdev' is neither a path nor MAJ:MIN"; return 1 ;;
    esac
  fi
  rs=$1
  while [ $i -lt "$argc" ]; do new="$new $1"; shift; i=$(( i + 1 )); done
  nlegs=$1; new="$new $1"; shift
  i=0
  while [ $i -lt "$nlegs" ]; do
    dmt create "dt-z$i" --table "0 $len zero" || { fail "$c" "cannot create leg $i (dm-zero)"; return 1; }
    new="$new $D/dt-z$i $2"; shift 2; i=$(( i + 1 ))
  done
  new="$new $*"
  say "$c: $src: $tbl"
  say "$c: loaded as: $new"
  dmt create dt --table "$new" || { fail "$c" "$src: the kernel refused the documented table: $tbl"; return 1; }
  st=$(dmt table dt)
  case " $st " in *" $uuid "*) ;; *) fail "$c" "table '$st' lost the uuid $uuid"; return 1 ;; esac
  if [ "$type" = disk ]; then want="3 disk $(devno "$D/dt-log") A"; else want="1 core"; fi
  st=$(log_status dt)
  [ "$st" = "$want" ] || { fail "$c" "log status '$st', want '$want' (status: $(dmt status dt))"; return 1; }
  wait_sync dt 240 || { fail "$c" "never in sync"; return 1; }
  w="$(( len / rs )) $(( len / rs ))"
  st=$(sync_counts dt)
  [ "$st" = "$w" ] || { fail "$c" "sync count '$st', want '$w' (length / region size)"; return 1; }
  dmt remove dt || { fail "$c" "dmsetup remove failed"; return 1; }
  if [ "$type" = disk ]; then
    w=$(inspect_dirty "$D/dt-log") || { fail "$c" "dmulogd inspect of the log failed"; return 1; }
    [ -z "${w# }" ] || { fail "$c" "regions dirty after a clean remove: $w"; return 1; }
    dmt remove dt-log || return 1
  fi
  i=0
  while [ $i -lt "$nlegs" ]; do dmt remove "dt-z$i" || return 1; i=$(( i + 1 )); done
  pass "$c"
}

t_doctables() {
  local n=0 src tbl tab
  [ -s /vm/doc-tables ] || { fail doc-tables "/vm/doc-tables is missing or empty"; return 1; }
  daemon_start || { fail doc-tables "dmulogd did not start"; return 1; }
  tab=$(printf '\t')
  # fd 3: nothing a case runs can eat the list
  while IFS="$tab" read -r src tbl <&3; do
    n=$(( n + 1 ))
    doc_table "doc-table-$n" "$src" "$tbl" || return 1
  done 3< /vm/doc-tables
  [ $n -ge 3 ] || { fail doc-tables "only $n table lines"; return 1; }
  pass doc-tables
}
