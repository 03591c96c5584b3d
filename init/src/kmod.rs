//! Kernel modules without modprobe: `modules.dep`, `modules.alias` and
//! `modules.load` parsing, dependency ordering, modalias glob matching, and a
//! loader that calls `finit_module` dependencies first.
//!
//! Everything but [`SysKmod`] is pure and unit-tested.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use lbd::initctl::ModuleFailure;
use nix::errno::Errno;

/// `ip_vs_rr` from `kernel/net/netfilter/ipvs/ip_vs_rr.ko` (also `.ko.xz` etc.);
/// `-` and `_` are the same in module names, like the kernel treats them.
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let base = base.split(".ko").next().unwrap_or(base);
    normalize(base)
}

/// Canonical module name (`-` → `_`).
pub fn normalize(name: &str) -> String {
    name.trim().replace('-', "_")
}

/// One module of `modules.dep`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepEntry {
    /// Path relative to `/lib/modules/<release>/`.
    pub path: String,
    /// Direct and indirect dependencies as depmod lists them (names).
    pub deps: Vec<String>,
}

/// Parses depmod's `modules.dep`: `path: dep-path dep-path ...`.
pub fn parse_dep(text: &str) -> HashMap<String, DepEntry> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((path, deps)) = line.split_once(':') else { continue };
        let path = path.trim();
        let deps = deps.split_whitespace().map(module_name).collect();
        out.insert(module_name(path), DepEntry { path: path.to_string(), deps });
    }
    out
}

/// Parses `modules.alias`: `alias <glob> <module>`.
pub fn parse_alias(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some("alias"), Some(pat), Some(m)) => Some((pat.to_string(), normalize(m))),
                _ => None,
            }
        })
        .collect()
}

/// Soft dependencies from depmod's `modules.softdep`
/// (`softdep ext4 pre: crc32c post: x`): modules modprobe loads around one
/// (by name or alias) although no symbol needs them, e.g. the crypto
/// drivers `libcrc32c` and `ext4` ask the crypto API for at init.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SoftDep {
    /// Loaded before the module.
    pub pre: Vec<String>,
    /// Loaded after it.
    pub post: Vec<String>,
}

/// Parses `modules.softdep`.
pub fn parse_softdep(text: &str) -> HashMap<String, SoftDep> {
    let mut out: HashMap<String, SoftDep> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut it = line.split_whitespace();
        if it.next() != Some("softdep") {
            continue;
        }
        let Some(m) = it.next() else { continue };
        let e = out.entry(normalize(m)).or_default();
        let mut post = false;
        for w in it {
            match w {
                "pre:" => post = false,
                "post:" => post = true,
                w if post => e.post.push(w.to_string()),
                w => e.pre.push(w.to_string()),
            }
        }
    }
    out
}

/// One line of `modules.load`: `name [param=value ...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadEntry {
    /// Module name.
    pub name: String,
    /// Parameters, space-separated as `finit_module` takes them.
    pub params: String,
}

/// Parses `modules.load`; `#` starts a comment.
pub fn parse_load(text: &str) -> Vec<LoadEntry> {
    text.lines()
        .filter_map(|l| {
            let l = l.split('#').next().unwrap_or("").trim();
            let mut it = l.split_whitespace();
            let name = normalize(it.next()?);
            Some(LoadEntry { name, params: it.collect::<Vec<_>>().join(" ") })
        })
        .collect()
}

/// Why a module cannot be ordered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderError {
    /// Not in `modules.dep`.
    Unknown(String),
    /// A dependency cycle, as the chain that closes it.
    Cycle(Vec<String>),
}

impl std::fmt::Display for OrderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrderError::Unknown(m) => write!(f, "{m} is not in modules.dep"),
            OrderError::Cycle(c) => write!(f, "dependency cycle {}", c.join(" -> ")),
        }
    }
}

