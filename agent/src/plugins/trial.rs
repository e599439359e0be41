//! `tend plugin test`: one plugin over a trace, no broker, no store. Prints each
//! condition change as a JSON line — the tool a vendor develops a plugin with.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};

use serde::Serialize;

use super::Evaluate;
use super::bindings::{Device, Message, Outcome};
use crate::ingest::event_time::{event_time_ms, rfc3339_utc};
use crate::ingest::topic::MessageKind;
use crate::ingest::topic::split_device_kind;
use crate::trace::read_trace;

/// One line of `tend plugin test` output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeLine {
    /// Event time, RFC 3339 UTC.
    pub ts: String,
    /// Event time in ms.
    pub ts_ms: i64,
    /// The trace line it came from.
    pub line: usize,
    /// Device id.
    pub device: String,
    /// Fault code.
    pub code: String,
    /// Became active (true) or inactive (false).
    pub active: bool,
    /// Severity while active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<u8>,
    /// The plugin's summary while active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// Tracks which conditions are active per device and reports changes.
#[derive(Debug, Default)]
pub struct ChangeTracker {
    active: HashMap<(String, String), u8>,
}

impl ChangeTracker {
    /// Applies one outcome; returns the changes it made (activation, severity
    /// change while active, deactivation), in the plugin's order.
    pub fn apply(&mut self, device: &str, ts_ms: i64, line: usize, o: &Outcome) -> Vec<ChangeLine> {
        let mut out = Vec::new();
        for c in &o.conditions {
            let key = (device.to_owned(), c.code.clone());
            let before = self.active.get(&key).copied();
            let changed = match (c.active, before) {
                (true, Some(sev)) => sev != c.severity,
                (true, None) | (false, Some(_)) => true,
                (false, None) => false,
            };
            if c.active {
                self.active.insert(key, c.severity);
            } else {
                self.active.remove(&key);
            }
            if changed {
                out.push(ChangeLine {
                    ts: rfc3339_utc(ts_ms),
                    ts_ms,
                    line,
                    device: device.to_owned(),
                    code: c.code.clone(),
                    active: c.active,
                    severity: c.active.then_some(c.severity),
                    summary: c.active.then(|| c.summary.clone()),
                });
            }
        }
        out
    }

    /// Conditions active now, by (device, code), with severity.
    pub fn active(&self) -> BTreeMap<(String, String), u8> {
        self.active.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// Totals of a trial run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrialSummary {
    /// Trace lines read.
    pub messages: u64,
    /// Condition changes printed.
    pub changes: u64,
    /// Lines the plugin (or the host) rejected.
    pub rejected: u64,
    /// Plugin failures (trap, deadline, memory, bad output).
    pub plugin_failures: u64,
}

/// Options of a trial.
#[derive(Debug, Clone, Default)]
pub struct TrialOptions {
    /// Per-device settings (JSON object text) handed to the plugin; default `{}`.
    pub settings: String,
    /// Model handed to the plugin.
    pub model: String,
}

/// Runs `plugin` over every message of the trace, in order; writes one JSON line per
/// condition change and one `{"error": ...}` line per rejected message to `out`.
pub fn run(
    plugin: &mut dyn Evaluate,
    trace: impl BufRead,
    opts: &TrialOptions,
    out: &mut dyn Write,
) -> std::io::Result<TrialSummary> {
    let mut summary = TrialSummary::default();
    let mut states: HashMap<String, Vec<u8>> = HashMap::new();
    let mut tracker = ChangeTracker::default();
    let mut watermark = i64::MIN;
    let settings =
        if opts.settings.trim().is_empty() { "{}".to_owned() } else { opts.settings.clone() };
    for item in read_trace(trace) {
        summary.messages += 1;
        let (line, t) = match item {
            Ok(x) => x,
            Err(e) => {
                summary.rejected += 1;
                write_error(out, None, None, &e.to_string())?;
                continue;
            }
        };
        let Some((device_id, kind)) = split_device_kind(&t.topic) else {
            summary.rejected += 1;
            write_error(
                out,
                Some(line),
                None,
                &format!("topic `{}` is not .../{{device_id}}/{{kind}}", t.topic),
            )?;
            continue;
        };
        let payload = t.payload_bytes();
        let ts_ms = match kind {
            // Status messages carry no ts: they take the watermark (interfaces.md).
            MessageKind::Status => watermark.max(0),
            _ => match event_time_ms(&payload) {
                Ok(ts) => ts,
                Err(e) => {
                    summary.rejected += 1;
                    write_error(out, Some(line), Some(device_id), &e.to_string())?;
                    continue;
                }
            },
        };
        watermark = watermark.max(ts_ms);
        let device = Device {
            id: device_id.to_owned(),
            model: opts.model.clone(),
            settings: settings.clone(),
        };
        let message = Message { kind: kind.into(), topic: t.topic.clone(), payload, ts_ms };
        let state = states.get(device_id).map(Vec::as_slice);
        match plugin.evaluate_batch(&device, std::slice::from_ref(&message), state, watermark) {
            Ok(mut b) => {
                states.insert(device_id.to_owned(), std::mem::take(&mut b.state));
                for r in b.outcomes {
                    match r {
                        Ok(o) => {
                            for c in tracker.apply(device_id, ts_ms, line, &o) {
                                summary.changes += 1;
                                writeln!(out, "{}", serde_json::to_string(&c).unwrap_or_default())?;
                            }
                        }
                        Err(e) => {
                            summary.rejected += 1;
                            write_error(out, Some(line), Some(device_id), &e.to_string())?;
                        }
                    }
                }
            }
            Err(e) => {
                summary.plugin_failures += 1;
                write_error(out, Some(line), Some(device_id), &e.to_string())?;
            }
        }
    }
    Ok(summary)
}

fn write_error(
    out: &mut dyn Write,
    line: Option<usize>,
    device: Option<&str>,
    error: &str,
) -> std::io::Result<()> {
    let v = serde_json::json!({ "line": line, "device": device, "error": error });
    writeln!(out, "{v}")
}
