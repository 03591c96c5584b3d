//! Request and response types of lbd's control socket.

use serde::{Deserialize, Serialize};

/// A request line: `{"id": 1, "cmd": "ping"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the response.
    #[serde(default)]
    pub id: u64,
    /// What to do.
    #[serde(flatten)]
    pub cmd: Command,
}

/// Which ipvsadm view `list` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// `ipvsadm -Ln`
    #[default]
    Default,
    /// `ipvsadm -Ln --stats`
    Stats,
    /// `ipvsadm -Ln --rate`
    Rate,
    /// `ipvsadm -Ln --thresholds`
    Thresholds,
    /// `ipvsadm -Ln --persistent-conn`
    PersistentConn,
    /// `ipvsadm -Ln --tun-info`
    TunInfo,
    /// `ipvsadm -S -n`
    Rules,
    /// `ipvsadm -Lnc`
    Connections,
    /// `ipvsadm -L --timeout`
    Timeout,
    /// `ipvsadm -L --daemon`
    Daemon,
}

/// What an operator does to one real server (persisted across restarts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideAction {
    /// Back to what the config and the checks say.
    Enable,
    /// Out of the table at once (as if failed).
    Disable,
    /// Weight 0: existing connections stay, no new ones.
    Drain,
}

/// What `import` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportFormat {
    /// A keepalived.conf.
    Keepalived,
    /// `ipvsadm -S` output or ipvsadm command lines.
    Ipvsadm,
}

/// Longest request line lbd reads (a 10,000-service config is a few MiB);
/// a longer one gets an error and the connection is closed.
pub const MAX_REQUEST_LINE: usize = 64 << 20;

/// Largest text `import` accepts (a pasted keepalived.conf), bytes.
pub const MAX_IMPORT_TEXT: usize = 256 * 1024;

/// Commands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Liveness: answers `"pong"`.
    Ping,
    /// Versions, config state, IPVS availability, last reconcile.
    Status,
    /// The live table joined with the config (names, draining), as JSON.
    Services,
    /// An ipvsadm-format text view.
    List {
        /// Which view.
        #[serde(default)]
        view: View,
        /// `--exact` numbers.
        #[serde(default)]
        exact: bool,
    },
    /// Connection entries (`/proc/net/ip_vs_conn`), at most `limit`.
    Connections {
        /// Cap on entries returned (default 1000).
        #[serde(default)]
        limit: Option<usize>,
    },
    /// The applied config text.
    ConfigGet,
    /// Validates a config text; applies nothing.
    Validate {
        /// TOML.
        text: String,
    },
    /// Validates, persists, reconciles. With `confirm_within` (seconds) it
    /// rolls back by itself unless `confirm` arrives in time.
    Apply {
        /// TOML.
        text: String,
        /// Seconds to wait for `confirm`.
        #[serde(default)]
        confirm_within: Option<u64>,
    },
    /// Keeps a config applied with `confirm_within`.
    Confirm,
    /// Goes back to the config before the pending apply, now.
    Rollback,
    /// Replaces the services with ipvsadm rules (`ipvsadm -S` output or
    /// command lines), as `ipvsadm -C; ipvsadm -R < rules` would, and applies
    /// the result (the rest of the config stays).
    Restore {
        /// The rules.
        rules: String,
        /// As for `apply`.
        #[serde(default)]
        confirm_within: Option<u64>,
    },
    /// Sets one real server's weight in the config (persisted, then applied),
    /// without re-sending the whole config: fast even with 10,000 services.
    SetWeight {
        /// The service: its `name`, `[tcp|udp|sctp] ADDR:PORT`, or `fwmark N [ipv6]`.
        service: String,
        /// The real server: `ADDR` or `ADDR:PORT`.
        real: String,
        /// New weight, 0..=65535 (0 quiesces it).
        weight: u32,
    },
    /// Zeroes the IPVS counters.
    Zero,
    /// Recent log lines after sequence number `after`.
    Logs {
        /// Only entries newer than this sequence number.
        #[serde(default)]
        after: u64,
        /// At most this many (newest kept).
        #[serde(default)]
        max: Option<usize>,
    },
    /// The kept config versions.
    History,
    /// The text of kept version `n` (1 = the config before the current one).
    HistoryGet {
        /// Which version, as `history` numbers them.
        n: usize,
    },
    /// Live links, addresses and routes (what `ip addr` / `ip route` show).
    Net,
    /// VRRP instances: state, priorities, master, counters per drop reason, history.
    Vrrp,
    /// Health checks: per real its check, state, last result with reason and
    /// latency, transitions, override and weight; per service the quorum.
    Checks,
    /// Disables, drains or re-enables one real server (persisted next to
    /// the config, so it survives restarts and applies).
    RealOverride {
        /// The service: its `name`, `[tcp|udp|sctp] ADDR:PORT`, or `fwmark N [ipv6]`.
        service: String,
        /// The real server: `ADDR` or `ADDR:PORT`.
        real: String,
        /// What to do.
        action: OverrideAction,
    },
    /// Firewall-mark rules: what the config generates (ftp shorthands
    /// expanded), the nftables table lbd writes, whether the kernel has it,
    /// and the `ip_vs_ftp` helper's ports.
    Fwmark,
    /// Converts a pasted keepalived.conf (or ipvsadm rules) with the same
    /// importer as `lbd import`; applies nothing. Answers the report (each
    /// entry with its line), the imported TOML and `merged`: `base` (or the
    /// applied config) with its services, VRRP, IPVS timeouts and host name
    /// replaced by the imported ones, ready to validate and apply. `include`
    /// cannot be resolved from a paste and is reported. At most
    /// [`MAX_IMPORT_TEXT`] bytes.
    Import {
        /// What the text is.
        format: ImportFormat,
        /// The pasted text.
        text: String,
        /// The config to merge into (TOML); the applied config when absent.
        #[serde(default)]
        base: Option<String>,
    },
    /// VRRP maintenance: hand over and stay backup (`on`), or resume.
    VrrpMaintenance {
        /// An instance or sync group name.
        target: String,
        /// On or off.
        on: bool,
    },
}

/// A response line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// Whether the command succeeded.
    pub ok: bool,
    /// Result on success (and details such as config errors on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success with data.
    pub fn ok(id: u64, data: serde_json::Value) -> Self {
        Response { id, ok: true, data: Some(data), error: None }
    }
    /// A failure.
    pub fn err(id: u64, error: impl Into<String>) -> Self {
        Response { id, ok: false, data: None, error: Some(error.into()) }
    }
    /// A failure with details.
    pub fn err_with(id: u64, error: impl Into<String>, data: serde_json::Value) -> Self {
        Response { id, ok: false, data: Some(data), error: Some(error.into()) }
    }
}
