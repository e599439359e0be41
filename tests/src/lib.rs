//! Helpers for tend's integration tests (the test binary is `tests/integration/`).
//! Test set-up fails loudly: a helper that cannot set up panics with the reason.
//!
//! - [`plugins`]: paths of the plugins built from source by `build.rs` (the Rust ones
//!   with cargo, the Python door controller with componentize-py).
//! - [`mosquitto`]: a real Mosquitto on free loopback ports.
//! - [`site`]: a small test site (config, inventory, plugins) in a temp dir.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod mosquitto;
pub mod site;

/// Paths of the wasm plugins built from source by this crate's build script.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}
