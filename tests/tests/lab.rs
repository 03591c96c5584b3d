//! The harness's own network plumbing, on the host (no guest needed): a DR
//! real server set up as the seeds do answers on its address, and answers for
//! the VIP only when packets reach it by MAC (it must not answer ARP for it).

use std::time::Duration;

use tests::http;
use tests::lab::Lab;

#[test]
fn hosts_on_the_bridge_talk_and_cleanup_removes_everything() {
    let id;
    {
        let mut lab = Lab::new().unwrap();
        id = lab.id.clone();
        let rs = lab.add_dr_real("rs1", "10.99.0.11/24", &["10.99.0.100"]).unwrap();
        let client = lab.add_host("cl", "10.99.0.50/24", None).unwrap();
        lab.serve_http(&rs, 8080).unwrap();
        let body = client.ns.in_thread(|| http::get("10.99.0.11", 8080, Duration::from_secs(2))).unwrap().unwrap();
        assert_eq!(body, "rs1");
        // arp_ignore=1: the real server does not answer ARP for the VIP on lo,
        // so the client cannot reach the VIP directly.
        let direct = client.ns.in_thread(|| http::get("10.99.0.100", 8080, Duration::from_millis(1500))).unwrap();
        assert!(direct.is_err(), "the VIP must not be reachable without a director");
    }
    let list = std::process::Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&id), "namespaces left behind");
}
