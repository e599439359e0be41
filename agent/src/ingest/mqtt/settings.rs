//! The ingest's settings: the `[mqtt]` config section as it is (one copy, not a second
//! list of its fields) plus what the caller decides (the subscription, buffer sizes).
//! Checked once by [`MqttSettings::check`]; the values both protocols' clients are
//! built from are derived here, once.

use std::net::Ipv6Addr;
use std::time::Duration;

use crate::config::{self, Config, Secret};

use super::MqttError;

/// Deliveries buffered between the poll task and the pipeline by default.
pub const DEFAULT_CHANNEL_CAPACITY: usize = 64;

/// Largest MQTT packet accepted by default (1 MiB). A bigger message is refused by an
/// MQTT 5 broker; over MQTT 3.1.1 it breaks the connection each time it is redelivered.
pub const DEFAULT_MAX_PACKET_SIZE: u32 = 1024 * 1024;

/// Shortest keep-alive: rumqttc panics below 5 s (MQTT 5).
const MIN_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Longest keep-alive MQTT carries (16 bits of seconds).
const MAX_KEEP_ALIVE: Duration = Duration::from_secs(u16::MAX as u64);

/// Everything the MQTT ingest needs, usually made by [`MqttSettings::from_config`].
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    /// The broker, the client's identity and TLS files, protocol and keep-alive (its
    /// `topic` is not used here: the caller derives [`MqttSettings::subscription`]
    /// from it). `ca_file: None` means the system's CA certificates.
    pub mqtt: config::Mqtt,
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
        Self::new(config.mqtt.clone(), subscription)
    }

    /// The settings of `mqtt`, subscribing to `subscription`, with the default channel
    /// capacity and packet size.
    pub fn new(mqtt: config::Mqtt, subscription: impl Into<String>) -> Self {
        Self {
            mqtt,
            subscription: subscription.into(),
            channel_capacity: DEFAULT_CHANNEL_CAPACITY,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
        }
    }

    /// Refuses settings the client cannot use (before anything connects).
    pub(super) fn check(&self) -> Result<(), MqttError> {
        let bad = |setting, reason: &str| MqttError::BadSetting { setting, reason: reason.into() };
        let m = &self.mqtt;
        if m.client_id.is_empty() || m.client_id.contains(char::is_whitespace) {
            return Err(bad(
                "client_id",
                "a persistent session needs a non-empty id without spaces",
            ));
        }
        if m.password.is_some() && m.username.is_none() {
            return Err(bad("password", "a password needs a user name"));
        }
        if self.subscription.is_empty() || !rumqttc::valid_filter(&self.subscription) {
            return Err(MqttError::BadSetting {
                setting: "subscription",
                reason: format!("`{}` is not an MQTT topic filter", self.subscription),
            });
        }
        let url = &m.url;
        let bad_url =
            |reason: &str| MqttError::BadUrl { url: url.to_string(), reason: reason.into() };
        if url.host.is_empty() {
            return Err(bad_url("the host is missing"));
        }
        if url.port == 0 {
            return Err(bad_url("port 0 is not a broker port"));
        }
        if url.tls && is_ipv6(&url.host) {
            return Err(bad_url("with mqtts:// write a host name, not an IPv6 address"));
        }
        Ok(())
    }

    /// The host as the client resolves it (rumqttc formats `host:port` itself, so an
    /// IPv6 address needs its brackets).
    pub(super) fn host(&self) -> String {
        let host = &self.mqtt.url.host;
        if is_ipv6(host) { format!("[{host}]") } else { host.clone() }
    }

    /// The keep-alive within what MQTT carries and rumqttc accepts.
    pub(super) fn keep_alive(&self) -> Duration {
        self.mqtt.keep_alive.unsigned_abs().clamp(MIN_KEEP_ALIVE, MAX_KEEP_ALIVE)
    }

    /// User name and password (empty without one), if a user name is set.
    pub(super) fn credentials(&self) -> Option<(&str, &str)> {
        let m = &self.mqtt;
        let user = m.username.as_deref()?;
        Some((user, m.password.as_ref().map_or("", Secret::expose)))
    }
}

fn is_ipv6(host: &str) -> bool {
    host.parse::<Ipv6Addr>().is_ok()
}

