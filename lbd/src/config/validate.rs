//! Semantic checks on a typed config. Every rule reports through `Cx::error`
//! with the field path, so the operator sees all problems at once.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::parse::Cx;
use super::*;

pub(super) fn validate(cfg: &Config, cx: &mut Cx<'_>) {
    system(cfg, cx);
    ipvs(cfg, cx);
    network(cfg, cx);
    services(cfg, cx);
    crate::fwmark::config::validate(cfg, cx); // fwmark rules and ftp (lbd/src/fwmark/config.rs)
    crate::vrrp::config::validate(cfg, cx); // VRRP (lbd/src/vrrp/config.rs)
    crate::health::config::validate(cfg, cx); // health checks (lbd/src/health/config.rs)
}

fn valid_ifname(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 15 {
        return Err(format!("interface name `{n}` must be 1 to 15 characters"));
    }
    if n == "." || n == ".." || n.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(format!("interface name `{n}` may not contain '/', ':' or spaces"));
    }
    Ok(())
}

fn system(cfg: &Config, cx: &mut Cx<'_>) {
    let h = &cfg.system.hostname;
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if h.len() > 64 || !h.split('.').all(ok_label) {
        cx.error(
            "system.hostname",
            format!("`{h}` is not a valid host name (letters, digits, '-', up to 64 characters)"),
        );
    }
    let mut seen = HashSet::new();
    for (i, t) in cfg.system.consoles.iter().enumerate() {
        let p = format!("system.consoles[{i}]");
        let name = t.strip_prefix("/dev/").unwrap_or(t);
        let known = ["tty", "ttyS", "ttyAMA", "hvc", "ttyUSB", "console"];
        let ok = known.iter().any(|k| {
            name.strip_prefix(k).is_some_and(|n| {
                n.is_empty() && *k == "console" || n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty()
            })
        });
        if !ok {
            cx.error(&p, format!("`{t}` is not a terminal device name (e.g. ttyS0, tty1)"));
        }
        if !seen.insert(name) {
            cx.error(&p, format!("console `{t}` is listed twice"));
        }
    }
}

fn ipvs(cfg: &Config, cx: &mut Cx<'_>) {
    let i = &cfg.ipvs;
    if let Some(b) = i.conn_tab_bits
        && !(8..=20).contains(&b)
    {
        cx.error("ipvs.conn_tab_bits", format!("{b} is out of range 8..=20"));
    }
    for (name, v) in [("tcp", i.timeouts.tcp), ("tcpfin", i.timeouts.tcpfin), ("udp", i.timeouts.udp)] {
        if v == Some(0) {
            cx.error(&format!("ipvs.timeouts.{name}"), "0 is not a timeout; leave the field out to keep the kernel's");
        }
        if v.is_some_and(|v| v > 31 * 24 * 3600) {
            cx.error(&format!("ipvs.timeouts.{name}"), "longer than 31 days");
        }
    }
    if let Some(m) = i.sysctl.conn_reuse_mode
        && m > 3
    {
        cx.error("ipvs.sysctl.conn_reuse_mode", format!("{m} is out of range 0..=3"));
    }
}

