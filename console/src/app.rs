//! The console's state machine: pure (no IO, no clock, no randomness).
//! `App::handle(Event) -> Vec<Effect>`; `main` (or a test) performs the
//! effects and feeds their results back as events. Time arrives as
//! `Event::Tick(ms)` from a monotonic clock.

use std::collections::{HashMap, HashSet};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use lbd::config::{Config, ConfigError};
use lbd::ctl::proto::{Command, ImportFormat, Response};
use serde_json::Value;

use crate::diff::{self, Line};
use crate::forms::{self, Form, FormAction, FormKind};
use crate::model::{self, Conn, LiveService, LogLine, Status, Version};
use crate::password;
use crate::sysnet::NetSnapshot;

/// Seconds lbd waits for `confirm` after a console apply.
pub const CONFIRM_WITHIN: u64 = 60;
/// Shortest accepted password.
pub const MIN_PASSWORD: usize = 8;

/// A command on init's socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InitCmd {
    /// init's log ring.
    Logs,
    /// Supervised processes.
    Children,
    /// Config source, module and network report of the boot.
    BootReport,
    /// Reboot the box.
    Reboot,
    /// Power it off.
    Poweroff,
}

/// Something for the outside world to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// A request to lbd; answered by `Event::Lbd`.
    Lbd(Command),
    /// A request to init; answered by `Event::Init`.
    Init(InitCmd),
    /// Read the config file directly (lbd does not answer); `Event::ConfigFile`.
    ReadConfigFile,
    /// Hash a new password with a fresh salt; `Event::PasswordHashed`.
    HashPassword(String),
    /// Check a password against a stored hash (slow on purpose); `Event::PasswordChecked`.
    VerifyPassword {
        /// Typed.
        password: String,
        /// Stored.
        hash: String,
    },
    /// Read links, addresses and routes from the kernel; `Event::Network`.
    ReadNetwork,
    /// Remember the failed-login count across console restarts (no answer).
    SaveFailures(u32),
    /// Clear the terminal and repaint every cell (Ctrl-L).
    ClearScreen,
}

/// Something that happened.
#[derive(Clone, Debug)]
pub enum Event {
    /// A key.
    Key(KeyEvent),
    /// Time passed: monotonic milliseconds.
    Tick(u64),
    /// lbd answered (or could not be reached) for this command.
    Lbd(Command, Result<Response, String>),
    /// init answered.
    Init(InitCmd, Result<Value, String>),
    /// The config file's text (empty when there is none).
    ConfigFile(Result<String, String>),
    /// A new password hash.
    PasswordHashed(Result<String, String>),
    /// Whether the password matched.
    PasswordChecked(Result<bool, String>),
    /// The live network state.
    Network(Result<NetSnapshot, String>),
}

/// Top-level mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Waiting for the config (to know the password hash).
    Loading,
    /// No password yet: set one before anything else.
    FirstBoot,
    /// Password prompt.
    Login,
    /// Logged in.
    Main,
}

/// The screens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Screen {
    /// Overview.
    Dashboard,
    /// Virtual services.
    Services,
    /// Interfaces, routes, VIPs.
    Network,
    /// Connection table.
    Connections,
    /// init and lbd logs.
    Logs,
    /// Reboot, password, reset, config, history.
    System,
    /// Staged changes, apply, confirm.
    Changes,
    /// VRRP instances: state, master, history; maintenance.
    Vrrp,
}

impl Screen {
    /// In tab order, with their keys.
    pub const ALL: [(Screen, char, &'static str); 8] = [
        (Screen::Dashboard, '1', "Dashboard"),
        (Screen::Services, '2', "Services"),
        (Screen::Network, '3', "Network"),
        (Screen::Connections, '4', "Conns"),
        (Screen::Logs, '5', "Logs"),
        (Screen::System, '6', "System"),
        (Screen::Changes, '7', "Changes"),
        (Screen::Vrrp, '8', "VRRP"),
    ];
}

/// Which part of the System screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysView {
    /// The menu.
    Menu,
    /// The applied config as TOML.
    Config,
    /// Kept versions.
    History,
    /// One kept version's text.
    Version,
    /// Pasting a keepalived.conf or ipvsadm rules, then lbd's import report.
    Import,
}

/// System menu: key, label.
pub const SYS_MENU: [(char, &str); 8] = [
    ('h', "Host name"),
    ('p', "Set console password"),
    ('c', "Show config (TOML)"),
    ('v', "Config history"),
    ('i', "Import keepalived/ipvsadm"),
    ('b', "Reboot"),
    ('o', "Power off"),
    ('R', "Reset to factory defaults"),
];

/// Largest paste the import screen takes (what lbd's `import` accepts).
pub const MAX_PASTE: usize = lbd::ctl::proto::MAX_IMPORT_TEXT;

/// A keepalived.conf or ipvsadm rules being pasted on the System screen, and
/// what lbd made of it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Paste {
    /// The text so far (newlines and tabs kept).
    pub text: String,
    /// Bytes that arrived beyond [`MAX_PASTE`] and were dropped.
    pub dropped: usize,
    /// The last key was a carriage return (a CR LF pair is one newline).
    last_cr: bool,
    /// Sent to lbd, no answer yet.
    pub converting: bool,
    /// What the paste was read as (told from the text when it is sent).
    pub format: Option<ImportFormat>,
    /// lbd's answer.
    pub result: Option<ImportResult>,
}

impl Paste {
    /// What the paste is, in words: `keepalived.conf`, `ipvsadm rules`.
    pub fn what(&self) -> &'static str {
        match self.format {
            Some(ImportFormat::Ipvsadm) => "ipvsadm rules",
            Some(ImportFormat::Keepalived) => "keepalived.conf",
            None => "keepalived.conf or ipvsadm rules",
        }
    }

    /// Lines received so far.
    pub fn lines(&self) -> usize {
        self.text.lines().count()
    }
}

/// One line of lbd's import report.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct ImportEntry {
    /// Line of the paste (0: the whole text).
    pub line: usize,
    /// `error`, `not imported`, `note`.
    pub kind: String,
    /// The keyword.
    pub what: String,
    /// Why, and what to do instead.
    pub message: String,
}

/// What lbd answered to `import`.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct ImportResult {
    /// lbd could not be asked, or refused the request itself.
    #[serde(skip)]
    pub failure: Option<String>,
    /// The text converted (no error in the report).
    pub converted: bool,
    /// `import: N error(s), N not imported, N note(s)`.
    pub summary: String,
    /// Errors, then what was not imported, then notes.
    pub report: Vec<ImportEntry>,
    /// What staging it replaces, in words.
    pub replaced: Vec<String>,
    /// Why the converted config does not fit this box's config.
    pub merge_errors: Vec<String>,
    /// This box's config with the imported parts (TOML): what `s` stages.
    pub merged: Option<String>,
}

/// Which logs the Logs screen shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogSource {
    /// lbd's ring.
    Lbd,
    /// init's ring.
    Init,
    /// Both (init first).
    Both,
}

/// A yes/no question.
#[derive(Clone, Debug, PartialEq)]
pub struct Ask {
    /// The question.
    pub text: String,
    /// What `y` does.
    pub action: AskAction,
}

/// What a confirmed question does.
#[derive(Clone, Debug, PartialEq)]
pub enum AskAction {
    /// Stage removing service `i`.
    DeleteService(usize),
    /// Stage removing real `j` of service `i`.
    DeleteReal(usize, usize),
    /// Stage removing a network item.
    DeleteNet(NetItem),
    /// Reboot through init.
    Reboot,
    /// Power off through init.
    Poweroff,
    /// VRRP maintenance on (`true`) or off for an instance.
    VrrpMaintenance(String, bool),
    /// Drop all staged changes.
    Discard,
    /// Lift an operator's override (service, real): at once, not staged.
    ClearOverride(String, String),
}

/// A row of the Network screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetItem {
    /// `interfaces[i]`.
    Interface(usize),
    /// `routes[i]`.
    Route(usize),
    /// `vips[i]`.
    Vip(usize),
}

/// Where an apply stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum ApplyState {
    /// Nothing in flight.
    #[default]
    Idle,
    /// `validate` sent for the review.
    Validating,
    /// `apply` sent.
    Applying {
        /// The text sent.
        text: String,
        /// Why.
        purpose: Purpose,
    },
    /// Applied; lbd waits for confirm until `deadline` (ms, our clock).
    Pending {
        /// The applied text.
        text: String,
        /// When lbd rolls back by itself.
        deadline: u64,
    },
    /// `confirm` sent.
    Confirming,
    /// `rollback` sent.
    RollingBack,
    /// lbd no longer has a pending confirm: checking whether it rolled back.
    Checking {
        /// The text that was pending.
        text: String,
    },
}

/// Why an apply was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Staged edits, with confirm.
    Staged,
    /// A new password (no confirm: it cannot cut anyone off).
    Password,
}

/// The review of staged changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Review {
    /// The staged text that was validated.
    pub text: String,
    /// What lbd would change in the kernel, or lbd's errors.
    pub changes: Result<Vec<String>, Vec<String>>,
    /// Line diff of the applied text → staged text.
    pub diff: Vec<Line>,
}

/// A status-line message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    /// Text.
    pub text: String,
    /// Shown as an error.
    pub error: bool,
    /// When (ms).
    pub at: u64,
}

