//! The `[vrrp]` config section: typed model, reading with the config
//! walker (so every error is located), validation, and the conversion into
//! FSM parameters.
//!
//! Interfaces: an instance's `interface`, its VIPs' and tracked interfaces
//! must be configured in `[[interfaces]]` (a typo would otherwise be a
//! permanent Fault), unless the config has no `[[interfaces]]` at all (the
//! network is managed outside lvsbox, as in the host tests): then any valid
//! interface name is accepted and a missing one is reported at run time as
//! Fault.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::fsm::{GarpParams, Params, Track as FsmTrack};
use super::packet::{self, ChecksumMode, Version};
use crate::config::parse::{Cx, Tbl};
use crate::config::{Config, Family, IfAddr};

/// `[vrrp]`
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Vrrp {
    /// `[[vrrp.instances]]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<Instance>,
    /// `[[vrrp.sync_groups]]`
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_groups: Vec<SyncGroup>,
    /// `[vrrp.sync_daemon]`: IPVS connection sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_daemon: Option<SyncDaemon>,
}

impl Vrrp {
    /// Nothing configured.
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.sync_groups.is_empty() && self.sync_daemon.is_none()
    }
}

/// `[[vrrp.instances]]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Unique name (`lbd ctl vrrp`, maintenance).
    pub name: String,
    /// Interface the adverts use.
    pub interface: String,
    /// Virtual router id 1..=255, unique per interface.
    pub vrid: u8,
    /// 1..=255 (255 = address owner: master at once). Default 100.
    pub priority: u8,
    /// 2 or 3 (default 3).
    pub version: u8,
    /// Seconds between adverts: v3 0.01..=40.95 in steps of 0.01; v2 whole
    /// seconds 1..=255. Default 1.
    pub advert_interval: f64,
    /// Take over from a lower-priority master (default true).
    pub preempt: bool,
    /// Seconds to keep accepting a lower-priority master before preempting.
    pub preempt_delay: f64,
    /// v2 PASS authentication (at most 8 characters, as keepalived uses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_pass: Option<String>,
    /// v3 over IPv4: `pseudo_header` (keepalived's default) or
    /// `message_only` (keepalived's `v3_checksum_as_v2`).
    pub v3_checksum: ChecksumMode,
    /// Source address of the adverts (default: the interface's first
    /// address of the family; IPv6 always uses the link-local).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
    /// Send adverts to these addresses instead of the multicast group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unicast_peers: Vec<IpAddr>,
    /// The virtual addresses (1..=20, one family).
    pub vips: Vec<VrrpVip>,
    /// Tracked interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub track: Vec<TrackIf>,
    /// GARP / NA pacing.
    pub garp: Garp,
    /// Use the virtual MAC 00:00:5e:00:01:VRID on a macvlan (not implemented yet).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vmac: bool,
}

/// `vips = [{ address = "192.0.2.10/24", interface = "eth0", label = "eth0:web" }]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpVip {
    /// Address with prefix (host route when no prefix).
    pub address: IfAddr,
    /// Interface (default: the instance's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Label as `ip addr ... label` shows (IPv4 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// `track = [{ interface = "eth1", weight = -50 }]`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackIf {
    /// Interface name.
    pub interface: String,
    /// -253..=253: 0 = Fault while down; > 0 added while up; < 0 added while down.
    pub weight: i16,
}

/// `garp = { repeat = 5, interval_ms = 10, delay = 5, refresh = 0, refresh_repeat = 1, lower_prio_repeat = 5 }`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Garp {
    /// Rounds per burst after becoming master (1..=100).
    pub repeat: u8,
    /// Milliseconds between rounds of a burst (0..=1000).
    pub interval_ms: u32,
    /// Seconds until a second burst (0 = none).
    pub delay: u32,
    /// Seconds between refresh rounds while master (0 = off).
    pub refresh: u32,
    /// Rounds per refresh.
    pub refresh_repeat: u8,
    /// Rounds sent when a lower-priority master shows up (split brain).
    pub lower_prio_repeat: u8,
}

