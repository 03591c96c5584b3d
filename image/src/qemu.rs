//! A `qemu-system-x86_64` command line builder for lvsbox guests.
//!
//! Defaults: q35, TCG (nested KVM hangs on the development machines; KVM is
//! opt-in with [`QemuCmd::kvm`]), 1 vCPU, 1024 MiB, no default devices, no
//! display. Serial ports are added in order: the first is `ttyS0` (the
//! console), the second `ttyS1` (the debug flavour's root shell).
//!
//! This only builds a [`Command`]; spawning, waiting and killing are the
//! caller's.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::{Flavour, FlavourArtefacts};

/// OVMF firmware code (read-only pflash), Debian package `ovmf`.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
/// OVMF variable store template: give each guest its own copy.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// How the guest boots.
#[derive(Clone, Debug)]
pub enum Boot {
    /// `-kernel/-initrd/-append` (fast; no firmware, no disk needed).
    Direct { kernel: PathBuf, initrd: PathBuf, cmdline: String },
    /// OVMF boots `\EFI\BOOT\BOOTX64.EFI` from `disk` (virtio-blk). `vars` is
    /// a writable copy of the OVMF variable store (see [`copy_ovmf_vars`]).
    Uefi { disk: PathBuf, format: String, vars: PathBuf },
}

/// Where a serial port goes.
#[derive(Clone, Debug)]
pub enum Serial {
    /// The terminal, muxed with the QEMU monitor (`-serial mon:stdio`; Ctrl-A X quits).
    Stdio,
    /// A unix socket QEMU listens on (`server=on,wait=off`).
    Unix(PathBuf),
    /// Appended to a file (output only).
    File(PathBuf),
    /// A unix socket QEMU listens on, with everything the guest sends also
    /// logged to a file (a person or a test drives the console on the socket
    /// while a readiness check reads the log).
    UnixLogged(PathBuf, PathBuf),
    /// A host pty; QEMU prints its path on stderr.
    Pty,
    /// Discarded.
    Null,
}

/// A guest NIC.
#[derive(Clone, Debug)]
pub struct Nic {
    /// `None`: QEMU user-mode networking; `Some(tap)`: an existing tap device.
    pub tap: Option<String>,
    pub mac: Option<String>,
    /// QEMU device model: `virtio-net-pci` (default), `e1000`, `e1000e`, `vmxnet3`, ...
    pub model: String,
}

impl Nic {
    pub fn tap(name: &str, mac: Option<&str>) -> Nic {
        Nic { tap: Some(name.to_string()), mac: mac.map(str::to_string), model: "virtio-net-pci".into() }
    }
    pub fn user() -> Nic {
        Nic { tap: None, mac: None, model: "virtio-net-pci".into() }
    }
    /// Parses `NAME[,MAC]` (the CLI's `--tap`).
    pub fn parse_tap(spec: &str) -> Result<Nic> {
        let (name, mac) = match spec.split_once(',') {
            Some((n, m)) => (n, Some(m)),
            None => (spec, None),
        };
        ensure!(!name.is_empty() && name.len() < 16, "bad tap name in {spec}");
        if let Some(m) = mac {
            let ok =
                m.split(':').count() == 6 && m.split(':').all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok());
            ensure!(ok, "bad MAC address {m}");
        }
        Ok(Nic::tap(name, mac))
    }
}

/// An extra block device (virtio-blk).
#[derive(Clone, Debug)]
pub struct Drive {
    pub path: PathBuf,
    pub format: String,
    pub readonly: bool,
}

