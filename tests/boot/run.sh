#!/bin/bash
# tests/boot/run.sh -- what "make boot-test" runs (after "make static").
#
# 1. tests/boot/static-checks.sh (syntax, shellcheck, dracut/mkinitcpio
#    build functions, helper behaviour, unit, man page, install layout).
# 2. "make install" into a staging tree (initramfs/install.sh).
# 3. A real initramfs made by Debian's mkinitramfs with the staged hook and
#    init-top script, for the Debian kernel the VM harness caches
#    (tests/vm/lib.sh), plus one test-only local-top script that assembles
#    the root mirror the way LVM would.  lsinitramfs/unmkinitramfs checks:
#    binary, helper, modules, script, ORDER (dmulogd before udev).
# 4. dracut (unpacked from Debian's dracut-core, not installed: it
#    conflicts with initramfs-tools) builds images with module 90dmulogd,
#    with and without systemd; lsinitramfs checks what went in.
# 5. QEMU (TCG) boots the mkinitramfs image with the root file system on a
#    dm-mirror (/dev/vda + /dev/vdb, disk log on /dev/vdc) whose userspace
#    log the initramfs' dmulogd serves.  Boots 1 and 2: the real root's
#    /sbin/init (tests/boot/guest/init, busybox) prints PASS/FAIL markers
#    and powers off; the second boot finds the log clean on disk (no
#    resync).  Boot 3: systemd is PID 1 on the real root (the host's
#    systemd, copied in); dmulogd.service must adopt the initramfs' daemon
#    and "systemctl poweroff" must get through systemd-shutdown.  Boot 4:
#    dracut's systemd initrd.  Boot 5: rd.dmulogd=0 (no dmulogd anywhere;
#    the root mirror gets the kernel's own disk log).
#
# mkinitramfs only looks for modules in /lib/modules/<version> and for
# /boot/config-<version>: both are bind-mounted from the cache in a private
# mount namespace (unshare -m), so the host sees no change (at most an empty
# /lib/modules directory is created, and removed again).
#
# Environment: BOOT_TIMEOUT (seconds per boot, default 300), KEEP=1 keeps
# target/boot-test/ (images, initramfs) after a pass, BOOT_LOGDIR (serial
# logs, default target/boot-logs).

set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BOOT_DIR=$TOP/tests/boot
OUT=$TOP/target/boot-test
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}

say() { echo "boot-test: $*"; }
die() {
	echo "boot-test: error: $*" >&2
	exit 1
}

say "static checks"
"$BOOT_DIR/static-checks.sh" || die "static checks failed"

# The VM harness: packages, kernel cache, marker checker.
[ -f "$TOP/tests/vm/lib.sh" ] || die "tests/vm/lib.sh is missing"
# Serial logs of our own (the VM suite may clean its log directory).
export VM_LOGDIR=${BOOT_LOGDIR:-$TOP/target/boot-logs}
# shellcheck source=../vm/lib.sh
. "$TOP/tests/vm/lib.sh"
BIN=${VM_DMULOGD:-$TOP/target/static/dmulogd}
[ -x "$BIN" ] || die "$BIN is missing: run 'make static' first"
file_is_static "$BIN" || die "$BIN is not statically linked"

boot_need_packages() {
	local missing=()
	command -v mkinitramfs >/dev/null || missing+=(initramfs-tools-core)
	command -v mke2fs >/dev/null || missing+=(e2fsprogs)
	command -v depmod >/dev/null || missing+=(kmod)
	command -v unshare >/dev/null || missing+=(util-linux)
	[ -x /usr/bin/cpio ] || missing+=(cpio)
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || die "missing packages ${missing[*]} and not root"
	_vm_apt_update
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
}

[ "$(id -u)" = 0 ] || die "needs root (mkinitramfs, mount namespace, device nodes)"
[ "$(uname -m)" = x86_64 ] || die "needs an x86_64 host"
vm_need_packages
boot_need_packages
mkdir -p "$VM_CACHE" "$VM_LOGDIR"
vm_fetch_kernel
REL=$(cat "$VM_KDIR/release")
PKG=$(basename "$VM_KDIR")

