//! Bringing existing setups over: `keepalived.conf` and ipvsadm rules into
//! lvsbox's [`Config`].
//!
//! Both importers produce an [`Outcome`]: the config (already serialized to
//! TOML and re-parsed with lbd's own config parser, so it is valid) and a
//! [`Report`] that lists, with file:line, everything that was not imported
//! and what to do instead. Nothing is dropped silently: a keyword the
//! importer does not map is a report entry. Malformed input is an `error`
//! entry and yields no config.
//!
//! - [`keepalived`]: keepalived's syntax (nested blocks, `include` with
//!   globs, `!`/`#` comments, quoted strings, `$VAR` substitution) and its
//!   `global_defs`, `vrrp_instance`, `vrrp_sync_group`, `virtual_server`
//!   and `virtual_server_group` blocks.
//! - [`ipvsadm`]: `ipvsadm -S`/`-Sn` output and shell scripts of ipvsadm
//!   command lines (with `NAME=value` variables, as the seeds write them).

#[doc(hidden)]
pub mod fuzz;
pub mod ipvsadm;
pub mod keepalived;
pub mod kparse;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::{self, Config};

/// How serious a report entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Malformed input or a config lvsbox rejects: no config is produced.
    Error,
    /// Understood but not imported: lvsbox has no equivalent (yet). The
    /// message says what to do instead.
    NotImported,
    /// Imported with a change of form, or dropped because lvsbox does the
    /// same thing differently; nothing to do.
    Note,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Error => "error",
            Kind::NotImported => "not imported",
            Kind::Note => "note",
        })
    }
}

/// A place in an input file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loc {
    /// File name as the operator gave it (included files relative to it).
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One report line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where.
    pub loc: Loc,
    /// How serious.
    pub kind: Kind,
    /// The keyword or command concerned.
    pub what: String,
    /// Why, and what to do instead.
    pub message: String,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}: {}", self.loc, self.kind, self.what, self.message)
    }
}

/// Everything an import has to tell the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// In input order (errors first when printed by [`Report::text`]).
    pub entries: Vec<Entry>,
}

impl Report {
    /// Adds an entry.
    pub fn push(&mut self, loc: &Loc, kind: Kind, what: impl Into<String>, message: impl Into<String>) {
        self.entries.push(Entry { loc: loc.clone(), kind, what: what.into(), message: message.into() });
    }
    /// Adds an error.
    pub fn error(&mut self, loc: &Loc, what: impl Into<String>, message: impl Into<String>) {
        self.push(loc, Kind::Error, what, message);
    }
    /// Whether any entry is an error.
    pub fn has_errors(&self) -> bool {
        self.entries.iter().any(|e| e.kind == Kind::Error)
    }
    /// Entries of one kind.
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(move |e| e.kind == kind)
    }
    /// The report as printed on stderr: errors, then what was not imported,
    /// then notes, each in input order, and a summary line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for k in [Kind::Error, Kind::NotImported, Kind::Note] {
            for e in self.of(k) {
                out.push_str(&e.to_string());
                out.push('\n');
            }
        }
        let n = |k| self.of(k).count();
        out.push_str(&format!(
            "import: {} error(s), {} not imported, {} note(s){}\n",
            n(Kind::Error),
            n(Kind::NotImported),
            n(Kind::Note),
            if self.has_errors() { "; no config written" } else { "" }
        ));
        out
    }
}

/// The result of an import.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The imported config, when there was no error.
    pub config: Option<Config>,
    /// Its TOML text (with a header comment), when there was no error.
    pub toml: Option<String>,
    /// Everything not imported, notes and errors.
    pub report: Report,
}

/// Where config-path prefixes (`services[2]`, `vrrp.instances[0]`) came from,
/// so that lbd's validation errors point back into the input.
#[derive(Clone, Debug, Default)]
pub(crate) struct Origins(HashMap<String, Loc>);

