//! VRRP advertisement codec, sans-IO: VRRPv3 (RFC 5798 / RFC 9568) over IPv4
//! and IPv6, and VRRPv2 (RFC 3768) with keepalived's PASS authentication.
//!
//! Everything works on caller-provided byte slices and fixed-capacity
//! buffers; nothing allocates. Decoding never panics: every way a packet can
//! be wrong maps to a [`DropReason`] that the daemon counts per instance.
//!
//! Checksums:
//! - v2: over the whole VRRP message including the 8 bytes of auth data.
//! - v3/IPv6: with the IPv6 pseudo-header (RFC 8200 §8.1).
//! - v3/IPv4: keepalived includes the IPv4 pseudo-header
//!   `{src, dst, 0, 112, len}` unless `v3_checksum_as_v2`; we send what the
//!   instance is configured for ([`ChecksumMode`]) and accept both.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// IP protocol number of VRRP.
pub const PROTO: u8 = 112;
/// IPv4 multicast group of VRRP.
pub const MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP.
pub const MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// Most virtual addresses one advertisement carries (keepalived's limit too;
/// more would not fit an IPv6 advertisement in a small MTU either).
pub const MAX_ADDRS: usize = 20;
/// Size of the v2 authentication data.
pub const AUTH_LEN: usize = 8;
/// Largest VRRP message we build or accept: header + 20 IPv6 addresses.
pub const MAX_MSG: usize = 8 + MAX_ADDRS * 16 + AUTH_LEN;
/// Largest IPv4 packet we build (header + message).
pub const MAX_IPV4_PACKET: usize = 20 + MAX_MSG;
/// The TTL / hop limit every VRRP packet must carry.
pub const TTL: u8 = 255;
/// TOS of advertisements (IPTOS_PREC_INTERNETCONTROL, as keepalived).
pub const TOS: u8 = 0xc0;

/// Protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Version {
    /// RFC 3768 (IPv4 only, interval in seconds, auth data).
    V2,
    /// RFC 5798 / 9568 (interval in centiseconds).
    V3,
}

impl Version {
    /// The number in the version nibble.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// v2 authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Auth {
    /// Type 0.
    #[default]
    None,
    /// Type 1: the password truncated to 8 bytes, zero-padded (keepalived).
    Pass([u8; AUTH_LEN]),
}

impl Auth {
    /// PASS auth from a password as keepalived reads `auth_pass`.
    pub fn pass(password: &str) -> Self {
        let mut b = [0u8; AUTH_LEN];
        let n = password.len().min(AUTH_LEN);
        b[..n].copy_from_slice(&password.as_bytes()[..n]);
        Auth::Pass(b)
    }
    fn type_byte(&self) -> u8 {
        match self {
            Auth::None => 0,
            Auth::Pass(_) => 1,
        }
    }
}

/// How a v3/IPv4 checksum is computed when sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumMode {
    /// With the IPv4 pseudo-header: keepalived's default.
    #[default]
    PseudoHeader,
    /// Over the message only (keepalived's `v3_checksum_as_v2`).
    MessageOnly,
}

/// A decoded (or to-be-encoded) advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    /// Protocol version.
    pub version: Version,
    /// Virtual router id 1..=255.
    pub vrid: u8,
    /// Sender's priority (0 = stopping, 255 = owner).
    pub priority: u8,
    /// Advertisement interval in centiseconds (v2: whole seconds × 100).
    pub interval_cs: u16,
    /// v2 authentication (always `None` for v3).
    pub auth: Auth,
    /// The virtual addresses, all of one family.
    pub addrs: heapless::Vec<IpAddr, MAX_ADDRS>,
}

