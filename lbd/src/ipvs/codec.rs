//! Sans-IO codec for the IPVS generic-netlink family (`include/uapi/linux/ip_vs.h`).
//!
//! Three layers:
//! - [`IpvsMessage`]: one genl payload (command + top-level attributes), implementing
//!   `GenlFamily`, `Emitable` and `ParseableParametrized<[u8], GenlHeader>` so it plugs into
//!   `GenlMessage`/`NetlinkMessage`. Attributes are typed ([`SvcAttr`], [`DestAttr`], ...) and
//!   keep unknown ones as `Other(DefaultNla)`.
//! - Builders (`IpvsMessage::new_service(&Service)`, ...) and extractors
//!   (`IpvsMessage::service_entry()`, ...) converting from/to the kernel-facing model in
//!   [`super::types`].
//! - Framing: [`encode_request`] writes a whole netlink message (header included) and
//!   [`parse_datagram`] splits a received datagram into [`Frame`]s, decoding `NLMSG_ERROR`
//!   with its extended-ACK TLVs. The parser never panics on malformed input.
//!
//! Wire encodings (checked against `net/netfilter/ipvs/ip_vs_ctl.c`): ports and TUN_PORT are
//! big-endian; other integers host order; addresses are 16-byte `nf_inet_addr` (IPv4 in the
//! first 4 bytes); `NETMASK` is a raw 4-byte field holding the IPv4 mask in network order or
//! the IPv6 prefix length in host order; `FLAGS` is `{flags, mask}`; strings NUL-terminated;
//! nests are emitted without `NLA_F_NESTED` (as libipvs and the kernel do) and accepted
//! either way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP,
    NLMSG_OVERRUN, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, Nla, NlaBuffer, NlasIterator,
    Parseable, ParseableParametrized,
};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage, ctrl::GenlCtrl};

use super::types::{
    AF_INET, AF_INET6, Daemon, DaemonState, Dest, DestEntry, Fwd, Info, Service, ServiceEntry, ServiceKey, Stats,
    Timeouts, TunType, svc_flags,
};

/// Generic-netlink family name.
pub const IPVS_GENL_NAME: &str = "IPVS";
/// Family version (`IPVS_GENL_VERSION`).
pub const IPVS_GENL_VERSION: u8 = 1;
/// The nlctrl family id (`GENL_ID_CTRL`).
pub const GENL_ID_CTRL: u16 = 16;

/// `IPVS_CMD_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpvsCmd {
    /// 1: add a service; also the command of GET_SERVICE replies.
    NewService,
    /// 2: edit a service.
    SetService,
    /// 3: delete a service.
    DelService,
    /// 4: get one service (doit) or all (dump).
    GetService,
    /// 5: add a dest; also the command of GET_DEST replies.
    NewDest,
    /// 6: edit a dest.
    SetDest,
    /// 7: delete a dest.
    DelDest,
    /// 8: dump the dests of a service.
    GetDest,
    /// 9: start a sync daemon; also the command of GET_DAEMON replies.
    NewDaemon,
    /// 10: stop a sync daemon.
    DelDaemon,
    /// 11: dump the sync daemons.
    GetDaemon,
    /// 12: set timeouts; also the command of GET_CONFIG replies.
    SetConfig,
    /// 13: get timeouts.
    GetConfig,
    /// 14: the command of GET_INFO replies.
    SetInfo,
    /// 15: version and connection table size.
    GetInfo,
    /// 16: zero counters (all, or one service).
    Zero,
    /// 17: delete every service.
    Flush,
}

impl IpvsCmd {
    /// Kernel value.
    pub fn value(self) -> u8 {
        match self {
            IpvsCmd::NewService => 1,
            IpvsCmd::SetService => 2,
            IpvsCmd::DelService => 3,
            IpvsCmd::GetService => 4,
            IpvsCmd::NewDest => 5,
            IpvsCmd::SetDest => 6,
            IpvsCmd::DelDest => 7,
            IpvsCmd::GetDest => 8,
            IpvsCmd::NewDaemon => 9,
            IpvsCmd::DelDaemon => 10,
            IpvsCmd::GetDaemon => 11,
            IpvsCmd::SetConfig => 12,
            IpvsCmd::GetConfig => 13,
            IpvsCmd::SetInfo => 14,
            IpvsCmd::GetInfo => 15,
            IpvsCmd::Zero => 16,
            IpvsCmd::Flush => 17,
        }
    }

    /// From the kernel value.
    pub fn from_value(v: u8) -> Option<Self> {
        Some(match v {
            1 => IpvsCmd::NewService,
            2 => IpvsCmd::SetService,
            3 => IpvsCmd::DelService,
            4 => IpvsCmd::GetService,
            5 => IpvsCmd::NewDest,
            6 => IpvsCmd::SetDest,
            7 => IpvsCmd::DelDest,
            8 => IpvsCmd::GetDest,
            9 => IpvsCmd::NewDaemon,
            10 => IpvsCmd::DelDaemon,
            11 => IpvsCmd::GetDaemon,
            12 => IpvsCmd::SetConfig,
            13 => IpvsCmd::GetConfig,
            14 => IpvsCmd::SetInfo,
            15 => IpvsCmd::GetInfo,
            16 => IpvsCmd::Zero,
            17 => IpvsCmd::Flush,
            _ => return None,
        })
    }

    /// Whether the kernel implements this command only as a dump (`NLM_F_DUMP` required).
    pub fn is_dump_only(self) -> bool {
        matches!(self, IpvsCmd::GetDest | IpvsCmd::GetDaemon)
    }
}

// Attribute numbers (uapi enums).
const CMD_ATTR_SERVICE: u16 = 1;
const CMD_ATTR_DEST: u16 = 2;
const CMD_ATTR_DAEMON: u16 = 3;
const CMD_ATTR_TIMEOUT_TCP: u16 = 4;
const CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
const CMD_ATTR_TIMEOUT_UDP: u16 = 6;
const INFO_ATTR_VERSION: u16 = 1;
const INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

const SVC_ATTR_AF: u16 = 1;
const SVC_ATTR_PROTOCOL: u16 = 2;
const SVC_ATTR_ADDR: u16 = 3;
const SVC_ATTR_PORT: u16 = 4;
const SVC_ATTR_FWMARK: u16 = 5;
const SVC_ATTR_SCHED_NAME: u16 = 6;
const SVC_ATTR_FLAGS: u16 = 7;
const SVC_ATTR_TIMEOUT: u16 = 8;
const SVC_ATTR_NETMASK: u16 = 9;
const SVC_ATTR_STATS: u16 = 10;
const SVC_ATTR_PE_NAME: u16 = 11;
const SVC_ATTR_STATS64: u16 = 12;

const DEST_ATTR_ADDR: u16 = 1;
const DEST_ATTR_PORT: u16 = 2;
const DEST_ATTR_FWD_METHOD: u16 = 3;
const DEST_ATTR_WEIGHT: u16 = 4;
const DEST_ATTR_U_THRESH: u16 = 5;
const DEST_ATTR_L_THRESH: u16 = 6;
const DEST_ATTR_ACTIVE_CONNS: u16 = 7;
const DEST_ATTR_INACT_CONNS: u16 = 8;
const DEST_ATTR_PERSIST_CONNS: u16 = 9;
const DEST_ATTR_STATS: u16 = 10;
const DEST_ATTR_ADDR_FAMILY: u16 = 11;
const DEST_ATTR_STATS64: u16 = 12;
const DEST_ATTR_TUN_TYPE: u16 = 13;
const DEST_ATTR_TUN_PORT: u16 = 14;
const DEST_ATTR_TUN_FLAGS: u16 = 15;

