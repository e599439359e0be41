//! Unit tests: every rule at and around its threshold, clearing, garbage input, the
//! meter and the description.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tend_plugin_sdk::prelude::*;

use crate::SolarWaterHeater;
use crate::describe::*;
use crate::rules::TEMPERATURE_FIELDS;
use crate::testutil::{Rd, Sim, judged};

/// Sends one reading and returns whether `code` was judged active.
fn one(s: &mut Sim, r: &Rd, code: &str) -> Option<bool> {
    judged(&s.step(r), code)
}

/// Checks an active condition's shape.
fn assert_active(out: &Outcome, code: &str) -> Condition {
    let c = out.condition(code).unwrap_or_else(|| panic!("{code} not judged")).clone();
    assert!(c.active, "{code} should be active");
    assert_eq!(c.severity, default_severity(code));
    assert!(!c.summary.is_empty() && !c.summary.contains('\n'));
    assert!(c.diagnosis.is_some());
    c
}

// ---------------------------------------------------------------- description

#[test]
fn describe_lists_every_code_with_its_component() {
    let d = SolarWaterHeater::describe();
    assert_eq!(d.equipment_type, "solar-water-heater");
    assert_eq!(d.plugin_version, "0.1.0");
    assert_eq!(d.offline_timeout_s, 300);
    let codes: Vec<&str> = d.faults.iter().map(|f| f.code.as_str()).collect();
    assert_eq!(codes, ALL_CODES);
    let severities: Vec<u8> = d.faults.iter().map(|f| f.default_severity).collect();
    assert_eq!(severities, [2, 2, 2, 2, 2, 2, 3, 3, 3, 3]);
    for f in &d.faults {
        assert!(!f.interrupts_service, "{}", f.code);
        assert!(!f.title.is_empty());
        assert!(d.warranty.iter().any(|w| w.component == f.component), "{}", f.code);
    }
    let months = |c: &str| d.warranty.iter().find(|w| w.component == c).map(|w| w.months);
    assert_eq!(months(MAIN_UNIT), Some(36));
    assert_eq!(months(PIPES_FITTINGS), Some(12));
    assert_eq!(months(ELECTRICAL), Some(12));
    let component =
        |code: &str| d.faults.iter().find(|f| f.code == code).unwrap().component.clone();
    for code in [TANK_LEAK, VACUUM_TUBE_FAILURE, INSULATION_DEGRADED] {
        assert_eq!(component(code), MAIN_UNIT);
    }
    assert_eq!(component(PUMP_FAILURE), ELECTRICAL);
    assert_eq!(d.meters, vec![MeterSpec::new(PUMP_RUN_HOURS, "h")]);
}

#[test]
fn describe_has_both_inspection_plans() {
    let d = SolarWaterHeater::describe();
    let semi = d.inspections.iter().find(|p| p.id == "semiannual").unwrap();
    assert_eq!(semi.every, Some(Period::Months(6)));
    assert!(semi.meter.is_none());
    let text = semi.checklist.join("\n").to_lowercase();
    for item in ["vacuum tube", "tank", "bracket", "insulation", "pump", "heater", "controller"] {
        assert!(text.contains(item), "semiannual checklist lacks {item}");
    }
    for item in ["sensor", "valve"] {
        assert!(text.contains(item), "semiannual checklist lacks {item}");
    }
    let pump = d.inspections.iter().find(|p| p.id == "pump-service").unwrap();
    assert_eq!(
        pump.meter,
        Some(MeterTrigger { meter: PUMP_RUN_HOURS.into(), rule: MeterRule::Every(2000.0) })
    );
    assert!(pump.checklist.len() >= 4);
    assert!(d.inspections.iter().all(|p| p.only_if_setting.is_none()));
}

// ---------------------------------------------------------------- general

#[test]
fn a_full_day_reading_judges_every_code() {
    let mut s = Sim::new();
    s.step(&Rd::day());
    let out = s.step(&Rd::day());
    for code in ALL_CODES {
        assert_eq!(judged(&out, code), Some(false), "{code}");
    }
    assert_eq!(out.conditions.len(), ALL_CODES.len());
    assert_eq!(out.meters.len(), 1);
}

#[test]
fn events_and_status_give_empty_outcomes() {
    let mut s = Sim::new();
    let t = s.ts;
    assert_eq!(s.send(MessageKind::Status, t, b"offline"), Ok(Outcome::default()));
    assert_eq!(s.send(MessageKind::Status, t, b"\"online\""), Ok(Outcome::default()));
    assert_eq!(s.send(MessageKind::Event, t, b"{not json"), Ok(Outcome::default()));
}

