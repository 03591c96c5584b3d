//! The one typed configuration of an lvsbox (TOML).
//!
//! `parse` turns text into a [`Config`], collecting every syntax, type and
//! semantic error at once with file:line, field path and reason; a config with
//! any error is rejected whole. `Config` serializes back to TOML (what the box
//! persists) and to JSON (what the control socket carries).
//!
//! The format is documented in `docs/config.md`; `docs/example.toml` is a
//! complete commented example that the tests parse.

pub(crate) mod parse;
pub mod types;
mod validate;

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use parse::{Spans, parse, parse_file, parse_with_spans};

pub mod edit;
pub use types::*;

/// One problem found in a config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigError {
    /// File name as given by the caller.
    pub file: String,
    /// 1-based line (0 when the location is unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub col: usize,
    /// Field path, e.g. `services[1].reals[0].weight`.
    pub path: String,
    /// Why it is wrong, in words an operator can act on.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if self.col > 0 {
            write!(f, ":{}", self.col)?;
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.path, self.message)
        }
    }
}

/// The whole box configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Host-level settings.
    pub system: System,
    /// Global IPVS settings.
    pub ipvs: Ipvs,
    /// Network interfaces to configure (init applies them at boot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Static routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Static virtual IPs (not managed by VRRP): always present on this box.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<Vip>,
    /// IPVS virtual services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// VRRP instances, sync groups and the IPVS sync daemon (`lbd/src/vrrp/config.rs`).
    #[serde(default, skip_serializing_if = "crate::vrrp::config::Vrrp::is_empty")]
    pub vrrp: crate::vrrp::config::Vrrp,
}

/// `[system]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct System {
    /// Host name (also the default VRRP router id).
    pub hostname: String,
    /// ttys that run the console TUI (without `/dev/`).
    pub consoles: Vec<String>,
    /// Size the console assumes on a serial line (which reports 0x0).
    pub console_size: TermSize,
    /// Salted hash of the console password; unset until first boot sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_password: Option<String>,
    /// Log verbosity of init and lbd.
    pub log_level: LogLevel,
    /// `net.ipv4.ip_forward` (NAT needs it; harmless for DR/TUN).
    pub ip_forward: bool,
}

impl Default for System {
    fn default() -> Self {
        System {
            hostname: "lvsbox".into(),
            consoles: vec!["ttyS0".into(), "tty1".into()],
            console_size: TermSize::default(),
            console_password: None,
            log_level: LogLevel::Info,
            ip_forward: true,
        }
    }
}

/// `[ipvs]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ipvs {
    /// `ip_vs conn_tab_bits` module parameter (connection hash size = 2^bits);
    /// takes effect at the next boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_tab_bits: Option<u8>,
    /// Seconds a removed real server keeps weight 0 to let its connections
    /// finish before it is deleted (0 = delete at once).
    pub drain_timeout: u32,
    /// Connection timeouts (`ipvsadm --set`); unset keeps the kernel's.
    pub timeouts: Timeouts,
    /// `net.ipv4.vs.*` knobs; unset keeps the kernel's default.
    pub sysctl: IpvsSysctl,
}

impl Default for Ipvs {
    fn default() -> Self {
        Ipvs { conn_tab_bits: None, drain_timeout: 120, timeouts: Timeouts::default(), sysctl: IpvsSysctl::default() }
    }
}

/// `[ipvs.timeouts]`, seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Established TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<u32>,
    /// TCP after FIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcpfin: Option<u32>,
    /// UDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<u32>,
}

/// `[ipvs.sysctl]`: the `net.ipv4.vs.*` knobs that matter on a director.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvsSysctl {
    /// Drop connections to a removed/quiesced real at once (`expire_nodest_conn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_nodest_conn: Option<bool>,
    /// Expire persistence templates of quiesced reals (`expire_quiescent_template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_quiescent_template: Option<bool>,
    /// Port-reuse handling (`conn_reuse_mode`, 0..=3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_reuse_mode: Option<u8>,
    /// Schedule TCP packets that are not SYN (`sloppy_tcp`; needed for `mh` without sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sloppy_tcp: Option<bool>,
    /// Same for SCTP (`sloppy_sctp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sloppy_sctp: Option<bool>,
    /// Schedule ICMP for virtual services (`schedule_icmp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_icmp: Option<bool>,
    /// Do not schedule tunnelled packets (`ignore_tunneled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_tunneled: Option<bool>,
    /// Keep netfilter conntrack for IPVS connections (`conntrack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conntrack: Option<bool>,
    /// Reroute replies from NAT reals by their source (`snat_reroute`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snat_reroute: Option<bool>,
    /// Send ICMP errors for NAT connections (`nat_icmp_send`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_icmp_send: Option<bool>,
    /// Path-MTU discovery for tunnelled reals (`pmtu_disc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pmtu_disc: Option<bool>,
}

