//! VRRP's contact with the kernel (Linux, tokio): raw protocol-112 sockets,
//! gratuitous ARP and unsolicited neighbour advertisements over AF_PACKET,
//! VIPs and link state over rtnetlink. Frames are built by pure functions
//! (tested below); everything else is thin.
//!
//! IPv4 adverts are sent with `IP_HDRINCL`: the packet's TTL (255), TOS
//! (0xc0) and source address are exactly what we wrote, whatever the routing
//! table or the VIPs on the interface would make the kernel choose. The
//! source matters twice: it is the equal-priority tie-break and it is in the
//! v3 checksum's pseudo-header. Received IPv4 packets include their header,
//! so the TTL is checked there; IPv6 gets the hop limit and destination from
//! `IPV6_RECVHOPLIMIT` / `IPV6_RECVPKTINFO` control messages and sends with
//! its source pinned by an `IPV6_PKTINFO` control message.
//!
//! VIPs, link state and addresses use `rtnetlink` directly until the shared
//! `lbd::net` helpers land; the surface here is small on purpose.

use std::collections::BTreeMap;
use std::io::{self, IoSlice, IoSliceMut, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::packet::{self, checksum_with_pseudo};
use crate::config::IfAddr;

/// An interface as the kernel shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// ifindex.
    pub index: u32,
    /// Administratively up with carrier (IFF_UP and IFF_LOWER_UP).
    pub up: bool,
    /// Hardware address.
    pub mac: Option<[u8; 6]>,
    /// Usable addresses with prefix length, in kernel order (primary first);
    /// tentative IPv6 addresses are left out.
    pub addrs: Vec<(IpAddr, u8)>,
}

/// Interfaces by name.
pub type Links = BTreeMap<String, LinkInfo>;

/// An rtnetlink handle on the current tokio runtime.
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

fn nl_err(e: rtnetlink::Error) -> String {
    e.to_string()
}

fn errno_of(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

impl Netlink {
    /// Opens a connection (its task runs on the current runtime).
    pub fn new() -> io::Result<Self> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// Every interface with its state and addresses.
    pub async fn links(&self) -> Result<Links, String> {
        let mut by_index: BTreeMap<u32, (String, LinkInfo)> = BTreeMap::new();
        let mut s = self.handle.link().get().execute();
        while let Some(m) = s.try_next().await.map_err(nl_err)? {
            let mut info = LinkInfo {
                index: m.header.index,
                up: m.header.flags.contains(LinkFlags::Up) && m.header.flags.contains(LinkFlags::LowerUp),
                ..Default::default()
            };
            let mut name = String::new();
            for a in &m.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = n.clone(),
                    LinkAttribute::Address(b) if b.len() == 6 => {
                        let mut mac = [0u8; 6];
                        mac.copy_from_slice(b);
                        info.mac = Some(mac);
                    }
                    _ => {}
                }
            }
            by_index.insert(info.index, (name, info));
        }
        let mut s = self.handle.address().get().execute();
        while let Some(m) = s.try_next().await.map_err(nl_err)? {
            let addr = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let addr = addr.or_else(|| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            // A tentative address (IPv6 DAD running) cannot be a source yet.
            let tentative = m.attributes.iter().any(|a| match a {
                AddressAttribute::Flags(f) => f.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed),
                _ => false,
            });
            if let (Some(ip), Some((_, l)), false) = (addr, by_index.get_mut(&m.header.index), tentative) {
                l.addrs.push((ip, m.header.prefix_len));
            }
        }
        Ok(by_index.into_values().collect())
    }

    fn message(index: u32, a: &IfAddr) -> AddressMessage {
        match a.addr {
            IpAddr::V4(x) => {
                rtnetlink::AddressMessageBuilder::<Ipv4Addr>::new().index(index).address(x, a.prefix).build()
            }
            IpAddr::V6(x) => {
                rtnetlink::AddressMessageBuilder::<Ipv6Addr>::new().index(index).address(x, a.prefix).build()
            }
        }
    }

    /// Adds a VIP (already present is fine). IPv6 VIPs skip DAD so they are
    /// usable (and announceable) at once, as keepalived does.
    pub async fn add_addr(&self, index: u32, a: &IfAddr, label: Option<&str>) -> Result<(), String> {
        let mut req = self.handle.address().add(index, a.addr, a.prefix);
        let msg = req.message_mut();
        if let Some(l) = label {
            msg.attributes.push(AddressAttribute::Label(l.to_string()));
        }
        if a.addr.is_ipv6() {
            msg.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match req.execute().await {
            Err(e) if errno_of(&e) == Some(libc::EEXIST) => Ok(()),
            r => r.map_err(nl_err),
        }
    }

    /// Removes a VIP (absent is fine).
    pub async fn del_addr(&self, index: u32, a: &IfAddr) -> Result<(), String> {
        match self.handle.address().del(Self::message(index, a)).execute().await {
            Err(e) if matches!(errno_of(&e), Some(libc::EADDRNOTAVAIL | libc::ENOENT | libc::ENODEV)) => Ok(()),
            r => r.map_err(nl_err),
        }
    }
}

