//! Raw config -> [`Config`]: every check, every problem reported, paths resolved.
//!
//! Pure apart from [`Sources::read`] for the password and token files.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use jiff::civil::Weekday;

use super::Sources;
use super::doc::{Reporter, join};
use super::inventory::Inventory;
use super::model::*;
use super::raw::*;
use super::topic::{MqttUrl, check_topic, parse_http_url};
use super::values::{Due, Dur};

/// Environment variables that override config keys (interfaces.md): variable, key.
pub const ENV_OVERRIDES: [(&str, &str); 5] = [
    ("TEND_MQTT_URL", "mqtt.url"),
    ("TEND_CENTRAL_URL", "central.url"),
    ("TEND_CENTRAL_TOKEN", "central.token"),
    ("TEND_DATA_DIR", "store.data_dir"),
    ("TEND_INVENTORY", "inventory"),
];

/// Applies the environment overrides to the raw config and marks the keys they set.
pub(crate) fn apply_env(
    raw: &mut RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
    r: &mut Reporter<'_>,
) {
    for (var, key) in ENV_OVERRIDES {
        let Some(value) = env(var) else { continue };
        match var {
            "TEND_MQTT_URL" => raw.mqtt.url = RawUrl(value),
            "TEND_CENTRAL_URL" => raw.central.url = Some(RawUrl(value)),
            "TEND_CENTRAL_TOKEN" => {
                raw.central.token = Some(Secret::new(value));
                raw.central.token_file = None;
            }
            "TEND_DATA_DIR" => raw.store.data_dir = value,
            _ => raw.inventory = value,
        }
        r.set_from_env(key, var);
    }
}

/// A path from the config: relative to the config file's directory, or, when an
/// environment variable set it, as given (relative to the current directory).
pub(crate) fn resolve(r: &Reporter<'_>, dir: &Path, key: &str, value: &str) -> PathBuf {
    if r.env_var(key).is_some() { PathBuf::from(value) } else { dir.join(value) }
}

/// Validates everything; `None` (with problems in `r`) when something is wrong.
pub(crate) fn validate(
    raw: RawConfig,
    r: &mut Reporter<'_>,
    dir: &Path,
    inventory: Option<Inventory>,
    sources: &Sources<'_>,
) -> Option<Config> {
    let site = inventory.as_ref().map_or("site", |i| i.site.as_str()).to_owned();
    let types: Option<Vec<&str>> =
        inventory.as_ref().map(|i| i.devices.iter().map(|d| d.equipment_type.as_str()).collect());
    let devices: Option<Vec<&str>> =
        inventory.as_ref().map(|i| i.devices.iter().map(|d| d.id.as_str()).collect());

    if raw.inventory.trim().is_empty() {
        r.push("inventory", "must name the site inventory file");
    }
    let mqtt = mqtt(raw.mqtt, r, dir, &site, sources);
    let ingest = ingest(raw.ingest, r);
    let broker = broker(raw.broker, r, dir, sources);
    let central = central(raw.central, r, dir, sources);
    let store = store(raw.store, r, dir);
    let plugins = plugins(raw.plugins, r, dir, &store.data_dir);
    let alarms = Alarms {
        clear_hold: raw.alarms.clear_hold.0,
        escalate_after: positive(r, "alarms.escalate_after", raw.alarms.escalate_after),
        outage: outage(&raw.alarms.outage, r),
        maintenance: maintenance(raw.alarms.maintenance, r),
    };
    let offline = offline(raw.offline, r, types.as_deref());
    let sla = sla(raw.sla, r);
    let calendar = calendar(raw.calendar, r);
    let inspections = inspections(raw.inspections, r, types.as_deref(), devices.as_deref());
    if raw.warranty.replace_after_repairs == 0 {
        r.push("warranty.replace_after_repairs", "must be at least 1");
    }
    let warranty = Warranty { replace_after_repairs: raw.warranty.replace_after_repairs };
    let level = raw.log.level.trim().to_owned();
    if level.is_empty() || level.contains(char::is_whitespace) {
        r.push(
            "log.level",
            "write filter directives without spaces, like \"info\" or \"info,tend=debug\"",
        );
    }
    let log = Log { format: raw.log.format, level };
    let api = Api { enabled: raw.api.enabled, listen: addr(r, "api.listen", &raw.api.listen) };
    if broker.enabled && api.enabled && broker.listen == api.listen {
        r.push("api.listen", format!("{} is also broker.listen", api.listen));
    }
    // (Not when [mqtt] or [broker] has problems already: they would be the cause.)
    if let (Some(m), Some(auth)) = (&mqtt, &broker.auth)
        && broker.enabled
        && dials_embedded(&m.url, broker.listen)
        && !r.problems.iter().any(|p| p.key.starts_with("mqtt.") || p.key.starts_with("broker."))
    {
        embedded_login(r, m, auth);
    }
    let inventory = inventory?;
    let mqtt = mqtt?;
    let central = central?;
    Some(Config {
        path: r.file.clone(),
        inventory,
        mqtt,
        ingest,
        broker,
        central,
        store,
        plugins,
        alarms,
        offline,
        sla,
        calendar,
        inspections,
        warranty,
        log,
        api,
    })
}

