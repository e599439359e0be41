//! Shared by the live and fault-injection tests: the central service in process (with
//! its fault injection), a test site running the real `tend run` binary, the fixture
//! traces mapped onto any number of devices, a QoS 1 publisher, and the check that
//! the central service holds exactly the expected tickets and events.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tend_central::TicketRecord;
use tend_tests::plugins::REPO_ROOT;
use tend_tests::site::{TestSite, test_site_with};
use tend_wire::model::EventKind;

/// The central service's token in these tests.
pub use tend_central::testing::TOKEN;
/// Longest wait for anything the tests expect to happen.
pub const WAIT: Duration = Duration::from_secs(90);

/// The fixture traces the live tests publish: (equipment type, device prefix, trace,
/// fault code, the events its ticket gets after the opening).
const TRACES: [(&str, &str, &str); 3] = [
    ("solar-water-heater", "swh", "overheat"),
    ("door-controller", "door", "tamper"),
    ("av-system", "av", "amp_protect"),
];

/// The central service in process (the reference service's test server, with its
/// fault injection); stops when dropped.
pub use tend_central::testing::TestServer as Central;

/// A site directory (config, inventory, plugins, data) and the agents' logs.
pub struct Site {
    /// The files.
    pub site: TestSite,
    /// The number of the agent started last (its log is `agent-N.log`).
    last: Cell<u32>,
}

impl Site {
    /// The test site (`swh-1`, `door-1`, `av-1`) on this broker and central service.
    pub fn new(mqtt_port: u16, central_url: &str) -> Self {
        Self::with(mqtt_port, central_url, "", "")
    }

    /// Plus `extra` config sections and `devices` appended to the inventory.
    pub fn with(mqtt_port: u16, central_url: &str, extra: &str, devices: &str) -> Self {
        let mqtt = format!("mqtt://127.0.0.1:{mqtt_port}");
        // Inspections off: these tests count fault tickets, and the test devices'
        // schedules (commissioned 2026-01-01) open tickets on some calendar dates.
        let extra =
            format!("[offline]\nafter = \"1h\"\n\n[inspections]\nenabled = false\n\n{extra}");
        let site = test_site_with(central_url, &mqtt, &extra, devices).unwrap();
        Self { site, last: Cell::new(0) }
    }

    /// A site from files made by the caller (its own config sections).
    pub fn from_files(site: TestSite) -> Self {
        Self { site, last: Cell::new(0) }
    }

    /// The agent config file.
    pub fn config(&self) -> PathBuf {
        self.site.config.clone()
    }

    /// Adds `line` to the config's `[section]` (e.g. `central`, `timeout = "500ms"`).
    pub fn setting(&self, section: &str, line: &str) {
        let text = std::fs::read_to_string(self.config()).unwrap();
        let header = format!("[{section}]\n");
        assert!(text.contains(&header), "no [{section}] in\n{text}");
        let text = text.replacen(&header, &format!("{header}{line}\n"), 1);
        std::fs::write(self.config(), text).unwrap();
    }

    /// The agent's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.site.dir.path().join("data")
    }

    /// Where `agent-n.log` goes.
    pub fn log_path(&self, n: u32) -> PathBuf {
        self.site.dir.path().join(format!("agent-{n}.log"))
    }

    /// Starts `tend run`; its log goes to `agent-N.log`.
    pub fn start_agent(&self, n: u32) -> Child {
        self.agent_command(n).spawn().unwrap()
    }

    /// The command [`start_agent`](Self::start_agent) runs, to wrap or adjust.
    pub fn agent_command(&self, n: u32) -> Command {
        self.last.set(n);
        let log = File::create(self.log_path(n)).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tend"));
        cmd.arg("--log-json")
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
            .stderr(log);
        cmd
    }

    /// The log of the agent started last.
    pub fn last_log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.last.get())).unwrap_or_default()
    }

    /// Waits until the agent started last says its subscription is confirmed.
    pub async fn wait_subscribed(&self) {
        let deadline = Instant::now() + WAIT;
        while !self.last_log().contains("\"mqtt_ready\":true") {
            assert!(Instant::now() < deadline, "agent did not subscribe\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The status API's base URL of the agent started last, from its log (it listens
    /// on a free port).
    pub fn api_url(&self) -> String {
        let logs = self.last_log();
        let line = logs
            .lines()
            .find(|l| l.contains("status API"))
            .unwrap_or_else(|| panic!("{}", self.logs()));
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        format!("http://{}", v["fields"]["listen"].as_str().unwrap())
    }

    /// Every agent's log so far.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in 1..=self.last.get().max(2) {
            if let Ok(s) = std::fs::read_to_string(self.log_path(n)) {
                out.push_str(&format!("--- agent-{n}.log\n{s}"));
            }
        }
        out
    }
}

