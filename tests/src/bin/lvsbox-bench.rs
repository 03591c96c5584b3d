//! `lvsbox-bench [boot|ipvs|vrrp|all] [--runs N] [--services N]`: benchmarks
//! in QEMU guests (TCG), printing lvsbox's figures next to the peer's from the
//! same run where the peer can run in the same guests (ipvsadm; keepalived
//! as the VRRP pair), and the recorded keepalived figures otherwise
//! (../shared/notes/peer-behaviour.md).
//! Needs root and a built image (`cargo run --release -p image -- build`).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use image::Flavour;
use tests::guest::{Guest, GuestSpec, mac};
use tests::lab::Lab;
use tests::topo::{VRRP_VIP, VrrpLab};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn fmt_runs(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", ")
}

const BOOT_CFG: &str = r#"
[system]
hostname = "bench"
[[interfaces]]
name = "eth0"
addresses = ["10.77.0.2/24"]
[[services]]
address = "10.77.0.100:80"
scheduler = "rr"
[[services.reals]]
address = "10.77.0.11"
"#;

fn boot_once(uefi: bool) -> Result<(f64, f64)> {
    let mut lab = Lab::new()?;
    let tap = lab.add_tap()?;
    let spec = GuestSpec {
        name: if uefi { "bench-uefi".into() } else { "bench-direct".into() },
        flavour: Flavour::Production,
        config: Some(BOOT_CFG.into()),
        files: vec![],
        nics: vec![(tap, mac(1, 0))],
        append: vec!["lvsbox.consoles=".into()],
        memory: 768,
        uefi,
        initrd: None,
        console_socket: false,
        allow_reboot: false,
    };
    let mut g = Guest::boot(&lab, &spec)?;
    let banner = g.wait_for("lvsbox ", Duration::from_secs(180))?.as_secs_f64();
    let ready = g.wait_ready()?.as_secs_f64();
    Ok((banner, ready))
}

fn bench_boot(runs: usize) -> Result<()> {
    println!("== boot: QEMU start to `lbd ready` (production image, TCG, {runs} runs each)");
    for uefi in [false, true] {
        let (mut banners, mut readies) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (b, r) = boot_once(uefi)?;
            banners.push(b);
            readies.push(r);
        }
        let name = if uefi { "UEFI disk under OVMF" } else { "direct kernel boot" };
        println!(
            "{name:22} banner (init running) median {:.2} s [{}]; lbd ready median {:.2} s [{}]",
            median(&mut banners.clone()),
            fmt_runs(&banners),
            median(&mut readies.clone()),
            fmt_runs(&readies)
        );
    }
    println!(
        "peer (recorded in ../shared/notes/peer-behaviour.md, same kind of machine): Debian + keepalived \
         reached /init at 3.2-3.7 s and served the VIP at 8.2-8.9 s direct, 14.7-15.0 s under OVMF"
    );
    Ok(())
}

/// The bench director's network: a /16, so every real below is connected.
const SCALE_NET: &str = "[[interfaces]]\nname = \"eth0\"\naddresses = [\"10.77.0.2/16\"]\n";

/// A config of `n` services × 4 DR reals (and `w` as the first real's weight).
fn scale_config(n: usize, w: u32) -> String {
    let mut s = SCALE_NET.to_string();
    s.push_str("[ipvs]\ndrain_timeout = 0\n");
    for i in 0..n {
        let (a, b) = (i / 250, i % 250 + 1);
        s.push_str(&format!("\n[[services]]\naddress = \"172.16.{a}.{b}:80\"\nscheduler = \"wrr\"\n"));
        for r in 0..4 {
            let weight = if i == 0 && r == 0 { w } else { 1 };
            s.push_str(&format!("[[services.reals]]\naddress = \"10.77.{}.{}\"\nweight = {weight}\n", r + 1, b));
        }
    }
    s
}

/// The same table as `ipvsadm -R` input.
fn scale_rules(n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let (a, b) = (i / 250, i % 250 + 1);
        let vip = format!("172.16.{a}.{b}:80");
        s.push_str(&format!("-A -t {vip} -s wrr\n"));
        for r in 0..4 {
            s.push_str(&format!("-a -t {vip} -r 10.77.{}.{}:80 -g -w 1\n", r + 1, b));
        }
    }
    s
}

fn uptime_delta(out: &str) -> Result<f64> {
    let t: Vec<f64> = out.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    if t.len() < 2 {
        bail!("no timing in `{out}`");
    }
    Ok(t[t.len() - 1] - t[0])
}

