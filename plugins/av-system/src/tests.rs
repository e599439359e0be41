//! Native unit tests of the AV rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use tend_plugin_sdk::prelude::*;
use tend_plugin_sdk::runner;

use crate::AvSystem;
use crate::describe::*;

const T0: i64 = 1_795_000_000_000;

/// A normal reading: every field present, nothing wrong.
fn normal() -> Value {
    json!({
        "ts": "2026-11-22T10:00:00+08:00",
        "amp_temp_c": 45.0,
        "amp_protect": false,
        "zones": [
            {"id": "lobby", "line_impedance_ohm": 250.0, "baseline_ohm": 250.0},
            {"id": "atrium", "line_impedance_ohm": 165.0, "baseline_ohm": 167.0},
            {"id": "food-court", "line_impedance_ohm": 505.0, "baseline_ohm": 500.0},
            {"id": 4, "line_impedance_ohm": 125.0, "baseline_ohm": 125.0}
        ],
        "projector_lamp_hours": 1200.0,
        "lamp_rated_hours": 3000.0,
        "projector_filter_hours": 120.0,
        "projector_temp_c": 55.0,
        "display_online": true,
        "player_heartbeat_age_s": 10,
        "signal_present": true,
        "fan_ok": true
    })
}

/// `normal()` with some fields replaced (a `null` value removes the field).
fn with(changes: Value) -> Value {
    let mut v = normal();
    for (k, x) in changes.as_object().unwrap() {
        if x.is_null() {
            v.as_object_mut().unwrap().remove(k);
        } else {
            v[k] = x.clone();
        }
    }
    v
}

/// `normal()` with zone `i`'s impedance set to `ohm`.
fn zone_ohm(i: usize, ohm: f64) -> Value {
    let mut v = normal();
    v["zones"][i]["line_impedance_ohm"] = json!(ohm);
    v
}

fn msg_kind(kind: MessageKind, ts: i64, payload: &[u8]) -> Message {
    Message {
        kind,
        topic: format!("tend/test-site/av-1/{kind:?}").to_lowercase(),
        payload: payload.to_vec(),
        ts_ms: ts,
    }
}

fn msg(ts: i64, v: &Value) -> Message {
    msg_kind(MessageKind::Telemetry, ts, v.to_string().as_bytes())
}

fn device() -> Device {
    Device::new("av-1", "AV-TEST")
}

fn device_with(settings: Value) -> Device {
    Device { settings: settings.to_string(), ..device() }
}

/// Evaluates one reading with a fresh state.
fn eval(v: &Value) -> Outcome {
    AvSystem::evaluate(&device(), &msg(T0, v), &mut State::default()).unwrap()
}

fn eval_err(v: &Value) -> EvalError {
    AvSystem::evaluate(&device(), &msg(T0, v), &mut State::default()).unwrap_err()
}

/// `Some(active)` when the code was judged, `None` when it was left out.
fn judged(out: &Outcome, code: &str) -> Option<bool> {
    out.condition(code).map(|c| c.active)
}

fn is_bad_payload(e: &EvalError, field: &str) -> bool {
    matches!(e, EvalError::BadPayload(m) if m.contains(field))
}

use crate::State;

/// Only `code` is active in `out`; every other judged code is inactive.
fn only_active(out: &Outcome, code: &str) {
    for c in &out.conditions {
        assert_eq!(c.active, c.code == code, "{} in {:?}", c.code, out.conditions);
    }
    let c = out.condition(code).expect("judged");
    assert_eq!(c.severity, default_severity(code));
    assert!(!c.summary.is_empty());
    assert!(!c.evidence.is_empty(), "{code} has no evidence");
    assert!(c.diagnosis.is_some(), "{code} has no diagnosis");
}

// ---------------------------------------------------------------- describe / meters

