//! The uncompressed kernel (`vmlinux`) inside Debian's `vmlinuz`, for the
//! lab's direct kernel boots.
//!
//! A bzImage carries the kernel as a compressed payload (xz for Debian's
//! kernel) that its decompressor stub unpacks at every boot. Under QEMU's
//! TCG that stub is the slowest part of the whole boot: unpacking Debian's
//! 66 MB kernel took 6-10 s of a 12-15 s boot on the development machines,
//! against well under a second on real hardware. The payload is the plain
//! ELF `vmlinux`, which has a PVH entry point (Xen's
//! `XEN_ELFNOTE_PHYS32_ENTRY` note, `CONFIG_PVH=y`): QEMU's `-kernel`
//! boots such an ELF directly, skipping the decompressor. Same kernel, same
//! bytes once decompressed. The lab's direct boots use it (`image run` and
//! the test harness, see [`crate::Artefacts::direct_kernel`]), and so does
//! the UKI (what real boxes boot), behind lvsbox's own loader instead of the
//! decompressor (see [`crate::efiboot`]).

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

use crate::elf::Elf;

/// The compression of a bzImage payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Xz,
    Zstd,
    Gzip,
}

impl Codec {
    fn of(data: &[u8]) -> Option<Codec> {
        if data.starts_with(b"\xfd7zXZ\x00") {
            Some(Codec::Xz)
        } else if data.starts_with(b"\x28\xb5\x2f\xfd") {
            Some(Codec::Zstd)
        } else if data.starts_with(b"\x1f\x8b") {
            Some(Codec::Gzip)
        } else {
            None
        }
    }
}

fn u32_at(b: &[u8], off: usize) -> Result<u32> {
    let s = b.get(off..off + 4).context("bzImage truncated")?;
    Ok(u32::from_le_bytes(s.try_into()?))
}

/// Where a bzImage's protected-mode part starts: after its setup sectors
/// and the boot sector (`setup_sects` 0 means 4, boot protocol).
pub fn setup_len(bz: &[u8]) -> Result<usize> {
    let setup_sects = match *bz.get(0x1f1).context("bzImage truncated")? {
        0 => 4,
        n => usize::from(n),
    };
    Ok((setup_sects + 1) * 512)
}

/// The compressed payload of a bzImage and its codec, from the boot
/// protocol's setup header (`payload_offset`/`payload_length`, protocol
/// 2.08+, relative to the protected-mode code after the setup sectors).
pub fn payload(bz: &[u8]) -> Result<(&[u8], Codec)> {
    ensure!(bz.get(0x202..0x206) == Some(b"HdrS"), "not a bzImage (no HdrS setup header)");
    let version = u16::from_le_bytes([bz[0x206], bz[0x207]]);
    ensure!(version >= 0x208, "boot protocol {version:#x} has no payload fields");
    let pm = setup_len(bz)?;
    let off = pm + usize::try_from(u32_at(bz, 0x248)?)?;
    let len = usize::try_from(u32_at(bz, 0x24c)?)?;
    let data = bz.get(off..off + len).context("payload outside the bzImage")?;
    let codec = Codec::of(data).context("unknown payload compression")?;
    Ok((data, codec))
}

/// Whether an ELF kernel has a PVH entry point (a `Xen` note of type
/// `XEN_ELFNOTE_PHYS32_ENTRY`, 18), which QEMU's `-kernel` needs for an ELF.
pub fn has_pvh_entry(elf: &[u8]) -> Result<bool> {
    let e = Elf::parse(elf)?;
    let Some(notes) = e.section_by_name(".notes")? else { return Ok(false) };
    let mut i = 0;
    let pad = |n: usize| n.div_ceil(4) * 4;
    while i + 12 <= notes.len() {
        let namesz = u32::from_le_bytes(notes[i..i + 4].try_into()?) as usize;
        let descsz = u32::from_le_bytes(notes[i + 4..i + 8].try_into()?) as usize;
        let kind = u32::from_le_bytes(notes[i + 8..i + 12].try_into()?);
        let name = notes.get(i + 12..i + 12 + namesz).unwrap_or_default();
        if name == b"Xen\0" && kind == 18 {
            return Ok(true);
        }
        i += 12 + pad(namesz) + pad(descsz);
    }
    Ok(false)
}

