//! The desk's queue logic, pure: which commitment of a ticket is due next, the
//! urgency order, filters, and how times are written for people. No I/O; the clock
//! is a parameter.

use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::record::TicketRecord;
use tend_wire::model::{Status, TicketKind, WireTime};

/// A commitment the maintenance company made on a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commitment {
    /// Respond (phone / remote) by `sla.respond_by`.
    Respond,
    /// Be on site by `sla.onsite_by`.
    Onsite,
    /// Resolve by `sla.resolve_by`.
    Resolve,
    /// Carry out the inspection by `due_at`.
    Inspect,
}

impl Commitment {
    /// A short label for the queue.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Respond => "respond",
            Self::Onsite => "on site",
            Self::Resolve => "resolve",
            Self::Inspect => "inspect",
        }
    }
}

/// The commitment a ticket is working against now, and when it falls due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NextDue {
    /// Which commitment.
    pub(crate) commitment: Commitment,
    /// When it falls due.
    pub(crate) at: WireTime,
}

/// The commitment a ticket works against now; `None` when closed or when the
/// ticket carries no due times.
///
/// Reading of the SLA stages (maintenance.md gives the three due times, not the
/// workflow): until someone acknowledges the ticket, the response is what is due;
/// once acknowledged, being on site; once work is under way (`in_progress`,
/// `resolved`), the resolution. A missing stage falls through to the next one.
/// Inspections are due at `due_at` (or `sla.resolve_by` when only that is given).
pub(crate) fn next_due(record: &TicketRecord) -> Option<NextDue> {
    let ticket = &record.ticket;
    let sla = ticket.sla.clone().unwrap_or_default();
    let stages: Vec<(Commitment, Option<WireTime>)> = match (ticket.kind, record.status) {
        (_, Status::Closed) => return None,
        (TicketKind::Inspection, _) => vec![
            (Commitment::Inspect, ticket.due_at.clone()),
            (Commitment::Resolve, sla.resolve_by),
        ],
        (TicketKind::Fault, Status::Open) => vec![
            (Commitment::Respond, sla.respond_by),
            (Commitment::Onsite, sla.onsite_by),
            (Commitment::Resolve, sla.resolve_by),
        ],
        (TicketKind::Fault, Status::Acknowledged) => {
            vec![(Commitment::Onsite, sla.onsite_by), (Commitment::Resolve, sla.resolve_by)]
        }
        (TicketKind::Fault, Status::InProgress | Status::Resolved) => {
            vec![(Commitment::Resolve, sla.resolve_by)]
        }
    };
    stages.into_iter().find_map(|(commitment, at)| at.map(|at| NextDue { commitment, at }))
}

/// Sorts tickets most urgent first: the earliest next due time (overdue ones
/// first), tickets without a due time after those; then the most urgent severity
/// (1 before 4; inspections, which have none, after faults); then the oldest number.
/// A whole site down (device type `site`, e.g. `site_outage`) comes before all of
/// that: every device there is out. (The database's queue query orders the same.)
pub(crate) fn sort_by_urgency(records: &mut [TicketRecord]) {
    records.sort_by_cached_key(|record| {
        let due = next_due(record).map(|next| next.at.timestamp());
        let outage = crate::store::is_site_outage(&record.ticket);
        (!outage, due.is_none(), due, record.severity.unwrap_or(u8::MAX), record.number.clone())
    });
}

/// Which tickets the queue shows, from the query string
/// (`?site=&type=&kind=&status=`; an empty value means "any").
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Filter {
    /// Only this site.
    #[serde(default)]
    pub(crate) site: String,
    /// Only this equipment type.
    #[serde(default, rename = "type")]
    pub(crate) device_type: String,
    /// `fault` or `inspection`.
    #[serde(default)]
    pub(crate) kind: String,
    /// `active` (default: everything not closed), `closed`, `all`, or one status
    /// (`open`, `acknowledged`, `in_progress`, `resolved`).
    #[serde(default)]
    pub(crate) status: String,
}

/// A filter value the desk does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {field} {value:?} (expected one of: {expected})")]
pub(crate) struct BadFilter {
    /// The query parameter.
    pub(crate) field: &'static str,
    /// What was given.
    pub(crate) value: String,
    /// What is allowed.
    pub(crate) expected: &'static str,
}

/// The status choices of the filter, as `(value, label)`.
pub(crate) const STATUS_CHOICES: [(&str, &str); 7] = [
    ("active", "Not closed"),
    ("open", "Open"),
    ("acknowledged", "Acknowledged"),
    ("in_progress", "In progress"),
    ("resolved", "Resolved"),
    ("closed", "Closed"),
    ("all", "All"),
];

