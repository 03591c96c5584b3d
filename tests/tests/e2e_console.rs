//! End-to-end: an operator at the serial console. The TUI runs on the
//! guest's ttyS0 (QEMU's serial on a unix socket), seen through tmux as a
//! terminal would show it: set the password on first boot, add a DR service
//! with two real servers through the forms, review, apply, confirm; the
//! kernel has it (ipvsadm in the debug image); reboot from the console: it is
//! still there and the password is asked for. Then paste a keepalived.conf
//! on the System screen, stage the import, apply, confirm: the kernel has it.

use std::time::Duration;

use anyhow::{Result, bail};
use tests::guest::{Guest, GuestSpec, mac};
use tests::lab::Lab;
use tests::tty::Terminal;

const T: Duration = Duration::from_secs(60);
const PASSWORD: &str = "s3rial-ok";

/// Presses `key` until the screen line holding `field` shows `want`.
fn choose(term: &Terminal, field: &str, want: &str, key: &str) -> Result<()> {
    for _ in 0..20 {
        let s = term.screen()?;
        if s.lines().any(|l| l.contains(field) && l.contains(&format!("< {want} >"))) {
            return Ok(());
        }
        term.keys(&[key])?;
        std::thread::sleep(Duration::from_millis(400));
    }
    bail!("could not choose {want} for {field}:\n{}", term.screen()?)
}