impl IpvsSysctl {
    /// `(name under /proc/sys/net/ipv4/vs/, value)` for every knob that is set.
    pub fn entries(&self) -> Vec<(&'static str, u32)> {
        let b = |v: Option<bool>| v.map(u32::from);
        let all = [
            ("expire_nodest_conn", b(self.expire_nodest_conn)),
            ("expire_quiescent_template", b(self.expire_quiescent_template)),
            ("conn_reuse_mode", self.conn_reuse_mode.map(u32::from)),
            ("sloppy_tcp", b(self.sloppy_tcp)),
            ("sloppy_sctp", b(self.sloppy_sctp)),
            ("schedule_icmp", b(self.schedule_icmp)),
            ("ignore_tunneled", b(self.ignore_tunneled)),
            ("conntrack", b(self.conntrack)),
            ("snat_reroute", b(self.snat_reroute)),
            ("nat_icmp_send", b(self.nat_icmp_send)),
            ("pmtu_disc", b(self.pmtu_disc)),
        ];
        all.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect()
    }
}

/// `[[interfaces]]`: a NIC or VLAN the box configures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    /// The name the box uses. Without `mac`, the kernel NIC of that name.
    pub name: String,
    /// Match the NIC with this MAC and rename it to `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// MTU; unset keeps the driver's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Addresses with prefix length.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IfAddr>,
    /// Makes this an 802.1Q VLAN on `parent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<Vlan>,
}

/// `vlan = { parent = "eth0", id = 100 }`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vlan {
    /// Parent interface (by its configured name).
    pub parent: String,
    /// VLAN id 1..=4094.
    pub id: u16,
}

/// `[[routes]]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination prefix (`default` for 0.0.0.0/0).
    pub destination: Prefix,
    /// Next hop; unset for a directly connected route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Output interface (required without a gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Route metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

/// `[[vips]]`: a static virtual IP, present whether or not VRRP runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vip {
    /// Address (a host address /32 or /128 when no prefix is given).
    pub address: IfAddr,
    /// Interface that carries it.
    pub interface: String,
    /// Address label (`eth0:vip`), as `ip addr ... label` shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// `[[services]]`: an IPVS virtual service and its real servers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Optional unique name shown by the console and `lbd ctl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Virtual address and port (port 0 = every port, needs persistence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Endpoint>,
    /// Protocol of an address service.
    pub protocol: Protocol,
    /// Firewall mark of a fwmark service (instead of `address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// Family of a fwmark service (default ipv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// Scheduler (default wlc, as ipvsadm).
    pub scheduler: Scheduler,
    /// Scheduler flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scheduler_flags: Vec<SchedFlag>,
    /// One-packet scheduling (UDP).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_packet: bool,
    /// Client persistence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    /// Default forwarding method of the reals.
    pub forwarding: Forwarding,
    /// Health-check quorum: the least total weight of healthy reals (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
    /// Quorum hysteresis in weight units (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hysteresis: Option<u32>,
    /// Takes over while the quorum is lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<crate::health::config::SorryServer>,
    /// Failed reals get weight 0 instead of leaving the table.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inhibit_on_failure: bool,
    /// The default health check of the reals (`lbd/src/health/config.rs`).
    /// Boxed, like the reals' own: a spec is a few hundred bytes and most
    /// services and reals have none (10,000 services x 4 reals kept 15 MiB
    /// of empty `Option<CheckSpec>` inline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Box<crate::health::config::CheckSpec>>,
    /// Real servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reals: Vec<Real>,
    /// Traffic this fwmark service catches: lbd marks it with `fwmark`
    /// (nftables table `inet lvsbox`). See `lbd/src/fwmark/config.rs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fwmark_rules: Vec<crate::fwmark::config::MarkMatch>,
    /// FTP shorthand: the control port and passive range as one persistent
    /// fwmark service (DR/TUN), or the kernel's FTP helper (NAT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ftp: Option<crate::fwmark::config::Ftp>,
}

