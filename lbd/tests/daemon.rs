//! The daemon against a simulated kernel: the transaction and restart rules
//! that do not need a real IPVS (those are proven again in guests).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lbd::ctl::proto::{Command, Request, Response, View};
use lbd::daemon::{Daemon, Options};
use lbd::kernel::SharedSim;
use lbd::logring::LogRing;
use serde_json::Value;

struct Env {
    dir: PathBuf,
    kernel: SharedSim,
}

impl Env {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lbd-daemon-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Env { dir, kernel: SharedSim::new() }
    }
    fn opts(&self) -> Options {
        Options::in_dir(&self.dir)
    }
    fn daemon(&self) -> Daemon {
        Daemon::new(self.opts(), Box::new(self.kernel.clone()), LogRing::new())
    }
    fn changes(&self) -> u64 {
        self.kernel.0.lock().unwrap().changes
    }
    fn services(&self) -> usize {
        self.kernel.0.lock().unwrap().table.services.len()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn call(d: &Daemon, cmd: Command) -> Response {
    d.handle(Request { id: 7, cmd }).await
}

const CFG: &str = r#"
[system]
hostname = "lb1"

[ipvs.timeouts]
tcp = 600

[[services]]
name = "web"
address = "192.0.2.10:80"
scheduler = "rr"
[[services.reals]]
address = "10.0.0.1"
[[services.reals]]
address = "10.0.0.2"
"#;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn apply_programs_the_kernel_and_persists() {
    let env = Env::new("apply");
    rt().block_on(async {
        let d = env.daemon();
        let r = call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await;
        assert!(r.ok, "{r:?}");
        assert_eq!(env.services(), 1);
        assert_eq!(std::fs::read_to_string(env.dir.join("lvsbox.toml")).unwrap(), CFG);
        let l = call(&d, Command::List { view: View::Default, exact: false }).await;
        let text = l.data.unwrap();
        let text = text.as_str().unwrap();
        assert!(text.contains("TCP  192.0.2.10:80 rr\n"), "{text}");
        assert!(text.contains("  -> 10.0.0.2:80                  Route   1      0          0"), "{text}");
        let t = call(&d, Command::List { view: View::Timeout, exact: false }).await;
        assert_eq!(t.data.unwrap(), "Timeout (tcp tcpfin udp): 600 120 300\n");
        let s = call(&d, Command::Status).await.data.unwrap();
        assert_eq!(s["kernel"]["services"], 1);
        assert_eq!(s["config"]["status"]["state"], "ok");
    });
}

#[test]
fn ftp_shorthand_is_programmed_as_a_persistent_fwmark_service_and_shown_expanded() {
    let env = Env::new("ftp");
    let cfg = r#"
[[services]]
name = "ftp"
fwmark = 300
scheduler = "wrr"
ftp = { vip = "192.0.2.111", passive_ports = "8000-10000" }
[[services.reals]]
address = "10.0.0.34"
[[services.reals]]
address = "10.0.0.35"
"#;
    rt().block_on(async {
        let d = env.daemon();
        let r = call(&d, Command::Apply { text: cfg.into(), confirm_within: None }).await;
        assert!(r.ok, "{r:?}");
        let rules = call(&d, Command::List { view: View::Rules, exact: false }).await.data.unwrap();
        let rules = rules.as_str().unwrap();
        assert!(rules.contains("-A -f 300 -s wrr -p 360"), "persistent fwmark service, 360 s: {rules}");
        let f = call(&d, Command::Fwmark).await;
        assert!(f.ok, "{f:?}");
        let f = f.data.unwrap();
        assert_eq!(f["rules"].as_array().unwrap().len(), 2, "{f}");
        assert_eq!(f["rules"][0]["nft"], "ip daddr 192.0.2.111 tcp dport 21 meta mark set 0x12c");
        assert_eq!(f["rules"][1]["origin"], "services[0].ftp.passive_ports");
        assert_eq!(f["services"][0]["persistence"], 360);
        assert_eq!(f["managed"], false);
        let text = f["text"].as_str().unwrap();
        assert!(text.contains("table inet lvsbox {"), "{text}");
        assert!(text.contains("type filter hook prerouting priority mangle; policy accept;"), "{text}");
        assert!(text.contains("ip daddr 192.0.2.111 tcp dport 8000-10000 meta mark set 0x12c"), "{text}");
        assert!(text.contains("not managed (simulation)"), "{text}");
        let s = call(&d, Command::Status).await.data.unwrap();
        assert_eq!(s["fwmark"]["rules"], 2);
    });
}

