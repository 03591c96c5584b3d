//! The lbd daemon: config state, the kernel worker, the reconcile loop and
//! the control socket.
//!
//! One worker thread owns the kernel handle; everything that touches IPVS
//! goes through it in order. The reconcile loop re-reads the kernel every
//! `interval` and repairs differences (someone ran `ipvsadm -C`). Applying a
//! config is a transaction: validate → persist → reconcile → report.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::config::{self, Config, ConfigError};
use crate::ctl::proto::{Command, Request, Response, View};
use crate::ipvs::{self, ServiceKey, Timeouts};
use crate::ipvsadm;
use crate::kernel::Kernel;
use crate::logring::LogRing;
use crate::reconcile::{self, Actual, DesiredService, Drains, Op};
use crate::store::{Pending, Store};

/// How lbd runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Control socket path.
    pub socket: PathBuf,
    /// Config file path.
    pub config: PathBuf,
    /// Directory of old config versions.
    pub history: PathBuf,
    /// How many old versions to keep.
    pub keep: usize,
    /// Period of the repair pass.
    pub interval: Duration,
    /// `/proc/net/ip_vs_conn`.
    pub conn_proc: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            socket: crate::paths::CONTROL_SOCKET.into(),
            config: crate::paths::CONFIG_FILE.into(),
            history: crate::paths::CONFIG_HISTORY_DIR.into(),
            keep: crate::paths::CONFIG_HISTORY_KEEP,
            interval: Duration::from_secs(2),
            conn_proc: "/proc/net/ip_vs_conn".into(),
        }
    }
}

/// What a reconcile pass did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PassReport {
    /// Milliseconds it took.
    pub duration_ms: u64,
    /// Operations applied successfully.
    pub applied: Vec<String>,
    /// Operations the kernel refused, with its reason.
    pub failed: Vec<(String, String)>,
    /// Why the pass could not run at all (no IPVS, dump failed).
    pub error: Option<String>,
    /// Timeouts changed.
    pub timeouts_set: bool,
    /// Real servers draining after the pass.
    pub draining: usize,
}

/// Whether the loaded config is usable.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum CfgState {
    Ok,
    Missing,
    Invalid { errors: Vec<ConfigError> },
}

struct State {
    text: String,
    cfg: Config,
    cfg_state: CfgState,
    desired: Arc<Vec<DesiredService>>,
    passes: u64,
    last: Option<(Instant, PassReport)>,
    pending: Option<(u64, Pending)>,
    pending_gen: u64,
}

/// A snapshot of the kernel for views.
struct Snapshot {
    info: ipvs::Info,
    table: Actual,
    timeouts: Option<Timeouts>,
    daemons: Vec<ipvs::Daemon>,
    draining: Vec<(ServiceKey, std::net::IpAddr, u16, u64)>,
}

