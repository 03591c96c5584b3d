//! Supervision: what runs (lbd, a console per tty, the debug shell), restart
//! with backoff, reaping every zombie and handing supervised children's
//! statuses to their table entries (the reaper never "steals" an exit: the
//! table is the only consumer of `waitpid(-1)`).

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lbd::initctl::{ChildInfo, ChildState};
use lbd::paths;
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Restart delay: starts at `initial`, doubles to `max`, back to `initial`
/// once a child ran for `reset_after`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Cap.
    pub max: Duration,
    /// A run this long counts as healthy and resets the delay.
    pub reset_after: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(250), Duration::from_secs(30), Duration::from_secs(60))
    }
}

impl Backoff {
    /// A policy.
    pub fn new(initial: Duration, max: Duration, reset_after: Duration) -> Self {
        Backoff { initial, max, reset_after, next: initial }
    }
    /// The delay before the next start, given how long the child ran.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.reset_after {
            self.next = self.initial;
        }
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

/// How a child ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// exit(code).
    Code(i32),
    /// Killed by a signal.
    Signal(i32, bool),
    /// Could not be started.
    SpawnFailed(String),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s, core) => {
                let name = Signal::try_from(*s).map(|s| s.as_str()).unwrap_or("?");
                write!(f, "signal {s} ({name}){}", if *core { ", core dumped" } else { "" })
            }
            Exit::SpawnFailed(e) => write!(f, "could not start: {e}"),
        }
    }
}

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// `lbd`, `console:ttyS0`, `shell:ttyS1`.
    pub name: String,
    /// Executable.
    pub program: PathBuf,
    /// argv[0] when it should differ from the program (`-sh` for a login shell).
    pub arg0: Option<String>,
    /// Arguments.
    pub args: Vec<String>,
    /// Controlling tty (without `/dev/`); without one, output goes to init's log.
    pub tty: Option<String>,
    /// Environment (the rest is cleared).
    pub env: Vec<(String, String)>,
    /// Pass a readiness pipe: its write end's number in
    /// [`paths::READY_FD_ENV`], its read end in [`Started::ready`].
    pub notify: bool,
}

/// `TERM` for a tty: `linux` on VTs, `vt220` on serial lines.
pub fn term_for(tty: &str) -> &'static str {
    let vt = tty.strip_prefix("tty").is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    if vt { "linux" } else { "vt220" }
}

