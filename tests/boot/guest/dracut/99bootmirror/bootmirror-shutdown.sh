#!/bin/sh
# Test-only dracut shutdown hook (boot 4), after 90dm's (25) and
# 90dmulogd's (30): dracut's /shutdown runs the hooks again until each
# succeeds, then once more with "final"; wait for the mirror to be gone,
# then print the markers for tests/boot/run.sh.
if dmsetup info rootmirror >/dev/null 2>&1 && [ "$1" != final ]; then
	exit 1
fi
if dmsetup info rootmirror >/dev/null 2>&1; then
	echo "FAIL dracut-shutdown-mirror-removed: $(dmsetup ls 2>&1 | tr '\n' ' ')" >/dev/console
else
	echo "PASS dracut-shutdown-mirror-removed" >/dev/console
fi
alive=
for d in /proc/[0-9]*; do
	comm=
	{ read -r comm <"$d/comm"; } 2>/dev/null || continue
	[ "$comm" = dmulogd ] && alive="$alive ${d#/proc/}"
done
if [ -z "$alive" ]; then
	echo "PASS dracut-shutdown-dmulogd-exited" >/dev/console
else
	echo "FAIL dracut-shutdown-dmulogd-exited: still running:$alive" >/dev/console
fi
out=$(dmulogd inspect /dev/vdc 2>&1)
echo "$out" | sed 's/^/info: inspect vdc at shutdown: /' >/dev/console
if echo "$out" | grep -qx 'dirty: 0'; then
	echo "PASS dracut-shutdown-log-clean" >/dev/console
else
	echo "FAIL dracut-shutdown-log-clean" >/dev/console
fi
exit 0
