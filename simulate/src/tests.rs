//! Unit tests of the simulators: physics without faults raises nothing, every
//! injected fault is detected by the equipment plugin's own rule crate (called
//! natively), schedules and the clock. Pure: no broker.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use tend_plugin_sdk as sdk;

use super::*;
use tend_agent::config::Inventory;

const DEMO_SITE: &str = include_str!("../../configs/demo-site.toml");
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn inventory() -> Inventory {
    let today = jiff::civil::date(2026, 11, 24);
    Inventory::from_str(DEMO_SITE, Path::new("demo-site.toml"), today).unwrap()
}

/// Event time at local `hour`:00 on 2026-11-24 (a Tuesday) in the site's zone.
fn local(hour: i8) -> i64 {
    jiff::civil::date(2026, 11, 24)
        .at(hour, 0, 0, 0)
        .to_zoned_datetime(inventory().timezone)
        .unwrap()
        .timestamp()
        .as_millisecond()
}

/// Per device, the first event time at which each fault code was active, judged by
/// the device type's rule crate exactly as the host would call it.
fn detect(inv: &Inventory, msgs: &[Publish]) -> BTreeMap<String, BTreeMap<String, i64>> {
    let mut states: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut found: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for p in msgs {
        let parts: Vec<&str> = p.topic.split('/').collect();
        let (id, kind) = (parts[2], parts[3]);
        let d = inv.device(id).unwrap();
        let device =
            sdk::Device { id: id.into(), model: d.model.clone(), settings: d.settings_json() };
        let message = sdk::Message {
            kind: if kind == "event" {
                sdk::MessageKind::Event
            } else {
                sdk::MessageKind::Telemetry
            },
            topic: p.topic.clone(),
            payload: p.payload_bytes(),
            ts_ms: p.ts_ms,
        };
        let state = states.get(id).map(Vec::as_slice);
        let eval =
            match d.equipment_type.as_str() {
                solar::TYPE => sdk::runner::evaluate::<
                    tend_plugin_solar_water_heater::SolarWaterHeater,
                >(&device, &message, state),
                door::TYPE => sdk::runner::evaluate::<tend_plugin_door_controller::DoorController>(
                    &device, &message, state,
                ),
                av::TYPE => sdk::runner::evaluate::<tend_plugin_av_system::AvSystem>(
                    &device, &message, state,
                ),
                other => panic!("unexpected type {other}"),
            }
            .unwrap_or_else(|e| panic!("the plugin rejected {}: {e:?}", p.trace_line()));
        states.insert(id.to_owned(), eval.state);
        for c in eval.outcome.conditions.iter().filter(|c| c.active) {
            found.entry(id.to_owned()).or_default().entry(c.code.clone()).or_insert(p.ts_ms);
        }
    }
    found
}

fn simulate(schedule: &Schedule, seed: u64, start: i64, length: i64) -> Vec<Publish> {
    let mut sim = Simulator::new(&inventory(), schedule, seed, start).unwrap();
    sim.advance(start + length)
}

#[test]
fn three_normal_days_raise_no_fault() {
    let inv = inventory();
    for seed in [1, 2, 3] {
        let msgs = simulate(&Schedule::default(), seed, local(0), 72 * HOUR);
        let found = detect(&inv, &msgs);
        assert!(found.is_empty(), "seed {seed}: faults without injection: {found:?}");
        // Every device reported throughout.
        let devices: BTreeSet<&str> =
            msgs.iter().map(|p| p.topic.split('/').nth(2).unwrap()).collect();
        assert_eq!(devices.len(), inv.devices.len());
    }
}

