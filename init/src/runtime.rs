//! The supervision loop: one `poll(2)` over the signalfd, the control socket
//! and its connections, children's output pipes and the power buttons, with
//! a timeout from the next restart or readiness probe.
//!
//! Signals (all blocked and read through a signalfd; PID 1 gets no default
//! actions, so every one init cares about is handled here):
//! - SIGCHLD: reap everything (`waitpid(-1, WNOHANG)` loop), statuses go to the table
//! - SIGINT (Ctrl-Alt-Del with `kernel.ctrl-alt-del=0`): reboot
//! - SIGTERM, SIGUSR2 (busybox `poweroff`), SIGUSR1 (`halt`), SIGPWR: power off
//! - SIGHUP, SIGQUIT: logged and ignored

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use lbd::initctl::{BootReport, Command, Request, Response};
use lbd::paths;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::reboot::{RebootMode, reboot};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use crate::boot::{Plan, console_line};
use crate::log::{debug, error, info, notice, warn};
use crate::supervise::{Delivery, Spec, Table, reap, spawn};

/// How long lbd gets to answer a ping before the consoles start anyway.
pub const READY_WAIT: Duration = Duration::from_secs(10);
/// How long children get after SIGTERM at shutdown.
pub const STOP_WAIT: Duration = Duration::from_secs(5);
const MAX_CONNS: usize = 16;
const MAX_LINE: usize = 64 * 1024;
const MAX_OUTPUT_LINE: usize = 512;

/// Reboot or power off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Halt {
    /// `reboot(RB_AUTOBOOT)`.
    Reboot,
    /// `reboot(RB_POWER_OFF)`.
    PowerOff,
}

/// The signals init reads through its signalfd.
/// Once the TUI runs on a tty that is also a kernel console, kernel and init
/// log lines printed there would scribble over it: from then on only errors
/// reach the console (everything still goes to kmsg and init's ring, which
/// the console's Logs screen shows). Not with `lvsbox.debug=1`.
fn quiet_kernel_console(consoles: &[crate::supervise::Spec]) {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if cmdline.split_whitespace().any(|w| w == "lvsbox.debug=1") {
        return;
    }
    let kernel: Vec<String> = std::fs::read_to_string("/proc/consoles")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let on_kernel_console = consoles.iter().filter_map(|c| c.tty.as_deref()).any(|tty| {
        let tty = tty.strip_prefix("/dev/").unwrap_or(tty);
        kernel.iter().any(|k| k == tty || (k == "tty0" && tty.starts_with("tty") && !tty.starts_with("ttyS")))
    });
    if on_kernel_console {
        if let Err(e) = std::fs::write("/proc/sys/kernel/printk", "4 4 1 7") {
            warn!("cannot lower the console log level: {e}");
        } else {
            info!("console TUI on a kernel console: only errors are printed there from now on");
        }
    }
}

pub fn signal_set() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGPWR,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        s.add(sig);
    }
    s
}

/// What a signal means to init.
pub fn on_signal(sig: i32) -> Option<Halt> {
    match Signal::try_from(sig) {
        Ok(Signal::SIGINT) => Some(Halt::Reboot),
        Ok(Signal::SIGTERM | Signal::SIGUSR1 | Signal::SIGUSR2 | Signal::SIGPWR) => Some(Halt::PowerOff),
        _ => None,
    }
}

/// Blocks init's signals and opens the signalfd. Do this before starting
/// any child so no SIGCHLD or SIGINT is lost.
pub fn open_signalfd() -> nix::Result<SignalFd> {
    let set = signal_set();
    set.thread_block()?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

struct Conn {
    stream: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    closed: bool,
}

struct Output {
    name: String,
    fd: OwnedFd,
    buf: Vec<u8>,
}

enum Ready {
    Waiting {
        deadline: Instant,
        next_probe: Instant,
    },
    /// Gave up waiting; consoles started; still probes now and then.
    Late {
        next_probe: Instant,
    },
    Done,
}

/// The supervision loop's state.
pub struct Runtime<'a> {
    table: Table,
    sigfd: &'a SignalFd,
    listener: Option<UnixListener>,
    conns: Vec<Conn>,
    outputs: Vec<Output>,
    buttons: Vec<(String, std::fs::File)>,
    ready: Ready,
    /// lbd's readiness pipe while boot waits for it (see [`Spec::notify`]).
    ready_pipe: Option<OwnedFd>,
    pending_consoles: Vec<Spec>,
    report: &'a mut BootReport,
    halt: Option<(Halt, String)>,
    inject_panic: bool,
}

