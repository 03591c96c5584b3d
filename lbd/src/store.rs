//! The persisted config: atomic replacement with history.
//!
//! Replacing `lvsbox.toml` goes: write `lvsbox.toml.new` and fsync it; shift
//! the history (`history/lvsbox.toml.N` → `.N+1`, dropping the oldest);
//! hard-link the current file as `history/lvsbox.toml.1`; rename the new file
//! over the current one; fsync both directories. A crash at any point leaves a
//! complete current file (the old or the new one), never none.
//!
//! A pending confirm-or-rollback is recorded in `pending-confirm` next to the
//! config, so a reboot before the operator confirmed rolls back too.

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
            fs::hard_link(&self.file, self.hist(1)).or_else(|_| fs::copy(&self.file, self.hist(1)).map(|_| ()))?;
            sync_dir(&self.history)?;
        }
        fs::rename(&tmp, &self.file)?;
        sync_dir(self.dir())
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
