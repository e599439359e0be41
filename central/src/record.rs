//! What the reference service keeps per ticket, as it reads it back from the
//! database (also the body of the list endpoint, for tests and the desk page), and
//! the workflow rules on it (used by the desk's pure parts and their tests; the
//! database applies the same rules in its conditional updates).

use serde::{Deserialize, Serialize};

use tend_wire::model::{
    Created, EventKind, NewTicket, Status, TicketEvent, TicketStatus, WireTime,
};

/// A ticket as the service holds it: the agent's body plus the service's own state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketRecord {
    /// The service's ticket number (`T-000001`, sequential).
    pub number: String,
    /// Workflow status.
    pub status: Status,
    /// Current severity: the opening one, raised by `escalated` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<u8>,
    /// When the service received the ticket (service clock, UTC).
    pub received_at: WireTime,
    /// The idempotency key that created it.
    pub idempotency_key: String,
    /// When staff acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<WireTime>,
    /// Who acknowledged it (`desk user NAME`, `site NAME`, `API token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    /// When it was closed, as staff stated it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<WireTime>,
    /// Who closed it (as [`TicketRecord::acknowledged_by`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
    /// What was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// The body the agent sent, unchanged.
    pub ticket: NewTicket,
    /// Events the agent reported, in arrival order.
    #[serde(default)]
    pub events: Vec<EventRecord>,
}

/// An event as the service received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// When the service received it (service clock, UTC).
    pub received_at: WireTime,
    /// Its idempotency key.
    pub idempotency_key: String,
    /// The body the agent sent.
    pub event: TicketEvent,
}

/// Body of `GET /api/v1/tickets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketList {
    /// Every ticket, by number.
    pub tickets: Vec<TicketRecord>,
}

impl TicketRecord {
    /// A new open ticket.
    pub fn new(number: String, key: &str, ticket: NewTicket, received_at: WireTime) -> Self {
        Self {
            number,
            status: Status::Open,
            severity: ticket.severity,
            received_at,
            idempotency_key: key.to_owned(),
            acknowledged_at: None,
            acknowledged_by: None,
            closed_at: None,
            closed_by: None,
            resolution: None,
            ticket,
            events: Vec::new(),
        }
    }

    /// The answer to a create or an event.
    pub fn created(&self) -> Created {
        Created { ticket_id: self.ticket.ticket_id.clone(), number: self.number.clone() }
    }

    /// The answer to a read.
    pub fn status_view(&self) -> TicketStatus {
        TicketStatus {
            ticket_id: self.ticket.ticket_id.clone(),
            number: self.number.clone(),
            status: self.status,
            closed_at: self.closed_at.clone(),
            resolution: self.resolution.clone(),
        }
    }

    /// Records an event; an escalation raises the current severity. Events after
    /// closing are kept too (a queued `recovered` may arrive late); they do not
    /// reopen the ticket.
    pub fn apply(&mut self, event: TicketEvent, key: &str, received_at: WireTime) {
        if let EventKind::Escalated { severity } = event.kind {
            self.severity = Some(severity);
        }
        self.events.push(EventRecord { received_at, idempotency_key: key.to_owned(), event });
    }

    /// Staff took the ticket: `open` becomes `acknowledged`; other states stay.
    pub fn acknowledge(&mut self, at: WireTime) {
        if self.status == Status::Open {
            self.status = Status::Acknowledged;
            self.acknowledged_at = Some(at);
        }
    }

    /// Closes the ticket; closing a closed ticket changes nothing (idempotent).
    pub fn close(&mut self, resolution: String, closed_at: WireTime) {
        if self.status != Status::Closed {
            self.status = Status::Closed;
            self.resolution = Some(resolution);
            self.closed_at = Some(closed_at);
        }
    }
}
