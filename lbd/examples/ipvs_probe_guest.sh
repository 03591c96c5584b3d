#!/bin/bash
# Boots a throwaway QEMU (TCG) guest with Debian's kernel, ip_vs + every scheduler, busybox,
# Debian's ipvsadm and the static `ipvs_probe` example, once per MODE, and prints the serial
# output. A fresh boot per mode keeps IPVS's "dest trash" of one run out of the next.
#
# Usage: lbd/examples/ipvs_probe_guest.sh [MODE...]      (default: functional)
#   MODE: functional | bench-lbd | bench-ipvsadm | info
# Env:   N=10000 (bench services, x4 dests)  TIMEOUT=600 (s per boot)
#        KDIR=/tmp/k/x  KVER=6.1.0-56-amd64 (extracted linux-image package)
#        KEEP_LOG=path (append every serial log there)
# Exit status: 0 if every boot printed PROBE-RESULT with fail=0.
set -euo pipefail

KDIR=${KDIR:-/tmp/k/x}
KVER=${KVER:-6.1.0-56-amd64}
N=${N:-10000}
TIMEOUT=${TIMEOUT:-600}
MODES=("$@")
[ ${#MODES[@]} -eq 0 ] && MODES=(functional)

KERNEL=$KDIR/boot/vmlinuz-$KVER
MODDIR=$KDIR/lib/modules/$KVER/kernel
[ -f "$KERNEL" ] || { echo "no kernel at $KERNEL" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=x86_64-unknown-linux-gnu
(cd "$REPO" && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --target $TARGET -p lbd --example ipvs_probe)
PROBE=$REPO/target/$TARGET/release/examples/ipvs_probe

WORK=$(mktemp -d /tmp/ipvs-guest.XXXXXX)
QPID=
cleanup() {
    if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
        kill "$QPID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$QPID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# --- module closure from each .ko's .modinfo `depends=`, loaded deepest first.
declare -A KO SEEN
while IFS= read -r f; do
    n=$(basename "$f" .ko); KO[${n//-/_}]=$f
done < <(find "$MODDIR" -name '*.ko')
ORDER=()
visit() {
    local m=${1//-/_}
    [ -n "${SEEN[$m]:-}" ] && return
    SEEN[$m]=1
    [ -n "${KO[$m]:-}" ] || { echo "module $m not found" >&2; exit 2; }
    local deps
    deps=$(strings "${KO[$m]}" | sed -n 's/^depends=//p' | head -1)
    for d in ${deps//,/ }; do visit "$d"; done
    ORDER+=("$m")
}
# libcrc32c asks the crypto API for crc32c at load time: provide it first (no modprobe here).
for m in crc32c_generic dummy ip_vs \
         ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_sed ip_vs_nq ip_vs_lblc ip_vs_lblcr \
         ip_vs_dh ip_vs_sh ip_vs_mh ip_vs_fo ip_vs_ovf ip_vs_pe_sip; do
    visit "$m"
done

ROOT=$WORK/root
mkdir -p "$ROOT"/{bin,modules,usr/sbin,proc,sys,dev,tmp}
for m in "${ORDER[@]}"; do cp "${KO[$m]}" "$ROOT/modules/$m.ko"; done
printf '%s\n' "${ORDER[@]}" > "$ROOT/modules/order"
cp /bin/busybox "$ROOT/bin/busybox"
cp "$PROBE" "$ROOT/probe"
# ipvsadm (dynamically linked) and what ldd lists, plus the loader.
if [ -x /usr/sbin/ipvsadm ]; then
    cp /usr/sbin/ipvsadm "$ROOT/usr/sbin/"
    for lib in $(ldd /usr/sbin/ipvsadm | grep -o '/[^ ]*'); do
        mkdir -p "$ROOT$(dirname "$lib")"
        cp -L "$lib" "$ROOT$lib"
    done
fi
cat > "$ROOT/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in $(cat /modules/order); do insmod /modules/$m.ko || echo "insmod $m failed"; done
ip link set lo up
ip link add dum0 type dummy 2>/dev/null && ip link set dum0 multicast on up
MODE=$(sed -n 's/.* probe=\([^ ]*\).*/\1/p' /proc/cmdline)
N=$(sed -n 's/.* probe_n=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "PROBE-START mode=$MODE n=$N uptime=$(cut -d' ' -f1 /proc/uptime)"
/probe "$MODE" "$N"
poweroff -f
EOF
chmod +x "$ROOT/init"
(cd "$ROOT" && find . | cpio -o -H newc --quiet) > "$WORK/initrd.cpio"

status=0
for mode in "${MODES[@]}"; do
    LOG=$WORK/serial-$mode.log
    : > "$LOG"
    qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot \
        -kernel "$KERNEL" -initrd "$WORK/initrd.cpio" \
        -append "console=ttyS0 panic=-1 quiet probe=$mode probe_n=$N" \
        < /dev/null > "$LOG" 2>&1 &
    QPID=$!
    start=$(date +%s)
    # Wait for the readiness line (or qemu's exit), bounded by TIMEOUT.
    while ! grep -q PROBE-DONE "$LOG"; do
        kill -0 "$QPID" 2>/dev/null || break
        if [ $(( $(date +%s) - start )) -ge "$TIMEOUT" ]; then echo "TIMEOUT after ${TIMEOUT}s" >> "$LOG"; break; fi
        sleep 0.5
    done
    # The guest powers off after PROBE-DONE; give it 10 s, then kill our qemu by PID.
    for _ in $(seq 100); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
    kill "$QPID" 2>/dev/null || true
    wait "$QPID" 2>/dev/null || true
    QPID=
    echo "===== guest mode=$mode ($(( $(date +%s) - start )) s wall)"
    tr -d '\r' < "$LOG"
    [ -n "${KEEP_LOG:-}" ] && tr -d '\r' < "$LOG" >> "$KEEP_LOG"
    grep -q 'PROBE-RESULT pass=[0-9]* fail=0' "$LOG" || status=1
done
exit $status