#[test]
fn describe_lists_every_code_meter_and_plan() {
    let d = AvSystem::describe();
    assert_eq!(d.equipment_type, "av-system");
    assert_eq!(d.plugin_version, "0.1.0");
    assert_eq!(d.offline_timeout_s, 300);
    let codes: Vec<&str> = d.faults.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(codes, ALL_CODES);
    for f in &d.faults {
        assert!(!f.title.is_empty());
        assert!(d.warranty.iter().any(|w| w.component == f.component && w.months > 0));
        let interrupts =
            matches!(f.code.as_str(), "amp_protect" | "display_offline" | "signal_loss");
        assert_eq!(f.interrupts_service, interrupts, "{}", f.code);
        assert!((2..=4).contains(&f.default_severity));
    }
    let sev = |c: &str| d.faults.iter().find(|f| f.code == c).unwrap().default_severity;
    assert_eq!(sev("speaker_line_drift"), 4);
    assert_eq!(sev("speaker_line_open"), 3);
    assert_eq!(sev("speaker_line_short"), 2);
    assert_eq!(sev("fan_failure"), 3);
    assert_eq!(sev("lamp_end_of_life"), 3);
    let meters: Vec<(&str, &str)> =
        d.meters.iter().map(|m| (m.name.as_str(), m.unit.as_str())).collect();
    assert_eq!(
        meters,
        [("projector_lamp_hours", "h"), ("projector_filter_hours", "h"), ("lamp_life_pct", "%")]
    );
    let plan = |id: &str| d.inspections.iter().find(|p| p.id == id).unwrap();
    assert_eq!(plan("quarterly").every, Some(Period::Months(3)));
    assert!(plan("quarterly").checklist.len() >= 5);
    let lamp = plan("lamp-replacement").meter.clone().unwrap();
    assert_eq!((lamp.meter.as_str(), lamp.rule), ("lamp_life_pct", MeterRule::Reaches(90.0)));
    let filter = plan("filter-clean").meter.clone().unwrap();
    assert_eq!(
        (filter.meter.as_str(), filter.rule),
        ("projector_filter_hours", MeterRule::Every(500.0))
    );
    for p in &d.inspections {
        assert!(!p.checklist.is_empty());
        if let Some(m) = &p.meter {
            assert!(d.meters.iter().any(|x| x.name == m.meter));
        }
    }
}

#[test]
fn meters_reported() {
    let out = eval(&normal());
    let m = |name: &str| out.meters.iter().find(|m| m.meter == name).map(|m| m.value);
    assert_eq!(m("projector_lamp_hours"), Some(1200.0));
    assert_eq!(m("projector_filter_hours"), Some(120.0));
    assert_eq!(m("lamp_life_pct"), Some(40.0));

    // No rated hours (missing or 0): hours but no percentage.
    for rated in [Value::Null, json!(0)] {
        let out = eval(&with(json!({ "lamp_rated_hours": rated })));
        assert!(out.meters.iter().any(|m| m.meter == "projector_lamp_hours"));
        assert!(!out.meters.iter().any(|m| m.meter == "lamp_life_pct"));
    }
    // No lamp hours: neither.
    let out = eval(&with(json!({ "projector_lamp_hours": null, "projector_filter_hours": null })));
    assert!(out.meters.is_empty());
}

#[test]
fn normal_reading_judges_everything_inactive() {
    let out = eval(&normal());
    for code in ALL_CODES {
        assert_eq!(judged(&out, code), Some(false), "{code}");
    }
    assert_eq!(out.conditions.len(), ALL_CODES.len());
}

// ---------------------------------------------------------------- amp_protect

#[test]
fn amp_protect_fires_and_clears() {
    let out = eval(&with(json!({ "amp_protect": true })));
    only_active(&out, AMP_PROTECT);
    let c = out.condition(AMP_PROTECT).unwrap();
    assert_eq!(c.severity, 2, "the host escalates to 1, never the plugin");
    assert!(c.evidence.iter().any(|e| e.field == "amp_protect" && e.value == 1.0));
    assert_eq!(judged(&eval(&normal()), AMP_PROTECT), Some(false));
    // 0/1 accepted as booleans.
    assert_eq!(judged(&eval(&with(json!({ "amp_protect": 1 }))), AMP_PROTECT), Some(true));
}

#[test]
fn amp_protect_missing_or_garbage() {
    assert_eq!(judged(&eval(&with(json!({ "amp_protect": null }))), AMP_PROTECT), None);
    assert!(is_bad_payload(&eval_err(&with(json!({ "amp_protect": "yes" }))), "amp_protect"));
    assert!(is_bad_payload(&eval_err(&with(json!({ "amp_protect": 2 }))), "amp_protect"));
}

#[test]
fn amp_protect_diagnosis_points_at_shorted_zone() {
    let mut v = zone_ohm(1, 10.0);
    v["amp_protect"] = json!(true);
    let out = eval(&v);
    let d = out.condition(AMP_PROTECT).unwrap().diagnosis.clone().unwrap();
    assert!(d.probable_cause.contains("atrium"), "{}", d.probable_cause);
    assert_eq!(judged(&out, SPEAKER_LINE_SHORT), Some(true));
}

// ---------------------------------------------------------------- amp_overtemp

