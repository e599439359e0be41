//! `tend-bench`: the benchmark runner behind `tests/bench/run` (see README,
//! "Benchmarks"). Starts Mosquitto on loopback, the reference central service and
//! `tend run` (release builds), and measures, side by side in one run:
//!
//! - ingest: a backlog of QoS 1 telemetry pre-loaded into three persistent sessions
//!   (tend's, a `mosquitto_sub -q 1`'s, Node-RED's) on the same broker, each drained
//!   in turn; rates from the first to the last message processed;
//! - plugin overhead: `cargo bench -p tend --bench plugin_overhead`'s JSON;
//! - latency: live load at half the measured maximum; publish (the reading's `ts`) ->
//!   ticket received by `tend central` (its `received_at`), beside publish ->
//!   `mosquitto_sub` receipt of the same stream;
//! - memory: peak RSS of `tend run` with 10,000 devices after a soak; store size on
//!   disk vs the logical bytes in it;
//! - overload: twice the maximum rate for a while: RSS, status API answers, catch-up
//!   time, messages lost.
//!
//! Prints a table and writes `target/bench/results.json`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser, Debug, Clone)]
#[command(name = "tend-bench", about = "tend's benchmark runner (tests/bench/run)")]
struct Opts {
    /// Parts to run, comma-separated: ingest,nodered,plugin,latency,memory,overload.
    #[arg(long, default_value = "ingest,nodered,plugin,latency,memory,overload")]
    parts: String,
    /// Runs of the ingest / Node-RED comparison; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Messages in each pre-loaded backlog.
    #[arg(long, default_value_t = 200_000)]
    backlog: u64,
    /// Devices publishing in the ingest, latency and overload parts.
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Seconds of live load for the latency part.
    #[arg(long, default_value_t = 60.0)]
    latency_secs: f64,
    /// Devices of the memory part.
    #[arg(long, default_value_t = 10_000)]
    memory_devices: usize,
    /// Seconds of the memory soak.
    #[arg(long, default_value_t = 300.0)]
    soak_secs: f64,
    /// Seconds of the overload part (at twice the maximum rate).
    #[arg(long, default_value_t = 60.0)]
    overload_secs: f64,
    /// Maximum sustainable rate (msgs/s) to use when the ingest part is not run.
    #[arg(long, default_value_t = 10_000.0)]
    max_rate: f64,
    /// Pass --quick to the plugin overhead bench.
    #[arg(long)]
    plugin_quick: bool,
    /// Repository root.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// The broker's `max_inflight_messages` (unacknowledged QoS 1 messages per client).
    /// The default is what the README tells a site to set: Mosquitto's own default of
    /// 20 lets an agent that acknowledges after its group commit take 20 messages per
    /// commit.
    #[arg(long, default_value_t = 1000)]
    broker_inflight: u32,
    /// The agent's `central.in_flight` (tickets sent in parallel; 1 sends the outbox
    /// strictly in order).
    #[arg(long, default_value_t = 8)]
    central_in_flight: u32,
    /// Keep the work directory (logs, stores) for inspection.
    #[arg(long)]
    keep: bool,
}

