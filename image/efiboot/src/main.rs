//! lvsbox's EFI kernel loader: what the `.linux` section of the UKI runs
//! instead of the bzImage's decompressor.
//!
//! Debian ships its kernel as an xz-compressed bzImage. Under QEMU's TCG the
//! bzImage's own decompressor takes about 7 s to unpack it, more than the
//! whole rest of the boot after the firmware. This loader carries the same
//! kernel (the `vmlinux` of Debian's bzImage, byte for byte) as a flat memory
//! image with its all-zero pages left out, copies it into place and enters it
//! at `startup_64`, the kernel's documented 64-bit entry ("64-bit boot
//! protocol" in Documentation/arch/x86/boot.rst), the way the kernel's own EFI
//! stub enters the decompressed kernel.
//!
//! How it is reached: systemd-stub 252 (Debian's `systemd-boot-efi`) boots a
//! `.linux` whose PE header says image version 0 through the EFI handover
//! protocol. It fills a `boot_params` (setup header, command line, initrd)
//! and calls `code32_start + 512 + handover_offset` with
//! `(image handle, system table, boot_params)` in the SysV ABI. `image build`
//! writes that `.linux`: Debian's setup sectors (the setup header patched),
//! then a 512-byte descriptor ([`Desc`]), then this loader (its entry first),
//! then the kernel's pages. See `image/src/efiboot.rs`.
//!
//! What it does, in order: check the descriptor; allocate the kernel's
//! memory (at its preferred 16 MiB when free, else 2 MiB-aligned below
//! 4 GiB); copy the stored pages and zero the rest; describe the GOP frame
//! buffer in `screen_info`; set the ACPI RSDP; exit boot services; convert
//! the final EFI memory map to the e820 table; hand the kernel the EFI system
//! table and memory map (`efi_info`, so it uses the EFI runtime services as
//! after its own stub); jump to `startup_64` with `%rsi = boot_params`.
//!
//! Errors before `ExitBootServices` are printed on the EFI console and
//! returned to systemd-stub, which reports them; after it, nothing can fail.
//!
//! Not done (the kernel's stub does them): randomising the kernel's address
//! (KASLR), an RNG seed from `EFI_RNG_PROTOCOL`, 5-level paging switches.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::ffi::c_void;
use core::panic::PanicInfo;
use core::ptr;

// The entry: apply our own relocations (the blob is linked at 0 and runs
// wherever systemd-stub left the UKI), then call `lvsboot_main` with the
// handover arguments and the blob's base address. Only RIP-relative code
// before the relocations are done.
global_asm!(
    r#"
    .section .text.entry,"ax",@progbits
    .globl lvsboot_entry
lvsboot_entry:
    push %rbp
    mov %rsp, %rbp
    and $-16, %rsp
    lea __image_start(%rip), %r8
    lea __rela_start(%rip), %r9
    lea __rela_end(%rip), %r10
1:
    cmp %r10, %r9
    jae 3f
    cmpl $8, 8(%r9)
    jne 2f
    mov (%r9), %r11
    mov 16(%r9), %rax
    add %r8, %rax
    mov %rax, (%r8,%r11)
2:
    add $24, %r9
    jmp 1b
3:
    mov %r8, %rcx
    call lvsboot_main
    mov %rbp, %rsp
    pop %rbp
    ret
"#,
    options(att_syntax)
);

// ---- memory primitives (no libc here; rustc's generated code calls these) ----

/// # Safety
/// The C contract of memcpy.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller passes valid, non-overlapping ranges of n bytes.
    unsafe {
        asm!("rep movsq", inout("rcx") n / 8 => _, inout("rdi") dst => _, inout("rsi") src => _, options(nostack, preserves_flags));
        asm!("rep movsb", inout("rcx") n % 8 => _, inout("rdi") dst.add(n - n % 8) => _, inout("rsi") src.add(n - n % 8) => _, options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// The C contract of memmove.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize) + n {
        // SAFETY: forward copy is safe when dst is below src or disjoint.
        return unsafe { memcpy(dst, src, n) };
    }
    let mut i = n;
    while i > 0 {
        i -= 1;
        // SAFETY: i < n, both ranges valid per the caller.
        unsafe { ptr::write_volatile(dst.add(i), ptr::read_volatile(src.add(i))) };
    }
    dst
}

