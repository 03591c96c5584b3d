//! Network configuration from the config, over rtnetlink (no `ip` binary).
//!
//! [`apply`] brings the kernel's links, addresses and routes to what a
//! [`Config`] describes and returns a [`Report`] with one [`Item`] per thing it
//! looked at. It is idempotent: a second run reports everything `unchanged`.
//!
//! Ownership: every address lvsbox adds carries the address protocol
//! [`ADDR_PROTO`] (`IFA_PROTO`, Linux 5.18+) and every route the route
//! protocol [`ROUTE_PROTO`]. [`apply`] removes addresses and routes with that
//! marker that the config no longer lists (convergence), and never touches
//! anything without it: addresses the kernel or an operator added stay.
//! Other lbd code that adds addresses (VRRP) must use a different marker, or
//! `apply` would take its addresses away.
//!
//! Kernel behaviour to know when changing addresses: deleting an IPv4
//! *primary* address also deletes the secondaries of its subnet (unless
//! `net.ipv4.conf.*.promote_secondaries=1`), and deleting the last IPv4
//! address of a link flushes the routes through it. [`apply`] re-adds what
//! the config wants in the same run (addresses before routes), but a foreign
//! secondary in the same subnet as a changed lvsbox address is lost.
//!
//! [`links`] and [`routes`] list the current state for the console.

mod apply;
mod state;

use std::fmt;

use serde::{Deserialize, Serialize};

use std::net::IpAddr;

use crate::config::{Config, IfAddr, MacAddr, Prefix};

pub use apply::apply_with;
pub use state::{links_with, routes_with};

/// `IFA_PROTO` value on addresses lvsbox adds from the config (`ip addr` shows `proto 76`).
pub const ADDR_PROTO: u8 = 76;
/// `rtm_protocol` of routes lvsbox adds from the config (`ip route` shows `proto 76`).
pub const ROUTE_PROTO: u8 = 76;
/// The main routing table.
pub const MAIN_TABLE: u8 = 254;

/// Why the netlink connection could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Opening the rtnetlink socket failed.
    #[error("cannot open rtnetlink socket: {0}")]
    Connect(#[from] std::io::Error),
    /// A dump request failed.
    #[error("{what}: {error}")]
    Netlink {
        /// What was being asked.
        what: String,
        /// The kernel's error.
        error: String,
    },
}

/// The result of one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// The kernel was changed.
    Done,
    /// Already as configured.
    Unchanged,
    /// Could not be done.
    Failed {
        /// Why, with the kernel's error.
        error: String,
    },
}

/// One step of [`apply`]: `eth0: address 192.0.2.10/24` and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// What the step is about, in words.
    pub what: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Done => write!(f, "{}: done", self.what),
            Outcome::Unchanged => write!(f, "{}: unchanged", self.what),
            Outcome::Failed { error } => write!(f, "{}: FAILED: {}", self.what, error),
        }
    }
}

/// What [`apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Every step, in order.
    pub items: Vec<Item>,
}

impl Report {
    fn push(&mut self, what: impl Into<String>, outcome: Outcome) {
        self.items.push(Item { what: what.into(), outcome });
    }
    fn done(&mut self, what: impl Into<String>) {
        self.push(what, Outcome::Done);
    }
    fn unchanged(&mut self, what: impl Into<String>) {
        self.push(what, Outcome::Unchanged);
    }
    fn failed(&mut self, what: impl Into<String>, error: impl fmt::Display) {
        self.push(what, Outcome::Failed { error: error.to_string() });
    }
    /// The steps that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| matches!(i.outcome, Outcome::Failed { .. }))
    }
    /// The steps that changed something.
    pub fn changes(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.outcome == Outcome::Done)
    }
    /// Whether nothing failed.
    pub fn ok(&self) -> bool {
        self.failures().next().is_none()
    }
}

/// A link as the console shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    /// Kernel index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Link kind (`vlan`, `veth`, ...); `None` for plain hardware NICs and `lo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Current MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// MTU.
    pub mtu: u32,
    /// Administratively up.
    pub up: bool,
    /// Carrier present (`LOWER_UP`).
    pub carrier: bool,
    /// Operational state as the kernel names it (`up`, `down`, `lowerlayerdown`, ...).
    pub oper: String,
    /// Parent link of a VLAN (name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// VLAN id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<u16>,
    /// Addresses on the link.
    pub addresses: Vec<AddrState>,
}

/// An address on a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrState {
    /// Address and prefix.
    pub address: IfAddr,
    /// IPv4 label (`eth0:vip`) when it differs from the link name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Added by lvsbox from the config (carries [`ADDR_PROTO`]).
    pub owned: bool,
}

/// A route of the main table as the console shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteState {
    /// Destination prefix.
    pub destination: Prefix,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Output interface (name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Metric (priority).
    pub metric: u32,
    /// Added by lvsbox from the config (route protocol [`ROUTE_PROTO`]).
    pub owned: bool,
}

/// Opens an rtnetlink connection on the current tokio runtime.
pub fn connect() -> Result<rtnetlink::Handle, NetError> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Applies the network part of `cfg` (see the module docs). Never fails as a
/// whole: problems are items of the report. Must run inside a tokio runtime.
pub async fn apply(cfg: &Config) -> Report {
    match connect() {
        Ok(h) => apply_with(&h, cfg).await,
        Err(e) => {
            let mut r = Report::default();
            r.failed("netlink", e);
            r
        }
    }
}

/// Lists links and their addresses. Must run inside a tokio runtime.
pub async fn links() -> Result<Vec<LinkState>, NetError> {
    links_with(&connect()?).await
}

/// Lists the routes of the main table. Must run inside a tokio runtime.
pub async fn routes() -> Result<Vec<RouteState>, NetError> {
    routes_with(&connect()?).await
}

/// The kernel's error for a failed request, as `File exists (os error 17)`.
pub(crate) fn nl_error(e: &rtnetlink::Error) -> String {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io().to_string(),
        other => other.to_string(),
    }
}

/// The errno of a failed request, if the kernel sent one.
pub(crate) fn nl_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}
