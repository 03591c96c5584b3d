//! A terminal for a guest's serial console: tmux running `socat` on the
//! console's unix socket, so a test can type keys and read the screen as a
//! person would (tmux interprets the escape sequences). Each instance runs its
//! own tmux server (`-L`), killed on drop.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A tmux session attached to a unix-socket serial console.
pub struct Terminal {
    server: String,
}

impl Terminal {
    /// Opens an `cols`×`rows` terminal on `sock` (waiting up to 30 s for
    /// QEMU to create it).
    pub fn attach(sock: &Path, cols: u16, rows: u16) -> Result<Terminal> {
        let t0 = Instant::now();
        while !sock.exists() {
            if t0.elapsed() > Duration::from_secs(30) {
                bail!("{} did not appear", sock.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let server = format!("lvt{}-{}", std::process::id(), sock.display().to_string().len() + rows as usize);
        let t = Terminal { server };
        t.tmux(&[
            "new-session",
            "-d",
            "-s",
            "con",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            &format!("socat -,raw,echo=0 UNIX-CONNECT:{}", sock.display()),
        ])?;
        Ok(t)
    }

    fn tmux(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("tmux").arg("-L").arg(&self.server).args(args).output().context("tmux")?;
        if !out.status.success() {
            bail!("tmux {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Types literal text.
    pub fn type_text(&self, text: &str) -> Result<()> {
        self.tmux(&["send-keys", "-t", "con", "-l", text]).map(|_| ())
    }

    /// Presses named keys (`Enter`, `Tab`, `Escape`, `Down`, `C-l`, `F7`, ...).
    pub fn keys(&self, keys: &[&str]) -> Result<()> {
        let mut args = vec!["send-keys", "-t", "con"];
        args.extend_from_slice(keys);
        self.tmux(&args).map(|_| ())
    }

    /// The screen as text.
    pub fn screen(&self) -> Result<String> {
        self.tmux(&["capture-pane", "-p", "-t", "con"])
    }

    /// Waits until the screen shows `needle`; returns the screen.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Result<String> {
        let t0 = Instant::now();
        loop {
            let s = self.screen()?;
            if s.contains(needle) {
                return Ok(s);
            }
            if t0.elapsed() > timeout {
                bail!("`{needle}` not on screen within {timeout:?}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-L").arg(&self.server).arg("kill-server").output();
    }
}
