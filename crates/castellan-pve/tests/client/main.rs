//! Integration tests of the client against a scripted fake PVE node (plain HTTP and TLS) and
//! of its request surface against the PVE API schema (`crates/pve-schema/data/`).

#[path = "../common/mod.rs"]
mod common;
mod http;
mod props;
mod redaction;
mod schema;
mod storage;
mod support;
mod tls;
