//! The pipeline: message -> plugin -> alarm engine -> ticket builder -> one store
//! transaction. Live (`tend run`) and replay (`tend replay`) drive the same code; only
//! the clock differs (wall time live, the watermark in replay; see [`Clock`]).
//!
//! The pipeline is synchronous (wasm calls block) and owned by one thread. It keeps
//! every device's record in memory, written through to the store in each batch.

pub mod builder;
mod commit;
mod schedule;
mod windows;

pub use commit::{Applied, Collect, Commit, Pipeline};
pub use schedule::CompleteError;
pub use windows::{MaintenanceError, SiteState};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;

use crate::alarms::site::{OutageSettings, SiteEffect};
use crate::alarms::window::WindowSettings;
use crate::alarms::{AlarmSettings, DEVICE_OFFLINE, FaultMeta, Observation, Transition};
use crate::config::Config;
use crate::ingest::event_time::{event_time_ms, rfc3339_utc};
use crate::ingest::topic::{MessageKind, TopicTemplate};
use crate::maintenance::Span;
use crate::maintenance::calendar::{BusinessCalendar, CalendarRules};
use crate::maintenance::inspection::{Plan, Scheduling};
use crate::maintenance::sla::{LevelTargets, SlaTable, Target};
use crate::maintenance::warranty::WarrantyTerms;
use crate::plugins::bindings::{Condition, Device, EvalError, Message, Outcome};
use crate::plugins::{CallError, Limits, PluginSet};
use crate::store::{
    ArchiveEntry, ArchiveEvent, Batch, DeviceEntry, DeviceRecord, StoreError, TicketRef,
    TicketSubject, digest, encode_device,
};

use builder::{DeviceFacts, FaultFacts, SiteFacts};

/// The host's own code for a device whose plugin is quarantined.
pub const PLUGIN_FAILURE: &str = "plugin_failure";

/// A message as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// MQTT topic.
    pub topic: String,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Arrival time (live) or the watermark (replay), ms; used by status messages
    /// and as the pipeline's clock.
    pub arrival_ms: i64,
}

/// Where the pipeline's clock comes from, which decides how event times are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// `tend run`: [`Incoming::arrival_ms`] is the wall clock at arrival. A `ts` more
    /// than `ingest.max_clock_skew` ahead of it is invalid (counted, never judged,
    /// never remembered): one device clock far ahead would otherwise fill the
    /// device's redelivery window with times its later, correct readings cannot pass.
    Live,
    /// `tend replay`: [`Incoming::arrival_ms`] is the watermark (the largest `ts` so
    /// far), so there is no arrival to compare a `ts` with. The clock starts at the
    /// pipeline's `start_ms` (the trace's first `ts`): a fault judged on a reading
    /// stamped earlier is dated at the start, so no request carries an earlier time
    /// (interfaces.md, "Time in replay").
    Replay,
}

/// Counters (what was dropped and why), for logs, status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Messages processed (all outcomes).
    pub messages: u64,
    /// Topics that did not match the template or broke the device-id rule.
    pub bad_topic: u64,
    /// Well-formed device ids not in the inventory.
    pub unknown_device: u64,
    /// Payloads without a usable `ts` (including `future` ones), or rejected by the
    /// plugin.
    pub invalid: u64,
    /// Of `invalid`: live, readings whose `ts` was more than `ingest.max_clock_skew`
    /// ahead of their arrival (a device clock far ahead).
    pub future: u64,
    /// Of `invalid`: payloads over `ingest.max_telemetry_bytes` / `max_event_bytes`
    /// (never handed to a plugin).
    pub oversize: u64,
    /// Redelivered messages recognised and skipped (including messages older than
    /// the device's last [`RECENT_MESSAGES`](crate::store::RECENT_MESSAGES), which
    /// cannot be told from redeliveries).
    pub duplicates: u64,
    /// Plugin failures (trap, deadline, memory, bad output, quarantine).
    pub plugin_failures: u64,
    /// Requests queued for the central service.
    pub requests: u64,
    /// Store commits that wrote something (a group commit of messages, a slice of
    /// timers, a closure): the live agent syncs once after each.
    pub commits: u64,
    /// Site outages opened (one `site_outage` ticket each).
    pub site_outages: u64,
    /// Devices in the site outage going on (0: none going on).
    pub outage_devices: u64,
    /// Devices under maintenance now (declared or an inspection in progress).
    pub under_maintenance: u64,
    /// Conditions that became active under maintenance (suppressed: no ticket then).
    pub suppressed: u64,
}

/// One plugin as the status API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PluginReport {
    /// Equipment type served.
    pub equipment_type: String,
    /// Plugin version.
    pub version: String,
    /// sha256 of the component file.
    pub sha256: String,
    /// Stopped after repeated failures.
    pub quarantined: bool,
    /// Calls made.
    pub calls: u64,
    /// Messages judged.
    pub messages: u64,
    /// Failed calls.
    pub failures: u64,
    /// Instances built.
    pub instantiations: u64,
    /// Plugin state held across its devices, bytes.
    pub state_bytes: usize,
}

/// A problem building the pipeline from config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The calendar or SLA table is unusable.
    #[error("{0}")]
    Maintenance(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Devices whose type no plugin serves (every such type, with its devices).
    #[error("no plugin serves {}", .0.join("; "))]
    NoPlugin(Vec<String>),
}

/// What one message of a device asks of the pipeline, in the device's order.
enum Step<M = Message> {
    /// Retained status "offline" at this time.
    Offline(i64),
    /// Proof of life with nothing to judge (status "online", an invalid payload).
    Online(i64),
    /// A message for the plugin.
    Judge(M),
}

/// The plugin's answer for one message.
enum Judged {
    Outcome(Outcome),
    Rejected(EvalError),
    Failed(CallError),
}

impl From<Result<Outcome, EvalError>> for Judged {
    fn from(r: Result<Outcome, EvalError>) -> Self {
        match r {
            Ok(o) => Judged::Outcome(o),
            Err(e) => Judged::Rejected(e),
        }
    }
}

/// Lets one warning per key through per period and counts what it held back.
#[derive(Debug, Default)]
struct LogGate {
    /// key -> (last logged at, held back since).
    last: HashMap<String, (i64, u64)>,
}

