//! `lbd::net` and `lbd::sysctl` against a real kernel, each test in its own
//! throwaway network namespace.
//!
//! Every test runs on a fresh thread that calls `unshare(CLONE_NEWNET)`: the
//! namespace belongs to that thread only and disappears when the thread ends,
//! also when the test panics, so nothing is left behind on the host.
//!
//! Needs root (CAP_SYS_ADMIN) and a kernel with network namespaces and veth.
//! Without them these tests FAIL with a message saying so; they do not skip.
//! Run them alone with `cargo test -p lbd --test netns`; leave them out with
//! `cargo test --workspace -- --skip netns_`.

use std::net::IpAddr;

use futures::TryStreamExt;
use lbd::config::{self, Config, MacAddr};
use lbd::net::{self, LinkState, Outcome, Report, RouteState};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};

/// Runs `f` in a fresh network namespace on its own thread, with a current-thread
/// tokio runtime and an rtnetlink connection opened inside the namespace.
fn in_netns<F, Fut>(f: F)
where
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let t = std::thread::spawn(move || {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            panic!(
                "netns tests need root (CAP_SYS_ADMIN) and CONFIG_NET_NS: unshare(CLONE_NEWNET) failed: {e}. \
                 Run as root, or skip them with `-- --skip netns_`."
            );
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let h = net::connect().expect("rtnetlink socket");
            f(h).await
        });
    });
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p);
    }
}

const MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

async fn veth(h: &Handle, a: &str, b: &str) {
    h.link().add(LinkVeth::new(a, b).build()).execute().await.unwrap_or_else(|e| {
        panic!("creating veth {a}/{b} failed: {e}; the netns tests need veth support in the kernel")
    });
}

async fn set_mac(h: &Handle, name: &str, mac: MacAddr) {
    let l = h.link().get().match_name(name.to_string()).execute().try_next().await.unwrap().unwrap();
    h.link().set(LinkUnspec::new_with_index(l.header.index).address(mac.0.to_vec()).build()).execute().await.unwrap();
}

fn cfg(src: &str) -> Config {
    config::parse(src, "netns.toml").unwrap_or_else(|e| panic!("test config invalid: {e:?}"))
}

fn link<'a>(ls: &'a [LinkState], name: &str) -> &'a LinkState {
    ls.iter().find(|l| l.name == name).unwrap_or_else(|| panic!("no link {name} in {ls:#?}"))
}

fn has_addr(l: &LinkState, a: &str) -> Option<bool> {
    let a: config::IfAddr = a.parse().unwrap();
    l.addresses.iter().find(|x| x.address == a).map(|x| x.owned)
}

fn route<'a>(rs: &'a [RouteState], dst: &str) -> Option<&'a RouteState> {
    let d: config::Prefix = dst.parse().unwrap();
    rs.iter().find(|r| r.destination == d)
}

fn assert_all_ok(r: &Report) {
    let f: Vec<String> = r.failures().map(|i| i.to_string()).collect();
    assert!(f.is_empty(), "failures:\n{}\nfull report:\n{r:#?}", f.join("\n"));
}

fn assert_nothing_changed(r: &Report) {
    let c: Vec<String> = r.changes().map(|i| i.to_string()).collect();
    assert!(c.is_empty(), "second apply changed things:\n{}", c.join("\n"));
    assert_all_ok(r);
}

const BASE: &str = r#"
[[interfaces]]
name = "lan0"
mac = "52:54:00:12:34:56"
mtu = 1400
addresses = ["10.50.0.2/24", "2001:db8:50::2/64"]

[[interfaces]]
name = "v0"
addresses = ["10.60.0.1/24"]

[[routes]]
destination = "10.70.0.0/16"
gateway = "10.50.0.1"

[[routes]]
destination = "10.80.0.0/16"
interface = "v0"
metric = 7

[[routes]]
destination = "default"
gateway = "10.50.0.1"

[[vips]]
address = "10.50.0.100"
interface = "lan0"
label = "lan0:vip"

[[vips]]
address = "2001:db8:50::100/128"
interface = "lan0"
"#;

