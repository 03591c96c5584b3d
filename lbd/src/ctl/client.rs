//! Blocking client of the control socket (used by `lbd ctl`, console, init).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::proto::{Command, Request, Response};

/// One newline-delimited JSON connection (lbd's and init's sockets share the
/// framing and [`Response`]): numbered requests, responses matched by `id`.
pub struct LineClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
    peer: &'static str,
}

impl LineClient {
    /// Connects to the socket at `path`, with `timeout` for each exchange;
    /// `peer` names the server in errors.
    pub fn connect(path: &Path, timeout: Duration, peer: &'static str) -> std::io::Result<Self> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        Ok(LineClient { reader: BufReader::new(s.try_clone()?), writer: s, next_id: 1, peer })
    }

    /// Sends the request `make(id)` builds and waits for the response with that id.
    pub fn call_with<Q: serde::Serialize>(&mut self, make: impl FnOnce(u64) -> Q) -> std::io::Result<Response> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_string(&make(id)).map_err(std::io::Error::other)?;
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            let mut buf = String::new();
            if self.reader.read_line(&mut buf)? == 0 {
                let msg = format!("{} closed the connection", self.peer);
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, msg));
            }
            let r: Response = serde_json::from_str(&buf).map_err(std::io::Error::other)?;
            if r.id == id {
                return Ok(r);
            }
        }
    }
}

/// A connection to lbd.
pub struct Client(LineClient);

impl Client {
    /// Connects to the socket at `path`, with `timeout` for each exchange.
    pub fn connect(path: &Path, timeout: Duration) -> std::io::Result<Self> {
        LineClient::connect(path, timeout, "lbd").map(Client)
    }

    /// Sends one command and waits for its response.
    pub fn call(&mut self, cmd: Command) -> std::io::Result<Response> {
        self.0.call_with(|id| Request { id, cmd })
    }
}
