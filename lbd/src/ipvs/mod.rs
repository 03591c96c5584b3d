//! IPVS over generic netlink: kernel-facing types, the wire codec (sans-IO)
//! and a blocking client.

pub mod client;
pub mod codec;
pub mod types;

pub use client::{BatchLimits, Ipvs, IpvsError, Op};
pub use types::*;
