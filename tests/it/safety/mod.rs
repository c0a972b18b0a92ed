//! The safety model: auth, dry runs, events, guards, bounds, kill switches, leases, limits, metrics, reload.

mod auth;
mod bounds;
mod drain;
mod dry_run;
mod events;
mod guards;
mod hardening;
mod killswitch;
mod lease;
mod limits;
mod metrics;
mod mtls;
mod release;
mod reload;
mod signal;
mod timeouts;
