//! The agent's store under a long replay: the load that made sled 0.34 deadlock
//! (spacejam/sled#1412) must finish, every run, with the same output.

use std::io::BufReader;
use std::sync::mpsc;
use std::time::Duration;

use tend_simulate::{Schedule, Simulator};
use tend_tests::site::test_site_with;

/// 22 more devices beside the test site's three: 25 in all, of the three types.
fn more_devices() -> String {
    let mut out = String::new();
    for i in 0..22 {
        let (ty, model) = match i % 3 {
            0 => ("solar-water-heater", "SWH-300"),
            1 => ("door-controller", "FD-2"),
            _ => ("av-system", "BGM-4Z"),
        };
        out.push_str(&format!(
            "\n[[device]]\nid = \"dev-{i:02}\"\ntype = \"{ty}\"\nmodel = \"{model}\"\n\
             serial = \"X{i}\"\nlocation = \"Floor {i}\"\ncommissioned = \"2026-01-01\"\n"
        ));
    }
    out
}

/// Two days of the site's simulated telemetry (with the demo's faults, repeating), as
/// trace lines.
fn two_days(config: &tend_agent::config::Config, seed: u64) -> String {
    let inventory = &config.inventory;
    let mut schedule = Schedule::demo(inventory);
    schedule.repeat_every_ms = Some(6 * 3_600_000);
    let start = 1_784_088_000_000; // 2026-07-15
    let mut sim = Simulator::new(inventory, &schedule, seed, start).unwrap();
    let mut trace = String::new();
    for hour in 1..=48 {
        for p in sim.advance(start + hour * 3_600_000) {
            trace.push_str(&p.trace_line());
            trace.push('\n');
        }
    }
    trace
}

/// sled 0.34 hung for good (no CPU, no output) in most replays of a trace like this
/// one: its I/O threads and the pipeline waited on each other's locks. Each run here
/// must finish within a generous deadline and print the same bytes.
#[test]
fn a_long_replay_never_hangs_in_the_store() {
    let site =
        test_site_with("http://127.0.0.1:9", "mqtt://127.0.0.1:1", "", &more_devices()).unwrap();
    let config = tend_agent::config::Config::load(&site.config).unwrap();
    assert_eq!(config.inventory.devices.len(), 25);
    // Two seeds, each replayed twice; the four runs go at once (two cores, and the
    // store's own threads), each with its own deadline.
    let mut runs = Vec::new();
    for seed in [1, 2] {
        let trace = std::sync::Arc::new(two_days(&config, seed));
        let lines = trace.lines().count();
        assert!(lines > 50_000, "{lines} lines");
        for run in 0..2 {
            let (tx, rx) = mpsc::channel();
            let (config, trace) = (config.clone(), trace.clone());
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let r =
                    tend_agent::app::replay(&config, BufReader::new(trace.as_bytes()), &mut out);
                let _ = tx.send(r.map(|s| (s, out)));
            });
            runs.push((seed, run, lines, rx));
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut outputs: Vec<(u64, Vec<u8>)> = Vec::new();
    for (seed, run, lines, rx) in runs {
        // A hang leaves its thread behind and fails the test.
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let (summary, out) = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("replay {run} of seed {seed} hung ({lines} lines)"))
            .unwrap();
        assert_eq!(summary.lines, lines as u64);
        assert!(summary.requests > 0, "the demo's faults open tickets");
        outputs.push((seed, out));
    }
    for seed in [1, 2] {
        let same: Vec<&Vec<u8>> =
            outputs.iter().filter(|(s, _)| *s == seed).map(|(_, o)| o).collect();
        assert!(same[0] == same[1], "the replays of seed {seed} printed other bytes");
    }
}