impl LogGate {
    const PERIOD_MS: i64 = 10 * 60 * 1000;
    /// Bound on remembered keys (a flood of new device ids must not grow memory).
    const MAX_KEYS: usize = 10_000;

    /// `Some(held back since the last one)` when a warning for `key` may be logged.
    fn allow(&mut self, key: &str, now: i64) -> Option<u64> {
        if let Some((at, held)) = self.last.get_mut(key) {
            if now.saturating_sub(*at) < Self::PERIOD_MS {
                *held += 1;
                return None;
            }
            let n = *held;
            (*at, *held) = (now, 0);
            return Some(n);
        }
        if self.last.len() >= Self::MAX_KEYS {
            self.last.clear();
        }
        self.last.insert(key.to_owned(), (now, 0));
        Some(0)
    }
}

/// Devices whose timers fire in one transaction: a site where thousands of devices
/// fall due at once (their inspections, at the first start) commits them in slices,
/// not in one transaction holding every ticket in memory.
const TIMER_SLICE: usize = 256;

/// How many of `messages` (at least one) fit in one call of `max_bytes` of payload.
fn call_len(messages: &[Message], max_bytes: usize) -> usize {
    let mut total = 0usize;
    let n = messages
        .iter()
        .take_while(|m| {
            total = total.saturating_add(m.payload.len());
            total <= max_bytes
        })
        .count();
    n.max(1)
}

/// Marks a device changed (without allocating when it already is).
fn mark(dirty: &mut BTreeSet<String>, id: &str) {
    if !dirty.contains(id) {
        dirty.insert(id.to_owned());
    }
}

struct DeviceCtx {
    inventory: crate::config::Device,
    /// The device as handed to its plugin (built once).
    wit: Device,
    warranty: WarrantyTerms,
    settings: AlarmSettings,
    /// Codes of its plugin that interrupt service (shared by the devices of a type).
    interrupting: Arc<HashSet<String>>,
    /// Its inspection plans: the plugin's, with config overrides, disabled ones and
    /// ones for other settings left out.
    plans: Vec<Plan>,
}

impl DeviceCtx {
    fn meta(&self) -> impl Fn(&str) -> FaultMeta + use<> {
        let interrupting = self.interrupting.clone();
        move |code: &str| FaultMeta { interrupts_service: interrupting.contains(code) }
    }
}

/// The pure pipeline: messages, timers and ticket closures in; store batches out,
/// handed to a [`Commit`] in the order they must be written. It holds no store.
pub struct Core {
    site: SiteFacts,
    topic: TopicTemplate,
    /// Boxed, like the records: a table slot per device, not a context's worth.
    devices: HashMap<String, Box<DeviceCtx>>,
    plugins: PluginSet,
    records: HashMap<String, Box<DeviceRecord>>,
    states: HashMap<String, Vec<u8>>,
    /// Devices whose record or plugin state changed since the last commit: written
    /// once per batch, however many of its messages touched them.
    dirty: BTreeSet<String>,
    /// (deadline, device) for every device with a pending timer.
    deadlines: BTreeSet<(i64, String)>,
    deadline_of: HashMap<String, i64>,
    /// Rate limit for warnings about bad input: count always, log once per key and
    /// period, so a misbehaving device cannot flood the log.
    log_gate: LogGate,
    counters: Counters,
    /// Live: how far a `ts` may be ahead of its arrival, ms (`None`: no limit, and
    /// always in replay). See [`Clock::Live`].
    max_skew_ms: Option<i64>,
    /// Replay: the clock's start; alarms take earlier event times as this one. See
    /// [`Clock::Replay`].
    floor_ms: Option<i64>,
    /// How long before its due date an inspection ticket opens.
    lead: Span,
    /// Largest telemetry / event payload judged (`ingest.max_*_bytes`): one device's
    /// big payloads must not fill the plugin instance its whole type shares.
    max_telemetry_bytes: usize,
    max_event_bytes: usize,
    /// Most payload bytes in one plugin call (`plugins.max_call_bytes`).
    max_call_bytes: usize,
    /// Device ids in inventory order (for the archive).
    inventory_order: Vec<String>,
    /// Site outages and maintenance windows (maintenance.md section 8).
    site_alarms: SiteState,
    /// The site outage rule's numbers.
    outage: OutageSettings,
    /// The maintenance window rule's numbers and lists.
    windows: WindowSettings,
    /// [`Core::site_alarms`] as last handed to a batch: written again only when it
    /// changed.
    site_written: Vec<u8>,
}

/// Builds the site calendar and SLA table from config.
pub fn site_facts(config: &Config) -> Result<SiteFacts, SetupError> {
    let c = &config.calendar;
    let rules = CalendarRules {
        weekdays: c.workdays.clone(),
        open: c.start,
        close: c.end,
        holidays: c.holidays.clone(),
        extra_working_days: c.extra_workdays.clone(),
    };
    let calendar = BusinessCalendar::with_time_zone(config.inventory.timezone.clone(), rules)
        .map_err(|e| SetupError::Maintenance(format!("calendar: {e}")))?;
    let target = |d: crate::config::Due| match d {
        crate::config::Due::After(d) => Target::Within(d),
        crate::config::Due::NextInspection => Target::NextInspection,
    };
    let level = |l: &crate::config::LevelSla| LevelTargets {
        respond: Target::Within(l.respond),
        onsite_working: target(l.onsite_workday),
        onsite_off_hours: target(l.onsite_offhours),
        resolve: target(l.resolve),
    };
    let levels = [
        level(&config.sla.levels[0]),
        level(&config.sla.levels[1]),
        level(&config.sla.levels[2]),
        level(&config.sla.levels[3]),
    ];
    let sla = SlaTable::new(levels, SlaTable::default().inspection_fallback())
        .map_err(|e| SetupError::Maintenance(format!("sla: {e}")))?;
    Ok(SiteFacts { site: config.inventory.site.clone(), calendar, sla })
}

/// Plugin limits from config.
pub fn plugin_limits(config: &Config) -> Limits {
    let p = &config.plugins;
    Limits {
        memory_bytes: (p.memory_mib as usize) << 20,
        call_deadline: Duration::from_millis(p.call_deadline.as_millis().max(1) as u64),
        max_failures: p.quarantine_failures.max(1),
        failure_window_ms: p.quarantine_window.as_millis() as i64,
        state_budget_bytes: (p.state_budget_mib as usize) << 20,
    }
}

