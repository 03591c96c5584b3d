//! The health-check engine: every distinct check driven by one scheduler
//! task on the engine's own thread and single-threaded tokio runtime (so a
//! check never waits behind an apply or an IPVS dump, and an apply never
//! waits for a check). The scheduler keeps the checks' timers in a heap and
//! runs at most [`CONCURRENCY`] probes at once (bounded open sockets); it
//! drives each check's pure [`Machine`] and reports state changes through a
//! hook. Statuses (last result, reason, latency, transitions, achieved
//! period) are shared for the control socket.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::os::fd::{AsRawFd, RawFd};

use futures::future::{AbortHandle, AbortRegistration, Abortable};
use futures::stream::{FuturesUnordered, StreamExt};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use socket2::Socket;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::warn;

use super::config::{Check, Probe};
use super::fsm::{Action, Event, Health, Machine, Outcome};
use super::probe;

/// Probes in flight at most (each holds one socket).
pub const CONCURRENCY: usize = 768;

/// A state change of a check.
#[derive(Clone, Debug)]
pub struct Transition {
    /// Which check.
    pub check: Check,
    /// Before.
    pub from: Health,
    /// After.
    pub to: Health,
    /// The attempt that decided it.
    pub reason: String,
    /// Its latency.
    pub latency_ms: f64,
}

/// Receives the transitions.
pub type Hook = Arc<dyn Fn(Transition) + Send + Sync>;

/// What `checks` shows of one check (the console reads it back).
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Status {
    /// Current verdict.
    pub health: Health,
    /// Unix time of the last change (0: none yet).
    pub since: u64,
    /// The last attempt passed.
    pub last_ok: Option<bool>,
    /// Its reason.
    pub last_reason: String,
    /// Its latency, ms.
    pub last_latency_ms: f64,
    /// Unix time of the last attempt.
    pub last_at: u64,
    /// State changes since the check started.
    pub transitions: u64,
    /// Attempts.
    pub attempts: u64,
    /// Failed attempts.
    pub failures: u64,
    /// Achieved period between round starts (moving average), ms.
    pub period_ms: f64,
}

/// Engine-wide counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Attempts run.
    pub attempts: AtomicU64,
    /// Rounds started.
    pub rounds: AtomicU64,
    /// Attempts waiting for a concurrency slot right now.
    pub waiting: AtomicU64,
}

type Statuses = Arc<Mutex<HashMap<Check, Arc<Mutex<Status>>>>>;

enum Cmd {
    Apply(Vec<(Check, Health)>),
}

struct Running {
    tx: mpsc::UnboundedSender<Cmd>,
}

/// The daemon's handle on the engine; its thread starts with the first
/// config that has checks.
#[derive(Clone)]
pub struct Engine {
    running: Arc<Mutex<Option<Running>>>,
    statuses: Statuses,
    counters: Arc<Counters>,
    hook: Hook,
}

fn unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    /// A handle; nothing runs yet.
    pub fn new(hook: Hook) -> Self {
        Engine {
            running: Arc::new(Mutex::new(None)),
            statuses: Arc::new(Mutex::new(HashMap::new())),
            counters: Arc::new(Counters::default()),
            hook,
        }
    }

    /// Runs exactly these checks (with these current verdicts): new ones
    /// start, gone ones stop, the others keep running undisturbed.
    pub fn apply(&self, checks: Vec<(Check, Health)>) {
        let mut g = lock(&self.running);
        if let Some(r) = g.as_ref() {
            let _ = r.tx.send(Cmd::Apply(checks));
            return;
        }
        if checks.is_empty() {
            return;
        }
        raise_nofile();
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(Cmd::Apply(checks));
        let (statuses, counters, hook) = (self.statuses.clone(), self.counters.clone(), self.hook.clone());
        let spawned = std::thread::Builder::new().name("health".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    warn!("health checks: cannot start their runtime: {e}");
                    return;
                }
            };
            // A spawned task, not the block_on future: waking that one writes
            // the runtime's eventfd every time (once per probe).
            rt.block_on(async move {
                let _ = tokio::spawn(run(rx, statuses, counters, hook)).await;
            });
        });
        if let Err(e) = spawned {
            warn!("health checks: cannot start their thread: {e}");
            return;
        }
        *g = Some(Running { tx });
    }

    /// The status of every running check.
    pub fn statuses(&self) -> HashMap<Check, Status> {
        lock(&self.statuses).iter().map(|(c, s)| (c.clone(), lock(s).clone())).collect()
    }

    /// The engine-wide counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

