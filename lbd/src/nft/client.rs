//! Blocking nf_tables client over a `NETLINK_NETFILTER` socket: sends one
//! batch per `sendmsg` and matches every ACK/error to its message by
//! sequence number; reads tables, chains and rules with dumps.
//!
//! Same socket discipline as the IPVS client (`crate::ipvs::client`):
//! `NETLINK_CAP_ACK` (small ACKs), `NETLINK_EXT_ACK` (the kernel's reason in
//! the error), a receive timeout on every wait, stale answers skipped by seq.

use std::io;
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr};

use super::codec::{self, DecodeError, Frame, Msg, Object};

/// Errors of the nf_tables client.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The kernel refused a message (negative errno) with its reason.
    #[error("{}{}", io::Error::from_raw_os_error(*.errno), .msg.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kernel {
        /// Positive errno.
        errno: i32,
        /// Extended-ACK text.
        msg: Option<String>,
    },
    /// No answer in time.
    #[error("no answer from nf_tables within {0:?}")]
    Timeout(Duration),
    /// Socket failure (e.g. EPROTONOSUPPORT: no nfnetlink in the kernel).
    #[error("netlink socket: {0}")]
    Socket(#[from] io::Error),
    /// A reply could not be decoded.
    #[error("malformed reply: {0}")]
    Decode(#[from] DecodeError),
    /// A dump was interrupted by a concurrent change.
    #[error("dump interrupted by a concurrent change; retry")]
    DumpInterrupted,
}

impl NftError {
    /// The kernel's errno, when the kernel refused.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NftError::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

const RECV_TIMEOUT: Duration = Duration::from_secs(10);
const DATAGRAM: usize = 64 * 1024;

/// A handle on nf_tables.
pub struct Nft {
    sock: Socket,
    seq: u32,
    rbuf: Vec<u8>,
}

impl std::fmt::Debug for Nft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nft").field("seq", &self.seq).finish()
    }
}

impl Nft {
    /// Opens a `NETLINK_NETFILTER` socket.
    pub fn open() -> Result<Nft, NftError> {
        let mut sock = Socket::new(codec::NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        sock.set_cap_ack(true)?;
        sock.set_ext_ack(true)?;
        let tv = nix::sys::time::TimeVal::new(RECV_TIMEOUT.as_secs() as _, 0);
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .map_err(|e| NftError::Socket(e.into()))?;
        // Sequence numbers start from the clock so a restarted lbd never
        // mistakes a stale answer for its own.
        let seq =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or(1);
        Ok(Nft { sock, seq, rbuf: vec![0; DATAGRAM] })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send(&self, bytes: &[u8]) -> Result<(), NftError> {
        loop {
            match self.sock.send(bytes, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn recv(&mut self) -> Result<Vec<Frame>, NftError> {
        let n = loop {
            match self.sock.recv(&mut &mut self.rbuf[..], 0) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(NftError::Timeout(RECV_TIMEOUT));
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(codec::parse_datagram(&self.rbuf[..n.min(self.rbuf.len())])?)
    }

    /// Sends `msgs` as one batch (BEGIN and END added here) in one `sendmsg`
    /// and waits for the answer to every message that asks for an ACK. The
    /// kernel commits the batch whole or not at all; the first error is
    /// returned (with the failing message's index in the batch).
    pub fn batch(&mut self, msgs: &[Msg]) -> Result<(), (usize, NftError)> {
        let mut bytes = Vec::new();
        let mut pending = Vec::new();
        codec::batch_begin().encode_into(self.next_seq(), &mut bytes);
        for (i, m) in msgs.iter().enumerate() {
            let seq = self.next_seq();
            m.encode_into(seq, &mut bytes);
            if m.wants_ack() {
                pending.push((seq, i));
            }
        }
        codec::batch_end().encode_into(self.next_seq(), &mut bytes);
        self.send(&bytes).map_err(|e| (0, e))?;
        let mut first_err: Option<(usize, NftError)> = None;
        while !pending.is_empty() {
            let frames = match self.recv() {
                Ok(f) => f,
                Err(e) => return Err(first_err.unwrap_or((pending[0].1, e))),
            };
            for f in frames {
                if let Frame::Error { seq, errno, msg } = f
                    && let Some(pos) = pending.iter().position(|(s, _)| *s == seq)
                {
                    let (_, i) = pending.remove(pos);
                    if errno != 0 && first_err.is_none() {
                        first_err = Some((i, NftError::Kernel { errno: errno.saturating_abs(), msg }));
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A doit request with ACK: its reply objects, after the ACK.
    pub fn request(&mut self, m: &Msg) -> Result<Vec<Object>, NftError> {
        let seq = self.next_seq();
        let mut bytes = Vec::new();
        m.encode_into(seq, &mut bytes);
        self.send(&bytes)?;
        let mut out = Vec::new();
        loop {
            for f in self.recv()? {
                if f.seq() != seq {
                    continue;
                }
                match f {
                    Frame::Object { obj, .. } => out.push(obj),
                    Frame::Error { errno: 0, .. } => return Ok(out),
                    Frame::Error { errno, msg, .. } => {
                        return Err(NftError::Kernel { errno: errno.saturating_abs(), msg });
                    }
                    _ => {}
                }
            }
        }
    }

    /// A dump: every object until `NLMSG_DONE`.
    pub fn dump(&mut self, m: &Msg) -> Result<Vec<Object>, NftError> {
        let seq = self.next_seq();
        let mut bytes = Vec::new();
        m.encode_into(seq, &mut bytes);
        self.send(&bytes)?;
        let mut out = Vec::new();
        let mut intr = false;
        loop {
            for f in self.recv()? {
                if f.seq() != seq {
                    continue;
                }
                match f {
                    Frame::Object { obj, flags, .. } => {
                        intr |= flags & codec::flags::DUMP_INTR != 0;
                        out.push(obj);
                    }
                    Frame::Done { errno, .. } | Frame::Error { errno, .. } if errno != 0 => {
                        return Err(NftError::Kernel { errno: errno.saturating_abs(), msg: None });
                    }
                    Frame::Done { .. } => {
                        return if intr { Err(NftError::DumpInterrupted) } else { Ok(out) };
                    }
                    _ => {}
                }
            }
        }
    }
}
