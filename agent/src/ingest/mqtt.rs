//! The MQTT ingest: a persistent QoS 1 subscription whose messages are acknowledged only
//! when the pipeline says their effects are committed.
//!
//! [`connect`] starts two tasks and hands back an [`MqttIngest`] handle and the receiving
//! end of a bounded channel of [`Delivery`]s:
//!
//! - the **poll task** owns the rumqttc event loop (MQTT 3.1.1 or 5). It is the only code
//!   that polls it, and it waits on nothing but the socket and the delivery channel: when
//!   the pipeline lags and the channel is full, it stops reading the socket, so the broker
//!   holds the backlog (TCP flow control, then the broker's in-flight window) and nothing
//!   queues without bound in the agent. On a connection error it logs once, backs off
//!   (100 ms doubling to 10 s) and reconnects; on every ConnAck it subscribes again,
//!   because the broker may have lost the session.
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
//!   but reads up to nine packets per turn, so under load acks fell behind reads
//!   without bound. A broker that does not cap its in-flight window (Mosquitto 2.0
//!   sent over 100,000 unacknowledged messages in the overload bench) then saw
//!   PINGRESPs queued behind its backlog, the keep-alive failed, and after the
//!   reconnect it delivered the whole unacknowledged window again: a million duplicate
//!   deliveries and four times the catch-up time. (rumqttc keeps an MQTT 5
//!   connection's socket to itself, so there acks still go through the request
//!   channel; announcing a receive maximum instead made the embedded rumqttd panic.)
//!
//! Guarantees: manual acks, QoS 1, persistent session (3.1.1 `clean_session = false`,
//! 5 `clean_start = false` with a session that never expires), so a message is delivered
//! again until its ack reached the broker, including messages published while the agent
//! was away. A token from an earlier connection is dropped rather than sent: its packet
//! id may name another message by now, and the broker redelivers the message anyway, so
//! the pipeline must treat a redelivered message as a duplicate (at-least-once).
//!
//! Every delivery must be acked eventually, also the ones the pipeline rejects (bad
//! topic, bad payload): an unacked message holds one of the broker's in-flight slots
//! (Mosquitto: 20 by default) until the next reconnect.

use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rumqttc::tokio_rustls::rustls;
use rumqttc::v5;
use rumqttc::{Outgoing, QoS, TlsConfiguration, Transport};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::config::{ClientAuth, Config, MqttUrl, Protocol, Secret};

/// Deliveries buffered between the poll task and the pipeline by default.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 64;

/// Largest MQTT packet accepted by default (1 MiB). A bigger message is refused by an
/// MQTT 5 broker; over MQTT 3.1.1 it breaks the connection each time it is redelivered.
pub const DEFAULT_MAX_PACKET_SIZE: u32 = 1024 * 1024;

/// Capacity of rumqttc's request channel (acks, subscribe, disconnect).
const REQUEST_CHANNEL_CAPACITY: usize = 256;
/// Most queued acks the poll task writes in one go.
const ACK_BATCH: usize = 1024;
/// Longest wait for the socket to take acks written by the poll task.
const ACK_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// First and longest wait between connection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connection that lasted this long resets the backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);
/// MQTT 5 session expiry: never (the session outlives any outage, as in 3.1.1).
const SESSION_NEVER_EXPIRES: u32 = u32::MAX;
/// How long [`MqttIngest::shutdown`] waits for the DISCONNECT to go out.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Where the system's CA bundle lives on common Linux distributions.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Everything the MQTT ingest needs, usually made by [`MqttSettings::from_config`].
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    /// Broker address (`mqtt://` or `mqtts://`).
    pub url: MqttUrl,
    /// Client id; the broker keeps the session under it, so it must be stable.
    pub client_id: String,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// Password (needs a user name).
    pub password: Option<Secret>,
    /// CA certificates (PEM) for `mqtts://`; `None`: the system's CA bundle.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_auth: Option<ClientAuth>,
    /// MQTT 3.1.1 or 5.
    pub protocol: Protocol,
    /// Keep-alive interval (at least 5 s; shorter values are raised to 5 s).
    pub keep_alive: Duration,
    /// Topic filter to subscribe to with QoS 1 (`TopicTemplate::subscription`).
    pub subscription: String,
    /// Deliveries buffered for the pipeline before the poll task stops reading.
    pub channel_capacity: usize,
    /// Largest packet accepted, bytes.
    pub max_packet_size: u32,
}

impl MqttSettings {
    /// The settings of `config.mqtt`, subscribing to `subscription`, with the default
    /// channel capacity and packet size.
    pub fn from_config(config: &Config, subscription: impl Into<String>) -> Self {
        let m = &config.mqtt;
        Self {
            url: m.url.clone(),
            client_id: m.client_id.clone(),
            username: m.username.clone(),
            password: m.password.clone(),
            ca_file: m.ca_file.clone(),
            client_auth: m.client_auth.clone(),
            protocol: m.protocol,
            keep_alive: m.keep_alive.unsigned_abs(),
            subscription: subscription.into(),
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
        }
    }
}

/// Why the MQTT ingest could not start.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The broker address cannot be used.
    #[error("MQTT broker address `{url}`: {reason}")]
    BadUrl {
        /// The address.
        url: String,
        /// Why.
        reason: String,
    },
    /// A setting is unusable.
    #[error("MQTT setting `{setting}`: {reason}")]
    BadSetting {
        /// The setting (`client_id`, `subscription`, ...).
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// A TLS file cannot be read.
    #[error("cannot read the MQTT {what} `{}`: {source}", path.display())]
    ReadFile {
        /// What the file is (`CA file`, `client certificate`, `client key`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A TLS file was read but holds nothing usable.
    #[error("the MQTT {what} `{}`: {reason}", path.display())]
    BadPem {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `mqtts://` without `ca_file`, and no system CA bundle was found.
    #[error(
        "no mqtt.ca_file is set and no system CA bundle was found (looked for {}); set mqtt.ca_file",
        SYSTEM_CA_BUNDLES.join(", ")
    )]
    NoSystemRoots,
    /// The TLS library refused the configuration.
    #[error("MQTT TLS setup: {0}")]
    Tls(String),
}

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
    /// redelivers the message instead); see [`MqttStats::acks_stale`].
    pub fn ack(self) {
        if let Some(ack) = self.ack {
            // After a shutdown nobody takes it: the broker redelivers the message then.
            self.shared.commands.push(Command::Ack(ack));
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
        let c = &self.shared.counters;
        MqttStats {
            connects: c.connects.load(Ordering::Relaxed),
            disconnects: c.disconnects.load(Ordering::Relaxed),
            messages: c.messages.load(Ordering::Relaxed),
            acks_sent: c.acks_sent.load(Ordering::Relaxed),
            acks_stale: c.acks_stale.load(Ordering::Relaxed),
        }
    }

    /// Whether the ingest is connected and subscribed.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }
}

