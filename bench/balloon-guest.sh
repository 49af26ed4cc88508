#!/bin/sh
# In-guest half of bench/balloon.sh: backs most of guest RAM on the host
# (writes then frees it), announces itself, and waits until the balloon
# has taken viod.pages pages (from the kernel command line).
pages=$(sed -n 's/.*viod.pages=\([0-9]*\).*/\1/p' /proc/cmdline)
fill=$(sed -n 's/.*viod.fill=\([0-9]*\).*/\1/p' /proc/cmdline)
mkdir -p /fill && mount -t tmpfs -o size=$((fill + 8))m tmpfs /fill &&
	dd if=/dev/zero of=/fill/z bs=1M count="$fill" 2>/dev/null
rm -f /fill/z
umount /fill
echo "BENCH-READY"
i=0
while [ "$i" -lt 3000 ]; do
	inf=$(awk '$1 == "balloon_inflate" { print $2 }' /proc/vmstat)
	[ "$inf" -ge "$pages" ] && break
	sleep 0.1
	i=$((i + 1))
done
echo "BENCH-GUEST-DONE inflate=$inf"
# Stay up while the host takes its measurements.
sleep 5
