//! The integration tests, one binary: real servers on 127.0.0.1 (port 0) and real clients. Modules follow
//! the behaviour they test: `fault/<kind>`, `targeting/`, `listener/<kind>`, `safety/<topic>`, `control/`,
//! `input/` (fuzz corpus and property tests), `inject` (the `edgefault inject` command), `toxiproxy/`
//! (the Toxiproxy-compatible API and Toxiproxy's clients), `clients` (the Python, Node and grpcurl clients
//! of docs/clients.md, the metrics the Grafana dashboard queries); `support/` holds the shared upstreams,
//! proxy and clients.

// Tests report by panicking: a failed expectation is the finding.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    reason = "test code: a panic is a failed assertion"
)]

#[macro_use]
mod support;

mod clients;
mod console;
mod control;
mod fault;
mod fleet;
mod inject;
mod input;
mod listener;
mod safety;
mod targeting;
mod toxiproxy;