impl MqttIngest {
    /// The counters so far.
    pub fn stats(&self) -> MqttStats {
        self.monitor().stats()
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

    /// Same as [`AckToken::ack`].
    pub fn ack(&self, token: AckToken) {
        token.ack();
    }

    /// Stops intake: the acks queued so far are sent, then a DISCONNECT (the broker keeps
    /// the session and everything not acked). Deliveries still in the channel may be
    /// processed, but their acks are dropped; they are delivered again next time. Waits
    /// at most a few seconds for the broker.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        self.shared.commands.push(Command::Disconnect);
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
    check(&settings)?;
    let transport = transport(&settings)?;
    let (client, event_loop) = match settings.protocol {
        Protocol::V311 => {
            let (c, l) = v4_client(&settings, transport);
            (Client::V4(c), EventLoop::V4(Box::new(l)))
        }
        Protocol::V5 => {
            let (c, l) = v5_client(&settings, transport);
            (Client::V5(c), EventLoop::V5(Box::new(l)))
        }
    };
    let shared = Arc::new(Shared::default());
    let (deliveries, delivery_rx) = mpsc::channel(settings.channel_capacity.max(1));
    let (stop, stop_rx) = watch::channel(false);
    let (ready_tx, ready) = watch::channel(false);
    let poller = Poller {
        event_loop,
        subscription: settings.subscription.clone(),
        broker: settings.url.to_string(),
        shared: Arc::clone(&shared),
        deliveries,
        acks: Vec::new(),
        stop: stop_rx,
        ready: ready_tx,
        epoch: 0,
    };
    let poll_task = tokio::spawn(poller.run());
    let ack_task = tokio::spawn(forward_acks(client, Arc::clone(&shared)));
    let ingest =
        MqttIngest { shared, stop, ready, poll_task: Some(poll_task), ack_task: Some(ack_task) };
    Ok((ingest, delivery_rx))
}

fn check(s: &MqttSettings) -> Result<(), MqttError> {
    let bad = |setting, reason: &str| MqttError::BadSetting { setting, reason: reason.to_owned() };
    if s.client_id.is_empty() || s.client_id.contains(char::is_whitespace) {
        return Err(bad("client_id", "a persistent session needs a non-empty id without spaces"));
    }
    if s.password.is_some() && s.username.is_none() {
        return Err(bad("password", "a password needs a user name"));
    }
    if !rumqttc::valid_filter(&s.subscription) || s.subscription.is_empty() {
        return Err(MqttError::BadSetting {
            setting: "subscription",
            reason: format!("`{}` is not an MQTT topic filter", s.subscription),
        });
    }
    let url = &s.url;
    let bad_url = |reason: &str| MqttError::BadUrl { url: url.to_string(), reason: reason.into() };
    if url.host.is_empty() {
        return Err(bad_url("the host is missing"));
    }
    if url.port == 0 {
        return Err(bad_url("port 0 is not a broker port"));
    }
    if url.tls && url.host.parse::<Ipv6Addr>().is_ok() {
        return Err(bad_url("with mqtts:// write a host name, not an IPv6 address"));
    }
    Ok(())
}

/// The host as the client resolves it (`host:port` is formatted by rumqttc).
fn client_host(url: &MqttUrl) -> String {
    if url.host.parse::<Ipv6Addr>().is_ok() { format!("[{}]", url.host) } else { url.host.clone() }
}

/// The keep-alive within what MQTT carries (16 bits of seconds) and rumqttc accepts
/// (v5: at least 5 s; it panics otherwise).
fn keep_alive(s: &MqttSettings) -> Duration {
    s.keep_alive.clamp(Duration::from_secs(5), Duration::from_secs(u64::from(u16::MAX)))
}

fn v4_client(s: &MqttSettings, transport: Transport) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let mut o = rumqttc::MqttOptions::new(&s.client_id, client_host(&s.url), s.url.port);
    o.set_keep_alive(keep_alive(s))
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(s.max_packet_size as usize, s.max_packet_size as usize)
        .set_transport(transport);
    if let Some(user) = &s.username {
        o.set_credentials(user, s.password.as_ref().map_or("", Secret::expose));
    }
    rumqttc::AsyncClient::new(o, REQUEST_CHANNEL_CAPACITY)
}

fn v5_client(s: &MqttSettings, transport: Transport) -> (v5::AsyncClient, v5::EventLoop) {
    let mut o = v5::MqttOptions::new(&s.client_id, client_host(&s.url), s.url.port);
    o.set_keep_alive(keep_alive(s))
        .set_clean_start(false)
        .set_session_expiry_interval(Some(SESSION_NEVER_EXPIRES))
        .set_manual_acks(true)
        .set_max_packet_size(Some(s.max_packet_size))
        .set_transport(transport);
    if let Some(user) = &s.username {
        o.set_credentials(user, s.password.as_ref().map_or("", Secret::expose));
    }
    v5::AsyncClient::new(o, REQUEST_CHANNEL_CAPACITY)
}

/// Plain TCP, or TLS with the configured CA (else the system bundle) and client key.
fn transport(s: &MqttSettings) -> Result<Transport, MqttError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    if !s.url.tls {
        return Ok(Transport::tcp());
    }
    let ca_path = match &s.ca_file {
        Some(p) => p.clone(),
        None => system_ca_bundle().ok_or(MqttError::NoSystemRoots)?,
    };
    let ca = read_file("CA file", &ca_path)?;
    let bad = |what, path: &Path, reason: String| MqttError::BadPem {
        what,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&ca)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("CA file", &ca_path, format!("not PEM certificates: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad("CA file", &ca_path, "holds no usable CA certificate (PEM)".into()));
    }
    // The provider is named, not taken from the process default: with more than one
    // rustls provider compiled in, the default is ambiguous and rustls would panic.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match &s.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let pem = read_file("client certificate", &auth.cert)?;
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad("client certificate", &auth.cert, format!("not PEM: {e}")))?;
            if chain.is_empty() {
                return Err(bad("client certificate", &auth.cert, "holds no certificate".into()));
            }
            let pem = read_file("client key", &auth.key)?;
            let key = PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| bad("client key", &auth.key, format!("no private key: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                bad("client certificate", &auth.cert, format!("unusable with its key: {e}"))
            })?
        }
    };
    Ok(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config))))
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, MqttError> {
    std::fs::read(path).map_err(|source| MqttError::ReadFile {
        what,
        path: path.to_owned(),
        source,
    })
}

