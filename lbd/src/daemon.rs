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
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::config::{self, Config, ConfigError};
use crate::ctl::proto::{
    Command, ImportFormat, MAX_IMPORT_TEXT, MAX_REQUEST_LINE, OverrideAction, Request, Response, View,
};
use crate::health::engine::{Engine as HealthEngine, Transition};
use crate::health::overlay::{Overlay, Override};
use crate::import::Kind as ImportKind;
use crate::ipvs::{self, ServiceKey};
use crate::ipvsadm;
use crate::kernel::Kernel;
use crate::logring::LogRing;
use crate::reconcile::{self, Drains, Op};
use crate::store::{Edit, Pending, Store};
use crate::worker::{Job, Snapshot, Target};
pub use crate::worker::{Mode, PassReport};

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
    /// Apply the config's network (interfaces, routes, VIPs) and sysctls on
    /// apply. Off for `--sim`, so host tests never touch the host.
    pub manage_system: bool,
}

impl Options {
    /// A daemon kept inside `dir` (control socket `lbd.sock`, `lvsbox.toml`,
    /// `history/` with 10 versions, `ip_vs_conn`) that never touches the
    /// host's network and whose repair pass is an hour apart: what host tests
    /// run against a simulated kernel.
    pub fn in_dir(dir: &std::path::Path) -> Self {
        Options {
            socket: dir.join("lbd.sock"),
            config: dir.join("lvsbox.toml"),
            history: dir.join("history"),
            keep: 10,
            interval: Duration::from_secs(3600),
            conn_proc: dir.join("ip_vs_conn"),
            manage_system: false,
        }
    }
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
            manage_system: true,
        }
    }
}

/// Whether the loaded config is usable.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum CfgState {
    Ok,
    Missing,
    Invalid { errors: Vec<ConfigError> },
}

impl CfgState {
    /// Reconcile leaves the kernel table alone until a valid config is
    /// applied: with an invalid config, and with none (a config partition
    /// that failed to mount must not empty a running box's table).
    fn paused(&self) -> bool {
        !matches!(self, CfgState::Ok)
    }
}

struct State {
    cfg: Config,
    /// Real-server offsets in the config *file* (not counting journalled edits).
    spans: config::Spans,
    /// Edits journalled and not yet folded into the file.
    journal: usize,
    fold_gen: u64,
    cfg_state: CfgState,
    /// Health checks and overrides over the config (`lbd/src/health/`).
    overlay: Overlay,
    desired: reconcile::Desired,
    passes: u64,
    last: Option<(Instant, PassReport)>,
    pending: Option<(u64, Pending)>,
    pending_gen: u64,
}

/// How long after the last weight edit the journal is folded into the file.
const FOLD_AFTER: Duration = Duration::from_secs(5);

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
    /// The health-check engine (its own thread).
    health: HealthEngine,
    /// Where the operator's overrides are kept.
    overrides: Arc<crate::health::overrides::Store>,
    /// The fwmark rules (nftables table `inet lvsbox`) and the FTP helper.
    fw: Arc<Mutex<FwState>>,
}