#[test]
fn bad_payloads_are_errors_and_leave_state_alone() {
    let mut s = Sim::new();
    s.steps(&Rd::day().f("circulation_flow_l_min", 0.0), 3);
    let before = s.state.clone();
    let t = s.ts;
    for bad in [&b"{"[..], b"[1,2]", b"\"offline\"", b"42", b"", b"{\"tank_temp_c\": 1e400}"] {
        let r = s.send(MessageKind::Telemetry, t, bad);
        assert!(matches!(r, Err(EvalError::BadPayload(_))), "{r:?}");
        assert_eq!(s.state, before);
    }
}

#[test]
fn bad_settings_are_errors() {
    for settings in [
        "[]",
        "{",
        r#"{"overheat_c": "hot"}"#,
        r#"{"vacuum_min": 0}"#,
        r#"{"heater_min": -5}"#,
        r#"{"insulation_h": 1e9}"#,
        r#"{"sensor_min_c": 10, "sensor_max_c": 0}"#,
    ] {
        let mut s = Sim::with_settings(settings);
        let t = s.ts;
        let r = s.send(MessageKind::Telemetry, t, Rd::day().json("1").as_bytes());
        assert!(matches!(r, Err(EvalError::BadSettings(_))), "{settings}: {r:?}");
    }
    let mut s = Sim::with_settings("");
    assert_eq!(one(&mut s, &Rd::day(), OVERHEAT), Some(false));
}

#[test]
fn unreadable_state_is_bad_state() {
    let mut s = Sim::new();
    s.state = Some(b"not json".to_vec());
    let t = s.ts;
    let r = s.send(MessageKind::Telemetry, t, Rd::day().json("1").as_bytes());
    assert!(matches!(r, Err(EvalError::BadState(_))));
}

#[test]
fn out_of_order_readings_only_judge_momentary_rules() {
    let mut s = Sim::new();
    let dry = Rd::day().f("circulation_flow_l_min", 0.0);
    s.steps(&dry, 3); // m0..m2
    // A late reading (flow ok, tank hot) from before m2: would restart the pump run.
    let late = s.at(s.ts - 5 * MINUTE_MS, &Rd::day().f("tank_temp_c", 97.0));
    assert_eq!(judged(&late, PUMP_FAILURE), None);
    assert_eq!(judged(&late, OVERHEAT), Some(true));
    assert_eq!(judged(&late, SENSOR_FAULT), Some(false));
    let outs = s.steps(&dry, 3); // m3..m5
    assert_eq!(judged(&outs[1], PUMP_FAILURE), Some(false));
    assert_active(&outs[2], PUMP_FAILURE);
}