enum Job {
    Reconcile {
        desired: Arc<Vec<DesiredService>>,
        drain: Duration,
        timeouts: config::Timeouts,
        reply: oneshot::Sender<PassReport>,
    },
    Snapshot {
        reply: oneshot::Sender<Result<Snapshot, String>>,
    },
    Zero {
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// VRRP: make the running sync daemons exactly these.
    SyncDaemons {
        want: Vec<ipvs::Daemon>,
    },
}

/// The kernel worker: owns the handle and the drain bookkeeping.
fn worker(mut k: Box<dyn Kernel>, jobs: mpsc::Receiver<Job>) {
    let start = Instant::now();
    let mut drains = Drains::default();
    let mut sync_err = None;
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Reconcile { desired, drain, timeouts, reply } => {
                let t0 = Instant::now();
                let mut r = PassReport::default();
                match k.dump() {
                    Err(e) => r.error = Some(e),
                    Ok(actual) => {
                        let now = start.elapsed().as_millis() as u64;
                        let plan = reconcile::plan(&desired, &actual, drain, &mut drains, now);
                        let results = k.execute(&plan.ops);
                        for (op, res) in plan.ops.iter().zip(results) {
                            match res {
                                Ok(()) => r.applied.push(op.to_string()),
                                Err(e) => r.failed.push((op.to_string(), e)),
                            }
                        }
                        r.draining = drains.len();
                    }
                }
                if r.error.is_none() && (timeouts.tcp.is_some() || timeouts.tcpfin.is_some() || timeouts.udp.is_some())
                {
                    match k.timeouts() {
                        Ok(cur) => {
                            let want = Timeouts {
                                tcp: timeouts.tcp.unwrap_or(cur.tcp),
                                tcp_fin: timeouts.tcpfin.unwrap_or(cur.tcp_fin),
                                udp: timeouts.udp.unwrap_or(cur.udp),
                            };
                            if want != cur {
                                match k.set_timeouts(want) {
                                    Ok(()) => r.timeouts_set = true,
                                    Err(e) => r.failed.push(("set timeouts".into(), e)),
                                }
                            }
                        }
                        Err(e) => r.failed.push(("get timeouts".into(), e)),
                    }
                }
                r.duration_ms = t0.elapsed().as_millis() as u64;
                let _ = reply.send(r);
            }
            Job::Snapshot { reply } => {
                let now = start.elapsed().as_millis() as u64;
                let snap = k.info().and_then(|info| {
                    Ok(Snapshot {
                        info,
                        table: k.dump()?,
                        timeouts: k.timeouts().ok(),
                        daemons: k.daemons().unwrap_or_default(),
                        draining: drains.list(now),
                    })
                });
                let _ = reply.send(snap);
            }
            Job::Zero { reply } => {
                let _ = reply.send(k.zero(None));
            }
            Job::SyncDaemons { want } => {
                let r = crate::vrrp::engine::sync_daemons(k.as_mut(), &want);
                match (&r, &sync_err) {
                    (Ok(changes), _) if !changes.is_empty() => info!("IPVS sync daemon: {}", changes.join(", ")),
                    (Err(e), last) if last.as_ref() != Some(e) => warn!("IPVS sync daemon: {e}"),
                    _ => {}
                }
                sync_err = r.err();
            }
        }
    }
}

/// What apply/rollback return: data, or an error with details.
type ApplyResult = Result<Value, (String, Value)>;
/// A boxed `ApplyResult` future.
type BoxedResult<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ApplyResult> + Send + 'a>>;

