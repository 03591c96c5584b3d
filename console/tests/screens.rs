//! Every screen rendered with ratatui's TestBackend at 80×24 and 132×43:
//! assertions on what a person reads, where they read it. Plus 0×0 and a
//! tiny area, which must not panic.

mod common;

use common::{CFG, Harness, Screen, render};
use console::app::{App, Options};
use crossterm::event::KeyCode;

const PW: &str = "correct horse";
const SIZES: [(u16, u16); 2] = [(80, 24), (132, 43)];

fn logged_in(tag: &str) -> Harness {
    let mut h = Harness::with_password(tag, PW);
    h.ring.push(tracing::Level::WARN, "reconcile: add real 192.168.100.99:80: No such device");
    h.ring.push(tracing::Level::INFO, "config applied (575 bytes)");
    h.login(PW);
    h.wait(500);
    h
}

/// The column where `label` starts in the header row that holds it.
fn col(s: &Screen, label: &str) -> usize {
    s.has(label).1
}

/// Also checks the tiny and empty areas for this state.
fn both(h: &Harness, check: impl Fn(&Screen, u16, u16)) {
    for (w, ht) in SIZES {
        let s = h.screen(w, ht);
        assert_eq!(s.0.len(), usize::from(ht));
        check(&s, w, ht);
    }
    let _ = render(&h.app, 0, 0);
    let tiny = render(&h.app, 20, 5);
    assert!(tiny.text().contains("too small"), "{}", tiny.text());
    let _ = render(&h.app, 1, 1);
    let _ = render(&h.app, 40, 10);
}

#[test]
fn loading_screen_says_what_it_waits_for() {
    let mut app = App::new(Options::default());
    let _ = app.handle(console::app::Event::Lbd(
        lbd::ctl::proto::Command::Status,
        Err("lbd not reachable (/run/lbd.sock): No such file or directory".into()),
    ));
    for (w, h) in SIZES {
        let s = render(&app, w, h);
        s.has("Waiting for lbd");
        s.has("lbd not reachable (/run/lbd.sock)");
        s.has("lbd NOT REACHABLE");
    }
    let _ = render(&app, 0, 0);
    let _ = render(&app, 20, 5);
}

#[test]
fn login_prompt_and_lockout_message() {
    let mut h = Harness::with_password("s-login", PW);
    h.wait(250);
    h.typ("abc");
    both(&h, |s, _, _| {
        s.has("lb1: console login");
        let (r, c) = s.has("Password: ***_");
        assert!(r > 2 && c > 5, "inside the centred box");
        s.has("Enter log in");
    });
    h.key(KeyCode::Enter);
    both(&h, |s, _, _| {
        s.has("Wrong password. Locked: try again in 1 s.");
    });
}

#[test]
fn first_boot_screen() {
    let mut h = Harness::new("s-first", Some(CFG));
    h.wait(250);
    h.typ("abc");
    h.key(KeyCode::Enter);
    both(&h, |s, _, _| {
        s.has("No console password is set on this box.");
        s.has("Set the console password");
        s.has(">New password : ***_");
        s.has(" Repeat       :");
        s.has("! at least 8 characters");
    });
}

#[test]
fn dashboard() {
    let h = logged_in("s-dash");
    both(&h, |s, w, _| {
        s.row_has(0, &["lvsbox 0.1.0", "lb1", "config ok"]);
        s.row_has(1, &["[1 Dashboard]", "2 Services", "7 Changes"]);
        s.has("IPVS 1.2.1: 1 svc, 2 reals");
        s.has("Config OK (1 services)");
        // Live links (lo left out), the default route, the static VIP found on a link.
        s.row_has(s.has("Network (live)").0, &["System"]);
        s.has("lan        UP/up 192.168.100.244/24");
        s.has("wan        DOWN/down");
        assert!(s.find("127.0.0.1").is_none());
        s.has("default via 192.168.100.1 dev lan");
        s.has("VIP 192.168.100.111/32 on lan: present");
        let row = s.row_of("TCP 192.168.100.111:80");
        assert!(row.contains("web"), "{row}");
        // Up column: 2 reals up, 0 quiesced, 0 draining.
        let up = col(s, "Up Qu");
        assert_eq!(row.chars().nth(up + 1), Some('2'), "{row}");
        // Recent events from lbd's log, warnings included.
        s.has("WARN  reconcile: add real 192.168.100.99:80: No such device");
        if w >= 120 {
            s.has("OutPPS");
        }
    });
}

