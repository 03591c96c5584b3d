//! Kernel modules: read `.modinfo`, compute the closure the firmware needs and
//! write `modules.dep`, `modules.alias`, `modules.softdep` and `modules.load`
//! for it, in pure Rust (Debian's package ships no modules.dep and this host
//! has no depmod).
//!
//! Names are normalised as the kernel does (`-` becomes `_`).
//!
//! **modules.dep order.** Each line lists *all* (transitive) dependencies of a
//! module, deepest first: loading the listed modules left to right, then the
//! module itself, always works. (kmod's depmod lists them the other way round;
//! kmod's modprobe resolves recursively and accepts either order.) A module's
//! `softdep=` modules (pre and post) are pulled into the image and recorded in
//! `modules.softdep` only, never folded into `modules.dep`: a soft dependency
//! is best effort (see `pre_edges`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::elf::Elf;

/// Modules init loads at boot whatever the hardware (in this order), and why.
/// Their dependencies come from modules.dep.
pub const BOOT_MODULES: &[(&str, &str)] = &[
    ("nf_defrag_ipv4", "conntrack/IPVS defragmentation"),
    ("nf_defrag_ipv6", "conntrack/IPVS defragmentation"),
    ("nf_conntrack", "connection tracking (IPVS NFCT, nftables ct)"),
    ("ip_vs", "IPVS core"),
    ("ip_vs_rr", "scheduler"),
    ("ip_vs_wrr", "scheduler"),
    ("ip_vs_lc", "scheduler"),
    ("ip_vs_wlc", "scheduler"),
    ("ip_vs_sed", "scheduler"),
    ("ip_vs_nq", "scheduler"),
    ("ip_vs_lblc", "scheduler"),
    ("ip_vs_lblcr", "scheduler"),
    ("ip_vs_dh", "scheduler"),
    ("ip_vs_sh", "scheduler"),
    ("ip_vs_mh", "scheduler"),
    ("ip_vs_fo", "scheduler"),
    ("ip_vs_ovf", "scheduler"),
    ("ip_vs_ftp", "FTP application helper"),
    ("ip_vs_pe_sip", "SIP persistence engine"),
    ("nfnetlink", "netfilter netlink"),
    ("nf_tables", "nftables core"),
    // nftables expressions are otherwise requested through modprobe, which the box lacks.
    ("nft_ct", "nftables ct expression"),
    ("nft_chain_nat", "nftables nat chains"),
    ("nft_nat", "nftables snat/dnat"),
    ("nft_masq", "nftables masquerade"),
    ("nft_reject_inet", "nftables reject"),
    ("nft_limit", "nftables limit"),
    ("nft_fib_inet", "nftables fib (rpfilter)"),
    ("tunnel4", "IPv4 tunnel demux"),
    ("tunnel6", "IPv6 tunnel demux"),
    ("ipip", "LVS-TUN ipip encapsulation, real-server decapsulation"),
    ("gre", "GRE demux"),
    ("ip_gre", "LVS-TUN gre encapsulation"),
    ("fou", "LVS-TUN gue encapsulation (FOU/GUE)"),
    ("fou6", "GUE over IPv6"),
    ("ip6_tunnel", "LVS-TUN over IPv6"),
    ("ip6_gre", "GRE over IPv6"),
    ("8021q", "VLAN interfaces"),
    ("macvlan", "macvlan interfaces"),
    ("ext4", "config partition filesystem"),
    ("button", "ACPI power button"),
    ("evdev", "/dev/input/event* for the power button"),
];

/// Modules in the image but loaded only when init's coldplug finds matching
/// hardware (through modules.alias), or on demand.
pub const COLDPLUG_MODULES: &[(&str, &str)] = &[
    ("virtio_pci", "virtio bus on PCI"),
    ("virtio_net", "NIC: virtio"),
    ("e1000", "NIC: Intel PRO/1000"),
    ("e1000e", "NIC: Intel PRO/1000 PCIe"),
    ("igb", "NIC: Intel 1G server"),
    ("ixgbe", "NIC: Intel 10G"),
    ("i40e", "NIC: Intel 40G"),
    ("ice", "NIC: Intel 100G (no DDP firmware: safe mode)"),
    ("bnxt_en", "NIC: Broadcom NetXtreme-C/E"),
    ("mlx5_core", "NIC: Mellanox ConnectX-4+"),
    ("vmxnet3", "NIC: VMware"),
    ("virtio_blk", "disk: virtio"),
    ("virtio_console", "virtio serial ports"),
    ("nvme", "disk: NVMe"),
    ("ahci", "disk: SATA AHCI"),
    ("sd_mod", "disk: SCSI/SATA disks"),
    ("vfat", "ESP filesystem (A/B updates)"),
    ("nls_cp437", "vfat default codepage"),
    ("nls_iso8859_1", "vfat default iocharset"),
];

