# shellcheck shell=bash disable=SC2154 # the caller sets top, here, ...
# Host-side helpers of the net guest tests (net-switch.sh, net-tap.sh),
# sourced by bash. The caller sets: top, here, qemu, guest_timeout, tmp,
# vstore, dir (the guest image), and calls net_lib_cleanup from its EXIT
# trap.
#
# A guest runs in the background (start_guest) with its console in
# $tmp/NAME.console; the host follows it by polling that file for the
# marker lines net-guest.sh prints (wait_line) and answers on the guest's
# host channel (say). Every wait has a deadline; none is a fixed sleep.

n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

guests=() viod_pid=""
declare -A guest_pid guest_status

# start_guest NAME SOCK MAC APPEND: boots a guest with one virtio-net-pci
# on the vhost-user socket SOCK, MAC as its address, running net-guest.sh
# with APPEND (viod.* words) on the kernel command line. With queues=N
# (N > 1), the device has N queue pairs and the guest N CPUs.
start_guest() {
	local name=$1 sock=$2 mac=$3 append=$4 q=${queues:-1}
	local netdev=vhost-user,id=n0,chardev=c0 device=virtio-net-pci,netdev=n0,mac=$mac
	if [ "$q" -gt 1 ]; then
		netdev+=,queues=$q
		device+=,mq=on,vectors=$((2 * q + 2))
	fi
	# Its own session, so that cleanup can end it with its QEMU
	# (kill_session; setsid execs in place: a background job is no group
	# leader, so the session's id is the job's pid).
	# shellcheck disable=SC2054 # commas are QEMU option syntax
	setsid "$top/tools/guest/run-guest.sh" --kernel "$dir/vmlinuz" --initrd "$dir/initrd.img" \
		--qemu "$qemu" --timeout "$guest_timeout" --memory 256 --smp "$q" \
		--script "$here/net-guest.sh" --host-channel "$tmp/host-$name" \
		--append "console=ttyS0 panic=-1 quiet viod.mac=$mac $append" -- \
		-chardev "socket,id=c0,path=$sock" -netdev "$netdev" -device "$device" \
		>"$tmp/$name.console" 2>"$tmp/$name.err" </dev/null &
	guest_pid[$name]=$!
	guest_status[$name]=""
	guests+=("$name")
}

# guest_running NAME: its run-guest.sh has not exited yet.
guest_running() { [ -z "${guest_status[$1]}" ] && kill -0 "${guest_pid[$1]}" 2>/dev/null; }

# wait_line NAME LINE: polls NAME's console for a line that ends with
# LINE (a kernel message may come first) until it appears (0), the guest
# ends (1) or the guest's timeout passes (1). Says how long it waited on
# failure.
wait_line() {
	local name=$1 line=$2 t0=$SECONDS
	while ((SECONDS - t0 < guest_timeout)); do
		grep -q -- "$line\$" "$tmp/$name.console" 2>/dev/null && return 0
		guest_running "$name" || break
		sleep 0.2
	done
	grep -q -- "$line\$" "$tmp/$name.console" 2>/dev/null && return 0
	echo "# $name: no '$line' after $((SECONDS - t0)) s" \
		"($(guest_running "$name" && echo running || echo ended))"
	return 1
}

# say NAME WORD: WORD on NAME's host channel (never blocks: the FIFO is
# open read-write in QEMU).
say() { echo "$2" 1<>"$tmp/host-$1.in"; }

# finish_guest NAME: waits for NAME's run-guest.sh (bounded by its own
# timeout); its TAP lines become ours, prefixed with NAME; one check for
# the boot as a whole.
finish_guest() {
	local name=$1 line st
	wait "${guest_pid[$name]}"
	st=$?
	guest_status[$name]=$st
	while IFS= read -r line; do
		case $line in
		"ok "*) ok "$name: guest: ${line#ok [0-9]* - }" ;;
		"not ok "*) not_ok "$name: guest: ${line#not ok [0-9]* - }" ;;
		"# "*) echo "# $name: ${line#\# }" ;;
		esac
	done < <(sed -n '/^ok \|^not ok \|^# /p' "$tmp/$name.console")
	check "$name: guest passed and powered off (run-guest status $st)" [ "$st" -eq 0 ]
}

# sum_line NAME WHAT: the SUM of NAME's "SHA256 WHAT SUM" line, or empty.
sum_line() { sed -n "s/^SHA256 $2 \\([0-9a-f]\\{64\\}\\)\$/\\1/p" "$tmp/$1.console" | tail -n 1; }

