//! `lbd-fuzz`: a coverage-guided fuzzer for lbd's parsers on the stable
//! toolchain, with no fuzzing crate (see README.md for why and how to run).
//!
//! The crate is built with LLVM's SanitizerCoverage (`.cargo/config.toml`):
//! every edge of lbd and its dependencies increments an 8-bit counter, and
//! LLVM hands each object's counter array to
//! `__sanitizer_cov_8bit_counters_init`, defined here. After each input the
//! counters are read (bucketed as AFL and libFuzzer do: 1, 2, 3, 4-7, 8-15,
//! 16-31, 32-127, 128+) and cleared; an input that reaches a new bucket of
//! any edge joins the corpus. Inputs are made by lbd's own mutator
//! (`lbd::import::fuzz::mutate`, which the unit test's mutation loop uses)
//! plus crossover between corpus entries. The checks are
//! `lbd::import::fuzz::{keepalived, ipvsadm, config}`: any panic is a
//! finding, saved under `target/fuzz/artifacts/TARGET/`.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lbd::import::fuzz::{Rng, mutate};

/// The counter arrays LLVM registered: (start, length).
static REGIONS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Called by LLVM's instrumentation (from each object's constructor, before
/// `main`) with the bounds of that object's 8-bit edge counters.
#[unsafe(no_mangle)]
pub extern "C" fn __sanitizer_cov_8bit_counters_init(start: *mut u8, stop: *mut u8) {
    let len = (stop as usize).saturating_sub(start as usize);
    if len > 0
        && let Ok(mut r) = REGIONS.lock()
    {
        r.push((start as usize, len));
    }
}

/// The counters of every instrumented object.
struct Coverage {
    regions: Vec<(usize, usize)>,
    /// Per counter, the buckets seen so far (one bit each).
    seen: Vec<u8>,
}

fn bucket(n: u8) -> u8 {
    match n {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 4,
        4..=7 => 8,
        8..=15 => 16,
        16..=31 => 32,
        32..=127 => 64,
        _ => 128,
    }
}

impl Coverage {
    fn new() -> Self {
        let regions = REGIONS.lock().map(|r| r.clone()).unwrap_or_default();
        let total = regions.iter().map(|r| r.1).sum();
        Coverage { regions, seen: vec![0; total] }
    }

    fn counters(&self) -> impl Iterator<Item = &'static mut [u8]> + '_ {
        self.regions.iter().map(|&(start, len)| {
            // SAFETY: LLVM registered [start, start+len) as this object's
            // counter array, which lives (as a global) for the whole process;
            // only this thread runs instrumented code, and not while we read.
            unsafe { std::slice::from_raw_parts_mut(start as *mut u8, len) }
        })
    }

    fn clear(&self) {
        for c in self.counters() {
            c.fill(0);
        }
    }

    /// Folds the counters of the last run into `seen`; whether any bucket
    /// is new. Clears the counters.
    fn collect(&mut self) -> bool {
        let mut new = false;
        let mut i = 0;
        let counters: Vec<&'static mut [u8]> = self.counters().collect();
        for c in counters {
            for x in c.iter_mut() {
                if *x != 0 {
                    let b = bucket(*x);
                    if self.seen[i] & b == 0 {
                        self.seen[i] |= b;
                        new = true;
                    }
                    *x = 0;
                }
                i += 1;
            }
        }
        new
    }

    fn edges(&self) -> usize {
        self.seen.iter().filter(|s| **s != 0).count()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Keepalived,
    Ipvsadm,
    Config,
    Vrrp,
    Tls,
}

impl Target {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "keepalived" => Target::Keepalived,
            "ipvsadm" => Target::Ipvsadm,
            "config" => Target::Config,
            "vrrp" => Target::Vrrp,
            "tls" => Target::Tls,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Target::Keepalived => "keepalived",
            Target::Ipvsadm => "ipvsadm",
            Target::Config => "config",
            Target::Vrrp => "vrrp",
            Target::Tls => "tls",
        }
    }
    fn run(self, data: &[u8]) {
        let text = || String::from_utf8_lossy(data);
        match self {
            Target::Keepalived => lbd::import::fuzz::keepalived(&text()),
            Target::Ipvsadm => lbd::import::fuzz::ipvsadm(&text()),
            Target::Config => lbd::import::fuzz::config(&text()),
            Target::Vrrp => lbd::import::fuzz::vrrp(data),
            Target::Tls => lbd::import::fuzz::tls(data),
        }
    }
    /// A new input from `base`: text targets through lbd's text mutator,
    /// the binary VRRP target byte-wise.
    fn mutate(self, rng: &mut Rng, base: &[u8]) -> Vec<u8> {
        if !matches!(self, Target::Vrrp | Target::Tls) {
            return mutate(rng, &String::from_utf8_lossy(base)).into_bytes();
        }
        let mut b = base.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len() + 1);
            match rng.below(6) {
                0 if at < b.len() => b[at] ^= 1 << rng.below(8),
                1 if at < b.len() => b[at] = [0, 1, 0x7f, 0x80, 0xff, 0x21, 0x31, 112][rng.below(8)],
                2 => b.insert(at, rng.below(256) as u8),
                3 if at < b.len() => {
                    b.remove(at);
                }
                4 if at < b.len() => b[at] = rng.below(256) as u8,
                _ => b.truncate(at.max(8)),
            }
        }
        b
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

