//! Sans-IO codec for the nf_tables netlink messages lbd needs
//! (`include/uapi/linux/netfilter/nf_tables.h`, `nfnetlink.h`).
//!
//! Framing: every message is a netlink header, a 4-byte `nfgenmsg`
//! (`family`, `version` 0, `res_id` big-endian) and attributes. The message
//! type is `NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*`. Changes travel in a batch:
//! `NFNL_MSG_BATCH_BEGIN` (type 0x10, `res_id` = the subsystem, 10) … the
//! requests … `NFNL_MSG_BATCH_END` (0x11), sent in one `sendmsg`; the kernel
//! commits the batch whole or not at all.
//!
//! Attribute encodings (as libnftnl writes them and the kernel dumps them):
//! integers are big-endian (`NFTA_*_FLAGS`, hook number, priority, policy,
//! registers, expression keys and ops); strings NUL-terminated; nests carry
//! `NLA_F_NESTED`; data values (`NFTA_DATA_VALUE`) are raw bytes, so an IPv4
//! address and a port are in network order while a mark is a host-order u32
//! (`meta mark set` copies the register as the skb's u32 mark).
//!
//! The decoder accepts nests with or without `NLA_F_NESTED` and never panics
//! on malformed input (it reports a [`DecodeError`]).

use std::fmt;
use std::net::IpAddr;

/// `NETLINK_NETFILTER`.
pub const NETLINK_NETFILTER: isize = 12;
/// `NFNL_SUBSYS_NFTABLES`.
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN` (= `NLMSG_MIN_TYPE`).
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
pub const NFNL_MSG_BATCH_END: u16 = 0x11;

/// `NFPROTO_*` families of nf_tables tables.
pub mod nfproto {
    /// `NFPROTO_UNSPEC`
    pub const UNSPEC: u8 = 0;
    /// `NFPROTO_INET` (IPv4 and IPv6 in one table)
    pub const INET: u8 = 1;
    /// `NFPROTO_IPV4`
    pub const IPV4: u8 = 2;
    /// `NFPROTO_IPV6`
    pub const IPV6: u8 = 10;
}

/// `NLM_F_*` flags used here.
pub mod flags {
    /// `NLM_F_REQUEST`
    pub const REQUEST: u16 = 0x01;
    /// `NLM_F_MULTI`
    pub const MULTI: u16 = 0x02;
    /// `NLM_F_ACK`
    pub const ACK: u16 = 0x04;
    /// `NLM_F_DUMP` (`ROOT | MATCH`)
    pub const DUMP: u16 = 0x300;
    /// `NLM_F_CREATE`
    pub const CREATE: u16 = 0x400;
    /// `NLM_F_APPEND`
    pub const APPEND: u16 = 0x800;
    /// `NLM_F_DUMP_INTR`
    pub const DUMP_INTR: u16 = 0x10;
    /// `NLM_F_ACK_TLVS` (on an error message)
    pub const ACK_TLVS: u16 = 0x200;
    /// `NLM_F_CAPPED` (on an error message)
    pub const CAPPED: u16 = 0x100;
}

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// `NFT_MSG_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum MsgType {
    /// 0
    NewTable = 0,
    /// 1
    GetTable = 1,
    /// 2
    DelTable = 2,
    /// 3
    NewChain = 3,
    /// 4
    GetChain = 4,
    /// 5
    DelChain = 5,
    /// 6
    NewRule = 6,
    /// 7
    GetRule = 7,
    /// 8
    DelRule = 8,
}

impl MsgType {
    fn from_u8(v: u16) -> Option<Self> {
        use MsgType::*;
        Some(match v {
            0 => NewTable,
            1 => GetTable,
            2 => DelTable,
            3 => NewChain,
            4 => GetChain,
            5 => DelChain,
            6 => NewRule,
            7 => GetRule,
            8 => DelRule,
            _ => return None,
        })
    }
    /// The netlink message type (`subsystem << 8 | msg`).
    pub fn nlmsg_type(self) -> u16 {
        (NFNL_SUBSYS_NFTABLES << 8) | self as u16
    }
}

