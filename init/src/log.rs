//! init's logging: `/dev/kmsg` (`<5>init: ...`, so the kernel console prints
//! NOTICE and worse with `quiet` once console_loglevel is 6) plus a bounded
//! in-memory ring the console can show through init's socket.
//!
//! Lines logged before `/dev` is mounted are kept in the ring and replayed to
//! kmsg as soon as it can be opened.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Mutex;

use heapless::{Deque, String as HString};
use lbd::initctl::{Level, LogEntry};

/// Ring capacity (entries).
pub const RING_CAP: usize = 512;
/// Longest message kept in the ring (bytes; longer ones are cut at a char boundary).
pub const MSG_CAP: usize = 256;

/// One ring entry, fixed size.
#[derive(Clone, Debug)]
pub struct Entry {
    /// ms since boot.
    pub t_ms: u64,
    /// Severity.
    pub level: Level,
    /// Message, cut to [`MSG_CAP`].
    pub msg: HString<MSG_CAP>,
}

/// A fixed-capacity ring of log entries: the oldest is dropped when full.
pub struct Ring<const N: usize> {
    q: Deque<Entry, N>,
    dropped: u64,
}

impl<const N: usize> Default for Ring<N> {
    fn default() -> Self {
        Ring { q: Deque::new(), dropped: 0 }
    }
}

/// Cuts `s` to at most `cap` bytes on a char boundary, marking the cut with `…`.
fn bounded<const C: usize>(s: &str) -> HString<C> {
    let mut out = HString::new();
    if s.len() <= C {
        let _ = out.push_str(s);
        return out;
    }
    let ell = '…';
    let mut end = C - ell.len_utf8();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let _ = out.push_str(&s[..end]);
    let _ = out.push(ell);
    out
}

impl<const N: usize> Ring<N> {
    /// Appends, dropping the oldest entry when full.
    pub fn push(&mut self, t_ms: u64, level: Level, msg: &str) {
        if self.q.is_full() {
            self.q.pop_front();
            self.dropped += 1;
        }
        let _ = self.q.push_back(Entry { t_ms, level, msg: bounded(msg) });
    }
    /// Entries, oldest first.
    pub fn entries(&self) -> Vec<LogEntry> {
        self.q.iter().map(|e| LogEntry { t_ms: e.t_ms, level: e.level, msg: e.msg.to_string() }).collect()
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.q.len()
    }
    /// How many were dropped because the ring was full.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

struct Logger {
    ring: Ring<RING_CAP>,
    kmsg: Option<std::fs::File>,
    /// Ring entries not yet written to kmsg (logged before /dev existed).
    pending: usize,
    debug: bool,
}

static LOG: Mutex<Logger> =
    Mutex::new(Logger { ring: Ring { q: Deque::new(), dropped: 0 }, kmsg: None, pending: 0, debug: false });

/// ms since boot (CLOCK_MONOTONIC, the kernel log's clock).
pub fn now_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| (t.tv_sec() as u64) * 1000 + (t.tv_nsec() as u64) / 1_000_000)
        .unwrap_or(0)
}

/// One line: a panic message or a child's output may contain newlines, which
/// would split the record on the console.
fn flatten(msg: &str) -> std::borrow::Cow<'_, str> {
    if msg.contains(['\n', '\r']) { msg.replace(['\n', '\r'], " ").into() } else { msg.into() }
}

fn kmsg_line(level: Level, msg: &str) -> Vec<u8> {
    // One write = one record; kmsg takes at most ~1 KiB per record.
    let msg: HString<960> = bounded(&flatten(msg));
    format!("<{}>init: {}\n", level.kmsg_priority(), msg).into_bytes()
}

fn lock() -> std::sync::MutexGuard<'static, Logger> {
    LOG.lock().unwrap_or_else(|p| p.into_inner())
}

/// Opens `/dev/kmsg` (after devtmpfs is mounted) and replays what was logged before.
pub fn open_kmsg() {
    let mut l = lock();
    if l.kmsg.is_some() {
        return;
    }
    if let Ok(mut f) = OpenOptions::new().write(true).open("/dev/kmsg") {
        let skip = l.ring.len().saturating_sub(l.pending);
        for e in l.ring.entries().into_iter().skip(skip) {
            let _ = f.write_all(&kmsg_line(e.level, &e.msg));
        }
        l.pending = 0;
        l.kmsg = Some(f);
    }
}

/// Turns debug logging on or off.
pub fn set_debug(on: bool) {
    lock().debug = on;
}

/// Whether debug logging is on (to skip measuring what only debug logs).
pub fn debug_on() -> bool {
    lock().debug
}

/// Logs one line.
pub fn log(level: Level, msg: &str) {
    let mut l = lock();
    if level == Level::Debug && !l.debug {
        return;
    }
    l.ring.push(now_ms(), level, &flatten(msg));
    let line = kmsg_line(level, msg);
    match l.kmsg.as_mut() {
        Some(f) => {
            let _ = f.write_all(&line);
        }
        None => {
            l.pending = (l.pending + 1).min(RING_CAP);
            // Before /dev/kmsg exists, stderr is /dev/console (the kernel's).
            let _ = std::io::stderr().write_all(&line[3..]);
        }
    }
}

/// Logs from a panic hook: never blocks on the lock.
pub fn log_nonblocking(level: Level, msg: &str) {
    if let Ok(mut l) = LOG.try_lock() {
        l.ring.push(now_ms(), level, msg);
        if let Some(f) = l.kmsg.as_mut() {
            let _ = f.write_all(&kmsg_line(level, msg));
            return;
        }
    }
    let _ = std::io::stderr().write_all(format!("init: {msg}\n").as_bytes());
}

