//! Blocking IPVS client over a `NETLINK_GENERIC` socket.
//!
//! - The family is resolved through nlctrl (`CTRL_CMD_GETFAMILY "IPVS"`); a kernel without
//!   IPVS answers ENOENT, reported as [`IpvsError::NotAvailable`].
//! - `NETLINK_CAP_ACK` keeps ACKs small, `NETLINK_EXT_ACK` makes the kernel explain errors
//!   (the text ends up in the error), the receive buffer is raised (SO_RCVBUFFORCE when
//!   allowed) so a batch's ACKs fit, and a receive timeout bounds every wait.
//! - [`Ipvs::execute`] sends many requests per `sendmsg`, each with `NLM_F_ACK` and its own
//!   sequence number, and matches every ACK/error to its request by seq.
//! - Dumps read `NLM_F_MULTI` messages across datagrams until `NLMSG_DONE`; doit requests read
//!   up to their ACK (a separate datagram after the reply), so no stale ACK is left behind.
//!
//! The kernel runs at most one dump per socket at a time (`netlink_dump_start` answers EBUSY
//! while one is in progress), and an IPVS dump only finishes when user space reads its first
//! datagram, so GET_DEST dumps cannot be pipelined on one socket; they are issued one after the
//! other (one send and two receives each).

use std::io;
use std::net::IpAddr;
use std::time::Duration;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST};
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd, nlas::GenlCtrlAttrs};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_GENERIC};

use super::codec::{
    ExtAck, Frame, FrameKind, IPVS_GENL_NAME, IpvsCmd, IpvsMessage, encode_ctrl_request, encode_request, parse_datagram,
};
use super::types::{Daemon, DaemonState, Dest, DestEntry, Info, Service, ServiceEntry, ServiceKey, Timeouts};

/// Errors of the IPVS client.
#[derive(Debug, thiserror::Error)]
pub enum IpvsError {
    /// nlctrl does not know the "IPVS" family: the kernel has no IPVS (or ip_vs is not loaded).
    #[error("IPVS not available in this kernel (no \"IPVS\" generic netlink family; is ip_vs loaded?)")]
    NotAvailable,
    /// EEXIST: the service or destination already exists.
    #[error("already exists (EEXIST){}", ext(.extack))]
    Exists {
        /// Kernel extended-ACK message.
        extack: Option<String>,
    },
    /// ESRCH: no such service.
    #[error("no such service (ESRCH){}", ext(.extack))]
    NoSuchService {
        /// Kernel extended-ACK message.
        extack: Option<String>,
    },
    /// ENOENT: scheduler, persistence engine or destination not found.
    #[error("scheduler, persistence engine or destination not found (ENOENT){}", ext(.extack))]
    NotFound {
        /// Kernel extended-ACK message.
        extack: Option<String>,
    },
    /// EPERM: CAP_NET_ADMIN is needed.
    #[error("permission denied (EPERM; CAP_NET_ADMIN needed){}", ext(.extack))]
    PermissionDenied {
        /// Kernel extended-ACK message.
        extack: Option<String>,
    },
    /// EINVAL: the kernel rejected an argument.
    #[error("invalid argument (EINVAL){}", ext(.extack))]
    Invalid {
        /// Kernel extended-ACK message.
        extack: Option<String>,
    },
    /// EBUSY: e.g. a second dump while one is running on the socket, or a daemon in use.
    #[error("busy (EBUSY){}", ext(.extack))]
    Busy {
        /// Kernel extended-ACK message.
        extack: Option<String>,
    },
    /// EAFNOSUPPORT: IPv6 not available, or an unsupported family mix.
    #[error("address family not supported (EAFNOSUPPORT){}", ext(.extack))]
    AfNotSupported {
        /// Kernel extended-ACK message.
        extack: Option<String>,
    },
    /// Any other errno from the kernel.
    #[error("kernel error: {}{}", io::Error::from_raw_os_error(*.errno), ext(.extack))]
    Kernel {
        /// Positive errno.
        errno: i32,
        /// Kernel extended-ACK message.
        extack: Option<String>,
    },
    /// The socket's receive buffer overflowed and this request's answer was lost. The request
    /// may or may not have been applied: read the state back.
    #[error("acknowledgement lost (receive buffer overrun); state unknown")]
    AckLost,
    /// No answer within the receive timeout.
    #[error("no answer from the kernel within {0:?}")]
    Timeout(Duration),
    /// A dump was interrupted by a concurrent change (`NLM_F_DUMP_INTR`); retry it.
    #[error("dump interrupted by a concurrent change; retry")]
    DumpInterrupted,
    /// A socket call failed.
    #[error("netlink socket: {0}")]
    Socket(#[from] io::Error),
    /// A reply could not be decoded.
    #[error("malformed reply: {0}")]
    Decode(String),
}

fn ext(e: &Option<String>) -> String {
    e.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
}

impl IpvsError {
    /// Maps a kernel errno (positive) and its extack to a variant.
    pub fn from_errno(errno: i32, extack: Option<String>) -> Self {
        match errno {
            libc::EEXIST => IpvsError::Exists { extack },
            libc::ESRCH => IpvsError::NoSuchService { extack },
            libc::ENOENT => IpvsError::NotFound { extack },
            libc::EPERM | libc::EACCES => IpvsError::PermissionDenied { extack },
            libc::EINVAL => IpvsError::Invalid { extack },
            libc::EBUSY => IpvsError::Busy { extack },
            libc::EAFNOSUPPORT => IpvsError::AfNotSupported { extack },
            _ => IpvsError::Kernel { errno, extack },
        }
    }

