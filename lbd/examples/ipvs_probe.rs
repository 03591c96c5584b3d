//! Exercises the IPVS client against a real kernel (run inside a throwaway QEMU guest, see
//! `ipvs_probe_guest.sh`) and cross-checks with Debian's `ipvsadm` when it is present.
//!
//! Usage: `ipvs_probe functional | bench-lbd N | bench-ipvsadm N | info`
//!
//! Prints `ok ...` / `FAIL ...` lines, then `PROBE-RESULT pass=P fail=F` and `PROBE-DONE`.
//! Benchmarks print `BENCH name seconds`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::Instant;

use lbd::ipvs::codec::{IpvsAttr, IpvsMessage, encode_request};
use lbd::ipvs::{
    AF_INET, AF_INET6, BatchLimits, Daemon, DaemonState, Dest, DestEntry, Fwd, Ipvs, IpvsError, Op, Service,
    ServiceKey, Timeouts, TunType, svc_flags, tun_flags,
};
use netlink_packet_core::{DefaultNla, NLM_F_DUMP, NLM_F_REQUEST};

const IPVSADM: &str = "/usr/sbin/ipvsadm";

struct Report {
    pass: usize,
    fail: usize,
}

impl Report {
    fn check(&mut self, ok: bool, what: impl AsRef<str>) {
        if ok {
            self.pass += 1;
            println!("ok   {}", what.as_ref());
        } else {
            self.fail += 1;
            println!("FAIL {}", what.as_ref());
        }
    }
    fn expect_err(&mut self, r: Result<(), IpvsError>, pred: fn(&IpvsError) -> bool, what: &str) {
        match r {
            Err(e) if pred(&e) => self.check(true, format!("{what}: {e} [errno {:?}]", e.errno())),
            Err(e) => self.check(false, format!("{what}: wrong error {e:?}")),
            Ok(()) => self.check(false, format!("{what}: succeeded")),
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn svc(key: ServiceKey, sched: &str) -> Service {
    let netmask = if key.af() == AF_INET6 { 128 } else { 0xffff_ffff };
    Service { key, sched: sched.into(), flags: 0, timeout: 0, netmask, pe_name: None }
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr { protocol: 6, addr: ip(addr), port }
}
fn udp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr { protocol: 17, addr: ip(addr), port }
}
fn sctp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr { protocol: 132, addr: ip(addr), port }
}

fn dest(addr: &str, port: u16, fwd: Fwd, weight: u32) -> Dest {
    Dest {
        addr: ip(addr),
        port,
        fwd,
        weight,
        u_thresh: 0,
        l_thresh: 0,
        tun_type: TunType::Ipip,
        tun_port: 0,
        tun_flags: 0,
    }
}
fn tun(addr: &str, port: u16, t: TunType, tun_port: u16, flags: u16) -> Dest {
    Dest { tun_type: t, tun_port, tun_flags: flags, ..dest(addr, port, Fwd::Tunnel, 1) }
}

fn ipvsadm(args: &[&str]) -> Option<String> {
    let out = Command::new(IPVSADM).args(args).stderr(Stdio::inherit()).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn show(title: &str, text: &str) {
    println!("---- {title}");
    for l in text.lines() {
        println!("| {l}");
    }
    println!("----");
}

/// The catalogue: every service kind and every scheduler, with dests of every forwarding kind.
fn catalogue() -> Vec<(Service, Vec<Dest>)> {
    let mut v = Vec::new();
    let mut s = svc(tcp("192.0.2.1", 80), "rr");
    s.timeout = 0;
    v.push((
        s,
        vec![
            dest("10.0.0.1", 80, Fwd::Route, 1),
            Dest { u_thresh: 100, l_thresh: 10, ..dest("10.0.0.2", 8080, Fwd::Masq, 5) },
            tun("10.0.0.3", 80, TunType::Ipip, 0, 0),
            tun("10.0.0.4", 80, TunType::Gue, 6080, tun_flags::CSUM),
            tun("10.0.0.5", 80, TunType::Gre, 0, tun_flags::CSUM),
            tun("10.0.0.6", 80, TunType::Gue, 6081, tun_flags::REMCSUM),
            tun("10.0.0.7", 80, TunType::Gre, 0, tun_flags::NOCSUM),
            dest("10.0.0.8", 80, Fwd::Route, 0),
        ],
    ));
    v.push((svc(udp("192.0.2.1", 53), "wrr"), vec![dest("10.0.0.1", 53, Fwd::Route, 3)]));
    v.push((svc(sctp("192.0.2.1", 5060), "lc"), vec![dest("10.0.0.1", 5060, Fwd::Masq, 1)]));
    v.push((
        svc(tcp("2001:db8::1", 80), "wlc"),
        vec![
            dest("2001:db8::10", 80, Fwd::Route, 1),
            dest("2001:db8::11", 8080, Fwd::Masq, 2),
            tun("2001:db8::12", 80, TunType::Ipip, 0, 0),
            // A mixed-family dest: only tunnel forwarding may do it.
            tun("10.0.0.9", 80, TunType::Ipip, 0, 0),
        ],
    ));
    v.push((svc(udp("2001:db8::1", 53), "sed"), vec![dest("2001:db8::10", 53, Fwd::Route, 1)]));
    v.push((svc(sctp("2001:db8::1", 9999), "nq"), vec![dest("2001:db8::10", 9999, Fwd::Route, 1)]));
    v.push((svc(ServiceKey::Fwmark { af: AF_INET, mark: 1 }, "lblc"), vec![dest("10.0.0.1", 0, Fwd::Route, 1)]));
    v.push((svc(ServiceKey::Fwmark { af: AF_INET6, mark: 2 }, "lblcr"), vec![dest("2001:db8::10", 0, Fwd::Route, 1)]));
    let mut s = svc(tcp("192.0.2.2", 0), "dh");
    s.flags = svc_flags::PERSISTENT;
    s.timeout = 300;
    s.netmask = 0xffff_ff00;
    v.push((s, vec![dest("10.0.0.1", 0, Fwd::Route, 1)]));
    let mut s = svc(tcp("2001:db8::2", 443), "sh");
    s.flags = svc_flags::PERSISTENT | svc_flags::SCHED1 | svc_flags::SCHED2;
    s.timeout = 600;
    s.netmask = 64;
    v.push((s, vec![dest("2001:db8::10", 443, Fwd::Route, 1)]));
    let mut s = svc(udp("192.0.2.3", 5060), "rr");
    s.flags = svc_flags::PERSISTENT;
    s.timeout = 60;
    s.pe_name = Some("sip".into());
    v.push((s, vec![dest("10.0.0.1", 5060, Fwd::Route, 1)]));
    let mut s = svc(udp("192.0.2.4", 53), "rr");
    s.flags = svc_flags::ONEPACKET;
    v.push((s, vec![dest("10.0.0.1", 53, Fwd::Route, 1)]));
    let mut s = svc(tcp("192.0.2.5", 80), "mh");
    s.flags = svc_flags::SCHED1 | svc_flags::SCHED2;
    v.push((s, vec![dest("10.0.0.1", 80, Fwd::Route, 1), dest("10.0.0.2", 80, Fwd::Route, 1)]));
    v.push((svc(tcp("192.0.2.6", 80), "fo"), vec![dest("10.0.0.1", 80, Fwd::Route, 1)]));
    v.push((svc(tcp("192.0.2.7", 80), "ovf"), vec![dest("10.0.0.1", 80, Fwd::Route, 1)]));
    v
}

fn sorted_dests(mut d: Vec<DestEntry>) -> Vec<Dest> {
    d.sort_by_key(|e| (e.dest.addr, e.dest.port));
    d.into_iter().map(|e| e.dest).collect()
}

fn ipvsadm_addr(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr, port } => {
            let p = match protocol {
                6 => "-t",
                17 => "-u",
                _ => "--sctp-service",
            };
            match addr {
                IpAddr::V4(a) => format!("{p} {a}:{port}"),
                IpAddr::V6(a) => format!("{p} [{a}]:{port}"),
            }
        }
        ServiceKey::Fwmark { af, mark } => {
            if *af == AF_INET6 {
                format!("-f {mark} -6")
            } else {
                format!("-f {mark}")
            }
        }
    }
}