#[test]
fn normal_physics_is_plausible() {
    let msgs = simulate(&Schedule::default(), 7, local(0), 24 * HOUR);
    let swh: Vec<&Value> = msgs
        .iter()
        .filter(|p| p.topic == "tend/demo-tower/swh-roof-1/telemetry")
        .map(|p| &p.payload)
        .collect();
    assert_eq!(swh.len(), 24 * 60 + 1, "one reading a minute");
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap();
    // Dark at night, sunny at noon.
    let at = |h: usize| swh[h * 60];
    assert_eq!(f(at(2), "irradiance_w_m2"), 0.0);
    assert!(f(at(12), "irradiance_w_m2") > 500.0);
    // The pump runs in the day, only when the collector is hotter than the tank.
    let pumping: Vec<&&Value> = swh.iter().filter(|v| v["pump_on"] == true).collect();
    assert!(!pumping.is_empty());
    assert!(pumping.iter().all(|v| f(v, "collector_temp_c") > f(v, "tank_temp_c")));
    assert!(pumping.iter().all(|v| f(v, "circulation_flow_l_min") > 0.0));
    // The sun heats the tank: warmer at 16:00 than at 08:00.
    assert!(f(at(16), "tank_temp_c") > f(at(8), "tank_temp_c") + 3.0);
    // People draw water in the morning, nobody at 03:00.
    assert!(swh[6 * 60..9 * 60].iter().any(|v| f(v, "draw_flow_l_min") > 0.0));
    assert!(swh[2 * 60..5 * 60].iter().all(|v| f(v, "draw_flow_l_min") == 0.0));

    // The lobby door: busy in the morning peak, quiet at night; grants precede openings.
    let door: Vec<&Publish> =
        msgs.iter().filter(|p| p.topic.starts_with("tend/demo-tower/door-lobby/")).collect();
    let events_between = |from: i64, to: i64| {
        door.iter()
            .filter(|p| {
                p.topic.ends_with("/event") && p.ts_ms >= local(0) + from && p.ts_ms < local(0) + to
            })
            .count()
    };
    assert!(
        events_between(8 * HOUR, 9 * HOUR) > 20 * events_between(2 * HOUR, 3 * HOUR).max(1) / 4
    );
    let cycles: Vec<i64> =
        door.iter().filter_map(|p| p.payload.get("cycles_total").and_then(Value::as_i64)).collect();
    assert!(cycles.windows(2).all(|w| w[0] <= w[1]), "cycles never go down");
    assert!(cycles.last().unwrap() - cycles[0] > 50);

    // AV: lamp hours accumulate only while the projector runs (08:00-21:00).
    let av: Vec<&Value> = msgs
        .iter()
        .filter(|p| p.topic == "tend/demo-tower/av-hall/telemetry")
        .map(|p| &p.payload)
        .collect();
    let lamp = |h: usize| f(av[h * 120], "projector_lamp_hours");
    assert!((lamp(21) - lamp(8) - 13.0).abs() < 0.1, "13 h of projection: {}", lamp(21) - lamp(8));
    assert!((lamp(6) - lamp(1)).abs() < 1e-9, "no lamp hours at night");
}

/// Where in the day each fault can be seen (some need sun, night or a running
/// projector) and how long to run: (start hour, onset after start, length, run).
fn scene(code: &str) -> (i8, i64, i64, i64) {
    match code {
        "vacuum_tube_failure" => (9, 30 * MINUTE, 4 * HOUR, 5 * HOUR),
        "insulation_degraded" => (20, 0, 10 * HOUR, 10 * HOUR),
        "heater_failure" => (19, 10 * MINUTE, 3 * HOUR, 3 * HOUR),
        "freeze_risk" => (18, 10 * MINUTE, 3 * HOUR, 3 * HOUR),
        "overheat" => (20, 10 * MINUTE, 6 * HOUR, 6 * HOUR),
        "tank_leak" | "water_supply_abnormal" => (10, 10 * MINUTE, 2 * HOUR, 3 * HOUR),
        "door_held_open" => (10, 10 * MINUTE, 8 * MINUTE, HOUR),
        "forced_open" => (10, 10 * MINUTE, MINUTE, HOUR),
        _ => (10, 10 * MINUTE, 30 * MINUTE, 2 * HOUR),
    }
}

#[test]
fn every_injected_fault_is_detected_by_its_plugin() {
    let inv = inventory();
    let mut missed = Vec::new();
    for d in ["swh-roof-1", "door-lobby", "av-hall"] {
        let ty = inv.device(d).unwrap().equipment_type.clone();
        for code in fault_codes(&ty).unwrap() {
            let (hour, at, len, run) = scene(code);
            let schedule = Schedule {
                faults: vec![schedule::Fault {
                    device: d.into(),
                    code: (*code).into(),
                    at_ms: at,
                    for_ms: len,
                }],
                repeat_every_ms: None,
            };
            let start = local(hour);
            let found = detect(&inv, &simulate(&schedule, 11, start, run));
            match found.get(d).and_then(|codes| codes.get(*code)) {
                Some(first) => {
                    assert!(*first >= start + at, "{d} {code}: detected before the onset")
                }
                None => missed.push(format!("{d} {code}: {found:?}")),
            }
            // Nothing but the injected fault (and what it physically implies).
            let implied: &[&str] = match *code {
                "mains_failure" => &["battery_low"],
                _ => &[],
            };
            for (dev, codes) in &found {
                for c in codes.keys() {
                    assert!(
                        (dev == d && (c == code || implied.contains(&c.as_str()))),
                        "injecting {code} into {d} also raised {c} on {dev}"
                    );
                }
            }
        }
    }
    assert!(missed.is_empty(), "not detected:\n{}", missed.join("\n"));
}