/// Lifts the soft open-files limit to the hard one: a thousand probes in
/// flight need a thousand sockets.
fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// One running check.
struct Slot {
    check: Arc<Check>,
    m: Machine,
    st: Arc<Mutex<Status>>,
    /// Tells this check's timers and results from those of a check that
    /// held the slot before.
    tag: u32,
    armed: Option<Duration>,
    /// The probe in flight: when it started, its deadline, how to cut it.
    probe: Option<(Duration, Duration, Cut)>,
    rounds: u64,
    last_round: Option<Duration>,
    last_latency: f64,
}

/// All checks in one task: a heap of timers (one `Sleep` for the earliest),
/// TCP connects in flight on one epoll set, the other probes in one
/// `FuturesUnordered`, the attempts over the concurrency bound in a queue. A check costs no task, no timer of the
/// runtime and no wakeup of its own between rounds; a result that changes
/// nothing updates its status under one uncontended lock.
struct Sched {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    index: HashMap<Check, usize>,
    /// (due, slot, tag, kind): a check's timer or a probe's deadline.
    timers: BinaryHeap<Reverse<(Duration, u32, u32, Kind)>>,
    waiting: VecDeque<(u32, u32)>,
    next_tag: u32,
    /// TCP checks' connects, waited for here rather than by futures (a TCP
    /// check is the hot path: under TCG the future, its waker and tokio's
    /// registration cost several times the connect itself); `None` runs
    /// them as futures too.
    ep: Option<Epoll>,
    /// Connects on `ep` in flight.
    tcp: usize,
    /// Sockets kept between TCP checks' attempts.
    pool: Pool,
    statuses: Statuses,
    counters: Arc<Counters>,
    hook: Hook,
}

/// How a probe in flight ends early.
enum Cut {
    /// A probe future: abort it (it ends with `None` at its next poll).
    Future(AbortHandle),
    /// A TCP connect on the scheduler's epoll set: its socket (closing it
    /// also takes it out of the set).
    Tcp(Socket),
    /// A TCP connect on a pooled socket: its index in the pool (cut by
    /// disconnecting it).
    Pooled(usize),
}

/// Epoll data of a pooled socket: this bit and its index (a check's own
/// socket carries its slot and tag, and slots stay far below 2^31).
const POOLED: u64 = 1 << 63;

/// The TCP checks' sockets, kept from one attempt to the next (a check
/// without `bindto`, mark or VIP route): each is registered on the epoll
/// set once (edge-triggered) and, between attempts, disconnected (a connect
/// to AF_UNSPEC: an RST, as a close with SO_LINGER 0 sends) rather than
/// closed. An attempt then costs the kernel a connect and its verdict, not
/// a socket, a descriptor, an epoll registration and a close, each of
/// which costs more than a syscall under emulation. The pool grows to the
/// most connects in flight at once (at most [`CONCURRENCY`]).
#[derive(Default)]
struct Pool {
    socks: Vec<Socket>,
    /// The attempt each socket serves (slot, tag); `None`: idle.
    owner: Vec<Option<(u32, u32)>>,
    /// Each socket's family: IPv6.
    v6: Vec<bool>,
    /// Idle sockets, by family (IPv4, IPv6).
    idle: [Vec<usize>; 2],
}

impl Pool {
    /// An idle socket of this family, registered on `ep` (made when none is idle).
    fn take(&mut self, ep: &Epoll, v6: bool) -> std::io::Result<usize> {
        if let Some(k) = self.idle[usize::from(v6)].pop() {
            return Ok(k);
        }
        let s = probe::tcp_socket(v6)?;
        let k = self.socks.len();
        ep.add(&s, EpollEvent::new(EpollFlags::EPOLLOUT | EpollFlags::EPOLLET, POOLED | k as u64))?;
        self.socks.push(s);
        self.owner.push(None);
        self.v6.push(v6);
        Ok(k)
    }

