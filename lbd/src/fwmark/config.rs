//! The service keys of the fwmark feature: `fwmark_rules` (which traffic a
//! fwmark service catches) and the `ftp` shorthand; reading them with the
//! config walker (every error located), validating them, and expanding a
//! service into what lbd programs.
//!
//! ```toml
//! [[services]]                         # seed 002's FTP, DR
//! name = "ftp"
//! fwmark = 300
//! ftp = { vip = "192.168.100.111", control_port = 9814, passive_ports = "8000-10000" }
//! persistence = { timeout = 900 }      # default for ftp: 360 s (keepalived's persistence_timeout)
//! [[services.reals]]
//! address = "192.168.100.34"
//!
//! [[services]]                         # the general form
//! fwmark = 301
//! fwmark_rules = [{ destination = "192.168.100.112", protocol = "tcp", ports = [80, 443, "8000-8100"] }]
//! ```

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::parse::{Cx, Tbl};
use crate::config::{Config, Endpoint, Family, Forwarding, Persistence, Protocol, Service};
use crate::nft::MarkRule;

/// Persistence of an `ftp` service that sets none: keepalived's
/// `persistence_timeout` without a value (360 s).
pub const FTP_DEFAULT_PERSISTENCE: u32 = 360;

/// A destination port or an inclusive range: `21`, `"21"`, `"8000-10000"`
/// (iptables' `"8000:10000"` is accepted too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (= first for a single port).
    pub last: u16,
}

