#!/usr/bin/env bash
# Guest test: a Linux guest's virtio_balloon on viod's balloon, through the
# generic vhost-user-test-device-pci (virtio-id 5; vhost-user-device-pci
# before QEMU 10.2, tools/qemu-generic-device.sh picks) of the patched QEMU. The host
# operator's tool, balloonctl, inflates the balloon to a target and back to
# zero, several times; the test checks the guest's own counters, the host
# memory QEMU's memfd really holds, viod's host-freed accounting, the
# guest's statistics, and that the cycles end where they started.
# Usage: balloon.sh VIOD BALLOONCTL VIOD-STORE. TAP on stdout, logs on stderr.
# Environment: VIOD_PATCHED_QEMU (required: stock QEMU refuses the device);
# VIOD_BALLOON_NUM_VQS, the generic device's num_vqs (default 4: inflate,
# deflate, stats, reporting; 5 adds the spec's free-page-hint queue, which
# the guest leaves unused); VIOD_BALLOON_CYCLES (default 3).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
[ $# -eq 3 ] || { echo "usage: $0 VIOD BALLOONCTL VIOD-STORE" >&2; exit 2; }
viod=$1 bctl=$2 vstore=$3
qemu=${VIOD_PATCHED_QEMU:-}
nvqs=${VIOD_BALLOON_NUM_VQS:-4}
cycles=${VIOD_BALLOON_CYCLES:-3}
[[ $nvqs =~ ^[1-9][0-9]*$ ]] || { echo "VIOD_BALLOON_NUM_VQS: not a count: $nvqs" >&2; exit 2; }
[[ $cycles =~ ^[1-9][0-9]*$ ]] || { echo "VIOD_BALLOON_CYCLES: not a count: $cycles" >&2; exit 2; }
memory=512 # MiB of guest RAM, all of it in QEMU's memfd
page=4096
ram=$((memory << 20))
# 320 MiB: more than half the guest's RAM, so that the memfd bound below
# has teeth. The guest zeroes every page it allocates (Debian's kernel has
# init_on_alloc), so each balloon page is backed when the guest hands it
# over; a viod that punched nothing would leave QEMU's memfd holding at
# least the balloon's 320 MiB, above the 192 MiB (+ slack) allowed.
pages=81920
# Slack for what is in flight when the test looks, once viod's punching
# has settled. A balloon page is a hole from its punch until the guest
# deflates it (the guest does not touch it meanwhile), so the memfd can
# exceed guest RAM minus the balloon only by pages on the move: balloon
# compaction migrating a balloon page (the new page is zeroed, then
# inflated and punched, the old one deflated; one page at a time). The
# host-freed check below can miss a free-page-reporting punch that the
# memfd read raced, while the guest faulted pages in, a few at most. 1 MiB
# is 256 pages, far above those and far below the 320 MiB a missing punch
# would add.
slack=$((1 << 20))
if [ -z "$qemu" ] || [ ! -x "$qemu" ]; then
	echo "1..0 # SKIP VIOD_PATCHED_QEMU not set (tools/build-qemu.sh builds it)"
	exit 0
fi

n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

if ! generic=$("$top/tools/qemu-generic-device.sh" "$qemu"); then
	echo "Bail out! $qemu has no generic vhost-user device to create"
	exit 1
fi
echo "# generic device: $generic"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/viod-balloon.XXXXXX")
sock=$tmp/b0.sock ctl=$tmp/control
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	[ -s "$tmp/viod.log" ] && sed 's/^/viod: /' "$tmp/viod.log" >&2
	# QEMU's own messages are on the console too.
	[ "$fails" -gt 0 ] && [ -s "$tmp/console" ] && tail -n 40 "$tmp/console" | sed 's/^/console: /' >&2
	rm -rf "$tmp"
}
trap cleanup EXIT

key() { "$vstore" --socket "$ctl" read "/devices/b0/$1" 2>/dev/null || echo -1; }
# keys KEY...: the keys' values on one line, -1 for each if unreadable.
keys() {
	local k v out=""
	for k in "$@"; do
		v=$(key "$k")
		out+="${out:+ }$v"
	done
	echo "$out"
}
# settled KEY...: the keys' values (one line) once they have read the same
# ten times 0.1 s apart, i.e. for at least a second: twenty of the store's
# 50 ms refreshes, while a punch takes milliseconds. Status 1 if they
# still move after 600 reads (a minute at least).
settled() {
	local last="" now same=0
	for _ in $(seq 600); do
		now=$(keys "$@")
		if [ "$now" = "$last" ]; then
			same=$((same + 1))
			[ "$same" -ge 10 ] && { echo "$now"; return 0; }
		else
			same=0 last=$now
		fi
		sleep 0.1
	done
	echo "$last"
	return 1
}
# wait_for COMMAND...: polls COMMAND every 0.1 s until it succeeds, for
# 300 tries (30 s at least); the status of the last try.
wait_for() {
	for _ in $(seq 300); do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}
