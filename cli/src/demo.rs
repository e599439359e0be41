//! `tend demo` and `tend simulate`: glue around the simulators.
//!
//! `tend demo` runs everything in one process on loopback: the embedded MQTT broker,
//! the reference central service (with its desk page), the agent (the same code as
//! `tend run`, configured by a generated `agent.toml`) and the simulated devices of a
//! demo site with a fault schedule. It prints where everything is and a line per
//! ticket opened or updated (it polls the central list endpoint). Ctrl-C stops the
//! simulators, then the agent (which commits and delivers what it has), then the
//! central service; the broker's threads end with the process.
//!
//! Event time runs ahead of the wall clock (`--speed`); the simulators' clock is
//! saved in the data directory, so a second run over the same `--data-dir` resumes
//! where the first one stopped instead of going back in time.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::sync::watch;

use tend_agent::config::{Config, Inventory, MqttUrl, Sources};
use tend_simulate::demo::demo_inventory;
use tend_simulate::publish::{self, PublishConfig, PublishStats};
use tend_simulate::{Schedule, SimClock, Simulator};

/// The bearer token of the demo's central service.
pub const DEMO_TOKEN: &str = "demo-token";
/// How often the demo reads the central service's tickets.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How long the agent may take to subscribe at start.
const AGENT_READY_WAIT: Duration = Duration::from_secs(30);
/// File in the data directory holding the simulators' event time.
const CLOCK_FILE: &str = "simulator-clock";

/// Options of `tend demo` (also its command-line arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// Where to keep the data (default: a new temporary directory, kept).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Site inventory (default: the built-in demo site, configs/demo-site.toml).
    #[arg(long)]
    pub inventory: Option<PathBuf>,
    /// Directory of the compiled plugins (default: target/plugins, here or next
    /// to the binary).
    #[arg(long)]
    pub plugins: Option<PathBuf>,
    /// Fault schedule (default: the demo schedule).
    #[arg(long)]
    pub faults: Option<PathBuf>,
    /// Event seconds per real second.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Seed of the simulators.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The embedded MQTT broker's address.
    #[arg(long, default_value = "127.0.0.1:11883")]
    pub mqtt_listen: SocketAddr,
    /// The central service's (and desk page's) address.
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub central_listen: SocketAddr,
    /// The agent's status API address.
    #[arg(long, default_value = "127.0.0.1:19464")]
    pub api_listen: SocketAddr,
}

/// Options of `tend simulate` (also its command-line arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateOptions {
    /// The site inventory whose devices to simulate.
    #[arg(long)]
    pub inventory: PathBuf,
    /// The broker to publish to.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub mqtt: String,
    /// Event seconds per real second (60: an hour of event time per real minute).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Seed of the random numbers (the same seed gives the same messages).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A fault schedule (TOML: [[fault]] device, code, at, for; repeat_every).
    #[arg(long)]
    pub faults: Option<PathBuf>,
    /// A fault: DEVICE:CODE:AT:FOR, e.g. swh-roof-a1:overheat:1h:3h (repeatable).
    #[arg(long = "fault", value_name = "DEVICE:CODE:AT:FOR")]
    pub fault: Vec<String>,
    /// Add the demo's fault schedule (faults of every device type).
    #[arg(long)]
    pub demo_faults: bool,
    /// Event time at the start, RFC 3339 (default: now). Event time behind the
    /// wall clock makes a live agent take the devices for silent.
    #[arg(long)]
    pub start: Option<jiff::Timestamp>,
    /// Stop after this much event time (e.g. 2h, 3d).
    #[arg(long)]
    pub duration: Option<String>,
    /// Print the messages as trace lines on stdout instead of publishing, as fast
    /// as they are generated (needs --duration); feed them to `tend replay`.
    #[arg(long)]
    pub print: bool,
}