impl Origins {
    pub(crate) fn set(&mut self, path: impl Into<String>, loc: &Loc) {
        self.0.insert(path.into(), loc.clone());
    }
    fn find(&self, path: &str) -> Option<&Loc> {
        let mut p = path;
        loop {
            if let Some(l) = self.0.get(p) {
                return Some(l);
            }
            p = &p[..p.rfind(['.', '['])?];
        }
    }
}

/// Serializes `cfg`, re-parses it with lbd's config parser (the same check
/// `lbd check` runs) and turns its errors into report errors located in the
/// input. Returns the outcome.
pub(crate) fn finish(cfg: Config, header: &str, origins: &Origins, fallback: &Loc, mut report: Report) -> Outcome {
    if report.has_errors() {
        return Outcome { config: None, toml: None, report };
    }
    let toml = format!("{header}{}", cfg.to_toml());
    match config::parse(&toml, "imported.toml") {
        Ok(parsed) => Outcome { config: Some(parsed), toml: Some(toml), report },
        Err(errors) => {
            for e in errors {
                let loc = origins.find(&e.path).unwrap_or(fallback);
                let what = if e.path.is_empty() { "config".to_string() } else { e.path.clone() };
                report.error(loc, what, format!("lvsbox would reject this: {}", e.message));
            }
            Outcome { config: None, toml: None, report }
        }
    }
}

/// Services whose reals all use one forwarding method other than the
/// service's get it as the service default (shorter, same table).
pub(crate) fn tidy_forwarding(cfg: &mut Config) {
    for s in &mut cfg.services {
        let Some(first) = s.reals.first().map(|r| r.forwarding.unwrap_or(s.forwarding)) else { continue };
        if s.reals.iter().all(|r| r.forwarding.unwrap_or(s.forwarding) == first) {
            s.forwarding = first;
            for r in &mut s.reals {
                r.forwarding = None;
            }
        }
    }
}

// ---------------------------------------------------------------- paste

/// A pasted import, fitted onto a box's config.
#[derive(Clone, Debug)]
pub struct PasteImport {
    /// What the importer made of the text alone.
    pub outcome: Outcome,
    /// The box's config with the imported parts in place (when the import
    /// converted and the result passes lbd's validation).
    pub merged: Option<Config>,
    /// What `merged` replaces, in words (`services: 1 -> 2`).
    pub replaced: Vec<String>,
    /// lbd's errors about `merged` (`file:line:col: path: why` of the merged
    /// text), when the imported parts do not fit the rest of the box's config.
    pub merge_errors: Vec<String>,
}

/// The box's `base` config with what an import brings replaced: the
/// services (wholesale: the imported text describes the whole table), the
/// VRRP section when the input is a keepalived.conf (which describes the
/// whole director; ipvsadm rules say nothing about VRRP, so the box's
/// instances stay), the IPVS connection timeouts when the input sets any,
/// and the host name when keepalived's `router_id` gave one. The rest
/// (interfaces, routes, static VIPs, consoles, the console password, log
/// level, other IPVS settings) stays the box's. Returns the config and what
/// changed, in words.
pub fn merge(base: &Config, imported: &Config, format: crate::ctl::proto::ImportFormat) -> (Config, Vec<String>) {
    let mut out = base.clone();
    let mut said = Vec::new();
    let n = |v: usize, what: &str| format!("{v} {what}");
    said.push(format!(
        "services: {} -> {} (replaced)",
        n(base.services.len(), "configured"),
        n(imported.services.len(), "imported")
    ));
    out.services = imported.services.clone();
    if format == crate::ctl::proto::ImportFormat::Ipvsadm {
        if !base.vrrp.instances.is_empty() {
            said.push(format!("VRRP: {} instance(s) kept (ipvsadm rules carry none)", base.vrrp.instances.len()));
        }
    } else if base.vrrp != imported.vrrp {
        said.push(format!(
            "VRRP: {} instance(s) -> {} imported (replaced{})",
            base.vrrp.instances.len(),
            imported.vrrp.instances.len(),
            if imported.vrrp.sync_daemon.is_some() { ", with the sync daemon" } else { "" }
        ));
    }
    if format != crate::ctl::proto::ImportFormat::Ipvsadm {
        out.vrrp = imported.vrrp.clone();
    }
    let t = &imported.ipvs.timeouts;
    if (t.tcp.is_some() || t.tcpfin.is_some() || t.udp.is_some()) && base.ipvs.timeouts != *t {
        said.push("IPVS connection timeouts (replaced)".into());
        out.ipvs.timeouts = *t;
    }
    if imported.system.hostname != config::System::default().hostname
        && imported.system.hostname != base.system.hostname
    {
        said.push(format!("host name: {} -> {}", base.system.hostname, imported.system.hostname));
        out.system.hostname = imported.system.hostname.clone();
    }
    (out, said)
}

