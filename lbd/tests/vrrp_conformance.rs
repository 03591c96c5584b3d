//! VRRP state machine conformance, table-driven as holo-vrrp does it: each
//! file in `tests/vrrp_conformance/` holds scenarios, each a list of timed
//! steps. A step advances the clock to `at` (ms), firing every timer that
//! falls due in time order, then applies its event; the actions collected
//! (timers + event) are compared with `expect` (exact, in order), or with
//! `contains` (each present) and `counts` (how many times), and `state`
//! checks instance states afterwards.
//!
//! With `"wire": true`, instances are separate boxes on one link: an advert
//! one of them sends reaches every other instance with the same VRID. A
//! step's `wire` switches that on or off (partition and heal).
//!
//! Events: `NAME startup | advert SRC PRIO [INTERVAL_CS] | link IF up|down |
//! shutdown | maintenance on|off | timer master_down|advert|preempt|garp`.
//! Actions print as `NAME: <Action as Display>`.

use std::net::IpAddr;
use std::time::Duration;

use lbd::vrrp::fsm::{Action, Event, GarpParams, Instance, Machine, Params, Timer, Track};
use lbd::vrrp::packet::Version;
use serde_json::Value;

fn ms(v: &Value) -> Duration {
    Duration::from_nanos((v.as_f64().expect("a number of ms") * 1e6).round() as u64)
}

