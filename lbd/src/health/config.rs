//! The health-check config: `check` tables on services (the default for
//! their reals) and on reals (key-by-key override), the service-level
//! `quorum`, `hysteresis`, `sorry_server` and `inhibit_on_failure`; reading
//! with the config walker (every error located), validation, and resolution
//! into one [`Check`] per real server (what the engine runs, deduplicated).
//!
//! Key names follow keepalived's (`delay_loop`, `connect_timeout`, `retry`,
//! `delay_before_retry`, `warmup`, `alpha`, `connect_ip`, `connect_port`,
//! `bindto`, `fwmark`, `status_code`, `regex`, `digest`, `virtualhost`,
//! `payload`, `require_reply`); the defaults are lvsbox's (see docs/config.md).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::parse::{Cx, Tbl};
use crate::config::{Config, Endpoint, Family, Forwarding, Protocol, Service};

/// First mark of the hidden fwmark services behind through-the-VIP checks.
pub const VIP_MARK_BASE: u32 = 0x4c42_0000;
/// How many marks that range has (one per checked real).
pub const VIP_MARK_COUNT: u32 = 0x1_0000;

/// lvsbox's defaults (documented in docs/config.md).
pub mod defaults {
    /// Seconds between checks.
    pub const DELAY_LOOP: f64 = 5.0;
    /// Seconds a connect (and the whole exchange) may take.
    pub const CONNECT_TIMEOUT: f64 = 3.0;
    /// Attempts after a failure before a healthy real is declared down.
    pub const RETRY: u32 = 1;
    /// Seconds between those attempts.
    pub const DELAY_BEFORE_RETRY: f64 = 1.0;
    /// Maximum random delay of the first check (0 = check at once).
    pub const WARMUP: f64 = 0.0;
    /// Successful rounds to come up.
    pub const RISE: u32 = 1;
    /// Failed rounds to go down.
    pub const FALL: u32 = 1;
    /// Reals start down until their first successful check.
    pub const ALPHA: bool = true;
    /// Minimum total weight of the healthy reals.
    pub const QUORUM: u32 = 1;
}

/// What a check does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// TCP connect (keepalived TCP_CHECK).
    Tcp,
    /// HTTP/1.1 GET (HTTP_GET).
    Http,
    /// HTTP/1.1 GET over TLS (SSL_GET).
    Https,
    /// UDP datagram, optional reply (UDP_CHECK).
    Udp,
    /// DNS query over UDP (DNS_CHECK).
    Dns,
    /// ICMP echo (PING_CHECK).
    Icmp,
    /// No check: the real is always up (turns off a service's check for one real).
    None,
}

impl CheckType {
    fn as_str(self) -> &'static str {
        match self {
            CheckType::Tcp => "tcp",
            CheckType::Http => "http",
            CheckType::Https => "https",
            CheckType::Udp => "udp",
            CheckType::Dns => "dns",
            CheckType::Icmp => "icmp",
            CheckType::None => "none",
        }
    }
}

impl fmt::Display for CheckType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// DNS query types keepalived's DNS_CHECK knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DnsType {
    /// A
    A,
    /// NS
    Ns,
    /// CNAME
    Cname,
    /// SOA (keepalived's default)
    Soa,
    /// MX
    Mx,
    /// TXT
    Txt,
    /// AAAA
    Aaaa,
}

impl DnsType {
    /// The query type number.
    pub fn number(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Ns => 2,
            DnsType::Cname => 5,
            DnsType::Soa => 6,
            DnsType::Mx => 15,
            DnsType::Txt => 16,
            DnsType::Aaaa => 28,
        }
    }
}

/// An expected HTTP status: `200` or `"200-299"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StatusRange(pub u16, pub u16);

