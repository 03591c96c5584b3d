//! End-to-end: passive FTP through the VIP (issue 6). A director guest, real
//! servers running Debian's vsftpd (passive mode) in namespaces, and a client
//! namespace with several source addresses running `curl`.
//!
//! - DR: the `ftp` shorthand makes lbd mark the control port and the passive
//!   range (nftables table `inet lvsbox`) and balance them as one persistent
//!   fwmark service, so each client's data connection lands on the real
//!   server of its control connection. With only the control port marked the
//!   same downloads fail, and with the rules back they work again.
//! - NAT: the `ftp` shorthand with `forwarding = "nat"` is the address service
//!   VIP:21 with the kernel's helper (`ip_vs_ftp`), which rewrites the PASV
//!   replies to the VIP.
//!
//! Run after `cargo run --release -p image -- build`, with `--test-threads=1`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tests::guest::{Guest, GuestSpec, mac};
use tests::lab::{Host, Lab};
use tests::topo::{CLIENT_IP, director_network};

const DR_VIP: &str = "10.77.0.110";
const NAT_VIP: &str = "10.77.0.111";
const PASV: (u16, u16) = (10000, 10100);
/// The client's source addresses: CLIENT_IP and these.
const EXTRA_CLIENTS: std::ops::RangeInclusive<u8> = 51..=57;
const FILE_LEN: usize = 1 << 20;