/// `[alarms.outage]`.
fn outage(raw: &RawOutage, r: &mut Reporter<'_>) -> Outage {
    let window = positive(r, "alarms.outage.window", raw.window);
    if raw.min_devices == 0 {
        r.push("alarms.outage.min_devices", "must be at least 1");
    }
    if !(1..=100).contains(&raw.min_percent) {
        r.push(
            "alarms.outage.min_percent",
            "must be 1 ..= 100 (a percentage of the site's devices)",
        );
    }
    Outage {
        enabled: raw.enabled,
        window,
        min_devices: raw.min_devices,
        min_percent: raw.min_percent,
    }
}

/// `[alarms.maintenance]`.
fn maintenance(raw: RawMaintenance, r: &mut Reporter<'_>) -> Maintenance {
    let default_window = positive(r, "alarms.maintenance.default_window", raw.default_window);
    let max_window = positive(r, "alarms.maintenance.max_window", raw.max_window);
    if default_window > max_window {
        r.push(
            "alarms.maintenance.default_window",
            format!(
                "{} is longer than alarms.maintenance.max_window ({})",
                super::values::format_duration(default_window),
                super::values::format_duration(max_window)
            ),
        );
    }
    for (i, code) in raw.always_page.iter().enumerate() {
        if code.trim().is_empty() || code.contains(char::is_whitespace) {
            r.push(
                &format!("alarms.maintenance.always_page[{i}]"),
                "must be a fault code like \"tank_leak\"",
            );
        }
    }
    Maintenance { default_window, max_window, always_page: raw.always_page }
}

fn positive(r: &mut Reporter<'_>, key: &str, d: Dur) -> SignedDuration {
    if d.0.is_zero() {
        r.push(key, "must be more than 0");
    }
    d.0
}