/// `init modprobe --late` runs once per boot.
static LATE_MODULES_STARTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Starts `init modprobe --late` (the modules boot left for after `lbd
/// ready`, see `boot::after_ready`) as a child, once per boot. The reaper
/// collects it like any orphan; it logs its own summary line.
fn start_late_modules() {
    if LATE_MODULES_STARTED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let r = std::process::Command::new("/init")
        .args(["modprobe", "--late"])
        .env_clear()
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match r {
        Ok(c) => debug!("loading the remaining modules (pid {})", c.id()),
        Err(e) => warn!("cannot start init modprobe --late: {e}"),
    }
}

/// `lvsbox.panic=loop` fires once per boot, not again in maintenance mode.
static PANIC_INJECTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn bind_socket() -> Option<UnixListener> {
    let path = paths::INIT_SOCKET;
    let _ = std::fs::remove_file(path);
    // Created 0600 from the start (no window with wider permissions).
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let l = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    match l {
        Ok(l) => {
            let _ = l.set_nonblocking(true);
            info!("control socket {path}");
            Some(l)
        }
        Err(e) => {
            error!("control socket {path}: {e}");
            None
        }
    }
}

impl<'a> Runtime<'a> {
    /// Sets up the loop for `plan`.
    pub fn new(plan: Plan, sigfd: &'a SignalFd, report: &'a mut BootReport) -> Self {
        let now = Instant::now();
        let mut table = Table::default();
        let mut pending_consoles = Vec::new();
        let ready = if plan.lbd {
            table.add(Spec::lbd(), now);
            pending_consoles = plan.consoles;
            Ready::Waiting { deadline: now + READY_WAIT, next_probe: now + Duration::from_millis(20) }
        } else {
            for c in plan.consoles {
                table.add(c, now);
            }
            start_late_modules();
            Ready::Done
        };
        if let Some(s) = plan.shell {
            table.add(s, now);
        }
        let buttons = crate::power::open_power_buttons(Path::new("/sys"), Path::new("/dev"));
        if buttons.is_empty() {
            info!("no ACPI power button input device (button/evdev not loaded?)");
        }
        for (p, _) in &buttons {
            info!("power button: {p}");
        }
        Runtime {
            table,
            sigfd,
            listener: bind_socket(),
            conns: Vec::new(),
            outputs: Vec::new(),
            buttons,
            ready,
            ready_pipe: None,
            pending_consoles,
            report,
            halt: None,
            inject_panic: false,
        }
    }

    /// Test hook (`lvsbox.panic=loop`): panic once, after lbd is ready.
    pub fn inject_panic(mut self, on: bool) -> Self {
        self.inject_panic = on;
        self
    }

    /// Once lbd is ready (or late): the consoles, and the modules left for now.
    fn start_consoles(&mut self) {
        start_late_modules();
        let now = Instant::now();
        quiet_kernel_console(&self.pending_consoles);
        for c in std::mem::take(&mut self.pending_consoles) {
            if !self.table.has(&c.name) {
                self.table.add(c, now);
            }
        }
    }

