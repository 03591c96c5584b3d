//! HTTPS checks against a real TLS stack: `openssl s_server -www` on
//! 127.0.0.1 (OpenSSL's TLS 1.3 and TLS 1.2 server, as nginx and HAProxy
//! link it).
//! Needs the `openssl` command (tests/setup installs it); a missing one
//! fails the test rather than skipping it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use lbd::health::config::{Check, Http, Probe, StatusRange, Timing};
use lbd::health::probe;

/// A temporary directory with certificates, removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().expect("the openssl command (tests/setup installs it)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Self-signed certificates: an ECDSA P-256 one and an RSA one named
/// www.example.com.
fn certs() -> Dir {
    let d = std::env::temp_dir().join(format!("lbd-https-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = |n: &str| d.join(n).to_string_lossy().into_owned();
    let ec = ["-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let days = ["-days", "2", "-nodes", "-x509"];
    openssl(
        &[
            &["req", "-newkey", "ec"][..],
            &ec,
            &days,
            &["-keyout", &p("ec.key"), "-out", &p("ec.crt"), "-subj", "/CN=rs"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req", "-newkey", "rsa:2048"][..],
            &days,
            &["-keyout", &p("rsa.key"), "-out", &p("rsa.crt"), "-subj", "/CN=www.example.com"],
        ]
        .concat(),
    );
    Dir(d)
}

/// `openssl s_server` on 127.0.0.1, killed (by its PID) on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server(dir: &Path, extra: &[&str]) -> Server {
    let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let mut child = Command::new("openssl")
        .args(["s_server", "-accept", "127.0.0.1:0", "-www", "-cert", &p("ec.crt"), "-key", &p("ec.key")])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("s_server exited before listening").unwrap();
        if let Some(a) = line.strip_prefix("ACCEPT ") {
            break a.trim().parse().unwrap();
        }
    };
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

fn https(target: SocketAddr, host: Option<&str>, regex: Option<&str>) -> Check {
    Check {
        probe: Probe::Http(Box::new(Http {
            tls: true,
            path: "/".into(),
            status: vec![StatusRange(200, 299)],
            regex: regex.map(String::from),
            digest: None,
            host: host.map(String::from),
        })),
        target,
        bind: None,
        mark: 0,
        via_vip_to: None,
        timing: Timing { connect_timeout_ms: 3000, ..Timing::default() },
    }
}

fn run(c: &Check) -> (bool, String) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let o = rt.block_on(probe::run(c));
    (o.ok, o.reason.to_string())
}

#[test]
fn https_check_passes_against_openssl_over_tls13() {
    let d = certs();
    let s = server(&d.0, &[]);
    // The page s_server serves names the suite it negotiated with us.
    let (ok, why) = run(&https(s.addr, None, Some("New, TLSv1\\.3, Cipher is TLS_AES_128_GCM_SHA256")));
    assert!(ok, "{why}");
    assert_eq!(why, "status 200, body ok");
    let (ok, why) = run(&https(s.addr, None, Some("no such text")));
    assert!(!ok && why.contains("body does not match"), "{why}");
}

#[test]
fn https_check_with_an_rsa_certificate_and_a_requested_client_certificate() {
    let d = certs();
    let p = |n: &str| d.0.join(n).to_string_lossy().into_owned();
    // RSA (an rsa_pss_rsae signature), and a CertificateRequest the check
    // answers with an empty Certificate.
    let s = server(&d.0, &["-cert", &p("rsa.crt"), "-key", &p("rsa.key"), "-verify", "1"]);
    let (ok, why) = run(&https(s.addr, None, None));
    assert!(ok, "{why}");
    // A server that insists on a client certificate fails the check, saying so.
    let s = server(&d.0, &["-Verify", "1"]);
    let (ok, why) = run(&https(s.addr, None, None));
    assert!(!ok && why.contains("certificate"), "{why}");
}

#[test]
fn https_check_sends_the_virtualhost_as_sni() {
    let d = certs();
    let p = |n: &str| d.0.join(n).to_string_lossy().into_owned();
    let s = server(
        &d.0,
        &["-cert2", &p("rsa.crt"), "-key2", &p("rsa.key"), "-servername", "www.example.com", "-servername_fatal"],
    );
    let (ok, why) = run(&https(s.addr, Some("www.example.com"), None));
    assert!(ok, "{why}");
    let (ok, why) = run(&https(s.addr, Some("other.example.com"), None));
    assert!(!ok && why.contains("unrecognized_name"), "{why}");
}

#[test]
fn https_check_passes_against_a_tls12_only_server() {
    let d = certs();
    let p = |n: &str| d.0.join(n).to_string_lossy().into_owned();
    let s = server(&d.0, &["-tls1_2"]);
    let (ok, why) = run(&https(s.addr, None, Some("New, TLSv1\\.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256")));
    assert!(ok, "{why}");
    // RSA certificate, a requested client certificate, SNI.
    let s = server(&d.0, &["-tls1_2", "-cert", &p("rsa.crt"), "-key", &p("rsa.key"), "-verify", "1"]);
    let (ok, why) =
        run(&https(s.addr, Some("www.example.com"), Some("New, TLSv1\\.2, Cipher is ECDHE-RSA-AES128-GCM-SHA256")));
    assert!(ok, "{why}");
}

#[test]
fn https_check_fails_with_a_reason_against_other_groups_and_plain_http() {
    let d = certs();
    // Only P-256 key exchange: TLS 1.3 asks for another key share, TLS 1.2
    // picks it for ECDHE; both fail, saying so.
    let s = server(&d.0, &["-groups", "P-256"]);
    let (ok, why) = run(&https(s.addr, None, None));
    assert!(!ok && why.contains("HelloRetryRequest") && why.contains("x25519"), "{why}");
    let s = server(&d.0, &["-groups", "P-256", "-tls1_2"]);
    let (ok, why) = run(&https(s.addr, None, None));
    assert!(!ok && why.contains("secp256r1; lvsbox's checks use x25519"), "{why}");

    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut c, _)) = l.accept() {
            let mut b = [0u8; 1024];
            let _ = c.read(&mut b);
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let (ok, why) = run(&https(addr, None, None));
    assert!(!ok && why.contains("not a TLS server"), "{why}");
}
