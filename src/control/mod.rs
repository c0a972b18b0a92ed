//! The control plane: the `edgefault.v1.FaultControl` gRPC service, with health and reflection.

pub mod audit;
pub mod auth;
pub mod contain;
pub mod events;
pub mod killswitch;
pub mod proto;
pub mod scenarios;
mod service;
pub mod tls;

pub use service::{serve, with_health_and_reflection, Call, FaultControlService, ServeOptions};
