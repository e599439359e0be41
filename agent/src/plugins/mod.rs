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
//! - [`contract`]: what a plugin's description and results must satisfy ([`Declared`]).
//! - [`host`]: one loaded plugin: instance lifecycle, calls, quarantine.
//! - [`native`]: a rule crate compiled natively behind the same trait (tests, benchmarks).
//! - [`trial`]: one plugin over a trace (`tend plugin test`).
//! - [`set`]: loading a plugin directory / pinned list into a set keyed by equipment type.

pub mod bindings;
pub mod contract;
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
pub use contract::Declared;
pub use engine::PluginEngine;
pub use error::{CallError, LoadError};
pub use host::{PluginStats, WasmPlugin};
pub use sandbox::Limits;
pub use set::{PluginSet, PluginSource};

/// What the pipeline needs from a plugin: the wasm host implements it, and so can
/// the same rule crates compiled natively (tests, benchmarks), so both run through
/// the same code.
pub trait Evaluate {
    /// The equipment type served.
    fn equipment_type(&self) -> &str;

    /// Evaluates one device's messages in order (see [`WasmPlugin::evaluate_batch`]).
    fn evaluate_batch(
        &mut self,
        device: &Device,
        messages: &[Message],
        state: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<BatchEvaluation, CallError>;
}