/// Which importer a pasted text is for: a keepalived.conf or ipvsadm rules
/// (`ipvsadm -S` output, a script of ipvsadm commands, a pasted root-prompt
/// session). The first line that decides wins: one whose first word is a
/// keepalived block or `include`, or one that runs ipvsadm (`ipvsadm …`,
/// `/sbin/ipvsadm …`, `NAME=/sbin/ipvsadm`, a rule starting with `-A`/`-a`
/// as `ipvsadm -S` prints them). Comments (`#`, `!`) decide nothing; a text
/// where nothing decides is read as a keepalived.conf (its report then says
/// what was not understood).
pub fn detect(text: &str) -> crate::ctl::proto::ImportFormat {
    use crate::ctl::proto::ImportFormat;
    const KEEPALIVED: &[&str] = &[
        "global_defs",
        "vrrp_instance",
        "vrrp_sync_group",
        "vrrp_script",
        "virtual_server",
        "virtual_server_group",
        "static_ipaddress",
        "static_routes",
        "static_rules",
        "linkbeat_interfaces",
        "include",
        "real_server",
        "garp_group",
        "net_namespace",
    ];
    for raw in text.lines() {
        let line = raw.trim_start();
        if line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        // A pasted root prompt (`[root@lb1 ~]# ipvsadm ...`).
        let line = match line.find("]# ") {
            Some(i) if line.starts_with('[') => &line[i + 3..],
            _ => line,
        };
        let first = line.split(|c: char| c.is_whitespace() || c == '{').next().unwrap_or("");
        if KEEPALIVED.contains(&first) {
            return ImportFormat::Keepalived;
        }
        let runs_ipvsadm =
            line.split(|c: char| c.is_whitespace() || c == '=').any(|w| w == "ipvsadm" || w.ends_with("/ipvsadm"));
        if runs_ipvsadm || ["-A ", "-a ", "--add-service", "--add-server"].iter().any(|p| line.starts_with(p)) {
            return ImportFormat::Ipvsadm;
        }
    }
    ImportFormat::Keepalived
}

/// Imports `text` (at most the control protocol's limit) as `format` with
/// no file system (includes are reported), and fits the result onto `base`.
pub fn paste(format: crate::ctl::proto::ImportFormat, text: &str, base: &Config) -> PasteImport {
    use crate::ctl::proto::ImportFormat;
    let outcome = match format {
        ImportFormat::Keepalived => keepalived::import_text(&Pasted, text, "pasted"),
        ImportFormat::Ipvsadm => ipvsadm::import_text(text, "pasted"),
    };
    let Some(imported) = outcome.config.as_ref() else {
        return PasteImport { outcome, merged: None, replaced: Vec::new(), merge_errors: Vec::new() };
    };
    let (merged, replaced) = merge(base, imported, format);
    match config::parse(&merged.to_toml(), "merged") {
        Ok(m) => PasteImport { outcome, merged: Some(m), replaced, merge_errors: Vec::new() },
        Err(errs) => PasteImport {
            outcome,
            merged: None,
            replaced,
            merge_errors: errs.iter().map(ToString::to_string).collect(),
        },
    }
}