fn network(cfg: &Config, cx: &mut Cx<'_>) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut macs = HashMap::new();
    let mut addrs: HashMap<IpAddr, String> = HashMap::new();
    for (i, itf) in cfg.interfaces.iter().enumerate() {
        let p = format!("interfaces[{i}]");
        if let Err(e) = valid_ifname(&itf.name) {
            cx.error(&format!("{p}.name"), e);
        }
        if let Some(prev) = names.insert(&itf.name, i) {
            cx.error(
                &format!("{p}.name"),
                format!("interface `{}` is already configured in interfaces[{prev}]", itf.name),
            );
        }
        if itf.name == "lo" && itf.mac.is_some() {
            cx.error(&format!("{p}.mac"), "the loopback interface has no MAC");
        }
        if let Some(m) = itf.mac {
            if let Some(prev) = macs.insert(m, i) {
                cx.error(&format!("{p}.mac"), format!("MAC {m} is already matched by interfaces[{prev}]"));
            }
            if itf.vlan.is_some() {
                cx.error(&format!("{p}.mac"), "a VLAN is matched by its parent, not by MAC");
            }
        }
        if let Some(mtu) = itf.mtu
            && !(68..=65535).contains(&mtu)
        {
            cx.error(&format!("{p}.mtu"), format!("MTU {mtu} is out of range 68..=65535"));
        }
        for (j, a) in itf.addresses.iter().enumerate() {
            if let Some(prev) = addrs.insert(a.addr, itf.name.clone()) {
                cx.error(&format!("{p}.addresses[{j}]"), format!("{} is already assigned to `{prev}`", a.addr));
            }
            if a.addr.is_unspecified() || a.addr.is_multicast() {
                cx.error(&format!("{p}.addresses[{j}]"), format!("{} cannot be an interface address", a.addr));
            }
        }
    }
    for (i, itf) in cfg.interfaces.iter().enumerate() {
        if let Some(v) = &itf.vlan {
            let p = format!("interfaces[{i}].vlan");
            if !(1..=4094).contains(&v.id) {
                cx.error(&format!("{p}.id"), format!("VLAN id {} is out of range 1..=4094", v.id));
            }
            match names.get(v.parent.as_str()) {
                None => cx.error(&format!("{p}.parent"), format!("no interface named `{}` is configured", v.parent)),
                Some(&j) if cfg.interfaces[j].vlan.is_some() => {
                    cx.error(&format!("{p}.parent"), format!("`{}` is itself a VLAN", v.parent))
                }
                _ => {}
            }
        }
    }
    let connected: Vec<IfAddr> = cfg.interfaces.iter().flat_map(|i| i.addresses.iter().copied()).collect();
    for (i, r) in cfg.routes.iter().enumerate() {
        let p = format!("routes[{i}]");
        if let Some(itf) = &r.interface
            && !names.contains_key(itf.as_str())
        {
            cx.error(&format!("{p}.interface"), format!("no interface named `{itf}` is configured"));
        }
        match r.gateway {
            None if r.interface.is_none() => cx.error(&p, "a route needs a `gateway`, an `interface`, or both"),
            Some(gw) => {
                if r.destination.addr.is_ipv4() != gw.is_ipv4() {
                    cx.error(
                        &format!("{p}.gateway"),
                        format!("gateway {gw} is not in the family of {}", r.destination),
                    );
                } else if !connected.is_empty() && !gw.is_ipv6() && !connected.iter().any(|a| a.contains(&gw)) {
                    cx.error(
                        &format!("{p}.gateway"),
                        format!("gateway {gw} is not on a connected subnet of any interface"),
                    );
                }
            }
            None => {}
        }
    }
    let mut vips = HashSet::new();
    for (i, v) in cfg.vips.iter().enumerate() {
        let p = format!("vips[{i}]");
        if !names.contains_key(v.interface.as_str()) && v.interface != "lo" {
            cx.error(&format!("{p}.interface"), format!("no interface named `{}` is configured", v.interface));
        }
        if !vips.insert(v.address.addr) {
            cx.error(&format!("{p}.address"), format!("VIP {} is listed twice", v.address.addr));
        }
        if let Some(owner) = addrs.get(&v.address.addr) {
            cx.error(&format!("{p}.address"), format!("{} is already an address of `{owner}`", v.address.addr));
        }
        if let Some(l) = &v.label
            && (l.len() > 15 || !l.starts_with(v.interface.as_str()))
        {
            cx.error(
                &format!("{p}.label"),
                format!("label `{l}` must start with the interface name and be at most 15 characters"),
            );
        }
    }
}

/// Identity of a service as IPVS sees it, for duplicate detection.
#[derive(PartialEq, Eq, Hash)]
enum Key {
    Addr(Protocol, IpAddr, u16),
    Mark(Family, u32),
}