/// Why a received packet was dropped. The names are the counter keys the
/// control socket shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Shorter than its headers say, or than a VRRP header.
    Short,
    /// IPv4 header that is not IPv4 or not protocol 112.
    BadIpHeader,
    /// Version not 2 or 3, v2 over IPv6, or not the instance's version.
    BadVersion,
    /// Type is not ADVERTISEMENT (1).
    BadType,
    /// Checksum does not verify.
    BadChecksum,
    /// TTL / hop limit is not 255 (the packet crossed a router).
    BadTtl,
    /// No instance on this interface has this VRID.
    WrongVrid,
    /// Auth type differs from the instance's.
    AuthType,
    /// PASS auth with the wrong password.
    BadPassword,
    /// Interval 0, or (v2) not the configured interval.
    BadInterval,
    /// Address count inconsistent with the length, or not the configured count.
    AddrCount,
    /// Our own advertisement looped back.
    OwnPacket,
}

impl DropReason {
    /// Every reason, for listing counters.
    pub const ALL: [DropReason; 12] = [
        DropReason::Short,
        DropReason::BadIpHeader,
        DropReason::BadVersion,
        DropReason::BadType,
        DropReason::BadChecksum,
        DropReason::BadTtl,
        DropReason::WrongVrid,
        DropReason::AuthType,
        DropReason::BadPassword,
        DropReason::BadInterval,
        DropReason::AddrCount,
        DropReason::OwnPacket,
    ];
    /// Counter name.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Short => "short",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::BadVersion => "bad_version",
            DropReason::BadType => "bad_type",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::BadTtl => "bad_ttl",
            DropReason::WrongVrid => "wrong_vrid",
            DropReason::AuthType => "auth_type",
            DropReason::BadPassword => "bad_password",
            DropReason::BadInterval => "bad_interval",
            DropReason::AddrCount => "addr_count",
            DropReason::OwnPacket => "own_packet",
        }
    }
}

/// Encoding failed (caller bug: the config validation prevents these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// VRID 0.
    Vrid,
    /// Interval 0 or above the field's range.
    Interval,
    /// An address of the other family than src/dst, or v2 over IPv6.
    Family,
    /// No address.
    NoAddress,
}

/// A packet buffer of fixed capacity.
pub type Buf = heapless::Vec<u8, MAX_IPV4_PACKET>;

/// The Internet checksum's running sum over `data`, starting at `sum`.
fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum16(0, data))
}

fn pseudo_sum(src: IpAddr, dst: IpAddr, len: usize, proto: u8) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut p = [0u8; 12];
            p[..4].copy_from_slice(&s.octets());
            p[4..8].copy_from_slice(&d.octets());
            p[9] = proto;
            p[10..12].copy_from_slice(&(len as u16).to_be_bytes());
            sum16(0, &p)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = [0u8; 40];
            p[..16].copy_from_slice(&s.octets());
            p[16..32].copy_from_slice(&d.octets());
            p[32..36].copy_from_slice(&(len as u32).to_be_bytes());
            p[39] = proto;
            sum16(0, &p)
        }
        _ => 0,
    }
}

/// Checksum of an upper-layer message with the pseudo-header of `src`→`dst`
/// (also used for ICMPv6 neighbour advertisements).
pub fn checksum_with_pseudo(src: IpAddr, dst: IpAddr, proto: u8, msg: &[u8]) -> u16 {
    fold(sum16(pseudo_sum(src, dst, msg.len(), proto), msg))
}

/// Length of the VRRP message for this advert.
fn msg_len(a: &Advert) -> usize {
    let alen = if a.addrs.first().is_some_and(IpAddr::is_ipv6) { 16 } else { 4 };
    8 + a.addrs.len() * alen + if a.version == Version::V2 { AUTH_LEN } else { 0 }
}

