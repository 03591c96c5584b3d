//! Tolerant views of what lbd and init answer. Every field has a default and
//! unknown fields are ignored, so a newer daemon never breaks the console.

use lbd::config::ConfigError;
use serde::Deserialize;
use serde_json::Value;

/// `status`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Status {
    /// `lbd` version.
    pub version: String,
    /// Host name of the applied config.
    pub hostname: String,
    /// Seconds lbd has run.
    pub uptime_s: u64,
    /// Config file state.
    pub config: CfgStatus,
    /// IPVS availability.
    pub ipvs: IpvsStatus,
    /// Counts in the kernel table.
    pub kernel: KernelCounts,
    /// Reconcile loop state.
    pub reconcile: Reconcile,
}

/// `status.config`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CfgStatus {
    /// Path of the config file.
    pub path: String,
    /// `ok`, `missing` or `invalid` with errors.
    pub status: CfgState,
    /// Number of configured services.
    pub services: usize,
    /// An apply waiting for `confirm`.
    pub pending_confirm: Option<PendingConfirm>,
}

/// `status.config.status`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CfgState {
    /// `ok`, `missing`, `invalid`.
    pub state: String,
    /// Errors of an invalid config.
    pub errors: Vec<ConfigError>,
}

/// `status.config.pending_confirm`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PendingConfirm {
    /// Seconds until lbd rolls back by itself.
    pub remaining_s: u64,
}

/// `status.ipvs`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct IpvsStatus {
    /// Whether the kernel answered.
    pub available: bool,
    /// IPVS version `1.2.1`.
    pub version: String,
    /// Why not available.
    pub error: Option<String>,
}

/// `status.kernel`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default)]
pub struct KernelCounts {
    /// Virtual services in the kernel.
    pub services: usize,
    /// Real servers in the kernel.
    pub reals: usize,
}

/// `status.reconcile`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Reconcile {
    /// Passes run.
    pub passes: u64,
    /// Whether reconciling is paused (invalid config).
    pub paused: bool,
    /// The last pass.
    pub last: Option<LastPass>,
}

/// `status.reconcile.last`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct LastPass {
    /// How long ago.
    pub ago_ms: u64,
    /// What it did.
    pub report: PassReport,
}

/// A reconcile report.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PassReport {
    /// Operations applied.
    pub applied: Vec<String>,
    /// Operations refused, with reasons (newer lbd: only the first few).
    pub failed: Vec<(String, String)>,
    /// How many were refused (newer lbd; 0 from an older one).
    pub failed_count: usize,
    /// Why the pass could not run.
    pub error: Option<String>,
    /// Reals draining.
    pub draining: usize,
}

/// IPVS counters, as lbd reports them (its own type: one definition of the
/// fields on both sides of the socket).
pub use lbd::ipvs::types::Stats;

/// One entry of `services`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct LiveService {
    /// `TCP 192.0.2.1:80` / `FWM 300`.
    pub key: String,
    /// Configured name.
    pub name: Option<String>,
    /// Whether the config has it.
    pub configured: bool,
    /// Scheduler name.
    pub scheduler: String,
    /// Persistence timeout.
    pub persistence: Option<u32>,
    /// Counters.
    pub stats: Stats,
    /// Real servers.
    pub reals: Vec<LiveReal>,
}

/// One real of a live service.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct LiveReal {
    /// Address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// `Route`, `Masq`, `Tunnel`, ...
    pub forward: String,
    /// Weight in the kernel.
    pub weight: u32,
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// Removed from the config; kept at weight 0 until its connections end.
    pub draining: bool,
    /// Counters.
    pub stats: Stats,
}

impl LiveService {
    /// Sums of active and inactive connections over the reals.
    pub fn conns(&self) -> (u64, u64) {
        self.reals.iter().fold((0, 0), |(a, i), r| (a + u64::from(r.active), i + u64::from(r.inactive)))
    }
}

/// `checks`: what the health checks say about each configured real.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Checks {
    /// One per configured real server.
    pub reals: Vec<CheckReal>,
}

impl Checks {
    /// The entry of a real of the service with ipvsadm key `key`.
    pub fn find(&self, key: &str, real: &str) -> Option<&CheckReal> {
        self.reals.iter().find(|r| r.service_key == key && r.real == real)
    }
}

/// `checks.reals[]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CheckReal {
    /// `TCP 192.0.2.1:80`, as `services` keys them.
    pub service_key: String,
    /// `10.0.0.1:80`.
    pub real: String,
    /// The check (`tcp 10.0.0.1:80`); `None` = not checked.
    pub check: Option<String>,
    /// `up`, `down`, `unknown`; `None` = not checked.
    pub health: Option<String>,
    /// The operator's `disable` or `drain`.
    #[serde(rename = "override")]
    pub override_: Option<String>,
    /// The weight lbd gives it in the kernel; `None` = kept out of the table.
    pub weight: Option<u32>,
    /// The check's last result.
    pub status: Option<CheckStatus>,
}

