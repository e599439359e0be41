//! The pipeline driven directly: batching must not change what is sent, and a bad
//! message in a batch must cost only itself.

use std::collections::BTreeMap;

use tend_agent::pipeline::{Incoming, Pipeline};
use tend_agent::store::{OutboxEntry, Store};
use tend_tests::site::{TestSite, fixture, test_site, test_site_with};

fn pipeline(site: &TestSite, data: &std::path::Path, start_ms: i64) -> Pipeline {
    let config = tend_agent::config::Config::load(&site.config).unwrap();
    let plugins = tend_agent::app::load_plugins(&config, Some(&config.plugins.cache_dir)).unwrap();
    let store = Store::open(data, 8 << 20).unwrap();
    Pipeline::new(&config, plugins, store, start_ms).unwrap()
}

/// The three fixture traces merged in event-time order, as deliveries whose arrival
/// time is their event time (a live agent with exact device clocks).
fn merged() -> Vec<Incoming> {
    let mut all = Vec::new();
    for (ty, code) in [
        ("solar-water-heater", "overheat"),
        ("door-controller", "tamper"),
        ("av-system", "amp_protect"),
    ] {
        let text = std::fs::read_to_string(fixture(ty, code)).unwrap();
        for line in text.lines() {
            let l: tend_agent::trace::TraceLine = serde_json::from_str(line).unwrap();
            let payload = l.payload_bytes();
            let ts = tend_agent::ingest::event_time_ms(&payload).unwrap();
            all.push(Incoming { topic: l.topic, payload, arrival_ms: ts });
        }
    }
    all.sort_by_key(|m| m.arrival_ms);
    all
}

fn by_ticket(entries: &[OutboxEntry]) -> BTreeMap<String, Vec<(String, serde_json::Value)>> {
    let mut m: BTreeMap<String, Vec<(String, serde_json::Value)>> = BTreeMap::new();
    for e in entries {
        m.entry(e.ticket_id().to_owned()).or_default().push((e.key.clone(), e.body()));
    }
    m
}

#[test]
fn batching_sends_the_same_requests_as_one_message_at_a_time() {
    let site = test_site_with(
        "http://127.0.0.1:9",
        "mqtt://127.0.0.1:1",
        "[offline]\nafter = \"400d\"\n",
        "",
    )
    .unwrap();
    let msgs = merged();
    let dir = tempfile::tempdir().unwrap();

    let mut single = pipeline(&site, &dir.path().join("single"), msgs[0].arrival_ms);
    let mut one_by_one = Vec::new();
    for m in msgs.clone() {
        one_by_one.extend(single.process(vec![m]).unwrap());
    }
    let mut batched = pipeline(&site, &dir.path().join("batched"), msgs[0].arrival_ms);
    let mut in_batches = Vec::new();
    for chunk in msgs.chunks(64) {
        in_batches.extend(batched.process(chunk.to_vec()).unwrap());
    }
    // 7 fault requests, and the AV system's quarterly inspection: opened, then overdue
    // (event + level-3 report) when the trace jumps from July to November.
    assert_eq!(one_by_one.len(), 10, "{one_by_one:#?}");
    // Per ticket: the same requests in the same order (across tickets, a batch may
    // order devices differently).
    assert_eq!(by_ticket(&one_by_one), by_ticket(&in_batches));
    assert_eq!(single.counters().messages, batched.counters().messages);
}

