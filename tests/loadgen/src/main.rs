//! `tend-loadgen`: the load fleet of `tend_simulate::fleet` on the command line.
//!
//!   tend-loadgen inventory --site S --devices N > site.toml
//!   tend-loadgen trace --site S --devices N --messages M > trace.jsonl
//!   tend-loadgen publish --url mqtt://127.0.0.1:1883 --site S --devices N [--rate R]
//!                        [--messages M | --duration SECS]
//!
//! `publish` prints one JSON line: published, acked, faults, secs, rate.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tend_simulate::fleet::{Fleet, PublishPlan, inventory, now_ms, publish};

#[derive(Parser)]
#[command(name = "tend-loadgen", about = "Simulated tend devices publishing telemetry over MQTT")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct FleetArgs {
    /// Site id (the {site} of the topics).
    #[arg(long, default_value = "bench")]
    site: String,
    /// Number of devices (types in turn: solar-water-heater, door-controller, av-system).
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Number of the first device (device ids are `swh-00000`, `door-00001`, ...).
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Percentage of readings that carry a fault.
    #[arg(long, default_value_t = 5.0)]
    fault_pct: f64,
    /// Seed of the fault choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// Prints the site inventory listing every device.
    Inventory {
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Prints readings as a trace (interfaces.md), one second apart, no broker.
    Trace {
        #[command(flatten)]
        fleet: FleetArgs,
        /// Number of readings.
        #[arg(long, default_value_t = 1000)]
        messages: u64,
    },
    /// Publishes readings at QoS 1 and prints a JSON report.
    Publish {
        #[command(flatten)]
        fleet: FleetArgs,
        /// Broker, mqtt://host:port.
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        url: String,
        /// Messages per second; 0 = as fast as the broker takes them.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Stop after this many messages.
        #[arg(long)]
        messages: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// MQTT connections (the devices are split between them).
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// QoS 1 messages in flight per connection.
        #[arg(long, default_value_t = 1000)]
        inflight: u16,
    },
}

fn fleet(a: &FleetArgs) -> Fleet {
    Fleet::new(&a.site, a.first, a.devices, a.fault_pct, a.seed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match cli.command {
        Cmd::Inventory { fleet: a } => {
            let text = inventory(&a.site, a.first + a.devices);
            out.write_all(text.as_bytes())?;
        }
        Cmd::Trace { fleet: a, messages } => {
            let mut f = fleet(&a);
            let t0 = now_ms();
            for k in 0..messages {
                let r = f.reading(t0 + 1000 * k as i64);
                writeln!(out, "{{\"topic\":\"{}\",\"payload\":{}}}", r.topic, r.payload)?;
            }
        }
        Cmd::Publish { fleet: a, url, rate, messages, duration, connections, inflight } => {
            let rest = url.strip_prefix("mqtt://").context("--url: only mqtt://host:port")?;
            let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
            let port = port.parse().with_context(|| format!("--url: bad port in {url}"))?;
            if messages.is_none() && duration.is_none() {
                anyhow::bail!("give --messages or --duration");
            }
            let plan = PublishPlan {
                host: host.to_owned(),
                port,
                rate,
                messages,
                duration: duration.map(Duration::from_secs_f64),
                connections,
                inflight,
            };
            let report = publish(&fleet(&a), &plan).await?;
            writeln!(out, "{}", serde_json::to_string(&report)?)?;
        }
    }
    out.flush()?;
    Ok(())
}