/// A stream of "something about links or addresses changed" notices.
pub fn monitor() -> io::Result<futures::channel::mpsc::UnboundedReceiver<()>> {
    use rtnetlink::MulticastGroup as G;
    let (conn, _handle, mut messages) = rtnetlink::new_multicast_connection(&[G::Link, G::Ipv4Ifaddr, G::Ipv6Ifaddr])?;
    tokio::spawn(conn);
    let (tx, rx) = futures::channel::mpsc::unbounded();
    tokio::spawn(async move {
        use futures::StreamExt;
        while messages.next().await.is_some() {
            if tx.unbounded_send(()).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// What one receive returned.
#[derive(Clone, Copy, Debug)]
pub enum Rx {
    /// IPv4: the whole packet (header included) is in the buffer.
    V4 {
        /// Bytes.
        len: usize,
    },
    /// IPv6: the VRRP message is in the buffer.
    V6 {
        /// Bytes.
        len: usize,
        /// Source.
        src: Ipv6Addr,
        /// Destination (from IPV6_PKTINFO).
        dst: Ipv6Addr,
        /// Hop limit (from IPV6_HOPLIMIT).
        hop_limit: u8,
    },
}

/// A raw protocol-112 socket bound to one interface and joined to the
/// VRRP group there.
pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
}

impl VrrpSocket {
    /// IPv4: receive with header, send with `IP_HDRINCL`.
    pub fn open_v4(ifname: &str, ifindex: u32) -> io::Result<Self> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(i32::from(packet::PROTO))))?;
        s.bind_device(Some(ifname.as_bytes()))?;
        s.join_multicast_v4_n(&packet::MCAST_V4, &InterfaceIndexOrAddress::Index(ifindex))?;
        s.set_multicast_loop_v4(false)?;
        s.set_header_included_v4(true)?;
        s.set_nonblocking(true)?;
        Ok(VrrpSocket { fd: register(s)?, ifindex })
    }

    /// IPv6: hop limit and destination come in control messages.
    pub fn open_v6(ifname: &str, ifindex: u32) -> io::Result<Self> {
        use nix::sys::socket::{setsockopt, sockopt};
        let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(i32::from(packet::PROTO))))?;
        s.bind_device(Some(ifname.as_bytes()))?;
        s.join_multicast_v6(&packet::MCAST_V6, ifindex)?;
        s.set_multicast_loop_v6(false)?;
        s.set_multicast_hops_v6(u32::from(packet::TTL))?;
        s.set_unicast_hops_v6(u32::from(packet::TTL))?;
        setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true)?;
        setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true)?;
        s.set_nonblocking(true)?;
        Ok(VrrpSocket { fd: register(s)?, ifindex })
    }

    /// The interface it is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Waits for the next packet.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Rx> {
        let v6 = self.fd.get_ref().domain()? == Domain::IPV6;
        self.fd
            .async_io(Interest::READABLE, |s| {
                if !v6 {
                    let mut r: &Socket = s;
                    return r.read(buf).map(|len| Rx::V4 { len });
                }
                use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrIn6, recvmsg};
                let mut cmsg = nix::cmsg_space!(libc::c_int, libc::in6_pktinfo);
                let mut iov = [IoSliceMut::new(buf)];
                let m = recvmsg::<SockaddrIn6>(s.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty())
                    .map_err(io::Error::from)?;
                let (mut hop_limit, mut dst) = (0u8, Ipv6Addr::UNSPECIFIED);
                for c in m.cmsgs().map_err(io::Error::from)? {
                    match c {
                        ControlMessageOwned::Ipv6HopLimit(h) => hop_limit = h.clamp(0, 255) as u8,
                        ControlMessageOwned::Ipv6PacketInfo(pi) => dst = Ipv6Addr::from(pi.ipi6_addr.s6_addr),
                        _ => {}
                    }
                }
                let src = m.address.map(|a| a.ip()).unwrap_or(Ipv6Addr::UNSPECIFIED);
                Ok(Rx::V6 { len: m.bytes, src, dst, hop_limit })
            })
            .await
    }

    /// Sends a whole IPv4 packet (built by [`packet::encode_ipv4`]).
    pub fn send_v4(&self, pkt: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        self.fd.get_ref().send_to(pkt, &SockAddr::from(SocketAddrV4::new(dst, 0))).map(drop)
    }

    /// Sends a VRRP message from `src` (pinned with IPV6_PKTINFO).
    pub fn send_v6(&self, msg: &[u8], src: Ipv6Addr, dst: Ipv6Addr) -> io::Result<()> {
        use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrIn6, sendmsg};
        let info =
            libc::in6_pktinfo { ipi6_addr: libc::in6_addr { s6_addr: src.octets() }, ipi6_ifindex: self.ifindex };
        let to = SockaddrIn6::from(std::net::SocketAddrV6::new(dst, 0, 0, self.ifindex));
        sendmsg(
            self.fd.get_ref().as_raw_fd(),
            &[IoSlice::new(msg)],
            &[ControlMessage::Ipv6PacketInfo(&info)],
            MsgFlags::empty(),
            Some(&to),
        )
        .map(drop)
        .map_err(io::Error::from)
    }
}