/// Writes the `vmlinux` of `vmlinuz` to `out` (decompressed with the host's
/// `xz`, `zstd` or `gzip`), unless `out` already holds it (a stamp file
/// next to it records the SHA256 of the bzImage it came from). Returns
/// false, writing nothing, when the kernel has no PVH entry point.
pub fn extract_vmlinux(vmlinuz: &Path, out: &Path) -> Result<bool> {
    let bz = std::fs::read(vmlinuz).with_context(|| format!("reading {}", vmlinuz.display()))?;
    let src = crate::util::sha256_file(vmlinuz)?;
    let stamp = out.with_extension("source-sha256");
    if out.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == src) {
        return Ok(true);
    }
    let _ = std::fs::remove_file(&stamp);
    let (data, codec) = payload(&bz)?;
    let (tool, args): (&str, &[&str]) = match codec {
        // The payload is followed by its uncompressed size (4 bytes).
        Codec::Xz => ("xz", &["-dc", "--single-stream"]),
        Codec::Zstd => ("zstd", &["-dcq"]),
        Codec::Gzip => ("gzip", &["-dcq"]),
    };
    let tmp = out.with_extension("partial");
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&tmp)?)
        .spawn()
        .with_context(|| format!("running {tool}"))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("stdin")?;
        // gzip/zstd may stop reading at the end of their stream.
        let _ = stdin.write_all(data);
    }
    let status = child.wait()?;
    // gzip warns (status 2) about the trailing size; the ELF check decides.
    if !status.success() && codec != Codec::Gzip {
        bail!("{tool} failed to decompress the kernel payload ({status})");
    }
    let elf = std::fs::read(&tmp)?;
    if !has_pvh_entry(&elf).unwrap_or(false) {
        std::fs::remove_file(&tmp)?;
        return Ok(false);
    }
    std::fs::rename(&tmp, out)?;
    std::fs::write(&stamp, format!("{src}\n"))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal bzImage: 1 setup sector + boot sector, payload at offset 16
    /// of the protected-mode code.
    fn fake_bzimage(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 2 * 512 + 16];
        b[0x1f1] = 1;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        b[0x248..0x24c].copy_from_slice(&16u32.to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(payload);
        b.extend_from_slice(&[1, 2, 3, 4]); // the size trailer
        b
    }

    #[test]
    fn finds_the_payload_and_its_codec() {
        let p = b"\xfd7zXZ\x00rest-of-stream";
        let bz = fake_bzimage(p);
        let (data, codec) = payload(&bz).unwrap();
        assert_eq!(data, p);
        assert_eq!(codec, Codec::Xz);
        assert_eq!(payload(&fake_bzimage(b"\x28\xb5\x2f\xfdzz")).unwrap().1, Codec::Zstd);
        assert!(payload(&fake_bzimage(b"????")).is_err(), "unknown codec");
        assert!(payload(&[0u8; 600]).is_err(), "no setup header");
        let mut short = fake_bzimage(p);
        short.truncate(1000);
        assert!(payload(&short).is_err());
    }

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&(name.len() as u32).to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&kind.to_le_bytes());
        n.extend_from_slice(name);
        n.resize(n.len().div_ceil(4) * 4, 0);
        n.extend_from_slice(desc);
        n.resize(n.len().div_ceil(4) * 4, 0);
        n
    }

    #[test]
    fn pvh_note_is_recognised() {
        let mut notes = note(b"Xen\0", 6, b"linux\0");
        notes.extend(note(b"GNU\0", 18, &[0; 20]));
        let without = crate::elf::tests::fake_elf(&[(".notes", &notes)]);
        assert!(!has_pvh_entry(&without).unwrap(), "type 18 under another name is not PVH");
        notes.extend(note(b"Xen\0", 18, &[0, 0, 0, 1]));
        let with = crate::elf::tests::fake_elf(&[(".notes", &notes)]);
        assert!(has_pvh_entry(&with).unwrap());
        let none = crate::elf::tests::fake_elf(&[(".text", b"x")]);
        assert!(!has_pvh_entry(&none).unwrap());
    }

    #[test]
    fn extracts_an_xz_payload_with_the_host_tool() {
        let dir = std::env::temp_dir().join(format!("lvsbox-bz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let elf = crate::elf::tests::fake_elf(&[(".notes", &note(b"Xen\0", 18, &[0, 0, 0, 1]))]);
        let raw = dir.join("vmlinux.raw");
        std::fs::write(&raw, &elf).unwrap();
        let xz = Command::new("xz").args(["--check=crc32", "-c"]).arg(&raw).output().unwrap();
        assert!(xz.status.success());
        let bz = dir.join("vmlinuz");
        std::fs::write(&bz, fake_bzimage(&xz.stdout)).unwrap();
        let out = dir.join("vmlinux");
        assert!(extract_vmlinux(&bz, &out).unwrap());
        assert_eq!(std::fs::read(&out).unwrap(), elf);
        // Done once per kernel: a second call keeps the file.
        let t = std::fs::metadata(&out).unwrap().modified().unwrap();
        assert!(extract_vmlinux(&bz, &out).unwrap());
        assert_eq!(std::fs::metadata(&out).unwrap().modified().unwrap(), t);
        // No PVH note: nothing written.
        let plain = crate::elf::tests::fake_elf(&[(".text", b"x")]);
        std::fs::write(&raw, &plain).unwrap();
        let xz = Command::new("xz").args(["--check=crc32", "-c"]).arg(&raw).output().unwrap();
        std::fs::write(&bz, fake_bzimage(&xz.stdout)).unwrap();
        let out2 = dir.join("vmlinux2");
        assert!(!extract_vmlinux(&bz, &out2).unwrap());
        assert!(!out2.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
