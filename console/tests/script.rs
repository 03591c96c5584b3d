//! Scripted interactions with the pure App, its effects carried out against
//! an in-process lbd on a simulated kernel.

mod common;

use common::{CFG, Harness, test_hash};
use console::app::{ApplyState, Effect, InitCmd, Mode, Screen};
use console::password;
use crossterm::event::KeyCode;
use lbd::config::{Forwarding, Scheduler};
use lbd::ctl::proto::Command;

const PW: &str = "correct horse";

fn applies(h: &Harness) -> Vec<(String, Option<u64>)> {
    h.log
        .iter()
        .filter_map(|e| match e {
            Effect::Lbd(Command::Apply { text, confirm_within }) => Some((text.clone(), *confirm_within)),
            _ => None,
        })
        .collect()
}

#[test]
fn wrong_password_locks_out_with_growing_delay_then_right_one_opens_the_dashboard() {
    let mut h = Harness::with_password("login", PW);
    h.wait(250);
    assert_eq!(h.app.mode, Mode::Login);

    h.typ("nope");
    h.key(KeyCode::Enter);
    assert_eq!(h.app.mode, Mode::Login);
    assert_eq!(h.app.failures, 1);
    assert_eq!(h.app.lockout_left(), 1000);
    h.screen(80, 24).has("Wrong password. Locked: try again in 1 s.");

    // During the lockout Enter does not even check.
    let checks = |h: &Harness| h.log.iter().filter(|e| matches!(e, Effect::VerifyPassword { .. })).count();
    let before = checks(&h);
    h.typ(PW);
    h.key(KeyCode::Enter);
    assert_eq!(checks(&h), before, "no verification while locked out");
    assert_eq!(h.app.mode, Mode::Login);

    h.wait(1000);
    h.key(KeyCode::Char('u')); // still the typed text + "u": wrong
    h.key(KeyCode::Enter);
    assert_eq!(h.app.failures, 2);
    assert_eq!(h.app.lockout_left(), 2000, "the delay doubles");
    h.screen(80, 24).has("try again in 2 s");

    h.wait(2000);
    h.key(KeyCode::Esc); // clears the input
    h.typ(PW);
    h.key(KeyCode::Enter);
    assert_eq!(h.app.mode, Mode::Main);
    assert_eq!(h.app.screen, Screen::Dashboard);
    assert_eq!(h.app.failures, 0);
    let saved: Vec<u32> =
        h.log.iter().filter_map(|e| if let Effect::SaveFailures(n) = e { Some(*n) } else { None }).collect();
    assert_eq!(saved, [1, 2, 0], "the count survives a console restart");
    h.wait(500);
    let s = h.screen(80, 24);
    s.has("[1 Dashboard]");
    s.row_has(s.has("TCP 192.168.100.111:80").0, &["web"]);
}

#[test]
fn first_boot_insists_on_a_password_typed_twice_and_applies_it_through_lbd() {
    let mut h = Harness::new("firstboot", Some(CFG));
    h.wait(250);
    assert_eq!(h.app.mode, Mode::FirstBoot);
    h.screen(80, 24).has("No console password is set on this box.");

    // Digits and screen keys do nothing but type.
    h.typ("2short");
    h.key(KeyCode::Enter);
    assert_eq!(h.app.mode, Mode::FirstBoot);
    h.screen(80, 24).has("! at least 8 characters");

    h.typ("-enough");
    h.key(KeyCode::Tab);
    h.typ("2short-enougX");
    h.key(KeyCode::Enter);
    h.screen(80, 24).has("! the two entries differ");
    assert!(applies(&h).is_empty());

    h.key(KeyCode::Backspace);
    h.typ("h");
    h.key(KeyCode::Enter);
    assert_eq!(h.app.mode, Mode::Main);
    let a = applies(&h);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].1, None, "a password apply needs no confirm");

    // lbd persisted it, it is a PBKDF2 hash of what was typed, the rest is kept.
    let text = h.applied_text();
    let cfg = lbd::config::parse(&text, "t").unwrap();
    let hash = cfg.system.console_password.clone().unwrap();
    assert!(hash.starts_with("$pbkdf2-sha256$i="), "{hash}");
    assert_eq!(password::verify("2short-enough", &hash), Ok(true));
    assert_eq!(cfg.services.len(), 1);
    assert_eq!(cfg.system.hostname, "lb1");

    // The next start asks for it.
    h.key(KeyCode::Char('0'));
    assert_eq!(h.app.mode, Mode::Login);
}