# A trimmed module tree of the same kernel package (the harness keeps only
# a few flat .ko files): device-mapper, virtio, ext4 and their dependencies,
# with modules.order/builtin, and depmod's indexes.
MT=$VM_CACHE/boot-modules/$PKG
if [ ! -f "$MT/.complete" ]; then
	say "building the module tree of $PKG in $MT"
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmulogd-bootmods.XXXXXX")
	chmod 755 "$tmp"
	(cd "$tmp" && apt-get download -qq "$PKG" >/dev/null 2>"$tmp/err") || {
		_vm_apt_update
		(cd "$tmp" && apt-get download -qq "$PKG" >/dev/null 2>"$tmp/err") || {
			cat "$tmp/err" >&2
			rm -rf "$tmp"
			die "apt-get download $PKG failed"
		}
	}
	mkdir "$tmp/x"
	dpkg-deb -x "$tmp"/"$PKG"_*.deb "$tmp/x"
	src=$tmp/x/lib/modules/$REL
	[ -d "$src" ] || src=$tmp/x/usr/lib/modules/$REL
	[ -d "$src" ] || { rm -rf "$tmp"; die "$PKG has no modules for $REL"; }
	rm -rf "$MT"
	mkdir -p "$MT/lib/modules/$REL"
	(cd "$src" && cp -a --parents modules.order modules.builtin modules.builtin.modinfo \
		kernel/drivers/md kernel/drivers/virtio kernel/drivers/block/virtio_blk.ko \
		kernel/fs/ext4 kernel/fs/jbd2 kernel/fs/mbcache.ko kernel/lib kernel/crypto \
		kernel/arch "$MT/lib/modules/$REL/")
	rm -rf "$tmp"
	depmod -b "$MT" "$REL" || die "depmod failed"
	touch "$MT/.complete"
fi

# --- stage "make install" ---------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT"
# A snapshot: the binary under test must not change during the run.
cp "$BIN" "$OUT/dmulogd"
BIN=$OUT/dmulogd
STAGE=$OUT/stage
"$TOP/initramfs/install.sh" "$STAGE" /usr "$BIN" >"$OUT/install.log" 2>&1 ||
	{ cat "$OUT/install.log"; die "initramfs/install.sh failed"; }

# --- mkinitramfs with a private conf dir ------------------------------------
CONF=$OUT/initramfs-conf
mkdir -p "$CONF/hooks" "$CONF/scripts/init-top" "$CONF/scripts/local-top" "$CONF/conf.d"
cat >"$CONF/initramfs.conf" <<'EOF'
MODULES=list
BUSYBOX=y
KEYMAP=n
COMPRESS=gzip
DEVICE=
NFSROOT=auto
RUNSIZE=10%
FSTYPE=ext2
RESUME=none
EOF
printf '%s\n' virtio_pci virtio_blk ext4 >"$CONF/modules"
# Our installed files, as if they sat in /usr/share/initramfs-tools (which a
# conf dir extends); the hook copies from the staged tree.
install -m 755 "$STAGE/usr/share/initramfs-tools/hooks/dmulogd" "$CONF/hooks/dmulogd"
install -m 755 "$STAGE/usr/share/initramfs-tools/scripts/init-top/dmulogd" "$CONF/scripts/init-top/dmulogd"
# Test only: assemble the root mirror (what LVM would do for a root LV).
install -m 755 "$BOOT_DIR/guest/rootmirror" "$CONF/scripts/local-top/rootmirror"

INITRD=$OUT/initrd.img
created_modules_dir=
if [ ! -e /lib/modules ]; then
	mkdir -p /lib/modules
	created_modules_dir=1
fi
cleanup() {
	if [ -n "$created_modules_dir" ]; then rmdir /lib/modules 2>/dev/null || true; fi
	if [ "${KEEP:-}" != 1 ] && [ "${boot_ok:-}" = 1 ]; then rm -rf "$OUT"; fi
}
trap cleanup EXIT
mkdir -p "$OUT/boot"
cp "$VM_KDIR/config" "$OUT/boot/config-$REL"
say "mkinitramfs -d $CONF $REL"
# shellcheck disable=SC2016  # expanded by the inner sh
if ! unshare -m --propagation private env DMULOGD_SRCROOT="$STAGE" MT="$MT" OUT="$OUT" CONF="$CONF" INITRD="$INITRD" REL="$REL" \
	sh -ec 'mount --bind "$MT/lib/modules" /lib/modules
	        mount --bind "$OUT/boot" /boot
	        mkinitramfs -d "$CONF" -o "$INITRD" "$REL"' >"$OUT/mkinitramfs.log" 2>&1; then
	cat "$OUT/mkinitramfs.log"
	die "mkinitramfs failed"
