//! The control plane: the `edgefault.v1.FaultControl` gRPC service, with health and reflection.

pub mod audit;
pub mod auth;
mod contain;
pub mod events;
pub mod killswitch;
pub mod proto;
mod scenarios;
mod service;
pub mod tls;

pub use service::{serve, FaultControlService, ServeOptions};
