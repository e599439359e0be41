//! The fixture traces in `traces/`: their generator, and a test that runs every
//! trace through the plugin.
//!
//! Regenerate after changing a generator:
//! `TEND_WRITE_TRACES=1 cargo test -p tend-plugin-solar-water-heater traces_match_their_generator`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use tend_plugin_sdk::prelude::*;

use crate::describe::*;
use crate::testutil::{Rd, Sim, format_cst, judged, parse_rfc3339};

const TOPIC: &str = "tend/test-site/swh-1/telemetry";

fn traces_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("traces")
}

/// Two decimals, so the files stay readable.
fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A trace being written, one reading a minute.
struct Gen {
    ts: i64,
    lines: Vec<String>,
}

impl Gen {
    fn new(start: &str) -> Self {
        Gen { ts: parse_rfc3339(start).unwrap(), lines: vec![] }
    }

    fn push(&mut self, r: Rd) {
        let payload = r.json(&format!("\"{}\"", format_cst(self.ts)));
        self.lines.push(format!("{{\"topic\":\"{TOPIC}\",\"payload\":{payload}}}"));
        self.ts += MINUTE_MS;
    }

    fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }
}

/// A healthy sunny reading with the given tank and collector temperatures.
fn sunny(tank: f64, collector: f64) -> Rd {
    Rd::day().f("tank_temp_c", r2(tank)).f("collector_temp_c", r2(collector))
}

fn overheat() -> String {
    let mut g = Gen::new("2026-07-15T12:00:00+08:00");
    for m in 0..60 {
        let (tank, draw, valve) = match m {
            0..25 => (92.0 + 0.2 * f64::from(m), 0.0, false), // 95 at m15
            25..35 => (97.0 - 1.0 * f64::from(m - 25), 12.0, true), // guests shower, refill
            _ => (87.0 + 0.1 * f64::from(m - 35), 0.0, false),
        };
        g.push(
            sunny(tank, tank + 8.0)
                .f("irradiance_w_m2", 900.0)
                .f("draw_flow_l_min", draw)
                .b("inlet_valve_open", valve),
        );
    }
    g.text()
}

fn freeze_risk() -> String {
    let mut g = Gen::new("2026-01-15T02:00:00+08:00");
    for m in 0..45 {
        let fm = f64::from(m);
        let base = Rd::night()
            .f("ambient_temp_c", -8.0)
            .f("inlet_temp_c", 5.0)
            .f("tank_temp_c", r2(45.0 - 0.02 * fm));
        let r = if m < 25 {
            // The collector cools towards the air; the controller's freeze
            // circulation does not start until m25.
            base.f("collector_temp_c", r2(6.0 - 0.2 * fm)) // 3.0 at m15
        } else {
            base.b("pump_on", true)
                .f("circulation_flow_l_min", 5.0)
                .f("collector_temp_c", r2(12.0 - 0.05 * f64::from(m - 25)))
        };
        g.push(r);
    }
    g.text()
}

fn vacuum_tube_failure() -> String {
    let mut g = Gen::new("2026-07-15T10:00:00+08:00");
    for m in 0..65 {
        let r = if (10..50).contains(&m) {
            // Tubes lost their vacuum: the collector stays near the inlet
            // temperature in full sun, so the controller never starts the pump.
            sunny(55.0, 24.0 + 0.02 * f64::from(m - 10))
                .f("irradiance_w_m2", 800.0)
                .b("pump_on", false)
                .f("circulation_flow_l_min", 0.0)
        } else {
            sunny(55.0, 63.0).f("irradiance_w_m2", 800.0)
        };
        g.push(r);
    }
    g.text()
}

fn tank_leak() -> String {
    let mut g = Gen::new("2026-07-15T14:00:00+08:00");
    for m in 0..65 {
        let (level, valve) = match m {
            0..10 => (90.0, false),
            10..40 => (90.0 - 0.25 * f64::from(m - 10), false), // 85 at m30
            40..45 => (82.5, false),
            45..49 => (82.5 + 2.0 * f64::from(m - 44), true), // refill after the repair
            _ => (90.5, false),
        };
        g.push(sunny(56.0, 64.0).f("tank_level_pct", level).b("inlet_valve_open", valve));
    }
    g.text()
}

fn pump_failure() -> String {
    let mut g = Gen::new("2026-07-15T11:00:00+08:00");
    for m in 0..40 {
        let r = if (10..22).contains(&m) {
            // Pump energised but seized: no flow, the collector stagnates and heats.
            sunny(56.0, 64.0 + 2.0 * f64::from(m - 10)).f("circulation_flow_l_min", 0.0)
        } else {
            sunny(56.0, 64.0)
        };
        g.push(r.f("irradiance_w_m2", 820.0));
    }
    g.text()
}

fn water_supply_abnormal() -> String {
    let mut g = Gen::new("2026-07-15T15:00:00+08:00");
    for m in 0..75 {
        let (level, valve) = match m {
            0..10 => (60.0, false),
            10..50 => (60.0 + 0.02 * f64::from(m - 10), true), // a trickle
            50..60 => ((60.8 + 3.0 * f64::from(m - 49)).min(90.0), true), // supply back
            _ => (90.0, false),
        };
        g.push(sunny(52.0, 60.0).f("tank_level_pct", r2(level)).b("inlet_valve_open", valve));
    }
    g.text()
}