/// The QEMU command line of one guest.
#[derive(Clone, Debug)]
pub struct QemuCmd {
    pub binary: PathBuf,
    pub boot: Boot,
    pub kvm: bool,
    pub memory_mib: u32,
    pub smp: u32,
    pub serials: Vec<Serial>,
    pub nics: Vec<Nic>,
    pub drives: Vec<Drive>,
    /// Human monitor on a unix socket.
    pub monitor: Option<PathBuf>,
    /// QMP on a unix socket.
    pub qmp: Option<PathBuf>,
    /// Exit instead of rebooting (a guest reboot or panic ends QEMU).
    pub no_reboot: bool,
    /// Load the NICs' option ROMs (iPXE), as QEMU does by default.
    /// `LVSBOX_NIC_ROMS=0` leaves them out (`romfile=` on each NIC device),
    /// to measure: in interleaved OVMF boots it saved nothing measurable.
    pub nic_roms: bool,
    /// Raw extra QEMU arguments.
    pub extra: Vec<OsString>,
}

impl QemuCmd {
    fn new(boot: Boot) -> QemuCmd {
        QemuCmd {
            binary: "qemu-system-x86_64".into(),
            boot,
            kvm: false,
            memory_mib: 1024,
            smp: 1,
            serials: Vec::new(),
            nics: Vec::new(),
            drives: Vec::new(),
            monitor: None,
            qmp: None,
            no_reboot: false,
            nic_roms: std::env::var("LVSBOX_NIC_ROMS").map_or(true, |v| v != "0"),
            extra: Vec::new(),
        }
    }

    /// Direct kernel boot.
    pub fn direct(kernel: &Path, initrd: &Path, cmdline: &str) -> QemuCmd {
        Self::new(Boot::Direct { kernel: kernel.into(), initrd: initrd.into(), cmdline: cmdline.to_string() })
    }

    /// Direct boot of a built flavour with its default command line.
    pub fn direct_flavour(kernel: &Path, a: &FlavourArtefacts) -> QemuCmd {
        Self::direct(kernel, &a.initramfs, &a.cmdline)
    }

    /// UEFI boot of `disk` (use an overlay or a copy: the guest writes to it).
    pub fn uefi(disk: &Path, format: &str, vars: &Path) -> QemuCmd {
        Self::new(Boot::Uefi { disk: disk.into(), format: format.to_string(), vars: vars.into() })
    }