#[test]
fn amp_overtemp_threshold() {
    only_active(&eval(&with(json!({ "amp_temp_c": 75.0 }))), AMP_OVERTEMP);
    only_active(&eval(&with(json!({ "amp_temp_c": 75.1 }))), AMP_OVERTEMP);
    assert_eq!(judged(&eval(&with(json!({ "amp_temp_c": 74.9 }))), AMP_OVERTEMP), Some(false));
    let c = eval(&with(json!({ "amp_temp_c": 76.5 }))).condition(AMP_OVERTEMP).unwrap().clone();
    assert!(c.summary.contains("76.5") && c.summary.contains("75"), "{}", c.summary);
    assert_eq!(c.evidence[0].field, "amp_temp_c");
}

#[test]
fn amp_overtemp_clears_and_setting_overrides() {
    let dev = device_with(json!({ "amp_overtemp_c": 70 }));
    let mut st = State::default();
    let hot = AvSystem::evaluate(&dev, &msg(T0, &with(json!({ "amp_temp_c": 71 }))), &mut st);
    assert_eq!(judged(&hot.unwrap(), AMP_OVERTEMP), Some(true));
    let cool =
        AvSystem::evaluate(&dev, &msg(T0 + 30_000, &with(json!({ "amp_temp_c": 69.9 }))), &mut st);
    assert_eq!(judged(&cool.unwrap(), AMP_OVERTEMP), Some(false));
}

#[test]
fn amp_overtemp_missing_or_garbage() {
    assert_eq!(judged(&eval(&with(json!({ "amp_temp_c": null }))), AMP_OVERTEMP), None);
    assert!(is_bad_payload(&eval_err(&with(json!({ "amp_temp_c": "hot" }))), "amp_temp_c"));
    assert!(is_bad_payload(&eval_err(&with(json!({ "amp_temp_c": [75] }))), "amp_temp_c"));
}

// ---------------------------------------------------------------- speaker lines

#[test]
fn speaker_line_open_threshold() {
    // lobby baseline 250: > 375 is open.
    let out = eval(&zone_ohm(0, 375.5));
    only_active(&out, SPEAKER_LINE_OPEN);
    let c = out.condition(SPEAKER_LINE_OPEN).unwrap();
    assert!(c.summary.contains("lobby"), "{}", c.summary);
    assert!(
        c.evidence.iter().any(|e| e.field == "zones[0].line_impedance_ohm" && e.value == 375.5)
    );
    // Exactly 150 %: not open (it is in the drift band instead).
    let out = eval(&zone_ohm(0, 375.0));
    assert_eq!(judged(&out, SPEAKER_LINE_OPEN), Some(false));
    assert_eq!(judged(&out, SPEAKER_LINE_DRIFT), Some(true));
    // A broken line reads huge.
    only_active(&eval(&zone_ohm(3, 1.0e6)), SPEAKER_LINE_OPEN);
}

#[test]
fn speaker_line_short_threshold() {
    // lobby baseline 250: < 125 is short.
    let out = eval(&zone_ohm(0, 124.9));
    only_active(&out, SPEAKER_LINE_SHORT);
    assert!(out.condition(SPEAKER_LINE_SHORT).unwrap().summary.contains("lobby"));
    let out = eval(&zone_ohm(0, 125.0));
    assert_eq!(judged(&out, SPEAKER_LINE_SHORT), Some(false));
    assert_eq!(judged(&out, SPEAKER_LINE_DRIFT), Some(true));
    only_active(&eval(&zone_ohm(0, 0.0)), SPEAKER_LINE_SHORT);
}

#[test]
fn speaker_line_drift_band() {
    // lobby baseline 250: the band is < 200 or > 300 (and neither open nor short).
    only_active(&eval(&zone_ohm(0, 300.5)), SPEAKER_LINE_DRIFT);
    only_active(&eval(&zone_ohm(0, 199.5)), SPEAKER_LINE_DRIFT);
    for inside in [300.0, 200.0, 270.0] {
        assert_eq!(
            judged(&eval(&zone_ohm(0, inside)), SPEAKER_LINE_DRIFT),
            Some(false),
            "{inside}"
        );
    }
    let c = eval(&zone_ohm(0, 320.0)).condition(SPEAKER_LINE_DRIFT).unwrap().clone();
    assert_eq!(c.severity, 4);
    assert!(c.summary.contains("128 %"), "{}", c.summary);
}

