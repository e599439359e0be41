//! The agent config file as written (`agent.toml`), before validation.
//!
//! Every table refuses unknown keys; every key has a default (a named function), so a
//! minimal config is a few lines. Field comments are the user documentation and are
//! mirrored in `configs/agent.toml`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::model::{DEFAULT_MAX_CLOCK_SKEW, LogFormat, Protocol, Secret};
use super::values::{DateValue, Due, Dur, Holiday, HoursValue, Limit, WeekdayName};
use crate::maintenance::Span;

/// The whole `agent.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawConfig {
    /// The site inventory file (site, time zone, devices). Relative to this file's
    /// directory. Env: `TEND_INVENTORY` (relative to the current directory).
    pub inventory: String,
    /// The MQTT connection the devices publish to.
    pub mqtt: RawMqtt,
    /// What the agent accepts from the devices.
    pub ingest: RawIngest,
    /// The embedded MQTT broker (for small sites and the demo).
    pub broker: RawBroker,
    /// The central ticket service.
    pub central: RawCentral,
    /// The local database.
    pub store: RawStore,
    /// Equipment plugins and their sandbox.
    pub plugins: RawPlugins,
    /// Fault lifecycle timing.
    pub alarms: RawAlarms,
    /// When a silent device counts as offline.
    pub offline: RawOffline,
    /// Response commitments per severity level.
    pub sla: RawSla,
    /// The site's business calendar.
    pub calendar: RawCalendar,
    /// Preventive inspections.
    pub inspections: RawInspections,
    /// Warranty rules.
    pub warranty: RawWarranty,
    /// Logging.
    pub log: RawLog,
    /// The local status API and metrics.
    pub api: RawApi,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            inventory: default_inventory(),
            mqtt: RawMqtt::default(),
            ingest: RawIngest::default(),
            broker: RawBroker::default(),
            central: RawCentral::default(),
            store: RawStore::default(),
            plugins: RawPlugins::default(),
            alarms: RawAlarms::default(),
            offline: RawOffline::default(),
            sla: RawSla::default(),
            calendar: RawCalendar::default(),
            inspections: RawInspections::default(),
            warranty: RawWarranty::default(),
            log: RawLog::default(),
            api: RawApi::default(),
        }
    }
}

fn default_inventory() -> String {
    "site.toml".to_owned()
}

/// `[mqtt]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMqtt {
    /// Broker address, `mqtt://host:port` or `mqtts://host:port` (TLS). The port
    /// defaults to 1883 / 8883. Env: `TEND_MQTT_URL`.
    pub url: RawUrl,
    /// MQTT client id; default `tend-{site}`. Keep it stable: the broker keeps the
    /// agent's session (and queues QoS 1 messages while it is away) under this id.
    pub client_id: Option<String>,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// Password (needs `username`); prefer `password_file`.
    pub password: Option<Secret>,
    /// File holding the password (surrounding whitespace ignored), relative to this
    /// file.
    pub password_file: Option<String>,
    /// PEM file of the CA that signed the broker's certificate (mqtts only); default:
    /// the system's trusted roots.
    pub ca_file: Option<String>,
    /// PEM client certificate for mutual TLS (mqtts only; needs `client_key`).
    pub client_cert: Option<String>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<String>,
    /// MQTT protocol version: "v311" (3.1.1, every broker) or "v5".
    pub protocol: Protocol,
    /// Keep-alive interval (5 s .. 18 h); the broker drops the agent after 1.5x this
    /// without traffic, which publishes its last will.
    pub keep_alive: Dur,
    /// Topic layout; `{device_id}` and `{kind}` required, `{site}` optional, each a
    /// whole topic level.
    pub topic: String,
}

impl Default for RawMqtt {
    fn default() -> Self {
        Self {
            url: default_mqtt_url(),
            client_id: None,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            protocol: default_protocol(),
            keep_alive: default_keep_alive(),
            topic: default_topic(),
        }
    }
}

fn default_mqtt_url() -> RawUrl {
    RawUrl("mqtt://127.0.0.1:1883".to_owned())
}

/// A URL as written: it may hold credentials by mistake, so `Debug` shows it with
/// them replaced by `***`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub(crate) struct RawUrl(pub String);

impl std::fmt::Debug for RawUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", super::topic::redact_url(&self.0))
    }
}

fn default_protocol() -> Protocol {
    Protocol::V311
}

fn default_keep_alive() -> Dur {
    Dur::secs(30)
}

fn default_topic() -> String {
    "tend/{site}/{device_id}/{kind}".to_owned()
}