/// Attribute numbers (`NFTA_*`), grouped by object.
pub mod attr {
    /// `NFTA_TABLE_NAME`
    pub const TABLE_NAME: u16 = 1;
    /// `NFTA_TABLE_FLAGS` (be32)
    pub const TABLE_FLAGS: u16 = 2;
    /// `NFTA_TABLE_USE` (be32)
    pub const TABLE_USE: u16 = 3;
    /// `NFTA_CHAIN_TABLE`
    pub const CHAIN_TABLE: u16 = 1;
    /// `NFTA_CHAIN_NAME`
    pub const CHAIN_NAME: u16 = 3;
    /// `NFTA_CHAIN_HOOK` (nest)
    pub const CHAIN_HOOK: u16 = 4;
    /// `NFTA_CHAIN_POLICY` (be32)
    pub const CHAIN_POLICY: u16 = 5;
    /// `NFTA_CHAIN_TYPE` (string)
    pub const CHAIN_TYPE: u16 = 7;
    /// `NFTA_HOOK_HOOKNUM` (be32)
    pub const HOOK_HOOKNUM: u16 = 1;
    /// `NFTA_HOOK_PRIORITY` (be32, signed)
    pub const HOOK_PRIORITY: u16 = 2;
    /// `NFTA_RULE_TABLE`
    pub const RULE_TABLE: u16 = 1;
    /// `NFTA_RULE_CHAIN`
    pub const RULE_CHAIN: u16 = 2;
    /// `NFTA_RULE_HANDLE` (be64)
    pub const RULE_HANDLE: u16 = 3;
    /// `NFTA_RULE_EXPRESSIONS` (nest of `NFTA_LIST_ELEM`)
    pub const RULE_EXPRESSIONS: u16 = 4;
    /// `NFTA_LIST_ELEM`
    pub const LIST_ELEM: u16 = 1;
    /// `NFTA_EXPR_NAME`
    pub const EXPR_NAME: u16 = 1;
    /// `NFTA_EXPR_DATA` (nest)
    pub const EXPR_DATA: u16 = 2;
    /// `NFTA_DATA_VALUE`
    pub const DATA_VALUE: u16 = 1;
    /// `NFTA_PAYLOAD_DREG`, `_BASE`, `_OFFSET`, `_LEN`
    pub const PAYLOAD_DREG: u16 = 1;
    /// see [`PAYLOAD_DREG`]
    pub const PAYLOAD_BASE: u16 = 2;
    /// see [`PAYLOAD_DREG`]
    pub const PAYLOAD_OFFSET: u16 = 3;
    /// see [`PAYLOAD_DREG`]
    pub const PAYLOAD_LEN: u16 = 4;
    /// `NFTA_CMP_SREG`, `_OP`, `_DATA`
    pub const CMP_SREG: u16 = 1;
    /// see [`CMP_SREG`]
    pub const CMP_OP: u16 = 2;
    /// see [`CMP_SREG`]
    pub const CMP_DATA: u16 = 3;
    /// `NFTA_RANGE_SREG`, `_OP`, `_FROM_DATA`, `_TO_DATA`
    pub const RANGE_SREG: u16 = 1;
    /// see [`RANGE_SREG`]
    pub const RANGE_OP: u16 = 2;
    /// see [`RANGE_SREG`]
    pub const RANGE_FROM: u16 = 3;
    /// see [`RANGE_SREG`]
    pub const RANGE_TO: u16 = 4;
    /// `NFTA_META_DREG`, `_KEY`, `_SREG`
    pub const META_DREG: u16 = 1;
    /// see [`META_DREG`]
    pub const META_KEY: u16 = 2;
    /// see [`META_DREG`]
    pub const META_SREG: u16 = 3;
    /// `NFTA_IMMEDIATE_DREG`, `_DATA`
    pub const IMMEDIATE_DREG: u16 = 1;
    /// see [`IMMEDIATE_DREG`]
    pub const IMMEDIATE_DATA: u16 = 2;
}

