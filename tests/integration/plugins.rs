//! The plugin host with the real plugins compiled to wasm32-wasip2 from source:
//! every fault code through the host (and equal to the native rule crates), and the
//! sandbox against deliberately bad plugins.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tend_agent::plugins::bindings::{Device, Message, MessageKind};
use tend_agent::plugins::trial::{self, ChangeLine, TrialOptions};
use tend_agent::plugins::{
    CallError, Evaluate, Limits, LoadError, PluginEngine, PluginSource, WasmPlugin, set,
};
use tend_tests::plugins as built;

use tend_agent::plugins::native::Native;

/// Fault codes per equipment type, as listed in shared/spec/telemetry.md.
const SPEC_CODES: &[(&str, &[&str])] = &[
    (
        "solar-water-heater",
        &[
            "overheat",
            "freeze_risk",
            "vacuum_tube_failure",
            "tank_leak",
            "pump_failure",
            "water_supply_abnormal",
            "heater_failure",
            "insulation_degraded",
            "sensor_fault",
            "controller_error",
        ],
    ),
    (
        "door-controller",
        &[
            "door_held_open",
            "forced_open",
            "lock_fault",
            "mains_failure",
            "battery_low",
            "tamper",
            "reader_suspect",
        ],
    ),
    (
        "av-system",
        &[
            "amp_protect",
            "amp_overtemp",
            "speaker_line_open",
            "speaker_line_short",
            "speaker_line_drift",
            "lamp_end_of_life",
            "projector_overtemp",
            "display_offline",
            "player_stalled",
            "signal_loss",
            "fan_failure",
        ],
    ),
];

/// Interrupts-service faults (telemetry.md: "2 -> 1 after 10 min").
const INTERRUPTING: &[&str] = &["amp_protect", "display_offline", "signal_loss"];

fn cache_dir() -> PathBuf {
    Path::new(built::REPO_ROOT).join("target").join("test-plugin-cache")
}

fn load_with(path: &str, limits: Limits) -> WasmPlugin {
    let engine = PluginEngine::new(Some(cache_dir())).unwrap();
    set::load_one(&engine, &PluginSource { path: path.into(), sha256: None }, limits)
        .unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

fn load(path: &str) -> WasmPlugin {
    load_with(path, Limits::default())
}

fn wasm_for(equipment_type: &str) -> &'static str {
    match equipment_type {
        "solar-water-heater" => built::SOLAR_WATER_HEATER,
        "door-controller" => built::DOOR_CONTROLLER,
        "av-system" => built::AV_SYSTEM,
        other => panic!("no plugin for {other}"),
    }
}

fn native_for(equipment_type: &str) -> Box<dyn Evaluate> {
    match equipment_type {
        "solar-water-heater" => {
            Box::new(Native::<tend_plugin_solar_water_heater::SolarWaterHeater>::new())
        }
        "door-controller" => Box::new(Native::<tend_plugin_door_controller::DoorController>::new()),
        "av-system" => Box::new(Native::<tend_plugin_av_system::AvSystem>::new()),
        other => panic!("no plugin for {other}"),
    }
}

fn traces_dir(equipment_type: &str) -> PathBuf {
    Path::new(built::REPO_ROOT).join("plugins").join(equipment_type).join("traces")
}

fn run_trace(plugin: &mut dyn Evaluate, trace: &Path) -> (Vec<ChangeLine>, trial::TrialSummary) {
    let f = std::fs::File::open(trace).unwrap();
    let mut out = Vec::new();
    let summary =
        trial::run(plugin, std::io::BufReader::new(f), &TrialOptions::default(), &mut out).unwrap();
    let lines = String::from_utf8(out).unwrap();
    let changes = lines
        .lines()
        .filter(|l| !l.contains("\"error\""))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            ChangeLine {
                ts: v["ts"].as_str().unwrap().to_owned(),
                ts_ms: v["ts_ms"].as_i64().unwrap(),
                line: v["line"].as_u64().unwrap() as usize,
                device: v["device"].as_str().unwrap().to_owned(),
                code: v["code"].as_str().unwrap().to_owned(),
                active: v["active"].as_bool().unwrap(),
                severity: v["severity"].as_u64().map(|s| s as u8),
                summary: v["summary"].as_str().map(str::to_owned),
            }
        })
        .collect();
    (changes, summary)
}