/// Tunables.
#[derive(Clone, Debug)]
pub struct Options {
    /// Log out after this long without a key (ms).
    pub idle_logout_ms: u64,
    /// Name the console was started on (`ttyS0`), shown in the header.
    pub tty: String,
    /// Plain ASCII borders and marks (TERM=linux, vt*: no box drawing).
    pub ascii: bool,
    /// Colours allowed (state never relies on colour alone).
    pub color: bool,
    /// Seconds lbd waits for `confirm` after an apply from the console.
    pub confirm_within_s: u64,
    /// Failed logins before this process started (a restart, e.g. after a
    /// hangup, does not reset the lockout).
    pub initial_failures: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            idle_logout_ms: 10 * 60 * 1000,
            tty: String::new(),
            ascii: false,
            color: true,
            confirm_within_s: CONFIRM_WITHIN,
            initial_failures: 0,
        }
    }
}

impl Options {
    /// Borders and colours for a `TERM` value: box drawing only on xterm-like
    /// terminals; colour on those and the Linux VT; monochrome on vt100/vt220.
    pub fn for_term(term: &str) -> (bool, bool) {
        let t = term.to_ascii_lowercase();
        let xterm_like = ["xterm", "screen", "tmux", "rxvt", "alacritty", "kitty", "foot", "wezterm"]
            .iter()
            .any(|p| t.starts_with(p));
        let ascii = !xterm_like;
        let color = xterm_like || t.starts_with("linux") || t.contains("color");
        (ascii, color)
    }
}

/// A service row of the Services screen: config joined with the kernel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SvcRow {
    /// Index in the shown config (staged or applied); `None` = kernel only.
    pub cfg: Option<usize>,
    /// Name or `tcp 1.2.3.4:80`.
    pub label: String,
    /// `TCP 192.0.2.1:80`.
    pub key: String,
    /// Scheduler.
    pub sched: String,
    /// Reals in the config.
    pub reals: usize,
    /// Reals serving: weight > 0 in the kernel (in the config when the
    /// service is not live).
    pub up: usize,
    /// Reals at weight 0 (quiesced, drained, or inhibited by a failed check).
    pub quiesced: usize,
    /// Reals lbd is draining (removed, connections ending).
    pub draining: usize,
    /// Active connections.
    pub active: u64,
    /// Inactive connections.
    pub inactive: u64,
    /// Rates.
    pub stats: model::Stats,
    /// `live`, `staged`, `absent` (configured but not in the kernel), `unmanaged`.
    pub state: &'static str,
}

/// A real row of the service detail.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RealRow {
    /// Index in the service's reals; `None` = kernel only (draining).
    pub cfg: Option<usize>,
    /// `10.0.0.1:80`.
    pub address: String,
    /// Forwarding.
    pub forward: String,
    /// Configured weight (staged view).
    pub weight: Option<u32>,
    /// Kernel weight.
    pub live_weight: Option<u32>,
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// Rates.
    pub stats: model::Stats,
    /// `UP`, `QUIESCED`, `DRAINING`, `STAGED`, `ABSENT`, `FAILED` (its check
    /// failed), `CHECKING` (out until its first check), `DISABLED`/`DRAINED`
    /// (an operator's override).
    pub state: &'static str,
    /// What lbd's health checks say about it (`None`: not asked yet, or a
    /// real lbd does not have in its config).
    pub check: Option<model::CheckReal>,
}

/// The whole console state.
pub struct App {
    /// Tunables.
    pub opts: Options,
    /// Clock (ms).
    pub now: u64,
    /// Mode.
    pub mode: Mode,
    /// Typed password (never shown).
    pub login_input: String,
    /// Failed attempts in a row.
    pub failures: u32,
    /// No attempt before this (ms).
    pub locked_until: u64,
    /// A verification is running.
    pub checking: bool,
    /// Last key (ms), for the idle logout.
    pub last_key: u64,
    /// lbd's status.
    pub status: Option<Status>,
    /// Why lbd does not answer.
    pub lbd_err: Option<String>,
    /// The kernel table.
    pub services: Vec<LiveService>,
    /// lbd's health checks, asked while a service is open.
    pub checks: Option<model::Checks>,
    /// lbd's VRRP engine, once asked.
    pub vrrp: Option<model::Vrrp>,
    /// The applied config text.
    pub applied_text: Option<String>,
    /// The applied config, when it parses.
    pub applied: Option<Config>,
    /// Where the applied text came from: lbd or the file.
    pub config_from_file: bool,
    /// The stored password hash.
    pub hash: Option<String>,
    /// lbd's log lines (newest last).
    pub lbd_logs: Vec<LogLine>,
    /// init's log lines, or why not.
    pub init_logs: Result<Vec<LogLine>, String>,
    /// Connections.
    pub conns: Result<Vec<Conn>, String>,
    /// Config history.
    pub history: Vec<Version>,
    /// Selected history entry.
    pub hist_sel: usize,
    /// A kept version's number and text, as fetched.
    pub old_version: Option<(usize, String)>,
    /// init's boot report.
    pub boot_report: Option<Result<Value, String>>,
    /// init's children.
    pub children: Option<Result<Value, String>>,
    /// Live links, addresses, routes.
    pub net: Option<Result<NetSnapshot, String>>,
    /// Current screen.
    pub screen: Screen,
    /// Selected row per screen.
    pub sel: HashMap<Screen, usize>,
    /// Open service (index in the shown config).
    pub svc_open: Option<usize>,
    /// Selected real in the open service.
    pub real_sel: usize,
    /// Open form.
    pub form: Option<Form>,
    /// Open question.
    pub ask: Option<Ask>,
    /// Status-line message.
    pub msg: Option<Msg>,
    /// Connections filter.
    pub conn_filter: String,
    /// Logs filter.
    pub log_filter: String,
    /// Typing goes to the filter.
    pub filter_edit: bool,
    /// Lowest severity shown (0 error .. 4 trace).
    pub log_level: u8,
    /// Which logs.
    pub log_source: LogSource,
    /// Scroll offset of long texts (config, logs, diff).
    pub scroll: usize,
    /// System screen part.
    pub sys_view: SysView,
    /// Staged config.
    pub staged: Option<Config>,
    /// What was staged, in words.
    pub notes: Vec<String>,
    /// Review of the staged config.
    pub review: Option<Review>,
    /// Apply progress.
    pub apply: ApplyState,
    /// Last apply outcome (confirmed, rolled back), kept until the next apply.
    pub outcome: Option<(String, bool)>,
    /// The keepalived.conf or ipvsadm paste of the System screen.
    pub paste: Option<Paste>,
    /// Weights before a drain, to restore on enable (this session only).
    pub saved_weights: HashMap<(usize, String), u32>,
    inflight: HashSet<&'static str>,
    due: HashMap<&'static str, u64>,
    lbd_log_seq: u64,
    pending_hash_for: Option<Purpose>,
    /// A password set while the applied config is invalid: it cannot be
    /// persisted alone, so it rides along with the next (valid) apply.
    pub unsaved_hash: Option<String>,
}

fn cmd_kind(c: &Command) -> &'static str {
    match c {
        Command::Ping => "ping",
        Command::Status => "status",
        Command::Services => "services",
        Command::List { .. } => "list",
        Command::Connections { .. } => "connections",
        Command::ConfigGet => "config",
        Command::Validate { .. } => "validate",
        Command::Apply { .. } => "apply",
        Command::Confirm => "confirm",
        Command::Rollback => "rollback",
        Command::Restore { .. } => "restore",
        Command::SetWeight { .. } => "set_weight",
        Command::Zero => "zero",
        Command::Logs { .. } => "logs",
        Command::History => "history",
        Command::HistoryGet { .. } => "history_get",
        Command::Net => "net",
        Command::Vrrp => "vrrp",
        Command::Fwmark => "fwmark",
        Command::VrrpMaintenance { .. } => "vrrp_maintenance",
        Command::Checks => "checks",
        Command::RealOverride { .. } => "real_override",
        Command::Import { .. } => "import",
    }
}

fn init_kind(c: InitCmd) -> &'static str {
    match c {
        InitCmd::Logs => "init_logs",
        InitCmd::Children => "init_children",
        InitCmd::BootReport => "init_boot",
        InitCmd::Reboot => "init_reboot",
        InitCmd::Poweroff => "init_poweroff",
    }
}

/// Error lines of a failed lbd answer: its message and each config error.
pub fn resp_errors(r: &Response) -> Vec<String> {
    let mut out = vec![r.error.clone().unwrap_or_else(|| "failed".into())];
    if let Some(errs) = r.data.as_ref().and_then(|d| d.get("errors")).and_then(Value::as_array) {
        for e in errs {
            match serde_json::from_value::<ConfigError>(e.clone()) {
                Ok(ce) => out.push(ce.to_string()),
                Err(_) => out.push(e.as_str().map(str::to_string).unwrap_or_else(|| e.to_string())),
            }
        }
    }
    out
}

/// The password hash in a config text, even when the config is otherwise invalid.
pub fn hash_of(text: &str) -> Option<String> {
    let v: toml::Value = toml::from_str(text).ok()?;
    v.get("system")?.get("console_password")?.as_str().map(str::to_string)
}