#[test]
fn netns_apply_is_idempotent_and_renames_by_mac() {
    in_netns(|h| async move {
        veth(&h, "v0", "v1").await;
        set_mac(&h, "v1", MAC).await;
        let c = cfg(BASE);

        let r = net::apply_with(&h, &c).await;
        assert_all_ok(&r);
        let text: Vec<String> = r.items.iter().map(|i| i.to_string()).collect();
        assert!(text.contains(&"lan0: rename v1 (52:54:00:12:34:56): done".to_string()), "{text:#?}");

        let ls = net::links_with(&h).await.unwrap();
        assert!(ls.iter().all(|l| l.name != "v1"), "v1 should have been renamed: {ls:#?}");
        let lan = link(&ls, "lan0");
        assert_eq!(lan.mac, Some(MAC));
        assert_eq!(lan.mtu, 1400);
        assert!(lan.up, "lan0 must be up");
        assert!(link(&ls, "lo").up, "lo must be up");
        assert!(link(&ls, "v0").up);
        assert_eq!(has_addr(lan, "10.50.0.2/24"), Some(true));
        assert_eq!(has_addr(lan, "2001:db8:50::2/64"), Some(true));
        assert_eq!(has_addr(lan, "10.50.0.100/32"), Some(true));
        assert_eq!(has_addr(lan, "2001:db8:50::100/128"), Some(true));
        let vip = lan.addresses.iter().find(|a| a.address.to_string() == "10.50.0.100/32").unwrap();
        assert_eq!(vip.label.as_deref(), Some("lan0:vip"));
        assert_eq!(has_addr(link(&ls, "v0"), "10.60.0.1/24"), Some(true));

        let rs = net::routes_with(&h).await.unwrap();
        let r70 = route(&rs, "10.70.0.0/16").expect("route 10.70/16");
        assert_eq!(r70.gateway, Some("10.50.0.1".parse::<IpAddr>().unwrap()));
        assert_eq!(r70.interface.as_deref(), Some("lan0"));
        assert!(r70.owned);
        let r80 = route(&rs, "10.80.0.0/16").expect("route 10.80/16");
        assert_eq!((r80.interface.as_deref(), r80.metric, r80.gateway), (Some("v0"), 7, None));
        assert!(route(&rs, "default").is_some_and(|r| r.owned));
        // Kernel-made connected routes are listed but not ours.
        assert!(route(&rs, "10.50.0.0/24").is_some_and(|r| !r.owned));

        // Twice: nothing to do.
        let again = net::apply_with(&h, &c).await;
        assert_nothing_changed(&again);
        assert_eq!(again.items.len(), r.items.len() - 1, "the rename step disappears, everything else is reported");
    });
}

#[test]
fn netns_converges_only_what_it_owns() {
    in_netns(|h| async move {
        veth(&h, "v0", "v1").await;
        set_mac(&h, "v1", MAC).await;
        assert_all_ok(&net::apply_with(&h, &cfg(BASE)).await);

        // Someone else's address and route, added without the lvsbox marker.
        let v0 = h.link().get().match_name("v0".to_string()).execute().try_next().await.unwrap().unwrap();
        h.address().add(v0.header.index, "10.62.0.9".parse().unwrap(), 24).execute().await.unwrap();
        h.route()
            .add(
                rtnetlink::RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                    .destination_prefix("10.90.0.0".parse().unwrap(), 16)
                    .gateway("10.62.0.254".parse().unwrap())
                    .build(),
            )
            .execute()
            .await
            .unwrap();

        // New config: VIP moved, one route gone, the default route via another
        // gateway, the IPv6 address dropped, v0's address with another prefix.
        let changed = BASE
            .replace("10.50.0.100\"", "10.50.0.101\"")
            .replace(", \"2001:db8:50::2/64\"", "")
            .replace("[[routes]]\ndestination = \"10.80.0.0/16\"\ninterface = \"v0\"\nmetric = 7\n", "")
            .replace(
                "destination = \"default\"\ngateway = \"10.50.0.1\"",
                "destination = \"default\"\ngateway = \"10.50.0.254\"",
            )
            .replace("10.60.0.1/24", "10.60.0.1/25");
        let r = net::apply_with(&h, &cfg(&changed)).await;
        assert_all_ok(&r);
        let text: Vec<String> = r.changes().map(|i| i.to_string()).collect();
        for want in [
            "lan0: vip 10.50.0.101/32: done",
            "lan0: remove stale address 10.50.0.100/32: done",
            "lan0: remove stale address 2001:db8:50::2/64: done",
            "remove stale route 10.80.0.0/16: done",
            "route default via 10.50.0.254: done",
            "v0: address 10.60.0.1/25: done",
        ] {
            assert!(text.iter().any(|t| t == want), "missing `{want}` in {text:#?}");
        }

        let ls = net::links_with(&h).await.unwrap();
        let lan = link(&ls, "lan0");
        assert_eq!(has_addr(lan, "10.50.0.100/32"), None);
        assert_eq!(has_addr(lan, "10.50.0.101/32"), Some(true));
        assert_eq!(has_addr(lan, "2001:db8:50::2/64"), None);
        let v0 = link(&ls, "v0");
        assert_eq!(has_addr(v0, "10.60.0.1/25"), Some(true));
        assert_eq!(has_addr(v0, "10.60.0.1/24"), None);
        assert_eq!(has_addr(v0, "10.62.0.9/24"), Some(false), "foreign address must stay");
        let rs = net::routes_with(&h).await.unwrap();
        assert!(route(&rs, "10.80.0.0/16").is_none());
        assert!(route(&rs, "10.90.0.0/16").is_some_and(|r| !r.owned), "foreign route must stay");
        let d = route(&rs, "default").unwrap();
        assert_eq!(d.gateway, Some("10.50.0.254".parse::<IpAddr>().unwrap()));
        assert_eq!(rs.iter().filter(|r| r.destination.is_default() && r.destination.addr.is_ipv4()).count(), 1);

        assert_nothing_changed(&net::apply_with(&h, &cfg(&changed)).await);
    });
}