    fn start_due(&mut self) {
        let now = Instant::now();
        for i in self.table.due(now) {
            let mut spec = self.table.spec(i).clone();
            // A readiness pipe only while boot waits for one.
            spec.notify &= matches!(self.ready, Ready::Waiting { .. } | Ready::Late { .. });
            match spawn(&spec) {
                Ok(s) => {
                    info!("started {} (pid {})", spec.name, s.pid);
                    if spec.name == "lbd" && matches!(self.ready, Ready::Waiting { .. }) {
                        crate::log::milestone("lbd started");
                        self.ready_pipe = s.ready;
                    }
                    self.table.started(i, s.pid, now);
                    if let Some(fd) = s.output {
                        self.outputs.push(Output { name: spec.name.clone(), fd, buf: Vec::new() });
                    }
                }
                Err(e) => {
                    let d = self.table.spawn_failed(i, format!("{}: {e}", spec.program.display()), now);
                    self.log_delivery(&d);
                }
            }
        }
    }

    fn log_delivery(&self, d: &Delivery) {
        if let Delivery::Supervised { name, exit, restart_in, restarts } = d {
            match restart_in {
                Some(r) => {
                    warn!("{name} ended: {exit}; restart #{restarts} in {} ms", r.as_millis())
                }
                None => info!("{name} stopped: {exit}"),
            }
        }
    }

    fn reap_now(&mut self) {
        let now = Instant::now();
        let mut ds = Vec::new();
        reap(|pid, exit| {
            let d = self.table.deliver(pid, exit.clone(), now);
            if d == Delivery::Orphan {
                debug!("reaped pid {pid}: {exit}");
            }
            ds.push(d);
        });
        for d in ds {
            self.log_delivery(&d);
        }
    }

    fn probe_ready(&mut self) {
        let now = Instant::now();
        let (due, deadline) = match self.ready {
            Ready::Waiting { deadline, next_probe } => (next_probe <= now, Some(deadline)),
            Ready::Late { next_probe } => (next_probe <= now, None),
            Ready::Done => return,
        };
        if due && self.table.pid_of("lbd").is_some() {
            let ok = lbd::ctl::client::Client::connect(Path::new(paths::CONTROL_SOCKET), Duration::from_millis(500))
                .and_then(|mut c| c.call(lbd::ctl::proto::Command::Ping))
                .map(|r| r.ok)
                .unwrap_or(false);
            if ok {
                self.lbd_ready("ping");
                return;
            }
        }
        match deadline {
            Some(d) if now >= d => {
                warn!(
                    "lbd did not answer on {} within {} s; starting the consoles anyway",
                    paths::CONTROL_SOCKET,
                    READY_WAIT.as_secs()
                );
                self.start_consoles();
                self.ready = Ready::Late { next_probe: now + Duration::from_secs(1) };
            }
            // With the readiness pipe open the pings are only a fallback.
            Some(d) if due => {
                let every = if self.ready_pipe.is_some() { 500 } else { 50 };
                self.ready = Ready::Waiting { deadline: d, next_probe: now + Duration::from_millis(every) }
            }
            None if due => self.ready = Ready::Late { next_probe: now + Duration::from_secs(1) },
            _ => {}
        }
    }

    /// lbd answers on its control socket (its readiness pipe said so, or a
    /// ping): `lbd ready` on the console, the boot summary, the consoles.
    fn lbd_ready(&mut self, how: &str) {
        let t = crate::log::now_ms();
        console_line(paths::READY_LINE);
        info!("{} ({} ms after boot, by {how})", paths::READY_LINE, t);
        crate::log::milestone("lbd ready");
        // The idle line first: the bench reads the log once `boot:` is there.
        notice!("{}", crate::log::idle_line());
        notice!("{}", crate::log::milestones_line());
        self.report.lbd_ready_ms = Some(t);
        self.ready = Ready::Done;
        self.ready_pipe = None;
        self.start_consoles();
    }