/// Runs `cmd` in the guest between two /proc/uptime readings; returns seconds.
fn timed(g: &mut Guest, cmd: &str) -> Result<f64> {
    let out = g.sh_timeout(
        &format!("s=$(cut -d' ' -f1 /proc/uptime); {cmd} >/tmp/out 2>&1; r=$?; e=$(cut -d' ' -f1 /proc/uptime); echo $s $e; exit $r"),
        Duration::from_secs(900),
    )?;
    if out.0 != 0 {
        let detail = g.sh("tail -5 /tmp/out").map(|o| o.1).unwrap_or_default();
        bail!("`{cmd}` failed ({}): {detail}", out.0);
    }
    uptime_delta(&out.1)
}

fn scale_guest(name: &str, n: usize) -> Result<(Lab, Guest)> {
    let mut lab = Lab::new()?;
    let tap = lab.add_tap()?;
    let mut spec = GuestSpec::debug(name).config(SCALE_NET).nic(&tap, &mac(1, 0));
    spec.memory = 1536;
    spec.files = vec![
        ("bench.toml".into(), scale_config(n, 1).into_bytes()),
        ("bench-w.toml".into(), scale_config(n, 9).into_bytes()),
        ("bench.rules".into(), scale_rules(n).into_bytes()),
    ];
    let mut g = Guest::boot(&lab, &spec)?;
    g.wait_ready()?;
    Ok((lab, g))
}

fn count_services(g: &mut Guest) -> Result<(usize, usize)> {
    let out = g.sh_timeout("ipvsadm -Ln | grep -c '^TCP'; ipvsadm -Ln | grep -c -- '->'", Duration::from_secs(300))?.1;
    let v: Vec<usize> = out.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    Ok((v.first().copied().unwrap_or(0), v.get(1).copied().unwrap_or(0).saturating_sub(1)))
}

fn bench_ipvs(runs: usize, n: usize) -> Result<()> {
    println!("== IPVS: {n} services x 4 DR reals, each run on a freshly booted debug guest (TCG, {runs} runs)");
    let (mut lbd, mut adm, mut weight, mut full, mut rss, mut verify, mut ping, mut rss_end, mut server_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let read_rss = |g: &mut Guest| -> Result<f64> {
        let kb: f64 = g
            .sh_ok("grep VmRSS /proc/$(pidof lbd)/status")?
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse().ok())
            .context("VmRSS")?;
        Ok(kb / 1024.0)
    };
    for run in 0..runs {
        // lbd: apply the config from empty.
        let (_lab, mut g) = scale_guest("bench-lbd", n)?;
        let t = timed(&mut g, "lbd ctl apply /cfg/bench.toml")?;
        let (s, r) = count_services(&mut g)?;
        if (s, r) != (n, 4 * n) {
            bail!("lbd programmed {s} services / {r} reals, expected {n} / {}", 4 * n);
        }
        lbd.push(t);
        // Steady state at n services: after a few verify passes.
        std::thread::sleep(Duration::from_secs(8));
        rss.push(read_rss(&mut g)?);
        eprintln!(
            "lbd memory map after the apply:\n{}",
            g.sh_ok("awk '/^[0-9a-f]+-/{n=$6; if(n==\"\") n=\"[anon]\"} /^Rss:/{if($2>256) print $2\" kB \"n}' /proc/$(pidof lbd)/smaps | sort -rn | head -6")?
        );
        // The client's own cost (exec of `lbd ctl` under TCG + one round trip).
        ping.push(timed(&mut g, "lbd ctl ping")?);
        // One weight change, through the edit command (persisted, then applied).
        let w = timed(&mut g, "lbd ctl weight 'tcp 172.16.0.1:80' 10.77.1.1 7")?;
        // `timed` left the command's output (lbd's answer) in /tmp/out.
        let resp: serde_json::Value = serde_json::from_str(&g.sh_ok("cat /tmp/out")?).unwrap_or_default();
        server_ms.push(resp["timing"]["total_ms"].as_f64().unwrap_or(f64::NAN));
        let shown = g.sh_ok("ipvsadm -Ln -t 172.16.0.1:80")?;
        if !shown.contains("10.77.1.1:80                 Route   7") {
            bail!("weight change not visible:\n{shown}");
        }
        weight.push(w);
        // The same change as a whole-config apply, for comparison.
        full.push(timed(&mut g, "lbd ctl apply /cfg/bench-w.toml")?);
        // Let a verify pass run, then read lbd's RSS and the pass duration.
        std::thread::sleep(Duration::from_secs(6));
        rss_end.push(read_rss(&mut g)?);
        let st: serde_json::Value = serde_json::from_str(&g.sh_ok("lbd ctl status")?)?;
        verify.push(st["reconcile"]["last"]["report"]["duration_ms"].as_f64().unwrap_or(f64::NAN) / 1000.0);
        drop(g);
        // ipvsadm -R of the same rules on a fresh guest.
        let (_lab2, mut g2) = scale_guest("bench-ipvsadm", n)?;
        // lbd owns the table and would delete what ipvsadm adds: freeze it
        // (SIGSTOP; init does not restart a stopped process).
        g2.sh_ok("kill -STOP $(pidof lbd)")?;
        adm.push(timed(&mut g2, "ipvsadm -R < /cfg/bench.rules")?);
        let (s, r) = count_services(&mut g2)?;
        if (s, r) != (n, 4 * n) {
            bail!("ipvsadm -R programmed {s} / {r}");
        }
        eprintln!("run {}: lbd {:.2} s, ipvsadm -R {:.2} s", run + 1, lbd[run], adm[run]);
    }
    let (ml, ma) = (median(&mut lbd.clone()), median(&mut adm.clone()));
    println!("program from empty   lbd median {ml:.2} s [{}]", fmt_runs(&lbd));
    println!(
        "                     ipvsadm -R median {ma:.2} s [{}]  -> lbd/ipvsadm = {:.2} (target <= 0.5)",
        fmt_runs(&adm),
        ml / ma
    );
    println!(
        "one weight change    lbd ctl weight median {:.0} ms [{}] (target < 100 ms); whole-config apply median {:.2} s",
        median(&mut weight.clone()) * 1000.0,
        weight.iter().map(|x| format!("{:.0}", x * 1000.0)).collect::<Vec<_>>().join(", "),
        median(&mut full.clone())
    );
    println!(
        "                     inside lbd (request to kernel change, persisted first) median {:.1} ms [{}]",
        median(&mut server_ms.clone()),
        server_ms.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "                     the `lbd ctl` client alone (exec + ping round trip under TCG) median {:.0} ms",
        median(&mut ping.clone()) * 1000.0
    );
    println!("                     keepalived reload (recorded): 5.1 s at 10,000 x 4, RSS 28 -> 48 MB");
    println!(
        "lbd RSS at {n} svc   median {:.1} MiB [{}] (target < 30 MiB; keepalived recorded 28 MB)",
        median(&mut rss.clone()),
        fmt_runs(&rss)
    );
    println!(
        "                     after a weight edit and a second whole-config apply: median {:.1} MiB [{}]",
        median(&mut rss_end.clone()),
        fmt_runs(&rss_end)
    );
    println!(
        "verify pass          median {:.2} s [{}] (service list + a 1,000-service window of real lists)",
        median(&mut verify.clone()),
        fmt_runs(&verify)
    );
    Ok(())
}

