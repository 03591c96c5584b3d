//! Peers inside guests: Debian's keepalived (and anything else installed on
//! the host) added to the debug initramfs as an extra cpio archive. The kernel
//! unpacks concatenated archives in order, so `debug.cpio.zst + overlay.cpio`
//! boots the debug image with the extra files on top.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Host binaries whose files (and shared libraries) a keepalived peer needs.
pub const KEEPALIVED: &[&str] = &["/usr/sbin/keepalived"];

/// The shared libraries `bin` needs (absolute paths, resolved by `ldd`),
/// including the loader.
fn libs(bin: &str) -> Result<BTreeSet<String>> {
    let out = Command::new("ldd").arg(bin).output().context("ldd")?;
    if !out.status.success() {
        bail!("ldd {bin}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut v = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libfoo.so.1 => /lib/x86_64-linux-gnu/libfoo.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, r)) => r.split_whitespace().next().unwrap_or(""),
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path.starts_with('/') {
            v.insert(path.to_string());
        }
    }
    Ok(v)
}

/// Writes a newc cpio of `files` (host paths, stored at the same path in the
/// guest, symlinks followed) plus the directories they need.
fn write_cpio(files: &BTreeSet<String>, extra: &[(&str, &[u8])], out: &Path) -> Result<()> {
    let stage = out.with_extension("stage");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage)?;
    for f in files {
        let dest = stage.join(f.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().context("parent")?)?;
        std::fs::copy(f, &dest).with_context(|| format!("copy {f}"))?;
    }
    for (path, data) in extra {
        let dest = stage.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().context("parent")?)?;
        std::fs::write(&dest, data)?;
    }
    // GNU cpio from the host (Debian package cpio), newc format, root-owned.
    let list = Command::new("sh")
        .arg("-c")
        .arg("find . -mindepth 1 | sort | cpio --quiet -o -H newc -R 0:0")
        .current_dir(&stage)
        .output()
        .context("cpio")?;
    if !list.status.success() {
        bail!("cpio: {}", String::from_utf8_lossy(&list.stderr));
    }
    std::fs::write(out, list.stdout)?;
    std::fs::remove_dir_all(&stage)?;
    Ok(())
}

/// A debug initramfs with `bins` (and their libraries) and `extra` files on
/// top, written to `dir/peer.cpio`; returns its path (for `GuestSpec::initrd`).
pub fn overlay_initrd(dir: &Path, bins: &[&str], extra: &[(&str, &[u8])]) -> Result<PathBuf> {
    let arts = image::Artefacts::locate()?;
    let base = &arts.get(image::Flavour::Debug)?.initramfs;
    let mut files = BTreeSet::new();
    for b in bins {
        if !Path::new(b).exists() {
            bail!("{b} is not installed on this host (tests/setup installs it)");
        }
        files.insert(b.to_string());
        files.extend(libs(b)?);
    }
    std::fs::create_dir_all(dir)?;
    let overlay = dir.join("overlay.cpio");
    write_cpio(&files, extra, &overlay)?;
    let out = dir.join("peer.cpio");
    let mut data = std::fs::read(base)?;
    // Archives are concatenated on 4-byte boundaries.
    while data.len() % 4 != 0 {
        data.push(0);
    }
    data.extend(std::fs::read(&overlay)?);
    std::fs::write(&out, data)?;
    Ok(out)
}

/// An initramfs for a guest that runs Debian's keepalived (debug image +
/// keepalived and its libraries + `/etc/keepalived/keepalived.conf`).
pub fn keepalived_initrd(dir: &Path, conf: &str) -> Result<PathBuf> {
    overlay_initrd(dir, KEEPALIVED, &[("/etc/keepalived/keepalived.conf", conf.as_bytes())])
}
