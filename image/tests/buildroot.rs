//! Keeps `buildroot/` (the BR2_EXTERNAL tree) honest without a Buildroot
//! checkout or network: the kernel options against `image/kernel-options.txt`
//! and Debian's kernel, the tree's structure as Buildroot reads it, the disk
//! layout and boot contract against the image crate, and the post-build and
//! post-image scripts run on synthetic inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use image::kconfig::{self, KernelOption};
use image::{fsimg, gpt, kmod};

fn root() -> PathBuf {
    image::workspace_root()
}

fn br() -> PathBuf {
    root().join("buildroot")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn opts() -> Vec<KernelOption> {
    kconfig::options().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lvsbox-br-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------- kernel options

/// The committed fragments are what the list generates, and (so, but said
/// explicitly) they set exactly the list's options with the list's values.
#[test]
fn kernel_fragments_are_the_option_list() {
    let opts = opts();
    for arch in kconfig::ARCHES {
        let path = br().join(format!("board/lvsbox/linux-{arch}.fragment"));
        let committed = read(&path);
        let generated = kconfig::fragment(&opts, arch);
        let first_diff = committed.lines().zip(generated.lines()).position(|(a, b)| a != b);
        assert!(
            committed == generated,
            "{} is stale (first difference at line {}): run `cargo run -p image -- kernel-fragment --arch {arch} > {}`",
            path.display(),
            first_diff.map_or_else(|| "end".to_string(), |i| (i + 1).to_string()),
            path.display()
        );
        let in_fragment = kconfig::parse_config(&committed);
        let in_list: BTreeMap<String, String> = opts
            .iter()
            .filter(|o| o.applies_to(arch))
            .map(|o| (o.name.clone(), if o.need == kconfig::Need::BuiltIn { "y" } else { "m" }.to_string()))
            .collect();
        assert_eq!(in_fragment, in_list, "{arch}: fragment and list differ");
    }
}

/// Every module kmod.rs ships is provided by exactly one listed option, and no
/// option names a module the image does not ship: the list is complete for
/// what `image` relies on.
#[test]
fn every_shipped_module_has_its_option() {
    let problems = module_coverage(&opts(), kmod::BOOT_MODULES, kmod::COLDPLUG_MODULES);
    assert!(problems.is_empty(), "image/kernel-options.txt vs image/src/kmod.rs:\n  {}", problems.join("\n  "));
}

fn module_coverage(opts: &[KernelOption], boot: &[(&str, &str)], coldplug: &[(&str, &str)]) -> Vec<String> {
    let shipped: BTreeSet<String> = boot
        .iter()
        .chain(coldplug)
        .map(|(spec, _)| kmod::normalise(spec.split_whitespace().next().unwrap_or(spec)))
        .collect();
    let mut providers: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for o in opts.iter().filter(|o| o.applies_to(kconfig::IMAGE_ARCH)) {
        for m in &o.modules {
            providers.entry(m.clone()).or_default().push(&o.name);
        }
    }
    let mut problems = Vec::new();
    for m in &shipped {
        match providers.get(m).map(Vec::len) {
            Some(1) => {}
            Some(_) => problems.push(format!("module {m} is named by several options: {:?}", providers[m])),
            None => problems.push(format!("module {m} (kmod.rs) is named by no option (add modules={m})")),
        }
    }
    for (m, by) in &providers {
        if !shipped.contains(m) {
            problems.push(format!("{by:?} names module {m}, which kmod.rs does not ship"));
        }
    }
    problems
}

#[test]
fn module_coverage_fails_on_a_missing_or_extra_module() {
    let opts = opts();
    let mut boot = kmod::BOOT_MODULES.to_vec();
    boot.push(("sch_fq", "a module nobody listed"));
    let p = module_coverage(&opts, &boot, kmod::COLDPLUG_MODULES);
    assert_eq!(p, ["module sch_fq (kmod.rs) is named by no option (add modules=sch_fq)"]);
    let boot: Vec<_> = kmod::BOOT_MODULES.iter().copied().filter(|(n, _)| *n != "ip_vs_mh").collect();
    let p = module_coverage(&opts, &boot, kmod::COLDPLUG_MODULES);
    assert_eq!(p, ["[\"CONFIG_IP_VS_MH\"] names module ip_vs_mh, which kmod.rs does not ship"]);
}

/// Debian's pinned kernel has every option (=y or =m, =y where required) and
/// the listed modules. Reads the extracted package from `$LVSBOX_KERNEL_ROOT`
/// or the image cache (`image build` leaves it there, and runs the same check
/// itself); without either there is nothing to read and the test says so.
#[test]
fn debian_kernel_has_every_option() {
    let pins = image::pins::Pins::get().unwrap();
    let kver = &pins.kernel.kver;
    let cached =
        image::default_out_dir().join("cache").join(format!("{}_{}", pins.kernel.package, pins.kernel.version));
    let kroot = std::env::var_os("LVSBOX_KERNEL_ROOT").map(PathBuf::from).unwrap_or(cached);
    let config = kroot.join(format!("boot/config-{kver}"));
    if !config.is_file() {
        eprintln!(
            "SKIPPED: {} not found (run `image build`, or set LVSBOX_KERNEL_ROOT to an extracted {}); \
             `image build` checks it anyway",
            config.display(),
            pins.kernel.package
        );
        return;
    }
    let text = read(&config);
    let parsed = kconfig::parse_config(&text);
    let problems = kconfig::check_config(&opts(), kconfig::IMAGE_ARCH, &parsed);
    assert!(problems.is_empty(), "{}:\n  {}", config.display(), problems.join("\n  "));
    let moddir = kroot.join("lib/modules").join(kver);
    if moddir.join("kernel").is_dir() {
        let index = kmod::ModuleIndex::load(&moddir).unwrap();
        let problems = kconfig::check_modules(&opts(), kconfig::IMAGE_ARCH, &parsed, &index);
        assert!(problems.is_empty(), "{}:\n  {}", moddir.display(), problems.join("\n  "));
    }
    // The same entry point `image build` uses.
    kconfig::ensure_kernel_has_options("debian", &text, kconfig::IMAGE_ARCH, None).unwrap();
    let broken = text.replace("CONFIG_IP_VS_FTP=m", "# CONFIG_IP_VS_FTP is not set");
    let err = kconfig::ensure_kernel_has_options("debian", &broken, kconfig::IMAGE_ARCH, None).unwrap_err();
    assert!(err.to_string().contains("CONFIG_IP_VS_FTP is n"), "{err}");
}

// ---------------------------------------------------------------- tree structure

/// What Buildroot reads of a BR2_EXTERNAL tree, checked as it reads it.
#[derive(Debug, Default)]
struct Tree {
    /// Symbols defined by `config X` in the tree's Config.in files.
    defined: BTreeSet<String>,
    /// Symbols the tree's Config.in files reference (depends on, select, if).
    referenced: BTreeSet<String>,
    /// Package directory names.
    packages: Vec<String>,
}

fn br2_symbols(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("BR2_") {
        let sym: String = text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        out.insert(sym);
    }
    out
}

/// Checks the tree at `dir`; returns it or every problem found.
fn check_tree(dir: &Path) -> Result<Tree, Vec<String>> {
    let mut problems = Vec::new();
    let mut tree = Tree::default();
    let desc = std::fs::read_to_string(dir.join("external.desc")).unwrap_or_default();
    let name = desc.lines().find_map(|l| l.strip_prefix("name:")).map(str::trim).unwrap_or_default().to_string();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
        problems.push(format!("external.desc: `name:` must be an upper-case identifier, got {name:?}"));
    }
    let path_var = format!("BR2_EXTERNAL_{name}_PATH");
    let mk = std::fs::read_to_string(dir.join("external.mk")).unwrap_or_default();
    if !mk.contains(&format!("include $(sort $(wildcard $({path_var})/package/*/*.mk))")) {
        problems.push(format!("external.mk must include $({path_var})/package/*/*.mk"));
    }
    let top = std::fs::read_to_string(dir.join("Config.in")).unwrap_or_default();
    let sourced: BTreeSet<String> = top
        .lines()
        .filter_map(|l| l.trim().strip_prefix("source "))
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect();
    for s in &sourced {
        match s.strip_prefix(&format!("${path_var}/")) {
            Some(rel) if dir.join(rel).is_file() => {}
            Some(rel) => problems.push(format!("Config.in sources {rel}, which does not exist")),
            None => problems.push(format!("Config.in sources {s}: paths must start with ${path_var}/")),
        }
    }
    let mut config_ins = vec![top.clone()];
    let mut pkgs: Vec<_> = std::fs::read_dir(dir.join("package"))
        .map(|rd| {
            rd.flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name().to_string_lossy().to_string()).collect()
        })
        .unwrap_or_default();
    pkgs.sort();
    if pkgs.is_empty() {
        problems.push("no package/* directories".into());
    }
    for pkg in &pkgs {
        let upper = pkg.to_uppercase().replace('-', "_");
        let cfg_path = dir.join("package").join(pkg).join("Config.in");
        let Ok(cfg) = std::fs::read_to_string(&cfg_path) else {
            problems.push(format!("package/{pkg}/Config.in missing"));
            continue;
        };
        if !sourced.contains(&format!("${path_var}/package/{pkg}/Config.in")) {
            problems.push(format!("package/{pkg}/Config.in is not sourced from the top Config.in"));
        }
        if !cfg.lines().any(|l| l.trim() == format!("config BR2_PACKAGE_{upper}")) {
            problems.push(format!("package/{pkg}/Config.in does not define BR2_PACKAGE_{upper}"));
        }
        config_ins.push(cfg.clone());
        let Ok(pmk) = std::fs::read_to_string(dir.join("package").join(pkg).join(format!("{pkg}.mk"))) else {
            problems.push(format!("package/{pkg}/{pkg}.mk missing"));
            continue;
        };
        check_package_mk(pkg, &upper, &pmk, &cfg, dir, &path_var, &mut problems);
    }
    for text in &config_ins {
        for line in text.lines().map(str::trim) {
            if let Some(sym) = line.strip_prefix("config ").or_else(|| line.strip_prefix("menuconfig ")) {
                tree.defined.insert(sym.trim().to_string());
            } else if !line.starts_with('#') && !line.starts_with("bool") && !line.starts_with("source") {
                tree.referenced.extend(br2_symbols(line.split('#').next().unwrap_or(line)));
            }
        }
    }
    tree.referenced.retain(|s| !tree.defined.contains(s));
    tree.packages = pkgs;
    if problems.is_empty() { Ok(tree) } else { Err(problems) }
}

