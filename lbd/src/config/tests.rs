use super::*;

const GOOD: &str = r#"
[system]
hostname = "lb1"
consoles = ["ttyS0"]

[ipvs]
drain_timeout = 30
[ipvs.timeouts]
tcp = 900
[ipvs.sysctl]
expire_nodest_conn = true

[[interfaces]]
name = "eth0"
mac = "52:54:00:00:00:01"
addresses = ["192.168.1.10/24"]

[[routes]]
destination = "default"
gateway = "192.168.1.1"

[[vips]]
address = "192.168.1.200"
interface = "eth0"

[[services]]
name = "web"
address = "192.168.1.200:80"
scheduler = "rr"
[[services.reals]]
address = "192.168.1.11"
[[services.reals]]
address = "192.168.1.12:80"
weight = 3

[[services]]
fwmark = 300
scheduler = "wrr"
persistence = { timeout = 900 }
[[services.reals]]
address = "192.168.1.34:9814"
"#;

#[test]
fn good_config_parses_with_defaults() {
    let c = parse(GOOD, "good.toml").unwrap();
    assert_eq!(c.system.hostname, "lb1");
    assert_eq!(c.services.len(), 2);
    assert_eq!(c.services[0].reals[0].weight, 1);
    assert_eq!(c.services[0].reals[1].weight, 3);
    assert_eq!(c.services[0].forwarding, Forwarding::Dr);
    assert_eq!(c.services[1].persistence.as_ref().unwrap().timeout, 900);
    assert_eq!(c.vips[0].address.prefix, 32);
    assert_eq!(c.ipvs.sysctl.entries(), vec![("expire_nodest_conn", 1)]);
}

#[test]
fn round_trips_through_toml() {
    let c = parse(GOOD, "good.toml").unwrap();
    let text = c.to_toml();
    let again = parse(&text, "again.toml").unwrap_or_else(|e| panic!("{text}\n{e:?}"));
    assert_eq!(c, again);
}

#[test]
fn empty_file_is_the_default() {
    assert_eq!(parse("", "e.toml").unwrap(), Config::default());
}

fn errors(src: &str) -> Vec<ConfigError> {
    parse(src, "bad.toml").expect_err("config should be rejected")
}

#[test]
fn every_error_at_once_with_lines() {
    let src = r#"[system]
hostnme = "x"

[[services]]
address = "10.0.0.1:80"
scheduler = "wrrr"
[[services.reals]]
address = "10.0.0.2"
weight = "heavy"

[[services]]
address = "10.0.0.1:0"
"#;
    let e = errors(src);
    let shown: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    let text = shown.join("\n");
    assert!(text.contains("bad.toml:2:1: system.hostnme: unknown field `hostnme`"), "{text}");
    assert!(text.contains("bad.toml:6:13: services[0].scheduler: unknown scheduler `wrrr`"), "{text}");
    assert!(text.contains("bad.toml:9:10: services[0].reals[0].weight"), "{text}");
    assert_eq!(e.len(), 3, "{text}");
}

#[test]
fn semantic_errors_are_collected_and_located() {
    let src = r#"
[[interfaces]]
name = "eth0"
addresses = ["192.168.1.10/24"]

[[services]]
address = "192.168.1.200:0"
scheduler = "rr"
scheduler_flags = ["sh-port"]
[[services.reals]]
address = "10.9.9.9"
forwarding = "nat"

[[services]]
address = "192.168.1.200:0"
persistence = {}
"#;
    let e = errors(src);
    let text: Vec<String> = e.iter().map(|e| e.to_string()).collect();
    let text = text.join("\n");
    assert!(text.contains("bad.toml:7:1: services[0].address: port 0 (all ports) needs `persistence`"), "{text}");
    assert!(text.contains("services[0].scheduler_flags[0]: `sh-port` only applies to the `sh` scheduler"), "{text}");
    assert!(text.contains("bad.toml:11:1: services[0].reals[0].address: 10.9.9.9 is not on a subnet"), "{text}");
    assert!(
        text.contains("bad.toml:15:1: services[1].address: the same virtual service is already defined in services[0]"),
        "{text}"
    );
}

#[test]
fn errors_point_at_the_table_or_key_they_name() {
    let src = r#"
[[services]]
address = "10.0.0.1:80"

[[services]]
address = "10.0.0.1:81"
[[services.reals]]
weight = 2
[services.reals.tunnel]
type = "gre"
prot = 1
"#;
    let text: Vec<String> = errors(src).iter().map(|e| e.to_string()).collect();
    let text = text.join("\n");
    // A missing field: the table's own header.
    assert!(text.contains("bad.toml:7:1: services[1].reals[0]: missing required field `address`"), "{text}");
    // An unknown key in a sub-table of the second service's first real.
    assert!(text.contains("bad.toml:11:1: services[1].reals[0].tunnel.prot: unknown field `prot`"), "{text}");
}

#[test]
fn syntax_errors_have_a_line() {
    let e = errors("[system]\nhostname = \n");
    assert_eq!(e[0].line, 2, "{e:?}");
}

#[test]
fn tunnel_rules() {
    let src = r#"
[[services]]
address = "192.0.2.1:80"
forwarding = "tun"
[[services.reals]]
address = "198.51.100.1"
tunnel = { type = "gue" }
[[services.reals]]
address = "198.51.100.2"
tunnel = { type = "ipip", checksum = "csum" }
[[services.reals]]
address = "2001:db8::5"
[[services.reals]]
address = "198.51.100.3"
forwarding = "dr"
tunnel = { type = "gre" }
"#;
    let text: Vec<String> = errors(src).iter().map(|e| e.to_string()).collect();
    let text = text.join("\n");
    assert!(text.contains("reals[0].tunnel.port: GUE needs"), "{text}");
    assert!(text.contains("reals[1].tunnel.checksum: ipip has no checksum"), "{text}");
    assert!(text.contains("reals[3].tunnel: tunnel options need"), "{text}");
    // An IPv6 real behind an IPv4 service is fine with TUN.
    assert!(!text.contains("reals[2]"), "{text}");
}

/// The config is kept whole for the daemon's life: what every service and
/// real costs inline. A big optional part (a check spec is over 300 bytes)
/// goes behind a `Box`.
#[test]
fn config_entries_stay_compact() {
    use std::mem::size_of;
    assert!(size_of::<crate::config::Real>() <= 64, "Real is {} bytes", size_of::<crate::config::Real>());
    assert!(size_of::<crate::config::Service>() <= 256, "Service is {} bytes", size_of::<crate::config::Service>());
    assert!(
        size_of::<crate::reconcile::ViewDest>() <= 48,
        "ViewDest is {} bytes",
        size_of::<crate::reconcile::ViewDest>()
    );
}
