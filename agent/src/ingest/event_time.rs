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
}

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

/// Converts a `ts` JSON value to milliseconds.
pub fn ts_value_ms(v: &serde_json::Value) -> Result<i64, EventTimeError> {
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
}
