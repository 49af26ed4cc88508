#!/usr/bin/env bash
# QEMU's vhost-user.rst "Backend program conventions" and vhost-user.json:
# the generated descriptors and every type's --print-capabilities against
# the schema (its relevant parts as a JSON Schema, below); meson install
# into a DESTDIR tree with everything a user needs; a per-type entry point
# serving on --socket-path and on an inherited --fd (listening, and
# connected: exit when it closes); SIGTERM exits 0 promptly; bad options
# exit non-zero with a message.
# Usage: conventions.sh VIOD VIOGUEST MESON BUILD_DIR DESCRIPTOR.json...
# TAP on stdout.
set -uo pipefail
[ $# -ge 5 ] || { echo "usage: $0 VIOD VIOGUEST MESON BUILD_DIR DESCRIPTOR..." >&2; exit 2; }
viod=$(realpath "$1") vioguest=$(realpath "$2") meson=$3 builddir=$4
shift 4
descriptors=("$@")
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../tap.sh
. "$here/../tap.sh"

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# viod's types and vhost-user.json's names for them.
types=(balloon blk net rng)
declare -A schema_type=([balloon]=balloon [blk]=block [net]=net [rng]=rng)
# Options each type needs to serve (the rest have defaults).
declare -A serve_opts=([balloon]="" [blk]="--blk-file=$tmp/disk.img" [net]="--device-options=backend=switch:lan" [rng]="")
truncate -s 4M "$tmp/disk.img"

# The per-type entry points, as meson install makes them: viod-TYPE -> viod.
for t in "${types[@]}"; do
	ln -s "$viod" "$tmp/viod-$t"
done

# ---- the schema -----------------------------------------------------------
# docs/interop/vhost-user.json (QAPI) as JSON Schema: VhostUserBackend (the
# descriptor files) and VHostUserBackendCapabilities (a union on "type"
# with a "features" branch for block, input and gpu; QAPI accepts no other
# members).
cat >"$tmp/check.py" <<'EOF'
import json, sys
try:
    import jsonschema
except ImportError:   # CI installs it (tools/install-deps.sh); else by hand
    jsonschema = None

TYPES = ["9p", "balloon", "block", "caif", "console", "crypto", "gpu", "input",
         "net", "rng", "rpmsg", "rproc-serial", "scsi", "vsock", "fs"]
FEATURES = {"block": ["read-only", "blk-file"],
            "input": ["evdev-path", "no-grab"],
            "gpu": ["render-node", "virgl"]}
backend = {
    "type": "object",
    "required": ["description", "type", "binary"],
    "properties": {
        "description": {"type": "string"},
        "type": {"enum": TYPES},
        "binary": {"type": "string", "pattern": "^/"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}
branches = [{
    "required": ["type"],
    "properties": {"type": {"enum": [t for t in TYPES if t not in FEATURES]}},
    "additionalProperties": False,
}] + [{
    "required": ["type", "features"],
    "properties": {"type": {"const": t},
                   "features": {"type": "array", "items": {"enum": f}}},
    "additionalProperties": False,
} for t, f in FEATURES.items()]
capabilities = {"type": "object", "oneOf": branches}


def by_hand(doc, kind):
    """The same rules without jsonschema: a message, or None."""
    if not isinstance(doc, dict) or doc.get("type") not in TYPES:
        return "not an object with a known type"
    if kind == "descriptor":
        allowed, required = {"description", "type", "binary", "tags"}, {"description", "binary"}
        if not all(isinstance(doc.get(k), str) for k in required):
            return "description and binary must be strings"
        if not doc["binary"].startswith("/"):
            return "binary is not absolute"
        if not isinstance(doc.get("tags", []), list) or \
                not all(isinstance(t, str) for t in doc.get("tags", [])):
            return "tags must be a list of strings"
    elif doc["type"] in FEATURES:
        allowed = {"type", "features"}
        f = doc.get("features")
        if not isinstance(f, list) or any(x not in FEATURES[doc["type"]] for x in f):
            return "features missing or not of the type's enum"
    else:
        allowed = {"type"}
    extra = set(doc) - allowed
    return "unexpected members %s" % sorted(extra) if extra else None


kind, path, want = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path) as f:
    doc = json.load(f)
if jsonschema:
    try:
        jsonschema.validate(doc, backend if kind == "descriptor" else capabilities,
                            cls=jsonschema.Draft7Validator)
    except jsonschema.ValidationError as e:
        sys.exit("%s: %s" % (path, e.message))
else:
    why = by_hand(doc, kind)
    if why:
        sys.exit("%s: %s" % (path, why))
if doc["type"] != want:
    sys.exit("%s: type %s, not %s" % (path, doc["type"], want))
if kind == "descriptor":
    print(doc["binary"])
EOF
check_json() { python3 "$tmp/check.py" "$@" 2>"$tmp/check.err"; }
note_err() { sed 's/^/# /' "$tmp/check.err"; }

python3 -c 'import jsonschema' 2>/dev/null ||
	echo "# python3-jsonschema missing: the schema's rules are checked by hand"

# ---- descriptors (build tree) ---------------------------------------------
[ "${#descriptors[@]}" -eq "${#types[@]}" ] && ok "one descriptor per type" ||
	not_ok "one descriptor per type (${#descriptors[@]} given)"
for d in "${descriptors[@]}"; do
	name=$(basename "$d" .json)
	t=${name#50-viod-}
	if [ -z "${schema_type[$t]:-}" ]; then
		not_ok "descriptor $name names a type viod serves"
		continue
	fi
	if bin=$(check_json descriptor "$d" "${schema_type[$t]}"); then
		ok "descriptor $name is a valid VhostUserBackend"
	else
		not_ok "descriptor $name is a valid VhostUserBackend"
		note_err
	fi
	[ "$(basename "$bin")" = "viod-$t" ] && ok "descriptor $name: binary is viod-$t" ||
		not_ok "descriptor $name: binary is viod-$t ($bin)"
done

# ---- --print-capabilities -------------------------------------------------
for t in "${types[@]}"; do
	if "$tmp/viod-$t" --print-capabilities >"$tmp/caps.json" 2>"$tmp/err" &&
		check_json capabilities "$tmp/caps.json" "${schema_type[$t]}"; then
		ok "viod-$t --print-capabilities: a valid ${schema_type[$t]} VHostUserBackendCapabilities"
	else
		not_ok "viod-$t --print-capabilities"
		note_err; sed 's/^/# /' "$tmp/err"
	fi
	if "$viod" --type="${schema_type[$t]}" --print-capabilities >"$tmp/caps2.json" &&
		cmp -s "$tmp/caps.json" "$tmp/caps2.json"; then
		ok "viod --type=${schema_type[$t]} --print-capabilities: the same"
	else
		not_ok "viod --type=${schema_type[$t]} --print-capabilities: the same"
	fi
done
grep -q '"features": \["read-only", "blk-file"\]' <("$tmp/viod-blk" --print-capabilities) &&
	ok "block capabilities list read-only and blk-file" ||
	not_ok "block capabilities list read-only and blk-file"
# The rst: other options and arguments are ignored, nothing is served.
if "$tmp/viod-rng" --frobnicate --socket-path="$tmp/never.sock" extra --print-capabilities \
	>"$tmp/caps.json" 2>"$tmp/err" && check_json capabilities "$tmp/caps.json" rng &&
	[ ! -e "$tmp/never.sock" ]; then
	ok "--print-capabilities ignores other options and serves nothing"
else
	not_ok "--print-capabilities ignores other options and serves nothing"
	sed 's/^/# /' "$tmp/err"
fi

# ---- meson install --------------------------------------------------------
dest=$tmp/dest
if "$meson" install -C "$builddir" --no-rebuild --destdir "$dest" >"$tmp/install.log" 2>&1; then
	ok "meson install --destdir"
else
	not_ok "meson install --destdir"
	tail -20 "$tmp/install.log" | sed 's/^/# /'
fi
# installed NAME DIR-SUFFIX: one regular file or symlink NAME under DEST/.../DIR-SUFFIX.
installed() {
	find "$dest" -path "*/$2/$1" \( -type f -o -type l \) | grep -q .
}
for f in "sbin viod" "sbin balloonctl" "bin viod-store" "bin vioguest" \
	"man8 viod.8" "man8 balloonctl.8" "man7 viod-store.7" \
	"libexec viod-balloon" "libexec viod-blk" "libexec viod-net" "libexec viod-rng" \
	"qemu/vhost-user 50-viod-balloon.json" "qemu/vhost-user 50-viod-blk.json" \
	"qemu/vhost-user 50-viod-net.json" "qemu/vhost-user 50-viod-rng.json"; do
	# shellcheck disable=SC2086 # "DIR NAME" splits in two
	set -- $f
	installed "$2" "$1" && ok "installed: $1/$2" || not_ok "installed: $1/$2"
done
# Each installed descriptor's binary (inside DESTDIR) answers for its type.
while IFS= read -r d; do
	name=$(basename "$d" .json)
	t=${name#50-viod-}
	want=${schema_type[$t]:-unknown}
	if bin=$(check_json descriptor "$d" "$want") && [ -x "$dest$bin" ] &&
		"$dest$bin" --print-capabilities >"$tmp/caps.json" 2>"$tmp/err" &&
		check_json capabilities "$tmp/caps.json" "$want"; then
		ok "installed $name: its binary runs and reports type $want"
	else
		not_ok "installed $name: its binary runs and reports type $want"
		note_err; sed 's/^/# /' "$tmp/err"
	fi
done < <(find "$dest" -path '*/qemu/vhost-user/*.json' | sort)

# ---- serving ---------------------------------------------------------------
# wait_socket PATH PID: PATH accepts connections within 10 s, PID alive.
wait_socket() {
	for _ in $(seq 100); do
		python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])" \
			"$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}
# stop PID DESC: SIGTERM, exit 0 within 2 s.
stop() {
	local pid=$1 desc=$2 st t0 t1
	t0=$(date +%s%N)
	kill -TERM "$pid"
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.01
	done
	wait "$pid"
	st=$?
	t1=$(date +%s%N)
	if [ "$st" -eq 0 ] && [ $(((t1 - t0) / 1000000)) -lt 2000 ]; then
		ok "$desc: SIGTERM, exit 0 in $(((t1 - t0) / 1000000)) ms"
	else
		not_ok "$desc: SIGTERM, exit $st after $(((t1 - t0) / 1000000)) ms"
	fi
}

for t in "${types[@]}"; do
	sock=$tmp/$t.sock
	# shellcheck disable=SC2086 # serve_opts holds whole options
	"$tmp/viod-$t" --socket-path="$sock" ${serve_opts[$t]} 2>"$tmp/$t.err" &
	pid=$!
	pids+=("$pid")
	if wait_socket "$sock" "$pid" &&
		"$vioguest" --socket "$sock" info >"$tmp/info" 2>&1; then
		ok "viod-$t --socket-path: a front-end's handshake"
	else
		not_ok "viod-$t --socket-path: a front-end's handshake"
		sed 's/^/# /' "$tmp/$t.err" "$tmp/info"
	fi
	case $t in
	rng)
		if "$vioguest" --socket "$sock" rng --bytes 64 --hex >"$tmp/out" 2>&1 &&
			grep -Eq '^[0-9a-f]{128}$' "$tmp/out"; then
			ok "viod-rng --socket-path: 64 bytes through the viornd driver"
		else
			not_ok "viod-rng --socket-path: 64 bytes through the viornd driver"
			sed 's/^/# /' "$tmp/out"
		fi
		;;
	blk)
		if "$vioguest" --socket "$sock" blk info >"$tmp/out" 2>&1 &&
			grep -q '^capacity_bytes=4194304$' "$tmp/out"; then
			ok "viod-blk --blk-file: the image's capacity through the ld driver"
		else
			not_ok "viod-blk --blk-file: the image's capacity through the ld driver"
			sed 's/^/# /' "$tmp/out"
		fi
		;;
	esac
	stop "$pid" "viod-$t --socket-path"
	[ ! -e "$sock" ] && ok "viod-$t: socket removed at exit" ||
		not_ok "viod-$t: socket left behind"
