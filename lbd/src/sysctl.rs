//! Kernel parameters (`/proc/sys`) that the config controls.
//!
//! [`from_config`] is pure: it computes the `(key, value)` pairs a [`Config`]
//! asks for. [`apply`] writes them one by one and reports each key's outcome,
//! so one missing knob (e.g. `net.ipv4.vs.*` before `ip_vs` is loaded) does not
//! stop the others. init uses both at boot; lbd reuses them when an operator
//! applies a changed config.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// Where sysctls live.
pub const PROC_SYS: &str = "/proc/sys";

/// One kernel parameter and the value to give it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sysctl {
    /// Dotted name as `sysctl(8)` spells it: `net.ipv4.ip_forward`. A key that
    /// contains `/` is taken as a path below `/proc/sys` as is (for names with
    /// dots in them, e.g. `net/ipv4/conf/eth0.100/rp_filter`).
    pub key: String,
    /// Value as written to the file (without the newline).
    pub value: String,
}

impl Sysctl {
    /// A key and its value.
    pub fn new(key: impl Into<String>, value: impl ToString) -> Self {
        Sysctl { key: key.into(), value: value.to_string() }
    }

    /// The file below `/proc/sys` (relative).
    pub fn rel_path(&self) -> PathBuf {
        if self.key.contains('/') { PathBuf::from(&self.key) } else { PathBuf::from(self.key.replace('.', "/")) }
    }
}

/// The sysctls a config asks for, in the order they should be written:
/// `net.ipv4.ip_forward` (always: the config says on or off), then every
/// `net.ipv4.vs.*` knob the config sets (they exist only once `ip_vs` is loaded).
pub fn from_config(cfg: &Config) -> Vec<Sysctl> {
    let mut out = vec![Sysctl::new("net.ipv4.ip_forward", u8::from(cfg.system.ip_forward))];
    for (name, value) in cfg.ipvs.sysctl.entries() {
        out.push(Sysctl::new(format!("net.ipv4.vs.{name}"), value));
    }
    // NAT FTP: the kernel's helper rewrites PASV replies through conntrack.
    if cfg.ipvs.sysctl.conntrack.is_none() && crate::fwmark::config::helper_ports(cfg).is_some() {
        out.push(Sysctl::new("net.ipv4.vs.conntrack", 1));
    }
    out
}

/// What happened to one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Written; it was `previous` before.
    Set {
        /// The value read before writing (empty when it could not be read).
        previous: String,
    },
    /// Already had the value; nothing written.
    Unchanged,
    /// Could not be written.
    Failed {
        /// Why, with the kernel's error.
        error: String,
    },
}

/// The outcome of one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlResult {
    /// The key.
    pub key: String,
    /// The value that was asked for.
    pub value: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl SysctlResult {
    /// Whether the key failed.
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed { .. })
    }
}

impl std::fmt::Display for SysctlResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Outcome::Set { previous } => write!(f, "{} = {} (was {})", self.key, self.value, previous),
            Outcome::Unchanged => write!(f, "{} = {} (unchanged)", self.key, self.value),
            Outcome::Failed { error } => write!(f, "{} = {}: {}", self.key, self.value, error),
        }
    }
}

/// Writes every entry below `/proc/sys`; see [`apply_at`].
pub fn apply(entries: &[Sysctl]) -> Vec<SysctlResult> {
    apply_at(Path::new(PROC_SYS), entries)
}

/// Writes every entry below `root`, skipping keys that already hold the value.
/// Never creates files: a missing key is reported (`no such key`), not made.
pub fn apply_at(root: &Path, entries: &[Sysctl]) -> Vec<SysctlResult> {
    entries
        .iter()
        .map(|e| SysctlResult { key: e.key.clone(), value: e.value.clone(), outcome: write_one(root, e) })
        .collect()
}

/// Reads a key's current value (whitespace-trimmed).
pub fn read_at(root: &Path, key: &str) -> io::Result<String> {
    let s = Sysctl::new(key, "");
    Ok(std::fs::read_to_string(root.join(s.rel_path()))?.trim().to_string())
}

