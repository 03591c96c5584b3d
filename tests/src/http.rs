//! A minimal HTTP/1.0 client for the harness (no dependencies, bounded by
//! timeouts), and the responder logic used by the `lvt-httpd` binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// `ip:port` for an IPv4 or IPv6 address.
fn socket_addr(ip: &str, port: u16) -> Result<SocketAddr> {
    Ok(format!("{ip}:{port}").parse().or_else(|_| format!("[{ip}]:{port}").parse())?)
}

/// GETs `/` from `ip:port` and returns the body; fails on anything but 200.
pub fn get(ip: &str, port: u16, timeout: Duration) -> Result<String> {
    let addr = socket_addr(ip, port)?;
    let s = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
    exchange(s, ip, addr, timeout)
}

/// The next local port [`tally`] connects from: below the kernel's
/// ephemeral range, never the same twice in a test process (until 20,000
/// connections wrap it), starting at a per-process offset.
static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// [`get`] from a local port no earlier request of this process used.
/// IPVS keeps a DR connection's entry in FIN_WAIT for 2 minutes and, with
/// the default `conn_reuse_mode`, sends a new SYN from the same client port
/// to that entry's real instead of scheduling it: an ephemeral port the
/// kernel hands out again would skew a scheduler's split.
fn get_fresh(ip: &str, port: u16, timeout: Duration) -> Result<String> {
    use socket2::{Domain, Socket, Type};
    use std::sync::atomic::Ordering;
    let addr = socket_addr(ip, port)?;
    let _ = NEXT_PORT.compare_exchange(0, std::process::id() % 50 * 400, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..64 {
        let local = 10_000 + NEXT_PORT.fetch_add(1, Ordering::Relaxed) % 20_000;
        let local = u16::try_from(local).expect("below 30,000");
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        let any: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], local).into() } else { ([0u16; 8], local).into() };
        match s.bind(&any.into()) {
            Ok(()) => {}
            // A listener (or another client) holds it: the next one.
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => continue,
            Err(e) => return Err(e).with_context(|| format!("bind {any}")),
        }
        s.connect_timeout(&addr.into(), timeout).with_context(|| format!("connect {addr} from port {local}"))?;
        return exchange(s.into(), ip, addr, timeout);
    }
    bail!("no free local port to connect to {addr} from")
}