impl App {
    /// A console that has not heard from anyone yet.
    pub fn new(opts: Options) -> Self {
        let failures = opts.initial_failures;
        App {
            opts,
            now: 0,
            mode: Mode::Loading,
            login_input: String::new(),
            failures,
            locked_until: password::lockout_ms(failures),
            checking: false,
            last_key: 0,
            status: None,
            lbd_err: None,
            services: Vec::new(),
            vrrp: None,
            checks: None,
            applied_text: None,
            applied: None,
            config_from_file: false,
            hash: None,
            lbd_logs: Vec::new(),
            init_logs: Err("not asked yet".into()),
            conns: Ok(Vec::new()),
            history: Vec::new(),
            hist_sel: 0,
            old_version: None,
            boot_report: None,
            children: None,
            net: None,
            screen: Screen::Dashboard,
            sel: HashMap::new(),
            svc_open: None,
            real_sel: 0,
            form: None,
            ask: None,
            msg: None,
            conn_filter: String::new(),
            log_filter: String::new(),
            filter_edit: false,
            log_level: 2,
            log_source: LogSource::Lbd,
            scroll: 0,
            sys_view: SysView::Menu,
            staged: None,
            notes: Vec::new(),
            review: None,
            apply: ApplyState::Idle,
            outcome: None,
            paste: None,
            saved_weights: HashMap::new(),
            inflight: HashSet::new(),
            due: HashMap::new(),
            lbd_log_seq: 0,
            pending_hash_for: None,
            unsaved_hash: None,
        }
    }

    /// The config the screens show and edit: staged if any, else applied.
    pub fn view_cfg(&self) -> Option<&Config> {
        self.staged.as_ref().or(self.applied.as_ref())
    }

    /// Selected row of the current screen.
    pub fn selected(&self) -> usize {
        self.sel.get(&self.screen).copied().unwrap_or(0)
    }

    fn set_sel(&mut self, v: usize) {
        self.sel.insert(self.screen, v);
    }

    fn say(&mut self, text: impl Into<String>, error: bool) {
        self.msg = Some(Msg { text: text.into(), error, at: self.now });
    }

    /// Milliseconds until the next login attempt is allowed.
    pub fn lockout_left(&self) -> u64 {
        self.locked_until.saturating_sub(self.now)
    }

    /// Seconds left to confirm (ours or anyone's pending apply).
    pub fn confirm_left(&self) -> Option<u64> {
        match &self.apply {
            ApplyState::Pending { deadline, .. } => Some(deadline.saturating_sub(self.now).div_ceil(1000)),
            ApplyState::Confirming | ApplyState::RollingBack => Some(0),
            _ => self.status.as_ref()?.config.pending_confirm.map(|p| p.remaining_s),
        }
    }

    /// Handles one event.
    pub fn handle(&mut self, ev: Event) -> Vec<Effect> {
        let mut out = Vec::new();
        match ev {
            Event::Tick(t) => {
                self.now = self.now.max(t);
                self.timers();
            }
            Event::Key(k) => {
                self.last_key = self.now;
                self.key(k, &mut out);
            }
            Event::Lbd(cmd, r) => {
                self.inflight.remove(cmd_kind(&cmd));
                self.lbd_reply(cmd, r, &mut out);
            }
            Event::Init(c, r) => {
                self.inflight.remove(init_kind(c));
                self.init_reply(c, r);
            }
            Event::ConfigFile(r) => {
                self.inflight.remove("config_file");
                match r {
                    Ok(text) => {
                        self.config_from_file = true;
                        self.take_config(text);
                    }
                    Err(e) => self.say(format!("cannot read the config: {e}"), true),
                }
            }
            Event::PasswordChecked(r) => self.password_checked(r, &mut out),
            Event::PasswordHashed(r) => self.password_hashed(r, &mut out),
            Event::Network(r) => {
                self.inflight.remove("net");
                self.net = Some(r);
            }
        }
        out.extend(self.refresh());
        out
    }

    fn timers(&mut self) {
        if self.mode == Mode::Main
            && self.opts.idle_logout_ms > 0
            && self.now.saturating_sub(self.last_key) >= self.opts.idle_logout_ms
        {
            self.logout();
            self.say(format!("logged out after {} min without a key", self.opts.idle_logout_ms / 60_000), false);
        }
        if let Some(m) = &self.msg
            && self.now.saturating_sub(m.at) > 15_000
        {
            self.msg = None;
        }
    }

    fn logout(&mut self) {
        self.mode = Mode::Login;
        self.login_input.clear();
        self.form = None;
        self.ask = None;
        self.filter_edit = false;
        self.screen = Screen::Dashboard;
        self.svc_open = None;
        self.sys_view = SysView::Menu;
        self.paste = None;
    }

    /// Requests what the current screen shows, when due and not in flight.
    fn refresh(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        let pending = self.confirm_left().is_some();
        let status_every = if pending { 1000 } else { 2000 };
        match self.mode {
            Mode::Loading => {
                self.poll_lbd("config", 3000, Command::ConfigGet, &mut out);
                self.poll_lbd("status", 3000, Command::Status, &mut out);
            }
            Mode::Login | Mode::FirstBoot => {
                self.poll_lbd("config", 5000, Command::ConfigGet, &mut out);
                self.poll_lbd("status", 5000, Command::Status, &mut out);
            }
            Mode::Main => {
                self.poll_lbd("status", status_every, Command::Status, &mut out);
                self.poll_lbd("config", 5000, Command::ConfigGet, &mut out);
                let after = self.lbd_log_seq;
                match self.screen {
                    Screen::Dashboard => {
                        self.poll_net(5000, &mut out);
                        self.poll_lbd("services", 2000, Command::Services, &mut out);
                        self.poll_lbd("logs", 2000, Command::Logs { after, max: Some(200) }, &mut out);
                    }
                    Screen::Services => {
                        self.poll_lbd("services", 2000, Command::Services, &mut out);
                        // Every real of the box: only while one service is open.
                        if self.svc_open.is_some() {
                            self.poll_lbd("checks", 2000, Command::Checks, &mut out);
                        }
                    }
                    Screen::Connections => {
                        self.poll_lbd("connections", 2000, Command::Connections { limit: Some(2000) }, &mut out)
                    }
                    Screen::Logs => {
                        self.poll_lbd("logs", 2000, Command::Logs { after, max: Some(200) }, &mut out);
                        self.poll_init(InitCmd::Logs, 3000, &mut out);
                    }
                    Screen::Network => {
                        self.poll_net(3000, &mut out);
                        self.poll_init(InitCmd::BootReport, 10_000, &mut out);
                    }
                    Screen::System => {
                        self.poll_lbd("history", 10_000, Command::History, &mut out);
                        self.poll_init(InitCmd::Children, 10_000, &mut out);
                    }
                    Screen::Changes => {}
                    Screen::Vrrp => self.poll_lbd("vrrp", 1000, Command::Vrrp, &mut out),
                }
                if self.screen == Screen::Dashboard {
                    self.poll_lbd("vrrp", 2000, Command::Vrrp, &mut out);
                }
            }
        }
        out
    }

    fn poll_lbd(&mut self, key: &'static str, every: u64, cmd: Command, out: &mut Vec<Effect>) {
        debug_assert_eq!(key, cmd_kind(&cmd));
        if self.inflight.contains(key) || self.now < self.due.get(key).copied().unwrap_or(0) {
            return;
        }
        self.inflight.insert(key);
        self.due.insert(key, self.now + every);
        out.push(Effect::Lbd(cmd));
    }

    fn poll_net(&mut self, every: u64, out: &mut Vec<Effect>) {
        if self.inflight.contains("net") || self.now < self.due.get("net").copied().unwrap_or(0) {
            return;
        }
        self.inflight.insert("net");
        self.due.insert("net", self.now + every);
        out.push(Effect::ReadNetwork);
    }

    fn poll_init(&mut self, c: InitCmd, every: u64, out: &mut Vec<Effect>) {
        let key = init_kind(c);
        if self.inflight.contains(key) || self.now < self.due.get(key).copied().unwrap_or(0) {
            return;
        }
        self.inflight.insert(key);
        self.due.insert(key, self.now + every);
        out.push(Effect::Init(c));
    }

    /// Sends a one-off lbd command (apply, confirm, ...).
    fn send(&mut self, cmd: Command, out: &mut Vec<Effect>) {
        self.inflight.insert(cmd_kind(&cmd));
        out.push(Effect::Lbd(cmd));
    }