#[test]
fn add_a_dr_service_with_two_reals_stage_apply_confirm() {
    let mut h = Harness::with_password("addsvc", PW);
    h.login(PW);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Char('a'));
    h.typ("api");
    h.key(KeyCode::Tab);
    h.typ("192.168.100.111:443");
    h.key(KeyCode::Tab); // fwmark
    h.key(KeyCode::Tab); // protocol
    h.key(KeyCode::Tab); // scheduler
    h.key(KeyCode::Right); // wlc -> rr
    h.key(KeyCode::Enter);
    assert!(h.app.form.is_none(), "staged: {:?}", h.app.form.as_ref().map(|f| &f.errors));
    assert_eq!(h.app.notes, vec!["add service api"]);

    // Open it and add two reals.
    h.key(KeyCode::Down);
    h.key(KeyCode::Enter);
    assert_eq!(h.app.svc_open, Some(1));
    for r in ["192.168.100.41", "192.168.100.42"] {
        h.key(KeyCode::Char('a'));
        h.typ(r);
        h.key(KeyCode::Enter);
        assert!(h.app.form.is_none());
    }
    assert_eq!(h.app.notes.len(), 3);
    let s = h.screen(80, 24);
    s.row_has(s.has("192.168.100.41:443").0, &["STAGED", "dr"]);
    // Nothing reached lbd yet.
    assert!(applies(&h).is_empty());

    // Review: lbd's own list of kernel changes and the TOML diff.
    h.key(KeyCode::Char('7'));
    let s = h.screen(80, 43);
    s.has("lbd: valid; 3 kernel change(s):");
    s.has("add service TCP 192.168.100.111:443 rr");
    s.has("+ name = \"api\"");
    s.has("comments in it are lost");

    h.key(KeyCode::Char('a'));
    let a = applies(&h);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].1, Some(60));
    let cfg = lbd::config::parse(&a[0].0, "sent").unwrap();
    let api = cfg.services.iter().find(|s| s.name.as_deref() == Some("api")).unwrap();
    assert_eq!(api.address.unwrap().to_string(), "192.168.100.111:443");
    assert_eq!(api.scheduler, Scheduler::Rr);
    assert_eq!(api.forwarding, Forwarding::Dr);
    let reals: Vec<String> = api.reals.iter().map(|r| r.address.to_string()).collect();
    assert_eq!(reals, ["192.168.100.41", "192.168.100.42"]);
    assert!(cfg.system.console_password.is_some(), "the password stays");

    assert!(matches!(h.app.apply, ApplyState::Pending { .. }));
    h.wait(1000);
    // The countdown is lbd's (wall clock); between polls it runs on locally.
    let left = h.lbd(Command::Status).data.unwrap()["config"]["pending_confirm"]["remaining_s"].as_u64().unwrap();
    assert!((58..=60).contains(&left), "{left}");
    let s = h.screen(80, 24);
    s.has(&format!("APPLIED - CONFIRM WITHIN {left} s"));
    s.has(&format!("CONFIRM IN {left}s"));
    assert!(h.app.staged.is_none());
    let now = h.app.now;
    let _ = h.app.handle(console::app::Event::Tick(now + 3000)); // no poll answered: local clock only
    h.screen(80, 24).has(&format!("APPLIED - CONFIRM WITHIN {} s", left - 3));

    h.key(KeyCode::Char('c'));
    assert_eq!(h.app.apply, ApplyState::Idle);
    h.screen(80, 24).has("Confirmed: the new config stays.");
    let st = h.lbd(Command::Status).data.unwrap();
    assert!(st["config"]["pending_confirm"].is_null());
    assert_eq!(h.kernel.0.lock().unwrap().table.services.len(), 2, "the sim kernel has both services");
}

