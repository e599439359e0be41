//! Plugins written in Python: the SDK (plugins/sdk-python) and the door-controller
//! plugin written with it (plugins/door-controller-py), built from source by
//! tests/build.rs with componentize-py. The proof that a Python plugin is a plugin
//! like any other: through the same host, it and the Rust door-controller plugin give
//! identical outcomes (conditions with summaries, evidence and diagnoses, meters) and
//! identical states, message for message and batch for batch, over every fixture
//! trace and over simulated door traffic of several seeds; `tend plugin test` prints
//! the same lines; and an agent serving its door controllers with the Python plugin
//! replays a site's traffic into the same requests to the central service.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use tend_agent::ingest::event_time::event_time_ms;
use tend_agent::ingest::topic::split_device_kind;
use tend_agent::plugins::bindings::{BatchEvaluation, Device, Message};
use tend_agent::plugins::trial::{self, TrialOptions};
use tend_agent::plugins::{Evaluate, Limits, PluginEngine, PluginSource, WasmPlugin, set};
use tend_agent::trace::read_trace;
use tend_simulate::{Schedule, Simulator};
use tend_tests::plugins as built;
use tend_tests::site::test_site_with;

/// Seeds of the simulated door traffic (a failing seed is named in the message).
const SEEDS: [u64; 3] = [1, 2, 3];
/// Hours of simulated traffic per seed: the demo's door faults repeat every two.
const SIM_HOURS: i64 = 8;

fn load(path: &str) -> WasmPlugin {
    let cache = Path::new(built::REPO_ROOT).join("target").join("test-plugin-cache");
    let engine = PluginEngine::new(Some(cache)).unwrap();
    let src = PluginSource { path: path.into(), sha256: None };
    set::load_one(&engine, &src, Limits::default())
        .unwrap_or_else(|e| panic!("loading {path}: {e}"))
}

fn python() -> WasmPlugin {
    load(built::DOOR_CONTROLLER_PY)
}

fn rust() -> WasmPlugin {
    load(built::DOOR_CONTROLLER)
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(built::REPO_ROOT).join("plugins/door-controller/traces");
    let mut traces: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    traces.sort();
    assert!(traces.len() >= 8, "{traces:?}");
    traces
}

/// A trace's messages as the host hands them over: (line, device id, message).
fn messages(trace: &str) -> Vec<(usize, String, Message)> {
    let mut out = Vec::new();
    let mut watermark = 0;
    for item in read_trace(BufReader::new(trace.as_bytes())) {
        let (line, t) = item.unwrap();
        let (device, kind) = split_device_kind(&t.topic).unwrap();
        let payload = t.payload_bytes();
        let ts_ms = match kind {
            tend_agent::ingest::topic::MessageKind::Status => watermark,
            _ => event_time_ms(&payload).unwrap(),
        };
        watermark = watermark.max(ts_ms);
        let message = Message { kind: kind.into(), topic: t.topic.clone(), payload, ts_ms };
        out.push((line, device.to_owned(), message));
    }
    out
}

fn show(b: &BatchEvaluation) -> String {
    serde_json::to_string_pretty(b).unwrap()
}

/// Both plugins over `trace`, one message per call, each device's state threaded
/// through: every call's outcomes and state must be equal.
fn compare_single(what: &str, trace: &str, settings: &HashMap<String, String>) -> usize {
    let (mut py, mut rs) = (python(), rust());
    let mut states: HashMap<String, (Vec<u8>, Vec<u8>)> = HashMap::new();
    let msgs = messages(trace);
    for (line, id, m) in &msgs {
        let device = door(id, settings);
        let (sp, sr) = states.get(id).cloned().unzip();
        let a = py.evaluate_batch(&device, std::slice::from_ref(m), sp.as_deref(), m.ts_ms);
        let b = rs.evaluate_batch(&device, std::slice::from_ref(m), sr.as_deref(), m.ts_ms);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(
            a == b,
            "{what}: line {line} ({}): Python and Rust differ\npython: {}\nrust: {}",
            String::from_utf8_lossy(&m.payload),
            show(&a),
            show(&b)
        );
        states.insert(id.clone(), (a.state, b.state));
    }
    msgs.len()
}

