//! Test harness: the pure App wired to an in-process lbd (`lbd::daemon::Daemon`
//! over a simulated kernel), with effects carried out synchronously.

#![allow(dead_code)]

use std::path::PathBuf;

use console::app::{App, Effect, Event, Options};
use console::password;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use lbd::ctl::proto::{Command, Request, Response};
use lbd::daemon::{Daemon, Options as LbdOptions};
use lbd::kernel::SharedSim;
use lbd::logring::LogRing;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

/// A config on the sim: one DR service with two reals on the LAN.
pub const CFG: &str = r#"
[system]
hostname = "lb1"

[[interfaces]]
name = "lan"
addresses = ["192.168.100.244/24"]

[[routes]]
destination = "default"
gateway = "192.168.100.1"

[[vips]]
address = "192.168.100.111"
interface = "lan"

[[services]]
name = "web"
address = "192.168.100.111:80"
scheduler = "wrr"
[[services.reals]]
address = "192.168.100.31"
weight = 3
[[services.reals]]
address = "192.168.100.32"
"#;

/// A box with `lan` up and the VIP on it, `wan` down.
pub fn fake_net() -> console::sysnet::NetSnapshot {
    use console::sysnet::{Link, NetSnapshot};
    NetSnapshot {
        links: vec![
            Link {
                name: "lan".into(),
                up: true,
                oper: "up".into(),
                mac: "52:54:00:12:34:56".into(),
                mtu: Some(1500),
                addrs: vec!["192.168.100.244/24".into(), "192.168.100.111/32".into()],
            },
            Link {
                name: "lo".into(),
                up: true,
                oper: "unknown".into(),
                mac: String::new(),
                mtu: Some(65536),
                addrs: vec!["127.0.0.1/8".into()],
            },
            Link {
                name: "wan".into(),
                up: false,
                oper: "down".into(),
                mac: "52:54:00:ab:cd:ef".into(),
                mtu: Some(1500),
                addrs: vec![],
            },
        ],
        routes: vec!["default via 192.168.100.1 dev lan".into(), "192.168.100.0/24 dev lan".into()],
    }
}

pub struct Harness {
    pub app: App,
    pub daemon: Daemon,
    pub kernel: SharedSim,
    pub ring: LogRing,
    pub rt: tokio::runtime::Runtime,
    pub dir: PathBuf,
    pub now: u64,
    /// Every effect the App asked for, in order.
    pub log: Vec<Effect>,
    /// Answer for init requests.
    pub init: Result<serde_json::Value, String>,
    /// What the kernel's network looks like.
    pub net: Result<console::sysnet::NetSnapshot, String>,
    next_id: u64,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fast hash for tests (the floor), so debug builds stay quick.
pub fn test_hash(pw: &str) -> String {
    password::hash(pw, password::MIN_ITERATIONS).unwrap()
}

impl Harness {
    /// lbd with `config` on disk (None = first boot: no file).
    pub fn new(tag: &str, config: Option<&str>) -> Self {
        let dir = std::env::temp_dir().join(format!("console-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(c) = config {
            std::fs::write(dir.join("lvsbox.toml"), c).unwrap();
        }
        let opts = LbdOptions::in_dir(&dir);
        std::fs::write(
            dir.join("ip_vs_conn"),
            "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
             TCP C0A86405 D431 C0A8646F 0050 C0A8641F 0050 ESTABLISHED     899\n\
             TCP C0A86406 D432 C0A8646F 0050 C0A86420 0050 TIME_WAIT        60\n",
        )
        .unwrap();
        let kernel = SharedSim::new();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ring = LogRing::new();
        // Inside the runtime: lbd spawns the task that takes the health
        // checks' verdicts in (it runs whenever a test blocks on the runtime).
        let daemon = {
            let _rt = rt.enter();
            Daemon::new(opts, Box::new(kernel.clone()), ring.clone())
        };
        rt.block_on(daemon.reconcile());
        Harness {
            app: App::new(Options { idle_logout_ms: 600_000, tty: "ttyS0".into(), ..Options::default() }),
            daemon,
            kernel,
            ring,
            rt,
            dir,
            now: 1000,
            log: Vec::new(),
            init: Err("init not reachable (/run/init.sock): No such file or directory".into()),
            net: Ok(fake_net()),
            next_id: 1,
        }
    }

    /// A box with `CFG` plus the password `pw`.
    pub fn with_password(tag: &str, pw: &str) -> Self {
        let cfg =
            CFG.replace("hostname = \"lb1\"", &format!("hostname = \"lb1\"\nconsole_password = \"{}\"", test_hash(pw)));
        Harness::new(tag, Some(&cfg))
    }

    pub fn lbd(&mut self, cmd: Command) -> Response {
        self.next_id += 1;
        let req = Request { id: self.next_id, cmd };
        self.rt.block_on(self.daemon.handle(req))
    }

    fn run(&mut self, e: Effect) -> Option<Event> {
        self.log.push(e.clone());
        Some(match e {
            Effect::Lbd(cmd) => {
                let r = self.lbd(cmd.clone());
                Event::Lbd(cmd, Ok(r))
            }
            Effect::Init(c) => Event::Init(c, self.init.clone()),
            Effect::ReadConfigFile => {
                Event::ConfigFile(Ok(std::fs::read_to_string(self.dir.join("lvsbox.toml")).unwrap_or_default()))
            }
            Effect::HashPassword(pw) => Event::PasswordHashed(Ok(test_hash(&pw))),
            Effect::VerifyPassword { password: p, hash } => {
                Event::PasswordChecked(password::verify(&p, &hash).map_err(|e| e.0))
            }
            Effect::ReadNetwork => Event::Network(self.net.clone()),
            Effect::SaveFailures(_) => return None,
            Effect::ClearScreen => return None,
        })
    }

    /// Feeds an event and carries out every effect it causes.
    pub fn send(&mut self, ev: Event) {
        let mut queue = std::collections::VecDeque::from(self.app.handle(ev));
        let mut n = 0;
        while let Some(e) = queue.pop_front() {
            n += 1;
            assert!(n < 500, "effect loop");
            if let Some(ev) = self.run(e) {
                queue.extend(self.app.handle(ev));
            }
        }
    }

    /// Lets `ms` pass (ticks every 250 ms, like main).
    pub fn wait(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now = (self.now + 250).min(end);
            self.send(Event::Tick(self.now));
        }
    }