#[test]
fn invalid_input_shows_the_error_and_cannot_be_staged() {
    let mut h = Harness::with_password("invalid", PW);
    h.login(PW);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Char('a'));
    h.key(KeyCode::Tab);
    h.typ("192.168.100.300:80");
    let s = h.screen(80, 24);
    s.has("! `192.168.100.300:80` is not an address[:port]");
    h.key(KeyCode::Enter);
    assert!(h.app.form.is_some());
    assert!(h.app.staged.is_none());
    assert!(h.app.form.as_ref().unwrap().errors[0].starts_with("Address: `192.168.100.300:80` is not"));

    // A field that parses but a config lbd refuses: its own file:line: path: why.
    h.key(KeyCode::Esc);
    h.key(KeyCode::Enter); // open web
    h.key(KeyCode::Char('a'));
    h.typ("192.168.100.33:8080");
    h.key(KeyCode::Enter);
    assert!(h.app.staged.is_none());
    let e = h.app.form.as_ref().unwrap().errors.join("\n");
    assert!(e.contains("services[0].reals[2].address: dr forwarding cannot change the port"), "{e}");
    assert!(e.starts_with("staged:"), "{e}");
    h.screen(80, 24).has("dr forwarding cannot change");
    assert!(applies(&h).is_empty());
}

#[test]
fn an_unconfirmed_apply_is_shown_as_rolled_back() {
    let mut h = Harness::with_password("rollback", PW);
    h.login(PW);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Enter);
    h.key(KeyCode::Char('w')); // drain 192.168.100.31 (weight 3)
    assert_eq!(h.app.notes, vec!["drain 192.168.100.31 (weight 3 -> 0)"]);
    h.key(KeyCode::Char('7'));
    h.key(KeyCode::Char('a'));
    assert!(matches!(h.app.apply, ApplyState::Pending { .. }));
    // What lbd's own timer does when nobody confirms:
    assert!(h.lbd(Command::Rollback).ok);
    h.wait(1500);
    assert_eq!(h.app.apply, ApplyState::Idle);
    let s = h.screen(80, 24);
    s.has("ROLLED BACK: the apply was not confirmed in time");
    let cfg = lbd::config::parse(&h.applied_text(), "t").unwrap();
    assert_eq!(cfg.services[0].reals[0].weight, 3);

    // And "roll back now" from the console.
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Enter);
    h.key(KeyCode::Down);
    h.key(KeyCode::Char('d'));
    h.screen(80, 24).has("Remove real 192.168.100.32:80");
    h.key(KeyCode::Char('y'));
    h.key(KeyCode::Char('7'));
    h.key(KeyCode::Char('a'));
    assert_eq!(lbd::config::parse(&h.applied_text(), "t").unwrap().services[0].reals.len(), 1);
    h.key(KeyCode::Char('r'));
    h.screen(80, 24).has("ROLLED BACK on request");
    assert_eq!(lbd::config::parse(&h.applied_text(), "t").unwrap().services[0].reals.len(), 2);
}

#[test]
fn drain_and_enable_restore_the_configured_weight() {
    let mut h = Harness::with_password("drain", PW);
    h.login(PW);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Enter);
    h.key(KeyCode::Char('w'));
    let w = |h: &Harness| h.app.staged.as_ref().unwrap().services[0].reals[0].weight;
    assert_eq!(w(&h), 0);
    h.screen(80, 24).row_of("192.168.100.31:80").contains("QUIESCED");
    h.key(KeyCode::Char('u'));
    assert_eq!(w(&h), 3);
    assert_eq!(h.app.notes[1], "enable 192.168.100.31 (weight 0 -> 3)");
}

#[test]
fn network_edits_are_staged_with_field_checks() {
    let mut h = Harness::with_password("net", PW);
    h.login(PW);
    h.key(KeyCode::Char('3'));
    h.key(KeyCode::Char('v'));
    h.typ("192.168.100.112/33");
    h.screen(80, 24).has("prefix length /33 is too long");
    h.key(KeyCode::Backspace);
    h.key(KeyCode::Backspace);
    h.key(KeyCode::Backspace);
    h.key(KeyCode::Tab);
    h.typ("lan");
    h.key(KeyCode::Enter);
    assert_eq!(h.app.staged.as_ref().unwrap().vips.len(), 2);
    // A route through an interface that does not exist: lbd's parser says so.
    h.key(KeyCode::Char('r'));
    h.typ("10.9.0.0/16");
    h.key(KeyCode::Tab);
    h.key(KeyCode::Tab);
    h.typ("nosuch");
    h.key(KeyCode::Enter);
    assert!(h.app.form.is_some(), "refused");
    let e = h.app.form.as_ref().unwrap().errors.join("\n");
    assert!(e.contains("routes[1]"), "{e}");
}

