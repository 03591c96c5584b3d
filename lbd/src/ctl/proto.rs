//! Request and response types of lbd's control socket.

use serde::{Deserialize, Serialize};

/// A request line: `{"id": 1, "cmd": "ping"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the response.
    #[serde(default)]
    pub id: u64,
    /// What to do.
    #[serde(flatten)]
    pub cmd: Command,
}

/// Commands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Liveness: answers `"pong"`.
    Ping,
}

/// A response line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// Whether the command succeeded.
    pub ok: bool,
    /// Result on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success with data.
    pub fn ok(id: u64, data: serde_json::Value) -> Self {
        Response { id, ok: true, data: Some(data), error: None }
    }
    /// A failure.
    pub fn err(id: u64, error: impl Into<String>) -> Self {
        Response { id, ok: false, data: None, error: Some(error.into()) }
    }
}
