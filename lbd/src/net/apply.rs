//! Bringing the kernel to the config: links, VLANs, addresses, VIPs, routes,
//! then removing what lvsbox added earlier that the config no longer has.

use std::collections::HashSet;
use std::net::IpAddr;

use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressProtocol};
use netlink_packet_route::route::{RouteMessage, RouteProtocol, RouteScope};
use rtnetlink::{Handle, LinkUnspec, LinkVlan, RouteMessageBuilder};

use super::state::{Link, Rt, dump_addrs, dump_links, dump_routes};
use super::{ADDR_PROTO, ROUTE_PROTO, Report, nl_errno, nl_error};
use crate::config::{Config, IfAddr, MacAddr, Prefix};

/// An address the config wants on a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct WantAddr {
    pub ifname: String,
    pub addr: IfAddr,
    pub label: Option<String>,
    /// A VIP: added without duplicate address detection (IPv6), like keepalived.
    pub vip: bool,
}

/// A route the config wants in the main table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct WantRoute {
    pub dst: Prefix,
    pub gateway: Option<IpAddr>,
    pub ifname: Option<String>,
    pub metric: Option<u32>,
}

impl WantRoute {
    /// The metric the kernel stores when none is given (IPv6 uses 1024).
    fn effective_metric(&self) -> u32 {
        self.metric.unwrap_or(if self.dst.addr.is_ipv6() { 1024 } else { 0 })
    }
    fn describe(&self) -> String {
        let mut s = format!("route {}", self.dst);
        if let Some(g) = self.gateway {
            s += &format!(" via {g}");
        }
        if let Some(i) = &self.ifname {
            s += &format!(" dev {i}");
        }
        if let Some(m) = self.metric {
            s += &format!(" metric {m}");
        }
        s
    }
    fn matches(&self, rt: &Rt, oif: Option<u32>) -> bool {
        rt.dst == self.dst.addr
            && rt.len == self.dst.len
            && rt.gateway == self.gateway
            && (oif.is_none() || rt.oif == oif)
            && rt.priority == self.effective_metric()
    }
}

/// Addresses (interface addresses, then static VIPs) in config order.
pub(super) fn wanted_addrs(cfg: &Config) -> Vec<WantAddr> {
    let mut out = Vec::new();
    for itf in &cfg.interfaces {
        for a in &itf.addresses {
            out.push(WantAddr { ifname: itf.name.clone(), addr: *a, label: None, vip: false });
        }
    }
    for v in &cfg.vips {
        out.push(WantAddr { ifname: v.interface.clone(), addr: v.address, label: v.label.clone(), vip: true });
    }
    out
}

/// Routes in config order.
pub(super) fn wanted_routes(cfg: &Config) -> Vec<WantRoute> {
    cfg.routes
        .iter()
        .map(|r| WantRoute { dst: r.destination, gateway: r.gateway, ifname: r.interface.clone(), metric: r.metric })
        .collect()
}

/// The NIC a config interface with a MAC means: the one whose permanent MAC
/// matches, else one whose current MAC matches; never a VLAN (VLANs inherit
/// their parent's MAC).
pub(super) fn find_by_mac(links: &[Link], mac: MacAddr) -> Option<&Link> {
    let not_vlan = |l: &&Link| l.kind.as_deref() != Some("vlan");
    links
        .iter()
        .filter(not_vlan)
        .find(|l| l.perm_mac == Some(mac))
        .or_else(|| links.iter().filter(not_vlan).find(|l| l.mac == Some(mac)))
}

fn index_of(links: &[Link], name: &str) -> Option<u32> {
    links.iter().find(|l| l.name == name).map(|l| l.index)
}

async fn set(h: &Handle, msg: netlink_packet_route::link::LinkMessage) -> Result<(), String> {
    h.link().set(msg).execute().await.map_err(|e| nl_error(&e))
}

/// Applies the network part of `cfg` with an existing connection.
pub async fn apply_with(h: &Handle, cfg: &Config) -> Report {
    let mut r = Report::default();
    let mut links = match dump_links(h).await {
        Ok(l) => l,
        Err(e) => {
            r.failed("list links", e);
            return r;
        }
    };
    apply_links(h, cfg, &mut links, &mut r).await;
    // Indexes and names may have changed (renames, new VLANs).
    match dump_links(h).await {
        Ok(l) => links = l,
        Err(e) => {
            r.failed("list links", e);
            return r;
        }
    }
    apply_addrs(h, cfg, &links, &mut r).await;
    apply_routes(h, cfg, &links, &mut r).await;
    r
}