/// A child process killed (and reaped) on drop.
struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> anyhow::Result<Self> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self { name, child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait (SIGKILL after 30 s).
    fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                eprintln!("bench: {} did not stop on SIGTERM within 30 s: killed", self.name);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(port: u16, p: &mut Proc, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if p.exited() || Instant::now() > deadline {
            bail!("{} not listening on {port}:\n{}", p.name, tail(log));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Resident set size now and its peak, in KiB, from /proc.
fn rss_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The shared environment of a bench run.
struct Bench {
    opts: Opts,
    root: PathBuf,
    work: PathBuf,
    port: u16,
    http: reqwest::Client,
    _broker: Proc,
    broker_log: PathBuf,
}

/// A running agent with its central service.
struct Agent {
    proc: Proc,
    central: Proc,
    api: u16,
    central_port: u16,
    data: PathBuf,
}

impl Bench {
    fn start(opts: Opts) -> anyhow::Result<Self> {
        let root = opts.root.canonicalize().context("--root")?;
        let work = root.join("target/bench/work");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let port = free_port()?;
        let user = String::from_utf8(Command::new("id").arg("-un").output()?.stdout)?;
        // Same broker for every consumer; queues unbounded so a backlog is never cut.
        let conf = format!(
            "user {}\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages {}\n\
             log_type error\nlog_type warning\nlog_type notice\nlog_type subscribe\n",
            user.trim(),
            opts.broker_inflight,
        );
        let conf_path = work.join("mosquitto.conf");
        std::fs::write(&conf_path, conf)?;
        let broker_log = work.join("mosquitto.log");
        let mosquitto = ["/usr/sbin/mosquitto", "mosquitto"]
            .into_iter()
            .find(|p| !p.starts_with('/') || Path::new(p).exists())
            .unwrap_or("mosquitto");
        let mut broker = Proc::spawn(
            "mosquitto",
            Command::new(mosquitto).arg("-c").arg(&conf_path),
            &broker_log,
        )?;
        wait_port(port, &mut broker, &broker_log)?;
        Ok(Self {
            opts,
            root,
            work,
            port,
            http: reqwest::Client::new(),
            _broker: broker,
            broker_log,
        })
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.root.join("target/release").join(name)
    }

    /// Waits until the broker logged `client` subscribing to `filter` (count-th time).
    fn wait_subscribed(&self, client: &str, filter: &str, count: usize) -> anyhow::Result<()> {
        let needle = format!("{client} 1 {filter}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = std::fs::read_to_string(&self.broker_log).unwrap_or_default();
            if log.lines().filter(|l| l.ends_with(&needle)).count() >= count {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{client} never subscribed to {filter}:\n{}", tail(&self.broker_log));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn write_site(&self, site: &str, devices: usize) -> anyhow::Result<PathBuf> {
        let path = self.work.join(format!("{site}.toml"));
        let out = Command::new(self.bin("tend-loadgen"))
            .args(["inventory", "--site", site, "--devices", &devices.to_string()])
            .output()?;
        if !out.status.success() {
            bail!("tend-loadgen inventory: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::fs::write(&path, out.stdout)?;
        Ok(path)
    }

    /// Starts `tend central` and `tend run` for `site` (inventory of `devices`),
    /// store in a fresh directory unless `data` exists; waits until MQTT is ready.
    async fn start_agent(&self, site: &str, devices: usize) -> anyhow::Result<Agent> {
        self.start_agent_with(site, devices, true).await
    }

    /// [`Bench::start_agent`]; with `subscribed` false it returns as soon as the
    /// status API answers, before the subscription is confirmed: a broker with a wide
    /// in-flight window sends a session's backlog ahead of the SUBACK, so waiting for
    /// it would start a drain's clock late.
    async fn start_agent_with(
        &self,
        site: &str,
        devices: usize,
        subscribed: bool,
    ) -> anyhow::Result<Agent> {
        let inventory = self.write_site(site, devices)?;
        let data = self.work.join(format!("{site}-data"));
        let central_port = free_port()?;
        let central_log = self.work.join(format!("{site}-central.log"));
        let mut central = Proc::spawn(
            "tend central",
            Command::new(self.bin("tend")).args([
                "central",
                "--listen",
                &format!("127.0.0.1:{central_port}"),
                "--data-dir",
                &self.work.join(format!("{site}-central")).display().to_string(),
                "--token",
                "bench-token",
            ]),
            &central_log,
        )?;
        wait_port(central_port, &mut central, &central_log)?;
        let api = free_port()?;
        let config = format!(
            "inventory = {:?}\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\n[central]\nurl = \"http://127.0.0.1:{central_port}\"\n\
             token = \"bench-token\"\nin_flight = {}\n[store]\ndata_dir = {:?}\n[plugins]\ndir = {:?}\ncache_dir = {:?}\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\n",
            inventory.display().to_string(),
            self.port,
            self.opts.central_in_flight,
            data.display().to_string(),
            self.root.join("target/plugins").display().to_string(),
            self.work.join("plugin-cache").display().to_string(),
        );
        let cfg = self.work.join(format!("{site}-agent.toml"));
        std::fs::write(&cfg, config)?;
        let log = self.work.join(format!("{site}-agent.log"));
        // As a site's installation does: `tend check` validates the config and compiles
        // the plugins into the cache, so the agent starts warm and the figures are the
        // agent's, not a one-off compilation's (about 25 MiB more at a cold start).
        let check = Command::new(self.bin("tend"))
            .args(["check", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running tend check")?;
        if !check.success() {
            bail!("tend check --config {} failed ({check})", cfg.display());
        }
        // TEND_BENCH_WRAP="heaptrack -o FILE" (say) runs the agent under a profiler;
        // the RSS figures are then the wrapper's.
        let mut cmd = match std::env::var("TEND_BENCH_WRAP") {
            Ok(wrap) if !wrap.trim().is_empty() => {
                let mut words = wrap.split_whitespace();
                let mut c = Command::new(words.next().unwrap_or("env"));
                c.args(words).arg(self.bin("tend"));
                c
            }
            _ => Command::new(self.bin("tend")),
        };
        cmd.arg("run").arg("--config").arg(&cfg);
        let mut proc = Proc::spawn("tend run", &mut cmd, &log)?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = self.http.get(format!("http://127.0.0.1:{api}/health")).send().await
                && let Ok(v) = r.json::<Value>().await
                && (v["mqtt_ready"] == true || !subscribed)
            {
                break;
            }
            if proc.exited() || Instant::now() > deadline {
                bail!("tend run not ready:\n{}", tail(&log));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Agent { proc, central, api, central_port, data })
    }

    async fn status(&self, agent: &Agent) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("http://127.0.0.1:{}/status", agent.api))
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        Ok(r.json().await?)
    }

    /// Runs `tend-loadgen publish` to completion; its JSON report.
    async fn publish(&self, site: &str, devices: usize, extra: &[String]) -> anyhow::Result<Value> {
        let mut cmd = tokio::process::Command::new(self.bin("tend-loadgen"));
        cmd.args(["publish", "--url", &format!("mqtt://127.0.0.1:{}", self.port), "--site", site]);
        cmd.args(["--devices", &devices.to_string()]).args(extra);
        let out = cmd.output().await.context("running tend-loadgen")?;
        if !out.status.success() {
            bail!("tend-loadgen publish failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).with_context(|| format!("tend-loadgen output {text:?}"))
    }

    /// Waits until the agent processed `total` distinct messages (or the deadline passes);
    /// returns the processed count.
    async fn wait_processed(
        &self,
        agent: &Agent,
        total: u64,
        limit: Duration,
    ) -> anyhow::Result<u64> {
        let deadline = Instant::now() + limit;
        loop {
            let n = self
                .status(agent)
                .await
                .map(|s| s["pipeline"]["messages"].as_u64().unwrap_or(0))
                .unwrap_or(0);
            if n >= total || Instant::now() > deadline {
                return Ok(n);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops agent and central.
    fn stop(&self, agent: Agent) -> anyhow::Result<PathBuf> {
        agent.proc.stop()?;
        agent.central.stop()?;
        Ok(agent.data)
    }
}

/// Distinct messages the agent processed: all minus recognised redeliveries.
fn unique(status: &Value) -> u64 {
    let p = &status["pipeline"];
    p["messages"].as_u64().unwrap_or(0).saturating_sub(p["duplicates"].as_u64().unwrap_or(0))
}

/// Progress and ticket POSTs received from Node-RED.
#[derive(Default)]
struct Receiver {
    progress: Vec<(u64, f64)>,
    tickets: u64,
}

async fn start_receiver() -> anyhow::Result<(u16, Arc<Mutex<Receiver>>)> {
    use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
    let state = Arc::new(Mutex::new(Receiver::default()));
    async fn progress(State(s): State<Arc<Mutex<Receiver>>>, Json(v): Json<Value>) -> StatusCode {
        if let (Some(c), Some(t)) = (v["count"].as_u64(), v["t"].as_f64())
            && let Ok(mut r) = s.lock()
        {
            r.progress.push((c, t / 1000.0));
        }
        StatusCode::NO_CONTENT
    }
    async fn ticket(State(s): State<Arc<Mutex<Receiver>>>) -> (StatusCode, Json<Value>) {
        if let Ok(mut r) = s.lock() {
            r.tickets += 1;
        }
        (StatusCode::CREATED, Json(json!({"ticket_id": "x", "number": "N"})))
    }
    let app = Router::new()
        .route("/progress", post(progress))
        .route("/api/v1/tickets", post(ticket))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((port, state))
}

/// One ingest run's figures.
#[derive(Debug, Default)]
struct IngestRun {
    tend: f64,
    sub: f64,
    nodered: Option<f64>,
}

struct NodeRed {
    red_js: PathBuf,
    user_dir: PathBuf,
    receiver: Arc<Mutex<Receiver>>,
}

impl Bench {
    async fn ingest(&self, with_nodered: bool) -> anyhow::Result<Vec<IngestRun>> {
        let o = &self.opts;
        let site = "bench-ingest";
        let filter = format!("tend/{site}/+/+");
        let total = o.backlog.div_ceil(1000) * 1000;
        // 1. Persistent sessions, then every consumer offline.
        let agent = self.start_agent(site, o.devices).await?;
        self.wait_subscribed(&format!("tend-{site}"), &filter, 1)?;
        self.stop(agent)?;
        let st = self.bench_sub().args(["-t", &filter, "-E"]).status()?;
        if !st.success() {
            bail!("mosquitto_sub could not create its session");
        }
        let nodered = if with_nodered { Some(self.nodered_setup(&filter).await?) } else { None };
        let mut runs = Vec::new();
        for r in 1..=o.runs {
            // 2. The backlog: the same messages queue in every session.
            let rep = self
                .publish(
                    site,
                    o.devices,
                    &["--messages".into(), total.to_string(), "--connections".into(), "2".into()],
                )
                .await?;
            if rep["acked"].as_u64() != Some(total) {
                bail!("backlog not fully acknowledged by the broker: {rep}");
            }
            // 3. mosquitto_sub drains it.
            let out = self.work.join("sub-drain.txt");
            let st = self
                .bench_sub()
                .args(["-t", &filter, "-C", &total.to_string(), "-F", "%U", "-W", "600"])
                .stdout(File::create(&out)?)
                .status()?;
            if !st.success() {
                bail!("mosquitto_sub drain failed ({st})");
            }
            let times: Vec<f64> = std::fs::read_to_string(&out)?
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            let sub = match (times.first(), times.last()) {
                (Some(a), Some(b)) if b > a => (times.len() - 1) as f64 / (b - a),
                _ => f64::NAN,
            };
            // 4. tend run drains it: first to last message processed, /status polled
            //    from the moment the agent's API answers.
            let agent = self.start_agent_with(site, o.devices, false).await?;
            let (mut first, mut last) = (None, None);
            let deadline = Instant::now() + Duration::from_secs(900);
            while Instant::now() < deadline {
                let n = unique(&self.status(&agent).await?);
                let now = Instant::now();
                if n > 0 && first.is_none() {
                    first = Some((n, now));
                }
                if n >= total {
                    last = Some((n, now));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let tend = match (first, last) {
                (Some((n0, t0)), Some((n1, t1))) if t1 > t0 => {
                    (n1 - n0) as f64 / (t1 - t0).as_secs_f64()
                }
                (Some((n0, _)), _) if n0 >= total => bail!(
                    "tend run drained the backlog of {total} before its first status poll (a \
                     broker without an in-flight window sends the SUBACK after the backlog): \
                     no rate; use a larger --backlog or --broker-inflight"
                ),
                _ => bail!("tend run did not drain the backlog of {total} within 15 min"),
            };
            self.stop(agent)?;
            // 5. Node-RED drains it.
            let nr = match &nodered {
                Some(n) => Some(self.nodered_drain(n, total).await?),
                None => None,
            };
            eprintln!(
                "bench: ingest run {r}/{}: tend {tend:.0} msgs/s, mosquitto_sub {sub:.0} msgs/s{}",
                o.runs,
                nr.map(|v| format!(", node-red {v:.0} msgs/s")).unwrap_or_default()
            );
            runs.push(IngestRun { tend, sub, nodered: nr });
        }
        Ok(runs)
    }

    async fn nodered_setup(&self, filter: &str) -> anyhow::Result<NodeRed> {
        let red_js = self.root.join("target/node-red/node_modules/node-red/red.js");
        if !red_js.exists() {
            bail!(
                "Node-RED is not installed at {} (tests/bench/run installs it)",
                red_js.display()
            );
        }
        let (rport, receiver) = start_receiver().await?;
        let user_dir = self.work.join("node-red");
        std::fs::create_dir_all(&user_dir)?;
        let flow = std::fs::read_to_string(self.root.join("tests/bench/nodered-flow.json"))?
            .replace("__PORT__", &self.port.to_string())
            .replace("__FILTER__", filter)
            .replace("__RECEIVER__", &format!("http://127.0.0.1:{rport}"));
        std::fs::write(user_dir.join("flows.json"), flow)?;
        let n = NodeRed { red_js, user_dir, receiver };
        // Create its persistent session, then stop it.
        let p = self.nodered_start(&n)?;
        self.wait_subscribed("nodered-bench", filter, 1)?;
        p.stop()?;
        Ok(n)
    }

    fn nodered_start(&self, n: &NodeRed) -> anyhow::Result<Proc> {
        let port = free_port()?;
        Proc::spawn(
            "node-red",
            Command::new("node")
                .arg(&n.red_js)
                .args(["--port", &port.to_string(), "--userDir"])
                .arg(&n.user_dir)
                .arg("flows.json"),
            &self.work.join("node-red.log"),
        )
    }

    async fn nodered_drain(&self, n: &NodeRed, total: u64) -> anyhow::Result<f64> {
        if let Ok(mut r) = n.receiver.lock() {
            r.progress.clear();
        }
        let p = self.nodered_start(n)?;
        let deadline = Instant::now() + Duration::from_secs(900);
        let rate = loop {
            let points = n.receiver.lock().map(|r| r.progress.clone()).unwrap_or_default();
            if let Some(&(c1, t1)) = points.iter().find(|(c, _)| *c >= total) {
                let (c0, t0) = points[0];
                break (c1 - c0) as f64 / (t1 - t0);
            }
            if Instant::now() > deadline {
                bail!(
                    "Node-RED did not drain the backlog within 15 min:\n{}",
                    tail(&self.work.join("node-red.log"))
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        p.stop()?;
        Ok(rate)
    }
}

fn ms_between(a: &str, b: &str) -> Option<f64> {
    let a: jiff::Timestamp = a.parse().ok()?;
    let b: jiff::Timestamp = b.parse().ok()?;
    Some(b.duration_since(a).as_secs_f64() * 1000.0)
}

impl Bench {
    /// Live load at `rate`: fault -> ticket latencies and the MQTT hop, in ms.
    async fn latency(&self, rate: f64) -> anyhow::Result<Value> {
        let o = &self.opts;
        let site = "bench-latency";
        let filter = format!("tend/{site}/+/+");
        let agent = self.start_agent(site, o.devices).await?;
        let hop_file = self.work.join("latency-sub.txt");
        let sub = Proc::spawn(
            "mosquitto_sub",
            Command::new("mosquitto_sub")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-i",
                    "bench-hop",
                    "-q",
                    "1",
                ])
                .args(["-t", &filter, "-F", "%U %p"]),
            &hop_file,
        )?;
        self.wait_subscribed("bench-hop", &filter, 1)?;
        // The first start queues every device's overdue inspection (the sites are
        // commissioned 2025-06-01); let those go out first, so the figure is the
        // steady-state latency at this load, and report the burst on its own.
        // Empty on three polls in a row: the timers may still be queueing the burst.
        let burst_start = Instant::now();
        let deadline = burst_start + Duration::from_secs(300);
        let (mut empty_since, mut empty_polls) = (None, 0);
        while empty_polls < 3 {
            if Instant::now() > deadline {
                bail!("the first start's tickets did not go out within 300 s");
            }
            if self.status(&agent).await?["outbox"].as_u64().unwrap_or(1) == 0 {
                empty_since.get_or_insert_with(Instant::now);
                empty_polls += 1;
            } else {
                (empty_since, empty_polls) = (None, 0);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let burst_secs =
            empty_since.map_or(0.0, |t: Instant| t.duration_since(burst_start).as_secs_f64());
        let burst_requests = self.status(&agent).await?["dispatcher"]["sent"].as_u64().unwrap_or(0);
        let t_start = jiff::Timestamp::now();
        let rep = self
            .publish(
                site,
                o.devices,
                &[
                    "--rate".into(),
                    format!("{rate:.0}"),
                    "--duration".into(),
                    o.latency_secs.to_string(),
                ],
            )
            .await?;
        let acked = rep["acked"].as_u64().unwrap_or(0);
        let processed = self.wait_processed(&agent, acked, Duration::from_secs(300)).await?;
        // Let the outbox empty.
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.status(&agent).await?["outbox"].as_u64().unwrap_or(1) > 0
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await; // mosquitto_sub flushes its output
        sub.stop()?;
        let list: Value = self
            .http
            .get(format!("http://127.0.0.1:{}/api/v1/tickets", agent.central_port))
            .bearer_auth("bench-token")
            .send()
            .await?
            .json()
            .await?;
        let mut lat: Vec<f64> = list["tickets"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|t| t["ticket"]["kind"] == "fault" && t["ticket"]["code"] != "device_offline")
            .filter_map(|t| {
                let opened = t["ticket"]["opened_at"].as_str()?;
                let start_ok = opened.parse::<jiff::Timestamp>().ok()? >= t_start;
                start_ok.then(|| ms_between(opened, t["received_at"].as_str()?))?
            })
            .collect();
        lat.sort_by(f64::total_cmp);
        let mut hop: Vec<f64> = BufReader::new(File::open(&hop_file)?)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| {
                let (t, p) = l.split_once(' ')?;
                let recv: f64 = t.parse().ok()?;
                let ts = serde_json::from_str::<Value>(p).ok()?["ts"].as_f64()?;
                Some(recv * 1000.0 - ts)
            })
            .collect();
        hop.sort_by(f64::total_cmp);
        self.stop(agent)?;
        Ok(json!({
            "first_start_requests": burst_requests,
            "first_start_drain_secs": burst_secs,
            "rate_target": rate,
            "published": rep["published"], "acked": acked, "processed": processed,
            "publish_rate": rep["rate"],
            "tickets": lat.len(),
            "tickets_per_s": lat.len() as f64 / o.latency_secs,
            "latency_p50_ms": percentile(&lat, 50.0),
            "latency_p99_ms": percentile(&lat, 99.0),
            "latency_max_ms": lat.last().copied().unwrap_or(f64::NAN),
            "mqtt_hop_messages": hop.len(),
            "mqtt_hop_p50_ms": percentile(&hop, 50.0),
            "mqtt_hop_p99_ms": percentile(&hop, 99.0),
        }))
    }

    /// 10,000 devices (or --memory-devices) at their spec periods for --soak-secs.
    async fn memory(&self) -> anyhow::Result<Value> {
        let o = &self.opts;
        let site = "bench-memory";
        let agent = self.start_agent(site, o.memory_devices).await?;
        // Solar heaters every 60 s, doors and AV every 30 s (telemetry.md).
        let rate = o.memory_devices as f64 * (1.0 / 3.0 / 60.0 + 2.0 / 3.0 / 30.0);
        let pid = agent.proc.pid();
        let rss_start = rss_kib(pid).0;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, samples) = (stop.clone(), Arc::new(Mutex::new(Vec::new())));
        let s2 = samples.clone();
        let sampler = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut v) = s2.lock() {
                    v.push(rss_kib(pid).0);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        let rep = self
            .publish(
                site,
                o.memory_devices,
                &[
                    "--rate".into(),
                    format!("{rate:.1}"),
                    "--duration".into(),
                    o.soak_secs.to_string(),
                ],
            )
            .await?;
        let acked = rep["acked"].as_u64().unwrap_or(0);
        let processed = self.wait_processed(&agent, acked, Duration::from_secs(120)).await?;
        let (rss_now, hwm) = rss_kib(pid);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = sampler.join();
        let status = self.status(&agent).await?;
        let data = self.stop(agent)?;
        let (disk_bytes, logical) = store_sizes(&data)?;
        let rss = samples.lock().map(|v| v.clone()).unwrap_or_default();
        Ok(json!({
            "devices": o.memory_devices, "soak_secs": o.soak_secs, "rate": rate,
            "published": rep["published"], "acked": acked, "processed": processed,
            "tickets_queued": status["pipeline"]["requests"],
            "rss_start_mib": rss_start as f64 / 1024.0,
            "rss_end_mib": rss_now as f64 / 1024.0,
            "rss_peak_mib": hwm as f64 / 1024.0,
            "rss_first_minute_mib": rss.iter().take(60).max().copied().unwrap_or(0) as f64 / 1024.0,
            "store_disk_mib": disk_bytes as f64 / 1048576.0,
            "store_logical_mib": logical as f64 / 1048576.0,
        }))
    }

    /// Twice the maximum rate for --overload-secs.
    async fn overload(&self, max: f64) -> anyhow::Result<Value> {
        let o = &self.opts;
        let site = "bench-overload";
        let agent = self.start_agent(site, o.devices).await?;
        let pid = agent.proc.pid();
        let rate = 2.0 * max;
        let args: Vec<String> = vec![
            "--rate".into(),
            format!("{rate:.0}"),
            "--duration".into(),
            o.overload_secs.to_string(),
            "--connections".into(),
            "2".into(),
        ];
        let publisher = self.publish(site, o.devices, &args);
        let t0 = Instant::now();
        // Watch RSS and the status API while the publisher runs.
        let mut peak_rss = 0u64;
        let mut slowest_status = 0f64;
        let mut status_failures = 0u64;
        let mut publisher = std::pin::pin!(publisher);
        let rep = loop {
            tokio::select! {
                r = &mut publisher => break r?,
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    peak_rss = peak_rss.max(rss_kib(pid).0);
                    let t = Instant::now();
                    match self.status(&agent).await {
                        Ok(_) => slowest_status = slowest_status.max(t.elapsed().as_secs_f64()),
                        Err(_) => status_failures += 1,
                    }
                }
            }
        };
        let published_secs = t0.elapsed().as_secs_f64();
        let acked = rep["acked"].as_u64().unwrap_or(0);
        let t1 = Instant::now();
        let deadline = t1 + Duration::from_secs(600);
        let mut processed = 0;
        while Instant::now() < deadline {
            peak_rss = peak_rss.max(rss_kib(pid).0);
            processed = unique(&self.status(&agent).await?);
            if processed >= acked {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let recovered = processed >= acked;
        let catch_up = t1.elapsed().as_secs_f64();
        let status = self.status(&agent).await?;
        let dup = status["pipeline"]["duplicates"].as_u64().unwrap_or(0);
        let reconnects = status["mqtt"]["disconnects"].clone();
        self.stop(agent)?;
        Ok(json!({
            "rate_target": rate, "publish_rate": rep["rate"], "publish_secs": published_secs,
            "published": rep["published"], "acked": acked, "processed": processed, "duplicates": dup,
            "mqtt_disconnects": reconnects,
            "lost": acked.saturating_sub(processed),
            "recovered": recovered, "catch_up_secs": catch_up,
            "rss_peak_mib": peak_rss as f64 / 1024.0,
            "status_slowest_s": slowest_status, "status_failures": status_failures,
        }))
    }

    /// `mosquitto_sub` on the bench's persistent QoS 1 session `bench-sub`.
    fn bench_sub(&self) -> Command {
        let mut cmd = Command::new("mosquitto_sub");
        let port = self.port.to_string();
        cmd.args(["-h", "127.0.0.1", "-p", &port, "-c", "-i", "bench-sub", "-q", "1"]);
        cmd
    }

    fn plugin(&self) -> anyhow::Result<Value> {
        let mut cmd = Command::new("cargo");
        cmd.current_dir(&self.root).args(["bench", "-p", "tend", "--bench", "plugin_overhead"]);
        if self.opts.plugin_quick {
            cmd.args(["--", "--quick"]);
        }
        let st = cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit()).status()?;
        if !st.success() {
            bail!("cargo bench plugin_overhead failed");
        }
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(
            self.root.join("target/bench/plugin_overhead.json"),
        )?)?;
        // The bench's document: per-plugin figures under `plugins`, and the figure
        // the target is about (the worst plugin's batched ratio) at the top.
        let plugins: BTreeMap<String, Value> =
            serde_json::from_value(doc["plugins"].clone()).unwrap_or_default();
        let sum = |k: &str| plugins.values().filter_map(|v| v[k].as_f64()).sum::<f64>();
        Ok(json!({
            "per_plugin": plugins.iter().map(|(k, v)| (k.clone(), json!({"ratio_single": v["ratio_single"], "ratio_batch64": v["ratio_batch64"]}))).collect::<BTreeMap<_, _>>(),
            "ratio_batch64": doc["plugin_overhead_ratio"],
            "ratio_batch64_all_plugins": sum("host_batch64_ns") / sum("native_batch64_ns"),
            "ratio_single_all_plugins": sum("host_single_ns") / sum("native_single_ns"),
        }))
    }
}

/// Bytes the store's files take on disk, and the logical bytes (keys + values) in it.
fn store_sizes(dir: &Path) -> anyhow::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fn walk(p: &Path, total: &mut u64) -> std::io::Result<()> {
        for e in std::fs::read_dir(p)? {
            let e = e?;
            let m = e.metadata()?;
            if m.is_dir() {
                walk(&e.path(), total)?;
            } else {
                *total += m.blocks() * 512;
            }
        }
        Ok(())
    }
    let mut disk = 0;
    walk(dir, &mut disk)?;
    let store = tend_agent::store::Store::open(dir, 1 << 20)
        .with_context(|| format!("opening the store {}", dir.display()))?;
    let logical = store.logical_bytes()?;
    Ok((disk, logical))
}

fn fmt(v: &Value) -> String {
    match v.as_f64() {
        Some(x) if x.is_nan() => "n/a".into(),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
        None if v.is_null() => "not run".into(),
        None => v.to_string(),
    }
}

/// The latency part's figures copied into the headline results.
const LATENCY_KEYS: [&str; 6] = [
    "latency_p50_ms",
    "latency_p99_ms",
    "mqtt_hop_p50_ms",
    "mqtt_hop_p99_ms",
    "first_start_requests",
    "first_start_drain_secs",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    let parts: Vec<&str> = opts.parts.split(',').map(str::trim).collect();
    let has = |p: &str| parts.contains(&p);
    for p in &parts {
        if !["ingest", "nodered", "plugin", "latency", "memory", "overload"].contains(p) {
            bail!("--parts: unknown part {p:?}");
        }
    }
    let keep = opts.keep;
    let bench = Bench::start(opts.clone())?;
    let mut detail = serde_json::Map::new();
    let mut res = serde_json::Map::new();
    for k in [
        "ingest_ratio",
        "tend_msgs_per_s",
        "mosquitto_sub_msgs_per_s",
        "nodered_msgs_per_s",
        "nodered_ratio",
        "plugin_overhead_ratio",
        "rss_10k_devices_mib",
        "store_disk_mib",
        "store_logical_mib",
        "overload_lost",
        "overload_rss_peak_mib",
        "overload_catch_up_s",
    ]
    .into_iter()
    .chain(LATENCY_KEYS)
    {
        res.insert(k.into(), Value::Null);
    }
    let mut max = opts.max_rate;
    if has("ingest") || has("nodered") {
        let runs = bench.ingest(has("nodered")).await?;
        let tend = median(runs.iter().map(|r| r.tend).collect());
        max = tend;
        res.insert("tend_msgs_per_s".into(), json!(tend));
        res.insert(
            "mosquitto_sub_msgs_per_s".into(),
            json!(median(runs.iter().map(|r| r.sub).collect())),
        );
        res.insert(
            "ingest_ratio".into(),
            json!(median(runs.iter().map(|r| r.tend / r.sub).collect())),
        );
        if has("nodered") {
            let nr: Vec<f64> = runs.iter().filter_map(|r| r.nodered).collect();
            res.insert("nodered_msgs_per_s".into(), json!(median(nr.clone())));
            res.insert(
                "nodered_ratio".into(),
                json!(median(runs.iter().filter_map(|r| Some(r.tend / r.nodered?)).collect())),
            );
        }
        detail.insert(
            "ingest_runs".into(),
            json!(
                runs.iter()
                    .map(|r| json!({"tend": r.tend, "mosquitto_sub": r.sub, "nodered": r.nodered}))
                    .collect::<Vec<_>>()
            ),
        );
    }
    if has("plugin") {
        let p = bench.plugin()?;
        res.insert("plugin_overhead_ratio".into(), p["ratio_batch64"].clone());
        detail.insert("plugin".into(), p);
    }
    if has("latency") {
        let l = bench.latency(max / 2.0).await?;
        for k in LATENCY_KEYS {
            res.insert(k.into(), l[k].clone());
        }
        detail.insert("latency".into(), l);
    }
    if has("memory") {
        let m = bench.memory().await?;
        res.insert("rss_10k_devices_mib".into(), m["rss_peak_mib"].clone());
        res.insert("store_disk_mib".into(), m["store_disk_mib"].clone());
        res.insert("store_logical_mib".into(), m["store_logical_mib"].clone());
        detail.insert("memory".into(), m);
    }
    if has("overload") {
        let v = bench.overload(max).await?;
        res.insert("overload_lost".into(), v["lost"].clone());
        res.insert("overload_rss_peak_mib".into(), v["rss_peak_mib"].clone());
        res.insert("overload_catch_up_s".into(), v["catch_up_secs"].clone());
        detail.insert("overload".into(), v);
    }
    let opts_json = json!({
        "parts": opts.parts, "runs": opts.runs, "backlog": opts.backlog, "devices": opts.devices,
        "latency_secs": opts.latency_secs, "memory_devices": opts.memory_devices,
        "soak_secs": opts.soak_secs, "overload_secs": opts.overload_secs,
        "broker_inflight": opts.broker_inflight,
        "central_in_flight": opts.central_in_flight,
    });
    res.insert("options".into(), opts_json);
    res.insert("detail".into(), Value::Object(detail));
    let out = bench.root.join("target/bench/results.json");
    std::fs::write(&out, serde_json::to_string_pretty(&res)? + "\n")?;

    let rows: [(&str, &str, &str); 15] = [
        ("ingest ratio (tend / mosquitto_sub)", "ingest_ratio", ">= 0.8"),
        ("tend run msgs/s", "tend_msgs_per_s", ""),
        ("mosquitto_sub -q 1 msgs/s", "mosquitto_sub_msgs_per_s", ""),
        ("Node-RED msgs/s", "nodered_msgs_per_s", ""),
        ("peer ratio (tend / Node-RED)", "nodered_ratio", "> 1"),
        ("plugin overhead (wasm / native)", "plugin_overhead_ratio", "<= 1.5"),
        ("fault -> ticket p50 ms", "latency_p50_ms", ""),
        ("fault -> ticket p99 ms", "latency_p99_ms", ""),
        ("publish -> mosquitto_sub p50 ms", "mqtt_hop_p50_ms", ""),
        ("publish -> mosquitto_sub p99 ms", "mqtt_hop_p99_ms", ""),
        ("first start: tickets sent / s to send", "first_start_requests", ""),
        ("peak RSS, 10k devices, MiB", "rss_10k_devices_mib", "<= 64"),
        ("store on disk / logical MiB", "store_disk_mib", ""),
        ("overload: messages lost", "overload_lost", "0"),
        ("overload: catch-up s / peak RSS MiB", "overload_catch_up_s", ""),
    ];
    println!("\n{:<40} {:>14} {:>8}", "figure", "value", "target");
    for (label, key, target) in rows {
        let mut v = fmt(&res[key]);
        if key == "store_disk_mib" {
            v = format!("{} / {}", v, fmt(&res["store_logical_mib"]));
        }
        if key == "first_start_requests" {
            v = format!("{} / {}", v, fmt(&res["first_start_drain_secs"]));
        }
        if key == "overload_catch_up_s" {
            v = format!("{} / {}", v, fmt(&res["overload_rss_peak_mib"]));
        }
        println!("{label:<40} {v:>14} {target:>8}");
    }
    println!("\n(medians of {} ingest runs; details in {})", opts.runs, out.display());
    if !keep {
        let _ = std::fs::remove_dir_all(&bench.work);
    }
    Ok(())
}