#[test]
fn dashboard_shows_invalid_config_errors_prominently() {
    let bad = CFG.replace("scheduler = \"wrr\"", "scheduler = \"wrrr\"").replace(
        "hostname = \"lb1\"",
        &format!("hostname = \"lb1\"\nconsole_password = \"{}\"", common::test_hash(PW)),
    );
    let mut h = Harness::new("s-invalid", Some(&bad));
    // The hash is still found although the config does not parse.
    h.login(PW);
    h.wait(500);
    both(&h, |s, _, _| {
        s.row_has(0, &["CONFIG INVALID"]);
        s.has("CONFIG ERRORS");
        s.has("lvsbox.toml:21:13: services[0].scheduler:");
        s.has("unknown scheduler `wrrr`");
    });
}

#[test]
fn ftp_service_detail_shows_its_expansion() {
    let cfg = common::CFG.to_string()
        + r#"
[[services]]
name = "ftp"
fwmark = 300
ftp = { vip = "192.168.100.111", passive_ports = "10000-10100" }
[[services.reals]]
address = "192.168.100.31"
"#;
    let cfg = cfg.replace(
        "hostname = \"lb1\"",
        &format!("hostname = \"lb1\"\nconsole_password = \"{}\"", common::test_hash(PW)),
    );
    let mut h = Harness::new("s-ftp", Some(&cfg));
    h.login(PW);
    h.wait(500);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Down);
    h.key(KeyCode::Enter);
    both(&h, |s, w, _| {
        s.has("Service ftp");
        s.has("FWM 300  sched wlc  fwd dr  persistence 360 s");
        s.has("mark: ip daddr 192.168.100.111 tcp dport 21 meta mark set 0x12c");
        s.has("mark: ip daddr 192.168.100.111 tcp dport 10000-10100 meta mark set 0x12c");
        if w >= 120 {
            s.has("(services[1].ftp.control_port)");
            s.has("(services[1].ftp.passive_ports)");
        }
        s.row_of("192.168.100.31");
    });
}

#[test]
fn services_table_and_detail() {
    let mut h = logged_in("s-svc");
    h.key(KeyCode::Char('2'));
    both(&h, |s, w, _| {
        s.row_has(1, &["[2 Services]"]);
        let row = s.row_of("TCP 192.168.100.111:80");
        assert!(row.starts_with("│>web"), "selected row marked: {row}");
        assert!(row.contains("wrr") && row.contains("2/0/0") && row.contains("live"), "{row}");
        if w >= 120 {
            s.has("InBPS");
        }
    });
    h.key(KeyCode::Enter);
    both(&h, |s, _, _| {
        s.has("Service web");
        s.has("TCP 192.168.100.111:80  sched wrr  fwd dr  persistence none");
        let wcol = col(s, "Weight");
        let r1 = s.row_of("192.168.100.31:80");
        // Weight 3, right-aligned under "Weight".
        assert_eq!(r1.chars().skip(wcol).take(6).collect::<String>(), "     3", "{r1}");
        assert!(r1.contains("UP"), "{r1}");
        let r2 = s.row_of("192.168.100.32:80");
        assert_eq!(r2.chars().skip(wcol).take(6).collect::<String>(), "     1", "{r2}");
        s.has("w drain");
    });
    h.key(KeyCode::Char('w'));
    both(&h, |s, _, _| {
        s.row_of("192.168.100.31:80").contains("QUIESCED");
        s.row_has(0, &["staged 1"]);
        s.has("Staged: drain 192.168.100.31 (weight 3 -> 0)");
    });
}

#[test]
fn service_form_shows_field_errors() {
    let mut h = logged_in("s-form");
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Char('a'));
    h.typ("api");
    h.key(KeyCode::Tab);
    h.typ("192.168.100.111:99999");
    both(&h, |s, _, _| {
        s.has("Add service");
        s.has(" Name         : api");
        s.has(">Address      : 192.168.100.111:99999_");
        s.has("! `192.168.100.111:99999` is not an address[:port]");
        s.has(" Scheduler    : < wlc >");
        s.has("Enter stage  Esc cancel");
    });
}

