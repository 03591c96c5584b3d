//! lbd: the lvsbox daemon's library. The config model and the control
//! protocol live here and are shared by `init` and `console`.

pub mod config;
pub mod ctl;
pub mod daemon;
pub mod fwmark;
pub mod health;
pub mod import;
pub mod initctl;
pub mod ipvs;
pub mod ipvsadm;
pub mod kernel;
pub mod logring;
pub mod net;
pub mod nft;
pub mod paths;
pub mod reconcile;
pub mod store;
pub mod sysctl;
pub mod vrrp;
pub mod worker;