#[test]
fn invalid_config_changes_nothing_and_lists_every_error() {
    let env = Env::new("invalid");
    rt().block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
        let before = env.changes();
        let bad = CFG.replace("\"rr\"", "\"wrrr\"").replace("10.0.0.2\"", "10.0.0.2\"\nweight = -1");
        let r = call(&d, Command::Apply { text: bad, confirm_within: None }).await;
        assert!(!r.ok);
        let errors = r.data.unwrap()["errors"].as_array().unwrap().clone();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().all(|e| e["line"].as_u64().unwrap() > 0));
        assert_eq!(env.changes(), before);
        assert_eq!(std::fs::read_to_string(env.dir.join("lvsbox.toml")).unwrap(), CFG);
    });
}

#[test]
fn a_missing_config_leaves_the_kernel_table_alone_until_one_is_applied() {
    let env = Env::new("missing");
    let runtime = rt();
    runtime.block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
    });
    // The config partition comes up empty (or fails to mount) and lbd restarts.
    std::fs::remove_file(env.dir.join("lvsbox.toml")).unwrap();
    let before = env.changes();
    runtime.block_on(async {
        let d = env.daemon();
        assert!(d.reconcile().await.is_none(), "reconcile must be paused");
        let st = call(&d, Command::Status).await.data.unwrap();
        assert_eq!(st["config"]["status"]["state"], "missing");
        assert_eq!(st["reconcile"]["paused"], true);
        assert_eq!(env.services(), 1);
        assert_eq!(env.changes(), before);
        // Applying a config (here: no services) resumes reconciling.
        assert!(call(&d, Command::Apply { text: String::new(), confirm_within: None }).await.ok);
        assert_eq!(env.services(), 0);
    });
}

#[test]
fn restart_with_unchanged_config_makes_zero_changes() {
    let env = Env::new("restart");
    let runtime = rt();
    runtime.block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
    });
    let before = env.changes();
    assert!(before > 0);
    runtime.block_on(async {
        let d = env.daemon();
        let r = d.reconcile().await.unwrap();
        assert!(r.applied.is_empty(), "{:?}", r.applied);
    });
    assert_eq!(env.changes(), before);
}

#[test]
fn out_of_band_flush_is_repaired() {
    let env = Env::new("flush");
    rt().block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
        env.kernel.0.lock().unwrap().table.services.clear();
        let r = d.reconcile().await.unwrap();
        assert_eq!(r.applied.len(), 3, "{:?}", r.applied);
        assert_eq!(env.services(), 1);
    });
}

#[test]
fn unconfirmed_apply_rolls_back_and_confirmed_stays() {
    let env = Env::new("confirm");
    rt().block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
        let two = format!("{CFG}\n[[services]]\naddress = \"192.0.2.11:443\"\n");
        assert!(call(&d, Command::Apply { text: two.clone(), confirm_within: Some(1) }).await.ok);
        assert_eq!(env.services(), 2);
        assert!(env.dir.join("pending-confirm.json").exists());
        let t0 = Instant::now();
        while env.services() != 1 {
            assert!(t0.elapsed() < Duration::from_secs(10), "no rollback within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(std::fs::read_to_string(env.dir.join("lvsbox.toml")).unwrap(), CFG);
        assert!(!env.dir.join("pending-confirm.json").exists());

        assert!(call(&d, Command::Apply { text: two.clone(), confirm_within: Some(1) }).await.ok);
        assert!(call(&d, Command::Confirm).await.ok);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(env.services(), 2, "a confirmed apply must stay");
        assert!(!call(&d, Command::Confirm).await.ok);
    });
}

