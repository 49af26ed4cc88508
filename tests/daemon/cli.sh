#!/usr/bin/env bash
# viod's command line: --help/--version, one-line errors with exit status 2
# for bad options and device specs, exit 1 when a socket cannot be served,
# stale sockets replaced, live ones refused, clean exit on SIGINT/SIGTERM.
# Usage: cli.sh VIOD_BINARY. TAP on stdout.
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 VIOD" >&2; exit 2; }
viod=$1
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
tmp=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null; rm -rf "$tmp"' EXIT

# expect STATUS DESC ARGS...: viod ARGS exits STATUS; for 2, one stderr line.
expect() {
	local want=$1 desc=$2 st lines
	shift 2
	timeout 5 "$viod" "$@" >"$tmp/out" 2>"$tmp/err"
	st=$?
	lines=$(wc -l <"$tmp/err")
	if [ "$st" -eq "$want" ] && { [ "$want" -ne 2 ] || [ "$lines" -eq 1 ]; }; then
		ok "$desc"
	else
		not_ok "$desc (status $st, $lines stderr lines)"
		sed 's/^/# /' "$tmp/err"
	fi
}

expect 0 "--version" --version
grep -q '^viod [0-9]' "$tmp/out" && ok "--version prints the version" || not_ok "--version output"
expect 0 "--help" --help
grep -q -- '--device' "$tmp/out" && ok "--help lists --device" || not_ok "--help output"
expect 2 "unknown option" --frobnicate
expect 2 "no --device" 
expect 2 "stray argument" --device "rng,id=a,socket=$tmp/a.sock" extra
expect 2 "unknown device type" --device "toaster,id=a,socket=$tmp/a.sock"
expect 2 "device without socket" --device "rng,id=a"
expect 2 "device without id" --device "rng,socket=$tmp/a.sock"
expect 2 "option without value" --device "rng,id=a,socket=$tmp/a.sock,max-bytes"
expect 2 "unknown device option" --device "rng,id=a,socket=$tmp/a.sock,colour=blue"
expect 2 "bad number" --device "rng,id=a,socket=$tmp/a.sock,max-bytes=lots"
expect 2 "zero period" --device "rng,id=a,socket=$tmp/a.sock,period=0"
expect 2 "zero workers" --device "rng,id=a,socket=$tmp/a.sock,workers=0"
expect 2 "too many workers" --device "rng,id=a,socket=$tmp/a.sock,workers=65"
expect 2 "bad mem-max" --device "rng,id=a,socket=$tmp/a.sock,mem-max=lots"
expect 2 "mem-max overflowing" --device "rng,id=a,socket=$tmp/a.sock,mem-max=99999999999T"
expect 2 "option given twice" --device "rng,id=a,socket=$tmp/a.sock,id=b"
expect 2 "bad id" --device "rng,id=-x,socket=$tmp/a.sock"
expect 2 "duplicate id" --device "rng,id=a,socket=$tmp/a.sock" --device "rng,id=a,socket=$tmp/b.sock"
expect 2 "duplicate socket" --device "rng,id=a,socket=$tmp/a.sock" --device "rng,id=b,socket=$tmp/a.sock"
expect 1 "socket in a missing directory" --device "rng,id=a,socket=$tmp/nodir/a.sock"
touch "$tmp/file"
expect 1 "socket path is a regular file" --device "rng,id=a,socket=$tmp/file"
[ -f "$tmp/file" ] && ok "the regular file is left alone" || not_ok "regular file removed"

# listening PATH: something accepts connections on the UNIX socket PATH.
listening() {
	python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])" "$1" 2>/dev/null
}

# A stale socket (nobody listening) is replaced: viod listens there, within
# 10 s, and keeps running.
python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])" "$tmp/stale.sock"
"$viod" --control "$tmp/control" --device "rng,id=s,socket=$tmp/stale.sock" 2>"$tmp/serr" &
pid=$!
for _ in $(seq 100); do
	listening "$tmp/stale.sock" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if listening "$tmp/stale.sock" && kill -0 "$pid" 2>/dev/null; then
	ok "stale socket replaced"
else
	not_ok "stale socket replaced"
	sed 's/^/# /' "$tmp/serr"
fi

# A live one is refused, and the first daemon is unharmed.
expect 1 "socket served by another viod" --device "rng,id=t,socket=$tmp/stale.sock"
kill -0 "$pid" 2>/dev/null && ok "first viod still running" || not_ok "first viod still running"
kill -INT "$pid"
wait "$pid"
st=$?
[ "$st" -eq 0 ] && ok "SIGINT: exit 0" || not_ok "SIGINT: exit $st"
[ ! -e "$tmp/stale.sock" ] && ok "SIGINT: socket removed" || not_ok "SIGINT: socket left behind"
echo "1..$n"
[ "$fails" -eq 0 ]