    /// Makes the next refresh ask again for `keys` at once.
    fn soon(&mut self, keys: &[&'static str]) {
        for k in keys {
            self.due.insert(k, 0);
        }
    }

    // ------------------------------------------------------------ replies

    fn lbd_reply(&mut self, cmd: Command, r: Result<Response, String>, out: &mut Vec<Effect>) {
        let r = match r {
            Ok(r) => {
                self.lbd_err = None;
                r
            }
            Err(e) => {
                self.lbd_err = Some(e.clone());
                match cmd {
                    Command::ConfigGet
                        if (self.applied_text.is_none() || self.mode == Mode::Loading)
                            && !self.inflight.contains("config_file") =>
                    {
                        self.inflight.insert("config_file");
                        out.push(Effect::ReadConfigFile);
                    }
                    Command::Apply { .. } => self.apply_failed(vec![e]),
                    Command::Validate { .. } => {
                        self.apply = ApplyState::Idle;
                        self.say(e, true);
                    }
                    Command::Confirm | Command::Rollback => {
                        self.apply = ApplyState::Idle;
                        self.say(e, true);
                    }
                    Command::Import { .. } => {
                        if let Some(p) = self.paste.as_mut() {
                            p.converting = false;
                            p.result = Some(ImportResult { failure: Some(e), ..ImportResult::default() });
                        }
                    }
                    _ => {}
                }
                return;
            }
        };
        let data = r.data.clone().unwrap_or(Value::Null);
        match cmd {
            Command::Status if r.ok => {
                let st: Status = serde_json::from_value(data).unwrap_or_default();
                let pending = st.config.pending_confirm;
                self.status = Some(st);
                match (&self.apply, pending) {
                    (ApplyState::Pending { text, .. }, None) => {
                        let text = text.clone();
                        self.apply = ApplyState::Checking { text };
                        self.soon(&["config"]);
                    }
                    (ApplyState::Pending { text, .. }, Some(p)) => {
                        let text = text.clone();
                        self.apply = ApplyState::Pending { text, deadline: self.now + p.remaining_s * 1000 };
                    }
                    _ => {}
                }
            }
            Command::Services if r.ok => {
                self.services = serde_json::from_value(data).unwrap_or_default();
            }
            Command::RealOverride { real, .. } if r.ok => {
                self.say(format!("{real}: operator override lifted; the config and the checks decide again."), false);
                self.soon(&["checks", "services"]);
            }
            Command::Checks if r.ok => {
                self.checks = Some(serde_json::from_value(data).unwrap_or_default());
            }
            Command::Vrrp if r.ok => {
                self.vrrp = Some(serde_json::from_value(data).unwrap_or_default());
            }
            Command::VrrpMaintenance { target, on } => {
                if r.ok {
                    self.say(format!("{target}: maintenance {}", if on { "on" } else { "off" }), false);
                } else {
                    self.say(format!("{target}: {}", r.error.clone().unwrap_or_default()), true);
                }
                self.soon(&["vrrp"]);
            }
            Command::ConfigGet if r.ok => {
                let text = data.get("text").and_then(Value::as_str).unwrap_or_default().to_string();
                self.config_from_file = false;
                if let ApplyState::Checking { text: pending } = &self.apply {
                    let (msg, bad) =
                        if *pending == text {
                            ("Confirmed (by another client): the new config stays.".to_string(), false)
                        } else {
                            ("ROLLED BACK: the apply was not confirmed in time; the previous config is active again."
                            .to_string(), true)
                        };
                    self.outcome = Some((msg.clone(), bad));
                    self.say(msg, bad);
                    self.apply = ApplyState::Idle;
                    self.soon(&["services", "history"]);
                }
                self.take_config(text);
            }
            Command::Logs { .. } if r.ok => {
                let mut new: Vec<LogLine> = serde_json::from_value(data).unwrap_or_default();
                for l in &mut new {
                    l.source = "lbd";
                }
                if let Some(last) = new.last() {
                    self.lbd_log_seq = last.seq;
                }
                self.lbd_logs.extend(new);
                let n = self.lbd_logs.len();
                if n > 1000 {
                    self.lbd_logs.drain(..n - 1000);
                }
            }
            Command::Connections { .. } => {
                self.conns = if r.ok {
                    Ok(serde_json::from_value(data).unwrap_or_default())
                } else {
                    Err(r.error.clone().unwrap_or_default())
                };
            }
            Command::History if r.ok => self.history = serde_json::from_value(data).unwrap_or_default(),
            Command::HistoryGet { n } if r.ok => {
                let text = data.get("text").and_then(Value::as_str).unwrap_or_default().to_string();
                self.old_version = Some((n, text));
                if self.screen == Screen::System {
                    self.sys_view = SysView::Version;
                    self.scroll = 0;
                }
            }
            Command::Validate { text } => {
                if self.apply == ApplyState::Validating {
                    self.apply = ApplyState::Idle;
                }
                let changes = if r.ok {
                    Ok(data
                        .get("changes")
                        .and_then(|c| serde_json::from_value::<Vec<String>>(c.clone()).ok())
                        .unwrap_or_default())
                } else {
                    Err(resp_errors(&r))
                };
                let old = self.diff_base();
                self.review = Some(Review { diff: diff::diff(&old, &text, 2), text, changes });
            }
            Command::Apply { text, confirm_within } => {
                let purpose = match &self.apply {
                    ApplyState::Applying { purpose, .. } => *purpose,
                    _ => Purpose::Staged,
                };
                if !r.ok {
                    self.apply_failed(resp_errors(&r));
                    return;
                }
                self.soon(&["status", "config", "services", "history", "logs"]);
                match purpose {
                    Purpose::Password => {
                        self.apply = ApplyState::Idle;
                        self.hash = hash_of(&text);
                        if let (Some(s), Some(h)) = (self.staged.as_mut(), self.hash.clone()) {
                            s.system.console_password = Some(h);
                        }
                        self.take_config(text);
                        self.form = None;
                        if self.mode == Mode::FirstBoot {
                            self.mode = Mode::Main;
                            self.screen = Screen::Dashboard;
                        }
                        self.say("Console password set.", false);
                    }
                    Purpose::Staged => {
                        let secs = confirm_within.unwrap_or(0);
                        self.staged = None;
                        self.notes.clear();
                        self.review = None;
                        self.outcome = None;
                        self.take_config(text.clone());
                        self.apply = ApplyState::Pending { text, deadline: self.now + secs * 1000 };
                        self.screen = Screen::Changes;
                        self.say(format!("Applied. Confirm within {secs} s or lbd rolls back by itself."), false);
                    }
                }
            }
            Command::Confirm => {
                self.soon(&["status", "config"]);
                if r.ok {
                    self.apply = ApplyState::Idle;
                    let m = "Confirmed: the new config stays.";
                    self.outcome = Some((m.into(), false));
                    self.say(m, false);
                } else if let ApplyState::Confirming = self.apply {
                    // Nothing to confirm: it expired meanwhile. Find out what is active.
                    self.apply = ApplyState::Idle;
                    self.say(format!("Confirm failed: {}", r.error.unwrap_or_default()), true);
                }
            }
            Command::Rollback => {
                self.soon(&["status", "config", "services", "history"]);
                self.apply = ApplyState::Idle;
                if r.ok {
                    let m = "ROLLED BACK on request: the previous config is active again.";
                    self.outcome = Some((m.into(), true));
                    self.say(m, true);
                } else {
                    self.say(format!("Rollback failed: {}", r.error.unwrap_or_default()), true);
                }
            }
            Command::Import { .. } => {
                let Some(p) = self.paste.as_mut() else { return };
                p.converting = false;
                let mut res: ImportResult = serde_json::from_value(data).unwrap_or_default();
                if !r.ok && res.summary.is_empty() && res.merge_errors.is_empty() {
                    // Refused as a whole (too large, a bad base): lbd's words.
                    res.failure = Some(resp_errors(&r).join("; "));
                }
                if !r.ok {
                    res.merged = None;
                }
                p.result = Some(res);
                self.scroll = 0;
            }
            _ if !r.ok => self.say(resp_errors(&r).join("; "), true),
            _ => {}
        }
    }

    fn apply_failed(&mut self, errors: Vec<String>) {
        let purpose = match &self.apply {
            ApplyState::Applying { purpose, .. } => Some(*purpose),
            _ => None,
        };
        self.apply = ApplyState::Idle;
        match (purpose, self.form.as_mut()) {
            (Some(Purpose::Password), Some(f)) => f.errors = errors,
            _ => {
                let text = self.staged.as_ref().map(Config::to_toml).unwrap_or_default();
                let old = self.diff_base();
                self.say("Apply refused: nothing was changed.", true);
                self.review = Some(Review { diff: diff::diff(&old, &text, 2), text, changes: Err(errors) });
            }
        }
    }

    /// The applied config as the console would write it, so the review
    /// diff shows what changes, not how the operator formatted the file.
    fn diff_base(&self) -> String {
        match &self.applied {
            Some(c) => c.to_toml(),
            None => self.applied_text.clone().unwrap_or_default(),
        }
    }

    fn take_config(&mut self, text: String) {
        self.hash = hash_of(&text).or_else(|| self.unsaved_hash.clone());
        self.applied = lbd::config::parse(&text, "applied").ok();
        self.applied_text = Some(text);
        if self.mode == Mode::Loading {
            if self.hash.is_some() {
                self.mode = Mode::Login;
            } else {
                self.start_first_boot();
            }
        } else if self.mode == Mode::Login && self.hash.is_none() {
            self.start_first_boot();
        }
    }

    fn start_first_boot(&mut self) {
        self.mode = Mode::FirstBoot;
        if self.form.as_ref().map(|f| f.kind) != Some(FormKind::Password) {
            self.form = Form::open(FormKind::Password, &Config::default());
        }
    }

    fn init_reply(&mut self, c: InitCmd, r: Result<Value, String>) {
        match c {
            InitCmd::Logs => {
                self.init_logs = r.map(|v| {
                    let mut l: Vec<LogLine> = serde_json::from_value(v).unwrap_or_default();
                    for x in &mut l {
                        x.source = "init";
                    }
                    l
                })
            }
            InitCmd::Children => self.children = Some(r),
            InitCmd::BootReport => self.boot_report = Some(r),
            InitCmd::Reboot | InitCmd::Poweroff => match r {
                Ok(_) => self.say(format!("init accepted {}: the box is going down", c.name()), false),
                Err(e) => self.say(format!("{} failed: {e}", c.name()), true),
            },
        }
    }

    fn password_checked(&mut self, r: Result<bool, String>, out: &mut Vec<Effect>) {
        self.checking = false;
        if self.mode != Mode::Login {
            return;
        }
        match r {
            Ok(true) => {
                self.mode = Mode::Main;
                if self.failures > 0 {
                    out.push(Effect::SaveFailures(0));
                }
                self.failures = 0;
                self.screen = Screen::Dashboard;
                self.msg = None;
                self.soon(&["status", "services", "logs", "config"]);
            }
            Ok(false) => {
                self.failures += 1;
                self.locked_until = self.now + password::lockout_ms(self.failures);
                out.push(Effect::SaveFailures(self.failures));
                self.say("Wrong password.", true);
            }
            Err(e) => {
                // The stored hash is unusable: the only way forward is a new one.
                self.say(format!("{e}; set a new password"), true);
                self.start_first_boot();
            }
        }
    }

    fn password_hashed(&mut self, r: Result<String, String>, out: &mut Vec<Effect>) {
        let purpose = self.pending_hash_for.take();
        let h = match r {
            Ok(h) => h,
            Err(e) => {
                if let Some(f) = self.form.as_mut() {
                    f.errors = vec![e];
                }
                return;
            }
        };
        if purpose != Some(Purpose::Password) {
            return;
        }
        let mut cfg = self.applied.clone().unwrap_or_default();
        if self.applied.is_none() && self.applied_text.as_deref().is_some_and(|t| !t.trim().is_empty()) {
            // lbd refuses any apply while the rest of the config is invalid:
            // keep the hash for this session and every staged edit.
            self.unsaved_hash = Some(h.clone());
            self.hash = Some(h.clone());
            if let Some(s) = self.staged.as_mut() {
                s.system.console_password = Some(h);
            }
            self.form = None;
            if self.mode == Mode::FirstBoot {
                self.mode = Mode::Main;
                self.screen = Screen::Dashboard;
            }
            self.say(
                "Password NOT SAVED yet: the config is invalid. Fix it (or reset); the password is applied with it.",
                true,
            );
            return;
        }
        cfg.system.console_password = Some(h);
        let text = cfg.to_toml();
        self.apply = ApplyState::Applying { text: text.clone(), purpose: Purpose::Password };
        self.send(Command::Apply { text, confirm_within: None }, out);
    }

    // ------------------------------------------------------------ keys

    fn key(&mut self, k: KeyEvent, out: &mut Vec<Effect>) {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && k.code == KeyCode::Char('l') {
            out.push(Effect::ClearScreen);
            return;
        }
        match self.mode {
            Mode::Loading => {}
            Mode::FirstBoot => self.form_key(k, out),
            Mode::Login => self.login_key(k, out),
            Mode::Main => self.main_key(k, out),
        }
    }

    fn login_key(&mut self, k: KeyEvent, out: &mut Vec<Effect>) {
        if self.checking {
            return;
        }
        match k.code {
            KeyCode::Enter => {
                if self.lockout_left() > 0 {
                    return;
                }
                let Some(hash) = self.hash.clone() else { return };
                self.checking = true;
                out.push(Effect::VerifyPassword { password: std::mem::take(&mut self.login_input), hash });
            }
            KeyCode::Backspace => {
                self.login_input.pop();
            }
            KeyCode::Esc => self.login_input.clear(),
            KeyCode::Char('u') if k.modifiers.contains(KeyModifiers::CONTROL) => self.login_input.clear(),
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) && self.login_input.len() < 256 => {
                self.login_input.push(c)
            }
            _ => {}
        }
    }