#[test]
fn zones_judged_per_zone_condition_per_code() {
    let mut v = normal();
    v["zones"][0]["line_impedance_ohm"] = json!(600.0); // open
    v["zones"][1]["line_impedance_ohm"] = json!(210.0); // drift (126 %)
    v["zones"][2]["line_impedance_ohm"] = json!(100.0); // short
    v["zones"][3]["line_impedance_ohm"] = json!(90.0); // drift (72 %)
    let out = eval(&v);
    assert_eq!(judged(&out, SPEAKER_LINE_OPEN), Some(true));
    assert_eq!(judged(&out, SPEAKER_LINE_SHORT), Some(true));
    let drift = out.condition(SPEAKER_LINE_DRIFT).unwrap();
    assert!(drift.active);
    assert!(
        drift.summary.contains("atrium") && drift.summary.contains("zone 4"),
        "{}",
        drift.summary
    );
    assert!(!drift.summary.contains("lobby") && !drift.summary.contains("food-court"));
    let fields: Vec<&str> = drift.evidence.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"zones[1].line_impedance_ohm"));
    assert!(fields.contains(&"zones[3].line_impedance_ohm"));
    assert!(!fields.iter().any(|f| f.starts_with("zones[0]") || f.starts_with("zones[2]")));
    // One condition per code, never one per zone.
    assert_eq!(out.conditions.iter().filter(|c| c.code == SPEAKER_LINE_DRIFT).count(), 1);
}

#[test]
fn speaker_lines_clear_when_repaired() {
    let mut st = State::default();
    let dev = device();
    for (bad, code) in
        [(400.0, SPEAKER_LINE_OPEN), (100.0, SPEAKER_LINE_SHORT), (310.0, SPEAKER_LINE_DRIFT)]
    {
        let out = AvSystem::evaluate(&dev, &msg(T0, &zone_ohm(0, bad)), &mut st).unwrap();
        assert_eq!(judged(&out, code), Some(true));
        let out = AvSystem::evaluate(&dev, &msg(T0 + 30_000, &normal()), &mut st).unwrap();
        assert_eq!(judged(&out, code), Some(false));
    }
}

#[test]
fn speaker_line_settings_override() {
    let dev =
        device_with(json!({ "line_open_pct": 200, "line_short_pct": 30, "line_drift_pct": 10 }));
    let run = |v: &Value| AvSystem::evaluate(&dev, &msg(T0, v), &mut State::default()).unwrap();
    let out = run(&zone_ohm(0, 400.0)); // 160 %: drift under these settings
    assert_eq!(judged(&out, SPEAKER_LINE_OPEN), Some(false));
    assert_eq!(judged(&out, SPEAKER_LINE_DRIFT), Some(true));
    assert_eq!(judged(&run(&zone_ohm(0, 501.0)), SPEAKER_LINE_OPEN), Some(true));
    assert_eq!(judged(&run(&zone_ohm(0, 100.0)), SPEAKER_LINE_SHORT), Some(false));
    assert_eq!(judged(&run(&zone_ohm(0, 74.0)), SPEAKER_LINE_SHORT), Some(true));
    assert_eq!(judged(&run(&zone_ohm(0, 280.0)), SPEAKER_LINE_DRIFT), Some(true)); // 112 %
}

#[test]
fn zones_missing_empty_or_garbage() {
    let out = eval(&with(json!({ "zones": null })));
    for code in [SPEAKER_LINE_OPEN, SPEAKER_LINE_SHORT, SPEAKER_LINE_DRIFT] {
        assert_eq!(judged(&out, code), None);
    }
    let out = eval(&with(json!({ "zones": [] })));
    for code in [SPEAKER_LINE_OPEN, SPEAKER_LINE_SHORT, SPEAKER_LINE_DRIFT] {
        assert_eq!(judged(&out, code), Some(false));
    }
    let cases = [
        (json!("lobby"), "zones"),
        (json!({"id": "x"}), "zones"),
        (json!([1]), "zones[0]"),
        (json!([{"id": "a", "line_impedance_ohm": 8, "baseline_ohm": 0}]), "zones[0].baseline_ohm"),
        (
            json!([{"id": "a", "line_impedance_ohm": 8, "baseline_ohm": -8}]),
            "zones[0].baseline_ohm",
        ),
        (json!([{"id": "a", "line_impedance_ohm": 8}]), "zones[0].baseline_ohm"),
        (
            json!([{"id": "a", "line_impedance_ohm": "8", "baseline_ohm": 8}]),
            "zones[0].line_impedance_ohm",
        ),
        (
            json!([{"id": "a", "line_impedance_ohm": -1, "baseline_ohm": 8}]),
            "zones[0].line_impedance_ohm",
        ),
        (json!([{"id": "a", "baseline_ohm": 8}]), "zones[0].line_impedance_ohm"),
        (json!([{"line_impedance_ohm": 8, "baseline_ohm": 8}]), "zones[0].id"),
        (
            json!([
                {"id": "a", "line_impedance_ohm": 8, "baseline_ohm": 8},
                {"id": [], "line_impedance_ohm": 8, "baseline_ohm": 8}
            ]),
            "zones[1].id",
        ),
    ];
    for (zones, field) in cases {
        let e = eval_err(&with(json!({ "zones": zones })));
        assert!(is_bad_payload(&e, field), "{zones}: {e:?}");
    }
}