/// The kernel's normalisation of a module name.
pub fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// What a module's `.modinfo` says about dependencies and aliases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// Normalised module name.
    pub name: String,
    /// Path relative to `/lib/modules/<kver>/`, e.g. `kernel/net/.../ip_vs.ko`.
    pub path: String,
    /// `depends=` (normalised).
    pub depends: Vec<String>,
    /// `softdep=pre:` names (modules or aliases, as written).
    pub softdep_pre: Vec<String>,
    /// `softdep=post:` names (modules or aliases, as written).
    pub softdep_post: Vec<String>,
    /// `alias=` patterns (fnmatch globs).
    pub aliases: Vec<String>,
}

/// Parses the raw `.modinfo` section (NUL-separated `key=value` strings).
/// `path` is the module's path relative to the modules directory.
pub fn parse_modinfo(section: &[u8], path: &str) -> ModInfo {
    let file_name = path.rsplit('/').next().unwrap_or(path);
    let mut info = ModInfo {
        name: normalise(file_name.strip_suffix(".ko").unwrap_or(file_name)),
        path: path.to_string(),
        ..ModInfo::default()
    };
    for entry in section.split(|&b| b == 0) {
        let Ok(entry) = std::str::from_utf8(entry) else { continue };
        let Some((key, value)) = entry.split_once('=') else { continue };
        match key {
            "name" if !value.is_empty() => info.name = normalise(value),
            "depends" => {
                info.depends.extend(value.split(',').filter(|s| !s.is_empty()).map(normalise));
            }
            "alias" => info.aliases.push(value.to_string()),
            "softdep" => {
                let mut post = None;
                for tok in value.split_whitespace() {
                    match tok {
                        "pre:" => post = Some(false),
                        "post:" => post = Some(true),
                        t => match post {
                            Some(false) => info.softdep_pre.push(t.to_string()),
                            Some(true) => info.softdep_post.push(t.to_string()),
                            None => {}
                        },
                    }
                }
            }
            _ => {}
        }
    }
    info
}

/// fnmatch(3) without flags: `*`, `?` and `[...]` classes (with `!`/`^` and ranges).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, length consumed including ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some('!') | Some('^'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == ']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                if p[i] <= c && c <= p[i + 2] {
                    matched = true;
                }
                i += 3;
            } else {
                if p[i] == c {
                    matched = true;
                }
                i += 1;
            }
        }
        None
    }
    fn rec(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|i| rec(&p[1..], &t[i..])),
            Some('?') => !t.is_empty() && rec(&p[1..], &t[1..]),
            Some('[') => {
                let Some(&c) = t.first() else { return false };
                match class(&p[1..], c) {
                    Some((true, n)) => rec(&p[1 + n..], &t[1..]),
                    Some((false, _)) => false,
                    None => t.first() == Some(&'[') && rec(&p[1..], &t[1..]),
                }
            }
            Some(&c) => t.first() == Some(&c) && rec(&p[1..], &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    rec(&p, &t)
}

/// What a name (module or alias) resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Loadable modules (several when an alias matches several, e.g. `crc32c`).
    Modules(Vec<String>),
    /// Built into the kernel: nothing to load.
    Builtin,
    /// Neither a module nor an alias of one.
    Missing,
}

/// Every module of a kernel, by normalised name, plus what is built in.
#[derive(Clone, Debug, Default)]
pub struct ModuleIndex {
    pub modules: BTreeMap<String, ModInfo>,
    /// Normalised names of built-in modules (from `modules.builtin`).
    pub builtin: BTreeSet<String>,
    /// Aliases of built-in modules (from `modules.builtin.modinfo`).
    pub builtin_aliases: Vec<String>,
}

