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