fn heater_failure() -> String {
    let mut g = Gen::new("2026-07-15T17:00:00+08:00");
    for m in 0..95 {
        let heater = (10..80).contains(&m);
        let tank = if heater {
            42.0 + 0.005 * f64::from(m - 10)
        } else if m < 10 {
            42.0
        } else {
            42.3
        };
        g.push(
            Rd::day()
                .f("irradiance_w_m2", 120.0)
                .b("pump_on", false)
                .f("circulation_flow_l_min", 0.0)
                .f("collector_temp_c", 35.0)
                .f("ambient_temp_c", 27.0)
                .f("tank_temp_c", r2(tank))
                .b("heater_on", heater),
        );
    }
    g.text()
}

fn insulation_degraded() -> String {
    let mut g = Gen::new("2026-07-15T21:30:00+08:00");
    for m in 0..500 {
        let fm = f64::from(m);
        let ambient = 24.0 - 5.0 * fm / 480.0;
        let sun = if m >= 480 { 3.0 * (fm - 479.0) } else { 0.0 }; // sunrise 05:30
        g.push(
            Rd::night()
                .f("tank_temp_c", r2(62.0 - 2.0 * fm / 60.0)) // 2 °C/h
                .f("ambient_temp_c", r2(ambient))
                .f("collector_temp_c", r2(ambient + 1.0 + sun / 20.0))
                .f("irradiance_w_m2", sun),
        );
    }
    g.text()
}

fn sensor_fault() -> String {
    let mut g = Gen::new("2026-07-15T13:00:00+08:00");
    for m in 0..32 {
        let r = sunny(55.0, 63.0);
        g.push(match m {
            10..13 => r.f("tank_temp_c", -127.0), // probe disconnected
            13..15 => r.without("tank_temp_c"),
            15..17 => r.raw("tank_temp_c", "\"ERR\""),
            _ => r,
        });
    }
    g.text()
}

fn controller_error() -> String {
    let mut g = Gen::new("2026-07-15T09:00:00+08:00");
    for m in 0..40 {
        let code = if (10..25).contains(&m) { 3 } else { 0 };
        g.push(sunny(50.0, 58.0).f("irradiance_w_m2", 650.0).i("error_code", code));
    }
    g.text()
}

/// 01:00 to 09:00 of a summer day: a quiet night, sunrise at 05:20, showers and a
/// refill at 06:30, the backup heater after it, the pump starting in the sun.
fn normal() -> String {
    let mut g = Gen::new("2026-07-15T01:00:00+08:00");
    let (mut tank, mut level, mut collector) = (52.0_f64, 90.0_f64, 25.0_f64);
    let mut pump = false;
    let inlet = 20.0;
    for m in 0..480 {
        let fm = f64::from(m);
        let minute_of_day = 60 + m; // since 00:00
        let sun_min = f64::from(minute_of_day - 320); // since 05:20
        let irradiance = if sun_min > 0.0 {
            900.0 * (std::f64::consts::FRAC_PI_2 * sun_min / 400.0).sin()
        } else {
            0.0
        };
        let ambient = if m < 240 { 24.0 - fm / 240.0 } else { 23.0 + 7.0 * (fm - 240.0) / 240.0 };
        let draw = if (330..350).contains(&m) { 8.0 } else { 0.0 }; // 06:30-06:50
        let valve = (351..360).contains(&m); // 06:51-06:59
        let heater = (365..395).contains(&m); // 07:05-07:35
        // Tank: slow night loss, draws lower the level, refill mixes in cold water.
        tank -= 0.3 / 60.0;
        if draw > 0.0 {
            level -= 1.0;
        }
        if valve {
            let add = (90.0 - level).min(2.5);
            tank = (tank * level + inlet * add) / (level + add);
            level += add;
        }
        if heater {
            tank += 0.15;
        }
        // Collector and pump: a differential controller (on at +8 °C, off below +3 °C).
        if pump {
            collector = tank + 3.0 + irradiance / 100.0;
            tank += 0.00006 * irradiance;
            if collector - tank < 3.0 {
                pump = false;
            }
        } else {
            let equilibrium = ambient + 1.0 + irradiance / 8.0;
            collector += 0.1 * (equilibrium - collector);
            if collector - tank >= 8.0 {
                pump = true;
            }
        }
        g.push(
            Rd::day()
                .f("collector_temp_c", r2(collector))
                .f("tank_temp_c", r2(tank))
                .f("tank_level_pct", r2(level))
                .f("inlet_temp_c", inlet)
                .f("ambient_temp_c", r2(ambient))
                .f("irradiance_w_m2", r2(irradiance))
                .b("pump_on", pump)
                .f("circulation_flow_l_min", if pump { 8.0 } else { 0.0 })
                .f("draw_flow_l_min", draw)
                .b("inlet_valve_open", valve)
                .b("heater_on", heater),
        );
    }
    g.text()
}

