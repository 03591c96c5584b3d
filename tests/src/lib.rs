//! lvsbox end-to-end harness: labs of network namespaces on the host, QEMU
//! guests booted from our image, real servers, clients and peers.

pub mod guest;
pub mod http;
pub mod lab;
pub mod peer;
pub mod topo;
pub mod tty;
pub mod wire;

use std::path::PathBuf;

use anyhow::{Result, bail};

/// Path of a binary built from this workspace (next to the test executable).
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    for dir in exe.ancestors().skip(1).take(3) {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("{name} not found near {}; build it with `cargo build -p tests --bins`", exe.display())
}