#[test]
fn factory_reset_needs_reset_typed_and_keeps_the_password() {
    let mut h = Harness::with_password("reset", PW);
    h.login(PW);
    h.key(KeyCode::Char('6'));
    h.key(KeyCode::Char('R'));
    h.typ("reset");
    h.key(KeyCode::Enter);
    assert!(applies(&h).is_empty());
    h.screen(80, 24).has("type RESET (capitals) to confirm");
    for _ in 0..5 {
        h.key(KeyCode::Backspace);
    }
    h.typ("RESET");
    h.key(KeyCode::Enter);
    let a = applies(&h);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].1, Some(60), "a reset can be rolled back too");
    let cfg = lbd::config::parse(&a[0].0, "t").unwrap();
    assert!(cfg.services.is_empty() && cfg.interfaces.is_empty() && cfg.vips.is_empty());
    assert_eq!(password::verify(PW, cfg.system.console_password.as_ref().unwrap()), Ok(true));
    assert_eq!(h.app.screen, Screen::Changes);
}

#[test]
fn reboot_asks_first_and_goes_through_init() {
    let mut h = Harness::with_password("reboot", PW);
    h.login(PW);
    h.key(KeyCode::Char('6'));
    h.key(KeyCode::Char('b'));
    h.screen(80, 24).has("Reboot the box now?");
    h.key(KeyCode::Char('n'));
    assert!(!h.log.contains(&Effect::Init(InitCmd::Reboot)));
    h.key(KeyCode::Char('b'));
    h.key(KeyCode::Char('y'));
    assert!(h.log.contains(&Effect::Init(InitCmd::Reboot)));
    h.screen(80, 24).has("reboot failed: init not reachable");
    // With init answering:
    h.init = Ok(serde_json::json!("rebooting"));
    h.key(KeyCode::Char('o'));
    h.key(KeyCode::Char('y'));
    h.screen(80, 24).has("init accepted poweroff");
}

#[test]
fn ctrl_keys_redraw_and_never_quit() {
    let mut h = Harness::with_password("keys", PW);
    h.login(PW);
    h.ctrl('l');
    assert_eq!(h.log.last(), Some(&Effect::ClearScreen));
    h.key(KeyCode::Char('2'));
    // Ctrl-\ arrives as Ctrl-4 from crossterm: it must not switch screens.
    for c in ['c', 'z', '\\', '4', 'd', '1'] {
        h.ctrl(c);
    }
    assert_eq!(h.app.mode, Mode::Main);
    assert_eq!(h.app.screen, Screen::Services);
}

#[test]
fn idle_operator_is_logged_out() {
    let mut h = Harness::with_password("idle", PW);
    h.login(PW);
    h.key(KeyCode::Char('2'));
    h.wait(599_000);
    assert_eq!(h.app.mode, Mode::Main);
    h.wait(1_000);
    assert_eq!(h.app.mode, Mode::Login);
    h.screen(80, 24).has("logged out after 10 min without a key");
}

#[test]
fn connections_filter_as_you_type() {
    let mut h = Harness::with_password("conns", PW);
    h.login(PW);
    h.key(KeyCode::Char('4'));
    h.wait(250);
    assert_eq!(h.app.conn_lines().len(), 2);
    h.key(KeyCode::Char('/'));
    h.typ("TIME");
    assert_eq!(h.app.conn_lines().len(), 1);
    // Digits go to the filter, not to the screen switch.
    h.key(KeyCode::Backspace);
    h.key(KeyCode::Backspace);
    h.key(KeyCode::Backspace);
    h.key(KeyCode::Backspace);
    h.typ(".5:");
    assert_eq!(h.app.screen, Screen::Connections);
    assert_eq!(h.app.conn_lines().len(), 1);
    assert!(h.app.conn_lines()[0].contains("192.168.100.5:54321"));
}