/// `NF_INET_PRE_ROUTING`.
pub const HOOK_PREROUTING: u32 = 0;
/// `NF_IP_PRI_MANGLE`: where iptables' mangle table sits.
pub const PRIORITY_MANGLE: i32 = -150;
/// `NF_ACCEPT`, the chain policy.
pub const POLICY_ACCEPT: u32 = 1;
/// `NFT_REG_1` (a 16-byte register: holds an IPv6 address).
pub const REG_1: u32 = 1;

/// `NFT_META_*` keys used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaKey {
    /// 3: `meta mark`
    Mark,
    /// 15: `meta nfproto` (the packet's family in an inet table)
    NfProto,
    /// 16: `meta l4proto`
    L4Proto,
    /// Any other key.
    Other(u32),
}

impl MetaKey {
    fn number(self) -> u32 {
        match self {
            MetaKey::Mark => 3,
            MetaKey::NfProto => 15,
            MetaKey::L4Proto => 16,
            MetaKey::Other(n) => n,
        }
    }
    fn from_number(n: u32) -> Self {
        match n {
            3 => MetaKey::Mark,
            15 => MetaKey::NfProto,
            16 => MetaKey::L4Proto,
            n => MetaKey::Other(n),
        }
    }
}

/// `NFT_PAYLOAD_*_HEADER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadBase {
    /// 0: link layer
    Link,
    /// 1: network header
    Network,
    /// 2: transport header
    Transport,
    /// Any other base.
    Other(u32),
}

impl PayloadBase {
    fn number(self) -> u32 {
        match self {
            PayloadBase::Link => 0,
            PayloadBase::Network => 1,
            PayloadBase::Transport => 2,
            PayloadBase::Other(n) => n,
        }
    }
    fn from_number(n: u32) -> Self {
        match n {
            0 => PayloadBase::Link,
            1 => PayloadBase::Network,
            2 => PayloadBase::Transport,
            n => PayloadBase::Other(n),
        }
    }
}

/// One rule expression, in the forms lbd writes (and can read back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `[ meta load KEY => reg DREG ]`
    MetaLoad {
        /// Key.
        key: MetaKey,
        /// Destination register.
        dreg: u32,
    },
    /// `[ meta set KEY with reg SREG ]`
    MetaSet {
        /// Key.
        key: MetaKey,
        /// Source register.
        sreg: u32,
    },
    /// `[ payload load LEN b @ BASE header + OFFSET => reg DREG ]`
    Payload {
        /// Header.
        base: PayloadBase,
        /// Byte offset in the header.
        offset: u32,
        /// Bytes loaded.
        len: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `[ cmp OP reg SREG DATA ]` (op 0 = eq)
    Cmp {
        /// Source register.
        sreg: u32,
        /// `NFT_CMP_*` (0 eq, 1 neq, 2 lt, 3 lte, 4 gt, 5 gte).
        op: u32,
        /// Bytes compared with the register.
        data: Vec<u8>,
    },
    /// `[ range OP reg SREG FROM TO ]` (op 0 = eq: inside)
    Range {
        /// Source register.
        sreg: u32,
        /// `NFT_RANGE_*` (0 eq, 1 neq).
        op: u32,
        /// Lower bound (bytes, compared as memcmp).
        from: Vec<u8>,
        /// Upper bound.
        to: Vec<u8>,
    },
    /// `[ immediate reg DREG DATA ]`
    Immediate {
        /// Destination register (not the verdict register).
        dreg: u32,
        /// Bytes put in the register.
        data: Vec<u8>,
    },
    /// An expression lbd does not write (its name): never equal to ours.
    Other(String),
}

