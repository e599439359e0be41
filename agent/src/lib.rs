//! tend: the on-site agent that keeps building equipment serviced.
//!
//! # Layout
//! - [`api`]: the local status API (`/health`, `/status`, `/metrics`, and `/archive`,
//!   `/inspections/complete` for site staff's commands).
//! - [`app`]: glue for the commands (plugins from config, replay, check).
//! - [`config`]: raw TOML -> validated config, environment overrides, site inventory.
//! - [`pipeline`]: message -> plugin -> alarms -> ticket builder -> one store batch.
//! - [`plugins`]: the WebAssembly plugin host (the single `bindgen!` over `wit/`),
//!   sandbox limits, loading and caching, quarantine.
//! - [`alarms`]: the pure alarm state machine (episodes, clear hold, escalation,
//!   recurrence, offline), in event time.
//! - [`maintenance`]: pure maintenance domain: business calendar and SLA due times,
//!   inspection schedules, warranty, coverage and the downtime extension.
//! - [`local`]: site staff's commands (`tend device`, `tend inspection complete`):
//!   through the running agent's API, or on the store when it is stopped.
//! - [`ingest`]: MQTT topic templates and payload event time.
//! - [`store`]: the embedded store (fjall): compact device records, the one-batch
//!   commit and its sync (every storage call), and the device archive.
//! - [`tickets`]: the central API's ticket model, HTTP client and outbox dispatcher.
//! - [`central`]: the reference central ticket service (`tend central`), with the
//!   maintenance desk page (`/desk`) and its OpenAPI document.
//! - [`run`]: `tend run`, the live agent: broker, MQTT ingest, the pipeline thread
//!   (group commit, flush, then ack), outbox dispatcher, ticket sync, graceful shutdown.
//! - [`report`]: the operations register (`tend report`): period, model, Markdown and HTML.
//! - [`trace`]: the recorded-trace format (`tend replay`, `tend plugin test`).
//! - [`simulate`]: device simulators with injected faults on an accelerated clock
//!   (`tend simulate`).
//! - [`demo`]: `tend demo`: broker, central service, simulators and agent in one process.
//! - [`vecmap`]: the small sorted-vector map of per-device state (ten thousand devices
//!   per site: no eleven-slot tree nodes for two entries).

pub mod alarms;
pub mod api;
pub mod app;
pub mod central;
pub mod config;
pub mod demo;
pub mod ingest;
pub mod local;
pub mod maintenance;
pub mod pipeline;
pub mod plugins;
pub mod report;
pub mod run;
pub mod simulate;
pub mod store;
pub mod tickets;
pub mod trace;
pub mod vecmap;