    /// Socket `k` is idle again (disconnected).
    fn put(&mut self, k: usize) {
        self.owner[k] = None;
        self.idle[usize::from(self.v6[k])].push(k);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Timer,
    Deadline,
}

/// Where a check's rounds fall in its period: the gap between its first and
/// second round, from a hash of what it checks (deterministic: the same
/// config spreads its checks the same way on every start). Phases are
/// multiples of [`QUANTUM_MS`]: 2,000 checks of 1 s connect in 50 batches
/// of about 40 a second rather than in one burst of 2,000, and the
/// scheduler wakes for their timers 50 times a second rather than 2,000
/// (each wakeup and each lone connect costs the kernel more than a batch).
fn phase(c: &Check) -> Duration {
    // `new()` has fixed keys: the same on every run of this build.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    c.hash(&mut h);
    let period = c.timing.delay_loop_ms.max(1);
    let slots = (period / QUANTUM_MS).max(1);
    Duration::from_millis((1 + h.finish() % slots) * period / slots)
}

/// The granularity of the checks' phases, ms.
const QUANTUM_MS: u64 = 20;

fn outcome(r: Result<probe::Reason, probe::Reason>, latency: Duration) -> Outcome {
    match r {
        Ok(reason) => Outcome::ok(reason, latency),
        Err(reason) => Outcome::fail(reason, latency),
    }
}

/// A probe's end: its check, and its outcome (`None`: cut at its deadline).
type Done = (u32, u32, Option<Outcome>);

async fn attempt(i: u32, tag: u32, check: Arc<Check>, cut: AbortRegistration) -> Done {
    let o = Abortable::new(probe::unbounded(&check), cut).await.ok();
    (i, tag, o)
}

/// An epoll set's descriptor, watched by tokio's reactor (owned by its
/// `Epoll`, which outlives the watch).
struct RawEp(RawFd);

impl AsRawFd for RawEp {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

fn register_raw(fd: RawFd) -> std::io::Result<tokio::io::unix::AsyncFd<RawEp>> {
    // SAFETY: `fd` is the open descriptor of the scheduler's epoll set,
    // which is closed only after this registration is dropped (`run`
    // declares the set first, so drops it last).
    #[allow(unsafe_code)]
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(RawEp(fd), tokio::io::Interest::READABLE)
            .map_err(std::io::Error::from)
    }
}

/// One attempt of a check, with the slot and tag its end is reported to.
type Attempt = (u32, u32, Arc<Check>, AbortRegistration);

impl Sched {
    fn slot(&mut self, i: u32, tag: u32) -> Option<&mut Slot> {
        self.slots.get_mut(i as usize)?.as_mut().filter(|s| s.tag == tag)
    }

    fn apply(&mut self, checks: Vec<(Check, Health)>, now: Duration) {
        let want: HashMap<Check, Health> = checks.into_iter().collect();
        let gone: Vec<Check> = self.index.keys().filter(|c| !want.contains_key(*c)).cloned().collect();
        for c in gone {
            if let Some(i) = self.index.remove(&c) {
                // Its probe in flight ends now: an orphan connecting to a
                // silent address would hold a concurrency slot for minutes.
                if let Some((_, _, cut)) = self.slots[i].take().and_then(|s| s.probe) {
                    self.cut(cut);
                }
                self.free.push(i);
            }
        }
        lock(&self.statuses).retain(|c, _| want.contains_key(c));
        for (c, initial) in want {
            if self.index.contains_key(&c) {
                continue;
            }
            let st = Arc::new(Mutex::new(Status {
                health: initial,
                since: 0,
                last_ok: None,
                last_reason: String::new(),
                last_latency_ms: 0.0,
                last_at: 0,
                transitions: 0,
                attempts: 0,
                failures: 0,
                period_ms: 0.0,
            }));
            lock(&self.statuses).insert(c.clone(), st.clone());
            let mut h = std::collections::hash_map::DefaultHasher::new();
            c.hash(&mut h);
            unix().hash(&mut h);
            let m = Machine::new(c.timing, initial, h.finish()).with_phase(phase(&c));
            let tag = self.next_tag;
            self.next_tag = self.next_tag.wrapping_add(1);
            let slot = Slot {
                check: Arc::new(c.clone()),
                m,
                st,
                tag,
                armed: None,
                probe: None,
                rounds: 0,
                last_round: None,
                last_latency: 0.0,
            };
            let i = match self.free.pop() {
                Some(i) => {
                    self.slots[i] = Some(slot);
                    i
                }
                None => {
                    self.slots.push(Some(slot));
                    self.slots.len() - 1
                }
            };
            self.index.insert(c, i);
            let acts = self.slots[i].as_mut().map(|s| s.m.handle(now, Event::Start)).unwrap_or_default();
            self.act(i as u32, tag, acts, now);
        }
    }