impl Filter {
    /// Checks the enumerated values (site and type are free text: an unknown one
    /// simply matches nothing).
    pub(crate) fn validate(&self) -> Result<(), BadFilter> {
        if !matches!(self.kind.as_str(), "" | "fault" | "inspection") {
            return Err(BadFilter {
                field: "kind",
                value: self.kind.clone(),
                expected: "fault, inspection",
            });
        }
        if !self.status.is_empty() && !STATUS_CHOICES.iter().any(|(v, _)| *v == self.status) {
            return Err(BadFilter {
                field: "status",
                value: self.status.clone(),
                expected: "active, open, acknowledged, in_progress, resolved, closed, all",
            });
        }
        Ok(())
    }

    /// Whether `record` is shown.
    /// (The database applies the same filter in `store::Store::queue`; this one pins the
    /// meaning in the tests.)
    #[cfg(test)]
    pub(crate) fn matches(&self, record: &TicketRecord) -> bool {
        let ticket = &record.ticket;
        let kind = match ticket.kind {
            TicketKind::Fault => "fault",
            TicketKind::Inspection => "inspection",
        };
        let status_ok = match self.status.as_str() {
            "" | "active" => record.status != Status::Closed,
            "all" => true,
            wanted => record.status.as_str() == wanted,
        };
        (self.site.is_empty() || ticket.site == self.site)
            && (self.device_type.is_empty() || ticket.device.device_type == self.device_type)
            && (self.kind.is_empty() || kind == self.kind)
            && status_ok
    }

    /// Whether any filter is set (the page offers to clear them).
    pub(crate) fn is_set(&self) -> bool {
        !(self.site.is_empty()
            && self.device_type.is_empty()
            && self.kind.is_empty()
            && matches!(self.status.as_str(), "" | "active"))
    }
}

/// The site's UTC offset, as the agent wrote it in `time` (RFC 3339 ends in `Z`
/// or `±HH:MM`, which [`WireTime`] guarantees).
pub(crate) fn offset_of(time: &WireTime) -> Offset {
    let text = time.as_str();
    let Some(tail) = text.len().checked_sub(6).and_then(|start| text.get(start..)) else {
        return Offset::UTC;
    };
    let mut chars = tail.chars();
    let sign = match chars.next() {
        Some('+') => 1,
        Some('-') => -1,
        _ => return Offset::UTC,
    };
    let hours: i32 = tail.get(1..3).and_then(|h| h.parse().ok()).unwrap_or(0);
    let minutes: i32 = tail.get(4..6).and_then(|m| m.parse().ok()).unwrap_or(0);
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).unwrap_or(Offset::UTC)
}

/// `time` for people, in the offset it was written in: `Sun 22 Nov 10:04`.
pub(crate) fn local(time: &WireTime) -> String {
    local_in(time, offset_of(time))
}

/// `time` for people at `offset` (the site's, for times the service wrote in UTC).
pub(crate) fn local_in(time: &WireTime, offset: Offset) -> String {
    let zone = TimeZone::fixed(offset);
    time.timestamp().to_zoned_datetime(zone).strftime("%a %d %b %H:%M").to_string()
}

