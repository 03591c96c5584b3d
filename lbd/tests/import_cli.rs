//! `lbd import` as an operator runs it: TOML on stdout (or -o), the report on
//! stderr, non-zero exit on errors; the result passes `lbd check` and, applied
//! to `lbd run --sim`, programs the rules it was imported from.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

use common::{LBD, ctl};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/import/fixtures")
}

fn tmp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lbd-import-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs lbd with `args` and `stdin`; (exit code, stdout, stderr).
fn lbd(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(LBD)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn keepalived_import_writes_toml_that_lbd_check_accepts() {
    let dir = tmp("ka");
    let conf = fixtures().join("full.conf");
    let out = dir.join("lvsbox.toml");
    let (code, stdout, stderr) =
        lbd(&["import", "keepalived", conf.to_str().unwrap(), "-o", out.to_str().unwrap()], "");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "with -o the TOML goes to the file: {stdout}");
    // The report names the included file and line of what was not imported.
    assert!(stderr.contains("conf.d/10-web.conf:28: not imported: MISC_CHECK"), "{stderr}");
    assert!(stderr.contains("import: 0 error(s), 7 not imported"), "{stderr}");
    let (code, stdout, stderr) = lbd(&["check", out.to_str().unwrap()], "");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("OK (4 services, 7 real servers"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_exit_non_zero_with_file_and_line_and_write_nothing() {
    let (code, stdout, stderr) =
        lbd(&["import", "keepalived", "-"], "virtual_server 192.0.2.1 80 {\n  real_server 192.0.2.999 80\n");
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("<stdin>:2: error: real_server: `192.0.2.999` is not an IP address"), "{stderr}");
    assert!(stderr.contains("<stdin>:1: error: {: block is never closed"), "{stderr}");
    let (code, _, stderr) = lbd(&["import", "ipvsadm", "/nonexistent/rules"], "");
    assert_eq!(code, 1, "{stderr}");
    let (code, _, _) = lbd(&["import", "haproxy", "x"], "");
    assert_eq!(code, 2);
}

#[test]
fn imported_ipvsadm_script_programs_the_same_rules() {
    // Seed 000's director script, through stdin.
    let script = std::fs::read_to_string(fixtures().join("seed000_lvs_dr.sh")).unwrap();
    let (code, toml, stderr) = lbd(&["import", "ipvsadm", "-"], &script);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("<stdin>:9: not imported: ifconfig"), "{stderr}");
    let dir = tmp("sim");
    std::fs::write(dir.join("imported.toml"), &toml).unwrap();
    let d = common::start_in(dir);
    let file = d.dir.join("imported.toml");
    let (code, _, stderr) = ctl(&d.dir, &["apply", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let (code, rules, _) = ctl(&d.dir, &["list", "-S"]);
    assert_eq!(code, 0);
    assert_eq!(
        rules,
        "-A -t 192.168.1.200:80 -s rr\n\
         -a -t 192.168.1.200:80 -r 192.168.1.11:80 -g -w 1\n\
         -a -t 192.168.1.200:80 -r 192.168.1.12:80 -g -w 1\n"
    );
    // And the saved rules import back to the same config.
    let (code, again, stderr) = lbd(&["import", "ipvsadm", "-"], &rules);
    assert_eq!(code, 0, "{stderr}");
    let body = |t: &str| t.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&again), body(&toml));
}
