//! Secrets stay secret (issue 15, findings 9 and 10): no password or token in
//! `tend check`'s output or in a config's `Debug` text; tokens and passwords can come
//! from files; the embedded broker never listens beyond loopback without logins.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use tend_agent::config::Config;
use tend_agent::ingest::broker::{start_configured, start_embedded};
use tend_agent::ingest::mqtt::{MqttSettings, connect};
use tend_tests::mosquitto::free_port;
use tend_tests::site::{TestSite, test_site};

use super::harness::wait_exit;

/// The secret that must never be printed.
const PASSWORD: &str = "S3cretPassw0rd";
const CENTRAL: &str = "http://127.0.0.1:9";
const MQTT: &str = "mqtt://127.0.0.1:1883";

/// Runs `tend ARGS` with a clean `TEND_*` environment plus `env`: success, and
/// stdout + stderr.
fn tend(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tend"));
    cmd.args(args).stdin(Stdio::null());
    for var in [
        "TEND_MQTT_URL",
        "TEND_CENTRAL_URL",
        "TEND_CENTRAL_TOKEN",
        "TEND_DATA_DIR",
        "TEND_INVENTORY",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// `tend check` on the site.
fn check(site: &TestSite, env: &[(&str, &str)]) -> (bool, String) {
    tend(&["check", "--config", site.config.to_str().unwrap()], env)
}

/// Replaces `from` (which must be there) with `to` in the site's agent.toml.
fn edit(site: &TestSite, from: &str, to: &str) {
    let text = std::fs::read_to_string(&site.config).unwrap();
    assert!(text.contains(from), "no `{from}` in\n{text}");
    std::fs::write(&site.config, text.replacen(from, to, 1)).unwrap();
}

/// Writes a file in the site directory with the given mode.
fn write_secret(site: &TestSite, name: &str, text: &str, mode: u32) {
    let path = site.dir.path().join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn assert_no_secret(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "`{s}` is printed:\n{text}");
    }
}

/// Before: `tend check` printed `mqtt://tend:S3cretPassw0rd@…` when it refused the
/// URL (and so did `tend run` on start-up, into the journal).
#[test]
fn a_rejected_mqtt_url_does_not_print_its_password() {
    let in_file = [
        format!("mqtt://tend:{PASSWORD}@127.0.0.1:1883"),
        format!("mqtts://tend:{PASSWORD}@broker.example.com"),
        // No scheme: refused for that, and still not echoed.
        format!("tend:{PASSWORD}@127.0.0.1:1883"),
        // A password with the characters that end a host.
        format!("mqtt://tend:{PASSWORD}/x?#@127.0.0.1:1883"),
    ];
    for url in &in_file {
        let site = test_site(CENTRAL, url, "").unwrap();
        let (ok, out) = check(&site, &[]);
        assert!(!ok, "accepted {url}:\n{out}");
        assert!(out.contains("mqtt.url"), "{out}");
        assert_no_secret(&out, &[PASSWORD]);
    }
    // The same from the environment.
    let site = test_site(CENTRAL, MQTT, "").unwrap();
    let (ok, out) = check(&site, &[("TEND_MQTT_URL", &in_file[0])]);
    assert!(!ok && out.contains("mqtt.url") && out.contains("TEND_MQTT_URL"), "{out}");
    assert_no_secret(&out, &[PASSWORD]);

    // The central service's URL, in the file and from the environment.
    let central = format!("https://agent:{PASSWORD}@tickets.example.com/tend");
    let site = test_site(&central, MQTT, "").unwrap();
    let (ok, out) = check(&site, &[]);
    assert!(!ok && out.contains("central.url"), "{out}");
    assert_no_secret(&out, &[PASSWORD]);
    let site = test_site(CENTRAL, MQTT, "").unwrap();
    let (ok, out) = check(&site, &[("TEND_CENTRAL_URL", &central)]);
    assert!(!ok && out.contains("central.url") && out.contains("TEND_CENTRAL_URL"), "{out}");
    assert_no_secret(&out, &[PASSWORD]);

    // A secret of the wrong type is refused without its value.
    let site = test_site(CENTRAL, MQTT, "").unwrap();
    edit(&site, "token = \"tok\"", "token = 73310248");
    let (ok, out) = check(&site, &[]);
    assert!(!ok && out.contains("central.token"), "{out}");
    assert_no_secret(&out, &["73310248"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_can_come_from_files() {
    let port = free_port();
    let broker = format!(
        "[broker]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n\
         password_file = \"secrets/broker.passwd\"\n"
    );
    let site = test_site(CENTRAL, &format!("mqtt://127.0.0.1:{port}"), &broker).unwrap();
    edit(&site, "token = \"tok\"", "token_file = \"secrets/central.token\"");
    edit(
        &site,
        "client_id = \"tend-test\"\n",
        "client_id = \"tend-test\"\nusername = \"agent\"\npassword_file = \"secrets/mqtt.password\"\n",
    );
    let token = "c3ntral-T0ken";
    let device_password = "Dev1ce-Passw0rd";
    write_secret(&site, "secrets/central.token", &format!("  {token}\n"), 0o600);
    write_secret(&site, "secrets/mqtt.password", &format!("{PASSWORD}\r\n"), 0o640);
    write_secret(
        &site,
        "secrets/broker.passwd",
        &format!("# who may publish\nagent:{PASSWORD}\n\nsensor-1:{device_password}\n"),
        0o600,
    );
    let secrets = [PASSWORD, token, device_password];

    // Read at load, trimmed; Debug shows none of them.
    let config = Config::load(&site.config).unwrap();
    assert_eq!(config.central.token.expose(), token);
    assert_eq!(config.mqtt.password.as_ref().map(|p| p.expose()), Some(PASSWORD));
    let auth = config.broker.auth.as_ref().expect("broker logins");
    assert_eq!(auth.users.len(), 2);
    assert_eq!(auth.users.get("sensor-1").map(|p| p.expose()), Some(device_password));
    let settings = MqttSettings::from_config(&config, "tend/test-site/+/+");
    assert_no_secret(&format!("{config:?}\n{config:#?}\n{settings:?}"), &secrets);

    // `tend check` takes them, prints none, and has nothing to warn about.
    let (ok, out) = check(&site, &[]);
    assert!(ok, "{out}");
    assert!(!out.contains("warning"), "{out}");
    assert_no_secret(&out, &secrets);

    // End to end: the embedded broker takes the agent's login from the files, and
    // refuses a client without one.
    let b = tokio::task::spawn_blocking({
        let broker = config.broker.clone();
        move || start_configured(&broker)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(b.addr().port(), port);
    let (ingest, _rx) = connect(settings.clone()).await.unwrap();
    assert!(ingest.wait_ready(Duration::from_secs(20)).await, "the agent's login was refused");
    ingest.shutdown().await;
    let mut anonymous = settings.clone();
    anonymous.mqtt.username = None;
    anonymous.mqtt.password = None;
    anonymous.mqtt.client_id = "intruder".into();
    let (ingest, _rx) = connect(anonymous).await.unwrap();
    assert!(!ingest.wait_ready(Duration::from_secs(3)).await, "an anonymous client got in");
    ingest.shutdown().await;

    // A secret file others can read is worth a warning (not an error).
    std::fs::set_permissions(
        site.dir.path().join("secrets/central.token"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (ok, out) = check(&site, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("warning") && out.contains("central.token_file"), "{out}");
    assert!(out.contains("secrets/central.token"), "{out}");
    assert_no_secret(&out, &secrets);

    // A missing file: its key and path are named, nothing of the others is printed.
    edit(&site, "secrets/central.token", "secrets/missing.token");
    let (ok, out) = check(&site, &[]);
    assert!(!ok && out.contains("central.token_file") && out.contains("missing.token"), "{out}");
    assert_no_secret(&out, &secrets);
    // TEND_CENTRAL_TOKEN still overrides the key (and replaces token_file).
    let (ok, out) = check(&site, &[("TEND_CENTRAL_TOKEN", "from-env")]);
    assert!(ok, "{out}");
    assert_no_secret(&out, &secrets);

    // A broker password file that is not `user:password` lines: the line is named,
    // not shown.
    write_secret(&site, "secrets/broker.passwd", &format!("{PASSWORD}\n"), 0o600);
    let (ok, out) = check(&site, &[("TEND_CENTRAL_TOKEN", "from-env")]);
    assert!(!ok && out.contains("broker.password_file") && out.contains("line 1"), "{out}");
    assert_no_secret(&out, &secrets);
}

/// Before: `broker.listen = "0.0.0.0:1883"` ran rumqttd without authentication, so
/// anyone on the LAN could publish fake telemetry.
#[test]
fn a_lan_broker_without_auth_is_refused() {
    let port = free_port();
    for listen in [format!("0.0.0.0:{port}"), format!("[::]:{port}"), "192.168.1.10:1883".into()] {
        let site =
            test_site(CENTRAL, MQTT, &format!("[broker]\nenabled = true\nlisten = \"{listen}\"\n"))
                .unwrap();
        let (ok, out) = check(&site, &[]);
        assert!(!ok, "accepted {listen}:\n{out}");
        assert!(out.contains("broker.listen") && out.contains("broker.password_file"), "{out}");
    }

    // `tend run` refuses it on start-up too (before: it ran).
    let site = test_site(
        CENTRAL,
        MQTT,
        &format!("[broker]\nenabled = true\nlisten = \"0.0.0.0:{port}\"\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["run", "--config", site.config.to_str().unwrap()])
        .env_remove("TEND_MQTT_URL")
        .env_remove("TEND_CENTRAL_URL")
        .env_remove("TEND_CENTRAL_TOKEN")
        .env_remove("TEND_DATA_DIR")
        .env_remove("TEND_INVENTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.is_some_and(|s| !s.success()), "tend run started:\n{err}");
    assert!(err.contains("broker.listen"), "{err}");

    // Off, or on loopback, it needs no logins.
    let site = test_site(
        CENTRAL,
        MQTT,
        &format!("[broker]\nenabled = false\nlisten = \"0.0.0.0:{port}\"\n"),
    )
    .unwrap();
    let (ok, out) = check(&site, &[]);
    assert!(ok, "{out}");
    let site = test_site(
        CENTRAL,
        MQTT,
        &format!("[broker]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let (ok, out) = check(&site, &[]);
    assert!(ok, "{out}");

    // With logins it is accepted; the agent's own connection to it must log in too.
    let lan = format!(
        "[broker]\nenabled = true\nlisten = \"0.0.0.0:{port}\"\npassword_file = \"broker.passwd\"\n"
    );
    let site = test_site(CENTRAL, &format!("mqtt://127.0.0.1:{port}"), &lan).unwrap();
    write_secret(&site, "broker.passwd", &format!("agent:{PASSWORD}\n"), 0o600);
    let (ok, out) = check(&site, &[]);
    assert!(!ok && out.contains("mqtt.username"), "the agent cannot log in to it:\n{out}");
    assert_no_secret(&out, &[PASSWORD]);
    edit(
        &site,
        "client_id = \"tend-test\"\n",
        "client_id = \"tend-test\"\nusername = \"agent\"\npassword_file = \"mqtt.password\"\n",
    );
    write_secret(&site, "mqtt.password", "not-the-password\n", 0o600);
    let (ok, out) = check(&site, &[]);
    assert!(!ok && out.contains("mqtt.password_file"), "a wrong password passed:\n{out}");
    assert_no_secret(&out, &[PASSWORD, "not-the-password"]);
    write_secret(&site, "mqtt.password", &format!("{PASSWORD}\n"), 0o600);
    let (ok, out) = check(&site, &[]);
    assert!(ok, "{out}");
    assert_no_secret(&out, &[PASSWORD]);

    // The library refuses an anonymous broker beyond loopback as well.
    let err = start_embedded("0.0.0.0:0".parse().unwrap()).unwrap_err().to_string();
    assert!(err.contains("loopback") && err.contains("broker.password_file"), "{err}");
}

/// `tend central` takes its shared token from a file (`--token-file`), so it need be
/// on no command line: requests with it are served, others refused; an empty file
/// is an error naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_central_service_takes_its_token_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("central.token");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let port = free_port();
    let data = dir.path().join("central");
    let mut central = Command::new(env!("CARGO_BIN_EXE_tend"))
        .args(["central", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(&data)
        .arg("--token-file")
        .arg(&file)
        .env_remove("TEND_CENTRAL_TOKEN")
        .env_remove("TEND_CENTRAL_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/api/v1/tickets");
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + super::harness::WAIT;
    let status = loop {
        match client.get(&url).bearer_auth("from-a-file").send().await {
            Ok(answer) => break answer.status(),
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "central never answered: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(status, 200);
    let wrong = client.get(&url).bearer_auth("guess").send().await.unwrap().status();
    assert_eq!(wrong, 401);
    let _ = central.kill();
    let _ = central.wait();
    std::fs::write(&file, "\n").unwrap();
    let (ok, out) = tend(
        &["central", "--data-dir", data.to_str().unwrap(), "--token-file", file.to_str().unwrap()],
        &[],
    );
    assert!(!ok && out.contains("central.token") && out.contains("empty"), "{out}");
}