impl Spec {
    fn base_env() -> Vec<(String, String)> {
        vec![("PATH".into(), "/bin:/sbin".into()), ("HOME".into(), "/".into())]
    }
    /// `/bin/lbd run`.
    pub fn lbd() -> Spec {
        Spec {
            name: "lbd".into(),
            program: "/bin/lbd".into(),
            arg0: None,
            args: vec!["run".into()],
            tty: None,
            env: Spec::base_env(),
            notify: true,
        }
    }
    /// `/bin/console --tty NAME --size COLSxROWS` on `tty`.
    pub fn console(tty: &str, size: &str) -> Spec {
        let mut env = Spec::base_env();
        env.push(("TERM".into(), term_for(tty).into()));
        Spec {
            name: format!("console:{tty}"),
            program: "/bin/console".into(),
            arg0: None,
            args: vec!["--tty".into(), tty.into(), "--size".into(), size.into()],
            tty: Some(tty.into()),
            env,
            notify: false,
        }
    }
    /// A login-ish root `/bin/sh` on `tty` (argv[0] `-sh`).
    pub fn shell(tty: &str) -> Spec {
        let mut env = Spec::base_env();
        env.push(("TERM".into(), term_for(tty).into()));
        env.push(("PS1".into(), "lvsbox-debug# ".into()));
        Spec {
            name: format!("shell:{tty}"),
            program: "/bin/sh".into(),
            arg0: Some("-sh".into()),
            args: vec![],
            tty: Some(tty.into()),
            env,
            notify: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum St {
    Running { pid: i32, since: Instant },
    Waiting { until: Instant },
    Stopped,
}

/// A supervised child.
#[derive(Debug)]
pub struct Child {
    /// What it runs.
    pub spec: Spec,
    st: St,
    /// Restarts so far.
    pub restarts: u32,
    /// How it last ended.
    pub last_exit: Option<Exit>,
    backoff: Backoff,
}

/// What the reaper's status meant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A supervised child ended; restarts after `restart_in` unless stopping.
    Supervised {
        /// Its name.
        name: String,
        /// How it ended.
        exit: Exit,
        /// Delay before the restart (None while shutting down).
        restart_in: Option<Duration>,
        /// The restart count it will have.
        restarts: u32,
    },
    /// Not ours (an orphan that was re-parented to init): just reaped.
    Orphan,
}

/// The table of supervised children.
#[derive(Debug, Default)]
pub struct Table {
    children: Vec<Child>,
    stopping: bool,
}

impl Table {
    /// Adds a child; it is due to start at `now`.
    pub fn add(&mut self, spec: Spec, now: Instant) {
        self.children.push(Child {
            spec,
            st: St::Waiting { until: now },
            restarts: 0,
            last_exit: None,
            backoff: Backoff::default(),
        });
    }

    /// Whether a child of that name exists.
    pub fn has(&self, name: &str) -> bool {
        self.children.iter().any(|c| c.spec.name == name)
    }

    /// Children due to start now (indexes).
    pub fn due(&self, now: Instant) -> Vec<usize> {
        if self.stopping {
            return vec![];
        }
        (0..self.children.len())
            .filter(|&i| matches!(self.children[i].st, St::Waiting { until } if until <= now))
            .collect()
    }

    /// The spec of child `i`.
    pub fn spec(&self, i: usize) -> &Spec {
        &self.children[i].spec
    }

    /// Child `i` was started as `pid`.
    pub fn started(&mut self, i: usize, pid: i32, now: Instant) {
        self.children[i].st = St::Running { pid, since: now };
    }

    fn ended(&mut self, i: usize, exit: Exit, ran_for: Duration, now: Instant) -> Delivery {
        let stopping = self.stopping;
        let c = &mut self.children[i];
        c.last_exit = Some(exit.clone());
        if stopping {
            c.st = St::Stopped;
            return Delivery::Supervised { name: c.spec.name.clone(), exit, restart_in: None, restarts: c.restarts };
        }
        let d = c.backoff.next_delay(ran_for);
        c.restarts += 1;
        c.st = St::Waiting { until: now + d };
        Delivery::Supervised { name: c.spec.name.clone(), exit, restart_in: Some(d), restarts: c.restarts }
    }

    /// Child `i` could not be started.
    pub fn spawn_failed(&mut self, i: usize, error: String, now: Instant) -> Delivery {
        self.ended(i, Exit::SpawnFailed(error), Duration::ZERO, now)
    }

    /// The reaper's status for `pid`: goes to its child entry, or is an orphan's.
    pub fn deliver(&mut self, pid: i32, exit: Exit, now: Instant) -> Delivery {
        let found = self.children.iter().position(|c| matches!(c.st, St::Running { pid: p, .. } if p == pid));
        match found {
            Some(i) => {
                let ran = match self.children[i].st {
                    St::Running { since, .. } => now.saturating_duration_since(since),
                    _ => Duration::ZERO,
                };
                self.ended(i, exit, ran, now)
            }
            None => Delivery::Orphan,
        }
    }

    /// When the next child is due (for the poll timeout).
    pub fn next_due(&self) -> Option<Instant> {
        if self.stopping {
            return None;
        }
        self.children
            .iter()
            .filter_map(|c| match c.st {
                St::Waiting { until } => Some(until),
                _ => None,
            })
            .min()
    }

    /// Stops restarting; returns the pids still running.
    pub fn stop(&mut self) -> Vec<(String, i32)> {
        self.stopping = true;
        for c in &mut self.children {
            if matches!(c.st, St::Waiting { .. }) {
                c.st = St::Stopped;
            }
        }
        self.running()
    }

    /// Running children: (name, pid).
    pub fn running(&self) -> Vec<(String, i32)> {
        self.children
            .iter()
            .filter_map(|c| match c.st {
                St::Running { pid, .. } => Some((c.spec.name.clone(), pid)),
                _ => None,
            })
            .collect()
    }

    /// Whether the child named `name` runs on a tty.
    pub fn on_tty(&self, name: &str) -> bool {
        self.children.iter().any(|c| c.spec.name == name && c.spec.tty.is_some())
    }

    /// The pid of the child named `name`, when running.
    pub fn pid_of(&self, name: &str) -> Option<i32> {
        self.running().into_iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// For the control socket.
    pub fn info(&self, now: Instant) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| {
                let (state, pid, restart_in_ms) = match c.st {
                    St::Running { pid, .. } => (ChildState::Running, Some(pid), None),
                    St::Waiting { until } => {
                        (ChildState::Backoff, None, Some(until.saturating_duration_since(now).as_millis() as u64))
                    }
                    St::Stopped => (ChildState::Stopped, None, None),
                };
                ChildInfo {
                    name: c.spec.name.clone(),
                    pid,
                    state,
                    restarts: c.restarts,
                    last_exit: c.last_exit.as_ref().map(|e| e.to_string()),
                    restart_in_ms,
                }
            })
            .collect()
    }
}

/// Reaps every exited child (`waitpid(-1, WNOHANG)` until none is left) and
/// hands each status to `f`, the only consumer. Bounded: at most 4096 per
/// call. Returns false when init has no children left at all (ECHILD).
pub fn reap(mut f: impl FnMut(i32, Exit)) -> bool {
    for _ in 0..4096 {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => f(pid.as_raw(), Exit::Code(code)),
            Ok(WaitStatus::Signaled(pid, sig, core)) => f(pid.as_raw(), Exit::Signal(sig as i32, core)),
            Ok(WaitStatus::StillAlive) => return true,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(_) => return false, // ECHILD
        }
    }
    true
}

