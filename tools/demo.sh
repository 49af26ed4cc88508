#!/usr/bin/env bash
# The main job, on embedded defaults, from a fresh Debian 12 machine:
# installs dependencies, builds viod and the QEMU it needs, starts viod
# with an rng and a balloon device, boots a Debian guest in QEMU (TCG) on
# both, reads the guest's entropy, has balloonctl inflate the guest's
# balloon by 64 MiB and deflate it again while the guest reports its own
# counters, then runs the viornd reference driver on the same rng socket
# without restarting viod, and two vioif reference drivers exchanging
# frames through viod's switch.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash tools/install-deps.sh
[ -f build/build.ninja ] || meson setup build -Dbuildtype=debugoptimized >/dev/null
ninja -C build >/dev/null
guest=$(tools/guest/build-guest.sh)
qemu=$(tools/build-qemu.sh | tail -n 1)
generic=$(tools/qemu-generic-device.sh "$qemu")

tmp=$(mktemp -d)
viod_pid=""
cleanup() {
	[ -n "$viod_pid" ] && kill "$viod_pid" 2>/dev/null && wait "$viod_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

ctl=$tmp/control
build/viod --verbose --control "$ctl" --device "rng,id=rng0,socket=$tmp/rng0.sock" \
	--device "balloon,id=balloon0,socket=$tmp/balloon0.sock,stats-interval=1" \
	--device "net,id=net0,socket=$tmp/net0.sock,backend=switch:lan,mac=52:54:00:00:00:10" \
	--device "net,id=net1,socket=$tmp/net1.sock,backend=switch:lan,mac=52:54:00:00:00:11" \
	2>"$tmp/viod.log" &
viod_pid=$!
for _ in $(seq 100); do [ -S "$ctl" ] && break; sleep 0.05; done
bctl() { build/tools/balloonctl --socket "$ctl" "$@"; }

cat >"$tmp/guest.sh" <<'GUEST'
#!/bin/sh
echo "guest: rng_current = $(cat /sys/class/misc/hw_random/rng_current)"
echo "guest: 32 bytes from /dev/hwrng:"
head -c 32 /dev/hwrng | od -An -tx1 | sed 's/^/guest: /'
vm() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
echo "guest: READY"
last=""
for i in $(seq 150); do
	now="balloon_inflate=$(vm balloon_inflate) balloon_deflate=$(vm balloon_deflate)"
	[ "$now" != "$last" ] && echo "guest: $now" && last=$now
	[ "$(vm balloon_deflate)" -ge 16384 ] && break
	sleep 0.2
done
GUEST

echo "== booting a Linux guest on viod's rng and balloon devices"
while IFS= read -r line; do
	case $line in
	"guest: READY")
		echo "== host: balloonctl set balloon0 64M --wait"
		bctl set balloon0 64M --wait
		bctl get balloon0
		echo "host-freed: $(build/tools/viod-store --socket "$ctl" read /devices/balloon0/host-freed) bytes"
		bctl stats balloon0 | head -6
		echo "== host: balloonctl set balloon0 0 --wait"
		bctl set balloon0 0 --wait
		;;
	guest:*) echo "$line" ;;
	esac
done < <(tools/guest/run-guest.sh --qemu "$qemu" --memory 512 \
	--kernel "$guest/vmlinuz" --initrd "$guest/initrd.img" --script "$tmp/guest.sh" -- \
	-chardev "socket,id=c0,path=$tmp/rng0.sock" -device vhost-user-rng-pci,chardev=c0 \
	-chardev "socket,id=c1,path=$tmp/balloon0.sock" \
	-device "$generic,virtio-id=5,num_vqs=4,config_size=16,chardev=c1" 2>/dev/null)

echo "== the viornd reference driver on the same rng socket"
build/tools/vioguest --socket "$tmp/rng0.sock" rng --bytes 32 --hex

echo "== two vioif reference drivers through viod's switch: net1 echoes what net0 sends"
build/tools/vioguest --socket "$tmp/net1.sock" net echo --count 1000 &
echo_pid=$!
for _ in $(seq 100); do
	f=$(build/tools/viod-store --socket "$ctl" read /devices/net1/features)
	[ "$((f))" -ne 0 ] && break # negotiated: its switch port is up
	sleep 0.05
done
build/tools/vioguest --socket "$tmp/net0.sock" net pingpong --count 1000 --dst 52:54:00:00:00:11
wait "$echo_pid"
for k in tx/packets rx/packets drops/dst-full; do
	echo "net0 $k: $(build/tools/viod-store --socket "$ctl" read /devices/net0/$k)"
done

echo "== viod's log"
kill "$viod_pid"
wait "$viod_pid" || true
viod_pid=""
grep -v ': [A-Z_]*$' "$tmp/viod.log" || true