impl ModuleIndex {
    /// Reads every `.ko` under `dir/kernel` (`dir` = `lib/modules/<kver>`),
    /// plus `modules.builtin` and `modules.builtin.modinfo` when present.
    pub fn load(dir: &Path) -> Result<Self> {
        let mut index = ModuleIndex::default();
        let mut files = Vec::new();
        walk_ko(&dir.join("kernel"), &mut files)?;
        for file in files {
            let rel = file.strip_prefix(dir)?.to_str().context("non-UTF-8 module path")?.to_string();
            let data = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let elf = Elf::parse(&data).with_context(|| format!("parsing {}", file.display()))?;
            let section = elf.section_by_name(".modinfo")?.unwrap_or_default();
            index.insert(parse_modinfo(section, &rel));
        }
        if let Ok(text) = std::fs::read_to_string(dir.join("modules.builtin")) {
            for line in text.lines() {
                let base = line.rsplit('/').next().unwrap_or(line);
                index.builtin.insert(normalise(base.trim_end_matches(".ko")));
            }
        }
        if let Ok(data) = std::fs::read(dir.join("modules.builtin.modinfo")) {
            for entry in data.split(|&b| b == 0) {
                if let Some((_, alias)) = std::str::from_utf8(entry).ok().and_then(|e| e.split_once(".alias=")) {
                    index.builtin_aliases.push(alias.to_string());
                }
            }
        }
        Ok(index)
    }

    /// Adds one module (tests build indexes by hand).
    pub fn insert(&mut self, info: ModInfo) {
        self.modules.insert(info.name.clone(), info);
    }

    /// Resolves a module name or alias as modprobe does: a module of that name
    /// first, then every module with a matching alias.
    pub fn resolve(&self, name: &str) -> Resolved {
        let n = normalise(name);
        if self.modules.contains_key(&n) {
            return Resolved::Modules(vec![n]);
        }
        if self.builtin.contains(&n) {
            return Resolved::Builtin;
        }
        let matches: Vec<String> = self
            .modules
            .values()
            .filter(|m| m.aliases.iter().any(|a| glob_match(a, name)))
            .map(|m| m.name.clone())
            .collect();
        if !matches.is_empty() {
            Resolved::Modules(matches)
        } else if self.builtin_aliases.iter().any(|a| glob_match(a, name)) {
            Resolved::Builtin
        } else {
            Resolved::Missing
        }
    }

    /// The modules a module needs loaded before it (`depends=`), and the
    /// modules its `softdep=pre:` resolves to. Sorted, deduplicated.
    ///
    /// Only hard dependencies go into `modules.dep`: a soft dependency may
    /// resolve to alternatives that cannot all load (the `crc32c` alias is
    /// both `crc32c_generic` and `crc32c_intel`, which fails with ENODEV on a
    /// CPU without SSE4.2, e.g. QEMU's TCG default), so it must stay best
    /// effort; it is shipped and listed in `modules.softdep`, which init
    /// loads before the module, ignoring failures.
    fn pre_edges(&self, m: &ModInfo, warnings: &mut Vec<String>) -> Result<(Vec<String>, Vec<String>)> {
        let mut hard = BTreeSet::new();
        for d in &m.depends {
            if !self.modules.contains_key(d) {
                bail!("module {} depends on {d}, which is not in the kernel package", m.name);
            }
            hard.insert(d.clone());
        }
        let mut soft = BTreeSet::new();
        for s in &m.softdep_pre {
            match self.resolve(s) {
                Resolved::Modules(ms) => soft.extend(ms),
                Resolved::Builtin => {}
                Resolved::Missing => warnings.push(format!("{}: softdep pre {s} matches no module", m.name)),
            }
        }
        hard.remove(&m.name);
        soft.remove(&m.name);
        Ok((hard.into_iter().collect(), soft.into_iter().collect()))
    }