impl Expr {
    /// The expression's kernel name.
    pub fn name(&self) -> &str {
        match self {
            Expr::MetaLoad { .. } | Expr::MetaSet { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Range { .. } => "range",
            Expr::Immediate { .. } => "immediate",
            Expr::Other(n) => n,
        }
    }

    fn encode_data(&self, w: &mut Writer) {
        match self {
            Expr::MetaLoad { key, dreg } => {
                w.u32_be(attr::META_DREG, *dreg);
                w.u32_be(attr::META_KEY, key.number());
            }
            Expr::MetaSet { key, sreg } => {
                w.u32_be(attr::META_KEY, key.number());
                w.u32_be(attr::META_SREG, *sreg);
            }
            Expr::Payload { base, offset, len, dreg } => {
                w.u32_be(attr::PAYLOAD_DREG, *dreg);
                w.u32_be(attr::PAYLOAD_BASE, base.number());
                w.u32_be(attr::PAYLOAD_OFFSET, *offset);
                w.u32_be(attr::PAYLOAD_LEN, *len);
            }
            Expr::Cmp { sreg, op, data } => {
                w.u32_be(attr::CMP_SREG, *sreg);
                w.u32_be(attr::CMP_OP, *op);
                w.nest(attr::CMP_DATA, |w| w.bytes(attr::DATA_VALUE, data));
            }
            Expr::Range { sreg, op, from, to } => {
                w.u32_be(attr::RANGE_SREG, *sreg);
                w.u32_be(attr::RANGE_OP, *op);
                w.nest(attr::RANGE_FROM, |w| w.bytes(attr::DATA_VALUE, from));
                w.nest(attr::RANGE_TO, |w| w.bytes(attr::DATA_VALUE, to));
            }
            Expr::Immediate { dreg, data } => {
                w.u32_be(attr::IMMEDIATE_DREG, *dreg);
                w.nest(attr::IMMEDIATE_DATA, |w| w.bytes(attr::DATA_VALUE, data));
            }
            Expr::Other(_) => {}
        }
    }

    fn decode(name: &str, data: &[u8]) -> Result<Expr, DecodeError> {
        let a = Attrs::parse(data)?;
        let be = |t| a.u32_be(t);
        let value = |t| -> Result<Vec<u8>, DecodeError> {
            let nest = a.get(t).ok_or(DecodeError::Missing(name.to_string(), t))?;
            Attrs::parse(nest)?.get(attr::DATA_VALUE).map(<[u8]>::to_vec).ok_or(DecodeError::Missing("data".into(), 1))
        };
        Ok(match name {
            "meta" => match (a.get(attr::META_DREG), a.get(attr::META_SREG)) {
                (Some(_), None) => {
                    Expr::MetaLoad { key: MetaKey::from_number(be(attr::META_KEY)?), dreg: be(attr::META_DREG)? }
                }
                (None, Some(_)) => {
                    Expr::MetaSet { key: MetaKey::from_number(be(attr::META_KEY)?), sreg: be(attr::META_SREG)? }
                }
                _ => Expr::Other("meta".into()),
            },
            "payload" if a.get(attr::PAYLOAD_DREG).is_some() && a.len() == 4 => Expr::Payload {
                base: PayloadBase::from_number(be(attr::PAYLOAD_BASE)?),
                offset: be(attr::PAYLOAD_OFFSET)?,
                len: be(attr::PAYLOAD_LEN)?,
                dreg: be(attr::PAYLOAD_DREG)?,
            },
            "cmp" => Expr::Cmp { sreg: be(attr::CMP_SREG)?, op: be(attr::CMP_OP)?, data: value(attr::CMP_DATA)? },
            "range" => Expr::Range {
                sreg: be(attr::RANGE_SREG)?,
                op: be(attr::RANGE_OP)?,
                from: value(attr::RANGE_FROM)?,
                to: value(attr::RANGE_TO)?,
            },
            "immediate" if a.get(attr::IMMEDIATE_DREG).is_some_and(|d| d != [0, 0, 0, 0]) => {
                Expr::Immediate { dreg: be(attr::IMMEDIATE_DREG)?, data: value(attr::IMMEDIATE_DATA)? }
            }
            other => Expr::Other(other.to_string()),
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl fmt::Display for Expr {
    /// The form `nft --debug=netlink` prints (close enough to compare by eye).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::MetaLoad { key, dreg } => write!(f, "[ meta load {key:?} => reg {dreg} ]"),
            Expr::MetaSet { key, sreg } => write!(f, "[ meta set {key:?} with reg {sreg} ]"),
            Expr::Payload { base, offset, len, dreg } => {
                write!(f, "[ payload load {len}b @ {base:?} header + {offset} => reg {dreg} ]")
            }
            Expr::Cmp { sreg, op, data } => write!(f, "[ cmp op{op} reg {sreg} 0x{} ]", hex(data)),
            Expr::Range { sreg, op, from, to } => {
                write!(f, "[ range op{op} reg {sreg} 0x{} 0x{} ]", hex(from), hex(to))
            }
            Expr::Immediate { dreg, data } => write!(f, "[ immediate reg {dreg} 0x{} ]", hex(data)),
            Expr::Other(n) => write!(f, "[ {n} ]"),
        }
    }
}

/// Why a message could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Ran out of bytes.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A length field does not fit.
    #[error("bad length in {0}")]
    BadLength(&'static str),
    /// A required attribute is missing.
    #[error("{0}: attribute {1} missing")]
    Missing(String, u16),
    /// An attribute has the wrong size.
    #[error("attribute {0} has {1} bytes")]
    BadSize(u16, usize),
}

/// Writes netlink attributes into a buffer (4-byte aligned, zero padded).
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn attr_header(&mut self, ty: u16, len: usize) {
        self.buf.extend_from_slice(&((4 + len) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
    }
    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
    /// A raw attribute.
    pub fn bytes(&mut self, ty: u16, v: &[u8]) {
        self.attr_header(ty, v.len());
        self.buf.extend_from_slice(v);
        self.pad();
    }
    /// A NUL-terminated string.
    pub fn string(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.bytes(ty, &v);
    }
    /// A big-endian u32.
    pub fn u32_be(&mut self, ty: u16, v: u32) {
        self.bytes(ty, &v.to_be_bytes());
    }
    /// A nest (`NLA_F_NESTED` set) filled by `f`.
    pub fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Writer)) {
        let start = self.buf.len();
        self.attr_header(ty | NLA_F_NESTED, 0);
        f(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }
    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// A parsed attribute list (type without flags → payload).
#[derive(Clone, Debug, Default)]
pub struct Attrs<'a> {
    items: Vec<(u16, &'a [u8])>,
}

impl<'a> Attrs<'a> {
    /// Splits `buf` into attributes.
    pub fn parse(mut buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut items = Vec::new();
        while buf.len() >= 4 {
            let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
            let ty = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
            if len < 4 || len > buf.len() {
                return Err(DecodeError::BadLength("attribute"));
            }
            items.push((ty, &buf[4..len]));
            let adv = len.next_multiple_of(4).min(buf.len());
            buf = &buf[adv..];
        }
        Ok(Attrs { items })
    }
    /// The first attribute of this type.
    pub fn get(&self, ty: u16) -> Option<&'a [u8]> {
        self.items.iter().find(|(t, _)| *t == ty).map(|(_, v)| *v)
    }
    /// Every attribute of this type, in order.
    pub fn all(&self, ty: u16) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.items.iter().filter(move |(t, _)| *t == ty).map(|(_, v)| *v)
    }
    /// How many attributes.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// No attributes.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// A big-endian u32 attribute.
    pub fn u32_be(&self, ty: u16) -> Result<u32, DecodeError> {
        let v = self.get(ty).ok_or(DecodeError::Missing("attribute".into(), ty))?;
        let b: [u8; 4] = v.try_into().map_err(|_| DecodeError::BadSize(ty, v.len()))?;
        Ok(u32::from_be_bytes(b))
    }
    /// A string attribute (NUL stripped).
    pub fn string(&self, ty: u16) -> Option<String> {
        let v = self.get(ty)?;
        let v = v.split(|b| *b == 0).next().unwrap_or_default();
        Some(String::from_utf8_lossy(v).into_owned())
    }
}

/// One netlink message to send: type, flags, nfgenmsg family and res_id, attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nfgen_family`.
    pub family: u8,
    /// `res_id` (host value; written big-endian).
    pub res_id: u16,
    /// Encoded attributes.
    pub attrs: Vec<u8>,
}

impl Msg {
    fn nft(t: MsgType, flags: u16, family: u8, f: impl FnOnce(&mut Writer)) -> Msg {
        let mut w = Writer::default();
        f(&mut w);
        Msg { ty: t.nlmsg_type(), flags, family, res_id: 0, attrs: w.into_bytes() }
    }

