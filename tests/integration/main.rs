//! tend's integration tests: real wasm plugins built from source (tests/build.rs),
//! a real MQTT broker, HTTP central service and the store on disk.
//!
//! One binary; a module per capability.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod central;
mod central_pg;
mod demo;
mod faults;
mod harness;
mod ingest;
mod inspections;
mod layout;
mod live;
mod package;
mod pipeline;
mod plugins;
mod python;
mod replay;
mod report;
mod secrets;
mod store;
mod storms;
mod year;