fi
grep -E '^(E|W):' "$OUT/mkinitramfs.log" | sed 's/^/boot-test: mkinitramfs: /' || true

# --- what is inside ---------------------------------------------------------
lsinitramfs "$INITRD" >"$OUT/lsinitramfs.txt"
content_ok=1
for f in usr/sbin/dmulogd usr/lib/dmulogd/dmulogd-start scripts/init-top/dmulogd \
	scripts/local-top/rootmirror etc/initrd-release usr/sbin/dmsetup \
	"usr/lib/modules/$REL/kernel/drivers/md/dm-log-userspace.ko" \
	"usr/lib/modules/$REL/kernel/drivers/md/dm-mirror.ko" \
	"usr/lib/modules/$REL/kernel/drivers/md/dm-region-hash.ko" \
	"usr/lib/modules/$REL/kernel/drivers/md/dm-log.ko" \
	"usr/lib/modules/$REL/kernel/drivers/md/dm-mod.ko"; do
	if grep -qxE "(\./)?$f" "$OUT/lsinitramfs.txt"; then say "initramfs has $f"; else
		say "FAIL: initramfs lacks $f"
		content_ok=
	fi
done
rm -rf "$OUT/unpacked"
unmkinitramfs "$INITRD" "$OUT/unpacked"
main=$OUT/unpacked
[ -d "$main/main" ] && main=$main/main
if cmp -s "$BIN" "$main/usr/sbin/dmulogd"; then say "initramfs dmulogd is $BIN"; else
	say "FAIL: initramfs dmulogd differs from $BIN"
	content_ok=
fi
[ -x "$main/scripts/init-top/dmulogd" ] || { say "FAIL: scripts/init-top/dmulogd not executable"; content_ok=; }
order=$(sed -n 's|^/scripts/init-top/\([^ ]*\) .*|\1|p' "$main/scripts/init-top/ORDER" | tr '\n' ' ')
say "init-top ORDER: $order"
case " $order" in
*" dmulogd "*" udev "*) say "dmulogd runs before udev in init-top" ;;
*" dmulogd "*) case " $order" in *" udev "*) say "FAIL: dmulogd after udev"; content_ok= ;; *) say "no udev in init-top" ;; esac ;;
*) say "FAIL: dmulogd missing from init-top/ORDER"; content_ok= ;;
esac
[ -n "$content_ok" ] || die "the initramfs is not as expected (lists in $OUT)"