key_ge() { [ "$(key "$1")" -ge "$2" ]; } # KEY MIN
key_set() { [ "$(key "$1")" != -1 ]; }   # KEY: readable

dir=$("$top/tools/guest/build-guest.sh" | tail -n 1)
"$viod" --control "$ctl" --device "balloon,id=b0,socket=$sock,stats-interval=1" \
	>"$tmp/viod.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && [ -S "$ctl" ] && break; sleep 0.05; done
if [ ! -S "$sock" ] || [ ! -S "$ctl" ]; then
	echo "Bail out! viod did not create $sock and $ctl within 5 s"
	exit 1
fi

# Host bytes behind the guest RAM of our QEMU.
memfd_bytes() { "$top/tools/guest/qemu-memfd.sh" "path=$sock" || echo -1; }

# A shmem THP setting (global, or per size on newer kernels) that may back
# QEMU's memfd with large folios; nothing when there is none. A punch into
# a large folio that cannot be split frees nothing, which the memfd bound
# does not allow for.
shmem_thp() {
	local d=/sys/kernel/mm/transparent_hugepage f m g
	g=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$d/shmem_enabled" 2>/dev/null)
	for f in "$d/shmem_enabled" "$d"/hugepages-*/shmem_enabled; do
		[ -r "$f" ] || continue
		m=$(sed -n 's/.*\[\(.*\)\].*/\1/p' "$f")
		[ "$m" = inherit ] && m=$g
		case $m in never | deny | "") ;; *) echo "${f#"$d"/} is $m"; return ;; esac
	done
}
thp=$(shmem_thp)