/// `GET {api}/status`; `null` while the agent does not answer (its log says why when
/// the wait for a condition on it ends).
pub async fn status(api: &str) -> serde_json::Value {
    match reqwest::get(format!("{api}/status")).await {
        Ok(answer) => answer.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

/// One device's fixture trace and the ticket it must produce.
#[derive(Debug, Clone)]
pub struct DeviceTrace {
    /// (topic, payload) in publishing order.
    pub messages: Vec<(String, Vec<u8>)>,
    /// The ticket id it opens.
    pub ticket: String,
    /// The events that ticket gets, in order.
    pub events: Vec<EventKind>,
}

/// The three fixture traces on `copies` devices of each type: copy 1 is the test
/// site's own `swh-1`, `door-1`, `av-1`; the others need [`extra_devices`] in the
/// inventory. Every device opens one ticket (amp_protect escalated to 1, then every
/// one recovered: what `tend replay` gives for the same traces).
pub fn device_traces(copies: u32) -> Vec<DeviceTrace> {
    let mut out = Vec::new();
    for (ty, prefix, code) in TRACES {
        let path = Path::new(REPO_ROOT).join("plugins").join(ty).join("traces");
        let text = std::fs::read_to_string(path.join(format!("{code}.jsonl"))).unwrap();
        let lines: Vec<tend_agent::trace::TraceLine> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for copy in 1..=copies {
            let device = format!("{prefix}-{copy}");
            let messages = lines
                .iter()
                .map(|l| {
                    let topic =
                        l.topic.replacen(&format!("/{prefix}-1/"), &format!("/{device}/"), 1);
                    (topic, l.payload_bytes())
                })
                .collect();
            let events = if code == "amp_protect" {
                vec![EventKind::Escalated { severity: 1 }, EventKind::Recovered]
            } else {
                vec![EventKind::Recovered]
            };
            let ticket = format!("test-site.{device}.{code}.1");
            out.push(DeviceTrace { messages, ticket, events });
        }
    }
    out
}

/// Inventory entries for copies 2..=`copies` of the test site's devices.
pub fn extra_devices(copies: u32) -> String {
    let mut out = String::new();
    for (ty, prefix, _) in TRACES {
        for copy in 2..=copies {
            out.push_str(&format!(
                "\n[[device]]\nid = \"{prefix}-{copy}\"\ntype = \"{ty}\"\nmodel = \"M\"\n\
                 serial = \"{prefix}{copy}\"\nlocation = \"Floor {copy}\"\ncommissioned = \"2026-01-01\"\n"
            ));
        }
    }
    out
}

/// The devices' messages interleaved round robin, each device's in its own order
/// (how a site's devices publish side by side).
pub fn interleave(traces: &[DeviceTrace]) -> Vec<(String, Vec<u8>)> {
    let longest = traces.iter().map(|t| t.messages.len()).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| traces.iter().filter_map(move |t| t.messages.get(i).cloned()))
        .collect()
}

/// Publishes with QoS 1, in order, and returns once the broker acked every message.
pub async fn publish(port: u16, id: &str, messages: &[(String, Vec<u8>)]) {
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

/// Why the service's tickets are not (yet) the expected ones. `Err((true, _))`: they
/// never will be (something arrived twice or was not expected).
pub fn check_tickets(
    tickets: &[TicketRecord],
    expected: &[DeviceTrace],
) -> Result<(), (bool, String)> {
    let mut by_id: BTreeMap<&str, Vec<&TicketRecord>> = BTreeMap::new();
    for t in tickets {
        by_id.entry(t.ticket.ticket_id.as_str()).or_default().push(t);
    }
    if let Some(id) = by_id.keys().find(|id| !expected.iter().any(|e| e.ticket == **id)) {
        return Err((true, format!("unexpected ticket {id}")));
    }
    for e in expected {
        let Some(ts) = by_id.get(e.ticket.as_str()) else {
            return Err((false, format!("{} missing", e.ticket)));
        };
        if ts.len() != 1 {
            return Err((true, format!("{} arrived {} times", e.ticket, ts.len())));
        }
        let t = ts[0];
        let kinds: Vec<&EventKind> = t.events.iter().map(|e| &e.event.kind).collect();
        if !e.events.iter().take(kinds.len()).eq(kinds.iter().copied()) {
            return Err((
                true,
                format!("{} has duplicated or unexpected events: {kinds:?}", e.ticket),
            ));
        }
        if kinds.len() < e.events.len() {
            return Err((false, format!("{} has not all its events yet: {kinds:?}", e.ticket)));
        }
        let mut keys: Vec<&str> = t.events.iter().map(|e| e.idempotency_key.as_str()).collect();
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        if keys.len() != n {
            return Err((true, format!("{} has duplicated events", e.ticket)));
        }
    }
    Ok(())
}

/// Polls the central service until it holds exactly the expected tickets and events
/// (panics with the agents' logs on anything duplicated or unexpected, or after
/// [`WAIT`]), then checks they stay as they are for a moment.
pub async fn expect_tickets(central: &Central, site: &Site, expected: &[DeviceTrace]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let tickets = central.tickets().await;
        match check_tickets(&tickets, expected) {
            Ok(()) => break,
            Err((true, e)) => panic!("{e}\n{tickets:#?}\n{}", site.logs()),
            Err((false, e)) => {
                assert!(Instant::now() < deadline, "{e}\n{tickets:#?}\n{}", site.logs());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // Nothing arrives twice a little later either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tickets = central.tickets().await;
    if let Err((_, e)) = check_tickets(&tickets, expected) {
        panic!("{e}\n{tickets:#?}\n{}", site.logs());
    }
}

/// SIGTERM, then the exit status (within [`WAIT`]).
pub fn terminate(child: &mut Child) -> ExitStatus {
    let pid = child.id().to_string();
    let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(ok.success());
    wait_exit(child, WAIT).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("tend run did not stop after SIGTERM");
    })
}

/// The exit status once the child exited, or `None` after `wait`.
pub fn wait_exit(child: &mut Child, wait: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the child for sure when a test fails.
pub struct Agent(pub Option<Child>);

impl Agent {
    /// kill -9 and reap.
    pub fn kill_9(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; asserts a clean exit.
    pub fn stop(&mut self, site: &Site) {
        let status = terminate(self.0.as_mut().unwrap());
        self.0 = None;
        assert!(status.success(), "tend run exited with {status}\n{}", site.logs());
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill_9();
    }
}