fn system_ca_bundle() -> Option<PathBuf> {
    SYSTEM_CA_BUNDLES.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// What the poll task and the ack task share.
#[derive(Debug, Default)]
struct Shared {
    /// The connection generation. The poll task bumps it (and purges acks from the
    /// request channel) under this lock when a connection ends; the ack task checks a
    /// token's generation and hands its ack to the client under the same lock, so an ack
    /// from an old connection can never reach a new one.
    epoch: Mutex<u64>,
    /// Signalled whenever the poll task has taken requests off the client's channel.
    room: Notify,
    /// Acks and the final DISCONNECT, in the order they were made.
    commands: Commands,
    /// The poll task has ended.
    finished: AtomicBool,
    counters: Counters,
}

impl Shared {
    fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.room.notify_one();
        self.commands.for_ack_task.notify_one();
    }
}

/// The queue of acks and the final DISCONNECT. The poll task takes acks from its front
/// in bulk, the ack task one command at a time: each command is taken exactly once.
#[derive(Debug, Default)]
struct Commands {
    queue: Mutex<VecDeque<Command>>,
    /// Wakes the ack task.
    for_ack_task: Notify,
    /// Wakes the poll task while it waits for room in the delivery channel.
    for_poll_task: Notify,
}

impl Commands {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Command>> {
        // Nothing panics while holding the lock; recover the data if it ever did.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, command: Command) {
        self.lock().push_back(command);
        self.for_ack_task.notify_one();
        self.for_poll_task.notify_one();
    }

    fn pop(&self) -> Option<Command> {
        self.lock().pop_front()
    }

    /// Puts acks the poll task took but could not write back at the front, in order.
    fn requeue(&self, acks: &[PendingAck]) {
        let mut queue = self.lock();
        for ack in acks.iter().rev() {
            queue.push_front(Command::Ack(*ack));
        }
    }