fn services(cfg: &Config, cx: &mut Cx<'_>) {
    let connected: Vec<IfAddr> = cfg
        .interfaces
        .iter()
        .flat_map(|i| i.addresses.iter().copied())
        .chain(cfg.vips.iter().map(|v| v.address))
        .collect();
    let have_network = cfg.interfaces.iter().any(|i| !i.addresses.is_empty());
    let mut keys: HashMap<Key, usize> = HashMap::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, s) in cfg.services.iter().enumerate() {
        let p = format!("services[{i}]");
        // An `ftp` service is checked as the service it expands to.
        let expanded = crate::fwmark::config::expand(s);
        let s = &*expanded;
        if let Some(n) = &s.name {
            if n.is_empty() || n.len() > 64 || n.chars().any(|c| c.is_control()) {
                cx.error(&format!("{p}.name"), "a name must be 1 to 64 printable characters");
            }
            if let Some(prev) = names.insert(n.clone(), i) {
                cx.error(&format!("{p}.name"), format!("name `{n}` is already used by services[{prev}]"));
            }
        }
        let key = match (&s.address, s.fwmark) {
            (Some(_), Some(_)) => {
                cx.error(&p, "give either `address` or `fwmark`, not both");
                None
            }
            (None, None) => {
                if s.ftp.is_none() {
                    cx.error(&p, "a service needs an `address` (ip:port) or a `fwmark`");
                } // else: the ftp checks say what is missing
                None
            }
            (Some(a), None) => {
                if s.family.is_some() {
                    cx.error(
                        &format!("{p}.family"),
                        "`family` is only for fwmark services; an address service takes it from the address",
                    );
                }
                match a.port {
                    None => {
                        cx.error(
                            &format!("{p}.address"),
                            format!("`{a}` needs a port (use :0 with persistence for all ports)"),
                        );
                        None
                    }
                    Some(port) => {
                        if port == 0 && s.persistence.is_none() {
                            cx.error(&format!("{p}.address"), "port 0 (all ports) needs `persistence`, as in ipvsadm");
                        }
                        if a.addr.is_unspecified() || a.addr.is_multicast() {
                            cx.error(&format!("{p}.address"), format!("{} cannot be a virtual address", a.addr));
                        }
                        Some(Key::Addr(s.protocol, a.addr, port))
                    }
                }
            }
            (None, Some(m)) => {
                if m == 0 {
                    cx.error(&format!("{p}.fwmark"), "fwmark 0 means unmarked; use 1 or more");
                }
                Some(Key::Mark(s.family(), m))
            }
        };
        if let Some(k) = key {
            let field = if s.address.is_some() { "address" } else { "fwmark" };
            if let Some(prev) = keys.insert(k, i) {
                cx.error(
                    &format!("{p}.{field}"),
                    format!("the same virtual service is already defined in services[{prev}]"),
                );
            }
        }
        for (j, f) in s.scheduler_flags.iter().enumerate() {
            if f.scheduler() != s.scheduler {
                cx.error(
                    &format!("{p}.scheduler_flags[{j}]"),
                    format!("`{f}` only applies to the `{}` scheduler, not `{}`", f.scheduler(), s.scheduler),
                );
            }
        }
        if s.one_packet && s.fwmark.is_none() && s.protocol != Protocol::Udp {
            cx.error(&format!("{p}.one_packet"), "one-packet scheduling only applies to UDP services");
        }
        if let Some(per) = &s.persistence {
            if per.timeout == 0 || per.timeout > 31 * 24 * 3600 {
                cx.error(&format!("{p}.persistence.timeout"), "must be 1 second to 31 days");
            }
            if let Some(m) = per.netmask {
                let max = if s.family() == Family::Ipv4 { 32 } else { 128 };
                if m.0 == 0 || m.0 > max {
                    cx.error(
                        &format!("{p}.persistence.netmask"),
                        format!("prefix /{} is out of range 1..={max} for an {} service", m.0, s.family()),
                    );
                }
            }
        }
        let mut reals = HashMap::new();
        for (j, r) in s.reals.iter().enumerate() {
            let rp = format!("{p}.reals[{j}]");
            let fwd = r.forwarding.unwrap_or(s.forwarding);
            let port = r.address.port.or(s.address.and_then(|a| a.port)).unwrap_or(0);
            if let Some(prev) = reals.insert((r.address.addr, port), j) {
                cx.error(
                    &format!("{rp}.address"),
                    format!("real server {} is already listed as reals[{prev}]", r.address),
                );
            }
            if r.address.addr.is_unspecified() || r.address.addr.is_multicast() || r.address.addr.is_loopback() {
                cx.error(&format!("{rp}.address"), format!("{} cannot be a real server", r.address.addr));
            }
            if r.weight > 65535 {
                cx.error(&format!("{rp}.weight"), format!("weight {} is out of range 0..=65535", r.weight));
            }
            if r.upper_threshold != 0 && r.lower_threshold > r.upper_threshold {
                cx.error(&format!("{rp}.lower_threshold"), "must not exceed upper_threshold");
            }
            if Family::of(&r.address.addr) != s.family() && fwd != Forwarding::Tun {
                cx.error(
                    &format!("{rp}.address"),
                    format!(
                        "an {} real behind an {} service only works with forwarding = \"tun\"",
                        Family::of(&r.address.addr),
                        s.family()
                    ),
                );
            }
            if matches!(fwd, Forwarding::Dr | Forwarding::Tun)
                && let (Some(sa), Some(rp_)) = (s.address.and_then(|a| a.port), r.address.port)
                && sa != 0
                && rp_ != sa
            {
                cx.error(
                            &format!("{rp}.address"),
                            format!("{fwd} forwarding cannot change the port ({rp_} vs the service's {sa}); drop the port or use forwarding = \"nat\""),
                        );
            }
            if matches!(fwd, Forwarding::Dr | Forwarding::Nat)
                && have_network
                && !connected.iter().any(|a| a.contains(&r.address.addr))
            {
                cx.error(
                    &format!("{rp}.address"),
                    format!("{} is not on a subnet of any interface; {} needs the real server on a connected network (use \"tun\" across routers)", r.address.addr, fwd),
                );
            }
            match (&r.tunnel, fwd) {
                (Some(_), f) if f != Forwarding::Tun => {
                    cx.error(&format!("{rp}.tunnel"), "tunnel options need forwarding = \"tun\"");
                }
                (Some(t), _) => {
                    match t.kind {
                        TunnelType::Gue if t.port.is_none() => {
                            cx.error(
                                &format!("{rp}.tunnel.port"),
                                "GUE needs the UDP `port` of the real's decapsulation",
                            );
                        }
                        TunnelType::Ipip | TunnelType::Gre if t.port.is_some() => {
                            cx.error(
                                &format!("{rp}.tunnel.port"),
                                format!("`port` only applies to GUE, not {}", t.kind),
                            );
                        }
                        _ => {}
                    }
                    match (t.kind, t.checksum) {
                        (TunnelType::Ipip, Some(_)) => {
                            cx.error(&format!("{rp}.tunnel.checksum"), "ipip has no checksum option");
                        }
                        (TunnelType::Gre, Some(TunnelChecksum::Remcsum)) => {
                            cx.error(&format!("{rp}.tunnel.checksum"), "gre does not support remcsum");
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }
}