impl PortRange {
    /// One port.
    pub fn one(p: u16) -> Self {
        PortRange { first: p, last: p }
    }
    /// Whether the two share a port.
    pub fn overlaps(&self, o: &PortRange) -> bool {
        self.first <= o.last && o.first <= self.last
    }
    /// Whether `p` is inside.
    pub fn contains(&self, p: u16) -> bool {
        (self.first..=self.last).contains(&p)
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a port or a port range (e.g. 21 or \"8000-10000\")");
        let (a, b) = match s.trim().split_once(['-', ':']) {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (s.trim(), s.trim()),
        };
        let first: u16 = a.parse().map_err(|_| bad())?;
        let last: u16 = b.parse().map_err(|_| bad())?;
        if first == 0 || last == 0 {
            return Err("port 0 cannot be matched (ports are 1..=65535)".into());
        }
        if first > last {
            return Err(format!("range {first}-{last} is inverted; did you mean {last}-{first}?"));
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last { write!(f, "{}", self.first) } else { write!(f, "{}-{}", self.first, self.last) }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.first == self.last { s.serialize_u16(self.first) } else { s.collect_str(self) }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port (21) or a port range (\"8000-10000\")")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortRange, E> {
                match u16::try_from(v) {
                    Ok(p) if p > 0 => Ok(PortRange::one(p)),
                    _ => Err(E::custom(format!("port {v} is out of range 1..=65535"))),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortRange, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortRange, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// `fwmark_rules = [{ destination = "192.0.2.10", protocol = "tcp", ports = [21, "8000-10000"] }]`:
/// packets to `destination` with one of these destination ports get the
/// service's `fwmark`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkMatch {
    /// Destination address (the VIP).
    pub destination: IpAddr,
    /// Protocol (default tcp).
    pub protocol: Protocol,
    /// Destination ports and ranges (at least one).
    pub ports: Vec<PortRange>,
}

/// `ftp = { vip = "192.0.2.10", control_port = 21, passive_ports = "8000-10000" }`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ftp {
    /// The VIP the FTP clients connect to.
    pub vip: IpAddr,
    /// The control port (default 21).
    pub control_port: u16,
    /// The real servers' passive data-port range (DR and TUN; NAT uses the
    /// kernel's FTP helper instead, which follows the PASV replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_ports: Option<PortRange>,
}

/// Reads one `fwmark_rules` entry.
pub(crate) fn read_rule(cx: &mut Cx<'_>, mut t: Tbl<'_, '_>) -> Option<MarkMatch> {
    let destination = t.req(cx, "destination");
    let ports = t.req(cx, "ports");
    let protocol = t.or(cx, "protocol", Protocol::Tcp);
    t.finish(cx);
    Some(MarkMatch { destination: destination?, protocol, ports: ports? })
}

/// Reads `ftp = { ... }`.
pub(crate) fn read_ftp(cx: &mut Cx<'_>, mut t: Tbl<'_, '_>) -> Option<Ftp> {
    let vip = t.req(cx, "vip");
    let f = Ftp { vip: vip?, control_port: t.or(cx, "control_port", 21), passive_ports: t.opt(cx, "passive_ports") };
    t.finish(cx);
    Some(f)
}

/// Whether this service is NAT FTP (kernel helper, no marks).
pub fn is_nat_ftp(s: &Service) -> bool {
    s.ftp.is_some() && s.forwarding == Forwarding::Nat
}

/// The service as lbd programs it. A service without `ftp` is itself. An
/// `ftp` service becomes
/// - with `forwarding = "nat"`: the address service `vip:control_port` (tcp);
///   the kernel's `ip_vs_ftp` helper follows its PASV replies;
/// - otherwise: the persistent fwmark service `fwmark` (persistence 360 s
///   unless set), whose rules mark `vip` tcp `control_port` and
///   `passive_ports` (added in front of its own `fwmark_rules`).
pub fn expand(s: &Service) -> Cow<'_, Service> {
    let Some(f) = &s.ftp else { return Cow::Borrowed(s) };
    let mut e = s.clone();
    e.protocol = Protocol::Tcp;
    if s.forwarding == Forwarding::Nat {
        e.address = Some(Endpoint { addr: f.vip, port: Some(f.control_port) });
        e.fwmark = None;
        e.family = None;
    } else {
        e.address = None;
        e.family = Some(s.family.unwrap_or(Family::of(&f.vip)));
        if e.persistence.is_none() {
            e.persistence = Some(Persistence { timeout: FTP_DEFAULT_PERSISTENCE, ..Persistence::default() });
        }
        // Seed 002 has its control port (9814) inside the passive range
        // (8000-10000): then the range alone marks both.
        let mut ports = Vec::new();
        if !f.passive_ports.is_some_and(|r| r.contains(f.control_port)) {
            ports.push(PortRange::one(f.control_port));
        }
        ports.extend(f.passive_ports);
        e.fwmark_rules.insert(0, MarkMatch { destination: f.vip, protocol: Protocol::Tcp, ports });
    }
    Cow::Owned(e)
}

/// One generated mark rule and where it comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Generated {
    /// Index of the service in the config.
    pub service: usize,
    /// The service's label (name, or `fwmark N`).
    pub label: String,
    /// Config path of what produced it (`services[0].ftp`, `services[1].fwmark_rules[0].ports[2]`).
    pub origin: String,
    /// The kernel rule.
    pub rule: MarkRule,
}

/// Every mark rule the config asks for, in config order.
pub fn generated(cfg: &Config) -> Vec<Generated> {
    let mut out = Vec::new();
    for (i, s0) in cfg.services.iter().enumerate() {
        let s = expand(s0);
        let (Some(mark), false) = (s.fwmark, s.fwmark_rules.is_empty()) else { continue };
        let label = s0.label();
        let from_ftp = s0.ftp.is_some() && s0.forwarding != Forwarding::Nat;
        for (j, m) in s.fwmark_rules.iter().enumerate() {
            for (k, p) in m.ports.iter().enumerate() {
                let origin = match (from_ftp, j) {
                    (true, 0) if p.first == p.last && k == 0 && m.ports.len() == 2 => {
                        format!("services[{i}].ftp.control_port")
                    }
                    (true, 0) => format!("services[{i}].ftp.passive_ports"),
                    (true, j) => format!("services[{i}].fwmark_rules[{}].ports[{k}]", j - 1),
                    (false, j) => format!("services[{i}].fwmark_rules[{j}].ports[{k}]"),
                };
                out.push(Generated {
                    service: i,
                    label: label.clone(),
                    origin,
                    rule: MarkRule {
                        daddr: m.destination,
                        proto: m.protocol.number() as u8,
                        ports: (p.first, p.last),
                        mark,
                    },
                });
            }
        }
    }
    out
}

/// The kernel rules alone.
pub fn mark_rules(cfg: &Config) -> Vec<MarkRule> {
    generated(cfg).into_iter().map(|g| g.rule).collect()
}

/// The `ports=` of the `ip_vs_ftp` module: `None` when no NAT ftp service is
/// configured (the module keeps its default, 21); else 21 and every NAT ftp
/// control port, sorted.
pub fn helper_ports(cfg: &Config) -> Option<Vec<u16>> {
    let ports: BTreeSet<u16> =
        cfg.services.iter().filter(|s| is_nat_ftp(s)).filter_map(|s| s.ftp.as_ref().map(|f| f.control_port)).collect();
    if ports.is_empty() {
        return None;
    }
    let mut v: BTreeSet<u16> = ports;
    v.insert(21);
    Some(v.into_iter().collect())
}

/// The module parameter string for [`helper_ports`]: `ports=21,2121`.
pub fn helper_param(cfg: &Config) -> Option<String> {
    helper_ports(cfg).map(|p| format!("ports={}", p.iter().map(u16::to_string).collect::<Vec<_>>().join(",")))
}

/// Semantic checks of `ftp` and `fwmark_rules` (called by the config validation).
pub(crate) fn validate(cfg: &Config, cx: &mut Cx<'_>) {
    for (i, s) in cfg.services.iter().enumerate() {
        let p = format!("services[{i}]");
        if let Some(f) = &s.ftp {
            let fp = format!("{p}.ftp");
            if s.address.is_some() {
                cx.error(&format!("{p}.address"), "an ftp service takes its address from `ftp.vip`; drop `address`");
            }
            if f.vip.is_unspecified() || f.vip.is_multicast() {
                cx.error(&format!("{fp}.vip"), format!("{} cannot be a virtual address", f.vip));
            }
            if f.control_port == 0 {
                cx.error(&format!("{fp}.control_port"), "port 0 cannot be an FTP control port");
            }
            if s.forwarding == Forwarding::Nat {
                if s.fwmark.is_some() {
                    cx.error(
                        &format!("{p}.fwmark"),
                        "NAT FTP is the address service ftp.vip:control_port with the kernel's FTP helper (ip_vs_ftp); drop `fwmark`",
                    );
                }
                if f.passive_ports.is_some() {
                    cx.error(
                        &format!("{fp}.passive_ports"),
                        "with forwarding = \"nat\" the kernel's FTP helper follows the PASV replies; passive_ports is for dr and tun",
                    );
                }
                if !s.fwmark_rules.is_empty() {
                    cx.error(
                        &format!("{p}.fwmark_rules"),
                        "a NAT ftp service is an address service; it has no mark rules",
                    );
                }
                for (j, r) in s.reals.iter().enumerate() {
                    if r.forwarding.is_some_and(|f| f != Forwarding::Nat) {
                        cx.error(
                            &format!("{p}.reals[{j}].forwarding"),
                            "the FTP helper works on NAT connections only; every real of a NAT ftp service uses nat",
                        );
                    }
                }
                if cfg.ipvs.sysctl.conntrack == Some(false) {
                    cx.error(
                        "ipvs.sysctl.conntrack",
                        format!(
                            "{p} is NAT FTP: the kernel's FTP helper rewrites PASV replies through conntrack; leave `conntrack` out (lbd turns it on) or set it to true"
                        ),
                    );
                }
            } else {
                if s.fwmark.is_none() {
                    cx.error(
                        &fp,
                        "an ftp service with dr/tun forwarding is a fwmark service: add `fwmark = N` (the mark its rules set, e.g. 300)",
                    );
                }
                if f.passive_ports.is_none() {
                    cx.error(
                        &fp,
                        "missing `passive_ports`: the real servers' passive range (vsftpd pasv_min_port-pasv_max_port), e.g. \"8000-10000\"",
                    );
                }
                if let Some(fam) = s.family
                    && fam != Family::of(&f.vip)
                {
                    cx.error(&format!("{p}.family"), format!("family {fam} does not match ftp.vip {}", f.vip));
                }
            }
        }
        if !s.fwmark_rules.is_empty() && s.fwmark.is_none() && s.ftp.is_none() {
            cx.error(
                &format!("{p}.fwmark_rules"),
                "mark rules set the service's firewall mark: add `fwmark = N` to this service (an `address` service needs no rules)",
            );
        }
        let fam = s.family();
        for (j, r) in s.fwmark_rules.iter().enumerate() {
            let rp = format!("{p}.fwmark_rules[{j}]");
            if r.ports.is_empty() {
                cx.error(&format!("{rp}.ports"), "list at least one port or range");
            }
            if r.destination.is_unspecified() || r.destination.is_multicast() {
                cx.error(&format!("{rp}.destination"), format!("{} cannot be a virtual address", r.destination));
            }
            if Family::of(&r.destination) != fam {
                cx.error(
                    &format!("{rp}.destination"),
                    format!("{} is not in the family of this {fam} fwmark service (set `family`)", r.destination),
                );
            }
        }
    }
    overlaps(cfg, cx);
}

/// Rejects two rules with different marks for the same packets (same
/// destination and protocol, overlapping ports): the traffic would go to
/// whichever rule runs last. Overlaps under one mark are harmless.
fn overlaps(cfg: &Config, cx: &mut Cx<'_>) {
    let mut g = generated(cfg);
    g.sort_by_key(|x| (x.rule.daddr, x.rule.proto, x.rule.ports.0, x.service));
    let mut prev: Option<&Generated> = None;
    for x in &g {
        if let Some(p) = prev
            && p.rule.daddr == x.rule.daddr
            && p.rule.proto == x.rule.proto
            && x.rule.ports.0 <= p.rule.ports.1
        {
            let range = |r: &MarkRule| PortRange { first: r.ports.0, last: r.ports.1 };
            let what = format!(
                "ports {} of {} {} overlap {} ({})",
                range(&x.rule),
                crate::nft::MarkRule::proto_label(x.rule.proto),
                x.rule.daddr,
                p.origin,
                range(&p.rule)
            );
            if p.rule.mark != x.rule.mark {
                cx.error(
                    &x.origin,
                    format!(
                        "{what}, which marks {:#x} for `{}`: the same traffic would be marked for two services",
                        p.rule.mark, p.label
                    ),
                );
            }
        }
        if prev.is_none_or(|p| {
            p.rule.daddr != x.rule.daddr || p.rule.proto != x.rule.proto || x.rule.ports.1 > p.rule.ports.1
        }) {
            prev = Some(x);
        }
    }
}
