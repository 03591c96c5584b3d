//! `[vrrp]` parsing and validation: every rule reports file:line and path.

use crate::config::parse;

const BASE: &str = r#"
[[interfaces]]
name = "eth0"
addresses = ["10.0.0.2/24"]

[[interfaces]]
name = "eth1"
addresses = ["10.1.0.2/24"]
"#;

fn ok(extra: &str) -> crate::config::Config {
    let text = format!("{BASE}{extra}");
    match parse(&text, "t.toml") {
        Ok(c) => c,
        Err(e) => panic!("unexpected errors: {e:#?}"),
    }
}

/// The errors as `line: path: message`, lines counted in `extra`.
fn errs(extra: &str) -> Vec<String> {
    let base_lines = BASE.lines().count();
    let text = format!("{BASE}{extra}");
    match parse(&text, "t.toml") {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.iter().map(|e| format!("{}: {}: {}", e.line.saturating_sub(base_lines), e.path, e.message)).collect()
        }
    }
}

fn has(errs: &[String], needle: &str) -> bool {
    errs.iter().any(|e| e.contains(needle))
}

const GOOD: &str = r#"
[[vrrp.instances]]
name = "web"
interface = "eth0"
vrid = 51
priority = 150
advert_interval = 0.1
preempt_delay = 5
vips = [{ address = "10.0.0.100/24", label = "eth0:web" }, { address = "10.1.0.100", interface = "eth1" }]
track = [{ interface = "eth1", weight = -50 }]
garp = { repeat = 3, refresh = 60 }

[[vrrp.instances]]
name = "legacy"
interface = "eth1"
vrid = 52
version = 2
auth_pass = "secret12"
unicast_peers = ["10.1.0.3"]
vips = [{ address = "10.1.0.101/24" }]

[[vrrp.instances]]
name = "web6"
interface = "eth0"
vrid = 51
vips = [{ address = "2001:db8::100/64" }]

[[vrrp.sync_groups]]
name = "all"
instances = ["web", "legacy"]

[vrrp.sync_daemon]
interface = "eth1"
instance = "web"
syncid = 7
"#;

#[test]
fn a_full_section_parses_and_round_trips() {
    let c = ok(GOOD);
    let v = &c.vrrp;
    assert_eq!(v.instances.len(), 3);
    let web = &v.instances[0];
    assert_eq!((web.vrid, web.priority, web.interval_cs(), web.preempt), (51, 150, 10, true));
    assert_eq!(web.garp.repeat, 3);
    assert_eq!(web.garp.delay, 5, "unset garp keys keep their defaults");
    assert_eq!(v.instances[1].auth(), crate::vrrp::packet::Auth::pass("secret12"));
    assert_eq!(v.sync_daemon.as_ref().unwrap().syncid, 7);
    // What the box persists parses back to the same config.
    let again = parse(&c.to_toml(), "again.toml").expect("serialized config parses");
    assert_eq!(again, c);
    let p = web.params("10.0.0.2".parse().unwrap(), true);
    assert_eq!(p.interval, std::time::Duration::from_millis(100));
    assert_eq!(p.preempt_delay, std::time::Duration::from_secs(5));
}

#[test]
fn no_vrrp_section_is_an_empty_config() {
    assert!(ok("").vrrp.is_empty());
}