async fn apply_links(h: &Handle, cfg: &Config, links: &mut Vec<Link>, r: &mut Report) {
    if let Some(lo) = links.iter().find(|l| l.name == "lo") {
        if lo.up {
            r.unchanged("lo: up");
        } else {
            match set(h, LinkUnspec::new_with_index(lo.index).up().build()).await {
                Ok(()) => r.done("lo: up"),
                Err(e) => r.failed("lo: up", e),
            }
        }
    }
    for itf in cfg.interfaces.iter().filter(|i| i.vlan.is_none()) {
        let found = match itf.mac {
            Some(m) => find_by_mac(links, m).cloned(),
            None => links.iter().find(|l| l.name == itf.name).cloned(),
        };
        let Some(link) = found else {
            let why = match itf.mac {
                Some(m) => format!("no NIC with MAC {m}"),
                None => "no such interface".to_string(),
            };
            r.failed(format!("{}: find", itf.name), why);
            continue;
        };
        let mut ok = true;
        if link.name != itf.name {
            ok = rename(h, links, &link, &itf.name, itf.mac, r).await;
        }
        if ok {
            configure_link(h, &itf.name, link.index, link.mtu, link.up && link.name == itf.name, itf.mtu, r).await;
        }
    }
    for itf in cfg.interfaces.iter() {
        let Some(vlan) = &itf.vlan else { continue };
        let what = format!("{}: vlan {} on {}", itf.name, vlan.id, vlan.parent);
        let Some(parent) = index_of(links, &vlan.parent) else {
            r.failed(what, format!("parent `{}` does not exist", vlan.parent));
            continue;
        };
        let link = match links.iter().find(|l| l.name == itf.name) {
            Some(l) => {
                if l.kind.as_deref() == Some("vlan") && l.vlan_id == Some(vlan.id) && l.parent == Some(parent) {
                    r.unchanged(what);
                    l.clone()
                } else {
                    r.failed(what, format!("`{}` exists but is not VLAN {} on {}", itf.name, vlan.id, vlan.parent));
                    continue;
                }
            }
            None => {
                if let Err(e) = h.link().add(LinkVlan::new(&itf.name, parent, vlan.id).build()).execute().await {
                    let hint = if nl_errno(&e) == Some(libc::EOPNOTSUPP) { " (is 8021q loaded?)" } else { "" };
                    r.failed(what, format!("{}{hint}", nl_error(&e)));
                    continue;
                }
                r.done(what);
                match dump_links(h).await.ok().and_then(|l| l.into_iter().find(|l| l.name == itf.name)) {
                    Some(l) => {
                        links.push(l.clone());
                        l
                    }
                    None => {
                        r.failed(format!("{}: find", itf.name), "created but not listed");
                        continue;
                    }
                }
            }
        };
        configure_link(h, &itf.name, link.index, link.mtu, link.up, itf.mtu, r).await;
    }
}

/// Renames `link` to `name` (down first, as the kernel requires). A different
/// link holding the name is moved aside to `lvtmpN` first.
async fn rename(h: &Handle, links: &mut [Link], link: &Link, name: &str, mac: Option<MacAddr>, r: &mut Report) -> bool {
    if let Some(holder) = links.iter().find(|l| l.name == name && l.index != link.index).cloned() {
        let tmp = format!("lvtmp{}", holder.index);
        let what = format!("{}: rename to {tmp} to free the name", holder.name);
        let res = match set(h, LinkUnspec::new_with_index(holder.index).down().build()).await {
            Ok(()) => set(h, LinkUnspec::new_with_index(holder.index).name(tmp.clone()).build()).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(()) => {
                r.done(what);
                if let Some(l) = links.iter_mut().find(|l| l.index == holder.index) {
                    l.name = tmp;
                }
            }
            Err(e) => {
                r.failed(what, e);
                return false;
            }
        }
    }
    let what = match mac {
        Some(m) => format!("{}: rename {} ({m})", name, link.name),
        None => format!("{}: rename {}", name, link.name),
    };
    let res = match set(h, LinkUnspec::new_with_index(link.index).down().build()).await {
        Ok(()) => set(h, LinkUnspec::new_with_index(link.index).name(name.to_string()).build()).await,
        Err(e) => Err(e),
    };
    match res {
        Ok(()) => {
            r.done(what);
            if let Some(l) = links.iter_mut().find(|l| l.index == link.index) {
                l.name = name.to_string();
                l.up = false;
            }
            true
        }
        Err(e) => {
            r.failed(what, e);
            false
        }
    }
}

async fn configure_link(
    h: &Handle,
    name: &str,
    index: u32,
    cur_mtu: u32,
    is_up: bool,
    mtu: Option<u32>,
    r: &mut Report,
) {
    if let Some(m) = mtu {
        let what = format!("{name}: mtu {m}");
        if cur_mtu == m {
            r.unchanged(what);
        } else {
            match set(h, LinkUnspec::new_with_index(index).mtu(m).build()).await {
                Ok(()) => r.done(what),
                Err(e) => r.failed(what, e),
            }
        }
    }
    let what = format!("{name}: up");
    if is_up {
        r.unchanged(what);
    } else {
        match set(h, LinkUnspec::new_with_index(index).up().build()).await {
            Ok(()) => r.done(what),
            Err(e) => r.failed(what, e),
        }
    }
}

