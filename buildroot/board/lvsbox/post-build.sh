#!/bin/sh
# BR2_ROOTFS_POST_BUILD_SCRIPT: turns Buildroot's target directory into the
# lvsbox initramfs, the same layout image/ builds (image/README.md):
#
#   /init /bin/lbd /bin/console   static, from the lvsbox package
#   no shell, no busybox, no dynamic executable, no shared library
#   /cfg /run /tmp(1777) /var /proc /sys /dev
#   /lib/modules/<kver>/modules.load   board/lvsbox/modules.load
#   /etc/lvsbox-release            os-release format, as image/ writes it
#
# and checks the built kernel's final .config against the kernel fragment
# (the options in image/kernel-options.txt). Any failure stops the build.
#
# Called by Buildroot with the target directory as $1; BR2_CONFIG, BUILD_DIR
# and friends in the environment.
set -eu

TARGET=${1:?usage: post-build.sh TARGET_DIR}
BOARD=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BOARD/../../.." && pwd)
fail() { echo "lvsbox post-build: $*" >&2; exit 1; }

# --- the binaries -----------------------------------------------------------
SRC="$TARGET/usr/libexec/lvsbox"
[ -x "$SRC/init" ] || fail "$SRC/init missing: is BR2_PACKAGE_LVSBOX=y? (it needs BR2_TOOLCHAIN_BUILDROOT_GLIBC and, with BR2_KERNEL_HEADERS_AS_KERNEL, BR2_PACKAGE_HOST_LINUX_HEADERS_CUSTOM_6_1; without them Kconfig drops it silently)"
mkdir -p "$TARGET/bin"
mv -f "$SRC/init" "$TARGET/init"
mv -f "$SRC/lbd" "$TARGET/bin/lbd"
mv -f "$SRC/console" "$TARGET/bin/console"
rmdir "$SRC" 2>/dev/null || true
rmdir "$TARGET/usr/libexec" 2>/dev/null || true

# --- no shell ----------------------------------------------------------------
for f in bin/sh bin/ash bin/bash bin/dash bin/hush bin/zsh bin/busybox linuxrc \
	usr/bin/sh usr/bin/bash usr/bin/dash usr/bin/zsh usr/bin/busybox \
	etc/inittab etc/init.d etc/profile etc/profile.d; do
	rm -rf "${TARGET:?}/$f"
done
left=$(find "$TARGET" \( -name sh -o -name ash -o -name bash -o -name dash -o -name hush \
	-o -name zsh -o -name busybox \) \( -type f -o -type l \) | sed "s|^$TARGET||")
[ -z "$left" ] || fail "a shell is left in the rootfs: $left"

