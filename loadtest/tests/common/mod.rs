//! Shared by the suites: the examcap package's own test helpers (a real
//! server on 127.0.0.1:0, bearer-token requests, publishing a scenario) and
//! the `loadtest` binary.
#![allow(dead_code)] // each suite uses part of it

use std::process::Command;

#[path = "../../../tests/common/mod.rs"]
mod examcap_helpers;
pub use examcap_helpers::*;

/// The `loadtest` binary, without a token from the environment.
pub fn loadtest() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loadtest"));
    c.env_remove("EXAMCAP_TOKEN");
    c
}