// ---------------------------------------------------------------- files

/// What the importers read: the real file system, or a map in tests.
pub trait Fs {
    /// The text of a file.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// The names in a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Why `include` cannot be followed here at all (a pasted file), if so:
    /// the importer reports each include with this instead of looking.
    fn no_includes(&self) -> Option<&'static str> {
        None
    }
}

/// No files at all: a keepalived.conf pasted on the console (or sent over
/// the control socket) names no directory, and lbd must not read its own
/// file system on a client's behalf.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pasted;

impl Fs for Pasted {
    fn read(&self, _: &Path) -> io::Result<String> {
        Err(io::Error::new(io::ErrorKind::NotFound, "a pasted file includes nothing"))
    }
    fn list(&self, _: &Path) -> io::Result<Vec<String>> {
        Err(io::Error::new(io::ErrorKind::NotFound, "a pasted file includes nothing"))
    }
    fn no_includes(&self) -> Option<&'static str> {
        Some(
            "a pasted keepalived.conf cannot include files: paste the included file's text in place of this line \
             (or run `lbd import keepalived FILE` where the files are)",
        )
    }
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl Fs for RealFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        let bytes = std::fs::read(path)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let mut v = Vec::new();
        for e in std::fs::read_dir(dir)? {
            v.push(e?.file_name().to_string_lossy().into_owned());
        }
        Ok(v)
    }
}

/// Files in memory (tests, fuzzing, a pasted config).
#[derive(Clone, Debug, Default)]
pub struct MemFs(pub std::collections::BTreeMap<PathBuf, String>);

impl MemFs {
    /// Adds a file.
    pub fn with(mut self, path: &str, text: &str) -> Self {
        self.0.insert(PathBuf::from(path), text.to_string());
        self
    }
}

impl Fs for MemFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.0.get(path).cloned().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut v: Vec<String> = self
            .0
            .keys()
            .filter_map(|p| {
                let rel = p.strip_prefix(dir).ok()?;
                rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned())
            })
            .collect();
        v.dedup();
        Ok(v)
    }
}

/// Most paths one brace expression may expand to.
const MAX_BRACE: usize = 256;

/// csh-style brace expansion: `a{b,c{d,e}}f` → `abf acdf acef`.
pub(crate) fn brace_expand(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    expand_into(p, &mut out);
    out
}

fn expand_into(p: &str, out: &mut Vec<String>) {
    if out.len() >= MAX_BRACE {
        return;
    }
    let b: Vec<char> = p.chars().collect();
    let Some(open) = b.iter().position(|c| *c == '{') else {
        out.push(p.to_string());
        return;
    };
    let mut depth = 0;
    let mut parts = Vec::new();
    let mut start = open + 1;
    let mut close = None;
    for (i, c) in b.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    parts.push(b[start..i].iter().collect::<String>());
                    close = Some(i);
                    break;
                }
            }
            ',' if depth == 1 => {
                parts.push(b[start..i].iter().collect::<String>());
                start = i + 1;
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        out.push(p.to_string());
        return;
    };
    let pre: String = b[..open].iter().collect();
    let post: String = b[close + 1..].iter().collect();
    for part in parts {
        expand_into(&format!("{pre}{part}{post}"), out);
        if out.len() >= MAX_BRACE {
            return;
        }
    }
}

