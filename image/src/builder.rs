//! `image build`: kernel from the pinned Debian package, static binaries,
//! initramfs, UKI, GPT disk (raw + qcow2), for each flavour.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

use crate::cpio::{Node, Tree};
use crate::debian;
use crate::elf::Elf;
use crate::fsimg;
use crate::kconfig;
use crate::kmod::{self, ModuleIndex};
use crate::pins::Pins;
use crate::util::{human, run, sha256_file};
use crate::{Flavour, workspace_root};

/// Rust target of the appliance binaries.
pub const RUST_TARGET: &str = "x86_64-unknown-linux-gnu";
/// Budget for the production initramfs (compressed).
pub const INITRAMFS_BUDGET: u64 = 12 << 20;

/// How the initramfs is compressed (with the host tool, single-threaded so
/// the output depends only on the input and the tool's version).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `lz4 -l -12`: the legacy frame format, the only one the kernel's
    /// initramfs unpacker knows. The biggest of the three, but the fastest to
    /// unpack: the production default (the kernel unpacks the initramfs on
    /// the way to `/init`). Nothing may follow it in the same file (the
    /// legacy format has no end marker).
    Lz4,
    /// `zstd -19 -T1`: a little bigger than xz, but decompresses several
    /// times faster, which matters when the guest CPU is emulated (TCG).
    /// The debug flavour's default (tests append a plain cpio to it).
    Zstd,
    /// `xz --check=crc32 -9 -T1` (the kernel's xz decoder only knows CRC32).
    Xz,
}

