//! Just enough ELF64 (little-endian) to read a kernel module's `.modinfo`
//! section and a dynamic executable's interpreter and `DT_NEEDED` libraries.

use anyhow::{Context, Result, bail, ensure};

const PT_INTERP: u32 = 3;
const PT_DYNAMIC: u32 = 2;
const PT_LOAD: u32 = 1;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;

pub(crate) fn u16_at(b: &[u8], off: usize) -> Result<u16> {
    let s = b.get(off..off + 2).context("ELF truncated")?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> Result<u32> {
    let s = b.get(off..off + 4).context("ELF truncated")?;
    Ok(u32::from_le_bytes(s.try_into()?))
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> Result<u64> {
    let s = b.get(off..off + 8).context("ELF truncated")?;
    Ok(u64::from_le_bytes(s.try_into()?))
}

fn usize_at(b: &[u8], off: usize) -> Result<usize> {
    Ok(usize::try_from(u64_at(b, off)?)?)
}

/// A parsed ELF64 little-endian file (borrowed).
pub struct Elf<'a> {
    data: &'a [u8],
    shoff: usize,
    shentsize: usize,
    shnum: usize,
    shstrndx: usize,
    phoff: usize,
    phentsize: usize,
    phnum: usize,
}

/// A section header's interesting fields.
#[derive(Clone, Copy, Debug)]
pub struct Section {
    pub name_off: usize,
    pub offset: usize,
    pub size: usize,
}

/// A program header's interesting fields.
#[derive(Clone, Copy, Debug)]
struct Segment {
    kind: u32,
    offset: usize,
    vaddr: u64,
    filesz: usize,
}

impl<'a> Elf<'a> {
    /// Checks the identification and reads the header.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        ensure!(data.len() >= 64 && data[..4] == *b"\x7fELF", "not an ELF file");
        ensure!(data[4] == 2, "not a 64-bit ELF file");
        ensure!(data[5] == 1, "not a little-endian ELF file");
        Ok(Elf {
            data,
            phoff: usize_at(data, 0x20)?,
            shoff: usize_at(data, 0x28)?,
            phentsize: usize::from(u16_at(data, 0x36)?),
            phnum: usize::from(u16_at(data, 0x38)?),
            shentsize: usize::from(u16_at(data, 0x3a)?),
            shnum: usize::from(u16_at(data, 0x3c)?),
            shstrndx: usize::from(u16_at(data, 0x3e)?),
        })
    }

    fn section(&self, i: usize) -> Result<Section> {
        let h = self.shoff + i * self.shentsize;
        Ok(Section {
            name_off: usize::try_from(u32_at(self.data, h)?)?,
            offset: usize_at(self.data, h + 0x18)?,
            size: usize_at(self.data, h + 0x20)?,
        })
    }

    fn bytes(&self, offset: usize, size: usize) -> Result<&'a [u8]> {
        self.data.get(offset..offset.checked_add(size).context("ELF overflow")?).context("ELF section out of bounds")
    }

    /// The contents of the first section called `name`, if any.
    pub fn section_by_name(&self, name: &str) -> Result<Option<&'a [u8]>> {
        if self.shnum == 0 {
            return Ok(None);
        }
        let strtab = self.section(self.shstrndx)?;
        let names = self.bytes(strtab.offset, strtab.size)?;
        for i in 0..self.shnum {
            let s = self.section(i)?;
            let n = names.get(s.name_off..).context("bad section name offset")?;
            let end = n.iter().position(|&c| c == 0).unwrap_or(n.len());
            if &n[..end] == name.as_bytes() {
                return Ok(Some(self.bytes(s.offset, s.size)?));
            }
        }
        Ok(None)
    }

    fn segments(&self) -> Result<Vec<Segment>> {
        (0..self.phnum)
            .map(|i| {
                let h = self.phoff + i * self.phentsize;
                Ok(Segment {
                    kind: u32_at(self.data, h)?,
                    offset: usize_at(self.data, h + 0x08)?,
                    vaddr: u64_at(self.data, h + 0x10)?,
                    filesz: usize_at(self.data, h + 0x20)?,
                })
            })
            .collect()
    }

    /// The program interpreter (`PT_INTERP`), e.g. `/lib64/ld-linux-x86-64.so.2`.
    pub fn interpreter(&self) -> Result<Option<String>> {
        for seg in self.segments()? {
            if seg.kind == PT_INTERP {
                let b = self.bytes(seg.offset, seg.filesz)?;
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                return Ok(Some(String::from_utf8(b[..end].to_vec())?));
            }
        }
        Ok(None)
    }

    /// Converts a virtual address to a file offset through the `PT_LOAD` segments.
    fn vaddr_to_offset(&self, segs: &[Segment], vaddr: u64) -> Result<usize> {
        for s in segs.iter().filter(|s| s.kind == PT_LOAD) {
            if vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz as u64 {
                return Ok(s.offset + usize::try_from(vaddr - s.vaddr)?);
            }
        }
        bail!("address {vaddr:#x} is in no loaded segment")
    }

    /// The `DT_NEEDED` entries (shared libraries by soname), in order.
    pub fn needed(&self) -> Result<Vec<String>> {
        let segs = self.segments()?;
        let Some(dynamic) = segs.iter().find(|s| s.kind == PT_DYNAMIC) else {
            return Ok(Vec::new());
        };
        let mut needed = Vec::new();
        let mut strtab = None;
        let mut off = dynamic.offset;
        while off + 16 <= dynamic.offset + dynamic.filesz {
            let tag = u64_at(self.data, off)?;
            let val = u64_at(self.data, off + 8)?;
            match tag {
                DT_NULL => break,
                DT_NEEDED => needed.push(val),
                DT_STRTAB => strtab = Some(val),
                _ => {}
            }
            off += 16;
        }
        if needed.is_empty() {
            return Ok(Vec::new());
        }
        let strtab = self.vaddr_to_offset(&segs, strtab.context("DT_NEEDED without DT_STRTAB")?)?;
        needed
            .into_iter()
            .map(|n| {
                let start = strtab + usize::try_from(n)?;
                let s = self.data.get(start..).context("bad DT_NEEDED offset")?;
                let end = s.iter().position(|&c| c == 0).context("unterminated DT_NEEDED")?;
                Ok(String::from_utf8(s[..end].to_vec())?)
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a minimal ELF64 relocatable with the given sections (name, data).
    pub(crate) fn fake_elf(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut shstr = vec![0u8];
        let mut name_offs = Vec::new();
        for (n, _) in sections {
            name_offs.push(shstr.len());
            shstr.extend_from_slice(n.as_bytes());
            shstr.push(0);
        }
        let shstr_name = shstr.len();
        shstr.extend_from_slice(b".shstrtab\0");
        let mut out = vec![0u8; 64];
        let mut placed = Vec::new();
        for (_, d) in sections {
            placed.push((out.len(), d.len()));
            out.extend_from_slice(d);
        }
        let shstr_off = out.len();
        out.extend_from_slice(&shstr);
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        let shoff = out.len();
        // Null section header, then ours, then .shstrtab.
        out.extend_from_slice(&[0u8; 64]);
        let push_sh = |out: &mut Vec<u8>, name: usize, off: usize, size: usize| {
            let mut h = [0u8; 64];
            h[0..4].copy_from_slice(&(name as u32).to_le_bytes());
            h[4..8].copy_from_slice(&1u32.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(off as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
            out.extend_from_slice(&h);
        };
        for (i, (off, size)) in placed.iter().enumerate() {
            push_sh(&mut out, name_offs[i], *off, *size);
        }
        push_sh(&mut out, shstr_name, shstr_off, shstr.len());
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        out[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        let n = sections.len() as u16 + 2;
        out[0x3c..0x3e].copy_from_slice(&n.to_le_bytes());
        out[0x3e..0x40].copy_from_slice(&(n - 1).to_le_bytes());
        out
    }

    #[test]
    fn finds_section_by_name() {
        let elf = fake_elf(&[(".text", b"code"), (".modinfo", b"license=GPL\0depends=a,b\0")]);
        let e = Elf::parse(&elf).unwrap();
        assert_eq!(e.section_by_name(".modinfo").unwrap().unwrap(), b"license=GPL\0depends=a,b\0");
        assert_eq!(e.section_by_name(".text").unwrap().unwrap(), b"code");
        assert!(e.section_by_name(".data").unwrap().is_none());
        assert!(e.interpreter().unwrap().is_none());
        assert!(e.needed().unwrap().is_empty());
    }

    #[test]
    fn rejects_non_elf() {
        assert!(Elf::parse(b"MZ not an elf at all, but long enough to have a header of sixty-four").is_err());
        let mut e = fake_elf(&[]);
        e[4] = 1;
        assert!(Elf::parse(&e).is_err());
    }

    #[test]
    fn reads_a_real_dynamic_executable() {
        // Every Debian host has /bin/sh linked against libc.
        let Ok(data) = std::fs::read("/bin/dash") else { return };
        let e = Elf::parse(&data).unwrap();
        assert_eq!(e.interpreter().unwrap().as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
        assert!(e.needed().unwrap().iter().any(|n| n == "libc.so.6"));
    }
}
