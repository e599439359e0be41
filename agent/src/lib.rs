//! tend-agent: the on-site agent that keeps building equipment serviced. The `tend`
//! binary (`cli/`) is glue over this crate; the reference central service, the
//! simulators and the register are crates of their own that this one does not use.
//!
//! # Layout
//! - [`api`]: the local status API (`/health`, `/status`, `/metrics`, and `/archive`,
//!   `/inspections/complete`, `/maintenance` for site staff's commands).
//! - [`app`]: glue for the commands (plugins from config, replay, check).
//! - [`config`]: raw TOML -> validated config, environment overrides, site inventory.
//! - [`pipeline`]: message -> plugin -> alarms -> ticket builder -> one store batch.
//! - [`plugins`]: the WebAssembly plugin host (the single `bindgen!` over `wit/`),
//!   sandbox limits, loading and caching, quarantine.
//! - [`alarms`]: the pure alarm state machine (episodes, clear hold, escalation,
//!   recurrence, offline), in event time; across devices, site outages (`site`) and
//!   maintenance windows (`window`): one cause, one ticket.
//! - [`maintenance`]: pure maintenance domain: business calendar and SLA due times,
//!   inspection schedules, warranty, coverage and the downtime extension.
//! - [`local`]: site staff's commands (`tend device`, `tend inspection complete`,
//!   `tend maintenance`):
//!   through the running agent's API, or on the store when it is stopped.
//! - [`ingest`]: MQTT topic templates and payload event time.
//! - [`store`]: the embedded store (fjall): compact device records, the one-batch
//!   commit and its sync (every storage call), and the device archive.
//! - [`tickets`]: the HTTP client of the central API (its wire model is `tend-wire`)
//!   and the outbox dispatcher.
//! - [`run`]: `tend run`, the live agent: broker, MQTT ingest, the pipeline thread
//!   (group commit, flush, then ack), outbox dispatcher, ticket sync, graceful shutdown.
//! - [`trace`]: the recorded-trace format (`tend replay`, `tend plugin test`).
//! - [`vecmap`]: the small sorted-vector map of per-device state (ten thousand devices
//!   per site: no eleven-slot tree nodes for two entries).

pub mod alarms;
pub mod api;
pub mod app;
pub mod config;
pub mod ingest;
pub mod local;
pub mod maintenance;
pub mod pipeline;
pub mod plugins;
pub mod run;
pub mod store;
pub mod tickets;
pub mod trace;
pub mod vecmap;
