use std::collections::BTreeMap;

use super::*;
use crate::config::parse;

const CFG: &str = r#"
[[interfaces]]
name = "eth0"
addresses = ["10.0.0.2/24"]

[[services]]
name = "web"
address = "10.0.0.100:80"
quorum = 2
sorry_server = { address = "10.0.0.99" }
check = { type = "tcp" }
[[services.reals]]
address = "10.0.0.11"
[[services.reals]]
address = "10.0.0.12"
weight = 3
inhibit_on_failure = true

[[services]]
name = "plain"
address = "10.0.0.101:80"
[[services.reals]]
address = "10.0.0.11"
"#;

fn cfg() -> Config {
    parse(CFG, "t").unwrap()
}

fn none(_: &ServiceKey, _: IpAddr, _: u16) -> Option<u32> {
    None
}

fn weights(o: &Overlay, c: &Config, i: usize) -> Vec<(String, u32)> {
    o.service(c, i).dests.iter().map(|d| (d.addr.to_string(), d.weight)).collect()
}

fn check(o: &Overlay, i: usize, j: usize) -> Check {
    o.check_of(i, j).unwrap().clone()
}

#[test]
fn new_reals_stay_out_until_checked_then_quorum_and_sorry_server() {
    let c = cfg();
    let mut o = Overlay::new(&c, BTreeMap::new(), &none, None);
    // Unknown: the inhibited real is in at weight 0, the other out; no sorry server yet.
    assert_eq!(weights(&o, &c, 0), vec![("10.0.0.12".into(), 0)]);
    assert_eq!(o.quorum(0), None);
    assert!(o.service(&c, 0).gone.contains(&("10.0.0.11".parse().unwrap(), 80)));
    // The unchecked service is untouched.
    assert_eq!(o.service(&c, 1), reconcile::desired_service(&c.services[1]));
    // 10.0.0.12 (weight 3) up: quorum 2 met.
    let (svcs, logs) = o.set_health(&c, &check(&o, 0, 1), Health::Up);
    assert_eq!(svcs, vec![0]);
    assert!(logs.is_empty());
    assert_eq!(o.quorum(0), Some(true));
    assert_eq!(weights(&o, &c, 0), vec![("10.0.0.12".into(), 3)]);
    // 10.0.0.11 fails: still 3 >= 2.
    o.set_health(&c, &check(&o, 0, 0), Health::Down);
    assert_eq!(o.quorum(0), Some(true));
    // 10.0.0.12 fails too: quorum lost, the sorry server alone (12 inhibited at 0).
    let (_, logs) = o.set_health(&c, &check(&o, 0, 1), Health::Down);
    assert_eq!(logs, vec!["web: quorum lost (alive weight 0 < 2), sorry server in".to_string()]);
    assert_eq!(weights(&o, &c, 0), vec![("10.0.0.12".into(), 0), ("10.0.0.99".into(), 1)]);
    // 11 back (weight 1 < 2): still lost.
    o.set_health(&c, &check(&o, 0, 0), Health::Up);
    assert_eq!(o.quorum(0), Some(false));
    assert_eq!(weights(&o, &c, 0), vec![("10.0.0.12".into(), 0), ("10.0.0.99".into(), 1)]);
    // 12 back: regained, the sorry server leaves at once.
    let (_, logs) = o.set_health(&c, &check(&o, 0, 1), Health::Up);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(weights(&o, &c, 0), vec![("10.0.0.11".into(), 1), ("10.0.0.12".into(), 3)]);
    assert!(o.service(&c, 0).gone.contains(&("10.0.0.99".parse().unwrap(), 80)));
}

#[test]
fn hysteresis_damps_quorum_changes() {
    assert_eq!(quorum_step(Some(true), 2, 3, 1, true), Some(true), "lost only below 3 - 1");
    assert_eq!(quorum_step(Some(true), 1, 3, 1, true), Some(false));
    assert_eq!(quorum_step(Some(false), 3, 3, 1, true), Some(false), "regained only at 3 + 1");
    assert_eq!(quorum_step(Some(false), 4, 3, 1, true), Some(true));
    assert_eq!(quorum_step(None, 0, 1, 0, false), None, "not judged while reals are unknown");
    assert_eq!(quorum_step(None, 0, 1, 0, true), Some(false));
    assert_eq!(quorum_step(None, 1, 1, 0, false), Some(true));
}

