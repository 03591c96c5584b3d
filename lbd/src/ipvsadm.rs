//! ipvsadm-compatible views and rules.
//!
//! `list` prints exactly what Debian's `ipvsadm` 1.31 prints with `-Ln`
//! (and `--stats`, `--rate`, `--thresholds`, `--persistent-conn`,
//! `--tun-info`, `--exact`, `-S -n`) for the same kernel state; `timeouts`,
//! `daemons` and `connections` match `--timeout`, `--daemon` and `-Lnc`.
//! The format strings and the sort order (including the C comparator's
//! wrap-around arithmetic and glibc's merge sort) follow ipvsadm.c.
//!
//! `restore` reads `ipvsadm -S` output or ipvsadm command lines (`-A`, `-E`,
//! `-D`, `-a`, `-e`, `-d`, `-C`) into config services.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::{
    self, Endpoint, Family, Forwarding, Netmask, Persistence, PersistenceEngine, Protocol, Real, SchedFlag, Scheduler,
    Tunnel, TunnelChecksum, TunnelType,
};
use crate::ipvs::{
    AF_INET6, Daemon, DaemonState, DestEntry, Fwd, Info, ServiceEntry, ServiceKey, Timeouts, TunType, svc_flags,
};

/// Which `ipvsadm -L` variant to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `-Ln`
    Default,
    /// `-Ln --stats`
    Stats,
    /// `-Ln --rate`
    Rate,
    /// `-Ln --thresholds`
    Thresholds,
    /// `-Ln --persistent-conn`
    PersistentConn,
    /// `-Ln --tun-info`
    TunInfo,
    /// `-S -n`
    Rule,
}

/// A kernel table to print.
pub struct Table<'a> {
    /// GET_INFO.
    pub info: Info,
    /// Services with their dests, in any order (they are sorted as ipvsadm does).
    pub services: &'a [(ServiceEntry, Vec<DestEntry>)],
}

/// glibc's `msort`: a stable top-down merge sort taking the left element when
/// `cmp <= 0`. Reproduces ipvsadm's order even where its comparator is not a
/// total order, and never panics.
fn msort<T: Clone>(v: &mut [T], cmp: &impl Fn(&T, &T) -> i64) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    msort(&mut v[..n1], cmp);
    msort(&mut v[n1..], cmp);
    let (mut i, mut j) = (0, n1);
    let mut out = Vec::with_capacity(n);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            out.push(v[i].clone());
            i += 1;
        } else {
            out.push(v[j].clone());
            j += 1;
        }
    }
    out.extend_from_slice(&v[i..n1]);
    out.extend_from_slice(&v[j..n]);
    v.clone_from_slice(&out);
}

/// `int r = ntohl(a) - ntohl(b)`: unsigned subtraction read as a C int.
fn cdiff32(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

fn addr_cmp(a: &IpAddr, b: &IpAddr) -> i64 {
    match (a, b) {
        (IpAddr::V6(x), IpAddr::V6(y)) => {
            let (x, y) = (x.octets(), y.octets());
            for i in 0..4 {
                let w = |o: &[u8; 16]| u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]);
                let r = cdiff32(w(&x), w(&y));
                if r != 0 {
                    return r;
                }
            }
            0
        }
        _ => cdiff32(v4_bits(a), v4_bits(b)),
    }
}

fn v4_bits(a: &IpAddr) -> u32 {
    match a {
        IpAddr::V4(a) => u32::from(*a),
        IpAddr::V6(a) => {
            let o = a.octets();
            u32::from_be_bytes([o[0], o[1], o[2], o[3]])
        }
    }
}

struct SvcSort {
    fwmark: u32,
    af: u16,
    protocol: u16,
    addr: IpAddr,
    port: u16,
}

fn svc_sort(k: &ServiceKey) -> SvcSort {
    match *k {
        ServiceKey::Addr { protocol, addr, port } => SvcSort { fwmark: 0, af: k.af(), protocol, addr, port },
        ServiceKey::Fwmark { af, mark } => SvcSort {
            fwmark: mark,
            af,
            // The kernel reports fwmark services as TCP with a zero address.
            protocol: 6,
            addr: if af == AF_INET6 { Ipv6Addr::UNSPECIFIED.into() } else { Ipv4Addr::UNSPECIFIED.into() },
            port: 0,
        },
    }
}

fn cmp_services(a: &(ServiceEntry, Vec<DestEntry>), b: &(ServiceEntry, Vec<DestEntry>)) -> i64 {
    let (x, y) = (svc_sort(&a.0.svc.key), svc_sort(&b.0.svc.key));
    let r = cdiff32(x.fwmark, y.fwmark);
    if r != 0 {
        return r;
    }
    let r = i64::from(x.af) - i64::from(y.af);
    if r != 0 {
        return r;
    }
    let r = i64::from(x.protocol) - i64::from(y.protocol);
    if r != 0 {
        return r;
    }
    let r = if x.af == AF_INET6 { addr_cmp(&x.addr, &y.addr) } else { cdiff32(v4_bits(&x.addr), v4_bits(&y.addr)) };
    if r != 0 {
        return r;
    }
    i64::from(x.port) - i64::from(y.port)
}

