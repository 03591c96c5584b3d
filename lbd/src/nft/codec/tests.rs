//! Byte fixtures, written by hand from `nf_tables.h`/`nfnetlink.h` and the
//! layout libnftnl produces (attribute order as ours; the kernel does not
//! care about order). Integers in headers are host order (x86: little
//! endian); nf_tables attributes are big-endian.

use super::*;

fn enc(m: &Msg, seq: u32) -> Vec<u8> {
    let mut v = Vec::new();
    m.encode_into(seq, &mut v);
    v
}

#[test]
fn batch_begin_and_end_name_the_nftables_subsystem() {
    #[rustfmt::skip]
    let want: &[u8] = &[
        0x14, 0, 0, 0,          // nlmsg_len 20
        0x10, 0x00,             // NFNL_MSG_BATCH_BEGIN
        0x01, 0x00,             // NLM_F_REQUEST
        7, 0, 0, 0,             // seq
        0, 0, 0, 0,             // pid
        0x00, 0x00,             // AF_UNSPEC, NFNETLINK_V0
        0x00, 0x0a,             // res_id = htons(NFNL_SUBSYS_NFTABLES)
    ];
    assert_eq!(enc(&batch_begin(), 7), want);
    let end = enc(&batch_end(), 8);
    assert_eq!(&end[4..6], &[0x11, 0x00]);
    assert_eq!(&end[18..20], &[0x00, 0x0a]);
}

#[test]
fn new_table_fixture() {
    #[rustfmt::skip]
    let want: &[u8] = &[
        0x28, 0, 0, 0,          // len 40
        0x00, 0x0a,             // NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWTABLE
        0x05, 0x04,             // REQUEST | ACK | CREATE
        1, 0, 0, 0, 0, 0, 0, 0, // seq 1, pid 0
        0x01, 0x00, 0x00, 0x00, // NFPROTO_INET, v0, res_id 0
        0x0b, 0x00, 0x01, 0x00, b'l', b'v', b's', b'b', b'o', b'x', 0, 0, // NFTA_TABLE_NAME "lvsbox\0" + pad
        0x08, 0x00, 0x02, 0x00, 0, 0, 0, 0,                               // NFTA_TABLE_FLAGS be32 0
    ];
    assert_eq!(enc(&new_table(nfproto::INET, "lvsbox"), 1), want);
}

#[test]
fn del_table_fixture() {
    let b = enc(&del_table(nfproto::INET, "lvsbox"), 2);
    assert_eq!(&b[0..8], &[0x20, 0, 0, 0, 0x02, 0x0a, 0x05, 0x00]); // len 32, DELTABLE, REQUEST|ACK
    assert_eq!(&b[20..], &[0x0b, 0x00, 0x01, 0x00, b'l', b'v', b's', b'b', b'o', b'x', 0, 0]);
}

#[test]
fn new_chain_fixture_prerouting_mangle() {
    let c = BaseChain {
        name: "prerouting".into(),
        hook: HOOK_PREROUTING,
        priority: PRIORITY_MANGLE,
        kind: "filter".into(),
        policy: POLICY_ACCEPT,
    };
    #[rustfmt::skip]
    let want: &[u8] = &[
        0x58, 0, 0, 0,          // len 88
        0x03, 0x0a,             // NEWCHAIN
        0x05, 0x04,             // REQUEST | ACK | CREATE
        3, 0, 0, 0, 0, 0, 0, 0,
        0x01, 0x00, 0x00, 0x00, // inet
        0x0b, 0x00, 0x01, 0x00, b'l', b'v', b's', b'b', b'o', b'x', 0, 0,             // NFTA_CHAIN_TABLE
        0x0f, 0x00, 0x03, 0x00, b'p', b'r', b'e', b'r', b'o', b'u', b't', b'i', b'n', b'g', 0, 0, // NFTA_CHAIN_NAME
        0x14, 0x00, 0x04, 0x80,                                                       // NFTA_CHAIN_HOOK | NLA_F_NESTED, 20 bytes
          0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,                             //   NFTA_HOOK_HOOKNUM be32 0 (NF_INET_PRE_ROUTING)
          0x08, 0x00, 0x02, 0x00, 0xff, 0xff, 0xff, 0x6a,                             //   NFTA_HOOK_PRIORITY be32 -150
        0x08, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x01,                               // NFTA_CHAIN_POLICY be32 NF_ACCEPT
        0x0b, 0x00, 0x07, 0x00, b'f', b'i', b'l', b't', b'e', b'r', 0, 0,             // NFTA_CHAIN_TYPE "filter"
    ];
    assert_eq!(enc(&new_chain(nfproto::INET, "lvsbox", &c), 3), want);
}

