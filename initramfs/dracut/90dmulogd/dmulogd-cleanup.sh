#!/bin/sh
# dracut cleanup hook (before switch-root): a mirror served by dmulogd,
# the root's included, must be torn down at shutdown by the initramfs
# (systemd-shutdown returns to /run/initramfs, where 90dm's shutdown hook
# removes the dm devices while dmulogd still answers them). need_shutdown
# asks dracut to keep the initramfs for that.
# shellcheck source=/dev/null  # dracut's library, in the image only
type need_shutdown >/dev/null 2>&1 || . /lib/dracut-lib.sh
need_shutdown
