//! What lbd keeps on its heap for a large config, through the daemon's own
//! paths (control request → parse → validate → overlay → desired → fast pass
//! → the kernel worker's view), counted by a global allocator. Byte counts,
//! not RSS or time: the same build allocates the same sizes, so the bounds
//! below hold on any machine and fail when a per-service or per-real copy
//! creeps back (issue 3: 42 MiB live at 10,000 services × 4 reals before
//! check specs were boxed and the overlay stopped keeping per-real slots;
//! 14 MiB after).
//!
//! `LBD_HEAP_SERVICES=10000 cargo test --release -p lbd --test memory -- --nocapture`
//! prints the figures at the bench's size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use lbd::ctl::proto::{Command, Request};
use lbd::daemon::{Daemon, Options};
use lbd::ipvs::{self, DestEntry, ServiceEntry, ServiceKey, Timeouts};
use lbd::kernel::Kernel;
use lbd::logring::LogRing;
use lbd::reconcile::Op;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

#[allow(unsafe_code)]
// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are plain atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let q = unsafe { System.realloc(p, l, n) };
        if !q.is_null() {
            if n >= l.size() {
                grew(n - l.size());
            } else {
                LIVE.fetch_sub(l.size() - n, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A kernel that accepts every change and keeps nothing, so the heap counted
/// is lbd's alone (its view of the table included).
struct Null;

impl Kernel for Null {
    fn info(&mut self) -> Result<ipvs::Info, String> {
        Ok(ipvs::Info { version: 0x010201, conn_tab_size: 4096 })
    }
    fn services(&mut self) -> Result<Vec<ServiceEntry>, String> {
        Ok(Vec::new())
    }
    fn dests(&mut self, _: &ServiceKey) -> Result<Vec<DestEntry>, String> {
        Ok(Vec::new())
    }
    fn execute(&mut self, ops: &[Op]) -> Vec<Result<(), String>> {
        ops.iter().map(|_| Ok(())).collect()
    }
    fn timeouts(&mut self) -> Result<Timeouts, String> {
        Ok(Timeouts { tcp: 900, tcp_fin: 120, udp: 300 })
    }
    fn set_timeouts(&mut self, _: Timeouts) -> Result<(), String> {
        Ok(())
    }
    fn zero(&mut self, _: Option<&ServiceKey>) -> Result<(), String> {
        Ok(())
    }
    fn daemons(&mut self) -> Result<Vec<ipvs::Daemon>, String> {
        Ok(Vec::new())
    }
    fn new_daemon(&mut self, _: &ipvs::Daemon) -> Result<(), String> {
        Ok(())
    }
    fn del_daemon(&mut self, _: ipvs::DaemonState) -> Result<(), String> {
        Ok(())
    }
}

/// The bench's config (`lvsbox-bench ipvs`): `n` services × 4 DR reals,
/// `w` the first real's weight.
fn config(n: usize, w: u32) -> String {
    let mut s =
        String::from("[[interfaces]]\nname = \"eth0\"\naddresses = [\"10.77.0.2/16\"]\n[ipvs]\ndrain_timeout = 0\n");
    s.push_str(&lbd::config::scale_services(n, w));
    s
}

/// (live, peak) since `base`, in bytes; resets the peak.
fn take(base: usize) -> (usize, usize) {
    let live = LIVE.load(Relaxed);
    let peak = PEAK.swap(live, Relaxed);
    (live.saturating_sub(base), peak.saturating_sub(base))
}

fn mib(b: usize) -> f64 {
    b as f64 / 1048576.0
}

#[test]
fn heap_after_applying_many_services_stays_small_and_does_not_grow() {
    let n: usize = std::env::var("LBD_HEAP_SERVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let dir = std::env::temp_dir().join(format!("lbd-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let opts = Options::in_dir(&dir);
    let (first, second) = (config(n, 1), config(n, 9));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let figures = rt.block_on(async {
        let d = Daemon::new(opts, Box::new(Null), LogRing::new());
        d.reconcile().await;
        let base = LIVE.load(Relaxed);
        PEAK.store(base, Relaxed);
        let call = |cmd| d.handle(Request { id: 1, cmd });
        let r = call(Command::Apply { text: first.clone(), confirm_within: None }).await;
        assert!(r.ok, "{:?}", r.error);
        drop(r);
        let one = take(base);
        let r =
            call(Command::SetWeight { service: "tcp 172.16.0.1:80".into(), real: "10.77.1.1".into(), weight: 7 }).await;
        assert!(r.ok, "{:?}", r.error);
        drop(r);
        let r = call(Command::Apply { text: second.clone(), confirm_within: None }).await;
        assert!(r.ok, "{:?}", r.error);
        drop(r);
        let two = take(base);
        (one, two)
    });
    let _ = std::fs::remove_dir_all(&dir);
    let ((live1, peak1), (live2, peak2)) = figures;
    let text = first.len();
    println!(
        "{n} services x 4 reals ({:.2} MiB of TOML): live heap after the first apply {:.2} MiB ({} B/service), \
         peak {:.2} MiB; after a weight edit and a second apply {:.2} MiB, peak {:.2} MiB",
        mib(text),
        mib(live1),
        live1 / n,
        mib(peak1),
        mib(live2),
        mib(peak2)
    );
    // What stays: the config (~600 B/service here), its real-server offsets,
    // the desired table and the worker's view (~350 B each), the persisted
    // text is not kept. 42 MiB at 10,000 services (4.4 KB/service) before.
    assert!(live1 < 2_000 * n, "{live1} B live after the first apply: {} B/service", live1 / n);
    // A second apply replaces everything: nothing of the old config stays.
    assert!(live2 < live1 + live1 / 20, "live heap grew from {live1} to {live2} B across a second apply");
    // The peak is the TOML parser's: toml keeps the whole document's tokens,
    // events and span-carrying tree at once (about 42 times the text, 112 MiB
    // for the bench's 2.7 MB), plus what stays. A second parse or a copy of
    // the tree would double it.
    assert!(peak1 < 55 * text + live1, "peak {peak1} B for {text} B of TOML");
    assert!(peak2 < 55 * text + 2 * live1, "peak {peak2} B for {text} B of TOML across the second apply");
}
