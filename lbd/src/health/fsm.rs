//! The per-check state machine. Pure: time is passed in, events in,
//! actions out; the engine runs the probes and the timers it asks for.
//!
//! A *round* is one attempt, plus up to `retry` more attempts
//! `delay_before_retry` apart while the real is up (a failure of an up real
//! is confirmed before it counts). Rounds start every `delay_loop` (fixed
//! rate: the period does not stretch by the check's own duration; a round
//! that overruns is followed at once). `rise` successful rounds in a row bring
//! a down real up, `fall` failed rounds in a row take an up real down. A real
//! whose state is not known yet (never checked, `alpha`) takes the first
//! round's verdict at once: rise and fall damp flapping between known states.
//! Retries are skipped while the real is down or unknown: a failure there
//! changes nothing, so it is not worth a second attempt (keepalived retries
//! anyway, doubling its cost for dead reals).
//!
//! A round starts at the time its timer was armed for, not the time the timer
//! was seen to fire: a busy box that fires timers late does not stretch the
//! period by that lateness every round (it did: 1.14 s instead of 1 s with
//! 1,000 checks in a TCG guest). A timer more than a period late (a
//! suspended box) restarts the schedule from now instead of catching up.
//!
//! Checks are spread over their period: all of them start together (at
//! boot, or when a config adds them), but each is given a *phase*, the gap
//! between its first and second round (in `(0, delay_loop]`, see
//! [`Machine::with_phase`]). The first round still runs at once (a new real
//! gets its verdict without waiting), and from the second round on the
//! checks' rounds fall at different instants of the period instead of all
//! in the same one (2,000 connects in a burst, then an idle second). An
//! explicit `warmup` keeps keepalived's meaning instead: the first round waits
//! a random time up to `warmup`, and rounds follow every `delay_loop` from it.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use super::config::Timing;

/// What the checks say about a real.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not checked yet: out of service (unless adopted from the kernel).
    #[default]
    Unknown,
    /// Healthy.
    Up,
    /// Failed.
    Down,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        })
    }
}

/// The result of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether it passed.
    pub ok: bool,
    /// Why (`connected`, `status 200`, `connection refused`, `timeout`, `status 503`, …);
    /// the common reasons are static strings: a result costs no allocation.
    pub reason: Cow<'static, str>,
    /// How long it took.
    pub latency: Duration,
}

impl Outcome {
    /// A pass.
    pub fn ok(reason: impl Into<Cow<'static, str>>, latency: Duration) -> Self {
        Outcome { ok: true, reason: reason.into(), latency }
    }
    /// A failure.
    pub fn fail(reason: impl Into<Cow<'static, str>>, latency: Duration) -> Self {
        Outcome { ok: false, reason: reason.into(), latency }
    }
}

/// Inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The check starts (arms the first round).
    Start,
    /// The armed timer fired.
    Timer,
    /// The probe asked for finished.
    Result(Outcome),
}

/// Outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run one attempt now; answer with [`Event::Result`].
    Probe,
    /// Fire [`Event::Timer`] at this time (replaces any armed timer).
    Arm(Duration),
    /// The real's state changed.
    Change {
        /// Before.
        from: Health,
        /// After.
        to: Health,
        /// The attempt that decided it.
        reason: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Probe => f.write_str("probe"),
            Action::Arm(at) => write!(f, "arm {}ms", at.as_millis()),
            Action::Change { from, to, reason } => write!(f, "{from} -> {to} ({reason})"),
        }
    }
}

/// One check's state.
#[derive(Clone, Debug)]
pub struct Machine {
    timing: Timing,
    health: Health,
    ok_rounds: u32,
    fail_rounds: u32,
    /// Failed attempts in the current round.
    attempt: u32,
    in_flight: bool,
    round_start: Duration,
    /// The time the armed timer is due.
    armed: Option<Duration>,
    rounds: u64,
    rng: u64,
    /// The gap between the first and the second round.
    phase: Option<Duration>,
}

impl Machine {
    /// A check in state `initial` (`Up` for a real adopted from the kernel's
    /// table, `Unknown` otherwise); `seed` drives the warmup jitter.
    pub fn new(timing: Timing, initial: Health, seed: u64) -> Self {
        Machine {
            timing,
            health: initial,
            ok_rounds: 0,
            fail_rounds: 0,
            attempt: 0,
            in_flight: false,
            round_start: Duration::ZERO,
            armed: None,
            rounds: 0,
            rng: seed | 1,
            phase: None,
        }
    }

    /// Runs the second round `phase` after the first (clamped to
    /// `(0, delay_loop]`, so a real that dies after the first round is still
    /// seen within one period), and every `delay_loop` from there. Without
    /// it, or with a `warmup`, rounds run every `delay_loop` from the first.
    pub fn with_phase(mut self, phase: Duration) -> Self {
        let period = Duration::from_millis(self.timing.delay_loop_ms);
        self.phase = Some(phase.clamp(Duration::from_millis(1).min(period), period));
        self
    }

