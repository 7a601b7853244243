//! Integration tests of castellan-sig: signatures minted by the real `ssh-keygen` (and
//! security-key signatures minted in the test), verified here and by `ssh-keygen -Y verify`.
//!
//! Without `ssh-keygen` on PATH the tests that need it print a note and pass, except
//! under `CI=true`, where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "sig/common.rs"]
mod common;

use castellan_testkit::need_ssh_keygen;

#[path = "sig/allowed.rs"]
mod allowed;
#[path = "sig/config.rs"]
mod config;
#[path = "sig/interop.rs"]
mod interop;
#[path = "sig/props.rs"]
mod props;
#[path = "sig/sign.rs"]
mod sign;
#[path = "sig/sk.rs"]
mod sk;
#[path = "sig/verify.rs"]
mod verify;