    /// The readiness pipe is readable: a line means lbd's control socket is
    /// bound; EOF or an error (lbd ended first) closes it, and the pings
    /// carry on.
    fn read_ready_pipe(&mut self) {
        let Some(fd) = &self.ready_pipe else { return };
        let mut buf = [0u8; 64];
        match rustix::io::read(fd, &mut buf) {
            Ok(n) if n > 0 => {
                if matches!(self.ready, Ready::Waiting { .. } | Ready::Late { .. }) {
                    self.lbd_ready("its readiness pipe");
                }
                self.ready_pipe = None;
            }
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
            _ => {
                debug!("lbd's readiness pipe closed without a word");
                self.ready_pipe = None;
                // Back to pinging at the usual pace.
                if let Ready::Waiting { deadline, .. } = self.ready {
                    self.ready = Ready::Waiting { deadline, next_probe: Instant::now() };
                }
            }
        }
    }

    fn next_timeout(&self) -> Duration {
        let now = Instant::now();
        let mut t = now + Duration::from_secs(1);
        if let Some(d) = self.table.next_due() {
            t = t.min(d);
        }
        match self.ready {
            Ready::Waiting { next_probe, .. } | Ready::Late { next_probe } => t = t.min(next_probe),
            Ready::Done => {}
        }
        t.saturating_duration_since(now)
    }

