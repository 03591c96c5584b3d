//! Boot smoke tests under QEMU/TCG. They need the artefacts of
//! `cargo run --release -p image -- build` and about a minute each, so they
//! are ignored by default: `cargo test -p image --test boot -- --ignored --test-threads=1`.
//!
//! The debug test adds a scratch init (an extra cpio before the real one,
//! selected with `rdinit=`) that loads `modules.load` in `modules.dep` order
//! with busybox insmod, programs IPVS with the shipped ipvsadm, coldplugs
//! through `modules.alias`, and looks for the config partition.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use image::qemu::{QemuCmd, Serial};
use image::{Artefacts, Flavour};

const SCRATCH_INIT: &str = r#"#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
echo "SCRATCH-INIT-RAN uptime=$(cut -d' ' -f1 /proc/uptime)"
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
K=/lib/modules/$(uname -r)
LOADED=" "
load() {
  case "$LOADED" in *" $1 "*) return 0;; esac
  LOADED="$LOADED$1 "
  out=$(insmod "$K/$@" 2>&1) || echo "INSMOD-FAILED $1: $out"
}
loadmod() {
  line=$(grep -E "/($1|$(echo $1 | tr _ -))\.ko:" $K/modules.dep | head -1)
  [ -n "$line" ] || { echo "NO-DEP-LINE $1"; return; }
  for d in ${line#*:}; do load $d; done
  load ${line%%:*}
}
while read name params; do loadmod $name; done < $K/modules.load
echo "MODULES-LOADED $(wc -l < /proc/modules)"
ipvsadm -A -t 10.0.0.1:80 -s rr && ipvsadm -A -u 10.0.0.1:5060 -s mh && ipvsadm -Ln && echo IPVSADM-OK
for f in /sys/bus/pci/devices/*/modalias /sys/bus/virtio/devices/*/modalias; do
  [ -e "$f" ] || continue
  a=$(cat $f)
  while read kw pat mod; do
    [ "$kw" = alias ] || continue
    case "$a" in $pat) loadmod $mod;; esac
  done < $K/modules.alias
  [ -d /sys/bus/virtio/devices ] || sleep 1
done
for f in /sys/bus/virtio/devices/*/modalias; do
  a=$(cat $f)
  while read kw pat mod; do [ "$kw" = alias ] && case "$a" in $pat) loadmod $mod;; esac; done < $K/modules.alias
done
sleep 1
cat /sys/class/block/*/uevent | grep PARTNAME
echo SCRATCH-DONE
poweroff -f
"#;

struct Guest {
    child: Child,
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lvsbox-boot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Boots `q` with ttyS0 into a file; waits until `done` appears (or timeout); returns the log.
fn boot(q: QemuCmd, dir: &Path, done: &[&str], timeout: Duration) -> (String, Option<Duration>) {
    let log = dir.join("ttyS0.log");
    let q = q.serial(Serial::File(log.clone())).no_reboot(true);
    let t0 = Instant::now();
    let child = q.command().stdin(Stdio::null()).stdout(Stdio::null()).spawn().expect("qemu-system-x86_64");
    let _guest = Guest { child };
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if done.iter().any(|d| text.contains(d)) {
            let took = t0.elapsed();
            // Let the lines that follow the marker (e.g. a panic's "Comm:") arrive.
            std::thread::sleep(Duration::from_secs(1));
            return (std::fs::read_to_string(&log).unwrap_or(text), Some(took));
        }
        if t0.elapsed() > timeout {
            return (text, None);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs `image build` artefacts and ~1 min of TCG"]
fn debug_flavour_loads_modules_programs_ipvs_and_sees_the_config_partition() {
    let arts = Artefacts::locate().unwrap();
    let dbg = arts.get(Flavour::Debug).unwrap();
    let dir = scratch("debug");
    let mut t = image::cpio::Tree::new();
    t.file("/scratch-init", 0o755, SCRATCH_INIT.as_bytes().to_vec()).unwrap();
    let mut initrd = Vec::new();
    t.write_newc(0, &mut initrd).unwrap();
    initrd.extend(std::fs::read(&dbg.initramfs).unwrap());
    let initrd_path = dir.join("initrd");
    std::fs::write(&initrd_path, initrd).unwrap();
    let cfg = dir.join("cfg.img");
    image::config_disk("[system]\nhostname = \"lb1\"\n", &cfg).unwrap();
    let q = QemuCmd::direct(&arts.kernel, &initrd_path, &dbg.cmdline)
        .append("rdinit=/scratch-init")
        .unwrap()
        .drive(&cfg, "raw")
        .nic(image::qemu::Nic::user());
    let (log, took) = boot(q, &dir, &["SCRATCH-DONE", "Kernel panic"], Duration::from_secs(240));
    eprintln!("{log}");
    assert!(took.is_some(), "guest did not finish in time");
    assert!(log.contains("SCRATCH-INIT-RAN"), "the kernel did not run our init");
    // Only hardware-specific alternatives may fail (crc32c-intel without SSE4.2).
    for l in log.lines().filter(|l| l.contains("INSMOD-FAILED")) {
        assert!(l.contains("crc32c-intel"), "unexpected module failure: {l}");
    }
    assert!(!log.contains("NO-DEP-LINE"), "modules.load names a module modules.dep lacks");
    assert!(log.contains("IPVSADM-OK"), "ipvsadm could not program IPVS");
    assert!(log.contains("UDP  10.0.0.1:5060 mh"), "mh scheduler service missing");
    assert!(log.contains("PARTNAME=lvsbox-config"), "config partition not visible");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs `image build` artefacts and ~1 min of TCG"]
fn production_disk_boots_under_ovmf_into_our_init() {
    let arts = Artefacts::locate().unwrap();
    let prod = arts.get(Flavour::Production).unwrap();
    let dir = scratch("uefi");
    let q = image::qemu::uefi_flavour(prod, &dir).unwrap();
    // Until init is complete it exits at once (the kernel then names it);
    // a complete init prints lbd's ready line.
    let (log, took) =
        boot(q, &dir, &["Attempted to kill init", lbd::paths::READY_LINE, "Kernel panic"], Duration::from_secs(240));
    eprintln!("{log}");
    assert!(log.contains("BdsDxe: starting"), "OVMF did not start the disk's boot loader");
    assert!(took.is_some(), "no sign of init within the timeout");
    assert!(log.contains(lbd::paths::READY_LINE) || log.contains("Comm: init"), "the kernel did not run our /init");
    assert!(!log.contains("VFS: Unable to mount root"), "initramfs not found by the kernel");
    std::fs::remove_dir_all(&dir).unwrap();
}