#[test]
fn many_bad_zones_keep_summary_bounded() {
    let zones: Vec<Value> = (0..500)
        .map(|i| json!({"id": format!("z{i}"), "line_impedance_ohm": 1000.0, "baseline_ohm": 8.0}))
        .collect();
    let out = eval(&with(json!({ "zones": zones })));
    let c = out.condition(SPEAKER_LINE_OPEN).unwrap();
    assert!(c.active);
    assert!(c.summary.len() < 1000, "{}", c.summary.len());
    assert!(c.summary.contains("and 492 more"));
    assert!(c.evidence.len() <= 32);
}

// ---------------------------------------------------------------- lamp

#[test]
fn lamp_end_of_life_threshold() {
    only_active(&eval(&with(json!({ "projector_lamp_hours": 3000.0 }))), LAMP_END_OF_LIFE);
    only_active(&eval(&with(json!({ "projector_lamp_hours": 3100.5 }))), LAMP_END_OF_LIFE);
    let out = eval(&with(json!({ "projector_lamp_hours": 2999.9 })));
    assert_eq!(judged(&out, LAMP_END_OF_LIFE), Some(false));
    let c = eval(&with(json!({ "projector_lamp_hours": 3000 })))
        .condition(LAMP_END_OF_LIFE)
        .unwrap()
        .clone();
    assert!(c.summary.contains("3000 h of 3000 h"), "{}", c.summary);
    let parts = c.diagnosis.unwrap().suggested_parts;
    assert!(parts.iter().any(|p| p.contains("lamp")));
}

#[test]
fn lamp_end_of_life_clears_after_replacement() {
    let mut st = State::default();
    let old = with(json!({ "projector_lamp_hours": 3001 }));
    let new = with(json!({ "projector_lamp_hours": 0.5 }));
    let out = AvSystem::evaluate(&device(), &msg(T0, &old), &mut st).unwrap();
    assert_eq!(judged(&out, LAMP_END_OF_LIFE), Some(true));
    let out = AvSystem::evaluate(&device(), &msg(T0 + 30_000, &new), &mut st).unwrap();
    assert_eq!(judged(&out, LAMP_END_OF_LIFE), Some(false));
}

#[test]
fn lamp_missing_or_garbage() {
    for v in [
        with(json!({ "projector_lamp_hours": null })),
        with(json!({ "lamp_rated_hours": null })),
        with(json!({ "lamp_rated_hours": 0, "projector_lamp_hours": 5000 })),
    ] {
        assert_eq!(judged(&eval(&v), LAMP_END_OF_LIFE), None);
    }
    for (v, field) in [
        (with(json!({ "projector_lamp_hours": "3000" })), "projector_lamp_hours"),
        (with(json!({ "projector_lamp_hours": -1 })), "projector_lamp_hours"),
        (with(json!({ "lamp_rated_hours": true })), "lamp_rated_hours"),
        (with(json!({ "projector_filter_hours": {} })), "projector_filter_hours"),
    ] {
        assert!(is_bad_payload(&eval_err(&v), field), "{field}");
    }
}

// ---------------------------------------------------------------- projector_overtemp

#[test]
fn projector_overtemp_threshold_and_clear() {
    only_active(&eval(&with(json!({ "projector_temp_c": 80 }))), PROJECTOR_OVERTEMP);
    assert_eq!(
        judged(&eval(&with(json!({ "projector_temp_c": 79.9 }))), PROJECTOR_OVERTEMP),
        Some(false)
    );
    let dev = device_with(json!({ "projector_overtemp_c": 85 }));
    let out = AvSystem::evaluate(
        &dev,
        &msg(T0, &with(json!({ "projector_temp_c": 84 }))),
        &mut State::default(),
    );
    assert_eq!(judged(&out.unwrap(), PROJECTOR_OVERTEMP), Some(false));
    let mut st = State::default();
    let out =
        AvSystem::evaluate(&device(), &msg(T0, &with(json!({ "projector_temp_c": 90 }))), &mut st);
    assert_eq!(judged(&out.unwrap(), PROJECTOR_OVERTEMP), Some(true));
    let out = AvSystem::evaluate(&device(), &msg(T0 + 30_000, &normal()), &mut st);
    assert_eq!(judged(&out.unwrap(), PROJECTOR_OVERTEMP), Some(false));
}