done

# SIGTERM while a front-end streams entropy: still exit 0 at once.
"$tmp/viod-rng" --socket-path="$tmp/busy.sock" 2>"$tmp/busy.err" &
pid=$!
pids+=("$pid")
if wait_socket "$tmp/busy.sock" "$pid"; then
	"$vioguest" --timeout-ms=2000 --socket "$tmp/busy.sock" rng-stream --seconds 10 \
		>/dev/null 2>&1 &
	gpid=$!
	pids+=("$gpid")
	# Until viod has accepted the front-end (an established socket on its path).
	for _ in $(seq 100); do
		ss -xH 2>/dev/null | grep -q "$tmp/busy.sock" && break
		sleep 0.05
	done
	stop "$pid" "viod-rng serving a front-end"
	kill "$gpid" 2>/dev/null
	wait "$gpid" 2>/dev/null
else
	not_ok "viod-rng serving a front-end: started"
	sed 's/^/# /' "$tmp/busy.err"
fi

# --read-only: the disk says so (VIRTIO_BLK_F_RO).
"$tmp/viod-blk" --socket-path="$tmp/ro.sock" --blk-file="$tmp/disk.img" --read-only \
	2>"$tmp/ro.err" &
pid=$!
pids+=("$pid")
if wait_socket "$tmp/ro.sock" "$pid" &&
	"$vioguest" --socket "$tmp/ro.sock" blk info >"$tmp/out" 2>&1 &&
	grep -q '^readonly=1$' "$tmp/out"; then
	ok "viod-blk --read-only: a read-only disk"
