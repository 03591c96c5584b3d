//! Value types used by the config model: addresses, prefixes, enums with their
//! TOML spellings. Each parses from the string an operator writes and prints
//! back the same way, so a config survives a round trip unchanged.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Serialize`/`Deserialize` through `Display`/`FromStr`.
macro_rules! string_serde {
    ($t:ty, $what:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

/// Defines a string enum: variants, their TOML spellings, and a `Display`,
/// `FromStr` (with the list of allowed values in the error) and serde impls.
macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident, $what:expr, { $($(#[$vm:meta])* $v:ident = $s:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The spelling used in the config file.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let l = s.to_ascii_lowercase();
                $(if l == $s { return Ok($name::$v); })+
                Err(format!("unknown {} `{}` (one of: {})", $what, s, [$($s),+].join(", ")))
            }
        }
        string_serde!($name, $what);
    };
}

str_enum!(
    /// Transport protocol of an address-based virtual service.
    Protocol, "protocol", { Tcp = "tcp", Udp = "udp", Sctp = "sctp" }
);

impl Protocol {
    /// IANA protocol number, as IPVS wants it.
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }
    /// Inverse of [`Protocol::number`].
    pub fn from_number(n: u16) -> Option<Self> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }
}

str_enum!(
    /// Address family of a fwmark service (address services take it from the address).
    Family, "address family", { Ipv4 = "ipv4", Ipv6 = "ipv6" }
);

impl Family {
    /// Linux `AF_*` value.
    pub fn af(self) -> u16 {
        match self {
            Family::Ipv4 => libc::AF_INET as u16,
            Family::Ipv6 => libc::AF_INET6 as u16,
        }
    }
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Self {
        if ip.is_ipv4() { Family::Ipv4 } else { Family::Ipv6 }
    }
}

str_enum!(
    /// IPVS scheduler. Every scheduler the Linux kernel ships; `twos` exists only
    /// in kernels built with it (lbd checks the running kernel before applying).
    Scheduler, "scheduler", {
        Rr = "rr", Wrr = "wrr", Lc = "lc", Wlc = "wlc", Sed = "sed", Nq = "nq",
        Lblc = "lblc", Lblcr = "lblcr", Dh = "dh", Sh = "sh", Mh = "mh",
        Fo = "fo", Ovf = "ovf", Twos = "twos",
    }
);

str_enum!(
    /// Scheduler flags (ipvsadm `-b`). `sh-*` only apply to `sh`, `mh-*` to `mh`.
    SchedFlag, "scheduler flag", {
        ShFallback = "sh-fallback", ShPort = "sh-port",
        MhFallback = "mh-fallback", MhPort = "mh-port",
    }
);

impl SchedFlag {
    /// The scheduler this flag belongs to.
    pub fn scheduler(self) -> Scheduler {
        match self {
            SchedFlag::ShFallback | SchedFlag::ShPort => Scheduler::Sh,
            SchedFlag::MhFallback | SchedFlag::MhPort => Scheduler::Mh,
        }
    }
    /// IPVS service flag bit (`IP_VS_SVC_F_SCHED1`/`SCHED2`).
    pub fn bit(self) -> u32 {
        match self {
            SchedFlag::ShFallback | SchedFlag::MhFallback => 0x8,
            SchedFlag::ShPort | SchedFlag::MhPort => 0x10,
        }
    }
}

str_enum!(
    /// How IPVS forwards to a real server.
    Forwarding, "forwarding method", {
        /// Direct routing (ipvsadm `-g`, keepalived `DR`): rewrite the MAC only.
        Dr = "dr",
        /// Masquerading (ipvsadm `-m`, keepalived `NAT`).
        Nat = "nat",
        /// IP-in-IP / GUE / GRE tunnelling (ipvsadm `-i`, keepalived `TUN`).
        Tun = "tun",
    }
);

str_enum!(
    /// Encapsulation used by TUN forwarding.
    TunnelType, "tunnel type", { Ipip = "ipip", Gue = "gue", Gre = "gre" }
);

str_enum!(
    /// Checksum option of GUE/GRE encapsulation.
    TunnelChecksum, "tunnel checksum option", { None = "none", Csum = "csum", Remcsum = "remcsum" }
);

str_enum!(
    /// Log verbosity.
    LogLevel, "log level", { Error = "error", Warn = "warn", Info = "info", Debug = "debug", Trace = "trace" }
);

str_enum!(
    /// Persistence engine (ipvsadm `--pe`).
    PersistenceEngine, "persistence engine", { Sip = "sip" }
);

