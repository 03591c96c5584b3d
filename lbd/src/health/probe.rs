//! The probes: one attempt each, on non-blocking sockets, bounded by the
//! check's `connect_timeout` (connect and exchange together).
//!
//! TCP and HTTP sockets are closed with an RST (SO_LINGER 0), as HAProxy does
//! for its checks: thousands of checks a second would otherwise park as many
//! sockets in TIME_WAIT on the director.
//!
//! A TCP check is the hot path (thousands a second): on a socket the engine
//! keeps from one attempt to the next, a connect, one readiness wait and a
//! second connect (to AF_UNSPEC when connected, which resets the
//! connection; to the target when it failed, which returns the error), and
//! no allocation for its reason. Checks with `bindto`, a mark or a route
//! through the VIP get a socket of their own (socket, connect, SO_ERROR only
//! on failure, SO_LINGER, close). The other probes' futures hold their buffers and are boxed, so
//! the TCP probe's future stays small (it was 10 KiB, copied on every attempt).

use std::borrow::Cow;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use super::config::{Check, Http, Probe};
use super::fsm::Outcome;
use super::tls;

/// Largest HTTP head and body read.
const HEAD_MAX: usize = 64 * 1024;
const BODY_MAX: usize = 1 << 20;

/// Runs one attempt of `c`, bounded by its `connect_timeout`.
pub async fn run(c: &Check) -> Outcome {
    let t0 = Instant::now();
    let limit = limit(c);
    match tokio::time::timeout(limit, unbounded(c)).await {
        Ok(o) => o,
        Err(_) => timed_out(limit, t0.elapsed()),
    }
}

/// The bound of one attempt of `c`.
pub fn limit(c: &Check) -> Duration {
    Duration::from_millis(c.timing.connect_timeout_ms.max(1))
}

/// The outcome of an attempt cut at `limit`.
pub fn timed_out(limit: Duration, latency: Duration) -> Outcome {
    let reason = match limit.as_millis() {
        1000 => Cow::Borrowed("timeout after 1 s"),
        _ => Cow::Owned(format!("timeout after {}", secs(limit))),
    };
    Outcome::fail(reason, latency)
}

/// Runs one attempt of `c` without its time bound: the engine bounds it
/// with its own timers (a runtime timer per attempt costs a wakeup of the
/// runtime's driver, a syscall, for every probe).
pub async fn unbounded(c: &Check) -> Outcome {
    let t0 = Instant::now();
    let r = match c.probe {
        Probe::Tcp => tcp(c).await,
        _ => Box::pin(other(c)).await,
    };
    let latency = t0.elapsed();
    match r {
        Ok(reason) => Outcome::ok(reason, latency),
        Err(reason) => Outcome::fail(reason, latency),
    }
}

/// Why an attempt passed or failed.
pub type Reason = Cow<'static, str>;

async fn tcp(c: &Check) -> Result<Reason, Reason> {
    let s = connect(c).await?;
    rst_close(&s);
    Ok(Cow::Borrowed("connected"))
}

/// Starts a TCP check's connect on a non-blocking socket, for a caller that
/// waits for it itself (the engine, on its own epoll set: no future, no
/// waker, no registration with tokio's reactor and no deregistration, the
/// close takes the socket out of the set). Writable, or in error, means done:
/// [`tcp_finish`] gives the verdict.
pub fn tcp_start(c: &Check) -> Result<Socket, Reason> {
    let dom = if c.target.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let s = Socket::new(dom, Type::STREAM.nonblocking(), None).map_err(|e| reason_of(&e))?;
    if c.mark != 0 {
        s.set_mark(c.mark).map_err(|e| Cow::Owned(format!("SO_MARK: {}", io_reason(&e))))?;
    }
    if let Some(b) = source(c) {
        s.bind(&SocketAddr::new(b, 0).into()).map_err(|e| Cow::Owned(format!("bind {b}: {}", io_reason(&e))))?;
    }
    tcp_connect(&s, c.target)?;
    Ok(s)
}