#[test]
fn network_screen() {
    let mut h = logged_in("s-net");
    h.key(KeyCode::Char('3'));
    both(&h, |s, w, _| {
        s.has(">iface lan        192.168.100.244/24");
        s.has("route default            via 192.168.100.1");
        s.has("vip   192.168.100.111/32 on lan");
        s.has("Live (from the kernel)");
        s.has("lan        UP/up 192.168.100.244/24 192.168.100.111/32");
        if w >= 120 {
            s.has("lan        UP/up 192.168.100.244/24 192.168.100.111/32  52:54:00:12:34:56 mtu 1500");
        }
        s.has("lo         UP/unknown 127.0.0.1/8 mtu 65536");
        s.has("route 192.168.100.0/24 dev lan");
        s.has("boot report: init not reachable");
    });
}

#[test]
fn connections_screen() {
    let mut h = logged_in("s-conn");
    h.key(KeyCode::Char('4'));
    h.wait(250);
    both(&h, |s, _, _| {
        s.has("(2 of 2 shown; / to filter)");
        let r = s.row_of("192.168.100.5:54321");
        assert!(r.contains("ESTABLISHED") && r.contains("192.168.100.111:80") && r.contains("192.168.100.31:80"));
    });
    h.key(KeyCode::Char('/'));
    h.typ("time_w");
    both(&h, |s, _, _| {
        s.has("Filter: time_w_");
        s.has("(1 of 2 shown");
        assert!(s.find("ESTABLISHED").is_none());
        s.has("TIME_WAIT");
    });
}

#[test]
fn logs_screen() {
    let mut h = logged_in("s-logs");
    h.key(KeyCode::Char('5'));
    h.wait(250);
    both(&h, |s, _, _| {
        s.has("Source lbd  Level >= info");
        s.row_has(s.has("No such device").0, &["lbd", "WARN"]);
        s.has("config applied (575 bytes)");
    });
    h.key(KeyCode::Char('f')); // info -> warn
    both(&h, |s, _, _| {
        s.has("Level >= warn");
        assert!(s.find("config applied").is_none());
    });
    h.key(KeyCode::Char('s')); // init
    both(&h, |s, _, _| {
        s.has("Source init");
        s.has("init logs: init not reachable");
    });
    h.init = Ok(serde_json::json!([{"t_ms": 1200, "level": "warn", "msg": "module ip_vs_twos not found"}]));
    h.wait(3000);
    both(&h, |s, _, _| {
        s.row_has(s.has("module ip_vs_twos not found").0, &["init", "WARN"]);
    });
}

#[test]
fn system_screen_config_and_history() {
    let mut h = logged_in("s-sys");
    h.key(KeyCode::Char('6'));
    both(&h, |s, _, _| {
        s.has(">h  Host name");
        s.has("b  Reboot");
        s.has("o  Power off");
        s.has("R  Reset to factory defaults");
        s.has("Host name: lb1");
        s.has("init not reachable");
    });
    h.key(KeyCode::Char('c'));
    both(&h, |s, _, _| {
        s.has("Applied config, lines 1-");
        s.has("hostname = \"lb1\"");
    });
    h.key(KeyCode::Esc);
    h.key(KeyCode::Char('v'));
    h.wait(250);
    both(&h, |s, _, _| {
        s.has("Config history (1 = previous)");
        s.has("no earlier versions kept");
    });
}

#[test]
fn changes_screen_review_and_countdown() {
    let mut h = logged_in("s-chg");
    both(&h, |_, _, _| {});
    h.key(KeyCode::Char('7'));
    both(&h, |s, _, _| {
        s.has("No staged changes.");
    });
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Enter);
    h.key(KeyCode::Char('w'));
    h.key(KeyCode::Char('7'));
    both(&h, |s, _, _| {
        s.has("1 staged change(s):");
        s.has("* drain 192.168.100.31 (weight 3 -> 0)");
        s.has("lbd: valid; 1 kernel change(s):");
        s.has("edit real 192.168.100.31:80");
        s.has("- weight = 3");
        s.has("+ weight = 0");
        s.has("a apply");
    });
    h.key(KeyCode::Char('a'));
    both(&h, |s, _, _| {
        s.has("APPLIED - CONFIRM WITHIN 60 s, or lbd rolls back by itself.");
        s.has("c = Confirm (keep it)     r = Roll back now");
        s.row_has(0, &["CONFIRM IN 60s"]);
        s.has("c CONFIRM  r roll back now");
    });
}