    /// Computes the closure of `roots` (names or aliases; a root that is built
    /// in is skipped with a note, a missing one is an error).
    pub fn closure(&self, roots: &[&str]) -> Result<Closure> {
        let mut warnings = Vec::new();
        let mut queue = Vec::new();
        let mut skipped_builtin = Vec::new();
        for r in roots {
            match self.resolve(r) {
                Resolved::Modules(ms) => queue.extend(ms),
                Resolved::Builtin => skipped_builtin.push(normalise(r)),
                Resolved::Missing => bail!("module {r} is neither in the kernel package nor built in"),
            }
        }
        let mut included = BTreeSet::new();
        let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
        while let Some(name) = queue.pop() {
            if !included.insert(name.clone()) {
                continue;
            }
            let m = &self.modules[&name];
            let (pre, soft) = self.pre_edges(m, &mut warnings)?;
            queue.extend(pre.iter().cloned());
            queue.extend(soft);
            for s in &m.softdep_post {
                match self.resolve(s) {
                    Resolved::Modules(ms) => queue.extend(ms),
                    Resolved::Builtin => {}
                    Resolved::Missing => warnings.push(format!("{}: softdep post {s} matches no module", m.name)),
                }
            }
            edges.insert(name, pre);
        }
        let mut deps = BTreeMap::new();
        for name in &included {
            let mut order = Vec::new();
            let mut state = BTreeMap::new();
            visit(name, &edges, &mut state, &mut order, &mut warnings);
            order.pop(); // the module itself comes last
            deps.insert(name.clone(), order);
        }
        Ok(Closure {
            modules: included.iter().map(|n| self.modules[n].clone()).collect(),
            deps,
            skipped_builtin,
            warnings,
        })
    }
}

/// Depth-first post-order: dependencies before dependents. A back edge (only
/// possible through softdeps) is dropped with a warning.
fn visit(
    name: &str,
    edges: &BTreeMap<String, Vec<String>>,
    state: &mut BTreeMap<String, bool>,
    order: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    match state.get(name) {
        Some(true) => return,
        Some(false) => {
            warnings.push(format!("dependency cycle through {name}; edge ignored"));
            return;
        }
        None => {}
    }
    state.insert(name.to_string(), false);
    for d in edges.get(name).into_iter().flatten() {
        visit(d, edges, state, order, warnings);
    }
    state.insert(name.to_string(), true);
    order.push(name.to_string());
}

fn walk_ko(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk_ko(&e.path(), out)?;
        } else if e.file_name().to_string_lossy().ends_with(".ko") {
            out.push(e.path());
        }
    }
    Ok(())
}

/// The modules to ship and their load order.
#[derive(Clone, Debug)]
pub struct Closure {
    /// Every module to ship, sorted by name.
    pub modules: Vec<ModInfo>,
    /// For each module, all its dependencies in load order (deepest first).
    pub deps: BTreeMap<String, Vec<String>>,
    /// Roots that are built into the kernel.
    pub skipped_builtin: Vec<String>,
    /// Non-fatal oddities (unresolvable softdeps, softdep cycles).
    pub warnings: Vec<String>,
}

impl Closure {
    fn path_of<'a>(&'a self, name: &'a str) -> &'a str {
        self.modules.iter().find(|m| m.name == name).map(|m| m.path.as_str()).unwrap_or(name)
    }

