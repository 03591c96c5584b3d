//! Fetching pinned Debian packages with `apt-get download` into a cache,
//! verifying their SHA256 and extracting them with `dpkg-deb -x`. Nothing is
//! installed on the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::pins::Pin;
use crate::util::{run, sha256_file};

/// The file name `apt-get download` gives a package (`:` is escaped as `%3a`).
pub fn deb_file_name(pin: &Pin) -> String {
    format!("{}_{}_amd64.deb", pin.package, pin.version.replace(':', "%3a"))
}

/// Returns the cached `.deb` for `pin`, downloading it first if needed.
/// A cached or downloaded file whose SHA256 differs from the pin is deleted
/// and the build stops.
pub fn fetch(pin: &Pin, cache: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(cache)?;
    let path = cache.join(deb_file_name(pin));
    if !path.exists() {
        eprintln!("  fetching {}={} (apt-get download)", pin.package, pin.version);
        run(
            Command::new("apt-get")
                .args(["download", "-q", &format!("{}={}", pin.package, pin.version)])
                .current_dir(cache),
            "apt",
        )
        .with_context(|| {
            format!(
                "apt-get download {}={} failed (run `apt-get update`; a pinned version that left the mirror \
                 needs a new pin in image/pins.toml)",
                pin.package, pin.version
            )
        })?;
        if !path.exists() {
            bail!("apt-get download did not produce {}", path.display());
        }
    }
    let got = sha256_file(&path)?;
    if got != pin.sha256 {
        std::fs::remove_file(&path)?;
        bail!("{}: SHA256 {got} does not match the pin {} (file deleted)", path.display(), pin.sha256);
    }
    Ok(path)
}

/// Extracts a `.deb` into `dest` (once: a completed extraction is reused).
pub fn extract(deb: &Path, dest: &Path) -> Result<()> {
    let stamp = dest.join(".lvsbox-extracted");
    if stamp.exists() {
        return Ok(());
    }
    let tmp = dest.with_extension("partial");
    crate::util::remove_dir_all_if_exists(&tmp)?;
    crate::util::remove_dir_all_if_exists(dest)?;
    std::fs::create_dir_all(&tmp)?;
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tmp), "dpkg")
        .with_context(|| format!("extracting {}", deb.display()))?;
    std::fs::write(tmp.join(".lvsbox-extracted"), deb.file_name().context("deb name")?.as_encoded_bytes())?;
    std::fs::rename(&tmp, dest)?;
    Ok(())
}

/// Fetches and extracts a package; returns the extraction root.
pub fn fetch_and_extract(pin: &Pin, cache: &Path) -> Result<PathBuf> {
    let deb = fetch(pin, cache)?;
    let dest = cache.join(format!("{}_{}", pin.package, pin.version.replace(':', "%3a")));
    extract(&deb, &dest)?;
    Ok(dest)
}

/// Resolves `path` (absolute, as seen inside the package) within `root`,
/// following symlinks (absolute ones relative to `root`). Returns the host
/// path of the final regular file, or None.
pub fn resolve_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    let mut current = path.trim_start_matches('/').to_string();
    for _ in 0..40 {
        let host = root.join(&current);
        let meta = std::fs::symlink_metadata(&host).ok()?;
        if !meta.file_type().is_symlink() {
            return meta.is_file().then_some(host);
        }
        let target = std::fs::read_link(&host).ok()?;
        let target = target.to_str()?;
        current = if let Some(abs) = target.strip_prefix('/') {
            abs.to_string()
        } else {
            let parent = Path::new(&current).parent().map(|p| p.to_string_lossy().to_string()).unwrap_or_default();
            normalise_path(&format!("{parent}/{target}"))
        };
    }
    None
}

fn normalise_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb_names_escape_the_epoch() {
        let pin = Pin { package: "ipvsadm".into(), version: "1:1.31-1+b1".into(), sha256: String::new() };
        assert_eq!(deb_file_name(&pin), "ipvsadm_1%3a1.31-1+b1_amd64.deb");
    }

    #[test]
    fn resolves_symlinks_inside_the_root() {
        let root = std::env::temp_dir().join(format!("lvsbox-deb-{}", std::process::id()));
        std::fs::create_dir_all(root.join("lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(root.join("lib64")).unwrap();
        std::fs::write(root.join("lib/x86_64-linux-gnu/ld-2.36.so"), b"ld").unwrap();
        std::os::unix::fs::symlink("ld-2.36.so", root.join("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")).unwrap();
        std::os::unix::fs::symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", root.join("lib64/ld.so")).unwrap();
        std::os::unix::fs::symlink("../lib/./x86_64-linux-gnu/ld-2.36.so", root.join("lib64/rel.so")).unwrap();
        let want = Some(root.join("lib/x86_64-linux-gnu/ld-2.36.so"));
        assert_eq!(resolve_in_root(&root, "/lib64/ld.so"), want);
        assert_eq!(resolve_in_root(&root, "/lib64/rel.so"), want);
        assert_eq!(resolve_in_root(&root, "/lib64/missing.so"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