/// A duration for people, to the minute: `3d 4h`, `2h 15m`, `35m`, `<1m`.
pub(crate) fn span(duration: SignedDuration) -> String {
    let minutes = duration.as_secs().unsigned_abs() / 60;
    let (days, hours, mins) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (days, hours, mins) {
        (0, 0, 0) => "<1m".to_owned(),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m:02}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// Time left until `due` at `now`: `Ok("2h 15m")` when ahead, `Err("35m")` (how
/// long overdue) when past.
pub(crate) fn time_left(due: &WireTime, now: Timestamp) -> Result<String, String> {
    let left = due.timestamp().duration_since(now);
    if left.is_negative() { Err(span(left)) } else { Ok(span(left)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tend_wire::model::NewTicket;

    fn t(text: &str) -> WireTime {
        WireTime::parse(text).unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn record(
        number: u32,
        kind: &str,
        severity: Option<u8>,
        sla: serde_json::Value,
    ) -> TicketRecord {
        let mut body = serde_json::json!({
            "ticket_id": format!("t{number}"), "kind": kind, "site": "s",
            "device": {"id": "d", "type": "door-controller"}, "code": "c", "title": "x",
            "opened_at": "2026-11-22T10:00:00+08:00", "sla": sla,
        });
        if let Some(severity) = severity {
            body["severity"] = severity.into();
        }
        if kind == "inspection" {
            body["due_at"] = "2026-11-23T10:00:00+08:00".into();
        }
        let ticket: NewTicket =
            serde_json::from_value(body).unwrap_or_else(|e| unreachable!("{e}"));
        TicketRecord::new(format!("T-{number:06}"), "k", ticket, t("2026-11-22T02:00:00Z"))
    }

    fn sla(respond: &str, onsite: &str, resolve: &str) -> serde_json::Value {
        serde_json::json!({"respond_by": respond, "onsite_by": onsite, "resolve_by": resolve})
    }

    #[test]
    fn the_next_commitment_follows_the_workflow() {
        let mut r = record(
            1,
            "fault",
            Some(2),
            sla(
                "2026-11-22T10:10:00+08:00",
                "2026-11-22T14:00:00+08:00",
                "2026-11-23T10:00:00+08:00",
            ),
        );
        let due = |r: &TicketRecord| next_due(r).map(|n| (n.commitment, n.at.as_str().to_owned()));
        assert_eq!(due(&r), Some((Commitment::Respond, "2026-11-22T10:10:00+08:00".into())));
        r.acknowledge(t("2026-11-22T02:05:00Z"));
        assert_eq!(due(&r), Some((Commitment::Onsite, "2026-11-22T14:00:00+08:00".into())));
        r.status = Status::InProgress;
        assert_eq!(due(&r), Some((Commitment::Resolve, "2026-11-23T10:00:00+08:00".into())));
        r.close("done".into(), t("2026-11-22T16:00:00+08:00"));
        assert_eq!(due(&r), None);
        // Level 4 has no on-site time: acknowledged, it works toward the resolution.
        let mut low = record(
            2,
            "fault",
            Some(4),
            serde_json::json!({"resolve_by": "2026-11-29T10:00:00+08:00"}),
        );
        assert_eq!(due(&low).map(|d| d.0), Some(Commitment::Resolve));
        low.acknowledge(t("2026-11-22T02:05:00Z"));
        assert_eq!(due(&low).map(|d| d.0), Some(Commitment::Resolve));
        let inspection = record(3, "inspection", None, serde_json::json!({}));
        assert_eq!(
            due(&inspection),
            Some((Commitment::Inspect, "2026-11-23T10:00:00+08:00".into()))
        );
    }

    #[test]
    fn urgency_orders_by_due_time_then_severity() {
        let soon = sla(
            "2026-11-22T10:10:00+08:00",
            "2026-11-22T14:00:00+08:00",
            "2026-11-23T10:00:00+08:00",
        );
        // The same instant written in another offset.
        let same_instant =
            sla("2026-11-22T02:10:00Z", "2026-11-22T06:00:00Z", "2026-11-23T02:00:00Z");
        let later = sla(
            "2026-11-22T12:00:00+08:00",
            "2026-11-22T20:00:00+08:00",
            "2026-11-24T10:00:00+08:00",
        );
        let mut records = vec![
            record(1, "fault", Some(3), later),
            record(2, "fault", Some(2), soon),
            record(3, "fault", Some(1), same_instant),
            record(4, "fault", Some(1), serde_json::json!({})),
            record(5, "inspection", None, serde_json::json!({})),
        ];
        sort_by_urgency(&mut records);
        let order: Vec<&str> = records.iter().map(|r| r.number.as_str()).collect();
        assert_eq!(order, ["T-000003", "T-000002", "T-000001", "T-000005", "T-000004"]);
    }

    #[test]
    fn filters_match_and_reject_unknown_values() {
        let mut r = record(1, "fault", Some(2), serde_json::json!({}));
        let f = |q: &str| -> Filter { serde_urlencoded_like(q) };
        assert!(f("").matches(&r));
        assert!(f("site=s&type=door-controller&kind=fault").matches(&r));
        assert!(!f("site=other").matches(&r));
        assert!(!f("kind=inspection").matches(&r));
        assert!(f("status=open").matches(&r));
        assert!(!f("status=closed").matches(&r));
        r.close("done".into(), t("2026-11-22T16:00:00+08:00"));
        assert!(!f("").matches(&r), "closed tickets leave the default queue");
        assert!(f("status=closed").matches(&r) && f("status=all").matches(&r));
        assert!(f("kind=complaint").validate().is_err());
        assert!(f("status=gone").validate().is_err());
        assert!(f("status=in_progress&kind=").validate().is_ok());
        assert!(!f("status=active").is_set() && f("site=s").is_set());
    }

    /// Parses a query string the way axum's `Query` does.
    fn serde_urlencoded_like(query: &str) -> Filter {
        let pairs: Vec<(String, String)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let value = serde_json::Value::Object(
            pairs.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect(),
        );
        serde_json::from_value(value).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn times_read_in_the_site_offset() {
        let time = t("2026-11-22T10:04:00+08:00");
        assert_eq!(offset_of(&time), Offset::constant(8));
        assert_eq!(local(&time), "Sun 22 Nov 10:04");
        assert_eq!(local(&t("2026-11-22T02:04:00Z")), "Sun 22 Nov 02:04");
        assert_eq!(offset_of(&t("2026-11-22T10:04:00-05:30")).seconds(), -(5 * 3600 + 1800));
        let now: Timestamp = "2026-11-22T02:00:00Z".parse().unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(time_left(&time, now), Ok("4m".into()));
        assert_eq!(time_left(&t("2026-11-22T01:25:00Z"), now), Err("35m".into()));
        assert_eq!(time_left(&t("2026-11-22T04:15:30Z"), now), Ok("2h 15m".into()));
        assert_eq!(time_left(&t("2026-11-25T06:00:00Z"), now), Ok("3d 4h".into()));
        assert_eq!(time_left(&t("2026-11-22T02:00:20Z"), now), Ok("<1m".into()));
    }
}
