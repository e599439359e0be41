//! The central API's wire model (`shared/spec/central-api.md`): request and answer
//! bodies, exactly as they travel.
//!
//! Design notes:
//! - Field order in each struct is the order of the spec, and serialisation follows
//!   it, so the JSON the agent sends is stable byte for byte.
//! - Optional fields are omitted when absent (`None`, empty list), never sent as
//!   `null`. When reading answers, `null` and a missing key are both accepted.
//! - Times are [`WireTime`]: the RFC 3339 text exactly as the agent produced it
//!   (offset included), validated when built or parsed. Keeping the text, rather
//!   than a bare instant, keeps the site's local offset visible to the people who
//!   read the ticket and makes serialisation round-trip byte for byte.
//! - Unknown fields are ignored when reading, so a newer service (or agent) can add
//!   fields without breaking an older peer.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::tz::Offset;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time as RFC 3339 text with an explicit offset, e.g.
/// `2026-11-22T10:04:00+08:00`.
///
/// The text is kept exactly as produced (so the site's offset survives the trip to
/// the central service); [`WireTime::timestamp`] gives the instant it denotes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WireTime {
    /// The RFC 3339 text, serialised as is.
    text: String,
    /// The instant the text denotes, parsed once when the value is built.
    instant: Timestamp,
}

/// A string that is not an RFC 3339 date-time with an offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an RFC 3339 date-time with offset (like 2026-11-22T10:04:00+08:00)")]
pub struct InvalidTime {
    /// The rejected text.
    pub text: String,
}

impl WireTime {
    /// Parses and validates RFC 3339 text (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`).
    pub fn parse(text: impl Into<String>) -> Result<Self, InvalidTime> {
        let text = text.into();
        if !has_rfc3339_shape(&text) {
            return Err(InvalidTime { text });
        }
        match text.parse::<Timestamp>() {
            Ok(instant) => Ok(Self { text, instant }),
            Err(_) => Err(InvalidTime { text }),
        }
    }

    /// The instant `instant` written with the given offset (the site's local offset).
    pub fn from_timestamp(instant: Timestamp, offset: Offset) -> Self {
        Self { text: instant.display_with_offset(offset).to_string(), instant }
    }

    /// A zoned date-time written with its offset (the time zone name is dropped).
    pub fn from_zoned(zoned: &jiff::ZonedDateTime) -> Self {
        Self::from_timestamp(zoned.timestamp(), zoned.offset())
    }

    /// The RFC 3339 text, as it goes on the wire.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The instant this time denotes.
    pub fn timestamp(&self) -> Timestamp {
        self.instant
    }
}

/// Checks the RFC 3339 `date-time` grammar (jiff's parser is more liberal: it also
/// takes annotations, a space separator and missing seconds, which the contract
/// does not allow). Ranges (month 13, …) are left to jiff.
fn has_rfc3339_shape(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range).is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let at = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    let date_time = digits(0..4)
        && at(4, b"-")
        && digits(5..7)
        && at(7, b"-")
        && digits(8..10)
        && at(10, b"Tt")
        && digits(11..13)
        && at(13, b":")
        && digits(14..16)
        && at(16, b":")
        && digits(17..19);
    if !date_time {
        return false;
    }
    let mut i = 19;
    if at(i, b".") {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i..) {
        Some(b"Z" | b"z") => true,
        Some(rest) => {
            rest.len() == 6
                && matches!(rest[0], b'+' | b'-')
                && rest[1..3].iter().all(u8::is_ascii_digit)
                && rest[3] == b':'
                && rest[4..6].iter().all(u8::is_ascii_digit)
        }
        None => false,
    }
}

impl fmt::Display for WireTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for WireTime {
    type Err = InvalidTime;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for WireTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for WireTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(text).map_err(serde::de::Error::custom)
    }
}

/// What a ticket is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketKind {
    /// A fault the agent detected on a device.
    Fault,
    /// A preventive inspection that is coming due.
    Inspection,
}