    /// Carries out a machine's actions: timers go on the heap, probes in
    /// the waiting queue (started by the loop), changes to the status and
    /// the hook.
    fn act(&mut self, i: u32, tag: u32, acts: Vec<Action>, now: Duration) {
        let Some(s) = self.slots.get_mut(i as usize).and_then(Option::as_mut).filter(|s| s.tag == tag) else {
            return;
        };
        for a in acts {
            match a {
                Action::Arm(at) => {
                    s.armed = Some(at);
                    self.timers.push(Reverse((at, i, tag, Kind::Timer)));
                }
                Action::Probe => {
                    if s.m.rounds() != s.rounds {
                        s.rounds = s.m.rounds();
                        self.counters.rounds.fetch_add(1, Ordering::Relaxed);
                        if let Some(prev) = s.last_round {
                            let p = (now - prev).as_secs_f64() * 1000.0;
                            let mut st = lock(&s.st);
                            st.period_ms = if st.period_ms == 0.0 { p } else { st.period_ms * 0.8 + p * 0.2 };
                        }
                        s.last_round = Some(now);
                    }
                    self.waiting.push_back((i, tag));
                }
                Action::Change { from, to, reason } => {
                    {
                        let mut st = lock(&s.st);
                        st.health = to;
                        st.since = unix();
                        st.transitions += 1;
                    }
                    (self.hook)(Transition { check: (*s.check).clone(), from, to, reason, latency_ms: s.last_latency });
                }
            }
        }
    }

    /// Fires the timers due by `now` and cuts the probes past their deadline.
    fn fire(&mut self, now: Duration) {
        while let Some(&Reverse((at, i, tag, kind))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(s) = self.slot(i, tag) else { continue };
            match kind {
                Kind::Timer => {
                    if s.armed != Some(at) {
                        continue; // replaced by a later Arm
                    }
                    s.armed = None;
                    let acts = s.m.handle(now, Event::Timer);
                    self.act(i, tag, acts, now);
                }
                Kind::Deadline => match &s.probe {
                    Some((_, deadline, Cut::Future(cut))) if *deadline == at => cut.abort(),
                    Some((_, deadline, Cut::Tcp(_) | Cut::Pooled(_))) if *deadline == at => {
                        self.result((i, tag, None), now)
                    }
                    _ => {}
                },
            }
        }
    }

    fn cut(&mut self, cut: Cut) {
        match cut {
            Cut::Future(h) => h.abort(),
            Cut::Tcp(sock) => {
                self.tcp -= 1;
                drop(sock);
            }
            Cut::Pooled(k) => {
                self.tcp -= 1;
                let _ = probe::disconnect(&self.pool.socks[k]);
                self.pool.put(k);
            }
        }
    }

