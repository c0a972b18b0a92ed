//! edgefault: a sidecar proxy that rehearses edge-provider outages. HTTP traffic flows through untouched
//! until a gRPC call starts an experiment; from the next request on, the matching share of requests gets
//! the experiment's faults (aborts and edge error pages, delays, hangs, resets, truncation, throttling, rate
//! limits); when the experiment ends, traffic is untouched again.
//!
//! Layout:
//!
//! ```text
//! main.rs         command line only (clap), calls into this library
//! app.rs          binds every port, wires the parts, drains on shutdown
//! config.rs       config file + flags → checked Config and the route Topology; config/pages.rs (pages:)
//! document.rs     experiment YAML (protobuf JSON mapping) → ExperimentSpec
//! fault/          pure fault model: Matcher, Percentage, Trigger, StickyKey, Fault (one file per kind:
//!                 abort, delay, hang, reset, truncate, throttle, rate_limit, first_byte, drip, rewrite, body,
//!                 toxic, tls, egress: blackhole/unresolvable/disconnect, grpc_stream), page/ (built-in error pages;
//!                 custom.rs: the config's page templates)
//! experiment/     Registry (lifecycle, timers) → RuleSet (immutable, indexed by route); timeline.rs (ramp,
//!                 flap, phases), lease.rs, guard.rs, events.rs (the lifecycle event bus); ruleset/tcp.rs (the
//!                 rules as one TCP connection meets them), ruleset/tls.rs (as one TLS handshake does)
//! scenario/       the scenario catalogue: parameters, expansion into experiments, builtin/*.yaml
//! proxy/          data plane: listener, per-request service, upstream pool, responses it writes,
//!                 act.rs (connection, body and response faults), cap.rs (concurrent-fault cap), tcp.rs (TCP
//!                 listeners: byte relay with toxics), forward.rs (forward listeners: CONNECT tunnels), tls.rs
//!                 (TLS origination), tls_listen.rs (TLS on listeners, TLS faults), grpc.rs (gRPC stream faults)
//! control/        gRPC FaultControl service; convert.rs validates proto into domain values (convert/realism.rs
//!                 and convert/response.rs for the realism faults, convert/tcp.rs for toxics, convert/tls.rs for
//!                 TLS faults, convert/traffic.rs
//!                 for gRPC matchers, convert/phases.rs); auth.rs (bearer tokens), audit.rs, limits.rs and
//!                 guards.rs (safety checks), killswitch.rs, scenarios.rs (the scenario RPCs), events.rs
//!                 (WatchEvents, GetStats)
//! admin.rs        /healthz, /readyz, /metrics
//! telemetry/      logs and Prometheus metrics
//! reload.rs       config reload on SIGHUP
//! fuzzing.rs      bodies of the fuzz targets in fuzz/, also run by tests/fuzz_corpus.rs
//! ctl.rs          the `edgefault ctl` client; ctl/watch.rs: `ctl watch` and `ctl top`
//! demo.rs         `edgefault demo`: the 18 November replay against a sample upstream, live
//! ```

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod config;
pub mod control;
pub mod ctl;
pub mod demo;
pub mod document;
pub mod experiment;
pub mod fault;
#[doc(hidden)]
pub mod fuzzing;
pub mod proxy;
pub mod reload;
pub mod scenario;
pub mod telemetry;
pub mod text;
pub mod tls;
pub mod topology;

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
