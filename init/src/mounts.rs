//! Early mounts, the config partition, and unmounting at shutdown.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// The pseudo filesystems init mounts first, in order:
/// (source, target, fstype, flags, data).
const EARLY: &[(&str, &str, &str, MsFlags, &str)] = &[
    ("devtmpfs", "/dev", "devtmpfs", MsFlags::MS_NOSUID, "mode=0755"),
    ("proc", "/proc", "proc", MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC), ""),
    ("sysfs", "/sys", "sysfs", MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV).union(MsFlags::MS_NOEXEC), ""),
    ("devpts", "/dev/pts", "devpts", MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC), "gid=5,mode=0620,ptmxmode=0666"),
    ("tmpfs", "/run", "tmpfs", MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV), "mode=0755,size=20%"),
    ("tmpfs", "/tmp", "tmpfs", MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV), "mode=1777,size=20%"),
];

/// Mounts /dev, /proc, /sys, /dev/pts, /run, /tmp. Returns one line per
/// failure (EBUSY, i.e. already mounted, is not one). /dev goes first so
/// /dev/kmsg is there for the log.
pub fn mount_early() -> Vec<String> {
    let mut errs = Vec::new();
    for (src, target, fstype, flags, data) in EARLY {
        let _ = std::fs::create_dir_all(target);
        let data = if data.is_empty() { None } else { Some(*data) };
        match mount(Some(*src), *target, Some(*fstype), *flags, data) {
            Ok(()) | Err(Errno::EBUSY) => {}
            Err(e) => errs.push(format!("mount {fstype} on {target}: {}", e.desc())),
        }
    }
    if !Path::new("/dev/ptmx").exists() {
        let _ = std::os::unix::fs::symlink("pts/ptmx", "/dev/ptmx");
    }
    errs
}

/// Parses a `/sys/class/block/*/uevent` file: (DEVNAME, PARTNAME).
pub fn parse_uevent(text: &str) -> (Option<String>, Option<String>) {
    let mut dev = None;
    let mut part = None;
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("DEVNAME=") {
            dev = Some(v.to_string());
        } else if let Some(v) = l.strip_prefix("PARTNAME=") {
            part = Some(v.to_string());
        }
    }
    (dev, part)
}

/// The block device whose GPT partition name is `label`, looked up in
/// `<sys>/class/block/*/uevent`.
pub fn find_partlabel(sys: &Path, label: &str) -> Option<PathBuf> {
    let mut found: Vec<String> = std::fs::read_dir(sys.join("class/block"))
        .ok()?
        .flatten()
        .filter_map(|e| {
            let t = std::fs::read_to_string(e.path().join("uevent")).ok()?;
            match parse_uevent(&t) {
                (Some(dev), Some(p)) if p == label => Some(dev),
                _ => None,
            }
        })
        .collect();
    found.sort();
    found.first().map(|d| PathBuf::from("/dev").join(d))
}

/// Polls `find` every 20 ms until it answers or `timeout` passes.
/// Returns the answer and how long it took.
pub fn wait_for<T>(timeout: Duration, mut find: impl FnMut() -> Option<T>) -> (Option<T>, Duration) {
    let t0 = Instant::now();
    loop {
        if let Some(v) = find() {
            return (Some(v), t0.elapsed());
        }
        if t0.elapsed() >= timeout {
            return (None, t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Mounts the config partition (ext4) read-write at `target`.
pub fn mount_config(dev: &Path, target: &str) -> Result<(), String> {
    let _ = std::fs::create_dir_all(target);
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME;
    mount(Some(dev), target, Some("ext4"), flags, None::<&str>)
        .map_err(|e| format!("mount {} on {target} (ext4): {}", dev.display(), e.desc()))
}

/// Unmounts `target`; if busy, remounts it read-only and detaches it lazily so
/// the filesystem is clean before the reboot. Returns what happened.
pub fn unmount(target: &str) -> Result<&'static str, String> {
    match umount2(target, MntFlags::empty()) {
        Ok(()) => Ok("unmounted"),
        Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok("not mounted"),
        Err(Errno::EBUSY) => {
            let ro = mount(None::<&str>, target, None::<&str>, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>);
            let _ = umount2(target, MntFlags::MNT_DETACH);
            match ro {
                Ok(()) => Ok("busy: remounted read-only and detached"),
                Err(e) => Err(format!("busy, and remount read-only failed: {}", e.desc())),
            }
        }
        Err(e) => Err(e.desc().to_string()),
    }
}

/// Whether `target` is a mount point (listed in /proc/self/mounts).
pub fn is_mounted(target: &str) -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|m| m.lines().any(|l| l.split_whitespace().nth(1) == Some(target)))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uevent_parsing() {
        let t = "MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nDISKSEQ=9\nPARTN=1\nPARTNAME=lvsbox-config\n";
        assert_eq!(parse_uevent(t), (Some("vda1".into()), Some("lvsbox-config".into())));
        assert_eq!(parse_uevent("DEVNAME=vda\nDEVTYPE=disk\n"), (Some("vda".into()), None));
    }

    #[test]
    fn partlabel_lookup_in_a_fake_sysfs() {
        let root = std::env::temp_dir().join(format!("init-sysfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (d, u) in [
            ("vda", "DEVNAME=vda\nDEVTYPE=disk\n"),
            ("vda1", "DEVNAME=vda1\nPARTNAME=other\n"),
            ("vda2", "DEVNAME=vda2\nPARTNAME=lvsbox-config\n"),
        ] {
            std::fs::create_dir_all(root.join("class/block").join(d)).unwrap();
            std::fs::write(root.join("class/block").join(d).join("uevent"), u).unwrap();
        }
        assert_eq!(find_partlabel(&root, "lvsbox-config"), Some(PathBuf::from("/dev/vda2")));
        assert_eq!(find_partlabel(&root, "nope"), None);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn wait_for_is_bounded_and_returns_early() {
        let mut n = 0;
        let (v, took) = wait_for(Duration::from_secs(5), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(v, Some(3));
        assert!(took < Duration::from_secs(1));
        let (v, took) = wait_for(Duration::from_millis(100), || None::<()>);
        assert!(v.is_none() && took >= Duration::from_millis(100) && took < Duration::from_secs(2));
    }
}