/// Which VRRP speaker a pair runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Speaker {
    Lbd,
    Keepalived,
}

/// The priorities of the pair: director 0 is the master, 1 the backup.
const PRIOS: [u8; 2] = [150, 100];

/// Boots director `i` of the pair running `who` with `version`/`advert`, and
/// starts keepalived in it when it is the speaker.
fn vrrp_director(vl: &VrrpLab, who: Speaker, i: usize, run: usize, version: u8, advert: &str) -> Result<Guest> {
    use tests::topo::{keepalived_conf, pair_config, start_keepalived, vrrp_instance};
    let name = format!("{}{}-{run}", if who == Speaker::Lbd { "lbd" } else { "ka" }, i + 1);
    let mut g = match who {
        Speaker::Lbd => vl.boot(i, &name, &pair_config(i, 2, &vrrp_instance(PRIOS[i], version, advert, "")))?,
        // keepalived speaks VRRP; lbd programs the same IPVS table (its
        // config has no [vrrp], so its VRRP engine does not run).
        Speaker::Keepalived => vl.boot_keepalived(i, &name, &pair_config(i, 2, ""))?,
    };
    g.wait_ready()?;
    if who == Speaker::Keepalived {
        start_keepalived(&mut g, &keepalived_conf(PRIOS[i], version, advert, None, false))?;
    }
    Ok(g)
}