#[test]
fn projector_overtemp_missing_or_garbage() {
    assert_eq!(judged(&eval(&with(json!({ "projector_temp_c": null }))), PROJECTOR_OVERTEMP), None);
    assert!(is_bad_payload(
        &eval_err(&with(json!({ "projector_temp_c": "80" }))),
        "projector_temp_c"
    ));
}

// ---------------------------------------------------------------- held conditions

/// Runs `payloads` 30 s apart through one state; returns each outcome.
fn series(dev: &Device, payloads: &[Value]) -> Vec<Outcome> {
    let mut st = State::default();
    payloads
        .iter()
        .enumerate()
        .map(|(i, v)| AvSystem::evaluate(dev, &msg(T0 + i as i64 * 30_000, v), &mut st).unwrap())
        .collect()
}

fn repeat(v: Value, n: usize) -> Vec<Value> {
    vec![v; n]
}

#[test]
fn display_offline_after_five_minutes() {
    let off = with(json!({ "display_online": false }));
    // Readings at 0, 30, ..., 300 s: only the one at 300 s has held 5 min.
    let outs = series(&device(), &repeat(off.clone(), 11));
    for o in &outs[..10] {
        assert_eq!(judged(o, DISPLAY_OFFLINE), Some(false));
    }
    only_active(&outs[10], DISPLAY_OFFLINE);
    let c = outs[10].condition(DISPLAY_OFFLINE).unwrap();
    assert!(c.summary.contains("5 min"), "{}", c.summary);
    assert_eq!(c.evidence.first().map(|e| (e.ts_ms, e.value)), Some((T0, 0.0)));
    assert_eq!(c.severity, 2);
}

#[test]
fn display_offline_clears_and_flapping_restarts() {
    let off = with(json!({ "display_online": false }));
    let mut v = repeat(off.clone(), 11);
    v.push(normal());
    let outs = series(&device(), &v);
    assert_eq!(judged(&outs[10], DISPLAY_OFFLINE), Some(true));
    assert_eq!(judged(&outs[11], DISPLAY_OFFLINE), Some(false));

    // Offline 4.5 min, one online reading, offline 4.5 min: never active.
    let mut v = repeat(off.clone(), 10);
    v.push(normal());
    v.extend(repeat(off, 10));
    assert!(series(&device(), &v).iter().all(|o| judged(o, DISPLAY_OFFLINE) == Some(false)));
}

#[test]
fn display_offline_missing_garbage_and_setting() {
    let off = with(json!({ "display_online": false }));
    let gap = with(json!({ "display_online": null }));
    // A reading without the field is not judged and does not restart the count.
    let mut v = repeat(off.clone(), 5);
    v.push(gap);
    v.extend(repeat(off.clone(), 5));
    let outs = series(&device(), &v);
    assert_eq!(judged(&outs[5], DISPLAY_OFFLINE), None);
    assert_eq!(judged(&outs[10], DISPLAY_OFFLINE), Some(true));
    assert!(is_bad_payload(&eval_err(&with(json!({ "display_online": "no" }))), "display_online"));
    let outs = series(&device_with(json!({ "display_offline_s": 60 })), &repeat(off, 3));
    assert_eq!(judged(&outs[1], DISPLAY_OFFLINE), Some(false));
    assert_eq!(judged(&outs[2], DISPLAY_OFFLINE), Some(true));
}

#[test]
fn signal_loss_after_two_minutes() {
    let lost = with(json!({ "signal_present": false }));
    let mut v = repeat(lost.clone(), 5);
    v.push(normal());
    let outs = series(&device(), &v);
    for o in &outs[..4] {
        assert_eq!(judged(o, SIGNAL_LOSS), Some(false));
    }
    only_active(&outs[4], SIGNAL_LOSS);
    assert_eq!(judged(&outs[5], SIGNAL_LOSS), Some(false));
    let c = outs[4].condition(SIGNAL_LOSS).unwrap();
    assert!(c.summary.contains("2 min"), "{}", c.summary);
    assert_eq!(c.diagnosis.as_ref().unwrap().category, Category::Hardware);
}

