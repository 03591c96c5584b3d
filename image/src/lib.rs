//! Builds and boots the lvsbox firmware.
//!
//! The `image` binary (`cargo run --release -p image -- build|run|verify-reproducible`)
//! is a thin CLI over this library; the end-to-end test harness uses the
//! library directly:
//!
//! * [`Artefacts::locate`] finds what `image build` produced (kernel,
//!   initramfs and UKI per flavour, disk images, default command lines).
//! * [`config_disk`] writes a small GPT disk whose single ext4 partition
//!   (`PARTLABEL=lvsbox-config`) holds `lvsbox.toml`, without root or loop mounts.
//! * [`qemu::QemuCmd`] builds a `qemu-system-x86_64` [`std::process::Command`]
//!   (direct kernel boot or UEFI disk boot, TCG unless asked otherwise, NICs on
//!   taps, serial ports on unix sockets, monitor/QMP sockets). Spawning and
//!   process management stay with the caller.
//!
//! Artefacts live in `target/lvsbox/` under the workspace (or
//! `$CARGO_TARGET_DIR/lvsbox`, or `$LVSBOX_ARTEFACTS`); see [`Artefacts`].

pub mod builder;
pub mod bzimage;
pub mod cpio;
pub mod debian;
pub mod efiboot;
pub mod elf;
pub mod fsimg;
pub mod gpt;
pub mod kconfig;
pub mod kmod;
pub mod pe;
pub mod pins;
pub mod qemu;
pub mod util;

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub use fsimg::{config_disk, config_disk_with};

/// Default SOURCE_DATE_EPOCH of every build (2025-01-01T00:00:00Z): all
/// timestamps in the artefacts. Overridable with `--source-date-epoch` or the
/// `SOURCE_DATE_EPOCH` environment variable.
pub const SOURCE_DATE_EPOCH: u64 = 1_735_689_600;

/// The kernel command line every flavour starts from.
///
/// `cryptomgr.notests` skips the crypto API's run-time self-tests of every
/// algorithm as it registers (upstream's default: Debian's kernel turns them
/// on). Under TCG they were the biggest single cost between kernel start and
/// `/init` (the instructions executed there halved); on a box they guard
/// implementations the appliance barely uses (module signatures, ext4's
/// crc32c). `fips=1` runs them regardless.
pub const BASE_CMDLINE: &str = "console=tty0 console=ttyS0,115200n8 quiet panic=10 cryptomgr.notests";
/// What the debug flavour adds: init runs a root shell on the second serial port.
pub const DEBUG_CMDLINE_EXTRA: &str = "lvsbox.shell=ttyS1";

/// The two builds of the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flavour {
    /// What ships: no shell.
    Production,
    /// Plus busybox (a root shell on ttyS1) and ipvsadm.
    Debug,
}

impl Flavour {
    pub const ALL: [Flavour; 2] = [Flavour::Production, Flavour::Debug];

    /// File name stem of this flavour's artefacts: `lvsbox` or `lvsbox-debug`.
    pub fn stem(self) -> &'static str {
        match self {
            Flavour::Production => "lvsbox",
            Flavour::Debug => "lvsbox-debug",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flavour::Production => "production",
            Flavour::Debug => "debug",
        }
    }

    /// The default kernel command line of this flavour.
    pub fn default_cmdline(self) -> String {
        match self {
            Flavour::Production => BASE_CMDLINE.to_string(),
            Flavour::Debug => format!("{BASE_CMDLINE} {DEBUG_CMDLINE_EXTRA}"),
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Flavour {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "production" | "prod" => Ok(Flavour::Production),
            "debug" => Ok(Flavour::Debug),
            _ => bail!("unknown flavour {s} (production or debug)"),
        }
    }
}

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the current
/// directory, as cargo reads it) or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() { d } else { std::env::current_dir().map(|c| c.join(&d)).unwrap_or(d) }
        }
        _ => workspace_root().join("target"),
    }
}

/// Where the artefacts go: `$LVSBOX_ARTEFACTS` or `<target>/lvsbox`.
pub fn default_out_dir() -> PathBuf {
    match std::env::var_os("LVSBOX_ARTEFACTS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => target_dir().join("lvsbox"),
    }
}

/// One flavour's artefacts.
#[derive(Clone, Debug)]
pub struct FlavourArtefacts {
    pub flavour: Flavour,
    /// The compressed initramfs (`<stem>.cpio.lz4`, `.cpio.zst` or `.cpio.xz`).
    pub initramfs: PathBuf,
    /// The kernel command line baked into the UKI (also the default for direct boot).
    pub cmdline: String,
    /// The unified kernel image (`<stem>.efi`).
    pub uki: PathBuf,
    /// The raw GPT disk (`<stem>.img`): ESP + config partition.
    pub raw: PathBuf,
    /// The same disk as qcow2 (`<stem>.qcow2`).
    pub qcow2: PathBuf,
}

