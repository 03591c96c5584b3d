//! Conformance of `lbd import keepalived`: in one debug guest, Debian's
//! keepalived programs IPVS from a keepalived.conf; after it stops, lbd
//! applies the config imported from the same file. `ipvsadm -Ln` must read
//! the same both times (the first file has no health checks, so keepalived
//! puts every real server in; seed 002's real servers pass their checks,
//! keepalived's and then lbd's imported ones).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tests::guest::{Guest, GuestSpec};
use tests::lab::Lab;

/// Address, fwmark and group services; every method; persistence with
/// granularity and without a port; scheduler flags; one-packet UDP;
/// weights and thresholds; the deprecated names.
const CONF: &str = r#"
! lbd import conformance
$NET=10.90.0
global_defs {
    router_id import-e2e
}

virtual_server_group WEB {
    ${NET}.100 80
    ${NET}.101-102 80
}

virtual_server group WEB {
    lb_algo wrr
    lb_kind DR
    protocol TCP
    real_server ${NET}.11 80 {
        weight 3
    }
    real_server ${NET}.12 80 {
        weight 1
        uthreshold 500
        lthreshold 400
    }
}

virtual_server 10.90.0.110 8080 {
    lvs_sched rr
    lvs_method NAT
    persistence_timeout 600
    persistence_granularity 255.255.255.0
    real_server 10.91.0.21 80 {
        weight 2
    }
    real_server 10.91.0.22 8081 {
        weight 0
    }
}

virtual_server 10.90.0.111 53 {
    lvs_sched sh
    sh-port
    sh-fallback
    lvs_method DR
    protocol UDP
    ops
    real_server 10.90.0.11 53 {
    }
    real_server 10.90.0.12 53 {
    }
}

virtual_server 10.90.0.112 {
    lvs_sched lc
    lvs_method TUN
    persistence_timeout
    real_server 198.51.100.7 0 {
    }
}

virtual_server fwmark 301 {
    lvs_sched rr
    lvs_method NAT
    real_server 10.91.0.21 8080 {
    }
}

virtual_server 10.90.0.113 80 {
    lvs_sched rr
    lvs_method DR
    protocol TCP
    real_server 10.90.0.13 {
    }
}

virtual_server fwmark 300 {
    lvs_sched mh
    mh-port
    lb_kind DR
    persistence_timeout 900
    real_server 10.90.0.11 9814 {
        weight 5
    }
    real_server 10.90.0.12 9814 {
        weight 5
    }
}
"#;