    fn form_key(&mut self, k: KeyEvent, out: &mut Vec<Effect>) {
        let Some(f) = self.form.as_mut() else { return };
        match f.key(k) {
            FormAction::None => {}
            FormAction::Cancel => {
                if self.mode != Mode::FirstBoot {
                    self.form = None;
                }
            }
            FormAction::Submit => self.submit_form(out),
        }
    }

    fn submit_form(&mut self, out: &mut Vec<Effect>) {
        let Some(f) = self.form.clone() else { return };
        match f.kind {
            FormKind::Password => {
                let (a, b) = (&f.fields[0].value, &f.fields[1].value);
                let err = if a.chars().count() < MIN_PASSWORD {
                    Some(format!("at least {MIN_PASSWORD} characters"))
                } else if a != b {
                    Some("the two entries differ".to_string())
                } else if !matches!(self.apply, ApplyState::Idle) || self.pending_hash_for.is_some() {
                    Some("busy: another apply is running".to_string())
                } else {
                    None
                };
                if let Some(e) = err {
                    if let Some(f) = self.form.as_mut() {
                        f.errors = vec![e];
                    }
                    return;
                }
                self.pending_hash_for = Some(Purpose::Password);
                out.push(Effect::HashPassword(a.clone()));
            }
            FormKind::FactoryReset => {
                if let Some((_, e)) = f.field_errors().first() {
                    if let Some(f) = self.form.as_mut() {
                        f.errors = vec![e.clone()];
                    }
                    return;
                }
                let mut cfg = Config::default();
                cfg.system.console_password = self.hash.clone();
                self.form = None;
                self.staged = Some(cfg);
                self.notes = vec!["reset to factory defaults (password kept)".into()];
                self.screen = Screen::Changes;
                self.start_apply(out);
            }
            _ => {
                let Some(base) = self.view_cfg().cloned().or_else(|| self.base_for_edit()) else { return };
                match f.apply(&base) {
                    Err(errs) => {
                        if let Some(f) = self.form.as_mut() {
                            f.errors = errs;
                        }
                    }
                    Ok((cfg, note)) => match forms::check_whole(&cfg) {
                        Err(errs) => {
                            if let Some(f) = self.form.as_mut() {
                                f.errors = errs;
                            }
                        }
                        Ok(_) => {
                            self.stage(cfg, note);
                            self.form = None;
                        }
                    },
                }
            }
        }
    }

    /// The base for edits when the applied config does not parse: defaults
    /// with the stored password (the invalid text is shown, not edited).
    fn base_for_edit(&self) -> Option<Config> {
        let mut c = Config::default();
        c.system.console_password = self.hash.clone();
        Some(c)
    }

    fn stage(&mut self, cfg: Config, note: String) {
        self.say(format!("Staged: {note}. Press 7 to review and apply."), false);
        self.notes.push(note);
        self.staged = Some(cfg);
        self.review = None;
        self.outcome = None;
    }

    fn start_apply(&mut self, out: &mut Vec<Effect>) {
        let Some(cfg) = &self.staged else { return };
        if !matches!(self.apply, ApplyState::Idle) {
            self.say("busy: wait for the running apply", true);
            return;
        }
        let text = cfg.to_toml();
        self.apply = ApplyState::Applying { text: text.clone(), purpose: Purpose::Staged };
        self.send(Command::Apply { text, confirm_within: Some(self.opts.confirm_within_s) }, out);
    }

