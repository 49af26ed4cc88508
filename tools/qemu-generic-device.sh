#!/bin/sh
# Prints the name of the generic vhost-user PCI device (any virtio id:
# virtio-id=, num_vqs=, config_size=, vq_size=, chardev=) that the QEMU
# binary QEMU lets users create: vhost-user-test-device-pci, its name
# since QEMU 10.2 (and in tools/build-qemu.sh's patched 10.0), else
# vhost-user-device-pci (QEMU 8.2 to 10.1, only where rebuilt to allow it).
# Usage: tools/qemu-generic-device.sh QEMU
#     -device "$(tools/qemu-generic-device.sh "$qemu"),virtio-id=5,..."
# Exit 1, with the reason on stderr, when QEMU has neither.
[ $# -eq 1 ] || { echo "usage: $0 QEMU" >&2; exit 2; }
help=$("$1" -device help 2>/dev/null) || {
	echo "qemu-generic-device: cannot run $1 -device help" >&2
	exit 1
}
for name in vhost-user-test-device-pci vhost-user-device-pci; do
	# -device help lists only the devices users may create.
	if printf '%s\n' "$help" | grep -q "^name \"$name\""; then
		printf '%s\n' "$name"
		exit 0
	fi
done
echo "qemu-generic-device: $1 has no user-creatable generic vhost-user device" \
	"(QEMU >= 10.2, or tools/build-qemu.sh's patched QEMU)" >&2
exit 1