fn params(name: &str, v: &Value) -> Params {
    let g = |k: &str| v.get(k);
    let garp = g("garp").cloned().unwrap_or(Value::Null);
    let gd = |k: &str, d: f64| garp.get(k).and_then(Value::as_f64).unwrap_or(d);
    Params {
        name: name.to_string(),
        interface: g("interface").and_then(Value::as_str).unwrap_or("eth0").to_string(),
        version: if g("version").and_then(Value::as_u64) == Some(2) { Version::V2 } else { Version::V3 },
        vrid: g("vrid").and_then(Value::as_u64).unwrap_or(1) as u8,
        priority: g("priority").and_then(Value::as_u64).unwrap_or(100) as u8,
        interval: g("interval_ms").map(ms).unwrap_or(Duration::from_secs(1)),
        preempt: g("preempt").and_then(Value::as_bool).unwrap_or(true),
        preempt_delay: g("preempt_delay_ms").map(ms).unwrap_or_default(),
        primary: g("primary").and_then(Value::as_str).unwrap_or("10.0.0.1").parse().unwrap(),
        // Quiet GARP by default so expectations stay short; scenarios about
        // GARP pacing set it.
        garp: GarpParams {
            repeat: gd("repeat", 1.0) as u8,
            interval: Duration::from_micros((gd("interval_ms", 0.0) * 1000.0) as u64),
            delay: Duration::from_micros((gd("delay_ms", 0.0) * 1000.0) as u64),
            refresh: Duration::from_micros((gd("refresh_ms", 0.0) * 1000.0) as u64),
            refresh_repeat: gd("refresh_repeat", 1.0) as u8,
            lower_prio_repeat: gd("lower_prio_repeat", 1.0) as u8,
        },
        track: g("track")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|t| Track {
                        ifname: t[0].as_str().unwrap().to_string(),
                        weight: t[1].as_i64().unwrap() as i16,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        sync_daemon: g("sync_daemon").and_then(Value::as_bool).unwrap_or(false),
        down_adverts: 3,
    }
}

fn event(words: &[&str]) -> Event {
    match words {
        ["startup"] => Event::Startup,
        ["advert", src, prio] => {
            Event::Advert { src: src.parse().unwrap(), priority: prio.parse().unwrap(), interval_cs: 100 }
        }
        ["advert", src, prio, iv] => Event::Advert {
            src: src.parse().unwrap(),
            priority: prio.parse().unwrap(),
            interval_cs: iv.parse().unwrap(),
        },
        ["link", ifname, s] => Event::Link { ifname: ifname.to_string(), up: *s == "up" },
        ["shutdown"] => Event::Shutdown,
        ["maintenance", s] => Event::Maintenance(*s == "on"),
        ["timer", t] => Event::Timer(Timer::parse(t).expect("timer name")),
        _ => panic!("unknown event {words:?}"),
    }
}

struct Run {
    m: Machine,
    names: Vec<String>,
    now: Duration,
    wire: bool,
    log: Vec<String>,
}

impl Run {
    fn apply(&mut self, now: Duration, i: usize, ev: Event) {
        let mut work = vec![(i, ev)];
        let mut guard = 0;
        while let Some((i, ev)) = work.pop() {
            guard += 1;
            assert!(guard < 10_000, "event storm");
            for (j, a) in self.m.handle(now, i, ev) {
                self.log.push(format!("{}: {a}", self.names[j]));
                if self.wire
                    && let Action::SendAdvert { priority } = a
                {
                    let p = self.m.instances[j].params();
                    let (vrid, src, iv) = (p.vrid, p.primary, (p.interval.as_millis() / 10) as u16);
                    for k in 0..self.m.instances.len() {
                        if k != j && self.m.instances[k].params().vrid == vrid {
                            work.insert(0, (k, Event::Advert { src, priority, interval_cs: iv }));
                        }
                    }
                }
            }
        }
    }

    fn advance(&mut self, to: Duration) {
        for _ in 0..1_000_000 {
            let due = (0..self.m.instances.len())
                .filter_map(|i| self.m.instances[i].next_deadline().map(|(t, at)| (at, i, t)))
                .filter(|&(at, _, _)| at <= to)
                .min();
            let Some((at, i, t)) = due else {
                self.now = to;
                return;
            };
            self.now = at;
            self.apply(at, i, Event::Timer(t));
        }
        panic!("timers never settle");
    }
}

fn run_scenario(sc: &Value) -> Result<(), String> {
    let insts = sc["instances"].as_object().ok_or("no instances")?;
    let names: Vec<String> = insts.keys().cloned().collect();
    let instances = insts.iter().map(|(n, v)| Instance::new(params(n, v))).collect();
    let groups = sc
        .get("groups")
        .and_then(Value::as_array)
        .map(|gs| {
            gs.iter()
                .map(|g| {
                    g.as_array()
                        .unwrap()
                        .iter()
                        .map(|n| names.iter().position(|x| x == n.as_str().unwrap()).unwrap())
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut r = Run {
        m: Machine::new(instances, groups),
        names: names.clone(),
        now: Duration::ZERO,
        wire: sc.get("wire").and_then(Value::as_bool).unwrap_or(false),
        log: Vec::new(),
    };
    for (n, step) in sc["steps"].as_array().ok_or("no steps")?.iter().enumerate() {
        let at = ms(&step["at"]);
        if at < r.now {
            return Err(format!("step {n}: time goes backwards"));
        }
        r.log.clear();
        r.advance(at);
        if let Some(w) = step.get("wire").and_then(Value::as_bool) {
            r.wire = w;
        }
        if let Some(d) = step.get("do").and_then(Value::as_str) {
            let words: Vec<&str> = d.split_whitespace().collect();
            let i = names.iter().position(|x| x == words[0]).ok_or(format!("step {n}: no instance {}", words[0]))?;
            r.apply(at, i, event(&words[1..]));
        }
        let ctx = |what: &str| {
            format!("step {n} (at {} ms, {:?}): {what}\nactions: {:#?}", at.as_secs_f64() * 1e3, step.get("do"), r.log)
        };
        if let Some(exp) = step.get("expect").and_then(Value::as_array) {
            let exp: Vec<&str> = exp.iter().map(|e| e.as_str().unwrap()).collect();
            if exp != r.log {
                return Err(ctx(&format!("expected exactly {exp:#?}")));
            }
        }
        for e in step.get("contains").and_then(Value::as_array).into_iter().flatten() {
            let e = e.as_str().unwrap();
            if !r.log.iter().any(|l| l == e) {
                return Err(ctx(&format!("missing `{e}`")));
            }
        }
        for e in step.get("absent").and_then(Value::as_array).into_iter().flatten() {
            let e = e.as_str().unwrap();
            if r.log.iter().any(|l| l == e) {
                return Err(ctx(&format!("unexpected `{e}`")));
            }
        }
        for (e, c) in step.get("counts").and_then(Value::as_object).into_iter().flatten() {
            let got = r.log.iter().filter(|l| *l == e).count() as u64;
            if Some(got) != c.as_u64() {
                return Err(ctx(&format!("`{e}` {got} times, expected {c}")));
            }
        }
        for (name, want) in step.get("state").and_then(Value::as_object).into_iter().flatten() {
            let i = names.iter().position(|x| x == name).ok_or("state of unknown instance")?;
            let got = r.m.instances[i].state().to_string();
            if got != want.as_str().unwrap() {
                return Err(ctx(&format!("{name} is {got}, expected {want}")));
            }
        }
        for (name, want) in step.get("effective_priority").and_then(Value::as_object).into_iter().flatten() {
            let i = names.iter().position(|x| x == name).ok_or("unknown instance")?;
            let got = r.m.instances[i].effective_priority();
            if Some(u64::from(got)) != want.as_u64() {
                return Err(ctx(&format!("{name} effective priority {got}, expected {want}")));
            }
        }
        if let Some(iv) = step.get("master_adver_interval_ms").and_then(Value::as_object) {
            for (name, want) in iv {
                let i = names.iter().position(|x| x == name).ok_or("unknown instance")?;
                if r.m.instances[i].master_adver_interval() != ms(want) {
                    return Err(ctx(&format!(
                        "{name} Master_Adver_Interval {:?}",
                        r.m.instances[i].master_adver_interval()
                    )));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn conformance_scenarios() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vrrp_conformance");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let (mut ran, mut failed) = (0, Vec::new());
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "json")) {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for sc in doc.as_array().expect("a file is a list of scenarios") {
            ran += 1;
            let name = format!("{}: {}", f.file_name().unwrap().to_string_lossy(), sc["name"].as_str().unwrap_or("?"));
            if let Err(e) = run_scenario(sc) {
                failed.push(format!("{name}\n{e}"));
            }
        }
    }
    assert!(ran >= 20, "only {ran} scenarios found in {}", dir.display());
    assert!(failed.is_empty(), "{} of {ran} scenarios failed:\n\n{}", failed.len(), failed.join("\n\n"));
}

/// A sanity check of the runner itself: a wrong expectation must fail.
#[test]
fn runner_detects_a_wrong_expectation() {
    let sc: Value = serde_json::from_str(
        r#"{"name": "x", "instances": {"a": {}}, "steps": [{"at": 0, "do": "a startup", "state": {"a": "master"}}]}"#,
    )
    .unwrap();
    assert!(run_scenario(&sc).is_err());
    let _: IpAddr = "10.0.0.1".parse().unwrap();
}