impl Serialize for StatusRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == self.1 { s.serialize_u16(self.0) } else { s.collect_str(&format!("{}-{}", self.0, self.1)) }
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = StatusRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a status code like 200 or a range like \"200-299\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<StatusRange, E> {
                let c = u16::try_from(v)
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or_else(|| E::custom(format!("status {v} is out of range 100..=599")))?;
                Ok(StatusRange(c, c))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<StatusRange, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StatusRange, E> {
                let bad = || E::custom(format!("`{v}` is not a status code or range like \"200-299\""));
                let (a, b) = v.split_once('-').unwrap_or((v, v));
                let a: u16 = a.trim().parse().map_err(|_| bad())?;
                let b: u16 = b.trim().parse().map_err(|_| bad())?;
                if !(100..=599).contains(&a) || !(100..=599).contains(&b) || a > b {
                    return Err(E::custom(format!("`{v}` is not a range of statuses within 100..=599")));
                }
                Ok(StatusRange(a, b))
            }
        }
        d.deserialize_any(V)
    }
}

/// A `check` table as written (every key optional: a real's table
/// overrides its service's key by key).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckSpec {
    /// `tcp`, `http`, `https`, `udp`, `dns`, `icmp` or `none`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<CheckType>,
    /// Seconds between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_loop: Option<f64>,
    /// Seconds one attempt may take (connect and exchange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<f64>,
    /// Extra attempts before a healthy real is declared down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<u32>,
    /// Seconds between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_before_retry: Option<f64>,
    /// Maximum random delay of the first check, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<f64>,
    /// Start down until the first success (lvsbox's default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<bool>,
    /// Successful rounds to come up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    /// Failed rounds to go down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
    /// Check this address instead of the real's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ip: Option<IpAddr>,
    /// Check this port instead of the real's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_port: Option<u16>,
    /// Source address of the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindto: Option<IpAddr>,
    /// SO_MARK of the check's socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// DR: connect to the VIP, steered to this real by a hidden fwmark service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through_vip: Option<bool>,
    /// HTTP path (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Expected statuses (default `["200-299"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<Vec<StatusRange>>,
    /// The body must match this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// MD5 of the body, hex (keepalived's `digest`, from genhash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Host header and TLS SNI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualhost: Option<String>,
    /// UDP: the datagram to send, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// UDP: a reply is required, starting with these bytes (hex; "" = any reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_reply: Option<String>,
    /// DNS: query type (default SOA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_type: Option<DnsType>,
    /// DNS: query name (default `.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
}

/// `sorry_server = { address = "10.0.0.99:8080", forwarding = "nat", weight = 1 }`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SorryServer {
    /// Address, optionally with port (default: the service's).
    pub address: Endpoint,
    /// Forwarding (default: the service's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<Forwarding>,
    /// Weight (default 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}
fn is_one(v: &u32) -> bool {
    *v == 1
}

const HTTP_KEYS: &[&str] = &["path", "status_code", "regex", "digest", "virtualhost"];
const UDP_KEYS: &[&str] = &["payload", "require_reply"];
const DNS_KEYS: &[&str] = &["dns_type", "dns_name"];

impl CheckSpec {
    /// This table over `base` (key by key); a different `type` replaces
    /// the base entirely.
    pub fn over(&self, base: &CheckSpec) -> CheckSpec {
        if self.kind.is_some() && base.kind.is_some() && self.kind != base.kind {
            return self.clone();
        }
        macro_rules! m {
            ($($f:ident),*) => { CheckSpec { $($f: self.$f.clone().or_else(|| base.$f.clone())),* } };
        }
        m!(
            kind,
            delay_loop,
            connect_timeout,
            retry,
            delay_before_retry,
            warmup,
            alpha,
            rise,
            fall,
            connect_ip,
            connect_port,
            bindto,
            fwmark,
            through_vip,
            path,
            status_code,
            regex,
            digest,
            virtualhost,
            payload,
            require_reply,
            dns_type,
            dns_name
        )
    }

