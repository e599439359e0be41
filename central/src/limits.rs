//! What one request may hold, and the checks (pure): texts, lists and evidence of a
//! ticket, an event's note, a resolution; the body size, events per ticket and the
//! server's timeouts and connection cap. Every refusal names the limit it hit.

use std::time::Duration;

use tend_wire::model::{NewTicket, TicketEvent};

/// The service's limits. [`Limits::default`] suits a maintenance company's fleet;
/// tests lower them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body in bytes (413 above).
    pub max_body_bytes: usize,
    /// Longest one-line text (ids, site, code, title, device fields), in bytes.
    pub max_line: usize,
    /// Longest description, event note or resolution, in bytes.
    pub max_text: usize,
    /// Most evidence readings on a ticket.
    pub max_evidence: usize,
    /// Longest evidence string value, in bytes.
    pub max_evidence_value: usize,
    /// Most checklist items or suggested parts on a ticket.
    pub max_items: usize,
    /// Most events on one ticket (422 above).
    pub max_events_per_ticket: u32,
    /// How long a client may take to send a request's headers (the connection is
    /// closed after; also the idle time allowed between requests).
    pub header_read_timeout: Duration,
    /// How long a request may take from its headers to the answer, body included
    /// (503 after).
    pub request_timeout: Duration,
    /// Most connections open at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 256 * 1024,
            max_line: 512,
            max_text: 10_000,
            max_evidence: 200,
            max_evidence_value: 1_000,
            max_items: 100,
            max_events_per_ticket: 500,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// The problems found, one sentence each.
type Problems = Vec<String>;

impl Limits {
    /// The limits a new ticket must keep: sizes, counts, evidence values that are
    /// numbers, strings or booleans.
    pub fn check_ticket(&self, ticket: &NewTicket) -> Result<(), Problems> {
        let mut problems = Vec::new();
        let lines = [
            ("ticket_id", Some(ticket.ticket_id.as_str())),
            ("site", Some(ticket.site.as_str())),
            ("device.id", Some(ticket.device.id.as_str())),
            ("device.type", Some(ticket.device.device_type.as_str())),
            ("device.model", ticket.device.model.as_deref()),
            ("device.serial", ticket.device.serial.as_deref()),
            ("device.location", ticket.device.location.as_deref()),
            ("code", Some(ticket.code.as_str())),
            ("title", Some(ticket.title.as_str())),
        ];
        for (name, value) in lines {
            self.text(&mut problems, name, value, self.max_line);
        }
        self.text(&mut problems, "description", ticket.description.as_deref(), self.max_text);
        if let Some(diagnosis) = &ticket.diagnosis {
            let cause = diagnosis.probable_cause.as_deref();
            self.text(&mut problems, "diagnosis.probable_cause", cause, self.max_text);
            self.list(&mut problems, "diagnosis.suggested_parts", &diagnosis.suggested_parts);
        }
        self.list(&mut problems, "checklist", &ticket.checklist);
        if ticket.evidence.len() > self.max_evidence {
            problems.push(format!(
                "evidence has {} readings; the limit is {} readings",
                ticket.evidence.len(),
                self.max_evidence
            ));
        }
        for (i, reading) in ticket.evidence.iter().enumerate().take(self.max_evidence) {
            self.text(
                &mut problems,
                &format!("evidence[{i}].field"),
                Some(&reading.field),
                self.max_line,
            );
            match &reading.value {
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {}
                serde_json::Value::String(text) => self.text(
                    &mut problems,
                    &format!("evidence[{i}].value"),
                    Some(text),
                    self.max_evidence_value,
                ),
                other => problems.push(format!(
                    "evidence[{i}].value must be a number, a string or a boolean, not {}",
                    kind_of(other)
                )),
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// The limits an event must keep: the note's size.
    pub fn check_event(&self, event: &TicketEvent) -> Result<(), Problems> {
        let mut problems = Vec::new();
        self.text(&mut problems, "note", event.note.as_deref(), self.max_text);
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// The limit a resolution must keep.
    pub fn check_resolution(&self, resolution: &str) -> Result<(), Problems> {
        let mut problems = Vec::new();
        self.text(&mut problems, "resolution", Some(resolution), self.max_text);
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    fn text(&self, problems: &mut Problems, name: &str, value: Option<&str>, limit: usize) {
        if let Some(value) = value
            && value.len() > limit
        {
            problems.push(format!("{name} is {} bytes; the limit is {limit} bytes", value.len()));
        }
    }

    fn list(&self, problems: &mut Problems, name: &str, items: &[String]) {
        if items.len() > self.max_items {
            problems.push(format!(
                "{name} has {} items; the limit is {} items",
                items.len(),
                self.max_items
            ));
        }
        for (i, item) in items.iter().enumerate().take(self.max_items) {
            self.text(problems, &format!("{name}[{i}]"), Some(item), self.max_line);
        }
    }
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ticket(evidence: serde_json::Value) -> NewTicket {
        let body = json!({
            "ticket_id": "s/d/c/1", "kind": "fault", "site": "s",
            "device": {"id": "d", "type": "t"}, "code": "c", "severity": 2, "title": "T",
            "opened_at": "2026-11-22T10:04:00+08:00", "evidence": evidence,
        });
        serde_json::from_value(body).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn evidence_values_are_scalars_within_limits() {
        let limits = Limits::default();
        let ok = json!([{"ts": "2026-11-22T10:04:00+08:00", "field": "f", "value": 1.5},
                        {"ts": "2026-11-22T10:04:00+08:00", "field": "f", "value": "on"},
                        {"ts": "2026-11-22T10:04:00+08:00", "field": "f", "value": true}]);
        assert_eq!(limits.check_ticket(&ticket(ok)), Ok(()));
        for (value, says) in [
            (json!([[1]]), "a list"),
            (json!({"a": 1}), "an object"),
            (json!(null), "null"),
            (json!("x".repeat(1001)), "the limit is 1000 bytes"),
        ] {
            let evidence =
                json!([{"ts": "2026-11-22T10:04:00+08:00", "field": "f", "value": value}]);
            let problems = limits.check_ticket(&ticket(evidence)).err().unwrap_or_default();
            assert!(problems.iter().any(|p| p.contains(says)), "{problems:?}");
        }
        let many: Vec<_> = (0..201)
            .map(|_| json!({"ts": "2026-11-22T10:04:00+08:00", "field": "f", "value": 1}))
            .collect();
        let problems = limits.check_ticket(&ticket(json!(many))).err().unwrap_or_default();
        assert_eq!(problems, vec!["evidence has 201 readings; the limit is 200 readings"]);
    }
}