/// # Safety
/// The C contract of memset.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    let byte = c as u8;
    let q = u64::from(byte) * 0x0101_0101_0101_0101;
    // SAFETY: the caller passes a valid range of n bytes.
    unsafe {
        asm!("rep stosq", inout("rcx") n / 8 => _, inout("rdi") dst => _, in("rax") q, options(nostack, preserves_flags));
        asm!("rep stosb", inout("rcx") n % 8 => _, inout("rdi") dst.add(n - n % 8) => _, in("rax") q, options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// The C contract of memcmp.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n, both ranges valid per the caller.
        let (x, y) = unsafe { (ptr::read_volatile(a.add(i)), ptr::read_volatile(b.add(i))) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// The C contract of bcmp.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    halt()
}

fn halt() -> ! {
    loop {
        // SAFETY: stops the CPU until the next interrupt; nothing else.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

// ---- UEFI, the parts used here (UEFI 2.x, x86_64) ----

type Status = usize;
type Handle = *mut c_void;
const EFI_SUCCESS: Status = 0;
const ERR: usize = 1 << 63;
const EFI_LOAD_ERROR: Status = ERR | 1;
const EFI_BUFFER_TOO_SMALL: Status = ERR | 5;

const ALLOCATE_MAX_ADDRESS: u32 = 1;
const ALLOCATE_ADDRESS: u32 = 2;
const EFI_LOADER_DATA: u32 = 2;

#[repr(C)]
struct TableHeader {
    signature: u64,
    revision: u32,
    header_size: u32,
    crc32: u32,
    reserved: u32,
}

#[repr(C)]
struct SystemTable {
    hdr: TableHeader,
    firmware_vendor: *const u16,
    firmware_revision: u32,
    console_in_handle: Handle,
    con_in: *mut c_void,
    console_out_handle: Handle,
    con_out: *mut TextOut,
    standard_error_handle: Handle,
    std_err: *mut c_void,
    runtime_services: *mut c_void,
    boot_services: *mut BootServices,
    number_of_table_entries: usize,
    configuration_table: *const ConfigTable,
}

#[repr(C)]
struct TextOut {
    reset: usize,
    output_string: unsafe extern "efiapi" fn(*mut TextOut, *const u16) -> Status,
}

#[repr(C)]
struct ConfigTable {
    guid: [u8; 16],
    table: *mut c_void,
}

#[repr(C)]
struct BootServices {
    hdr: TableHeader,
    raise_tpl: usize,
    restore_tpl: usize,
    allocate_pages: unsafe extern "efiapi" fn(u32, u32, usize, *mut u64) -> Status,
    free_pages: unsafe extern "efiapi" fn(u64, usize) -> Status,
    get_memory_map: unsafe extern "efiapi" fn(*mut usize, *mut u8, *mut usize, *mut usize, *mut u32) -> Status,
    allocate_pool: unsafe extern "efiapi" fn(u32, usize, *mut *mut u8) -> Status,
    free_pool: unsafe extern "efiapi" fn(*mut u8) -> Status,
    // CreateEvent .. CheckEvent, the protocol handler services, LoadImage ..
    // UnloadImage: 19 entries not used here.
    _unused1: [usize; 19],
    exit_boot_services: unsafe extern "efiapi" fn(Handle, usize) -> Status,
    // GetNextMonotonicCount .. LocateHandleBuffer: 10 entries.
    _unused2: [usize; 10],
    locate_protocol: unsafe extern "efiapi" fn(*const [u8; 16], *mut c_void, *mut *mut c_void) -> Status,
}

/// EFI_GUID as it lies in memory (first three fields little-endian).
const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]
}
const ACPI_20_TABLE_GUID: [u8; 16] =
    guid(0x8868_e871, 0xe4f1, 0x11d3, [0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81]);
const ACPI_TABLE_GUID: [u8; 16] = guid(0xeb9d_2d30, 0x2d88, 0x11d3, [0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d]);
const GOP_GUID: [u8; 16] = guid(0x9042_a9de, 0x23dc, 0x4a38, [0x96, 0xfb, 0x7a, 0xde, 0xd0, 0x80, 0x51, 0x6a]);

#[repr(C)]
struct Gop {
    query_mode: usize,
    set_mode: usize,
    blt: usize,
    mode: *const GopMode,
}

#[repr(C)]
struct GopMode {
    max_mode: u32,
    mode: u32,
    info: *const GopModeInfo,
    size_of_info: usize,
    frame_buffer_base: u64,
    frame_buffer_size: usize,
}

#[repr(C)]
struct GopModeInfo {
    version: u32,
    horizontal_resolution: u32,
    vertical_resolution: u32,
    pixel_format: u32,
    red_mask: u32,
    green_mask: u32,
    blue_mask: u32,
    reserved_mask: u32,
    pixels_per_scan_line: u32,
}

// ---- the descriptor `image build` writes 512 bytes before the loader ----

const DESC_MAGIC: [u8; 8] = *b"LVSBOOT1";

/// Written by image/src/efiboot.rs; every offset is from the descriptor.
#[repr(C)]
struct Desc {
    magic: [u8; 8],
    /// Number of 4 KiB pages of the kernel's memory image (`_text` .. `_end`).
    pages: u64,
    /// Offset of the page bitmap (bit i set: page i is stored).
    bitmap_off: u64,
    /// Offset of the stored pages, in order.
    data_off: u64,
    /// Number of stored pages.
    stored: u64,
    /// Offset of `startup_64` in the memory image.
    entry_off: u64,
    /// The kernel's preferred physical address (`LOAD_PHYSICAL_ADDR`).
    pref_address: u64,
    /// The kernel's alignment (`CONFIG_PHYSICAL_ALIGN`).
    align: u64,
}

// ---- boot_params (Documentation/arch/x86/zero-page.rst) ----

const BP_ACPI_RSDP_ADDR: usize = 0x070;
const BP_EFI_INFO: usize = 0x1c0;
const BP_E820_ENTRIES: usize = 0x1e8;
const BP_HDR_SETUP_DATA: usize = 0x250;
const BP_E820_TABLE: usize = 0x2d0;
const E820_MAX_IN_BP: usize = 128;
const SETUP_E820_EXT: u32 = 1;
/// Extra e820 entries that fit the one page allocated for them.
const E820_EXT_MAX: usize = (4096 - 16) / 20;

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
const E820_ACPI: u32 = 3;
const E820_NVS: u32 = 4;
const E820_UNUSABLE: u32 = 5;
const E820_PMEM: u32 = 7;

/// The e820 type of an EFI memory type, as the kernel's own stub maps them
/// (drivers/firmware/efi/libstub/x86-stub.c, setup_e820).
fn e820_type(efi_type: u32) -> u32 {
    match efi_type {
        // Loader code/data, boot services code/data, conventional memory.
        1..=4 | 7 => E820_RAM,
        8 => E820_UNUSABLE,
        9 => E820_ACPI,
        10 => E820_NVS,
        14 => E820_PMEM,
        // Reserved, runtime services, MMIO, PAL code, unaccepted.
        _ => E820_RESERVED,
    }
}

struct Console(*mut TextOut);

impl Console {
    fn say(&self, msg: &str, val: Option<u64>) {
        if self.0.is_null() {
            return;
        }
        let mut buf = [0u16; 160];
        let mut n = 0;
        let mut push = |c: u8| {
            if n < buf.len() - 1 {
                buf[n] = u16::from(c);
                n += 1;
            }
        };
        for &c in b"lvsbox efiboot: " {
            push(c);
        }
        for &c in msg.as_bytes() {
            push(c);
        }
        if let Some(v) = val {
            push(b' ');
            push(b'0');
            push(b'x');
            let mut started = false;
            for i in (0..16).rev() {
                let d = ((v >> (i * 4)) & 0xf) as u8;
                if d != 0 || started || i == 0 {
                    started = true;
                    push(if d < 10 { b'0' + d } else { b'a' + d - 10 });
                }
            }
        }
        push(b'\r');
        push(b'\n');
        // SAFETY: con_out is the firmware's console protocol; buf is NUL-terminated.
        unsafe { ((*self.0).output_string)(self.0, buf.as_ptr()) };
    }
}

/// # Safety
/// Called only by `lvsboot_entry` with systemd-stub's handover arguments.
#[unsafe(no_mangle)]
unsafe extern "sysv64" fn lvsboot_main(image: Handle, st: *mut SystemTable, bp: *mut u8, base: *const u8) -> Status {
    // SAFETY: st is the firmware's system table.
    let con = Console(unsafe { (*st).con_out });
    // SAFETY: the handover contract: all pointers valid, boot services up.
    match unsafe { load(image, st, bp, base, &con) } {
        Ok(never) => match never {},
        Err((msg, val)) => {
            con.say(msg, Some(val));
            EFI_LOAD_ERROR
        }
    }
}

enum Never {}

type Fail = (&'static str, u64);

/// # Safety
/// As [`lvsboot_main`].
unsafe fn load(
    image: Handle,
    st: *mut SystemTable,
    bp: *mut u8,
    base: *const u8,
    con: &Console,
) -> Result<Never, Fail> {
    // SAFETY: the descriptor is the 512 bytes before the loader (image build).
    let desc = unsafe { &*(base.sub(512) as *const Desc) };
    if desc.magic != DESC_MAGIC {
        return Err(("bad descriptor magic at", base as u64 - 512));
    }
    let dbase = base.wrapping_sub(512);
    // SAFETY: st valid; boot services valid until ExitBootServices.
    let bs = unsafe { &*(*st).boot_services };
    let pages = desc.pages as usize;
    let align = desc.align.max(4096);

    // Memory for the kernel: at its preferred address, else anywhere below
    // 4 GiB with room to align (the kernel is physically relocatable).
    let mut addr = desc.pref_address;
    // SAFETY: a boot service called as documented.
    let mut status = unsafe { (bs.allocate_pages)(ALLOCATE_ADDRESS, EFI_LOADER_DATA, pages, &mut addr) };
    if status != EFI_SUCCESS {
        let extra = (align / 4096) as usize;
        addr = 0xffff_ffff;
        // SAFETY: as above.
        status = unsafe { (bs.allocate_pages)(ALLOCATE_MAX_ADDRESS, EFI_LOADER_DATA, pages + extra, &mut addr) };
        if status != EFI_SUCCESS {
            return Err(("cannot allocate memory for the kernel, status", status as u64));
        }
        addr = (addr + align - 1) & !(align - 1);
    }

    // The pages: runs of stored pages are copied, runs of absent ones zeroed.
    // SAFETY: offsets and sizes come from the descriptor image build wrote
    // next to them; the destination was just allocated.
    unsafe {
        let bitmap = dbase.add(desc.bitmap_off as usize);
        let mut src = dbase.add(desc.data_off as usize);
        let dst = addr as *mut u8;
        let bit = |i: usize| (*bitmap.add(i / 8) >> (i % 8)) & 1 == 1;
        let mut i = 0;
        let mut copied = 0u64;
        while i < pages {
            let stored = bit(i);
            let mut j = i + 1;
            while j < pages && bit(j) == stored {
                j += 1;
            }
            let len = (j - i) * 4096;
            if stored {
                memcpy(dst.add(i * 4096), src, len);
                src = src.add(len);
                copied += (j - i) as u64;
            } else {
                memset(dst.add(i * 4096), 0, len);
            }
            i = j;
        }
        if copied != desc.stored {
            return Err(("page count does not match the descriptor", copied));
        }
    }

    // SAFETY: st valid; each configuration table entry is 24 bytes.
    unsafe {
        let n = (*st).number_of_table_entries;
        let tables = (*st).configuration_table;
        let mut rsdp = 0u64;
        for i in 0..n {
            let t = &*tables.add(i);
            if t.guid == ACPI_20_TABLE_GUID {
                rsdp = t.table as u64;
                break;
            }
            if t.guid == ACPI_TABLE_GUID && rsdp == 0 {
                rsdp = t.table as u64;
            }
        }
        ptr::write_unaligned(bp.add(BP_ACPI_RSDP_ADDR) as *mut u64, rsdp);
    }

    // SAFETY: boot services valid; bp is the 16 KiB boot_params page.
    unsafe { screen_info(bs, bp) };

    // A page for e820 entries beyond the 128 boot_params holds (allocated
    // now: nothing can be allocated after ExitBootServices).
    let mut ext = 0xffff_ffffu64;
    // SAFETY: a boot service called as documented.
    if unsafe { (bs.allocate_pages)(ALLOCATE_MAX_ADDRESS, EFI_LOADER_DATA, 1, &mut ext) } != EFI_SUCCESS {
        return Err(("cannot allocate the e820 page", 0));
    }

    // The memory map, then ExitBootServices with its key. The map buffer is
    // allocated first with room for the descriptors the allocation adds.
    let mut size = 0usize;
    let mut key = 0usize;
    let mut dsize = 0usize;
    let mut dver = 0u32;
    // SAFETY: asking for the size with an empty buffer, as documented.
    let s = unsafe { (bs.get_memory_map)(&mut size, ptr::null_mut(), &mut key, &mut dsize, &mut dver) };
    if s != EFI_BUFFER_TOO_SMALL || dsize == 0 {
        return Err(("GetMemoryMap failed, status", s as u64));
    }
    let cap = size + 16 * dsize;
    let mut map: *mut u8 = ptr::null_mut();
    // SAFETY: a boot service called as documented.
    let s = unsafe { (bs.allocate_pool)(EFI_LOADER_DATA, cap, &mut map) };
    if s != EFI_SUCCESS {
        return Err(("cannot allocate the memory map, status", s as u64));
    }
    con.say("kernel at", Some(addr));
    let mut tries = 0;
    loop {
        size = cap;
        // SAFETY: map has cap bytes.
        let s = unsafe { (bs.get_memory_map)(&mut size, map, &mut key, &mut dsize, &mut dver) };
        if s != EFI_SUCCESS {
            return Err(("GetMemoryMap failed, status", s as u64));
        }
        // SAFETY: image is our image handle; key from the map just read.
        let s = unsafe { (bs.exit_boot_services)(image, key) };
        if s == EFI_SUCCESS {
            break;
        }
        tries += 1;
        if tries == 4 {
            return Err(("ExitBootServices failed, status", s as u64));
        }
    }

    // Boot services are gone: from here on only memory writes and the jump.
    // SAFETY: bp is boot_params (16 KiB); map holds `size` bytes of
    // descriptors of `dsize` bytes; ext is a free page.
    unsafe {
        let info = bp.add(BP_EFI_INFO) as *mut u32;
        let stp = st as u64;
        let mp = map as u64;
        ptr::write_unaligned(info, u32::from_le_bytes(*b"EL64"));
        ptr::write_unaligned(info.add(1), stp as u32);
        ptr::write_unaligned(info.add(2), dsize as u32);
        ptr::write_unaligned(info.add(3), dver);
        ptr::write_unaligned(info.add(4), mp as u32);
        ptr::write_unaligned(info.add(5), size as u32);
        ptr::write_unaligned(info.add(6), (stp >> 32) as u32);
        ptr::write_unaligned(info.add(7), (mp >> 32) as u32);

        // e820 from the map, merging neighbours of the same type.
        let ext_page = ext as *mut u8;
        let mut n = 0usize;
        let mut last: Option<(u64, u64, u32)> = None;
        let mut emit = |e: (u64, u64, u32)| {
            let slot = if n < E820_MAX_IN_BP {
                bp.add(BP_E820_TABLE + 20 * n)
            } else if n - E820_MAX_IN_BP < E820_EXT_MAX {
                ext_page.add(16 + 20 * (n - E820_MAX_IN_BP))
            } else {
                return; // more than ~330 ranges: never seen on EFI machines
            };
            ptr::write_unaligned(slot as *mut u64, e.0);
            ptr::write_unaligned(slot.add(8) as *mut u64, e.1);
            ptr::write_unaligned(slot.add(16) as *mut u32, e.2);
            n += 1;
        };
        let mut off = 0;
        while off + dsize <= size {
            let d = map.add(off);
            let ty = ptr::read_unaligned(d as *const u32);
            let start = ptr::read_unaligned(d.add(8) as *const u64);
            let len = ptr::read_unaligned(d.add(24) as *const u64) * 4096;
            off += dsize;
            let t = e820_type(ty);
            match last {
                Some((s, l, lt)) if lt == t && s + l == start => last = Some((s, l + len, t)),
                Some(prev) => {
                    emit(prev);
                    last = Some((start, len, t));
                }
                None => last = Some((start, len, t)),
            }
        }
        if let Some(prev) = last {
            emit(prev);
        }
        *bp.add(BP_E820_ENTRIES) = n.min(E820_MAX_IN_BP) as u8;
        if n > E820_MAX_IN_BP {
            let extra = (n - E820_MAX_IN_BP).min(E820_EXT_MAX);
            // setup_data { next, type, len, data }, linked in front of the chain.
            let next = ptr::read_unaligned(bp.add(BP_HDR_SETUP_DATA) as *const u64);
            ptr::write_unaligned(ext_page as *mut u64, next);
            ptr::write_unaligned(ext_page.add(8) as *mut u32, SETUP_E820_EXT);
            ptr::write_unaligned(ext_page.add(12) as *mut u32, (20 * extra) as u32);
            ptr::write_unaligned(bp.add(BP_HDR_SETUP_DATA) as *mut u64, ext);
        }

        let entry = addr + desc.entry_off;
        asm!(
            "cli",
            "cld",
            "jmp {entry}",
            entry = in(reg) entry,
            in("rsi") bp,
            options(noreturn)
        );
    }
}

/// Describes the GOP frame buffer in boot_params' `screen_info`, as the
/// kernel's stub does, so `console=tty0` works on a box with a monitor.
///
/// # Safety
/// Boot services valid; bp is boot_params.
unsafe fn screen_info(bs: &BootServices, bp: *mut u8) {
    let mut gop: *mut c_void = ptr::null_mut();
    // SAFETY: a boot service called as documented.
    if unsafe { (bs.locate_protocol)(&GOP_GUID, ptr::null_mut(), &mut gop) } != EFI_SUCCESS || gop.is_null() {
        return;
    }
    // SAFETY: the firmware's GOP instance and its current mode.
    unsafe {
        let mode = &*(*(gop as *const Gop)).mode;
        let info = &*mode.info;
        // (size, position) of red, green, blue, reserved.
        let masks = |m: u32| (m.count_ones() as u8, if m == 0 { 0 } else { m.trailing_zeros() as u8 });
        let (r, g, b, x) = match info.pixel_format {
            0 => ((8, 0), (8, 8), (8, 16), (8, 24)),
            1 => ((8, 16), (8, 8), (8, 0), (8, 24)),
            2 => (masks(info.red_mask), masks(info.green_mask), masks(info.blue_mask), masks(info.reserved_mask)),
            _ => return, // blt only: no linear frame buffer
        };
        let depth = u16::from(r.0 + g.0 + b.0 + x.0);
        let si = bp;
        let fb = mode.frame_buffer_base;
        ptr::write_unaligned(si.add(0x0f), 0x70u8); // orig_video_isVGA = VIDEO_TYPE_EFI
        ptr::write_unaligned(si.add(0x12) as *mut u16, info.horizontal_resolution as u16);
        ptr::write_unaligned(si.add(0x14) as *mut u16, info.vertical_resolution as u16);
        ptr::write_unaligned(si.add(0x16) as *mut u16, depth);
        ptr::write_unaligned(si.add(0x18) as *mut u32, fb as u32);
        ptr::write_unaligned(si.add(0x1c) as *mut u32, mode.frame_buffer_size as u32);
        ptr::write_unaligned(si.add(0x24) as *mut u16, (info.pixels_per_scan_line * u32::from(depth) / 8) as u16);
        for (i, (size, pos)) in [r, g, b, x].into_iter().enumerate() {
            *si.add(0x26 + 2 * i) = size;
            *si.add(0x27 + 2 * i) = pos;
        }
        ptr::write_unaligned(si.add(0x32) as *mut u16, 1); // pages
        let mut caps = 1u32; // VIDEO_CAPABILITY_SKIP_QUIRKS
        if fb >> 32 != 0 {
            caps |= 2; // VIDEO_CAPABILITY_64BIT_BASE
            ptr::write_unaligned(si.add(0x3a) as *mut u32, (fb >> 32) as u32);
        }
        ptr::write_unaligned(si.add(0x36) as *mut u32, caps);
    }
}