/// The device a ticket concerns, as the site inventory describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// The device id in the site inventory (e.g. `swh-roof-01`).
    pub id: String,
    /// The equipment type (e.g. `solar-water-heater`), as the plugin names it.
    #[serde(rename = "type")]
    pub device_type: String,
    /// Model designation, when the inventory has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Serial / device number, when the inventory has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Where the device is, in words a technician can follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// Due times of the response commitments, computed when the ticket opens.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Sla {
    /// Respond (phone / remote) by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond_by: Option<WireTime>,
    /// Be on site by (absent for level 4: "next inspection").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onsite_by: Option<WireTime>,
    /// Resolve by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_by: Option<WireTime>,
}

/// Who pays for a fault's repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coverage {
    /// Under the component's warranty: free.
    Warranty,
    /// Covered by a maintenance contract.
    Contract,
    /// Parts and labour charged.
    Billable,
}

/// Whether a fault is probably in hardware or software (decides repair/replace
/// versus adjust in the response flow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultCategory {
    /// Repair or replace (RMA).
    Hardware,
    /// Adjust configuration or software.
    Software,
}

/// The plugin's diagnosis hint for a fault.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Diagnosis {
    /// The most likely cause, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probable_cause: Option<String>,
    /// Hardware or software.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<FaultCategory>,
    /// Spare parts worth bringing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggested_parts: Vec<String>,
}

/// One reading that supports the ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// When the reading was taken (the payload's event time).
    pub ts: WireTime,
    /// The payload field (e.g. `tank_level_pct`).
    pub field: String,
    /// The value read (number, string or boolean, as the device sent it).
    pub value: serde_json::Value,
}

/// Body of `POST /api/v1/tickets`: opens a fault or inspection ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTicket {
    /// Agent-chosen unique id, stable across retries.
    pub ticket_id: String,
    /// Fault or inspection.
    pub kind: TicketKind,
    /// The site id.
    pub site: String,
    /// The device concerned.
    pub device: Device,
    /// Fault code, or the inspection plan's id for inspections.
    pub code: String,
    /// Severity 1 (critical) ..= 4 (warning); required for faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<u8>,
    /// One-line summary.
    pub title: String,
    /// Longer explanation for the technician.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When the condition started (faults) or the ticket was raised (inspections).
    pub opened_at: WireTime,
    /// Response commitments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<Sla>,
    /// Who pays (faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    /// Diagnosis hint (faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
    /// What to check (inspections).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checklist: Vec<String>,
    /// When the inspection is due (inspections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<WireTime>,
    /// Readings that support the ticket.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// How many times this device had this fault (this one included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrence: Option<u32>,
    /// The repeat-fault rule says: replace the unit.
    #[serde(default)]
    pub replacement_recommended: bool,
}

/// A body the service will never accept, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct Invalid {
    /// One sentence per problem.
    pub problems: Vec<String>,
}

impl Invalid {
    fn check(problems: Vec<String>) -> Result<(), Invalid> {
        if problems.is_empty() { Ok(()) } else { Err(Invalid { problems }) }
    }
}

/// Lowest (most urgent) severity level.
pub const SEVERITY_MIN: u8 = 1;
/// Highest (least urgent) severity level.
pub const SEVERITY_MAX: u8 = 4;

fn require_text(problems: &mut Vec<String>, name: &str, value: &str) {
    if value.trim().is_empty() {
        problems.push(format!("{name} must not be empty"));
    }
}

fn check_severity(problems: &mut Vec<String>, name: &str, severity: u8) {
    if !(SEVERITY_MIN..=SEVERITY_MAX).contains(&severity) {
        problems.push(format!("{name} must be {SEVERITY_MIN}..={SEVERITY_MAX}, got {severity}"));
    }
}

