//! VRRP on the host, for real: lbd speakers and Debian's keepalived in
//! network namespaces on one bridge. Needs root; not part of the default
//! `cargo test` (see `test = false` in lbd/Cargo.toml). Run with
//!
//! ```sh
//! cargo test -p lbd --test vrrp_netns
//! ```
//!
//! It fails (never skips) when it cannot run.

mod vrrp_lab;
use vrrp_lab as netns;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use lbd::vrrp::packet::{self, Advert, Auth, ChecksumMode, Version};
use netns::*;

const MARGIN: Duration = Duration::from_millis(700);

/// Master_Down_Interval of an lbd v3 instance.
fn mdi_v3(advert: Duration, prio: u32) -> Duration {
    advert * 3 + advert * (256 - prio) / 256
}

/// Samples VIP ownership in hosts `a` and `b` for `dur`; the longest time
/// both held it, and the longest time neither did.
fn watch(lab: &Lab, a: usize, b: usize, dur: Duration) -> (Duration, Duration) {
    watch_family(lab, a, b, dur, false)
}

fn watch_family(lab: &Lab, a: usize, b: usize, dur: Duration, v6: bool) -> (Duration, Duration) {
    let t0 = Instant::now();
    let (mut both_since, mut none_since) = (None::<Instant>, None::<Instant>);
    let (mut both_max, mut none_max) = (Duration::ZERO, Duration::ZERO);
    while t0.elapsed() < dur {
        let (x, y) = (lab.owns(a, v6), lab.owns(b, v6));
        let now = Instant::now();
        if x && y {
            let s = *both_since.get_or_insert(now);
            both_max = both_max.max(now - s);
        } else {
            both_since = None;
        }
        if !x && !y {
            let s = *none_since.get_or_insert(now);
            none_max = none_max.max(now - s);
        } else {
            none_since = None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (both_max, none_max)
}

#[test]
fn lbd_pair_failover_and_preemption() {
    require(false);
    let mut lab = Lab::new(&["a", "b"]);
    let vip = lab.vip();
    let advert = Duration::from_millis(100);
    let sync = "\n[vrrp.sync_daemon]\ninterface = \"eth0\"\ninstance = \"vi1\"\nsyncid = 9\n";
    let hi = lab.lbd_config(0, &lbd_instance(vip, 42, 150, 3, "0.1", "")) + sync;
    let lo = lab.lbd_config(1, &lbd_instance(vip, 42, 100, 3, "0.1", "")) + sync;
    let a = lab.start_lbd(0, &hi);
    let b = lab.start_lbd(1, &lo);
    wait_for(Duration::from_secs(5), || lab.state(a, "vi1") == "master" && lab.has_vip(0))
        .unwrap_or_else(|_| panic!("the priority-150 speaker never became master:\n{}", lab.log(0)));
    assert_eq!(lab.state(b, "vi1"), "backup");
    let (both, none) = watch(&lab, 0, 1, Duration::from_secs(1));
    assert!(!lab.has_vip(1), "the backup holds the VIP");
    assert!(both <= advert && none == Duration::ZERO, "steady state: both {both:?}, none {none:?}");
    let bi = lab.instance(b, "vi1");
    assert_eq!(bi["master"]["ip"], lab.addr(0).to_string(), "the backup knows the master: {bi}");
    assert!(bi["rx_adverts"].as_u64().unwrap() >= 5, "{bi}");
    assert_eq!(bi["drops"], serde_json::json!({}), "no drops between two lbd: {bi}");
    // Someone deletes the VIP on the master: it is put back at once.
    lab.drop_vip(0, false);
    wait_for(Duration::from_secs(1), || lab.has_vip(0)).expect("the master re-adds a VIP deleted behind its back");
    // IPVS connection sync follows VRRP: master daemon on the master, backup on the backup.
    assert_eq!(daemons(&lab, a), "master sync daemon (mcast=eth0, syncid=9)");
    assert_eq!(daemons(&lab, b), "backup sync daemon (mcast=eth0, syncid=9)");

    // Applying a config where the instance did not change keeps mastership
    // (no flap, VIP held throughout); changing the instance restarts it.
    let with_service =
        format!("{hi}\n[[services]]\naddress = \"{vip}:80\"\nreals = [{{ address = \"{}\" }}]\n", lab.addr(1));
    let sampler = {
        let (ns, vip) = (lab.ns(0).to_string(), vip);
        std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut lost = 0;
            while t0.elapsed() < Duration::from_millis(600) {
                let out =
                    Command::new("ip").args(["-n", &ns, "-4", "-o", "addr", "show", "dev", "eth0"]).output().unwrap();
                if !String::from_utf8_lossy(&out.stdout).contains(&format!(" {vip}/")) {
                    lost += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            lost
        })
    };
    let r = netns::ctl(&lab.sock(a), lbd::ctl::proto::Command::Apply { text: with_service, confirm_within: None });
    assert!(r.is_some(), "apply failed");
    assert_eq!(sampler.join().unwrap(), 0, "the VIP left the master during an apply that did not touch VRRP");
    let ai = lab.instance(a, "vi1");
    assert_eq!((ai["state"].as_str(), ai["became_master"].as_u64()), (Some("master"), Some(1)), "{ai}");

    // The master dies: the backup owns the VIP within Master_Down_Interval + margin.
    lab.kill(a);
    let bound = mdi_v3(advert, 100) + MARGIN;
    let took =
        wait_for(bound, || lab.has_vip(1)).unwrap_or_else(|t| panic!("no takeover after {t:?}:\n{}", lab.log(1)));
    println!("takeover after SIGKILL: {took:?} (Master_Down_Interval {:?})", mdi_v3(advert, 100));
    assert_eq!(lab.state(b, "vi1"), "master");
    assert_eq!(daemons(&lab, b), "master sync daemon (mcast=eth0, syncid=9)");

    // It comes back (VIP left over from the killed process): it starts as
    // backup, drops the stale VIP, then preempts.
    let a = lab.start_lbd(0, &hi);
    wait_for(mdi_v3(advert, 150) + MARGIN * 2, || lab.state(a, "vi1") == "master" && lab.state(b, "vi1") == "backup")
        .unwrap_or_else(|_| panic!("no preemption:\n{}\n{}", lab.log(0), lab.log(1)));
    wait_for(Duration::from_secs(1), || lab.has_vip(0) && !lab.has_vip(1))
        .expect("VIP moves back to the preempting master");
    let hist = lab.instance(b, "vi1")["history"].clone();
    assert!(hist.to_string().contains("higher priority advert"), "{hist}");

    // Graceful stop (SIGTERM): priority 0, the backup takes over after Skew, not after Master_Down.
    let t0 = Instant::now();
    lab.term(a);
    assert!(!lab.has_vip(0), "a stopping lbd removes its VIPs");
    let took = wait_for(Duration::from_secs(2), || lab.has_vip(1)).expect("takeover after graceful stop");
    println!("takeover after SIGTERM: {took:?} (stop itself {:?})", t0.elapsed() - took);
    assert!(took < mdi_v3(advert, 100), "graceful hand-over took {took:?}, as long as a crash");
}

/// `lbd ctl list --daemon` of process `idx`.
fn daemons(lab: &Lab, idx: usize) -> String {
    let v = netns::ctl(
        &lab.sock(idx),
        lbd::ctl::proto::Command::List { view: lbd::ctl::proto::View::Daemon, exact: false },
    );
    v.and_then(|v| v.as_str().map(|s| s.trim().to_string())).unwrap_or_default()
}

#[test]
fn lbd_pair_nopreempt() {
    require(false);
    let mut lab = Lab::new(&["a", "b"]);
    let vip = lab.vip();
    let advert = Duration::from_millis(100);
    let b = lab.start_lbd(1, &lab.lbd_config(1, &lbd_instance(vip, 7, 100, 3, "0.1", "")));
    wait_for(Duration::from_secs(3), || lab.state(b, "vi1") == "master").expect("b master");
    let a = lab.start_lbd(0, &lab.lbd_config(0, &lbd_instance(vip, 7, 200, 3, "0.1", "preempt = false")));
    let (both, _) = watch(&lab, 0, 1, mdi_v3(advert, 200) * 3);
    assert_eq!(lab.state(a, "vi1"), "backup", "nopreempt must not take over:\n{}", lab.log(0));
    assert!(lab.has_vip(1) && !lab.has_vip(0) && both == Duration::ZERO);
    lab.kill(b);
    wait_for(mdi_v3(advert, 200) + MARGIN, || lab.has_vip(0))
        .expect("the nopreempt backup still takes over a dead master");
}

/// lbd and keepalived on one link, each way round; failover both ways.
fn interop(version: u8, advert: &str, pass: Option<&str>, v6: bool) {
    require(true);
    let adv = Duration::from_secs_f64(advert.parse().unwrap());
    let extra = pass.map(|p| format!("auth_pass = \"{p}\"")).unwrap_or_default();
    let fam = if v6 { "IPv6" } else { "IPv4" };
    for lbd_master in [true, false] {
        let mut lab = Lab::new(&["l", "k"]);
        let vip = if v6 { lab.vip6().to_string() } else { lab.vip().to_string() };
        let (lp, kp) = if lbd_master { (100, 50) } else { (50, 100) };
        let lcfg = lab.lbd_config(0, &lbd_instance(&vip, 51, lp, version, advert, &extra));
        let kcfg = keepalived_conf(&vip, 51, kp, version, advert, pass);
        if v6 {
            // Both speakers send from their link-locals: start once DAD is over
            // (lbd alone copes, see lbd_starts_while_its_link_local_is_tentative).
            lab.wait_ipv6_ready();
        }
        let k = lab.start_keepalived(1, &kcfg);
        let l = lab.start_lbd(0, &lcfg);
        let settle = adv * 5 + MARGIN * 3;
        let (mi, bi) = if lbd_master { (0, 1) } else { (1, 0) };
        wait_for(settle, || lab.owns(mi, v6) && !lab.owns(bi, v6) && lab.state(l, "vi1") != "fault").unwrap_or_else(|_| {
            panic!(
                "v{version} {fam}: the priority-100 speaker never got the VIP alone:\nlbd:\n{}\n{}\nkeepalived:\n{}",
                lab.log(0),
                lab.instance(l, "vi1"),
                lab.ka_log(1)
            )
        });
        // Steady state: never two masters for longer than one advert interval.
        let (both, none) = watch_family(&lab, 0, 1, adv * 3, v6);
        assert!(both <= adv && none <= adv, "v{version} {fam}: both {both:?}, none {none:?}");
        let li = lab.instance(l, "vi1");
        assert_eq!(li["state"], if lbd_master { "master" } else { "backup" }, "{li}");
        assert_eq!(li["drops"], serde_json::json!({}), "lbd dropped keepalived's adverts: {li}");
        if !lbd_master {
            assert!(li["rx_adverts"].as_u64().unwrap() >= 2, "{li}");
            if !v6 {
                assert_eq!(li["master"]["ip"], lab.addr(1).to_string());
            }
        }
        // Kill the master; the other takes over.
        let killed = if lbd_master { l } else { k };
        lab.kill(killed);
        let mdi = adv * 3 + adv; // bound: 3 adverts + the largest skew
        let took = wait_for(mdi + MARGIN, || lab.owns(bi, v6)).unwrap_or_else(|t| {
            panic!("v{version} {fam}: no takeover after {t:?}:\n{}\n{}", lab.log(0), lab.ka_log(1))
        });
        println!("v{version} {fam} {} killed: takeover in {took:?}", if lbd_master { "lbd" } else { "keepalived" });
        // The killed one comes back (stale VIP removed as a rebooted box would)
        // and, with the higher priority, preempts.
        lab.drop_vip(mi, v6);
        if lbd_master {
            lab.start_lbd(0, &lcfg);
        } else {
            lab.start_keepalived(1, &kcfg);
        }
        wait_for(adv * 5 + MARGIN * 3, || lab.owns(mi, v6) && !lab.owns(bi, v6)).unwrap_or_else(|_| {
            panic!("v{version} {fam}: no preemption back:\nlbd:\n{}\nkeepalived:\n{}", lab.log(0), lab.ka_log(1))
        });
        let (both, _) = watch_family(&lab, 0, 1, adv * 2, v6);
        assert!(both <= adv, "v{version} {fam} after preemption: both {both:?}");
    }
}

#[test]
fn interop_keepalived_v2_pass() {
    interop(2, "1", Some("secret12"), false);
}

#[test]
fn interop_keepalived_v3() {
    interop(3, "0.1", None, false);
}

#[test]
fn interop_keepalived_v3_ipv6() {
    interop(3, "0.1", None, true);
}

/// lbd started before DAD finished: Fault ("no usable source address"),
/// then Backup, then Master, and the IPv6 VIP is announced.
#[test]
fn lbd_starts_while_its_link_local_is_tentative() {
    require(false);
    let mut lab = Lab::new(&["a"]);
    let vip = lab.vip6();
    let cap = capture(&lab, Duration::from_secs(5), 0x86dd);
    let a = lab.start_lbd(0, &lab.lbd_config(0, &lbd_instance(vip, 3, 100, 3, "0.1", "")));
    wait_for(Duration::from_secs(6), || lab.has_vip6(0) && lab.state(a, "vi1") == "master")
        .unwrap_or_else(|_| panic!("never master on IPv6: {}", lab.instance(a, "vi1")));
    let i = lab.instance(a, "vi1");
    assert!(i["primary"].as_str().unwrap().starts_with("fe80::"), "{i}");
    assert_eq!(i["tx_errors"], 0, "{i}");
    // Unsolicited neighbour advertisements for the VIP, from a's MAC, on the wire.
    let mac = lab.mac(0);
    let frames = cap.join().unwrap();
    let na: Vec<_> = frames
        .iter()
        .filter(|f| f.len() >= 86 && f[20] == 58 && f[54] == 136 && f[62..78] == vip.octets() && f[6..12] == mac)
        .collect();
    assert!(!na.is_empty(), "no unsolicited NA for {vip} among {} IPv6 frames", frames.len());
    let f = na[0];
    assert_eq!(&f[..6], &[0x33, 0x33, 0, 0, 0, 1], "to all nodes");
    assert_eq!((f[21], f[58]), (255, 0x20), "hop limit 255, Override flag");
    assert_eq!(&f[80..86], &mac, "target link-layer address option carries the MAC");
    let vrrp: Vec<_> = frames.iter().filter(|f| f.len() > 54 && f[20] == 112).collect();
    assert!(!vrrp.is_empty(), "no IPv6 VRRP adverts seen");
    assert_eq!(&vrrp[0][38..54], &lbd::vrrp::packet::MCAST_V6.octets(), "to ff02::12");
    assert_eq!(vrrp[0][21], 255, "hop limit 255");
}

/// Frames of `ethertype` seen on the lab's bridge for `dur`.
fn capture(lab: &Lab, dur: Duration, ethertype: u16) -> std::thread::JoinHandle<Vec<Vec<u8>>> {
    lab.in_br(move || {
        use nix::sys::socket::*;
        let fd =
            socket(AddressFamily::Packet, SockType::Raw, SockFlag::empty(), SockProtocol::EthAll).expect("AF_PACKET");
        setsockopt(&fd, sockopt::ReceiveTimeout, &nix::sys::time::TimeVal::new(0, 100_000)).unwrap();
        let mut frames = Vec::new();
        let t0 = Instant::now();
        let mut buf = [0u8; 2048];
        while t0.elapsed() < dur && frames.len() < 10_000 {
            if let Ok(n) = recv(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut buf, MsgFlags::empty())
                && n >= 14
                && buf[12..14] == ethertype.to_be_bytes()
            {
                frames.push(buf[..n].to_vec());
            }
        }
        frames
    })
}

#[test]
fn lbd_pair_unicast_peers() {
    require(false);
    let mut lab = Lab::new(&["a", "b"]);
    let vip = lab.vip();
    let advert = Duration::from_millis(100);
    let (pa, pb) = (lab.addr(0), lab.addr(1));
    let a = lab
        .start_lbd(0, &lab.lbd_config(0, &lbd_instance(vip, 8, 150, 3, "0.1", &format!("unicast_peers = [\"{pb}\"]"))));
    let b = lab
        .start_lbd(1, &lab.lbd_config(1, &lbd_instance(vip, 8, 100, 3, "0.1", &format!("unicast_peers = [\"{pa}\"]"))));
    wait_for(Duration::from_secs(5), || lab.state(a, "vi1") == "master" && lab.has_vip(0)).expect("a master");
    wait_for(Duration::from_secs(2), || lab.instance(b, "vi1")["rx_adverts"].as_u64().unwrap_or(0) >= 3)
        .unwrap_or_else(|_| panic!("b hears no unicast adverts: {}", lab.instance(b, "vi1")));
    assert_eq!(lab.state(b, "vi1"), "backup");
    lab.kill(a);
    wait_for(mdi_v3(advert, 100) + MARGIN, || lab.has_vip(1)).expect("takeover over unicast");
}

/// The master loses its uplink (a tracked interface, weight 0): it hands
/// over at once with a priority-0 advert instead of making the backup wait
/// Master_Down_Interval; when the uplink returns it preempts again.
#[test]
fn lbd_tracked_uplink_failure_hands_over() {
    require(false);
    let mut lab = Lab::new(&["a", "b"]);
    let vip = lab.vip();
    let advert = Duration::from_secs(1);
    // An "uplink" in a: one end of a veth pair whose other end we pull.
    let ns = lab.ns(0).to_string();
    for args in [
        vec!["-n", ns.as_str(), "link", "add", "up0", "type", "veth", "peer", "name", "up0p"],
        vec!["-n", ns.as_str(), "link", "set", "up0", "up"],
        vec!["-n", ns.as_str(), "link", "set", "up0p", "up"],
    ] {
        assert!(Command::new("ip").args(&args).status().unwrap().success());
    }
    let cfg_a = lab.lbd_config(0, &lbd_instance(vip, 4, 150, 3, "1", "track = [{ interface = \"up0\" }]"))
        + "\n[[interfaces]]\nname = \"up0\"\n";
    let a = lab.start_lbd(0, &cfg_a);
    let b = lab.start_lbd(1, &lab.lbd_config(1, &lbd_instance(vip, 4, 100, 3, "1", "")));
    wait_for(Duration::from_secs(6), || {
        lab.state(a, "vi1") == "master" && lab.state(b, "vi1") == "backup" && lab.has_vip(0)
    })
    .expect("a master");
    assert!(Command::new("ip").args(["-n", &ns, "link", "set", "up0p", "down"]).status().unwrap().success());
    let took = wait_for(Duration::from_secs(2), || lab.has_vip(1) && !lab.has_vip(0))
        .unwrap_or_else(|_| panic!("no hand-over on uplink loss: {}", lab.instance(a, "vi1")));
    println!(
        "uplink lost: backup owns the VIP after {took:?} (Master_Down_Interval would be {:?})",
        mdi_v3(advert, 100)
    );
    assert!(took < Duration::from_secs(1), "hand-over took {took:?}: the priority-0 advert did not work");
    assert_eq!(lab.state(a, "vi1"), "fault");
    assert!(Command::new("ip").args(["-n", &ns, "link", "set", "up0p", "up"]).status().unwrap().success());
    wait_for(mdi_v3(advert, 150) + MARGIN * 2, || lab.state(a, "vi1") == "master" && lab.has_vip(0) && !lab.has_vip(1))
        .expect("uplink back: a preempts");
}

#[test]
fn garp_on_takeover_carries_the_vip_and_the_new_masters_mac() {
    require(false);
    let mut lab = Lab::new(&["a", "b"]);
    let vip = lab.vip();
    let a = lab.start_lbd(0, &lab.lbd_config(0, &lbd_instance(vip, 9, 150, 3, "0.1", "")));
    wait_for(Duration::from_secs(3), || lab.state(a, "vi1") == "master").expect("a master");
    let mac_b = lab.mac(1);
    // Capture ARP on the bridge while b takes over.
    let cap = capture(&lab, Duration::from_secs(4), 0x0806);
    std::thread::sleep(Duration::from_millis(200));
    let b = lab.start_lbd(1, &lab.lbd_config(1, &lbd_instance(vip, 9, 100, 3, "0.1", "")));
    wait_for(Duration::from_secs(2), || lab.state(b, "vi1") == "backup").expect("b backup");
    lab.kill(a);
    wait_for(Duration::from_secs(2), || lab.has_vip(1)).expect("b takes over");
    let frames = cap.join().unwrap();
    let garp: Vec<_> = frames
        .iter()
        .filter(|f| {
            f.len() >= 42
                && f[20..22] == [0, 1]
                && f[28..32] == vip.octets()
                && f[38..42] == vip.octets()
                && f[6..12] == mac_b
        })
        .collect();
    assert!(!garp.is_empty(), "no GARP for {vip} from {mac_b:02x?} among {} ARP frames", frames.len());
    let g = garp[0];
    assert_eq!(&g[..6], &[0xff; 6], "broadcast");
    assert_eq!(&g[22..28], &mac_b, "sender hardware address is the new master's MAC");
    assert!(garp.len() >= 5, "a burst of 5 GARPs after takeover, saw {}", garp.len());
}

/// Raw IPv4 sender in host `i` (IP_HDRINCL, so TTL and everything are ours).
fn sender(lab: &Lab, i: usize, packets: Vec<(Vec<u8>, Ipv4Addr)>) {
    lab.in_ns(i, move || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::RAW, Some(socket2::Protocol::from(112)))
            .unwrap();
        s.set_header_included_v4(true).unwrap();
        s.bind_device(Some(b"eth0")).unwrap();
        for (p, dst) in packets {
            s.send_to(&p, &std::net::SocketAddrV4::new(dst, 0).into()).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .join()
    .unwrap();
}

fn fix_ip_len(p: &mut [u8]) {
    let n = p.len() as u16;
    p[2..4].copy_from_slice(&n.to_be_bytes());
}

#[test]
fn malformed_packets_are_dropped_counted_and_change_nothing() {
    require(false);
    let mut lab = Lab::new(&["a", "c"]);
    let vip = lab.vip();
    let vip2 = Ipv4Addr::new(10, 201, lab.seq as u8, 101);
    let cfg = lab.lbd_config(
        0,
        &format!(
            "{}\n[[vrrp.instances]]\nname = \"v2\"\ninterface = \"eth0\"\nvrid = 43\npriority = 100\nversion = 2\n\
             advert_interval = 1\nauth_pass = \"secret12\"\nvips = [{{ address = \"{vip2}/24\" }}]\n",
            lbd_instance(vip, 42, 100, 3, "0.1", "")
        ),
    );
    let a = lab.start_lbd(0, &cfg);
    wait_for(Duration::from_secs(5), || lab.state(a, "vi1") == "master" && lab.state(a, "v2") == "master")
        .expect("both instances master");
    let before = (lab.instance(a, "vi1"), lab.instance(a, "v2"));

    let src = lab.addr(1);
    let dst = packet::MCAST_V4;
    let adv = |version, vrid, prio, iv, auth, addrs: &[Ipv4Addr]| Advert {
        version,
        vrid,
        priority: prio,
        interval_cs: iv,
        auth,
        addrs: addrs.iter().map(|a| IpAddr::V4(*a)).collect(),
    };
    let enc = |a: &Advert| packet::encode_ipv4(a, src, dst, ChecksumMode::PseudoHeader).unwrap().to_vec();
    let good3 = adv(Version::V3, 42, 254, 10, Auth::None, &[vip]);
    let good2 = adv(Version::V2, 43, 254, 100, Auth::pass("secret12"), &[vip2]);
    let recsum = |p: &mut Vec<u8>, pseudo: bool| {
        p[26] = 0;
        p[27] = 0;
        let c = if pseudo {
            packet::checksum_with_pseudo(src.into(), dst.into(), 112, &p[20..])
        } else {
            packet::checksum(&p[20..])
        };
        p[26..28].copy_from_slice(&c.to_be_bytes());
    };
    let mut pkts = Vec::new();
    let mut want3 = serde_json::Map::new();
    let mut want2 = serde_json::Map::new();
    let add = |w: &mut serde_json::Map<String, serde_json::Value>, k: &str| {
        let n = w.get(k).and_then(|v| v.as_u64()).unwrap_or(0) + 1;
        w.insert(k.into(), n.into());
    };
    // short: a 4-byte VRRP message for vrid 42
    let mut p = enc(&good3);
    p.truncate(24);
    fix_ip_len(&mut p);
    pkts.push(p);
    add(&mut want3, "short");
    // bad checksum
    let mut p = enc(&good3);
    p[26] ^= 0xff;
    pkts.push(p);
    add(&mut want3, "bad_checksum");
    // TTL 64 (crossed a router)
    let mut p = enc(&good3);
    p[8] = 64;
    pkts.push(p);
    add(&mut want3, "bad_ttl");
    // version 4
    let mut p = enc(&good3);
    p[20] = 0x41;
    recsum(&mut p, true);
    pkts.push(p);
    add(&mut want3, "bad_version");
    // a v2 packet for the v3 instance
    let mut a2 = good2.clone();
    a2.vrid = 42;
    a2.addrs = good3.addrs.clone();
    pkts.push(enc(&a2));
    add(&mut want3, "bad_version");
    // type 2
    let mut p = enc(&good3);
    p[20] = 0x32;
    recsum(&mut p, true);
    pkts.push(p);
    add(&mut want3, "bad_type");
    // two addresses where one is configured
    pkts.push(enc(&adv(Version::V3, 42, 254, 10, Auth::None, &[vip, vip2])));
    add(&mut want3, "addr_count");
    // unknown VRID: counted on every instance of the interface
    pkts.push(enc(&adv(Version::V3, 99, 254, 10, Auth::None, &[vip])));
    add(&mut want3, "wrong_vrid");
    add(&mut want2, "wrong_vrid");
    // v2: wrong password, no auth, wrong interval
    pkts.push(enc(&adv(Version::V2, 43, 254, 100, Auth::pass("wrong"), &[vip2])));
    add(&mut want2, "bad_password");
    pkts.push(enc(&adv(Version::V2, 43, 254, 100, Auth::None, &[vip2])));
    add(&mut want2, "auth_type");
    pkts.push(enc(&adv(Version::V2, 43, 254, 200, Auth::pass("secret12"), &[vip2])));
    add(&mut want2, "bad_interval");
    // also to our unicast address, not only the group
    let mut p = enc(&good3);
    p[8] = 1;
    let ua = lab.addr(0);
    p[16..20].copy_from_slice(&ua.octets());
    let c = packet::checksum(
        &p[..20].iter().enumerate().map(|(i, b)| if i == 10 || i == 11 { 0 } else { *b }).collect::<Vec<_>>(),
    );
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let tosend: Vec<(Vec<u8>, Ipv4Addr)> = pkts.into_iter().map(|p| (p, dst)).chain(std::iter::once((p, ua))).collect();
    add(&mut want3, "bad_ttl");
    sender(&lab, 1, tosend);

    let w3 = serde_json::Value::Object(want3);
    let w2 = serde_json::Value::Object(want2);
    let ok = wait_for(Duration::from_secs(3), || {
        lab.instance(a, "vi1")["drops"] == w3 && lab.instance(a, "v2")["drops"] == w2
    });
    let (i3, i2) = (lab.instance(a, "vi1"), lab.instance(a, "v2"));
    assert!(ok.is_ok(), "drop counters:\nvi1 {} (want {w3})\nv2 {} (want {w2})", i3["drops"], i2["drops"]);
    // Nothing was accepted: no state change, no advert counted, still master.
    for (now, then) in [(&i3, &before.0), (&i2, &before.1)] {
        assert_eq!(now["state"], "master");
        assert_eq!(now["rx_adverts"], then["rx_adverts"], "{now}");
        assert_eq!(now["became_master"], then["became_master"]);
        assert_eq!(now["history"].as_array().unwrap().len(), then["history"].as_array().unwrap().len());
    }
    // And a valid higher-priority advert is accepted (the counters are not blind).
    sender(&lab, 1, vec![(enc(&good3), dst)]);
    wait_for(Duration::from_secs(2), || lab.state(a, "vi1") == "backup")
        .expect("a valid advert from priority 254 is obeyed");
}

#[test]
fn maintenance_hands_over_and_resumes() {
    require(false);
    let mut lab = Lab::new(&["a", "b"]);
    let vip = lab.vip();
    let a = lab.start_lbd(0, &lab.lbd_config(0, &lbd_instance(vip, 5, 150, 3, "0.1", "")));
    let b = lab.start_lbd(1, &lab.lbd_config(1, &lbd_instance(vip, 5, 100, 3, "0.1", "")));
    wait_for(Duration::from_secs(5), || lab.state(a, "vi1") == "master" && lab.state(b, "vi1") == "backup")
        .expect("settled");
    let st = Command::new(LBD)
        .args(["ctl", "--socket"])
        .arg(lab.sock(a))
        .args(["vrrp", "maintenance", "vi1", "on"])
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let took = wait_for(Duration::from_secs(1), || lab.has_vip(1) && !lab.has_vip(0)).expect("hand-over");
    assert!(took < Duration::from_millis(300), "maintenance hand-over uses priority 0 (Skew), took {took:?}");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(lab.state(a, "vi1"), "backup", "stays backup in maintenance even with the higher priority");
    assert!(lab.instance(a, "vi1")["maintenance"].as_bool().unwrap());
    netns::ctl(&lab.sock(a), lbd::ctl::proto::Command::VrrpMaintenance { target: "vi1".into(), on: false }).unwrap();
    wait_for(Duration::from_secs(2), || lab.state(a, "vi1") == "master" && lab.has_vip(0) && !lab.has_vip(1))
        .expect("resumes and preempts");
}

use std::process::Command;
