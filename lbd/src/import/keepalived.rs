//! keepalived.conf → [`Config`].
//!
//! Every keyword is either mapped, or reported with file:line and what to do
//! instead. Health checks (`TCP_CHECK`, `HTTP_GET`, `UDP_CHECK`,
//! `DNS_CHECK`, `PING_CHECK`, `SSL_GET`) become `check` tables, with keepalived's cascade of timing keys
//! (checker over real_server over virtual_server) and keepalived's defaults
//! where lvsbox's differ; `quorum`, `hysteresis`, `sorry_server` and
//! `inhibit_on_failure` map to their lvsbox keys (docs/import.md lists what
//! does not). Scripts (`notify*`, `MISC_CHECK`, `vrrp_script`/`track_script`)
//! have no equivalent on a box without a shell.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use super::kparse::{self, Node};
use super::{Fs, Kind, Loc, Origins, Outcome, Report, finish, tidy_forwarding};
use crate::config::{
    Config, Endpoint, Family, Forwarding, IfAddr, Netmask, Persistence, PersistenceEngine, Protocol, Real, SchedFlag,
    Scheduler, Service, Tunnel, TunnelChecksum, TunnelType,
};
use crate::health::config::{CheckSpec, CheckType, DnsType, SorryServer, StatusRange};
use crate::vrrp::config::{Garp, Instance, SyncDaemon, SyncGroup, TrackIf, VrrpVip};
use crate::vrrp::packet::ChecksumMode;

const NO_SCRIPTS: &str = "lvsbox runs no scripts (the box has no shell); follow state changes with `lbd ctl vrrp`, \
     `lbd ctl services`, the console or the log";

/// Imports a keepalived.conf from the file system (or `fs`).
pub fn import_file(fs: &dyn Fs, path: &Path) -> Outcome {
    let mut report = Report::default();
    let nodes = kparse::parse_file(fs, path, &mut report);
    convert(&nodes, &path.display().to_string(), report)
}

/// Imports keepalived.conf text (a pasted file, stdin); `name` names it in
/// the report and includes are relative to its directory.
pub fn import_text(fs: &dyn Fs, text: &str, name: &str) -> Outcome {
    let mut report = Report::default();
    let nodes = kparse::parse_text(fs, text, name, &mut report);
    convert(&nodes, name, report)
}

/// Parsed nodes → outcome (config validated by lbd's parser).
pub fn convert(nodes: &[Node], file: &str, report: Report) -> Outcome {
    let top = Loc { file: file.to_string(), line: 1 };
    let mut c = Conv {
        report,
        origins: Origins::default(),
        cfg: Config::default(),
        version: 2,
        garp: Garp::default(),
        v3_as_v2: false,
        groups: HashMap::new(),
        sync_daemon: None,
    };
    // Globals first: they are defaults for the instances.
    for n in nodes.iter().filter(|n| n.key == "global_defs") {
        c.global_defs(n);
    }
    for n in nodes {
        match n.key.as_str() {
            "global_defs" => {}
            "vrrp_instance" => c.instance(n),
            "vrrp_sync_group" | "virtual_server" => {}
            "virtual_server_group" => c.vs_group(n),
            "vrrp_script" => c.not_imported(
                n,
                format!(
                    "{NO_SCRIPTS}. A script tracking a local service has no equivalent; to fail over on a link, use \
                     track_interface (imported as `track`)"
                ),
            ),
            "SSL" => c.not_imported(
                n,
                "lvsbox's https checks present no client certificate and do not verify the server's, so the \
                 certificate, key and CA are not needed",
            ),
            "static_ipaddress" => c.not_imported(n, "add these addresses as [[vips]] (or [[interfaces]] addresses)"),
            "static_routes" => c.not_imported(n, "add these routes as [[routes]]"),
            _ => c.unknown(n, "the top level"),
        }
    }
    for n in nodes {
        match n.key.as_str() {
            "vrrp_sync_group" => c.sync_group(n),
            "virtual_server" => c.virtual_server(n),
            _ => {}
        }
    }
    c.finish_sync_daemon();
    tidy_forwarding(&mut c.cfg);
    let header = format!(
        "# Imported from {file} by `lbd import keepalived`.\n\
         # Check the import report for what was not imported; `lbd check` validates this file.\n\n"
    );
    finish(c.cfg, &header, &c.origins, &top, c.report)
}

/// keepalived's defaults where they differ from lvsbox's (an imported
/// check runs as keepalived ran it).
const KEEPALIVED_DELAY_LOOP: f64 = 60.0;
const KEEPALIVED_CONNECT_TIMEOUT: f64 = 5.0;
const KEEPALIVED_HTTP_DELAY_BEFORE_RETRY: f64 = 3.0;

/// A checker block, read (before the virtual_server's keys apply).
#[derive(Clone, Debug)]
struct Checker {
    spec: CheckSpec,
    /// The checker keyword and where it is.
    key: String,
    loc: Loc,
    /// HTTP_GET or SSL_GET (keepalived's delay_before_retry default is 3 s).
    http: bool,
}

/// A real_server block, read.
#[derive(Clone, Debug)]
struct ImportedReal {
    real: Real,
    loc: Loc,
    check: Option<Checker>,
}

#[derive(Clone, Debug)]
enum Member {
    Addr(Endpoint, Loc),
    Mark(u32, Family, Loc),
}

struct Conv {
    report: Report,
    origins: Origins,
    cfg: Config,
    /// `vrrp_version` (keepalived's default is 2).
    version: u8,
    /// Global GARP defaults.
    garp: Garp,
    v3_as_v2: bool,
    groups: HashMap<String, Vec<Member>>,
    sync_daemon: Option<Node>,
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

impl Conv {
    fn not_imported(&mut self, n: &Node, msg: impl Into<String>) {
        self.report.push(&n.loc, Kind::NotImported, n.key.clone(), msg);
    }
    fn note(&mut self, n: &Node, msg: impl Into<String>) {
        self.report.push(&n.loc, Kind::Note, n.key.clone(), msg);
    }
    fn error(&mut self, n: &Node, msg: impl Into<String>) {
        self.report.error(&n.loc, n.key.clone(), msg);
    }
    fn unknown(&mut self, n: &Node, ctx: &str) {
        let m = format!("has no lvsbox equivalent in {ctx}; remove it (keepalived ignores unknown keywords too)");
        self.not_imported(n, m);
    }

    /// Argument `i` parsed as `T`, or an error.
    fn arg<T: FromStr>(&mut self, n: &Node, i: usize, what: &str) -> Option<T> {
        match n.args.get(i) {
            None => {
                self.error(n, format!("needs {what}"));
                None
            }
            Some(a) => match a.parse::<T>() {
                Ok(v) => Some(v),
                Err(_) => {
                    self.error(n, format!("`{a}` is not {what}"));
                    None
                }
            },
        }
    }