impl Compression {
    pub fn ext(self) -> &'static str {
        match self {
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zst",
            Compression::Xz => "xz",
        }
    }

    /// Every extension an initramfs may have, most preferred first.
    pub const EXTS: [&'static str; 3] = ["lz4", "zst", "xz"];

    /// The default of a flavour: lz4 for production (boot time), zstd for
    /// debug (smaller, and a plain cpio may be appended to it).
    pub fn default_for(f: Flavour) -> Compression {
        match f {
            Flavour::Production => Compression::Lz4,
            Flavour::Debug => Compression::Zstd,
        }
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Artefact directory (default `target/lvsbox`).
    pub out: PathBuf,
    /// Downloaded and extracted Debian packages (shared between builds).
    pub cache: PathBuf,
    /// Cargo target directory for the static binaries (default `target/static`).
    pub static_target: PathBuf,
    pub flavours: Vec<Flavour>,
    /// Put this `lvsbox.toml` on the config partition (validated first).
    pub config: Option<PathBuf>,
    /// Replace the whole kernel command line (the debug flavour still adds its shell).
    pub cmdline: Option<String>,
    /// Append to the kernel command line.
    pub append: Option<String>,
    /// `None`: each flavour's default ([`Compression::default_for`]).
    pub compression: Option<Compression>,
    pub epoch: u64,
    /// Build the static binaries with cargo (false: reuse what is in `static_target`).
    pub build_binaries: bool,
    /// Reuse a cached compressed initramfs for an identical cpio.
    pub compression_cache: bool,
    /// The initramfs inside the UKI. `None`: the flavour's own. Measured
    /// under OVMF (README.md): the firmware reads the whole UKI in 0.14 s
    /// (14 MiB, zstd) to 0.35 s (19 MiB, lz4), while the kernel unpacks zstd
    /// about 0.7 s slower than lz4, so production's UKI keeps lz4.
    pub uki_compression: Option<Compression>,
    /// Print progress.
    pub verbose: bool,
}

impl BuildOptions {
    /// Defaults: both flavours into `target/lvsbox`, zstd, SOURCE_DATE_EPOCH from
    /// the environment or [`crate::SOURCE_DATE_EPOCH`].
    pub fn new() -> Self {
        let out = crate::default_out_dir();
        BuildOptions {
            cache: out.join("cache"),
            static_target: crate::target_dir().join("static"),
            out,
            flavours: Flavour::ALL.to_vec(),
            config: None,
            cmdline: None,
            append: None,
            compression: None,
            epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(crate::SOURCE_DATE_EPOCH),
            build_binaries: true,
            compression_cache: true,
            uki_compression: None,
            verbose: true,
        }
    }

    /// The command line of a flavour under these options.
    pub fn cmdline_for(&self, f: Flavour) -> String {
        let mut c = match (&self.cmdline, f) {
            (Some(base), Flavour::Production) => base.clone(),
            (Some(base), Flavour::Debug) => format!("{base} {}", crate::DEBUG_CMDLINE_EXTRA),
            (None, f) => f.default_cmdline(),
        };
        if let Some(extra) = &self.append {
            c.push(' ');
            c.push_str(extra);
        }
        c.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// One built file, for the summary and SHA256SUMS.
#[derive(Clone, Debug)]
pub struct Built {
    pub what: String,
    pub path: PathBuf,
    pub size: u64,
}

/// Result of a build.
#[derive(Clone, Debug)]
pub struct BuildReport {
    pub files: Vec<Built>,
    pub seconds: f64,
    pub warnings: Vec<String>,
}

fn say(opts: &BuildOptions, msg: &str) {
    if opts.verbose {
        eprintln!("{msg}");
    }
}

/// Validates a config file with lbd's parser, returning every error as text.
pub fn validate_config(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if let Err(errors) = lbd::config::parse_file(path) {
        let mut msg = format!("{} is not a valid lvsbox config ({} errors):", path.display(), errors.len());
        for e in errors {
            let _ = write!(msg, "\n  {e}");
        }
        bail!(msg);
    }
    Ok(text)
}

/// Builds everything `opts` asks for.
pub fn build(opts: &BuildOptions) -> Result<BuildReport> {
    let t0 = Instant::now();
    let mut warnings = Vec::new();
    std::fs::create_dir_all(&opts.out)?;
    let config_text = opts.config.as_deref().map(validate_config).transpose()?;
    let pins = Pins::get()?;
    let kver = &pins.kernel.kver;

    say(opts, &format!("kernel: {} {}", pins.kernel.package, pins.kernel.version));
    let kroot = debian::fetch_and_extract(&pins.kernel.pin(), &opts.cache)?;
    let vmlinuz_src = kroot.join(format!("boot/vmlinuz-{kver}"));
    let kernel = opts.out.join("vmlinuz");
    copy_if_changed(&vmlinuz_src, &kernel)?;
    // The lab's direct boots skip the bzImage's decompressor (see bzimage.rs).
    let vmlinux = opts.out.join("vmlinux");
    match crate::bzimage::extract_vmlinux(&kernel, &vmlinux) {
        Ok(true) => say(opts, "kernel: vmlinux extracted for direct boots (PVH entry)"),
        Ok(false) => warnings.push("the kernel has no PVH entry: direct boots use the bzImage".into()),
        Err(e) => warnings.push(format!("cannot extract vmlinux ({e:#}): direct boots use the bzImage")),
    }

    let moddir = kroot.join("lib/modules").join(kver);
    let t = Instant::now();
    let index = ModuleIndex::load(&moddir)?;
    let config_path = kroot.join(format!("boot/config-{kver}"));
    let kernel_config =
        std::fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?;
    kconfig::ensure_kernel_has_options(
        &format!("{} {} ({})", pins.kernel.package, pins.kernel.version, config_path.display()),
        &kernel_config,
        kconfig::IMAGE_ARCH,
        Some(&index),
    )?;
    let roots: Vec<&str> = kmod::BOOT_MODULES
        .iter()
        .chain(kmod::COLDPLUG_MODULES)
        .map(|(n, _)| n.split_whitespace().next().unwrap_or(n))
        .collect();
    let closure = index.closure(&roots)?;
    warnings.extend(closure.warnings.iter().cloned());
    for b in &closure.skipped_builtin {
        warnings.push(format!("module {b} is built into the kernel; nothing to ship"));
    }
    say(
        opts,
        &format!(
            "modules: {} of {} in the closure, {} uncompressed (indexed in {:.1}s)",
            closure.modules.len(),
            index.modules.len(),
            human(closure.total_size(&moddir)),
            t.elapsed().as_secs_f64()
        ),
    );

    let bins = static_binaries(opts)?;
    // What the UKI boots: the bzImage, or (when the vmlinux is at hand) the
    // same kernel behind lvsbox's loader, without the xz decompressor.
    let uki_kernel = if vmlinux.is_file() {
        let p = opts.out.join("vmlinuz.efiboot");
        let t = Instant::now();
        let loader = efiboot_loader(opts)?;
        let linux = crate::efiboot::make_linux(&std::fs::read(&kernel)?, &std::fs::read(&vmlinux)?, &loader)?;
        std::fs::write(&p, &linux)?;
        let (pages, stored, _, _) = crate::efiboot::describe(&linux)?;
        say(
            opts,
            &format!(
                "kernel: UKI kernel {} ({stored} of {pages} pages stored, loader {} bytes) in {:.1}s",
                human(linux.len() as u64),
                loader.len(),
                t.elapsed().as_secs_f64()
            ),
        );
        p
    } else {
        let _ = std::fs::remove_file(opts.out.join("vmlinuz.efiboot"));
        kernel.clone()
    };

    // The build id hashes what the UKI boots: with the loader, a new loader is a new build.
    let kernel_sha = sha256_file(&uki_kernel)?;
    let mut files =
        vec![Built { what: "kernel".into(), size: std::fs::metadata(&kernel)?.len(), path: kernel.clone() }];
    for &flavour in &opts.flavours {
        files.extend(build_flavour(
            opts,
            flavour,
            &pins,
            &uki_kernel,
            &kernel_sha,
            &moddir,
            &closure,
            &bins,
            config_text.as_deref(),
            &mut warnings,
        )?);
    }
    write_sums(&opts.out)?;
    Ok(BuildReport { files, seconds: t0.elapsed().as_secs_f64(), warnings })
}

fn copy_if_changed(src: &Path, dst: &Path) -> Result<()> {
    if dst.exists() && std::fs::read(dst)? == std::fs::read(src)? {
        return Ok(());
    }
    std::fs::copy(src, dst).with_context(|| format!("copying {}", src.display()))?;
    Ok(())
}

/// The appliance binaries, built static.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub init: PathBuf,
    pub lbd: PathBuf,
    pub console: PathBuf,
}

/// Builds `init`, `lbd` and `console` with crt-static for the GNU target into
/// a separate target dir, with paths remapped so the output does not depend
/// on where the workspace, the cargo home or the target dir are.
pub fn static_binaries(opts: &BuildOptions) -> Result<Binaries> {
    let dir = opts.static_target.join(RUST_TARGET).join("release");
    let bins = Binaries { init: dir.join("init"), lbd: dir.join("lbd"), console: dir.join("console") };
    if !opts.build_binaries {
        for p in [&bins.init, &bins.lbd, &bins.console] {
            ensure!(p.is_file(), "{} missing (build without --no-cargo first)", p.display());
        }
        return Ok(bins);
    }
    say(opts, &format!("binaries: cargo build (static, {RUST_TARGET}) into {}", opts.static_target.display()));
    let root = workspace_root();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"));
    // The last matching remap wins: the target dir (inside the workspace) goes last.
    let flags = [
        "-Ctarget-feature=+crt-static".to_string(),
        format!("--remap-path-prefix={}=/cargo", cargo_home.display()),
        format!("--remap-path-prefix={}=/lvsbox", root.display()),
        format!("--remap-path-prefix={}=/target", opts.static_target.display()),
    ];
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let t = Instant::now();
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            RUST_TARGET,
            "--bin",
            "init",
            "--bin",
            "lbd",
            "--bin",
            "console",
        ])
        .arg("--target-dir")
        .arg(&opts.static_target)
        .current_dir(&root)
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
        .env("SOURCE_DATE_EPOCH", opts.epoch.to_string())
        .status()
        .context("running cargo")?;
    ensure!(status.success(), "cargo build of the static binaries failed");
    say(opts, &format!("binaries: built in {:.1}s", t.elapsed().as_secs_f64()));
    for p in [&bins.init, &bins.lbd, &bins.console] {
        let data = std::fs::read(p)?;
        let elf = Elf::parse(&data)?;
        ensure!(elf.interpreter()?.is_none(), "{} is dynamically linked; the initramfs has no libc", p.display());
    }
    Ok(bins)
}