/// The site outage rule's numbers from config.
pub fn outage_settings(config: &Config) -> OutageSettings {
    let o = &config.alarms.outage;
    OutageSettings {
        enabled: o.enabled,
        window_ms: ms(o.window),
        min_devices: o.min_devices,
        min_percent: o.min_percent,
        site_devices: u32::try_from(config.inventory.devices.len()).unwrap_or(u32::MAX),
    }
}

/// The maintenance window rule's numbers and lists from config.
pub fn window_settings(config: &Config) -> WindowSettings {
    let m = &config.alarms.maintenance;
    WindowSettings {
        always_page: m.always_page.iter().cloned().collect(),
        default_ms: ms(m.default_window),
        max_ms: ms(m.max_window),
    }
}

fn ms(d: SignedDuration) -> i64 {
    d.as_millis() as i64
}

impl Core {
    /// Builds the pipeline over the device records and plugin states read from the
    /// store; the new schedules' first records go to `out`, a slice per batch.
    /// `start_ms`: when a device that never publishes starts counting toward offline
    /// (and, in replay, when the clock starts).
    pub fn new(
        config: &Config,
        mut plugins: PluginSet,
        stored: BTreeMap<String, DeviceEntry>,
        start_ms: i64,
        clock: Clock,
        out: &mut dyn Commit,
    ) -> Result<Self, SetupError> {
        let site = site_facts(config)?;
        let topic = TopicTemplate::new(&config.mqtt.topic, &config.inventory.site)
            .map_err(|e| SetupError::Maintenance(e.to_string()))?;
        let interrupting: HashMap<&str, Arc<HashSet<String>>> = plugins
            .iter()
            .map(|(ty, p)| {
                let codes = p.description().faults.iter().filter(|f| f.interrupts_service);
                (ty, Arc::new(codes.map(|f| f.code.clone()).collect()))
            })
            .collect();
        let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let n = config.inventory.devices.len();
        let mut devices = HashMap::with_capacity(n);
        let mut checklists = schedule::Checklists::new();
        for d in &config.inventory.devices {
            let (Some(plugin), Some(interrupting)) =
                (plugins.get(&d.equipment_type), interrupting.get(d.equipment_type.as_str()))
            else {
                missing.entry(d.equipment_type.clone()).or_default().push(d.id.clone());
                continue;
            };
            let desc = plugin.description();
            let defaults = desc.warranty.iter().map(|w| (w.component.clone(), w.months));
            let warranty = WarrantyTerms::from_plugin_defaults(defaults)
                .with_overrides(d.warranty.iter().map(|(k, v)| (k.clone(), *v)));
            let plugin_offline = SignedDuration::from_secs(i64::from(desc.offline_timeout_s));
            let settings = AlarmSettings {
                clear_hold_ms: ms(config.alarms.clear_hold),
                escalate_after_ms: ms(config.alarms.escalate_after),
                offline_after_ms: ms(config
                    .offline
                    .after_for(&d.equipment_type, Some(plugin_offline))),
            };
            let wit =
                Device { id: d.id.clone(), model: d.model.clone(), settings: d.settings_json() };
            let ctx = DeviceCtx {
                inventory: d.clone(),
                wit,
                warranty,
                settings,
                interrupting: interrupting.clone(),
                plans: schedule::plans(config, d, &desc.inspections, &mut checklists),
            };
            devices.insert(d.id.clone(), Box::new(ctx));
        }
        if !missing.is_empty() {
            let each = missing
                .into_iter()
                .map(|(ty, ids)| format!("equipment type `{ty}` (devices {})", ids.join(", ")));
            return Err(SetupError::NoPlugin(each.collect()));
        }
        let mut records = HashMap::with_capacity(n);
        let mut states = HashMap::with_capacity(n);
        for (id, entry) in stored {
            if let Some(state) = entry.plugin_state {
                states.insert(id.clone(), state);
            }
            records.insert(id, Box::new(entry.record));
        }
        for (id, state) in &states {
            let ty = devices.get(id).map(|d| d.inventory.equipment_type.as_str());
            if let Some(plugin) = ty.and_then(|ty| plugins.get_mut(ty)) {
                plugin.hold_state(id, state.len());
            }
        }
        for id in devices.keys() {
            records.entry(id.clone()).or_insert_with(|| Box::new(DeviceRecord::new(start_ms)));
        }
        let mut p = Self {
            site,
            topic,
            devices,
            plugins,
            records,
            states,
            dirty: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            deadline_of: HashMap::new(),
            log_gate: LogGate::default(),
            counters: Counters::default(),
            max_skew_ms: match clock {
                Clock::Live => config.ingest.max_clock_skew.map(ms),
                Clock::Replay => None,
            },
            floor_ms: match clock {
                Clock::Live => None,
                Clock::Replay => Some(start_ms),
            },
            lead: config.inspections.lead_time,
            max_telemetry_bytes: config.ingest.max_telemetry_bytes,
            max_event_bytes: config.ingest.max_event_bytes,
            max_call_bytes: config.plugins.max_call_bytes.max(1),
            inventory_order: config.inventory.devices.iter().map(|d| d.id.clone()).collect(),
            site_alarms: SiteState::default(),
            outage: outage_settings(config),
            windows: window_settings(config),
            // The empty state counts as written, so the first batches (before
            // `restore_site`) never overwrite a stored one.
            site_written: serde_json::to_vec(&SiteState::default()).unwrap_or_default(),
        };
        let ids: Vec<String> = p.devices.keys().cloned().collect();
        for id in ids {
            p.start_schedules(&id, start_ms);
            p.reschedule(&id);
        }
        // New schedules are written a slice at a time, not with the first batch.
        let dirty: Vec<String> = std::mem::take(&mut p.dirty).into_iter().collect();
        for slice in dirty.chunks(TIMER_SLICE) {
            p.dirty.extend(slice.iter().cloned());
            p.finish(Batch::default(), out)?;
        }
        Ok(p)
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Takes back the site-wide alarm state a store held ([`crate::store::Batch::site`]);
    /// an unreadable one is logged and replaced by an empty state (an outage going on
    /// then opens again if the devices are still offline).
    pub fn restore_site(&mut self, bytes: &[u8]) {
        match serde_json::from_slice::<SiteState>(bytes) {
            Ok(state) => {
                self.site_alarms = state;
                self.site_written = bytes.to_vec();
                let state = &self.site_alarms;
                self.counters.site_outages = u64::from(state.outages.outages());
                self.counters.outage_devices =
                    state.outages.outage().map_or(0, |o| o.members.len() as u64);
                self.counters.under_maintenance = state.windows.under_maintenance().count() as u64;
            }
            Err(e) => {
                tracing::error!("the stored site alarm state is unreadable ({e}); starting afresh")
            }
        }
    }

    /// The site-wide alarm state (outages, maintenance windows).
    pub fn site_alarms(&self) -> &SiteState {
        &self.site_alarms
    }

    /// Each plugin's version, health and call counters.
    pub fn plugin_report(&self) -> Vec<PluginReport> {
        self.plugins
            .iter()
            .map(|(ty, p)| {
                let s = p.stats();
                PluginReport {
                    equipment_type: ty.to_owned(),
                    version: p.description().plugin_version.clone(),
                    sha256: p.sha256().to_owned(),
                    quarantined: p.is_quarantined(),
                    calls: s.calls,
                    messages: s.messages,
                    failures: s.failures,
                    instantiations: s.instantiations,
                    state_bytes: p.state_bytes(),
                }
            })
            .collect()
    }

    /// The MQTT subscription for the site.
    pub fn subscription(&self) -> String {
        self.topic.subscription()
    }

    /// Processes messages, then fires timers due by the latest clock; the batches go
    /// to `out` in order.
    ///
    /// The messages' effects and the first [`TIMER_SLICE`] due devices share one
    /// batch; further due devices follow a slice per batch, each device's effects
    /// (record, tickets, outbox) always in one batch.
    ///
    /// Each device's messages keep their order; a device's messages of the batch are
    /// judged by its plugin in one call (see [`Core::judge`]).
    pub fn step(&mut self, msgs: Vec<Incoming>, out: &mut dyn Commit) -> Result<(), StoreError> {
        let mut batch = Batch::default();
        let mut now = i64::MIN;
        let mut order: Vec<String> = Vec::new();
        let mut steps: HashMap<String, Vec<Step>> = HashMap::new();
        for m in msgs {
            now = now.max(m.arrival_ms);
            self.counters.messages += 1;
            if let Some((id, step)) = self.classify(m) {
                steps
                    .entry(id)
                    .or_insert_with_key(|id| {
                        order.push(id.clone());
                        Vec::new()
                    })
                    .push(step);
            }
        }
        for id in order {
            if let Some(steps) = steps.remove(&id) {
                self.run_device(&id, steps, now, &mut batch);
            }
        }
        if now == i64::MIN {
            return self.finish(batch, out);
        }
        self.timers_into(now, batch, out)
    }

    /// Fires every timer due at `now` (offline, clear holds, escalations, inspection
    /// schedules), a slice of due devices per batch.
    pub fn advance(&mut self, now_ms: i64, out: &mut dyn Commit) -> Result<(), StoreError> {
        self.timers_into(now_ms, Batch::default(), out)
    }

    /// Fires the due timers (each due device once) and commits: the first slice of
    /// devices with `batch`, then slice after slice.
    fn timers_into(
        &mut self,
        now: i64,
        mut batch: Batch,
        out: &mut dyn Commit,
    ) -> Result<(), StoreError> {
        let mut due = self.take_due(now).into_iter().peekable();
        loop {
            for id in due.by_ref().take(TIMER_SLICE) {
                self.fire_device(&id, now, &mut batch);
            }
            if due.peek().is_none() {
                // Every device due by now went offline (or not) first: only then is
                // it known which held offline tickets no outage claims.
                let records = &self.records;
                let offline =
                    |d: &str| records.get(d).is_some_and(|r| r.alarms.offline_since().is_some());
                let released = self.site_alarms.outages.release(now, &offline, &self.outage);
                self.apply_site(released, "", &[], &mut batch);
                self.expire_windows(now, &mut batch);
                return self.finish(batch, out);
            }
            self.finish(std::mem::take(&mut batch), out)?;
        }
    }

    /// The central service closed a ticket: ends the fault episode, or completes the
    /// inspection (its schedule restarts from `closed_ms`), and forgets the ticket.
    /// `false` (nothing written) when the pipeline no longer holds that ticket (a
    /// repeated report).
    pub fn ticket_closed(
        &mut self,
        ticket_id: &str,
        device: &str,
        subject: &TicketSubject,
        closed_ms: i64,
        resolution: Option<&str>,
        out: &mut dyn Commit,
    ) -> Result<bool, StoreError> {
        let mut batch = Batch::default();
        let closed = ArchiveEntry {
            at_ms: closed_ms,
            event: ArchiveEvent::TicketClosed {
                ticket_id: ticket_id.to_owned(),
                resolution: resolution.map(str::to_owned),
            },
        };
        match subject {
            TicketSubject::Fault { code, .. }
                if device == self.site.site && code == crate::alarms::site::SITE_OUTAGE =>
            {
                batch.archive.push((device.to_owned(), closed));
            }
            TicketSubject::Fault { code, episode } => {
                let Some(rec) = self.records.get_mut(device) else { return Ok(false) };
                if rec.open_tickets.get(code).is_none_or(|(id, _)| id != ticket_id) {
                    return Ok(false);
                }
                rec.open_tickets.remove(code);
                rec.alarms.ticket_closed(code, *episode, closed_ms);
                mark(&mut self.dirty, device);
                batch.archive.push((device.to_owned(), closed));
                schedule::track_downtime(rec, device, &[], Some((code, closed_ms)), &mut batch);
            }
            TicketSubject::Inspection { plan } => {
                batch.archive.push((device.to_owned(), closed));
                // A closed inspection is no longer in progress: its window ends.
                let ended =
                    self.site_alarms.windows.inspection(device, ticket_id, false, closed_ms);
                self.apply_windows(device, ended, &mut batch);
                self.complete(device, plan, closed_ms, Some(ticket_id), None, &mut batch);
            }
            TicketSubject::InspectionOverdue { .. } => {
                batch.archive.push((device.to_owned(), closed));
            }
        }
        batch.tickets.push((ticket_id.to_owned(), None));
        self.reschedule(device);
        self.finish(batch, out)?;
        Ok(true)
    }

    /// The central service shows a ticket acknowledged: the archive notes when (once
    /// per ticket; `history` is the device's archive so far). Returns whether it was new.
    pub fn ticket_acknowledged(
        &mut self,
        ticket_id: &str,
        device: &str,
        seen_ms: i64,
        history: &[ArchiveEntry],
        out: &mut dyn Commit,
    ) -> Result<bool, StoreError> {
        if !self.devices.contains_key(device) {
            return Ok(false);
        }
        let known = history.iter().any(|e| {
            matches!(&e.event, ArchiveEvent::TicketAcknowledged { ticket_id: t } if t == ticket_id)
        });
        if known {
            return Ok(false);
        }
        let mut batch = Batch::default();
        let event = ArchiveEvent::TicketAcknowledged { ticket_id: ticket_id.to_owned() };
        batch.archive.push((device.to_owned(), ArchiveEntry { at_ms: seen_ms, event }));
        self.finish(batch, out)?;
        Ok(true)
    }

    /// Adds the changed devices' records to `batch` and hands it to `out`.
    fn finish(&mut self, mut batch: Batch, out: &mut dyn Commit) -> Result<(), StoreError> {
        let site = serde_json::to_vec(&self.site_alarms).map_err(|e| StoreError::Corrupt {
            dir: String::new(),
            tree: "meta",
            key: "site_alarms".to_owned(),
            reason: e.to_string(),
        })?;
        if site != self.site_written {
            batch.site = Some(site.clone());
            self.site_written = site;
            let state = &self.site_alarms;
            self.counters.site_outages = u64::from(state.outages.outages());
            self.counters.outage_devices =
                state.outages.outage().map_or(0, |o| o.members.len() as u64);
            self.counters.under_maintenance = state.windows.under_maintenance().count() as u64;
        }
        for id in std::mem::take(&mut self.dirty) {
            if let Some(rec) = self.records.get(&id) {
                let state = self.states.get(&id).map(Vec::as_slice);
                let value = encode_device(rec, state).map_err(|e| StoreError::Corrupt {
                    dir: String::new(),
                    tree: "devices",
                    key: id.clone(),
                    reason: e.to_string(),
                })?;
                batch.devices.push((id, value));
            }
        }
        if !batch.is_empty() {
            self.counters.commits += 1;
        }
        self.counters.requests += batch.outbox.len() as u64;
        out.commit(batch)
    }

    /// Checks topic, device, event time and redelivery; what is left is a step for
    /// the device. Everything dropped is counted.
    fn classify(&mut self, m: Incoming) -> Option<(String, Step)> {
        let parsed = match self.topic.parse(&m.topic) {
            Ok(p) => p,
            Err(e) => {
                self.counters.bad_topic += 1;
                if let Some(held) = self.log_gate.allow("bad topic", m.arrival_ms) {
                    let topic: String = m.topic.chars().take(200).collect();
                    tracing::warn!(%topic, held_back = held, "topic rejected: {e}; counted and acked");
                }
                return None;
            }
        };
        let (id, kind) = (parsed.device_id.to_owned(), parsed.kind);
        if !self.devices.contains_key(&id) {
            self.counters.unknown_device += 1;
            if let Some(held) = self.log_gate.allow(&format!("unknown {id}"), m.arrival_ms) {
                tracing::warn!(
                    device = %id,
                    held_back = held,
                    "message from a device not in the inventory: counted and ignored \
                     (add it to the inventory to monitor it)"
                );
            }
            return None;
        }
        let limit = match kind {
            MessageKind::Telemetry => Some(self.max_telemetry_bytes),
            MessageKind::Event => Some(self.max_event_bytes),
            MessageKind::Status => None,
        };
        if let Some(limit) = limit
            && m.payload.len() > limit
        {
            // Before anything reads it: not parsed, digested or handed to a plugin.
            self.counters.invalid += 1;
            self.counters.oversize += 1;
            if let Some(held) = self.log_gate.allow(&format!("oversize {id}"), m.arrival_ms) {
                tracing::warn!(
                    device = %id,
                    held_back = held,
                    bytes = m.payload.len(),
                    limit,
                    "{} payload larger than ingest.max_{}_bytes: counted as invalid, \
                     not judged",
                    kind.as_str(),
                    kind.as_str()
                );
            }
            // It still proves the device is online.
            return Some((id, Step::Online(m.arrival_ms)));
        }
        let ts = match kind {
            MessageKind::Status => m.arrival_ms,
            _ => match event_time_ms(&m.payload) {
                Ok(ts) => ts,
                Err(e) => {
                    self.counters.invalid += 1;
                    if let Some(held) = self.log_gate.allow(&format!("invalid {id}"), m.arrival_ms)
                    {
                        tracing::warn!(device = %id, held_back = held, "invalid payload: {e}");
                    }
                    // An invalid reading still proves the device is online.
                    return Some((id, Step::Online(m.arrival_ms)));
                }
            },
        };
        if let Some(skew) = self.max_skew_ms
            && ts.saturating_sub(m.arrival_ms) > skew
        {
            // Before the redelivery window: a time that far ahead must not enter it.
            self.counters.invalid += 1;
            self.counters.future += 1;
            if let Some(held) = self.log_gate.allow(&format!("future {id}"), m.arrival_ms) {
                let ahead = SignedDuration::from_millis(ts.saturating_sub(m.arrival_ms));
                tracing::warn!(
                    device = %id,
                    held_back = held,
                    ts = %rfc3339_utc(ts),
                    "event time {ahead:#} ahead of the agent's clock (more than \
                     ingest.max_clock_skew): counted as invalid, not judged; \
                     check the device's clock (and the agent's)"
                );
            }
            // It still proves the device is online.
            return Some((id, Step::Online(m.arrival_ms)));
        }
        let rec = self.records.get_mut(&id)?;
        if rec.seen_before(ts, digest(&m.payload)) {
            self.counters.duplicates += 1;
            return None;
        }
        mark(&mut self.dirty, &id);
        let step = match kind {
            MessageKind::Status => {
                let p = m.payload.trim_ascii();
                if p == b"offline" || p == b"\"offline\"" {
                    Step::Offline(ts)
                } else {
                    Step::Online(ts)
                }
            }
            _ => Step::Judge(Message {
                kind: kind.into(),
                topic: m.topic,
                payload: m.payload,
                ts_ms: ts,
            }),
        };
        Some((id, step))
    }

    /// Applies one device's steps in order.
    fn run_device(&mut self, id: &str, steps: Vec<Step>, now: i64, batch: &mut Batch) {
        // The messages move into one plugin call; the steps keep only their times.
        let mut messages = Vec::new();
        let steps: Vec<Step<i64>> = steps
            .into_iter()
            .map(|s| match s {
                Step::Judge(m) => {
                    let ts = m.ts_ms;
                    messages.push(m);
                    Step::Judge(ts)
                }
                Step::Offline(ts) => Step::Offline(ts),
                Step::Online(ts) => Step::Online(ts),
            })
            .collect();
        let mut judged = self.judge(id, &messages, now).into_iter();
        for step in steps {
            match step {
                Step::Offline(ts) => {
                    let (Some(ctx), Some(rec)) = (self.devices.get(id), self.records.get_mut(id))
                    else {
                        return;
                    };
                    let transitions = rec.alarms.status_offline(ts, &ctx.meta(), &ctx.settings);
                    self.emit(id, transitions, &[], batch);
                }
                Step::Online(ts) => self.observe(id, ts, &[], batch),
                Step::Judge(ts) => match judged.next() {
                    Some(Judged::Outcome(o)) => {
                        let mut conditions = o.conditions;
                        if let Some(rec) = self.records.get_mut(id) {
                            for mr in o.meters {
                                rec.meters.insert(mr.meter, mr.value);
                            }
                            // Judged again after a suspension: its plugin_failure clears.
                            if rec.alarms.open_episodes().any(|(c, _)| c == PLUGIN_FAILURE) {
                                conditions.push(Condition {
                                    code: PLUGIN_FAILURE.into(),
                                    active: false,
                                    severity: 2,
                                    summary: String::new(),
                                    evidence: vec![],
                                    diagnosis: None,
                                });
                            }
                        }
                        self.observe(id, ts, &conditions, batch);
                    }
                    Some(Judged::Rejected(e)) => {
                        self.counters.invalid += 1;
                        if let Some(held) = self.log_gate.allow(&format!("rejected {id}"), now) {
                            tracing::warn!(
                                device = id,
                                held_back = held,
                                "plugin rejected the message: {e}"
                            );
                        }
                        self.observe(id, ts, &[], batch);
                    }
                    Some(Judged::Failed(e)) => self.plugin_failed(id, ts, now, &e, batch),
                    None => self.observe(id, ts, &[], batch),
                },
            }
        }
        // Meters may have advanced: a usage trigger may fire.
        self.inspect(id, now, batch);
        self.reschedule(id);
    }

    /// Judges a device's messages with its plugin, the state threaded through: one
    /// call for all of them, or as many as `plugins.max_call_bytes` of payload asks
    /// (a single larger message goes alone), so a flood of big payloads cannot fill
    /// the instance.
    fn judge(&mut self, id: &str, messages: &[Message], now: i64) -> Vec<Judged> {
        let mut out = Vec::with_capacity(messages.len());
        let mut rest = messages;
        while !rest.is_empty() {
            let (call, tail) = rest.split_at(call_len(rest, self.max_call_bytes));
            out.extend(self.judge_call(id, call, now));
            rest = tail;
        }
        out
    }

    /// One call of [`Core::judge`]. If it fails (a trap, a deadline ...), each message
    /// is retried alone so a single poisonous message costs only itself.
    fn judge_call(&mut self, id: &str, messages: &[Message], now: i64) -> Vec<Judged> {
        if messages.is_empty() {
            return Vec::new();
        }
        let Some(ctx) = self.devices.get(id) else { return Vec::new() };
        let Some(plugin) = self.plugins.get_mut(&ctx.inventory.equipment_type) else {
            return Vec::new();
        };
        let state = self.states.get(id).map(Vec::as_slice);
        match plugin.evaluate_batch(&ctx.wit, messages, state, now) {
            Ok(b) => {
                self.states.insert(id.to_owned(), b.state);
                mark(&mut self.dirty, id);
                b.outcomes.into_iter().map(Judged::from).collect()
            }
            Err(e) if messages.len() == 1 || !e.is_failure() => {
                messages.iter().map(|_| Judged::Failed(e.clone())).collect()
            }
            Err(e) => {
                tracing::warn!(
                    device = id,
                    "{e}; judging its {} messages one by one",
                    messages.len()
                );
                let mut out = Vec::with_capacity(messages.len());
                for m in messages {
                    let state = self.states.get(id).map(Vec::as_slice);
                    match plugin.evaluate_batch(&ctx.wit, std::slice::from_ref(m), state, now) {
                        Ok(b) => {
                            self.states.insert(id.to_owned(), b.state);
                            mark(&mut self.dirty, id);
                            out.extend(b.outcomes.into_iter().map(Judged::from));
                        }
                        Err(e) => out.push(Judged::Failed(e)),
                    }
                }
                out
            }
        }
    }

    /// A plugin call failed for this device's message.
    /// `now`: the clock the call ran at.
    fn plugin_failed(&mut self, id: &str, ts: i64, now: i64, e: &CallError, batch: &mut Batch) {
        self.counters.plugin_failures += 1;
        if e.is_failure() {
            tracing::error!(device = id, "{e}");
        } else {
            tracing::debug!(device = id, "{e}");
        }
        let ty =
            self.devices.get(id).map(|d| d.inventory.equipment_type.clone()).unwrap_or_default();
        let plugin = self.plugins.get(&ty);
        let quarantined = plugin.is_some_and(|p| p.is_quarantined());
        let suspended = matches!(e, CallError::Suspended { .. })
            || plugin.is_some_and(|p| p.is_suspended(id, now));
        // While the plugin is quarantined its devices hold `plugin_failure` (level 2),
        // and so does a device it keeps failing on (its own messages, for the
        // quarantine window); a single failure only proves the device is online.
        let failure = (quarantined || suspended).then(|| Condition {
            code: PLUGIN_FAILURE.into(),
            active: true,
            severity: 2,
            summary: if quarantined {
                format!("The `{ty}` plugin is quarantined: {e}")
            } else {
                format!(
                    "This device's messages are quarantined from the `{ty}` plugin, which \
                     keeps failing on them (the plugin still serves the other devices): {e}"
                )
            },
            evidence: vec![],
            diagnosis: None,
        });
        self.observe(id, ts, failure.as_slice(), batch);
    }

    /// Feeds the conditions judged at `ts` to the device's alarms (in replay, no
    /// earlier than the clock's start).
    fn observe(&mut self, id: &str, ts: i64, conditions: &[Condition], batch: &mut Batch) {
        let ts = self.floor_ms.map_or(ts, |floor| ts.max(floor));
        let (Some(ctx), Some(rec)) = (self.devices.get(id), self.records.get_mut(id)) else {
            return;
        };
        let observations: Vec<Observation<'_>> = conditions
            .iter()
            .map(|c| Observation { code: &c.code, active: c.active, severity: c.severity })
            .collect();
        let was_offline = rec.alarms.offline_since().is_some();
        let transitions = rec.alarms.observe(ts, &observations, &ctx.meta(), &ctx.settings);
        mark(&mut self.dirty, id);
        self.emit(id, transitions, conditions, batch);
        if was_offline && self.site_alarms.outages.is_member(id) {
            let records = &self.records;
            let offline =
                |d: &str| records.get(d).is_some_and(|r| r.alarms.offline_since().is_some());
            let effects = self.site_alarms.outages.device_online(ts, &offline, &self.outage);
            self.apply_site(effects, id, &[], batch);
        }
    }

    /// Takes the devices whose timer is due at `now` (alarm holds, escalations,
    /// offline, inspection schedules), earliest first.
    fn take_due(&mut self, now: i64) -> Vec<String> {
        let mut due = Vec::new();
        while let Some((deadline, _)) = self.deadlines.first() {
            if *deadline > now {
                break;
            }
            if let Some((_, id)) = self.deadlines.pop_first() {
                self.deadline_of.remove(&id);
                due.push(id);
            }
        }
        due
    }

    /// Advances a due device's timers to `now`.
    fn fire_device(&mut self, id: &str, now: i64, batch: &mut Batch) {
        let (Some(ctx), Some(rec)) = (self.devices.get(id), self.records.get_mut(id)) else {
            return;
        };
        let transitions = rec.alarms.advance(now, &ctx.meta(), &ctx.settings);
        mark(&mut self.dirty, id);
        self.emit(id, transitions, &[], batch);
        self.inspect(id, now, batch);
        self.reschedule(id);
    }

    /// Turns a device's transitions into requests, through the site outage rule, and
    /// reschedules the device's timers.
    fn emit(
        &mut self,
        id: &str,
        transitions: Vec<Transition>,
        conditions: &[Condition],
        batch: &mut Batch,
    ) {
        if transitions.is_empty() {
            self.reschedule(id);
            return;
        }
        let mut held = Vec::new();
        let transitions =
            self.site_alarms.windows.filter(id, transitions, &self.windows, &mut held);
        self.apply_windows(id, held, batch);
        let records = &self.records;
        let offline = |d: &str| records.get(d).is_some_and(|r| r.alarms.offline_since().is_some());
        let effects = self.site_alarms.outages.transitions(id, transitions, &offline, &self.outage);
        self.apply_site(effects, id, conditions, batch);
        self.reschedule(id);
    }

    /// Carries out what the site outage rule decided. `conditions` are the plugin's
    /// conditions of device `id`'s message (none for other devices).
    fn apply_site(
        &mut self,
        effects: Vec<SiteEffect>,
        id: &str,
        conditions: &[Condition],
        batch: &mut Batch,
    ) {
        let site = self.site.site.clone();
        let archive = |batch: &mut Batch, device: &str, at_ms: i64, event: ArchiveEvent| {
            batch.archive.push((device.to_owned(), ArchiveEntry { at_ms, event }));
        };
        for e in effects {
            match e {
                SiteEffect::Device { device, transition } => {
                    let c = if device == id { conditions } else { &[] };
                    self.emit_device(&device, vec![transition], c, batch);
                }
                SiteEffect::Discard { device, episode } => {
                    if let Some(rec) = self.records.get_mut(&device) {
                        rec.alarms.discard_episode(DEVICE_OFFLINE, episode);
                        mark(&mut self.dirty, &device);
                    }
                    self.reschedule(&device);
                }
                SiteEffect::Reopen { device, episode, at } => {
                    let Some(rec) = self.records.get(&device) else { continue };
                    let severity = rec
                        .alarms
                        .open_episodes()
                        .find(|(c, _)| *c == DEVICE_OFFLINE)
                        .map_or(crate::alarms::DEVICE_OFFLINE_SEVERITY, |(_, e)| e.severity());
                    let since = rec.alarms.offline_since().unwrap_or(at);
                    let t = Transition::Opened {
                        code: DEVICE_OFFLINE.to_owned(),
                        episode,
                        severity,
                        at,
                        closed_before: rec.alarms.closed_episodes(DEVICE_OFFLINE),
                    };
                    let tz = self.site.calendar.time_zone();
                    let note = Condition {
                        code: DEVICE_OFFLINE.into(),
                        active: true,
                        severity,
                        summary: format!(
                            "Still offline when the site outage ended (offline since {});                              it was covered by the site's outage ticket until then.",
                            builder::wire_time(since, tz).as_str()
                        ),
                        evidence: vec![],
                        diagnosis: None,
                    };
                    self.emit_device(&device, vec![t], std::slice::from_ref(&note), batch);
                }
                SiteEffect::OutageOpened { number, at, devices } => {
                    let ticket_id = builder::outage_ticket_id(&site, number);
                    batch.outbox.push(builder::outage_opened(
                        &self.site,
                        number,
                        at,
                        &devices,
                        self.outage.site_devices,
                        self.outage.window_ms,
                    ));
                    batch.tickets.push((
                        ticket_id.clone(),
                        Some(TicketRef {
                            device: site.clone(),
                            subject: TicketSubject::Fault {
                                code: crate::alarms::site::SITE_OUTAGE.to_owned(),
                                episode: number,
                            },
                            number: None,
                            delivered: false,
                        }),
                    ));
                    let names: Vec<String> = devices.iter().map(|(d, _)| d.clone()).collect();
                    let opened = ArchiveEvent::SiteOutageOpened {
                        ticket_id: ticket_id.clone(),
                        devices: names,
                    };
                    archive(batch, &site, at, opened);
                    for (d, since) in devices {
                        let joined = ArchiveEvent::OutageJoined { ticket_id: ticket_id.clone() };
                        archive(batch, &d, since, joined);
                    }
                }
                SiteEffect::Joined { number, device, at } => {
                    let ticket_id = builder::outage_ticket_id(&site, number);
                    archive(batch, &device, at, ArchiveEvent::OutageJoined { ticket_id });
                }
                SiteEffect::OutageRecovered { number, started, at, devices, still_offline } => {
                    let ticket_id = builder::outage_ticket_id(&site, number);
                    batch.outbox.push(builder::outage_recovered(
                        &self.site,
                        number,
                        at,
                        devices.len(),
                        &still_offline,
                    ));
                    let over = ArchiveEvent::SiteOutageRecovered {
                        ticket_id,
                        started_ms: started,
                        devices,
                        still_offline,
                    };
                    archive(batch, &site, at, over);
                }
            }
        }
    }

    /// Turns one device's transitions into requests and reschedules its timers.
    fn emit_device(
        &mut self,
        id: &str,
        transitions: Vec<Transition>,
        conditions: &[Condition],
        batch: &mut Batch,
    ) {
        let Some(ctx) = self.devices.get(id) else { return };
        let plugin = self.plugins.get(&ctx.inventory.equipment_type);
        for t in &transitions {
            let code = t.code();
            let spec = plugin.and_then(|p| p.description().faults.iter().find(|f| f.code == code));
            let (title, component) = match (spec, code) {
                (Some(f), _) => (f.title.as_str(), f.component.as_str()),
                (None, DEVICE_OFFLINE) => ("Device offline", "main_unit"),
                (None, PLUGIN_FAILURE) => ("Equipment plugin failure", "main_unit"),
                (None, _) => (code, "main_unit"),
            };
            let condition = conditions.iter().find(|c| c.code == code && c.active);
            // Downtime as of this transition (an earlier one of the batch may end or
            // start a level-1 period).
            let downtime = match self.records.get_mut(id) {
                Some(rec) => {
                    schedule::track_downtime(rec, id, std::slice::from_ref(t), None, batch);
                    rec.downtime_until(t.at())
                }
                None => Vec::new(),
            };
            let facts = DeviceFacts {
                inventory: &ctx.inventory,
                warranty: &ctx.warranty,
                downtime: &downtime,
                next_inspection: self.next_inspection(id),
            };
            let entry =
                builder::build(&self.site, &facts, &FaultFacts { title, component }, t, condition);
            batch.archive.push((id.to_owned(), schedule::archive_fault(t, &entry)));
            if let Transition::Opened { episode, .. } = t {
                let ticket_id = builder::episode_ticket_id(&self.site.site, id, code, *episode);
                batch.tickets.push((
                    ticket_id.clone(),
                    Some(TicketRef {
                        device: id.to_owned(),
                        subject: TicketSubject::Fault { code: code.to_owned(), episode: *episode },
                        number: None,
                        delivered: false,
                    }),
                ));
                if let Some(rec) = self.records.get_mut(id) {
                    rec.open_tickets.insert(code.to_owned(), (ticket_id, *episode));
                }
            }
            batch.outbox.push(entry);
        }
        self.reschedule(id);
    }

    /// Sets the device's next timer (alarms or inspections, whichever is first).
    fn reschedule(&mut self, id: &str) {
        let (Some(rec), Some(ctx)) = (self.records.get(id), self.devices.get(id)) else { return };
        let s = Scheduling { calendar: &self.site.calendar, lead: self.lead };
        let inspections =
            ctx.plans.iter().filter_map(|p| s.next_wake(p, rec.inspections.get(&p.id)?)).min();
        let alarms = rec.alarms.next_deadline(&ctx.settings);
        let next = match (alarms, inspections) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let old = self.deadline_of.get(id).copied();
        if old == next {
            return;
        }
        if let Some(old) = old {
            self.deadline_of.remove(id);
            self.deadlines.remove(&(old, id.to_owned()));
        }
        if let Some(d) = next {
            self.deadlines.insert((d, id.to_owned()));
            self.deadline_of.insert(id.to_owned(), d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{LogGate, call_len};
    use crate::plugins::bindings::{Message, MessageKind};

    fn msg(bytes: usize) -> Message {
        Message {
            kind: MessageKind::Telemetry,
            topic: "t".into(),
            payload: vec![b' '; bytes],
            ts_ms: 0,
        }
    }

    /// Issue 15, finding 1: a device's whole batch went to its plugin in one call,
    /// however big its payloads.
    #[test]
    fn a_batch_of_big_payloads_is_split_into_calls_by_bytes() {
        let big: Vec<Message> = (0..10).map(|_| msg(400)).collect();
        assert_eq!(call_len(&big, 1000), 2);
        assert_eq!(call_len(&big, 100), 1, "a single larger message goes alone");
        assert_eq!(call_len(&big, 1 << 20), 10);
        assert_eq!(call_len(&[msg(0), msg(0)], 0), 2);
    }

    #[test]
    fn log_gate_lets_one_through_per_key_and_period() {
        let mut g = LogGate::default();
        assert_eq!(g.allow("invalid d1", 0), Some(0));
        assert_eq!(g.allow("invalid d1", 1_000), None);
        assert_eq!(g.allow("invalid d1", 2_000), None);
        assert_eq!(g.allow("invalid d2", 2_000), Some(0), "another device has its own budget");
        assert_eq!(
            g.allow("invalid d1", LogGate::PERIOD_MS),
            Some(2),
            "next period, with the count"
        );
        assert_eq!(g.allow("invalid d1", LogGate::PERIOD_MS + 1), None);
    }
}
