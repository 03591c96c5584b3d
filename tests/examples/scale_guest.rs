//! Looks inside a debug guest holding a large table: applies N services x 4
//! reals, then prints lbd's memory map and a timed weight edit.
//! `cargo run --release -p tests --example scale_guest -- 10000`
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let net = "[[interfaces]]\nname = \"eth0\"\naddresses = [\"10.77.0.2/16\"]\n";
    let mut cfg = String::from(net);
    for i in 0..n {
        let (a, b) = (i / 250, i % 250 + 1);
        cfg.push_str(&format!("\n[[services]]\naddress = \"172.16.{a}.{b}:80\"\nscheduler = \"wrr\"\n"));
        for r in 0..4 {
            cfg.push_str(&format!("[[services.reals]]\naddress = \"10.77.{}.{}\"\n", r + 1, b));
        }
    }
    let mut lab = tests::lab::Lab::new()?;
    let tap = lab.add_tap()?;
    let mut spec = tests::guest::GuestSpec::debug("scale").config(net).nic(&tap, &tests::guest::mac(1, 0));
    spec.memory = 1536;
    let cfg2 = cfg.replacen("[[services.reals]]\n", "[[services.reals]]\nweight = 2\n", 1);
    spec.files = vec![("bench.toml".into(), cfg.into_bytes()), ("bench-w.toml".into(), cfg2.into_bytes())];
    let mut g = tests::guest::Guest::boot(&lab, &spec)?;
    g.wait_ready()?;
    let rss = "grep VmRSS /proc/$(pidof lbd)/status";
    let steps = ["lbd ctl apply /cfg/bench.toml > /dev/null; sleep 8".to_string(), "sleep 20".into()];
    for c in &steps {
        let (_, out) = g.sh_timeout(&format!("{c}; {rss}"), Duration::from_secs(300))?;
        println!("after `{c}`: {}", out.trim());
    }
    for c in [
        "awk '/^[0-9a-f]+-/{name=$6; if(name==\"\") name=\"[anon]\"; range=$1} /^Rss:/{if($2>256) print $2\" kB \"range\" \"name}' /proc/$(pidof lbd)/smaps | sort -rn | head -15",
        "grep -E 'Threads' /proc/$(pidof lbd)/status",
        "lbd ctl weight 'tcp 172.16.0.1:80' 10.77.1.1 7 | grep -A4 timing",
        "lbd ctl weight 'tcp 172.16.0.1:80' 10.77.1.1 8 | grep -A4 timing",
        "time dd if=/cfg/lvsbox.toml of=/cfg/x.tmp bs=1M conv=fsync 2>&1 | tail -1",
    ] {
        let (code, out) = g.sh_timeout(c, Duration::from_secs(300))?;
        println!("$ {c}  [exit {code}]\n{out}");
    }
    Ok(())
}