impl Default for Garp {
    fn default() -> Self {
        let d = GarpParams::default();
        Garp {
            repeat: d.repeat,
            interval_ms: d.interval.as_millis() as u32,
            delay: d.delay.as_secs() as u32,
            refresh: d.refresh.as_secs() as u32,
            refresh_repeat: d.refresh_repeat,
            lower_prio_repeat: d.lower_prio_repeat,
        }
    }
}

/// `[[vrrp.sync_groups]]`: instances that change state together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncGroup {
    /// Group name (maintenance can name a group).
    pub name: String,
    /// Member instance names (2 or more, each in one group at most).
    pub instances: Vec<String>,
}

/// `[vrrp.sync_daemon]`: the IPVS connection-sync daemon, following an
/// instance: master daemon while it is master, backup daemon otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDaemon {
    /// Interface the sync traffic uses.
    pub interface: String,
    /// The instance whose state the daemon follows. Without it both
    /// daemons run all the time (keepalived's behaviour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Sync id 0..=255 (both directors must agree).
    pub syncid: u8,
    /// Multicast group (kernel default 224.0.0.81).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<IpAddr>,
    /// UDP port (kernel default 8848).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Maximum sync message length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxlen: Option<u16>,
    /// Multicast TTL (kernel default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
}

/// Reads `[vrrp]` (called by the config reader).
pub(crate) fn read(cx: &mut Cx<'_>, mut t: Tbl<'_, '_>) -> Vrrp {
    let instances = t.list(cx, "instances", read_instance);
    let sync_groups = t.list(cx, "sync_groups", |cx, mut t| {
        let name = t.req(cx, "name");
        let instances = t.req(cx, "instances");
        t.finish(cx);
        Some(SyncGroup { name: name?, instances: instances? })
    });
    let sync_daemon = t.sub(cx, "sync_daemon", |cx, mut t| {
        let interface = t.req(cx, "interface");
        let d = SyncDaemon {
            interface: interface.unwrap_or_default(),
            instance: t.opt(cx, "instance"),
            syncid: t.or(cx, "syncid", 0),
            group: t.opt(cx, "group"),
            port: t.opt(cx, "port"),
            maxlen: t.opt(cx, "maxlen"),
            ttl: t.opt(cx, "ttl"),
        };
        t.finish(cx);
        d
    });
    t.finish(cx);
    Vrrp { instances, sync_groups, sync_daemon }
}

fn read_instance(cx: &mut Cx<'_>, mut t: Tbl<'_, '_>) -> Option<Instance> {
    let name = t.req(cx, "name");
    let interface = t.req(cx, "interface");
    let vrid = t.req(cx, "vrid");
    let vips = t.list(cx, "vips", |cx, mut t| {
        let address = t.req(cx, "address");
        let v = VrrpVip { address: address?, interface: t.opt(cx, "interface"), label: t.opt(cx, "label") };
        t.finish(cx);
        Some(v)
    });
    let track = t.list(cx, "track", |cx, mut t| {
        let interface = t.req(cx, "interface");
        let weight = t.or(cx, "weight", 0);
        t.finish(cx);
        Some(TrackIf { interface: interface?, weight })
    });
    let garp = t
        .sub(cx, "garp", |cx, mut t| {
            let d = Garp::default();
            let g = Garp {
                repeat: t.or(cx, "repeat", d.repeat),
                interval_ms: t.or(cx, "interval_ms", d.interval_ms),
                delay: t.or(cx, "delay", d.delay),
                refresh: t.or(cx, "refresh", d.refresh),
                refresh_repeat: t.or(cx, "refresh_repeat", d.refresh_repeat),
                lower_prio_repeat: t.or(cx, "lower_prio_repeat", d.lower_prio_repeat),
            };
            t.finish(cx);
            g
        })
        .unwrap_or_default();
    let i = Instance {
        name: name.unwrap_or_default(),
        interface: interface.unwrap_or_default(),
        vrid: vrid.unwrap_or(0),
        priority: t.or(cx, "priority", 100),
        version: t.or(cx, "version", 3),
        advert_interval: t.or(cx, "advert_interval", 1.0),
        preempt: t.or(cx, "preempt", true),
        preempt_delay: t.or(cx, "preempt_delay", 0.0),
        auth_pass: t.opt(cx, "auth_pass"),
        v3_checksum: t.or(cx, "v3_checksum", ChecksumMode::PseudoHeader),
        source: t.opt(cx, "source"),
        unicast_peers: t.or(cx, "unicast_peers", Vec::new()),
        vips,
        track,
        garp,
        vmac: t.or(cx, "vmac", false),
    };
    t.finish(cx);
    Some(i)
}

