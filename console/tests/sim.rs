//! The console's client code (Executor, lbd and init clients) and the App
//! driven against a real `lbd run --sim` process over its Unix socket.
//!
//! The lbd binary comes from this workspace: `LBD_BIN` if set, else it is
//! built (a no-op when fresh) into the target dir this test runs from.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Proc, Stdio};
use std::time::{Duration, Instant};

use console::app::{App, Effect, Event, Mode, Options};
use console::exec::Executor;
use console::model::{LiveService, Status};
use console::password;
use crossterm::event::{KeyCode, KeyEvent};
use lbd::ctl::proto::Command;

fn lbd_bin() -> PathBuf {
    if let Ok(p) = std::env::var("LBD_BIN") {
        return p.into();
    }
    // target/<profile>/deps/sim-HASH
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let target = profile_dir.parent().unwrap();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut cmd = Proc::new(env!("CARGO"));
    cmd.args(["build", "-q", "-p", "lbd", "--bin", "lbd", "--target-dir"]).arg(target).current_dir(workspace);
    if release {
        cmd.arg("--release");
    }
    let st = cmd.status().expect("run cargo build -p lbd");
    assert!(st.success(), "cargo build -p lbd failed");
    let bin = profile_dir.join("lbd");
    assert!(bin.is_file(), "{} missing", bin.display());
    bin
}

/// `lbd run --sim` in a temp dir; killed (by its own pid) and cleaned on drop.
struct Lbd {
    child: Child,
    dir: PathBuf,
}