const DAEMON_ATTR_STATE: u16 = 1;
const DAEMON_ATTR_MCAST_IFN: u16 = 2;
const DAEMON_ATTR_SYNC_ID: u16 = 3;
const DAEMON_ATTR_SYNC_MAXLEN: u16 = 4;
const DAEMON_ATTR_MCAST_GROUP: u16 = 5;
const DAEMON_ATTR_MCAST_GROUP6: u16 = 6;
const DAEMON_ATTR_MCAST_PORT: u16 = 7;
const DAEMON_ATTR_MCAST_TTL: u16 = 8;

const STATS_ATTR_CONNS: u16 = 1;
const STATS_ATTR_INPKTS: u16 = 2;
const STATS_ATTR_OUTPKTS: u16 = 3;
const STATS_ATTR_INBYTES: u16 = 4;
const STATS_ATTR_OUTBYTES: u16 = 5;
const STATS_ATTR_CPS: u16 = 6;
const STATS_ATTR_INPPS: u16 = 7;
const STATS_ATTR_OUTPPS: u16 = 8;
const STATS_ATTR_INBPS: u16 = 9;
const STATS_ATTR_OUTBPS: u16 = 10;

/// `struct ip_vs_flags`: the kernel applies `new = (old & !mask) | (flags & mask)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SvcFlags {
    /// Flag bits.
    pub flags: u32,
    /// Which bits to change.
    pub mask: u32,
}

/// The raw 4-byte `SVC_ATTR_NETMASK`, typed by the service's address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Netmask {
    /// IPv4 netmask as a host-order u32 (`0xffffff00` = /24); on the wire in network order.
    V4(u32),
    /// IPv6 prefix length (1..=128); on the wire as a host-order u32.
    V6(u32),
}

impl Netmask {
    /// The value as `Service::netmask` holds it.
    pub fn value(self) -> u32 {
        match self {
            Netmask::V4(v) | Netmask::V6(v) => v,
        }
    }
}

/// Attributes nested in `IPVS_CMD_ATTR_SERVICE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SvcAttr {
    /// 1: address family (u16).
    Af(u16),
    /// 2: IP protocol (u16).
    Protocol(u16),
    /// 3: virtual address (16-byte field, IPv4 zero padded).
    Addr(IpAddr),
    /// 4: virtual port (be16).
    Port(u16),
    /// 5: firewall mark (u32).
    Fwmark(u32),
    /// 6: scheduler name (NUL-terminated).
    SchedName(String),
    /// 7: flags and mask.
    Flags(SvcFlags),
    /// 8: persistence timeout, seconds.
    Timeout(u32),
    /// 9: persistence netmask / prefix length.
    Netmask(Netmask),
    /// 10: 32-bit counters (nested; bytes are u64).
    Stats(Stats),
    /// 11: persistence engine name.
    PeName(String),
    /// 12: 64-bit counters (nested).
    Stats64(Stats),
    /// Anything else, kept verbatim.
    Other(DefaultNla),
}

/// Attributes nested in `IPVS_CMD_ATTR_DEST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestAttr {
    /// 1: address (16-byte field).
    Addr(IpAddr),
    /// 2: port (be16).
    Port(u16),
    /// 3: forwarding method (`IP_VS_CONN_F_*`, u32).
    FwdMethod(u32),
    /// 4: weight.
    Weight(u32),
    /// 5: upper threshold.
    UThresh(u32),
    /// 6: lower threshold.
    LThresh(u32),
    /// 7: active connections (replies).
    ActiveConns(u32),
    /// 8: inactive connections (replies).
    InactConns(u32),
    /// 9: persistent connections (replies).
    PersistConns(u32),
    /// 10: 32-bit counters.
    Stats(Stats),
    /// 11: address family (u16).
    AddrFamily(u16),
    /// 12: 64-bit counters.
    Stats64(Stats),
    /// 13: tunnel type (u8).
    TunType(u8),
    /// 14: tunnel (GUE) port (be16).
    TunPort(u16),
    /// 15: tunnel checksum flags (u16).
    TunFlags(u16),
    /// Anything else, kept verbatim.
    Other(DefaultNla),
}

/// Attributes nested in `IPVS_CMD_ATTR_DAEMON`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonAttr {
    /// 1: `IP_VS_STATE_MASTER` (1) / `BACKUP` (2).
    State(u32),
    /// 2: interface name.
    McastIfn(String),
    /// 3: sync id.
    SyncId(u32),
    /// 4: max sync message length (u16).
    SyncMaxlen(u16),
    /// 5: IPv4 multicast group (`in_addr`).
    McastGroup(Ipv4Addr),
    /// 6: IPv6 multicast group.
    McastGroup6(Ipv6Addr),
    /// 7: UDP port (host-order u16).
    McastPort(u16),
    /// 8: multicast TTL.
    McastTtl(u8),
    /// Anything else, kept verbatim.
    Other(DefaultNla),
}

/// Top-level attributes of an IPVS message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpvsAttr {
    /// `IPVS_CMD_ATTR_SERVICE` (1).
    Service(Vec<SvcAttr>),
    /// `IPVS_CMD_ATTR_DEST` (2).
    Dest(Vec<DestAttr>),
    /// `IPVS_CMD_ATTR_DAEMON` (3).
    Daemon(Vec<DaemonAttr>),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP` (4).
    TimeoutTcp(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP_FIN` (5).
    TimeoutTcpFin(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_UDP` (6).
    TimeoutUdp(u32),
    /// `IPVS_INFO_ATTR_VERSION` (1, only in `SET_INFO` = GET_INFO replies).
    InfoVersion(u32),
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE` (2, only in `SET_INFO`).
    InfoConnTabSize(u32),
    /// Anything else, kept verbatim.
    Other(DefaultNla),
}

/// One IPVS generic-netlink payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsMessage {
    /// Command.
    pub cmd: IpvsCmd,
    /// Top-level attributes, in wire order.
    pub attrs: Vec<IpvsAttr>,
}

// ---------------------------------------------------------------------------------------------
// Low-level value helpers (never panic).

fn ck(v: &[u8], n: usize, what: &str) -> Result<(), DecodeError> {
    if v.len() < n { Err(DecodeError::from(format!("{what}: {} bytes, need {n}", v.len()))) } else { Ok(()) }
}
fn get_u8(v: &[u8], what: &str) -> Result<u8, DecodeError> {
    ck(v, 1, what)?;
    Ok(v[0])
}
fn get_u16(v: &[u8], what: &str) -> Result<u16, DecodeError> {
    ck(v, 2, what)?;
    Ok(u16::from_ne_bytes([v[0], v[1]]))
}
fn get_be16(v: &[u8], what: &str) -> Result<u16, DecodeError> {
    ck(v, 2, what)?;
    Ok(u16::from_be_bytes([v[0], v[1]]))
}
fn get_u32(v: &[u8], what: &str) -> Result<u32, DecodeError> {
    ck(v, 4, what)?;
    Ok(u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))
}
fn get_raw4(v: &[u8], what: &str) -> Result<[u8; 4], DecodeError> {
    ck(v, 4, what)?;
    Ok([v[0], v[1], v[2], v[3]])
}
/// A counter sent as u32 or u64 (STATS has both widths; be lenient).
fn get_counter(v: &[u8], what: &str) -> Result<u64, DecodeError> {
    match v.len() {
        4 => Ok(u64::from(u32::from_ne_bytes([v[0], v[1], v[2], v[3]]))),
        n if n >= 8 => Ok(u64::from_ne_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]])),
        n => Err(DecodeError::from(format!("{what}: counter of {n} bytes"))),
    }
}
fn get_string(v: &[u8], what: &str) -> Result<String, DecodeError> {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8(v[..end].to_vec()).map_err(|e| DecodeError::from(format!("{what}: {e}")))
}
fn get_addr(v: &[u8], af: Option<u16>, what: &str) -> Result<IpAddr, DecodeError> {
    let v4 = |v: &[u8]| IpAddr::V4(Ipv4Addr::new(v[0], v[1], v[2], v[3]));
    match (af, v.len()) {
        (Some(AF_INET), n) if n >= 4 => Ok(v4(v)),
        (Some(AF_INET6), n) | (None, n) if n >= 16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(&v[..16]);
            Ok(IpAddr::V6(Ipv6Addr::from(b)))
        }
        (None, 4) => Ok(v4(v)),
        (af, n) => Err(DecodeError::from(format!("{what}: {n}-byte address for family {af:?}"))),
    }
}
fn put_addr(buf: &mut [u8], a: &IpAddr) {
    buf[..16].fill(0);
    match a {
        IpAddr::V4(a) => buf[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => buf[..16].copy_from_slice(&a.octets()),
    }
}
fn put_str(buf: &mut [u8], s: &str) {
    buf[..s.len()].copy_from_slice(s.as_bytes());
    buf[s.len()] = 0;
}
fn nested_len<T: Nla>(v: &[T]) -> usize {
    v.iter().map(|a| a.buffer_len()).sum()
}
fn emit_nested<T: Nla>(v: &[T], buf: &mut [u8]) {
    let mut off = 0;
    for a in v {
        let n = a.buffer_len();
        a.emit(&mut buf[off..off + n]);
        off += n;
    }
}
/// One attribute: its type without flags, its value, and the raw buffer.
type RawAttr<'a> = (u16, &'a [u8], NlaBuffer<&'a [u8]>);

/// Iterates the attributes of `buf`.
fn attrs(buf: &[u8]) -> impl Iterator<Item = Result<RawAttr<'_>, DecodeError>> {
    NlasIterator::new(buf).map(|r| {
        r.map(|nla| {
            // `new_checked` guaranteed 4 <= length <= inner.len().
            let inner: &[u8] = nla.into_inner();
            (nla.kind(), &inner[4..nla.length() as usize], nla)
        })
    })
}
fn other(nla: &NlaBuffer<&[u8]>) -> Result<DefaultNla, DecodeError> {
    DefaultNla::parse(nla)
}

