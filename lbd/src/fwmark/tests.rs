use super::config::*;
use crate::config::{ConfigError, Family, parse};
use crate::ipvs::ServiceKey;
use crate::nft::MarkRule;
use crate::reconcile::desired_service;

const NET: &str = "[[interfaces]]\nname = \"eth0\"\naddresses = [\"192.0.2.2/24\", \"10.78.0.1/24\"]\n";

fn ok(src: &str) -> crate::config::Config {
    let text = format!("{NET}{src}");
    parse(&text, "t.toml")
        .unwrap_or_else(|e| panic!("{}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")))
}

fn errs(src: &str) -> Vec<ConfigError> {
    parse(&format!("{NET}{src}"), "bad.toml").expect_err("config should be rejected")
}

fn has(errs: &[ConfigError], path: &str, words: &str) -> ConfigError {
    errs.iter()
        .find(|e| e.path == path && e.message.contains(words))
        .cloned()
        .unwrap_or_else(|| panic!("no error at {path} containing {words:?} in:\n{errs:#?}"))
}

const FTP_DR: &str = r#"
[[services]]
name = "ftp"
fwmark = 300
scheduler = "wrr"
ftp = { vip = "192.0.2.111", control_port = 21, passive_ports = "8000-10000" }
[[services.reals]]
address = "192.0.2.34"
[[services.reals]]
address = "192.0.2.35"
"#;

#[test]
fn ftp_dr_expands_to_two_mark_rules_and_a_persistent_fwmark_service() {
    let c = ok(FTP_DR);
    let g = generated(&c);
    let rules: Vec<MarkRule> = g.iter().map(|g| g.rule.clone()).collect();
    let vip = "192.0.2.111".parse().unwrap();
    assert_eq!(
        rules,
        vec![
            MarkRule { daddr: vip, proto: 6, ports: (21, 21), mark: 300 },
            MarkRule { daddr: vip, proto: 6, ports: (8000, 10000), mark: 300 },
        ]
    );
    assert_eq!(g[0].origin, "services[0].ftp.control_port");
    assert_eq!(g[1].origin, "services[0].ftp.passive_ports");
    assert_eq!(rules[1].nft_text(), "ip daddr 192.0.2.111 tcp dport 8000-10000 meta mark set 0x12c");
    let d = desired_service(&c.services[0]);
    assert_eq!(d.svc.key, ServiceKey::Fwmark { af: Family::Ipv4.af(), mark: 300 });
    assert_eq!(d.svc.timeout, FTP_DEFAULT_PERSISTENCE, "keepalived's persistence_timeout default");
    assert_ne!(d.svc.flags & crate::ipvs::svc_flags::PERSISTENT, 0);
    assert_eq!(d.dests.len(), 2);
    assert_eq!(helper_ports(&c), None, "DR FTP does not use the kernel helper");
    // The config round-trips as written (the shorthand is not replaced by its expansion).
    let again = parse(&c.to_toml(), "again.toml").unwrap();
    assert_eq!(again, c);
}

#[test]
fn seed_002_control_port_inside_the_passive_range_is_one_rule() {
    assert_eq!(mark_rules(&ok(FTP_DR)).len(), 2, "21 is outside 8000-10000: two rules");
    let seed = FTP_DR.replace("control_port = 21", "control_port = 9814");
    let r = mark_rules(&ok(&seed));
    assert_eq!(r.len(), 1, "9814 is inside 8000-10000: the range marks both: {r:?}");
    assert_eq!(r[0].ports, (8000, 10000));
}

#[test]
fn ftp_persistence_can_be_set() {
    let c = ok(&FTP_DR.replace("scheduler = \"wrr\"", "scheduler = \"wrr\"\npersistence = { timeout = 900 }"));
    assert_eq!(desired_service(&c.services[0]).svc.timeout, 900);
}