    /// Seconds as keepalived writes them (may be fractional), rounded.
    fn secs(&mut self, n: &Node, i: usize) -> Option<u32> {
        let v: f64 = self.arg(n, i, "a number of seconds")?;
        if !(0.0..=4_294_967_295.0).contains(&v) {
            self.error(n, "is out of range");
            return None;
        }
        Some(v.round() as u32)
    }

    // ------------------------------------------------------------ globals

    fn global_defs(&mut self, g: &Node) {
        for n in g.block.iter().flatten() {
            match n.key.as_str() {
                "router_id" => {
                    let Some(id) = n.args.first() else {
                        self.error(n, "needs a name");
                        continue;
                    };
                    let ok = !id.is_empty()
                        && id.len() <= 63
                        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !id.starts_with('-')
                        && !id.ends_with('-');
                    if ok {
                        self.cfg.system.hostname = id.clone();
                        self.origins.set("system.hostname", &n.loc);
                        self.note(n, format!("imported as system.hostname = \"{id}\""));
                    } else {
                        let m = format!(
                            "`{id}` is not a valid host name, which is what lvsbox names the box by; set \
                             system.hostname (letters, digits, '-')"
                        );
                        self.not_imported(n, m);
                    }
                }
                "vrrp_version" => {
                    if let Some(v) = self.arg::<u8>(n, 0, "2 or 3") {
                        if v == 2 || v == 3 {
                            self.version = v;
                        } else {
                            self.error(n, "must be 2 or 3");
                        }
                    }
                }
                "vrrp_garp_master_delay" => {
                    if let Some(v) = self.secs(n, 0) {
                        self.garp.delay = v;
                    }
                }
                "vrrp_garp_master_repeat" => {
                    if let Some(v) = self.arg(n, 0, "a count") {
                        self.garp.repeat = v;
                    }
                }
                "vrrp_garp_master_refresh" => {
                    if let Some(v) = self.secs(n, 0) {
                        self.garp.refresh = v;
                    }
                }
                "vrrp_garp_master_refresh_repeat" => {
                    if let Some(v) = self.arg(n, 0, "a count") {
                        self.garp.refresh_repeat = v;
                    }
                }
                "vrrp_garp_lower_prio_repeat" => {
                    if let Some(v) = self.arg(n, 0, "a count") {
                        self.garp.lower_prio_repeat = v;
                    }
                }
                "vrrp_garp_interval" | "vrrp_gna_interval" => {
                    if let Some(v) = self.arg::<f64>(n, 0, "seconds") {
                        self.garp.interval_ms = (v * 1000.0).round().clamp(0.0, 1_000_000.0) as u32;
                    }
                }
                "vrrp_min_garp" => {
                    self.garp.repeat = 1;
                    self.garp.delay = 0;
                }
                "v3_checksum_as_v2" => self.v3_as_v2 = true,
                "lvs_sync_daemon" => self.sync_daemon = Some(n.clone()),
                "lvs_timeouts" => self.lvs_timeouts(n),
                "lvs_flush" => self.note(
                    n,
                    "lvsbox always makes the IPVS table equal to the config: services not in it are removed, \
                     real servers drained",
                ),
                "vrrp_mcast_group4" if n.args.first().map(String::as_str) == Some("224.0.0.18") => {
                    self.note(n, "the default group; lvsbox uses it")
                }
                "vrrp_mcast_group6" if n.args.first().map(String::as_str) == Some("ff02::12") => {
                    self.note(n, "the default group; lvsbox uses it")
                }
                "notification_email"
                | "notification_email_from"
                | "smtp_server"
                | "smtp_connect_timeout"
                | "smtp_helo_name"
                | "smtp_alert"
                | "smtp_alert_vrrp"
                | "smtp_alert_checker"
                | "no_email_faults" => {
                    self.not_imported(n, "lvsbox sends no e-mail; state changes are in the log and on the console")
                }
                "enable_script_security" | "script_user" => {
                    self.note(n, "lvsbox runs no scripts, so there is nothing to secure")
                }
                _ => self.unknown(n, "global_defs"),
            }
        }
    }

    fn lvs_timeouts(&mut self, n: &Node) {
        let mut i = 0;
        while i < n.args.len() {
            let key = lower(&n.args[i]);
            let Some(v) = self.secs(n, i + 1) else { return };
            match key.as_str() {
                "tcp" => self.cfg.ipvs.timeouts.tcp = Some(v),
                "tcpfin" | "tcp_fin" => self.cfg.ipvs.timeouts.tcpfin = Some(v),
                "udp" => self.cfg.ipvs.timeouts.udp = Some(v),
                other => {
                    self.error(n, format!("unknown timeout `{other}` (tcp, tcpfin, udp)"));
                    return;
                }
            }
            i += 2;
        }
        self.origins.set("ipvs.timeouts", &n.loc);
    }

    fn finish_sync_daemon(&mut self) {
        let Some(n) = self.sync_daemon.take() else { return };
        let Some(interface) = n.args.first().cloned() else {
            self.error(&n, "needs an interface");
            return;
        };
        let mut d =
            SyncDaemon { interface, instance: None, syncid: 0, group: None, port: None, maxlen: None, ttl: None };
        let mut syncid = None;
        let mut i = 1;
        while i < n.args.len() {
            let k = n.args[i].clone();
            let has_value = matches!(k.as_str(), "inst" | "id" | "maxlen" | "port" | "ttl" | "group");
            match k.as_str() {
                "inst" => d.instance = n.args.get(i + 1).cloned(),
                "id" => syncid = self.arg(&n, i + 1, "a sync id 0..=255"),
                "maxlen" => d.maxlen = self.arg(&n, i + 1, "a length"),
                "port" => d.port = self.arg(&n, i + 1, "a port"),
                "ttl" => d.ttl = self.arg(&n, i + 1, "a TTL"),
                "group" => d.group = self.arg(&n, i + 1, "a multicast address"),
                // Backward compatible form: the instance name without `inst`.
                name if d.instance.is_none() => d.instance = Some(name.to_string()),
                other => {
                    self.error(&n, format!("unknown option `{other}`"));
                    return;
                }
            }
            i += if has_value { 2 } else { 1 };
        }
        // keepalived's default sync id is the VRID of the instance (0 without one).
        let vrid = d
            .instance
            .as_ref()
            .and_then(|name| self.cfg.vrrp.instances.iter().find(|x| &x.name == name))
            .map(|x| x.vrid);
        d.syncid = syncid.or(vrid).unwrap_or(0);
        self.origins.set("vrrp.sync_daemon", &n.loc);
        self.cfg.vrrp.sync_daemon = Some(d);
    }

    // ------------------------------------------------------------ VRRP

