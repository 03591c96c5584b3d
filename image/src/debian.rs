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

/// Where a verified `.deb` is also kept outside the work tree, so that a fresh
/// clone on the same machine (CI runs in one) builds without the network:
/// `$LVSBOX_DEB_CACHE`, else `/var/cache/lvsbox/debs`.
pub fn machine_cache() -> PathBuf {
    std::env::var_os("LVSBOX_DEB_CACHE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/cache/lvsbox/debs"))
}

/// Directories searched for a pinned `.deb` before downloading: the machine
/// cache and apt's own archive. Only a file with the pinned SHA256 is taken.
fn local_sources() -> Vec<PathBuf> {
    vec![machine_cache(), PathBuf::from("/var/cache/apt/archives")]
}

/// How many times `apt-get download` is tried, and the pause before each retry
/// (a mirror or resolver hiccup should not fail a whole CI run). Before the
/// first retry the package lists are refreshed (`apt-get update`), which also
/// covers lists older than the pin.
const RETRY_PAUSES_S: [u64; 3] = [5, 20, 60];

/// Returns the cached `.deb` for `pin`: from `cache`, else from a local
/// source (see [`local_sources`]), else downloaded with `apt-get download`.
/// A file whose SHA256 differs from the pin is never used; a downloaded one
/// that differs is deleted and the build stops.
pub fn fetch(pin: &Pin, cache: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(cache)?;
    let name = deb_file_name(pin);
    let path = cache.join(&name);
    if !path.exists() {
        if let Some(local) = local_sources().into_iter().map(|d| d.join(&name)).find(|p| matches_pin(p, pin)) {
            eprintln!("  using {}", local.display());
            copy_atomic(&local, &path)?;
        } else {
            download(pin, cache)?;
            if !path.exists() {
                bail!("apt-get download did not produce {}", path.display());
            }
        }
    }
    let got = sha256_file(&path)?;
    if got != pin.sha256 {
        std::fs::remove_file(&path)?;
        bail!("{}: SHA256 {got} does not match the pin {} (file deleted)", path.display(), pin.sha256);
    }
    // Best effort: keep a copy for later clones on this machine.
    let keep = machine_cache().join(&name);
    if !matches_pin(&keep, pin)
        && let Err(e) = std::fs::create_dir_all(machine_cache())
            .map_err(anyhow::Error::from)
            .and_then(|()| copy_atomic(&path, &keep))
    {
        eprintln!("  note: cannot keep a copy in {}: {e:#}", machine_cache().display());
    }
    Ok(path)
}

fn matches_pin(path: &Path, pin: &Pin) -> bool {
    path.is_file() && sha256_file(path).is_ok_and(|h| h == pin.sha256)
}

/// Copies through a temporary name and renames, so a half-copied file is never
/// taken for a package.
fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension("deb.partial");
    std::fs::copy(from, &tmp).with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, to)?;
    Ok(())
}

fn download(pin: &Pin, cache: &Path) -> Result<()> {
    let spec = format!("{}={}", pin.package, pin.version);
    let mut attempt = 0;
    loop {
        eprintln!("  fetching {spec} (apt-get download)");
        let res = run(Command::new("apt-get").args(["download", "-q", &spec]).current_dir(cache), "apt");
        let Err(e) = res else { return Ok(()) };
        let Some(&pause) = RETRY_PAUSES_S.get(attempt) else {
            return Err(e).with_context(|| {
                format!(
                    "apt-get download {spec} failed {} times (is the Debian mirror reachable? a pinned version \
                     that left the mirror needs a new pin in image/pins.toml)",
                    RETRY_PAUSES_S.len() + 1
                )
            });
        };
        eprintln!("  apt-get download failed ({e:#}); retrying in {pause} s");
        if attempt == 0 {
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        }
        std::thread::sleep(std::time::Duration::from_secs(pause));
        attempt += 1;
    }
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