/// The loader of the UKI's kernel (image/efiboot): built with cargo, or
/// with `--no-cargo` taken from the last build in the static target dir.
fn efiboot_loader(opts: &BuildOptions) -> Result<Vec<u8>> {
    let dir = opts.static_target.join("efiboot");
    if opts.build_binaries {
        return crate::efiboot::build_loader(&workspace_root(), &dir, opts.epoch);
    }
    let elf = dir.join(RUST_TARGET).join("release/efiboot");
    let bytes =
        std::fs::read(&elf).with_context(|| format!("{} missing (build without --no-cargo first)", elf.display()))?;
    crate::efiboot::flatten_loader(&bytes)
}

/// `/etc/lvsbox-release` (os-release format; also the UKI's `.osrel`).
pub fn release_text(flavour: Flavour, kver: &str, kernel_pkg: &str, build_id: &str) -> String {
    let v = env!("CARGO_PKG_VERSION");
    format!(
        "NAME=lvsbox\nID=lvsbox\nVERSION=\"{v} ({flavour})\"\nVERSION_ID={v}\nPRETTY_NAME=\"lvsbox {v} ({flavour})\"\n\
         BUILD_ID={build_id}\nLVSBOX_PRODUCT=lvsbox\nLVSBOX_VERSION={v}\nLVSBOX_FLAVOUR={flavour}\n\
         LVSBOX_KERNEL={kver}\nLVSBOX_KERNEL_PACKAGE=\"{kernel_pkg}\"\nLVSBOX_BUILD_ID={build_id}\n"
    )
}