#[test]
fn every_spec_fault_code_is_declared_by_its_plugin() {
    for (ty, codes) in SPEC_CODES {
        let p = load(wasm_for(ty));
        let d = p.description();
        assert_eq!(d.equipment_type, *ty);
        let declared: BTreeSet<&str> = d.faults.iter().map(|f| f.code.as_str()).collect();
        let spec: BTreeSet<&str> = codes.iter().copied().collect();
        assert_eq!(declared, spec, "{ty}: declared codes differ from telemetry.md");
        for f in &d.faults {
            assert_eq!(
                f.interrupts_service,
                INTERRUPTING.contains(&f.code.as_str()),
                "{ty}/{}: interrupts-service flag",
                f.code
            );
        }
        assert!(!d.inspections.is_empty(), "{ty}: no inspection plans");
        assert!(!d.warranty.is_empty(), "{ty}: no warranty defaults");
        assert_eq!(d.offline_timeout_s, 300, "{ty}: offline timeout (telemetry.md default 5 min)");
    }
}

#[test]
fn every_fault_trace_raises_its_code_through_the_host_as_natively() {
    for (ty, codes) in SPEC_CODES {
        let mut wasm = load(wasm_for(ty));
        for code in codes.iter().copied().chain(["normal"]) {
            let trace = traces_dir(ty).join(format!("{code}.jsonl"));
            assert!(trace.is_file(), "missing fixture {}", trace.display());
            let (host, summary) = run_trace(&mut wasm, &trace);
            let (native, _) = run_trace(native_for(ty).as_mut(), &trace);
            assert_eq!(host, native, "{ty}/{code}: host and native rule crate disagree");
            assert_eq!(summary.plugin_failures, 0, "{ty}/{code}");
            if code == "normal" {
                assert!(host.is_empty(), "{ty}: normal trace raised {host:?}");
                continue;
            }
            let raised = host.iter().find(|c| c.code == code && c.active);
            let raised =
                raised.unwrap_or_else(|| panic!("{ty}/{code}: never raised; changes {host:?}"));
            assert!((1..=4).contains(&raised.severity.unwrap()));
            assert!(
                !raised.summary.as_deref().unwrap_or("").is_empty(),
                "{ty}/{code}: empty summary"
            );
            let last = host.iter().rev().find(|c| c.code == code).unwrap();
            assert!(!last.active, "{ty}/{code}: still active at the end of the trace");
        }
    }
}

fn misbehaving(limits: Limits) -> WasmPlugin {
    load_with(built::MISBEHAVING, limits)
}

