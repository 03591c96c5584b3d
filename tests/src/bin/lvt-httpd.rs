//! `lvt-httpd NAME PORT [MAX_SECONDS [CONTROL_FILE]]`: answers every HTTP
//! request with NAME, except `GET /stream/BYTES/RATE`, answered with BYTES
//! pattern bytes at RATE bytes per second (a long download; see
//! `tests::http::download`). Exits after MAX_SECONDS (default 600) so a leaked
//! one cannot live forever. With CONTROL_FILE, each request first reads that
//! file: when it exists, its first line is the status line to send (e.g.
//! `503 Service Unavailable`) and the rest the body (health-check tests
//! change a real's answers without restarting it).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: lvt-httpd NAME PORT [MAX_SECONDS [CONTROL_FILE]]");
        std::process::exit(2);
    }
    let name = args[1].clone();
    let port: u16 = args[2].parse().expect("port");
    let max: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(600);
    let control = args.get(4).cloned();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(max));
        std::process::exit(0);
    });
    let l = TcpListener::bind(("::", port)).or_else(|_| TcpListener::bind(("0.0.0.0", port))).expect("bind");
    let reply = tests::http::response(&name);
    for s in l.incoming() {
        let Ok(mut s) = s else { continue };
        let reply = reply.clone();
        let control = control.clone();
        let name = name.clone();
        std::thread::spawn(move || {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 2048];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
                if got.len() > 64 * 1024 {
                    break;
                }
            }
            let reply = match control.as_deref().and_then(|f| std::fs::read_to_string(f).ok()) {
                Some(c) => {
                    let (status, body) = c.split_once('\n').unwrap_or((c.as_str(), ""));
                    tests::http::response_with(status.trim(), body)
                }
                None => reply,
            };
            match tests::http::stream_request(&got) {
                Some((bytes, rate)) => {
                    // A stalled client (its director failing over) must not
                    // end the stream: wait for the window to open again.
                    let _ = s.set_write_timeout(Some(Duration::from_secs(120)));
                    let _ = s.write_all(&tests::http::stream_header(&name, bytes));
                    let _ = tests::http::write_stream(&mut s, bytes, rate);
                }
                None => {
                    let _ = s.write_all(&reply);
                }
            }
        });
    }
}