fn cmp_dests(a: &DestEntry, b: &DestEntry) -> i64 {
    let r = if a.dest.addr.is_ipv6() {
        addr_cmp(&a.dest.addr, &b.dest.addr)
    } else {
        cdiff32(v4_bits(&a.dest.addr), v4_bits(&b.dest.addr))
    };
    if r != 0 {
        return r;
    }
    i64::from(a.dest.port) - i64::from(b.dest.port)
}

/// `addrport_to_anyname` with FMT_NUMERIC.
fn addrport(addr: &IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn truncate(s: &mut String, n: usize) {
    if s.len() > n {
        s.truncate(n);
    }
}

/// `print_largenum`.
fn largenum(out: &mut String, i: u64, exact: bool) {
    if exact {
        let len = i.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        let _ = write!(out, "{i:>w$}");
        return;
    }
    let _ = if i < 100_000_000 {
        write!(out, "{i:>9}")
    } else if i < 1_000_000_000 {
        write!(out, "{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        write!(out, "{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        write!(out, "{:>8}G", i / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", i / 1_000_000_000_000)
    };
}

fn sched_flags(sched: &str, flags: u32) -> String {
    let mut v = Vec::new();
    match sched {
        "sh" => {
            if flags & svc_flags::SCHED1 != 0 {
                v.push("sh-fallback");
            }
            if flags & svc_flags::SCHED2 != 0 {
                v.push("sh-port");
            }
        }
        "mh" => {
            if flags & svc_flags::SCHED1 != 0 {
                v.push("mh-fallback");
            }
            if flags & svc_flags::SCHED2 != 0 {
                v.push("mh-port");
            }
        }
        _ => {
            if flags & svc_flags::SCHED1 != 0 {
                v.push("flag-1");
            }
            if flags & svc_flags::SCHED2 != 0 {
                v.push("flag-2");
            }
            if flags & svc_flags::SCHED3 != 0 {
                v.push("flag-3");
            }
        }
    }
    v.join(",")
}

fn fwd_switch(f: Fwd) -> &'static str {
    match f {
        Fwd::Masq => "-m",
        Fwd::Tunnel => "-i",
        Fwd::Local | Fwd::Route => "-g",
        Fwd::Bypass => "(null)",
    }
}

fn fwd_name(f: Fwd) -> &'static str {
    match f {
        Fwd::Bypass => "(null)",
        f => f.ipvsadm_name(),
    }
}

const TUN_FLAGS: [&str; 3] = ["-c", "+c", "r+c"];
const TUN_FLAGS_OPTS: [&str; 3] = ["--tun-nocsum", "--tun-csum", "--tun-remcsum"];

fn title(out: &mut String, fmt: Format) {
    let p = "Prot LocalAddress:Port";
    match fmt {
        Format::Stats => {
            let _ = writeln!(out, "{p:<33} {:>8} {:>8} {:>8} {:>8} {:>8}", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes");
            out.push_str("  -> RemoteAddress:Port\n");
        }
        Format::Rate => {
            let _ = writeln!(out, "{p:<33} {:>8} {:>8} {:>8} {:>8} {:>8}", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS");
            out.push_str("  -> RemoteAddress:Port\n");
        }
        Format::Thresholds => {
            let _ = writeln!(out, "{p:<33} {:<10} {:<10} {:<10} {:<10}", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn");
            out.push_str("  -> RemoteAddress:Port\n");
        }
        Format::PersistentConn => {
            let _ = writeln!(out, "{p:<33} {:<9} {:<11} {:<10} {:<10}", "Weight", "PersistConn", "ActiveConn", "InActConn");
            out.push_str("  -> RemoteAddress:Port\n");
        }
        Format::TunInfo => out.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n",
        ),
        Format::Default => out.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        ),
        Format::Rule => {}
    }
}

/// Prints the table as `ipvsadm -Ln [variant]` / `ipvsadm -S -n` would.
pub fn list(t: &Table<'_>, fmt: Format, exact: bool) -> String {
    let mut out = String::new();
    if fmt != Format::Rule {
        let v = t.info.version;
        let _ = writeln!(
            out,
            "IP Virtual Server version {}.{}.{} (size={})",
            (v >> 16) & 0xff,
            (v >> 8) & 0xff,
            v & 0xff,
            t.info.conn_tab_size
        );
    }
    let mut svcs = t.services.to_vec();
    msort(&mut svcs, &cmp_services);
    title(&mut out, fmt);
    for (se, dests) in &svcs {
        service_entry(&mut out, se, dests, fmt, exact);
    }
    out
}

fn service_entry(out: &mut String, se: &ServiceEntry, dests: &[DestEntry], fmt: Format, exact: bool) {
    let s = &se.svc;
    let af = s.key.af();
    let svc_name = match s.key {
        ServiceKey::Fwmark { mark, .. } => match (fmt == Format::Rule, af == AF_INET6) {
            (true, true) => format!("-f {mark} -6"),
            (true, false) => format!("-f {mark}"),
            (false, true) => format!("FWM  {mark} IPv6"),
            (false, false) => format!("FWM  {mark}"),
        },
        ServiceKey::Addr { protocol, addr, port } => {
            let vname = addrport(&addr, port);
            if fmt == Format::Rule {
                let stype = match protocol {
                    6 => "-t",
                    17 => "-u",
                    132 => "--sctp-service",
                    _ => "--xxx-service",
                };
                format!("{stype} {vname}")
            } else {
                let stype = match protocol {
                    6 => "TCP",
                    17 => "UDP",
                    132 => "SCTP",
                    _ => "?",
                };
                let mut n = format!("{stype:<4} {vname}");
                if af != AF_INET6 {
                    truncate(&mut n, 33);
                }
                n
            }
        }
    };
    let sched_bits = svc_flags::SCHED1 | svc_flags::SCHED2 | svc_flags::SCHED3;
    let persistent = s.flags & svc_flags::PERSISTENT != 0;
    let mask_str = || -> Option<String> {
        if af == AF_INET6 {
            (s.netmask != 128).then(|| s.netmask.to_string())
        } else {
            (s.netmask != 0xffff_ffff).then(|| Ipv4Addr::from(s.netmask).to_string())
        }
    };
    let pe = s.pe_name.as_deref().unwrap_or("");
    match fmt {
        Format::Rule => {
            let _ = write!(out, "-A {svc_name} -s {}", s.sched);
            if persistent {
                let _ = write!(out, " -p {}", s.timeout);
                if let Some(m) = mask_str() {
                    let _ = write!(out, " -M {m}");
                }
            }
            if !pe.is_empty() {
                let _ = write!(out, " --pe {pe}");
            }
            if s.flags & svc_flags::ONEPACKET != 0 {
                out.push_str(" -o");
            }
            if s.flags & sched_bits != 0 {
                let _ = write!(out, " -b {}", sched_flags(&s.sched, s.flags));
            }
        }
        Format::Stats => {
            let _ = write!(out, "{svc_name:<33}");
            for v in [se.stats.conns, se.stats.inpkts, se.stats.outpkts, se.stats.inbytes, se.stats.outbytes] {
                largenum(out, v, exact);
            }
        }
        Format::Rate => {
            let _ = write!(out, "{svc_name:<33}");
            for v in [se.stats.cps, se.stats.inpps, se.stats.outpps, se.stats.inbps, se.stats.outbps] {
                largenum(out, v, exact);
            }
        }
        _ => {
            let _ = write!(out, "{svc_name} {}", s.sched);
            if s.flags & sched_bits != 0 {
                let _ = write!(out, " ({})", sched_flags(&s.sched, s.flags));
            }
            if persistent {
                let _ = write!(out, " persistent {}", s.timeout);
                if let Some(m) = mask_str() {
                    let _ = write!(out, " mask {m}");
                }
                if !pe.is_empty() {
                    let _ = write!(out, " pe {pe}");
                }
            }
            if s.flags & svc_flags::ONEPACKET != 0 {
                out.push_str(" ops");
            }
        }
    }
    out.push('\n');

    let mut ds = dests.to_vec();
    msort(&mut ds, &cmp_dests);
    for e in &ds {
        let d = &e.dest;
        let mut dname = addrport(&d.addr, d.port);
        if fmt != Format::Rule && d.addr.is_ipv4() {
            truncate(&mut dname, 28);
        }
        let _ = match fmt {
            Format::Rule => {
                let head = format!("-a {svc_name} -r {dname} {} -w {}", fwd_switch(d.fwd), d.weight);
                let flags = TUN_FLAGS_OPTS.get(usize::from(d.tun_flags)).copied().unwrap_or("(null)");
                if d.fwd == Fwd::Tunnel {
                    match d.tun_type {
                        TunType::Gre => writeln!(out, "{head} --tun-type gre {flags}"),
                        TunType::Gue => writeln!(out, "{head} --tun-type gue --tun-port {} {flags}", d.tun_port),
                        TunType::Ipip => writeln!(out, "{head} --tun-type ipip"),
                    }
                } else {
                    writeln!(out, "{head}")
                }
            }
            Format::Stats => {
                let _ = write!(out, "  -> {dname:<28}");
                for v in [e.stats.conns, e.stats.inpkts, e.stats.outpkts, e.stats.inbytes, e.stats.outbytes] {
                    largenum(out, v, exact);
                }
                writeln!(out)
            }
            Format::Rate => {
                let _ = write!(out, "  -> {dname:<28} {:>8} {:>8} {:>8}", e.stats.cps, e.stats.inpps, e.stats.outpps);
                largenum(out, e.stats.inbps, exact);
                largenum(out, e.stats.outbps, exact);
                writeln!(out)
            }
            Format::Thresholds => writeln!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                d.u_thresh, d.l_thresh, e.active_conns, e.inact_conns
            ),
            Format::PersistentConn => writeln!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                d.weight, e.persist_conns, e.active_conns, e.inact_conns
            ),
            Format::TunInfo => {
                let flags = TUN_FLAGS.get(usize::from(d.tun_flags)).copied().unwrap_or("(null)");
                let ti = match (d.fwd, d.tun_type) {
                    (Fwd::Tunnel, TunType::Ipip) => "ipip".to_string(),
                    (Fwd::Tunnel, TunType::Gue) => format!("gue:{}:{flags}", d.tun_port),
                    (Fwd::Tunnel, TunType::Gre) => format!("gre:{flags}"),
                    _ => "n/a".to_string(),
                };
                let mut ti = ti;
                truncate(&mut ti, 15);
                writeln!(
                    out,
                    "  -> {dname:<28} {:<7} {ti:<13} {:<6} {:<10} {:<10}",
                    fwd_name(d.fwd),
                    d.weight,
                    e.active_conns,
                    e.inact_conns
                )
            }
            Format::Default => writeln!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                fwd_name(d.fwd),
                d.weight,
                e.active_conns,
                e.inact_conns
            ),
        };
    }
}

