//! VRRP (v2 and v3, IPv4 and IPv6) for lvsbox directors: two boxes share the
//! VIPs, the backup takes them over when the master dies, and IPVS connection
//! sync follows the VRRP state so established connections survive.
//!
//! - [`packet`]: the sans-IO codec;
//! - [`fsm`]: the pure state machine (events in, actions out);
//! - [`config`]: the `[vrrp]` config section and its validation;
//! - [`net`]: sockets, GARP/NA, addresses and link state (Linux, tokio);
//! - [`engine`]: the task that joins them, run on its own thread.

pub mod config;
pub mod engine;
pub mod fsm;
pub mod net;
pub mod packet;
