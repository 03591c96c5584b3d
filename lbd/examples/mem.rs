//! Memory of lbd's long-lived structures at N services x 4 reals (host).
//! `cargo run --release -p lbd --example mem -- 10000`
use std::time::Duration;

fn rss_kb() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn trim() {
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only releases free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let mut text = String::from("[[interfaces]]\nname = \"eth0\"\naddresses = [\"10.0.0.1/8\"]\n");
    for i in 0..n {
        let (a, b) = (i / 250, i % 250 + 1);
        text.push_str(&format!("\n[[services]]\naddress = \"172.16.{a}.{b}:80\"\nscheduler = \"wrr\"\n"));
        for r in 0..4 {
            text.push_str(&format!("[[services.reals]]\naddress = \"10.{}.{a}.{b}\"\n", r + 1));
        }
    }
    trim();
    let base = rss_kb();
    let (cfg0, spans) = lbd::config::parse_with_spans(&text, "t").unwrap();
    trim();
    let parsed = rss_kb();
    let cfg = if std::env::var("COMPACT").is_ok() {
        let c = cfg0.clone();
        drop(cfg0);
        c
    } else {
        cfg0
    };
    trim();
    println!("parse left {} KiB; compacted copy: {} KiB", parsed - base, rss_kb() - base);
    let after_cfg = rss_kb();
    let desired = lbd::reconcile::desired_shared(&cfg);
    trim();
    let after_desired = rss_kb();
    let mut view = lbd::reconcile::Actual::default();
    let plan = lbd::reconcile::plan(&desired, &view, Duration::ZERO, &mut Default::default(), 0);
    lbd::reconcile::simulate(&mut view, &plan.ops);
    drop(plan);
    trim();
    let after_view = rss_kb();
    println!(
        "{n} services: config {} KiB, desired {} KiB, view {} KiB (text {} KiB, spans {} reals)",
        after_cfg - base,
        after_desired - after_cfg,
        after_view - after_desired,
        text.len() / 1024,
        spans.reals.len()
    );
    println!(
        "sizes: Service {} B, Real {} B, ipvs::Service {} B, Dest {} B, DestEntry {} B, ServiceEntry {} B",
        size_of::<lbd::config::Service>(),
        size_of::<lbd::config::Real>(),
        size_of::<lbd::ipvs::Service>(),
        size_of::<lbd::ipvs::Dest>(),
        size_of::<lbd::ipvs::DestEntry>(),
        size_of::<lbd::ipvs::ServiceEntry>()
    );
    std::hint::black_box((cfg, desired, view));
}