/// Both plugins over `trace` in batches of up to 64 messages of one device, as the
/// pipeline calls them.
fn compare_batched(what: &str, trace: &str, settings: &HashMap<String, String>) {
    let (mut py, mut rs) = (python(), rust());
    let mut per_device: Vec<(String, Vec<Message>)> = Vec::new();
    for (_, id, m) in messages(trace) {
        match per_device.iter_mut().find(|(d, _)| *d == id) {
            Some((_, ms)) => ms.push(m),
            None => per_device.push((id, vec![m])),
        }
    }
    for (id, ms) in &per_device {
        let device = door(id, settings);
        let (mut sp, mut sr): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
        for (i, chunk) in ms.chunks(64).enumerate() {
            let now = chunk[chunk.len() - 1].ts_ms;
            let a = py.evaluate_batch(&device, chunk, sp.as_deref(), now).unwrap();
            let b = rs.evaluate_batch(&device, chunk, sr.as_deref(), now).unwrap();
            assert!(
                a == b,
                "{what}: {id}: batch {i} differs\npython: {}\nrust: {}",
                show(&a),
                show(&b)
            );
            (sp, sr) = (Some(a.state), Some(b.state));
        }
    }
}

/// `tend plugin test`'s output for both plugins: identical, line for line.
fn compare_trial(what: &str, trace: &str, settings: &str) -> usize {
    let opts = TrialOptions { settings: settings.to_owned(), model: "FD-2".into() };
    let run = |p: &mut dyn Evaluate| {
        let mut out = Vec::new();
        let summary = trial::run(p, BufReader::new(trace.as_bytes()), &opts, &mut out).unwrap();
        assert_eq!(summary.plugin_failures, 0, "{what}");
        String::from_utf8(out).unwrap()
    };
    let (a, b) = (run(&mut python()), run(&mut rust()));
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "{what}: `tend plugin test` line {} differs", i + 1);
    }
    assert_eq!(a.len(), b.len(), "{what}: `tend plugin test` line counts differ");
    a.len()
}

fn door(id: &str, settings: &HashMap<String, String>) -> Device {
    Device {
        id: id.to_owned(),
        model: "FD-2".into(),
        settings: settings.get(id).cloned().unwrap_or_else(|| "{}".into()),
    }
}

#[test]
fn python_sdk_and_door_plugin_type_check_and_pass_their_unit_tests() {
    let root = Path::new(built::REPO_ROOT);
    let out = Command::new(root.join("plugins/sdk-python/tend-py"))
        .arg("check")
        .arg(root.join("plugins/door-controller-py"))
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tend-py check failed:\n{text}");
    assert!(text.contains("Success: no issues found"), "{text}");
    // The component imports the contract's types and nothing of WASI.
    let out = Command::new(root.join("plugins/sdk-python/tend-py"))
        .args(["imports", built::DOOR_CONTROLLER_PY])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let imports = String::from_utf8(out.stdout).unwrap();
    assert!(imports.contains("tend:plugin/types@0.1.0"), "{imports}");
    assert!(!imports.contains("wasi:"), "{imports}");
}

#[test]
fn python_door_controller_describes_itself_as_the_rust_one() {
    assert_eq!(python().description(), rust().description());
}

#[test]
fn python_and_rust_door_controllers_agree_on_every_fixture_trace() {
    let none = HashMap::new();
    for trace in fixtures() {
        let name = trace.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&trace).unwrap();
        compare_single(&name, &text, &none);
        compare_batched(&name, &text, &none);
        compare_trial(&name, &text, "");
        // Thresholds from settings take the other branches (fire door, custom limits).
        let settings = r#"{"fire_door":true,"battery_low_v":13.25,"lock_delay_s":2.5,"reader_denied_count":3,"held_open_fire_s":20}"#;
        let per_device = HashMap::from([("door-1".to_owned(), settings.to_owned())]);
        compare_single(&format!("{name} with settings"), &text, &per_device);
        compare_trial(&format!("{name} with settings"), &text, settings);
    }
}

/// Simulated door traffic: four doors (one a fire door, one with its own thresholds)
/// with the demo's door faults repeating every two hours.
fn simulated(seed: u64) -> (String, HashMap<String, String>) {
    simulated_hours(seed, SIM_HOURS)
}

