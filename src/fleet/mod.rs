//! Fleet control: `edgefault controller` reaches every sidecar whose labels match, and each sidecar keeps
//! itself safe when the controller is gone (docs/fleet.md).
//!
//! The sidecars hold the truth: each subscribes to the controller with one long-lived stream, says who it
//! is and what fleet experiments it holds, and gets its whole state of the world, versioned, which it
//! applies whole or rejects. The controller keeps nothing on disk; killed and restarted, it rebuilds its
//! view from what the sidecars report.

pub mod controller;
pub mod history;
pub mod selector;
pub mod sidecar;
pub mod state;