/// `checks.reals[].status`: lbd's own type, read back.
pub use lbd::health::engine::Status as CheckStatus;

impl CheckReal {
    /// `UP`, `DOWN`, `?` (not judged yet), `-` (not checked).
    pub fn health_word(&self) -> &'static str {
        match self.health.as_deref() {
            Some("up") => "UP",
            Some("down") => "DOWN",
            Some(_) => "?",
            None => "-",
        }
    }

    /// The last attempt in a few words: `ok 1.2ms`, `FAIL connection refused`.
    pub fn last_word(&self) -> String {
        match &self.status {
            Some(CheckStatus { last_ok: Some(true), last_latency_ms, .. }) => {
                format!("ok {}", fmt_latency(*last_latency_ms))
            }
            Some(CheckStatus { last_ok: Some(false), last_reason, .. }) => format!("FAIL {last_reason}"),
            Some(_) => "not run yet".into(),
            None if self.check.is_some() => "not run yet".into(),
            None => "-".into(),
        }
    }
}

/// `0.4ms`, `12ms`, `1.5s`.
pub fn fmt_latency(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{ms:.1}ms")
    }
}

/// `21:03:04` (UTC) of a Unix time.
pub fn fmt_hms(t: u64) -> String {
    format!("{:02}:{:02}:{:02}", (t / 3600) % 24, (t / 60) % 60, t % 60)
}

/// One connection (`/proc/net/ip_vs_conn`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Conn {
    /// `TCP`, `UDP`.
    pub protocol: String,
    /// Client address and port.
    pub client: (String, u16),
    /// Virtual address and port.
    pub virt: (String, u16),
    /// Real server.
    pub dest: (String, u16),
    /// State.
    pub state: String,
    /// Seconds to expiry.
    pub expires: u32,
}

/// Joins an address and port the ipvsadm way (`[v6]:port`).
pub fn hostport(addr: &str, port: u16) -> String {
    if addr.contains(':') { format!("[{addr}]:{port}") } else { format!("{addr}:{port}") }
}

impl Conn {
    /// The line the table shows (also what the filter matches).
    pub fn line(&self) -> String {
        format!(
            "{:<5} {:>5} {:<12} {:<22} {:<22} {}",
            self.protocol,
            self.expires,
            self.state,
            hostport(&self.client.0, self.client.1),
            hostport(&self.virt.0, self.virt.1),
            hostport(&self.dest.0, self.dest.1)
        )
    }
}

/// A log line from lbd or init.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LogLine {
    /// Sequence number (lbd only).
    pub seq: u64,
    /// Milliseconds since that process started.
    pub t_ms: u64,
    /// Level name.
    pub level: String,
    /// Text.
    pub msg: String,
    /// `lbd` or `init` (filled in by the console).
    #[serde(skip)]
    pub source: &'static str,
}

/// Numeric severity of a level name (error = 0 ... trace = 4).
pub fn level_rank(level: &str) -> u8 {
    match level.to_ascii_lowercase().as_str() {
        "error" | "err" | "crit" | "alert" | "emerg" => 0,
        "warn" | "warning" => 1,
        "info" | "notice" => 2,
        "debug" => 3,
        _ => 4,
    }
}

/// A kept config version (`history`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Version {
    /// 1 = previous.
    pub n: usize,
    /// Bytes.
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: u64,
}

/// Renders any JSON value as indented `key: value` lines (for init's
/// reports, whose shape the console does not depend on).
pub fn json_lines(v: &Value, indent: usize, out: &mut Vec<String>) {
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::Object(_) | Value::Array(_) if !is_flat(v) => {
                        out.push(format!("{pad}{k}:"));
                        json_lines(v, indent + 1, out);
                    }
                    _ => out.push(format!("{pad}{k}: {}", scalar(v))),
                }
            }
        }
        Value::Array(a) => {
            if a.is_empty() {
                out.push(format!("{pad}(none)"));
            }
            for v in a {
                match v {
                    Value::Object(m) if m.values().all(|v| !matches!(v, Value::Object(_) | Value::Array(_))) => {
                        let s: Vec<String> = m.iter().map(|(k, v)| format!("{k}={}", scalar(v))).collect();
                        out.push(format!("{pad}- {}", s.join(" ")));
                    }
                    Value::Object(_) | Value::Array(_) => {
                        out.push(format!("{pad}-"));
                        json_lines(v, indent + 1, out);
                    }
                    _ => out.push(format!("{pad}- {}", scalar(v))),
                }
            }
        }
        _ => out.push(format!("{pad}{}", scalar(v))),
    }
}

