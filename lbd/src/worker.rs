//! lbd's kernel side: two threads, each with its own IPVS handle.
//!
//! The **control** thread owns lbd's view of the kernel table and makes every
//! change: it plans against the view, executes, and applies each accepted op
//! to the view, so a change costs what the change costs, even with 10,000
//! services. The **reader** thread only reads the kernel: the periodic
//! verification dumps (the whole table up to [`FULL_DUMP_MAX`] services; above
//! that the service list plus a rotating window of [`DEST_WINDOW`] services'
//! real servers) and the full dumps behind the ipvsadm views. A dump takes
//! seconds at 10,000 services under TCG; it runs while the control thread
//! keeps answering. When a dump arrives, the control thread makes it the new
//! view and replays the ops it executed while the dump ran (each op sets its
//! object to a final state, so replaying one the dump already saw is
//! harmless), then repairs whatever differs from the config.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::config;
use crate::ipvs::{self, DestEntry, ServiceKey, Timeouts};
use crate::kernel::Kernel;
use crate::reconcile::{self, Actual, DesiredService, Drains, Op, Table, ViewDest};

/// Tables up to this many services are re-read whole on every verify pass.
pub const FULL_DUMP_MAX: usize = 512;
/// Larger tables re-read this many services' real servers per verify pass
/// (a GET_DEST dump each), so every one is checked every few passes.
pub const DEST_WINDOW: usize = 1000;
/// Operation descriptions kept in a report (the count is always exact).
const REPORT_OPS: usize = 20;

/// What a reconcile pass did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PassReport {
    /// Milliseconds it took (for a verify pass: from the request to the repair).
    pub duration_ms: u64,
    /// How many operations the kernel accepted.
    pub applied_count: usize,
    /// The first of them, described.
    pub applied: Vec<String>,
    /// How many the kernel refused.
    pub failed_count: usize,
    /// The first refused ones with the kernel's reason.
    pub failed: Vec<(String, String)>,
    /// Why the pass could not run at all (no IPVS, dump failed).
    pub error: Option<String>,
    /// Timeouts changed.
    pub timeouts_set: bool,
    /// Real servers draining after the pass.
    pub draining: usize,
    /// Services whose real servers were re-read from the kernel this pass.
    pub verified_services: usize,
}

impl PassReport {
    fn applied(&mut self, op: &Op) {
        self.applied_count += 1;
        if self.applied.len() < REPORT_OPS {
            self.applied.push(op.to_string());
        }
    }
    fn failed(&mut self, what: String, why: String) {
        self.failed_count += 1;
        if self.failed.len() < REPORT_OPS {
            self.failed.push((what, why));
        }
    }
}

/// How thoroughly a reconcile pass reads the kernel first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Re-read the kernel (in the reader thread) and repair.
    Verify,
    /// Plan against the view only (right after an apply or an edit).
    Fast,
}

/// What a pass reconciles towards.
#[derive(Clone)]
pub struct Target {
    /// The config's services in kernel form.
    pub desired: reconcile::Desired,
    /// `ipvs.drain_timeout`.
    pub drain: Duration,
    /// `ipvs.timeouts`.
    pub timeouts: config::Timeouts,
    /// Only these indices of `desired` (a Fast pass after a one-service
    /// edit); `None` = everything, deleting services not in `desired`.
    pub scope: Option<Vec<usize>>,
}

/// A fresh read of the kernel for views.
pub struct Snapshot {
    /// GET_INFO.
    pub info: ipvs::Info,
    /// Every service with its dests and counters.
    pub table: Table,
    /// GET_CONFIG.
    pub timeouts: Option<Timeouts>,
    /// Sync daemons.
    pub daemons: Vec<ipvs::Daemon>,
    /// Real servers draining, with how long (ms).
    pub draining: Vec<(ServiceKey, std::net::IpAddr, u16, u64)>,
}

/// Requests to the control thread.
pub enum Job {
    /// A reconcile pass.
    Reconcile { target: Target, mode: Mode, reply: oneshot::Sender<PassReport> },
    /// A full fresh read for views (done by the reader thread).
    Snapshot { reply: oneshot::Sender<Result<Snapshot, String>> },
    /// ZERO all counters.
    Zero { reply: oneshot::Sender<Result<(), String>> },
    /// GET_INFO and the size of the view (no dump).
    Summary { reply: oneshot::Sender<Result<(ipvs::Info, usize, usize), String>> },
    /// VRRP: make the running sync daemons exactly these.
    SyncDaemons { want: Vec<ipvs::Daemon> },
    /// The reader's answer to a verify request.
    Read { read: Result<Partial, String>, started: u64 },
}

