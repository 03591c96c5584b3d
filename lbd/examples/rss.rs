//! lbd's resident memory across two whole-config applies of the bench's
//! 10,000-service config, through the daemon's own paths on the host (the
//! simulated kernel's table counts too). Allocator settings as lbd's main.
//! `cargo run --release -p lbd --example rss -- 10000`; with `TIMING=1` it
//! prints the parse time and the cost of the daemon's compacting JSON copy.
use lbd::ctl::proto::{Command, Request};
use lbd::daemon::{Daemon, Options};
use lbd::kernel::SimKernel;
use lbd::logring::LogRing;

fn status(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn config(n: usize, w: u32) -> String {
    let mut s =
        String::from("[[interfaces]]\nname = \"eth0\"\naddresses = [\"10.77.0.2/16\"]\n[ipvs]\ndrain_timeout = 0\n");
    s.push_str(&lbd::config::scale_services(n, w));
    s
}

fn main() {
    #[allow(unsafe_code)]
    // SAFETY: allocator tunables, before any thread starts (as lbd's main).
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    if std::env::var("TIMING").is_ok() {
        let text = config(n, 1);
        let mut raw = std::time::Duration::MAX;
        for _ in 0..5 {
            let t = std::time::Instant::now();
            drop(toml::de::DeTable::parse(&text).expect("toml"));
            raw = raw.min(t.elapsed());
        }
        println!("raw toml parse (fastest of 5) {raw:?}");
        for _ in 0..3 {
            let t = std::time::Instant::now();
            let c = lbd::config::parse_with_spans(&text, "x").unwrap();
            println!("parse {:?}", t.elapsed());
            let t = std::time::Instant::now();
            let b = serde_json::to_vec(&c.0).unwrap();
            let back: lbd::config::Config = serde_json::from_slice(&b).unwrap();
            println!("json round trip {:?} ({} bytes)", t.elapsed(), b.len());
            assert!(back == c.0);
            drop(c);
        }
        return;
    }
    let dir = std::env::temp_dir().join(format!("lbd-rss-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let d = Daemon::new(Options::in_dir(&dir), Box::new(SimKernel::new()), LogRing::new());
        d.reconcile().await;
        println!("start: rss {} KiB", status("VmRSS"));
        for (i, w) in [1, 9, 1, 9].into_iter().enumerate() {
            // As lbd ctl sends it: JSON text, parsed into a request.
            let line =
                serde_json::to_string(&serde_json::json!({"id": 1, "cmd": "apply", "text": config(n, w)})).unwrap();
            let req: Request = match serde_json::from_str(&line) {
                Ok(r) => r,
                Err(_) => Request { id: 1, cmd: Command::Apply { text: config(n, w), confirm_within: None } },
            };
            drop(line);
            let r = d.handle(req).await;
            assert!(r.ok, "{:?}", r.error);
            drop(r);
            println!("apply {}: rss {} KiB, hwm {} KiB", i + 1, status("VmRSS"), status("VmHWM"));
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
