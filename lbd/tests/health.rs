//! The daemon with health checks against a simulated kernel and real probes
//! on 127.0.0.1 (the reals' checks use `connect_ip`): reals enter the table
//! after their first good check, leave it when their service stops and come
//! back, the sorry server takes over without quorum, overrides persist, and
//! a restart changes nothing in the kernel.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lbd::ctl::proto::{Command, OverrideAction, Request, Response};
use lbd::daemon::{Daemon, Options};
use lbd::kernel::SharedSim;
use lbd::logring::LogRing;
use serde_json::Value;

struct Env {
    dir: PathBuf,
    kernel: SharedSim,
}

impl Env {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lbd-health-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Env { dir, kernel: SharedSim::new() }
    }
    fn daemon(&self) -> Daemon {
        let opts = Options { keep: 3, ..Options::in_dir(&self.dir) };
        Daemon::new(opts, Box::new(self.kernel.clone()), LogRing::new())
    }
    /// `addr weight` of each real of service `web`.
    fn reals(&self, _port: u16) -> Vec<String> {
        let k = self.kernel.0.lock().unwrap();
        let mut v: Vec<String> = k
            .table
            .services
            .iter()
            .filter(|(s, _)| s.key.to_string() == "TCP 192.0.2.10:80")
            .flat_map(|(_, d)| d.iter().map(|x| format!("{} {}", x.dest.addr, x.dest.weight)))
            .collect();
        v.sort();
        v
    }
    fn changes(&self) -> u64 {
        self.kernel.0.lock().unwrap().changes
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn call(d: &Daemon, cmd: Command) -> Response {
    d.handle(Request { id: 1, cmd }).await
}

/// Waits (bounded) until `f` holds; returns how long it took.
async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t0.elapsed()
}