/// Hands a socket to tokio's reactor.
fn register(s: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `s` owns a valid, open descriptor; the AsyncFd owns `s` and
    // nothing closes or replaces the descriptor while it is registered (the
    // safe constructor is deprecated for lacking exactly this promise).
    #[allow(unsafe_code)]
    unsafe {
        AsyncFd::register_with_interest(s, Interest::READABLE).map_err(io::Error::from)
    }
}

/// An AF_PACKET socket that only sends (protocol 0: the kernel queues
/// nothing to it).
pub struct L2Sender {
    sock: Socket,
}

impl L2Sender {
    /// Opens it.
    pub fn open() -> io::Result<Self> {
        Ok(L2Sender { sock: Socket::new(Domain::PACKET, Type::RAW, None)? })
    }

    /// Sends a complete Ethernet frame out of `ifindex`.
    pub fn send(&self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        if frame.len() < 14 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "short frame"));
        }
        let mut st = socket2::SockAddrStorage::zeroed();
        // SAFETY: SockAddrStorage is a sockaddr_storage, which is larger and
        // more aligned than sockaddr_ll; viewing zeroed storage as a plain C
        // struct is sound. socket2 has no constructor for AF_PACKET addresses.
        #[allow(unsafe_code)]
        let ll = unsafe { st.view_as::<libc::sockaddr_ll>() };
        ll.sll_family = libc::AF_PACKET as u16;
        ll.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
        ll.sll_ifindex = ifindex as i32;
        ll.sll_halen = 6;
        ll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: the storage holds an initialized sockaddr_ll and the length
        // says exactly that.
        #[allow(unsafe_code)]
        let addr = unsafe { SockAddr::new(st, std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t) };
        self.sock.send_to(frame, &addr).map(drop)
    }
}

/// Gratuitous ARP as keepalived sends it (`vrrp_arp.c`): a broadcast ARP
/// request whose sender and target are both the VIP.
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    f[32..38].copy_from_slice(&[0xff; 6]);
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// Unsolicited neighbour advertisement (RFC 4861 §7.2.6) for a VIP, to all
/// nodes, Override set, with our link-layer address.
pub fn na_frame(mac: [u8; 6], ip: Ipv6Addr) -> [u8; 86] {
    let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut f = [0u8; 86];
    f[..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let h = &mut f[14..54];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&32u16.to_be_bytes());
    h[6] = 58; // ICMPv6
    h[7] = 255;
    h[8..24].copy_from_slice(&ip.octets());
    h[24..40].copy_from_slice(&dst.octets());
    let icmp = &mut f[54..86];
    icmp[0] = 136; // neighbour advertisement
    icmp[4] = 0x20; // Override
    icmp[8..24].copy_from_slice(&ip.octets());
    icmp[24] = 2; // target link-layer address option
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&mac);
    let c = checksum_with_pseudo(ip.into(), dst.into(), 58, icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp_frame_matches_keepalived_layout() {
        let f = garp_frame([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 99, 0, 100));
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, // Ethernet: broadcast, ARP
            0, 1, 8, 0, 6, 4, 0, 1, // hrd 1, pro IPv4, hln 6, pln 4, op request
            2, 0, 0, 0, 0, 1, 10, 99, 0, 100, // sha = our MAC, spa = VIP
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 10, 99, 0, 100, // tha = ff.., tpa = VIP
        ];
        assert_eq!(f, want);
    }

    #[test]
    fn na_frame_is_a_valid_unsolicited_override_advertisement() {
        let ip: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let f = na_frame([2, 0, 0, 0, 0, 1], ip);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(f[14 + 7], 255, "hop limit 255 (RFC 4861 7.1.2)");
        let icmp = &f[54..];
        assert_eq!((icmp[0], icmp[1], icmp[4]), (136, 0, 0x20), "NA, code 0, O=1 S=0 R=0");
        assert_eq!(&icmp[8..24], &ip.octets());
        let dst: Ipv6Addr = "ff02::1".parse().unwrap();
        assert_eq!(checksum_with_pseudo(ip.into(), dst.into(), 58, icmp), 0, "checksum verifies");
    }
}