/// `ipvsadm --timeout`.
pub fn timeouts(t: &Timeouts) -> String {
    format!("Timeout (tcp tcpfin udp): {} {} {}\n", t.tcp, t.tcp_fin, t.udp)
}

/// `ipvsadm --daemon`.
pub fn daemons(ds: &[Daemon]) -> String {
    let mut out = String::new();
    let mut sorted: Vec<&Daemon> = ds.iter().collect();
    sorted.sort_by_key(|d| match d.state {
        DaemonState::Master => 0,
        DaemonState::Backup => 1,
    });
    for d in sorted {
        let kind = match d.state {
            DaemonState::Master => "master",
            DaemonState::Backup => "backup",
        };
        let _ = write!(out, "{kind} sync daemon (mcast={}, syncid={}", d.mcast_ifn, d.sync_id);
        if let Some(m) = d.sync_maxlen.filter(|m| *m != 0) {
            let _ = write!(out, ", maxlen={m}");
        }
        if let Some(g) = d.mcast_group {
            let _ = write!(out, ", group={g}");
        }
        if let Some(p) = d.mcast_port.filter(|p| *p != 0) {
            let _ = write!(out, ", port={p}");
        }
        if let Some(t) = d.mcast_ttl.filter(|t| *t != 0) {
            let _ = write!(out, ", ttl={t}");
        }
        out.push_str(")\n");
    }
    out
}

