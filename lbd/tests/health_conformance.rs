//! Health-check state machine conformance, table-driven: each file in
//! `tests/health_conformance/` holds scenarios. A scenario gives the check's
//! timing and initial state; each step advances the simulated clock to `at`
//! (ms) — firing the armed timer when it falls due, which asks for a probe —
//! then, with `result` (`"ok REASON"` / `"fail REASON"`), answers the probe
//! in flight. The actions of the step are compared with `expect` (exact, in
//! order) and the state afterwards with `state`.

use std::time::Duration;

use lbd::health::config::Timing;
use lbd::health::fsm::{Action, Event, Health, Machine, Outcome};
use serde_json::Value;

fn timing(v: &Value) -> Timing {
    let d = Timing::default();
    let u = |k: &str, def: u64| v.get(k).and_then(Value::as_u64).unwrap_or(def);
    Timing {
        delay_loop_ms: u("delay_loop_ms", 1000),
        connect_timeout_ms: u("connect_timeout_ms", 1000),
        retry: u("retry", u64::from(d.retry)) as u32,
        delay_before_retry_ms: u("delay_before_retry_ms", 1000),
        warmup_ms: u("warmup_ms", 0),
        rise: u("rise", 1) as u32,
        fall: u("fall", 1) as u32,
        alpha: true,
    }
}

fn health(s: &str) -> Health {
    match s {
        "up" => Health::Up,
        "down" => Health::Down,
        "unknown" => Health::Unknown,
        _ => panic!("state {s}"),
    }
}

fn run(name: &str, sc: &Value) {
    let initial = health(sc.get("initial").and_then(Value::as_str).unwrap_or("unknown"));
    let mut m = Machine::new(timing(&sc["timing"]), initial, 1);
    let mut armed: Option<Duration> = None;
    let mut in_flight = false;
    let mut now = Duration::ZERO;
    let note = |acts: Vec<Action>, log: &mut Vec<String>, armed: &mut Option<Duration>, in_flight: &mut bool| {
        for a in acts {
            match &a {
                Action::Arm(at) => *armed = Some(*at),
                Action::Probe => *in_flight = true,
                Action::Change { .. } => {}
            }
            log.push(a.to_string());
        }
    };
    let mut log = Vec::new();
    note(m.handle(now, Event::Start), &mut log, &mut armed, &mut in_flight);
    for (k, step) in sc["steps"].as_array().expect("steps").iter().enumerate() {
        let at = Duration::from_millis(step["at"].as_u64().expect("at"));
        assert!(at >= now, "{name} step {k}: time goes backwards");
        let mut log = Vec::new();
        // Fire the armed timer if it falls due by `at` (once: the probe it
        // starts must be answered by a step).
        if let Some(t) = armed
            && t <= at
            && !in_flight
        {
            armed = None;
            now = t;
            note(m.handle(now, Event::Timer), &mut log, &mut armed, &mut in_flight);
        }
        now = at;
        if let Some(r) = step.get("result").and_then(Value::as_str) {
            assert!(in_flight, "{name} step {k}: a result but no probe in flight");
            in_flight = false;
            let (verdict, reason) = r.split_once(' ').unwrap_or((r, ""));
            let o =
                Outcome { ok: verdict == "ok", reason: reason.to_string().into(), latency: Duration::from_millis(1) };
            note(m.handle(now, Event::Result(o)), &mut log, &mut armed, &mut in_flight);
        }
        if let Some(e) = step.get("expect") {
            let want: Vec<String> = e.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
            assert_eq!(log, want, "{name} step {k} (at {} ms)", at.as_millis());
        }
        if let Some(st) = step.get("state").and_then(Value::as_str) {
            assert_eq!(m.health(), health(st), "{name} step {k}: state");
        }
    }
}

#[test]
fn scenarios() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/health_conformance");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut n = 0;
    for f in files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for sc in v.as_array().unwrap() {
            run(&format!("{}: {}", f.file_name().unwrap().to_string_lossy(), sc["name"].as_str().unwrap()), sc);
            n += 1;
        }
    }
    assert!(n >= 6, "only {n} scenarios");
}