    fn instance(&mut self, b: &Node) {
        let Some(name) = b.args.first().cloned() else {
            self.error(b, "needs a name");
            return;
        };
        let mut inst = Instance {
            name,
            interface: String::new(),
            vrid: 0,
            priority: 100,
            version: self.version,
            advert_interval: 1.0,
            preempt: true,
            preempt_delay: 0.0,
            auth_pass: None,
            v3_checksum: if self.v3_as_v2 { ChecksumMode::MessageOnly } else { ChecksumMode::PseudoHeader },
            source: None,
            unicast_peers: Vec::new(),
            vips: Vec::new(),
            track: Vec::new(),
            garp: self.garp.clone(),
            vmac: false,
        };
        let mut auth: Option<&Node> = None;
        let mut vrid_seen = false;
        for n in b.block.iter().flatten() {
            match n.key.as_str() {
                "state" => self.note(
                    n,
                    "lvsbox starts an instance as backup (master at once only at priority 255, the address owner) \
                     and elects the master by priority, as keepalived does once adverts are exchanged; the initial \
                     state has no equivalent",
                ),
                "interface" => {
                    if let Some(i) = n.args.first() {
                        inst.interface = i.clone();
                    }
                }
                "virtual_router_id" => {
                    vrid_seen = true;
                    if let Some(v) = self.arg(n, 0, "a VRID 1..=255") {
                        inst.vrid = v;
                    }
                }
                "priority" => {
                    if let Some(v) = self.arg(n, 0, "a priority 1..=255") {
                        inst.priority = v;
                    }
                }
                "advert_int" => {
                    if let Some(v) = self.arg(n, 0, "seconds") {
                        inst.advert_interval = v;
                    }
                }
                "version" => {
                    if let Some(v) = self.arg(n, 0, "2 or 3") {
                        inst.version = v;
                    }
                }
                "nopreempt" => inst.preempt = false,
                "preempt" => inst.preempt = true,
                "preempt_delay" => {
                    if let Some(v) = self.arg(n, 0, "seconds") {
                        inst.preempt_delay = v;
                    }
                }
                "authentication" => auth = Some(n),
                "mcast_src_ip" | "unicast_src_ip" => {
                    if let Some(v) = self.arg(n, 0, "an address") {
                        inst.source = Some(v);
                    }
                }
                "unicast_peer" => {
                    for p in n.block.iter().flatten() {
                        match p.key.parse::<IpAddr>() {
                            Ok(a) => inst.unicast_peers.push(a),
                            Err(_) => self.error(p, "is not an IP address"),
                        }
                        if !p.args.is_empty() {
                            self.not_imported(p, "min_ttl/max_ttl have no lvsbox equivalent; the peer is imported");
                        }
                    }
                }
                "virtual_ipaddress" => {
                    for v in n.block.iter().flatten() {
                        if let Some(vip) = self.vip(v) {
                            inst.vips.push(vip);
                        }
                    }
                }
                "virtual_ipaddress_excluded" => self.not_imported(
                    n,
                    "lvsbox advertises every VRRP address; add these to `vips` (on both directors) or as static \
                     [[vips]]",
                ),
                "track_interface" => {
                    for t in n.block.iter().flatten() {
                        let mut weight = 0i16;
                        match t.args.as_slice() {
                            [] => {}
                            [w, v] if w == "weight" => match v.parse() {
                                Ok(x) => weight = x,
                                Err(_) => self.error(t, format!("`{v}` is not a weight")),
                            },
                            _ => self.not_imported(t, "only `weight N` is imported (no `reverse`); check the weight"),
                        }
                        inst.track.push(TrackIf { interface: t.key.clone(), weight });
                    }
                }
                "track_script" | "track_process" | "track_file" | "track_bfd" => self.not_imported(
                    n,
                    format!("{NO_SCRIPTS}; only interfaces can be tracked (track_interface → `track`)"),
                ),
                "notify"
                | "notify_master"
                | "notify_backup"
                | "notify_fault"
                | "notify_stop"
                | "notify_deleted"
                | "notify_master_rx_lower_pri"
                | "smtp_alert" => self.not_imported(n, NO_SCRIPTS),
                "garp_master_delay" => {
                    if let Some(v) = self.secs(n, 0) {
                        inst.garp.delay = v;
                    }
                }
                "garp_master_repeat" => {
                    if let Some(v) = self.arg(n, 0, "a count") {
                        inst.garp.repeat = v;
                    }
                }
                "garp_master_refresh" => {
                    if let Some(v) = self.secs(n, 0) {
                        inst.garp.refresh = v;
                    }
                }
                "garp_master_refresh_repeat" => {
                    if let Some(v) = self.arg(n, 0, "a count") {
                        inst.garp.refresh_repeat = v;
                    }
                }
                "garp_lower_prio_repeat" => {
                    if let Some(v) = self.arg(n, 0, "a count") {
                        inst.garp.lower_prio_repeat = v;
                    }
                }
                "v3_checksum_as_v2" => inst.v3_checksum = ChecksumMode::MessageOnly,
                "use_vmac" => self.not_imported(
                    n,
                    "this lvsbox version has no virtual MAC; the instance uses the interface's MAC (peers and \
                     switches learn it from the gratuitous ARPs)",
                ),
                "lvs_sync_daemon_interface" => {
                    self.note(n, "deprecated alias of global lvs_sync_daemon; imported as [vrrp.sync_daemon]");
                    if self.sync_daemon.is_none()
                        && let Some(i) = n.args.first()
                    {
                        let name = b.args[0].clone();
                        self.sync_daemon = Some(Node {
                            key: "lvs_sync_daemon".into(),
                            args: vec![i.clone(), "inst".into(), name],
                            block: None,
                            loc: n.loc.clone(),
                        });
                    }
                }
                "down_timer_adverts" if n.args.first().map(String::as_str) == Some("3") => {
                    self.note(n, "the default; lvsbox uses 3")
                }
                _ => self.unknown(n, "vrrp_instance"),
            }
        }
        if let Some(a) = auth {
            self.auth(a, &mut inst);
        }
        if !vrid_seen {
            self.error(b, "needs virtual_router_id");
        }
        if inst.interface.is_empty() {
            self.error(b, "needs `interface` (lvsbox sends adverts on a named interface, also with unicast peers)");
        }
        let i = self.cfg.vrrp.instances.len();
        self.origins.set(format!("vrrp.instances[{i}]"), &b.loc);
        self.cfg.vrrp.instances.push(inst);
    }

    fn auth(&mut self, a: &Node, inst: &mut Instance) {
        let mut kind = None;
        let mut pass = None;
        for n in a.block.iter().flatten() {
            match n.key.as_str() {
                "auth_type" => kind = n.args.first().map(|s| s.to_ascii_uppercase()),
                "auth_pass" => pass = n.args.first().cloned(),
                _ => self.unknown(n, "authentication"),
            }
        }
        match kind.as_deref() {
            Some("PASS") | None if inst.version == 3 => {
                self.note(a, "VRRPv3 has no authentication (keepalived ignores it for version 3 too); not imported")
            }
            Some("PASS") | None => match pass {
                Some(p) if p.chars().count() > 8 => {
                    let p8: String = p.chars().take(8).collect();
                    self.note(a, format!("keepalived uses only the first 8 characters of auth_pass; imported `{p8}`"));
                    inst.auth_pass = Some(p8);
                }
                Some(p) => inst.auth_pass = Some(p),
                None => self.error(a, "auth_type PASS needs auth_pass"),
            },
            Some("AH") => self.not_imported(
                a,
                "AH authentication is not supported (RFC 3768 removed VRRP authentication); use no authentication \
                 or PASS on both directors",
            ),
            Some(other) => self.error(a, format!("unknown auth_type `{other}` (PASS or AH)")),
        }
    }

