//! TOML text → [`Config`], collecting every error with its location.
//!
//! The document is parsed into toml's span-carrying tree. Tables are walked by
//! hand (so every unknown key, missing field and bad value is reported, not
//! just the first), and each leaf value is decoded with serde from its own
//! span, so its error points at the exact line. Semantic checks then run on
//! the typed model; an error's location is found when the error is made, by
//! walking the tree along its field path ([`Cx::locate`]).

use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::*;

/// Parses and validates config text. `file` names it in error messages.
pub fn parse(src: &str, file: &str) -> Result<Config, Vec<ConfigError>> {
    parse_with_spans(src, file).map(|(c, _)| c)
}

/// Where each real server's table starts in the text (`services[i].reals[j]`):
/// the `[[services.reals]]` header or the `{` of an inline table. Lets small
/// edits be spliced into the operator's file without parsing it again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spans {
    /// Byte offsets, per service, per real.
    pub reals: Vec<Vec<u32>>,
}

impl Spans {
    /// Moves every offset after `at` by `delta` bytes (after a splice at `at`).
    pub fn shift(&mut self, at: usize, delta: isize) {
        for v in &mut self.reals {
            for o in v.iter_mut() {
                if *o as usize > at {
                    *o = (*o as isize + delta) as u32;
                }
            }
        }
    }
}