/// What a verify read found.
///
/// A full read carries every service (in the kernel's order) with its real
/// servers. Otherwise only what may differ from the view: the services whose
/// definition the reader had not seen as they are now (new, edited out of
/// band, or named in the request because lbd changed them since), the ones it
/// saw before that the kernel no longer has, and the real servers of a window
/// of services (and of every service it sent). The reader compares each
/// service as the dump arrives, so a pass over an unchanged 10,000-service
/// table holds neither the dump nor a list of every service.
pub struct Partial {
    full: bool,
    services: Vec<ipvs::Service>,
    gone: Vec<ServiceKey>,
    dests: Vec<(ServiceKey, Vec<ViewDest>)>,
}

fn slim(d: Vec<DestEntry>) -> Vec<ViewDest> {
    d.into_iter().map(ViewDest::from).collect()
}

enum ReadReq {
    Verify {
        /// Services to send whatever the reader saw last (lbd changed them,
        /// or an op on them failed), with their real servers.
        recheck: Vec<ServiceKey>,
        full: bool,
        started: u64,
    },
    Snapshot {
        draining: Vec<(ServiceKey, std::net::IpAddr, u16, u64)>,
        reply: oneshot::Sender<Result<Snapshot, String>>,
    },
}

/// A fingerprint no definition gets: "send this service whatever it is".
const RESEND: u64 = 0;

/// A 64-bit digest of a service's definition as the kernel reports it
/// (never [`RESEND`]).
fn fingerprint(s: &ipvs::Service) -> u64 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same definition always gives the same value.
    let mut h = std::hash::DefaultHasher::new();
    (s.key, &s.sched, s.flags, s.timeout, s.netmask, &s.pe_name).hash(&mut h);
    h.finish().max(1)
}

/// The reader's own state: each service it saw last (the fingerprint of its
/// definition and the read it was seen in) and where the window is.
///
/// Why comparing with what the reader saw is enough: the view holds what a
/// read saw plus the ops lbd executed since, and every service such an op
/// touched is named in the next request (`recheck`), so it is sent as it is
/// whatever its fingerprint. A service no op touched and whose fingerprint
/// did not change is in the view as the kernel has it.
#[derive(Default)]
struct Reader {
    seen: HashMap<ServiceKey, (u64, u32)>,
    read: u32,
    /// Services in the kernel at the last read.
    count: usize,
    cursor: usize,
}

impl Reader {
    fn read(&mut self, k: &mut dyn Kernel, recheck: &[ServiceKey], full: bool) -> Result<Partial, String> {
        let r = self.read_inner(k, recheck, full);
        if r.is_err() {
            // Start over: the view is dropped and the next read is full.
            self.seen = HashMap::new();
            self.count = 0;
        }
        r
    }

    fn read_inner(&mut self, k: &mut dyn Kernel, recheck: &[ServiceKey], full: bool) -> Result<Partial, String> {
        let prev = self.read;
        self.read = self.read.wrapping_add(1);
        let read = self.read;
        for key in recheck {
            // Unknown ones are recorded as seen before, so that one the
            // kernel does not have (any more) is reported gone.
            self.seen.entry(*key).or_insert((RESEND, prev)).0 = RESEND;
        }
        let n = self.count.max(1);
        let window = DEST_WINDOW.min(n);
        let cursor = self.cursor % n;
        let seen = &mut self.seen;
        let mut services = Vec::new();
        let mut want_dests = Vec::new();
        let mut i = 0usize;
        k.each_service(&mut |e| {
            let s = e.svc;
            let fp = fingerprint(&s);
            let in_window = (i % n + n - cursor) % n < window;
            i += 1;
            let (send, dests) = match seen.get_mut(&s.key) {
                Some(v) => {
                    let was = v.0;
                    *v = (fp, read);
                    (full || was != fp, full || was == RESEND || in_window)
                }
                None => {
                    seen.insert(s.key, (fp, read));
                    (true, true)
                }
            };
            if dests {
                want_dests.push(s.key);
            }
            if send {
                services.push(s);
            }
        })?;
        self.count = i;
        self.cursor = (cursor + window) % i.max(1);
        let mut gone = Vec::new();
        self.seen.retain(|key, (_, r)| {
            let here = *r == read;
            if !here && !full {
                gone.push(*key);
            }
            here
        });
        let mut dests = Vec::with_capacity(want_dests.len());
        for key in want_dests {
            dests.push((key, slim(k.dests(&key)?)));
        }
        Ok(Partial { full, services, gone, dests })
    }