    /// Keys written in this table.
    fn keys(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut k = |b: bool, n: &'static str| {
            if b {
                v.push(n)
            }
        };
        k(self.path.is_some(), "path");
        k(self.status_code.is_some(), "status_code");
        k(self.regex.is_some(), "regex");
        k(self.digest.is_some(), "digest");
        k(self.virtualhost.is_some(), "virtualhost");
        k(self.payload.is_some(), "payload");
        k(self.require_reply.is_some(), "require_reply");
        k(self.dns_type.is_some(), "dns_type");
        k(self.dns_name.is_some(), "dns_name");
        v
    }
}

/// Reads a `check` table.
pub(crate) fn read_check(cx: &mut Cx<'_>, mut t: Tbl<'_, '_>) -> CheckSpec {
    let c = CheckSpec {
        kind: t.opt(cx, "type"),
        delay_loop: t.opt(cx, "delay_loop"),
        connect_timeout: t.opt(cx, "connect_timeout"),
        retry: t.opt(cx, "retry"),
        delay_before_retry: t.opt(cx, "delay_before_retry"),
        warmup: t.opt(cx, "warmup"),
        alpha: t.opt(cx, "alpha"),
        rise: t.opt(cx, "rise"),
        fall: t.opt(cx, "fall"),
        connect_ip: t.opt(cx, "connect_ip"),
        connect_port: t.opt(cx, "connect_port"),
        bindto: t.opt(cx, "bindto"),
        fwmark: t.opt(cx, "fwmark"),
        through_vip: t.opt(cx, "through_vip"),
        path: t.opt(cx, "path"),
        status_code: t.opt(cx, "status_code"),
        regex: t.opt(cx, "regex"),
        digest: t.opt(cx, "digest"),
        virtualhost: t.opt(cx, "virtualhost"),
        payload: t.opt(cx, "payload"),
        require_reply: t.opt(cx, "require_reply"),
        dns_type: t.opt(cx, "dns_type"),
        dns_name: t.opt(cx, "dns_name"),
    };
    t.finish(cx);
    c
}

/// Reads a `sorry_server` table.
pub(crate) fn read_sorry(cx: &mut Cx<'_>, mut t: Tbl<'_, '_>) -> Option<SorryServer> {
    let address = t.req(cx, "address");
    let s = SorryServer { address: address?, forwarding: t.opt(cx, "forwarding"), weight: t.or(cx, "weight", 1) };
    t.finish(cx);
    Some(s)
}

/// When a check runs and how its results count (milliseconds, so that a
/// check is hashable: equal checks are run once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timing {
    /// Period.
    pub delay_loop_ms: u64,
    /// Bound of one attempt.
    pub connect_timeout_ms: u64,
    /// Extra attempts before going down.
    pub retry: u32,
    /// Between attempts.
    pub delay_before_retry_ms: u64,
    /// Maximum random delay of the first check.
    pub warmup_ms: u64,
    /// Rounds to come up.
    pub rise: u32,
    /// Rounds to go down.
    pub fall: u32,
    /// Start down.
    pub alpha: bool,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            delay_loop_ms: ms(defaults::DELAY_LOOP),
            connect_timeout_ms: ms(defaults::CONNECT_TIMEOUT),
            retry: defaults::RETRY,
            delay_before_retry_ms: ms(defaults::DELAY_BEFORE_RETRY),
            warmup_ms: ms(defaults::WARMUP),
            rise: defaults::RISE,
            fall: defaults::FALL,
            alpha: defaults::ALPHA,
        }
    }
}

fn ms(s: f64) -> u64 {
    (s.clamp(0.0, 1e7) * 1000.0).round() as u64
}

/// The HTTP(S) part of a check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Http {
    /// Over TLS.
    pub tls: bool,
    /// Request path.
    pub path: String,
    /// Accepted statuses.
    pub status: Vec<StatusRange>,
    /// Body regex.
    pub regex: Option<String>,
    /// MD5 of the body.
    pub digest: Option<[u8; 16]>,
    /// Host header / SNI (default: the target address).
    pub host: Option<String>,
}

