#!/bin/sh
# Builds init, lbd and console as static binaries and boots them under QEMU
# (TCG) with init/tests/guest.py. Arguments are passed to guest.py
# (scenario names, --kernel, --modules, --work). One guest at a time.
set -eu
cd "$(dirname "$0")/../.."
RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --target x86_64-unknown-linux-gnu -p init -p lbd -p console
exec python3 init/tests/guest.py "$@"
