#!/bin/bash
# Test-only dracut module (tests/boot/run.sh, boot 4; never installed):
# assemble the root mirror in a systemd initrd, after dmulogd.service, the
# way LVM would for a mirrored root LV.
# shellcheck disable=SC2154  # moddir, initdir, systemdsystemunitdir, SYSTEMCTL: set by dracut

check() {
    return 255
}

depends() {
    echo systemd-initrd dm dmulogd
}

install() {
    inst_multiple dmsetup cat tr head sleep
    inst_simple "$moddir/bootmirror.service" "$systemdsystemunitdir/bootmirror.service"
    inst_script "$moddir/bootmirror-create.sh" /usr/sbin/bootmirror-create
    $SYSTEMCTL -q --root "$initdir" add-wants initrd-root-device.target bootmirror.service
}
