//! The control plane: the `edgefault.v1.FaultControl` gRPC service, with health and reflection.

pub mod audit;
pub mod auth;
mod contain;
pub mod convert;
pub mod events;
pub mod guards;
pub mod killswitch;
pub mod limits;
mod scenarios;
mod service;
pub mod tls;

pub use service::{serve, FaultControlService, ServeOptions};
