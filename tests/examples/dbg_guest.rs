//! Boots a debug guest (with a config of one eth0 on 10.77.0.2/16) and runs
//! each argument as a shell command in it, printing the output: a quick way
//! to look at the appliance by hand.
//! `cargo run --release -p tests --example dbg_guest -- 'ipvsadm -Ln' 'lbd ctl status'`
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let mut lab = tests::lab::Lab::new()?;
    let tap = lab.add_tap()?;
    let spec = tests::guest::GuestSpec::debug("dbg")
        .config("[[interfaces]]\nname = \"eth0\"\naddresses = [\"10.77.0.2/16\"]\n")
        .nic(&tap, &tests::guest::mac(1, 0));
    let mut g = tests::guest::Guest::boot(&lab, &spec)?;
    g.wait_ready()?;
    for c in std::env::args().skip(1) {
        let (code, out) = g.sh_timeout(&c, Duration::from_secs(120))?;
        println!("$ {c}  [exit {code}]\n{out}");
    }
    Ok(())
}