# --- dracut images ------------------------------------------------------------
# Debian's dracut-core conflicts with initramfs-tools, so it is only
# unpacked (cached) and run from there, with the staged files laid over /usr
# by an overlay mount in a private mount namespace.  Three images: without
# systemd (pre-udev hook), with systemd (dmulogd.service enabled), and the
# systemd one plus the test-only module 99bootmirror, for boot 4.
DRACUT_BOOT_IMG=
dracut_build() { # FLAVOUR MODULES [DRACUT-ARGS...]
	local flavour=$1 mods=$2
	shift 2
	# shellcheck disable=SC2016  # expanded by the inner bash
	unshare -m --propagation private env STAGE="$STAGE" DD="$DD" MT="$MT" REL="$REL" \
		IMG="$OUT/dracut-$flavour.img" MODS="$mods" CONFD="$OUT/dracut-conf.d" \
		bash -ec 'mount -t overlay overlay -o lowerdir="$STAGE/usr:/usr" /usr
		          dracutbasedir="$DD/usr/lib/dracut" DRACUT_INSTALL="$DD/usr/lib/dracut/dracut-install" \
		          bash "$DD/usr/bin/dracut" --force --no-hostonly --no-early-microcode --conf /dev/null \
		            --confdir "$CONFD" --kver "$REL" --kmoddir "$MT/lib/modules/$REL" -m "$MODS" "$@" "$IMG"' \
		dracut "$@" >"$OUT/dracut-$flavour.log" 2>&1
}
dracut_check() {
	local x flavour mods list ok=1
	DD=$VM_CACHE/dracut-core
	if [ ! -f "$DD/.complete" ]; then
		x=$(mktemp -d "${TMPDIR:-/tmp}/dmulogd-dracut.XXXXXX")
		chmod 755 "$x"
		if ! (cd "$x" && apt-get download -qq dracut-core >/dev/null 2>&1); then
			rm -rf "$x"
			say "skip: dracut images (apt-get download dracut-core failed)"
			return 0
		fi
		rm -rf "$DD"
		dpkg-deb -x "$x"/dracut-core_*.deb "$DD"
		rm -rf "$x"
		touch "$DD/.complete"
	fi
	rm -rf "$DD/usr/lib/dracut/modules.d/90dmulogd" "$DD/usr/lib/dracut/modules.d/99bootmirror"
	cp -a "$STAGE/usr/lib/dracut/modules.d/90dmulogd" "$BOOT_DIR/guest/dracut/99bootmirror" "$DD/usr/lib/dracut/modules.d/"
	mkdir -p "$OUT/dracut-conf.d"
	# shellcheck disable=SC2016  # expanded by the inner sh
	if ! unshare -m --propagation private env STAGE="$STAGE" sh -c 'mount -t overlay overlay -o lowerdir="$STAGE/usr:/usr" /usr' 2>/dev/null; then
		say "skip: dracut images (no overlay mounts here)"
		return 0
	fi
	for flavour in plain systemd; do
		mods="base dmulogd"
		[ "$flavour" = systemd ] && mods="base systemd-initrd dmulogd"
		if ! dracut_build "$flavour" "$mods"; then
			tail -n 20 "$OUT/dracut-$flavour.log" | sed 's/^/  | /'
			say "FAIL: dracut ($flavour) could not build an image with module dmulogd"
			ok=
			continue
		fi
		list=$(lsinitramfs "$OUT/dracut-$flavour.img")
		for f in usr/sbin/dmulogd usr/lib/dmulogd/dmulogd-start usr/lib/initrd-release \
			"usr/lib/modules/$REL/kernel/drivers/md/dm-log-userspace.ko" \
			"usr/lib/modules/$REL/kernel/drivers/md/dm-mirror.ko"; do
			grep -qxE "(\./)?$f" <<<"$list" || { say "FAIL: dracut ($flavour) image lacks $f"; ok=; }
		done
		if [ "$flavour" = plain ]; then
			grep -qxE '(\./)?usr/lib/dracut/hooks/pre-udev/10-dmulogd-pre-udev.sh' <<<"$list" ||
				{ say "FAIL: dracut (plain) image lacks the pre-udev hook"; ok=; }
		else
			for f in usr/lib/systemd/system/dmulogd.service usr/lib/systemd/system/dmulogd.service.d/initrd.conf \
				etc/systemd/system/sysinit.target.wants/dmulogd.service; do
				grep -qxE "(\./)?$f" <<<"$list" || { say "FAIL: dracut (systemd) image lacks $f"; ok=; }
			done
			grep -q 'pre-udev/10-dmulogd' <<<"$list" && { say "FAIL: dracut (systemd) image has the pre-udev hook too"; ok=; }
		fi
		say "dracut ($flavour: -m '$mods') built $OUT/dracut-$flavour.img"
	done
	# shutdown + dracut-systemd: the image is what boot 4's shutdown returns
	# to (gzip: the real root's busybox zcat unpacks it).
	if dracut_build boot "base systemd-initrd dracut-systemd shutdown dmulogd bootmirror" --gzip \
		--add-drivers "virtio_pci virtio_blk ext4"; then
		DRACUT_BOOT_IMG=$OUT/dracut-boot.img
	else
		tail -n 20 "$OUT/dracut-boot.log" | sed 's/^/  | /'
		say "FAIL: dracut could not build the boot-4 image"
		ok=
	fi
	[ -n "$ok" ]
}
dracut_ok=1
dracut_check || dracut_ok=