#[test]
fn ftp_nat_is_an_address_service_with_the_kernel_helper_and_conntrack() {
    let c = ok(r#"
[[services]]
name = "ftp-nat"
forwarding = "nat"
ftp = { vip = "192.0.2.112", control_port = 2121 }
[[services.reals]]
address = "10.78.0.21:21"
"#);
    assert!(mark_rules(&c).is_empty());
    let d = desired_service(&c.services[0]);
    assert_eq!(d.svc.key, ServiceKey::Addr { protocol: 6, addr: "192.0.2.112".parse().unwrap(), port: 2121 });
    assert_eq!(d.svc.flags & crate::ipvs::svc_flags::PERSISTENT, 0);
    assert_eq!(helper_ports(&c), Some(vec![21, 2121]));
    assert_eq!(helper_param(&c).as_deref(), Some("ports=21,2121"));
    let sys = crate::sysctl::from_config(&c);
    assert!(sys.iter().any(|s| s.key == "net.ipv4.vs.conntrack" && s.value == "1"), "{sys:?}");
    assert_eq!(c.services[0].label(), "ftp-nat");
    // Weight edits find the service by its expanded address.
    assert_eq!(crate::config::edit::find_real(&c, "tcp 192.0.2.112:2121", "10.78.0.21").unwrap(), (0, 0));
}

#[test]
fn general_rules_mark_every_port_and_range() {
    let c = ok(r#"
[[services]]
fwmark = 7
fwmark_rules = [
  { destination = "192.0.2.50", ports = [80, "443", "8000:8100"] },
  { destination = "192.0.2.51", protocol = "udp", ports = ["53"] },
]
[[services.reals]]
address = "192.0.2.34"

[[services]]
fwmark = 8
family = "ipv6"
fwmark_rules = [{ destination = "2001:db8::50", protocol = "sctp", ports = ["3868-3869"] }]
[[services.reals]]
address = "2001:db8::34"
forwarding = "tun"
"#);
    let r = mark_rules(&c);
    assert_eq!(r.len(), 5);
    assert_eq!((r[2].ports, r[2].proto), ((8000, 8100), 6));
    assert_eq!((r[3].ports, r[3].proto), ((53, 53), 17));
    assert_eq!((r[4].proto, r[4].mark, r[4].daddr.is_ipv6()), (132, 8, true));
    let text = crate::nft::table_text(&r);
    assert!(text.contains("ip6 daddr 2001:db8::50 sctp dport 3868-3869 meta mark set 0x8"), "{text}");
    assert_eq!(parse(&c.to_toml(), "again").unwrap(), c);
}

#[test]
fn overlapping_ranges_for_two_services_are_rejected_at_their_line() {
    let e = errs(&format!(
        "{FTP_DR}
[[services]]
name = \"other\"
fwmark = 301
fwmark_rules = [{{ destination = \"192.0.2.111\", ports = [9000] }}]
[[services.reals]]
address = \"192.0.2.36\"
"
    ));
    let x = has(&e, "services[1].fwmark_rules[0].ports[0]", "marked for two services");
    assert!(x.message.contains("services[0].ftp.passive_ports") && x.message.contains("8000-10000"), "{x}");
    let src = format!("{NET}{FTP_DR}\n[[services]]\nname = \"other\"\nfwmark = 301\n");
    assert_eq!(x.line, src.lines().count() + 1, "the line of the overlapping rule: {x}");
    // A different protocol or address does not overlap.
    ok(&format!(
        "{FTP_DR}
[[services]]
fwmark = 301
fwmark_rules = [{{ destination = \"192.0.2.111\", protocol = \"udp\", ports = [9000] }}, {{ destination = \"192.0.2.112\", ports = [9000] }}]
[[services.reals]]
address = \"192.0.2.36\"
"
    ));
}

#[test]
fn same_mark_overlaps_are_harmless_and_ranges_inside_ranges_are_caught() {
    ok(r#"
[[services]]
fwmark = 5
fwmark_rules = [{ destination = "192.0.2.9", ports = ["100-200", "150"] }]
"#);
    // A range that starts after an earlier one but inside a wide first range.
    let e = errs(
        r#"
[[services]]
fwmark = 5
fwmark_rules = [{ destination = "192.0.2.9", ports = ["100-1000", "200-300"] }]
[[services]]
fwmark = 6
fwmark_rules = [{ destination = "192.0.2.9", ports = ["400-500"] }]
"#,
    );
    has(&e, "services[1].fwmark_rules[0].ports[0]", "100-1000");
}

#[test]
fn bad_ports_and_shapes_are_located() {
    let e = errs(
        r#"
[[services]]
fwmark = 5
fwmark_rules = [{ destination = "192.0.2.9", ports = ["10000-8000", 0, "x"] }]
"#,
    );
    assert!(e.iter().any(|e| e.message.contains("inverted; did you mean 8000-10000")), "{e:#?}");
    assert!(e.iter().all(|e| e.line == 7), "{e:#?}");
    let e = errs("[[services]]\nfwmark = 5\nfwmark_rules = [{ destination = \"192.0.2.9\", ports = [0] }]\n");
    assert!(e.iter().any(|e| e.message.contains("out of range 1..=65535")), "{e:#?}");
    let e = errs(
        r#"
[[services]]
address = "192.0.2.9:80"
fwmark_rules = [{ destination = "192.0.2.9", ports = [] }]

[[services]]
fwmark = 9
fwmark_rules = [{ destination = "2001:db8::1", ports = [1] }]
"#,
    );
    has(&e, "services[0].fwmark_rules", "add `fwmark = N`");
    has(&e, "services[0].fwmark_rules[0].ports", "at least one");
    has(&e, "services[1].fwmark_rules[0].destination", "not in the family");
}

#[test]
fn ftp_mistakes_are_explained() {
    let e = errs(
        r#"
[[services]]
ftp = { vip = "192.0.2.111" }
"#,
    );
    has(&e, "services[0].ftp", "add `fwmark = N`");
    has(&e, "services[0].ftp", "missing `passive_ports`");
    assert!(!e.iter().any(|e| e.message.contains("needs an `address`")), "no second, vaguer error: {e:#?}");
    let e = errs(
        r#"
[[services]]
fwmark = 3
address = "192.0.2.111:21"
ftp = { vip = "192.0.2.111", control_port = 0, passive_ports = "8000-10000" }
"#,
    );
    has(&e, "services[0].address", "drop `address`");
    has(&e, "services[0].ftp.control_port", "port 0");
    let e =
        errs("[[services]]\nfwmark = 3\nftp = { vip = \"192.0.2.111\", passive_ports = \"8000-10000\", pasv = 1 }\n");
    has(&e, "services[0].ftp.pasv", "unknown field");
    let e = errs(
        r#"
[ipvs.sysctl]
conntrack = false
[[services]]
fwmark = 3
forwarding = "nat"
ftp = { vip = "192.0.2.111", passive_ports = "8000-10000" }
[[services.reals]]
address = "10.78.0.21"
forwarding = "dr"
"#,
    );
    has(&e, "services[0].fwmark", "drop `fwmark`");
    has(&e, "services[0].ftp.passive_ports", "passive_ports is for dr and tun");
    has(&e, "ipvs.sysctl.conntrack", "through conntrack");
    has(&e, "services[0].reals[0].forwarding", "NAT connections only");
}

#[test]
fn an_ftp_mark_colliding_with_another_fwmark_service_is_a_duplicate() {
    let e = errs(&format!("{FTP_DR}\n[[services]]\nfwmark = 300\n[[services.reals]]\naddress = \"192.0.2.36\"\n"));
    has(&e, "services[1].fwmark", "already defined in services[0]");
    // NAT ftp on the same VIP:port as an address service.
    let e = errs(
        r#"
[[services]]
forwarding = "nat"
ftp = { vip = "192.0.2.112" }
[[services]]
address = "192.0.2.112:21"
"#,
    );
    has(&e, "services[1].address", "already defined in services[0]");
}

#[test]
fn port_ranges_parse_and_print() {
    assert_eq!("8000-10000".parse::<PortRange>().unwrap(), PortRange { first: 8000, last: 10000 });
    assert_eq!("8000:10000".parse::<PortRange>().unwrap().to_string(), "8000-10000");
    assert_eq!("21".parse::<PortRange>().unwrap(), PortRange::one(21));
    assert!("0-5".parse::<PortRange>().is_err());
    assert!("70000".parse::<PortRange>().is_err());
    assert!(PortRange { first: 1, last: 5 }.overlaps(&PortRange::one(5)));
    assert!(!PortRange { first: 1, last: 5 }.overlaps(&PortRange::one(6)));
}

#[test]
fn rule_expressions_follow_nft_order() {
    use crate::nft::codec::{Expr, MetaKey, PayloadBase};
    let r = MarkRule { daddr: "10.77.0.100".parse().unwrap(), proto: 6, ports: (21, 21), mark: 300 };
    let e = r.exprs();
    assert_eq!(e[0], Expr::MetaLoad { key: MetaKey::NfProto, dreg: 1 });
    assert_eq!(e[1], Expr::Cmp { sreg: 1, op: 0, data: vec![2] });
    assert_eq!(e[2], Expr::Payload { base: PayloadBase::Network, offset: 16, len: 4, dreg: 1 });
    assert_eq!(e[3], Expr::Cmp { sreg: 1, op: 0, data: vec![10, 77, 0, 100] });
    assert_eq!(e[5], Expr::Cmp { sreg: 1, op: 0, data: vec![6] });
    assert_eq!(e[6], Expr::Payload { base: PayloadBase::Transport, offset: 2, len: 2, dreg: 1 });
    assert_eq!(e[7], Expr::Cmp { sreg: 1, op: 0, data: vec![0, 21] });
    assert_eq!(e[8], Expr::Immediate { dreg: 1, data: 300u32.to_ne_bytes().to_vec() });
    assert_eq!(e[9], Expr::MetaSet { key: MetaKey::Mark, sreg: 1 });
    let r6 = MarkRule { daddr: "2001:db8::1".parse().unwrap(), proto: 6, ports: (1, 2), mark: 1 };
    assert_eq!(r6.exprs()[2], Expr::Payload { base: PayloadBase::Network, offset: 24, len: 16, dreg: 1 });
    assert!(matches!(r6.exprs()[7], Expr::Range { .. }));
}

#[test]
fn plan_compares_instead_of_rewriting() {
    use crate::nft::{Action, KernelTable, codec::Object, plan};
    let r = vec![MarkRule { daddr: "10.0.0.1".parse().unwrap(), proto: 6, ports: (21, 21), mark: 1 }];
    let c = crate::nft::chain();
    let good = KernelTable {
        flags: 0,
        chains: vec![Object::Chain {
            family: 1,
            table: "lvsbox".into(),
            name: c.name.clone(),
            hook: Some((c.hook, c.priority)),
            kind: Some(c.kind.clone()),
            policy: Some(1),
        }],
        rules: vec![("prerouting".into(), r[0].exprs())],
    };
    assert_eq!(plan(&r, Some(&good)), Action::None);
    assert_eq!(plan(&r, None), Action::Replace);
    assert_eq!(plan(&[], Some(&good)), Action::Delete);
    assert_eq!(plan(&[], None), Action::None);
    let dormant = KernelTable { flags: 1, ..good.clone() };
    assert_eq!(plan(&r, Some(&dormant)), Action::Replace);
    let mut other_mark = good.clone();
    other_mark.rules[0].1[8] = crate::nft::codec::Expr::Immediate { dreg: 1, data: 2u32.to_ne_bytes().to_vec() };
    assert_eq!(plan(&r, Some(&other_mark)), Action::Replace);
    let mut extra_chain = good.clone();
    extra_chain.chains.push(good.chains[0].clone());
    assert_eq!(plan(&r, Some(&extra_chain)), Action::Replace);
}

#[test]
fn helper_ports_come_from_sysfs() {
    let d = std::env::temp_dir().join(format!("lbd-helper-{}", std::process::id()));
    std::fs::create_dir_all(d.join("parameters")).unwrap();
    std::fs::write(d.join("parameters/ports"), "21,2121,0,0\n").unwrap();
    assert_eq!(super::loaded_helper_ports(&d), Some(vec![21, 2121]));
    std::fs::remove_dir_all(&d).unwrap();
    assert_eq!(super::loaded_helper_ports(&d), None);
}