#[test]
fn pending_apply_at_startup_rolls_back() {
    let env = Env::new("boot-rollback");
    let runtime = rt();
    let two = format!("{CFG}\n[[services]]\naddress = \"192.0.2.11:443\"\n");
    runtime.block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
        assert!(call(&d, Command::Apply { text: two.clone(), confirm_within: Some(600) }).await.ok);
    });
    // lbd (or the box) stops before the operator confirmed.
    let opts = env.opts();
    runtime.block_on(async {
        let ring = LogRing::new();
        let sock = opts.socket.clone();
        let task = tokio::spawn(lbd::daemon::run(opts, Box::new(env.kernel.clone()), ring));
        let t0 = Instant::now();
        while !sock.exists() {
            assert!(t0.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        task.abort();
    });
    assert_eq!(std::fs::read_to_string(env.dir.join("lvsbox.toml")).unwrap(), CFG);
    assert_eq!(env.services(), 1);
}

#[test]
fn restore_seed_rules_and_save_them_back() {
    let env = Env::new("restore");
    rt().block_on(async {
        let d = env.daemon();
        let rules = "ipvsadm -A -t 192.168.1.200:80 -s rr\n\
                     ipvsadm -a -t 192.168.1.200:80 -r 192.168.1.11:80 -g -w 1\n\
                     ipvsadm -a -t 192.168.1.200:80 -r 192.168.1.12:80 -g -w 1\n";
        let r = call(&d, Command::Restore { rules: rules.into(), confirm_within: None }).await;
        assert!(r.ok, "{r:?}");
        let s = call(&d, Command::List { view: View::Rules, exact: false }).await.data.unwrap();
        assert_eq!(
            s.as_str().unwrap(),
            "-A -t 192.168.1.200:80 -s rr\n-a -t 192.168.1.200:80 -r 192.168.1.11:80 -g -w 1\n-a -t 192.168.1.200:80 -r 192.168.1.12:80 -g -w 1\n"
        );
    });
}

#[test]
fn validate_previews_changes() {
    let env = Env::new("validate");
    rt().block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
        let edited = CFG.replace("address = \"10.0.0.2\"", "address = \"10.0.0.2\"\nweight = 4");
        let r = call(&d, Command::Validate { text: edited }).await;
        let changes: Vec<Value> = r.data.unwrap()["changes"].as_array().unwrap().clone();
        assert_eq!(changes, vec![Value::from("edit real 10.0.0.2:80 of TCP 192.0.2.10:80 weight 4")]);
        assert_eq!(env.services(), 1);
    });
}

fn many_services(n: usize, weight_of_last: u32) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!("[[services]]\naddress = \"172.16.{}.{}:80\"\n", i / 250, i % 250 + 1));
        let w = if i == n - 1 { weight_of_last } else { 1 };
        s.push_str(&format!("[[services.reals]]\naddress = \"10.1.{}.{}\"\nweight = {w}\n", i / 250, i % 250 + 1));
    }
    s
}

#[test]
fn large_tables_are_verified_in_windows_and_applied_against_the_view() {
    let env = Env::new("large");
    rt().block_on(async {
        let d = env.daemon();
        let n = 1500;
        assert!(call(&d, Command::Apply { text: many_services(n, 1), confirm_within: None }).await.ok);
        assert_eq!(env.services(), n);
        // A one-weight change after an apply is planned against the worker's
        // view: exactly one kernel change.
        let before = env.changes();
        let r = call(&d, Command::Apply { text: many_services(n, 7), confirm_within: None }).await;
        assert!(r.ok, "{r:?}");
        assert_eq!(env.changes(), before + 1);
        assert_eq!(r.data.unwrap()["reconcile"]["verified_services"], 0);
        // Out of band: someone edits the last real's weight and deletes the first service.
        {
            let mut k = env.kernel.0.lock().unwrap();
            let last = k.table.services.len() - 1;
            k.table.services[last].1[0].dest.weight = 99;
            k.table.services.remove(0);
        }
        // The next verify pass restores the deleted service at once (the
        // service list is read every pass) ...
        let r = d.reconcile().await.unwrap();
        assert!(r.verified_services < n, "a large table must not be re-read whole every pass");
        assert!(r.applied.iter().any(|o| o.starts_with("add service TCP 172.16.0.1:80")), "{:?}", r.applied);
        assert_eq!(env.services(), n);
        // ... and the weight within a few passes, as the window rotates.
        let mut passes = 1;
        while env.kernel.0.lock().unwrap().table.services.iter().any(|(_, d)| d[0].dest.weight == 99) {
            d.reconcile().await.unwrap();
            passes += 1;
            assert!(passes <= 3, "weight not repaired within 3 passes");
        }
    });
}

