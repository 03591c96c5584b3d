//! What the kernel should have, given the config, the checks' verdicts and
//! the operator's overrides: `desired = config ⊕ health ⊕ overrides`. Pure.
//!
//! Per real: disabled by the operator → removed at once; drained → weight 0
//! (kept); checked and not up → removed at once, or weight 0 with
//! `inhibit_on_failure`; otherwise the configured weight.
//!
//! Per service, as keepalived: the *alive weight* is the sum of the
//! configured weights of the reals that are up (or unchecked) and not
//! overridden. The quorum is lost when it falls below `quorum - hysteresis`
//! and regained at `quorum + hysteresis`. While it is lost, a `sorry_server`
//! (if any) replaces the reals; without one, the reals that are up keep
//! serving. Until every checked real of a service has a first verdict, the
//! quorum is not judged lost (no sorry-server blip while a box starts).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::config::{Check, Resolved, resolve};
use super::fsm::Health;
use crate::config::{self, Config, Family};
use crate::ipvs::{Dest, Fwd, Service as IpvsService, ServiceKey, TunType};
use crate::reconcile::{self, Desired, DesiredService};

/// An operator's override of one real.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Override {
    /// Out of the table (as if failed).
    Disable,
    /// Weight 0: existing connections stay, no new ones.
    Drain,
}

/// Identity of a real across config edits: the service's key as ipvsadm
/// prints it (`TCP 10.0.0.1:80`, `FWM 300`) and the real's `addr:port`.
pub type RealId = (String, String);

/// The identity of real `j` of `s`.
pub fn real_id(s: &config::Service, j: usize) -> RealId {
    real_ids(s).swap_remove(j)
}

/// The identities of every real of `s`, in order (the kernel form of each
/// real does not depend on the others).
pub fn real_ids(s: &config::Service) -> Vec<RealId> {
    let d = reconcile::desired_service(s);
    let key = d.svc.key.to_string();
    d.dests.iter().map(|x| (key.clone(), endpoint(x.addr, x.port))).collect()
}

/// What identifies a service across applies for its quorum state: its key
/// and first real (as the kernel has them).
type QuorumId = (ServiceKey, IpAddr, u16);

fn endpoint(a: IpAddr, p: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{p}"),
        IpAddr::V6(a) => format!("[{a}]:{p}"),
    }
}

/// Next quorum state. `prev` `None` = not judged yet; `settled` = every
/// checked real has a verdict.
pub fn quorum_step(prev: Option<bool>, alive: u64, quorum: u32, hysteresis: u32, settled: bool) -> Option<bool> {
    let q = u64::from(quorum);
    let h = u64::from(hysteresis);
    match prev {
        None if alive >= q => Some(true),
        None if settled => Some(false),
        None => None,
        Some(true) => Some(alive >= q.saturating_sub(h).max(1)),
        Some(false) => Some(alive >= q + h),
    }
}

/// The health overlay of a config.
///
/// Kept for the daemon's life next to the config, so nothing here is per
/// real unless a real is checked or overridden: a config of 10,000 services
/// without checks costs a few hundred KiB (the quorum state), not a check
/// slot and two identity strings per real.
#[derive(Clone, Debug, Default)]
pub struct Overlay {
    resolved: Resolved,
    subs: HashMap<Check, Vec<(usize, usize)>>,
    health: HashMap<Check, Health>,
    quorum: Vec<Option<bool>>,
    /// Per service, the identity its quorum state is carried over by.
    quorum_ids: Vec<Option<QuorumId>>,
    overrides: BTreeMap<RealId, Override>,
    /// `overrides` by position in the config: `(service, real)`.
    overridden: HashMap<(usize, usize), Override>,
}

/// A real as `checks` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct RealView {
    /// Service index.
    pub service: usize,
    /// Real index.
    pub real: usize,
    /// Its identity.
    pub id: RealId,
    /// The check (`None`: unchecked).
    pub check: Option<String>,
    /// The verdict (`None`: unchecked).
    pub health: Option<Health>,
    /// The operator's override.
    pub override_: Option<Override>,
    /// What the kernel should have: its weight, or `None` (not in the table).
    pub weight: Option<u32>,
}