    /// Starts waiting attempts whose checks still run, their deadlines on
    /// the heap, while fewer than `room` are in flight: TCP connects on the
    /// epoll set, the others returned to be run as futures.
    fn start(&mut self, now: Duration, room: usize) -> Option<Attempt> {
        while self.tcp < room
            && let Some((i, tag)) = self.waiting.pop_front()
        {
            let ep = self.ep.as_ref();
            let Some(slot) = self.slots.get_mut(i as usize).and_then(Option::as_mut).filter(|s| s.tag == tag) else {
                continue;
            };
            let deadline = now + probe::limit(&slot.check);
            self.timers.push(Reverse((deadline, i, tag, Kind::Deadline)));
            if let Some(ep) = ep
                && probe::poolable(&slot.check)
            {
                let target = slot.check.target;
                let started = self.pool.take(ep, target.is_ipv6()).map_err(|e| Cow::Owned(probe::io_reason(&e)));
                let r = started.and_then(|k| match probe::tcp_connect(&self.pool.socks[k], target) {
                    Ok(()) => Ok(k),
                    Err(reason) => {
                        // Failed at once (unreachable): the socket never
                        // left CLOSE.
                        self.pool.put(k);
                        Err(reason)
                    }
                });
                match r {
                    Ok(k) => {
                        self.pool.owner[k] = Some((i, tag));
                        slot.probe = Some((now, deadline, Cut::Pooled(k)));
                        self.tcp += 1;
                    }
                    Err(reason) => {
                        slot.probe = Some((now, deadline, Cut::Future(AbortHandle::new_pair().0)));
                        self.finish(i, tag, Err(reason), now);
                    }
                }
                continue;
            }
            if let Some(ep) = ep
                && matches!(slot.check.probe, Probe::Tcp)
            {
                match probe::tcp_start(&slot.check) {
                    Ok(sock) => {
                        let ev = EpollEvent::new(EpollFlags::EPOLLOUT, u64::from(i) << 32 | u64::from(tag));
                        let added = ep.add(&sock, ev);
                        slot.probe = Some((now, deadline, Cut::Tcp(sock)));
                        self.tcp += 1;
                        if let Err(e) = added {
                            self.finish(i, tag, Err(probe::io_reason(&e.into()).into()), now);
                        }
                    }
                    Err(reason) => {
                        // Failed at once (no socket, bind, unreachable).
                        slot.probe = Some((now, deadline, Cut::Future(AbortHandle::new_pair().0)));
                        self.finish(i, tag, Err(reason), now);
                    }
                }
                continue;
            }
            let (cut, reg) = AbortHandle::new_pair();
            slot.probe = Some((now, deadline, Cut::Future(cut)));
            return Some((i, tag, slot.check.clone(), reg));
        }
        None
    }

    /// Ends the attempt in flight of slot `i` with this verdict.
    fn finish(&mut self, i: u32, tag: u32, r: Result<probe::Reason, probe::Reason>, now: Duration) {
        let Some(s) = self.slot(i, tag) else { return };
        let Some((started, _, cut)) = s.probe.take() else { return };
        self.cut(cut);
        self.counters.attempts.fetch_add(1, Ordering::Relaxed);
        self.record(i, tag, outcome(r, now.saturating_sub(started)), now);
    }

    /// Takes the TCP connects that are done off the epoll set and judges
    /// them; true when the batch was full (more may be ready).
    fn connects(&mut self, now: Duration) -> bool {
        let Some(ep) = &self.ep else { return false };
        let mut evs = [EpollEvent::empty(); 256];
        let n = ep.wait(&mut evs, EpollTimeout::ZERO).unwrap_or(0);
        for e in &evs[..n] {
            if e.data() & POOLED != 0 {
                self.pooled((e.data() & !POOLED) as usize, e.events(), now);
                continue;
            }
            let (i, tag) = ((e.data() >> 32) as u32, e.data() as u32);
            let Some(s) = self.slot(i, tag) else { continue };
            if !matches!(s.probe, Some((_, _, Cut::Tcp(_)))) {
                continue;
            }
            let Some((started, _, Cut::Tcp(sock))) = s.probe.take() else { continue };
            self.tcp -= 1;
            let r = probe::tcp_finish(sock, e.events().intersects(EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP));
            self.counters.attempts.fetch_add(1, Ordering::Relaxed);
            self.record(i, tag, outcome(r, now.saturating_sub(started)), now);
        }
        n == evs.len()
    }

    /// A readiness event of pooled socket `k`: the verdict of the attempt it
    /// serves, if that is done (events of an idle socket are its own
    /// disconnect's, and ignored).
    fn pooled(&mut self, k: usize, ev: EpollFlags, now: Duration) {
        let Some(&Some((i, tag))) = self.pool.owner.get(k) else { return };
        let Some(s) = self.slots.get_mut(i as usize).and_then(Option::as_mut).filter(|s| s.tag == tag) else {
            return;
        };
        if !matches!(s.probe, Some((_, _, Cut::Pooled(x))) if x == k) {
            return;
        }
        let Some(r) = probe::tcp_verdict(
            &self.pool.socks[k],
            s.check.target,
            ev.contains(EpollFlags::EPOLLOUT),
            ev.contains(EpollFlags::EPOLLHUP),
        ) else {
            return;
        };
        let Some((started, _, _)) = s.probe.take() else { return };
        self.pool.put(k);
        self.tcp -= 1;
        self.counters.attempts.fetch_add(1, Ordering::Relaxed);
        self.record(i, tag, outcome(r, now.saturating_sub(started)), now);
    }