fn device(mode: &str) -> Device {
    Device {
        id: format!("dev-{mode}"),
        model: "M".into(),
        settings: format!(r#"{{"misbehave":"{mode}"}}"#),
    }
}

fn reading(value: f64, ts_ms: i64) -> Message {
    Message {
        kind: MessageKind::Telemetry,
        topic: "tend/s/d/telemetry".into(),
        payload: format!(r#"{{"ts":{ts_ms},"value":{value}}}"#).into_bytes(),
        ts_ms,
    }
}

fn good_call_works(p: &mut WasmPlugin) {
    let b = p.evaluate_batch(&device("none"), &[reading(11.0, 1)], None, 1).unwrap();
    let o = b.outcomes[0].as_ref().unwrap();
    assert_eq!(o.conditions[0].code, "bad_reading");
    assert!(o.conditions[0].active);
}

#[test]
fn a_looping_plugin_is_stopped_at_its_deadline_and_restarted() {
    let limits = Limits { call_deadline: Duration::from_millis(100), ..Limits::default() };
    let mut p = misbehaving(limits);
    let started = std::time::Instant::now();
    let err = p.evaluate_batch(&device("loop"), &[reading(1.0, 1)], None, 1).unwrap_err();
    assert!(
        matches!(&err, CallError::Deadline { plugin, device, deadline_ms: 100 } if plugin == "misbehaving" && device == "dev-loop"),
        "{err:?}"
    );
    // Generous bound: it must not run anywhere near forever.
    assert!(started.elapsed() < Duration::from_secs(10));
    good_call_works(&mut p);
    assert_eq!(p.stats().instantiations, 2);
    assert!(!p.is_quarantined());
}

#[test]
fn a_plugin_that_waits_on_a_timer_cannot_block_the_pipeline() {
    // The call runs on its own thread so that a hang fails the test instead of
    // hanging it; before the fix it never returned.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut p = misbehaving(Limits::default());
        let err = p.evaluate_batch(&device("sleep"), &[reading(1.0, 1)], None, 1).err();
        good_call_works(&mut p);
        let _ = tx.send(err);
    });
    let err = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a plugin waiting on a WASI timer blocked the calling thread");
    let err = err.expect("the wait must fail");
    assert!(
        matches!(&err, CallError::Trap { device, .. } if device == "dev-sleep")
            && err.to_string().contains("may not wait"),
        "{err:?}"
    );
}

#[test]
fn a_memory_hog_hits_the_limit_and_is_restarted() {
    let limits = Limits { memory_bytes: 16 << 20, ..Limits::default() };
    let mut p = misbehaving(limits);
    let err = p.evaluate_batch(&device("hog"), &[reading(1.0, 1)], None, 1).unwrap_err();
    assert!(matches!(&err, CallError::MemoryLimit { limit_mib: 16, .. }), "{err:?}");
    good_call_works(&mut p);
}

