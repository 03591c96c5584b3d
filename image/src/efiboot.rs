//! The UKI's `.linux`: Debian's kernel without its xz decompressor.
//!
//! Debian's bzImage unpacks its xz payload at every boot: about 7 s of a
//! 16 s OVMF boot under QEMU's TCG, against a fraction of a second on real
//! hardware. The `.linux` built here carries the same `vmlinux` (the payload,
//! as [`crate::bzimage::extract_vmlinux`] writes it) as a flat memory image
//! whose all-zero pages are left out, and a small loader
//! (`image/efiboot`, Rust without std) that copies it into place and enters
//! it at `startup_64`. Layout:
//!
//! ```text
//! [0, (setup_sects+1)*512)   Debian's setup sectors; header patched (below)
//! pm + 0                     descriptor (512 bytes, `LVSBOOT1`)
//! pm + 512                   the loader, its entry first
//! pm + bitmap_off            one bit per 4 KiB page of the kernel image
//! pm + data_off              the stored (non-zero) pages, 4 KiB aligned
//! ```
//!
//! systemd-stub 252 boots a `.linux` whose PE image version is 0 through the
//! EFI handover protocol: it calls `code32_start + 512 + handover_offset`,
//! i.e. `pm + 512` with `handover_offset = 0`. The setup header is Debian's
//! with these changes: PE image version 0.0, `handover_offset` 0, only the
//! 64-bit handover advertised, no payload and no `kernel_info`, `syssize`
//! covering the new protected-mode part.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::bzimage::setup_len;
use crate::elf::{Elf, u16_at, u32_at, u64_at};

const PAGE: usize = 4096;
const DESC_SIZE: usize = 512;
const DESC_MAGIC: &[u8; 8] = b"LVSBOOT1";

/// A `PT_LOAD` program header.
#[derive(Clone, Copy, Debug)]
struct Load {
    offset: usize,
    vaddr: u64,
    paddr: u64,
    filesz: usize,
    memsz: usize,
}

fn loads(elf: &[u8]) -> Result<(u64, Vec<Load>)> {
    ensure!(elf.starts_with(b"\x7fELF\x02\x01"), "not a little-endian ELF64 file");
    let entry = u64_at(elf, 24)?;
    let phoff = usize::try_from(u64_at(elf, 32)?)?;
    let phentsize = usize::from(u16_at(elf, 54)?);
    let phnum = usize::from(u16_at(elf, 56)?);
    let mut out = Vec::new();
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        if u32_at(elf, p)? != 1 {
            continue;
        }
        let l = Load {
            offset: usize::try_from(u64_at(elf, p + 8)?)?,
            vaddr: u64_at(elf, p + 16)?,
            paddr: u64_at(elf, p + 24)?,
            filesz: usize::try_from(u64_at(elf, p + 32)?)?,
            memsz: usize::try_from(u64_at(elf, p + 40)?)?,
        };
        ensure!(l.filesz <= l.memsz && elf.len() >= l.offset + l.filesz, "PT_LOAD outside the file");
        out.push(l);
    }
    ensure!(!out.is_empty(), "no PT_LOAD segment");
    Ok((entry, out))
}

/// The loader's memory image from its ELF (linked at 0 by link.ld): every
/// `PT_LOAD` at its address, `.bss` as zeros. Checks that the entry is at 0
/// and that every dynamic relocation is `R_X86_64_RELATIVE` (the only kind
/// the entry applies).
pub fn flatten_loader(elf_bytes: &[u8]) -> Result<Vec<u8>> {
    let (entry, segs) = loads(elf_bytes)?;
    ensure!(entry == 0, "the loader's entry is at {entry:#x}, not 0 (link.ld puts .text.entry first)");
    let end = segs.iter().map(|s| s.vaddr as usize + s.memsz).max().unwrap_or(0);
    ensure!(end < 1 << 20, "the loader is {end} bytes: not what link.ld makes");
    let mut img = vec![0u8; end];
    for s in &segs {
        img[s.vaddr as usize..s.vaddr as usize + s.filesz].copy_from_slice(&elf_bytes[s.offset..s.offset + s.filesz]);
    }
    let elf = Elf::parse(elf_bytes)?;
    if let Some(rela) = elf.section_by_name(".rela.dyn")? {
        for r in rela.chunks(24) {
            let kind = u32_at(r, 8)?;
            ensure!(kind == 8, "the loader has a relocation of type {kind}; its entry applies only R_X86_64_RELATIVE");
        }
    }
    Ok(img)
}

