//! Fault injection against the real `tend run`: the agent killed -9 over and over
//! under load, a central service that fails, stalls or crawls, a broker killed -9,
//! a store on a full or read-only disk, and plugins that trap, loop or hog memory
//! while the other devices' tickets keep flowing. Every test ends by counting
//! tickets and events at the central service: exactly the expected set, each once.
//!
//! Randomness is seeded (printed; `TEND_FAULT_SEED=N` replays a run); every wait polls a
//! condition with a deadline.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tend_tests::mosquitto::Mosquitto;

use super::harness::{
    Agent, Central, DeviceTrace, Site, WAIT, device_traces, expect_tickets, extra_devices,
    interleave, publish, status, wait_exit,
};

/// The seed of a test's randomness: `TEND_FAULT_SEED` or a fixed one, so a failure
/// can be replayed (printed: a failing test shows it).
fn seed(fixed: u64) -> u64 {
    let seed = std::env::var("TEND_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(fixed);
    eprintln!("TEND_FAULT_SEED={seed}");
    seed
}

/// Polls `f` every 20 ms until it holds; panics with `what` and the logs after [`WAIT`].
async fn until<F, Fut>(site: &Site, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: never happened\n{}", site.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status API of the agent started last counts `n` processed messages.
async fn processed(api: &str, n: usize) -> bool {
    status(api).await["pipeline"]["messages"].as_u64().is_some_and(|m| m >= n as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_agent_killed_9_repeatedly_under_load_loses_and_duplicates_nothing() {
    let mut rng = StdRng::seed_from_u64(seed(6));
    let mosquitto = Mosquitto::start();
    let central = Central::start_temp().await.unwrap();
    let site = Site::with(mosquitto.port, &central.url, "", &extra_devices(4));
    let traces = device_traces(4);
    let messages = interleave(&traces);
    let mut agent = Agent(Some(site.start_agent(1)));
    // Once subscribed, the agent's persistent session holds what it misses.
    site.wait_subscribed().await;
    // 12 devices publish steadily (about 6 s) while the agent is killed and restarted.
    let port = mosquitto.port;
    let publisher = tokio::spawn(async move {
        for (i, chunk) in messages.chunks(8).enumerate() {
            publish(port, &format!("load-{i}"), chunk).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut n = 1;
    for _ in 0..8 {
        if rng.random_bool(0.2) {
            // While it starts (plugins loading, store opening, connecting).
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..300))).await;
        } else {
            // While it works: anywhere in or between batches.
            site.wait_subscribed().await;
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        }
        agent.kill_9();
        n += 1;
        agent.0 = Some(site.start_agent(n));
    }
    tokio::time::timeout(WAIT, publisher).await.expect("publisher finished").unwrap();
    expect_tickets(&central, &site, &traces).await;
    agent.stop(&site);
}

/// One central-service fault for a period while the three fixture traces are
/// published; afterwards everything is delivered once, in order, nothing dead.
/// Returns the final status.
async fn central_fault(
    site_setting: Option<&str>,
    inject: impl FnOnce(&tend_central::CentralControl),
) -> serde_json::Value {
    let mosquitto = Mosquitto::start();
    let central = Central::start_temp().await.unwrap();
    let site = Site::new(mosquitto.port, &central.url);
    if let Some(line) = site_setting {
        site.setting("central", line);
    }
    let mut agent = Agent(Some(site.start_agent(1)));
    site.wait_subscribed().await;
    let api = site.api_url();
    let before = central.control.requests();
    inject(&central.control);
    let traces = device_traces(1);
    publish(mosquitto.port, "publisher", &interleave(&traces)).await;
    // The agent did try during the fault.
    until(&site, "a request during the fault", || async {
        central.control.requests() > before + 1
    })
    .await;
    expect_tickets(&central, &site, &traces).await;
    let s = status(&api).await;
    assert_eq!(s["outbox"], 0, "{s:#}");
    assert!(s["dead_letters"].as_array().unwrap().is_empty(), "nothing dropped: {s:#}");
    assert_eq!(s["dispatcher"]["sent"], 7, "3 tickets, 4 events: {s:#}");
    agent.stop(&site);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_central_503_without_retry_after_then_delivers_everything() {
    let s = central_fault(None, |c| {
        c.fail_for(Duration::from_secs(3), StatusCode::SERVICE_UNAVAILABLE, None);
    })
    .await;
    assert!(s["dispatcher"]["retried"].as_u64().unwrap() >= 1, "{s:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_central_503_with_retry_after_then_delivers_everything() {
    let s = central_fault(None, |c| {
        c.fail_for(
            Duration::from_secs(3),
            StatusCode::SERVICE_UNAVAILABLE,
            Some(Duration::from_secs(2)),
        );
    })
    .await;
    // The first attempts of the three tickets may fail in parallel (one lane per
    // ticket); then one lane probes. Backoff alone (100 ms doubling to 1 s) would
    // probe 5 or more times in 3 s; honouring Retry-After: 2 it probes at most twice.
    let retried = s["dispatcher"]["retried"].as_u64().unwrap();
    assert!((1..=5).contains(&retried), "{s:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_central_answers_too_late_then_delivers_each_once() {
    // Requests are handled but answered after the agent gave up: the retries carry
    // the same idempotency keys and must not create anything twice.
    let s = central_fault(Some("timeout = \"300ms\""), |c| {
        c.delay_for(Duration::from_secs(3), Duration::from_millis(800));
    })
    .await;
    assert!(s["dispatcher"]["retried"].as_u64().unwrap() >= 1, "{s:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_central_slow_delivers_everything_in_order() {
    let s = central_fault(None, |c| {
        c.delay_for(Duration::from_secs(3), Duration::from_millis(300));
    })
    .await;
    assert_eq!(s["dispatcher"]["retried"], 0, "slow is not failed: {s:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_broker_killed_9_while_the_agent_drains_loses_nothing() {
    let mut rng = StdRng::seed_from_u64(seed(9));
    // A site broker that keeps sessions on disk; it saves on shutdown only (no
    // autosave), so after a kill -9 it comes back with the state it had saved: the
    // agent gets again what it already processed and must recognise all of it.
    let mut mosquitto = Mosquitto::start_with(
        |dir, _| {
            format!(
                "persistence true\npersistence_location {}/\nautosave_interval 3600\n",
                dir.display()
            )
        },
        0,
    );
    let central = Central::start_temp().await.unwrap();
    let site = Site::with(mosquitto.port, &central.url, "", &extra_devices(2));
    let traces = device_traces(2);
    let first: Vec<DeviceTrace> = traces
        .iter()
        .map(|t| DeviceTrace { messages: t.messages[..t.messages.len() / 2].to_vec(), ..t.clone() })
        .collect();
    let second: Vec<DeviceTrace> = traces
        .iter()
        .map(|t| DeviceTrace { messages: t.messages[t.messages.len() / 2..].to_vec(), ..t.clone() })
        .collect();
    // The agent's session exists; a backlog waits in it, saved by the broker.
    let mut agent = Agent(Some(site.start_agent(1)));
    site.wait_subscribed().await;
    agent.stop(&site);
    let backlog = interleave(&first);
    publish(mosquitto.port, "backlog", &backlog).await;
    mosquitto.stop();
    mosquitto.launch();
    // The agent drains the backlog; at a random point the broker is killed -9.
    agent.0 = Some(site.start_agent(2));
    site.wait_subscribed().await;
    let api = site.api_url();
    let at = rng.random_range(1..backlog.len() / 2);
    until(&site, "the agent draining", || processed(&api, at)).await;
    mosquitto.kill();
    mosquitto.launch();
    let live = interleave(&second);
    publish(mosquitto.port, "live", &live).await;
    expect_tickets(&central, &site, &traces).await;
    // Every message processed exactly once: what came again was recognised.
    let published = (backlog.len() + live.len()) as u64;
    until(&site, "every message seen", || async {
        let s = status(&api).await;
        let p = &s["pipeline"];
        p["messages"].as_u64().unwrap() - p["duplicates"].as_u64().unwrap() >= published
    })
    .await;
    let s = status(&api).await;
    let p = &s["pipeline"];
    let once = p["messages"].as_u64().unwrap() - p["duplicates"].as_u64().unwrap();
    assert_eq!(once, published, "{s:#}");
    // The broker came back with its saved state: it delivered again what the agent
    // had processed before the kill.
    assert!(p["duplicates"].as_u64().unwrap() >= at as u64, "{s:#}");
    assert!(s["mqtt"]["connects"].as_u64().unwrap() >= 2, "reconnected: {s:#}");
    agent.stop(&site);
}

/// The agent under `sh` with SIGXFSZ ignored (the way a full disk behaves: the
/// write fails, the process lives on), its log copied by a thread (a pipe is not
/// subject to the file size limit the test puts on the agent).
fn start_agent_piped(site: &Site, n: u32) -> Child {
    let mut inner = site.agent_command(n);
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg("trap '' XFSZ; exec \"$0\" \"$@\"").arg(inner.get_program());
    cmd.args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    // The log file `agent_command` opened is replaced by a pipe copied into it.
    let _ = inner.stderr(Stdio::null());
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let log = site.log_path(n);
    std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new().append(true).create(true).open(log).unwrap();
        let mut buf = [0u8; 8192];
        while let Ok(k) = pipe.read(&mut buf) {
            if k == 0 {
                break;
            }
            let _ = std::io::Write::write_all(&mut file, &buf[..k]);
        }
    });
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_store_on_a_full_disk_stops_with_the_path_and_acks_nothing_uncommitted() {
    let mosquitto = Mosquitto::start();
    let central = Central::start_temp().await.unwrap();
    let site = Site::new(mosquitto.port, &central.url);
    let traces = device_traces(1);
    let first: Vec<_> = traces
        .iter()
        .map(|t| DeviceTrace { messages: t.messages[..20].to_vec(), ..t.clone() })
        .collect();
    let second: Vec<_> = traces
        .iter()
        .map(|t| DeviceTrace { messages: t.messages[20..].to_vec(), ..t.clone() })
        .collect();
    let mut agent = Agent(Some(start_agent_piped(&site, 1)));
    site.wait_subscribed().await;
    let api = site.api_url();
    let head = interleave(&first);
    publish(mosquitto.port, "head", &head).await;
    until(&site, "the first messages processed", || processed(&api, head.len())).await;
    // The disk fills up: from now on every write to a file fails (RLIMIT_FSIZE of
    // 1 byte on the running agent: EFBIG, as ENOSPC would be on a real full disk).
    let pid = agent.0.as_ref().unwrap().id().to_string();
    let ok = Command::new("prlimit").args(["--pid", &pid, "--fsize=1:unlimited"]).status().unwrap();
    assert!(ok.success(), "prlimit failed");
    publish(mosquitto.port, "tail", &interleave(&second)).await;
    // The agent stops with an error naming the store's directory.
    let exit = wait_exit(agent.0.as_mut().unwrap(), WAIT);
    agent.0 = None;
    let exit =
        exit.unwrap_or_else(|| panic!("the agent went on with a full disk\n{}", site.logs()));
    assert!(!exit.success(), "{exit}\n{}", site.logs());
    // Its last word: what failed, where, and why, once.
    let log = site.last_log();
    let error = log.lines().rfind(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{log}"));
    let data = site.data_dir();
    assert!(error.contains(&format!("store at {}", data.display())), "{error}");
    assert_eq!(error.matches("File too large").count(), 1, "{error}");
    // Disk space again: the store opens (not corrupt), what was not committed was not
    // acknowledged, so the broker delivers it again; every ticket arrives once.
    agent.0 = Some(site.start_agent(2));
    expect_tickets(&central, &site, &traces).await;
    agent.stop(&site);
}

/// chmod -R on the data directory.
fn chmod_r(dir: &Path, mode: &str) {
    let ok = Command::new("chmod").args(["-R", mode]).arg(dir).status().unwrap();
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_store_on_a_read_only_directory_stops_with_the_path_and_loses_nothing() {
    let mosquitto = Mosquitto::start();
    let central = Central::start_temp().await.unwrap();
    let site = Site::new(mosquitto.port, &central.url);
    let traces = device_traces(1);
    // The agent has run here once (store and broker session exist) ...
    let mut agent = Agent(Some(site.start_agent(1)));
    site.wait_subscribed().await;
    agent.stop(&site);
    // ... then its directory turns read-only while the devices keep publishing.
    let data = site.data_dir();
    chmod_r(&data, "a-w");
    publish(mosquitto.port, "publisher", &interleave(&traces)).await;
    // root writes through file modes: drop the capabilities that allow it.
    let mut cmd = site.agent_command(2);
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if root {
        let mut wrapped = Command::new("setpriv");
        wrapped
            .arg("--bounding-set=-dac_override,-dac_read_search,-fowner")
            .arg("--")
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => wrapped.env(k, v),
                None => wrapped.env_remove(k),
            };
        }
        let log = std::fs::File::create(site.log_path(2)).unwrap();
        wrapped.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        cmd = wrapped;
    }
    agent.0 = Some(cmd.spawn().unwrap());
    let exit = wait_exit(agent.0.as_mut().unwrap(), WAIT);
    agent.0 = None;
    let exit =
        exit.unwrap_or_else(|| panic!("the agent ran on a read-only store\n{}", site.logs()));
    assert!(!exit.success(), "{exit}\n{}", site.logs());
    let log = site.last_log();
    let error = log.lines().rfind(|l| l.starts_with("error: ")).unwrap_or_else(|| panic!("{log}"));
    assert!(error.contains(&data.display().to_string()), "the error names the store: {error}");
    assert!(error.contains("ermission denied"), "the error says why: {error}");
    assert!(central.tickets().await.is_empty());
    // Writable again: nothing was lost, every ticket arrives once.
    chmod_r(&data, "u+w");
    agent.0 = Some(site.start_agent(3));
    expect_tickets(&central, &site, &traces).await;
    agent.stop(&site);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_plugins_that_loop_hog_and_trap_are_quarantined_while_other_tickets_flow() {
    let bad = ["bad-loop", "bad-hog", "bad-panic"];
    let devices: String = bad
        .iter()
        .map(|id| {
            let mode = id.trim_start_matches("bad-");
            format!(
                "\n[[device]]\nid = \"{id}\"\ntype = \"misbehaving\"\nmodel = \"X\"\nserial = \"{id}\"\n\
                 location = \"Lab\"\ncommissioned = \"2026-01-01\"\nsettings = {{ misbehave = \"{mode}\" }}\n"
            )
        })
        .collect();
    let mosquitto = Mosquitto::start();
    let central = Central::start_temp().await.unwrap();
    let site = Site::with(mosquitto.port, &central.url, "", &devices);
    let mut agent = Agent(Some(site.start_agent(1)));
    site.wait_subscribed().await;
    let api = site.api_url();
    // Distinct readings (a repeated one would be recognised as a redelivery).
    let reading = |id: &str, value: u32| {
        let ts = jiff::Timestamp::now().to_string();
        let payload = format!(r#"{{"ts":"{ts}","value":{value}}}"#);
        (format!("tend/test-site/{id}/telemetry"), payload.into_bytes())
    };
    // The bad devices publish among the good ones.
    let mut traces = device_traces(1);
    for id in bad {
        traces.push(DeviceTrace {
            messages: (0..5).map(|v| reading(id, v)).collect(),
            ticket: format!("test-site.{id}.plugin_failure.1"),
            events: vec![],
        });
    }
    publish(mosquitto.port, "publisher", &interleave(&traces)).await;
    until(&site, "the misbehaving plugin quarantined", || async {
        let s = status(&api).await;
        s["plugins"].as_array().is_some_and(|plugins| {
            plugins.iter().any(|p| p["equipment_type"] == "misbehaving" && p["quarantined"] == true)
        })
    })
    .await;
    // While quarantined, each of its devices holds plugin_failure (one ticket each).
    let more: Vec<_> = bad.iter().map(|id| reading(id, 6)).collect();
    publish(mosquitto.port, "more", &more).await;
    expect_tickets(&central, &site, &traces).await;
    let s = status(&api).await;
    for p in s["plugins"].as_array().unwrap() {
        let quarantined = p["equipment_type"] == "misbehaving";
        assert_eq!(p["quarantined"], quarantined, "only the bad plugin: {s:#}");
    }
    agent.stop(&site);
}
