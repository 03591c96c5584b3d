//! Ready-made topologies for end-to-end tests and benchmarks.
//!
//! `Director`: one lvsbox guest (debug flavour, for its shell) on a lab
//! bridge with `10.77.0.2/24` (client side and DR reals) and `10.78.0.1/24`
//! (gateway of NAT reals), DR real servers set up as the seeds do, NAT real
//! servers routed through the director, and a client.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::guest::{Guest, GuestSpec, mac};
use crate::lab::{Host, Lab};

/// Client-side network of the director.
pub const DIRECTOR_IP: &str = "10.77.0.2";
/// The client.
pub const CLIENT_IP: &str = "10.77.0.50";

/// A director with real servers and a client.
pub struct Director {
    /// The lab (dropped last).
    pub guest: Guest,
    /// The client namespace.
    pub client: Host,
    /// DR real servers (`rs1`, `rs2`, ... at 10.77.0.11, .12, ...).
    pub dr_reals: Vec<Host>,
    /// NAT real servers (`nat1`, ... at 10.78.0.21, ...), HTTP on 8080.
    pub nat_reals: Vec<Host>,
    /// The lab: must drop after the guest.
    pub lab: Lab,
}

/// The network part of a director's config (eth0 with both subnets).
pub fn director_network() -> String {
    format!("[[interfaces]]\nname = \"eth0\"\naddresses = [\"{DIRECTOR_IP}/24\", \"10.78.0.1/24\"]\n")
}

impl Director {
    /// Builds the lab: `dr` DR reals answering HTTP on port 80 for every
    /// address in `vips` (on their lo), `nat` NAT reals, a client; then boots
    /// the director with `config` (which should include [`director_network`]).
    pub fn new(dr: usize, vips: &[&str], nat: usize, config: &str) -> Result<Director> {
        let mut lab = Lab::new()?;
        let client = lab.add_host("cl", &format!("{CLIENT_IP}/24"), None)?;
        let mut dr_reals = Vec::new();
        for i in 0..dr {
            let h = lab.add_dr_real(&format!("rs{}", i + 1), &format!("10.77.0.{}/24", 11 + i), vips)?;
            lab.serve_http(&h, 80)?;
            dr_reals.push(h);
        }
        let mut nat_reals = Vec::new();
        for i in 0..nat {
            let h = lab.add_host(&format!("nat{}", i + 1), &format!("10.78.0.{}/24", 21 + i), Some("10.78.0.1"))?;
            lab.serve_http(&h, 8080)?;
            nat_reals.push(h);
        }
        let tap = lab.add_tap()?;
        let mut guest = Guest::boot(&lab, &GuestSpec::debug("director").config(config).nic(&tap, &mac(1, 0)))?;
        guest.wait_ready()?;
        Ok(Director { guest, client, dr_reals, nat_reals, lab })
    }
}

/// The VIP two VRRP directors share.
pub const VRRP_VIP: &str = "10.77.0.100";
/// The VRID of the pair.
pub const VRID: u8 = 42;

/// Address of director `i` (0 or 1) of a VRRP pair.
pub fn pair_ip(i: usize) -> String {
    format!("10.77.0.{}", 2 + i)
}

/// A VRRP instance `vi1` on eth0 for [`VRRP_VIP`], plus `extra` lines.
pub fn vrrp_instance(priority: u8, version: u8, advert: &str, extra: &str) -> String {
    format!(
        "[[vrrp.instances]]\nname = \"vi1\"\ninterface = \"eth0\"\nvrid = {VRID}\npriority = {priority}\n\
         version = {version}\nadvert_interval = {advert}\nvips = [{{ address = \"{VRRP_VIP}/32\" }}]\n{extra}\n"
    )
}

/// The IPVS sync daemon following `vi1` on eth0.
pub const SYNC_DAEMON: &str = "[vrrp.sync_daemon]\ninterface = \"eth0\"\ninstance = \"vi1\"\nsyncid = 7\n";

/// Director `i`'s config: eth0, the DR service `VIP:80` (rr over the
/// reals at 10.77.0.11..), and `vrrp` (instances, sync daemon; may be empty).
pub fn pair_config(i: usize, reals: usize, vrrp: &str) -> String {
    let mut s = format!(
        "[system]\nhostname = \"lb{}\"\n\n[[interfaces]]\nname = \"eth0\"\naddresses = [\"{}/24\"]\n\n\
         [[services]]\nname = \"web\"\naddress = \"{VRRP_VIP}:80\"\nscheduler = \"rr\"\n",
        i + 1,
        pair_ip(i)
    );
    for r in 0..reals {
        s.push_str(&format!("[[services.reals]]\naddress = \"10.77.0.{}\"\n", 11 + r));
    }
    s.push('\n');
    s.push_str(vrrp);
    s
}

