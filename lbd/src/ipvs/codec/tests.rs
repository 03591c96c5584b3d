//! Byte fixtures for every IPVS message kind, written from the uapi tables
//! (`include/uapi/linux/ip_vs.h`) and `ip_vs_ctl.c` (attribute order of replies), little endian
//! (x86_64). Each test checks parse(bytes) == expected and emit(expected) == bytes.
//! The family id is a placeholder, 0x0020.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::{AssertUnwindSafe, catch_unwind};

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTIPART, NLM_F_REQUEST};

use super::*;
use crate::ipvs::types::tun_flags;

const FAM: u16 = 0x20;
const REQ_ACK: u16 = NLM_F_REQUEST | NLM_F_ACK;
const REQ_DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}
fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

/// parse(bytes) == (flags, seq, msg) and encode(msg) == bytes (the port id is copied from the
/// fixture, since requests carry 0 and replies the requester's port).
fn roundtrip(bytes: &[u8], flags: u16, seq: u32, expected: &IpvsMessage) {
    let frames = parse_datagram(bytes, FAM);
    assert_eq!(frames.len(), 1, "{frames:?}");
    let frame = frames.into_iter().next().unwrap().unwrap();
    assert_eq!(frame.flags, flags);
    assert_eq!(frame.seq, seq);
    assert_eq!(frame.kind, FrameKind::Ipvs(expected.clone()));
    let mut out = encode_request(expected, FAM, flags, seq);
    out[12..16].copy_from_slice(&bytes[12..16]);
    assert_eq!(out, bytes, "\nemitted  {out:02x?}\nexpected {bytes:02x?}");
}

