//! A TLS 1.3 (RFC 8446) and TLS 1.2 (RFC 5246) client for HTTPS checks,
//! sans-IO: bytes in, bytes out, no socket and no clock, so it is tested
//! with fixtures and against a real OpenSSL server alike.
//!
//! What a health check needs and no more: AES-128-GCM (TLS 1.3's
//! TLS_AES_128_GCM_SHA256, mandatory for every TLS 1.3 server; TLS 1.2's
//! ECDHE-ECDSA/ECDHE-RSA-AES128-GCM-SHA256), one key-exchange group
//! (x25519, which every mainstream server offers), no resumption, no early
//! data, no renegotiation. Like keepalived's `SSL_GET` without a CA, the server's certificate
//! is not verified: a check asks "does the service answer", and a real
//! server's certificate is usually issued for the VIP's name, not for the
//! address the director checks. The handshake itself is verified (the
//! server's Finished MAC), so a broken or half-configured TLS stack fails
//! the check.

pub mod gcm;
pub mod x25519;

use sha2::{Digest, Sha256};

use gcm::Gcm;

#[cfg(test)]
mod tests;

/// Largest record body accepted (2^14 plus the expansion TLS 1.3 allows).
const RECORD_MAX: usize = (1 << 14) + 256;
/// Largest handshake message accepted (a long certificate chain fits).
const HANDSHAKE_MAX: usize = 64 * 1024;

const CT_CCS: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPDATA: u8 = 23;

const HT_CLIENT_HELLO: u8 = 1;
const HT_SERVER_HELLO: u8 = 2;
const HT_NEW_SESSION_TICKET: u8 = 4;
const HT_ENCRYPTED_EXTENSIONS: u8 = 8;
const HT_CERTIFICATE: u8 = 11;
const HT_CERTIFICATE_REQUEST: u8 = 13;
const HT_CERTIFICATE_VERIFY: u8 = 15;
const HT_FINISHED: u8 = 20;
const HT_KEY_UPDATE: u8 = 24;

const TLS_AES_128_GCM_SHA256: u16 = 0x1301;
/// TLS 1.2: ECDHE with an ECDSA or an RSA certificate, AES-128-GCM.
const TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: u16 = 0xc02b;
const TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: u16 = 0xc02f;
const HT_HELLO_REQUEST: u8 = 0;
const HT_SERVER_KEY_EXCHANGE: u8 = 12;
const HT_SERVER_HELLO_DONE: u8 = 14;
const HT_CLIENT_KEY_EXCHANGE: u8 = 16;
const X25519: u16 = 0x001d;

/// SHA-256("HelloRetryRequest"): the ServerHello random of a HelloRetryRequest.
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11,
    0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// HMAC-SHA256 of the concatenation of `parts`.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// HKDF-Extract (RFC 5869).
pub fn extract(salt: &[u8], ikm: &[u8]) -> [u8; 32] {
    hmac(salt, &[ikm])
}

/// HKDF-Expand-Label (RFC 8446 §7.1), at most 32 bytes.
pub fn expand_label(secret: &[u8; 32], label: &str, context: &[u8], len: usize) -> Vec<u8> {
    debug_assert!(len <= 32);
    let mut info = Vec::with_capacity(4 + 6 + label.len() + context.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push((6 + label.len()) as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label.as_bytes());
    info.push(context.len() as u8);
    info.extend_from_slice(context);
    hmac(secret, &[&info, &[1]])[..len].to_vec()
}

fn expand32(secret: &[u8; 32], label: &str, context: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&expand_label(secret, label, context, 32));
    out
}

/// TLS 1.2's PRF with SHA-256 (RFC 5246 §5).
pub fn prf(secret: &[u8], label: &str, seed: &[&[u8]], len: usize) -> Vec<u8> {
    let seed: Vec<u8> = [label.as_bytes()].iter().chain(seed).flat_map(|p| p.iter().copied()).collect();
    let mut a = hmac(secret, &[&seed]);
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        out.extend_from_slice(&hmac(secret, &[&a, &seed]));
        a = hmac(secret, &[&a]);
    }
    out.truncate(len);
    out
}

/// The record keys of one direction under one traffic secret.
#[derive(Clone)]
struct Keys {
    gcm: Gcm,
    /// TLS 1.3: the IV the sequence number is XORed into. TLS 1.2: the
    /// first 4 bytes are the implicit salt.
    iv: [u8; 12],
    seq: u64,
    tls12: bool,
}

