//! `tend run` end to end: a real Mosquitto, the real central service (in process), the
//! real `tend` binary with the real wasm plugins; fixture traces published with QoS 1.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tend::central::{CentralConfig, TicketList, TicketRecord};
use tend::tickets::model::EventKind;
use tend_tests::plugins::{AV_SYSTEM, DOOR_CONTROLLER, REPO_ROOT, SOLAR_WATER_HEATER};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Mosquitto process on a free loopback port, killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    fn start() -> Self {
        assert!(
            Path::new(MOSQUITTO).exists(),
            "these tests need Mosquitto at {MOSQUITTO}: apt-get install -y mosquitto"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let user = Command::new("id").arg("-un").output().unwrap();
        let user = String::from_utf8(user.stdout).unwrap();
        let conf = format!(
            "user {}\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 0\nlog_type all\n",
            user.trim()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let log = File::create(dir.path().join("mosquitto.log")).unwrap();
        let mut child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("mosquitto exited ({status})");
            }
            assert!(Instant::now() < deadline, "mosquitto not listening on {port}");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { child, port, _dir: dir }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The central service in process; stops when dropped.
struct Central {
    url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Central {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
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
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(mqtt_port: u16, central_url: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        for p in [SOLAR_WATER_HEATER, DOOR_CONTROLLER, AV_SYSTEM] {
            let p = Path::new(p);
            std::fs::copy(p, plugins.join(p.file_name().unwrap())).unwrap();
        }
        let config = format!(
            r#"inventory = "site.toml"

[mqtt]
url = "mqtt://127.0.0.1:{mqtt_port}"
client_id = "tend-live-test"

[central]
url = "{central_url}"
token = "{TOKEN}"
sync_interval = "1s"
backoff_initial = "100ms"
backoff_max = "1s"

[store]
data_dir = "data"

[plugins]
dir = "plugins"
cache_dir = "plugin-cache"

[offline]
after = "1h"

[api]
enabled = false
"#
        );
        std::fs::write(dir.path().join("agent.toml"), config).unwrap();
        let mut site = String::from("site = \"test-site\"\ntimezone = \"Asia/Shanghai\"\n");
        for (id, ty) in
            [("swh-1", "solar-water-heater"), ("door-1", "door-controller"), ("av-1", "av-system")]
        {
            site.push_str(&format!(
                "\n[[device]]\nid = \"{id}\"\ntype = \"{ty}\"\nmodel = \"M-1\"\nserial = \"S-{id}\"\n\
                 location = \"Block A\"\ncommissioned = \"2025-03-01\"\n"
            ));
        }
        std::fs::write(dir.path().join("site.toml"), site).unwrap();
        Self { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    /// Starts `tend run`; its log goes to `agent-N.log`.
    fn start_agent(&self, n: u32) -> Child {
        let log = File::create(self.dir.path().join(format!("agent-{n}.log"))).unwrap();
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

    fn logs(&self) -> String {
        let mut out = String::new();
        for n in 1..=2 {
            if let Ok(s) = std::fs::read_to_string(self.dir.path().join(format!("agent-{n}.log"))) {
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
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let topic = v["topic"].as_str().unwrap().to_owned();
                    let payload = match &v["payload"] {
                        serde_json::Value::String(s) => s.clone().into_bytes(),
                        other => serde_json::to_vec(other).unwrap(),
                    };
                    (topic, payload)
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
    for (i, trace) in trace_messages().iter().enumerate() {
        publish(mosquitto.port, &format!("publisher-{i}"), trace).await;
    }
    expect_tickets(&central, &site).await;
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