#[test]
fn ascii_borders_and_words_for_vt_terminals() {
    assert_eq!(Options::for_term("linux"), (true, true));
    assert_eq!(Options::for_term("vt220"), (true, false));
    assert_eq!(Options::for_term("vt100"), (true, false));
    assert_eq!(Options::for_term("xterm-256color"), (false, true));
    let mut h = logged_in("s-ascii");
    h.app.opts.ascii = true;
    h.app.opts.color = false;
    h.key(KeyCode::Char('2'));
    let s = h.screen(80, 24);
    s.has("+ Services ---");
    assert!(s.0[2].starts_with('+'), "{}", s.0[2]);
    assert!(s.text().is_ascii(), "only ASCII on a vt220:\n{}", s.text());
    // The selected row is marked with '>' as well as reversed video.
    assert!(s.row_of("TCP 192.168.100.111:80").starts_with("|>web"));
}

/// What lbd's `vrrp` command answers on a box that is master of `web` and
/// backup (in maintenance) of `db`.
fn vrrp_answer() -> serde_json::Value {
    serde_json::json!({
        "running": true,
        "instances": [
            {
                "name": "web", "interface": "lan", "vrid": 51, "version": 3, "state": "master",
                "priority": 150, "effective_priority": 150, "maintenance": false,
                "master": { "ip": "192.168.100.244", "self": true, "priority": 150 },
                "master_since_ms_ago": 62_000, "advert_interval_ms": 1000,
                "vips": ["192.168.100.100/24"], "rx_adverts": 3, "tx_adverts": 61, "became_master": 1,
                "drops": { "wrong_vrid": 2 },
                "history": [
                    { "ms_ago": 65_000, "from": "init", "to": "backup", "reason": "startup" },
                    { "ms_ago": 62_000, "from": "backup", "to": "master", "reason": "master down timer" }
                ]
            },
            {
                "name": "db", "interface": "lan", "vrid": 52, "version": 2, "state": "backup",
                "priority": 100, "effective_priority": 40, "maintenance": true,
                "master": { "ip": "192.168.100.245", "self": false, "priority": 120, "since_ms_ago": 5000 },
                "advert_interval_ms": 1000, "vips": ["192.168.100.101/24"], "history": []
            }
        ],
        "sync_daemon": { "role": "master" }
    })
}

fn with_vrrp(h: &mut Harness) {
    let r = lbd::ctl::proto::Response { id: 0, ok: true, data: Some(vrrp_answer()), error: None };
    let _ = h.app.handle(console::app::Event::Lbd(lbd::ctl::proto::Command::Vrrp, Ok(r)));
}

#[test]
fn vrrp_screen_and_dashboard_show_state_master_and_history() {
    let mut h = logged_in("s-vrrp");
    with_vrrp(&mut h);
    both(&h, |s, _, _| {
        s.has("VRRP web MASTER 150 192.168.100.100");
        s.has("VRRP db BACKUP MAINT 40");
    });
    let _ = h.app.handle(console::app::Event::Key(KeyCode::Char('8').into()));
    with_vrrp(&mut h);
    both(&h, |s, w, _| {
        s.row_has(1, &["[8 VRRP]", "7 Changes"]);
        assert!(s.0[1].chars().count() <= usize::from(w), "{}", s.0[1]);
        let web = s.row_of(">web");
        for x in ["lan", "51", "MASTER", "150", "this box"] {
            assert!(web.contains(x), "{x} in {web}");
        }
        let db = s.row_of(" db");
        for x in ["52", "BACKUP MAINT", "40/100", "192.168.100.245 (prio 120)"] {
            assert!(db.contains(x), "{x} in {db}");
        }
        s.has("State MASTER for 00:01:02");
        s.has("VIPs 192.168.100.100/24");
        s.has("Adverts rx 3 tx 61   became master 1x   dropped 2   conn sync: master");
        // Newest first.
        let (newer, _) = s.has("backup -> master  master down timer");
        let (older, _) = s.has("init -> backup  startup");
        assert!(newer < older);
    });
}

