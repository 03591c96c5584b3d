//! Small helpers: running host tools, hashing, sizes, sparse copies.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// Runs a command, failing with its stderr when it fails or cannot start
/// (naming the Debian package to install).
pub fn run(cmd: &mut Command, package: &str) -> Result<Vec<u8>> {
    let prog = cmd.get_program().to_string_lossy().to_string();
    let out = cmd.output().with_context(|| format!("cannot run {prog} (install the Debian package `{package}`)"))?;
    if !out.status.success() {
        bail!(
            "{prog} failed ({}): {:?}\n{}{}",
            out.status,
            cmd.get_args().collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// Hex SHA256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `12.3 MiB`-style size.
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// Copies `src` into `dst` at `offset`, skipping all-zero blocks so `dst`
/// stays sparse (its length must already cover the range).
pub fn copy_sparse_into(src: &Path, dst: &mut File, offset: u64) -> Result<()> {
    let mut f = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let mut buf = vec![0u8; 64 * 1024];
    let zeros = vec![0u8; 64 * 1024];
    let mut pos = 0u64;
    loop {
        let mut n = 0;
        while n < buf.len() {
            let k = f.read(&mut buf[n..])?;
            if k == 0 {
                break;
            }
            n += k;
        }
        if n == 0 {
            break;
        }
        // Slice equality is a memcmp, fast even in unoptimised test builds.
        if buf[..n] != zeros[..n] {
            dst.seek(SeekFrom::Start(offset + pos))?;
            dst.write_all(&buf[..n])?;
        }
        pos += n as u64;
    }
    Ok(())
}

/// A sparse copy of a whole file.
pub fn copy_sparse(src: &Path, dst: &Path) -> Result<()> {
    let len = std::fs::metadata(src)?.len();
    let mut out = File::create(dst).with_context(|| format!("creating {}", dst.display()))?;
    out.set_len(len)?;
    copy_sparse_into(src, &mut out, 0)
}

/// Sets a file's mtime (and atime) to `epoch` seconds.
pub fn set_mtime(path: &Path, epoch: u64) -> Result<()> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    let f = File::options().write(true).open(path).or_else(|_| File::open(path))?;
    f.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t))?;
    Ok(())
}

/// Removes a directory tree if it exists.
pub fn remove_dir_all_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_copy_preserves_content_and_holes() {
        let dir = std::env::temp_dir().join(format!("lvsbox-util-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("src");
        let mut data = vec![0u8; 1 << 20];
        data[5] = 1;
        data[(1 << 20) - 1] = 2;
        std::fs::write(&src, &data).unwrap();
        let dst = dir.join("dst");
        copy_sparse(&src, &dst).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), data);
        use std::os::unix::fs::MetadataExt;
        assert!(std::fs::metadata(&dst).unwrap().blocks() * 512 < 1 << 20, "holes kept");
        assert_eq!(sha256_file(&src).unwrap(), sha256_file(&dst).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