fn addr(r: &mut Reporter<'_>, key: &str, s: &str) -> SocketAddr {
    match s.trim().parse() {
        Ok(a) => a,
        Err(_) => {
            r.push(key, format!("`{s}` is not an address like 127.0.0.1:9464 or [::]:9464"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        }
    }
}

/// Reads a secret from `value` or from the file `file` (one of them, not both). The
/// file's text is trimmed; problems name the key and the file, never the content.
fn secret(
    r: &mut Reporter<'_>,
    dir: &Path,
    sources: &Sources<'_>,
    (key, value): (&str, Option<Secret>),
    (file_key, file): (&str, Option<String>),
) -> Option<Secret> {
    match (value, file) {
        (Some(_), Some(_)) => {
            r.push(file_key, format!("set {key} or {file_key}, not both"));
            None
        }
        (Some(v), None) if v.expose().trim().is_empty() => {
            r.push(key, "must not be empty");
            None
        }
        (Some(v), None) => Some(v),
        (None, Some(f)) => {
            let path = dir.join(&f);
            match (sources.read)(&path) {
                Ok(text) if text.trim().is_empty() => {
                    r.push(file_key, format!("`{}` is empty", path.display()));
                    None
                }
                Ok(text) => Some(Secret::from_file(text.trim(), path)),
                Err(e) => {
                    r.push(file_key, format!("cannot read `{}`: {e}", path.display()));
                    None
                }
            }
        }
        (None, None) => None,
    }
}

fn mqtt(
    m: RawMqtt,
    r: &mut Reporter<'_>,
    dir: &Path,
    site: &str,
    sources: &Sources<'_>,
) -> Option<Mqtt> {
    let url = MqttUrl::parse(&m.url.0).map_err(|e| r.push("mqtt.url", e)).ok();
    let tls = url.as_ref().is_none_or(|u| u.tls);
    let client_id = m.client_id.unwrap_or_else(|| format!("tend-{site}"));
    if client_id.is_empty() || client_id.len() > 128 || client_id.contains(char::is_whitespace) {
        r.push("mqtt.client_id", "use 1 to 128 characters without spaces");
    }
    if m.username.as_deref().is_some_and(|u| u.is_empty()) {
        r.push("mqtt.username", "must not be empty (leave it out for no user name)");
    }
    let password = secret(
        r,
        dir,
        sources,
        ("mqtt.password", m.password),
        ("mqtt.password_file", m.password_file),
    );
    if password.is_some() && m.username.is_none() {
        r.push("mqtt.username", "required when a password is set");
    }
    let tls_only = |r: &mut Reporter<'_>, key: &str, v: &Option<String>| {
        if v.is_some() && !tls {
            r.push(key, "only used with TLS: make mqtt.url mqtts://");
        }
    };
    tls_only(r, "mqtt.ca_file", &m.ca_file);
    tls_only(r, "mqtt.client_cert", &m.client_cert);
    tls_only(r, "mqtt.client_key", &m.client_key);
    let client_auth = match (m.client_cert, m.client_key) {
        (Some(cert), Some(key)) => Some(ClientAuth { cert: dir.join(cert), key: dir.join(key) }),
        (Some(_), None) => {
            r.push("mqtt.client_key", "required with mqtt.client_cert");
            None
        }
        (None, Some(_)) => {
            r.push("mqtt.client_cert", "required with mqtt.client_key");
            None
        }
        (None, None) => None,
    };
    let keep_alive = m.keep_alive.0;
    if keep_alive < SignedDuration::from_secs(5) || keep_alive > SignedDuration::from_secs(65_535) {
        r.push("mqtt.keep_alive", "must be between 5s and 18h 12m 15s (65535 s)");
    }
    let topic = check_topic(&m.topic).map_err(|e| r.push("mqtt.topic", e)).ok();
    Some(Mqtt {
        url: url?,
        client_id,
        username: m.username,
        password,
        ca_file: m.ca_file.map(|f| dir.join(f)),
        client_auth,
        protocol: m.protocol,
        keep_alive,
        topic: topic?,
    })
}

/// `[broker]`: beyond loopback, only with logins (without them anyone on the network
/// could publish fake telemetry).
fn broker(b: RawBroker, r: &mut Reporter<'_>, dir: &Path, sources: &Sources<'_>) -> Broker {
    let listen = addr(r, "broker.listen", &b.listen);
    if b.enabled && b.password_file.is_none() && !listen.ip().to_canonical().is_loopback() {
        r.push(
            "broker.listen",
            format!(
                "{listen} is not a loopback address, and without logins anyone who can reach \
                 it could publish fake telemetry: set broker.password_file (user:password \
                 lines, the devices' and mqtt.username's logins), or listen on 127.0.0.1"
            ),
        );
    }
    let auth = b.password_file.and_then(|f| broker_logins(r, dir.join(f), sources));
    Broker { enabled: b.enabled, listen, auth }
}

/// Reads `broker.password_file`: one `user:password` a line, surrounding whitespace,
/// blank lines and `#` comments ignored. Problems name lines, never their text.
fn broker_logins(r: &mut Reporter<'_>, path: PathBuf, sources: &Sources<'_>) -> Option<BrokerAuth> {
    const KEY: &str = "broker.password_file";
    let text = match (sources.read)(&path) {
        Ok(text) => text,
        Err(e) => {
            r.push(KEY, format!("cannot read `{}`: {e}", path.display()));
            return None;
        }
    };
    let mut users = BTreeMap::new();
    let mut first_line = BTreeMap::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let (n, line) = (i + 1, line.trim());
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, password)) = line.split_once(':') else {
            bad.push(format!("line {n} is not `user:password`"));
            continue;
        };
        let (user, password) = (user.trim(), password.trim());
        if user.is_empty() || user.contains(char::is_whitespace) || password.is_empty() {
            bad.push(format!("line {n} is not `user:password`"));
        } else if ["$5$", "$6$", "$7$"].iter().any(|h| password.starts_with(h)) {
            bad.push(format!(
                "line {n} holds a password hash (mosquitto_passwd?); write the password itself"
            ));
        } else if let Some(first) = first_line.insert(user.to_owned(), n) {
            bad.push(format!("line {n} repeats the user of line {first}"));
        } else {
            users.insert(user.to_owned(), Secret::from_file(password, &path));
        }
    }
    if users.is_empty() && bad.is_empty() {
        bad.push("no `user:password` line".to_owned());
    }
    if !bad.is_empty() {
        r.push(KEY, format!("`{}`: {}", path.display(), bad.join("; ")));
        return None;
    }
    Some(BrokerAuth { file: path, users })
}