#[test]
fn set_weight_splices_the_file_and_makes_one_change() {
    let env = Env::new("weight");
    rt().block_on(async {
        let d = env.daemon();
        let text = format!("# operator's notes stay\n{}", many_services(1500, 1));
        assert!(call(&d, Command::Apply { text, confirm_within: None }).await.ok);
        let before = env.changes();
        let r = call(
            &d,
            Command::SetWeight { service: "tcp 172.16.5.250:80".into(), real: "10.1.5.250".into(), weight: 0 },
        )
        .await;
        assert!(r.ok, "{r:?}");
        assert_eq!(env.changes(), before + 1);
        let weight = {
            let k = env.kernel.0.lock().unwrap();
            let (_, dests) = k.table.services.iter().find(|(s, _)| s.key.to_string() == "TCP 172.16.5.250:80").unwrap();
            dests[0].dest.weight
        };
        assert_eq!(weight, 0);
        // Durable at once in the journal; the file itself is rewritten later.
        assert!(env.dir.join("lvsbox.toml.edits").exists());
        let shown = call(&d, Command::ConfigGet).await.data.unwrap()["text"].as_str().unwrap().to_string();
        let cfg = lbd::config::parse(&shown, "f").unwrap();
        assert_eq!(cfg.services[1499].reals[0].weight, 0, "config_get shows the edit");
        assert_eq!(cfg.services.iter().filter(|s| s.reals[0].weight == 0).count(), 1);
        // A second edit further up the file uses the shifted offsets correctly.
        let r = call(&d, Command::SetWeight { service: "172.16.0.1:80".into(), real: "10.1.0.1:80".into(), weight: 5 })
            .await;
        assert!(r.ok, "{r:?}");
        let r = call(
            &d,
            Command::SetWeight { service: "tcp 172.16.5.250:80".into(), real: "10.1.5.250".into(), weight: 2 },
        )
        .await;
        assert!(r.ok, "{r:?}");
        // A restarted lbd (before the fold) replays the journal and folds it.
        let d2 = env.daemon();
        let file = std::fs::read_to_string(env.dir.join("lvsbox.toml")).unwrap();
        assert!(file.starts_with("# operator's notes stay\n"), "comments kept");
        assert!(!env.dir.join("lvsbox.toml.edits").exists(), "journal folded at start");
        let cfg = lbd::config::parse(&file, "f").unwrap();
        assert_eq!((cfg.services[0].reals[0].weight, cfg.services[1499].reals[0].weight), (5, 2));
        let before = env.changes();
        let r = d2.reconcile().await.unwrap();
        assert_eq!(r.applied_count, 0, "the kernel already has the edits: {r:?}");
        assert_eq!(env.changes(), before);
        // Unknown selectors and out-of-range weights are refused.
        assert!(!call(&d, Command::SetWeight { service: "nope".into(), real: "10.1.0.1".into(), weight: 1 }).await.ok);
        assert!(
            !call(&d, Command::SetWeight { service: "172.16.0.1:80".into(), real: "10.1.0.1".into(), weight: 70000 })
                .await
                .ok
        );
    });
}

