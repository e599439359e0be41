//! The embedded MQTT broker (rumqttd) for sites without one, and for `tend demo`.
//!
//! Configured in code (no config file): an MQTT 3.1.1 listener, optionally an MQTT 5
//! one, the logins of `broker.password_file` (or anonymous access, on loopback only),
//! and room for QoS 1 persistent sessions: rumqttd keeps the
//! messages of each subscription in an in-memory commit log, and an offline session
//! resumes from its position in that log, so the log's size (16 MiB × 8 segments per
//! subscription filter) is how much an absent agent can catch up on. Nothing survives
//! a restart of the agent's process.
//!
//! rumqttd has no shutdown: the broker runs in background threads until the process
//! exits. Nor does it recover from a panic in its router (rumqttd 0.20 panics in its
//! will handling when a client id reconnects at the wrong moment, poisoning a lock
//! and leaving the listener dead): [`EmbeddedBroker::answers`] lets the agent watch
//! it and exit for its service manager to restart it rather than run deaf.
//!
//! # Who may connect
//! Without logins anyone who can reach the listen address can publish (fake
//! telemetry) and subscribe, so an anonymous broker listens on loopback only: any
//! other address is refused ([`BrokerError::Open`]), here and by config validation.
//! With logins ([`BrokerAuth`]) every client must send one of them in its CONNECT;
//! passwords are compared in constant time by our own check (rumqttd's
//! `external_auth`), so they never sit in rumqttd's config, whose `Debug` would
//! print them. TLS is no alternative: rumqttd 0.20 authenticates clients by
//! certificate only with its `verify-client-cert` feature, which tend does not
//! enable, so a TLS listener alone would still take anyone.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};
use subtle::ConstantTimeEq;

use crate::config::{self, BrokerAuth, Secret};

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
    /// Anonymous access on an address beyond loopback.
    #[error(
        "embedded MQTT broker: refusing to listen on {addr} without logins: it is not a \
         loopback address, so anyone who can reach it could publish fake telemetry \
         (set broker.password_file, or broker.listen = \"127.0.0.1:{}\")",
        addr.port()
    )]
    Open {
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
    /// The login probes use (the first of `broker.password_file`).
    login: Option<(String, Secret)>,
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

    /// Whether the broker still answers an MQTT CONNECT with a CONNACK (blocking,
    /// at most a few seconds). Each probe uses a client id of its own, so probing
    /// never takes over a session.
    pub fn answers(&self) -> Result<(), std::io::Error> {
        if !self.is_running() {
            return Err(std::io::Error::other("its thread has ended"));
        }
        let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("tend-broker-watch-{}-{n}", std::process::id());
        let login = self.login.as_ref().map(|(u, p)| (u, p));
        probe(dialable(self.v4), false, login, &id)
    }
}

/// Probes made so far (their client ids differ).
static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Starts rumqttd with an MQTT 3.1.1 listener on `listen` (port 0: any free port),
/// open to anyone, and waits until it answers an MQTT CONNECT. `listen` must be a
/// loopback address ([`BrokerError::Open`] otherwise).
pub fn start_embedded(listen: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
    start(listen, None, None)
}

/// Like [`start_embedded`], with an MQTT 5 listener on `listen_v5` as well.
pub fn start_embedded_with_v5(
    listen: SocketAddr,
    listen_v5: SocketAddr,
) -> Result<EmbeddedBroker, BrokerError> {
    start(listen, Some(listen_v5), None)
}

/// The broker `[broker]` describes: on `broker.listen`, taking only the logins of
/// `broker.password_file` when it has some (then any address will do), anyone
/// otherwise (then loopback only).
pub fn start_configured(broker: &config::Broker) -> Result<EmbeddedBroker, BrokerError> {
    start(broker.listen, None, broker.auth.as_ref())
}