/// Whether a client dialling `url` reaches the embedded broker listening on `listen`.
fn dials_embedded(url: &MqttUrl, listen: SocketAddr) -> bool {
    if url.tls || url.port != listen.port() {
        return false;
    }
    let local = listen.ip().is_unspecified() || listen.ip().to_canonical().is_loopback();
    match url.host.parse::<IpAddr>() {
        Ok(ip) => ip == listen.ip() || (local && ip.to_canonical().is_loopback()),
        Err(_) => local && url.host.eq_ignore_ascii_case("localhost"),
    }
}

/// The agent's own login to the embedded broker must be one it accepts.
fn embedded_login(r: &mut Reporter<'_>, m: &Mqtt, auth: &BrokerAuth) {
    let file = auth.file.display();
    let Some(user) = &m.username else {
        r.push(
            "mqtt.username",
            format!(
                "required: mqtt.url is the embedded broker, which takes logins from \
                 broker.password_file (`{file}`); give the agent one of them"
            ),
        );
        return;
    };
    let key = match &m.password {
        Some(p) if p.file().is_some() => "mqtt.password_file",
        _ => "mqtt.password",
    };
    match auth.users.get(user) {
        None => r.push(
            "mqtt.username",
            format!(
                "`{user}` has no line in broker.password_file (`{file}`): the embedded \
                 broker at mqtt.url would refuse the agent"
            ),
        ),
        Some(p) if m.password.as_ref().map(Secret::expose) != Some(p.expose()) => r.push(
            key,
            format!(
                "not the password broker.password_file (`{file}`) gives `{user}`: the \
                 embedded broker at mqtt.url would refuse the agent"
            ),
        ),
        Some(_) => {}
    }
}

fn ingest(i: RawIngest, r: &mut Reporter<'_>) -> Ingest {
    let max_clock_skew = i.max_clock_skew.0.map(|d| d.0);
    if max_clock_skew.is_some_and(|d| d < SignedDuration::from_secs(1)) {
        r.push(
            "ingest.max_clock_skew",
            "must be at least 1s (no two clocks agree to the millisecond), or \"off\"",
        );
    }
    for (key, value) in [
        ("ingest.max_telemetry_bytes", i.max_telemetry_bytes),
        ("ingest.max_event_bytes", i.max_event_bytes),
    ] {
        if !(1..=MAX_PAYLOAD_LIMIT).contains(&value) {
            r.push(key, format!("must be 1 ..= {MAX_PAYLOAD_LIMIT} (bytes)"));
        }
    }
    Ingest {
        max_clock_skew,
        max_telemetry_bytes: i.max_telemetry_bytes as usize,
        max_event_bytes: i.max_event_bytes as usize,
    }
}