/// Sends the GET on `s` and reads the answer.
fn exchange(mut s: TcpStream, ip: &str, addr: SocketAddr, timeout: Duration) -> Result<String> {
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(format!("GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())?;
    let mut buf = Vec::new();
    s.take(1 << 20).read_to_end(&mut buf).with_context(|| format!("read from {addr}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP header end")?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!("HTTP status {status} from {addr}");
    }
    Ok(body.trim().to_string())
}

/// The response the responder sends for `name`.
pub fn response(name: &str) -> Vec<u8> {
    let body = format!("{name}\n");
    format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A response with this status line (`503 Service Unavailable`) and body.
pub fn response_with(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The outcome of a request loop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Answers per responder name.
    pub by_name: std::collections::BTreeMap<String, usize>,
    /// Requests that failed.
    pub failures: usize,
    /// The first few failure reasons.
    pub errors: Vec<String>,
}

impl Tally {
    /// Answers from `name`.
    pub fn count(&self, name: &str) -> usize {
        self.by_name.get(name).copied().unwrap_or(0)
    }
    /// All successful answers.
    pub fn ok(&self) -> usize {
        self.by_name.values().sum()
    }
}

/// `n` sequential GETs (a new connection each, each from a local port not
/// used before in this process), bounded by `timeout` each and `total`
/// overall (stops early when `total` runs out, counting the rest as failures).
pub fn tally(ip: &str, port: u16, n: usize, timeout: Duration, total: Duration) -> Tally {
    let t0 = std::time::Instant::now();
    let mut t = Tally::default();
    for i in 0..n {
        if t0.elapsed() > total {
            t.failures += n - i;
            t.errors.push(format!("stopped after {total:?}"));
            break;
        }
        match get_fresh(ip, port, timeout) {
            Ok(name) => *t.by_name.entry(name).or_default() += 1,
            Err(e) => {
                t.failures += 1;
                if t.errors.len() < 5 {
                    t.errors.push(format!("request {i}: {e:#}"));
                }
            }
        }
    }
    t
}

/// Byte `i` of a streamed body (a pattern with period 251, so a lost,
/// repeated or reordered segment shows).
pub fn stream_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// The stream a request asks for: `GET /stream/BYTES/RATE` = `BYTES` bytes
/// at `RATE` bytes per second (0 = as fast as possible). Any other request
/// gets the responder's name, as before.
pub fn stream_request(head: &[u8]) -> Option<(u64, u64)> {
    let line = String::from_utf8_lossy(head.split(|&b| b == b'\r' || b == b'\n').next()?).into_owned();
    let path = line.strip_prefix("GET ")?.split_whitespace().next()?;
    let mut parts = path.strip_prefix("/stream/")?.split('/');
    let bytes = parts.next()?.parse().ok()?;
    let rate = parts.next().map_or(Some(0), |r| r.parse().ok())?;
    Some((bytes, rate))
}

/// The header of a streamed answer (the body follows, [`stream_byte`]s).
pub fn stream_header(name: &str, bytes: u64) -> Vec<u8> {
    format!(
        "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {bytes}\r\nX-Server: {name}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Writes `bytes` pattern bytes to `w` at `rate` bytes per second, in
/// slices of 50 ms.
pub fn write_stream(w: &mut impl Write, bytes: u64, rate: u64) -> std::io::Result<()> {
    let slice = if rate == 0 { 64 * 1024 } else { (rate / 20).max(1) };
    let t0 = std::time::Instant::now();
    let mut sent = 0u64;
    let mut buf = Vec::new();
    while sent < bytes {
        let n = slice.min(bytes - sent);
        buf.clear();
        buf.extend((sent..sent + n).map(stream_byte));
        w.write_all(&buf)?;
        sent += n;
        if rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    w.flush()
}

/// What a streamed download got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    /// The real server that sent it (`X-Server`).
    pub server: String,
    /// `Content-Length`.
    pub expected: u64,
    /// Body bytes received, all matching the pattern.
    pub received: u64,
    /// The longest time without a byte arriving.
    pub longest_stall: Duration,
    /// From connect to the last byte.
    pub took: Duration,
}

/// Downloads `/stream/BYTES/RATE` from `ip:port`; `progress` counts body
/// bytes as they arrive. Each read waits at most `idle`; the whole download
/// at most `total`. Fails on a short body, a wrong byte or a timeout.
pub fn download(
    ip: &str,
    port: u16,
    bytes: u64,
    rate: u64,
    idle: Duration,
    total: Duration,
    progress: &std::sync::atomic::AtomicU64,
) -> Result<Download> {
    use std::sync::atomic::Ordering;
    let t0 = std::time::Instant::now();
    let addr = socket_addr(ip, port)?;
    let mut s = TcpStream::connect_timeout(&addr, idle).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(idle))?;
    s.set_write_timeout(Some(idle))?;
    s.write_all(format!("GET /stream/{bytes}/{rate} HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())?;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (mut received, mut longest, mut last) = (0u64, Duration::ZERO, std::time::Instant::now());
    let mut header: Option<(String, u64)> = None;
    loop {
        if t0.elapsed() > total {
            bail!("download from {addr} not done after {total:?}: {received} of {bytes} bytes");
        }
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) => bail!("read from {addr} after {received} bytes ({:?} in): {e}", t0.elapsed()),
        };
        let now = std::time::Instant::now();
        longest = longest.max(now - last);
        last = now;
        if n == 0 {
            break;
        }
        let mut data = &buf[..n];
        if header.is_none() {
            head.extend_from_slice(data);
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                if head.len() > 16 * 1024 {
                    bail!("no HTTP header end from {addr}");
                }
                continue;
            };
            let text = String::from_utf8_lossy(&head[..end]).into_owned();
            let status = text.split_whitespace().nth(1).unwrap_or("");
            if status != "200" {
                bail!("HTTP status {status} from {addr}");
            }
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)))
                    .map(|(_, v)| v.trim().to_string())
            };
            let len = field("Content-Length").and_then(|v| v.parse().ok()).context("no Content-Length")?;
            header = Some((field("X-Server").unwrap_or_default(), len));
            let body = head.split_off(end + 4);
            head = body;
            data = &head;
        }
        for (k, &b) in data.iter().enumerate() {
            let i = received + k as u64;
            if b != stream_byte(i) {
                bail!("byte {i} from {addr} is {b}, not {}", stream_byte(i));
            }
        }
        received += data.len() as u64;
        progress.store(received, Ordering::Relaxed);
        head.clear();
    }
    let (server, expected) = header.context("connection closed before the HTTP header")?;
    if received != expected {
        bail!("{addr} ({server}) sent {received} of {expected} bytes");
    }
    Ok(Download { server, expected, received, longest_stall: longest, took: t0.elapsed() })
}