fn dest_addr(d: &Dest) -> String {
    match d.addr {
        IpAddr::V4(a) => format!("{a}:{}", d.port),
        IpAddr::V6(a) => format!("[{a}]:{}", d.port),
    }
}

/// Cross-checks `ipvsadm -S -n` against the model: one `-A` line per service carrying its
/// scheduler and options, one `-a` line per dest with its method and weight.
fn check_ipvsadm_save(rep: &mut Report, cat: &[(Service, Vec<Dest>)]) {
    let Some(save) = ipvsadm(&["-S", "-n"]) else {
        rep.check(false, "ipvsadm -S -n runs");
        return;
    };
    show("ipvsadm -S -n", &save);
    let lines: Vec<&str> = save.lines().collect();
    let n_svc = lines.iter().filter(|l| l.starts_with("-A ")).count();
    let n_dst = lines.iter().filter(|l| l.starts_with("-a ")).count();
    let want_dst: usize = cat.iter().map(|(_, d)| d.len()).sum();
    rep.check(n_svc == cat.len() && n_dst == want_dst, format!("ipvsadm -S: {n_svc} services, {n_dst} dests"));
    for (s, dests) in cat {
        let a = ipvsadm_addr(&s.key);
        let head = format!("-A {a} ");
        let line = lines.iter().find(|l| l.starts_with(&head));
        let mut want = vec![format!("-s {}", s.sched)];
        if s.flags & svc_flags::PERSISTENT != 0 {
            want.push(format!("-p {}", s.timeout));
        }
        if s.flags & svc_flags::ONEPACKET != 0 {
            want.push("-o".into());
        }
        if let Some(pe) = &s.pe_name {
            want.push(format!("--pe {pe}"));
        }
        if s.flags & (svc_flags::SCHED1 | svc_flags::SCHED2) != 0 {
            want.push("-b ".into());
        }
        if s.key.af() == AF_INET && s.flags & svc_flags::PERSISTENT != 0 && s.netmask != 0xffff_ffff {
            want.push(format!("-M {}", Ipv4Addr::from(s.netmask)));
        }
        if s.key.af() == AF_INET6 && s.flags & svc_flags::PERSISTENT != 0 && s.netmask != 128 {
            want.push(format!("-M {}", s.netmask));
        }
        let ok = line.is_some_and(|l| want.iter().all(|w| l.contains(w.as_str())));
        rep.check(ok, format!("ipvsadm -S service {a}: {want:?} in {line:?}"));
        for d in dests {
            let r = format!("-a {a} -r {} ", dest_addr(d));
            let dl = lines.iter().find(|l| l.starts_with(&r));
            let m = match d.fwd {
                Fwd::Route => "-g",
                Fwd::Masq => "-m",
                _ => "-i",
            };
            let mut want = vec![m.to_string(), format!("-w {}", d.weight)];
            if d.fwd == Fwd::Tunnel {
                let t = match d.tun_type {
                    TunType::Ipip => "ipip",
                    TunType::Gue => "gue",
                    TunType::Gre => "gre",
                };
                want.push(format!("--tun-type {t}"));
                if d.tun_type == TunType::Gue {
                    want.push(format!("--tun-port {}", d.tun_port));
                }
            }
            let ok = dl.is_some_and(|l| want.iter().all(|w| l.contains(w.as_str())));
            rep.check(ok, format!("ipvsadm -S dest {}: {want:?} in {dl:?}", dest_addr(d)));
        }
    }
}

