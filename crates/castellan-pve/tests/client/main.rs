//! Integration tests of the client against a scripted fake PVE node (plain HTTP and TLS) and
//! of its request surface against the shared PVE API schema.

mod http;
mod redaction;
mod schema;
mod support;
mod tls;
