//! Kernel command line keys init reads.
//!
//! | key | meaning |
//! |---|---|
//! | `lvsbox.config=PARTLABEL=<label>` | config partition by GPT name (default `PARTLABEL=lvsbox-config`) |
//! | `lvsbox.config=/dev/<dev>` | config partition by device path |
//! | `lvsbox.config=none` | no config partition: safe defaults |
//! | `lvsbox.consoles=ttyS0,tty1` | ttys that run the console; overrides the config; empty = none |
//! | `lvsbox.debug=1` | debug logging; console loglevel 8 (everything) |
//! | `lvsbox.shell=<tty>` | supervised root `/bin/sh` on that tty, only if `/bin/sh` exists (debug image) |
//! | `lvsbox.panic=boot\|loop` | test only, needs `lvsbox.debug=1`: panic in the boot sequence or once in the supervision loop, to exercise maintenance mode |
//!
//! Values may be double-quoted as the kernel allows (`key="a b"`). Unknown
//! `lvsbox.*` keys are reported, not fatal.

use std::path::PathBuf;

/// Where the config partition is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// GPT partition with this name.
    PartLabel(String),
    /// A block device path.
    Device(PathBuf),
    /// No config partition.
    None,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::PartLabel(l) => write!(f, "PARTLABEL={l}"),
            ConfigSource::Device(p) => write!(f, "{}", p.display()),
            ConfigSource::None => f.write_str("none"),
        }
    }
}

/// Where `lvsbox.panic=` injects a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanicAt {
    /// In the boot sequence (after the config is read).
    Boot,
    /// Once, in the supervision loop.
    Loop,
}

/// What init takes from the kernel command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmdline {
    /// Config partition.
    pub config: ConfigSource,
    /// Console ttys, overriding the config when given.
    pub consoles: Option<Vec<String>>,
    /// Debug logging.
    pub debug: bool,
    /// tty of the debug shell.
    pub shell: Option<String>,
    /// Fault injection for tests (honoured only with `debug`).
    pub panic: Option<PanicAt>,
    /// Problems with `lvsbox.*` keys.
    pub warnings: Vec<String>,
}

impl Default for Cmdline {
    fn default() -> Self {
        Cmdline {
            config: ConfigSource::PartLabel(lbd::paths::CONFIG_PARTLABEL.into()),
            consoles: None,
            debug: false,
            shell: None,
            panic: None,
            warnings: Vec::new(),
        }
    }
}

/// Splits like the kernel: whitespace separates, double quotes group.
fn split(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn tty_name(v: &str) -> String {
    v.trim().trim_start_matches("/dev/").to_string()
}

fn truthy(v: &str) -> Option<bool> {
    match v {
        "" | "1" | "y" | "yes" | "on" | "true" => Some(true),
        "0" | "n" | "no" | "off" | "false" => Some(false),
        _ => None,
    }
}

/// Parses `/proc/cmdline` text. Later keys override earlier ones.
pub fn parse(s: &str) -> Cmdline {
    let mut c = Cmdline::default();
    for tok in split(s) {
        if tok == "--" {
            break; // the rest is init's argv
        }
        let (k, v) = match tok.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (tok.as_str(), None),
        };
        if !k.starts_with("lvsbox.") {
            continue;
        }
        match (k, v) {
            ("lvsbox.config", Some(v)) => {
                c.config = match v.trim() {
                    "none" | "" => ConfigSource::None,
                    v if v.starts_with("PARTLABEL=") => {
                        ConfigSource::PartLabel(v.trim_start_matches("PARTLABEL=").to_string())
                    }
                    v if v.starts_with('/') => ConfigSource::Device(PathBuf::from(v)),
                    v => {
                        c.warnings.push(format!(
                            "lvsbox.config={v}: expected PARTLABEL=<name>, /dev/<device> or none; using the default"
                        ));
                        continue;
                    }
                }
            }
            ("lvsbox.consoles", v) => {
                c.consoles =
                    Some(v.unwrap_or("").split(',').map(tty_name).filter(|t| !t.is_empty()).collect::<Vec<_>>());
            }
            ("lvsbox.debug", v) => match truthy(v.unwrap_or("")) {
                Some(b) => c.debug = b,
                None => c.warnings.push(format!("lvsbox.debug={}: expected 1 or 0", v.unwrap_or(""))),
            },
            ("lvsbox.shell", Some(v)) if !v.trim().is_empty() => c.shell = Some(tty_name(v)),
            ("lvsbox.shell", _) => c.shell = None,
            ("lvsbox.panic", Some("boot")) => c.panic = Some(PanicAt::Boot),
            ("lvsbox.panic", Some("loop")) => c.panic = Some(PanicAt::Loop),
            (k, _) => c.warnings.push(format!("unknown kernel parameter {k} ignored")),
        }
    }
    if c.panic.is_some() && !c.debug {
        c.warnings.push("lvsbox.panic= ignored without lvsbox.debug=1".into());
        c.panic = None;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_default_cmdline() {
        let c = parse("console=tty0 console=ttyS0,115200n8 quiet panic=10\n");
        assert_eq!(c, Cmdline::default());
        assert_eq!(c.config.to_string(), "PARTLABEL=lvsbox-config");
    }

    #[test]
    fn all_keys() {
        let c =
            parse("quiet lvsbox.config=/dev/vdb1 lvsbox.consoles=ttyS0,/dev/tty1 lvsbox.debug=1 lvsbox.shell=ttyS1");
        assert_eq!(c.config, ConfigSource::Device("/dev/vdb1".into()));
        assert_eq!(c.consoles, Some(vec!["ttyS0".to_string(), "tty1".to_string()]));
        assert!(c.debug);
        assert_eq!(c.shell.as_deref(), Some("ttyS1"));
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn partlabel_none_and_empty_consoles() {
        assert_eq!(parse("lvsbox.config=PARTLABEL=cfg2").config, ConfigSource::PartLabel("cfg2".into()));
        assert_eq!(parse("lvsbox.config=none").config, ConfigSource::None);
        assert_eq!(parse("lvsbox.consoles=").consoles, Some(vec![]));
        assert_eq!(parse("lvsbox.consoles").consoles, Some(vec![]));
        assert!(parse("lvsbox.debug").debug);
        assert!(!parse("lvsbox.debug=0").debug);
    }

    #[test]
    fn quotes_later_wins_and_argv_stops() {
        let c = parse(r#"a="x y" lvsbox.shell="ttyS1" lvsbox.shell=ttyS2 -- lvsbox.debug=1"#);
        assert_eq!(c.shell.as_deref(), Some("ttyS2"));
        assert!(!c.debug, "keys after -- belong to init's argv");
        assert_eq!(split(r#"a="x y" b"#), vec!["a=x y".to_string(), "b".to_string()]);
    }

    #[test]
    fn panic_injection_needs_debug() {
        assert_eq!(parse("lvsbox.panic=boot").panic, None);
        assert_eq!(parse("lvsbox.debug=1 lvsbox.panic=boot").panic, Some(PanicAt::Boot));
        assert_eq!(parse("lvsbox.panic=loop lvsbox.debug=1").panic, Some(PanicAt::Loop));
    }

    #[test]
    fn bad_values_warn_and_keep_defaults() {
        let c = parse("lvsbox.config=sda1 lvsbox.debug=maybe lvsbox.bogus=1");
        assert_eq!(c.config, Cmdline::default().config);
        assert!(!c.debug);
        assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
        assert!(c.warnings[2].contains("lvsbox.bogus"));
    }
}