/// The load order for `name`: every dependency before its dependents, each
/// module once, `name` last. Walks the dependency graph (not just depmod's
/// flattened list order), so it is correct whatever order the list has.
pub fn load_order(deps: &HashMap<String, DepEntry>, name: &str) -> Result<Vec<String>, OrderError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        deps: &HashMap<String, DepEntry>,
        name: &str,
        marks: &mut HashMap<String, Mark>,
        stack: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> Result<(), OrderError> {
        match marks.get(name) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|s| s == name).unwrap_or(0);
                let mut cyc = stack[start..].to_vec();
                cyc.push(name.to_string());
                return Err(OrderError::Cycle(cyc));
            }
            None => {}
        }
        let entry = deps.get(name).ok_or_else(|| OrderError::Unknown(name.to_string()))?;
        marks.insert(name.to_string(), Mark::Visiting);
        stack.push(name.to_string());
        // depmod lists deepest-first; visit in reverse so that, for equal
        // depth, the order stays close to depmod's, then fix it by recursion.
        for d in entry.deps.iter().rev() {
            visit(deps, d, marks, stack, out)?;
        }
        stack.pop();
        marks.insert(name.to_string(), Mark::Done);
        out.push(name.to_string());
        Ok(())
    }
    let mut out = Vec::new();
    visit(deps, &normalize(name), &mut HashMap::new(), &mut Vec::new(), &mut out)?;
    Ok(out)
}

