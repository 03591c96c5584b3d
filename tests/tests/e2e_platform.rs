//! End-to-end: the appliance boots in QEMU guests (TCG) from the built image.
//! Run after `cargo run --release -p image -- build`; one guest per test, so
//! run with `--test-threads=1` (the guest-slot lock also bounds it to 3).

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;
use tests::guest::{Guest, GuestSpec, mac};
use tests::lab::Lab;

const CFG: &str = r#"
[system]
hostname = "lb-e2e"

[[interfaces]]
name = "eth0"
addresses = ["10.77.0.2/24"]

[[services]]
name = "web"
address = "10.77.0.100:80"
scheduler = "rr"
[[services.reals]]
address = "10.77.0.11"
"#;

fn up(lab: &mut Lab, spec: GuestSpec) -> Result<Guest> {
    let tap = lab.add_tap()?;
    let mut g = Guest::boot(lab, &spec.nic(&tap, &mac(1, 0)))?;
    g.wait_ready()?;
    Ok(g)
}

#[test]
fn boots_to_lbd_ready_with_ipvs_and_network() -> Result<()> {
    let mut lab = Lab::new()?;
    let client = lab.add_host("cl", "10.77.0.50/24", None)?;
    let mut g = up(&mut lab, GuestSpec::debug("boot").config(CFG))?;
    let serial = g.serial();
    let banner = format!("{} {}", lbd::paths::PRODUCT, lbd::paths::VERSION);
    let b = serial.find(&banner).expect("banner on ttyS0");
    let r = serial.find(lbd::paths::READY_LINE).expect("ready line");
    assert!(b < r, "the banner comes first");
    // IPVS is there and programmed from the config.
    let ipvs = g.sh_ok("cat /proc/net/ip_vs")?;
    assert!(ipvs.contains("TCP  0A4D0064:0050 rr"), "{ipvs}");
    // The configured NIC is up with its address, and the hostname is set.
    let addr = g.sh_ok("ip -4 addr show dev eth0")?;
    assert!(addr.contains("inet 10.77.0.2/24") && addr.contains("UP"), "{addr}");
    assert_eq!(g.sh_ok("hostname")?.trim(), "lb-e2e");
    assert_eq!(g.sh_ok("cat /proc/sys/net/ipv4/ip_forward")?.trim(), "1");
    // The host side reaches the guest: a TCP connect to a closed port is refused
    // (an answer), not timed out.
    let res = client.ns.in_thread(|| {
        std::net::TcpStream::connect_timeout(&"10.77.0.2:9".parse().unwrap(), Duration::from_secs(5))
            .map(|_| ())
            .map_err(|e| e.kind())
    })?;
    assert_eq!(res, Err(std::io::ErrorKind::ConnectionRefused), "guest unreachable from the lab");
    // No shell in production is checked by the production boot test; here:
    // lbd answers on its socket and reports IPVS.
    let st: Value = serde_json::from_str(&g.sh_ok("lbd ctl status")?)?;
    assert_eq!(st["ipvs"]["available"], true, "{st}");
    assert_eq!(st["config"]["status"]["state"], "ok", "{st}");
    Ok(())
}

#[test]
fn killed_lbd_is_restarted_within_a_second_and_logged() -> Result<()> {
    let mut lab = Lab::new()?;
    let mut g = up(&mut lab, GuestSpec::debug("restart").config(CFG))?;
    let before = g.serial().len();
    g.sh_ok("kill -9 $(pidof lbd)")?;
    g.wait_for_from("lbd ended: signal 9", before, Duration::from_secs(10))?;
    // Ready again (answers on its socket).
    let t0 = std::time::Instant::now();
    while g.sh("lbd ctl ping")?.0 != 0 {
        assert!(t0.elapsed() < Duration::from_secs(20), "lbd did not come back");
    }
    // init's own log has the exit and the restart with their times.
    let logs: Vec<Value> = serde_json::from_str(&g.sh_ok("/init ctl logs")?)?;
    let t = |needle: &str| {
        logs.iter()
            .filter(|e| e["msg"].as_str().is_some_and(|m| m.contains(needle)))
            .map(|e| e["t_ms"].as_u64().unwrap_or(0))
            .next_back()
    };
    let ended = t("lbd ended: signal 9").expect("exit logged with its signal");
    let started = t("started lbd (pid").expect("restart logged");
    assert!(started > ended, "restart after the exit");
    assert!(started - ended <= 1000, "restarted {} ms after it died", started - ended);
    let children: Value = serde_json::from_str(&g.sh_ok("/init ctl children")?)?;
    let lbd = children.as_array().unwrap().iter().find(|c| c["name"] == "lbd").unwrap().clone();
    assert_eq!(lbd["restarts"], 1, "{lbd}");
    assert_eq!(lbd["state"], "running", "{lbd}");
    // The IPVS table survived (lbd never flushes; the new lbd adopts it).
    assert!(g.sh_ok("ipvsadm -Ln")?.contains("10.77.0.11:80"));
    Ok(())
}

