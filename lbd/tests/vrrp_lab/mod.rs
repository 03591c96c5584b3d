//! A VRRP lab on the host: a bridge namespace and one namespace per host,
//! joined with veth pairs. Runs the real `lbd` (with `--sim` IPVS) and
//! Debian's keepalived as peers. Names carry this process's PID so labs left
//! by a killed run (and the speakers still running in them) are swept by
//! the next one; everything is removed on drop
//! (also when a test panics), and children are killed by their own PID.
//!
//! Needs root, `ip` (iproute2), and keepalived for the interop tests: when
//! any is missing the tests FAIL with the reason (they never skip).

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lbd::ctl::proto::Command as Ctl;
use serde_json::Value;

pub const LBD: &str = env!("CARGO_BIN_EXE_lbd");
const PREFIX: &str = "lvr";

static SEQ: AtomicU32 = AtomicU32::new(0);
/// Timing-sensitive labs run one at a time on the shared 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

/// Fails loudly unless the host can run the lab.
pub fn require(keepalived: bool) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the VRRP namespace tests need root (network namespaces, raw sockets); run them as root: \
         cargo test -p lbd --test vrrp_netns"
    );
    let ok = Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success());
    assert!(ok, "the VRRP namespace tests need `ip` (iproute2)");
    if keepalived {
        let ok = Command::new("keepalived").arg("--version").output().is_ok_and(|o| o.status.success());
        assert!(ok, "the interop tests need Debian's keepalived (apt-get install keepalived)");
    }
}

fn sh(prog: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(prog).args(args).output().map_err(|e| format!("{prog}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{prog} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) {
    sh("ip", args).unwrap_or_else(|e| panic!("lab setup: {e}"));
}

/// Removes namespaces of labs whose test process is gone.
fn sweep() {
    let Ok(list) = sh("ip", &["netns", "list"]) else { return };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            // Speakers a killed test run started in there are orphans: end
            // them by PID, then the namespace.
            for p in sh("ip", &["netns", "pids", name]).unwrap_or_default().split_whitespace() {
                if let Ok(p) = p.parse::<i32>() {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
                }
            }
            let _ = sh("ip", &["netns", "del", name]);
        }
    }
}

/// A speaker process in a host namespace.
pub struct Proc {
    pub host: String,
    pub child: Child,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Lbd { sock: PathBuf },
    Keepalived { dir: PathBuf },
}

