#!/bin/sh
# dracut pre-udev hook (initrds without systemd): start dmulogd before udevd
# runs, so that no mirror with a "userspace" log can be activated (by udev
# rules, LVM or anything later) while no server listens.  Sourced by
# dracut's init: no "exit" here.  dmulogd's own messages (stderr) go to the
# kernel log, which outlives the initrd.

# shellcheck source=/dev/null  # dracut's library, in the image only
type warn >/dev/null 2>&1 || . /lib/dracut-lib.sh

if ! @LIBEXECDIR@/dmulogd-start </dev/null >/dev/null 2>>/dev/kmsg; then
    warn "dmulogd: the device-mapper userspace log server failed to start; see dmesg."
    warn "dmulogd: mirrors with a userspace log cannot be activated without it."
    emergency_shell -n dmulogd "dmulogd failed to start (leave the shell to boot on without it)"
fi