fn config(up: u16, down: u16) -> String {
    format!(
        r#"
[[services]]
name = "web"
address = "192.0.2.10:80"
quorum = 1
sorry_server = {{ address = "10.0.0.99" }}
check = {{ type = "tcp", connect_ip = "127.0.0.1", delay_loop = 0.2, connect_timeout = 0.5, retry = 1, delay_before_retry = 0.1 }}
[[services.reals]]
address = "10.0.0.1"
check = {{ connect_port = {up} }}
[[services.reals]]
address = "10.0.0.2"
check = {{ connect_port = {down} }}

[[services]]
name = "other"
address = "192.0.2.11:80"
check = {{ type = "tcp", connect_ip = "127.0.0.1", connect_port = {up}, delay_loop = 0.2, connect_timeout = 0.5, retry = 1, delay_before_retry = 0.1 }}
[[services.reals]]
address = "10.0.0.1"
"#
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn checks_drive_the_table_and_a_restart_changes_nothing() {
    let env = Env::new("drive");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap().port();
    let down = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    rt().block_on(async {
        let d = env.daemon();
        let r = call(&d, Command::Apply { text: config(up, down), confirm_within: None }).await;
        assert!(r.ok, "{r:?}");
        // Right after the apply nothing is checked yet: no real is in.
        assert!(env.reals(80).is_empty() || env.reals(80) == ["10.0.0.1 1"], "{:?}", env.reals(80));
        // The live real enters after its first check, the dead one never.
        until("10.0.0.1 in", Duration::from_secs(5), || env.reals(80) == ["10.0.0.1 1"]).await;
        // Both first verdicts are in (their probes end in either order).
        let t0 = Instant::now();
        let v = loop {
            let v = call(&d, Command::Checks).await.data.unwrap();
            if v["summary"]["unknown"] == 0 || t0.elapsed() > Duration::from_secs(5) {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(v["summary"]["checks"], 2, "one check for 10.0.0.1 behind two VIPs: {v}");
        assert_eq!(v["summary"]["up"], 1, "{v}");
        let r2 = v["reals"].as_array().unwrap().iter().find(|r| r["real"] == "10.0.0.2:80").unwrap().clone();
        assert_eq!(r2["health"], "down");
        assert_eq!(r2["status"]["last_reason"], "connection refused");
        // Its service dies: out within delay_loop + retry, and the quorum is
        // lost: the sorry server alone.
        drop(l);
        let t = until("sorry server in", Duration::from_secs(5), || env.reals(80) == ["10.0.0.99 1"]).await;
        assert!(t < Duration::from_millis(1500), "{t:?}");
        assert!(env.reals(80).iter().all(|r| !r.starts_with("10.0.0.1 ")));
        // It comes back: the sorry server leaves.
        let l = TcpListener::bind(("127.0.0.1", up)).unwrap();
        until("10.0.0.1 back", Duration::from_secs(5), || env.reals(80) == ["10.0.0.1 1"]).await;
        // Drain then disable persist and act at once.
        let r = call(
            &d,
            Command::RealOverride { service: "other".into(), real: "10.0.0.1".into(), action: OverrideAction::Drain },
        )
        .await;
        assert!(r.ok, "{r:?}");
        assert_eq!(env.reals(80), ["10.0.0.1 1"], "service web untouched");
        assert_eq!(env.reals(80).len(), 1);
        let other = || {
            env.kernel
                .0
                .lock()
                .unwrap()
                .table
                .services
                .iter()
                .find(|(s, _)| s.key.to_string() == "TCP 192.0.2.11:80")
                .map(|(_, d)| d.iter().map(|x| x.dest.weight).collect::<Vec<_>>())
        };
        assert_eq!(other(), Some(vec![0]));
        let saved = std::fs::read_to_string(env.dir.join("lvsbox-overrides.json")).unwrap();
        assert!(saved.contains("\"drain\"") && saved.contains("TCP 192.0.2.11:80"), "{saved}");
        // A restart: zero kernel changes, the override still there.
        drop(d);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = env.changes();
        let d = env.daemon();
        let r = d.reconcile().await.unwrap();
        assert_eq!(r.applied_count, 0, "{r:?}");
        // A few rounds of checks later still nothing changed.
        tokio::time::sleep(Duration::from_millis(800)).await;
        d.reconcile().await.unwrap();
        assert_eq!(env.changes(), before, "a restart must not touch the kernel");
        assert_eq!(other(), Some(vec![0]));
        let v = call(&d, Command::Checks).await.data.unwrap();
        assert_eq!(v["overrides"].as_array().unwrap().len(), 1, "{v}");
        let r = call(
            &d,
            Command::RealOverride { service: "other".into(), real: "10.0.0.1".into(), action: OverrideAction::Enable },
        )
        .await;
        assert!(r.ok);
        assert_eq!(other(), Some(vec![1]));
        let r = call(
            &d,
            Command::RealOverride { service: "web".into(), real: "10.0.0.9".into(), action: OverrideAction::Disable },
        )
        .await;
        assert!(!r.ok && r.error.unwrap().contains("no real server 10.0.0.9"));
        drop(l);
    });
}

#[test]
fn checks_view_lists_each_real_with_its_last_result() {
    let env = Env::new("view");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap().port();
    rt().block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: config(up, up), confirm_within: None }).await.ok);
        until("both in", Duration::from_secs(5), || env.reals(80).len() == 2).await;
        let v: Value = call(&d, Command::Checks).await.data.unwrap();
        for r in v["reals"].as_array().unwrap() {
            assert_eq!(r["health"], "up", "{r}");
            assert_eq!(r["status"]["last_ok"], true, "{r}");
            assert!(r["status"]["last_latency_ms"].as_f64().unwrap() >= 0.0);
            assert_eq!(r["status"]["transitions"], 1, "unknown -> up only: {r}");
        }
        assert_eq!(v["summary"]["checks"], 1, "both reals' checks go to 127.0.0.1:{up}: one check");
        assert_eq!(v["services"][0]["quorum"], true);
    });
}
