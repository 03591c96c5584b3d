//! The health-check engine: every distinct check as a task on the engine's
//! own thread and single-threaded tokio runtime (so a check never waits
//! behind an apply or an IPVS dump, and an apply never waits for a check).
//! Probes run under a semaphore (bounded concurrency, bounded open sockets);
//! each task drives its pure [`Machine`] and reports state changes through a
//! hook. Statuses (last result, reason, latency, transitions, achieved
//! period) are shared for the control socket.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tracing::warn;

use super::config::Check;
use super::fsm::{Action, Event, Health, Machine};
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

/// What `checks` shows of one check.
#[derive(Clone, Debug, Serialize)]
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
            rt.block_on(run(rx, statuses, counters, hook));
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

async fn run(mut rx: mpsc::UnboundedReceiver<Cmd>, statuses: Statuses, counters: Arc<Counters>, hook: Hook) {
    let sem = Arc::new(Semaphore::new(CONCURRENCY));
    let epoch = Instant::now();
    let mut tasks: HashMap<Check, tokio::task::JoinHandle<()>> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Cmd::Apply(checks) => {
                let want: HashMap<Check, Health> = checks.into_iter().collect();
                tasks.retain(|c, h| {
                    let keep = want.contains_key(c);
                    if !keep {
                        h.abort();
                    }
                    keep
                });
                lock(&statuses).retain(|c, _| want.contains_key(c));
                for (c, initial) in want {
                    if tasks.contains_key(&c) {
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
                    lock(&statuses).insert(c.clone(), st.clone());
                    let t = CheckTask {
                        check: Arc::new(c.clone()),
                        st,
                        sem: sem.clone(),
                        hook: hook.clone(),
                        counters: counters.clone(),
                        epoch,
                    };
                    tasks.insert(c, tokio::spawn(t.run(initial)));
                }
            }
        }
    }
    for (_, h) in tasks {
        h.abort();
    }
}

struct CheckTask {
    check: Arc<Check>,
    st: Arc<Mutex<Status>>,
    sem: Arc<Semaphore>,
    hook: Hook,
    counters: Arc<Counters>,
    epoch: Instant,
}

impl CheckTask {
    async fn run(self, initial: Health) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.check.hash(&mut h);
        unix().hash(&mut h);
        let mut m = Machine::new(self.check.timing, initial, h.finish());
        let now = |e: Instant| e.elapsed();
        let mut actions = m.handle(now(self.epoch), Event::Start);
        let mut last_round: Option<Instant> = None;
        let mut rounds = 0;
        let mut last_latency = 0.0;
        loop {
            let mut timer = None;
            let mut probe_now = false;
            for a in actions.drain(..) {
                match a {
                    Action::Arm(at) => timer = Some(at),
                    Action::Probe => probe_now = true,
                    Action::Change { from, to, reason } => {
                        {
                            let mut s = lock(&self.st);
                            s.health = to;
                            s.since = unix();
                            s.transitions += 1;
                        }
                        (self.hook)(Transition {
                            check: (*self.check).clone(),
                            from,
                            to,
                            reason,
                            latency_ms: last_latency,
                        });
                    }
                }
            }
            if probe_now {
                if m.rounds() != rounds {
                    rounds = m.rounds();
                    self.counters.rounds.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    if let Some(prev) = last_round {
                        let p = (t - prev).as_secs_f64() * 1000.0;
                        let mut s = lock(&self.st);
                        s.period_ms = if s.period_ms == 0.0 { p } else { s.period_ms * 0.8 + p * 0.2 };
                    }
                    last_round = Some(t);
                }
                self.counters.waiting.fetch_add(1, Ordering::Relaxed);
                let permit = self.sem.acquire().await;
                self.counters.waiting.fetch_sub(1, Ordering::Relaxed);
                let o = probe::run(&self.check).await;
                drop(permit);
                self.counters.attempts.fetch_add(1, Ordering::Relaxed);
                last_latency = o.latency.as_secs_f64() * 1000.0;
                {
                    let mut s = lock(&self.st);
                    s.attempts += 1;
                    if !o.ok {
                        s.failures += 1;
                    }
                    s.last_ok = Some(o.ok);
                    s.last_reason.clone_from(&o.reason);
                    s.last_latency_ms = last_latency;
                    s.last_at = unix();
                }
                actions = m.handle(now(self.epoch), Event::Result(o));
                continue;
            }
            let Some(at) = timer else { return };
            tokio::time::sleep_until(self.epoch + at).await;
            actions = m.handle(now(self.epoch), Event::Timer);
        }
    }
}
