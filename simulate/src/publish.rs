//! Publishing the simulated devices' messages over MQTT (QoS 1), paced by the
//! accelerated clock.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::oneshot;

use super::{SimClock, Simulator};
use tend_agent::config::MqttUrl;

/// How often the clock is read and due messages are published.
const TICK: Duration = Duration::from_millis(100);
/// How long to wait for the broker's CONNACK at start.
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// How long the final disconnect may take.
const DISCONNECT_WAIT: Duration = Duration::from_secs(3);

/// Why publishing stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// TLS brokers are not supported by the simulator.
    #[error("the simulator speaks plain mqtt:// only, not {0}")]
    Tls(String),
    /// The broker did not accept the connection in time.
    #[error("cannot connect to the MQTT broker {url}: {reason}")]
    Connect {
        /// The broker.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The client's request queue closed (the connection task ended).
    #[error("publishing to {url} failed: {reason}")]
    Publish {
        /// The broker.
        url: String,
        /// What happened.
        reason: String,
    },
}

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct PublishConfig {
    /// The broker.
    pub url: MqttUrl,
    /// MQTT client id.
    pub client_id: String,
    /// Stop once event time reaches this (ms), if set.
    pub until_ms: Option<i64>,
}

/// Counters of a run, readable while it runs.
#[derive(Debug, Default)]
pub struct PublishStats {
    /// Messages handed to the MQTT client.
    pub published: AtomicU64,
    /// Event time reached (ms).
    pub event_ms: AtomicI64,
}

/// Publishes the simulator's messages as event time advances with `clock`, until
/// `shutdown` completes or `cfg.until_ms` is reached; then disconnects cleanly.
pub async fn run(
    mut sim: Simulator,
    clock: SimClock,
    cfg: PublishConfig,
    stats: Arc<PublishStats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PublishError> {
    let url = format!("mqtt://{}:{}", cfg.url.host, cfg.url.port);
    if cfg.url.tls {
        return Err(PublishError::Tls(format!("mqtts://{}:{}", cfg.url.host, cfg.url.port)));
    }
    let mut opts = MqttOptions::new(&cfg.client_id, &cfg.url.host, cfg.url.port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(true);
    opts.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
    let conn = tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        let mut last_error = String::new();
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(Ok(()));
                    } else {
                        tracing::info!("simulator reconnected to the broker");
                    }
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                Ok(_) => {}
                Err(e) => {
                    let msg = e.to_string();
                    if ready_tx.is_none() && msg != last_error {
                        tracing::warn!(error = %msg, "simulator: MQTT connection lost; retrying");
                    }
                    last_error = msg;
                    if let Some(tx) = ready_tx.take() {
                        let _ = tx.send(Err(last_error.clone()));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    let connected = match tokio::time::timeout(CONNECT_WAIT, ready_rx).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(reason))) => Err(reason),
        Ok(Err(_)) => Err("the connection task ended".to_owned()),
        Err(_) => Err(format!("no answer within {CONNECT_WAIT:?}")),
    };
    if let Err(reason) = connected {
        conn.abort();
        return Err(PublishError::Connect { url, reason });
    }

    let started = Instant::now();
    let mut shutdown = pin!(shutdown);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let result = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            _ = tick.tick() => {}
        }
        let mut now = clock.event_ms(started.elapsed());
        if let Some(until) = cfg.until_ms {
            now = now.min(until);
        }
        let mut failed = None;
        for p in sim.advance(now) {
            let payload = p.payload_bytes();
            if let Err(e) = client.publish(p.topic, QoS::AtLeastOnce, false, payload).await {
                failed = Some(e.to_string());
                break;
            }
            stats.published.fetch_add(1, Ordering::Relaxed);
        }
        stats.event_ms.store(sim.now_ms(), Ordering::Relaxed);
        if let Some(reason) = failed {
            break Err(PublishError::Publish { url: url.clone(), reason });
        }
        if cfg.until_ms.is_some_and(|u| now >= u) {
            break Ok(());
        }
    };
    // Let the queued publishes go out, then disconnect.
    let _ = client.disconnect().await;
    let mut conn = conn;
    if tokio::time::timeout(DISCONNECT_WAIT, &mut conn).await.is_err() {
        conn.abort();
    }
    result
}
