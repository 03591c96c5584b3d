//! The harness can run Debian's keepalived inside a guest (as a VRRP or
//! health-check peer in the same kind of guest as lvsbox).

use anyhow::Result;
use tests::guest::{Guest, GuestSpec};
use tests::lab::Lab;

#[test]
fn keepalived_runs_in_a_debug_guest() -> Result<()> {
    let lab = Lab::new()?;
    let conf = "global_defs {\n    router_id peer\n}\n";
    let initrd = tests::peer::keepalived_initrd(&lab.dir.join("peer"), conf)?;
    let mut spec = GuestSpec::debug("peer").config("[system]\nhostname = \"peer\"\n");
    spec.initrd = Some(initrd);
    let mut g = Guest::boot(&lab, &spec)?;
    g.wait_ready()?;
    let v = g.sh_ok("/usr/sbin/keepalived --version 2>&1 | head -1")?;
    assert!(v.starts_with("Keepalived v2."), "{v}");
    g.sh_ok("test -s /etc/keepalived/keepalived.conf")?;
    Ok(())
}