/// The default of `plugins.max_call_bytes` (when a quarter of the instance is more).
const DEFAULT_MAX_CALL_BYTES: u64 = 1 << 20;

/// Largest `ingest.max_*_bytes`: 16 MiB, beyond any MQTT packet a broker should accept.
const MAX_PAYLOAD_LIMIT: u32 = 16 << 20;

fn central(
    c: RawCentral,
    r: &mut Reporter<'_>,
    dir: &Path,
    sources: &Sources<'_>,
) -> Option<Central> {
    let url = match c.url {
        None => {
            r.push("central.url", "required: the central ticket service, e.g. \"https://tickets.example.com\" (or TEND_CENTRAL_URL)");
            None
        }
        Some(u) => parse_http_url(&u.0).map_err(|e| r.push("central.url", e)).ok(),
    };
    let had_token = c.token.is_some() || c.token_file.is_some();
    let token =
        secret(r, dir, sources, ("central.token", c.token), ("central.token_file", c.token_file));
    if !had_token {
        r.push("central.token", "required: set token, token_file or TEND_CENTRAL_TOKEN");
    }
    if let Some(t) = &token
        && !t.expose().bytes().all(|b| b.is_ascii_graphic())
    {
        let key = if t.file().is_some() { "central.token_file" } else { "central.token" };
        r.push(key, "must be visible ASCII without spaces (it goes in an HTTP header)");
    }
    let timeout = positive(r, "central.timeout", c.timeout);
    let backoff_initial = positive(r, "central.backoff_initial", c.backoff_initial);
    let backoff_max = c.backoff_max.0;
    if backoff_max < backoff_initial {
        r.push("central.backoff_max", "must not be shorter than central.backoff_initial");
    }
    let sync_interval = c.sync_interval.0;
    if sync_interval < SignedDuration::from_secs(1) {
        r.push("central.sync_interval", "must be at least 1s");
    }
    let in_flight = c.in_flight;
    if !(1..=64).contains(&in_flight) {
        r.push("central.in_flight", "must be 1 to 64");
    }
    Some(Central {
        url: url?,
        token: token?,
        timeout,
        backoff_initial,
        backoff_max,
        sync_interval,
        in_flight,
    })
}

fn store(s: RawStore, r: &mut Reporter<'_>, dir: &Path) -> Store {
    if s.data_dir.trim().is_empty() {
        r.push("store.data_dir", "must name a directory");
    }
    if s.cache_capacity_mib == 0 {
        r.push("store.cache_capacity_mib", "must be at least 1");
    }
    if s.commit_window.0 > SignedDuration::from_secs(1) {
        r.push("store.commit_window", "at most 1s: messages are acked only after their commit");
    }
    if s.commit_batch == 0 {
        r.push("store.commit_batch", "must be at least 1");
    }
    Store {
        data_dir: resolve(r, dir, "store.data_dir", &s.data_dir),
        cache_capacity_mib: s.cache_capacity_mib,
        commit_window: s.commit_window.0,
        commit_batch: s.commit_batch,
    }
}

