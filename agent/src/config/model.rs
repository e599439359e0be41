//! The validated configuration: plain data, every value checked, every path resolved.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use jiff::civil::{Date, Time, Weekday};
use serde::Deserialize;

use super::inventory::Inventory;
use super::topic::MqttUrl;
pub use super::values::Due;
use crate::maintenance::Span;

/// The agent's whole configuration: `agent.toml` with environment overrides applied,
/// and the site inventory it names.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config file this came from.
    pub path: PathBuf,
    /// The site inventory (site, time zone, devices).
    pub inventory: Inventory,
    /// The MQTT connection the devices publish to.
    pub mqtt: Mqtt,
    /// What the agent accepts from the devices.
    pub ingest: Ingest,
    /// The embedded MQTT broker.
    pub broker: Broker,
    /// The central ticket service.
    pub central: Central,
    /// The local database.
    pub store: Store,
    /// Equipment plugins and their sandbox.
    pub plugins: Plugins,
    /// Fault lifecycle timing.
    pub alarms: Alarms,
    /// Offline detection.
    pub offline: Offline,
    /// Response commitments per severity level.
    pub sla: Sla,
    /// The site's business calendar (its time zone is the inventory's).
    pub calendar: Calendar,
    /// Preventive inspection settings and plan overrides.
    pub inspections: Inspections,
    /// Warranty rules.
    pub warranty: Warranty,
    /// Logging.
    pub log: Log,
    /// The local status API and metrics.
    pub api: Api,
}

/// A secret (password, token): shown as `***` by `Debug`, and refused without its
/// value when the config file has something other than a string for it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    /// The file it was read from (`tend check` warns when others may read it).
    file: Option<PathBuf>,
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self { value: s.into(), file: None }
    }

    /// A secret read from `file`.
    pub fn from_file(s: impl Into<String>, file: impl Into<PathBuf>) -> Self {
        Self { value: s.into(), file: Some(file.into()) }
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The file it was read from, if it came from one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // serde's own message for a wrong type quotes the value ("invalid type:
        // integer `12345`"): replace it.
        String::deserialize(d).map(Secret::new).map_err(|_| {
            serde::de::Error::custom("expected a string (the value is not shown: it is a secret)")
        })
    }
}

/// MQTT protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    /// MQTT 5.
    #[serde(rename = "v5")]
    V5,
    /// MQTT 3.1.1.
    #[serde(rename = "v311")]
    V311,
}

/// `[mqtt]`: the connection to the broker the devices publish to.
#[derive(Debug, Clone, PartialEq)]
pub struct Mqtt {
    /// Broker address.
    pub url: MqttUrl,
    /// MQTT client id (stable: the broker keeps the session under it).
    pub client_id: String,
    /// User name, if any.
    pub username: Option<String>,
    /// Password, from `password` or the contents of `password_file`.
    pub password: Option<Secret>,
    /// CA certificate (PEM) for the broker; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key for mutual TLS.
    pub client_auth: Option<ClientAuth>,
    /// Protocol version.
    pub protocol: Protocol,
    /// Keep-alive interval.
    pub keep_alive: SignedDuration,
    /// Topic layout, checked (`{device_id}` and `{kind}` once each, whole levels);
    /// `crate::ingest::TopicTemplate::new(&topic, site)` makes the matcher.
    pub topic: String,
}

/// A client certificate and its key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// The default of `ingest.max_clock_skew`.
pub const DEFAULT_MAX_CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// `[ingest]`: what the agent accepts from the devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingest {
    /// Live, how far a reading's `ts` may be ahead of its arrival; beyond it the
    /// reading is invalid (a device clock that far ahead would blind the redelivery
    /// check to its later, correct readings). `None`: no limit ("off").
    pub max_clock_skew: Option<SignedDuration>,
    /// Largest telemetry payload judged, bytes; larger ones are invalid (never handed
    /// to a plugin, so one device's big payloads cannot fill its instance).
    pub max_telemetry_bytes: usize,
    /// Largest event payload judged, bytes.
    pub max_event_bytes: usize,
}

/// `[broker]`: the embedded MQTT broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Run it.
    pub enabled: bool,
    /// Where it listens.
    pub listen: SocketAddr,
    /// The logins it accepts (`password_file`); `None`: anyone who can reach it, which
    /// validation allows on loopback only.
    pub auth: Option<BrokerAuth>,
}

/// The logins the embedded broker accepts: `broker.password_file`, read at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAuth {
    /// The file they were read from.
    pub file: PathBuf,
    /// User name -> password (at least one).
    pub users: BTreeMap<String, Secret>,
}