fn load_inventory(path: &Path) -> anyhow::Result<Inventory> {
    Inventory::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The schedule from the options: the demo's, a file's, `--fault`s, together.
fn schedule(
    inventory: &Inventory,
    demo: bool,
    file: Option<&Path>,
    cli: &[String],
) -> anyhow::Result<Schedule> {
    let mut s = if demo { Schedule::demo(inventory) } else { Schedule::default() };
    if let Some(f) = file {
        let loaded = Schedule::load(f)?;
        s.faults.extend(loaded.faults);
        s.repeat_every_ms = loaded.repeat_every_ms.or(s.repeat_every_ms);
    }
    for arg in cli {
        s.faults.push(Schedule::parse_cli(arg)?);
    }
    s.check(inventory)?;
    Ok(s)
}

/// `tend simulate`: publishes (or prints) the devices of an inventory.
pub async fn simulate(
    opts: SimulateOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let inventory = load_inventory(&opts.inventory)?;
    let schedule = schedule(&inventory, opts.demo_faults, opts.faults.as_deref(), &opts.fault)?;
    let start = opts.start.unwrap_or_else(jiff::Timestamp::now).as_millisecond();
    let clock = SimClock::new(start, opts.speed)?;
    let until = opts
        .duration
        .as_deref()
        .map(|d| {
            tend_agent::config::parse_duration(d).map_err(|e| anyhow::anyhow!("--duration: {e}"))
        })
        .transpose()?
        .map(|d| start + d.as_millis() as i64);
    let mut sim = Simulator::new(&inventory, &schedule, opts.seed, start)?;
    if opts.print {
        let Some(until) = until else {
            bail!("--print needs --duration (how much event time to write)")
        };
        use std::io::Write;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        // An hour at a time, so memory stays small for long runs.
        let mut t = start;
        while t < until {
            t = (t + 3_600_000).min(until);
            for p in sim.advance(t) {
                writeln!(out, "{}", p.trace_line()).context("writing to stdout")?;
            }
        }
        out.flush().context("writing to stdout")?;
        return Ok(());
    }
    let url = MqttUrl::parse(&opts.mqtt).map_err(|e| anyhow::anyhow!("--mqtt: {e}"))?;
    tracing::info!(
        site = %inventory.site,
        devices = inventory.devices.len(),
        faults = schedule.faults.len(),
        speed = opts.speed,
        broker = %opts.mqtt,
        "simulating"
    );
    let stats = Arc::new(PublishStats::default());
    let cfg =
        PublishConfig { url, client_id: format!("tend-sim-{}", inventory.site), until_ms: until };
    publish::run(sim, clock, cfg, Arc::clone(&stats), shutdown).await?;
    tracing::info!(published = stats.published.load(Ordering::Relaxed), "simulator stopped");
    Ok(())
}

/// Finds the compiled plugins: `target/plugins` under the current directory, or next
/// to the executable (`target/release/tend` -> `target/plugins`).
fn find_plugins() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("target/plugins")];
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        candidates.push(dir.join("../plugins"));
        candidates.push(dir.join("plugins"));
    }
    candidates.into_iter().find(|d| has_wasm(d))
}

fn has_wasm(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| e.path().extension().is_some_and(|x| x == "wasm"))
    })
}

/// Checks that `addr` can be listened on; port 0 becomes a free port.
fn free_addr(addr: SocketAddr, flag: &str) -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind(addr).with_context(|| {
        format!("cannot listen on {addr} ({flag}): the port is taken or not local; pick another with {flag}")
    })?;
    l.local_addr().context("reading a listening address")
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn abs(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
}

