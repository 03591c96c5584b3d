//! init's control socket ([`crate::paths::INIT_SOCKET`], mode 0600):
//! newline-delimited JSON, one request per line, one response per request,
//! matched by `id`, the same framing and [`Response`] as lbd's socket.
//!
//! ```text
//! {"id":1,"cmd":"logs"}         -> {"id":1,"ok":true,"data":[{"t_ms":812,"level":"notice","msg":"lvsbox 0.1.0"},...]}
//! {"id":2,"cmd":"children"}     -> {"id":2,"ok":true,"data":[{"name":"lbd","pid":93,"state":"running",...}]}
//! {"id":3,"cmd":"boot_report"}  -> {"id":3,"ok":true,"data":{"config":{"status":"invalid","errors":[...]},...}}
//! {"id":4,"cmd":"reboot"}       -> {"id":4,"ok":true,"data":"rebooting"}
//! {"id":5,"cmd":"poweroff"}     -> {"id":5,"ok":true,"data":"powering off"}
//! ```
//!
//! The types live in the lbd library so the console (a client) and init (the
//! server) share them.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
pub use crate::ctl::proto::Response;

/// A request line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the response.
    #[serde(default)]
    pub id: u64,
    /// What to do.
    #[serde(flatten)]
    pub cmd: Command,
}

/// Commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// init's log ring: `[LogEntry]`, oldest first.
    Logs,
    /// Supervised processes: `[ChildInfo]`.
    Children,
    /// What happened at boot: [`BootReport`].
    BootReport,
    /// Orderly reboot (answers before it starts).
    Reboot,
    /// Orderly power-off (answers before it starts).
    Poweroff,
}

/// Severity, as syslog/kmsg numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// 3: something failed.
    Error,
    /// 4: something is wrong but boot goes on.
    Warn,
    /// 5: what the operator should see on the console.
    Notice,
    /// 6: details (kmsg and the ring, not the console unless debug).
    Info,
    /// 7: debug (only with `lvsbox.debug=1`).
    Debug,
}

impl Level {
    /// The kmsg priority number.
    pub fn kmsg_priority(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Notice => 5,
            Level::Info => 6,
            Level::Debug => 7,
        }
    }
}

/// One line of init's log ring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Milliseconds since boot (CLOCK_MONOTONIC, like the kernel's timestamps).
    pub t_ms: u64,
    /// Severity.
    pub level: Level,
    /// The message (without the `init: ` prefix).
    pub msg: String,
}

/// State of a supervised process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    /// Running.
    Running,
    /// Exited; waiting for its restart delay.
    Backoff,
    /// Not running and not restarted (shutdown).
    Stopped,
}

/// A supervised process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildInfo {
    /// `lbd`, `console:ttyS0`, `shell:ttyS1`.
    pub name: String,
    /// Current pid when running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// State.
    pub state: ChildState,
    /// How many times it was restarted.
    pub restarts: u32,
    /// How it last ended: `exit code 1`, `signal 9 (SIGKILL)`, or why it could not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// Milliseconds until the next start (in backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_in_ms: Option<u64>,
}

/// Where the config came from and whether it was usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigStatus {
    /// Parsed and used.
    Ok,
    /// No partition or no file: safe defaults in use.
    Missing,
    /// The file has errors: safe defaults in use, `errors` says why.
    Invalid,
    /// `lvsbox.config=none`: safe defaults by request.
    Disabled,
}

/// The config part of the boot report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigReport {
    /// What was looked for: `PARTLABEL=lvsbox-config`, `/dev/vdb1`, `none`.
    pub source: String,
    /// The block device found, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Outcome.
    pub status: ConfigStatus,
    /// Why defaults are in use (missing/invalid), in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every error of an invalid config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ConfigError>,
}

/// A module that could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleFailure {
    /// Module name.
    pub name: String,
    /// errno from the kernel (0 when the failure was found before asking it).
    pub errno: i32,
    /// Why, in words.
    pub error: String,
}

/// What happened at boot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootReport {
    /// lvsbox version.
    pub version: String,
    /// Kernel command line.
    pub cmdline: String,
    /// Config source and status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigReport>,
    /// Hostname set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Modules loaded by init, in load order.
    pub modules_loaded: Vec<String>,
    /// Modules that failed.
    pub module_failures: Vec<ModuleFailure>,
    /// Sysctls written.
    pub sysctl: Vec<crate::sysctl::SysctlResult>,
    /// Network apply report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::net::Report>,
    /// When lbd first answered a ping (ms since boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbd_ready_ms: Option<u64>,
    /// init fell back to maintenance mode (only consoles and shell), and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<String>,
}

/// Blocking client of init's socket.
pub struct Client(crate::ctl::client::LineClient);

impl Client {
    /// Connects to `path` with `timeout` per exchange.
    pub fn connect(path: &Path, timeout: Duration) -> std::io::Result<Self> {
        crate::ctl::client::LineClient::connect(path, timeout, "init").map(Client)
    }

    /// Sends one command and waits for its response.
    pub fn call(&mut self, cmd: Command) -> std::io::Result<Response> {
        self.0.call_with(|id| Request { id, cmd })
    }

    /// Calls `cmd` and decodes its data as `T`.
    pub fn get<T: serde::de::DeserializeOwned>(&mut self, cmd: Command) -> std::io::Result<T> {
        let r = self.call(cmd)?;
        if !r.ok {
            return Err(std::io::Error::other(r.error.unwrap_or_default()));
        }
        serde_json::from_value(r.data.unwrap_or_default()).map_err(std::io::Error::other)
    }

    /// The log ring.
    pub fn logs(&mut self) -> std::io::Result<Vec<LogEntry>> {
        self.get(Command::Logs)
    }
    /// Supervised processes.
    pub fn children(&mut self) -> std::io::Result<Vec<ChildInfo>> {
        self.get(Command::Children)
    }
    /// The boot report.
    pub fn boot_report(&mut self) -> std::io::Result<BootReport> {
        self.get(Command::BootReport)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r: Request = serde_json::from_str(r#"{"id":1,"cmd":"logs"}"#).unwrap();
        assert_eq!(r, Request { id: 1, cmd: Command::Logs });
        let r: Request = serde_json::from_str(r#"{"cmd":"boot_report"}"#).unwrap();
        assert_eq!(r.cmd, Command::BootReport);
        assert_eq!(
            serde_json::to_string(&Request { id: 7, cmd: Command::Poweroff }).unwrap(),
            r#"{"id":7,"cmd":"poweroff"}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"format_disk"}"#).is_err());
    }

    #[test]
    fn entries_round_trip() {
        let e = LogEntry { t_ms: 5, level: Level::Notice, msg: "x".into() };
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(s, r#"{"t_ms":5,"level":"notice","msg":"x"}"#);
        let c = ChildInfo {
            name: "lbd".into(),
            pid: Some(9),
            state: ChildState::Running,
            restarts: 1,
            last_exit: Some("signal 9 (SIGKILL)".into()),
            restart_in_ms: None,
        };
        assert_eq!(serde_json::from_str::<ChildInfo>(&serde_json::to_string(&c).unwrap()).unwrap(), c);
        let b = BootReport { version: "0.1.0".into(), ..Default::default() };
        assert_eq!(serde_json::from_str::<BootReport>(&serde_json::to_string(&b).unwrap()).unwrap(), b);
    }
}