    fn snapshot(
        k: &mut dyn Kernel,
        draining: Vec<(ServiceKey, std::net::IpAddr, u16, u64)>,
    ) -> Result<Snapshot, String> {
        let info = k.info()?;
        Ok(Snapshot {
            info,
            table: k.dump()?,
            timeouts: k.timeouts().ok(),
            daemons: k.daemons().unwrap_or_default(),
            draining,
        })
    }
}

/// A verify pass waiting for the reader.
struct InFlight {
    target: Target,
    since: Instant,
    replies: Vec<oneshot::Sender<PassReport>>,
}

/// The control thread's state.
struct Control {
    k: Box<dyn Kernel>,
    view: Option<Actual>,
    drains: Drains,
    start: Instant,
    /// Ops executed, numbered; kept while a read is in flight.
    seq: u64,
    journal: Vec<(u64, Op)>,
    stale: HashSet<ServiceKey>,
    in_flight: Option<InFlight>,
    /// Passes asked for while one is in flight (coalesced into one).
    queued: Option<InFlight>,
    reader: Option<mpsc::Sender<ReadReq>>,
    /// Reader state used inline (on this thread's handle) when the kernel
    /// gives no second handle.
    inline: Reader,
    self_tx: mpsc::Sender<Job>,
    sync_err: Option<String>,
}

/// The view after a verify read.
///
/// A full read's services in the kernel's order, each with the real servers
/// read now; otherwise the view with the read's differences applied in place
/// (sent definitions replaced or added, services gone removed, re-read real
/// servers compared).
///
/// What the view already holds keeps its allocation: an unchanged service
/// (and its scheduler string) stays the view's own, and re-read real servers
/// are copied into the view's vector rather than replacing it. A verify pass
/// at 10,000 services otherwise swapped thousands of small blocks every 2 s
/// for ones the reader had allocated between its transient dump buffers, and
/// those scattered live blocks kept whole freed pages resident (the RSS after
/// a few passes grew by megabytes that `malloc_trim` could not give back).
fn merge_read(old: Option<Actual>, p: Partial) -> Actual {
    let mut view = match old {
        Some(v) if !p.full => v,
        old => return merge_full(old, p),
    };
    let gone: HashSet<ServiceKey> = p.gone.into_iter().collect();
    if !gone.is_empty() {
        view.services.retain(|(s, _)| !gone.contains(&s.key));
    }
    if p.services.is_empty() && p.dests.is_empty() {
        return view;
    }
    // Where each service is (a map only when there are enough lookups to
    // pay for it: the window's 1,000 in a table of 10,000).
    let lookups = p.services.len() + p.dests.len();
    let index: Option<HashMap<ServiceKey, usize>> =
        (lookups > 16).then(|| view.services.iter().enumerate().map(|(i, (s, _))| (s.key, i)).collect());
    let find = |view: &Actual, index: &Option<HashMap<ServiceKey, usize>>, key: &ServiceKey| match index {
        Some(m) => m.get(key).copied(),
        None => view.services.iter().position(|(s, _)| s.key == *key),
    };
    for s in p.services {
        match find(&view, &index, &s.key) {
            Some(i) => {
                if view.services[i].0 != s {
                    view.services[i].0 = s;
                }
            }
            // New: at the end, after every indexed entry.
            None => view.services.push((s, Vec::new())),
        }
    }
    for (key, read) in p.dests {
        let i = find(&view, &index, &key).or_else(|| view.services.iter().rposition(|(s, _)| s.key == key));
        if let Some(i) = i {
            let d = &mut view.services[i].1;
            if *d != read {
                d.clone_from(&read);
            }
        }
    }
    view
}