/// A package's `.mk` as Buildroot's cargo infrastructure needs it.
fn check_package_mk(
    pkg: &str,
    upper: &str,
    mk: &str,
    cfg: &str,
    dir: &Path,
    path_var: &str,
    problems: &mut Vec<String>,
) {
    let vars: BTreeMap<String, String> = mk
        .lines()
        .filter_map(|l| l.split_once(" = ").or_else(|| l.split_once(" += ")))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    for v in ["VERSION", "SITE", "LICENSE"] {
        if !vars.contains_key(&format!("{upper}_{v}")) {
            problems.push(format!("{pkg}.mk: {upper}_{v} is not set"));
        }
    }
    let last = mk.lines().map(str::trim).rfind(|l| !l.is_empty() && !l.starts_with('#'));
    if last != Some("$(eval $(cargo-package))") {
        problems.push(format!("{pkg}.mk must end with $(eval $(cargo-package)), ends with {last:?}"));
    }
    // Only the cargo infrastructure's own variables (a typo is silently ignored by make).
    for k in vars.keys().filter(|k| k.starts_with(&format!("{upper}_CARGO_"))) {
        if !["CARGO_ENV", "CARGO_BUILD_OPTS", "CARGO_INSTALL_OPTS"].iter().any(|v| *k == format!("{upper}_{v}")) {
            problems.push(format!("{pkg}.mk: {k} is not a variable of Buildroot's cargo infrastructure"));
        }
    }
    // The manual's two lines for a cargo package's Config.in.
    for want in ["depends on BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS", "select BR2_PACKAGE_HOST_RUSTC"] {
        if !cfg.lines().any(|l| l.trim() == want) {
            problems.push(format!("package/{pkg}/Config.in lacks `{want}`"));
        }
    }
    // A local site must be a Cargo workspace with its lock file (--locked --offline).
    if vars.get(&format!("{upper}_SITE_METHOD")).map(String::as_str) == Some("local") {
        let site = vars.get(&format!("{upper}_SITE")).cloned().unwrap_or_default();
        match site.strip_prefix(&format!("$({path_var})")) {
            Some(rel) => {
                let p = dir.join(rel.trim_start_matches('/'));
                for f in ["Cargo.toml", "Cargo.lock"] {
                    if !p.join(f).is_file() {
                        problems.push(format!("{pkg}.mk: {upper}_SITE ({site}) has no {f}"));
                    }
                }
            }
            None => problems.push(format!("{pkg}.mk: a local {upper}_SITE must be under $({path_var})")),
        }
    }
}