#[test]
fn a_restart_adopts_what_the_kernel_serves() {
    let c = cfg();
    // The kernel serves 10.0.0.11 and 10.0.0.12 in "web".
    let serving = |k: &ServiceKey, a: IpAddr, _p: u16| {
        (k.to_string() == "TCP 10.0.0.100:80" && ["10.0.0.11", "10.0.0.12"].contains(&a.to_string().as_str()))
            .then_some(1)
    };
    let o = Overlay::new(&c, BTreeMap::new(), &serving, None);
    assert_eq!(o.health_of(0, 0), Some(Health::Up));
    assert_eq!(o.quorum(0), Some(true));
    assert_eq!(o.service(&c, 0), reconcile::desired_service(&c.services[0]).with_gone_of(&c.services[0]));
    // The kernel had the sorry server: the quorum was lost and stays so.
    let sorry = |_: &ServiceKey, a: IpAddr, _: u16| (a.to_string() == "10.0.0.99").then_some(1);
    let o = Overlay::new(&c, BTreeMap::new(), &sorry, None);
    assert_eq!(o.quorum(0), Some(false));
    assert_eq!(weights(&o, &c, 0), vec![("10.0.0.12".into(), 0), ("10.0.0.99".into(), 1)]);
}

#[test]
fn overrides_disable_and_drain_and_carry_over_an_apply() {
    let c = cfg();
    let all = |_: &ServiceKey, _: IpAddr, _: u16| Some(1);
    let mut o = Overlay::new(&c, BTreeMap::new(), &all, None);
    o.set_override(&c, 1, 0, Some(Override::Drain));
    assert_eq!(weights(&o, &c, 1), vec![("10.0.0.11".into(), 0)]);
    o.set_override(&c, 0, 0, Some(Override::Disable));
    assert_eq!(weights(&o, &c, 0), vec![("10.0.0.12".into(), 3)]);
    assert!(o.service(&c, 0).gone.contains(&("10.0.0.11".parse().unwrap(), 80)));
    // A drained/disabled real does not count for the quorum: 3 >= 2 still.
    assert_eq!(o.quorum(0), Some(true));
    // An apply keeps verdicts and overrides.
    let o2 = Overlay::new(&c, o.overrides().clone(), &none, Some(&o));
    assert_eq!(o2.health_of(0, 1), Some(Health::Up));
    assert_eq!(weights(&o2, &c, 1), vec![("10.0.0.11".into(), 0)]);
    o.set_override(&c, 1, 0, None);
    assert_eq!(weights(&o, &c, 1), vec![("10.0.0.11".into(), 1)]);
}

#[test]
fn a_weight_0_real_in_the_kernel_is_adopted_only_when_configured_so() {
    let c = parse(&CFG.replace("weight = 3\n", "weight = 0\n"), "t").unwrap();
    let zero = |_: &ServiceKey, _: IpAddr, _: u16| Some(0);
    let o = Overlay::new(&c, BTreeMap::new(), &zero, None);
    assert_eq!(o.health_of(0, 0), Some(Health::Unknown), "configured 1, at 0 in the kernel (inhibited)");
    assert_eq!(o.health_of(0, 1), Some(Health::Up), "configured 0");
}

#[test]
fn hidden_services_for_through_the_vip_checks() {
    let c = parse(
        "[[interfaces]]\nname = \"eth0\"\naddresses = [\"10.0.0.2/24\"]\n[[services]]\naddress = \"10.0.0.100:80\"\ncheck = { type = \"tcp\", through_vip = true }\n[[services.reals]]\naddress = \"10.0.0.11\"\n",
        "t",
    )
    .unwrap();
    let o = Overlay::new(&c, BTreeMap::new(), &none, None);
    let d = o.desired(&c);
    assert_eq!(d.len(), 2);
    assert_eq!(d[1].svc.key.to_string(), format!("FWM {}", super::super::config::VIP_MARK_BASE));
    assert_eq!(d[1].dests[0].addr.to_string(), "10.0.0.11");
    assert_eq!(d[1].dests[0].port, 80);
}

impl DesiredService {
    /// The plain desired service plus the sorry server in `gone` (what the
    /// overlay of a healthy service is).
    fn with_gone_of(mut self, s: &config::Service) -> Self {
        if let Some(so) = &s.sorry_server {
            let x = sorry_dest(s, so);
            self.gone.push((x.addr, x.port));
        }
        self
    }
}
