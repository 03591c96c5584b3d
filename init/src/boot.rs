//! The boot sequence, up to the point where supervision takes over.
//!
//! Order (each step logs what it did; nothing here is fatal):
//! 1. mount /dev, /proc, /sys, /dev/pts, /run, /tmp; open /dev/kmsg; banner
//! 2. read the kernel command line; printk levels; kernel sysctls
//! 3. coldplug: load drivers for the devices present (bounded rounds)
//! 4. find the config partition (bounded wait), load its fs module, mount it,
//!    parse the config (missing/invalid → safe defaults, said loudly)
//! 5. modules.load (ip_vs gets `conn_tab_bits`, ip_vs_ftp `ports` from the
//!    config), coldplug again
//! 6. hostname, sysctls from the config
//! 7. network from the config (lbd::net in a current-thread tokio runtime)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lbd::config::Config;
use lbd::initctl::{BootReport, ConfigReport, ConfigStatus};
use lbd::paths;

use crate::cmdline::{self, Cmdline, ConfigSource};
use crate::kmod::{self, Loader, ModDb, SysKmod};
use crate::log::{debug, error, info, notice, warn};
use crate::mounts;
use crate::supervise::Spec;

/// How long to wait for the config partition to appear.
pub const CONFIG_WAIT: Duration = Duration::from_secs(5);
/// Coldplug rounds (each may reveal new devices: virtio_pci → virtio_net).
pub const COLDPLUG_ROUNDS: usize = 6;
/// Bound on the network apply.
pub const NET_TIMEOUT: Duration = Duration::from_secs(20);

/// What supervision should run once boot is done.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Start lbd (not in maintenance mode).
    pub lbd: bool,
    /// Consoles, started once lbd is ready (or did not answer in time).
    pub consoles: Vec<Spec>,
    /// Debug shell, started at once.
    pub shell: Option<Spec>,
}

/// Writes a line straight to /dev/console (the last `console=`, the serial
/// line on the image), for lines scripts match exactly: the banner and
/// `lbd ready`.
pub fn console_line(s: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open("/dev/console") {
        let _ = f.write_all(format!("{s}\n").as_bytes());
    }
}