    /// Appends the whole message (header included) with sequence number `seq`.
    pub fn encode_into(&self, seq: u32, out: &mut Vec<u8>) {
        let len = 16 + 4 + self.attrs.len();
        out.extend_from_slice(&(len as u32).to_ne_bytes());
        out.extend_from_slice(&self.ty.to_ne_bytes());
        out.extend_from_slice(&self.flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.push(self.family);
        out.push(0); // NFNETLINK_V0
        out.extend_from_slice(&self.res_id.to_be_bytes());
        out.extend_from_slice(&self.attrs);
    }

    /// Whether the kernel answers this message with an ACK or error.
    pub fn wants_ack(&self) -> bool {
        self.flags & flags::ACK != 0
    }
}

/// `NFNL_MSG_BATCH_BEGIN` for nf_tables.
pub fn batch_begin() -> Msg {
    Msg {
        ty: NFNL_MSG_BATCH_BEGIN,
        flags: flags::REQUEST,
        family: nfproto::UNSPEC,
        res_id: NFNL_SUBSYS_NFTABLES,
        attrs: Vec::new(),
    }
}

/// `NFNL_MSG_BATCH_END`.
pub fn batch_end() -> Msg {
    Msg {
        ty: NFNL_MSG_BATCH_END,
        flags: flags::REQUEST,
        family: nfproto::UNSPEC,
        res_id: NFNL_SUBSYS_NFTABLES,
        attrs: Vec::new(),
    }
}

const CHANGE: u16 = flags::REQUEST | flags::ACK;

/// `NEWTABLE` (`add table`): creates the table, or does nothing if it exists.
pub fn new_table(family: u8, name: &str) -> Msg {
    Msg::nft(MsgType::NewTable, CHANGE | flags::CREATE, family, |w| {
        w.string(attr::TABLE_NAME, name);
        w.u32_be(attr::TABLE_FLAGS, 0);
    })
}

/// `DELTABLE`: the table with its chains and rules.
pub fn del_table(family: u8, name: &str) -> Msg {
    Msg::nft(MsgType::DelTable, CHANGE, family, |w| w.string(attr::TABLE_NAME, name))
}

/// A base chain: `type TYPE hook HOOK priority PRIO; policy accept;`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseChain {
    /// Chain name.
    pub name: String,
    /// `NF_INET_*` hook.
    pub hook: u32,
    /// Priority.
    pub priority: i32,
    /// `filter`, `route`, `nat`.
    pub kind: String,
    /// `NF_ACCEPT` (1) or `NF_DROP` (0).
    pub policy: u32,
}

/// `NEWCHAIN` for a base chain.
pub fn new_chain(family: u8, table: &str, c: &BaseChain) -> Msg {
    Msg::nft(MsgType::NewChain, CHANGE | flags::CREATE, family, |w| {
        w.string(attr::CHAIN_TABLE, table);
        w.string(attr::CHAIN_NAME, &c.name);
        w.nest(attr::CHAIN_HOOK, |w| {
            w.u32_be(attr::HOOK_HOOKNUM, c.hook);
            w.u32_be(attr::HOOK_PRIORITY, c.priority as u32);
        });
        w.u32_be(attr::CHAIN_POLICY, c.policy);
        w.string(attr::CHAIN_TYPE, &c.kind);
    })
}

/// `NEWRULE` appended to a chain.
pub fn new_rule(family: u8, table: &str, chain: &str, exprs: &[Expr]) -> Msg {
    Msg::nft(MsgType::NewRule, CHANGE | flags::CREATE | flags::APPEND, family, |w| {
        w.string(attr::RULE_TABLE, table);
        w.string(attr::RULE_CHAIN, chain);
        w.nest(attr::RULE_EXPRESSIONS, |w| {
            for e in exprs {
                w.nest(attr::LIST_ELEM, |w| {
                    w.string(attr::EXPR_NAME, e.name());
                    w.nest(attr::EXPR_DATA, |w| e.encode_data(w));
                });
            }
        });
    })
}

/// `GETTABLE` for one table (doit: the table or ENOENT).
pub fn get_table(family: u8, name: &str) -> Msg {
    Msg::nft(MsgType::GetTable, CHANGE, family, |w| w.string(attr::TABLE_NAME, name))
}

/// `GETCHAIN` dump of a family (filtered by table on our side).
pub fn dump_chains(family: u8, table: &str) -> Msg {
    Msg::nft(MsgType::GetChain, flags::REQUEST | flags::DUMP, family, |w| w.string(attr::CHAIN_TABLE, table))
}

/// `GETRULE` dump of one table's rules.
pub fn dump_rules(family: u8, table: &str) -> Msg {
    Msg::nft(MsgType::GetRule, flags::REQUEST | flags::DUMP, family, |w| w.string(attr::RULE_TABLE, table))
}

/// An nf_tables object read from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// A table.
    Table {
        /// Family.
        family: u8,
        /// Name.
        name: String,
        /// `NFT_TABLE_F_*` (1 = dormant).
        flags: u32,
    },
    /// A chain (base chains have a hook).
    Chain {
        /// Family.
        family: u8,
        /// Table name.
        table: String,
        /// Chain name.
        name: String,
        /// Hook and priority for a base chain.
        hook: Option<(u32, i32)>,
        /// Type (`filter`...) of a base chain.
        kind: Option<String>,
        /// Policy of a base chain.
        policy: Option<u32>,
    },
    /// A rule.
    Rule {
        /// Family.
        family: u8,
        /// Table name.
        table: String,
        /// Chain name.
        chain: String,
        /// Kernel handle.
        handle: u64,
        /// Expressions, in order.
        exprs: Vec<Expr>,
    },
}

