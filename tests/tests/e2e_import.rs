//! Conformance of `lbd import keepalived`: in one debug guest, Debian's
//! keepalived programs IPVS from a keepalived.conf; after it stops, lbd
//! applies the config imported from the same file. `ipvsadm -Ln` must read
//! the same both times (the file has no health checks, so keepalived puts
//! every real server in).

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

#[test]
fn imported_keepalived_conf_programs_the_table_keepalived_programs() -> Result<()> {
    let out = lbd::import::keepalived::import_text(&lbd::import::MemFs::default(), CONF, "keepalived.conf");
    let Some(toml) = out.toml else { bail!("import failed:\n{}", out.report.text()) };
    assert_eq!(out.report.of(lbd::import::Kind::NotImported).count(), 0, "{}", out.report.text());
    let cfg = out.config.expect("config");
    let rules = cfg.services.len() + cfg.services.iter().map(|s| s.reals.len()).sum::<usize>();
    assert_eq!(cfg.services.len(), 7, "the group expands into three services");

    let lab = Lab::new()?;
    let initrd = tests::peer::overlay_initrd(
        &lab.dir.join("ka"),
        tests::peer::KEEPALIVED,
        &[("/etc/keepalived/keepalived.conf", CONF.as_bytes()), ("/etc/imported.toml", toml.as_bytes())],
    )?;
    // No config disk: lbd leaves IPVS to keepalived until a config is applied.
    let mut spec = GuestSpec::debug("import");
    spec.initrd = Some(initrd);
    let mut g = Guest::boot(&lab, &spec)?;
    g.wait_ready()?;

    // keepalived's checker process only (no VRRP: the guest has no NIC).
    g.sh_ok("/usr/sbin/keepalived --check --dont-fork --log-console -f /etc/keepalived/keepalived.conf > /tmp/ka.log 2>&1 &")?;
    wait_rules(&mut g, rules, "keepalived", "/tmp/ka.log")?;
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