/// An address with a prefix length: `10.0.0.2/24`, `2001:db8::1/64`.
/// Without `/len` it means a host address (/32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfAddr {
    /// The address itself.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl IfAddr {
    /// Whether `ip` lies in this address's subnet.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        Prefix { addr: self.addr, len: self.prefix }.contains(ip)
    }
    /// The network this address belongs to.
    pub fn network(&self) -> Prefix {
        Prefix { addr: self.addr, len: self.prefix }.normalized()
    }
}

fn max_len(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn parse_addr_len(s: &str, what: &str) -> Result<(IpAddr, Option<u8>), String> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr =
        a.trim().parse().map_err(|_| format!("`{s}` is not an {what} (e.g. 192.0.2.10/24 or 2001:db8::10/64)"))?;
    let len = match l {
        None => None,
        Some(l) => {
            let n: u8 = l.trim().parse().map_err(|_| format!("`{l}` is not a prefix length"))?;
            if n > max_len(&addr) {
                return Err(format!("prefix length /{n} is too long for {addr}"));
            }
            Some(n)
        }
    };
    Ok((addr, len))
}

impl FromStr for IfAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = parse_addr_len(s, "address")?;
        Ok(IfAddr { addr, prefix: len.unwrap_or_else(|| max_len(&addr)) })
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}
string_serde!(IfAddr, "an address with prefix, e.g. 192.0.2.10/24");

/// A network prefix: `10.0.0.0/24`, `::/0`, or `default` (= 0.0.0.0/0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl Prefix {
    /// Whether `ip` lies inside the prefix (families must match).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.len == 0 { 0 } else { u32::MAX << (32 - u32::from(self.len)) };
                (u32::from(n) & mask) == (u32::from(*a) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.len == 0 { 0 } else { u128::MAX << (128 - u32::from(self.len)) };
                (u128::from(n) & mask) == (u128::from(*a) & mask)
            }
            _ => false,
        }
    }
    /// The same prefix with host bits cleared.
    pub fn normalized(&self) -> Prefix {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let mask = if self.len == 0 { 0 } else { u32::MAX << (32 - u32::from(self.len)) };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = if self.len == 0 { 0 } else { u128::MAX << (128 - u32::from(self.len)) };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Prefix { addr, len: self.len }
    }
    /// Whether this is a default route prefix.
    pub fn is_default(&self) -> bool {
        self.len == 0
    }
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "default" | "default4" => return Ok(Prefix { addr: Ipv4Addr::UNSPECIFIED.into(), len: 0 }),
            "default6" => return Ok(Prefix { addr: Ipv6Addr::UNSPECIFIED.into(), len: 0 }),
            _ => {}
        }
        let (addr, len) = parse_addr_len(s, "network prefix")?;
        let p = Prefix { addr, len: len.unwrap_or_else(|| max_len(&addr)) };
        if p.normalized() != p {
            return Err(format!("`{s}` has host bits set; did you mean {}?", DisplayPrefix(p.normalized())));
        }
        Ok(p)
    }
}

struct DisplayPrefix(Prefix);
impl fmt::Display for DisplayPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.addr, self.0.len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 && self.addr == IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
            return f.write_str("default");
        }
        if self.len == 0 && self.addr == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
            return f.write_str("default6");
        }
        DisplayPrefix(*self).fmt(f)
    }
}
string_serde!(Prefix, "a network prefix, e.g. 10.0.0.0/24 or default");

/// An address with an optional port: `10.0.0.11`, `10.0.0.11:8080`,
/// `2001:db8::11`, `[2001:db8::11]:8080`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// IP address.
    pub addr: IpAddr,
    /// Port, when given.
    pub port: Option<u16>,
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("`{s}` is not an address[:port] (e.g. 192.0.2.10:80 or [2001:db8::10]:80)");
        if let Ok(addr) = s.parse::<IpAddr>() {
            return Ok(Endpoint { addr, port: None });
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (a, p) = rest.split_once(']').ok_or_else(bad)?;
            let addr: Ipv6Addr = a.parse().map_err(|_| bad())?;
            let port = match p {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?.parse::<u16>().map_err(|_| bad())?),
            };
            return Ok(Endpoint { addr: addr.into(), port });
        }
        let (a, p) = s.rsplit_once(':').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let port: u16 = p.parse().map_err(|_| bad())?;
        Ok(Endpoint { addr: addr.into(), port: Some(port) })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.addr, self.port) {
            (a, None) => write!(f, "{a}"),
            (IpAddr::V4(a), Some(p)) => write!(f, "{a}:{p}"),
            (IpAddr::V6(a), Some(p)) => write!(f, "[{a}]:{p}"),
        }
    }
}
string_serde!(Endpoint, "an address with optional port, e.g. 192.0.2.10:80");

