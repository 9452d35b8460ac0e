#!/bin/sh
# Runs in the dracut systemd initrd (bootmirror.service): create the root
# mirror; the markers go to the console for tests/boot/run.sh.
exec >/dev/console 2>&1
pid=$(cat /run/dmulogd.pid 2>/dev/null)
argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1)
echo "bootmirror: initrd dmulogd pid '$pid' argv0 '$argv0'," \
	"dmulogd.service $(systemctl show -p ActiveState --value dmulogd.service)" \
	"main pid $(systemctl show -p MainPID --value dmulogd.service)"
echo "$pid" >/run/bootmirror.initrd-pid
sectors=$(cat /sys/block/vda/size)
logdev=$(cat /sys/block/vdc/dev)
table="0 $sectors mirror userspace 4 dmulogd-boot-test-root disk $logdev 1024 2 /dev/vda 0 /dev/vdb 0 1 handle_errors"
if dmsetup create rootmirror --table "$table"; then
	echo "PASS initramfs-mirror-created"
else
	echo "FAIL initramfs: dmsetup create rootmirror failed"
	exit 1
fi