# --- disks ------------------------------------------------------------------
ROOTFS=$OUT/rootfs
# merged /usr, as Debian has it (systemd runs /lib/systemd/systemd-shutdown)
mkdir -p "$ROOTFS"/{usr/bin,usr/sbin,usr/lib,usr/lib64,proc,sys,dev,run,tmp,etc,root,mnt}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$ROOTFS/$d"; done
cp /bin/busybox "$ROOTFS/bin/busybox"
for a in $(/bin/busybox --list); do
	[ "$a" = busybox ] || ln -sf busybox "$ROOTFS/bin/$a"
done
install -m 755 "$BOOT_DIR/guest/init" "$ROOTFS/sbin/init"
dmsetup_bin=$(command -v dmsetup || echo /sbin/dmsetup)
cp "$dmsetup_bin" "$ROOTFS/usr/sbin/dmsetup"
for lib in $(ldd "$dmsetup_bin" | awk '/=>/ && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }'); do
	mkdir -p "$ROOTFS$(dirname "$lib")"
	cp -L "$lib" "$ROOTFS$lib"
done
# The installed dmulogd (binary, helper, unit, hooks), as on a real system.
cp -a "$STAGE/." "$ROOTFS/"
: >"$ROOTFS/etc/fstab"
# For boots 3 and 4: systemd as PID 1 (the host's, with its libraries), the few
# units a boot to boottest.target and a poweroff need, and dmulogd.service
# enabled the normal way.
copy_exec_tree() {
	local f=$1 lib
	mkdir -p "$ROOTFS$(dirname "$f")"
	cp -L "$f" "$ROOTFS$f"
	for lib in $(ldd "$f" | awk '/=>/ && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }'); do
		[ -e "$ROOTFS$lib" ] && continue
		mkdir -p "$ROOTFS$(dirname "$lib")"
		cp -L "$lib" "$ROOTFS$lib"
	done
}
for f in /usr/lib/systemd/systemd /usr/lib/systemd/systemd-shutdown /usr/bin/systemctl; do
	[ -x "$f" ] || die "$f is missing (package systemd)"
	copy_exec_tree "$f"
done
for u in sysinit.target poweroff.target systemd-poweroff.service shutdown.target final.target umount.target; do
	cp -L "/lib/systemd/system/$u" "$ROOTFS/usr/lib/systemd/system/$u"
done
install -m 644 "$BOOT_DIR/guest/systemd/boottest.target" "$BOOT_DIR/guest/systemd/boottest.service" "$ROOTFS/usr/lib/systemd/system/"
install -m 755 "$BOOT_DIR/guest/systemd/systemd-checks" "$ROOTFS/sbin/systemd-checks"
systemctl --root="$ROOTFS" enable dmulogd.service >/dev/null 2>&1 || die "systemctl --root enable dmulogd.service failed"
[ -L "$ROOTFS/etc/systemd/system/sysinit.target.wants/dmulogd.service" ] || die "enabling dmulogd.service made no sysinit.target.wants link"
cp -L /etc/os-release "$ROOTFS/etc/os-release"
# Boot 4's shutdown goes back into its dracut image, as on a dracut system:
# dracut-shutdown.service (dracut-core's unit and restore script, with bash,
# skipcpio and GNU cpio) unpacks /boot's image into /run/initramfs when
# the initrd asked for it (need_shutdown, 90dmulogd's cleanup hook);
# systemd-shutdown then runs its /shutdown, whose hooks take the root
# mirror down (90dm) and let dmulogd exit (90dmulogd); 99bootmirror's
# shutdown hook prints the markers.
if [ -n "$DRACUT_BOOT_IMG" ]; then
	mkdir -p "$ROOTFS/boot" "$ROOTFS/usr/lib/dracut" "$ROOTFS/etc/systemd/system/sysinit.target.wants"
	cp "$DRACUT_BOOT_IMG" "$ROOTFS/boot/initrd.img-$REL"
	install -m 755 "$DD/usr/lib/dracut/dracut-initramfs-restore" "$DD/usr/lib/dracut/skipcpio" "$ROOTFS/usr/lib/dracut/"
	install -m 644 "$DD/usr/lib/dracut/modules.d/98dracut-systemd/dracut-shutdown.service" "$ROOTFS/usr/lib/systemd/system/"
	ln -sf /usr/lib/systemd/system/dracut-shutdown.service "$ROOTFS/etc/systemd/system/sysinit.target.wants/"
	rm -f "$ROOTFS/usr/bin/cpio" "$ROOTFS/usr/bin/bash"
	copy_exec_tree /usr/bin/bash
	copy_exec_tree /usr/bin/cpio
