//! The embedded MQTT broker (rumqttd) for sites without one, and for `tend demo`.
//!
//! Configured in code (no config file): an MQTT 3.1.1 listener, optionally an MQTT 5
//! one, anonymous access, and room for QoS 1 persistent sessions: rumqttd keeps the
//! messages of each subscription in an in-memory commit log, and an offline session
//! resumes from its position in that log, so the log's size (16 MiB × 8 segments per
//! subscription filter) is how much an absent agent can catch up on. Nothing survives
//! a restart of the agent's process.
//!
//! rumqttd has no shutdown: the broker runs in background threads until the process
//! exits. Anyone who can reach the listen address can publish and subscribe, so keep
//! it on a trusted network (or loopback).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

/// How long [`start_embedded`] waits for the broker to answer.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the embedded broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The listen address is taken or not local.
    #[error("embedded MQTT broker: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The broker thread could not be started.
    #[error("embedded MQTT broker: cannot start its thread: {0}")]
    Thread(std::io::Error),
    /// The broker stopped right after starting (its log says why).
    #[error("embedded MQTT broker on {addr} stopped while starting (see the log)")]
    Stopped {
        /// The address.
        addr: SocketAddr,
    },
    /// The broker did not answer an MQTT CONNECT in time.
    #[error("embedded MQTT broker on {addr} did not answer within {timeout:?}: {last_error}")]
    NotAnswering {
        /// The address.
        addr: SocketAddr,
        /// How long it was given.
        timeout: Duration,
        /// What the last attempt saw.
        last_error: String,
    },
}

/// A running embedded broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    v4: SocketAddr,
    v5: Option<SocketAddr>,
    thread: JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Where the MQTT 3.1.1 listener is bound (the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.v4
    }

    /// Where the MQTT 5 listener is bound, if there is one.
    pub fn v5_addr(&self) -> Option<SocketAddr> {
        self.v5
    }

    /// `mqtt://host:port` for clients on this machine (loopback when listening on all
    /// addresses).
    pub fn url(&self) -> String {
        let a = dialable(self.v4);
        match a.ip() {
            IpAddr::V6(ip) => format!("mqtt://[{ip}]:{}", a.port()),
            IpAddr::V4(ip) => format!("mqtt://{ip}:{}", a.port()),
        }
    }

    /// Whether the broker's threads are still running.
    pub fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }
}

/// Starts rumqttd with an MQTT 3.1.1 listener on `listen` (port 0: any free port) and
/// waits until it answers an MQTT CONNECT.
pub fn start_embedded(listen: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
    start(listen, None)
}

/// Like [`start_embedded`], with an MQTT 5 listener on `listen_v5` as well.
pub fn start_embedded_with_v5(
    listen: SocketAddr,
    listen_v5: SocketAddr,
) -> Result<EmbeddedBroker, BrokerError> {
    start(listen, Some(listen_v5))
}

fn start(listen: SocketAddr, listen_v5: Option<SocketAddr>) -> Result<EmbeddedBroker, BrokerError> {
    // Bind once ourselves: a clear error for a taken port, and the real port for port 0.
    // rumqttd binds in its own thread and only logs a failure there.
    let v4 = resolve(listen)?;
    let v5 = listen_v5.map(resolve).transpose()?;
    let config = config(v4, v5);
    let thread = std::thread::Builder::new()
        .name("tend-mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    let broker = EmbeddedBroker { v4, v5, thread };
    wait_answering(&broker, v4, false)?;
    if let Some(v5) = v5 {
        wait_answering(&broker, v5, true)?;
    }
    tracing::info!(listen = %v4, v5 = ?v5, "embedded MQTT broker started");
    Ok(broker)
}

fn resolve(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let bind = |source| BrokerError::Bind { addr, source };
    let listener = TcpListener::bind(addr).map_err(bind)?;
    listener.local_addr().map_err(bind)
}

fn config(v4: SocketAddr, v5: Option<SocketAddr>) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 1024 * 1024,
        // Packets read from one connection per batch.
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = |name: &str, listen| {
        let settings = ServerSettings {
            name: name.to_owned(),
            listen,
            tls: None,
            next_connection_delay_ms: 1,
            connections: connections.clone(),
        };
        HashMap::from([("1".to_owned(), settings)])
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 8,
            ..RouterConfig::default()
        },
        v4: Some(server("tend-mqtt-v4", v4)),
        v5: v5.map(|addr| server("tend-mqtt-v5", addr)),
        ..Config::default()
    }
}

/// The address to connect to for a listen address (loopback for "all addresses").
fn dialable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Polls, until a deadline, with an MQTT CONNECT (clean session) that must get a
/// successful CONNACK, then disconnects. A bare TCP probe would make rumqttd log an
/// error for the connection that never sent CONNECT.
fn wait_answering(broker: &EmbeddedBroker, addr: SocketAddr, v5: bool) -> Result<(), BrokerError> {
    let deadline = Instant::now() + START_TIMEOUT;
    let target = dialable(addr);
    loop {
        let error = match probe(target, v5) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !broker.is_running() {
            return Err(BrokerError::Stopped { addr });
        }
        if Instant::now() >= deadline {
            return Err(BrokerError::NotAnswering {
                addr,
                timeout: START_TIMEOUT,
                last_error: error.to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn probe(addr: SocketAddr, v5: bool) -> std::io::Result<()> {
    const CLIENT_ID: &[u8] = b"tend-broker-probe";
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // CONNECT: "MQTT", level 4 or 5, clean session, keep-alive 10 s, (v5: no
    // properties), client id. The remaining length fits one byte.
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', if v5 { 5 } else { 4 }, 0x02, 0x00, 10];
    if v5 {
        body.push(0x00);
    }
    body.extend_from_slice(&(CLIENT_ID.len() as u16).to_be_bytes());
    body.extend_from_slice(CLIENT_ID);
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend_from_slice(&body);
    stream.write_all(&packet)?;
    // CONNACK: type 2, then flags and the return (v5: reason) code.
    let mut header = [0u8; 2];
    stream.read_exact(&mut header)?;
    let mut connack = vec![0u8; usize::from(header[1])];
    stream.read_exact(&mut connack)?;
    if header[0] != 0x20 || connack.get(1) != Some(&0) {
        return Err(std::io::Error::other(format!(
            "unexpected CONNACK {header:02x?} {connack:02x?}"
        )));
    }
    stream.write_all(&[0xe0, 0x00])
}
