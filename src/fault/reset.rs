//! `reset`: the client's TCP connection is reset (RST), before any response or after some body bytes.
//! Clients see a connection error ("connection reset by peer"), not an HTTP status.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset {
    /// Reset after this many response body bytes; `None`: before the response, without the upstream.
    pub after_bytes: Option<u64>,
}
