//! `image`: builds and boots the lvsbox firmware. See `image --help`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use image::builder::{self, BuildOptions, Compression};
use image::qemu::{Nic, QemuCmd, Serial};
use image::util::human;
use image::{Artefacts, Flavour, fsimg};

#[derive(Parser)]
#[command(name = "image", about = "Build and boot the lvsbox firmware", long_about = LONG_ABOUT)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

const LONG_ABOUT: &str = "Build and boot the lvsbox firmware.

Artefacts go to target/lvsbox/ (or $CARGO_TARGET_DIR/lvsbox, or $LVSBOX_ARTEFACTS):
  vmlinuz                       kernel from the pinned Debian package (image/pins.toml)
  lvsbox.cpio.lz4               production initramfs      lvsbox-debug.cpio.zst  debug
  lvsbox.cpio.<ext>             with --uki-compress: the same cpio as the UKI carries it
  lvsbox.cmdline                kernel command line       lvsbox-debug.cmdline
  lvsbox.release                /etc/lvsbox-release       lvsbox-debug.release
  lvsbox.efi                    UKI (systemd stub)        lvsbox-debug.efi
  lvsbox.img / lvsbox.qcow2     GPT disk: ESP + lvsbox-config (ext4)
  lvsbox-debug.img / .qcow2
  SHA256SUMS                    hashes of all of the above
  cache/                        downloaded and extracted Debian packages";

#[derive(Clone, Copy, ValueEnum)]
enum FlavourArg {
    Production,
    Debug,
    All,
}

#[derive(Clone, Copy, ValueEnum)]
enum CompressArg {
    Lz4,
    Zstd,
    Xz,
}

#[derive(clap::Args, Clone)]
struct BuildArgs {
    /// Which flavour(s) to build.
    #[arg(long, value_enum, default_value = "all")]
    flavour: FlavourArg,
    /// Put this lvsbox.toml on the config partition of the disk images (validated first).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Replace the base kernel command line
    /// (default: "console=tty0 console=ttyS0,115200n8 quiet panic=10 cryptomgr.notests"; debug adds "lvsbox.shell=ttyS1").
    #[arg(long, value_name = "ARGS")]
    cmdline: Option<String>,
    /// Append to the kernel command line (e.g. "lvsbox.debug=1").
    #[arg(long, value_name = "ARGS")]
    append: Option<String>,
    /// Artefact directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Initramfs compression of every flavour built: lz4 (-l -12, the fastest to unpack), zstd (-19 -T1)
    /// or xz (--check=crc32 -9 -T1, the smallest). Default: lz4 for production, zstd for debug.
    #[arg(long, value_enum)]
    compress: Option<CompressArg>,
    /// Compression of the initramfs inside the UKI (default: the flavour's; lz4 booted as fast or faster
    /// under OVMF than a zstd UKI, README.md). When it differs, the UKI's copy is kept next to the
    /// flavour's own initramfs.
    #[arg(long, value_enum)]
    uki_compress: Option<CompressArg>,
    /// Timestamp of every file in the artefacts (default: $SOURCE_DATE_EPOCH or 1735689600).
    #[arg(long, value_name = "SECONDS")]
    source_date_epoch: Option<u64>,
    /// Do not run cargo: reuse the static binaries already in target/static.
    #[arg(long)]
    no_cargo: bool,
}

