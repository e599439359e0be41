//! Runs every fixture trace in `traces/` through the plugin (natively, with the state
//! serialised between readings as the host does).
//!
//! `traces/<code>.jsonl`: `<code>` becomes active, no other code ever does, and it
//! ends inactive after at least 5 minutes of inactive readings. `normal.jsonl`:
//! nothing ever becomes active.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tend_plugin_av_system::AvSystem;
use tend_plugin_av_system::describe::{ALL_CODES, AMP_PROTECT, DISPLAY_OFFLINE, SIGNAL_LOSS};
use tend_plugin_sdk::prelude::*;
use tend_plugin_sdk::runner;

/// Parses `YYYY-MM-DDTHH:MM:SS(.fff)+HH:MM` (or `Z`) to epoch milliseconds.
fn parse_ts(s: &str) -> i64 {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> i64 { s[from..from + len].parse().unwrap() };
    let (y, mo, d) = (num(0, 4), num(5, 2), num(8, 2));
    let (h, mi, sec) = (num(11, 2), num(14, 2), num(17, 2));
    let mut i = 19;
    let mut frac_ms = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i.min(start + 3)];
        frac_ms = digits.parse::<i64>().unwrap() * 10_i64.pow(3 - digits.len() as u32);
    }
    let offset_s = match b[i] {
        b'Z' => 0,
        sign => {
            let o = num(i + 1, 2) * 3600 + num(i + 4, 2) * 60;
            if sign == b'-' { -o } else { o }
        }
    };
    // Days from civil (Howard Hinnant).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + h * 3600 + mi * 60 + sec - offset_s) * 1000 + frac_ms
}

#[test]
fn ts_parser() {
    assert_eq!(parse_ts("1970-01-01T08:00:00+08:00"), 0);
    assert_eq!(parse_ts("2026-11-22T10:00:00+08:00"), 1_795_312_800_000);
    assert_eq!(parse_ts("2026-11-22T02:00:00.5Z"), 1_795_312_800_500);
}

fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("traces")
}

/// Per reading: the codes judged and whether each was active, with the reading's time.
fn replay(path: &Path) -> Vec<(i64, BTreeMap<String, bool>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let device = Device::new("av-1", "AV-TEST");
    let mut state: Option<Vec<u8>> = None;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let where_ = format!("{}:{}", path.display(), n + 1);
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{where_}: {e}"));
        let topic = v["topic"].as_str().unwrap();
        assert!(topic.starts_with("tend/test-site/av-1/"), "{where_}");
        let kind = match topic.rsplit('/').next().unwrap() {
            "telemetry" => MessageKind::Telemetry,
            "event" => MessageKind::Event,
            "status" => MessageKind::Status,
            other => panic!("{where_}: topic kind {other}"),
        };
        let payload = match &v["payload"] {
            Value::String(s) => s.clone().into_bytes(),
            p => serde_json::to_vec(p).unwrap(),
        };
        let ts_ms = match &v["payload"]["ts"] {
            Value::String(s) => parse_ts(s),
            Value::Number(n) => n.as_i64().unwrap(),
            _ => out.last().map_or(0, |(t, _)| *t),
        };
        let msg = Message { kind, topic: topic.to_owned(), payload, ts_ms };
        let eval = runner::evaluate::<AvSystem>(&device, &msg, state.as_deref())
            .unwrap_or_else(|e| panic!("{where_}: {e}"));
        state = Some(eval.state);
        let judged = eval.outcome.conditions.iter().map(|c| (c.code.clone(), c.active)).collect();
        out.push((ts_ms, judged));
    }
    out
}

#[test]
fn every_code_has_a_trace_that_raises_and_clears_it() {
    for code in ALL_CODES {
        let path = traces_dir().join(format!("{code}.jsonl"));
        assert!(path.exists(), "missing {}", path.display());
        let run = replay(&path);
        assert!(run.len() >= 30, "{code}: too short");
        for w in run.windows(2) {
            assert_eq!(w[1].0 - w[0].0, 30_000, "{code}: readings every 30 s");
        }

        // Active at least once; no other code ever active.
        let active_at: Vec<i64> =
            run.iter().filter(|(_, j)| j.get(code) == Some(&true)).map(|(t, _)| *t).collect();
        assert!(!active_at.is_empty(), "{code} never became active");
        for (t, judged) in &run {
            for (c, a) in judged {
                assert!(!a || c == code, "{code} trace: {c} active at {t}");
            }
        }
        // Starts quiet and ends inactive after >= 5 min of inactive readings.
        assert_eq!(run[0].1.get(code), Some(&false), "{code}: starts active");
        let last_active = *active_at.last().unwrap();
        let (end, last) = run.last().unwrap();
        assert_eq!(last.get(code), Some(&false), "{code}: active at the end");
        assert!(end - last_active >= 5 * 60_000, "{code}: recovers too close to the end");
        for (t, judged) in run.iter().filter(|(t, _)| *t > last_active) {
            assert_eq!(judged.get(code), Some(&false), "{code}: not judged inactive at {t}");
        }
        // Interrupts-service faults stay active long enough for the host to escalate.
        if [AMP_PROTECT, DISPLAY_OFFLINE, SIGNAL_LOSS].contains(&code) {
            assert!(last_active - active_at[0] >= 10 * 60_000, "{code}: too short to escalate");
            assert_eq!(active_at.len() as i64, (last_active - active_at[0]) / 30_000 + 1);
        }
    }
}

#[test]
fn normal_trace_never_raises_anything() {
    let run = replay(&traces_dir().join("normal.jsonl"));
    assert!(run.len() >= 120, "an hour or more");
    for (t, judged) in &run {
        assert_eq!(judged.len(), ALL_CODES.len(), "every code judged at {t}");
        assert!(judged.values().all(|a| !a), "active at {t}: {judged:?}");
    }
}

#[test]
fn no_unexpected_trace_files() {
    for entry in std::fs::read_dir(traces_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(stem) = name.strip_suffix(".jsonl") {
            assert!(stem == "normal" || ALL_CODES.contains(&stem), "unexpected trace {name}");
        }
    }
}
