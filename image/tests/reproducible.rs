//! The image pipeline after the inputs (cpio -> lz4 -> UKI -> FAT ESP ->
//! ext4 -> GPT disk -> qcow2, and the config disk) run twice, a second apart,
//! into two directories: every output must be byte-identical, and readable
//! by independent tools. Uses synthetic inputs, so no kernel download and no
//! cargo build: it runs in seconds. (`image verify-reproducible` does the
//! same with the real inputs.)

use std::path::{Path, PathBuf};
use std::process::Command;

use image::builder::{Compression, compress};
use image::cpio::Tree;
use image::fsimg;

const EPOCH: u64 = 1_735_689_600;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lvsbox-repro-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the pipeline into `dir`; returns (name, sha256) of each output.
fn pipeline(dir: &Path) -> Vec<(String, String)> {
    // A "kernel": deterministic pseudo-random bytes.
    let mut x: u32 = 12345;
    let kernel: Vec<u8> = (0..300_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    std::fs::write(dir.join("vmlinuz"), &kernel).unwrap();
    let mut t = Tree::new();
    t.file("/init", 0o755, b"\x7fELF not really".to_vec()).unwrap();
    t.file("/lib/modules/6.1.0/modules.dep", 0o644, b"kernel/a.ko:\n".to_vec()).unwrap();
    t.dir("/tmp", 0o1777).unwrap();
    let cpio = dir.join("initramfs.cpio");
    t.write_newc(EPOCH, &mut std::fs::File::create(&cpio).unwrap()).unwrap();
    let initrd = dir.join("initramfs.cpio.lz4");
    compress(Compression::Lz4, &cpio, &initrd).unwrap();
    let uki = dir.join("lvsbox.efi");
    fsimg::make_uki(
        Path::new(fsimg::EFI_STUB),
        b"NAME=lvsbox\n",
        "console=ttyS0",
        &dir.join("vmlinuz"),
        &initrd,
        &uki,
        dir,
    )
    .unwrap();
    let layout = fsimg::firmware_layout("test").unwrap();
    let esp = dir.join("esp.img");
    fsimg::make_esp(&uki, &esp, layout.parts[0].size(), 0x4c56_5342, layout.parts[0].first_lba, EPOCH).unwrap();
    let cfg = dir.join("cfg.ext4");
    fsimg::make_ext4(
        &[("lvsbox.toml", b"[system]\nhostname = \"lb1\"\n")],
        &cfg,
        layout.parts[1].size(),
        "lvsbox-config",
        "test:config",
        EPOCH,
        dir,
    )
    .unwrap();
    let raw = dir.join("disk.img");
    fsimg::assemble_disk(&layout, &[&esp, &cfg], &raw).unwrap();
    let qcow2 = dir.join("disk.qcow2");
    fsimg::to_qcow2(&raw, &qcow2).unwrap();
    let cfgdisk = dir.join("config.img");
    image::config_disk("[system]\nhostname = \"lb2\"\n", &cfgdisk).unwrap();
    ["initramfs.cpio.lz4", "lvsbox.efi", "esp.img", "cfg.ext4", "disk.img", "disk.qcow2", "config.img"]
        .iter()
        .map(|n| (n.to_string(), tool(Command::new("sha256sum").arg(dir.join(n)))[..64].to_string()))
        .collect()
}

fn tool(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn two_builds_are_byte_identical_and_tools_can_read_them() {
    let (a, b) = (scratch("a"), scratch("b"));
    let sums_a = pipeline(&a);
    // Wall-clock-dependent fields (PE stamp, FAT and ext4 times) would now differ.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let sums_b = pipeline(&b);
    assert_eq!(sums_a, sums_b, "outputs differ between two runs");

    // The ESP holds the UKI at \EFI\BOOT\BOOTX64.EFI.
    let got = a.join("BOOTX64.EFI");
    tool(
        Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(a.join("esp.img"))
            .arg("::/EFI/BOOT/BOOTX64.EFI")
            .arg(&got),
    );
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(a.join("lvsbox.efi")).unwrap());
    // fsck agrees the FAT is clean.
    tool(Command::new("fsck.fat").arg("-n").arg(a.join("esp.img")));

    // The config partition is clean ext4 with our file, owned by root.
    tool(Command::new("e2fsck").args(["-f", "-n"]).arg(a.join("cfg.ext4")));
    let cat = tool(Command::new("debugfs").args(["-R", "cat /lvsbox.toml"]).arg(a.join("cfg.ext4")));
    assert!(cat.contains("hostname = \"lb1\""), "{cat}");
    let stat = tool(Command::new("debugfs").args(["-R", "stat /lvsbox.toml"]).arg(a.join("cfg.ext4")));
    assert!(stat.contains("User:     0   Group:     0"), "{stat}");
    let label = tool(Command::new("e2label").arg(a.join("cfg.ext4")));
    assert_eq!(label.trim(), "lvsbox-config");

    // The disk: GPT with the ESP and the config partition; the UKI's sections are where we put them.
    let dump = tool(Command::new("sfdisk").arg("--dump").arg(a.join("disk.img")));
    assert!(dump.contains("type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B"), "{dump}");
    assert!(dump.contains("name=\"lvsbox-config\""), "{dump}");
    let info = tool(Command::new("qemu-img").args(["info", "--output=json"]).arg(a.join("disk.qcow2")));
    assert!(info.contains("\"format\": \"qcow2\""), "{info}");
    let heads = tool(Command::new("objdump").arg("-h").arg(a.join("lvsbox.efi")));
    for s in [".osrel", ".cmdline", ".linux", ".initrd"] {
        assert!(heads.contains(s), "{s} missing: {heads}");
    }

    // The config disk: one partition named lvsbox-config.
    let mut f = std::fs::File::open(a.join("config.img")).unwrap();
    let parts = image::gpt::read(&mut f).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].name, "lvsbox-config");

    std::fs::remove_dir_all(&a).unwrap();
    std::fs::remove_dir_all(&b).unwrap();
}