    fn handle_request(&mut self, line: &[u8]) -> Response {
        let req: Request = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => return Response::err(0, format!("bad request: {e}")),
        };
        let id = req.id;
        let v = |x: Result<serde_json::Value, serde_json::Error>| match x {
            Ok(v) => Response::ok(id, v),
            Err(e) => Response::err(id, e.to_string()),
        };
        match req.cmd {
            Command::Logs => v(serde_json::to_value(crate::log::entries())),
            Command::Children => v(serde_json::to_value(self.table.info(Instant::now()))),
            Command::BootReport => v(serde_json::to_value(&*self.report)),
            Command::Reboot => {
                self.halt = Some((Halt::Reboot, "control socket".into()));
                Response::ok(id, "rebooting".into())
            }
            Command::Poweroff => {
                self.halt = Some((Halt::PowerOff, "control socket".into()));
                Response::ok(id, "powering off".into())
            }
        }
    }

    fn accept(&mut self) {
        let Some(l) = &self.listener else { return };
        for _ in 0..MAX_CONNS {
            match l.accept() {
                Ok((s, _)) => {
                    if self.conns.len() >= MAX_CONNS {
                        warn!("control socket: too many connections, refusing one");
                        continue;
                    }
                    let _ = s.set_nonblocking(true);
                    self.conns.push(Conn { stream: s, inbuf: Vec::new(), outbuf: Vec::new(), closed: false });
                }
                Err(_) => break,
            }
        }
    }

    fn service_conn(&mut self, i: usize) {
        let mut buf = [0u8; 4096];
        for _ in 0..64 {
            match self.conns[i].stream.read(&mut buf) {
                Ok(0) => {
                    self.conns[i].closed = true;
                    break;
                }
                Ok(n) => self.conns[i].inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.conns[i].closed = true;
                    break;
                }
            }
            if self.conns[i].inbuf.len() > MAX_LINE {
                self.conns[i].closed = true;
                break;
            }
        }
        while let Some(pos) = self.conns[i].inbuf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.conns[i].inbuf.drain(..=pos).collect();
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let resp = self.handle_request(&line);
            let mut out = serde_json::to_vec(&resp).unwrap_or_default();
            out.push(b'\n');
            self.conns[i].outbuf.extend_from_slice(&out);
        }
        self.flush_conn(i);
    }

    fn flush_conn(&mut self, i: usize) {
        let c = &mut self.conns[i];
        while !c.outbuf.is_empty() {
            match c.stream.write(&c.outbuf) {
                Ok(0) => {
                    c.closed = true;
                    break;
                }
                Ok(n) => {
                    c.outbuf.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    c.closed = true;
                    break;
                }
            }
        }
        if c.outbuf.len() > 16 * MAX_LINE {
            c.closed = true; // a client that never reads
        }
    }

    fn read_output(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 4096];
        let mut eof = false;
        for _ in 0..16 {
            match rustix::io::read(&self.outputs[i].fd, &mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self.outputs[i].buf.extend_from_slice(&buf[..n]),
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        let o = &mut self.outputs[i];
        loop {
            let cut = match o.buf.iter().position(|b| *b == b'\n') {
                Some(p) => p + 1,
                None if o.buf.len() >= MAX_OUTPUT_LINE || (eof && !o.buf.is_empty()) => {
                    o.buf.len().min(MAX_OUTPUT_LINE)
                }
                None => break,
            };
            let line: Vec<u8> = o.buf.drain(..cut).collect();
            let s = String::from_utf8_lossy(&line);
            let s = s.trim_end();
            if !s.is_empty() {
                info!("{}: {}", o.name, s);
            }
        }
        eof
    }

    fn read_signals(&mut self) {
        for _ in 0..64 {
            match self.sigfd.read_signal() {
                Ok(Some(si)) => {
                    let sig = si.ssi_signo as i32;
                    if sig == Signal::SIGCHLD as i32 {
                        continue; // reaped below, every loop
                    }
                    match on_signal(sig) {
                        Some(h) => {
                            let name = Signal::try_from(sig).map(|s| s.as_str()).unwrap_or("?");
                            self.halt.get_or_insert((h, format!("{name} from pid {}", si.ssi_pid)));
                        }
                        None => info!("signal {sig} ignored"),
                    }
                }
                Ok(None) => break,
                Err(_) => break,
            }
        }
    }

    fn read_buttons(&mut self) {
        let mut pressed = false;
        for (_, f) in &mut self.buttons {
            let mut buf = [0u8; crate::power::EVENT_SIZE * 16];
            for _ in 0..16 {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => pressed |= crate::power::has_power_press(&buf[..n]),
                    Err(_) => break,
                }
            }
        }
        if pressed {
            self.halt.get_or_insert((Halt::PowerOff, "ACPI power button".into()));
        }
    }

    /// Runs until a reboot or power-off is asked for, then shuts down and
    /// never returns.
    pub fn run(&mut self) -> ! {
        loop {
            self.reap_now();
            self.start_due();
            self.probe_ready();
            if self.inject_panic
                && matches!(self.ready, Ready::Done)
                && !PANIC_INJECTED.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                panic!("lvsbox.panic=loop (test)");
            }
            if let Some((h, why)) = self.halt.take() {
                for i in 0..self.conns.len() {
                    self.flush_conn(i);
                }
                // Nothing of init's may keep /run busy at unmount.
                self.conns.clear();
                self.outputs.clear();
                self.buttons.clear();
                if self.listener.take().is_some() {
                    let _ = std::fs::remove_file(paths::INIT_SOCKET);
                }
                shutdown(self.sigfd, &mut self.table, h, &why);
            }

            let timeout = self.next_timeout();
            let (revents, n_conns, n_out, n_btn) = {
                let mut fds: Vec<PollFd> = Vec::new();
                fds.push(PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN));
                if let Some(l) = &self.listener {
                    fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
                }
                for c in &self.conns {
                    let mut fl = PollFlags::POLLIN;
                    if !c.outbuf.is_empty() {
                        fl |= PollFlags::POLLOUT;
                    }
                    fds.push(PollFd::new(c.stream.as_fd(), fl));
                }
                for o in &self.outputs {
                    fds.push(PollFd::new(o.fd.as_fd(), PollFlags::POLLIN));
                }
                for (_, b) in &self.buttons {
                    fds.push(PollFd::new(b.as_fd(), PollFlags::POLLIN));
                }
                if let Some(r) = &self.ready_pipe {
                    fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
                }
                let ms = timeout.as_millis().clamp(0, 1000) as u16;
                let _ = poll(&mut fds, PollTimeout::from(ms));
                let rev: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
                (rev, self.conns.len(), self.outputs.len(), self.buttons.len())
            };
            let mut k = 0;
            if revents[k] {
                self.read_signals();
            }
            k += 1;
            if self.listener.is_some() {
                if revents[k] {
                    self.accept();
                }
                k += 1;
            }
            for i in 0..n_conns {
                if revents[k + i] {
                    self.service_conn(i);
                }
            }
            k += n_conns;
            let mut done_outputs = Vec::new();
            for i in 0..n_out {
                if revents[k + i] && self.read_output(i) {
                    done_outputs.push(i);
                }
            }
            k += n_out;
            for i in done_outputs.into_iter().rev() {
                self.outputs.remove(i);
            }
            if (0..n_btn).any(|i| revents[k + i]) {
                self.read_buttons();
            }
            k += n_btn;
            if self.ready_pipe.is_some() && revents.get(k).copied().unwrap_or(false) {
                self.read_ready_pipe();
            }
            self.conns.retain(|c| !c.closed);
        }
    }
}