/// `[ingest]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawIngest {
    /// Live, a reading whose `ts` is more than this ahead of its arrival is invalid:
    /// counted (`invalid`, and `future`), logged once per device and period, never
    /// judged and never remembered; it still proves the device online. A clock that
    /// far ahead would otherwise make the device's later, correct readings look
    /// older than the ones it already sent, and be dropped as redeliveries. At least
    /// 1s, or "off" (accept any `ts`). Replay has no arrival clock and never checks.
    pub max_clock_skew: Limit,
    /// Largest telemetry payload judged, bytes; a larger one is invalid: counted
    /// (`invalid`, and `oversize`), logged once per device and period, never handed
    /// to a plugin; it still proves the device online. Keeps one device's big
    /// payloads from filling a plugin instance's memory. 1 ..= 16777216.
    pub max_telemetry_bytes: u32,
    /// Largest event payload judged, bytes (as `max_telemetry_bytes`).
    pub max_event_bytes: u32,
}

impl Default for RawIngest {
    fn default() -> Self {
        Self {
            max_clock_skew: default_max_clock_skew(),
            max_telemetry_bytes: default_max_payload_bytes(),
            max_event_bytes: default_max_payload_bytes(),
        }
    }
}

/// 64 KiB: a reading is a few hundred bytes; this is far above any real one and far
/// below a plugin instance's memory.
fn default_max_payload_bytes() -> u32 {
    64 << 10
}

fn default_max_clock_skew() -> Limit {
    Limit(Some(Dur(DEFAULT_MAX_CLOCK_SKEW)))
}

/// `[broker]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawBroker {
    /// Run an embedded MQTT broker (rumqttd) inside the agent.
    pub enabled: bool,
    /// Address the embedded broker listens on. Any address but loopback needs
    /// `password_file`.
    pub listen: String,
    /// File of the logins the embedded broker accepts, one `user:password` a line
    /// (`#` comments and blank lines ignored), relative to this file. Without it
    /// anyone who can reach `listen` may connect.
    pub password_file: Option<String>,
}

impl Default for RawBroker {
    fn default() -> Self {
        Self { enabled: false, listen: default_broker_listen(), password_file: None }
    }
}

fn default_broker_listen() -> String {
    "127.0.0.1:1883".to_owned()
}

/// `[central]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCentral {
    /// Base URL of the central ticket service (`http://` or `https://`). Required.
    /// Env: `TEND_CENTRAL_URL`.
    pub url: Option<RawUrl>,
    /// Bearer token; set this or `token_file`. Env: `TEND_CENTRAL_TOKEN`.
    pub token: Option<Secret>,
    /// File holding the token (surrounding whitespace ignored), relative to this file.
    pub token_file: Option<String>,
    /// Time limit for one HTTP request.
    pub timeout: Dur,
    /// First retry delay after a failed delivery (doubled each time, with jitter).
    pub backoff_initial: Dur,
    /// Longest retry delay.
    pub backoff_max: Dur,
    /// How often open tickets are read back (closed inspections reset schedules).
    pub sync_interval: Dur,
    /// How many tickets' requests may be in flight at once.
    pub in_flight: u32,
}

impl Default for RawCentral {
    fn default() -> Self {
        Self {
            url: None,
            token: None,
            token_file: None,
            timeout: default_timeout(),
            backoff_initial: default_backoff_initial(),
            backoff_max: default_backoff_max(),
            sync_interval: default_sync_interval(),
            in_flight: crate::tickets::dispatcher::DEFAULT_IN_FLIGHT as u32,
        }
    }
}

fn default_timeout() -> Dur {
    Dur::secs(10)
}

fn default_backoff_initial() -> Dur {
    Dur::secs(1)
}

fn default_backoff_max() -> Dur {
    Dur::mins(5)
}

fn default_sync_interval() -> Dur {
    Dur::mins(1)
}

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawStore {
    /// Directory of the agent's database. Relative to this file. Env: `TEND_DATA_DIR`.
    pub data_dir: String,
    /// Database block cache, MiB (the agent holds its working state in memory and writes through, so 8 is plenty).
    pub cache_capacity_mib: u64,
    /// Group commit: messages arriving within this window share one transaction and
    /// one flush (they are acked after it). "0s" flushes every message.
    pub commit_window: Dur,
    /// Group commit: at most this many messages per transaction.
    pub commit_batch: u32,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            cache_capacity_mib: default_cache_capacity_mib(),
            commit_window: default_commit_window(),
            commit_batch: default_commit_batch(),
        }
    }
}

fn default_data_dir() -> String {
    "data".to_owned()
}

fn default_cache_capacity_mib() -> u64 {
    8
}

fn default_commit_window() -> Dur {
    Dur::millis(10)
}

fn default_commit_batch() -> u32 {
    512
}