/// Runs the demo until `shutdown` completes (or a part fails).
pub async fn demo(opts: DemoOptions, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    // Data directory. A temporary one is removed again if the demo does not start.
    let (data_dir, mut temp) = match &opts.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .with_context(|| format!("creating the data directory {}", d.display()))?;
            (abs(d)?, None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("tend-demo-")
                .tempdir()
                .context("creating a temporary data directory")?;
            (t.path().to_owned(), Some(t))
        }
    };

    // Inventory, plugins, schedule.
    let inventory_path = match &opts.inventory {
        Some(p) => abs(p)?,
        None => {
            let p = data_dir.join("demo-site.toml");
            std::fs::write(&p, demo_inventory(jiff::Timestamp::now()))
                .with_context(|| format!("writing {}", p.display()))?;
            p
        }
    };
    let inventory = load_inventory(&inventory_path)?;
    let plugins = match &opts.plugins {
        Some(p) if has_wasm(p) => abs(p)?,
        Some(p) => bail!(
            "no plugins (*.wasm) in {}: build them with scripts/build-plugins.sh",
            p.display()
        ),
        None => abs(&find_plugins().context(
            "no compiled plugins found (looked in target/plugins and next to the tend binary): \
             build them with scripts/build-plugins.sh, or pass --plugins DIR",
        )?)?,
    };
    let schedule = schedule(&inventory, opts.faults.is_none(), opts.faults.as_deref(), &[])?;
    // Refuse a bad speed or an unsimulated device type before anything starts.
    SimClock::new(0, opts.speed)?;
    Simulator::new(&inventory, &schedule, opts.seed, 0)?;

    eprintln!(
        "starting: MQTT broker, central service, agent (the first start compiles the plugins: a few seconds) ..."
    );
    // Ports: all checked before anything starts.
    let api = free_addr(opts.api_listen, "--api-listen")?;
    let central_std = TcpListener::bind(opts.central_listen).with_context(|| {
        format!(
            "cannot listen on {} (--central-listen): the port is taken or not local; pick another with --central-listen",
            opts.central_listen
        )
    })?;
    central_std.set_nonblocking(true).context("setting up the central listener")?;
    let central_addr = central_std.local_addr().context("reading the central address")?;
    let central_listener = tokio::net::TcpListener::from_std(central_std)
        .context("setting up the central listener")?;
    let mqtt_listen = opts.mqtt_listen;
    let broker = tokio::task::spawn_blocking(move || {
        tend_agent::ingest::broker::start_embedded(mqtt_listen)
    })
    .await
    .context("starting the embedded MQTT broker")?
    .map_err(|e| anyhow::anyhow!("{e} (pick another port with --mqtt-listen)"))?;
    let mqtt_addr = broker.addr();
    let central_url = format!("http://{central_addr}");

    // Central service.
    let (stop_central_tx, mut stop_central_rx) = watch::channel(false);
    let central_cfg = tend_central::CentralConfig::new(data_dir.join("central"), DEMO_TOKEN);
    let mut central =
        tokio::spawn(tend_central::serve(central_listener, central_cfg, async move {
            let _ = stop_central_rx.wait_for(|s| *s).await;
        }));

    // Agent.
    let config_path = data_dir.join("agent.toml");
    let config_text = format!(
        "# Generated by `tend demo`.\n\
         inventory = {inventory}\n\n\
         [mqtt]\nurl = {mqtt}\nclient_id = \"tend-demo-agent\"\n\n\
         [central]\nurl = {central}\ntoken = {token}\n\
         # Quick read-back, so tickets closed on the desk reach the agent soon.\n\
         sync_interval = \"5s\"\nbackoff_max = \"30s\"\n\n\
         [store]\ndata_dir = {store}\n\n\
         [plugins]\ndir = {plugins}\n\n\
         [api]\nlisten = {api}\n\n\
         # The simulated devices' clock runs --speed times faster than the wall clock:\n\
         # their readings are ahead of arrival by design.\n\
         [ingest]\nmax_clock_skew = \"off\"\n",
        inventory = toml_str(&inventory_path.to_string_lossy()),
        mqtt = toml_str(&format!("mqtt://{mqtt_addr}")),
        central = toml_str(&central_url),
        token = toml_str(DEMO_TOKEN),
        store = toml_str(&data_dir.join("agent").to_string_lossy()),
        plugins = toml_str(&plugins.to_string_lossy()),
        api = toml_str(&api.to_string()),
    );
    std::fs::write(&config_path, &config_text)
        .with_context(|| format!("writing {}", config_path.display()))?;
    // The demo is self-contained: the TEND_* environment overrides do not apply.
    let no_env = |_: &str| None;
    let read = |p: &Path| std::fs::read_to_string(p);
    let sources = Sources { env: &no_env, read: &read, today: jiff::ZonedDateTime::now().date() };
    let config = Config::load_with(&config_path, &sources).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (stop_agent_tx, mut stop_agent_rx) = watch::channel(false);
    let mut agent = tokio::spawn(tend_agent::run::run(config, async move {
        let _ = stop_agent_rx.wait_for(|s| *s).await;
    }));

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("setting up an HTTP client")?;
    let mut shutdown = pin!(shutdown);

    // Wait for the agent's subscription, so no simulated message is lost.
    let ready = async {
        loop {
            let health = http.get(format!("http://{api}/health")).send().await;
            if let Ok(r) = health
                && let Ok(v) = r.json::<Value>().await
                && v["mqtt_ready"] == true
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let started = tokio::select! {
        () = ready => Ok(true),
        () = &mut shutdown => Ok(false),
        r = &mut agent => Err(match r {
            Ok(Ok(())) => anyhow::anyhow!("the agent stopped while starting"),
            Ok(Err(e)) => e.context("the agent failed to start"),
            Err(e) => anyhow::anyhow!("the agent failed to start: {e}"),
        }),
        () = tokio::time::sleep(AGENT_READY_WAIT) => Err(anyhow::anyhow!(
            "the agent did not subscribe to the broker within {AGENT_READY_WAIT:?}"
        )),
    };
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            stop_agent_tx.send_replace(true);
            let _ = agent.await;
            stop_central_tx.send_replace(true);
            let _ = central.await;
            return Err(e);
        }
    };

    // Simulators.
    let clock_file = data_dir.join(CLOCK_FILE);
    let saved =
        std::fs::read_to_string(&clock_file).ok().and_then(|s| s.trim().parse::<i64>().ok());
    let start_ms = jiff::Timestamp::now().as_millisecond().max(saved.unwrap_or(i64::MIN) + 1000);
    let clock = SimClock::new(start_ms, opts.speed)?;
    let sim = Simulator::new(&inventory, &schedule, opts.seed, start_ms)?;
    let stats = Arc::new(PublishStats::default());
    let (stop_sim_tx, mut stop_sim_rx) = watch::channel(false);
    let sim_cfg = PublishConfig {
        url: MqttUrl::parse(&format!("mqtt://{mqtt_addr}")).map_err(|e| anyhow::anyhow!("{e}"))?,
        client_id: format!("tend-demo-devices-{}", inventory.site),
        until_ms: None,
    };
    let mut sims =
        tokio::spawn(publish::run(sim, clock, sim_cfg, Arc::clone(&stats), async move {
            let _ = stop_sim_rx.wait_for(|s| *s).await;
        }));

    if let Some(t) = temp.take() {
        // Started: the data stays for the user to look at.
        let _ = t.keep();
    }
    if started {
        print_banner(
            &inventory,
            &schedule,
            &opts,
            &central_url,
            api,
            mqtt_addr,
            &data_dir,
            start_ms,
        );
    }

    // Watch the tickets until Ctrl-C or a failure.
    let mut watcher = Watcher::default();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut failure: Option<anyhow::Error> = None;
    let mut sims_done = false;
    let mut agent_done = false;
    let mut central_done = false;
    if started {
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = tick.tick() => watcher.poll(&http, &central_url).await,
                r = &mut sims => {
                    sims_done = true;
                    failure = Some(match r {
                        Ok(Ok(())) => anyhow::anyhow!("the simulators stopped"),
                        Ok(Err(e)) => anyhow::Error::new(e).context("the simulators failed"),
                        Err(e) => anyhow::anyhow!("the simulators failed: {e}"),
                    });
                    break;
                }
                r = &mut agent => {
                    agent_done = true;
                    failure = Some(match r {
                        Ok(Ok(())) => anyhow::anyhow!("the agent stopped"),
                        Ok(Err(e)) => e.context("the agent failed"),
                        Err(e) => anyhow::anyhow!("the agent failed: {e}"),
                    });
                    break;
                }
                r = &mut central => {
                    central_done = true;
                    failure = Some(match r {
                        Ok(Ok(())) => anyhow::anyhow!("the central service stopped"),
                        Ok(Err(e)) => e.context("the central service failed"),
                        Err(e) => anyhow::anyhow!("the central service failed: {e}"),
                    });
                    break;
                }
            }
        }
    }

    // Stop in order: devices, agent (commits, delivers), central. A second Ctrl-C
    // while stopping gives up on that.
    eprintln!("stopping: simulators, agent, central service ... (Ctrl-C again to force)");
    let force = tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("forced exit: the last batch may be redelivered and resent next time");
            std::process::exit(130);
        }
    });
    stop_sim_tx.send_replace(true);
    if !sims_done {
        match sims.await {
            Ok(Err(e)) => tracing::error!(error = %e, "the simulators failed while stopping"),
            Err(e) => tracing::error!(error = %e, "the simulators failed while stopping"),
            Ok(Ok(())) => {}
        }
    }
    let reached = stats.event_ms.load(Ordering::Relaxed);
    if reached > 0
        && let Err(e) = std::fs::write(&clock_file, reached.to_string())
    {
        tracing::warn!(error = %e, file = %clock_file.display(), "cannot save the simulators' clock");
    }
    stop_agent_tx.send_replace(true);
    if !agent_done {
        match agent.await {
            Ok(Err(e)) => failure = failure.or(Some(e.context("the agent failed while stopping"))),
            Err(e) => failure = failure.or(Some(anyhow::anyhow!("the agent failed: {e}"))),
            Ok(Ok(())) => {}
        }
    }
    if !central_done {
        watcher.poll(&http, &central_url).await;
    }
    stop_central_tx.send_replace(true);
    if !central_done {
        match central.await {
            Ok(Err(e)) => failure = failure.or(Some(e.context("the central service failed"))),
            Err(e) => {
                failure = failure.or(Some(anyhow::anyhow!("the central service failed: {e}")))
            }
            Ok(Ok(())) => {}
        }
    }
    force.abort();
    drop(broker);
    println!(
        "stopped: {} messages published, {} tickets at the central service; data kept in {}",
        stats.published.load(Ordering::Relaxed),
        watcher.seen.len(),
        data_dir.display()
    );
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
fn print_banner(
    inventory: &Inventory,
    schedule: &Schedule,
    opts: &DemoOptions,
    central_url: &str,
    api: SocketAddr,
    mqtt: SocketAddr,
    data_dir: &Path,
    start_ms: i64,
) {
    let mut types: std::collections::BTreeMap<&str, usize> = Default::default();
    for d in &inventory.devices {
        *types.entry(d.equipment_type.as_str()).or_default() += 1;
    }
    let types: Vec<String> = types.iter().map(|(t, n)| format!("{n} {t}")).collect();
    let start = tend_agent::maintenance::calendar::rfc3339(
        jiff::Timestamp::from_millisecond(start_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        &inventory.timezone,
    );
    println!(
        "tend demo: site {} with {} devices ({})",
        inventory.site,
        inventory.devices.len(),
        types.join(", ")
    );
    println!(
        "  simulated clock: {}x from {start} ({} of event time per real minute), {} faults scheduled",
        opts.speed,
        tend_agent::config::format_duration(jiff::SignedDuration::from_secs(
            (opts.speed * 60.0) as i64
        )),
        schedule.faults.len()
    );
    println!("  desk:          {central_url}/desk");
    println!("  central API:   {central_url}/api/v1/tickets  (Authorization: Bearer {DEMO_TOKEN})");
    println!("  agent status:  http://{api}/status");
    println!("  MQTT broker:   mqtt://{mqtt}  (topics tend/{}/+/+)", inventory.site);
    println!("  data:          {}", data_dir.display());
    println!("Tickets appear below as the agent opens and updates them. Ctrl-C stops everything.");
    println!(
        "Try a maintenance window: open an inspection ticket on the desk and press \"Start work\"; \
         that device's faults stay quiet (shown as suppressed in `tend device show`) until the \
         ticket is closed, then what is still active opens."
    );
}

/// Prints a line per ticket opened and per change to a ticket.
#[derive(Default)]
struct Watcher {
    /// Per ticket id: status and number of events printed.
    seen: std::collections::HashMap<String, (String, usize)>,
    failing: bool,
}

impl Watcher {
    async fn poll(&mut self, http: &reqwest::Client, central: &str) {
        let list = async {
            http.get(format!("{central}/api/v1/tickets"))
                .bearer_auth(DEMO_TOKEN)
                .send()
                .await?
                .error_for_status()?
                .json::<Value>()
                .await
        };
        let list = match list.await {
            Ok(v) => {
                self.failing = false;
                v
            }
            Err(e) => {
                if !self.failing {
                    eprintln!("cannot read the tickets from the central service: {e}");
                }
                self.failing = true;
                return;
            }
        };
        let mut tickets: Vec<&Value> =
            list["tickets"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        tickets.sort_by(|a, b| a["number"].as_str().cmp(&b["number"].as_str()));
        for t in tickets {
            for line in self.changes(t) {
                println!("{line}");
            }
        }
    }

    /// The lines for what is new about ticket `t`.
    fn changes(&mut self, t: &Value) -> Vec<String> {
        let s = |v: &Value| v.as_str().unwrap_or("?").to_owned();
        let tk = &t["ticket"];
        let id = s(&tk["ticket_id"]);
        let number = s(&t["number"]);
        let status = s(&t["status"]);
        let events = t["events"].as_array().cloned().unwrap_or_default();
        let device = format!("{} ({})", s(&tk["device"]["id"]), s(&tk["device"]["type"]));
        let mut out = Vec::new();
        let (old_status, printed) = match self.seen.get(&id) {
            Some((st, n)) => (Some(st.clone()), *n),
            None => {
                let level =
                    tk["severity"].as_u64().map(|l| format!("L{l}")).unwrap_or_else(|| "  ".into());
                out.push(format!(
                    "{} {number} opened     {:<10} {level} {device:<40} {}: {}",
                    hhmm(&tk["opened_at"]),
                    s(&tk["kind"]),
                    s(&tk["code"]),
                    s(&tk["title"])
                ));
                (None, 0)
            }
        };
        for e in events.iter().skip(printed) {
            let ev = &e["event"];
            let what = match ev["type"].as_str().unwrap_or("?") {
                "escalated" => format!("escalated  to L{}", ev["severity"]),
                "recurred" => format!("recurred   (occurrence {})", ev["count"]),
                other => format!("{other:<10}"),
            };
            let note = ev["note"].as_str().map(|n| format!(": {n}")).unwrap_or_default();
            out.push(format!(
                "{} {number} {what} {device} {}{note}",
                hhmm(&ev["at"]),
                s(&tk["code"])
            ));
        }
        if old_status.as_deref().is_some_and(|o| o != status)
            || (old_status.is_none() && status != "open")
        {
            out.push(format!(
                "      {number} {status:<10} {device} {} (at the desk)",
                s(&tk["code"])
            ));
        }
        self.seen.insert(id, (status, events.len()));
        out
    }
}

/// `HH:MM` of an RFC 3339 time (event time, in the site's offset).
fn hhmm(v: &Value) -> String {
    v.as_str().and_then(|s| s.get(11..16)).unwrap_or("--:--").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_site_has_inspections_due_this_week() {
        let now: jiff::Timestamp = "2026-11-24T02:00:00Z".parse().unwrap();
        let text = demo_inventory(now);
        let today = jiff::civil::date(2026, 11, 24);
        let inv = Inventory::from_str(&text, Path::new("demo-site.toml"), today).unwrap();
        let commissioned = |id: &str| inv.device(id).unwrap().commissioned;
        assert_eq!(commissioned("swh-roof-1"), jiff::civil::date(2026, 5, 27));
        assert_eq!(commissioned("av-hall"), jiff::civil::date(2026, 8, 27));
        assert_eq!(inv.devices.len(), 9);
    }
}