/// Orderly shutdown: stop supervising, SIGTERM the children (their process
/// groups), wait up to [`STOP_WAIT`], SIGKILL everything left, sync, unmount
/// /cfg and the tmpfs mounts, then `reboot(2)`. Never returns.
pub fn shutdown(sigfd: &SignalFd, table: &mut Table, how: Halt, why: &str) -> ! {
    let what = match how {
        Halt::Reboot => "rebooting",
        Halt::PowerOff => "powering off",
    };
    notice!("{what} ({why})");
    let running = table.stop();
    for (name, pid) in &running {
        info!("stopping {name} (pid {pid}) with SIGTERM");
        // Children lead their own session/process group (setsid): the group
        // takes a shell's or console's own children along.
        if kill(Pid::from_raw(-*pid), Signal::SIGTERM).is_err() {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
        }
        // An interactive shell ignores SIGTERM but not a hangup of its tty.
        if table.on_tty(name) {
            let _ = kill(Pid::from_raw(-*pid), Signal::SIGHUP);
        }
    }
    let deadline = Instant::now() + STOP_WAIT;
    while !table.running().is_empty() && Instant::now() < deadline {
        reap(|pid, exit| {
            if let Delivery::Supervised { name, exit, .. } = table.deliver(pid, exit, Instant::now()) {
                notice!("{name} stopped: {exit}");
            }
        });
        if table.running().is_empty() {
            break;
        }
        // Wait for the next SIGCHLD (bounded), draining the signalfd.
        let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(50u16));
        while let Ok(Some(_)) = sigfd.read_signal() {}
    }
    let left = table.running();
    if !left.is_empty() {
        for (name, pid) in &left {
            warn!("{name} (pid {pid}) did not stop within {} s: SIGKILL", STOP_WAIT.as_secs());
        }
    }
    // Everything else too (orphans, a shell's children): kill(-1) spares init.
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let remain = reap(|pid, exit| {
            if let Delivery::Supervised { name, exit, .. } = table.deliver(pid, exit, Instant::now()) {
                notice!("{name} stopped: {exit}");
            }
        });
        if !remain || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::unistd::sync();
    for m in [paths::CONFIG_MOUNT, "/tmp", "/run"] {
        if !crate::mounts::is_mounted(m) {
            continue;
        }
        match crate::mounts::unmount(m) {
            Ok(s) => notice!("{m}: {s}"),
            Err(e) => error!("{m}: unmount failed: {e}"),
        }
    }
    nix::unistd::sync();
    let mode = match how {
        Halt::Reboot => RebootMode::RB_AUTOBOOT,
        Halt::PowerOff => RebootMode::RB_POWER_OFF,
    };
    notice!("{what} now");
    let e = reboot(mode);
    error!("reboot(2) failed: {e:?}; staying up");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_meanings() {
        assert_eq!(on_signal(libc::SIGINT), Some(Halt::Reboot));
        assert_eq!(on_signal(libc::SIGTERM), Some(Halt::PowerOff));
        assert_eq!(on_signal(libc::SIGUSR2), Some(Halt::PowerOff));
        assert_eq!(on_signal(libc::SIGPWR), Some(Halt::PowerOff));
        assert_eq!(on_signal(libc::SIGHUP), None);
        assert_eq!(on_signal(libc::SIGCHLD), None);
        assert!(signal_set().contains(Signal::SIGCHLD));
    }
}