/// One line of `/proc/net/ip_vs_conn`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conn {
    /// `TCP`, `UDP`, `SCTP`, ...
    pub protocol: String,
    /// Client.
    pub client: (IpAddr, u16),
    /// Virtual address.
    pub virt: (IpAddr, u16),
    /// Real server.
    pub dest: (IpAddr, u16),
    /// TCP state name (`ESTABLISHED`, `SYN_RECV`, ...).
    pub state: String,
    /// Seconds until it expires.
    pub expires: u32,
    /// Persistence engine name and data, if any.
    pub pe: Option<(String, String)>,
}

fn proc_addr(s: &str) -> Option<IpAddr> {
    if let Ok(a) = s.parse::<Ipv6Addr>() {
        return Some(a.into());
    }
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Some(a.into());
    }
    u32::from_str_radix(s, 16).ok().map(|v| Ipv4Addr::from(v).into())
}

/// Parses `/proc/net/ip_vs_conn` (the header line is skipped).
pub fn parse_conns(text: &str) -> Vec<Conn> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 9 {
                return None;
            }
            let port = |s: &str| u16::from_str_radix(s, 16).ok();
            Some(Conn {
                protocol: f[0].to_string(),
                client: (proc_addr(f[1])?, port(f[2])?),
                virt: (proc_addr(f[3])?, port(f[4])?),
                dest: (proc_addr(f[5])?, port(f[6])?),
                state: f[7].to_string(),
                expires: f[8].parse().ok()?,
                pe: (f.len() >= 11).then(|| (f[9].to_string(), f[10].to_string())),
            })
        })
        .collect()
}

/// `ipvsadm -Lnc` (or `--persistent-conn` variant) from parsed connections.
pub fn connections(conns: &[Conn], persistent: bool) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if persistent {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(out, "pro expire {:<11} {:<18} {:<18} destination", "state", "source", "virtual");
    }
    for c in conns {
        let exp = format!("{:02}:{:02}", c.expires / 60, c.expires % 60);
        let (cn, vn, dn) =
            (addrport(&c.client.0, c.client.1), addrport(&c.virt.0, c.virt.1), addrport(&c.dest.0, c.dest.1));
        let _ = match (&c.pe, persistent) {
            (Some((n, d)), true) => {
                writeln!(out, "{:<3} {exp:<6} {:<11} {cn:<18} {vn:<18} {dn:<16} {n:<18} {d}", c.protocol, c.state)
            }
            _ => writeln!(out, "{:<3} {exp:<6} {:<11} {cn:<18} {vn:<18} {dn}", c.protocol, c.state),
        };
    }
    out
}

// ---------------------------------------------------------------- restore

