//! End-to-end health checks: lbd in a director guest checks DR real servers
//! in namespaces; their services are stopped, frozen, answer 503 or the
//! wrong body, and come back, and the IPVS table (read with ipvsadm in the
//! guest) follows within the issue's bound (`delay_loop + connect_timeout ×
//! (retry + 1)` + 1 s; lbd's documented worst case adds `retry ×
//! delay_before_retry`, so the first test retries at once and the second
//! uses 0.5 s within a 1 s period) while nothing else in the table changes. Also: the sorry
//! server takes over when the quorum is lost, a healthy pool makes no
//! transition in 60 s, and a check through the VIP (per-real fwmark) fails a
//! real whose VIP is taken off its `lo` while a plain TCP check keeps it, and
//! passes it again when the VIP is back.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use serde_json::Value;
use tests::guest::Guest;
use tests::http;
use tests::topo::{Director, director_network};

/// `addr:port` of the reals of `vip:80` in the guest's IPVS table.
fn reals(g: &mut Guest, vip: &str) -> Result<Vec<String>> {
    let out = g.sh_ok(&format!("ipvsadm -Ln -t {vip}:80"))?;
    Ok(out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-> "))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .filter(|a| a.contains(':') && !a.starts_with("RemoteAddress"))
        .collect())
}

fn uptime(g: &mut Guest) -> Result<f64> {
    g.sh_ok("cut -d' ' -f1 /proc/uptime")?.trim().parse().context("uptime")
}

/// Polls in the guest (every 0.1 s, at most `limit_s`) until the shell
/// condition holds; returns the guest's uptime at that moment.
fn until(g: &mut Guest, cond: &str, limit_s: u32) -> Result<f64> {
    let n = limit_s * 10;
    let (code, out) = g.sh_timeout(
        &format!(
            "i=0; until {cond}; do i=$((i+1)); [ $i -ge {n} ] && exit 7; sleep 0.1; done; cut -d' ' -f1 /proc/uptime"
        ),
        Duration::from_secs(u64::from(limit_s) + 60),
    )?;
    if code != 0 {
        let table = g.sh("ipvsadm -Ln; lbd ctl checks | head -c 3000").map(|x| x.1).unwrap_or_default();
        bail!("not within {limit_s} s: {cond}\n{table}");
    }
    out.trim().parse().context("uptime")
}

fn has(vip: &str, real: &str) -> String {
    format!("ipvsadm -Ln -t {vip}:80 | grep -q ' {real}:80 '")
}

fn hasnt(vip: &str, real: &str) -> String {
    format!("! ipvsadm -Ln -t {vip}:80 | grep -q ' {real}:80 '")
}

/// The table as `ipvsadm -Sn` saves it (no counters), one rule a line, sorted.
fn table(g: &mut Guest) -> Result<Vec<String>> {
    let mut v: Vec<String> =
        g.sh_ok("ipvsadm -Sn")?.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    v.sort();
    Ok(v)
}

/// `before` without the rules that contain `pat`, or for a bare address
/// (`10.77.0.11`) every rule of that real (`-a ... -r 10.77.0.11:80 ...`).
fn without(before: &[String], pat: &str) -> Vec<String> {
    let pat = if pat.contains(' ') { pat.to_string() } else { format!(" -r {pat}:80 ") };
    before.iter().filter(|l| !l.contains(&pat)).cloned().collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn checks(g: &mut Guest) -> Result<Value> {
    Ok(serde_json::from_str(&g.sh_ok("lbd ctl checks")?)?)
}

fn real_status(v: &Value, service: &str, real: &str) -> Value {
    v["reals"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["service"] == service && r["real"] == real).cloned())
        .unwrap_or(Value::Null)
}

fn requests(d: &Director, vip: &'static str, n: usize) -> Result<http::Tally> {
    d.client.ns.in_thread(move || http::tally(vip, 80, n, Duration::from_secs(5), Duration::from_secs(120)))
}

/// The bound for "vipcheck" (delay_loop 1, connect_timeout 1, retry 0).
const VIP_BOUND: f64 = 1.0 + 1.0 + 1.0;

