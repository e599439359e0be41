//! Why the MQTT ingest could not start: a setting ([`super::settings`]) or the TLS
//! set-up ([`super::tls`]). A broker that is down is no error: it is retried.

use std::path::PathBuf;

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
    /// `mqtts://` without `ca_file`, and the system's certificate store gave no usable
    /// CA certificate.
    #[error(
        "no mqtt.ca_file is set and the system's certificate store has no usable CA certificate ({reason}); set mqtt.ca_file"
    )]
    NoSystemRoots {
        /// What was looked at and what went wrong (`SSL_CERT_FILE` and `SSL_CERT_DIR`
        /// replace the system's store when set).
        reason: String,
    },
    /// The TLS library refused the configuration.
    #[error("MQTT TLS setup: {0}")]
    Tls(String),
}
