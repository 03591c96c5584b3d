//! lbd: the lvsbox daemon's library. The config model and the control
//! protocol live here and are shared by `init` and `console`.

pub mod config;
pub mod ctl;
pub mod initctl;
pub mod ipvs;
pub mod net;
pub mod paths;
pub mod sysctl;
