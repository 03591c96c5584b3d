//! Each probe against servers started on 127.0.0.1 by the test: TCP,
//! HTTP (status, ranges, regex, digest, chunked, Host header), UDP (reply
//! required, ICMP port unreachable), DNS (NOERROR, NXDOMAIN), ICMP (needs
//! root for the raw socket; skipped otherwise).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lbd::health::config::{Check, Http, Probe, StatusRange, Timing};
use lbd::health::probe;

fn check(probe: Probe, target: SocketAddr) -> Check {
    Check {
        probe,
        target,
        bind: None,
        mark: 0,
        via_vip_to: None,
        timing: Timing { connect_timeout_ms: 1000, ..Timing::default() },
    }
}

fn http(path: &str) -> Http {
    Http { tls: false, path: path.into(), status: vec![StatusRange(200, 299)], regex: None, digest: None, host: None }
}

/// An HTTP server answering every request with `reply` (shared, so a test
/// can change it) and remembering the last request head.
type Shared<T> = Arc<Mutex<T>>;

fn http_server() -> (SocketAddr, Shared<Vec<u8>>, Shared<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let reply = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(String::new()));
    let (r, s) = (reply.clone(), seen.clone());
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            *s.lock().unwrap() = String::from_utf8_lossy(&got).into_owned();
            let _ = c.write_all(&r.lock().unwrap());
        }
    });
    (addr, reply, seen)
}

fn resp(status: &str, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).into_bytes()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn tcp_connect_and_refused() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = l.local_addr().unwrap();
    drop(TcpListener::bind("127.0.0.1:0").unwrap()); // a port nobody listens on (probably)
    let closed: SocketAddr = {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        t.local_addr().unwrap()
    };
    rt().block_on(async {
        let o = probe::run(&check(Probe::Tcp, up)).await;
        assert!(o.ok, "{o:?}");
        assert_eq!(o.reason, "connected");
        let o = probe::run(&check(Probe::Tcp, closed)).await;
        assert!(!o.ok);
        assert_eq!(o.reason, "connection refused");
    });
    drop(l);
}

#[test]
fn http_status_regex_digest_and_host() {
    let (addr, reply, seen) = http_server();
    rt().block_on(async {
        *reply.lock().unwrap() = resp("200 OK", "all good\n");
        let mut h = http("/health");
        h.host = Some("www.example.org".into());
        let o = probe::run(&check(Probe::Http(Box::new(h.clone())), addr)).await;
        assert!(o.ok, "{o:?}");
        assert_eq!(o.reason, "status 200");
        let req = seen.lock().unwrap().clone();
        assert!(req.starts_with("GET /health HTTP/1.1\r\nHost: www.example.org\r\n"), "{req}");
        // 503 fails with the status as the reason.
        *reply.lock().unwrap() = resp("503 Service Unavailable", "down\n");
        let o = probe::run(&check(Probe::Http(Box::new(h.clone())), addr)).await;
        assert_eq!((o.ok, &*o.reason), (false, "status 503"));
        // ... unless 503 is expected.
        h.status = vec![StatusRange(200, 200), StatusRange(500, 503)];
        assert!(probe::run(&check(Probe::Http(Box::new(h.clone())), addr)).await.ok);
        // Body regex.
        *reply.lock().unwrap() = resp("200 OK", "{\"healthy\": false}");
        h.regex = Some("\"healthy\":\\s*true".into());
        let o = probe::run(&check(Probe::Http(Box::new(h.clone())), addr)).await;
        assert_eq!((o.ok, &*o.reason), (false, "body does not match /\"healthy\":\\s*true/"));
        *reply.lock().unwrap() = resp("200 OK", "{\"healthy\": true}");
        assert!(probe::run(&check(Probe::Http(Box::new(h.clone())), addr)).await.ok);
        // MD5 digest (md5("abc")), also over a chunked body.
        h.regex = None;
        h.digest =
            Some([0x90, 0x01, 0x50, 0x98, 0x3c, 0xd2, 0x4f, 0xb0, 0xd6, 0x96, 0x3f, 0x7d, 0x28, 0xe1, 0x7f, 0x72]);
        *reply.lock().unwrap() =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n2\r\nbc\r\n0\r\n\r\n".to_vec();
        let o = probe::run(&check(Probe::Http(Box::new(h.clone())), addr)).await;
        assert!(o.ok, "{o:?}");
        *reply.lock().unwrap() = resp("200 OK", "abd");
        let o = probe::run(&check(Probe::Http(Box::new(h.clone())), addr)).await;
        assert!(!o.ok && o.reason.starts_with("body MD5 "), "{o:?}");
        // Not HTTP at all.
        *reply.lock().unwrap() = b"SSH-2.0-OpenSSH\r\n\r\n".to_vec();
        let o = probe::run(&check(Probe::Http(Box::new(http("/"))), addr)).await;
        assert_eq!((o.ok, &*o.reason), (false, "not an HTTP response"));
    });
}

#[test]
fn http_timeout_when_the_server_never_answers() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let _keep = std::thread::spawn(move || {
        let conns: Vec<_> = l.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(3));
        drop(conns);
    });
    rt().block_on(async {
        let mut c = check(Probe::Http(Box::new(http("/"))), addr);
        c.timing.connect_timeout_ms = 300;
        let o = probe::run(&c).await;
        assert_eq!((o.ok, &*o.reason), (false, "timeout after 0.3 s"));
        assert!(o.latency >= Duration::from_millis(290) && o.latency < Duration::from_secs(2), "{o:?}");
    });
}

#[test]
fn udp_reply_and_port_unreachable() {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut b) {
            let mut r = b"pong:".to_vec();
            r.extend_from_slice(&b[..n]);
            let _ = s.send_to(&r, from);
        }
    });
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    rt().block_on(async {
        let p = Probe::Udp { payload: b"ping".to_vec(), reply: Some(b"pong".to_vec()) };
        let o = probe::run(&check(p, addr)).await;
        assert!(o.ok, "{o:?}");
        let p = Probe::Udp { payload: b"ping".to_vec(), reply: Some(b"PONG".to_vec()) };
        assert!(!probe::run(&check(p, addr)).await.ok);
        // No reply required: success unless ICMP says the port is closed.
        let p = Probe::Udp { payload: b"x".to_vec(), reply: None };
        let o = probe::run(&check(p, closed)).await;
        assert_eq!((o.ok, &*o.reason), (false, "port unreachable"));
    });
}

#[test]
fn dns_noerror_and_nxdomain() {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = s.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut b) {
            let mut r = b[..n].to_vec();
            r[2] |= 0x80; // QR
            // "missing.test" → NXDOMAIN, anything else NOERROR with no answers.
            if String::from_utf8_lossy(&r).contains("missing") {
                r[3] = (r[3] & 0xf0) | 3;
            }
            let _ = s.send_to(&r, from);
        }
    });
    rt().block_on(async {
        let o = probe::run(&check(Probe::Dns { qtype: 6, name: ".".into() }, addr)).await;
        assert!(o.ok, "{o:?}");
        let o = probe::run(&check(Probe::Dns { qtype: 1, name: "missing.test".into() }, addr)).await;
        assert_eq!((o.ok, &*o.reason), (false, "NXDOMAIN"));
    });
}

#[test]
fn icmp_echo_to_loopback() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: ICMP checks need a raw socket (root)");
        return;
    }
    rt().block_on(async {
        let o = probe::run(&check(Probe::Icmp, "127.0.0.1:0".parse().unwrap())).await;
        assert!(o.ok, "{o:?}");
        assert_eq!(o.reason, "echo reply");
    });
}
