#!/usr/bin/env bash
# viod-libvirt's XML and balloonctl --connect/--domain without libvirtd:
# libvirt's test driver, loaded from a node file of our own (test:///FILE:
# a domain defined by one process is not seen by the next with
# test:///default), whose domains carry viod metadata pointing at a real
# viod's control socket. Fake emulators answer -device help, to check the
# choice of QEMU's generic vhost-user device.
# Usage: tools.sh VIOD BALLOONCTL VIOD-LIBVIRT. TAP on stdout.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tap.sh
. "$here/../tap.sh"
[ $# -eq 3 ] || { echo "usage: $0 VIOD BALLOONCTL VIOD-LIBVIRT" >&2; exit 2; }
viod=$1 bctl=$2 vl=$3

tmp=$(mktemp -d "${TMPDIR:-/tmp}/viod-libvirt-tools.XXXXXX")
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ "$fails" -gt 0 ] && [ -s "$tmp/viod.log" ] && sed 's/^/viod: /' "$tmp/viod.log" >&2
	rm -rf "$tmp"
}
trap cleanup EXIT

# ---- viod-libvirt xml ----
for name in test-device device none; do
	{
		echo '#!/bin/sh'
		echo 'echo "name \"vhost-user-rng-pci\", bus PCI"'
		case $name in
		test-device) echo 'echo "name \"vhost-user-test-device-pci\", bus PCI"'
			echo 'echo "name \"vhost-user-device-pci\", bus PCI"' ;;
		device) echo 'echo "name \"vhost-user-device-pci\", bus PCI"' ;;
		esac
	} >"$tmp/qemu-$name"
	chmod +x "$tmp/qemu-$name"
done
devs=(--rng rng0 --balloon b0 --blk d0,path=/srv/d0.img,read-only=on
	--net n0,switch=lan,mac=52:54:00:00:00:0a --net n1,switch=lan)
xml() { "$vl" --run-dir /run/viod/libvirt xml web1 --new --emulator "$tmp/qemu-$1" "${devs[@]}"; }
check "xml --new with every device type" eval 'xml test-device >"$tmp/web1.xml"'
has() { grep -qF -- "$1" "$tmp/web1.xml"; }
check "balloon on vhost-user-test-device-pci when QEMU has it" \
	has 'vhost-user-test-device-pci,virtio-id=5,num_vqs=4,config_size=16,chardev=viod-b0'
xml device >"$tmp/old.xml"
check "balloon on vhost-user-device-pci when QEMU has only that" \
	grep -qF 'vhost-user-device-pci,virtio-id=5' "$tmp/old.xml"
xml none >/dev/null 2>"$tmp/err"
check "a QEMU without a generic device: an error" grep -q 'no generic vhost-user device' "$tmp/err"
check "rng chardev reconnects" \
	has 'socket,id=viod-rng0,path=/run/viod/libvirt/web1/rng0.sock,reconnect-ms=1000'
check "rng and balloon on slots of their own" eval 'has addr=0x10 && has addr=0x11'
check "libvirt's memballoon off" has "<memballoon model=\"none\"/>"
check "shared memfd" eval 'has "<source type=\"memfd\"/>" && has "<access mode=\"shared\"/>"'
check "blk is a vhostuser disk on vda" eval 'has "<disk type=\"vhostuser\" device=\"disk\">" &&
	has "path=\"/run/viod/libvirt/web1/d0.sock\"" && has "<target dev=\"vda\" bus=\"virtio\"/>"'
check "net is a vhostuser interface, client, reconnecting" \
	eval 'has "path=\"/run/viod/libvirt/web1/n0.sock\" mode=\"client\"" && has "<reconnect enabled=\"yes\" timeout=\"1\"/>"'
check "net: the given MAC on both sides" eval 'has "<mac address=\"52:54:00:00:00:0a\"/>" &&
	has "backend=switch:lan,mac=52:54:00:00:00:0a\""'
check "metadata: control and specs" eval 'has "<viod:control path=\"/run/viod/libvirt/web1/control\"/>" &&
	has "spec=\"blk,id=d0,socket=/run/viod/libvirt/web1/d0.sock,path=/srv/d0.img,read-only=on\""'
if command -v virt-xml-validate >/dev/null; then
	check "the XML is valid for libvirt's schema" eval 'virt-xml-validate "$tmp/web1.xml" domain >&2'
fi
"$vl" xml web1 --new --emulator "$tmp/qemu-none" --blk d0 >/dev/null 2>&1
check "--blk without path: usage error (2)" [ $? -eq 2 ]
"$vl" xml web1 --new --emulator "$tmp/qemu-none" --rng r0,socket=/x >/dev/null 2>&1
check "socket= is viod-libvirt's: usage error (2)" [ $? -eq 2 ]
"$vl" xml ../etc --new --rng r0 >/dev/null 2>&1
check "a domain name that is no path component: usage error (2)" [ $? -eq 2 ]
# A second pass over its own output keeps the devices and adds one.
"$vl" xml web1 --base "$tmp/web1.xml" --emulator "$tmp/qemu-none" --blk d1,path=/srv/d1.img \
	>"$tmp/web1b.xml"
check "--base keeps the devices and adds vdb" eval 'grep -q "dev=\"vdb\"" "$tmp/web1b.xml" &&
	[ "$(grep -c "<viod:device " "$tmp/web1b.xml")" -eq 6 ]'
"$vl" xml web1 --base "$tmp/web1.xml" --emulator "$tmp/qemu-none" --rng rng0 >/dev/null 2>&1
check "--base: a recorded id again is an error (1)" [ $? -eq 1 ]