/// The running daemon's shared parts.
#[derive(Clone)]
pub struct Daemon {
    opts: Arc<Options>,
    store: Arc<Store>,
    state: Arc<Mutex<State>>,
    jobs: mpsc::Sender<Job>,
    ring: LogRing,
    started: Instant,
    /// Serializes apply/confirm/rollback.
    apply_lock: Arc<tokio::sync::Mutex<()>>,
    /// The VRRP engine (its own thread).
    vrrp: crate::vrrp::engine::Vrrp,
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

impl Daemon {
    /// Loads the config and starts the kernel worker.
    pub fn new(opts: Options, kernel: Box<dyn Kernel>, ring: LogRing) -> Self {
        let store = Store::new(&opts.config, &opts.history, opts.keep);
        let file = opts.config.display().to_string();
        let (text, cfg, cfg_state) = match store.read() {
            Ok(None) => {
                info!("no config at {file}: running with defaults (no services)");
                (String::new(), Config::default(), CfgState::Missing)
            }
            Ok(Some(text)) => match config::parse(&text, &file) {
                Ok(cfg) => (text, cfg, CfgState::Ok),
                Err(errors) => {
                    for e in &errors {
                        warn!("{e}");
                    }
                    warn!("config is invalid: the kernel table is left as it is until a valid config is applied");
                    (text, Config::default(), CfgState::Invalid { errors })
                }
            },
            Err(e) => {
                warn!("cannot read {file}: {e}");
                (String::new(), Config::default(), CfgState::Missing)
            }
        };
        let desired = Arc::new(reconcile::desired(&cfg));
        let (tx, rx) = mpsc::channel();
        let sync_tx = tx.clone();
        let vrrp = crate::vrrp::engine::Vrrp::new(Arc::new(move |want| {
            let _ = sync_tx.send(Job::SyncDaemons { want });
        }));
        vrrp.apply(&cfg.vrrp);
        std::thread::Builder::new()
            .name("kernel".into())
            .spawn(move || worker(kernel, rx))
            .expect("spawn kernel worker thread");
        Daemon {
            opts: Arc::new(opts),
            store: Arc::new(store),
            state: Arc::new(Mutex::new(State {
                text,
                cfg,
                cfg_state,
                desired,
                passes: 0,
                last: None,
                pending: None,
                pending_gen: 0,
            })),
            jobs: tx,
            ring,
            started: Instant::now(),
            apply_lock: Arc::new(tokio::sync::Mutex::new(())),
            vrrp,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one reconcile pass now (unless the config is invalid).
    pub async fn reconcile(&self) -> Option<PassReport> {
        let (desired, drain, timeouts) = {
            let s = self.lock();
            if matches!(s.cfg_state, CfgState::Invalid { .. }) {
                return None;
            }
            (s.desired.clone(), Duration::from_secs(u64::from(s.cfg.ipvs.drain_timeout)), s.cfg.ipvs.timeouts)
        };
        let (tx, rx) = oneshot::channel();
        self.jobs.send(Job::Reconcile { desired, drain, timeouts, reply: tx }).ok()?;
        let r = rx.await.ok()?;
        if !r.applied.is_empty() {
            info!("reconcile: {} change(s): {}", r.applied.len(), summarize(&r.applied));
        }
        for (op, e) in &r.failed {
            warn!("reconcile: {op}: {e}");
        }
        let mut s = self.lock();
        let was_error = s.last.as_ref().and_then(|(_, l)| l.error.clone());
        if r.error != was_error {
            match &r.error {
                Some(e) => warn!("reconcile: {e}"),
                None => info!("reconcile: kernel reachable again"),
            }
        }
        s.passes += 1;
        s.last = Some((Instant::now(), r.clone()));
        Some(r)
    }

    async fn snapshot(&self) -> Result<Snapshot, String> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send(Job::Snapshot { reply: tx }).map_err(|_| "kernel worker stopped".to_string())?;
        rx.await.map_err(|_| "kernel worker stopped".to_string())?
    }

    /// The whole transaction of applying config text.
    async fn apply(&self, text: &str, confirm_within: Option<u64>) -> Result<Value, (String, Value)> {
        let _g = self.apply_lock.lock().await;
        let file = self.opts.config.display().to_string();
        let cfg = config::parse(text, &file).map_err(|errors| {
            (format!("config has {} error(s); nothing applied", errors.len()), json!({ "errors": errors }))
        })?;
        let caps = capability_errors(&cfg, &file);
        if !caps.is_empty() {
            return Err((format!("config has {} error(s); nothing applied", caps.len()), json!({ "errors": caps })));
        }
        let previous = self.lock().text.clone();
        if let Some(secs) = confirm_within {
            let p = Pending { deadline: now_s() + secs, previous: previous.clone() };
            self.store.set_pending(&p).map_err(|e| (format!("cannot record the pending confirm: {e}"), Value::Null))?;
        }
        self.store.persist(text).map_err(|e| {
            (format!("cannot persist {}: {e}; nothing applied", self.store.path().display()), Value::Null)
        })?;
        self.vrrp.apply(&cfg.vrrp);
        let gen_ = {
            let mut s = self.lock();
            s.text = text.to_string();
            s.desired = Arc::new(reconcile::desired(&cfg));
            s.cfg = cfg;
            s.cfg_state = CfgState::Ok;
            s.pending_gen += 1;
            s.pending = confirm_within
                .map(|secs| (s.pending_gen, Pending { deadline: now_s() + secs, previous: previous.clone() }));
            if confirm_within.is_none() {
                let _ = self.store.clear_pending();
            }
            s.pending_gen
        };
        info!("config applied ({} bytes)", text.len());
        let report = self.reconcile().await;
        if let Some(secs) = confirm_within {
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                me.expire_pending(gen_).await;
            });
        }
        Ok(json!({
            "persisted": self.store.path(),
            "reconcile": report,
            "confirm_within": confirm_within,
        }))
    }