/// 1 MiB the same on every real server (xorshift, so a misplaced byte shows).
fn payload() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..FILE_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Starts vsftpd (standalone, anonymous, read-only, passive only) in `host`,
/// serving `data.bin` and a marker file named after the host, and waits until
/// it answers a listing on its own address.
fn serve_ftp(lab: &mut Lab, host: &Host, pasv_address: Option<&str>, data: &[u8]) -> Result<()> {
    let root = lab.dir.join(format!("ftp-{}", host.name));
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("data.bin"), data)?;
    std::fs::write(root.join(format!("{}.txt", host.name)), &host.name)?;
    let conf = lab.dir.join(format!("vsftpd-{}.conf", host.name));
    let mut c = format!(
        "listen=YES\nlisten_ipv6=NO\nbackground=NO\nanonymous_enable=YES\nno_anon_password=YES\nlocal_enable=NO\n\
         write_enable=NO\nanon_root={}\nport_enable=NO\npasv_enable=YES\npasv_min_port={}\npasv_max_port={}\n\
         seccomp_sandbox=NO\nsecure_chroot_dir=/var/run/vsftpd/empty\nxferlog_enable=NO\n",
        root.display(),
        PASV.0,
        PASV.1
    );
    if let Some(a) = pasv_address {
        c.push_str(&format!("pasv_address={a}\n"));
    }
    std::fs::write(&conf, c)?;
    std::fs::create_dir_all("/var/run/vsftpd/empty")?;
    lab.spawn(&format!("vsftpd-{}", host.name), &host.ns, "vsftpd", &[&conf.to_string_lossy()])?;
    let url = format!("ftp://{}/", host.ip());
    let t0 = Instant::now();
    loop {
        let out = host.ns.output("curl", &["-sS", "--disable-epsv", "--connect-timeout", "2", "-m", "5", &url])?;
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains(&format!("{}.txt", host.name)) {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(15) {
            bail!("vsftpd in {} does not list within 15 s: {}", host.name, String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What `n` passive sessions (a listing and a download each, one control
/// connection) through `vip` from the client's addresses in turn gave.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    by_real: std::collections::BTreeMap<String, usize>,
    bad_content: usize,
    failures: Vec<String>,
}

fn downloads(client: &Host, dir: &Path, vip: &str, n: usize, want: &[u8]) -> Result<Tally> {
    let sources: Vec<String> =
        std::iter::once(CLIENT_IP.to_string()).chain(EXTRA_CLIENTS.map(|i| format!("10.77.0.{i}"))).collect();
    let list = dir.join("list");
    let data = dir.join("data.bin");
    let mut t = Tally::default();
    let t0 = Instant::now();
    for i in 0..n {
        if t0.elapsed() > Duration::from_secs(600) {
            t.failures.push(format!("stopped after 600 s at {i}/{n}"));
            break;
        }
        let src = &sources[i % sources.len()];
        let _ = std::fs::remove_file(&list);
        let _ = std::fs::remove_file(&data);
        let out = client.ns.output(
            "curl",
            &[
                "-sS",
                "--ftp-pasv",
                "--disable-epsv",
                // Connect where the PASV reply says (curl's default reuses the
                // control address), as other clients do.
                "--no-ftp-skip-pasv-ip",
                "--interface",
                src,
                "--connect-timeout",
                "5",
                "-m",
                "60",
                &format!("ftp://{vip}/"),
                "-o",
                &list.to_string_lossy(),
                &format!("ftp://{vip}/data.bin"),
                "-o",
                &data.to_string_lossy(),
            ],
        )?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            t.failures.push(format!("{src}: {} {}", out.status, err.lines().last().unwrap_or_default()));
            continue;
        }
        let listing = std::fs::read_to_string(&list).unwrap_or_default();
        let real = listing
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .find_map(|f| f.strip_suffix(".txt"))
            .unwrap_or("?")
            .to_string();
        if std::fs::read(&data).ok().as_deref() != Some(want) {
            t.bad_content += 1;
            t.failures.push(format!("{src}: data.bin from {real} differs"));
            continue;
        }
        t.ok += 1;
        *t.by_real.entry(real).or_default() += 1;
    }
    Ok(t)
}

struct Setup {
    guest: Guest,
    client: Host,
    dir: PathBuf,
    lab: Lab,
}

/// A client with 8 source addresses, `reals` (DR reals with `vips` on lo, or
/// NAT reals routed through the director) running vsftpd, and the director
/// booted with `cfg` (and `files` on its config partition).
fn setup(nat: bool, cfg: &str, files: &[(&str, &str)], data: &[u8]) -> Result<Setup> {
    let mut lab = Lab::new()?;
    let client = lab.add_host("cl", &format!("{CLIENT_IP}/24"), None)?;
    for i in EXTRA_CLIENTS {
        client.ns.run("ip", &["addr", "add", &format!("10.77.0.{i}/24"), "dev", "eth0"])?;
    }
    for i in 0..2 {
        if nat {
            let h = lab.add_host(&format!("nat{}", i + 1), &format!("10.78.0.{}/24", 21 + i), Some("10.78.0.1"))?;
            serve_ftp(&mut lab, &h, None, data)?;
        } else {
            let h = lab.add_dr_real(&format!("rs{}", i + 1), &format!("10.77.0.{}/24", 11 + i), &[DR_VIP])?;
            serve_ftp(&mut lab, &h, Some(DR_VIP), data)?;
        }
    }
    let tap = lab.add_tap()?;
    let mut spec = GuestSpec::debug("director").config(cfg).nic(&tap, &mac(1, 0));
    spec.files = files.iter().map(|(n, t)| (n.to_string(), t.as_bytes().to_vec())).collect();
    let mut guest = Guest::boot(&lab, &spec)?;
    guest.wait_ready()?;
    let dir = lab.dir.join("client");
    std::fs::create_dir_all(&dir)?;
    Ok(Setup { guest, client, dir, lab })
}

fn fwmark(g: &mut Guest) -> Result<Value> {
    serde_json::from_str(&g.sh_ok("lbd ctl fwmark --json")?).context("lbd ctl fwmark --json")
}

fn lbd_restarts(g: &mut Guest) -> Result<u64> {
    let children: Value = serde_json::from_str(&g.sh_ok("/init ctl children")?)?;
    Ok(children
        .as_array()
        .context("children")?
        .iter()
        .find(|c| c["name"] == "lbd")
        .map_or(0, |c| c["restarts"].as_u64().unwrap_or(0)))
}

fn dr_config(service: &str) -> String {
    format!(
        "[system]\nhostname = \"lb-ftp\"\n\n{net}\n[[vips]]\naddress = \"{DR_VIP}\"\ninterface = \"eth0\"\n\n\
         [[services]]\nname = \"ftp\"\nfwmark = 300\nscheduler = \"rr\"\n{service}\n\
         [[services.reals]]\naddress = \"10.77.0.11\"\n[[services.reals]]\naddress = \"10.77.0.12\"\n",
        net = director_network()
    )
}

#[test]
fn dr_passive_ftp_through_the_vip_needs_the_mark_rules() -> Result<()> {
    let with_rules = dr_config(&format!(
        "ftp = {{ vip = \"{DR_VIP}\", control_port = 21, passive_ports = \"{}-{}\" }}",
        PASV.0, PASV.1
    ));
    // The same fwmark service, persistent as the shorthand makes it, but only
    // the control port marked: what a hand-written setup that forgot the
    // passive range does.
    let control_only = dr_config(&format!(
        "persistence = {{ timeout = 360 }}\nfwmark_rules = [{{ destination = \"{DR_VIP}\", protocol = \"tcp\", ports = [21] }}]"
    ));
    let data = payload();
    let mut s = setup(false, &with_rules, &[("ftp.toml", &with_rules), ("control-only.toml", &control_only)], &data)?;

    // lbd shows the expansion and the kernel has it.
    let f = fwmark(&mut s.guest)?;
    let nft: Vec<&str> = f["rules"].as_array().context("rules")?.iter().filter_map(|r| r["nft"].as_str()).collect();
    assert_eq!(
        nft,
        [
            format!("ip daddr {DR_VIP} tcp dport 21 meta mark set 0x12c"),
            format!("ip daddr {DR_VIP} tcp dport {}-{} meta mark set 0x12c", PASV.0, PASV.1)
        ],
        "{f}"
    );
    assert_eq!(f["kernel"]["sync"]["in_sync"], true, "{f}");
    let saved = s.guest.sh_ok("ipvsadm -S -n")?;
    assert!(saved.lines().any(|l| l == "-A -f 300 -s rr -p 360"), "{saved}");

    // 40 passive sessions from 8 client addresses: all complete with the
    // right content, and both real servers serve some.
    let t = downloads(&s.client, &s.dir, DR_VIP, 40, &data)?;
    eprintln!("DR with the mark rules: {t:?}");
    assert_eq!(t.ok, 40, "{t:?}");
    assert!(t.by_real.get("rs1").is_some_and(|n| *n > 0) && t.by_real.get("rs2").is_some_and(|n| *n > 0), "{t:?}");

    // Only the control port marked: the data connections to the passive
    // ports reach the director itself, not the FTP server; every download fails.
    let out = s.guest.sh_ok("lbd ctl apply /cfg/control-only.toml")?;
    assert!(out.contains("\"in_sync\": true"), "{out}");
    assert_eq!(fwmark(&mut s.guest)?["rules"].as_array().map(Vec::len), Some(1));
    let t = downloads(&s.client, &s.dir, DR_VIP, 8, &data)?;
    eprintln!("DR with the control port marked only: {t:?}");
    // What the user sees: the login works (the control port is balanced),
    // the data connection to the passive port is refused. (curl's summary
    // line names the control port; its trace names the refused one.)
    let o = s.client.ns.output("curl", &["-sS", "-v", "--disable-epsv", "-m", "10", &format!("ftp://{DR_VIP}/")])?;
    let trace = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{trace}");
    assert!(trace.contains("< 230 Login successful"), "{trace}");
    let refused = trace
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("* connect to {DR_VIP} port "))?.strip_suffix(" failed: Connection refused")
        })
        .and_then(|p| p.parse::<u16>().ok());
    assert!(refused.is_some_and(|p| (PASV.0..=PASV.1).contains(&p)), "{trace}");

    // The rules back: the downloads work again.
    s.guest.sh_ok("lbd ctl apply /cfg/ftp.toml")?;
    let t = downloads(&s.client, &s.dir, DR_VIP, 8, &data)?;
    assert_eq!(t.ok, 8, "{t:?}");

    // A restarted lbd adopts its table: no write, nothing logged about it.
    let g = &mut s.guest;
    let n = lbd_restarts(g)?;
    g.sh_ok("kill -TERM $(pidof lbd)")?;
    let t0 = Instant::now();
    while lbd_restarts(g)? == n || g.sh("lbd ctl ping")?.0 != 0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "lbd did not come back");
    }
    let f = fwmark(g)?;
    assert_eq!(f["kernel"]["sync"]["action"], "none", "{f}");
    assert_eq!(f["kernel"]["sync"]["in_sync"], true, "{f}");
    let logs = g.sh_ok("lbd ctl logs 200")?;
    assert!(!logs.contains("fwmark rules:"), "the restarted lbd rewrote the table:\n{logs}");
    let t = downloads(&s.client, &s.dir, DR_VIP, 8, &data)?;
    assert_eq!(t.ok, 8, "{t:?}");
    drop(s.guest);
    drop(s.lab);
    Ok(())
}

