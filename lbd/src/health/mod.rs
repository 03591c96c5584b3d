//! Health checking of real servers.
//!
//! - [`config`]: the `check` tables, `quorum`, `hysteresis`, `sorry_server`,
//!   `inhibit_on_failure`: reading, validation, resolution into [`config::Check`]s
//!   (one per distinct target and parameters, however many VIPs share it);
//! - [`fsm`]: the pure per-check state machine (rounds, retries, rise/fall);
//! - [`overlay`]: pure `config ⊕ health ⊕ overrides → desired`, quorum and
//!   sorry server;
//! - [`probe`]: the probes (TCP, HTTP/HTTPS, UDP, DNS, ICMP) on non-blocking sockets;
//! - [`engine`]: the checks' own thread and tokio runtime, bounded concurrency;
//! - [`overrides`]: the operator's disable/drain, persisted next to the config.

pub mod config;
pub mod engine;
pub mod fsm;
pub mod md5;
pub mod overlay;
pub mod overrides;
pub mod probe;
pub mod re;
pub mod tls;
