#!/bin/sh
# In-guest half of domain.sh, run as /test.sh (busybox sh) in a libvirt
# domain whose four devices viod serves. The kernel command line says:
#   viod.devs=rng,blk,net (the devices to check; default all three; the
#   rng loop below only with rng)
#   viod.ip=ADDR/PREFIX viod.peer=ADDR viod.mac=MAC
# Checks rng, a blk round trip on vda and eth0 (a ping to the peer, a
# port of the same viod switch), prints TAP body lines (the host
# renumbers them), then GUEST-READY, then "RNG-OK N" or "RNG-FAIL N" once
# a second, forever: the host inflates and deflates the balloon, kills
# viod, watches the rng come back, and destroys the domain.
set -u
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $*"; }
check() {
	d=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then ok "$d"; else not_ok "$d"; sed 's/^/# /' /tmp/check.out; fi
}
arg() { sed -n "s/.*viod\\.$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }

devs=$(arg devs)
: "${devs:=rng,blk,net}"
want() { case ",$devs," in *",$1,"*) return 0 ;; esac; return 1; }

# rng
if want rng; then
	check "rng: 64 bytes from /dev/hwrng" sh -c '[ "$(head -c 64 /dev/hwrng | wc -c)" -eq 64 ]'
	check "rng: the current source is virtio_rng" grep -q virtio_rng /sys/class/misc/hw_random/rng_current
fi

# blk: 4 MiB of random data through vda and back, past the page cache.
if ! want blk; then
	:
elif [ -b /dev/vda ]; then
	ok "blk: /dev/vda exists ($(cat /sys/block/vda/size) sectors)"
	head -c 4194304 /dev/urandom >/tmp/data
	check "blk: write 4 MiB (O_DIRECT)" dd if=/tmp/data of=/dev/vda bs=1M count=4 oflag=direct
	sync
	echo 3 >/proc/sys/vm/drop_caches
	check "blk: read back (O_DIRECT)" dd if=/dev/vda of=/tmp/back bs=1M count=4 iflag=direct
	check "blk: the data came back" cmp /tmp/data /tmp/back
	echo "SHA256 blk $(sha256sum /tmp/data | cut -d ' ' -f 1)"
else
	not_ok "blk: /dev/vda exists"
fi

# net
ip=$(arg ip) peer=$(arg peer) mac=$(arg mac)
if ! want net; then
	:
elif [ -e /sys/class/net/eth0 ]; then
	check "net: eth0 is virtio_net" sh -c 'readlink /sys/class/net/eth0/device/driver | grep -q virtio_net'
	check "net: eth0 has MAC $mac" grep -qi "^$mac\$" /sys/class/net/eth0/address
	ip link set eth0 up
	ip addr add "$ip" dev eth0
	echo NET-UP
	check "net: ping $peer through viod's switch" ping -c 3 -w 60 "$peer"
else
	not_ok "net: eth0 exists"
fi

echo GUEST-READY
want rng || exec sleep 100000
i=0
while :; do
	i=$((i + 1))
	if [ "$(head -c 16 /dev/hwrng | wc -c)" -eq 16 ]; then echo "RNG-OK $i"; else echo "RNG-FAIL $i"; fi
	sleep 1
done
