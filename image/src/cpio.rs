//! A reproducible cpio "newc" archive (the initramfs format), and a reader
//! for checking it.
//!
//! Reproducible means: entries sorted by path, every parent directory present
//! (the kernel does not create missing ones), inode numbers assigned in that
//! order from 1, one fixed mtime, uid/gid 0, no device numbers but those of
//! device nodes.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result, bail, ensure};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// What a path in the archive is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir { perm: u32 },
    File { perm: u32, data: Vec<u8> },
    Symlink { target: String },
    CharDev { perm: u32, major: u32, minor: u32 },
}

/// A file tree to be written as a cpio archive. Paths are absolute-looking
/// (`/bin/lbd`) when added and stored without the leading `/`.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

fn clean(path: &str) -> Result<String> {
    let p = path.trim_matches('/');
    ensure!(!p.is_empty(), "empty path");
    ensure!(p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."), "bad archive path {path}");
    Ok(p.to_string())
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node, creating missing parent directories (mode 0755). Replacing
    /// an existing non-directory is an error (two sources for one path).
    pub fn add(&mut self, path: &str, node: Node) -> Result<()> {
        let p = clean(path)?;
        let mut parent = String::new();
        for comp in p.split('/').collect::<Vec<_>>().split_last().map(|(_, d)| d).unwrap_or(&[]) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(comp);
            match self.nodes.get(&parent) {
                None => {
                    self.nodes.insert(parent.clone(), Node::Dir { perm: 0o755 });
                }
                Some(Node::Dir { .. }) => {}
                Some(_) => bail!("{parent} is not a directory but {p} goes under it"),
            }
        }
        match (self.nodes.get(&p), &node) {
            (Some(Node::Dir { .. }), Node::Dir { .. }) | (None, _) => {}
            (Some(_), _) => bail!("{p} added twice"),
        }
        self.nodes.insert(p, node);
        Ok(())
    }

    pub fn dir(&mut self, path: &str, perm: u32) -> Result<()> {
        self.add(path, Node::Dir { perm })
    }

    pub fn file(&mut self, path: &str, perm: u32, data: Vec<u8>) -> Result<()> {
        self.add(path, Node::File { perm, data })
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.add(path, Node::Symlink { target: target.to_string() })
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path.trim_matches('/'))
    }

    /// Paths (without leading `/`) and nodes, sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// Writes the newc archive (with its trailer) with every mtime = `mtime`.
    pub fn write_newc(&self, mtime: u64, out: &mut impl Write) -> Result<u64> {
        let mut w = Counter { inner: out, n: 0 };
        for (ino, (path, node)) in self.nodes.iter().enumerate() {
            let (mode, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match node {
                Node::Dir { perm } => (S_IFDIR | perm, 2, &[], (0, 0)),
                Node::File { perm, data } => (S_IFREG | perm, 1, data, (0, 0)),
                Node::Symlink { target } => (S_IFLNK | 0o777, 1, target.as_bytes(), (0, 0)),
                Node::CharDev { perm, major, minor } => (S_IFCHR | perm, 1, &[], (*major, *minor)),
            };
            write_entry(&mut w, path, ino as u32 + 1, mode, nlink, mtime, data, rdev)?;
        }
        write_entry(&mut w, "TRAILER!!!", 0, 0, 1, 0, &[], (0, 0))?;
        Ok(w.n)
    }
}

struct Counter<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[allow(clippy::too_many_arguments)]
fn write_entry<W: Write>(
    w: &mut Counter<'_, W>,
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u64,
    data: &[u8],
    rdev: (u32, u32),
) -> Result<()> {
    let size = u32::try_from(data.len()).context("file too big for cpio newc")?;
    let mtime = u32::try_from(mtime).context("mtime out of range")?;
    let namesize = name.len() as u32 + 1;
    let header = format!(
        "070701{ino:08X}{mode:08X}{:08X}{:08X}{nlink:08X}{mtime:08X}{size:08X}{:08X}{:08X}{:08X}{:08X}{namesize:08X}{:08X}",
        0, 0, 0, 0, rdev.0, rdev.1, 0
    );
    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    pad4(w)?;
    w.write_all(data)?;
    pad4(w)?;
    Ok(())
}

fn pad4<W: Write>(w: &mut Counter<'_, W>) -> Result<()> {
    let pad = (4 - (w.n % 4) as usize) % 4;
    w.write_all(&[0u8; 3][..pad])?;
    Ok(())
}

/// One entry read back from a newc archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub rdev: (u32, u32),
    pub data: Vec<u8>,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.mode & 0o170000 == S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.mode & 0o170000 == S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.mode & 0o170000 == S_IFLNK
    }
}