/// Centiseconds of an interval in seconds, if it is a whole number of them.
fn centis(s: f64) -> Option<u16> {
    let c = (s * 100.0).round();
    ((s * 100.0 - c).abs() < 1e-6 && (0.0..=65535.0).contains(&c)).then_some(c as u16)
}

impl Instance {
    /// Protocol version.
    pub fn version(&self) -> Version {
        if self.version == 2 { Version::V2 } else { Version::V3 }
    }
    /// Family of the VIPs (IPv4 when there are none).
    pub fn family(&self) -> Family {
        self.vips.first().map(|v| Family::of(&v.address.addr)).unwrap_or(Family::Ipv4)
    }
    /// The advert interval in centiseconds (validated).
    pub fn interval_cs(&self) -> u16 {
        centis(self.advert_interval).unwrap_or(100)
    }
    /// v2 authentication.
    pub fn auth(&self) -> packet::Auth {
        match &self.auth_pass {
            Some(p) if self.version() == Version::V2 => packet::Auth::pass(p),
            _ => packet::Auth::None,
        }
    }
    /// The interface carrying VIP `v`.
    pub fn vip_interface<'a>(&'a self, v: &'a VrrpVip) -> &'a str {
        v.interface.as_deref().unwrap_or(&self.interface)
    }
    /// What the codec checks received adverts against.
    pub fn expect(&self) -> packet::Expect {
        packet::Expect {
            vrid: self.vrid,
            version: self.version(),
            auth: self.auth(),
            interval_cs: self.interval_cs(),
            addr_count: Some(self.vips.len()),
        }
    }
    /// FSM parameters, with the primary address found at run time.
    pub fn params(&self, primary: IpAddr, drives_sync_daemon: bool) -> Params {
        Params {
            name: self.name.clone(),
            interface: self.interface.clone(),
            version: self.version(),
            vrid: self.vrid,
            priority: self.priority,
            interval: Duration::from_millis(u64::from(self.interval_cs()) * 10),
            preempt: self.preempt,
            preempt_delay: Duration::from_secs_f64(self.preempt_delay.clamp(0.0, 1000.0)),
            primary,
            garp: GarpParams {
                repeat: self.garp.repeat,
                interval: Duration::from_millis(u64::from(self.garp.interval_ms)),
                delay: Duration::from_secs(u64::from(self.garp.delay)),
                refresh: Duration::from_secs(u64::from(self.garp.refresh)),
                refresh_repeat: self.garp.refresh_repeat,
                lower_prio_repeat: self.garp.lower_prio_repeat,
            },
            track: self.track.iter().map(|t| FsmTrack { ifname: t.interface.clone(), weight: t.weight }).collect(),
            sync_daemon: drives_sync_daemon,
            down_adverts: 3,
        }
    }
}