#[test]
fn a_poisonous_message_in_a_batch_costs_only_itself() {
    let device = "\n[[device]]\nid = \"bad-1\"\ntype = \"misbehaving\"\nmodel = \"X\"\nserial = \"B1\"\n\
                  location = \"Lab\"\ncommissioned = \"2026-01-01\"\n";
    let site = test_site_with(
        "http://127.0.0.1:9",
        "mqtt://127.0.0.1:1",
        "[offline]\nafter = \"400d\"\n",
        device,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_795_312_800_000i64;
    let mut p = pipeline(&site, dir.path(), t0);
    // 13 panics the plugin; 11 and 12 raise `bad_reading`.
    let msgs: Vec<Incoming> = [1.0, 11.0, 13.0, 12.0]
        .iter()
        .enumerate()
        .map(|(i, v)| Incoming {
            topic: "tend/test-site/bad-1/telemetry".into(),
            payload: format!("{{\"ts\":{},\"value\":{v}}}", t0 + i as i64 * 1000).into_bytes(),
            arrival_ms: t0 + i as i64 * 1000,
        })
        .collect();
    let entries = p.process(msgs).unwrap();
    assert_eq!(p.counters().plugin_failures, 1, "only the poisonous reading failed");
    let keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["test-site/bad-1/bad_reading/1"]);
    // The meter advanced for the three good readings (state threaded through).
    let rec = &p.store().devices().unwrap()["bad-1"];
    assert_eq!(rec.record.meters.get("messages"), Some(&3.0));
}

/// The tamper fixture on `door-1`, moved by `shift_ms`.
fn tamper_at(shift_ms: i64) -> Vec<Incoming> {
    let text = std::fs::read_to_string(fixture("door-controller", "tamper")).unwrap();
    text.lines()
        .map(|line| {
            let l: tend_agent::trace::TraceLine = serde_json::from_str(line).unwrap();
            let mut payload: serde_json::Value =
                serde_json::from_slice(&l.payload_bytes()).unwrap();
            let ts: jiff::Timestamp = payload["ts"].as_str().unwrap().parse().unwrap();
            let moved = jiff::Timestamp::from_millisecond(ts.as_millisecond() + shift_ms).unwrap();
            let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
            payload["ts"] =
                serde_json::json!(moved.display_with_offset(tz.to_offset(moved)).to_string());
            let bytes = serde_json::to_vec(&payload).unwrap();
            Incoming { topic: l.topic, payload: bytes, arrival_ms: moved.as_millisecond() }
        })
        .collect()
}

