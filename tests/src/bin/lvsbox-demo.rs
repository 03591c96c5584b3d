//! The README's demo: two lvsbox directors (production image, VRRP sharing
//! the VIP 10.77.0.100), two LVS-DR real servers set up as the seeds do, and
//! a client, on a private bridge (network namespaces, root).
//!
//! `lvsbox-demo`          in a terminal: tmux with both directors' serial
//!                        consoles (the TUI) and a client polling the VIP.
//! `lvsbox-demo --check`  no terminal: boots everything, shows traffic
//!                        reaching both reals, kills director 1 and shows
//!                        director 2 take over, then cleans up.
//! `lvsbox-demo client VIP` (used by the tmux pane) polls VIP every 0.5 s.

use std::io::IsTerminal;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tests::guest::Guest;
use tests::http;
use tests::topo::{VRRP_VIP as VIP, VrrpLab};

fn director_config(n: u8, priority: u8) -> String {
    format!(
        r#"# Director {n} of the lvsbox demo.
[system]
hostname = "lvsbox-{n}"
consoles = ["ttyS0"]

[[interfaces]]
name = "eth0"
addresses = ["10.77.0.{addr}/24"]

[[vrrp.instances]]
name = "front"
interface = "eth0"
vrid = 51
priority = {priority}
advert_interval = 1
vips = [{{ address = "{VIP}/24" }}]

[[services]]
name = "web"
address = "{VIP}:80"
scheduler = "rr"
[[services.reals]]
address = "10.77.0.11"
[[services.reals]]
address = "10.77.0.12"
"#,
        addr = 1 + n
    )
}

/// Boots director `n` (1 or 2) on the pair lab's tap `n - 1`: the
/// production image with the TUI on ttyS0 (also on a socket, for tmux).
fn boot_director(vl: &VrrpLab, n: u8, priority: u8) -> Result<Guest> {
    let mut spec = vl.spec(usize::from(n - 1), &format!("director{n}"), &director_config(n, priority));
    if std::env::var("LVSBOX_DEMO_DEBUG").is_err() {
        spec.flavour = image::Flavour::Production;
    }
    spec.append = vec![];
    spec.console_socket = true;
    Guest::boot(&vl.lab, &spec)
}

fn client_loop(vip: &str) -> Result<()> {
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    let t0 = Instant::now();
    loop {
        let line = match http::get(vip, 80, Duration::from_millis(800)) {
            Ok(name) => {
                *counts.entry(name.clone()).or_default() += 1;
                format!("-> {name}")
            }
            Err(e) => format!("!! {e:#}"),
        };
        let tally: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("{:>6.1}s  GET http://{vip}/  {line:<40} [{}]", t0.elapsed().as_secs_f64(), tally.join(" "));
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("client") {
        return client_loop(args.get(1).map(String::as_str).unwrap_or(VIP));
    }
    let check = args.iter().any(|a| a == "--check") || !std::io::stdout().is_terminal();
    // The same lab as the VRRP end-to-end tests: rs1, rs2 (DR, the VIP on
    // their lo), a client at 10.77.0.50, a tap per director.
    let vl = VrrpLab::new(2)?;
    let client = vl.client.clone();
    eprintln!("booting two lvsbox directors (QEMU, TCG) ...");
    let mut d1 = boot_director(&vl, 1, 150)?;
    let mut d2 = boot_director(&vl, 2, 100)?;
    let t1 = d1.wait_ready()?;
    let t2 = d2.wait_ready()?;
    eprintln!("director 1 ready after {:.1} s, director 2 after {:.1} s", t1.as_secs_f64(), t2.as_secs_f64());

    if check {
        // Director 1 (priority 150) takes the VIP; the client reaches both reals.
        let t0 = Instant::now();
        let tally = loop {
            let t =
                client.ns.in_thread(|| http::tally(VIP, 80, 20, Duration::from_secs(2), Duration::from_secs(60)))?;
            if t.failures == 0 {
                break t;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("the VIP does not answer: {t:?}");
            }
        };
        println!("20 requests through {VIP}: {:?}", tally.by_name);
        if tally.count("rs1") == 0 || tally.count("rs2") == 0 {
            bail!("both real servers should answer: {tally:?}");
        }
        if std::env::var("LVSBOX_DEMO_DEBUG").is_ok() {
            for g in [&mut d1, &mut d2] {
                let v = g.sh("lbd ctl vrrp | grep '\"state\"'; ip -4 addr show dev eth0 | grep -c 10.77.0.100")?.1;
                println!("== {}: {}", g.name, v.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
        println!("killing director 1 (SIGKILL on its QEMU) ...");
        let neigh = |c: &tests::lab::Host| {
            c.ns.output("ip", &["neigh", "show", VIP]).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        if std::env::var("LVSBOX_DEMO_DEBUG").is_ok() {
            println!("client neighbour entry before: {}", neigh(&client)?);
        }
        d1.kill();
        let took = vl.wait_served(Duration::from_secs(30)).context("director 2 did not take over")?;
        println!("director 2 serves {VIP} {:.1} s after director 1 died", took.as_secs_f64());
        let tally =
            client.ns.in_thread(|| http::tally(VIP, 80, 10, Duration::from_secs(2), Duration::from_secs(60)))?;
        println!("10 more requests: {:?}, {} failed", tally.by_name, tally.failures);
        drop(d2);
        return Ok(());
    }

    // Interactive: tmux with both consoles and the client.
    let exe = std::env::current_exe()?;
    let server = format!("lvsbox-demo-{}", std::process::id());
    let tmux = |a: &[&str]| -> Result<()> {
        let st = Command::new("tmux").arg("-L").arg(&server).args(a).status().context("tmux")?;
        if !st.success() {
            bail!("tmux {}", a.join(" "));
        }
        Ok(())
    };
    let console = |g: &Guest| {
        format!(
            "socat -,raw,echo=0 UNIX-CONNECT:{}",
            g.console_socket().map(|p| p.display().to_string()).unwrap_or_default()
        )
    };
    tmux(&["new-session", "-d", "-s", "demo", "-x", "200", "-y", "50", &console(&d1)])?;
    tmux(&["split-window", "-h", "-t", "demo", &console(&d2)])?;
    let client_cmd = format!("ip netns exec {} {} client {VIP}", client.ns.0, exe.display());
    tmux(&["split-window", "-v", "-f", "-l", "12", "-t", "demo", &client_cmd])?;
    tmux(&["set-option", "-t", "demo", "status-left-length", "120"])?;
    tmux(&[
        "set-option",
        "-t",
        "demo",
        "status-left",
        &format!(
            " lvsbox demo | left: director 1 (VRRP 150), right: director 2 (100) | kill director 1: kill -9 {} | Ctrl-b d: quit ",
            d1.pid()
        ),
    ])?;
    for p in ["0", "1"] {
        let _ = tmux(&["send-keys", "-t", &format!("demo.{p}"), "C-l"]);
    }
    let _ = Command::new("tmux").arg("-L").arg(&server).args(["attach", "-t", "demo"]).status();
    let _ = Command::new("tmux").arg("-L").arg(&server).arg("kill-server").status();
    drop(d1);
    drop(d2);
    Ok(())
}