/// Applies ipvsadm rules (`ipvsadm -S` output, or command lines with or
/// without a leading `ipvsadm`) to `services`. Returns every error with its
/// line number; on any error nothing should be applied.
pub fn restore(services: &[config::Service], text: &str) -> Result<Vec<config::Service>, Vec<String>> {
    let mut out = services.to_vec();
    let mut errors = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words: Vec<&str> = line.split_whitespace().collect();
        if words.first().is_some_and(|w| *w == "ipvsadm" || w.ends_with("/ipvsadm")) {
            words.remove(0);
        }
        if let Err(e) = restore_line(&mut out, &words) {
            errors.push(format!("line {}: {e}: {line}", n + 1));
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

#[derive(Default)]
struct Rule {
    cmd: Option<char>,
    proto: Option<Protocol>,
    addr: Option<Endpoint>,
    fwmark: Option<u32>,
    v6: bool,
    sched: Option<Scheduler>,
    persistent: Option<u32>,
    netmask: Option<Netmask>,
    pe: Option<PersistenceEngine>,
    ops: bool,
    flags: Vec<SchedFlag>,
    real: Option<Endpoint>,
    fwd: Option<Forwarding>,
    weight: Option<u32>,
    uthresh: Option<u32>,
    lthresh: Option<u32>,
    tun_type: Option<TunnelType>,
    tun_port: Option<u16>,
    tun_csum: Option<TunnelChecksum>,
}

fn parse_rule(words: &[&str]) -> Result<Rule, String> {
    let mut r = Rule::default();
    let mut i = 0;
    let set_cmd = |r: &mut Rule, c: char| -> Result<(), String> {
        if r.cmd.is_some() {
            return Err("more than one command".into());
        }
        r.cmd = Some(c);
        Ok(())
    };
    while i < words.len() {
        let w = words[i];
        let mut arg = || -> Result<&str, String> {
            i += 1;
            words.get(i).copied().ok_or_else(|| format!("`{w}` needs a value"))
        };
        let num = |s: &str| s.parse::<u32>().map_err(|_| format!("`{s}` is not a number"));
        match w {
            "-A" | "--add-service" => set_cmd(&mut r, 'A')?,
            "-E" | "--edit-service" => set_cmd(&mut r, 'E')?,
            "-D" | "--delete-service" => set_cmd(&mut r, 'D')?,
            "-C" | "--clear" => set_cmd(&mut r, 'C')?,
            "-a" | "--add-server" => set_cmd(&mut r, 'a')?,
            "-e" | "--edit-server" => set_cmd(&mut r, 'e')?,
            "-d" | "--delete-server" => set_cmd(&mut r, 'd')?,
            "-t" | "--tcp-service" | "-u" | "--udp-service" | "--sctp-service" => {
                r.proto = Some(match w {
                    "-t" | "--tcp-service" => Protocol::Tcp,
                    "-u" | "--udp-service" => Protocol::Udp,
                    _ => Protocol::Sctp,
                });
                let a = arg()?;
                let e: Endpoint = a.parse()?;
                r.addr = Some(e);
            }
            "-f" | "--fwmark-service" => r.fwmark = Some(num(arg()?)?),
            "-6" | "--ipv6" => r.v6 = true,
            "-s" | "--scheduler" => r.sched = Some(arg()?.parse()?),
            "-p" | "--persistent" => {
                let t = match words.get(i + 1) {
                    Some(v) if v.parse::<u32>().is_ok() => {
                        i += 1;
                        num(v)?
                    }
                    _ => 300,
                };
                r.persistent = Some(t);
            }
            "-M" | "--netmask" => {
                let m = arg()?;
                let n: Netmask = serde_json::from_value(
                    m.parse::<u64>().map(serde_json::Value::from).unwrap_or_else(|_| serde_json::Value::from(m)),
                )
                .map_err(|e| e.to_string())?;
                r.netmask = Some(n);
            }
            "--pe" => r.pe = Some(arg()?.parse()?),
            "-o" | "--ops" => r.ops = true,
            "-b" | "--sched-flags" => {
                for f in arg()?.split(',') {
                    r.flags.push(f.parse()?);
                }
            }
            "-r" | "--real-server" => r.real = Some(arg()?.parse()?),
            "-g" | "--gatewaying" => r.fwd = Some(Forwarding::Dr),
            "-i" | "--ipip" => r.fwd = Some(Forwarding::Tun),
            "-m" | "--masquerading" => r.fwd = Some(Forwarding::Nat),
            "-w" | "--weight" => r.weight = Some(num(arg()?)?),
            "-x" | "--u-threshold" => r.uthresh = Some(num(arg()?)?),
            "-y" | "--l-threshold" => r.lthresh = Some(num(arg()?)?),
            "--tun-type" => r.tun_type = Some(arg()?.parse()?),
            "--tun-port" => {
                let p = arg()?;
                r.tun_port = Some(p.parse().map_err(|_| format!("`{p}` is not a port"))?)
            }
            "--tun-nocsum" => r.tun_csum = Some(TunnelChecksum::None),
            "--tun-csum" => r.tun_csum = Some(TunnelChecksum::Csum),
            "--tun-remcsum" => r.tun_csum = Some(TunnelChecksum::Remcsum),
            other => return Err(format!("unsupported option `{other}`")),
        }
        i += 1;
    }
    Ok(r)
}

fn same_key(s: &config::Service, r: &Rule) -> bool {
    match (r.fwmark, r.addr, r.proto) {
        (Some(m), _, _) => {
            s.fwmark == Some(m) && s.family() == if r.v6 { Family::Ipv6 } else { Family::Ipv4 } && s.address.is_none()
        }
        (None, Some(a), Some(p)) => {
            s.address.map(|x| (x.addr, x.port.unwrap_or(0))) == Some((a.addr, a.port.unwrap_or(0))) && s.protocol == p
        }
        _ => false,
    }
}

pub(crate) fn restore_line(services: &mut Vec<config::Service>, words: &[&str]) -> Result<(), String> {
    let r = parse_rule(words)?;
    let Some(cmd) = r.cmd else { return Err("no command (-A, -E, -D, -a, -e, -d, -C)".into()) };
    if cmd == 'C' {
        services.clear();
        return Ok(());
    }
    if r.fwmark.is_none() && r.addr.is_none() {
        return Err("no service given (-t, -u, --sctp-service or -f)".into());
    }
    let idx = services.iter().position(|s| same_key(s, &r));
    match cmd {
        'A' | 'E' => {
            let mut s = match (cmd, idx) {
                ('A', Some(_)) => return Err("service already exists".into()),
                ('E', None) => return Err("no such service".into()),
                ('E', Some(i)) => services[i].clone(),
                _ => config::Service {
                    address: r.addr.map(|a| Endpoint { addr: a.addr, port: Some(a.port.unwrap_or(0)) }),
                    protocol: r.proto.unwrap_or(Protocol::Tcp),
                    fwmark: r.fwmark,
                    family: r.fwmark.map(|_| if r.v6 { Family::Ipv6 } else { Family::Ipv4 }),
                    ..config::Service::default()
                },
            };
            if cmd == 'A' || r.sched.is_some() {
                s.scheduler = r.sched.unwrap_or(Scheduler::Wlc);
            }
            if cmd == 'A' || r.persistent.is_some() || r.netmask.is_some() || r.pe.is_some() {
                s.persistence = r.persistent.map(|t| Persistence { timeout: t, netmask: r.netmask, engine: r.pe });
            }
            s.one_packet = r.ops;
            s.scheduler_flags = r.flags.clone();
            match idx {
                Some(i) => services[i] = s,
                None => services.push(s),
            }
        }
        'D' => {
            let i = idx.ok_or("no such service")?;
            services.remove(i);
        }
        'a' | 'e' | 'd' => {
            let i = idx.ok_or("no such service")?;
            let real = r.real.ok_or("no real server given (-r)")?;
            let s = &mut services[i];
            let sport = s.address.and_then(|a| a.port).unwrap_or(0);
            let port = real.port.unwrap_or(sport);
            let j = s.reals.iter().position(|x| x.address.addr == real.addr && x.address.port.unwrap_or(sport) == port);
            match (cmd, j) {
                ('a', Some(_)) => return Err("real server already exists".into()),
                ('e' | 'd', None) => return Err("no such real server".into()),
                ('d', Some(j)) => {
                    s.reals.remove(j);
                }
                _ => {
                    let mut x = match j {
                        Some(j) => s.reals[j].clone(),
                        None => Real::new(Endpoint { addr: real.addr, port: real.port.map(|_| port) }),
                    };
                    if cmd == 'a' || r.weight.is_some() {
                        x.weight = r.weight.unwrap_or(1);
                    }
                    if cmd == 'a' || r.fwd.is_some() {
                        let fwd = r.fwd.unwrap_or(Forwarding::Dr);
                        x.forwarding = (fwd != s.forwarding).then_some(fwd);
                        x.tunnel =
                            (fwd == Forwarding::Tun && (r.tun_type.is_some() || r.tun_port.is_some())).then(|| {
                                Tunnel {
                                    kind: r.tun_type.unwrap_or(TunnelType::Ipip),
                                    port: r.tun_port,
                                    checksum: r
                                        .tun_csum
                                        .filter(|c| *c != TunnelChecksum::None || r.tun_type != Some(TunnelType::Ipip))
                                        .filter(|_| r.tun_type != Some(TunnelType::Ipip)),
                                }
                            });
                    }
                    if let Some(u) = r.uthresh {
                        x.upper_threshold = u;
                    }
                    if let Some(l) = r.lthresh {
                        x.lower_threshold = l;
                    }
                    match j {
                        Some(j) => s.reals[j] = x,
                        None => s.reals.push(x),
                    }
                }
            }
        }
        _ => return Err("unknown command".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipvs::{Dest, Service, Stats};

    fn svc(key: ServiceKey, sched: &str) -> Service {
        Service {
            key,
            sched: sched.into(),
            flags: svc_flags::HASHED,
            timeout: 0,
            netmask: if key.af() == AF_INET6 { 128 } else { 0xffff_ffff },
            pe_name: None,
        }
    }

    fn dest(addr: &str, port: u16, fwd: Fwd, weight: u32, active: u32, inact: u32) -> DestEntry {
        DestEntry {
            dest: Dest {
                addr: addr.parse().unwrap(),
                port,
                fwd,
                weight,
                u_thresh: 0,
                l_thresh: 0,
                tun_type: TunType::Ipip,
                tun_port: 0,
                tun_flags: 0,
            },
            active_conns: active,
            inact_conns: inact,
            persist_conns: 0,
            stats: Stats::default(),
        }
    }

    fn tcp(addr: &str, port: u16) -> ServiceKey {
        ServiceKey::Addr { protocol: 6, addr: addr.parse().unwrap(), port }
    }

    const INFO: Info = Info { version: 0x010201, conn_tab_size: 4096 };

    /// The seed's NAT example (003): three Masq reals, rr.
    #[test]
    fn seed_nat_listing() {
        let t = vec![(
            ServiceEntry { svc: svc(tcp("192.168.122.100", 80), "rr"), stats: Stats::default() },
            vec![
                dest("10.10.10.30", 80, Fwd::Masq, 1, 0, 1),
                dest("10.10.10.10", 80, Fwd::Masq, 1, 0, 1),
                dest("10.10.10.20", 80, Fwd::Masq, 1, 0, 1),
            ],
        )];
        let s = list(&Table { info: INFO, services: &t }, Format::Default, false);
        assert_eq!(
            s,
            "IP Virtual Server version 1.2.1 (size=4096)\n\
             Prot LocalAddress:Port Scheduler Flags\n  \
             -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
             TCP  192.168.122.100:80 rr\n  \
             -> 10.10.10.10:80               Masq    1      0          1         \n  \
             -> 10.10.10.20:80               Masq    1      0          1         \n  \
             -> 10.10.10.30:80               Masq    1      0          1         \n"
        );
        let rules = list(&Table { info: INFO, services: &t }, Format::Rule, false);
        assert_eq!(
            rules,
            "-A -t 192.168.122.100:80 -s rr\n\
             -a -t 192.168.122.100:80 -r 10.10.10.10:80 -m -w 1\n\
             -a -t 192.168.122.100:80 -r 10.10.10.20:80 -m -w 1\n\
             -a -t 192.168.122.100:80 -r 10.10.10.30:80 -m -w 1\n"
        );
    }

    #[test]
    fn fwmark_persistent_and_flags() {
        let mut f = svc(ServiceKey::Fwmark { af: 2, mark: 300 }, "wrr");
        f.flags |= svc_flags::PERSISTENT;
        f.timeout = 900;
        f.netmask = 0xffff_ff00;
        let mut sh = svc(ServiceKey::Addr { protocol: 17, addr: "2001:db8::1".parse().unwrap(), port: 53 }, "sh");
        sh.flags |= svc_flags::SCHED1 | svc_flags::SCHED2 | svc_flags::ONEPACKET;
        let t = vec![
            (ServiceEntry { svc: sh, stats: Stats::default() }, vec![dest("2001:db8::10", 53, Fwd::Route, 2, 0, 0)]),
            (ServiceEntry { svc: f, stats: Stats::default() }, vec![dest("192.168.100.34", 9814, Fwd::Route, 1, 3, 4)]),
        ];
        let s = list(&Table { info: INFO, services: &t }, Format::Default, false);
        let lines: Vec<&str> = s.lines().collect();
        // Address services (fwmark 0) sort before fwmark services.
        assert_eq!(lines[3], "UDP  [2001:db8::1]:53 sh (sh-fallback,sh-port) ops");
        assert_eq!(lines[4], "  -> [2001:db8::10]:53            Route   2      0          0         ");
        assert_eq!(lines[5], "FWM  300 wrr persistent 900 mask 255.255.255.0");
        let r = list(&Table { info: INFO, services: &t }, Format::Rule, false);
        assert!(r.contains("-A -u [2001:db8::1]:53 -s sh -o -b sh-fallback,sh-port\n"), "{r}");
        assert!(r.contains("-A -f 300 -s wrr -p 900 -M 255.255.255.0\n"), "{r}");
        assert!(r.contains("-a -f 300 -r 192.168.100.34:9814 -g -w 1\n"), "{r}");
    }

    #[test]
    fn sort_follows_ipvsadm_wraparound() {
        // ipvsadm's comparator subtracts u32s into an int: 10.x sorts after 200.x.
        let t = vec![
            (ServiceEntry { svc: svc(tcp("10.0.0.1", 80), "rr"), stats: Stats::default() }, vec![]),
            (ServiceEntry { svc: svc(tcp("200.0.0.1", 80), "rr"), stats: Stats::default() }, vec![]),
        ];
        let s = list(&Table { info: INFO, services: &t }, Format::Rule, false);
        assert_eq!(s, "-A -t 200.0.0.1:80 -s rr\n-A -t 10.0.0.1:80 -s rr\n");
    }

    #[test]
    fn largenum_units() {
        let mut s = String::new();
        for v in [0, 99_999_999, 100_000_000, 1_500_000_000, 123_456_789_012_345] {
            largenum(&mut s, v, false);
        }
        assert_eq!(s, "        0 99999999  100000K    1500M     123T");
        let mut s = String::new();
        largenum(&mut s, 1_500_000_000, true);
        assert_eq!(s, " 1500000000");
    }

    #[test]
    fn stats_and_rate_rows() {
        let mut se = ServiceEntry { svc: svc(tcp("192.0.2.1", 80), "rr"), stats: Stats::default() };
        se.stats.conns = 200;
        se.stats.inbytes = 123_456_789_000;
        let mut d = dest("10.0.0.1", 80, Fwd::Route, 1, 0, 0);
        d.stats.cps = 5;
        d.stats.inbps = 2_000_000_000;
        let t = vec![(se, vec![d])];
        let s = list(&Table { info: INFO, services: &t }, Format::Stats, false);
        assert_eq!(
            s.lines().nth(1).unwrap(),
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"
        );
        assert_eq!(
            s.lines().nth(3).unwrap(),
            "TCP  192.0.2.1:80                      200        0        0     123G        0"
        );
        let r = list(&Table { info: INFO, services: &t }, Format::Rate, false);
        assert_eq!(
            r.lines().nth(4).unwrap(),
            "  -> 10.0.0.1:80                         5        0        0    2000M        0"
        );
    }

    #[test]
    fn proc_conn_parsing_and_listing() {
        let proc = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n\
                    TCP C0A87A01 DAB5 C0A87A64 0050 0A0A0A0A 0050 SYN_RECV         32\n\
                    TCP 2001:0db8:0000:0000:0000:0000:0000:0001 DAB6 2001:0db8:0000:0000:0000:0000:0000:0064 0050 2001:0db8:0000:0000:0000:0000:0000:000a 0050 ESTABLISHED     899\n";
        let c = parse_conns(proc);
        assert_eq!(c.len(), 2);
        let s = connections(&c, false);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[1], "pro expire state       source             virtual            destination");
        assert_eq!(lines[2], "TCP 00:32  SYN_RECV    192.168.122.1:55989 192.168.122.100:80 10.10.10.10:80");
        assert_eq!(lines[3], "TCP 14:59  ESTABLISHED [2001:db8::1]:55990 [2001:db8::64]:80  [2001:db8::a]:80");
    }

    #[test]
    fn timeout_and_daemon_lines() {
        assert_eq!(timeouts(&Timeouts { tcp: 900, tcp_fin: 120, udp: 300 }), "Timeout (tcp tcpfin udp): 900 120 300\n");
        let d = Daemon {
            state: DaemonState::Backup,
            mcast_ifn: "eth0".into(),
            sync_id: 7,
            sync_maxlen: Some(1472),
            mcast_group: Some("224.0.0.81".parse().unwrap()),
            mcast_port: Some(8848),
            mcast_ttl: Some(1),
        };
        assert_eq!(
            daemons(&[d]),
            "backup sync daemon (mcast=eth0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
        );
    }

    #[test]
    fn restore_seed_scripts() {
        // Seed 000's DR script and seed 003's NAT lines, as the operator typed them.
        let rules = "ipvsadm -C\n\
                     ipvsadm -A -t 192.168.1.200:80 -s rr\n\
                     ipvsadm -a -t 192.168.1.200:80 -r 192.168.1.11:80 -g -w 1\n\
                     ipvsadm -a -t 192.168.1.200:80 -r 192.168.1.12:80 -g -w 1\n\
                     -A -t 192.168.122.100:80 -s rr\n\
                     -a -t 192.168.122.100:80 -r 10.10.10.10 -m\n\
                     -A -f 300 -s wrr -p 900\n\
                     -a -f 300 -r 192.168.100.34:9814 -g -w 1\n\
                     -e -t 192.168.1.200:80 -r 192.168.1.12:80 -w 3\n";
        let s = restore(&[], rules).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].scheduler, Scheduler::Rr);
        assert_eq!(s[0].reals[1].weight, 3);
        assert_eq!(s[0].reals[1].forwarding, None); // -g is the service default (dr)
        assert_eq!(s[1].reals[0].forwarding, Some(Forwarding::Nat));
        assert_eq!(s[1].reals[0].address.port, None); // takes the service port
        assert_eq!(s[2].persistence.as_ref().unwrap().timeout, 900);
        // The result is a valid config.
        let cfg = config::Config { services: s, ..Default::default() };
        config::parse(&cfg.to_toml(), "restored.toml").unwrap();
    }

    #[test]
    fn restore_reports_every_bad_line() {
        let e =
            restore(&[], "-A -t 10.0.0.1:80 -s nope\n-a -t 10.0.0.9:80 -r 10.0.0.2\n-A -t 10.0.0.1:80 --frobnicate\n")
                .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("line 1: unknown scheduler `nope`"), "{e:?}");
        assert!(e[1].starts_with("line 2: no such service"), "{e:?}");
        assert!(e[2].starts_with("line 3: unsupported option `--frobnicate`"), "{e:?}");
    }

    #[test]
    fn save_then_restore_round_trips() {
        let mut f = svc(ServiceKey::Fwmark { af: 2, mark: 7 }, "mh");
        f.flags |= svc_flags::PERSISTENT | svc_flags::SCHED2;
        f.timeout = 60;
        let mut tun = dest("198.51.100.5", 0, Fwd::Tunnel, 4, 0, 0);
        tun.dest.tun_type = TunType::Gue;
        tun.dest.tun_port = 6080;
        tun.dest.tun_flags = 1;
        let t = vec![(ServiceEntry { svc: f, stats: Stats::default() }, vec![tun])];
        let text = list(&Table { info: INFO, services: &t }, Format::Rule, false);
        assert_eq!(
            text,
            "-A -f 7 -s mh -p 60 -b mh-port\n-a -f 7 -r 198.51.100.5:0 -i -w 4 --tun-type gue --tun-port 6080 --tun-csum\n"
        );
        let s = restore(&[], &text).unwrap();
        let d = crate::reconcile::desired(&config::Config { services: s, ..Default::default() });
        assert_eq!(d[0].dests[0].tun_port, 6080);
        assert_eq!(d[0].dests[0].tun_flags, 1);
        assert_eq!(d[0].svc.flags, svc_flags::PERSISTENT | svc_flags::SCHED2);
    }
}
