//! The `tend` command: glue between the command line and the libraries (the agent,
//! the reference central service, the simulators, the register).

mod demo;
mod scaffold;

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use tend_agent::plugins::{Limits, PluginEngine, PluginSource, set, trial};

/// tend keeps building equipment serviced: device telemetry over MQTT in,
/// WebAssembly equipment plugins, fault and inspection tickets out.
#[derive(Parser)]
#[command(name = "tend", version, about)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The agent, live: MQTT in, tickets out, until SIGINT/SIGTERM (graceful).
    Run {
        /// The agent's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// The live pipeline over a recorded trace, in event time; prints every request
    /// it would send to the central service as a JSON line and sends nothing.
    Replay {
        /// The agent's config file.
        #[arg(long)]
        config: PathBuf,
        /// The trace: one `{"topic": ..., "payload": ...}` a line (`-` for stdin).
        trace: PathBuf,
    },
    /// Validate config, inventory and plugins; print every problem with file and key.
    Check {
        /// The agent's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// The reference central ticket service (the API of central-api.md) with its desk
    /// page; `tend central site …` and `tend central user …` administer its database.
    Central {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Where the service keeps its SQLite database (`central.db`).
        #[arg(long, default_value = "target/central-data", global = true)]
        data_dir: PathBuf,
        /// A PostgreSQL database instead (`postgres://user:password@host/db`); several
        /// `tend central` processes may share it.
        #[arg(long, env = "TEND_CENTRAL_DATABASE_URL", global = true)]
        database_url: Option<String>,
        /// A shared bearer token that may act for every site (the demo's shortcut);
        /// sites' own tokens come from `tend central site add`.
        #[arg(long, env = "TEND_CENTRAL_TOKEN")]
        token: Option<String>,
        /// The shared token from a file (its first line), so it is on no command line.
        #[arg(long, conflicts_with = "token")]
        token_file: Option<PathBuf>,
        /// A token that signs in to the desk with an empty user name (default: the
        /// shared token); desk users come from `tend central user add`.
        #[arg(long, env = "TEND_DESK_TOKEN")]
        desk_token: Option<String>,
        /// The service sits behind TLS (a reverse proxy): desk cookies are `Secure`.
        #[arg(long)]
        behind_tls: bool,
        /// Most connections open at once.
        #[arg(long, default_value_t = tend_central::Limits::default().max_connections)]
        max_connections: usize,
        #[command(subcommand)]
        admin: Option<CentralAdmin>,
    },
    /// Simulated devices of a site inventory publishing over MQTT, with injected faults,
    /// on an accelerated clock (payload times are event time).
    Simulate(demo::SimulateOptions),
    /// Everything on one machine: embedded broker, central service with its desk page,
    /// simulated devices of a demo site with faults, and the agent. Ctrl-C stops it.
    Demo(demo::DemoOptions),
    /// Develop and inspect equipment plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// The device archive: inventory and everything that happened to each device.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// The equipment and operation register for a month, quarter or year, as
    /// Markdown and a standalone HTML page with charts.
    Report {
        /// The agent's config file.
        #[arg(long)]
        config: PathBuf,
        /// `2026-Q3`, `2026-09` or `2026`; default: the last finished quarter.
        #[arg(long)]
        period: Option<String>,
        /// Directory for `register-{site}-{period}.md` and `.html`.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Print the register's content as JSON instead of writing files.
        #[arg(long)]
        json: bool,
    },
    /// Preventive inspections recorded on site.
    Inspection {
        #[command(subcommand)]
        command: InspectionCommand,
    },
    /// Maintenance windows declared by site staff: a device's faults are recorded but
    /// page nobody while a technician works on it.
    Maintenance {
        #[command(subcommand)]
        command: MaintenanceCommand,
    },
}

#[derive(Subcommand)]
enum MaintenanceCommand {
    /// Start (or restart) a maintenance window of a device, from now.
    Start {
        /// The agent's config file.
        #[arg(long)]
        config: PathBuf,
        /// Device id.
        device: String,
        /// How long (like 30m, 2h); default `alarms.maintenance.default_window` (2h),
        /// at most `alarms.maintenance.max_window` (24h).
        #[arg(long = "for")]
        length: Option<String>,
        /// A note for the device archive.
        #[arg(long)]
        note: Option<String>,
    },
    /// End a device's declared maintenance window now: what is still active opens its
    /// ticket.
    End {
        /// The agent's config file.
        #[arg(long)]
        config: PathBuf,
        /// Device id.
        device: String,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Every device with its status, next inspection, warranty and downtime.
    List {
        /// The agent's config file.
        #[arg(long)]
        config: PathBuf,
        /// Print the archive as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One device's file: facts, meters, warranty, inspections, open faults, history.
    Show {
        /// The agent's config file.
        #[arg(long)]
        config: PathBuf,
        /// Device id.
        id: String,
        /// Print as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum InspectionCommand {
    /// Record an inspection done on site: closes its ticket at the central service and
    /// restarts the plan's schedule from the completion time.
    Complete {
        /// The agent's config file.
        #[arg(long)]
        config: PathBuf,
        /// Device id.
        device: String,
        /// Inspection plan id (see `tend device show`).
        plan: String,
        /// When it was done (RFC 3339 with offset, or a local `YYYY-MM-DD[THH:MM]` in
        /// the site's time zone); default now.
        #[arg(long)]
        at: Option<String>,
        /// A note for the record.
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run one plugin over a trace and print each condition change as a JSON line.
    Test {
        /// The plugin component (`.wasm`).
        plugin: PathBuf,
        /// The equipment type the trace's devices are (must be the plugin's).
        #[arg(long)]
        device_type: String,
        /// The trace: one `{"topic": ..., "payload": ...}` a line (`-` for stdin).
        trace: PathBuf,
        /// Per-device settings handed to the plugin, as a JSON object.
        #[arg(long, default_value = "{}")]
        settings: String,
        /// Device model handed to the plugin.
        #[arg(long, default_value = "")]
        model: String,
    },
    /// Print a plugin's self-description (fault codes, meters, warranty, inspections) as JSON.
    Describe {
        /// The plugin component (`.wasm`).
        plugin: PathBuf,
    },
    /// Create a plugin project (Rust or Python) that builds and passes `tend plugin test`.
    New(scaffold::NewArgs),
}

/// glibc gives every thread that allocates an arena of its own (up to eight per core)
/// and keeps what each freed: the agent's pipeline thread, tokio's workers and the store's
/// threads each held their own high-water mark. Two arenas cut the peak RSS of a
/// 10,000-device site by about a fifth (tests/bench, memory part). `MALLOC_ARENA_MAX`
/// in the environment still decides when set.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it is called first thing
        // in main, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
    // A fixed mmap threshold: glibc otherwise raises it (up to 32 MiB) each time a
    // large block is freed, after which large buffers (hash tables, read batches)
    // come from the heap and their pages stay with the process when freed. With it
    // fixed they are mapped and unmapped, and the heap's top is returned from 1 MiB.
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: as above.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    // The demo prints its own lines; its parts log only warnings unless TEND_LOG says
    // (and the embedded broker's logs, which report every closed connection as an
    // error, not at all).
    let default_level =
        if matches!(cli.command, Command::Demo(_)) { "warn,rumqttd=off" } else { "info" };
    init_logging(cli.log_json, default_level);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(json: bool, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TEND_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let config =
                tend_agent::config::Config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(tend_agent::run::run(config, shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin { command } => plugin_command(command),
        Command::Device { command } => device_command(command),
        Command::Report { config, period, out, json } => {
            report_command(&config, period, &out, json)
        }
        Command::Inspection {
            command: InspectionCommand::Complete { config, device, plan, at, note },
        } => {
            let config =
                tend_agent::config::Config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let at_ms = match at {
                Some(text) => parse_when(&text, &config.inventory.timezone)?,
                None => jiff::Timestamp::now().as_millisecond(),
            };
            let completion = tend_agent::local::Completion { device, plan, at_ms, note };
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let line = rt.block_on(tend_agent::local::complete(&config, completion))?;
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Maintenance { command } => {
            let (config, request) = match command {
                MaintenanceCommand::Start { config, device, length, note } => {
                    let length_ms = match length {
                        Some(text) => Some(
                            tend_agent::config::parse_duration(&text)
                                .map_err(|e| anyhow::anyhow!("--for: {e}"))?
                                .as_millis() as i64,
                        ),
                        None => None,
                    };
                    let request = tend_agent::local::MaintenanceRequest {
                        device,
                        start: true,
                        length_ms,
                        note,
                    };
                    (config, request)
                }
                MaintenanceCommand::End { config, device } => {
                    let request = tend_agent::local::MaintenanceRequest {
                        device,
                        start: false,
                        length_ms: None,
                        note: None,
                    };
                    (config, request)
                }
            };
            let config =
                tend_agent::config::Config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let line = rt.block_on(tend_agent::local::maintenance(&config, request))?;
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate(opts) => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(demo::simulate(opts, shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(opts) => {
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(demo::demo(opts, shutdown_signal()))?;
            // rumqttd has no shutdown: its threads end with the process, now.
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay { config, trace } => {
            let config =
                tend_agent::config::Config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let s = tend_agent::app::replay(&config, open_trace(&trace)?, &mut out)?;
            let c = s.counters;
            eprintln!(
                "{} lines, {} requests; {} unknown device, {} bad topic, {} invalid, {} duplicates, {} plugin failures",
                s.lines,
                s.requests,
                c.unknown_device,
                c.bad_topic,
                c.invalid,
                c.duplicates,
                c.plugin_failures
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config } => {
            let (problems, report) = tend_agent::app::check(&config);
            for line in &report {
                println!("{line}");
            }
            if problems.is_empty() {
                println!("ok: {}", config.display());
                Ok(ExitCode::SUCCESS)
            } else {
                for p in &problems {
                    eprintln!("{p}");
                }
                eprintln!("{} problem(s)", problems.len());
                Ok(ExitCode::from(1))
            }
        }
        Command::Central {
            listen,
            data_dir,
            database_url,
            token,
            token_file,
            desk_token,
            behind_tls,
            max_connections,
            admin,
        } => {
            let token = match token_file {
                Some(file) => Some(read_token_file(&file)?),
                None => token,
            };
            let database = tend_central::Database::choose(&data_dir, database_url.as_deref());
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(async move {
                match admin {
                    Some(CentralAdmin::Site(command)) => {
                        tend_central::admin::site(&database, command, &mut std::io::stdout()).await
                    }
                    Some(CentralAdmin::User(command)) => {
                        let mut input = std::io::stdin().lock();
                        tend_central::admin::user(
                            &database,
                            command,
                            &mut input,
                            &mut std::io::stdout(),
                        )
                        .await
                    }
                    None => {
                        let listener = tokio::net::TcpListener::bind(listen)
                            .await
                            .with_context(|| format!("cannot listen on {listen}"))?;
                        let mut cfg = tend_central::CentralConfig::on(database, token);
                        cfg.desk_token = desk_token;
                        cfg.behind_tls = behind_tls;
                        cfg.limits.max_connections = max_connections;
                        tend_central::serve(listener, cfg, shutdown_signal()).await
                    }
                }
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A time given on the command line: RFC 3339 with an offset, or a local date or
/// date-time in the site's zone.
fn parse_when(text: &str, tz: &jiff::tz::TimeZone) -> anyhow::Result<i64> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let local = text
        .parse::<jiff::civil::DateTime>()
        .or_else(|_| {
            text.parse::<jiff::civil::Date>().map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        })
        .with_context(|| {
            format!("--at {text:?}: write 2026-11-24T15:30+08:00, 2026-11-24T15:30 or 2026-11-24")
        })?;
    let t = tz.to_timestamp(local).with_context(|| format!("--at {text:?} is out of range"))?;
    Ok(t.as_millisecond())
}

fn report_command(
    config: &std::path::Path,
    period: Option<String>,
    out: &std::path::Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use tend_report::{Period, PeriodKind};
    let config = tend_agent::config::Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let period = match period {
        Some(p) => Period::parse(&p)?,
        None => {
            let today =
                jiff::Timestamp::now().to_zoned_datetime(config.inventory.timezone.clone()).date();
            Period::containing(PeriodKind::Quarter, today)?.previous()?
        }
    };
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let archive = rt.block_on(tend_agent::local::archive(&config, None))?;
    let register = tend_report::build(&archive, &period)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&register)?);
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let stem = format!("register-{}-{period}", archive.site);
    let (md, html) = (out.join(format!("{stem}.md")), out.join(format!("{stem}.html")));
    std::fs::write(&md, register.to_markdown())
        .with_context(|| format!("writing {}", md.display()))?;
    std::fs::write(&html, register.to_html())
        .with_context(|| format!("writing {}", html.display()))?;
    println!("{}", register.summary_line());
    println!("{}\n{}", md.display(), html.display());
    Ok(ExitCode::SUCCESS)
}

fn device_command(command: DeviceCommand) -> anyhow::Result<ExitCode> {
    let (config, id, json) = match command {
        DeviceCommand::List { config, json } => (config, None, json),
        DeviceCommand::Show { config, id, json } => (config, Some(id), json),
    };
    let config = tend_agent::config::Config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let archive = rt.block_on(tend_agent::local::archive(&config, id.as_deref()))?;
    let text = match (&id, json) {
        (None, true) => serde_json::to_string_pretty(&archive)?,
        (Some(_), true) => serde_json::to_string_pretty(&archive.devices.first())?,
        (None, false) => tend_agent::local::text::list(&archive),
        (Some(id), false) => {
            let d = archive
                .devices
                .iter()
                .find(|d| &d.device.id == id)
                .with_context(|| format!("device `{id}` not found"))?;
            tend_agent::local::text::show(&archive, d)
        }
    };
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn open_trace(trace: &std::path::Path) -> anyhow::Result<Box<dyn std::io::BufRead>> {
    Ok(if trace.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(trace)
            .with_context(|| format!("cannot open trace {}", trace.display()))?;
        Box::new(BufReader::new(f))
    })
}

fn load_plugin(path: &std::path::Path) -> anyhow::Result<tend_agent::plugins::WasmPlugin> {
    let engine = PluginEngine::new(None).context("starting the wasm engine")?;
    let src = PluginSource { path: path.to_owned(), sha256: None };
    Ok(set::load_one(&engine, &src, Limits::default())?)
}

fn plugin_command(command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Test { plugin, device_type, trace, settings, model } => {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&settings)
                .context("--settings must be a JSON object")?;
            let mut p = load_plugin(&plugin)?;
            if p.equipment_type() != device_type {
                bail!(
                    "{} serves equipment type `{}`, not `{device_type}`",
                    plugin.display(),
                    p.equipment_type()
                );
            }
            let reader = open_trace(&trace)?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let opts = trial::TrialOptions { settings, model };
            let s = trial::run(&mut p, reader, &opts, &mut out)?;
            out.flush()?;
            eprintln!(
                "{} messages, {} condition changes, {} rejected, {} plugin failures",
                s.messages, s.changes, s.rejected, s.plugin_failures
            );
            Ok(if s.plugin_failures > 0 { ExitCode::from(2) } else { ExitCode::SUCCESS })
        }
        PluginCommand::Describe { plugin } => {
            let p = load_plugin(&plugin)?;
            let d = serde_json::to_string_pretty(p.description())?;
            println!("{d}");
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::New(args) => scaffold::run(&args).map(|()| ExitCode::SUCCESS),
    }
}

/// `tend central site …` and `tend central user …`.
#[derive(Debug, Subcommand)]
enum CentralAdmin {
    /// Sites and their agents' tokens.
    #[command(subcommand)]
    Site(tend_central::admin::SiteCommand),
    /// People who use the desk.
    #[command(subcommand)]
    User(tend_central::admin::UserCommand),
}

/// The first line of a token file, trimmed; an empty or unreadable file is an error
/// naming the file.
fn read_token_file(file: &std::path::Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the token file {}", file.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        anyhow::bail!("the token file {} is empty", file.display());
    }
    Ok(token)
}
