//! `lbd check` and `lbd ctl` as an operator runs them, against `lbd run --sim`.

use std::process::Command;
use std::time::Duration;

mod common;

use common::{LBD, ctl};

fn start(tag: &str) -> common::Daemon {
    let dir = std::env::temp_dir().join(format!("lbd-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    common::start_in(dir)
}

#[test]
fn check_reports_every_error_and_fails() {
    let dir = std::env::temp_dir().join(format!("lbd-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(
        &f,
        "[[services]]\naddress = \"10.0.0.1\"\nscheduler = \"fastest\"\n[[services.reals]]\nadress = \"x\"\n",
    )
    .unwrap();
    let out = Command::new(LBD).arg("check").arg(&f).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("bad.toml:3:13: services[0].scheduler: unknown scheduler `fastest`"), "{err}");
    assert!(err.contains("bad.toml:5:1: services[0].reals[0].adress: unknown field `adress`"), "{err}");
    assert!(err.contains("services[0].reals[0]: missing required field `address`"), "{err}");
    std::fs::write(&f, "[[services]]\naddress = \"10.0.0.1:80\"\n").unwrap();
    let out = Command::new(LBD).arg("check").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctl_apply_list_and_restore() {
    let d = start("ctl");
    let cfg = d.dir.join("new.toml");
    std::fs::write(&cfg, "[[services]]\naddress = \"192.0.2.1:80\"\nscheduler = \"wrr\"\n[[services.reals]]\naddress = \"10.1.1.1\"\nweight = 3\n").unwrap();
    let (code, _, err) = ctl(&d.dir, &["apply", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = ctl(&d.dir, &["list"]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  192.0.2.1:80 wrr\n  \
         -> 10.1.1.1:80                  Route   3      0          0         \n"
    );
    let (code, out, _) = ctl(&d.dir, &["list", "-S"]);
    assert_eq!(code, 0);
    assert_eq!(out, "-A -t 192.0.2.1:80 -s wrr\n-a -t 192.0.2.1:80 -r 10.1.1.1:80 -g -w 3\n");
    // A bad apply is refused with file:line errors and exit status 1.
    std::fs::write(&cfg, "[[services]]\naddress = \"192.0.2.1:80\"\none_packet = true\n").unwrap();
    let (code, _, err) = ctl(&d.dir, &["apply", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains(":3:1: services[0].one_packet: one-packet scheduling only applies to UDP"), "{err}");
    // The persisted config is still the good one.
    let (_, out, _) = ctl(&d.dir, &["config"]);
    assert!(out.contains("weight = 3"), "{out}");
    std::fs::write(&cfg, "[[services]]\naddress = \"192.0.2.1:80\"\n").unwrap();
    assert_eq!(ctl(&d.dir, &["apply", cfg.to_str().unwrap()]).0, 0);
    let (_, hist, _) = ctl(&d.dir, &["history"]);
    assert!(hist.contains("\"n\": 1"), "{hist}");
}

#[test]
fn an_endless_request_line_is_refused_not_buffered() {
    use std::io::{BufRead, BufReader, Write};
    let d = start("longline");
    let s = std::os::unix::net::UnixStream::connect(d.dir.join("sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    // More than the limit and no newline: lbd stops reading, answers, closes.
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..=(lbd::ctl::proto::MAX_REQUEST_LINE >> 20) + 1 {
            if w.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(line.contains("request longer than 64 MiB: connection closed"), "{line}");
    drop(s);
    writer.join().unwrap();
    // lbd still serves others.
    assert_eq!(ctl(&d.dir, &["ping"]).0, 0);
}
