//! End-to-end VRRP in guests (real kernels, TCG): two directors share the
//! VIP in front of DR real servers (namespaces, the VIP on their lo) and a
//! client namespace. The master dies (SIGKILL of its QEMU) or loses its
//! uplink (QMP `set_link`): the backup owns the VIP and the client is served
//! within Master_Down plus a margin; the old master comes back and preempts
//! (or not, with `preempt = false`). The IPVS sync daemon follows the VRRP
//! state, and a long download through the VIP survives the master's death.
//! Debian's keepalived in a peer guest interoperates both ways, VRRPv2 with
//! PASS authentication and VRRPv3.
//!
//! Run after `cargo run --release -p image -- build`, one test at a time
//! (`--test-threads=1`): each test runs two guests.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tests::guest::Guest;
use tests::http;
use tests::topo::{
    CLIENT_IP, SYNC_DAEMON, VRID, VRRP_VIP, VrrpLab, has_addr, keepalived_conf, keepalived_log, pair_config, pair_ip,
    start_keepalived, stop_keepalived, vrrp_instance, vrrp_state, watch_ownership,
};
use tests::wire::{self, Capture};

/// Slack on top of Master_Down for a takeover to be seen by the client
/// (the FSM, adding the VIP, the GARP, the client's next probe; under TCG).
const MARGIN: Duration = Duration::from_millis(1000);
/// How long a steady state is sampled.
const STEADY: Duration = Duration::from_secs(5);

/// Master_Down_Interval of a backup with `prio` (RFC 5798: 3 adverts + skew).
fn master_down(advert: Duration, prio: u32) -> Duration {
    advert * 3 + advert * (256 - prio) / 256
}

/// Master_Down_Interval of a VRRPv2 backup (skew in whole seconds' terms).
fn master_down_v2(advert: Duration, prio: u32) -> Duration {
    advert * 3 + Duration::from_secs(1) * (256 - prio) / 256
}

fn ip4(s: &str) -> Ipv4Addr {
    s.parse().expect("an IPv4 address")
}

