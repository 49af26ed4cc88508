#!/usr/bin/env bash
# A libvirt domain with all four viod devices, as a user would run it:
# viod-libvirt writes the domain XML, libvirtd starts it, the QEMU hook
# (hooks/qemu.d/viod) starts the domain's viod under its supervisor, and
# balloonctl finds that viod through the domain's metadata. Checks in the
# guest: rng, a blk round trip, a ping through viod's switch to a port
# that `vioguest net respond` drives; from the host: balloon inflate and
# deflate with `balloonctl -c qemu:///system -d NAME set ... --wait`, the
# supervisor starting a killed viod again (the guest's rng works on), and
# `virsh destroy` taking viod, its supervisor and the socket directory.
#
# Usage: domain.sh VIOD BALLOONCTL VIOD-LIBVIRT VIOGUEST. TAP on stdout.
# Needs root, libvirtd (started here with virtlogd if not running: no
# systemd) and the patched QEMU (VIOD_PATCHED_QEMU, else built or taken
# from the cache by tools/build-qemu.sh). The hook is installed the way a
# user of a build tree would: a copy in /etc/libvirt/hooks/qemu.d/viod
# calling this build's viod-libvirt and viod (`meson install` with
# -Dsysconfdir=/etc installs the same file with the installed paths),
# then libvirtd is restarted, as libvirt looks for hooks when it starts.
# A hook that was there before is put back at the end; daemons started
# here are stopped.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source=../tap.sh
. "$here/../tap.sh"
[ $# -eq 4 ] || { echo "usage: $0 VIOD BALLOONCTL VIOD-LIBVIRT VIOGUEST" >&2; exit 2; }
viod=$(realpath "$1") bctl=$(realpath "$2") vl=$(realpath "$3") vg=$(realpath "$4")
uri=qemu:///system
name=viod-test-$$
rundir=/run/viod/libvirt
ddir=$rundir/$name
hook=/etc/libvirt/hooks/qemu.d/viod
virsh() { command virsh -q -c "$uri" "$@"; }

[ "$(id -u)" -eq 0 ] || { echo "1..0 # SKIP needs root (libvirtd, its hook)"; exit 0; }
for t in virsh libvirtd virtlogd; do
	command -v "$t" >/dev/null || { echo "1..0 # SKIP no $t (tools/install-deps.sh)"; exit 0; }
done
qemu=${VIOD_PATCHED_QEMU:-}
if [ -z "$qemu" ]; then
	qemu=$("$top/tools/build-qemu.sh" | tail -n 1) || { echo "Bail out! tools/build-qemu.sh failed"; exit 1; }
fi
[ -x "$qemu" ] || { echo "Bail out! no QEMU at $qemu"; exit 1; }
# has_vhost_user_net QEMU: its vhost-user netdev is compiled in (listed
# in -netdev help or not).
has_vhost_user_net() {
	local out
	out=$(timeout 20 "$1" -nodefaults -display none -machine none \
		-netdev vhost-user,id=n0,chardev=none 2>&1)
	! grep -q 'not compiled' <<<"$out"
}
guest=$("$top/tools/guest/build-guest.sh" | tail -n 1) || { echo "Bail out! no guest image"; exit 1; }

# QEMU runs as libvirt's user: everything it opens lives in a directory
# it can search (not under /root).
tmp=$(mktemp -d /tmp/viod-libvirt-domain.XXXXXX)
chmod 0755 "$tmp"
started_libvirtd="" started_virtlogd="" hook_saved="" defined="" defined_net="" resp_pid=""

libvirtd_pid() { local p; p=$(cat /run/libvirtd.pid 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p"; }
virtlogd_pid() { local p; p=$(cat /run/virtlogd.pid 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p"; }
stop_pid() { # PID: SIGTERM, and wait up to 10 s
	kill -TERM "$1" 2>/dev/null || return 0
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null
}
cleanup() {
	if [ -n "$resp_pid" ]; then kill "$resp_pid" 2>/dev/null; wait "$resp_pid" 2>/dev/null; fi
	if [ -n "$defined" ]; then
		virsh destroy "$name" >/dev/null 2>&1
		virsh undefine "$name" >/dev/null 2>&1
	fi
	if [ -n "$defined_net" ]; then
		virsh destroy "$name-net" >/dev/null 2>&1
		virsh undefine "$name-net" >/dev/null 2>&1
	fi
	if [ "$fails" -gt 0 ]; then
		[ -s "$tmp/console" ] && tail -n 40 "$tmp/console" | sed 's/^/console: /' >&2
		[ -s "$rundir/$name.log" ] && sed 's/^/supervisor: /' "$rundir/$name.log" >&2
		[ -s "$tmp/respond.log" ] && sed 's/^/respond: /' "$tmp/respond.log" >&2
		tail -n 20 "/var/log/libvirt/qemu/$name.log" 2>/dev/null | sed 's/^/qemu: /' >&2
	fi
	[ "$fails" -gt 0 ] && [ -s "$tmp/console-net" ] && tail -n 20 "$tmp/console-net" | sed 's/^/net console: /' >&2
	rm -f "$rundir/$name.log" "$rundir/$name-net.log"
	if [ -n "$hook_saved" ]; then
		if [ "$hook_saved" = none ]; then rm -f "$hook"; else cp -p "$tmp/hook.saved" "$hook"; fi
	fi
	[ -n "$started_libvirtd" ] && stop_pid "$started_libvirtd"
	[ -n "$started_virtlogd" ] && stop_pid "$started_virtlogd"
	rm -rf "$tmp"
}
trap cleanup EXIT

# ---- libvirtd with the hook ----
want=$(printf '#!/bin/sh\n# viod'"'"'s libvirt hook, from the build tree (tests/libvirt/domain.sh)\nexec %s --viod %s hook "$@"\n' "$vl" "$viod")
if [ ! -f "$hook" ] || [ "$(cat "$hook")" != "$want" ]; then
	if [ -f "$hook" ]; then cp -p "$hook" "$tmp/hook.saved"; hook_saved=yes; else hook_saved=none; fi
	mkdir -p "$(dirname "$hook")"
	printf '%s\n' "$want" >"$hook"
	chmod 0755 "$hook"
	p=$(libvirtd_pid) && { echo "# restarting libvirtd ($p) so that it sees the hook"; stop_pid "$p"; }
fi
if ! virtlogd_pid >/dev/null; then
	virtlogd -d
	for _ in $(seq 100); do virtlogd_pid >/dev/null && break; sleep 0.1; done
	started_virtlogd=$(virtlogd_pid)
fi
if ! libvirtd_pid >/dev/null; then
	libvirtd -d
	for _ in $(seq 100); do virsh version >/dev/null 2>&1 && break; sleep 0.1; done
	started_libvirtd=$(libvirtd_pid)
fi
check "libvirtd answers" eval 'virsh version >/dev/null 2>&1'

# ---- the domain ----
cp "$qemu" "$tmp/qemu"
cp "$guest/vmlinuz" "$tmp/vmlinuz"
# The guest's script as /test.sh, a newc cpio after the initrd (at a
# 4-byte boundary), as tools/guest/run-guest.sh does.
cp "$guest/initrd.img" "$tmp/initrd"
size=$(stat -c %s "$tmp/initrd")
pad=$(((4 - size % 4) % 4))
[ "$pad" -eq 0 ] || head -c "$pad" /dev/zero >>"$tmp/initrd"
mkdir "$tmp/s"
cp "$here/domain-guest.sh" "$tmp/s/test.sh"
chmod 0755 "$tmp/s/test.sh"
(cd "$tmp/s" && printf 'test.sh\n' | cpio -o -H newc -R 0:0 --quiet) >>"$tmp/initrd"
truncate -s 64M "$tmp/disk.img"
mac=52:54:00:77:00:02
net=(--net "n0,switch=lan,mac=$mac" --net-port p0,switch=lan,mac=02:00:00:00:00:01)
devs=rng,blk,net
# The patched QEMU may lack the vhost-user netdev (older recipes build it
# without): then a second domain on the distribution's QEMU, which has it,
# checks net alone.
stock=/usr/bin/qemu-system-x86_64
net_qemu=""
if ! has_vhost_user_net "$qemu"; then
	net=() devs=rng,blk
	has_vhost_user_net "$stock" && net_qemu=$stock
	if [ -n "$net_qemu" ]; then
		echo "# $qemu has no vhost-user netdev: net in a second domain on $net_qemu"
	else
		echo "# neither $qemu nor $stock has the vhost-user netdev: net not checked"
	fi
fi
cat >"$tmp/base.xml" <<XML
<domain type='qemu'>
  <name>$name</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <serial type='file'><source path='$tmp/console'/><target port='0'/></serial>
  </devices>
</domain>
XML
# The main domain is defined plain, and viod-libvirt attach adds the
# devices through the libvirt API (the net domain below uses xml).
check "virsh define (a plain domain)" eval 'virsh define "$tmp/base.xml" >&2' && defined=1
check "viod-libvirt attach: rng, balloon, blk${net[*]:+, net}" \
	eval '"$vl" -c "$uri" attach "$name" --emulator "$tmp/qemu" \
	--kernel "$tmp/vmlinuz" --initrd "$tmp/initrd" \
	--cmdline "console=ttyS0 panic=-1 quiet viod.devs=$devs viod.ip=10.77.0.2/24 viod.peer=10.77.0.1 viod.mac=$mac" \
	--rng rng0 --balloon b0 --blk d0,path=$tmp/disk.img "${net[@]}"'
out=$("$vl" -c "$uri" show "$name" 2>&1)
check "viod-libvirt show lists the devices" [ "$(grep -c ',socket=' <<<"$out")" -eq $((3 + ${#net[@]} / 2)) ]
if ! virsh start "$name" >&2; then
	not_ok "virsh start"
	echo "Bail out! the domain did not start"
	exit 1
fi
ok "virsh start (the hook waited for viod's sockets)"
sup=$(cat "$ddir/supervisor.pid" 2>/dev/null)
check "the supervisor runs (pid ${sup:-none})" kill -0 "${sup:-0}"
vpid=$(pgrep -P "${sup:-0}" -x viod)
check "viod runs under it (pid ${vpid:-none})" [ -n "$vpid" ]
perm=$(stat -c '%a %U %G' "$ddir")
grp=$(sed -n 's/^[[:space:]]*group[[:space:]]*=[[:space:]]*"\(.*\)".*/\1/p' /etc/libvirt/qemu.conf 2>/dev/null | tail -n 1)
check "socket directory is root's, QEMU's group, no access for others ($perm)" \
	[ "$perm" = "2750 root ${grp:-libvirt-qemu}" ]
if [ -n "${net[*]}" ]; then
	"$vg" --socket "$ddir/p0.sock" net respond --ip 10.77.0.1 --mac 02:00:00:00:00:01 \
		>"$tmp/respond.log" 2>&1 &
	resp_pid=$!
fi

# ---- the guest's checks ----
# The console file has the serial port's CRLF line ends.
console() { tr -d '\r' <"$tmp/${cfile:-console}" 2>/dev/null; }
# alive PID: the process exists and is no zombie (the supervisor is
# reparented to init, which may reap it late).
alive() { local st; st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null); [ -n "$st" ] && [ "$st" != Z ]; }
wait_console() { # LINE SECONDS: a console line equal to LINE
	local t0=$SECONDS
	while ((SECONDS - t0 < $2)); do
		console | grep -q "^$1\$" && return 0
		virsh domstate "${dom:-$name}" 2>/dev/null | grep -q running || break
		sleep 0.5
	done
	console | grep -q "^$1\$"
}
if wait_console GUEST-READY 240; then
	ok "the guest ran its checks"
else
	not_ok "the guest ran its checks (no GUEST-READY)"
fi
while IFS= read -r line; do
	case $line in
	"ok "*) ok "guest: ${line#ok [0-9]* - }" ;;
	"not ok "*) not_ok "guest: ${line#not ok [0-9]* - }" ;;
	"# "*) echo "$line" ;;
	esac
done < <(console | sed -n '/^GUEST-READY$/q; /^ok \|^not ok \|^# /p')
gsum=$(console | sed -n 's/^SHA256 blk \([0-9a-f]*\)$/\1/p')
hsum=$(head -c 4194304 "$tmp/disk.img" | sha256sum | cut -d ' ' -f 1)
check "blk: the guest's data is in the image" [ -n "$gsum" -a "$gsum" = "$hsum" ]
if [ -n "$resp_pid" ]; then
	kill "$resp_pid" 2>/dev/null
	wait "$resp_pid" 2>/dev/null
	resp_pid=""
	echo "# vioguest net respond: $(tail -n 1 "$tmp/respond.log")"
fi

# ---- the balloon, through the domain's metadata ----
if "$bctl" -c "$uri" -d "$name" set b0 128M --wait --timeout 120 >&2; then
	ok "balloonctl -c $uri -d $name set b0 128M --wait"
else
	not_ok "balloonctl -c $uri -d $name set b0 128M --wait"
fi
out=$("$bctl" -c "$uri" -d "$name" --json get b0 2>&1)
check "the balloon holds 32768 pages" grep -q '"actual_pages":32768' <<<"$out"
out=$("$bctl" -c "$uri" list 2>&1)
check "balloonctl list shows the domain's balloon" grep -q "^$name .* b0 *32768 " <<<"$out"
if "$bctl" -c "$uri" -d "$name" set b0 0 --wait --timeout 120 >&2; then
	ok "deflated to 0 with --wait"
else
	not_ok "deflate to 0 with --wait"
fi

# ---- viod killed: the supervisor starts it again, QEMU reconnects ----
rng_ok() { console | grep -c '^RNG-OK'; }
kill -KILL "$vpid"
new=""
for _ in $(seq 100); do
	new=$(pgrep -P "$sup" -x viod) && [ "$new" != "$vpid" ] && break
	new=""
	sleep 0.1
done
check "the supervisor started viod again (pid ${new:-none})" [ -n "$new" ]
# A read the dead viod had may take a while to come back: the deadline
# below covers it.
before=$(rng_ok)
for _ in $(seq 60); do [ "$(rng_ok)" -ge $((before + 3)) ] && break; sleep 1; done
check "the guest's rng works after the restart ($((before)) -> $(rng_ok) reads)" \
	[ "$(rng_ok)" -ge $((before + 3)) ]
check "the domain still runs" eval 'virsh domstate "$name" | grep -q running'
# The new viod's balloon starts from its own state: QEMU's generic
# device reconnects and the guest answers the new target.
if "$bctl" -c "$uri" -d "$name" set b0 64M --wait --timeout 120 >&2 &&
	"$bctl" -c "$uri" -d "$name" set b0 0 --wait --timeout 120 >&2; then
	ok "the balloon inflates and deflates after the restart"
else
	not_ok "the balloon inflates and deflates after the restart"
fi

# ---- virsh destroy: the hook stops viod and cleans up ----
check "virsh destroy" eval 'virsh destroy "$name" >&2'
for _ in $(seq 100); do [ -d "$ddir" ] || break; sleep 0.1; done
check "the supervisor is gone" eval '! alive "$sup"'
check "viod is gone" eval '! alive "$new"'
check "the socket directory is gone" [ ! -e "$ddir" ]
check "virsh undefine" eval 'virsh undefine "$name" >&2' && defined=""

# ---- net in a domain of its own, on the distribution's QEMU ----
# net_domain: boots NAME-net with a viod net device on switch lan and a
# port of it for vioguest net respond; the guest pings through the switch.
net_domain() {
	local n2=$name-net d2=$rundir/$name-net dom=$name-net cfile=console-net t
	sed "s|<name>$name</name>|<name>$n2</name>|; s|$tmp/console|$tmp/console-net|" \
		"$tmp/base.xml" >"$tmp/base-net.xml"
	t=$("$vl" xml "$n2" --base "$tmp/base-net.xml" --emulator "$net_qemu" \
		--kernel "$tmp/vmlinuz" --initrd "$tmp/initrd" \
		--cmdline "console=ttyS0 panic=-1 quiet viod.devs=net viod.ip=10.77.0.2/24 viod.peer=10.77.0.1 viod.mac=$mac" \
		--net "n0,switch=lan,mac=$mac" --net-port p0,switch=lan,mac=02:00:00:00:00:01) ||
		{ not_ok "net domain: viod-libvirt xml"; return; }
	printf '%s\n' "$t" >"$tmp/domain-net.xml"
	virsh define "$tmp/domain-net.xml" >&2 && defined_net=1
	if ! virsh start "$n2" >&2; then
		not_ok "net domain: virsh start"
		return
	fi
	ok "net domain: virsh start"
	"$vg" --socket "$d2/p0.sock" net respond --ip 10.77.0.1 --mac 02:00:00:00:00:01 \
		>"$tmp/respond.log" 2>&1 &
	resp_pid=$!
	if wait_console GUEST-READY 240; then
		ok "net domain: the guest ran its checks"
	else
		not_ok "net domain: the guest ran its checks (no GUEST-READY)"
	fi
	while IFS= read -r line; do
		case $line in
		"ok "*) ok "net domain: guest: ${line#ok [0-9]* - }" ;;
		"not ok "*) not_ok "net domain: guest: ${line#not ok [0-9]* - }" ;;
		"# "*) echo "$line" ;;
		esac
	done < <(console | sed -n '/^GUEST-READY$/q; /^ok \|^not ok \|^# /p')
	kill "$resp_pid" 2>/dev/null
	wait "$resp_pid" 2>/dev/null
	resp_pid=""
	t=$(tail -n 1 "$tmp/respond.log")
	echo "# vioguest net respond: $t"
	check "net domain: vioguest answered ARP and ICMP ($t)" \
		eval '[[ $t =~ arp=[1-9].*icmp=[1-9] ]]'
	check "net domain: virsh destroy" eval 'virsh destroy "$n2" >&2'
	for _ in $(seq 100); do [ -d "$d2" ] || break; sleep 0.1; done
	check "net domain: the socket directory is gone" [ ! -e "$d2" ]
	virsh undefine "$n2" >&2 && defined_net=""
}
[ -n "$net_qemu" ] && net_domain
tap_end
