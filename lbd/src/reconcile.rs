//! Desired state vs. what the kernel reports → the minimal list of IPVS
//! operations. Pure: no IO, time passed in.
//!
//! Rules:
//! - Nothing is flushed, ever. What is already in the kernel and matches the
//!   config is adopted as is: an unchanged config yields zero operations.
//! - An edit is a SET (scheduler, persistence, flags, weight, forwarding,
//!   thresholds, tunnel options), never a delete + add.
//! - Services the config no longer has are deleted. Real servers the config
//!   no longer has are drained (weight 0) when `drain_timeout` > 0 and deleted
//!   once they have no connections left or the timeout has passed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::config::{self, Config, Family, Forwarding, TunnelChecksum, TunnelType};
use crate::ipvs::{self, Dest, DestEntry, Fwd, Service, ServiceEntry, ServiceKey, TunType, svc_flags, tun_flags};

pub use crate::ipvs::Op;

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = |a: &IpAddr, p: u16| match a {
            IpAddr::V4(a) => format!("{a}:{p}"),
            IpAddr::V6(a) => format!("[{a}]:{p}"),
        };
        match self {
            Op::NewService(s) => write!(f, "add service {} {}", s.key, s.sched),
            Op::SetService(s) => write!(f, "edit service {} {}", s.key, s.sched),
            Op::DelService(k) => write!(f, "delete service {k}"),
            Op::NewDest(k, x) => write!(f, "add real {} to {k} weight {}", d(&x.addr, x.port), x.weight),
            Op::SetDest(k, x) => write!(f, "edit real {} of {k} weight {}", d(&x.addr, x.port), x.weight),
            Op::DelDest(k, a, p) => write!(f, "delete real {} from {k}", d(a, *p)),
        }
    }
}

/// A service with its real servers, as the kernel should have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredService {
    /// The service.
    pub svc: Service,
    /// Its real servers.
    pub dests: Vec<Dest>,
    /// Real servers to delete at once if the kernel has them, without
    /// draining (failed health checks, disabled by the operator, a sorry
    /// server no longer needed): their connections have nowhere to go.
    pub gone: Vec<(IpAddr, u16)>,
}

/// A real server as planning needs it: its definition and connection counts
/// (for draining), without the traffic counters a dump also carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewDest {
    /// Definition.
    pub dest: Dest,
    /// Active connections.
    pub active_conns: u32,
    /// Inactive connections.
    pub inact_conns: u32,
}

/// The kernel's table as lbd keeps it between dumps (no traffic counters:
/// about half the memory of a dump at 10,000 services).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actual {
    /// Each service with its dests.
    pub services: Vec<(Service, Vec<ViewDest>)>,
}

/// A dump as the kernel gives it, with counters (what the ipvsadm views print).
pub type Table = Vec<(ServiceEntry, Vec<DestEntry>)>;

impl Actual {
    /// The planning view of a dump.
    pub fn from_table(t: Table) -> Actual {
        Actual { services: t.into_iter().map(|(s, d)| (s.svc, d.into_iter().map(ViewDest::from).collect())).collect() }
    }
    /// A dump-shaped copy (zero counters), for a simulated kernel.
    pub fn to_table(&self) -> Table {
        self.services
            .iter()
            .map(|(s, d)| {
                (
                    ServiceEntry { svc: s.clone(), stats: ipvs::Stats::default() },
                    d.iter()
                        .map(|v| DestEntry {
                            dest: v.dest.clone(),
                            active_conns: v.active_conns,
                            inact_conns: v.inact_conns,
                            persist_conns: 0,
                            stats: ipvs::Stats::default(),
                        })
                        .collect(),
                )
            })
            .collect()
    }
}

impl From<DestEntry> for ViewDest {
    fn from(e: DestEntry) -> Self {
        ViewDest { dest: e.dest, active_conns: e.active_conns, inact_conns: e.inact_conns }
    }
}

/// The kernel form of a config's services.
pub fn desired(cfg: &Config) -> Vec<DesiredService> {
    cfg.services.iter().map(desired_service).collect()
}

/// What lbd keeps: each service behind its own `Arc`, so replacing one
/// service (a weight edit) copies pointers, not 10,000 services.
pub type Desired = std::sync::Arc<Vec<std::sync::Arc<DesiredService>>>;

/// [`desired`] in the shared form.
pub fn desired_shared(cfg: &Config) -> Desired {
    std::sync::Arc::new(cfg.services.iter().map(|s| std::sync::Arc::new(desired_service(s))).collect())
}

