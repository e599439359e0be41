//! Tickets at the central service: the wire model of `shared/spec/central-api.md`,
//! the HTTP client, and the retry policy.
//!
//! # Layout
//! - [`model`]: request and answer bodies, serialised in a stable field order.
//! - [`client`]: [`CentralClient`]; every failure is a [`SendError`] that says
//!   whether to retry (`Retry`, with the server's `Retry-After`), dead-letter
//!   (`Rejected`) or hold the ticket until the token is fixed (`Unauthorized`);
//!   any 2xx to a create, event or close is [`Accepted`], its body read or not.
//! - [`backoff`]: exponential backoff with full jitter, pure.
//! - [`dispatcher`]: [`Dispatcher`] sends the store's outbox in order per ticket
//!   (retry, dead-letter, hold on a refused token; a ticket that keeps failing
//!   holds back no other); counters in [`DispatcherStatus`].
//! - [`sync`]: [`TicketSync`] polls held tickets and reports closed ones as
//!   [`TicketClosed`].

pub mod backoff;
pub mod client;
pub mod dispatcher;
pub use tend_wire::model;
pub mod sync;

pub use backoff::Backoff;
pub use client::{Accepted, CentralClient, ClientError, SendError, Unreadable};
pub use dispatcher::{Dispatcher, DispatcherConfig, DispatcherSnapshot, DispatcherStatus};
pub use model::{
    CloseRequest, Coverage, Created, Device, Diagnosis, EventKind, Evidence, FaultCategory,
    NewTicket, Sla, Status, TicketEvent, TicketKind, TicketStatus, WireTime,
};
pub use sync::{SyncConfig, TicketClosed, TicketSync};
