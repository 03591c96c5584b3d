//! End-to-end: lbd programs the kernel's IPVS in a guest; real traffic from a
//! client namespace reaches real servers in the proportions the schedulers
//! and weights say; the table matches ipvsadm byte for byte; restarts and
//! out-of-band edits behave as an operator expects.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;
use tests::guest::Guest;
use tests::http;
use tests::topo::{Director, director_network};

fn lb_config() -> String {
    format!(
        r#"
[system]
hostname = "lb-ipvs"

{net}
[[vips]]
address = "10.77.0.100"
interface = "eth0"
[[vips]]
address = "10.77.0.101"
interface = "eth0"
[[vips]]
address = "10.77.0.102"
interface = "eth0"

[[services]]
name = "dr-rr"
address = "10.77.0.100:80"
scheduler = "rr"
[[services.reals]]
address = "10.77.0.11"
[[services.reals]]
address = "10.77.0.12"

[[services]]
name = "dr-wrr"
address = "10.77.0.102:80"
scheduler = "wrr"
[[services.reals]]
address = "10.77.0.11"
weight = 3
[[services.reals]]
address = "10.77.0.12"
weight = 1

[[services]]
name = "nat-rr"
address = "10.77.0.101:80"
scheduler = "rr"
forwarding = "nat"
[[services.reals]]
address = "10.78.0.21:8080"
[[services.reals]]
address = "10.78.0.22:8080"
"#,
        net = director_network()
    )
}

fn run_requests(d: &Director, vip: &'static str, n: usize) -> Result<http::Tally> {
    d.client.ns.in_thread(move || http::tally(vip, 80, n, Duration::from_secs(5), Duration::from_secs(300)))
}

#[test]
fn dr_and_nat_traffic_follows_scheduler_and_weights() -> Result<()> {
    let d = Director::new(2, &["10.77.0.100", "10.77.0.102"], 2, &lb_config())?;

    let rr = run_requests(&d, "10.77.0.100", 200)?;
    assert_eq!(rr.failures, 0, "{rr:?}");
    assert_eq!((rr.count("rs1"), rr.count("rs2")), (100, 100), "DR rr must alternate: {rr:?}");

    let wrr = run_requests(&d, "10.77.0.102", 200)?;
    assert_eq!(wrr.failures, 0, "{wrr:?}");
    let share = wrr.count("rs1") as f64 / 200.0;
    assert!((share - 0.75).abs() <= 0.05, "DR wrr 3:1 gave {wrr:?}");

    let nat = run_requests(&d, "10.77.0.101", 200)?;
    assert_eq!(nat.failures, 0, "{nat:?}");
    assert_eq!((nat.count("nat1"), nat.count("nat2")), (100, 100), "NAT rr: {nat:?}");
    Ok(())
}

