#!/bin/bash
# shellcheck disable=SC2015,SC2016,SC2034,SC2317  # ok() never fails; stubs are called by sourced code
# Static checks of dmulogd's boot integration (initramfs/): shell syntax,
# the shellcheck linter, what the dracut and mkinitcpio build functions install, the
# adopt-or-start helper's behaviour, systemd-analyze verify of the unit, the
# man page, and the layout "make install" produces.  No VM, no kernel.
#
# Usage: tests/boot/static-checks.sh   (root only for installing shellcheck)
# Ends with the line "static-checks: N passed, M failed".

set -u
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=$TOP/initramfs
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dmulogd-static.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
skipped=0
ok() { passed=$((passed + 1)); echo "ok   $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
skip() { skipped=$((skipped + 1)); echo "skip $*"; }
# check NAME COMMAND...: ok when COMMAND succeeds; shows its output if not.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then ok "$name"; else
		bad "$name"
		[ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/     | /'
	fi
}

# Files by shell dialect.  POSIX ones run in initramfs images (busybox ash,
# klibc/dash) or are the helper and installer.
POSIX_FILES=(
	"$SRC/dmulogd-start"
	"$SRC/install.sh"
	"$SRC/initramfs-tools/hooks/dmulogd"
	"$SRC/initramfs-tools/scripts/init-top/dmulogd"
	"$SRC/dracut/90dmulogd/dmulogd-pre-udev.sh"
	"$SRC/mkinitcpio/hooks/dmulogd"
	"$TOP/tests/boot/guest/init"
	"$TOP/tests/boot/guest/rootmirror"
	"$TOP/tests/boot/guest/systemd/systemd-checks"
	"$TOP/tests/boot/guest/dracut/99bootmirror/bootmirror-create.sh"
)
BASH_FILES=(
	"$SRC/dracut/90dmulogd/module-setup.sh"
	"$SRC/mkinitcpio/install/dmulogd"
	"$TOP/tests/boot/guest/dracut/99bootmirror/module-setup.sh"
	"$TOP/tests/boot/static-checks.sh"
	"$TOP/tests/boot/run.sh"
)

echo "== syntax"
for f in "${POSIX_FILES[@]}"; do
	[ -f "$f" ] || { bad "exists ${f#"$TOP"/}"; continue; }
	check "sh -n ${f#"$TOP"/}" sh -n "$f"
	if command -v dash >/dev/null; then check "dash -n ${f#"$TOP"/}" dash -n "$f"; fi
	if command -v busybox >/dev/null; then check "busybox ash -n ${f#"$TOP"/}" busybox ash -n "$f"; fi
done
for f in "${BASH_FILES[@]}"; do
	[ -f "$f" ] || { bad "exists ${f#"$TOP"/}"; continue; }
	check "bash -n ${f#"$TOP"/}" bash -n "$f"
done

echo "== shellcheck"
if ! command -v shellcheck >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	echo "installing shellcheck"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null 2>&1 ||
		{ DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null 2>&1; }
fi
if command -v shellcheck >/dev/null; then
	# SC1091: the sourced files (/scripts/functions, dracut-lib.sh, ...) only
	# exist inside the images.
	for f in "${POSIX_FILES[@]}"; do
		[ -f "$f" ] && check "shellcheck ${f#"$TOP"/}" shellcheck -s sh -e SC1091 "$f"
	done
	for f in "${BASH_FILES[@]}"; do
		[ -f "$f" ] && check "shellcheck ${f#"$TOP"/}" shellcheck -s bash -e SC1091 "$f"
	done
else
	skip "shellcheck: not installed and not installable with apt here"
fi

echo "== placeholders"
unknown=$(grep -rhoE '@[A-Z_]+@' "$SRC" | sort -u | grep -vxE '@(SBINDIR|LIBEXECDIR|UNITDIR|PREFIX)@')
if [ -z "$unknown" ]; then ok "only known @...@ placeholders in initramfs/"; else bad "unknown placeholders: $unknown"; fi

echo "== make install layout"
FAKEBIN=$WORK/fake-dmulogd
printf '#!/bin/sh\necho fake dmulogd "$@"\n' >"$FAKEBIN"
chmod 755 "$FAKEBIN"
D=$WORK/destdir
if out=$("$SRC/install.sh" "$D" /usr "$FAKEBIN" 2>&1); then ok "install.sh DESTDIR /usr"; else
	bad "install.sh DESTDIR /usr"
	printf '%s\n' "$out" | sed 's/^/     | /'
fi
expected="755 /usr/sbin/dmulogd
755 /usr/lib/dmulogd/dmulogd-start
644 /usr/share/man/man8/dmulogd.8
644 /usr/lib/systemd/system/dmulogd.service
755 /usr/share/initramfs-tools/hooks/dmulogd
755 /usr/share/initramfs-tools/scripts/init-top/dmulogd
755 /usr/lib/dracut/modules.d/90dmulogd/module-setup.sh
755 /usr/lib/dracut/modules.d/90dmulogd/dmulogd-pre-udev.sh
644 /usr/lib/dracut/modules.d/90dmulogd/dmulogd-initrd.conf
755 /usr/lib/dracut/modules.d/90dmulogd/dmulogd-cleanup.sh
755 /usr/lib/dracut/modules.d/90dmulogd/dmulogd-shutdown.sh
644 /usr/lib/initcpio/install/dmulogd
644 /usr/lib/initcpio/hooks/dmulogd
644 /usr/lib/initcpio/dmulogd-initrd.conf"
got=$(cd "$D" && find . -type f -printf '%m /%P\n' | sort -k2)
if [ "$got" = "$(sort -k2 <<<"$expected")" ]; then ok "installed files and modes"; else
	bad "installed files and modes"
	diff <(sort -k2 <<<"$expected") <(printf '%s\n' "$got") | sed 's/^/     | /'
fi
if grep -rlE '@(SBINDIR|LIBEXECDIR|UNITDIR|PREFIX)@' "$D" >/dev/null; then bad "placeholders left in installed files"; else ok "no placeholders left"; fi
check "installed binary is the given one" cmp "$FAKEBIN" "$D/usr/sbin/dmulogd"
check "unit ExecStart is the helper" grep -qx 'ExecStart=/usr/lib/dmulogd/dmulogd-start' "$D/usr/lib/systemd/system/dmulogd.service"
check "helper runs /usr/sbin/dmulogd" grep -q 'DMULOGD=${DMULOGD:-/usr/sbin/dmulogd}' "$D/usr/lib/dmulogd/dmulogd-start"
check "init-top script calls the helper" grep -q '^helper=/usr/lib/dmulogd/dmulogd-start$' "$D/usr/share/initramfs-tools/scripts/init-top/dmulogd"

D2=$WORK/destdir-local
if "$SRC/install.sh" "$D2" /usr/local "$FAKEBIN" >/dev/null 2>&1; then
	check "PREFIX=/usr/local: binary" test -x "$D2/usr/local/sbin/dmulogd"
	check "PREFIX=/usr/local: unit" grep -qx 'ExecStart=/usr/local/lib/dmulogd/dmulogd-start' "$D2/usr/local/lib/systemd/system/dmulogd.service"
	check "PREFIX=/usr/local: initramfs-tools hook stays in /usr/share" grep -q '^bin=/usr/local/sbin/dmulogd$' "$D2/usr/share/initramfs-tools/hooks/dmulogd"
	check "PREFIX=/usr/local: dracut module names the unit" grep -q '/usr/local/lib/systemd/system/dmulogd.service' "$D2/usr/lib/dracut/modules.d/90dmulogd/module-setup.sh"
else
	bad "install.sh DESTDIR /usr/local"
fi
if "$SRC/install.sh" "$WORK/x" /usr "$WORK/no-such-binary" >/dev/null 2>&1; then bad "install.sh refuses a missing binary"; else ok "install.sh refuses a missing binary"; fi
if "$SRC/install.sh" "$WORK/x" usr "$FAKEBIN" >/dev/null 2>&1; then bad "install.sh refuses a relative PREFIX"; else ok "install.sh refuses a relative PREFIX"; fi

echo "== dracut module-setup.sh"
MOD=$D/usr/lib/dracut/modules.d/90dmulogd
# dracut_calls SYSTEMD(yes|no) HOSTONLY TABLE: run check/depends/
# installkernel/install with recording stubs; prints the calls.
dracut_calls() {
	(
		set -e
		moddir=$MOD initdir=$WORK/initdir systemdsystemunitdir=/usr/lib/systemd/system
		hostonly=$2 SYSTEMCTL=stub_systemctl
		want_systemd=$1 table=$3
		rec() { echo "$*"; }
		require_binaries() { rec require_binaries "$@"; [ -x "$D$1" ]; }
		inst_binary() { rec inst_binary "$@"; }
		inst_simple() { rec inst_simple "$@"; }
		inst_hook() { rec inst_hook "$@"; }
		instmods() { rec instmods "hostonly=${hostonly:-}" "$@"; }
		inst_multiple() { rec inst_multiple "$@"; }
		stub_systemctl() { rec systemctl "$@"; }
		dracut_module_included() { [ "$1" = systemd ] && [ "$want_systemd" = yes ]; }
		derror() { rec derror "$@"; }
		# shellcheck disable=SC2030,SC2031  # for this subshell only
		export DMULOGD_SRCROOT=$D DMULOGD_CONF=${CONF_UNDER_TEST:-/nonexistent}
		dmsetup() { printf '%s\n' "$table"; }
		# shellcheck disable=SC1090,SC1091
		. "$MOD/module-setup.sh"
		rc=0
		check || rc=$?
		echo "check=$rc"
		echo "depends=$(depends)"
		installkernel
		install
	)
}
out=$(dracut_calls no "" "")
for want in "check=0" "depends=dm" "inst_binary /usr/sbin/dmulogd" \
	"inst_simple /usr/lib/dmulogd/dmulogd-start" \
	"inst_hook pre-udev 10 $MOD/dmulogd-pre-udev.sh" \
	"inst_hook cleanup 00 $MOD/dmulogd-cleanup.sh" "inst_hook shutdown 30 $MOD/dmulogd-shutdown.sh"; do
	grep -qxF -- "$want" <<<"$out" && ok "dracut (no systemd): $want" || bad "dracut (no systemd): $want"$'\n'"$out"
done
if grep -E '^instmods hostonly= ' <<<"$out" | grep -qw dm-log-userspace && grep '^instmods' <<<"$out" | grep -qw dm-mirror; then
	ok "dracut: instmods dm-log-userspace dm-mirror (hostonly off)"
else bad "dracut: instmods"$'\n'"$out"; fi
grep -q 'dmulogd.service' <<<"$out" && bad "dracut (no systemd) installs no unit" || ok "dracut (no systemd) installs no unit"
check "dracut: hook file exists" test -f "$MOD/dmulogd-pre-udev.sh"

out=$(dracut_calls yes "" "")
for want in "inst_binary /usr/sbin/dmulogd" "inst_simple /usr/lib/dmulogd/dmulogd-start" \
	"inst_simple /usr/lib/systemd/system/dmulogd.service /usr/lib/systemd/system/dmulogd.service" \
	"inst_simple $MOD/dmulogd-initrd.conf /usr/lib/systemd/system/dmulogd.service.d/initrd.conf" \
	"systemctl -q --root $WORK/initdir enable dmulogd.service"; do
	grep -qxF -- "$want" <<<"$out" && ok "dracut (systemd): $want" || bad "dracut (systemd): $want"$'\n'"$out"
done
grep -q '^inst_hook pre-udev' <<<"$out" && bad "dracut (systemd) installs no pre-udev hook" || ok "dracut (systemd) installs no pre-udev hook"
check "dracut: unit source exists" test -f "$D/usr/lib/systemd/system/dmulogd.service"
check "dracut: drop-in exists" test -f "$MOD/dmulogd-initrd.conf"
out=$(dracut_calls no 1 "")
grep -qx 'check=255' <<<"$out" && ok "dracut hostonly, no userspace log: check=255" || bad "dracut hostonly, no userspace log: check=255"$'\n'"$out"
out=$(dracut_calls no 1 "root: 0 2097152 mirror userspace 4 u1 disk 253:2 1024 2 253:0 0 253:1 0 1 handle_errors")
grep -qx 'check=0' <<<"$out" && ok "dracut hostonly, userspace log in use: check=0" || bad "dracut hostonly, userspace log in use: check=0"$'\n'"$out"
out=$(dracut_calls no 1 "vg-m: 0 2097152 mirror userspace 5 u1 integrated_flush core 1024 2 253:0 0 253:1 0 1 handle_errors")
grep -qx 'check=0' <<<"$out" && ok "dracut hostonly, integrated_flush core log: check=0" || bad "dracut hostonly, integrated_flush core log: check=0"$'\n'"$out"
out=$(dracut_calls no 1 "vg-c: 0 2097152 mirror userspace 4 LVM-x clustered-disk 253:2 1024 2 253:0 0 253:1 0 1 handle_errors")
grep -qx 'check=255' <<<"$out" && ok "dracut hostonly, cmirrord's clustered log only: check=255" || bad "dracut hostonly, cmirrord's clustered log only: check=255"$'\n'"$out"

echo "== mkinitcpio install/dmulogd"
# mkinitcpio_calls SYSTEMD(yes|no): source the install hook with recording
# stubs and run build(); prints the calls.
mkinitcpio_calls() {
	(
		set -e
		BUILDROOT=$WORK/buildroot-$1
		mkdir -p "$BUILDROOT/etc"
		rec() { echo "$*"; }
		add_module() { rec add_module "$@"; }
		add_binary() { rec add_binary "$@"; }
		add_file() { rec add_file "$@"; }
		add_runscript() { rec add_runscript "$@"; }
		add_symlink() { rec add_symlink "$@"; }
		add_dir() { rec add_dir "$@"; }
		if [ "$1" = yes ]; then add_systemd_unit() { rec add_systemd_unit "$@"; }; fi
		error() { rec error "$@"; }
		# shellcheck disable=SC2030,SC2031  # for this subshell only
		export DMULOGD_SRCROOT=$D DMULOGD_CONF=${CONF_UNDER_TEST:-/nonexistent}
		# shellcheck disable=SC1090,SC1091
		. "$D/usr/lib/initcpio/install/dmulogd"
		build
		help >/dev/null && echo help=ok
	)
}
out=$(mkinitcpio_calls no)
for want in "add_module dm-log-userspace" "add_module dm-mirror" "add_binary /usr/sbin/dmulogd" \
	"add_file /usr/lib/dmulogd/dmulogd-start /usr/lib/dmulogd/dmulogd-start 755" "add_runscript" "help=ok"; do
	grep -qxF -- "$want" <<<"$out" && ok "mkinitcpio: $want" || bad "mkinitcpio: $want"$'\n'"$out"
done
grep -qE '^add_file /(etc|usr/lib)/os-release /etc/initrd-release 644$' <<<"$out" &&
	ok "mkinitcpio: adds /etc/initrd-release" || bad "mkinitcpio: adds /etc/initrd-release"$'\n'"$out"
grep -q '^add_systemd_unit' <<<"$out" && bad "mkinitcpio (busybox): no systemd unit" || ok "mkinitcpio (busybox): no systemd unit"
out=$(mkinitcpio_calls yes)
for want in "add_systemd_unit dmulogd.service" \
	"add_file /usr/lib/initcpio/dmulogd-initrd.conf /etc/systemd/system/dmulogd.service.d/initrd.conf 644" \
	"add_symlink /usr/lib/systemd/system/sysinit.target.wants/dmulogd.service /usr/lib/systemd/system/dmulogd.service" \
	"add_binary /usr/sbin/dmulogd"; do
	grep -qxF -- "$want" <<<"$out" && ok "mkinitcpio (systemd): $want" || bad "mkinitcpio (systemd): $want"$'\n'"$out"
done
grep -q '^add_runscript' <<<"$out" && bad "mkinitcpio (systemd): no runscript" || ok "mkinitcpio (systemd): no runscript"

# The runtime hook, with a stand-in helper: quiet on success, err + shell on failure.
for case in 0 1; do
	sed "s|/usr/lib/dmulogd/dmulogd-start|$WORK/helper-$case|" "$D/usr/lib/initcpio/hooks/dmulogd" >"$WORK/hook-$case"
	printf '#!/bin/sh\nexit %s\n' "$case" >"$WORK/helper-$case"
	chmod 755 "$WORK/helper-$case"
	out=$(busybox ash -c ". $WORK/hook-$case; err() { echo \"err \$*\"; }; launch_interactive_shell() { echo shell; }; run_earlyhook" 2>&1 </dev/null)
	if [ "$case" = 0 ]; then
		[ -z "$out" ] && ok "mkinitcpio hook: silent when the helper succeeds" || bad "mkinitcpio hook: silent when the helper succeeds: $out"
	else
		grep -q '^err dmulogd' <<<"$out" && grep -qx shell <<<"$out" &&
			ok "mkinitcpio hook: error and shell when the helper fails" || bad "mkinitcpio hook: error and shell when the helper fails: $out"
	fi
done

# Image build time: DMULOGD_OPTS is checked with dmulogd --check (the
# stand-in binary refuses --bogus as the real one does).
printf '#!/bin/sh\nfor a; do [ "$a" = --bogus ] && { echo "unknown argument --bogus" >&2; exit 2; }; done\necho "$*" >"%s"\n' "$WORK/check-rec" >"$D/usr/sbin/dmulogd"
echo 'DMULOGD_OPTS="--allow-clustered -v"' >"$WORK/conf-good"
echo 'DMULOGD_OPTS="--bogus"' >"$WORK/conf-bad"
out=$(CONF_UNDER_TEST=$WORK/conf-good mkinitcpio_calls no 2>&1) && [ "$(cat "$WORK/check-rec")" = "--check --allow-clustered -v" ] &&
	ok "mkinitcpio: build runs dmulogd --check DMULOGD_OPTS" || bad "mkinitcpio: --check at build: '$(cat "$WORK/check-rec" 2>/dev/null)' $out"
# (Run outside && lists: set -e inside the subshell must stay in force.)
out=$(CONF_UNDER_TEST=$WORK/conf-bad mkinitcpio_calls no 2>&1)
rc=$?
[ "$rc" != 0 ] && grep -q 'unknown argument --bogus' <<<"$out" &&
	ok "mkinitcpio: a bad DMULOGD_OPTS fails the build, saying why" || bad "mkinitcpio: bad opts: rc $rc $out"
out=$(CONF_UNDER_TEST=$WORK/conf-bad dracut_calls no "" "" 2>&1)
rc=$?
[ "$rc" != 0 ] && grep -q 'unknown argument --bogus' <<<"$out" &&
	ok "dracut: a bad DMULOGD_OPTS fails install(), saying why" || bad "dracut: bad opts: rc $rc $out"
printf '#!/bin/sh\necho fake dmulogd "$@"\n' >"$D/usr/sbin/dmulogd"
echo "== dracut shutdown hook"
# The hook finds dmulogd by comm and waits for it to exit after SIGTERM:
# a stand-in named dmulogd (a copy of sleep) plays the daemon.
cp "$(command -v sleep)" "$WORK/dmulogd"
"$WORK/dmulogd" 30 &
victim=$!
out=$(timeout 20 sh "$MOD/dmulogd-shutdown.sh" 2>&1)
rc=$?
if [ "$rc" = 0 ] && ! kill -0 "$victim" 2>/dev/null; then ok "dracut shutdown hook: SIGTERM, waits for dmulogd to exit"
else bad "dracut shutdown hook: rc $rc, still running: $(kill -0 "$victim" 2>/dev/null && echo yes) $out"; kill "$victim" 2>/dev/null; fi
wait "$victim" 2>/dev/null
grep -q '^need_shutdown$' "$MOD/dmulogd-cleanup.sh" && ok "dracut cleanup hook: need_shutdown" || bad "dracut cleanup hook: need_shutdown"

echo "== initramfs-tools scripts"
out=$("$D/usr/share/initramfs-tools/scripts/init-top/dmulogd" prereqs 2>&1) && [ -z "$out" ] &&
	ok "init-top/dmulogd prereqs: none" || bad "init-top/dmulogd prereqs: '$out'"
out=$("$D/usr/share/initramfs-tools/hooks/dmulogd" prereqs 2>&1) && [ -z "$out" ] &&
	ok "hooks/dmulogd prereqs: none" || bad "hooks/dmulogd prereqs: '$out'"
# Name order puts us before udev in init-top when neither has PREREQ.
[ "$(printf 'udev\ndmulogd\n' | LC_ALL=C sort | head -n1)" = dmulogd ] &&
	ok "init-top: dmulogd sorts before udev" || bad "init-top: dmulogd sorts before udev"

echo "== dmulogd-start (adopt or start)"
H=$D/usr/lib/dmulogd/dmulogd-start
REC=$WORK/rec
FP=$WORK/proc
# A stand-in daemon: records its arguments; with FAKE_PID set, writes that
# pid to the pid file (as "dmulogd --daemon" does) and exits FAKE_RC.
cat >"$WORK/fake-daemon" <<EOF
#!/bin/sh
echo "\$*" >"$REC"
[ -n "\${FAKE_PID:-}" ] && echo "\$FAKE_PID" >"$WORK/pid"
if [ -n "\${FAKE_SERVER:-}" ]; then
	mkdir -p "$FP/\$FAKE_PID"
	echo dmulogd >"$FP/\$FAKE_PID/comm"
	printf '%s\0' /usr/sbin/dmulogd --daemon >"$FP/\$FAKE_PID/cmdline"
fi
[ -n "\${FAKE_MSG:-}" ] && echo "\$FAKE_MSG" >&2
exit \${FAKE_RC:-0}
EOF
chmod 755 "$WORK/fake-daemon"
# mkproc PID COMM ARGV...: a fake /proc entry (the helper reads comm and cmdline).
mkproc() {
	local pid=$1 comm=$2
	shift 2
	mkdir -p "$FP/$pid"
	echo "$comm" >"$FP/$pid/comm"
	printf '%s\0' "$@" >"$FP/$pid/cmdline"
}
reset() { rm -rf "$FP" "$REC" "$WORK/pid" "$WORK/conf" "$WORK/svc.pid"; mkdir -p "$FP"; }
helper() {
	env DMULOGD="$WORK/fake-daemon" DMULOGD_PIDFILE="$WORK/pid" DMULOGD_CONF="$WORK/conf" \
		DMULOGD_MODPROBE= DMULOGD_PROC="$FP" "$@" sh "$H"
}
rec() { cat "$REC" 2>/dev/null; }

reset
helper >/dev/null 2>&1 && [ "$(rec)" = "--daemon --pidfile $WORK/pid" ] &&
	ok "helper: no server -> dmulogd --daemon --pidfile" || bad "helper: no server -> dmulogd --daemon: '$(rec)'"
reset
echo 'DMULOGD_OPTS="--allow-clustered -v"' >"$WORK/conf"
helper >/dev/null 2>&1 && [ "$(rec)" = "--daemon --pidfile $WORK/pid --allow-clustered -v" ] &&
	ok "helper: DMULOGD_OPTS from the config file" || bad "helper: DMULOGD_OPTS from the config file: '$(rec)'"
rm -f "$REC"
helper DMULOGD_OPTS=-q >/dev/null 2>&1 && [ "$(rec)" = "--daemon --pidfile $WORK/pid -q" ] &&
	ok "helper: DMULOGD_OPTS from the environment wins" || bad "helper: DMULOGD_OPTS from the environment wins: '$(rec)'"

# The kernel command line, as rd.lvm=0 / rd.md=0 are honoured.
reset
echo 'BOOT_IMAGE=/vmlinuz root=/dev/mapper/vg-root rd.dmulogd=0 quiet' >"$FP/cmdline"
out=$(helper 2>&1) && [ ! -e "$REC" ] && grep -q 'rd.dmulogd=0' <<<"$out" &&
	ok "helper: rd.dmulogd=0 -> start nothing, exit 0" || bad "helper: rd.dmulogd=0: '$out' rec '$(rec)'"
reset
echo 'DMULOGD_OPTS="-q"' >"$WORK/conf"
echo 'root=/dev/sda1 rd.dmulogd.opts=--allow-clustered,--max-memory=64 ro' >"$FP/cmdline"
helper >/dev/null 2>&1 && [ "$(rec)" = "--daemon --pidfile $WORK/pid -q --allow-clustered --max-memory=64" ] &&
	ok "helper: rd.dmulogd.opts= adds options after DMULOGD_OPTS" || bad "helper: rd.dmulogd.opts=: '$(rec)'"

reset
mkproc 4242 dmulogd @usr/sbin/dmulogd --daemon --pidfile /run/dmulogd.pid
echo 4242 >"$WORK/pid"
out=$(helper 2>&1) && [ ! -e "$REC" ] && grep -q "already running (pid 4242)" <<<"$out" &&
	ok "helper: pid file names a dmulogd ('@' argv[0]) -> adopt, exit 0" || bad "helper: adopt via pid file: '$out' rec '$(rec)'"
reset
mkproc 4243 dmulogd /usr/sbin/dmulogd --daemon
out=$(helper 2>&1) && [ ! -e "$REC" ] && grep -q "does not name the running dmulogd (pid 4243)" <<<"$out" &&
	ok "helper: no pid file but a dmulogd in /proc -> adopt it, warn" || bad "helper: adopt via /proc: '$out' rec '$(rec)'"
reset
mkproc 4244 dmulogd /usr/sbin/dmulogd inspect /dev/vdc
mkproc 4245 sleep sleep 30
echo 4245 >"$WORK/pid"
helper >/dev/null 2>&1 && [ -e "$REC" ] &&
	ok "helper: pid file names another program, only 'dmulogd inspect' runs -> start" || bad "helper: other program / inspect -> start"
reset
mkproc 4251 dmulogd /bin/sh /scripts/init-top/dmulogd
echo 4251 >"$WORK/pid"
helper >/dev/null 2>&1 && [ -e "$REC" ] &&
	ok "helper: a script named dmulogd (initramfs-tools' boot script) is no server -> start" || bad "helper: script named dmulogd -> start"
reset
mkproc 4252 dmulogd dmulogd -v
helper >/dev/null 2>&1 && [ ! -e "$REC" ] && ok "helper: argv[0] 'dmulogd' (from PATH) is a server -> adopt" || bad "helper: argv[0] dmulogd -> adopt"
reset
echo 4246 >"$WORK/pid"
helper >/dev/null 2>&1 && [ -e "$REC" ] && ok "helper: dead pid in the pid file -> start" || bad "helper: dead pid -> start"
reset
echo garbage >"$WORK/pid"
helper >/dev/null 2>&1 && [ -e "$REC" ] && ok "helper: garbage pid file -> start" || bad "helper: garbage pid file -> start"

# For dmulogd.service: the pid goes to a copy (systemd deletes PIDFile=).
reset
mkproc 4247 dmulogd @usr/sbin/dmulogd --daemon
echo 4247 >"$WORK/pid"
helper DMULOGD_SERVICE_PIDFILE="$WORK/svc.pid" >/dev/null 2>&1 && [ "$(cat "$WORK/svc.pid" 2>/dev/null)" = 4247 ] &&
	ok "helper: adopting writes DMULOGD_SERVICE_PIDFILE" || bad "helper: adopting writes DMULOGD_SERVICE_PIDFILE"
reset
helper DMULOGD_SERVICE_PIDFILE="$WORK/svc.pid" FAKE_PID=4248 FAKE_SERVER=1 >/dev/null 2>&1 && [ -e "$REC" ] &&
	[ "$(cat "$WORK/svc.pid" 2>/dev/null)" = 4248 ] && [ "$(cat "$WORK/pid")" = 4248 ] &&
	ok "helper: starting writes DMULOGD_SERVICE_PIDFILE, keeps the lock file" || bad "helper: starting writes DMULOGD_SERVICE_PIDFILE"
reset
out=$(helper DMULOGD_SERVICE_PIDFILE="$WORK/svc.pid" FAKE_PID=4249 2>&1)
rc=$?
[ "$rc" = 1 ] && [ ! -e "$WORK/svc.pid" ] && grep -q 'names no running dmulogd' <<<"$out" &&
	ok "helper: daemon returned 0 but no server -> exit 1" || bad "helper: no server after start: rc $rc '$out'"
reset
out=$(helper DMULOGD_SERVICE_PIDFILE="$WORK/svc.pid" FAKE_RC=1 FAKE_MSG='dmulogd[1]: ERROR: netlink: no connector' 2>&1)
rc=$?
[ "$rc" = 1 ] && grep -q 'no connector' <<<"$out" && ok "helper (service): daemon failure -> its status and reason" || bad "helper (service): daemon failure: rc $rc '$out'"
reset
out=$(helper FAKE_RC=1 FAKE_MSG='dmulogd[1]: ERROR: netlink: no connector' 2>&1)
rc=$?
[ "$rc" = 1 ] && grep -q 'no connector' <<<"$out" && ok "helper: daemon failure -> its exit status and reason" || bad "helper: daemon failure: rc $rc '$out'"
out=$(env DMULOGD="$WORK/none" PATH=/usr/bin:/bin DMULOGD_PIDFILE="$WORK/nopid" DMULOGD_MODPROBE= DMULOGD_PROC="$FP" sh "$H" 2>&1)
rc=$?
[ "$rc" = 1 ] && grep -q 'not found' <<<"$out" && ok "helper: missing binary -> exit 1 with a message" || bad "helper: missing binary: rc $rc '$out'"
# Under busybox ash too (initramfs shells), adopting and starting.
reset
mkproc 4250 dmulogd @usr/sbin/dmulogd --daemon
echo 4250 >"$WORK/pid"
env DMULOGD="$WORK/fake-daemon" DMULOGD_PIDFILE="$WORK/pid" DMULOGD_CONF=/nonexistent DMULOGD_MODPROBE= DMULOGD_PROC="$FP" \
	busybox ash "$H" >/dev/null 2>&1 && [ ! -e "$REC" ] && ok "helper: adopts under busybox ash" || bad "helper: adopts under busybox ash"
reset
env DMULOGD="$WORK/fake-daemon" DMULOGD_PIDFILE="$WORK/pid" DMULOGD_CONF=/nonexistent DMULOGD_MODPROBE= DMULOGD_PROC="$FP" \
	busybox ash "$H" >/dev/null 2>&1 && [ -e "$REC" ] && ok "helper: starts under busybox ash" || bad "helper: starts under busybox ash"
# And against the real /proc of this machine: our own shell is no server.
rm -f "$REC" "$WORK/pid"
if ! pidof dmulogd >/dev/null 2>&1; then
	env DMULOGD="$WORK/fake-daemon" DMULOGD_PIDFILE="$WORK/pid" DMULOGD_CONF=/nonexistent DMULOGD_MODPROBE= sh "$H" >/dev/null 2>&1 &&
		[ -e "$REC" ] && ok "helper: real /proc without dmulogd -> start" || bad "helper: real /proc without dmulogd -> start"
fi

echo "== systemd unit"
U=$D/usr/lib/systemd/system/dmulogd.service
for want in 'ConditionKernelCommandLine=!rd.dmulogd=0' 'Conflicts=lvm2-cmirrord.service' 'Type=forking' 'PIDFile=/run/dmulogd.service.pid' 'Environment=DMULOGD_SERVICE_PIDFILE=/run/dmulogd.service.pid' 'DefaultDependencies=no' 'KillMode=process' 'SendSIGKILL=no' 'IgnoreOnIsolate=yes' 'WantedBy=sysinit.target'; do
	grep -qx -- "$want" "$U" && ok "unit: $want" || bad "unit: $want"
done
for before in lvm2-activation-early.service lvm2-monitor.service local-fs-pre.target blk-availability.service systemd-udev-trigger.service; do
	grep -E '^Before=' "$U" | grep -qw -- "$before" && ok "unit: Before=$before" || bad "unit: Before=$before"
done
grep -Eq '^Conflicts=.*shutdown.target' "$U" && bad "unit: no Conflicts=shutdown.target" || ok "unit: no Conflicts=shutdown.target"
if command -v systemd-analyze >/dev/null; then
	# Verify against the staged tree, so ExecStart= resolves to the
	# installed helper; a copy of the unit keeps verify from chasing
	# unrelated units of the host.
	out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no --root="$D" "$U" 2>&1)
	rc=$?
	# Dependencies on units this machine lacks (lvm2, dm-event) are fine,
	# and so is SurviveFinalKillSignal= on a systemd older than 255 (it
	# ignores a key it does not know; newer ones honour it).
	out=$(grep -v -e 'not found' -e 'lvm2-' -e 'dm-event' -e 'blk-availability' \
		-e "Unknown key 'SurviveFinalKillSignal'" <<<"$out")
	if [ "$rc" = 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify"; else
		# rc != 0 only for the missing-unit noise above is fine too.
		if [ -z "$out" ]; then ok "systemd-analyze verify (only missing optional units)"; else
			bad "systemd-analyze verify"
			printf '%s\n' "$out" | sed 's/^/     | /'
		fi
	fi
else
	skip "systemd-analyze verify: systemd-analyze not installed"
fi

echo "== man page"
if command -v groff >/dev/null; then
	out=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$SRC/dmulogd.8" 2>&1)
	[ -z "$out" ] && ok "groff -ww: no warnings" || { bad "groff -ww"; printf '%s\n' "$out" | sed 's/^/     | /'; }
	txt=$(LC_ALL=C.UTF-8 MANWIDTH=200 groff -man -Tutf8 "$SRC/dmulogd.8" 2>/dev/null | col -b 2>/dev/null || true)
	for s in 'SIGTERM' 'SIGQUIT' 'SIGUSR1' '--daemon' '--pidfile' '--allow-clustered' 'inspect' \
		'0x4D695272' 'MiRr' 'nr_regions' '1024' 'mirror userspace' 'integrated_flush' \
		'initramfs-tools' 'dracut' 'mkinitcpio' 'dmulogd.service' '/run/dmulogd.pid' 'initrd-release'; do
		grep -qF -- "$s" <<<"$txt" && ok "man page mentions $s" || bad "man page mentions $s"
	done
else
	skip "man page: groff not installed"
fi

echo "static-checks: $passed passed, $failed failed${skipped:+, $skipped skipped}"
[ "$failed" = 0 ]