const USAGE: &str =
    "usage: lbd-fuzz keepalived|ipvsadm|config|vrrp|tls [--secs N] [--seed N] [--max-len BYTES] [SEED...]
       lbd-fuzz keepalived|ipvsadm|config|vrrp|tls --repro FILE

Runs for --secs (default 600) from the built-in seeds plus SEED files or
directories; new corpus entries go to target/fuzz/corpus/TARGET/, findings
(panics, inputs slower than 1 s) to target/fuzz/artifacts/TARGET/.
Exit status 1 when anything was found.";

fn root() -> PathBuf {
    // lbd/fuzz -> the repository.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_seeds(path: &Path, out: &mut Vec<Vec<u8>>) {
    if path.is_dir() {
        let mut names: Vec<PathBuf> =
            std::fs::read_dir(path).into_iter().flatten().flatten().map(|e| e.path()).collect();
        names.sort();
        for n in names {
            read_seeds(&n, out);
        }
    } else if let Ok(b) = std::fs::read(path) {
        out.push(b);
    }
}

/// The seeds: the import fixtures and the shared seeds (keepalived.conf and
/// ipvsadm scripts) for the importers; the documented example and what the
/// importer makes of those; VRRPv2 adverts, bare and in IPv4, for `vrrp`.
fn builtin_seeds(t: Target) -> Vec<Vec<u8>> {
    let r = root();
    if t == Target::Tls {
        // A TLS 1.3 ServerHello (x25519 share), a TLS 1.2 one, an alert.
        let hello13 = format!(
            "160303005a020000560303{}00130100002e002b0002030400330024001d0020{}",
            "11".repeat(32),
            "09".repeat(32)
        );
        return [
            hello13.as_str(),
            "160303002a020000260303aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa00c02f0000",
            "15030300020246",
        ]
        .iter()
        .map(|h| unhex(h))
        .collect();
    }
    if t == Target::Vrrp {
        return [
            "21336401000155bdc0a864640000000000000000",
            "4500002800000000ff70b5b6c0a864f4e000001221336401000155bdc0a864640000000000000000",
            "4500002c00000000ff70b5b1c0a864f5e0000012213496020101f7780a0000010a0000027365637265740000",
        ]
        .iter()
        .map(|h| unhex(h))
        .collect();
    }
    let mut raw = Vec::new();
    read_seeds(&r.join("lbd/src/import/fixtures"), &mut raw);
    read_seeds(&r.join("../shared/seeds"), &mut raw);
    match t {
        Target::Keepalived | Target::Ipvsadm | Target::Vrrp | Target::Tls => raw,
        Target::Config => {
            let mut out = Vec::new();
            read_seeds(&r.join("docs/example.toml"), &mut out);
            for raw in &raw {
                let text = String::from_utf8_lossy(raw);
                let k = lbd::import::keepalived::import_text(&lbd::import::Pasted, &text, "seed");
                let i = lbd::import::ipvsadm::import_text(&text, "seed");
                out.extend(k.toml.into_iter().chain(i.toml).map(String::into_bytes));
            }
            out
        }
    }
}

