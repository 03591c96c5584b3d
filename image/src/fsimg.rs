//! Filesystem and boot images made with host tools, every source of
//! nondeterminism pinned: the UKI (objcopy), the FAT32 ESP (mkfs.fat +
//! mtools), the ext4 config partition (mkfs.ext4 -d), the GPT disk (Rust) and
//! its qcow2 (qemu-img).

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, ensure};

use crate::gpt::{Guid, Layout, PartSpec};
use crate::pe;
use crate::util::{copy_sparse_into, run, set_mtime};

/// systemd's EFI stub (Debian package systemd-boot-efi).
pub const EFI_STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// Size of the ESP: room for two UKIs (A/B updates).
pub const ESP_SIZE: u64 = 128 << 20;
/// Size of the persistent config partition.
pub const CONFIG_SIZE: u64 = 64 << 20;
/// GPT name (PARTLABEL) of the ESP.
pub const ESP_PARTLABEL: &str = "lvsbox-esp";
/// The config file's name on the config partition.
pub const CONFIG_FILE_NAME: &str = "lvsbox.toml";

/// Our own mke2fs.conf, so the host's /etc/mke2fs.conf cannot change the
/// filesystem (features the 6.1 kernel reads, no orphan_file, 4 KiB blocks).
const MKE2FS_CONF: &str = "[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384
[fs_types]
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
";

/// Builds a UKI: the stub plus `.osrel`, `.cmdline`, `.linux`, `.initrd`
/// sections placed after the stub's last section (see [`pe::PeInfo::place`]).
pub fn make_uki(
    stub: &Path,
    osrel: &[u8],
    cmdline: &str,
    kernel: &Path,
    initrd: &Path,
    out: &Path,
    work: &Path,
) -> Result<()> {
    let stub_bytes =
        std::fs::read(stub).with_context(|| format!("reading {} (package systemd-boot-efi)", stub.display()))?;
    let info = pe::parse(&stub_bytes)?;
    let osrel_path = work.join("osrel");
    let cmdline_path = work.join("cmdline");
    std::fs::write(&osrel_path, osrel)?;
    std::fs::write(&cmdline_path, cmdline.as_bytes())?;
    let files =
        [(".osrel", osrel_path.as_path()), (".cmdline", &cmdline_path), (".linux", kernel), (".initrd", initrd)];
    let sizes: Vec<(&str, u64)> =
        files.iter().map(|(n, p)| Ok((*n, std::fs::metadata(p)?.len()))).collect::<Result<_>>()?;
    let placed = info.place(&sizes);
    let mut cmd = Command::new("objcopy");
    for ((name, path), (_, vma)) in files.iter().zip(&placed) {
        cmd.arg("--add-section").arg(format!("{name}={}", path.display()));
        cmd.arg("--change-section-vma").arg(format!("{name}={vma:#x}"));
    }
    cmd.arg(stub).arg(out);
    run(&mut cmd, "binutils")?;
    // objcopy stamps the PE header with the current time (and checksums it):
    // pin it to 0 as the stub has, so the UKI depends only on its inputs.
    let mut uki = std::fs::read(out)?;
    pe::set_timestamp(&mut uki, 0)?;
    std::fs::write(out, &uki)?;
    Ok(())
}

/// Makes a FAT32 ESP image of `size` bytes holding `\EFI\BOOT\BOOTX64.EFI`.
/// `hidden_sectors` is the partition's start LBA (recorded in the BPB).
pub fn make_esp(uki: &Path, out: &Path, size: u64, volume_id: u32, hidden_sectors: u64, epoch: u64) -> Result<()> {
    let _ = std::fs::remove_file(out);
    run(
        Command::new("mkfs.fat")
            .args(["-F", "32", "-n", "LVSBOX-ESP", "--invariant", "-i"])
            .arg(format!("{volume_id:08x}"))
            .arg("-h")
            .arg(hidden_sectors.to_string())
            .arg("-C")
            .arg(out)
            .arg((size / 1024).to_string()),
        "dosfstools",
    )?;
    set_mtime(uki, epoch)?;
    let mtools = |args: &[&str]| -> Result<()> {
        let mut cmd = Command::new(args[0]);
        cmd.arg("-i")
            .arg(out)
            .args(&args[1..])
            .env("MTOOLS_SKIP_CHECK", "1")
            .env("SOURCE_DATE_EPOCH", epoch.to_string());
        run(&mut cmd, "mtools").map(|_| ())
    };
    mtools(&["mmd", "::/EFI", "::/EFI/BOOT"])?;
    let uki = uki.to_str().context("non-UTF-8 path")?;
    mtools(&["mcopy", "-m", uki, "::/EFI/BOOT/BOOTX64.EFI"])?;
    Ok(())
}

