//! `tend replay`: the live pipeline over a recorded trace in event time.

use std::io::BufReader;

use tend_tests::site::{fixture, test_site, test_site_with};

fn replay_lib(config: &std::path::Path, trace: &str) -> Vec<u8> {
    let config = tend_agent::config::Config::load(config).unwrap();
    let mut out = Vec::new();
    tend_agent::app::replay(&config, BufReader::new(trace.as_bytes()), &mut out).unwrap();
    out
}

fn three_faults() -> String {
    let mut trace = String::new();
    for (ty, code) in [
        ("solar-water-heater", "overheat"),
        ("door-controller", "tamper"),
        ("av-system", "amp_protect"),
    ] {
        trace.push_str(&std::fs::read_to_string(fixture(ty, code)).unwrap());
    }
    trace
}

#[test]
fn replay_opens_the_expected_tickets_with_sla_coverage_and_events() {
    // Offline detection off the table: the three fixtures are months apart.
    let site =
        test_site("http://127.0.0.1:9", "mqtt://127.0.0.1:1", "[offline]\nafter = \"400d\"\n")
            .unwrap();
    let out = String::from_utf8(replay_lib(&site.config, &three_faults())).unwrap();
    let all: Vec<serde_json::Value> =
        out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let key = |l: &serde_json::Value| l["idempotency_key"].as_str().unwrap().to_owned();
    let (inspections, lines): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|l| key(l).contains("/inspection/"));

    // The AV system's quarterly inspection (commissioned 2026-01-01; the schedule
    // starts with the trace in July, so due 2026-10-01) opens a week ahead and is
    // overdue when the trace jumps to November: an event and a level-3 report.
    let ikeys: Vec<String> = inspections.iter().map(key).collect();
    assert_eq!(
        ikeys,
        [
            "test-site/av-1/inspection/quarterly/1",
            "test-site/av-1/inspection/quarterly/1/overdue",
            "test-site/av-1/inspection/quarterly/1/overdue-report",
        ],
        "{out}"
    );
    let opened = &inspections[0]["body"];
    assert_eq!(opened["kind"], "inspection");
    assert_eq!(opened["code"], "quarterly");
    assert_eq!(opened["due_at"], "2026-10-01T18:00:00+08:00");
    assert_eq!(opened["opened_at"], "2026-09-24T09:00:00+08:00");
    assert!(opened["checklist"].as_array().unwrap().len() >= 5);
    assert!(opened.get("severity").is_none());
    assert_eq!(inspections[1]["body"]["type"], "overdue");
    assert_eq!(inspections[1]["body"]["at"], "2026-10-01T18:00:00+08:00");
    let report = &inspections[2]["body"];
    assert_eq!((report["kind"].as_str(), report["severity"].as_i64()), (Some("fault"), Some(3)));
    assert_eq!(report["code"], "inspection_overdue");
    assert_eq!(report["sla"]["respond_by"], "2026-10-01T18:30:00+08:00");

    let keys: Vec<String> = lines.iter().map(key).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "test-site/swh-1/overheat/1",
            keys[1],
            "test-site/door-1/tamper/1",
            keys[3],
            "test-site/av-1/amp_protect/1",
            "test-site/av-1/amp_protect/1/escalated/1",
            keys[6],
        ],
        "{out}"
    );
    assert!(keys[1].starts_with("test-site/swh-1/overheat/1/recovered/"));
    assert!(keys[3].starts_with("test-site/door-1/tamper/1/recovered/"));
    assert!(keys[6].starts_with("test-site/av-1/amp_protect/1/recovered/"));

    let overheat = &lines[0];
    assert_eq!(overheat["method"], "POST");
    assert_eq!(overheat["path"], "/api/v1/tickets");
    let body = &overheat["body"];
    assert_eq!(body["ticket_id"], "test-site.swh-1.overheat.1");
    assert_eq!(body["kind"], "fault");
    assert_eq!(body["site"], "test-site");
    assert_eq!(body["device"]["type"], "solar-water-heater");
    assert_eq!(body["device"]["serial"], "S1");
    assert_eq!(body["severity"], 2);
    assert_eq!(body["coverage"], "warranty", "commissioned 2026-01-01, main unit 3 years");
    assert_eq!(body["occurrence"], 1);
    assert_eq!(body["replacement_recommended"], false);
    assert_eq!(body["diagnosis"]["category"], "hardware");
    assert!(!body["evidence"].as_array().unwrap().is_empty());
    // Opened in event time, in the site's zone; a level-2 SLA: respond in 10 min.
    let opened: jiff::Timestamp = body["opened_at"].as_str().unwrap().parse().unwrap();
    assert!(body["opened_at"].as_str().unwrap().ends_with("+08:00"));
    let respond: jiff::Timestamp = body["sla"]["respond_by"].as_str().unwrap().parse().unwrap();
    assert_eq!(respond.duration_since(opened), jiff::SignedDuration::from_mins(10));
    let resolve: jiff::Timestamp = body["sla"]["resolve_by"].as_str().unwrap().parse().unwrap();
    assert_eq!(resolve.duration_since(opened), jiff::SignedDuration::from_hours(48));

    let escalated = &lines[5];
    assert_eq!(escalated["path"], "/api/v1/tickets/test-site.av-1.amp_protect.1/events");
    assert_eq!(escalated["body"]["type"], "escalated");
    assert_eq!(escalated["body"]["severity"], 1);
    let amp_opened: jiff::Timestamp =
        lines[4]["body"]["opened_at"].as_str().unwrap().parse().unwrap();
    let at: jiff::Timestamp = escalated["body"]["at"].as_str().unwrap().parse().unwrap();
    assert_eq!(at.duration_since(amp_opened), jiff::SignedDuration::from_mins(10));
    assert_eq!(lines[6]["body"]["type"], "recovered");
}

