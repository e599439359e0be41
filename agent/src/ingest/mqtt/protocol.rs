//! The v4/v5 adapter: rumqttc's MQTT 3.1.1 and MQTT 5 clients behind one
//! protocol-neutral face, so the tasks never match on the protocol. Both clients are
//! built by [`client`] from the one [`MqttSettings`].

use std::collections::VecDeque;

use rumqttc::{Outgoing, QoS, Transport, v5};

use super::MqttSettings;
use super::acks::PendingAck;
use crate::config::Protocol;

/// Capacity of rumqttc's request channel (acks, subscribe, disconnect).
const REQUEST_CHANNEL_CAPACITY: usize = 256;
/// MQTT 5 session expiry: never (the session outlives any outage, as in 3.1.1).
const SESSION_NEVER_EXPIRES: u32 = u32::MAX;

/// The client (for the ack task) and event loop (for the poll task) of the protocol
/// `s` asks for: persistent session, manual acks, the keep-alive, packet size limit,
/// credentials and transport of `s`.
pub(super) fn client(s: &MqttSettings, transport: Transport) -> (Client, EventLoop) {
    let (id, host, port) = (&s.mqtt.client_id, s.host(), s.mqtt.url.port);
    let keep_alive = s.keep_alive();
    match s.mqtt.protocol {
        Protocol::V311 => {
            let mut o = rumqttc::MqttOptions::new(id, host, port);
            o.set_keep_alive(keep_alive)
                .set_clean_session(false)
                .set_manual_acks(true)
                .set_max_packet_size(s.max_packet_size as usize, s.max_packet_size as usize)
                .set_transport(transport);
            if let Some((user, password)) = s.credentials() {
                o.set_credentials(user, password);
            }
            let (c, l) = rumqttc::AsyncClient::new(o, REQUEST_CHANNEL_CAPACITY);
            (Client::V4(c), EventLoop::V4(Box::new(l)))
        }
        Protocol::V5 => {
            let mut o = v5::MqttOptions::new(id, host, port);
            o.set_keep_alive(keep_alive)
                .set_clean_start(false)
                .set_session_expiry_interval(Some(SESSION_NEVER_EXPIRES))
                .set_manual_acks(true)
                .set_max_packet_size(Some(s.max_packet_size))
                .set_transport(transport);
            if let Some((user, password)) = s.credentials() {
                o.set_credentials(user, password);
            }
            let (c, l) = v5::AsyncClient::new(o, REQUEST_CHANNEL_CAPACITY);
            (Client::V5(c), EventLoop::V5(Box::new(l)))
        }
    }
}

/// A received PUBLISH, protocol-neutral.
#[derive(Debug)]
pub(super) struct Message {
    pub(super) topic: String,
    pub(super) payload: Vec<u8>,
    pub(super) qos: QoS,
    pub(super) pkid: u16,
    /// The broker marked it as a redelivery.
    pub(super) dup: bool,
    pub(super) retain: bool,
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

/// What the poll loop acts on.
pub(super) enum Polled {
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
pub(super) enum EventLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

impl EventLoop {
    /// Polls the connection (connecting first if there is none); errors as text.
    pub(super) async fn poll(&mut self) -> Result<Polled, String> {
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
    pub(super) fn queue_subscribe(&mut self, filter: &str) {
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
    pub(super) fn writes_acks(&self) -> bool {
        match self {
            Self::V4(l) => l.network.is_some(),
            Self::V5(_) => false,
        }
    }

    /// Writes the PUBACK (QoS 1) or PUBREC (QoS 2) of `ack` into the socket's buffer;
    /// false when there is nothing to write or no connection. Cancel-safe per packet: a
    /// packet is encoded into the buffer in one go.
    pub(super) async fn write_ack(&mut self, ack: PendingAck) -> Result<bool, String> {
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
    pub(super) async fn flush(&mut self) -> Result<(), String> {
        match self {
            Self::V4(l) => match l.network.as_mut() {
                Some(network) => network.flush().await.map_err(|e| e.to_string()),
                None => Ok(()),
            },
            Self::V5(_) => Ok(()),
        }
    }

    /// Takes the PUBLISHes read from a connection that then failed, not yet handed out.
    pub(super) fn take_buffered(&mut self) -> Vec<Message> {
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
    pub(super) fn clean(&mut self) {
        match self {
            Self::V4(l) => l.clean(),
            Self::V5(l) => l.clean(),
        }
    }
}

fn drain_publishes<E>(events: &mut VecDeque<E>, f: impl Fn(E) -> Option<Message>) -> Vec<Message> {
    events.drain(..).filter_map(f).collect()
}

/// The rumqttc client of either protocol (used by the ack task only).
pub(super) enum Client {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

impl Client {
    /// Puts the ack in the request channel if it has room (never waits).
    pub(super) fn try_ack(&self, ack: PendingAck) -> bool {
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

    /// Puts a DISCONNECT in the request channel if it has room (never waits).
    pub(super) fn try_disconnect(&self) -> bool {
        match self {
            Self::V4(c) => c.try_disconnect().is_ok(),
            Self::V5(c) => c.try_disconnect().is_ok(),
        }
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Secret;
    use crate::ingest::mqtt::settings::tests::settings;

    #[test]
    fn qos_maps_both_ways() {
        for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            assert_eq!(qos_from_v5(qos_to_v5(q)), q);
        }
    }

    #[tokio::test]
    async fn both_protocols_get_the_same_session_settings() {
        let mut s = settings();
        s.mqtt.keep_alive = jiff::SignedDuration::from_secs(1);
        s.mqtt.username = Some("tend".into());
        s.mqtt.password = Some(Secret::new("hunter2"));
        let login = Some(("tend".to_owned(), "hunter2".to_owned()));
        let (_, v4) = client(&s, Transport::tcp());
        let EventLoop::V4(v4) = v4 else { panic!("asked for 3.1.1") };
        let o = &v4.mqtt_options;
        assert_eq!(o.client_id(), "agent");
        assert_eq!(o.broker_address(), ("127.0.0.1".to_owned(), 1883));
        assert_eq!(o.keep_alive(), Duration::from_secs(5), "raised to rumqttc's minimum");
        assert!(!o.clean_session(), "a persistent session");
        assert!(o.manual_acks());
        assert_eq!(o.credentials().map(|l| (l.username, l.password)), login);
        assert_eq!(o.max_packet_size(), s.max_packet_size as usize);

        s.mqtt.protocol = Protocol::V5;
        let (_, v5) = client(&s, Transport::tcp());
        let EventLoop::V5(v5) = v5 else { panic!("asked for 5") };
        let o = &v5.options;
        assert_eq!(o.client_id(), "agent");
        assert_eq!(o.broker_address(), ("127.0.0.1".to_owned(), 1883));
        assert_eq!(o.keep_alive(), Duration::from_secs(5));
        assert!(!o.clean_start(), "a persistent session");
        assert_eq!(o.session_expiry_interval(), Some(SESSION_NEVER_EXPIRES));
        assert!(o.manual_acks());
        assert_eq!(o.credentials().map(|l| (l.username, l.password)), login);
        assert_eq!(o.max_packet_size(), Some(s.max_packet_size));
    }
}
