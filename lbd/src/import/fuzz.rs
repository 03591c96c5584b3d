//! What the fuzzers check, shared by the mutation test in the normal test
//! suite (`import::tests`) and the coverage-guided fuzzer in `lbd/fuzz`:
//! the mutator, and one entry point per parser (and the VRRP decoder) that panics (through an
//! assertion) when an invariant breaks. Any other panic is a bug as well.
//!
//! Invariants: no input panics; an import with no error has TOML, and that
//! TOML passes lbd's own parser; a config lbd accepts serializes to a text
//! it accepts again.

use std::path::Path;

use super::{MemFs, ipvsadm, keepalived};
use crate::config::Config;
use crate::ctl::proto::ImportFormat;

/// A tiny deterministic PRNG (xorshift64*), so failures reproduce.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Fragments the mutator splices in: the syntax of both inputs and of
/// lvsbox's TOML, and numbers at the edges of their types.
pub const TOKENS: &[&str] = &[
    "{",
    "}",
    "\"",
    "'",
    "\\",
    "!",
    "#",
    "$",
    "${",
    "$X=",
    "$X",
    "include ",
    "include k.conf\n",
    "include etc/conf.d/*.conf\n",
    "\n",
    " ",
    "-",
    ":",
    "/",
    "*",
    "[",
    "?",
    "virtual_server ",
    "virtual_server group G {\n",
    "virtual_server_group G {\n",
    "real_server ",
    "fwmark ",
    "vrrp_instance ",
    "lvs_method TUN type gue port ",
    "persistence_timeout ",
    "persistence_granularity ",
    "65536",
    "0",
    "-1",
    "4294967296",
    "1.2.3.4-9",
    "2001:db8::1-ffff",
    "::",
    "@x ",
    "lvs_sync_daemon ",
    "-A -t ",
    "-a -f 1 -r ",
    "-p",
    "-M ",
    "--set ",
    "|| ",
    "$ipv ",
    "ipv=ipvsadm\n",
    "é",
    "\u{0}",
    "[[services]]\n",
    "[[services.reals]]\n",
    "[vrrp]\n",
    "[[vrrp.instances]]\n",
    "check = { type = \"http\" }\n",
    " = ",
    "\"\"\"",
    "1e309",
    "nan",
    "18446744073709551616",
];

/// Up to 8 random edits of `src`: deletions, token insertions, a chunk
/// copied elsewhere, a changed character, a truncation.
pub fn mutate(rng: &mut Rng, src: &str) -> String {
    let mut b: Vec<char> = src.chars().collect();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(b.len() + 1);
        match rng.below(5) {
            0 if !b.is_empty() => {
                let end = (at + rng.below(40)).min(b.len());
                b.drain(at.min(end)..end);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                b.splice(at..at, t.chars());
            }
            2 if !b.is_empty() => {
                let end = (at + rng.below(200)).min(b.len());
                let chunk: Vec<char> = b[at.min(end)..end].to_vec();
                let to = rng.below(b.len() + 1);
                b.splice(to..to, chunk);
            }
            3 if at < b.len() => b[at] = char::from(rng.below(128) as u8),
            _ => b.truncate(at),
        }
    }
    b.into_iter().collect()
}

fn check_outcome(out: &super::Outcome, what: &str) {
    assert_eq!(out.toml.is_some(), !out.report.has_errors(), "{what}: TOML written although the report has errors");
    if let Some(toml) = &out.toml
        && let Err(e) = crate::config::parse(toml, "imported.toml")
    {
        panic!("{what}: the imported TOML does not parse: {e:?}\n{toml}");
    }
}

/// `text` as a keepalived.conf: from the file system (it includes itself
/// and a glob, so include loops are exercised), and as a console paste
/// merged onto the default config.
pub fn keepalived(text: &str) {
    let fs = MemFs::default().with("k.conf", text).with("etc/conf.d/30-fuzz.conf", text);
    check_outcome(&keepalived::import_text(&fs, text, "k.conf"), "keepalived");
    check_outcome(&keepalived::import_file(&fs, Path::new("etc/conf.d/30-fuzz.conf")), "keepalived file");
    let p = super::paste(ImportFormat::Keepalived, text, &Config::default());
    check_outcome(&p.outcome, "keepalived paste");
}

/// `text` as ipvsadm rules: the importer, and the `restore` parser of the
/// control socket.
pub fn ipvsadm(text: &str) {
    check_outcome(&ipvsadm::import_text(text, "rules"), "ipvsadm");
    let _ = crate::ipvsadm::restore(&[], text);
}

/// `text` as lvsbox's TOML config: whatever lbd accepts, it writes back in
/// a form it accepts again, and its JSON form (lbd's compacting copy of a
/// large config) reads back equal.
pub fn config(text: &str) {
    let Ok(cfg) = crate::config::parse(text, "fuzz.toml") else { return };
    if let Err(e) = crate::config::parse(&cfg.to_toml(), "again.toml") {
        panic!("config: accepted, but its serialization is refused: {e:?}\n{}", cfg.to_toml());
    }
    let json = serde_json::to_vec(&cfg).expect("an accepted config serialises");
    let back: crate::config::Config = serde_json::from_slice(&json).expect("its JSON reads back");
    assert!(back == cfg, "config: its JSON reads back different\n{}", String::from_utf8_lossy(&json));
}

/// Any bytes, as a VRRP message or an IPv4 packet carrying one: the decoder
/// must not panic, and what it accepts must encode back to the same message.
pub fn vrrp(data: &[u8]) {
    use crate::vrrp::packet::{self, ChecksumMode, Version};
    use std::net::IpAddr;
    let src: IpAddr = "fe80::1".parse().expect("an address");
    let dst: IpAddr = packet::MCAST_V6.into();
    let hop = data.first().copied().unwrap_or(255) | 0xfe; // 254 or 255
    for r in [packet::decode_ipv4(data), packet::decode(data, src, dst, hop)].into_iter().flatten() {
        let mode = if r.pseudo_header { ChecksumMode::PseudoHeader } else { ChecksumMode::MessageOnly };
        let mut out = packet::Buf::new();
        packet::encode(&r.advert, r.src, r.dst, mode, &mut out).expect("an accepted advert re-encodes");
        let again = packet::decode(&out, r.src, r.dst, 255).expect("our own encoding decodes");
        assert_eq!(again.advert, r.advert);
        if r.advert.version == Version::V2 {
            assert_eq!(out.len(), 16 + 4 * r.advert.addrs.len());
        }
    }
}

/// The HTTPS checks' TLS client fed `data` as the server's bytes, whole and
/// in two pieces: an error or a wait, never a panic.
pub fn tls(data: &[u8]) {
    use crate::health::tls::Client;
    let mut c = Client::new(Some("fuzz.example"), [1; 32], [2; 32]);
    let _ = c.feed(data);
    let cut = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut c = Client::new(None, [1; 32], [2; 32]);
    if c.feed(&data[..cut]).is_ok() {
        let _ = c.feed(&data[cut..]);
    }
}