#[test]
fn invalid_config_still_boots_and_says_why() -> Result<()> {
    let mut lab = Lab::new()?;
    let bad = "[system]\nhostname = \"lb\"\n\n[[services]]\naddress = \"10.77.0.100:80\"\nscheduler = \"fastest\"\nwieght = 3\n";
    // The console runs on tty1 (not the serial log) so we can see it started.
    let mut spec = GuestSpec::debug("invalid").config(bad);
    spec.append = vec!["lvsbox.consoles=tty1".into()];
    let mut g = up(&mut lab, spec)?;
    let serial = g.serial();
    assert!(serial.contains("CONFIG INVALID"), "{serial}");
    assert!(serial.contains("/cfg/lvsbox.toml:6:13: services[0].scheduler: unknown scheduler `fastest`"), "{serial}");
    assert!(serial.contains("/cfg/lvsbox.toml:7:1: services[0].wieght: unknown field `wieght`"), "{serial}");
    // The console is up, lbd runs, reports the errors and leaves IPVS alone.
    let children: Value = serde_json::from_str(&g.sh_ok("/init ctl children")?)?;
    let console = children.as_array().unwrap().iter().find(|c| c["name"] == "console:tty1").cloned();
    assert_eq!(console.map(|c| c["state"].clone()), Some(Value::from("running")), "{children}");
    let st: Value = serde_json::from_str(&g.sh_ok("lbd ctl status")?)?;
    assert_eq!(st["config"]["status"]["state"], "invalid", "{st}");
    assert_eq!(st["config"]["status"]["errors"].as_array().map(|a| a.len()), Some(2), "{st}");
    assert_eq!(st["reconcile"]["paused"], true);
    Ok(())
}

#[test]
fn acpi_power_button_powers_off_cleanly() -> Result<()> {
    let mut lab = Lab::new()?;
    let mut g = up(&mut lab, GuestSpec::debug("acpi").config(CFG))?;
    g.qmp("system_powerdown")?;
    let st = g.wait_exit(Duration::from_secs(60))?;
    let serial = g.serial();
    assert!(serial.contains("init: powering off (ACPI power button)"), "{serial}");
    assert!(serial.contains("/cfg: unmounted"), "{serial}");
    assert!(serial.contains("reboot: Power down"), "{serial}");
    assert!(st.success(), "QEMU exit status {st}");
    Ok(())
}

#[test]
fn sigterm_to_pid1_powers_off_and_sigint_reboots() -> Result<()> {
    let mut lab = Lab::new()?;
    let mut g = up(&mut lab, GuestSpec::debug("sigterm").config(CFG))?;
    let _ = g.sh_timeout("kill -TERM 1", Duration::from_secs(5));
    g.wait_exit(Duration::from_secs(60))?;
    let serial = g.serial();
    assert!(serial.contains("init: powering off (SIGTERM"), "{serial}");
    assert!(serial.contains("lbd stopped: exit code 0"), "lbd stops cleanly on SIGTERM: {serial}");
    assert!(serial.contains("reboot: Power down"), "{serial}");
    drop(g);
    // Ctrl-Alt-Del arrives as SIGINT: a reboot (QEMU runs with -no-reboot, so it exits).
    let mut g = up(&mut lab, GuestSpec::debug("sigint").config(CFG))?;
    let _ = g.sh_timeout("kill -INT 1", Duration::from_secs(5));
    g.wait_exit(Duration::from_secs(60))?;
    let serial = g.serial();
    assert!(serial.contains("init: rebooting (SIGINT"), "{serial}");
    assert!(serial.contains("reboot: Restarting system"), "{serial}");
    Ok(())
}

#[test]
fn production_disk_boots_under_ovmf() -> Result<()> {
    let mut lab = Lab::new()?;
    let tap = lab.add_tap()?;
    let client = lab.add_host("cl", "10.77.0.50/24", None)?;
    let spec = GuestSpec {
        name: "uefi".into(),
        flavour: image::Flavour::Production,
        config: Some(CFG.into()),
        files: vec![],
        nics: vec![(tap, mac(2, 0))],
        append: vec![],
        memory: 768,
        uefi: true,
        initrd: None,
        disk: None,
        ovmf_vars: None,
        console_socket: false,
        allow_reboot: false,
    };
    let mut g = Guest::boot(&lab, &spec)?;
    let t = g.wait_ready()?;
    eprintln!("UEFI production boot: lbd ready {:.1} s after QEMU started", t.as_secs_f64());
    // No shell in production: prove the config took effect from outside.
    let res = client.ns.in_thread(|| {
        std::net::TcpStream::connect_timeout(&"10.77.0.2:9".parse().unwrap(), Duration::from_secs(5))
            .map(|_| ())
            .map_err(|e| e.kind())
    })?;
    assert_eq!(res, Err(std::io::ErrorKind::ConnectionRefused));
    assert!(!g.serial().contains("CONFIG INVALID"));
    g.qmp("system_powerdown")?;
    g.wait_exit(Duration::from_secs(60))?;
    Ok(())
}

/// The debug disk under OVMF: the UKI's kernel starts through lvsbox's
/// loader (image/efiboot), runs as an EFI boot (the loader hands over the
/// system table, memory map and ACPI root), and logs no kernel warning.
#[test]
fn uefi_boot_goes_through_the_loader_as_an_efi_boot() -> Result<()> {
    let mut lab = Lab::new()?;
    let mut spec = GuestSpec::debug("uefi-loader");
    spec.append.clear(); // the UKI's command line is fixed
    spec.uefi = true;
    let mut g = up(&mut lab, spec)?;
    let serial = g.serial();
    assert!(serial.contains("lvsbox efiboot: kernel at 0x"), "{serial}");
    g.sh_ok("test -e /sys/firmware/efi/systab")?;
    let cmdline = g.sh_ok("cat /proc/cmdline")?;
    assert!(cmdline.contains("lvsbox.shell=ttyS1"), "{cmdline}");
    let dmesg = g.sh_ok("dmesg")?;
    for want in ["efi: EFI v", "ACPI: RSDP", "DMI: QEMU", "Freeing initrd memory"] {
        assert!(dmesg.contains(want), "no {want:?} in dmesg:\n{dmesg}");
    }
    assert!(!dmesg.contains("cut here"), "kernel warning:\n{dmesg}");
    Ok(())
}
