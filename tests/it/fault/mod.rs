//! Each fault kind as real clients see it, one module per kind (or per family of kinds).

mod abort;
mod body;
mod connection;
mod delay;
mod first_byte_drip;
mod grpc;
mod headers;
mod page_screenshots;
mod pages;
mod pages_custom;
mod rate_limit;
mod rewrite;
