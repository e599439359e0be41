//! The MQTT ingest: a persistent QoS 1 subscription whose messages are acknowledged only
//! when the pipeline says their effects are committed.
//!
//! # Layout
//!
//! - this file: [`connect`], the handle ([`MqttIngest`], [`MqttMonitor`]) and what the
//!   pipeline gets ([`Delivery`], [`AckToken`]);
//! - `settings`: [`MqttSettings`], the `[mqtt]` config section plus the subscription,
//!   checked before anything connects;
//! - `tls`: the transport, TLS with the configured CA file or the system's
//!   certificate store (`rustls-native-certs`);
//! - `protocol`: the v4/v5 adapter, rumqttc's MQTT 3.1.1 and 5 clients behind one
//!   face, both built from the one [`MqttSettings`];
//! - `acks`: the ack queue, pure state (which acks go out, which are stale);
//! - `tasks`: the event loop, the two tasks below, doing the I/O around that state;
//! - [`MqttError`] (`error`): why it could not start.
//!
//! The tests against a real broker are in the integration tests (`tests/integration/ingest.rs`).
//!
//! # Tasks
//!
//! [`connect`] starts two tasks and hands back an [`MqttIngest`] handle and the receiving
//! end of a bounded channel of [`Delivery`]s:
//!
//! - the **poll task** owns the rumqttc event loop. It is the only code that polls it,
//!   and it waits on nothing but the socket and the delivery channel: when the pipeline
//!   lags and the channel is full, it stops reading the socket, so the broker holds the
//!   backlog (TCP flow control, then the broker's in-flight window) and nothing queues
//!   without bound in the agent. On a connection error it logs once, waits (the
//!   [`Backoff`](crate::tickets::Backoff) policy, 100 ms doubling to 10 s, with jitter)
//!   and reconnects; on every ConnAck it subscribes again, because the broker may have
//!   lost the session.
//! - acks: [`AckToken::ack`] queues the ack and returns at once (a pipeline blocked on an
//!   ack while the poll task is blocked on the full delivery channel would deadlock).
//!   Over MQTT 3.1.1 the **poll task** takes queued acks in bulk and writes the PUBACKs
//!   straight to the socket, one flush for all, before each poll and while it waits
//!   for room in the delivery channel. The **ack task** takes what is left when the
//!   poll task is idle in a poll (and the final DISCONNECT) and hands it to the rumqttc
//!   client's request channel, which wakes the poll. Each queued ack is taken by one of
//!   the two, never both.
//!
//!   Why not the request channel alone: rumqttc's event loop takes one request per turn
//!   but reads up to nine packets, so under load acks fall behind reads without bound;
//!   at a broker that does not cap its in-flight window the keep-alive then fails behind
//!   the backlog and the broker sends the whole unacknowledged window again. (rumqttc
//!   keeps an MQTT 5 connection's socket to itself, so there acks go through the request
//!   channel.)
//!
//! # Guarantees
//!
//! Manual acks, QoS 1, persistent session (3.1.1 `clean_session = false`, 5
//! `clean_start = false` with a session that never expires), so a message is delivered
//! again until its ack reached the broker, including messages published while the agent
//! was away. A token from an earlier connection is dropped rather than sent: its packet
//! id may name another message by now, and the broker redelivers the message anyway, so
//! the pipeline must treat a redelivered message as a duplicate (at-least-once).
//!
//! Every delivery must be acked eventually, also the ones the pipeline rejects (bad
//! topic, bad payload): an unacked message holds one of the broker's in-flight slots
//! (Mosquitto: 20 by default) until the next reconnect.

mod acks;
mod error;
mod protocol;
mod settings;
mod tasks;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::warn;

use acks::{Command, PendingAck};
use tasks::{Poller, Shared};

pub use error::MqttError;
pub use settings::{DEFAULT_CHANNEL_CAPACITY, DEFAULT_MAX_PACKET_SIZE, MqttSettings};

/// How long [`MqttIngest::shutdown`] waits for the DISCONNECT to go out.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// One message from the broker, for the pipeline.
#[derive(Debug)]
pub struct Delivery {
    /// The topic it was published on.
    pub topic: String,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The broker sent it as a retained message (e.g. a device's last `status`).
    pub retained: bool,
    /// The broker marked it as a redelivery (DUP): it may have been seen before.
    pub redelivered: bool,
    /// Acknowledges it; call after its effects are committed.
    pub ack: AckToken,
}

/// Sends the PUBACK of one delivered message (nothing for QoS 0 messages).
///
/// Dropping a token without acking leaves the message unacknowledged: the broker
/// delivers it again after the next reconnect.
#[derive(Debug)]
#[must_use = "an unacked message is delivered again after the next reconnect"]
pub struct AckToken {
    ack: Option<PendingAck>,
    shared: Arc<Shared>,
}

impl AckToken {
    /// Queues the acknowledgement and returns at once (never blocks the pipeline). Acks
    /// made after the connection the message came on was lost are dropped (the broker
    /// redelivers the message instead); see [`MqttStats::acks_stale`]. `_proof`: the
    /// message's effects are durable (commit-then-ack; only the store makes one).
    pub fn ack(self, _proof: &crate::store::Durable) {
        if let Some(ack) = self.ack {
            // After a shutdown nobody takes it: the broker redelivers the message then.
            self.shared.queue(Command::Ack(ack));
        }
    }

