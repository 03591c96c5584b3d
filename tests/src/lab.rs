//! Network labs on the host: a "switch" namespace holding a bridge, tap
//! devices for QEMU guests, and namespaces for real servers and clients
//! joined to the bridge with veth pairs. Everything is removed on drop
//! (also when a test panics), and labs left by killed test runs are swept.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    run("ip", args)
}

/// Runs a command, failing with its stderr.
pub fn run(prog: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(prog).args(args).output().with_context(|| format!("cannot run {prog}"))?;
    if !out.status.success() {
        bail!("{prog} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// A network namespace on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Netns(pub String);

impl Netns {
    /// `ip netns exec NAME PROG ARGS`.
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, prog]);
        c
    }

    /// Runs a command inside the namespace and returns its output.
    pub fn output(&self, prog: &str, args: &[&str]) -> Result<Output> {
        self.command(prog).args(args).output().with_context(|| format!("cannot run {prog} in {}", self.0))
    }

    /// Runs a command inside the namespace, failing with its stderr.
    pub fn run(&self, prog: &str, args: &[&str]) -> Result<()> {
        let out = self.output(prog, args)?;
        if !out.status.success() {
            bail!("[{}] {prog} {}: {}", self.0, args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.run("sh", &["-c", &format!("echo {value} > {path}")])
    }

    /// Starts `f` on a new thread that has entered this namespace and
    /// returns at once (threads `f` spawns are in the namespace too).
    pub fn spawn_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<Result<T>> {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || -> Result<T> {
            let fd = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
            Ok(f())
        })
    }

    /// Runs `f` on a new thread that has entered this namespace (only that
    /// thread moves), and returns its result. Lets the harness open sockets
    /// inside a namespace without spawning a process per request.
    pub fn in_thread<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || -> Result<T> {
            let fd = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("thread in {} panicked", self.0))?
    }
}

/// A host attached to the lab's bridge (its own namespace).
#[derive(Clone, Debug)]
pub struct Host {
    /// Its namespace.
    pub ns: Netns,
    /// Name in the lab.
    pub name: String,
    /// Its address on the bridge (with prefix).
    pub addr: String,
}

impl Host {
    /// The address without prefix length.
    pub fn ip(&self) -> &str {
        self.addr.split('/').next().unwrap_or(&self.addr)
    }
}

/// A lab: switch namespace with bridge `br0`, taps, hosts, and the processes
/// started in it.
pub struct Lab {
    /// Prefix of every name in this lab.
    pub id: String,
    /// The namespace holding the bridge and the taps (QEMU runs in it).
    pub switch: Netns,
    hosts: Vec<Netns>,
    taps: u32,
    children: Vec<(String, Child)>,
    /// Scratch directory removed with the lab.
    pub dir: PathBuf,
}