    /// `modules.dep` in depmod's format, lines sorted by path.
    pub fn modules_dep(&self) -> String {
        let mut lines: Vec<String> = self
            .modules
            .iter()
            .map(|m| {
                let deps: Vec<&str> = self.deps[&m.name].iter().map(|d| self.path_of(d)).collect();
                if deps.is_empty() { format!("{}:", m.path) } else { format!("{}: {}", m.path, deps.join(" ")) }
            })
            .collect();
        lines.sort();
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    /// `modules.alias` in depmod's format (`alias PATTERN module`).
    pub fn modules_alias(&self) -> String {
        let mut out = String::from("# Aliases extracted from modules themselves.\n");
        for m in &self.modules {
            for a in &m.aliases {
                let _ = writeln!(out, "alias {a} {}", m.name);
            }
        }
        out
    }

    /// `modules.softdep` in depmod's format.
    pub fn modules_softdep(&self) -> String {
        let mut out = String::from("# Soft dependencies extracted from modules themselves.\n");
        for m in self.modules.iter().filter(|m| !m.softdep_pre.is_empty() || !m.softdep_post.is_empty()) {
            let _ = write!(out, "softdep {}", m.name);
            if !m.softdep_pre.is_empty() {
                let _ = write!(out, " pre: {}", m.softdep_pre.join(" "));
            }
            if !m.softdep_post.is_empty() {
                let _ = write!(out, " post: {}", m.softdep_post.join(" "));
            }
            out.push('\n');
        }
        out
    }

    /// `modules.load`: the boot modules present in the closure, in the given
    /// order, one per line (`name` or `name param=value ...`).
    pub fn modules_load(&self, boot: &[(&str, &str)]) -> String {
        boot.iter()
            .filter(|(spec, _)| {
                let name = normalise(spec.split_whitespace().next().unwrap_or(""));
                self.deps.contains_key(&name)
            })
            .map(|(spec, _)| format!("{spec}\n"))
            .collect()
    }

    /// Total size of the shipped modules, given the modules directory.
    pub fn total_size(&self, dir: &Path) -> u64 {
        self.modules.iter().filter_map(|m| std::fs::metadata(dir.join(&m.path)).ok()).map(|md| md.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, path: &str, modinfo: &str) -> ModInfo {
        let mut info = parse_modinfo(modinfo.replace('|', "\0").as_bytes(), path);
        info.name = name.to_string();
        info
    }

    /// A miniature of the real IPVS/crc32c graph.
    fn index() -> ModuleIndex {
        let mut ix = ModuleIndex::default();
        ix.insert(m("ip_vs", "kernel/net/ip_vs.ko", "depends=nf_conntrack,libcrc32c,nf_defrag_ipv6"));
        ix.insert(m("nf_conntrack", "kernel/net/nf_conntrack.ko", "depends=nf_defrag_ipv4,nf_defrag_ipv6,libcrc32c"));
        ix.insert(m("nf_defrag_ipv4", "kernel/net/nf_defrag_ipv4.ko", "depends="));
        ix.insert(m("nf_defrag_ipv6", "kernel/net/nf_defrag_ipv6.ko", "depends="));
        ix.insert(m("libcrc32c", "kernel/lib/libcrc32c.ko", "softdep=pre: crc32c|depends="));
        ix.insert(m("crc32c_generic", "kernel/crypto/crc32c_generic.ko", "alias=crypto-crc32c|alias=crc32c"));
        ix.insert(m("crc32c_intel", "kernel/arch/crc32c-intel.ko", "alias=crc32c|alias=crypto-crc32c-intel"));
        ix.insert(m("e1000e", "kernel/drivers/e1000e.ko", "alias=pci:v00008086d000010D3sv*sd*bc*sc*i*|depends="));
        ix.insert(m("unrelated", "kernel/unrelated.ko", "depends=libcrc32c"));
        ix.builtin.insert("unix".into());
        ix
    }

    #[test]
    fn parses_modinfo_fields() {
        let raw = b"license=GPL\0softdep=pre: crc32c post: foo-bar\0alias=net-pf-16\0depends=a-b,c\0\0\0name=my-mod\0";
        let info = parse_modinfo(raw, "kernel/x/my-mod.ko");
        assert_eq!(info.name, "my_mod");
        assert_eq!(info.path, "kernel/x/my-mod.ko");
        assert_eq!(info.depends, vec!["a_b", "c"]);
        assert_eq!(info.softdep_pre, vec!["crc32c"]);
        assert_eq!(info.softdep_post, vec!["foo-bar"]);
        assert_eq!(info.aliases, vec!["net-pf-16"]);
        // Without name=, the file name gives it, normalised.
        assert_eq!(parse_modinfo(b"depends=\0", "kernel/a/crc32c-intel.ko").name, "crc32c_intel");
        assert!(parse_modinfo(b"depends=\0", "k/x.ko").depends.is_empty());
    }

    #[test]
    fn parses_modinfo_from_an_elf_section() {
        let elf = crate::elf::tests::fake_elf(&[(".modinfo", b"depends=jbd2,mbcache\0alias=fs-ext4\0")]);
        let e = Elf::parse(&elf).unwrap();
        let info = parse_modinfo(e.section_by_name(".modinfo").unwrap().unwrap(), "kernel/fs/ext4/ext4.ko");
        assert_eq!(info.name, "ext4");
        assert_eq!(info.depends, vec!["jbd2", "mbcache"]);
        assert_eq!(info.aliases, vec!["fs-ext4"]);
    }

    #[test]
    fn globs_like_fnmatch() {
        assert!(glob_match(
            "pci:v00008086d000010D3sv*sd*bc*sc*i*",
            "pci:v00008086d000010D3sv00008086sd00000001bc02sc00i00"
        ));
        assert!(!glob_match("pci:v00008086d000010D3sv*sd*bc*sc*i*", "pci:v00008086d000010D4sv0sd0bc02sc00i00"));
        assert!(glob_match("crc32c", "crc32c"));
        assert!(!glob_match("crc32c", "crc32"));
        assert!(glob_match("acpi*:PNP0C0C:*", "acpi:PNP0C0C:"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("x[0-9]y", "x5y"));
        assert!(!glob_match("x[!0-9]y", "x5y"));
        assert!(glob_match("x[!0-9]y", "xay"));
    }

    #[test]
    fn resolves_names_aliases_and_builtins() {
        let ix = index();
        assert_eq!(ix.resolve("ip-vs"), Resolved::Modules(vec!["ip_vs".into()]));
        assert_eq!(ix.resolve("crc32c"), Resolved::Modules(vec!["crc32c_generic".into(), "crc32c_intel".into()]));
        assert_eq!(ix.resolve("crypto-crc32c"), Resolved::Modules(vec!["crc32c_generic".into()]));
        assert_eq!(ix.resolve("unix"), Resolved::Builtin);
        assert_eq!(ix.resolve("nope"), Resolved::Missing);
    }

    #[test]
    fn closure_follows_depends_and_softdeps_through_aliases() {
        let ix = index();
        let c = ix.closure(&["ip_vs", "unix"]).unwrap();
        let names: Vec<&str> = c.modules.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "crc32c_generic",
                "crc32c_intel",
                "ip_vs",
                "libcrc32c",
                "nf_conntrack",
                "nf_defrag_ipv4",
                "nf_defrag_ipv6"
            ]
        );
        assert_eq!(c.skipped_builtin, vec!["unix"]);
        // Every hard dependency comes before anything that needs it.
        let order = &c.deps["ip_vs"];
        let pos = |n: &str| order.iter().position(|x| x == n).unwrap_or_else(|| panic!("{n} missing"));
        assert!(pos("libcrc32c") < pos("nf_conntrack"));
        assert!(pos("nf_defrag_ipv4") < pos("nf_conntrack"));
        assert!(pos("nf_defrag_ipv6") < pos("nf_conntrack"));
        assert_eq!(order.len(), 4);
        assert!(c.deps["nf_defrag_ipv4"].is_empty());
        // Soft dependencies are shipped but are not hard dependencies: one of
        // crc32c's alternatives (crc32c_intel) cannot load on every CPU.
        assert!(c.deps["libcrc32c"].is_empty());
    }

    #[test]
    fn missing_root_or_dependency_is_an_error() {
        let ix = index();
        assert!(ix.closure(&["no_such_module"]).is_err());
        let mut ix = index();
        ix.insert(m("broken", "kernel/broken.ko", "depends=ghost"));
        assert!(ix.closure(&["broken"]).is_err());
    }

    #[test]
    fn softdep_cycles_do_not_hang() {
        let mut ix = ModuleIndex::default();
        ix.insert(m("a", "kernel/a.ko", "softdep=pre: b"));
        ix.insert(m("b", "kernel/b.ko", "softdep=pre: a"));
        let c = ix.closure(&["a"]).unwrap();
        assert_eq!(c.modules.len(), 2, "both are shipped");
        assert!(c.deps["a"].is_empty() && c.deps["b"].is_empty());
        assert!(c.modules_softdep().contains("softdep a pre: b"));
    }

    #[test]
    fn writes_depmod_files() {
        let ix = index();
        let c = ix.closure(&["ip_vs", "e1000e"]).unwrap();
        let dep = c.modules_dep();
        let lines: Vec<&str> = dep.lines().collect();
        assert_eq!(lines.len(), 8);
        assert!(lines.windows(2).all(|w| w[0] < w[1]), "sorted: {dep}");
        assert!(lines.contains(&"kernel/net/nf_defrag_ipv4.ko:"));
        assert!(lines.contains(&"kernel/lib/libcrc32c.ko:"), "{dep}");
        let ipvs = lines.iter().find(|l| l.starts_with("kernel/net/ip_vs.ko: ")).unwrap();
        assert!(ipvs.ends_with("kernel/net/nf_conntrack.ko"), "{ipvs}");

        let alias = c.modules_alias();
        assert!(alias.contains("alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n"));
        assert!(alias.contains("alias crc32c crc32c_intel\n"));
        assert!(!alias.contains("unrelated"));

        assert_eq!(c.modules_softdep().lines().nth(1), Some("softdep libcrc32c pre: crc32c"));

        let load = c.modules_load(&[("ip_vs conn_tab_bits=12", ""), ("not_included", ""), ("e1000e", "")]);
        assert_eq!(load, "ip_vs conn_tab_bits=12\ne1000e\n");
    }
}
