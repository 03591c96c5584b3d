//! IPVS objects as the kernel sees them (what `IPVS_CMD_*` carry), independent
//! of the wire encoding. Reconcile compares these; the codec encodes them.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// Service flags (`IP_VS_SVC_F_*`).
pub mod svc_flags {
    /// Persistent service.
    pub const PERSISTENT: u32 = 0x1;
    /// Hashed entry (set by the kernel, never by us).
    pub const HASHED: u32 = 0x2;
    /// One-packet scheduling.
    pub const ONEPACKET: u32 = 0x4;
    /// Scheduler flag 1 (sh-fallback / mh-fallback).
    pub const SCHED1: u32 = 0x8;
    /// Scheduler flag 2 (sh-port / mh-port).
    pub const SCHED2: u32 = 0x10;
    /// Scheduler flag 3.
    pub const SCHED3: u32 = 0x20;
    /// Flags lbd manages; others (HASHED) are the kernel's business.
    pub const MANAGED: u32 = PERSISTENT | ONEPACKET | SCHED1 | SCHED2 | SCHED3;
}

/// Identifies a virtual service: by protocol/address/port, or by fwmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ServiceKey {
    /// `-t|-u|--sctp-service addr:port`.
    Addr {
        /// IANA protocol number (6, 17, 132).
        protocol: u16,
        /// Virtual address (its family is the service's AF).
        addr: IpAddr,
        /// Virtual port (0 = all ports, persistent services only).
        port: u16,
    },
    /// `-f mark [-6]`.
    Fwmark {
        /// `AF_INET` or `AF_INET6`.
        af: u16,
        /// Firewall mark.
        mark: u32,
    },
}

impl ServiceKey {
    /// The service's address family.
    pub fn af(&self) -> u16 {
        match self {
            ServiceKey::Addr { addr, .. } => {
                if addr.is_ipv4() {
                    AF_INET
                } else {
                    AF_INET6
                }
            }
            ServiceKey::Fwmark { af, .. } => *af,
        }
    }
}

impl fmt::Display for ServiceKey {
    /// `TCP 192.0.2.1:80`, `UDP [2001:db8::1]:53`, `FWM 300` (ipvsadm -Ln style).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { protocol, addr, port } => {
                let p = match protocol {
                    6 => "TCP",
                    17 => "UDP",
                    132 => "SCTP",
                    _ => "?",
                };
                match addr {
                    IpAddr::V4(a) => write!(f, "{p} {a}:{port}"),
                    IpAddr::V6(a) => write!(f, "{p} [{a}]:{port}"),
                }
            }
            ServiceKey::Fwmark { af, mark } => {
                if *af == AF_INET6 {
                    write!(f, "FWM {mark} IPv6")
                } else {
                    write!(f, "FWM {mark}")
                }
            }
        }
    }
}

/// A full virtual service (everything NEW/SET_SERVICE needs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Identity.
    pub key: ServiceKey,
    /// Scheduler name (`rr`, `wlc`, ...).
    pub sched: String,
    /// `IP_VS_SVC_F_*` flags (compare with `svc_flags::MANAGED` masked).
    pub flags: u32,
    /// Persistence timeout, seconds (0 when not persistent).
    pub timeout: u32,
    /// Persistence granularity: IPv4 netmask as a host-order u32
    /// (`0xffffffff` = /32), IPv6 prefix length (128 = /128).
    pub netmask: u32,
    /// Persistence engine (`sip`), if any.
    pub pe_name: Option<String>,
}

/// Forwarding method (`IP_VS_CONN_F_*` & `FWD_MASK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Fwd {
    /// NAT.
    Masq,
    /// Local node.
    Local,
    /// IP tunnel.
    Tunnel,
    /// Direct routing.
    Route,
    /// Cache bypass.
    Bypass,
}

impl Fwd {
    /// Kernel value.
    pub fn bits(self) -> u32 {
        match self {
            Fwd::Masq => 0,
            Fwd::Local => 1,
            Fwd::Tunnel => 2,
            Fwd::Route => 3,
            Fwd::Bypass => 4,
        }
    }
    /// From the kernel value (masked with `FWD_MASK` = 7).
    pub fn from_bits(v: u32) -> Option<Self> {
        Some(match v & 7 {
            0 => Fwd::Masq,
            1 => Fwd::Local,
            2 => Fwd::Tunnel,
            3 => Fwd::Route,
            4 => Fwd::Bypass,
            _ => return None,
        })
    }
    /// ipvsadm's name for it (`Route`, `Masq`, `Tunnel`, `Local`, `Bypass`).
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Fwd::Masq => "Masq",
            Fwd::Local => "Local",
            Fwd::Tunnel => "Tunnel",
            Fwd::Route => "Route",
            Fwd::Bypass => "Bypass",
        }
    }
}