#[test]
fn a_panicking_plugin_is_reported_with_its_message() {
    let mut p = misbehaving(Limits::default());
    let err = p.evaluate_batch(&device("panic"), &[reading(1.0, 1)], None, 1).unwrap_err();
    match &err {
        CallError::Trap { plugin, device, reason } => {
            assert_eq!((plugin.as_str(), device.as_str()), ("misbehaving", "dev-panic"));
            assert!(reason.contains("panics on purpose"), "{reason}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(err.to_string().contains("dev-panic"));
    good_call_works(&mut p);
}

#[test]
fn garbage_output_is_rejected_not_trusted() {
    let mut p = misbehaving(Limits::default());
    let err = p.evaluate_batch(&device("garbage"), &[reading(1.0, 1)], None, 1).unwrap_err();
    match &err {
        CallError::BadOutput { reason, .. } => assert!(reason.contains("no_such_code"), "{reason}"),
        other => panic!("expected bad output, got {other:?}"),
    }
    good_call_works(&mut p);
}

#[test]
fn undecodable_state_and_payload_are_errors_not_traps() {
    let mut p = misbehaving(Limits::default());
    let b = p.evaluate_batch(&device("none"), &[reading(1.0, 1)], Some(b"not json"), 1).unwrap();
    assert!(matches!(&b.outcomes[0], Err(tend_agent::plugins::bindings::EvalError::BadState(_))));
    let bad = Message { payload: b"{\"ts\":1,\"value\":\"hot\"}".to_vec(), ..reading(0.0, 1) };
    let b = p.evaluate_batch(&device("none"), &[bad, reading(12.0, 2)], None, 2).unwrap();
    assert!(matches!(&b.outcomes[0], Err(tend_agent::plugins::bindings::EvalError::BadPayload(_))));
    assert!(b.outcomes[1].as_ref().unwrap().conditions[0].active);
    assert_eq!(p.stats().failures, 0);
}

#[test]
fn repeated_failures_within_the_window_quarantine_the_plugin() {
    let limits = Limits { max_failures: 3, failure_window_ms: 60_000, ..Limits::default() };
    // Spread out: never three within a minute.
    let mut p = misbehaving(limits);
    for now in [0, 40_000, 80_000, 120_000] {
        assert!(p.evaluate_batch(&device("panic"), &[reading(1.0, now)], None, now).is_err());
    }
    assert!(!p.is_quarantined());
    good_call_works(&mut p);
    // Close together, on three devices: quarantined at the third.
    let mut p = misbehaving(limits);
    for now in [0, 1_000, 2_000] {
        let d = Device { id: format!("dev-panic-{now}"), ..device("panic") };
        assert!(p.evaluate_batch(&d, &[reading(1.0, now)], None, now).unwrap_err().is_failure());
    }
    assert!(p.is_quarantined());
    let err = p.evaluate_batch(&device("none"), &[reading(11.0, 3_000)], None, 3_000).unwrap_err();
    assert!(matches!(err, CallError::Quarantined { failures: 3, .. }), "{err:?}");
}

/// Issue 15, finding 1: failures were counted per plugin, so one device whose
/// messages kept failing quarantined the plugin for every device of its type. A
/// device failing `max_failures` times within the window is now suspended on its own
/// (its calls refused for the window); the plugin keeps serving the others.
#[test]
fn one_device_failing_repeatedly_is_suspended_not_its_plugin() {
    let limits = Limits { max_failures: 3, failure_window_ms: 60_000, ..Limits::default() };
    let mut p = misbehaving(limits);
    for now in [0, 1_000, 2_000] {
        assert!(p.evaluate_batch(&device("panic"), &[reading(1.0, now)], None, now).is_err());
    }
    assert!(!p.is_quarantined(), "one device's failures quarantined the plugin");
    let err = p.evaluate_batch(&device("panic"), &[reading(1.0, 3_000)], None, 3_000).unwrap_err();
    assert!(
        matches!(&err, CallError::Suspended { device, failures: 3, .. } if device == "dev-panic"),
        "{err:?}"
    );
    assert!(!err.is_failure(), "a refused call is not another failure");
    assert_eq!(p.stats().failures, 3);
    good_call_works(&mut p);
    // After the window the device is called again.
    let b = p.evaluate_batch(&device("none"), &[reading(1.0, 70_000)], None, 70_000);
    assert!(b.is_ok());
    assert!(
        p.evaluate_batch(&device("panic"), &[reading(1.0, 70_000)], None, 70_000)
            .unwrap_err()
            .is_failure(),
        "suspension over: called (and failing) again"
    );
}

#[test]
fn a_pinned_checksum_that_differs_is_refused() {
    let engine = PluginEngine::new(None).unwrap();
    let src = PluginSource { path: built::AV_SYSTEM.into(), sha256: Some("00".repeat(32)) };
    match set::load_one(&engine, &src, Limits::default()) {
        Err(LoadError::Checksum { expected, actual, .. }) => {
            assert_eq!(expected, "00".repeat(32));
            assert_eq!(actual.len(), 64);
        }
        Err(other) => panic!("expected a checksum error, got {other}"),
        Ok(_) => panic!("expected a checksum error, got a plugin"),
    }
}

#[test]
fn a_file_that_is_not_a_component_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm but not really").unwrap();
    let engine = PluginEngine::new(None).unwrap();
    let errors = match tend_agent::plugins::PluginSet::load(
        engine,
        &PluginSource::from_dir(dir.path()).unwrap(),
        Limits::default(),
    ) {
        Err(e) => e,
        Ok(_) => panic!("a bogus plugin loaded"),
    };
    assert_eq!(errors.len(), 1);
    assert!(
        matches!(&errors[0], LoadError::Compile { path, .. } if path == &bogus),
        "{}",
        errors[0]
    );
    assert!(errors[0].to_string().contains("bogus.wasm"));
}

#[test]
fn two_plugins_for_one_equipment_type_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(built::AV_SYSTEM, dir.path().join("a.wasm")).unwrap();
    std::fs::copy(built::AV_SYSTEM, dir.path().join("b.wasm")).unwrap();
    let engine = PluginEngine::new(Some(cache_dir())).unwrap();
    let sources = PluginSource::from_dir(dir.path()).unwrap();
    let errors =
        tend_agent::plugins::PluginSet::load(engine, &sources, Limits::default()).err().unwrap();
    assert!(
        matches!(&errors[..], [LoadError::Duplicate { equipment_type, .. }] if equipment_type == "av-system")
    );
}

#[test]
fn compiled_plugins_are_cached_across_restarts() {
    let cache = tempfile::tempdir().unwrap();
    let src = PluginSource { path: built::DOOR_CONTROLLER.into(), sha256: None };
    let first = {
        let engine = PluginEngine::new(Some(cache.path().to_owned())).unwrap();
        set::load_one(&engine, &src, Limits::default()).unwrap().description().clone()
    };
    let cached: Vec<_> =
        std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].extension().is_some_and(|x| x == "cwasm"));
    let modified = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
    // A second "restart" loads the artifact instead of compiling (the file is not rewritten).
    let engine = PluginEngine::new(Some(cache.path().to_owned())).unwrap();
    let second = set::load_one(&engine, &src, Limits::default()).unwrap().description().clone();
    assert_eq!(first, second);
    assert_eq!(std::fs::metadata(&cached[0]).unwrap().modified().unwrap(), modified);
    // A corrupt artifact is recompiled, not trusted.
    std::fs::write(&cached[0], b"garbage").unwrap();
    let engine = PluginEngine::new(Some(cache.path().to_owned())).unwrap();
    assert_eq!(set::load_one(&engine, &src, Limits::default()).unwrap().description(), &first);
}