fn service_key(s: &config::Service) -> ServiceKey {
    match (s.address, s.fwmark) {
        (Some(a), _) => ServiceKey::Addr { protocol: s.protocol.number(), addr: a.addr, port: a.port.unwrap_or(0) },
        (None, mark) => ServiceKey::Fwmark { af: s.family().af(), mark: mark.unwrap_or(0) },
    }
}

/// The kernel form of one configured service.
pub fn desired_service(s: &config::Service) -> DesiredService {
    // The `ftp` shorthand programs the service it expands to.
    let s = &*crate::fwmark::config::expand(s);
    let key = service_key(s);
    let v4 = s.family() == Family::Ipv4;
    let mut flags = 0;
    if s.persistence.is_some() {
        flags |= svc_flags::PERSISTENT;
    }
    if s.one_packet {
        flags |= svc_flags::ONEPACKET;
    }
    for f in &s.scheduler_flags {
        flags |= f.bit();
    }
    let per = s.persistence.as_ref();
    let netmask = match (v4, per.and_then(|p| p.netmask)) {
        (true, Some(m)) => u32::from(m.v4_mask()),
        (true, None) => u32::MAX,
        (false, Some(m)) => u32::from(m.0),
        (false, None) => 128,
    };
    let svc = Service {
        key,
        sched: s.scheduler.as_str().to_string(),
        flags,
        timeout: per.map(|p| p.timeout).unwrap_or(0),
        netmask,
        pe_name: per.and_then(|p| p.engine).map(|e| e.as_str().to_string()),
    };
    let svc_port = s.address.and_then(|a| a.port).unwrap_or(0);
    let dests = s
        .reals
        .iter()
        .map(|r| {
            let fwd = r.forwarding.unwrap_or(s.forwarding);
            let (tun_type, tun_port, tflags) = match (fwd, &r.tunnel) {
                (Forwarding::Tun, Some(t)) => (
                    match t.kind {
                        TunnelType::Ipip => TunType::Ipip,
                        TunnelType::Gue => TunType::Gue,
                        TunnelType::Gre => TunType::Gre,
                    },
                    t.port.unwrap_or(0),
                    match t.checksum {
                        None | Some(TunnelChecksum::None) => tun_flags::NOCSUM,
                        Some(TunnelChecksum::Csum) => tun_flags::CSUM,
                        Some(TunnelChecksum::Remcsum) => tun_flags::REMCSUM,
                    },
                ),
                _ => (TunType::Ipip, 0, 0),
            };
            Dest {
                addr: r.address.addr,
                port: r.address.port.unwrap_or(svc_port),
                fwd: match fwd {
                    Forwarding::Dr => Fwd::Route,
                    Forwarding::Nat => Fwd::Masq,
                    Forwarding::Tun => Fwd::Tunnel,
                },
                weight: r.weight,
                u_thresh: r.upper_threshold,
                l_thresh: r.lower_threshold,
                tun_type,
                tun_port,
                tun_flags: tflags,
            }
        })
        .collect();
    DesiredService { svc, dests, gone: Vec::new() }
}

/// Whether two service definitions are the same as far as lbd manages them
/// (the kernel adds HASHED; a non-persistent service's timeout is irrelevant).
pub fn same_service(a: &Service, b: &Service) -> bool {
    let persistent = a.flags & svc_flags::PERSISTENT != 0;
    a.key == b.key
        && a.sched == b.sched
        && (a.flags & svc_flags::MANAGED) == (b.flags & svc_flags::MANAGED)
        && (!persistent || (a.timeout == b.timeout && a.netmask == b.netmask))
        && a.pe_name.as_deref().unwrap_or("") == b.pe_name.as_deref().unwrap_or("")
}

/// Whether two dests are configured the same (tunnel fields only matter for TUN).
pub fn same_dest(a: &Dest, b: &Dest) -> bool {
    let tun_same = a.fwd != Fwd::Tunnel
        || (a.tun_type == b.tun_type
            && (a.tun_type != TunType::Gue || a.tun_port == b.tun_port)
            && (a.tun_type == TunType::Ipip || a.tun_flags == b.tun_flags));
    a.addr == b.addr
        && a.port == b.port
        && a.fwd == b.fwd
        && a.weight == b.weight
        && a.u_thresh == b.u_thresh
        && a.l_thresh == b.l_thresh
        && tun_same
}

/// Real servers being drained: when each started draining (ms on the
/// caller's monotonic clock).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drains {
    since: HashMap<(ServiceKey, IpAddr, u16), u64>,
}