#[test]
fn vrrp_maintenance_is_asked_then_sent_to_lbd() {
    use console::app::{Effect, Event};
    use lbd::ctl::proto::Command;
    let mut h = logged_in("s-vrrp-m");
    let _ = h.app.handle(Event::Key(KeyCode::Char('8').into()));
    with_vrrp(&mut h);
    // The second instance is in maintenance: `m` offers to end it.
    let _ = h.app.handle(Event::Key(KeyCode::Down.into()));
    let _ = h.app.handle(Event::Key(KeyCode::Char('m').into()));
    h.screen(80, 24).has("End maintenance of db?");
    let out = h.app.handle(Event::Key(KeyCode::Char('y').into()));
    assert!(
        out.iter().any(|e| matches!(e, Effect::Lbd(Command::VrrpMaintenance { target, on: false }) if target == "db")),
        "{out:?}"
    );
    // `n` sends nothing.
    let _ = h.app.handle(Event::Key(KeyCode::Up.into()));
    let _ = h.app.handle(Event::Key(KeyCode::Char('m').into()));
    h.screen(80, 24).has("Put web into maintenance?");
    let out = h.app.handle(Event::Key(KeyCode::Char('n').into()));
    assert!(!out.iter().any(|e| matches!(e, Effect::Lbd(Command::VrrpMaintenance { .. }))), "{out:?}");
}

#[test]
fn vrrp_screen_without_vrrp_says_how_to_configure_it() {
    let mut h = logged_in("s-vrrp-none");
    h.key(KeyCode::Char('8'));
    h.wait(1500);
    both(&h, |s, _, _| {
        s.has("VRRP is not configured on this box.");
    });
}

/// keepalived.conf as a serial terminal delivers a paste: CR for each
/// newline (`crlf`: CR and LF, as some terminals send), tabs as Tab.
fn paste(h: &mut Harness, text: &str, crlf: bool) {
    for c in text.chars() {
        match c {
            '\n' => {
                h.key(KeyCode::Enter);
                if crlf {
                    h.ctrl('j');
                }
            }
            '\t' => h.key(KeyCode::Tab),
            c => h.key(KeyCode::Char(c)),
        }
    }
}

const KEEPALIVED: &str = "! pasted from the old director\nglobal_defs {\n\trouter_id lb-old\n\tnotification_email { ops@example.com }\n}\n\
virtual_server 192.168.100.112 8080 {\n\tdelay_loop 6\n\tlb_algo rr\n\tlb_kind DR\n\tprotocol TCP\n\
\treal_server 192.168.100.41 8080 {\n\t\tweight 2\n\t\tMISC_CHECK {\n\t\t\tmisc_path /usr/local/bin/check\n\t\t}\n\t}\n\
\treal_server 192.168.100.42 8080 {\n\t\tweight 1\n\t}\n}\n";

