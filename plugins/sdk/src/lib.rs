//! Write tend equipment plugins in plain Rust.
//!
//! A plugin is a type implementing [`Plugin`]: a static [`Description`] (fault codes,
//! meters, warranty defaults, inspection plans) and an `evaluate` function that judges
//! one message of one device given that device's previous state. [`export_plugin!`]
//! turns it into a WebAssembly component exporting the `tend:plugin` world; the same
//! rules compile natively, so they are unit-tested with `cargo test` and no runtime.
//!
//! # Layout
//! - [`types`]: the contract's types in plain Rust (mirrors `wit/plugin.wit`).
//! - [`payload`]: JSON payload access that tells *missing* from *not a number*.
//! - [`settings`]: per-device threshold overrides from the inventory.
//! - [`time`]: durations in event time ([`time::Held`]) and time windows ([`time::Window`]).
//! - [`runner`]: state (de)serialisation and batching, shared by the wasm glue and
//!   native callers (tests, the host's native benchmark path).
//! - [`packed`]: the byte encoding of a batch's outcomes (`packed.evaluate-batch`),
//!   written by the wasm glue and read by the host.
//! - [`bindings`] / [`glue`]: the `wit-bindgen` guest bindings and their conversion.
//!
//! # Example
//! ```
//! use tend_plugin_sdk::prelude::*;
//!
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! struct State { hot: Held }
//!
//! struct Boiler;
//!
//! impl Plugin for Boiler {
//!     type State = State;
//!
//!     fn describe() -> Description {
//!         Description {
//!             equipment_type: "boiler".into(),
//!             plugin_version: "0.1.0".into(),
//!             faults: vec![FaultSpec::new("overheat", "Boiler overheating", 2, "main_unit")],
//!             meters: vec![],
//!             warranty: vec![WarrantyDefault { component: "main_unit".into(), months: 24 }],
//!             inspections: vec![],
//!             offline_timeout_s: 300,
//!         }
//!     }
//!
//!     fn evaluate(device: &Device, msg: &Message, state: &mut State) -> Result<Outcome, EvalError> {
//!         let p = Payload::parse(&msg.payload)?;
//!         let limit = device.settings()?.f64_or("overheat_c", 95.0)?;
//!         let mut out = Outcome::default();
//!         if let Field::Value(t) = p.f64("temp_c") {
//!             // Active once the temperature stayed at or above the limit for 5 minutes.
//!             let held = state.hot.update(t >= limit, msg.ts_ms);
//!             out.conditions.push(if held.is_some_and(|ms| ms >= minutes(5)) {
//!                 Condition::active("overheat", 2, format!("{t} °C for 5 min"))
//!                     .evidence(msg.ts_ms, "temp_c", t)
//!             } else {
//!                 Condition::inactive("overheat")
//!             });
//!         }
//!         Ok(out)
//!     }
//! }
//!
//! tend_plugin_sdk::export_plugin!(Boiler);
//! # fn main() {}
//! ```

#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
mod alloc;
pub mod glue;
mod mem;
pub mod packed;
pub mod payload;
pub mod runner;
pub mod settings;
pub mod time;
pub mod types;

/// Guest bindings generated from `wit/plugin.wit`, world `plugin-packed` (`plugin`
/// plus the `packed` interface; used by [`export_plugin!`]).
#[allow(missing_docs, clippy::all, unsafe_code)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin-packed",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_tend_bindings",
        default_bindings_module: "tend_plugin_sdk::bindings",
    });
}

pub use payload::{Field, Payload};
pub use settings::Settings;
pub use types::*;

/// The allocator of every plugin built for wasm with this SDK: free lists per size
/// class (see `alloc.rs`) in front of talc, grown page by page with `memory.grow`
/// (the host's memory limit still applies to every page). Rules allocate per message
/// (payload maps, outcome strings); Rust's default on `wasm32-wasip2` goes through
/// wasi-libc's dlmalloc, a few calls deeper and slower. The wasm guest is
/// single-threaded, which is what both layers require.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: alloc::SizeClasses<talc::wasm::WasmDynamicTalc> =
    alloc::SizeClasses::new(talc::wasm::new_wasm_dynamic_allocator());

/// What a plugin author implements.
pub trait Plugin {
    /// Per-device state, kept by the host between messages (serialised as JSON,
    /// so add fields with `#[serde(default)]` to stay readable across versions).
    type State: serde::Serialize + serde::de::DeserializeOwned + Default;

    /// The plugin's static description.
    fn describe() -> Description;

    /// Judges one message. On `Err`, leave `state` as it was: decode the payload
    /// before changing anything.
    fn evaluate(
        device: &Device,
        message: &Message,
        state: &mut Self::State,
    ) -> Result<Outcome, EvalError>;
}

/// Everything a plugin file usually needs.
pub mod prelude {
    pub use crate::payload::{Field, Payload};
    pub use crate::settings::Settings;
    pub use crate::time::{
        ChangeSinceOn, HOUR_MS, Held, MINUTE_MS, OnRun, SECOND_MS, Window, hours, minutes, seconds,
    };
    pub use crate::types::*;
    pub use crate::{Plugin, export_plugin};
}

/// Exports a [`Plugin`] implementation as the component's `tend:plugin` world.
///
/// Expands to nothing outside `wasm32`, so the crate still builds and tests natively.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ident) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __tend_plugin_export {
            use super::$plugin as TheTendPlugin;
            use $crate::bindings::tend::plugin::types as wit;

            struct Export;

            impl $crate::bindings::Guest for Export {
                fn describe() -> wit::Description {
                    $crate::glue::describe::<TheTendPlugin>()
                }
                fn evaluate(
                    device: wit::Device,
                    message: wit::Message,
                    state: Option<Vec<u8>>,
                ) -> Result<wit::Evaluation, wit::EvalError> {
                    $crate::glue::evaluate::<TheTendPlugin>(device, message, state)
                }
                fn evaluate_batch(
                    device: wit::Device,
                    messages: Vec<wit::Message>,
                    state: Option<Vec<u8>>,
                ) -> wit::BatchEvaluation {
                    $crate::glue::evaluate_batch::<TheTendPlugin>(device, messages, state)
                }
            }

            impl $crate::bindings::exports::tend::plugin::packed::Guest for Export {
                fn evaluate_batch(
                    device: wit::Device,
                    messages: Vec<wit::Message>,
                    state: Option<Vec<u8>>,
                ) -> wit::PackedBatchEvaluation {
                    $crate::glue::evaluate_batch_packed::<TheTendPlugin>(device, messages, state)
                }
            }

            $crate::bindings::export_tend_bindings!(Export with_types_in $crate::bindings);
        }
    };
}
