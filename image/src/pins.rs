//! The Debian packages the firmware is made from, pinned in `image/pins.toml`
//! (compiled in, so the builder and the docs read the same file).

use anyhow::{Context, Result};
use serde::Deserialize;

/// The pin file's text.
pub const PINS_TOML: &str = include_str!("../pins.toml");

/// One pinned Debian package.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Pin {
    pub package: String,
    pub version: String,
    pub sha256: String,
}

/// The kernel pin: a package plus its release string.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct KernelPin {
    pub package: String,
    pub version: String,
    pub sha256: String,
    /// `uname -r` of the kernel, e.g. `6.1.0-56-amd64`.
    pub kver: String,
}

impl KernelPin {
    pub fn pin(&self) -> Pin {
        Pin { package: self.package.clone(), version: self.version.clone(), sha256: self.sha256.clone() }
    }
}

/// Everything in `pins.toml`.
#[derive(Clone, Debug, Deserialize)]
pub struct Pins {
    pub kernel: KernelPin,
    /// Packages for the debug flavour (busybox, ipvsadm and its libraries).
    pub debug: Vec<Pin>,
}

impl Pins {
    /// The compiled-in pins.
    pub fn get() -> Result<Pins> {
        toml::from_str(PINS_TOML).context("image/pins.toml is malformed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_and_look_sane() {
        let p = Pins::get().unwrap();
        assert!(p.kernel.package.ends_with(&p.kernel.kver), "package name carries the kernel release");
        for pin in p.debug.iter().chain([&p.kernel.pin()]) {
            assert_eq!(pin.sha256.len(), 64, "{}", pin.package);
            assert!(pin.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(!pin.version.is_empty());
        }
        assert!(p.debug.iter().any(|d| d.package == "busybox-static"));
        assert!(p.debug.iter().any(|d| d.package == "ipvsadm"));
    }
}