#[test]
fn system_screen_imports_a_pasted_keepalived_conf_and_stages_it() {
    let mut h = logged_in("s-import");
    h.key(KeyCode::Char('6'));
    both(&h, |s, _, _| {
        s.has("i  Import keepalived/ipvsadm");
    });
    h.key(KeyCode::Char('i'));
    both(&h, |s, _, _| {
        s.has("Paste a keepalived.conf or ipvsadm rules now, then press Ctrl-D.");
        s.has("Esc cancels. At most");
        s.has("256 KiB.");
        s.has("Received 0 bytes, 0 lines.");
        s.has("^D convert  Esc cancel");
    });
    // Digits, Enter and Tab are text here (CR LF is one newline).
    paste(&mut h, KEEPALIVED, true);
    assert_eq!(h.app.paste.as_ref().unwrap().text, KEEPALIVED);
    both(&h, |s, _, _| {
        s.row_has(1, &["[6 Sys"]);
        s.has(&format!("Received {} bytes, 20 lines.", KEEPALIVED.len()));
        s.has("   19   }");
        s.has("   18     weight 1");
    });
    h.ctrl('d');
    both(&h, |s, w, _| {
        s.has("Read as keepalived.conf.");
        s.has("import: 0 error(s), 2 not imported, 2 note(s)");
        s.has("s stages it; screen 7 then shows the diff and applies with confirm:");
        s.has("* services: 1 configured -> 1 imported (replaced)");
        s.has("* host name: lb1 -> lb-old");
        s.has("Kept from this box: interfaces, routes, static VIPs, consoles, password.");
        s.has("2 thing(s) NOT imported");
        // The not-imported list with the paste's line numbers and what to do.
        s.has("line 4: not imported: notification_email:");
        s.has("line 13: not imported: MISC_CHECK: lvsbox runs no scripts");
        if w >= 120 {
            s.has("a script check has no equivalent: probe the service itself");
        }
        s.has("line 3: note: router_id: imported as system.hostname = \"lb-old\"");
        s.has("s stage it  p paste again");
    });
    h.key(KeyCode::Char('s'));
    h.wait(250);
    both(&h, |s, _, _| {
        s.row_has(1, &["[7 Changes(1)]"]);
        s.has("* import keepalived.conf: 1 service(s) (replace the services)");
        s.has("lbd: valid; 4 kernel change(s):");
        s.has("add service TCP 192.168.100.112:8080 rr");
        s.has("add real 192.168.100.41:8080 to TCP 192.168.100.112:8080 weight 2");
        s.has("delete service TCP 192.168.100.111:80");
        s.has("+ hostname = \"lb-old\"");
        s.has("Staged from the paste: review it here, then a applies");
        s.has("a apply");
    });
    h.key(KeyCode::Char('a'));
    h.key(KeyCode::Char('c'));
    h.wait(250);
    let text = h.applied_text();
    assert!(text.contains("192.168.100.112:8080") && text.contains("hostname = \"lb-old\""), "{text}");
    // The box's network and password survived the import.
    assert!(text.contains("192.168.100.244/24") && text.contains("console_password"), "{text}");
    let k = h.kernel.0.lock().unwrap();
    let svcs: Vec<String> = k.table.services.iter().map(|s| s.0.key.to_string()).collect();
    assert_eq!(svcs, ["TCP 192.168.100.112:8080"], "only the imported service is in the kernel");
}

/// A seed's director session as an operator copies it off their terminal:
/// root prompts, `//` annotations, `-ln` listings in between.
const IPVSADM_SESSION: &str = "[root@lb-old ~]# ipvsadm -C // clear the table\n\
[root@lb-old ~]# ipvsadm -A -t 192.168.100.112:8080 -s wrr\n\
[root@lb-old ~]# ipvsadm -a -t 192.168.100.112:8080 -r 192.168.100.41 -g -w 3\n\
[root@lb-old ~]# ipvsadm -a -t 192.168.100.112:8080 -r 192.168.100.42 -g -w 1\n\
[root@lb-old ~]# ipvsadm -Ln\n";

#[test]
fn system_screen_imports_pasted_ipvsadm_rules() {
    let mut h = logged_in("s-import-ipvsadm");
    h.key(KeyCode::Char('6'));
    h.key(KeyCode::Char('i'));
    paste(&mut h, IPVSADM_SESSION, false);
    h.ctrl('d');
    both(&h, |s, _, _| {
        s.has("Read as ipvsadm rules.");
        s.has(" Import ipvsadm rules: report (s = stage) ");
        s.has("s stages it; screen 7 then shows the diff and applies with confirm:");
        s.has("* services: 1 configured -> 1 imported (replaced)");
    });
    h.key(KeyCode::Char('s'));
    h.wait(250);
    both(&h, |s, _, _| {
        s.has("* import ipvsadm rules: 1 service(s) (replace the services)");
        s.has("add service TCP 192.168.100.112:8080 wrr");
        s.has("add real 192.168.100.41:8080 to TCP 192.168.100.112:8080 weight 3");
        s.has("delete service TCP 192.168.100.111:80");
    });
    h.key(KeyCode::Char('a'));
    h.key(KeyCode::Char('c'));
    h.wait(250);
    let k = h.kernel.0.lock().unwrap();
    let svcs: Vec<String> = k.table.services.iter().map(|s| s.0.key.to_string()).collect();
    assert_eq!(svcs, ["TCP 192.168.100.112:8080"], "only the imported service is in the kernel");
}

