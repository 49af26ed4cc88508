#!/usr/bin/env bash
# Build qemu-system-x86_64 from Debian's QEMU 10.0.x source with viod's
# patches (tools/qemu-patches/*.patch, applied in name order with patch -p1)
# and cache it outside the clone. Usage:
#
#     qemu=$(tools/build-qemu.sh)
#
# The last line on stdout is the path of the binary; progress goes to stderr.
# Why, by QEMU version (the patches' headers say more; see also
# /work/shared/ENVIRONMENT.md):
#   0001-vhost-user-test-device-names: QEMU 10.0 and 10.1 do not let users
#     create the generic vhost-user device (the balloon needs it); the patch
#     makes it creatable under QEMU 10.2's names, vhost-user-test-device(-pci),
#     keeping the old vhost-user-device(-pci). 10.2 and later need no patch
#     for this (tools/qemu-generic-device.sh picks the name at run time).
#   0002-vhost-user-base-reconnect: vhost-user-base devices (vhost-user-rng-pci,
#     the generic device) cannot use a reconnecting chardev (reconnect-ms):
#     realize fails, and a back-end restart aborts QEMU. Needed by 10.0 and
#     10.1, and still by 10.2 and later as far as upstream's source shows
#     (hw/virtio/vhost-user-base.c, read up to the 10.2 rename and the
#     shared-memory series after it: realize does not wait for the chardev,
#     a reconnect does not re-initialise vhost_dev); not tried on 10.2.
#
# Cache: ${VIOD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/viod}/qemu/
#   <source-version>-p<hash>/qemu-system-x86_64, where <source-version> is the
#   Debian source version without its epoch and <hash> covers the patches and
#   the configure options below. A hit costs an apt-cache lookup; a miss
#   (about 5 minutes on 2 cores) installs the build dependencies, builds in a
#   temporary directory and moves the result into place atomically. A lock
#   (flock) keeps concurrent runs from building twice. Only the binary (and a
#   RECIPE note) is kept.
#
# The source comes from a source-only entry for Debian's `trixie` suite
# (/etc/apt/sources.list.d/viod-trixie-src.sources, Types: deb-src only, so
# no trixie binary can ever be installed), whose URI is copied from the
# machine's own Debian source. Build dependencies come from bookworm and
# bookworm-backports (tools/install-deps.sh adds the latter).
#
# Firmware: the binary is configured non-relocatable with an absolute
# firmware path (/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu), so it
# finds the BIOS and option ROMs of Debian's seabios and qemu-system-data
# packages by itself: no -L flags and no wrapper script are needed.
#
# Devices: the vhost-user front-ends (--enable-vhost-user) and, with
# --enable-vhost-net, the vhost-user netdev (-netdev vhost-user), so one
# QEMU carries all four viod devices (a libvirt domain has one emulator).
#
# Environment: VIOD_CACHE, XDG_CACHE_HOME (cache root, above); TMPDIR (build
# tree, about 1.5 GB while building).
set -euo pipefail

# Everything but the final path goes to stderr.
exec 3>&1 1>&2

