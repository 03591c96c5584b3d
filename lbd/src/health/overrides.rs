//! The operator's overrides (disable / drain), persisted next to the config
//! as `lvsbox-overrides.json`: written to a temporary file, fsynced, renamed
//! over, directory fsynced, so a crash leaves the old or the new set. They
//! survive restarts and config applies; an override of a real the config no
//! longer has is kept (it applies again if the real comes back) and shown.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::overlay::{Override, RealId};

/// One record of the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    service: String,
    real: String,
    mode: Override,
}

/// Where the overrides live.
#[derive(Clone, Debug)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The overrides file next to `config`.
    pub fn next_to(config: &Path) -> Store {
        Store { path: config.parent().unwrap_or(Path::new(".")).join("lvsbox-overrides.json") }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the overrides (none when the file is missing; an unreadable file
    /// is reported and treated as empty).
    pub fn load(&self) -> Result<BTreeMap<RealId, Override>, String> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(format!("{}: {e}", self.path.display())),
        };
        let v: Vec<Entry> = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok(v.into_iter().map(|e| ((e.service, e.real), e.mode)).collect())
    }

    /// Replaces the file with `all`, atomically and durably.
    pub fn save(&self, all: &BTreeMap<RealId, Override>) -> io::Result<()> {
        let v: Vec<Entry> =
            all.iter().map(|((s, r), m)| Entry { service: s.clone(), real: r.clone(), mode: *m }).collect();
        let tmp = self.path.with_extension("json.new");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(serde_json::to_string_pretty(&v).map_err(io::Error::other)?.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        File::open(self.path.parent().unwrap_or(Path::new(".")))?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let d = std::env::temp_dir().join(format!("lbd-overrides-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let s = Store::next_to(&d.join("lvsbox.toml"));
        assert!(s.load().unwrap().is_empty());
        let mut m = BTreeMap::new();
        m.insert(("TCP 10.0.0.1:80".to_string(), "10.0.1.1:80".to_string()), Override::Drain);
        m.insert(("FWM 7".to_string(), "10.0.1.2:0".to_string()), Override::Disable);
        s.save(&m).unwrap();
        assert_eq!(s.load().unwrap(), m);
        assert!(!d.join("lvsbox-overrides.json.new").exists());
        fs::write(s.path(), "garbage").unwrap();
        assert!(s.load().is_err());
        fs::remove_dir_all(&d).unwrap();
    }
}
