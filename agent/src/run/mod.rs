//! `tend run`: the live agent. Wires the parts together:
//!
//! - the embedded broker (when `broker.enabled`);
//! - the MQTT ingest (QoS 1, manual acks);
//! - the **pipeline thread**: one dedicated std thread owns the (synchronous, wasm)
//!   [`Pipeline`]. It takes deliveries in batches (what is already waiting, up to
//!   `store.commit_batch`, or whatever arrives within `store.commit_window` of the
//!   first: group commit), processes them in one store transaction, flushes (the
//!   durability point), and only then acks every delivery of the batch, rejected ones
//!   included. Every second it calls [`Pipeline::advance`] with the wall clock
//!   (offline, clear hold, escalation timers), and it applies the tickets the sync
//!   reports closed. After each flush that queued requests it wakes the dispatcher;
//! - the outbox [`Dispatcher`] and the [`TicketSync`] on the async runtime;
//! - a periodic (every 60 s) info line with the counters.
//!
//! Shutdown (the `shutdown` future completes): the pipeline thread stops taking
//! deliveries, finishes, commits, flushes and acks the batch in hand; then the MQTT
//! ingest sends the queued acks and disconnects (anything not acked is redelivered
//! next time); then the dispatcher and the sync stop.

mod worker;

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::api::PipelineSnapshot;
use crate::app::load_plugins;
use crate::config::Config;
use crate::ingest::broker::{EmbeddedBroker, start_configured};
use crate::ingest::mqtt::{self, Delivery, MqttSettings};
use crate::local::LocalCommand;
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::tickets::backoff::Backoff;
use crate::tickets::sync::{InspectionProgress, TicketAcknowledged};
use crate::tickets::{
    CentralClient, Dispatcher, DispatcherConfig, SyncConfig, TicketClosed, TicketSync,
};

/// How often the pipeline's timers are advanced to the wall clock.
const TICK: Duration = Duration::from_secs(1);
/// How often the counters are logged.
const STATS_EVERY: Duration = Duration::from_secs(60);
/// How long startup waits for the broker to confirm the subscription.
const MQTT_READY_WAIT: Duration = Duration::from_secs(10);
/// Closed tickets buffered between the sync and the pipeline thread.
const CLOSED_CHANNEL: usize = 64;
/// Site staff's commands waiting for the pipeline thread.
const COMMAND_CHANNEL: usize = 16;

/// How often the embedded broker is checked, and how many failed checks in a row
/// end the agent (for its service manager to restart it with a fresh broker).
const BROKER_WATCH_EVERY: Duration = Duration::from_secs(10);
const BROKER_WATCH_FAILURES: u32 = 3;

/// Completes (with why) once the embedded broker stopped answering
/// [`BROKER_WATCH_FAILURES`] checks in a row; never without a broker. rumqttd has
/// no way to restart in process, and an agent whose broker is dead hears nothing
/// while looking healthy: exiting lets systemd (`Restart=on-failure`) start it over.
async fn broker_dead(broker: Option<Arc<EmbeddedBroker>>) -> anyhow::Error {
    let Some(broker) = broker else { return std::future::pending().await };
    let mut failures = 0;
    let mut every =
        tokio::time::interval_at(Instant::now() + BROKER_WATCH_EVERY, BROKER_WATCH_EVERY);
    loop {
        every.tick().await;
        let b = Arc::clone(&broker);
        let answer = tokio::task::spawn_blocking(move || b.answers())
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match answer {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "the embedded MQTT broker did not answer");
                if failures >= BROKER_WATCH_FAILURES {
                    return anyhow!(
                        "the embedded MQTT broker on {} stopped answering ({e}); exiting so the \
                         service manager restarts tend with a fresh broker",
                        broker.addr()
                    );
                }
            }
        }
    }
}

/// The wall clock, ms since the Unix epoch.
fn wall_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn to_std(d: jiff::SignedDuration) -> Duration {
    d.unsigned_abs()
}

