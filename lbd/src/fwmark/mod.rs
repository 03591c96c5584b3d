//! Firewall-mark services managed by lbd (passive FTP through a VIP).
//!
//! An FTP service on a VIP in DR mode breaks in passive mode unless the
//! control port and the passive data ports carry the same firewall mark and
//! are balanced as one persistent fwmark service: the client's data
//! connection then lands on the real server of its control connection.
//! Operators used to write `iptables -t mangle ... --set-mark` lines; lbd
//! owns those rules instead:
//!
//! - [`config`]: the `fwmark_rules` and `ftp` service keys, validation
//!   (overlapping ranges, inverted ranges, port 0, …) and the expansion of
//!   the `ftp` shorthand;
//! - the rules go into nftables table `inet lvsbox` through
//!   [`crate::nft`], replaced in one batch when they change, compared (not
//!   rewritten) on restart and on every repair pass, deleted when the config
//!   has none;
//! - NAT FTP uses the kernel's helper instead: `ip_vs_ftp` with `ports=`
//!   from the config (init passes it at boot; [`ensure_helper`] reloads the
//!   module on apply when it is not in use) and `net.ipv4.vs.conntrack=1`,
//!   without which the helper cannot rewrite the PASV replies.

pub mod config;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::nft::{self, MarkRule, SyncReport, client::Nft};

/// lbd's handle on nf_tables, reopened after a failure.
#[derive(Debug, Default)]
pub struct Firewall {
    nft: Option<Nft>,
}

impl Firewall {
    /// A handle that opens its socket on first use.
    pub fn new() -> Self {
        Firewall::default()
    }

    /// Makes table `inet lvsbox` exactly `rules` (reads, compares, and writes
    /// only a difference; deletes the table when `rules` is empty).
    pub fn sync(&mut self, rules: &[MarkRule]) -> SyncReport {
        if self.nft.is_none() {
            match Nft::open() {
                Ok(n) => self.nft = Some(n),
                Err(e) => {
                    return SyncReport {
                        action: nft::Action::None,
                        in_sync: rules.is_empty(),
                        error: Some(format!("nf_tables: {e}")),
                    };
                }
            }
        }
        let Some(n) = self.nft.as_mut() else { unreachable!("opened above") };
        let r = nft::sync(n, rules);
        if r.error.is_some() {
            // A socket in an unknown state (timeout, lost answer) is not reused.
            self.nft = None;
        }
        r
    }
}

/// The `ip_vs_ftp` helper: what the config wants and what the kernel has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HelperReport {
    /// `ports=` the config asks for (`None`: no NAT ftp service, module default).
    pub wanted: Option<Vec<u16>>,
    /// `ports` of the loaded module (`None`: not loaded).
    pub loaded: Option<Vec<u16>>,
    /// What was done (`none`, `reloaded`), or why the wanted ports are not in
    /// force yet.
    pub action: String,
}

/// Where the running module's parameters are.
pub const HELPER_SYS: &str = "/sys/module/ip_vs_ftp";

/// The ports of the loaded `ip_vs_ftp` (`/sys/module/ip_vs_ftp/parameters/ports`).
pub fn loaded_helper_ports(sys: &Path) -> Option<Vec<u16>> {
    let s = std::fs::read_to_string(sys.join("parameters/ports")).ok()?;
    Some(s.trim().split(',').filter_map(|p| p.trim().parse().ok()).filter(|p| *p != 0).collect())
}

/// The module file of `ip_vs_ftp` from `modules.dep` under `root`.
fn helper_module_file(root: &Path) -> Option<PathBuf> {
    let dep = std::fs::read_to_string(root.join("modules.dep")).ok()?;
    dep.lines().find_map(|l| {
        let path = l.split(':').next()?;
        let file = path.rsplit('/').next()?;
        (file == "ip_vs_ftp.ko" || file.starts_with("ip_vs_ftp.ko.")).then(|| root.join(path))
    })
}

/// Makes the loaded `ip_vs_ftp` use the wanted ports: when they differ, the
/// module is removed (only if nothing uses it: `O_NONBLOCK`, a busy module
/// stays) and loaded again with `ports=`. init passes the same parameter at
/// boot, so a busy helper gets the ports at the next boot at the latest.
pub fn ensure_helper(wanted: Option<Vec<u16>>) -> HelperReport {
    let sys = Path::new(HELPER_SYS);
    let loaded = loaded_helper_ports(sys);
    let mut rep = HelperReport { wanted: wanted.clone(), loaded: loaded.clone(), action: "none".into() };
    let Some(want) = wanted else { return rep };
    if loaded.as_ref() == Some(&want) {
        return rep;
    }
    let release = kernel_release();
    let root = Path::new("/lib/modules").join(release);
    let Some(file) = helper_module_file(&root) else {
        rep.action = format!("ip_vs_ftp is not in {}/modules.dep; cannot load it", root.display());
        return rep;
    };
    if loaded.is_some() {
        let name = c"ip_vs_ftp";
        if let Err(e) = nix::kmod::delete_module(name, nix::kmod::DeleteModuleFlags::O_NONBLOCK) {
            rep.action = format!("ip_vs_ftp is in use ({}): the new ports take effect at the next boot", e.desc());
            return rep;
        }
    }
    let params =
        std::ffi::CString::new(format!("ports={}", want.iter().map(u16::to_string).collect::<Vec<_>>().join(",")))
            .unwrap_or_default();
    let r = std::fs::File::open(&file).map_err(|e| e.to_string()).and_then(|f| {
        nix::kmod::finit_module(&f, &params, nix::kmod::ModuleInitFlags::empty()).map_err(|e| e.desc().to_string())
    });
    rep.loaded = loaded_helper_ports(sys);
    rep.action = match r {
        Ok(()) => "reloaded".into(),
        Err(e) => format!("loading {} failed: {e}", file.display()),
    };
    rep
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests;
