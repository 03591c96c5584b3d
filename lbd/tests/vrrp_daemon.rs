//! The daemon's VRRP commands without root or namespaces: the engine runs,
//! an instance on a missing interface sits in Fault with the reason, status
//! and maintenance answer, apply starts and stops instances.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lbd::ctl::proto::{Command, Request, Response};
use lbd::daemon::{Daemon, Options};
use lbd::kernel::SharedSim;
use lbd::logring::LogRing;
use serde_json::Value;

struct Env {
    dir: PathBuf,
}

impl Env {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lbd-vrrp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Env { dir }
    }
    fn daemon(&self, config: Option<&str>) -> Daemon {
        if let Some(c) = config {
            std::fs::write(self.dir.join("lvsbox.toml"), c).unwrap();
        }
        let opts = Options::in_dir(&self.dir);
        Daemon::new(opts, Box::new(SharedSim::new()), LogRing::new())
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

const CFG: &str = r#"
[[vrrp.instances]]
name = "web"
interface = "nosuchif0"
vrid = 51
priority = 150
advert_interval = 0.5
vips = [{ address = "192.0.2.100/24" }]

[[vrrp.instances]]
name = "db"
interface = "nosuchif0"
vrid = 52
vips = [{ address = "192.0.2.101/24" }]

[[vrrp.sync_groups]]
name = "all"
instances = ["web", "db"]
"#;

async fn status(d: &Daemon) -> Value {
    let r = call(d, Command::Vrrp).await;
    assert!(r.ok, "{r:?}");
    r.data.unwrap()
}

async fn wait(d: &Daemon, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let s = status(d).await;
        if f(&s) {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "{what}: {s:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn without_vrrp_nothing_runs_and_maintenance_says_so() {
    let env = Env::new("none");
    let d = env.daemon(None);
    let s = status(&d).await;
    assert_eq!(s["running"], false);
    let r = call(&d, Command::VrrpMaintenance { target: "web".into(), on: true }).await;
    assert!(!r.ok && r.error.unwrap().contains("not running"));
}

#[tokio::test]
async fn instances_on_a_missing_interface_are_in_fault_with_the_reason() {
    let env = Env::new("fault");
    let d = env.daemon(Some(CFG));
    let s = wait(&d, "both instances in fault", |s| {
        s["instances"].as_array().is_some_and(|a| a.len() == 2 && a.iter().all(|i| i["state"] == "fault"))
    })
    .await;
    let web = &s["instances"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["priority"], 150);
    assert_eq!(web["advert_interval_ms"], 500);
    assert_eq!(web["last_error"], "interface nosuchif0 does not exist", "{web:#}");
    assert_eq!(s["sync_groups"][0]["name"], "all");
    // Maintenance by group name reaches both members; unknown names fail.
    let r = call(&d, Command::VrrpMaintenance { target: "all".into(), on: true }).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.data.unwrap().as_array().unwrap().len(), 2);
    let s = status(&d).await;
    assert!(s["instances"].as_array().unwrap().iter().all(|i| i["maintenance"] == true));
    let r = call(&d, Command::VrrpMaintenance { target: "nope".into(), on: true }).await;
    assert!(!r.ok && r.error.unwrap().contains("no VRRP instance or sync group named `nope`"));
}

#[tokio::test]
async fn apply_adds_and_removes_instances() {
    let env = Env::new("apply");
    let d = env.daemon(None);
    let r = call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await;
    assert!(r.ok, "{r:?}");
    wait(&d, "two instances", |s| s["instances"].as_array().is_some_and(|a| a.len() == 2)).await;
    let one = CFG.split("[[vrrp.instances]]\nname = \"db\"").next().unwrap();
    let r = call(&d, Command::Apply { text: one.into(), confirm_within: None }).await;
    assert!(r.ok, "{r:?}");
    let s = wait(&d, "one instance", |s| s["instances"].as_array().is_some_and(|a| a.len() == 1)).await;
    assert_eq!(s["instances"][0]["name"], "web");
    // A config with VRRP errors is refused whole, with located errors.
    let bad = CFG.replace("vrid = 52", "vrid = 51");
    let r = call(&d, Command::Apply { text: bad, confirm_within: None }).await;
    assert!(!r.ok);
    assert!(r.data.unwrap().to_string().contains("VRID 51 is already used on `nosuchif0`"));
}
