#!/usr/bin/env bash
# Build (or reuse) a bootable Linux guest for the guest tests: Debian's
# kernel plus a busybox initramfs with the virtio drivers.
#
# Usage: build-guest.sh
# Output: vmlinuz and initrd.img in
#   ${VIOD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/viod}/guest/<kernel-pkg>_<version>_r<RECIPE>/
# The last line on stdout is that directory; all progress goes to stderr.
#
# The initramfs /init mounts proc, sys and devtmpfs, loads the virtio
# modules, runs /test.sh if present (run-guest.sh --script appends it),
# prints "VIOD-GUEST-EXIT <rc>" and powers off.
#
# Userland beyond busybox (USERLAND: mkfs.ext4) comes from Debian packages
# with the shared libraries it needs.
#
# Needs: apt-get/apt-cache, dpkg-deb, busybox-static, kmod (depmod,
# modprobe), cpio, gzip. Downloads only through apt, from the machine's
# configured Debian sources. Safe to run concurrently (flock on the cache).
set -euo pipefail

# Bump when the initramfs recipe changes, so stale caches are rebuilt.
RECIPE=3

# Modules /init loads, in this order; depmod resolves their dependencies.
# ext4 (with jbd2, mbcache, crc16) for the blk tests; crc32c_generic is
# ext4's soft dependency (crypto-crc32c), loaded first by name because
# busybox's modprobe ignores softdeps and crc32c-intel needs SSE4.2, which
# TCG's default CPU lacks.
MODULES=(virtio_pci virtio_rng virtio_blk virtio_net virtio_balloon crc32c_generic ext4)

# Debian packages whose programs go into the initramfs, beside busybox,
# with the shared libraries they need (from the packages they depend on)
# and the dynamic loader: PACKAGE:PROGRAM[,PROGRAM...], programs as paths
# inside the package. e2fsprogs' mke2fs replaces busybox's mke2fs applet,
# which makes no ext4.
USERLAND=(e2fsprogs:sbin/mke2fs,sbin/mkfs.ext4,etc/mke2fs.conf)

log() { printf 'build-guest: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for t in apt-get apt-cache dpkg-deb depmod modprobe cpio gzip flock; do
	command -v "$t" >/dev/null || die "$t not found (run tools/install-deps.sh)"
done
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "$BUSYBOX not found (install busybox-static)"
case $(LC_ALL=C ldd "$BUSYBOX" 2>&1 || true) in
*"not a dynamic executable"* | *"statically linked"*) ;;
*) die "$BUSYBOX is dynamically linked (install busybox-static)" ;;
esac

cache_root=${VIOD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/viod}/guest
mkdir -p "$cache_root"

# Complete when both images exist and the stamp matches this recipe.
is_complete() {
	[ -s "$1/vmlinuz" ] && [ -s "$1/initrd.img" ] &&
		[ "$(cat "$1/recipe" 2>/dev/null)" = "$RECIPE" ]
}

# Offline fallback: print the newest complete guest in the cache and exit 0,
# or fail with "$1".
fallback() {
	local d
	while read -r _ d; do
		if is_complete "$d"; then
			log "$1; reusing $d"
			printf '%s\n' "$d"
			exit 0
		fi
	done < <(find "$cache_root" -mindepth 2 -maxdepth 2 -name initrd.img -printf '%T@ %h\n' | sort -rn)
	die "$1"
}