/// Runs the agent until `shutdown` completes (then shuts down gracefully and returns
/// `Ok`), or until a part fails for good (returns the error).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let broker = if config.broker.enabled {
        let listen = config.broker.listen;
        let broker = config.broker.clone();
        let b = tokio::task::spawn_blocking(move || start_configured(&broker))
            .await
            .context("starting the embedded MQTT broker")?
            .with_context(|| format!("starting the embedded MQTT broker on {listen}"))?;
        tracing::info!(url = %b.url(), "embedded MQTT broker running");
        Some(Arc::new(b))
    } else {
        None
    };

    // Plugins, store and pipeline are built on the pipeline thread, which owns them.
    let config = Arc::new(config);
    let (ready_tx, ready_rx) = oneshot::channel::<anyhow::Result<Ready>>();
    let (deliveries_tx, deliveries_rx) = oneshot::channel::<mpsc::Receiver<Delivery>>();
    let (closed_tx, closed_rx) = mpsc::channel::<TicketClosed>(CLOSED_CHANNEL);
    let (commands_tx, commands_rx) = mpsc::channel::<LocalCommand>(COMMAND_CHANNEL);
    let (acked_tx, acked_rx) = mpsc::channel::<TicketAcknowledged>(CLOSED_CHANNEL);
    let (progress_tx, progress_rx) = mpsc::channel::<InspectionProgress>(CLOSED_CHANNEL);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Dispatcher and sync stop after the pipeline's last batch is committed.
    let (stop_tasks_tx, stop_tasks_rx) = watch::channel(false);
    let (done_tx, done_rx) = oneshot::channel::<anyhow::Result<()>>();
    let notify = Arc::new(Notify::new());
    let snapshot = Arc::new(Mutex::new(PipelineSnapshot::default()));
    let handle = tokio::runtime::Handle::current();
    let thread = {
        let config = Arc::clone(&config);
        let notify = Arc::clone(&notify);
        let snapshot = Arc::clone(&snapshot);
        let stop = stop_rx.clone();
        std::thread::Builder::new()
            .name("tend-pipeline".into())
            .spawn(move || {
                let pipeline = match build_pipeline(&config) {
                    Ok((pipeline, ready)) => {
                        let _ = ready_tx.send(Ok(ready));
                        pipeline
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let Ok(deliveries) = handle.block_on(deliveries_rx) else { return };
                let worker = worker::Worker {
                    pipeline,
                    deliveries,
                    closed: closed_rx,
                    commands: commands_rx,
                    acknowledged: acked_rx,
                    progress: progress_rx,
                    stop,
                    notify,
                    snapshot,
                    batch_max: config.store.commit_batch.max(1) as usize,
                    window: to_std(config.store.commit_window),
                };
                let result = handle.block_on(worker.run());
                let _ = done_tx.send(result);
            })
            .context("starting the pipeline thread")?
    };
    let ready = match ready_rx.await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            let _ = thread.join();
            return Err(anyhow!("the pipeline thread died while starting"));
        }
    };

    let c = &config.central;
    let timeout = to_std(c.timeout);
    let client = CentralClient::new(&c.url, c.token.expose(), timeout)
        .with_context(|| format!("setting up the central service client for {}", c.url))?;
    let backoff = Backoff::new(to_std(c.backoff_initial), to_std(c.backoff_max));
    let dispatcher = Dispatcher::new(
        ready.store.clone(),
        client.clone(),
        Arc::clone(&notify),
        DispatcherConfig {
            backoff,
            in_flight: usize::try_from(c.in_flight).unwrap_or(1),
            ..DispatcherConfig::default()
        },
    );
    let dispatcher_status = dispatcher.status();
    let sync = TicketSync::new(
        ready.store.clone(),
        client,
        closed_tx,
        SyncConfig { interval: to_std(c.sync_interval), ..SyncConfig::default() },
    )
    .with_acknowledged(acked_tx)
    .with_progress(progress_tx);

    let settings = MqttSettings::from_config(&config, ready.subscription.clone());
    let (ingest, deliveries) = mqtt::connect(settings)
        .await
        .with_context(|| format!("starting the MQTT ingest for {}", config.mqtt.url))?;
    if deliveries_tx.send(deliveries).is_err() {
        ingest.shutdown().await;
        let _ = thread.join();
        return Err(anyhow!("the pipeline thread died while starting"));
    }

    let stopped = |rx: &watch::Receiver<bool>| {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let dispatcher_task = tokio::spawn(dispatcher.run(stopped(&stop_tasks_rx)));
    let sync_task = tokio::spawn(sync.run(stopped(&stop_tasks_rx)));
    let api_task = if config.api.enabled {
        let listen = config.api.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("the status API cannot listen on {listen} (api.listen)"))?;
        let sources = crate::api::Sources {
            site: config.inventory.site.clone(),
            started: std::time::Instant::now(),
            pipeline: Arc::clone(&snapshot),
            mqtt: ingest.monitor(),
            dispatcher: dispatcher_status.clone(),
            store: ready.store.clone(),
            commands: Some(commands_tx.clone()),
            token: crate::local::write_token(&config.store.data_dir)
                .with_context(|| {
                    format!(
                        "writing the local API token to {}",
                        config.store.data_dir.join(crate::local::TOKEN_FILE).display()
                    )
                })?
                .into(),
        };
        if !listen.ip().is_loopback() {
            tracing::warn!(
                %listen,
                "api.listen is not a loopback address: anyone who can reach it can read the \
                 site's status and archive (commands still need the local token)"
            );
        }
        let listen = listener.local_addr().unwrap_or(listen);
        tracing::info!(%listen, "status API: /health /status /metrics");
        Some(tokio::spawn(crate::api::serve(listener, sources, stopped(&stop_tasks_rx))))
    } else {
        None
    };

    // The summary says whether the broker is there; a broker that is down is retried
    // in the background.
    let mqtt_ready = ingest.wait_ready(MQTT_READY_WAIT).await;
    tracing::info!(
        site = %config.inventory.site,
        devices = config.inventory.devices.len(),
        plugins = %ready.plugins,
        broker = %config.mqtt.url,
        embedded_broker = broker.is_some(),
        subscription = %ready.subscription,
        mqtt_ready,
        central = %config.central.url,
        data_dir = %config.store.data_dir.display(),
        "tend agent running"
    );

    let mut shutdown = pin!(shutdown);
    let mut broker_dead = pin!(broker_dead(broker.clone()));
    let mut done_rx = done_rx;
    let mut stats = tokio::time::interval_at(Instant::now() + STATS_EVERY, STATS_EVERY);
    let failure = loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("shutting down: finishing the batch in hand");
                break None;
            }
            e = &mut broker_dead => {
                tracing::error!("{e:#}");
                break Some(e);
            }
            r = &mut done_rx => {
                break Some(match r {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => anyhow!("the pipeline stopped: the MQTT ingest ended"),
                    Err(_) => anyhow!("the pipeline thread died"),
                });
            }
            _ = stats.tick() => {
                let p = snapshot.lock().unwrap_or_else(PoisonError::into_inner).counters;
                let m = ingest.stats();
                let d = dispatcher_status.snapshot();
                tracing::info!(
                    messages = p.messages,
                    requests = p.requests,
                    duplicates = p.duplicates,
                    invalid = p.invalid,
                    future = p.future,
                    bad_topic = p.bad_topic,
                    unknown_device = p.unknown_device,
                    plugin_failures = p.plugin_failures,
                    mqtt_connects = m.connects,
                    mqtt_acks = m.acks_sent,
                    sent = d.sent,
                    retried = d.retried,
                    dead_lettered = d.dead_lettered,
                    outbox = ready.store.outbox_len(),
                    "counters"
                );
            }
        }
    };

    // Stop intake and let the pipeline finish, commit and ack its batch.
    stop_tx.send_replace(true);
    let pipeline_result = if failure.is_none() {
        match done_rx.await {
            Ok(r) => r,
            Err(_) => Err(anyhow!("the pipeline thread died")),
        }
    } else {
        Ok(())
    };
    // Sends the acks queued so far, then disconnects.
    ingest.shutdown().await;
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    stop_tasks_tx.send_replace(true);
    for (name, task) in [("outbox dispatcher", dispatcher_task), ("ticket sync", sync_task)] {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "the {name} failed");
        }
    }
    if let Some(task) = api_task {
        match task.await {
            Ok(Err(e)) => tracing::error!(error = %e, "the status API failed"),
            Err(e) => tracing::error!(error = %e, "the status API failed"),
            Ok(Ok(())) => {}
        }
    }
    let store = ready.store.clone();
    tokio::task::spawn_blocking(move || store.flush())
        .await
        .context("flushing the store")?
        .context("flushing the store")?;
    drop(broker);
    if let Some(e) = failure {
        return Err(e);
    }
    pipeline_result?;
    tracing::info!("tend agent stopped");
    Ok(())
}

/// What the pipeline thread hands back once it is built.
struct Ready {
    store: Store,
    subscription: String,
    plugins: String,
}

fn build_pipeline(config: &Config) -> anyhow::Result<(Pipeline, Ready)> {
    let plugins =
        load_plugins(config, Some(&config.plugins.cache_dir)).map_err(crate::app::load_errors)?;
    let names: Vec<String> =
        plugins.iter().map(|(ty, p)| format!("{ty} {}", p.description().plugin_version)).collect();
    let dir = &config.store.data_dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    let store = Store::open(dir, config.store.cache_capacity_bytes())
        .with_context(|| format!("opening the store in {}", dir.display()))?;
    let pipeline = Pipeline::new(config, plugins, store.clone(), wall_ms())
        .context("setting up the pipeline")?;
    let subscription = pipeline.subscription();
    Ok((pipeline, Ready { store, subscription, plugins: names.join(", ") }))
}