// ---------------------------------------------------------------------------------------------
// Stats.

const STATS_ORDER: [u16; 10] = [
    STATS_ATTR_CONNS,
    STATS_ATTR_INPKTS,
    STATS_ATTR_OUTPKTS,
    STATS_ATTR_INBYTES,
    STATS_ATTR_OUTBYTES,
    STATS_ATTR_CPS,
    STATS_ATTR_INPPS,
    STATS_ATTR_OUTPPS,
    STATS_ATTR_INBPS,
    STATS_ATTR_OUTBPS,
];

fn stats_field(s: &Stats, kind: u16) -> u64 {
    match kind {
        STATS_ATTR_CONNS => s.conns,
        STATS_ATTR_INPKTS => s.inpkts,
        STATS_ATTR_OUTPKTS => s.outpkts,
        STATS_ATTR_INBYTES => s.inbytes,
        STATS_ATTR_OUTBYTES => s.outbytes,
        STATS_ATTR_CPS => s.cps,
        STATS_ATTR_INPPS => s.inpps,
        STATS_ATTR_OUTPPS => s.outpps,
        STATS_ATTR_INBPS => s.inbps,
        _ => s.outbps,
    }
}

/// Width of a counter: STATS64 is all u64; STATS is u32 except the byte counters.
fn stats_width(kind: u16, wide: bool) -> usize {
    if wide || kind == STATS_ATTR_INBYTES || kind == STATS_ATTR_OUTBYTES { 8 } else { 4 }
}

fn stats_len(wide: bool) -> usize {
    STATS_ORDER.iter().map(|&k| 4 + stats_width(k, wide)).sum()
}

fn emit_stats(s: &Stats, wide: bool, buf: &mut [u8]) {
    let mut off = 0;
    for &k in &STATS_ORDER {
        let w = stats_width(k, wide);
        let len = (4 + w) as u16;
        buf[off..off + 2].copy_from_slice(&len.to_ne_bytes());
        buf[off + 2..off + 4].copy_from_slice(&k.to_ne_bytes());
        let v = stats_field(s, k);
        if w == 8 {
            buf[off + 4..off + 12].copy_from_slice(&v.to_ne_bytes());
        } else {
            buf[off + 4..off + 8].copy_from_slice(&(v as u32).to_ne_bytes());
        }
        off += 4 + w;
    }
}