/// fnmatch(3) without flags, as modprobe matches `modules.alias`: `*`, `?`,
/// `[abc]`, `[a-z]`, `[!a]`/`[^a]`, `\` escapes.
pub fn glob_match(pat: &str, s: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let t: Vec<char> = s.chars().collect();
    // Iterative with single-star backtracking: linear-ish, no recursion.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class_match(&p, pi, t[ti]) {
                        if matched {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        // Unclosed bracket: a literal '['.
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() => {
                    if p[pi + 1] == t[ti] {
                        pi += 2;
                        ti += 1;
                        continue;
                    }
                }
                c => {
                    if c == t[ti] {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// The part of a glob before its first special character (`*?[\\`): every
/// string the glob matches starts with it.
pub fn literal_prefix(pat: &str) -> &str {
    &pat[..pat.find(['*', '?', '[', '\\']).unwrap_or(pat.len())]
}

/// Matches `c` against the bracket expression at `p[i] == '['`. Returns
/// (matched, index after `]`), or None when the bracket is not closed.
fn class_match(p: &[char], i: usize, c: char) -> Option<(bool, usize)> {
    let mut j = i + 1;
    let negate = j < p.len() && (p[j] == '!' || p[j] == '^');
    if negate {
        j += 1;
    }
    let mut matched = false;
    let mut first = true;
    while j < p.len() {
        if p[j] == ']' && !first {
            return Some((matched != negate, j + 1));
        }
        first = false;
        let lo = p[j];
        if j + 2 < p.len() && p[j + 1] == '-' && p[j + 2] != ']' {
            if lo <= c && c <= p[j + 2] {
                matched = true;
            }
            j += 3;
        } else {
            if lo == c {
                matched = true;
            }
            j += 1;
        }
    }
    None
}

/// The module index of one kernel release.
#[derive(Clone, Debug, Default)]
pub struct ModDb {
    /// `/lib/modules/<release>`.
    pub root: PathBuf,
    /// modules.dep by module name.
    pub deps: HashMap<String, DepEntry>,
    /// modules.alias.
    pub aliases: Vec<(String, String)>,
    /// modules.softdep (optional file).
    pub softdeps: HashMap<String, SoftDep>,
    /// This CPU's modalias (`cpu:type:x86,ven...:feature:,0000,...`), when
    /// the kernel exposes it: alias lookups skip the modules whose `cpu:`
    /// aliases say they need a feature it lacks.
    pub cpu: Option<String>,
}

impl ModDb {
    /// Reads `modules.dep`, `modules.alias` and `modules.softdep` under `root` (missing files = empty).
    pub fn open(root: &Path) -> ModDb {
        let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap_or_default();
        ModDb {
            root: root.to_path_buf(),
            deps: parse_dep(&read("modules.dep")),
            aliases: parse_alias(&read("modules.alias")),
            softdeps: parse_softdep(&read("modules.softdep")),
            cpu: std::fs::read_to_string("/sys/devices/system/cpu/modalias").ok().map(|s| s.trim().to_string()),
        }
    }

    /// Whether `module` can run on this CPU: it has no `cpu:` alias (not
    /// tied to a CPU feature), or this CPU's modalias matches one of them,
    /// or the CPU's modalias is unknown. The `crc32c` alias names both
    /// crc32c_generic and crc32c_intel, and crc32c_intel costs a full load
    /// (read, signature check, relocation) before failing with ENODEV on a
    /// CPU without SSE4.2, such as QEMU's default one.
    pub fn fits_cpu(&self, module: &str) -> bool {
        let Some(cpu) = &self.cpu else { return true };
        let mut tied = false;
        for (pat, m) in &self.aliases {
            if m == module && pat.starts_with("cpu:") {
                if glob_match(pat, cpu) {
                    return true;
                }
                tied = true;
            }
        }
        !tied
    }

    /// Module names for a name or alias (`ip_vs_wlc`, `pci:v00001AF4d...`,
    /// `net-pf-10`), as modprobe resolves them: a known module name wins,
    /// else every alias whose glob matches.
    pub fn resolve(&self, name_or_alias: &str) -> Vec<String> {
        let n = normalize(name_or_alias);
        if self.deps.contains_key(&n) {
            return vec![n];
        }
        let mut out: Vec<String> = Vec::new();
        for (pat, m) in &self.aliases {
            // The literal prefix first: it rules out nearly every pattern
            // without the glob matcher's allocations (coldplug asks for each
            // of a few dozen devices against ~850 patterns, under TCG).
            if !name_or_alias.starts_with(literal_prefix(pat)) {
                continue;
            }
            if glob_match(pat, name_or_alias) && !out.contains(m) {
                out.push(m.clone());
            }
        }
        out.retain(|m| self.fits_cpu(m));
        out
    }
}

/// The syscalls the loader needs; faked in tests.
pub trait Kmod {
    /// `finit_module(open(path), params, 0)`.
    fn load(&mut self, path: &Path, params: &str) -> Result<(), Errno>;
    /// Whether the kernel already has it (loaded or built in).
    fn present(&self, name: &str) -> bool;
}

/// The real kernel.
pub struct SysKmod;

impl Kmod for SysKmod {
    fn load(&mut self, path: &Path, params: &str) -> Result<(), Errno> {
        let f = File::open(path).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
        let params = std::ffi::CString::new(params).map_err(|_| Errno::EINVAL)?;
        // With lvsbox.debug=1: how long each load took and how much of it
        // the CPU sat idle (a probe waiting on hardware, not computing).
        let timing = crate::log::debug_on().then(|| (std::time::Instant::now(), crate::log::idle_ms()));
        let r = nix::kmod::finit_module(&f, &params, nix::kmod::ModuleInitFlags::empty());
        if let Some((t, idle)) = timing {
            let idle = crate::log::idle_ms().zip(idle).map(|(b, a)| b.saturating_sub(a)).unwrap_or(0);
            crate::log::log(
                lbd::initctl::Level::Debug,
                &format!("finit_module {}: {} ms, idle {idle} ms", path.display(), t.elapsed().as_millis()),
            );
        }
        r
    }
    fn present(&self, name: &str) -> bool {
        // /sys/module/<name> exists for loaded modules and for built-ins that
        // have parameters or a version; `initstate` only for loaded ones.
        Path::new("/sys/module").join(name).exists()
    }
}

/// Loads modules dependencies first, each once, and remembers what failed.
pub struct Loader<K: Kmod> {
    /// The index.
    pub db: ModDb,
    /// The syscalls.
    pub kmod: K,
    /// Parameters by module name, used whenever that module is loaded
    /// (also as a dependency of another one).
    pub params: HashMap<String, String>,
    /// Loaded by this loader, in order.
    pub loaded: Vec<String>,
    /// Failures, each module once.
    pub failures: Vec<ModuleFailure>,
    /// Load with `async_probe=1`: `finit_module` then returns without
    /// `async_synchronize_full()`, i.e. without waiting for every
    /// asynchronous probe in the system (the SATA ports an AHCI controller
    /// is still bringing up), and the module's own drivers probe
    /// asynchronously. Set once such a probe is under way (see
    /// [`Loader::start_async`]), so later loads do not wait for it.
    pub nowait: bool,
    done: HashSet<String>,
    failed: HashSet<String>,
}

impl<K: Kmod> Loader<K> {
    /// A loader over `db`.
    pub fn new(db: ModDb, kmod: K) -> Self {
        Loader {
            db,
            kmod,
            params: HashMap::new(),
            loaded: Vec::new(),
            failures: Vec::new(),
            nowait: false,
            done: HashSet::new(),
            failed: HashSet::new(),
        }
    }

    fn fail(&mut self, name: &str, errno: i32, error: String) {
        if self.failed.insert(name.to_string()) {
            self.failures.push(ModuleFailure { name: name.to_string(), errno, error });
        }
    }

    /// Loads `name` and its dependencies. Returns the modules newly loaded.
    /// A module already present counts as success; EEXIST too.
    pub fn load(&mut self, name: &str) -> Result<Vec<String>, ModuleFailure> {
        let name = normalize(name);
        if self.done.contains(&name) {
            return Ok(vec![]);
        }
        if let Some(f) = self.failures.iter().find(|f| f.name == name) {
            return Err(f.clone());
        }
        let order = match load_order(&self.db.deps, &name) {
            Ok(o) => o,
            Err(OrderError::Unknown(m)) if m == name && self.kmod.present(&name) => {
                self.done.insert(name);
                return Ok(vec![]); // built in
            }
            Err(e) => {
                self.fail(&name, 0, e.to_string());
                return Err(self.failures.last().cloned().unwrap_or_else(|| ModuleFailure {
                    name,
                    errno: 0,
                    error: e.to_string(),
                }));
            }
        };
        let mut new = Vec::new();
        for m in order {
            if self.done.contains(&m) {
                continue;
            }
            if self.failed.contains(&m) {
                let err = format!("dependency {m} failed to load");
                self.fail(&name, 0, err.clone());
                return Err(ModuleFailure { name, errno: 0, error: err });
            }
            if self.kmod.present(&m) {
                self.done.insert(m);
                continue;
            }
            // Soft dependencies first, best effort: mark the module as in
            // progress so a softdep cycle cannot recurse forever.
            let soft = self.db.softdeps.get(&m).cloned().unwrap_or_default();
            self.done.insert(m.clone());
            for s in &soft.pre {
                new.extend(self.load_alias(s));
            }
            self.done.remove(&m);
            let path = self.db.root.join(&self.db.deps[&m].path);
            let mut params = self.params.get(&m).cloned().unwrap_or_default();
            if self.nowait {
                params = format!("{params} async_probe=1").trim_start().to_string();
            }
            match self.kmod.load(&path, &params) {
                Ok(()) | Err(Errno::EEXIST) => {
                    self.loaded.push(m.clone());
                    new.push(m.clone());
                    self.done.insert(m);
                    for s in &soft.post {
                        new.extend(self.load_alias(s));
                    }
                }
                Err(e) => {
                    self.fail(&m, e as i32, format!("finit_module: {} ({})", e.desc(), e));
                    if m != name {
                        self.fail(&name, 0, format!("dependency {m} failed to load"));
                    }
                    return Err(self.failures.iter().find(|f| f.name == name).cloned().unwrap_or(ModuleFailure {
                        name,
                        errno: e as i32,
                        error: e.to_string(),
                    }));
                }
            }
        }
        Ok(new)
    }

    /// Loads every module an alias or name resolves to (coldplug / modprobe).
    /// Returns the modules newly loaded; failures are remembered.
    pub fn load_alias(&mut self, alias: &str) -> Vec<String> {
        self.load_alias_deferring(alias, &[], &mut Vec::new())
    }

    /// [`Loader::load_alias`], except that the modules named in `defer` are
    /// not loaded but added to `deferred` (each once).
    pub fn load_alias_deferring(&mut self, alias: &str, defer: &[&str], deferred: &mut Vec<String>) -> Vec<String> {
        let mut new = Vec::new();
        for m in self.db.resolve(alias) {
            if defer.contains(&m.as_str()) && !self.done.contains(&m) {
                if !deferred.contains(&m) {
                    deferred.push(m);
                }
                continue;
            }
            if let Ok(v) = self.load(&m) {
                new.extend(v);
            }
        }
        new
    }

    /// Loads `name` (and what it needs) without waiting for its devices'
    /// probes, and switches the loader to [`Loader::nowait`] so that no
    /// later load waits for them either.
    pub fn start_async(&mut self, name: &str) -> Result<Vec<String>, ModuleFailure> {
        self.nowait = true;
        self.load(name)
    }
}

/// The `modalias` of every device under `<sys>/bus/*/devices/*/` not read
/// before: `seen` remembers the device directories read (as their paths,
/// which never clash with an alias), so a later coldplug round reads only
/// the modaliases of devices that appeared since (each read is a sysfs
/// open and read, a few dozen of them per round, and slow under TCG).
pub fn read_new_modaliases(sys: &Path, seen: &mut HashSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(buses) = std::fs::read_dir(sys.join("bus")) else { return out };
    for bus in buses.flatten() {
        let Ok(devs) = std::fs::read_dir(bus.path().join("devices")) else { continue };
        for d in devs.flatten() {
            let path = d.path();
            let key = path.to_string_lossy().into_owned();
            if seen.contains(&key) {
                continue;
            }
            seen.insert(key);
            if let Ok(a) = std::fs::read_to_string(path.join("modalias")) {
                let a = a.trim();
                if !a.is_empty() {
                    out.push(a.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Excerpts in the format the image writes (depmod's): deps deepest-first.
    const DEP: &str = "\
kernel/net/netfilter/ipvs/ip_vs_rr.ko: kernel/net/netfilter/ipvs/ip_vs.ko kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/ipvs/ip_vs.ko: kernel/net/netfilter/nf_conntrack.ko kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/netfilter/nf_conntrack.ko: kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko kernel/lib/libcrc32c.ko
kernel/net/ipv6/netfilter/nf_defrag_ipv6.ko:
kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko:
kernel/lib/libcrc32c.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/crypto/crc32c-intel.ko.xz:
";

    const ALIAS: &str = "\
# Aliases extracted from modules themselves.
alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci
alias virtio:d00000001v* virtio_net
alias virtio:d00000002v* virtio_blk
alias acpi*:PNP0C0C:* button
alias crypto-crc32c crc32c_intel
alias net-pf-10 ipv6
alias usb:v*p*d*dc*dsc*dp*ic09isc00ip0[0-2]in* hub
";

    fn pos(v: &[String], m: &str) -> usize {
        v.iter().position(|x| x == m).unwrap_or_else(|| panic!("{m} not in {v:?}"))
    }

    #[test]
    fn names_and_dep_parsing() {
        assert_eq!(module_name("kernel/drivers/crypto/crc32c-intel.ko.xz"), "crc32c_intel");
        assert_eq!(module_name("kernel/net/netfilter/ipvs/ip_vs_rr.ko"), "ip_vs_rr");
        let d = parse_dep(DEP);
        assert_eq!(d.len(), 15);
        assert_eq!(d["ip_vs"].deps, ["nf_conntrack", "nf_defrag_ipv6", "nf_defrag_ipv4", "libcrc32c"]);
        assert_eq!(d["crc32c_intel"].path, "kernel/drivers/crypto/crc32c-intel.ko.xz");
        assert!(d["libcrc32c"].deps.is_empty());
    }

    #[test]
    fn order_puts_deps_first_each_once() {
        let d = parse_dep(DEP);
        let o = load_order(&d, "ip_vs_rr").unwrap();
        assert_eq!(o.len(), 6, "{o:?}");
        assert_eq!(o.last().unwrap(), "ip_vs_rr");
        for (m, deps) in d.iter() {
            if !o.contains(m) {
                continue;
            }
            for dep in &deps.deps {
                assert!(pos(&o, dep) < pos(&o, m), "{dep} must load before {m}: {o:?}");
            }
        }
        let o = load_order(&d, "virtio_net").unwrap();
        assert!(pos(&o, "failover") < pos(&o, "net_failover"));
        assert!(pos(&o, "virtio") < pos(&o, "virtio_ring") || d["virtio_ring"].deps.is_empty());
        assert_eq!(load_order(&d, "failover").unwrap(), ["failover"]);
    }

    #[test]
    fn order_does_not_trust_list_order() {
        // Dependencies listed shallowest-first: the graph walk still orders them.
        let d = parse_dep("a.ko: b.ko c.ko\nb.ko: c.ko\nc.ko:\n");
        assert_eq!(load_order(&d, "a").unwrap(), ["c", "b", "a"]);
    }

    #[test]
    fn cycles_and_unknown() {
        let d = parse_dep("a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\n");
        match load_order(&d, "a") {
            Err(OrderError::Cycle(c)) => assert_eq!(c, ["a", "b", "c", "a"]),
            other => panic!("{other:?}"),
        }
        let d = parse_dep("a.ko: zz.ko\n");
        assert_eq!(load_order(&d, "a"), Err(OrderError::Unknown("zz".into())));
        assert_eq!(load_order(&d, "nope"), Err(OrderError::Unknown("nope".into())));
    }

    #[test]
    fn load_file_parsing() {
        let l = parse_load("# IPVS\nip_vs conn_tab_bits=14  \n\nip-vs-rr # rr\n  8021q\nnf_tables a=1 b=2\n");
        assert_eq!(
            l,
            vec![
                LoadEntry { name: "ip_vs".into(), params: "conn_tab_bits=14".into() },
                LoadEntry { name: "ip_vs_rr".into(), params: String::new() },
                LoadEntry { name: "8021q".into(), params: String::new() },
                LoadEntry { name: "nf_tables".into(), params: "a=1 b=2".into() },
            ]
        );
    }

    #[test]
    fn globs_against_real_modaliases() {
        // virtio-net-pci under QEMU, and the virtio device it reveals.
        let pci = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00";
        assert!(glob_match("pci:v00001AF4d*sv*sd*bc*sc*i*", pci));
        assert!(!glob_match("pci:v00008086d*sv*sd*bc*sc*i*", pci));
        assert!(glob_match("virtio:d00000001v*", "virtio:d00000001v00001AF4"));
        assert!(!glob_match("virtio:d00000001v*", "virtio:d00000002v00001AF4"));
        assert!(glob_match("acpi*:PNP0C0C:*", "acpi:PNP0C0C:"));
        assert!(glob_match(
            "usb:v*p*d*dc*dsc*dp*ic09isc00ip0[0-2]in*",
            "usb:v1D6Bp0002d0601dc09dsc00dp00ic09isc00ip00in00"
        ));
        assert!(!glob_match(
            "usb:v*p*d*dc*dsc*dp*ic09isc00ip0[0-2]in*",
            "usb:v1D6Bp0002d0601dc09dsc00dp00ic09isc00ip03in00"
        ));
        assert!(glob_match("a?c", "abc") && !glob_match("a?c", "ac"));
        assert!(glob_match("x[!0-9]y", "xay") && !glob_match("x[!0-9]y", "x5y"));
        assert!(glob_match("x[^0-9]y", "xay"));
        assert!(glob_match("[]]", "]"));
        assert!(glob_match("a\\*b", "a*b") && !glob_match("a\\*b", "axb"));
        assert!(glob_match("*", "") && !glob_match("?", ""));
        assert!(glob_match("a*b*c", "aXXbYYbc") && !glob_match("a*b*c", "aXXbYYb"));
        assert!(glob_match("a[b", "a[b"), "an unclosed bracket is literal");
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix("pci:v00001AF4d*sv*"), "pci:v00001AF4d");
        assert_eq!(literal_prefix("acpi*:PNP0C0C:*"), "acpi");
        assert_eq!(literal_prefix("a?c"), "a");
        assert_eq!(literal_prefix("x[!0-9]y"), "x");
        assert_eq!(literal_prefix("a\\*b"), "a");
        assert_eq!(literal_prefix("net-pf-10"), "net-pf-10");
        assert_eq!(literal_prefix("*"), "");
        // Every alias the glob matches starts with the prefix.
        for (pat, s) in [
            ("pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"),
            ("acpi*:PNP0C0C:*", "acpi:PNP0C0C:"),
        ] {
            assert!(glob_match(pat, s) && s.starts_with(literal_prefix(pat)));
        }
    }

    #[test]
    fn resolve_names_and_aliases() {
        let db = ModDb { root: "/m".into(), deps: parse_dep(DEP), aliases: parse_alias(ALIAS), ..Default::default() };
        assert_eq!(db.resolve("ip_vs_rr"), ["ip_vs_rr"]);
        assert_eq!(db.resolve("ip-vs-rr"), ["ip_vs_rr"]);
        assert_eq!(db.resolve("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"), ["virtio_pci"]);
        assert_eq!(db.resolve("crypto-crc32c"), ["crc32c_intel"]);
        assert!(db.resolve("pci:v00008086d00001000sv0sd0bc02sc00i00").is_empty());
    }

    #[derive(Default)]
    struct Fake {
        calls: Vec<(String, String)>,
        fail: HashMap<String, Errno>,
        present: HashSet<String>,
    }
    impl Kmod for Fake {
        fn load(&mut self, path: &Path, params: &str) -> Result<(), Errno> {
            let m = module_name(&path.to_string_lossy());
            self.calls.push((m.clone(), params.to_string()));
            match self.fail.get(&m) {
                Some(e) => Err(*e),
                None => Ok(()),
            }
        }
        fn present(&self, name: &str) -> bool {
            self.present.contains(name)
        }
    }

    fn db() -> ModDb {
        ModDb {
            root: "/lib/modules/x".into(),
            deps: parse_dep(DEP),
            aliases: parse_alias(ALIAS),
            softdeps: parse_softdep("softdep libcrc32c pre: crc32c\nsoftdep crc32c_intel post: libcrc32c\n"),
            cpu: None,
        }
    }

    fn loader(fake: Fake) -> Loader<Fake> {
        Loader::new(db(), fake)
    }

    #[test]
    fn softdep_parsing() {
        let s =
            parse_softdep("# x\nsoftdep ext4 pre: crc32c crypto-crc32c post: foo\nsoftdep a-b pre: c\nbogus line\n");
        assert_eq!(s["ext4"], SoftDep { pre: vec!["crc32c".into(), "crypto-crc32c".into()], post: vec!["foo".into()] });
        assert_eq!(s["a_b"].pre, ["c"]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn softdeps_load_first_without_looping() {
        let mut l = loader(Fake::default());
        l.db.aliases.push(("crc32c".into(), "crc32c_intel".into()));
        // libcrc32c pre: crc32c (-> crc32c_intel), whose post: is libcrc32c again.
        let new = l.load("libcrc32c").unwrap();
        assert_eq!(new, ["crc32c_intel", "libcrc32c"], "softdep first, each once");
        assert_eq!(l.kmod.calls.len(), 2);
        // A softdep that resolves to nothing is not an error.
        l.db.softdeps.insert("failover".into(), SoftDep { pre: vec!["nothing-here".into()], post: vec![] });
        assert_eq!(l.load("failover").unwrap(), ["failover"]);
        assert!(l.failures.is_empty());
    }

    #[test]
    fn loader_loads_once_with_params_and_eexist_ok() {
        let mut f = Fake::default();
        f.fail.insert("nf_defrag_ipv6".into(), Errno::EEXIST);
        f.present.insert("libcrc32c".into());
        let mut l = loader(f);
        l.params.insert("ip_vs".into(), "conn_tab_bits=14".into());
        // rr first: ip_vs comes in as its dependency and still gets its parameter.
        let new = l.load("ip_vs_rr").unwrap();
        assert_eq!(new.last().unwrap(), "ip_vs_rr");
        assert!(!new.contains(&"libcrc32c".to_string()), "present modules are not loaded again");
        assert!(l.kmod.calls.contains(&("ip_vs".into(), "conn_tab_bits=14".into())));
        assert_eq!(l.load("ip_vs").unwrap(), Vec::<String>::new());
        let n = l.kmod.calls.len();
        l.load("ip_vs_rr").unwrap();
        assert_eq!(l.kmod.calls.len(), n, "nothing loaded twice");
        assert!(l.failures.is_empty());
        assert_eq!(l.kmod.calls[0].0, "nf_defrag_ipv4");
    }

    #[test]
    fn loader_reports_failures_by_name_and_errno() {
        let mut f = Fake::default();
        f.fail.insert("nf_conntrack".into(), Errno::ENOEXEC);
        let mut l = loader(f);
        let e = l.load("ip_vs_rr").unwrap_err();
        assert_eq!(e.name, "ip_vs_rr");
        assert_eq!(e.error, "dependency nf_conntrack failed to load");
        let nf = l.failures.iter().find(|f| f.name == "nf_conntrack").unwrap();
        assert_eq!(nf.errno, libc::ENOEXEC);
        assert!(nf.error.contains("ENOEXEC"), "{}", nf.error);
        // ip_vs depends on the failed one: reported, not attempted.
        let calls = l.kmod.calls.len();
        assert!(l.load("ip_vs").is_err());
        assert_eq!(l.kmod.calls.len(), calls);
        // Unknown and built-in.
        assert!(l.load("nope").unwrap_err().error.contains("not in modules.dep"));
        l.kmod.present.insert("evdev".into());
        assert!(l.load("evdev").is_ok());
        // Each failure once.
        let names: Vec<&str> = l.failures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["nf_conntrack", "ip_vs_rr", "ip_vs", "nope"]);
    }

    #[test]
    fn cpu_tied_modules_only_on_a_cpu_that_has_the_feature() {
        let mut db = db();
        db.aliases.push(("crc32c".into(), "crc32c_generic".into()));
        db.aliases.push(("crc32c".into(), "crc32c_intel".into()));
        db.aliases.push(("cpu:type:x86,ven*fam*mod*:feature:*0094*".into(), "crc32c_intel".into()));
        assert_eq!(db.resolve("crc32c"), ["crc32c_generic", "crc32c_intel"], "CPU unknown: both");
        db.cpu = Some("cpu:type:x86,ven0000fam0006mod0006:feature:,0000,0001,0002,0093,00C0".into());
        assert_eq!(db.resolve("crc32c"), ["crc32c_generic"], "no SSE4.2 (0094): no crc32c_intel");
        assert_eq!(db.resolve("crc32c_intel"), ["crc32c_intel"], "by name it is still tried");
        db.cpu = Some("cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0093,0094,00C0".into());
        assert_eq!(db.resolve("crc32c"), ["crc32c_generic", "crc32c_intel"]);
    }

    #[test]
    fn async_loads_and_deferred_drivers() {
        let mut l = loader(Fake::default());
        let mut deferred = Vec::new();
        let pci = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00";
        assert!(l.load_alias_deferring(pci, &["virtio_pci"], &mut deferred).is_empty());
        assert!(l.load_alias_deferring(pci, &["virtio_pci"], &mut deferred).is_empty());
        assert_eq!(deferred, ["virtio_pci"], "deferred once, not loaded");
        assert!(l.kmod.calls.is_empty());
        l.load("failover").unwrap();
        assert_eq!(l.kmod.calls.last().unwrap(), &("failover".to_string(), String::new()));
        l.params.insert("virtio_pci".into(), "force_legacy=1".into());
        assert_eq!(l.start_async("virtio_pci").unwrap().last().unwrap(), "virtio_pci");
        assert_eq!(
            l.kmod.calls.last().unwrap(),
            &("virtio_pci".to_string(), "force_legacy=1 async_probe=1".to_string())
        );
        assert_eq!(l.kmod.calls[1].1, "async_probe=1", "its dependencies too");
        l.load("ip_vs").unwrap();
        assert!(l.kmod.calls.iter().skip(1).all(|(_, p)| p.ends_with("async_probe=1")), "and every later load");
    }

    #[test]
    fn modaliases_of_new_devices_only() {
        let root = std::env::temp_dir().join(format!("init-modalias-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dev = |bus: &str, d: &str, alias: Option<&str>| {
            let p = root.join("bus").join(bus).join("devices").join(d);
            std::fs::create_dir_all(&p).unwrap();
            if let Some(a) = alias {
                std::fs::write(p.join("modalias"), format!("{a}\n")).unwrap();
            }
        };
        dev("pci", "0000:00:01.0", Some("pci:v00001AF4d00001000"));
        dev("pci", "0000:00:02.0", Some("pci:v00001AF4d00001000"));
        dev("cpu", "cpu0", None);
        let mut seen = HashSet::new();
        assert_eq!(read_new_modaliases(&root, &mut seen), ["pci:v00001AF4d00001000"]);
        assert!(read_new_modaliases(&root, &mut seen).is_empty(), "nothing new");
        dev("virtio", "virtio0", Some("virtio:d00000001v00001AF4"));
        assert_eq!(read_new_modaliases(&root, &mut seen), ["virtio:d00000001v00001AF4"]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn coldplug_aliases_load_drivers() {
        let mut l = loader(Fake::default());
        let new = l.load_alias("pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00");
        assert_eq!(new.last().unwrap(), "virtio_pci");
        let new = l.load_alias("virtio:d00000001v00001AF4");
        assert_eq!(new, ["failover", "net_failover", "virtio_net"]);
        assert!(l.load_alias("virtio:d00000001v00001AF4").is_empty());
    }
}