/// Waits until `ipvsadm -Sn` has `lines` lines.
fn wait_rules(g: &mut Guest, lines: usize, who: &str, log: &str) -> Result<String> {
    let t0 = Instant::now();
    loop {
        let saved = g.sh_ok("ipvsadm -Sn")?;
        if saved.lines().count() == lines {
            return Ok(saved);
        }
        if t0.elapsed() > Duration::from_secs(180) {
            let log = g.sh(&format!("cat {log}; ps"))?.1;
            bail!("{who}: expected {lines} rules, have:\n{saved}\n{log}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Imports `conf`, then in one guest: `setup`, keepalived's checker from
/// `conf`, its `ipvsadm -Ln`; keepalived stopped; lbd applying the imported
/// config, its `ipvsadm -Ln`. The two must be equal.
fn conformance(name: &str, conf: &str, setup: &str, services: usize, settle: Duration) -> Result<()> {
    let out = lbd::import::keepalived::import_text(&lbd::import::MemFs::default(), conf, "keepalived.conf");
    let Some(toml) = out.toml else { bail!("import failed:\n{}", out.report.text()) };
    let cfg = out.config.expect("config");
    let rules = cfg.services.len() + cfg.services.iter().map(|s| s.reals.len()).sum::<usize>();
    assert_eq!(cfg.services.len(), services, "{}", out.report.text());

    let lab = Lab::new()?;
    let initrd = tests::peer::overlay_initrd(
        &lab.dir.join(name),
        tests::peer::KEEPALIVED,
        &[("/etc/keepalived/keepalived.conf", conf.as_bytes()), ("/etc/imported.toml", toml.as_bytes())],
    )?;
    // An invalid config: lbd pauses (leaves IPVS to keepalived) until a valid
    // one is applied. (Without any config it would run the defaults, no
    // services, and remove keepalived's.)
    let mut spec = GuestSpec::debug(name).config("[system]\nhostnme = \"invalid-on-purpose\"\n");
    spec.initrd = Some(initrd);
    let mut g = Guest::boot(&lab, &spec)?;
    g.wait_ready()?;
    if !setup.is_empty() {
        g.sh_ok(setup)?;
    }

    // keepalived's checker process only (no VRRP: the guest has no NIC).
    g.sh_ok("/usr/sbin/keepalived --check --dont-fork --log-console -f /etc/keepalived/keepalived.conf > /tmp/ka.log 2>&1 &")?;
    wait_rules(&mut g, rules, "keepalived", "/tmp/ka.log")?;
    if !settle.is_zero() {
        // Past the first rounds of checks (and their retries): a failing
        // check would have removed its real server by now.
        std::thread::sleep(settle);
        wait_rules(&mut g, rules, "keepalived after its checks", "/tmp/ka.log")?;
        let log = g.sh_ok("cat /tmp/ka.log")?;
        assert!(!log.contains("failed") && !log.contains("Removing"), "a check failed:\n{log}");
    }
    let theirs = g.sh_ok("ipvsadm -Ln")?;
    g.sh_ok("kill $(pidof keepalived)")?;
    // keepalived removes what it added when it stops.
    let t0 = Instant::now();
    while !g.sh_ok("ipvsadm -Sn")?.trim().is_empty() {
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("keepalived left its services:\n{}", g.sh_ok("ipvsadm -Sn; cat /tmp/ka.log")?);
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    g.sh_ok("lbd ctl apply /etc/imported.toml")?;
    wait_rules(&mut g, rules, "lbd", "/dev/null; lbd ctl logs 50")?;
    let ours = g.sh_ok("ipvsadm -Ln")?;
    assert_eq!(
        ours, theirs,
        "the imported config programs another table than keepalived:\nlbd:\n{ours}\nkeepalived:\n{theirs}"
    );
    Ok(())
}

#[test]
fn imported_keepalived_conf_programs_the_table_keepalived_programs() -> Result<()> {
    let out = lbd::import::keepalived::import_text(&lbd::import::MemFs::default(), CONF, "keepalived.conf");
    assert_eq!(out.report.of(lbd::import::Kind::NotImported).count(), 0, "{}", out.report.text());
    conformance("import", CONF, "", 9, Duration::ZERO)
}

/// Seed 002's keepalived.conf as the operator wrote it, with its real servers
/// answering its TCP checks (their addresses on the guest's loopback, a
/// forking listener on each port: lbd checks both addresses of a port at
/// the same instant), so keepalived keeps them all in, and so do lbd's
/// checks imported from its `TCP_CHECK`s (a real enters lbd's table only
/// after its first good check).
#[test]
fn seed002_imports_to_the_table_keepalived_programs() -> Result<()> {
    let conf = include_str!("../../lbd/src/import/fixtures/seed002_keepalived.conf");
    let out = lbd::import::keepalived::import_text(&lbd::import::MemFs::default(), conf, "keepalived.conf");
    let cfg = out.config.expect("imported");
    assert!(
        cfg.services.iter().all(|s| s.check.as_ref().and_then(|c| c.kind) == Some(lbd::health::config::CheckType::Tcp)),
        "seed 002's TCP_CHECKs import as checks"
    );
    let setup = "ip addr add 192.168.100.34/32 dev lo && ip addr add 192.168.100.35/32 dev lo && \
                 for p in 9814 9826; do nc -ll -p $p -e /bin/true < /dev/null > /dev/null 2>&1 & done";
    conformance("seed002", conf, setup, 2, Duration::from_secs(30))
}
