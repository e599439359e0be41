//! The WebAssembly plugin host.
//!
//! Plugins are untrusted components exporting the `tend:plugin` world (`wit/`). The
//! host compiles each once (caching the artifact across restarts), keeps one
//! instance per plugin and passes each device's state in and out, grants no WASI
//! filesystem, network, environment or clock, bounds every call by an epoch deadline
//! and every instance by a memory limit. A trap, deadline or limit hit becomes a typed
//! [`CallError`] naming plugin and device; the instance is rebuilt; repeated failures
//! within a window quarantine the plugin.
//!
//! - [`bindings`]: the single `bindgen!` (the types every other module uses).
//! - [`sandbox`]: limits and the empty WASI context.
//! - [`engine`]: the shared engine, epoch ticker, compiled-artifact cache.
//! - [`host`]: one loaded plugin: instance lifecycle, output validation, quarantine.
//! - [`native`]: a rule crate compiled natively behind the same trait (tests, benchmarks).
//! - [`trial`]: one plugin over a trace (`tend plugin test`).
//! - [`set`]: loading a plugin directory / pinned list into a set keyed by equipment type.

pub mod bindings;
pub mod engine;
pub mod error;
pub mod host;
pub mod native;
pub mod sandbox;
pub mod set;
pub mod trial;

pub use bindings::{
    BatchEvaluation, Condition, Description, Device, Message, MessageKind, Outcome,
};
pub use engine::PluginEngine;
pub use error::{CallError, LoadError};
pub use host::{Declared, Evaluate, PluginStats, WasmPlugin};
pub use sandbox::Limits;
pub use set::{PluginSet, PluginSource};