/// What one received netlink message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// An nf_tables object (a reply or dump part).
    Object {
        /// Sequence number.
        seq: u32,
        /// Flags (`NLM_F_MULTI`, `NLM_F_DUMP_INTR`).
        flags: u16,
        /// The object.
        obj: Object,
    },
    /// `NLMSG_ERROR`: errno 0 is an ACK.
    Error {
        /// Sequence number of the request it answers.
        seq: u32,
        /// Negative errno, or 0.
        errno: i32,
        /// The kernel's extended-ACK message.
        msg: Option<String>,
    },
    /// `NLMSG_DONE` of a dump.
    Done {
        /// Sequence number.
        seq: u32,
        /// Negative errno, or 0.
        errno: i32,
    },
    /// Anything else (kept for its sequence number).
    Other {
        /// Sequence number.
        seq: u32,
        /// Message type.
        ty: u16,
    },
}

impl Frame {
    /// The sequence number.
    pub fn seq(&self) -> u32 {
        match self {
            Frame::Object { seq, .. }
            | Frame::Error { seq, .. }
            | Frame::Done { seq, .. }
            | Frame::Other { seq, .. } => *seq,
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, DecodeError> {
    b.get(at..at + 4).map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]])).ok_or(DecodeError::Truncated("header"))
}

