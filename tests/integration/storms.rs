//! One cause, one ticket (maintenance.md section 8): site outages in `tend replay`,
//! in event time.
//!
//! The site has 9 devices (the test site's three plus six door controllers), each
//! publishing every 10 s; the traces silence some of them for a while.

use std::io::BufReader;

use serde_json::Value;
use tend_tests::site::{fixture, test_site_with};

/// 2026-11-23T09:00:00+08:00, a Monday.
const T0_S: i64 = 1_795_395_600;

/// The six extra door controllers (9 devices in all).
const DOORS: [&str; 6] = ["door-2", "door-3", "door-4", "door-5", "door-6", "door-7"];

fn extra_doors() -> String {
    DOORS
        .iter()
        .map(|id| {
            format!(
                "\n[[device]]\nid = \"{id}\"\ntype = \"door-controller\"\nmodel = \"FD-2\"\n\
                 serial = \"S-{id}\"\nlocation = \"Floor {id}\"\ncommissioned = \"2026-01-01\"\n"
            )
        })
        .collect()
}

/// A healthy payload of the type (the first line of its `normal` fixture).
fn template(equipment_type: &str) -> Value {
    let text = std::fs::read_to_string(fixture(equipment_type, "normal")).unwrap();
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    line["payload"].clone()
}

/// Every device publishes every 10 s for `minutes`, except while `silent(device,
/// second)` says it is silent.
fn trace(minutes: i64, silent: &dyn Fn(&str, i64) -> bool) -> String {
    let devices: Vec<(&str, Value)> = [
        ("swh-1", template("solar-water-heater")),
        ("door-1", template("door-controller")),
        ("av-1", template("av-system")),
    ]
    .into_iter()
    .chain(DOORS.iter().map(|d| (*d, template("door-controller"))))
    .collect();
    let mut out = String::new();
    for second in (0..minutes * 60).step_by(10) {
        let ts = jiff::Timestamp::from_second(T0_S + second).unwrap().to_string();
        for (id, payload) in &devices {
            if silent(id, second) {
                continue;
            }
            let mut payload = payload.clone();
            payload["ts"] = Value::String(ts.clone());
            let line = serde_json::json!({"topic": format!("tend/test-site/{id}/telemetry"), "payload": payload});
            out.push_str(&line.to_string());
            out.push('\n');
        }
    }
    out
}

fn replay(trace: &str) -> (Vec<u8>, Vec<Value>) {
    let site =
        test_site_with("http://127.0.0.1:9", "mqtt://127.0.0.1:1", "", &extra_doors()).unwrap();
    let config = tend_agent::config::Config::load(&site.config).unwrap();
    let mut out = Vec::new();
    tend_agent::app::replay(&config, BufReader::new(trace.as_bytes()), &mut out).unwrap();
    let lines = String::from_utf8(out.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out, lines)
}

fn key(l: &Value) -> &str {
    l["idempotency_key"].as_str().unwrap()
}

/// The requests about offline devices and outages, by idempotency key.
fn offline_keys(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(key)
        .filter(|k| k.contains("/device_offline/") || k.contains("/site_outage/"))
        .map(str::to_owned)
        .collect()
}

/// Local time of a wire time, `HH:MM:SS`.
fn clock(v: &Value) -> &str {
    let t = v.as_str().unwrap();
    &t[11..19]
}

/// `first` of the doors fall silent 10 s apart from minute 10 until `until(device)`
/// (seconds since the start).
fn silence(first: usize, until: &dyn Fn(&str) -> i64) -> impl Fn(&str, i64) -> bool {
    let silent: Vec<(String, i64, i64)> = DOORS
        .iter()
        .take(first)
        .enumerate()
        .map(|(i, d)| (d.to_string(), 600 + 10 * i as i64, until(d)))
        .collect();
    move |id, second| silent.iter().any(|(d, from, to)| d == id && (*from..*to).contains(&second))
}