    fn main_key(&mut self, k: KeyEvent, out: &mut Vec<Effect>) {
        if let Some(ask) = self.ask.take() {
            match k.code {
                KeyCode::Char('y' | 'Y') => self.do_ask(ask.action, out),
                KeyCode::Char('n' | 'N') | KeyCode::Esc => {}
                _ => self.ask = Some(ask),
            }
            return;
        }
        if self.form.is_some() {
            self.form_key(k, out);
            return;
        }
        if self.pasting() {
            self.paste_key(k, out);
            return;
        }
        if self.filter_edit {
            let f = if self.screen == Screen::Connections { &mut self.conn_filter } else { &mut self.log_filter };
            match k.code {
                KeyCode::Enter => self.filter_edit = false,
                KeyCode::Esc => {
                    f.clear();
                    self.filter_edit = false;
                }
                KeyCode::Backspace => {
                    f.pop();
                }
                KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) && f.len() < 60 => f.push(c),
                _ => {}
            }
            self.set_sel(0);
            self.scroll = 0;
            return;
        }
        // Ctrl-C, Ctrl-Z, Ctrl-\ (which terminals send as Ctrl-4) ... do nothing.
        if k.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) {
            return;
        }
        let target = match k.code {
            KeyCode::F(n @ 1..=8) => Some(Screen::ALL[usize::from(n) - 1].0),
            KeyCode::Char(c @ '1'..='8') => Some(Screen::ALL[(c as usize) - ('1' as usize)].0),
            _ => None,
        };
        if let Some(s) = target {
            self.go(s, out);
            return;
        }
        if matches!(k.code, KeyCode::F(10) | KeyCode::Char('0')) {
            self.logout();
            self.say("Logged out.", false);
            return;
        }
        match self.screen {
            Screen::Dashboard => {}
            Screen::Services => self.services_key(k),
            Screen::Network => self.network_key(k),
            Screen::Connections => self.list_key(k, self.conn_rows().len()),
            Screen::Logs => self.logs_key(k),
            Screen::System => self.system_key(k, out),
            Screen::Changes => self.changes_key(k, out),
            Screen::Vrrp => self.vrrp_key(k),
        }
    }

    fn vrrp_key(&mut self, k: KeyEvent) {
        let len = self.vrrp.as_ref().map_or(0, |v| v.instances.len());
        if self.move_sel(k.code, len) || k.code != KeyCode::Char('m') {
            return;
        }
        let Some(i) = self.vrrp.as_ref().and_then(|v| v.instances.get(self.selected())) else { return };
        let on = !i.maintenance;
        let text = if on {
            format!("Put {} into maintenance? It hands its VIPs to the peer and stays backup. (y/n)", i.name)
        } else {
            format!("End maintenance of {}? It may take the VIPs back (preempt). (y/n)", i.name)
        };
        self.ask = Some(Ask { text, action: AskAction::VrrpMaintenance(i.name.clone(), on) });
    }

    fn go(&mut self, s: Screen, out: &mut Vec<Effect>) {
        if self.screen != s {
            self.scroll = 0;
            self.svc_open = None;
            self.sys_view = SysView::Menu;
            self.paste = None;
        }
        self.screen = s;
        if s == Screen::Changes && self.staged.is_some() && self.review.is_none() {
            self.validate(out);
        }
    }

    fn validate(&mut self, out: &mut Vec<Effect>) {
        let Some(cfg) = &self.staged else { return };
        if self.inflight.contains("validate") {
            return;
        }
        let text = cfg.to_toml();
        if matches!(self.apply, ApplyState::Idle) {
            self.apply = ApplyState::Validating;
        }
        self.send(Command::Validate { text }, out);
    }

    fn do_ask(&mut self, a: AskAction, out: &mut Vec<Effect>) {
        match a {
            AskAction::Reboot => out.push(Effect::Init(InitCmd::Reboot)),
            AskAction::Poweroff => out.push(Effect::Init(InitCmd::Poweroff)),
            AskAction::VrrpMaintenance(target, on) => self.send(Command::VrrpMaintenance { target, on }, out),
            AskAction::ClearOverride(service, real) => {
                self.send(Command::RealOverride { service, real, action: lbd::ctl::proto::OverrideAction::Enable }, out)
            }
            AskAction::Discard => {
                self.staged = None;
                self.notes.clear();
                self.review = None;
                self.say("Staged changes discarded.", false);
            }
            AskAction::DeleteService(i) => self
                .edit(|c| (i < c.services.len()).then(|| format!("delete service {}", c.services.remove(i).label()))),
            AskAction::DeleteReal(i, j) => self.edit(|c| {
                let s = c.services.get_mut(i)?;
                (j < s.reals.len()).then(|| {
                    let r = s.reals.remove(j);
                    format!("remove real {} from {}", r.address, s.label())
                })
            }),
            AskAction::DeleteNet(item) => self.edit(|c| match item {
                NetItem::Interface(i) if i < c.interfaces.len() => {
                    Some(format!("delete interface {}", c.interfaces.remove(i).name))
                }
                NetItem::Route(i) if i < c.routes.len() => {
                    Some(format!("delete route {}", c.routes.remove(i).destination))
                }
                NetItem::Vip(i) if i < c.vips.len() => Some(format!("delete VIP {}", c.vips.remove(i).address)),
                _ => None,
            }),
        }
    }

    /// Applies a direct edit to the shown config, checks it whole, stages it.
    fn edit(&mut self, f: impl FnOnce(&mut Config) -> Option<String>) {
        let Some(mut cfg) = self.view_cfg().cloned().or_else(|| self.base_for_edit()) else { return };
        let Some(note) = f(&mut cfg) else { return };
        match forms::check_whole(&cfg) {
            Ok(_) => self.stage(cfg, note),
            Err(errs) => self.say(format!("Not staged: {}", errs.join("; ")), true),
        }
    }

    fn open_form(&mut self, kind: FormKind) {
        let base = self.view_cfg().cloned().or_else(|| self.base_for_edit()).unwrap_or_default();
        self.form = Form::open(kind, &base);
    }

    fn move_sel(&mut self, k: KeyCode, len: usize) -> bool {
        let cur = self.selected();
        let next = match k {
            KeyCode::Up | KeyCode::Char('k') => cur.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => cur + 1,
            KeyCode::PageUp => cur.saturating_sub(10),
            KeyCode::PageDown => cur + 10,
            KeyCode::Home => 0,
            KeyCode::End => usize::MAX,
            _ => return false,
        };
        self.set_sel(next.min(len.saturating_sub(1)));
        true
    }

    fn list_key(&mut self, k: KeyEvent, len: usize) {
        if k.code == KeyCode::Char('/') {
            self.filter_edit = true;
            return;
        }
        if k.code == KeyCode::Esc {
            self.conn_filter.clear();
        }
        self.move_sel(k.code, len);
    }

    /// Service rows: the shown config joined with the kernel table.
    pub fn svc_rows(&self) -> Vec<SvcRow> {
        let mut rows = Vec::new();
        let mut seen = HashSet::new();
        let applied_keys: HashSet<String> = self
            .applied
            .as_ref()
            .map(|c| c.services.iter().map(|s| lbd::reconcile::desired_service(s).svc.key.to_string()).collect())
            .unwrap_or_default();
        if let Some(cfg) = self.view_cfg() {
            for (i, s) in cfg.services.iter().enumerate() {
                let d = lbd::reconcile::desired_service(s);
                let key = d.svc.key.to_string();
                seen.insert(key.clone());
                let live = self.services.iter().find(|l| l.key == key);
                // Live: what the kernel serves (a real whose check failed is
                // not up, whatever its configured weight); else the config.
                let (up, quiesced) = match live {
                    Some(l) => (
                        l.reals.iter().filter(|r| r.weight > 0 && !r.draining).count(),
                        l.reals.iter().filter(|r| r.weight == 0 && !r.draining).count(),
                    ),
                    None => {
                        let up = s.reals.iter().filter(|r| r.weight > 0).count();
                        (up, s.reals.len() - up)
                    }
                };
                let (active, inactive) = live.map(LiveService::conns).unwrap_or_default();
                rows.push(SvcRow {
                    cfg: Some(i),
                    label: s.label(),
                    key: key.clone(),
                    sched: s.scheduler.to_string(),
                    reals: s.reals.len(),
                    up,
                    quiesced,
                    draining: live.map(|l| l.reals.iter().filter(|r| r.draining).count()).unwrap_or(0),
                    active,
                    inactive,
                    stats: live.map(|l| l.stats).unwrap_or_default(),
                    state: if !applied_keys.contains(&key) {
                        "staged"
                    } else if live.is_some() {
                        "live"
                    } else {
                        "absent"
                    },
                });
            }
        }
        for l in &self.services {
            if seen.contains(&l.key) {
                continue;
            }
            let (active, inactive) = l.conns();
            rows.push(SvcRow {
                cfg: None,
                label: l.name.clone().unwrap_or_else(|| "-".into()),
                key: l.key.clone(),
                sched: l.scheduler.clone(),
                reals: l.reals.len(),
                up: l.reals.iter().filter(|r| r.weight > 0 && !r.draining).count(),
                quiesced: l.reals.iter().filter(|r| r.weight == 0 && !r.draining).count(),
                draining: l.reals.iter().filter(|r| r.draining).count(),
                active,
                inactive,
                stats: l.stats,
                state: if l.configured { "removing" } else { "unmanaged" },
            });
        }
        rows
    }

    /// Real rows of service `i` of the shown config.
    pub fn real_rows(&self, i: usize) -> Vec<RealRow> {
        let Some(s) = self.view_cfg().and_then(|c| c.services.get(i)) else { return Vec::new() };
        let d = lbd::reconcile::desired_service(s);
        let key = d.svc.key.to_string();
        let live = self.services.iter().find(|l| l.key == key);
        let applied = self.applied.as_ref().and_then(|c| {
            c.services.iter().find(|a| lbd::reconcile::desired_service(a).svc.key.to_string() == key).cloned()
        });
        let mut rows = Vec::new();
        let mut seen = HashSet::new();
        for (j, (r, dest)) in s.reals.iter().zip(&d.dests).enumerate() {
            let addr = model::hostport(&dest.addr.to_string(), dest.port);
            seen.insert(addr.clone());
            let lr = live.and_then(|l| l.reals.iter().find(|x| model::hostport(&x.address, x.port) == addr));
            let in_applied = applied.as_ref().is_some_and(|a| {
                let ad = lbd::reconcile::desired_service(a);
                ad.dests
                    .iter()
                    .zip(&a.reals)
                    .any(|(x, ar)| model::hostport(&x.addr.to_string(), x.port) == addr && ar.weight == r.weight)
            });
            let check = self.checks.as_ref().and_then(|c| c.find(&key, &addr)).cloned();
            let ov = check.as_ref().and_then(|c| c.override_.as_deref());
            let health = check.as_ref().and_then(|c| c.health.as_deref());
            let state = if !in_applied {
                "STAGED"
            } else if lr.is_some_and(|x| x.draining) {
                "DRAINING"
            } else if ov == Some("disable") {
                "DISABLED"
            } else if ov == Some("drain") {
                "DRAINED"
            } else if health == Some("down") {
                "FAILED"
            } else if r.weight == 0 {
                "QUIESCED"
            } else if lr.is_none() && health == Some("unknown") {
                "CHECKING"
            } else if lr.is_none() {
                "ABSENT"
            } else {
                "UP"
            };
            rows.push(RealRow {
                cfg: Some(j),
                address: addr,
                forward: r.forwarding.unwrap_or(s.forwarding).to_string(),
                weight: Some(r.weight),
                live_weight: lr.map(|x| x.weight),
                active: lr.map(|x| x.active).unwrap_or(0),
                inactive: lr.map(|x| x.inactive).unwrap_or(0),
                stats: lr.map(|x| x.stats).unwrap_or_default(),
                state,
                check,
            });
        }
        for x in live.map(|l| l.reals.as_slice()).unwrap_or_default() {
            let addr = model::hostport(&x.address, x.port);
            if seen.contains(&addr) {
                continue;
            }
            rows.push(RealRow {
                cfg: None,
                address: addr,
                forward: x.forward.clone(),
                weight: None,
                live_weight: Some(x.weight),
                active: x.active,
                inactive: x.inactive,
                stats: x.stats,
                state: if x.draining { "DRAINING" } else { "REMOVING" },
                check: None,
            });
        }
        rows
    }

    fn services_key(&mut self, k: KeyEvent) {
        if let Some(i) = self.svc_open {
            let rows = self.real_rows(i);
            let cur = rows.get(self.real_sel).and_then(|r| r.cfg);
            match k.code {
                KeyCode::Esc | KeyCode::Left => self.svc_open = None,
                KeyCode::Up | KeyCode::Char('k') => self.real_sel = self.real_sel.saturating_sub(1),
                KeyCode::Down | KeyCode::Char('j') => {
                    self.real_sel = (self.real_sel + 1).min(rows.len().saturating_sub(1))
                }
                KeyCode::Char('a') => self.open_form(FormKind::AddReal(i)),
                KeyCode::Char('s') => self.open_form(FormKind::EditService(i)),
                KeyCode::Char('e') | KeyCode::Enter => {
                    if let Some(j) = cur {
                        self.open_form(FormKind::EditReal(i, j))
                    }
                }
                KeyCode::Char('d') | KeyCode::Delete => {
                    if let Some(j) = cur {
                        let text = format!("Remove real {} (lbd drains it first)? y/n", rows[self.real_sel].address);
                        self.ask = Some(Ask { text, action: AskAction::DeleteReal(i, j) });
                    }
                }
                KeyCode::Char('w') => {
                    if let Some(j) = cur {
                        self.set_weight(i, j, false)
                    }
                }
                KeyCode::Char('u') => {
                    let ov = rows.get(self.real_sel).and_then(|r| r.check.as_ref()?.override_.clone());
                    match (cur, ov) {
                        // The weight in the config cannot lift an override: offer to.
                        (Some(_), Some(ov)) => {
                            let svc = self.view_cfg().and_then(|c| c.services.get(i)).map(|s| s.label());
                            let real = rows[self.real_sel].address.clone();
                            if let Some(svc) = svc {
                                self.ask = Some(Ask {
                                    text: format!(
                                        "{real} is held by an operator override ({ov}). Lift it now? \
                                         (at once, not staged) y/n"
                                    ),
                                    action: AskAction::ClearOverride(svc, real),
                                });
                            }
                        }
                        (Some(j), None) => self.set_weight(i, j, true),
                        _ => {}
                    }
                }
                _ => {}
            }
            return;
        }
        let rows = self.svc_rows();
        if self.move_sel(k.code, rows.len()) {
            return;
        }
        let cur = rows.get(self.selected()).and_then(|r| r.cfg);
        match k.code {
            KeyCode::Char('a') => self.open_form(FormKind::AddService),
            KeyCode::Enter | KeyCode::Right => {
                if let Some(i) = cur {
                    self.svc_open = Some(i);
                    self.real_sel = 0;
                }
            }
            KeyCode::Char('e') => {
                if let Some(i) = cur {
                    self.open_form(FormKind::EditService(i))
                }
            }
            KeyCode::Char('d') | KeyCode::Delete => {
                if let Some(i) = cur {
                    let text = format!("Delete service {}? y/n", rows[self.selected()].label);
                    self.ask = Some(Ask { text, action: AskAction::DeleteService(i) });
                }
            }
            _ => {}
        }
    }

    /// Drain (weight 0, remembering the weight) or enable (restore it).
    fn set_weight(&mut self, i: usize, j: usize, enable: bool) {
        let Some(r) = self.view_cfg().and_then(|c| c.services.get(i)).and_then(|s| s.reals.get(j)) else { return };
        let addr = r.address.to_string();
        let cur = r.weight;
        let saved_key = (i, addr.clone());
        if !enable {
            if cur == 0 {
                self.say(format!("{addr} already has weight 0"), false);
                return;
            }
            self.saved_weights.insert(saved_key, cur);
            self.edit(|c| {
                c.services[i].reals[j].weight = 0;
                Some(format!("drain {addr} (weight {cur} -> 0)"))
            });
        } else {
            if cur > 0 {
                self.say(format!("{addr} is enabled (weight {cur})"), false);
                return;
            }
            let w = self.saved_weights.remove(&saved_key).unwrap_or(1);
            self.edit(|c| {
                c.services[i].reals[j].weight = w;
                Some(format!("enable {addr} (weight 0 -> {w})"))
            });
        }
    }

    /// Network rows of the shown config.
    pub fn net_items(&self) -> Vec<NetItem> {
        let Some(c) = self.view_cfg() else { return Vec::new() };
        (0..c.interfaces.len())
            .map(NetItem::Interface)
            .chain((0..c.routes.len()).map(NetItem::Route))
            .chain((0..c.vips.len()).map(NetItem::Vip))
            .collect()
    }

    fn network_key(&mut self, k: KeyEvent) {
        let items = self.net_items();
        if self.move_sel(k.code, items.len()) {
            return;
        }
        let cur = items.get(self.selected()).copied();
        match k.code {
            KeyCode::Char('i') => self.open_form(FormKind::AddInterface),
            KeyCode::Char('r') => self.open_form(FormKind::AddRoute),
            KeyCode::Char('v') => self.open_form(FormKind::AddVip),
            KeyCode::Char('e') | KeyCode::Enter => match cur {
                Some(NetItem::Interface(i)) => self.open_form(FormKind::EditInterface(i)),
                Some(NetItem::Route(i)) => self.open_form(FormKind::EditRoute(i)),
                Some(NetItem::Vip(i)) => self.open_form(FormKind::EditVip(i)),
                None => {}
            },
            KeyCode::Char('d') | KeyCode::Delete => {
                if let Some(item) = cur {
                    self.ask =
                        Some(Ask { text: "Delete the selected entry? y/n".into(), action: AskAction::DeleteNet(item) });
                }
            }
            _ => {}
        }
    }

    /// The connections matching the filter (on every column).
    pub fn conn_rows(&self) -> Vec<&Conn> {
        let f = self.conn_filter.to_ascii_lowercase();
        match &self.conns {
            Ok(c) => c.iter().filter(|c| f.is_empty() || c.line().to_ascii_lowercase().contains(&f)).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The matching connections as one line each (what the filter sees).
    pub fn conn_lines(&self) -> Vec<String> {
        self.conn_rows().into_iter().map(Conn::line).collect()
    }

    /// The log lines shown (source, level, filter), oldest first.
    pub fn log_lines(&self) -> Vec<&LogLine> {
        let f = self.log_filter.to_ascii_lowercase();
        let init: Vec<&LogLine> = match (&self.init_logs, self.log_source) {
            (Ok(l), LogSource::Init | LogSource::Both) => l.iter().collect(),
            _ => Vec::new(),
        };
        let lbd: Vec<&LogLine> =
            if self.log_source == LogSource::Init { Vec::new() } else { self.lbd_logs.iter().collect() };
        init.into_iter()
            .chain(lbd)
            .filter(|l| model::level_rank(&l.level) <= self.log_level)
            .filter(|l| f.is_empty() || l.msg.to_ascii_lowercase().contains(&f))
            .collect()
    }

    fn logs_key(&mut self, k: KeyEvent) {
        match k.code {
            KeyCode::Char('/') => self.filter_edit = true,
            KeyCode::Char('s') => {
                self.log_source = match self.log_source {
                    LogSource::Lbd => LogSource::Init,
                    LogSource::Init => LogSource::Both,
                    LogSource::Both => LogSource::Lbd,
                }
            }
            KeyCode::Char('f') => self.log_level = (self.log_level + 4) % 5,
            KeyCode::Esc => self.log_filter.clear(),
            KeyCode::Up | KeyCode::Char('k') => self.scroll += 1,
            KeyCode::Down | KeyCode::Char('j') => self.scroll = self.scroll.saturating_sub(1),
            KeyCode::PageUp => self.scroll += 10,
            KeyCode::PageDown => self.scroll = self.scroll.saturating_sub(10),
            KeyCode::End => self.scroll = 0,
            _ => {}
        }
    }

    fn system_key(&mut self, k: KeyEvent, out: &mut Vec<Effect>) {
        if self.sys_view == SysView::History {
            match k.code {
                KeyCode::Esc | KeyCode::Left | KeyCode::Char('q') => self.sys_view = SysView::Menu,
                KeyCode::Up | KeyCode::Char('k') => self.hist_sel = self.hist_sel.saturating_sub(1),
                KeyCode::Down | KeyCode::Char('j') => {
                    self.hist_sel = (self.hist_sel + 1).min(self.history.len().saturating_sub(1))
                }
                KeyCode::Enter | KeyCode::Right => {
                    if let Some(v) = self.history.get(self.hist_sel) {
                        let n = v.n;
                        self.send(Command::HistoryGet { n }, out);
                    }
                }
                _ => {}
            }
            return;
        }
        if self.sys_view == SysView::Import {
            match k.code {
                KeyCode::Esc | KeyCode::Left | KeyCode::Char('q') => {
                    self.paste = None;
                    self.sys_view = SysView::Menu;
                }
                KeyCode::Char('s') => self.stage_import(out),
                KeyCode::Char('p') if !self.paste.as_ref().is_some_and(|p| p.converting) => {
                    self.paste = Some(Paste::default());
                    self.scroll = 0;
                }
                KeyCode::Up | KeyCode::Char('k') => self.scroll = self.scroll.saturating_sub(1),
                KeyCode::Down | KeyCode::Char('j') => self.scroll += 1,
                KeyCode::PageUp => self.scroll = self.scroll.saturating_sub(10),
                KeyCode::PageDown => self.scroll += 10,
                _ => {}
            }
            return;
        }
        if self.sys_view == SysView::Version && k.code == KeyCode::Char('s') {
            self.restore_version();
            return;
        }
        if self.sys_view == SysView::Version && matches!(k.code, KeyCode::Esc | KeyCode::Left | KeyCode::Char('q')) {
            self.sys_view = SysView::History;
            return;
        }
        if self.sys_view != SysView::Menu {
            match k.code {
                KeyCode::Esc | KeyCode::Left | KeyCode::Char('q') => self.sys_view = SysView::Menu,
                KeyCode::Up | KeyCode::Char('k') => self.scroll = self.scroll.saturating_sub(1),
                KeyCode::Down | KeyCode::Char('j') => self.scroll += 1,
                KeyCode::PageUp => self.scroll = self.scroll.saturating_sub(10),
                KeyCode::PageDown => self.scroll += 10,
                KeyCode::Home => self.scroll = 0,
                _ => {}
            }
            return;
        }
        if self.move_sel(k.code, SYS_MENU.len()) {
            return;
        }
        let c = match k.code {
            KeyCode::Enter => SYS_MENU[self.selected().min(SYS_MENU.len() - 1)].0,
            KeyCode::Char(c) => c,
            _ => return,
        };
        let lose = if self.staged.is_some() { " Staged changes are not applied and will be lost." } else { "" };
        match c {
            'h' => self.open_form(FormKind::System),
            'p' => self.form = Form::open(FormKind::Password, &Config::default()),
            'c' => {
                self.sys_view = SysView::Config;
                self.scroll = 0;
            }
            'v' => {
                self.sys_view = SysView::History;
                self.scroll = 0;
                self.soon(&["history"]);
            }
            'b' => self.ask = Some(Ask { text: format!("Reboot the box now?{lose} y/n"), action: AskAction::Reboot }),
            'o' => {
                self.ask = Some(Ask { text: format!("Power the box off now?{lose} y/n"), action: AskAction::Poweroff })
            }
            'R' => self.form = Form::open(FormKind::FactoryReset, &Config::default()),
            'i' => {
                self.sys_view = SysView::Import;
                self.paste = Some(Paste::default());
                self.scroll = 0;
            }
            _ => {}
        }
    }

    /// Whether keys go into a paste (everything but Ctrl-D, Esc, Backspace
    /// is text then: digits do not switch screens).
    pub fn pasting(&self) -> bool {
        self.screen == Screen::System
            && self.sys_view == SysView::Import
            && self.paste.as_ref().is_some_and(|p| !p.converting && p.result.is_none())
    }

    /// A key of a paste. Over a serial line a paste is a burst of keys: a
    /// newline arrives as CR (Enter), LF (Ctrl-J) or both; a tab as Tab.
    fn paste_key(&mut self, k: KeyEvent, out: &mut Vec<Effect>) {
        let Some(p) = self.paste.as_mut() else { return };
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        let was_cr = std::mem::take(&mut p.last_cr);
        let ch = match k.code {
            KeyCode::Esc => {
                self.paste = None;
                self.sys_view = SysView::Menu;
                self.say("Import cancelled: nothing was sent.", false);
                return;
            }
            KeyCode::Char('d') if ctrl => {
                if p.dropped > 0 {
                    self.say(
                        format!("Too large: the import takes at most {} KiB. Esc, then paste less.", MAX_PASTE / 1024),
                        true,
                    );
                } else if p.text.trim().is_empty() {
                    self.say("Nothing pasted yet: paste the keepalived.conf or ipvsadm rules, then Ctrl-D.", true);
                } else {
                    p.converting = true;
                    let format = lbd::import::detect(&p.text);
                    p.format = Some(format);
                    let text = p.text.clone();
                    let base = self.view_cfg().cloned().or_else(|| self.base_for_edit()).map(|c| c.to_toml());
                    self.send(Command::Import { format, text, base }, out);
                }
                return;
            }
            KeyCode::Char('u') if ctrl => {
                p.text.clear();
                p.dropped = 0;
                return;
            }
            KeyCode::Backspace => {
                if p.dropped == 0 {
                    p.text.pop();
                }
                return;
            }
            KeyCode::Enter => {
                p.last_cr = true;
                '\n'
            }
            KeyCode::Char('j') if ctrl => {
                if was_cr {
                    return;
                }
                '\n'
            }
            KeyCode::Tab => '\t',
            KeyCode::Char(c) if !ctrl && !k.modifiers.contains(KeyModifiers::ALT) => c,
            _ => return,
        };
        if p.dropped > 0 || p.text.len() + ch.len_utf8() > MAX_PASTE {
            p.dropped += ch.len_utf8();
        } else {
            p.text.push(ch);
        }
    }

    /// `s` on the import report: stage lbd's merged config.
    fn stage_import(&mut self, out: &mut Vec<Effect>) {
        let Some(merged) = self.paste.as_ref().and_then(|p| p.result.as_ref()).and_then(|r| r.merged.clone()) else {
            return;
        };
        let what = self.paste.as_ref().map_or("keepalived.conf", Paste::what);
        let ipvsadm = self.paste.as_ref().is_some_and(|p| p.format == Some(ImportFormat::Ipvsadm));
        match lbd::config::parse(&merged, "imported") {
            Ok(mut cfg) => {
                if cfg.system.console_password.is_none() {
                    cfg.system.console_password = self.hash.clone();
                }
                match forms::check_whole(&cfg) {
                    Ok(_) => {
                        let v = cfg.vrrp.instances.len();
                        let note = if ipvsadm {
                            format!("import {what}: {} service(s) (replace the services)", cfg.services.len())
                        } else {
                            format!(
                                "import {what}: {} service(s){} (replace the services{})",
                                cfg.services.len(),
                                if v > 0 { format!(", {v} VRRP instance(s)") } else { String::new() },
                                if v > 0 || self.view_cfg().is_some_and(|c| !c.vrrp.instances.is_empty()) {
                                    " and VRRP"
                                } else {
                                    ""
                                }
                            )
                        };
                        self.stage(cfg, note);
                        self.paste = None;
                        self.sys_view = SysView::Menu;
                        self.go(Screen::Changes, out);
                        self.say("Staged from the paste: review it here, then a applies (with confirm).", false);
                    }
                    Err(e) => self.say(format!("Not staged: {}", e.join("; ")), true),
                }
            }
            Err(errs) => self.say(
                format!("Not staged: {}", errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")),
                true,
            ),
        }
    }

    /// Stages the fetched old version, keeping the current password.
    fn restore_version(&mut self) {
        let Some((n, text)) = self.old_version.clone() else { return };
        match lbd::config::parse(&text, &format!("version {n}")) {
            Ok(mut cfg) => {
                cfg.system.console_password = self.hash.clone();
                match forms::check_whole(&cfg) {
                    Ok(_) => {
                        self.stage(cfg, format!("restore config version {n} (password kept)"));
                        self.sys_view = SysView::Menu;
                    }
                    Err(e) => self.say(format!("Not staged: {}", e.join("; ")), true),
                }
            }
            Err(errs) => self.say(
                format!(
                    "Version {n} is not valid now: {}",
                    errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                ),
                true,
            ),
        }
    }

    fn changes_key(&mut self, k: KeyEvent, out: &mut Vec<Effect>) {
        let pending = self.confirm_left().is_some();
        match k.code {
            KeyCode::Char('c') if pending => {
                self.apply = ApplyState::Confirming;
                self.send(Command::Confirm, out);
            }
            KeyCode::Char('r') if pending => {
                self.apply = ApplyState::RollingBack;
                self.send(Command::Rollback, out);
            }
            KeyCode::Char('a') if self.staged.is_some() => {
                if pending {
                    self.say("An apply is waiting for confirmation: confirm or roll back first.", true);
                } else if matches!(&self.review, Some(Review { changes: Err(_), .. })) {
                    self.say("lbd refuses this config: fix the errors shown (or discard).", true);
                } else {
                    self.start_apply(out);
                }
            }
            KeyCode::Char('v') if self.staged.is_some() => {
                self.review = None;
                self.validate(out);
            }
            KeyCode::Char('u') if self.staged.is_some() => {
                self.ask = Some(Ask {
                    text: format!("Discard {} staged change(s)? y/n", self.notes.len()),
                    action: AskAction::Discard,
                })
            }
            KeyCode::Up | KeyCode::Char('k') => self.scroll = self.scroll.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => self.scroll += 1,
            KeyCode::PageUp => self.scroll = self.scroll.saturating_sub(10),
            KeyCode::PageDown => self.scroll += 10,
            _ => {}
        }
    }
}