#[test]
fn errors_are_located_and_all_reported() {
    let e = errs(
        r#"
[[vrrp.instances]]
name = "a"
interface = "eth0"
vrid = 0
priority = 0
advert_interval = 0.005
vips = [{ address = "10.0.0.100" }]

[[vrrp.instances]]
name = "a"
interface = "eth7"
vrid = 1
version = 3
auth_pass = "too-long-password"
vips = [{ address = "10.0.0.2" }, { address = "10.0.0.100" }, { address = "224.0.0.1" }, { address = "2001:db8::1" }]

[[vrrp.instances]]
name = "c"
interface = "eth0"
vrid = 9
version = 2
advert_interval = 1.5
vips = [{ address = "2001:db8::5/64" }]


[[vrrp.instances]]
name = "d"
interface = "eth0"
vrid = 9
version = 2
vips = [{ address = "10.0.0.0/24" }]

[[vrrp.instances]]
name = "e"
interface = "eth0"
vrid = 9
vips = [{ address = "10.0.0.150/24" }]

[[vrrp.sync_groups]]
name = "g"
instances = ["a", "zz"]

[vrrp.sync_daemon]
interface = "eth0"
instance = "nope"
"#,
    );
    let want = [
        "5: vrrp.instances[0].vrid: VRID 0 is reserved",
        "6: vrrp.instances[0].priority: priority 0 is reserved",
        "7: vrrp.instances[0].advert_interval: VRRPv3 adverts are 0.01..=40.95",
        "11: vrrp.instances[1].name: instance `a` is already defined",
        "12: vrrp.instances[1].interface: no interface named `eth7`",
        "15: vrrp.instances[1].auth_pass: PASS authentication only exists in VRRPv2",
        "15: vrrp.instances[1].auth_pass: a password is 1 to 8 ASCII characters",
        "16: vrrp.instances[1].vips[0].address: 10.0.0.2 is an address of `eth0`",
        "16: vrrp.instances[1].vips[1].address: 10.0.0.100 is already a VIP of vrrp.instances[0]",
        "16: vrrp.instances[1].vips[2].address: 224.0.0.1 cannot be a virtual address",
        "16: vrrp.instances[1].vips[3].address: 2001:db8::1 is not ipv4",
        "23: vrrp.instances[2].advert_interval: VRRPv2 adverts are whole seconds",
        "22: vrrp.instances[2].version: VRRPv2 is IPv4 only",
        "32: vrrp.instances[3].vips[0].address: 10.0.0.0 is the network or broadcast address",
        "37: vrrp.instances[4].vrid: VRID 9 is already used on `eth0` by vrrp.instances[3] (`d`)",
        "42: vrrp.sync_groups[0].instances[1]: no VRRP instance named `zz`",
        "46: vrrp.sync_daemon.instance: no VRRP instance named `nope`",
    ];
    for w in want {
        assert!(has(&e, w), "missing `{w}` in {e:#?}");
    }
}

#[test]
fn unknown_keys_are_reported_even_before_validation() {
    let e = errs("[vrrp]\ninstance = []\n");
    assert!(has(&e, "vrrp.instance: unknown field `instance`"), "{e:#?}");
}

#[test]
fn raw_interface_names_are_allowed_without_any_interfaces_section() {
    let text = r#"
[[vrrp.instances]]
name = "a"
interface = "veth7"
vrid = 1
vips = [{ address = "10.9.0.100/24" }]
track = [{ interface = "uplink" }]
"#;
    let c = parse(text, "t.toml").expect("raw names accepted without [[interfaces]]");
    assert_eq!(c.vrrp.instances[0].track[0].weight, 0);
}

#[test]
fn sync_daemon_refuses_mixed_family_reals() {
    let e = errs(
        r#"
[[services]]
address = "10.0.0.50:80"
forwarding = "tun"
reals = [{ address = "[2001:db8::9]:80" }]

[vrrp.sync_daemon]
interface = "eth1"
syncid = 1
"#,
    );
    assert!(has(&e, "the kernel refuses the IPVS sync daemon"), "{e:#?}");
}

#[test]
fn owner_with_weights_and_v3_checksum_on_v2_are_refused() {
    let e = errs(
        r#"
[[vrrp.instances]]
name = "a"
interface = "eth0"
vrid = 1
priority = 255
version = 2
v3_checksum = "message_only"
vips = [{ address = "10.0.0.100/24" }]
track = [{ interface = "eth1", weight = 10 }]
"#,
    );
    assert!(has(&e, "v3_checksum: only applies to VRRPv3 over IPv4"), "{e:#?}");
    assert!(has(&e, "the address owner (priority 255) ignores weights"), "{e:#?}");
}
