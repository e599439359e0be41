//! Unit tests of every rule: fires just past its threshold, quiet just inside it,
//! clears when the condition ends, survives missing and garbage fields.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use tend_plugin_sdk::prelude::*;
use tend_plugin_sdk::runner;

use crate::describe::*;
use crate::{DoorController, State};

const T0: i64 = 1_795_395_600_000; // 2026-11-23T09:00:00+08:00

/// A device and its state, fed messages at `T0 + ms`.
struct Door {
    device: Device,
    state: State,
}

impl Door {
    fn new() -> Self {
        Self { device: Device::new("door-1", "DC-100"), state: State::default() }
    }

    fn with(settings: &str) -> Self {
        let mut d = Self::new();
        d.device.settings = settings.into();
        d
    }

    fn send(&mut self, kind: MessageKind, ms: i64, payload: &[u8]) -> Result<Outcome, EvalError> {
        let msg = Message {
            kind,
            topic: format!("tend/test-site/door-1/{kind:?}").to_lowercase(),
            payload: payload.to_vec(),
            ts_ms: T0 + ms,
        };
        DoorController::evaluate(&self.device, &msg, &mut self.state)
    }

    /// Telemetry with `door_open`, `locked` and any extra fields.
    fn tel(&mut self, ms: i64, open: bool, locked: bool, extra: Value) -> Outcome {
        let mut p = json!({"ts": T0 + ms, "door_open": open, "locked": locked});
        if let (Some(p), Value::Object(extra)) = (p.as_object_mut(), extra) {
            p.extend(extra);
        }
        self.send(MessageKind::Telemetry, ms, p.to_string().as_bytes()).unwrap()
    }

    /// A closed, locked door with everything fine.
    fn ok(&mut self, ms: i64) -> Outcome {
        self.tel(ms, false, true, json!({}))
    }

    fn ev(&mut self, ms: i64, name: &str) -> Outcome {
        let p = json!({"ts": T0 + ms, "event": name});
        self.send(MessageKind::Event, ms, p.to_string().as_bytes()).unwrap()
    }

    fn raw(&mut self, kind: MessageKind, ms: i64, payload: &str) -> Result<Outcome, EvalError> {
        self.send(kind, ms, payload.as_bytes())
    }
}

/// `Some(active)` when the outcome judged `code`.
fn judged(out: &Outcome, code: &str) -> Option<bool> {
    out.condition(code).map(|c| c.active)
}

fn active<'a>(out: &'a Outcome, code: &str) -> &'a Condition {
    let c = out.condition(code).unwrap_or_else(|| panic!("{code} not judged in {out:?}"));
    assert!(c.active, "{code} should be active: {out:?}");
    assert!(!c.summary.is_empty());
    assert!(!c.evidence.is_empty(), "{code} has no evidence");
    assert!(c.diagnosis.is_some(), "{code} has no diagnosis");
    c
}

fn inactive(out: &Outcome, code: &str) {
    assert_eq!(judged(out, code), Some(false), "{code} should be judged inactive: {out:?}");
}

const S: i64 = 1_000;

// ---------------------------------------------------------------- door_held_open

#[test]
fn held_open_other_door_fires_at_5_min() {
    let mut d = Door::new();
    d.ok(0);
    inactive(&d.tel(30 * S, true, false, json!({"fire_door": false})), DOOR_HELD_OPEN);
    inactive(&d.tel(30 * S + 299_999, true, false, json!({})), DOOR_HELD_OPEN);
    let out = d.tel(330 * S, true, false, json!({}));
    let c = active(&out, DOOR_HELD_OPEN);
    assert_eq!(c.severity, 3);
    assert!(c.summary.contains("5 min"), "{}", c.summary);
    assert_eq!(c.evidence[0].ts_ms, T0 + 30 * S);
    inactive(&d.tel(360 * S, false, true, json!({})), DOOR_HELD_OPEN);
}

#[test]
fn held_open_fire_door_fires_at_60_s_with_level_2() {
    let mut d = Door::new();
    d.tel(0, false, true, json!({"fire_door": true}));
    d.ev(10 * S, "access_granted");
    d.ev(12 * S, "door_opened");
    inactive(&d.tel(12 * S + 59_999, true, false, json!({"fire_door": true})), DOOR_HELD_OPEN);
    let out = d.tel(72 * S, true, false, json!({"fire_door": true}));
    assert_eq!(active(&out, DOOR_HELD_OPEN).severity, 2);
    // The door_closed event clears it at once.
    inactive(&d.ev(80 * S, "door_closed"), DOOR_HELD_OPEN);
}

