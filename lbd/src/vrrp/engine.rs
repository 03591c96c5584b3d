//! The VRRP engine: the FSM driven by real sockets, timers and netlink.
//!
//! It runs on its own thread with its own single-threaded tokio runtime, so
//! nothing the rest of lbd does (a long apply, a slow IPVS dump, a stuck
//! control client) can delay an advertisement: keepalived's reload stalls
//! that make the peer take over (keepalived #2159) cannot happen here.
//! The daemon talks to it through a [`Vrrp`] handle (status, maintenance,
//! reconfigure, shutdown); the IPVS sync daemon is switched through a hook
//! that hands the wanted daemons to the kernel worker.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use super::config::{self, SyncDaemon};
use super::fsm::{self, Action, Event, Machine, State, SyncRole};
use super::net::{self, L2Sender, Links, Netlink, Rx, VrrpSocket};
use super::packet::{self, Advert, DropReason};
use crate::ipvs::{Daemon, DaemonState};

/// Receives the IPVS sync daemons that should run (empty: none of ours).
pub type SyncHook = Arc<dyn Fn(Vec<Daemon>) + Send + Sync>;

enum Cmd {
    Apply(Box<config::Vrrp>),
    Status(oneshot::Sender<Value>),
    Maintenance(String, bool, oneshot::Sender<Result<Value, String>>),
    Shutdown(oneshot::Sender<()>),
}

struct Running {
    tx: mpsc::UnboundedSender<Cmd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The daemon's handle on the VRRP engine. The engine thread starts with the
/// first config that has VRRP in it.
#[derive(Clone)]
pub struct Vrrp {
    running: Arc<Mutex<Option<Running>>>,
    hook: SyncHook,
}

impl Vrrp {
    /// A handle; nothing runs yet.
    pub fn new(hook: SyncHook) -> Self {
        Vrrp { running: Arc::new(Mutex::new(None)), hook }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `cfg`: starts the engine, or reconfigures it (instances whose
    /// config did not change keep their state, mastership included).
    pub fn apply(&self, cfg: &config::Vrrp) {
        let mut g = self.lock();
        if let Some(r) = g.as_ref()
            && r.tx.send(Cmd::Apply(Box::new(cfg.clone()))).is_ok()
        {
            return;
        }
        if cfg.is_empty() {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(Cmd::Apply(Box::new(cfg.clone())));
        let hook = self.hook.clone();
        let thread = std::thread::Builder::new()
            .name("vrrp".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        warn!("VRRP: cannot start its runtime: {e}");
                        return;
                    }
                };
                rt.block_on(run(rx, hook));
            })
            .ok();
        if thread.is_none() {
            warn!("VRRP: cannot start its thread");
        }
        *g = Some(Running { tx, thread });
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let sent = self.lock().as_ref().map(|r| r.tx.send(make(tx)).is_ok()).unwrap_or(false);
        if !sent {
            return None;
        }
        tokio::time::timeout(Duration::from_secs(5), rx).await.ok()?.ok()
    }

    /// Instances, groups and the sync daemon, as JSON.
    pub async fn status(&self) -> Value {
        self.ask(Cmd::Status).await.unwrap_or_else(|| json!({ "running": false, "instances": [] }))
    }

    /// Maintenance on/off for an instance or a sync group.
    pub async fn maintenance(&self, target: &str, on: bool) -> Result<Value, String> {
        let t = target.to_string();
        self.ask(|tx| Cmd::Maintenance(t, on, tx)).await.unwrap_or_else(|| Err("VRRP is not running".into()))
    }

