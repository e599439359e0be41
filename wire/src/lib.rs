//! The central ticket API as it travels (`shared/spec/central-api.md`), shared by the
//! agent (which sends it) and the reference central service (which answers it).
//!
//! # Layout
//! - [`model`]: request and answer bodies, serialised in a stable field order.
//! - [`route`]: the API's paths, written once (the client builds its URLs from them,
//!   `tend replay` prints them).
//! - [`outbox`]: one request for the central service as the agent queues it, with
//!   its idempotency key.
//! - [`fit`]: a request cut down for a service that refused it as too large.

pub mod fit;
pub mod model;
pub mod outbox;
pub mod route;

pub use model::{
    CloseRequest, Coverage, Created, Device, Diagnosis, EventKind, Evidence, FaultCategory,
    NewTicket, Sla, Status, TicketEvent, TicketKind, TicketStatus, WireTime,
};
pub use outbox::{OutboxEntry, Request};
pub use route::Route;
