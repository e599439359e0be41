//! The central service's benchmark (prints figures; not a timed test):
//!
//! 1. tickets created per second by `--agents` concurrent simulated agents (each a
//!    site with its own token and HTTP connection, creating tickets one after the
//!    other for `--seconds`), through real HTTP;
//! 2. the desk queue page (`GET /desk`) with `--tickets` tickets in the database:
//!    p50 / p99 / max over `--pages` sequential loads.
//!
//! On SQLite (a file in a temp dir) and on PostgreSQL (Debian's, a throw-away server
//! with `fsync` on, in a temp dir): `--backend sqlite|postgres|both`.
//!
//! `cargo run --release -p tend-central --features testing --example bench -- --help`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use serde_json::{Value, json};
use tend_central::store::{Store, format_number};
use tend_central::testing::{Postgres, TestServer};
use tend_central::{CentralConfig, Database};
use tend_wire::model::{NewTicket, WireTime};

#[derive(Debug, Parser)]
struct Args {
    /// `sqlite`, `postgres` or `both`.
    #[arg(long, default_value = "both")]
    backend: String,
    /// Concurrent simulated agents (one site each).
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// How long the agents create tickets.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Tickets in the database for the desk measurement.
    #[arg(long, default_value_t = 100_000)]
    tickets: usize,
    /// Queue page loads measured.
    #[arg(long, default_value_t = 100)]
    pages: usize,
    /// Keep the SQLite database in this (new) directory instead of a temp dir.
    #[arg(long)]
    keep: Option<std::path::PathBuf>,
}

const DESK_TOKEN: &str = "bench-desk";

fn ticket(site: &str, n: usize) -> Value {
    let now = jiff::Timestamp::now();
    let minutes = i64::try_from(n % 600).unwrap_or(0) - 300;
    let respond = now + jiff::SignedDuration::from_mins(minutes);
    let offset = jiff::tz::Offset::constant(8);
    let types = ["solar-water-heater", "door-controller", "av-system"];
    json!({
        "ticket_id": format!("{site}/dev-{}/code/{n}", n % 50),
        "kind": "fault", "site": site,
        "device": {"id": format!("dev-{}", n % 50), "type": types[n % 3], "model": "M-1",
                   "location": "Block A"},
        "code": "tank_leak", "severity": 1 + n % 4, "title": format!("Fault {n}"),
        "description": "Seen by the agent; details in the evidence.",
        "opened_at": now.display_with_offset(offset).to_string(),
        "sla": {"respond_by": respond.display_with_offset(offset).to_string()},
        "evidence": [{"ts": now.display_with_offset(offset).to_string(), "field": "tank_level_pct", "value": 71.5}],
        "occurrence": 1,
    })
}

/// Tickets created per second by `agents` agents for `seconds`.
async fn create_rate(
    server: &TestServer,
    tokens: &[String],
    seconds: u64,
) -> anyhow::Result<(usize, f64)> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, token) in tokens.iter().enumerate() {
        let (url, token) = (server.at("/api/v1/tickets"), token.clone());
        tasks.spawn(async move {
            let http = reqwest::Client::new();
            let site = format!("site-{i:03}");
            let mut made = 0usize;
            while Instant::now() < deadline {
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("idempotency-key", format!("{site}/{made}"))
                    .json(&ticket(&site, made))
                    .send()
                    .await?;
                anyhow::ensure!(response.status() == 201, "create answered {}", response.status());
                made += 1;
            }
            Ok(made)
        });
    }
    let mut total = 0;
    while let Some(made) = tasks.join_next().await {
        total += made??;
    }
    Ok((total, total as f64 / started.elapsed().as_secs_f64()))
}

/// Fills the database up to `target` tickets, straight through the store.
async fn fill(database: &Database, from: usize, target: usize) -> anyhow::Result<()> {
    let store = Arc::new(Store::open(database).await?);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(from));
    let now = WireTime::from_timestamp(jiff::Timestamp::now(), jiff::tz::Offset::UTC);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (store, next, now) = (Arc::clone(&store), Arc::clone(&next), now.clone());
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= target {
                    return anyhow::Ok(());
                }
                let site = format!("fill-{:02}", n % 20);
                let body: NewTicket = serde_json::from_value(ticket(&site, n))?;
                store.open_ticket(&format!("fill/{n}"), &body, &now).await?;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    store.close().await;
    Ok(())
}

/// Queue page latencies, sorted.
async fn page_times(server: &TestServer, pages: usize) -> anyhow::Result<Vec<Duration>> {
    let http = reqwest::Client::new();
    let mut times = Vec::with_capacity(pages);
    for _ in 0..pages {
        let started = Instant::now();
        let response = http.get(server.at("/desk")).bearer_auth(DESK_TOKEN).send().await?;
        anyhow::ensure!(response.status() == 200, "the queue answered {}", response.status());
        let _ = response.bytes().await?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times)
}

fn pick(times: &[Duration], quantile: f64) -> Duration {
    let at = ((times.len() as f64 * quantile).ceil() as usize).clamp(1, times.len().max(1)) - 1;
    times.get(at).copied().unwrap_or_default()
}

async fn run(name: &str, database: Database, args: &Args) -> anyhow::Result<()> {
    let store = Store::open(&database).await?;
    let now = WireTime::from_timestamp(jiff::Timestamp::now(), jiff::tz::Offset::UTC);
    let mut tokens = Vec::new();
    for i in 0..args.agents {
        tokens.push(store.add_site(&format!("site-{i:03}"), &now).await?);
    }
    store.close().await;
    let mut cfg = CentralConfig::on(database.clone(), None);
    cfg.desk_token = Some(DESK_TOKEN.to_owned());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = TestServer::serve(listener, cfg)?;
    let (made, rate) = create_rate(&server, &tokens, args.seconds).await?;
    println!(
        "{name}: {} agents created {made} tickets in {} s: {rate:.0} tickets/s",
        args.agents, args.seconds
    );
    let started = Instant::now();
    fill(&database, made, args.tickets.max(made)).await?;
    println!(
        "{name}: filled to {} tickets in {:.1} s (last {})",
        args.tickets.max(made),
        started.elapsed().as_secs_f64(),
        format_number(i64::try_from(args.tickets.max(made)).unwrap_or(0))
    );
    let times = page_times(&server, args.pages).await?;
    println!(
        "{name}: desk queue page over {} tickets, {} loads: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.tickets.max(made),
        times.len(),
        pick(&times, 0.5).as_secs_f64() * 1e3,
        pick(&times, 0.99).as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    server.stop().await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if matches!(args.backend.as_str(), "sqlite" | "both") {
        let dir = tempfile::tempdir()?;
        let path = args.keep.clone().unwrap_or_else(|| dir.path().to_owned());
        run("sqlite", Database::Sqlite(path), &args).await?;
    }
    if matches!(args.backend.as_str(), "postgres" | "both") {
        let server = tokio::task::spawn_blocking(|| Postgres::start_with(true))
            .await?
            .context("starting PostgreSQL")?;
        run("postgres (fsync on)", server.database().await?, &args).await?;
    }
    Ok(())
}