/// A full read: the read's services in the kernel's order, keeping the old
/// view's allocations for what did not change.
fn merge_full(old: Option<Actual>, p: Partial) -> Actual {
    let mut old: HashMap<ServiceKey, (ipvs::Service, Vec<ViewDest>)> =
        old.map(|v| v.services.into_iter().map(|(s, d)| (s.key, (s, d))).collect()).unwrap_or_default();
    let mut dests: HashMap<ServiceKey, Vec<ViewDest>> = p.dests.into_iter().collect();
    let mut table = Vec::with_capacity(p.services.len());
    for s in p.services {
        let read = dests.remove(&s.key);
        let entry = match old.remove(&s.key) {
            Some((mut have, mut d)) => {
                if have != s {
                    have = s;
                }
                if let Some(read) = read
                    && d != read
                {
                    d.clone_from(&read);
                }
                (have, d)
            }
            None => (s, read.unwrap_or_default()),
        };
        table.push(entry);
    }
    Actual { services: table }
}

fn op_key(op: &Op) -> ServiceKey {
    match op {
        Op::NewService(s) | Op::SetService(s) => s.key,
        Op::DelService(k) | Op::NewDest(k, _) | Op::SetDest(k, _) | Op::DelDest(k, _, _) => *k,
    }
}

impl Control {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Plans and executes against the view (which must exist).
    fn repair(&mut self, target: &Target, r: &mut PassReport) {
        let Some(view) = self.view.as_mut() else { return };
        let now = self.start.elapsed().as_millis() as u64;
        let plan = match &target.scope {
            None => reconcile::plan(&target.desired, view, target.drain, &mut self.drains, now),
            Some(idx) => {
                // Only these services: plan them against their own entries.
                let want: Vec<Arc<DesiredService>> =
                    idx.iter().filter_map(|i| target.desired.get(*i).cloned()).collect();
                let keys: HashSet<ServiceKey> = want.iter().map(|d| d.svc.key).collect();
                let sub =
                    Actual { services: view.services.iter().filter(|(s, _)| keys.contains(&s.key)).cloned().collect() };
                let mut drains = self.drains.take_scope(&keys);
                let plan = reconcile::plan(&want, &sub, target.drain, &mut drains, now);
                self.drains.absorb(drains);
                plan
            }
        };
        let results = self.k.execute(&plan.ops);
        for (op, res) in plan.ops.iter().zip(results) {
            // The next read sends this service as the kernel has it then
            // (the reader compares with what it saw, which this op may have
            // made different from the view).
            self.stale.insert(op_key(op));
            match res {
                Ok(()) => {
                    self.seq += 1;
                    if self.in_flight.is_some() {
                        self.journal.push((self.seq, op.clone()));
                    }
                    let _ = reconcile::simulate(view, std::slice::from_ref(op));
                    r.applied(op);
                }
                Err(e) => r.failed(op.to_string(), e),
            }
        }
        if r.failed_count > 0 {
            // Something differs from what we believed: re-read it all next time.
            self.view = None;
        }
        r.draining = self.drains.len();
    }

    fn timeouts(&mut self, target: &Target, r: &mut PassReport) {
        let t = target.timeouts;
        if r.error.is_some() || (t.tcp.is_none() && t.tcpfin.is_none() && t.udp.is_none()) {
            return;
        }
        match self.k.timeouts() {
            Ok(cur) => {
                let want = Timeouts {
                    tcp: t.tcp.unwrap_or(cur.tcp),
                    tcp_fin: t.tcpfin.unwrap_or(cur.tcp_fin),
                    udp: t.udp.unwrap_or(cur.udp),
                };
                if want != cur {
                    match self.k.set_timeouts(want) {
                        Ok(()) => r.timeouts_set = true,
                        Err(e) => r.failed("set timeouts".into(), e),
                    }
                }
            }
            Err(e) => r.failed("get timeouts".into(), e),
        }
    }

