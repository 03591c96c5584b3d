//! What lbd needs from the kernel's IPVS, as a trait: the netlink client in
//! production, an in-memory table for host tests (`lbd run --sim`).

use crate::ipvs::{Daemon, DaemonState, DestEntry, Info, ServiceEntry, ServiceKey, Timeouts};
use crate::reconcile::{Actual, Op, Table};

/// The IPVS operations lbd uses. Blocking; called from one worker thread.
pub trait Kernel: Send {
    /// GET_INFO (fails when IPVS is not available).
    fn info(&mut self) -> Result<Info, String>;
    /// Every service.
    fn services(&mut self) -> Result<Vec<ServiceEntry>, String>;
    /// The dests of one service.
    fn dests(&mut self, key: &ServiceKey) -> Result<Vec<DestEntry>, String>;
    /// Every service, handed to `each` one at a time as the kernel's dump
    /// arrives, so a verify pass never holds the whole list. After an error
    /// `each` may have seen part of the table.
    fn each_service(&mut self, each: &mut dyn FnMut(ServiceEntry)) -> Result<(), String> {
        for s in self.services()? {
            each(s);
        }
        Ok(())
    }
    /// Runs operations, one result per op, in order.
    fn execute(&mut self, ops: &[Op]) -> Vec<Result<(), String>>;
    /// GET_CONFIG.
    fn timeouts(&mut self) -> Result<Timeouts, String>;
    /// SET_CONFIG (0 = leave unchanged).
    fn set_timeouts(&mut self, t: Timeouts) -> Result<(), String>;
    /// ZERO counters of one service or all.
    fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), String>;
    /// Sync daemons.
    fn daemons(&mut self) -> Result<Vec<Daemon>, String>;
    /// Starts a sync daemon (VRRP: master daemon on the master, backup on the backup).
    fn new_daemon(&mut self, d: &Daemon) -> Result<(), String>;
    /// Stops the sync daemon in that state.
    fn del_daemon(&mut self, state: DaemonState) -> Result<(), String>;

    /// A second, independent handle on the same table (lbd reads the kernel
    /// on one while it changes it through the other); `None` if there is none.
    fn reader(&self) -> Option<Box<dyn Kernel>> {
        None
    }

    /// The whole table, with counters.
    fn dump(&mut self) -> Result<Table, String> {
        let services = self.services()?;
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            let d = self.dests(&s.svc.key)?;
            out.push((s, d));
        }
        Ok(out)
    }
}

/// An in-memory IPVS table with the kernel's bookkeeping (HASHED flag,
/// EEXIST/ESRCH on conflicts). Counts state-changing calls so tests can
/// assert "zero changes".
#[derive(Default)]
pub struct SimKernel {
    /// The table.
    pub table: Actual,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Number of state-changing operations executed.
    pub changes: u64,
    /// Running sync daemons (at most one per state, as the kernel allows).
    pub daemons: Vec<Daemon>,
}

impl SimKernel {
    /// An empty table with Linux's default timeouts.
    pub fn new() -> Self {
        SimKernel {
            table: Actual::default(),
            timeouts: Timeouts { tcp: 900, tcp_fin: 120, udp: 300 },
            changes: 0,
            daemons: Vec::new(),
        }
    }
}

