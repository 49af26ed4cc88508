#!/usr/bin/env bash
# balloonctl against fake-viod (a control store with fake balloons whose
# `actual` follows `target` over about a second; slow0 never passes 1000
# pages): every command in text and --json, SIZE parsing, --guest-memory,
# --wait success, stall and timeout, the default socket, and bad arguments
# (exit status 2, one line on stderr).
# Usage: balloonctl.sh BALLOONCTL FAKE_VIOD. TAP on stdout.
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BALLOONCTL FAKE_VIOD" >&2; exit 2; }
bc=$1 fake=$2
n=0 fails=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
check() { # DESC COMMAND...: ok if COMMAND succeeds
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; sed 's/^/# /' "$tmp/out" "$tmp/err" 2>/dev/null; fi
}
tmp=$(mktemp -d)
fpid=
trap '[ -n "$fpid" ] && kill "$fpid" 2>/dev/null; rm -rf "$tmp"' EXIT

export VIOD_CONTROL=$tmp/control
"$fake" "$VIOD_CONTROL" >"$tmp/fake.out" 2>"$tmp/fake.err" &
fpid=$!
for _ in $(seq 100); do grep -q ready "$tmp/fake.out" 2>/dev/null && break; sleep 0.05; done
grep -q ready "$tmp/fake.out" || { echo "Bail out! fake-viod did not start"; exit 1; }

# run STATUS ARGS...: balloonctl ARGS must exit STATUS; output in $tmp/out, $tmp/err
run() {
	local want=$1
	shift
	timeout 30 "$bc" "$@" >"$tmp/out" 2>"$tmp/err"
	local st=$?
	[ "$st" -eq "$want" ] || { echo "# balloonctl $*: status $st, want $want"; return 1; }
}
# json EXPR: evaluates a Python expression on the JSON in the last line of $tmp/out as j
json() {
	python3 -c 'import json, sys; j = json.loads(open(sys.argv[1]).read().splitlines()[-1]); sys.exit(0 if eval(sys.argv[2]) else 1)' "$tmp/out" "$1"
}
target() { # the target balloon0 has now, in pages
	"$bc" --json get "${1:-balloon0}" | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_pages"])'
}
one_line_err() { [ "$(wc -l <"$tmp/err")" -eq 1 ]; }

# ---- status, get ----
check "status lists every device" run 0 status
check "  with type, state, target and actual" \
	grep -Eq '^balloon0 +balloon +connected +0 pages' "$tmp/out"
check "  and the rng" grep -Eq '^rng0 +rng +waiting +- +-' "$tmp/out"
check "status --json" run 0 status --json
check "  has all four devices, sizes for balloons only" \
	json 'len(j["devices"]) == 4 and j["devices"][0]["target_pages"] == 0 and "target_pages" not in j["devices"][2]'
check "get" run 0 get balloon0
check "  prints target and actual in pages and bytes" \
	grep -q 'balloon0: target 0 pages (0 bytes), actual 0 pages (0 bytes)' "$tmp/out"
check "get --json" run 0 get balloon0 --json
check "  with page size and guest memory" \
	json 'j["page_size"] == 4096 and j["guest_memory_bytes"] == 1 << 30 and j["actual_bytes"] == 0'

# ---- set: SIZE parsing ----
size_is() { # SIZE PAGES
	run 0 set balloon0 "$1" && [ "$(target)" = "$2" ] || { echo "# set $1: target $(target), want $2"; return 1; }
}
check "set 65536 (pages)" size_is 65536 65536
check "set 256M (bytes)" size_is 256M 65536
check "set 1.5M" size_is 1.5M 384
check "set 1K rounds up to a page" size_is 1K 1
check "set 4097B rounds up to 2 pages" size_is 4097B 2
check "set 8KiB" size_is 8KiB 2
check "set 1g (any case)" size_is 1g 262144
check "set 0" size_is 0 0
check "set prints the new target" grep -q 'balloon0: target set to 0 pages' "$tmp/out"
check "set --json" run 0 set balloon0 2M --json
check "  reports pages and bytes" json 'j["target_pages"] == 512 and j["target_bytes"] == 2 << 20'
check "--guest-memory 768M leaves the guest 768 MiB" \
	eval 'run 0 set balloon0 --guest-memory 768M && [ "$(target)" = 65536 ]'
check "--guest-memory 1G gives nothing back" \
	eval 'run 0 set balloon0 --guest-memory 1G && [ "$(target)" = 0 ]'
check "--guest-memory more than the guest has: exit 1" run 1 set balloon0 --guest-memory 2G
check "  with one line naming the guest's size" eval 'one_line_err && grep -q "more than the guest" "$tmp/err"'
check "--guest-memory with no front-end: exit 1" run 1 set nomem0 --guest-memory 512M
check "  saying why" grep -q 'not known yet' "$tmp/err"
check "a target the daemon refuses: exit 1" run 1 set balloon0 2G
check "  with the daemon's message" grep -q 'more than the guest' "$tmp/err"
check "set on an rng: exit 1" run 1 set rng0 10
check "get on a missing device: exit 1" run 1 get balloon7
check "  one line" eval 'one_line_err && grep -q "no device .balloon7." "$tmp/err"'

# ---- set --wait ----
check "set --wait reaches the target" run 0 set balloon0 131072 --wait
check "  plain progress lines when not a terminal" \
	eval 'grep -Eq "actual [0-9]+ of 131072 pages \([0-9]+%\)" "$tmp/out" && ! grep -q $'"'"'\r'"'"' "$tmp/out"'