    pub fn key(&mut self, code: KeyCode) {
        self.send(Event::Key(KeyEvent::from(code)));
    }

    pub fn ctrl(&mut self, c: char) {
        self.send(Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)));
    }

    pub fn typ(&mut self, s: &str) {
        for c in s.chars() {
            self.key(KeyCode::Char(c));
        }
    }

    /// Starts up and logs in with `pw`.
    pub fn login(&mut self, pw: &str) {
        self.wait(250);
        assert_eq!(self.app.mode, console::app::Mode::Login);
        self.typ(pw);
        self.key(KeyCode::Enter);
        self.wait(250);
        assert_eq!(self.app.mode, console::app::Mode::Main, "login failed: {:?}", self.app.msg);
    }

    pub fn screen(&self, w: u16, h: u16) -> Screen {
        render(&self.app, w, h)
    }

    pub fn applied_text(&mut self) -> String {
        let r = self.lbd(Command::ConfigGet);
        r.data.unwrap()["text"].as_str().unwrap().to_string()
    }
}

/// What a person sees: one string per row.
pub struct Screen(pub Vec<String>);

impl Screen {
    pub fn text(&self) -> String {
        self.0.join("\n")
    }
    /// Row and column of the first occurrence of `s`.
    pub fn find(&self, s: &str) -> Option<(usize, usize)> {
        self.0.iter().enumerate().find_map(|(r, l)| l.find(s).map(|b| (r, l[..b].chars().count())))
    }
    #[track_caller]
    pub fn has(&self, s: &str) -> (usize, usize) {
        self.find(s).unwrap_or_else(|| panic!("`{s}` not on screen:\n{}", self.text()))
    }
    #[track_caller]
    pub fn row_has(&self, row: usize, parts: &[&str]) {
        let l = &self.0[row];
        for p in parts {
            assert!(l.contains(p), "row {row} lacks `{p}`: `{l}`\n{}", self.text());
        }
    }
    /// The row that contains `s`.
    #[track_caller]
    pub fn row_of(&self, s: &str) -> &str {
        &self.0[self.has(s).0]
    }
}

pub fn render(app: &App, w: u16, h: u16) -> Screen {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| console::ui::draw(app, f)).unwrap();
    let buf = t.backend().buffer().clone();
    let mut rows = Vec::new();
    for y in 0..buf.area.height {
        let mut s = String::new();
        for x in 0..buf.area.width {
            s.push_str(buf[(x, y)].symbol());
        }
        rows.push(s);
    }
    Screen(rows)
}