here=$(cd "$(dirname "$0")" && pwd)
patchdir=$here/qemu-patches
log() { printf 'build-qemu: %s\n' "$*"; }
die() { printf 'build-qemu: %s\n' "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || SUDO=sudo
SUDO=${SUDO:-}
export DEBIAN_FRONTEND=noninteractive

# shellcheck disable=SC2054 # commas are not separators here
configure_args=(--python=/usr/bin/python3 --target-list=x86_64-softmmu
	--without-default-features --disable-docs --disable-install-blobs
	--enable-tcg --enable-vhost-user --enable-vhost-net --enable-slirp
	--disable-relocatable
	--firmwarepath=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu)

# ---- cache key: patch set + recipe ----------------------------------------
shopt -s nullglob
patches=("$patchdir"/*.patch)
shopt -u nullglob
[ "${#patches[@]}" -gt 0 ] || die "no patches in $patchdir"
phash=$({
	printf 'configure %s\n' "${configure_args[*]}"
	for p in "${patches[@]}"; do
		printf 'patch %s\n' "$(basename "$p")"
		cat "$p"
	done
} | sha256sum | cut -c1-12)

# ---- source version --------------------------------------------------------
srclist=/etc/apt/sources.list.d/viod-trixie-src.sources
add_source() {
	local src=/etc/apt/sources.list.d/debian.sources uri=""
	if [ -f "$src" ]; then
		uri=$(awk '/^URIs:/ { print $2; exit }' "$src")
	fi
	if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' /etc/apt/sources.list)
	fi
	[ -n "$uri" ] || die "cannot find the Debian mirror URI"
	log "adding a source-only (deb-src) entry for trixie: $srclist"
	printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
		"$uri" | $SUDO tee "$srclist" >/dev/null
}
# Newest 10.0.x qemu source apt knows of (full version, with epoch).
source_version() {
	local best="" v
	while read -r v; do
		case ${v#*:} in 10.0.*) ;; *) continue ;; esac
		if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then
			best=$v
		fi
	done < <(apt-cache showsrc qemu 2>/dev/null | awk '/^Version:/ { print $2 }')
	printf '%s\n' "$best"
}
updated=""
apt_update() {
	log "apt-get update"
	$SUDO apt-get update -q
	updated=1
}

[ -f "$srclist" ] || { add_source; apt_update; }
version=$(source_version)
if [ -z "$version" ] && [ -z "$updated" ]; then
	apt_update
	version=$(source_version)
fi
[ -n "$version" ] || die "apt knows no QEMU 10.0.x source package (is $srclist right?)"

cache_root=${VIOD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/viod}/qemu
key=${version#*:}-p$phash
dest=$cache_root/$key
bin=$dest/qemu-system-x86_64

if [ -x "$bin" ]; then
	printf '%s\n' "$bin" >&3
	exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
if ! flock -n 9; then
	log "another build holds $cache_root/.lock; waiting"
	flock 9
fi
if [ -x "$bin" ]; then   # built by the run we waited for
	printf '%s\n' "$bin" >&3
	exit 0
fi

start=$(date +%s)
log "building QEMU $version with ${#patches[@]} patch(es) into $dest"

# ---- build dependencies ----------------------------------------------------
pkgs=(build-essential dpkg-dev patch python3 python3-venv ninja-build flex bison
	libglib2.0-dev libpixman-1-dev libslirp-dev libfdt-dev seabios)
bp_pkgs=(meson python3-pycotap qemu-system-data)
missing=()
for p in "${pkgs[@]}" "${bp_pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ! dpkg --compare-versions "$(dpkg-query -W -f='${Version}' meson 2>/dev/null || echo 0)" ge 1.5; then
	missing+=(meson)
fi
if [ "${#missing[@]}" -gt 0 ]; then
	log "installing build dependencies: ${missing[*]}"
	[ -n "$updated" ] || apt_update
	$SUDO apt-get install -y -q --no-install-recommends "${pkgs[@]}"
	$SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports "${bp_pkgs[@]}"
fi

# ---- source ----------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/viod-build-qemu.XXXXXX")
stage=""
cleanup() {
	rm -rf "$tmp"
	[ -z "$stage" ] || rm -rf "$stage"
}
trap cleanup EXIT

mkdir "$tmp/dl"
fetch() { (cd "$tmp/dl" && apt-get source -q --download-only "qemu=$version"); }
if ! fetch; then
	# The index may name a version the mirror has since dropped.
	[ -z "$updated" ] || die "apt-get source qemu=$version failed"
	apt_update
	version=$(source_version)
	[ "${version#*:}-p$phash" = "$key" ] ||
		die "the mirror now has QEMU $version; run again to build it"
	fetch || die "apt-get source qemu=$version failed"
fi
dsc=$(ls "$tmp"/dl/qemu_*.dsc)
# dpkg-source also applies Debian's own patch series.
dpkg-source -x "$dsc" "$tmp/qemu" >/dev/null
rm -rf "$tmp/dl"
src=$tmp/qemu

# The +ds tarball has no firmware blobs: switch off unpacking the edk2 ones.
# Debian's skip-unpack-edk2-blobs.patch does this already; make sure.
if grep -q '^if unpack_edk2_blobs$' "$src/pc-bios/meson.build"; then
	sed -i 's/^if unpack_edk2_blobs$/if unpack_edk2_blobs and false/' "$src/pc-bios/meson.build"
fi
grep -q '^if unpack_edk2_blobs and false$' "$src/pc-bios/meson.build" ||
	die "cannot find the edk2 blob unpacking in pc-bios/meson.build"

for p in "${patches[@]}"; do
	log "applying $(basename "$p")"
	patch -d "$src" -p1 --batch --forward <"$p" >/dev/null ||
		die "$(basename "$p") does not apply to QEMU $version"
done

# ---- build -----------------------------------------------------------------
mkdir "$src/build"
log "configure ${configure_args[*]}"
(cd "$src/build" && ../configure "${configure_args[@]}") >"$tmp/configure.log" 2>&1 || {
	tail -40 "$tmp/configure.log"
	die "configure failed"
}
log "ninja qemu-system-x86_64 (a few minutes)"
ninja -C "$src/build" qemu-system-x86_64 >"$tmp/ninja.log" 2>&1 || {
	tail -40 "$tmp/ninja.log"
	die "build failed"
}
built=$src/build/qemu-system-x86_64
"$built" --version >/dev/null || die "the built binary does not run"

# ---- install into the cache ------------------------------------------------
stage=$(mktemp -d "$cache_root/.stage.XXXXXX")
# Keep symbols for backtraces, drop the (large) DWARF.
strip --strip-debug -o "$stage/qemu-system-x86_64" "$built"
chmod 0755 "$stage" "$stage/qemu-system-x86_64"
{
	printf 'QEMU source: qemu %s (Debian trixie, deb-src)\n' "$version"
	printf 'Patches (%s):\n' "$phash"
	for p in "${patches[@]}"; do
		printf '  %s %s\n' "$(sha256sum <"$p" | cut -c1-12)" "$(basename "$p")"
	done
	printf 'configure %s\n' "${configure_args[*]}"
	printf 'ninja qemu-system-x86_64\n'
	printf 'Built %s in %s s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(($(date +%s) - start))"
} >"$stage/RECIPE"
rm -rf "$dest"   # an incomplete entry (we hold the lock)
mv -T "$stage" "$dest"
stage=""
log "built in $(($(date +%s) - start)) s: $bin"
printf '%s\n' "$bin" >&3
