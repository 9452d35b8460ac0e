#!/bin/bash
# shellcheck disable=SC2154  # moddir, initdir, hostonly, ...: set by dracut
# dracut module for dmulogd, the device-mapper userspace dirty-log server.
#
# The kernel refuses to load a mirror table with a "userspace" log while no
# server listens, so dmulogd must run before udev can trigger any
# activation (LVM, dmraid, hand-made tables).  Two ways, one helper:
#
#   * systemd in the initrd: the same dmulogd.service as on the real root
#     (Before=systemd-udev-trigger.service ..., enabled into sysinit.target)
#     plus an initrd-only drop-in that sends a failure to emergency.target.
#     IgnoreOnIsolate=yes keeps it through initrd-switch-root.target, and
#     because the unit has the same name on the real root, it is simply
#     still active after switch-root: nothing is started twice.
#   * no systemd: a pre-udev hook (runs before udevd starts).
#
# Either way dmulogd-start execs "dmulogd --daemon" (or adopts a running
# one), and dmulogd marks itself '@' because dracut images always have
# /etc/initrd-release, so no killing spree (switch-root or shutdown) touches
# it: it keeps serving from initrd memory until the machine goes down.

# called by dracut
check() {
    require_binaries @SBINDIR@/dmulogd || return 1
    # Host-only images get the module when a live table uses a userspace
    # log (or when it is asked for: --add dmulogd / add_dracutmodules+=).
    if [[ $hostonly ]]; then
        # A userspace log of type core/disk is ours; clustered-* are
        # cmirrord's (fields: mirror userspace <argc> <uuid>
        # [integrated_flush] <type> ...).
        dmsetup table 2>/dev/null | awk '{
            for (i = 1; i + 4 <= NF; i++) if ($i == "mirror" && $(i + 1) == "userspace") {
                t = $(i + 4); if (t == "integrated_flush") t = $(i + 5)
                if (t == "core" || t == "disk") f = 1
            }
        } END { exit !f }' && return 0
        return 255
    fi
    return 0
}

# called by dracut
depends() {
    echo dm
    return 0
}

# called by dracut
installkernel() {
    # dm-log-userspace (+ dm-log, dm-mod) is what dmulogd serves; dm-mirror
    # (+ dm-region-hash) is the target using it.  The netlink connector is
    # built in (CONFIG_CONNECTOR=y) on distribution kernels.  hostonly=''
    # because these are usually not loaded when the image is built.
    hostonly='' instmods dm-log-userspace dm-mirror dm-region-hash dm-log dm-mod
}

# called by dracut
install() {
    # A typo in DMULOGD_OPTS fails this build, not every boot.
    local conf=${DMULOGD_CONF:-/etc/dmulogd.conf} opts="" out
    # shellcheck disable=SC1090  # the administrator's file
    [[ -f $conf ]] && opts=$(. "$conf"; echo "${DMULOGD_OPTS:-}")
    # shellcheck disable=SC2086  # options are words
    if ! out=$("${DMULOGD_SRCROOT:-}@SBINDIR@/dmulogd" --check $opts 2>&1); then
        derror "dmulogd: DMULOGD_OPTS in $conf: $out"
        return 1
    fi
    inst_binary @SBINDIR@/dmulogd
    inst_simple @LIBEXECDIR@/dmulogd-start
    [[ -f /etc/dmulogd.conf ]] && inst_simple /etc/dmulogd.conf

    if dracut_module_included "systemd"; then
        inst_simple @UNITDIR@/dmulogd.service "$systemdsystemunitdir/dmulogd.service"
        inst_simple "$moddir/dmulogd-initrd.conf" "$systemdsystemunitdir/dmulogd.service.d/initrd.conf"
        $SYSTEMCTL -q --root "$initdir" enable dmulogd.service
    else
        inst_hook pre-udev 10 "$moddir/dmulogd-pre-udev.sh"
    fi
    # Shutdown: keep the initramfs so 90dm's shutdown hook (25) tears the
    # mirrors down while dmulogd answers, then let dmulogd flush and exit.
    inst_hook cleanup 00 "$moddir/dmulogd-cleanup.sh"
    inst_hook shutdown 30 "$moddir/dmulogd-shutdown.sh"
}