    /// Whether the message needs an ack at all (QoS 1 or 2).
    pub fn needs_ack(&self) -> bool {
        self.ack.is_some()
    }
}

/// Counters of the ingest since [`connect`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MqttStats {
    /// Successful connections (ConnAck received).
    pub connects: u64,
    /// Established connections that were lost.
    pub disconnects: u64,
    /// Messages handed to the pipeline.
    pub messages: u64,
    /// PUBACKs handed to the client for sending.
    pub acks_sent: u64,
    /// Acks dropped because their connection was gone (the broker redelivers).
    pub acks_stale: u64,
}

/// The handle of a running MQTT ingest (see the module docs).
#[derive(Debug)]
pub struct MqttIngest {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    ready: watch::Receiver<bool>,
    poll_task: Option<JoinHandle<()>>,
    ack_task: Option<JoinHandle<()>>,
}

/// A cloneable view of a running ingest's counters and readiness (for the status API).
#[derive(Debug, Clone)]
pub struct MqttMonitor {
    shared: Arc<Shared>,
    ready: watch::Receiver<bool>,
}

impl MqttMonitor {
    /// The counters so far.
    pub fn stats(&self) -> MqttStats {
        self.shared.stats()
    }

    /// Whether the ingest is connected and subscribed.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }
}

impl MqttIngest {
    /// The counters so far.
    pub fn stats(&self) -> MqttStats {
        self.shared.stats()
    }

    /// A cloneable view of the counters and readiness.
    pub fn monitor(&self) -> MqttMonitor {
        MqttMonitor { shared: Arc::clone(&self.shared), ready: self.ready.clone() }
    }

    /// Whether the ingest is connected and the broker has confirmed the subscription.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until [`MqttIngest::is_ready`], at most `timeout`; returns whether it is.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut ready = self.ready.clone();
        matches!(tokio::time::timeout(timeout, ready.wait_for(|r| *r)).await, Ok(Ok(_)))
    }

    /// Stops intake: the acks queued so far are sent, then a DISCONNECT (the broker keeps
    /// the session and everything not acked). Deliveries still in the channel may be
    /// processed, but their acks are dropped; they are delivered again next time. Waits
    /// at most a few seconds for the broker.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        self.shared.queue(Command::Disconnect);
        if let Some(mut poll) = self.poll_task.take()
            && tokio::time::timeout(SHUTDOWN_TIMEOUT, &mut poll).await.is_err()
        {
            warn!(
                "MQTT ingest: the broker did not take the DISCONNECT in time; dropping the connection"
            );
            poll.abort();
        }
        if let Some(acks) = self.ack_task.take() {
            self.shared.finish();
            // The ack task ends once the poll task has; this only collects it.
            if tokio::time::timeout(SHUTDOWN_TIMEOUT, acks).await.is_err() {
                warn!("MQTT ingest: the ack task did not stop in time");
            }
        }
    }
}

impl Drop for MqttIngest {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        self.shared.finish();
        for task in [self.poll_task.take(), self.ack_task.take()].into_iter().flatten() {
            task.abort();
        }
    }
}

/// Starts the ingest: checks the settings and TLS files, then connects in the background
/// (a broker that is down is retried, not an error). Call from within a tokio runtime.
pub async fn connect(
    settings: MqttSettings,
) -> Result<(MqttIngest, mpsc::Receiver<Delivery>), MqttError> {
    settings.check()?;
    let transport = tls::transport(&settings)?;
    let (client, event_loop) = protocol::client(&settings, transport);
    let shared = Arc::new(Shared::default());
    let (deliveries, delivery_rx) = mpsc::channel(settings.channel_capacity.max(1));
    let (stop, stop_rx) = watch::channel(false);
    let (ready_tx, ready) = watch::channel(false);
    let poller =
        Poller::new(event_loop, &settings, Arc::clone(&shared), deliveries, stop_rx, ready_tx);
    let poll_task = tokio::spawn(poller.run());
    let ack_task = tokio::spawn(tasks::forward_acks(client, Arc::clone(&shared)));
    let ingest =
        MqttIngest { shared, stop, ready, poll_task: Some(poll_task), ack_task: Some(ack_task) };
    Ok((ingest, delivery_rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MqttUrl;
    use settings::tests::settings;

    #[tokio::test]
    async fn connect_checks_settings_and_tls_files_before_starting() {
        let mut s = settings();
        s.mqtt.client_id = String::new();
        let err = connect(s).await.unwrap_err();
        assert!(matches!(err, MqttError::BadSetting { setting: "client_id", .. }), "{err:?}");

        let mut s = settings();
        s.mqtt.url = MqttUrl { tls: true, host: "broker.example".into(), port: 8883 };
        s.mqtt.ca_file = Some("/nonexistent/ca.pem".into());
        let err = connect(s).await.unwrap_err();
        assert!(matches!(err, MqttError::ReadFile { what: "CA file", .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_broker_that_is_down_is_retried_not_an_error() {
        let mut s = settings();
        // Nothing listens on port 1 of loopback.
        s.mqtt.url.port = 1;
        let (ingest, _deliveries) = connect(s).await.unwrap();
        assert!(!ingest.wait_ready(Duration::from_millis(300)).await);
        assert_eq!(ingest.stats(), MqttStats::default());
        ingest.shutdown().await;
    }
}
