#!/bin/sh
# BR2_ROOTFS_POST_IMAGE_SCRIPT: the UKI and the GPT disk, as image/ makes them.
#
#   lvsbox.efi   UKI: systemd's EFI stub + .osrel (/etc/lvsbox-release)
#                + .cmdline (cmdline-<arch>.txt) + .linux + .initrd
#                (rootfs.cpio.zst), sections placed after the stub's last one
#   lvsbox.img   GPT: lvsbox-esp (FAT32, \EFI\BOOT\BOOT<ARCH>.EFI = the UKI)
#                + lvsbox-config (empty ext4), genimage.cfg.in
#
# The stub is not built by Buildroot here (its systemd-boot needs systemd as
# init): it is the file image/ uses, from Debian's systemd-boot-efi package on
# the build host, or any systemd-stub given with LVSBOX_EFI_STUB=/path.
#
# Called by Buildroot with the images directory as $1; BR2_CONFIG, HOST_DIR,
# TARGET_DIR, BUILD_DIR in the environment.
set -eu

IMAGES=${1:?usage: post-image.sh BINARIES_DIR}
BOARD=$(cd "$(dirname "$0")" && pwd)
fail() { echo "lvsbox post-image: $*" >&2; exit 1; }

if grep -q '^BR2_x86_64=y' "$BR2_CONFIG"; then
	ARCH=x86_64 EFI_ARCH=x64 BOOT_FILE=BOOTX64.EFI KERNEL="$IMAGES/bzImage"
elif grep -q '^BR2_aarch64=y' "$BR2_CONFIG"; then
	ARCH=aarch64 EFI_ARCH=aa64 BOOT_FILE=BOOTAA64.EFI KERNEL="$IMAGES/Image"
else
	fail "only x86_64 and aarch64 are supported"
fi
INITRD="$IMAGES/rootfs.cpio.zst"
[ -f "$KERNEL" ] || fail "$KERNEL missing"
[ -f "$INITRD" ] || fail "$INITRD missing (BR2_TARGET_ROOTFS_CPIO_ZSTD=y?)"

STUB=${LVSBOX_EFI_STUB:-/usr/lib/systemd/boot/efi/linux$EFI_ARCH.efi.stub}
[ -f "$STUB" ] || fail "no systemd EFI stub at $STUB: install Debian's systemd-boot-efi (x86_64) or set LVSBOX_EFI_STUB to a linux$EFI_ARCH.efi.stub"

# The cross objcopy knows the target's PE format; the host's does for x86_64.
OBJCOPY=$(ls "$HOST_DIR"/bin/*-objcopy 2>/dev/null | head -n 1 || true)
[ -n "$OBJCOPY" ] || OBJCOPY=objcopy
OBJDUMP=$(echo "$OBJCOPY" | sed 's/objcopy$/objdump/')
command -v "$OBJDUMP" >/dev/null 2>&1 || OBJDUMP=objdump

WORK="$IMAGES/lvsbox-work"
rm -rf "$WORK"
mkdir -p "$WORK/empty-root"
tr -s ' \n' ' ' < "$BOARD/cmdline-$ARCH.txt" | sed 's/ $//' > "$WORK/cmdline"
cp "$TARGET_DIR/etc/lvsbox-release" "$WORK/osrel"

# Place each section at the next SectionAlignment boundary after the
# previous one, starting after the stub's last section (what image/src/pe.rs
# does in Rust).
align=$((0x$("$OBJDUMP" -p "$STUB" | awk '$1 == "SectionAlignment" { print $2 }')))
last=$("$OBJDUMP" -h "$STUB" | awk 'NF >= 7 && $1 ~ /^[0-9]+$/ { size = $3; vma = $4 } END { print size, vma }')
next=$((0x${last% *} + 0x${last#* }))
set --
for section in osrel:"$WORK/osrel" cmdline:"$WORK/cmdline" linux:"$KERNEL" initrd:"$INITRD"; do
	name=${section%%:*}
	file=${section#*:}
	next=$(( (next + align - 1) / align * align ))
	set -- "$@" --add-section ".$name=$file" --change-section-vma ".$name=$(printf '0x%x' "$next")"
	next=$((next + $(stat -c %s "$file")))
done
"$OBJCOPY" "$@" "$STUB" "$IMAGES/lvsbox.efi"

sed "s/@EFI_BOOT_FILE@/$BOOT_FILE/" "$BOARD/genimage.cfg.in" > "$WORK/genimage.cfg"
"$HOST_DIR/bin/genimage" \
	--rootpath "$WORK/empty-root" \
	--tmppath "$WORK/tmp" \
	--inputpath "$IMAGES" \
	--outputpath "$IMAGES" \
	--config "$WORK/genimage.cfg"
rm -rf "$WORK"
echo "lvsbox post-image: $IMAGES/lvsbox.efi (UKI, $ARCH) and $IMAGES/lvsbox.img (GPT: lvsbox-esp + lvsbox-config)"