impl Kernel for SimKernel {
    fn info(&mut self) -> Result<Info, String> {
        Ok(Info { version: 0x010201, conn_tab_size: 4096 })
    }
    fn services(&mut self) -> Result<Vec<ServiceEntry>, String> {
        Ok(self
            .table
            .services
            .iter()
            .map(|(s, _)| ServiceEntry { svc: s.clone(), stats: Default::default() })
            .collect())
    }
    fn each_service(&mut self, each: &mut dyn FnMut(ServiceEntry)) -> Result<(), String> {
        for (s, _) in &self.table.services {
            each(ServiceEntry { svc: s.clone(), stats: Default::default() });
        }
        Ok(())
    }
    fn dests(&mut self, key: &ServiceKey) -> Result<Vec<DestEntry>, String> {
        self.table
            .services
            .iter()
            .find(|(s, _)| s.key == *key)
            .map(|(_, d)| {
                d.iter()
                    .map(|v| DestEntry {
                        dest: v.dest.clone(),
                        active_conns: v.active_conns,
                        inact_conns: v.inact_conns,
                        persist_conns: 0,
                        stats: Default::default(),
                    })
                    .collect()
            })
            .ok_or("no such service".into())
    }
    fn dump(&mut self) -> Result<Table, String> {
        Ok(self.table.to_table())
    }
    fn execute(&mut self, ops: &[Op]) -> Vec<Result<(), String>> {
        self.changes += ops.len() as u64;
        crate::reconcile::simulate(&mut self.table, ops)
    }
    fn timeouts(&mut self) -> Result<Timeouts, String> {
        Ok(self.timeouts)
    }
    fn set_timeouts(&mut self, t: Timeouts) -> Result<(), String> {
        self.changes += 1;
        if t.tcp != 0 {
            self.timeouts.tcp = t.tcp;
        }
        if t.tcp_fin != 0 {
            self.timeouts.tcp_fin = t.tcp_fin;
        }
        if t.udp != 0 {
            self.timeouts.udp = t.udp;
        }
        Ok(())
    }
    fn zero(&mut self, _key: Option<&ServiceKey>) -> Result<(), String> {
        // The simulator keeps no traffic counters.
        Ok(())
    }
    fn daemons(&mut self) -> Result<Vec<Daemon>, String> {
        Ok(self.daemons.clone())
    }
    fn new_daemon(&mut self, d: &Daemon) -> Result<(), String> {
        if self.daemons.iter().any(|x| x.state == d.state) {
            return Err("File exists (a daemon in that state already runs)".into());
        }
        self.changes += 1;
        self.daemons.push(d.clone());
        Ok(())
    }
    fn del_daemon(&mut self, state: DaemonState) -> Result<(), String> {
        let before = self.daemons.len();
        self.daemons.retain(|x| x.state != state);
        if self.daemons.len() == before {
            return Err("No such process (no daemon in that state)".into());
        }
        self.changes += 1;
        Ok(())
    }
}

/// A kernel without IPVS (what the host shows): every call fails with `why`.
pub struct NoIpvs(pub String);

impl Kernel for NoIpvs {
    fn reader(&self) -> Option<Box<dyn Kernel>> {
        Some(Box::new(NoIpvs(self.0.clone())))
    }
    fn info(&mut self) -> Result<Info, String> {
        Err(self.0.clone())
    }
    fn services(&mut self) -> Result<Vec<ServiceEntry>, String> {
        Err(self.0.clone())
    }
    fn dests(&mut self, _: &ServiceKey) -> Result<Vec<DestEntry>, String> {
        Err(self.0.clone())
    }
    fn execute(&mut self, ops: &[Op]) -> Vec<Result<(), String>> {
        ops.iter().map(|_| Err(self.0.clone())).collect()
    }
    fn timeouts(&mut self) -> Result<Timeouts, String> {
        Err(self.0.clone())
    }
    fn set_timeouts(&mut self, _: Timeouts) -> Result<(), String> {
        Err(self.0.clone())
    }
    fn zero(&mut self, _: Option<&ServiceKey>) -> Result<(), String> {
        Err(self.0.clone())
    }
    fn daemons(&mut self) -> Result<Vec<Daemon>, String> {
        Err(self.0.clone())
    }
    fn new_daemon(&mut self, _: &Daemon) -> Result<(), String> {
        Err(self.0.clone())
    }
    fn del_daemon(&mut self, _: DaemonState) -> Result<(), String> {
        Err(self.0.clone())
    }
}

/// The production kernel handle: the generic-netlink client, or [`NoIpvs`]
/// saying why IPVS cannot be reached. Reopened lazily after a failure, so a
/// module loaded later (or a transient socket error) heals by itself.
pub fn open() -> Box<dyn Kernel> {
    Box::new(Netlink { ipvs: None })
}

/// [`Kernel`] over [`crate::ipvs::Ipvs`].
pub struct Netlink {
    ipvs: Option<crate::ipvs::Ipvs>,
}

impl Netlink {
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut crate::ipvs::Ipvs) -> Result<T, crate::ipvs::IpvsError>,
    ) -> Result<T, String> {
        if self.ipvs.is_none() {
            self.ipvs = Some(crate::ipvs::Ipvs::open().map_err(|e| e.to_string())?);
        }
        let Some(ipvs) = self.ipvs.as_mut() else { return Err("IPVS not open".into()) };
        let r = f(ipvs);
        if let Err(e) = &r {
            use crate::ipvs::IpvsError as E;
            if matches!(e, E::Socket(_) | E::Timeout(_) | E::AckLost | E::Decode(_) | E::NotAvailable) {
                self.ipvs = None;
            }
        }
        r.map_err(|e| e.to_string())
    }
}

