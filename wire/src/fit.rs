//! Cutting a request down to fit a central service that refused it as too large
//! (413): free texts shortened with a marker, lists of evidence, parts and checklist
//! items shortened, long evidence strings cut. Ids, codes, times, severity and
//! coverage are never touched, so the cut request means the same ticket.

use crate::model::{Diagnosis, Evidence, NewTicket, TicketEvent};
use crate::outbox::{OutboxEntry, Request};

/// Ends every text that was cut.
pub const CUT: &str = " [cut]";
/// Longest title kept.
const TITLE: usize = 256;
/// Longest description, note or resolution kept.
const TEXT: usize = 2048;
/// Longest probable cause, checklist item or evidence string value kept.
const LINE: usize = 256;
/// Longest evidence field name or suggested part kept.
const NAME: usize = 64;
/// Most evidence readings, suggested parts and checklist items kept.
const ITEMS: usize = 8;

impl OutboxEntry {
    /// The request with its free texts and lists cut to small sizes (same key, same
    /// ticket), or `None` when nothing in it is long enough to cut.
    pub fn cut_to_fit(&self) -> Option<OutboxEntry> {
        let mut entry = self.clone();
        let cut = match &mut entry.request {
            Request::Open { ticket } => cut_ticket(ticket),
            Request::Event { event, .. } => cut_event(event),
            Request::Close { close, .. } => cap(&mut close.resolution, TEXT),
        };
        cut.then_some(entry)
    }
}

fn cut_ticket(t: &mut NewTicket) -> bool {
    let mut cut = cap(&mut t.title, TITLE);
    if let Some(d) = &mut t.description {
        cut |= cap(d, TEXT);
    }
    if let Some(d) = &mut t.diagnosis {
        cut |= cut_diagnosis(d);
    }
    cut |= shorten(&mut t.checklist, ITEMS);
    for item in &mut t.checklist {
        cut |= cap(item, LINE);
    }
    cut |= cut_evidence(&mut t.evidence);
    cut
}

fn cut_event(e: &mut TicketEvent) -> bool {
    e.note.as_mut().is_some_and(|n| cap(n, TEXT))
}

fn cut_diagnosis(d: &mut Diagnosis) -> bool {
    let mut cut = d.probable_cause.as_mut().is_some_and(|c| cap(c, LINE));
    cut |= shorten(&mut d.suggested_parts, ITEMS);
    for part in &mut d.suggested_parts {
        cut |= cap(part, NAME);
    }
    cut
}

fn cut_evidence(evidence: &mut Vec<Evidence>) -> bool {
    let mut cut = shorten(evidence, ITEMS);
    for e in evidence {
        cut |= cap(&mut e.field, NAME);
        match &mut e.value {
            serde_json::Value::String(s) => cut |= cap(s, LINE),
            // Evidence is a number, string or boolean; anything else is replaced by
            // its JSON text, cut.
            v @ (serde_json::Value::Array(_) | serde_json::Value::Object(_)) => {
                let mut text = v.to_string();
                cap(&mut text, LINE);
                *v = serde_json::Value::String(text);
                cut = true;
            }
            _ => {}
        }
    }
    cut
}

fn shorten<T>(items: &mut Vec<T>, max: usize) -> bool {
    let cut = items.len() > max;
    items.truncate(max);
    cut
}

/// Cuts `s` to at most `max` bytes ending with [`CUT`]; true when it did.
fn cap(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max.saturating_sub(CUT.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(CUT);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CloseRequest, EventKind};

    fn ticket() -> NewTicket {
        serde_json::from_value(serde_json::json!({
            "ticket_id": "s.d.overheat.1", "kind": "fault", "site": "s",
            "device": {"id": "d", "type": "solar-water-heater"},
            "code": "overheat", "severity": 2, "title": "Tank overheating",
            "opened_at": "2026-11-23T10:00:00+08:00"
        }))
        .unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn a_small_request_has_nothing_to_cut() {
        let entry =
            OutboxEntry { key: "k".into(), request: Request::Open { ticket: Box::new(ticket()) } };
        assert!(entry.cut_to_fit().is_none());
    }

    #[test]
    fn long_texts_and_lists_are_cut_with_a_marker_and_the_ticket_keeps_its_identity() {
        let mut t = ticket();
        t.title = "é".repeat(10_000);
        t.description = Some("d".repeat(1 << 20));
        t.diagnosis = Some(Diagnosis {
            probable_cause: Some("c".repeat(5_000)),
            category: None,
            suggested_parts: vec!["p".repeat(500); 40],
        });
        let ev = Evidence {
            ts: t.opened_at.clone(),
            field: "f".repeat(300),
            value: serde_json::Value::String("v".repeat(100_000)),
        };
        t.evidence = vec![ev; 100];
        let entry = OutboxEntry { key: "k".into(), request: Request::Open { ticket: Box::new(t) } };
        let cut = entry.cut_to_fit().unwrap_or_else(|| unreachable!("nothing cut"));
        assert_eq!(cut.key, "k");
        assert_eq!(cut.ticket_id(), "s.d.overheat.1");
        let body = serde_json::to_string(&cut.body()).unwrap_or_default();
        assert!(body.len() < 16 * 1024, "{} bytes", body.len());
        let Request::Open { ticket } = &cut.request else { unreachable!() };
        assert!(ticket.title.ends_with(CUT) && ticket.title.len() <= TITLE);
        assert!(ticket.description.as_deref().is_some_and(|d| d.ends_with(CUT)));
        assert_eq!(ticket.evidence.len(), ITEMS);
        assert_eq!((ticket.code.as_str(), ticket.severity), ("overheat", Some(2)));
        assert!(cut.cut_to_fit().is_none(), "a cut request has nothing more to cut");
    }

    #[test]
    fn event_notes_and_resolutions_are_cut() {
        let event = TicketEvent {
            kind: EventKind::Recovered,
            at: ticket().opened_at,
            note: Some("n".repeat(100_000)),
        };
        let entry = OutboxEntry {
            key: "k".into(),
            request: Request::Event { ticket_id: "t".into(), event },
        };
        let cut = entry.cut_to_fit().unwrap_or_else(|| unreachable!("nothing cut"));
        assert!(cut.body()["note"].as_str().is_some_and(|n| n.len() <= TEXT && n.ends_with(CUT)));
        let close = CloseRequest { resolution: "r".repeat(5_000), closed_at: ticket().opened_at };
        let entry = OutboxEntry {
            key: "k".into(),
            request: Request::Close { ticket_id: "t".into(), close },
        };
        assert!(entry.cut_to_fit().is_some());
    }
}
