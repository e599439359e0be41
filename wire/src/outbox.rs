//! One request for the central service as the agent queues it in its outbox: what to
//! send, where, and the idempotency key it was born with.

use serde::{Deserialize, Serialize};

use crate::model::{CloseRequest, NewTicket, TicketEvent};
use crate::route::Route;

/// One request for the central service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// `POST /api/v1/tickets`.
    Open {
        /// The ticket.
        ticket: Box<NewTicket>,
    },
    /// `POST /api/v1/tickets/{ticket_id}/events`.
    Event {
        /// The ticket it belongs to.
        ticket_id: String,
        /// The event.
        event: TicketEvent,
    },
    /// `POST /api/v1/tickets/{ticket_id}/close`: work recorded at the site (an
    /// inspection completed with `tend inspection complete`).
    Close {
        /// The ticket.
        ticket_id: String,
        /// Resolution and time.
        close: CloseRequest,
    },
}

/// A request waiting in the outbox, with the idempotency key it was born with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Idempotency key, stable across retries and restarts.
    pub key: String,
    /// The request.
    pub request: Request,
}

impl OutboxEntry {
    /// Where it goes.
    pub fn route(&self) -> Route<'_> {
        match &self.request {
            Request::Open { .. } => Route::Tickets,
            Request::Event { ticket_id, .. } => Route::Events(ticket_id),
            Request::Close { ticket_id, .. } => Route::Close(ticket_id),
        }
    }

    /// The HTTP path, relative to the central service's base URL, percent-encoded.
    pub fn path(&self) -> String {
        self.route().path()
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let v = match &self.request {
            Request::Open { ticket } => serde_json::to_value(ticket),
            Request::Event { event, .. } => serde_json::to_value(event),
            Request::Close { close, .. } => serde_json::to_value(close),
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    /// The ticket the request is about.
    pub fn ticket_id(&self) -> &str {
        match &self.request {
            Request::Open { ticket } => &ticket.ticket_id,
            Request::Event { ticket_id, .. } | Request::Close { ticket_id, .. } => ticket_id,
        }
    }
}
