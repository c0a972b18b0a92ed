//! The control plane as users drive it: validation, lifecycle, scenarios and the command line.

mod cli;
mod docs;
mod history;
mod lifecycle;
mod papercuts;
mod scenarios;
mod validation;