fn start(
    listen: SocketAddr,
    listen_v5: Option<SocketAddr>,
    auth: Option<&BrokerAuth>,
) -> Result<EmbeddedBroker, BrokerError> {
    if auth.is_none() {
        for addr in std::iter::once(listen).chain(listen_v5) {
            if !addr.ip().to_canonical().is_loopback() {
                return Err(BrokerError::Open { addr });
            }
        }
    }
    // Bind once ourselves: a clear error for a taken port, and the real port for port 0.
    // rumqttd binds in its own thread and only logs a failure there.
    let v4 = resolve(listen)?;
    let v5 = listen_v5.map(resolve).transpose()?;
    let users = auth.map(|a| Arc::new(a.users.clone()));
    // The start-up probe logs in as the first user.
    let login = auth.and_then(|a| a.users.iter().next());
    let logins = users.as_ref().map_or(0, |u| u.len());
    let config = config(v4, v5, users);
    let thread = std::thread::Builder::new()
        .name("tend-mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    let broker =
        EmbeddedBroker { v4, v5, thread, login: login.map(|(u, p)| (u.clone(), p.clone())) };
    wait_answering(&broker, v4, false, login)?;
    if let Some(v5) = v5 {
        wait_answering(&broker, v5, true, login)?;
    }
    tracing::info!(listen = %v4, v5 = ?v5, logins, "embedded MQTT broker started");
    Ok(broker)
}

fn resolve(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    let bind = |source| BrokerError::Bind { addr, source };
    let listener = TcpListener::bind(addr).map_err(bind)?;
    listener.local_addr().map_err(bind)
}

/// rumqttd's config; `users`: the only logins it takes (`None`: anyone).
fn config(v4: SocketAddr, v5: Option<SocketAddr>, users: Option<Arc<Logins>>) -> Config {
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 1024 * 1024,
        // Packets read from one connection per batch.
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    if let Some(users) = users {
        connections.set_auth_handler(move |_client_id, user: String, password: String| {
            std::future::ready(accepts(&users, &user, &password))
        });
    }
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

/// User name -> password.
type Logins = BTreeMap<String, Secret>;

/// Whether `user` / `password` is one of `users` (the password compared in constant
/// time).
fn accepts(users: &Logins, user: &str, password: &str) -> bool {
    users.get(user).is_some_and(|p| bool::from(p.expose().as_bytes().ct_eq(password.as_bytes())))
}

/// The address to connect to for a listen address (loopback for "all addresses").
fn dialable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Polls, until a deadline, with an MQTT CONNECT (clean session, with `login` if
/// given) that must get a successful CONNACK, then disconnects. A bare TCP probe would
/// make rumqttd log an error for the connection that never sent CONNECT.
fn wait_answering(
    broker: &EmbeddedBroker,
    addr: SocketAddr,
    v5: bool,
    login: Option<(&String, &Secret)>,
) -> Result<(), BrokerError> {
    let deadline = Instant::now() + START_TIMEOUT;
    let target = dialable(addr);
    loop {
        let error = match probe(target, v5, login, "tend-broker-probe") {
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

fn probe(
    addr: SocketAddr,
    v5: bool,
    login: Option<(&String, &Secret)>,
    client_id: &str,
) -> std::io::Result<()> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&connect_packet(v5, login, client_id)?)?;
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

/// An MQTT CONNECT: "MQTT", level 4 or 5, clean session (plus user name and password
/// with a login), keep-alive 10 s, (v5: no properties), then the client id and the
/// login.
fn connect_packet(
    v5: bool,
    login: Option<(&String, &Secret)>,
    client_id: &str,
) -> std::io::Result<Vec<u8>> {
    let flags = if login.is_some() { 0xc2 } else { 0x02 };
    let mut body =
        vec![0x00, 0x04, b'M', b'Q', b'T', b'T', if v5 { 5 } else { 4 }, flags, 0x00, 10];
    if v5 {
        body.push(0x00);
    }
    let mut field = |s: &str| -> std::io::Result<()> {
        let len = u16::try_from(s.len())
            .map_err(|_| std::io::Error::other("a login longer than MQTT allows"))?;
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(s.as_bytes());
        Ok(())
    };
    field(client_id)?;
    if let Some((user, password)) = login {
        field(user)?;
        field(password.expose())?;
    }
    // Fixed header: the type, then the remaining length in 7-bit groups.
    let mut packet = vec![0x10];
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        packet.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(&body);
    Ok(packet)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(users: &[(&str, &str)]) -> BrokerAuth {
        let users = users.iter().map(|(u, p)| ((*u).to_owned(), Secret::new(*p))).collect();
        BrokerAuth { file: "broker.passwd".into(), users }
    }

    #[test]
    fn logins_are_checked_by_user_and_password() {
        let users = auth(&[("agent", "pw-1"), ("sensor", "pw-2")]).users;
        assert!(accepts(&users, "agent", "pw-1"));
        assert!(accepts(&users, "sensor", "pw-2"));
        assert!(!accepts(&users, "agent", "pw-2"));
        assert!(!accepts(&users, "agent", "pw-10"));
        assert!(!accepts(&users, "nobody", "pw-1"));
        assert!(!accepts(&users, "", ""));
    }

    #[test]
    fn an_anonymous_broker_listens_on_loopback_only() {
        for addr in ["0.0.0.0:0", "[::]:0", "192.168.1.10:1883", "[::ffff:10.0.0.1]:1883"] {
            let addr: SocketAddr = addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
            let err = start_embedded(addr).err();
            assert!(matches!(err, Some(BrokerError::Open { .. })), "{addr}: {err:?}");
            let broker = config::Broker { enabled: true, listen: addr, auth: None };
            assert!(matches!(start_configured(&broker), Err(BrokerError::Open { .. })));
        }
        let v5 = start_embedded_with_v5(([127, 0, 0, 1], 0).into(), ([0, 0, 0, 0], 0).into());
        assert!(matches!(v5, Err(BrokerError::Open { .. })));
        let message = BrokerError::Open { addr: ([0, 0, 0, 0], 1883).into() }.to_string();
        assert!(message.contains("broker.password_file"), "{message}");
    }

    #[test]
    fn a_broker_with_logins_refuses_clients_without_one() {
        let broker = config::Broker {
            enabled: true,
            listen: ([127, 0, 0, 1], 0).into(),
            auth: Some(auth(&[("agent", "S3cret")])),
        };
        let b = start_configured(&broker).unwrap_or_else(|e| panic!("{e}"));
        let addr = b.addr();
        let (user, right) = ("agent".to_owned(), Secret::new("S3cret"));
        let wrong = Secret::new("guess");
        assert!(probe(addr, false, Some((&user, &right)), "t").is_ok());
        assert!(probe(addr, false, None, "t").is_err());
        assert!(probe(addr, false, Some((&user, &wrong)), "t").is_err());
        // The watchdog's check logs in with the configured login, each time under a
        // client id of its own.
        for _ in 0..3 {
            assert!(b.answers().is_ok());
        }
    }

    #[test]
    fn connect_packets_encode_long_logins() {
        let user = "u".repeat(200);
        let password = Secret::new("p".repeat(300));
        let packet = connect_packet(false, Some((&user, &password)), "tend-broker-probe")
            .unwrap_or_default();
        // 10 header bytes, 3 fields with 2-byte lengths: 10 + 19 + 202 + 302 = 533.
        assert_eq!(&packet[..3], &[0x10, 0x80 | (533 % 128) as u8, (533 / 128) as u8]);
        assert_eq!(packet.len(), 3 + 533);
        assert_eq!(packet[10], 0xc2);
    }
}