/// Waits (bounded) until `m` holds the VIP, `b` does not, and the client is served.
fn vrrp_settled(vl: &VrrpLab, m: &mut Guest, b: &mut Guest, within: Duration) -> Result<()> {
    use tests::topo::has_addr;
    let t0 = std::time::Instant::now();
    loop {
        if has_addr(m, VRRP_VIP)? && !has_addr(b, VRRP_VIP)? && vl.get(Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        if t0.elapsed() > within {
            bail!("{} never became the only holder of the VIP within {within:?}", m.name);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `runs` kills of the master of a `who` pair; the client-observed outages (s).
fn vrrp_outages(vl: &VrrpLab, who: Speaker, version: u8, advert: &str, runs: usize) -> Result<Vec<f64>> {
    use tests::http::{Prober, outage};
    let mut b = vrrp_director(vl, who, 1, 0, version, advert)?;
    let mut out = Vec::new();
    for run in 0..runs {
        let mut a = vrrp_director(vl, who, 0, run, version, advert)?;
        vrrp_settled(vl, &mut a, &mut b, Duration::from_secs(60))?;
        let p = Prober::start(
            &vl.client.ns,
            VRRP_VIP,
            80,
            Duration::from_millis(20),
            Duration::from_millis(300),
            Duration::from_secs(60),
        );
        // Served for a second (20 answers at least) before the kill.
        let t0 = std::time::Instant::now();
        let steady = |s: Vec<std::time::Instant>| s.len() >= 20 && s[0].elapsed() > Duration::from_secs(1);
        while !steady(p.successes()) {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("the client is not served steadily before the kill");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let killed = std::time::Instant::now();
        drop(a); // SIGKILL of the master's QEMU
        // Served again: 10 answers after the kill.
        let t0 = std::time::Instant::now();
        while p.successes().iter().filter(|&&e| e > killed + Duration::from_millis(50)).count() < 10 {
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("not served again through the VIP within 30 s of the kill");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let probes = p.stop();
        let o = outage(&probes, killed).context("no success on both sides of the kill")?.as_secs_f64();
        let failed = probes.iter().filter(|p| !p.ok).count();
        eprintln!(
            "  {} v{version} advert {advert} s run {}: outage {o:.3} s ({} probes, {failed} failed)",
            if who == Speaker::Lbd { "lvsbox" } else { "keepalived" },
            run + 1,
            probes.len()
        );
        out.push(o);
    }
    Ok(out)
}

/// Client-observed failover of a pair, lvsbox and keepalived in the same
/// run and topology. Measured on 2026-11-22 (TCG guests on a 2-core host
/// shared with other test runs, `lvsbox-bench vrrp --runs 5`):
///
/// | advert | lvsbox median [runs] | keepalived median [runs] | target |
/// |---|---|---|---|
/// | 1 s (VRRPv2) | 3.516 s [3.411, 3.516, 3.553, 3.476, 3.546] | 3.534 s [3.504, 3.523, 3.603, 3.560, 3.534] | <= 3.8 s |
/// | 0.1 s (VRRPv3) | 0.350 s [0.466, 0.341, 0.360, 0.324, 0.350] | 0.339 s [0.350, 0.325, 0.339, 0.361, 0.282] | <= 0.5 s |
fn bench_vrrp(runs: usize) -> Result<()> {
    println!(
        "== VRRP failover: the master director's QEMU is killed (SIGKILL); the client opens a new TCP connection \
         to the VIP every 20 ms (300 ms timeout); outage = last success before to first success after. \
         Two directors (priority 150 master, 100 backup), two DR reals, {runs} runs each, all in this run"
    );
    let vl = VrrpLab::new(2)?;
    let mut lines = Vec::new();
    for (version, advert, target) in [(2u8, "1", 3.8), (3, "0.1", 0.5)] {
        let l = vrrp_outages(&vl, Speaker::Lbd, version, advert, runs)?;
        let k = vrrp_outages(&vl, Speaker::Keepalived, version, advert, runs)?;
        let line = format!(
            "advert {advert:>3} s (VRRPv{version}): lvsbox median {:.3} s [{}] (target <= {target} s); keepalived median {:.3} s [{}]",
            median(&mut l.clone()),
            fmt_runs3(&l),
            median(&mut k.clone()),
            fmt_runs3(&k)
        );
        println!("{line}");
        lines.push(line);
    }
    println!("summary:");
    for l in lines {
        println!("  {l}");
    }
    Ok(())
}

fn fmt_runs3(v: &[f64]) -> String {
    v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ")
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str, d: usize| -> usize {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(d)
    };
    let what = args.first().map(String::as_str).unwrap_or("all");
    match what {
        "boot" => bench_boot(opt("--runs", 5)),
        "ipvs" => bench_ipvs(opt("--runs", 3), opt("--services", 10_000)),
        "vrrp" => bench_vrrp(opt("--runs", 5)),
        "all" => {
            bench_boot(opt("--runs", 5))?;
            bench_ipvs(opt("--runs", 3), opt("--services", 10_000))?;
            bench_vrrp(opt("--runs", 5))
        }
        _ => bail!("usage: lvsbox-bench [boot|ipvs|vrrp|all] [--runs N] [--services N]"),
    }
}