/// Every trace: file stem and generated text.
fn generated() -> Vec<(&'static str, String)> {
    vec![
        (OVERHEAT, overheat()),
        (FREEZE_RISK, freeze_risk()),
        (VACUUM_TUBE_FAILURE, vacuum_tube_failure()),
        (TANK_LEAK, tank_leak()),
        (PUMP_FAILURE, pump_failure()),
        (WATER_SUPPLY_ABNORMAL, water_supply_abnormal()),
        (HEATER_FAILURE, heater_failure()),
        (INSULATION_DEGRADED, insulation_degraded()),
        (SENSOR_FAULT, sensor_fault()),
        (CONTROLLER_ERROR, controller_error()),
        ("normal", normal()),
    ]
}

#[test]
fn traces_match_their_generator() {
    let write = std::env::var_os("TEND_WRITE_TRACES").is_some();
    for (name, text) in generated() {
        let path = traces_dir().join(format!("{name}.jsonl"));
        if write {
            std::fs::create_dir_all(traces_dir()).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with TEND_WRITE_TRACES=1)", path.display()));
        assert!(on_disk == text, "{} is stale: run with TEND_WRITE_TRACES=1", path.display());
    }
}

/// What a trace did: per code, whether it was ever active and its last judgment.
#[derive(Default)]
struct Replay {
    ever_active: BTreeMap<String, usize>,
    last: BTreeMap<String, bool>,
    meter: f64,
}

fn replay(text: &str) -> Replay {
    let mut sim = Sim::new();
    let mut seen = Replay::default();
    let mut prev_ts = None;
    for (n, line) in text.lines().enumerate() {
        let line_obj = Payload::parse(line.as_bytes()).unwrap();
        let topic = line_obj.str("topic").ok().unwrap();
        assert_eq!(topic, TOPIC, "line {n}");
        let payload = line_obj.get("payload").unwrap().to_string();
        let ts_text =
            Payload::parse(payload.as_bytes()).unwrap().str("ts").ok().unwrap().to_owned();
        assert!(ts_text.ends_with("+08:00"), "line {n}");
        let ts = parse_rfc3339(&ts_text).unwrap();
        if let Some(p) = prev_ts {
            assert_eq!(ts - p, MINUTE_MS, "line {n}: readings every 60 s");
        }
        prev_ts = Some(ts);
        let out = sim.send(MessageKind::Telemetry, ts, payload.as_bytes()).unwrap();
        for c in &out.conditions {
            if c.active {
                *seen.ever_active.entry(c.code.clone()).or_default() += 1;
            }
            seen.last.insert(c.code.clone(), c.active);
        }
        seen.meter = out.meters[0].value;
        assert!(judged(&out, SENSOR_FAULT).is_some());
    }
    seen
}

#[test]
fn every_trace_raises_its_code_then_recovers() {
    let mut files: Vec<String> = std::fs::read_dir(traces_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    files.sort();
    for code in ALL_CODES {
        assert!(files.contains(&format!("{code}.jsonl")), "no trace for {code}");
    }
    assert!(files.contains(&"normal.jsonl".to_owned()));
    for file in &files {
        let text = std::fs::read_to_string(traces_dir().join(file)).unwrap();
        let seen = replay(&text);
        let name = file.trim_end_matches(".jsonl");
        if name == "normal" {
            assert!(seen.ever_active.is_empty(), "normal.jsonl raised {:?}", seen.ever_active);
            for code in ALL_CODES {
                assert_eq!(seen.last.get(code), Some(&false), "normal.jsonl never judged {code}");
            }
            assert!(seen.meter > 1.0, "the pump should run in the morning ({} h)", seen.meter);
            continue;
        }
        assert!(seen.ever_active.contains_key(name), "{file}: {name} never active");
        assert_eq!(seen.last.get(name), Some(&false), "{file}: {name} not inactive at the end");
        let others: Vec<_> = seen.ever_active.keys().filter(|c| *c != name).collect();
        assert!(others.is_empty(), "{file} also raised {others:?}");
    }
}

/// The recovery tail: after the last active judgment, the trace keeps the condition
/// judged inactive for at least 5 minutes.
#[test]
fn every_fault_trace_ends_with_5_minutes_inactive() {
    for (name, text) in generated() {
        if name == "normal" {
            continue;
        }
        let mut sim = Sim::new();
        let mut last_active = None;
        let mut end = 0;
        for line in text.lines() {
            let obj = Payload::parse(line.as_bytes()).unwrap();
            let payload = obj.get("payload").unwrap().to_string();
            let ts_text =
                Payload::parse(payload.as_bytes()).unwrap().str("ts").ok().unwrap().to_owned();
            let ts = parse_rfc3339(&ts_text).unwrap();
            let out = sim.send(MessageKind::Telemetry, ts, payload.as_bytes()).unwrap();
            if judged(&out, name) == Some(true) {
                last_active = Some(ts);
            }
            end = ts;
        }
        let last = last_active.unwrap();
        assert!(
            end - last >= 5 * MINUTE_MS,
            "{name}: only {} min inactive at the end",
            (end - last) / MINUTE_MS
        );
    }
}