fn plugins(p: RawPlugins, r: &mut Reporter<'_>, dir: &Path, data_dir: &Path) -> Plugins {
    if p.dir.trim().is_empty() {
        r.push("plugins.dir", "must name a directory");
    }
    let plugin_dir = dir.join(&p.dir);
    if !(1..=4096).contains(&p.memory_mib) {
        r.push("plugins.memory_mib", "must be 1 ..= 4096 (a 32-bit instance has 4 GiB at most)");
    }
    if !(1..=60_000).contains(&p.call_deadline_ms) {
        r.push("plugins.call_deadline_ms", "must be 1 ..= 60000");
    }
    if p.quarantine_failures == 0 {
        r.push("plugins.quarantine_failures", "must be at least 1");
    }
    let quarantine_window = positive(r, "plugins.quarantine_window", p.quarantine_window);
    if !(1..=65_536).contains(&p.state_budget_mib) {
        r.push("plugins.state_budget_mib", "must be 1 ..= 65536");
    }
    // A quarter of the instance: the plugin decodes what it is handed, beside its code
    // and state.
    let call_max = (u64::from(p.memory_mib) << 20) / 4;
    let max_call_bytes = match p.max_call_bytes {
        // 1 MiB: thousands of ordinary readings, a small part of the default instance.
        None => call_max.clamp(1024, DEFAULT_MAX_CALL_BYTES),
        Some(n) => {
            if !(1024..=call_max.max(1024)).contains(&u64::from(n)) {
                r.push(
                    "plugins.max_call_bytes",
                    format!("must be 1024 ..= {call_max} (a quarter of plugins.memory_mib)"),
                );
            }
            u64::from(n)
        }
    };
    let mut pins = Vec::new();
    let mut seen = BTreeMap::new();
    for (i, pin) in p.pin.into_iter().enumerate() {
        let key = |k: &str| format!("plugins.pin[{i}].{k}");
        let path = match pin.path {
            Some(path) if !path.trim().is_empty() => Some(plugin_dir.join(path)),
            _ => {
                r.push(&key("path"), "required: the plugin file, relative to plugins.dir");
                None
            }
        };
        if let Some(path) = &path
            && let Some(first) = seen.insert(path.clone(), i)
        {
            r.push(&key("path"), format!("already pinned by plugins.pin[{first}]"));
        }
        let sha256 = match pin.sha256 {
            Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(h.to_ascii_lowercase())
            }
            Some(h) => {
                r.push(&key("sha256"), format!("`{h}` is not 64 hex digits"));
                None
            }
            None => {
                r.push(&key("sha256"), "required: the file's SHA-256, 64 hex digits");
                None
            }
        };
        if let (Some(path), Some(sha256)) = (path, sha256) {
            pins.push(Pin { path, sha256 });
        }
    }
    if p.only_pinned
        && pins.is_empty()
        && !r.problems.iter().any(|x| x.key.starts_with("plugins.pin"))
    {
        r.push("plugins.only_pinned", "no [[plugins.pin]]: no plugin could load");
    }
    Plugins {
        dir: plugin_dir,
        cache_dir: match p.cache_dir {
            Some(c) => dir.join(c),
            None => data_dir.join("plugin-cache"),
        },
        memory_mib: p.memory_mib,
        call_deadline: SignedDuration::from_millis(
            i64::try_from(p.call_deadline_ms).unwrap_or(i64::MAX),
        ),
        quarantine_failures: p.quarantine_failures,
        quarantine_window,
        max_call_bytes: usize::try_from(max_call_bytes).unwrap_or(usize::MAX),
        state_budget_mib: p.state_budget_mib,
        only_pinned: p.only_pinned,
        pins,
    }
}

/// Reports a per-type or per-device key naming nothing in the inventory.
fn known(r: &mut Reporter<'_>, key: &str, name: &str, what: &str, known: Option<&[&str]>) {
    if known.is_some_and(|k| !k.contains(&name)) {
        r.push(key, format!("no {what} `{name}` in the inventory"));
    }
}

fn offline(o: RawOffline, r: &mut Reporter<'_>, types: Option<&[&str]>) -> Offline {
    let after = o.after.map(|d| positive(r, "offline.after", d));
    let mut out = BTreeMap::new();
    for (ty, d) in o.types {
        let key = join("offline.types", &ty);
        known(r, &key, &ty, "device of type", types);
        out.insert(ty, positive(r, &key, d));
    }
    Offline { after, types: out }
}