impl Overlay {
    /// The overlay of `cfg`. `present(service, addr, port)` is a real's
    /// weight in the table now (the kernel's at start, the previous desired
    /// state at an apply); a real in service there (weight above 0, or the
    /// configured 0) starts `Up`, so a restart or an apply takes nothing out
    /// of service before a check says so. `keep` carries verdicts over from
    /// a previous overlay.
    pub fn new(
        cfg: &Config,
        overrides: BTreeMap<RealId, Override>,
        present: &dyn Fn(&ServiceKey, IpAddr, u16) -> Option<u32>,
        keep: Option<&Overlay>,
    ) -> Overlay {
        let serving = |k: &ServiceKey, a: IpAddr, p: u16, configured: u32| {
            present(k, a, p).is_some_and(|w| w > 0 || configured == 0)
        };
        let resolved = resolve(cfg);
        let mut subs: HashMap<Check, Vec<(usize, usize)>> = HashMap::new();
        let mut overridden = HashMap::new();
        for (i, s) in cfg.services.iter().enumerate() {
            if !overrides.is_empty() {
                for (j, id) in real_ids(s).iter().enumerate() {
                    if let Some(o) = overrides.get(id) {
                        overridden.insert((i, j), *o);
                    }
                }
            }
            for (j, c) in resolved.checks[i].iter().enumerate() {
                if let Some(c) = c {
                    subs.entry(c.clone()).or_default().push((i, j));
                }
            }
        }
        let desired = reconcile::desired(cfg);
        let quorum_ids: Vec<Option<QuorumId>> =
            desired.iter().map(|d| d.dests.first().map(|x| (d.svc.key, x.addr, x.port))).collect();
        // The quorum states of the previous overlay, by service identity.
        let before: HashMap<QuorumId, bool> = keep
            .map(|k| k.quorum_ids.iter().zip(&k.quorum).filter_map(|(id, q)| Some(((*id)?, (*q)?))).collect())
            .unwrap_or_default();
        let mut health = HashMap::with_capacity(subs.len());
        for (c, who) in &subs {
            let h = keep.and_then(|k| k.health.get(c).copied()).unwrap_or_else(|| {
                let on = who.iter().any(|&(i, j)| {
                    let d = &desired[i].dests[j];
                    serving(&desired[i].svc.key, d.addr, d.port, d.weight)
                });
                if on || !c.timing.alpha { Health::Up } else { Health::Unknown }
            });
            health.insert(c.clone(), h);
        }
        let mut o = Overlay {
            resolved,
            subs,
            health,
            quorum: vec![None; cfg.services.len()],
            quorum_ids,
            overrides,
            overridden,
        };
        for (i, s) in cfg.services.iter().enumerate() {
            let prev = o.quorum_ids[i].and_then(|id| before.get(&id).copied());
            let sorry_on = s.sorry_server.as_ref().is_some_and(|so| {
                let d = sorry_dest(s, so);
                present(&desired[i].svc.key, d.addr, d.port).is_some()
            });
            o.quorum[i] = if sorry_on { Some(false) } else { prev };
            o.eval_quorum(cfg, i);
        }
        o
    }

    /// The distinct checks with their current verdicts (what the engine runs).
    pub fn checks(&self) -> Vec<(Check, Health)> {
        self.health.iter().map(|(c, h)| (c.clone(), *h)).collect()
    }

    /// The overrides.
    pub fn overrides(&self) -> &BTreeMap<RealId, Override> {
        &self.overrides
    }

    /// The verdict of real `j` of service `i` (`None`: unchecked).
    pub fn health_of(&self, i: usize, j: usize) -> Option<Health> {
        let c = self.resolved.checks.get(i)?.get(j)?.as_ref()?;
        self.health.get(c).copied()
    }

    /// The check of real `j` of service `i`.
    pub fn check_of(&self, i: usize, j: usize) -> Option<&Check> {
        self.resolved.checks.get(i)?.get(j)?.as_ref()
    }

    /// Whether service `i` has its quorum (`None`: not judged yet).
    pub fn quorum(&self, i: usize) -> Option<bool> {
        self.quorum.get(i).copied().flatten()
    }

    fn alive(&self, cfg: &Config, i: usize) -> (u64, bool) {
        let s = &cfg.services[i];
        let mut alive = 0u64;
        let mut settled = true;
        for (j, r) in s.reals.iter().enumerate() {
            if self.overridden.contains_key(&(i, j)) {
                continue;
            }
            match self.health_of(i, j) {
                None | Some(Health::Up) => alive += u64::from(r.weight),
                Some(Health::Unknown) => settled = false,
                Some(Health::Down) => {}
            }
        }
        (alive, settled)
    }

    /// Re-judges the quorum of service `i`; returns a log line on a change.
    fn eval_quorum(&mut self, cfg: &Config, i: usize) -> Option<String> {
        let s = &cfg.services[i];
        let (alive, settled) = self.alive(cfg, i);
        let before = self.quorum[i];
        let q = s.quorum.unwrap_or(super::config::defaults::QUORUM);
        let after = quorum_step(before, alive, q, s.hysteresis.unwrap_or(0), settled);
        self.quorum[i] = after;
        let sorry = if s.sorry_server.is_some() { ", sorry server in" } else { "" };
        match (before.unwrap_or(true), after.unwrap_or(true)) {
            (true, false) => Some(format!("{}: quorum lost (alive weight {alive} < {q}){sorry}", s.label())),
            (false, true) => Some(format!(
                "{}: quorum regained (alive weight {alive} >= {q}){}",
                s.label(),
                if s.sorry_server.is_some() { ", sorry server out" } else { "" }
            )),
            _ => None,
        }
    }

    /// Records a verdict; returns the services whose desired state may have
    /// changed and the quorum changes to log.
    pub fn set_health(&mut self, cfg: &Config, check: &Check, h: Health) -> (Vec<usize>, Vec<String>) {
        let Some(slot) = self.health.get_mut(check) else { return (Vec::new(), Vec::new()) };
        if *slot == h {
            return (Vec::new(), Vec::new());
        }
        *slot = h;
        let mut svcs: Vec<usize> =
            self.subs.get(check).map(|v| v.iter().map(|(i, _)| *i).collect()).unwrap_or_default();
        svcs.sort_unstable();
        svcs.dedup();
        let logs = svcs.iter().filter_map(|&i| self.eval_quorum(cfg, i)).collect();
        (svcs, logs)
    }

