#!/usr/bin/env bash
# Install everything viod's build, tests and guest tests need on Debian 12.
# Idempotent: a second run on a prepared machine does only the apt checks.
# QEMU 10 and meson 1.7 come from bookworm-backports, whose URI is read from
# the machine's own Debian source (never hard-coded).
set -euo pipefail

[ "$(id -u)" -eq 0 ] || SUDO=sudo
SUDO=${SUDO:-}
export DEBIAN_FRONTEND=noninteractive

src=/etc/apt/sources.list.d/debian.sources
bp=/etc/apt/sources.list.d/viod-backports.sources
if [ ! -f "$bp" ]; then
	uri=""
	if [ -f "$src" ]; then
		uri=$(awk '/^URIs:/ { print $2; exit }' "$src")
	fi
	if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' /etc/apt/sources.list)
	fi
	[ -n "$uri" ] || { echo "install-deps: cannot find the Debian mirror URI" >&2; exit 1; }
	printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
		"$uri" | $SUDO tee "$bp" >/dev/null
	need_update=1
fi

pkgs=(build-essential pkg-config clang llvm libclang-rt-14-dev
      libglib2.0-dev libjson-glib-dev liburing-dev linux-libc-dev
      busybox-static kmod cpio python3 python3-jsonschema ninja-build bc
      dpdk-dev iproute2)
bp_pkgs=(meson qemu-system-x86 qemu-utils qemu-block-extra)
# libvirt 11.3 from backports, the match for backports' QEMU 10: the libvirt
# glue (viod-libvirt, its hook) and balloonctl --connect/--domain.
bp_pkgs+=(libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients libvirt-dev)

missing=()
for p in "${pkgs[@]}" "${bp_pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
# QEMU must be 10.x from backports, not bookworm's 7.2.
if command -v qemu-system-x86_64 >/dev/null; then
	qemu-system-x86_64 --version | grep -q 'version \(9\|1[0-9]\)\.' || missing+=(qemu-system-x86)
fi
# libvirt must be 11.x from backports, not bookworm's 9.0.
if dpkg-query -W -f='${Version}' libvirt-dev 2>/dev/null | grep -q '^[0-9]\.'; then
	missing+=(libvirt-dev)
fi

if [ "${#missing[@]}" -gt 0 ] || [ -n "${need_update:-}" ]; then
	$SUDO apt-get update -q
	$SUDO apt-get install -y -q --no-install-recommends "${pkgs[@]}"
	$SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports "${bp_pkgs[@]}"
fi