    /// The kernel errno behind this error, if it came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        Some(match self {
            IpvsError::Exists { .. } => libc::EEXIST,
            IpvsError::NoSuchService { .. } => libc::ESRCH,
            IpvsError::NotFound { .. } => libc::ENOENT,
            IpvsError::PermissionDenied { .. } => libc::EPERM,
            IpvsError::Invalid { .. } => libc::EINVAL,
            IpvsError::Busy { .. } => libc::EBUSY,
            IpvsError::AfNotSupported { .. } => libc::EAFNOSUPPORT,
            IpvsError::Kernel { errno, .. } => *errno,
            _ => return None,
        })
    }

    /// The kernel's extended-ACK text, if it sent one.
    pub fn extack(&self) -> Option<&str> {
        match self {
            IpvsError::Exists { extack }
            | IpvsError::NoSuchService { extack }
            | IpvsError::NotFound { extack }
            | IpvsError::PermissionDenied { extack }
            | IpvsError::Invalid { extack }
            | IpvsError::Busy { extack }
            | IpvsError::AfNotSupported { extack }
            | IpvsError::Kernel { extack, .. } => extack.as_deref(),
            _ => None,
        }
    }

    fn from_frame(errno: i32, extack: ExtAck) -> Self {
        Self::from_errno(errno.saturating_abs(), extack.msg)
    }

    /// A copy for reporting one failure against several requests.
    fn duplicate(&self) -> Self {
        match self {
            IpvsError::Socket(e) => IpvsError::Socket(
                e.raw_os_error().map_or_else(|| io::Error::new(e.kind(), e.to_string()), io::Error::from_raw_os_error),
            ),
            IpvsError::Timeout(d) => IpvsError::Timeout(*d),
            IpvsError::Decode(s) => IpvsError::Decode(s.clone()),
            IpvsError::AckLost => IpvsError::AckLost,
            IpvsError::DumpInterrupted => IpvsError::DumpInterrupted,
            IpvsError::NotAvailable => IpvsError::NotAvailable,
            e => IpvsError::from_errno(e.errno().unwrap_or(libc::EIO), e.extack().map(str::to_owned)),
        }
    }
}

/// One change to the IPVS table, for [`Ipvs::execute`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `NEW_SERVICE`.
    NewService(Service),
    /// `SET_SERVICE`.
    SetService(Service),
    /// `DEL_SERVICE`.
    DelService(ServiceKey),
    /// `NEW_DEST`.
    NewDest(ServiceKey, Dest),
    /// `SET_DEST`.
    SetDest(ServiceKey, Dest),
    /// `DEL_DEST` (address, port).
    DelDest(ServiceKey, IpAddr, u16),
}

