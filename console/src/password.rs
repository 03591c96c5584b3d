//! The console password: PBKDF2-HMAC-SHA256 in a PHC-style string.
//!
//! Format: `$pbkdf2-sha256$i=ITER,l=32$SALT$HASH`, SALT (16 bytes) and HASH
//! (32 bytes) in unpadded standard base64, as the PHC string format and
//! RustCrypto's `pbkdf2` crate write them. The iteration count is stored in
//! the string, so verification follows whatever was used when it was set.

use sha2::Sha256;

/// Iterations for a new hash: twice the 100k floor, ~0.1-0.3 s on a small box.
pub const DEFAULT_ITERATIONS: u32 = 200_000;
/// Below this a stored hash is refused (a config cannot weaken the check).
pub const MIN_ITERATIONS: u32 = 1_000;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
const ID: &str = "pbkdf2-sha256";

/// Hashes `password` with `salt` and `iterations` into a PHC-style string.
pub fn hash_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut out = [0u8; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    format!("${ID}$i={iterations},l={HASH_LEN}${}${}", b64_encode(salt), b64_encode(&out))
}

/// Hashes `password` with a fresh random salt from the kernel.
pub fn hash(password: &str, iterations: u32) -> std::io::Result<String> {
    let mut salt = [0u8; SALT_LEN];
    random_bytes(&mut salt)?;
    Ok(hash_with(password, &salt, iterations))
}

/// Reads random bytes from `/dev/urandom` (the kernel CSPRNG; blocks only
/// before the pool is initialized at early boot, never afterwards).
pub fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// Why a stored hash cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadHash(pub String);

struct Parsed {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse(s: &str) -> Result<Parsed, BadHash> {
    let bad = |why: &str| BadHash(format!("console_password is not a {ID} hash: {why}"));
    let mut parts = s.split('$');
    if parts.next() != Some("") || parts.next() != Some(ID) {
        return Err(bad("it must start with $pbkdf2-sha256$"));
    }
    let params = parts.next().ok_or_else(|| bad("missing parameters"))?;
    let salt = parts.next().ok_or_else(|| bad("missing salt"))?;
    let hash = parts.next().ok_or_else(|| bad("missing hash"))?;
    if parts.next().is_some() {
        return Err(bad("too many fields"));
    }
    let mut iterations = None;
    for kv in params.split(',') {
        match kv.split_once('=') {
            Some(("i", v)) => iterations = Some(v.parse::<u32>().map_err(|_| bad("bad iteration count"))?),
            Some(("l", v)) => {
                if v.parse::<usize>().ok() != Some(HASH_LEN) {
                    return Err(bad("output length must be 32"));
                }
            }
            _ => return Err(bad("unknown parameter")),
        }
    }
    let iterations = iterations.ok_or_else(|| bad("missing i="))?;
    if iterations < MIN_ITERATIONS {
        return Err(bad("too few iterations"));
    }
    let salt = b64_decode(salt).ok_or_else(|| bad("salt is not base64"))?;
    let hash = b64_decode(hash).ok_or_else(|| bad("hash is not base64"))?;
    if hash.len() != HASH_LEN || salt.len() < 8 {
        return Err(bad("wrong salt or hash length"));
    }
    Ok(Parsed { iterations, salt, hash })
}

/// Checks a stored hash string's form (for the config's sake).
pub fn check_format(stored: &str) -> Result<(), BadHash> {
    parse(stored).map(|_| ())
}

/// Whether `password` matches `stored`. A malformed `stored` never matches.
pub fn verify(password: &str, stored: &str) -> Result<bool, BadHash> {
    let p = parse(stored)?;
    let mut out = [0u8; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &p.salt, p.iterations, &mut out);
    // Constant-time comparison: no early exit on the first differing byte.
    let diff = out.iter().zip(&p.hash).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    Ok(diff == 0)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Delay before the next login attempt after `failures` failed ones:
/// 1 s, 2 s, 4 s, ... capped at 60 s.
pub fn lockout_ms(failures: u32) -> u64 {
    if failures == 0 {
        return 0;
    }
    (1000u64 << (failures - 1).min(6)).min(60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(b64_decode(&b64_encode(&data)).unwrap(), data);
        }
        assert_eq!(b64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64_encode(b"fo"), "Zm8");
    }

    #[test]
    fn known_vector() {
        // RFC 7914 §11 PBKDF2-HMAC-SHA256 vector: P="passwd", S="salt", c=1, first 32 bytes.
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"passwd", b"salt", 1, &mut out);
        assert_eq!(out[..4], [0x55, 0xac, 0x04, 0x6e]);
    }

    #[test]
    fn hash_and_verify() {
        let h = hash("s3cret pass", 1000).unwrap();
        assert!(h.starts_with("$pbkdf2-sha256$i=1000,l=32$"), "{h}");
        assert_eq!(verify("s3cret pass", &h), Ok(true));
        assert_eq!(verify("s3cret pasS", &h), Ok(false));
        let h2 = hash("s3cret pass", 1000).unwrap();
        assert_ne!(h, h2, "salts differ");
    }

    #[test]
    fn malformed_hashes_are_refused() {
        assert!(verify("x", "plaintext").is_err());
        assert!(verify("x", "$pbkdf2-sha256$i=10,l=32$c2FsdHNhbHQ$AAAA").is_err());
        let h = hash_with("x", b"saltsalt", 1000);
        let weak = h.replace("i=1000", "i=999");
        assert!(verify("x", &weak).is_err());
        assert!(check_format(&h).is_ok());
    }

    #[test]
    fn lockout_grows_and_caps() {
        assert_eq!(lockout_ms(0), 0);
        assert_eq!(lockout_ms(1), 1000);
        assert_eq!(lockout_ms(2), 2000);
        assert_eq!(lockout_ms(3), 4000);
        assert_eq!(lockout_ms(7), 60_000);
        assert_eq!(lockout_ms(100), 60_000);
    }
}