#[test]
fn invalid_hash_is_never_accepted() {
    let bad = CFG.replace("hostname = \"lb1\"", "hostname = \"lb1\"\nconsole_password = \"plaintext\"");
    let mut h = Harness::new("badhash", Some(&bad));
    h.wait(250);
    assert_eq!(h.app.mode, Mode::Login);
    h.typ("plaintext");
    h.key(KeyCode::Enter);
    assert_ne!(h.app.mode, Mode::Main, "a plaintext 'hash' must not log anyone in");
    let _ = test_hash("x");
}

#[test]
fn set_password_from_the_system_screen_and_edit_then_delete_a_service() {
    let mut h = Harness::with_password("syspw", PW);
    h.login(PW);
    h.key(KeyCode::Char('6'));
    h.key(KeyCode::Char('p'));
    h.typ("new-password-1");
    h.key(KeyCode::Tab);
    h.typ("new-password-1");
    h.key(KeyCode::Enter);
    let a = applies(&h);
    assert_eq!(a.len(), 1);
    let hash = lbd::config::parse(&a[0].0, "t").unwrap().system.console_password.unwrap();
    assert_eq!(password::verify("new-password-1", &hash), Ok(true));
    assert_eq!(password::verify(PW, &hash), Ok(false));
    h.screen(80, 24).has("Console password set.");

    // Edit web's scheduler, then delete it: both staged, the password kept.
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Char('e'));
    h.key(KeyCode::Tab);
    h.key(KeyCode::Tab);
    h.key(KeyCode::Tab);
    h.key(KeyCode::Tab);
    h.key(KeyCode::Right); // wrr -> lc
    h.key(KeyCode::Enter);
    assert_eq!(h.app.staged.as_ref().unwrap().services[0].scheduler, Scheduler::Lc);
    assert_eq!(h.app.staged.as_ref().unwrap().services[0].reals.len(), 2, "reals kept by the edit");
    h.key(KeyCode::Char('d'));
    h.screen(80, 24).has("Delete service web? y/n");
    h.key(KeyCode::Char('y'));
    let staged = h.app.staged.clone().unwrap();
    assert!(staged.services.is_empty());
    assert_eq!(staged.system.console_password.as_deref(), Some(hash.as_str()));
    assert_eq!(h.app.notes, vec!["edit service web", "delete service web"]);
}

#[test]
fn a_restarted_console_keeps_the_lockout() {
    let app = console::app::App::new(console::app::Options { initial_failures: 3, ..Default::default() });
    assert_eq!(app.failures, 3);
    assert_eq!(app.lockout_left(), 4000);
    let dir = std::env::temp_dir().join(format!("console-failures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("console-ttyS0.failures");
    let mut ex = console::exec::Executor::new(&dir.join("x"), &dir.join("y"), &dir.join("z"));
    ex.failures_file = Some(f.clone());
    assert!(ex.run(Effect::SaveFailures(4)).is_none());
    assert_eq!(console::exec::load_failures(&f), 4);
    ex.run(Effect::SaveFailures(0));
    assert!(!f.exists());
    assert_eq!(console::exec::load_failures(&f), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_old_config_version_can_be_viewed_and_staged_back() {
    let mut h = Harness::with_password("history", PW);
    h.login(PW);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Enter);
    h.key(KeyCode::Char('w')); // weight 3 -> 0
    h.key(KeyCode::Char('7'));
    h.key(KeyCode::Char('a'));
    h.key(KeyCode::Char('c'));
    assert_eq!(lbd::config::parse(&h.applied_text(), "t").unwrap().services[0].reals[0].weight, 0);

    h.key(KeyCode::Char('6'));
    h.key(KeyCode::Char('v'));
    h.wait(250);
    assert_eq!(h.app.history.len(), 1);
    h.key(KeyCode::Enter);
    assert!(h.log.contains(&Effect::Lbd(Command::HistoryGet { n: 1 })));
    let s = h.screen(132, 43);
    s.has("Config version 1 (s = stage it to restore");
    s.has("weight = 3");
    h.key(KeyCode::Char('s'));
    assert_eq!(h.app.notes, vec!["restore config version 1 (password kept)"]);
    let staged = h.app.staged.clone().unwrap();
    assert_eq!(staged.services[0].reals[0].weight, 3);
    assert_eq!(staged.system.console_password, h.app.hash);
    // lbd refuses a version that does not exist.
    let r = h.lbd(Command::HistoryGet { n: 7 });
    assert!(!r.ok && r.error.unwrap().starts_with("config version 7:"));
}