/// `[plugins]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawPlugins {
    /// Directory of plugin components (`*.wasm`), relative to this file.
    pub dir: String,
    /// Cache of compiled plugins; default `<data_dir>/plugin-cache`.
    pub cache_dir: Option<String>,
    /// Memory limit per plugin instance, MiB.
    pub memory_mib: u32,
    /// Time limit for one plugin call, ms.
    pub call_deadline_ms: u64,
    /// Quarantine a plugin after this many traps/timeouts ...
    pub quarantine_failures: u32,
    /// ... within this window.
    pub quarantine_window: Dur,
    /// Most payload bytes handed to a plugin in one call; a device's messages are
    /// split into calls of at most this much (a single larger message goes alone).
    /// Default: 1 MiB, or a quarter of `memory_mib` if less.
    pub max_call_bytes: Option<u32>,
    /// Plugin state one plugin may hold across all its devices, MiB.
    pub state_budget_mib: u32,
    /// Refuse any plugin file that has no `[[plugins.pin]]`.
    pub only_pinned: bool,
    /// Pinned plugin files: `{ path, sha256 }`, path relative to `dir`.
    pub pin: Vec<RawPin>,
}

impl Default for RawPlugins {
    fn default() -> Self {
        Self {
            dir: default_plugins_dir(),
            cache_dir: None,
            memory_mib: default_memory_mib(),
            call_deadline_ms: default_call_deadline_ms(),
            quarantine_failures: default_quarantine_failures(),
            quarantine_window: default_quarantine_window(),
            max_call_bytes: None,
            state_budget_mib: default_state_budget_mib(),
            only_pinned: false,
            pin: Vec::new(),
        }
    }
}

fn default_plugins_dir() -> String {
    "plugins".to_owned()
}

/// Rules keep a few hundred bytes per device: 64 MiB is 10,000 devices at 6 KiB each
/// (same default as `plugins::Limits`).
fn default_state_budget_mib() -> u32 {
    64
}

fn default_memory_mib() -> u32 {
    64
}

/// Rules are a few comparisons per reading: even a batch of hundreds of messages takes
/// well under a millisecond. 250 ms tolerates a loaded machine and still stops a
/// runaway plugin before it stalls ingest (same default as `plugins::Limits`).
fn default_call_deadline_ms() -> u64 {
    250
}

fn default_quarantine_failures() -> u32 {
    3
}

fn default_quarantine_window() -> Dur {
    Dur::mins(10)
}

/// `[[plugins.pin]]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPin {
    /// Plugin file, relative to `plugins.dir`.
    pub path: Option<String>,
    /// Expected SHA-256 of the file, 64 hex digits.
    pub sha256: Option<String>,
}

/// `[alarms]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawAlarms {
    /// A fault clears (`recovered`) after its condition has been false this long.
    pub clear_hold: Dur,
    /// An interrupts-service fault still active this long after it opened is raised
    /// to level 1.
    pub escalate_after: Dur,
    /// `[alarms.outage]`: one `site_outage` ticket when many devices go offline at once.
    pub outage: RawOutage,
    /// `[alarms.maintenance]`: maintenance windows.
    pub maintenance: RawMaintenance,
}

impl Default for RawAlarms {
    fn default() -> Self {
        Self {
            clear_hold: default_clear_hold(),
            escalate_after: default_escalate_after(),
            outage: RawOutage::default(),
            maintenance: RawMaintenance::default(),
        }
    }
}

/// `[alarms.outage]` (maintenance.md section 8).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawOutage {
    /// Off: each offline device gets its own ticket, whatever the others do.
    pub enabled: bool,
    /// Devices going offline within this much event time count together.
    pub window: Dur,
    /// At least this many devices ...
    pub min_devices: u32,
    /// ... and at least this percentage of the site's devices make an outage.
    pub min_percent: u32,
}

impl Default for RawOutage {
    fn default() -> Self {
        Self { enabled: true, window: Dur::mins(2), min_devices: 3, min_percent: 50 }
    }
}

/// `[alarms.maintenance]` (maintenance.md section 8).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMaintenance {
    /// Length of `tend maintenance start` without `--for`.
    pub default_window: Dur,
    /// Longest window `tend maintenance start --for` accepts.
    pub max_window: Dur,
    /// Fault codes never suppressed by a maintenance window.
    pub always_page: Vec<String>,
}

impl Default for RawMaintenance {
    fn default() -> Self {
        Self {
            default_window: Dur::hours(2),
            max_window: Dur::hours(24),
            always_page: vec!["tank_leak".to_owned(), "forced_open".to_owned()],
        }
    }
}

fn default_clear_hold() -> Dur {
    Dur::mins(2)
}

