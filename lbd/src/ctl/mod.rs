//! The control protocol: newline-delimited JSON over a Unix socket.
//! One request per line, one response line per request, matched by `id`.

pub mod client;
pub mod proto;