impl Drains {
    /// Number of real servers draining.
    pub fn len(&self) -> usize {
        self.since.len()
    }
    /// Whether nothing is draining.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }
    /// Removes and returns the entries of the services in `keys` (to plan
    /// those services alone without forgetting the others' drains).
    pub fn take_scope(&mut self, keys: &std::collections::HashSet<ServiceKey>) -> Drains {
        let (mine, rest): (HashMap<_, _>, HashMap<_, _>) =
            std::mem::take(&mut self.since).into_iter().partition(|((k, _, _), _)| keys.contains(k));
        self.since = rest;
        Drains { since: mine }
    }
    /// Puts back entries taken with [`Drains::take_scope`].
    pub fn absorb(&mut self, other: Drains) {
        self.since.extend(other.since);
    }
    /// Draining reals with the ms they have been draining.
    pub fn list(&self, now_ms: u64) -> Vec<(ServiceKey, IpAddr, u16, u64)> {
        let mut v: Vec<_> = self.since.iter().map(|((k, a, p), t)| (*k, *a, *p, now_ms.saturating_sub(*t))).collect();
        v.sort();
        v
    }
}

/// The outcome of one reconcile pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Operations in the order they must run.
    pub ops: Vec<Op>,
}

/// Computes the operations that make `actual` match `desired`.
///
/// `drain` is how long a removed real keeps weight 0 before deletion
/// (zero = delete at once); `drains` carries that state between passes and
/// `now_ms` is a monotonic clock in milliseconds.
pub fn plan<D: std::borrow::Borrow<DesiredService>>(
    desired: &[D],
    actual: &Actual,
    drain: Duration,
    drains: &mut Drains,
    now_ms: u64,
) -> Plan {
    let mut ops = Vec::new();
    let mut dest_ops = Vec::new();
    let mut del_dest_ops = Vec::new();
    let mut del_svc_ops = Vec::new();

    // Where each kernel service is, and which of them the config has (a
    // flag per service rather than a second map: a verify pass plans over
    // the whole table every few seconds, 10,000 services on a big box).
    let have: HashMap<ServiceKey, usize> = actual.services.iter().enumerate().map(|(i, e)| (e.0.key, i)).collect();
    let mut wanted_svc = vec![false; actual.services.len()];
    let mut still_draining = HashMap::new();

    for d in desired {
        let d: &DesiredService = d.borrow();
        let key = d.svc.key;
        match have.get(&key) {
            None => {
                ops.push(Op::NewService(d.svc.clone()));
                for x in &d.dests {
                    dest_ops.push(Op::NewDest(key, x.clone()));
                }
            }
            Some(&i) => {
                wanted_svc[i] = true;
                let (entry, kdests) = &actual.services[i];
                if !same_service(&d.svc, entry) {
                    ops.push(Op::SetService(d.svc.clone()));
                }
                let by_id = DestIndex::new(kdests.iter().map(|e| (e.dest.addr, e.dest.port)));
                for x in &d.dests {
                    match by_id.find(kdests, |e| (e.dest.addr, e.dest.port), (x.addr, x.port)) {
                        None => dest_ops.push(Op::NewDest(key, x.clone())),
                        Some(e) if !same_dest(x, &e.dest) => dest_ops.push(Op::SetDest(key, x.clone())),
                        Some(_) => {}
                    }
                }
                let wanted = DestIndex::new(d.dests.iter().map(|x| (x.addr, x.port)));
                for e in kdests {
                    let id = (e.dest.addr, e.dest.port);
                    if wanted.find(&d.dests, |x| (x.addr, x.port), id).is_some() {
                        continue;
                    }
                    let id = (key, e.dest.addr, e.dest.port);
                    if drain.is_zero() || d.gone.contains(&(e.dest.addr, e.dest.port)) {
                        del_dest_ops.push(Op::DelDest(key, e.dest.addr, e.dest.port));
                        continue;
                    }
                    let since = *drains.since.get(&id).unwrap_or(&now_ms);
                    let idle = e.active_conns == 0 && e.inact_conns == 0;
                    let expired = now_ms.saturating_sub(since) >= drain.as_millis() as u64;
                    if idle || expired {
                        del_dest_ops.push(Op::DelDest(key, e.dest.addr, e.dest.port));
                    } else {
                        if e.dest.weight != 0 {
                            dest_ops.push(Op::SetDest(key, Dest { weight: 0, ..e.dest.clone() }));
                        }
                        still_draining.insert(id, since);
                    }
                }
            }
        }
    }
    for ((entry, _), wanted) in actual.services.iter().zip(wanted_svc) {
        if !wanted {
            del_svc_ops.push(Op::DelService(entry.key));
        }
    }
    drains.since = still_draining;
    ops.extend(dest_ops);
    ops.extend(del_dest_ops);
    ops.extend(del_svc_ops);
    Plan { ops }
}