fn tcp_svc(addr: IpAddr, port: u16) -> ServiceKey {
    ServiceKey::Addr { protocol: 6, addr, port }
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// The verified NEW_SERVICE bytes from the reference sheet (TCP 192.0.2.10:21 rr, /32).
#[rustfmt::skip]
static NEW_SERVICE: &[u8] = &[
    0x68, 0x00, 0x00, 0x00, // nlmsg_len 104
    0x20, 0x00,             // nlmsg_type: family id
    0x05, 0x00,             // flags REQUEST|ACK
    0x01, 0x00, 0x00, 0x00, // seq 1
    0x00, 0x00, 0x00, 0x00, // pid 0
    0x01, 0x01, 0x00, 0x00, // genl: cmd NEW_SERVICE(1), version 1, reserved
    0x54, 0x00, 0x01, 0x00, // CMD_ATTR_SERVICE, len 84, no NLA_F_NESTED
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, // SVC_ATTR_AF u16 AF_INET + pad
    0x06, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, // SVC_ATTR_PROTOCOL u16 TCP + pad
    0x14, 0x00, 0x03, 0x00,                         // SVC_ATTR_ADDR, 16 bytes:
    0xc0, 0x00, 0x02, 0x0a,                         //   192.0.2.10
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // zero padding
    0x06, 0x00, 0x04, 0x00, 0x00, 0x15, 0x00, 0x00, // SVC_ATTR_PORT be16 21 + pad
    0x07, 0x00, 0x06, 0x00, b'r', b'r', 0x00, 0x00, // SVC_ATTR_SCHED_NAME "rr\0" + pad
    0x0c, 0x00, 0x07, 0x00,                         // SVC_ATTR_FLAGS {flags, mask}
    0x00, 0x00, 0x00, 0x00,                         //   flags 0
    0xff, 0xff, 0xff, 0xff,                         //   mask ~0
    0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, // SVC_ATTR_TIMEOUT 0
    0x08, 0x00, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, // SVC_ATTR_NETMASK 255.255.255.255
];

#[test]
fn new_service_verified_bytes() {
    let svc = Service {
        key: tcp_svc(v4(192, 0, 2, 10), 21),
        sched: "rr".into(),
        flags: 0,
        timeout: 0,
        netmask: 0xffff_ffff,
        pe_name: None,
    };
    let msg = IpvsMessage::new_service(&svc);
    assert_eq!(
        msg,
        IpvsMessage {
            cmd: IpvsCmd::NewService,
            attrs: vec![IpvsAttr::Service(vec![
                SvcAttr::Af(AF_INET),
                SvcAttr::Protocol(6),
                SvcAttr::Addr(v4(192, 0, 2, 10)),
                SvcAttr::Port(21),
                SvcAttr::SchedName("rr".into()),
                SvcAttr::Flags(SvcFlags { flags: 0, mask: u32::MAX }),
                SvcAttr::Timeout(0),
                SvcAttr::Netmask(Netmask::V4(0xffff_ffff)),
            ])],
        }
    );
    roundtrip(NEW_SERVICE, REQ_ACK, 1, &msg);
}

#[test]
fn new_service_never_sends_hashed() {
    let svc = Service {
        key: tcp_svc(v4(192, 0, 2, 10), 21),
        sched: "rr".into(),
        flags: svc_flags::HASHED,
        timeout: 0,
        netmask: 0xffff_ffff,
        pe_name: None,
    };
    // HASHED set on input (e.g. a service read back and re-sent) must not reach the kernel.
    assert_eq!(encode_request(&IpvsMessage::new_service(&svc), FAM, REQ_ACK, 1), NEW_SERVICE);
}

/// SET_SERVICE: UDP [2001:db8::1]:53, sh with sh-fallback|sh-port, persistent 300 s, /64, pe sip.
#[rustfmt::skip]
static SET_SERVICE_V6: &[u8] = &[
    0x70, 0x00, 0x00, 0x00, // nlmsg_len 112
    0x20, 0x00,             // family id
    0x05, 0x00,             // REQUEST|ACK
    0x02, 0x00, 0x00, 0x00, // seq 2
    0x00, 0x00, 0x00, 0x00, // pid 0
    0x02, 0x01, 0x00, 0x00, // genl: cmd SET_SERVICE(2), version 1
    0x5c, 0x00, 0x01, 0x00, // CMD_ATTR_SERVICE, len 92
    0x06, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x00, 0x00, // AF AF_INET6
    0x06, 0x00, 0x02, 0x00, 0x11, 0x00, 0x00, 0x00, // PROTOCOL UDP (17)
    0x14, 0x00, 0x03, 0x00,                         // ADDR 2001:db8::1
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x06, 0x00, 0x04, 0x00, 0x00, 0x35, 0x00, 0x00, // PORT be16 53
    0x07, 0x00, 0x06, 0x00, b's', b'h', 0x00, 0x00, // SCHED_NAME "sh"
    0x08, 0x00, 0x0b, 0x00, b's', b'i', b'p', 0x00, // PE_NAME "sip"
    0x0c, 0x00, 0x07, 0x00,                         // FLAGS
    0x19, 0x00, 0x00, 0x00,                         //   PERSISTENT|SCHED1|SCHED2
    0xff, 0xff, 0xff, 0xff,                         //   mask ~0
    0x08, 0x00, 0x08, 0x00, 0x2c, 0x01, 0x00, 0x00, // TIMEOUT 300
    0x08, 0x00, 0x09, 0x00, 0x40, 0x00, 0x00, 0x00, // NETMASK: prefix 64, host order
];

#[test]
fn set_service_v6_persistent_pe() {
    let svc = Service {
        key: ServiceKey::Addr { protocol: 17, addr: v6("2001:db8::1"), port: 53 },
        sched: "sh".into(),
        flags: svc_flags::PERSISTENT | svc_flags::SCHED1 | svc_flags::SCHED2,
        timeout: 300,
        netmask: 64,
        pe_name: Some("sip".into()),
    };
    let msg = IpvsMessage::set_service(&svc);
    roundtrip(SET_SERVICE_V6, REQ_ACK, 2, &msg);
    assert!(matches!(&msg.attrs[0], IpvsAttr::Service(v) if v.contains(&SvcAttr::Netmask(Netmask::V6(64)))));
}

/// DEL_SERVICE: fwmark 300, IPv6.
#[rustfmt::skip]
static DEL_SERVICE_FWM6: &[u8] = &[
    0x28, 0x00, 0x00, 0x00, // nlmsg_len 40
    0x20, 0x00,             // family id
    0x05, 0x00,             // REQUEST|ACK
    0x03, 0x00, 0x00, 0x00, // seq 3
    0x00, 0x00, 0x00, 0x00, // pid
    0x03, 0x01, 0x00, 0x00, // cmd DEL_SERVICE(3)
    0x14, 0x00, 0x01, 0x00, // CMD_ATTR_SERVICE, len 20
    0x06, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x00, 0x00, // AF AF_INET6
    0x08, 0x00, 0x05, 0x00, 0x2c, 0x01, 0x00, 0x00, // FWMARK 300
];

#[test]
fn del_service_fwmark_v6() {
    let msg = IpvsMessage::del_service(&ServiceKey::Fwmark { af: AF_INET6, mark: 300 });
    roundtrip(DEL_SERVICE_FWM6, REQ_ACK, 3, &msg);
}

/// GET_SERVICE (doit): TCP 198.51.100.1:80.
#[rustfmt::skip]
static GET_SERVICE: &[u8] = &[
    0x44, 0x00, 0x00, 0x00, // nlmsg_len 68
    0x20, 0x00,             // family id
    0x05, 0x00,             // REQUEST|ACK
    0x04, 0x00, 0x00, 0x00, // seq 4
    0x00, 0x00, 0x00, 0x00, // pid
    0x04, 0x01, 0x00, 0x00, // cmd GET_SERVICE(4)
    0x30, 0x00, 0x01, 0x00, // CMD_ATTR_SERVICE, len 48
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, // AF AF_INET
    0x06, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, // PROTOCOL TCP
    0x14, 0x00, 0x03, 0x00,                         // ADDR 198.51.100.1
    0xc6, 0x33, 0x64, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0x00, 0x00, // PORT be16 80
];

#[test]
fn get_service_doit() {
    roundtrip(GET_SERVICE, REQ_ACK, 4, &IpvsMessage::get_service(&tcp_svc(v4(198, 51, 100, 1), 80)));
}

/// Attribute-less requests: (bytes of the genl header, flags, seq, message).
#[rustfmt::skip]
fn bare(cmd: u8, flags: u16, seq: u8) -> Vec<u8> {
    let f = flags.to_le_bytes();
    vec![
        0x14, 0x00, 0x00, 0x00, // nlmsg_len 20
        0x20, 0x00,             // family id
        f[0], f[1],             // flags
        seq, 0x00, 0x00, 0x00,  // seq
        0x00, 0x00, 0x00, 0x00, // pid
        cmd, 0x01, 0x00, 0x00,  // genl header, no attributes
    ]
}

#[test]
fn attribute_less_requests() {
    roundtrip(&bare(4, REQ_DUMP, 5), REQ_DUMP, 5, &IpvsMessage::dump_services()); // GET_SERVICE dump
    roundtrip(&bare(11, REQ_DUMP, 12), REQ_DUMP, 12, &IpvsMessage::dump_daemons()); // GET_DAEMON dump
    roundtrip(&bare(13, REQ_ACK, 14), REQ_ACK, 14, &IpvsMessage::get_config()); // GET_CONFIG
    roundtrip(&bare(15, REQ_ACK, 15), REQ_ACK, 15, &IpvsMessage::get_info()); // GET_INFO
    roundtrip(&bare(16, REQ_ACK, 16), REQ_ACK, 16, &IpvsMessage::zero(None)); // ZERO all
    roundtrip(&bare(17, REQ_ACK, 17), REQ_ACK, 17, &IpvsMessage::flush()); // FLUSH
}

/// NEW_DEST: TCP 192.0.2.10:80 <- 10.0.0.1:80, DR, weight 1.
#[rustfmt::skip]
static NEW_DEST: &[u8] = &[
    0x8c, 0x00, 0x00, 0x00, // nlmsg_len 140
    0x20, 0x00,             // family id
    0x05, 0x00,             // REQUEST|ACK
    0x06, 0x00, 0x00, 0x00, // seq 6
    0x00, 0x00, 0x00, 0x00, // pid
    0x05, 0x01, 0x00, 0x00, // cmd NEW_DEST(5)
    0x30, 0x00, 0x01, 0x00, // CMD_ATTR_SERVICE, len 48
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   AF AF_INET
    0x06, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, //   PROTOCOL TCP
    0x14, 0x00, 0x03, 0x00,                         //   ADDR 192.0.2.10
    0xc0, 0x00, 0x02, 0x0a,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0x00, 0x00, //   PORT 80
    0x48, 0x00, 0x02, 0x00, // CMD_ATTR_DEST, len 72
    0x06, 0x00, 0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, //   ADDR_FAMILY AF_INET (first, as libipvs)
    0x14, 0x00, 0x01, 0x00,                         //   ADDR 10.0.0.1
    0x0a, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x06, 0x00, 0x02, 0x00, 0x00, 0x50, 0x00, 0x00, //   PORT be16 80
    0x08, 0x00, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, //   FWD_METHOD DROUTE (3)
    0x08, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, //   WEIGHT 1
    0x08, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, //   U_THRESH 0
    0x08, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, //   L_THRESH 0
];

fn dr_dest(addr: IpAddr, port: u16, weight: u32) -> Dest {
    Dest {
        addr,
        port,
        fwd: Fwd::Route,
        weight,
        u_thresh: 0,
        l_thresh: 0,
        tun_type: TunType::Ipip,
        tun_port: 0,
        tun_flags: 0,
    }
}

#[test]
fn new_dest_dr() {
    let msg = IpvsMessage::new_dest(&tcp_svc(v4(192, 0, 2, 10), 80), &dr_dest(v4(10, 0, 0, 1), 80, 1));
    roundtrip(NEW_DEST, REQ_ACK, 6, &msg);
}

/// SET_DEST: fwmark 7 (v4) <- 203.0.113.5, tunnel GUE port 6080, csum|remcsum, weight 100,
/// thresholds 1000/10.
#[rustfmt::skip]
static SET_DEST_GUE: &[u8] = &[
    0x88, 0x00, 0x00, 0x00, // nlmsg_len 136
    0x20, 0x00,             // family id
    0x05, 0x00,             // REQUEST|ACK
    0x07, 0x00, 0x00, 0x00, // seq 7
    0x00, 0x00, 0x00, 0x00, // pid
    0x06, 0x01, 0x00, 0x00, // cmd SET_DEST(6)
    0x14, 0x00, 0x01, 0x00, // CMD_ATTR_SERVICE, len 20
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   AF AF_INET
    0x08, 0x00, 0x05, 0x00, 0x07, 0x00, 0x00, 0x00, //   FWMARK 7
    0x60, 0x00, 0x02, 0x00, // CMD_ATTR_DEST, len 96
    0x06, 0x00, 0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, //   ADDR_FAMILY AF_INET
    0x14, 0x00, 0x01, 0x00,                         //   ADDR 203.0.113.5
    0xcb, 0x00, 0x71, 0x05,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x06, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, //   PORT 0
    0x08, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00, //   FWD_METHOD TUNNEL (2)
    0x08, 0x00, 0x04, 0x00, 0x64, 0x00, 0x00, 0x00, //   WEIGHT 100
    0x05, 0x00, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x00, //   TUN_TYPE u8 GUE (1) + pad
    0x06, 0x00, 0x0e, 0x00, 0x17, 0xc0, 0x00, 0x00, //   TUN_PORT be16 6080
    0x06, 0x00, 0x0f, 0x00, 0x03, 0x00, 0x00, 0x00, //   TUN_FLAGS u16 CSUM|REMCSUM
    0x08, 0x00, 0x05, 0x00, 0xe8, 0x03, 0x00, 0x00, //   U_THRESH 1000
    0x08, 0x00, 0x06, 0x00, 0x0a, 0x00, 0x00, 0x00, //   L_THRESH 10
];

#[test]
fn set_dest_tunnel_gue() {
    let d = Dest {
        addr: v4(203, 0, 113, 5),
        port: 0,
        fwd: Fwd::Tunnel,
        weight: 100,
        u_thresh: 1000,
        l_thresh: 10,
        tun_type: TunType::Gue,
        tun_port: 6080,
        tun_flags: tun_flags::CSUM | tun_flags::REMCSUM,
    };
    let msg = IpvsMessage::set_dest(&ServiceKey::Fwmark { af: AF_INET, mark: 7 }, &d);
    roundtrip(SET_DEST_GUE, REQ_ACK, 7, &msg);
}

#[test]
fn tunnel_attributes_follow_libipvs_rules() {
    let kinds = |d: &Dest| -> Vec<u16> { dest_attrs(d).iter().map(|a| a.kind()).collect() };
    let mut d = dr_dest(v4(10, 0, 0, 1), 80, 1);
    assert!(!kinds(&d).contains(&DEST_ATTR_TUN_TYPE), "no tunnel attrs for DR");
    d.fwd = Fwd::Tunnel;
    let k = kinds(&d); // IPIP: type only
    assert!(k.contains(&DEST_ATTR_TUN_TYPE) && !k.contains(&DEST_ATTR_TUN_PORT) && !k.contains(&DEST_ATTR_TUN_FLAGS));
    d.tun_type = TunType::Gre; // GRE: type + flags
    let k = kinds(&d);
    assert!(k.contains(&DEST_ATTR_TUN_TYPE) && !k.contains(&DEST_ATTR_TUN_PORT) && k.contains(&DEST_ATTR_TUN_FLAGS));
    d.tun_type = TunType::Gue; // GUE: all three
    let k = kinds(&d);
    assert!(k.contains(&DEST_ATTR_TUN_TYPE) && k.contains(&DEST_ATTR_TUN_PORT) && k.contains(&DEST_ATTR_TUN_FLAGS));
}

/// DEL_DEST: TCP 192.0.2.10:80, dest [2001:db8::7]:8080 (mixed family, only legal for TUN).
#[rustfmt::skip]
static DEL_DEST: &[u8] = &[
    0x6c, 0x00, 0x00, 0x00, // nlmsg_len 108
    0x20, 0x00,             // family id
    0x05, 0x00,             // REQUEST|ACK
    0x08, 0x00, 0x00, 0x00, // seq 8
    0x00, 0x00, 0x00, 0x00, // pid
    0x07, 0x01, 0x00, 0x00, // cmd DEL_DEST(7)
    0x30, 0x00, 0x01, 0x00, // CMD_ATTR_SERVICE, len 48
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   AF AF_INET
    0x06, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, //   PROTOCOL TCP
    0x14, 0x00, 0x03, 0x00,                         //   ADDR 192.0.2.10
    0xc0, 0x00, 0x02, 0x0a,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0x00, 0x00, //   PORT 80
    0x28, 0x00, 0x02, 0x00, // CMD_ATTR_DEST, len 40
    0x06, 0x00, 0x0b, 0x00, 0x0a, 0x00, 0x00, 0x00, //   ADDR_FAMILY AF_INET6
    0x14, 0x00, 0x01, 0x00,                         //   ADDR 2001:db8::7
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
    0x06, 0x00, 0x02, 0x00, 0x1f, 0x90, 0x00, 0x00, //   PORT be16 8080
];

#[test]
fn del_dest() {
    let msg = IpvsMessage::del_dest(&tcp_svc(v4(192, 0, 2, 10), 80), v6("2001:db8::7"), 8080);
    roundtrip(DEL_DEST, REQ_ACK, 8, &msg);
}

/// GET_DEST (dump) of TCP 192.0.2.10:80.
#[rustfmt::skip]
static GET_DEST: &[u8] = &[
    0x44, 0x00, 0x00, 0x00, // nlmsg_len 68
    0x20, 0x00,             // family id
    0x01, 0x03,             // REQUEST|DUMP (ROOT|MATCH)
    0x09, 0x00, 0x00, 0x00, // seq 9
    0x00, 0x00, 0x00, 0x00, // pid
    0x08, 0x01, 0x00, 0x00, // cmd GET_DEST(8)
    0x30, 0x00, 0x01, 0x00, // CMD_ATTR_SERVICE, len 48
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   AF AF_INET
    0x06, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, //   PROTOCOL TCP
    0x14, 0x00, 0x03, 0x00,                         //   ADDR 192.0.2.10
    0xc0, 0x00, 0x02, 0x0a,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0x00, 0x00, //   PORT 80
];

#[test]
fn get_dest_dump() {
    roundtrip(GET_DEST, REQ_DUMP, 9, &IpvsMessage::dump_dests(&tcp_svc(v4(192, 0, 2, 10), 80)));
}

/// NEW_DAEMON: master on eth0, syncid 5, maxlen 1472, 224.0.0.81:8848, ttl 1.
#[rustfmt::skip]
static NEW_DAEMON: &[u8] = &[
    0x54, 0x00, 0x00, 0x00, // nlmsg_len 84
    0x20, 0x00,             // family id
    0x05, 0x00,             // REQUEST|ACK
    0x0a, 0x00, 0x00, 0x00, // seq 10
    0x00, 0x00, 0x00, 0x00, // pid
    0x09, 0x01, 0x00, 0x00, // cmd NEW_DAEMON(9)
    0x40, 0x00, 0x03, 0x00, // CMD_ATTR_DAEMON, len 64
    0x08, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, //   STATE MASTER
    0x09, 0x00, 0x02, 0x00, b'e', b't', b'h', b'0', //   MCAST_IFN "eth0\0"
    0x00, 0x00, 0x00, 0x00,                         //   (NUL + pad)
    0x08, 0x00, 0x03, 0x00, 0x05, 0x00, 0x00, 0x00, //   SYNC_ID 5
    0x06, 0x00, 0x04, 0x00, 0xc0, 0x05, 0x00, 0x00, //   SYNC_MAXLEN u16 1472
    0x08, 0x00, 0x05, 0x00, 0xe0, 0x00, 0x00, 0x51, //   MCAST_GROUP 224.0.0.81 (in_addr)
    0x06, 0x00, 0x07, 0x00, 0x90, 0x22, 0x00, 0x00, //   MCAST_PORT u16 host order 8848
    0x05, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00, //   MCAST_TTL u8 1
];

fn sample_daemon() -> Daemon {
    Daemon {
        state: DaemonState::Master,
        mcast_ifn: "eth0".into(),
        sync_id: 5,
        sync_maxlen: Some(1472),
        mcast_group: Some(v4(224, 0, 0, 81)),
        mcast_port: Some(8848),
        mcast_ttl: Some(1),
    }
}

#[test]
fn new_daemon() {
    roundtrip(NEW_DAEMON, REQ_ACK, 10, &IpvsMessage::new_daemon(&sample_daemon()));
}

/// DEL_DAEMON backup.
#[rustfmt::skip]
static DEL_DAEMON: &[u8] = &[
    0x20, 0x00, 0x00, 0x00, // nlmsg_len 32
    0x20, 0x00,             // family id
    0x05, 0x00,             // REQUEST|ACK
    0x0b, 0x00, 0x00, 0x00, // seq 11
    0x00, 0x00, 0x00, 0x00, // pid
    0x0a, 0x01, 0x00, 0x00, // cmd DEL_DAEMON(10)
    0x0c, 0x00, 0x03, 0x00, // CMD_ATTR_DAEMON, len 12
    0x08, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   STATE BACKUP
];

#[test]
fn del_daemon() {
    roundtrip(DEL_DAEMON, REQ_ACK, 11, &IpvsMessage::del_daemon(DaemonState::Backup));
}

/// SET_CONFIG tcp 900, tcpfin 120, udp 300. Also the shape of the GET_CONFIG reply.
#[rustfmt::skip]
static SET_CONFIG: &[u8] = &[
    0x2c, 0x00, 0x00, 0x00, // nlmsg_len 44
    0x20, 0x00,             // family id
    0x05, 0x00,             // REQUEST|ACK
    0x0d, 0x00, 0x00, 0x00, // seq 13
    0x00, 0x00, 0x00, 0x00, // pid
    0x0c, 0x01, 0x00, 0x00, // cmd SET_CONFIG(12)
    0x08, 0x00, 0x04, 0x00, 0x84, 0x03, 0x00, 0x00, // CMD_ATTR_TIMEOUT_TCP 900
    0x08, 0x00, 0x05, 0x00, 0x78, 0x00, 0x00, 0x00, // CMD_ATTR_TIMEOUT_TCP_FIN 120
    0x08, 0x00, 0x06, 0x00, 0x2c, 0x01, 0x00, 0x00, // CMD_ATTR_TIMEOUT_UDP 300
];

#[test]
fn set_config_and_get_config_reply() {
    let t = Timeouts { tcp: 900, tcp_fin: 120, udp: 300 };
    let msg = IpvsMessage::set_config(&t);
    roundtrip(SET_CONFIG, REQ_ACK, 13, &msg);
    // The GET_CONFIG reply is the same message (cmd SET_CONFIG, top-level TIMEOUT_*).
    let frame = parse_datagram(SET_CONFIG, FAM).remove(0).unwrap();
    let FrameKind::Ipvs(reply) = frame.kind else { panic!("not ipvs") };
    assert_eq!(reply.timeouts(), t);
}

/// ZERO of one service: fwmark 1, IPv4.
#[rustfmt::skip]
static ZERO_ONE: &[u8] = &[
    0x28, 0x00, 0x00, 0x00, // nlmsg_len 40
    0x20, 0x00,             // family id
    0x05, 0x00,             // REQUEST|ACK
    0x10, 0x00, 0x00, 0x00, // seq 16
    0x00, 0x00, 0x00, 0x00, // pid
    0x10, 0x01, 0x00, 0x00, // cmd ZERO(16)
    0x14, 0x00, 0x01, 0x00, // CMD_ATTR_SERVICE, len 20
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   AF AF_INET
    0x08, 0x00, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00, //   FWMARK 1
];

#[test]
fn zero_one_service() {
    roundtrip(ZERO_ONE, REQ_ACK, 16, &IpvsMessage::zero(Some(&ServiceKey::Fwmark { af: AF_INET, mark: 1 })));
}

// ---------------------------------------------------------------------------------------------
// Replies (attribute order of ip_vs_genl_fill_*; nests without NLA_F_NESTED).

/// A dump message of GET_SERVICE: TCP 192.0.2.10:80 wlc, HASHED, with STATS and STATS64.
/// STATS64 conns exceeds u32 to show that it is preferred over the truncated STATS.
#[rustfmt::skip]
static SERVICE_REPLY: &[u8] = &[
    0x40, 0x01, 0x00, 0x00, // nlmsg_len 320
    0x20, 0x00,             // family id
    0x02, 0x00,             // NLM_F_MULTI
    0x21, 0x00, 0x00, 0x00, // seq 33
    0x34, 0x12, 0x00, 0x00, // pid 0x1234 (the requester's port)
    0x01, 0x01, 0x00, 0x00, // cmd NEW_SERVICE(1)
    0x2c, 0x01, 0x01, 0x00, // CMD_ATTR_SERVICE, len 300
    0x06, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, //   AF AF_INET
    0x06, 0x00, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, //   PROTOCOL TCP
    0x14, 0x00, 0x03, 0x00,                         //   ADDR 192.0.2.10
    0xc0, 0x00, 0x02, 0x0a,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x06, 0x00, 0x04, 0x00, 0x00, 0x50, 0x00, 0x00, //   PORT 80
    0x08, 0x00, 0x06, 0x00, b'w', b'l', b'c', 0x00, //   SCHED_NAME "wlc"
    0x0c, 0x00, 0x07, 0x00,                         //   FLAGS
    0x02, 0x00, 0x00, 0x00,                         //     HASHED
    0xff, 0xff, 0xff, 0xff,                         //     mask ~0
    0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, //   TIMEOUT 0
    0x08, 0x00, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, //   NETMASK /32
    0x5c, 0x00, 0x0a, 0x00,                         //   SVC_ATTR_STATS, len 92
    0x08, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, //     CONNS u32 1 (truncated)
    0x08, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, //     INPKTS u32 2
    0x08, 0x00, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, //     OUTPKTS u32 3
    0x0c, 0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // INBYTES u64 4
    0x0c, 0x00, 0x05, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // OUTBYTES u64 5
    0x08, 0x00, 0x06, 0x00, 0x06, 0x00, 0x00, 0x00, //     CPS u32 6
    0x08, 0x00, 0x07, 0x00, 0x07, 0x00, 0x00, 0x00, //     INPPS u32 7
    0x08, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00, 0x00, //     OUTPPS u32 8
    0x08, 0x00, 0x09, 0x00, 0x09, 0x00, 0x00, 0x00, //     INBPS u32 9
    0x08, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x00, 0x00, //     OUTBPS u32 10
    0x7c, 0x00, 0x0c, 0x00,                         //   SVC_ATTR_STATS64, len 124
    0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, // CONNS 0x1_0000_0001
    0x0c, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // INPKTS 2
    0x0c, 0x00, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // OUTPKTS 3
    0x0c, 0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // INBYTES 4
    0x0c, 0x00, 0x05, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // OUTBYTES 5
    0x0c, 0x00, 0x06, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // CPS 6
    0x0c, 0x00, 0x07, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // INPPS 7
    0x0c, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // OUTPPS 8
    0x0c, 0x00, 0x09, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // INBPS 9
    0x0c, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // OUTBPS 10
];

fn counters(conns: u64) -> Stats {
    Stats { conns, inpkts: 2, outpkts: 3, inbytes: 4, outbytes: 5, cps: 6, inpps: 7, outpps: 8, inbps: 9, outbps: 10 }
}

#[test]
fn service_reply_prefers_stats64_and_clears_hashed() {
    let expected = IpvsMessage {
        cmd: IpvsCmd::NewService,
        attrs: vec![IpvsAttr::Service(vec![
            SvcAttr::Af(AF_INET),
            SvcAttr::Protocol(6),
            SvcAttr::Addr(v4(192, 0, 2, 10)),
            SvcAttr::Port(80),
            SvcAttr::SchedName("wlc".into()),
            SvcAttr::Flags(SvcFlags { flags: svc_flags::HASHED, mask: u32::MAX }),
            SvcAttr::Timeout(0),
            SvcAttr::Netmask(Netmask::V4(0xffff_ffff)),
            SvcAttr::Stats(counters(1)),
            SvcAttr::Stats64(counters(0x1_0000_0001)),
        ])],
    };
    roundtrip(SERVICE_REPLY, NLM_F_MULTIPART, 33, &expected);
    let entry = expected.service_entry().unwrap();
    assert_eq!(
        entry,
        ServiceEntry {
            svc: Service {
                key: tcp_svc(v4(192, 0, 2, 10), 80),
                sched: "wlc".into(),
                flags: 0,
                timeout: 0,
                netmask: 0xffff_ffff,
                pe_name: None,
            },
            stats: counters(0x1_0000_0001),
        }
    );
}

#[test]
fn service_reply_without_stats64_uses_stats() {
    let mut msg = parse_datagram(SERVICE_REPLY, FAM).remove(0).unwrap();
    let FrameKind::Ipvs(ref mut m) = msg.kind else { panic!() };
    let IpvsAttr::Service(v) = &mut m.attrs[0] else { panic!() };
    v.retain(|a| !matches!(a, SvcAttr::Stats64(_)));
    assert_eq!(m.service_entry().unwrap().stats, counters(1));
}

#[test]
fn nested_flag_is_accepted() {
    // The same reply with NLA_F_NESTED set on CMD_ATTR_SERVICE and the stats nests.
    let mut b = SERVICE_REPLY.to_vec();
    b[23] |= 0x80; // CMD_ATTR_SERVICE type high byte
    let stats_at = 20 + 4 + 80; // after the eight scalar attributes
    b[stats_at + 3] |= 0x80;
    let frame = parse_datagram(&b, FAM).remove(0).unwrap();
    let FrameKind::Ipvs(m) = frame.kind else { panic!("{frame:?}") };
    assert_eq!(m.service_entry().unwrap().stats, counters(0x1_0000_0001));
}

/// A dump message of GET_DEST: [2001:db8::2]:8080, NAT, weight 5, thresholds 0, 3/4/1 conns.
#[rustfmt::skip]
static DEST_REPLY: &[u8] = &[
    0x64, 0x01, 0x00, 0x00, // nlmsg_len 356
    0x20, 0x00,             // family id
    0x02, 0x00,             // NLM_F_MULTI
    0x22, 0x00, 0x00, 0x00, // seq 34
    0x34, 0x12, 0x00, 0x00, // pid
    0x05, 0x01, 0x00, 0x00, // cmd NEW_DEST(5)
    0x50, 0x01, 0x02, 0x00, // CMD_ATTR_DEST, len 336
    0x14, 0x00, 0x01, 0x00,                         //   ADDR 2001:db8::2
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
    0x06, 0x00, 0x02, 0x00, 0x1f, 0x90, 0x00, 0x00, //   PORT 8080
    0x08, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, //   FWD_METHOD MASQ (0)
    0x08, 0x00, 0x04, 0x00, 0x05, 0x00, 0x00, 0x00, //   WEIGHT 5
    0x05, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x00, //   TUN_TYPE 0
    0x06, 0x00, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x00, //   TUN_PORT 0
    0x06, 0x00, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, //   TUN_FLAGS 0
    0x08, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, //   U_THRESH 0
    0x08, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, //   L_THRESH 0
    0x08, 0x00, 0x07, 0x00, 0x03, 0x00, 0x00, 0x00, //   ACTIVE_CONNS 3
    0x08, 0x00, 0x08, 0x00, 0x04, 0x00, 0x00, 0x00, //   INACT_CONNS 4
    0x08, 0x00, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, //   PERSIST_CONNS 1
    0x06, 0x00, 0x0b, 0x00, 0x0a, 0x00, 0x00, 0x00, //   ADDR_FAMILY AF_INET6
    0x5c, 0x00, 0x0a, 0x00,                         //   DEST_ATTR_STATS, len 92
    0x08, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00, //     CONNS 7
    0x08, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, //     INPKTS 2
    0x08, 0x00, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, //     OUTPKTS 3
    0x0c, 0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // INBYTES 4
    0x0c, 0x00, 0x05, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // OUTBYTES 5
    0x08, 0x00, 0x06, 0x00, 0x06, 0x00, 0x00, 0x00, //     CPS 6
    0x08, 0x00, 0x07, 0x00, 0x07, 0x00, 0x00, 0x00, //     INPPS 7
    0x08, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00, 0x00, //     OUTPPS 8
    0x08, 0x00, 0x09, 0x00, 0x09, 0x00, 0x00, 0x00, //     INBPS 9
    0x08, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x00, 0x00, //     OUTBPS 10
    0x7c, 0x00, 0x0c, 0x00,                         //   DEST_ATTR_STATS64, len 124
    0x0c, 0x00, 0x01, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // CONNS 7
    0x0c, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // INPKTS 2
    0x0c, 0x00, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // OUTPKTS 3
    0x0c, 0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // INBYTES 4
    0x0c, 0x00, 0x05, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // OUTBYTES 5
    0x0c, 0x00, 0x06, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // CPS 6
    0x0c, 0x00, 0x07, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // INPPS 7
    0x0c, 0x00, 0x08, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // OUTPPS 8
    0x0c, 0x00, 0x09, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // INBPS 9
    0x0c, 0x00, 0x0a, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // OUTBPS 10
];

#[test]
fn dest_reply() {
    let expected = IpvsMessage {
        cmd: IpvsCmd::NewDest,
        attrs: vec![IpvsAttr::Dest(vec![
            DestAttr::Addr(v6("2001:db8::2")),
            DestAttr::Port(8080),
            DestAttr::FwdMethod(0),
            DestAttr::Weight(5),
            DestAttr::TunType(0),
            DestAttr::TunPort(0),
            DestAttr::TunFlags(0),
            DestAttr::UThresh(0),
            DestAttr::LThresh(0),
            DestAttr::ActiveConns(3),
            DestAttr::InactConns(4),
            DestAttr::PersistConns(1),
            DestAttr::AddrFamily(AF_INET6),
            DestAttr::Stats(counters(7)),
            DestAttr::Stats64(counters(7)),
        ])],
    };
    roundtrip(DEST_REPLY, NLM_F_MULTIPART, 34, &expected);
    assert_eq!(
        expected.dest_entry().unwrap(),
        DestEntry {
            dest: Dest {
                addr: v6("2001:db8::2"),
                port: 8080,
                fwd: Fwd::Masq,
                weight: 5,
                u_thresh: 0,
                l_thresh: 0,
                tun_type: TunType::Ipip,
                tun_port: 0,
                tun_flags: 0,
            },
            active_conns: 3,
            inact_conns: 4,
            persist_conns: 1,
            stats: counters(7),
        }
    );
}

/// A dump message of GET_DAEMON (ip_vs_genl_fill_daemon order).
#[rustfmt::skip]
static DAEMON_REPLY: &[u8] = &[
    0x54, 0x00, 0x00, 0x00, // nlmsg_len 84
    0x20, 0x00,             // family id
    0x02, 0x00,             // NLM_F_MULTI
    0x23, 0x00, 0x00, 0x00, // seq 35
    0x34, 0x12, 0x00, 0x00, // pid
    0x09, 0x01, 0x00, 0x00, // cmd NEW_DAEMON(9)
    0x40, 0x00, 0x03, 0x00, // CMD_ATTR_DAEMON, len 64
    0x08, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, //   STATE MASTER
    0x09, 0x00, 0x02, 0x00, b'e', b't', b'h', b'0', //   MCAST_IFN "eth0"
    0x00, 0x00, 0x00, 0x00,
    0x08, 0x00, 0x03, 0x00, 0x05, 0x00, 0x00, 0x00, //   SYNC_ID 5
    0x06, 0x00, 0x04, 0x00, 0xc0, 0x05, 0x00, 0x00, //   SYNC_MAXLEN 1472
    0x06, 0x00, 0x07, 0x00, 0x90, 0x22, 0x00, 0x00, //   MCAST_PORT 8848
    0x05, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00, //   MCAST_TTL 1
    0x08, 0x00, 0x05, 0x00, 0xe0, 0x00, 0x00, 0x51, //   MCAST_GROUP 224.0.0.81
];

#[test]
fn daemon_reply() {
    let expected = IpvsMessage {
        cmd: IpvsCmd::NewDaemon,
        attrs: vec![IpvsAttr::Daemon(vec![
            DaemonAttr::State(1),
            DaemonAttr::McastIfn("eth0".into()),
            DaemonAttr::SyncId(5),
            DaemonAttr::SyncMaxlen(1472),
            DaemonAttr::McastPort(8848),
            DaemonAttr::McastTtl(1),
            DaemonAttr::McastGroup(Ipv4Addr::new(224, 0, 0, 81)),
        ])],
    };
    roundtrip(DAEMON_REPLY, NLM_F_MULTIPART, 35, &expected);
    assert_eq!(expected.daemon().unwrap(), sample_daemon());
}

/// GET_INFO reply: cmd SET_INFO, top-level INFO_ATTR_* (numbers overlap CMD_ATTR_*).
#[rustfmt::skip]
static INFO_REPLY: &[u8] = &[
    0x24, 0x00, 0x00, 0x00, // nlmsg_len 36
    0x20, 0x00,             // family id
    0x00, 0x00,             // no flags (doit reply)
    0x24, 0x00, 0x00, 0x00, // seq 36
    0x34, 0x12, 0x00, 0x00, // pid
    0x0e, 0x01, 0x00, 0x00, // cmd SET_INFO(14)
    0x08, 0x00, 0x01, 0x00, 0x01, 0x02, 0x01, 0x00, // INFO_ATTR_VERSION 0x010201 (1.2.1)
    0x08, 0x00, 0x02, 0x00, 0x00, 0x10, 0x00, 0x00, // INFO_ATTR_CONN_TAB_SIZE 4096
];

#[test]
fn info_reply() {
    let expected = IpvsMessage {
        cmd: IpvsCmd::SetInfo,
        attrs: vec![IpvsAttr::InfoVersion(0x010201), IpvsAttr::InfoConnTabSize(4096)],
    };
    roundtrip(INFO_REPLY, 0, 36, &expected);
    assert_eq!(expected.info().unwrap(), Info { version: 0x010201, conn_tab_size: 4096 });
}

// ---------------------------------------------------------------------------------------------
// Control messages.

/// An ACK (capped), an EEXIST error with extack TLVs, and a DONE, in one datagram.
#[rustfmt::skip]
static ACK_ERR_DONE: &[u8] = &[
    // ACK of seq 1
    0x24, 0x00, 0x00, 0x00, // nlmsg_len 36
    0x02, 0x00,             // NLMSG_ERROR
    0x00, 0x01,             // NLM_F_CAPPED
    0x01, 0x00, 0x00, 0x00, // seq 1
    0x34, 0x12, 0x00, 0x00, // pid
    0x00, 0x00, 0x00, 0x00, // error 0 = ACK
    0x68, 0x00, 0x00, 0x00, 0x20, 0x00, 0x05, 0x00, // original header (len 104, ...)
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    // error of seq 2 with extack
    0x3c, 0x00, 0x00, 0x00, // nlmsg_len 60
    0x02, 0x00,             // NLMSG_ERROR
    0x00, 0x03,             // NLM_F_CAPPED | NLM_F_ACK_TLVS
    0x02, 0x00, 0x00, 0x00, // seq 2
    0x34, 0x12, 0x00, 0x00, // pid
    0xef, 0xff, 0xff, 0xff, // error -17 (EEXIST)
    0x68, 0x00, 0x00, 0x00, 0x20, 0x00, 0x05, 0x00, // original header only (capped)
    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x0d, 0x00, 0x01, 0x00, b'b', b'a', b'd', b' ', // NLMSGERR_ATTR_MSG "bad attr\0"
    b'a', b't', b't', b'r', 0x00, 0x00, 0x00, 0x00,
    0x08, 0x00, 0x02, 0x00, 0x18, 0x00, 0x00, 0x00, // NLMSGERR_ATTR_OFFS 24
    // DONE of seq 3
    0x14, 0x00, 0x00, 0x00, // nlmsg_len 20
    0x03, 0x00,             // NLMSG_DONE
    0x02, 0x00,             // NLM_F_MULTI
    0x03, 0x00, 0x00, 0x00, // seq 3
    0x34, 0x12, 0x00, 0x00, // pid
    0x00, 0x00, 0x00, 0x00, // status 0
];

#[test]
fn ack_error_done_in_one_datagram() {
    let frames: Vec<Frame> = parse_datagram(ACK_ERR_DONE, FAM).into_iter().map(Result::unwrap).collect();
    assert_eq!(
        frames,
        vec![
            Frame { seq: 1, flags: 0x100, kind: FrameKind::Error { errno: 0, extack: ExtAck::default() } },
            Frame {
                seq: 2,
                flags: 0x300,
                kind: FrameKind::Error {
                    errno: -17,
                    extack: ExtAck { msg: Some("bad attr".into()), offset: Some(24), missing_type: None },
                },
            },
            Frame { seq: 3, flags: 2, kind: FrameKind::Done { errno: 0, extack: ExtAck::default() } },
        ]
    );
}

#[test]
fn uncapped_error_skips_the_original_payload() {
    // Same EEXIST error, not capped: the whole original request (104 bytes) precedes the TLVs.
    let mut b = Vec::new();
    let tlv: [u8; 16] = [0x0d, 0, 1, 0, b'b', b'a', b'd', b' ', b'a', b't', b't', b'r', 0, 0, 0, 0];
    let len = (16 + 4 + NEW_SERVICE.len() + tlv.len()) as u32;
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(&[0x02, 0x00, 0x00, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 0]); // ERROR, ACK_TLVS, seq 1
    b.extend_from_slice(&(-17i32).to_le_bytes());
    b.extend_from_slice(NEW_SERVICE);
    b.extend_from_slice(&tlv);
    let f = parse_datagram(&b, FAM).remove(0).unwrap();
    assert_eq!(
        f.kind,
        FrameKind::Error { errno: -17, extack: ExtAck { msg: Some("bad attr".into()), ..Default::default() } }
    );
}

#[test]
fn ctrl_family_reply_is_decoded() {
    use netlink_packet_generic::ctrl::{GenlCtrlCmd, nlas::GenlCtrlAttrs};
    let req =
        encode_ctrl_request(GenlCtrl { cmd: GenlCtrlCmd::NewFamily, nlas: vec![GenlCtrlAttrs::FamilyId(0x20)] }, 0, 9);
    let f = parse_datagram(&req, FAM).remove(0).unwrap();
    let FrameKind::Ctrl(c) = f.kind else { panic!("{f:?}") };
    assert_eq!(c.nlas, vec![GenlCtrlAttrs::FamilyId(0x20)]);
}

#[test]
fn unknown_attributes_are_kept() {
    // A future SVC_ATTR_* (type 99, u32) survives parse and emit.
    let mut msg = IpvsMessage::get_service(&tcp_svc(v4(198, 51, 100, 1), 80));
    if let IpvsAttr::Service(v) = &mut msg.attrs[0] {
        v.push(SvcAttr::Other(DefaultNla::new(99, vec![1, 2, 3, 4])));
    }
    let b = encode_request(&msg, FAM, REQ_ACK, 4);
    assert_eq!(parse_datagram(&b, FAM).remove(0).unwrap().kind, FrameKind::Ipvs(msg));
}

#[test]
fn bad_values_are_errors_not_panics() {
    // GET_SERVICE with a 2-byte ADDR: decode error, reported with the frame's seq intact.
    let mut b = GET_SERVICE.to_vec();
    b[40] = 0x06; // ADDR len 6 (2 bytes of value)
    let f = parse_datagram(&b, FAM).remove(0).unwrap();
    assert_eq!(f.seq, 4);
    assert!(matches!(f.kind, FrameKind::Unknown { msg_type: 0x20, error: Some(_) }), "{f:?}");
}

// ---------------------------------------------------------------------------------------------
// Robustness: the reply parser never panics on arbitrary or truncated bytes.

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn exercise(bytes: &[u8]) -> usize {
    let mut decoded = 0;
    for f in parse_datagram(bytes, FAM).into_iter().flatten() {
        if let FrameKind::Ipvs(m) = f.kind {
            decoded += 1;
            // Extractors must not panic either, and what parsed must re-emit.
            let _ = (m.service_entry(), m.dest_entry(), m.daemon(), m.info(), m.timeouts());
            let _ = encode_request(&m, FAM, f.flags, f.seq);
        }
    }
    decoded
}

#[test]
fn parser_never_panics_on_mutated_fixtures() {
    let fixtures: Vec<Vec<u8>> = vec![
        NEW_SERVICE.to_vec(),
        SET_SERVICE_V6.to_vec(),
        DEL_SERVICE_FWM6.to_vec(),
        GET_SERVICE.to_vec(),
        NEW_DEST.to_vec(),
        SET_DEST_GUE.to_vec(),
        DEL_DEST.to_vec(),
        GET_DEST.to_vec(),
        NEW_DAEMON.to_vec(),
        DEL_DAEMON.to_vec(),
        SET_CONFIG.to_vec(),
        ZERO_ONE.to_vec(),
        SERVICE_REPLY.to_vec(),
        DEST_REPLY.to_vec(),
        DAEMON_REPLY.to_vec(),
        INFO_REPLY.to_vec(),
        ACK_ERR_DONE.to_vec(),
        [SERVICE_REPLY, DEST_REPLY, ACK_ERR_DONE].concat(),
    ];
    // Every fixture decodes cleanly before mutation.
    for f in &fixtures {
        assert!(parse_datagram(f, FAM).iter().all(Result::is_ok));
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut runs, mut decoded, mut broken) = (0usize, 0usize, 0usize);
    for round in 0..40_000 {
        let base = &fixtures[round % fixtures.len()];
        let mut b = base.clone();
        match rng.below(6) {
            0 => b.truncate(rng.below(b.len() + 1)),
            1 => {
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
            }
            2 => {
                // Corrupt a length field (netlink or attribute) at a 4-byte boundary.
                let i = rng.below(b.len() / 4) * 4;
                let v = (rng.next() as u16).to_le_bytes();
                b[i] = v[0];
                b[i + 1] = v[1];
            }
            3 => b = (0..rng.below(512)).map(|_| rng.next() as u8).collect(),
            4 => b.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
            _ => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
        }
        let r = catch_unwind(AssertUnwindSafe(|| exercise(&b)));
        match r {
            Ok(n) => decoded += n,
            Err(_) => panic!("parser panicked on {b:02x?}"),
        }
        if parse_datagram(&b, FAM)
            .iter()
            .any(|f| f.is_err() || matches!(f, Ok(Frame { kind: FrameKind::Unknown { .. }, .. })))
        {
            broken += 1;
        }
        runs += 1;
    }
    assert_eq!(runs, 40_000);
    // The mutations really exercised both paths.
    assert!(decoded > 5_000, "only {decoded} messages decoded");
    assert!(broken > 5_000, "only {broken} inputs were rejected");
}
