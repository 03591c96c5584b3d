#![no_main]
//! Any bytes: the decoder must not panic, and what it accepts must encode
//! back to the same message (modulo the checksum form and reserved bits).

use std::net::IpAddr;

use lbd::vrrp::packet::{self, ChecksumMode, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src: IpAddr = "fe80::1".parse().unwrap();
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
});