fn hash(s: &[u8]) -> u64 {
    // FNV-1a: stable names for saved inputs.
    s.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn save(dir: &Path, prefix: &str, text: &[u8]) -> PathBuf {
    let _ = std::fs::create_dir_all(dir);
    let p = dir.join(format!("{prefix}-{:016x}", hash(text)));
    let _ = std::fs::write(&p, text);
    p
}

/// The last panic's message and place, recorded by the hook.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(target) = args.first().and_then(|a| Target::parse(a)) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let mut secs = 600u64;
    let mut seed = 0x5eed_f022u64;
    let mut max_len = 64 * 1024usize;
    let mut repro = None;
    let mut extra = Vec::new();
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> u64 {
            it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{what} takes a number\n{USAGE}");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--secs" => secs = num("--secs"),
            "--seed" => seed = num("--seed"),
            "--max-len" => max_len = num("--max-len") as usize,
            "--repro" => repro = it.next().cloned(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            p => extra.push(PathBuf::from(p)),
        }
    }
    if let Some(f) = repro {
        let data = std::fs::read(&f).expect("read the input");
        target.run(&data);
        println!("{f}: no panic");
        return;
    }

    std::panic::set_hook(Box::new(|info| {
        let place = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if let Ok(mut p) = LAST_PANIC.lock() {
            *p = Some(format!("{place}: {}", msg.lines().next().unwrap_or("")));
        }
    }));

    let name = target.name();
    let out_dir = root().join("target/fuzz");
    let corpus_dir = out_dir.join("corpus").join(name);
    let art_dir = out_dir.join("artifacts").join(name);
    let mut cov = Coverage::new();
    if cov.regions.is_empty() {
        eprintln!("lbd-fuzz: no coverage counters: build it from lbd/fuzz (its .cargo/config.toml sets the flags)");
        std::process::exit(2);
    }
    let mut corpus = builtin_seeds(target);
    for p in &extra {
        read_seeds(p, &mut corpus);
    }
    read_seeds(&corpus_dir, &mut corpus);
    corpus.retain(|s| s.len() <= max_len);
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let mut rng = Rng(seed | 1);
    let mut crashes: BTreeMap<String, PathBuf> = BTreeMap::new();
    let slow = std::cell::Cell::new(0usize);
    let mut execs = 0u64;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut last_report = start;

    let run_one = |text: &[u8], cov: &mut Coverage, crashes: &mut BTreeMap<String, PathBuf>| -> bool {
        cov.clear();
        let t0 = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| target.run(text)));
        let took = t0.elapsed();
        let new = cov.collect();
        if r.is_err() {
            let what = LAST_PANIC.lock().ok().and_then(|mut p| p.take()).unwrap_or_else(|| "panic".into());
            if !crashes.contains_key(&what) {
                let p = save(&art_dir, "crash", text);
                println!("CRASH {what}\n      input: {}", p.display());
                crashes.insert(what, p);
            }
        } else if took > Duration::from_secs(1) {
            let p = save(&art_dir, "slow", text);
            println!("SLOW {} ms: {}", took.as_millis(), p.display());
            slow.set(slow.get() + 1);
        }
        new
    };

    // The seeds first: they set the coverage the mutants must beat.
    let seeds = corpus.clone();
    for s in &seeds {
        run_one(s, &mut cov, &mut crashes);
        execs += 1;
    }
    println!(
        "lbd-fuzz {name}: {} seed(s), {} counters, {} edges after the seeds; {secs} s",
        seeds.len(),
        cov.seen.len(),
        cov.edges()
    );
    while Instant::now() < deadline {
        let base = &corpus[rng.below(corpus.len())];
        let mut text = target.mutate(&mut rng, base);
        if rng.below(8) == 0 {
            // Crossover: a piece of another entry spliced in (a text target
            // reads invalid UTF-8 at the seams as U+FFFD, as it reads a file).
            let other = &corpus[rng.below(corpus.len())];
            let a = rng.below(other.len() + 1);
            let b = (a + rng.below(400)).min(other.len());
            let at = rng.below(text.len() + 1);
            text.splice(at..at, other[a..b].iter().copied());
        }
        text.truncate(max_len);
        execs += 1;
        if run_one(&text, &mut cov, &mut crashes) {
            save(&corpus_dir, "cov", &text);
            corpus.push(text);
        }
        if last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            let s = start.elapsed().as_secs_f64();
            println!(
                "{:>6.0} s  {execs} execs ({:.0}/s)  corpus {}  edges {}  crashes {}  slow {}",
                s,
                execs as f64 / s,
                corpus.len(),
                cov.edges(),
                crashes.len(),
                slow.get()
            );
        }
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "lbd-fuzz {name}: done after {s:.0} s: {execs} execs ({:.0}/s), corpus {} ({} new), edges {}, {} distinct crash(es), {} slow input(s)",
        execs as f64 / s,
        corpus.len(),
        corpus.len() - seeds.len(),
        cov.edges(),
        crashes.len(),
        slow.get()
    );
    for (what, p) in &crashes {
        println!("  {what}\n    {}", p.display());
    }
    if !crashes.is_empty() || slow.get() > 0 {
        std::process::exit(1);
    }
}