async fn apply_addrs(h: &Handle, cfg: &Config, links: &[Link], r: &mut Report) {
    let current = match dump_addrs(h).await {
        Ok(a) => a,
        Err(e) => {
            r.failed("list addresses", e);
            return;
        }
    };
    let wanted = wanted_addrs(cfg);
    let mut keep: HashSet<(u32, IpAddr, u8)> = HashSet::new();
    for w in &wanted {
        let kind = if w.vip { "vip" } else { "address" };
        let what = format!("{}: {kind} {}", w.ifname, w.addr);
        let Some(index) = index_of(links, &w.ifname) else {
            r.failed(what, format!("interface `{}` does not exist", w.ifname));
            continue;
        };
        keep.insert((index, w.addr.addr, w.addr.prefix));
        let present = current.iter().find(|a| a.index == index && a.addr.addr == w.addr.addr);
        match present {
            Some(a) if a.addr.prefix == w.addr.prefix => {
                r.unchanged(what);
                continue;
            }
            Some(a) if a.owned => {
                // Ours with another prefix: replace it.
                if let Err(e) = h.address().del(a.msg.clone()).execute().await {
                    r.failed(what, format!("removing {} first: {}", a.addr, nl_error(&e)));
                    continue;
                }
            }
            Some(a) => {
                r.failed(
                    what,
                    format!("{} is already on {} with another prefix (not added by lvsbox)", a.addr, w.ifname),
                );
                continue;
            }
            None => {}
        }
        let mut req = h.address().add(index, w.addr.addr, w.addr.prefix);
        let msg = req.message_mut();
        msg.attributes.push(AddressAttribute::Protocol(AddressProtocol::from(ADDR_PROTO)));
        // IPv6 has no address labels; the label is only shown for IPv4.
        if let Some(l) = w.label.as_ref().filter(|_| w.addr.addr.is_ipv4()) {
            msg.attributes.push(AddressAttribute::Label(l.clone()));
        }
        if w.vip && w.addr.addr.is_ipv6() {
            msg.header.flags = AddressHeaderFlags::Nodad;
            msg.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Ok(()) => r.done(what),
            Err(e) if nl_errno(&e) == Some(libc::EEXIST) => r.unchanged(what),
            Err(e) => r.failed(what, nl_error(&e)),
        }
    }
    // Convergence: our addresses that the config no longer lists.
    for a in current.iter().filter(|a| a.owned) {
        if keep.contains(&(a.index, a.addr.addr, a.addr.prefix)) {
            continue;
        }
        if wanted.iter().any(|w| index_of(links, &w.ifname) == Some(a.index) && w.addr.addr == a.addr.addr) {
            continue; // replaced above
        }
        let name = links.iter().find(|l| l.index == a.index).map(|l| l.name.as_str()).unwrap_or("?");
        let what = format!("{name}: remove stale address {}", a.addr);
        match h.address().del(a.msg.clone()).execute().await {
            Ok(()) => r.done(what),
            Err(e) if nl_errno(&e) == Some(libc::EADDRNOTAVAIL) => r.unchanged(what),
            Err(e) => r.failed(what, nl_error(&e)),
        }
    }
}

fn route_message(w: &WantRoute, oif: Option<u32>) -> RouteMessage {
    let mut b = match (w.dst.addr, w.gateway) {
        (IpAddr::V4(d), gw) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new().destination_prefix(d, w.dst.len);
            if let Some(IpAddr::V4(g)) = gw {
                b = b.gateway(g);
            }
            b.build()
        }
        (IpAddr::V6(d), gw) => {
            let mut b = RouteMessageBuilder::<std::net::Ipv6Addr>::new().destination_prefix(d, w.dst.len);
            if let Some(IpAddr::V6(g)) = gw {
                b = b.gateway(g);
            }
            b.build()
        }
    };
    b.header.protocol = RouteProtocol::from(ROUTE_PROTO);
    if w.gateway.is_none() {
        b.header.scope = RouteScope::Link;
    }
    if let Some(i) = oif {
        b.attributes.push(netlink_packet_route::route::RouteAttribute::Oif(i));
    }
    if let Some(m) = w.metric {
        b.attributes.push(netlink_packet_route::route::RouteAttribute::Priority(m));
    }
    b
}