impl NewTicket {
    /// The rules beyond the JSON shape: required texts are non-empty, the ticket id
    /// has no control characters, faults carry a severity in 1..=4, an occurrence
    /// counts from 1.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut problems = Vec::new();
        require_text(&mut problems, "ticket_id", &self.ticket_id);
        if self.ticket_id.chars().any(char::is_control) {
            problems.push("ticket_id must not contain control characters".into());
        }
        require_text(&mut problems, "site", &self.site);
        require_text(&mut problems, "device.id", &self.device.id);
        require_text(&mut problems, "device.type", &self.device.device_type);
        require_text(&mut problems, "code", &self.code);
        require_text(&mut problems, "title", &self.title);
        match (self.kind, self.severity) {
            (TicketKind::Fault, None) => problems.push("severity is required for faults".into()),
            (_, Some(severity)) => check_severity(&mut problems, "severity", severity),
            (TicketKind::Inspection, None) => {}
        }
        if self.occurrence == Some(0) {
            problems.push("occurrence counts from 1".into());
        }
        Invalid::check(problems)
    }
}

/// What happened to an open ticket, with the fields that type carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EventKind {
    /// The condition came back before the ticket was closed.
    Recurred {
        /// How many times it has come back in this episode.
        count: u32,
    },
    /// The fault was raised to a more urgent level.
    Escalated {
        /// The new severity (1..=4).
        severity: u8,
    },
    /// The condition cleared; a person still confirms and closes.
    Recovered,
    /// The inspection is past due.
    Overdue,
}

/// Body of `POST /api/v1/tickets/{ticket_id}/events`, e.g.
/// `{"type":"escalated","severity":1,"at":"…","note":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketEvent {
    /// The event type and its fields (serialised first, flattened).
    #[serde(flatten)]
    pub kind: EventKind,
    /// When it happened (event time).
    pub at: WireTime,
    /// Free text for the technician.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TicketEvent {
    /// The rules beyond the JSON shape: a recurrence counts from 1, an escalation
    /// names a severity in 1..=4.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut problems = Vec::new();
        match self.kind {
            EventKind::Recurred { count: 0 } => problems.push("count counts from 1".into()),
            EventKind::Escalated { severity } => {
                check_severity(&mut problems, "severity", severity);
            }
            _ => {}
        }
        Invalid::check(problems)
    }
}

/// Answer to a create or an event: `{"ticket_id", "number"}` (201 when new, 200
/// when the idempotency key was seen before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// The agent's ticket id.
    pub ticket_id: String,
    /// The service's own ticket number (e.g. `T-000042`); read from a string or an
    /// integer (see [`ticket_number`]), always written as a string.
    #[serde(deserialize_with = "ticket_number")]
    pub number: String,
}

/// Reads a service's ticket number: services differ, so the spec allows a string
/// (`"T-000042"`, kept as is) or an integer (`42`, kept as its decimal text `"42"`).
/// Anything else (a fraction, `null`, a list) is refused.
pub fn ticket_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Number;

    impl serde::de::Visitor<'_> for Number {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a ticket number (a string or an integer)")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }

        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<String, E> {
            Ok(v.to_string())
        }

        fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<String, E> {
            Ok(v.to_string())
        }
    }

    deserializer.deserialize_any(Number)
}

/// Where a ticket is in the service's workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Received, nobody has looked at it yet.
    Open,
    /// Someone at the service took it.
    Acknowledged,
    /// Work is under way.
    InProgress,
    /// Fixed, waiting for confirmation.
    Resolved,
    /// Done; `closed_at` says when.
    Closed,
}

impl Status {
    /// Every status, in workflow order.
    pub const ALL: [Status; 5] =
        [Status::Open, Status::Acknowledged, Status::InProgress, Status::Resolved, Status::Closed];