/// Tunnel encapsulation (`IP_VS_CONN_F_TUNNEL_TYPE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TunType {
    /// IP-in-IP (0).
    Ipip,
    /// GUE (1).
    Gue,
    /// GRE (2).
    Gre,
}

impl TunType {
    /// Kernel value.
    pub fn value(self) -> u8 {
        match self {
            TunType::Ipip => 0,
            TunType::Gue => 1,
            TunType::Gre => 2,
        }
    }
    /// From the kernel value.
    pub fn from_value(v: u8) -> Option<Self> {
        Some(match v {
            0 => TunType::Ipip,
            1 => TunType::Gue,
            2 => TunType::Gre,
            _ => return None,
        })
    }
}

/// Tunnel checksum flags (`IP_VS_TUNNEL_ENCAP_FLAG_*`).
pub mod tun_flags {
    /// No checksum.
    pub const NOCSUM: u16 = 0;
    /// Checksum.
    pub const CSUM: u16 = 1;
    /// Remote checksum offload.
    pub const REMCSUM: u16 = 2;
}

/// A real server (destination) of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dest {
    /// Address.
    pub addr: IpAddr,
    /// Port.
    pub port: u16,
    /// Forwarding method.
    pub fwd: Fwd,
    /// Weight (0 = quiesced).
    pub weight: u32,
    /// Upper connection threshold (0 = none).
    pub u_thresh: u32,
    /// Lower connection threshold (0 = none).
    pub l_thresh: u32,
    /// Tunnel type (TUN only).
    pub tun_type: TunType,
    /// GUE port (TUN/GUE only).
    pub tun_port: u16,
    /// Tunnel checksum flags.
    pub tun_flags: u16,
}

impl Dest {
    /// The dest's address family.
    pub fn af(&self) -> u16 {
        if self.addr.is_ipv4() { AF_INET } else { AF_INET6 }
    }
}

/// Traffic counters (from STATS64 when the kernel has it, else STATS).
/// A missing field reads as 0 (the console reads these from the socket).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Incoming packets.
    pub inpkts: u64,
    /// Outgoing packets.
    pub outpkts: u64,
    /// Incoming bytes.
    pub inbytes: u64,
    /// Outgoing bytes.
    pub outbytes: u64,
    /// Connections per second (2 s estimator).
    pub cps: u64,
    /// Incoming packets per second.
    pub inpps: u64,
    /// Outgoing packets per second.
    pub outpps: u64,
    /// Incoming bytes per second.
    pub inbps: u64,
    /// Outgoing bytes per second.
    pub outbps: u64,
}

/// A service as dumped from the kernel: its definition and live counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// Definition.
    pub svc: Service,
    /// Counters.
    pub stats: Stats,
}

/// A dest as dumped from the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestEntry {
    /// Definition.
    pub dest: Dest,
    /// Active connections.
    pub active_conns: u32,
    /// Inactive connections.
    pub inact_conns: u32,
    /// Persistence templates pointing at it.
    pub persist_conns: u32,
    /// Counters.
    pub stats: Stats,
}

/// `IPVS_CMD_GET_INFO` reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// `IP_VS_VERSION_CODE`, e.g. 0x010201 = 1.2.1.
    pub version: u32,
    /// Connection hash table size.
    pub conn_tab_size: u32,
}

/// IPVS connection timeouts, seconds (`GET/SET_CONFIG`; 0 in SET = unchanged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Established TCP.
    pub tcp: u32,
    /// TCP FIN_WAIT.
    pub tcp_fin: u32,
    /// UDP.
    pub udp: u32,
}

/// Sync daemon state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaemonState {
    /// `IP_VS_STATE_MASTER` (1).
    Master,
    /// `IP_VS_STATE_BACKUP` (2).
    Backup,
}

/// A connection-sync daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Daemon {
    /// Master or backup.
    pub state: DaemonState,
    /// Interface it sends/receives on.
    pub mcast_ifn: String,
    /// Sync id (0..=255).
    pub sync_id: u32,
    /// Max sync message length.
    pub sync_maxlen: Option<u16>,
    /// Multicast group (default 224.0.0.81).
    pub mcast_group: Option<IpAddr>,
    /// UDP port (default 8848).
    pub mcast_port: Option<u16>,
    /// Multicast TTL (default 1).
    pub mcast_ttl: Option<u8>,
}
