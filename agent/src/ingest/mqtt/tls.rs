//! The transport: plain TCP for `mqtt://`; for `mqtts://` TLS trusting the CA
//! certificates of `mqtt.ca_file`, or without one the system's certificate store
//! (found by `rustls-native-certs`: the distribution's bundle, or `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` when set), with the client certificate for mutual TLS if configured.
//! Files are read once, when the ingest starts; their errors name the file.

use std::path::Path;
use std::sync::Arc;

use rumqttc::tokio_rustls::rustls;
use rumqttc::{TlsConfiguration, Transport};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::warn;

use super::{MqttError, MqttSettings};

/// The transport `s.mqtt.url` asks for.
pub(super) fn transport(s: &MqttSettings) -> Result<Transport, MqttError> {
    let m = &s.mqtt;
    if !m.url.tls {
        return Ok(Transport::tcp());
    }
    let roots = match &m.ca_file {
        Some(path) => ca_file_roots(path)?,
        None => system_roots()?,
    };
    // The provider is named, not taken from the process default: with more than one
    // rustls provider compiled in, the default is ambiguous and rustls would panic.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MqttError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match &m.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let pem = read_file("client certificate", &auth.cert)?;
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad_pem("client certificate", &auth.cert, format!("not PEM: {e}")))?;
            if chain.is_empty() {
                return Err(bad_pem(
                    "client certificate",
                    &auth.cert,
                    "holds no certificate".into(),
                ));
            }
            let pem = read_file("client key", &auth.key)?;
            let key = PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| bad_pem("client key", &auth.key, format!("no private key: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                bad_pem("client certificate", &auth.cert, format!("unusable with its key: {e}"))
            })?
        }
    };
    Ok(Transport::tls_with_config(TlsConfiguration::Rustls(Arc::new(config))))
}

/// The CA certificates of the configured file: at least one, all PEM.
fn ca_file_roots(path: &Path) -> Result<RootCertStore, MqttError> {
    let ca = read_file("CA file", path)?;
    let certs = CertificateDer::pem_slice_iter(&ca)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem("CA file", path, format!("not PEM certificates: {e}")))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(bad_pem("CA file", path, "holds no usable CA certificate (PEM)".into()));
    }
    Ok(roots)
}

/// The system's CA certificates. Unreadable parts of the store are logged and skipped;
/// an error only when nothing usable is left.
fn system_roots() -> Result<RootCertStore, MqttError> {
    let found = rustls_native_certs::load_native_certs();
    let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let reason = if errors.is_empty() { "it is empty".to_owned() } else { errors.join("; ") };
        return Err(MqttError::NoSystemRoots { reason });
    }
    if !errors.is_empty() || ignored > 0 {
        warn!(
            added,
            ignored,
            errors = %errors.join("; "),
            "MQTT TLS: parts of the system's certificate store are unusable; using the rest"
        );
    }
    Ok(roots)
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, MqttError> {
    std::fs::read(path).map_err(|source| MqttError::ReadFile {
        what,
        path: path.to_owned(),
        source,
    })
}

fn bad_pem(what: &'static str, path: &Path, reason: String) -> MqttError {
    MqttError::BadPem { what, path: path.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::config::{ClientAuth, MqttUrl};
    use crate::ingest::mqtt::settings::tests::settings;

    /// `mqtts://broker.example:8883` with `ca_file` and `client_auth` as given.
    fn tls_settings(ca_file: Option<&Path>, client_auth: Option<ClientAuth>) -> MqttSettings {
        let mut s = settings();
        s.mqtt.url = MqttUrl { tls: true, host: "broker.example".into(), port: 8883 };
        s.mqtt.ca_file = ca_file.map(Path::to_owned);
        s.mqtt.client_auth = client_auth;
        s
    }

    /// The error `transport` gives for `s`.
    fn refused(s: MqttSettings) -> MqttError {
        match transport(&s) {
            Ok(_) => panic!("accepted {s:?}"),
            Err(e) => e,
        }
    }

    /// A self-signed certificate and its key, `{name}.crt` and `{name}.key` in `dir`.
    fn self_signed(dir: &Path, name: &str) -> ClientAuth {
        let (cert, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
        ClientAuth { cert, key }
    }

    #[test]
    fn mqtt_is_plain_tcp_and_reads_no_files() {
        let mut s = settings();
        s.mqtt.ca_file = Some("/nonexistent/ca.pem".into());
        assert!(matches!(transport(&s), Ok(Transport::Tcp)));
    }

    #[test]
    fn the_configured_ca_file_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let ca = self_signed(dir.path(), "ca");
        assert!(matches!(transport(&tls_settings(Some(&ca.cert), None)), Ok(Transport::Tls(_))));
        let client = self_signed(dir.path(), "client");
        let s = tls_settings(Some(&ca.cert), Some(client));
        assert!(matches!(transport(&s), Ok(Transport::Tls(_))));
    }

    #[test]
    fn unusable_tls_files_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing-ca.pem");
        let err = refused(tls_settings(Some(&missing), None));
        assert!(matches!(err, MqttError::ReadFile { what: "CA file", .. }), "{err:?}");
        assert!(err.to_string().contains("missing-ca.pem"), "{err}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let err = refused(tls_settings(Some(&garbage), None));
        assert!(matches!(err, MqttError::BadPem { what: "CA file", .. }), "{err:?}");
        assert!(err.to_string().contains("garbage.pem"), "{err}");

        let ca = self_signed(dir.path(), "ca");
        let no_cert = ClientAuth { cert: dir.path().join("no.crt"), key: ca.key.clone() };
        let err = refused(tls_settings(Some(&ca.cert), Some(no_cert)));
        assert!(matches!(err, MqttError::ReadFile { what: "client certificate", .. }));
        assert!(err.to_string().contains("no.crt"), "{err}");

        let empty = ClientAuth { cert: garbage.clone(), key: ca.key.clone() };
        let err = refused(tls_settings(Some(&ca.cert), Some(empty)));
        assert!(matches!(err, MqttError::BadPem { what: "client certificate", .. }), "{err:?}");

        let no_key = ClientAuth { cert: ca.cert.clone(), key: garbage };
        let err = refused(tls_settings(Some(&ca.cert), Some(no_key)));
        assert!(matches!(err, MqttError::BadPem { what: "client key", .. }), "{err:?}");
    }

    #[test]
    fn without_a_ca_file_the_system_store_is_used() {
        // Whether this machine has a store is not up to the test: either it is used,
        // or the error says what is missing and what to set.
        match transport(&tls_settings(None, None)) {
            Ok(transport) => assert!(matches!(transport, Transport::Tls(_))),
            Err(err @ MqttError::NoSystemRoots { .. }) => {
                assert!(err.to_string().contains("set mqtt.ca_file"), "{err}");
            }
            Err(err) => panic!("{err:?}"),
        }
    }
}