/// Kernel console names from /proc/consoles (`ttyS0`, `tty0`).
fn kernel_consoles() -> Vec<String> {
    std::fs::read_to_string("/proc/consoles")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Shows `lines` on every console tty: kmsg at ERR reaches the kernel's
/// consoles; the ttys that are not kernel consoles get them written directly.
pub fn announce(lines: &[String], ttys: &[String]) {
    for l in lines {
        error!("{l}");
    }
    let kc = kernel_consoles();
    for t in ttys {
        let covered = kc.contains(t)
            || (t.starts_with("tty") && crate::supervise::term_for(t) == "linux" && kc.iter().any(|k| k == "tty0"));
        if covered {
            continue;
        }
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(format!("/dev/{t}")) {
            let mut text = String::new();
            for l in lines {
                text.push_str(l);
                text.push_str("\r\n");
            }
            let _ = f.write_all(text.as_bytes());
        }
    }
}

fn write_sysctl(key: &str, value: &str) {
    for r in lbd::sysctl::apply(&[lbd::sysctl::Sysctl::new(key, value)]) {
        if r.failed() {
            warn!("sysctl {r}");
        } else {
            debug!("sysctl {r}");
        }
    }
}

/// Step 1 and 2: mounts, log, banner, cmdline, kernel knobs. Never fails.
pub fn early(report: &mut BootReport) -> Cmdline {
    crate::log::milestone("init");
    let mount_errors = mounts::mount_early();
    crate::log::milestone_idle_now();
    crate::log::open_kmsg();
    let raw = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let cmd = cmdline::parse(&raw);
    crate::log::set_debug(cmd.debug);
    // console_loglevel 6: NOTICE (init's operator lines) and worse reach the
    // console even with `quiet`; INFO stays in kmsg and the ring. Debug: all.
    write_sysctl("kernel.printk", if cmd.debug { "8 4 1 8" } else { "6 4 1 7" });
    // /dev/kmsg writes are rate-limited by default (10 per 5 s): init logs more at boot.
    write_sysctl("kernel.printk_devkmsg", "on");
    // Own line even if firmware left the cursor mid-line (SeaBIOS does).
    console_line(&format!("\n{} {}", paths::PRODUCT, paths::VERSION));
    info!("{} {} starting (pid 1)", paths::PRODUCT, paths::VERSION);
    report.version = paths::VERSION.to_string();
    report.cmdline = raw.trim().to_string();
    for e in mount_errors {
        error!("{e}");
    }
    info!("cmdline: {}", raw.trim());
    for w in &cmd.warnings {
        warn!("{w}");
    }
    // Ctrl-Alt-Del sends SIGINT to init instead of an immediate reboot.
    write_sysctl("kernel.ctrl-alt-del", "0");
    // No modprobe in the image: the kernel's own module requests
    // (request_module: IPVS schedulers, nft expressions, net-pf-N) run init
    // itself in modprobe mode, which resolves them from modules.dep/alias.
    write_sysctl("kernel.modprobe", "/init");
    let _ = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    cmd
}

/// `/lib/modules/<uname -r>`.
pub fn modules_root() -> PathBuf {
    let u = rustix::system::uname();
    PathBuf::from("/lib/modules").join(u.release().to_string_lossy().as_ref())
}

/// Drivers whose probe waits on hardware for a long time with the CPU idle:
/// AHCI brings up every SATA port and debounces its link (about 0.3 s of
/// idle time under QEMU's q35, whose six ports are empty), and a module
/// load waits for every asynchronous probe in the system before it
/// returns. Coldplug loads these last and without waiting (`async_probe=1`,
/// see [`Loader::start_async`]), so the boot's next loads (ext4, netfilter)
/// compute while the ports settle; disks behind them appear later, which
/// the wait for the config partition covers (it coldplugs while it waits,
/// for the `sd_mod` their SCSI devices need).
pub const ASYNC_PROBE: &[&str] = &["ahci"];

/// Loads drivers for the devices present, up to [`COLDPLUG_ROUNDS`] rounds;
/// a round that loads nothing new ends it. The [`ASYNC_PROBE`] drivers come
/// last, loaded without waiting for their probes. `seen` keeps the aliases
/// handled and the device directories read, across calls. Returns the
/// modules loaded.
pub fn coldplug(loader: &mut Loader<SysKmod>, seen: &mut std::collections::HashSet<String>) -> Vec<String> {
    let defer: &[&str] = if loader.nowait { &[] } else { ASYNC_PROBE };
    let mut deferred = Vec::new();
    let mut loaded = Vec::new();
    for round in 0..COLDPLUG_ROUNDS {
        let t = std::time::Instant::now();
        let aliases: Vec<String> =
            kmod::read_new_modaliases(Path::new("/sys"), seen).into_iter().filter(|a| !seen.contains(a)).collect();
        debug!("coldplug round {round}: modaliases read in {} ms", t.elapsed().as_millis());
        let mut new = Vec::new();
        for a in &aliases {
            seen.insert(a.clone());
            new.extend(loader.load_alias_deferring(a, defer, &mut deferred));
        }
        debug!("coldplug round {round}: {} new devices, loaded {:?}", aliases.len(), new);
        if new.is_empty() {
            if aliases.is_empty() {
                break;
            }
            continue;
        }
        loaded.extend(new);
        // Drivers register devices of other buses as they probe (virtio_pci →
        // virtio); give asynchronous probes a moment before the next round.
        std::thread::sleep(Duration::from_millis(10));
    }
    for m in deferred {
        if let Ok(new) = loader.start_async(&m) {
            debug!("coldplug: {m} probes in the background, loaded {new:?}");
            loaded.extend(new);
        }
    }
    loaded
}

/// How often the wait for the config partition runs coldplug again.
const COLDPLUG_WHILE_WAITING: Duration = Duration::from_millis(200);

/// Waits (bounded) for the config partition. While it is missing, coldplug
/// runs again every [`COLDPLUG_WHILE_WAITING`]: the disk may sit behind a
/// driver that is still probing ([`ASYNC_PROBE`]) and then need another
/// module (`sd_mod`).
fn find_config_device(
    src: &ConfigSource,
    loader: &mut Loader<SysKmod>,
    seen: &mut std::collections::HashSet<String>,
) -> (Option<PathBuf>, Duration) {
    let find = || match src {
        ConfigSource::PartLabel(l) => mounts::find_partlabel(Path::new("/sys"), l),
        ConfigSource::Device(p) => p.exists().then(|| p.clone()),
        ConfigSource::None => None,
    };
    if *src == ConfigSource::None {
        return (None, Duration::ZERO);
    }
    // Not at every 20 ms poll: each pass reads every device's modalias.
    let mut last = std::time::Instant::now();
    mounts::wait_for(CONFIG_WAIT, || {
        find().or_else(|| {
            if last.elapsed() < COLDPLUG_WHILE_WAITING {
                return None;
            }
            last = std::time::Instant::now();
            let new = coldplug(loader, seen);
            if !new.is_empty() {
                info!("coldplug while waiting for the config partition: {}", new.join(" "));
            }
            find()
        })
    })
}

/// Steps 3-5: modules, config. Returns the config in force.
pub fn modules_and_config(cmd: &Cmdline, report: &mut BootReport) -> Config {
    let root = modules_root();
    let t = std::time::Instant::now();
    let db = ModDb::open(&root);
    debug!("module index read in {} ms", t.elapsed().as_millis());
    if db.deps.is_empty() {
        warn!("no modules.dep under {}: loading no modules", root.display());
    } else {
        info!("module index {}: {} modules, {} aliases", root.display(), db.deps.len(), db.aliases.len());
    }
    let mut loader = Loader::new(db, SysKmod);
    let mut seen = std::collections::HashSet::new();
    let cold = coldplug(&mut loader, &mut seen);
    info!("coldplug loaded: {}", cold.join(" "));
    crate::log::milestone("coldplug");

    let (cfg, creport) = read_config(cmd, &mut loader, &mut seen);
    report.config = Some(creport);
    crate::log::milestone("config");

    // modules.load, with the config's module parameters.
    let entries = kmod::parse_load(&std::fs::read_to_string(root.join("modules.load")).unwrap_or_default());
    for e in &entries {
        let mut params = e.params.clone();
        if let Some(p) = config_params(&cfg, &e.name) {
            params = format!("{params} {p}").trim().to_string();
        }
        if !params.is_empty() {
            loader.params.insert(e.name.clone(), params);
        }
    }
    for m in ["ip_vs", "ip_vs_ftp"] {
        if let Some(p) = config_params(&cfg, m) {
            loader.params.entry(m.into()).or_insert(p);
        }
    }
    // What nothing before `lbd ready` needs waits for `load_late` (after
    // ready, in a child), unless the config names it.
    let needed = config_modules(&cfg);
    let (now, late): (Vec<_>, Vec<_>) = entries.iter().partition(|e| !after_ready(&e.name) || needed.contains(&e.name));
    info!("modules after lbd ready: {}", late.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(" "));
    for e in &now {
        match loader.load(&e.name) {
            Ok(new) if !new.is_empty() => debug!("modules.load {}: loaded {}", e.name, new.join(" ")),
            Ok(_) => {}
            Err(_) => {} // reported below, once per module
        }
    }
    coldplug(&mut loader, &mut seen);
    for f in &loader.failures {
        if f.errno != 0 {
            warn!("module {}: {} (errno {})", f.name, f.error, f.errno);
        } else {
            warn!("module {}: {}", f.name, f.error);
        }
    }
    notice!(
        "modules: {} loaded, {} failed{}",
        loader.loaded.len(),
        loader.failures.len(),
        if loader.failures.is_empty() {
            String::new()
        } else {
            format!(" ({})", loader.failures.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "))
        }
    );
    info!("modules loaded: {}", loader.loaded.join(" "));
    crate::log::milestone("modules");
    report.modules_loaded = loader.loaded.clone();
    report.module_failures = loader.failures.clone();
    cfg
}

/// Modules of modules.load that nothing needs before `lbd ready` unless the
/// config names them: IPVS schedulers and persistence engines (the kernel
/// requests one it lacks through init as modprobe, and lbd judges a
/// scheduler available when modules.dep has it), nftables expressions that
/// lbd's table does not use, tunnel and VLAN/macvlan drivers. `ip_vs_ftp`
/// stays: its `ports=` is fixed at load.
pub fn after_ready(module: &str) -> bool {
    (module.starts_with("ip_vs_") && module != "ip_vs_ftp")
        || module.starts_with("nft_")
        || LATE_DRIVERS.contains(&module)
}

/// Tunnel and link drivers of modules.load that [`after_ready`] defers.
const LATE_DRIVERS: &[&str] =
    &["tunnel4", "tunnel6", "ipip", "gre", "ip_gre", "fou", "fou6", "ip6_tunnel", "ip6_gre", "8021q", "macvlan"];

/// Modules the config uses, loaded before lbd starts even when
/// [`after_ready`]: its schedulers, persistence engines, and 8021q for VLANs.
pub fn config_modules(cfg: &Config) -> std::collections::BTreeSet<String> {
    let mut m = std::collections::BTreeSet::new();
    for s in &cfg.services {
        m.insert(format!("ip_vs_{}", s.scheduler));
        if let Some(e) = s.persistence.as_ref().and_then(|p| p.engine.as_ref()) {
            m.insert(format!("ip_vs_pe_{e}"));
        }
    }
    if cfg.interfaces.iter().any(|i| i.vlan.is_some()) {
        m.insert("8021q".into());
    }
    m
}

/// Loads what [`modules_and_config`] left for after `lbd ready`: every
/// module of modules.load not loaded yet (`init modprobe --late`, a child of
/// init started once lbd answers). Logs one NOTICE line when done, which
/// tests that need a late module (e.g. ipip's tunl0) wait for.
pub fn load_late() -> bool {
    let root = modules_root();
    let t = std::time::Instant::now();
    let mut loader = Loader::new(ModDb::open(&root), SysKmod);
    let entries = kmod::parse_load(&std::fs::read_to_string(root.join("modules.load")).unwrap_or_default());
    let mut new = Vec::new();
    for e in entries.iter().filter(|e| after_ready(&e.name)) {
        if !e.params.is_empty() {
            loader.params.insert(e.name.clone(), e.params.clone());
        }
        if let Ok(n) = loader.load(&e.name) {
            new.extend(n);
        }
    }
    // Devices that appeared after boot's coldplug (disks behind a driver
    // that probed in the background, see ASYNC_PROBE) get their drivers:
    // the loads above waited for every pending probe.
    let cold = coldplug(&mut loader, &mut std::collections::HashSet::new());
    if !cold.is_empty() {
        info!("coldplug after ready: {}", cold.join(" "));
    }
    new.extend(cold);
    for f in &loader.failures {
        warn!("module {}: {} (errno {})", f.name, f.error, f.errno);
    }
    notice!(
        "{}: {} loaded in {} ms, {} failed",
        paths::LATE_MODULES_LINE,
        new.len(),
        t.elapsed().as_millis(),
        loader.failures.len()
    );
    debug!("modules loaded after ready: {}", new.join(" "));
    loader.failures.is_empty()
}

/// Module parameters the config sets: `ip_vs conn_tab_bits=N` and, with a
/// NAT ftp service, `ip_vs_ftp ports=21,...` (the kernel's FTP helper
/// watches those virtual ports). Both are read-only once the module is
/// loaded, so they are given at load time.
pub fn config_params(cfg: &Config, module: &str) -> Option<String> {
    match module {
        "ip_vs" => cfg.ipvs.conn_tab_bits.map(|b| format!("conn_tab_bits={b}")),
        "ip_vs_ftp" => lbd::fwmark::config::helper_param(cfg),
        _ => None,
    }
}

fn read_config(
    cmd: &Cmdline,
    loader: &mut Loader<SysKmod>,
    seen: &mut std::collections::HashSet<String>,
) -> (Config, ConfigReport) {
    let source = cmd.config.to_string();
    let mut rep = ConfigReport {
        source: source.clone(),
        device: None,
        status: ConfigStatus::Missing,
        reason: None,
        errors: vec![],
    };
    if cmd.config == ConfigSource::None {
        rep.status = ConfigStatus::Disabled;
        rep.reason = Some("lvsbox.config=none".into());
        notice!("config: none requested (lvsbox.config=none): safe defaults");
        return (Config::default(), rep);
    }
    let (dev, waited) = find_config_device(&cmd.config, loader, seen);
    let Some(dev) = dev else {
        let why = format!("config partition {source} not found after {} ms", waited.as_millis());
        warn!("config: {why}; booting with safe defaults (consoles on, no services)");
        rep.reason = Some(why);
        return (Config::default(), rep);
    };
    rep.device = Some(dev.display().to_string());
    info!("config partition {source} is {} (after {} ms)", dev.display(), waited.as_millis());
    if let Err(e) = loader.load("ext4") {
        debug!("ext4 module: {} (may be built in)", e.error);
    }
    if let Err(e) = mounts::mount_config(&dev, paths::CONFIG_MOUNT) {
        warn!("config: {e}; booting with safe defaults (consoles on, no services)");
        rep.reason = Some(e);
        return (Config::default(), rep);
    }
    notice!("config partition {} mounted on {}", dev.display(), paths::CONFIG_MOUNT);
    let file = Path::new(paths::CONFIG_FILE);
    if !file.exists() {
        let why = format!("{} does not exist on {}", paths::CONFIG_FILE, dev.display());
        warn!("config: {why}; booting with safe defaults (consoles on, no services)");
        rep.reason = Some(why);
        return (Config::default(), rep);
    }
    match lbd::config::parse_file(file) {
        Ok(c) => {
            notice!(
                "config {}: OK ({} interfaces, {} services)",
                paths::CONFIG_FILE,
                c.interfaces.len(),
                c.services.len()
            );
            rep.status = ConfigStatus::Ok;
            (c, rep)
        }
        Err(errors) => {
            let d = Config::default();
            let ttys = cmd.consoles.clone().unwrap_or_else(|| d.system.consoles.clone());
            let mut lines = vec![format!(
                "CONFIG INVALID: {} has {} error(s); booting with SAFE DEFAULTS (consoles on, no services):",
                paths::CONFIG_FILE,
                errors.len()
            )];
            lines.extend(errors.iter().map(|e| format!("  {e}")));
            announce(&lines, &ttys);
            rep.status = ConfigStatus::Invalid;
            rep.reason = Some(format!("{} error(s) in {}", errors.len(), paths::CONFIG_FILE));
            rep.errors = errors;
            (d, rep)
        }
    }
}

/// Step 6: hostname and sysctls.
pub fn system(cfg: &Config, report: &mut BootReport) {
    let h = &cfg.system.hostname;
    match nix::unistd::sethostname(h) {
        Ok(()) => {
            notice!("hostname {h}");
            report.hostname = Some(h.clone());
        }
        Err(e) => error!("hostname {h}: {}", e.desc()),
    }
    let res = lbd::sysctl::apply(&lbd::sysctl::from_config(cfg));
    for r in &res {
        if r.failed() {
            warn!("sysctl {r}");
        } else {
            info!("sysctl {r}");
        }
    }
    report.sysctl = res;
}

/// Step 7: network.
pub fn network(cfg: &Config, report: &mut BootReport) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!("network: cannot start the runtime: {e}");
            return;
        }
    };
    let res = rt.block_on(async { tokio::time::timeout(NET_TIMEOUT, lbd::net::apply(cfg)).await });
    let rep = match res {
        Ok(r) => r,
        Err(_) => {
            error!("network: apply did not finish within {} s", NET_TIMEOUT.as_secs());
            return;
        }
    };
    for i in &rep.items {
        match i.outcome {
            lbd::net::Outcome::Failed { .. } => warn!("network {i}"),
            lbd::net::Outcome::Done => info!("network {i}"),
            lbd::net::Outcome::Unchanged => debug!("network {i}"),
        }
    }
    let changes = rep.changes().count();
    let failures = rep.failures().count();
    if failures > 0 {
        warn!("network: {changes} changes, {failures} FAILED (see above)");
    } else {
        notice!("network: {changes} changes, all ok");
    }
    // The addresses now in place, for the log (the console lists them live).
    if let Ok(Ok(links)) = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), lbd::net::links()).await })
    {
        for l in links.iter().filter(|l| l.name != "lo") {
            let addrs: Vec<String> = l.addresses.iter().map(|a| a.address.to_string()).collect();
            notice!("{}: {} {}", l.name, if l.up { "up" } else { "down" }, addrs.join(" "));
        }
    }
    report.network = Some(rep);
    crate::log::milestone("network");
}