/// Appends the VRRP message of `a` (sent from `src` to `dst`) to `out`.
pub fn encode(a: &Advert, src: IpAddr, dst: IpAddr, mode: ChecksumMode, out: &mut Buf) -> Result<(), EncodeError> {
    if a.vrid == 0 {
        return Err(EncodeError::Vrid);
    }
    let v6 = src.is_ipv6();
    if a.addrs.is_empty() {
        return Err(EncodeError::NoAddress);
    }
    if dst.is_ipv6() != v6 || a.addrs.iter().any(|x| x.is_ipv6() != v6) || (v6 && a.version == Version::V2) {
        return Err(EncodeError::Family);
    }
    let start = out.len();
    let push = |out: &mut Buf, b: &[u8]| out.extend_from_slice(b).map_err(|_| EncodeError::NoAddress);
    push(out, &[(a.version.number() << 4) | 1, a.vrid, a.priority, a.addrs.len() as u8])?;
    match a.version {
        Version::V2 => {
            if a.interval_cs == 0 || !a.interval_cs.is_multiple_of(100) || a.interval_cs / 100 > 255 {
                return Err(EncodeError::Interval);
            }
            push(out, &[a.auth.type_byte(), (a.interval_cs / 100) as u8, 0, 0])?;
        }
        Version::V3 => {
            if a.interval_cs == 0 || a.interval_cs > 0x0fff {
                return Err(EncodeError::Interval);
            }
            let iv = a.interval_cs.to_be_bytes();
            push(out, &[iv[0], iv[1], 0, 0])?;
        }
    }
    for addr in &a.addrs {
        match addr {
            IpAddr::V4(x) => push(out, &x.octets())?,
            IpAddr::V6(x) => push(out, &x.octets())?,
        }
    }
    if a.version == Version::V2 {
        match a.auth {
            Auth::None => push(out, &[0; AUTH_LEN])?,
            Auth::Pass(p) => push(out, &p)?,
        }
    }
    let msg = &out[start..];
    let sum = match (a.version, v6, mode) {
        (Version::V2, _, _) | (Version::V3, false, ChecksumMode::MessageOnly) => checksum(msg),
        (Version::V3, _, _) => checksum_with_pseudo(src, dst, PROTO, msg),
    };
    out[start + 6..start + 8].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Builds a whole IPv4 packet (for an `IP_HDRINCL` socket): header with TTL
/// 255, TOS 0xc0, protocol 112, then the message. The kernel fills the IP
/// checksum and id; we fill them anyway so the bytes are complete.
pub fn encode_ipv4(a: &Advert, src: Ipv4Addr, dst: Ipv4Addr, mode: ChecksumMode) -> Result<Buf, EncodeError> {
    let mut out = Buf::new();
    let total = 20 + msg_len(a);
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[1] = TOS;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[8] = TTL;
    h[9] = PROTO;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&h).map_err(|_| EncodeError::NoAddress)?;
    encode(a, src.into(), dst.into(), mode, &mut out)?;
    Ok(out)
}

/// A decoded advertisement and how its checksum verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The advertisement.
    pub advert: Advert,
    /// Source address (the sender's primary address).
    pub src: IpAddr,
    /// Destination (multicast group or our unicast address).
    pub dst: IpAddr,
    /// v3/IPv4: the checksum verified with the pseudo-header (keepalived's
    /// default) rather than over the message only.
    pub pseudo_header: bool,
}

/// The VRID of a message too broken to decode, when it is long enough to
/// have one (so the drop can be counted on the right instance).
pub fn peek_vrid(msg: &[u8]) -> Option<u8> {
    msg.get(1).copied()
}

