#!/bin/bash
# Test-only dracut module (tests/boot/run.sh, boot 4; never installed):
# assemble the root mirror in a systemd initrd, after dmulogd.service, the
# way LVM would for a mirrored root LV; at shutdown, check that the root
# mirror was taken down and dmulogd exited.
# shellcheck disable=SC2154  # moddir, initdir, systemdsystemunitdir, SYSTEMCTL: set by dracut

check() {
    return 255
}

depends() {
    echo systemd-initrd dm dmulogd shutdown
}

install() {
    inst_multiple dmsetup cat tr head sleep sed grep
    inst_simple "$moddir/bootmirror.service" "$systemdsystemunitdir/bootmirror.service"
    inst_script "$moddir/bootmirror-create.sh" /usr/sbin/bootmirror-create
    $SYSTEMCTL -q --root "$initdir" add-wants initrd-root-device.target bootmirror.service
    inst_hook shutdown 90 "$moddir/bootmirror-shutdown.sh"
}
