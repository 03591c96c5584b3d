//! Placeholder until the console TUI lands: keeps a tty open and says so.
fn main() {
    println!("lvsbox console: not built yet");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
