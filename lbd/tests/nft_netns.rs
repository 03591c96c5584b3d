//! `lbd::nft` against the host kernel's nf_tables, each test in its own
//! throwaway network namespace (a thread that unshared CLONE_NEWNET; it
//! disappears with the thread, also on panic).
//!
//! Needs root and a kernel with nf_tables (inet family). Without them these
//! tests FAIL with a message saying so; they do not skip.

use std::net::IpAddr;

use lbd::nft::{self, Action, MarkRule, client::Nft, codec};

fn in_netns(f: impl FnOnce(&mut Nft) + Send + 'static) {
    let t = std::thread::spawn(move || {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            panic!("nft netns tests need root: unshare(CLONE_NEWNET) failed: {e}");
        }
        let mut n = Nft::open().expect("NETLINK_NETFILTER socket (is nfnetlink in the kernel?)");
        f(&mut n)
    });
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p);
    }
}

fn rule(d: &str, proto: u8, a: u16, b: u16, mark: u32) -> MarkRule {
    MarkRule { daddr: d.parse::<IpAddr>().unwrap(), proto, ports: (a, b), mark }
}

fn ftp_rules() -> Vec<MarkRule> {
    vec![
        rule("192.0.2.10", 6, 21, 21, 300),
        rule("192.0.2.10", 6, 8000, 10000, 300),
        rule("2001:db8::10", 17, 53, 53, 7),
        rule("2001:db8::10", 132, 1000, 1010, 8),
    ]
}

#[test]
fn netns_rules_are_written_read_back_and_left_alone_when_unchanged() {
    in_netns(|n| {
        assert_eq!(nft::read(n).unwrap(), None, "a fresh namespace has no lvsbox table");
        let rules = ftp_rules();
        let r = nft::sync(n, &rules);
        assert_eq!((r.action, r.in_sync, r.error.clone()), (Action::Replace, true, None), "{r:?}");
        let t = nft::read(n).unwrap().expect("table written");
        assert!(nft::matches(&rules, &t), "read back differs: {t:#?}");
        // The kernel keeps our expressions exactly.
        assert_eq!(t.rules[1].1, rules[1].exprs());
        // Unchanged: compare, don't rewrite.
        let r = nft::sync(n, &rules);
        assert_eq!(r.action, Action::None, "{r:?}");
        // A changed config replaces the table in one batch.
        let fewer = &rules[..1];
        let r = nft::sync(n, fewer);
        assert_eq!((r.action, r.in_sync), (Action::Replace, true), "{r:?}");
        assert!(nft::matches(fewer, &nft::read(n).unwrap().unwrap()));
        // No rules: the table goes away.
        let r = nft::sync(n, &[]);
        assert_eq!((r.action, r.in_sync), (Action::Delete, true), "{r:?}");
        assert_eq!(nft::read(n).unwrap(), None);
        assert_eq!(nft::sync(n, &[]).action, Action::None);
    });
}

#[test]
fn netns_other_tables_are_never_touched() {
    in_netns(|n| {
        // The operator's own tables: one inet table with a chain, one ip table named lvsbox.
        let chain = codec::BaseChain { name: "input".into(), hook: 1, priority: 0, kind: "filter".into(), policy: 1 };
        n.batch(&[
            codec::new_table(codec::nfproto::INET, "operator"),
            codec::new_chain(codec::nfproto::INET, "operator", &chain),
            codec::new_table(codec::nfproto::IPV4, "lvsbox"),
        ])
        .unwrap();
        nft::sync(n, &ftp_rules());
        nft::sync(n, &[]);
        let op = n.request(&codec::get_table(codec::nfproto::INET, "operator")).unwrap();
        assert_eq!(op.len(), 1, "the operator's table is still there");
        let ip = n.request(&codec::get_table(codec::nfproto::IPV4, "lvsbox")).unwrap();
        assert_eq!(ip.len(), 1, "an ip-family table of the same name is not ours");
        let chains = n.dump(&codec::dump_chains(codec::nfproto::INET, "operator")).unwrap();
        assert!(chains.iter().any(|c| matches!(c, codec::Object::Chain { name, .. } if name == "input")));
    });
}

#[test]
fn netns_out_of_band_edits_are_repaired() {
    in_netns(|n| {
        let rules = ftp_rules();
        nft::sync(n, &rules);
        // Someone adds a rule to our chain (as `nft add rule inet lvsbox prerouting ...` would).
        let extra = rule("198.51.100.1", 6, 80, 80, 1);
        n.batch(&[codec::new_rule(nft::FAMILY, nft::TABLE, nft::CHAIN, &extra.exprs())]).unwrap();
        assert!(!nft::matches(&rules, &nft::read(n).unwrap().unwrap()));
        let r = nft::sync(n, &rules);
        assert_eq!((r.action, r.in_sync), (Action::Replace, true), "{r:?}");
        assert!(nft::matches(&rules, &nft::read(n).unwrap().unwrap()));
    });
}

#[test]
fn netns_a_refused_batch_changes_nothing() {
    in_netns(|n| {
        let rules = ftp_rules();
        nft::sync(n, &rules);
        // A batch whose last message fails (a rule for a chain that does not exist):
        // the kernel aborts it whole, so the table deleted earlier in it is still there.
        let mut batch = nft::replace_batch(&rules[..1]);
        batch.push(codec::new_rule(nft::FAMILY, nft::TABLE, "nope", &rules[0].exprs()));
        let (i, e) = n.batch(&batch).unwrap_err();
        assert_eq!(i, batch.len() - 1, "{e}");
        assert_eq!(e.errno(), Some(libc::ENOENT), "{e}");
        assert!(nft::matches(&rules, &nft::read(n).unwrap().unwrap()), "old rules intact");
    });
}
