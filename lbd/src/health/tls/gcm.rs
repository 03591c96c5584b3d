//! AES-128-GCM (FIPS 197, NIST SP 800-38D): the record protection of the
//! HTTPS checks' TLS 1.3 (TLS_AES_128_GCM_SHA256, the suite every TLS 1.3
//! server must offer).
//!
//! A plain byte-oriented AES with a table S-box, and GHASH one bit at a
//! time. Neither is constant-time: fine for a health check, which sends no
//! secret (it does not even authenticate the server, as keepalived's
//! SSL_GET does not without a CA) and reads a few kilobytes a round.

/// The AES S-box, computed from its definition (inverse in GF(2^8), then
/// the affine map) at compile time.
const SBOX: [u8; 256] = {
    let mut s = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        // x^254 = x^-1 (and 0 for 0).
        let (mut r, mut b, mut e) = (1u8, i as u8, 254u32);
        while e > 0 {
            if e & 1 == 1 {
                r = gmul(r, b);
            }
            b = gmul(b, b);
            e >>= 1;
        }
        let inv = if i == 0 { 0 } else { r };
        s[i] = inv ^ inv.rotate_left(1) ^ inv.rotate_left(2) ^ inv.rotate_left(3) ^ inv.rotate_left(4) ^ 0x63;
        i += 1;
    }
    s
};

const fn xtime(a: u8) -> u8 {
    (a << 1) ^ if a & 0x80 != 0 { 0x1b } else { 0 }
}

const fn gmul(mut a: u8, mut b: u8) -> u8 {
    let mut r = 0;
    while b != 0 {
        if b & 1 == 1 {
            r ^= a;
        }
        a = xtime(a);
        b >>= 1;
    }
    r
}

/// An expanded AES-128 key (11 round keys), encryption only (GCM needs no
/// other direction).
#[derive(Clone)]
pub struct Aes128 {
    rk: [[u8; 16]; 11],
}

impl Aes128 {
    /// Expands `key`.
    pub fn new(key: &[u8; 16]) -> Aes128 {
        let mut w = [[0u8; 4]; 44];
        for (i, word) in w.iter_mut().take(4).enumerate() {
            word.copy_from_slice(&key[4 * i..4 * i + 4]);
        }
        let mut rcon = 1u8;
        for i in 4..44 {
            let mut t = w[i - 1];
            if i % 4 == 0 {
                t = [SBOX[t[1] as usize] ^ rcon, SBOX[t[2] as usize], SBOX[t[3] as usize], SBOX[t[0] as usize]];
                rcon = xtime(rcon);
            }
            for j in 0..4 {
                w[i][j] = w[i - 4][j] ^ t[j];
            }
        }
        let mut rk = [[0u8; 16]; 11];
        for (r, k) in rk.iter_mut().enumerate() {
            for c in 0..4 {
                k[4 * c..4 * c + 4].copy_from_slice(&w[4 * r + c]);
            }
        }
        Aes128 { rk }
    }

    /// Encrypts one block.
    pub fn encrypt(&self, block: &[u8; 16]) -> [u8; 16] {
        let mut s = *block;
        xor16(&mut s, &self.rk[0]);
        for round in 1..11 {
            // SubBytes and ShiftRows (state byte r + 4c is row r, column c).
            let mut t = [0u8; 16];
            for c in 0..4 {
                for r in 0..4 {
                    t[r + 4 * c] = SBOX[s[r + 4 * ((c + r) % 4)] as usize];
                }
            }
            if round < 10 {
                for c in 0..4 {
                    let col = [t[4 * c], t[4 * c + 1], t[4 * c + 2], t[4 * c + 3]];
                    let all = col[0] ^ col[1] ^ col[2] ^ col[3];
                    for r in 0..4 {
                        t[4 * c + r] = col[r] ^ all ^ xtime(col[r] ^ col[(r + 1) % 4]);
                    }
                }
            }
            xor16(&mut t, &self.rk[round]);
            s = t;
        }
        s
    }
}

fn xor16(a: &mut [u8; 16], b: &[u8; 16]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

/// AES-128-GCM with a 96-bit nonce and a 128-bit tag.
#[derive(Clone)]
pub struct Gcm {
    aes: Aes128,
    h: u128,
}

/// The tag did not verify: the record was not sent with our key.
#[derive(Debug, PartialEq, Eq)]
pub struct BadTag;

impl Gcm {
    /// A GCM instance for `key`.
    pub fn new(key: &[u8; 16]) -> Gcm {
        let aes = Aes128::new(key);
        let h = u128::from_be_bytes(aes.encrypt(&[0; 16]));
        Gcm { aes, h }
    }

    /// Encrypts `data` in place and returns the tag.
    pub fn seal(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
        self.ctr(nonce, data);
        self.tag(nonce, aad, data)
    }

    /// Verifies `tag` and decrypts `data` in place.
    pub fn open(&self, nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; 16]) -> Result<(), BadTag> {
        let want = self.tag(nonce, aad, data);
        let diff = want.iter().zip(tag).fold(0u8, |d, (a, b)| d | (a ^ b));
        if diff != 0 {
            return Err(BadTag);
        }
        self.ctr(nonce, data);
        Ok(())
    }

    fn counter(nonce: &[u8; 12], n: u32) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..12].copy_from_slice(nonce);
        b[12..].copy_from_slice(&n.to_be_bytes());
        b
    }

    fn ctr(&self, nonce: &[u8; 12], data: &mut [u8]) {
        for (i, chunk) in data.chunks_mut(16).enumerate() {
            let ks = self.aes.encrypt(&Self::counter(nonce, 2 + i as u32));
            for (x, k) in chunk.iter_mut().zip(ks) {
                *x ^= k;
            }
        }
    }

    fn tag(&self, nonce: &[u8; 12], aad: &[u8], ct: &[u8]) -> [u8; 16] {
        let mut x = 0u128;
        for part in [aad, ct] {
            for chunk in part.chunks(16) {
                let mut b = [0u8; 16];
                b[..chunk.len()].copy_from_slice(chunk);
                x = gf_mul(x ^ u128::from_be_bytes(b), self.h);
            }
        }
        let lens = (u128::from(aad.len() as u64 * 8) << 64) | u128::from(ct.len() as u64 * 8);
        x = gf_mul(x ^ lens, self.h);
        let mut t = self.aes.encrypt(&Self::counter(nonce, 1));
        xor16(&mut t, &x.to_be_bytes());
        t
    }
}

/// Multiplication in GF(2^128) with GCM's bit order (SP 800-38D, algorithm 1).
fn gf_mul(x: u128, y: u128) -> u128 {
    let (mut z, mut v) = (0u128, y);
    for i in 0..128 {
        if (x >> (127 - i)) & 1 == 1 {
            z ^= v;
        }
        v = if v & 1 == 1 { (v >> 1) ^ (0xe1 << 120) } else { v >> 1 };
    }
    z
}