/// lbd's side of the fwmark rules: the nf_tables handle and what the last
/// sync found.
#[derive(Default)]
struct FwState {
    firewall: crate::fwmark::Firewall,
    last: Option<(Instant, crate::nft::SyncReport)>,
    helper: Option<crate::fwmark::HelperReport>,
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

impl Daemon {
    /// Loads the config and starts the kernel worker (and the health checks;
    /// their state changes are handled on the current tokio runtime).
    pub fn new(opts: Options, mut kernel: Box<dyn Kernel>, ring: LogRing) -> Self {
        let store = Store::new(&opts.config, &opts.history, opts.keep);
        let file = opts.config.display().to_string();
        let (cfg, spans, cfg_state) = match store.read() {
            Ok(None) => {
                info!(
                    "no config at {file}: defaults (no services); the kernel table is left as it is until a config is applied"
                );
                (Config::default(), config::Spans::default(), CfgState::Missing)
            }
            Ok(Some(text)) => match config::parse_with_spans(&text, &file).and_then(|(cfg, spans)| {
                let internal =
                    |message| vec![ConfigError { file: file.clone(), line: 0, col: 0, path: String::new(), message }];
                Ok((compact(cfg, &text, &file).map_err(internal)?, spans))
            }) {
                Ok((mut cfg, spans)) => {
                    // Edits journalled before lbd stopped: apply and fold them.
                    let edits = store.edits();
                    let mut spans = spans;
                    if !edits.is_empty() {
                        let (folded, new_spans, warnings) = config::edit::apply_edits(&text, &spans, &mut cfg, &edits);
                        for w in warnings {
                            warn!("{w}");
                        }
                        match store.persist(&folded) {
                            Ok(()) => {
                                spans = new_spans;
                                info!("{} journalled edit(s) folded into {file}", edits.len());
                            }
                            Err(e) => warn!("cannot fold the journalled edits into {file}: {e}"),
                        }
                    }
                    (cfg, spans, CfgState::Ok)
                }
                Err(errors) => {
                    for e in &errors {
                        warn!("{e}");
                    }
                    warn!("config is invalid: the kernel table is left as it is until a valid config is applied");
                    (Config::default(), config::Spans::default(), CfgState::Invalid { errors })
                }
            },
            Err(e) => {
                warn!("cannot read {file}: {e}; the kernel table is left as it is until a config is applied");
                (Config::default(), config::Spans::default(), CfgState::Missing)
            }
        };
        release_free_memory();
        let overrides = crate::health::overrides::Store::next_to(&opts.config);
        let saved = overrides.load().unwrap_or_else(|e| {
            warn!("operator overrides: {e}; starting without them");
            Default::default()
        });
        let overlay = if matches!(cfg_state, CfgState::Invalid { .. }) {
            Overlay::default()
        } else {
            let checked = crate::health::config::resolve(&cfg).any()
                || cfg.services.iter().any(|s| s.sorry_server.is_some())
                || !saved.is_empty();
            // Reals the kernel serves now start up: a restart changes nothing
            // until a check says otherwise.
            let table: std::collections::HashMap<(ServiceKey, std::net::IpAddr, u16), u32> = if checked {
                match kernel.dump() {
                    Ok(t) => t
                        .into_iter()
                        .flat_map(|(s, ds)| {
                            let k = s.svc.key;
                            ds.into_iter().map(move |d| ((k, d.dest.addr, d.dest.port), d.dest.weight))
                        })
                        .collect(),
                    Err(e) => {
                        warn!("health checks: cannot read the kernel's table ({e}): every checked real starts unknown");
                        Default::default()
                    }
                }
            } else {
                Default::default()
            };
            Overlay::new(&cfg, saved, &|k, a, p| table.get(&(*k, a, p)).copied(), None)
        };
        let desired = overlay.desired(&cfg);
        let journal = store.edits().len();
        let tx = crate::worker::start(kernel);
        let sync_tx = tx.clone();
        let vrrp = crate::vrrp::engine::Vrrp::new(Arc::new(move |want| {
            let _ = sync_tx.send(Job::SyncDaemons { want });
        }));
        vrrp.apply(&cfg.vrrp);
        let (htx, hrx) = tokio::sync::mpsc::unbounded_channel::<Transition>();
        let health = HealthEngine::new(Arc::new(move |t| {
            let _ = htx.send(t);
        }));
        health.apply(overlay.checks());
        let d = Daemon {
            opts: Arc::new(opts),
            store: Arc::new(store),
            state: Arc::new(Mutex::new(State {
                cfg,
                spans,
                journal,
                fold_gen: 0,
                cfg_state,
                overlay,
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
            health,
            overrides: Arc::new(overrides),
            fw: Arc::new(Mutex::new(FwState::default())),
        };
        if !matches!(d.lock().cfg_state, CfgState::Invalid { .. }) {
            let o = d.lock().overlay.clone();
            d.accept_local(&o);
        }
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                let me = d.clone();
                h.spawn(me.health_loop(hrx));
            }
            Err(_) => warn!("no runtime: health-check results will not be applied"),
        }
        d
    }

    /// Applies the checks' verdicts as they come: a batch of state changes
    /// becomes one scoped fast pass over the services they touch.
    async fn health_loop(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<Transition>) {
        while let Some(t) = rx.recv().await {
            let mut batch = vec![t];
            while let Ok(t) = rx.try_recv() {
                batch.push(t);
            }
            let scope = {
                let mut guard = self.lock();
                let s = &mut *guard;
                let mut scope = Vec::new();
                for t in &batch {
                    let (svcs, logs) = s.overlay.set_health(&s.cfg, &t.check, t.to);
                    let names: Vec<String> = svcs.iter().map(|&i| s.cfg.services[i].label()).collect();
                    if names.is_empty() {
                        continue; // a check the config no longer has
                    }
                    info!(
                        "health: {} {} -> {}: {} ({:.1} ms) [{}]",
                        t.check,
                        t.from,
                        t.to,
                        t.reason,
                        t.latency_ms,
                        names.join(", ")
                    );
                    for l in logs {
                        warn!("health: {l}");
                    }
                    scope.extend(svcs);
                }
                scope.sort_unstable();
                scope.dedup();
                if !scope.is_empty() && !matches!(s.cfg_state, CfgState::Invalid { .. }) {
                    let d = Arc::make_mut(&mut s.desired);
                    for &i in &scope {
                        if i < d.len() {
                            d[i] = Arc::new(s.overlay.service(&s.cfg, i));
                        }
                    }
                }
                scope
            };
            if !scope.is_empty() {
                self.reconcile_scoped(Mode::Fast, Some(scope)).await;
            }
        }
    }

    /// Checks through the VIP get their answers from the VIP, an address of
    /// this box: the interface must accept a local source.
    fn accept_local(&self, overlay: &Overlay) {
        if !self.opts.manage_system || !overlay.checks().iter().any(|(c, _)| c.via_vip_to.is_some()) {
            return;
        }
        let path = "/proc/sys/net/ipv4/conf/all/accept_local";
        if std::fs::read_to_string(path).map(|v| v.trim() != "1").unwrap_or(true) {
            match std::fs::write(path, "1") {
                Ok(()) => info!("health: net.ipv4.conf.all.accept_local = 1 for checks through the VIP"),
                Err(e) => warn!("health: cannot set {path}: {e} (checks through the VIP will time out)"),
            }
        }
    }

    /// Disables, drains or re-enables a real (persisted first).
    async fn set_override(&self, service: &str, real: &str, action: OverrideAction) -> ApplyResult {
        let _g = self.apply_lock.lock().await;
        let fail = |e: String| (e, Value::Null);
        let (i, j, all) = {
            let mut guard = self.lock();
            let s = &mut *guard;
            if matches!(s.cfg_state, CfgState::Invalid { .. }) {
                return Err(fail("the config on the box is invalid; apply a valid one first".into()));
            }
            let (i, j) = config::edit::find_real(&s.cfg, service, real).map_err(fail)?;
            let o = match action {
                OverrideAction::Enable => None,
                OverrideAction::Disable => Some(Override::Disable),
                OverrideAction::Drain => Some(Override::Drain),
            };
            let mut next = s.overlay.overrides().clone();
            let id = crate::health::overlay::real_id(&s.cfg.services[i], j);
            match o {
                Some(o) => next.insert(id, o),
                None => next.remove(&id),
            };
            (i, j, next)
        };
        self.overrides.save(&all).map_err(|e| fail(format!("cannot persist the override: {e}; nothing applied")))?;
        let weight = {
            let mut guard = self.lock();
            let s = &mut *guard;
            let o = all.get(&crate::health::overlay::real_id(&s.cfg.services[i], j)).copied();
            for l in s.overlay.set_override(&s.cfg, i, j, o) {
                warn!("health: {l}");
            }
            let d = s.overlay.service(&s.cfg, i);
            Arc::make_mut(&mut s.desired)[i] = Arc::new(d);
            s.overlay.weight_of(&s.cfg, i, j)
        };
        info!("{real} in {service}: {action:?} by the operator");
        let report = self.reconcile_scoped(Mode::Fast, Some(vec![i])).await;
        Ok(json!({ "service": service, "real": real, "action": action, "weight": weight, "reconcile": report }))
    }

    /// The `checks` view.
    fn checks(&self) -> Value {
        let statuses = self.health.statuses();
        let s = self.lock();
        let mut up = 0;
        let mut down = 0;
        let mut unknown = 0;
        for st in statuses.values() {
            match st.health {
                crate::health::fsm::Health::Up => up += 1,
                crate::health::fsm::Health::Down => down += 1,
                crate::health::fsm::Health::Unknown => unknown += 1,
            }
        }
        let mut periods: Vec<f64> = statuses.values().map(|st| st.period_ms).filter(|p| *p > 0.0).collect();
        periods.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let pct = |q: f64| periods.get(((periods.len() as f64 - 1.0) * q).round() as usize).copied();
        let reals: Vec<Value> = s
            .overlay
            .reals(&s.cfg)
            .into_iter()
            .map(|r| {
                let st = s.overlay.check_of(r.service, r.real).and_then(|c| statuses.get(c));
                json!({
                    "service": s.cfg.services[r.service].label(),
                    "service_key": r.id.0,
                    "real": r.id.1,
                    "check": r.check,
                    "health": r.health,
                    "override": r.override_,
                    "weight": r.weight,
                    "status": st,
                })
            })
            .collect();
        let services: Vec<Value> = s
            .cfg
            .services
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({
                    "service": c.label(),
                    "quorum": s.overlay.quorum(i),
                    "sorry_server_active": c.sorry_server.is_some() && s.overlay.quorum(i) == Some(false),
                })
            })
            .collect();
        let c = self.health.counters();
        use std::sync::atomic::Ordering::Relaxed;
        json!({
            "summary": {
                "checks": statuses.len(), "up": up, "down": down, "unknown": unknown,
                "attempts": c.attempts.load(Relaxed), "rounds": c.rounds.load(Relaxed), "waiting": c.waiting.load(Relaxed),
                "period_ms": { "median": pct(0.5), "p90": pct(0.9), "max": periods.last() },
            },
            "services": services,
            "reals": reals,
            "overrides": s.overlay.overrides().iter().map(|((svc, real), m)| json!({ "service": svc, "real": real, "mode": m })).collect::<Vec<_>>(),
        })
    }