else
	not_ok "viod-blk --read-only: a read-only disk"
	sed 's/^/# /' "$tmp/ro.err" "$tmp/out"
fi
stop "$pid" "viod-blk --read-only"

# --fd: a listening socket made and passed by the parent (python), then a
# connected one (a socketpair: the parent is the front-end).
cat >"$tmp/fd.py" <<'EOF'
import os, socket, struct, subprocess, sys, time
mode, viod, vioguest, path = sys.argv[1:5]
if mode == "listening":
    l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    l.bind(path)
    l.listen(4)
    p = subprocess.Popen([viod, "--type=rng", "--fd=%d" % l.fileno()],
                         pass_fds=[l.fileno()])
    l.close()
    ok = True
    for _ in range(2):   # two front-ends in turn on the inherited socket
        r = subprocess.run([vioguest, "--socket", path, "rng", "--bytes", "16",
                            "--hex"], capture_output=True, text=True, timeout=20)
        ok = ok and r.returncode == 0 and len(r.stdout.strip()) == 32
    t = time.monotonic()
    p.terminate()
    st = p.wait(timeout=5)
    ms = (time.monotonic() - t) * 1000
    print("served=%d exit=%d ms=%d path_kept=%d" % (ok, st, ms, os.path.exists(path)))
elif mode == "wrong":
    # Sockets viod must refuse: datagram, and not UNIX.
    res = []
    for fam, typ in ((socket.AF_UNIX, socket.SOCK_DGRAM), (socket.AF_INET, socket.SOCK_STREAM)):
        s = socket.socket(fam, typ)
        r = subprocess.run([viod, "--type=rng", "--fd=%d" % s.fileno()], pass_fds=[s.fileno()],
                           capture_output=True, text=True, timeout=10)
        res.append("%d:%d" % (r.returncode, "not a UNIX stream socket" in r.stderr))
        s.close()
    print(" ".join(res))
else:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    p = subprocess.Popen([viod, "--type=rng", "--fd=%d" % b.fileno()],
                         pass_fds=[b.fileno()])
    b.close()
    a.settimeout(5)
    a.sendall(struct.pack("<III", 1, 1, 0))       # GET_FEATURES, version 1
    req, flags, size = struct.unpack("<III", a.recv(12))
    feat, = struct.unpack("<Q", a.recv(size))
    version_1 = (feat >> 32) & 1
    a.close()                                     # the front-end goes
    t = time.monotonic()
    st = p.wait(timeout=5)
    ms = (time.monotonic() - t) * 1000
    print("reply=%d version_1=%d exit=%d ms=%d" % (req == 1 and flags & 4 != 0,
                                                  version_1, st, ms))
EOF
out=$(timeout 60 python3 "$tmp/fd.py" listening "$viod" "$vioguest" "$tmp/fd.sock" 2>"$tmp/err")
echo "# --fd listening: $out"
case $out in
"served=1 exit=0 ms="*" path_kept=1") ok "--fd (listening): served two front-ends, SIGTERM exit 0, the path left to its owner" ;;
*) not_ok "--fd (listening)"; sed 's/^/# /' "$tmp/err" ;;
esac
out=$(timeout 60 python3 "$tmp/fd.py" connected "$viod" "$vioguest" - 2>"$tmp/err")
echo "# --fd connected: $out"
case $out in
"reply=1 version_1=1 exit=0 ms="*) ok "--fd (connected): GET_FEATURES answered, exit 0 when the front-end closes" ;;
*) not_ok "--fd (connected)"; sed 's/^/# /' "$tmp/err" ;;
esac