# The checks after an inflate hold whatever pages the guest's allocator
# picks and whatever free page reporting punched before or meanwhile:
# - QEMU's memfd holds at most guest RAM minus the balloon, plus the slack:
#   every balloon page is a hole (viod punched it, or it never was backed);
# - host-freed grew by at least what the memfd lost, less the slack: only
#   viod's punches shrink QEMU's memfd (the guest's use only grows it),
#   and viod counts each punch as the memfd's allocation before it minus
#   after it, which is at least the memfd's loss over that time;
# - the balloon's share (host-freed minus host-freed-reported) grew by at
#   most the balloon's bytes: a page is punched once per inflate.
# Not checked: that the balloon's share is about the balloon's size. It
# is smaller by the guest's faults that race a punch (the guest zeroes the
# next pages while viod punches the last ones) and by balloon pages that
# were not backed (reported free and not touched since), both up to the
# guest and the scheduler.
within() { [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; } # V LO HI
kib() { printf '%+d KiB' $(($1 / 1024)); }             # BYTES, signed
plan() {
	local c v f0 r0 f1 r1 a0 a1 bal bound
	bound=$((ram - pages * page + slack))
	for c in $(seq "$cycles"); do
		v=$(settled host-freed host-freed-reported) ||
			not_ok "cycle $c: host-freed settles before the inflate (still moving: $v)"
		read -r f0 r0 <<<"$v"
		a0=$(memfd_bytes)
		if "$bctl" --socket "$ctl" set b0 "$pages" --wait --timeout 120 >&2; then
			ok "cycle $c: balloonctl set $pages --wait reached the target"
		else
			not_ok "cycle $c: balloonctl set $pages --wait"
		fi
		# With MUST_TELL_HOST viod acks an inflate before it punches.
		if v=$(settled host-freed host-freed-reported); then
			ok "cycle $c: host-freed settled after the inflate ($v)"
		else
			not_ok "cycle $c: host-freed settles after the inflate (still moving: $v)"
		fi
		a1=$(memfd_bytes)
		# Counted after the memfd read, in case that raced a reporting punch.
		v=$(settled host-freed host-freed-reported)
		read -r f1 r1 <<<"$v"
		echo "# cycle $c: memfd $((a0 >> 10)) -> $((a1 >> 10)) KiB;" \
			"host-freed $(kib $((f1 - f0))), of which reported $(kib $((r1 - r0)))"
		check "cycle $c: device holds $pages pages" [ "$(key inflated)" -eq "$pages" ]
		if [ -n "$thp" ]; then
			skip "cycle $c: QEMU's memfd holds at most guest RAM minus the balloon" \
				"shmem THP may back the memfd ($thp)"
		else
			check "cycle $c: QEMU's memfd holds at most guest RAM minus the balloon ($((a1 >> 10)) KiB <= $((bound >> 10)) KiB)" \
				within "$a1" 0 "$bound"
		fi
		check "cycle $c: host-freed grew by at least the memfd's loss (host-freed $(kib $((f1 - f0))), memfd $(kib $((a1 - a0))))" \
			within $((a0 - a1)) $((-ram)) $((f1 - f0 + slack))
		bal=$(((f1 - r1) - (f0 - r0)))
		check "cycle $c: viod credits the balloon with at most its size ($((bal >> 10)) KiB)" \
			within "$bal" 0 $((pages * page))
		if "$bctl" --socket "$ctl" set b0 0 --wait --timeout 120 >&2; then
			ok "cycle $c: deflated to zero"
		else
			not_ok "cycle $c: deflate to zero"
		fi
		check "cycle $c: device holds no pages" [ "$(key inflated)" -eq 0 ]
	done
}

planned=0 memtotal=0 inf=0 def=0 refilled=0
while IFS= read -r line; do
	printf '%s\n' "$line" >>"$tmp/console"
	case $line in
	"ok "* | "not ok "*)
		case $line in ok*) ok "guest: ${line#ok [0-9]* - }" ;; *) not_ok "guest: ${line#not ok [0-9]* - }" ;; esac ;;
	GUEST-MEMTOTAL*) memtotal=${line#GUEST-MEMTOTAL } ;;
	# "heap alloc:on" (init_on_alloc) is what gives the memfd bound teeth.
	GUEST-AUTOINIT*) echo "# guest's mem auto-init: ${line#GUEST-AUTOINIT }" ;;
	VIOD-BALLOON-READY*)
		# The guest's first statistics come with its driver's probe;
		# viod publishes them within 50 ms, so these waits end at once.
		wait_for key_ge stats/updates 1
		check "guest statistics arrived (updates=$(key stats/updates))" key_ge stats/updates 1
		check "stats: free-memory reported ($(key stats/free-memory))" key_set stats/free-memory
		check "guest memory known to viod ($(key guest-memory) bytes)" key_ge guest-memory 1
		plan
		planned=1
		echo PLAN-DONE 1<>"$tmp/host.in"
		;;
	GUEST-DONE*)
		inf=$(sed -n 's/.*inflate=\([0-9]*\).*/\1/p' <<<"$line")
		def=$(sed -n 's/.*deflate=\([0-9]*\).*/\1/p' <<<"$line")
		;;
	GUEST-REFILLED*) refilled=1 ;;
	esac
done < <("$top/tools/guest/run-guest.sh" --kernel "$dir/vmlinuz" --initrd "$dir/initrd.img" \
	--qemu "$qemu" --memory "$memory" --timeout 400 --script "$here/balloon-guest.sh" \
	--host-channel "$tmp/host" \
	--append "console=ttyS0 panic=-1 quiet viod.pages=$pages viod.cycles=$cycles" -- \
	-chardev "socket,id=c0,path=$sock" \
	-device "$generic,virtio-id=5,num_vqs=$nvqs,config_size=16,chardev=c0" 2>&2)

check "the host plan ran" [ "$planned" -eq 1 ]
check "guest saw $((pages * cycles)) pages inflated (balloon_inflate=$inf)" [ "$inf" -ge $((pages * cycles)) ]
check "guest saw them all deflated (balloon_deflate=$def)" [ "$def" -ge $((pages * cycles)) ]
check "guest could use the returned memory again" [ "$refilled" -eq 1 ]
check "guest reported its memory (MemTotal $memtotal kB)" [ "$memtotal" -gt 0 ]
check "cycles end where they started: actual 0" [ "$(key actual)" = 0 ]
check "no PFN errors" [ "$(key errors)" = 0 ]
check "viod still running" kill -0 "$pid"
kill -TERM "$pid"; wait "$pid"; st=$?; pid=""
check "viod exits 0" [ "$st" -eq 0 ]
echo "1..$n"
[ "$fails" -eq 0 ]