fn functional(rep: &mut Report) -> Result<(), IpvsError> {
    let mut ipvs = Ipvs::open()?;
    println!("family id {}", ipvs.family_id());
    let info = ipvs.info()?;
    rep.check(
        info.version == 0x010201,
        format!("GET_INFO: version {:#x} conn_tab_size {}", info.version, info.conn_tab_size),
    );
    ipvs.flush()?;
    rep.check(ipvs.services()?.is_empty(), "FLUSH leaves no service");

    // --- create everything through execute(), one batch.
    let cat = catalogue();
    let mut ops = Vec::new();
    for (s, ds) in &cat {
        ops.push(Op::NewService(s.clone()));
        for d in ds {
            ops.push(Op::NewDest(s.key, d.clone()));
        }
    }
    let res = ipvs.execute(&ops);
    for (op, r) in ops.iter().zip(&res) {
        if let Err(e) = r {
            rep.check(false, format!("{op:?}: {e}"));
        }
    }
    rep.check(res.iter().all(Result::is_ok), format!("execute: {} ops in one call", ops.len()));

    // --- read back identically.
    let got: BTreeMap<ServiceKey, Service> = ipvs.services()?.into_iter().map(|e| (e.svc.key, e.svc)).collect();
    rep.check(got.len() == cat.len(), format!("services(): {} of {}", got.len(), cat.len()));
    for (s, ds) in &cat {
        let g = got.get(&s.key);
        let diff = if g == Some(s) { "identical".to_string() } else { format!("got {g:?}") };
        rep.check(g == Some(s), format!("read back service {}: {diff}", s.key));
        let one = ipvs.service(&s.key)?.map(|e| e.svc);
        rep.check(one.as_ref() == Some(s), format!("service({}) doit", s.key));
        let mut want = ds.clone();
        want.sort_by_key(|d| (d.addr, d.port));
        let gd = sorted_dests(ipvs.dests(&s.key)?);
        rep.check(
            gd == want,
            format!(
                "read back {} dests of {}{}",
                want.len(),
                s.key,
                if gd == want { String::new() } else { format!(": {gd:?}") }
            ),
        );
    }
    if let Some(l) = ipvsadm(&["-Ln"]) {
        show("ipvsadm -Ln", &l);
    }
    if let Some(l) = ipvsadm(&["-Ln", "--tun-info"]) {
        show("ipvsadm -Ln --tun-info", &l);
    }
    check_ipvsadm_save(rep, &cat);

    // --- edits.
    let k = tcp("192.0.2.1", 80);
    let mut s = cat[0].0.clone();
    s.sched = "wrr".into();
    s.flags = svc_flags::PERSISTENT;
    s.timeout = 120;
    s.netmask = 0xffff_0000;
    ipvs.apply(&Op::SetService(s.clone()))?;
    rep.check(ipvs.service(&k)?.map(|e| e.svc) == Some(s.clone()), "SET_SERVICE: sched/persistence/mask changed");
    let mut d = cat[0].1[0].clone();
    d.weight = 42;
    d.u_thresh = 7;
    d.l_thresh = 3;
    ipvs.apply(&Op::SetDest(k, d.clone()))?;
    let back = ipvs.dests(&k)?.into_iter().find(|e| e.dest.addr == d.addr).map(|e| e.dest);
    rep.check(back == Some(d.clone()), "SET_DEST: weight/thresholds changed");
    let mut t = cat[0].1[3].clone(); // GUE -> GRE with csum
    t.tun_type = TunType::Gre;
    t.tun_port = 0;
    ipvs.apply(&Op::SetDest(k, t.clone()))?;
    let back = ipvs.dests(&k)?.into_iter().find(|e| e.dest.addr == t.addr).map(|e| e.dest);
    rep.check(back == Some(t.clone()), format!("SET_DEST: tunnel GUE -> GRE: {back:?}"));
    ipvs.apply(&Op::DelDest(k, d.addr, d.port))?;
    let n = ipvs.dests(&k)?.len();
    rep.check(n == cat[0].1.len() - 1, format!("DEL_DEST: {n} dests left"));
    let gone = cat[1].0.key;
    ipvs.apply(&Op::DelService(gone))?;
    rep.check(ipvs.service(&gone)?.is_none(), "DEL_SERVICE: service() is None");
    rep.check(ipvs.dests(&gone)?.is_empty(), "GET_DEST of a missing service: empty dump (kernel behaviour)");

    // --- zero.
    ipvs.zero(None)?;
    rep.check(true, "ZERO all");
    ipvs.zero(Some(&k))?;
    rep.check(true, "ZERO one service");
    rep.expect_err(
        ipvs.zero(Some(&gone)),
        |e| matches!(e, IpvsError::NoSuchService { .. }),
        "ZERO of a missing service",
    );

    // --- errors.
    rep.expect_err(
        ipvs.apply(&Op::NewService(s.clone())),
        |e| matches!(e, IpvsError::Exists { .. }),
        "duplicate NEW_SERVICE",
    );
    rep.expect_err(
        ipvs.apply(&Op::NewDest(k, cat[0].1[1].clone())),
        |e| matches!(e, IpvsError::Exists { .. }),
        "duplicate NEW_DEST",
    );
    let bad = svc(tcp("192.0.2.99", 80), "nosuch");
    rep.expect_err(ipvs.apply(&Op::NewService(bad)), |e| matches!(e, IpvsError::NotFound { .. }), "unknown scheduler");
    let mut bad = svc(udp("192.0.2.99", 5060), "rr");
    bad.pe_name = Some("nope".into());
    rep.expect_err(
        ipvs.apply(&Op::NewService(bad)),
        |e| matches!(e, IpvsError::NotFound { .. }),
        "unknown persistence engine",
    );
    rep.expect_err(
        ipvs.apply(&Op::DelService(gone)),
        |e| matches!(e, IpvsError::NoSuchService { .. }),
        "DEL_SERVICE missing",
    );
    rep.expect_err(
        ipvs.apply(&Op::SetService(svc(tcp("192.0.2.98", 80), "rr"))),
        |e| matches!(e, IpvsError::NoSuchService { .. }),
        "SET_SERVICE missing",
    );
    rep.expect_err(
        ipvs.apply(&Op::DelDest(k, ip("10.9.9.9"), 80)),
        |e| matches!(e, IpvsError::NotFound { .. }),
        "DEL_DEST missing",
    );
    rep.expect_err(
        ipvs.apply(&Op::SetDest(k, dest("10.9.9.9", 80, Fwd::Route, 1))),
        |e| matches!(e, IpvsError::NotFound { .. }),
        "SET_DEST missing",
    );
    rep.expect_err(
        ipvs.apply(&Op::NewDest(cat[3].0.key, dest("10.0.0.77", 80, Fwd::Route, 1))),
        |e| matches!(e, IpvsError::Invalid { .. }),
        "mixed-family DR dest",
    );
    let r = ipvs.apply(&Op::NewDest(k, tun("10.0.0.66", 80, TunType::Gre, 0, tun_flags::REMCSUM)));
    println!("note GRE with remcsum: {r:?}");
    let r = ipvs.apply(&Op::NewDest(k, tun("10.0.0.65", 80, TunType::Gue, 0, 0)));
    println!("note GUE without port: {r:?}");
    let long = svc(tcp("192.0.2.97", 80), "a-scheduler-name-too-long");
    let r = ipvs.apply(&Op::NewService(long));
    println!("note scheduler name over 15 chars: {r:?}");
    // extack: a top-level attribute that violates the family policy (u32 timeout of 2 bytes).
    let bad = IpvsMessage {
        cmd: lbd::ipvs::codec::IpvsCmd::SetConfig,
        attrs: vec![IpvsAttr::Other(DefaultNla::new(4, vec![1, 0]))],
    };
    match ipvs.request(&bad) {
        Err(e) => rep.check(e.errno().is_some(), format!("policy violation: {e} (extack {:?})", e.extack())),
        Ok(_) => rep.check(false, "policy violation accepted"),
    }

    // --- one failing op in a batch does not hide the others.
    let extra = svc(tcp("192.0.2.50", 80), "rr");
    let batch = vec![
        Op::NewService(extra.clone()),
        Op::NewService(extra.clone()),
        Op::NewDest(extra.key, dest("10.0.0.1", 80, Fwd::Route, 1)),
        Op::DelService(gone),
        Op::NewDest(extra.key, dest("10.0.0.2", 80, Fwd::Route, 1)),
    ];
    let r = ipvs.execute(&batch);
    let shape: Vec<String> =
        r.iter().map(|r| r.as_ref().map_or_else(|e| format!("{:?}", e.errno()), |_| "ok".into())).collect();
    rep.check(
        r[0].is_ok()
            && matches!(r[1], Err(IpvsError::Exists { .. }))
            && r[2].is_ok()
            && matches!(r[3], Err(IpvsError::NoSuchService { .. }))
            && r[4].is_ok()
            && ipvs.dests(&extra.key)?.len() == 2,
        format!("batch with failures, results in order: {shape:?}"),
    );
    // Small batches (1 message per sendmsg) give the same answers.
    ipvs.set_batch_limits(BatchLimits { max_bytes: 64 * 1024, max_msgs: 1 });
    let r2 = ipvs.execute(&[Op::NewService(extra.clone()), Op::DelDest(extra.key, ip("10.0.0.2"), 80)]);
    rep.check(matches!(r2[0], Err(IpvsError::Exists { .. })) && r2[1].is_ok(), "execute with max_msgs=1");
    ipvs.set_batch_limits(BatchLimits::default());

    // --- two dumps in one sendmsg: does the kernel run the second?
    let fam = ipvs.family_id();
    let mut two = encode_request(&IpvsMessage::dump_dests(&k), fam, NLM_F_REQUEST | NLM_F_DUMP, 900_001);
    two.extend(encode_request(&IpvsMessage::dump_dests(&cat[3].0.key), fam, NLM_F_REQUEST | NLM_F_DUMP, 900_002));
    ipvs.send_raw(&two)?;
    let mut seen = Vec::new();
    let start = Instant::now();
    let mut dones = 0;
    while dones < 2 && start.elapsed().as_secs() < 3 {
        match ipvs.recv_frames() {
            Ok(fr) => {
                for f in fr {
                    let tag = match &f.kind {
                        lbd::ipvs::codec::FrameKind::Ipvs(_) => "dest".to_string(),
                        lbd::ipvs::codec::FrameKind::Done { .. } => {
                            dones += 1;
                            "DONE".into()
                        }
                        lbd::ipvs::codec::FrameKind::Error { errno, .. } => {
                            dones += 1;
                            format!("ERROR {errno}")
                        }
                        k => format!("{k:?}"),
                    };
                    seen.push(format!("{}:{tag}", f.seq - 900_000));
                }
            }
            Err(e) => {
                seen.push(format!("{e}"));
                break;
            }
        }
    }
    println!("note two GET_DEST dumps in one sendmsg -> {seen:?}");
    rep.check(
        seen.iter().any(|s| s == "2:ERROR -16"),
        "second dump in flight on one socket is refused with EBUSY (so GET_DEST dumps go one at a time)",
    );

    // --- timeouts.
    let orig = ipvs.timeouts()?;
    println!("timeouts were {orig:?}");
    let want = Timeouts { tcp: 900, tcp_fin: 120, udp: 300 };
    ipvs.set_timeouts(&want)?;
    rep.check(ipvs.timeouts()? == want, "SET_CONFIG/GET_CONFIG timeouts");
    let t = ipvsadm(&["-L", "--timeout"]).unwrap_or_default();
    rep.check(t.contains("Timeout (tcp tcpfin udp): 900 120 300"), format!("ipvsadm --timeout: {}", t.trim()));
    ipvs.set_timeouts(&Timeouts { tcp: 0, tcp_fin: 0, udp: 301 })?;
    rep.check(ipvs.timeouts()? == Timeouts { udp: 301, ..want }, "SET_CONFIG 0 = unchanged");
    ipvs.set_timeouts(&orig)?;

    // --- sync daemons. The kernel refuses them while a mixed-family dest exists.
    let md = Daemon {
        state: DaemonState::Master,
        mcast_ifn: "lo".into(),
        sync_id: 7,
        sync_maxlen: None,
        mcast_group: None,
        mcast_port: None,
        mcast_ttl: None,
    };
    rep.expect_err(
        ipvs.new_daemon(&md),
        |e| matches!(e, IpvsError::Invalid { .. }),
        "NEW_DAEMON with a mixed-family dest",
    );
    ipvs.apply(&Op::DelDest(cat[3].0.key, ip("10.0.0.9"), 80))?;
    for ifn in ["lo", "dum0"] {
        let d = Daemon {
            state: DaemonState::Master,
            mcast_ifn: ifn.into(),
            sync_id: 7,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        };
        match ipvs.new_daemon(&d) {
            Ok(()) => {
                let ds = ipvs.daemons()?;
                println!("note daemons on {ifn}: {ds:?}");
                rep.check(
                    ds.iter().any(|x| x.state == DaemonState::Master && x.mcast_ifn == ifn && x.sync_id == 7),
                    format!("NEW_DAEMON master on {ifn} reads back"),
                );
                rep.expect_err(
                    ipvs.apply(&Op::NewDest(cat[3].0.key, tun("10.0.0.9", 80, TunType::Ipip, 0, 0))),
                    |e| matches!(e, IpvsError::Invalid { .. }),
                    "mixed-family dest while a sync daemon runs",
                );
                let b = Daemon {
                    state: DaemonState::Backup,
                    sync_id: 8,
                    mcast_port: Some(8849),
                    mcast_ttl: Some(2),
                    ..d.clone()
                };
                let rb = ipvs.new_daemon(&b);
                println!("note backup daemon on {ifn}: {rb:?}");
                if let Some(t) = ipvsadm(&["-L", "--daemon"]) {
                    show("ipvsadm -L --daemon", &t);
                    rep.check(
                        t.contains(&format!("master sync daemon (mcast={ifn}, syncid=7")),
                        "ipvsadm --daemon shows the master",
                    );
                }
                let ds = ipvs.daemons()?;
                if rb.is_ok() {
                    rep.check(
                        ds.iter().any(|x| {
                            x.state == DaemonState::Backup
                                && x.sync_id == 8
                                && x.mcast_port == Some(8849)
                                && x.mcast_ttl == Some(2)
                        }),
                        format!("backup daemon reads back: {ds:?}"),
                    );
                    ipvs.del_daemon(DaemonState::Backup)?;
                }
                ipvs.del_daemon(DaemonState::Master)?;
                rep.check(ipvs.daemons()?.is_empty(), format!("DEL_DAEMON on {ifn}: none left"));
                rep.expect_err(
                    ipvs.del_daemon(DaemonState::Master),
                    |e| e.errno().is_some(),
                    "DEL_DAEMON when none runs",
                );
            }
            Err(e) => println!("note NEW_DAEMON master on {ifn}: {e}"),
        }
    }

    // --- flush.
    ipvs.flush()?;
    rep.check(
        ipvs.services()?.is_empty() && ipvsadm(&["-Sn"]).is_none_or(|s| s.trim().is_empty()),
        "FLUSH empties the table",
    );
    Ok(())
}