#[test]
fn netns_rename_moves_a_name_holder_aside() {
    in_netns(|h| async move {
        // `lan0` already exists but is the wrong NIC; the config wants the one with MAC.
        veth(&h, "lan0", "peer0").await;
        veth(&h, "eth7", "peer7").await;
        set_mac(&h, "eth7", MAC).await;
        let c = cfg("[[interfaces]]\nname = \"lan0\"\nmac = \"52:54:00:12:34:56\"\naddresses = [\"10.1.0.1/24\"]\n");
        let r = net::apply_with(&h, &c).await;
        assert_all_ok(&r);
        let ls = net::links_with(&h).await.unwrap();
        let lan = link(&ls, "lan0");
        assert_eq!(lan.mac, Some(MAC));
        assert!(ls.iter().any(|l| l.name.starts_with("lvtmp")), "old holder moved aside: {ls:#?}");
        assert_eq!(has_addr(lan, "10.1.0.1/24"), Some(true));
        assert_nothing_changed(&net::apply_with(&h, &c).await);
    });
}

#[test]
fn netns_failures_are_per_item() {
    in_netns(|h| async move {
        veth(&h, "v0", "v1").await;
        // eth9 does not exist; the VLAN needs 8021q which the host may lack;
        // v0 must still be configured.
        let c = cfg(r#"
[[interfaces]]
name = "eth9"
addresses = ["10.2.0.1/24"]

[[interfaces]]
name = "v0"
addresses = ["10.3.0.1/24"]

[[interfaces]]
name = "v0.42"
vlan = { parent = "v0", id = 42 }
addresses = ["10.4.0.1/24"]
"#);
        let r = net::apply_with(&h, &c).await;
        let failed: Vec<String> = r.failures().map(|i| i.to_string()).collect();
        assert!(failed.iter().any(|f| f.starts_with("eth9: find: FAILED: no such interface")), "{failed:#?}");
        assert!(failed.iter().any(|f| f.starts_with("eth9: address 10.2.0.1/24: FAILED")), "{failed:#?}");
        let ls = net::links_with(&h).await.unwrap();
        assert_eq!(has_addr(link(&ls, "v0"), "10.3.0.1/24"), Some(true));
        let vlan_ok = ls.iter().any(|l| l.name == "v0.42");
        if vlan_ok {
            let v = link(&ls, "v0.42");
            assert_eq!((v.kind.as_deref(), v.vlan_id, v.parent.as_deref()), (Some("vlan"), Some(42), Some("v0")));
            assert_eq!(has_addr(v, "10.4.0.1/24"), Some(true));
        } else {
            // Kernel without 8021q: reported with the kernel's error, nothing else lost.
            let item = r.items.iter().find(|i| i.what == "v0.42: vlan 42 on v0").expect("vlan item");
            assert!(matches!(&item.outcome, Outcome::Failed { error } if !error.is_empty()), "{item}");
            eprintln!("note: host kernel cannot create VLANs: {item}");
        }
    });
}

#[test]
fn netns_sysctl_ip_forward() {
    in_netns(|_h| async move {
        let root = std::path::Path::new(lbd::sysctl::PROC_SYS);
        let mut c = Config::default();
        for want in [true, false] {
            c.system.ip_forward = want;
            let res = lbd::sysctl::apply(&lbd::sysctl::from_config(&c));
            assert!(!res[0].failed(), "{}", res[0]);
            assert_eq!(lbd::sysctl::read_at(root, "net.ipv4.ip_forward").unwrap(), if want { "1" } else { "0" });
        }
        let res = lbd::sysctl::apply(&lbd::sysctl::from_config(&c));
        assert_eq!(res[0].outcome, lbd::sysctl::Outcome::Unchanged);
    });
}