/// Makes an ext4 image of `size` bytes labelled `label` from the files
/// `(name, contents)` at its root. UUID and hash seed come from `seed`; times
/// from `epoch`; ownership root.
pub fn make_ext4(
    files: &[(&str, &[u8])],
    out: &Path,
    size: u64,
    label: &str,
    seed: &str,
    epoch: u64,
    work: &Path,
) -> Result<()> {
    let stage = work.join("ext4-root");
    crate::util::remove_dir_all_if_exists(&stage)?;
    std::fs::create_dir_all(&stage)?;
    for (name, data) in files {
        ensure!(!name.contains('/'), "config partition files live at its root: {name}");
        let p = stage.join(name);
        std::fs::write(&p, data)?;
        set_mtime(&p, epoch)?;
    }
    set_mtime(&stage, epoch)?;
    let conf = work.join("mke2fs.conf");
    std::fs::write(&conf, MKE2FS_CONF)?;
    let uuid = Guid::derived(seed).to_string().to_lowercase();
    let _ = std::fs::remove_file(out);
    File::create(out)?.set_len(size)?;
    run(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-t", "ext4", "-L", label, "-U", &uuid, "-E"])
            .arg(format!("hash_seed={uuid},root_owner=0:0,nodiscard,lazy_itable_init=0,lazy_journal_init=0"))
            .arg("-d")
            .arg(&stage)
            .arg(out)
            .env("MKE2FS_CONFIG", &conf)
            .env("E2FSPROGS_FAKE_TIME", epoch.to_string()),
        "e2fsprogs",
    )?;
    // mkfs.ext4 -d copies each file's owner and ctime (which cannot be set on
    // the staging file): pin them to root and the epoch.
    if !files.is_empty() {
        let mut script = String::new();
        for (name, _) in files {
            for (field, value) in [("uid", "0".to_string()), ("gid", "0".to_string()), ("ctime", format!("@{epoch}"))] {
                script.push_str(&format!("set_inode_field /{name} {field} {value}\n"));
            }
        }
        let script_path = work.join("debugfs.cmds");
        std::fs::write(&script_path, script)?;
        run(
            Command::new("debugfs")
                .arg("-w")
                .arg("-f")
                .arg(&script_path)
                .arg(out)
                .env("E2FSPROGS_FAKE_TIME", epoch.to_string()),
            "e2fsprogs",
        )?;
        let _ = std::fs::remove_file(&script_path);
    }
    crate::util::remove_dir_all_if_exists(&stage)?;
    let _ = std::fs::remove_file(&conf);
    Ok(())
}

/// The GPT layout of the firmware disk: ESP then config partition. GUIDs are
/// derived from `seed` (the flavour), so they are stable across builds.
pub fn firmware_layout(seed: &str) -> Result<Layout> {
    Layout::new(
        Guid::derived(&format!("lvsbox:{seed}:disk")),
        &[
            PartSpec {
                name: ESP_PARTLABEL.into(),
                type_guid: Guid::parse(Guid::ESP)?,
                guid: Guid::derived(&format!("lvsbox:{seed}:esp")),
                size: ESP_SIZE,
            },
            PartSpec {
                name: lbd::paths::CONFIG_PARTLABEL.into(),
                type_guid: Guid::parse(Guid::LINUX_FS)?,
                guid: Guid::derived(&format!("lvsbox:{seed}:config")),
                size: CONFIG_SIZE,
            },
        ],
    )
}

