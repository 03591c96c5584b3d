//! The daemon against a simulated kernel: the transaction and restart rules
//! that do not need a real IPVS (those are proven again in guests).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lbd::ctl::proto::{Command, Request, Response, View};
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
        let dir = std::env::temp_dir().join(format!("lbd-daemon-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Env { dir, kernel: SharedSim::new() }
    }
    fn opts(&self) -> Options {
        Options {
            socket: self.dir.join("lbd.sock"),
            config: self.dir.join("lvsbox.toml"),
            history: self.dir.join("history"),
            keep: 10,
            interval: Duration::from_secs(3600),
            conn_proc: self.dir.join("ip_vs_conn"),
        }
    }
    fn daemon(&self) -> Daemon {
        Daemon::new(self.opts(), Box::new(self.kernel.clone()), LogRing::new())
    }
    fn changes(&self) -> u64 {
        self.kernel.0.lock().unwrap().changes
    }
    fn services(&self) -> usize {
        self.kernel.0.lock().unwrap().table.services.len()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn call(d: &Daemon, cmd: Command) -> Response {
    d.handle(Request { id: 7, cmd }).await
}

const CFG: &str = r#"
[system]
hostname = "lb1"

[ipvs.timeouts]
tcp = 600

[[services]]
name = "web"
address = "192.0.2.10:80"
scheduler = "rr"
[[services.reals]]
address = "10.0.0.1"
[[services.reals]]
address = "10.0.0.2"
"#;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn apply_programs_the_kernel_and_persists() {
    let env = Env::new("apply");
    rt().block_on(async {
        let d = env.daemon();
        let r = call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await;
        assert!(r.ok, "{r:?}");
        assert_eq!(env.services(), 1);
        assert_eq!(std::fs::read_to_string(env.dir.join("lvsbox.toml")).unwrap(), CFG);
        let l = call(&d, Command::List { view: View::Default, exact: false }).await;
        let text = l.data.unwrap();
        let text = text.as_str().unwrap();
        assert!(text.contains("TCP  192.0.2.10:80 rr\n"), "{text}");
        assert!(text.contains("  -> 10.0.0.2:80                  Route   1      0          0"), "{text}");
        let t = call(&d, Command::List { view: View::Timeout, exact: false }).await;
        assert_eq!(t.data.unwrap(), "Timeout (tcp tcpfin udp): 600 120 300\n");
        let s = call(&d, Command::Status).await.data.unwrap();
        assert_eq!(s["kernel"]["services"], 1);
        assert_eq!(s["config"]["status"]["state"], "ok");
    });
}

#[test]
fn invalid_config_changes_nothing_and_lists_every_error() {
    let env = Env::new("invalid");
    rt().block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
        let before = env.changes();
        let bad = CFG.replace("\"rr\"", "\"wrrr\"").replace("10.0.0.2\"", "10.0.0.2\"\nweight = -1");
        let r = call(&d, Command::Apply { text: bad, confirm_within: None }).await;
        assert!(!r.ok);
        let errors = r.data.unwrap()["errors"].as_array().unwrap().clone();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().all(|e| e["line"].as_u64().unwrap() > 0));
        assert_eq!(env.changes(), before);
        assert_eq!(std::fs::read_to_string(env.dir.join("lvsbox.toml")).unwrap(), CFG);
    });
}

#[test]
fn restart_with_unchanged_config_makes_zero_changes() {
    let env = Env::new("restart");
    let runtime = rt();
    runtime.block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
    });
    let before = env.changes();
    assert!(before > 0);
    runtime.block_on(async {
        let d = env.daemon();
        let r = d.reconcile().await.unwrap();
        assert!(r.applied.is_empty(), "{:?}", r.applied);
    });
    assert_eq!(env.changes(), before);
}

#[test]
fn out_of_band_flush_is_repaired() {
    let env = Env::new("flush");
    rt().block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
        env.kernel.0.lock().unwrap().table.services.clear();
        let r = d.reconcile().await.unwrap();
        assert_eq!(r.applied.len(), 3, "{:?}", r.applied);
        assert_eq!(env.services(), 1);
    });
}

#[test]
fn unconfirmed_apply_rolls_back_and_confirmed_stays() {
    let env = Env::new("confirm");
    rt().block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
        let two = format!("{CFG}\n[[services]]\naddress = \"192.0.2.11:443\"\n");
        assert!(call(&d, Command::Apply { text: two.clone(), confirm_within: Some(1) }).await.ok);
        assert_eq!(env.services(), 2);
        assert!(env.dir.join("pending-confirm.json").exists());
        let t0 = Instant::now();
        while env.services() != 1 {
            assert!(t0.elapsed() < Duration::from_secs(10), "no rollback within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(std::fs::read_to_string(env.dir.join("lvsbox.toml")).unwrap(), CFG);
        assert!(!env.dir.join("pending-confirm.json").exists());

        assert!(call(&d, Command::Apply { text: two.clone(), confirm_within: Some(1) }).await.ok);
        assert!(call(&d, Command::Confirm).await.ok);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(env.services(), 2, "a confirmed apply must stay");
        assert!(!call(&d, Command::Confirm).await.ok);
    });
}

#[test]
fn pending_apply_at_startup_rolls_back() {
    let env = Env::new("boot-rollback");
    let runtime = rt();
    let two = format!("{CFG}\n[[services]]\naddress = \"192.0.2.11:443\"\n");
    runtime.block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
        assert!(call(&d, Command::Apply { text: two.clone(), confirm_within: Some(600) }).await.ok);
    });
    // lbd (or the box) stops before the operator confirmed.
    let opts = env.opts();
    runtime.block_on(async {
        let ring = LogRing::new();
        let sock = opts.socket.clone();
        let task = tokio::spawn(lbd::daemon::run(opts, Box::new(env.kernel.clone()), ring));
        let t0 = Instant::now();
        while !sock.exists() {
            assert!(t0.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
    });
    assert_eq!(std::fs::read_to_string(env.dir.join("lvsbox.toml")).unwrap(), CFG);
    assert_eq!(env.services(), 1);
}

#[test]
fn restore_seed_rules_and_save_them_back() {
    let env = Env::new("restore");
    rt().block_on(async {
        let d = env.daemon();
        let rules = "ipvsadm -A -t 192.168.1.200:80 -s rr\n\
                     ipvsadm -a -t 192.168.1.200:80 -r 192.168.1.11:80 -g -w 1\n\
                     ipvsadm -a -t 192.168.1.200:80 -r 192.168.1.12:80 -g -w 1\n";
        let r = call(&d, Command::Restore { rules: rules.into(), confirm_within: None }).await;
        assert!(r.ok, "{r:?}");
        let s = call(&d, Command::List { view: View::Rules, exact: false }).await.data.unwrap();
        assert_eq!(
            s.as_str().unwrap(),
            "-A -t 192.168.1.200:80 -s rr\n-a -t 192.168.1.200:80 -r 192.168.1.11:80 -g -w 1\n-a -t 192.168.1.200:80 -r 192.168.1.12:80 -g -w 1\n"
        );
    });
}

#[test]
fn validate_previews_changes() {
    let env = Env::new("validate");
    rt().block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
        let edited = CFG.replace("address = \"10.0.0.2\"", "address = \"10.0.0.2\"\nweight = 4");
        let r = call(&d, Command::Validate { text: edited }).await;
        let changes: Vec<Value> = r.data.unwrap()["changes"].as_array().unwrap().clone();
        assert_eq!(changes, vec![Value::from("edit real 10.0.0.2:80 of TCP 192.0.2.10:80 weight 4")]);
        assert_eq!(env.services(), 1);
    });
}