out=$(timeout 60 python3 "$tmp/fd.py" wrong "$viod" "$vioguest" - 2>"$tmp/err")
[ "$out" = "1:1 1:1" ] && ok "--fd refuses a datagram and a TCP socket (exit 1, a message)" ||
	{ not_ok "--fd refuses a datagram and a TCP socket ($out)"; sed 's/^/# /' "$tmp/err"; }

# ---- bad options: non-zero status and a message on stderr -------------------
# refuse STATUS DESC CMD...: CMD exits STATUS within 5 s with a "viod: " line.
refuse() {
	local want=$1 desc=$2 st
	shift 2
	timeout 5 "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
	st=$?
	if [ "$st" -eq "$want" ] && grep -q '^viod: ' "$tmp/err"; then
		ok "refused: $desc (status $st)"
	else
		not_ok "refused: $desc (status $st, want $want)"
		sed 's/^/# /' "$tmp/err"
	fi
}
refuse 2 "--print-capabilities without a type" "$viod" --print-capabilities
refuse 2 "unknown --type" "$viod" --type=toaster --socket-path="$tmp/x.sock"
refuse 2 "--type against the program's type" "$tmp/viod-rng" --type=block --socket-path="$tmp/x.sock"
refuse 2 "no socket" "$tmp/viod-rng"
refuse 2 "both --socket-path and --fd" "$tmp/viod-rng" --socket-path="$tmp/x.sock" --fd=0
refuse 2 "--fd not a number" "$tmp/viod-rng" --fd=three
refuse 1 "--fd not a socket" "$tmp/viod-rng" --fd=0
refuse 2 "--blk-file for rng" "$tmp/viod-rng" --socket-path="$tmp/x.sock" --blk-file="$tmp/disk.img"
refuse 2 "--read-only for net" "$tmp/viod-net" --socket-path="$tmp/x.sock" --read-only
refuse 2 "block without an image" "$tmp/viod-blk" --socket-path="$tmp/x.sock"
refuse 2 "block on a missing image" "$tmp/viod-blk" --socket-path="$tmp/x.sock" --blk-file="$tmp/none.img"
refuse 2 "unknown device option" "$tmp/viod-rng" --socket-path="$tmp/x.sock" --device-options=colour=blue
refuse 2 "socket= in --device-options" "$tmp/viod-rng" --socket-path="$tmp/x.sock" --device-options=socket="$tmp/y.sock"
refuse 2 "--device with viod-TYPE" "$tmp/viod-rng" --device "rng,id=a,socket=$tmp/x.sock"
refuse 2 "--device with --socket-path" "$viod" --socket-path="$tmp/x.sock" --device "rng,id=a,socket=$tmp/y.sock"
refuse 1 "socket in a missing directory" "$tmp/viod-rng" --socket-path="$tmp/nodir/x.sock"
[ ! -e "$tmp/x.sock" ] && ok "no socket left by the refused runs" || not_ok "a refused run left a socket"

tap_end