impl Kernel for Netlink {
    fn reader(&self) -> Option<Box<dyn Kernel>> {
        Some(Box::new(Netlink { ipvs: None }))
    }
    fn info(&mut self) -> Result<Info, String> {
        self.with(|k| k.info())
    }
    fn services(&mut self) -> Result<Vec<ServiceEntry>, String> {
        self.with(|k| k.services())
    }
    fn dests(&mut self, key: &ServiceKey) -> Result<Vec<DestEntry>, String> {
        self.with(|k| k.dests(key))
    }
    fn each_service(&mut self, each: &mut dyn FnMut(ServiceEntry)) -> Result<(), String> {
        self.with(|k| k.for_each_service(&mut *each))
    }
    fn execute(&mut self, ops: &[Op]) -> Vec<Result<(), String>> {
        match self.with(|k| Ok(k.execute(ops))) {
            Ok(v) => v.into_iter().map(|r| r.map_err(|e| e.to_string())).collect(),
            Err(e) => ops.iter().map(|_| Err(e.clone())).collect(),
        }
    }
    fn timeouts(&mut self) -> Result<Timeouts, String> {
        self.with(|k| k.timeouts())
    }
    fn set_timeouts(&mut self, t: Timeouts) -> Result<(), String> {
        self.with(|k| k.set_timeouts(&t))
    }
    fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), String> {
        self.with(|k| k.zero(key))
    }
    fn daemons(&mut self) -> Result<Vec<Daemon>, String> {
        self.with(|k| k.daemons())
    }
    fn new_daemon(&mut self, d: &Daemon) -> Result<(), String> {
        self.with(|k| k.new_daemon(d))
    }
    fn del_daemon(&mut self, state: DaemonState) -> Result<(), String> {
        self.with(|k| k.del_daemon(state))
    }
    fn dump(&mut self) -> Result<Table, String> {
        self.with(|k| k.services_with_dests())
    }
}

/// A kernel shared between several daemon instances (tests of restarts).
#[derive(Clone, Default)]
pub struct SharedSim(pub std::sync::Arc<std::sync::Mutex<SimKernel>>);

impl SharedSim {
    /// A new shared empty table.
    pub fn new() -> Self {
        SharedSim(std::sync::Arc::new(std::sync::Mutex::new(SimKernel::new())))
    }
    fn with<T>(&self, f: impl FnOnce(&mut SimKernel) -> T) -> T {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
}

impl Kernel for SharedSim {
    fn reader(&self) -> Option<Box<dyn Kernel>> {
        Some(Box::new(self.clone()))
    }
    fn info(&mut self) -> Result<Info, String> {
        self.with(|k| k.info())
    }
    fn services(&mut self) -> Result<Vec<ServiceEntry>, String> {
        self.with(|k| k.services())
    }
    fn dests(&mut self, key: &ServiceKey) -> Result<Vec<DestEntry>, String> {
        self.with(|k| k.dests(key))
    }
    fn each_service(&mut self, each: &mut dyn FnMut(ServiceEntry)) -> Result<(), String> {
        self.with(|k| k.each_service(each))
    }
    fn execute(&mut self, ops: &[Op]) -> Vec<Result<(), String>> {
        self.with(|k| k.execute(ops))
    }
    fn timeouts(&mut self) -> Result<Timeouts, String> {
        self.with(|k| k.timeouts())
    }
    fn set_timeouts(&mut self, t: Timeouts) -> Result<(), String> {
        self.with(|k| k.set_timeouts(t))
    }
    fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), String> {
        self.with(|k| k.zero(key))
    }
    fn daemons(&mut self) -> Result<Vec<Daemon>, String> {
        self.with(|k| k.daemons())
    }
    fn new_daemon(&mut self, d: &Daemon) -> Result<(), String> {
        self.with(|k| k.new_daemon(d))
    }
    fn del_daemon(&mut self, state: DaemonState) -> Result<(), String> {
        self.with(|k| k.del_daemon(state))
    }
}