/// A started child: its pid and, without a tty, the read end of its output pipe.
pub struct Started {
    /// pid.
    pub pid: i32,
    /// stdout+stderr of a child without a tty.
    pub output: Option<OwnedFd>,
    /// The readiness pipe's read end (non-blocking), with [`Spec::notify`].
    pub ready: Option<OwnedFd>,
}

fn open_tty(tty: &str) -> io::Result<std::fs::File> {
    // O_NONBLOCK so a serial line without carrier does not block the open;
    // then back to blocking for the child.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(format!("/dev/{tty}"))?;
    let fl = rustix::fs::fcntl_getfl(&f)?;
    rustix::fs::fcntl_setfl(&f, fl - rustix::fs::OFlags::NONBLOCK)?;
    Ok(f)
}

/// Starts `spec`: a new session; with a tty, that tty as controlling
/// terminal and stdio; without, stdin `/dev/null` and stdout/stderr a pipe
/// whose read end is returned (init logs the lines).
pub fn spawn(spec: &Spec) -> io::Result<Started> {
    let mut cmd = Command::new(&spec.program);
    if let Some(a) = &spec.arg0 {
        cmd.arg0(a);
    }
    cmd.args(&spec.args).env_clear().envs(spec.env.iter().map(|(k, v)| (k, v))).current_dir("/");
    let mut output = None;
    let with_tty = spec.tty.is_some();
    match &spec.tty {
        Some(t) => {
            let f = open_tty(t)?;
            cmd.stdin(Stdio::from(f.try_clone()?)).stdout(Stdio::from(f.try_clone()?)).stderr(Stdio::from(f));
        }
        None => {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            rustix::fs::fcntl_setfl(&r, rustix::fs::OFlags::NONBLOCK)?;
            let w2 = w.try_clone()?;
            cmd.stdin(Stdio::null()).stdout(Stdio::from(w)).stderr(Stdio::from(w2));
            output = Some(r);
        }
    }
    // Both ends close-on-exec in init; the child's copy of the write end
    // loses the flag just before its exec, so nothing else inherits it.
    let mut ready = None;
    let mut ready_w = None;
    if spec.notify {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        rustix::fs::fcntl_setfl(&r, rustix::fs::OFlags::NONBLOCK)?;
        cmd.env(paths::READY_FD_ENV, w.as_raw_fd().to_string());
        ready = Some(r);
        ready_w = Some(w);
    }
    let ready_fd = ready_w.as_ref().map(|w| w.as_raw_fd());
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (sigprocmask, setsid, ioctl, fcntl); it
    // allocates nothing and touches no locks.
    unsafe {
        cmd.pre_exec(move || {
            // init blocks the signals it reads through signalfd; the child must not inherit that.
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            rustix::process::setsid()?;
            if with_tty {
                rustix::process::ioctl_tiocsctty(std::io::stdin().as_fd())?;
            }
            if let Some(fd) = ready_fd
                && libc::fcntl(fd, libc::F_SETFD, 0) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // init's copy of the write end goes now: EOF then means the child is gone.
    drop(ready_w);
    Ok(Started { pid: child.id() as i32, output, ready })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_grows_caps_and_resets() {
        let mut b = Backoff::default();
        let seq: Vec<u64> = (0..9).map(|_| b.next_delay(ms(10)).as_millis() as u64).collect();
        assert_eq!(seq, [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert!(seq[0] < 1000, "first restart within 1 s");
        assert_eq!(b.next_delay(Duration::from_secs(60)), ms(250), "a healthy run resets");
        assert_eq!(b.next_delay(ms(1)), ms(500));
    }

    #[test]
    fn terms() {
        assert_eq!(term_for("tty1"), "linux");
        assert_eq!(term_for("ttyS0"), "vt220");
        assert_eq!(term_for("hvc0"), "vt220");
        assert_eq!(term_for("tty"), "vt220");
        let c = Spec::console("ttyS0", "80x24");
        assert_eq!(c.args, ["--tty", "ttyS0", "--size", "80x24"]);
        assert!(c.env.contains(&("TERM".into(), "vt220".into())));
        assert_eq!(Spec::shell("ttyS1").arg0.as_deref(), Some("-sh"));
    }

    #[test]
    fn exits_display() {
        assert_eq!(Exit::Code(1).to_string(), "exit code 1");
        assert_eq!(Exit::Signal(9, false).to_string(), "signal 9 (SIGKILL)");
        assert_eq!(Exit::Signal(11, true).to_string(), "signal 11 (SIGSEGV), core dumped");
    }

    #[test]
    fn table_delivers_statuses_to_their_children() {
        let t0 = Instant::now();
        let mut t = Table::default();
        t.add(Spec::lbd(), t0);
        t.add(Spec::console("ttyS0", "80x24"), t0);
        assert_eq!(t.due(t0), [0, 1]);
        t.started(0, 100, t0);
        t.started(1, 101, t0);
        assert!(t.due(t0).is_empty());
        assert_eq!(t.next_due(), None);

        // An orphan's status is reaped but does not touch the table.
        assert_eq!(t.deliver(555, Exit::Code(0), t0), Delivery::Orphan);
        assert_eq!(t.running().len(), 2);

        let t1 = t0 + ms(5000);
        match t.deliver(100, Exit::Signal(9, false), t1) {
            Delivery::Supervised { name, exit, restart_in, restarts } => {
                assert_eq!((name.as_str(), restarts), ("lbd", 1));
                assert_eq!(exit, Exit::Signal(9, false));
                assert_eq!(restart_in, Some(ms(250)));
            }
            d => panic!("{d:?}"),
        }
        assert_eq!(t.next_due(), Some(t1 + ms(250)));
        assert!(t.due(t1 + ms(249)).is_empty());
        assert_eq!(t.due(t1 + ms(250)), [0]);
        let info = t.info(t1);
        assert_eq!(info[0].state, ChildState::Backoff);
        assert_eq!(info[0].last_exit.as_deref(), Some("signal 9 (SIGKILL)"));
        assert_eq!(info[0].restart_in_ms, Some(250));
        assert_eq!(info[1].pid, Some(101));

        // The same pid again (already delivered) is not ours anymore.
        assert_eq!(t.deliver(100, Exit::Code(0), t1), Delivery::Orphan);

        // Quick second failure: longer delay.
        t.started(0, 102, t1 + ms(250));
        match t.deliver(102, Exit::Code(1), t1 + ms(300)) {
            Delivery::Supervised { restart_in, restarts, .. } => {
                assert_eq!((restart_in, restarts), (Some(ms(500)), 2));
            }
            d => panic!("{d:?}"),
        }
        // Spawn failures back off too.
        let t2 = t1 + ms(800);
        assert_eq!(t.due(t2), [0]);
        match t.spawn_failed(0, "ENOENT".into(), t2) {
            Delivery::Supervised { restart_in, .. } => assert_eq!(restart_in, Some(ms(1000))),
            d => panic!("{d:?}"),
        }

        // Shutdown: no restarts, running ones listed.
        assert_eq!(t.stop(), vec![("console:ttyS0".to_string(), 101)]);
        assert!(t.due(t2 + Duration::from_secs(100)).is_empty());
        match t.deliver(101, Exit::Signal(15, false), t2) {
            Delivery::Supervised { restart_in, .. } => assert_eq!(restart_in, None),
            d => panic!("{d:?}"),
        }
        assert!(t.running().is_empty());
        assert!(t.info(t2).iter().all(|c| c.state == ChildState::Stopped));
    }

    /// Real processes: the reaper collects them with the right statuses and the
    /// table gets the supervised one's. (The only test here that forks.)
    #[test]
    fn reaper_collects_real_children() {
        let spec = Spec {
            name: "victim".into(),
            program: "/bin/sh".into(),
            arg0: None,
            args: vec!["-c".into(), format!("echo hello; echo ready >&${}; kill -9 $$", paths::READY_FD_ENV)],
            tty: None,
            env: vec![],
            notify: true,
        };
        let s = spawn(&spec).expect("spawn /bin/sh");
        let other = Command::new("/bin/sh").args(["-c", "exit 3"]).spawn().unwrap().id() as i32;
        let t0 = Instant::now();
        let mut t = Table::default();
        t.add(spec, t0);
        t.started(0, s.pid, t0);
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen.len() < 2 && Instant::now() < deadline {
            let _ = reap(|pid, exit| seen.push((pid, t.deliver(pid, exit.clone(), Instant::now()), exit)));
            std::thread::sleep(ms(10));
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        let (_, d, e) = seen.iter().find(|(p, _, _)| *p == s.pid).unwrap();
        assert_eq!(*e, Exit::Signal(9, false));
        assert!(matches!(d, Delivery::Supervised { name, .. } if name == "victim"));
        let (_, d, e) = seen.iter().find(|(p, _, _)| *p == other).unwrap();
        assert_eq!((d, e), (&Delivery::Orphan, &Exit::Code(3)));
        // Its output went to the pipe.
        let mut buf = [0u8; 64];
        let n = rustix::io::read(s.output.as_ref().unwrap(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello\n");
        // And its readiness line to the readiness pipe.
        let n = rustix::io::read(s.ready.as_ref().unwrap(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"ready\n");
    }
}