impl Keys {
    fn new(secret: &[u8; 32]) -> Keys {
        let mut key = [0u8; 16];
        key.copy_from_slice(&expand_label(secret, "key", &[], 16));
        let mut iv = [0u8; 12];
        iv.copy_from_slice(&expand_label(secret, "iv", &[], 12));
        Keys { gcm: Gcm::new(&key), iv, seq: 0, tls12: false }
    }

    /// TLS 1.2 keys from the key block's parts.
    fn tls12(key: &[u8], salt: &[u8]) -> Keys {
        let (mut k, mut iv) = ([0u8; 16], [0u8; 12]);
        k.copy_from_slice(key);
        iv[..4].copy_from_slice(salt);
        Keys { gcm: Gcm::new(&k), iv, seq: 0, tls12: true }
    }

    fn nonce(&mut self) -> [u8; 12] {
        let mut n = self.iv;
        for (x, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *x ^= s;
        }
        self.seq += 1;
        n
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    ServerHello,
    EncryptedExtensions,
    Certificate,
    CertificateVerify,
    Finished,
    Connected,
    // TLS 1.2 (RFC 5246), after a ServerHello without supported_versions.
    Certificate12,
    ServerKeyExchange12,
    ServerHelloDone12,
    ChangeCipherSpec12,
    Finished12,
}

/// One TLS 1.3 client connection.
#[derive(Clone)]
pub struct Client {
    state: State,
    transcript: Sha256,
    private: [u8; 32],
    handshake_secret: [u8; 32],
    client_hs: [u8; 32],
    server_hs: [u8; 32],
    client_ap: [u8; 32],
    server_ap: [u8; 32],
    read: Option<Keys>,
    write: Option<Keys>,
    /// Bytes received that do not make a whole record yet.
    records: Vec<u8>,
    /// Handshake bytes that do not make a whole message yet.
    handshake: Vec<u8>,
    /// The CertificateRequest's context, when the server asked for one.
    cert_request: Option<Vec<u8>>,
    out: Vec<u8>,
    plain: Vec<u8>,
    closed: bool,
    /// TLS 1.2: both hello randoms, the server's x25519 share, the master secret.
    client_random: [u8; 32],
    server_random: [u8; 32],
    server_share: [u8; 32],
    master12: Vec<u8>,
}

/// Why a TLS connection failed, in words for the check's reason.
pub type Error = String;

impl Client {
    /// Starts a connection: the ClientHello is ready in [`Client::output`].
    /// `server_name` goes into SNI; `random` and `private` are fresh random
    /// bytes (the ClientHello random and the x25519 private key).
    pub fn new(server_name: Option<&str>, random: [u8; 32], private: [u8; 32]) -> Client {
        let mut c = Client {
            state: State::ServerHello,
            transcript: Sha256::new(),
            private,
            handshake_secret: [0; 32],
            client_hs: [0; 32],
            server_hs: [0; 32],
            client_ap: [0; 32],
            server_ap: [0; 32],
            read: None,
            write: None,
            records: Vec::new(),
            handshake: Vec::new(),
            cert_request: None,
            out: Vec::new(),
            plain: Vec::new(),
            closed: false,
            client_random: random,
            server_random: [0; 32],
            server_share: [0; 32],
            master12: Vec::new(),
        };
        let hello = client_hello(server_name, &random, &x25519::public(&private));
        c.transcript.update(&hello);
        // The first record says TLS 1.0, as RFC 8446 §5.1 allows, for old
        // middleboxes.
        c.out.extend_from_slice(&[CT_HANDSHAKE, 3, 1]);
        c.out.extend_from_slice(&(hello.len() as u16).to_be_bytes());
        c.out.extend_from_slice(&hello);
        c
    }

    /// Bytes to send to the server (taken: the next call returns only new ones).
    pub fn output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether the handshake is done: [`Client::send`] may be called.
    pub fn connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Whether the server closed the connection with close_notify.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Application data received (taken).
    pub fn received(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.plain)
    }

    /// Queues application data for the server (after the handshake).
    pub fn send(&mut self, data: &[u8]) -> Result<(), Error> {
        if !self.connected() {
            return Err("TLS: sending before the handshake finished".into());
        }
        for chunk in data.chunks(1 << 14) {
            self.seal(CT_APPDATA, chunk);
        }
        Ok(())
    }