/// What a probe sends and expects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Probe {
    /// Connect.
    Tcp,
    /// GET.
    Http(Box<Http>),
    /// Datagram; `reply`: required prefix of a required reply.
    Udp {
        /// Sent.
        payload: Vec<u8>,
        /// `None`: success unless an ICMP error comes back.
        reply: Option<Vec<u8>>,
    },
    /// Query.
    Dns {
        /// Type number.
        qtype: u16,
        /// Name.
        name: String,
    },
    /// Echo.
    Icmp,
}

impl Probe {
    /// Short name.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Tcp => "tcp",
            Probe::Http(h) if h.tls => "https",
            Probe::Http(_) => "http",
            Probe::Udp { .. } => "udp",
            Probe::Dns { .. } => "dns",
            Probe::Icmp => "icmp",
        }
    }
}

/// One resolved check: equal checks (same target, probe, timing) run once
/// however many services share the real.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Check {
    /// What it does.
    pub probe: Probe,
    /// Where it connects.
    pub target: SocketAddr,
    /// Source address.
    pub bind: Option<IpAddr>,
    /// SO_MARK (0 = none).
    pub mark: u32,
    /// Through the VIP: the real the hidden fwmark service steers to.
    pub via_vip_to: Option<SocketAddr>,
    /// When and how results count.
    pub timing: Timing,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.probe.kind(), self.target)?;
        if let Some(r) = self.via_vip_to {
            write!(f, " via mark {:#x} to {r}", self.mark)?;
        }
        Ok(())
    }
}

/// How each real of each service is checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resolved {
    /// `checks[service][real]`: `None` = not checked (always up). Empty for
    /// a service none of whose reals has a check (no slot per real kept for
    /// the usual unchecked service).
    pub checks: Vec<Vec<Option<Check>>>,
}