fi
# an installed system's machine id (dracut-initramfs-restore reads it
# under set -e: an empty file fails boot 4's shutdown)
echo d6b2c5a8e1f94c7b9a3e2f1d0c4b5a69 >"$ROOTFS/etc/machine-id"
mke2fs -q -F -t ext2 -L bootroot -d "$ROOTFS" "$OUT/vda.img" 64M >/dev/null || die "mke2fs failed"
truncate -s 64M "$OUT/vdb.img"
truncate -s 1M "$OUT/vdc.img"
truncate -s 16M "$OUT/vdd.img"

# --- boots ------------------------------------------------------------------
# boot N INITRD [KERNEL-ARGS...]
# (no_timer_check: under a loaded host, TCG can fail the kernel's IO-APIC
# timer check and panic before anything of ours runs.)
boot() {
	local n=$1 initrd=$2 name=boot-$1 rc=0 t0=$SECONDS
	shift 2
	mkdir -p "$VM_LOGDIR"
	say "boot $n (timeout ${BOOT_TIMEOUT}s, serial log $VM_LOGDIR/$name.log)"
	timeout -k 10 "$BOOT_TIMEOUT" qemu-system-x86_64 -accel tcg -m 768 -smp 1 -nographic -no-reboot -nic none \
		-kernel "$VM_KDIR/vmlinuz" -initrd "$initrd" \
		-append "root=/dev/mapper/rootmirror ro console=ttyS0 panic=-1 quiet no_timer_check dmulogd_boot=$n $*" \
		-drive "file=$OUT/vda.img,if=virtio,format=raw" \
		-drive "file=$OUT/vdb.img,if=virtio,format=raw" \
		-drive "file=$OUT/vdc.img,if=virtio,format=raw" \
		-drive "file=$OUT/vdd.img,if=virtio,format=raw" \
		</dev/null >"$VM_LOGDIR/$name.log" 2>&1 || rc=$?
	echo "$((SECONDS - t0))" >"$VM_LOGDIR/$name.secs"
	return $rc
}
COMMON="initramfs-mirror-created reached-root root-on-mirror userspace-log log-alive mirror-in-sync
 dmulogd-survived-switch-root dmulogd-marked-at sendsigs-omit helper-adopts second-instance-refused
 root-writable new-mirror-after-switch-root data-log-clean-after-remove sigusr1-state
 sigterm-keeps-serving remount-ro legs-identical root-log-clean-at-shutdown dmulogd-alive-at-poweroff"
SYSTEMD_MARKERS="initramfs-mirror-created systemd-pid1 systemd-root-on-mirror systemd-adopted-initramfs-daemon
 systemd-stop-keeps-serving systemd-start-readopts systemd-lockfile-kept"
SYSTEMD_ARGS="init=/usr/lib/systemd/systemd systemd.unit=boottest.target rd.systemd.unit=initrd.target
 systemd.log_target=console systemd.show_status=false rd.shell=0"
passed=0
failed=0
markers() { tr -d '\r' <"$VM_LOGDIR/$1.log" | grep -E '(^|[][ ])(PASS|FAIL) ' | sed 's/^/  /'; }
# host_inspect N: the log disk, read on the host with the same binary.
host_inspect() {
	local out
	out=$("$BIN" inspect "$OUT/vdc.img" 2>&1) || { say "FAIL: dmulogd inspect vdc.img: $out"; return 1; }
	printf '%s\n' "$out" | sed "s/^/  inspect vdc.img after boot $1: /"
	grep -qx 'dirty: 0' <<<"$out" || { say "FAIL: the root log is not clean on disk after boot $1"; return 1; }
}
# systemd_boot N INITRD MARKERS...: a boot with systemd as PID 1 on the real
# root (tests/boot/guest/systemd/); judged by the markers, a power-off, no
# lost log server, and identical legs afterwards.
systemd_boot() {
	local n=$1 initrd=$2 rc=0 ok=1 log
	shift 2
	# shellcheck disable=SC2086
	boot "$n" "$initrd" $SYSTEMD_ARGS || rc=$?
	markers "boot-$n"
	vm_check "boot-$n" "$rc" "$@" || ok=
	log=$(tr -d '\r' <"$VM_LOGDIR/boot-$n.log")
	if grep -q 'reboot: Power down' <<<"$log"; then say "boot $n: systemd powered off"; else say "FAIL: boot $n did not power off"; ok=; fi
	if grep -q 'Attempting to contact userspace log server\|Userspace log server not found' <<<"$log"; then
		say "FAIL: boot $n: the kernel lost its log server"
		ok=
	fi
	grep -E "Remounting '/'|All filesystems unmounted|Sending SIG|excluded from killing|Powering off" <<<"$log" | sed "s/^/  boot $n: /"
	if cmp -s "$OUT/vda.img" "$OUT/vdb.img"; then say "boot $n: the legs are identical after the systemd shutdown"; else say "FAIL: boot $n: the legs differ"; ok=; fi
	"$BIN" inspect "$OUT/vdc.img" 2>&1 | grep -E '^(regions|dirty):' | sed "s/^/  inspect vdc.img after boot $n: /"
	[ -n "$ok" ]
}
count() { if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi; }

