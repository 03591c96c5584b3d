//! A minimal HTTP/1.0 client for the harness (no dependencies, bounded by
//! timeouts), and the responder logic used by the `lvt-httpd` binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// GETs `/` from `ip:port` and returns the body; fails on anything but 200.
pub fn get(ip: &str, port: u16, timeout: Duration) -> Result<String> {
    let addr: SocketAddr = format!("{ip}:{port}").parse().or_else(|_| format!("[{ip}]:{port}").parse())?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connect {addr}"))?;
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

/// `n` sequential GETs (a new connection each), bounded by `timeout` each and
/// `total` overall (stops early when `total` runs out, counting the rest as failures).
pub fn tally(ip: &str, port: u16, n: usize, timeout: Duration, total: Duration) -> Tally {
    let t0 = std::time::Instant::now();
    let mut t = Tally::default();
    for i in 0..n {
        if t0.elapsed() > total {
            t.failures += n - i;
            t.errors.push(format!("stopped after {total:?}"));
            break;
        }
        match get(ip, port, timeout) {
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