    fn vip(&mut self, v: &Node) -> Option<VrrpVip> {
        let address: IfAddr = match v.key.parse() {
            Ok(a) => a,
            Err(e) => {
                self.error(v, e);
                return None;
            }
        };
        let mut vip = VrrpVip { address, interface: None, label: None };
        let mut i = 0;
        while i < v.args.len() {
            let val = v.args.get(i + 1).cloned();
            match (v.args[i].as_str(), val) {
                ("dev", Some(d)) => vip.interface = Some(d),
                ("label", Some(l)) => vip.label = Some(l),
                ("brd" | "broadcast", Some(_)) => {
                    self.note(v, "brd: the kernel derives the broadcast address from the prefix")
                }
                (opt, _) => {
                    self.not_imported(
                        v,
                        format!("VIP option `{opt}` has no lvsbox equivalent; the address is imported"),
                    );
                    return Some(vip);
                }
            }
            i += 2;
        }
        Some(vip)
    }

    fn sync_group(&mut self, g: &Node) {
        let Some(name) = g.args.first().cloned() else {
            self.error(g, "needs a name");
            return;
        };
        let mut members = Vec::new();
        for n in g.block.iter().flatten() {
            match n.key.as_str() {
                "group" => {
                    for m in n.block.iter().flatten() {
                        members.push(m.key.clone());
                        members.extend(m.args.iter().cloned());
                    }
                }
                "notify" | "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "smtp_alert" => {
                    self.not_imported(n, NO_SCRIPTS)
                }
                "track_script" | "track_process" | "track_file" | "track_bfd" => self
                    .not_imported(n, format!("{NO_SCRIPTS}; only interfaces can be tracked (on the member instances)")),
                "track_interface" => self.not_imported(
                    n,
                    "lvsbox tracks interfaces per instance: add them as `track` on the member instances",
                ),
                _ => self.unknown(n, "vrrp_sync_group"),
            }
        }
        if members.len() < 2 {
            self.note(g, "a sync group of fewer than two instances changes nothing; not imported");
            return;
        }
        let i = self.cfg.vrrp.sync_groups.len();
        self.origins.set(format!("vrrp.sync_groups[{i}]"), &g.loc);
        self.cfg.vrrp.sync_groups.push(SyncGroup { name, instances: members });
    }

    // ------------------------------------------------------------ LVS