fn is_flat(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty() || a.iter().all(|x| !matches!(x, Value::Object(_) | Value::Array(_))),
        Value::Object(m) => m.is_empty(),
        _ => true,
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(a) if a.is_empty() => "(none)".into(),
        Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join(", "),
        Value::Object(m) if m.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

/// `1d 02:03:04` / `02:03:04`.
pub fn fmt_uptime(s: u64) -> String {
    let (d, h, m, sec) = (s / 86400, (s / 3600) % 24, (s / 60) % 60, s % 60);
    if d > 0 { format!("{d}d {h:02}:{m:02}:{sec:02}") } else { format!("{h:02}:{m:02}:{sec:02}") }
}

/// `1.2K`, `3.4M` as ipvsadm without `--exact`.
pub fn fmt_num(n: u64) -> String {
    const U: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 10_000.0 && i < U.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 { n.to_string() } else { format!("{v:.1}{}", U[i]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_parses_lbd_shape_and_ignores_unknown() {
        let v = serde_json::json!({
            "product": "lvsbox", "version": "0.1.0", "hostname": "lb1", "uptime_s": 5, "new_field": [1],
            "config": {"path": "/cfg/lvsbox.toml", "status": {"state": "invalid", "errors": [
                {"file": "f", "line": 3, "col": 1, "path": "services[0].scheduler", "message": "unknown scheduler"}]},
                "services": 1, "pending_confirm": {"remaining_s": 42}},
            "ipvs": {"available": true, "version": "1.2.1"},
        });
        let s: Status = serde_json::from_value(v).unwrap();
        assert_eq!(s.hostname, "lb1");
        assert_eq!(s.config.status.errors[0].line, 3);
        assert_eq!(s.config.pending_confirm.unwrap().remaining_s, 42);
    }

    #[test]
    fn conn_tuples() {
        let c: Conn = serde_json::from_value(serde_json::json!({
            "protocol": "TCP", "client": ["10.1.1.1", 5000], "virt": ["192.0.2.10", 80],
            "dest": ["2001:db8::1", 80], "state": "ESTABLISHED", "expires": 899, "pe": null
        }))
        .unwrap();
        assert!(c.line().contains("[2001:db8::1]:80"));
    }

    #[test]
    fn json_lines_flattens() {
        let mut out = Vec::new();
        json_lines(
            &serde_json::json!({"config": {"source": "/cfg", "errors": []}, "modules": ["a", "b"]}),
            0,
            &mut out,
        );
        assert_eq!(out, vec!["config:", "  errors: (none)", "  source: /cfg", "modules: a, b"]);
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt_uptime(90061), "1d 01:01:01");
        assert_eq!(fmt_num(9999), "9999");
        assert_eq!(fmt_num(12_345), "12.3K");
    }
}

/// `vrrp`: lbd's VRRP engine.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Vrrp {
    /// Whether the engine runs (false without a `[vrrp]` section).
    pub running: bool,
    /// Instances in config order.
    pub instances: Vec<VrrpInstance>,
    /// IPVS connection sync.
    pub sync_daemon: Option<VrrpSync>,
}

/// `vrrp.sync_daemon`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct VrrpSync {
    /// `master`, `backup`, `both` or `none`.
    pub role: String,
}

/// `vrrp.instances[]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct VrrpInstance {
    /// Instance name.
    pub name: String,
    /// Interface of the adverts.
    pub interface: String,
    /// Virtual router id.
    pub vrid: u8,
    /// VRRP version.
    pub version: u8,
    /// `Init`, `Backup`, `Master`, `Fault`.
    pub state: String,
    /// Configured priority.
    pub priority: u8,
    /// Priority after tracking.
    pub effective_priority: u8,
    /// Held as backup on purpose.
    pub maintenance: bool,
    /// The current master (`ip`, `self`, `priority`), when known.
    pub master: Option<Value>,
    /// Since when this box is master.
    pub master_since_ms_ago: Option<u64>,
    /// Advert interval.
    pub advert_interval_ms: u64,
    /// The virtual addresses.
    pub vips: Vec<String>,
    /// Adverts received.
    pub rx_adverts: u64,
    /// Adverts sent.
    pub tx_adverts: u64,
    /// Times this box became master.
    pub became_master: u64,
    /// Dropped packets by reason.
    pub drops: std::collections::BTreeMap<String, u64>,
    /// The last socket error.
    pub last_error: Option<String>,
    /// State changes, oldest first.
    pub history: Vec<VrrpTransition>,
}

/// `vrrp.instances[].history[]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct VrrpTransition {
    /// How long ago.
    pub ms_ago: u64,
    /// Previous state.
    pub from: String,
    /// New state.
    pub to: String,
    /// Why.
    pub reason: String,
}

impl VrrpInstance {
    /// `10.0.0.2 (prio 150)`, `this box`, or `-`.
    pub fn master_label(&self) -> String {
        match &self.master {
            Some(m) if m.get("self").and_then(Value::as_bool) == Some(true) => "this box".into(),
            Some(m) => format!(
                "{} (prio {})",
                m.get("ip").and_then(Value::as_str).unwrap_or("?"),
                m.get("priority").and_then(Value::as_u64).unwrap_or(0)
            ),
            None => "-".into(),
        }
    }
}
