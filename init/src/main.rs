//! lvsbox PID 1.
//!
//! As PID 1: boot (see [`boot`]), then supervise lbd, the consoles and the
//! debug shell (see [`runtime`]) until a reboot or power-off. PID 1 never
//! exits: the boot runs under `catch_unwind`; a panic or fatal error there
//! drops init into maintenance mode, which still supervises the consoles
//! (and the debug shell) so the box stays reachable.
//!
//! Not PID 1: the kernel runs `/init -q -- <module>` as its modprobe helper
//! (`kernel.modprobe=/init`), and init loads the module and its dependencies
//! from modules.dep / modules.alias. `init modprobe NAME...` does the same by
//! hand; `init modprobe --late` (started by PID 1 once lbd is ready) loads
//! the modules.load modules that boot left for later; `init --version`
//! prints the version.

mod boot;
mod cmdline;
mod kmod;
mod log;
mod mounts;
mod power;
mod runtime;
mod supervise;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::time::Duration;

use lbd::initctl::BootReport;

use crate::log::error;

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

fn main() -> ExitCode {
    if std::process::id() != 1 {
        return not_pid1();
    }
    std::panic::set_hook(Box::new(|info| {
        log::log_nonblocking(lbd::initctl::Level::Error, &format!("PANIC: {info}"));
    }));
    pid1()
}

fn pid1() -> ExitCode {
    let mut report = BootReport::default();
    // Mounts, kmsg, banner: the parts that cannot sensibly fail.
    let cmd = match catch_unwind(AssertUnwindSafe(|| boot::early(&mut report))) {
        Ok(c) => c,
        Err(p) => {
            error!("early boot failed: {}", panic_message(&*p));
            cmdline::Cmdline::default()
        }
    };
    // Signals first, so no SIGCHLD/SIGINT is lost once children exist.
    let sigfd = loop {
        match runtime::open_signalfd() {
            Ok(s) => break s,
            Err(e) => {
                error!("signalfd: {e}; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    };
    let plan = match catch_unwind(AssertUnwindSafe(|| {
        let cfg = boot::modules_and_config(&cmd, &mut report);
        if cmd.panic == Some(cmdline::PanicAt::Boot) {
            panic!("lvsbox.panic=boot (test)");
        }
        boot::system(&cfg, &mut report);
        boot::network(&cfg, &mut report);
        boot::plan(&cmd, &cfg, true)
    })) {
        Ok(p) => p,
        Err(p) => {
            let why = format!("boot failed: {}", panic_message(&*p));
            error!("{why}; MAINTENANCE MODE: consoles only, lbd not started");
            report.maintenance = Some(why);
            boot::plan(&cmd, &lbd::config::Config::default(), false)
        }
    };
    let mut plan = Some(plan);
    loop {
        let p = plan.take().unwrap_or_else(|| boot::plan(&cmd, &lbd::config::Config::default(), false));
        let inject = cmd.panic == Some(cmdline::PanicAt::Loop);
        let r =
            catch_unwind(AssertUnwindSafe(|| runtime::Runtime::new(p, &sigfd, &mut report).inject_panic(inject).run()));
        // run() only comes back by panicking.
        let why = match r {
            Err(p) => panic_message(&*p),
        };
        error!("supervision failed: {why}; MAINTENANCE MODE: restarting the consoles");
        report.maintenance = Some(format!("supervision failed: {why}"));
        // Start from a clean slate: no duplicates of the old children on the ttys.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(-1), nix::sys::signal::Signal::SIGKILL);
        let _ = supervise::reap(|_, _| {});
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn not_pid1() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("version") => {
            println!("init ({}) {}", lbd::paths::PRODUCT, lbd::paths::VERSION);
            ExitCode::SUCCESS
        }
        Some("modprobe") if args.get(1).map(String::as_str) == Some("--late") => {
            log::open_kmsg();
            if boot::load_late() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Some("modprobe") => modprobe(&args[1..]),
        Some("ctl") => ctl(&args[1..]),
        Some("net") => net(),
        // The kernel's helper call: `modprobe -q -- NAME`.
        Some(a) if a.starts_with('-') => modprobe(&args),
        _ => {
            eprintln!(
                "init: this is lvsbox's PID 1; as another process: `init ctl logs|children|boot_report|reboot|poweroff`, \
                 `init net` or `init modprobe NAME...`"
            );
            ExitCode::from(2)
        }
    }
}

/// A client of init's control socket: prints the response's data as JSON.
fn ctl(args: &[String]) -> ExitCode {
    use lbd::initctl::Command;
    let cmd = match args.first().map(String::as_str) {
        Some("logs") => Command::Logs,
        Some("children") => Command::Children,
        Some("boot_report") | Some("boot-report") => Command::BootReport,
        Some("reboot") => Command::Reboot,
        Some("poweroff") => Command::Poweroff,
        _ => {
            eprintln!("usage: init ctl logs|children|boot_report|reboot|poweroff");
            return ExitCode::from(2);
        }
    };
    let path = std::path::Path::new(lbd::paths::INIT_SOCKET);
    match lbd::initctl::Client::connect(path, Duration::from_secs(10)).and_then(|mut c| c.call(cmd)) {
        Ok(r) if r.ok => {
            println!("{}", r.data.unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("init: {}", r.error.unwrap_or_default());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("init ctl: {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// Prints the links (with addresses) and main-table routes as JSON, as
/// `lbd::net` sees them (what the console will show).
fn net() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("init net: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async {
        let links = lbd::net::links().await?;
        let routes = lbd::net::routes().await?;
        Ok::<_, lbd::net::NetError>(serde_json::json!({ "links": links, "routes": routes }))
    });
    match res {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("init net: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads modules by name or alias. Used by the kernel's request_module().
fn modprobe(args: &[String]) -> ExitCode {
    log::open_kmsg();
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let db = kmod::ModDb::open(&boot::modules_root());
    let mut loader = kmod::Loader::new(db, kmod::SysKmod);
    let mut ok = true;
    for n in names {
        let mods = loader.db.resolve(n);
        if mods.is_empty() {
            ok = false;
            log::log(lbd::initctl::Level::Debug, &format!("modprobe {n}: no such module or alias"));
            continue;
        }
        let new = loader.load_alias(n);
        if !new.is_empty() {
            log::log(lbd::initctl::Level::Info, &format!("modprobe {n}: loaded {}", new.join(" ")));
        }
    }
    for f in &loader.failures {
        ok = false;
        error!("modprobe {}: {} (errno {})", f.name, f.error, f.errno);
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
