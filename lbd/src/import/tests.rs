use std::net::IpAddr;
use std::path::Path;

use super::*;
use crate::config::{Forwarding, Protocol, SchedFlag, Scheduler, TunnelType};
use crate::health::config::{CheckSpec, CheckType, DnsType, StatusRange};

const SEED002: &str = include_str!("fixtures/seed002_keepalived.conf");
const FULL: &str = include_str!("fixtures/full.conf");
const FULL_WEB: &str = include_str!("fixtures/conf.d/10-web.conf");
const FULL_DNS: &str = include_str!("fixtures/conf.d/20-dns.conf");
const SEED000: &str = include_str!("fixtures/seed000_lvs_dr.sh");
const SEED003_NAT: &str = include_str!("fixtures/seed003_nat_session.txt");
const SEED003_DR: &str = include_str!("fixtures/seed003_dr_session.txt");
const SEED004: &str = include_str!("fixtures/seed004_rules.sh");

fn full_fs() -> MemFs {
    MemFs::default()
        .with("etc/full.conf", FULL)
        .with("etc/conf.d/10-web.conf", FULL_WEB)
        .with("etc/conf.d/20-dns.conf", FULL_DNS)
}

fn ka(files: &[(&str, &str)]) -> Outcome {
    let mut fs = MemFs::default();
    for (p, t) in files {
        fs = fs.with(p, t);
    }
    keepalived::import_file(&fs, Path::new(files[0].0))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// (line, kind, what) of every entry, for exact report assertions.
fn entries(r: &Report) -> Vec<(usize, Kind, String)> {
    r.entries.iter().map(|e| (e.loc.line, e.kind, e.what.clone())).collect()
}

#[test]
fn seed002_imports_without_error_and_reports_only_what_has_no_equivalent() {
    let out = keepalived::import_text(&MemFs::default(), SEED002, "keepalived.conf");
    assert!(!out.report.has_errors(), "{}", out.report.text());
    let cfg = out.config.unwrap();
    // The VRRP instance.
    let vi = &cfg.vrrp.instances[0];
    assert_eq!((vi.name.as_str(), vi.interface.as_str(), vi.vrid, vi.priority), ("VI_1", "enp1s0", 100, 100));
    assert_eq!(vi.version, 2, "keepalived's default VRRP version is 2");
    assert_eq!(vi.advert_interval, 1.0);
    assert_eq!(vi.auth_pass.as_deref(), Some("xxxx"));
    assert_eq!(vi.source, Some(ip("192.168.100.244")));
    assert_eq!(vi.vips.len(), 1);
    assert_eq!(vi.vips[0].address.to_string(), "192.168.100.111/32");
    // The FTP service: fwmark 300, wrr, DR, persistent 900 s.
    let ftp = &cfg.services[0];
    assert_eq!(ftp.fwmark, Some(300));
    assert_eq!(ftp.scheduler, Scheduler::Wrr);
    assert_eq!(ftp.forwarding, Forwarding::Dr);
    assert_eq!(ftp.persistence.as_ref().unwrap().timeout, 900);
    let reals: Vec<String> = ftp.reals.iter().map(|r| r.address.to_string()).collect();
    // keepalived programs port 0 for DR reals of a fwmark service: so does the import.
    assert_eq!(reals, ["192.168.100.34", "192.168.100.35"]);
    assert!(ftp.reals.iter().all(|r| r.weight == 1 && r.forwarding.is_none()));
    // The REST service.
    let rest = &cfg.services[1];
    assert_eq!(rest.address.unwrap().to_string(), "192.168.100.111:9826");
    assert_eq!((rest.protocol, rest.scheduler, rest.forwarding), (Protocol::Tcp, Scheduler::Wrr, Forwarding::Dr));
    assert_eq!(rest.reals.len(), 2);
    assert_eq!(cfg.services.len(), 2);
    // The TCP_CHECKs are checks: the same on both reals of each service, so
    // once on the service, with the virtual_server's delay_loop 6.
    let tcp = CheckSpec {
        kind: Some(CheckType::Tcp),
        delay_loop: Some(6.0),
        connect_timeout: Some(3.0),
        retry: Some(3),
        delay_before_retry: Some(3.0),
        ..CheckSpec::default()
    };
    // The FTP reals lose their port (as keepalived programs them), the check keeps it.
    assert_eq!(ftp.check.as_deref(), Some(&CheckSpec { connect_port: Some(9814), ..tcp.clone() }));
    assert_eq!(rest.check.as_deref(), Some(&tcp));
    assert!(cfg.services.iter().flat_map(|s| &s.reals).all(|r| r.check.is_none()));
    let resolved = crate::health::config::resolve(&cfg);
    let targets: Vec<String> =
        resolved.checks.iter().flatten().map(|c| c.as_ref().unwrap().target.to_string()).collect();
    assert_eq!(targets, ["192.168.100.34:9814", "192.168.100.35:9814", "192.168.100.34:9826", "192.168.100.35:9826"]);
    // The report: the invalid router id and the initial state; nothing else.
    let e = entries(&out.report);
    let want: Vec<(usize, Kind, String)> =
        [(4, Kind::NotImported, "router_id"), (8, Kind::Note, "state"), (25, Kind::Note, "virtual_server")]
            .into_iter()
            .map(|(l, k, w)| (l, k, w.to_string()))
            .collect();
    assert_eq!(e, want, "{}", out.report.text());
    let text = out.report.text();
    assert!(!text.contains("pending") && !text.contains("CHECK"), "{text}");
    assert!(text.contains("import: 0 error(s), 1 not imported, 2 note(s)"), "{text}");
}

#[test]
fn imported_toml_reparses_to_the_same_config() {
    for out in [
        keepalived::import_text(&MemFs::default(), SEED002, "k.conf"),
        keepalived::import_file(&full_fs(), Path::new("etc/full.conf")),
    ] {
        let toml = out.toml.expect("imported");
        let cfg = crate::config::parse(&toml, "imported.toml").unwrap();
        assert_eq!(Some(&cfg), out.config.as_ref());
        // And again through the TOML lbd persists.
        assert_eq!(crate::config::parse(&cfg.to_toml(), "again.toml").unwrap(), cfg);
        // And through the JSON copy lbd compacts a large config with.
        crate::import::fuzz::config(&toml);
        assert!(toml.starts_with("# Imported from"), "{toml}");
    }
}

#[test]
fn full_fixture_maps_every_supported_feature() {
    let out = keepalived::import_file(&full_fs(), Path::new("etc/full.conf"));
    assert!(!out.report.has_errors(), "{}", out.report.text());
    let c = out.config.unwrap();
    assert_eq!(c.system.hostname, "lb-1");
    assert_eq!((c.ipvs.timeouts.tcp, c.ipvs.timeouts.tcpfin, c.ipvs.timeouts.udp), (Some(7200), Some(60), Some(120)));
    // VRRP.
    let web = &c.vrrp.instances[0];
    assert_eq!((web.version, web.priority, web.advert_interval, web.preempt), (3, 150, 0.5, false));
    assert_eq!(web.source, Some(ip("10.0.0.2")));
    assert_eq!(web.unicast_peers, vec![ip("10.0.0.3")]);
    assert_eq!(web.vips[0].address.to_string(), "10.0.0.100/24", "$VIP substituted with ${{}}");
    assert_eq!(web.vips[0].interface.as_deref(), Some("eth0"));
    assert_eq!(web.vips[0].label.as_deref(), Some("eth0:web"));
    assert_eq!(web.vips[1].address.to_string(), "10.0.0.101/32");
    assert_eq!((web.track[0].interface.as_str(), web.track[0].weight), ("eth1", -20));
    assert_eq!((web.garp.delay, web.garp.repeat), (10, 3), "global GARP defaults");
    let db = &c.vrrp.instances[1];
    assert_eq!((db.name.as_str(), db.vrid, db.priority), ("VI_DB", 52, 100), "`{{` on its own line");
    assert_eq!(c.vrrp.sync_groups[0].instances, ["VI_WEB", "VI_DB"]);
    let sd = c.vrrp.sync_daemon.as_ref().unwrap();
    assert_eq!(
        (sd.interface.as_str(), sd.instance.as_deref(), sd.syncid, sd.maxlen),
        ("eth0", Some("VI_WEB"), 51, Some(1400))
    );
    // Services: the group expands to two, then the included 20-dns.conf.
    assert_eq!(c.services.len(), 4);
    for (s, vip) in c.services[..2].iter().zip(["10.0.0.100:80", "10.0.0.101:80"]) {
        assert_eq!(s.address.unwrap().to_string(), vip);
        assert_eq!((s.scheduler, s.forwarding), (Scheduler::Wlc, Forwarding::Nat));
        let p = s.persistence.as_ref().unwrap();
        assert_eq!((p.timeout, p.netmask.map(|m| m.0)), (360, Some(24)), "persistence_timeout without value is 360 s");
        assert_eq!(s.reals[0].address.to_string(), "10.0.1.10:8080");
        assert_eq!(s.reals[0].weight, 3);
        assert_eq!((s.reals[1].upper_threshold, s.reals[1].lower_threshold), (1000, 800));
    }
    let dns = &c.services[2];
    assert_eq!(
        (dns.protocol, dns.scheduler, dns.forwarding, dns.one_packet),
        (Protocol::Udp, Scheduler::Sh, Forwarding::Dr, true)
    );
    assert_eq!(dns.scheduler_flags, vec![SchedFlag::ShPort]);
    assert_eq!(dns.reals.iter().map(|r| r.weight).collect::<Vec<_>>(), [2, 2]);
    let tun = &c.services[3];
    assert_eq!((tun.fwmark, tun.scheduler, tun.forwarding), (Some(7), Scheduler::Mh, Forwarding::Tun));
    assert_eq!(tun.scheduler_flags, vec![SchedFlag::MhFallback]);
    let t = tun.reals[0].tunnel.as_ref().unwrap();
    assert_eq!((t.kind, t.port), (TunnelType::Gue, Some(6080)));
    // What has no equivalent is reported, located in the file it came from.
    let text = out.report.text();
    for want in [
        "etc/full.conf:12: not imported: notification_email: lvsbox sends no e-mail",
        "etc/full.conf:13: not imported: smtp_server",
        "etc/full.conf:16: not imported: vrrp_script",
        "etc/full.conf:39: not imported: track_script",
        "etc/full.conf:42: not imported: notify_master: lvsbox runs no scripts",
        "etc/conf.d/10-web.conf:20: not imported: path: takes one word; `status_code 200` is not imported",
        "etc/conf.d/10-web.conf:28: not imported: MISC_CHECK: lvsbox runs no scripts",
        "etc/full.conf:22: note: state",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
    assert_eq!(out.report.of(Kind::NotImported).count(), 7, "{text}");
    // The checks and what goes with them: sorry server, inhibit, quorum.
    for s in &c.services[..2] {
        let so = s.sorry_server.as_ref().unwrap();
        assert_eq!((so.address.to_string(), so.forwarding, so.weight), ("10.0.1.99:8080".into(), None, 1));
        assert_eq!(s.reals[0].inhibit_on_failure, Some(true));
        let ck = s.reals[0].check.as_ref().unwrap();
        assert_eq!(
            (ck.kind, ck.path.as_deref(), ck.delay_loop, ck.connect_timeout, ck.delay_before_retry),
            (Some(CheckType::Http), Some("/health"), Some(5.0), Some(2.0), Some(3.0)),
            "delay_loop from the virtual_server, keepalived's HTTP delay_before_retry"
        );
        assert!(s.check.is_none() && s.reals[1].check.is_none(), "the MISC_CHECK real is not checked");
    }
    assert_eq!(c.services[3].quorum, Some(1));
}

#[test]
fn syntax_comments_quotes_and_variables() {
    let conf = "! bang comment\n\
                $PORT=80 # a definition with a comment\n\
                $ADDR=192.0.2.10\n\
                virtual_server $ADDR ${PORT} {   ! trailing comment\n\
                  lb_algo \"rr\"\n\
                  lb_kind 'DR'\n\
                  real_server 192.0.2.20 $PORT { weight 5 }#glued comment\n\
                }\n";
    let out = ka(&[("k.conf", conf)]);
    assert!(!out.report.has_errors(), "{}", out.report.text());
    let s = &out.config.unwrap().services[0];
    assert_eq!(s.address.unwrap().to_string(), "192.0.2.10:80");
    assert_eq!((s.scheduler, s.forwarding, s.reals[0].weight), (Scheduler::Rr, Forwarding::Dr, 5));
    // Quoted strings keep spaces and escapes; an unknown variable is reported.
    let mut r = Report::default();
    let nodes = kparse::parse_text(&MemFs::default(), "a \"b c\"'d' \"e\\x41\\n\" $NOPE\n", "q.conf", &mut r);
    assert_eq!(nodes[0].args, ["b cd", "eA\n", "$NOPE"]);
    assert_eq!(entries(&r), [(1, Kind::Note, "$NOPE".to_string())]);
}

#[test]
fn includes_glob_relative_to_the_including_file() {
    let fs = MemFs::default()
        .with("/etc/keepalived/keepalived.conf", "include conf.d/{a,b}*.conf\ninclude /etc/keepalived/late/?.conf\n")
        .with("/etc/keepalived/conf.d/a1.conf", "include ../sub/x.conf\n")
        .with(
            "/etc/keepalived/conf.d/b1.conf",
            "virtual_server 192.0.2.1 80 {\n lb_kind DR\n real_server 192.0.2.9 80\n}\n",
        )
        .with("/etc/keepalived/conf.d/.hidden.conf", "garbage {\n")
        .with("/etc/keepalived/conf.d/c1.conf", "garbage {\n")
        .with("/etc/keepalived/sub/x.conf", "virtual_server 192.0.2.2 80 {\n lb_kind DR\n}\n")
        .with("/etc/keepalived/late/z.conf", "virtual_server 192.0.2.3 80 {\n lb_kind DR\n}\n");
    let out = keepalived::import_file(&fs, Path::new("/etc/keepalived/keepalived.conf"));
    assert!(!out.report.has_errors(), "{}", out.report.text());
    let addrs: Vec<String> = out.config.unwrap().services.iter().map(|s| s.address.unwrap().to_string()).collect();
    assert_eq!(
        addrs,
        ["192.0.2.2:80", "192.0.2.1:80", "192.0.2.3:80"],
        "glob order, nested include relative to its file"
    );
    // A pattern that matches nothing is an error (includer: a note).
    let out = ka(&[("k.conf", "include nothing/*.conf\nincluder maybe/*.conf\n")]);
    assert_eq!(entries(&out.report), [(1, Kind::Error, "include".into()), (2, Kind::Note, "includer".into())]);
    assert!(out.toml.is_none());
    // An include loop stops with a located error instead of recursing forever.
    let out = ka(&[("k.conf", "include k.conf\n")]);
    assert!(
        out.report.text().contains("k.conf:1: error: include: `k.conf` is already being read: an include loop"),
        "{}",
        out.report.text()
    );
    // Also through another file; the depth bound still stops a chain of
    // distinct files.
    let out = ka(&[("k.conf", "include a.conf\n"), ("a.conf", "\ninclude k.conf\n")]);
    assert!(
        out.report.text().contains("a.conf:2: error: include: `k.conf` is already being read"),
        "{}",
        out.report.text()
    );
    let chain: Vec<(String, String)> =
        (0..20).map(|i| (format!("f{i}.conf"), format!("include f{}.conf\n", i + 1))).collect();
    let files: Vec<(&str, &str)> =
        chain.iter().map(|(a, b)| (a.as_str(), b.as_str())).chain([("f20.conf", "")]).collect();
    assert!(ka(&files).report.text().contains("includes nest deeper than 16"));
}

#[test]
fn malformed_input_gets_file_line_errors_and_no_config() {
    let fs = MemFs::default()
        .with("main.conf", "virtual_server 192.0.2.1 80 {\n  include bad.conf\n}\nvrrp_instance X {\n")
        .with("bad.conf", "real_server 192.0.2.300 80 {\n weight lots\n}\nlb_algo \"rr\n}\n");
    let out = keepalived::import_file(&fs, Path::new("main.conf"));
    let text = out.report.text();
    for want in [
        "bad.conf:4: error: syntax: unterminated \"quoted string",
        "main.conf:3: error: }: closes a block that was never opened",
        "main.conf:4: error: {: block is never closed",
        "main.conf:4: error: {: block is never closed",
        "bad.conf:1: error: real_server: `192.0.2.300` is not an IP address",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
    assert!(out.toml.is_none() && out.config.is_none());
}

#[test]
fn lvsbox_validation_errors_point_into_the_keepalived_file() {
    // DR cannot change the port; a duplicate real; VRRP without a VIP.
    let conf = "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n}\n\
                virtual_server 192.0.2.1 80 {\n lb_kind DR\n real_server 192.0.2.9 8080\n real_server 192.0.2.9 8080\n}\n";
    let out = ka(&[("k.conf", conf)]);
    let text = out.report.text();
    assert!(out.report.has_errors(), "{text}");
    assert!(text.contains("k.conf:1: error: vrrp.instances[0]: lvsbox would reject this: an instance needs at least one entry in `vips`"), "{text}");
    assert!(text.contains("k.conf:8: error: services[0].reals[1]"), "{text}");
    assert!(text.contains("k.conf:7: error: services[0].reals[0].address"), "{text}");
}

#[test]
fn deprecated_aliases_and_defaults() {
    let conf = "virtual_server 192.0.2.1 443 {\n lb_algo lc\n real_server 192.0.2.9 443 {\n TCP_CHECK {\n nb_get_retry 3\n }\n }\n}\n\
                virtual_server 192.0.2.1 80 {\n lvs_sched lc\n real_server 192.0.2.9 80\n}\n";
    let out = ka(&[("k.conf", conf)]);
    assert!(!out.report.has_errors(), "{}", out.report.text());
    let c = out.config.unwrap();
    assert_eq!(c.services[0].scheduler, c.services[1].scheduler);
    // nb_get_retry is retry; keepalived's delay_loop and connect_timeout defaults are written out.
    let ck = c.services[0].check.as_ref().unwrap();
    assert_eq!((ck.retry, ck.delay_loop, ck.connect_timeout, ck.alpha), (Some(3), Some(60.0), Some(5.0), None));
    // keepalived's default method is NAT (ipvsadm's is DR).
    assert_eq!(c.services[1].forwarding, Forwarding::Nat);
    // A password longer than keepalived uses is cut as keepalived does; AH is reported.
    let conf = "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n authentication {\n auth_type PASS\n auth_pass 0123456789\n }\n virtual_ipaddress {\n 192.0.2.50\n }\n}\n\
                vrrp_instance B {\n interface eth0\n virtual_router_id 2\n authentication {\n auth_type AH\n auth_pass x\n }\n virtual_ipaddress {\n 192.0.2.51\n }\n}\n";
    let out = ka(&[("k.conf", conf)]);
    let c = out.config.expect("imported");
    assert_eq!(c.vrrp.instances[0].auth_pass.as_deref(), Some("01234567"));
    assert_eq!(c.vrrp.instances[1].auth_pass, None);
    assert!(
        out.report.text().contains("k.conf:15: not imported: authentication: AH authentication is not supported"),
        "{}",
        out.report.text()
    );
}

#[test]
fn checkers_map_onto_check_tables() {
    let conf = r#"virtual_server 192.0.2.1 80 {
    protocol TCP
    delay_loop 10
    retry 2
    virtualhost www.example.com
    quorum 4
    hysteresis 1
    sorry_server 192.0.2.99 80
    sorry_server_lvs_method DR
    inhibit_on_failure
    ha_suspend
    real_server 192.0.2.10 80 {
        weight 2
        delay_before_retry 2
        HTTP_GET {
            url {
                path /health
                status_code 200 301-302
                digest 9B3A0C85A887A256D6939DA88AABD8CD
                regex "^ok"
            }
            url {
                path /other
            }
            connect_timeout 1.5
            bindto 192.0.2.2
            fwmark 9
            http_protocol 1.0
        }
        TCP_CHECK {
        }
    }
    real_server 192.0.2.11 80 {
        weight 2
        SSL_GET {
            url {
                path /
            }
            connect_port 443
            warmup 5
            alpha
        }
    }
    real_server 192.0.2.12 80 {
        weight 2
        PING_CHECK {
            connect_ip 192.0.2.112
            delay_loop 2
        }
    }
    real_server 192.0.2.13 80 {
        weight 2
        MISC_CHECK {
            misc_path /bin/true
        }
        SMTP_CHECK {
        }
        FILE_CHECK {
        }
    }
}
virtual_server 192.0.2.1 53 {
    protocol UDP
    real_server 192.0.2.20 53 {
        UDP_CHECK {
            payload 0a0B0c
            require_reply
            min_reply_length 4
        }
    }
    real_server 192.0.2.21 53 {
        DNS_CHECK {
            type a
            name example.com
            bind_port 5353
        }
    }
    real_server 192.0.2.22 53 {
        TCP_CHECK {
            connect_timeout 2
        }
    }
}
virtual_server fwmark 5 {
    lb_kind DR
    protocol TCP
    quorum 2
    hysteresis 5
    real_server 192.0.2.30 0 {
        TCP_CHECK {
        }
    }
    real_server 192.0.2.31 {
        PING_CHECK {
        }
    }
}
"#;
    let out = ka(&[("k.conf", conf)]);
    assert!(!out.report.has_errors(), "{}", out.report.text());
    let c = out.config.clone().unwrap();
    let web = &c.services[0];
    assert_eq!((web.quorum, web.hysteresis, web.inhibit_on_failure), (Some(4), Some(1), true));
    let so = web.sorry_server.as_ref().unwrap();
    assert_eq!((so.address.to_string(), so.forwarding), ("192.0.2.99:80".into(), Some(Forwarding::Dr)));
    assert!(web.check.is_none(), "different checks stay on the reals");
    let http = web.reals[0].check.clone().unwrap();
    assert_eq!(
        *http,
        CheckSpec {
            kind: Some(CheckType::Http),
            delay_loop: Some(10.0),
            connect_timeout: Some(1.5),
            retry: Some(2),
            delay_before_retry: Some(2.0),
            bindto: Some(ip("192.0.2.2")),
            fwmark: Some(9),
            path: Some("/health".into()),
            status_code: Some(vec![StatusRange(200, 200), StatusRange(301, 302)]),
            regex: Some("^ok".into()),
            digest: Some("9b3a0c85a887a256d6939da88aabd8cd".into()),
            virtualhost: Some("www.example.com".into()),
            ..CheckSpec::default()
        },
        "checker over real_server over virtual_server"
    );
    // SSL_GET: an https check, its URL and port kept.
    let ssl = web.reals[1].check.clone().unwrap();
    assert_eq!(
        (ssl.kind, ssl.connect_port, ssl.path.as_deref(), ssl.warmup, ssl.alpha, ssl.delay_before_retry),
        (Some(CheckType::Https), Some(443), Some("/"), Some(5.0), Some(true), Some(3.0))
    );
    let ping = web.reals[2].check.clone().unwrap();
    assert_eq!(
        (ping.kind, ping.connect_ip, ping.delay_loop, ping.retry, ping.virtualhost),
        (Some(CheckType::Icmp), Some(ip("192.0.2.112")), Some(2.0), Some(2), None)
    );
    assert!(web.reals[3].check.is_none());
    let dns = &c.services[1];
    let udp = dns.reals[0].check.clone().unwrap();
    assert_eq!(
        (udp.kind, udp.payload.as_deref(), udp.require_reply.as_deref()),
        (Some(CheckType::Udp), Some("0a0b0c"), Some(""))
    );
    let d = dns.reals[1].check.clone().unwrap();
    assert_eq!(
        (d.kind, d.dns_type, d.dns_name.as_deref()),
        (Some(CheckType::Dns), Some(DnsType::A), Some("example.com"))
    );
    // A TCP check of a UDP service names the real's port (lvsbox needs it said).
    let t = dns.reals[2].check.clone().unwrap();
    assert_eq!((t.kind, t.connect_port), (Some(CheckType::Tcp), Some(53)));
    let fw = &c.services[2];
    assert_eq!((fw.quorum, fw.hysteresis), (Some(2), Some(1)), "hysteresis below quorum, as lvsbox needs");
    assert_eq!((fw.reals[0].address.port, fw.reals[1].address.port), (Some(0), None));
    assert!(fw.reals[0].check.is_none(), "no port to check");
    assert_eq!(fw.reals[1].check.as_ref().and_then(|c| c.kind), Some(CheckType::Icmp));
    // What lvsbox cannot express is reported where it is.
    let text = out.report.text();
    for want in [
        "k.conf:11: not imported: ha_suspend",
        "k.conf:22: not imported: url: lvsbox checks one URL per real server",
        "k.conf:28: note: http_protocol",
        "k.conf:30: not imported: TCP_CHECK: lvsbox runs one check per real server",
        "k.conf:35: note: SSL_GET: lvsbox's https checks speak TLS 1.3 and 1.2",
        "k.conf:53: not imported: MISC_CHECK",
        "k.conf:56: not imported: SMTP_CHECK",
        "k.conf:58: not imported: FILE_CHECK",
        "k.conf:68: not imported: min_reply_length",
        "k.conf:75: not imported: bind_port",
        "k.conf:88: note: hysteresis: lvsbox needs hysteresis below quorum (2); imported as hysteresis = 1",
        "k.conf:90: not imported: TCP_CHECK: this real server has no port to check",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
    assert!(!text.contains("pending"), "{text}");
    // Malformed checker values are located errors.
    let bad = "virtual_server 192.0.2.1 80 {\n protocol TCP\n real_server 192.0.2.9 80 {\n HTTP_GET {\n url {\n \
               status_code 99\n digest xyz\n }\n }\n }\n}\n";
    let text = ka(&[("b.conf", bad)]).report.text();
    assert!(text.contains("b.conf:6: error: status_code: `99` is not a status code"), "{text}");
    assert!(text.contains("b.conf:7: error: digest: needs an MD5 digest"), "{text}");
}

// ---------------------------------------------------------------- ipvsadm

#[test]
fn seed000_script_with_variables() {
    let out = ipvsadm::import_text(SEED000, "lvs_dr.sh");
    assert!(!out.report.has_errors(), "{}", out.report.text());
    let c = out.config.unwrap();
    assert_eq!(c.services.len(), 1);
    let s = &c.services[0];
    assert_eq!(
        (s.address.unwrap().to_string(), s.scheduler, s.forwarding),
        ("192.168.1.200:80".into(), Scheduler::Rr, Forwarding::Dr)
    );
    let reals: Vec<String> = s.reals.iter().map(|r| format!("{} {}", r.address, r.weight)).collect();
    assert_eq!(reals, ["192.168.1.11:80 1", "192.168.1.12:80 1"]);
    assert_eq!(
        entries(&out.report),
        [
            (3, Kind::Note, "echo".into()),
            (9, Kind::NotImported, "ifconfig".into()),
            (11, Kind::NotImported, "route".into())
        ]
    );
}

#[test]
fn seed003_and_004_sessions() {
    let out = ipvsadm::import_text(SEED003_NAT, "nat.txt");
    assert!(!out.report.has_errors(), "{}", out.report.text());
    let s = &out.config.unwrap().services[0];
    assert_eq!((s.forwarding, s.reals.len()), (Forwarding::Nat, 3), "NAT reals make a NAT service");
    assert!(s.reals.iter().all(|r| r.forwarding.is_none() && r.address.port.is_none()));
    let out = ipvsadm::import_text(SEED003_DR, "dr.txt");
    assert!(!out.report.has_errors(), "{}", out.report.text());
    let c = out.config.unwrap();
    assert_eq!((c.services.len(), c.services[0].forwarding, c.services[0].reals.len()), (1, Forwarding::Dr, 3));
    assert!(out.report.text().contains("dr.txt:10: not imported: Saving"), "{}", out.report.text());
    let out = ipvsadm::import_text(SEED004, "rules.sh");
    assert!(!out.report.has_errors(), "{}", out.report.text());
    assert_eq!(out.config.unwrap().services[0].reals.len(), 2);
}

#[test]
fn ipvsadm_save_output_and_errors() {
    let saved = "-A -t 10.0.0.1:http -s wrr -p 600 -M 255.255.255.0\n\
                 -a -t 10.0.0.1:http -r 10.0.1.1:http -m -w 4\n\
                 -A -f 12 -s mh -b mh-port\n\
                 -a -f 12 -r 198.51.100.5:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum\n\
                 ipvsadm --set 900 0 300\n";
    let out = ipvsadm::import_text(saved, "rules");
    assert!(!out.report.has_errors(), "{}", out.report.text());
    let c = out.config.unwrap();
    assert_eq!(c.services[0].address.unwrap().port, Some(80));
    assert_eq!(c.services[0].persistence.as_ref().unwrap().netmask.map(|m| m.0), Some(24));
    assert_eq!(c.services[1].reals[0].tunnel.as_ref().unwrap().port, Some(6080));
    assert_eq!((c.ipvs.timeouts.tcp, c.ipvs.timeouts.tcpfin, c.ipvs.timeouts.udp), (Some(900), None, Some(300)));
    // Errors carry the line; a conditional command is reported, not run.
    let bad = "-A -t lb.example.com:80 -s rr\n-a -t 10.0.0.9:80 -r 10.0.0.2\n\
               ipvsadm -Ln | grep -q x || ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.3\n";
    let out = ipvsadm::import_text(bad, "bad.sh");
    let text = out.report.text();
    assert!(text.contains("bad.sh:1: error: ipvsadm -A: `lb.example.com` is a host name"), "{text}");
    assert!(text.contains("bad.sh:2: error: ipvsadm -a: no such service"), "{text}");
    assert!(text.contains("bad.sh:3: not imported: ipvsadm: a compound or conditional shell command"), "{text}");
    assert!(out.toml.is_none());
}

#[test]
fn ipvsadm_edits_apply_in_order() {
    let script = "VIP=192.0.2.53\n\
                  ipvsadm -A -u $VIP:53 -s rr\n\
                  ipvsadm -a -u $VIP:53 -r 10.0.0.1:5353 -m -w 2\n\
                  ipvsadm -a -u $VIP:53 -r 10.0.0.2:5353 -m\n\
                  ipvsadm -E -u $VIP:53 -s wlc -p 120 -M 24\n\
                  ipvsadm -e -u $VIP:53 -r 10.0.0.2:5353 -m -w 7\n\
                  ipvsadm -d -u $VIP:53 -r 10.0.0.1:5353\n";
    let out = ipvsadm::import_text(script, "dns.sh");
    assert!(!out.report.has_errors(), "{}", out.report.text());
    let s = &out.config.unwrap().services[0];
    assert_eq!((s.protocol, s.scheduler, s.forwarding), (Protocol::Udp, Scheduler::Wlc, Forwarding::Nat));
    assert_eq!(s.persistence.as_ref().map(|p| (p.timeout, p.netmask.map(|m| m.0))), Some((120, Some(24))));
    let reals: Vec<String> = s.reals.iter().map(|r| format!("{} {}", r.address, r.weight)).collect();
    assert_eq!(reals, ["10.0.0.2:5353 7"]);
}

// ---------------------------------------------------------------- fuzz

/// Mutation fuzzing over the fixtures in the normal test suite: no input
/// may panic, and whatever imports without error is valid lbd config (the
/// checks of `import::fuzz`, which the coverage-guided fuzzer in `lbd/fuzz`
/// runs too).
#[test]
fn fuzz_mutated_fixtures_never_panic() {
    use super::fuzz::{Rng, mutate};
    let seeds = [SEED002, FULL, FULL_WEB, FULL_DNS, SEED000, SEED003_NAT, SEED003_DR, SEED004];
    let iterations: usize = std::env::var("IMPORT_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let mut rng = Rng(0x5eed_0008);
    for _ in 0..iterations {
        for seed in seeds {
            let text = mutate(&mut rng, seed);
            // The full fixture includes the mutated file as one of its conf.d files.
            let fs = full_fs().with("etc/conf.d/30-fuzz.conf", &text);
            let out = keepalived::import_file(&fs, Path::new("etc/full.conf"));
            if let Some(toml) = &out.toml {
                assert!(crate::config::parse(toml, "x.toml").is_ok(), "imported TOML does not parse:\n{text}");
            }
            super::fuzz::keepalived(&text);
            super::fuzz::ipvsadm(&text);
        }
    }
}

/// Found by `lbd/fuzz` (artifacts slow-3791ae5ef393fd06 and
/// slow-c853efa79084216c, reduced): a file that includes itself twice was
/// read 2^16 times (seconds of work, thousands of report lines) before the
/// depth and token bounds stopped it. A loop is now an error where it
/// closes, and the depth and file-count bounds are reported once.
#[test]
fn fuzz_regression_a_self_including_file_is_read_once() {
    let text = "virtual_server 10.0.0.1 80 {\n  real_server 10.0.0.2 80 {\n  }\n}\ninclude k.conf\ninclude k.conf\n";
    let fs = MemFs::default().with("k.conf", text);
    let t0 = std::time::Instant::now();
    let out = keepalived::import_file(&fs, Path::new("k.conf"));
    assert!(t0.elapsed() < std::time::Duration::from_secs(1), "{:?}", t0.elapsed());
    let errors: Vec<String> = out.report.of(Kind::Error).map(|e| format!("{}: {}", e.loc.line, e.message)).collect();
    let looped = "`k.conf` is already being read: an include loop (not followed)";
    assert_eq!(errors, [format!("5: {looped}"), format!("6: {looped}")], "{}", out.report.text());
    // Two files that include each other twice (no file includes itself
    // directly): still a loop, found where it closes.
    let fs = MemFs::default()
        .with("k.conf", "include a.conf\ninclude a.conf\n")
        .with("a.conf", "include b.conf\ninclude b.conf\n")
        .with("b.conf", "include a.conf\ninclude k.conf\n");
    let out = keepalived::import_file(&fs, Path::new("k.conf"));
    assert!(out.report.entries.len() <= 8, "{}", out.report.text());
    // Many distinct files, each included from everywhere: the file bound,
    // said once.
    let mut fs = MemFs::default();
    let all: String = (0..12).map(|i| format!("include d{i}.conf\n")).collect();
    fs = fs.with("k.conf", &all);
    for i in 0..12 {
        let next: String = (i + 1..12).map(|j| format!("include d{j}.conf\n")).collect();
        fs = fs.with(&format!("d{i}.conf"), &next);
    }
    let t0 = std::time::Instant::now();
    let out = keepalived::import_file(&fs, Path::new("k.conf"));
    assert!(t0.elapsed() < std::time::Duration::from_secs(1), "{:?}", t0.elapsed());
    let errors: Vec<String> = out.report.of(Kind::Error).map(|e| e.message.clone()).collect();
    assert_eq!(
        errors,
        ["more than 1024 files included in all (the same files included over and over?)"],
        "{}",
        out.report.text()
    );
}

#[test]
fn glob_matching() {
    assert!(wild_match("*.conf", "a.conf"));
    assert!(!wild_match("*.conf", "a.conf~"));
    assert!(wild_match("[a-c]?.c*f", "b1.conf"));
    assert!(!wild_match("[!a-c]*", "b1"));
    assert!(wild_match("**a*b*", "xxaxxbxx"));
    assert_eq!(brace_expand("{foo/{,cat,dog},bar}"), ["foo/", "foo/cat", "foo/dog", "bar"]);
}

#[test]
fn detect_tells_keepalived_from_ipvsadm() {
    use crate::ctl::proto::ImportFormat::{Ipvsadm, Keepalived};
    for (name, text, want) in [
        ("seed002", SEED002, Keepalived),
        ("full.conf", FULL, Keepalived),
        ("10-web.conf", FULL_WEB, Keepalived),
        ("20-dns.conf", FULL_DNS, Keepalived),
        ("seed000", SEED000, Ipvsadm),
        ("seed003 NAT", SEED003_NAT, Ipvsadm),
        ("seed003 DR", SEED003_DR, Ipvsadm),
        ("seed004", SEED004, Ipvsadm),
        ("ipvsadm -S", "-A -t 10.0.0.1:http -s wlc\n-a -t 10.0.0.1:http -r 10.0.1.1:http -g -w 1\n", Ipvsadm),
        ("variable", "# director\nIPV=/sbin/ipvsadm\n$IPV -A -t 10.0.0.1:80 -s rr\n", Ipvsadm),
        ("comment naming ipvsadm", "! replaces the old ipvsadm script\nvrrp_instance VI_1 {\n}\n", Keepalived),
        ("keepalived notify calling ipvsadm", "vrrp_instance VI_1 {\n notify /sbin/ipvsadm -C\n}\n", Keepalived),
        ("nothing", "hello\n", Keepalived),
    ] {
        assert_eq!(detect(text), want, "{name}");
    }
}

#[test]
fn pasted_ipvsadm_rules_keep_the_boxs_vrrp_and_keepalived_replaces_it() {
    use crate::ctl::proto::ImportFormat;
    let base = keepalived::import_file(&full_fs(), Path::new("etc/full.conf")).config.expect("full.conf converts");
    assert!(!base.vrrp.instances.is_empty());
    // ipvsadm rules: the services are replaced, VRRP stays.
    let p = paste(ImportFormat::Ipvsadm, SEED004, &base);
    let merged = p.merged.expect("merges");
    assert_eq!(merged.vrrp, base.vrrp);
    assert_eq!(merged.services.len(), 1);
    assert_eq!(merged.services[0].reals.len(), 2);
    assert!(p.replaced.iter().any(|r| r.contains("VRRP:") && r.contains("kept")), "{:?}", p.replaced);
    // A keepalived.conf describes the whole director: its VRRP (none here) wins.
    let p = paste(ImportFormat::Keepalived, "virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n }\n}\n", &base);
    let merged = p.merged.expect("merges");
    assert!(merged.vrrp.instances.is_empty());
    assert!(p.replaced.iter().any(|r| r.contains("VRRP:") && r.contains("replaced")), "{:?}", p.replaced);
}