#[test]
fn a_cache_entry_swapped_for_another_plugins_is_recompiled_not_run() {
    let cache = tempfile::tempdir().unwrap();
    let entries = || -> BTreeSet<PathBuf> {
        std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).collect()
    };
    let load = |path: &str| {
        let engine = PluginEngine::new(Some(cache.path().to_owned())).unwrap();
        let src = PluginSource { path: path.into(), sha256: None };
        set::load_one(&engine, &src, Limits::default()).unwrap().description().clone()
    };
    assert_eq!(load(built::SOLAR_WATER_HEATER).equipment_type, "solar-water-heater");
    let solar = entries().into_iter().next().unwrap();
    assert_eq!(load(built::DOOR_CONTROLLER).equipment_type, "door-controller");
    let door = entries().into_iter().find(|p| *p != solar).unwrap();
    // Another plugin's artifact copied over the pinned plugin's cache entry.
    std::fs::copy(&door, &solar).unwrap();
    assert_eq!(
        load(built::SOLAR_WATER_HEATER).equipment_type,
        "solar-water-heater",
        "the cache entry ran another plugin's code"
    );
    // The entry was rewritten with the right artifact and loads from the cache again.
    assert_ne!(std::fs::read(&solar).unwrap(), std::fs::read(&door).unwrap());
    assert_eq!(load(built::SOLAR_WATER_HEATER).equipment_type, "solar-water-heater");
}

fn tend_bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_tend"))
}

