//! Helpers for tend's integration tests (the test binary is `tests/integration/`).
//!
//! - [`plugins`]: paths of the plugins built from source by `build.rs`.
//! - [`site`]: a small test site (config, inventory, plugins) in a temp dir.

pub mod site;

/// Paths of the wasm plugins built from source by this crate's build script.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}
