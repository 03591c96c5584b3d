//! X25519 (RFC 7748 §5): the key exchange of the HTTPS checks' TLS 1.3.
//!
//! Field elements are five 51-bit limbs; products go through `u128`. The
//! ladder swaps with a mask, not a branch. Performance hardly matters here
//! (one exchange per HTTPS check attempt, ~0.1 ms natively).

type Fe = [u64; 5];

const MASK: u64 = (1 << 51) - 1;

fn load(b: &[u8; 32]) -> Fe {
    let w = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(x)
    };
    // Bits 0, 51, 102, 153 and 204 start in bytes 0, 6, 12, 19 and 24; the
    // top bit (255) is masked off, as RFC 7748 asks of a u-coordinate.
    [w(0) & MASK, (w(6) >> 3) & MASK, (w(12) >> 6) & MASK, (w(19) >> 1) & MASK, (w(24) >> 12) & MASK]
}

/// Carries every limb below 2^51 (plus at most a small excess in limb 0's
/// wrap-around, removed by a second call).
fn carry(a: [u128; 5]) -> Fe {
    let mut r = a;
    for i in 0..4 {
        r[i + 1] += r[i] >> 51;
        r[i] &= MASK as u128;
    }
    r[0] += (r[4] >> 51) * 19;
    r[4] &= MASK as u128;
    r[1] += r[0] >> 51;
    r[0] &= MASK as u128;
    [r[0] as u64, r[1] as u64, r[2] as u64, r[3] as u64, r[4] as u64]
}

fn wide(a: &Fe) -> [u128; 5] {
    a.map(u128::from)
}

fn add(a: &Fe, b: &Fe) -> Fe {
    let mut r = wide(a);
    for (x, y) in r.iter_mut().zip(b) {
        *x += u128::from(*y);
    }
    carry(r)
}

fn sub(a: &Fe, b: &Fe) -> Fe {
    // a + 4p - b: limbs of a and b stay below 2^52, so nothing goes negative.
    const FOUR_P: [u128; 5] =
        [4 * ((1 << 51) - 19), 4 * ((1 << 51) - 1), 4 * ((1 << 51) - 1), 4 * ((1 << 51) - 1), 4 * ((1 << 51) - 1)];
    let mut r = wide(a);
    for i in 0..5 {
        r[i] = r[i] + FOUR_P[i] - u128::from(b[i]);
    }
    carry(r)
}

fn mul(a: &Fe, b: &Fe) -> Fe {
    let m = |x: u64, y: u64| u128::from(x) * u128::from(y);
    let [a0, a1, a2, a3, a4] = *a;
    let [b0, b1, b2, b3, b4] = *b;
    let (b1_19, b2_19, b3_19, b4_19) = (b1 * 19, b2 * 19, b3 * 19, b4 * 19);
    carry([
        m(a0, b0) + m(a1, b4_19) + m(a2, b3_19) + m(a3, b2_19) + m(a4, b1_19),
        m(a0, b1) + m(a1, b0) + m(a2, b4_19) + m(a3, b3_19) + m(a4, b2_19),
        m(a0, b2) + m(a1, b1) + m(a2, b0) + m(a3, b4_19) + m(a4, b3_19),
        m(a0, b3) + m(a1, b2) + m(a2, b1) + m(a3, b0) + m(a4, b4_19),
        m(a0, b4) + m(a1, b3) + m(a2, b2) + m(a3, b1) + m(a4, b0),
    ])
}

fn mul_small(a: &Fe, k: u64) -> Fe {
    carry(a.map(|x| u128::from(x) * u128::from(k)))
}

/// a^(p-2) = 1/a (0 for 0).
fn invert(a: &Fe) -> Fe {
    // p - 2 = 2^255 - 21: bits 254..5 set, then 0b01011.
    let mut r: Fe = [1, 0, 0, 0, 0];
    for bit in (0..255).rev() {
        r = mul(&r, &r);
        let set = bit >= 5 || (0b01011 >> bit) & 1 == 1;
        if set {
            r = mul(&r, a);
        }
    }
    r
}

fn store(a: &Fe) -> [u8; 32] {
    let mut h = carry(wide(&carry(wide(a))));
    // h < 2^255 + small: subtract p once if h >= p.
    let mut q = (h[0] + 19) >> 51;
    for x in &h[1..] {
        q = (x + q) >> 51;
    }
    h[0] += 19 * q;
    for i in 0..4 {
        h[i + 1] += h[i] >> 51;
        h[i] &= MASK;
    }
    h[4] &= MASK;
    let mut out = [0u8; 32];
    let (mut acc, mut bits, mut at) = (0u128, 0u32, 0usize);
    for limb in h {
        acc |= u128::from(limb) << bits;
        bits += 51;
        while bits >= 8 {
            out[at] = acc as u8;
            acc >>= 8;
            bits -= 8;
            at += 1;
        }
    }
    out[at] = acc as u8;
    out
}

fn cswap(swap: u64, a: &mut Fe, b: &mut Fe) {
    let mask = 0u64.wrapping_sub(swap);
    for i in 0..5 {
        let t = mask & (a[i] ^ b[i]);
        a[i] ^= t;
        b[i] ^= t;
    }
}

/// X25519(k, u): the scalar `k` (clamped here) times the point with
/// u-coordinate `u`.
pub fn x25519(k: &[u8; 32], u: &[u8; 32]) -> [u8; 32] {
    let mut k = *k;
    k[0] &= 248;
    k[31] &= 127;
    k[31] |= 64;
    let x1 = load(u);
    let (mut x2, mut z2, mut x3, mut z3): (Fe, Fe, Fe, Fe) = ([1, 0, 0, 0, 0], [0; 5], x1, [1, 0, 0, 0, 0]);
    let mut swap = 0u64;
    for t in (0..255).rev() {
        let kt = u64::from((k[t / 8] >> (t % 8)) & 1);
        swap ^= kt;
        cswap(swap, &mut x2, &mut x3);
        cswap(swap, &mut z2, &mut z3);
        swap = kt;
        let a = add(&x2, &z2);
        let aa = mul(&a, &a);
        let b = sub(&x2, &z2);
        let bb = mul(&b, &b);
        let e = sub(&aa, &bb);
        let c = add(&x3, &z3);
        let d = sub(&x3, &z3);
        let da = mul(&d, &a);
        let cb = mul(&c, &b);
        let s = add(&da, &cb);
        x3 = mul(&s, &s);
        let t2 = sub(&da, &cb);
        z3 = mul(&x1, &mul(&t2, &t2));
        x2 = mul(&aa, &bb);
        z2 = mul(&e, &add(&aa, &mul_small(&e, 121_665)));
    }
    cswap(swap, &mut x2, &mut x3);
    cswap(swap, &mut z2, &mut z3);
    store(&mul(&x2, &invert(&z2)))
}

/// The public key of the private key `k`: X25519(k, 9).
pub fn public(k: &[u8; 32]) -> [u8; 32] {
    let mut nine = [0u8; 32];
    nine[0] = 9;
    x25519(k, &nine)
}
