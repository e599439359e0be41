//! A generated year of telemetry (2026) for the three device types, through `tend
//! replay`: the inspection tickets it must open (dates, checklists, overdue reports),
//! and the coverage of faults under warranty, contract, none, and the warranty's
//! downtime extension.

use std::collections::BTreeMap;
use std::io::BufReader;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use tend_tests::site::{fixture, test_site_with};

const HOUR: i64 = 3_600_000;
const MIN: i64 = 60_000;

fn tz() -> TimeZone {
    TimeZone::get("Asia/Shanghai").unwrap()
}

fn ms(s: &str) -> i64 {
    s.parse::<Timestamp>().unwrap().as_millisecond()
}

fn rfc(ms: i64) -> String {
    let t = Timestamp::from_millisecond(ms).unwrap();
    t.to_zoned_datetime(tz()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// Trace lines `(ts, line)`.
type Lines = Vec<(i64, String)>;

fn push(out: &mut Lines, device: &str, ts: i64, mut payload: Value) {
    payload["ts"] = json!(rfc(ts));
    let line = json!({"topic": format!("tend/test-site/{device}/telemetry"), "payload": payload});
    out.push((ts, line.to_string()));
}

/// The solar water heater: quiet nights, the pump runs 10:00-13:00 every day (3 h a
/// day on the `pump_run_hours` meter, read every 5 minutes while it runs).
fn solar(out: &mut Lines, start: i64) {
    let reading = |pump: bool| {
        json!({"collector_temp_c": if pump { 68 } else { 22 }, "tank_temp_c": 55,
               "tank_level_pct": 90, "inlet_temp_c": 18, "ambient_temp_c": 20,
               "irradiance_w_m2": if pump { 750 } else { 0 }, "pump_on": pump,
               "circulation_flow_l_min": if pump { 8 } else { 0 }, "draw_flow_l_min": 0,
               "inlet_valve_open": false, "heater_on": false, "error_code": 0})
    };
    for day in 0..365 {
        let d = start + day * 24 * HOUR;
        for h in [0, 4, 8, 20] {
            push(out, "swh-1", d + h * HOUR, reading(false));
        }
        for step in 0..=36 {
            push(out, "swh-1", d + 10 * HOUR + step * 5 * MIN, reading(step < 36));
        }
    }
}

/// Doors and AV systems: a reading an hour. Door cycles: 200 a day from 10,000;
/// projector lamp: 4 h a day from 1,500 h (rated 3,000 h); filter: 8 h a day.
fn hourly(out: &mut Lines, start: i64) {
    let av: Value = {
        let text = std::fs::read_to_string(fixture("av-system", "normal")).unwrap();
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        first["payload"].clone()
    };
    for h in 0..365 * 24 {
        let ts = start + h * HOUR;
        let cycles = 10_000 + 200 * h / 24;
        let door = json!({"door_open": false, "locked": true, "fire_door": false,
                          "battery_v": 13.2, "mains_ok": true, "tamper": false,
                          "cycles_total": cycles});
        push(out, "door-1", ts, door);
        let mut p = av.clone();
        // Offsets keep every meter crossing between two readings, clear of float ties.
        p["projector_lamp_hours"] = json!(1500.0 + h as f64 / 6.0 + 0.05);
        p["projector_filter_hours"] = json!(h as f64 / 3.0 + 0.1);
        p["lamp_rated_hours"] = json!(3000);
        push(out, "av-1", ts, p);
    }
}

/// A fixture trace of `code` moved to start at `at` on `device`.
fn fault(out: &mut Lines, ty: &str, code: &str, device: &str, at: i64) {
    let text = std::fs::read_to_string(fixture(ty, code)).unwrap();
    let mut shift = None;
    for line in text.lines() {
        let mut l: Value = serde_json::from_str(line).unwrap();
        let ts = ms(l["payload"]["ts"].as_str().unwrap());
        let delta = *shift.get_or_insert(at - ts);
        l["payload"]["ts"] = json!(rfc(ts + delta));
        let topic = l["topic"].as_str().unwrap();
        let parts: Vec<&str> = topic.split('/').collect();
        l["topic"] = json!(format!("tend/test-site/{device}/{}", parts[3]));
        out.push((ts + delta, l.to_string()));
    }
}

const DEVICES: &str = r#"
[[device]]
id = "door-fire"
type = "door-controller"
model = "FD-2"
serial = "D9"
location = "Stairwell B"
commissioned = "2026-01-01"
settings = { fire_door = true }

[[device]]
id = "swh-2"
type = "solar-water-heater"
model = "SWH-300"
serial = "S2"
location = "Roof B"
commissioned = "2025-01-01"

[[device]]
id = "door-old"
type = "door-controller"
model = "FD-2"
serial = "D2"
location = "Garage"
commissioned = "2023-06-01"
contract_until = "2027-01-01"

[[device]]
id = "av-old"
type = "av-system"
model = "BGM-4Z"
serial = "A2"
location = "Hall 2"
commissioned = "2022-01-01"

[[device]]
id = "av-ext"
type = "av-system"
model = "BGM-4Z"
serial = "A3"
location = "Hall 3"
commissioned = "2025-06-01"

[[device]]
id = "av-ext2"
type = "av-system"
model = "BGM-4Z"
serial = "A4"
location = "Hall 4"
commissioned = "2025-06-01"
"#;

/// Offline detection off (readings are hours apart); the pump service at 599.6 h
/// (type override) and door-1's semiannual plan every 4 months (device override).
const CONFIG: &str = r#"
[offline]
after = "400d"

[inspections.types.solar-water-heater.pump-service]
meter_threshold = 599.6

[inspections.devices.door-1.semiannual]
every = "4m"
"#;

fn checklists(config: &std::path::Path) -> BTreeMap<(String, String), Vec<String>> {
    let config = tend_agent::config::Config::load(config).unwrap();
    let plugins = tend_agent::app::load_plugins(&config, Some(&config.plugins.cache_dir)).unwrap();
    let mut out = BTreeMap::new();
    for (ty, p) in plugins.iter() {
        for plan in &p.description().inspections {
            out.insert((ty.to_owned(), plan.id.clone()), plan.checklist.clone());
        }
    }
    out
}

#[test]
fn a_year_of_telemetry_opens_the_expected_inspections_and_coverage() {
    let site = test_site_with("http://127.0.0.1:9", "mqtt://127.0.0.1:1", CONFIG, DEVICES).unwrap();
    let start = ms("2026-01-01T00:00:00+08:00");
    let mut lines = Lines::new();
    solar(&mut lines, start);
    hourly(&mut lines, start);
    fault(&mut lines, "solar-water-heater", "overheat", "swh-2", ms("2026-03-10T12:00:00+08:00"));
    fault(&mut lines, "door-controller", "tamper", "door-old", ms("2026-05-12T09:00:00+08:00"));
    fault(&mut lines, "av-system", "amp_protect", "av-old", ms("2026-09-15T10:00:00+08:00"));
    // av-ext: out of service (level 1) on 2026-05-20, a day of downtime before its
    // 12-month warranty ends on 2026-06-01; av-ext2 is the same without the outage.
    fault(&mut lines, "av-system", "amp_protect", "av-ext", ms("2026-05-20T10:00:00+08:00"));
    fault(&mut lines, "av-system", "signal_loss", "av-ext", ms("2026-06-02T10:00:00+08:00"));
    fault(&mut lines, "av-system", "signal_loss", "av-ext2", ms("2026-06-02T10:00:00+08:00"));
    lines.sort_by_key(|(ts, _)| *ts);
    let trace: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();

    let config = tend_agent::config::Config::load(&site.config).unwrap();
    let mut out = Vec::new();
    tend_agent::app::replay(&config, BufReader::new(trace.as_bytes()), &mut out).unwrap();
    let requests: Vec<Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let opened: Vec<&Value> =
        requests.iter().filter(|r| r["path"] == "/api/v1/tickets").map(|r| &r["body"]).collect();

    // Inspections of the devices with a year of telemetry, and of the fire door.
    let watched = ["swh-1", "door-1", "av-1", "door-fire"];
    let inspections: Vec<(String, String, String, String)> = opened
        .iter()
        .filter(|b| b["kind"] == "inspection")
        .filter(|b| watched.contains(&b["device"]["id"].as_str().unwrap()))
        .map(|b| {
            let s = |k: &str| b[k].as_str().unwrap().to_owned();
            (s("ticket_id"), s("code"), s("opened_at"), s("due_at"))
        })
        .collect();
    let expect = |id: &str, code: &str, opened: &str, due: &str| {
        (format!("test-site.{id}"), code.to_owned(), opened.to_owned(), due.to_owned())
    };
    assert_eq!(
        inspections,
        [
            // Filter: 500 h at 8 h a day from 0.1 h: crosses on day 62.5.
            expect(
                "av-1.inspection.filter-clean.1",
                "filter-clean",
                "2026-03-04T12:00:00+08:00",
                "2026-03-11T12:00:00+08:00"
            ),
            // Quarterly from commissioning: due Wednesday 2026-04-01 at closing time.
            expect(
                "av-1.inspection.quarterly.1",
                "quarterly",
                "2026-03-25T09:00:00+08:00",
                "2026-04-01T18:00:00+08:00"
            ),
            // Device override: every 4 months -> due Friday 2026-05-01.
            expect(
                "door-1.inspection.semiannual.1",
                "semiannual",
                "2026-04-24T09:00:00+08:00",
                "2026-05-01T18:00:00+08:00"
            ),
            expect(
                "door-fire.inspection.semiannual.1",
                "semiannual",
                "2026-06-24T09:00:00+08:00",
                "2026-07-01T18:00:00+08:00"
            ),
            expect(
                "swh-1.inspection.semiannual.1",
                "semiannual",
                "2026-06-24T09:00:00+08:00",
                "2026-07-01T18:00:00+08:00"
            ),
            // Type override 599.6 h at 3 h a day: day 199 (07-19), 12:40 reading.
            expect(
                "swh-1.inspection.pump-service.1",
                "pump-service",
                "2026-07-19T12:40:00+08:00",
                "2026-07-26T12:40:00+08:00"
            ),
            // 50,000 door cycles at 200 a day from 10,000: day 200.
            expect(
                "door-1.inspection.hardware-service.1",
                "hardware-service",
                "2026-07-20T00:00:00+08:00",
                "2026-07-27T00:00:00+08:00"
            ),
            // Lamp at 90 % of 3,000 h: 2,700 h on day 300.
            expect(
                "av-1.inspection.lamp-replacement.1",
                "lamp-replacement",
                "2026-10-28T00:00:00+08:00",
                "2026-11-04T00:00:00+08:00"
            ),
            // Fire doors only: yearly certification, due Friday 2027-01-01.
            expect(
                "door-fire.inspection.fire-certification.1",
                "fire-certification",
                "2026-12-25T09:00:00+08:00",
                "2027-01-01T18:00:00+08:00"
            ),
        ],
        "{inspections:#?}"
    );

    // Each carries its plan's checklist, and nothing a fault has.
    let lists = checklists(&site.config);
    for b in opened.iter().filter(|b| b["kind"] == "inspection") {
        let key = (
            b["device"]["type"].as_str().unwrap().to_owned(),
            b["code"].as_str().unwrap().to_owned(),
        );
        let expected = &lists[&key];
        assert!(!expected.is_empty());
        assert_eq!(b["checklist"], json!(expected), "{key:?}");
        assert!(
            b.get("severity").is_none() && b.get("sla").is_none() && b.get("coverage").is_none()
        );
    }

    // None was completed in the trace: each is reported overdue once, at its due
    // time, with a level-3 report; none opens twice.
    for (ticket, _, _, due) in &inspections {
        let events: Vec<&Value> = requests
            .iter()
            .filter(|r| r["path"] == format!("/api/v1/tickets/{ticket}/events"))
            .map(|r| &r["body"])
            .collect();
        if ticket.ends_with("fire-certification.1") {
            assert!(events.is_empty(), "not yet due at the end of the trace");
            continue;
        }
        assert_eq!(events.len(), 1, "{ticket}: {events:?}");
        assert_eq!(
            (events[0]["type"].as_str(), events[0]["at"].as_str()),
            (Some("overdue"), Some(due.as_str()))
        );
        let report_id = ticket.replace(".inspection.", ".inspection_overdue.");
        let report = opened.iter().find(|b| b["ticket_id"] == report_id.as_str()).unwrap();
        assert_eq!(report["severity"], 3);
        assert_eq!(report["opened_at"], due.as_str());
        assert_eq!(report["coverage"], "warranty", "{report_id}: commissioned 2026-01-01");
    }

    // Coverage.
    let coverage = |device: &str, code: &str| -> String {
        let b = opened
            .iter()
            .find(|b| b["device"]["id"] == device && b["code"] == code)
            .unwrap_or_else(|| panic!("no {code} ticket for {device}"));
        b["coverage"].as_str().unwrap().to_owned()
    };
    assert_eq!(coverage("swh-2", "overheat"), "warranty", "main unit: 3 years from 2025-01-01");
    assert_eq!(
        coverage("door-old", "tamper"),
        "contract",
        "2-year warranty over, contract until 2027"
    );
    assert_eq!(
        coverage("av-old", "amp_protect"),
        "billable",
        "12-month warranty over, no contract"
    );
    assert_eq!(coverage("av-ext2", "signal_loss"), "billable", "warranty ended 2026-06-01");
    assert_eq!(
        coverage("av-ext", "signal_loss"),
        "warranty",
        "a day of level-1 downtime extended the warranty to 2026-06-02"
    );
    // The outage that bought the day: escalated to level 1 on 05-20.
    assert!(
        requests
            .iter()
            .any(|r| r["path"] == "/api/v1/tickets/test-site.av-ext.amp_protect.1/events"
                && r["body"]["type"] == "escalated"
                && r["body"]["severity"] == 1)
    );
}