/// The same bound for the "web" service of the quorum test (delay_loop 1).
const WEB_BOUND: f64 = 1.0 + 1.0 * 2.0 + 1.0;

/// delay_loop + connect_timeout × (retry + 1) + 1 s of the "web" check of the first test.
const BOUND: f64 = 2.0 + 1.0 * 2.0 + 1.0;

#[test]
fn failed_reals_leave_and_return_within_the_bound() -> Result<()> {
    let cfg = format!(
        r#"
[system]
hostname = "lb-checks"
{net}
# Connections (and clients reusing a port) of a real that left are
# rescheduled instead of dropped until their entry expires.
[ipvs.sysctl]
expire_nodest_conn = true

[[vips]]
address = "10.77.0.100"
interface = "eth0"

[[services]]
name = "web"
address = "10.77.0.100:80"
scheduler = "rr"
check = {{ type = "http", path = "/", regex = "^rs[0-9]", delay_loop = 2, connect_timeout = 1, retry = 1, delay_before_retry = 0 }}
[[services.reals]]
address = "10.77.0.11"
[[services.reals]]
address = "10.77.0.12"

# HTTPS (lbd's own TLS client) against OpenSSL's s_server, whose page
# names the protocol and suite it negotiated.
[[services]]
name = "tls"
address = "10.77.0.100:443"
scheduler = "rr"
check = {{ type = "https", path = "/", regex = 'New, TLSv1\.[23], Cipher is', delay_loop = 1, connect_timeout = 1, retry = 0 }}
[[services.reals]]
address = "10.77.0.11"
[[services.reals]]
address = "10.77.0.12"
"#,
        net = director_network()
    );
    let mut d = Director::new(2, &["10.77.0.100"], 0, &cfg)?;
    let vip = "10.77.0.100";
    let (rs1, rs2) = (d.dr_reals[0].clone(), d.dr_reals[1].clone());
    d.lab.serve_https(&rs1, 443, &[])?;
    d.lab.serve_https(&rs2, 443, &[])?;
    let tls = |real: &str| format!("ipvsadm -Ln -t {vip}:443 | grep -q ' {real}:443 '");
    until(
        &mut d.guest,
        &format!(
            "{} && {} && {} && {}",
            has(vip, "10.77.0.11"),
            has(vip, "10.77.0.12"),
            tls("10.77.0.11"),
            tls("10.77.0.12")
        ),
        60,
    )?;
    let t = requests(&d, vip, 20)?;
    assert_eq!((t.failures, t.count("rs1"), t.count("rs2")), (0, 10, 10), "{t:?}");

    let full = table(&mut d.guest)?;
    assert_eq!(full.iter().filter(|l| l.starts_with("-a ")).count(), 4, "{full:?}");
    let v = checks(&mut d.guest)?;
    assert_eq!(real_status(&v, "tls", "10.77.0.11:443")["status"]["last_reason"], "status 200, body ok", "{v}");
    assert_eq!(d.guest.sh_ok("cat /proc/sys/net/ipv4/vs/expire_nodest_conn")?.trim(), "1");

    // 1. rs1's HTTP service stops (connection refused) and starts again,
    // three times: it leaves the table and comes back within the bound, and
    // nothing else in the table changes.
    let ctl = d.lab.dir.join("rs1.ctl");
    let (mut leaves, mut backs) = (Vec::new(), Vec::new());
    for round in 1..=3 {
        let t0 = uptime(&mut d.guest)?;
        d.lab.kill("httpd-rs1-80")?;
        let t1 = until(&mut d.guest, &hasnt(vip, "10.77.0.11"), 30)?;
        let leave = t1 - t0;
        eprintln!("round {round}: stopped rs1 left IPVS after {leave:.2} s (bound {BOUND} s)");
        assert!(leave <= BOUND, "rs1 left after {leave:.2} s > {BOUND} s");
        assert_eq!(table(&mut d.guest)?, without(&full, "10.77.0.11"), "only rs1's rule goes");
        let t = requests(&d, vip, 30)?;
        assert_eq!((t.failures, t.count("rs2")), (0, 30), "no errors once it left: {t:?}");
        let v = checks(&mut d.guest)?;
        assert_eq!(real_status(&v, "web", "10.77.0.11:80")["health"], "down", "{v}");
        assert_eq!(real_status(&v, "web", "10.77.0.11:80")["status"]["last_reason"], "connection refused", "{v}");
        assert_eq!(real_status(&v, "web", "10.77.0.12:80")["health"], "up", "{v}");

        // It comes back (answering through a control file from now on).
        let t2 = uptime(&mut d.guest)?;
        d.lab.serve_http_ctl(&rs1, 80, Some(&ctl))?;
        let t3 = until(&mut d.guest, &has(vip, "10.77.0.11"), 30)?;
        eprintln!("round {round}: restarted rs1 back after {:.2} s (bound {BOUND} s)", t3 - t2);
        assert!(t3 - t2 <= BOUND, "rs1 back after {:.2} s", t3 - t2);
        assert_eq!(table(&mut d.guest)?, full, "the table is as before, weight included");
        let t = requests(&d, vip, 20)?;
        if (t.failures, t.count("rs1"), t.count("rs2")) != (0, 10, 10) {
            // rr alternates strictly: a skew means rs1 flapped or IPVS sent a
            // reused client port to its old real; the checks' transition
            // counters and the connection table tell which.
            let v = checks(&mut d.guest)?;
            let conns = d.guest.sh("ipvsadm -Lnc").map(|x| x.1).unwrap_or_default();
            panic!("rr split after rs1 came back: {t:?}\nchecks: {v}\nconnections:\n{conns}");
        }
        leaves.push(leave);
        backs.push(t3 - t2);
    }
    eprintln!(
        "dead real out of IPVS: median {:.2} s, {leaves:.2?}; back: median {:.2} s, {backs:.2?} (bound {BOUND} s)",
        median(&mut leaves.clone()),
        median(&mut backs.clone())
    );

    // 2. rs1 hangs (its server frozen: the kernel still completes the
    // handshake, no answer comes): it leaves after the attempts time out.
    let t0 = uptime(&mut d.guest)?;
    d.lab.signal("httpd-rs1-80", Signal::SIGSTOP)?;
    let t1 = until(&mut d.guest, &hasnt(vip, "10.77.0.11"), 30)?;
    eprintln!("frozen: rs1 left IPVS after {:.2} s (bound {BOUND} s)", t1 - t0);
    assert!(t1 - t0 <= BOUND, "rs1 left after {:.2} s > {BOUND} s", t1 - t0);
    assert_eq!(table(&mut d.guest)?, without(&full, "10.77.0.11"));
    let v = checks(&mut d.guest)?;
    assert_eq!(real_status(&v, "web", "10.77.0.11:80")["status"]["last_reason"], "timeout after 1 s", "{v}");
    let t = requests(&d, vip, 20)?;
    assert_eq!((t.failures, t.count("rs2")), (0, 20), "no errors once it left: {t:?}");
    let t2 = uptime(&mut d.guest)?;
    d.lab.signal("httpd-rs1-80", Signal::SIGCONT)?;
    let t3 = until(&mut d.guest, &has(vip, "10.77.0.11"), 30)?;
    eprintln!("thawed: rs1 back after {:.2} s", t3 - t2);
    assert!(t3 - t2 <= BOUND, "rs1 back after {:.2} s", t3 - t2);
    assert_eq!(table(&mut d.guest)?, full);

    // 3. A wrong status (503) fails it.
    let t4 = uptime(&mut d.guest)?;
    std::fs::write(&ctl, "503 Service Unavailable\nbusy\n")?;
    let t5 = until(&mut d.guest, &hasnt(vip, "10.77.0.11"), 30)?;
    eprintln!("503: rs1 left after {:.2} s", t5 - t4);
    assert!(t5 - t4 <= BOUND, "rs1 left after {:.2} s", t5 - t4);
    assert_eq!(table(&mut d.guest)?, without(&full, "10.77.0.11"));
    let v = checks(&mut d.guest)?;
    assert_eq!(real_status(&v, "web", "10.77.0.11:80")["status"]["last_reason"], "status 503", "{v}");
    std::fs::remove_file(&ctl)?;
    until(&mut d.guest, &has(vip, "10.77.0.11"), 30)?;

    // 4. A body that does not match the regex fails it.
    let t6 = uptime(&mut d.guest)?;
    std::fs::write(&ctl, "200 OK\nmaintenance\n")?;
    let t7 = until(&mut d.guest, &hasnt(vip, "10.77.0.11"), 30)?;
    eprintln!("regex mismatch: rs1 left after {:.2} s", t7 - t6);
    assert!(t7 - t6 <= BOUND, "rs1 left after {:.2} s", t7 - t6);
    assert_eq!(table(&mut d.guest)?, without(&full, "10.77.0.11"));
    let v = checks(&mut d.guest)?;
    assert_eq!(
        real_status(&v, "web", "10.77.0.11:80")["status"]["last_reason"],
        "body does not match /^rs[0-9]/",
        "{v}"
    );
    std::fs::remove_file(&ctl)?;
    until(&mut d.guest, &has(vip, "10.77.0.11"), 30)?;
    assert_eq!(table(&mut d.guest)?, full);

    // 5. HTTPS: rs1's TLS server stops and comes back speaking only TLS 1.2
    // (checked over TLS 1.2 then), and a server that offers only P-256 for
    // the key exchange keeps it out, the reason saying why.
    let t0 = uptime(&mut d.guest)?;
    d.lab.kill("https-rs1-443")?;
    let t1 = until(&mut d.guest, &format!("! {}", tls("10.77.0.11")), 30)?;
    eprintln!("https: stopped rs1 left after {:.2} s", t1 - t0);
    assert!(t1 - t0 <= VIP_BOUND, "rs1 left the https service after {:.2} s", t1 - t0);
    let t2 = uptime(&mut d.guest)?;
    d.lab.serve_https(&rs1, 443, &["-tls1_2"])?;
    let t3 = until(&mut d.guest, &tls("10.77.0.11"), 30)?;
    eprintln!("https: rs1 back over TLS 1.2 after {:.2} s", t3 - t2);
    assert!(t3 - t2 <= VIP_BOUND, "rs1 back in the https service after {:.2} s", t3 - t2);
    assert_eq!(table(&mut d.guest)?, full);
    d.lab.kill("https-rs1-443")?;
    d.lab.serve_https(&rs1, 443, &["-groups", "P-256"])?;
    until(&mut d.guest, &format!("! {}", tls("10.77.0.11")), 30)?;
    let v = checks(&mut d.guest)?;
    let why = real_status(&v, "tls", "10.77.0.11:443")["status"]["last_reason"].as_str().unwrap_or("").to_string();
    assert!(why.contains("HelloRetryRequest"), "{v}");
    d.lab.kill("https-rs1-443")?;
    d.lab.serve_https(&rs1, 443, &[])?;
    until(&mut d.guest, &tls("10.77.0.11"), 30)?;
    assert_eq!(table(&mut d.guest)?, full);

    // Every transition is in lbd's log with its reason.
    let logs = d.guest.sh_ok("lbd ctl logs 500")?;
    for want in [
        "http 10.77.0.11:80 up -> down: connection refused",
        "http 10.77.0.11:80 down -> up: status 200, body ok",
        "http 10.77.0.11:80 up -> down: status 503",
        "http 10.77.0.11:80 up -> down: body does not match /^rs[0-9]/",
    ] {
        assert!(logs.contains(want), "`{want}` not in lbd's log:\n{logs}");
    }
    Ok(())
}