/// Whether a TCP check can run on a pooled socket: one that is neither
/// bound to a source (`bindto`, checks through the VIP) nor marked.
pub fn poolable(c: &Check) -> bool {
    matches!(c.probe, Probe::Tcp) && c.mark == 0 && c.bind.is_none() && c.via_vip_to.is_none()
}

/// A non-blocking TCP socket for the engine's pool (see [`tcp_connect`]).
pub fn tcp_socket(v6: bool) -> io::Result<Socket> {
    Socket::new(if v6 { Domain::IPV6 } else { Domain::IPV4 }, Type::STREAM.nonblocking(), None)
}

/// Starts a connect to `target` on a pooled socket (disconnected, in
/// CLOSE): the same SYN as on a fresh socket, a fresh ephemeral port, but no
/// socket, no descriptor and no epoll registration to make and tear down.
pub fn tcp_connect(s: &Socket, target: SocketAddr) -> Result<(), Reason> {
    match s.connect(&target.into()) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(()),
        Err(e) => Err(reason_of(&e)),
    }
}

/// The verdict of a connect started by [`tcp_connect`] once its socket
/// reported readiness, leaving the socket disconnected and ready for the
/// next one. `None`: not done yet (a pooled socket may report its previous
/// use's error while it is still in SYN_SENT). Writable without hang-up is
/// connected: disconnected at once, with an RST, as a close with SO_LINGER 0
/// would. A hang-up (the socket is closed: refused, reset, unreachable) is
/// a failure, whose error a second connect returns (the kernel reports a
/// finished asynchronous connect that way) while resetting the socket.
pub fn tcp_verdict(s: &Socket, target: SocketAddr, writable: bool, hangup: bool) -> Option<Result<Reason, Reason>> {
    if hangup {
        return Some(match s.connect(&target.into()) {
            Err(e) if !matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EALREADY)) => Err(reason_of(&e)),
            // Not the end of a connect (connected after all, or a new one
            // started): no verdict to trust, and the socket must be idle
            // for its next use.
            _ => {
                let _ = disconnect(s);
                Err(Cow::Borrowed("connection aborted"))
            }
        });
    }
    if !writable {
        return None;
    }
    let _ = disconnect(s);
    Some(Ok(Cow::Borrowed("connected")))
}