# --- static binaries only: nothing needs the toolchain's shared libraries ----
# An executable with a PT_INTERP program header is dynamically linked (readelf
# is in binutils, which Buildroot requires on the host; else the cross one).
READELF=readelf
command -v readelf >/dev/null 2>&1 || READELF=$(ls "${HOST_DIR:-/nonexistent}"/bin/*-readelf 2>/dev/null | head -n 1)
[ -n "$READELF" ] || fail "no readelf (host binutils) to tell static from dynamic executables"
is_elf() { [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = "177ELF" ]; }
is_dynamic() { "$READELF" -lW "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; }
for f in "$TARGET/init" "$TARGET/bin/lbd" "$TARGET/bin/console"; do
	is_elf "$f" || fail "$f is not an ELF executable"
	! is_dynamic "$f" || fail "$f is dynamically linked; the package builds with -C target-feature=+crt-static"
done
find "$TARGET" \( -name 'ld-linux*.so*' -o -name 'lib*.so' -o -name 'lib*.so.*' \) \
	\( -type f -o -type l \) -not -path '*/lib/modules/*' -exec rm -f {} +
dynamic=""
for f in $(find "$TARGET" -type f -perm -u+x -not -path '*/lib/modules/*'); do
	if is_elf "$f" && is_dynamic "$f"; then dynamic="$dynamic ${f#"$TARGET"}"; fi
done
[ -z "$dynamic" ] || fail "dynamically linked executables in the rootfs (it has no libc):$dynamic"

# --- directories init mounts on ---------------------------------------------
for d in proc sys dev run cfg var etc; do
	mkdir -p "$TARGET/$d"
	chmod 0755 "$TARGET/$d"
done
mkdir -p "$TARGET/tmp"
chmod 1777 "$TARGET/tmp"

# --- kernel modules -----------------------------------------------------------
set -- "$TARGET"/lib/modules/*/
[ "$#" -eq 1 ] && [ -d "$1" ] || fail "expected exactly one /lib/modules/<kver>, found: $*"
MODDIR=${1%/}
KVER=$(basename "$MODDIR")
[ -s "$MODDIR/modules.dep" ] || fail "$MODDIR/modules.dep missing (CONFIG_MODULES? depmod?)"
grep -v '^[[:space:]]*#' "$BOARD/modules.load" | grep -v '^[[:space:]]*$' > "$MODDIR/modules.load"
missing=""
while read -r name _params; do
	pat=$(echo "$name" | sed 's/[-_]/[-_]/g')
	grep -Eq "(^|/)${pat}\.ko(\.[a-z]+)?:" "$MODDIR/modules.dep" && continue
	grep -Eq "(^|/)${pat}\.ko$" "$MODDIR/modules.builtin" 2>/dev/null && continue
	missing="$missing $name"
done < "$MODDIR/modules.load"
[ -z "$missing" ] || fail "modules.load names modules this kernel neither builds nor has built in:$missing"

# --- the kernel's final .config has every option of the fragment(s) ----------
if [ -n "${BR2_CONFIG:-}" ] && [ -n "${BUILD_DIR:-}" ]; then
	frags=$(sed -n 's/^BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES="\(.*\)"$/\1/p' "$BR2_CONFIG")
	kconfig=""
	for d in "$BUILD_DIR"/linux-*; do
		case "$d" in */linux-headers-*|*/linux-firmware-*|*/linux-tools-*) continue ;; esac
		[ -f "$d/.config" ] && kconfig="$d/.config"
	done
	[ -n "$kconfig" ] || fail "no built kernel .config under $BUILD_DIR/linux-*"
	bad=""
	for frag in $frags; do
		frag=$(echo "$frag" | sed "s|\$(BR2_EXTERNAL_LVSBOX_PATH)|$REPO/buildroot|")
		[ -f "$frag" ] || fail "kernel fragment $frag not found"
		while IFS='=' read -r opt want; do
			got=$(sed -n "s/^$opt=\(.*\)$/\1/p" "$kconfig")
			case "$want:$got" in
				y:y | m:m | m:y) ;;
				y:* | m:*) bad="$bad $opt=${got:-unset}(wants $want)" ;;
			esac
		done <<EOF
$(grep -E '^CONFIG_[A-Z0-9_]+=[ym]$' "$frag")
EOF
	done
	[ -z "$bad" ] || fail "the kernel lost options of the fragment (a dependency missing, or renamed in this kernel):$bad"
fi

# --- /etc/lvsbox-release ------------------------------------------------------
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/Cargo.toml" | head -n 1)
[ -n "$VERSION" ] || fail "no version in $REPO/Cargo.toml"
rm -f "$TARGET/etc/lvsbox-release"
BUILD_ID=$(cd "$TARGET" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
cat > "$TARGET/etc/lvsbox-release" <<EOF
NAME=lvsbox
ID=lvsbox
VERSION="$VERSION (production)"
VERSION_ID=$VERSION
PRETTY_NAME="lvsbox $VERSION (production)"
BUILD_ID=$BUILD_ID
LVSBOX_PRODUCT=lvsbox
LVSBOX_VERSION=$VERSION
LVSBOX_FLAVOUR=production
LVSBOX_KERNEL=$KVER
LVSBOX_KERNEL_PACKAGE="buildroot linux $KVER"
LVSBOX_BUILD_ID=$BUILD_ID
EOF
echo "lvsbox post-build: /init, /bin/lbd, /bin/console, modules.load for $KVER, /etc/lvsbox-release ($BUILD_ID)"