fn simulated_hours(seed: u64, hours: i64) -> (String, HashMap<String, String>) {
    let devices = [
        ("door-a", ""),
        ("door-b", "fire_door = true"),
        ("door-c", "held_open_s = 120\nbattery_low_v = 13.2\nreader_denied_count = 4"),
        ("door-d", "lock_delay_s = 4\nforced_grace_s = 3"),
    ];
    let mut site = String::from("site = \"py-site\"\ntimezone = \"Asia/Shanghai\"\n");
    for (id, settings) in devices {
        site.push_str(&format!(
            "\n[[device]]\nid = \"{id}\"\ntype = \"door-controller\"\nmodel = \"FD-2\"\n\
             serial = \"{id}\"\nlocation = \"L1\"\ncommissioned = \"2026-01-01\"\n"
        ));
        if !settings.is_empty() {
            site.push_str(&format!("[device.settings]\n{settings}\n"));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(&path, site).unwrap();
    let inventory = tend_agent::config::Inventory::load(&path).unwrap();
    let settings = inventory.devices.iter().map(|d| (d.id.clone(), d.settings_json())).collect();
    let mut schedule = Schedule::demo(&inventory);
    schedule.repeat_every_ms = Some(2 * 3_600_000);
    let start = 1_795_395_600_000; // 2026-11-23 09:00 +08:00, a Monday
    let mut sim = Simulator::new(&inventory, &schedule, seed, start).unwrap();
    let mut trace = String::new();
    for hour in 1..=hours {
        for p in sim.advance(start + hour * 3_600_000) {
            trace.push_str(&p.trace_line());
            trace.push('\n');
        }
    }
    (trace, settings)
}

#[test]
fn python_and_rust_door_controllers_agree_on_simulated_traffic() {
    for seed in SEEDS {
        let (trace, settings) = simulated(seed);
        let what = format!("seed {seed}");
        let n = compare_single(&what, &trace, &settings);
        assert!(n > 3_000, "{what}: only {n} messages");
        compare_batched(&what, &trace, &settings);
        let changes = compare_trial(&what, &trace, "");
        assert!(changes > 20, "{what}: only {changes} condition changes");
    }
}

/// An agent configured to serve its door controllers with the Python plugin (its
/// component in the plugin directory in place of the Rust one) replays a site's
/// traffic into exactly the requests it sends with the Rust plugin.
#[test]
fn an_agent_serving_doors_with_the_python_plugin_replays_identically() {
    let site = test_site_with("http://127.0.0.1:9", "mqtt://127.0.0.1:1", "", "").unwrap();
    let config = tend_agent::config::Config::load(&site.config).unwrap();
    let mut schedule = Schedule::demo(&config.inventory);
    schedule.repeat_every_ms = Some(6 * 3_600_000);
    let start = 1_795_395_600_000;
    let mut sim = Simulator::new(&config.inventory, &schedule, 7, start).unwrap();
    let mut trace = String::new();
    for p in sim.advance(start + 8 * 3_600_000) {
        trace.push_str(&p.trace_line());
        trace.push('\n');
    }
    let replay = |config: &tend_agent::config::Config| {
        let mut out = Vec::new();
        tend_agent::app::replay(config, BufReader::new(trace.as_bytes()), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    let with_rust = replay(&config);
    let door = config.plugins.dir.join("door-controller.wasm");
    std::fs::copy(built::DOOR_CONTROLLER_PY, &door).unwrap();
    let with_python = replay(&config);
    assert!(with_rust.contains("door-1"), "no door ticket in the replay:\n{with_rust}");
    let (a, b): (Vec<&str>, Vec<&str>) =
        (with_python.lines().collect(), with_rust.lines().collect());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "replay request {} differs", i + 1);
    }
    assert_eq!(a.len(), b.len());
}

/// `tend plugin new` for each language: the generated project's build.sh (unit tests,
/// component, `tend plugin test` over its trace against the expected changes) passes
/// as generated.
fn scaffold_builds(lang: &str, extra_env: &[(&str, PathBuf)]) {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join(format!("boiler-{lang}"));
    let tend = env!("CARGO_BIN_EXE_tend");
    let out = Command::new(tend)
        .args(["plugin", "new"])
        .arg(&project)
        .args(["--type", "boiler", "--lang", lang, "--sdk-root", built::REPO_ROOT])
        .output()
        .unwrap();
    assert!(out.status.success(), "tend plugin new: {}", String::from_utf8_lossy(&out.stderr));
    for f in ["build.sh", "traces/over_limit.jsonl", "traces/over_limit.expected.jsonl"] {
        assert!(project.join(f).is_file(), "{lang}: no {f}");
    }
    let mut build = Command::new(project.join("build.sh"));
    build.env("TEND", tend);
    for (k, v) in extra_env {
        build.env(k, v);
    }
    let out = build.output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{lang}: the generated build.sh failed:\n{text}");
    assert!(text.contains("trace check passed"), "{text}");
    // A second `new` over the same directory is refused, nothing overwritten.
    let again = Command::new(tend)
        .args(["plugin", "new"])
        .arg(&project)
        .args(["--type", "boiler", "--lang", lang, "--sdk-root", built::REPO_ROOT])
        .output()
        .unwrap();
    assert!(!again.status.success());
}

#[test]
fn tend_plugin_new_python_project_builds_and_passes_its_trace() {
    scaffold_builds("python", &[]);
}

#[test]
fn tend_plugin_new_rust_project_builds_and_passes_its_trace() {
    // Outside the workspace, with a path dependency on plugins/sdk; a target dir of
    // its own under target/ keeps its dependencies built across runs.
    let target = Path::new(built::REPO_ROOT).join("target").join("scaffold-rust");
    scaffold_builds("rust", &[("CARGO_TARGET_DIR", target)]);
}

/// Per-message cost of the door controller in Python and in Rust through the host,
/// component size, first compile and cached load. Not part of the suite:
///
/// ```sh
/// cargo test --release -p tend --test integration python::bench -- --ignored --nocapture
/// ```
#[test]
#[ignore]
fn bench_python_vs_rust_door_controller() {
    use std::time::{Duration, Instant};
    let (trace, settings) = simulated_hours(1, 24);
    let msgs = messages(&trace);
    let n = msgs.len();
    println!("door controller, {n} simulated messages of 4 doors (24 h, seed 1)");
    println!(
        "{:<8} {:>10} {:>14} {:>14} {:>13} {:>13}",
        "plugin", "size", "single us/msg", "batch64 us/msg", "compile ms", "cached ms"
    );
    for (name, path) in [("rust", built::DOOR_CONTROLLER), ("python", built::DOOR_CONTROLLER_PY)] {
        let size = std::fs::metadata(path).unwrap().len();
        // First compile (no cache) and a load from a warm cache (what a restart does).
        let cache = tempfile::tempdir().unwrap();
        let src = PluginSource { path: path.into(), sha256: None };
        let t = Instant::now();
        let engine = PluginEngine::new(Some(cache.path().to_owned())).unwrap();
        set::load_one(&engine, &src, Limits::default()).unwrap();
        let compile = t.elapsed();
        let t = Instant::now();
        let engine = PluginEngine::new(Some(cache.path().to_owned())).unwrap();
        let mut plugin = set::load_one(&engine, &src, Limits::default()).unwrap();
        let cached = t.elapsed();
        let single = best_of(3, || {
            let mut states: HashMap<String, Vec<u8>> = HashMap::new();
            let t = Instant::now();
            for (_, id, m) in &msgs {
                let s = states.get(id).map(Vec::as_slice);
                let b = plugin
                    .evaluate_batch(&door(id, &settings), std::slice::from_ref(m), s, m.ts_ms)
                    .unwrap();
                states.insert(id.clone(), b.state);
            }
            t.elapsed()
        });
        let batched = best_of(3, || {
            let mut total = Duration::ZERO;
            let mut per_device: HashMap<&str, Vec<Message>> = HashMap::new();
            for (_, id, m) in &msgs {
                per_device.entry(id).or_default().push(m.clone());
            }
            for (id, ms) in &per_device {
                let device = door(id, &settings);
                let mut state: Option<Vec<u8>> = None;
                for chunk in ms.chunks(64) {
                    let t = Instant::now();
                    let now = chunk[chunk.len() - 1].ts_ms;
                    let b = plugin.evaluate_batch(&device, chunk, state.as_deref(), now).unwrap();
                    total += t.elapsed();
                    state = Some(b.state);
                }
            }
            total
        });
        let per_msg = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        println!(
            "{name:<8} {:>8.1}MB {:>14.2} {:>14.2} {:>13.0} {:>13.0}",
            size as f64 / 1e6,
            per_msg(single),
            per_msg(batched),
            compile.as_secs_f64() * 1e3,
            cached.as_secs_f64() * 1e3
        );
    }
}

fn best_of(runs: usize, mut f: impl FnMut() -> std::time::Duration) -> std::time::Duration {
    (0..runs).map(|_| f()).min().unwrap()
}

/// A Python plugin built without `--stub-wasi` imports Python's WASI interfaces
/// (files, sockets, ...). The host refuses it at load, naming what it imports and
/// the flag that builds it right, and `tend plugin describe` says the same.
#[test]
fn a_python_plugin_built_without_stub_wasi_is_refused_naming_its_imports() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("door-controller-nostub.wasm");
    let root = Path::new(built::REPO_ROOT);
    let status = Command::new(root.join("plugins/sdk-python/tend-py"))
        .arg("component")
        .arg(root.join("plugins/door-controller-py"))
        .arg("-o")
        .arg(&wasm)
        .arg("--no-stub-wasi")
        .status()
        .unwrap();
    assert!(status.success(), "tend-py component --no-stub-wasi failed: {status}");
    let cache = root.join("target").join("test-plugin-cache");
    let engine = PluginEngine::new(Some(cache)).unwrap();
    let src = PluginSource { path: wasm.clone(), sha256: None };
    let err = match set::load_one(&engine, &src, Limits::default()) {
        Ok(_) => panic!("a plugin importing wasi:filesystem was loaded"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("wasi:filesystem/"), "{err}");
    assert!(err.contains("--stub-wasi"), "{err}");
    assert!(err.contains(&wasm.display().to_string()), "{err}");
    // What a vendor sees from the command line.
    let out = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["plugin", "describe"])
        .arg(&wasm)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wasi:filesystem/") && stderr.contains("--stub-wasi"), "{stderr}");
    // The same plugin built right loads.
    python();
}

/// Every door-controller fixture trace on a door of its own, as (topic, payload).
fn door_fleet() -> (Vec<(String, Vec<u8>)>, String) {
    let mut messages = Vec::new();
    let mut devices = String::new();
    for (i, trace) in fixtures().iter().enumerate() {
        let device = format!("door-{}", i + 1);
        if i > 0 {
            devices.push_str(&format!(
                "\n[[device]]\nid = \"{device}\"\ntype = \"door-controller\"\nmodel = \"M\"\n\
                 serial = \"d{i}\"\nlocation = \"Door {i}\"\ncommissioned = \"2026-01-01\"\n"
            ));
        }
        let text = std::fs::read_to_string(trace).unwrap();
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let l: tend_agent::trace::TraceLine = serde_json::from_str(l).unwrap();
            let topic = l.topic.replacen("/door-1/", &format!("/{device}/"), 1);
            messages.push((topic, l.payload_bytes()));
        }
    }
    (messages, devices)
}