    /// Sets or clears an override of real `j` of service `i`.
    pub fn set_override(&mut self, cfg: &Config, i: usize, j: usize, o: Option<Override>) -> Vec<String> {
        let id = real_id(&cfg.services[i], j);
        match o {
            Some(o) => {
                self.overrides.insert(id, o);
                self.overridden.insert((i, j), o);
            }
            None => {
                self.overrides.remove(&id);
                self.overridden.remove(&(i, j));
            }
        }
        self.eval_quorum(cfg, i).into_iter().collect()
    }

    /// The weight real `j` of service `i` should have in the kernel (`None`: absent).
    pub fn weight_of(&self, cfg: &Config, i: usize, j: usize) -> Option<u32> {
        let s = &cfg.services[i];
        let r = &s.reals[j];
        let inhibit = r.inhibit_on_failure.unwrap_or(s.inhibit_on_failure);
        if self.quorum(i) == Some(false) && s.sorry_server.is_some() {
            return inhibit.then_some(0);
        }
        match self.overridden.get(&(i, j)) {
            Some(Override::Disable) => return None,
            Some(Override::Drain) => return Some(0),
            None => {}
        }
        match self.health_of(i, j) {
            None | Some(Health::Up) => Some(r.weight),
            Some(_) if inhibit => Some(0),
            Some(_) => None,
        }
    }

    /// Service `i` as the kernel should have it.
    pub fn service(&self, cfg: &Config, i: usize) -> DesiredService {
        let s = &cfg.services[i];
        let mut d = reconcile::desired_service(s);
        let mut dests = Vec::with_capacity(d.dests.len());
        for (j, mut x) in std::mem::take(&mut d.dests).into_iter().enumerate() {
            match self.weight_of(cfg, i, j) {
                Some(w) => {
                    x.weight = w;
                    dests.push(x);
                }
                None => d.gone.push((x.addr, x.port)),
            }
        }
        if let Some(so) = &s.sorry_server {
            let x = sorry_dest(s, so);
            if self.quorum(i) == Some(false) {
                d.gone.retain(|g| *g != (x.addr, x.port));
                dests.push(x);
            } else {
                d.gone.push((x.addr, x.port));
            }
        }
        d.dests = dests;
        d
    }

    /// The whole desired table: the config's services with the overlay,
    /// then the hidden fwmark services of through-the-VIP checks.
    pub fn desired(&self, cfg: &Config) -> Desired {
        let mut v: Vec<Arc<DesiredService>> = (0..cfg.services.len()).map(|i| Arc::new(self.service(cfg, i))).collect();
        let mut hidden: Vec<&Check> = self.subs.keys().filter(|c| c.via_vip_to.is_some()).collect();
        hidden.sort_by_key(|c| c.mark);
        for c in hidden {
            let Some(real) = c.via_vip_to else { continue };
            let v6 = c.target.is_ipv6();
            v.push(Arc::new(DesiredService {
                svc: IpvsService {
                    key: ServiceKey::Fwmark {
                        af: if v6 { Family::Ipv6.af() } else { Family::Ipv4.af() },
                        mark: c.mark,
                    },
                    sched: "rr".into(),
                    flags: 0,
                    timeout: 0,
                    netmask: if v6 { 128 } else { u32::MAX },
                    pe_name: None,
                },
                dests: vec![Dest {
                    addr: real.ip(),
                    port: real.port(),
                    fwd: Fwd::Route,
                    weight: 1,
                    u_thresh: 0,
                    l_thresh: 0,
                    tun_type: TunType::Ipip,
                    tun_port: 0,
                    tun_flags: 0,
                }],
                gone: Vec::new(),
            }));
        }
        Arc::new(v)
    }

    /// Every real of every service, for `checks`.
    pub fn reals(&self, cfg: &Config) -> Vec<RealView> {
        let mut out = Vec::new();
        for (i, s) in cfg.services.iter().enumerate() {
            for (j, id) in real_ids(s).into_iter().enumerate() {
                out.push(RealView {
                    service: i,
                    real: j,
                    id,
                    check: self.check_of(i, j).map(|c| c.to_string()),
                    health: self.health_of(i, j),
                    override_: self.overridden.get(&(i, j)).copied(),
                    weight: self.weight_of(cfg, i, j),
                });
            }
        }
        out
    }
}

fn sorry_dest(s: &config::Service, so: &super::config::SorryServer) -> Dest {
    let mut r = config::Real::new(so.address);
    r.weight = so.weight;
    r.forwarding = so.forwarding;
    let d = reconcile::desired_service(&config::Service { reals: vec![r], ..s.clone() });
    d.dests.into_iter().next().unwrap_or_else(|| unreachable!("one real in, one dest out"))
}

#[cfg(test)]
mod tests;
