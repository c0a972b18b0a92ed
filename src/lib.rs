//! edgefault: a sidecar proxy that rehearses edge-provider outages. HTTP traffic flows through untouched
//! until a gRPC call starts an experiment; from the next request on, the matching share of requests gets
//! the experiment's faults (aborts and edge error pages, delays, hangs, resets, truncation, throttling, rate
//! limits); when the experiment ends, traffic is untouched again.
//!
//! Responsibilities, bottom layer first (every module imports only those below it; `.ci/layers.py`
//! checks it, and docs/architecture.md draws it):
//!
//! ```text
//! topology, tls, document, text   names of listeners and routes; PEM files and certificate reloading;
//!                                 experiment documents (YAML/JSON); bounded text
//! fault/                          the pure fault model by family (HTTP faults, TCP toxics, TLS faults):
//!                                 matching, sampling, one file per HTTP kind with its proto conversion
//!                                 and what it does to a request (`HttpKind`), the violation collector,
//!                                 error pages
//! experiment/                     the registry and its lifecycle, the rule set the data plane reads,
//!                                 timelines, guards, leases; spec/: proto → validated domain values
//! scenario/, telemetry/           incident replays; metrics and logs
//! proxy/                          the data plane: listeners, requests, upstreams, bodies, TCP and TLS
//! control/, admin, console/       the gRPC control service (auth, audit, kill switch, events); the admin port
//!                                 and its console (a page and its JSON API, compiled in)
//! toxiproxy/                      the Toxiproxy-compatible REST API: proxies as TCP listeners created at
//!                                 run time, their toxics as experiments
//! fleet/                          the controller (its view of the fleet, its services) and a sidecar's
//!                                 subscription to it; label selectors
//! config/                         the file and the flags → each component's settings, checked
//! app, reload, ctl, demo          wiring, SIGHUP reloads, the `ctl` client, the demo
//! inject                          `edgefault inject`: Kubernetes manifests → the same with the sidecar
//!                                 added (uses only `document`)
//! ```

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod config;
pub mod console;
pub mod control;
pub mod ctl;
pub mod demo;
pub mod document;
pub mod experiment;
pub mod fault;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod inject;
pub mod proxy;
pub mod reload;
pub mod scenario;
pub mod telemetry;
pub mod text;
pub mod tls;
pub mod topology;
pub mod toxiproxy;

/// Code generated from `proto/edgefault/v1/*.proto`.
pub mod pb {
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("edgefault.v1");
        include!(concat!(env!("OUT_DIR"), "/edgefault.v1.serde.rs"));
    }
    /// The compiled descriptors, for server reflection and for reading experiment files.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("edgefault_descriptor");
}