#[cfg(test)]
pub(super) mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::config::{MqttUrl, Protocol};

    /// Plain MQTT 3.1.1 to `127.0.0.1:1883` as `agent`, no TLS, no credentials.
    pub(in super::super) fn settings() -> MqttSettings {
        let mqtt = config::Mqtt {
            url: MqttUrl { tls: false, host: "127.0.0.1".into(), port: 1883 },
            client_id: "agent".into(),
            username: None,
            password: None,
            ca_file: None,
            client_auth: None,
            protocol: Protocol::V311,
            keep_alive: SignedDuration::from_secs(30),
            topic: "tend/{site}/{device_id}/{kind}".into(),
        };
        MqttSettings::new(mqtt, "tend/site/+/+")
    }

    fn refused(change: impl FnOnce(&mut MqttSettings)) -> MqttError {
        let mut s = settings();
        change(&mut s);
        s.check().unwrap_err()
    }

    #[test]
    fn the_defaults_pass() {
        let s = settings();
        s.check().unwrap();
        assert_eq!(s.channel_capacity, DEFAULT_CHANNEL_CAPACITY);
        assert_eq!(s.max_packet_size, DEFAULT_MAX_PACKET_SIZE);
    }

    #[test]
    fn bad_settings_are_errors_that_say_which_setting() {
        for id in ["", "my agent"] {
            let err = refused(|s| s.mqtt.client_id = id.into());
            assert!(matches!(err, MqttError::BadSetting { setting: "client_id", .. }), "{err:?}");
        }
        let err = refused(|s| s.mqtt.password = Some(Secret::new("hunter2")));
        assert!(matches!(err, MqttError::BadSetting { setting: "password", .. }), "{err:?}");
        for filter in ["", "tend/#/x", "tend/a+/x"] {
            let err = refused(|s| s.subscription = filter.into());
            assert!(matches!(err, MqttError::BadSetting { setting: "subscription", .. }));
            assert!(err.to_string().contains(&format!("`{filter}`")), "{err}");
        }
    }

    #[test]
    fn bad_addresses_are_errors_that_name_the_address() {
        let err = refused(|s| s.mqtt.url.host = String::new());
        assert!(matches!(err, MqttError::BadUrl { .. }), "{err:?}");
        let err = refused(|s| s.mqtt.url.port = 0);
        assert!(err.to_string().contains("port 0"), "{err}");
        let err = refused(|s| s.mqtt.url = MqttUrl { tls: true, host: "::1".into(), port: 8883 });
        assert!(err.to_string().contains("mqtts://[::1]:8883"), "{err}");
        // Without TLS an IPv6 address is fine; the client gets it in brackets.
        let mut s = settings();
        s.mqtt.url = MqttUrl { tls: false, host: "::1".into(), port: 1883 };
        s.check().unwrap();
        assert_eq!(s.host(), "[::1]");
        assert_eq!(settings().host(), "127.0.0.1");
    }

    #[test]
    fn keep_alive_is_clamped_to_what_mqtt_and_rumqttc_take() {
        let with = |secs| {
            let mut s = settings();
            s.mqtt.keep_alive = SignedDuration::from_secs(secs);
            s.keep_alive()
        };
        assert_eq!(with(30), Duration::from_secs(30));
        assert_eq!(with(1), MIN_KEEP_ALIVE);
        assert_eq!(with(0), MIN_KEEP_ALIVE);
        assert_eq!(with(1_000_000), MAX_KEEP_ALIVE);
    }

    #[test]
    fn debug_output_shows_no_password() {
        let mut s = settings();
        s.mqtt.username = Some("tend".into());
        s.mqtt.password = Some(Secret::from_file("hunter2", "/etc/tend/mqtt.password"));
        let debug = format!("{s:?} {s:#?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("tend"), "{debug}");
    }

    #[test]
    fn credentials_need_a_user_name() {
        let mut s = settings();
        assert_eq!(s.credentials(), None);
        s.mqtt.username = Some("tend".into());
        assert_eq!(s.credentials(), Some(("tend", "")));
        s.mqtt.password = Some(Secret::new("hunter2"));
        assert_eq!(s.credentials(), Some(("tend", "hunter2")));
    }
}