/// A keepalived `vrrp_instance` for the same VIP and VRID (`state BACKUP`,
/// so priorities decide as for lbd), with PASS authentication when given.
pub fn keepalived_conf(priority: u8, version: u8, advert: &str, pass: Option<&str>, nopreempt: bool) -> String {
    let auth = pass
        .map(|p| format!("    authentication {{\n        auth_type PASS\n        auth_pass {p}\n    }}\n"))
        .unwrap_or_default();
    format!(
        "global_defs {{\n    router_id ka\n    enable_script_security\n}}\n\
         vrrp_instance vi1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id {VRID}\n    version {version}\n    \
         priority {priority}\n    advert_int {advert}\n{auth}{np}    virtual_ipaddress {{\n        {VRRP_VIP}/32\n    }}\n}}\n",
        np = if nopreempt { "    nopreempt\n" } else { "" }
    )
}

/// Two VRRP directors' lab: DR real servers (`rs1`.. at 10.77.0.11..,
/// HTTP on 80, the VIP on lo), a client at [`CLIENT_IP`], and one tap per
/// director. Directors are booted (and killed, and booted again) by the test.
pub struct VrrpLab {
    /// The client.
    pub client: Host,
    /// The DR real servers.
    pub reals: Vec<Host>,
    taps: [String; 2],
    /// The lab (drop guests first).
    pub lab: Lab,
}

impl VrrpLab {
    /// Builds it with `reals` DR real servers.
    pub fn new(reals: usize) -> Result<VrrpLab> {
        let mut lab = Lab::new()?;
        let client = lab.add_host("cl", &format!("{CLIENT_IP}/24"), None)?;
        let mut rs = Vec::new();
        for i in 0..reals {
            let h = lab.add_dr_real(&format!("rs{}", i + 1), &format!("10.77.0.{}/24", 11 + i), &[VRRP_VIP])?;
            lab.serve_http(&h, 80)?;
            rs.push(h);
        }
        let taps = [lab.add_tap()?, lab.add_tap()?];
        Ok(VrrpLab { client, reals: rs, taps, lab })
    }

    /// The spec of director `i` (its tap and MAC) named `name`.
    pub fn spec(&self, i: usize, name: &str, config: &str) -> GuestSpec {
        GuestSpec::debug(name).config(config).nic(&self.taps[i], &mac(i as u8 + 1, 0))
    }

    /// Boots director `i` with `config` (not waiting for it).
    pub fn boot(&self, i: usize, name: &str, config: &str) -> Result<Guest> {
        Guest::boot(&self.lab, &self.spec(i, name, config))
    }

    /// Boots director `i` as a keepalived peer: the debug image with
    /// keepalived on top, `config` for lbd (network and IPVS, no `[vrrp]`),
    /// not waiting for it. keepalived is started with [`start_keepalived`].
    pub fn boot_keepalived(&self, i: usize, name: &str, config: &str) -> Result<Guest> {
        let dir = self.lab.dir.join("keepalived-initrd");
        let initrd = if dir.join("peer.cpio").is_file() {
            dir.join("peer.cpio")
        } else {
            crate::peer::keepalived_initrd(&dir, "# written by the test through the shell\n")?
        };
        let mut spec = self.spec(i, name, config);
        spec.initrd = Some(initrd);
        Guest::boot(&self.lab, &spec)
    }

    /// One GET of the VIP from the client; the real's name.
    pub fn get(&self, timeout: Duration) -> Result<String> {
        self.client.ns.in_thread(move || crate::http::get(VRRP_VIP, 80, timeout))?
    }

    /// Waits until the client gets an answer through the VIP (tries every
    /// 20 ms, each bounded by 200 ms); returns the time it took.
    pub fn wait_served(&self, within: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        self.client.ns.in_thread(move || {
            loop {
                let t = Instant::now();
                if crate::http::get(VRRP_VIP, 80, Duration::from_millis(200)).is_ok() {
                    return Ok(t0.elapsed());
                }
                if t0.elapsed() > within {
                    bail!("the client got no answer through {VRRP_VIP} within {within:?}");
                }
                std::thread::sleep(Duration::from_millis(20).saturating_sub(t.elapsed()));
            }
        })?
    }
}