fn sla(s: RawSla, r: &mut Reporter<'_>) -> Sla {
    let mut sla = Sla::defaults();
    let levels =
        [("critical", s.critical), ("major", s.major), ("minor", s.minor), ("warning", s.warning)];
    for ((name, raw), level) in levels.into_iter().zip(sla.levels.iter_mut()) {
        let key = |k: &str| format!("sla.{name}.{k}");
        if let Some(d) = raw.respond {
            level.respond = positive(r, &key("respond"), d);
        }
        let mut due = |k: &str, v: Option<Due>, slot: &mut Due| {
            if let Some(v) = v {
                if v == Due::After(SignedDuration::ZERO) {
                    r.push(&key(k), "must be more than 0");
                }
                *slot = v;
            }
        };
        due("onsite_workday", raw.onsite_workday, &mut level.onsite_workday);
        due("onsite_offhours", raw.onsite_offhours, &mut level.onsite_offhours);
        due("resolve", raw.resolve, &mut level.resolve);
    }
    sla.spare_parts_within = positive(r, "sla.spare_parts_within", s.spare_parts_within);
    sla
}

fn calendar(c: RawCalendar, r: &mut Reporter<'_>) -> Calendar {
    let mut workdays: Vec<Weekday> = Vec::new();
    for (i, w) in c.workdays.iter().enumerate() {
        if workdays.contains(&w.0) {
            r.push(&format!("calendar.workdays[{i}]"), "listed twice");
        } else {
            workdays.push(w.0);
        }
    }
    if workdays.is_empty() {
        r.push("calendar.workdays", "list at least one working weekday");
    }
    workdays.sort_by_key(|w| w.to_monday_zero_offset());
    let mut holidays = Vec::new();
    for h in &c.holidays {
        let mut d = h.first;
        while d <= h.last {
            holidays.push(d);
            match d.tomorrow() {
                Ok(next) => d = next,
                Err(_) => break,
            }
        }
    }
    holidays.sort();
    holidays.dedup();
    let mut extra: Vec<_> = c.extra_workdays.iter().map(|d| d.0).collect();
    for (i, d) in extra.iter().enumerate() {
        let key = format!("calendar.extra_workdays[{i}]");
        if holidays.binary_search(d).is_ok() {
            r.push(&key, format!("{d} is also a holiday"));
        } else if workdays.contains(&d.weekday()) {
            r.push(&key, format!("{d} is a {:?}, already a working day", d.weekday()));
        }
    }
    extra.sort();
    extra.dedup();
    Calendar { workdays, start: c.hours.start, end: c.hours.end, holidays, extra_workdays: extra }
}

fn plans(
    r: &mut Reporter<'_>,
    section: &str,
    raw: BTreeMap<String, BTreeMap<String, RawPlan>>,
    what: &str,
    names: Option<&[&str]>,
) -> BTreeMap<String, BTreeMap<String, PlanOverride>> {
    let mut out = BTreeMap::new();
    for (name, plans) in raw {
        let at = join(section, &name);
        known(r, &at, &name, what, names);
        let mut checked = BTreeMap::new();
        for (plan, p) in plans {
            let key = |k: &str| format!("{}.{k}", join(&at, &plan));
            if p.enabled.is_none() && p.every.is_none() && p.meter_threshold.is_none() {
                r.push(&join(&at, &plan), "sets nothing: use enabled, every or meter_threshold");
            }
            if matches!(
                p.every,
                Some(crate::maintenance::Span::Days(0) | crate::maintenance::Span::Months(0))
            ) {
                r.push(&key("every"), "must be at least a day");
            }
            if p.meter_threshold.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
                r.push(&key("meter_threshold"), "must be a number above 0");
            }
            checked.insert(
                plan,
                PlanOverride {
                    enabled: p.enabled,
                    every: p.every,
                    meter_threshold: p.meter_threshold,
                },
            );
        }
        out.insert(name, checked);
    }
    out
}

fn inspections(
    i: RawInspections,
    r: &mut Reporter<'_>,
    types: Option<&[&str]>,
    devices: Option<&[&str]>,
) -> Inspections {
    Inspections {
        enabled: i.enabled,
        lead_time: i.lead_time,
        types: plans(r, "inspections.types", i.types, "device of type", types),
        devices: plans(r, "inspections.devices", i.devices, "device", devices),
    }
}