fn default_escalate_after() -> Dur {
    Dur::mins(10)
}

/// `[offline]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawOffline {
    /// No message for this long: `device_offline`. Unset: the plugin's own timeout,
    /// else 5 min.
    pub after: Option<Dur>,
    /// Per equipment type, overriding `after` and the plugin.
    pub types: BTreeMap<String, Dur>,
}

/// `[sla]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSla {
    /// Level 1 overrides.
    pub critical: RawLevel,
    /// Level 2 overrides.
    pub major: RawLevel,
    /// Level 3 overrides.
    pub minor: RawLevel,
    /// Level 4 overrides.
    pub warning: RawLevel,
    /// Spare units reach site within this long of a level 1-2 hardware fault.
    pub spare_parts_within: Dur,
}

impl Default for RawSla {
    fn default() -> Self {
        Self {
            critical: RawLevel::default(),
            major: RawLevel::default(),
            minor: RawLevel::default(),
            warning: RawLevel::default(),
            spare_parts_within: default_spare_parts_within(),
        }
    }
}

fn default_spare_parts_within() -> Dur {
    Dur::hours(4)
}

/// `[sla.<level>]`: each key overrides one cell of the SLA table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLevel {
    /// Respond (phone / remote) within.
    pub respond: Option<Dur>,
    /// On site within, when the fault opens on a working day in working hours.
    pub onsite_workday: Option<Due>,
    /// On site within, on holidays and off hours.
    pub onsite_offhours: Option<Due>,
    /// Resolved within.
    pub resolve: Option<Due>,
}

/// `[calendar]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCalendar {
    /// Working weekdays.
    pub workdays: Vec<WeekdayName>,
    /// Working hours on a working day, site time.
    pub hours: HoursValue,
    /// Public holidays: dates or inclusive ranges "2026-10-01..2026-10-07".
    pub holidays: Vec<Holiday>,
    /// Weekend dates that are working days (make-up days).
    pub extra_workdays: Vec<DateValue>,
}

impl Default for RawCalendar {
    fn default() -> Self {
        Self {
            workdays: default_workdays(),
            hours: default_hours(),
            holidays: Vec::new(),
            extra_workdays: Vec::new(),
        }
    }
}

fn default_workdays() -> Vec<WeekdayName> {
    use jiff::civil::Weekday::*;
    [Monday, Tuesday, Wednesday, Thursday, Friday].into_iter().map(WeekdayName).collect()
}

fn default_hours() -> HoursValue {
    HoursValue { start: jiff::civil::time(9, 0, 0, 0), end: jiff::civil::time(18, 0, 0, 0) }
}

/// `[inspections]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawInspections {
    /// false: the agent schedules no inspections (the maintenance company's own
    /// system does); fault tickets are unaffected.
    pub enabled: bool,
    /// An inspection ticket opens this long before it is due.
    pub lead_time: Span,
    /// `[inspections.types.<type>.<plan>]`: plan overrides per equipment type.
    pub types: BTreeMap<String, BTreeMap<String, RawPlan>>,
    /// `[inspections.devices.<device>.<plan>]`: plan overrides per device.
    pub devices: BTreeMap<String, BTreeMap<String, RawPlan>>,
}

impl Default for RawInspections {
    fn default() -> Self {
        Self {
            enabled: true,
            lead_time: default_lead_time(),
            types: BTreeMap::new(),
            devices: BTreeMap::new(),
        }
    }
}

fn default_lead_time() -> Span {
    Span::Days(7)
}

/// One inspection plan override.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlan {
    /// false: the plan is off.
    pub enabled: Option<bool>,
    /// Calendar period ("6m", "90d").
    pub every: Option<Span>,
    /// New number for the plan's meter trigger (its unit and rule unchanged).
    pub meter_threshold: Option<f64>,
}

/// `[warranty]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawWarranty {
    /// Repairs of the same fault within warranty after which the next occurrence
    /// recommends replacing the unit.
    pub replace_after_repairs: u32,
}

impl Default for RawWarranty {
    fn default() -> Self {
        Self { replace_after_repairs: default_replace_after_repairs() }
    }
}

fn default_replace_after_repairs() -> u32 {
    3
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    /// "human" or "json" (one object per line).
    pub format: LogFormat,
    /// Filter directives: "info", "info,tend::plugins=debug".
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self { format: LogFormat::Human, level: default_log_level() }
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}

/// `[api]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawApi {
    /// Serve the local status API and `/metrics`.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: String,
}

impl Default for RawApi {
    fn default() -> Self {
        Self { enabled: true, listen: default_api_listen() }
    }
}

fn default_api_listen() -> String {
    "127.0.0.1:9464".to_owned()
}