#[test]
fn the_fourth_repair_of_the_same_fault_in_warranty_recommends_replacement() {
    let site = test_site_with(
        "http://127.0.0.1:9",
        "mqtt://127.0.0.1:1",
        "[offline]\nafter = \"400d\"\n\n[inspections]\nenabled = false\n",
        "",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    const DAY: i64 = 86_400_000;
    let first = tamper_at(-200 * DAY);
    let mut p = pipeline(&site, dir.path(), first[0].arrival_ms);
    let mut opened = Vec::new();
    for n in 0..4_i64 {
        // The same fault, 50 days apart; staff close each ticket in between.
        let msgs = tamper_at((n - 4) * 50 * DAY);
        let end = msgs.last().unwrap().arrival_ms;
        let out = p.process(msgs).unwrap();
        let open: Vec<&OutboxEntry> =
            out.iter().filter(|e| e.path() == "/api/v1/tickets").collect();
        assert_eq!(open.len(), 1, "{out:#?}");
        let body = open[0].body();
        let id = body["ticket_id"].as_str().unwrap().to_owned();
        assert_eq!(id, format!("test-site.door-1.tamper.{}", n + 1));
        let subject = tend_agent::store::TicketSubject::Fault {
            code: "tamper".into(),
            episode: n as u32 + 1,
        };
        let applied = p
            .ticket_closed(&id, "door-1", &subject, end + DAY, Some("switch replaced"))
            .unwrap()
            .expect("the pipeline holds the ticket");
        applied.sync(p.store()).unwrap();
        opened.push(body);
    }
    for (n, body) in opened.iter().enumerate() {
        assert_eq!(body["occurrence"], n + 1);
        assert_eq!(body["replacement_recommended"], n == 3, "{body:#}");
    }
    let reason = opened[3]["description"].as_str().unwrap();
    assert!(reason.contains("repaired 3 times within warranty"), "{reason}");
    assert!(!opened[2]["description"].as_str().unwrap().contains("repaired"));
    // The archive holds the story: four openings, four closures with the resolution.
    let archive = p.archive(Some("door-1"), opened.len() as i64).unwrap();
    let history = &archive.devices[0].history;
    let count = |kind: &str| {
        history.iter().filter(|e| serde_json::to_value(e).unwrap()["event"] == kind).count()
    };
    assert_eq!((count("fault_opened"), count("ticket_closed")), (4, 4), "{history:#?}");
}

#[test]
fn stale_redelivery_beyond_the_recent_window_raises_nothing_again() {
    // A broker restored from old persistence (a crash after its last autosave)
    // delivers again every message since: a fault episode that recovered long ago
    // must not recur, and nothing is sent twice.
    let site = test_site_with(
        "http://127.0.0.1:9",
        "mqtt://127.0.0.1:1",
        "[offline]\nafter = \"400d\"\n\n[inspections]\nenabled = false\n",
        "",
    )
    .unwrap();
    let text = std::fs::read_to_string(fixture("solar-water-heater", "overheat")).unwrap();
    let mut msgs = Vec::new();
    for line in text.lines() {
        let l: tend_agent::trace::TraceLine = serde_json::from_str(line).unwrap();
        let payload = l.payload_bytes();
        let ts = tend_agent::ingest::event_time_ms(&payload).unwrap();
        msgs.push(Incoming { topic: l.topic, payload, arrival_ms: ts });
    }
    // Then 100 normal readings a minute apart (more than the device remembers).
    let last = text.lines().last().unwrap();
    let last = serde_json::from_str::<tend_agent::trace::TraceLine>(last).unwrap().payload;
    let t_last = msgs.last().unwrap().arrival_ms;
    for i in 1..=100i64 {
        let mut p = last.clone();
        let ts = t_last + i * 60_000;
        p["ts"] = serde_json::json!(ts);
        let payload = serde_json::to_vec(&p).unwrap();
        msgs.push(Incoming { topic: msgs[0].topic.clone(), payload, arrival_ms: ts });
    }
    let dir = tempfile::tempdir().unwrap();
    let mut p = pipeline(&site, dir.path(), msgs[0].arrival_ms);
    let mut first = Vec::new();
    for chunk in msgs.chunks(16) {
        first.extend(p.process(chunk.to_vec()).unwrap());
    }
    let keys: Vec<&str> = first.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["test-site/swh-1/overheat/1", "test-site/swh-1/overheat/1/recovered/1784089800000"]
    );
    let mut again = Vec::new();
    for chunk in msgs.chunks(16) {
        again.extend(p.process(chunk.to_vec()).unwrap());
    }
    assert!(again.is_empty(), "sent again: {again:#?}");
    assert_eq!(p.counters().duplicates, msgs.len() as u64);
}

/// Regression (bench, 10,000 devices): every device's inspection falling due at the
/// first start went into one transaction holding every ticket, and the agent's peak
/// RSS reached 406 MiB before a message arrived. Timers now commit a slice of devices
/// at a time; nothing may be lost, doubled or reordered on the way.
#[test]
fn inspections_due_for_hundreds_of_devices_at_first_start_are_all_committed() {
    let mut inventory = String::new();
    for i in 0..600 {
        inventory.push_str(&format!(
            "\n[[device]]\nid = \"door-{i:03}x\"\ntype = \"door-controller\"\nmodel = \"FD-2\"\n\
             serial = \"X{i}\"\nlocation = \"Floor {i}\"\ncommissioned = \"2026-01-01\"\n"
        ));
    }
    let site = test_site_with("http://127.0.0.1:9", "mqtt://127.0.0.1:1", "", &inventory).unwrap();
    // Monday 2026-06-29: the semiannual inspection (due Wednesday 07-01) is inside the
    // seven days' lead time.
    let start: jiff::Timestamp = "2026-06-29T04:00:00Z".parse().unwrap();
    let start = start.as_millisecond();
    let dir = tempfile::tempdir().unwrap();
    let entries = {
        let mut p = pipeline(&site, dir.path(), start);
        let entries = p.advance(start).unwrap();
        assert!(p.advance(start).unwrap().is_empty(), "each due device fires once");
        p.store().flush().unwrap();
        entries
    };
    let opened: std::collections::BTreeSet<&str> = entries
        .iter()
        .map(|e| e.ticket_id())
        .filter(|t| t.contains("x.inspection.semiannual."))
        .collect();
    assert_eq!(opened.len(), 600, "one semiannual inspection per extra door");
    assert!(opened.iter().all(|t| t.ends_with(".semiannual.1")));
    let store = Store::open(dir.path(), 8 << 20).unwrap();
    let queued: Vec<String> =
        store.outbox(10_000).unwrap().into_iter().map(|(_, e)| e.key).collect();
    let sent: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
    assert_eq!(queued, sent, "the outbox holds every request, in order");
    let devices = store.devices().unwrap();
    let with_open = devices
        .iter()
        .filter(|(id, d)| {
            id.ends_with('x')
                && d.record.inspections.get("semiannual").is_some_and(|s| s.open.is_some())
        })
        .count();
    assert_eq!(with_open, 600, "each record stored with its open inspection");
}

