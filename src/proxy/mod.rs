//! The data plane: listeners, routes, the upstream clients, and the responses the proxy writes itself. It
//! knows nothing of gRPC control: it reads the active rule set and acts on what it decides.

pub mod act;
pub mod body;
pub mod cap;
pub mod conn;
pub mod error;
pub mod forward;
pub mod headers;
pub mod listener;
pub mod pool;
pub mod respond;
pub mod service;
pub mod settings;
pub mod tcp;
pub mod tls;
pub mod tls_listen;
pub mod upstream;
pub mod websocket;

pub use body::ProxyBody;
pub use service::ReverseProxy;