    /// A pass planned against the view alone; answers `reply`.
    fn fast(&mut self, target: &Target, reply: oneshot::Sender<PassReport>) {
        let t0 = Instant::now();
        let mut r = PassReport::default();
        self.repair(target, &mut r);
        self.timeouts(target, &mut r);
        r.duration_ms = t0.elapsed().as_millis() as u64;
        let _ = reply.send(r);
        if target.scope.is_none() {
            // A whole-config pass (an apply) planned over every service and
            // may have executed thousands of ops: give its transient memory
            // back now rather than after the next verify pass (seconds
            // later at 10,000 services). Scoped passes (a weight edit, a
            // check's verdict) skip it: they allocate little.
            crate::daemon::release_free_memory();
        }
    }

    /// Starts a verify read (in the reader thread, or inline).
    fn start_verify(&mut self, f: InFlight) {
        let full = self.view.as_ref().is_none_or(|v| v.services.len() <= FULL_DUMP_MAX);
        let recheck: Vec<ServiceKey> = self.stale.drain().collect();
        self.stale.shrink_to(64);
        let started = self.seq;
        self.in_flight = Some(f);
        if let Some(tx) = &self.reader {
            match tx.send(ReadReq::Verify { recheck, full, started }) {
                Ok(()) => return,
                Err(mpsc::SendError(_)) => {
                    // The reader thread is gone: read inline from now on.
                    self.reader = None;
                }
            }
            let _ = self.self_tx.send(Job::Read { read: Err("kernel reader stopped".into()), started });
            return;
        }
        let read = self.inline.read(self.k.as_mut(), &recheck, full);
        let _ = self.self_tx.send(Job::Read { read, started });
    }

    /// A verify read arrived: new view, replay, repair, answer.
    fn finish_verify(&mut self, read: Result<Partial, String>, started: u64) {
        let Some(f) = self.in_flight.take() else { return };
        let mut r = PassReport::default();
        match read {
            Err(e) => {
                self.view = None;
                r.error = Some(e);
            }
            Ok(p) => {
                r.verified_services = p.dests.len();
                let mut view = merge_read(self.view.take(), p);
                // Ops executed while the read ran: the read may or may not
                // have seen them; applying them again gives the final state.
                for (_, op) in self.journal.iter().filter(|(n, _)| *n > started) {
                    let _ = reconcile::simulate(&mut view, std::slice::from_ref(op));
                }
                self.view = Some(view);
            }
        }
        self.journal.clear();
        if r.error.is_none() {
            self.repair(&f.target, &mut r);
        }
        self.timeouts(&f.target, &mut r);
        r.duration_ms = f.since.elapsed().as_millis() as u64;
        for tx in f.replies {
            let _ = tx.send(r.clone());
        }
        crate::daemon::release_free_memory();
        if let Some(q) = self.queued.take() {
            self.start_verify(q);
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Reconcile { target, mode, reply } => {
                if mode == Mode::Fast && self.view.is_some() && self.in_flight.is_none() {
                    self.fast(&target, reply);
                    return;
                }
                if mode == Mode::Fast && self.view.is_some() {
                    // A read is in flight: plan against the current view now
                    // (its ops are journalled and replayed onto the new view).
                    self.fast(&target, reply);
                    // Passes in flight or queued repair towards the newest
                    // config (a scoped target still carries all of it).
                    let newest = Target { scope: None, ..target };
                    for f in [self.in_flight.as_mut(), self.queued.as_mut()].into_iter().flatten() {
                        f.target = newest.clone();
                    }
                    return;
                }
                let f = InFlight { target, since: Instant::now(), replies: vec![reply] };
                if self.in_flight.is_some() {
                    match self.queued.as_mut() {
                        Some(q) => {
                            q.target = f.target;
                            q.replies.extend(f.replies);
                        }
                        None => self.queued = Some(f),
                    }
                } else {
                    self.start_verify(f);
                }
            }
            Job::Read { read, started } => self.finish_verify(read, started),
            Job::Snapshot { reply } => {
                let draining = self.drains.list(self.now_ms());
                match &self.reader {
                    Some(tx) => {
                        let _ = tx.send(ReadReq::Snapshot { draining, reply });
                    }
                    None => {
                        let _ = reply.send(Reader::snapshot(self.k.as_mut(), draining));
                    }
                }
            }
            Job::Zero { reply } => {
                let _ = reply.send(self.k.zero(None));
            }
            Job::Summary { reply } => {
                let counts = self
                    .view
                    .as_ref()
                    .map_or((0, 0), |v| (v.services.len(), v.services.iter().map(|(_, d)| d.len()).sum::<usize>()));
                let _ = reply.send(self.k.info().map(|i| (i, counts.0, counts.1)));
            }
            Job::SyncDaemons { want } => {
                let r = crate::vrrp::engine::sync_daemons(self.k.as_mut(), &want);
                match (&r, &self.sync_err) {
                    (Ok(changes), _) if !changes.is_empty() => info!("IPVS sync daemon: {}", changes.join(", ")),
                    (Err(e), last) if last.as_ref() != Some(e) => warn!("IPVS sync daemon: {e}"),
                    _ => {}
                }
                self.sync_err = r.err();
            }
        }
    }
}