impl BuildArgs {
    fn options(&self) -> BuildOptions {
        let mut o = BuildOptions::new();
        if let Some(out) = &self.out {
            o.cache = out.join("cache");
            o.out = out.clone();
        }
        o.flavours = match self.flavour {
            FlavourArg::Production => vec![Flavour::Production],
            FlavourArg::Debug => vec![Flavour::Debug],
            FlavourArg::All => Flavour::ALL.to_vec(),
        };
        o.config = self.config.clone();
        o.cmdline = self.cmdline.clone();
        o.append = self.append.clone();
        let comp = |c: CompressArg| match c {
            CompressArg::Lz4 => Compression::Lz4,
            CompressArg::Zstd => Compression::Zstd,
            CompressArg::Xz => Compression::Xz,
        };
        o.compression = self.compress.map(comp);
        o.uki_compression = self.uki_compress.map(comp);
        if let Some(e) = self.source_date_epoch {
            o.epoch = e;
        }
        o.build_binaries = !self.no_cargo;
        o
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the firmware: kernel, static binaries, initramfs, UKI, GPT disk (raw + qcow2), both flavours.
    Build(BuildArgs),
    /// Boot the built firmware under QEMU with the serial console on this terminal (Ctrl-A X quits).
    Run {
        /// Boot the debug flavour; its root shell (ttyS1) is exposed on a unix socket (path printed).
        #[arg(long)]
        debug: bool,
        /// Boot with -kernel/-initrd/-append instead of UEFI firmware + disk (faster).
        #[arg(long)]
        direct: bool,
        /// Boot with this lvsbox.toml on the config partition (validated first; refused if invalid).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Attach a virtio-net NIC to an existing tap device (repeatable). Without any, one user-mode NIC.
        #[arg(long, value_name = "NAME[,MAC]")]
        tap: Vec<String>,
        /// No NIC at all.
        #[arg(long, conflicts_with = "tap")]
        no_net: bool,
        /// Use KVM instead of TCG (real hardware only: nested KVM hangs).
        #[arg(long)]
        kvm: bool,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 1024)]
        memory: u32,
        /// Guest vCPUs.
        #[arg(long, default_value_t = 1)]
        smp: u32,
        /// Extra kernel arguments (with --direct only).
        #[arg(long, value_name = "ARGS", requires = "direct")]
        append: Option<String>,
        /// Artefact directory.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print the QEMU command instead of running it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write a small raw GPT disk whose ext4 partition `lvsbox-config` holds FILE as lvsbox.toml (validated first).
    ConfigDisk {
        /// The lvsbox.toml to put on it.
        file: PathBuf,
        /// The raw disk image to write.
        out: PathBuf,
    },
    /// Build twice into two directories and compare every artefact's SHA256 (exit 1 if any differ).
    VerifyReproducible {
        #[command(flatten)]
        build: BuildArgs,
        /// Also build the static binaries twice, in two separate cargo target dirs (slow).
        #[arg(long)]
        rebuild_binaries: bool,
    },
    /// Print the Buildroot kernel config fragment generated from image/kernel-options.txt
    /// (buildroot/board/lvsbox/linux-ARCH.fragment must equal it; a test checks).
    KernelFragment {
        /// Target architecture: x86_64 or aarch64.
        #[arg(long, default_value = "x86_64")]
        arch: String,
    },
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Build(args) => {
            let report = builder::build(&args.options())?;
            println!("{:<40} {:>12}  path", "artefact", "size");
            for f in &report.files {
                println!("{:<40} {:>12}  {}", f.what, human(f.size), f.path.display());
            }
            for w in &report.warnings {
                println!("warning: {w}");
            }
            println!("build time: {:.1}s", report.seconds);
            Ok(())
        }
        Cmd::KernelFragment { arch } => {
            if !image::kconfig::ARCHES.contains(&arch.as_str()) {
                bail!("unknown arch {arch} (known: {})", image::kconfig::ARCHES.join(", "));
            }
            print!("{}", image::kconfig::fragment(&image::kconfig::options()?, &arch));
            Ok(())
        }
        Cmd::ConfigDisk { file, out } => {
            let text = builder::validate_config(&file)?;
            image::config_disk(&text, &out)?;
            println!("{}: {}", out.display(), human(std::fs::metadata(&out)?.len()));
            Ok(())
        }
        Cmd::VerifyReproducible { build, rebuild_binaries } => {
            let differ = builder::verify_reproducible(&build.options(), rebuild_binaries)?;
            if differ.is_empty() {
                println!("reproducible: both builds are byte-identical");
                Ok(())
            } else {
                bail!("NOT reproducible: {} differ (builds kept in repro-a/ and repro-b/)", differ.join(", "))
            }
        }
        Cmd::Run { debug, direct, config, tap, no_net, kvm, memory, smp, append, out, dry_run } => {
            let dir = out.unwrap_or_else(image::default_out_dir);
            let arts = Artefacts::locate_in(&dir)?;
            let flavour = image::qemu::flavour_of(debug);
            let a = arts.get(flavour)?;
            let config_text = config.as_deref().map(builder::validate_config).transpose()?;
            remove_stale_run_dirs(&dir);
            let scratch = dir.join(format!("run-{}", std::process::id()));
            std::fs::create_dir_all(&scratch)?;
            let result = run_guest(
                &arts,
                a,
                &scratch,
                config_text.as_deref(),
                direct,
                &tap,
                no_net,
                kvm,
                memory,
                smp,
                append,
                dry_run,
            );
            image::util::remove_dir_all_if_exists(&scratch)?;
            result
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_guest(
    arts: &Artefacts,
    a: &image::FlavourArtefacts,
    scratch: &std::path::Path,
    config: Option<&str>,
    direct: bool,
    taps: &[String],
    no_net: bool,
    kvm: bool,
    memory: u32,
    smp: u32,
    append: Option<String>,
    dry_run: bool,
) -> Result<()> {
    let mut q = if direct {
        let mut q = QemuCmd::direct_flavour(arts.direct_kernel(), a);
        if let Some(text) = config {
            let disk = scratch.join("config.img");
            image::config_disk(text, &disk)?;
            q = q.drive(&disk, "raw");
        }
        if let Some(extra) = &append {
            q = q.append(extra)?;
        }
        q
    } else if let Some(text) = config {
        // A private copy of the disk with a fresh config partition.
        let disk = scratch.join("disk.img");
        image::util::copy_sparse(&a.raw, &disk)?;
        let part = scratch.join("config.ext4");
        let size = {
            let mut f = std::fs::File::open(&disk)?;
            image::gpt::read(&mut f)?
                .into_iter()
                .find(|p| p.name == lbd::paths::CONFIG_PARTLABEL)
                .context("the disk has no lvsbox-config partition")?
                .size()
        };
        fsimg::make_ext4(
            &[(fsimg::CONFIG_FILE_NAME, text.as_bytes())],
            &part,
            size,
            lbd::paths::CONFIG_PARTLABEL,
            "lvsbox:run:config",
            image::SOURCE_DATE_EPOCH,
            scratch,
        )?;
        fsimg::replace_partition(&disk, lbd::paths::CONFIG_PARTLABEL, &part)?;
        let vars = scratch.join("OVMF_VARS.fd");
        image::qemu::copy_ovmf_vars(&vars)?;
        QemuCmd::uefi(&disk, "raw", &vars)
    } else {
        image::qemu::uefi_flavour(a, scratch)?
    };
    q = q.kvm(kvm).memory(memory).smp(smp).serial(Serial::Stdio);
    if a.flavour == Flavour::Debug {
        let sock = scratch.join("ttyS1.sock");
        eprintln!("debug shell (ttyS1) on unix socket {}", sock.display());
        eprintln!("  connect with: socat -,raw,echo=0 UNIX-CONNECT:{}", sock.display());
        q = q.serial(Serial::Unix(sock));
    }
    if !no_net {
        if taps.is_empty() {
            q = q.nic(Nic::user());
        }
        for t in taps {
            q = q.nic(Nic::parse_tap(t)?);
        }
    }
    if dry_run {
        let args: Vec<String> = q.args().iter().map(|a| shell_quote(&a.to_string_lossy())).collect();
        println!("{} {}", q.binary.display(), args.join(" "));
        return Ok(());
    }
    eprintln!(
        "booting {} ({}, {}); Ctrl-A X quits, Ctrl-A C toggles the QEMU monitor",
        a.flavour,
        if direct { "direct kernel boot" } else { "UEFI disk boot" },
        if kvm { "KVM" } else { "TCG" }
    );
    let status = q.command().status().context("cannot run qemu-system-x86_64 (install qemu-system-x86)")?;
    if !status.success() {
        bail!("qemu exited with {status}");
    }
    Ok(())
}

fn shell_quote(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=,:@+".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Removes `run-<pid>` scratch dirs left by `image run` processes that no longer exist.
fn remove_stale_run_dirs(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(pid) = name.strip_prefix("run-").and_then(|p| p.parse::<u32>().ok())
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
