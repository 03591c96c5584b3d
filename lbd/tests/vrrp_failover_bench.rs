//! Client-observed outage when the master director dies (and when it is
//! stopped with SIGTERM), lbd vs keepalived,
//! on the host (namespaces, no TCG). Root only; not part of `cargo test`:
//!
//! ```sh
//! cargo test -p lbd --release --test vrrp_failover_bench -- --nocapture
//! ```
//!
//! Each run: two directors (priority 150 and 100, VRRPv3) share a VIP and
//! both run a tiny TCP listener on it; a client namespace connects to the
//! VIP every 20 ms. The master "dies" (its link goes down, then its VRRP
//! speaker is SIGKILLed: a power cut), and the outage is the
//! time from the last successful connect before the kill to the first one
//! after. The kill lands at 0, 1/5, .. 4/5 of an advert interval after the
//! master's takeover (the same phases for both speakers), since the outage is
//! Master_Down_Interval minus the time since the last advert. Median of 5
//! runs per (speaker, advert interval); the figures are
//! printed and written to `target/vrrp-failover.json`.

mod vrrp_lab;
use vrrp_lab as netns;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use netns::*;

const PORT: u16 = 8080;
const RUNS: usize = 5;

fn listener(lab: &Lab, i: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    lab.in_ns(i, move || {
        let l = TcpListener::bind(("0.0.0.0", PORT)).expect("listen");
        l.set_nonblocking(true).unwrap();
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((s, _)) => drop(s),
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    })
}

/// Probes every 20 ms; returns (time, ok) samples until `stop`.
fn client(lab: &Lab, i: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<(Instant, bool)>> {
    let to: SocketAddr = (lab.vip(), PORT).into();
    lab.in_ns(i, move || {
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) && out.len() < 5000 {
            let t = Instant::now();
            let ok = TcpStream::connect_timeout(&to, Duration::from_millis(20)).is_ok();
            out.push((t, ok));
            let spent = t.elapsed();
            if spent < Duration::from_millis(20) {
                std::thread::sleep(Duration::from_millis(20) - spent);
            }
        }
        out
    })
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Speaker {
    Lbd,
    Keepalived,
}

fn one_run(who: Speaker, advert: &str, phase: f64, graceful: bool) -> Duration {
    let mut lab = Lab::new(&["a", "b", "c"]);
    let vip = lab.vip();
    let stop = Arc::new(AtomicBool::new(false));
    let la = listener(&lab, 0, stop.clone());
    let lb = listener(&lab, 1, stop.clone());
    let adv = Duration::from_secs_f64(advert.parse().unwrap());
    let master = match who {
        Speaker::Lbd => {
            let m = lab.start_lbd(0, &lab.lbd_config(0, &lbd_instance(vip, 60, 150, 3, advert, "")));
            lab.start_lbd(1, &lab.lbd_config(1, &lbd_instance(vip, 60, 100, 3, advert, "")));
            m
        }
        Speaker::Keepalived => {
            let m = lab.start_keepalived(0, &keepalived_conf(vip, 60, 150, 3, advert, None));
            lab.start_keepalived(1, &keepalived_conf(vip, 60, 100, 3, advert, None));
            m
        }
    };
    wait_for(adv * 6 + Duration::from_secs(3), || lab.has_vip(0) && !lab.has_vip(1)).expect("master settles");
    let cstop = Arc::new(AtomicBool::new(false));
    let cl = client(&lab, 2, cstop.clone());
    // Serving before the kill (and the backup settled as backup). The kill
    // lands at `phase` (0..1) of an advert interval after the master took
    // over, so the runs cover the whole cycle the same way for both speakers.
    std::thread::sleep(adv * 2 + Duration::from_millis(500) + adv.mul_f64(phase));
    let t_kill = if graceful {
        // Orderly stop (upgrade, reboot): SIGTERM, the speaker hands over.
        let t = Instant::now();
        lab.term(master);
        t
    } else {
        // Power cut: the link goes first, and the outage counts from the
        // instant it is down (nothing leaves the box after it); then the
        // speaker is SIGKILLed.
        lab.unplug(0);
        let t = Instant::now();
        lab.kill(master);
        t
    };
    wait_for(adv * 5 + Duration::from_secs(5), || lab.has_vip(1)).expect("backup takes the VIP");
    // Let the client see it come back.
    std::thread::sleep(Duration::from_millis(600));
    cstop.store(true, Ordering::Relaxed);
    let samples = cl.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let _ = la.join();
    let _ = lb.join();
    if std::env::var_os("VRRP_BENCH_DEBUG").is_some() {
        let mut prev = None;
        for (t, ok) in &samples {
            if prev != Some(*ok) {
                let rel = if *t >= t_kill { (*t - t_kill).as_secs_f64() } else { -(t_kill - *t).as_secs_f64() };
                eprintln!("{who:?} {advert}: {rel:+.3} s ok={ok}");
                prev = Some(*ok);
            }
        }
    }
    let last_ok =
        samples.iter().filter(|(t, ok)| *ok && *t < t_kill).map(|(t, _)| *t).max().expect("served before the kill");
    let back =
        samples.iter().filter(|(t, ok)| *ok && *t > t_kill).map(|(t, _)| *t).min().expect("served after the takeover");
    back - last_ok
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn failover_outage_lbd_vs_keepalived() {
    require(true);
    if let Ok(n) = std::env::var("VRRP_BENCH_ONE") {
        let who = if n.starts_with('k') { Speaker::Keepalived } else { Speaker::Lbd };
        println!("{who:?}: {:?}", one_run(who, "0.1", 0.0, false));
        return;
    }
    let mut rows = Vec::new();
    for graceful in [false, true] {
        for advert in ["1", "0.1"] {
            let mut lbd = Vec::new();
            let mut ka = Vec::new();
            for k in 0..RUNS {
                let phase = k as f64 / RUNS as f64;
                lbd.push(one_run(Speaker::Lbd, advert, phase, graceful));
                ka.push(one_run(Speaker::Keepalived, advert, phase, graceful));
            }
            let (ml, mk) = (median(lbd.clone()), median(ka.clone()));
            let how = if graceful { "SIGTERM (graceful)" } else { "power cut (link down + SIGKILL)" };
            println!(
                "{how}, advert {advert} s: lbd median {:.0} ms {:?} | keepalived median {:.0} ms {:?}",
                ml.as_secs_f64() * 1e3,
                lbd.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
                mk.as_secs_f64() * 1e3,
                ka.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
            );
            rows.push(serde_json::json!({
                "stop": if graceful { "sigterm" } else { "power_cut" },
                "advert_s": advert,
                "lbd_ms": lbd.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
                "keepalived_ms": ka.iter().map(|d| d.as_millis() as u64).collect::<Vec<_>>(),
                "lbd_median_ms": ml.as_millis() as u64,
                "keepalived_median_ms": mk.as_millis() as u64,
            }));
            // Master_Down_Interval at priority 100 plus one probe period and slack
            // (a graceful stop must beat it: the backup waits only Skew_Time).
            let adv = Duration::from_secs_f64(advert.parse().unwrap());
            let bound = if graceful {
                adv * 156 / 256 + Duration::from_millis(250)
            } else {
                adv * 3 + adv * 156 / 256 + adv + Duration::from_millis(250)
            };
            assert!(ml <= bound, "lbd's median outage {ml:?} exceeds {bound:?} ({how}, advert {advert} s)");
        }
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/vrrp-failover.json");
    let _ = std::fs::write(&out, serde_json::to_string_pretty(&rows).unwrap());
}