/// `[central]`: the central ticket service.
#[derive(Debug, Clone, PartialEq)]
pub struct Central {
    /// Base URL, without a trailing `/` (`https://tickets.example.com/svc`).
    pub url: String,
    /// Bearer token.
    pub token: Secret,
    /// Time limit for one request.
    pub timeout: SignedDuration,
    /// First retry delay.
    pub backoff_initial: SignedDuration,
    /// Longest retry delay.
    pub backoff_max: SignedDuration,
    /// How often open tickets are read back.
    pub sync_interval: SignedDuration,
    /// How many tickets' requests may be in flight at once (1..=64; one ticket's
    /// requests always go one after another).
    pub in_flight: u32,
}

/// `[store]`: the local database.
#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    /// Database directory.
    pub data_dir: PathBuf,
    /// Block cache, MiB.
    pub cache_capacity_mib: u64,
    /// Group commit window (zero: commit every message on its own).
    pub commit_window: SignedDuration,
    /// Most messages per transaction.
    pub commit_batch: u32,
}

impl Store {
    /// The block cache in bytes.
    pub fn cache_capacity_bytes(&self) -> u64 {
        self.cache_capacity_mib.saturating_mul(1024 * 1024)
    }
}

/// `[plugins]`: where plugins come from and how they are confined.
#[derive(Debug, Clone, PartialEq)]
pub struct Plugins {
    /// Directory of plugin components.
    pub dir: PathBuf,
    /// Cache of compiled plugins.
    pub cache_dir: PathBuf,
    /// Memory limit per instance, MiB.
    pub memory_mib: u32,
    /// Time limit for one call.
    pub call_deadline: SignedDuration,
    /// Failures within `quarantine_window` that quarantine a plugin.
    pub quarantine_failures: u32,
    /// The window for counting failures.
    pub quarantine_window: SignedDuration,
    /// Most payload bytes handed to a plugin in one call.
    pub max_call_bytes: usize,
    /// Plugin state one plugin may hold across its devices, MiB.
    pub state_budget_mib: u32,
    /// Refuse plugin files without a pin.
    pub only_pinned: bool,
    /// Expected digests of plugin files.
    pub pins: Vec<Pin>,
}

/// A plugin file and the SHA-256 it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The file (resolved against the plugins directory).
    pub path: PathBuf,
    /// Lower-case hex SHA-256 (64 digits).
    pub sha256: String,
}

/// `[alarms]`: fault lifecycle timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarms {
    /// A condition false this long clears the fault.
    pub clear_hold: SignedDuration,
    /// An interrupts-service fault active this long is raised to level 1.
    pub escalate_after: SignedDuration,
    /// `[alarms.outage]`: the site outage rule.
    pub outage: Outage,
    /// `[alarms.maintenance]`: maintenance windows.
    pub maintenance: Maintenance,
}

/// `[alarms.outage]`: one `site_outage` ticket instead of a `device_offline` ticket per
/// device when many go offline at once (maintenance.md section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// Whether the rule applies.
    pub enabled: bool,
    /// Devices going offline within this much event time count together.
    pub window: SignedDuration,
    /// At least this many devices ...
    pub min_devices: u32,
    /// ... and at least this percentage (1 ..= 100) of the site's devices.
    pub min_percent: u32,
}

/// `[alarms.maintenance]`: maintenance windows (maintenance.md section 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    /// Length of a declared window when none is given.
    pub default_window: SignedDuration,
    /// Longest declared window.
    pub max_window: SignedDuration,
    /// Fault codes a window never suppresses.
    pub always_page: Vec<String>,
}

/// The offline timeout when neither the config nor the plugin sets one
/// (telemetry.md: 5 min).
pub const DEFAULT_OFFLINE_AFTER: SignedDuration = SignedDuration::from_mins(5);

/// `[offline]`: when a silent device counts as offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offline {
    /// Site-wide timeout, if the config sets one.
    pub after: Option<SignedDuration>,
    /// Per equipment type.
    pub types: BTreeMap<String, SignedDuration>,
}

impl Offline {
    /// The timeout for devices of `equipment_type`: the config's per-type value, else
    /// the config's `after`, else the plugin's declared timeout, else 5 min.
    pub fn after_for(
        &self,
        equipment_type: &str,
        plugin: Option<SignedDuration>,
    ) -> SignedDuration {
        self.types
            .get(equipment_type)
            .copied()
            .or(self.after)
            .or(plugin)
            .unwrap_or(DEFAULT_OFFLINE_AFTER)
    }
}

/// The due times of one severity level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelSla {
    /// Respond (phone / remote) within.
    pub respond: SignedDuration,
    /// On site within, on a working day in working hours.
    pub onsite_workday: Due,
    /// On site within, on holidays and off hours.
    pub onsite_offhours: Due,
    /// Resolve within.
    pub resolve: Due,
}