    /// Takes bytes received from the server.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), Error> {
        self.records.extend_from_slice(data);
        let mut at = 0;
        let r = loop {
            let rest = &self.records[at..];
            if rest.len() < 5 {
                break Ok(());
            }
            let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            if len > RECORD_MAX {
                break Err("TLS: record too long (not a TLS server?)".to_string());
            }
            if rest.len() < 5 + len {
                break Ok(());
            }
            let mut header = [0u8; 5];
            header.copy_from_slice(&rest[..5]);
            let body = rest[5..5 + len].to_vec();
            at += 5 + len;
            if let Err(e) = self.record(header, body) {
                break Err(e);
            }
        };
        self.records.drain(..at);
        r
    }

    fn record(&mut self, header: [u8; 5], mut body: Vec<u8>) -> Result<(), Error> {
        if header[0] == CT_CCS && self.state == State::ChangeCipherSpec12 {
            let k = &self.master12[..];
            let block = prf(k, "key expansion", &[&self.server_random, &self.client_random], 40);
            self.read = Some(Keys::tls12(&block[16..32], &block[36..40]));
            self.state = State::Finished12;
            return Ok(());
        }
        if self.read.as_ref().is_some_and(|k| k.tls12) {
            return self.record12(header, body);
        }
        match header[0] {
            CT_CCS if self.state != State::Connected => Ok(()),
            CT_ALERT if self.read.is_none() => alert(&body),
            CT_HANDSHAKE if self.read.is_none() => self.handshake_bytes(&body),
            CT_APPDATA if self.read.is_some() => {
                if body.len() < 17 {
                    return Err("TLS: record too short".into());
                }
                let keys = self.read.as_mut().ok_or("TLS: no keys")?;
                let nonce = keys.nonce();
                let split = body.len() - 16;
                let (data, tag) = body.split_at_mut(split);
                let mut t = [0u8; 16];
                t.copy_from_slice(tag);
                keys.gcm
                    .open(&nonce, &header, data, &t)
                    .map_err(|_| "TLS: record does not decrypt (bad_record_mac)")?;
                body.truncate(split);
                // The inner content type is the last non-zero byte.
                let end = body.iter().rposition(|&b| b != 0).ok_or("TLS: record without a content type")?;
                let kind = body[end];
                body.truncate(end);
                match kind {
                    CT_HANDSHAKE => self.handshake_bytes(&body),
                    CT_APPDATA if self.state == State::Connected => {
                        self.plain.extend_from_slice(&body);
                        Ok(())
                    }
                    CT_ALERT => {
                        if body.len() == 2 && body[1] == 0 {
                            self.closed = true;
                            Ok(())
                        } else {
                            alert(&body)
                        }
                    }
                    k => Err(format!("TLS: unexpected record type {k}")),
                }
            }
            _ if header[1] != 3 => Err("TLS: not a TLS server (the reply is not a TLS record)".into()),
            k => Err(format!("TLS: unexpected record type {k}")),
        }
    }

    /// A TLS 1.2 record under the server's keys: explicit nonce, then the
    /// ciphertext of the record's own type.
    fn record12(&mut self, header: [u8; 5], mut body: Vec<u8>) -> Result<(), Error> {
        if body.len() < 8 + 16 {
            return Err("TLS: record too short".into());
        }
        let keys = self.read.as_mut().ok_or("TLS: no keys")?;
        let mut nonce = keys.iv;
        nonce[4..].copy_from_slice(&body[..8]);
        let len = body.len() - 8 - 16;
        let mut aad = keys.seq.to_be_bytes().to_vec();
        aad.extend_from_slice(&[header[0], header[1], header[2], (len >> 8) as u8, len as u8]);
        keys.seq += 1;
        let mut t = [0u8; 16];
        t.copy_from_slice(&body[8 + len..]);
        let data = &mut body[8..8 + len];
        keys.gcm.open(&nonce, &aad, data, &t).map_err(|_| "TLS: record does not decrypt (bad_record_mac)")?;
        let data = body[8..8 + len].to_vec();
        match header[0] {
            CT_HANDSHAKE => self.handshake_bytes(&data),
            CT_APPDATA if self.state == State::Connected => {
                self.plain.extend_from_slice(&data);
                Ok(())
            }
            CT_ALERT if data.len() == 2 && data[1] == 0 => {
                self.closed = true;
                Ok(())
            }
            CT_ALERT => alert(&data),
            k => Err(format!("TLS: unexpected record type {k}")),
        }
    }

    fn handshake_bytes(&mut self, data: &[u8]) -> Result<(), Error> {
        self.handshake.extend_from_slice(data);
        loop {
            if self.handshake.len() < 4 {
                return Ok(());
            }
            let len = u32::from_be_bytes([0, self.handshake[1], self.handshake[2], self.handshake[3]]) as usize;
            if len > HANDSHAKE_MAX {
                return Err("TLS: handshake message too long".into());
            }
            if self.handshake.len() < 4 + len {
                return Ok(());
            }
            let msg: Vec<u8> = self.handshake.drain(..4 + len).collect();
            let keys_before = self.read.is_some();
            self.message(&msg)?;
            if !keys_before && self.read.is_some() && !self.handshake.is_empty() {
                return Err("TLS: handshake data across a key change".into());
            }
        }
    }

    fn message(&mut self, msg: &[u8]) -> Result<(), Error> {
        let (kind, body) = (msg[0], &msg[4..]);
        match (self.state, kind) {
            (State::ServerHello, HT_SERVER_HELLO) => self.server_hello(msg),
            (State::EncryptedExtensions, HT_ENCRYPTED_EXTENSIONS) => {
                self.transcript.update(msg);
                self.state = State::Certificate;
                Ok(())
            }
            (State::Certificate, HT_CERTIFICATE_REQUEST) if self.cert_request.is_none() => {
                let n = usize::from(*body.first().ok_or("TLS: bad CertificateRequest")?);
                self.cert_request = Some(body.get(1..1 + n).ok_or("TLS: bad CertificateRequest")?.to_vec());
                self.transcript.update(msg);
                Ok(())
            }
            (State::Certificate, HT_CERTIFICATE) => {
                self.transcript.update(msg);
                self.state = State::CertificateVerify;
                Ok(())
            }
            (State::CertificateVerify, HT_CERTIFICATE_VERIFY) => {
                self.transcript.update(msg);
                self.state = State::Finished;
                Ok(())
            }
            (State::Finished, HT_FINISHED) => self.server_finished(msg),
            (State::Connected, HT_NEW_SESSION_TICKET) => Ok(()),
            (State::Certificate12, HT_CERTIFICATE) => {
                self.transcript.update(msg);
                self.state = State::ServerKeyExchange12;
                Ok(())
            }
            (State::ServerKeyExchange12, HT_SERVER_KEY_EXCHANGE) => {
                // ECParameters (named_curve x25519), the point; the signature
                // is not verified (no certificate is).
                let mut r = Reader(body);
                let (kind, group) = (r.u8(), r.u16());
                if kind != Some(3) || group != Some(X25519) {
                    let name = match group {
                        Some(0x17) => "secp256r1".to_string(),
                        Some(0x18) => "secp384r1".to_string(),
                        Some(g) => format!("{g:#06x}"),
                        None => "none".to_string(),
                    };
                    return Err(format!("TLS: the server chose key exchange group {name}; lvsbox's checks use x25519"));
                }
                let n = usize::from(r.u8().ok_or("TLS: bad ServerKeyExchange")?);
                let point = r.take(n).filter(|p| p.len() == 32).ok_or("TLS: bad x25519 share in ServerKeyExchange")?;
                self.server_share.copy_from_slice(point);
                self.transcript.update(msg);
                self.state = State::ServerHelloDone12;
                Ok(())
            }
            (State::ServerHelloDone12, HT_CERTIFICATE_REQUEST) if self.cert_request.is_none() => {
                self.cert_request = Some(Vec::new());
                self.transcript.update(msg);
                Ok(())
            }
            (State::ServerHelloDone12, HT_SERVER_HELLO_DONE) => {
                self.transcript.update(msg);
                self.client_flight12()
            }
            (State::Finished12, HT_FINISHED) => {
                let hash = self.transcript.clone().finalize();
                if body != prf(&self.master12, "server finished", &[&hash], 12) {
                    return Err("TLS: the server's Finished does not verify".into());
                }
                self.state = State::Connected;
                Ok(())
            }
            (State::Connected, HT_HELLO_REQUEST) if self.read.as_ref().is_some_and(|k| k.tls12) => Ok(()),
            (State::Connected, HT_KEY_UPDATE) => {
                self.server_ap = expand32(&self.server_ap, "traffic upd", &[]);
                self.read = Some(Keys::new(&self.server_ap));
                if body.first() == Some(&1) {
                    // update_requested: answer with ours, then switch.
                    self.seal(CT_HANDSHAKE, &[HT_KEY_UPDATE, 0, 0, 1, 0]);
                    self.client_ap = expand32(&self.client_ap, "traffic upd", &[]);
                    self.write = Some(Keys::new(&self.client_ap));
                }
                Ok(())
            }
            (_, k) => Err(format!("TLS: unexpected handshake message {k} in state {:?}", self.state)),
        }
    }

    fn server_hello(&mut self, msg: &[u8]) -> Result<(), Error> {
        let bad = || "TLS: malformed ServerHello".to_string();
        let mut r = Reader(&msg[4..]);
        r.take(2).ok_or_else(bad)?;
        let random = r.take(32).ok_or_else(bad)?;
        if random == HRR_RANDOM {
            return Err(
                "TLS: the server asked for another key share (HelloRetryRequest); lvsbox offers x25519 only".into()
            );
        }
        let sid = usize::from(r.u8().ok_or_else(bad)?);
        r.take(sid).ok_or_else(bad)?;
        let suite = r.u16().ok_or_else(bad)?;
        r.u8().ok_or_else(bad)?;
        let mut exts = Reader(r.vec16().ok_or_else(bad)?);
        let (mut version, mut share) = (None, None);
        while !exts.0.is_empty() {
            let t = exts.u16().ok_or_else(bad)?;
            let mut e = Reader(exts.vec16().ok_or_else(bad)?);
            match t {
                43 => version = e.u16(),
                51 => {
                    let group = e.u16().ok_or_else(bad)?;
                    if group != X25519 {
                        return Err(format!("TLS: the server chose key share group {group:#06x}, not x25519"));
                    }
                    share = Some(e.vec16().ok_or_else(bad)?.to_vec());
                }
                _ => {}
            }
        }
        let legacy = u16::from_be_bytes([msg[4], msg[5]]);
        if version.is_none() && legacy == 0x0303 {
            // TLS 1.3 servers mark a downgrade in the random (RFC 8446 §4.1.3):
            // a TLS 1.3 server answering TLS 1.2 to a TLS 1.3 client is an attack.
            if &random[24..] == b"DOWNGRD\x01" {
                return Err("TLS: downgrade to TLS 1.2 detected".into());
            }
            if suite != TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 && suite != TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 {
                return Err(format!("TLS: the server chose TLS 1.2 cipher suite {suite:#06x}"));
            }
            self.server_random.copy_from_slice(random);
            self.transcript.update(msg);
            self.state = State::Certificate12;
            return Ok(());
        }
        if version != Some(0x0304) {
            return Err("TLS: the server chose TLS 1.1 or older; lvsbox's checks speak TLS 1.2 and 1.3".into());
        }
        if suite != TLS_AES_128_GCM_SHA256 {
            return Err(format!("TLS: the server chose cipher suite {suite:#06x}, not TLS_AES_128_GCM_SHA256"));
        }
        let share: [u8; 32] = share.ok_or("TLS: ServerHello without a key share")?.try_into().map_err(|_| bad())?;
        let shared = x25519::x25519(&self.private, &share);
        if shared == [0; 32] {
            return Err("TLS: the server's key share is a low-order point".into());
        }
        self.private = [0; 32];
        self.transcript.update(msg);
        let hash = self.transcript.clone().finalize();
        let early = extract(&[0; 32], &[0; 32]);
        let derived = expand32(&early, "derived", &Sha256::digest([]));
        self.handshake_secret = extract(&derived, &shared);
        self.client_hs = expand32(&self.handshake_secret, "c hs traffic", &hash);
        self.server_hs = expand32(&self.handshake_secret, "s hs traffic", &hash);
        self.read = Some(Keys::new(&self.server_hs));
        self.write = Some(Keys::new(&self.client_hs));
        self.state = State::EncryptedExtensions;
        Ok(())
    }

    fn server_finished(&mut self, msg: &[u8]) -> Result<(), Error> {
        let key = expand32(&self.server_hs, "finished", &[]);
        let want = hmac(&key, &[&self.transcript.clone().finalize()]);
        if msg[4..] != want {
            return Err("TLS: the server's Finished does not verify".into());
        }
        self.transcript.update(msg);
        let hash = self.transcript.clone().finalize();
        let derived = expand32(&self.handshake_secret, "derived", &Sha256::digest([]));
        let master = extract(&derived, &[0; 32]);
        self.client_ap = expand32(&master, "c ap traffic", &hash);
        self.server_ap = expand32(&master, "s ap traffic", &hash);
        if let Some(ctx) = self.cert_request.take() {
            // No client certificate: an empty Certificate message.
            // The context is at most 255 bytes (its length is one byte).
            let len = ctx.len() + 4;
            let mut m = vec![HT_CERTIFICATE, 0, (len >> 8) as u8, len as u8, ctx.len() as u8];
            m.extend_from_slice(&ctx);
            m.extend_from_slice(&[0, 0, 0]);
            self.transcript.update(&m);
            self.seal(CT_HANDSHAKE, &m);
        }
        let key = expand32(&self.client_hs, "finished", &[]);
        let verify = hmac(&key, &[&self.transcript.clone().finalize()]);
        let mut fin = vec![HT_FINISHED, 0, 0, 32];
        fin.extend_from_slice(&verify);
        self.seal(CT_HANDSHAKE, &fin);
        self.read = Some(Keys::new(&self.server_ap));
        self.write = Some(Keys::new(&self.client_ap));
        self.state = State::Connected;
        Ok(())
    }

    /// TLS 1.2 after ServerHelloDone: [empty Certificate], ClientKeyExchange,
    /// ChangeCipherSpec, Finished.
    fn client_flight12(&mut self) -> Result<(), Error> {
        let shared = x25519::x25519(&self.private, &self.server_share);
        if shared == [0; 32] {
            return Err("TLS: the server's key share is a low-order point".into());
        }
        let public = x25519::public(&self.private);
        self.private = [0; 32];
        self.master12 = prf(&shared, "master secret", &[&self.client_random, &self.server_random], 48);
        let block = prf(&self.master12, "key expansion", &[&self.server_random, &self.client_random], 40);
        let plain = |c: &mut Client, m: &[u8]| {
            c.transcript.update(m);
            c.out.extend_from_slice(&[CT_HANDSHAKE, 3, 3, (m.len() >> 8) as u8, m.len() as u8]);
            c.out.extend_from_slice(m);
        };
        if self.cert_request.take().is_some() {
            plain(self, &[HT_CERTIFICATE, 0, 0, 3, 0, 0, 0]);
        }
        let mut cke = vec![HT_CLIENT_KEY_EXCHANGE, 0, 0, 33, 32];
        cke.extend_from_slice(&public);
        plain(self, &cke);
        self.out.extend_from_slice(&[CT_CCS, 3, 3, 0, 1, 1]);
        self.write = Some(Keys::tls12(&block[..16], &block[32..36]));
        let hash = self.transcript.clone().finalize();
        let mut fin = vec![HT_FINISHED, 0, 0, 12];
        fin.extend_from_slice(&prf(&self.master12, "client finished", &[&hash], 12));
        self.transcript.update(&fin);
        self.seal(CT_HANDSHAKE, &fin);
        self.state = State::ChangeCipherSpec12;
        Ok(())
    }

    fn seal(&mut self, kind: u8, data: &[u8]) {
        let Some(keys) = self.write.as_mut() else { return };
        if keys.tls12 {
            let explicit = keys.seq.to_be_bytes();
            let mut nonce = keys.iv;
            nonce[4..].copy_from_slice(&explicit);
            let mut aad = explicit.to_vec();
            aad.extend_from_slice(&[kind, 3, 3, (data.len() >> 8) as u8, data.len() as u8]);
            keys.seq += 1;
            let mut body = data.to_vec();
            let tag = keys.gcm.seal(&nonce, &aad, &mut body);
            let len = 8 + body.len() + 16;
            self.out.extend_from_slice(&[kind, 3, 3, (len >> 8) as u8, len as u8]);
            self.out.extend_from_slice(&explicit);
            self.out.extend_from_slice(&body);
            self.out.extend_from_slice(&tag);
            return;
        }
        let len = data.len() + 1 + 16;
        let header = [CT_APPDATA, 3, 3, (len >> 8) as u8, len as u8];
        let mut body = Vec::with_capacity(len);
        body.extend_from_slice(data);
        body.push(kind);
        let nonce = keys.nonce();
        let tag = keys.gcm.seal(&nonce, &header, &mut body);
        self.out.extend_from_slice(&header);
        self.out.extend_from_slice(&body);
        self.out.extend_from_slice(&tag);
    }
}