pub struct Lab {
    pub seq: u32,
    pub br: String,
    pub hosts: Vec<String>,
    pub procs: Vec<Option<Proc>>,
    pub dir: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    /// Hosts `names` on one bridge, with addresses 10.201.SEQ.(1..) /24 in order.
    pub fn new(names: &[&str]) -> Lab {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        sweep();
        let seq = SEQ.fetch_add(1, Ordering::SeqCst) + 1;
        let pid = std::process::id();
        let tag = format!("{PREFIX}{pid}x{seq}");
        let dir = std::env::temp_dir().join(&tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut lab = Lab { seq, br: format!("{tag}br"), hosts: Vec::new(), procs: Vec::new(), dir, _serial: serial };
        ip(&["netns", "add", &lab.br]);
        ip(&["-n", &lab.br, "link", "add", "br0", "type", "bridge"]);
        // No STP/forward delay: ports forward at once.
        ip(&["-n", &lab.br, "link", "set", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"]);
        ip(&["-n", &lab.br, "link", "set", "br0", "up"]);
        for (i, h) in names.iter().enumerate() {
            let ns = format!("{tag}{h}");
            lab.hosts.push(ns.clone());
            ip(&["netns", "add", &ns]);
            let port = format!("p{h}");
            ip(&["link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns", &lab.br]);
            ip(&["-n", &lab.br, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &lab.br, "link", "set", &port, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            let addr = format!("{}/24", lab.addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
        }
        lab
    }

    /// The address of host `i` (0-based).
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 201, self.seq as u8, i as u8 + 1)
    }
    /// The lab's VIP.
    pub fn vip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 201, self.seq as u8, 100)
    }
    /// The lab's IPv6 VIP.
    pub fn vip6(&self) -> std::net::Ipv6Addr {
        std::net::Ipv6Addr::new(0xfd00, 201, self.seq as u16, 0, 0, 0, 0, 0x100)
    }
    pub fn ns(&self, i: usize) -> &str {
        &self.hosts[i]
    }

    /// An lbd config for host `i` with one VRRP instance.
    pub fn lbd_config(&self, i: usize, instance: &str) -> String {
        format!(
            "[system]\nhostname = \"h{i}\"\n\n[[interfaces]]\nname = \"eth0\"\naddresses = [\"{}/24\"]\n\n{instance}",
            self.addr(i)
        )
    }

    fn push(&mut self, p: Proc) -> usize {
        self.procs.push(Some(p));
        self.procs.len() - 1
    }

    /// Starts `lbd run --sim` in host `i` with `config`; waits for its socket.
    pub fn start_lbd(&mut self, i: usize, config: &str) -> usize {
        let d = self.dir.join(format!("lbd{i}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("lvsbox.toml"), config).unwrap();
        let sock = d.join("sock");
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(d.join("log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i], LBD, "run", "--sim", "--socket"])
            .arg(&sock)
            .arg("--config")
            .arg(d.join("lvsbox.toml"))
            .arg("--history")
            .arg(d.join("history"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn lbd");
        let idx = self.push(Proc { host: self.hosts[i].clone(), child, kind: Kind::Lbd { sock: sock.clone() } });
        wait_for(Duration::from_secs(10), || ctl(&sock, Ctl::Ping).is_some()).unwrap_or_else(|_| {
            panic!("lbd in {} never opened its control socket; log:\n{}", self.hosts[i], self.log(i))
        });
        idx
    }

    /// lbd's log in host `i`.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("lbd{i}/log"))).unwrap_or_default()
    }

    /// Starts keepalived (VRRP only, foreground) in host `i` with `conf`.
    pub fn start_keepalived(&mut self, i: usize, conf: &str) -> usize {
        // A fresh directory per start: a killed keepalived's VRRP child may
        // linger as a zombie, and keepalived refuses to start while its old
        // pid file names a live process.
        let d = self.dir.join(format!("ka{i}.{}", self.procs.len()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("keepalived.conf");
        std::fs::write(&f, conf).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(d.join("log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.hosts[i], "keepalived", "-n", "-l", "-D", "-P", "-f"])
            .arg(&f)
            .arg("-p")
            .arg(d.join("keepalived.pid"))
            .arg("-r")
            .arg(d.join("vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn keepalived");
        self.push(Proc { host: self.hosts[i].clone(), child, kind: Kind::Keepalived { dir: d } })
    }

    /// The logs of every keepalived started in host `i`.
    pub fn ka_log(&self, i: usize) -> String {
        let mut out = String::new();
        for n in 0..self.procs.len() {
            if let Ok(s) = std::fs::read_to_string(self.dir.join(format!("ka{i}.{n}/log"))) {
                out.push_str(&s);
            }
        }
        out
    }

    fn signal(&mut self, idx: usize, sig: nix::sys::signal::Signal) {
        let Some(p) = self.procs[idx].take() else { return };
        let mut p = p;
        let pid = nix::unistd::Pid::from_raw(p.child.id() as i32);
        if let Kind::Keepalived { dir } = &p.kind
            && sig == nix::sys::signal::Signal::SIGKILL
        {
            // Kill keepalived's VRRP child (the one holding the VIPs) first:
            // SIGKILL of the parent alone would let it stop gracefully.
            let child: Option<i32> =
                std::fs::read_to_string(dir.join("vrrp.pid")).ok().and_then(|s| s.trim().parse().ok());
            if let Some(c) = child {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c), sig);
            }
        }
        let _ = nix::sys::signal::kill(pid, sig);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = p.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = p.child.kill();
        let _ = p.child.wait();
    }

    /// SIGKILL (the box dies as far as VRRP is concerned).
    pub fn kill(&mut self, idx: usize) {
        self.signal(idx, nix::sys::signal::Signal::SIGKILL);
    }
    /// SIGTERM and wait (graceful stop).
    pub fn term(&mut self, idx: usize) {
        self.signal(idx, nix::sys::signal::Signal::SIGTERM);
    }

    /// Does host `i` have the VIP on eth0?
    pub fn has_vip(&self, i: usize) -> bool {
        let vip = format!(" {}/", self.vip());
        sh("ip", &["-n", &self.hosts[i], "-4", "-o", "addr", "show", "dev", "eth0"]).is_ok_and(|s| s.contains(&vip))
    }
    /// Does host `i` have the IPv6 VIP on eth0?
    pub fn has_vip6(&self, i: usize) -> bool {
        let vip = format!(" {}/", self.vip6());
        sh("ip", &["-n", &self.hosts[i], "-6", "-o", "addr", "show", "dev", "eth0"]).is_ok_and(|s| s.contains(&vip))
    }
    /// Waits until no host has a tentative IPv6 address (DAD done on the
    /// link-locals that IPv6 VRRP sends from).
    pub fn wait_ipv6_ready(&self) {
        let hosts = self.hosts.clone();
        wait_for(Duration::from_secs(10), || {
            hosts.iter().all(|h| {
                sh("ip", &["-n", h, "-6", "-o", "addr", "show", "dev", "eth0"])
                    .is_ok_and(|s| s.contains("fe80::") && !s.contains("tentative"))
            })
        })
        .expect("IPv6 link-locals never left DAD");
    }
    /// The VIP of the family asked for.
    pub fn owns(&self, i: usize, v6: bool) -> bool {
        if v6 { self.has_vip6(i) } else { self.has_vip(i) }
    }

    /// eth0's MAC in host `i`.
    pub fn mac(&self, i: usize) -> [u8; 6] {
        let out = sh("ip", &["-n", &self.hosts[i], "-o", "link", "show", "dev", "eth0"]).unwrap();
        let s = out.split("link/ether ").nth(1).unwrap().split_whitespace().next().unwrap();
        let mut m = [0u8; 6];
        for (k, b) in s.split(':').enumerate() {
            m[k] = u8::from_str_radix(b, 16).unwrap();
        }
        m
    }

    pub fn sock(&self, idx: usize) -> PathBuf {
        match &self.procs[idx].as_ref().expect("process running").kind {
            Kind::Lbd { sock } => sock.clone(),
            Kind::Keepalived { .. } => panic!("not lbd"),
        }
    }

    /// `lbd ctl vrrp` of process `idx`: its first instance.
    pub fn instance(&self, idx: usize, name: &str) -> Value {
        let v = ctl(&self.sock(idx), Ctl::Vrrp).unwrap_or(Value::Null);
        v["instances"].as_array().and_then(|a| a.iter().find(|i| i["name"] == name).cloned()).unwrap_or(Value::Null)
    }

    pub fn state(&self, idx: usize, name: &str) -> String {
        self.instance(idx, name)["state"].as_str().unwrap_or("?").to_string()
    }

    /// Runs `f` on a thread inside host `i`'s namespace.
    pub fn in_ns<T: Send + 'static>(
        &self,
        i: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.hosts[i]);
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }

    /// Same, in the bridge namespace.
    pub fn in_br<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.br);
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }

    /// Takes host `i` off the wire (its eth0 down), as a dead box.
    pub fn unplug(&self, i: usize) {
        ip(&["-n", &self.hosts[i], "link", "set", "eth0", "down"]);
    }
    pub fn plug(&self, i: usize) {
        ip(&["-n", &self.hosts[i], "link", "set", "eth0", "up"]);
    }
    /// Removes the VIP from host `i` (what a dead box's reboot does).
    pub fn drop_vip(&self, i: usize, v6: bool) {
        let a = if v6 { format!("{}/64", self.vip6()) } else { format!("{}/24", self.vip()) };
        let _ = sh("ip", &["-n", &self.hosts[i], "addr", "del", &a, "dev", "eth0"]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
        for h in self.hosts.iter().chain(std::iter::once(&self.br)) {
            let _ = sh("ip", &["netns", "del", h]);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("lab logs kept in {}", self.dir.display());
        }
    }
}

/// One control-socket call; `None` when lbd does not answer.
pub fn ctl(sock: &std::path::Path, cmd: Ctl) -> Option<Value> {
    let mut c = lbd::ctl::client::Client::connect(sock, Duration::from_secs(5)).ok()?;
    let r = c.call(cmd).ok()?;
    r.ok.then(|| r.data.unwrap_or(Value::Null))
}

/// Polls `f` every 10 ms until it holds; returns how long it took.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> Result<Duration, Duration> {
    let t0 = Instant::now();
    loop {
        if f() {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > timeout {
            return Err(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A keepalived.conf with one instance on eth0 (VRRP only).
pub fn keepalived_conf(
    vip: impl std::fmt::Display,
    vrid: u8,
    prio: u8,
    version: u8,
    advert: &str,
    pass: Option<&str>,
) -> String {
    let auth =
        pass.map(|p| format!("  authentication {{\n    auth_type PASS\n    auth_pass {p}\n  }}\n")).unwrap_or_default();
    format!(
        "global_defs {{\n  router_id ka\n  enable_script_security\n}}\n\
         vrrp_instance vi1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {vrid}\n  version {version}\n  \
         priority {prio}\n  advert_int {advert}\n{auth}  virtual_ipaddress {{\n    {vip}/{}\n  }}\n}}\n",
        plen(&vip)
    )
}

/// An lbd `[[vrrp.instances]]` block on eth0 with the lab VIP.
pub fn lbd_instance(vip: impl std::fmt::Display, vrid: u8, prio: u8, version: u8, advert: &str, extra: &str) -> String {
    format!(
        "[[vrrp.instances]]\nname = \"vi1\"\ninterface = \"eth0\"\nvrid = {vrid}\npriority = {prio}\nversion = {version}\n\
         advert_interval = {advert}\nvips = [{{ address = \"{vip}/{}\" }}]\n{extra}\n",
        plen(&vip)
    )
}

fn plen(vip: &impl std::fmt::Display) -> u8 {
    if vip.to_string().contains(':') { 64 } else { 24 }
}