#[test]
fn signal_loss_missing_garbage_flapping_and_setting() {
    let lost = with(json!({ "signal_present": false }));
    assert_eq!(judged(&eval(&with(json!({ "signal_present": null }))), SIGNAL_LOSS), None);
    assert!(is_bad_payload(&eval_err(&with(json!({ "signal_present": 0.5 }))), "signal_present"));
    let mut v = repeat(lost.clone(), 4);
    v.push(normal());
    v.extend(repeat(lost.clone(), 4));
    assert!(series(&device(), &v).iter().all(|o| judged(o, SIGNAL_LOSS) == Some(false)));
    let outs = series(&device_with(json!({ "signal_loss_s": 30 })), &repeat(lost, 2));
    assert_eq!(judged(&outs[1], SIGNAL_LOSS), Some(true));
}

#[test]
fn signal_loss_with_stalled_player_is_software() {
    let v = with(json!({ "signal_present": false, "player_heartbeat_age_s": 600 }));
    let outs = series(&device(), &repeat(v, 5));
    let d = outs[4].condition(SIGNAL_LOSS).unwrap().diagnosis.clone().unwrap();
    assert_eq!(d.category, Category::Software);
}

// ---------------------------------------------------------------- player_stalled

#[test]
fn player_stalled_threshold_and_clear() {
    let out = eval(&with(json!({ "player_heartbeat_age_s": 300 })));
    only_active(&out, PLAYER_STALLED);
    let d = out.condition(PLAYER_STALLED).unwrap().diagnosis.clone().unwrap();
    assert_eq!(d.category, Category::Software);
    assert!(d.suggested_parts.is_empty());
    assert_eq!(
        judged(&eval(&with(json!({ "player_heartbeat_age_s": 299.9 }))), PLAYER_STALLED),
        Some(false)
    );
    let outs = series(&device(), &[with(json!({ "player_heartbeat_age_s": 900 })), normal()]);
    assert_eq!(judged(&outs[0], PLAYER_STALLED), Some(true));
    assert_eq!(judged(&outs[1], PLAYER_STALLED), Some(false));
    let dev = device_with(json!({ "player_stalled_s": 120 }));
    let outs = series(&dev, &[with(json!({ "player_heartbeat_age_s": 120 }))]);
    assert_eq!(judged(&outs[0], PLAYER_STALLED), Some(true));
}

#[test]
fn player_stalled_missing_or_garbage() {
    assert_eq!(
        judged(&eval(&with(json!({ "player_heartbeat_age_s": null }))), PLAYER_STALLED),
        None
    );
    for bad in [json!("300"), json!(-5), json!(false)] {
        let e = eval_err(&with(json!({ "player_heartbeat_age_s": bad })));
        assert!(is_bad_payload(&e, "player_heartbeat_age_s"), "{e:?}");
    }
}

// ---------------------------------------------------------------- fan_failure

#[test]
fn fan_failure_fires_and_clears() {
    let out = eval(&with(json!({ "fan_ok": false })));
    only_active(&out, FAN_FAILURE);
    let c = out.condition(FAN_FAILURE).unwrap();
    assert_eq!(c.severity, 3);
    assert!(c.evidence.iter().any(|e| e.field == "fan_ok" && e.value == 0.0));
    let outs = series(&device(), &[with(json!({ "fan_ok": 0 })), with(json!({ "fan_ok": 1 }))]);
    assert_eq!(judged(&outs[0], FAN_FAILURE), Some(true));
    assert_eq!(judged(&outs[1], FAN_FAILURE), Some(false));
}

#[test]
fn fan_failure_missing_or_garbage() {
    assert_eq!(judged(&eval(&with(json!({ "fan_ok": null }))), FAN_FAILURE), None);
    assert!(is_bad_payload(&eval_err(&with(json!({ "fan_ok": "ok" }))), "fan_ok"));
}

// ---------------------------------------------------------------- messages and robustness