    pub fn kvm(mut self, on: bool) -> Self {
        self.kvm = on;
        self
    }
    pub fn memory(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }
    pub fn smp(mut self, n: u32) -> Self {
        self.smp = n;
        self
    }
    /// Adds the next serial port (ttyS0, then ttyS1, ...).
    pub fn serial(mut self, s: Serial) -> Self {
        self.serials.push(s);
        self
    }
    pub fn nic(mut self, n: Nic) -> Self {
        self.nics.push(n);
        self
    }
    pub fn drive(mut self, path: &Path, format: &str) -> Self {
        self.drives.push(Drive { path: path.into(), format: format.into(), readonly: false });
        self
    }
    pub fn monitor(mut self, socket: &Path) -> Self {
        self.monitor = Some(socket.into());
        self
    }
    pub fn qmp(mut self, socket: &Path) -> Self {
        self.qmp = Some(socket.into());
        self
    }
    pub fn no_reboot(mut self, on: bool) -> Self {
        self.no_reboot = on;
        self
    }
    /// Appends kernel arguments (direct boot only: a UKI's command line is
    /// sealed in the image).
    pub fn append(mut self, args: &str) -> Result<Self> {
        match &mut self.boot {
            Boot::Direct { cmdline, .. } => {
                if !args.trim().is_empty() {
                    cmdline.push(' ');
                    cmdline.push_str(args.trim());
                }
                Ok(self)
            }
            Boot::Uefi { .. } => {
                anyhow::bail!("extra kernel arguments need a direct boot (the UKI's command line is fixed)")
            }
        }
    }
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.extra.push(a.into());
        self
    }

    /// The argument list (without the binary).
    pub fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        push("-nodefaults");
        push("-no-user-config");
        push("-display");
        push("none");
        push("-machine");
        push("q35");
        push("-accel");
        push(if self.kvm { "kvm" } else { "tcg" });
        if self.kvm {
            push("-cpu");
            push("host");
        }
        push("-m");
        push(&self.memory_mib.to_string());
        push("-smp");
        push(&self.smp.to_string());
        if self.no_reboot {
            push("-no-reboot");
        }
        let path = |p: &Path| p.to_string_lossy().replace(',', ",,");
        match &self.boot {
            Boot::Direct { kernel, initrd, cmdline } => {
                a.extend([
                    "-kernel".into(),
                    kernel.into(),
                    "-initrd".into(),
                    initrd.into(),
                    "-append".into(),
                    cmdline.into(),
                ]);
            }
            Boot::Uefi { disk, format, vars } => {
                a.push("-drive".into());
                a.push(format!("if=pflash,format=raw,unit=0,readonly=on,file={}", path(Path::new(OVMF_CODE))).into());
                a.push("-drive".into());
                a.push(format!("if=pflash,format=raw,unit=1,file={}", path(vars)).into());
                a.push("-drive".into());
                a.push(format!("if=none,id=disk0,format={format},file={}", path(disk)).into());
                a.push("-device".into());
                a.push("virtio-blk-pci,drive=disk0,bootindex=0".into());
            }
        }
        for (i, d) in self.drives.iter().enumerate() {
            let ro = if d.readonly { ",readonly=on" } else { "" };
            a.push("-drive".into());
            a.push(format!("if=none,id=xd{i},format={},file={}{ro}", d.format, path(&d.path)).into());
            a.push("-device".into());
            a.push(format!("virtio-blk-pci,drive=xd{i}").into());
        }
        for (i, s) in self.serials.iter().enumerate() {
            let spec = match s {
                Serial::Stdio => "mon:stdio".to_string(),
                Serial::Unix(p) => {
                    a.push("-chardev".into());
                    a.push(format!("socket,id=ser{i},path={},server=on,wait=off", path(p)).into());
                    format!("chardev:ser{i}")
                }
                Serial::UnixLogged(p, log) => {
                    a.push("-chardev".into());
                    a.push(
                        format!("socket,id=ser{i},path={},server=on,wait=off,logfile={}", path(p), path(log)).into(),
                    );
                    format!("chardev:ser{i}")
                }
                Serial::File(p) => format!("file:{}", p.display()),
                Serial::Pty => "pty".to_string(),
                Serial::Null => "null".to_string(),
            };
            a.push("-serial".into());
            a.push(spec.into());
        }
        for (i, n) in self.nics.iter().enumerate() {
            let backend = match &n.tap {
                Some(t) => format!("tap,id=net{i},ifname={t},script=no,downscript=no"),
                None => format!("user,id=net{i}"),
            };
            a.push("-netdev".into());
            a.push(backend.into());
            let mac = n.mac.as_ref().map(|m| format!(",mac={m}")).unwrap_or_default();
            a.push("-device".into());
            let rom = if self.nic_roms { "" } else { ",romfile=" };
            a.push(format!("{},netdev=net{i}{mac}{rom}", n.model).into());
        }
        if let Some(m) = &self.monitor {
            a.push("-monitor".into());
            a.push(format!("unix:{},server=on,wait=off", path(m)).into());
        }
        if let Some(q) = &self.qmp {
            a.push("-qmp".into());
            a.push(format!("unix:{},server=on,wait=off", path(q)).into());
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The command, ready to spawn.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.args(self.args());
        c
    }
}

/// Copies the OVMF variable store template to `dest` (one per guest).
pub fn copy_ovmf_vars(dest: &Path) -> Result<()> {
    std::fs::copy(OVMF_VARS, dest).with_context(|| format!("copying {OVMF_VARS} (install the Debian package ovmf)"))?;
    Ok(())
}

