//! The IO edge: carries out the App's effects (lbd and init sockets, the
//! config file fallback, password hashing) and turns results into events.
//! `main` runs it on a worker thread; the integration tests run it inline.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lbd::ctl::client::Client;
use lbd::ctl::proto::{Command, Response};
use serde_json::Value;

use crate::app::{Effect, Event, InitCmd};
use crate::password;

/// A reconnecting connection to lbd's control socket.
pub struct LbdConn {
    path: PathBuf,
    timeout: Duration,
    client: Option<Client>,
}

impl LbdConn {
    /// Connects lazily to `path`.
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> Self {
        LbdConn { path: path.into(), timeout, client: None }
    }

    /// One exchange; reconnects once when the old connection broke.
    pub fn call(&mut self, cmd: Command) -> Result<Response, String> {
        for attempt in 0..2 {
            if self.client.is_none() {
                match Client::connect(&self.path, self.timeout) {
                    Ok(c) => self.client = Some(c),
                    Err(e) => return Err(format!("lbd not reachable ({}): {e}", self.path.display())),
                }
            }
            let Some(c) = self.client.as_mut() else { continue };
            match c.call(cmd.clone()) {
                Ok(r) => return Ok(r),
                Err(e) => {
                    self.client = None;
                    // A timed-out apply may still be running: never send it twice.
                    let retry_safe = !matches!(
                        cmd,
                        Command::Apply { .. } | Command::Restore { .. } | Command::Confirm | Command::Rollback
                    );
                    if attempt == 1 || !retry_safe || e.kind() == std::io::ErrorKind::WouldBlock {
                        return Err(format!("lbd: {e}"));
                    }
                }
            }
        }
        Err("lbd not reachable".into())
    }
}

/// init's control socket: same newline-JSON style as lbd's. One connection
/// per request (init is PID 1; nothing is kept open on it).
pub struct InitClient {
    path: PathBuf,
    timeout: Duration,
    next_id: u64,
}

impl InitClient {
    /// A client of the socket at `path`.
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> Self {
        InitClient { path: path.into(), timeout, next_id: 1 }
    }

    /// Sends `{"id":N,"cmd":NAME}` and returns `data` of a successful answer.
    /// Unknown fields are ignored; a missing socket says "init not reachable".
    pub fn call(&mut self, cmd: &str) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let unreachable = |e: std::io::Error| format!("init not reachable ({}): {e}", self.path.display());
        let s = UnixStream::connect(&self.path).map_err(unreachable)?;
        s.set_read_timeout(Some(self.timeout)).map_err(unreachable)?;
        s.set_write_timeout(Some(self.timeout)).map_err(unreachable)?;
        let mut w = s.try_clone().map_err(unreachable)?;
        let line = serde_json::json!({ "id": id, "cmd": cmd }).to_string() + "\n";
        w.write_all(line.as_bytes()).map_err(|e| format!("init: {e}"))?;
        let mut r = BufReader::new(s);
        loop {
            let mut buf = String::new();
            if r.read_line(&mut buf).map_err(|e| format!("init: {e}"))? == 0 {
                return Err("init closed the connection".into());
            }
            let v: Value = serde_json::from_str(buf.trim()).map_err(|e| format!("init answered garbage: {e}"))?;
            // Tolerate an init that does not echo ids.
            if v.get("id").and_then(Value::as_u64).is_some_and(|got| got != id) {
                continue;
            }
            if v.get("ok").and_then(Value::as_bool) == Some(false) {
                let e = v.get("error").and_then(Value::as_str).unwrap_or("refused");
                return Err(format!("init: {e}"));
            }
            return Ok(v.get("data").cloned().unwrap_or(Value::Null));
        }
    }
}

/// Carries out effects.
pub struct Executor {
    /// lbd.
    pub lbd: LbdConn,
    /// init.
    pub init: InitClient,
    /// The config file read directly when lbd does not answer.
    pub config_file: PathBuf,
    /// PBKDF2 iterations for new password hashes.
    pub iterations: u32,
    /// Where the failed-login count survives a restart (`/run`, tmpfs).
    pub failures_file: Option<PathBuf>,
}

impl Executor {
    /// An executor with the appliance's well-known paths.
    pub fn new(lbd_socket: &Path, init_socket: &Path, config_file: &Path) -> Self {
        Executor {
            lbd: LbdConn::new(lbd_socket, Duration::from_secs(30)),
            init: InitClient::new(init_socket, Duration::from_secs(5)),
            config_file: config_file.to_path_buf(),
            iterations: password::DEFAULT_ITERATIONS,
            failures_file: None,
        }
    }

    /// Runs one effect; `None` for effects that are not IO (handled by main).
    pub fn run(&mut self, e: Effect) -> Option<Event> {
        Some(match e {
            Effect::Lbd(cmd) => {
                let r = self.lbd.call(cmd.clone());
                Event::Lbd(cmd, r)
            }
            Effect::Init(c) => Event::Init(c, self.init.call(c.name())),
            Effect::ReadConfigFile => Event::ConfigFile(match std::fs::read_to_string(&self.config_file) {
                Ok(t) => Ok(t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
                Err(e) => Err(format!("{}: {e}", self.config_file.display())),
            }),
            Effect::HashPassword(pw) => {
                Event::PasswordHashed(password::hash(&pw, self.iterations).map_err(|e| format!("no randomness: {e}")))
            }
            Effect::VerifyPassword { password: pw, hash } => {
                Event::PasswordChecked(password::verify(&pw, &hash).map_err(|e| e.0))
            }
            Effect::ReadNetwork => Event::Network(crate::sysnet::read()),
            Effect::SaveFailures(n) => {
                if let Some(f) = &self.failures_file {
                    let _ = if n == 0 { std::fs::remove_file(f) } else { std::fs::write(f, n.to_string()) };
                }
                return None;
            }
            Effect::ClearScreen => return None,
        })
    }
}

/// The failed-login count saved by a previous console on the same tty.
pub fn load_failures(file: &Path) -> u32 {
    std::fs::read_to_string(file).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

impl InitCmd {
    /// The command name on init's socket.
    pub fn name(self) -> &'static str {
        match self {
            InitCmd::Logs => "logs",
            InitCmd::Children => "children",
            InitCmd::BootReport => "boot_report",
            InitCmd::Reboot => "reboot",
            InitCmd::Poweroff => "poweroff",
        }
    }
}