impl Lab {
    /// Creates a lab with an empty bridge. Sweeps labs of dead test processes first.
    pub fn new() -> Result<Lab> {
        sweep();
        let id = format!("lvt{}x{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst));
        let switch = Netns(format!("{id}sw"));
        ip(&["netns", "add", &switch.0])?;
        let dir = std::env::temp_dir().join(&id);
        let lab = Lab { id, switch, hosts: Vec::new(), taps: 0, children: Vec::new(), dir };
        std::fs::create_dir_all(&lab.dir)?;
        lab.switch.run("ip", &["link", "add", "br0", "type", "bridge"])?;
        // No STP/forward delay: ports forward at once.
        lab.switch.run("ip", &["link", "set", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"])?;
        lab.switch.run("ip", &["link", "set", "br0", "up"])?;
        lab.switch.run("ip", &["link", "set", "lo", "up"])?;
        Ok(lab)
    }

    /// Adds a tap device on the bridge; returns its name (for QEMU, which must
    /// run inside `self.switch`).
    pub fn add_tap(&mut self) -> Result<String> {
        let name = format!("tap{}", self.taps);
        self.taps += 1;
        self.switch.run("ip", &["tuntap", "add", &name, "mode", "tap"])?;
        self.switch.run("ip", &["link", "set", &name, "master", "br0", "up"])?;
        Ok(name)
    }

    /// Adds a host namespace with `addr` (e.g. `10.99.0.5/24`) on eth0,
    /// joined to the bridge, and `gateway` as its default route if given.
    pub fn add_host(&mut self, name: &str, addr: &str, gateway: Option<&str>) -> Result<Host> {
        let ns = Netns(format!("{}{}", self.id, name));
        ip(&["netns", "add", &ns.0])?;
        self.hosts.push(ns.clone());
        let port = format!("v{}{}", self.hosts.len(), name.chars().take(8).collect::<String>());
        ip(&["link", "add", &port, "netns", &self.switch.0, "type", "veth", "peer", "name", "eth0", "netns", &ns.0])?;
        self.switch.run("ip", &["link", "set", &port, "master", "br0", "up"])?;
        ns.run("ip", &["link", "set", "lo", "up"])?;
        ns.run("ip", &["addr", "add", addr, "dev", "eth0"])?;
        ns.run("ip", &["link", "set", "eth0", "up"])?;
        if let Some(gw) = gateway {
            ns.run("ip", &["route", "add", "default", "via", gw])?;
        }
        Ok(Host { ns, name: name.into(), addr: addr.into() })
    }

    /// An LVS-DR real server exactly as the seeds set one up: the VIP on `lo`
    /// as /32, `arp_ignore=1` and `arp_announce=2` on `all` and `lo`.
    pub fn add_dr_real(&mut self, name: &str, addr: &str, vips: &[&str]) -> Result<Host> {
        let h = self.add_host(name, addr, None)?;
        for vip in vips {
            h.ns.run("ip", &["addr", "add", &format!("{vip}/32"), "dev", "lo"])?;
        }
        for k in ["all", "lo"] {
            h.ns.sysctl(&format!("net.ipv4.conf.{k}.arp_ignore"), "1")?;
            h.ns.sysctl(&format!("net.ipv4.conf.{k}.arp_announce"), "2")?;
        }
        Ok(h)
    }

    /// Starts a process inside `ns`, kept until the lab is dropped (killed by PID).
    pub fn spawn(&mut self, label: &str, ns: &Netns, prog: &str, args: &[&str]) -> Result<u32> {
        let child = ns
            .command(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawn {prog}"))?;
        let pid = child.id();
        self.children.push((label.to_string(), child));
        Ok(pid)
    }

    /// Registers an already started child to be killed with the lab.
    pub fn adopt(&mut self, label: &str, child: Child) {
        self.children.push((label.to_string(), child));
    }

    /// Kills the child started under `label` (by PID) and waits for it.
    pub fn kill(&mut self, label: &str) -> Result<()> {
        let i = self.children.iter().position(|(l, _)| l == label).with_context(|| format!("no child {label}"))?;
        let (_, mut c) = self.children.remove(i);
        let _ = c.kill();
        let _ = c.wait();
        Ok(())
    }

    /// Sends `sig` to the child started under `label` (by PID): `SIGSTOP`
    /// freezes a server (connections still complete in the kernel, nothing
    /// answers), `SIGCONT` thaws it.
    pub fn signal(&mut self, label: &str, sig: nix::sys::signal::Signal) -> Result<()> {
        let (_, c) = self.children.iter().find(|(l, _)| l == label).with_context(|| format!("no child {label}"))?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id())?);
        nix::sys::signal::kill(pid, sig).with_context(|| format!("{sig} to {label} ({pid})"))?;
        Ok(())
    }

    /// Starts the harness's HTTP responder in `host`, answering its name on `port`.
    pub fn serve_http(&mut self, host: &Host, port: u16) -> Result<()> {
        self.serve_http_ctl(host, port, None)
    }

    /// [`Lab::serve_http`] with a control file (see `lvt-httpd`): when it
    /// exists, its first line is the status sent and the rest the body.
    /// The child is labelled `httpd-NAME-PORT` (for [`Lab::kill`]).
    pub fn serve_http_ctl(&mut self, host: &Host, port: u16, control: Option<&std::path::Path>) -> Result<()> {
        let bin = crate::bin_path("lvt-httpd")?;
        let label = format!("httpd-{}-{port}", host.name);
        let port_s = port.to_string();
        let ctl = control.map(|p| p.to_string_lossy().into_owned());
        let mut args = vec![host.name.as_str(), port_s.as_str(), "3600"];
        if let Some(c) = &ctl {
            args.push(c);
        }
        self.spawn(&label, &host.ns, bin.to_str().unwrap_or_default(), &args)?;
        // Ready when it answers locally.
        let ip = host.ip().to_string();
        let t0 = Instant::now();
        loop {
            let ip = ip.clone();
            let r = host.ns.in_thread(move || crate::http::get(&ip, port, Duration::from_millis(500)))?;
            // Ready when it answers at all (a control file may make it answer 503).
            if r.is_ok() || r.as_ref().is_err_and(|e| e.to_string().starts_with("HTTP status")) {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("HTTP responder in {} did not answer within 10 s", host.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Lab {
    /// Starts `openssl s_server -www` in `host` on `port` (a TLS server whose
    /// page names the protocol and suite it negotiated), with a self-signed
    /// certificate made once per lab and `extra` arguments (`-tls1_2`, ...).
    /// The child is labelled `https-NAME-PORT`; ready when the port accepts.
    pub fn serve_https(&mut self, host: &Host, port: u16, extra: &[&str]) -> Result<()> {
        let (crt, key) = (self.dir.join("tls.crt"), self.dir.join("tls.key"));
        if !crt.exists() {
            let out = Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
                .args(["-days", "2", "-subj", "/CN=rs", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&crt)
                .output()
                .context("openssl (tests/setup installs it)")?;
            if !out.status.success() {
                bail!("openssl req: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        let label = format!("https-{}-{port}", host.name);
        let (port_s, crt_s, key_s) =
            (port.to_string(), crt.to_string_lossy().into_owned(), key.to_string_lossy().into_owned());
        let mut args = vec!["s_server", "-quiet", "-www", "-accept", &port_s, "-cert", &crt_s, "-key", &key_s];
        args.extend_from_slice(extra);
        self.spawn(&label, &host.ns, "openssl", &args)?;
        let addr: std::net::SocketAddr = format!("{}:{port}", host.ip()).parse()?;
        let t0 = Instant::now();
        loop {
            let up =
                host.ns.in_thread(move || std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)))?;
            if up.is_ok() {
                return Ok(());
            }
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("openssl s_server in {} did not listen within 10 s", host.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, c) in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.hosts.iter().rev() {
            let _ = ip(&["netns", "del", &ns.0]);
        }
        let _ = ip(&["netns", "del", &self.switch.0]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Deletes namespaces left by lab processes that no longer exist (a test
/// killed with SIGKILL cannot clean up after itself).
pub fn sweep() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("lvt") else { continue };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}
