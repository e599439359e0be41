//! The MQTT ingest (`tend_agent::ingest::mqtt`) against real brokers: a Mosquitto
//! started per test on free loopback ports, and the embedded rumqttd. Through the public
//! API only: settings in, deliveries out, acks back, the counters.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use rumqttc::QoS;
use tend_agent::config::{ClientAuth, Mqtt, MqttUrl, Protocol};
use tend_agent::ingest::broker::{start_embedded, start_embedded_with_v5};
use tend_agent::ingest::mqtt::{AckToken, Delivery, MqttIngest, MqttSettings, connect};
use tend_agent::store::{Batch, Store};
use tend_tests::mosquitto::Mosquitto;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::harness::{Agent, Central, Site};

/// Longest wait for anything a test expects to happen.
const WAIT: Duration = Duration::from_secs(20);
const FILTER: &str = "tend/site/+/+";

/// Acks a delivery. The ingest takes an ack only with a durability proof, which only
/// a store makes: these tests commit nothing, so an empty store's proof stands in.
fn ack(token: AckToken) {
    static STORE: std::sync::LazyLock<(tempfile::TempDir, Store)> =
        std::sync::LazyLock::new(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), 1 << 20).unwrap();
            (dir, store)
        });
    let store = &STORE.1;
    let proof = store.sync(store.commit(&Batch::default()).unwrap()).unwrap();
    token.ack(&proof);
}

fn url(host: &str, port: u16, tls: bool) -> MqttUrl {
    MqttUrl { tls, host: host.into(), port }
}