fn defconfigs() -> Vec<(String, String)> {
    let mut out: Vec<_> = std::fs::read_dir(br().join("configs"))
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().to_string(), read(&e.path())))
        .collect();
    out.sort();
    out
}

/// `BR2_FOO=value` and `# BR2_FOO is not set` lines.
fn defconfig_symbols(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for l in text.lines().map(str::trim) {
        if let Some(sym) = l.strip_prefix("# ").and_then(|r| r.strip_suffix(" is not set")) {
            out.insert(sym.to_string(), "n".to_string());
        } else if l.starts_with("BR2_")
            && let Some((k, v)) = l.split_once('=')
        {
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

/// `upstream-symbols.txt`: the first column of its non-comment lines.
fn upstream_symbols(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Symbols used by the defconfigs or the tree that are neither defined in the
/// tree nor listed upstream, and listed upstream symbols nobody uses.
fn symbol_problems(tree: &Tree, defconfigs: &[(String, String)], upstream: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (name, text) in defconfigs {
        for sym in defconfig_symbols(text).keys() {
            used.insert(sym.clone());
            if !tree.defined.contains(sym) && !upstream.contains(sym) {
                problems.push(format!("{name}: {sym} is neither defined in buildroot/ nor in upstream-symbols.txt"));
            }
        }
    }
    for sym in &tree.referenced {
        used.insert(sym.clone());
        if !upstream.contains(sym) {
            problems
                .push(format!("package Config.in: {sym} is neither defined in buildroot/ nor in upstream-symbols.txt"));
        }
    }
    for sym in upstream {
        if tree.defined.contains(sym) {
            problems.push(format!("upstream-symbols.txt lists {sym}, which buildroot/ defines itself"));
        } else if !used.contains(sym) {
            problems.push(format!("upstream-symbols.txt lists {sym}, which nothing uses"));
        }
    }
    problems
}

#[test]
fn tree_is_what_buildroot_reads() {
    let tree = check_tree(&br()).unwrap_or_else(|p| panic!("buildroot/:\n  {}", p.join("\n  ")));
    assert_eq!(tree.packages, ["lvsbox"]);
    let upstream = upstream_symbols(&read(&br().join("upstream-symbols.txt")));
    let problems = symbol_problems(&tree, &defconfigs(), &upstream);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A copy of the tree with one thing broken must fail the checks.
#[test]
fn tree_checks_fail_on_broken_trees() {
    let copy = |name: &str| {
        let d = scratch(name);
        let status = Command::new("cp").arg("-a").arg(br()).arg(&d).status().unwrap();
        assert!(status.success());
        // The local SITE points at `..`: give the copy a workspace to find.
        for f in ["Cargo.toml", "Cargo.lock"] {
            std::fs::copy(root().join(f), d.join(f)).unwrap();
        }
        d
    };
    // A package whose Config.in nobody sources.
    let d = copy("unsourced");
    let t = d.join("buildroot");
    std::fs::create_dir_all(t.join("package/lvsbox-extra")).unwrap();
    std::fs::write(t.join("package/lvsbox-extra/Config.in"), "config BR2_PACKAGE_LVSBOX_EXTRA\n\tbool \"x\"\n")
        .unwrap();
    let p = check_tree(&t).unwrap_err();
    assert!(p.iter().any(|l| l == "package/lvsbox-extra/Config.in is not sourced from the top Config.in"), "{p:?}");
    assert!(p.iter().any(|l| l == "package/lvsbox-extra/lvsbox-extra.mk missing"), "{p:?}");
    std::fs::remove_dir_all(&d).unwrap();

    // A .mk without the cargo eval, with a misspelt cargo variable.
    let d = copy("mk");
    let mk = d.join("buildroot/package/lvsbox/lvsbox.mk");
    let text =
        read(&mk).replace("$(eval $(cargo-package))", "").replace("LVSBOX_CARGO_BUILD_OPTS", "LVSBOX_CARGO_BUILD_OPT");
    std::fs::write(&mk, text).unwrap();
    let p = check_tree(&d.join("buildroot")).unwrap_err();
    assert!(p.iter().any(|l| l.starts_with("lvsbox.mk must end with $(eval $(cargo-package))")), "{p:?}");
    assert!(p.iter().any(|l| l.contains("LVSBOX_CARGO_BUILD_OPT is not a variable")), "{p:?}");
    std::fs::remove_dir_all(&d).unwrap();

    // A defconfig naming a symbol that exists nowhere, and a stale upstream entry.
    let tree = check_tree(&br()).unwrap();
    let mut dc = defconfigs();
    dc[0].1.push_str("BR2_PACKAGE_LVSBOX_TYPO=y\n");
    let mut upstream = upstream_symbols(&read(&br().join("upstream-symbols.txt")));
    upstream.insert("BR2_PACKAGE_UNUSED".into());
    let p = symbol_problems(&tree, &dc, &upstream);
    assert!(
        p.iter().any(
            |l| l.ends_with("BR2_PACKAGE_LVSBOX_TYPO is neither defined in buildroot/ nor in upstream-symbols.txt")
        ),
        "{p:?}"
    );
    assert!(p.iter().any(|l| l == "upstream-symbols.txt lists BR2_PACKAGE_UNUSED, which nothing uses"), "{p:?}");
}

/// The defconfigs build what the issue asks: this tree's package, no shell,
/// a zstd initramfs the kernel can unpack, the kernel fragment of their arch,
/// Debian's upstream kernel release, scripts that exist.
#[test]
fn defconfigs_make_the_appliance() {
    let dcs = defconfigs();
    let names: Vec<&str> = dcs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["lvsbox_aarch64_defconfig", "lvsbox_x86_64_defconfig"]);
    let pins = image::pins::Pins::get().unwrap();
    let upstream_version = pins.kernel.version.split('-').next().unwrap().to_string();
    let series = upstream_version.split('.').take(2).collect::<Vec<_>>().join("_");
    for (name, text) in &dcs {
        let arch = name.trim_start_matches("lvsbox_").trim_end_matches("_defconfig");
        let s = defconfig_symbols(text);
        let want = [
            (format!("BR2_{arch}"), "y".to_string()),
            ("BR2_TOOLCHAIN_BUILDROOT_GLIBC".into(), "y".into()),
            ("BR2_KERNEL_HEADERS_AS_KERNEL".into(), "y".into()),
            (format!("BR2_PACKAGE_HOST_LINUX_HEADERS_CUSTOM_{series}"), "y".into()),
            ("BR2_INIT_NONE".into(), "y".into()),
            ("BR2_SYSTEM_BIN_SH_NONE".into(), "y".into()),
            ("BR2_PACKAGE_BUSYBOX".into(), "n".into()),
            ("BR2_PACKAGE_LVSBOX".into(), "y".into()),
            ("BR2_TARGET_ROOTFS_CPIO".into(), "y".into()),
            ("BR2_TARGET_ROOTFS_CPIO_ZSTD".into(), "y".into()),
            ("BR2_LINUX_KERNEL_CUSTOM_VERSION_VALUE".into(), format!("\"{upstream_version}\"")),
            (
                "BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES".into(),
                format!("\"$(BR2_EXTERNAL_LVSBOX_PATH)/board/lvsbox/linux-{arch}.fragment\""),
            ),
        ];
        for (k, v) in want {
            assert_eq!(s.get(&k), Some(&v), "{name}: {k}");
        }
        for (k, v) in &s {
            for part in v.trim_matches('"').split_whitespace() {
                if let Some(rel) = part.strip_prefix("$(BR2_EXTERNAL_LVSBOX_PATH)/") {
                    assert!(br().join(rel).is_file(), "{name}: {k} names {rel}, missing from buildroot/");
                }
            }
        }
    }
    // The zstd initramfs needs the kernel's zstd decompressor.
    assert!(opts().iter().any(|o| o.name == "CONFIG_RD_ZSTD" && o.arch.is_none()));
}

#[test]
fn package_builds_the_workspace_binaries() {
    let mk = read(&br().join("package/lvsbox/lvsbox.mk"));
    assert!(
        mk.contains(&format!("LVSBOX_VERSION = {}\n", env!("CARGO_PKG_VERSION"))),
        "version drifted from Cargo.toml"
    );
    for bin in ["init", "lbd", "console"] {
        assert!(root().join(bin).join("src/main.rs").is_file(), "{bin} is a workspace binary");
        assert!(mk.contains(&format!("--bin {bin}")), "LVSBOX_CARGO_BUILD_OPTS builds {bin}");
        assert!(
            mk.contains(&format!("$(LVSBOX_BIN_DIR)/{bin} $(TARGET_DIR)/usr/libexec/lvsbox/{bin}")),
            "installs {bin}"
        );
    }
    assert!(mk.contains("+crt-static"), "static like image/");
    assert!(!read(&root().join("Cargo.lock")).contains("source = \"git+"), "vendoring handles crates.io sources only");
}

// ---------------------------------------------------------------- layout and boot contract

/// `genimage.cfg.in` has the layout `image` writes: names, order, sizes, types.
#[test]
fn genimage_layout_is_the_image_layout() {
    let cfg = read(&br().join("board/lvsbox/genimage.cfg.in"));
    let blocks = genimage_blocks(&cfg);
    let layout = fsimg::firmware_layout("production").unwrap();
    let disk = &blocks["image lvsbox.img"];
    let parts: Vec<&str> = disk.iter().filter_map(|l| l.strip_prefix("partition ")?.strip_suffix(" {")).collect();
    let want: Vec<&str> = layout.parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(parts, want);
    assert_eq!(want, [fsimg::ESP_PARTLABEL, lbd::paths::CONFIG_PARTLABEL]);
    assert_eq!(value(disk, "size").map(mib), Some(layout.size), "disk size");
    assert_eq!(value(disk, "partition-table-type"), Some("\"gpt\""));
    assert_eq!(value(disk, "align").map(mib), Some(gpt::ALIGN));
    let types: Vec<&str> =
        disk.iter().filter_map(|l| l.strip_prefix("partition-type-uuid = ")).map(|v| v.trim_matches('"')).collect();
    assert_eq!(types, [gpt::Guid::ESP, gpt::Guid::LINUX_FS]);
    let images: Vec<&str> =
        disk.iter().filter_map(|l| l.strip_prefix("image = ")).map(|v| v.trim_matches('"')).collect();
    assert_eq!(images, ["esp.vfat", "config.ext4"]);
    assert_eq!(value(&blocks["image esp.vfat"], "size").map(mib), Some(fsimg::ESP_SIZE));
    assert_eq!(value(&blocks["image config.ext4"], "size").map(mib), Some(fsimg::CONFIG_SIZE));
    assert_eq!(
        value(&blocks["image config.ext4"], "label"),
        Some(format!("\"{}\"", lbd::paths::CONFIG_PARTLABEL)).as_deref()
    );
    assert!(blocks["image esp.vfat"].contains(&"file EFI/BOOT/@EFI_BOOT_FILE@ {".to_string()));
    let post_image = read(&br().join("board/lvsbox/post-image.sh"));
    assert!(post_image.contains("BOOT_FILE=BOOTX64.EFI"), "the fallback boot path image/ uses");
}

/// Lines of each top-level `image NAME { ... }` block, trimmed.
fn genimage_blocks(cfg: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    let mut depth = 0;
    for line in cfg.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if depth == 0 {
            if let Some(name) = line.strip_suffix(" {") {
                current = Some((name.to_string(), Vec::new()));
            }
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line.to_string());
        }
        depth += line.matches('{').count();
        depth -= line.matches('}').count();
        if depth == 0
            && let Some((name, lines)) = current.take()
        {
            out.insert(name, lines);
        }
    }
    out
}

fn value<'a>(lines: &'a [String], key: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| l.strip_prefix(&format!("{key} = ")))
}