#[test]
fn six_of_nine_devices_silent_within_a_minute_open_one_site_outage_ticket() {
    // Silent from 09:10:00-09:10:50 to 09:20; offline 5 min after their last message.
    let (first, lines) = replay(&trace(30, &silence(6, &|_| 1200)));
    let keys = offline_keys(&lines);
    assert_eq!(keys.len(), 2, "{keys:#?}");
    assert_eq!(keys[0], "test-site/test-site/site_outage/1");
    assert!(keys[1].starts_with("test-site/test-site/site_outage/1/recovered/"), "{keys:#?}");

    let open = lines.iter().find(|l| key(l) == keys[0]).unwrap();
    assert_eq!(open["path"], "/api/v1/tickets");
    let body = &open["body"];
    assert_eq!(body["ticket_id"], "test-site.test-site.site_outage.1");
    assert_eq!(body["kind"], "fault");
    assert_eq!(body["code"], "site_outage");
    assert_eq!(body["severity"], 1);
    assert_eq!(body["device"], serde_json::json!({"id": "test-site", "type": "site"}));
    // The 5th device offline (5 of 9 is the first count of at least 50 %) opens it:
    // door-6, last heard at 09:10:30, offline 5 min later.
    assert_eq!(clock(&body["opened_at"]), "09:15:30");
    let evidence: Vec<&str> =
        body["evidence"].as_array().unwrap().iter().map(|e| e["value"].as_str().unwrap()).collect();
    assert_eq!(evidence, ["door-2", "door-3", "door-4", "door-5", "door-6"]);
    // A level-1 SLA: respond within 10 minutes.
    let opened: jiff::Timestamp = body["opened_at"].as_str().unwrap().parse().unwrap();
    let respond: jiff::Timestamp = body["sla"]["respond_by"].as_str().unwrap().parse().unwrap();
    assert_eq!(respond.duration_since(opened), jiff::SignedDuration::from_mins(10));

    let recovered = lines.iter().find(|l| key(l) == keys[1]).unwrap();
    assert_eq!(recovered["path"], "/api/v1/tickets/test-site.test-site.site_outage.1/events");
    assert_eq!(recovered["body"]["type"], "recovered");
    // Back at 09:20: the second device back leaves 4 of 9 offline.
    assert_eq!(clock(&recovered["body"]["at"]), "09:20:00");
    let note = recovered["body"]["note"].as_str().unwrap();
    assert!(note.contains("still offline: door-4, door-5, door-6, door-7"), "{note}");

    // Replay stays byte-identical.
    assert_eq!(first, replay(&trace(30, &silence(6, &|_| 1200))).0);
}

#[test]
fn two_of_nine_devices_silent_get_a_device_offline_ticket_each() {
    let (_, lines) = replay(&trace(30, &silence(2, &|_| 1200)));
    let keys = offline_keys(&lines);
    let opened: Vec<&String> = keys.iter().filter(|k| !k.contains("/recovered/")).collect();
    assert_eq!(opened, ["test-site/door-2/device_offline/1", "test-site/door-3/device_offline/1"]);
    assert!(!keys.iter().any(|k| k.contains("site_outage")), "{keys:#?}");
    // Each ticket is dated when its device went offline (sent one window later).
    let door2 = lines.iter().find(|l| key(l) == "test-site/door-2/device_offline/1").unwrap();
    assert_eq!(clock(&door2["body"]["opened_at"]), "09:14:50");
    assert_eq!(keys.iter().filter(|k| k.contains("/recovered/")).count(), 2, "{keys:#?}");
}

