//! nftables, without `nft` and without libnftnl: the firewall-mark rules of
//! fwmark services, in a table lvsbox owns.
//!
//! - [`codec`]: sans-IO nf_tables netlink messages (batch, tables, chains,
//!   rules, the five expressions lbd uses) and their decoder;
//! - [`client`]: a blocking `NETLINK_NETFILTER` client (one batch per
//!   `sendmsg`, ACKs matched by sequence number, dumps);
//! - this module: the `lvsbox` table as lbd writes it, reading it back, and
//!   deciding whether the kernel already has exactly what the config asks for.
//!
//! The table is `inet lvsbox` (IPv4 and IPv6 in one table) with one base chain
//! `prerouting`, `type filter hook prerouting priority mangle (-150); policy
//! accept;`, one rule per (address, protocol, port or port range):
//!
//! ```text
//! meta nfproto ipv4 ip daddr 192.0.2.10 meta l4proto tcp tcp dport 8000-10000 meta mark set 0x12c
//! ```
//!
//! A change replaces the table in one transactional batch (`add table` (a
//! no-op when it exists), `delete table`, `add table`, chain, rules), so
//! packets see the old rules or the new ones, never a mix, and never an empty
//! table in between. lbd never touches another table.

pub mod client;
pub mod codec;

use std::net::IpAddr;

use serde::Serialize;

use codec::{BaseChain, Expr, MetaKey, Msg, Object, PayloadBase, REG_1};

/// The table lbd owns (family `inet`).
pub const TABLE: &str = "lvsbox";
/// Its only chain.
pub const CHAIN: &str = "prerouting";
/// The table's family.
pub const FAMILY: u8 = codec::nfproto::INET;

/// One mark rule: packets to `daddr`, protocol `proto`, destination port in
/// `ports` get firewall mark `mark`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct MarkRule {
    /// Destination address (the VIP).
    pub daddr: IpAddr,
    /// IP protocol number (6 tcp, 17 udp, 132 sctp).
    pub proto: u8,
    /// First and last destination port (equal for one port).
    pub ports: (u16, u16),
    /// The mark set.
    pub mark: u32,
}

impl MarkRule {
    /// `tcp`, `udp`, `sctp`, or the number.
    pub fn proto_label(p: u8) -> String {
        match p {
            6 => "tcp".into(),
            17 => "udp".into(),
            132 => "sctp".into(),
            n => n.to_string(),
        }
    }

    /// The rule's expressions, in the order `nft` generates them for the
    /// same rule in an inet table.
    pub fn exprs(&self) -> Vec<Expr> {
        let (nfproto, offset, len) = match self.daddr {
            IpAddr::V4(_) => (codec::nfproto::IPV4, 16, 4),
            IpAddr::V6(_) => (codec::nfproto::IPV6, 24, 16),
        };
        let mut v = vec![
            Expr::MetaLoad { key: MetaKey::NfProto, dreg: REG_1 },
            Expr::Cmp { sreg: REG_1, op: 0, data: vec![nfproto] },
            Expr::Payload { base: PayloadBase::Network, offset, len, dreg: REG_1 },
            Expr::Cmp { sreg: REG_1, op: 0, data: codec::addr_bytes(&self.daddr) },
            Expr::MetaLoad { key: MetaKey::L4Proto, dreg: REG_1 },
            Expr::Cmp { sreg: REG_1, op: 0, data: vec![self.proto] },
            Expr::Payload { base: PayloadBase::Transport, offset: 2, len: 2, dreg: REG_1 },
        ];
        let (a, b) = self.ports;
        if a == b {
            v.push(Expr::Cmp { sreg: REG_1, op: 0, data: a.to_be_bytes().to_vec() });
        } else {
            v.push(Expr::Range { sreg: REG_1, op: 0, from: a.to_be_bytes().to_vec(), to: b.to_be_bytes().to_vec() });
        }
        v.push(Expr::Immediate { dreg: REG_1, data: self.mark.to_ne_bytes().to_vec() });
        v.push(Expr::MetaSet { key: MetaKey::Mark, sreg: REG_1 });
        v
    }

    /// The rule in `nft list` syntax.
    pub fn nft_text(&self) -> String {
        let fam = if self.daddr.is_ipv4() { "ip" } else { "ip6" };
        let p = Self::proto_label(self.proto);
        let ports = if self.ports.0 == self.ports.1 {
            self.ports.0.to_string()
        } else {
            format!("{}-{}", self.ports.0, self.ports.1)
        };
        format!("{fam} daddr {} {p} dport {ports} meta mark set {:#x}", self.daddr, self.mark)
    }
}

/// The chain lbd creates.
pub fn chain() -> BaseChain {
    BaseChain {
        name: CHAIN.into(),
        hook: codec::HOOK_PREROUTING,
        priority: codec::PRIORITY_MANGLE,
        kind: "filter".into(),
        policy: codec::POLICY_ACCEPT,
    }
}