/// Boot milestones (name, ms since boot, ms the CPUs had been idle then),
/// in the order they happened.
static MILESTONES: Mutex<Vec<(&'static str, u64, Option<u64>)>> = Mutex::new(Vec::new());

/// The CPUs' idle time since boot in ms (/proc/uptime's second field; the
/// sum over CPUs), None before /proc is mounted.
pub fn idle_ms() -> Option<u64> {
    let t = std::fs::read_to_string("/proc/uptime").ok()?;
    let s: f64 = t.split_whitespace().nth(1)?.parse().ok()?;
    Some((s * 1000.0) as u64)
}

/// Records that boot reached `what` now (kept for the one-line summary
/// [`milestones_line`] logs when lbd is ready).
pub fn milestone(what: &'static str) {
    let idle = idle_ms();
    if let Ok(mut m) = MILESTONES.lock() {
        m.push((what, now_ms(), idle));
    }
}

/// Fills in the idle time of milestones recorded before /proc was mounted
/// (`init`: the kernel's own idle time before it ran /init).
pub fn milestone_idle_now() {
    let idle = idle_ms();
    if let Ok(mut m) = MILESTONES.lock() {
        for e in m.iter_mut().filter(|e| e.2.is_none()) {
            e.2 = idle;
        }
    }
}

/// `boot: init 4.34 s, modules 6.61 s, ...` for the milestones so far.
pub fn milestones_line() -> String {
    let m = MILESTONES.lock().map(|m| m.clone()).unwrap_or_default();
    format_milestones(&m.iter().map(|(w, t, _)| (*w, *t)).collect::<Vec<_>>())
}

/// `boot idle: init 0.21 s, coldplug 0.40 s, ...`: how long the CPUs had
/// sat idle by each milestone, which says whether a phase computes or waits.
pub fn idle_line() -> String {
    let m = MILESTONES.lock().map(|m| m.clone()).unwrap_or_default();
    let parts: Vec<String> =
        m.iter().filter_map(|(w, _, i)| i.map(|i| format!("{w} {}.{:02} s", i / 1000, i % 1000 / 10))).collect();
    format!("boot idle: {} (CPU idle since kernel start)", parts.join(", "))
}

/// The summary line of [`milestones_line`] (pure).
pub fn format_milestones(m: &[(&str, u64)]) -> String {
    let parts: Vec<String> = m.iter().map(|(w, t)| format!("{w} {}.{:02} s", t / 1000, t % 1000 / 10)).collect();
    format!("boot: {} (since kernel start)", parts.join(", "))
}

/// The ring's entries, oldest first.
pub fn entries() -> Vec<LogEntry> {
    lock().ring.entries()
}

macro_rules! error { ($($a:tt)*) => { $crate::log::log(lbd::initctl::Level::Error, &format!($($a)*)) } }
macro_rules! warning { ($($a:tt)*) => { $crate::log::log(lbd::initctl::Level::Warn, &format!($($a)*)) } }
macro_rules! notice { ($($a:tt)*) => { $crate::log::log(lbd::initctl::Level::Notice, &format!($($a)*)) } }
macro_rules! info { ($($a:tt)*) => { $crate::log::log(lbd::initctl::Level::Info, &format!($($a)*)) } }
macro_rules! debug { ($($a:tt)*) => { $crate::log::log(lbd::initctl::Level::Debug, &format!($($a)*)) } }
pub(crate) use {debug, error, info, notice, warning as warn};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_keeps_newest() {
        let mut r: Ring<4> = Ring::default();
        for i in 0..10 {
            r.push(i, Level::Info, &format!("m{i}"));
        }
        let e = r.entries();
        assert_eq!(e.len(), 4);
        assert_eq!(e.iter().map(|e| e.msg.as_str()).collect::<Vec<_>>(), ["m6", "m7", "m8", "m9"]);
        assert_eq!(e[0].t_ms, 6);
        assert_eq!(r.dropped(), 6);
    }

    #[test]
    fn long_messages_are_cut_on_char_boundaries() {
        let mut r: Ring<2> = Ring::default();
        let long = "é".repeat(MSG_CAP); // 2 bytes each
        r.push(0, Level::Error, &long);
        let m = &r.entries()[0].msg;
        assert!(m.len() <= MSG_CAP, "{}", m.len());
        assert!(m.ends_with('…'));
        r.push(0, Level::Error, "short");
        assert_eq!(r.entries()[1].msg, "short");
    }

    #[test]
    fn milestone_line_format() {
        assert_eq!(
            format_milestones(&[("init", 4340), ("modules", 6005), ("lbd ready", 12_999)]),
            "boot: init 4.34 s, modules 6.00 s, lbd ready 12.99 s (since kernel start)"
        );
    }

    #[test]
    fn kmsg_format() {
        assert_eq!(kmsg_line(Level::Notice, "lvsbox 0.1.0"), b"<5>init: lvsbox 0.1.0\n");
        assert_eq!(kmsg_line(Level::Error, "x")[..3], *b"<3>");
        assert!(kmsg_line(Level::Info, &"x".repeat(5000)).len() < 1000);
        assert_eq!(kmsg_line(Level::Error, "PANIC: at x.rs:1:\nboom"), b"<3>init: PANIC: at x.rs:1: boom\n");
    }
}