/// Decodes a VRRP message (the IP payload) received from `src` to `dst` with
/// TTL/hop limit `ttl`. Checks what needs no instance: TTL, length, version,
/// type, checksum, interval, count; then [`check`] checks it against one.
pub fn decode(msg: &[u8], src: IpAddr, dst: IpAddr, ttl: u8) -> Result<Received, DropReason> {
    if ttl != TTL {
        return Err(DropReason::BadTtl);
    }
    if msg.len() < 8 {
        return Err(DropReason::Short);
    }
    let v6 = src.is_ipv6();
    let version = match msg[0] >> 4 {
        2 if !v6 => Version::V2,
        3 => Version::V3,
        _ => return Err(DropReason::BadVersion),
    };
    if msg[0] & 0x0f != 1 {
        return Err(DropReason::BadType);
    }
    // VRID 0 is not a virtual router (RFC 3768 §5.3.3, RFC 5798 §5.2.3); we
    // could not send it back either (found by lbd/fuzz).
    if msg[1] == 0 {
        return Err(DropReason::WrongVrid);
    }
    let count = usize::from(msg[3]);
    let alen = if v6 { 16 } else { 4 };
    let need = 8 + count * alen + if version == Version::V2 { AUTH_LEN } else { 0 };
    if count == 0 || count > MAX_ADDRS || msg.len() < need {
        return Err(DropReason::AddrCount);
    }
    let m = &msg[..need];
    let mut pseudo_header = false;
    let ok = match (version, v6) {
        (Version::V2, _) => checksum(m) == 0,
        (Version::V3, true) => {
            pseudo_header = true;
            checksum_with_pseudo(src, dst, PROTO, m) == 0
        }
        (Version::V3, false) => {
            if checksum_with_pseudo(src, dst, PROTO, m) == 0 {
                pseudo_header = true;
                true
            } else {
                checksum(m) == 0
            }
        }
    };
    if !ok {
        return Err(DropReason::BadChecksum);
    }
    let (auth, interval_cs) = match version {
        Version::V2 => {
            let auth = match m[4] {
                0 => Auth::None,
                1 => {
                    let mut p = [0u8; AUTH_LEN];
                    p.copy_from_slice(&m[need - AUTH_LEN..need]);
                    Auth::Pass(p)
                }
                _ => return Err(DropReason::AuthType),
            };
            (auth, u16::from(m[5]) * 100)
        }
        Version::V3 => (Auth::None, u16::from_be_bytes([m[4], m[5]]) & 0x0fff),
    };
    if interval_cs == 0 {
        return Err(DropReason::BadInterval);
    }
    let mut addrs = heapless::Vec::new();
    for i in 0..count {
        let b = &m[8 + i * alen..8 + (i + 1) * alen];
        let a = if v6 {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        };
        let _ = addrs.push(a);
    }
    Ok(Received {
        advert: Advert { version, vrid: m[1], priority: m[2], interval_cs, auth, addrs },
        src,
        dst,
        pseudo_header,
    })
}

/// Decodes a whole IPv4 packet as a raw IPv4 socket returns it (header
/// included, so the TTL is checked here).
pub fn decode_ipv4(pkt: &[u8]) -> Result<Received, DropReason> {
    if pkt.len() < 20 {
        return Err(DropReason::Short);
    }
    if pkt[0] >> 4 != 4 || pkt[9] != PROTO {
        return Err(DropReason::BadIpHeader);
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    if ihl < 20 || total < ihl {
        return Err(DropReason::BadIpHeader);
    }
    if pkt.len() < total {
        return Err(DropReason::Short);
    }
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    decode(&pkt[ihl..total], src.into(), dst.into(), pkt[8])
}

/// What an instance expects of the adverts for its VRID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    /// Our VRID.
    pub vrid: u8,
    /// Our version.
    pub version: Version,
    /// Our auth (v2).
    pub auth: Auth,
    /// Our interval (v2 requires the same; v3 learns the master's).
    pub interval_cs: u16,
    /// How many virtual addresses we have configured (`None` skips the
    /// check, as keepalived's `vrrp_skip_check_adv_addr`).
    pub addr_count: Option<usize>,
}

/// Checks a decoded advert against an instance (RFC 3768 §7.1, RFC 5798 §7.1).
pub fn check(r: &Received, e: &Expect) -> Result<(), DropReason> {
    let a = &r.advert;
    if a.vrid != e.vrid {
        return Err(DropReason::WrongVrid);
    }
    if a.version != e.version {
        return Err(DropReason::BadVersion);
    }
    if a.version == Version::V2 {
        match (&a.auth, &e.auth) {
            (Auth::None, Auth::None) => {}
            (Auth::Pass(got), Auth::Pass(want)) => {
                // Constant time, as keepalived's memcmp_constant_time.
                let diff = got.iter().zip(want).fold(0u8, |d, (x, y)| d | (x ^ y));
                if diff != 0 {
                    return Err(DropReason::BadPassword);
                }
            }
            _ => return Err(DropReason::AuthType),
        }
        if a.interval_cs != e.interval_cs {
            return Err(DropReason::BadInterval);
        }
    }
    if e.addr_count.is_some_and(|n| n != a.addrs.len()) {
        return Err(DropReason::AddrCount);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