impl Resolved {
    /// Whether any real is checked.
    pub fn any(&self) -> bool {
        self.checks.iter().flatten().any(Option::is_some)
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// The effective spec of real `j` of `s` (`None`: not checked).
pub fn effective(s: &Service, j: usize) -> Option<CheckSpec> {
    let r = &s.reals[j];
    let spec = match (&r.check, &s.check) {
        (Some(rc), Some(sc)) => rc.over(sc),
        (Some(rc), None) => (**rc).clone(),
        (None, Some(sc)) => (**sc).clone(),
        (None, None) => return None,
    };
    (spec.kind != Some(CheckType::None)).then_some(spec)
}

/// Resolves a validated config's checks; through-the-VIP checks get their
/// marks in config order from [`VIP_MARK_BASE`].
pub fn resolve(cfg: &Config) -> Resolved {
    let mut next_mark = VIP_MARK_BASE;
    let checks = cfg
        .services
        .iter()
        .map(|s| {
            if s.check.is_none() && s.reals.iter().all(|r| r.check.is_none()) {
                return Vec::new();
            }
            (0..s.reals.len())
                .map(|j| {
                    let spec = effective(s, j)?;
                    let r = &s.reals[j];
                    let svc_port = s.address.and_then(|a| a.port).unwrap_or(0);
                    let real_port = r.address.port.unwrap_or(svc_port);
                    let d = Timing::default();
                    let timing = Timing {
                        delay_loop_ms: spec.delay_loop.map(ms).unwrap_or(d.delay_loop_ms),
                        connect_timeout_ms: spec.connect_timeout.map(ms).unwrap_or(d.connect_timeout_ms),
                        retry: spec.retry.unwrap_or(d.retry),
                        delay_before_retry_ms: spec.delay_before_retry.map(ms).unwrap_or(d.delay_before_retry_ms),
                        warmup_ms: spec.warmup.map(ms).unwrap_or(d.warmup_ms),
                        rise: spec.rise.unwrap_or(d.rise).max(1),
                        fall: spec.fall.unwrap_or(d.fall).max(1),
                        alpha: spec.alpha.unwrap_or(d.alpha),
                    };
                    let kind = spec.kind.unwrap_or(CheckType::Tcp);
                    let probe = match kind {
                        CheckType::Tcp | CheckType::None => Probe::Tcp,
                        CheckType::Http | CheckType::Https => Probe::Http(Box::new(Http {
                            tls: kind == CheckType::Https,
                            path: spec.path.clone().unwrap_or_else(|| "/".into()),
                            status: spec.status_code.clone().unwrap_or_else(|| vec![StatusRange(200, 299)]),
                            regex: spec.regex.clone(),
                            digest: spec.digest.as_deref().and_then(hex).and_then(|v| v.try_into().ok()),
                            host: spec.virtualhost.clone(),
                        })),
                        CheckType::Udp => Probe::Udp {
                            payload: spec.payload.as_deref().and_then(hex).unwrap_or_default(),
                            reply: spec.require_reply.as_deref().map(|h| hex(h).unwrap_or_default()),
                        },
                        CheckType::Dns => Probe::Dns {
                            qtype: spec.dns_type.unwrap_or(DnsType::Soa).number(),
                            name: spec.dns_name.clone().unwrap_or_else(|| ".".into()),
                        },
                        CheckType::Icmp => Probe::Icmp,
                    };
                    let port = if kind == CheckType::Icmp { 0 } else { spec.connect_port.unwrap_or(real_port) };
                    let through = spec.through_vip.unwrap_or(false);
                    let (target, mark, via) = match (through, s.address) {
                        (true, Some(vip)) => {
                            let m = next_mark;
                            next_mark += 1;
                            (
                                SocketAddr::new(vip.addr, spec.connect_port.unwrap_or(svc_port)),
                                m,
                                Some(SocketAddr::new(r.address.addr, real_port)),
                            )
                        }
                        _ => (
                            SocketAddr::new(spec.connect_ip.unwrap_or(r.address.addr), port),
                            spec.fwmark.unwrap_or(0),
                            None,
                        ),
                    };
                    Some(Check { probe, target, bind: spec.bindto, mark, via_vip_to: via, timing })
                })
                .collect()
        })
        .collect();
    Resolved { checks }
}

/// Semantic checks of the health-check keys (called by the config validation).
pub(crate) fn validate(cfg: &Config, cx: &mut Cx<'_>) {
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut err = |cx: &mut Cx<'_>, path: String, msg: String| {
        if seen.insert((path.clone(), msg.clone())) {
            cx.error(&path, msg);
        }
    };
    let mut through_count = 0u32;
    for (i, s) in cfg.services.iter().enumerate() {
        let p = format!("services[{i}]");
        if let Some(m) = s.fwmark
            && (VIP_MARK_BASE..VIP_MARK_BASE + VIP_MARK_COUNT).contains(&m)
        {
            err(
                cx,
                format!("{p}.fwmark"),
                format!(
                    "marks {VIP_MARK_BASE:#x}..={:#x} are reserved for through-the-VIP checks",
                    VIP_MARK_BASE + VIP_MARK_COUNT - 1
                ),
            );
        }
        if s.quorum == Some(0) {
            err(cx, format!("{p}.quorum"), "must be at least 1 (the total weight of the healthy reals)".into());
        }
        if let Some(h) = s.hysteresis
            && h >= s.quorum.unwrap_or(defaults::QUORUM)
        {
            err(
                cx,
                format!("{p}.hysteresis"),
                format!(
                    "must be below quorum ({}): quorum is lost below quorum - hysteresis and regained at quorum + hysteresis",
                    s.quorum.unwrap_or(defaults::QUORUM)
                ),
            );
        }
        if let Some(so) = &s.sorry_server {
            let sp = format!("{p}.sorry_server");
            let fwd = so.forwarding.unwrap_or(s.forwarding);
            let svc_port = s.address.and_then(|a| a.port).unwrap_or(0);
            let port = so.address.port.unwrap_or(svc_port);
            if so.weight == 0 || so.weight > 65535 {
                err(cx, format!("{sp}.weight"), format!("weight {} is out of range 1..=65535", so.weight));
            }
            if Family::of(&so.address.addr) != s.family() && fwd != Forwarding::Tun {
                err(
                    cx,
                    format!("{sp}.address"),
                    "a sorry server of the other family needs forwarding = \"tun\"".into(),
                );
            }
            if matches!(fwd, Forwarding::Dr | Forwarding::Tun) && svc_port != 0 && port != svc_port {
                err(cx, format!("{sp}.address"), format!("{fwd} forwarding cannot change the port; use \"nat\""));
            }
            if s.reals.iter().any(|r| r.address.addr == so.address.addr && r.address.port.unwrap_or(svc_port) == port) {
                err(cx, format!("{sp}.address"), format!("{} is also a real of this service", so.address));
            }
        }
        if let Some(c) = &s.check {
            spec_values(c, &format!("{p}.check"), cx, &mut err);
        }
        for (j, r) in s.reals.iter().enumerate() {
            let rp = format!("{p}.reals[{j}]");
            if let Some(c) = &r.check {
                spec_values(c, &format!("{rp}.check"), cx, &mut err);
            }
            let Some(spec) = effective(s, j) else { continue };
            // Where a key of the effective spec was written.
            let at = |key: &str| -> String {
                let in_real = r.check.as_ref().is_some_and(|c| has_key(c, key));
                if in_real || s.check.is_none() { format!("{rp}.check.{key}") } else { format!("{p}.check.{key}") }
            };
            let Some(kind) = spec.kind else {
                err(cx, at("type"), "a check needs a `type` (tcp, http, https, udp, dns, icmp or none)".into());
                continue;
            };
            let allowed: &[&str] = match kind {
                CheckType::Http | CheckType::Https => HTTP_KEYS,
                CheckType::Udp => UDP_KEYS,
                CheckType::Dns => DNS_KEYS,
                _ => &[],
            };
            for k in spec.keys() {
                if !allowed.contains(&k) {
                    err(cx, at(k), format!("`{k}` does not apply to a {kind} check"));
                }
            }
            let svc_port = s.address.and_then(|a| a.port).unwrap_or(0);
            let port = spec.connect_port.or(r.address.port).unwrap_or(svc_port);
            if kind != CheckType::Icmp && port == 0 {
                err(cx, at("connect_port"), format!("a {kind} check needs a port: set `connect_port`"));
            }
            if kind == CheckType::Icmp && spec.connect_port.is_some() {
                err(cx, at("connect_port"), "an icmp check has no port".into());
            }
            if matches!(kind, CheckType::Tcp | CheckType::Http | CheckType::Https)
                && s.fwmark.is_none()
                && s.protocol != Protocol::Tcp
                && spec.connect_port.is_none()
            {
                err(
                    cx,
                    at("type"),
                    format!("a {kind} check of a {} service needs `connect_port` (the real's TCP port)", s.protocol),
                );
            }
            if let (Some(a), Some(b)) = (spec.connect_ip, spec.bindto)
                && Family::of(&a) != Family::of(&b)
            {
                err(cx, at("bindto"), format!("{b} is not of the family of {a}"));
            }
            if spec.through_vip == Some(true) {
                let fwd = r.forwarding.unwrap_or(s.forwarding);
                if fwd != Forwarding::Dr || s.address.is_none() {
                    err(
                        cx,
                        at("through_vip"),
                        "checks through the VIP need a DR address service (the real must own the VIP)".into(),
                    );
                }
                if kind == CheckType::Icmp {
                    err(cx, at("through_vip"), "an icmp check cannot go through the VIP".into());
                }
                if spec.connect_ip.is_some() || spec.fwmark.is_some() {
                    err(cx, at("through_vip"), "`connect_ip` and `fwmark` do not combine with `through_vip`".into());
                }
                if s.address.is_some_and(|a| Family::of(&a.addr) != Family::of(&r.address.addr)) {
                    err(cx, at("through_vip"), "the real must be of the VIP's family".into());
                }
                through_count += 1;
            }
            if let (Some(d), Some(t)) = (spec.delay_loop, spec.connect_timeout)
                && t > d * 10.0
            {
                err(cx, at("connect_timeout"), format!("{t} s is more than ten periods (delay_loop {d} s)"));
            }
        }
    }
    if through_count > VIP_MARK_COUNT {
        cx.error("services", format!("at most {VIP_MARK_COUNT} reals can be checked through the VIP"));
    }
}

fn has_key(c: &CheckSpec, key: &str) -> bool {
    match key {
        "type" => c.kind.is_some(),
        "connect_port" => c.connect_port.is_some(),
        "connect_timeout" => c.connect_timeout.is_some(),
        "bindto" => c.bindto.is_some(),
        "through_vip" => c.through_vip.is_some(),
        k => c.keys().contains(&k),
    }
}

/// Value checks of one written table.
fn spec_values(c: &CheckSpec, p: &str, cx: &mut Cx<'_>, err: &mut impl FnMut(&mut Cx<'_>, String, String)) {
    let secs = |v: Option<f64>, lo: f64, hi: f64| v.is_some_and(|v| !(lo..=hi).contains(&v) || v.is_nan());
    if secs(c.delay_loop, 0.1, 86_400.0) {
        err(cx, format!("{p}.delay_loop"), "must be 0.1 to 86400 seconds".into());
    }
    if secs(c.connect_timeout, 0.01, 600.0) {
        err(cx, format!("{p}.connect_timeout"), "must be 0.01 to 600 seconds".into());
    }
    if secs(c.delay_before_retry, 0.0, 3600.0) {
        err(cx, format!("{p}.delay_before_retry"), "must be 0 to 3600 seconds".into());
    }
    if secs(c.warmup, 0.0, 3600.0) {
        err(cx, format!("{p}.warmup"), "must be 0 to 3600 seconds".into());
    }
    if c.retry.is_some_and(|r| r > 100) {
        err(cx, format!("{p}.retry"), "must be 0..=100".into());
    }
    for (k, v) in [("rise", c.rise), ("fall", c.fall)] {
        if v.is_some_and(|v| v == 0 || v > 100) {
            err(cx, format!("{p}.{k}"), "must be 1..=100".into());
        }
    }
    if let Some(path) = &c.path
        && (!path.starts_with('/') || path.chars().any(|ch| ch.is_whitespace() || ch.is_control()))
    {
        err(cx, format!("{p}.path"), format!("`{path}` must start with '/' and contain no spaces"));
    }
    if c.status_code.as_ref().is_some_and(Vec::is_empty) {
        err(cx, format!("{p}.status_code"), "list at least one status or range".into());
    }
    if let Some(re) = &c.regex
        && let Err(e) = super::re::Regex::new(re)
    {
        err(cx, format!("{p}.regex"), format!("not a valid regular expression: {e}"));
    }
    if let Some(d) = &c.digest
        && (d.len() != 32 || hex(d).is_none())
    {
        err(cx, format!("{p}.digest"), "an MD5 digest is 32 hex digits (as keepalived's genhash prints)".into());
    }
    if let Some(h) = &c.virtualhost
        && (h.is_empty() || h.len() > 253 || h.chars().any(|ch| ch.is_whitespace() || ch.is_control()))
    {
        err(cx, format!("{p}.virtualhost"), format!("`{h}` is not a host name"));
    }
    for (k, v) in [("payload", &c.payload), ("require_reply", &c.require_reply)] {
        if let Some(h) = v
            && (hex(h).is_none() || h.len() > 2 * 1400)
        {
            err(cx, format!("{p}.{k}"), "hex bytes, e.g. \"0a0b0c\" (at most 1400 bytes)".into());
        }
    }
    if let Some(n) = &c.dns_name
        && (n.is_empty() || n.len() > 253 || n.split('.').any(|l| l.len() > 63) || n.contains(".."))
    {
        err(cx, format!("{p}.dns_name"), format!("`{n}` is not a DNS name"));
    }
    if c.fwmark == Some(0) {
        err(cx, format!("{p}.fwmark"), "0 means unmarked; leave it out".into());
    }
}

#[cfg(test)]
mod tests;