#[test]
fn journalled_weight_edits_are_folded_into_the_file() {
    let env = Env::new("fold");
    rt().block_on(async {
        let d = env.daemon();
        let text = format!("# keep me\n{CFG}");
        assert!(call(&d, Command::Apply { text, confirm_within: None }).await.ok);
        for w in [0, 4] {
            let r = call(&d, Command::SetWeight { service: "web".into(), real: "10.0.0.2".into(), weight: w }).await;
            assert!(r.ok, "{r:?}");
        }
        let journal = env.dir.join("lvsbox.toml.edits");
        assert!(journal.exists());
        let t0 = Instant::now();
        while journal.exists() {
            assert!(t0.elapsed() < Duration::from_secs(20), "journal not folded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let file = std::fs::read_to_string(env.dir.join("lvsbox.toml")).unwrap();
        assert!(file.starts_with("# keep me\n"));
        let cfg = lbd::config::parse(&file, "f").unwrap();
        assert_eq!(cfg.services[0].reals[1].weight, 4);
        // The previous version is in the history.
        assert!(!call(&d, Command::History).await.data.unwrap().as_array().unwrap().is_empty());
    });
}

/// A keepalived.conf as an operator pastes it on the console: one DR service,
/// a notify script, an include.
const PASTE: &str = "global_defs {\n\trouter_id lb-new\n}\ninclude /etc/keepalived/conf.d/*.conf\n\
virtual_server 192.0.2.20 443 {\n\tlb_algo wrr\n\tlb_kind DR\n\tprotocol TCP\n\
\treal_server 10.0.0.5 443 {\n\t\tweight 2\n\t\tnotify_down /bin/true\n\t}\n}\n";

#[test]
fn import_converts_a_paste_and_fits_it_onto_the_applied_config() {
    use lbd::ctl::proto::ImportFormat;
    let env = Env::new("import");
    rt().block_on(async {
        let d = env.daemon();
        assert!(call(&d, Command::Apply { text: CFG.into(), confirm_within: None }).await.ok);
        let before = env.changes();
        // The include cannot be followed: an error on its line, nothing merged.
        let r = call(&d, Command::Import { format: ImportFormat::Keepalived, text: PASTE.into(), base: None }).await;
        assert!(!r.ok, "{r:?}");
        let v = r.data.unwrap();
        assert_eq!(v["converted"], false);
        let e = &v["report"][0];
        assert_eq!((e["line"].as_u64(), e["kind"].as_str()), (Some(4), Some("error")), "{v}");
        assert!(e["message"].as_str().unwrap().contains("a pasted keepalived.conf cannot include files"), "{e}");
        assert!(v["merged"].is_null());
        assert!(r.error.unwrap().starts_with("import: 1 error(s), 1 not imported"));
        // Without it: converted, reported, merged onto the applied config
        // (its [ipvs.timeouts] and everything but the services stay).
        let text = PASTE.replace("include /etc/keepalived/conf.d/*.conf\n", "");
        let r = call(&d, Command::Import { format: ImportFormat::Keepalived, text, base: None }).await;
        assert!(r.ok, "{r:?}");
        let v = r.data.unwrap();
        assert_eq!(v["converted"], true);
        let ni: Vec<&Value> = v["report"].as_array().unwrap().iter().filter(|e| e["kind"] == "not imported").collect();
        assert_eq!(ni.len(), 1, "{v}");
        assert_eq!((ni[0]["line"].as_u64(), ni[0]["what"].as_str()), (Some(10), Some("notify_down")));
        let merged = lbd::config::parse(v["merged"].as_str().unwrap(), "merged").unwrap();
        assert_eq!(merged.services.len(), 1);
        assert_eq!(merged.services[0].reals[0].weight, 2);
        assert_eq!(merged.ipvs.timeouts.tcp, Some(600));
        assert_eq!(merged.system.hostname, "lb-new");
        let replaced: Vec<&str> = v["replaced"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        assert_eq!(replaced, ["services: 1 configured -> 1 imported (replaced)", "host name: lb1 -> lb-new"]);
        // Nothing was applied.
        assert_eq!(env.changes(), before);
        assert_eq!(std::fs::read_to_string(env.dir.join("lvsbox.toml")).unwrap(), CFG);
        // A base sent by the client (the console's staged config) is the one merged into.
        let base = CFG.replace("hostname = \"lb1\"", "hostname = \"lb2\"");
        let r = call(
            &d,
            Command::Import {
                format: ImportFormat::Ipvsadm,
                text: "-A -t 192.0.2.30:25 -s rr\n".into(),
                base: Some(base),
            },
        )
        .await;
        assert!(r.ok, "{r:?}");
        let merged = lbd::config::parse(r.data.unwrap()["merged"].as_str().unwrap(), "m").unwrap();
        assert_eq!(merged.system.hostname, "lb2");
        assert_eq!(merged.services[0].address.map(|a| a.to_string()).as_deref(), Some("192.0.2.30:25"));
        // Too large: refused, with the limit named.
        let big = "!".repeat(lbd::ctl::proto::MAX_IMPORT_TEXT + 1);
        let r = call(&d, Command::Import { format: ImportFormat::Keepalived, text: big, base: None }).await;
        assert!(!r.ok && r.error.as_deref().unwrap().contains("at most 256 KiB"), "{r:?}");
        // The request on the wire.
        let line = r#"{"id":3,"cmd":"import","format":"keepalived","text":"! empty\n"}"#;
        let req: Request = serde_json::from_str(line).unwrap();
        assert!(matches!(req.cmd, Command::Import { format: ImportFormat::Keepalived, base: None, .. }));
    });
}
