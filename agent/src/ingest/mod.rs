//! Ingest: MQTT topics and payload event time (pure parts).

pub mod event_time;
pub mod topic;

pub use event_time::{EventTimeError, event_time_ms};
pub use topic::{ParsedTopic, TopicError, TopicTemplate};