/// The kernel's memory image, as its decompressor would lay it out: every
/// `PT_LOAD` at its physical address relative to the first. Returns the
/// image (a multiple of 4 KiB), the lowest physical address and the entry's
/// offset.
fn kernel_image(vmlinux: &[u8]) -> Result<(Vec<u8>, u64, u64)> {
    let (entry, segs) = loads(vmlinux)?;
    let base = segs.iter().map(|s| s.paddr).min().unwrap_or(0);
    ensure!(base % PAGE as u64 == 0, "kernel's first segment at {base:#x} is not page aligned");
    let end = segs.iter().map(|s| s.paddr + s.memsz as u64).max().unwrap_or(0);
    let len = usize::try_from(end - base)?.next_multiple_of(PAGE);
    ensure!(len < 1 << 30, "kernel image of {len} bytes");
    ensure!(entry >= base && entry < end, "kernel entry {entry:#x} outside its image");
    let mut img = vec![0u8; len];
    for s in &segs {
        let at = usize::try_from(s.paddr - base)?;
        img[at..at + s.filesz].copy_from_slice(&vmlinux[s.offset..s.offset + s.filesz]);
    }
    Ok((img, base, entry - base))
}

/// Builds the `.linux` from Debian's bzImage (for its setup header), the
/// `vmlinux` inside it and the loader's memory image.
pub fn make_linux(bzimage: &[u8], vmlinux: &[u8], loader: &[u8]) -> Result<Vec<u8>> {
    ensure!(bzimage.get(0x202..0x206) == Some(b"HdrS"), "not a bzImage (no HdrS setup header)");
    ensure!(u16_at(bzimage, 0x1fe)? == 0xaa55, "bzImage without boot flag");
    let version = u16_at(bzimage, 0x206)?;
    ensure!(version >= 0x20c, "boot protocol {version:#x}: the EFI handover needs 2.12");
    ensure!(bzimage[0x234] == 1, "the kernel is not relocatable");
    let xlf = u16_at(bzimage, 0x236)?;
    ensure!(xlf & 0x9 == 0x9, "the kernel has no 64-bit entry or 64-bit EFI handover (xloadflags {xlf:#x})");
    let align = u64::from(u32_at(bzimage, 0x230)?);
    let setup_len = setup_len(bzimage)?;
    let mut out = bzimage.get(..setup_len).context("bzImage shorter than its setup")?.to_vec();

    // The PE header (Debian's kernel is also a PE image): image version 0.0
    // makes systemd-stub use the handover protocol (systemd's pe.c: kernels
    // before 5.8, without LINUX_INITRD_MEDIA, say 0).
    ensure!(&out[..2] == b"MZ", "bzImage without PE header");
    let pe = usize::try_from(u32_at(&out, 0x3c)?)?;
    ensure!(out.get(pe..pe + 4) == Some(b"PE\0\0"), "bzImage PE signature missing");
    let opt = pe + 24;
    ensure!(u16_at(&out, opt)? == 0x20b, "bzImage PE optional header is not PE32+");
    out[opt + 44..opt + 48].fill(0);

    let (kimg, kbase, kentry) = kernel_image(vmlinux)?;
    let pages = kimg.len() / PAGE;
    let stored: Vec<bool> = kimg.chunks(PAGE).map(|p| p.iter().any(|&b| b != 0)).collect();
    let nstored = stored.iter().filter(|&&s| s).count();
    let mut bitmap = vec![0u8; pages.div_ceil(8)];
    for (i, _) in stored.iter().enumerate().filter(|(_, s)| **s) {
        bitmap[i / 8] |= 1 << (i % 8);
    }
    let bitmap_off = DESC_SIZE + loader.len();
    let data_off = (bitmap_off + bitmap.len()).next_multiple_of(PAGE);
    let pm_len = data_off + nstored * PAGE;

    let mut desc = Vec::with_capacity(DESC_SIZE);
    desc.extend_from_slice(DESC_MAGIC);
    for v in [pages as u64, bitmap_off as u64, data_off as u64, nstored as u64, kentry, kbase, align] {
        desc.extend_from_slice(&v.to_le_bytes());
    }
    desc.resize(DESC_SIZE, 0);

    let mut pm = Vec::with_capacity(pm_len);
    pm.extend_from_slice(&desc);
    pm.extend_from_slice(loader);
    pm.extend_from_slice(&bitmap);
    pm.resize(data_off, 0);
    for (page, _) in kimg.chunks(PAGE).zip(&stored).filter(|(_, s)| **s) {
        pm.extend_from_slice(page);
    }
    debug_assert_eq!(pm.len(), pm_len);

    // The setup header.
    let syssize = u32::try_from(pm_len.div_ceil(16))?;
    out[0x1f4..0x1f8].copy_from_slice(&syssize.to_le_bytes());
    // Only the 64-bit handover entry exists now (no 32-bit one, no kexec
    // entry); keep what describes the kernel itself (64-bit, above 4G, 5-level).
    let xlf = xlf & !(0x4 | 0x10);
    out[0x236..0x238].copy_from_slice(&xlf.to_le_bytes());
    out[0x248..0x250].fill(0); // payload_offset, payload_length
    out[0x264..0x268].fill(0); // handover_offset: the entry is at pm + 512
    if version >= 0x20f {
        out[0x268..0x26c].fill(0); // kernel_info_offset (it was in the old decompressor)
    }
    out.extend_from_slice(&pm);
    Ok(out)
}