fn settings(port: u16, client_id: &str, protocol: Protocol) -> MqttSettings {
    let mqtt = Mqtt {
        url: url("127.0.0.1", port, false),
        client_id: client_id.into(),
        username: None,
        password: None,
        ca_file: None,
        client_auth: None,
        protocol,
        keep_alive: SignedDuration::from_secs(30),
        topic: "tend/{site}/{device_id}/{kind}".into(),
    };
    MqttSettings { channel_capacity: 16, ..MqttSettings::new(mqtt, FILTER) }
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

/// Polls `cond` until it holds; fails the test after [`WAIT`].
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
                    // The device's own pause before it reconnects.
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

/// Leaves a session at the broker on `port` for `s`'s client id (connects, subscribes,
/// disconnects), then publishes `n` messages of `device` while the agent is away;
/// returns once the broker holds them all.
async fn publish_while_away(port: u16, s: MqttSettings, device: &str, n: usize) {
    let publisher_id = format!("{}-device", s.mqtt.client_id);
    let (ingest, rx) = start(s).await;
    ingest.shutdown().await;
    drop(rx);
    let publisher = Publisher::new(port, &publisher_id);
    for k in 0..n {
        publisher.publish(&topic(device), &payload(k)).await;
    }
    publisher.wait_acked(n as u64).await;
}

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
        ack(d.ack);
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

async fn redelivers_only_the_unacked(protocol: Protocol) {
    let broker = Mosquitto::start();
    let publisher = Publisher::new(broker.port, "device-b");
    let (ingest, mut rx) = start(settings(broker.port, "agent-b", protocol)).await;
    publisher.publish(&topic("d1"), &payload(1)).await;
    publisher.publish(&topic("d1"), &payload(2)).await;
    let first = recv(&mut rx).await;
    assert_delivery(&first, "d1", 1);
    ack(first.ack);
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
    ack(again.ack);
    // A marker published now comes next: message 1, acked before, does not come back.
    assert!(ingest.wait_ready(WAIT).await);
    publisher.publish(&topic("d1"), &payload(3)).await;
    let next = recv(&mut rx).await;
    assert_delivery(&next, "d1", 3);
    ack(next.ack);
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

/// Regression: acks fell behind reads under load. rumqttc's event loop takes one
/// request (an ack) per turn but reads up to nine packets, so with a backlog at the
/// broker the unacknowledged window grew without bound (100,000+ in the overload
/// bench), the keep-alive failed behind it and the broker sent it all again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_keep_up_with_reads_under_load_v311() {
    const N: u64 = 20_000;
    const BATCH: usize = 32;
    let broker = Mosquitto::start();
    let s = settings(broker.port, "agent-load", Protocol::V311);
    publish_while_away(broker.port, s, "d1", N as usize).await;

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
            ack(d.ack);
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

async fn delivers_what_was_published_while_away(protocol: Protocol) {
    let broker = Mosquitto::start();
    publish_while_away(broker.port, settings(broker.port, "agent-c", protocol), "d2", 50).await;
    let (ingest, mut rx) = connect(settings(broker.port, "agent-c", protocol)).await.unwrap();
    for n in 0..50 {
        let d = recv(&mut rx).await;
        assert_delivery(&d, "d2", n);
        ack(d.ack);
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
    ack(old.ack);
    eventually("the stale ack to be dropped", || ingest.stats().acks_stale == 1).await;

    let publisher = Publisher::new(broker.port, "device-d");
    publisher.publish(&topic("d3"), &payload(2)).await;
    let d = recv(&mut rx).await;
    assert_delivery(&d, "d3", 2);
    ack(d.ack);
    eventually("the ack after the restart", || ingest.stats().acks_sent == 1).await;
    ingest.shutdown().await;
}

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
        ack(d.ack);
    }
    eventually("all acks", || ingest.stats().acks_sent == N as u64).await;
    let stats = ingest.stats();
    assert_eq!((stats.messages, stats.disconnects, stats.acks_stale), (N as u64, 0, 0));
    ingest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_delivers_to_the_ingest() {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let broker = start_embedded_with_v5(any, any).unwrap();
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
        ack(d.ack);
    }
    eventually("the acks", || v4.stats().acks_sent == 1 && v5.stats().acks_sent == 1).await;
    v4.shutdown().await;
    v5.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_keeps_the_session_while_the_agent_is_away() {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let broker = start_embedded(any).unwrap();
    let port = broker.addr().port();
    publish_while_away(port, settings(port, "agent-f-away", Protocol::V311), "d7", 20).await;
    let (ingest, mut rx) = connect(settings(port, "agent-f-away", Protocol::V311)).await.unwrap();
    for n in 0..20 {
        let d = recv(&mut rx).await;
        assert_delivery(&d, "d7", n);
        if n < 10 {
            ack(d.ack);
        }
    }
    eventually("10 acks", || ingest.stats().acks_sent == 10).await;
    ingest.shutdown().await;
    drop(rx);
    let (ingest, mut rx) = connect(settings(port, "agent-f-away", Protocol::V311)).await.unwrap();
    // The unacknowledged 10..20 come back in order. Acks handed to the client just
    // before a disconnect may not have reached the broker, so some of 0..10 may
    // come back first: at least once, which the pipeline recognises.
    let mut n = 10;
    let mut again = 0;
    while n < 20 {
        let d = recv(&mut rx).await;
        let early = (0..10).find(|&k| String::from_utf8_lossy(&d.payload) == payload(k));
        if early.is_some() {
            ack(d.ack);
            again += 1;
            assert!(again <= 10, "more redeliveries than unconfirmed acks");
            continue;
        }
        assert_delivery(&d, "d7", n);
        ack(d.ack);
        n += 1;
    }
    ingest.shutdown().await;
}

#[test]
fn embedded_broker_reports_a_taken_port() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = start_embedded(addr).unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

/// A CA, a server certificate for localhost and a client certificate, by openssl.
fn make_certs(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
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
    std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for name in ["server", "client"] {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        let ext = format!("{name}.ext");
        openssl(
            &[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={name}")]]
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

/// A Mosquitto with a plain listener (for the test devices) and a TLS one on
/// `extra_ports[0]` that wants a client certificate signed by the test CA in `certs`.
fn tls_broker(certs: &Path) -> Mosquitto {
    Mosquitto::start_with(
        |_, ports| {
            format!(
                "listener {} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
                ports[0],
                certs.join("ca.crt").display(),
                certs.join("server.crt").display(),
                certs.join("server.key").display(),
            )
        },
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_a_custom_ca_and_a_client_certificate() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let c = certs.path().to_owned();
    let broker = tls_broker(&c);
    let mut s = settings(broker.extra_ports[0], "agent-g", Protocol::V311);
    s.mqtt.url = url("localhost", broker.extra_ports[0], true);
    s.mqtt.ca_file = Some(c.join("ca.crt"));
    s.mqtt.client_auth = Some(ClientAuth { cert: c.join("client.crt"), key: c.join("client.key") });
    let (ingest, mut rx) = start(s).await;
    let publisher = Publisher::new(broker.port, "device-g");
    publisher.publish(&topic("d6"), &payload(1)).await;
    let d = recv(&mut rx).await;
    assert_delivery(&d, "d6", 1);
    ack(d.ack);
    eventually("the ack", || ingest.stats().acks_sent == 1).await;
    ingest.shutdown().await;

    // Without the client certificate the broker refuses: no connection, retries.
    let mut s = settings(broker.extra_ports[0], "agent-g2", Protocol::V311);
    s.mqtt.url = url("localhost", broker.extra_ports[0], true);
    s.mqtt.ca_file = Some(c.join("ca.crt"));
    let (ingest, _rx) = connect(s).await.unwrap();
    assert!(!ingest.wait_ready(Duration::from_millis(500)).await);
    assert_eq!(ingest.stats().connects, 0);
    ingest.shutdown().await;
}

/// Without `mqtt.ca_file` the agent trusts the system's certificate store, which
/// `SSL_CERT_FILE` replaces (as on a site whose broker has a private CA installed
/// system-wide): `tend run` connects to a broker only the test CA vouches for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_without_a_ca_file_trusts_the_system_store() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let c = certs.path().to_owned();
    let broker = tls_broker(&c);
    let central = Central::start_temp().await.unwrap();
    let site = Site::new(broker.port, &central.url);
    site.setting("mqtt", &format!("client_cert = \"{}\"", c.join("client.crt").display()));
    site.setting("mqtt", &format!("client_key = \"{}\"", c.join("client.key").display()));
    let agent = |n, store: &Path| {
        let mut command = site.agent_command(n);
        command
            .env("TEND_MQTT_URL", format!("mqtts://localhost:{}", broker.extra_ports[0]))
            .env("SSL_CERT_FILE", store)
            .env_remove("SSL_CERT_DIR");
        Agent(Some(command.spawn().unwrap()))
    };

    // A store without the test CA: the agent runs but cannot connect, and says why.
    let other = tempfile::tempdir().unwrap();
    make_certs(other.path());
    let mut distrusting = agent(1, &other.path().join("ca.crt"));
    eventually("the refused connection in the log", || {
        site.last_log().contains("cannot connect to the MQTT broker")
    })
    .await;
    let log = site.last_log();
    assert!(log.contains("invalid peer certificate"), "{log}");
    distrusting.kill_9();

    let mut trusting = agent(2, &c.join("ca.crt"));
    site.wait_subscribed().await;
    trusting.stop(&site);
}
