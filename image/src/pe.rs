//! PE/COFF header reading and the section layout of a unified kernel image
//! (UKI): the payload sections go after the stub's last section, each at a
//! virtual address rounded up to the stub's `SectionAlignment`.

use anyhow::{Context, Result, ensure};

/// What the UKI layout needs from a PE image's headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeInfo {
    pub image_base: u64,
    pub section_alignment: u64,
    pub file_alignment: u64,
    /// (name, virtual address (RVA), virtual size)
    pub sections: Vec<(String, u64, u64)>,
    /// File offset of the COFF `TimeDateStamp`.
    pub timestamp_offset: usize,
    /// File offset of the optional header's `CheckSum`.
    pub checksum_offset: usize,
}

fn rd<const N: usize>(b: &[u8], off: usize) -> Result<[u8; N]> {
    Ok(b.get(off..off + N).context("PE file truncated")?.try_into()?)
}

/// Reads the DOS stub, COFF header, PE32+ optional header and section table.
pub fn parse(b: &[u8]) -> Result<PeInfo> {
    ensure!(b.get(..2) == Some(b"MZ"), "not a PE file (no MZ)");
    let pe = u32::from_le_bytes(rd(b, 0x3c)?) as usize;
    ensure!(b.get(pe..pe + 4) == Some(b"PE\0\0"), "not a PE file (no PE signature)");
    let coff = pe + 4;
    let nsections = u16::from_le_bytes(rd(b, coff + 2)?) as usize;
    let opt_size = u16::from_le_bytes(rd(b, coff + 16)?) as usize;
    let opt = coff + 20;
    ensure!(u16::from_le_bytes(rd(b, opt)?) == 0x20b, "not a PE32+ image");
    let image_base = u64::from_le_bytes(rd(b, opt + 24)?);
    let section_alignment = u64::from(u32::from_le_bytes(rd(b, opt + 32)?));
    let file_alignment = u64::from(u32::from_le_bytes(rd(b, opt + 36)?));
    ensure!(section_alignment.is_power_of_two(), "bad SectionAlignment {section_alignment:#x}");
    let mut sections = Vec::new();
    let table = opt + opt_size;
    for i in 0..nsections {
        let s = table + i * 40;
        let raw: [u8; 8] = rd(b, s)?;
        let name = String::from_utf8_lossy(&raw).trim_end_matches('\0').to_string();
        let vsize = u64::from(u32::from_le_bytes(rd(b, s + 8)?));
        let va = u64::from(u32::from_le_bytes(rd(b, s + 12)?));
        sections.push((name, va, vsize));
    }
    Ok(PeInfo {
        image_base,
        section_alignment,
        file_alignment,
        sections,
        timestamp_offset: coff + 4,
        checksum_offset: opt + 64,
    })
}

impl PeInfo {
    /// First free RVA after every section, aligned to `SectionAlignment`.
    pub fn end_of_image(&self) -> u64 {
        let end = self.sections.iter().map(|(_, va, size)| va + size).max().unwrap_or(0);
        end.next_multiple_of(self.section_alignment)
    }

    /// Places payload sections (name, size) one after another, each on a
    /// 4 KiB page (or the stub's `SectionAlignment` if larger): systemd-stub
    /// hands the kernel the `.initrd` in place, and the kernel frees it page
    /// by page (an unaligned initrd makes it warn in `free_init_pages`).
    /// Returns (name, VMA = ImageBase + RVA) as `objcopy --change-section-vma` wants.
    pub fn place(&self, payloads: &[(&str, u64)]) -> Vec<(String, u64)> {
        let align = self.section_alignment.max(4096);
        let mut rva = self.end_of_image().next_multiple_of(align);
        payloads
            .iter()
            .map(|(name, size)| {
                let at = rva;
                rva = (rva + size.max(&1)).next_multiple_of(align);
                (name.to_string(), self.image_base + at)
            })
            .collect()
    }
}

