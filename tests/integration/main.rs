//! tend's integration tests: real wasm plugins built from source (tests/build.rs),
//! and, as the pipeline lands, a real MQTT broker, HTTP central service and sled.
//!
//! One binary; a module per capability.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod central;
mod demo;
mod faults;
mod harness;
mod inspections;
mod live;
mod pipeline;
mod plugins;
mod replay;
mod report;
mod year;