fn alert(body: &[u8]) -> Result<(), Error> {
    let desc = body.get(1).copied().unwrap_or(255);
    let name = match desc {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure (lvsbox offers AES-128-GCM with x25519, over TLS 1.3 or 1.2)",
        42 => "bad_certificate",
        47 => "illegal_parameter",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version (the server speaks neither TLS 1.3 nor TLS 1.2)",
        71 => "insufficient_security",
        80 => "internal_error",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name (check the virtualhost)",
        116 => "certificate_required (the server wants a client certificate)",
        120 => "no_application_protocol",
        _ => "",
    };
    Err(if name.is_empty() { format!("TLS alert {desc}") } else { format!("TLS alert {name}") })
}

/// The ClientHello message (with its handshake header).
fn client_hello(server_name: Option<&str>, random: &[u8; 32], public: &[u8; 32]) -> Vec<u8> {
    let mut exts = Vec::new();
    let mut ext = |t: u16, body: &[u8]| {
        exts.extend_from_slice(&t.to_be_bytes());
        exts.extend_from_slice(&(body.len() as u16).to_be_bytes());
        exts.extend_from_slice(body);
    };
    if let Some(name) = server_name.filter(|n| !n.is_empty() && n.len() < 256) {
        let n = name.as_bytes();
        let mut b = Vec::with_capacity(n.len() + 5);
        b.extend_from_slice(&((n.len() + 3) as u16).to_be_bytes());
        b.push(0);
        b.extend_from_slice(&(n.len() as u16).to_be_bytes());
        b.extend_from_slice(n);
        ext(0, &b);
    }
    // supported_groups: x25519 for the key exchange; P-256 and P-384 too,
    // because TLS 1.2 servers use an ECDSA certificate only on a curve the
    // client lists (RFC 8422 §5.1.1). A TLS 1.3 server that has our x25519
    // key share uses it; a TLS 1.2 one that picks P-256 for ECDHE fails the
    // check with that reason.
    ext(10, &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18]);
    // signature_algorithms: what servers sign with (not verified, but a
    // server refuses a hello without a scheme its certificate can use).
    let schemes: [u16; 11] = [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0807, 0x0808, 0x0401, 0x0501, 0x0601];
    let mut b = ((schemes.len() * 2) as u16).to_be_bytes().to_vec();
    for s in schemes {
        b.extend_from_slice(&s.to_be_bytes());
    }
    ext(13, &b);
    // supported_versions: TLS 1.3, then 1.2.
    ext(43, &[4, 3, 4, 3, 3]);
    // ec_point_formats: uncompressed (TLS 1.2 servers want it with ECDHE).
    ext(11, &[1, 0]);
    // key_share: x25519.
    let mut b = vec![0, 36, 0x00, 0x1d, 0, 32];
    b.extend_from_slice(public);
    ext(51, &b);
    let mut body = Vec::with_capacity(128 + exts.len());
    body.extend_from_slice(&[3, 3]);
    body.extend_from_slice(random);
    body.push(0); // no legacy session id
    body.extend_from_slice(&[0, 6]);
    for suite in
        [TLS_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
    {
        body.extend_from_slice(&suite.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut msg = vec![HT_CLIENT_HELLO];
    msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(&body);
    msg
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
}

/// The SNI name for a check's `virtualhost`: the host part, and none for an
/// address (RFC 6066 allows only DNS names).
pub fn sni(host: Option<&str>) -> Option<String> {
    let h = host?.trim();
    if h.starts_with('[') || h.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let name = {
        match h.rsplit_once(':') {
            Some((n, p)) if p.chars().all(|c| c.is_ascii_digit()) => n,
            _ => h,
        }
    };
    if name.is_empty() || name.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    Some(name.trim_end_matches('.').to_ascii_lowercase())
}

/// Fresh random bytes from the kernel's CSPRNG (/dev/urandom blocks only
/// before the pool is initialised at early boot, never afterwards).
pub fn random<const N: usize>() -> std::io::Result<[u8; N]> {
    use std::io::Read;
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}