    /// Hands over (priority-0 adverts, VIPs removed) and stops the engine.
    pub async fn shutdown(&self) {
        if self.ask(Cmd::Shutdown).await.is_none() {
            return;
        }
        let thread = self.lock().take().and_then(|mut r| r.thread.take());
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

/// Per-instance counters.
#[derive(Default)]
struct Stats {
    drops: BTreeMap<DropReason, u64>,
    rx_adverts: u64,
    tx_adverts: u64,
    tx_errors: u64,
    became_master: u64,
    last_error: Option<String>,
}

struct Pkt {
    ifname: String,
    v6: bool,
    data: Box<[u8]>,
    rx: Rx,
}

struct Engine {
    nl: Netlink,
    l2: Option<L2Sender>,
    links: Links,
    cfgs: Vec<config::Instance>,
    groups: Vec<config::SyncGroup>,
    machine: Machine,
    stats: Vec<Stats>,
    sync: Option<SyncDaemon>,
    sync_role: Option<Option<SyncRole>>,
    hook: SyncHook,
    sockets: HashMap<(String, bool), (Arc<VrrpSocket>, tokio::task::JoinHandle<()>)>,
    pkt_tx: mpsc::Sender<Pkt>,
    origin: Instant,
    /// VIP repair runs on refreshes after the first (the first refresh only
    /// learns the links; startup removes stale VIPs itself).
    repairs: bool,
}

async fn run(mut cmds: mpsc::UnboundedReceiver<Cmd>, hook: SyncHook) {
    let nl = match Netlink::new() {
        Ok(n) => n,
        Err(e) => {
            warn!("VRRP: no rtnetlink: {e}; VRRP is not running");
            return;
        }
    };
    let mut mon = match net::monitor() {
        Ok(m) => Some(m),
        Err(e) => {
            warn!("VRRP: cannot watch links ({e}); polling them every second");
            None
        }
    };
    let l2 = L2Sender::open().map_err(|e| warn!("VRRP: no AF_PACKET socket ({e}): no GARP/NA")).ok();
    let (pkt_tx, mut pkt_rx) = mpsc::channel(256);
    let mut e = Engine {
        nl,
        l2,
        links: Links::new(),
        cfgs: Vec::new(),
        groups: Vec::new(),
        machine: Machine::new(Vec::new(), Vec::new()),
        stats: Vec::new(),
        sync: None,
        sync_role: None,
        hook,
        sockets: HashMap::new(),
        pkt_tx,
        origin: Instant::now(),
        repairs: false,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(if mon.is_some() { 5 } else { 1 }));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let deadline = e.next_deadline();
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => break,
                Some(Cmd::Apply(cfg)) => {
                    e.apply(*cfg).await;
                    e.repairs = true;
                }
                Some(Cmd::Status(tx)) => { let _ = tx.send(e.status()); }
                Some(Cmd::Maintenance(t, on, tx)) => { let r = e.maintenance(&t, on).await; let _ = tx.send(r); }
                Some(Cmd::Shutdown(tx)) => {
                    e.shutdown().await;
                    let _ = tx.send(());
                    break;
                }
            },
            Some(p) = pkt_rx.recv() => e.on_packet(p).await,
            Some(()) = next_notice(&mut mon) => {
                if let Some(m) = mon.as_mut() {
                    while m.try_recv().is_ok() {}
                }
                e.refresh().await;
            }
            _ = tokio::time::sleep_until(deadline) => e.fire_timers().await,
            _ = tick.tick() => {
                e.refresh().await;
                e.push_sync();
            }
        }
    }
    for (_, (_, task)) in e.sockets.drain() {
        task.abort();
    }
}

async fn next_notice(mon: &mut Option<futures::channel::mpsc::UnboundedReceiver<()>>) -> Option<()> {
    use futures::StreamExt;
    match mon {
        Some(m) => m.next().await,
        None => std::future::pending().await,
    }
}

fn is_v6(c: &config::Instance) -> bool {
    c.family() == crate::config::Family::Ipv6
}

impl Engine {
    fn now(&self) -> fsm::Time {
        self.origin.elapsed()
    }

    fn next_deadline(&self) -> Instant {
        let far = self.origin + self.now() + Duration::from_secs(3600);
        self.machine
            .instances
            .iter()
            .filter_map(|i| i.next_deadline())
            .map(|(_, at)| self.origin + at)
            .min()
            .unwrap_or(far)
    }