#[test]
fn replay_gives_byte_identical_output_on_repeated_runs() {
    let site = test_site("http://127.0.0.1:9", "mqtt://127.0.0.1:1", "").unwrap();
    let trace = three_faults();
    let first = replay_lib(&site.config, &trace);
    assert!(
        first.len() > 1000,
        "too little output to compare: {}",
        String::from_utf8_lossy(&first)
    );
    assert_eq!(first, replay_lib(&site.config, &trace));
    // And as a separate process, through the command line.
    let trace_file = site.dir.path().join("trace.jsonl");
    std::fs::write(&trace_file, &trace).unwrap();
    let a = replay_command(&site.config, &trace_file);
    assert_eq!(a, first);
    assert_eq!(a, replay_command(&site.config, &trace_file));
}

/// `tend replay` as a process (no environment overrides); its stdout, once it succeeded.
fn replay_command(config: &std::path::Path, trace: &std::path::Path) -> Vec<u8> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["replay", "--config"])
        .arg(config)
        .arg(trace)
        .env_remove("TEND_CENTRAL_URL")
        .env_remove("TEND_INVENTORY")
        .env_remove("TEND_DATA_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn replay_counts_what_it_cannot_use_and_goes_on() {
    let site =
        test_site("http://127.0.0.1:9", "mqtt://127.0.0.1:1", "[offline]\nafter = \"400d\"\n")
            .unwrap();
    let mut trace = String::from(
        "{\"topic\":\"tend/test-site/ghost-1/telemetry\",\"payload\":{\"ts\":1}}\n\
         {\"topic\":\"tend/test-site/bad id/telemetry\",\"payload\":{\"ts\":1}}\n\
         {\"topic\":\"tend/test-site/swh-1/telemetry\",\"payload\":{\"no_ts\":true}}\n\
         {\"topic\":\"tend/test-site/av-1/telemetry\",\"payload\":{\"ts\":2,\"amp_protect\":\"maybe\"}}\n\
         not json at all\n",
    );
    trace.push_str(&std::fs::read_to_string(fixture("door-controller", "tamper")).unwrap());
    let config = tend_agent::config::Config::load(&site.config).unwrap();
    let mut out = Vec::new();
    let s = tend_agent::app::replay(&config, BufReader::new(trace.as_bytes()), &mut out).unwrap();
    assert_eq!(s.bad_lines, 1);
    assert_eq!(s.counters.unknown_device, 1);
    assert_eq!(s.counters.bad_topic, 1);
    assert_eq!(s.counters.invalid, 2);
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("test-site/door-1/tamper/1"), "{out}");
}