/// The whole table in `nft list table` syntax (what `lbd ctl fwmark` shows).
pub fn table_text(rules: &[MarkRule]) -> String {
    let mut s = format!(
        "table inet {TABLE} {{\n\tchain {CHAIN} {{\n\t\ttype filter hook prerouting priority mangle; policy accept;\n"
    );
    for r in rules {
        s.push_str(&format!("\t\t{}\n", r.nft_text()));
    }
    s.push_str("\t}\n}\n");
    s
}

/// The batch (without BEGIN/END) that makes the table exactly `rules`:
/// `add table` (no-op if present), `delete table`, `add table`, the chain,
/// the rules. One transaction.
pub fn replace_batch(rules: &[MarkRule]) -> Vec<Msg> {
    let mut v = vec![codec::new_table(FAMILY, TABLE), codec::del_table(FAMILY, TABLE), codec::new_table(FAMILY, TABLE)];
    v.push(codec::new_chain(FAMILY, TABLE, &chain()));
    for r in rules {
        v.push(codec::new_rule(FAMILY, TABLE, CHAIN, &r.exprs()));
    }
    v
}

/// The batch that removes the table (and nothing else).
pub fn delete_batch() -> Vec<Msg> {
    vec![codec::new_table(FAMILY, TABLE), codec::del_table(FAMILY, TABLE)]
}

/// The `lvsbox` table as read from the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelTable {
    /// `NFT_TABLE_F_*` (1 = dormant: its chains do not run).
    pub flags: u32,
    /// Its chains.
    pub chains: Vec<Object>,
    /// Its rules' expressions, in chain order, with the chain name.
    pub rules: Vec<(String, Vec<Expr>)>,
}

/// Whether `actual` is exactly the table lbd would write for `rules`.
pub fn matches(rules: &[MarkRule], actual: &KernelTable) -> bool {
    let want = chain();
    let chain_ok = match actual.chains.as_slice() {
        [Object::Chain { name, hook, kind, policy, .. }] => {
            *name == want.name
                && *hook == Some((want.hook, want.priority))
                && kind.as_deref() == Some(want.kind.as_str())
                && policy.unwrap_or(codec::POLICY_ACCEPT) == want.policy
        }
        _ => false,
    };
    chain_ok
        && actual.flags == 0
        && actual.rules.len() == rules.len()
        && actual.rules.iter().zip(rules).all(|((c, e), r)| c == CHAIN && *e == r.exprs())
}

/// What to do about the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// It is exactly right (or absent and not wanted).
    None,
    /// Write it whole.
    Replace,
    /// Remove it (no rules configured).
    Delete,
}

/// Compare, don't rewrite: restarting with an unchanged config changes nothing.
pub fn plan(rules: &[MarkRule], actual: Option<&KernelTable>) -> Action {
    match (rules.is_empty(), actual) {
        (true, None) => Action::None,
        (true, Some(_)) => Action::Delete,
        (false, Some(a)) if matches(rules, a) => Action::None,
        (false, _) => Action::Replace,
    }
}

/// Reads the `lvsbox` table (None when it does not exist).
pub fn read(nft: &mut client::Nft) -> Result<Option<KernelTable>, client::NftError> {
    let flags = match nft.request(&codec::get_table(FAMILY, TABLE)) {
        Ok(objs) => objs
            .into_iter()
            .find_map(|o| match o {
                Object::Table { flags, .. } => Some(flags),
                _ => None,
            })
            .unwrap_or(0),
        Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let chains: Vec<Object> = nft
        .dump(&codec::dump_chains(FAMILY, TABLE))?
        .into_iter()
        .filter(|o| matches!(o, Object::Chain { table, family, .. } if table == TABLE && *family == FAMILY))
        .collect();
    let rules = nft
        .dump(&codec::dump_rules(FAMILY, TABLE))?
        .into_iter()
        .filter_map(|o| match o {
            Object::Rule { table, chain, exprs, family, .. } if table == TABLE && family == FAMILY => {
                Some((chain, exprs))
            }
            _ => None,
        })
        .collect();
    Ok(Some(KernelTable { flags, chains, rules }))
}

/// What one sync did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// What was decided.
    pub action: Action,
    /// Whether the kernel now has exactly the configured rules.
    pub in_sync: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads the table and replaces or deletes it when it differs from `rules`.
pub fn sync(nft: &mut client::Nft, rules: &[MarkRule]) -> SyncReport {
    let actual = match read(nft) {
        Ok(a) => a,
        Err(e) => {
            return SyncReport { action: Action::None, in_sync: false, error: Some(format!("reading table: {e}")) };
        }
    };
    let action = plan(rules, actual.as_ref());
    let batch = match action {
        Action::None => return SyncReport { action, in_sync: true, error: None },
        Action::Replace => replace_batch(rules),
        Action::Delete => delete_batch(),
    };
    match nft.batch(&batch) {
        Ok(()) => SyncReport { action, in_sync: true, error: None },
        Err((i, e)) => {
            let what = match i {
                0..=2 => "table".to_string(),
                3 => "chain".to_string(),
                n => format!("rule {}", rules.get(n - 4).map(MarkRule::nft_text).unwrap_or_default()),
            };
            SyncReport { action, in_sync: false, error: Some(format!("{what}: {e}")) }
        }
    }
}