fn has_wild(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Shell wildcard match of one path component: `*`, `?`, `[abc]`, `[a-z]`,
/// `[!x]`. Linear in practice (backtracks only to the last `*`).
pub(crate) fn wild_match(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // One pattern element at p[i]: returns (matches c, length in pattern).
    let elem = |i: usize, c: char| -> (bool, usize) {
        if p[i] == '?' {
            return (true, 1);
        }
        if p[i] == '[' {
            let mut j = i + 1;
            let neg = j < p.len() && (p[j] == '!' || p[j] == '^');
            if neg {
                j += 1;
            }
            let first = j;
            let mut hit = false;
            while j < p.len() && (p[j] != ']' || j == first) {
                if j + 2 < p.len() && p[j + 1] == '-' && p[j + 2] != ']' {
                    hit |= p[j] <= c && c <= p[j + 2];
                    j += 3;
                } else {
                    hit |= p[j] == c;
                    j += 1;
                }
            }
            if j < p.len() {
                return (hit != neg, j + 1 - i);
            }
            // No closing bracket: a literal '['.
            return (c == '[', 1);
        }
        (p[i] == c, 1)
    };
    let (mut i, mut k) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while k < n.len() {
        if i < p.len() && p[i] == '*' {
            star = Some((i, k));
            i += 1;
            continue;
        }
        if i < p.len() {
            let (ok, len) = elem(i, n[k]);
            if ok {
                i += len;
                k += 1;
                continue;
            }
        }
        match star {
            Some((si, sk)) => {
                i = si + 1;
                k = sk + 1;
                star = Some((si, sk + 1));
            }
            None => return false,
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

/// The files matching `pattern` (relative to `base` unless absolute), sorted
/// as glob(3) sorts them. Hidden names only match a pattern starting with '.'.
pub(crate) fn glob(fs: &dyn Fs, base: &Path, pattern: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for p in brace_expand(pattern) {
        let path = Path::new(&p);
        let (mut cur, rest): (Vec<PathBuf>, Vec<String>) = if path.is_absolute() {
            (vec![PathBuf::from("/")], p.trim_start_matches('/').split('/').map(str::to_string).collect())
        } else {
            (vec![base.to_path_buf()], p.split('/').map(str::to_string).collect())
        };
        for comp in rest.iter().filter(|c| !c.is_empty()) {
            let mut next = Vec::new();
            for dir in &cur {
                if comp == "." {
                    next.push(dir.clone());
                    continue;
                }
                if comp == ".." {
                    // Lexically, as the tests' in-memory files need.
                    next.push(match dir.file_name() {
                        Some(_) => dir.parent().map(Path::to_path_buf).unwrap_or_default(),
                        None => dir.join(".."),
                    });
                    continue;
                }
                if !has_wild(comp) {
                    next.push(dir.join(comp));
                    continue;
                }
                let Ok(mut names) = fs.list(dir) else { continue };
                names.sort();
                for n in names {
                    if n.starts_with('.') && !comp.starts_with('.') {
                        continue;
                    }
                    if wild_match(comp, &n) {
                        next.push(dir.join(n));
                    }
                }
            }
            cur = next;
            if cur.len() > 4096 {
                cur.truncate(4096);
            }
        }
        for c in cur {
            if !found.contains(&c) && fs.read(&c).is_ok() {
                found.push(c);
            }
        }
    }
    found
}

/// The variable reference at `c[i]` (a `$`): `${NAME}` or `$NAME`, where a
/// bare name runs while `bare(char, is_first)` holds. Returns the name (empty
/// when there is none: a lone `$`, an unclosed `${`) and the index just past
/// the reference. Shared by the keepalived and ipvsadm readers, which differ
/// in what a bare name may contain and in what an unknown name does.
fn var_ref(c: &[char], i: usize, bare: impl Fn(char, bool) -> bool) -> (String, usize) {
    if c.get(i + 1) == Some(&'{') {
        return match c[i + 2..].iter().position(|x| *x == '}') {
            Some(p) => (c[i + 2..i + 2 + p].iter().collect(), i + 3 + p),
            None => (String::new(), i + 1),
        };
    }
    let mut j = i + 1;
    while j < c.len() && bare(c[j], j == i + 1) {
        j += 1;
    }
    (c[i + 1..j].iter().collect(), j)
}

#[cfg(test)]
mod tests;