fn valid_ifname(n: &str) -> bool {
    !n.is_empty() && n.len() <= 15 && !n.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// Semantic checks of `[vrrp]` (called by the config validation).
pub(crate) fn validate(cfg: &Config, cx: &mut Cx<'_>) {
    let v = &cfg.vrrp;
    let configured: HashSet<&str> = cfg.interfaces.iter().map(|i| i.name.as_str()).collect();
    let check_if = |cx: &mut Cx<'_>, path: &str, name: &str| {
        if !valid_ifname(name) {
            cx.error(path, format!("`{name}` is not a valid interface name"));
        } else if !configured.is_empty() && !configured.contains(name) {
            cx.error(path, format!("no interface named `{name}` is configured in [[interfaces]]"));
        }
    };
    let if_addrs: HashMap<IpAddr, &str> =
        cfg.interfaces.iter().flat_map(|i| i.addresses.iter().map(move |a| (a.addr, i.name.as_str()))).collect();
    let static_vips: HashSet<IpAddr> = cfg.vips.iter().map(|v| v.address.addr).collect();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut vrids: HashMap<(&str, u8, Family), usize> = HashMap::new();
    let mut all_vips: HashMap<IpAddr, usize> = HashMap::new();
    for (i, inst) in v.instances.iter().enumerate() {
        let p = format!("vrrp.instances[{i}]");
        if inst.name.is_empty() || inst.name.len() > 32 || !inst.name.chars().all(|c| c.is_ascii_graphic()) {
            cx.error(&format!("{p}.name"), "a name must be 1 to 32 printable characters without spaces");
        }
        if let Some(prev) = names.insert(&inst.name, i) {
            cx.error(
                &format!("{p}.name"),
                format!("instance `{}` is already defined as vrrp.instances[{prev}]", inst.name),
            );
        }
        check_if(cx, &format!("{p}.interface"), &inst.interface);
        if inst.vrid == 0 {
            cx.error(&format!("{p}.vrid"), "VRID 0 is reserved; use 1..=255");
        }
        if let Some(prev) = vrids.insert((&inst.interface, inst.vrid, inst.family()), i) {
            cx.error(
                &format!("{p}.vrid"),
                format!(
                    "VRID {} is already used on `{}` by vrrp.instances[{prev}] (`{}`)",
                    inst.vrid, inst.interface, v.instances[prev].name
                ),
            );
        }
        if inst.priority == 0 {
            cx.error(&format!("{p}.priority"), "priority 0 is reserved for a master that stops; use 1..=255");
        }
        let v2 = match inst.version {
            2 => true,
            3 => false,
            n => {
                cx.error(&format!("{p}.version"), format!("VRRP version {n} does not exist; use 2 or 3"));
                false
            }
        };
        match (v2, centis(inst.advert_interval)) {
            (true, _) if inst.advert_interval.fract() != 0.0 || !(1.0..=255.0).contains(&inst.advert_interval) => {
                cx.error(
                    &format!("{p}.advert_interval"),
                    format!("VRRPv2 adverts are whole seconds 1..=255, not {}", inst.advert_interval),
                );
            }
            (false, c) if !c.is_some_and(|c| (1..=4095).contains(&c)) => cx.error(
                &format!("{p}.advert_interval"),
                format!("VRRPv3 adverts are 0.01..=40.95 seconds in steps of 0.01, not {}", inst.advert_interval),
            ),
            _ => {}
        }
        if !(0.0..=1000.0).contains(&inst.preempt_delay) {
            cx.error(&format!("{p}.preempt_delay"), "must be 0 to 1000 seconds");
        } else if inst.preempt_delay > 0.0 && !inst.preempt {
            cx.error(&format!("{p}.preempt_delay"), "has no effect with preempt = false");
        }
        if let Some(pw) = &inst.auth_pass {
            if !v2 {
                cx.error(&format!("{p}.auth_pass"), "PASS authentication only exists in VRRPv2 (version = 2)");
            }
            if pw.is_empty() || pw.len() > packet::AUTH_LEN || !pw.is_ascii() {
                cx.error(
                    &format!("{p}.auth_pass"),
                    format!(
                        "a password is 1 to 8 ASCII characters (keepalived silently uses only the first 8: write `{}`)",
                        pw.chars().take(8).collect::<String>()
                    ),
                );
            }
        }
        if inst.vmac {
            cx.error(&format!("{p}.vmac"), "virtual MAC (macvlan) is not supported by this lvsbox version");
        }
        // VIPs.
        if inst.vips.is_empty() {
            cx.error(&p, "an instance needs at least one entry in `vips`");
        }
        if inst.vips.len() > packet::MAX_ADDRS {
            cx.error(&format!("{p}.vips"), format!("at most {} VIPs fit one advert", packet::MAX_ADDRS));
        }
        let fam = inst.family();
        if v2 && fam == Family::Ipv6 {
            cx.error(&format!("{p}.version"), "VRRPv2 is IPv4 only; IPv6 VIPs need version = 3");
        }
        if inst.v3_checksum != ChecksumMode::PseudoHeader && (v2 || fam == Family::Ipv6) {
            cx.error(&format!("{p}.v3_checksum"), "only applies to VRRPv3 over IPv4");
        }
        for (j, vip) in inst.vips.iter().enumerate() {
            let vp = format!("{p}.vips[{j}]");
            let a = vip.address.addr;
            if Family::of(&a) != fam {
                cx.error(
                    &format!("{vp}.address"),
                    format!("{a} is not {fam} like the instance's first VIP: use one instance per family"),
                );
            }
            let bad = a.is_unspecified()
                || a.is_multicast()
                || a.is_loopback()
                || matches!(a, IpAddr::V4(x) if x.is_link_local() || x.is_broadcast())
                || matches!(a, IpAddr::V6(x) if x.is_unicast_link_local());
            if bad {
                cx.error(&format!("{vp}.address"), format!("{a} cannot be a virtual address"));
            }
            let host = if a.is_ipv4() { 32 } else { 128 };
            if let IpAddr::V4(x) = a
                && vip.address.prefix < 31
            {
                let net = vip.address.network();
                let bits = u32::from(x);
                let mask = u32::MAX >> vip.address.prefix;
                if net.addr == a || bits & mask == mask {
                    cx.error(
                        &format!("{vp}.address"),
                        format!("{a} is the network or broadcast address of /{}", vip.address.prefix),
                    );
                }
            }
            if vip.address.prefix == 0 || (a.is_ipv6() && vip.address.prefix < 64 && vip.address.prefix != host) {
                cx.error(&format!("{vp}.address"), format!("prefix /{} is too short for a VIP", vip.address.prefix));
            }
            if let Some(owner) = if_addrs.get(&a) {
                cx.error(
                    &format!("{vp}.address"),
                    format!("{a} is an address of `{owner}`: VRRP would remove it on failover"),
                );
            }
            if static_vips.contains(&a) {
                cx.error(&format!("{vp}.address"), format!("{a} is also a static VIP in [[vips]]"));
            }
            if let Some(prev) = all_vips.insert(a, i) {
                cx.error(&format!("{vp}.address"), format!("{a} is already a VIP of vrrp.instances[{prev}]"));
            }
            let ifn = inst.vip_interface(vip);
            if vip.interface.is_some() {
                check_if(cx, &format!("{vp}.interface"), ifn);
            }
            if let Some(l) = &vip.label
                && (l.len() > 15 || !l.starts_with(ifn) || a.is_ipv6())
            {
                cx.error(
                    &format!("{vp}.label"),
                    format!("label `{l}` must start with `{ifn}`, be at most 15 characters, and is IPv4 only"),
                );
            }
        }
        if let Some(src) = inst.source
            && Family::of(&src) != fam
        {
            cx.error(&format!("{p}.source"), format!("{src} is not {fam} like the VIPs"));
        }
        for (j, peer) in inst.unicast_peers.iter().enumerate() {
            if Family::of(peer) != fam || peer.is_multicast() || peer.is_unspecified() {
                cx.error(&format!("{p}.unicast_peers[{j}]"), format!("{peer} cannot be a {fam} unicast peer"));
            }
        }
        let mut tracked = HashSet::new();
        for (j, t) in inst.track.iter().enumerate() {
            let tp = format!("{p}.track[{j}]");
            check_if(cx, &format!("{tp}.interface"), &t.interface);
            if !(-253..=253).contains(&t.weight) {
                cx.error(&format!("{tp}.weight"), format!("weight {} is out of range -253..=253", t.weight));
            }
            if t.weight != 0 && inst.priority == 255 {
                cx.error(
                    &format!("{tp}.weight"),
                    "the address owner (priority 255) ignores weights; use weight 0 (fault)",
                );
            }
            if !tracked.insert(&t.interface) {
                cx.error(&format!("{tp}.interface"), format!("`{}` is tracked twice", t.interface));
            }
        }
        let g = &inst.garp;
        if !(1..=100).contains(&g.repeat) {
            cx.error(&format!("{p}.garp.repeat"), "must be 1..=100");
        }
        if g.interval_ms > 1000 {
            cx.error(&format!("{p}.garp.interval_ms"), "must be 0..=1000");
        }
        if g.delay > 3600 || g.refresh > 86400 {
            cx.error(&format!("{p}.garp"), "delay is at most 3600 s and refresh at most 86400 s");
        }
        if g.refresh > 0 && g.refresh_repeat == 0 {
            cx.error(&format!("{p}.garp.refresh_repeat"), "must be at least 1 when refresh is on");
        }
    }
    let mut member_of: HashMap<&str, usize> = HashMap::new();
    let mut gnames: HashSet<&str> = HashSet::new();
    for (i, g) in v.sync_groups.iter().enumerate() {
        let p = format!("vrrp.sync_groups[{i}]");
        if !gnames.insert(&g.name) || names.contains_key(g.name.as_str()) {
            cx.error(&format!("{p}.name"), format!("`{}` is already the name of a group or instance", g.name));
        }
        if g.instances.len() < 2 {
            cx.error(&format!("{p}.instances"), "a sync group needs at least two instances");
        }
        for (j, n) in g.instances.iter().enumerate() {
            if !names.contains_key(n.as_str()) {
                cx.error(&format!("{p}.instances[{j}]"), format!("no VRRP instance named `{n}`"));
            }
            if let Some(prev) = member_of.insert(n, i) {
                cx.error(&format!("{p}.instances[{j}]"), format!("`{n}` is already in vrrp.sync_groups[{prev}]"));
            }
        }
    }
    if let Some(d) = &v.sync_daemon {
        let p = "vrrp.sync_daemon";
        check_if(cx, &format!("{p}.interface"), &d.interface);
        if let Some(n) = &d.instance
            && !names.contains_key(n.as_str())
        {
            cx.error(&format!("{p}.instance"), format!("no VRRP instance named `{n}`"));
        }
        if let Some(g) = d.group
            && !g.is_multicast()
        {
            cx.error(&format!("{p}.group"), format!("{g} is not a multicast group"));
        }
        if d.port == Some(0) || d.maxlen == Some(0) || d.ttl == Some(0) {
            cx.error(p, "port, maxlen and ttl must be at least 1");
        }
        // The kernel refuses to start a sync daemon while a destination of
        // the other family than its service exists (ipvs->mixed_address_family_dests).
        for (i, s) in cfg.services.iter().enumerate() {
            for (j, r) in s.reals.iter().enumerate() {
                if Family::of(&r.address.addr) != s.family() {
                    cx.error(
                        &format!("services[{i}].reals[{j}].address"),
                        "the kernel refuses the IPVS sync daemon while a real of the other family than its service exists; drop [vrrp.sync_daemon] or this real",
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