/// Finds a real server of one service by (address, port): a linear scan for
/// the few a service usually has (no allocation per service and pass), a
/// map beyond that.
struct DestIndex(Option<HashMap<(IpAddr, u16), usize>>);

impl DestIndex {
    const LINEAR: usize = 16;

    fn new(ids: impl ExactSizeIterator<Item = (IpAddr, u16)>) -> Self {
        if ids.len() <= Self::LINEAR {
            return DestIndex(None);
        }
        let mut m = HashMap::with_capacity(ids.len());
        for (i, id) in ids.enumerate() {
            // The first one wins, as a scan would find it.
            m.entry(id).or_insert(i);
        }
        DestIndex(Some(m))
    }

    fn find<'a, T>(&self, items: &'a [T], id_of: impl Fn(&T) -> (IpAddr, u16), id: (IpAddr, u16)) -> Option<&'a T> {
        match &self.0 {
            Some(m) => m.get(&id).map(|&i| &items[i]),
            None => items.iter().find(|e| id_of(e) == id),
        }
    }
}

/// Applies `ops` to an in-memory table the way the kernel would (used by
/// tests and by the simulated kernel): returns an error string per failed op.
pub fn simulate(actual: &mut Actual, ops: &[Op]) -> Vec<Result<(), String>> {
    ops.iter().map(|op| simulate_one(actual, op)).collect()
}