/// An Ethernet MAC address `52:54:00:12:34:56`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a MAC address (e.g. 52:54:00:12:34:56)");
        let mut out = [0u8; 6];
        let mut parts = s.trim().split([':', '-']);
        for b in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}
string_serde!(MacAddr, "a MAC address");

/// Persistence granularity: a dotted IPv4 netmask (`255.255.255.0`) or a
/// prefix length (`24`, or `64` for IPv6 services).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Netmask(pub u8);

impl Netmask {
    /// The dotted form of an IPv4 prefix length.
    pub fn v4_mask(self) -> Ipv4Addr {
        let m = if self.0 == 0 { 0 } else { u32::MAX << (32 - u32::from(self.0.min(32))) };
        Ipv4Addr::from(m)
    }
}

impl Serialize for Netmask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl<'de> Deserialize<'de> for Netmask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Netmask;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a netmask like \"255.255.255.0\" or a prefix length like 24")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Netmask, E> {
                u8::try_from(v)
                    .ok()
                    .filter(|v| *v <= 128)
                    .map(Netmask)
                    .ok_or_else(|| E::custom(format!("prefix length {v} is out of range 0..=128")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Netmask, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Netmask, E> {
                if let Ok(n) = v.parse::<u8>() {
                    return self.visit_i64(i64::from(n));
                }
                let m: Ipv4Addr = v.parse().map_err(|_| E::custom(format!("`{v}` is not a netmask")))?;
                let m = u32::from(m);
                if m.leading_ones() + m.trailing_zeros() != 32 {
                    return Err(E::custom(format!("`{v}` is not a contiguous netmask")));
                }
                Ok(Netmask(m.leading_ones() as u8))
            }
        }
        d.deserialize_any(V)
    }
}

/// Terminal size `COLSxROWS`, e.g. `80x24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TermSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
}

impl Default for TermSize {
    fn default() -> Self {
        TermSize { cols: 80, rows: 24 }
    }
}

impl FromStr for TermSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a terminal size like 80x24");
        let (c, r) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
        let cols: u16 = c.parse().map_err(|_| bad())?;
        let rows: u16 = r.parse().map_err(|_| bad())?;
        if !(40..=500).contains(&cols) || !(12..=300).contains(&rows) {
            return Err(format!("terminal size {cols}x{rows} out of range (40x12 up to 500x300)"));
        }
        Ok(TermSize { cols, rows })
    }
}

impl fmt::Display for TermSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.cols, self.rows)
    }
}
string_serde!(TermSize, "a terminal size like 80x24");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        assert_eq!("10.0.0.1".parse::<Endpoint>().unwrap().port, None);
        assert_eq!("10.0.0.1:80".parse::<Endpoint>().unwrap().port, Some(80));
        let e: Endpoint = "[2001:db8::1]:443".parse().unwrap();
        assert_eq!(e.to_string(), "[2001:db8::1]:443");
        assert_eq!("2001:db8::1".parse::<Endpoint>().unwrap().port, None);
        assert!("10.0.0.1:99999".parse::<Endpoint>().is_err());
        assert!("host:80".parse::<Endpoint>().is_err());
    }

    #[test]
    fn prefixes() {
        let p: Prefix = "10.1.0.0/16".parse().unwrap();
        assert!(p.contains(&"10.1.2.3".parse().unwrap()));
        assert!(!p.contains(&"10.2.0.1".parse().unwrap()));
        assert!("10.1.0.1/16".parse::<Prefix>().unwrap_err().contains("10.1.0.0/16"));
        assert_eq!("default".parse::<Prefix>().unwrap().to_string(), "default");
        let a: IfAddr = "192.0.2.5".parse().unwrap();
        assert_eq!(a.prefix, 32);
        assert!("192.0.2.5/33".parse::<IfAddr>().is_err());
    }

    #[test]
    fn enums_list_choices() {
        let e = "wrrr".parse::<Scheduler>().unwrap_err();
        assert!(e.contains("wrr") && e.contains("mh"), "{e}");
        assert_eq!("WRR".parse::<Scheduler>().unwrap(), Scheduler::Wrr);
    }

    #[test]
    fn mac_and_size() {
        assert_eq!("52:54:00:AB:cd:01".parse::<MacAddr>().unwrap().to_string(), "52:54:00:ab:cd:01");
        assert!("52:54:00:ab:cd".parse::<MacAddr>().is_err());
        assert_eq!("132x43".parse::<TermSize>().unwrap(), TermSize { cols: 132, rows: 43 });
    }
}