/// One expression element as libnftnl lays it out.
fn elem(name: &str, data: &[u8]) -> Vec<u8> {
    let mut n = name.as_bytes().to_vec();
    n.push(0);
    let npad = n.len().next_multiple_of(4) - n.len();
    let name_attr_len = 4 + n.len();
    let data_len = 4 + data.len();
    let total = 4 + name_attr_len + npad + data_len;
    let mut v = Vec::new();
    v.extend_from_slice(&(total as u16).to_le_bytes());
    v.extend_from_slice(&[0x01, 0x80]); // NFTA_LIST_ELEM | NESTED
    v.extend_from_slice(&(name_attr_len as u16).to_le_bytes());
    v.extend_from_slice(&[0x01, 0x00]); // NFTA_EXPR_NAME
    v.extend_from_slice(&n);
    v.extend(std::iter::repeat_n(0, npad));
    v.extend_from_slice(&(data_len as u16).to_le_bytes());
    v.extend_from_slice(&[0x02, 0x80]); // NFTA_EXPR_DATA | NESTED
    v.extend_from_slice(data);
    v
}

fn rule_exprs_bytes(m: &Msg) -> Vec<u8> {
    let a = Attrs::parse(&m.attrs).unwrap();
    a.get(attr::RULE_EXPRESSIONS).unwrap().to_vec()
}