impl Op {
    /// The request message.
    pub fn message(&self) -> IpvsMessage {
        match self {
            Op::NewService(s) => IpvsMessage::new_service(s),
            Op::SetService(s) => IpvsMessage::set_service(s),
            Op::DelService(k) => IpvsMessage::del_service(k),
            Op::NewDest(k, d) => IpvsMessage::new_dest(k, d),
            Op::SetDest(k, d) => IpvsMessage::set_dest(k, d),
            Op::DelDest(k, a, p) => IpvsMessage::del_dest(k, *a, *p),
        }
    }
}

/// How many requests [`Ipvs::execute`] puts in one `sendmsg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// Maximum bytes per `sendmsg` (the kernel refuses more than the send buffer).
    pub max_bytes: usize,
    /// Maximum messages per `sendmsg` (bounds the ACKs queued at once).
    pub max_msgs: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits { max_bytes: 64 * 1024, max_msgs: 512 }
    }
}

/// Receive buffer requested (SO_RCVBUFFORCE, else SO_RCVBUF capped by rmem_max).
const RCVBUF: usize = 8 << 20;
/// One datagram: the kernel's dump skbs are at most 32 KiB.
const DATAGRAM: usize = 64 * 1024;
/// Bound on any single wait for the kernel.
const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// A handle on the kernel's IPVS table.
pub struct Ipvs {
    sock: Socket,
    family: u16,
    seq: u32,
    rbuf: Vec<u8>,
    limits: BatchLimits,
}

impl std::fmt::Debug for Ipvs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ipvs").field("family", &self.family).field("seq", &self.seq).finish()
    }
}

fn open_socket() -> Result<Socket, IpvsError> {
    let mut sock = Socket::new(NETLINK_GENERIC)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    sock.set_cap_ack(true)?;
    sock.set_ext_ack(true)?;
    if nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &RCVBUF).is_err() {
        sock.set_rx_buf_sz(RCVBUF)?;
    }
    let tv = nix::sys::time::TimeVal::new(RECV_TIMEOUT.as_secs() as _, 0);
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
        .map_err(|e| IpvsError::Socket(e.into()))?;
    Ok(sock)
}

impl Ipvs {
    /// Opens a socket and resolves the IPVS family through nlctrl.
    pub fn open() -> Result<Ipvs, IpvsError> {
        let sock = open_socket()?;
        let mut ipvs = Ipvs { sock, family: 0, seq: 0, rbuf: vec![0; DATAGRAM], limits: BatchLimits::default() };
        ipvs.family = match ipvs.resolve_family(IPVS_GENL_NAME) {
            Err(IpvsError::NotFound { .. }) => return Err(IpvsError::NotAvailable),
            r => r?,
        };
        Ok(ipvs)
    }

    /// The resolved family id.
    pub fn family_id(&self) -> u16 {
        self.family
    }

    /// Current batch limits.
    pub fn batch_limits(&self) -> BatchLimits {
        self.limits
    }

    /// Changes the batch limits (at least one message per batch is always sent).
    pub fn set_batch_limits(&mut self, limits: BatchLimits) {
        self.limits = limits;
    }

