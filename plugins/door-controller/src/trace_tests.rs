//! Runs every fixture trace of `traces/` through the plugin.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use tend_plugin_sdk::prelude::*;
use tend_plugin_sdk::runner;

use crate::DoorController;
use crate::describe::ALL_CODES;

fn traces_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("traces")
}

/// Epoch ms of the fixed format `YYYY-MM-DDTHH:MM:SS+08:00`.
fn parse_ts(s: &str) -> i64 {
    assert_eq!(s.len(), 25, "{s}");
    assert!(s.ends_with("+08:00"), "{s}");
    let n = |a: usize, b: usize| -> i64 { s[a..b].parse().unwrap() };
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19) - 8 * 3600;
    secs * 1000
}

#[test]
fn ts_parser() {
    assert_eq!(parse_ts("2026-11-23T09:00:00+08:00"), 1_795_395_600_000);
    assert_eq!(parse_ts("1970-01-01T08:00:00+08:00"), 0);
}

/// What a trace did: for each code, whether it was ever active, the last judgment
/// and the highest severity (lowest number) seen.
#[derive(Debug, Default)]
struct Summary {
    ever_active: BTreeMap<String, u8>,
    last: BTreeMap<String, bool>,
    last_active_ts: i64,
    end_ts: i64,
    telemetry: usize,
    span_ms: i64,
}

fn run(name: &str) -> Summary {
    let text = std::fs::read_to_string(traces_dir().join(name)).unwrap();
    let device = Device::new("door-1", "DC-100");
    let mut state: Option<Vec<u8>> = None;
    let mut sum = Summary::default();
    let mut prev_ts = i64::MIN;
    let mut first_ts = None;
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        let topic = v["topic"].as_str().unwrap();
        assert!(topic.starts_with("tend/test-site/door-1/"), "{name}:{}: {topic}", i + 1);
        let kind = match topic.rsplit('/').next() {
            Some("telemetry") => MessageKind::Telemetry,
            Some("event") => MessageKind::Event,
            Some("status") => MessageKind::Status,
            other => panic!("{name}:{}: topic {other:?}", i + 1),
        };
        let payload = &v["payload"];
        let ts = parse_ts(payload["ts"].as_str().unwrap());
        assert!(ts >= prev_ts, "{name}:{}: ts goes back", i + 1);
        prev_ts = ts;
        first_ts.get_or_insert(ts);
        if kind == MessageKind::Telemetry {
            sum.telemetry += 1;
        }
        let msg = Message {
            kind,
            topic: topic.into(),
            payload: serde_json::to_vec(payload).unwrap(),
            ts_ms: ts,
        };
        let ev = runner::evaluate::<DoorController>(&device, &msg, state.as_deref())
            .unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1));
        state = Some(ev.state);
        for c in &ev.outcome.conditions {
            assert!(ALL_CODES.contains(&c.code.as_str()), "{}", c.code);
            sum.last.insert(c.code.clone(), c.active);
            if c.active {
                sum.last_active_ts = ts;
                let s = sum.ever_active.entry(c.code.clone()).or_insert(c.severity);
                *s = (*s).min(c.severity);
            }
        }
    }
    sum.end_ts = prev_ts;
    sum.span_ms = prev_ts - first_ts.unwrap_or(prev_ts);
    sum
}

#[test]
fn every_code_has_a_trace_that_raises_and_clears_it() {
    for code in ALL_CODES {
        let sum = run(&format!("{code}.jsonl"));
        assert!(sum.ever_active.contains_key(code), "{code}: never active");
        assert_eq!(sum.last.get(code), Some(&false), "{code}: not inactive at the end");
        let others: Vec<&String> = sum.ever_active.keys().filter(|c| *c != code).collect();
        assert!(others.is_empty(), "{code}.jsonl also raised {others:?}");
        assert!(sum.telemetry >= 20, "{code}: too short");
        assert!(
            sum.end_ts - sum.last_active_ts >= 5 * 60 * 1000,
            "{code}: less than 5 min of normal readings after the fault"
        );
    }
}

#[test]
fn trace_severities() {
    assert_eq!(run("door_held_open.jsonl").ever_active["door_held_open"], 3);
    assert_eq!(run("battery_low.jsonl").ever_active["battery_low"], 2);
    assert_eq!(run("reader_suspect.jsonl").ever_active["reader_suspect"], 4);
}

#[test]
fn normal_trace_never_raises_anything() {
    let sum = run("normal.jsonl");
    assert!(sum.ever_active.is_empty(), "normal.jsonl raised {:?}", sum.ever_active);
    assert!(sum.span_ms >= 60 * 60 * 1000);
    for code in ALL_CODES {
        assert_eq!(sum.last.get(code), Some(&false), "{code} never judged");
    }
}

#[test]
fn no_stray_trace_files() {
    for entry in std::fs::read_dir(traces_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(stem) = name.strip_suffix(".jsonl") {
            assert!(stem == "normal" || ALL_CODES.contains(&stem), "{name}");
        }
    }
}
