#!/bin/sh
# In-guest half of balloon.sh. Touches memory first (so the pages the
# balloon takes are backed on the host), announces itself, then waits until
# the host says its plan (viod.pages=P viod.cycles=N on the kernel command
# line: P pages inflated and deflated N times) has run, on the host channel
# (run-guest.sh --host-channel). Then it reports /proc/vmstat's balloon
# counters, touches memory again, to show the deflated memory is usable,
# and exits.
set -u
arg() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" /proc/cmdline; }
pages=$(arg viod.pages)
cycles=$(arg viod.cycles)
want=$((pages * cycles))
vm() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
fill() { # MB: write and drop MB of tmpfs data
	mkdir -p /fill && mount -t tmpfs -o size=$(($1 + 8))m tmpfs /fill &&
		dd if=/dev/zero of=/fill/z bs=1M count="$1" 2>/dev/null
	rm -f /fill/z
	umount /fill
}

[ -e /sys/bus/virtio/drivers/virtio_balloon ] && echo "ok 1 - virtio_balloon driver bound" ||
	echo "not ok 1 - virtio_balloon driver bound"
# Opened before the announcement: opening the port drops earlier input.
exec 3<>/dev/ttyS1 && stty raw -echo <&3 || echo "not ok 2 - host channel /dev/ttyS1 opens"
fill 200
echo "GUEST-MEMTOTAL $(awk '/MemTotal/ { print $2 }' /proc/meminfo)"
echo "GUEST-AUTOINIT $(dmesg | sed -n 's/.*mem auto-init: //p')"
echo "VIOD-BALLOON-READY"
word=""
# shellcheck disable=SC3045 # busybox sh has read -t
read -t 300 -r word <&3
[ "$word" = PLAN-DONE ] && echo "ok 3 - the host's plan ended" ||
	echo "not ok 3 - the host's plan ended within 300 s (got '$word')"
inf=$(vm balloon_inflate)
def=$(vm balloon_deflate)
echo "GUEST-DONE inflate=$inf deflate=$def"
fill 200
echo "GUEST-REFILLED"
[ "$inf" -ge "$want" ] && [ "$def" -ge "$want" ]