/// What to supervise for `cfg` and the command line.
pub fn plan(cmd: &Cmdline, cfg: &Config, lbd: bool) -> Plan {
    let ttys = cmd.consoles.clone().unwrap_or_else(|| cfg.system.consoles.clone());
    let size = cfg.system.console_size.to_string();
    let consoles = ttys.iter().map(|t| Spec::console(t, &size)).collect();
    let shell = match &cmd.shell {
        Some(t) if Path::new("/bin/sh").exists() => Some(Spec::shell(t)),
        Some(t) => {
            info!("lvsbox.shell={t} ignored: no /bin/sh in this image");
            None
        }
        None => None,
    };
    Plan { lbd, consoles, shell }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_parameters_come_from_the_config() {
        let cfg = lbd::config::parse(
            "[ipvs]\nconn_tab_bits = 14\n[[services]]\nforwarding = \"nat\"\nftp = { vip = \"192.0.2.1\", control_port = 2121 }\n",
            "t",
        )
        .unwrap();
        assert_eq!(config_params(&cfg, "ip_vs").as_deref(), Some("conn_tab_bits=14"));
        assert_eq!(config_params(&cfg, "ip_vs_ftp").as_deref(), Some("ports=21,2121"));
        assert_eq!(config_params(&cfg, "ip_vs_rr"), None);
        let plain = Config::default();
        assert_eq!(config_params(&plain, "ip_vs_ftp"), None, "no NAT ftp: the module's default (21)");
    }

    #[test]
    fn what_waits_until_after_ready() {
        for m in ["ip_vs_rr", "ip_vs_mh", "ip_vs_pe_sip", "nft_nat", "ipip", "fou6", "8021q", "macvlan"] {
            assert!(after_ready(m), "{m}");
        }
        for m in ["ip_vs", "ip_vs_ftp", "nf_conntrack", "nf_tables", "nfnetlink", "ext4", "button", "evdev"] {
            assert!(!after_ready(m), "{m}");
        }
    }

    #[test]
    fn the_config_pulls_its_modules_before_ready() {
        let cfg = lbd::config::parse(
            "[[interfaces]]\nname = \"eth0\"\n[[interfaces]]\nname = \"eth0.7\"\nvlan = { parent = \"eth0\", id = 7 }\n\
             [[services]]\naddress = \"192.0.2.1:80\"\nscheduler = \"mh\"\n\
             [[services]]\naddress = \"192.0.2.1:5060\"\nprotocol = \"udp\"\npersistence = { timeout = 60, engine = \"sip\" }\n",
            "t",
        )
        .unwrap();
        let m: Vec<String> = config_modules(&cfg).into_iter().collect();
        assert_eq!(m, ["8021q", "ip_vs_mh", "ip_vs_pe_sip", "ip_vs_wlc"]);
        assert!(config_modules(&Config::default()).is_empty());
    }
}