    fn result(&mut self, (i, tag, o): Done, now: Duration) {
        self.counters.attempts.fetch_add(1, Ordering::Relaxed);
        let Some(s) = self.slot(i, tag) else { return };
        let Some((started, _, cut)) = s.probe.take() else { return };
        let limit = probe::limit(&s.check);
        match cut {
            // A connect cut at its deadline.
            Cut::Tcp(sock) => {
                drop(sock);
                self.tcp -= 1;
            }
            Cut::Pooled(k) => {
                let _ = probe::disconnect(&self.pool.socks[k]);
                self.pool.put(k);
                self.tcp -= 1;
            }
            Cut::Future(_) => {}
        }
        let o = o.unwrap_or_else(|| probe::timed_out(limit, now.saturating_sub(started)));
        self.record(i, tag, o, now);
    }

    /// Counts an attempt's outcome and feeds it to its check's machine.
    fn record(&mut self, i: u32, tag: u32, o: Outcome, now: Duration) {
        let Some(s) = self.slot(i, tag) else { return };
        s.last_latency = o.latency.as_secs_f64() * 1000.0;
        {
            let mut st = lock(&s.st);
            st.attempts += 1;
            if !o.ok {
                st.failures += 1;
            }
            st.last_ok = Some(o.ok);
            if st.last_reason != *o.reason {
                st.last_reason.clear();
                st.last_reason.push_str(&o.reason);
            }
            st.last_latency_ms = s.last_latency;
            st.last_at = unix();
        }
        let acts = s.m.handle(now, Event::Result(o));
        self.act(i, tag, acts, now);
    }
}

impl Sched {
    fn new(statuses: Statuses, counters: Arc<Counters>, hook: Hook) -> Self {
        Sched {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            timers: BinaryHeap::new(),
            waiting: VecDeque::new(),
            next_tag: 0,
            ep: None,
            tcp: 0,
            pool: Pool::default(),
            statuses,
            counters,
            hook,
        }
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Cmd>, statuses: Statuses, counters: Arc<Counters>, hook: Hook) {
    let epoch = Instant::now();
    let mut s = Sched::new(statuses, counters, hook);
    // The TCP connects' epoll set, itself watched by tokio's reactor.
    let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).ok();
    let watch = ep.as_ref().and_then(|e| register_raw(e.0.as_raw_fd()).ok());
    if watch.is_some() {
        s.ep = ep;
    } else {
        warn!("health checks: no epoll set of their own; TCP checks run as futures");
    }
    let mut probes = FuturesUnordered::new();
    let sleep = tokio::time::sleep_until(epoch);
    tokio::pin!(sleep);
    let mut sleeping: Option<Duration> = None;
    loop {
        let now = epoch.elapsed();
        s.fire(now);
        while let Some((i, tag, check, reg)) = s.start(now, CONCURRENCY - probes.len().min(CONCURRENCY)) {
            probes.push(attempt(i, tag, check, reg));
        }
        s.counters.waiting.store(s.waiting.len() as u64, Ordering::Relaxed);
        let next = s.timers.peek().map(|r| r.0.0);
        if next != sleeping {
            if let Some(at) = next {
                sleep.as_mut().reset(epoch + at);
            }
            sleeping = next;
        }
        tokio::select! {
            biased;
            cmd = rx.recv() => match cmd {
                Some(Cmd::Apply(checks)) => s.apply(checks, epoch.elapsed()),
                None => break,
            },
            Some(done) = probes.next(), if !probes.is_empty() => s.result(done, epoch.elapsed()),
            ready = async { watch.as_ref()?.readable().await.ok() }, if watch.is_some() && s.tcp > 0 => {
                if let Some(mut g) = ready
                    && !s.connects(epoch.elapsed())
                {
                    g.clear_ready();
                }
            }
            () = &mut sleep, if sleeping.is_some() => sleeping = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::config::Probe;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn check(i: usize, delay_ms: u64) -> Check {
        let mut c = Check {
            target: format!("10.200.{}.{}:80", i / 250, i % 250 + 1).parse().unwrap(),
            probe: Probe::Tcp,
            timing: Default::default(),
            bind: None,
            mark: 0,
            via_vip_to: None,
        };
        c.timing.delay_loop_ms = delay_ms;
        c
    }

    fn sched() -> (Sched, Arc<Mutex<Vec<Transition>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let hook: Hook = Arc::new(move |t| lock(&s2).push(t));
        (Sched::new(Default::default(), Default::default(), hook), seen)
    }

    /// Runs every probe as passing after 1 ms until `until`, returning the
    /// start times of the rounds after the first, per check.
    fn simulate(s: &mut Sched, until: Duration) -> Vec<Duration> {
        let mut starts = Vec::new();
        let mut now = Duration::ZERO;
        while now <= until {
            s.fire(now);
            let mut done = Vec::new();
            while let Some((i, tag, _, _)) = s.start(now, CONCURRENCY) {
                if now > Duration::ZERO {
                    starts.push(now);
                }
                done.push((i, tag));
            }
            for (i, tag) in done {
                s.result((i, tag, Some(Outcome::ok("connected", MS(1)))), now + MS(1));
            }
            now += MS(1);
        }
        starts
    }

    #[test]
    fn rounds_are_spread_over_the_period_deterministically() {
        let (mut s, _) = sched();
        let checks: Vec<(Check, Health)> = (0..2000).map(|i| (check(i, 1000), Health::Up)).collect();
        s.apply(checks.clone(), Duration::ZERO);
        s.fire(Duration::ZERO);
        assert_eq!(s.waiting.len(), 2000, "every check's first round runs at once");
        let starts = simulate(&mut s, MS(2000));
        // Each check once in (0, 1000] and once a period later.
        assert_eq!(starts.len(), 4000, "{}", starts.len());
        let mut per_100ms = [0u32; 10];
        for t in starts.iter().filter(|t| **t <= MS(1000)) {
            per_100ms[((t.as_millis() - 1) / 100) as usize] += 1;
        }
        for n in per_100ms {
            assert!((120..=280).contains(&n), "spread unevenly: {per_100ms:?}");
        }
        // In 50 batches of 20 ms; the same phases on another start.
        assert!(checks.iter().all(|(c, _)| phase(c).as_millis().is_multiple_of(20)));
        for i in [0, 7, 1999] {
            assert_eq!(phase(&checks[i].0), phase(&check(i, 1000)));
            assert!(phase(&checks[i].0) > Duration::ZERO && phase(&checks[i].0) <= MS(1000));
        }
    }

    #[test]
    fn a_check_removed_mid_probe_is_cut_and_its_result_ignored() {
        let (mut s, seen) = sched();
        s.apply(vec![(check(1, 1000), Health::Unknown), (check(2, 1000), Health::Unknown)], Duration::ZERO);
        s.fire(Duration::ZERO);
        let a = s.start(Duration::ZERO, CONCURRENCY).unwrap();
        let b = s.start(Duration::ZERO, CONCURRENCY).unwrap();
        let (gone, kept) =
            if s.slots[a.0 as usize].as_ref().unwrap().check.target == check(1, 1000).target { (a, b) } else { (b, a) };
        s.apply(vec![(check(2, 1000), Health::Unknown)], MS(10));
        // The removed check's probe ends at its next poll, without running.
        let fut = attempt(gone.0, gone.1, gone.2, gone.3);
        let done = futures::executor::block_on(fut);
        assert_eq!(done.2, None, "cut");
        s.result(done, MS(10));
        assert!(lock(&seen).is_empty(), "no verdict for a removed check");
        assert_eq!(s.index.len(), 1);
        assert_eq!(lock(&s.statuses).len(), 1);
        // Its slot is reused by a new check, which ignores the old deadline.
        s.apply(vec![(check(2, 1000), Health::Unknown), (check(3, 1000), Health::Unknown)], MS(20));
        s.fire(MS(1000));
        s.result((kept.0, kept.1, Some(Outcome::ok("connected", MS(1)))), MS(30));
        let t = lock(&seen);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].check.target, check(2, 1000).target);
        assert_eq!(t[0].to, Health::Up);
    }

