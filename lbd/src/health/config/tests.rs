use std::time::Duration;

use super::*;
use crate::config::parse;

const NET: &str = "[[interfaces]]\nname = \"eth0\"\naddresses = [\"10.0.0.2/24\"]\n";

fn ok(src: &str) -> Config {
    parse(&format!("{NET}{src}"), "t.toml").unwrap_or_else(|e| panic!("{e:?}"))
}

fn errors(src: &str) -> Vec<String> {
    match parse(&format!("{NET}{src}"), "t.toml") {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

const WEB: &str = r#"
[[services]]
name = "web"
address = "10.0.0.100:80"
quorum = 2
hysteresis = 1
inhibit_on_failure = false
sorry_server = { address = "10.0.0.99", weight = 2 }
check = { type = "http", path = "/health", status_code = [200, "300-302"], regex = "ok", delay_loop = 2, rise = 2, fall = 3 }
[[services.reals]]
address = "10.0.0.11"
[[services.reals]]
address = "10.0.0.12"
check = { connect_timeout = 0.5, digest = "900150983cd24fb0d6963f7d28e17f72" }
[[services.reals]]
address = "10.0.0.13"
check = { type = "tcp", connect_port = 8080 }
[[services.reals]]
address = "10.0.0.14"
check = { type = "none" }
"#;

#[test]
fn service_check_is_the_default_and_real_keys_override() {
    let c = ok(WEB);
    let r = resolve(&c);
    let c0 = r.checks[0][0].as_ref().unwrap();
    let Probe::Http(h) = &c0.probe else { panic!() };
    assert_eq!((h.path.as_str(), &h.status[..]), ("/health", &[StatusRange(200, 200), StatusRange(300, 302)][..]));
    assert_eq!(c0.target, "10.0.0.11:80".parse().unwrap());
    assert_eq!((c0.timing.delay_loop_ms, c0.timing.rise, c0.timing.fall), (2000, 2, 3));
    assert_eq!(c0.timing.connect_timeout_ms, 3000, "lvsbox's default");
    let c1 = r.checks[0][1].as_ref().unwrap();
    let Probe::Http(h1) = &c1.probe else { panic!() };
    assert_eq!(h1.regex.as_deref(), Some("ok"), "inherited key by key");
    assert!(h1.digest.is_some());
    assert_eq!(c1.timing.connect_timeout_ms, 500);
    let c2 = r.checks[0][2].as_ref().unwrap();
    assert_eq!((c2.probe.clone(), c2.target), (Probe::Tcp, "10.0.0.13:8080".parse().unwrap()));
    assert_eq!(c2.timing.delay_loop_ms, 5000, "another type replaces the service's check whole");
    assert!(r.checks[0][3].is_none(), "type none turns the check off");
    // The round trip keeps everything.
    assert_eq!(parse(&c.to_toml(), "again").unwrap(), c);
}

#[test]
fn the_same_real_behind_two_vips_is_one_check() {
    let c = ok(r#"
[[services]]
address = "10.0.0.100:80"
check = { type = "tcp" }
[[services.reals]]
address = "10.0.0.11"
[[services]]
address = "10.0.0.101:80"
check = { type = "tcp" }
[[services.reals]]
address = "10.0.0.11"
"#);
    let r = resolve(&c);
    assert_eq!(r.checks[0][0], r.checks[1][0]);
}

#[test]
fn every_mistake_is_located() {
    let e = errors(
        r#"
[[services]]
address = "10.0.0.100:80"
quorum = 0
sorry_server = { address = "10.0.0.11" }
check = { type = "tcp", delay_loop = 0, path = "/x", rise = 0 }
[[services.reals]]
address = "10.0.0.11"
check = { regex = "(", digest = "abc", payload = "zz", type = "http" }
[[services.reals]]
address = "10.0.0.12"
check = { delay_loop = 1 }
[[services]]
address = "10.0.0.101:53"
protocol = "udp"
check = { type = "tcp", through_vip = true }
[[services.reals]]
address = "10.0.0.11"
forwarding = "nat"
"#,
    );
    let want = [
        "services[0].quorum: must be at least 1",
        "services[0].sorry_server.address: 10.0.0.11 is also a real",
        "services[0].check.delay_loop: must be 0.1 to 86400",
        "services[0].check.rise: must be 1..=100",
        "services[0].check.path: `path` does not apply to a tcp check",
        "services[0].reals[0].check.regex: not a valid regular expression",
        "services[0].reals[0].check.digest: an MD5 digest is 32 hex digits",
        "services[0].reals[0].check.payload: `payload` does not apply to a http check",
        "services[1].check.type: a tcp check of a udp service needs `connect_port`",
        "services[1].check.through_vip: checks through the VIP need a DR address service",
    ];
    for w in want {
        assert!(e.iter().any(|x| x.contains(w)), "missing `{w}` in:\n{}", e.join("\n"));
    }
    assert!(e.iter().all(|x| x.starts_with("t.toml:") && !x.starts_with("t.toml:0")), "{e:#?}");
}

#[test]
fn unknown_keys_and_bad_values_are_located() {
    let e = errors(
        "[[services]]\naddress = \"10.0.0.100:80\"\n[[services.reals]]\naddress = \"10.0.0.11\"\ncheck = { type = \"http\", status_code = [99], flavour = 1, dns_type = \"PTR\" }\n",
    );
    for w in [
        "t.toml:8:41: services[0].reals[0].check.status_code: status 99 is out of range 100..=599",
        "services[0].reals[0].check.flavour: unknown field `flavour`",
        "services[0].reals[0].check.dns_type: unknown variant `PTR`",
    ] {
        assert!(e.iter().any(|x| x.contains(w)), "missing `{w}` in:\n{}", e.join("\n"));
    }
}

#[test]
fn hysteresis_must_be_below_quorum_and_marks_are_reserved() {
    let e = errors(
        "[[services]]\naddress = \"10.0.0.100:80\"\nquorum = 2\nhysteresis = 2\n[[services]]\nfwmark = 0x4c420005\n",
    );
    assert!(e.iter().any(|x| x.contains("services[0].hysteresis: must be below quorum (2)")), "{e:?}");
    assert!(e.iter().any(|x| x.contains("services[1].fwmark: marks 0x4c420000")), "{e:?}");
}

#[test]
fn fwmark_services_need_a_port_and_icmp_has_none() {
    let e =
        errors("[[services]]\nfwmark = 5\ncheck = { type = \"tcp\" }\n[[services.reals]]\naddress = \"10.0.0.11\"\n");
    assert!(e.iter().any(|x| x.contains("needs a port: set `connect_port`")), "{e:?}");
    let c = ok("[[services]]\nfwmark = 5\ncheck = { type = \"icmp\" }\n[[services.reals]]\naddress = \"10.0.0.11\"\n");
    assert_eq!(resolve(&c).checks[0][0].as_ref().unwrap().target, "10.0.0.11:0".parse().unwrap());
}

#[test]
fn through_the_vip_gets_a_mark_per_real_and_targets_the_vip() {
    let c = ok(r#"
[[services]]
address = "10.0.0.100:80"
check = { type = "http", through_vip = true }
[[services.reals]]
address = "10.0.0.11"
[[services.reals]]
address = "10.0.0.12"
"#);
    let r = resolve(&c);
    let (a, b) = (r.checks[0][0].as_ref().unwrap(), r.checks[0][1].as_ref().unwrap());
    assert_eq!(
        (a.target, a.mark, a.via_vip_to),
        ("10.0.0.100:80".parse().unwrap(), VIP_MARK_BASE, Some("10.0.0.11:80".parse().unwrap()))
    );
    assert_eq!(b.mark, VIP_MARK_BASE + 1);
}

#[test]
fn udp_and_dns_checks() {
    let c = ok(r#"
[[services]]
address = "10.0.0.100:53"
protocol = "udp"
check = { type = "dns", dns_type = "A", dns_name = "example.org" }
[[services.reals]]
address = "10.0.0.11"
[[services.reals]]
address = "10.0.0.12"
check = { type = "udp", payload = "0a0b", require_reply = "" }
"#);
    let r = resolve(&c);
    assert_eq!(r.checks[0][0].as_ref().unwrap().probe, Probe::Dns { qtype: 1, name: "example.org".into() });
    assert_eq!(r.checks[0][1].as_ref().unwrap().probe, Probe::Udp { payload: vec![10, 11], reply: Some(vec![]) });
    let _ = Duration::ZERO;
}