/// The initramfs tree (without `/etc/lvsbox-release`).
pub fn initramfs_tree(
    flavour: Flavour,
    kver: &str,
    moddir: &Path,
    closure: &kmod::Closure,
    bins: &Binaries,
    debug_roots: &[PathBuf],
) -> Result<Tree> {
    let mut t = Tree::new();
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    t.file("/init", 0o755, read(&bins.init)?)?;
    t.file("/bin/lbd", 0o755, read(&bins.lbd)?)?;
    t.file("/bin/console", 0o755, read(&bins.console)?)?;
    for d in ["/proc", "/sys", "/dev", "/run", "/cfg", "/var", "/etc"] {
        t.dir(d, 0o755)?;
    }
    t.dir("/tmp", 0o1777)?;
    t.add("/dev/console", Node::CharDev { perm: 0o600, major: 5, minor: 1 })?;
    let mroot = format!("/lib/modules/{kver}");
    for m in &closure.modules {
        t.file(&format!("{mroot}/{}", m.path), 0o644, read(&moddir.join(&m.path))?)?;
    }
    t.file(&format!("{mroot}/modules.dep"), 0o644, closure.modules_dep().into_bytes())?;
    t.file(&format!("{mroot}/modules.alias"), 0o644, closure.modules_alias().into_bytes())?;
    t.file(&format!("{mroot}/modules.softdep"), 0o644, closure.modules_softdep().into_bytes())?;
    t.file(&format!("{mroot}/modules.load"), 0o644, closure.modules_load(kmod::BOOT_MODULES).into_bytes())?;
    if let Ok(b) = std::fs::read(moddir.join("modules.builtin")) {
        t.file(&format!("{mroot}/modules.builtin"), 0o644, b)?;
    }
    if flavour == Flavour::Debug {
        add_debug_tools(&mut t, debug_roots)?;
    }
    Ok(t)
}

