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