fn bench_addr(i: usize, octet2: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, octet2 as u8, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn bench_table(n: usize) -> Vec<(Service, Vec<Dest>)> {
    (0..n)
        .map(|i| {
            let key = ServiceKey::Addr { protocol: 6, addr: IpAddr::V4(bench_addr(i, 100)), port: 80 };
            let dests = (0..4).map(|d| dest(&bench_addr(i, 200 + d).to_string(), 80, Fwd::Route, 1)).collect();
            (svc(key, "rr"), dests)
        })
        .collect()
}

fn bench_lbd(rep: &mut Report, n: usize) -> Result<(), IpvsError> {
    let mut ipvs = Ipvs::open()?;
    rep.check(ipvs.services()?.is_empty(), "bench starts from an empty table");
    let table = bench_table(n);
    let mut ops = Vec::with_capacity(n * 5);
    for (s, ds) in &table {
        ops.push(Op::NewService(s.clone()));
        ops.extend(ds.iter().map(|d| Op::NewDest(s.key, d.clone())));
    }
    let t = Instant::now();
    let res = ipvs.execute(&ops);
    let secs = t.elapsed().as_secs_f64();
    let failed = res.iter().filter(|r| r.is_err()).count();
    println!("BENCH lbd-execute-{n}x4 {secs:.3}");
    rep.check(failed == 0, format!("execute {} ops: {failed} failed, {secs:.3} s", ops.len()));

    let t = Instant::now();
    let all = ipvs.services_with_dests()?;
    let secs = t.elapsed().as_secs_f64();
    let dests: usize = all.iter().map(|(_, d)| d.len()).sum();
    println!("BENCH lbd-dump-{n}x4 {secs:.3}");
    rep.check(all.len() == n && dests == 4 * n, format!("dump: {} services, {dests} dests in {secs:.3} s", all.len()));
    let t = Instant::now();
    let only = ipvs.services()?;
    println!("BENCH lbd-dump-services-only-{n} {:.3}", t.elapsed().as_secs_f64());
    rep.check(only.len() == n, "services() alone");
    let mut want: Vec<_> = table.iter().map(|(s, _)| s.clone()).collect();
    let mut got: Vec<_> = all.iter().map(|(s, _)| s.svc.clone()).collect();
    want.sort_by_key(|s| s.key);
    got.sort_by_key(|s| s.key);
    rep.check(want == got, "bench services read back identically");
    if std::path::Path::new(IPVSADM).exists() {
        let t = Instant::now();
        let out = ipvsadm(&["-Ln"]).unwrap_or_default();
        println!("BENCH ipvsadm-Ln-{n}x4 {:.3}", t.elapsed().as_secs_f64());
        rep.check(out.lines().filter(|l| l.contains("-> ")).count() >= 4 * n, "ipvsadm -Ln lists every dest");
    }
    Ok(())
}

fn bench_ipvsadm(rep: &mut Report, n: usize) -> Result<(), IpvsError> {
    let mut ipvs = Ipvs::open()?;
    rep.check(ipvs.services()?.is_empty(), "bench starts from an empty table");
    let mut rules = String::new();
    for (s, ds) in bench_table(n) {
        let a = ipvsadm_addr(&s.key);
        rules.push_str(&format!("-A {a} -s rr\n"));
        for d in ds {
            rules.push_str(&format!("-a {a} -r {} -g -w 1\n", dest_addr(&d)));
        }
    }
    std::fs::write("/tmp/rules", &rules).map_err(IpvsError::Socket)?;
    let t = Instant::now();
    let st = Command::new(IPVSADM)
        .arg("-R")
        .stdin(std::fs::File::open("/tmp/rules").map_err(IpvsError::Socket)?)
        .status()
        .map_err(IpvsError::Socket)?;
    let secs = t.elapsed().as_secs_f64();
    println!("BENCH ipvsadm-R-{n}x4 {secs:.3}");
    let all = ipvs.services_with_dests()?;
    let dests: usize = all.iter().map(|(_, d)| d.len()).sum();
    rep.check(
        st.success() && all.len() == n && dests == 4 * n,
        format!("ipvsadm -R: {} services {dests} dests", all.len()),
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("functional");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let mut rep = Report { pass: 0, fail: 0 };
    let r = match mode {
        "functional" => functional(&mut rep),
        "bench-lbd" => bench_lbd(&mut rep, n),
        "bench-ipvsadm" => bench_ipvsadm(&mut rep, n),
        "info" => Ipvs::open().and_then(|mut i| i.info()).map(|i| println!("{i:?}")),
        m => {
            println!("unknown mode {m}");
            Ok(())
        }
    };
    if let Err(e) = r {
        rep.check(false, format!("aborted: {e}"));
    }
    println!("PROBE-RESULT pass={} fail={}", rep.pass, rep.fail);
    println!("PROBE-DONE");
}