#[test]
fn operator_adds_a_dr_service_on_the_serial_console_and_it_survives_a_reboot() -> Result<()> {
    let mut lab = Lab::new()?;
    let tap = lab.add_tap()?;
    let cfg = "[system]\nhostname = \"lb-console\"\nconsoles = [\"ttyS0\"]\n\
               [[interfaces]]\nname = \"eth0\"\naddresses = [\"10.77.0.2/24\"]\n";
    let mut spec = GuestSpec::debug("console").config(cfg).nic(&tap, &mac(1, 0));
    spec.append = vec![];
    spec.console_socket = true;
    spec.allow_reboot = true;
    let mut g = Guest::boot(&lab, &spec)?;
    let term = Terminal::attach(g.console_socket().expect("console socket"), 80, 24)?;
    g.wait_ready()?;

    // First boot: the console insists on a password.
    term.keys(&["C-l"])?;
    term.wait_for("No console password is set", T)?;
    term.type_text(PASSWORD)?;
    term.keys(&["Tab"])?;
    term.type_text(PASSWORD)?;
    term.keys(&["Enter"])?;
    term.wait_for("[1 Dashboard]", T)?;

    // Services -> add a service.
    term.keys(&["2"])?;
    term.wait_for("[2 Services]", T)?;
    term.keys(&["a"])?;
    term.wait_for("Add service", T)?;
    term.type_text("web")?;
    term.keys(&["Tab"])?;
    term.type_text("10.77.0.100:80")?;
    term.keys(&["Tab", "Tab", "Tab"])?;
    choose(&term, "Scheduler", "rr", "Right")?;
    term.keys(&["Enter"])?;
    term.wait_for("Staged: add service web", T)?;
    // Open it and add two reals.
    term.keys(&["Enter"])?;
    term.wait_for("Service web", T)?;
    for real in ["10.77.0.11", "10.77.0.12"] {
        term.keys(&["a"])?;
        term.wait_for("Add real server to web", T)?;
        term.type_text(real)?;
        term.keys(&["Enter"])?;
        term.wait_for(&format!("{real}:80"), T)?;
    }
    // An invalid real is refused with the config model's own message.
    term.keys(&["a"])?;
    term.wait_for("Add real server to web", T)?;
    term.type_text("10.77.0.999")?;
    let s = term.wait_for("not an address", T)?;
    assert!(s.contains("10.77.0.999"), "{s}");
    term.keys(&["Escape"])?;

    // Review and apply, then confirm within the window.
    term.keys(&["7"])?;
    let review = term.wait_for("add service TCP 10.77.0.100:80 rr", T)?;
    assert!(review.contains("add real 10.77.0.11:80"), "{review}");
    term.keys(&["a"])?;
    term.wait_for("CONFIRM", T)?;
    term.keys(&["c"])?;
    term.wait_for("Confirmed", T)?;

    // The kernel has exactly that.
    let table = g.sh_ok("ipvsadm -Ln")?;
    assert!(table.contains("TCP  10.77.0.100:80 rr"), "{table}");
    assert!(table.contains("  -> 10.77.0.11:80                Route   1"), "{table}");
    assert!(table.contains("  -> 10.77.0.12:80                Route   1"), "{table}");

    // Reboot from the System screen.
    let before = g.serial().len();
    term.keys(&["6"])?;
    term.wait_for("[6 Sys]", T)?; // 80 columns: "Sys" (eight tabs)
    term.keys(&["b"])?;
    term.wait_for("y", T)?;
    term.keys(&["y"])?;
    // (init prints only errors once the TUI owns the serial line; the kernel says it.)
    g.wait_for_from("reboot: Restarting system", before, T)?;
    g.wait_for_from(lbd::paths::READY_LINE, before, Duration::from_secs(180))?;
    // After the reboot: the service is back in the kernel from the persisted
    // config, and the console asks for the password.
    let t0 = std::time::Instant::now();
    loop {
        let (_, table) = g.sh("ipvsadm -Ln")?;
        if table.contains("TCP  10.77.0.100:80 rr") && table.matches("Route").count() == 2 {
            break;
        }
        assert!(t0.elapsed() < T, "service not back after the reboot:\n{table}");
        std::thread::sleep(Duration::from_millis(500));
    }
    term.keys(&["C-l"])?;
    term.wait_for("assword", T)?;
    term.type_text(PASSWORD)?;
    term.keys(&["Enter"])?;
    term.wait_for("[1 Dashboard]", T)?;
    term.keys(&["2"])?;
    let s = term.wait_for("TCP 10.77.0.100:80", T)?;
    assert!(s.contains("web"), "{s}");

    // Import a keepalived.conf pasted on the System screen (LF line ends and
    // tabs, as tmux pastes them), stage it, apply, confirm: the kernel has
    // the imported service instead of `web`.
    term.keys(&["6"])?;
    term.wait_for("[6 Sys]", T)?;
    term.keys(&["i"])?;
    term.wait_for("Paste a keepalived.conf", T)?;
    term.type_text(KEEPALIVED_CONF)?;
    term.wait_for("Received 227 bytes, 14 lines.", T)?;
    term.keys(&["C-d"])?;
    let report = term.wait_for("s stage it", T)?;
    assert!(report.contains("Read as keepalived.conf."), "{report}");
    assert!(report.contains("import: 0 error(s), 1 not imported"), "{report}");
    assert!(report.contains("line 10: not imported: MISC_CHECK"), "{report}");
    term.keys(&["s"])?;
    let review = term.wait_for("add service TCP 10.77.0.101:8080 wrr", T)?;
    assert!(review.contains("delete service TCP 10.77.0.100:80"), "{review}");
    term.keys(&["a"])?;
    term.wait_for("CONFIRM", T)?;
    term.keys(&["c"])?;
    term.wait_for("Confirmed", T)?;
    let table = g.sh_ok("ipvsadm -Ln")?;
    assert!(table.contains("TCP  10.77.0.101:8080 wrr"), "{table}");
    assert!(table.contains("  -> 10.77.0.21:8080              Route   2"), "{table}");
    assert!(table.contains("  -> 10.77.0.22:8080              Route   1"), "{table}");
    assert!(!table.contains("10.77.0.100:80"), "{table}");
    Ok(())
}

/// What the operator pastes: one DR service, a script check lvsbox reports.
const KEEPALIVED_CONF: &str = "! pasted on the serial console
virtual_server 10.77.0.101 8080 {
\tlb_algo wrr
\tlb_kind DR
\tprotocol TCP
\treal_server 10.77.0.21 8080 {
\t\tweight 2
\t}
\treal_server 10.77.0.22 8080 {
\t\tMISC_CHECK {
\t\t\tmisc_path /bin/true
\t\t}
\t}
}
";