#[test]
fn a_quarantined_plugin_raises_plugin_failure_for_its_devices_and_spares_the_others() {
    let device = "\n[[device]]\nid = \"bad-1\"\ntype = \"misbehaving\"\nmodel = \"X\"\nserial = \"B1\"\n\
                  location = \"Lab\"\ncommissioned = \"2026-01-01\"\nsettings = { misbehave = \"panic\" }\n";
    let site = test_site_with(
        "http://127.0.0.1:9",
        "mqtt://127.0.0.1:1",
        "[offline]\nafter = \"400d\"\n",
        device,
    )
    .unwrap();
    let mut trace = String::new();
    for i in 0..5 {
        trace.push_str(&format!(
            "{{\"topic\":\"tend/test-site/bad-1/telemetry\",\"payload\":{{\"ts\":{},\"value\":1}}}}\n",
            1_795_312_800_000i64 + i * 1000
        ));
    }
    trace.push_str(&std::fs::read_to_string(fixture("door-controller", "tamper")).unwrap());
    let config = tend_agent::config::Config::load(&site.config).unwrap();
    let mut out = Vec::new();
    let s = tend_agent::app::replay(&config, BufReader::new(trace.as_bytes()), &mut out).unwrap();
    assert_eq!(s.counters.plugin_failures, 5, "3 failures, then 2 calls refused by the quarantine");
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let failure = lines
        .iter()
        .find(|l| l["idempotency_key"] == "test-site/bad-1/plugin_failure/1")
        .expect("a plugin_failure ticket for bad-1");
    assert_eq!(failure["body"]["severity"], 2);
    assert!(failure["body"]["description"].as_str().unwrap().contains("quarantined"));
    assert!(lines.iter().any(|l| l["idempotency_key"] == "test-site/door-1/tamper/1"));
}

/// Issue 15, finding 4: a trace starting with the devices' retained `status` lines
/// (the normal case) started replay's clock at 1970: every device got a
/// `device_offline` ticket dated 1970-01-01 and inspections looked overdue at once.
/// The clock now starts at the first `ts`; the lines before it take effect then.
#[test]
fn a_replay_starting_with_retained_status_lines_starts_its_clock_at_the_first_ts() {
    let site = test_site("http://127.0.0.1:9", "mqtt://127.0.0.1:1", "").unwrap();
    // Every device's retained "online" first, then the door's telemetry (a tamper
    // episode, 20 minutes); the solar heater and the AV system stay silent.
    let mut trace = String::new();
    for device in ["swh-1", "door-1", "av-1"] {
        trace.push_str(&format!(
            "{{\"topic\":\"tend/test-site/{device}/status\",\"payload\":\"online\"}}\n"
        ));
    }
    trace.push_str(&std::fs::read_to_string(fixture("door-controller", "tamper")).unwrap());
    let first_ts: jiff::Timestamp = "2026-11-23T09:00:00+08:00".parse().unwrap();
    let trace_file = site.dir.path().join("trace.jsonl");
    std::fs::write(&trace_file, &trace).unwrap();
    let text = String::from_utf8(replay_command(&site.config, &trace_file)).unwrap();
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let keys: Vec<&str> = lines.iter().map(|l| l["idempotency_key"].as_str().unwrap()).collect();

    // No request carries a time before the first `ts`.
    fn times(v: &serde_json::Value, out: &mut Vec<jiff::Timestamp>) {
        match v {
            serde_json::Value::String(s) => out.extend(s.parse::<jiff::Timestamp>().ok()),
            serde_json::Value::Array(a) => a.iter().for_each(|v| times(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| times(v, out)),
            _ => {}
        }
    }
    for l in &lines {
        let mut found = Vec::new();
        times(&l["body"], &mut found);
        for t in found {
            assert!(t >= first_ts, "{t} is before the trace's first ts {first_ts}: {l:#}");
        }
    }
    // The door publishes all along: never offline; its tamper episode as usual.
    assert!(!keys.iter().any(|k| k.starts_with("test-site/door-1/device_offline")), "{text}");
    assert!(keys.contains(&"test-site/door-1/tamper/1"), "{text}");
    // Nothing is overdue at the start.
    assert!(!keys.iter().any(|k| k.contains("overdue")), "{text}");
    // The silent ones go offline `offline_after` (5 min) after the first ts, when
    // their retained "online" took effect.
    for device in ["swh-1", "av-1"] {
        let key = format!("test-site/{device}/device_offline/1");
        let opened = lines
            .iter()
            .find(|l| l["idempotency_key"] == key.as_str())
            .unwrap_or_else(|| panic!("no {key}: {text}"));
        let at: jiff::Timestamp = opened["body"]["opened_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(at.duration_since(first_ts), jiff::SignedDuration::from_mins(5), "{key}");
    }
}