/// Waits until `f` holds, polling every 100 ms; fails with `what` after `within`.
fn wait_until(within: Duration, what: &str, mut f: impl FnMut() -> Result<bool>) -> Result<Duration> {
    let t0 = Instant::now();
    loop {
        if f()? {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > within {
            bail!("{what}: not within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Both guests up, `master` owns the VIP and says master, `backup` does not.
fn wait_roles(master: &mut Guest, backup: &mut Guest, within: Duration) -> Result<Duration> {
    let what = format!("{} master and {} backup", master.name, backup.name);
    wait_until(within, &what, || {
        Ok(vrrp_state(master)? == "master"
            && has_addr(master, VRRP_VIP)?
            && vrrp_state(backup)? == "backup"
            && !has_addr(backup, VRRP_VIP)?)
    })
    .with_context(|| format!("{}\n{}", vrrp_dump(master), vrrp_dump(backup)))
}

fn vrrp_dump(g: &mut Guest) -> String {
    let st = g.sh("lbd ctl vrrp").map(|r| r.1).unwrap_or_default();
    let logs = g.sh("lbd ctl logs 40").map(|r| r.1).unwrap_or_default();
    format!("== {} lbd ctl vrrp:\n{st}\n== {} lbd ctl logs:\n{logs}", g.name, g.name)
}

fn instance(g: &mut Guest) -> Result<Value> {
    let v: Value = serde_json::from_str(&g.sh_ok("lbd ctl vrrp")?)?;
    Ok(v["instances"][0].clone())
}

/// `ipvsadm -L --daemon` and `lbd ctl list --daemon` agree and name exactly
/// the `role` daemon.
fn check_daemon(g: &mut Guest, role: &str) -> Result<()> {
    let adm = g.sh_ok("ipvsadm -L --daemon")?;
    let lbd = g.sh_ok("lbd ctl list --daemon")?;
    let other = if role == "master" { "backup" } else { "master" };
    if !adm.contains(&format!("{role} sync daemon (mcast=eth0, syncid=7")) || adm.contains(other) {
        bail!("{}: ipvsadm -L --daemon shows\n{adm}\nwanted only the {role} daemon", g.name);
    }
    if adm != lbd {
        bail!("{}: lbd ctl list --daemon\n{lbd}\ndiffers from ipvsadm -L --daemon\n{adm}", g.name);
    }
    Ok(())
}

fn wait_daemon(g: &mut Guest, role: &str, within: Duration) -> Result<()> {
    let t0 = Instant::now();
    loop {
        match check_daemon(g, role) {
            Ok(()) => return Ok(()),
            Err(e) if t0.elapsed() > within => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Requests through the VIP: all answered, by every real.
fn check_served(vl: &VrrpLab, n: usize) -> Result<http::Tally> {
    let t = vl
        .client
        .ns
        .in_thread(move || http::tally(VRRP_VIP, 80, n, Duration::from_secs(2), Duration::from_secs(60)))?;
    if t.failures != 0 || t.by_name.len() != vl.reals.len() {
        bail!("requests through the VIP: {t:?}");
    }
    Ok(t)
}

/// The steady state: `m` owns the VIP alone (sampled in both guests), and
/// only `m` advertises on the wire.
fn check_steady(vl: &VrrpLab, m: &mut Guest, b: &mut Guest, m_ip: &str, b_ip: &str, advert: Duration) -> Result<()> {
    let cap = Capture::start(&vl.lab, STEADY * 2);
    let o = watch_ownership(m, b, STEADY)?;
    let pkts = cap.stop()?;
    println!(
        "steady state {} master / {} backup: {} samples, both held the VIP at most {:?}, none {:?}; adverts {} / {}",
        m.name,
        b.name,
        o.samples,
        o.both,
        o.none,
        wire::adverts_from(&pkts, ip4(m_ip), VRID).len(),
        wire::adverts_from(&pkts, ip4(b_ip), VRID).len()
    );
    if o.held.1 != 0 || o.both > advert || o.none > Duration::ZERO {
        bail!("steady state: {} should hold the VIP alone: {o:?}", m.name);
    }
    let (am, ab) = (wire::adverts_from(&pkts, ip4(m_ip), VRID), wire::adverts_from(&pkts, ip4(b_ip), VRID));
    let want = (STEADY.as_secs_f64() / advert.as_secs_f64()) as usize;
    if !ab.is_empty() || am.len() + 1 < want {
        bail!(
            "steady state on the wire: {} adverts from the master {m_ip} (want ~{want}), {} from the backup {b_ip}",
            am.len(),
            ab.len()
        );
    }
    Ok(())
}

/// Kills `dead` (SIGKILL of its QEMU) and measures until `heir` owns the
/// VIP and until the client is served again.
fn kill_and_take_over(vl: &VrrpLab, dead: Guest, heir: &mut Guest, bound: Duration) -> Result<(Duration, Duration)> {
    let name = dead.name.clone();
    let t0 = Instant::now();
    drop(dead); // SIGKILL, then wait for QEMU: the box is gone
    let served = vl.wait_served(bound + Duration::from_secs(10))?;
    let vip = t0.elapsed();
    wait_until(Duration::from_secs(5), "the heir owns the VIP", || has_addr(heir, VRRP_VIP))?;
    println!("{name} killed: {} serves after {served:?} (bound {bound:?})", heir.name);
    if served > bound {
        bail!("{name} killed: the client was served by {} only after {served:?} (bound {bound:?})", heir.name);
    }
    Ok((served, vip))
}

fn sync_cfg(i: usize, prio: u8, preempt: bool) -> String {
    let extra = if preempt { "" } else { "preempt = false\n" };
    pair_config(i, 2, &(vrrp_instance(prio, 3, "1", extra) + SYNC_DAEMON))
}

/// The backup's connection table holds entries the master synced for the
/// client's connections to the VIP.
fn synced_entries(g: &mut Guest) -> Result<Vec<String>> {
    let out = g.sh_ok("ipvsadm -Lnc")?;
    Ok(out
        .lines()
        .filter(|l| l.contains(&format!("{CLIENT_IP}:")) && l.contains(&format!("{VRRP_VIP}:80")))
        .map(str::to_string)
        .collect())
}

#[test]
fn pair_master_killed_backup_serves_download_survives_old_master_preempts() -> Result<()> {
    let advert = Duration::from_secs(1);
    let vl = VrrpLab::new(2)?;
    let (ip_a, ip_b) = (pair_ip(0), pair_ip(1));
    let all = Capture::start(&vl.lab, Duration::from_secs(900));
    let mut a = vl.boot(0, "lb1", &sync_cfg(0, 150, true))?;
    let mut b = vl.boot(1, "lb2", &sync_cfg(1, 100, true))?;
    a.wait_ready()?;
    b.wait_ready()?;
    wait_roles(&mut a, &mut b, Duration::from_secs(30))?;
    check_steady(&vl, &mut a, &mut b, &ip_a, &ip_b, advert)?;
    let st = instance(&mut b)?;
    assert_eq!(st["master"]["ip"], ip_a.as_str(), "the backup knows its master: {st}");
    assert_eq!(st["drops"], serde_json::json!({}), "no advert dropped between two lbd: {st}");
    assert_eq!(instance(&mut a)?["effective_priority"], 150);

    // Connection sync: master daemon on the master, backup daemon on the backup.
    check_daemon(&mut a, "master")?;
    check_daemon(&mut b, "backup")?;
    let cap = Capture::start(&vl.lab, Duration::from_secs(60));
    let t = check_served(&vl, 20)?;
    println!("through the VIP: {t:?}");
    // The master flushes its sync buffer at least every 2 s.
    let seen =
        wait_until(
            Duration::from_secs(10),
            "synced entries on the backup",
            || Ok(!synced_entries(&mut b)?.is_empty()),
        )?;
    let pkts = cap.stop()?;
    let from = |ip: &str| pkts.iter().filter(|p| p.is_ipvs_sync(8848) && p.src == ip4(ip)).collect::<Vec<_>>();
    let (sa, sb) = (from(&ip_a), from(&ip_b));
    assert!(!sa.is_empty(), "no IPVS sync message from the master on the wire");
    assert!(sa.iter().all(|p| p.dst == ip4("224.0.0.81")), "sync goes to 224.0.0.81");
    assert!(sb.is_empty(), "the backup sent {} sync messages", sb.len());
    let entries = synced_entries(&mut b)?;
    println!("backup's table {seen:?} after the requests ({} sync messages):\n{}", sa.len(), entries.join("\n"));
    assert!(
        entries.iter().any(|l| l.contains("10.77.0.11:80")) && entries.iter().any(|l| l.contains("10.77.0.12:80")),
        "the backup's entries name both reals: {entries:?}"
    );

    // A long download through the VIP, then the master dies in the middle.
    let (bytes, rate) = (3_000_000u64, 200_000u64);
    let progress = Arc::new(AtomicU64::new(0));
    let p = progress.clone();
    let dl = vl.client.ns.spawn_thread(move || {
        http::download(VRRP_VIP, 80, bytes, rate, Duration::from_secs(60), Duration::from_secs(120), &p)
    });
    // Mid-download, and synced: an ESTABLISHED entry for it on the backup.
    wait_until(Duration::from_secs(15), "the download's entry synced to the backup", || {
        Ok(progress.load(Ordering::Relaxed) > bytes / 5
            && synced_entries(&mut b)?.iter().any(|l| l.contains("ESTABLISHED")))
    })?;
    let at_kill = progress.load(Ordering::Relaxed);
    let bound = master_down(advert, 100) + MARGIN;
    let (served, _) = kill_and_take_over(&vl, a, &mut b, bound)?;
    assert_eq!(vrrp_state(&mut b)?, "master");
    wait_daemon(&mut b, "master", Duration::from_secs(5))?;
    let d = dl.join().map_err(|_| anyhow::anyhow!("download thread panicked"))???;
    println!(
        "download across the kill: {} of {} bytes from {} in {:?} (killed at {at_kill} bytes; longest stall {:?})",
        d.received, d.expected, d.server, d.took, d.longest_stall
    );
    assert_eq!(d.received, bytes);
    assert!(at_kill < bytes, "the master was killed after the download ended");
    assert!(d.longest_stall >= served.saturating_sub(Duration::from_secs(1)), "the download saw the outage: {d:?}");

    // The old master comes back and preempts.
    let mut a = vl.boot(0, "lb1-again", &sync_cfg(0, 150, true))?;
    a.wait_ready()?;
    let ready = Instant::now();
    let took = wait_roles(&mut a, &mut b, master_down(advert, 150) + Duration::from_secs(10))?;
    println!("lb1 back: master again {:?} after lbd ready (Master_Down {:?})", took, master_down(advert, 150));
    assert!(ready.elapsed() <= master_down(advert, 150) + Duration::from_secs(10));
    check_served(&vl, 10)?;
    wait_daemon(&mut a, "master", Duration::from_secs(5))?;
    wait_daemon(&mut b, "backup", Duration::from_secs(5))?;
    check_steady(&vl, &mut a, &mut b, &ip_a, &ip_b, advert)?;
    let pkts = all.stop()?;
    let overlap = wire::dual_master(&pkts, ip4(&ip_a), ip4(&ip_b), VRID, advert);
    println!("over the whole test, both advertised as master for at most {overlap:?}");
    assert!(overlap <= advert, "two masters for {overlap:?}");
    Ok(())
}

/// The master loses its uplink (QEMU's NIC link down: carrier loss in the
/// guest): it goes to fault and the peer takes over. With `preempt = false`
/// on both, the old master, higher priority, stays backup when its cable is
/// back. lb1 boots first so that it is the master before lb2 exists.
#[test]
fn pair_uplink_down_goes_to_fault_the_peer_takes_over_and_keeps_it_without_preempt() -> Result<()> {
    let advert = Duration::from_secs(1);
    let vl = VrrpLab::new(2)?;
    let (ip_a, ip_b) = (pair_ip(0), pair_ip(1));
    let mut a = vl.boot(0, "lb1", &sync_cfg(0, 150, false))?;
    a.wait_ready()?;
    wait_until(Duration::from_secs(20), "lb1 master alone", || {
        Ok(vrrp_state(&mut a)? == "master" && has_addr(&mut a, VRRP_VIP)?)
    })?;
    let mut b = vl.boot(1, "lb2", &sync_cfg(1, 100, false))?;
    b.wait_ready()?;
    wait_roles(&mut a, &mut b, Duration::from_secs(20))?;
    check_served(&vl, 10)?;

    // Pull the master's cable.
    let t0 = Instant::now();
    a.set_link(0, false)?;
    wait_until(Duration::from_secs(10), "lb1 in fault without the VIP", || {
        Ok(vrrp_state(&mut a)? == "fault" && !has_addr(&mut a, VRRP_VIP)?)
    })
    .with_context(|| vrrp_dump(&mut a))?;
    let fault = t0.elapsed();
    let served = vl.wait_served(Duration::from_secs(20))?;
    let took = t0.elapsed();
    let bound = master_down(advert, 100) + MARGIN;
    println!(
        "uplink down: lb1 in fault after {fault:?}, lb2 serves {took:?} after the link went down (bound {bound:?}, last wait {served:?})"
    );
    assert!(took <= bound, "lb2 served only {took:?} after lb1's uplink went down");
    assert_eq!(vrrp_state(&mut b)?, "master");
    assert!(has_addr(&mut b, VRRP_VIP)?);
    let st = instance(&mut a)?;
    assert!(st["last_error"].as_str().unwrap_or("").contains("eth0 is down"), "the fault names its reason: {st}");
    wait_daemon(&mut b, "master", Duration::from_secs(5))?;
    wait_daemon(&mut a, "backup", Duration::from_secs(5))?;
    check_served(&vl, 10)?;

    // The cable is back: lb1 leaves fault as backup and, without preempt,
    // stays backup behind the lower-priority lb2 (watched for longer than
    // lb1's Master_Down several times over).
    a.set_link(0, true)?;
    wait_until(Duration::from_secs(20), "lb1 back as backup", || Ok(vrrp_state(&mut a)? == "backup"))
        .with_context(|| vrrp_dump(&mut a))?;
    let cap = Capture::start(&vl.lab, Duration::from_secs(60));
    let o = watch_ownership(&mut b, &mut a, master_down(advert, 150) * 3)?;
    let pkts = cap.stop()?;
    println!("uplink up, nopreempt: lb1 (150) stays backup behind lb2 (100): {o:?}");
    assert_eq!(o.held.1, 0, "lb1 took the VIP back: {o:?}");
    assert_eq!(o.none, Duration::ZERO, "{o:?}");
    assert!(wire::adverts_from(&pkts, ip4(&ip_a), VRID).is_empty(), "lb1 advertised");
    assert!(!wire::adverts_from(&pkts, ip4(&ip_b), VRID).is_empty(), "lb2 did not advertise");
    assert_eq!(vrrp_state(&mut b)?, "master");
    assert_eq!(vrrp_state(&mut a)?, "backup");
    let st = instance(&mut a)?;
    assert_eq!(st["master"]["ip"], ip_b.as_str(), "lb1 follows lb2: {st}");
    assert_eq!(st["master"]["priority"], 100);
    check_served(&vl, 10)?;
    wait_daemon(&mut a, "backup", Duration::from_secs(5))?;
    wait_daemon(&mut b, "master", Duration::from_secs(5))?;
    Ok(())
}

/// Is keepalived in `k` in the wanted role: its last state change in its
/// log, and the VIP on its eth0 exactly when master.
fn ka_role(k: &mut Guest, master: bool) -> Result<bool> {
    let log = keepalived_log(k);
    let last = log.lines().rev().find(|l| l.contains("Entering ")).unwrap_or("").to_string();
    let want = if master { "Entering MASTER STATE" } else { "Entering BACKUP STATE" };
    Ok(last.contains(want) && has_addr(k, VRRP_VIP)? == master)
}

/// lbd in `l` master with the VIP, keepalived in `k` backup without it.
fn lbd_master(l: &mut Guest, k: &mut Guest) -> Result<bool> {
    Ok(vrrp_state(l)? == "master" && has_addr(l, VRRP_VIP)? && ka_role(k, false)?)
}

/// keepalived in `k` master with the VIP, lbd in `l` backup without it.
fn ka_master(l: &mut Guest, k: &mut Guest) -> Result<bool> {
    Ok(ka_role(k, true)? && vrrp_state(l)? == "backup" && !has_addr(l, VRRP_VIP)?)
}

/// lbd as keepalived's backup: it follows keepalived's adverts (`prio`)
/// and dropped none of them.
fn check_follows_keepalived(l: &mut Guest, ip_k: &str, prio: u8, tag: &str) -> Result<()> {
    let st = instance(l)?;
    println!("{tag}: lbd as keepalived's backup: {st}");
    assert_eq!(st["master"]["ip"], ip_k, "{tag}: {st}");
    assert_eq!(st["master"]["priority"], prio, "{tag}: {st}");
    assert_eq!(st["drops"], serde_json::json!({}), "{tag}: lbd dropped keepalived's adverts: {st}");
    assert!(st["rx_adverts"].as_u64().unwrap_or(0) >= 3, "{tag}: {st}");
    Ok(())
}

/// lbd (director 0) and Debian's keepalived (director 1, VRRP only; its
/// IPVS table is the same service programmed by lbd from a config without
/// `[vrrp]`), in one lab, both versions and both directions in each:
///
/// 1. VRRPv2 + PASS, lbd 100 / keepalived 50: lbd master, keepalived backup.
/// 2. lbd's box dies: keepalived takes over and serves.
/// 3. lbd's box comes back with priority 40: keepalived stays master, lbd
///    follows its adverts (none dropped).
/// 4. Both switch to VRRPv3 (keepalived stopped, lbd's config applied,
///    keepalived started again), keepalived 100 / lbd 50: keepalived
///    master (preempting lbd), lbd backup.
/// 5. keepalived's box dies: lbd takes over and serves.
/// 6. keepalived's box comes back with priority 50: lbd stays master,
///    keepalived backup.
///
/// In every steady state exactly one holds the VIP and only it advertises.
#[test]
fn interop_keepalived_v2_pass_then_v3_both_directions() -> Result<()> {
    let advert = Duration::from_secs(1);
    let vl = VrrpLab::new(2)?;
    let (ip_l, ip_k) = (pair_ip(0), pair_ip(1));
    let pass = "s3cret";
    let lbd_cfg = |version: u8, prio| {
        let auth = if version == 2 { format!("auth_pass = \"{pass}\"\n") } else { String::new() };
        pair_config(0, 2, &vrrp_instance(prio, version, "1", &auth))
    };
    let ka_lbd_cfg = pair_config(1, 2, "");
    let ka_conf = |version: u8, prio| keepalived_conf(prio, version, "1", (version == 2).then_some(pass), false);

    // 1. VRRPv2 + PASS: lbd 100, keepalived 50.
    let tag = "v2+PASS";
    let mut l = vl.boot(0, "lbd", &lbd_cfg(2, 100))?;
    let mut k = vl.boot_keepalived(1, "keepalived", &ka_lbd_cfg)?;
    l.wait_ready()?;
    k.wait_ready()?;
    assert_eq!(vrrp_state(&mut k)?, "none", "lbd runs no VRRP in the keepalived guest");
    start_keepalived(&mut k, &ka_conf(2, 50))?;
    wait_until(Duration::from_secs(30), &format!("{tag}: lbd master, keepalived backup"), || {
        lbd_master(&mut l, &mut k)
    })
    .with_context(|| format!("{}\n{}", vrrp_dump(&mut l), keepalived_log(&mut k)))?;
    check_steady(&vl, &mut l, &mut k, &ip_l, &ip_k, advert)?;
    check_served(&vl, 10)?;

    // 2. lbd's box dies: keepalived takes over.
    let bound = master_down_v2(advert, 50) + MARGIN;
    kill_and_take_over(&vl, l, &mut k, bound).with_context(|| keepalived_log(&mut k))?;
    wait_until(Duration::from_secs(5), "keepalived master", || ka_role(&mut k, true))?;

    // 3. lbd comes back, lower: it follows keepalived's VRRPv2 + PASS adverts.
    let mut l = vl.boot(0, "lbd-again", &lbd_cfg(2, 40))?;
    l.wait_ready()?;
    wait_until(Duration::from_secs(20), &format!("{tag}: keepalived master, lbd backup"), || ka_master(&mut l, &mut k))
        .with_context(|| format!("{}\n{}", vrrp_dump(&mut l), keepalived_log(&mut k)))?;
    check_steady(&vl, &mut k, &mut l, &ip_k, &ip_l, advert)?;
    check_follows_keepalived(&mut l, &ip_k, 50, tag)?;
    check_served(&vl, 10)?;

    // 4. VRRPv3: keepalived 100, lbd 50.
    let tag = "v3";
    stop_keepalived(&mut k)?;
    l.write_file("/tmp/v3.toml", lbd_cfg(3, 50).as_bytes())?;
    l.sh_ok("lbd ctl apply /tmp/v3.toml")?;
    start_keepalived(&mut k, &ka_conf(3, 100))?;
    wait_until(Duration::from_secs(30), &format!("{tag}: keepalived master, lbd backup"), || ka_master(&mut l, &mut k))
        .with_context(|| format!("{}\n{}", vrrp_dump(&mut l), keepalived_log(&mut k)))?;
    check_steady(&vl, &mut k, &mut l, &ip_k, &ip_l, advert)?;
    check_follows_keepalived(&mut l, &ip_k, 100, tag)?;
    assert_eq!(instance(&mut l)?["version"], 3);
    check_served(&vl, 10)?;

    // 5. keepalived's box dies: lbd takes over.
    let bound = master_down(advert, 50) + MARGIN;
    kill_and_take_over(&vl, k, &mut l, bound)?;
    assert_eq!(vrrp_state(&mut l)?, "master");

    // 6. keepalived comes back, lower: it stays backup behind lbd's VRRPv3.
    let mut k = vl.boot_keepalived(1, "keepalived-again", &ka_lbd_cfg)?;
    k.wait_ready()?;
    start_keepalived(&mut k, &ka_conf(3, 50))?;
    wait_until(Duration::from_secs(20), &format!("{tag}: lbd master, keepalived backup"), || {
        lbd_master(&mut l, &mut k)
    })
    .with_context(|| format!("{}\n{}", vrrp_dump(&mut l), keepalived_log(&mut k)))?;
    check_steady(&vl, &mut l, &mut k, &ip_l, &ip_k, advert)?;
    check_served(&vl, 10)?;
    Ok(())
}