    /// Makes the nftables table `inet lvsbox` match the config's mark rules:
    /// read, compare, and write only a difference (in one batch), or delete
    /// the table when the config has no rules. Skipped while the config on
    /// the box is invalid or missing (the rules stay as they are, like IPVS) and in
    /// simulation (`manage_system` off: never touch the host).
    pub async fn sync_firewall(&self) -> Option<crate::nft::SyncReport> {
        if !self.opts.manage_system {
            return None;
        }
        let fw = self.fw.clone();
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let mut g = fw.lock().unwrap_or_else(|p| p.into_inner());
            // The rules are read under the firewall lock: a repair pass that
            // waited for an apply's write cannot put the old rules back.
            let rules = {
                let s = state.lock().unwrap_or_else(|p| p.into_inner());
                if s.cfg_state.paused() {
                    return None;
                }
                crate::fwmark::config::mark_rules(&s.cfg)
            };
            let r = g.firewall.sync(&rules);
            let was = g.last.as_ref().and_then(|(_, l)| l.error.clone());
            match (&r.error, r.action) {
                (Some(e), _) if was.as_ref() != Some(e) => warn!("fwmark rules: {e}"),
                (None, crate::nft::Action::Replace) => {
                    info!("fwmark rules: table inet {} written ({} rule(s))", crate::nft::TABLE, rules.len())
                }
                (None, crate::nft::Action::Delete) => {
                    info!("fwmark rules: table inet {} deleted (no rules configured)", crate::nft::TABLE)
                }
                _ => {}
            }
            g.last = Some((Instant::now(), r.clone()));
            Some(r)
        })
        .await
        .ok()
        .flatten()
    }

    /// Loads `ip_vs_ftp` with the config's ports if the running one differs.
    async fn sync_helper(&self) {
        if !self.opts.manage_system {
            return;
        }
        let wanted = crate::fwmark::config::helper_ports(&self.lock().cfg);
        let fw = self.fw.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let r = crate::fwmark::ensure_helper(wanted);
            match r.action.as_str() {
                "none" => {}
                "reloaded" => info!("ip_vs_ftp loaded with ports {:?}", r.loaded.clone().unwrap_or_default()),
                why => warn!("ip_vs_ftp: {why}"),
            }
            fw.lock().unwrap_or_else(|p| p.into_inner()).helper = Some(r);
        })
        .await;
    }

    /// The fwmark rules the config generates, the table as lbd writes it,
    /// what the ftp shorthands expand to, and the kernel's state.
    fn fwmark(&self) -> Value {
        let s = self.lock();
        let gen_ = crate::fwmark::config::generated(&s.cfg);
        let rules: Vec<crate::nft::MarkRule> = gen_.iter().map(|g| g.rule.clone()).collect();
        let services: Vec<Value> = s
            .cfg
            .services
            .iter()
            .enumerate()
            .filter(|(_, c)| c.ftp.is_some() || !c.fwmark_rules.is_empty())
            .map(|(i, c)| {
                let e = crate::fwmark::config::expand(c);
                let d = reconcile::desired_service(c);
                json!({
                    "index": i,
                    "label": c.label(),
                    "ftp": c.ftp,
                    "forwarding": c.forwarding,
                    "service": d.svc.key.to_string(),
                    "persistence": e.persistence.as_ref().map(|p| p.timeout),
                    "helper": crate::fwmark::config::is_nat_ftp(c),
                })
            })
            .collect();
        let fw = self.fw.lock().unwrap_or_else(|p| p.into_inner());
        let kernel = fw.last.as_ref().map(|(t, r)| json!({ "ago_ms": t.elapsed().as_millis() as u64, "sync": r }));
        let helper = json!({
            "wanted": crate::fwmark::config::helper_ports(&s.cfg),
            "loaded": crate::fwmark::loaded_helper_ports(std::path::Path::new(crate::fwmark::HELPER_SYS)),
            "last": fw.helper,
        });
        let mut text = crate::nft::table_text(&rules);
        for g in &gen_ {
            text.push_str(&format!("# {}: {} ({})\n", g.origin, g.rule.nft_text(), g.label));
        }
        match &fw.last {
            _ if !self.opts.manage_system => text.push_str("# kernel: not managed (simulation)\n"),
            Some((_, r)) if r.in_sync => text.push_str("# kernel: in sync\n"),
            Some((_, r)) => text.push_str(&format!("# kernel: NOT in sync: {}\n", r.error.clone().unwrap_or_default())),
            None => text.push_str("# kernel: not read yet\n"),
        }
        json!({
            "table": format!("inet {}", crate::nft::TABLE),
            "managed": self.opts.manage_system,
            "rules": gen_.iter().map(|g| json!({
                "service": g.label,
                "origin": g.origin,
                "mark": g.rule.mark,
                "destination": g.rule.daddr,
                "protocol": crate::nft::MarkRule::proto_label(g.rule.proto),
                "ports": if g.rule.ports.0 == g.rule.ports.1 { g.rule.ports.0.to_string() } else { format!("{}-{}", g.rule.ports.0, g.rule.ports.1) },
                "nft": g.rule.nft_text(),
            })).collect::<Vec<_>>(),
            "services": services,
            "kernel": kernel,
            "ftp_helper": helper,
            "text": text,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one verifying reconcile pass now (unless the config is invalid).
    pub async fn reconcile(&self) -> Option<PassReport> {
        self.reconcile_mode(Mode::Verify).await
    }

    async fn reconcile_mode(&self, mode: Mode) -> Option<PassReport> {
        self.reconcile_scoped(mode, None).await
    }

    /// A pass limited to `scope` (indices of the config's services) when given.
    async fn reconcile_scoped(&self, mode: Mode, scope: Option<Vec<usize>>) -> Option<PassReport> {
        let target = {
            let s = self.lock();
            if s.cfg_state.paused() {
                return None;
            }
            Target {
                desired: s.desired.clone(),
                drain: Duration::from_secs(u64::from(s.cfg.ipvs.drain_timeout)),
                timeouts: s.cfg.ipvs.timeouts,
                scope,
            }
        };
        let (tx, rx) = oneshot::channel();
        self.jobs.send(Job::Reconcile { target, mode, reply: tx }).ok()?;
        let r = rx.await.ok()?;
        if r.applied_count > 0 {
            info!("reconcile: {} change(s): {}", r.applied_count, summarize(&r.applied, r.applied_count));
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
        let (cfg, spans) = config::parse_with_spans(text, &file).map_err(|errors| {
            (format!("config has {} error(s); nothing applied", errors.len()), json!({ "errors": errors }))
        })?;
        let cfg = compact(cfg, text, &file).map_err(|e| (e, Value::Null))?;
        let caps = capability_errors(&cfg, &file);
        if !caps.is_empty() {
            return Err((format!("config has {} error(s); nothing applied", caps.len()), json!({ "errors": caps })));
        }
        // The text to roll back to, only when a rollback can happen (a copy
        // of a 10,000-service file is 2.7 MB).
        let mut previous = match confirm_within {
            Some(_) => self.effective_text().map(|(t, _)| t).unwrap_or_default(),
            None => String::new(),
        };
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
            let overlay = {
                let was = previous_weights(&s.desired);
                let keep = (!matches!(s.cfg_state, CfgState::Invalid { .. })).then_some(&s.overlay);
                Overlay::new(&cfg, s.overlay.overrides().clone(), &|k, a, p| was.get(&(*k, a, p)).copied(), keep)
            };
            self.health.apply(overlay.checks());
            self.accept_local(&overlay);
            s.desired = overlay.desired(&cfg);
            s.overlay = overlay;
            s.cfg = cfg;
            s.spans = spans;
            s.journal = 0;
            s.cfg_state = CfgState::Ok;
            s.pending_gen += 1;
            s.pending = confirm_within.map(|secs| {
                (s.pending_gen, Pending { deadline: now_s() + secs, previous: std::mem::take(&mut previous) })
            });
            if confirm_within.is_none() {
                let _ = self.store.clear_pending();
            }
            s.pending_gen
        };
        info!("config applied ({} bytes)", text.len());
        release_free_memory();
        let system = if self.opts.manage_system { Some(self.apply_system().await) } else { None };
        self.sync_helper().await;
        let report = self.reconcile_mode(Mode::Fast).await;
        // Marks after the services: marked traffic always finds its fwmark service.
        let fwmark = self.sync_firewall().await;
        if let Some(secs) = confirm_within {
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                me.expire_pending(gen_).await;
            });
        }
        Ok(json!({
            "persisted": self.store.path(),
            "system": system,
            "reconcile": report,
            "fwmark": fwmark,
            "confirm_within": confirm_within,
        }))
    }

    /// Applies the config's sysctls and network; returns what changed and failed.
    async fn apply_system(&self) -> Value {
        let cfg = self.lock().cfg.clone();
        let sysctls: Vec<_> =
            crate::sysctl::apply(&crate::sysctl::from_config(&cfg)).into_iter().filter(|r| r.failed()).collect();
        for r in &sysctls {
            warn!("sysctl {}: {:?}", r.key, r.outcome);
        }
        let net = crate::net::apply(&cfg).await;
        let changes: Vec<String> = net.changes().map(|i| i.to_string()).collect();
        let failures: Vec<String> = net.failures().map(|i| i.to_string()).collect();
        if !changes.is_empty() {
            info!("network: {} change(s): {}", changes.len(), summarize(&changes, changes.len()));
        }
        for f in &failures {
            warn!("network: {f}");
        }
        json!({ "sysctl_failures": sysctls, "network_changes": changes, "network_failures": failures })
    }

    /// Sets one real's weight: journalled (an fsynced append, not a rewrite
    /// of the whole file), applied as one SET, and folded into the config file
    /// a few seconds later (comments kept, nothing re-parsed).
    async fn set_weight(&self, service: &str, real: &str, weight: u32) -> ApplyResult {
        let t0 = Instant::now();
        let _g = self.apply_lock.lock().await;
        let fail = |e: String| (e, Value::Null);
        if weight > 65535 {
            return Err(fail(format!("weight {weight} is out of range 0..=65535")));
        }
        let (i, j) = {
            let s = self.lock();
            if matches!(s.cfg_state, CfgState::Invalid { .. }) {
                return Err(fail("the config on the box is invalid; apply a valid one first".into()));
            }
            config::edit::find_real(&s.cfg, service, real).map_err(fail)?
        };
        let edit = Edit::Weight { service: service.to_string(), real: real.to_string(), weight };
        self.store.append(&edit).map_err(|e| fail(format!("cannot persist: {e}; nothing applied")))?;
        let t_persist = t0.elapsed();
        {
            let mut s = self.lock();
            s.cfg.services[i].reals[j].weight = weight;
            let d = s.overlay.service(&s.cfg, i);
            Arc::make_mut(&mut s.desired)[i] = Arc::new(d);
            s.journal += 1;
        }
        info!("weight of {real} in {service} set to {weight}");
        let report = self.reconcile_scoped(Mode::Fast, Some(vec![i])).await;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let timing = json!({ "persist_ms": ms(t_persist), "total_ms": ms(t0.elapsed()) });
        self.schedule_fold();
        Ok(json!({ "service": service, "real": real, "weight": weight, "timing": timing, "reconcile": report }))
    }

    /// Folds the journal into the config file once no edit came for
    /// [`FOLD_AFTER`].
    fn schedule_fold(&self) {
        let gen_ = {
            let mut s = self.lock();
            s.fold_gen += 1;
            s.fold_gen
        };
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(FOLD_AFTER).await;
            if me.lock().fold_gen == gen_ {
                me.fold().await;
            }
        });
    }

    /// Writes the file with the journalled edits applied and empties the journal.
    async fn fold(&self) {
        let _g = self.apply_lock.lock().await;
        if self.lock().journal == 0 {
            return;
        }
        match self.effective_text() {
            Ok((text, spans)) => match self.store.persist(&text) {
                Ok(()) => {
                    let mut s = self.lock();
                    s.spans = spans;
                    s.journal = 0;
                    info!("journalled edits folded into {}", self.store.path().display());
                }
                Err(e) => {
                    warn!("cannot fold the edits into {}: {e} (they stay journalled)", self.store.path().display())
                }
            },
            Err(e) => warn!("cannot fold the edits: {e} (they stay journalled)"),
        }
    }

    /// The config as it is: the file with the journal's edits applied, and
    /// the real-server offsets in that text.
    fn effective_text(&self) -> Result<(String, config::Spans), String> {
        let base = self.store.read().map_err(|e| e.to_string())?.unwrap_or_default();
        let edits = self.store.edits();
        if edits.is_empty() {
            return Ok((base, self.lock().spans.clone()));
        }
        // Edits are applied to a copy of the model (a few MiB at 10,000
        // services): only when there are some.
        let (spans, mut cfg) = {
            let s = self.lock();
            (s.spans.clone(), s.cfg.clone())
        };
        let (text, spans, warnings) = config::edit::apply_edits(&base, &spans, &mut cfg, &edits);
        for w in warnings {
            warn!("{w}");
        }
        Ok((text, spans))
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
        let (tx, rx) = oneshot::channel();
        let summary = match self.jobs.send(Job::Summary { reply: tx }) {
            Ok(()) => rx.await.unwrap_or_else(|_| Err("kernel worker stopped".into())),
            Err(_) => Err("kernel worker stopped".into()),
        };
        let s = self.lock();
        let (ipvs, services, dests) = match &summary {
            Ok((info, n, d)) => (
                json!({ "available": true, "version": version_str(info.version), "conn_tab_size": info.conn_tab_size }),
                *n,
                *d,
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
            "fwmark": {
                "rules": crate::fwmark::config::mark_rules(&s.cfg).len(),
                "last": self.fw.lock().unwrap_or_else(|p| p.into_inner()).last.as_ref().map(|(_, r)| r.clone()),
            },
            "reconcile": { "passes": s.passes, "interval_ms": self.opts.interval.as_millis() as u64, "last": last,
                           "paused": s.cfg_state.paused() },
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
        let table = ipvsadm::Table { info: snap.info, services: &snap.table };
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
                let text = self.effective_text().map(|(t, _)| t).unwrap_or_default();
                let s = self.lock();
                Response::ok(id, json!({ "text": text, "path": self.store.path(), "status": s.cfg_state }))
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
                // Like `ipvsadm -C; ipvsadm -R < rules`: the services become
                // exactly what the rules describe (the rest of the config stays).
                let cfg = self.lock().cfg.clone();
                match ipvsadm::restore(&[], &rules) {
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
            Command::SetWeight { service, real, weight } => done(self.set_weight(&service, &real, weight).await),
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
            Command::HistoryGet { n } => match self.store.version(n) {
                Ok(text) if n >= 1 => Response::ok(id, json!({ "n": n, "text": text })),
                Ok(_) => Response::err(id, "versions are numbered from 1"),
                Err(e) => Response::err(id, format!("config version {n}: {e}")),
            },
            Command::Net => match (crate::net::links().await, crate::net::routes().await) {
                (Ok(links), Ok(routes)) => Response::ok(id, json!({ "links": links, "routes": routes })),
                (Err(e), _) | (_, Err(e)) => Response::err(id, e.to_string()),
            },
            Command::Vrrp => Response::ok(id, self.vrrp.status().await),
            Command::Checks => Response::ok(id, self.checks()),
            Command::RealOverride { service, real, action } => done(self.set_override(&service, &real, action).await),
            Command::Fwmark => Response::ok(id, self.fwmark()),
            Command::Import { format, text, base } => self.import(id, format, &text, base.as_deref()),
            Command::VrrpMaintenance { target, on } => match self.vrrp.maintenance(&target, on).await {
                Ok(v) => Response::ok(id, v),
                Err(e) => Response::err(id, e),
            },
        }
    }

    /// `import`: converts pasted text and fits it onto `base` (or the
    /// applied config). Nothing is applied or written.
    fn import(&self, id: u64, format: ImportFormat, text: &str, base: Option<&str>) -> Response {
        if text.len() > MAX_IMPORT_TEXT {
            return Response::err(
                id,
                format!("the text is {} bytes; import takes at most {} KiB", text.len(), MAX_IMPORT_TEXT / 1024),
            );
        }
        let base = match base {
            Some(t) => match config::parse(t, "base") {
                Ok(c) => c,
                Err(errors) => {
                    return Response::err_with(
                        id,
                        format!("the config to import into has {} error(s)", errors.len()),
                        json!({ "errors": errors }),
                    );
                }
            },
            None => self.lock().cfg.clone(),
        };
        let p = crate::import::paste(format, text, &base);
        let r = &p.outcome.report;
        let mut entries = Vec::new();
        for k in [ImportKind::Error, ImportKind::NotImported, ImportKind::Note] {
            for e in r.of(k) {
                entries.push(json!({
                    "file": e.loc.file, "line": e.loc.line, "kind": e.kind.to_string(),
                    "what": e.what, "message": e.message,
                }));
            }
        }
        // The CLI's summary; nothing is ever written here, converted or not.
        let summary = r.text().lines().last().unwrap_or_default().trim_end_matches("; no config written").to_string();
        let data = json!({
            "converted": p.outcome.config.is_some(),
            "summary": summary,
            "report": entries,
            "toml": p.outcome.toml,
            "replaced": p.replaced,
            "merge_errors": p.merge_errors,
            "merged": p.merged.as_ref().map(Config::to_toml),
        });
        if p.merged.is_some() {
            Response::ok(id, data)
        } else if !p.merge_errors.is_empty() {
            Response::err_with(id, "the imported config does not fit this box's config", data)
        } else {
            Response::err_with(id, summary, data)
        }
    }

    /// What applying `cfg` would change in the kernel now (for validate/diff).
    async fn preview(&self, cfg: &Config) -> Vec<String> {
        let Ok(snap) = self.snapshot().await else { return Vec::new() };
        let mut drains = Drains::default();
        let d = {
            let s = self.lock();
            let was = previous_weights(&s.desired);
            Overlay::new(cfg, s.overlay.overrides().clone(), &|k, a, p| was.get(&(*k, a, p)).copied(), Some(&s.overlay))
                .desired(cfg)
        };
        let drain = Duration::from_secs(u64::from(cfg.ipvs.drain_timeout));
        let actual = reconcile::Actual::from_table(snap.table);
        reconcile::plan(&d, &actual, drain, &mut drains, 0).ops.iter().map(Op::to_string).collect()
    }
}

/// The weight of every real in a desired table.
fn previous_weights(d: &reconcile::Desired) -> std::collections::HashMap<(ServiceKey, std::net::IpAddr, u16), u32> {
    d.iter().flat_map(|s| s.dests.iter().map(move |x| ((s.svc.key, x.addr, x.port), x.weight))).collect()
}

fn version_str(v: u32) -> String {
    format!("{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
}

fn summarize(ops: &[String], total: usize) -> String {
    let mut s = ops.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
    if total > 5 {
        s.push_str(&format!("; and {} more", total - 5));
    }
    s
}

/// How long an out-of-band edit of the table may stay unrepaired (issue 3:
/// `ipvsadm -C` repaired within 5 s).
pub const REPAIR_WITHIN: Duration = Duration::from_secs(5);

/// The pause after a periodic pass that took `took`, before the next one.
///
/// Passes start `interval` apart while they are cheap. A costly one (a big
/// table on a slow box: 1 to 2 s at 10,000 services under TCG, most of it
/// CPU) is followed by up to three times its own duration of rest, as long as
/// an edit made just after the pass read its service is still repaired
/// within `within`: the next pass sees it and repairs it as it ends,
/// `took + gap + took` after the edit, with half a second to spare for that
/// pass being slower. Where even back-to-back passes cannot keep the bound,
/// the cadence is what it was.
pub fn verify_gap(interval: Duration, took: Duration, within: Duration) -> Duration {
    let cadence = interval.saturating_sub(took);
    let spare = within.saturating_sub(took * 2 + Duration::from_millis(500));
    cadence.max(spare.min(took * 3))
}

/// Services above which a parsed config is compacted ([`compact`]).
const COMPACT_ABOVE: usize = 500;

/// Lays a large parsed config out again in one piece. The parser builds it
/// among the TOML tree's temporaries (about 40 bytes per byte of text); once
/// those are freed the config's small blocks stay scattered over pages glibc
/// cannot give back, and each whole-config apply of a 10,000-service file
/// left 3-7 MiB more resident (host: 25.0, 28.8, 31.9 MiB after three
/// applies; compacted: 22.0, 24.9, 24.9). Serialising it, freeing it and
/// reading it back lets the copy fill the freed, coalesced space in order.
/// Costs about a tenth of the parse. Should the copy not read back (a bug),
/// the text is parsed again rather than applying anything else.
fn compact(cfg: Config, text: &str, file: &str) -> Result<Config, String> {
    if cfg.services.len() <= COMPACT_ABOVE {
        return Ok(cfg);
    }
    let bytes = match serde_json::to_vec(&cfg) {
        Ok(b) => b,
        Err(e) => {
            warn!("config kept as parsed: it does not serialise ({e})");
            return Ok(cfg);
        }
    };
    drop(cfg);
    release_free_memory();
    serde_json::from_slice(&bytes).or_else(|e| {
        warn!("the compacted config does not read back ({e}); parsing the text again");
        config::parse(text, file)
            .map_err(|errors| format!("config parsed once but not twice ({} error(s))", errors.len()))
    })
}

/// Gives the heap pages freed after parsing a large config or merging a dump
/// back to the kernel (a 10,000-service config briefly needs tens of MiB that
/// glibc would otherwise keep mapped).
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only releases free memory of the allocator's arenas;
    // it touches no live allocation and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Errors a config can only show on the box: a scheduler module that the
/// running kernel lacks (e.g. `twos` on 6.1). Skipped when IPVS isn't loaded.
/// A scheduler is available when loaded (or built in) or when the image ships
/// its module: init loads the unused ones only after `lbd ready`, and the
/// kernel asks for a missing one through init as modprobe.
fn capability_errors(cfg: &Config, file: &str) -> Vec<ConfigError> {
    let sys = std::path::Path::new("/sys/module");
    if !sys.join("ip_vs").exists() {
        return Vec::new();
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let shipped = shipped_modules(&std::path::Path::new("/lib/modules").join(release.trim()));
    let mut out = Vec::new();
    for (i, s) in cfg.services.iter().enumerate() {
        let m = format!("ip_vs_{}", s.scheduler);
        if !sys.join(&m).exists() && !shipped.contains(&m) {
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

/// Names of the modules `modules.dep` under `root` lists (`-` as `_`, as
/// the kernel names them); empty without the file.
pub(crate) fn shipped_modules(root: &std::path::Path) -> std::collections::HashSet<String> {
    let dep = std::fs::read_to_string(root.join("modules.dep")).unwrap_or_default();
    dep.lines()
        .filter_map(|l| {
            let file = l.split(':').next()?.rsplit('/').next()?;
            let name = file.split(".ko").next()?;
            (!name.is_empty()).then(|| name.replace('-', "_"))
        })
        .collect()
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
    run_notify(opts, kernel, ring, None).await
}

/// [`run`], and once the control socket is bound, one line (`ready`) to
/// `ready`, which is then closed: init's readiness pipe
/// ([`crate::paths::READY_FD_ENV`]).
pub async fn run_notify(
    opts: Options,
    kernel: Box<dyn Kernel>,
    ring: LogRing,
    ready: Option<std::fs::File>,
) -> anyhow::Result<()> {
    let sock = opts.socket.clone();
    let interval = opts.interval;
    let d = Daemon::new(opts, kernel, ring);
    d.recover_pending().await;
    d.reconcile().await;
    d.sync_helper().await;
    // Adopt the table left by the previous run when it matches (no write).
    d.sync_firewall().await;

    let _ = std::fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o600))?;
    }
    info!("control socket {} ready", sock.display());
    if let Some(mut f) = ready {
        // Connections from now on wait in the listener's backlog until the
        // loop below accepts them.
        let _ = std::io::Write::write_all(&mut f, b"ready\n");
    }

    let rec = d.clone();
    tokio::spawn(async move {
        let mut gap = interval;
        loop {
            tokio::time::sleep(gap).await;
            let t0 = Instant::now();
            rec.reconcile().await;
            rec.sync_firewall().await;
            gap = verify_gap(interval, t0.elapsed(), REPAIR_WITHIN);
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
                    let mut reader = BufReader::new(r);
                    loop {
                        // Bounded: a client cannot make lbd buffer without end.
                        let mut buf = Vec::new();
                        let limit = MAX_REQUEST_LINE as u64 + 1;
                        match (&mut reader).take(limit).read_until(b'\n', &mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                        let too_long = buf.len() > MAX_REQUEST_LINE && buf.last() != Some(&b'\n');
                        let resp = if too_long {
                            Response::err(
                                0,
                                format!("request longer than {} MiB: connection closed", MAX_REQUEST_LINE >> 20),
                            )
                        } else {
                            match serde_json::from_slice::<Request>(&buf) {
                                Ok(req) => d.handle(req).await,
                                Err(e) => Response::err(0, format!("bad request: {e}")),
                            }
                        };
                        let mut out = serde_json::to_string(&resp).unwrap_or_default();
                        out.push('\n');
                        if w.write_all(out.as_bytes()).await.is_err() || too_long {
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
    // switch VRRP just asked for is done before the process exits (a cheap
    // job, not a dump of a possibly huge table).
    let (tx, rx) = oneshot::channel();
    if d.jobs.send(Job::Summary { reply: tx }).is_ok() {
        let _ = rx.await;
    }
    info!("stopping; the IPVS table is left as it is");
    let _ = std::fs::remove_file(&sock);
    Ok(())
}

#[cfg(test)]
mod shipped_tests {
    #[test]
    fn shipped_modules_come_from_modules_dep() {
        let dir = std::env::temp_dir().join(format!("lbd-shipped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(super::shipped_modules(&dir).is_empty(), "no modules.dep: nothing shipped");
        std::fs::write(
            dir.join("modules.dep"),
            "kernel/net/netfilter/ipvs/ip_vs_mh.ko: kernel/net/netfilter/ipvs/ip_vs.ko\n\
             kernel/net/netfilter/ipvs/ip_vs.ko:\nkernel/drivers/nvme/host/nvme-core.ko.xz:\n",
        )
        .unwrap();
        let s = super::shipped_modules(&dir);
        assert!(s.contains("ip_vs_mh") && s.contains("ip_vs") && s.contains("nvme_core"), "{s:?}");
        assert!(!s.contains("ip_vs_twos"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_gap_rests_after_costly_passes_within_the_repair_bound() {
        let ms = Duration::from_millis;
        let two = Duration::from_secs(2);
        // Cheap passes keep the configured cadence, start to start.
        assert_eq!(verify_gap(two, ms(10), REPAIR_WITHIN), ms(1990));
        assert_eq!(verify_gap(two, ms(400), REPAIR_WITHIN), ms(1600));
        for took in [600, 800, 1100, 1400, 1700, 2200, 3000, 6000].map(ms) {
            let gap = verify_gap(two, took, REPAIR_WITHIN);
            // Never sooner than the cadence, never more than 3 passes' rest.
            assert!(gap >= two.saturating_sub(took) && gap <= (took * 3).max(two), "{took:?}: {gap:?}");
            // An edit just after its service was read: repaired at the end
            // of the next pass, within the bound whenever the cadence keeps it.
            if took * 2 + two.saturating_sub(took) + ms(500) <= REPAIR_WITHIN {
                assert!(took * 2 + gap + ms(500) <= REPAIR_WITHIN, "{took:?}: {gap:?}");
            }
        }
        // 1.1 s passes (10,000 services under TCG, quiet machine): one every
        // 3.4 s instead of every 2 s, 32 % of a core instead of 55 %.
        assert_eq!(verify_gap(two, ms(1100), REPAIR_WITHIN), ms(2300));
        // Passes too slow for the bound: back to the cadence (here none).
        assert_eq!(verify_gap(two, ms(3000), REPAIR_WITHIN), Duration::ZERO);
    }
}