fn parse_stats(buf: &[u8]) -> Result<Stats, DecodeError> {
    let mut s = Stats::default();
    for a in attrs(buf) {
        let (kind, v, _) = a?;
        let slot = match kind {
            STATS_ATTR_CONNS => &mut s.conns,
            STATS_ATTR_INPKTS => &mut s.inpkts,
            STATS_ATTR_OUTPKTS => &mut s.outpkts,
            STATS_ATTR_INBYTES => &mut s.inbytes,
            STATS_ATTR_OUTBYTES => &mut s.outbytes,
            STATS_ATTR_CPS => &mut s.cps,
            STATS_ATTR_INPPS => &mut s.inpps,
            STATS_ATTR_OUTPPS => &mut s.outpps,
            STATS_ATTR_INBPS => &mut s.inbps,
            STATS_ATTR_OUTBPS => &mut s.outbps,
            _ => continue, // STATS_ATTR_PAD (11) and future counters
        };
        *slot = get_counter(v, "stats counter")?;
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Nla implementations.

impl Nla for SvcAttr {
    fn value_len(&self) -> usize {
        match self {
            SvcAttr::Af(_) | SvcAttr::Protocol(_) | SvcAttr::Port(_) => 2,
            SvcAttr::Fwmark(_) | SvcAttr::Timeout(_) | SvcAttr::Netmask(_) => 4,
            SvcAttr::Addr(_) => 16,
            SvcAttr::SchedName(s) | SvcAttr::PeName(s) => s.len() + 1,
            SvcAttr::Flags(_) => 8,
            SvcAttr::Stats(_) => stats_len(false),
            SvcAttr::Stats64(_) => stats_len(true),
            SvcAttr::Other(o) => o.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            SvcAttr::Af(_) => SVC_ATTR_AF,
            SvcAttr::Protocol(_) => SVC_ATTR_PROTOCOL,
            SvcAttr::Addr(_) => SVC_ATTR_ADDR,
            SvcAttr::Port(_) => SVC_ATTR_PORT,
            SvcAttr::Fwmark(_) => SVC_ATTR_FWMARK,
            SvcAttr::SchedName(_) => SVC_ATTR_SCHED_NAME,
            SvcAttr::Flags(_) => SVC_ATTR_FLAGS,
            SvcAttr::Timeout(_) => SVC_ATTR_TIMEOUT,
            SvcAttr::Netmask(_) => SVC_ATTR_NETMASK,
            SvcAttr::Stats(_) => SVC_ATTR_STATS,
            SvcAttr::PeName(_) => SVC_ATTR_PE_NAME,
            SvcAttr::Stats64(_) => SVC_ATTR_STATS64,
            SvcAttr::Other(o) => o.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            SvcAttr::Af(v) | SvcAttr::Protocol(v) => buf[..2].copy_from_slice(&v.to_ne_bytes()),
            SvcAttr::Port(v) => buf[..2].copy_from_slice(&v.to_be_bytes()),
            SvcAttr::Fwmark(v) | SvcAttr::Timeout(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            SvcAttr::Netmask(Netmask::V4(m)) => buf[..4].copy_from_slice(&m.to_be_bytes()),
            SvcAttr::Netmask(Netmask::V6(p)) => buf[..4].copy_from_slice(&p.to_ne_bytes()),
            SvcAttr::Addr(a) => put_addr(buf, a),
            SvcAttr::SchedName(s) | SvcAttr::PeName(s) => put_str(buf, s),
            SvcAttr::Flags(f) => {
                buf[..4].copy_from_slice(&f.flags.to_ne_bytes());
                buf[4..8].copy_from_slice(&f.mask.to_ne_bytes());
            }
            SvcAttr::Stats(s) => emit_stats(s, false, buf),
            SvcAttr::Stats64(s) => emit_stats(s, true, buf),
            SvcAttr::Other(o) => o.emit_value(buf),
        }
    }
}

fn parse_svc_attrs(buf: &[u8]) -> Result<Vec<SvcAttr>, DecodeError> {
    // The address and netmask encodings depend on the family, which may come later.
    let mut af = None;
    for a in attrs(buf) {
        let (kind, v, _) = a?;
        if kind == SVC_ATTR_AF {
            af = Some(get_u16(v, "service AF")?);
        }
    }
    let mut out = Vec::new();
    for a in attrs(buf) {
        let (kind, v, nla) = a?;
        out.push(match kind {
            SVC_ATTR_AF => SvcAttr::Af(get_u16(v, "service AF")?),
            SVC_ATTR_PROTOCOL => SvcAttr::Protocol(get_u16(v, "service protocol")?),
            SVC_ATTR_ADDR => SvcAttr::Addr(get_addr(v, af, "service address")?),
            SVC_ATTR_PORT => SvcAttr::Port(get_be16(v, "service port")?),
            SVC_ATTR_FWMARK => SvcAttr::Fwmark(get_u32(v, "service fwmark")?),
            SVC_ATTR_SCHED_NAME => SvcAttr::SchedName(get_string(v, "scheduler name")?),
            SVC_ATTR_FLAGS => {
                ck(v, 8, "service flags")?;
                SvcAttr::Flags(SvcFlags { flags: get_u32(v, "flags")?, mask: get_u32(&v[4..], "mask")? })
            }
            SVC_ATTR_TIMEOUT => SvcAttr::Timeout(get_u32(v, "service timeout")?),
            SVC_ATTR_NETMASK => {
                let raw = get_raw4(v, "service netmask")?;
                if af == Some(AF_INET6) {
                    SvcAttr::Netmask(Netmask::V6(u32::from_ne_bytes(raw)))
                } else {
                    SvcAttr::Netmask(Netmask::V4(u32::from_be_bytes(raw)))
                }
            }
            SVC_ATTR_STATS => SvcAttr::Stats(parse_stats(v)?),
            SVC_ATTR_PE_NAME => SvcAttr::PeName(get_string(v, "persistence engine name")?),
            SVC_ATTR_STATS64 => SvcAttr::Stats64(parse_stats(v)?),
            _ => SvcAttr::Other(other(&nla)?),
        });
    }
    Ok(out)
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        match self {
            DestAttr::Addr(_) => 16,
            DestAttr::Port(_) | DestAttr::AddrFamily(_) | DestAttr::TunPort(_) | DestAttr::TunFlags(_) => 2,
            DestAttr::TunType(_) => 1,
            DestAttr::FwdMethod(_)
            | DestAttr::Weight(_)
            | DestAttr::UThresh(_)
            | DestAttr::LThresh(_)
            | DestAttr::ActiveConns(_)
            | DestAttr::InactConns(_)
            | DestAttr::PersistConns(_) => 4,
            DestAttr::Stats(_) => stats_len(false),
            DestAttr::Stats64(_) => stats_len(true),
            DestAttr::Other(o) => o.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            DestAttr::Addr(_) => DEST_ATTR_ADDR,
            DestAttr::Port(_) => DEST_ATTR_PORT,
            DestAttr::FwdMethod(_) => DEST_ATTR_FWD_METHOD,
            DestAttr::Weight(_) => DEST_ATTR_WEIGHT,
            DestAttr::UThresh(_) => DEST_ATTR_U_THRESH,
            DestAttr::LThresh(_) => DEST_ATTR_L_THRESH,
            DestAttr::ActiveConns(_) => DEST_ATTR_ACTIVE_CONNS,
            DestAttr::InactConns(_) => DEST_ATTR_INACT_CONNS,
            DestAttr::PersistConns(_) => DEST_ATTR_PERSIST_CONNS,
            DestAttr::Stats(_) => DEST_ATTR_STATS,
            DestAttr::AddrFamily(_) => DEST_ATTR_ADDR_FAMILY,
            DestAttr::Stats64(_) => DEST_ATTR_STATS64,
            DestAttr::TunType(_) => DEST_ATTR_TUN_TYPE,
            DestAttr::TunPort(_) => DEST_ATTR_TUN_PORT,
            DestAttr::TunFlags(_) => DEST_ATTR_TUN_FLAGS,
            DestAttr::Other(o) => o.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            DestAttr::Addr(a) => put_addr(buf, a),
            DestAttr::Port(v) | DestAttr::TunPort(v) => buf[..2].copy_from_slice(&v.to_be_bytes()),
            DestAttr::AddrFamily(v) | DestAttr::TunFlags(v) => buf[..2].copy_from_slice(&v.to_ne_bytes()),
            DestAttr::TunType(v) => buf[0] = *v,
            DestAttr::FwdMethod(v)
            | DestAttr::Weight(v)
            | DestAttr::UThresh(v)
            | DestAttr::LThresh(v)
            | DestAttr::ActiveConns(v)
            | DestAttr::InactConns(v)
            | DestAttr::PersistConns(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            DestAttr::Stats(s) => emit_stats(s, false, buf),
            DestAttr::Stats64(s) => emit_stats(s, true, buf),
            DestAttr::Other(o) => o.emit_value(buf),
        }
    }
}

fn parse_dest_attrs(buf: &[u8]) -> Result<Vec<DestAttr>, DecodeError> {
    let mut af = None;
    for a in attrs(buf) {
        let (kind, v, _) = a?;
        if kind == DEST_ATTR_ADDR_FAMILY {
            af = Some(get_u16(v, "dest address family")?);
        }
    }
    let mut out = Vec::new();
    for a in attrs(buf) {
        let (kind, v, nla) = a?;
        out.push(match kind {
            DEST_ATTR_ADDR => DestAttr::Addr(get_addr(v, af, "dest address")?),
            DEST_ATTR_PORT => DestAttr::Port(get_be16(v, "dest port")?),
            DEST_ATTR_FWD_METHOD => DestAttr::FwdMethod(get_u32(v, "dest forwarding method")?),
            DEST_ATTR_WEIGHT => DestAttr::Weight(get_u32(v, "dest weight")?),
            DEST_ATTR_U_THRESH => DestAttr::UThresh(get_u32(v, "dest upper threshold")?),
            DEST_ATTR_L_THRESH => DestAttr::LThresh(get_u32(v, "dest lower threshold")?),
            DEST_ATTR_ACTIVE_CONNS => DestAttr::ActiveConns(get_u32(v, "dest active conns")?),
            DEST_ATTR_INACT_CONNS => DestAttr::InactConns(get_u32(v, "dest inactive conns")?),
            DEST_ATTR_PERSIST_CONNS => DestAttr::PersistConns(get_u32(v, "dest persistent conns")?),
            DEST_ATTR_STATS => DestAttr::Stats(parse_stats(v)?),
            DEST_ATTR_ADDR_FAMILY => DestAttr::AddrFamily(get_u16(v, "dest address family")?),
            DEST_ATTR_STATS64 => DestAttr::Stats64(parse_stats(v)?),
            DEST_ATTR_TUN_TYPE => DestAttr::TunType(get_u8(v, "dest tunnel type")?),
            DEST_ATTR_TUN_PORT => DestAttr::TunPort(get_be16(v, "dest tunnel port")?),
            DEST_ATTR_TUN_FLAGS => DestAttr::TunFlags(get_u16(v, "dest tunnel flags")?),
            _ => DestAttr::Other(other(&nla)?),
        });
    }
    Ok(out)
}

impl Nla for DaemonAttr {
    fn value_len(&self) -> usize {
        match self {
            DaemonAttr::State(_) | DaemonAttr::SyncId(_) | DaemonAttr::McastGroup(_) => 4,
            DaemonAttr::McastIfn(s) => s.len() + 1,
            DaemonAttr::SyncMaxlen(_) | DaemonAttr::McastPort(_) => 2,
            DaemonAttr::McastGroup6(_) => 16,
            DaemonAttr::McastTtl(_) => 1,
            DaemonAttr::Other(o) => o.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            DaemonAttr::State(_) => DAEMON_ATTR_STATE,
            DaemonAttr::McastIfn(_) => DAEMON_ATTR_MCAST_IFN,
            DaemonAttr::SyncId(_) => DAEMON_ATTR_SYNC_ID,
            DaemonAttr::SyncMaxlen(_) => DAEMON_ATTR_SYNC_MAXLEN,
            DaemonAttr::McastGroup(_) => DAEMON_ATTR_MCAST_GROUP,
            DaemonAttr::McastGroup6(_) => DAEMON_ATTR_MCAST_GROUP6,
            DaemonAttr::McastPort(_) => DAEMON_ATTR_MCAST_PORT,
            DaemonAttr::McastTtl(_) => DAEMON_ATTR_MCAST_TTL,
            DaemonAttr::Other(o) => o.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            DaemonAttr::State(v) | DaemonAttr::SyncId(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            DaemonAttr::McastIfn(s) => put_str(buf, s),
            DaemonAttr::SyncMaxlen(v) | DaemonAttr::McastPort(v) => buf[..2].copy_from_slice(&v.to_ne_bytes()),
            DaemonAttr::McastGroup(a) => buf[..4].copy_from_slice(&a.octets()),
            DaemonAttr::McastGroup6(a) => buf[..16].copy_from_slice(&a.octets()),
            DaemonAttr::McastTtl(v) => buf[0] = *v,
            DaemonAttr::Other(o) => o.emit_value(buf),
        }
    }
}

fn parse_daemon_attrs(buf: &[u8]) -> Result<Vec<DaemonAttr>, DecodeError> {
    let mut out = Vec::new();
    for a in attrs(buf) {
        let (kind, v, nla) = a?;
        out.push(match kind {
            DAEMON_ATTR_STATE => DaemonAttr::State(get_u32(v, "daemon state")?),
            DAEMON_ATTR_MCAST_IFN => DaemonAttr::McastIfn(get_string(v, "daemon interface")?),
            DAEMON_ATTR_SYNC_ID => DaemonAttr::SyncId(get_u32(v, "daemon sync id")?),
            DAEMON_ATTR_SYNC_MAXLEN => DaemonAttr::SyncMaxlen(get_u16(v, "daemon sync maxlen")?),
            DAEMON_ATTR_MCAST_GROUP => DaemonAttr::McastGroup(Ipv4Addr::from(get_raw4(v, "daemon group")?)),
            DAEMON_ATTR_MCAST_GROUP6 => {
                ck(v, 16, "daemon group6")?;
                let mut b = [0u8; 16];
                b.copy_from_slice(&v[..16]);
                DaemonAttr::McastGroup6(Ipv6Addr::from(b))
            }
            DAEMON_ATTR_MCAST_PORT => DaemonAttr::McastPort(get_u16(v, "daemon port")?),
            DAEMON_ATTR_MCAST_TTL => DaemonAttr::McastTtl(get_u8(v, "daemon ttl")?),
            _ => DaemonAttr::Other(other(&nla)?),
        });
    }
    Ok(out)
}

impl Nla for IpvsAttr {
    fn value_len(&self) -> usize {
        match self {
            IpvsAttr::Service(v) => nested_len(v),
            IpvsAttr::Dest(v) => nested_len(v),
            IpvsAttr::Daemon(v) => nested_len(v),
            IpvsAttr::TimeoutTcp(_)
            | IpvsAttr::TimeoutTcpFin(_)
            | IpvsAttr::TimeoutUdp(_)
            | IpvsAttr::InfoVersion(_)
            | IpvsAttr::InfoConnTabSize(_) => 4,
            IpvsAttr::Other(o) => o.value_len(),
        }
    }
    fn kind(&self) -> u16 {
        match self {
            IpvsAttr::Service(_) => CMD_ATTR_SERVICE,
            IpvsAttr::Dest(_) => CMD_ATTR_DEST,
            IpvsAttr::Daemon(_) => CMD_ATTR_DAEMON,
            IpvsAttr::TimeoutTcp(_) => CMD_ATTR_TIMEOUT_TCP,
            IpvsAttr::TimeoutTcpFin(_) => CMD_ATTR_TIMEOUT_TCP_FIN,
            IpvsAttr::TimeoutUdp(_) => CMD_ATTR_TIMEOUT_UDP,
            IpvsAttr::InfoVersion(_) => INFO_ATTR_VERSION,
            IpvsAttr::InfoConnTabSize(_) => INFO_ATTR_CONN_TAB_SIZE,
            IpvsAttr::Other(o) => o.kind(),
        }
    }
    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            IpvsAttr::Service(v) => emit_nested(v, buf),
            IpvsAttr::Dest(v) => emit_nested(v, buf),
            IpvsAttr::Daemon(v) => emit_nested(v, buf),
            IpvsAttr::TimeoutTcp(v)
            | IpvsAttr::TimeoutTcpFin(v)
            | IpvsAttr::TimeoutUdp(v)
            | IpvsAttr::InfoVersion(v)
            | IpvsAttr::InfoConnTabSize(v) => buf[..4].copy_from_slice(&v.to_ne_bytes()),
            IpvsAttr::Other(o) => o.emit_value(buf),
        }
    }
}

fn parse_top_attrs(cmd: IpvsCmd, buf: &[u8]) -> Result<Vec<IpvsAttr>, DecodeError> {
    let info = matches!(cmd, IpvsCmd::SetInfo | IpvsCmd::GetInfo);
    let mut out = Vec::new();
    for a in attrs(buf) {
        let (kind, v, nla) = a?;
        out.push(match (info, kind) {
            (true, INFO_ATTR_VERSION) => IpvsAttr::InfoVersion(get_u32(v, "info version")?),
            (true, INFO_ATTR_CONN_TAB_SIZE) => IpvsAttr::InfoConnTabSize(get_u32(v, "info conn_tab_size")?),
            (false, CMD_ATTR_SERVICE) => IpvsAttr::Service(parse_svc_attrs(v)?),
            (false, CMD_ATTR_DEST) => IpvsAttr::Dest(parse_dest_attrs(v)?),
            (false, CMD_ATTR_DAEMON) => IpvsAttr::Daemon(parse_daemon_attrs(v)?),
            (false, CMD_ATTR_TIMEOUT_TCP) => IpvsAttr::TimeoutTcp(get_u32(v, "tcp timeout")?),
            (false, CMD_ATTR_TIMEOUT_TCP_FIN) => IpvsAttr::TimeoutTcpFin(get_u32(v, "tcp fin timeout")?),
            (false, CMD_ATTR_TIMEOUT_UDP) => IpvsAttr::TimeoutUdp(get_u32(v, "udp timeout")?),
            _ => IpvsAttr::Other(other(&nla)?),
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The genl payload.

impl GenlFamily for IpvsMessage {
    fn family_name() -> &'static str {
        IPVS_GENL_NAME
    }
    fn command(&self) -> u8 {
        self.cmd.value()
    }
    fn version(&self) -> u8 {
        IPVS_GENL_VERSION
    }
}

impl Emitable for IpvsMessage {
    fn buffer_len(&self) -> usize {
        nested_len(&self.attrs)
    }
    fn emit(&self, buffer: &mut [u8]) {
        emit_nested(&self.attrs, buffer)
    }
}

impl ParseableParametrized<[u8], GenlHeader> for IpvsMessage {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        let cmd = IpvsCmd::from_value(header.cmd)
            .ok_or_else(|| DecodeError::from(format!("unknown IPVS command {}", header.cmd)))?;
        Ok(IpvsMessage { cmd, attrs: parse_top_attrs(cmd, buf)? })
    }
}

// ---------------------------------------------------------------------------------------------
// Builders: model -> message.

/// The identifying attributes of a service (libipvs order: AF, then FWMARK or PROTOCOL/ADDR/PORT).
pub fn service_key_attrs(key: &ServiceKey) -> Vec<SvcAttr> {
    match *key {
        ServiceKey::Addr { protocol, addr, port } => {
            vec![SvcAttr::Af(key.af()), SvcAttr::Protocol(protocol), SvcAttr::Addr(addr), SvcAttr::Port(port)]
        }
        ServiceKey::Fwmark { af, mark } => vec![SvcAttr::Af(af), SvcAttr::Fwmark(mark)],
    }
}

/// A full service entry as NEW/SET_SERVICE need it.
///
/// `HASHED` is never sent: NEW_SERVICE with it set would make the kernel refuse to hash (and so
/// to find) the service. The mask is `0xffffffff` (libipvs): every flag is replaced.
pub fn service_attrs(svc: &Service) -> Vec<SvcAttr> {
    let mut v = service_key_attrs(&svc.key);
    v.push(SvcAttr::SchedName(svc.sched.clone()));
    if let Some(pe) = &svc.pe_name {
        v.push(SvcAttr::PeName(pe.clone()));
    }
    v.push(SvcAttr::Flags(SvcFlags { flags: svc.flags & !svc_flags::HASHED, mask: u32::MAX }));
    v.push(SvcAttr::Timeout(svc.timeout));
    v.push(SvcAttr::Netmask(if svc.key.af() == AF_INET6 {
        Netmask::V6(svc.netmask)
    } else {
        Netmask::V4(svc.netmask)
    }));
    v
}

/// A full dest entry (libipvs order): ADDR_FAMILY first; TUN_TYPE only for tunnel forwarding,
/// TUN_PORT only for GUE, TUN_FLAGS when the tunnel type is not IPIP.
pub fn dest_attrs(d: &Dest) -> Vec<DestAttr> {
    let mut v = vec![
        DestAttr::AddrFamily(d.af()),
        DestAttr::Addr(d.addr),
        DestAttr::Port(d.port),
        DestAttr::FwdMethod(d.fwd.bits()),
        DestAttr::Weight(d.weight),
    ];
    if d.fwd == Fwd::Tunnel {
        v.push(DestAttr::TunType(d.tun_type.value()));
        if d.tun_type == TunType::Gue {
            v.push(DestAttr::TunPort(d.tun_port));
        }
        if d.tun_type != TunType::Ipip {
            v.push(DestAttr::TunFlags(d.tun_flags));
        }
    }
    v.push(DestAttr::UThresh(d.u_thresh));
    v.push(DestAttr::LThresh(d.l_thresh));
    v
}

/// The identifying attributes of a dest (DEL_DEST).
pub fn dest_key_attrs(addr: IpAddr, port: u16) -> Vec<DestAttr> {
    let af = if addr.is_ipv4() { AF_INET } else { AF_INET6 };
    vec![DestAttr::AddrFamily(af), DestAttr::Addr(addr), DestAttr::Port(port)]
}

fn daemon_state_value(s: DaemonState) -> u32 {
    match s {
        DaemonState::Master => 1,
        DaemonState::Backup => 2,
    }
}

impl IpvsMessage {
    fn with(cmd: IpvsCmd, attrs: Vec<IpvsAttr>) -> Self {
        IpvsMessage { cmd, attrs }
    }
    /// `GET_INFO` (doit).
    pub fn get_info() -> Self {
        Self::with(IpvsCmd::GetInfo, vec![])
    }
    /// `NEW_SERVICE`.
    pub fn new_service(svc: &Service) -> Self {
        Self::with(IpvsCmd::NewService, vec![IpvsAttr::Service(service_attrs(svc))])
    }
    /// `SET_SERVICE`.
    pub fn set_service(svc: &Service) -> Self {
        Self::with(IpvsCmd::SetService, vec![IpvsAttr::Service(service_attrs(svc))])
    }
    /// `DEL_SERVICE`.
    pub fn del_service(key: &ServiceKey) -> Self {
        Self::with(IpvsCmd::DelService, vec![IpvsAttr::Service(service_key_attrs(key))])
    }
    /// `GET_SERVICE` for one service (doit).
    pub fn get_service(key: &ServiceKey) -> Self {
        Self::with(IpvsCmd::GetService, vec![IpvsAttr::Service(service_key_attrs(key))])
    }
    /// `GET_SERVICE` for all services (send with `NLM_F_DUMP`).
    pub fn dump_services() -> Self {
        Self::with(IpvsCmd::GetService, vec![])
    }
    /// `NEW_DEST`.
    pub fn new_dest(key: &ServiceKey, d: &Dest) -> Self {
        Self::with(IpvsCmd::NewDest, vec![IpvsAttr::Service(service_key_attrs(key)), IpvsAttr::Dest(dest_attrs(d))])
    }
    /// `SET_DEST`.
    pub fn set_dest(key: &ServiceKey, d: &Dest) -> Self {
        Self::with(IpvsCmd::SetDest, vec![IpvsAttr::Service(service_key_attrs(key)), IpvsAttr::Dest(dest_attrs(d))])
    }
    /// `DEL_DEST`.
    pub fn del_dest(key: &ServiceKey, addr: IpAddr, port: u16) -> Self {
        Self::with(
            IpvsCmd::DelDest,
            vec![IpvsAttr::Service(service_key_attrs(key)), IpvsAttr::Dest(dest_key_attrs(addr, port))],
        )
    }
    /// `GET_DEST` of one service (send with `NLM_F_DUMP`).
    pub fn dump_dests(key: &ServiceKey) -> Self {
        Self::with(IpvsCmd::GetDest, vec![IpvsAttr::Service(service_key_attrs(key))])
    }
    /// `GET_CONFIG` (doit).
    pub fn get_config() -> Self {
        Self::with(IpvsCmd::GetConfig, vec![])
    }
    /// `SET_CONFIG`: every timeout is sent; 0 leaves the kernel's value unchanged.
    pub fn set_config(t: &Timeouts) -> Self {
        Self::with(
            IpvsCmd::SetConfig,
            vec![IpvsAttr::TimeoutTcp(t.tcp), IpvsAttr::TimeoutTcpFin(t.tcp_fin), IpvsAttr::TimeoutUdp(t.udp)],
        )
    }
    /// `FLUSH`.
    pub fn flush() -> Self {
        Self::with(IpvsCmd::Flush, vec![])
    }
    /// `ZERO`: all counters, or one service's.
    pub fn zero(key: Option<&ServiceKey>) -> Self {
        Self::with(IpvsCmd::Zero, key.map(|k| IpvsAttr::Service(service_key_attrs(k))).into_iter().collect())
    }
    /// `NEW_DAEMON`.
    pub fn new_daemon(d: &Daemon) -> Self {
        let mut v = vec![
            DaemonAttr::State(daemon_state_value(d.state)),
            DaemonAttr::McastIfn(d.mcast_ifn.clone()),
            DaemonAttr::SyncId(d.sync_id),
        ];
        if let Some(m) = d.sync_maxlen {
            v.push(DaemonAttr::SyncMaxlen(m));
        }
        match d.mcast_group {
            Some(IpAddr::V4(g)) => v.push(DaemonAttr::McastGroup(g)),
            Some(IpAddr::V6(g)) => v.push(DaemonAttr::McastGroup6(g)),
            None => {}
        }
        if let Some(p) = d.mcast_port {
            v.push(DaemonAttr::McastPort(p));
        }
        if let Some(t) = d.mcast_ttl {
            v.push(DaemonAttr::McastTtl(t));
        }
        Self::with(IpvsCmd::NewDaemon, vec![IpvsAttr::Daemon(v)])
    }
    /// `DEL_DAEMON`.
    pub fn del_daemon(state: DaemonState) -> Self {
        Self::with(IpvsCmd::DelDaemon, vec![IpvsAttr::Daemon(vec![DaemonAttr::State(daemon_state_value(state))])])
    }
    /// `GET_DAEMON` (send with `NLM_F_DUMP`).
    pub fn dump_daemons() -> Self {
        Self::with(IpvsCmd::GetDaemon, vec![])
    }
}

// ---------------------------------------------------------------------------------------------
// Extractors: message -> model.

fn missing(what: &str) -> DecodeError {
    DecodeError::from(format!("missing {what}"))
}

/// Builds a [`ServiceEntry`] from the attributes nested in `CMD_ATTR_SERVICE`.
///
/// Counters come from STATS64 when present, else STATS. `HASHED` is cleared from the flags (the
/// kernel sets it on every live service), so a read-back service equals the one written.
pub fn service_entry_from_attrs(attrs: &[SvcAttr]) -> Result<ServiceEntry, DecodeError> {
    let (mut af, mut proto, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
    let (mut sched, mut flags, mut timeout, mut netmask, mut pe) = (None, None, 0, 0, None);
    let (mut st32, mut st64) = (None, None);
    for a in attrs {
        match a {
            SvcAttr::Af(v) => af = Some(*v),
            SvcAttr::Protocol(v) => proto = Some(*v),
            SvcAttr::Addr(v) => addr = Some(*v),
            SvcAttr::Port(v) => port = Some(*v),
            SvcAttr::Fwmark(v) => fwmark = Some(*v),
            SvcAttr::SchedName(v) => sched = Some(v.clone()),
            SvcAttr::Flags(f) => flags = Some(f.flags),
            SvcAttr::Timeout(v) => timeout = *v,
            SvcAttr::Netmask(n) => netmask = n.value(),
            SvcAttr::Stats(s) => st32 = Some(*s),
            SvcAttr::PeName(v) => pe = Some(v.clone()),
            SvcAttr::Stats64(s) => st64 = Some(*s),
            SvcAttr::Other(_) => {}
        }
    }
    let af = af.ok_or_else(|| missing("service AF"))?;
    let key = match fwmark {
        Some(mark) if mark != 0 => ServiceKey::Fwmark { af, mark },
        _ => ServiceKey::Addr {
            protocol: proto.ok_or_else(|| missing("service protocol"))?,
            addr: addr.ok_or_else(|| missing("service address"))?,
            port: port.ok_or_else(|| missing("service port"))?,
        },
    };
    let svc = Service {
        key,
        sched: sched.ok_or_else(|| missing("scheduler name"))?,
        flags: flags.ok_or_else(|| missing("service flags"))? & !svc_flags::HASHED,
        timeout,
        netmask,
        pe_name: pe,
    };
    Ok(ServiceEntry { svc, stats: st64.or(st32).unwrap_or_default() })
}

/// Builds a [`DestEntry`] from the attributes nested in `CMD_ATTR_DEST`.
pub fn dest_entry_from_attrs(attrs: &[DestAttr]) -> Result<DestEntry, DecodeError> {
    let (mut addr, mut port, mut fwd, mut weight) = (None, None, None, None);
    let (mut u, mut l, mut tt, mut tp, mut tf) = (0, 0, 0, 0, 0);
    let (mut act, mut inact, mut pers, mut st32, mut st64) = (0, 0, 0, None, None);
    for a in attrs {
        match a {
            DestAttr::Addr(v) => addr = Some(*v),
            DestAttr::Port(v) => port = Some(*v),
            DestAttr::FwdMethod(v) => fwd = Some(*v),
            DestAttr::Weight(v) => weight = Some(*v),
            DestAttr::UThresh(v) => u = *v,
            DestAttr::LThresh(v) => l = *v,
            DestAttr::ActiveConns(v) => act = *v,
            DestAttr::InactConns(v) => inact = *v,
            DestAttr::PersistConns(v) => pers = *v,
            DestAttr::Stats(s) => st32 = Some(*s),
            DestAttr::Stats64(s) => st64 = Some(*s),
            DestAttr::TunType(v) => tt = *v,
            DestAttr::TunPort(v) => tp = *v,
            DestAttr::TunFlags(v) => tf = *v,
            DestAttr::AddrFamily(_) | DestAttr::Other(_) => {}
        }
    }
    let fwd = fwd.ok_or_else(|| missing("dest forwarding method"))?;
    let dest = Dest {
        addr: addr.ok_or_else(|| missing("dest address"))?,
        port: port.ok_or_else(|| missing("dest port"))?,
        fwd: Fwd::from_bits(fwd).ok_or_else(|| DecodeError::from(format!("unknown forwarding method {fwd}")))?,
        weight: weight.ok_or_else(|| missing("dest weight"))?,
        u_thresh: u,
        l_thresh: l,
        tun_type: TunType::from_value(tt).ok_or_else(|| DecodeError::from(format!("unknown tunnel type {tt}")))?,
        tun_port: tp,
        tun_flags: tf,
    };
    Ok(DestEntry {
        dest,
        active_conns: act,
        inact_conns: inact,
        persist_conns: pers,
        stats: st64.or(st32).unwrap_or_default(),
    })
}

/// Builds a [`Daemon`] from the attributes nested in `CMD_ATTR_DAEMON`.
pub fn daemon_from_attrs(attrs: &[DaemonAttr]) -> Result<Daemon, DecodeError> {
    let mut state = None;
    let mut d = Daemon {
        state: DaemonState::Master,
        mcast_ifn: String::new(),
        sync_id: 0,
        sync_maxlen: None,
        mcast_group: None,
        mcast_port: None,
        mcast_ttl: None,
    };
    let mut ifn = None;
    for a in attrs {
        match a {
            DaemonAttr::State(v) => state = Some(*v),
            DaemonAttr::McastIfn(s) => ifn = Some(s.clone()),
            DaemonAttr::SyncId(v) => d.sync_id = *v,
            DaemonAttr::SyncMaxlen(v) => d.sync_maxlen = Some(*v),
            DaemonAttr::McastGroup(g) => d.mcast_group = Some(IpAddr::V4(*g)),
            DaemonAttr::McastGroup6(g) => d.mcast_group = Some(IpAddr::V6(*g)),
            DaemonAttr::McastPort(v) => d.mcast_port = Some(*v),
            DaemonAttr::McastTtl(v) => d.mcast_ttl = Some(*v),
            DaemonAttr::Other(_) => {}
        }
    }
    d.state = match state.ok_or_else(|| missing("daemon state"))? {
        1 => DaemonState::Master,
        2 => DaemonState::Backup,
        s => return Err(DecodeError::from(format!("unknown daemon state {s}"))),
    };
    d.mcast_ifn = ifn.ok_or_else(|| missing("daemon interface"))?;
    Ok(d)
}

impl IpvsMessage {
    fn nested_service(&self) -> Option<&[SvcAttr]> {
        self.attrs.iter().find_map(|a| if let IpvsAttr::Service(v) = a { Some(v.as_slice()) } else { None })
    }
    fn nested_dest(&self) -> Option<&[DestAttr]> {
        self.attrs.iter().find_map(|a| if let IpvsAttr::Dest(v) = a { Some(v.as_slice()) } else { None })
    }
    /// The service of a `NEW_SERVICE` message (a GET_SERVICE reply).
    pub fn service_entry(&self) -> Result<ServiceEntry, DecodeError> {
        service_entry_from_attrs(self.nested_service().ok_or_else(|| missing("CMD_ATTR_SERVICE"))?)
    }
    /// The dest of a `NEW_DEST` message (a GET_DEST reply).
    pub fn dest_entry(&self) -> Result<DestEntry, DecodeError> {
        dest_entry_from_attrs(self.nested_dest().ok_or_else(|| missing("CMD_ATTR_DEST"))?)
    }
    /// The daemon of a `NEW_DAEMON` message (a GET_DAEMON reply).
    pub fn daemon(&self) -> Result<Daemon, DecodeError> {
        let v = self.attrs.iter().find_map(|a| if let IpvsAttr::Daemon(v) = a { Some(v.as_slice()) } else { None });
        daemon_from_attrs(v.ok_or_else(|| missing("CMD_ATTR_DAEMON"))?)
    }
    /// The timeouts of a `SET_CONFIG` message (a GET_CONFIG reply). Absent ones are 0.
    pub fn timeouts(&self) -> Timeouts {
        let mut t = Timeouts::default();
        for a in &self.attrs {
            match a {
                IpvsAttr::TimeoutTcp(v) => t.tcp = *v,
                IpvsAttr::TimeoutTcpFin(v) => t.tcp_fin = *v,
                IpvsAttr::TimeoutUdp(v) => t.udp = *v,
                _ => {}
            }
        }
        t
    }
    /// The info of a `SET_INFO` message (a GET_INFO reply).
    pub fn info(&self) -> Result<Info, DecodeError> {
        let mut version = None;
        let mut size = None;
        for a in &self.attrs {
            match a {
                IpvsAttr::InfoVersion(v) => version = Some(*v),
                IpvsAttr::InfoConnTabSize(v) => size = Some(*v),
                _ => {}
            }
        }
        Ok(Info {
            version: version.ok_or_else(|| missing("INFO_ATTR_VERSION"))?,
            conn_tab_size: size.ok_or_else(|| missing("INFO_ATTR_CONN_TAB_SIZE"))?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Framing.

/// Writes one complete netlink message (nlmsghdr + genlmsghdr + attributes) for `msg`.
pub fn encode_request(msg: &IpvsMessage, family_id: u16, flags: u16, seq: u32) -> Vec<u8> {
    let mut genl = GenlMessage::from_payload(msg.clone());
    genl.set_resolved_family_id(family_id);
    encode_netlink(genl, flags, seq)
}

/// Writes one complete nlctrl message.
pub fn encode_ctrl_request(msg: GenlCtrl, flags: u16, seq: u32) -> Vec<u8> {
    encode_netlink(GenlMessage::from_payload(msg), flags, seq)
}

fn encode_netlink<F>(genl: GenlMessage<F>, flags: u16, seq: u32) -> Vec<u8>
where
    F: GenlFamily + Emitable + std::fmt::Debug,
{
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(genl));
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

/// Extended-ACK information attached to an `NLMSG_ERROR` or `NLMSG_DONE`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtAck {
    /// `NLMSGERR_ATTR_MSG`: human-readable reason.
    pub msg: Option<String>,
    /// `NLMSGERR_ATTR_OFFS`: byte offset of the offending attribute in the request.
    pub offset: Option<u32>,
    /// `NLMSGERR_ATTR_MISS_TYPE`: the missing attribute's type.
    pub missing_type: Option<u32>,
}

const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;
const NLMSGERR_ATTR_MISS_TYPE: u16 = 5;

fn parse_extack(buf: &[u8]) -> ExtAck {
    let mut e = ExtAck::default();
    // Best effort: a malformed TLV ends the walk, it never fails the error it decorates.
    for a in attrs(buf) {
        let Ok((kind, v, _)) = a else { break };
        match kind {
            NLMSGERR_ATTR_MSG => e.msg = get_string(v, "extack msg").ok(),
            NLMSGERR_ATTR_OFFS => e.offset = get_u32(v, "extack offset").ok(),
            NLMSGERR_ATTR_MISS_TYPE => e.missing_type = get_u32(v, "extack missing type").ok(),
            _ => {}
        }
    }
    e
}

/// What one netlink message in a received datagram is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// An IPVS family message.
    Ipvs(IpvsMessage),
    /// An nlctrl message.
    Ctrl(GenlCtrl),
    /// `NLMSG_ERROR`: `errno` 0 is an ACK, otherwise a negative errno.
    Error {
        /// 0 or `-errno`.
        errno: i32,
        /// Extended ACK TLVs, if the kernel sent any.
        extack: ExtAck,
    },
    /// `NLMSG_DONE` ends a dump; `errno` is 0 or the dump's error.
    Done {
        /// 0 or `-errno`.
        errno: i32,
        /// Extended ACK TLVs.
        extack: ExtAck,
    },
    /// `NLMSG_NOOP`.
    Noop,
    /// `NLMSG_OVERRUN`.
    Overrun,
    /// A message of another type, or one that failed to decode (`error` says why).
    Unknown {
        /// `nlmsg_type`.
        msg_type: u16,
        /// Decode error, if this was meant to be an IPVS/nlctrl message.
        error: Option<String>,
    },
}

/// One netlink message of a received datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// `nlmsg_seq`.
    pub seq: u32,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// Content.
    pub kind: FrameKind,
}

fn parse_error_payload(p: &[u8], flags: u16) -> Result<(i32, ExtAck), DecodeError> {
    ck(p, 4, "NLMSG_ERROR")?;
    let errno = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
    let mut extack = ExtAck::default();
    if flags & NLM_F_ACK_TLVS != 0 {
        // errno, then the original header (and its payload unless capped), then TLVs.
        let orig = &p[4..];
        ck(orig, 16, "NLMSG_ERROR original header")?;
        let orig_len = u32::from_ne_bytes([orig[0], orig[1], orig[2], orig[3]]) as usize;
        let skip = if flags & NLM_F_CAPPED != 0 { 16 } else { orig_len.max(16) };
        let skip = (skip + 3) & !3;
        if let Some(tlvs) = orig.get(skip..) {
            extack = parse_extack(tlvs);
        }
    }
    Ok((errno, extack))
}

fn parse_one(msg_type: u16, flags: u16, payload: &[u8], family_id: u16) -> FrameKind {
    let unknown = |e: DecodeError| FrameKind::Unknown { msg_type, error: Some(e.to_string()) };
    match msg_type {
        NLMSG_NOOP => FrameKind::Noop,
        NLMSG_OVERRUN => FrameKind::Overrun,
        NLMSG_ERROR => match parse_error_payload(payload, flags) {
            Ok((errno, extack)) => FrameKind::Error { errno, extack },
            Err(e) => unknown(e),
        },
        NLMSG_DONE => {
            let errno = payload.get(..4).map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
            let extack = if flags & NLM_F_ACK_TLVS != 0 {
                parse_extack(payload.get(4..).unwrap_or(&[]))
            } else {
                ExtAck::default()
            };
            FrameKind::Done { errno, extack }
        }
        t if t == family_id && family_id != 0 => {
            match GenlHeader::parse(payload).and_then(|h| IpvsMessage::parse_with_param(&payload[4..], h)) {
                Ok(m) => FrameKind::Ipvs(m),
                Err(e) => unknown(e),
            }
        }
        GENL_ID_CTRL => match GenlHeader::parse(payload).and_then(|h| GenlCtrl::parse_with_param(&payload[4..], h)) {
            Ok(m) => FrameKind::Ctrl(m),
            Err(e) => unknown(e),
        },
        _ => FrameKind::Unknown { msg_type, error: None },
    }
}

/// Splits a received datagram into frames. Messages of type `family_id` are decoded as IPVS,
/// type 16 as nlctrl. A message that fails to decode becomes `FrameKind::Unknown` with the
/// reason (its seq is still known, so the caller can fail the right request); a broken
/// netlink header ends the datagram with `Err`. Never panics.
pub fn parse_datagram(buf: &[u8], family_id: u16) -> Vec<Result<Frame, DecodeError>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        let nl = match NetlinkBuffer::new_checked(&buf[off..]) {
            Ok(nl) => nl,
            Err(e) => {
                out.push(Err(e));
                break;
            }
        };
        let len = nl.length() as usize;
        let kind = parse_one(nl.message_type(), nl.flags(), nl.payload(), family_id);
        out.push(Ok(Frame { seq: nl.sequence_number(), flags: nl.flags(), kind }));
        off += (len + 3) & !3;
    }
    out
}

#[cfg(test)]
mod tests;