fn simulate_one(actual: &mut Actual, op: &Op) -> Result<(), String> {
    let find = |a: &Actual, k: &ServiceKey| a.services.iter().position(|e| e.0.key == *k);
    match op {
        Op::NewService(s) => {
            if find(actual, &s.key).is_some() {
                return Err("service exists".into());
            }
            let mut s = s.clone();
            s.flags |= svc_flags::HASHED;
            actual.services.push((s, Vec::new()));
        }
        Op::SetService(s) => {
            let i = find(actual, &s.key).ok_or("no such service")?;
            let mut s = s.clone();
            s.flags |= svc_flags::HASHED;
            actual.services[i].0 = s;
        }
        Op::DelService(k) => {
            let i = find(actual, k).ok_or("no such service")?;
            actual.services.remove(i);
        }
        Op::NewDest(k, d) => {
            let i = find(actual, k).ok_or("no such service")?;
            let ds = &mut actual.services[i].1;
            if ds.iter().any(|e| e.dest.addr == d.addr && e.dest.port == d.port) {
                return Err("destination exists".into());
            }
            ds.push(ViewDest { dest: d.clone(), active_conns: 0, inact_conns: 0 });
        }
        Op::SetDest(k, d) => {
            let i = find(actual, k).ok_or("no such service")?;
            let e = actual.services[i]
                .1
                .iter_mut()
                .find(|e| e.dest.addr == d.addr && e.dest.port == d.port)
                .ok_or("no such destination")?;
            e.dest = d.clone();
        }
        Op::DelDest(k, a, p) => {
            let i = find(actual, k).ok_or("no such service")?;
            let ds = &mut actual.services[i].1;
            let j = ds.iter().position(|e| e.dest.addr == *a && e.dest.port == *p).ok_or("no such destination")?;
            ds.remove(j);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn cfg(src: &str) -> Config {
        parse(src, "t.toml").unwrap_or_else(|e| panic!("{e:?}"))
    }

    const BASE: &str = r#"
[[services]]
address = "192.0.2.1:80"
scheduler = "rr"
[[services.reals]]
address = "10.0.0.1"
[[services.reals]]
address = "10.0.0.2"

[[services]]
fwmark = 300
scheduler = "wrr"
persistence = { timeout = 900, netmask = 24 }
[[services.reals]]
address = "10.0.0.1:21"
"#;

    fn converge(desired: &[DesiredService], actual: &mut Actual) -> Vec<Op> {
        let mut drains = Drains::default();
        let p = plan(desired, actual, Duration::ZERO, &mut drains, 0);
        for r in simulate(actual, &p.ops) {
            r.unwrap();
        }
        p.ops
    }

    #[test]
    fn from_empty_adds_everything_services_first() {
        let d = desired(&cfg(BASE));
        let mut a = Actual::default();
        let ops = converge(&d, &mut a);
        assert_eq!(ops.len(), 5);
        assert!(matches!(ops[0], Op::NewService(_)) && matches!(ops[1], Op::NewService(_)));
        assert!(ops[2..].iter().all(|o| matches!(o, Op::NewDest(..))));
        // The fwmark service carries persistence with a /24 granularity.
        let Op::NewService(s) = &ops[1] else { unreachable!() };
        assert_eq!((s.flags, s.timeout, s.netmask), (svc_flags::PERSISTENT, 900, 0xffff_ff00));
    }

    #[test]
    fn unchanged_config_makes_zero_changes() {
        let d = desired(&cfg(BASE));
        let mut a = Actual::default();
        converge(&d, &mut a);
        let again = plan(&d, &a, Duration::from_secs(60), &mut Drains::default(), 10);
        assert_eq!(again.ops, vec![]);
    }

    #[test]
    fn weight_change_is_one_set() {
        let mut a = Actual::default();
        converge(&desired(&cfg(BASE)), &mut a);
        let changed = BASE.replacen("address = \"10.0.0.2\"", "address = \"10.0.0.2\"\nweight = 5", 1);
        let ops = converge(&desired(&cfg(&changed)), &mut a);
        assert_eq!(ops.len(), 1, "{ops:?}");
        assert!(matches!(&ops[0], Op::SetDest(_, d) if d.weight == 5));
    }

    #[test]
    fn scheduler_change_is_one_set_service() {
        let mut a = Actual::default();
        converge(&desired(&cfg(BASE)), &mut a);
        let ops = converge(&desired(&cfg(&BASE.replacen("\"rr\"", "\"wlc\"", 1))), &mut a);
        assert!(matches!(&ops[..], [Op::SetService(s)] if s.sched == "wlc"), "{ops:?}");
    }

    #[test]
    fn flushed_table_is_restored() {
        let d = desired(&cfg(BASE));
        let mut a = Actual::default();
        converge(&d, &mut a);
        let before = a.clone();
        a.services.clear(); // someone ran `ipvsadm -C`
        converge(&d, &mut a);
        assert_eq!(a, before);
    }

    #[test]
    fn foreign_service_is_removed_and_removed_real_drains() {
        let d = desired(&cfg(BASE));
        let mut a = Actual::default();
        converge(&d, &mut a);
        // Out-of-band service.
        let extra = desired(&cfg("[[services]]\naddress = \"192.0.2.9:53\"\nprotocol = \"udp\"\n"));
        simulate(&mut a, &[Op::NewService(extra[0].svc.clone())]);
        // Remove 10.0.0.2 from the config; it still has a connection.
        let fewer = BASE.replacen("[[services.reals]]\naddress = \"10.0.0.2\"\n", "", 1);
        let d2 = desired(&cfg(&fewer));
        a.services[0].1[1].active_conns = 3;
        let mut drains = Drains::default();
        let p = plan(&d2, &a, Duration::from_secs(30), &mut drains, 1_000);
        assert_eq!(p.ops.len(), 2, "{:?}", p.ops);
        assert!(matches!(&p.ops[0], Op::SetDest(_, x) if x.weight == 0 && x.addr.to_string() == "10.0.0.2"));
        assert!(matches!(&p.ops[1], Op::DelService(ServiceKey::Addr { port: 53, .. })));
        simulate(&mut a, &p.ops);
        assert_eq!(drains.len(), 1);
        // Still busy 10 s later: nothing to do.
        assert_eq!(plan(&d2, &a, Duration::from_secs(30), &mut drains, 11_000).ops, vec![]);
        // Idle now: deleted.
        a.services[0].1[1].active_conns = 0;
        let p = plan(&d2, &a, Duration::from_secs(30), &mut drains, 12_000);
        assert!(matches!(&p.ops[..], [Op::DelDest(_, ip, 80)] if ip.to_string() == "10.0.0.2"), "{:?}", p.ops);
        assert!(drains.is_empty());
    }

    #[test]
    fn drain_times_out() {
        let d = desired(&cfg(BASE));
        let mut a = Actual::default();
        converge(&d, &mut a);
        let fewer = BASE.replacen("[[services.reals]]\naddress = \"10.0.0.2\"\n", "", 1);
        let d2 = desired(&cfg(&fewer));
        a.services[0].1[1].inact_conns = 1;
        let mut drains = Drains::default();
        let p = plan(&d2, &a, Duration::from_secs(5), &mut drains, 0);
        simulate(&mut a, &p.ops);
        assert_eq!(plan(&d2, &a, Duration::from_secs(5), &mut drains, 4_999).ops, vec![]);
        let p = plan(&d2, &a, Duration::from_secs(5), &mut drains, 5_000);
        assert!(matches!(&p.ops[..], [Op::DelDest(..)]), "{:?}", p.ops);
    }

    #[test]
    fn readded_real_stops_draining() {
        let d = desired(&cfg(BASE));
        let mut a = Actual::default();
        converge(&d, &mut a);
        let fewer = BASE.replacen("[[services.reals]]\naddress = \"10.0.0.2\"\n", "", 1);
        a.services[0].1[1].active_conns = 1;
        let mut drains = Drains::default();
        let p = plan(&desired(&cfg(&fewer)), &a, Duration::from_secs(60), &mut drains, 0);
        simulate(&mut a, &p.ops);
        // Operator changes their mind: the real comes back with its weight.
        let p = plan(&d, &a, Duration::from_secs(60), &mut drains, 1_000);
        assert!(matches!(&p.ops[..], [Op::SetDest(_, x)] if x.weight == 1), "{:?}", p.ops);
        assert!(drains.is_empty());
    }

    #[test]
    fn gone_reals_are_deleted_at_once_without_draining() {
        let d = desired(&cfg(BASE));
        let mut a = Actual::default();
        converge(&d, &mut a);
        a.services[0].1[1].active_conns = 3;
        let mut d2 = d.clone();
        let x = d2[0].dests.remove(1);
        d2[0].gone.push((x.addr, x.port));
        let mut drains = Drains::default();
        let p = plan(&d2, &a, Duration::from_secs(60), &mut drains, 0);
        assert!(matches!(&p.ops[..], [Op::DelDest(_, ip, 80)] if *ip == x.addr), "{:?}", p.ops);
        assert!(drains.is_empty());
        // A gone real the kernel does not have is no op.
        simulate(&mut a, &p.ops);
        assert_eq!(plan(&d2, &a, Duration::from_secs(60), &mut drains, 1).ops, vec![]);
    }

    #[test]
    fn tunnel_and_nat_dests() {
        let c = cfg(r#"
[[services]]
address = "192.0.2.1:80"
forwarding = "tun"
[[services.reals]]
address = "198.51.100.1"
tunnel = { type = "gue", port = 6080, checksum = "remcsum" }
[[services.reals]]
address = "198.51.100.2:80"
"#);
        let d = desired(&c);
        let x = &d[0].dests[0];
        assert_eq!((x.fwd, x.tun_type, x.tun_port, x.tun_flags, x.port), (Fwd::Tunnel, TunType::Gue, 6080, 2, 80));
        assert_eq!((d[0].dests[1].fwd, d[0].dests[1].tun_type), (Fwd::Tunnel, TunType::Ipip));
    }

    #[test]
    fn kernel_hashed_flag_and_nonpersistent_timeout_are_ignored() {
        let d = desired(&cfg(BASE));
        let mut k = d[0].svc.clone();
        k.flags |= svc_flags::HASHED;
        k.timeout = 0;
        assert!(same_service(&d[0].svc, &k));
        k.sched = "wlc".into();
        assert!(!same_service(&d[0].svc, &k));
    }

    #[test]
    fn scoped_planning_keeps_other_services_drains() {
        let d = desired(&cfg(BASE));
        let mut a = Actual::default();
        converge(&d, &mut a);
        let fewer = BASE.replacen("[[services.reals]]\naddress = \"10.0.0.2\"\n", "", 1);
        a.services[0].1[1].active_conns = 1;
        let mut drains = Drains::default();
        let p = plan(&desired(&cfg(&fewer)), &a, Duration::from_secs(60), &mut drains, 0);
        simulate(&mut a, &p.ops);
        assert_eq!(drains.len(), 1);
        // Plan only the fwmark service: the web service's drain survives.
        let fw = d[1].svc.key;
        let keys: std::collections::HashSet<ServiceKey> = [fw].into_iter().collect();
        let mut sub = drains.take_scope(&keys);
        let only = vec![d[1].clone()];
        let sub_actual = Actual { services: a.services.iter().filter(|(s, _)| s.key == fw).cloned().collect() };
        assert_eq!(plan(&only, &sub_actual, Duration::from_secs(60), &mut sub, 10).ops, vec![]);
        drains.absorb(sub);
        assert_eq!(drains.len(), 1);
    }
}