# Boot 1: the mirror is new (the log disk is blank: full resync).
# Boot 2: the same disks; the log on disk says clean, so no resync.
busybox_boot() {
	local n=$1 rc=0 extra=
	boot "$n" "$INITRD" || rc=$?
	markers "boot-$n"
	[ "$n" = 2 ] && extra="log-clean-at-boot"
	# shellcheck disable=SC2086
	vm_check "boot-$n" "$rc" $COMMON $extra && host_inspect "$n"
}
count busybox_boot 1
count busybox_boot 2

# Boot 3: the mkinitramfs image again, with systemd as PID 1 on the real
# root: dmulogd.service must adopt the initramfs' daemon; "systemctl
# poweroff" must get through systemd-shutdown (which spares the '@' daemon,
# so the root's final remount still writes through the mirror).
# shellcheck disable=SC2086
count systemd_boot 3 "$INITRD" $SYSTEMD_MARKERS

# Boot 4: dracut with systemd in the initramfs: dmulogd.service runs there
# and is still the same active unit, same process, after switch-root.  At
# power-off systemd hands over to the dracut image's /shutdown, which must
# remove the root mirror while dmulogd answers, then let dmulogd exit; the
# log is then clean on disk (host_inspect).
if [ -n "$DRACUT_BOOT_IMG" ]; then
	# shellcheck disable=SC2086
	count systemd_boot 4 "$DRACUT_BOOT_IMG" $SYSTEMD_MARKERS systemd-unit-kept-from-initrd \
		dracut-shutdown-mirror-removed dracut-shutdown-dmulogd-exited dracut-shutdown-log-clean
	count host_inspect 4
fi

# Boot 5: rd.dmulogd=0.  The mkinitramfs image starts no dmulogd; the
# test's local-top script gives the root mirror the kernel's own disk log
# on the same device, and the real root's helper must start nothing either.
rd0_boot() {
	local rc=0 clean=0
	"$BIN" inspect "$OUT/vdc.img" 2>/dev/null | grep -qx 'dirty: 0' && clean=1
	boot 5 "$INITRD" rd.dmulogd=0 "dmulogd_logclean=$clean" || rc=$?
	markers boot-5
	# shellcheck disable=SC2086
	vm_check boot-5 "$rc" $RD0_MARKERS
}
RD0_MARKERS="rd-dmulogd-0-not-started initramfs-mirror-created reached-root root-on-mirror kernel-log-root
 no-dmulogd-on-root helper-honours-rd-dmulogd-0 mirror-in-sync remount-ro"
count rd0_boot

count test -n "$dracut_ok"

if [ "$failed" = 0 ]; then
	boot_ok=1
	if [ -n "$DRACUT_BOOT_IMG" ]; then what="dracut images + dracut/systemd boot"; else what="dracut skipped"; fi
	say "PASS: the root on a dmulogd-served mirror booted and shut down cleanly (mkinitramfs + busybox init twice, mkinitramfs + systemd, $what, rd.dmulogd=0)"
else
	say "FAILED (artefacts in $OUT, serial logs in $VM_LOGDIR)"
fi
echo "boot-test: $passed passed, $failed failed"
[ "$failed" = 0 ]