/// A UEFI guest of a built flavour: makes a throwaway qcow2 overlay of the
/// flavour's disk and a copy of the OVMF variables in `scratch`.
pub fn uefi_flavour(a: &FlavourArtefacts, scratch: &Path) -> Result<QemuCmd> {
    std::fs::create_dir_all(scratch)?;
    let overlay = scratch.join(format!("{}-overlay.qcow2", a.flavour.stem()));
    crate::fsimg::overlay(&a.qcow2, &overlay)?;
    let vars = scratch.join("OVMF_VARS.fd");
    copy_ovmf_vars(&vars)?;
    Ok(QemuCmd::uefi(&overlay, "qcow2", &vars))
}

/// The flavour a caller wants, for convenience.
pub fn flavour_of(debug: bool) -> Flavour {
    if debug { Flavour::Debug } else { Flavour::Production }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(q: &QemuCmd) -> String {
        q.args().iter().map(|a| a.to_string_lossy().to_string()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn direct_boot_tcg_by_default() {
        let q = QemuCmd::direct(Path::new("/k/vmlinuz"), Path::new("/k/i.zst"), "console=ttyS0")
            .append("lvsbox.debug=1")
            .unwrap()
            .serial(Serial::Stdio)
            .serial(Serial::Unix("/run/x/ttyS1.sock".into()))
            .nic(Nic::parse_tap("tap0,52:54:00:00:00:01").unwrap())
            .nic(Nic::user())
            .no_reboot(true);
        let s = joined(&q);
        assert!(s.contains("-accel tcg"), "{s}");
        assert!(!s.contains("kvm"), "{s}");
        assert!(s.contains("-kernel /k/vmlinuz -initrd /k/i.zst -append console=ttyS0 lvsbox.debug=1"), "{s}");
        // Serial ports in order: ttyS0 on stdio with the monitor, ttyS1 on a socket.
        let s0 = s.find("-serial mon:stdio").unwrap();
        let s1 = s.find("-serial chardev:ser1").unwrap();
        assert!(s0 < s1);
        assert!(s.contains("-chardev socket,id=ser1,path=/run/x/ttyS1.sock,server=on,wait=off"), "{s}");
        assert!(s.contains("-netdev tap,id=net0,ifname=tap0,script=no,downscript=no"), "{s}");
        assert!(s.contains("-device virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01 "), "{s}");
        assert!(s.contains("-netdev user,id=net1"), "{s}");
        assert!(s.contains("-no-reboot"));
        assert!(s.contains("-nodefaults"));
    }

    #[test]
    fn uefi_boot_uses_pflash_and_refuses_kernel_args() {
        let q = QemuCmd::uefi(Path::new("/t/o.qcow2"), "qcow2", Path::new("/t/VARS.fd")).kvm(true).memory(512);
        let s = joined(&q);
        assert!(s.contains("if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"), "{s}");
        assert!(s.contains("if=pflash,format=raw,unit=1,file=/t/VARS.fd"), "{s}");
        assert!(s.contains("if=none,id=disk0,format=qcow2,file=/t/o.qcow2"), "{s}");
        assert!(s.contains("-accel kvm -cpu host"), "{s}");
        assert!(s.contains("-m 512"), "{s}");
        assert!(q.append("x=1").is_err());
    }

    #[test]
    fn tap_specs_are_checked() {
        assert!(Nic::parse_tap("tap0").unwrap().mac.is_none());
        assert!(Nic::parse_tap("tap0,zz:54:00:00:00:01").is_err());
        assert!(Nic::parse_tap(",52:54:00:00:00:01").is_err());
        assert!(Nic::parse_tap("a-very-long-tap-name").is_err());
    }

    #[test]
    fn commas_in_paths_are_escaped() {
        let q = QemuCmd::uefi(Path::new("/t/a,b.qcow2"), "qcow2", Path::new("/t/v.fd")).monitor(Path::new("/t/m.sock"));
        let s = joined(&q);
        assert!(s.contains("file=/t/a,,b.qcow2"), "{s}");
        assert!(s.contains("-monitor unix:/t/m.sock,server=on,wait=off"), "{s}");
    }
}