#[test]
fn expression_fixtures() {
    #[rustfmt::skip]
    let cases: Vec<(Expr, Vec<u8>)> = vec![
        // [ payload load 4b @ network header + 16 => reg 1 ]  (ip daddr)
        (Expr::Payload { base: PayloadBase::Network, offset: 16, len: 4, dreg: 1 }, elem("payload", &[
            0x08, 0, 0x01, 0, 0, 0, 0, 1,     // NFTA_PAYLOAD_DREG be32 1
            0x08, 0, 0x02, 0, 0, 0, 0, 1,     // NFTA_PAYLOAD_BASE be32 NFT_PAYLOAD_NETWORK_HEADER
            0x08, 0, 0x03, 0, 0, 0, 0, 16,    // NFTA_PAYLOAD_OFFSET be32 16
            0x08, 0, 0x04, 0, 0, 0, 0, 4,     // NFTA_PAYLOAD_LEN be32 4
        ])),
        // [ cmp eq reg 1 0x0a4d0064 ]  (10.77.0.100)
        (Expr::Cmp { sreg: 1, op: 0, data: vec![10, 77, 0, 100] }, elem("cmp", &[
            0x08, 0, 0x01, 0, 0, 0, 0, 1,     // NFTA_CMP_SREG
            0x08, 0, 0x02, 0, 0, 0, 0, 0,     // NFTA_CMP_OP NFT_CMP_EQ
            0x0c, 0, 0x03, 0x80,              // NFTA_CMP_DATA nest
              0x08, 0, 0x01, 0, 10, 77, 0, 100, //   NFTA_DATA_VALUE
        ])),
        // [ range eq reg 1 0x1f40 0x2710 ]  (8000-10000, network order)
        (Expr::Range { sreg: 1, op: 0, from: vec![0x1f, 0x40], to: vec![0x27, 0x10] }, elem("range", &[
            0x08, 0, 0x01, 0, 0, 0, 0, 1,     // NFTA_RANGE_SREG
            0x08, 0, 0x02, 0, 0, 0, 0, 0,     // NFTA_RANGE_OP NFT_RANGE_EQ
            0x0c, 0, 0x03, 0x80, 0x06, 0, 0x01, 0, 0x1f, 0x40, 0, 0, // FROM { VALUE 2 bytes + pad }
            0x0c, 0, 0x04, 0x80, 0x06, 0, 0x01, 0, 0x27, 0x10, 0, 0, // TO
        ])),
        // [ immediate reg 1 0x0000012c ]  (mark 300, host order)
        (Expr::Immediate { dreg: 1, data: 300u32.to_le_bytes().to_vec() }, elem("immediate", &[
            0x08, 0, 0x01, 0, 0, 0, 0, 1,     // NFTA_IMMEDIATE_DREG
            0x0c, 0, 0x02, 0x80, 0x08, 0, 0x01, 0, 0x2c, 0x01, 0, 0, // DATA { VALUE 2c 01 00 00 }
        ])),
        // [ meta set mark with reg 1 ]
        (Expr::MetaSet { key: MetaKey::Mark, sreg: 1 }, elem("meta", &[
            0x08, 0, 0x02, 0, 0, 0, 0, 3,     // NFTA_META_KEY NFT_META_MARK
            0x08, 0, 0x03, 0, 0, 0, 0, 1,     // NFTA_META_SREG
        ])),
        // [ meta load l4proto => reg 1 ]
        (Expr::MetaLoad { key: MetaKey::L4Proto, dreg: 1 }, elem("meta", &[
            0x08, 0, 0x01, 0, 0, 0, 0, 1,     // NFTA_META_DREG
            0x08, 0, 0x02, 0, 0, 0, 0, 16,    // NFTA_META_KEY NFT_META_L4PROTO
        ])),
    ];
    for (e, want) in cases {
        let m = new_rule(nfproto::INET, "lvsbox", "prerouting", std::slice::from_ref(&e));
        assert_eq!(rule_exprs_bytes(&m), want, "{e}");
        // And it decodes back to itself.
        let mut bytes = Vec::new();
        m.encode_into(9, &mut bytes);
        // A dump answer has type NEWRULE too: the request parses as one.
        let frames = parse_datagram(&bytes).unwrap();
        match &frames[..] {
            [Frame::Object { obj: Object::Rule { exprs, table, chain, .. }, .. }] => {
                assert_eq!(exprs, &vec![e.clone()]);
                assert_eq!((table.as_str(), chain.as_str()), ("lvsbox", "prerouting"));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn new_rule_header_and_leading_attributes() {
    let m = new_rule(nfproto::INET, "lvsbox", "prerouting", &[Expr::MetaSet { key: MetaKey::Mark, sreg: 1 }]);
    let b = enc(&m, 5);
    assert_eq!(&b[4..8], &[0x06, 0x0a, 0x05, 0x0c]); // NEWRULE; REQUEST|ACK|CREATE|APPEND
    assert_eq!(&b[16..20], &[0x01, 0, 0, 0]);
    assert_eq!(&b[20..32], &[0x0b, 0, 0x01, 0, b'l', b'v', b's', b'b', b'o', b'x', 0, 0]); // NFTA_RULE_TABLE
    assert_eq!(&b[32..48], &[0x0f, 0, 0x02, 0, b'p', b'r', b'e', b'r', b'o', b'u', b't', b'i', b'n', b'g', 0, 0]); // NFTA_RULE_CHAIN
    assert_eq!(&b[50..52], &[0x04, 0x80]); // NFTA_RULE_EXPRESSIONS | NESTED
    assert_eq!(u32::from_le_bytes(b[0..4].try_into().unwrap()) as usize, b.len());
}

#[test]
fn errors_with_extack_are_matched_to_the_request_seq() {
    // NLMSG_ERROR, flags CAPPED|ACK_TLVS, error -ENOENT, the request header, NLMSGERR_ATTR_MSG.
    let mut b = Vec::new();
    let body_len = 4 + 16 + 12;
    b.extend_from_slice(&((16 + body_len) as u32).to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&(flags::CAPPED | flags::ACK_TLVS).to_le_bytes());
    b.extend_from_slice(&42u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&(-2i32).to_le_bytes());
    b.extend_from_slice(&32u32.to_le_bytes()); // original len
    b.extend_from_slice(&0x0a02u16.to_le_bytes());
    b.extend_from_slice(&5u16.to_le_bytes());
    b.extend_from_slice(&42u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&[0x08, 0, 0x01, 0, b'n', b'o', b'!', 0]);
    b.extend_from_slice(&[0x04, 0, 0x02, 0]);
    let f = parse_datagram(&b).unwrap();
    assert_eq!(f, vec![Frame::Error { seq: 42, errno: -2, msg: Some("no!".into()) }]);
}

#[test]
fn garbage_never_panics() {
    let m = new_rule(nfproto::INET, "lvsbox", "prerouting", &[Expr::Cmp { sreg: 1, op: 0, data: vec![1, 2, 3] }]);
    let mut b = Vec::new();
    m.encode_into(1, &mut b);
    for cut in 0..b.len() {
        let _ = parse_datagram(&b[..cut]);
        let mut c = b.clone();
        c[cut] ^= 0xff;
        let _ = parse_datagram(&c);
    }
}

#[test]
fn table_and_chain_replies_decode() {
    // A GETTABLE reply (NEWTABLE) and a base chain (NEWCHAIN) as the kernel dumps them.
    let mut b = Vec::new();
    let mut t = new_table(nfproto::INET, "lvsbox");
    t.attrs.extend_from_slice(&[0x08, 0, 0x03, 0, 0, 0, 0, 1]); // NFTA_TABLE_USE
    t.encode_into(3, &mut b);
    let c = BaseChain { name: "prerouting".into(), hook: 0, priority: -150, kind: "filter".into(), policy: 1 };
    new_chain(nfproto::INET, "lvsbox", &c).encode_into(4, &mut b);
    let f = parse_datagram(&b).unwrap();
    assert_eq!(f.len(), 2);
    assert!(
        matches!(&f[0], Frame::Object { obj: Object::Table { name, flags: 0, family: 1 }, .. } if name == "lvsbox")
    );
    match &f[1] {
        Frame::Object { obj: Object::Chain { hook, kind, policy, .. }, .. } => {
            assert_eq!(*hook, Some((0, -150)));
            assert_eq!(kind.as_deref(), Some("filter"));
            assert_eq!(*policy, Some(1));
        }
        other => panic!("{other:?}"),
    }
}