/// Starts the control thread (and the reader thread when the kernel gives a
/// second handle); returns the control thread's job queue.
pub fn start(k: Box<dyn Kernel>) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let reader = match k.reader() {
        Some(mut rk) => {
            let (rtx, rrx) = mpsc::channel::<ReadReq>();
            let back = tx.clone();
            let mut rd = Reader::default();
            std::thread::Builder::new()
                .name("kernel-reader".into())
                .spawn(move || {
                    background_priority();
                    while let Ok(req) = rrx.recv() {
                        match req {
                            ReadReq::Verify { recheck, full, started } => {
                                let read = rd.read(rk.as_mut(), &recheck, full);
                                if back.send(Job::Read { read, started }).is_err() {
                                    break;
                                }
                            }
                            ReadReq::Snapshot { draining, reply } => {
                                let _ = reply.send(Reader::snapshot(rk.as_mut(), draining));
                            }
                        }
                    }
                })
                .expect("spawn the kernel reader thread");
            Some(rtx)
        }
        None => None,
    };
    let mut c = Control {
        k,
        view: None,
        drains: Drains::default(),
        start: Instant::now(),
        seq: 0,
        journal: Vec::new(),
        stale: HashSet::new(),
        in_flight: None,
        queued: None,
        reader,
        inline: Reader::default(),
        self_tx: tx.clone(),
        sync_err: None,
    };
    std::thread::Builder::new()
        .name("kernel".into())
        .spawn(move || {
            while let Ok(job) = rx.recv() {
                c.handle(job);
            }
        })
        .expect("spawn the kernel control thread");
    tx
}

