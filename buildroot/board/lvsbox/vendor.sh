#!/bin/sh
# Vendors the lvsbox workspace's locked crates for an offline build.
#
#   vendor.sh DL_DIR [REPO]
#
# Vendors (once) into DL_DIR/lvsbox/vendor-<sha256 of REPO/Cargo.lock> and
# prints that directory on stdout. REPO defaults to the repository this
# script lives in. Needs `cargo` on PATH and crates.io the first time only;
# a directory that is already complete is reused without network.
#
# Air-gapped builds: run it on a connected machine with the same checkout,
#   buildroot/board/lvsbox/vendor.sh /path/to/dl
# and copy /path/to/dl/lvsbox/ into the offline machine's BR2_DL_DIR (with
# the rest of `make source`'s downloads).
set -eu

dl_dir=${1:?usage: vendor.sh DL_DIR [REPO]}
repo=${2:-$(cd "$(dirname "$0")/../../.." && pwd)}
lock="$repo/Cargo.lock"
[ -f "$lock" ] || { echo "vendor.sh: no Cargo.lock in $repo" >&2; exit 1; }

sum=$(sha256sum "$lock" | cut -d' ' -f1)
dest="$dl_dir/lvsbox/vendor-$sum"
if [ ! -f "$dest/.lvsbox-vendored" ]; then
	tmp="$dest.partial"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	echo "vendor.sh: vendoring the crates of $lock into $dest" >&2
	if ! cargo vendor --locked --versioned-dirs --manifest-path "$repo/Cargo.toml" "$tmp" >/dev/null; then
		rm -rf "$tmp"
		echo "vendor.sh: cargo vendor failed. Offline? Run buildroot/board/lvsbox/vendor.sh DL_DIR" >&2
		echo "  on a connected machine and copy DL_DIR/lvsbox/vendor-$sum here." >&2
		exit 1
	fi
	touch "$tmp/.lvsbox-vendored"
	rm -rf "$dest"
	mv "$tmp" "$dest"
fi
echo "$dest"