    fn all_vips(&self) -> HashSet<IpAddr> {
        self.cfgs.iter().flat_map(|c| c.vips.iter().map(|v| v.address.addr)).collect()
    }

    /// The source address of instance `c`'s adverts, if the interface has one.
    fn primary(&self, c: &config::Instance) -> Option<IpAddr> {
        if let Some(s) = c.source {
            return Some(s);
        }
        let vips = self.all_vips();
        let l = self.links.get(&c.interface)?;
        l.addrs.iter().map(|(a, _)| *a).find(|a| {
            if is_v6(c) {
                matches!(a, IpAddr::V6(x) if x.is_unicast_link_local())
            } else {
                a.is_ipv4() && !vips.contains(a)
            }
        })
    }

    async fn apply(&mut self, new: config::Vrrp) {
        let now = self.now();
        // Instances that are gone or changed hand over first.
        let keep: Vec<bool> = self.cfgs.iter().map(|c| new.instances.iter().any(|n| n == c)).collect();
        for (i, k) in keep.iter().enumerate() {
            if !k {
                let acts = self.machine.handle(now, i, Event::Shutdown);
                self.perform(acts).await;
                info!("VRRP {}: removed or changed by the new config", self.cfgs[i].name);
            }
        }
        let mut old: HashMap<String, (fsm::Instance, Stats)> = HashMap::new();
        let old_cfgs = std::mem::take(&mut self.cfgs);
        let old_insts = std::mem::take(&mut self.machine.instances);
        let old_stats = std::mem::take(&mut self.stats);
        for ((c, inst), st) in old_cfgs.into_iter().zip(old_insts).zip(old_stats) {
            if new.instances.contains(&c) {
                old.insert(c.name.clone(), (inst, st));
            }
        }
        let follows = new.sync_daemon.as_ref().and_then(|d| d.instance.clone());
        let mut fresh = Vec::new();
        let mut insts = Vec::new();
        for (i, c) in new.instances.iter().enumerate() {
            let drives = follows.as_deref() == Some(c.name.as_str());
            match old.remove(&c.name) {
                Some((mut inst, st)) => {
                    inst.set_sync_daemon(drives);
                    insts.push(inst);
                    self.stats.push(st);
                }
                None => {
                    let unspec =
                        if is_v6(c) { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) };
                    insts.push(fsm::Instance::new(c.params(unspec, drives)));
                    self.stats.push(Stats::default());
                    fresh.push(i);
                }
            }
        }
        let groups: Vec<Vec<usize>> = new
            .sync_groups
            .iter()
            .map(|g| g.instances.iter().filter_map(|n| new.instances.iter().position(|c| &c.name == n)).collect())
            .collect();
        self.cfgs = new.instances.clone();
        self.groups = new.sync_groups.clone();
        self.machine = Machine::new(insts, groups);
        // Sync daemon config.
        let sync_changed = self.sync != new.sync_daemon;
        self.sync = new.sync_daemon.clone();
        if sync_changed {
            let role_of = |i: usize| match self.machine.instances[i].state() {
                State::Master => SyncRole::Master,
                _ => SyncRole::Backup,
            };
            self.sync_role = match &self.sync {
                None => None,
                Some(d) => match &d.instance {
                    None => Some(None),
                    Some(n) => self.machine.index(n).map(|i| Some(role_of(i))),
                },
            };
            if self.sync.is_none() {
                (self.hook)(Vec::new());
            }
            self.push_sync();
        }
        self.refresh().await;
        for i in fresh {
            info!(
                "VRRP {}: starting (vrid {}, priority {})",
                self.cfgs[i].name, self.cfgs[i].vrid, self.cfgs[i].priority
            );
            let acts = self.machine.handle(self.now(), i, Event::Startup);
            self.perform(acts).await;
        }
    }

    /// Re-reads links and addresses; opens/closes sockets; feeds link
    /// events and primary addresses to the FSM.
    async fn refresh(&mut self) {
        match self.nl.links().await {
            Ok(l) => self.links = l,
            Err(e) => {
                warn!("VRRP: cannot read links: {e}");
                return;
            }
        }
        // Sockets: one per (interface, family) in use, while the interface exists.
        let wanted: HashSet<(String, bool)> = self.cfgs.iter().map(|c| (c.interface.clone(), is_v6(c))).collect();
        self.sockets.retain(|k, (_, task)| {
            let keep = wanted.contains(k);
            if !keep {
                task.abort();
            }
            keep
        });
        for (ifname, v6) in wanted {
            let Some(l) = self.links.get(&ifname) else { continue };
            if let Some((s, _)) = self.sockets.get(&(ifname.clone(), v6))
                && s_index(s) == l.index
            {
                continue;
            }
            let opened = if v6 { VrrpSocket::open_v6(&ifname, l.index) } else { VrrpSocket::open_v4(&ifname, l.index) };
            match opened {
                Ok(s) => {
                    let s = Arc::new(s);
                    let task = tokio::spawn(reader(s.clone(), ifname.clone(), v6, self.pkt_tx.clone()));
                    if let Some((_, old)) = self.sockets.insert((ifname.clone(), v6), (s, task)) {
                        old.abort();
                    }
                }
                Err(e) => warn!("VRRP: cannot open the VRRP socket on {ifname}: {e}"),
            }
        }
        let now = self.now();
        for i in 0..self.cfgs.len() {
            let c = self.cfgs[i].clone();
            let primary = self.primary(&c);
            if let Some(p) = primary
                && self.machine.instances[i].params().primary != p
            {
                self.machine.instances[i].set_primary(p);
            }
            let has_socket = self.sockets.contains_key(&(c.interface.clone(), is_v6(&c)));
            let link_up = self.links.get(&c.interface).is_some_and(|l| l.up);
            let own_up = link_up && primary.is_some() && has_socket;
            let why = match (self.links.contains_key(&c.interface), link_up, primary.is_some(), has_socket) {
                (false, ..) => Some(format!("interface {} does not exist", c.interface)),
                (true, false, ..) => Some(format!("interface {} is down", c.interface)),
                (_, _, false, _) => Some(format!(
                    "no usable {} source address on {} yet",
                    if is_v6(&c) { "IPv6 link-local" } else { "IPv4" },
                    c.interface
                )),
                (_, _, _, false) => Some(format!("no VRRP socket on {}", c.interface)),
                _ => None,
            };
            if let Some(w) = why
                && self.stats[i].last_error.as_deref() != Some(w.as_str())
            {
                info!("VRRP {}: {w}", c.name);
                self.stats[i].last_error = Some(w);
            }
            let mut evs = vec![(c.interface.clone(), own_up)];
            for t in &c.track {
                evs.push((t.interface.clone(), self.links.get(&t.interface).is_some_and(|l| l.up)));
            }
            for (ifname, up) in evs {
                let acts = self.machine.handle(now, i, Event::Link { ifname, up });
                self.perform(acts).await;
            }
        }
        if self.repairs {
            self.repair_vips().await;
        }
    }

    /// The VIPs must match the state: all present on a master, none on a
    /// backup (or faulty/stopped) instance. Someone's `ip addr del` on the
    /// master, or a VIP left behind, is repaired here (with a GARP round when
    /// a master's VIP had to be put back).
    async fn repair_vips(&mut self) {
        for i in 0..self.cfgs.len() {
            let master = self.machine.instances[i].state() == State::Master;
            let c = &self.cfgs[i];
            let mut wrong = Vec::new();
            for v in &c.vips {
                let Some(l) = self.links.get(c.vip_interface(v)) else { continue };
                let present = l.addrs.iter().any(|(a, _)| *a == v.address.addr);
                if present != master {
                    wrong.push(v.address.to_string());
                }
            }
            if wrong.is_empty() {
                continue;
            }
            let name = c.name.clone();
            if master {
                warn!("VRRP {name}: VIP {} missing on the master: adding it back", wrong.join(", "));
                self.vips(i, true).await;
                self.garp(i);
            } else {
                warn!("VRRP {name}: VIP {} present while not master: removing it", wrong.join(", "));
                self.vips(i, false).await;
            }
        }
    }

    async fn fire_timers(&mut self) {
        for _ in 0..1000 {
            let now = self.now();
            let due = self
                .machine
                .instances
                .iter()
                .enumerate()
                .filter_map(|(i, inst)| inst.next_deadline().map(|(t, at)| (at, i, t)))
                .filter(|&(at, _, _)| at <= now)
                .min();
            let Some((_, i, t)) = due else { return };
            let acts = self.machine.handle(now, i, Event::Timer(t));
            self.perform(acts).await;
        }
    }

    fn count(&mut self, idxs: &[usize], r: DropReason) {
        for &i in idxs {
            *self.stats[i].drops.entry(r).or_default() += 1;
        }
    }

    async fn on_packet(&mut self, p: Pkt) {
        let (decoded, msg_off) = match p.rx {
            Rx::V4 { len } => {
                let d = &p.data[..len.min(p.data.len())];
                let off = d.first().map(|b| usize::from(b & 0x0f) * 4).unwrap_or(0);
                (packet::decode_ipv4(d), off)
            }
            Rx::V6 { len, src, dst, hop_limit } => {
                (packet::decode(&p.data[..len.min(p.data.len())], src.into(), dst.into(), hop_limit), 0)
            }
        };
        let cands: Vec<usize> = (0..self.cfgs.len())
            .filter(|&i| self.cfgs[i].interface == p.ifname && is_v6(&self.cfgs[i]) == p.v6)
            .collect();
        let vrid = p.data.get(msg_off..).and_then(packet::peek_vrid);
        let by_vrid: Vec<usize> = cands.iter().copied().filter(|&i| Some(self.cfgs[i].vrid) == vrid).collect();
        let target = if by_vrid.is_empty() { cands.clone() } else { by_vrid.clone() };
        let r = match decoded {
            Err(reason) => return self.count(&target, reason),
            Ok(r) => r,
        };
        let own = self.links.values().any(|l| l.addrs.iter().any(|(a, _)| *a == r.src));
        if own {
            return self.count(&target, DropReason::OwnPacket);
        }
        let Some(&i) = by_vrid.first() else { return self.count(&cands, DropReason::WrongVrid) };
        if let Err(reason) = packet::check(&r, &self.cfgs[i].expect()) {
            return self.count(&[i], reason);
        }
        self.stats[i].rx_adverts += 1;
        let a = r.advert;
        let acts = self.machine.handle(
            self.now(),
            i,
            Event::Advert { src: r.src, priority: a.priority, interval_cs: a.interval_cs },
        );
        self.perform(acts).await;
    }

    async fn perform(&mut self, acts: Vec<(usize, Action)>) {
        for (i, a) in acts {
            match a {
                Action::SendAdvert { priority } => self.send_advert(i, priority),
                Action::AddVips => self.vips(i, true).await,
                Action::RemoveVips => self.vips(i, false).await,
                Action::Garp => self.garp(i),
                Action::Arm { .. } | Action::Cancel(_) => {}
                Action::SyncDaemon(role) => {
                    if self.sync.as_ref().and_then(|d| d.instance.as_deref()) == Some(self.cfgs[i].name.as_str()) {
                        self.sync_role = Some(Some(role));
                        self.push_sync();
                    }
                }
                Action::StateChange { from, to, reason } => {
                    let c = &self.cfgs[i];
                    info!("VRRP {} (vrid {} on {}): {from} -> {to} ({reason})", c.name, c.vrid, c.interface);
                    if to == State::Master {
                        self.stats[i].became_master += 1;
                    }
                }
            }
        }
    }

    fn send_advert(&mut self, i: usize, priority: u8) {
        let c = &self.cfgs[i];
        let v6 = is_v6(c);
        let src = self.machine.instances[i].params().primary;
        let mut addrs = heapless::Vec::new();
        for v in &c.vips {
            let _ = addrs.push(v.address.addr);
        }
        let adv = Advert {
            version: c.version(),
            vrid: c.vrid,
            priority,
            interval_cs: c.interval_cs(),
            auth: c.auth(),
            addrs,
        };
        let dsts: Vec<IpAddr> = if c.unicast_peers.is_empty() {
            vec![if v6 { packet::MCAST_V6.into() } else { packet::MCAST_V4.into() }]
        } else {
            c.unicast_peers.clone()
        };
        let sock = self.sockets.get(&(c.interface.clone(), v6)).map(|(s, _)| s.clone());
        let mut err = None;
        for dst in dsts {
            let r = match (&sock, src, dst) {
                (None, _, _) => Err(format!("no socket on {}", c.interface)),
                (_, s, _) if s.is_unspecified() => Err(format!("no source address on {}", c.interface)),
                (Some(sock), IpAddr::V4(s), IpAddr::V4(d)) => packet::encode_ipv4(&adv, s, d, c.v3_checksum)
                    .map_err(|e| format!("{e:?}"))
                    .and_then(|pkt| sock.send_v4(&pkt, d).map_err(|e| e.to_string())),
                (Some(sock), IpAddr::V6(s), IpAddr::V6(d)) => {
                    let mut buf = packet::Buf::new();
                    packet::encode(&adv, s.into(), d.into(), c.v3_checksum, &mut buf)
                        .map_err(|e| format!("{e:?}"))
                        .and_then(|()| sock.send_v6(&buf, s, d).map_err(|e| e.to_string()))
                }
                _ => Err("address family mismatch".into()),
            };
            if let Err(e) = r {
                err = Some(e);
            }
        }
        let st = &mut self.stats[i];
        match err {
            None => st.tx_adverts += 1,
            Some(e) => {
                st.tx_errors += 1;
                if st.last_error.as_deref() != Some(e.as_str()) {
                    warn!("VRRP {}: cannot send an advert: {e}", c.name);
                }
                st.last_error = Some(e);
            }
        }
    }

    async fn vips(&mut self, i: usize, add: bool) {
        let c = self.cfgs[i].clone();
        for v in &c.vips {
            let ifname = c.vip_interface(v);
            let Some(l) = self.links.get(ifname) else {
                if add {
                    warn!("VRRP {}: interface {ifname} of VIP {} does not exist", c.name, v.address);
                }
                continue;
            };
            let r = if add {
                self.nl.add_addr(l.index, &v.address, v.label.as_deref()).await
            } else {
                self.nl.del_addr(l.index, &v.address).await
            };
            if let Err(e) = r {
                let what = if add { "add" } else { "remove" };
                warn!("VRRP {}: cannot {what} VIP {} on {ifname}: {e}", c.name, v.address);
                self.stats[i].last_error = Some(format!("{what} {}: {e}", v.address));
            }
        }
    }

    fn garp(&mut self, i: usize) {
        let Some(l2) = &self.l2 else { return };
        let c = &self.cfgs[i];
        for v in &c.vips {
            let Some(l) = self.links.get(c.vip_interface(v)) else { continue };
            let Some(mac) = l.mac else { continue };
            let r = match v.address.addr {
                IpAddr::V4(ip) => l2.send(l.index, &net::garp_frame(mac, ip)),
                IpAddr::V6(ip) => l2.send(l.index, &net::na_frame(mac, ip)),
            };
            if let Err(e) = r {
                warn!("VRRP {}: GARP/NA for {} failed: {e}", c.name, v.address);
            }
        }
    }

    fn push_sync(&self) {
        let (Some(d), Some(role)) = (&self.sync, self.sync_role) else { return };
        let mk = |state| Daemon {
            state,
            mcast_ifn: d.interface.clone(),
            sync_id: u32::from(d.syncid),
            sync_maxlen: d.maxlen,
            mcast_group: d.group,
            mcast_port: d.port,
            mcast_ttl: d.ttl,
        };
        let want = match role {
            None => vec![mk(DaemonState::Master), mk(DaemonState::Backup)],
            Some(SyncRole::Master) => vec![mk(DaemonState::Master)],
            Some(SyncRole::Backup) => vec![mk(DaemonState::Backup)],
        };
        (self.hook)(want);
    }

    fn indexes(&self, target: &str) -> Option<Vec<usize>> {
        if let Some(g) = self.groups.iter().find(|g| g.name == target) {
            return Some(g.instances.iter().filter_map(|n| self.machine.index(n)).collect());
        }
        self.machine.index(target).map(|i| vec![i])
    }

    async fn maintenance(&mut self, target: &str, on: bool) -> Result<Value, String> {
        let idxs = self.indexes(target).ok_or(format!("no VRRP instance or sync group named `{target}`"))?;
        for &i in &idxs {
            info!("VRRP {}: maintenance {}", self.cfgs[i].name, if on { "on" } else { "off" });
            let acts = self.machine.handle(self.now(), i, Event::Maintenance(on));
            self.perform(acts).await;
        }
        Ok(json!(idxs
            .iter()
            .map(|&i| json!({ "name": self.cfgs[i].name, "state": self.machine.instances[i].state(), "maintenance": on }))
            .collect::<Vec<_>>()))
    }

    async fn shutdown(&mut self) {
        let now = self.now();
        for i in 0..self.cfgs.len() {
            let acts = self.machine.handle(now, i, Event::Shutdown);
            self.perform(acts).await;
        }
        info!("VRRP: stopped (priority-0 adverts sent, VIPs removed)");
    }

    fn status(&self) -> Value {
        let now = self.now();
        let ago = |t: fsm::Time| now.saturating_sub(t).as_millis() as u64;
        let instances: Vec<Value> = self
            .cfgs
            .iter()
            .zip(&self.machine.instances)
            .zip(&self.stats)
            .map(|((c, inst), st)| {
                let drops: BTreeMap<&str, u64> = st.drops.iter().map(|(r, n)| (r.name(), *n)).collect();
                let p = inst.params();
                json!({
                    "name": c.name,
                    "interface": c.interface,
                    "vrid": c.vrid,
                    "version": c.version,
                    "state": inst.state(),
                    "priority": c.priority,
                    "effective_priority": inst.effective_priority(),
                    "maintenance": inst.maintenance(),
                    "primary": (!p.primary.is_unspecified()).then_some(p.primary),
                    "master": match inst.state() {
                        State::Master => json!({ "ip": p.primary, "self": true, "priority": inst.effective_priority() }),
                        _ => inst.master().map(|m| json!({ "ip": m.ip, "self": false, "priority": m.priority, "since_ms_ago": ago(m.since) })).unwrap_or(Value::Null),
                    },
                    "master_since_ms_ago": inst.master_since().map(ago),
                    "advert_interval_ms": p.interval.as_millis() as u64,
                    "master_adver_interval_ms": inst.master_adver_interval().as_millis() as u64,
                    "master_down_interval_ms": inst.master_down_interval().as_secs_f64() * 1000.0,
                    "vips": c.vips.iter().map(|v| v.address.to_string()).collect::<Vec<_>>(),
                    "rx_adverts": st.rx_adverts,
                    "tx_adverts": st.tx_adverts,
                    "tx_errors": st.tx_errors,
                    "became_master": st.became_master,
                    "drops": drops,
                    "last_error": st.last_error,
                    "history": inst.history().iter().map(|t| json!({
                        "ms_ago": ago(t.at), "from": t.from, "to": t.to, "reason": t.reason,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "running": true,
            "instances": instances,
            "sync_groups": self.groups,
            "sync_daemon": self.sync.as_ref().map(|d| json!({
                "config": d,
                "role": match self.sync_role { Some(Some(SyncRole::Master)) => "master", Some(Some(SyncRole::Backup)) => "backup", Some(None) => "both", None => "none" },
            })),
        })
    }
}

fn s_index(s: &VrrpSocket) -> u32 {
    s.ifindex()
}

async fn reader(s: Arc<VrrpSocket>, ifname: String, v6: bool, tx: mpsc::Sender<Pkt>) {
    let mut buf = vec![0u8; 2048];
    let mut errors = 0u32;
    loop {
        match s.recv(&mut buf).await {
            Ok(rx) => {
                errors = 0;
                let len = match rx {
                    Rx::V4 { len } | Rx::V6 { len, .. } => len.min(buf.len()),
                };
                let p = Pkt { ifname: ifname.clone(), v6, data: buf[..len].into(), rx };
                // A full queue means the engine is behind: drop, as a NIC would.
                let _ = tx.try_send(p);
            }
            Err(e) => {
                errors += 1;
                if errors == 1 {
                    warn!("VRRP: receive on {ifname} failed: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Makes the kernel's sync daemons exactly `want` (run by the kernel worker).
/// Only the fields we set are compared: the kernel fills in its defaults.
/// Returns what changed.
pub fn sync_daemons(k: &mut dyn crate::kernel::Kernel, want: &[Daemon]) -> Result<Vec<String>, String> {
    fn same(w: &Daemon, h: &Daemon) -> bool {
        w.state == h.state
            && w.mcast_ifn == h.mcast_ifn
            && w.sync_id == h.sync_id
            && (w.sync_maxlen.is_none() || w.sync_maxlen == h.sync_maxlen)
            && (w.mcast_group.is_none() || w.mcast_group == h.mcast_group)
            && (w.mcast_port.is_none() || w.mcast_port == h.mcast_port)
            && (w.mcast_ttl.is_none() || w.mcast_ttl == h.mcast_ttl)
    }
    let name = |s: DaemonState| if s == DaemonState::Master { "master" } else { "backup" };
    let have = k.daemons()?;
    let mut changes = Vec::new();
    for h in &have {
        if !want.iter().any(|w| same(w, h)) {
            k.del_daemon(h.state)?;
            changes.push(format!("stopped {}", name(h.state)));
        }
    }
    for w in want {
        if !have.iter().any(|h| same(w, h)) {
            k.new_daemon(w)?;
            changes.push(format!("started {} on {} (syncid {})", name(w.state), w.mcast_ifn, w.sync_id));
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Kernel, SimKernel};

    fn d(state: DaemonState) -> Daemon {
        Daemon {
            state,
            mcast_ifn: "eth1".into(),
            sync_id: 7,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        }
    }

    #[test]
    fn sync_daemons_switch_roles_and_are_idempotent() {
        let mut k = SimKernel::new();
        let ch = sync_daemons(&mut k, &[d(DaemonState::Backup)]).unwrap();
        assert_eq!(ch, vec!["started backup on eth1 (syncid 7)"]);
        let ch = sync_daemons(&mut k, &[d(DaemonState::Master)]).unwrap();
        assert_eq!(ch, vec!["stopped backup", "started master on eth1 (syncid 7)"]);
        assert_eq!(k.daemons().unwrap(), vec![d(DaemonState::Master)]);
        assert!(sync_daemons(&mut k, &[d(DaemonState::Master)]).unwrap().is_empty(), "no churn");
        // The kernel reports its defaults for what we left unset: no restart.
        k.daemons[0].mcast_port = Some(8848);
        k.daemons[0].mcast_group = Some("224.0.0.81".parse().unwrap());
        assert!(sync_daemons(&mut k, &[d(DaemonState::Master)]).unwrap().is_empty());
        // A changed syncid restarts it; an empty wish stops ours.
        let mut other = d(DaemonState::Master);
        other.sync_id = 8;
        assert_eq!(sync_daemons(&mut k, &[other]).unwrap().len(), 2);
        assert_eq!(sync_daemons(&mut k, &[]).unwrap(), vec!["stopped master"]);
        assert!(k.daemons().unwrap().is_empty());
    }
}
