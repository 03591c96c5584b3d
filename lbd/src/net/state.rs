//! Dumps of the kernel's links, addresses and routes, decoded into small
//! structs that the apply logic and the console can use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType, RouteVia};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{ADDR_PROTO, AddrState, LinkState, MAIN_TABLE, NetError, ROUTE_PROTO, RouteState, nl_error};
use crate::config::{IfAddr, MacAddr, Prefix};

/// A link, decoded.
#[derive(Clone, Debug)]
pub(super) struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<MacAddr>,
    pub perm_mac: Option<MacAddr>,
    pub mtu: u32,
    pub up: bool,
    pub carrier: bool,
    pub oper: String,
    pub kind: Option<String>,
    pub parent: Option<u32>,
    pub vlan_id: Option<u16>,
}

/// An address, decoded.
#[derive(Clone, Debug)]
pub(super) struct Addr {
    pub index: u32,
    pub addr: IfAddr,
    pub label: Option<String>,
    pub owned: bool,
    pub msg: AddressMessage,
}

/// A route in the main table, decoded.
#[derive(Clone, Debug)]
pub(super) struct Rt {
    pub dst: IpAddr,
    pub len: u8,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub priority: u32,
    pub owned: bool,
    pub msg: RouteMessage,
}

fn mac(v: &[u8]) -> Option<MacAddr> {
    <[u8; 6]>::try_from(v).ok().map(MacAddr)
}

fn decode_link(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        mac: None,
        perm_mac: None,
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
        carrier: m.header.flags.contains(LinkFlags::LowerUp),
        oper: String::new(),
        kind: None,
        parent: None,
        vlan_id: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Address(v) => l.mac = mac(v),
            LinkAttribute::PermAddress(v) => l.perm_mac = mac(v),
            LinkAttribute::Mtu(v) => l.mtu = *v,
            LinkAttribute::Link(p) => l.parent = Some(*p),
            LinkAttribute::OperState(s) => l.oper = format!("{s:?}").to_lowercase(),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => l.kind = Some(kind_name(k)),
                        LinkInfo::Data(InfoData::Vlan(v)) => {
                            for x in v {
                                if let InfoVlan::Id(id) = x {
                                    l.vlan_id = Some(*id);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    l
}

fn kind_name(k: &InfoKind) -> String {
    match k {
        InfoKind::Vlan => "vlan".into(),
        other => other.to_string(),
    }
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

fn decode_addr(m: AddressMessage) -> Option<Addr> {
    let mut local = None;
    let mut address = None;
    let mut label = None;
    let mut owned = false;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Label(l) => label = Some(l.clone()),
            AddressAttribute::Protocol(p) => owned = u8::from(*p) == ADDR_PROTO,
            _ => {}
        }
    }
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
    // point-to-point links and the only one IPv6 sends.
    let ip = local.or(address)?;
    Some(Addr { index: m.header.index, addr: IfAddr { addr: ip, prefix: m.header.prefix_len }, label, owned, msg: m })
}

fn decode_route(m: RouteMessage) -> Option<Rt> {
    if m.header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(m.header.table);
    let mut dst = None;
    let mut gateway = None;
    let mut oif = None;
    let mut priority = 0;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => dst = route_addr(d),
            RouteAttribute::Gateway(g) => gateway = route_addr(g),
            RouteAttribute::Via(RouteVia::Inet(g)) => gateway = Some(IpAddr::V4(*g)),
            RouteAttribute::Via(RouteVia::Inet6(g)) => gateway = Some(IpAddr::V6(*g)),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => priority = *p,
            _ => {}
        }
    }
    if table != u32::from(MAIN_TABLE) {
        return None;
    }
    let v6 = m.header.address_family == netlink_packet_route::AddressFamily::Inet6;
    let dst = dst.unwrap_or(if v6 { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() });
    let owned = u8::from(m.header.protocol) == ROUTE_PROTO;
    Some(Rt { dst, len: m.header.destination_prefix_length, gateway, oif, priority, owned, msg: m })
}

pub(super) async fn dump_links(h: &Handle) -> Result<Vec<Link>, NetError> {
    let msgs: Vec<LinkMessage> = h
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetError::Netlink { what: "list links".into(), error: nl_error(&e) })?;
    Ok(msgs.iter().map(decode_link).collect())
}

pub(super) async fn dump_addrs(h: &Handle) -> Result<Vec<Addr>, NetError> {
    let msgs: Vec<AddressMessage> = h
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetError::Netlink { what: "list addresses".into(), error: nl_error(&e) })?;
    Ok(msgs.into_iter().filter_map(decode_addr).collect())
}

pub(super) async fn dump_routes(h: &Handle) -> Result<Vec<Rt>, NetError> {
    let mut out = Vec::new();
    for req in [RouteMessageBuilder::<Ipv4Addr>::new().build(), RouteMessageBuilder::<Ipv6Addr>::new().build()] {
        let msgs: Vec<RouteMessage> = h
            .route()
            .get(req)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::Netlink { what: "list routes".into(), error: nl_error(&e) })?;
        out.extend(msgs.into_iter().filter_map(decode_route));
    }
    Ok(out)
}

/// Lists links and their addresses with an existing connection.
pub async fn links_with(h: &Handle) -> Result<Vec<LinkState>, NetError> {
    let links = dump_links(h).await?;
    let addrs = dump_addrs(h).await?;
    let name_of = |i: u32| links.iter().find(|l| l.index == i).map(|l| l.name.clone());
    let mut out: Vec<LinkState> = links
        .iter()
        .map(|l| LinkState {
            index: l.index,
            name: l.name.clone(),
            kind: l.kind.clone(),
            mac: l.mac.filter(|m| m.0 != [0; 6]),
            mtu: l.mtu,
            up: l.up,
            carrier: l.carrier,
            oper: l.oper.clone(),
            parent: l.parent.and_then(name_of),
            vlan_id: l.vlan_id,
            addresses: addrs
                .iter()
                .filter(|a| a.index == l.index)
                .map(|a| AddrState { address: a.addr, label: a.label.clone().filter(|x| *x != l.name), owned: a.owned })
                .collect(),
        })
        .collect();
    out.sort_by_key(|l| l.index);
    Ok(out)
}

/// Lists the unicast routes of the main table with an existing connection.
pub async fn routes_with(h: &Handle) -> Result<Vec<RouteState>, NetError> {
    let links = dump_links(h).await?;
    let routes = dump_routes(h).await?;
    Ok(routes
        .into_iter()
        .map(|r| RouteState {
            destination: Prefix { addr: r.dst, len: r.len },
            gateway: r.gateway,
            interface: r.oif.and_then(|i| links.iter().find(|l| l.index == i).map(|l| l.name.clone())),
            metric: r.priority,
            owned: r.owned,
        })
        .collect())
}
