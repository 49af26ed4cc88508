#!/bin/sh
# In-guest half of net-switch.sh and net-tap.sh, run as /test.sh (busybox
# sh). The kernel command line says what to do:
#   viod.role=send|recv|tap  viod.ip=ADDR/PREFIX  viod.peer=ADDR
#   viod.mac=MAC (what eth0 should have)  viod.bytes=N (file size)
# With N CPUs (N > 1), ping runs on CPU 0 and nc on CPU N-1.
# Every step that needs the other side waits for a word from the host on
# the host channel (/dev/ttyS1), never for a fixed time:
#   all:  eth0 is virtio_net with the expected MAC; address it, bring it
#         up; say NET-READY; on PING, ping the peer 3 times; say PING-DONE.
#   send: (a file of viod.bytes random bytes, made before NET-READY, its
#         sum printed as "SHA256 sent SUM") on SEND, send it to the peer's
#         port 5000 with nc.
#   recv: after PING-DONE, listen on port 5000; once the socket listens,
#         say LISTENING; receive the file; print "SHA256 received SUM".
#   tap:  the peer is the host's end (a tap in a network namespace): after
#         PING-DONE say WAIT-HOST and wait for DONE (the host pings us);
#         then (if viod.bytes > 0) send a file as "send" does on SEND and
#         receive one as "recv" does, its sender being the host.
# Prints TAP body lines (the host renumbers them) and exits 0 only if
# every check passed.
set -u
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
# check DESC CMD...: one TAP line for CMD's success; its output, if it
# failed, as comments.
check() {
	d=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then
		ok "$d"
	else
		not_ok "$d"
		sed 's/^/# /' /tmp/check.out
	fi
}
arg() { sed -n "s/.*viod\\.$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }
role=$(arg role)
ip=$(arg ip)
peer=$(arg peer)
mac=$(arg mac)
bytes=$(arg bytes)
: "${bytes:=0}"
port=5000
# With several CPUs (and queue pairs), ping runs on the first CPU and nc
# on the last, so that both leave by different transmit queues (Linux
# maps CPU i to queue pair i).
ncpu=$(nproc)
first="" last=""
if [ "$ncpu" -gt 1 ]; then
	first="taskset -c 0" last="taskset -c $((ncpu - 1))"
fi

# Opened before the first line the host answers: opening the port drops
# earlier input.
if ! { exec 3<>/dev/ttyS1 && stty raw -echo <&3; }; then
	not_ok "$role: host channel /dev/ttyS1 opens"
fi
# wait_host WORD: reads the host's next word; a TAP line if it is not WORD.
wait_host() {
	word=""
	# shellcheck disable=SC3045 # busybox sh has read -t
	read -t 240 -r word <&3
	[ "$word" = "$1" ] || not_ok "$role: the host said $1 (got '$word')"
	[ "$word" = "$1" ]
}
sum_of() { sha256sum "$1" | cut -d ' ' -f 1; }

# send: the file to the peer; nc ends when it has sent it all and the
# receiver closed.
send_file() {
	# shellcheck disable=SC2086 # $last is a command prefix or nothing
	check "$role: sent $bytes bytes to $peer:$port (nc)" $last timeout 100 nc -w 30 "$peer" "$port" </tmp/data
}
# receive: listens until the socket is up, says LISTENING, receives.
# nc's stdin must not reach EOF (it would half-close and the sender would
# stop): a FIFO opened read-write never does.
receive_file() {
	mkfifo /tmp/nc.in
	# shellcheck disable=SC2086 # $last is a command prefix or nothing
	$last timeout 100 nc -l -p "$port" <>/tmp/nc.in >/tmp/received 2>/tmp/nc.err &
	ncpid=$!
	k=0
	while ! netstat -ltn 2>/dev/null | grep -q ":$port "; do
		k=$((k + 1))
		if [ "$k" -gt 300 ] || ! kill -0 "$ncpid" 2>/dev/null; then
			not_ok "$role: nc listens on port $port"
			break
		fi
		usleep 100000
	done
	echo LISTENING
	if wait "$ncpid"; then
		ok "$role: nc received a connection and its end"
	else
		not_ok "$role: nc received a connection and its end"
		sed 's/^/# /' /tmp/nc.err
	fi
	got=$(stat -c %s /tmp/received)
	check "$role: received $got bytes, want $bytes" [ "$got" -eq "$bytes" ]
	echo "SHA256 received $(sum_of /tmp/received)"
}

check "$role: eth0 exists" [ -e /sys/class/net/eth0 ]
drv=$(basename "$(readlink /sys/class/net/eth0/device/driver 2>/dev/null)")
check "$role: eth0's driver is virtio_net ($drv)" [ "$drv" = virtio_net ]
have=$(cat /sys/class/net/eth0/address 2>/dev/null)
check "$role: eth0's MAC is $mac ($have)" [ "$have" = "$mac" ]
echo "# features: $(cat /sys/class/net/eth0/device/features 2>/dev/null)"
check "$role: lo up" ip link set lo up
check "$role: eth0 gets $ip" ip addr add "$ip" dev eth0
check "$role: eth0 up" ip link set eth0 up
if [ "$bytes" -gt 0 ] && [ "$role" != recv ]; then
	check "$role: $bytes random bytes in /tmp/data" \
		sh -c "head -c $bytes /dev/urandom >/tmp/data"
	echo "SHA256 sent $(sum_of /tmp/data)"
fi
echo NET-READY
if wait_host PING; then
	# shellcheck disable=SC2086 # $first is a command prefix or nothing
	check "$role: ping $peer (3 replies)" $first ping -c 3 -w 60 "$peer"
fi
echo PING-DONE
case $role in
send)
	wait_host SEND && send_file
	;;
recv)
	receive_file
	;;
tap)
	echo WAIT-HOST
	wait_host DONE
	if [ "$bytes" -gt 0 ]; then
		wait_host SEND && send_file
		receive_file
	fi
	;;
*)
	not_ok "viod.role=send|recv|tap on the kernel command line (got '$role')"
	;;
esac
st=/sys/class/net/eth0/statistics
echo "# eth0: rx $(cat $st/rx_packets) packets $(cat $st/rx_bytes) bytes $(cat $st/rx_dropped) dropped" \
	"$(cat $st/rx_errors) errors; tx $(cat $st/tx_packets) packets $(cat $st/tx_bytes) bytes" \
	"$(cat $st/tx_dropped) dropped $(cat $st/tx_errors) errors"
# The kernel's checksum and error counters (a frame that arrived but was
# thrown away shows here, not on eth0).
awk '$1 == "Ip:" || $1 == "Icmp:" || $1 == "Tcp:" || $1 == "Udp:" {
	if (!($1 in names)) { names[$1] = $0; next }
	split(names[$1], k); split($0, v); line = ""
	for (i = 2; i in k; i++)
		if (k[i] ~ /Err|Csum|Discard|Retrans/ && v[i] != 0) line = line " " k[i] "=" v[i]
	print "# " $1 (line == "" ? " no errors" : line)
}' /proc/net/snmp
# TCP's view of loss and reordering (TcpExt), non-zero counters only.
awk '$1 == "TcpExt:" {
	if (!seen++) { split($0, k); next }
	split($0, v); line = ""
	for (i = 2; i in k; i++)
		if (k[i] ~ /OFO|Reorder|DSACK|Lost|Spurious|Timeout|Retrans|Drop/ && v[i] != 0)
			line = line " " k[i] "=" v[i]
	print "# TcpExt:" (line == "" ? " no loss or reordering" : line)
}' /proc/net/netstat
[ "$fails" -eq 0 ]
