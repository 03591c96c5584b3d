//! `lbd run --sim` as the CLI tests start it, and `lbd ctl` against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const LBD: &str = env!("CARGO_BIN_EXE_lbd");

/// A simulated-kernel lbd with its socket, config and history in `dir`;
/// killed and `dir` removed on drop.
pub struct Daemon {
    child: Child,
    pub dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts lbd in `dir` (which exists) and waits until it answers.
pub fn start_in(dir: PathBuf) -> Daemon {
    let child = Command::new(LBD)
        .args(["run", "--sim", "--socket"])
        .arg(dir.join("sock"))
        .arg("--config")
        .arg(dir.join("lvsbox.toml"))
        .arg("--history")
        .arg(dir.join("history"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon { child, dir };
    let t0 = Instant::now();
    while ctl(&d.dir, &["ping"]).0 != 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "lbd did not answer within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    d
}

/// `lbd ctl ARGS` against the daemon in `dir`: exit code, stdout, stderr.
pub fn ctl(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(LBD).arg("ctl").arg("--socket").arg(dir.join("sock")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