/// The PE image checksum (as `objcopy`, `link.exe` and `MapFileAndCheckSum`
/// compute it): 16-bit one's-complement-style sum of the file with the
/// checksum field taken as zero, folded, plus the file length.
pub fn checksum(b: &[u8], checksum_offset: usize) -> u32 {
    let mut sum: u64 = 0;
    for (i, chunk) in b.chunks(2).enumerate() {
        let off = i * 2;
        if off >= checksum_offset && off < checksum_offset + 4 {
            continue;
        }
        let w = if chunk.len() == 2 { u16::from_le_bytes([chunk[0], chunk[1]]) } else { u16::from(chunk[0]) };
        sum += u64::from(w);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    (sum as u32).wrapping_add(b.len() as u32)
}

/// Sets the COFF `TimeDateStamp` to `stamp` and recomputes the checksum.
pub fn set_timestamp(b: &mut [u8], stamp: u32) -> Result<()> {
    let info = parse(b)?;
    b[info.timestamp_offset..info.timestamp_offset + 4].copy_from_slice(&stamp.to_le_bytes());
    let sum = checksum(b, info.checksum_offset);
    b[info.checksum_offset..info.checksum_offset + 4].copy_from_slice(&sum.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal PE32+ header with the given sections (name, va, vsize).
    fn fake_pe(image_base: u64, align: u32, sections: &[(&str, u32, u32)]) -> Vec<u8> {
        let pe = 0x80usize;
        let opt_size = 240usize;
        let mut b = vec![0u8; pe + 24 + opt_size + 40 * sections.len()];
        b[0..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&(pe as u32).to_le_bytes());
        b[pe..pe + 4].copy_from_slice(b"PE\0\0");
        b[pe + 6..pe + 8].copy_from_slice(&(sections.len() as u16).to_le_bytes());
        b[pe + 20..pe + 22].copy_from_slice(&(opt_size as u16).to_le_bytes());
        let opt = pe + 24;
        b[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        b[opt + 24..opt + 32].copy_from_slice(&image_base.to_le_bytes());
        b[opt + 32..opt + 36].copy_from_slice(&align.to_le_bytes());
        b[opt + 36..opt + 40].copy_from_slice(&0x200u32.to_le_bytes());
        for (i, (name, va, size)) in sections.iter().enumerate() {
            let s = opt + opt_size + 40 * i;
            b[s..s + name.len()].copy_from_slice(name.as_bytes());
            b[s + 8..s + 12].copy_from_slice(&size.to_le_bytes());
            b[s + 12..s + 16].copy_from_slice(&va.to_le_bytes());
        }
        b
    }

    #[test]
    fn places_sections_after_the_last_one_aligned() {
        // The shape of systemd 252's linuxx64.efi.stub: last section .sdmagic at 0x19100+0x34.
        let stub =
            fake_pe(0, 0x200, &[(".text", 0x4000, 0xbff0), (".sdmagic", 0x19100, 0x34), (".sbat", 0x19000, 0xe2)]);
        let pe = parse(&stub).unwrap();
        assert_eq!(pe.section_alignment, 0x200);
        assert_eq!(pe.sections.len(), 3);
        assert_eq!(pe.end_of_image(), 0x19200);
        let placed = pe.place(&[(".osrel", 0x150), (".cmdline", 0x200), (".linux", 0x7a_b123), (".initrd", 10)]);
        // Each payload on its own 4 KiB page, though the stub aligns to 512.
        assert_eq!(placed[0], (".osrel".to_string(), 0x1a000));
        assert_eq!(placed[1], (".cmdline".to_string(), 0x1b000));
        assert_eq!(placed[2], (".linux".to_string(), 0x1c000));
        assert_eq!(placed[3], (".initrd".to_string(), (0x1c000 + 0x7a_b123u64).next_multiple_of(0x1000)));
    }

    #[test]
    fn image_base_is_added_and_alignment_respected() {
        let pe = parse(&fake_pe(0x1_0000_0000, 0x1000, &[(".text", 0x1000, 0x10)])).unwrap();
        let placed = pe.place(&[(".a", 1), (".b", 0x1001)]);
        assert_eq!(placed[0].1, 0x1_0000_2000);
        assert_eq!(placed[1].1, 0x1_0000_3000);
        for (_, vma) in placed {
            assert_eq!(vma % 0x1000, 0);
        }
    }

    #[test]
    fn rejects_non_pe() {
        assert!(parse(b"\x7fELF....").is_err());
        let mut b = fake_pe(0, 0x200, &[]);
        b[0x80] = b'X';
        assert!(parse(&b).is_err());
    }

    #[test]
    fn checksum_matches_objcopy_and_timestamp_is_pinned() {
        // objcopy writes the current time and a checksum over it: we must agree with its checksum.
        let dir = std::env::temp_dir().join(format!("lvsbox-pe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sect = dir.join("payload");
        std::fs::write(&sect, b"console=ttyS0").unwrap();
        let out = dir.join("u.efi");
        let st = std::process::Command::new("objcopy")
            .arg("--add-section")
            .arg(format!(".cmdline={}", sect.display()))
            .args(["--change-section-vma", ".cmdline=0x30000", "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"])
            .arg(&out)
            .status()
            .expect("objcopy (binutils)");
        assert!(st.success());
        let mut b = std::fs::read(&out).unwrap();
        let info = parse(&b).unwrap();
        let stored = u32::from_le_bytes(b[info.checksum_offset..info.checksum_offset + 4].try_into().unwrap());
        assert_ne!(stored, 0, "objcopy writes a checksum");
        assert_eq!(checksum(&b, info.checksum_offset), stored);
        set_timestamp(&mut b, 0).unwrap();
        assert_eq!(b[info.timestamp_offset..info.timestamp_offset + 4], [0, 0, 0, 0]);
        let again = u32::from_le_bytes(b[info.checksum_offset..info.checksum_offset + 4].try_into().unwrap());
        assert_eq!(checksum(&b, info.checksum_offset), again);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_the_real_systemd_stub() {
        let stub = std::fs::read("/usr/lib/systemd/boot/efi/linuxx64.efi.stub").expect("systemd-boot-efi installed");
        let pe = parse(&stub).unwrap();
        assert!(pe.sections.iter().any(|(n, _, _)| n == ".sdmagic"));
        assert!(pe.end_of_image() > 0);
        assert_eq!(pe.end_of_image() % pe.section_alignment, 0);
    }
}