    /// Moves up to `max` acks from the front into `out`; stops at a DISCONNECT, which
    /// stays for the ack task (after every ack queued before it).
    fn take_acks(&self, max: usize, out: &mut Vec<PendingAck>) {
        let mut queue = self.lock();
        while out.len() < max {
            match queue.front() {
                Some(Command::Ack(ack)) => {
                    out.push(*ack);
                    queue.pop_front();
                }
                _ => break,
            }
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    connects: AtomicU64,
    disconnects: AtomicU64,
    messages: AtomicU64,
    acks_sent: AtomicU64,
    acks_stale: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A request for the ack task, in the order the pipeline made them.
#[derive(Debug)]
enum Command {
    Ack(PendingAck),
    Disconnect,
}

#[derive(Debug, Clone, Copy)]
struct PendingAck {
    pkid: u16,
    qos: QoS,
    epoch: u64,
}

/// A received PUBLISH, protocol-neutral.
#[derive(Debug)]
struct Message {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    pkid: u16,
    dup: bool,
    retain: bool,
}

/// What the poll loop acts on.
enum Polled {
    ConnAck {
        session_present: bool,
    },
    /// The QoS the broker granted, `None`: refused.
    SubAck {
        granted: Option<QoS>,
    },
    Publish(Message),
    /// Our DISCONNECT went out.
    Disconnected,
    Other,
}

/// The rumqttc event loop of either protocol (boxed: they are large).
enum EventLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

impl EventLoop {
    async fn poll(&mut self) -> Result<Polled, String> {
        use rumqttc::{Event, Packet, SubscribeReasonCode as Code};
        use v5::mqttbytes::v5::{Packet as Packet5, SubscribeReasonCode as Code5};
        match self {
            Self::V4(l) => Ok(match l.poll().await.map_err(|e| e.to_string())? {
                Event::Incoming(Packet::ConnAck(c)) => {
                    Polled::ConnAck { session_present: c.session_present }
                }
                Event::Incoming(Packet::SubAck(s)) => Polled::SubAck {
                    granted: match s.return_codes.first() {
                        Some(Code::Success(q)) => Some(*q),
                        _ => None,
                    },
                },
                Event::Incoming(Packet::Publish(p)) => Polled::Publish(Message::v4(p)),
                Event::Outgoing(Outgoing::Disconnect) => Polled::Disconnected,
                _ => Polled::Other,
            }),
            Self::V5(l) => Ok(match l.poll().await.map_err(|e| e.to_string())? {
                v5::Event::Incoming(Packet5::ConnAck(c)) => {
                    Polled::ConnAck { session_present: c.session_present }
                }
                v5::Event::Incoming(Packet5::SubAck(s)) => Polled::SubAck {
                    granted: match s.return_codes.first() {
                        Some(Code5::Success(q)) => Some(qos_from_v5(*q)),
                        _ => None,
                    },
                },
                v5::Event::Incoming(Packet5::Publish(p)) => Polled::Publish(Message::v5(p)),
                v5::Event::Outgoing(Outgoing::Disconnect) => Polled::Disconnected,
                _ => Polled::Other,
            }),
        }
    }

    /// Queues a QoS 1 SUBSCRIBE directly in the event loop (it is sent before anything
    /// in the request channel; no channel, so the poll task cannot block on it).
    fn queue_subscribe(&mut self, filter: &str) {
        match self {
            Self::V4(l) => l.pending.push_back(rumqttc::Request::Subscribe(
                rumqttc::Subscribe::new(filter, QoS::AtLeastOnce),
            )),
            Self::V5(l) => {
                use v5::mqttbytes::v5::{Filter, Subscribe};
                let filter = Filter::new(filter, v5::mqttbytes::QoS::AtLeastOnce);
                l.pending.push_back(v5::Request::Subscribe(Subscribe::new(filter, None)));
            }
        }
    }

    /// Whether [`EventLoop::write_ack`] can write to the socket (MQTT 3.1.1, connected;
    /// rumqttc keeps an MQTT 5 connection's socket to itself).
    fn writes_acks(&self) -> bool {
        match self {
            Self::V4(l) => l.network.is_some(),
            Self::V5(_) => false,
        }
    }

    /// Writes the PUBACK (QoS 1) or PUBREC (QoS 2) of `ack` into the socket's buffer;
    /// false when there is nothing to write or no connection.
    async fn write_ack(&mut self, ack: PendingAck) -> Result<bool, String> {
        let Self::V4(l) = self else { return Ok(false) };
        let request = match ack.qos {
            QoS::AtMostOnce => return Ok(false),
            QoS::AtLeastOnce => rumqttc::Request::PubAck(rumqttc::PubAck::new(ack.pkid)),
            QoS::ExactlyOnce => rumqttc::Request::PubRec(rumqttc::PubRec::new(ack.pkid)),
        };
        let Some(network) = l.network.as_mut() else { return Ok(false) };
        let Some(packet) = l.state.handle_outgoing_packet(request).map_err(|e| e.to_string())?
        else {
            return Ok(false);
        };
        network.write(packet).await.map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// Flushes what [`EventLoop::write_ack`] wrote.
    async fn flush(&mut self) -> Result<(), String> {
        match self {
            Self::V4(l) => match l.network.as_mut() {
                Some(network) => network.flush().await.map_err(|e| e.to_string()),
                None => Ok(()),
            },
            Self::V5(_) => Ok(()),
        }
    }

    /// Takes the PUBLISHes read from a connection that then failed, not yet handed out.
    fn take_buffered(&mut self) -> Vec<Message> {
        match self {
            Self::V4(l) => drain_publishes(&mut l.state.events, |e| match e {
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => Some(Message::v4(p)),
                _ => None,
            }),
            Self::V5(l) => drain_publishes(&mut l.state.events, |e| match e {
                v5::Event::Incoming(v5::mqttbytes::v5::Packet::Publish(p)) => Some(Message::v5(p)),
                _ => None,
            }),
        }
    }

    /// Drops the connection state and the PUBACKs waiting in the request channel.
    fn clean(&mut self) {
        match self {
            Self::V4(l) => l.clean(),
            Self::V5(l) => l.clean(),
        }
    }
}

fn drain_publishes<E>(events: &mut VecDeque<E>, f: impl Fn(E) -> Option<Message>) -> Vec<Message> {
    events.drain(..).filter_map(f).collect()
}

fn qos_from_v5(q: v5::mqttbytes::QoS) -> QoS {
    match q {
        v5::mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
        v5::mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
        v5::mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn qos_to_v5(q: QoS) -> v5::mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

impl Message {
    fn v4(p: rumqttc::Publish) -> Self {
        Self {
            topic: p.topic,
            payload: p.payload.to_vec(),
            qos: p.qos,
            pkid: p.pkid,
            dup: p.dup,
            retain: p.retain,
        }
    }

    fn v5(p: v5::mqttbytes::v5::Publish) -> Self {
        Self {
            // Not UTF-8 breaks the protocol; the replacement character makes the topic
            // fail the template, so the pipeline counts and acks it.
            topic: String::from_utf8_lossy(&p.topic).into_owned(),
            payload: p.payload.to_vec(),
            qos: qos_from_v5(p.qos),
            pkid: p.pkid,
            dup: p.dup,
            retain: p.retain,
        }
    }
}

/// The rumqttc client of either protocol (used by the ack task only).
enum Client {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

impl Client {
    /// Puts the ack in the request channel if it has room (never waits).
    fn try_ack(&self, ack: PendingAck) -> bool {
        match self {
            Self::V4(c) => {
                let mut p = rumqttc::Publish::new("", ack.qos, Vec::new());
                p.pkid = ack.pkid;
                c.try_ack(&p).is_ok()
            }
            Self::V5(c) => {
                let mut p =
                    v5::mqttbytes::v5::Publish::new("", qos_to_v5(ack.qos), Vec::new(), None);
                p.pkid = ack.pkid;
                c.try_ack(&p).is_ok()
            }
        }
    }

    fn try_disconnect(&self) -> bool {
        match self {
            Self::V4(c) => c.try_disconnect().is_ok(),
            Self::V5(c) => c.try_disconnect().is_ok(),
        }
    }
}

/// The ack task: hands the acks the poll task left (then the final DISCONNECT) to the
/// client, in order.
async fn forward_acks(client: Client, shared: Arc<Shared>) {
    loop {
        let notified = shared.commands.for_ack_task.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        let Some(command) = shared.commands.pop() else {
            if shared.finished.load(Ordering::Acquire) {
                return;
            }
            notified.await;
            // Let a busy poll task take the acks first: it writes them in bulk.
            tokio::task::yield_now().await;
            continue;
        };
        loop {
            let handed = match command {
                Command::Ack(ack) => {
                    let epoch = shared.epoch.lock().unwrap_or_else(PoisonError::into_inner);
                    if ack.epoch != *epoch {
                        bump(&shared.counters.acks_stale);
                        true
                    } else if client.try_ack(ack) {
                        bump(&shared.counters.acks_sent);
                        true
                    } else {
                        false
                    }
                }
                Command::Disconnect => {
                    if client.try_disconnect() {
                        return;
                    }
                    false
                }
            };
            if handed {
                break;
            }
            // The request channel is full: wait until the poll task took something off
            // it (or has ended, and nothing will be sent any more).
            if shared.finished.load(Ordering::Acquire) {
                return;
            }
            shared.room.notified().await;
        }
    }
}

/// The poll task's state.
struct Poller {
    event_loop: EventLoop,
    subscription: String,
    broker: String,
    shared: Arc<Shared>,
    deliveries: mpsc::Sender<Delivery>,
    /// Acks taken from the queue, reused.
    acks: Vec<PendingAck>,
    stop: watch::Receiver<bool>,
    ready: watch::Sender<bool>,
    /// The current connection generation (this task is the only one that changes it).
    epoch: u64,
}

impl Poller {
    async fn run(mut self) {
        // When the current connection was made; `None`: not connected.
        let mut connected_at: Option<Instant> = None;
        let mut stopping = false;
        let mut failures: u32 = 0;
        let mut backoff = BACKOFF_MIN;
        loop {
            stopping |= *self.stop.borrow();
            let polled = if connected_at.is_some() {
                self.write_acks().await;
                // Never cancelled while connected: a half-written packet would corrupt
                // the stream. Shutdown goes through the DISCONNECT request instead.
                self.event_loop.poll().await
            } else if stopping {
                break;
            } else {
                // Connecting: nothing is written yet, so giving up half-way is safe.
                tokio::select! {
                    polled = self.event_loop.poll() => polled,
                    _ = self.stop.wait_for(|s| *s) => continue,
                }
            };
            self.shared.room.notify_one();
            match polled {
                Ok(Polled::ConnAck { session_present }) => {
                    connected_at = Some(Instant::now());
                    bump(&self.shared.counters.connects);
                    if failures > 0 {
                        info!(broker = %self.broker, attempts = failures, session_present, "MQTT reconnected");
                    } else {
                        info!(broker = %self.broker, session_present, "MQTT connected");
                    }
                    failures = 0;
                    self.event_loop.queue_subscribe(&self.subscription);
                }
                Ok(Polled::SubAck { granted: Some(qos) }) => {
                    if qos == QoS::AtMostOnce {
                        warn!(filter = %self.subscription, "the MQTT broker granted only QoS 0: messages can be lost");
                    }
                    self.ready.send_replace(true);
                }
                Ok(Polled::SubAck { granted: None }) => {
                    error!(filter = %self.subscription, "the MQTT broker refused the subscription (check its ACL)");
                }
                Ok(Polled::Publish(message)) if !stopping => {
                    let epoch = self.epoch;
                    if !self.deliver(message, epoch).await {
                        stopping = true;
                    }
                }
                Ok(Polled::Disconnected) if stopping => break,
                Ok(_) => {}
                Err(e) => {
                    self.ready.send_replace(false);
                    let buffered = self.event_loop.take_buffered();
                    let old_epoch = self.new_epoch();
                    if let Some(since) = connected_at.take() {
                        // A connection that held resets the backoff; one the broker
                        // drops at once (another client with our id?) does not, so a
                        // flapping connection cannot flood the broker or the log.
                        if since.elapsed() >= STABLE_CONNECTION {
                            backoff = BACKOFF_MIN;
                        }
                        bump(&self.shared.counters.disconnects);
                        if !stopping {
                            warn!(broker = %self.broker, error = %e, "MQTT connection lost; reconnecting");
                        }
                    } else if failures == 0 {
                        warn!(broker = %self.broker, error = %e, "cannot connect to the MQTT broker; retrying with backoff up to 10 s");
                    } else {
                        debug!(broker = %self.broker, error = %e, attempt = failures + 1, "MQTT connect failed");
                    }
                    failures = failures.saturating_add(1);
                    // Read before the failure: hand them out (acks of the old connection
                    // are dropped, so a broker that kept the session redelivers them).
                    for message in buffered {
                        if stopping || !self.deliver(message, old_epoch).await {
                            stopping = true;
                            break;
                        }
                    }
                    if stopping {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.stop.wait_for(|s| *s) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        self.ready.send_replace(false);
        self.shared.finish();
        debug!(broker = %self.broker, "MQTT ingest stopped");
    }

    /// Starts a new connection generation: acks of the old one are dropped from now on,
    /// and those already in the request channel are purged. Returns the old generation.
    fn new_epoch(&mut self) -> u64 {
        let mut epoch = self.shared.epoch.lock().unwrap_or_else(PoisonError::into_inner);
        let old = *epoch;
        *epoch += 1;
        self.epoch = *epoch;
        // rumqttc already cleaned when the connection failed; cleaning again under the
        // lock purges the PUBACKs the ack task queued in between.
        self.event_loop.clean();
        old
    }

    /// Hands a message to the pipeline, waiting while the channel is full. Returns false
    /// when the ingest is stopping or the pipeline is gone (the message stays unacked).
    async fn deliver(&mut self, m: Message, epoch: u64) -> bool {
        let ack =
            (m.qos != QoS::AtMostOnce).then_some(PendingAck { pkid: m.pkid, qos: m.qos, epoch });
        let delivery = Delivery {
            topic: m.topic,
            payload: m.payload,
            retained: m.retain,
            redelivered: m.dup,
            ack: AckToken { ack, shared: Arc::clone(&self.shared) },
        };
        loop {
            let shared = Arc::clone(&self.shared);
            let acks_queued = shared.commands.for_poll_task.notified();
            let handed = tokio::select! {
                permit = self.deliveries.reserve() => match permit {
                    Ok(permit) => {
                        permit.send(delivery);
                        bump(&self.shared.counters.messages);
                        return true;
                    }
                    Err(_) => false,
                },
                // The pipeline committed while the channel is full: send its acks now,
                // they make room at a broker with an in-flight window.
                () = acks_queued => true,
                _ = self.stop.wait_for(|s| *s) => return false,
            };
            if !handed {
                // The receiver is gone: nobody will ack, so leave the broker cleanly.
                self.shared.commands.push(Command::Disconnect);
                return false;
            }
            self.write_acks().await;
        }
    }

    /// Writes the queued acks of the current connection straight to the socket (MQTT
    /// 3.1.1), one flush for all. Acks of an earlier connection are dropped (counted
    /// as stale). Acks not written (the socket took nothing for a while, or failed) go
    /// back to the queue: sent later on this connection, or dropped as stale once the
    /// next poll reports the connection lost (the broker then redelivers).
    async fn write_acks(&mut self) {
        if !self.event_loop.writes_acks() {
            return;
        }
        let mut acks = std::mem::take(&mut self.acks);
        acks.clear();
        self.shared.commands.take_acks(ACK_BATCH, &mut acks);
        let mut written = 0;
        for (i, ack) in acks.iter().enumerate() {
            if ack.epoch != self.epoch {
                bump(&self.shared.counters.acks_stale);
                continue;
            }
            // Cancel-safe per packet: a packet is encoded into the buffer in one go.
            let failed = match tokio::time::timeout(
                ACK_WRITE_TIMEOUT,
                self.event_loop.write_ack(*ack),
            )
            .await
            {
                Ok(Ok(true)) => {
                    written += 1;
                    continue;
                }
                Ok(Ok(false)) => continue,
                Ok(Err(e)) => e,
                Err(_) => format!("the socket took nothing for {ACK_WRITE_TIMEOUT:?}"),
            };
            debug!(error = %failed, "writing acks failed; they wait in the queue");
            self.shared.commands.requeue(&acks[i..]);
            break;
        }
        self.acks = acks;
        if written > 0 {
            self.shared.counters.acks_sent.fetch_add(written, Ordering::Relaxed);
            match tokio::time::timeout(ACK_WRITE_TIMEOUT, self.event_loop.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(error = %e, "flushing acks failed"),
                Err(_) => debug!("the socket took no acks in time"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a real Mosquitto (started per test on a free loopback port) and the
    //! embedded rumqttd.

    use std::net::{SocketAddr, TcpListener};
    use std::process::Command;

    use super::*;

    use tend_tests::mosquitto::Mosquitto;

    /// Longest wait for anything a test expects to happen.
    const WAIT: Duration = Duration::from_secs(20);
    const FILTER: &str = "tend/site/+/+";

    fn url(host: &str, port: u16, tls: bool) -> MqttUrl {
        MqttUrl { tls, host: host.into(), port }
    }

    fn settings(port: u16, client_id: &str, protocol: Protocol) -> MqttSettings {
        MqttSettings {
            url: url("127.0.0.1", port, false),
            client_id: client_id.into(),
            username: None,
            password: None,
            ca_file: None,
            client_auth: None,
            protocol,
            keep_alive: Duration::from_secs(30),
            subscription: FILTER.into(),
            channel_capacity: 16,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
        }
    }

    async fn start(settings: MqttSettings) -> (MqttIngest, mpsc::Receiver<Delivery>) {
        let (ingest, rx) = connect(settings).await.unwrap();
        assert!(ingest.wait_ready(WAIT).await, "the ingest did not subscribe");
        (ingest, rx)
    }

    async fn recv(rx: &mut mpsc::Receiver<Delivery>) -> Delivery {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(d)) => d,
            Ok(None) => panic!("the ingest closed its channel"),
            Err(_) => panic!("no delivery within {WAIT:?}"),
        }
    }

    /// Polls `cond` until it holds or the deadline passes.
    async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A test device: a plain rumqttc client publishing QoS 1, polled in its own task,
    /// counting the broker's PUBACKs.
    struct Publisher {
        client: rumqttc::AsyncClient,
        acked: Arc<AtomicU64>,
        task: JoinHandle<()>,
    }

    impl Publisher {
        fn new(port: u16, id: &str) -> Self {
            let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
            o.set_keep_alive(Duration::from_secs(30));
            let (client, mut event_loop) = rumqttc::AsyncClient::new(o, 1000);
            let acked = Arc::new(AtomicU64::new(0));
            let counter = Arc::clone(&acked);
            let task = tokio::spawn(async move {
                loop {
                    match event_loop.poll().await {
                        Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            });
            Self { client, acked, task }
        }

        async fn publish(&self, topic: &str, payload: &str) {
            self.client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
        }

        /// Waits until the broker has taken `n` messages.
        async fn wait_acked(&self, n: u64) {
            let acked = Arc::clone(&self.acked);
            eventually("the broker's PUBACKs", || acked.load(Ordering::SeqCst) >= n).await;
        }
    }

    impl Drop for Publisher {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    fn topic(device: &str) -> String {
        format!("tend/site/{device}/telemetry")
    }

    fn payload(n: usize) -> String {
        format!("{{\"ts\":{n},\"n\":{n}}}")
    }

    fn assert_delivery(d: &Delivery, device: &str, n: usize) {
        assert_eq!(d.topic, topic(device));
        assert_eq!(String::from_utf8_lossy(&d.payload), payload(n));
    }

    // (a)
    async fn delivers_in_order(protocol: Protocol) {
        let broker = Mosquitto::start();
        let (ingest, mut rx) = start(settings(broker.port, "agent-a", protocol)).await;
        let devices = ["door-1", "swh.roof_2", "av-3"];
        let publisher = Publisher::new(broker.port, "device-a");
        publisher.publish("other/site/x/telemetry", "not subscribed").await;
        for n in 0..30 {
            publisher.publish(&topic(devices[n % 3]), &payload(n)).await;
        }
        for n in 0..30 {
            let d = recv(&mut rx).await;
            assert_delivery(&d, devices[n % 3], n);
            assert!(!d.redelivered && !d.retained);
            assert!(d.ack.needs_ack());
            d.ack.ack();
        }
        eventually("30 acks", || ingest.stats().acks_sent == 30).await;
        let stats = ingest.stats();
        assert_eq!((stats.connects, stats.disconnects, stats.messages), (1, 0, 30));
        ingest.shutdown().await;
        assert!(rx.recv().await.is_none(), "shutdown closes the channel");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delivers_in_order_with_topic_and_payload_v311() {
        delivers_in_order(Protocol::V311).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delivers_in_order_with_topic_and_payload_v5() {
        delivers_in_order(Protocol::V5).await;
    }

    // (b)
    async fn redelivers_only_the_unacked(protocol: Protocol) {
        let broker = Mosquitto::start();
        let publisher = Publisher::new(broker.port, "device-b");
        let (ingest, mut rx) = start(settings(broker.port, "agent-b", protocol)).await;
        publisher.publish(&topic("d1"), &payload(1)).await;
        publisher.publish(&topic("d1"), &payload(2)).await;
        let first = recv(&mut rx).await;
        assert_delivery(&first, "d1", 1);
        first.ack.ack();
        let second = recv(&mut rx).await;
        assert_delivery(&second, "d1", 2);
        drop(second); // crash before commit: never acked
        eventually("the first ack", || ingest.stats().acks_sent == 1).await;
        ingest.shutdown().await;
        drop(rx);

        let (ingest, mut rx) = connect(settings(broker.port, "agent-b", protocol)).await.unwrap();
        let again = recv(&mut rx).await;
        assert_delivery(&again, "d1", 2);
        assert!(again.redelivered, "the broker marks the redelivery");
        again.ack.ack();
        // A marker published now comes next: message 1, acked before, does not come back.
        assert!(ingest.wait_ready(WAIT).await);
        publisher.publish(&topic("d1"), &payload(3)).await;
        let next = recv(&mut rx).await;
        assert_delivery(&next, "d1", 3);
        next.ack.ack();
        eventually("both acks", || ingest.stats().acks_sent == 2).await;
        ingest.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unacked_message_is_redelivered_acked_one_is_not_v311() {
        redelivers_only_the_unacked(Protocol::V311).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unacked_message_is_redelivered_acked_one_is_not_v5() {
        redelivers_only_the_unacked(Protocol::V5).await;
    }

    #[test]
    fn acks_not_written_go_back_in_order_ahead_of_the_disconnect() {
        let commands = Commands::default();
        let ack = |pkid| PendingAck { pkid, qos: QoS::AtLeastOnce, epoch: 1 };
        for pkid in 1..=3 {
            commands.push(super::Command::Ack(ack(pkid)));
        }
        commands.push(super::Command::Disconnect);
        let mut taken = Vec::new();
        commands.take_acks(2, &mut taken);
        assert_eq!(taken.iter().map(|a| a.pkid).collect::<Vec<_>>(), [1, 2]);
        commands.requeue(&taken[1..]);
        taken.clear();
        commands.take_acks(10, &mut taken);
        assert_eq!(taken.iter().map(|a| a.pkid).collect::<Vec<_>>(), [2, 3], "stops at DISCONNECT");
        assert!(matches!(commands.pop(), Some(super::Command::Disconnect)));
        assert!(commands.pop().is_none());
    }

    /// Regression: acks fell behind reads under load. rumqttc's event loop takes one
    /// request (an ack) per turn but reads up to nine packets, so with a backlog at the
    /// broker the unacknowledged window grew without bound (100,000+ in the overload
    /// bench), the keep-alive failed behind it and the broker sent it all again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acks_keep_up_with_reads_under_load_v311() {
        const N: u64 = 20_000;
        const BATCH: usize = 32;
        let broker = Mosquitto::start();
        let (ingest, rx) = start(settings(broker.port, "agent-load", Protocol::V311)).await;
        ingest.shutdown().await;
        drop(rx);
        let publisher = Publisher::new(broker.port, "device-load");
        for n in 0..N {
            publisher.publish(&topic("d1"), &payload(n as usize)).await;
        }
        publisher.wait_acked(N).await;

        // Consume like the pipeline: take what is there (up to a batch), then ack it.
        let (ingest, mut rx) =
            connect(settings(broker.port, "agent-load", Protocol::V311)).await.unwrap();
        let mut received = 0u64;
        let mut widest = 0u64;
        while received < N {
            let mut batch = vec![recv(&mut rx).await];
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(d) => batch.push(d),
                    Err(_) => break,
                }
            }
            received += batch.len() as u64;
            for d in batch {
                d.ack.ack();
            }
            let stats = ingest.stats();
            widest = widest.max(stats.messages.saturating_sub(stats.acks_sent));
        }
        eventually("every ack", || ingest.stats().acks_sent == N).await;
        // The delivery channel (16), one batch and the acks in the request channel.
        assert!(widest <= 512, "{widest} messages were delivered but not acked at once");
        assert_eq!(ingest.stats().disconnects, 0);
        ingest.shutdown().await;
    }

    // (c)
    async fn delivers_what_was_published_while_away(protocol: Protocol) {
        let broker = Mosquitto::start();
        let (ingest, rx) = start(settings(broker.port, "agent-c", protocol)).await;
        ingest.shutdown().await;
        drop(rx);

        let publisher = Publisher::new(broker.port, "device-c");
        for n in 0..50 {
            publisher.publish(&topic("d2"), &payload(n)).await;
        }
        publisher.wait_acked(50).await;

        let (ingest, mut rx) = connect(settings(broker.port, "agent-c", protocol)).await.unwrap();
        for n in 0..50 {
            let d = recv(&mut rx).await;
            assert_delivery(&d, "d2", n);
            d.ack.ack();
        }
        eventually("50 acks", || ingest.stats().acks_sent == 50).await;
        ingest.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delivers_messages_published_while_disconnected_v311() {
        delivers_what_was_published_while_away(Protocol::V311).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delivers_messages_published_while_disconnected_v5() {
        delivers_what_was_published_while_away(Protocol::V5).await;
    }

    // (d)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reconnects_by_itself_after_the_broker_restarts() {
        let mut broker = Mosquitto::start();
        let (ingest, mut rx) = start(settings(broker.port, "agent-d", Protocol::V311)).await;
        let publisher = Publisher::new(broker.port, "device-d");
        publisher.publish(&topic("d3"), &payload(1)).await;
        let old = recv(&mut rx).await;
        assert_delivery(&old, "d3", 1);
        drop(publisher);

        broker.kill();
        eventually("the ingest to notice", || ingest.stats().disconnects == 1).await;
        assert!(!ingest.is_ready());
        broker.launch(); // same port; no persistence: the session is gone
        assert!(ingest.wait_ready(WAIT).await, "the ingest did not resubscribe");
        assert_eq!(ingest.stats().connects, 2);
        // Its connection is gone: the packet id may name another message now.
        old.ack.ack();
        eventually("the stale ack to be dropped", || ingest.stats().acks_stale == 1).await;

        let publisher = Publisher::new(broker.port, "device-d");
        publisher.publish(&topic("d3"), &payload(2)).await;
        let d = recv(&mut rx).await;
        assert_delivery(&d, "d3", 2);
        d.ack.ack();
        eventually("the ack after the restart", || ingest.stats().acks_sent == 1).await;
        ingest.shutdown().await;
    }

    // (e)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backpressure_with_a_slow_consumer_loses_nothing() {
        const N: usize = 200;
        let broker = Mosquitto::start();
        let mut s = settings(broker.port, "agent-e", Protocol::V311);
        s.channel_capacity = 2;
        let (ingest, mut rx) = start(s).await;
        let publisher = Publisher::new(broker.port, "device-e");
        for n in 0..N {
            publisher.publish(&topic("d4"), &payload(n)).await;
        }
        publisher.wait_acked(N as u64).await;
        // Nobody consumes yet: the ingest took only what fits the channel; the broker
        // holds the rest.
        eventually("the channel to fill", || ingest.stats().messages == 2).await;
        assert_eq!(ingest.stats().messages, 2);

        for n in 0..N {
            let d = recv(&mut rx).await;
            assert_delivery(&d, "d4", n);
            // A slow pipeline (this is the work being simulated, not a wait).
            tokio::time::sleep(Duration::from_millis(2)).await;
            d.ack.ack();
        }
        eventually("all acks", || ingest.stats().acks_sent == N as u64).await;
        let stats = ingest.stats();
        assert_eq!((stats.messages, stats.disconnects, stats.acks_stale), (N as u64, 0, 0));
        ingest.shutdown().await;
    }

    // (f)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_broker_delivers_to_the_ingest() {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let broker = crate::ingest::broker::start_embedded_with_v5(any, any).unwrap();
        assert!(broker.is_running());
        assert_ne!(broker.addr().port(), 0);
        assert_eq!(broker.url(), format!("mqtt://127.0.0.1:{}", broker.addr().port()));
        let v5_port = broker.v5_addr().unwrap().port();

        let (v4, mut rx4) = start(settings(broker.addr().port(), "agent-f4", Protocol::V311)).await;
        let (v5, mut rx5) = start(settings(v5_port, "agent-f5", Protocol::V5)).await;
        let publisher = Publisher::new(broker.addr().port(), "device-f");
        publisher.publish(&topic("d5"), &payload(7)).await;
        for rx in [&mut rx4, &mut rx5] {
            let d = recv(rx).await;
            assert_delivery(&d, "d5", 7);
            d.ack.ack();
        }
        eventually("the acks", || v4.stats().acks_sent == 1 && v5.stats().acks_sent == 1).await;
        v4.shutdown().await;
        v5.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_broker_keeps_the_session_while_the_agent_is_away() {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let broker = crate::ingest::broker::start_embedded(any).unwrap();
        let port = broker.addr().port();
        let (ingest, rx) = start(settings(port, "agent-f-away", Protocol::V311)).await;
        ingest.shutdown().await;
        drop(rx);
        let publisher = Publisher::new(port, "device-f-away");
        for n in 0..20 {
            publisher.publish(&topic("d7"), &payload(n)).await;
        }
        publisher.wait_acked(20).await;
        let (ingest, mut rx) =
            connect(settings(port, "agent-f-away", Protocol::V311)).await.unwrap();
        for n in 0..20 {
            let d = recv(&mut rx).await;
            assert_delivery(&d, "d7", n);
            if n < 10 {
                d.ack.ack();
            }
        }
        eventually("10 acks", || ingest.stats().acks_sent == 10).await;
        ingest.shutdown().await;
        drop(rx);
        let (ingest, mut rx) =
            connect(settings(port, "agent-f-away", Protocol::V311)).await.unwrap();
        // The unacknowledged 10..20 come back in order. Acks handed to the client just
        // before a disconnect may not have reached the broker, so some of 0..10 may
        // come back first: at least once, which the pipeline recognises.
        let mut n = 10;
        let mut again = 0;
        while n < 20 {
            let d = recv(&mut rx).await;
            let early = (0..10).find(|&k| String::from_utf8_lossy(&d.payload) == payload(k));
            if early.is_some() {
                d.ack.ack();
                again += 1;
                assert!(again <= 10, "more redeliveries than unconfirmed acks");
                continue;
            }
            assert_delivery(&d, "d7", n);
            d.ack.ack();
            n += 1;
        }
        ingest.shutdown().await;
    }

    #[test]
    fn embedded_broker_reports_a_taken_port() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = crate::ingest::broker::start_embedded(addr).unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }

    /// A CA, a server certificate for localhost and a client certificate, by openssl.
    fn make_certs(dir: &Path) {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=tend test CA"],
            ]
            .concat(),
        );
        std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
            .unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for name in ["server", "client"] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let crt = format!("{name}.crt");
            let ext = format!("{name}.ext");
            openssl(
                &[
                    &["req"][..],
                    &ec,
                    &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={name}")],
                ]
                .concat(),
            );
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mqtts_with_a_custom_ca_and_a_client_certificate() {
        let certs = tempfile::tempdir().unwrap();
        make_certs(certs.path());
        let c = certs.path().to_owned();
        let broker = Mosquitto::start_with(
            |_, ports| {
                format!(
                    "listener {} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
                    ports[0],
                    c.join("ca.crt").display(),
                    c.join("server.crt").display(),
                    c.join("server.key").display(),
                )
            },
            1,
        );
        let mut s = settings(broker.extra_ports[0], "agent-g", Protocol::V311);
        s.url = url("localhost", broker.extra_ports[0], true);
        s.ca_file = Some(c.join("ca.crt"));
        s.client_auth = Some(ClientAuth { cert: c.join("client.crt"), key: c.join("client.key") });
        let (ingest, mut rx) = start(s).await;
        let publisher = Publisher::new(broker.port, "device-g");
        publisher.publish(&topic("d6"), &payload(1)).await;
        let d = recv(&mut rx).await;
        assert_delivery(&d, "d6", 1);
        d.ack.ack();
        eventually("the ack", || ingest.stats().acks_sent == 1).await;
        ingest.shutdown().await;

        // Without the client certificate the broker refuses: no connection, retries.
        let mut s = settings(broker.extra_ports[0], "agent-g2", Protocol::V311);
        s.url = url("localhost", broker.extra_ports[0], true);
        s.ca_file = Some(c.join("ca.crt"));
        let (ingest, _rx) = connect(s).await.unwrap();
        assert!(!ingest.wait_ready(Duration::from_millis(500)).await);
        assert_eq!(ingest.stats().connects, 0);
        ingest.shutdown().await;
    }

    #[tokio::test]
    async fn bad_settings_are_errors_that_say_what_and_where() {
        let dir = tempfile::tempdir().unwrap();
        let tls = |s: &mut MqttSettings| s.url = url("broker.example", 8883, true);

        let mut s = settings(1883, "agent", Protocol::V311);
        tls(&mut s);
        s.ca_file = Some(dir.path().join("missing-ca.pem"));
        let err = connect(s).await.unwrap_err();
        assert!(matches!(err, MqttError::ReadFile { what: "CA file", .. }), "{err:?}");
        assert!(err.to_string().contains("missing-ca.pem"), "{err}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let mut s = settings(1883, "agent", Protocol::V5);
        tls(&mut s);
        s.ca_file = Some(garbage.clone());
        let err = connect(s).await.unwrap_err();
        assert!(matches!(err, MqttError::BadPem { .. }), "{err:?}");
        assert!(err.to_string().contains("garbage.pem"), "{err}");

        let mut s = settings(1883, "agent", Protocol::V311);
        tls(&mut s);
        s.client_auth = Some(ClientAuth { cert: dir.path().join("no.crt"), key: garbage });
        s.ca_file = None;
        let err = connect(s).await.unwrap_err();
        // Either the system bundle is missing, or the client certificate is.
        assert!(
            matches!(err, MqttError::NoSystemRoots)
                || err.to_string().contains("client certificate")
                    && err.to_string().contains("no.crt"),
            "{err}"
        );

        let err = connect(settings(1883, "", Protocol::V311)).await.unwrap_err();
        assert!(matches!(err, MqttError::BadSetting { setting: "client_id", .. }), "{err:?}");
        let mut s = settings(1883, "agent", Protocol::V311);
        s.subscription = "tend/#/x".into();
        let err = connect(s).await.unwrap_err();
        assert!(err.to_string().contains("tend/#/x"), "{err}");
        let mut s = settings(1883, "agent", Protocol::V311);
        s.url = url("::1", 8883, true);
        assert!(matches!(connect(s).await.unwrap_err(), MqttError::BadUrl { .. }));
    }
}