    /// The current state.
    pub fn health(&self) -> Health {
        self.health
    }

    /// Rounds started so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Its timing.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    fn random(&mut self) -> u64 {
        // xorshift64
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn next_round(&self, now: Duration) -> Duration {
        let gap = match self.phase {
            Some(p) if self.rounds == 1 && self.timing.warmup_ms == 0 => p,
            _ => Duration::from_millis(self.timing.delay_loop_ms),
        };
        (self.round_start + gap).max(now)
    }

    /// Feeds one event at `now`.
    pub fn handle(&mut self, now: Duration, ev: Event) -> Vec<Action> {
        match ev {
            Event::Start => {
                let w = self.timing.warmup_ms;
                let jitter = if w == 0 { 0 } else { self.random() % (w + 1) };
                vec![self.arm(now + Duration::from_millis(jitter))]
            }
            Event::Timer => {
                if self.in_flight {
                    return Vec::new();
                }
                let due = self.armed.take().filter(|&at| at <= now);
                if self.attempt == 0 {
                    let period = Duration::from_millis(self.timing.delay_loop_ms);
                    self.round_start = match due {
                        Some(at) if now - at < period => at,
                        _ => now,
                    };
                    self.rounds += 1;
                }
                self.in_flight = true;
                vec![Action::Probe]
            }
            Event::Result(o) => {
                if !self.in_flight {
                    return Vec::new();
                }
                self.in_flight = false;
                let mut out = Vec::new();
                if o.ok {
                    self.attempt = 0;
                    self.fail_rounds = 0;
                    self.ok_rounds = self.ok_rounds.saturating_add(1);
                    let rises = match self.health {
                        Health::Unknown => true,
                        Health::Down => self.ok_rounds >= self.timing.rise,
                        Health::Up => false,
                    };
                    if rises {
                        out.push(self.change(Health::Up, o.reason));
                    }
                    out.push(self.arm(self.next_round(now)));
                    return out;
                }
                self.attempt += 1;
                if self.health == Health::Up && self.attempt <= self.timing.retry {
                    return vec![self.arm(now + Duration::from_millis(self.timing.delay_before_retry_ms))];
                }
                self.attempt = 0;
                self.ok_rounds = 0;
                self.fail_rounds = self.fail_rounds.saturating_add(1);
                let falls = match self.health {
                    Health::Unknown => true,
                    Health::Up => self.fail_rounds >= self.timing.fall,
                    Health::Down => false,
                };
                if falls {
                    out.push(self.change(Health::Down, o.reason));
                }
                out.push(self.arm(self.next_round(now)));
                out
            }
        }
    }

    fn arm(&mut self, at: Duration) -> Action {
        self.armed = Some(at);
        Action::Arm(at)
    }