/// Disconnects a TCP socket (a connect to AF_UNSPEC): an RST when it was
/// connected, no packet in SYN_SENT; it can connect again afterwards.
pub fn disconnect(s: &Socket) -> io::Result<()> {
    // Zeroed storage is AF_UNSPEC (0) already.
    const _: () = assert!(libc::AF_UNSPEC == 0);
    // SAFETY: the storage is zeroed, and its first size_of::<sockaddr>()
    // bytes are then a valid AF_UNSPEC address of that length.
    #[allow(unsafe_code)]
    let unspec = unsafe {
        socket2::SockAddr::new(
            socket2::SockAddrStorage::zeroed(),
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    s.connect(&unspec)
}

/// The verdict of a connect started by [`tcp_start`] once its socket
/// reported readiness (`error`: with an error or hang-up); closes it (with
/// an RST when connected). A socket that is writable without error is
/// connected: only a failure costs the SO_ERROR read, for its reason.
pub fn tcp_finish(s: Socket, error: bool) -> Result<Reason, Reason> {
    let e = if error { s.take_error() } else { Ok(None) };
    match e {
        Ok(None) => {
            let _ = s.set_linger(Some(Duration::ZERO));
            Ok(Cow::Borrowed("connected"))
        }
        Ok(Some(e)) | Err(e) => Err(reason_of(&e)),
    }
}

async fn other(c: &Check) -> Result<Reason, Reason> {
    attempt(c).await.map(Cow::Owned).map_err(Cow::Owned)
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 { format!("{s:.0} s") } else { format!("{s} s") }
}

async fn attempt(c: &Check) -> Result<String, String> {
    match &c.probe {
        Probe::Tcp => Box::pin(tcp(c)).await.map(Cow::into_owned).map_err(Cow::into_owned),
        Probe::Http(h) => {
            let mut s = connect(c).await.map_err(Cow::into_owned)?;
            let r = if h.tls {
                match tls_handshake(&mut s, h).await {
                    Ok(t) => http(&mut Conn::Tls(&mut s, t), h, c.target).await,
                    Err(e) => Err(e),
                }
            } else {
                http(&mut Conn::Plain(&mut s), h, c.target).await
            };
            rst_close(&s);
            r
        }
        Probe::Udp { payload, reply } => udp(c, payload, reply.as_deref()).await,
        Probe::Dns { qtype, name } => dns(c, *qtype, name).await,
        Probe::Icmp => icmp(c).await,
    }
}

/// Words an operator reads for a socket error.
pub fn io_reason(e: &io::Error) -> String {
    reason_of(e).into_owned()
}

fn reason_of(e: &io::Error) -> Reason {
    Cow::Borrowed(match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "connection refused",
        Some(libc::EHOSTUNREACH) => "host unreachable",
        Some(libc::ENETUNREACH) => "network unreachable",
        Some(libc::ECONNRESET) => "connection reset",
        Some(libc::ETIMEDOUT) => "timeout",
        Some(libc::EADDRNOTAVAIL) => "source address not available",
        Some(libc::EMFILE | libc::ENFILE) => "too many open files",
        _ => {
            let s = e.to_string();
            return Cow::Owned(s.split(" (os error").next().unwrap_or(&s).to_lowercase());
        }
    })
}

fn rst_close(s: &TcpStream) {
    let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// A connected socket (no TCP_NODELAY: a check sends at most one request,
/// in one write).
async fn connect(c: &Check) -> Result<TcpStream, Reason> {
    let sock = if c.target.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(|e| reason_of(&e))?;
    if c.mark != 0 {
        SockRef::from(&sock).set_mark(c.mark).map_err(|e| Cow::Owned(format!("SO_MARK: {}", io_reason(&e))))?;
    }
    if let Some(b) = source(c) {
        sock.bind(SocketAddr::new(b, 0)).map_err(|e| Cow::Owned(format!("bind {b}: {}", io_reason(&e))))?;
    }
    sock.connect(c.target).await.map_err(|e| reason_of(&e))
}

/// The request line and headers of a check's GET.
pub fn request(h: &Http, target: SocketAddr) -> String {
    let host = match &h.host {
        Some(v) => v.clone(),
        None => match (target.ip(), target.port()) {
            (IpAddr::V4(a), 80) => a.to_string(),
            (IpAddr::V6(a), 80) => format!("[{a}]"),
            (IpAddr::V4(a), p) => format!("{a}:{p}"),
            (IpAddr::V6(a), p) => format!("[{a}]:{p}"),
        },
    };
    format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lvsbox-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        h.path
    )
}

async fn http(s: &mut Conn<'_>, h: &Http, target: SocketAddr) -> Result<String, String> {
    s.write_all(request(h, target).as_bytes()).await?;
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > HEAD_MAX {
            return Err("response head too large".into());
        }
        let n = s.read_more(&mut buf).await?;
        if n == 0 {
            return Err(if buf.is_empty() {
                "connection closed without a response".into()
            } else {
                "truncated response head".into()
            });
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = parse_status(&head).ok_or_else(|| "not an HTTP response".to_string())?;
    if !h.status.iter().any(|r| (r.0..=r.1).contains(&status)) {
        return Err(format!("status {status}"));
    }
    if h.regex.is_none() && h.digest.is_none() {
        return Ok(format!("status {status}"));
    }
    let mut body = buf.split_off(head_end);
    let chunked = header(&head, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let length = header(&head, "content-length").and_then(|v| v.trim().parse::<usize>().ok());
    let body = if chunked {
        loop {
            match dechunk(&body) {
                Chunked::Done(b) => break b,
                Chunked::Bad => return Err("bad chunked body".into()),
                Chunked::More => {
                    if body.len() > BODY_MAX + HEAD_MAX {
                        return Err("body too large".into());
                    }
                    if s.read_more(&mut body).await? == 0 {
                        return Err("truncated chunked body".into());
                    }
                }
            }
        }
    } else {
        let want = length.unwrap_or(BODY_MAX).min(BODY_MAX);
        while body.len() < want {
            if s.read_more(&mut body).await? == 0 {
                if length.is_some() {
                    return Err(format!("body truncated at {} of {want} bytes", body.len()));
                }
                break;
            }
        }
        body.truncate(want);
        body
    };
    check_body(h, &body).map(|()| format!("status {status}, body ok"))
}

/// Checks a body against the regex and digest of `h`.
pub fn check_body(h: &Http, body: &[u8]) -> Result<(), String> {
    if let Some(re) = &h.regex {
        let text = String::from_utf8_lossy(body);
        let ok = super::re::Regex::new(re).map(|r| r.is_match(&text)).unwrap_or(false);
        if !ok {
            return Err(format!("body does not match /{re}/"));
        }
    }
    if let Some(want) = &h.digest {
        let got = super::md5::digest(body);
        if &got != want {
            return Err(format!("body MD5 {} is not {}", hexs(&got), hexs(want)));
        }
    }
    Ok(())
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An HTTP check's connection: plain, or TLS over it (an HTTPS check).
enum Conn<'a> {
    Plain(&'a mut TcpStream),
    Tls(&'a mut TcpStream, Box<tls::Client>),
}

impl Conn<'_> {
    async fn write_all(&mut self, data: &[u8]) -> Result<(), String> {
        match self {
            Conn::Plain(s) => s.write_all(data).await.map_err(|e| io_reason(&e)),
            Conn::Tls(s, t) => {
                t.send(data)?;
                s.write_all(&t.output()).await.map_err(|e| io_reason(&e))
            }
        }
    }

    /// Reads what arrives next into `buf`; 0 at the end of the stream (for
    /// TLS: close_notify, or the server closing the connection without it,
    /// which many do after `Connection: close`).
    async fn read_more(&mut self, buf: &mut Vec<u8>) -> Result<usize, String> {
        let mut chunk = [0u8; 8192];
        match self {
            Conn::Plain(s) => {
                let n = s.read(&mut chunk).await.map_err(|e| io_reason(&e))?;
                buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Conn::Tls(s, t) => loop {
                let got = t.received();
                if !got.is_empty() {
                    buf.extend_from_slice(&got);
                    return Ok(got.len());
                }
                if t.closed() || tls_exchange(s, t, &mut chunk).await? == 0 {
                    return Ok(0);
                }
            },
        }
    }
}

/// Sends what the TLS client has queued, then reads once from the server
/// and feeds it; the bytes read (0: the server closed the connection).
async fn tls_exchange(s: &mut TcpStream, t: &mut tls::Client, chunk: &mut [u8]) -> Result<usize, String> {
    let out = t.output();
    if !out.is_empty() {
        s.write_all(&out).await.map_err(|e| io_reason(&e))?;
    }
    let n = s.read(chunk).await.map_err(|e| io_reason(&e))?;
    t.feed(&chunk[..n])?;
    Ok(n)
}

/// The TLS handshake of an HTTPS check, SNI from its `virtualhost`; the
/// client's Finished is sent with the request that follows.
async fn tls_handshake(s: &mut TcpStream, h: &Http) -> Result<Box<tls::Client>, String> {
    let r: [u8; 64] = tls::random().map_err(|e| format!("random: {}", io_reason(&e)))?;
    let (mut random, mut key) = ([0u8; 32], [0u8; 32]);
    random.copy_from_slice(&r[..32]);
    key.copy_from_slice(&r[32..]);
    let mut t = Box::new(tls::Client::new(tls::sni(h.host.as_deref()).as_deref(), random, key));
    let mut chunk = [0u8; 8192];
    while !t.connected() {
        if tls_exchange(s, &mut t, &mut chunk).await? == 0 {
            return Err("connection closed during the TLS handshake".into());
        }
    }
    Ok(t)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The status code of a response head.
pub fn parse_status(head: &str) -> Option<u16> {
    let line = head.lines().next()?;
    let mut w = line.split_whitespace();
    if !w.next()?.starts_with("HTTP/") {
        return None;
    }
    w.next()?.parse().ok().filter(|c| (100..=999).contains(c))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Decoding a chunked body.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunked {
    /// The whole body.
    Done(Vec<u8>),
    /// Needs more bytes.
    More,
    /// Not chunked encoding.
    Bad,
}

/// Decodes a chunked body received so far.
pub fn dechunk(mut b: &[u8]) -> Chunked {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(b, b"\r\n") else { return Chunked::More };
        let line = String::from_utf8_lossy(&b[..eol]);
        let size = line.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(size, 16) else { return Chunked::Bad };
        b = &b[eol + 2..];
        if n == 0 {
            return Chunked::Done(out);
        }
        if n > BODY_MAX || out.len() + n > BODY_MAX {
            return Chunked::Bad;
        }
        if b.len() < n + 2 {
            return Chunked::More;
        }
        out.extend_from_slice(&b[..n]);
        b = &b[n + 2..];
    }
}

/// The source address of a check: `bindto`, or for a check through the VIP
/// the director's own address towards the real (left to the kernel, the
/// source of a connection to the VIP, a local address, would be the VIP).
fn source(c: &Check) -> Option<IpAddr> {
    c.bind.or_else(|| {
        let real = c.via_vip_to?;
        let any: SocketAddr = if real.is_ipv4() { "0.0.0.0:0".parse().ok()? } else { "[::]:0".parse().ok()? };
        let s = std::net::UdpSocket::bind(any).ok()?;
        s.connect(real).ok()?; // no packet: only a route lookup
        s.local_addr().ok().map(|a| a.ip())
    })
}

async fn udp_socket(c: &Check) -> Result<UdpSocket, String> {
    let bind = source(c).unwrap_or(if c.target.is_ipv4() {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    });
    let s = UdpSocket::bind(SocketAddr::new(bind, 0)).await.map_err(|e| format!("bind {bind}: {}", io_reason(&e)))?;
    if c.mark != 0 {
        SockRef::from(&s).set_mark(c.mark).map_err(|e| format!("SO_MARK: {}", io_reason(&e)))?;
    }
    s.connect(c.target).await.map_err(|e| io_reason(&e))?;
    Ok(s)
}

async fn udp(c: &Check, payload: &[u8], reply: Option<&[u8]>) -> Result<String, String> {
    let s = udp_socket(c).await?;
    s.send(payload).await.map_err(|e| io_reason(&e))?;
    let mut buf = vec![0u8; 65536];
    match reply {
        Some(prefix) => {
            let n = s.recv(&mut buf).await.map_err(|e| udp_reason(&e))?;
            if buf[..n].starts_with(prefix) {
                Ok(format!("reply of {n} bytes"))
            } else {
                Err(format!("unexpected reply of {n} bytes"))
            }
        }
        None => {
            // Success unless an ICMP error arrives within the timeout.
            let wait = Duration::from_millis(c.timing.connect_timeout_ms * 9 / 10);
            match tokio::time::timeout(wait, s.recv(&mut buf)).await {
                Err(_) => Ok("no ICMP error".into()),
                Ok(Ok(n)) => Ok(format!("reply of {n} bytes")),
                Ok(Err(e)) => Err(udp_reason(&e)),
            }
        }
    }
}

fn udp_reason(e: &io::Error) -> String {
    if e.raw_os_error() == Some(libc::ECONNREFUSED) { "port unreachable".into() } else { io_reason(e) }
}

/// A DNS query (RD set, class IN) with this id.
pub fn dns_query(id: u16, qtype: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        q.push(label.len().min(63) as u8);
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// Judges a DNS answer to query `id`: NOERROR passes.
pub fn dns_verdict(id: u16, r: &[u8]) -> Option<Result<String, String>> {
    if r.len() < 12 || u16::from_be_bytes([r[0], r[1]]) != id || r[2] & 0x80 == 0 {
        return None; // not the answer to our query
    }
    let rcode = r[3] & 0x0f;
    let answers = u16::from_be_bytes([r[6], r[7]]);
    const NAMES: [&str; 6] = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];
    let name = NAMES.get(usize::from(rcode)).map(|s| s.to_string()).unwrap_or_else(|| format!("rcode {rcode}"));
    Some(if rcode == 0 { Ok(format!("{name}, {answers} answer(s)")) } else { Err(name) })
}

async fn dns(c: &Check, qtype: u16, name: &str) -> Result<String, String> {
    let s = udp_socket(c).await?;
    let id = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos()
        & 0xffff) as u16;
    s.send(&dns_query(id, qtype, name)).await.map_err(|e| io_reason(&e))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = s.recv(&mut buf).await.map_err(|e| udp_reason(&e))?;
        if let Some(v) = dns_verdict(id, &buf[..n]) {
            return v;
        }
    }
}

/// The Internet checksum.
pub fn inet_checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP(v6) echo request.
pub fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(b"lvsbox-check....");
    if !v6 {
        let c = inet_checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// Whether `pkt` (an IPv4 packet with its header, or an ICMPv6 message) is
/// the echo reply to `id`/`seq`.
pub fn is_echo_reply(v6: bool, pkt: &[u8], id: u16, seq: u16) -> bool {
    let icmp = if v6 {
        pkt
    } else {
        let ihl = usize::from(pkt.first().map_or(0, |b| b & 0x0f)) * 4;
        pkt.get(ihl..).unwrap_or(&[])
    };
    icmp.len() >= 8
        && icmp[0] == if v6 { 129 } else { 0 }
        && u16::from_be_bytes([icmp[4], icmp[5]]) == id
        && u16::from_be_bytes([icmp[6], icmp[7]]) == seq
}

async fn icmp(c: &Check) -> Result<String, String> {
    let v6 = c.target.is_ipv6();
    let (dom, proto) = if v6 { (Domain::IPV6, Protocol::ICMPV6) } else { (Domain::IPV4, Protocol::ICMPV4) };
    let s = Socket::new(dom, Type::RAW, Some(proto)).map_err(|e| format!("raw socket: {}", io_reason(&e)))?;
    s.set_nonblocking(true).map_err(|e| io_reason(&e))?;
    if c.mark != 0 {
        s.set_mark(c.mark).map_err(|e| format!("SO_MARK: {}", io_reason(&e)))?;
    }
    if let Some(b) = c.bind {
        s.bind(&SocketAddr::new(b, 0).into()).map_err(|e| format!("bind {b}: {}", io_reason(&e)))?;
    }
    let to = SocketAddr::new(c.target.ip(), 0);
    // A connected raw socket only receives from its peer.
    s.connect(&to.into()).map_err(|e| io_reason(&e))?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    let (id, seq) = ((nanos & 0xffff) as u16, (nanos >> 16) as u16);
    let fd = register(s).map_err(|e| io_reason(&e))?;
    let req = echo_request(v6, id, seq);
    fd.get_ref().send(&req).map_err(|e| io_reason(&e))?;
    let mut buf = [0u8; 2048];
    loop {
        let mut g = fd.readable().await.map_err(|e| io_reason(&e))?;
        match g.try_io(|inner| {
            use std::io::Read;
            inner.get_ref().read(&mut buf)
        }) {
            Ok(Ok(n)) => {
                if is_echo_reply(v6, &buf[..n], id, seq) {
                    return Ok("echo reply".into());
                }
            }
            Ok(Err(e)) => return Err(io_reason(&e)),
            Err(_would_block) => continue,
        }
    }
}

/// Hands a socket to tokio's reactor.
fn register(s: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `s` owns a valid, open descriptor; the AsyncFd owns `s` and
    // nothing closes or replaces the descriptor while it is registered (the
    // safe constructor is deprecated for lacking exactly this promise).
    #[allow(unsafe_code)]
    unsafe {
        AsyncFd::register_with_interest(s, tokio::io::Interest::READABLE).map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests;