async fn apply_routes(h: &Handle, cfg: &Config, links: &[Link], r: &mut Report) {
    let current = match dump_routes(h).await {
        Ok(v) => v,
        Err(e) => {
            r.failed("list routes", e);
            return;
        }
    };
    let wanted = wanted_routes(cfg);
    for w in &wanted {
        let what = w.describe();
        let oif = match &w.ifname {
            Some(n) => match index_of(links, n) {
                Some(i) => Some(i),
                None => {
                    r.failed(what, format!("interface `{n}` does not exist"));
                    continue;
                }
            },
            None => None,
        };
        if current.iter().any(|rt| w.matches(rt, oif)) {
            r.unchanged(what);
            continue;
        }
        // Same destination and metric but another next hop, added by us: replace.
        let ours_same_key = current
            .iter()
            .any(|rt| rt.owned && rt.dst == w.dst.addr && rt.len == w.dst.len && rt.priority == w.effective_metric());
        let mut req = h.route().add(route_message(w, oif));
        if ours_same_key {
            req = req.replace();
        }
        match req.execute().await {
            Ok(()) => r.done(what),
            Err(e) if nl_errno(&e) == Some(libc::EEXIST) => {
                r.failed(what, format!("a route to {} with this metric already exists (not added by lvsbox)", w.dst))
            }
            Err(e) => r.failed(what, nl_error(&e)),
        }
    }
    // Convergence: our routes that no configured route matches. Dump again so
    // routes just replaced are compared in their new form.
    let now = match dump_routes(h).await {
        Ok(v) => v,
        Err(e) => {
            r.failed("list routes", e);
            return;
        }
    };
    for rt in now.iter().filter(|rt| rt.owned) {
        let wanted_here = wanted.iter().any(|w| {
            let oif = w.ifname.as_deref().and_then(|n| index_of(links, n));
            w.matches(rt, oif)
        });
        if wanted_here {
            continue;
        }
        let mut what = format!("remove stale route {}/{}", rt.dst, rt.len);
        if let Some(g) = rt.gateway {
            what += &format!(" via {g}");
        }
        match h.route().del(rt.msg.clone()).execute().await {
            Ok(()) => r.done(what),
            Err(e) if nl_errno(&e) == Some(libc::ESRCH) => r.unchanged(what),
            Err(e) => r.failed(what, nl_error(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, mac: [u8; 6], perm: Option<[u8; 6]>, kind: Option<&str>) -> Link {
        Link {
            index,
            name: name.into(),
            mac: Some(MacAddr(mac)),
            perm_mac: perm.map(MacAddr),
            mtu: 1500,
            up: false,
            carrier: false,
            oper: "down".into(),
            kind: kind.map(str::to_string),
            parent: None,
            vlan_id: None,
        }
    }

    #[test]
    fn mac_match_prefers_permanent_and_skips_vlans() {
        let m = [0x52, 0x54, 0, 0, 0, 1];
        let links = vec![
            link(5, "eth0.100", m, None, Some("vlan")),
            link(3, "eth9", m, None, None),
            link(2, "eth0", [0x52, 0x54, 0, 0, 0, 9], Some(m), None),
        ];
        assert_eq!(find_by_mac(&links, MacAddr(m)).unwrap().index, 2);
        let links = vec![link(5, "eth0.100", m, None, Some("vlan")), link(3, "eth9", m, None, None)];
        assert_eq!(find_by_mac(&links, MacAddr(m)).unwrap().index, 3);
        assert!(find_by_mac(&links[..1], MacAddr(m)).is_none());
    }

    #[test]
    fn wanted_from_config() {
        let c = crate::config::parse(
            r#"
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.10/24", "2001:db8::10/64"]
[[routes]]
destination = "default"
gateway = "192.0.2.1"
[[routes]]
destination = "2001:db8:1::/48"
gateway = "2001:db8::1"
metric = 5
[[vips]]
address = "192.0.2.100"
interface = "eth0"
label = "eth0:vip"
"#,
            "t.toml",
        )
        .unwrap();
        let a = wanted_addrs(&c);
        assert_eq!(a.len(), 3);
        assert!(a[2].vip && a[2].addr.prefix == 32 && a[2].label.as_deref() == Some("eth0:vip"));
        let rts = wanted_routes(&c);
        assert_eq!(rts[0].describe(), "route default via 192.0.2.1");
        assert_eq!(rts[0].effective_metric(), 0);
        assert_eq!(rts[1].effective_metric(), 5);
        let v6_nometric = WantRoute { metric: None, ..rts[1].clone() };
        assert_eq!(v6_nometric.effective_metric(), 1024);
        let m = route_message(&rts[0], None);
        assert_eq!(u8::from(m.header.protocol), ROUTE_PROTO);
        assert_eq!(m.header.destination_prefix_length, 0);
        assert_eq!(m.header.scope, RouteScope::Universe);
        let onlink = WantRoute { gateway: None, ifname: Some("eth0".into()), ..rts[0].clone() };
        assert_eq!(route_message(&onlink, Some(7)).header.scope, RouteScope::Link);
    }
}