/// Parses a newc archive up to (not including) its trailer.
pub fn read_newc(mut b: &[u8]) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        ensure!(b.len() >= 110, "truncated cpio header at {pos}");
        ensure!(&b[..6] == b"070701", "bad cpio magic at {pos}");
        let field = |i: usize| -> Result<u32> {
            let s = std::str::from_utf8(&b[6 + i * 8..14 + i * 8])?;
            Ok(u32::from_str_radix(s, 16)?)
        };
        let (ino, mode, uid, gid, nlink, mtime, size) =
            (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?, field(5)?, field(6)? as usize);
        let rdev = (field(9)?, field(10)?);
        let namesize = field(11)? as usize;
        ensure!(namesize >= 1 && b.len() >= 110 + namesize, "truncated cpio name at {pos}");
        let name = std::str::from_utf8(&b[110..110 + namesize - 1])?.to_string();
        let data_start = (110 + namesize).next_multiple_of(4);
        let data_end = data_start + size;
        ensure!(b.len() >= data_end, "truncated cpio data for {name}");
        if name == "TRAILER!!!" {
            return Ok(out);
        }
        let data = b[data_start..data_end].to_vec();
        out.push(Entry { name, ino, mode, uid, gid, nlink, mtime, rdev, data });
        let next = data_end.next_multiple_of(4).min(b.len());
        pos += next;
        b = &b[next..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tree {
        let mut t = Tree::new();
        t.file("/init", 0o755, b"#!init".to_vec()).unwrap();
        t.file("/lib/modules/6.1/kernel/net/ip_vs.ko", 0o644, vec![1, 2, 3]).unwrap();
        t.dir("/tmp", 0o1777).unwrap();
        t.symlink("/bin/sh", "busybox").unwrap();
        t.add("/dev/console", Node::CharDev { perm: 0o600, major: 5, minor: 1 }).unwrap();
        t.file("/etc/a.b", 0o644, b"x".to_vec()).unwrap();
        t
    }

    #[test]
    fn roundtrip_with_parents_sorted_and_fixed_metadata() {
        let mut buf = Vec::new();
        let n = sample().write_newc(1_700_000_000, &mut buf).unwrap();
        assert_eq!(n as usize, buf.len());
        assert_eq!(buf.len() % 4, 0);
        let entries = read_newc(&buf).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/sh",
                "dev",
                "dev/console",
                "etc",
                "etc/a.b",
                "init",
                "lib",
                "lib/modules",
                "lib/modules/6.1",
                "lib/modules/6.1/kernel",
                "lib/modules/6.1/kernel/net",
                "lib/modules/6.1/kernel/net/ip_vs.ko",
                "tmp"
            ]
        );
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.ino as usize, i + 1);
            assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 1_700_000_000));
        }
        let get = |n: &str| entries.iter().find(|e| e.name == n).unwrap();
        assert!(get("lib/modules").is_dir());
        assert_eq!(get("lib").mode, 0o040755);
        assert_eq!(get("tmp").mode, 0o041777);
        assert_eq!(get("init").mode, 0o100755);
        assert_eq!(get("init").data, b"#!init");
        assert!(get("bin/sh").is_symlink());
        assert_eq!(get("bin/sh").data, b"busybox");
        assert_eq!(get("dev/console").rdev, (5, 1));
        assert_eq!(get("lib/modules/6.1/kernel/net/ip_vs.ko").data, [1, 2, 3]);
    }

    #[test]
    fn same_tree_same_bytes_whatever_the_insertion_order() {
        let mut a = Vec::new();
        sample().write_newc(1, &mut a).unwrap();
        let mut t = Tree::new();
        t.file("/etc/a.b", 0o644, b"x".to_vec()).unwrap();
        t.add("/dev/console", Node::CharDev { perm: 0o600, major: 5, minor: 1 }).unwrap();
        t.symlink("/bin/sh", "busybox").unwrap();
        t.dir("/tmp", 0o1777).unwrap();
        t.file("/lib/modules/6.1/kernel/net/ip_vs.ko", 0o644, vec![1, 2, 3]).unwrap();
        t.file("/init", 0o755, b"#!init".to_vec()).unwrap();
        let mut b = Vec::new();
        t.write_newc(1, &mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_conflicts_and_bad_paths() {
        let mut t = sample();
        assert!(t.file("/init", 0o755, vec![]).is_err());
        assert!(t.file("/init/x", 0o644, vec![]).is_err());
        assert!(t.file("/a/../b", 0o644, vec![]).is_err());
        assert!(t.file("/", 0o644, vec![]).is_err());
        // Re-adding a directory (e.g. with other permissions) is fine.
        t.dir("/tmp", 0o755).unwrap();
    }

    #[test]
    fn gnu_cpio_lists_our_archive() {
        let mut buf = Vec::new();
        sample().write_newc(1, &mut buf).unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("GNU cpio (Debian package cpio) is needed for this test");
        child.stdin.take().unwrap().write_all(&buf).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let listed = String::from_utf8(out.stdout).unwrap();
        assert_eq!(listed.lines().count(), 14);
        assert!(listed.lines().any(|l| l == "lib/modules/6.1/kernel/net/ip_vs.ko"));
    }
}