fn decode_object(ty: u16, family: u8, attrs: &[u8]) -> Result<Option<Object>, DecodeError> {
    if ty >> 8 != NFNL_SUBSYS_NFTABLES {
        return Ok(None);
    }
    let a = Attrs::parse(attrs)?;
    let s = |t| a.string(t).unwrap_or_default();
    Ok(Some(match MsgType::from_u8(ty & 0xff) {
        Some(MsgType::NewTable) => {
            Object::Table { family, name: s(attr::TABLE_NAME), flags: a.u32_be(attr::TABLE_FLAGS).unwrap_or(0) }
        }
        Some(MsgType::NewChain) => {
            let hook = match a.get(attr::CHAIN_HOOK) {
                Some(h) => {
                    let h = Attrs::parse(h)?;
                    Some((h.u32_be(attr::HOOK_HOOKNUM)?, h.u32_be(attr::HOOK_PRIORITY)? as i32))
                }
                None => None,
            };
            Object::Chain {
                family,
                table: s(attr::CHAIN_TABLE),
                name: s(attr::CHAIN_NAME),
                hook,
                kind: a.string(attr::CHAIN_TYPE),
                policy: a.u32_be(attr::CHAIN_POLICY).ok(),
            }
        }
        Some(MsgType::NewRule) => {
            let mut exprs = Vec::new();
            if let Some(list) = a.get(attr::RULE_EXPRESSIONS) {
                for elem in Attrs::parse(list)?.all(attr::LIST_ELEM) {
                    let e = Attrs::parse(elem)?;
                    let name = e.string(attr::EXPR_NAME).ok_or(DecodeError::Missing("expression".into(), 1))?;
                    exprs.push(Expr::decode(&name, e.get(attr::EXPR_DATA).unwrap_or_default())?);
                }
            }
            let handle = match a.get(attr::RULE_HANDLE) {
                Some(h) => u64::from_be_bytes(h.try_into().map_err(|_| DecodeError::BadSize(3, h.len()))?),
                None => 0,
            };
            Object::Rule { family, table: s(attr::RULE_TABLE), chain: s(attr::RULE_CHAIN), handle, exprs }
        }
        _ => return Ok(None),
    }))
}

