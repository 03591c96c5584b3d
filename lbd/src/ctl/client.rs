//! Blocking client of the control socket (used by `lbd ctl`, console, init).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::proto::{Command, Request, Response};

/// A connection to lbd.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connects to the socket at `path`, with `timeout` for each exchange.
    pub fn connect(path: &Path, timeout: Duration) -> std::io::Result<Self> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        Ok(Client { reader: BufReader::new(s.try_clone()?), writer: s, next_id: 1 })
    }

    /// Sends one command and waits for its response.
    pub fn call(&mut self, cmd: Command) -> std::io::Result<Response> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_string(&Request { id, cmd }).map_err(std::io::Error::other)?;
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            let mut buf = String::new();
            if self.reader.read_line(&mut buf)? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "lbd closed the connection"));
            }
            let r: Response = serde_json::from_str(&buf).map_err(std::io::Error::other)?;
            if r.id == id {
                return Ok(r);
            }
        }
    }
}