impl Default for Service {
    fn default() -> Self {
        Service {
            name: None,
            address: None,
            protocol: Protocol::Tcp,
            fwmark: None,
            family: None,
            scheduler: Scheduler::Wlc,
            scheduler_flags: Vec::new(),
            one_packet: false,
            persistence: None,
            forwarding: Forwarding::Dr,
            quorum: None,
            hysteresis: None,
            sorry_server: None,
            inhibit_on_failure: false,
            check: None,
            reals: Vec::new(),
            fwmark_rules: Vec::new(),
            ftp: None,
        }
    }
}

impl Service {
    /// The service's family: from its address, or `family` for fwmark
    /// services (an `ftp` service without `family`: its VIP's).
    pub fn family(&self) -> Family {
        match (&self.address, &self.ftp) {
            (Some(e), _) => Family::of(&e.addr),
            (None, Some(f)) if self.family.is_none() || self.forwarding == Forwarding::Nat => Family::of(&f.vip),
            _ => self.family.unwrap_or(Family::Ipv4),
        }
    }
    /// Human label: the name, else `tcp 192.0.2.1:80` / `fwmark 300`.
    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match (&self.address, self.fwmark, &self.ftp) {
            (Some(a), _, _) => format!("{} {}", self.protocol, a),
            (None, _, Some(f)) if self.forwarding == Forwarding::Nat => {
                format!("tcp {}", Endpoint { addr: f.vip, port: Some(f.control_port) })
            }
            (None, Some(m), _) => format!("fwmark {m}"),
            _ => "service".into(),
        }
    }
}

/// `persistence = { timeout = 300, netmask = "255.255.255.0", engine = "sip" }`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persistence {
    /// Seconds a client sticks to its real server (default 300, as ipvsadm `-p`).
    pub timeout: u32,
    /// Granularity: clients in the same netmask share a real.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<Netmask>,
    /// Persistence engine (`sip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<PersistenceEngine>,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence { timeout: 300, netmask: None, engine: None }
    }
}

/// `[[services.reals]]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Real {
    /// Address, optionally with port (default: the service's port).
    pub address: Endpoint,
    /// Weight 0..=65535 (0 = quiesced: no new connections). Default 1.
    pub weight: u32,
    /// Forwarding method (default: the service's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<Forwarding>,
    /// Stop scheduling new connections above this many (0 = no limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub upper_threshold: u32,
    /// Resume scheduling below this many (0 = no limit).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lower_threshold: u32,
    /// Tunnel options (forwarding = "tun").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
    /// Overrides the service's `inhibit_on_failure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibit_on_failure: Option<bool>,
    /// Health check, key by key over the service's `check` (boxed: see `Service::check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Box<crate::health::config::CheckSpec>>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl Real {
    /// A real with defaults and this address.
    pub fn new(address: Endpoint) -> Self {
        Real {
            address,
            weight: 1,
            forwarding: None,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: None,
            inhibit_on_failure: None,
            check: None,
        }
    }
}

/// `tunnel = { type = "gue", port = 6080, checksum = "csum" }`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunnel {
    /// Encapsulation (default ipip).
    #[serde(rename = "type")]
    pub kind: TunnelType,
    /// UDP port of GUE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Checksum option of GUE/GRE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<TunnelChecksum>,
}

impl Config {
    /// The TOML text of this config (what the box persists).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot serialize config: {e}\n"))
    }
}

/// The services of the 10,000-service benchmark (`lvsbox-bench ipvs`) and
/// of the memory tests, as TOML: service `i` is `172.16.(i/250).(i%250+1):80`
/// (wrr) with 4 DR reals `10.77.1-4.(i%250+1)`, weight 1 except the first
/// real of the first service, `first_weight`. Services only: callers put the
/// interfaces and `[ipvs]` they need in front.
#[doc(hidden)]
pub fn scale_services(n: usize, first_weight: u32) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(n * 280);
    for i in 0..n {
        let (a, b) = (i / 250, i % 250 + 1);
        let _ = write!(s, "\n[[services]]\naddress = \"172.16.{a}.{b}:80\"\nscheduler = \"wrr\"\n");
        for r in 0..4 {
            let weight = if i == 0 && r == 0 { first_weight } else { 1 };
            let _ = write!(s, "[[services.reals]]\naddress = \"10.77.{}.{b}\"\nweight = {weight}\n", r + 1);
        }
    }
    s
}

#[cfg(test)]
mod tests;
