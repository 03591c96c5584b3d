//! The kernel options the appliance relies on (`image/kernel-options.txt`,
//! compiled in): parsing, the check of a kernel's `.config` against them, and
//! the Buildroot kernel config fragment generated from them.
//!
//! One list, two readers: `image build` checks Debian's `boot/config-<kver>`
//! with [`check_config`] (and the module names with [`check_modules`]);
//! `buildroot/board/lvsbox/linux-<arch>.fragment` is [`fragment`]'s output,
//! kept equal by a test.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Result, bail, ensure};

use crate::kmod::{ModuleIndex, normalise};

/// The list's text.
pub const KERNEL_OPTIONS_TXT: &str = include_str!("../kernel-options.txt");

/// Architectures the list (and the Buildroot tree) know.
pub const ARCHES: &[&str] = &["x86_64", "aarch64"];

/// The architecture of Debian's kernel package that `image` uses.
pub const IMAGE_ARCH: &str = "x86_64";

/// What an option must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Built in (`=y`).
    BuiltIn,
    /// A module or built in (`=m` or `=y`); the Buildroot fragment asks for `=m`.
    Module,
}

impl Need {
    fn as_value(self) -> &'static str {
        match self {
            Need::BuiltIn => "y",
            Need::Module => "m",
        }
    }
}

/// One line of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelOption {
    /// `CONFIG_FOO`.
    pub name: String,
    pub need: Need,
    /// Only for this architecture (`None`: every architecture).
    pub arch: Option<String>,
    /// Module names (normalised) this option provides, as `kmod.rs` names them.
    pub modules: Vec<String>,
    /// Why the appliance needs it.
    pub why: String,
    /// 1-based line number in the list.
    pub line: usize,
}

impl KernelOption {
    /// Whether the option applies to `arch`.
    pub fn applies_to(&self, arch: &str) -> bool {
        self.arch.as_deref().is_none_or(|a| a == arch)
    }
}

/// Parses the list format (see the header of `kernel-options.txt`). Every
/// malformed line is an error, with its line number.
pub fn parse_options(text: &str) -> Result<Vec<KernelOption>> {
    let mut out: Vec<KernelOption> = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (spec, why) = match trimmed.split_once('#') {
            Some((s, w)) => (s.trim(), w.trim()),
            None => (trimmed, ""),
        };
        let mut tokens = spec.split_whitespace();
        let first = tokens.next().unwrap_or_default();
        let Some((name, value)) = first.split_once('=') else {
            errors.push(format!("line {line}: expected CONFIG_NAME=y|m, got {first:?}"));
            continue;
        };
        let valid_name = name.strip_prefix("CONFIG_").is_some_and(|n| {
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        });
        if !valid_name {
            errors.push(format!("line {line}: {name:?} is not a CONFIG_ option name"));
            continue;
        }
        let need = match value {
            "y" => Need::BuiltIn,
            "m" => Need::Module,
            v => {
                errors.push(format!("line {line}: {name}={v}: the value must be y or m"));
                continue;
            }
        };
        let mut opt =
            KernelOption { name: name.to_string(), need, arch: None, modules: Vec::new(), why: why.to_string(), line };
        for tok in tokens {
            match tok.split_once('=') {
                Some(("arch", a)) if ARCHES.contains(&a) => opt.arch = Some(a.to_string()),
                Some(("arch", a)) => errors.push(format!("line {line}: unknown arch {a:?} (known: {ARCHES:?})")),
                Some(("modules", ms)) => {
                    opt.modules.extend(ms.split(',').filter(|m| !m.is_empty()).map(normalise));
                }
                _ => errors.push(format!("line {line}: unexpected {tok:?} (arch=... or modules=...)")),
            }
        }
        if opt.why.is_empty() {
            errors.push(format!("line {line}: {name} has no `# why` comment"));
        }
        if let Some(prev) =
            out.iter().find(|o| o.name == opt.name && (o.arch.is_none() || opt.arch.is_none() || o.arch == opt.arch))
        {
            errors.push(format!("line {line}: {name} is already listed on line {}", prev.line));
        }
        out.push(opt);
    }
    if !errors.is_empty() {
        bail!("image/kernel-options.txt is malformed:\n  {}", errors.join("\n  "));
    }
    Ok(out)
}