/// Issue 15, finding 2: a device whose clock ran a day ahead for 64 readings filled
/// its redelivery window with times no correct reading could pass: every correct
/// reading after it was dropped as a redelivery (its faults never judged). Live, a
/// `ts` more than `ingest.max_clock_skew` (default 5 min) ahead of arrival is now
/// invalid: counted, never judged, never remembered; it still proves the device is
/// online.
#[test]
fn a_clock_far_ahead_does_not_blind_the_redelivery_check() {
    let site =
        test_site("http://127.0.0.1:9", "mqtt://127.0.0.1:1", "[inspections]\nenabled = false\n")
            .unwrap();
    const MIN: i64 = 60_000;
    const DAY: i64 = 86_400_000;
    let t0: jiff::Timestamp = "2026-11-23T01:00:00Z".parse().unwrap();
    let t0 = t0.as_millisecond();
    let topic = "tend/test-site/door-1/telemetry";
    let reading = |ts: i64, arrival_ms: i64, tamper: bool| Incoming {
        topic: topic.into(),
        payload: format!(
            "{{\"ts\":{ts},\"door_open\":false,\"locked\":true,\"fire_door\":false,\
             \"battery_v\":13.3,\"mains_ok\":true,\"tamper\":{tamper},\"cycles_total\":48210}}"
        )
        .into_bytes(),
        arrival_ms,
    };
    // 64 readings stamped a day ahead, a minute apart, then two hours of correct ones;
    // the cover is opened (tamper) for five minutes in the second hour.
    let mut msgs: Vec<Incoming> =
        (0..64).map(|i| reading(t0 + i * MIN + DAY, t0 + i * MIN, false)).collect();
    let tamper_from = t0 + 100 * MIN;
    for i in 64..184 {
        let at = t0 + i * MIN;
        msgs.push(reading(at, at, (tamper_from..tamper_from + 5 * MIN).contains(&at)));
    }
    let end = msgs.last().unwrap().arrival_ms;
    let dir = tempfile::tempdir().unwrap();
    let mut p = pipeline(&site, dir.path(), t0);
    let mut sent = Vec::new();
    for chunk in msgs.chunks(8) {
        sent.extend(p.process(chunk.to_vec()).unwrap());
    }
    let keys: Vec<&str> = sent.iter().map(|e| e.key.as_str()).collect();
    let door: Vec<&str> = keys.iter().copied().filter(|k| k.contains("/door-1/")).collect();

    // The correct readings are judged: the tamper opens a ticket, dated by them.
    let tamper = sent
        .iter()
        .find(|e| e.key == "test-site/door-1/tamper/1")
        .unwrap_or_else(|| panic!("no tamper ticket: {keys:#?}"));
    let opened: jiff::Timestamp = tamper.body()["opened_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(opened.as_millisecond(), tamper_from);
    assert!(
        door.iter().any(|k| k.starts_with("test-site/door-1/tamper/1/recovered/")),
        "{door:#?}"
    );
    // Still sending: never offline (the readings a day ahead still prove it online).
    assert!(!door.iter().any(|k| k.contains("device_offline")), "{door:#?}");
    // The readings a day ahead are counted as invalid, and are not remembered.
    let c = p.counters();
    assert_eq!(c.invalid, 64, "{c:?}");
    assert_eq!(c.future, 64, "{c:?}");
    assert_eq!(c.duplicates, 0, "{c:?}");
    let rec = &p.store().devices().unwrap()["door-1"].record;
    assert!(rec.recent.pairs().iter().all(|&(ts, _)| ts <= end), "{:?}", rec.recent.pairs());
    assert!(rec.alarms.last_seen() <= end);
}

/// Messages of the overheat fixture, moved from `swh-1` to `device`.
fn overheat_on(device: &str) -> Vec<Incoming> {
    let text = std::fs::read_to_string(fixture("solar-water-heater", "overheat")).unwrap();
    text.lines()
        .map(|line| {
            let l: tend_agent::trace::TraceLine = serde_json::from_str(line).unwrap();
            let payload = l.payload_bytes();
            let ts = tend_agent::ingest::event_time_ms(&payload).unwrap();
            Incoming {
                topic: l.topic.replace("/swh-1/", &format!("/{device}/")),
                payload,
                arrival_ms: ts,
            }
        })
        .collect()
}

/// A normal solar heater reading at `ts`, padded to about `size` bytes.
fn padded_reading(device: &str, ts: i64, size: usize) -> Incoming {
    let head = format!(
        "{{\"ts\":{ts},\"collector_temp_c\":25,\"tank_temp_c\":52,\"tank_level_pct\":90,\
         \"inlet_temp_c\":20,\"ambient_temp_c\":24,\"irradiance_w_m2\":0,\"pump_on\":false,\
         \"circulation_flow_l_min\":0,\"draw_flow_l_min\":0,\"inlet_valve_open\":false,\
         \"heater_on\":false,\"error_code\":0,\"pad\":\""
    );
    let mut payload = head.into_bytes();
    payload.resize(size.saturating_sub(2).max(payload.len()), b'x');
    payload.extend_from_slice(b"\"}");
    Incoming { topic: format!("tend/test-site/{device}/telemetry"), payload, arrival_ms: ts }
}

/// Issue 15, finding 1: 300 payloads of 1 MB published to one solar heater went to
/// the plugin in batches of about a hundred messages in one call; the call hit the
/// memory limit three times, the plugin was quarantined, and every other solar heater
/// got a `plugin_failure` ticket. Payloads over `ingest.max_telemetry_bytes` are now
/// invalid (never judged), a call carries at most `plugins.max_call_bytes` of
/// payload, and failures are attributed per device.
#[test]
fn one_flooding_device_does_not_quarantine_its_type() {
    let extra = "\n[[device]]\nid = \"swh-2\"\ntype = \"solar-water-heater\"\nmodel = \"SWH-300\"\n\
                 serial = \"S2\"\nlocation = \"Roof\"\ncommissioned = \"2026-01-01\"\n";
    let site = test_site_with(
        "http://127.0.0.1:9",
        "mqtt://127.0.0.1:1",
        "[offline]\nafter = \"400d\"\n\n[inspections]\nenabled = false\n",
        extra,
    )
    .unwrap();
    // A small instance, so that a modest flood fills it.
    let text = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(&site.config, text.replacen("[plugins]\n", "[plugins]\nmemory_mib = 16\n", 1))
        .unwrap();
    // (payloads per batch, payload size): over the 64 KiB limit; just under it.
    for (per_batch, size) in [(20, 1 << 20), (300, 60 << 10)] {
        let witness = overheat_on("swh-2");
        let dir = tempfile::tempdir().unwrap();
        let mut p = pipeline(&site, dir.path(), witness[0].arrival_ms);
        let mut sent = Vec::new();
        // Three batches a minute apart, each with a reading of the other heater and
        // the flood; then the rest of the other heater's trace.
        for (b, m) in witness[..3].iter().enumerate() {
            let mut msgs = vec![m.clone()];
            let t = m.arrival_ms;
            msgs.extend(
                (0..per_batch)
                    .map(|i| padded_reading("swh-1", t + (b * per_batch + i) as i64, size)),
            );
            sent.extend(p.process(msgs).unwrap());
        }
        sent.extend(p.process(witness[3..].to_vec()).unwrap());
        let keys: Vec<&str> = sent.iter().map(|e| e.key.as_str()).collect();
        let what = format!("{per_batch} payloads of {size} bytes per batch");
        assert!(
            keys.contains(&"test-site/swh-2/overheat/1"),
            "{what}: the other heater was not judged: {keys:#?}"
        );
        assert!(
            !keys.iter().any(|k| k.contains("plugin_failure") && !k.contains("/swh-1/")),
            "{what}: another heater got plugin_failure: {keys:#?}"
        );
        let report = p.plugin_report();
        let solar = report.iter().find(|r| r.equipment_type == "solar-water-heater").unwrap();
        assert!(!solar.quarantined, "{what}: plugin quarantined: {solar:?}");
        let c = p.counters();
        if size > 64 << 10 {
            assert_eq!(c.invalid, 3 * per_batch as u64, "{what}: over the limit is invalid: {c:?}");
            assert_eq!(solar.failures, 0, "{what}: {solar:?}");
        } else {
            assert_eq!(c.plugin_failures, 0, "{what}: calls split by size: {c:?}");
        }
    }
}

/// Issue 15, finding 1 (attribution): a plugin failing again and again on one
/// device's messages quarantined the plugin, and every device of the type got a
/// `plugin_failure` ticket. The device now gets its own, and the others of its type
/// keep being judged.
#[test]
fn a_device_that_keeps_crashing_its_plugin_gets_its_own_plugin_failure() {
    let mut devices = String::new();
    for (id, mode) in [("bad-1", "panic"), ("good-1", "none")] {
        devices.push_str(&format!(
            "\n[[device]]\nid = \"{id}\"\ntype = \"misbehaving\"\nmodel = \"X\"\nserial = \"{id}\"\n\
             location = \"Lab\"\ncommissioned = \"2026-01-01\"\nsettings = {{ misbehave = \"{mode}\" }}\n"
        ));
    }
    let site = test_site_with(
        "http://127.0.0.1:9",
        "mqtt://127.0.0.1:1",
        "[offline]\nafter = \"400d\"\n\n[inspections]\nenabled = false\n",
        &devices,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_795_312_800_000i64;
    let mut p = pipeline(&site, dir.path(), t0);
    let mut sent = Vec::new();
    for i in 0..6i64 {
        let at = t0 + i * 1000;
        let msgs = ["bad-1", "good-1"]
            .iter()
            .map(|d| Incoming {
                topic: format!("tend/test-site/{d}/telemetry"),
                payload: format!("{{\"ts\":{at},\"value\":{}}}", if i >= 4 { 11 } else { 1 })
                    .into_bytes(),
                arrival_ms: at,
            })
            .collect();
        sent.extend(p.process(msgs).unwrap());
    }
    let keys: Vec<&str> = sent.iter().map(|e| e.key.as_str()).collect();
    assert!(keys.contains(&"test-site/bad-1/plugin_failure/1"), "{keys:#?}");
    assert!(keys.contains(&"test-site/good-1/bad_reading/1"), "{keys:#?}");
    assert!(!keys.iter().any(|k| k.starts_with("test-site/good-1/plugin_failure")), "{keys:#?}");
    let report = p.plugin_report();
    let plugin = report.iter().find(|r| r.equipment_type == "misbehaving").unwrap();
    assert!(!plugin.quarantined, "{plugin:?}");
}