/// `[sla]`: response commitments (maintenance.md section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sla {
    /// Levels 1 (critical) ..= 4 (warning), in order.
    pub levels: [LevelSla; 4],
    /// Spare units on site within this long of a level 1-2 hardware fault.
    pub spare_parts_within: SignedDuration,
}

impl Sla {
    /// The due times of `severity` (1 ..= 4).
    pub fn level(&self, severity: u8) -> Option<&LevelSla> {
        self.levels.get(usize::from(severity).checked_sub(1)?)
    }

    /// The seeds' table (maintenance.md section 2).
    pub fn defaults() -> Self {
        let h = SignedDuration::from_hours;
        let m = SignedDuration::from_mins;
        let after = |d| Due::After(d);
        Self {
            levels: [
                LevelSla {
                    respond: m(10),
                    onsite_workday: after(h(2)),
                    onsite_offhours: after(h(4)),
                    resolve: after(h(24)),
                },
                LevelSla {
                    respond: m(10),
                    onsite_workday: after(h(4)),
                    onsite_offhours: after(h(8)),
                    resolve: after(h(48)),
                },
                LevelSla {
                    respond: m(30),
                    onsite_workday: after(h(12)),
                    onsite_offhours: after(h(24)),
                    resolve: after(h(5 * 24)),
                },
                LevelSla {
                    respond: m(30),
                    onsite_workday: Due::NextInspection,
                    onsite_offhours: Due::NextInspection,
                    resolve: Due::NextInspection,
                },
            ],
            spare_parts_within: h(4),
        }
    }
}

/// `[calendar]`: the site's business calendar, in the inventory's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Working weekdays, Monday first, no repeats.
    pub workdays: Vec<Weekday>,
    /// Start of working hours.
    pub start: Time,
    /// End of working hours (`Time::MAX` for 24:00).
    pub end: Time,
    /// Holidays, sorted, ranges expanded.
    pub holidays: Vec<Date>,
    /// Make-up working days (weekend dates that are worked), sorted.
    pub extra_workdays: Vec<Date>,
}

impl Calendar {
    /// Whether `date` is a working day: an extra workday, or a workday weekday that is
    /// not a holiday.
    pub fn is_workday(&self, date: Date) -> bool {
        if self.extra_workdays.binary_search(&date).is_ok() {
            return true;
        }
        self.workdays.contains(&date.weekday()) && self.holidays.binary_search(&date).is_err()
    }
}

/// An override of one inspection plan (its id is the plugin's plan id).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PlanOverride {
    /// `Some(false)`: the plan is off.
    pub enabled: Option<bool>,
    /// New calendar period.
    pub every: Option<Span>,
    /// New number for the meter trigger.
    pub meter_threshold: Option<f64>,
}

impl PlanOverride {
    /// `self` with the fields `over` sets taken from `over`.
    pub fn then(self, over: PlanOverride) -> PlanOverride {
        PlanOverride {
            enabled: over.enabled.or(self.enabled),
            every: over.every.or(self.every),
            meter_threshold: over.meter_threshold.or(self.meter_threshold),
        }
    }
}

/// `[inspections]`: preventive inspections.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspections {
    /// false: no inspection schedules at all.
    pub enabled: bool,
    /// A ticket opens this long before an inspection is due.
    pub lead_time: Span,
    /// Overrides per equipment type, then plan id.
    pub types: BTreeMap<String, BTreeMap<String, PlanOverride>>,
    /// Overrides per device id, then plan id.
    pub devices: BTreeMap<String, BTreeMap<String, PlanOverride>>,
}

impl Inspections {
    /// The override in force for a device's plan: the device's fields over the type's.
    pub fn plan_override(&self, device_id: &str, equipment_type: &str, plan: &str) -> PlanOverride {
        let pick = |m: &BTreeMap<String, BTreeMap<String, PlanOverride>>, k: &str| {
            m.get(k).and_then(|p| p.get(plan)).copied().unwrap_or_default()
        };
        pick(&self.types, equipment_type).then(pick(&self.devices, device_id))
    }
}

/// `[warranty]`: warranty rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Warranty {
    /// Repairs of one fault within warranty after which the next occurrence
    /// recommends replacement (the seeds: 3).
    pub replace_after_repairs: u32,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// Output format.
    pub format: LogFormat,
    /// Filter directives (`tracing_subscriber::EnvFilter` syntax).
    pub level: String,
}

/// `[api]`: the local status API and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Api {
    /// Serve it.
    pub enabled: bool,
    /// Where it listens.
    pub listen: SocketAddr,
}