fn mib(v: &str) -> u64 {
    v.strip_suffix('M').and_then(|n| n.parse::<u64>().ok()).map(|n| n << 20).unwrap_or_else(|| panic!("size {v}"))
}

#[test]
fn genimage_parser_sees_a_changed_size() {
    let cfg = read(&br().join("board/lvsbox/genimage.cfg.in")).replace("size = 64M", "size = 32M");
    let blocks = genimage_blocks(&cfg);
    assert_ne!(value(&blocks["image config.ext4"], "size").map(mib), Some(fsimg::CONFIG_SIZE));
}

/// modules.load, the command line and /etc/lvsbox-release agree with image/.
#[test]
fn boot_contract_is_the_image_contract() {
    let load: Vec<String> = read(&br().join("board/lvsbox/modules.load"))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let want: Vec<String> = kmod::BOOT_MODULES.iter().map(|(spec, _)| spec.to_string()).collect();
    assert_eq!(load, want, "board/lvsbox/modules.load must be kmod::BOOT_MODULES, in order");
    assert_eq!(read(&br().join("board/lvsbox/cmdline-x86_64.txt")).trim(), image::BASE_CMDLINE);
    let aarch64 = read(&br().join("board/lvsbox/cmdline-aarch64.txt"));
    assert_eq!(aarch64.trim(), image::BASE_CMDLINE.replace("ttyS0,115200n8", "ttyAMA0,115200"));
    let release = image::builder::release_text(image::Flavour::Production, "k", "p", "b");
    let keys = |t: &str| -> BTreeSet<String> {
        t.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, _)| k.to_string())
            .filter(|k| k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .collect()
    };
    let script = read(&br().join("board/lvsbox/post-build.sh"));
    let heredoc = script.split("lvsbox-release\" <<EOF\n").nth(1).and_then(|s| s.split("\nEOF\n").next()).unwrap();
    assert_eq!(keys(heredoc), keys(&release), "post-build.sh writes the keys image/ writes");
}