/// Builds the loader (`image/efiboot`, its own cargo workspace, no
/// dependencies) into `target_dir` and returns its memory image.
pub fn build_loader(root: &Path, target_dir: &Path, epoch: u64) -> Result<Vec<u8>> {
    let manifest = root.join("image/efiboot/Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let flags = [
        format!("--remap-path-prefix={}=/lvsbox", root.display()),
        format!("--remap-path-prefix={}=/target", target_dir.display()),
    ];
    let status = Command::new(cargo)
        .args(["build", "--release", "--locked", "--offline", "--target", crate::builder::RUST_TARGET])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .status()
        .context("running cargo for image/efiboot")?;
    ensure!(status.success(), "cargo build of image/efiboot failed");
    let elf: PathBuf = target_dir.join(crate::builder::RUST_TARGET).join("release/efiboot");
    let bytes = std::fs::read(&elf).with_context(|| format!("reading {}", elf.display()))?;
    flatten_loader(&bytes)
}

/// Reads the descriptor of a `.linux` made by [`make_linux`]: (pages,
/// stored pages, entry offset, preferred address). For tests and `image
/// inspect`-style checks.
pub fn describe(linux: &[u8]) -> Result<(u64, u64, u64, u64)> {
    let pm = setup_len(linux)?;
    if linux.get(pm..pm + 8) != Some(DESC_MAGIC) {
        bail!("no lvsbox loader descriptor");
    }
    Ok((u64_at(linux, pm + 8)?, u64_at(linux, pm + 32)?, u64_at(linux, pm + 40)?, u64_at(linux, pm + 48)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 header with program headers for `segs` (type, offset,
    /// vaddr, paddr, filesz, memsz), then `body` from offset 0x1000.
    fn elf(entry: u64, segs: &[(u32, u64, u64, u64, u64, u64)], body: &[u8]) -> Vec<u8> {
        let mut e = vec![0u8; 0x1000];
        e[..6].copy_from_slice(b"\x7fELF\x02\x01");
        e[24..32].copy_from_slice(&entry.to_le_bytes());
        e[32..40].copy_from_slice(&64u64.to_le_bytes());
        e[54..56].copy_from_slice(&56u16.to_le_bytes());
        e[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        for (i, s) in segs.iter().enumerate() {
            let p = 64 + 56 * i;
            e[p..p + 4].copy_from_slice(&s.0.to_le_bytes());
            for (k, v) in [s.1, s.2, s.3, s.4, s.5].into_iter().enumerate() {
                e[p + 8 + 8 * k..p + 16 + 8 * k].copy_from_slice(&v.to_le_bytes());
            }
        }
        e.extend_from_slice(body);
        e
    }

    fn bzimage() -> Vec<u8> {
        let mut b = vec![0u8; 2 * 512 + 64];
        b[..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        b[0x80 + 24..0x80 + 26].copy_from_slice(&0x20bu16.to_le_bytes());
        b[0x80 + 24 + 44..0x80 + 24 + 46].copy_from_slice(&1u16.to_le_bytes());
        b[0x1f1] = 1;
        b[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x206..0x208].copy_from_slice(&0x20fu16.to_le_bytes());
        b[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes());
        b[0x234] = 1;
        b[0x236..0x238].copy_from_slice(&0x7fu16.to_le_bytes());
        b[0x248..0x24c].copy_from_slice(&0x1234u32.to_le_bytes());
        b[0x264..0x268].copy_from_slice(&0x5678u32.to_le_bytes());
        b
    }

    #[test]
    fn the_linux_section_carries_every_nonzero_page_and_a_handover_header() {
        // Two segments: one page of text, a gap page, a page of data and a
        // page of bss (memsz > filesz).
        let mut body = vec![0u8; 2 * PAGE];
        body[10] = 0xcc;
        body[PAGE + 5] = 0x42;
        let vmlinux = elf(
            0x100_0000,
            &[
                (1, 0x1000, 0xffff_ffff_8100_0000, 0x100_0000, PAGE as u64, PAGE as u64),
                (1, 0x2000, 0xffff_ffff_8100_2000, 0x100_2000, PAGE as u64, 2 * PAGE as u64),
            ],
            &body,
        );
        let loader = vec![0x90u8; 100];
        let linux = make_linux(&bzimage(), &vmlinux, &loader).unwrap();
        let (pages, stored, entry, pref) = describe(&linux).unwrap();
        assert_eq!((pages, stored, entry, pref), (4, 2, 0, 0x100_0000));
        let pm = 2 * 512;
        // The loader sits where systemd-stub's handover jumps: pm + 512 + 0.
        assert_eq!(&linux[pm + 512..pm + 612], &loader[..]);
        assert_eq!(u32_at(&linux, 0x264).unwrap(), 0);
        assert_eq!(u32_at(&linux, 0x248).unwrap(), 0);
        assert_eq!(u16_at(&linux, 0x236).unwrap(), 0x7f & !0x14);
        // PE image version 0.0: systemd-stub takes the handover path.
        assert_eq!(u16_at(&linux, 0x80 + 24 + 44).unwrap(), 0);
        // Bitmap 0b0101: pages 0 and 2 stored, in order, page aligned.
        let bitmap_off = u64_at(&linux, pm + 16).unwrap() as usize;
        let data_off = u64_at(&linux, pm + 24).unwrap() as usize;
        assert_eq!(linux[pm + bitmap_off], 0b0101);
        assert_eq!(data_off % PAGE, 0);
        assert_eq!(linux[pm + data_off + 10], 0xcc);
        assert_eq!(linux[pm + data_off + PAGE + 5], 0x42);
        assert_eq!(linux.len(), pm + data_off + 2 * PAGE);
        // syssize covers the protected-mode part.
        assert_eq!(u32_at(&linux, 0x1f4).unwrap() as usize, (linux.len() - pm).div_ceil(16));
    }

    #[test]
    fn refuses_a_kernel_without_64bit_handover() {
        let mut bz = bzimage();
        bz[0x236..0x238].copy_from_slice(&0x1u16.to_le_bytes());
        let vmlinux = elf(0x100_0000, &[(1, 0x1000, 0, 0x100_0000, 16, 16)], &[1; 16]);
        let e = make_linux(&bz, &vmlinux, &[0x90]).unwrap_err();
        assert!(e.to_string().contains("handover"), "{e}");
    }

    #[test]
    fn the_loader_must_be_entered_at_zero() {
        let l = elf(0x10, &[(1, 0x1000, 0, 0, 32, 64)], &[0xc3; 32]);
        assert!(flatten_loader(&l).unwrap_err().to_string().contains("entry"));
        let l = elf(0, &[(1, 0x1000, 0, 0, 32, 64)], &[0xc3; 32]);
        let img = flatten_loader(&l).unwrap();
        assert_eq!(img.len(), 64);
        assert!(img[32..].iter().all(|&b| b == 0));
    }
}