#[test]
fn events_and_status_give_empty_outcomes() {
    let mut st = State::default();
    for (kind, payload) in [
        (MessageKind::Status, &b"offline"[..]),
        (MessageKind::Status, &b"\"online\""[..]),
        (MessageKind::Event, &br#"{"ts": 1, "event": "x"}"#[..]),
        (MessageKind::Event, &b"garbage"[..]),
    ] {
        let out = AvSystem::evaluate(&device(), &msg_kind(kind, T0, payload), &mut st).unwrap();
        assert_eq!(out, Outcome::default());
    }
    assert_eq!(st, State::default());
}

#[test]
fn bad_json_is_bad_payload() {
    for payload in [&b"{"[..], b"[1,2]", b"\"offline\"", b"", b"null", b"42"] {
        let m = msg_kind(MessageKind::Telemetry, T0, payload);
        let r = AvSystem::evaluate(&device(), &m, &mut State::default());
        assert!(matches!(r, Err(EvalError::BadPayload(_))), "{payload:?}: {r:?}");
    }
}

#[test]
fn bad_settings_are_reported() {
    let dev = device_with(json!({ "amp_overtemp_c": "hot" }));
    let r = AvSystem::evaluate(&dev, &msg(T0, &normal()), &mut State::default());
    assert!(matches!(r, Err(EvalError::BadSettings(m)) if m.contains("amp_overtemp_c")));
    let dev = Device { settings: "[".into(), ..device() };
    let r = AvSystem::evaluate(&dev, &msg(T0, &normal()), &mut State::default());
    assert!(matches!(r, Err(EvalError::BadSettings(_))));
}

#[test]
fn invalid_reading_leaves_state_untouched() {
    let mut st = State::default();
    let off = with(json!({ "display_online": false, "signal_present": false }));
    AvSystem::evaluate(&device(), &msg(T0, &off), &mut st).unwrap();
    let before = st.clone();
    // display_online would reset the runs, but a later field is invalid.
    let mut bad = normal();
    bad["fan_ok"] = json!("broken");
    let r = AvSystem::evaluate(&device(), &msg(T0 + 30_000, &bad), &mut st);
    assert!(is_bad_payload(&r.unwrap_err(), "fan_ok"));
    assert_eq!(st, before);
    let mut bad = normal();
    bad["zones"][2]["baseline_ohm"] = json!(0);
    assert!(AvSystem::evaluate(&device(), &msg(T0 + 60_000, &bad), &mut st).is_err());
    assert_eq!(st, before);
}

#[test]
fn unknown_fields_and_empty_object_are_fine() {
    let out = eval(&with(json!({ "vendor_extra": {"a": [1, 2]}, "firmware": "1.2" })));
    assert_eq!(out.conditions.len(), ALL_CODES.len());
    let out = eval(&json!({}));
    assert_eq!(out, Outcome::default());
}

#[test]
fn never_panics_on_odd_input() {
    let odd = [
        json!({
            "amp_temp_c": 1e308,
            "projector_temp_c": -1e308,
            "projector_lamp_hours": 1e308,
            "lamp_rated_hours": 1e-308
        }),
        json!({"zones": [{"id": "x", "line_impedance_ohm": 1e308, "baseline_ohm": 1e-308}]}),
        json!({"zones": [{"id": 1.5e300, "line_impedance_ohm": 0, "baseline_ohm": 1e308}]}),
        json!({"player_heartbeat_age_s": 1e308, "display_online": false, "signal_present": false}),
        json!({"zones": [[], {}, null]}),
        json!({"amp_protect": null, "zones": null}),
    ];
    let mut st = State::default();
    for (i, v) in odd.iter().enumerate() {
        let _ = AvSystem::evaluate(&device(), &msg(T0 + i as i64, v), &mut st);
        let _ = AvSystem::evaluate(&device(), &msg(i64::MIN, v), &mut st);
        let _ = AvSystem::evaluate(&device(), &msg(i64::MAX, v), &mut st);
    }
    let dev = device_with(json!({ "display_offline_s": 1e308, "signal_loss_s": -1e308 }));
    let lost = with(json!({ "display_online": false, "signal_present": false }));
    let outs = series(&dev, &repeat(lost, 2));
    assert_eq!(judged(&outs[1], DISPLAY_OFFLINE), Some(false));
    assert_eq!(judged(&outs[1], SIGNAL_LOSS), Some(true));
}

#[test]
fn state_survives_the_runner_round_trip() {
    let off = with(json!({ "display_online": false }));
    let mut state: Option<Vec<u8>> = None;
    let mut last = None;
    for i in 0..11 {
        let e =
            runner::evaluate::<AvSystem>(&device(), &msg(T0 + i * 30_000, &off), state.as_deref())
                .unwrap();
        state = Some(e.state);
        last = Some(e.outcome);
    }
    assert_eq!(judged(&last.unwrap(), DISPLAY_OFFLINE), Some(true));
    // A state from an older version with no fields still loads.
    assert!(runner::evaluate::<AvSystem>(&device(), &msg(T0, &off), Some(b"{}")).is_ok());
    let batch =
        runner::evaluate_batch::<AvSystem>(&device(), &[msg(T0, &off), msg(T0, &json!("x"))], None);
    assert!(batch.outcomes[0].is_ok() && batch.outcomes[1].is_err());
}