#[test]
fn import_reports_include_and_errors_with_line_numbers() {
    let mut h = logged_in("s-import-err");
    h.key(KeyCode::Char('6'));
    h.key(KeyCode::Char('i'));
    paste(&mut h, "include /etc/keepalived/services.conf\nvirtual_server 192.168.100.112 80 {\n\tlb_algo rr\n", false);
    h.ctrl('d');
    both(&h, |s, _, _| {
        s.has("import: 2 error(s)");
        s.has("Nothing converted: fix the lines named below and paste again (p).");
        s.has("line 1: error: include: `/etc/keepalived/services.conf`: a pasted");
        s.has("keepalived.conf cannot include files: paste the included file's");
        s.has("line 2: error: {: block is never closed (missing `}`)");
        assert!(s.find("s stage").is_none());
        s.has("p paste again");
    });
    // `s` stages nothing; `p` starts a new paste; Esc cancels it.
    h.key(KeyCode::Char('s'));
    assert!(h.app.staged.is_none());
    h.key(KeyCode::Char('p'));
    h.typ("12");
    assert_eq!(h.app.paste.as_ref().unwrap().text, "12");
    h.key(KeyCode::Esc);
    both(&h, |s, _, _| {
        s.has(">h  Host name");
        s.has("Import cancelled: nothing was sent.");
    });
}

#[test]
fn import_paste_is_bounded() {
    let mut h = logged_in("s-import-big");
    h.key(KeyCode::Char('6'));
    h.key(KeyCode::Char('i'));
    // Fill up to the limit without going through every key.
    h.app.paste.as_mut().unwrap().text = "!".repeat(console::app::MAX_PASTE - 1);
    h.typ("abc");
    let p = h.app.paste.as_ref().unwrap();
    assert_eq!((p.text.len(), p.dropped), (console::app::MAX_PASTE, 2));
    both(&h, |s, _, _| {
        s.has("TOO LARGE: 2 bytes beyond 256 KiB were dropped.");
    });
    h.ctrl('d');
    assert!(h.app.pasting(), "nothing sent");
    assert!(!h.log.iter().any(|e| matches!(e, console::app::Effect::Lbd(lbd::ctl::proto::Command::Import { .. }))));
    both(&h, |s, _, _| {
        s.has("Too large: the import takes at most 256 KiB. Esc, then paste less.");
    });
}

/// `CFG` with TCP checks: 192.168.100.31 is checked on a port that answers,
/// 192.168.100.32 on one that refuses.
fn checked(up: u16, down: u16) -> String {
    CFG.replace(
        "scheduler = \"wrr\"",
        "scheduler = \"wrr\"\ncheck = { type = \"tcp\", connect_ip = \"127.0.0.1\", delay_loop = 0.2, connect_timeout = 0.5, retry = 1, delay_before_retry = 0.1 }",
    )
    .replace("weight = 3", &format!("weight = 3\ncheck = {{ connect_port = {up} }}"))
    .replace("address = \"192.168.100.32\"", &format!("address = \"192.168.100.32\"\ncheck = {{ connect_port = {down} }}"))
    .replace("hostname = \"lb1\"", &format!("hostname = \"lb1\"\nconsole_password = \"{}\"", common::test_hash(PW)))
}