impl Lbd {
    fn start(tag: &str, config: &str) -> Lbd {
        let dir = std::env::temp_dir().join(format!("console-sim-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("lvsbox.toml"), config).unwrap();
        let child = Proc::new(lbd_bin())
            .args(["run", "--sim", "--interval-ms", "500", "--socket"])
            .arg(dir.join("lbd.sock"))
            .arg("--config")
            .arg(dir.join("lvsbox.toml"))
            .arg("--history")
            .arg(dir.join("history"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("lbd.log")).unwrap())
            .spawn()
            .expect("spawn lbd");
        let l = Lbd { child, dir };
        let t0 = Instant::now();
        while !l.sock().exists() {
            assert!(t0.elapsed() < Duration::from_secs(20), "lbd did not create its socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        l
    }
    fn sock(&self) -> PathBuf {
        self.dir.join("lbd.sock")
    }
    fn exec(&self) -> Executor {
        let mut e = Executor::new(&self.sock(), &self.dir.join("init.sock"), &self.dir.join("lvsbox.toml"));
        e.iterations = password::MIN_ITERATIONS;
        e
    }
}

impl Drop for Lbd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const PW: &str = "correct horse";

fn config() -> String {
    format!(
        r#"
[system]
hostname = "simbox"
console_password = "{}"

[[interfaces]]
name = "lan"
addresses = ["192.168.100.244/24"]

[[services]]
name = "web"
address = "192.168.100.111:80"
scheduler = "wrr"
[[services.reals]]
address = "192.168.100.31"
weight = 3
"#,
        password::hash(PW, password::MIN_ITERATIONS).unwrap()
    )
}

fn data(ev: Option<Event>) -> serde_json::Value {
    match ev {
        Some(Event::Lbd(_, Ok(r))) => {
            assert!(r.ok, "lbd refused: {:?}", r.error);
            r.data.unwrap_or_default()
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn executor_talks_to_a_real_lbd_and_reports_init_as_unreachable() {
    let lbd = Lbd::start("exec", &config());
    let mut ex = lbd.exec();

    let st: Status = serde_json::from_value(data(ex.run(Effect::Lbd(Command::Status)))).unwrap();
    assert_eq!(st.hostname, "simbox");
    assert_eq!(st.config.status.state, "ok");
    assert!(st.ipvs.available);

    let svcs: Vec<LiveService> = serde_json::from_value(data(ex.run(Effect::Lbd(Command::Services)))).unwrap();
    assert_eq!(svcs.len(), 1);
    assert_eq!(svcs[0].key, "TCP 192.168.100.111:80");
    assert_eq!(svcs[0].name.as_deref(), Some("web"));
    assert_eq!((svcs[0].reals[0].address.as_str(), svcs[0].reals[0].weight), ("192.168.100.31", 3));

    match ex.run(Effect::Init(console::app::InitCmd::Logs)) {
        Some(Event::Init(_, Err(e))) => assert!(e.starts_with("init not reachable"), "{e}"),
        other => panic!("{other:?}"),
    }
    // The password check runs in the executor too.
    let hash = console::app::hash_of(&config()).unwrap();
    match ex.run(Effect::VerifyPassword { password: PW.into(), hash }) {
        Some(Event::PasswordChecked(Ok(true))) => {}
        other => panic!("{other:?}"),
    }
}

/// The App and the Executor in a loop, on the real clock (as main runs them).
struct Driver {
    app: App,
    ex: Executor,
    t0: Instant,
}

impl Driver {
    fn pump(&mut self, first: Vec<Effect>) {
        let mut q = std::collections::VecDeque::from(first);
        while let Some(e) = q.pop_front() {
            if let Some(ev) = self.ex.run(e) {
                q.extend(self.app.handle(ev));
            }
        }
    }
    fn tick(&mut self) {
        let now = self.t0.elapsed().as_millis() as u64 + 1;
        let e = self.app.handle(Event::Tick(now));
        self.pump(e);
    }
    fn key(&mut self, c: KeyCode) {
        self.tick();
        let e = self.app.handle(Event::Key(KeyEvent::from(c)));
        self.pump(e);
    }
    fn typ(&mut self, s: &str) {
        for c in s.chars() {
            self.key(KeyCode::Char(c));
        }
    }
    /// Ticks for `ms` of real time.
    fn run_for(&mut self, ms: u64) {
        let end = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < end {
            self.tick();
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn app_stages_applies_and_confirms_against_lbd_sim_then_sees_a_rollback() {
    let lbd = Lbd::start("app", &config());
    let mut d = Driver {
        app: App::new(Options { confirm_within_s: 3, ..Options::default() }),
        ex: lbd.exec(),
        t0: Instant::now(),
    };
    d.tick();
    assert_eq!(d.app.mode, Mode::Login);
    d.typ(PW);
    d.key(KeyCode::Enter);
    assert_eq!(d.app.mode, Mode::Main);

    // Add a real to `web` through the form, stage, review, apply.
    d.key(KeyCode::Char('2'));
    d.key(KeyCode::Enter);
    d.key(KeyCode::Char('a'));
    d.typ("192.168.100.32");
    d.key(KeyCode::Enter);
    assert_eq!(d.app.notes, vec!["add real 192.168.100.32 to web"]);
    d.key(KeyCode::Char('7'));
    let review = d.app.review.clone().expect("validated by lbd");
    assert_eq!(review.changes, Ok(vec!["add real 192.168.100.32:80 to TCP 192.168.100.111:80 weight 1".to_string()]));
    d.key(KeyCode::Char('a'));
    assert!(d.app.confirm_left().is_some(), "waiting for confirm: {:?}", d.app.apply);
    d.run_for(600);
    d.key(KeyCode::Char('c'));
    assert_eq!(d.app.outcome.as_ref().map(|o| o.0.as_str()), Some("Confirmed: the new config stays."));
    // lbd kept it past the confirm window.
    d.run_for(3500);
    let mut ex = lbd.exec();
    let svcs: Vec<LiveService> = serde_json::from_value(data(ex.run(Effect::Lbd(Command::Services)))).unwrap();
    assert_eq!(svcs[0].reals.len(), 2);

    // Now drain a real and do not confirm: lbd rolls back by itself after 3 s
    // and the console says so.
    d.key(KeyCode::Char('2'));
    d.key(KeyCode::Enter);
    d.key(KeyCode::Char('w'));
    d.key(KeyCode::Char('7'));
    d.key(KeyCode::Char('a'));
    assert!(d.app.confirm_left().is_some());
    d.run_for(5000);
    let (msg, bad) = d.app.outcome.clone().expect("an outcome");
    assert!(bad && msg.starts_with("ROLLED BACK"), "{msg}");
    let st = data(ex.run(Effect::Lbd(Command::ConfigGet)));
    let cfg = lbd::config::parse(st["text"].as_str().unwrap(), "t").unwrap();
    assert_eq!(cfg.services[0].reals[0].weight, 3, "the drain was rolled back");
    assert_eq!(cfg.services[0].reals.len(), 2, "the confirmed change stayed");
}

#[test]
fn unreachable_lbd_falls_back_to_the_config_file_for_login() {
    let dir = std::env::temp_dir().join(format!("console-sim-nolbd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("lvsbox.toml"), config()).unwrap();
    let mut ex = Executor::new(&dir.join("lbd.sock"), &dir.join("init.sock"), &dir.join("lvsbox.toml"));
    ex.iterations = password::MIN_ITERATIONS;
    let mut d = Driver { app: App::new(Options::default()), ex, t0: Instant::now() };
    d.tick();
    assert_eq!(d.app.mode, Mode::Login, "hash read from the file");
    assert!(d.app.lbd_err.as_deref().is_some_and(|e| e.starts_with("lbd not reachable")));
    d.typ(PW);
    d.key(KeyCode::Enter);
    assert_eq!(d.app.mode, Mode::Main);
    let _ = std::fs::remove_dir_all(&dir);
}
