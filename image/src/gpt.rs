//! GUID partition tables, written in Rust so they are byte-for-byte
//! reproducible (GUIDs fixed or derived from names, no tool defaults), plus a
//! reader to find partitions by name.
//!
//! Layout: 512-byte sectors, partitions aligned to 1 MiB, 128 entries of 128
//! bytes, protective MBR, primary header at LBA 1, backup at the last LBA.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

pub const SECTOR: u64 = 512;
/// Partition alignment (and the gap before the first partition).
pub const ALIGN: u64 = 1024 * 1024;
const ENTRIES: u64 = 128;
const ENTRY_SIZE: u64 = 128;
const ENTRY_SECTORS: u64 = ENTRIES * ENTRY_SIZE / SECTOR;

/// A GUID in its on-disk (mixed-endian) byte order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// EFI System Partition.
    pub const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
    /// Linux filesystem data.
    pub const LINUX_FS: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

    /// Parses `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`.
    pub fn parse(s: &str) -> Result<Guid> {
        let hex: String = s.chars().filter(|&c| c != '-').collect();
        ensure!(hex.len() == 32 && s.len() == 36, "bad GUID {s}");
        let mut b = [0u8; 16];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).with_context(|| format!("bad GUID {s}"))?;
        }
        Ok(Guid::from_rfc_bytes(b))
    }

    fn from_rfc_bytes(b: [u8; 16]) -> Guid {
        let mut d = b;
        d[0..4].reverse();
        d[4..6].reverse();
        d[6..8].reverse();
        Guid(d)
    }

    fn rfc_bytes(&self) -> [u8; 16] {
        Guid::from_rfc_bytes(self.0).0
    }

    /// A version-4-shaped GUID derived from `seed` (stable across builds).
    pub fn derived(seed: &str) -> Guid {
        let h = Sha256::digest(seed.as_bytes());
        let mut b = [0u8; 16];
        b.copy_from_slice(&h[..16]);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Guid::from_rfc_bytes(b)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.rfc_bytes();
        for (i, x) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{x:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A partition to create.
#[derive(Clone, Debug)]
pub struct PartSpec {
    pub name: String,
    pub type_guid: Guid,
    pub guid: Guid,
    pub size: u64,
}

/// A partition as laid out (or read back).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub type_guid: Guid,
    pub guid: Guid,
    pub first_lba: u64,
    pub last_lba: u64,
}

impl Part {
    pub fn offset(&self) -> u64 {
        self.first_lba * SECTOR
    }
    pub fn size(&self) -> u64 {
        (self.last_lba + 1 - self.first_lba) * SECTOR
    }
}

/// A whole-disk layout.
#[derive(Clone, Debug)]
pub struct Layout {
    pub disk_guid: Guid,
    pub parts: Vec<Part>,
    /// Disk size in bytes.
    pub size: u64,
}

impl Layout {
    /// Places partitions one after another at 1 MiB boundaries, leaving 1 MiB
    /// at each end for the tables.
    pub fn new(disk_guid: Guid, specs: &[PartSpec]) -> Result<Layout> {
        let mut offset = ALIGN;
        let mut parts = Vec::new();
        for s in specs {
            ensure!(s.size > 0 && s.size % SECTOR == 0, "partition {} size must be a positive multiple of 512", s.name);
            ensure!(s.name.encode_utf16().count() <= 36, "partition name {} too long", s.name);
            parts.push(Part {
                name: s.name.clone(),
                type_guid: s.type_guid,
                guid: s.guid,
                first_lba: offset / SECTOR,
                last_lba: (offset + s.size) / SECTOR - 1,
            });
            offset = (offset + s.size).next_multiple_of(ALIGN);
        }
        Ok(Layout { disk_guid, parts, size: offset + ALIGN })
    }

    fn last_lba(&self) -> u64 {
        self.size / SECTOR - 1
    }

    fn entries(&self) -> Vec<u8> {
        let mut out = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
        for (i, p) in self.parts.iter().enumerate() {
            let e = &mut out[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize];
            e[0..16].copy_from_slice(&p.type_guid.0);
            e[16..32].copy_from_slice(&p.guid.0);
            e[32..40].copy_from_slice(&p.first_lba.to_le_bytes());
            e[40..48].copy_from_slice(&p.last_lba.to_le_bytes());
            for (j, c) in p.name.encode_utf16().enumerate() {
                e[56 + 2 * j..58 + 2 * j].copy_from_slice(&c.to_le_bytes());
            }
        }
        out
    }

    fn header(&self, primary: bool, entries_crc: u32) -> Vec<u8> {
        let last = self.last_lba();
        let (my, alt, entries_lba) = if primary { (1, last, 2) } else { (last, 1, last - ENTRY_SECTORS) };
        let mut h = vec![0u8; SECTOR as usize];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my.to_le_bytes());
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[40..48].copy_from_slice(&(2 + ENTRY_SECTORS).to_le_bytes());
        h[48..56].copy_from_slice(&(last - 1 - ENTRY_SECTORS).to_le_bytes());
        h[56..72].copy_from_slice(&self.disk_guid.0);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    fn protective_mbr(&self) -> Vec<u8> {
        let mut m = vec![0u8; SECTOR as usize];
        let e = &mut m[446..462];
        e[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
        e[4] = 0xEE;
        e[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
        e[8..12].copy_from_slice(&1u32.to_le_bytes());
        e[12..16].copy_from_slice(&u32::try_from(self.last_lba()).unwrap_or(u32::MAX).to_le_bytes());
        m[510] = 0x55;
        m[511] = 0xAA;
        m
    }

    /// Sizes `file` to the disk size and writes the MBR and both GPTs (only
    /// the table areas are touched).
    pub fn write(&self, file: &mut File) -> Result<()> {
        file.set_len(self.size)?;
        let entries = self.entries();
        let crc = crc32(&entries);
        let mut at = |off: u64, data: &[u8]| -> Result<()> {
            file.seek(SeekFrom::Start(off))?;
            file.write_all(data)?;
            Ok(())
        };
        at(0, &self.protective_mbr())?;
        at(SECTOR, &self.header(true, crc))?;
        at(2 * SECTOR, &entries)?;
        at((self.last_lba() - ENTRY_SECTORS) * SECTOR, &entries)?;
        at(self.last_lba() * SECTOR, &self.header(false, crc))?;
        Ok(())
    }
}

/// Reads the primary GPT of a disk image, checking both CRCs.
pub fn read(file: &mut File) -> Result<Vec<Part>> {
    let mut h = vec![0u8; SECTOR as usize];
    file.seek(SeekFrom::Start(SECTOR))?;
    file.read_exact(&mut h)?;
    if &h[0..8] != b"EFI PART" {
        bail!("no GPT header");
    }
    let size = u32::from_le_bytes(h[12..16].try_into()?) as usize;
    ensure!((92..=512).contains(&size), "bad GPT header size");
    let stored = u32::from_le_bytes(h[16..20].try_into()?);
    let mut hc = h[..size].to_vec();
    hc[16..20].fill(0);
    ensure!(crc32(&hc) == stored, "GPT header CRC mismatch");
    let lba = u64::from_le_bytes(h[72..80].try_into()?);
    let n = u32::from_le_bytes(h[80..84].try_into()?) as usize;
    let esz = u32::from_le_bytes(h[84..88].try_into()?) as usize;
    ensure!(esz >= 128 && n <= 1024, "bad GPT entry geometry");
    let mut entries = vec![0u8; n * esz];
    file.seek(SeekFrom::Start(lba * SECTOR))?;
    file.read_exact(&mut entries)?;
    ensure!(crc32(&entries) == u32::from_le_bytes(h[88..92].try_into()?), "GPT entries CRC mismatch");
    let mut parts = Vec::new();
    for e in entries.chunks(esz) {
        let type_guid = Guid(e[0..16].try_into()?);
        if type_guid.0 == [0; 16] {
            continue;
        }
        let units: Vec<u16> =
            e[56..128].chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
        parts.push(Part {
            name: String::from_utf16(&units)?,
            type_guid,
            guid: Guid(e[16..32].try_into()?),
            first_lba: u64::from_le_bytes(e[32..40].try_into()?),
            last_lba: u64::from_le_bytes(e[40..48].try_into()?),
        });
    }
    Ok(parts)
}

/// CRC-32 (IEEE 802.3, reflected), as GPT uses.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(
            Guid::derived("disk"),
            &[
                PartSpec {
                    name: "esp".into(),
                    type_guid: Guid::parse(Guid::ESP).unwrap(),
                    guid: Guid::derived("esp"),
                    size: 128 << 20,
                },
                PartSpec {
                    name: "lvsbox-config".into(),
                    type_guid: Guid::parse(Guid::LINUX_FS).unwrap(),
                    guid: Guid::derived("cfg"),
                    size: 64 << 20,
                },
            ],
        )
        .unwrap()
    }

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn guid_text_and_disk_order() {
        let g = Guid::parse(Guid::ESP).unwrap();
        assert_eq!(g.0[..4], [0x28, 0x73, 0x2A, 0xC1]);
        assert_eq!(g.0[8..], [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B]);
        assert_eq!(g.to_string(), Guid::ESP);
        let d = Guid::derived("x");
        assert_eq!(d, Guid::derived("x"));
        assert_ne!(d, Guid::derived("y"));
        assert_eq!(d.to_string().as_bytes()[14], b'4');
        assert!(Guid::parse("nope").is_err());
    }

    #[test]
    fn layout_is_aligned_and_sized() {
        let l = layout();
        assert_eq!(l.parts[0].first_lba, 2048);
        assert_eq!(l.parts[0].size(), 128 << 20);
        assert_eq!(l.parts[1].offset(), (1 + 128) << 20);
        assert_eq!(l.parts[1].size(), 64 << 20);
        assert_eq!(l.size, (1 + 128 + 64 + 1) << 20);
        // Backup table fits after the last partition.
        assert!(l.parts[1].last_lba < l.last_lba() - ENTRY_SECTORS);
        // Odd sizes round the next start up to 1 MiB.
        let odd = Layout::new(
            Guid::derived("d"),
            &[
                PartSpec { name: "a".into(), type_guid: Guid::derived("t"), guid: Guid::derived("a"), size: 512 },
                PartSpec { name: "b".into(), type_guid: Guid::derived("t"), guid: Guid::derived("b"), size: 512 },
            ],
        )
        .unwrap();
        assert_eq!(odd.parts[1].first_lba, 4096);
        assert!(Layout::new(Guid::derived("d"), &[PartSpec { size: 100, ..layout_spec() }]).is_err());
    }

    fn layout_spec() -> PartSpec {
        PartSpec { name: "a".into(), type_guid: Guid::derived("t"), guid: Guid::derived("a"), size: 512 }
    }

    #[test]
    fn write_then_read_back_and_sfdisk_agrees() {
        let dir = std::env::temp_dir().join(format!("lvsbox-gpt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk.img");
        let l = layout();
        let mut f = File::options().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
        l.write(&mut f).unwrap();
        assert_eq!(f.metadata().unwrap().len(), l.size);
        let parts = read(&mut f).unwrap();
        assert_eq!(parts, l.parts);
        drop(f);
        // An independent reader (util-linux sfdisk) must accept both tables.
        let out = std::process::Command::new("sfdisk").arg("--verify").arg(&path).output().expect("sfdisk (fdisk)");
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(!text.contains("corrupt") && !text.contains("invalid"), "{text}");
        let dump = std::process::Command::new("sfdisk").arg("--dump").arg(&path).output().unwrap();
        let dump = String::from_utf8_lossy(&dump.stdout).to_string();
        assert!(dump.contains("label: gpt"), "{dump}");
        assert!(dump.contains(&format!("label-id: {}", Guid::derived("disk"))), "{dump}");
        assert!(
            dump.contains("start=        2048, size=      262144, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
            "{dump}"
        );
        assert!(dump.contains("name=\"lvsbox-config\""), "{dump}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_header_is_detected() {
        let dir = std::env::temp_dir().join(format!("lvsbox-gpt-crc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("disk.img");
        let mut f = File::options().create(true).truncate(true).read(true).write(true).open(&path).unwrap();
        layout().write(&mut f).unwrap();
        f.seek(SeekFrom::Start(SECTOR + 48)).unwrap();
        f.write_all(&[0xFF]).unwrap();
        assert!(read(&mut f).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