#[test]
fn a_device_still_silent_after_the_outage_ends_gets_its_own_ticket() {
    // door-7 stays silent until 09:35; the others are back at 09:20.
    let until = |d: &str| if d == "door-7" { 2100 } else { 1200 };
    let (_, lines) = replay(&trace(40, &silence(6, &until)));
    let keys = offline_keys(&lines);
    assert_eq!(
        keys.iter().filter(|k| !k.contains("/recovered/")).collect::<Vec<_>>(),
        ["test-site/test-site/site_outage/1", "test-site/door-7/device_offline/1"],
        "{keys:#?}"
    );
    let own = lines.iter().find(|l| key(l) == "test-site/door-7/device_offline/1").unwrap();
    // Opened at the moment the outage ended.
    assert_eq!(clock(&own["body"]["opened_at"]), "09:20:00");
    assert!(own["body"]["description"].as_str().unwrap().contains("site outage"));
    // ... and recovered once it is back (after the 2 min clear hold).
    let rec = keys.iter().find(|k| k.starts_with("test-site/door-7/device_offline/1/recovered/"));
    assert!(rec.is_some(), "{keys:#?}");
    // Nothing for the devices that came back with the others.
    assert_eq!(keys.iter().filter(|k| k.contains("/device_offline/")).count(), 2, "{keys:#?}");
}

// Maintenance windows: the pipeline of `tend replay` (scratch store, event time) with
// the staff commands given at event times, as `tend maintenance start/end` would.

