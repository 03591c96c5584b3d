//! Periodic verify passes must not churn lbd's long-lived heap, nor hold
//! the whole table's dump while they run.
//!
//! Every 2 s lbd re-reads the kernel (at 10,000 services: the service list
//! and a window of 1,000 services' real servers). If the blocks that read
//! allocates replace the ones the view holds, the view migrates, pass after
//! pass, into blocks allocated between the dump's transient buffers, and
//! those scattered live blocks keep freed pages resident (the RSS a box shows
//! after an apply grew by megabytes that `malloc_trim` cannot give back; the
//! live heap, which `memory.rs` counts, stays the same). So this counts what
//! a few passes over an unchanged table allocate and leave alive: a global
//! allocator tags each block with the window it was allocated in.
//!
//! The same allocator records the most bytes allocated in the window and
//! alive at once: what a pass holds at its peak on top of what lbd keeps. A
//! pass that collected the whole service list (with its counters), moved the
//! view into a map to merge it and built a new one held that for every
//! service, 15 to 18 MiB at 10,000 in a guest; a pass that compares the
//! kernel's services with what it saw last as they arrive holds only the
//! real-server lists of its window and the planner's maps.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use lbd::ctl::proto::{Command, Request};
use lbd::daemon::{Daemon, Options};
use lbd::kernel::SharedSim;
use lbd::logring::LogRing;

struct Tagged;

/// The window being counted (0: none).
static WINDOW: AtomicU64 = AtomicU64::new(0);
/// Blocks and bytes allocated in the current window and still alive.
static BLOCKS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
/// The most `BYTES` has been in the current window.
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Every block carries a header in front of it; its last 8 bytes hold the
/// window the block was allocated in.
fn header(l: Layout) -> usize {
    l.align().max(16)
}

fn outer(l: Layout) -> Option<Layout> {
    Layout::from_size_align(l.size().checked_add(header(l))?, l.align().max(16)).ok()
}

#[allow(unsafe_code)]
// SAFETY: blocks come from the system allocator with room for the header in
// front (at least 16 bytes, a multiple of the alignment, so the caller's
// pointer keeps its alignment); the header is written on allocation and
// read on deallocation of the same block with the same layout. `realloc` is
// the trait's default (alloc, copy, dealloc through these two).
unsafe impl GlobalAlloc for Tagged {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let Some(o) = outer(l) else { return std::ptr::null_mut() };
        // SAFETY: `o` has a non-zero size.
        let base = unsafe { System.alloc(o) };
        if base.is_null() {
            return base;
        }
        let w = WINDOW.load(Relaxed);
        if w != 0 {
            BLOCKS.fetch_add(1, Relaxed);
            let now = BYTES.fetch_add(l.size(), Relaxed) + l.size();
            PEAK.fetch_max(now, Relaxed);
        }
        // SAFETY: the header lies inside the block; 8-aligned (16 | header).
        unsafe {
            let p = base.add(header(l));
            p.sub(8).cast::<u64>().write(w);
            p
        }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe {
            let w = p.sub(8).cast::<u64>().read();
            if w != 0 && w == WINDOW.load(Relaxed) {
                BLOCKS.fetch_sub(1, Relaxed);
                BYTES.fetch_sub(l.size(), Relaxed);
            }
            System.dealloc(p.sub(header(l)), outer(l).expect("allocated with this layout"));
        }
    }
}

#[global_allocator]
static ALLOC: Tagged = Tagged;

fn config(n: usize) -> String {
    let mut s = String::from("[ipvs]\ndrain_timeout = 0\n");
    s.push_str(&lbd::config::scale_services(n, 1));
    s
}

#[test]
fn verify_passes_over_an_unchanged_table_leave_no_new_long_lived_blocks() {
    // Above lbd::worker::FULL_DUMP_MAX: the windowed reads of a large table.
    // `LBD_CHURN_SERVICES=10000` prints the figures at the bench's size.
    let n = std::env::var("LBD_CHURN_SERVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let dir = std::env::temp_dir().join(format!("lbd-churn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let opts = Options::in_dir(&dir);
    let text = config(n);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (blocks, bytes, peak) = rt.block_on(async {
        let d = Daemon::new(opts, Box::new(SharedSim::new()), LogRing::new());
        d.reconcile().await;
        let r = d.handle(Request { id: 1, cmd: Command::Apply { text, confirm_within: None } }).await;
        assert!(r.ok, "{:?}", r.error);
        drop(r);
        // Settle: the first verify passes after the apply.
        for _ in 0..2 {
            let r = d.reconcile().await.expect("a pass");
            assert_eq!((&r.error, r.applied_count), (&None, 0), "{r:?}");
        }
        WINDOW.store(1, Relaxed);
        // Four passes: every service's real servers re-read twice.
        for _ in 0..4 {
            let r = d.reconcile().await.expect("a pass");
            assert_eq!((&r.error, r.applied_count), (&None, 0), "{r:?}");
            assert!(r.verified_services >= 1000, "{r:?}");
        }
        let out = (BLOCKS.load(Relaxed), BYTES.load(Relaxed), PEAK.load(Relaxed));
        WINDOW.store(0, Relaxed);
        out
    });
    let _ = std::fs::remove_dir_all(&dir);
    println!("{n} services: 4 verify passes left {blocks} new blocks ({bytes} B) alive, held {peak} B at their peak");
    // What may stay: the last pass's report, the reader's list of the
    // services it saw, runtime bookkeeping: a handful of blocks. Replacing
    // the view's entries left thousands (a scheduler string per service and
    // a real-server vector per service re-read).
    assert!(blocks < n / 20, "{blocks} blocks allocated by 4 verify passes are still alive ({bytes} B)");
    // At its peak a pass holds its window's real-server lists (1,000
    // services' here) and the planner's key map: 375 KB here, 188 B a
    // service. Holding the service list and merging through a map of the
    // whole view held 1.52 MB (761 B a service, before the netlink dump's
    // own buffers, which a simulated kernel does not have).
    assert!(peak < n * 300, "a verify pass held {peak} B at its peak ({} B a service)", peak / n);
}
