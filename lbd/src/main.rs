//! `lbd`: the daemon (`lbd run`), config check (`lbd check FILE`) and the
//! control client (`lbd ctl ...`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use lbd::ctl::proto::{Command, OverrideAction, View};
use lbd::paths;

const USAGE: &str = "usage:
  lbd [run] [--sim] [--socket PATH] [--config FILE] [--history DIR] [--interval-ms N]
  lbd check FILE
  lbd import keepalived|ipvsadm FILE|- [-o OUT.toml]   (TOML to stdout or OUT, report to stderr)
  lbd ctl [--socket PATH] COMMAND
commands for ctl:
  ping | status | services | net | config | history | logs [N] | zero
  fwmark [--json]                 (mark rules, the nftables table inet lvsbox, the FTP helper)
  weight SERVICE REAL WEIGHT      (SERVICE: name, [tcp|udp|sctp] ADDR:PORT, or fwmark N)
  list [--stats|--rate|--thresholds|--persistent-conn|--tun-info|-S|-c|--timeout|--daemon] [--exact]
  validate FILE | apply FILE [--confirm-within SECONDS] | confirm | rollback
  restore [--confirm-within SECONDS] < RULES
  vrrp | vrrp maintenance INSTANCE|GROUP on|off
  checks | disable SERVICE REAL | drain SERVICE REAL | enable SERVICE REAL";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("run") => run(args.get(1..).unwrap_or_default()),
        Some("check") => check(&args[1..]),
        Some("import") => import(&args[1..]),
        Some("ctl") => ctl(&args[1..]),
        Some("--version" | "version") => {
            println!("lbd {}", paths::VERSION);
            ExitCode::SUCCESS
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("lbd: unknown command `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn check(args: &[String]) -> ExitCode {
    let Some(file) = args.first() else {
        eprintln!("usage: lbd check FILE");
        return ExitCode::from(2);
    };
    match lbd::config::parse_file(Path::new(file)) {
        Ok(c) => {
            let reals: usize = c.services.iter().map(|s| s.reals.len()).sum();
            println!(
                "{file}: OK ({} services, {reals} real servers, {} interfaces)",
                c.services.len(),
                c.interfaces.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{file}: {} error(s); nothing would be applied", errors.len());
            ExitCode::FAILURE
        }
    }
}

/// `lbd import keepalived|ipvsadm FILE|- [-o OUT]`: the TOML goes to stdout
/// (or OUT), the report to stderr; exits non-zero when the input has errors.
fn import(args: &[String]) -> ExitCode {
    let mut args = args.to_vec();
    let out = take_opt(&mut args, "-o").or_else(|| take_opt(&mut args, "--output"));
    let usage = "usage: lbd import keepalived|ipvsadm FILE|- [-o OUT.toml]";
    let (Some(kind), Some(file), None) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let read_stdin = || {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    };
    let fs = lbd::import::RealFs;
    let outcome = match (kind.as_str(), file.as_str()) {
        ("keepalived", "-") => match read_stdin() {
            Ok(text) => lbd::import::keepalived::import_text(&fs, &text, "<stdin>"),
            Err(e) => {
                eprintln!("lbd import: stdin: {e}");
                return ExitCode::FAILURE;
            }
        },
        ("keepalived", f) => lbd::import::keepalived::import_file(&fs, Path::new(f)),
        ("ipvsadm", f) => {
            let text =
                if f == "-" { read_stdin() } else { std::fs::read(f).map(|b| String::from_utf8_lossy(&b).into()) };
            match text {
                Ok(t) => lbd::import::ipvsadm::import_text(&t, if f == "-" { "<stdin>" } else { f }),
                Err(e) => {
                    eprintln!("lbd import: {f}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    eprint!("{}", outcome.report.text());
    let Some(toml) = outcome.toml else { return ExitCode::FAILURE };
    match out {
        None => print!("{toml}"),
        Some(path) => {
            if let Err(e) = std::fs::write(&path, toml) {
                eprintln!("lbd import: {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn take_opt(args: &mut Vec<String>, name: &str) -> Option<String> {
    let i = args.iter().position(|a| a == name)?;
    args.remove(i);
    (i < args.len()).then(|| args.remove(i))
}

fn take_flag(args: &mut Vec<String>, names: &[&str]) -> bool {
    let before = args.len();
    args.retain(|a| !names.contains(&a.as_str()));
    args.len() != before
}

fn ctl(args: &[String]) -> ExitCode {
    let mut args = args.to_vec();
    let sock = take_opt(&mut args, "--socket")
        .or_else(|| std::env::var("LBD_SOCKET").ok())
        .unwrap_or_else(|| paths::CONTROL_SOCKET.into());
    let confirm = take_opt(&mut args, "--confirm-within").map(|s| s.trim_end_matches('s').parse::<u64>());
    let confirm_within = match confirm {
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            eprintln!("lbd ctl: --confirm-within takes seconds");
            return ExitCode::from(2);
        }
        None => None,
    };
    let read_file = |f: Option<&String>| -> Result<String, String> {
        match f.map(String::as_str) {
            None | Some("-") => {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s).map_err(|e| e.to_string())?;
                Ok(s)
            }
            Some(f) => std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}")),
        }
    };
    let mut text_out = false;
    let cmd = match args.first().map(String::as_str) {
        None | Some("ping") => Command::Ping,
        Some("status") => Command::Status,
        Some("services") => Command::Services,
        Some("config") => {
            text_out = true;
            Command::ConfigGet
        }
        Some("history") => Command::History,
        Some("net") => Command::Net,
        Some("fwmark") => {
            text_out = !take_flag(&mut args, &["--json"]);
            Command::Fwmark
        }
        Some("zero") => Command::Zero,
        Some("weight") => match (args.get(1), args.get(2), args.get(3).and_then(|w| w.parse().ok())) {
            (Some(service), Some(real), Some(weight)) => {
                Command::SetWeight { service: service.clone(), real: real.clone(), weight }
            }
            _ => {
                eprintln!("usage: lbd ctl weight SERVICE REAL WEIGHT");
                return ExitCode::from(2);
            }
        },
        Some("logs") => Command::Logs { after: 0, max: args.get(1).and_then(|n| n.parse().ok()) },
        Some("list") => {
            text_out = true;
            let exact = take_flag(&mut args, &["--exact", "-x"]);
            let view = if take_flag(&mut args, &["--stats"]) {
                View::Stats
            } else if take_flag(&mut args, &["--rate"]) {
                View::Rate
            } else if take_flag(&mut args, &["--thresholds"]) {
                View::Thresholds
            } else if take_flag(&mut args, &["--persistent-conn"]) {
                View::PersistentConn
            } else if take_flag(&mut args, &["--tun-info"]) {
                View::TunInfo
            } else if take_flag(&mut args, &["-S", "--save"]) {
                View::Rules
            } else if take_flag(&mut args, &["-c", "--connection"]) {
                View::Connections
            } else if take_flag(&mut args, &["--timeout"]) {
                View::Timeout
            } else if take_flag(&mut args, &["--daemon"]) {
                View::Daemon
            } else {
                View::Default
            };
            if args.len() > 1 {
                eprintln!("lbd ctl list: unknown option `{}`", args[1]);
                return ExitCode::from(2);
            }
            Command::List { view, exact }
        }
        Some("validate") => match read_file(args.get(1)) {
            Ok(text) => Command::Validate { text },
            Err(e) => {
                eprintln!("lbd ctl: {e}");
                return ExitCode::FAILURE;
            }
        },
        Some("apply") => match read_file(args.get(1)) {
            Ok(text) => Command::Apply { text, confirm_within },
            Err(e) => {
                eprintln!("lbd ctl: {e}");
                return ExitCode::FAILURE;
            }
        },
        Some("vrrp") => match (args.get(1).map(String::as_str), args.get(2), args.get(3).map(String::as_str)) {
            (None, _, _) => Command::Vrrp,
            (Some("maintenance"), Some(target), Some(on @ ("on" | "off"))) => {
                Command::VrrpMaintenance { target: target.clone(), on: on == "on" }
            }
            _ => {
                eprintln!("usage: lbd ctl vrrp | lbd ctl vrrp maintenance INSTANCE|GROUP on|off");
                return ExitCode::from(2);
            }
        },
        Some("checks") => Command::Checks,
        Some(verb @ ("disable" | "drain" | "enable")) => match (args.get(1), args.get(2)) {
            (Some(service), Some(real)) if args.len() == 3 => Command::RealOverride {
                service: service.clone(),
                real: real.clone(),
                action: match verb {
                    "disable" => OverrideAction::Disable,
                    "drain" => OverrideAction::Drain,
                    _ => OverrideAction::Enable,
                },
            },
            _ => {
                eprintln!("usage: lbd ctl {verb} SERVICE REAL");
                return ExitCode::from(2);
            }
        },
        Some("confirm") => Command::Confirm,
        Some("rollback") => Command::Rollback,
        Some("restore") => match read_file(args.get(1)) {
            Ok(rules) => Command::Restore { rules, confirm_within },
            Err(e) => {
                eprintln!("lbd ctl: {e}");
                return ExitCode::FAILURE;
            }
        },
        Some(other) => {
            eprintln!("lbd ctl: unknown command `{other}`\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let resp =
        lbd::ctl::client::Client::connect(Path::new(&sock), Duration::from_secs(120)).and_then(|mut c| c.call(cmd));
    match resp {
        Ok(r) if r.ok => {
            let data = r.data.unwrap_or_default();
            match (&data, text_out) {
                (serde_json::Value::String(s), true) => print!("{s}"),
                (v, true) if v.get("text").is_some() => print!("{}", v["text"].as_str().unwrap_or_default()),
                (v, _) => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
            }
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("lbd: {}", r.error.unwrap_or_default());
            if let Some(errs) = r.data.as_ref().and_then(|d| d.get("errors")).and_then(|e| e.as_array()) {
                for e in errs {
                    match serde_json::from_value::<lbd::config::ConfigError>(e.clone()) {
                        Ok(ce) => eprintln!("{ce}"),
                        Err(_) => eprintln!("{}", e.as_str().map(str::to_string).unwrap_or_else(|| e.to_string())),
                    }
                }
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("lbd ctl: {sock}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> ExitCode {
    let mut args = args.to_vec();
    let mut opts = lbd::daemon::Options::default();
    if let Some(s) = take_opt(&mut args, "--socket") {
        opts.socket = PathBuf::from(s);
    }
    if let Some(s) = take_opt(&mut args, "--config") {
        opts.config = PathBuf::from(s);
    }
    if let Some(s) = take_opt(&mut args, "--history") {
        opts.history = PathBuf::from(s);
    }
    if let Some(s) = take_opt(&mut args, "--interval-ms") {
        match s.parse() {
            Ok(ms) => opts.interval = Duration::from_millis(ms),
            Err(_) => {
                eprintln!("lbd: --interval-ms takes a number");
                return ExitCode::from(2);
            }
        }
    }
    let sim = take_flag(&mut args, &["--sim"]);
    // The simulator is for host tests: never touch the host's network or sysctls.
    opts.manage_system = !sim;
    if let Some(extra) = args.first() {
        eprintln!("lbd run: unknown option `{extra}`\n{USAGE}");
        return ExitCode::from(2);
    }
    limit_malloc_arenas();
    let ring = lbd::logring::LogRing::new();
    {
        use tracing_subscriber::prelude::*;
        let level = std::env::var("LBD_LOG")
            .ok()
            .and_then(|l| l.parse::<tracing::Level>().ok())
            .unwrap_or(tracing::Level::INFO);
        let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false).without_time();
        let _ = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::from_level(level))
            .with(fmt)
            .with(ring.clone())
            .try_init();
    }
    let kernel: Box<dyn lbd::kernel::Kernel> =
        if sim { Box::new(lbd::kernel::SimKernel::new()) } else { lbd::kernel::open() };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lbd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(lbd::daemon::run_notify(opts, kernel, ring, ready_pipe())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lbd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The pipe init passed in [`paths::READY_FD_ENV`] to hear when the control
/// socket is up; None without the variable or when the descriptor is not an
/// open pipe. Called once, before the runtime starts any thread.
fn ready_pipe() -> Option<std::fs::File> {
    use std::os::fd::FromRawFd;
    let fd: i32 = std::env::var(paths::READY_FD_ENV).ok()?.trim().parse().ok()?;
    if fd <= 2 {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: fstat only fills `st`; from_raw_fd takes a descriptor that is
    // open (fstat succeeded), a pipe, and that init handed down for this use
    // alone: nothing else in lbd knows or owns it, and this runs once.
    let f = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd, &mut st) != 0 || st.st_mode & libc::S_IFMT != libc::S_IFIFO {
            return None;
        }
        std::fs::File::from_raw_fd(fd)
    };
    // Not inherited by anything lbd runs.
    let _ = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    Some(f)
}

/// glibc gives each thread its own malloc arena; lbd's threads (control,
/// kernel reader, VRRP, runtime) would each keep the high-water mark of what
/// they once allocated. Two arenas keep a 10,000-service box's memory small.
///
/// The thresholds are fixed at glibc's initial values because glibc raises
/// them as large blocks are freed (up to 32 MiB mmap, 64 MiB trim): after the
/// TOML parser's multi-MiB buffers, big blocks came from the arenas and the
/// free top of the second arena stayed resident, and `malloc_trim` trims
/// only the main arena's top (it just madvises free chunks inside the others).
/// Fixed thresholds keep blocks of 128 KiB and more in their own mappings,
/// unmapped when freed, and let `free` shrink every arena's top.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets allocator tunables; called before any
    // thread is started.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}