    async fn expire_pending(&self, gen_: u64) {
        let still = matches!(self.lock().pending, Some((g, _)) if g == gen_);
        if still {
            warn!("apply was not confirmed in time: rolling back");
            if let Err((e, _)) = self.rollback().await {
                warn!("rollback failed: {e}");
            }
        }
    }

    /// Boxed to break the apply → timer → rollback → apply type cycle.
    fn rollback(&self) -> BoxedResult<'_> {
        Box::pin(async move {
            let taken = self.lock().pending.take();
            let Some((_, p)) = taken else {
                return Err(("nothing to roll back: no apply is waiting for confirmation".into(), Value::Null));
            };
            let r = self.apply(&p.previous, None).await;
            info!("rolled back to the previous config");
            r
        })
    }

    fn confirm(&self) -> Result<Value, (String, Value)> {
        let mut s = self.lock();
        if s.pending.take().is_none() {
            return Err(("nothing to confirm".into(), Value::Null));
        }
        let _ = self.store.clear_pending();
        info!("apply confirmed");
        Ok(json!("confirmed"))
    }

    /// Rolls back an apply that was pending when lbd (or the box) stopped.
    async fn recover_pending(&self) {
        if let Some(p) = self.store.pending() {
            warn!("an apply was never confirmed before lbd stopped: rolling back to the previous config");
            self.lock().pending = Some((0, p));
            if let Err((e, d)) = self.rollback().await {
                warn!("rollback failed: {e} {d}");
            }
        }
    }

    async fn status(&self) -> Value {
        let snap = self.snapshot().await;
        let s = self.lock();
        let (ipvs, services, dests) = match &snap {
            Ok(sn) => (
                json!({ "available": true, "version": version_str(sn.info.version), "conn_tab_size": sn.info.conn_tab_size }),
                sn.table.services.len(),
                sn.table.services.iter().map(|(_, d)| d.len()).sum::<usize>(),
            ),
            Err(e) => (json!({ "available": false, "error": e }), 0, 0),
        };
        let last = s.last.as_ref().map(|(t, r)| json!({ "ago_ms": t.elapsed().as_millis() as u64, "report": r }));
        json!({
            "product": crate::paths::PRODUCT,
            "version": crate::paths::VERSION,
            "hostname": s.cfg.system.hostname,
            "uptime_s": self.started.elapsed().as_secs(),
            "config": {
                "path": self.store.path(),
                "status": s.cfg_state,
                "services": s.cfg.services.len(),
                "pending_confirm": s.pending.as_ref().map(|(_, p)| json!({ "remaining_s": p.deadline.saturating_sub(now_s()) })),
            },
            "ipvs": ipvs,
            "kernel": { "services": services, "reals": dests },
            "reconcile": { "passes": s.passes, "interval_ms": self.opts.interval.as_millis() as u64, "last": last,
                           "paused": matches!(s.cfg_state, CfgState::Invalid { .. }) },
        })
    }

    async fn services(&self) -> Result<Value, String> {
        let snap = self.snapshot().await?;
        let s = self.lock();
        let names: std::collections::HashMap<ServiceKey, Option<String>> =
            s.desired.iter().zip(&s.cfg.services).map(|(d, c)| (d.svc.key, c.name.clone())).collect();
        let draining: HashSet<(ServiceKey, std::net::IpAddr, u16)> =
            snap.draining.iter().map(|(k, a, p, _)| (*k, *a, *p)).collect();
        let list: Vec<Value> = snap
            .table
            .services
            .iter()
            .map(|(se, ds)| {
                let key = se.svc.key;
                json!({
                    "key": key.to_string(),
                    "id": key,
                    "name": names.get(&key).cloned().flatten(),
                    "configured": names.contains_key(&key),
                    "scheduler": se.svc.sched,
                    "flags": se.svc.flags,
                    "persistence": (se.svc.flags & ipvs::svc_flags::PERSISTENT != 0).then_some(se.svc.timeout),
                    "stats": se.stats,
                    "reals": ds.iter().map(|d| json!({
                        "address": d.dest.addr,
                        "port": d.dest.port,
                        "forward": d.dest.fwd.ipvsadm_name(),
                        "weight": d.dest.weight,
                        "active": d.active_conns,
                        "inactive": d.inact_conns,
                        "persistent": d.persist_conns,
                        "draining": draining.contains(&(key, d.dest.addr, d.dest.port)),
                        "stats": d.stats,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(json!(list))
    }

    async fn list(&self, view: View, exact: bool) -> Result<String, String> {
        if view == View::Connections {
            return Ok(ipvsadm::connections(&read_conns(&self.opts.conn_proc, usize::MAX)?, false));
        }
        let snap = self.snapshot().await?;
        let table = ipvsadm::Table { info: snap.info, services: &snap.table.services };
        let fmt = match view {
            View::Default => ipvsadm::Format::Default,
            View::Stats => ipvsadm::Format::Stats,
            View::Rate => ipvsadm::Format::Rate,
            View::Thresholds => ipvsadm::Format::Thresholds,
            View::PersistentConn => ipvsadm::Format::PersistentConn,
            View::TunInfo => ipvsadm::Format::TunInfo,
            View::Rules => ipvsadm::Format::Rule,
            View::Timeout => return snap.timeouts.map(|t| ipvsadm::timeouts(&t)).ok_or("cannot read timeouts".into()),
            View::Daemon => return Ok(ipvsadm::daemons(&snap.daemons)),
            View::Connections => unreachable!("handled above"),
        };
        Ok(ipvsadm::list(&table, fmt, exact))
    }

    /// Handles one request.
    pub async fn handle(&self, req: Request) -> Response {
        let id = req.id;
        let done = |r: Result<Value, (String, Value)>| match r {
            Ok(v) => Response::ok(id, v),
            Err((e, Value::Null)) => Response::err(id, e),
            Err((e, d)) => Response::err_with(id, e, d),
        };
        match req.cmd {
            Command::Ping => Response::ok(id, json!("pong")),
            Command::Status => Response::ok(id, self.status().await),
            Command::Services => match self.services().await {
                Ok(v) => Response::ok(id, v),
                Err(e) => Response::err(id, e),
            },
            Command::List { view, exact } => match self.list(view, exact).await {
                Ok(t) => Response::ok(id, json!(t)),
                Err(e) => Response::err(id, e),
            },
            Command::Connections { limit } => match read_conns(&self.opts.conn_proc, limit.unwrap_or(1000)) {
                Ok(c) => Response::ok(id, json!(c)),
                Err(e) => Response::err(id, e),
            },
            Command::ConfigGet => {
                let s = self.lock();
                Response::ok(id, json!({ "text": s.text, "path": self.store.path(), "status": s.cfg_state }))
            }
            Command::Validate { text } => {
                let file = self.opts.config.display().to_string();
                match config::parse(&text, &file) {
                    Ok(cfg) => {
                        let caps = capability_errors(&cfg, &file);
                        if caps.is_empty() {
                            let plan = self.preview(&cfg).await;
                            Response::ok(id, json!({ "valid": true, "changes": plan }))
                        } else {
                            Response::err_with(
                                id,
                                format!("config has {} error(s)", caps.len()),
                                json!({ "errors": caps }),
                            )
                        }
                    }
                    Err(errors) => Response::err_with(
                        id,
                        format!("config has {} error(s)", errors.len()),
                        json!({ "errors": errors }),
                    ),
                }
            }
            Command::Apply { text, confirm_within } => done(self.apply(&text, confirm_within).await),
            Command::Confirm => done(self.confirm()),
            Command::Rollback => done(self.rollback().await),
            Command::Restore { rules, confirm_within } => {
                let cfg = self.lock().cfg.clone();
                match ipvsadm::restore(&cfg.services, &rules) {
                    Err(errors) => Response::err_with(
                        id,
                        format!("{} bad line(s); nothing applied", errors.len()),
                        json!({ "errors": errors }),
                    ),
                    Ok(services) => {
                        let text = Config { services, ..cfg }.to_toml();
                        done(self.apply(&text, confirm_within).await)
                    }
                }
            }
            Command::Zero => {
                let (tx, rx) = oneshot::channel();
                let r = match self.jobs.send(Job::Zero { reply: tx }) {
                    Ok(()) => rx.await.unwrap_or_else(|_| Err("kernel worker stopped".into())),
                    Err(_) => Err("kernel worker stopped".into()),
                };
                match r {
                    Ok(()) => Response::ok(id, json!("zeroed")),
                    Err(e) => Response::err(id, e),
                }
            }
            Command::Logs { after, max } => Response::ok(id, json!(self.ring.since(after, max.unwrap_or(200)))),
            Command::History => Response::ok(id, json!(self.store.history())),
            Command::Vrrp => Response::ok(id, self.vrrp.status().await),
            Command::VrrpMaintenance { target, on } => match self.vrrp.maintenance(&target, on).await {
                Ok(v) => Response::ok(id, v),
                Err(e) => Response::err(id, e),
            },
        }
    }

    /// What applying `cfg` would change in the kernel now (for validate/diff).
    async fn preview(&self, cfg: &Config) -> Vec<String> {
        let Ok(snap) = self.snapshot().await else { return Vec::new() };
        let mut drains = Drains::default();
        let d = reconcile::desired(cfg);
        let drain = Duration::from_secs(u64::from(cfg.ipvs.drain_timeout));
        reconcile::plan(&d, &snap.table, drain, &mut drains, 0).ops.iter().map(Op::to_string).collect()
    }
}

fn version_str(v: u32) -> String {
    format!("{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
}

fn summarize(ops: &[String]) -> String {
    let mut s = ops.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
    if ops.len() > 5 {
        s.push_str(&format!("; and {} more", ops.len() - 5));
    }
    s
}

/// Errors a config can only show on the box: a scheduler module that the
/// running kernel lacks (e.g. `twos` on 6.1). Skipped when IPVS isn't loaded.
fn capability_errors(cfg: &Config, file: &str) -> Vec<ConfigError> {
    let sys = std::path::Path::new("/sys/module");
    if !sys.join("ip_vs").exists() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, s) in cfg.services.iter().enumerate() {
        let m = format!("ip_vs_{}", s.scheduler);
        if !sys.join(&m).exists() {
            out.push(ConfigError {
                file: file.to_string(),
                line: 0,
                col: 0,
                path: format!("services[{i}].scheduler"),
                message: format!("scheduler `{}` is not available in this kernel (no module {m})", s.scheduler),
            });
        }
    }
    out
}

fn read_conns(path: &std::path::Path, limit: usize) -> Result<Vec<ipvsadm::Conn>, String> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        if n > limit {
            break;
        }
        text.push_str(&line.map_err(|e| e.to_string())?);
        text.push('\n');
    }
    Ok(ipvsadm::parse_conns(&text))
}

/// Runs the daemon until SIGTERM/SIGINT. Never flushes IPVS.
pub async fn run(opts: Options, kernel: Box<dyn Kernel>, ring: LogRing) -> anyhow::Result<()> {
    let sock = opts.socket.clone();
    let interval = opts.interval;
    let d = Daemon::new(opts, kernel, ring);
    d.recover_pending().await;
    d.reconcile().await;

    let _ = std::fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))?;
    }
    info!("control socket {} ready", sock.display());

    let rec = d.clone();
    tokio::spawn(async move {
        let mut t = tokio::time::interval(interval);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t.tick().await;
        loop {
            t.tick().await;
            rec.reconcile().await;
        }
    });

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        tokio::select! {
            acc = listener.accept() => {
                let (stream, _) = acc?;
                let d = d.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut lines = BufReader::new(r).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let resp = match serde_json::from_str::<Request>(&line) {
                            Ok(req) => d.handle(req).await,
                            Err(e) => Response::err(0, format!("bad request: {e}")),
                        };
                        let mut out = serde_json::to_string(&resp).unwrap_or_default();
                        out.push('\n');
                        if w.write_all(out.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    d.vrrp.shutdown().await;
    // The kernel worker runs jobs in order: this waits until the sync-daemon
    // switch VRRP just asked for is done before the process exits.
    let _ = d.snapshot().await;
    info!("stopping; the IPVS table is left as it is");
    let _ = std::fs::remove_file(&sock);
    Ok(())
}
