//! Ready-made topologies for end-to-end tests and benchmarks.
//!
//! `Director`: one lvsbox guest (debug flavour, for its shell) on a lab
//! bridge with `10.77.0.2/24` (client side and DR reals) and `10.78.0.1/24`
//! (gateway of NAT reals), DR real servers set up as the seeds do, NAT real
//! servers routed through the director, and a client.

use anyhow::Result;

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
