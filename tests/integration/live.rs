//! `tend run` end to end: a real Mosquitto, the real central service (in process), the
//! real `tend` binary with the real wasm plugins; fixture traces published with QoS 1.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tend::central::{CentralConfig, TicketList, TicketRecord};
use tend::tickets::model::EventKind;
use tend_tests::mosquitto::Mosquitto;
use tend_tests::plugins::REPO_ROOT;
use tend_tests::site::{TestSite, test_site};

const TOKEN: &str = "tok";
/// Longest wait for anything the tests expect to happen.
const WAIT: Duration = Duration::from_secs(90);

const TRACES: [&str; 3] = [
    "plugins/solar-water-heater/traces/overheat.jsonl",
    "plugins/door-controller/traces/tamper.jsonl",
    "plugins/av-system/traces/amp_protect.jsonl",
];
const TICKETS: [&str; 3] =
    ["test-site.swh-1.overheat.1", "test-site.door-1.tamper.1", "test-site.av-1.amp_protect.1"];

/// The central service in process; stops when dropped.
struct Central {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Central {
    async fn start() -> Self {
        Self::start_on(0).await
    }

    /// On a given port (0: any free one).
    async fn start_on(port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let cfg = CentralConfig::new(dir.path().join("central"), TOKEN);
        tokio::spawn(async move {
            tend::central::serve(listener, cfg, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self { url, _stop: stop, _dir: dir }
    }

    async fn tickets(&self) -> Vec<TicketRecord> {
        let client = reqwest::Client::new();
        let Ok(resp) =
            client.get(format!("{}/api/v1/tickets", self.url)).bearer_auth(TOKEN).send().await
        else {
            return Vec::new();
        };
        resp.json::<TicketList>().await.map(|l| l.tickets).unwrap_or_default()
    }
}

/// A site directory: config, inventory, plugins, data.
/// The shared test site (tests/src/site.rs) plus the agent's logs.
struct Site {
    site: TestSite,
}

impl Site {
    fn new(mqtt_port: u16, central_url: &str) -> Self {
        let mqtt = format!("mqtt://127.0.0.1:{mqtt_port}");
        // Inspections off: these tests count fault tickets, and the test devices'
        // schedules (commissioned 2026-01-01) open tickets on some calendar dates.
        let extra = "[offline]\nafter = \"1h\"\n\n[inspections]\nenabled = false\n";
        let site = test_site(central_url, &mqtt, extra).unwrap();
        Self { site }
    }

    fn config(&self) -> PathBuf {
        self.site.config.clone()
    }

    /// Starts `tend run`; its log goes to `agent-N.log`.
    fn start_agent(&self, n: u32) -> Child {
        let log = File::create(self.site.dir.path().join(format!("agent-{n}.log"))).unwrap();
        Command::new(env!("CARGO_BIN_EXE_tend"))
            .arg("--log-json")
            .arg("run")
            .arg("--config")
            .arg(self.config())
            .env("TEND_LOG", "info")
            .env_remove("TEND_MQTT_URL")
            .env_remove("TEND_CENTRAL_URL")
            .env_remove("TEND_CENTRAL_TOKEN")
            .env_remove("TEND_DATA_DIR")
            .env_remove("TEND_INVENTORY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    /// Waits until the agent says its subscription is confirmed.
    async fn wait_subscribed(&self) {
        let deadline = Instant::now() + WAIT;
        while !self.logs().contains("\"mqtt_ready\":true") {
            assert!(Instant::now() < deadline, "agent did not subscribe\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The status API's base URL, from the agent's log (it listens on a free port).
    fn api_url(&self) -> String {
        let logs = self.logs();
        let line =
            logs.lines().find(|l| l.contains("status API")).unwrap_or_else(|| panic!("{logs}"));
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        format!("http://{}", v["fields"]["listen"].as_str().unwrap())
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for n in 1..=2 {
            if let Ok(s) =
                std::fs::read_to_string(self.site.dir.path().join(format!("agent-{n}.log")))
            {
                out.push_str(&format!("--- agent-{n}.log\n{s}"));
            }
        }
        out
    }
}

/// Every trace line as (topic, payload bytes), trace by trace.
fn trace_messages() -> Vec<Vec<(String, Vec<u8>)>> {
    TRACES
        .iter()
        .map(|t| {
            let text = std::fs::read_to_string(Path::new(REPO_ROOT).join(t)).unwrap();
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let line: tend::trace::TraceLine = serde_json::from_str(l).unwrap();
                    let payload = line.payload_bytes();
                    (line.topic, payload)
                })
                .collect()
        })
        .collect()
}

/// Publishes with QoS 1, in order, and returns once the broker acked every message.
async fn publish(port: u16, id: &str, messages: &[(String, Vec<u8>)]) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut event_loop) = AsyncClient::new(opts, 64);
    let total = messages.len();
    let poller = tokio::spawn(async move {
        let mut acked = 0;
        while acked < total {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher: {e}"),
            }
        }
        event_loop
    });
    for (topic, payload) in messages {
        client.publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone()).await.unwrap();
    }
    let mut event_loop = tokio::time::timeout(WAIT, poller).await.expect("publish acks").unwrap();
    client.disconnect().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(2), event_loop.poll()).await;
}

/// The expected tickets: each exactly once, each with its events, amp_protect
/// escalated to 1 and recovered (what `tend replay` gives for the same traces).
fn check_tickets(tickets: &[TicketRecord]) -> Result<(), String> {
    let mut by_id: BTreeMap<&str, Vec<&TicketRecord>> = BTreeMap::new();
    for t in tickets {
        by_id.entry(t.ticket.ticket_id.as_str()).or_default().push(t);
    }
    for id in TICKETS {
        let Some(ts) = by_id.get(id) else { return Err(format!("{id} missing")) };
        if ts.len() != 1 {
            return Err(format!("{id} arrived {} times", ts.len()));
        }
        let t = ts[0];
        let kinds: Vec<&EventKind> = t.events.iter().map(|e| &e.event.kind).collect();
        let expected: &[EventKind] = if id.ends_with("amp_protect.1") {
            &[EventKind::Escalated { severity: 1 }, EventKind::Recovered]
        } else {
            &[EventKind::Recovered]
        };
        if kinds.len() < expected.len() {
            return Err(format!("{id} has not all its events yet: {kinds:?}"));
        }
        if !kinds.iter().copied().eq(expected.iter()) {
            return Err(format!("{id} has duplicated or unexpected events: {kinds:?}"));
        }
        let mut keys: Vec<&str> = t.events.iter().map(|e| e.idempotency_key.as_str()).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        if keys.len() != n {
            return Err(format!("{id} has duplicated events"));
        }
    }
    Ok(())
}

/// Polls the central service until the expected tickets are there (panics with the
/// agent's logs after [`WAIT`]), then checks they stay as they are for a moment.
async fn expect_tickets(central: &Central, site: &Site) {
    let deadline = Instant::now() + WAIT;
    loop {
        let tickets = central.tickets().await;
        match check_tickets(&tickets) {
            Ok(()) => break,
            Err(e) if e.contains("times") || e.contains("unexpected") => {
                panic!("{e}\n{tickets:#?}\n{}", site.logs())
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "{e}\n{tickets:#?}\n{}", site.logs());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // Nothing arrives twice a little later either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tickets = central.tickets().await;
    if let Err(e) = check_tickets(&tickets) {
        panic!("{e}\n{tickets:#?}\n{}", site.logs());
    }
    let unexpected: Vec<&str> = tickets
        .iter()
        .map(|t| t.ticket.ticket_id.as_str())
        .filter(|id| !TICKETS.contains(id))
        .collect();
    assert!(unexpected.is_empty(), "unexpected tickets {unexpected:?}\n{}", site.logs());
}

/// SIGTERM, then the exit status (within [`WAIT`]).
fn terminate(child: &mut Child) -> ExitStatus {
    let pid = child.id().to_string();
    let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tend run did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the child for sure when a test fails.
struct Agent(Option<Child>);

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tickets_arrive_exactly_once() {
    let mosquitto = Mosquitto::start();
    let central = Central::start().await;
    let site = Site::new(mosquitto.port, &central.url);
    let mut agent = Agent(Some(site.start_agent(1)));
    site.wait_subscribed().await;
    let api = site.api_url();
    let status: serde_json::Value =
        reqwest::get(format!("{api}/status")).await.unwrap().json().await.unwrap();
    assert_eq!(status["site"], "test-site");
    assert_eq!(status["mqtt_ready"], true);
    for (i, trace) in trace_messages().iter().enumerate() {
        publish(mosquitto.port, &format!("publisher-{i}"), trace).await;
    }
    expect_tickets(&central, &site).await;
    // The status API tells the same story: everything processed and delivered.
    let published: usize = trace_messages().iter().map(Vec::len).sum();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        let s: serde_json::Value =
            reqwest::get(format!("{api}/status")).await.unwrap().json().await.unwrap();
        if s["pipeline"]["messages"] == published && s["outbox"] == 0 {
            break s;
        }
        assert!(Instant::now() < deadline, "status never caught up: {s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["health"], "ok", "{status:#}");
    assert_eq!(status["dispatcher"]["sent"], 7, "3 tickets, 4 events: {status:#}");
    // The three equipment plugins and the test site's deliberately bad one (no device uses it).
    assert_eq!(status["plugins"].as_array().unwrap().len(), 4);
    assert!(status["plugins"].as_array().unwrap().iter().all(|p| p["quarantined"] == false));
    let health = reqwest::get(format!("{api}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(format!("{api}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("tend_messages_total {published}")), "{metrics}");
    assert!(metrics.contains("tend_requests_sent_total 7"), "{metrics}");
    // Staff close the tamper ticket at the central service: the agent's sync sees it
    // and ends the episode (the agent holds one ticket fewer).
    assert_eq!(status["open_tickets"], 3, "{status:#}");
    let closed = reqwest::Client::new()
        .post(format!("{}/api/v1/tickets/test-site.door-1.tamper.1/close", central.url))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"resolution": "cover refitted", "closed_at": "2026-11-23T10:00:00+08:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 200);
    let deadline = Instant::now() + WAIT;
    loop {
        let s: serde_json::Value =
            reqwest::get(format!("{api}/status")).await.unwrap().json().await.unwrap();
        if s["open_tickets"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the closed ticket was never synced: {s:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("tend_plugin_quarantined{equipment_type=\"av-system\"} 0"),
        "{metrics}"
    );
    let status = terminate(agent.0.as_mut().unwrap());
    agent.0 = None;
    assert!(status.success(), "tend run exited with {status}\n{}", site.logs());
    assert!(site.logs().contains("tend agent running"), "{}", site.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_survives_kill_9_midway() {
    let mosquitto = Mosquitto::start();
    let central = Central::start().await;
    let site = Site::new(mosquitto.port, &central.url);
    let traces = trace_messages();
    let mut agent = Agent(Some(site.start_agent(1)));
    // Once subscribed, the agent's persistent session holds what it misses.
    site.wait_subscribed().await;
    for (i, trace) in traces.iter().enumerate() {
        let half = trace.len() / 2;
        publish(mosquitto.port, &format!("publisher-a{i}"), &trace[..half]).await;
    }
    // Midway: the agent is killed without warning, with work possibly in flight.
    let mut child = agent.0.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    for (i, trace) in traces.iter().enumerate() {
        let half = trace.len() / 2;
        publish(mosquitto.port, &format!("publisher-b{i}"), &trace[half..]).await;
    }
    agent.0 = Some(site.start_agent(2));
    expect_tickets(&central, &site).await;
    let status = terminate(agent.0.as_mut().unwrap());
    agent.0 = None;
    assert!(status.success(), "tend run exited with {status}\n{}", site.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_central_down_then_up_delivers_everything_in_order() {
    let mosquitto = Mosquitto::start();
    let port = tend_tests::mosquitto::free_port();
    let site = Site::new(mosquitto.port, &format!("http://127.0.0.1:{port}"));
    let mut agent = Agent(Some(site.start_agent(1)));
    site.wait_subscribed().await;
    let api = site.api_url();
    for (i, trace) in trace_messages().iter().enumerate() {
        publish(mosquitto.port, &format!("publisher-{i}"), trace).await;
    }
    // Nothing listens where the central service should be: everything waits in the
    // outbox, and after repeated failures the status API says the agent is degraded.
    let deadline = Instant::now() + WAIT;
    loop {
        let s: serde_json::Value =
            reqwest::get(format!("{api}/status")).await.unwrap().json().await.unwrap();
        if s["outbox"] == 7 && s["health"] == "degraded" {
            assert!(s["dispatcher"]["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{s:#}");
            assert!(s["dead_letters"].as_array().unwrap().is_empty(), "nothing dropped: {s:#}");
            break;
        }
        assert!(Instant::now() < deadline, "requests never queued: {s:#}\n{}", site.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The service comes up: every ticket arrives once, its events in order.
    let central = Central::start_on(port).await;
    expect_tickets(&central, &site).await;
    let status = terminate(agent.0.as_mut().unwrap());
    agent.0 = None;
    assert!(status.success(), "tend run exited with {status}\n{}", site.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_broker_restart_loses_no_message() {
    // A site broker that keeps sessions across restarts (persistence on).
    let mut mosquitto = Mosquitto::start_with(
        |dir, _| format!("persistence true\npersistence_location {}/\n", dir.display()),
        0,
    );
    let central = Central::start().await;
    let site = Site::new(mosquitto.port, &central.url);
    let traces = trace_messages();
    let mut agent = Agent(Some(site.start_agent(1)));
    site.wait_subscribed().await;
    let api = site.api_url();
    for (i, trace) in traces.iter().enumerate() {
        publish(mosquitto.port, &format!("publisher-a{i}"), &trace[..trace.len() / 2]).await;
    }
    // The broker restarts; the second halves are published as soon as it is back,
    // while the agent may still be reconnecting: the session holds them.
    mosquitto.stop();
    mosquitto.launch();
    for (i, trace) in traces.iter().enumerate() {
        publish(mosquitto.port, &format!("publisher-b{i}"), &trace[trace.len() / 2..]).await;
    }
    expect_tickets(&central, &site).await;
    let published: usize = traces.iter().map(Vec::len).sum();
    let s: serde_json::Value =
        reqwest::get(format!("{api}/status")).await.unwrap().json().await.unwrap();
    // Messages whose PUBACK was lost with the broker come again; they are recognised
    // and change nothing. Every published message was processed exactly once.
    let p = &s["pipeline"];
    let received = p["messages"].as_u64().unwrap();
    let duplicates = p["duplicates"].as_u64().unwrap();
    assert_eq!(received - duplicates, published as u64, "{s:#}");
    assert!(s["mqtt"]["connects"].as_u64().unwrap() >= 2, "reconnected: {s:#}");
    let status = terminate(agent.0.as_mut().unwrap());
    agent.0 = None;
    assert!(status.success(), "tend run exited with {status}\n{}", site.logs());
}

/// The maintenance desk closes a ticket the way staff do (sign in, then the close
/// form); the agent's sync sees the close and ends the episode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_close_on_the_desk_ends_the_agents_episode() {
    let mosquitto = Mosquitto::start();
    let central = Central::start().await;
    let site = Site::new(mosquitto.port, &central.url);
    let mut agent = Agent(Some(site.start_agent(1)));
    site.wait_subscribed().await;
    let api = site.api_url();
    for (i, trace) in trace_messages().iter().enumerate() {
        publish(mosquitto.port, &format!("publisher-{i}"), trace).await;
    }
    expect_tickets(&central, &site).await;
    let open_tickets = || async {
        let s: serde_json::Value =
            reqwest::get(format!("{api}/status")).await.unwrap().json().await.unwrap();
        s["open_tickets"].as_u64().unwrap()
    };
    let deadline = Instant::now() + WAIT;
    while open_tickets().await != 3 {
        assert!(Instant::now() < deadline, "the agent never held 3 tickets\n{}", site.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Staff sign in to the desk (the desk token defaults to the service token) and
    // close the tamper ticket with the form.
    let browser =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed_in = browser
        .post(format!("{}/desk/login", central.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}&next=%2Fdesk"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie =
        signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let ticket = "test-site.door-1.tamper.1";
    let closed = browser
        .post(format!("{}/desk/tickets/{ticket}/close", central.url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("resolution=Cover+refitted%2C+switch+tested")
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 303, "{:?}", closed.text().await);
    let record =
        central.tickets().await.into_iter().find(|t| t.ticket.ticket_id == ticket).unwrap();
    assert_eq!(record.resolution.as_deref(), Some("Cover refitted, switch tested"));
    let closed_at = record.closed_at.unwrap();

    // The agent's sync reads the close: it holds one ticket fewer and logs the
    // close with the desk's closed_at.
    let deadline = Instant::now() + WAIT;
    while open_tickets().await != 2 {
        assert!(
            Instant::now() < deadline,
            "the desk's close never reached the agent\n{}",
            site.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = site.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("ticket closed by staff") && l.contains(ticket))
        .unwrap_or_else(|| panic!("no close logged\n{logs}"));
    let logged: serde_json::Value = serde_json::from_str(line).unwrap();
    let logged: jiff::Timestamp = logged["fields"]["closed_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(logged, closed_at.timestamp(), "{line}");
    let status = terminate(agent.0.as_mut().unwrap());
    agent.0 = None;
    assert!(status.success(), "tend run exited with {status}\n{}", site.logs());
}