    #[test]
    fn pooled_sockets_serve_round_after_round_and_reset_the_peer() {
        use std::io::Read;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let at = |a: std::net::SocketAddr| Check { target: a, ..check(0, 1000) };
        let (mut s, _) = sched();
        s.ep = Some(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap());
        s.apply(vec![(at(open), Health::Unknown), (at(closed), Health::Unknown)], Duration::ZERO);
        let attempts = |s: &Sched, a| {
            let st = s.statuses.lock().unwrap();
            let v = st.get(&at(a)).unwrap().lock().unwrap();
            (v.attempts, v.failures, v.last_reason.clone())
        };
        let mut now = Duration::ZERO;
        while attempts(&s, open).0 < 4 || attempts(&s, closed).0 < 4 {
            s.fire(now);
            assert!(s.start(now, CONCURRENCY).is_none(), "no future for a TCP check");
            for _ in 0..200 {
                s.connects(now);
                if s.tcp == 0 {
                    break;
                }
                std::thread::sleep(MS(5));
            }
            assert_eq!(s.tcp, 0, "every connect judged");
            now = s.timers.iter().filter(|r| r.0.3 == Kind::Timer).map(|r| r.0.0).min().unwrap();
        }
        // Round after round on the same two sockets (a disconnected socket
        // keeps its last error: a passing round must not read it).
        assert_eq!(s.pool.socks.len(), 2);
        let (n, failed, reason) = attempts(&s, open);
        assert_eq!((failed, reason.as_str()), (0, "connected"), "{n} attempts");
        let (n, failed, reason) = attempts(&s, closed);
        assert_eq!((failed, reason.as_str()), (n, "connection refused"));
        // Each accepted connection was reset (as SO_LINGER 0 does), not closed.
        l.set_nonblocking(true).unwrap();
        let mut resets = 0;
        while let Ok((mut c, _)) = l.accept() {
            c.set_nonblocking(false).unwrap();
            let e = c.read(&mut [0u8; 16]).expect_err("reset, not end of stream");
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
            resets += 1;
        }
        assert!(resets >= 4, "{resets}");
    }