#[test]
fn quorum_sorry_server_steady_state_and_checks_through_the_vip() -> Result<()> {
    let cfg = format!(
        r#"
[system]
hostname = "lb-quorum"
{net}
# Connections (and clients reusing a port) of a real that left are
# rescheduled instead of dropped until their entry expires.
[ipvs.sysctl]
expire_nodest_conn = true

[[vips]]
address = "10.77.0.100"
interface = "eth0"
[[vips]]
address = "10.77.0.101"
interface = "eth0"

[[services]]
name = "web"
address = "10.77.0.100:80"
scheduler = "rr"
quorum = 1
sorry_server = {{ address = "10.77.0.13" }}
check = {{ type = "tcp", delay_loop = 1, connect_timeout = 1, retry = 1, delay_before_retry = 0.5 }}
[[services.reals]]
address = "10.77.0.11"
[[services.reals]]
address = "10.77.0.12"

[[services]]
name = "vipcheck"
address = "10.77.0.101:80"
scheduler = "rr"
check = {{ type = "http", through_vip = true, delay_loop = 1, connect_timeout = 1, retry = 0 }}
[[services.reals]]
address = "10.77.0.11"
[[services.reals]]
address = "10.77.0.12"
"#,
        net = director_network()
    );
    let mut d = Director::new(3, &["10.77.0.100", "10.77.0.101"], 0, &cfg)?;
    let (web, vipc) = ("10.77.0.100", "10.77.0.101");
    until(
        &mut d.guest,
        &format!(
            "{} && {} && {} && {}",
            has(web, "10.77.0.11"),
            has(web, "10.77.0.12"),
            has(vipc, "10.77.0.11"),
            has(vipc, "10.77.0.12")
        ),
        60,
    )?;
    let full = table(&mut d.guest)?;

    // rs2 loses the second VIP from its lo (a DR real set up wrong): its
    // check through the VIP fails (rs2 drops packets for an address it lacks)
    // and it leaves "vipcheck", while the plain TCP check keeps it in "web".
    // rs1 passes: IPVS scheduled the director's own connection (LOCAL_OUT)
    // to it by the check's mark.
    let rs2_vipc = " -t 10.77.0.101:80 -r 10.77.0.12:80 ";
    let t0 = uptime(&mut d.guest)?;
    d.dr_reals[1].ns.run("ip", &["addr", "del", "10.77.0.101/32", "dev", "lo"])?;
    let t1 = until(&mut d.guest, &hasnt(vipc, "10.77.0.12"), 30)?;
    eprintln!("VIP gone from rs2's lo: rs2 left vipcheck after {:.2} s (bound {VIP_BOUND} s)", t1 - t0);
    assert!(t1 - t0 <= VIP_BOUND, "rs2 left vipcheck after {:.2} s", t1 - t0);
    assert_eq!(table(&mut d.guest)?, without(&full, rs2_vipc), "only rs2's rule in vipcheck goes");
    let v = checks(&mut d.guest)?;
    let r2 = real_status(&v, "vipcheck", "10.77.0.12:80");
    assert_eq!(r2["health"], "down", "{v}");
    assert_eq!(r2["status"]["last_reason"], "timeout after 1 s", "{v}");
    assert_eq!(real_status(&v, "vipcheck", "10.77.0.11:80")["health"], "up", "{v}");
    assert_eq!(real_status(&v, "web", "10.77.0.12:80")["health"], "up", "{v}");
    assert_eq!(reals(&mut d.guest, vipc)?, vec!["10.77.0.11:80"]);
    let fwm = d.guest.sh_ok("ipvsadm -Ln | grep -c '^FWM  12793937'")?;
    assert_eq!(fwm.trim(), "2", "one hidden fwmark service per real checked through the VIP");

    // rs2 gets the VIP back: it rejoins "vipcheck"; the table is whole again.
    let t0 = uptime(&mut d.guest)?;
    d.dr_reals[1].ns.run("ip", &["addr", "add", "10.77.0.101/32", "dev", "lo"])?;
    let t1 = until(&mut d.guest, &has(vipc, "10.77.0.12"), 30)?;
    eprintln!("VIP back on rs2's lo: rs2 back in vipcheck after {:.2} s (bound {VIP_BOUND} s)", t1 - t0);
    assert!(t1 - t0 <= VIP_BOUND, "rs2 back in vipcheck after {:.2} s", t1 - t0);
    assert_eq!(table(&mut d.guest)?, full);

    // 60 s of healthy reals: no transition, no table change (polled in the
    // guest every 0.5 s, failing at the first change), while checks run.
    let before = checks(&mut d.guest)?;
    let saved = table(&mut d.guest)?;
    let (code, out) = d.guest.sh_timeout(
        "t=$(ipvsadm -Sn); end=$(( $(cut -d. -f1 /proc/uptime) + 60 )); \
         while [ $(cut -d. -f1 /proc/uptime) -lt $end ]; do \
           [ \"$(ipvsadm -Sn)\" = \"$t\" ] || { ipvsadm -Sn; exit 7; }; sleep 0.5; done",
        Duration::from_secs(180),
    )?;
    assert_eq!(code, 0, "the table changed during the steady state:\n{out}");
    let after = checks(&mut d.guest)?;
    let count = |v: &Value| -> u64 {
        v["reals"].as_array().map(|a| a.iter().filter_map(|r| r["status"]["transitions"].as_u64()).sum()).unwrap_or(0)
    };
    assert_eq!(count(&after), count(&before), "transitions during 60 s of steady state:\n{after}");
    assert_eq!(table(&mut d.guest)?, saved);
    let rounds = after["summary"]["rounds"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(before["summary"]["rounds"].as_u64().unwrap_or(0));
    // 4 checks every second: about 240 rounds; well below that means the checks stalled.
    assert!(rounds >= 200, "only {rounds} check rounds in 60 s:\n{after}");
    assert_eq!((&after["summary"]["up"], &after["summary"]["down"]), (&Value::from(4), &Value::from(0)), "{after}");
    eprintln!("steady 60 s: 0 transitions, {rounds} rounds; achieved period {}", after["summary"]["period_ms"]);

    // Both reals of "web" die: quorum lost, the sorry server serves.
    let t0 = uptime(&mut d.guest)?;
    d.lab.kill("httpd-rs1-80")?;
    d.lab.kill("httpd-rs2-80")?;
    let t1 = until(
        &mut d.guest,
        &format!("{} && {} && {}", has(web, "10.77.0.13"), hasnt(web, "10.77.0.11"), hasnt(web, "10.77.0.12")),
        30,
    )?;
    eprintln!("quorum lost: the sorry server alone after {:.2} s (bound {WEB_BOUND} s)", t1 - t0);
    assert!(t1 - t0 <= WEB_BOUND, "the sorry server took over after {:.2} s", t1 - t0);
    let t = requests(&d, web, 20)?;
    assert_eq!((t.failures, t.count("rs3")), (0, 20), "the sorry server serves: {t:?}");
    let v = checks(&mut d.guest)?;
    assert_eq!(v["services"][0]["sorry_server_active"], true, "{v}");

    // They come back: the reals serve again, the sorry server leaves.
    let (rs1, rs2) = (d.dr_reals[0].clone(), d.dr_reals[1].clone());
    let t2 = uptime(&mut d.guest)?;
    d.lab.serve_http(&rs1, 80)?;
    d.lab.serve_http(&rs2, 80)?;
    let t3 = until(
        &mut d.guest,
        &format!("{} && {} && {}", has(web, "10.77.0.11"), has(web, "10.77.0.12"), hasnt(web, "10.77.0.13")),
        30,
    )?;
    eprintln!("quorum regained: reals back, sorry server out after {:.2} s (bound {WEB_BOUND} s)", t3 - t2);
    assert!(t3 - t2 <= WEB_BOUND, "the reals came back after {:.2} s", t3 - t2);
    let t = requests(&d, web, 20)?;
    assert_eq!((t.failures, t.count("rs1"), t.count("rs2")), (0, 10, 10), "{t:?}");
    let logs = d.guest.sh_ok("lbd ctl logs 500")?;
    assert!(logs.contains("web: quorum lost (alive weight 0 < 1), sorry server in"), "{logs}");
    assert!(logs.contains("web: quorum regained"), "{logs}");
    Ok(())
}
