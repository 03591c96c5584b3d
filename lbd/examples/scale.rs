//! Host-side cost of the pure parts at scale: parse + validate a config of
//! N services × 4 reals, compute desired state, plan from empty and plan a
//! one-weight change against a converged table. `cargo run --release -p lbd --example scale -- 10000`
use std::time::{Duration, Instant};

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let text = lbd_scale_config(n, 1);
    println!("raw toml parse: {:?}", raw_parse(&text));
    let t = Instant::now();
    let cfg = lbd::config::parse(&text, "scale.toml").expect("valid");
    let parse = t.elapsed();
    let t = Instant::now();
    let desired = lbd::reconcile::desired(&cfg);
    let des = t.elapsed();
    let mut actual = lbd::reconcile::Actual::default();
    let mut drains = lbd::reconcile::Drains::default();
    let t = Instant::now();
    let plan = lbd::reconcile::plan(&desired, &actual, Duration::ZERO, &mut drains, 0);
    let plan_empty = t.elapsed();
    lbd::reconcile::simulate(&mut actual, &plan.ops);
    let text2 = lbd_scale_config(n, 2);
    let t = Instant::now();
    let cfg2 = lbd::config::parse(&text2, "scale.toml").expect("valid");
    let desired2 = lbd::reconcile::desired(&cfg2);
    let plan2 = lbd::reconcile::plan(&desired2, &actual, Duration::ZERO, &mut drains, 0);
    let change = t.elapsed();
    println!("rss after parse: {} KiB", rss_kb());
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    println!("rss after trim: {} KiB", rss_kb());
    let n2 = plan2.ops.len();
    drop((cfg2, desired2, plan2, text2));
    println!("cfg: {} services; rss {} KiB", cfg.services.len(), rss_kb());
    println!(
        "{n} services: {} bytes; parse+validate {parse:?}; desired {des:?}; plan from empty {plan_empty:?} ({} ops); \
         weight change parse+plan {change:?} ({} ops)",
        text.len(),
        plan.ops.len(),
        n2
    );
}

fn lbd_scale_config(n: usize, w: u32) -> String {
    let mut s = String::from("[[interfaces]]\nname = \"eth0\"\naddresses = [\"10.0.0.1/8\"]\n");
    for i in 0..n {
        let (a, b) = (i / 250, i % 250 + 1);
        s.push_str(&format!("\n[[services]]\naddress = \"172.16.{a}.{b}:80\"\nscheduler = \"wrr\"\n"));
        for r in 0..4 {
            let weight = if i == 0 && r == 0 { w } else { 1 };
            s.push_str(&format!("[[services.reals]]\naddress = \"10.{}.{}.{}\"\nweight = {weight}\n", r + 1, a, b));
        }
    }
    s
}

fn raw_parse(text: &str) -> Duration {
    let t = Instant::now();
    let _ = toml::de::DeTable::parse(text).expect("toml");
    t.elapsed()
}

/// VmRSS in KiB.
pub fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}