/// Verify passes are background work: the reader runs at nice 10 so that an
/// operator's command (a weight change, `lbd ctl`, the console) and the
/// health checks get the CPU first while a 10,000-service dump is being
/// read. On Linux the nice value is per thread.
fn background_priority() {
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    // SAFETY: gettid and setpriority take plain integers and change only
    // this thread's scheduling weight.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, 10) != 0 {
            tracing::debug!("kernel reader: setpriority: {}", std::io::Error::last_os_error());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::SharedSim;

    /// A reader whose dumps wait for a go-ahead, to make a change land while
    /// a dump is in flight.
    struct Gated {
        k: SharedSim,
        gate: Arc<std::sync::Mutex<mpsc::Receiver<()>>>,
    }

    impl Kernel for Gated {
        fn info(&mut self) -> Result<ipvs::Info, String> {
            self.k.info()
        }
        fn services(&mut self) -> Result<Vec<ipvs::ServiceEntry>, String> {
            let r = self.k.services();
            let _ = self.gate.lock().unwrap().recv();
            r
        }
        fn dests(&mut self, key: &ServiceKey) -> Result<Vec<DestEntry>, String> {
            self.k.dests(key)
        }
        fn execute(&mut self, ops: &[Op]) -> Vec<Result<(), String>> {
            self.k.execute(ops)
        }
        fn timeouts(&mut self) -> Result<Timeouts, String> {
            self.k.timeouts()
        }
        fn set_timeouts(&mut self, t: Timeouts) -> Result<(), String> {
            self.k.set_timeouts(t)
        }
        fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), String> {
            self.k.zero(key)
        }
        fn daemons(&mut self) -> Result<Vec<ipvs::Daemon>, String> {
            self.k.daemons()
        }
        fn new_daemon(&mut self, d: &ipvs::Daemon) -> Result<(), String> {
            self.k.new_daemon(d)
        }
        fn del_daemon(&mut self, s: ipvs::DaemonState) -> Result<(), String> {
            self.k.del_daemon(s)
        }
        fn dump(&mut self) -> Result<Table, String> {
            let a = self.k.dump();
            let _ = self.gate.lock().unwrap().recv();
            a
        }
        fn reader(&self) -> Option<Box<dyn Kernel>> {
            Some(Box::new(Gated { k: self.k.clone(), gate: self.gate.clone() }))
        }
    }

    fn target(cfg: &str, scope: Option<Vec<usize>>) -> Target {
        let c = crate::config::parse(cfg, "t").unwrap();
        Target { desired: reconcile::desired_shared(&c), drain: Duration::ZERO, timeouts: c.ipvs.timeouts, scope }
    }

    fn pass(tx: &mpsc::Sender<Job>, t: Target, mode: Mode) -> oneshot::Receiver<PassReport> {
        let (rtx, rrx) = oneshot::channel();
        tx.send(Job::Reconcile { target: t, mode, reply: rtx }).unwrap();
        rrx
    }

    const A: &str =
        "[[services]]\naddress = \"192.0.2.1:80\"\n[[services.reals]]\naddress = \"10.0.0.1\"\nweight = 1\n";

    #[test]
    fn a_change_during_a_dump_is_not_lost_or_repeated() {
        let sim = SharedSim::new();
        let (go, gate) = mpsc::channel();
        let k = Gated { k: sim.clone(), gate: Arc::new(std::sync::Mutex::new(gate)) };
        let tx = start(Box::new(k));
        // First pass: full read (released at once), then programs A.
        go.send(()).unwrap();
        let r = pass(&tx, target(A, None), Mode::Verify).blocking_recv().unwrap();
        assert_eq!(r.applied_count, 2, "{r:?}");
        // A verify pass starts and its read blocks...
        let verify = pass(&tx, target(A, None), Mode::Verify);
        std::thread::sleep(Duration::from_millis(100));
        // ... while an edit goes through the control thread at once.
        let b = A.replace("weight = 1", "weight = 5");
        let r = pass(&tx, target(&b, Some(vec![0])), Mode::Fast).blocking_recv().unwrap();
        assert_eq!(r.applied_count, 1, "the edit ran while the dump was in flight: {r:?}");
        let changes = sim.0.lock().unwrap().changes;
        // The dump finishes (it may or may not have seen the edit).
        go.send(()).unwrap();
        let r = verify.blocking_recv().unwrap();
        assert_eq!(r.error, None);
        // The verify pass repairs towards the newest config and changes nothing.
        assert_eq!(r.applied_count, 0, "{r:?}");
        assert_eq!(sim.0.lock().unwrap().changes, changes);
        assert_eq!(sim.0.lock().unwrap().table.services[0].1[0].dest.weight, 5);
        // And the next pass agrees.
        go.send(()).unwrap();
        let r = pass(&tx, target(&b, None), Mode::Verify).blocking_recv().unwrap();
        assert_eq!(r.applied_count, 0, "{r:?}");
    }

    /// `n` services (more than [`FULL_DUMP_MAX`]: the windowed reads), the
    /// first one's scheduler `sched`.
    fn many(n: usize, sched: &str) -> String {
        let mut s = String::from("[ipvs]\ndrain_timeout = 0\n");
        for i in 0..n {
            let sc = if i == 0 { sched } else { "wrr" };
            s.push_str(&format!(
                "[[services]]\naddress = \"172.16.{}.{}:80\"\nscheduler = \"{sc}\"\n[[services.reals]]\naddress = \"10.0.0.1\"\n",
                i / 250,
                i % 250 + 1
            ));
        }
        s
    }

    /// An out-of-band change straight into the simulated kernel.
    fn out_of_band(sim: &SharedSim, op: Op) {
        let mut k = sim.0.lock().unwrap();
        assert_eq!(reconcile::simulate(&mut k.table, &[op]), vec![Ok(())]);
    }

    fn service(sim: &SharedSim, key: &ServiceKey) -> Option<(ipvs::Service, usize)> {
        let k = sim.0.lock().unwrap();
        k.table.services.iter().find(|(s, _)| s.key == *key).map(|(s, d)| (s.clone(), d.len()))
    }

    #[test]
    fn windowed_reads_repair_out_of_band_edits_even_of_what_lbd_just_changed() {
        let n = FULL_DUMP_MAX + 100;
        let sim = SharedSim::new();
        let tx = start(Box::new(sim.clone()));
        let verify = |t: Target| pass(&tx, t, Mode::Verify).blocking_recv().unwrap();
        let a = target(&many(n, "rr"), None);
        assert_eq!(verify(a.clone()).applied_count, 2 * n);
        // Two passes: the view and the reader have seen everything.
        assert_eq!(verify(a.clone()).applied_count, 0);
        assert_eq!(verify(a.clone()).applied_count, 0);
        let first = a.desired[0].svc.key;
        let last = a.desired[n - 1].svc.key;

        // A service deleted out of band is back after one pass, with its real.
        out_of_band(&sim, Op::DelService(last));
        let r = verify(a.clone());
        assert_eq!((r.error.as_deref(), r.applied_count), (None, 2), "{r:?}");
        assert_eq!(service(&sim, &last).map(|(_, d)| d), Some(1));

        // A scheduler edited out of band is set back.
        let mut edited = a.desired[0].svc.clone();
        edited.sched = "lc".into();
        out_of_band(&sim, Op::SetService(edited));
        let r = verify(a.clone());
        assert_eq!(r.applied_count, 1, "{r:?}");
        assert_eq!(service(&sim, &first).unwrap().0.sched, "rr");

        // lbd edits the first service (an apply's fast pass)...
        let b = target(&many(n, "wlc"), None);
        let (rtx, rrx) = oneshot::channel();
        tx.send(Job::Reconcile { target: b.clone(), mode: Mode::Fast, reply: rtx }).unwrap();
        assert_eq!(rrx.blocking_recv().unwrap().applied_count, 1);
        // ... and someone sets it back to what the reader saw last: the
        // kernel now matches the reader's memory but not the view.
        let mut back = b.desired[0].svc.clone();
        back.sched = "rr".into();
        out_of_band(&sim, Op::SetService(back));
        let r = verify(b.clone());
        assert_eq!(r.applied_count, 1, "{r:?}");
        assert_eq!(service(&sim, &first).unwrap().0.sched, "wlc");

        // lbd adds a service; it is deleted out of band before the next read.
        let c = target(&many(n + 1, "wlc"), None);
        let (rtx, rrx) = oneshot::channel();
        tx.send(Job::Reconcile { target: c.clone(), mode: Mode::Fast, reply: rtx }).unwrap();
        assert_eq!(rrx.blocking_recv().unwrap().applied_count, 2);
        let added = c.desired[n].svc.key;
        out_of_band(&sim, Op::DelService(added));
        let r = verify(c.clone());
        assert_eq!(r.applied_count, 2, "{r:?}");
        assert_eq!(service(&sim, &added).map(|(_, d)| d), Some(1));

        // A flush: everything comes back, and then nothing changes.
        sim.0.lock().unwrap().table.services.clear();
        assert_eq!(verify(c.clone()).applied_count, 2 * (n + 1));
        let changes = sim.0.lock().unwrap().changes;
        for _ in 0..3 {
            assert_eq!(verify(c.clone()).applied_count, 0);
        }
        assert_eq!(sim.0.lock().unwrap().changes, changes);
    }

    #[test]
    fn windowed_reads_reach_every_real_server_list() {
        let n = FULL_DUMP_MAX + 1500;
        let sim = SharedSim::new();
        let tx = start(Box::new(sim.clone()));
        let verify = |t: Target| pass(&tx, t, Mode::Verify).blocking_recv().unwrap();
        let a = target(&many(n, "rr"), None);
        verify(a.clone());
        verify(a.clone());
        // A real deleted out of band from one service: the rotating window
        // gets to it within ceil(n / DEST_WINDOW) passes.
        let key = a.desired[n / 2].svc.key;
        let x = &a.desired[n / 2].dests[0];
        out_of_band(&sim, Op::DelDest(key, x.addr, x.port));
        let passes = n.div_ceil(DEST_WINDOW);
        let mut repaired = false;
        for _ in 0..passes {
            if verify(a.clone()).applied_count == 1 {
                repaired = true;
                break;
            }
        }
        assert!(repaired, "not repaired within {passes} passes");
        assert_eq!(service(&sim, &key).map(|(_, d)| d), Some(1));
    }
}