/// busybox with its applet links, and ipvsadm with its libraries and loader.
fn add_debug_tools(t: &mut Tree, roots: &[PathBuf]) -> Result<()> {
    let find = |path: &str| roots.iter().find_map(|r| debian::resolve_in_root(r, path));
    let busybox = find("/bin/busybox").context("busybox not found in busybox-static")?;
    t.file("/bin/busybox", 0o755, std::fs::read(&busybox)?)?;
    let list = run(Command::new(&busybox).arg("--list-full"), "busybox-static")?;
    for applet in String::from_utf8(list)?.lines() {
        let path = format!("/{}", applet.trim_start_matches('/'));
        if applet.is_empty() || path == "/linuxrc" || path.ends_with("/busybox") || t.get(&path).is_some() {
            continue;
        }
        t.symlink(&path, "/bin/busybox")?;
    }
    let ipvsadm = find("/sbin/ipvsadm").context("ipvsadm not found in the ipvsadm package")?;
    let data = std::fs::read(&ipvsadm)?;
    t.file("/sbin/ipvsadm", 0o755, data.clone())?;
    let interp = Elf::parse(&data)?.interpreter()?.context("ipvsadm has no interpreter")?;
    let mut queue = Elf::parse(&data)?.needed()?;
    let mut seen = BTreeSet::new();
    while let Some(soname) = queue.pop() {
        if !seen.insert(soname.clone()) {
            continue;
        }
        let dest = format!("/lib/x86_64-linux-gnu/{soname}");
        let src = ["/lib/x86_64-linux-gnu/", "/usr/lib/x86_64-linux-gnu/"]
            .iter()
            .find_map(|d| find(&format!("{d}{soname}")))
            .with_context(|| format!("shared library {soname} (needed by ipvsadm) is in no pinned debug package"))?;
        let lib = std::fs::read(&src)?;
        queue.extend(Elf::parse(&lib)?.needed()?);
        if t.get(&dest).is_none() {
            t.file(&dest, 0o755, lib)?;
        }
    }
    let loader = find(&interp).with_context(|| format!("loader {interp} not in libc6"))?;
    let base = interp.rsplit('/').next().unwrap_or(&interp);
    let in_libdir = format!("/lib/x86_64-linux-gnu/{base}");
    if t.get(&interp).is_none() {
        if t.get(&in_libdir).is_some() {
            // libc.so.6 needs the loader by soname too: ship it once.
            t.symlink(&interp, &in_libdir)?;
        } else {
            t.file(&interp, 0o755, std::fs::read(loader)?)?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn build_flavour(
    opts: &BuildOptions,
    flavour: Flavour,
    pins: &Pins,
    kernel: &Path,
    kernel_sha: &str,
    moddir: &Path,
    closure: &kmod::Closure,
    bins: &Binaries,
    config_text: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Built>> {
    let stem = flavour.stem();
    let out = &opts.out;
    let work = out.join("work").join(stem);
    crate::util::remove_dir_all_if_exists(&work)?;
    std::fs::create_dir_all(&work)?;
    say(opts, &format!("{flavour}: initramfs"));

    let debug_roots = if flavour == Flavour::Debug {
        pins.debug.iter().map(|p| debian::fetch_and_extract(p, &opts.cache)).collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let mut tree = initramfs_tree(flavour, &pins.kernel.kver, moddir, closure, bins, &debug_roots)?;
    let cmdline = opts.cmdline_for(flavour);

    // Build id: a hash of everything that goes into the boot image.
    let mut h = Sha256::new();
    h.update(kernel_sha.as_bytes());
    h.update(flavour.name().as_bytes());
    h.update(cmdline.as_bytes());
    tree.write_newc(opts.epoch, &mut HashWriter(&mut h))?;
    let build_id = crate::util::hex(&h.finalize()[..8]);
    let kernel_pkg = format!("{} {}", pins.kernel.package, pins.kernel.version);
    let release = release_text(flavour, &pins.kernel.kver, &kernel_pkg, &build_id);
    tree.file("/etc/lvsbox-release", 0o644, release.clone().into_bytes())?;

    let cpio = work.join("initramfs.cpio");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&cpio)?);
    let raw_size = tree.write_newc(opts.epoch, &mut f)?;
    drop(f);
    let compression = opts.compression.unwrap_or(Compression::default_for(flavour));
    let initramfs = out.join(format!("{stem}.cpio.{}", compression.ext()));
    for ext in Compression::EXTS {
        let _ = std::fs::remove_file(out.join(format!("{stem}.cpio.{ext}")));
    }
    compress_cached(opts, compression, &cpio, &initramfs)?;
    // The UKI may carry the same cpio compressed otherwise; it is kept as an
    // artefact (`<stem>.cpio.<ext>`, after the flavour's own in
    // `Compression::EXTS`, so direct boots still find the flavour's one).
    let uki_compression = opts.uki_compression.unwrap_or(compression);
    let uki_initramfs = if uki_compression == compression {
        None
    } else {
        let p = out.join(format!("{stem}.cpio.{}", uki_compression.ext()));
        compress_cached(opts, uki_compression, &cpio, &p)?;
        Some(p)
    };
    std::fs::remove_file(&cpio)?;
    let isize = std::fs::metadata(&initramfs)?.len();
    say(opts, &format!("{flavour}: initramfs {} compressed ({} cpio)", human(isize), human(raw_size)));
    if let Some(p) = &uki_initramfs {
        let usize = std::fs::metadata(p)?.len();
        say(opts, &format!("{flavour}: initramfs in the UKI {} ({})", human(usize), uki_compression.ext()));
    }
    if flavour == Flavour::Production && isize > INITRAMFS_BUDGET {
        warnings.push(format!("production initramfs is {} (budget {})", human(isize), human(INITRAMFS_BUDGET)));
    }

    let cmdline_file = out.join(format!("{stem}.cmdline"));
    std::fs::write(&cmdline_file, format!("{cmdline}\n"))?;
    std::fs::write(out.join(format!("{stem}.release")), &release)?;

    say(opts, &format!("{flavour}: UKI, ESP, config partition, disk"));
    let uki = out.join(format!("{stem}.efi"));
    let uki_initrd = uki_initramfs.as_deref().unwrap_or(&initramfs);
    fsimg::make_uki(Path::new(fsimg::EFI_STUB), release.as_bytes(), &cmdline, kernel, uki_initrd, &uki, &work)?;
    let layout = fsimg::firmware_layout(flavour.name())?;
    let esp = work.join("esp.img");
    let volume_id = u32::from_be_bytes(crate::gpt::Guid::derived(&format!("lvsbox:{flavour}:fat")).0[..4].try_into()?);
    fsimg::make_esp(&uki, &esp, layout.parts[0].size(), volume_id, layout.parts[0].first_lba, opts.epoch)?;
    let cfg = work.join("config.ext4");
    let files: Vec<(&str, &[u8])> = config_text.map(|t| (fsimg::CONFIG_FILE_NAME, t.as_bytes())).into_iter().collect();
    fsimg::make_ext4(
        &files,
        &cfg,
        layout.parts[1].size(),
        lbd::paths::CONFIG_PARTLABEL,
        &format!("lvsbox:{flavour}:config"),
        opts.epoch,
        &work,
    )?;
    let raw = out.join(format!("{stem}.img"));
    fsimg::assemble_disk(&layout, &[&esp, &cfg], &raw)?;
    let qcow2 = out.join(format!("{stem}.qcow2"));
    fsimg::to_qcow2(&raw, &qcow2)?;
    crate::util::remove_dir_all_if_exists(&work)?;
    let _ = std::fs::remove_dir(out.join("work"));

    let mut built = Vec::new();
    let mut outputs = vec![(format!("initramfs ({})", compression.ext()), initramfs)];
    if let Some(p) = uki_initramfs {
        outputs.push((format!("initramfs in the UKI ({})", uki_compression.ext()), p));
    }
    outputs.extend([("UKI".to_string(), uki), ("raw disk".into(), raw), ("qcow2".into(), qcow2)]);
    for (what, path) in outputs {
        built.push(Built { what: format!("{flavour} {what}"), size: std::fs::metadata(&path)?.len(), path });
    }
    Ok(built)
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compresses through a content-addressed cache (`cache/initramfs/<sha256 of
/// the cpio>.<ext>`): compressing is the slowest step of a warm build, and
/// the same input always gives the same output.
fn compress_cached(opts: &BuildOptions, compression: Compression, input: &Path, output: &Path) -> Result<()> {
    let dir = opts.cache.join("initramfs");
    std::fs::create_dir_all(&dir)?;
    let key = dir.join(format!("{}.cpio.{}", sha256_file(input)?, compression.ext()));
    if opts.compression_cache && key.is_file() {
        std::fs::copy(&key, output)?;
        return Ok(());
    }
    compress(compression, input, output)?;
    let tmp = key.with_extension("partial");
    std::fs::copy(output, &tmp)?;
    std::fs::rename(&tmp, &key)?;
    // Keep the cache small: entries older than a week go.
    for e in std::fs::read_dir(&dir)?.flatten() {
        let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if old.is_some_and(|age| age.as_secs() > 7 * 24 * 3600) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(())
}

/// Compresses `input` into `output` with the host tool (no cache).
pub fn compress(c: Compression, input: &Path, output: &Path) -> Result<()> {
    match c {
        Compression::Lz4 => {
            // -l: legacy frames (the kernel's unlz4); -q: no progress on stderr.
            run(Command::new("lz4").args(["-q", "-l", "-12", "-f"]).arg(input).arg(output), "lz4")?;
        }
        Compression::Zstd => {
            run(Command::new("zstd").args(["-q", "-19", "-T1", "-f"]).arg(input).arg("-o").arg(output), "zstd")?;
        }
        Compression::Xz => {
            let out = std::fs::File::create(output)?;
            let status = Command::new("xz")
                .args(["--check=crc32", "-9", "-T1", "-c"])
                .arg(input)
                .stdout(out)
                .status()
                .context("cannot run xz (install xz-utils)")?;
            ensure!(status.success(), "xz failed");
        }
    }
    Ok(())
}

/// Artefact file names that SHA256SUMS covers (those that exist).
pub fn artefact_names(out: &Path) -> Vec<String> {
    let mut names = vec!["vmlinuz".to_string(), "vmlinux".to_string(), "vmlinuz.efiboot".to_string()];
    for f in Flavour::ALL {
        for ext in ["cpio.lz4", "cpio.zst", "cpio.xz", "cmdline", "release", "efi", "img", "qcow2"] {
            names.push(format!("{}.{ext}", f.stem()));
        }
    }
    names.into_iter().filter(|n| out.join(n).is_file()).collect()
}

/// Writes `SHA256SUMS` for the artefacts in `out`; returns its text.
pub fn write_sums(out: &Path) -> Result<String> {
    let mut text = String::new();
    for n in artefact_names(out) {
        let _ = writeln!(text, "{}  {n}", sha256_file(&out.join(&n))?);
    }
    std::fs::write(out.join("SHA256SUMS"), &text)?;
    Ok(text)
}

/// Builds twice into `<out>/repro-a` and `<out>/repro-b` (sharing the package
/// cache, and the static binaries unless `rebuild_binaries`, which builds them
/// in two separate target dirs too) and compares every artefact's SHA256.
/// Returns the list of differing files (empty = reproducible).
pub fn verify_reproducible(base: &BuildOptions, rebuild_binaries: bool) -> Result<Vec<String>> {
    let mut sums = Vec::new();
    for side in ["a", "b"] {
        let mut o = base.clone();
        o.out = base.out.join(format!("repro-{side}"));
        // Build b compresses afresh, so compression is part of what is compared.
        o.compression_cache = side == "a";
        crate::util::remove_dir_all_if_exists(&o.out)?;
        if rebuild_binaries {
            o.static_target = base.static_target.with_file_name(format!("static-repro-{side}"));
            crate::util::remove_dir_all_if_exists(&o.static_target)?;
        }
        say(base, &format!("== reproducibility build {side} into {}", o.out.display()));
        let r = build(&o)?;
        say(base, &format!("== build {side}: {:.1}s", r.seconds));
        sums.push(std::fs::read_to_string(o.out.join("SHA256SUMS"))?);
    }
    let parse = |s: &str| -> Vec<(String, String)> {
        s.lines().filter_map(|l| l.split_once("  ")).map(|(h, n)| (n.to_string(), h.to_string())).collect()
    };
    let (a, b) = (parse(&sums[0]), parse(&sums[1]));
    ensure!(!a.is_empty() && a.len() == b.len(), "the two builds produced different file sets");
    let mut differ = Vec::new();
    for ((na, ha), (nb, hb)) in a.iter().zip(&b) {
        if na != nb || ha != hb {
            differ.push(na.clone());
        }
    }
    if differ.is_empty() {
        say(base, &sums[0]);
        for side in ["a", "b"] {
            crate::util::remove_dir_all_if_exists(&base.out.join(format!("repro-{side}")))?;
        }
    }
    Ok(differ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_options() {
        let mut o = BuildOptions::new();
        assert_eq!(o.cmdline_for(Flavour::Production), crate::BASE_CMDLINE);
        o.append = Some("lvsbox.debug=1".into());
        assert_eq!(o.cmdline_for(Flavour::Debug), format!("{} lvsbox.shell=ttyS1 lvsbox.debug=1", crate::BASE_CMDLINE));
        o.cmdline = Some("console=ttyS0  quiet".into());
        o.append = None;
        assert_eq!(o.cmdline_for(Flavour::Production), "console=ttyS0 quiet");
        assert_eq!(o.cmdline_for(Flavour::Debug), "console=ttyS0 quiet lvsbox.shell=ttyS1");
    }

    #[test]
    fn release_file_names_everything() {
        let r = release_text(Flavour::Debug, "6.1.0-56-amd64", "linux-image-6.1.0-56-amd64 6.1.192-2", "0123abcd");
        for want in
            ["NAME=lvsbox", "LVSBOX_FLAVOUR=debug", "LVSBOX_KERNEL=6.1.0-56-amd64", "BUILD_ID=0123abcd", "VERSION_ID="]
        {
            assert!(r.contains(want), "{want} missing from {r}");
        }
        assert!(r.lines().all(|l| l.split_once('=').is_some()));
    }

    #[test]
    fn invalid_config_is_refused_with_every_error() {
        let dir = std::env::temp_dir().join(format!("lvsbox-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.toml");
        std::fs::write(&p, "[system]\nhostname = 12\n[[services]]\nbogus = true\n").unwrap();
        let err = validate_config(&p).unwrap_err().to_string();
        assert!(err.contains("not a valid lvsbox config"), "{err}");
        assert!(err.contains("bad.toml:"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