# Prints the kernel package that linux-image-amd64 currently depends on.
resolve_kernel_pkg() {
	LC_ALL=C apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

pkg=$(resolve_kernel_pkg || true)
if [ -z "$pkg" ]; then
	log "apt-cache knows no linux-image-amd64; running apt-get update"
	apt-get update -q >&2 || log "apt-get update failed"
	pkg=$(resolve_kernel_pkg || true)
fi
ver=""
if [ -n "$pkg" ]; then
	ver=$(LC_ALL=C apt-cache policy "$pkg" | awk '$1 == "Candidate:" { print $2; exit }' || true)
	[ "$ver" != "(none)" ] || ver=""
fi
if [ -z "$pkg" ] || [ -z "$ver" ]; then
	fallback "cannot resolve the kernel package of linux-image-amd64"
fi

# The recipe is part of the key, so that branches with different recipes
# sharing one cache do not rebuild over each other's guest.
key="${pkg}_${ver//:/%3a}_r$RECIPE"
dest="$cache_root/$key"

if is_complete "$dest"; then
	printf '%s\n' "$dest"
	exit 0
fi

# One builder at a time; others wait and then reuse its result.
exec 9>"$cache_root/.lock"
flock 9
if is_complete "$dest"; then
	printf '%s\n' "$dest"
	exit 0
fi

# Work dir beside the cache so the final mv is a rename on one filesystem.
work=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS

log "downloading $pkg=$ver"
mkdir "$work/dl"
# As root, apt's _apt sandbox user cannot write into this private dir.
sandbox=()
if [ "$(id -u)" -eq 0 ]; then
	sandbox=(-o APT::Sandbox::User=root)
fi
(cd "$work/dl" && apt-get download -q "${sandbox[@]}" "$pkg=$ver") >&2 ||
	fallback "cannot download $pkg=$ver"
deb=$(find "$work/dl" -name '*.deb' -print -quit)
[ -n "$deb" ] || die "apt-get download produced no .deb"
log "unpacking $(basename "$deb") ($((SECONDS - start)) s so far)"
dpkg-deb -x "$deb" "$work/x"
rm -rf "$work/dl"

moddirs=("$work"/x/lib/modules/* "$work"/x/usr/lib/modules/*)
moddir=""
for d in "${moddirs[@]}"; do
	if [ -d "$d" ]; then
		[ -z "$moddir" ] || die "several module trees in $pkg"
		moddir=$d
	fi
done
[ -n "$moddir" ] || die "no module tree in $pkg"
kver=$(basename "$moddir")
modbase=${moddir%/lib/modules/"$kver"}	# depmod/modprobe -b/-d root
vmlinuz=$(find "$work/x/boot" -maxdepth 1 -name "vmlinuz-$kver" -print -quit)
[ -n "$vmlinuz" ] || die "no boot/vmlinuz-$kver in $pkg"

depmod -b "$modbase" "$kver"

# --- initramfs tree ---
root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,etc,root}
chmod 0755 "$root"
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
# Applet symlinks at the paths busybox reports (bin/sh, sbin/modprobe, ...).
while read -r applet; do
	[ "$applet" = bin/busybox ] && continue
	[ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done < <("$BUSYBOX" --list-full)
# The kernel opens /dev/console for /init's stdio before /init runs; only
# root can make the node, and /init reopens the console after mounting
# devtmpfs in any case.
mknod -m 0600 "$root/dev/console" c 5 1 2>/dev/null ||
	log "cannot mknod /dev/console (not root); relying on /init"

# Modules: each requested one plus its dependencies, decompressed, at the
# same relative path; then depmod on the subset so modprobe works in the guest.
mkdir -p "$root/lib/modules/$kver"
for m in "${MODULES[@]}"; do
	out=$(modprobe -d "$modbase" -S "$kver" --show-depends "$m") ||
		die "module $m not found in $pkg"
	while read -r kind path _; do
		[ "$kind" = insmod ] || continue	# "builtin X" needs nothing
		rel=${path#"$modbase"/}
		mkdir -p "$root/$(dirname "$rel")"
		case $rel in
		*.ko) cp "$path" "$root/$rel" ;;
		*.ko.xz) xz -dc "$path" >"$root/${rel%.xz}" ;;
		*.ko.zst) zstd -qdc "$path" >"$root/${rel%.zst}" ;;
		*.ko.gz) gzip -dc "$path" >"$root/${rel%.gz}" ;;
		*) die "unexpected module file $rel" ;;
		esac
	done <<<"$out"
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
	if [ -f "$moddir/$f" ]; then
		cp "$moddir/$f" "$root/lib/modules/$kver/"
	fi
done
depmod -b "$root" "$kver"

# Userland (USERLAND): each package and the packages it depends on directly
# are unpacked into one tree; each listed file is copied to the same path
# in the initramfs, and for an ELF program, the shared libraries and the
# loader that the tree's own loader resolves for it (ld.so --list, ldd's
# mechanism), which must all come from the tree. The guest's loader finds
# them without a cache: Debian's glibc searches /lib/<triplet> and
# /usr/lib/<triplet> by default.
deps_of() { # PACKAGE: its direct Depends and Pre-Depends, real packages only
	LC_ALL=C apt-cache depends "$1" |
		awk '$1 ~ /^\|?(Pre)?Depends:$/ && $2 !~ /^</ { print $2 }'
}
upkgs=()
for entry in "${USERLAND[@]}"; do
	p=${entry%%:*}
	upkgs+=("$p")
	mapfile -t -O "${#upkgs[@]}" upkgs < <(deps_of "$p")
done
mapfile -t upkgs < <(printf '%s\n' "${upkgs[@]}" | LC_ALL=C sort -u)
log "downloading ${upkgs[*]}"
mkdir "$work/udl" "$work/u"
(cd "$work/udl" && apt-get download -q "${sandbox[@]}" "${upkgs[@]}") >&2 ||
	fallback "cannot download ${upkgs[*]}"
for deb in "$work"/udl/*.deb; do
	dpkg-deb -x "$deb" "$work/u"
done
ul=$(cd "$work/u" && pwd)
loader=$(find "$ul" -name 'ld-linux-x86-64.so.2' -type f -print -quit)
[ -n "$loader" ] || die "no dynamic loader in ${upkgs[*]}"
libpath=$ul/lib/x86_64-linux-gnu:$ul/usr/lib/x86_64-linux-gnu:$ul/lib:$ul/usr/lib
# install_file SRC REL: SRC's content (symlinks followed) at REL in the root.
install_file() {
	mkdir -p "$root/$(dirname "$2")"
	rm -f "$root/$2"
	cp -L "$1" "$root/$2"
}
for entry in "${USERLAND[@]}"; do
	IFS=, read -r -a files <<<"${entry#*:}"
	for f in "${files[@]}"; do
		[ -e "$ul/$f" ] || die "no $f in ${entry%%:*}"
		mkdir -p "$root/$(dirname "$f")"
		rm -f "$root/$f"	# a busybox applet of the same name
		cp -P "$ul/$f" "$root/$f"
		[ ! -L "$ul/$f" ] && [ "$(head -c 4 "$ul/$f")" = $'\x7fELF' ] || continue
		out=$("$loader" --library-path "$libpath" --list "$ul/$f") ||
			die "$f: the loader cannot resolve its libraries"
		while read -r name arrow path _; do
			[ "$arrow" = "=>" ] || continue	# linux-vdso.so.1
			case $name:$path in
			/*:"$ul"/*) install_file "$path" "${name#/}" ;;	# the loader
			*:"$ul"/*) install_file "$path" "${path#"$ul"/}" ;;
			*) die "$f: $name resolves to $path, outside ${upkgs[*]}" ;;
			esac
		done <<<"$out"
	done
done

cat >"$root/init" <<'EOF'
#!/bin/sh
# viod guest init: see tools/guest/build-guest.sh for the contract.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
# Firmware output may leave the console mid-line: start guest output afresh.
echo
for m in @MODULES@; do
	modprobe "$m" || echo "init: modprobe $m failed"
done
rc=0
if [ -f /test.sh ]; then
	/test.sh
	rc=$?
fi
echo "VIOD-GUEST-EXIT $rc"
poweroff -f
# Not reached unless poweroff failed: exiting init panics, and with
# panic=-1 plus QEMU's -no-reboot that ends QEMU as well.
EOF
sed -i "s/@MODULES@/${MODULES[*]}/" "$root/init"
chmod 0755 "$root/init"

log "modules: $(cd "$root" && find lib/modules -name '*.ko' -printf '%f\n' | sort | tr '\n' ' ')"
log "userland: ${USERLAND[*]} (libraries from ${upkgs[*]})"

mkdir "$work/out"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9 -n >"$work/out/initrd.img"
cp "$vmlinuz" "$work/out/vmlinuz"
printf '%s\n' "$kver" >"$work/out/kernel-release"
printf '%s\n' "$RECIPE" >"$work/out/recipe"

# Publish atomically; an incomplete or stale dest (old recipe) is replaced.
if [ -e "$dest" ]; then
	mv -T "$dest" "$work/old"
fi
mv -T "$work/out" "$dest"
log "built $dest in $((SECONDS - start)) s (initrd $(stat -c %s "$dest/initrd.img") bytes)"
printf '%s\n' "$dest"
