//! lvsbox console: the TUI operators use on a serial line or VM console.
//!
//! `app` is the pure state machine (`App::handle(Event) -> Vec<Effect>`),
//! `ui::draw` renders it, `exec` performs effects against lbd and init, and
//! `main.rs` owns the tty.

pub mod app;
pub mod diff;
pub mod exec;
pub mod forms;
pub mod model;
pub mod password;
pub mod sysnet;
pub mod ui;