#[test]
fn plugin_test_command_prints_condition_changes_as_json_lines() {
    let trace = traces_dir("solar-water-heater").join("overheat.jsonl");
    let out = tend_bin()
        .args(["plugin", "test", built::SOLAR_WATER_HEATER, "--device-type", "solar-water-heater"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let raised = lines.iter().find(|l| l["code"] == "overheat" && l["active"] == true).unwrap();
    assert_eq!(raised["severity"], 2);
    assert_eq!(raised["device"], "swh-1");
    assert!(raised["ts"].as_str().unwrap().starts_with("20"));
    assert!(lines.iter().any(|l| l["code"] == "overheat" && l["active"] == false));
}

#[test]
fn plugin_test_command_survives_a_bad_plugin_and_says_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    std::fs::write(
        &trace,
        "{\"topic\":\"tend/s/d1/telemetry\",\"payload\":{\"ts\":1000,\"value\":1}}\n\
         not a trace line\n\
         {\"topic\":\"tend/s/d1/telemetry\",\"payload\":{\"ts\":2000,\"value\":2}}\n",
    )
    .unwrap();
    let out = tend_bin()
        .args(["plugin", "test", built::MISBEHAVING, "--device-type", "misbehaving"])
        .args(["--settings", r#"{"misbehave":"panic"}"#])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let errors: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(errors.len(), 3, "{stdout}");
    assert!(errors[0]["error"].as_str().unwrap().contains("trapped on device d1"));
    assert!(errors[1]["error"].as_str().unwrap().contains("trace line 2"));
    let wrong_type = tend_bin()
        .args(["plugin", "test", built::MISBEHAVING, "--device-type", "av-system"])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(wrong_type.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong_type.stderr).contains("serves equipment type `misbehaving`")
    );
}

/// Issue 15, finding 8: plugin state was capped per device (1 MiB) with no total, so
/// a plugin whose state only grows held 1 MiB for every device of its type. A call
/// whose state would take the plugin's total beyond `plugins.state_budget_mib` now
/// fails like a trap (the device is suspended after repeated failures, the plugin
/// quarantined when it happens across devices); stored states count from the start,
/// and a state that does not grow is always accepted.
#[test]
fn a_plugin_hoarding_state_across_devices_is_held_to_its_budget() {
    let budget = 200 << 10;
    let limits = Limits {
        state_budget_bytes: budget,
        max_failures: 3,
        failure_window_ms: 60_000,
        ..Limits::default()
    };
    let mut p = misbehaving(limits);
    let hoarder = |n: u32| Device { id: format!("hoarder-{n}"), ..device("hoard") };
    // Three messages: 192 KiB of state, within the budget.
    let mut state = None;
    for now in 0..3 {
        let b = p.evaluate_batch(&hoarder(1), &[reading(1.0, now)], state.as_deref(), now);
        state = Some(b.unwrap().state);
    }
    let held = p.state_bytes();
    assert!(held > 3 * (64 << 10) && held <= budget, "{held}");
    // The fourth would pass it.
    let err = p.evaluate_batch(&hoarder(1), &[reading(1.0, 3)], state.as_deref(), 3).unwrap_err();
    assert!(err.is_failure(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("plugins.state_budget_mib") && text.contains("hoarder-1"), "{text}");
    assert_eq!(p.state_bytes(), held, "a refused state is not held");
    // A device whose state does not grow is still served.
    good_call_works(&mut p);
    // Other devices that grow their state fail too; across devices the plugin is
    // quarantined.
    for n in 2..=3 {
        let e = p.evaluate_batch(&hoarder(n), &[reading(1.0, 4)], None, 4).unwrap_err();
        assert!(e.is_failure(), "{e:?}");
    }
    assert!(p.is_quarantined(), "a plugin hoarding on three devices must be quarantined");

    // After a restart, the devices' stored states count from the first call.
    let mut p = misbehaving(limits);
    p.hold_state("hoarder-1", held);
    let e = p.evaluate_batch(&hoarder(2), &[reading(1.0, 0)], None, 0).unwrap_err();
    assert!(e.to_string().contains("plugins.state_budget_mib"), "{e}");
    // The stored device itself may go on with a state that does not grow.
    let b =
        p.evaluate_batch(&device("none"), &[reading(1.0, 1)], Some(br#"{"count":1}"#), 1).unwrap();
    assert!(b.state.len() < 32);
}