    /// The wire name (`in_progress`, …), as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::InProgress => "in_progress",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    /// The status of a wire name.
    pub fn from_name(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// Answer of `GET /api/v1/tickets/{ticket_id}` (and of close / acknowledge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketStatus {
    /// The agent's ticket id.
    pub ticket_id: String,
    /// The service's ticket number; a string or an integer (see [`ticket_number`]).
    #[serde(deserialize_with = "ticket_number")]
    pub number: String,
    /// Workflow status.
    pub status: Status,
    /// When it was closed (a closed inspection resets the device's schedule from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<WireTime>,
    /// What was done, as staff wrote it on closing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// Body of `POST /api/v1/tickets/{ticket_id}/close` (what maintenance staff send).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseRequest {
    /// What was done.
    pub resolution: String,
    /// When the work was completed.
    pub closed_at: WireTime,
}

impl CloseRequest {
    /// The rules beyond the JSON shape: the resolution says something.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut problems = Vec::new();
        require_text(&mut problems, "resolution", &self.resolution);
        Invalid::check(problems)
    }
}

/// Body of every error answer: `{"error": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_are_their_serialised_names_and_read_back() {
        for status in Status::ALL {
            let json = serde_json::to_string(&status).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(Status::from_name(status.as_str()), Some(status));
        }
        assert_eq!(Status::from_name("gone"), None);
    }

    /// The example body of central-api.md with its placeholders filled in, keys in
    /// the spec's order, compact.
    const EXAMPLE: &str = concat!(
        r#"{"ticket_id":"huaihai-138/swh-roof-01/tank_leak/1","kind":"fault","site":"huaihai-138","#,
        r#""device":{"id":"swh-roof-01","type":"solar-water-heater","model":"SWH-300","serial":"A1234","location":"Roof, block A"},"#,
        r#""code":"tank_leak","severity":2,"title":"Tank level falling with no draw","#,
        r#""description":"Level fell 9 points in 40 minutes while the draw valve stayed shut.","#,
        r#""opened_at":"2026-11-22T10:04:00+08:00","#,
        r#""sla":{"respond_by":"2026-11-22T10:14:00+08:00","onsite_by":"2026-11-22T18:04:00+08:00","resolve_by":"2026-11-24T10:04:00+08:00"},"#,
        r#""coverage":"warranty","#,
        r#""diagnosis":{"probable_cause":"Tank gasket leaking","category":"hardware","suggested_parts":["tank gasket"]},"#,
        r#""evidence":[{"ts":"2026-11-22T09:24:00+08:00","field":"tank_level_pct","value":80},{"ts":"2026-11-22T10:04:00+08:00","field":"tank_level_pct","value":71.5}],"#,
        r#""occurrence":1,"replacement_recommended":false}"#
    );

    fn t(s: &str) -> WireTime {
        match WireTime::parse(s) {
            Ok(t) => t,
            Err(e) => unreachable!("{e}"),
        }
    }

    #[test]
    fn spec_example_round_trips_byte_for_byte() -> anyhow::Result<()> {
        let ticket: NewTicket = serde_json::from_str(EXAMPLE)?;
        assert_eq!(ticket.kind, TicketKind::Fault);
        assert_eq!(ticket.severity, Some(2));
        assert_eq!(ticket.coverage, Some(Coverage::Warranty));
        assert_eq!(ticket.opened_at.as_str(), "2026-11-22T10:04:00+08:00");
        assert_eq!(serde_json::to_string(&ticket)?, EXAMPLE);
        ticket.validate()?;
        Ok(())
    }

    #[test]
    fn optional_fields_are_omitted() -> anyhow::Result<()> {
        let ticket = NewTicket {
            ticket_id: "i-1".into(),
            kind: TicketKind::Inspection,
            site: "s".into(),
            device: Device {
                id: "d".into(),
                device_type: "door-controller".into(),
                model: None,
                serial: None,
                location: None,
            },
            code: "semiannual".into(),
            severity: None,
            title: "Half-yearly inspection".into(),
            description: None,
            opened_at: t("2026-05-01T09:00:00+08:00"),
            sla: None,
            coverage: None,
            diagnosis: None,
            checklist: vec!["closer".into(), "hinges".into()],
            due_at: Some(t("2026-05-08T09:00:00+08:00")),
            evidence: vec![],
            occurrence: None,
            replacement_recommended: false,
        };
        ticket.validate()?;
        let json = serde_json::to_string(&ticket)?;
        assert_eq!(
            json,
            concat!(
                r#"{"ticket_id":"i-1","kind":"inspection","site":"s","#,
                r#""device":{"id":"d","type":"door-controller"},"code":"semiannual","#,
                r#""title":"Half-yearly inspection","opened_at":"2026-05-01T09:00:00+08:00","#,
                r#""checklist":["closer","hinges"],"due_at":"2026-05-08T09:00:00+08:00","#,
                r#""replacement_recommended":false}"#
            )
        );
        assert_eq!(serde_json::from_str::<NewTicket>(&json)?, ticket);
        Ok(())
    }

    #[test]
    fn events_serialise_type_first() -> anyhow::Result<()> {
        let at = t("2026-11-22T10:14:00+08:00");
        let cases = [
            (EventKind::Recurred { count: 2 }, r#"{"type":"recurred","count":2,"#),
            (EventKind::Escalated { severity: 1 }, r#"{"type":"escalated","severity":1,"#),
            (EventKind::Recovered, r#"{"type":"recovered","#),
            (EventKind::Overdue, r#"{"type":"overdue","#),
        ];
        for (kind, head) in cases {
            let event = TicketEvent { kind, at: at.clone(), note: Some("n".into()) };
            let json = serde_json::to_string(&event)?;
            assert_eq!(json, format!(r#"{head}"at":"2026-11-22T10:14:00+08:00","note":"n"}}"#));
            assert_eq!(serde_json::from_str::<TicketEvent>(&json)?, event);
            event.validate()?;
        }
        let bare = TicketEvent { kind: EventKind::Recovered, at, note: None };
        assert_eq!(
            serde_json::to_string(&bare)?,
            r#"{"type":"recovered","at":"2026-11-22T10:14:00+08:00"}"#
        );
        Ok(())
    }

    #[test]
    fn bad_events_are_refused() {
        let bad_type = r#"{"type":"exploded","at":"2026-11-22T10:14:00+08:00"}"#;
        assert!(serde_json::from_str::<TicketEvent>(bad_type).is_err());
        let no_count = r#"{"type":"recurred","at":"2026-11-22T10:14:00+08:00"}"#;
        assert!(serde_json::from_str::<TicketEvent>(no_count).is_err());
        let at = t("2026-11-22T10:14:00+08:00");
        let zero =
            TicketEvent { kind: EventKind::Recurred { count: 0 }, at: at.clone(), note: None };
        assert!(zero.validate().is_err());
        let five = TicketEvent { kind: EventKind::Escalated { severity: 5 }, at, note: None };
        assert!(five.validate().is_err());
    }

    #[test]
    fn validation_lists_every_problem() -> anyhow::Result<()> {
        let mut ticket: NewTicket = serde_json::from_str(EXAMPLE)?;
        ticket.severity = Some(5);
        ticket.title = " ".into();
        ticket.occurrence = Some(0);
        let err = ticket.validate().err().map(|e| e.problems).unwrap_or_default();
        assert_eq!(err.len(), 3, "{err:?}");
        ticket.severity = None;
        ticket.title = "x".into();
        ticket.occurrence = None;
        let err = ticket.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(err, "severity is required for faults");
        ticket.severity = Some(0);
        assert!(ticket.validate().is_err());
        ticket.severity = Some(4);
        ticket.ticket_id = "a\nb".into();
        assert!(ticket.validate().is_err());
        Ok(())
    }

    #[test]
    fn wire_time_accepts_rfc3339_only() {
        for ok in [
            "2026-11-22T10:04:00+08:00",
            "2026-11-22T02:04:00Z",
            "2026-11-22t02:04:00z",
            "2026-11-22T10:04:00.123456789-05:30",
        ] {
            assert_eq!(t(ok).as_str(), ok);
        }
        for bad in [
            "2026-11-22T10:04:00",
            "2026-11-22",
            "2026-11-22 10:04:00+08:00",
            "2026-11-22T10:04+08:00",
            "2026-11-22T10:04:00+08:00[Asia/Shanghai]",
            "2026-11-22T10:04:00+0800",
            "2026-11-22T10:04:00.+08:00",
            "2026-13-22T10:04:00+08:00",
            "2026-02-30T10:04:00+08:00",
            "",
        ] {
            assert!(WireTime::parse(bad).is_err(), "{bad}");
        }
        let json = r#"{"resolution":"ok","closed_at":"2026-11-22 10:04"}"#;
        assert!(serde_json::from_str::<CloseRequest>(json).is_err());
    }

    #[test]
    fn wire_time_keeps_the_offset() -> anyhow::Result<()> {
        let zoned: jiff::ZonedDateTime = "2026-11-22T10:04:00+08:00[Asia/Shanghai]".parse()?;
        let time = WireTime::from_zoned(&zoned);
        assert_eq!(time.as_str(), "2026-11-22T10:04:00+08:00");
        assert_eq!(time.timestamp(), "2026-11-22T02:04:00Z".parse::<Timestamp>()?);
        assert_eq!(t("2026-11-22T02:04:00Z").timestamp(), time.timestamp());
        assert_ne!(t("2026-11-22T02:04:00Z"), time, "same instant, different text");
        Ok(())
    }

    #[test]
    fn numbers_are_strings_or_integers_kept_as_text() -> anyhow::Result<()> {
        for (number, text) in [
            (r#""T-000042""#, "T-000042"),
            (r#""""#, ""),
            ("42", "42"),
            ("0", "0"),
            ("-7", "-7"),
            ("18446744073709551615", "18446744073709551615"),
        ] {
            let created: Created =
                serde_json::from_str(&format!(r#"{{"ticket_id":"a","number":{number}}}"#))?;
            assert_eq!(created, Created { ticket_id: "a".into(), number: text.into() });
            let status: TicketStatus = serde_json::from_str(&format!(
                r#"{{"ticket_id":"a","number":{number},"status":"open"}}"#
            ))?;
            assert_eq!(status.number, text);
        }
        // Written back as a string, whatever it was read from.
        let created: Created = serde_json::from_str(r#"{"ticket_id":"a","number":17}"#)?;
        assert_eq!(serde_json::to_string(&created)?, r#"{"ticket_id":"a","number":"17"}"#);
        for bad in ["1.5", "1e3", "null", "true", "[1]", r#"{"n":1}"#] {
            let json = format!(r#"{{"ticket_id":"a","number":{bad}}}"#);
            let error = serde_json::from_str::<Created>(&json).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains("a string or an integer")),
                "{bad}: {error:?}"
            );
        }
        assert!(serde_json::from_str::<Created>(r#"{"ticket_id":"a"}"#).is_err());
        Ok(())
    }

    #[test]
    fn status_reads_null_or_missing_optionals() -> anyhow::Result<()> {
        let open: TicketStatus = serde_json::from_str(
            r#"{"ticket_id":"a","number":"T-000001","status":"open","closed_at":null,"resolution":null}"#,
        )?;
        assert_eq!(open.status, Status::Open);
        assert_eq!(open.closed_at, None);
        assert_eq!(
            serde_json::to_string(&open)?,
            r#"{"ticket_id":"a","number":"T-000001","status":"open"}"#
        );
        let closed: TicketStatus = serde_json::from_str(
            r#"{"ticket_id":"a","number":"T-000001","status":"in_progress","extra":1}"#,
        )?;
        assert_eq!(closed.status, Status::InProgress);
        Ok(())
    }
}