/// One service per scheduler, and every flag, persistence and forwarding
/// variant: the kernel accepts all of it and ipvsadm reads back exactly what
/// the config says (and what lbd's own views print).
#[test]
fn every_scheduler_and_flag_reads_back_identically_and_views_match_ipvsadm() -> Result<()> {
    let mut cfg = format!("{}\n", director_network());
    let scheds = ["rr", "wrr", "lc", "wlc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf"];
    let mut expected_rules = Vec::new();
    for (i, s) in scheds.iter().enumerate() {
        let vip = format!("10.77.1.{}", i + 1);
        cfg.push_str(&format!(
            "[[services]]\naddress = \"{vip}:80\"\nscheduler = \"{s}\"\n[[services.reals]]\naddress = \"10.77.0.11\"\nweight = {w}\nupper_threshold = 100\nlower_threshold = 50\n[[services.reals]]\naddress = \"10.78.0.21:8080\"\nforwarding = \"nat\"\n",
            w = i + 1
        ));
        expected_rules.push(format!("-A -t {vip}:80 -s {s}"));
    }
    cfg.push_str(
        r#"
[[services]]
address = "10.77.2.1:80"
scheduler = "sh"
scheduler_flags = ["sh-fallback", "sh-port"]
persistence = { timeout = 600, netmask = "255.255.255.0" }
[[services.reals]]
address = "10.77.0.12"

[[services]]
address = "10.77.2.2:53"
protocol = "udp"
scheduler = "mh"
scheduler_flags = ["mh-port"]
one_packet = true
[[services.reals]]
address = "10.77.0.12"

[[services]]
address = "10.77.2.3:5060"
protocol = "udp"
scheduler = "rr"
persistence = { timeout = 300, engine = "sip" }
[[services.reals]]
address = "10.77.0.12"

[[services]]
address = "10.77.2.4:0"
persistence = {}
[[services.reals]]
address = "10.77.0.12"

[[services]]
address = "10.77.2.5:9"
protocol = "sctp"
[[services.reals]]
address = "10.77.0.12"

[[services]]
fwmark = 300
scheduler = "wrr"
persistence = { timeout = 900 }
[[services.reals]]
address = "10.77.0.11:9814"
[[services.reals]]
address = "10.77.0.12:9814"
weight = 0

[[services]]
address = "[2001:db8:77::100]:443"
scheduler = "sh"
persistence = { timeout = 60, netmask = 64 }
[[services.reals]]
address = "2001:db8:77::11"

[[services]]
fwmark = 7
family = "ipv6"
scheduler = "rr"
[[services.reals]]
address = "2001:db8:77::11"

[[services]]
address = "10.77.2.6:443"
forwarding = "tun"
[[services.reals]]
address = "198.51.100.7"
tunnel = { type = "ipip" }
[[services.reals]]
address = "198.51.100.8"
tunnel = { type = "gue", port = 6080, checksum = "csum" }
[[services.reals]]
address = "198.51.100.9"
tunnel = { type = "gre", checksum = "csum" }
[[services.reals]]
address = "198.51.100.10"
tunnel = { type = "gue", port = 6081, checksum = "remcsum" }

[ipvs.timeouts]
tcp = 901
tcpfin = 121
udp = 301
"#,
    );
    let cfg = cfg.replace(
        "[[interfaces]]\nname = \"eth0\"\naddresses = [\"10.77.0.2/24\", \"10.78.0.1/24\"]",
        "[[interfaces]]\nname = \"eth0\"\naddresses = [\"10.77.0.2/24\", \"10.78.0.1/24\", \"2001:db8:77::2/64\"]",
    );
    let mut d = Director::new(0, &[], 0, &cfg)?;
    let g = &mut d.guest;
    let saved = g.sh_ok("ipvsadm -S -n")?;
    for r in &expected_rules {
        assert!(saved.lines().any(|l| l == r), "`{r}` missing from ipvsadm -S -n:\n{saved}");
    }
    for line in [
        "-A -t 10.77.2.1:80 -s sh -p 600 -M 255.255.255.0 -b sh-fallback,sh-port",
        "-A -u 10.77.2.2:53 -s mh -o -b mh-port",
        "-A -u 10.77.2.3:5060 -s rr -p 300 --pe sip",
        "-A -t 10.77.2.4:0 -s wlc -p 300",
        "-A --sctp-service 10.77.2.5:9 -s wlc",
        "-A -f 300 -s wrr -p 900",
        "-a -f 300 -r 10.77.0.12:9814 -g -w 0",
        "-A -t [2001:db8:77::100]:443 -s sh -p 60 -M 64",
        "-A -f 7 -6 -s rr",
        "-a -t 10.77.2.6:443 -r 198.51.100.8:443 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum",
        "-a -t 10.77.2.6:443 -r 198.51.100.9:443 -i -w 1 --tun-type gre --tun-csum",
        "-a -t 10.77.2.6:443 -r 198.51.100.10:443 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum",
        "-a -t 10.77.1.13:80 -r 10.78.0.21:8080 -m -w 1",
    ] {
        assert!(saved.lines().any(|l| l == line), "`{line}` missing from ipvsadm -S -n:\n{saved}");
    }
    // lbd's views print exactly what ipvsadm prints, for the same kernel state.
    for (ours, theirs) in [
        ("list", "-Ln"),
        ("list --stats", "-Ln --stats"),
        ("list --rate", "-Ln --rate"),
        ("list --thresholds", "-Ln --thresholds"),
        ("list --persistent-conn", "-Ln --persistent-conn"),
        ("list --tun-info", "-Ln --tun-info"),
        ("list -S", "-S -n"),
        ("list --timeout", "-L --timeout"),
        ("list --exact --stats", "-Ln --stats --exact"),
    ] {
        let a = g.sh_ok(&format!("lbd ctl {ours}"))?;
        let b = g.sh_ok(&format!("ipvsadm {theirs}"))?;
        assert_eq!(a, b, "`lbd ctl {ours}` differs from `ipvsadm {theirs}`");
    }
    assert_eq!(g.sh_ok("ipvsadm -L --timeout")?.trim(), "Timeout (tcp tcpfin udp): 901 121 301");
    // lbd adopted all of it: its next pass changes nothing.
    let before = g.sh_ok("ipvsadm -S -n")?;
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(g.sh_ok("ipvsadm -S -n")?, before);
    let st: Value = serde_json::from_str(&g.sh_ok("lbd ctl status")?)?;
    assert_eq!(st["reconcile"]["last"]["report"]["applied_count"], 0, "{st}");
    // restore: the -S output goes back in through lbd as it is.
    g.sh_ok("ipvsadm -S -n > /tmp/rules")?;
    g.sh_ok("lbd ctl restore < /tmp/rules")?;
    assert_eq!(g.sh_ok("ipvsadm -S -n")?, before);
    Ok(())
}