/// `tend run` against a real broker and central service with the door controllers
/// served by `plugin`: the tickets the central service holds once every published
/// message is processed and every request delivered, as comparable JSON (what the
/// agent sent: ticket, events with their keys, status; not the service's numbers or
/// receive times).
async fn live_door_tickets(plugin: &str) -> Vec<serde_json::Value> {
    use super::harness::{Central, Site, WAIT, publish, status, terminate};
    use std::time::{Duration, Instant};
    let mosquitto = tend_tests::mosquitto::Mosquitto::start();
    let central = Central::start_temp().await.unwrap();
    let (messages, devices) = door_fleet();
    let site = Site::with(mosquitto.port, &central.url, "", &devices);
    let door = tend_agent::config::Config::load(&site.config())
        .unwrap()
        .plugins
        .dir
        .join("door-controller.wasm");
    std::fs::copy(plugin, &door).unwrap();
    let mut agent = site.start_agent(1);
    site.wait_subscribed().await;
    let api = site.api_url();
    publish(mosquitto.port, "doors", &messages).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let s = status(&api).await;
        if s["pipeline"]["messages"] == messages.len() && s["outbox"] == 0 {
            assert!(
                s["plugins"].as_array().unwrap().iter().all(|p| p["quarantined"] == false),
                "{s:#}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "agent never caught up: {s:#}\n{}", site.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    terminate(&mut agent);
    let mut tickets: Vec<serde_json::Value> = central
        .tickets()
        .await
        .into_iter()
        .map(|t| {
            let events: Vec<serde_json::Value> = t
                .events
                .iter()
                .map(|e| serde_json::json!({"key": e.idempotency_key, "event": e.event}))
                .collect();
            serde_json::json!({
                "key": t.idempotency_key,
                "status": t.status,
                "ticket": t.ticket,
                "events": events,
            })
        })
        .collect();
    tickets.sort_by_key(|t| t["ticket"]["ticket_id"].as_str().unwrap_or_default().to_owned());
    tickets
}

/// `tend run` serving the doors with the Python plugin gets the same tickets, events
/// and descriptions at the central service as with the Rust plugin, for the same
/// traffic published to a real broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tend_run_with_the_python_door_plugin_sends_the_rust_plugins_tickets() {
    let rust = live_door_tickets(built::DOOR_CONTROLLER).await;
    let python = live_door_tickets(built::DOOR_CONTROLLER_PY).await;
    // Every fault trace opens a ticket (normal.jsonl opens none).
    assert!(rust.len() >= fixtures().len() - 1, "{rust:#?}");
    for (r, p) in rust.iter().zip(&python) {
        assert_eq!(p, r, "the Python plugin's ticket differs from the Rust plugin's");
    }
    assert_eq!(python.len(), rust.len());
}