#[test]
fn service_detail_shows_each_reals_health_and_last_check() {
    let up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (up_port, down_port) = (up.local_addr().unwrap().port(), down.local_addr().unwrap().port());
    drop(down);
    let mut h = Harness::new("s-health", Some(&checked(up_port, down_port)));
    h.login(PW);
    h.key(KeyCode::Char('2'));
    // The list does not ask for the checks of every real; an open service does.
    h.wait(2500);
    assert!(!h.log.iter().any(|e| matches!(e, console::app::Effect::Lbd(lbd::ctl::proto::Command::Checks))));
    h.key(KeyCode::Enter);
    let t0 = std::time::Instant::now();
    // Both verdicts: the refused real's can come before the listening one's.
    let judged =
        |t: &str| t.contains("FAILED") && t.lines().any(|l| l.contains("192.168.100.31:80") && l.contains(" UP"));
    while !judged(&h.screen(80, 24).text()) {
        assert!(t0.elapsed() < std::time::Duration::from_secs(10), "no verdict:\n{}", h.screen(80, 24).text());
        // lbd takes the verdicts in on its own runtime.
        h.rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(100)).await });
        h.wait(2000);
    }
    let chk = |p: u16| format!("Check tcp 127.0.0.1:{p}: health");
    both(&h, |s, w, _| {
        let hcol = col(s, "Health");
        let r1 = s.row_of("192.168.100.31:80");
        assert_eq!(r1.chars().skip(hcol).take(6).collect::<String>(), "UP    ", "{r1}");
        assert!(r1.contains(" UP"), "{r1}");
        let r2 = s.row_of("192.168.100.32:80");
        assert_eq!(r2.chars().skip(hcol).take(6).collect::<String>(), "DOWN  ", "{r2}");
        assert!(r2.contains("FAILED"), "the failed real is out of the table and says why: {r2}");
        if w >= 120 {
            assert!(r1.contains("ok ") && r1.contains("ms"), "last check with its latency: {r1}");
            assert!(r2.contains("FAIL connection refused"), "{r2}");
        }
        // The selected real's check below the table.
        s.has(&format!("{} UP since", chk(up_port)));
        s.has("Last check");
        s.has("UTC: ok (");
        s.has("lbd gives it weight 3 in the kernel");
    });
    h.key(KeyCode::Down);
    if std::env::var_os("SHOW").is_some() {
        println!("{}\n{}", h.screen(132, 43).text(), h.screen(80, 24).text());
    }
    both(&h, |s, _, _| {
        s.has(&format!("{} DOWN since", chk(down_port)));
        s.has("UTC: FAILED (connection refused in");
        s.has("lbd keeps it out of the kernel table");
    });
    // The list and the dashboard count what the kernel serves: 1 up, not
    // the 2 the config's weights would say.
    h.key(KeyCode::Esc);
    both(&h, |s, _, _| {
        assert!(s.row_of("TCP 192.168.100.111:80").contains("1/0/0"), "{}", s.text());
    });
    h.key(KeyCode::Char('1'));
    h.wait(250);
    both(&h, |s, _, _| {
        let row = s.row_of("TCP 192.168.100.111:80");
        let c = col(s, "Up Qu");
        assert_eq!(row.chars().nth(c + 1), Some('1'), "{row}");
    });
    drop(up);
}

#[test]
fn service_detail_shows_an_operators_override() {
    let mut h = logged_in("s-override");
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Enter);
    h.wait(2500);
    // No checks configured: every real is unchecked.
    both(&h, |s, _, _| {
        let hcol = col(s, "Health");
        let r1 = s.row_of("192.168.100.31:80");
        assert_eq!(r1.chars().skip(hcol).take(6).collect::<String>(), "-     ", "{r1}");
        assert!(r1.contains(" UP "), "{r1}");
        s.has("Not checked: it serves while its weight is above 0.");
    });
    let r = h.lbd(lbd::ctl::proto::Command::RealOverride {
        service: "web".into(),
        real: "192.168.100.31".into(),
        action: lbd::ctl::proto::OverrideAction::Drain,
    });
    assert!(r.ok, "{r:?}");
    h.wait(2500);
    both(&h, |s, _, _| {
        assert!(s.row_of("192.168.100.31:80").contains("DRAINED"), "{}", s.text());
        s.has("Operator override: DRAINED (weight 0 whatever the check says)");
        s.has("lbd gives it weight 0 in the kernel");
    });
    // `u` cannot lift an override through the config's weight: it offers to lift it.
    h.key(KeyCode::Char('u'));
    both(&h, |s, _, _| {
        s.has("192.168.100.31:80 is held by an operator override (drain). Lift it");
    });
    assert!(h.app.staged.is_none());
    h.key(KeyCode::Char('y'));
    h.wait(250);
    both(&h, |s, _, _| {
        s.has("192.168.100.31:80: operator override lifted");
        assert!(s.row_of("192.168.100.31:80").contains(" UP "), "{}", s.text());
        s.has("lbd gives it weight 3 in the kernel");
    });
}