/// Tabs and runs of spaces compare equal (`/proc/sys/kernel/printk` reads back
/// tab-separated).
fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn write_one(root: &Path, e: &Sysctl) -> Outcome {
    let path = root.join(e.rel_path());
    if path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Outcome::Failed { error: "key may not contain `..`".into() };
    }
    let previous = match std::fs::read_to_string(&path) {
        Ok(v) => v,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Outcome::Failed { error: format!("no such key ({} does not exist)", path.display()) };
        }
        // Some keys are write-only; try the write anyway.
        Err(_) => String::new(),
    };
    if !previous.is_empty() && normalize(&previous) == normalize(&e.value) {
        return Outcome::Unchanged;
    }
    let res = OpenOptions::new().write(true).create(false).truncate(false).open(&path).and_then(|mut f| {
        let mut v = e.value.clone();
        v.push('\n');
        f.write_all(v.as_bytes())
    });
    match res {
        Ok(()) => Outcome::Set { previous: normalize(&previous) },
        Err(err) => Outcome::Failed { error: err.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_sets_only_ip_forward() {
        let c = Config::default();
        assert_eq!(from_config(&c), vec![Sysctl::new("net.ipv4.ip_forward", "1")]);
    }

    #[test]
    fn config_knobs_become_vs_keys_in_order() {
        let mut c = Config::default();
        c.system.ip_forward = false;
        c.ipvs.sysctl.expire_nodest_conn = Some(true);
        c.ipvs.sysctl.conn_reuse_mode = Some(2);
        c.ipvs.sysctl.sloppy_tcp = Some(false);
        let got = from_config(&c);
        assert_eq!(
            got,
            vec![
                Sysctl::new("net.ipv4.ip_forward", "0"),
                Sysctl::new("net.ipv4.vs.expire_nodest_conn", "1"),
                Sysctl::new("net.ipv4.vs.conn_reuse_mode", "2"),
                Sysctl::new("net.ipv4.vs.sloppy_tcp", "0"),
            ]
        );
        assert_eq!(got[1].rel_path(), PathBuf::from("net/ipv4/vs/expire_nodest_conn"));
    }

    #[test]
    fn parsed_config_knobs() {
        let c = crate::config::parse(
            "[system]\nip_forward = false\n[ipvs.sysctl]\nschedule_icmp = true\npmtu_disc = false\n",
            "t.toml",
        )
        .unwrap();
        let keys: Vec<String> = from_config(&c).into_iter().map(|s| format!("{}={}", s.key, s.value)).collect();
        assert_eq!(keys, ["net.ipv4.ip_forward=0", "net.ipv4.vs.schedule_icmp=1", "net.ipv4.vs.pmtu_disc=0"]);
    }

    #[test]
    fn slash_keys_are_paths() {
        assert_eq!(
            Sysctl::new("net/ipv4/conf/eth0.100/rp_filter", 1).rel_path(),
            PathBuf::from("net/ipv4/conf/eth0.100/rp_filter")
        );
    }

    fn tmp_root(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lbd-sysctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("net/ipv4")).unwrap();
        d
    }

    #[test]
    fn writer_reports_each_key() {
        let root = tmp_root("w");
        std::fs::write(root.join("net/ipv4/ip_forward"), "0\n").unwrap();
        std::fs::write(root.join("kernel_printk"), "4\t4\t1\t7\n").unwrap();
        let entries = [
            Sysctl::new("net.ipv4.ip_forward", 1),
            Sysctl::new("net.ipv4.vs.sloppy_tcp", 1),
            Sysctl::new("kernel_printk", "4 4 1 7"),
            Sysctl::new("../../etc/passwd", "x"),
        ];
        let r = apply_at(&root, &entries);
        assert_eq!(r[0].outcome, Outcome::Set { previous: "0".into() });
        assert_eq!(std::fs::read_to_string(root.join("net/ipv4/ip_forward")).unwrap(), "1\n");
        assert!(r[1].failed(), "{}", r[1]);
        assert!(r[1].to_string().contains("no such key"), "{}", r[1]);
        assert!(!root.join("net/ipv4/vs/sloppy_tcp").exists(), "the writer must not create keys");
        assert_eq!(r[2].outcome, Outcome::Unchanged);
        assert!(r[3].failed());
        // Second run: nothing to do.
        let again = apply_at(&root, &entries[..1]);
        assert_eq!(again[0].outcome, Outcome::Unchanged);
        assert_eq!(read_at(&root, "net.ipv4.ip_forward").unwrap(), "1");
        let _ = std::fs::remove_dir_all(&root);
    }
}