check "  and a final line" grep -q 'actual reached the target, 131072 pages' "$tmp/out"
check "  actual is there" eval 'run 0 get balloon0 --json && json "j[\"actual_pages\"] == 131072"'
check "set --wait --json (deflate)" run 0 set balloon0 0 --wait --json
check "  ends with a result object" json 'j["result"] == "reached" and j["actual_pages"] == 0'
check "  after progress objects" \
	eval 'python3 -c "import json,sys; [json.loads(l) for l in open(sys.argv[1])]" "$tmp/out" && grep -q "\"event\":\"progress\"" "$tmp/out"'
check "set --wait when actual is already there" run 0 set balloon0 0 --wait
if ! command -v script >/dev/null; then
	ok "--wait on a terminal draws a bar # SKIP script(1) is not installed"
else check "--wait on a terminal draws a bar" \
	eval 'COLUMNS=50 script -qec "$bc set balloon0 1000 --wait" /dev/null >"$tmp/out" 2>&1 && grep -q "100%" "$tmp/out" && grep -q "\[#" "$tmp/out"'
fi
check "set --wait that stalls: exit 1" run 1 set slow0 5000 --wait --stall 1
check "  stalled at 1000 of 5000 pages" \
	eval 'one_line_err && grep -q "stalled at 1000 of 5000 pages" "$tmp/err"'
check "set --wait past --timeout: exit 1" run 1 set slow0 200 --wait --timeout 0.3
check "  timed out" eval 'one_line_err && grep -q "timed out after 0.3 s" "$tmp/err"'
check "set --wait with no front-end: exit 1" run 1 set nomem0 10 --wait
check "  says so" grep -q 'no front-end' "$tmp/err"

# ---- stats, watch ----
check "stats" run 0 stats balloon0
check "  with units" eval 'grep -Eq "free-memory +775.0.MiB" "$tmp/out" && grep -Eq "major-faults +120$" "$tmp/out"'
check "  and their age" grep -Eq 'from [0-9.]+ s ago \(every 5 s\)' "$tmp/out"
check "stats --json" run 0 stats balloon0 --json
check "  numbers in bytes" json 'j["stats"]["free-memory"] == 812646400 and j["stats_interval"] == 5'
check "stats without statistics" run 0 stats slow0
check "  says there are none" grep -q 'no statistics' "$tmp/out"

# until_in FILE PATTERN: until grep finds PATTERN in FILE, 10 s at most.
until_in() {
	for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	grep -q "$2" "$1" 2>/dev/null
}
"$bc" watch balloon0 >"$tmp/watch.out" 2>"$tmp/watch.err" &
wpid=$!
"$bc" watch balloon0 --json >"$tmp/watchj.out" 2>&1 &
jpid=$!
# A watcher prints the current values once its watch is in place.
until_in "$tmp/watch.out" '^type balloon$'
until_in "$tmp/watchj.out" '"event":"synced"'
"$bc" set balloon0 100 >/dev/null
until_in "$tmp/watch.out" '^target 100$'
until_in "$tmp/watchj.out" '"key":"target".*"value":"100"'
kill -INT "$wpid" "$jpid"
wait "$wpid"; wst=$?
wait "$jpid"; jst=$?
check "watch ends cleanly on SIGINT" test "$wst" -eq 0 -a "$jst" -eq 0
check "  prints current values first" grep -q '^type balloon$' "$tmp/watch.out"
check "  then changes, one per line" grep -q '^target 100$' "$tmp/watch.out"
check "watch --json prints one object per line" \
	python3 -c 'import json, sys; ev = [json.loads(l) for l in open(sys.argv[1])]; sys.exit(0 if any(e.get("key") == "target" and e.get("value") == "100" for e in ev) and any(e["event"] == "synced" for e in ev) else 1)' "$tmp/watchj.out"
check "watch of a missing device: exit 1" run 1 watch nothing0

# ---- sockets ----
check "no daemon: exit 1" run 1 --socket "$tmp/none" status
check "  naming the socket" eval 'one_line_err && grep -q "$tmp/none" "$tmp/err"'
mkdir -p "$tmp/xdg/viod"
ln -s "$VIOD_CONTROL" "$tmp/xdg/viod/control"
check "default socket: \$XDG_RUNTIME_DIR/viod/control" \
	eval 'env -u VIOD_CONTROL XDG_RUNTIME_DIR="$tmp/xdg" "$bc" status >/dev/null'
check "--socket wins over \$VIOD_CONTROL" \
	eval 'env VIOD_CONTROL="$tmp/none" "$bc" --socket "$tmp/control" status >/dev/null'

# ---- bad arguments: exit 2, one line ----
bad() {
	if run 2 "$@" && one_line_err; then ok "usage error: ${*:-(none)}"; else
		not_ok "usage error: ${*:-(none)}"; sed 's/^/# /' "$tmp/err"; fi
}
bad
bad frobnicate
bad get
bad get a b
bad set balloon0
bad set balloon0 1X
bad set balloon0 1.5
bad set balloon0 -5
bad set balloon0 99999999999999999999999
bad set balloon0 1 --guest-memory 1G
bad get balloon0 --wait
bad get balloon0 --guest-memory 1G
bad set balloon0 1 --timeout 5
bad set balloon0 1 --wait --timeout soon
bad set balloon0 1 --wait --stall 0
bad get ../etc
bad status --colour
check "--help exits 0" run 0 --help
check "  and lists the commands" grep -q 'set ID SIZE' "$tmp/out"

echo "1..$n"
[ "$fails" -eq 0 ]