/// A deterministic pseudo-random generator for the garbage test.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 =
            self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn never_panics_on_garbage() {
    const FIELDS: [&str; 12] = [
        "collector_temp_c",
        "tank_temp_c",
        "tank_level_pct",
        "inlet_temp_c",
        "ambient_temp_c",
        "irradiance_w_m2",
        "pump_on",
        "circulation_flow_l_min",
        "draw_flow_l_min",
        "inlet_valve_open",
        "heater_on",
        "error_code",
    ];
    const VALUES: [&str; 22] = [
        "0",
        "1",
        "-1",
        "0.5",
        "3",
        "95",
        "150.0001",
        "-40.0001",
        "1e308",
        "-1e308",
        "true",
        "false",
        "null",
        "\"x\"",
        "\"NaN\"",
        "[]",
        "{}",
        "{\"a\":[1,{}]}",
        "9007199254740993",
        "-9223372036854775808",
        "18446744073709551615",
        "500",
    ];
    let t0 = Sim::new().ts;
    let times = [i64::MIN, i64::MAX, 0, -1, 1 << 50, (1 << 50) + 1, -(1 << 51), t0, t0 - 1];
    let codes: Vec<&str> = ALL_CODES.to_vec();
    for settings in
        ["{}", r#"{"insulation_h": 0.0003, "vacuum_min": 0.001, "tank_leak_window_min": 43200}"#]
    {
        let mut s = Sim::with_settings(settings);
        let mut rng = Lcg(7);
        let mut clock = t0;
        for _ in 0..3000 {
            let mut r = Rd::day();
            for _ in 0..rng.next(6) {
                let f = FIELDS[rng.next(FIELDS.len())];
                r = if rng.next(4) == 0 {
                    r.without(f)
                } else {
                    r.raw(f, VALUES[rng.next(VALUES.len())])
                };
            }
            clock += [0, 1, 59_999, 60_000, 60_000, 60_000, 3_600_000, -120_000][rng.next(8)];
            let ts = if rng.next(20) == 0 { times[rng.next(times.len())] } else { clock };
            let out = s.at(ts, &r);
            for c in &out.conditions {
                assert!(codes.contains(&c.code.as_str()));
                if c.active {
                    assert!((1..=4).contains(&c.severity));
                    assert!(c.summary.len() < 400, "{}", c.summary);
                    assert!(c.evidence.iter().all(|e| e.value.is_finite()));
                }
            }
            let m = out.meters[0].value;
            assert!(m.is_finite() && m >= 0.0);
        }
    }
}

// ---------------------------------------------------------------- overheat

#[test]
fn overheat_fires_at_the_limit_and_clears() {
    let mut s = Sim::new();
    assert_eq!(one(&mut s, &Rd::day().f("tank_temp_c", 94.9), OVERHEAT), Some(false));
    let out = s.step(&Rd::day().f("tank_temp_c", 95.0));
    let c = assert_active(&out, OVERHEAT);
    assert!(c.summary.contains("95.0"), "{}", c.summary);
    assert_eq!(c.evidence[0].field, "tank_temp_c");
    assert_eq!(c.evidence[0].value, 95.0);
    assert_eq!(c.diagnosis.unwrap().category, Category::Hardware);
    assert_eq!(one(&mut s, &Rd::day().f("tank_temp_c", 90.0), OVERHEAT), Some(false));
}

#[test]
fn overheat_limit_comes_from_settings() {
    let mut s = Sim::with_settings(r#"{"overheat_c": 85}"#);
    assert_eq!(one(&mut s, &Rd::day().f("tank_temp_c", 84.9), OVERHEAT), Some(false));
    assert_eq!(one(&mut s, &Rd::day().f("tank_temp_c", 85.0), OVERHEAT), Some(true));
}

#[test]
fn overheat_skips_garbage_tank_temperature() {
    let mut s = Sim::new();
    s.step(&Rd::day().f("tank_temp_c", 96.0));
    for bad in ["\"hot\"", "null", "true", "[96]", "{}", "150.5", "1e308"] {
        let out = s.step(&Rd::day().raw("tank_temp_c", bad));
        assert_eq!(judged(&out, OVERHEAT), None, "{bad}");
        assert_eq!(judged(&out, SENSOR_FAULT), Some(true), "{bad}");
    }
    let out = s.step(&Rd::day().without("tank_temp_c"));
    assert_eq!(judged(&out, OVERHEAT), None);
    assert_eq!(one(&mut s, &Rd::day(), OVERHEAT), Some(false));
}

// ---------------------------------------------------------------- freeze_risk

fn cold(collector: f64) -> Rd {
    Rd::night().f("collector_temp_c", collector).f("ambient_temp_c", -8.0)
}

#[test]
fn freeze_risk_fires_at_3_degrees_with_the_pump_off() {
    let mut s = Sim::new();
    assert_eq!(one(&mut s, &cold(3.1), FREEZE_RISK), Some(false));
    let c = assert_active(&s.step(&cold(3.0)), FREEZE_RISK);
    assert!(c.summary.contains("3.0"));
    assert_eq!(one(&mut s, &cold(-5.0), FREEZE_RISK), Some(true));
    // The controller starts freeze circulation: cleared even though still cold.
    let circulating = cold(2.0).b("pump_on", true).f("circulation_flow_l_min", 5.0);
    assert_eq!(one(&mut s, &circulating, FREEZE_RISK), Some(false));
    assert_eq!(one(&mut s, &cold(8.0), FREEZE_RISK), Some(false));
}

#[test]
fn freeze_risk_skips_garbage() {
    let mut s = Sim::new();
    assert_eq!(one(&mut s, &cold(1.0).without("pump_on"), FREEZE_RISK), None);
    assert_eq!(one(&mut s, &cold(1.0).raw("pump_on", "\"off\""), FREEZE_RISK), None);
    assert_eq!(one(&mut s, &cold(1.0).raw("pump_on", "2"), FREEZE_RISK), None);
    assert_eq!(one(&mut s, &cold(1.0).raw("pump_on", "0"), FREEZE_RISK), Some(true));
    let out = s.step(&cold(1.0).raw("collector_temp_c", "\"cold\""));
    assert_eq!(judged(&out, FREEZE_RISK), None);
    assert_eq!(judged(&out, SENSOR_FAULT), Some(true));
    assert_eq!(one(&mut s, &cold(-41.0), FREEZE_RISK), None);
}

// ---------------------------------------------------------------- vacuum_tube_failure

/// Strong sun, pump off, collector 9.9 °C above the inlet: just past every limit.
fn dead_tubes() -> Rd {
    Rd::day()
        .b("pump_on", false)
        .f("circulation_flow_l_min", 0.0)
        .f("irradiance_w_m2", 500.0)
        .f("collector_temp_c", 29.9)
        .f("inlet_temp_c", 20.0)
}

#[test]
fn vacuum_tube_failure_fires_after_30_minutes() {
    let mut s = Sim::new();
    let outs = s.steps(&dead_tubes(), 31);
    for o in &outs[..30] {
        assert_eq!(judged(o, VACUUM_TUBE_FAILURE), Some(false));
    }
    let c = assert_active(&outs[30], VACUUM_TUBE_FAILURE);
    assert!(c.summary.contains("30 min"), "{}", c.summary);
    assert_eq!(c.diagnosis.unwrap().suggested_parts[0], "vacuum tubes");
    assert_eq!(one(&mut s, &dead_tubes(), VACUUM_TUBE_FAILURE), Some(true));
    // Collector heats and the pump starts: clears.
    assert_eq!(one(&mut s, &Rd::day(), VACUUM_TUBE_FAILURE), Some(false));
}

#[test]
fn vacuum_tube_failure_quiet_just_inside() {
    for (name, r) in [
        ("delta 10", dead_tubes().f("collector_temp_c", 30.0)),
        ("irradiance 499.9", dead_tubes().f("irradiance_w_m2", 499.9)),
        ("pump on", dead_tubes().b("pump_on", true)),
    ] {
        let mut s = Sim::new();
        for o in s.steps(&r, 45) {
            assert_eq!(judged(&o, VACUUM_TUBE_FAILURE), Some(false), "{name}");
        }
    }
}

#[test]
fn vacuum_tube_failure_flapping_restarts_the_count() {
    let mut s = Sim::new();
    let mut outs = s.steps(&dead_tubes(), 20);
    outs.push(s.step(&dead_tubes().f("irradiance_w_m2", 300.0)));
    outs.extend(s.steps(&dead_tubes(), 30)); // a new run: held 0..=29 min
    assert!(outs.iter().all(|o| judged(o, VACUUM_TUBE_FAILURE) == Some(false)));
    assert_eq!(one(&mut s, &dead_tubes(), VACUUM_TUBE_FAILURE), Some(true));
}

#[test]
fn vacuum_tube_failure_skips_garbage_without_losing_time() {
    let mut s = Sim::new();
    s.steps(&dead_tubes(), 20); // m0..m19
    for r in [
        dead_tubes().without("inlet_temp_c"),
        dead_tubes().raw("irradiance_w_m2", "\"sunny\""),
        dead_tubes().raw("pump_on", "null"),
        dead_tubes().f("collector_temp_c", 151.0),
    ] {
        assert_eq!(one(&mut s, &r, VACUUM_TUBE_FAILURE), None); // m20..m23
    }
    let outs = s.steps(&dead_tubes(), 7); // m24..m30
    assert_eq!(judged(&outs[5], VACUUM_TUBE_FAILURE), Some(false));
    assert_active(&outs[6], VACUUM_TUBE_FAILURE);
}

// ---------------------------------------------------------------- tank_leak

fn quiet(level: f64) -> Rd {
    Rd::day().f("tank_level_pct", level)
}

#[test]
fn tank_leak_fires_at_a_5_point_fall() {
    let mut s = Sim::new();
    for o in s.steps(&quiet(90.0), 5) {
        assert_eq!(judged(&o, TANK_LEAK), Some(false));
    }
    for k in 1..20 {
        assert_eq!(one(&mut s, &quiet(90.0 - 0.25 * f64::from(k)), TANK_LEAK), Some(false));
    }
    let c = assert_active(&s.step(&quiet(85.0)), TANK_LEAK);
    assert!(c.summary.contains("5.0 points") && c.summary.contains("90.0"), "{}", c.summary);
    assert_eq!(c.evidence[0].value, 90.0);
    assert_eq!(c.evidence[1].value, 85.0);
    assert_eq!(one(&mut s, &quiet(84.0), TANK_LEAK), Some(true));
    // Refilled after the repair: inactive while refilling and after.
    let refill = quiet(88.0).b("inlet_valve_open", true);
    assert_eq!(one(&mut s, &refill, TANK_LEAK), Some(false));
    for o in s.steps(&quiet(90.0), 10) {
        assert_eq!(judged(&o, TANK_LEAK), Some(false));
    }
}

#[test]
fn tank_leak_quiet_just_inside() {
    let mut s = Sim::new();
    s.steps(&quiet(90.0), 3);
    assert_eq!(one(&mut s, &quiet(85.1), TANK_LEAK), Some(false));
    // A slow drift: 4.8 points per hour never reaches 5 within the window.
    let mut s = Sim::new();
    for k in 0..180 {
        let level = 90.0 - 0.08 * f64::from(k);
        assert_eq!(one(&mut s, &quiet(level), TANK_LEAK), Some(false), "k={k}");
    }
}

#[test]
fn tank_leak_compares_within_the_60_minute_window() {
    let mut s = Sim::new();
    s.step(&quiet(90.0)); // m0
    assert_eq!(one(&mut s, &quiet(84.0), TANK_LEAK), Some(true)); // m1
    let outs = s.steps(&quiet(84.0), 60); // m2..m61
    assert_eq!(judged(&outs[58], TANK_LEAK), Some(true)); // m60: the 90 is exactly 60 min old
    assert_eq!(judged(&outs[59], TANK_LEAK), Some(false)); // m61: it left the window
}

#[test]
fn tank_leak_ignores_draws_and_refills() {
    let mut s = Sim::new();
    s.steps(&quiet(90.0), 5);
    for k in 1..=10 {
        let drawing = quiet(90.0 - f64::from(k)).f("draw_flow_l_min", 8.0);
        assert_eq!(one(&mut s, &drawing, TANK_LEAK), Some(false));
    }
    for o in s.steps(&quiet(80.0), 30) {
        assert_eq!(judged(&o, TANK_LEAK), Some(false));
    }
}

#[test]
fn tank_leak_skips_garbage_and_keeps_its_window() {
    let mut s = Sim::new();
    s.steps(&quiet(90.0), 3);
    for r in [
        quiet(89.0).raw("tank_level_pct", "\"?\""),
        quiet(89.0).without("draw_flow_l_min"),
        quiet(89.0).raw("inlet_valve_open", "\"open\""),
        quiet(89.0).raw("draw_flow_l_min", "[]"),
    ] {
        assert_eq!(one(&mut s, &r, TANK_LEAK), None);
    }
    assert_eq!(one(&mut s, &quiet(84.5), TANK_LEAK), Some(true));
}

#[test]
fn tank_leak_drop_comes_from_settings() {
    let mut s = Sim::with_settings(r#"{"tank_leak_drop_pct": 3, "tank_leak_window_min": 10}"#);
    s.step(&quiet(90.0));
    assert_eq!(one(&mut s, &quiet(87.5), TANK_LEAK), Some(false));
    assert_eq!(one(&mut s, &quiet(87.0), TANK_LEAK), Some(true));
}

// ---------------------------------------------------------------- pump_failure

fn dry_pump() -> Rd {
    Rd::day().f("circulation_flow_l_min", 0.0)
}

#[test]
fn pump_failure_fires_after_5_minutes() {
    let mut s = Sim::new();
    let outs = s.steps(&dry_pump(), 6);
    for o in &outs[..5] {
        assert_eq!(judged(o, PUMP_FAILURE), Some(false));
    }
    let c = assert_active(&outs[5], PUMP_FAILURE);
    assert!(c.summary.contains("5 min"), "{}", c.summary);
    assert_eq!(one(&mut s, &Rd::day(), PUMP_FAILURE), Some(false));
}

#[test]
fn pump_failure_quiet_just_inside() {
    let mut s = Sim::new();
    for o in s.steps(&dry_pump().f("circulation_flow_l_min", 0.1), 10) {
        assert_eq!(judged(&o, PUMP_FAILURE), Some(false));
    }
    let mut s = Sim::new();
    for o in s.steps(&Rd::night(), 10) {
        assert_eq!(judged(&o, PUMP_FAILURE), Some(false));
    }
    let mut s = Sim::new();
    let mut outs = s.steps(&dry_pump(), 5);
    outs.push(s.step(&Rd::day()));
    outs.extend(s.steps(&dry_pump(), 5));
    assert!(outs.iter().all(|o| judged(o, PUMP_FAILURE) == Some(false)));
}

#[test]
fn pump_failure_no_flow_limit_from_settings() {
    let mut s = Sim::with_settings(r#"{"pump_no_flow_l_min": 0.5, "pump_failure_min": 2}"#);
    let outs = s.steps(&dry_pump().f("circulation_flow_l_min", 0.3), 3);
    assert_eq!(judged(&outs[1], PUMP_FAILURE), Some(false));
    assert_eq!(judged(&outs[2], PUMP_FAILURE), Some(true));
}

#[test]
fn pump_failure_skips_garbage() {
    let mut s = Sim::new();
    s.steps(&dry_pump(), 3); // m0..m2
    assert_eq!(one(&mut s, &dry_pump().raw("circulation_flow_l_min", "\"x\""), PUMP_FAILURE), None);
    assert_eq!(one(&mut s, &dry_pump().without("pump_on"), PUMP_FAILURE), None);
    assert_eq!(one(&mut s, &dry_pump(), PUMP_FAILURE), Some(true)); // m5
}

// ---------------------------------------------------------------- water_supply_abnormal

fn refilling(level: f64) -> Rd {
    Rd::day().b("inlet_valve_open", true).f("tank_level_pct", level)
}

#[test]
fn water_supply_abnormal_fires_after_30_minutes_without_rise() {
    let mut s = Sim::new();
    s.steps(&Rd::day().f("tank_level_pct", 60.0), 3);
    for m in 0..30 {
        let level = 60.0 + 0.06 * f64::from(m);
        assert_eq!(one(&mut s, &refilling(level), WATER_SUPPLY_ABNORMAL), Some(false), "m={m}");
    }
    let c = assert_active(&s.step(&refilling(61.9)), WATER_SUPPLY_ABNORMAL);
    assert!(c.summary.contains("30 min") && c.summary.contains("60.0"), "{}", c.summary);
    // The supply comes back: the rise since opening reaches 2 points.
    assert_eq!(one(&mut s, &refilling(62.0), WATER_SUPPLY_ABNORMAL), Some(false));
    assert_eq!(one(&mut s, &refilling(61.0), WATER_SUPPLY_ABNORMAL), Some(true));
    assert_eq!(one(&mut s, &Rd::day(), WATER_SUPPLY_ABNORMAL), Some(false));
}

#[test]
fn water_supply_abnormal_quiet_just_inside() {
    let mut s = Sim::new();
    let outs = s.steps(&refilling(50.0), 29);
    assert!(outs.iter().all(|o| judged(o, WATER_SUPPLY_ABNORMAL) == Some(false)));
    assert_eq!(one(&mut s, &refilling(52.0), WATER_SUPPLY_ABNORMAL), Some(false));
    // Reopening restarts both the count and the starting level.
    let mut s = Sim::new();
    let mut outs = s.steps(&refilling(50.0), 20);
    outs.push(s.step(&Rd::day().f("tank_level_pct", 50.0)));
    outs.extend(s.steps(&refilling(50.0), 30)); // a new run: held 0..=29 min
    assert!(outs.iter().all(|o| judged(o, WATER_SUPPLY_ABNORMAL) == Some(false)));
    assert_eq!(one(&mut s, &refilling(50.0), WATER_SUPPLY_ABNORMAL), Some(true));
}

#[test]
fn water_supply_abnormal_skips_garbage() {
    let mut s = Sim::new();
    s.steps(&refilling(40.0), 10); // m0..m9, start level 40
    let garbage = [
        refilling(45.0).without("tank_level_pct"),
        refilling(45.0).raw("inlet_valve_open", "\"yes\""),
    ];
    for r in &garbage {
        assert_eq!(one(&mut s, r, WATER_SUPPLY_ABNORMAL), None);
    }
    let outs = s.steps(&refilling(41.0), 19); // m12..m30
    assert_eq!(judged(&outs[17], WATER_SUPPLY_ABNORMAL), Some(false));
    assert_eq!(judged(&outs[18], WATER_SUPPLY_ABNORMAL), Some(true));
}

// ---------------------------------------------------------------- heater_failure

fn heating(tank: f64) -> Rd {
    Rd::night().b("heater_on", true).f("tank_temp_c", tank)
}

#[test]
fn heater_failure_fires_after_60_minutes_without_rise() {
    let mut s = Sim::new();
    s.step(&Rd::night().f("tank_temp_c", 40.0));
    for m in 0..60 {
        let tank = 40.0 + 0.015 * f64::from(m);
        assert_eq!(one(&mut s, &heating(tank), HEATER_FAILURE), Some(false), "m={m}");
    }
    let c = assert_active(&s.step(&heating(40.9)), HEATER_FAILURE);
    assert!(c.summary.contains("60 min") && c.summary.contains("40.0"), "{}", c.summary);
    assert_eq!(c.evidence[0].value, 40.0);
    assert_eq!(one(&mut s, &Rd::night().f("tank_temp_c", 40.9), HEATER_FAILURE), Some(false));
}

#[test]
fn heater_failure_quiet_just_inside() {
    let mut s = Sim::new();
    let outs = s.steps(&heating(40.0), 60);
    assert!(outs.iter().all(|o| judged(o, HEATER_FAILURE) == Some(false)));
    assert_eq!(one(&mut s, &heating(41.0), HEATER_FAILURE), Some(false));
    assert_eq!(one(&mut s, &heating(40.5), HEATER_FAILURE), Some(true));
}

#[test]
fn heater_failure_skips_garbage() {
    let mut s = Sim::new();
    s.steps(&heating(40.0), 30); // m0..m29, start 40
    let out = s.step(&heating(0.0).raw("tank_temp_c", "\"err\""));
    assert_eq!(judged(&out, HEATER_FAILURE), None);
    assert_eq!(judged(&out, SENSOR_FAULT), Some(true));
    assert_eq!(one(&mut s, &heating(40.2).without("heater_on"), HEATER_FAILURE), None);
    let outs = s.steps(&heating(40.5), 29); // m32..m60
    assert_eq!(judged(&outs[27], HEATER_FAILURE), Some(false));
    assert_eq!(judged(&outs[28], HEATER_FAILURE), Some(true));
}

// ---------------------------------------------------------------- insulation_degraded

/// A night reading `m` minutes into a night losing `rate` °C/h from 60 °C.
fn cooling(rate: f64, m: i32) -> Rd {
    Rd::night().f("tank_temp_c", 60.0 - rate * f64::from(m) / 60.0)
}

#[test]
fn insulation_degraded_fires_after_4_hours_of_fast_loss() {
    let mut s = Sim::new();
    for m in 0..240 {
        assert_eq!(one(&mut s, &cooling(1.51, m), INSULATION_DEGRADED), None, "m={m}");
    }
    let c = assert_active(&s.step(&cooling(1.51, 240)), INSULATION_DEGRADED);
    assert!(c.summary.contains("1.5 °C/h") && c.summary.contains("4.0 h"), "{}", c.summary);
    assert_eq!(c.evidence[0].value, 60.0);
    // Sunrise: inactive in daylight.
    let dawn = cooling(1.51, 241).f("irradiance_w_m2", 5.0);
    assert_eq!(one(&mut s, &dawn, INSULATION_DEGRADED), Some(false));
    assert_eq!(one(&mut s, &Rd::day(), INSULATION_DEGRADED), Some(false));
}

#[test]
fn insulation_degraded_quiet_just_inside() {
    let mut s = Sim::new();
    for m in 0..360 {
        let expect = if m < 240 { None } else { Some(false) };
        assert_eq!(one(&mut s, &cooling(1.49, m), INSULATION_DEGRADED), expect, "m={m}");
    }
}

#[test]
fn insulation_degraded_clears_when_the_loss_slows() {
    let mut s = Sim::new();
    for m in 0..=240 {
        s.step(&cooling(2.0, m));
    }
    assert_eq!(one(&mut s, &cooling(2.0, 241), INSULATION_DEGRADED), Some(true));
    // Temperature holds from now on: the 4-hour rate falls below 1.5 within ~1.1 h.
    let mut cleared = None;
    for k in 0..180 {
        if one(&mut s, &cooling(2.0, 241), INSULATION_DEGRADED) == Some(false) {
            cleared = Some(k);
            break;
        }
    }
    let k = cleared.unwrap();
    assert!((55..=75).contains(&k), "cleared after {k} min");
}

#[test]
fn insulation_degraded_is_not_judged_when_the_night_is_disturbed() {
    let mut s = Sim::new();
    for m in 0..120 {
        s.step(&cooling(2.0, m));
    }
    assert_eq!(one(&mut s, &cooling(2.0, 120).b("heater_on", true), INSULATION_DEGRADED), None);
    // The run restarted: another 4 hours before it is judged.
    for m in 121..361 {
        assert_eq!(one(&mut s, &cooling(2.0, m), INSULATION_DEGRADED), None, "m={m}");
    }
    assert_eq!(one(&mut s, &cooling(2.0, 361), INSULATION_DEGRADED), Some(true));
    assert_eq!(
        one(&mut s, &cooling(2.0, 362).f("draw_flow_l_min", 6.0), INSULATION_DEGRADED),
        None
    );
}

#[test]
fn insulation_degraded_skips_garbage() {
    let mut s = Sim::new();
    for m in 0..240 {
        let r = match m {
            100 => cooling(2.0, m).without("tank_temp_c"),
            101 => cooling(2.0, m).raw("irradiance_w_m2", "\"dark\""),
            102 => cooling(2.0, m).raw("heater_on", "{}"),
            103 => cooling(2.0, m).raw("draw_flow_l_min", "true"),
            _ => cooling(2.0, m),
        };
        assert_eq!(one(&mut s, &r, INSULATION_DEGRADED), None);
    }
    assert_eq!(one(&mut s, &cooling(2.0, 240), INSULATION_DEGRADED), Some(true));
}

#[test]
fn insulation_degraded_rate_from_settings() {
    let mut s = Sim::with_settings(r#"{"insulation_loss_c_h": 0.5, "insulation_h": 2}"#);
    for m in 0..120 {
        s.step(&cooling(0.6, m));
    }
    assert_eq!(one(&mut s, &cooling(0.6, 120), INSULATION_DEGRADED), Some(true));
}

// ---------------------------------------------------------------- sensor_fault

#[test]
fn sensor_fault_checks_every_temperature_at_the_range_edges() {
    for field in TEMPERATURE_FIELDS {
        let mut s = Sim::new();
        assert_eq!(one(&mut s, &Rd::day().f(field, 150.0), SENSOR_FAULT), Some(false), "{field}");
        assert_eq!(one(&mut s, &Rd::day().f(field, -40.0), SENSOR_FAULT), Some(false), "{field}");
        let c = assert_active(&s.step(&Rd::day().f(field, 150.1)), SENSOR_FAULT);
        assert!(c.summary.contains(field) && c.summary.contains("out of range"), "{}", c.summary);
        assert_eq!(c.evidence[0].field, field);
        assert_eq!(c.evidence[0].value, 150.1);
        assert_eq!(one(&mut s, &Rd::day().f(field, -40.1), SENSOR_FAULT), Some(true), "{field}");
        let c = assert_active(&s.step(&Rd::day().without(field)), SENSOR_FAULT);
        assert!(c.summary.contains(&format!("{field} missing")), "{}", c.summary);
        let c = assert_active(&s.step(&Rd::day().raw(field, "\"abc\"")), SENSOR_FAULT);
        assert!(c.summary.contains(&format!("{field} not a number")), "{}", c.summary);
        assert_eq!(one(&mut s, &Rd::day().raw(field, "null"), SENSOR_FAULT), Some(true));
        assert_eq!(one(&mut s, &Rd::day().raw(field, "false"), SENSOR_FAULT), Some(true));
        assert_eq!(one(&mut s, &Rd::day(), SENSOR_FAULT), Some(false), "{field}");
    }
}

#[test]
fn sensor_fault_lists_every_bad_field() {
    let mut s = Sim::new();
    let r = Rd::day().f("tank_temp_c", -127.0).without("inlet_temp_c");
    let c = assert_active(&s.step(&r), SENSOR_FAULT);
    assert!(c.summary.contains("tank_temp_c -127.0") && c.summary.contains("inlet_temp_c missing"));
    assert_eq!(c.evidence.len(), 1);
    // An empty object: every temperature missing, every other rule skipped.
    let t = s.ts;
    let out = s.send(MessageKind::Telemetry, t, b"{}").unwrap();
    assert_eq!(out.conditions.len(), 1);
    assert_eq!(judged(&out, SENSOR_FAULT), Some(true));
}

#[test]
fn sensor_range_from_settings() {
    let mut s = Sim::with_settings(r#"{"sensor_max_c": 120}"#);
    assert_eq!(one(&mut s, &Rd::day().f("collector_temp_c", 120.0), SENSOR_FAULT), Some(false));
    assert_eq!(one(&mut s, &Rd::day().f("collector_temp_c", 121.0), SENSOR_FAULT), Some(true));
}

// ---------------------------------------------------------------- controller_error

#[test]
fn controller_error_fires_on_any_nonzero_code() {
    let mut s = Sim::new();
    assert_eq!(one(&mut s, &Rd::day().i("error_code", 0), CONTROLLER_ERROR), Some(false));
    let c = assert_active(&s.step(&Rd::day().i("error_code", 3)), CONTROLLER_ERROR);
    assert!(c.summary.contains('3'));
    assert_eq!(c.evidence[0].value, 3.0);
    assert_eq!(c.diagnosis.unwrap().category, Category::Software);
    assert_eq!(one(&mut s, &Rd::day().i("error_code", -2), CONTROLLER_ERROR), Some(true));
    assert_eq!(one(&mut s, &Rd::day().f("error_code", 1.0), CONTROLLER_ERROR), Some(true));
    assert_eq!(one(&mut s, &Rd::day().i("error_code", 0), CONTROLLER_ERROR), Some(false));
}

#[test]
fn controller_error_skips_garbage() {
    let mut s = Sim::new();
    for bad in ["\"E3\"", "2.5", "1e20", "true", "[]"] {
        assert_eq!(one(&mut s, &Rd::day().raw("error_code", bad), CONTROLLER_ERROR), None, "{bad}");
    }
    assert_eq!(one(&mut s, &Rd::day().without("error_code"), CONTROLLER_ERROR), None);
}

// ---------------------------------------------------------------- pump_run_hours

fn hours_of(out: &Outcome) -> f64 {
    assert_eq!(out.meters.len(), 1);
    assert_eq!(out.meters[0].meter, PUMP_RUN_HOURS);
    out.meters[0].value
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn pump_run_hours_counts_intervals_that_start_with_the_pump_on() {
    let mut s = Sim::new();
    let outs = s.steps(&Rd::day(), 11); // on at m0..m10
    assert!(close(hours_of(&outs[0]), 0.0));
    assert!(close(hours_of(&outs[10]), 10.0 / 60.0));
    let off = Rd::day().b("pump_on", false);
    assert!(close(hours_of(&s.step(&off)), 11.0 / 60.0)); // m10 -> m11 counted
    assert!(close(hours_of(&s.step(&off)), 11.0 / 60.0)); // m11 -> m12 not
    assert!(close(s.state().pump_run_hours(), 11.0 / 60.0));
}

#[test]
fn pump_run_hours_caps_gaps_and_ignores_late_readings() {
    let mut s = Sim::new();
    s.step(&Rd::day()); // m0, on
    s.ts += 29 * MINUTE_MS;
    assert!(close(hours_of(&s.step(&Rd::day())), 5.0 / 60.0)); // a 30 min gap counts 5
    let late = s.at(s.ts - 10 * MINUTE_MS, &Rd::day());
    assert!(close(hours_of(&late), 5.0 / 60.0));
    assert!(close(hours_of(&s.step(&Rd::day())), 6.0 / 60.0));
    // pump_on unreadable at the earlier reading: that interval is not counted.
    s.step(&Rd::day().raw("pump_on", "\"?\""));
    assert!(close(hours_of(&s.step(&Rd::day())), 7.0 / 60.0));
    // Status and events carry no meter.
    let t = s.ts;
    assert!(s.send(MessageKind::Status, t, b"offline").unwrap().meters.is_empty());
}