/// What `image build` produced.
#[derive(Clone, Debug)]
pub struct Artefacts {
    /// The artefact directory.
    pub dir: PathBuf,
    /// The kernel (`vmlinuz`), shared by both flavours.
    pub kernel: PathBuf,
    /// The same kernel uncompressed (`vmlinux`, booted through its PVH entry),
    /// when the build could extract it: see [`Artefacts::direct_kernel`].
    pub vmlinux: Option<PathBuf>,
    pub production: Option<FlavourArtefacts>,
    pub debug: Option<FlavourArtefacts>,
}

impl Artefacts {
    /// Finds the artefacts in [`default_out_dir`].
    pub fn locate() -> Result<Artefacts> {
        Self::locate_in(&default_out_dir())
    }

    /// Finds the artefacts in `dir`; fails (saying how to build them) when the
    /// kernel or both flavours are missing.
    pub fn locate_in(dir: &Path) -> Result<Artefacts> {
        let hint = "run `cargo run --release -p image -- build` first";
        let kernel = dir.join("vmlinuz");
        if !kernel.is_file() {
            bail!("no firmware built in {} ({hint})", dir.display());
        }
        let flavour = |f: Flavour| -> Result<Option<FlavourArtefacts>> {
            let stem = f.stem();
            let cmdline_file = dir.join(format!("{stem}.cmdline"));
            if !cmdline_file.is_file() {
                return Ok(None);
            }
            let initramfs = crate::builder::Compression::EXTS
                .iter()
                .map(|ext| dir.join(format!("{stem}.cpio.{ext}")))
                .find(|p| p.is_file())
                .with_context(|| format!("{stem}: initramfs missing in {} ({hint})", dir.display()))?;
            let a = FlavourArtefacts {
                flavour: f,
                initramfs,
                cmdline: std::fs::read_to_string(&cmdline_file)?.trim().to_string(),
                uki: dir.join(format!("{stem}.efi")),
                raw: dir.join(format!("{stem}.img")),
                qcow2: dir.join(format!("{stem}.qcow2")),
            };
            for p in [&a.uki, &a.raw, &a.qcow2] {
                if !p.is_file() {
                    bail!("{} is missing ({hint})", p.display());
                }
            }
            Ok(Some(a))
        };
        let a = Artefacts {
            dir: dir.to_path_buf(),
            vmlinux: Some(dir.join("vmlinux")).filter(|p| p.is_file()),
            kernel,
            production: flavour(Flavour::Production)?,
            debug: flavour(Flavour::Debug)?,
        };
        if a.production.is_none() && a.debug.is_none() {
            bail!("no flavour built in {} ({hint})", dir.display());
        }
        Ok(a)
    }

    /// The kernel for `-kernel` (direct boots in the lab): the uncompressed
    /// `vmlinux` through its PVH entry when the build extracted it (the
    /// bzImage's decompressor costs seconds under TCG, see [`bzimage`]),
    /// else `vmlinuz`. `LVSBOX_DIRECT_KERNEL=bzimage` forces `vmlinuz` (to
    /// measure the difference).
    pub fn direct_kernel(&self) -> &Path {
        let forced = std::env::var("LVSBOX_DIRECT_KERNEL").is_ok_and(|v| v == "bzimage");
        match &self.vmlinux {
            Some(v) if !forced => v,
            _ => &self.kernel,
        }
    }

    /// One flavour's artefacts, or an error saying how to build it.
    pub fn get(&self, f: Flavour) -> Result<&FlavourArtefacts> {
        match f {
            Flavour::Production => self.production.as_ref(),
            Flavour::Debug => self.debug.as_ref(),
        }
        .with_context(|| {
            format!("the {f} flavour is not built (run `cargo run --release -p image -- build --flavour {f}`)")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavours_and_cmdlines() {
        assert_eq!(
            Flavour::Production.default_cmdline(),
            "console=tty0 console=ttyS0,115200n8 quiet panic=10 cryptomgr.notests"
        );
        assert!(Flavour::Debug.default_cmdline().ends_with(" lvsbox.shell=ttyS1"));
        assert!(!Flavour::Production.default_cmdline().contains("lvsbox.shell"));
        assert_eq!("debug".parse::<Flavour>().unwrap(), Flavour::Debug);
        assert!("nope".parse::<Flavour>().is_err());
        assert_ne!(Flavour::Production.stem(), Flavour::Debug.stem());
    }

    #[test]
    fn locate_explains_what_is_missing() {
        let dir = std::env::temp_dir().join(format!("lvsbox-locate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = Artefacts::locate_in(&dir).unwrap_err().to_string();
        assert!(err.contains("image -- build"), "{err}");
        std::fs::write(dir.join("vmlinuz"), b"k").unwrap();
        assert!(Artefacts::locate_in(&dir).is_err());
        for ext in ["cmdline", "cpio.zst", "efi", "img", "qcow2"] {
            std::fs::write(dir.join(format!("lvsbox-debug.{ext}")), b"console=ttyS0 \n").unwrap();
        }
        let a = Artefacts::locate_in(&dir).unwrap();
        assert!(a.production.is_none());
        assert_eq!(a.get(Flavour::Debug).unwrap().cmdline, "console=ttyS0");
        assert!(a.get(Flavour::Production).unwrap_err().to_string().contains("--flavour production"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