#[test]
fn demo_schedule_shows_every_type_within_a_quarter_hour_of_event_time() {
    let inv = inventory();
    let start = local(3); // night: nothing may depend on the sun
    let schedule = Schedule::demo(&inv);
    schedule.check(&inv).unwrap();
    let found = detect(&inv, &simulate(&schedule, 5, start, 15 * MINUTE));
    for ty in SIMULATED_TYPES {
        let seen = inv
            .devices
            .iter()
            .filter(|d| d.equipment_type == ty)
            .any(|d| found.get(&d.id).is_some_and(|c| !c.is_empty()));
        assert!(seen, "no {ty} fault within 15 min: {found:?}");
    }
}

#[test]
fn the_same_seed_gives_the_same_messages() {
    let schedule = Schedule::demo(&inventory());
    let a = simulate(&schedule, 42, local(7), 2 * HOUR);
    let b = simulate(&schedule, 42, local(7), 2 * HOUR);
    let c = simulate(&schedule, 43, local(7), 2 * HOUR);
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Advancing in many small steps gives the same as one big step.
    let mut sim = Simulator::new(&inventory(), &schedule, 42, local(7)).unwrap();
    let mut stepped = Vec::new();
    let mut t = local(7);
    while t < local(7) + 2 * HOUR {
        t += 7_000;
        stepped.extend(sim.advance(t.min(local(7) + 2 * HOUR)));
    }
    assert_eq!(a, stepped);
    // Time order, whole-second RFC 3339 times in the site's offset.
    assert!(a.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
    assert!(a.iter().all(|p| p.payload["ts"].as_str().unwrap().ends_with("+08:00")));
}

#[test]
fn the_clock_runs_at_its_speed_and_refuses_slow_or_absurd_ones() {
    let c = SimClock::new(1_000_000, 60.0).unwrap();
    assert_eq!(c.event_ms(std::time::Duration::from_secs(60)), 1_000_000 + HOUR);
    assert_eq!(c.event_ms(std::time::Duration::ZERO), 1_000_000);
    for bad in [0.0, 0.5, -3.0, f64::NAN, f64::INFINITY, 1e9] {
        assert!(SimClock::new(0, bad).is_err(), "{bad}");
    }
}

#[test]
fn schedules_parse_and_are_checked_against_the_inventory() {
    let inv = inventory();
    let s = Schedule::from_toml(
        "repeat_every = \"8h\"\n[[fault]]\ndevice = \"av-hall\"\ncode = \"signal_loss\"\nat = \"5m\"\nfor = \"1h\"\n",
        "f.toml",
    )
    .unwrap();
    assert_eq!(s.faults[0].at_ms, 5 * MINUTE);
    assert_eq!(s.faults[0].for_ms, HOUR);
    assert_eq!(s.repeat_every_ms, Some(8 * HOUR));
    s.check(&inv).unwrap();
    let w = &s.windows_for("av-hall", 0)[0];
    assert_eq!(w.active_for(5 * MINUTE - 1), None);
    assert_eq!(w.active_for(5 * MINUTE), Some(0));
    assert_eq!(w.active_for(65 * MINUTE), None);
    assert_eq!(w.active_for(8 * HOUR + 6 * MINUTE), Some(MINUTE));
    assert_eq!(
        w.onsets_in(0, 17 * HOUR),
        vec![5 * MINUTE, 8 * HOUR + 5 * MINUTE, 16 * HOUR + 5 * MINUTE]
    );

    let err = Schedule::from_toml(
        "[[fault]]\ndevice = \"x\"\ncode = \"y\"\nat = \"1m\"\nfor = \"1m\"\ncolour = 1\n",
        "f.toml",
    )
    .unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
    let err = Schedule::from_toml(
        "[[fault]]\ndevice = \"x\"\ncode = \"y\"\nat = \"soon\"\nfor = \"1m\"\n",
        "f.toml",
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("f.toml: fault 1: at:"), "{err}");

    let cli = Schedule::parse_cli("swh-roof-1:overheat:1h:3h").unwrap();
    assert_eq!((cli.at_ms, cli.for_ms), (HOUR, 3 * HOUR));
    assert!(Schedule::parse_cli("swh-roof-1:overheat:1h").is_err());

    let bad_device = Schedule {
        faults: vec![schedule::Fault { device: "nope".into(), ..cli.clone() }],
        repeat_every_ms: None,
    };
    assert_eq!(
        bad_device.check(&inv),
        Err(ScheduleError::UnknownDevice { index: 1, device: "nope".into() })
    );
    let bad_code = Schedule {
        faults: vec![schedule::Fault { code: "tamper".into(), ..cli.clone() }],
        repeat_every_ms: None,
    };
    let e = bad_code.check(&inv).unwrap_err().to_string();
    assert!(
        e.contains("`tamper` is not a fault of solar-water-heater") && e.contains("overheat"),
        "{e}"
    );
    let too_long = Schedule { faults: vec![cli], repeat_every_ms: Some(2 * HOUR) };
    assert!(matches!(too_long.check(&inv), Err(ScheduleError::LongerThanRepeat { .. })));
}
