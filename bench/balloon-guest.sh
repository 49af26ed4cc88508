#!/bin/sh
# In-guest half of bench/balloon.sh: backs most of guest RAM on the host
# (writes then frees it), announces itself, and waits until the balloon
# has taken viod.pages pages (from the kernel command line). The wait
# polls once a second with shell built-ins only, so that it takes next to
# no guest CPU from the balloon driver being timed.
pages=$(sed -n 's/.*viod.pages=\([0-9]*\).*/\1/p' /proc/cmdline)
fill=$(sed -n 's/.*viod.fill=\([0-9]*\).*/\1/p' /proc/cmdline)
mkdir -p /fill && mount -t tmpfs -o size=$((fill + 8))m tmpfs /fill &&
	dd if=/dev/zero of=/fill/z bs=1M count="$fill" 2>/dev/null
rm -f /fill/z
umount /fill
echo "BENCH-READY"
inflated() {
	while read -r k v; do
		[ "$k" = balloon_inflate ] && { echo "$v"; return; }
	done </proc/vmstat
}
i=0
inf=$(inflated)
while [ "$i" -lt 300 ] && [ "$inf" -lt "$pages" ]; do
	sleep 1
	inf=$(inflated)
	i=$((i + 1))
done
echo "BENCH-GUEST-DONE inflate=$inf"
# Stay up while the host takes its measurements.
sleep 5