fn lbd_restarts(g: &mut Guest) -> Result<u64> {
    let children: Value = serde_json::from_str(&g.sh_ok("/init ctl children")?)?;
    Ok(children
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "lbd")
        .map_or(0, |c| c["restarts"].as_u64().unwrap_or(0)))
}

#[test]
fn lbd_restart_under_load_drops_nothing_and_changes_nothing() -> Result<()> {
    let mut d = Director::new(2, &["10.77.0.100", "10.77.0.102"], 2, &lb_config())?;
    let before_rules = d.guest.sh_ok("ipvsadm -S -n")?;
    let client = d.client.ns.clone();
    let load = std::thread::spawn(move || {
        client.in_thread(|| http::tally("10.77.0.100", 80, 500, Duration::from_secs(5), Duration::from_secs(600)))
    });
    // Restart lbd twice while the loop runs: SIGTERM (clean exit, init restarts
    // it) and SIGKILL (a crash).
    let g = &mut d.guest;
    for sig in ["TERM", "KILL"] {
        std::thread::sleep(Duration::from_millis(1500));
        let n = lbd_restarts(g)?;
        g.sh_ok(&format!("kill -{sig} $(pidof lbd)"))?;
        let t0 = Instant::now();
        while lbd_restarts(g)? == n || g.sh("lbd ctl ping")?.0 != 0 {
            assert!(t0.elapsed() < Duration::from_secs(30), "lbd did not come back after SIG{sig}");
        }
    }
    let tally = load.join().expect("load thread")?;
    assert_eq!(tally.failures, 0, "requests failed across lbd restarts: {tally:?}");
    assert_eq!(tally.ok(), 500);
    let g = &mut d.guest;
    // The kernel table is the same, and its counters were never reset (no
    // service was re-created): connections kept counting up.
    assert_eq!(g.sh_ok("ipvsadm -S -n")?, before_rules);
    let stats = g.sh_ok("ipvsadm -Ln --stats --exact")?;
    let conns: u64 = stats
        .lines()
        .find(|l| l.starts_with("TCP  10.77.0.100:80"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!(conns >= 500, "counters were reset (conns = {conns}):\n{stats}");
    // The restarted lbd's first pass made no change.
    let st: Value = serde_json::from_str(&g.sh_ok("lbd ctl status")?)?;
    assert!(st["reconcile"]["passes"].as_u64().unwrap_or(0) >= 1);
    let logs = g.sh_ok("lbd ctl logs 200")?;
    assert!(!logs.contains("reconcile: "), "the restarted lbd changed the kernel:\n{logs}");
    Ok(())
}

#[test]
fn out_of_band_flush_is_repaired_within_5_s() -> Result<()> {
    let mut d = Director::new(2, &["10.77.0.100", "10.77.0.102"], 2, &lb_config())?;
    let g = &mut d.guest;
    let before = g.sh_ok("ipvsadm -S -n")?;
    // Time it inside the guest, from the flush to the table being whole again.
    let out = g.sh_ok(
        "ipvsadm -C; s=$(cut -d' ' -f1 /proc/uptime); \
         i=0; while [ \"$(ipvsadm -S -n | wc -l)\" -lt 9 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; \
         e=$(cut -d' ' -f1 /proc/uptime); echo $s $e",
    )?;
    let t: Vec<f64> = out.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let took = t[1] - t[0];
    eprintln!("ipvsadm -C repaired in {took:.2} s");
    assert!(took <= 5.0, "table restored after {took:.2} s");
    assert_eq!(g.sh_ok("ipvsadm -S -n")?, before);
    // Traffic flows again.
    let rr = run_requests(&d, "10.77.0.100", 20)?;
    assert_eq!(rr.failures, 0, "{rr:?}");
    Ok(())
}

/// TUN (IP-in-IP): the host kernel has no ipip, so the two real servers are
/// guests too (debug image: VIP on tunl0, busybox httpd), three guests in all.
#[test]
fn tun_traffic_reaches_tunnelled_reals_round_robin() -> Result<()> {
    use tests::guest::{GuestSpec, mac};
    let mut lab = tests::lab::Lab::new()?;
    let client = lab.add_host("cl", "10.77.0.50/24", None)?;
    let vip = "10.77.0.103";
    let mut reals = Vec::new();
    for i in 1..=2u8 {
        let tap = lab.add_tap()?;
        let cfg = format!(
            "[system]\nhostname = \"tun{i}\"\n[[interfaces]]\nname = \"eth0\"\naddresses = [\"10.77.0.{}/24\"]\n",
            30 + i
        );
        let mut g = Guest::boot(&lab, &GuestSpec::debug(&format!("tun{i}")).config(&cfg).nic(&tap, &mac(10 + i, 0)))?;
        reals.push(g.wait_ready().map(|_| g)?);
    }
    for (i, g) in reals.iter_mut().enumerate() {
        // ipip (tunl0) is one of the modules init loads after `lbd ready`.
        g.wait_for(lbd::paths::LATE_MODULES_LINE, Duration::from_secs(120))?;
        g.sh_ok(&format!(
            "ip link set tunl0 up && ip addr add {vip}/32 dev tunl0 && \
             sysctl -w net.ipv4.conf.tunl0.rp_filter=0 net.ipv4.conf.all.rp_filter=0 \
                       net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 >/dev/null && \
             mkdir -p /www && echo tun{} > /www/index.html && httpd -p 80 -h /www",
            i + 1
        ))?;
    }
    let cfg = format!(
        "{}\n[[vips]]\naddress = \"{vip}\"\ninterface = \"eth0\"\n\n[[services]]\naddress = \"{vip}:80\"\nscheduler = \"rr\"\nforwarding = \"tun\"\n\
         [[services.reals]]\naddress = \"10.77.0.31\"\n[[services.reals]]\naddress = \"10.77.0.32\"\n",
        director_network()
    );
    let tap = lab.add_tap()?;
    let mut dir = Guest::boot(&lab, &GuestSpec::debug("director").config(&cfg).nic(&tap, &mac(1, 0)))?;
    dir.wait_ready()?;
    assert!(dir.sh_ok("ipvsadm -Ln")?.contains("10.77.0.31:80                Tunnel"));
    let t = client.ns.in_thread(move || http::tally(vip, 80, 200, Duration::from_secs(5), Duration::from_secs(300)))?;
    assert_eq!(t.failures, 0, "{t:?}");
    assert_eq!((t.count("tun1"), t.count("tun2")), (100, 100), "TUN rr: {t:?}");
    drop(dir);
    drop(reals);
    Ok(())
}