# ---- the hook, without libvirtd ----
hookrun=$tmp/run
printf '<domain><name>plain</name></domain>\n' >"$tmp/plain.xml"
"$vl" --run-dir "$hookrun" hook plain prepare begin - <"$tmp/plain.xml"
st=$?
check "hook: a domain without viod metadata: exit 0, nothing made" \
	eval '[ $st -eq 0 ] && [ ! -e "$hookrun" ]'
sed 's|spec="rng,id=rng0,socket=/run/viod/libvirt/web1/rng0.sock"|spec="rng,id=rng0,socket=/tmp/elsewhere.sock"|' \
	"$tmp/web1.xml" >"$tmp/evil.xml"
"$vl" --run-dir /run/viod/libvirt hook web1 prepare begin - <"$tmp/evil.xml" 2>"$tmp/err"
st=$?
check "hook: a spec naming another socket: exit 1, refused" \
	eval '[ $st -eq 1 ] && grep -q "spec does not start with" "$tmp/err"'
if [ "$(id -u)" -eq 0 ]; then
	# A domain of two devices in a run directory of our own, QEMU's
	# group taken from a qemu.conf of our own.
	printf 'group = "root"\n' >"$tmp/qemu.conf"
	"$vl" --run-dir "$hookrun" xml hk --new --rng rng0 --balloon b0 \
		--emulator "$tmp/qemu-test-device" >"$tmp/hk.xml"
	"$vl" --run-dir "$hookrun" --viod "$viod" --qemu-conf "$tmp/qemu.conf" \
		hook hk prepare begin - <"$tmp/hk.xml"
	st=$?
	check "hook prepare begin: exit 0 with every socket there" \
		eval '[ $st -eq 0 ] && [ -S "$hookrun/hk/rng0.sock" ] && [ -S "$hookrun/hk/b0.sock" ] && [ -S "$hookrun/hk/control" ]'
	check "hook: the directory is 2750 root:root" [ "$(stat -c '%a %U %G' "$hookrun/hk")" = "2750 root root" ]
	check "hook: device sockets 0770" [ "$(stat -c %a "$hookrun/hk/rng0.sock")" = 770 ]
	sup=$(cat "$hookrun/hk/supervisor.pid" 2>/dev/null)
	check "hook: a supervisor runs, in a session of its own" \
		eval '[ -n "$sup" ] && [ "$(ps -o sid= -p "$sup" | tr -d " ")" != "$(ps -o sid= -p $$ | tr -d " ")" ]'
	"$vl" --run-dir "$hookrun" hook hk release end - <"$tmp/hk.xml"
	st=$?
	check "hook release end: exit 0, the directory gone" eval '[ $st -eq 0 ] && [ ! -e "$hookrun/hk" ]'
	st=$(awk '{ print $3 }' "/proc/$sup/stat" 2>/dev/null)
	check "hook: the supervisor is gone (${st:-no process})" [ -z "$st" -o "$st" = Z ]
fi

# ---- balloonctl --connect/--domain against a real viod ----
ctl=$tmp/control
"$viod" --control "$ctl" --device "balloon,id=b0,socket=$tmp/b0.sock" >"$tmp/viod.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S "$ctl" ] && break; sleep 0.05; done
[ -S "$ctl" ] || { echo "Bail out! viod did not start"; exit 1; }
cat >"$tmp/node.xml" <<XML
<node>
  <domain type='test'>
    <name>web1</name>
    <memory>524288</memory>
    <os><type>hvm</type></os>
    <metadata>
      <viod:viod xmlns:viod="urn:viod:libvirt:1">
        <viod:control path="$ctl"/>
        <viod:device id="b0" type="balloon" socket="$tmp/b0.sock" spec="balloon,id=b0,socket=$tmp/b0.sock"/>
      </viod:viod>
    </metadata>
  </domain>
  <domain type='test'>
    <name>plain</name>
    <memory>524288</memory>
    <os><type>hvm</type></os>
  </domain>
</node>
XML
uri=test://$tmp/node.xml
out=$("$bctl" -c "$uri" -d web1 status 2>&1)
check "status -d web1 reaches its viod" grep -q '^b0 *balloon' <<<"$out"
check "set -d web1 b0 100" eval '"$bctl" -c "$uri" -d web1 set b0 100 >&2'
out=$("$bctl" -c "$uri" -d web1 --json get b0 2>&1)
check "get -d web1 b0: target 100 ($out)" grep -q '"target_pages" *: *100' <<<"$out"
out=$("$bctl" --connect "$uri" list 2>&1)
check "list: web1's balloon with its target" grep -q '^web1 .* b0 *100 ' <<<"$out"
check "list: plain is not listed" eval '! grep -q "^plain" <<<"$out"'
out=$("$bctl" -c "$uri" -d plain status 2>&1)
st=$?
check "a domain without viod metadata: exit 1 and says so" \
	eval '[ $st -eq 1 ] && grep -q "no viod devices" <<<"$out"'
out=$("$bctl" -c "$uri" -d nope status 2>&1)
st=$?
check "an unknown domain: exit 1 and says so" eval '[ $st -eq 1 ] && grep -q "no domain .nope." <<<"$out"'
"$bctl" -c "$uri" -d web1 -s "$ctl" status >/dev/null 2>&1
check "--domain with --socket: usage error (2)" [ $? -eq 2 ]
out=$("$vl" -c "$uri" show web1 2>&1)
check "viod-libvirt show web1" grep -q "^balloon *b0 *balloon,id=b0," <<<"$out"
tap_end