/// Splits a received datagram into frames. Never panics.
pub fn parse_datagram(mut buf: &[u8]) -> Result<Vec<Frame>, DecodeError> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32_at(buf, 0)? as usize;
        if len < 16 || len > buf.len() {
            return Err(DecodeError::BadLength("message"));
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let fl = u16::from_ne_bytes([buf[6], buf[7]]);
        let seq = u32_at(buf, 8)?;
        let body = &buf[16..len];
        let frame = match ty {
            NLMSG_ERROR | NLMSG_DONE => {
                let errno = body.get(..4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0);
                if ty == NLMSG_DONE {
                    Frame::Done { seq, errno }
                } else {
                    // The original request's header follows (its seq is the one that matters),
                    // then its payload unless CAPPED, then extended-ACK TLVs with ACK_TLVS.
                    let orig = body.get(4..20).ok_or(DecodeError::Truncated("error"))?;
                    let oseq = u32_at(orig, 8)?;
                    let olen = u32_at(orig, 0)? as usize;
                    let mut msg = None;
                    if fl & flags::ACK_TLVS != 0 {
                        let skip = if fl & flags::CAPPED != 0 { 16 } else { olen.next_multiple_of(4) };
                        if let Some(tlv) = body.get(4 + skip..)
                            && let Ok(a) = Attrs::parse(tlv)
                        {
                            msg = a.string(1); // NLMSGERR_ATTR_MSG
                        }
                    }
                    Frame::Error { seq: oseq, errno, msg }
                }
            }
            _ => {
                let family = body.first().copied().unwrap_or(0);
                match decode_object(ty, family, body.get(4..).unwrap_or_default())? {
                    Some(obj) => Frame::Object { seq, flags: fl, obj },
                    None => Frame::Other { seq, ty },
                }
            }
        };
        out.push(frame);
        let adv = len.next_multiple_of(4).min(buf.len());
        buf = &buf[adv..];
    }
    Ok(out)
}

/// Bytes of an address as the network header holds it.
pub fn addr_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

#[cfg(test)]
mod tests;
