#!/bin/sh
# initramfs/install.sh DESTDIR PREFIX BINARY -- what "make install" runs.
#
# Installs, under DESTDIR (may be empty):
#   PREFIX/sbin/dmulogd                         the (static) daemon, 0755
#   PREFIX/lib/dmulogd/dmulogd-start            adopt-or-start helper, 0755
#   PREFIX/share/man/man8/dmulogd.8             man page, 0644
#   UNITDIR/dmulogd.service                     systemd unit, 0644
#        (UNITDIR: $UNITDIR if set, else PREFIX/lib/systemd/system; systemd
#        reads /usr/lib, /lib and /usr/local/lib/systemd/system alike)
#   /usr/share/initramfs-tools/hooks/dmulogd              0755
#   /usr/share/initramfs-tools/scripts/init-top/dmulogd   0755
#   /usr/lib/dracut/modules.d/90dmulogd/                  module-setup.sh
#        and dmulogd-pre-udev.sh 0755, dmulogd-initrd.conf 0644
#   /usr/lib/initcpio/install/dmulogd, /usr/lib/initcpio/hooks/dmulogd  0644
#
# initramfs-tools, dracut and mkinitcpio look for their hooks in those fixed
# /usr directories only, so those do not move with PREFIX; the paths they
# name (binary, helper, unit) do.  No configuration file is installed:
# dmulogd needs none (the optional /etc/dmulogd.conf only holds
# DMULOGD_OPTS).  Set INITRAMFS_GENERATORS to a subset of
# "initramfs-tools dracut mkinitcpio systemd" to install fewer.

set -eu

if [ $# -ne 3 ]; then
	echo "usage: $0 DESTDIR PREFIX BINARY" >&2
	exit 2
fi
destdir=$1
prefix=$2
binary=$3
here=$(cd "$(dirname "$0")" && pwd)

case $prefix in
/*) ;;
*)
	echo "$0: PREFIX must be an absolute path (got '$prefix')" >&2
	exit 2
	;;
esac
prefix=${prefix%/}
[ -n "$prefix" ] || prefix=/
if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
	echo "$0: $binary is not an executable file (run 'make static' first)" >&2
	exit 1
fi

p=${prefix%/}
sbindir=$p/sbin
libexecdir=$p/lib/dmulogd
mandir=$p/share/man/man8
unitdir=${UNITDIR:-$p/lib/systemd/system}
generators=${INITRAMFS_GENERATORS:-initramfs-tools dracut mkinitcpio systemd}

want() {
	case " $generators " in
	*" $1 "*) return 0 ;;
	*) return 1 ;;
	esac
}

# install_subst MODE SRC DEST: install SRC with the @...@ paths filled in.
install_subst() {
	tmp=$(mktemp "${TMPDIR:-/tmp}/dmulogd-install.XXXXXX")
	sed -e "s|@SBINDIR@|$sbindir|g" \
		-e "s|@LIBEXECDIR@|$libexecdir|g" \
		-e "s|@UNITDIR@|$unitdir|g" \
		-e "s|@PREFIX@|$p|g" "$2" >"$tmp"
	if grep -n '@[A-Z]*@' "$tmp" >&2; then
		rm -f "$tmp"
		echo "$0: unsubstituted placeholder left in $2" >&2
		exit 1
	fi
	install -D -m "$1" "$tmp" "$destdir$3"
	rm -f "$tmp"
	echo "  $destdir$3"
}

echo "installing dmulogd (PREFIX=$prefix) into ${destdir:-/}:"
install -D -m 0755 "$binary" "$destdir$sbindir/dmulogd"
echo "  $destdir$sbindir/dmulogd"
install_subst 0755 "$here/dmulogd-start" "$libexecdir/dmulogd-start"
install -D -m 0644 "$here/dmulogd.8" "$destdir$mandir/dmulogd.8"
echo "  $destdir$mandir/dmulogd.8"

if want systemd; then
	install_subst 0644 "$here/systemd/dmulogd.service" "$unitdir/dmulogd.service"
fi
if want initramfs-tools; then
	install_subst 0755 "$here/initramfs-tools/hooks/dmulogd" \
		/usr/share/initramfs-tools/hooks/dmulogd
	install_subst 0755 "$here/initramfs-tools/scripts/init-top/dmulogd" \
		/usr/share/initramfs-tools/scripts/init-top/dmulogd
fi
if want dracut; then
	d=/usr/lib/dracut/modules.d/90dmulogd
	install_subst 0755 "$here/dracut/90dmulogd/module-setup.sh" "$d/module-setup.sh"
	install_subst 0755 "$here/dracut/90dmulogd/dmulogd-pre-udev.sh" "$d/dmulogd-pre-udev.sh"
	install_subst 0644 "$here/dracut/90dmulogd/dmulogd-initrd.conf" "$d/dmulogd-initrd.conf"
	install_subst 0755 "$here/dracut/90dmulogd/dmulogd-cleanup.sh" "$d/dmulogd-cleanup.sh"
	install_subst 0755 "$here/dracut/90dmulogd/dmulogd-shutdown.sh" "$d/dmulogd-shutdown.sh"
fi
if want mkinitcpio; then
	install_subst 0644 "$here/mkinitcpio/install/dmulogd" /usr/lib/initcpio/install/dmulogd
	install_subst 0644 "$here/mkinitcpio/hooks/dmulogd" /usr/lib/initcpio/hooks/dmulogd
	install_subst 0644 "$here/mkinitcpio/dmulogd-initrd.conf" /usr/lib/initcpio/dmulogd-initrd.conf
fi

if [ -z "$destdir" ]; then
	echo "next: enable the unit (systemctl enable dmulogd.service) and rebuild the"
	echo "initramfs (update-initramfs -u / dracut -f / mkinitcpio -P);"
	echo "mkinitcpio also needs \"dmulogd\" in HOOKS, before lvm2."
fi