    fn change(&mut self, to: Health, reason: Cow<'static, str>) -> Action {
        let from = self.health;
        self.health = to;
        self.ok_rounds = 0;
        self.fail_rounds = 0;
        Action::Change { from, to, reason: reason.into_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(delay: u64, retry: u32, dbr: u64, rise: u32, fall: u32) -> Timing {
        Timing {
            delay_loop_ms: delay,
            connect_timeout_ms: 1000,
            retry,
            delay_before_retry_ms: dbr,
            warmup_ms: 0,
            rise,
            fall,
            alpha: true,
        }
    }
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn unknown_takes_the_first_verdict_and_rounds_are_fixed_rate() {
        let mut m = Machine::new(t(1000, 1, 200, 3, 3), Health::Unknown, 1);
        assert_eq!(m.handle(MS(0), Event::Start), vec![Action::Arm(MS(0))]);
        assert_eq!(m.handle(MS(0), Event::Timer), vec![Action::Probe]);
        let a = m.handle(MS(30), Event::Result(Outcome::ok("connected", MS(30))));
        assert_eq!(
            a,
            vec![
                Action::Change { from: Health::Unknown, to: Health::Up, reason: "connected".into() },
                Action::Arm(MS(1000))
            ]
        );
    }

    #[test]
    fn an_up_real_retries_before_falling_and_a_down_real_does_not() {
        let mut m = Machine::new(t(1000, 1, 200, 1, 1), Health::Up, 1);
        m.handle(MS(0), Event::Start);
        m.handle(MS(0), Event::Timer);
        assert_eq!(m.handle(MS(5), Event::Result(Outcome::fail("refused", MS(5)))), vec![Action::Arm(MS(205))]);
        m.handle(MS(205), Event::Timer);
        let a = m.handle(MS(210), Event::Result(Outcome::fail("refused", MS(5))));
        assert_eq!(
            a,
            vec![
                Action::Change { from: Health::Up, to: Health::Down, reason: "refused".into() },
                Action::Arm(MS(1000))
            ]
        );
        // Down: one attempt per round.
        m.handle(MS(1000), Event::Timer);
        assert_eq!(m.handle(MS(1003), Event::Result(Outcome::fail("refused", MS(3)))), vec![Action::Arm(MS(2000))]);
    }

    #[test]
    fn a_slow_round_is_followed_at_once() {
        let mut m = Machine::new(t(1000, 0, 0, 1, 1), Health::Up, 1);
        m.handle(MS(0), Event::Timer);
        assert_eq!(m.handle(MS(1500), Event::Result(Outcome::ok("ok", MS(1500)))), vec![Action::Arm(MS(1500))]);
    }

    #[test]
    fn a_late_timer_does_not_stretch_the_period() {
        let mut m = Machine::new(t(1000, 0, 0, 1, 1), Health::Up, 1);
        m.handle(MS(0), Event::Start);
        m.handle(MS(0), Event::Timer);
        assert_eq!(m.handle(MS(5), Event::Result(Outcome::ok("ok", MS(5)))), vec![Action::Arm(MS(1000))]);
        // Fired 80 ms late: the round still counts from 1000.
        m.handle(MS(1080), Event::Timer);
        assert_eq!(m.handle(MS(1085), Event::Result(Outcome::ok("ok", MS(5)))), vec![Action::Arm(MS(2000))]);
        // More than a period late (a suspended box): start again from now.
        m.handle(MS(3500), Event::Timer);
        assert_eq!(m.handle(MS(3505), Event::Result(Outcome::ok("ok", MS(5)))), vec![Action::Arm(MS(4500))]);
    }

    #[test]
    fn warmup_jitter_stays_within_bounds() {
        let mut tm = t(1000, 0, 0, 1, 1);
        tm.warmup_ms = 500;
        let mut seen = std::collections::HashSet::new();
        for seed in 0..50 {
            let mut m = Machine::new(tm, Health::Unknown, seed);
            let [Action::Arm(at)] = m.handle(MS(100), Event::Start)[..] else { panic!() };
            assert!(at >= MS(100) && at <= MS(600), "{at:?}");
            seen.insert(at);
        }
        assert!(seen.len() > 10, "the jitter spreads: {seen:?}");
    }

    #[test]
    fn a_phase_sets_the_second_round_and_the_period_follows() {
        let mut m = Machine::new(t(1000, 1, 200, 1, 1), Health::Unknown, 1).with_phase(MS(370));
        assert_eq!(m.handle(MS(0), Event::Start), vec![Action::Arm(MS(0))], "the first round runs at once");
        m.handle(MS(0), Event::Timer);
        let a = m.handle(MS(5), Event::Result(Outcome::ok("connected", MS(5))));
        assert_eq!(a.last(), Some(&Action::Arm(MS(370))));
        for k in 0..3u64 {
            let at = MS(370 + 1000 * k);
            assert_eq!(m.handle(at, Event::Timer), vec![Action::Probe]);
            assert_eq!(m.handle(at + MS(5), Event::Result(Outcome::ok("c", MS(5)))), vec![Action::Arm(at + MS(1000))]);
        }
        // Clamped to the period: a dead real is still seen within one.
        let mut m = Machine::new(t(1000, 0, 0, 1, 1), Health::Up, 1).with_phase(MS(5000));
        m.handle(MS(0), Event::Start);
        m.handle(MS(0), Event::Timer);
        assert_eq!(m.handle(MS(5), Event::Result(Outcome::ok("c", MS(5)))), vec![Action::Arm(MS(1000))]);
        // A first round that overruns its phase is followed at once.
        let mut m = Machine::new(t(1000, 0, 0, 1, 1), Health::Up, 1).with_phase(MS(10));
        m.handle(MS(0), Event::Start);
        m.handle(MS(0), Event::Timer);
        assert_eq!(m.handle(MS(40), Event::Result(Outcome::ok("c", MS(40)))), vec![Action::Arm(MS(40))]);
    }

    #[test]
    fn an_explicit_warmup_overrides_the_phase() {
        let mut tm = t(1000, 0, 0, 1, 1);
        tm.warmup_ms = 500;
        let mut m = Machine::new(tm, Health::Up, 7).with_phase(MS(100));
        let [Action::Arm(first)] = m.handle(MS(0), Event::Start)[..] else { panic!() };
        m.handle(first, Event::Timer);
        assert_eq!(
            m.handle(first + MS(5), Event::Result(Outcome::ok("c", MS(5)))),
            vec![Action::Arm(first + MS(1000))]
        );
    }

    #[test]
    fn stray_events_are_ignored() {
        let mut m = Machine::new(t(1000, 0, 0, 1, 1), Health::Up, 1);
        assert!(m.handle(MS(0), Event::Result(Outcome::ok("x", MS(0)))).is_empty());
        m.handle(MS(0), Event::Timer);
        assert!(m.handle(MS(1), Event::Timer).is_empty(), "no second probe while one is in flight");
    }
}