/// The compiled-in list.
pub fn options() -> Result<Vec<KernelOption>> {
    parse_options(KERNEL_OPTIONS_TXT)
}

/// A kernel `.config` (or a fragment): `CONFIG_FOO=value` lines; `# CONFIG_FOO
/// is not set` counts as `n`. Values keep their quotes.
pub fn parse_config(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("# ").and_then(|r| r.strip_suffix(" is not set")) {
            if rest.starts_with("CONFIG_") {
                out.insert(rest.to_string(), "n".to_string());
            }
        } else if line.starts_with("CONFIG_")
            && let Some((k, v)) = line.split_once('=')
        {
            out.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    out
}

/// Checks a kernel `.config` against the options for `arch`: every option must
/// be `=y` or `=m`, and `=y` where the list says `y`. Returns one line per
/// problem (empty: the kernel has everything).
pub fn check_config(opts: &[KernelOption], arch: &str, config: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for o in opts.iter().filter(|o| o.applies_to(arch)) {
        match (config.get(&o.name).map(String::as_str), o.need) {
            (Some("y"), _) | (Some("m"), Need::Module) => {}
            (Some("m"), Need::BuiltIn) => {
                problems.push(format!("{} is =m but must be built in (=y): {}", o.name, o.why));
            }
            (Some(v), _) => problems.push(format!("{} is {v}, needs =y or =m: {}", o.name, o.why)),
            (None, _) => problems.push(format!("{} is missing, needs =y or =m: {}", o.name, o.why)),
        }
    }
    problems
}

/// Checks the `modules=` names against the kernel's modules: an option that is
/// `=m` in `config` must provide each named module as a `.ko`; one that is
/// `=y` must have them in `modules.builtin`. This is what keeps the list's
/// module-to-option mapping honest against a real kernel.
pub fn check_modules(
    opts: &[KernelOption],
    arch: &str,
    config: &BTreeMap<String, String>,
    index: &ModuleIndex,
) -> Vec<String> {
    let mut problems = Vec::new();
    for o in opts.iter().filter(|o| o.applies_to(arch)) {
        for m in &o.modules {
            match config.get(&o.name).map(String::as_str) {
                Some("m") if !index.modules.contains_key(m) => {
                    problems.push(format!("{} is =m but the kernel package has no {m}.ko", o.name));
                }
                Some("y") if !index.builtin.contains(m) && !index.modules.contains_key(m) => {
                    problems
                        .push(format!("{} is =y but {m} is neither built in (modules.builtin) nor a module", o.name));
                }
                _ => {}
            }
        }
    }
    problems
}

/// Fails with every problem of `config` (and of the modules when `index` is
/// given), saying which kernel and what to do.
pub fn ensure_kernel_has_options(what: &str, config_text: &str, arch: &str, index: Option<&ModuleIndex>) -> Result<()> {
    let opts = options()?;
    let config = parse_config(config_text);
    let mut problems = check_config(&opts, arch, &config);
    if let Some(ix) = index {
        problems.extend(check_modules(&opts, arch, &config, ix));
    }
    ensure!(
        problems.is_empty(),
        "{what} lacks kernel options the appliance relies on (image/kernel-options.txt):\n  {}\n\
         Pin a kernel that has them (image/pins.toml), or change the list if the appliance no longer needs them.",
        problems.join("\n  ")
    );
    Ok(())
}

/// The Buildroot kernel config fragment for `arch`: every option of the list
/// that applies, with its why, in list order.
pub fn fragment(opts: &[KernelOption], arch: &str) -> String {
    let mut out = format!(
        "# GENERATED from image/kernel-options.txt for {arch}: do not edit.\n\
         # Regenerate: cargo run -p image -- kernel-fragment --arch {arch} > buildroot/board/lvsbox/linux-{arch}.fragment\n\
         # Add your own options (a NIC driver, hardening) in a fragment of your own:\n\
         # BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES takes several files.\n"
    );
    for o in opts.iter().filter(|o| o.applies_to(arch)) {
        let _ = write!(out, "# {}\n{}={}\n", o.why, o.name, o.need.as_value());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmod::ModInfo;

    const LIST: &str = "# header\n\
        CONFIG_A=y # a\n\
        CONFIG_B=m modules=b-mod,c # b\n\
        CONFIG_C=y arch=aarch64 # only arm\n";

    fn cfg(text: &str) -> BTreeMap<String, String> {
        parse_config(text)
    }

    #[test]
    fn parses_the_list() {
        let o = parse_options(LIST).unwrap();
        assert_eq!(o.len(), 3);
        assert_eq!(o[1].name, "CONFIG_B");
        assert_eq!(o[1].need, Need::Module);
        assert_eq!(o[1].modules, ["b_mod", "c"]);
        assert_eq!(o[1].line, 3);
        assert!(o[2].applies_to("aarch64") && !o[2].applies_to("x86_64"));
        assert!(o[0].applies_to("x86_64"));
    }

    #[test]
    fn malformed_lines_are_all_reported() {
        let err = parse_options(
            "CONFIG_A=n # x\nFOO=y # x\nCONFIG_B=y\nCONFIG_C=y arch=mips # x\nCONFIG_D=y # x\nCONFIG_D=m # x\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "line 1:",
            "line 2:",
            "line 3: CONFIG_B has no `# why`",
            "line 4: unknown arch",
            "line 6: CONFIG_D is already listed on line 5",
        ] {
            assert!(err.contains(want), "{want} missing from {err}");
        }
    }

    #[test]
    fn the_compiled_in_list_parses_and_is_not_trivial() {
        let o = options().unwrap();
        assert!(o.len() > 50);
        assert!(o.iter().any(|o| o.name == "CONFIG_IP_VS"));
    }

    #[test]
    fn config_check_finds_missing_unset_and_module_instead_of_builtin() {
        let o = parse_options(LIST).unwrap();
        assert!(check_config(&o, "x86_64", &cfg("CONFIG_A=y\nCONFIG_B=m\n")).is_empty());
        assert!(check_config(&o, "x86_64", &cfg("CONFIG_A=y\nCONFIG_B=y\n")).is_empty(), "m accepts y");
        let p = check_config(&o, "x86_64", &cfg("CONFIG_A=m\n# CONFIG_B is not set\n"));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("CONFIG_A is =m but must be built in"));
        assert!(p[1].contains("CONFIG_B is n"));
        let p = check_config(&o, "aarch64", &cfg("CONFIG_A=y\nCONFIG_B=m\n"));
        assert_eq!(p, ["CONFIG_C is missing, needs =y or =m: only arm"]);
    }

    #[test]
    fn module_check_follows_the_option_value() {
        let o = parse_options(LIST).unwrap();
        let mut ix = ModuleIndex::default();
        ix.insert(ModInfo { name: "b_mod".into(), ..ModInfo::default() });
        let p = check_modules(&o, "x86_64", &cfg("CONFIG_A=y\nCONFIG_B=m\n"), &ix);
        assert_eq!(p, ["CONFIG_B is =m but the kernel package has no c.ko"]);
        ix.builtin.insert("c".into());
        let p = check_modules(&o, "x86_64", &cfg("CONFIG_A=y\nCONFIG_B=y\n"), &ix);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn fragment_has_exactly_the_options_of_the_arch() {
        let o = parse_options(LIST).unwrap();
        let f = parse_config(&fragment(&o, "x86_64"));
        assert_eq!(
            f.into_iter().collect::<Vec<_>>(),
            [("CONFIG_A".into(), "y".into()), ("CONFIG_B".into(), "m".into())]
        );
        assert!(fragment(&o, "aarch64").contains("# only arm\nCONFIG_C=y\n"));
    }

    #[test]
    fn parses_not_set_lines() {
        let c = cfg("# CONFIG_X is not set\nCONFIG_Y=\"s\"\n# comment\n");
        assert_eq!(c["CONFIG_X"], "n");
        assert_eq!(c["CONFIG_Y"], "\"s\"");
    }
}
