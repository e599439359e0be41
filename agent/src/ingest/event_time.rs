//! The event time of a payload: its `ts`, RFC 3339 with offset or integer
//! milliseconds since the Unix epoch (telemetry.md, "Common fields").

use serde::Deserialize;

/// Why a payload has no usable event time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTimeError {
    /// Not a JSON object.
    #[error("payload is not a JSON object")]
    NotAnObject,
    /// No `ts` field.
    #[error("payload has no `ts`")]
    Missing,
    /// `ts` is neither RFC 3339 with offset nor integer milliseconds.
    #[error("`ts` is neither RFC 3339 with offset nor integer milliseconds: {0}")]
    Invalid(String),
    /// `ts` is a time tickets cannot carry (before 1970 or after 9999).
    #[error("`ts` {0} is outside 1970-01-01 .. 9999-12-30 (a device clock that is not set?)")]
    OutOfRange(String),
}

/// The earliest event time accepted: the Unix epoch (a device whose clock was never
/// set reports 1970; anything before is a broken clock).
pub const EARLIEST_MS: i64 = 0;
/// The latest event time accepted, 9999-12-30T00:00:00Z: a day short of the last
/// time RFC 3339 (four-digit years) can write, so that every time derived from it
/// (clear hold, escalation) in any site's offset still goes on the wire.
pub const LATEST_MS: i64 = 253_402_128_000_000;

#[derive(Deserialize)]
struct OnlyTs {
    #[serde(default)]
    ts: Option<serde_json::Value>,
}

/// Reads `ts` from a JSON payload, as milliseconds since the Unix epoch.
pub fn event_time_ms(payload: &[u8]) -> Result<i64, EventTimeError> {
    // serde would also accept a JSON array for a struct: insist on an object.
    if payload.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(EventTimeError::NotAnObject);
    }
    let only: OnlyTs = serde_json::from_slice(payload).map_err(|_| EventTimeError::NotAnObject)?;
    match only.ts {
        None | Some(serde_json::Value::Null) => Err(EventTimeError::Missing),
        Some(v) => ts_value_ms(&v),
    }
}

/// Converts a `ts` JSON value to milliseconds, within [`EARLIEST_MS`] ..=
/// [`LATEST_MS`].
pub fn ts_value_ms(v: &serde_json::Value) -> Result<i64, EventTimeError> {
    let ms = any_ts_ms(v)?;
    if (EARLIEST_MS..=LATEST_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(EventTimeError::OutOfRange(v.to_string().chars().take(40).collect()))
    }
}

fn any_ts_ms(v: &serde_json::Value) -> Result<i64, EventTimeError> {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            match n.as_f64() {
                Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                _ => Err(EventTimeError::Invalid(n.to_string())),
            }
        }
        serde_json::Value::String(s) => s
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond())
            .map_err(|_| EventTimeError::Invalid(s.chars().take(40).collect())),
        other => Err(EventTimeError::Invalid(other.to_string().chars().take(40).collect())),
    }
}

/// Formats milliseconds as RFC 3339 in UTC (`2026-11-22T02:00:00Z`, with
/// milliseconds only when present).
pub fn rfc3339_utc(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => t.to_string(),
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_both_forms() {
        assert_eq!(event_time_ms(br#"{"ts":"2026-11-22T10:00:00+08:00"}"#), Ok(1_795_312_800_000));
        assert_eq!(event_time_ms(br#"{"ts":1795312800000}"#), Ok(1_795_312_800_000));
        assert_eq!(
            event_time_ms(br#"{"ts":"2026-11-22T10:00:00.250+08:00","x":[1]}"#),
            Ok(1_795_312_800_250)
        );
    }

    #[test]
    fn rejects_the_rest() {
        assert_eq!(event_time_ms(b"[1]"), Err(EventTimeError::NotAnObject));
        assert_eq!(event_time_ms(b"\"offline\""), Err(EventTimeError::NotAnObject));
        assert_eq!(event_time_ms(br#"{"a":1}"#), Err(EventTimeError::Missing));
        assert!(matches!(
            event_time_ms(br#"{"ts":"2026-11-22T10:00:00"}"#),
            Err(EventTimeError::Invalid(_))
        ));
        assert!(matches!(event_time_ms(br#"{"ts":1.5}"#), Err(EventTimeError::Invalid(_))));
        assert!(matches!(event_time_ms(br#"{"ts":true}"#), Err(EventTimeError::Invalid(_))));
    }

    /// Found by the `ticket_builder` fuzz target: an event time in year -4651 made a
    /// ticket event whose `at` (`-004651-11-24T17:36:56.28+08:06`) no RFC 3339 parser,
    /// the central service's included, reads; the request would be refused for good.
    #[test]
    fn a_ts_tickets_cannot_carry_is_refused() {
        for ts in [
            "-208900000000000",
            "-1",
            "253402300799999",
            "9000000000000000",
            "\"1969-12-31T23:59:59Z\"",
        ] {
            let payload = format!(r#"{{"ts":{ts}}}"#);
            assert!(
                matches!(event_time_ms(payload.as_bytes()), Err(EventTimeError::OutOfRange(_))),
                "{ts}"
            );
        }
        assert_eq!(event_time_ms(br#"{"ts":0}"#), Ok(0));
        assert_eq!(event_time_ms(br#"{"ts":"9999-12-30T00:00:00Z"}"#), Ok(LATEST_MS));
        assert!(event_time_ms(br#"{"ts":"9999-12-30T00:00:00.001Z"}"#).is_err());
    }
}