# key CONTROL PATH: viod's store key PATH, or -1.
key() { "$vstore" --socket "$1" read "$2" 2>/dev/null || echo -1; }
# wait_for COMMAND...: polls every 0.1 s for 10 s at least; the last status.
wait_for() {
	for _ in $(seq 100); do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}
key_gt() { [ "$(key "$1" "$2")" -gt "$3" ]; } # CONTROL KEY VALUE

# check_counters CONTROL DEV QUEUES: DEV's counters in viod's store: rx
# and tx packets, no bad headers (every drop reason said as a comment),
# the packets of each queue said, and with QUEUES > 1, packets on every
# transmit queue (the guest sends from each CPU).
check_counters() {
	local ctl=$1 d=$2 queues=$3 k q drops="" per="" idle=""
	# The store publishes counters within 50 ms of a change.
	for k in rx/packets tx/packets; do
		wait_for key_gt "$ctl" "/devices/$d/$k" 0
		check "$d: $k > 0 ($(key "$ctl" "/devices/$d/$k"))" key_gt "$ctl" "/devices/$d/$k" 0
	done
	for k in bad-header runt oversize no-buffers dst-full link-down gso backend; do
		drops+=" $k=$(key "$ctl" "/devices/$d/drops/$k")"
	done
	echo "# $d: drops:$drops"
	check "$d: drops/bad-header = 0" [ "$(key "$ctl" "/devices/$d/drops/bad-header")" = 0 ]
	for ((q = 0; q < 2 * queues; q++)); do
		k=$(key "$ctl" "/devices/$d/queues/$q/packets")
		per+=" $q:$k"
		[ $((q % 2)) = 0 ] || [ "$k" -gt 0 ] || idle+=" $q"
	done
	echo "# $d: packets per queue:$per"
	if [ "$queues" -gt 1 ]; then
		check "$d: every transmit queue carried packets${idle:+ (not:$idle)}" [ -z "$idle" ]
	fi
}

# wait_viod_sockets PATH...: viod's sockets exist (5 s), or bail out.
wait_viod_sockets() {
	local s missing
	for _ in $(seq 100); do
		missing=""
		for s in "$@"; do [ -S "$s" ] || missing+=" $s"; done
		[ -z "$missing" ] && return 0
		kill -0 "$viod_pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "Bail out! viod did not start (no$missing)"
	sed 's/^/viod: /' "$tmp/viod.log" >&2
	exit 1
}

# stop_viod: checks that viod is still running, then that it exits 0 on
# SIGTERM and logged no sanitizer report.
stop_viod() {
	local st state
	state=$(awk '{ print $3 }' "/proc/$viod_pid/stat" 2>/dev/null)
	check "viod still running at the end (state ${state:-gone})" [ -n "$state" -a "$state" != Z ]
	kill -TERM "$viod_pid"
	wait "$viod_pid"
	st=$?
	viod_pid=""
	check "viod exits 0 on SIGTERM (status $st)" [ "$st" -eq 0 ]
	# A sanitizer build reports undefined behaviour without failing.
	check "viod's log has no sanitizer report" \
		eval "! grep -qE 'runtime error|Sanitizer' '$tmp/viod.log'"
}

# The logs that explain a failure: each guest's console tail and run-guest
# errors, and viod's log.
dump_logs() {
	local name
	for name in "${guests[@]}"; do
		sed "s/^/$name run-guest: /" "$tmp/$name.err" >&2
		tail -n 60 "$tmp/$name.console" | sed "s/^/$name console: /" >&2
	done
	[ -s "$tmp/viod.log" ] && sed 's/^/viod: /' "$tmp/viod.log" >&2
	return 0
}

# kill_session SID: SIGTERM to every process of session SID, a guest's
# run-guest.sh and what it started (its timeout(1) runs QEMU in a process
# group of its own, but in the same session, and passes the signal on).
kill_session() {
	local pids
	pids=$(ps -e -o pid=,sid= | awk -v s="$1" '$2 == s { print $1 }')
	# shellcheck disable=SC2086 # one pid per word
	[ -z "$pids" ] || kill -TERM $pids 2>/dev/null
}

net_lib_cleanup() {
	local name
	for name in "${guests[@]}"; do
		[ -n "${guest_status[$name]}" ] || kill_session "${guest_pid[$name]}"
	done
	for name in "${guests[@]}"; do
		[ -n "${guest_status[$name]}" ] || wait "${guest_pid[$name]}" 2>/dev/null
	done
	if [ -n "$viod_pid" ]; then
		kill -KILL "$viod_pid" 2>/dev/null
		wait "$viod_pid" 2>/dev/null
	fi
	[ "$fails" -eq 0 ] || dump_logs
}