/// Writes `conf` to `/tmp/keepalived.conf` in `g` and starts keepalived
/// (VRRP only, in the foreground of its own session, logging to
/// `/tmp/keepalived.log`); waits until its VRRP child runs.
pub fn start_keepalived(g: &mut Guest, conf: &str) -> Result<()> {
    g.write_file("/tmp/keepalived.conf", conf.as_bytes())?;
    g.sh_ok("rm -f /tmp/keepalived.pid /tmp/keepalived-vrrp.pid")?;
    g.sh_ok(
        "setsid /usr/sbin/keepalived -n -l -D -P -f /tmp/keepalived.conf -p /tmp/keepalived.pid -r /tmp/keepalived-vrrp.pid \
         </dev/null >>/tmp/keepalived.log 2>&1 &",
    )?;
    let t0 = Instant::now();
    loop {
        if g.sh("test -s /tmp/keepalived-vrrp.pid && kill -0 $(cat /tmp/keepalived-vrrp.pid)")?.0 == 0 {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let log = keepalived_log(g);
            bail!("{}: keepalived's VRRP process did not start:\n{log}", g.name);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops keepalived in `g` (SIGTERM: it hands over with priority 0) and
/// waits until it has exited.
pub fn stop_keepalived(g: &mut Guest) -> Result<()> {
    g.sh_ok("test -s /tmp/keepalived.pid && kill $(cat /tmp/keepalived.pid)")?;
    let t0 = Instant::now();
    while g.sh("pidof keepalived")?.0 == 0 {
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("{}: keepalived still running 20 s after SIGTERM", g.name);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// keepalived's log in `g` (empty when it cannot be read).
pub fn keepalived_log(g: &mut Guest) -> String {
    g.sh("cat /tmp/keepalived.log").map(|r| r.1).unwrap_or_default()
}

/// Is `ip` on `g`'s eth0?
pub fn has_addr(g: &mut Guest, ip: &str) -> Result<bool> {
    Ok(g.sh_ok("ip -o -4 addr show dev eth0")?.contains(&format!(" {ip}/")))
}

/// lbd's `vrrp` status in `g`: state of instance `vi1`.
pub fn vrrp_state(g: &mut Guest) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(&g.sh_ok("lbd ctl vrrp")?)?;
    Ok(v["instances"][0]["state"].as_str().unwrap_or("none").to_string())
}

/// Ownership samples of the VIP in two guests, sampled from two threads.
#[derive(Clone, Debug, Default)]
pub struct Ownership {
    /// Samples taken (both guests together).
    pub samples: usize,
    /// Longest time both held the VIP (by consecutive samples).
    pub both: Duration,
    /// Longest time neither held it.
    pub none: Duration,
    /// Samples where `a` / `b` held it.
    pub held: (usize, usize),
}

/// Samples whether `a` and `b` hold [`VRRP_VIP`] (through their shells,
/// each as fast as its shell answers) for `dur`.
pub fn watch_ownership(a: &mut Guest, b: &mut Guest, dur: Duration) -> Result<Ownership> {
    let t0 = Instant::now();
    let sample = |g: &mut Guest| -> Result<Vec<(Instant, bool)>> {
        let mut v = Vec::new();
        while t0.elapsed() < dur {
            let asked = Instant::now();
            let owns = has_addr(g, VRRP_VIP)?;
            // The answer reflects the moment in the middle of the round trip.
            v.push((asked + (Instant::now() - asked) / 2, owns));
        }
        Ok(v)
    };
    let (sa, sb) = std::thread::scope(|s| {
        let ha = s.spawn(|| sample(a));
        let sb = sample(b);
        (ha.join(), sb)
    });
    let sa = sa.map_err(|_| anyhow::anyhow!("sampler panicked"))??;
    let sb = sb?;
    let mut ev: Vec<(Instant, usize, bool)> =
        sa.iter().map(|&(t, o)| (t, 0, o)).chain(sb.iter().map(|&(t, o)| (t, 1, o))).collect();
    ev.sort_by_key(|e| e.0);
    let mut own = [None::<bool>; 2];
    let (mut both_since, mut none_since) = (None::<Instant>, None::<Instant>);
    let mut o = Ownership {
        samples: ev.len(),
        held: (sa.iter().filter(|x| x.1).count(), sb.iter().filter(|x| x.1).count()),
        ..Default::default()
    };
    for (t, who, owns) in ev {
        own[who] = Some(owns);
        match own {
            [Some(true), Some(true)] => o.both = o.both.max(t - *both_since.get_or_insert(t)),
            _ => both_since = None,
        }
        match own {
            [Some(false), Some(false)] => o.none = o.none.max(t - *none_since.get_or_insert(t)),
            _ => none_since = None,
        }
    }
    Ok(o)
}
