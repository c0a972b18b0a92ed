//! `hang`: hold the request without answering, then close, reset, or answer. The upstream never sees it:
//! this is the edge (or the origin behind it) that accepted the connection and went silent, which clients
//! meet as their own timeout, or as the edge's 524 after 100 s.

use std::time::Duration;

use super::Abort;

#[derive(Debug, Clone)]
pub struct Hang {
    /// How long the request is held; longer than zero.
    pub hold: Duration,
    pub then: HangEnd,
}

/// What ends a hang.
#[derive(Debug, Clone)]
pub enum HangEnd {
    /// Close the connection without a response (HTTP/2: reset the stream).
    Close,
    /// Reset the TCP connection.
    Reset,
    /// Answer as this abort does.
    Respond(Abort),
}
