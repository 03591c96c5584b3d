//! Fixtures: RFC 7748 §5.2/§6.1 (X25519), FIPS 197 appendix C.1 (AES-128),
//! RFC 8448's early-secret values (the key schedule), and AES-GCM / X25519
//! vectors computed with Python's `cryptography` (OpenSSL). The handshake
//! itself is tested against a real OpenSSL server: see
//! `lbd/tests/https_check.rs`.

use super::gcm::{Aes128, BadTag, Gcm};
use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

#[test]
fn x25519_rfc7748_scalar_mult() {
    let k = arr("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
    let u = arr("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
    let want: [u8; 32] = arr("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
    assert_eq!(x25519::x25519(&k, &u), want);
}

#[test]
fn x25519_rfc7748_diffie_hellman() {
    let a = arr("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let b = arr("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    let (pa, pb) = (x25519::public(&a), x25519::public(&b));
    assert_eq!(pa, arr::<32>("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
    assert_eq!(pb, arr::<32>("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"));
    let shared: [u8; 32] = arr("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assert_eq!(x25519::x25519(&a, &pb), shared);
    assert_eq!(x25519::x25519(&b, &pa), shared);
}

#[test]
fn x25519_matches_openssl() {
    let k: [u8; 32] = std::array::from_fn(|i| i as u8 + 1);
    let peer: [u8; 32] = std::array::from_fn(|i| i as u8 + 100);
    assert_eq!(x25519::public(&k), arr::<32>("07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c"));
    let pp = x25519::public(&peer);
    assert_eq!(pp, arr::<32>("7d9c24316539825c1896e57f28197746793ce60cbee3ad47da9d07b85fa55e2a"));
    assert_eq!(x25519::x25519(&k, &pp), arr::<32>("148ec3d260615114e3d25c79551b7809f4716199beb8b04dd775cf146ca7ef3e"));
}

#[test]
fn aes128_fips197() {
    let key: [u8; 16] = std::array::from_fn(|i| i as u8);
    let pt = arr("00112233445566778899aabbccddeeff");
    assert_eq!(Aes128::new(&key).encrypt(&pt), arr::<16>("69c4e0d86a7b0430d8cdb78070b4c55a"));
}

#[test]
fn gcm_matches_openssl_and_refuses_a_flipped_bit() {
    let key: [u8; 16] = std::array::from_fn(|i| i as u8);
    let nonce: [u8; 12] = std::array::from_fn(|i| i as u8 + 50);
    let g = Gcm::new(&key);
    assert_eq!(g.seal(&nonce, &[], &mut []), arr::<16>("0086389a757eb6b6b9b96ae7b6eff886"));

    let aad = [0x17, 3, 3, 0, 0x30];
    let pt = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n0123456789abcdef";
    let want = hex(
        "f67b5bea93d20a3e7d5cbe3be6361172886ccd674ec9aaf3ca09d29ea5ab05c1af8e784e7d4c2bf5a47a9c151ec0f15b10a7498c82d3014ecc23c2",
    );
    let mut data = pt.to_vec();
    let tag = g.seal(&nonce, &aad, &mut data);
    assert_eq!([data.as_slice(), &tag].concat(), want);

    let mut back = data.clone();
    g.open(&nonce, &aad, &mut back, &tag).unwrap();
    assert_eq!(back, pt);
    let mut flipped = data.clone();
    flipped[3] ^= 1;
    let sent = flipped.clone();
    assert_eq!(g.open(&nonce, &aad, &mut flipped, &tag), Err(BadTag));
    assert_eq!(flipped, sent, "a record that fails its tag is not decrypted");
}

#[test]
fn tls12_prf_matches_a_reference() {
    // P_SHA256 as RFC 5246 §5 defines it, computed with Python's hmac.
    let out = prf(b"secret", "test label", &[b"seed"], 40);
    assert_eq!(out, hex(PRF_VECTOR));
}

#[test]
fn key_schedule_rfc8448_early_secret() {
    let early = extract(&[0; 32], &[0; 32]);
    assert_eq!(early, arr::<32>("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a"));
    let derived = expand32(&early, "derived", &Sha256::digest([]));
    assert_eq!(derived, arr::<32>("6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba"));
    assert_eq!(expand_label(&derived, "key", &[], 16), hex("dbcdd131d8cc2215797646af02e12787"));
    assert_eq!(expand_label(&derived, "iv", &[], 12), hex("41e2938f405524502cffd9fc"));
}

#[test]
fn client_hello_offers_tls13_x25519_aes128gcm_and_sni() {
    let mut c = Client::new(Some("www.example.com"), [7; 32], [9; 32]);
    let out = c.output();
    assert_eq!(&out[..3], &[22, 3, 1]);
    assert_eq!(usize::from(u16::from_be_bytes([out[3], out[4]])), out.len() - 5);
    let hello = &out[5..];
    assert_eq!(hello[0], 1);
    let find = |needle: &[u8]| hello.windows(needle.len()).any(|w| w == needle);
    assert!(find(&[0, 6, 0x13, 0x01, 0xc0, 0x2b, 0xc0, 0x2f]), "cipher suites: TLS 1.3's and TLS 1.2's AES-128-GCM");
    assert!(find(&[0, 43, 0, 5, 4, 3, 4, 3, 3]), "supported_versions: TLS 1.3, TLS 1.2");
    assert!(find(b"www.example.com"), "SNI");
    assert!(find(&x25519::public(&[9; 32])), "key share");
    assert!(c.output().is_empty(), "output is taken once");
    assert!(!c.connected());
}

#[test]
fn alerts_and_non_tls_replies_read_as_reasons() {
    let mut c = Client::new(None, [1; 32], [2; 32]);
    let e = c.feed(&[21, 3, 3, 0, 2, 2, 70]).unwrap_err();
    assert!(e.contains("protocol_version (the server speaks neither TLS 1.3 nor TLS 1.2)"), "{e}");
    let mut c = Client::new(None, [1; 32], [2; 32]);
    let e = c.feed(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap_err();
    assert!(e.contains("not a TLS server"), "{e}");
    let mut c = Client::new(None, [1; 32], [2; 32]);
    assert!(c.send(b"x").is_err(), "no application data before the handshake");
}

#[test]
fn a_tls12_server_hello_with_another_suite_is_refused_with_a_reason() {
    // A ServerHello without supported_versions (TLS 1.2) choosing
    // ECDHE-RSA-AES256-GCM-SHA384, fed in two pieces.
    let mut body = vec![3, 3];
    body.extend_from_slice(&[5; 32]);
    body.extend_from_slice(&[0, 0xc0, 0x30, 0, 0, 0]);
    let mut msg = vec![2, 0, 0, body.len() as u8];
    msg.extend_from_slice(&body);
    let mut rec = vec![22, 3, 3, 0, msg.len() as u8];
    rec.extend_from_slice(&msg);
    let mut c = Client::new(None, [1; 32], [2; 32]);
    c.feed(&rec[..10]).unwrap();
    let e = c.feed(&rec[10..]).unwrap_err();
    assert!(e.contains("TLS 1.2 cipher suite 0xc030"), "{e}");
}

#[test]
fn sni_names_only() {
    assert_eq!(sni(Some("WWW.Example.com")).as_deref(), Some("www.example.com"));
    assert_eq!(sni(Some("www.example.com:8443")).as_deref(), Some("www.example.com"));
    assert_eq!(sni(Some("10.0.0.1")), None);
    assert_eq!(sni(Some("[2001:db8::1]:443")), None);
    assert_eq!(sni(Some("2001:db8::1")), None);
    assert_eq!(sni(None), None);
}

/// Whatever a server (or something that is not one) sends, the client
/// answers with an error or waits for more; it never panics. Random bytes,
/// and random bodies behind plausible record and handshake headers, fed
/// whole and in two pieces.
#[test]
fn garbage_from_the_server_never_panics() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Cloned: a new client costs an x25519 multiplication, slow unoptimised.
    let (named, bare) = (Client::new(Some("x"), [1; 32], [2; 32]), Client::new(None, [1; 32], [2; 32]));
    for i in 0..20_000 {
        let len = (next() % 300) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        match i % 4 {
            // A handshake record holding a ServerHello-typed message.
            1 if len >= 9 => {
                let n = (len - 5) as u16;
                data[..5].copy_from_slice(&[22, 3, 3, (n >> 8) as u8, n as u8]);
                data[5] = 2;
                data[6] = 0;
                data[7..9].copy_from_slice(&((len - 9) as u16).to_be_bytes());
            }
            // An "encrypted" record (its tag cannot verify) or an alert.
            2 if len >= 5 => {
                let (n, kind) = ((len - 5) as u16, if len.is_multiple_of(2) { 23 } else { 21 });
                data[..5].copy_from_slice(&[kind, 3, 3, (n >> 8) as u8, n as u8]);
            }
            _ => {}
        }
        let mut c = named.clone();
        let _ = c.feed(&data);
        let mut c = bare.clone();
        let cut = if len == 0 { 0 } else { (next() as usize) % len };
        if c.feed(&data[..cut]).is_ok() {
            let _ = c.feed(&data[cut..]);
        }
        assert!(!c.connected(), "random bytes never complete a handshake");
    }
}

const PRF_VECTOR: &str = "bfc72aea54e12f176b7549dc7d0082fecd2be093284636015f9149017f433669e453c27d2993bfb7";
