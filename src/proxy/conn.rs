//! Facts about one client connection, computed once when it is accepted
//! (`server`) and read by every request on it (`pipeline`, `outbound`).

use std::net::SocketAddr;
use std::sync::Arc;

use super::conn_watch::ConnWatch;
use crate::session::IdMemo;

/// Facts about the client connection, computed once per connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The peer is in `gate.trusted_proxies` (the platform edge).
    pub trusted: bool,
    /// What the connection's bytes showed (raw `#` in a request line, HTTP/2 streams).
    pub watch: Arc<ConnWatch>,
    /// The last session id a request on this connection brought.
    pub session_id: IdMemo,
}