/// A staff command, or what the ticket sync saw, at an event time.
enum Staff {
    /// `tend maintenance start DEVICE --for LENGTH`.
    Start { device: &'static str, at: i64, length_ms: i64 },
    /// An inspection ticket of the device `in_progress` at the central service
    /// (`true`), or no longer (`false`), as the ticket sync reports it.
    Inspection { device: &'static str, at: i64, in_progress: bool },
}

impl Staff {
    fn at(&self) -> i64 {
        match self {
            Staff::Start { at, .. } | Staff::Inspection { at, .. } => *at,
        }
    }
}

/// Replays `trace` (the fixture lines, in order) with `staff` commands applied once
/// the watermark reaches their time; every request as a replay line.
fn replay_with_staff(trace: &str, staff: &[Staff]) -> Vec<Value> {
    use tend_agent::pipeline::{Clock, Incoming, Pipeline};
    let site = tend_tests::site::test_site("http://127.0.0.1:9", "mqtt://127.0.0.1:1", "").unwrap();
    let config = tend_agent::config::Config::load(&site.config).unwrap();
    let plugins = tend_agent::app::load_plugins(&config, Some(&config.plugins.cache_dir)).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let store = tend_agent::store::Store::scratch(scratch.path()).unwrap();
    let lines: Vec<(String, Vec<u8>, i64)> = trace
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let payload = serde_json::to_vec(&v["payload"]).unwrap();
            let ts: jiff::Timestamp = v["payload"]["ts"].as_str().unwrap().parse().unwrap();
            (v["topic"].as_str().unwrap().to_owned(), payload, ts.as_millisecond())
        })
        .collect();
    let start = lines[0].2;
    let mut p = Pipeline::with_clock(&config, plugins, store, start, Clock::Replay).unwrap();
    let mut staff: Vec<&Staff> = staff.iter().collect();
    let mut watermark = i64::MIN;
    for (topic, payload, ts) in lines {
        watermark = watermark.max(ts);
        while let Some(command) = staff.first().copied() {
            if command.at() > watermark {
                break;
            }
            match command {
                Staff::Start { device, at, length_ms } => {
                    p.maintenance_start_requests(device, *at, Some(*length_ms), Some("test"))
                        .unwrap();
                }
                Staff::Inspection { device, at, in_progress } => {
                    let ticket = format!("test-site.{device}.inspection.semiannual.1");
                    let _ = p.inspection_in_progress(device, &ticket, *in_progress, *at).unwrap();
                }
            }
            staff.remove(0);
        }
        p.process(vec![Incoming { topic, payload, arrival_ms: watermark }]).unwrap();
    }
    // Every request queued, in order (the scratch store delivers nothing).
    let entries: Vec<_> =
        p.store().outbox(usize::MAX).unwrap().into_iter().map(|(_, e)| e).collect();
    let mut out = Vec::new();
    tend_agent::app::write_requests(&entries, &mut out).unwrap();
    String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn fixture_text(code: &str) -> String {
    std::fs::read_to_string(fixture("solar-water-heater", code)).unwrap()
}

/// The requests about `code` on swh-1, by idempotency key.
fn code_keys(lines: &[Value], code: &str) -> Vec<String> {
    let prefix = format!("test-site/swh-1/{code}/");
    lines.iter().map(key).filter(|k| k.starts_with(&prefix)).map(str::to_owned).collect()
}

fn ms_of(v: &Value) -> i64 {
    v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

#[test]
fn a_fault_inside_a_declared_window_opens_at_its_end_if_still_active() {
    let trace = fixture_text("overheat");
    let base = replay_with_staff(&trace, &[]);
    let keys = code_keys(&base, "overheat");
    let open = base.iter().find(|l| key(l) == "test-site/swh-1/overheat/1").unwrap();
    let opened = ms_of(&open["body"]["opened_at"]);
    let recovered = base
        .iter()
        .find(|l| key(l).starts_with("test-site/swh-1/overheat/1/recovered/"))
        .map(|l| ms_of(&l["body"]["at"]))
        .unwrap_or(i64::MAX);
    assert!(recovered > opened + 5 * 60_000, "the fixture's fault lasts: {keys:?}");
    let start = ms_of(
        &serde_json::from_str::<Value>(trace.lines().next().unwrap()).unwrap()["payload"]["ts"],
    );

    // A window from the start to 2 min after the fault opened: the ticket opens then.
    let end = opened + 2 * 60_000;
    let staff = [Staff::Start { device: "swh-1", at: start, length_ms: end - start }];
    let lines = replay_with_staff(&trace, &staff);
    let open = lines.iter().find(|l| key(l) == "test-site/swh-1/overheat/1").unwrap();
    assert_eq!(ms_of(&open["body"]["opened_at"]), end);
    let description = open["body"]["description"].as_str().unwrap();
    assert!(description.contains("First seen during maintenance at"), "{description}");
    assert_eq!(code_keys(&lines, "overheat").len(), keys.len(), "then as usual");
}

#[test]
fn a_fault_that_cleared_inside_a_declared_window_never_opens() {
    let trace = fixture_text("overheat");
    let ts = |line: &str| ms_of(&serde_json::from_str::<Value>(line).unwrap()["payload"]["ts"]);
    let start = ts(trace.lines().next().unwrap());
    let last = ts(trace.lines().last().unwrap());
    let base = replay_with_staff(&trace, &[]);
    let recovered = base
        .iter()
        .find(|l| key(l).starts_with("test-site/swh-1/overheat/1/recovered/"))
        .map(|l| ms_of(&l["body"]["at"]))
        .expect("the fixture's fault clears");
    // The window ends after the fault cleared, before the trace does: its end is
    // judged, and finds nothing active.
    let end = recovered + 60_000;
    assert!(end < last, "the window's end falls inside the trace");
    let staff = [Staff::Start { device: "swh-1", at: start, length_ms: end - start }];
    let lines = replay_with_staff(&trace, &staff);
    assert_eq!(code_keys(&lines, "overheat"), Vec::<String>::new());
}

#[test]
fn tank_leak_inside_a_maintenance_window_pages_at_once() {
    let trace = fixture_text("tank_leak");
    let base = replay_with_staff(&trace, &[]);
    let first: Value = serde_json::from_str(trace.lines().next().unwrap()).unwrap();
    let start = ms_of(&first["payload"]["ts"]);
    let staff = [Staff::Start { device: "swh-1", at: start, length_ms: 24 * 3_600_000 }];
    let lines = replay_with_staff(&trace, &staff);
    let keys = code_keys(&lines, "tank_leak");
    assert!(keys.contains(&"test-site/swh-1/tank_leak/1".to_owned()), "{keys:?}");
    assert_eq!(keys, code_keys(&base, "tank_leak"), "exactly as without the window");
    let at = |ls: &[Value]| {
        ls.iter().find(|l| key(l) == "test-site/swh-1/tank_leak/1").unwrap()["body"]["opened_at"]
            .clone()
    };
    assert_eq!(at(&lines), at(&base));
}

#[test]
fn an_inspection_in_progress_silences_the_device_until_it_is_no_longer() {
    let trace = fixture_text("overheat");
    let base = replay_with_staff(&trace, &[]);
    let open = base.iter().find(|l| key(l) == "test-site/swh-1/overheat/1").unwrap();
    let opened = ms_of(&open["body"]["opened_at"]);
    let first: Value = serde_json::from_str(trace.lines().next().unwrap()).unwrap();
    let start = ms_of(&first["payload"]["ts"]);
    // The technician starts the inspection at the start; the desk sees it no longer
    // in progress 3 minutes after the fault appeared.
    let done = opened + 3 * 60_000;
    let staff = [
        Staff::Inspection { device: "swh-1", at: start, in_progress: true },
        Staff::Inspection { device: "swh-1", at: done, in_progress: false },
    ];
    let lines = replay_with_staff(&trace, &staff);
    let open = lines.iter().find(|l| key(l) == "test-site/swh-1/overheat/1").unwrap();
    assert_eq!(ms_of(&open["body"]["opened_at"]), done);
    assert!(open["body"]["description"].as_str().unwrap().contains("during maintenance"));
}

// Live: broker, agent and the reference central service; the technician starts the
// inspection (`POST /api/v1/tickets/{id}/start`, the desk's "Start work") and
// closes it.

mod live {
    use std::time::{Duration, Instant};

    use serde_json::Value;
    use tend_central::testing::{TOKEN, TestServer};
    use tend_tests::mosquitto::Mosquitto;
    use tend_tests::site::{fixture, test_site_with};

    use super::super::harness::{Agent, Site, WAIT, publish};

    async fn status(api: &str) -> Value {
        reqwest::get(format!("{api}/status")).await.unwrap().json().await.unwrap()
    }

    /// The ticket ids the central service holds.
    async fn ids(central: &TestServer) -> Vec<String> {
        central.tickets().await.into_iter().map(|t| t.ticket.ticket_id).collect()
    }

    async fn until_ticket(central: &TestServer, site: &Site, what: &str, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(id) = ids(central).await.into_iter().find(|id| id.starts_with(prefix)) {
                return id;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", site.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `POST /api/v1/tickets/{id}/{action}` on the central service, as the desk does.
    async fn act(central: &TestServer, id: &str, action: &str, body: Value) -> Value {
        let answer = reqwest::Client::new()
            .post(central.at(&format!("/api/v1/tickets/{id}/{action}")))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{action} {id}");
        answer.json().await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn live_an_inspection_in_progress_silences_the_device_until_it_is_closed() {
        let central = TestServer::start_temp().await.unwrap();
        let mosquitto = Mosquitto::start();
        // Inspections open at once (a long lead time); nobody goes offline meanwhile.
        let extra = "[offline]\nafter = \"1h\"\n\n[inspections]\nlead_time = \"120d\"\n";
        let mqtt = format!("mqtt://127.0.0.1:{}", mosquitto.port);
        let files = test_site_with(&central.url, &mqtt, extra, "").unwrap();
        let site = Site::from_files(files);
        let _agent = Agent(Some(site.start_agent(1)));
        site.wait_subscribed().await;
        let api = site.api_url();

        // The door controller's inspection ticket reaches the desk; the technician
        // starts it.
        let inspection = until_ticket(
            &central,
            &site,
            "door-1's inspection ticket",
            "test-site.door-1.inspection.",
        )
        .await;
        let started = act(&central, &inspection, "start", serde_json::json!({})).await;
        assert_eq!(started["status"], "in_progress", "{started}");
        let mut s = status(&api).await;
        let deadline = Instant::now() + WAIT;
        while s["pipeline"]["under_maintenance"] != 1 {
            assert!(Instant::now() < deadline, "never under maintenance: {s:#}\n{}", site.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
            s = status(&api).await;
        }

        // Tampering while the technician works: judged and suppressed, no ticket.
        let trace = std::fs::read_to_string(fixture("door-controller", "tamper")).unwrap();
        let lines: Vec<(String, Vec<u8>)> = trace
            .lines()
            .take(34)
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (
                    v["topic"].as_str().unwrap().to_owned(),
                    serde_json::to_vec(&v["payload"]).unwrap(),
                )
            })
            .collect();
        publish(mosquitto.port, "door-1-sim", &lines).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let s = status(&api).await;
            if s["pipeline"]["messages"] == lines.len()
                && s["pipeline"]["suppressed"].as_u64().unwrap_or(0) >= 1
            {
                break;
            }
            assert!(Instant::now() < deadline, "tamper never suppressed: {s:#}\n{}", site.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let tamper = "test-site.door-1.tamper.1";
        assert!(!ids(&central).await.iter().any(|id| id == tamper), "paged during the inspection");

        // The inspection is closed on the desk: the still active tamper opens now.
        let closed_at = jiff::Timestamp::now().to_string();
        act(
            &central,
            &inspection,
            "close",
            serde_json::json!({"resolution": "inspected", "closed_at": closed_at}),
        )
        .await;
        until_ticket(&central, &site, "the tamper ticket", tamper).await;
        let record =
            central.tickets().await.into_iter().find(|t| t.ticket.ticket_id == tamper).unwrap();
        let description = record.ticket.description.unwrap_or_default();
        assert!(description.contains("First seen during maintenance"), "{description}");
        let deadline = Instant::now() + WAIT;
        while status(&api).await["pipeline"]["under_maintenance"] != 0 {
            assert!(Instant::now() < deadline, "still under maintenance\n{}", site.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `tend maintenance start|end` with the agent stopped: on the store, visible in
/// `tend device show`.
#[test]
fn maintenance_commands_on_a_stopped_agent_show_in_the_device_archive() {
    let site = tend_tests::site::test_site("http://127.0.0.1:9", "mqtt://127.0.0.1:1", "").unwrap();
    let tend = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tend"))
            .args(args)
            .arg("--config")
            .arg(&site.config)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // stdout alone (the JSON), or with stderr when something failed.
        if out.status.success() { (true, stdout) } else { (false, stdout + &stderr) }
    };
    let (ok, said) =
        tend(&["maintenance", "start", "swh-1", "--for", "90m", "--note", "pump swap"]);
    assert!(ok, "{said}");
    assert!(said.contains("under maintenance"), "{said}");
    let (ok, shown) = tend(&["device", "show", "swh-1", "--json"]);
    assert!(ok, "{shown}");
    let archive: Value = serde_json::from_str(&shown).unwrap();
    let m = &archive["maintenance"];
    assert_eq!(m["note"], "pump swap", "{archive:#}");
    let length = m["until_ms"].as_i64().unwrap() - m["since_ms"].as_i64().unwrap();
    assert_eq!(length, 90 * 60_000);
    // Longer than alarms.maintenance.max_window (24h): refused, saying why.
    let (ok, said) = tend(&["maintenance", "start", "swh-1", "--for", "25h"]);
    assert!(!ok && said.contains("at most 24 h"), "{said}");
    let (ok, said) = tend(&["maintenance", "end", "swh-1"]);
    assert!(ok && said.contains("ended"), "{said}");
    let (ok, shown) = tend(&["device", "show", "swh-1", "--json"]);
    assert!(ok, "{shown}");
    let archive: Value = serde_json::from_str(&shown).unwrap();
    assert!(archive.get("maintenance").is_none(), "{archive:#}");
    let events: Vec<&str> = archive["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .filter(|e| e.starts_with("maintenance"))
        .collect();
    assert_eq!(events, ["maintenance_started", "maintenance_ended"]);
}