/// Writes a raw disk with `layout`, filling partition `i` from `images[i]`.
pub fn assemble_disk(layout: &Layout, images: &[&Path], out: &Path) -> Result<()> {
    ensure!(images.len() == layout.parts.len(), "one image per partition");
    let _ = std::fs::remove_file(out);
    let mut f = File::options().create(true).truncate(true).read(true).write(true).open(out)?;
    layout.write(&mut f)?;
    for (part, img) in layout.parts.iter().zip(images) {
        let len = std::fs::metadata(img)?.len();
        ensure!(len <= part.size(), "{} ({len} bytes) does not fit partition {}", img.display(), part.name);
        copy_sparse_into(img, &mut f, part.offset())?;
    }
    f.flush()?;
    Ok(())
}

/// Overwrites the partition named `name` of a raw disk with `image`
/// (zero-filling the rest of the partition).
pub fn replace_partition(disk: &Path, name: &str, image: &Path) -> Result<()> {
    let mut f = File::options().read(true).write(true).open(disk)?;
    let parts = crate::gpt::read(&mut f)?;
    let part =
        parts.iter().find(|p| p.name == name).with_context(|| format!("{} has no partition {name}", disk.display()))?;
    let len = std::fs::metadata(image)?.len();
    ensure!(len <= part.size(), "{} does not fit partition {name}", image.display());
    // Zero the old contents sparsely: punch by rewriting zeros only where data was is
    // not portable, so write zeros over the whole partition in big chunks.
    let zeros = vec![0u8; 1 << 20];
    f.seek(SeekFrom::Start(part.offset()))?;
    let mut left = part.size();
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    copy_sparse_into(image, &mut f, part.offset())?;
    Ok(())
}

/// Converts a raw image to qcow2.
pub fn to_qcow2(raw: &Path, out: &Path) -> Result<()> {
    let _ = std::fs::remove_file(out);
    run(Command::new("qemu-img").args(["convert", "-q", "-f", "raw", "-O", "qcow2"]).arg(raw).arg(out), "qemu-utils")?;
    Ok(())
}

/// Creates a throwaway qcow2 overlay backed by `base` (which stays pristine).
pub fn overlay(base: &Path, out: &Path) -> Result<()> {
    let base = std::fs::canonicalize(base)?;
    let fmt = if base.extension().is_some_and(|e| e == "qcow2") { "qcow2" } else { "raw" };
    let _ = std::fs::remove_file(out);
    run(
        Command::new("qemu-img").args(["create", "-q", "-f", "qcow2", "-F", fmt, "-b"]).arg(&base).arg(out),
        "qemu-utils",
    )?;
    Ok(())
}

/// Writes a small raw GPT disk with one ext4 partition named `lvsbox-config`
/// holding `lvsbox.toml` = `toml_text` (no root, no loop mounts).
pub fn config_disk(toml_text: &str, out: &Path) -> Result<()> {
    config_disk_with(&[(CONFIG_FILE_NAME, toml_text.as_bytes())], out)
}

/// Like [`config_disk`], with any files at the partition's root (tests and
/// benchmarks put inputs next to `lvsbox.toml`).
pub fn config_disk_with(files: &[(&str, &[u8])], out: &Path) -> Result<()> {
    let work = out.with_file_name(format!(
        ".{}.work-{}",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("config"),
        std::process::id()
    ));
    std::fs::create_dir_all(&work)?;
    let result = (|| {
        let part = work.join("config.ext4");
        let epoch = crate::SOURCE_DATE_EPOCH;
        let bytes: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
        let size = CONFIG_SIZE.max((bytes * 2 + (16 << 20)).next_multiple_of(1 << 20));
        make_ext4(files, &part, size, lbd::paths::CONFIG_PARTLABEL, "lvsbox:config-disk", epoch, &work)?;
        let layout = Layout::new(
            Guid::derived("lvsbox:config-disk:disk"),
            &[PartSpec {
                name: lbd::paths::CONFIG_PARTLABEL.into(),
                type_guid: Guid::parse(Guid::LINUX_FS)?,
                guid: Guid::derived("lvsbox:config-disk:config"),
                size,
            }],
        )?;
        assemble_disk(&layout, &[&part], out)
    })();
    crate::util::remove_dir_all_if_exists(&work)?;
    result
}
