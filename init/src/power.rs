//! The ACPI power button: QEMU's `system_powerdown` and a short press on real
//! hardware arrive as KEY_POWER on an input device named "Power Button"
//! (drivers `button` + `evdev`). init opens every such `/dev/input/event*`
//! and powers off on a press.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `EV_KEY`.
const EV_KEY: u16 = 1;
/// `KEY_POWER`.
const KEY_POWER: u16 = 116;
/// `struct input_event` on 64-bit: timeval (16) + type (2) + code (2) + value (4).
pub const EVENT_SIZE: usize = 24;

/// Opens `/dev/input/eventN` for every input device whose name is
/// "Power Button" (per `<sys>/class/input/eventN/device/name`).
pub fn open_power_buttons(sys: &Path, dev: &Path) -> Vec<(String, File)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(sys.join("class/input")) else { return out };
    let mut names: Vec<String> = rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for ev in names.into_iter().filter(|n| n.starts_with("event")) {
        let name = std::fs::read_to_string(sys.join("class/input").join(&ev).join("device/name")).unwrap_or_default();
        if name.trim() != "Power Button" {
            continue;
        }
        let path = dev.join("input").join(&ev);
        if let Ok(f) = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open(&path) {
            out.push((path.display().to_string(), f));
        }
    }
    out
}

/// Whether a buffer of input events holds a KEY_POWER press (value 1).
pub fn has_power_press(buf: &[u8]) -> bool {
    buf.chunks_exact(EVENT_SIZE).any(|e| {
        let ty = u16::from_ne_bytes([e[16], e[17]]);
        let code = u16::from_ne_bytes([e[18], e[19]]);
        let value = i32::from_ne_bytes([e[20], e[21], e[22], e[23]]);
        ty == EV_KEY && code == KEY_POWER && value == 1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ty: u16, code: u16, value: i32) -> Vec<u8> {
        let mut v = vec![0u8; 16];
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&code.to_ne_bytes());
        v.extend_from_slice(&value.to_ne_bytes());
        v
    }

    #[test]
    fn detects_press_not_release() {
        let press = [ev(EV_KEY, KEY_POWER, 1), ev(0, 0, 0)].concat();
        assert!(has_power_press(&press));
        let release = [ev(EV_KEY, KEY_POWER, 0), ev(0, 0, 0)].concat();
        assert!(!has_power_press(&release));
        assert!(!has_power_press(&ev(EV_KEY, 30, 1)));
        assert!(!has_power_press(&press[..20]), "partial events are ignored");
    }

    #[test]
    fn finds_power_buttons_by_name() {
        let root = std::env::temp_dir().join(format!("init-input-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let sys = root.join("sys");
        let dev = root.join("dev");
        std::fs::create_dir_all(dev.join("input")).unwrap();
        for (e, n) in [("event0", "Power Button\n"), ("event1", "AT Translated Set 2 keyboard\n")] {
            std::fs::create_dir_all(sys.join("class/input").join(e).join("device")).unwrap();
            std::fs::write(sys.join("class/input").join(e).join("device/name"), n).unwrap();
            std::fs::write(dev.join("input").join(e), b"").unwrap();
        }
        let found = open_power_buttons(&sys, &dev);
        assert_eq!(found.len(), 1);
        assert!(found[0].0.ends_with("input/event0"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
