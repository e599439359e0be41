//! Ingest: the MQTT client ([`mqtt`]), the optional embedded broker ([`broker`]), topic
//! templates and payload event time.

pub mod broker;
pub mod event_time;
pub mod mqtt;
pub mod topic;

pub use broker::{BrokerError, EmbeddedBroker, start_embedded, start_embedded_with_v5};
pub use event_time::{EventTimeError, event_time_ms};
pub use mqtt::{
    AckToken, Delivery, MqttError, MqttIngest, MqttMonitor, MqttSettings, MqttStats, connect,
};
pub use topic::{ParsedTopic, TopicError, TopicTemplate};
