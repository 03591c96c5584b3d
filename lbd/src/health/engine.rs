//! The health-check engine: every distinct check driven by one scheduler
//! task on the engine's own thread and single-threaded tokio runtime (so a
//! check never waits behind an apply or an IPVS dump, and an apply never
//! waits for a check). The scheduler keeps the checks' timers in a heap and
//! runs at most [`CONCURRENCY`] probes at once (bounded open sockets); it
//! drives each check's pure [`Machine`] and reports state changes through a
//! hook. Statuses (last result, reason, latency, transitions, achieved
//! period) are shared for the control socket.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::{AbortHandle, AbortRegistration, Abortable};
use futures::stream::{FuturesUnordered, StreamExt};

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::warn;

use super::config::Check;
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
    probe: Option<(Duration, Duration, AbortHandle)>,
    rounds: u64,
    last_round: Option<Duration>,
    last_latency: f64,
}

/// All checks in one task: a heap of timers (one `Sleep` for the earliest),
/// the probes in flight in one `FuturesUnordered`, the attempts over the
/// concurrency bound in a queue. A check costs no task, no timer of the
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
    statuses: Statuses,
    counters: Arc<Counters>,
    hook: Hook,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Timer,
    Deadline,
}

/// A probe's end: its check, and its outcome (`None`: cut at its deadline).
type Done = (u32, u32, Option<Outcome>);

async fn attempt(i: u32, tag: u32, check: Arc<Check>, cut: AbortRegistration) -> Done {
    let o = Abortable::new(probe::unbounded(&check), cut).await.ok();
    (i, tag, o)
}

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
                    cut.abort();
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
            let m = Machine::new(c.timing, initial, h.finish());
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
                Kind::Deadline => {
                    if let Some((_, deadline, cut)) = &s.probe
                        && *deadline == at
                    {
                        cut.abort(); // its future ends with `None` at its next poll
                    }
                }
            }
        }
    }

    fn result(&mut self, (i, tag, o): Done, now: Duration) {
        self.counters.attempts.fetch_add(1, Ordering::Relaxed);
        let Some(s) = self.slot(i, tag) else { return };
        let Some((started, _, _)) = s.probe.take() else { return };
        let o = o.unwrap_or_else(|| probe::timed_out(probe::limit(&s.check), now.saturating_sub(started)));
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

async fn run(mut rx: mpsc::UnboundedReceiver<Cmd>, statuses: Statuses, counters: Arc<Counters>, hook: Hook) {
    let epoch = Instant::now();
    let mut s = Sched {
        slots: Vec::new(),
        free: Vec::new(),
        index: HashMap::new(),
        timers: BinaryHeap::new(),
        waiting: VecDeque::new(),
        next_tag: 0,
        statuses,
        counters,
        hook,
    };
    let mut probes = FuturesUnordered::new();
    let sleep = tokio::time::sleep_until(epoch);
    tokio::pin!(sleep);
    let mut sleeping: Option<Duration> = None;
    loop {
        let now = epoch.elapsed();
        s.fire(now);
        while probes.len() < CONCURRENCY
            && let Some((i, tag)) = s.waiting.pop_front()
        {
            if let Some(slot) = s.slot(i, tag) {
                let (cut, reg) = AbortHandle::new_pair();
                let deadline = now + probe::limit(&slot.check);
                slot.probe = Some((now, deadline, cut));
                probes.push(attempt(i, tag, slot.check.clone(), reg));
                s.timers.push(Reverse((deadline, i, tag, Kind::Deadline)));
            }
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
            () = &mut sleep, if sleeping.is_some() => sleeping = None,
        }
    }
}