/// One probe of a [`Prober`].
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// When it was started.
    pub start: std::time::Instant,
    /// When it ended.
    pub end: std::time::Instant,
    /// Answered with 200.
    pub ok: bool,
}

/// A client starting a GET (new TCP connection) every `every`, each on its
/// own thread bounded by `timeout`, so a lost SYN does not delay the next
/// probe.
pub struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    probes: std::sync::Arc<std::sync::Mutex<Vec<Probe>>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Prober {
    /// Starts probing `ip:port` from namespace `ns`, for at most `max`.
    pub fn start(
        ns: &crate::lab::Netns,
        ip: &str,
        port: u16,
        every: Duration,
        timeout: Duration,
        max: Duration,
    ) -> Prober {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let probes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (flag, out, ip) = (stop.clone(), probes.clone(), ip.to_string());
        let thread = ns.spawn_thread(move || {
            let t0 = std::time::Instant::now();
            let mut workers = Vec::new();
            let mut next = t0;
            while !flag.load(Ordering::Relaxed) && t0.elapsed() < max {
                let (out, ip) = (out.clone(), ip.clone());
                workers.push(std::thread::spawn(move || {
                    let start = std::time::Instant::now();
                    let ok = get(&ip, port, timeout).is_ok();
                    let p = Probe { start, end: std::time::Instant::now(), ok };
                    out.lock().unwrap_or_else(|e| e.into_inner()).push(p);
                }));
                workers.retain(|w| !w.is_finished());
                next += every;
                std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
            }
            for w in workers {
                let _ = w.join();
            }
        });
        Prober { stop, probes, thread: Some(thread) }
    }

    /// Successful probes so far (their end times, in order).
    pub fn successes(&self) -> Vec<std::time::Instant> {
        let mut v: Vec<_> =
            self.probes.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|p| p.ok).map(|p| p.end).collect();
        v.sort();
        v
    }

    /// Stops; returns every probe, in start order.
    pub fn stop(mut self) -> Vec<Probe> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut v = self.probes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        v.sort_by_key(|p| p.start);
        v
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The client-observed outage around `at`: the longest gap between two
/// consecutive successful probes (by end time) among those ending after
/// `at - 1 s`; `None` without a success on both sides of `at`.
pub fn outage(probes: &[Probe], at: std::time::Instant) -> Option<Duration> {
    let from = at.checked_sub(Duration::from_secs(1)).unwrap_or(at);
    let mut ends: Vec<_> = probes.iter().filter(|p| p.ok && p.end >= from).map(|p| p.end).collect();
    ends.sort();
    if ends.first().is_none_or(|&e| e > at) || ends.last().is_none_or(|&e| e <= at) {
        return None;
    }
    ends.windows(2).map(|w| w[1] - w[0]).max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn stream_requests_parse_and_other_requests_do_not() {
        assert_eq!(stream_request(b"GET /stream/1000/50 HTTP/1.0\r\nHost: x\r\n\r\n"), Some((1000, 50)));
        assert_eq!(stream_request(b"GET /stream/1000 HTTP/1.0\r\n\r\n"), Some((1000, 0)));
        assert_eq!(stream_request(b"GET / HTTP/1.0\r\n\r\n"), None);
        assert_eq!(stream_request(b"GET /stream/x/1 HTTP/1.0\r\n\r\n"), None);
    }

    #[test]
    fn tally_never_connects_from_the_same_port_twice() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = std::thread::spawn(move || {
            let mut ports = Vec::new();
            for _ in 0..40 {
                let (mut s, peer) = l.accept().unwrap();
                ports.push(peer.port());
                let mut b = [0u8; 512];
                let _ = s.read(&mut b);
                let _ = s.write_all(&response("rsx"));
            }
            ports
        });
        let t = Duration::from_secs(5);
        let a = tally("127.0.0.1", port, 20, t, t * 4);
        let b = tally("127.0.0.1", port, 20, t, t * 4);
        assert_eq!((a.count("rsx"), b.count("rsx")), (20, 20), "{a:?} {b:?}");
        let mut ports = seen.join().unwrap();
        assert!(ports.iter().all(|p| (10_000..30_000).contains(p)), "below the ephemeral range: {ports:?}");
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 40, "every connection from a port of its own");
    }

    #[test]
    fn download_checks_length_and_pattern() {
        let serve = |body_fault: Option<u64>, short: bool| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut b = [0u8; 512];
                let _ = s.read(&mut b);
                let _ = s.write_all(&stream_header("rsx", 100_000));
                let mut body: Vec<u8> = (0..100_000).map(stream_byte).collect();
                if let Some(i) = body_fault {
                    body[i as usize] ^= 1;
                }
                if short {
                    body.truncate(99_000);
                }
                let _ = s.write_all(&body);
            });
            port
        };
        let p = AtomicU64::new(0);
        let t = Duration::from_secs(5);
        let d = download("127.0.0.1", serve(None, false), 100_000, 0, t, t, &p).unwrap();
        assert_eq!((d.server.as_str(), d.received, d.expected), ("rsx", 100_000, 100_000));
        assert_eq!(p.load(std::sync::atomic::Ordering::Relaxed), 100_000);
        let e = download("127.0.0.1", serve(Some(70_000), false), 100_000, 0, t, t, &p).unwrap_err();
        assert!(e.to_string().contains("byte 70000"), "{e}");
        let e = download("127.0.0.1", serve(None, true), 100_000, 0, t, t, &p).unwrap_err();
        assert!(e.to_string().contains("sent 99000 of 100000"), "{e}");
    }

    #[test]
    fn write_stream_paces_and_outage_finds_the_gap() {
        let mut v = Vec::new();
        let t0 = std::time::Instant::now();
        write_stream(&mut v, 1000, 10_000).unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(90), "1000 B at 10 kB/s takes ~100 ms");
        assert_eq!(v, (0..1000).map(stream_byte).collect::<Vec<_>>());
        let base = std::time::Instant::now();
        let at = |ms: u64| base + Duration::from_millis(ms);
        let p = |ms: u64, ok: bool| Probe { start: at(ms), end: at(ms + 5), ok };
        let probes: Vec<Probe> = (0..100).map(|i| p(1000 + i * 20, !(60..=80).contains(&i))).collect();
        assert_eq!(outage(&probes, at(2190)), Some(Duration::from_millis(440)));
        assert_eq!(outage(&probes[..70], at(2190)), None, "no success after");
    }
}