    /// Asks nlctrl for a family's id (`CTRL_CMD_GETFAMILY`).
    pub fn resolve_family(&mut self, name: &str) -> Result<u16, IpvsError> {
        let seq = self.next_seq();
        let req = GenlCtrl { cmd: GenlCtrlCmd::GetFamily, nlas: vec![GenlCtrlAttrs::FamilyName(name.to_owned())] };
        self.send_raw(&encode_ctrl_request(req, NLM_F_REQUEST | NLM_F_ACK, seq))?;
        let mut id = None;
        loop {
            for f in self.recv_frames()? {
                if f.seq != seq {
                    continue;
                }
                match f.kind {
                    FrameKind::Ctrl(c) => {
                        for a in c.nlas {
                            if let GenlCtrlAttrs::FamilyId(v) = a {
                                id = Some(v);
                            }
                        }
                    }
                    FrameKind::Error { errno: 0, .. } => {
                        return id.ok_or_else(|| IpvsError::Decode("nlctrl reply without a family id".into()));
                    }
                    FrameKind::Error { errno, extack } => return Err(IpvsError::from_frame(errno, extack)),
                    FrameKind::Unknown { error: Some(e), .. } => return Err(IpvsError::Decode(e)),
                    _ => {}
                }
            }
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }

    /// Sends raw bytes (one or several complete netlink messages) in one `sendmsg`.
    pub fn send_raw(&self, bytes: &[u8]) -> Result<(), IpvsError> {
        loop {
            match self.sock.send(bytes, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives one datagram and splits it into frames (decoding IPVS messages with this
    /// handle's family id). Waits at most the receive timeout.
    pub fn recv_frames(&mut self) -> Result<Vec<Frame>, IpvsError> {
        let n = loop {
            match self.sock.recv(&mut &mut self.rbuf[..], libc::MSG_TRUNC) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(IpvsError::Timeout(RECV_TIMEOUT));
                }
                Err(e) => return Err(e.into()),
            }
        };
        if n > self.rbuf.len() {
            return Err(IpvsError::Decode(format!("datagram of {n} bytes truncated to {}", self.rbuf.len())));
        }
        parse_datagram(&self.rbuf[..n], self.family)
            .into_iter()
            .map(|f| f.map_err(|e| IpvsError::Decode(e.to_string())))
            .collect()
    }

    /// Sends a doit request with `NLM_F_ACK` and returns its reply messages, after its ACK.
    pub fn request(&mut self, msg: &IpvsMessage) -> Result<Vec<IpvsMessage>, IpvsError> {
        let seq = self.next_seq();
        self.send_raw(&encode_request(msg, self.family, NLM_F_REQUEST | NLM_F_ACK, seq))?;
        let mut replies = Vec::new();
        let mut decode_error = None;
        loop {
            for f in self.recv_frames()? {
                if f.seq != seq {
                    continue; // stale answer of an abandoned request
                }
                match f.kind {
                    FrameKind::Ipvs(m) => replies.push(m),
                    FrameKind::Error { errno: 0, .. } => {
                        return match decode_error {
                            Some(e) => Err(IpvsError::Decode(e)),
                            None => Ok(replies),
                        };
                    }
                    FrameKind::Error { errno, extack } => return Err(IpvsError::from_frame(errno, extack)),
                    FrameKind::Unknown { error: Some(e), .. } => decode_error = Some(e),
                    _ => {}
                }
            }
        }
    }

    /// Sends a dump request and collects every message until `NLMSG_DONE`.
    pub fn dump(&mut self, msg: &IpvsMessage) -> Result<Vec<IpvsMessage>, IpvsError> {
        let mut out = Vec::new();
        self.dump_each(msg, |m| {
            out.push(m);
            Ok(())
        })?;
        Ok(out)
    }

    /// Sends a dump request and hands each message to `each` as its datagram arrives, until
    /// `NLMSG_DONE`: nothing of the dump is kept here (a 10,000-service dump collected whole
    /// held about 11 MiB of decoded attributes). The first error (the kernel's, a decode
    /// failure, one `each` returns) is the result, once the rest of the dump has been read
    /// off the socket without calling `each` again; what `each` saw before is then incomplete.
    pub fn dump_each(
        &mut self,
        msg: &IpvsMessage,
        mut each: impl FnMut(IpvsMessage) -> Result<(), IpvsError>,
    ) -> Result<(), IpvsError> {
        let seq = self.next_seq();
        self.send_raw(&encode_request(msg, self.family, NLM_F_REQUEST | NLM_F_DUMP, seq))?;
        let mut failure = None;
        loop {
            for f in self.recv_frames()? {
                if f.seq != seq {
                    continue;
                }
                if f.flags & NLM_F_DUMP_INTR != 0 {
                    failure.get_or_insert(IpvsError::DumpInterrupted);
                }
                match f.kind {
                    FrameKind::Ipvs(m) => {
                        if failure.is_none()
                            && let Err(e) = each(m)
                        {
                            failure = Some(e);
                        }
                    }
                    FrameKind::Done { errno, extack } => {
                        if errno < 0 {
                            return Err(IpvsError::from_frame(errno, extack));
                        }
                        return failure.map_or(Ok(()), Err);
                    }
                    // An error instead of a dump (EBUSY, EPERM, bad request): nothing follows.
                    FrameKind::Error { errno, extack } if errno != 0 => {
                        return Err(IpvsError::from_frame(errno, extack));
                    }
                    FrameKind::Unknown { error: Some(e), .. } => {
                        failure.get_or_insert(IpvsError::Decode(e));
                    }
                    _ => {}
                }
            }
        }
    }

    /// `GET_INFO`.
    pub fn info(&mut self) -> Result<Info, IpvsError> {
        let r = self.request(&IpvsMessage::get_info())?;
        let m = r.iter().find(|m| m.cmd == IpvsCmd::SetInfo).ok_or_else(|| no_reply("GET_INFO"))?;
        m.info().map_err(decode)
    }

    /// Every service (one dump).
    pub fn services(&mut self) -> Result<Vec<ServiceEntry>, IpvsError> {
        self.dump(&IpvsMessage::dump_services())?.iter().map(|m| m.service_entry().map_err(decode)).collect()
    }

    /// Every service, handed to `each` as the dump arrives (no list of them is built).
    pub fn for_each_service(&mut self, mut each: impl FnMut(ServiceEntry)) -> Result<(), IpvsError> {
        self.dump_each(&IpvsMessage::dump_services(), |m| {
            each(m.service_entry().map_err(decode)?);
            Ok(())
        })
    }

    /// One service, `None` if it does not exist.
    pub fn service(&mut self, key: &ServiceKey) -> Result<Option<ServiceEntry>, IpvsError> {
        match self.request(&IpvsMessage::get_service(key)) {
            Ok(r) => {
                let m = r.first().ok_or_else(|| no_reply("GET_SERVICE"))?;
                Ok(Some(m.service_entry().map_err(decode)?))
            }
            Err(IpvsError::NoSuchService { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The dests of a service. The kernel answers an empty dump (not an error) when the service
    /// does not exist.
    pub fn dests(&mut self, key: &ServiceKey) -> Result<Vec<DestEntry>, IpvsError> {
        self.dump(&IpvsMessage::dump_dests(key))?.iter().map(|m| m.dest_entry().map_err(decode)).collect()
    }

    /// Every service with its dests: one service dump, then one GET_DEST dump per service.
    pub fn services_with_dests(&mut self) -> Result<Vec<(ServiceEntry, Vec<DestEntry>)>, IpvsError> {
        let services = self.services()?;
        let mut out = Vec::with_capacity(services.len());
        for s in services {
            let d = self.dests(&s.svc.key)?;
            out.push((s, d));
        }
        Ok(out)
    }

    /// `GET_CONFIG`.
    pub fn timeouts(&mut self) -> Result<Timeouts, IpvsError> {
        let r = self.request(&IpvsMessage::get_config())?;
        Ok(r.iter().find(|m| m.cmd == IpvsCmd::SetConfig).ok_or_else(|| no_reply("GET_CONFIG"))?.timeouts())
    }

    /// `SET_CONFIG` (a 0 timeout leaves the kernel's value unchanged).
    pub fn set_timeouts(&mut self, t: &Timeouts) -> Result<(), IpvsError> {
        self.request(&IpvsMessage::set_config(t)).map(drop)
    }

    /// `FLUSH`: deletes every service.
    pub fn flush(&mut self) -> Result<(), IpvsError> {
        self.request(&IpvsMessage::flush()).map(drop)
    }

    /// `ZERO`: all counters, or one service's.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), IpvsError> {
        self.request(&IpvsMessage::zero(key)).map(drop)
    }

    /// The running sync daemons (0 to 2).
    pub fn daemons(&mut self) -> Result<Vec<Daemon>, IpvsError> {
        self.dump(&IpvsMessage::dump_daemons())?.iter().map(|m| m.daemon().map_err(decode)).collect()
    }

    /// Starts a sync daemon.
    pub fn new_daemon(&mut self, d: &Daemon) -> Result<(), IpvsError> {
        self.request(&IpvsMessage::new_daemon(d)).map(drop)
    }

    /// Stops a sync daemon.
    pub fn del_daemon(&mut self, state: DaemonState) -> Result<(), IpvsError> {
        self.request(&IpvsMessage::del_daemon(state)).map(drop)
    }

    /// Applies one change.
    pub fn apply(&mut self, op: &Op) -> Result<(), IpvsError> {
        self.execute(std::slice::from_ref(op)).pop().unwrap_or(Err(IpvsError::AckLost))
    }

    /// Applies many changes, in order, batching many requests per `sendmsg`. Returns one result
    /// per op, in order; a failing op does not stop later ones (the kernel processes each
    /// message of a batch independently).
    ///
    /// If the receive buffer overflows (ENOBUFS), the batch is synchronised with a GET_INFO
    /// sentinel and ops whose answer was lost get [`IpvsError::AckLost`].
    pub fn execute(&mut self, ops: &[Op]) -> Vec<Result<(), IpvsError>> {
        let mut results: Vec<Option<Result<(), IpvsError>>> = Vec::with_capacity(ops.len());
        results.resize_with(ops.len(), || None);
        let mut start = 0;
        let mut buf = Vec::with_capacity(self.limits.max_bytes);
        while start < ops.len() {
            buf.clear();
            let first_seq = self.seq.wrapping_add(1);
            let mut count = 0;
            while start + count < ops.len() && count < self.limits.max_msgs.max(1) {
                let seq = self.next_seq();
                let m = encode_request(&ops[start + count].message(), self.family, NLM_F_REQUEST | NLM_F_ACK, seq);
                if count > 0 && buf.len() + m.len() > self.limits.max_bytes {
                    self.seq = self.seq.wrapping_sub(1); // not sent: give the seq back
                    break;
                }
                buf.extend_from_slice(&m);
                count += 1;
            }
            // seq 0 is skipped on wrap, so map seqs to indices through the list of seqs used.
            let seqs: Vec<u32> = {
                let mut s = Vec::with_capacity(count);
                let mut q = first_seq;
                while s.len() < count {
                    if q != 0 {
                        s.push(q);
                    }
                    q = q.wrapping_add(1);
                }
                s
            };
            let slot = |seq: u32| seqs.iter().position(|&s| s == seq);
            let batch = &mut results[start..start + count];
            if let Err(e) = self.send_raw(&buf) {
                for r in batch.iter_mut() {
                    *r = Some(Err(e.duplicate()));
                }
                start += count;
                continue;
            }
            let mut pending = count;
            while pending > 0 {
                match self.recv_frames() {
                    Ok(frames) => {
                        for f in frames {
                            let Some(i) = slot(f.seq) else { continue };
                            let r = match f.kind {
                                FrameKind::Error { errno: 0, .. } => Ok(()),
                                FrameKind::Error { errno, extack } => Err(IpvsError::from_frame(errno, extack)),
                                FrameKind::Unknown { error: Some(e), .. } => Err(IpvsError::Decode(e)),
                                _ => continue,
                            };
                            if batch[i].is_none() {
                                batch[i] = Some(r);
                                pending -= 1;
                            }
                        }
                    }
                    Err(IpvsError::Socket(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        // Some answers were dropped. Everything of this batch was processed during
                        // the sendmsg, so once a later request is answered, what is missing is lost.
                        let sync = self.sync_after_overrun(|f| {
                            if let Some(i) = slot(f.seq) {
                                let r = match &f.kind {
                                    FrameKind::Error { errno: 0, .. } => Ok(()),
                                    FrameKind::Error { errno, extack } => {
                                        Err(IpvsError::from_frame(*errno, extack.clone()))
                                    }
                                    _ => return,
                                };
                                batch[i].get_or_insert(r);
                            }
                        });
                        for r in batch.iter_mut().filter(|r| r.is_none()) {
                            *r = Some(Err(match &sync {
                                Ok(()) => IpvsError::AckLost,
                                Err(e) => e.duplicate(),
                            }));
                        }
                        pending = 0;
                    }
                    Err(e) => {
                        for r in batch.iter_mut().filter(|r| r.is_none()) {
                            *r = Some(Err(e.duplicate()));
                        }
                        pending = 0;
                    }
                }
            }
            start += count;
        }
        results.into_iter().map(|r| r.unwrap_or(Err(IpvsError::AckLost))).collect()
    }

    /// Sends a GET_INFO sentinel and reads until its ACK, handing every frame to `seen`.
    fn sync_after_overrun(&mut self, mut seen: impl FnMut(&Frame)) -> Result<(), IpvsError> {
        let seq = self.next_seq();
        self.send_raw(&encode_request(&IpvsMessage::get_info(), self.family, NLM_F_REQUEST | NLM_F_ACK, seq))?;
        loop {
            let frames = match self.recv_frames() {
                Ok(f) => f,
                // A second overrun: keep reading, the sentinel's ACK comes after.
                Err(IpvsError::Socket(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Err(e) => return Err(e),
            };
            for f in &frames {
                if f.seq == seq && matches!(f.kind, FrameKind::Error { .. }) {
                    return Ok(());
                }
                seen(f);
            }
        }
    }
}

fn decode(e: netlink_packet_core::DecodeError) -> IpvsError {
    IpvsError::Decode(e.to_string())
}

fn no_reply(what: &str) -> IpvsError {
    IpvsError::Decode(format!("{what}: ACK without a reply"))
}

#[cfg(test)]
mod tests {
    use super::super::codec::GENL_ID_CTRL;
    use super::*;

    /// On a kernel without IPVS (this project's build hosts), opening must say so; nlctrl itself
    /// answers, which proves the resolve path works. On a kernel with IPVS, it must open.
    #[test]
    fn open_reports_ipvs_availability() {
        let has_ipvs = std::path::Path::new("/proc/net/ip_vs").exists();
        match Ipvs::open() {
            Err(IpvsError::NotAvailable) => assert!(!has_ipvs, "IPVS is loaded but the family was not found"),
            Ok(mut ipvs) => {
                assert!(has_ipvs, "IPVS family resolved on a kernel without /proc/net/ip_vs");
                assert_ne!(ipvs.family_id(), 0);
                assert!(ipvs.info().is_ok() || !nix::unistd::Uid::effective().is_root());
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    #[test]
    fn nlctrl_resolves_itself() {
        let sock = open_socket().expect("NETLINK_GENERIC socket");
        let mut ipvs = Ipvs { sock, family: 0, seq: 0, rbuf: vec![0; DATAGRAM], limits: BatchLimits::default() };
        assert_eq!(ipvs.resolve_family("nlctrl").unwrap(), GENL_ID_CTRL);
        // An unknown family is ENOENT from nlctrl, which open() turns into NotAvailable.
        let r = ipvs.resolve_family("nosuchfamily");
        assert!(matches!(r, Err(IpvsError::NotFound { .. })), "{r:?}");
        // A name longer than GENL_NAMSIZ-1 fails nlctrl's policy: EINVAL with the kernel's
        // extended-ACK text, surfaced in the error.
        let r = ipvs.resolve_family("a-family-name-too-long");
        let Err(e @ IpvsError::Invalid { .. }) = r else { panic!("{r:?}") };
        assert!(e.extack().is_some_and(|m| m.contains("policy")), "{e:?}");
        // The second request did not read a stale ACK of the first: a third works too.
        assert_eq!(ipvs.resolve_family("nlctrl").unwrap(), GENL_ID_CTRL);
    }

    #[test]
    fn errno_mapping() {
        assert!(matches!(IpvsError::from_errno(libc::EEXIST, None), IpvsError::Exists { .. }));
        assert!(matches!(IpvsError::from_errno(libc::ESRCH, None), IpvsError::NoSuchService { .. }));
        assert!(matches!(IpvsError::from_errno(libc::ENOENT, None), IpvsError::NotFound { .. }));
        assert!(matches!(IpvsError::from_errno(libc::EPERM, None), IpvsError::PermissionDenied { .. }));
        assert!(matches!(IpvsError::from_errno(libc::EINVAL, None), IpvsError::Invalid { .. }));
        let e = IpvsError::from_errno(libc::ERANGE, Some("Attribute failed policy validation".into()));
        assert_eq!(e.errno(), Some(libc::ERANGE));
        assert_eq!(e.extack(), Some("Attribute failed policy validation"));
        assert!(e.to_string().ends_with(": Attribute failed policy validation"), "{e}");
        assert_eq!(e.duplicate().to_string(), e.to_string());
    }
}
