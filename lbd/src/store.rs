//! The persisted config: atomic replacement with history.
//!
//! Replacing `lvsbox.toml` goes: write `lvsbox.toml.new` and fsync it; shift
//! the history (`history/lvsbox.toml.N` → `.N+1`, dropping the oldest);
//! hard-link the current file as `history/lvsbox.toml.1`; rename the new file
//! over the current one; fsync the config directory. A crash at any point
//! leaves a complete current file (the old or the new one), never none; at
//! worst the newest history entry is lost.
//!
//! A pending confirm-or-rollback is recorded in `pending-confirm` next to the
//! config, so a reboot before the operator confirmed rolls back too.
//!
//! Small edits (a real server's weight) are made durable by appending a
//! checksummed record to `lvsbox.toml.edits` and fsyncing it: rewriting a
//! 10,000-service file for each one costs 100+ ms on a slow disk. The config is
//! always the file with the journal's edits applied on top; lbd folds the
//! journal into the file (an atomic rewrite, then the journal is emptied) a
//! few seconds after the last edit and at every full apply. Each record sets a
//! final value, so applying one twice (a crash between the rewrite and the
//! truncation) changes nothing. A torn last record (a crash mid-append) fails
//! its checksum and is ignored: that edit was never acknowledged.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the config lives.
#[derive(Clone, Debug)]
pub struct Store {
    file: PathBuf,
    history: PathBuf,
    keep: usize,
}

/// A version kept in the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// 1 = the previous config, 2 = the one before, ...
    pub n: usize,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

/// A small edit kept in the journal until it is folded into the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "snake_case")]
pub enum Edit {
    /// `services[service].reals[real].weight = weight` (selectors as `lbd ctl weight` takes them).
    Weight {
        /// Service selector.
        service: String,
        /// Real server selector.
        real: String,
        /// New weight.
        weight: u32,
    },
}

/// CRC-32 (IEEE), to detect a torn journal record.
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

/// A confirm-or-rollback in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Wall-clock deadline, seconds since the epoch.
    pub deadline: u64,
    /// The config text to go back to.
    pub previous: String,
}

impl Store {
    /// A store for `file`, keeping `keep` old versions in `history`.
    pub fn new(file: impl Into<PathBuf>, history: impl Into<PathBuf>, keep: usize) -> Self {
        Store { file: file.into(), history: history.into(), keep }
    }

    /// The config file path.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Reads the current config text; `Ok(None)` when there is none yet.
    pub fn read(&self) -> io::Result<Option<String>> {
        match fs::read_to_string(&self.file) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn hist(&self, n: usize) -> PathBuf {
        let name = self.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "config".into());
        self.history.join(format!("{name}.{n}"))
    }

    fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("."))
    }

    /// Atomically replaces the config with `text`, keeping the old one in history.
    pub fn persist(&self, text: &str) -> io::Result<()> {
        let tmp = self.file.with_extension("toml.new");
        {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        if self.file.exists() && self.keep > 0 {
            fs::create_dir_all(&self.history)?;
            let _ = fs::remove_file(self.hist(self.keep));
            for n in (1..self.keep).rev() {
                let from = self.hist(n);
                if from.exists() {
                    fs::rename(&from, self.hist(n + 1))?;
                }
            }
            // Not synced on its own: the rename below syncs the config
            // directory; a crash may lose only the newest history entry.
            fs::hard_link(&self.file, self.hist(1)).or_else(|_| fs::copy(&self.file, self.hist(1)).map(|_| ()))?;
        }
        fs::rename(&tmp, &self.file)?;
        sync_dir(self.dir())?;
        // The new text supersedes any journalled edit (it was built with them).
        self.clear_edits()
    }

    fn journal(&self) -> PathBuf {
        self.file.with_extension("toml.edits")
    }

    /// Makes one edit durable: appends it to the journal and fsyncs.
    pub fn append(&self, e: &Edit) -> io::Result<()> {
        let path = self.journal();
        let created = !path.exists();
        let json = serde_json::to_string(e).map_err(io::Error::other)?;
        let line = format!("{json} {:08x}\n", crc32(json.as_bytes()));
        let mut f = OpenOptions::new().append(true).create(true).open(&path)?;
        f.write_all(line.as_bytes())?;
        f.sync_data()?;
        if created {
            sync_dir(self.dir())?;
        }
        Ok(())
    }

    /// The journalled edits, oldest first (records that fail their checksum
    /// are skipped).
    pub fn edits(&self) -> Vec<Edit> {
        let Ok(text) = fs::read_to_string(self.journal()) else { return Vec::new() };
        text.lines()
            .filter_map(|l| {
                let (json, crc) = l.rsplit_once(' ')?;
                (u32::from_str_radix(crc, 16).ok()? == crc32(json.as_bytes())).then_some(())?;
                serde_json::from_str(json).ok()
            })
            .collect()
    }

    /// Empties the journal (after its edits are in the file).
    pub fn clear_edits(&self) -> io::Result<()> {
        match fs::remove_file(self.journal()) {
            Ok(()) => sync_dir(self.dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The kept versions, newest first.
    pub fn history(&self) -> Vec<Version> {
        (1..=self.keep)
            .filter_map(|n| {
                let m = fs::metadata(self.hist(n)).ok()?;
                let mtime =
                    m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
                Some(Version { n, size: m.len(), mtime })
            })
            .collect()
    }

    /// The text of history version `n`.
    pub fn version(&self, n: usize) -> io::Result<String> {
        fs::read_to_string(self.hist(n))
    }

    fn pending_path(&self) -> PathBuf {
        self.dir().join("pending-confirm.json")
    }

    /// Records a pending confirmation (durably).
    pub fn set_pending(&self, p: &Pending) -> io::Result<()> {
        let path = self.pending_path();
        let tmp = path.with_extension("new");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(serde_json::to_string(p).map_err(io::Error::other)?.as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        sync_dir(self.dir())
    }

    /// The pending confirmation, if any.
    pub fn pending(&self) -> Option<Pending> {
        let s = fs::read_to_string(self.pending_path()).ok()?;
        serde_json::from_str(&s).ok()
    }

    /// Forgets the pending confirmation.
    pub fn clear_pending(&self) -> io::Result<()> {
        match fs::remove_file(self.pending_path()) {
            Ok(()) => sync_dir(self.dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn sync_dir(d: &Path) -> io::Result<()> {
    File::open(d)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lbd-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn persist_keeps_history_bounded() {
        let d = tmpdir("hist");
        let s = Store::new(d.join("lvsbox.toml"), d.join("history"), 3);
        assert_eq!(s.read().unwrap(), None);
        for i in 0..6 {
            s.persist(&format!("# v{i}\n")).unwrap();
        }
        assert_eq!(s.read().unwrap().unwrap(), "# v5\n");
        let h = s.history();
        assert_eq!(h.iter().map(|v| v.n).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(s.version(1).unwrap(), "# v4\n");
        assert_eq!(s.version(3).unwrap(), "# v2\n");
        assert!(!d.join("lvsbox.toml.new").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn journal_survives_torn_records_and_full_persists_clear_it() {
        let d = tmpdir("journal");
        let s = Store::new(d.join("lvsbox.toml"), d.join("history"), 3);
        s.persist("x = 1\n").unwrap();
        let e1 = Edit::Weight { service: "web".into(), real: "10.0.0.1".into(), weight: 0 };
        let e2 = Edit::Weight { service: "web".into(), real: "10.0.0.2".into(), weight: 7 };
        s.append(&e1).unwrap();
        s.append(&e2).unwrap();
        assert_eq!(s.edits(), vec![e1.clone(), e2.clone()]);
        // A crash mid-append leaves a torn last line: it is ignored.
        let mut f = OpenOptions::new().append(true).open(d.join("lvsbox.toml.edits")).unwrap();
        f.write_all(b"{\"edit\":\"weight\",\"service\":\"web\",\"rea").unwrap();
        assert_eq!(s.edits(), vec![e1, e2]);
        // A flipped byte fails the checksum.
        let j = fs::read_to_string(d.join("lvsbox.toml.edits")).unwrap().replacen(":7", ":8", 1);
        fs::write(d.join("lvsbox.toml.edits"), j).unwrap();
        assert_eq!(s.edits().len(), 1);
        s.persist("x = 2\n").unwrap();
        assert!(s.edits().is_empty());
        assert!(!d.join("lvsbox.toml.edits").exists());
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn pending_round_trip() {
        let d = tmpdir("pending");
        let s = Store::new(d.join("lvsbox.toml"), d.join("history"), 3);
        assert_eq!(s.pending(), None);
        let p = Pending { deadline: 42, previous: "x = 1\n".into() };
        s.set_pending(&p).unwrap();
        assert_eq!(s.pending(), Some(p));
        s.clear_pending().unwrap();
        assert_eq!(s.pending(), None);
        s.clear_pending().unwrap();
        fs::remove_dir_all(&d).unwrap();
    }
}