#[test]
fn nat_passive_ftp_through_the_vip_with_ip_vs_ftp() -> Result<()> {
    let cfg = format!(
        "[system]\nhostname = \"lb-ftp-nat\"\n\n{net}\n[[vips]]\naddress = \"{NAT_VIP}\"\ninterface = \"eth0\"\n\n\
         [[services]]\nname = \"ftp-nat\"\nforwarding = \"nat\"\nscheduler = \"rr\"\nftp = {{ vip = \"{NAT_VIP}\" }}\n\
         [[services.reals]]\naddress = \"10.78.0.21:21\"\n[[services.reals]]\naddress = \"10.78.0.22:21\"\n",
        net = director_network()
    );
    let data = payload();
    let mut s = setup(true, &cfg, &[], &data)?;
    let g = &mut s.guest;
    let saved = g.sh_ok("ipvsadm -S -n")?;
    assert!(saved.lines().any(|l| l == format!("-A -t {NAT_VIP}:21 -s rr")), "{saved}");
    assert_eq!(g.sh_ok("cat /sys/module/ip_vs_ftp/parameters/ports")?.trim(), "21");
    assert_eq!(g.sh_ok("cat /proc/sys/net/ipv4/vs/conntrack")?.trim(), "1");
    let f = fwmark(g)?;
    assert_eq!(f["rules"].as_array().map(Vec::len), Some(0), "NAT FTP needs no marks: {f}");

    // The real answers PASV with its own address; the client sees the VIP.
    let o = s.client.ns.output("curl", &["-sS", "-v", "--disable-epsv", "-m", "10", &format!("ftp://{NAT_VIP}/")])?;
    let trace = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{trace}");
    assert!(trace.contains(&format!("< 227 Entering Passive Mode ({},", NAT_VIP.replace('.', ","))), "{trace}");

    let t = downloads(&s.client, &s.dir, NAT_VIP, 20, &data)?;
    eprintln!("NAT with ip_vs_ftp: {t:?}");
    assert_eq!(t.ok, 20, "{t:?}");
    assert!(t.by_real.get("nat1").is_some_and(|n| *n > 0) && t.by_real.get("nat2").is_some_and(|n| *n > 0), "{t:?}");
    drop(s.guest);
    drop(s.lab);
    Ok(())
}
