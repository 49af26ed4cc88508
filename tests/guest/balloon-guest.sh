#!/bin/sh
# In-guest half of balloon.sh. Touches memory first (so the pages the
# balloon takes are backed on the host), announces itself, then reports
# /proc/vmstat's balloon counters whenever they change, until the host's
# plan (viod.pages=P viod.cycles=N on the kernel command line) has run:
# P*N pages inflated and deflated. Then it touches memory again, to show the
# deflated memory is usable, and exits.
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
fill 200
echo "GUEST-MEMTOTAL $(awk '/MemTotal/ { print $2 }' /proc/meminfo)"
echo "VIOD-BALLOON-READY"
last=""
i=0
while [ "$i" -lt 600 ]; do
	inf=$(vm balloon_inflate)
	def=$(vm balloon_deflate)
	now="$inf $def"
	if [ "$now" != "$last" ]; then
		echo "GUEST-VMSTAT inflate=$inf deflate=$def"
		last=$now
	fi
	[ "$inf" -ge "$want" ] && [ "$def" -ge "$want" ] && break
	sleep 0.2
	i=$((i + 1))
done
echo "GUEST-DONE inflate=$inf deflate=$def"
fill 200
echo "GUEST-REFILLED"
[ "$inf" -ge "$want" ] && [ "$def" -ge "$want" ]