    fn vs_group(&mut self, g: &Node) {
        let Some(name) = g.args.first().cloned() else {
            self.error(g, "needs a name");
            return;
        };
        let mut members = Vec::new();
        for n in g.block.iter().flatten() {
            if n.key == "fwmark" {
                let Some(mark) = self.arg::<u32>(n, 0, "a firewall mark") else { continue };
                let fam = match n.args.get(1).map(String::as_str) {
                    None | Some("inet") => Family::Ipv4,
                    Some("inet6") => Family::Ipv6,
                    Some(o) => {
                        self.error(n, format!("unknown family `{o}` (inet or inet6)"));
                        continue;
                    }
                };
                members.push(Member::Mark(mark, fam, n.loc.clone()));
                continue;
            }
            let port = match n.args.first() {
                None => None,
                Some(p) => match p.parse::<u16>() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        self.error(n, format!("`{p}` is not a port"));
                        continue;
                    }
                },
            };
            match expand_range(&n.key) {
                Ok(addrs) => {
                    members.extend(addrs.into_iter().map(|a| Member::Addr(Endpoint { addr: a, port }, n.loc.clone())))
                }
                Err(e) => self.error(n, e),
            }
        }
        if self.groups.insert(name.clone(), members).is_some() {
            self.error(g, format!("virtual_server_group `{name}` is defined twice"));
        }
    }

    fn lvs_method(&mut self, n: &Node) -> Option<(Forwarding, Option<Tunnel>)> {
        let m = n.args.first().map(|s| s.to_ascii_uppercase());
        let fwd = match m.as_deref() {
            Some("NAT") => Forwarding::Nat,
            Some("DR") => Forwarding::Dr,
            Some("TUN") => Forwarding::Tun,
            Some(o) => {
                self.error(n, format!("unknown method `{o}` (NAT, DR or TUN)"));
                return None;
            }
            None => {
                self.error(n, "needs NAT, DR or TUN");
                return None;
            }
        };
        let mut tun: Option<Tunnel> = None;
        let mut i = 1;
        while i < n.args.len() {
            let a = lower(&n.args[i]);
            let t = tun.get_or_insert(Tunnel { kind: TunnelType::Ipip, port: None, checksum: None });
            match a.as_str() {
                "type" => {
                    let v = n.args.get(i + 1).map(|s| lower(s));
                    match v.as_deref().map(str::parse::<TunnelType>) {
                        Some(Ok(k)) => t.kind = k,
                        _ => {
                            self.error(n, "`type` needs ipip, gue or gre");
                            return None;
                        }
                    }
                    i += 1;
                }
                "port" => {
                    t.port = self.arg(n, i + 1, "a port");
                    i += 1;
                }
                "nocsum" => t.checksum = Some(TunnelChecksum::None),
                "csum" => t.checksum = Some(TunnelChecksum::Csum),
                "remcsum" => t.checksum = Some(TunnelChecksum::Remcsum),
                other => {
                    self.error(n, format!("unknown option `{other}`"));
                    return None;
                }
            }
            i += 1;
        }
        if fwd != Forwarding::Tun && tun.is_some() {
            self.error(n, "tunnel options need TUN");
            return None;
        }
        // ipip carries no checksum option: keep the plain ipip default.
        if tun.as_ref().is_some_and(|t| t.kind == TunnelType::Ipip && t.port.is_none() && t.checksum.is_none()) {
            tun = None;
        }
        Some((fwd, tun))
    }

    fn virtual_server(&mut self, vs: &Node) {
        // The service template, then one service per member.
        let mut t = Service { forwarding: Forwarding::Nat, ..Service::default() };
        let mut tunnel: Option<Tunnel> = None;
        let mut family: Option<Family> = None;
        let members: Vec<Member> = match vs.args.first().map(String::as_str) {
            None => {
                self.error(vs, "needs an address and port, `fwmark N` or `group NAME`");
                return;
            }
            Some("fwmark") => match self.arg::<u32>(vs, 1, "a firewall mark") {
                Some(m) => vec![Member::Mark(m, Family::Ipv4, vs.loc.clone())],
                None => return,
            },
            Some("group") => {
                let Some(name) = vs.args.get(1) else {
                    self.error(vs, "needs a group name");
                    return;
                };
                match self.groups.get(name) {
                    Some(m) if m.is_empty() => {
                        self.note(vs, format!("virtual_server_group `{name}` is empty: no service"));
                        return;
                    }
                    Some(m) => m.clone(),
                    None => {
                        self.error(vs, format!("no virtual_server_group `{name}`"));
                        return;
                    }
                }
            }
            Some(a) => {
                let addr: IpAddr = match a.parse() {
                    Ok(x) => x,
                    Err(_) => {
                        self.error(vs, format!("`{a}` is not an IP address"));
                        return;
                    }
                };
                let port = match vs.args.get(1) {
                    None => 0,
                    Some(p) => match p.parse::<u16>() {
                        Ok(p) => p,
                        Err(_) => {
                            self.error(vs, format!("`{p}` is not a port"));
                            return;
                        }
                    },
                };
                vec![Member::Addr(Endpoint { addr, port: Some(port) }, vs.loc.clone())]
            }
        };
        let (mut fallback, mut port_flag) = (false, false);
        let mut protocol_given = false;
        let mut reals: Vec<ImportedReal> = Vec::new();
        let mut granularity: Option<&Node> = None;
        let mut vs_spec = CheckSpec::default();
        let mut vs_keys: Vec<(String, Loc)> = Vec::new();
        let mut quorum: Option<&Node> = None;
        let mut hysteresis: Option<&Node> = None;
        let mut sorry: Option<&Node> = None;
        let mut sorry_method: Option<&Node> = None;
        for n in vs.block.iter().flatten() {
            match n.key.as_str() {
                "lvs_sched" | "lb_algo" => {
                    let s = n.args.first().map(|s| lower(s)).unwrap_or_default();
                    match s.parse::<Scheduler>() {
                        Ok(x) => t.scheduler = x,
                        Err(e) => self.error(n, e),
                    }
                }
                "lvs_method" | "lb_kind" => {
                    if let Some((f, tun)) = self.lvs_method(n) {
                        t.forwarding = f;
                        tunnel = tun;
                    }
                }
                "protocol" => match n.args.first().map(|s| lower(s)).as_deref().map(str::parse::<Protocol>) {
                    Some(Ok(p)) => {
                        t.protocol = p;
                        protocol_given = true;
                    }
                    _ => self.error(n, "needs TCP, UDP or SCTP"),
                },
                "persistence_timeout" => {
                    let timeout = if n.args.is_empty() { Some(360) } else { self.secs(n, 0) };
                    if let Some(timeout) = timeout {
                        t.persistence.get_or_insert_with(Persistence::default).timeout = timeout;
                    }
                }
                "persistence_granularity" => granularity = Some(n),
                "persistence_engine" => match n.args.first().map(|s| lower(s)).as_deref() {
                    Some("sip") => {
                        t.persistence.get_or_insert_with(Persistence::default).engine = Some(PersistenceEngine::Sip)
                    }
                    _ => self.error(n, "the only persistence engine is sip"),
                },
                "ops" => t.one_packet = true,
                "sh-fallback" | "mh-fallback" | "flag-1" => fallback = true,
                "sh-port" | "mh-port" | "flag-2" => port_flag = true,
                "hashed" => self.note(n, "IPVS sets this flag itself; nothing to import"),
                "ip_family" => match n.args.first().map(String::as_str) {
                    Some("inet") => family = Some(Family::Ipv4),
                    Some("inet6") => family = Some(Family::Ipv6),
                    _ => self.error(n, "needs inet or inet6"),
                },
                "real_server" => {
                    if let Some(r) = self.real_server(n) {
                        reals.push(r);
                    }
                }
                k if self.timing_key(n, &mut vs_spec, true) => vs_keys.push((k.to_string(), n.loc.clone())),
                "quorum" => quorum = Some(n),
                "hysteresis" => hysteresis = Some(n),
                "sorry_server" => sorry = Some(n),
                "sorry_server_lvs_method" => sorry_method = Some(n),
                "inhibit_on_failure" => t.inhibit_on_failure = true,
                "sorry_server_inhibit" => self.not_imported(
                    n,
                    "lvsbox removes the sorry server when the quorum is regained (it has no weight-0 inhibit for \
                     it); the sorry server is imported",
                ),
                "omega" => self.not_imported(
                    n,
                    format!("{NO_SCRIPTS}; omega only runs quorum_down/notify_down scripts when keepalived stops"),
                ),
                "ha_suspend" => self.not_imported(
                    n,
                    "lvsbox checks real servers whether or not this director holds the VIP (which keeps their \
                     state current for a takeover); the checks are imported without suspension",
                ),
                "quorum_up" | "quorum_down" | "smtp_alert" => self.not_imported(n, NO_SCRIPTS),
                _ => self.unknown(n, "virtual_server"),
            }
        }
        if let Some(g) = granularity {
            match t.persistence.as_mut() {
                None => self.note(g, "has no effect without persistence_timeout (as in keepalived); not imported"),
                Some(p) => {
                    let raw = g.args.first().cloned().unwrap_or_default();
                    let v = raw.parse::<u64>().map(serde_json::Value::from).unwrap_or_else(|_| raw.clone().into());
                    match serde_json::from_value::<Netmask>(v) {
                        Ok(m) => p.netmask = Some(m),
                        Err(e) => self.error(g, e.to_string()),
                    }
                }
            }
        }
        let sched_flag = |on: bool, sh: SchedFlag, mh: SchedFlag| match (on, t.scheduler) {
            (true, Scheduler::Sh) => Some(sh),
            (true, Scheduler::Mh) => Some(mh),
            _ => None,
        };
        t.scheduler_flags = [
            sched_flag(fallback, SchedFlag::ShFallback, SchedFlag::MhFallback),
            sched_flag(port_flag, SchedFlag::ShPort, SchedFlag::MhPort),
        ]
        .into_iter()
        .flatten()
        .collect();
        if (fallback || port_flag) && t.scheduler_flags.is_empty() {
            self.note(vs, format!("scheduler flags have no effect with {}; not imported", t.scheduler));
        }
        let has_address = members.iter().any(|m| matches!(m, Member::Addr(..)));
        if !protocol_given && has_address {
            // Checked in a guest: Debian 12's keepalived 2.2.7 programs UDP
            // for an address service without `protocol`.
            t.protocol = Protocol::Udp;
            self.note(
                vs,
                "no `protocol`: keepalived (2.2.7, Debian 12, checked in a guest) programs such a service as UDP, so \
                 it is imported as udp; if you meant TCP, set protocol = \"tcp\" (and add `protocol TCP` to the \
                 keepalived.conf)",
            );
        }
        // Checks: keepalived's cascade (checker over real_server over
        // virtual_server), with keepalived's defaults where lvsbox's differ.
        if reals.iter().all(|ir| ir.check.is_none()) {
            for (key, loc) in vs_keys {
                self.report.push(&loc, Kind::Note, key, "no real server here has a check; nothing to import");
            }
        }
        for ir in &mut reals {
            if t.inhibit_on_failure && ir.real.inhibit_on_failure == Some(true) {
                ir.real.inhibit_on_failure = None;
            }
            let Some(c) = ir.check.as_mut() else { continue };
            let mut spec = c.spec.over(&vs_spec);
            if !matches!(spec.kind, Some(CheckType::Http | CheckType::Https)) {
                spec.virtualhost = None;
            }
            let delay_loop = *spec.delay_loop.get_or_insert(KEEPALIVED_DELAY_LOOP);
            spec.connect_timeout.get_or_insert(KEEPALIVED_CONNECT_TIMEOUT.min(delay_loop * 10.0));
            if c.http {
                spec.delay_before_retry.get_or_insert(KEEPALIVED_HTTP_DELAY_BEFORE_RETRY);
            }
            c.spec = spec;
        }
        if let Some(n) = quorum
            && let Some(q) = self.arg::<u32>(n, 0, "a weight")
        {
            if q == 0 {
                self.not_imported(
                    n,
                    "lvsbox's least quorum is 1 (lost when no real server is up); the default 1 applies",
                );
            } else {
                t.quorum = Some(q);
            }
        }
        if let Some(n) = hysteresis
            && let Some(h) = self.arg::<u32>(n, 0, "a weight")
        {
            let q = t.quorum.unwrap_or(1);
            if h >= q {
                let m = format!(
                    "lvsbox needs hysteresis below quorum ({q}); imported as {}",
                    if q > 1 { format!("hysteresis = {}", q - 1) } else { "no hysteresis".to_string() }
                );
                self.note(n, m);
                t.hysteresis = (q > 1).then_some(q - 1);
            } else if h > 0 {
                t.hysteresis = Some(h);
            }
        }
        let fwmark_only = members.iter().all(|m| matches!(m, Member::Mark(..)));
        if let Some(n) = sorry {
            let fwd = match sorry_method.and_then(|m| self.lvs_method(m)) {
                Some((f, tun)) => {
                    if tun.is_some() {
                        self.not_imported(
                            sorry_method.unwrap_or(n),
                            "a sorry server takes no tunnel options in lvsbox; it is imported with ipip",
                        );
                    }
                    Some(f)
                }
                None => None,
            };
            let addr: Option<IpAddr> = self.arg(n, 0, "an IP address");
            let port = match n.args.get(1) {
                None => None,
                Some(_) => self.arg::<u16>(n, 1, "a port"),
            };
            if let Some(addr) = addr {
                let eff = fwd.unwrap_or(t.forwarding);
                // As for real servers: keepalived programs port 0 for DR/TUN
                // in a fwmark service.
                let port = port.filter(|p| *p != 0 && !(fwmark_only && eff != Forwarding::Nat));
                t.sorry_server = Some(SorryServer {
                    address: Endpoint { addr, port },
                    forwarding: fwd.filter(|f| *f != t.forwarding),
                    weight: 1,
                });
            }
        } else if let Some(m) = sorry_method {
            self.note(m, "no sorry_server here; nothing to import");
        }

        let mut port_dropped = false;
        for ImportedReal { real: r, check, .. } in &mut reals {
            if r.forwarding == Some(t.forwarding) {
                r.forwarding = None;
            }
            // keepalived programs port 0 for the DR/TUN real servers of a
            // fwmark service (their port only serves the checks).
            if fwmark_only
                && r.forwarding.unwrap_or(t.forwarding) != Forwarding::Nat
                && r.address.port.is_some_and(|p| p != 0)
            {
                // keepalived checks the port it does not program.
                if let Some(c) = check.as_mut()
                    && c.spec.kind != Some(CheckType::Icmp)
                    && c.spec.connect_port.is_none()
                {
                    c.spec.connect_port = r.address.port;
                }
                r.address.port = None;
                port_dropped = true;
            }
            if r.forwarding.unwrap_or(t.forwarding) == Forwarding::Tun && r.tunnel.is_none() {
                r.tunnel = tunnel.clone();
            }
        }
        let portless = members.iter().any(|m| match m {
            Member::Mark(..) => true,
            Member::Addr(e, _) => e.port.unwrap_or(0) == 0,
        });
        for ir in &mut reals {
            let Some(c) = &ir.check else { continue };
            if portless
                && c.spec.kind != Some(CheckType::Icmp)
                && c.spec.connect_port.is_none()
                && ir.real.address.port.unwrap_or(0) == 0
            {
                let (loc, key) = (c.loc.clone(), c.key.clone());
                self.report.push(
                    &loc,
                    Kind::NotImported,
                    key,
                    "this real server has no port to check: add `connect_port` to the check; the real server is \
                     imported without a check",
                );
                ir.check = None;
            }
        }
        if port_dropped {
            self.note(
                vs,
                "keepalived programs port 0 for the DR/TUN real servers of a fwmark service (their port only \
                 serves the checks); imported without a port, which gives the same table",
            );
        }
        for m in members {
            let mut s = t.clone();
            let loc = match m {
                Member::Addr(e, loc) => {
                    s.address = Some(Endpoint { addr: e.addr, port: Some(e.port.unwrap_or(0)) });
                    loc
                }
                Member::Mark(mark, fam, loc) => {
                    s.fwmark = Some(mark);
                    s.family = Some(family.unwrap_or(fam));
                    loc
                }
            };
            let i = self.cfg.services.len();
            self.origins.set(format!("services[{i}]"), &vs.loc);
            if loc != vs.loc {
                self.origins.set(format!("services[{i}].address"), &loc);
                self.origins.set(format!("services[{i}].fwmark"), &loc);
            }
            for (j, ir) in reals.iter().enumerate() {
                self.origins.set(format!("services[{i}].reals[{j}]"), &ir.loc);
                if let Some(c) = &ir.check {
                    self.origins.set(format!("services[{i}].reals[{j}].check"), &c.loc);
                }
            }
            s.reals = reals.iter().map(|ir| ir.real.clone()).collect();
            let svc_port = s.address.and_then(|a| a.port).unwrap_or(0);
            for (r, ir) in s.reals.iter_mut().zip(&reals) {
                let Some(c) = &ir.check else { continue };
                let mut spec = c.spec.clone();
                // lvsbox's TCP and HTTP checks of a UDP or SCTP service need
                // the port said; keepalived uses the real server's.
                let kind = spec.kind.unwrap_or(CheckType::Tcp);
                let port = r.address.port.unwrap_or(svc_port);
                if matches!(kind, CheckType::Tcp | CheckType::Http | CheckType::Https)
                    && s.fwmark.is_none()
                    && s.protocol != Protocol::Tcp
                    && spec.connect_port.is_none()
                    && port != 0
                {
                    spec.connect_port = Some(port);
                }
                r.check = Some(Box::new(spec));
            }
            // The same check on every real server: once, on the service.
            if let Some(first) = s.reals.first().and_then(|r| r.check.clone())
                && s.reals.iter().all(|r| r.check.as_ref() == Some(&first))
            {
                for r in &mut s.reals {
                    r.check = None;
                }
                s.check = Some(first);
                if let Some(c) = reals.iter().find_map(|ir| ir.check.as_ref()) {
                    self.origins.set(format!("services[{i}].check"), &c.loc);
                }
            }
            self.cfg.services.push(s);
        }
    }

    fn real_server(&mut self, n: &Node) -> Option<ImportedReal> {
        let addr: IpAddr = match n.args.first().map(|a| a.parse()) {
            Some(Ok(a)) => a,
            Some(Err(_)) => {
                self.error(n, format!("`{}` is not an IP address", n.args[0]));
                return None;
            }
            None => {
                self.error(n, "needs an address");
                return None;
            }
        };
        let port = match n.args.get(1) {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(p) => Some(p),
                Err(_) => {
                    self.error(n, format!("`{p}` is not a port"));
                    return None;
                }
            },
        };
        let mut r = Real::new(Endpoint { addr, port });
        let mut real_spec = CheckSpec::default();
        let mut real_keys: Vec<(String, Loc)> = Vec::new();
        let mut check: Option<Checker> = None;
        for k in n.block.iter().flatten() {
            match k.key.as_str() {
                "weight" => {
                    if let Some(w) = self.arg(k, 0, "a weight 0..=65535") {
                        r.weight = w;
                    }
                }
                "lvs_method" | "lb_kind" => {
                    if let Some((f, t)) = self.lvs_method(k) {
                        r.forwarding = Some(f);
                        r.tunnel = t;
                    }
                }
                "uthreshold" => {
                    if let Some(v) = self.arg(k, 0, "a connection count") {
                        r.upper_threshold = v;
                    }
                }
                "lthreshold" => {
                    if let Some(v) = self.arg(k, 0, "a connection count") {
                        r.lower_threshold = v;
                    }
                }
                "inhibit_on_failure" => r.inhibit_on_failure = Some(true),
                key if self.timing_key(k, &mut real_spec, true) => real_keys.push((key.to_string(), k.loc.clone())),
                "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "UDP_CHECK" | "DNS_CHECK" | "PING_CHECK" => {
                    if check.is_some() {
                        self.not_imported(
                            k,
                            "lvsbox runs one check per real server (keepalived requires all of them to pass); \
                             only the first checker is imported",
                        );
                    } else {
                        check = self.checker(k);
                    }
                }
                "SMTP_CHECK" => self.not_imported(
                    k,
                    "lvsbox has no SMTP check; check the port with `check = { type = \"tcp\", connect_port = 25 }` \
                     (connect only) instead",
                ),
                "BFD_CHECK" => self.not_imported(k, "lvsbox has no BFD; use a TCP, HTTP or ICMP check instead"),
                "FILE_CHECK" => self.not_imported(
                    k,
                    "lvsbox has no file checks (nothing on the box writes them); probe the service itself (TCP/HTTP) \
                     instead, or take the real out by hand with `lbd ctl disable`",
                ),
                "MISC_CHECK" => self.not_imported(
                    k,
                    format!(
                        "{NO_SCRIPTS}; a script check has no equivalent: probe the service itself with a `check` \
                         (tcp, http, udp, dns or icmp)"
                    ),
                ),
                "notify_up" | "notify_down" | "smtp_alert" => self.not_imported(k, NO_SCRIPTS),
                _ => self.unknown(k, "real_server"),
            }
        }
        let check = match check {
            Some(mut c) => {
                // keepalived's cascade: the checker's keys over the real server's.
                c.spec = c.spec.over(&real_spec);
                Some(c)
            }
            None => {
                for (key, loc) in real_keys {
                    self.report.push(&loc, Kind::Note, key, "this real server has no check; nothing to import");
                }
                None
            }
        };
        Some(ImportedReal { real: r, loc: n.loc.clone(), check })
    }

    /// Keys that time a check, at any of keepalived's levels (virtual_server,
    /// real_server, checker): read into `spec`; false when `n` is none of them.
    fn timing_key(&mut self, n: &Node, spec: &mut CheckSpec, vhost: bool) -> bool {
        match n.key.as_str() {
            "delay_loop" => spec.delay_loop = self.fsecs(n).or(spec.delay_loop),
            "connect_timeout" => spec.connect_timeout = self.fsecs(n).or(spec.connect_timeout),
            "delay_before_retry" => spec.delay_before_retry = self.fsecs(n).or(spec.delay_before_retry),
            "warmup" => spec.warmup = self.fsecs(n).or(spec.warmup),
            "retry" | "nb_get_retry" => spec.retry = self.arg(n, 0, "a retry count").or(spec.retry),
            "alpha" => spec.alpha = Some(true),
            "virtualhost" if vhost => spec.virtualhost = n.args.first().cloned().or(spec.virtualhost.take()),
            _ => return false,
        }
        true
    }

    /// Seconds, possibly fractional.
    fn fsecs(&mut self, n: &Node) -> Option<f64> {
        let v: f64 = self.arg(n, 0, "a number of seconds")?;
        if !v.is_finite() || v < 0.0 {
            self.error(n, "is out of range");
            return None;
        }
        Some(v)
    }

    /// A `TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `UDP_CHECK`, `DNS_CHECK` or
    /// `PING_CHECK` block.
    fn checker(&mut self, c: &Node) -> Option<Checker> {
        let kind = match c.key.as_str() {
            "TCP_CHECK" => CheckType::Tcp,
            "HTTP_GET" => CheckType::Http,
            "SSL_GET" => CheckType::Https,
            "UDP_CHECK" => CheckType::Udp,
            "DNS_CHECK" => CheckType::Dns,
            _ => CheckType::Icmp,
        };
        let http = matches!(kind, CheckType::Http | CheckType::Https);
        let mut spec = CheckSpec { kind: Some(kind), ..CheckSpec::default() };
        let mut urls = 0;
        for n in c.block.iter().flatten() {
            if self.timing_key(n, &mut spec, http) {
                continue;
            }
            match (n.key.as_str(), kind) {
                ("connect_ip", _) => spec.connect_ip = self.arg(n, 0, "an IP address"),
                ("connect_port", CheckType::Icmp) => self.note(n, "an ICMP echo has no port; not imported"),
                ("connect_port", _) => spec.connect_port = self.arg(n, 0, "a port"),
                ("bindto", _) => spec.bindto = self.arg(n, 0, "an IP address"),
                ("fwmark", _) => match self.arg::<u32>(n, 0, "a firewall mark") {
                    Some(0) => self.note(n, "0 means unmarked; not imported"),
                    m => spec.fwmark = m,
                },
                ("bind_port", _) => self.not_imported(
                    n,
                    "lvsbox lets the kernel choose the source port of a check; the check is imported without it",
                ),
                ("bind_if", _) => self.not_imported(
                    n,
                    "lvsbox binds a check to an address, not an interface: set `bindto` to an address of that \
                     interface",
                ),
                ("log_all_failures", _) => {
                    self.note(n, "lbd logs every transition with its reason; `lbd ctl checks` shows the last result")
                }
                ("url", CheckType::Http | CheckType::Https) => {
                    urls += 1;
                    if urls > 1 {
                        self.not_imported(
                            n,
                            "lvsbox checks one URL per real server; this URL is not checked (the first one is)",
                        );
                    } else {
                        self.url(n, &mut spec);
                    }
                }
                ("http_protocol", CheckType::Http | CheckType::Https) => self.note(
                    n,
                    "lbd always sends an HTTP/1.1 GET with `Host` and `Connection: close`, which HTTP/1.0 servers \
                     answer too",
                ),
                ("enable_sni", CheckType::Https) => {
                    self.note(n, "lbd sends SNI whenever the check has a `virtualhost`")
                }
                ("fast_recovery" | "tls_compliant", CheckType::Http | CheckType::Https) => self.not_imported(
                    n,
                    "has no lvsbox equivalent; the check is imported without it (see `rise`/`fall` in docs/config.md)",
                ),
                ("payload", CheckType::Udp) => spec.payload = self.hex_arg(n),
                ("require_reply", CheckType::Udp) => {
                    spec.require_reply = if n.args.is_empty() { Some(String::new()) } else { self.hex_arg(n) }
                }
                ("min_reply_length" | "max_reply_length", CheckType::Udp) => self.not_imported(
                    n,
                    "lvsbox checks a reply by its first bytes (`require_reply`), not its length; the check is \
                     imported without it",
                ),
                ("type", CheckType::Dns) => {
                    let v = n.args.first().map(|s| s.to_ascii_uppercase()).unwrap_or_default();
                    match serde_json::from_value::<DnsType>(v.clone().into()) {
                        Ok(t) => spec.dns_type = Some(t),
                        Err(_) => self
                            .error(n, format!("`{v}` is not a query type lvsbox knows (A NS CNAME SOA MX TXT AAAA)")),
                    }
                }
                ("name", CheckType::Dns) => spec.dns_name = n.args.first().cloned(),
                _ => self.unknown(n, &c.key),
            }
        }
        if kind == CheckType::Https {
            self.note(
                c,
                "lvsbox's https checks speak TLS 1.3 and 1.2 with AES-128-GCM and x25519 and, like SSL_GET without \
                 a CA, do not verify the server's certificate",
            );
        }
        Some(Checker { spec, key: c.key.clone(), loc: c.loc.clone(), http })
    }

    /// An HTTP_GET/SSL_GET `url` block.
    fn url(&mut self, u: &Node, spec: &mut CheckSpec) {
        for n in u.block.iter().flatten() {
            if matches!(n.key.as_str(), "path" | "digest" | "regex" | "virtualhost") && n.args.len() > 1 {
                let m = format!(
                    "takes one word; `{}` is not imported (keepalived's parser reads keywords line by line): put \
                     each keyword on its own line",
                    n.args[1..].join(" ")
                );
                self.not_imported(n, m);
            }
            match n.key.as_str() {
                "path" => match n.args.first() {
                    Some(p) if p.starts_with('/') && !p.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                        spec.path = Some(p.clone())
                    }
                    Some(p) => self.error(n, format!("`{p}` is not a path starting with '/'")),
                    None => self.error(n, "needs a path"),
                },
                "status_code" => {
                    let mut codes = Vec::new();
                    let mut bad = false;
                    for a in n.args.iter().flat_map(|a| a.split(',')).filter(|a| !a.is_empty()) {
                        let (x, y) = a.split_once('-').unwrap_or((a, a));
                        match (x.parse::<u16>(), y.parse::<u16>()) {
                            (Ok(x), Ok(y)) if (100..=599).contains(&x) && (100..=599).contains(&y) && x <= y => {
                                codes.push(StatusRange(x, y))
                            }
                            _ => {
                                self.error(n, format!("`{a}` is not a status code 100..=599 or a range like 200-299"));
                                bad = true;
                                break;
                            }
                        }
                    }
                    if !bad && codes.is_empty() {
                        self.error(n, "needs a status code");
                    } else if !bad {
                        spec.status_code.get_or_insert_with(Vec::new).extend(codes);
                    }
                }
                "digest" => match n.args.first() {
                    Some(d) if d.len() == 32 && d.chars().all(|c| c.is_ascii_hexdigit()) => {
                        spec.digest = Some(d.to_ascii_lowercase())
                    }
                    _ => self.error(n, "needs an MD5 digest, 32 hex digits (as genhash prints it)"),
                },
                "regex" => match n.args.first() {
                    Some(re) => match crate::health::re::Regex::new(re) {
                        Ok(_) => spec.regex = Some(re.clone()),
                        Err(e) => self.not_imported(
                            n,
                            format!(
                                "lvsbox's regular expressions are a linear-time subset of PCRE and refuse this one \
                                 ({e}); the body is not matched: rewrite it (docs/config.md, HTTP) as `regex`"
                            ),
                        ),
                    },
                    None => self.error(n, "needs a regular expression"),
                },
                "virtualhost" => spec.virtualhost = n.args.first().cloned(),
                "regex_no_match" | "regex_options" | "regex_stack" | "regex_min_offset" | "regex_max_offset" => self
                    .not_imported(
                        n,
                        "lvsbox matches `regex` against the whole body (up to 1 MiB), with no options; not imported",
                    ),
                _ => self.unknown(n, "url"),
            }
        }
    }

    /// A hex argument (UDP payloads).
    fn hex_arg(&mut self, n: &Node) -> Option<String> {
        let h: String = n.args.concat();
        let ok = !h.is_empty() && h.len().is_multiple_of(2) && h.chars().all(|c| c.is_ascii_hexdigit());
        if !ok || h.len() > 2 * 1400 {
            self.error(n, "needs hex bytes, e.g. 0a0b0c (at most 1400 bytes)");
            return None;
        }
        Some(h.to_ascii_lowercase())
    }
}

