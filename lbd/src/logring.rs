//! A fixed-capacity log ring (memory stays bounded however long the box
//! runs) fed by `tracing`, so the console and `lbd ctl logs` can show recent
//! events.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Entries kept.
pub const CAPACITY: usize = 512;
/// Bytes kept per message (longer ones are cut).
pub const MSG_BYTES: usize = 240;

/// One log line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Sequence number (monotonic; lets a reader ask for newer entries).
    pub seq: u64,
    /// Milliseconds since the process started.
    pub t_ms: u64,
    /// `error`, `warn`, `info`, `debug`, `trace`.
    pub level: String,
    /// The message with its fields.
    pub msg: String,
}

struct Slot {
    seq: u64,
    t_ms: u64,
    level: Level,
    msg: heapless::String<MSG_BYTES>,
}

struct Inner {
    slots: heapless::Deque<Slot, CAPACITY>,
    next: u64,
}

/// The ring; cheap to clone (shared).
#[derive(Clone)]
pub struct LogRing {
    inner: Arc<Mutex<Inner>>,
    start: Instant,
}

impl Default for LogRing {
    fn default() -> Self {
        Self::new()
    }
}

impl LogRing {
    /// An empty ring.
    pub fn new() -> Self {
        LogRing { inner: Arc::new(Mutex::new(Inner { slots: heapless::Deque::new(), next: 1 })), start: Instant::now() }
    }

    /// Appends a line, dropping the oldest when full.
    pub fn push(&self, level: Level, msg: &str) {
        let mut s = heapless::String::<MSG_BYTES>::new();
        for c in msg.chars() {
            if s.push(c).is_err() {
                break;
            }
        }
        let t_ms = self.start.elapsed().as_millis() as u64;
        let Ok(mut g) = self.inner.lock() else { return };
        if g.slots.is_full() {
            g.slots.pop_front();
        }
        let seq = g.next;
        g.next += 1;
        let _ = g.slots.push_back(Slot { seq, t_ms, level, msg: s });
    }

    /// Entries with `seq > after`, oldest first, at most `max`; the newest
    /// ones when more are available.
    pub fn since(&self, after: u64, max: usize) -> Vec<Entry> {
        let Ok(g) = self.inner.lock() else { return Vec::new() };
        let v: Vec<Entry> = g
            .slots
            .iter()
            .filter(|s| s.seq > after)
            .map(|s| Entry {
                seq: s.seq,
                t_ms: s.t_ms,
                level: s.level.as_str().to_ascii_lowercase(),
                msg: s.msg.as_str().to_string(),
            })
            .collect();
        let skip = v.len().saturating_sub(max);
        v.into_iter().skip(skip).collect()
    }
}

struct MsgVisitor(String);

impl Visit for MsgVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for LogRing {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut v = MsgVisitor(String::new());
        event.record(&mut v);
        self.push(*event.metadata().level(), v.0.trim_start());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_ordered() {
        let r = LogRing::new();
        for i in 0..(CAPACITY + 10) {
            r.push(Level::INFO, &format!("line {i}"));
        }
        let all = r.since(0, usize::MAX);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].msg, "line 10");
        assert_eq!(all.last().unwrap().msg, format!("line {}", CAPACITY + 9));
        let newer = r.since(all[all.len() - 3].seq, 100);
        assert_eq!(newer.len(), 2);
        assert_eq!(r.since(0, 5).len(), 5);
        assert_eq!(r.since(0, 5)[4].msg, format!("line {}", CAPACITY + 9));
    }

    #[test]
    fn long_messages_are_cut() {
        let r = LogRing::new();
        r.push(Level::WARN, &"é".repeat(500));
        let e = &r.since(0, 1)[0];
        assert!(e.msg.len() <= MSG_BYTES);
        assert_eq!(e.level, "warn");
    }
}
