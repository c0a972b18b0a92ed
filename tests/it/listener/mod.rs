//! Each kind of listener and traffic: passthrough, forward, TLS, TCP, WebSocket, and when changes become visible.

mod forward;
mod framing;
mod passthrough;
mod rotation;
mod tcp;
mod tls;
mod tls_faults;
mod tls_origination;
mod visibility;
mod websocket;