// ---------------------------------------------------------------- the scripts, run

/// A tiny ELF64 executable header with no program headers: static as far as
/// readelf can tell, which is all post-build.sh asks of it.
fn static_elf() -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // 64-bit
    h[5] = 1; // little endian
    h[6] = 1; // version
    h[16] = 2; // ET_EXEC
    h[18] = 0x3e; // x86-64
    h[20] = 1;
    h[52] = 64; // e_ehsize
    h[54] = 56; // e_phentsize
    h[58] = 64; // e_shentsize
    h
}

struct PostBuild {
    dir: PathBuf,
    target: PathBuf,
    kconfig: PathBuf,
    moddep: PathBuf,
}

/// A synthetic Buildroot output: a target dir as the lvsbox package and the
/// skeleton leave it, a built kernel .config, a BR2_CONFIG.
fn post_build_fixture(name: &str) -> PostBuild {
    let dir = scratch(name);
    let target = dir.join("target");
    let exe = |p: &Path, data: &[u8]| {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    for b in ["init", "lbd", "console"] {
        exe(&target.join("usr/libexec/lvsbox").join(b), &static_elf());
    }
    exe(&target.join("bin/busybox"), &static_elf());
    std::os::unix::fs::symlink("busybox", target.join("bin/sh")).unwrap();
    exe(&target.join("lib/libc.so.6"), b"\x7fELF not really");
    std::fs::create_dir_all(target.join("etc")).unwrap();
    let moddir = target.join("lib/modules/6.1.192");
    std::fs::create_dir_all(&moddir).unwrap();
    let dep: String =
        kmod::BOOT_MODULES.iter().map(|(n, _)| format!("kernel/x/{}.ko:\n", n.replace('_', "-"))).collect();
    std::fs::write(moddir.join("modules.dep"), dep).unwrap();
    let kdir = dir.join("build/linux-6.1.192");
    std::fs::create_dir_all(&kdir).unwrap();
    std::fs::create_dir_all(dir.join("build/linux-headers-6.1.192")).unwrap();
    let kconfig = kdir.join(".config");
    std::fs::write(&kconfig, read(&br().join("board/lvsbox/linux-x86_64.fragment"))).unwrap();
    std::fs::write(
        dir.join("br2.config"),
        "BR2_x86_64=y\nBR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES=\"$(BR2_EXTERNAL_LVSBOX_PATH)/board/lvsbox/linux-x86_64.fragment\"\n",
    )
    .unwrap();
    PostBuild { target, kconfig, moddep: moddir.join("modules.dep"), dir }
}

fn run_script(script: &str, arg: &Path, dir: &Path, env: &[(&str, &Path)]) -> (bool, String) {
    let mut cmd = Command::new("sh");
    cmd.arg(br().join("board/lvsbox").join(script))
        .arg(arg)
        .env("BR2_CONFIG", dir.join("br2.config"))
        .env("BUILD_DIR", dir.join("build"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn post_build_makes_the_appliance_rootfs() {
    let f = post_build_fixture("post-build");
    let (ok, log) = run_script("post-build.sh", &f.target, &f.dir, &[]);
    assert!(ok, "{log}");
    let t = &f.target;
    for p in ["init", "bin/lbd", "bin/console"] {
        let md = std::fs::metadata(t.join(p)).unwrap();
        assert!(md.is_file() && md.permissions().mode() & 0o111 != 0, "{p}");
    }
    for gone in ["bin/sh", "bin/busybox", "lib/libc.so.6", "usr/libexec/lvsbox"] {
        assert!(std::fs::symlink_metadata(t.join(gone)).is_err(), "{gone} should be gone");
    }
    for d in ["proc", "sys", "dev", "run", "cfg", "var"] {
        assert!(t.join(d).is_dir(), "{d}");
    }
    assert_eq!(std::fs::metadata(t.join("tmp")).unwrap().permissions().mode() & 0o7777, 0o1777);
    let load = read(&t.join("lib/modules/6.1.192/modules.load"));
    assert_eq!(load.lines().collect::<Vec<_>>(), kmod::BOOT_MODULES.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    let rel = read(&t.join("etc/lvsbox-release"));
    for want in [
        "NAME=lvsbox",
        "LVSBOX_FLAVOUR=production",
        "LVSBOX_KERNEL=6.1.192",
        &format!("VERSION_ID={}", env!("CARGO_PKG_VERSION")),
    ] {
        assert!(rel.lines().any(|l| l == want), "{want} missing from {rel}");
    }
    std::fs::remove_dir_all(&f.dir).unwrap();
}

#[test]
fn post_build_refuses_a_kernel_without_an_option() {
    let f = post_build_fixture("post-build-kconfig");
    let text = read(&f.kconfig)
        .replace("CONFIG_IP_VS_SH=m", "# CONFIG_IP_VS_SH is not set")
        .replace("CONFIG_EFI_STUB=y", "CONFIG_EFI_STUB=m");
    std::fs::write(&f.kconfig, text).unwrap();
    let (ok, log) = run_script("post-build.sh", &f.target, &f.dir, &[]);
    assert!(!ok);
    assert!(log.contains("CONFIG_IP_VS_SH=unset(wants m)") && log.contains("CONFIG_EFI_STUB=m(wants y)"), "{log}");
    std::fs::remove_dir_all(&f.dir).unwrap();
}

#[test]
fn post_build_refuses_a_missing_module_or_a_dynamic_executable() {
    let f = post_build_fixture("post-build-module");
    let dep = read(&f.moddep).replace("kernel/x/ip-vs-ftp.ko:\n", "");
    std::fs::write(&f.moddep, dep).unwrap();
    let (ok, log) = run_script("post-build.sh", &f.target, &f.dir, &[]);
    assert!(!ok);
    assert!(log.contains("neither builds nor has built in: ip_vs_ftp"), "{log}");
    std::fs::remove_dir_all(&f.dir).unwrap();

    let f = post_build_fixture("post-build-dynamic");
    // This test binary is dynamically linked (it has an interpreter).
    std::fs::copy(std::env::current_exe().unwrap(), f.target.join("bin/tool")).unwrap();
    let (ok, log) = run_script("post-build.sh", &f.target, &f.dir, &[]);
    assert!(!ok);
    assert!(log.contains("dynamically linked executables in the rootfs (it has no libc): /bin/tool"), "{log}");
    std::fs::remove_dir_all(&f.dir).unwrap();
}

/// post-image.sh with the host's systemd stub and objcopy (the tools image/
/// uses) and a genimage stand-in that records its config: the UKI has the four
/// sections with the right contents, placed after the stub's, aligned.
#[test]
fn post_image_builds_the_uki() {
    let stub = Path::new(fsimg::EFI_STUB);
    if !stub.is_file() {
        eprintln!("SKIPPED: {} missing (Debian package systemd-boot-efi, installed by tests/setup)", stub.display());
        return;
    }
    let dir = scratch("post-image");
    let images = dir.join("images");
    let host = dir.join("host");
    let target = dir.join("target");
    std::fs::create_dir_all(images.join("x")).unwrap();
    std::fs::create_dir_all(host.join("bin")).unwrap();
    std::fs::create_dir_all(target.join("etc")).unwrap();
    std::fs::write(dir.join("br2.config"), "BR2_x86_64=y\n").unwrap();
    let kernel: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(images.join("bzImage"), &kernel).unwrap();
    std::fs::write(images.join("rootfs.cpio.zst"), b"initrd bytes").unwrap();
    std::fs::write(target.join("etc/lvsbox-release"), "NAME=lvsbox\n").unwrap();
    let genimage = host.join("bin/genimage");
    std::fs::write(
        &genimage,
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --config ] && cp \"$2\" \"$GENIMAGE_SEEN\"; shift; done\n",
    )
    .unwrap();
    std::fs::set_permissions(&genimage, std::fs::Permissions::from_mode(0o755)).unwrap();
    let seen = dir.join("seen.cfg");
    let (ok, log) = run_script(
        "post-image.sh",
        &images,
        &dir,
        &[("HOST_DIR", &host), ("TARGET_DIR", &target), ("GENIMAGE_SEEN", &seen)],
    );
    assert!(ok, "{log}");
    assert!(read(&seen).contains("file EFI/BOOT/BOOTX64.EFI {"));
    let uki_path = images.join("lvsbox.efi");
    let uki = std::fs::read(&uki_path).unwrap();
    let pe = image::pe::parse(&uki).unwrap();
    let stub_pe = image::pe::parse(&std::fs::read(stub).unwrap()).unwrap();
    let names: Vec<&str> = pe.sections.iter().map(|(n, _, _)| n.as_str()).collect();
    assert!(names.ends_with(&[".osrel", ".cmdline", ".linux", ".initrd"]), "{names:?}");
    let mut end = stub_pe.end_of_image();
    for (name, rva, size) in &pe.sections[pe.sections.len() - 4..] {
        assert!(*rva >= end, "{name} overlaps the previous section");
        assert_eq!(rva % pe.section_alignment, 0, "{name} aligned");
        end = rva + size;
    }
    let section = |name: &str| {
        let out = dir.join(format!("{name}.bin"));
        let st = Command::new("objcopy")
            .args(["-O", "binary", "--only-section", name])
            .arg(&uki_path)
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read(out).unwrap()
    };
    assert_eq!(section(".cmdline"), image::BASE_CMDLINE.as_bytes());
    assert_eq!(section(".osrel"), b"NAME=lvsbox\n");
    assert_eq!(section(".linux"), kernel);
    assert_eq!(section(".initrd"), b"initrd bytes");
    std::fs::remove_dir_all(&dir).unwrap();
}