/// Most addresses one range of a virtual_server_group may expand to.
const MAX_RANGE: u32 = 256;

/// `10.0.0.1`, `10.0.0.1-10` (last octet), `2001:db8::1-ff` (last group).
fn expand_range(s: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok(vec![a]);
    }
    let bad = || format!("`{s}` is not an address or range (e.g. 192.0.2.1-10)");
    let (a, end) = s.rsplit_once('-').ok_or_else(bad)?;
    let first: IpAddr = a.parse().map_err(|_| bad())?;
    match first {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let e: u8 = end.parse().map_err(|_| bad())?;
            if e < o[3] {
                return Err(format!("range `{s}` ends before it starts"));
            }
            Ok((o[3]..=e).map(|x| IpAddr::from([o[0], o[1], o[2], x])).collect())
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            let e = u16::from_str_radix(end, 16).map_err(|_| bad())?;
            if e < seg[7] {
                return Err(format!("range `{s}` ends before it starts"));
            }
            if u32::from(e - seg[7]) >= MAX_RANGE {
                return Err(format!("range `{s}` has more than {MAX_RANGE} addresses"));
            }
            Ok((seg[7]..=e)
                .map(|x| {
                    let mut s2 = seg;
                    s2[7] = x;
                    IpAddr::from(s2)
                })
                .collect())
        }
    }
}
