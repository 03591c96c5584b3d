//! The live network state, read from the kernel by the console itself
//! (`getifaddrs`, `/sys/class/net`, `/proc/net/route`, `/proc/net/ipv6_route`):
//! lbd does not report it, and none of this needs privileges.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// One link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// Kernel name.
    pub name: String,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// `up`, `down`, `lowerlayerdown`, `unknown` (operstate).
    pub oper: String,
    /// MAC address.
    pub mac: String,
    /// MTU.
    pub mtu: Option<u32>,
    /// Addresses with prefix length.
    pub addrs: Vec<String>,
}

impl Link {
    /// `lan UP/up 52:54:00:12:34:56 mtu 1500 192.0.2.2/24`.
    pub fn line(&self) -> String {
        let admin = if self.up { "UP" } else { "DOWN" };
        let mut s = format!("{:<10} {admin}/{}", self.name, self.oper);
        if !self.addrs.is_empty() {
            s.push(' ');
            s.push_str(&self.addrs.join(" "));
        }
        s
    }
}

/// Links and routes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetSnapshot {
    /// Every link, sorted by name.
    pub links: Vec<Link>,
    /// Routes of the main table, `ip route` style.
    pub routes: Vec<String>,
}

/// Reads the live state.
pub fn read() -> Result<NetSnapshot, String> {
    let mut links = Vec::new();
    let dir = Path::new("/sys/class/net");
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let rd = |f: &str| std::fs::read_to_string(dir.join(&name).join(f)).map(|s| s.trim().to_string());
        let flags = rd("flags").ok().and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok());
        links.push(Link {
            up: flags.is_some_and(|f| f & 1 != 0),
            oper: rd("operstate").unwrap_or_else(|_| "unknown".into()),
            mac: rd("address").unwrap_or_default(),
            mtu: rd("mtu").ok().and_then(|m| m.parse().ok()),
            addrs: Vec::new(),
            name,
        });
    }
    if let Ok(ifa) = nix::ifaddrs::getifaddrs() {
        for a in ifa {
            let (Some(addr), Some(mask)) = (a.address, a.netmask) else { continue };
            let s = if let (Some(a4), Some(m4)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
                format!("{}/{}", a4.ip(), m4.ip().to_bits().count_ones())
            } else if let (Some(a6), Some(m6)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                format!("{}/{}", a6.ip(), u128::from(m6.ip()).count_ones())
            } else {
                continue;
            };
            if let Some(l) = links.iter_mut().find(|l| l.name == a.interface_name) {
                l.addrs.push(s);
            }
        }
    }
    links.sort_by(|a, b| a.name.cmp(&b.name));
    let mut routes = std::fs::read_to_string("/proc/net/route").map(|t| parse_route4(&t)).unwrap_or_default();
    routes.extend(std::fs::read_to_string("/proc/net/ipv6_route").map(|t| parse_route6(&t)).unwrap_or_default());
    Ok(NetSnapshot { links, routes })
}

fn v4_hex(s: &str) -> Option<Ipv4Addr> {
    // /proc/net/route prints the address in host (little-endian) byte order.
    u32::from_str_radix(s, 16).ok().map(|v| Ipv4Addr::from(v.swap_bytes()))
}

/// `/proc/net/route` → `default via 192.0.2.1 dev eth0`, `192.0.2.0/24 dev eth0`.
pub fn parse_route4(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let flags = u32::from_str_radix(f[3], 16).ok()?;
            if flags & 1 == 0 {
                return None; // not RTF_UP
            }
            let dst = v4_hex(f[1])?;
            let gw = v4_hex(f[2])?;
            let len = v4_hex(f[7])?.to_bits().count_ones();
            let metric: u32 = f[6].parse().ok()?;
            Some(route_line(IpAddr::V4(dst), len, (flags & 2 != 0).then_some(IpAddr::V4(gw)), f[0], metric))
        })
        .collect()
}

/// `/proc/net/ipv6_route` → the same form; loopback and multicast left out.
pub fn parse_route6(text: &str) -> Vec<String> {
    let hex6 = |s: &str| u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from);
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 || f[9] == "lo" {
                return None;
            }
            let dst = hex6(f[0])?;
            let len = u8::from_str_radix(f[1], 16).ok()?;
            let gw = hex6(f[4])?;
            let metric = u32::from_str_radix(f[5], 16).ok()?;
            let flags = u32::from_str_radix(f[8], 16).ok()?;
            // Not up, local-table host routes (RTF_LOCAL), multicast: left out as `ip -6 route` does.
            if flags & 1 == 0 || flags & 0x8000_0000 != 0 || dst.segments()[0] & 0xff00 == 0xff00 {
                return None;
            }
            Some(route_line(
                IpAddr::V6(dst),
                u32::from(len),
                (!gw.is_unspecified()).then_some(IpAddr::V6(gw)),
                f[9],
                metric,
            ))
        })
        .collect()
}

fn route_line(dst: IpAddr, len: u32, gw: Option<IpAddr>, dev: &str, metric: u32) -> String {
    let mut s = if len == 0 {
        if dst.is_ipv4() { "default".into() } else { "default6".into() }
    } else {
        format!("{dst}/{len}")
    };
    if let Some(g) = gw {
        s.push_str(&format!(" via {g}"));
    }
    s.push_str(&format!(" dev {dev}"));
    if metric != 0 {
        s.push_str(&format!(" metric {metric}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_routes() {
        let t = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                 eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                 eth0\t000200C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
                 eth1\t000300C0\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(parse_route4(t), vec!["default via 192.0.2.1 dev eth0", "192.0.2.0/24 dev eth0 metric 100"]);
    }

    #[test]
    fn ipv6_routes() {
        let t = "20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
                 00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n\
                 ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
                 00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000001 00000000 80200001       lo\n\
                 20010db8000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001     eth0\n";
        assert_eq!(
            parse_route6(t),
            vec!["2001:db8::/64 dev eth0 metric 256", "default6 via 2001:db8::1 dev eth0 metric 1024"]
        );
    }

    #[test]
    fn reads_this_host() {
        let s = read().unwrap();
        let lo = s.links.iter().find(|l| l.name == "lo").expect("lo exists on Linux");
        assert!(lo.addrs.iter().any(|a| a == "127.0.0.1/8"), "{lo:?}");
    }
}