/// [`parse`], also returning the [`Spans`] of the real servers.
pub fn parse_with_spans(src: &str, file: &str) -> Result<(Config, Spans), Vec<ConfigError>> {
    let (root, syntax) = DeTable::parse_recoverable(src);
    let root_span = root.span();
    let root = root.into_inner();
    let mut cx = Cx::new(src, file, &root);
    if !syntax.is_empty() {
        for e in syntax {
            let span = e.span().unwrap_or(0..0);
            cx.error_at(span, "", e.message().trim().to_string());
        }
        return Err(cx.errors);
    }
    let cfg = read_config(&mut cx, &root, root_span);
    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    validate::validate(&cfg, &mut cx);
    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    // Where each `[[services.reals]]` starts (every item was read, or the
    // config would have errors).
    let items = |t: &DeTable<'_>, key: &str| match t.get(key).map(|v| v.get_ref()) {
        Some(DeValue::Array(a)) => a.iter().map(|v| v.span().start as u32).collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let reals = match root.get("services").map(|v| v.get_ref()) {
        Some(DeValue::Array(services)) => services
            .iter()
            .map(|s| match s.get_ref() {
                DeValue::Table(t) => items(t, "reals"),
                _ => Vec::new(),
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok((cfg, Spans { reals }))
}

/// Reads and parses a config file.
pub fn parse_file(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(src) => parse(&src, &name),
        Err(e) => Err(vec![ConfigError {
            file: name,
            line: 0,
            col: 0,
            path: String::new(),
            message: format!("cannot read: {e}"),
        }]),
    }
}

/// Parse context: the source, the document (to locate a field path when an
/// error names one) and the collected errors.
///
/// Locations are looked up only when an error needs one: recording every
/// field's span under its path string cost 160,000 strings and map entries
/// for a 10,000-service file, more than a third of reading it.
pub(crate) struct Cx<'s> {
    src: &'s str,
    file: String,
    pub(crate) errors: Vec<ConfigError>,
    root: &'s DeTable<'s>,
}

impl<'s> Cx<'s> {
    fn new(src: &'s str, file: &str, root: &'s DeTable<'s>) -> Self {
        Cx { src, file: file.to_string(), errors: Vec::new(), root }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let before = &self.src[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        (line, col)
    }

    fn error_at(&mut self, span: Range<usize>, path: &str, message: String) {
        let (line, col) = self.line_col(span.start);
        self.errors.push(ConfigError { file: self.file.clone(), line, col, path: path.to_string(), message });
    }

    /// Reports an error at the recorded location of `path` (or of its closest
    /// recorded parent when the field itself was not written).
    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        let span = self.locate(path);
        self.error_at(span, path, message.into());
    }

    /// The text of `path` (`services[1].reals[0].weight`): a key's from the
    /// key to the end of its value, a table's or an array item's own; the
    /// closest parent's when the field itself was not written.
    fn locate(&self, path: &str) -> Range<usize> {
        let mut best = 0..0;
        let mut table = Some(self.root);
        for seg in path.split('.') {
            let (key, mut index) = seg.split_once('[').map_or((seg, ""), |(k, i)| (k, i));
            let Some((k, v)) = table.and_then(|t| t.get_key_value(key)) else { break };
            best = match v.get_ref() {
                DeValue::Table(_) => v.span(),
                _ => k.span().start..v.span().end,
            };
            let mut cur = v;
            // `[i]` steps into arrays of tables only (`[[services]]`).
            while let Some((i, rest)) = index.split_once(']') {
                index = rest.strip_prefix('[').unwrap_or(rest);
                let item = match (cur.get_ref(), i.parse::<usize>()) {
                    (DeValue::Array(a), Ok(i)) => a.get(i).filter(|v| matches!(v.get_ref(), DeValue::Table(_))),
                    _ => None,
                };
                let Some(item) = item else { return best };
                best = item.span();
                cur = item;
            }
            table = match cur.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        best
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

/// A table being read: remembers which of its keys were consumed so the
/// rest can be reported as unknown.
pub(crate) struct Tbl<'t, 'i> {
    path: String,
    map: &'t DeTable<'i>,
    used: Vec<&'t str>,
}

impl<'t, 'i> Tbl<'t, 'i> {
    fn new(cx: &mut Cx<'_>, path: &str, v: &'t Spanned<DeValue<'i>>) -> Option<Self> {
        match v.get_ref() {
            DeValue::Table(map) => Some(Tbl { path: path.to_string(), map, used: Vec::new() }),
            other => {
                cx.error_at(v.span(), path, format!("expected a table, found {}", other.type_str()));
                None
            }
        }
    }

    fn root(path: &str, map: &'t DeTable<'i>) -> Self {
        Tbl { path: path.to_string(), map, used: Vec::new() }
    }

    fn raw(&mut self, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        let (k, v) = self.map.get_key_value(key)?;
        self.used.push(k.get_ref());
        Some(v)
    }

    /// Decodes `key` if present.
    pub(crate) fn opt<T: DeserializeOwned>(&mut self, cx: &mut Cx<'_>, key: &str) -> Option<T> {
        let v = self.raw(key)?;
        decode(cx, &self.path, key, v)
    }

    /// Decodes `key`, or `default` when absent (or invalid: the error is recorded).
    pub(crate) fn or<T: DeserializeOwned>(&mut self, cx: &mut Cx<'_>, key: &str, default: T) -> T {
        self.opt(cx, key).unwrap_or(default)
    }

    /// Decodes a required `key`.
    pub(crate) fn req<T: DeserializeOwned>(&mut self, cx: &mut Cx<'_>, key: &str) -> Option<T> {
        if !self.map.contains_key(key) {
            cx.error(&self.path, format!("missing required field `{key}`"));
            return None;
        }
        self.opt(cx, key)
    }

    /// A nested table, read by `f`; `None` when absent.
    pub(crate) fn sub<T>(
        &mut self,
        cx: &mut Cx<'_>,
        key: &str,
        f: impl FnOnce(&mut Cx<'_>, Tbl<'t, 'i>) -> T,
    ) -> Option<T> {
        let v = self.raw(key)?;
        let t = Tbl::new(cx, &join(&self.path, key), v)?;
        Some(f(cx, t))
    }

    /// An array of tables, each read by `f`.
    pub(crate) fn list<T>(
        &mut self,
        cx: &mut Cx<'_>,
        key: &str,
        mut f: impl FnMut(&mut Cx<'_>, Tbl<'t, 'i>) -> Option<T>,
    ) -> Vec<T> {
        let Some(v) = self.raw(key) else { return Vec::new() };
        let path = join(&self.path, key);
        let DeValue::Array(items) = v.get_ref() else {
            cx.error(&path, format!("expected an array of tables ([[{key}]]), found {}", v.get_ref().type_str()));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ipath = format!("{path}[{i}]");
            if let Some(t) = Tbl::new(cx, &ipath, item)
                && let Some(x) = f(cx, t)
            {
                out.push(x);
            }
        }
        out
    }

    /// Reports keys nobody asked for.
    pub(crate) fn finish(self, cx: &mut Cx<'_>) {
        for (k, v) in self.map.iter() {
            let name: &str = k.get_ref();
            if !self.used.contains(&name) {
                let path = join(&self.path, name);
                cx.error_at(k.span().start..v.span().end, &path, format!("unknown field `{name}`{}", hint(name)));
            }
        }
    }
}

/// Names that later lvsbox features use: say so instead of just "unknown".
fn hint(name: &str) -> &'static str {
    match name {
        "vrrp" | "vrrp_instance" | "checks" | "health_check" => " (not supported by this lvsbox version)",
        _ => "",
    }
}

/// Decodes the value of `parent.key`; the path is spelled out only for an error.
fn decode<T: DeserializeOwned>(cx: &mut Cx<'_>, parent: &str, key: &str, v: &Spanned<DeValue<'_>>) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(v.clone())) {
        Ok(x) => Some(x),
        Err(e) => {
            let span = e.span().unwrap_or_else(|| v.span());
            let msg = e.message().trim().to_string();
            cx.error_at(span, &join(parent, key), msg);
            None
        }
    }
}

fn read_config(cx: &mut Cx<'_>, root: &DeTable<'_>, _span: Range<usize>) -> Config {
    let mut t = Tbl::root("", root);
    let d = Config::default();
    let system = t.sub(cx, "system", read_system).unwrap_or(d.system);
    let ipvs = t.sub(cx, "ipvs", read_ipvs).unwrap_or(d.ipvs);
    let interfaces = t.list(cx, "interfaces", read_interface);
    let routes = t.list(cx, "routes", read_route);
    let vips = t.list(cx, "vips", read_vip);
    let services = t.list(cx, "services", read_service);
    let vrrp = t.sub(cx, "vrrp", crate::vrrp::config::read).unwrap_or_default(); // VRRP (lbd/src/vrrp/config.rs)
    t.finish(cx);
    Config { system, ipvs, interfaces, routes, vips, services, vrrp }
}

fn read_system(cx: &mut Cx<'_>, mut t: Tbl<'_, '_>) -> System {
    let d = System::default();
    let s = System {
        hostname: t.or(cx, "hostname", d.hostname),
        consoles: t.or(cx, "consoles", d.consoles),
        console_size: t.or(cx, "console_size", d.console_size),
        console_password: t.opt(cx, "console_password"),
        log_level: t.or(cx, "log_level", d.log_level),
        ip_forward: t.or(cx, "ip_forward", d.ip_forward),
    };
    t.finish(cx);
    s
}

fn read_ipvs(cx: &mut Cx<'_>, mut t: Tbl<'_, '_>) -> Ipvs {
    let d = Ipvs::default();
    let timeouts = t
        .sub(cx, "timeouts", |cx, mut t| {
            let v = Timeouts { tcp: t.opt(cx, "tcp"), tcpfin: t.opt(cx, "tcpfin"), udp: t.opt(cx, "udp") };
            t.finish(cx);
            v
        })
        .unwrap_or_default();
    let sysctl = t
        .sub(cx, "sysctl", |cx, mut t| {
            let v = IpvsSysctl {
                expire_nodest_conn: t.opt(cx, "expire_nodest_conn"),
                expire_quiescent_template: t.opt(cx, "expire_quiescent_template"),
                conn_reuse_mode: t.opt(cx, "conn_reuse_mode"),
                sloppy_tcp: t.opt(cx, "sloppy_tcp"),
                sloppy_sctp: t.opt(cx, "sloppy_sctp"),
                schedule_icmp: t.opt(cx, "schedule_icmp"),
                ignore_tunneled: t.opt(cx, "ignore_tunneled"),
                conntrack: t.opt(cx, "conntrack"),
                snat_reroute: t.opt(cx, "snat_reroute"),
                nat_icmp_send: t.opt(cx, "nat_icmp_send"),
                pmtu_disc: t.opt(cx, "pmtu_disc"),
            };
            t.finish(cx);
            v
        })
        .unwrap_or_default();
    let v = Ipvs {
        conn_tab_bits: t.opt(cx, "conn_tab_bits"),
        drain_timeout: t.or(cx, "drain_timeout", d.drain_timeout),
        timeouts,
        sysctl,
    };
    t.finish(cx);
    v
}

fn read_interface(cx: &mut Cx<'_>, mut t: Tbl<'_, '_>) -> Option<Interface> {
    let name = t.req(cx, "name");
    let vlan = t.sub(cx, "vlan", |cx, mut t| {
        let parent = t.req(cx, "parent");
        let id = t.req(cx, "id");
        t.finish(cx);
        Some(Vlan { parent: parent?, id: id? })
    });
    let i = Interface {
        name: name.unwrap_or_default(),
        mac: t.opt(cx, "mac"),
        mtu: t.opt(cx, "mtu"),
        addresses: t.or(cx, "addresses", Vec::new()),
        vlan: vlan.flatten(),
    };
    t.finish(cx);
    Some(i)
}

fn read_route(cx: &mut Cx<'_>, mut t: Tbl<'_, '_>) -> Option<Route> {
    let destination = t.req(cx, "destination");
    let r = Route {
        destination: destination.unwrap_or(Prefix { addr: std::net::Ipv4Addr::UNSPECIFIED.into(), len: 0 }),
        gateway: t.opt(cx, "gateway"),
        interface: t.opt(cx, "interface"),
        metric: t.opt(cx, "metric"),
    };
    t.finish(cx);
    Some(r)
}

fn read_vip(cx: &mut Cx<'_>, mut t: Tbl<'_, '_>) -> Option<Vip> {
    let address = t.req(cx, "address");
    let interface = t.req(cx, "interface");
    let label = t.opt(cx, "label");
    t.finish(cx);
    Some(Vip { address: address?, interface: interface?, label })
}

fn read_service(cx: &mut Cx<'_>, mut t: Tbl<'_, '_>) -> Option<Service> {
    let d = Service::default();
    let persistence = t.sub(cx, "persistence", |cx, mut t| {
        let p = Persistence {
            timeout: t.or(cx, "timeout", Persistence::default().timeout),
            netmask: t.opt(cx, "netmask"),
            engine: t.opt(cx, "engine"),
        };
        t.finish(cx);
        p
    });
    let s = Service {
        name: t.opt(cx, "name"),
        address: t.opt(cx, "address"),
        protocol: t.or(cx, "protocol", d.protocol),
        fwmark: t.opt(cx, "fwmark"),
        family: t.opt(cx, "family"),
        scheduler: t.or(cx, "scheduler", d.scheduler),
        scheduler_flags: t.or(cx, "scheduler_flags", Vec::new()),
        one_packet: t.or(cx, "one_packet", false),
        persistence,
        forwarding: t.or(cx, "forwarding", d.forwarding),
        quorum: t.opt(cx, "quorum"),
        hysteresis: t.opt(cx, "hysteresis"),
        sorry_server: t.sub(cx, "sorry_server", crate::health::config::read_sorry).flatten(),
        inhibit_on_failure: t.or(cx, "inhibit_on_failure", false),
        check: t.sub(cx, "check", crate::health::config::read_check).map(Box::new), // health checks (lbd/src/health/config.rs)
        reals: t.list(cx, "reals", read_real),
        // The fwmark feature reads its own keys (lbd/src/fwmark/config.rs).
        fwmark_rules: t.list(cx, "fwmark_rules", crate::fwmark::config::read_rule),
        ftp: t.sub(cx, "ftp", crate::fwmark::config::read_ftp).flatten(),
    };
    t.finish(cx);
    Some(s)
}

fn read_real(cx: &mut Cx<'_>, mut t: Tbl<'_, '_>) -> Option<Real> {
    let address = t.req(cx, "address");
    let tunnel = t.sub(cx, "tunnel", |cx, mut t| {
        let v = Tunnel {
            kind: t.or(cx, "type", TunnelType::Ipip),
            port: t.opt(cx, "port"),
            checksum: t.opt(cx, "checksum"),
        };
        t.finish(cx);
        v
    });
    let r = Real {
        address: address.unwrap_or(Endpoint { addr: std::net::Ipv4Addr::UNSPECIFIED.into(), port: None }),
        weight: t.or(cx, "weight", 1),
        forwarding: t.opt(cx, "forwarding"),
        upper_threshold: t.or(cx, "upper_threshold", 0),
        lower_threshold: t.or(cx, "lower_threshold", 0),
        tunnel,
        inhibit_on_failure: t.opt(cx, "inhibit_on_failure"),
        check: t.sub(cx, "check", crate::health::config::read_check).map(Box::new),
    };
    t.finish(cx);
    Some(r)
}
