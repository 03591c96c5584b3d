//! IPVS over generic netlink: kernel-facing types, the wire codec (sans-IO)
//! and a blocking client.

pub mod codec;
pub mod types;

pub use types::*;
