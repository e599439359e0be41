//! Recorded traces (interfaces.md): one JSON object a line,
//! `{"topic": "tend/{site}/{device_id}/{kind}", "payload": <JSON value>}`.

use std::io::BufRead;

use serde::Deserialize;

/// One trace line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceLine {
    /// The MQTT topic.
    pub topic: String,
    /// The payload as a JSON value.
    pub payload: serde_json::Value,
}

impl TraceLine {
    /// The payload bytes a device would have published: a JSON string is handed over
    /// as the string's own bytes (how `status` messages travel), anything else as its
    /// compact JSON text.
    pub fn payload_bytes(&self) -> Vec<u8> {
        match &self.payload {
            serde_json::Value::String(s) => s.as_bytes().to_vec(),
            v => v.to_string().into_bytes(),
        }
    }
}

/// Payload bytes from the payload's JSON text as written in the trace, as
/// [`TraceLine::payload_bytes`] gives them but without building the value when the
/// text is compact already (what recorders and `tend simulate --print` write): a
/// string's own bytes, compact text as it is, anything else re-written compactly.
fn raw_payload_bytes(raw: &serde_json::value::RawValue) -> Result<Vec<u8>, serde_json::Error> {
    let text = raw.get();
    if text.starts_with('"') {
        return serde_json::from_str::<String>(text).map(String::into_bytes);
    }
    if !text.bytes().any(|b| b.is_ascii_whitespace()) {
        return Ok(text.as_bytes().to_vec());
    }
    serde_json::from_str::<serde_json::Value>(text).map(|v| v.to_string().into_bytes())
}

/// One trace line as read for replay: the topic and the payload bytes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine<'a> {
    #[serde(borrow)]
    topic: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    payload: &'a serde_json::value::RawValue,
}

/// Reads a trace as (1-based line number, topic, payload bytes), or the error at
/// that line; blank lines are skipped. The payload bytes are those of
/// [`TraceLine::payload_bytes`] up to the order of object keys and the spelling of
/// numbers (the same JSON value), read without building the value.
pub fn read_trace_bytes(
    reader: impl BufRead,
) -> impl Iterator<Item = Result<(usize, String, Vec<u8>), TraceError>> {
    reader.lines().enumerate().filter_map(|(i, line)| {
        let n = i + 1;
        let parse =
            |reason: serde_json::Error| TraceError::Parse { line: n, reason: reason.to_string() };
        match line {
            Err(source) => Some(Err(TraceError::Io { line: n, source })),
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(serde_json::from_str::<RawLine<'_>>(&l).map_err(parse).and_then(|r| {
                let payload = raw_payload_bytes(r.payload).map_err(parse)?;
                Ok((n, r.topic.into_owned(), payload))
            })),
        }
    })
}

/// A trace line that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// Reading failed.
    #[error("cannot read the trace at line {line}: {source}")]
    Io {
        /// 1-based line number.
        line: usize,
        /// Why.
        source: std::io::Error,
    },
    /// Not a trace line.
    #[error("trace line {line} is not {{\"topic\": ..., \"payload\": ...}}: {reason}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// serde's message.
        reason: String,
    },
}

/// Reads a trace: each item is a (1-based line number, line) or the error at that line.
/// Blank lines are skipped.
pub fn read_trace(
    reader: impl BufRead,
) -> impl Iterator<Item = Result<(usize, TraceLine), TraceError>> {
    reader.lines().enumerate().filter_map(|(i, line)| {
        let n = i + 1;
        match line {
            Err(source) => Some(Err(TraceError::Io { line: n, source })),
            Ok(l) if l.trim().is_empty() => None,
            Ok(l) => Some(
                serde_json::from_str::<TraceLine>(&l)
                    .map(|t| (n, t))
                    .map_err(|e| TraceError::Parse { line: n, reason: e.to_string() }),
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_bytes_read_raw_are_the_same_json() {
        let text = "{\"topic\":\"tend/s/d/status\",\"payload\":\"off\\\"line\"}\n\n\
                    {\"topic\":\"tend/s/d/telemetry\",\"payload\":{\"ts\":1,\"b\":[1,2.5],\"a\":\"x-y\"}}\n\
                    {\"topic\":\"t\",\"payload\":{\"ts\": 1, \"a\": [1, 2]}}\nnot json\n";
        let raw: Vec<_> = read_trace_bytes(text.as_bytes()).collect();
        let parsed: Vec<_> = read_trace(text.as_bytes()).collect();
        assert_eq!(raw.len(), 4);
        for (r, p) in raw.iter().zip(&parsed).take(3) {
            let (n, topic, bytes) = r.as_ref().unwrap();
            let (m, line) = p.as_ref().unwrap();
            assert_eq!((n, topic), (m, &line.topic));
            let same: serde_json::Value = match &line.payload {
                serde_json::Value::String(s) => serde_json::Value::String(s.clone()),
                _ => serde_json::from_slice(bytes).unwrap(),
            };
            assert_eq!(same, line.payload);
        }
        assert_eq!(raw[0].as_ref().unwrap().2, b"off\"line");
        // Compact text is handed over as written; other text is re-written compactly.
        assert_eq!(raw[1].as_ref().unwrap().2, br#"{"ts":1,"b":[1,2.5],"a":"x-y"}"#);
        assert_eq!(raw[2].as_ref().unwrap().2, br#"{"a":[1,2],"ts":1}"#);
        assert!(matches!(raw[3], Err(TraceError::Parse { line: 5, .. })));
    }

    #[test]
    fn reads_lines_and_payload_bytes() {
        let text = "{\"topic\":\"tend/s/d/status\",\"payload\":\"offline\"}\n\n{\"topic\":\"tend/s/d/telemetry\",\"payload\":{\"ts\":1, \"a\": [1, 2]}}\nnot json\n";
        let items: Vec<_> = read_trace(text.as_bytes()).collect();
        assert_eq!(items.len(), 3);
        let (n, first) = items[0].as_ref().unwrap();
        assert_eq!((*n, first.payload_bytes()), (1, b"offline".to_vec()));
        let (n, second) = items[1].as_ref().unwrap();
        // Compact JSON text (object keys come out sorted).
        assert_eq!((*n, second.payload_bytes()), (3, br#"{"a":[1,2],"ts":1}"#.to_vec()));
        assert!(matches!(items[2], Err(TraceError::Parse { line: 4, .. })));
    }
}