    #[test]
    fn tcp_checks_connect_on_the_epoll_set_and_are_cut_at_their_deadline() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let at = |a: std::net::SocketAddr| Check { target: a, ..check(0, 1000) };
        let (mut s, seen) = sched();
        s.ep = Some(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap());
        s.apply(vec![(at(open), Health::Unknown), (at(closed), Health::Unknown)], Duration::ZERO);
        s.fire(Duration::ZERO);
        assert!(s.start(Duration::ZERO, CONCURRENCY).is_none(), "no future for a TCP check");
        assert_eq!(s.tcp, 2);
        for _ in 0..200 {
            s.connects(MS(1));
            if s.tcp == 0 {
                break;
            }
            std::thread::sleep(MS(5));
        }
        assert_eq!(s.tcp, 0);
        {
            let t = lock(&seen);
            let verdict =
                |a| t.iter().find(|t| t.check.target == a).map(|t| (t.to, t.reason.clone())).expect("a verdict");
            assert_eq!(verdict(open), (Health::Up, "connected".to_string()));
            assert_eq!(verdict(closed), (Health::Down, "connection refused".to_string()));
        }
        // The next round of the open one, never looked at: cut at its deadline.
        let next = s.timers.iter().filter(|r| r.0.3 == Kind::Timer).map(|r| r.0.0).max().unwrap();
        s.fire(next);
        assert!(s.start(next, CONCURRENCY).is_none());
        assert!(s.tcp >= 1);
        s.fire(next + probe::limit(&at(open)));
        assert_eq!(s.tcp, 0, "sockets closed at the deadline");
        let st = s.statuses.lock().unwrap();
        assert!(st.values().any(|v| v.lock().unwrap().last_reason == "timeout after 3 s"));
    }
}