#[test]
fn held_open_fire_door_from_setting_and_telemetry_wins() {
    let mut d = Door::with(r#"{"fire_door": true}"#);
    d.ok(0);
    d.tel(10 * S, true, false, json!({}));
    assert_eq!(active(&d.tel(70 * S, true, false, json!({})), DOOR_HELD_OPEN).severity, 2);

    let mut d = Door::with(r#"{"fire_door": true}"#);
    d.tel(0, false, true, json!({"fire_door": false}));
    d.tel(10 * S, true, false, json!({"fire_door": false}));
    inactive(&d.tel(70 * S, true, false, json!({"fire_door": false})), DOOR_HELD_OPEN);
}

#[test]
fn held_open_thresholds_from_settings() {
    let mut d = Door::with(r#"{"held_open_s": 120, "held_open_fire_s": 30}"#);
    d.ok(0);
    d.tel(10 * S, true, false, json!({}));
    inactive(&d.tel(129 * S, true, false, json!({})), DOOR_HELD_OPEN);
    active(&d.tel(130 * S, true, false, json!({})), DOOR_HELD_OPEN);
}

#[test]
fn held_open_flapping_restarts_the_count() {
    let mut d = Door::new();
    d.tel(0, true, false, json!({}));
    d.tel(200 * S, true, false, json!({}));
    d.tel(230 * S, false, true, json!({}));
    d.tel(260 * S, true, false, json!({}));
    inactive(&d.tel(500 * S, true, false, json!({})), DOOR_HELD_OPEN);
    active(&d.tel(560 * S, true, false, json!({})), DOOR_HELD_OPEN);
}

#[test]
fn held_open_judged_on_other_events_from_known_state() {
    let mut d = Door::new();
    d.tel(0, true, false, json!({}));
    let out = d.ev(301 * S, "access_denied");
    active(&out, DOOR_HELD_OPEN);
    // Unknown door position: not judged.
    let mut d = Door::new();
    assert_eq!(judged(&d.ev(0, "access_denied"), DOOR_HELD_OPEN), None);
}

// ------------------------------------------------------------------- forced_open

#[test]
fn forced_open_on_door_opened_event_without_grant() {
    let mut d = Door::new();
    d.ok(0);
    let out = d.ev(20 * S, "door_opened");
    assert_eq!(active(&out, FORCED_OPEN).severity, 2);
    // Momentary: inactive from the next message.
    inactive(&d.ev(25 * S, "door_closed"), FORCED_OPEN);
    inactive(&d.ok(30 * S), FORCED_OPEN);
}

#[test]
fn forced_open_grace_after_grant() {
    // Granted exactly 10 s before: legitimate.
    let mut d = Door::new();
    d.ok(0);
    d.ev(10 * S, "access_granted");
    inactive(&d.ev(20 * S, "door_opened"), FORCED_OPEN);
    // Granted 10.001 s before: forced.
    let mut d = Door::new();
    d.ok(0);
    d.ev(10 * S, "access_granted");
    active(&d.ev(20 * S + 1, "door_opened"), FORCED_OPEN);
    // Grace from settings.
    let mut d = Door::with(r#"{"forced_grace_s": 30}"#);
    d.ok(0);
    d.ev(10 * S, "access_granted");
    inactive(&d.ev(40 * S, "door_opened"), FORCED_OPEN);
}

#[test]
fn forced_open_from_telemetry_transition() {
    let mut d = Door::new();
    d.ok(0);
    let out = d.tel(30 * S, true, true, json!({}));
    active(&out, FORCED_OPEN);
    inactive(&d.tel(60 * S, true, true, json!({})), FORCED_OPEN);

    // A grant since the previous reading makes it legitimate.
    let mut d = Door::new();
    d.ok(0);
    d.ev(25 * S, "access_granted");
    inactive(&d.tel(30 * S, true, false, json!({})), FORCED_OPEN);

    // Previous reading unlocked: not forced.
    let mut d = Door::new();
    d.tel(0, false, false, json!({}));
    inactive(&d.tel(5 * S, true, false, json!({})), FORCED_OPEN);

    // First reading ever: nothing to compare with.
    let mut d = Door::new();
    inactive(&d.tel(0, true, true, json!({})), FORCED_OPEN);
}

#[test]
fn forced_open_event_is_momentary_and_not_double_counted() {
    let mut d = Door::new();
    d.ok(0);
    let out = d.ev(10 * S, "forced_open");
    assert!(active(&out, FORCED_OPEN).summary.contains("reported"));
    // The controller's door_opened right after: already open, not a second opening.
    inactive(&d.ev(11 * S, "door_opened"), FORCED_OPEN);
    inactive(&d.tel(30 * S, true, true, json!({})), FORCED_OPEN);
}

// -------------------------------------------------------------------- lock_fault

#[test]
fn lock_fault_when_closed_and_unlocked_for_10_s() {
    let mut d = Door::new();
    d.ok(0);
    d.ev(30 * S, "access_granted");
    d.ev(32 * S, "door_opened");
    d.ev(38 * S, "door_closed");
    inactive(&d.tel(38 * S + 9_999, false, false, json!({})), LOCK_FAULT);
    let out = d.tel(48 * S, false, false, json!({}));
    let c = active(&out, LOCK_FAULT);
    assert_eq!(c.severity, 2);
    assert!(c.summary.contains("10 s"), "{}", c.summary);
    // Still active on an unrelated event, from the known state.
    active(&d.ev(50 * S, "access_denied"), LOCK_FAULT);
    // Locked again: clears.
    inactive(&d.tel(78 * S, false, true, json!({})), LOCK_FAULT);
}

#[test]
fn lock_fault_measured_from_the_later_grant() {
    let mut d = Door::new();
    d.tel(0, false, true, json!({}));
    d.ev(50 * S, "access_granted");
    inactive(&d.tel(59_999, false, false, json!({})), LOCK_FAULT);
    let out = d.tel(60 * S, false, false, json!({}));
    assert!(active(&out, LOCK_FAULT).summary.contains("after the last access granted"));
    // A new grant restarts the measure.
    inactive(&d.ev(61 * S, "access_granted"), LOCK_FAULT);
}

#[test]
fn lock_fault_setting_and_open_door() {
    let mut d = Door::with(r#"{"lock_delay_s": 30}"#);
    d.tel(0, false, false, json!({}));
    inactive(&d.tel(29 * S, false, false, json!({})), LOCK_FAULT);
    active(&d.tel(30 * S, false, false, json!({})), LOCK_FAULT);
    // An open door is never a lock fault.
    inactive(&d.tel(60 * S, true, false, json!({})), LOCK_FAULT);
}

#[test]
fn lock_fault_ignores_a_lock_reading_older_than_the_closing() {
    let mut d = Door::new();
    d.tel(0, true, false, json!({}));
    d.ev(5 * S, "door_closed");
    // Last lock reading (unlocked) was taken while the door was open.
    inactive(&d.ev(40 * S, "access_denied"), LOCK_FAULT);
}

#[test]
fn lock_fault_event_is_momentary() {
    let mut d = Door::new();
    d.ok(0);
    let out = d.ev(10 * S, "lock_fault");
    assert!(active(&out, LOCK_FAULT).summary.contains("reported"));
    inactive(&d.ok(30 * S), LOCK_FAULT);
}

// ----------------------------------------------------------------- mains_failure

#[test]
fn mains_failure_follows_mains_ok() {
    let mut d = Door::new();
    inactive(&d.tel(0, false, true, json!({"mains_ok": true})), MAINS_FAILURE);
    let out = d.tel(30 * S, false, true, json!({"mains_ok": false, "battery_v": 12.6}));
    let c = active(&out, MAINS_FAILURE);
    assert_eq!(c.severity, 2);
    assert!(c.summary.contains("12.6 V"), "{}", c.summary);
    inactive(&d.tel(60 * S, false, true, json!({"mains_ok": 1})), MAINS_FAILURE);
    active(&d.tel(90 * S, false, true, json!({"mains_ok": 0})), MAINS_FAILURE);
    // Missing: not judged.
    assert_eq!(judged(&d.ok(120 * S), MAINS_FAILURE), None);
}

// ------------------------------------------------------------------- battery_low

#[test]
fn battery_low_levels() {
    let mut d = Door::new();
    inactive(&d.tel(0, false, true, json!({"battery_v": 11.5})), BATTERY_LOW);
    let c = d.tel(30 * S, false, true, json!({"battery_v": 11.49}));
    assert_eq!(active(&c, BATTERY_LOW).severity, 3);
    let c = d.tel(60 * S, false, true, json!({"battery_v": 10.5}));
    assert_eq!(active(&c, BATTERY_LOW).severity, 3);
    let c = d.tel(90 * S, false, true, json!({"battery_v": 10.49}));
    let c = active(&c, BATTERY_LOW);
    assert_eq!(c.severity, 2);
    assert!(c.summary.contains("10.49 V"), "{}", c.summary);
    inactive(&d.tel(120 * S, false, true, json!({"battery_v": 13.4})), BATTERY_LOW);
    assert_eq!(judged(&d.ok(150 * S), BATTERY_LOW), None);
}

#[test]
fn battery_low_thresholds_from_settings_and_mains_diagnosis() {
    let mut d = Door::with(r#"{"battery_low_v": 12.0, "battery_critical_v": 11.0}"#);
    inactive(&d.tel(0, false, true, json!({"battery_v": 12.0})), BATTERY_LOW);
    let out = d.tel(30 * S, false, true, json!({"battery_v": 11.9, "mains_ok": false}));
    let c = active(&out, BATTERY_LOW);
    assert_eq!(c.severity, 3);
    assert!(c.diagnosis.as_ref().unwrap().probable_cause.contains("mains failure"));
    assert_eq!(
        active(&d.tel(60 * S, false, true, json!({"battery_v": 10.99})), BATTERY_LOW).severity,
        2
    );
}

// ------------------------------------------------------------------------ tamper

#[test]
fn tamper_follows_the_switch() {
    let mut d = Door::new();
    inactive(&d.tel(0, false, true, json!({"tamper": false})), TAMPER);
    assert_eq!(active(&d.tel(30 * S, false, true, json!({"tamper": true})), TAMPER).severity, 2);
    inactive(&d.tel(60 * S, false, true, json!({"tamper": 0})), TAMPER);
    assert_eq!(judged(&d.ok(90 * S), TAMPER), None);
    assert_eq!(judged(&d.ev(95 * S, "access_granted"), TAMPER), None);
}

// ---------------------------------------------------------------- reader_suspect

#[test]
fn reader_suspect_at_10_denials_within_60_s() {
    let mut d = Door::new();
    d.ok(0);
    // 9 denials: quiet.
    for i in 0..9 {
        inactive(&d.ev(S + i * 6 * S, "access_denied"), READER_SUSPECT);
    }
    // 10th, 59.999 s after the first.
    let out = d.ev(S + 59_999, "access_denied");
    let c = active(&out, READER_SUSPECT);
    assert_eq!(c.severity, 4);
    assert!(c.summary.starts_with("10 access denials"), "{}", c.summary);
    // Momentary: inactive from the next message.
    inactive(&d.ok(61 * S), READER_SUSPECT);
    inactive(&d.ev(62 * S, "access_granted"), READER_SUSPECT);
}

#[test]
fn reader_suspect_quiet_when_spread_over_more_than_the_window() {
    let mut d = Door::new();
    for i in 0..9 {
        d.ev(i * 6 * S, "access_denied");
    }
    // The 10th comes 60.001 s after the first: only 9 in the window.
    inactive(&d.ev(60_001, "access_denied"), READER_SUSPECT);
    // Settings: 3 within 10 s.
    let mut d = Door::with(r#"{"reader_denied_count": 3, "reader_window_s": 10}"#);
    d.ev(0, "access_denied");
    d.ev(5 * S, "access_denied");
    active(&d.ev(10 * S, "access_denied"), READER_SUSPECT);
}

#[test]
fn reader_denials_are_bounded_in_state() {
    let mut d = Door::with(r#"{"reader_window_s": 1e9}"#);
    for i in 0..3000 {
        d.ev(i, "access_denied");
    }
    assert!(d.state.denied.len() <= 1024);
}

// ------------------------------------------------------------------------- meter

#[test]
fn door_cycles_meter_from_cycles_total() {
    let mut d = Door::new();
    let out = d.tel(0, false, true, json!({"cycles_total": 50_123}));
    assert_eq!(out.meters, vec![MeterReading { meter: DOOR_CYCLES.into(), value: 50_123.0 }]);
    let out = d.tel(30 * S, false, true, json!({"cycles_total": 50_124.0}));
    assert_eq!(out.meters[0].value, 50_124.0);
    assert!(d.ok(60 * S).meters.is_empty());
    assert!(d.ev(70 * S, "door_opened").meters.is_empty());
    for bad in [r#""12""#, "12.5", "-1", "[1]"] {
        let p = format!(r#"{{"door_open":false,"locked":true,"cycles_total":{bad}}}"#);
        let e = d.raw(MessageKind::Telemetry, 90 * S, &p).unwrap_err();
        assert!(matches!(&e, EvalError::BadPayload(m) if m.contains("cycles_total")), "{e}");
    }
}

// ---------------------------------------------------------------------- describe

#[test]
fn describe_lists_every_code() {
    let d = DoorController::describe();
    assert_eq!(d.equipment_type, "door-controller");
    assert_eq!(d.plugin_version, "0.1.0");
    assert_eq!(d.offline_timeout_s, 300);
    let codes: Vec<&str> = d.faults.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(codes, ALL_CODES.to_vec());
    for f in &d.faults {
        assert!(!f.interrupts_service);
        assert!((1..=4).contains(&f.default_severity));
        assert!(d.warranty.iter().any(|w| w.component == f.component && w.months == 24));
    }
    let sev = |c: &str| d.faults.iter().find(|f| f.code == c).unwrap().default_severity;
    assert_eq!(sev(DOOR_HELD_OPEN), 3);
    assert_eq!(sev(BATTERY_LOW), 3);
    assert_eq!(sev(READER_SUSPECT), 4);
    assert_eq!(sev(FORCED_OPEN), 2);
    assert_eq!(d.meters, vec![MeterSpec::new("door_cycles", "cycles")]);

    let plan = |id: &str| d.inspections.iter().find(|p| p.id == id).unwrap();
    assert_eq!(plan("semiannual").every, Some(Period::Months(6)));
    assert!(plan("semiannual").checklist.len() >= 8);
    assert_eq!(plan("fire-certification").every, Some(Period::Months(12)));
    assert_eq!(plan("fire-certification").only_if_setting.as_deref(), Some("fire_door"));
    let hw = plan("hardware-service");
    assert_eq!(
        hw.meter,
        Some(MeterTrigger { meter: "door_cycles".into(), rule: MeterRule::Every(50_000.0) })
    );
    for word in ["closer", "Hinges", "Lock"] {
        assert!(hw.checklist.iter().any(|c| c.contains(word)), "{word}");
    }
}

// ------------------------------------------------------------- invalid and odd input

#[test]
fn status_messages_change_nothing() {
    let mut d = Door::new();
    d.tel(0, true, false, json!({}));
    let before = d.state.clone();
    for p in ["offline", "\"offline\"", "online", "", "{garbage"] {
        assert_eq!(d.raw(MessageKind::Status, 10 * S, p), Ok(Outcome::default()));
    }
    assert_eq!(d.state, before);
}

#[test]
fn invalid_readings_are_rejected_and_leave_state_untouched() {
    let mut d = Door::new();
    d.tel(0, true, false, json!({"battery_v": 12.0}));
    let before = d.state.clone();
    let cases = [
        ("{", "not JSON"),
        ("[1,2]", "object"),
        ("\"offline\"", "object"),
        (r#"{"locked":true}"#, "door_open"),
        (r#"{"door_open":"yes","locked":true}"#, "door_open"),
        (r#"{"door_open":2,"locked":true}"#, "door_open"),
        (r#"{"door_open":false}"#, "locked"),
        (r#"{"door_open":false,"locked":null}"#, "locked"),
        (r#"{"door_open":false,"locked":true,"battery_v":"12"}"#, "battery_v"),
        (r#"{"door_open":false,"locked":true,"mains_ok":"no"}"#, "mains_ok"),
        (r#"{"door_open":false,"locked":true,"tamper":{}}"#, "tamper"),
        (r#"{"door_open":false,"locked":true,"fire_door":3}"#, "fire_door"),
    ];
    for (p, needle) in cases {
        match d.raw(MessageKind::Telemetry, 600 * S, p) {
            Err(EvalError::BadPayload(m)) => assert!(m.contains(needle), "{p}: {m}"),
            other => panic!("{p}: {other:?}"),
        }
    }
    for p in [r#"{"ts":1}"#, r#"{"event":"door_slammed"}"#, r#"{"event":7}"#, "{"] {
        assert!(matches!(d.raw(MessageKind::Event, 600 * S, p), Err(EvalError::BadPayload(_))));
    }
    assert_eq!(d.state, before);
    // The held-open count was not disturbed by the rejected readings.
    active(&d.tel(600 * S, true, false, json!({})), DOOR_HELD_OPEN);
}

#[test]
fn unknown_fields_are_ignored() {
    let mut d = Door::new();
    let out = d.tel(0, false, true, json!({"vendor_x": [1, 2], "battery_v": 13.2}));
    inactive(&out, BATTERY_LOW);
}

#[test]
fn bad_settings_are_reported() {
    for s in [
        r#"{"held_open_s": "long"}"#,
        r#"{"lock_delay_s": -1}"#,
        r#"{"fire_door": "yes"}"#,
        "[]",
        r#"{"reader_denied_count": 0}"#,
    ] {
        let mut d = Door::with(s);
        let e = d.raw(MessageKind::Telemetry, 0, r#"{"door_open":false,"locked":true}"#);
        assert!(matches!(e, Err(EvalError::BadSettings(_))), "{s}: {e:?}");
    }
}

#[test]
fn never_panics_on_odd_input() {
    let payloads = [
        r#"{"door_open":true,"locked":false,"battery_v":1e308,"cycles_total":9007199254740993}"#,
        r#"{"door_open":true,"locked":false,"battery_v":-1e308,"cycles_total":1e300}"#,
        r#"{"door_open":1,"locked":0,"battery_v":0,"mains_ok":0,"tamper":1,"cycles_total":0}"#,
        r#"{"door_open":false,"locked":false,"fire_door":true}"#,
        r#"{"event":"access_denied"}"#,
        r#"{"event":"door_opened"}"#,
        r#"{"event":"forced_open"}"#,
        r#"{"event":"lock_fault"}"#,
        r#"{"event":"access_granted"}"#,
        r#"{"event":"door_closed"}"#,
        "null",
        "",
        "\u{0}\u{ff}",
    ];
    let times = [i64::MIN, -1, 0, T0, T0 - 1_000_000, i64::MAX, T0 + 30_000, i64::MIN + 1];
    let device = Device::new("door-1", "DC-100");
    let mut state: Option<Vec<u8>> = None;
    for (i, ts) in times.iter().cycle().take(200).enumerate() {
        let p = payloads[i % payloads.len()];
        for kind in [MessageKind::Telemetry, MessageKind::Event, MessageKind::Status] {
            let msg =
                Message { kind, topic: "t".into(), payload: p.as_bytes().to_vec(), ts_ms: *ts };
            if let Ok(ev) = runner::evaluate::<DoorController>(&device, &msg, state.as_deref()) {
                state = Some(ev.state);
            }
        }
    }
    // Garbage state is an error, not a panic.
    let msg = Message {
        kind: MessageKind::Telemetry,
        topic: "t".into(),
        payload: br#"{"door_open":false,"locked":true}"#.to_vec(),
        ts_ms: T0,
    };
    assert!(matches!(
        runner::evaluate::<DoorController>(&device, &msg, Some(b"{\"door_open\": 5}")),
        Err(EvalError::BadState(_))
    ));
}

#[test]
fn state_round_trips_through_the_runner() {
    let device = Device::new("door-1", "DC-100");
    let msg = |ms: i64, open: bool| Message {
        kind: MessageKind::Telemetry,
        topic: "tend/test-site/door-1/telemetry".into(),
        payload: format!(r#"{{"door_open":{open},"locked":false}}"#).into_bytes(),
        ts_ms: T0 + ms,
    };
    let a = runner::evaluate::<DoorController>(&device, &msg(0, true), None).unwrap();
    let b =
        runner::evaluate::<DoorController>(&device, &msg(300 * S, true), Some(&a.state)).unwrap();
    active(&b.outcome, DOOR_HELD_OPEN);
    let batch = runner::evaluate_batch::<DoorController>(
        &device,
        &[msg(0, true), msg(300 * S, true)],
        None,
    );
    assert_eq!(batch.state, b.state);
    assert_eq!(batch.outcomes[1].as_ref().unwrap(), &b.outcome);
}

#[test]
fn durations_read_well() {
    use crate::rules::duration;
    assert_eq!(duration(59_999), "59 s");
    assert_eq!(duration(300_000), "5 min");
    assert_eq!(duration(390_000), "6.5 min");
    assert_eq!(duration(9_000_000), "2.5 h");
    assert_eq!(duration(-5), "0 s");
}
