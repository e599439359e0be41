//! The pipeline: message -> plugin -> alarm engine -> ticket builder -> one store
//! transaction. Live (`tend run`) and replay (`tend replay`) drive the same code; only
//! the clock differs (wall time live, the watermark in replay).
//!
//! The pipeline is synchronous (wasm calls block) and owned by one thread. It keeps
//! every device's record in memory, written through to the store in each batch.

pub mod builder;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use jiff::SignedDuration;

use crate::alarms::{AlarmSettings, DEVICE_OFFLINE, FaultMeta, Observation, Transition};
use crate::config::Config;
use crate::ingest::event_time::event_time_ms;
use crate::ingest::topic::TopicTemplate;
use crate::maintenance::calendar::{BusinessCalendar, CalendarRules};
use crate::maintenance::sla::{LevelTargets, SlaTable, Target};
use crate::maintenance::warranty::WarrantyTerms;
use crate::plugins::bindings::{Condition, Device, Message, MessageKind};
use crate::plugins::{CallError, Limits, PluginSet};
use crate::store::{
    Batch, DeviceRecord, OutboxEntry, Store, StoreError, TicketRef, TicketSubject, digest,
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

/// Counters (what was dropped and why), for logs, status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Messages processed (all outcomes).
    pub messages: u64,
    /// Topics that did not match the template or broke the device-id rule.
    pub bad_topic: u64,
    /// Well-formed device ids not in the inventory.
    pub unknown_device: u64,
    /// Payloads without a usable `ts`, or rejected by the plugin.
    pub invalid: u64,
    /// Redelivered messages recognised and skipped.
    pub duplicates: u64,
    /// Plugin failures (trap, deadline, memory, bad output, quarantine).
    pub plugin_failures: u64,
    /// Requests queued for the central service.
    pub requests: u64,
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
    /// Devices whose type no plugin serves.
    #[error("no plugin serves equipment type `{equipment_type}` (devices: {devices})")]
    NoPlugin {
        /// The type.
        equipment_type: String,
        /// The devices of that type.
        devices: String,
    },
}

struct DeviceCtx {
    inventory: crate::config::Device,
    wit: Device,
    warranty: WarrantyTerms,
    settings: AlarmSettings,
}

/// Messages, timers and ticket closures in; store batches and outbox entries out.
pub struct Pipeline {
    site: SiteFacts,
    topic: TopicTemplate,
    devices: HashMap<String, DeviceCtx>,
    plugins: PluginSet,
    store: Store,
    records: HashMap<String, DeviceRecord>,
    states: HashMap<String, Vec<u8>>,
    /// (deadline, device) for every device with a pending timer.
    deadlines: BTreeSet<(i64, String)>,
    deadline_of: HashMap<String, i64>,
    /// Devices already logged as unknown (log once, count always).
    unknown_logged: BTreeSet<String>,
    counters: Counters,
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
    }
}

fn ms(d: SignedDuration) -> i64 {
    d.as_millis() as i64
}

impl Pipeline {
    /// Builds the pipeline; loads device records and plugin states from the store.
    /// `start_ms`: when a device that never publishes starts counting toward offline.
    pub fn new(
        config: &Config,
        plugins: PluginSet,
        store: Store,
        start_ms: i64,
    ) -> Result<Self, SetupError> {
        let site = site_facts(config)?;
        let topic = TopicTemplate::new(&config.mqtt.topic, &config.inventory.site)
            .map_err(|e| SetupError::Maintenance(e.to_string()))?;
        let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut devices = HashMap::new();
        for d in &config.inventory.devices {
            let Some(plugin) = plugins.get(&d.equipment_type) else {
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
            devices
                .insert(d.id.clone(), DeviceCtx { inventory: d.clone(), wit, warranty, settings });
        }
        if let Some((ty, ids)) = missing.into_iter().next() {
            return Err(SetupError::NoPlugin { equipment_type: ty, devices: ids.join(", ") });
        }
        let mut records: HashMap<String, DeviceRecord> = store.devices()?.into_iter().collect();
        for id in devices.keys() {
            records.entry(id.clone()).or_insert_with(|| DeviceRecord::new(start_ms));
        }
        let states = store.plugin_states()?.into_iter().collect();
        let mut p = Self {
            site,
            topic,
            devices,
            plugins,
            store,
            records,
            states,
            deadlines: BTreeSet::new(),
            deadline_of: HashMap::new(),
            unknown_logged: BTreeSet::new(),
            counters: Counters::default(),
        };
        let ids: Vec<String> = p.devices.keys().cloned().collect();
        for id in ids {
            p.reschedule(&id);
        }
        Ok(p)
    }

    /// Counters so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The MQTT subscription for the site.
    pub fn subscription(&self) -> String {
        self.topic.subscription()
    }

    /// Processes messages in order, then fires timers due by the latest clock, and
    /// commits everything in one transaction (not flushed: the caller flushes before
    /// acknowledging). Returns the requests queued, in order.
    pub fn process(&mut self, msgs: &[Incoming]) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut batch = Batch::default();
        let mut now = i64::MIN;
        for m in msgs {
            now = now.max(m.arrival_ms);
            self.counters.messages += 1;
            self.process_one(m, &mut batch);
        }
        if now > i64::MIN {
            self.fire_timers(now, &mut batch);
        }
        self.finish(batch)
    }

    /// Fires every timer due at `now` (offline, clear holds, escalations) and commits.
    pub fn advance(&mut self, now_ms: i64) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut batch = Batch::default();
        self.fire_timers(now_ms, &mut batch);
        self.finish(batch)
    }

    /// The central service closed a ticket: ends the episode (or, later, resets the
    /// inspection schedule) and forgets the ticket.
    pub fn ticket_closed(
        &mut self,
        ticket_id: &str,
        t: &TicketRef,
        closed_ms: i64,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut batch = Batch::default();
        if let (TicketSubject::Fault { code, episode }, Some(rec)) =
            (&t.subject, self.records.get_mut(&t.device))
        {
            rec.alarms.ticket_closed(code, *episode, closed_ms);
            if rec.open_tickets.get(code).is_some_and(|(id, _)| id == ticket_id) {
                rec.open_tickets.remove(code);
            }
            batch.devices.insert(t.device.clone(), rec.clone());
        }
        batch.tickets.push((ticket_id.to_owned(), None));
        self.reschedule(&t.device);
        self.finish(batch)
    }

    fn finish(&mut self, batch: Batch) -> Result<Vec<OutboxEntry>, StoreError> {
        self.store.commit(&batch)?;
        self.counters.requests += batch.outbox.len() as u64;
        Ok(batch.outbox)
    }

    fn process_one(&mut self, m: &Incoming, batch: &mut Batch) {
        let parsed = match self.topic.parse(&m.topic) {
            Ok(p) => p,
            Err(e) => {
                self.counters.bad_topic += 1;
                tracing::debug!(topic = %m.topic.chars().take(200).collect::<String>(), "rejected: {e}");
                return;
            }
        };
        let id = parsed.device_id;
        if !self.devices.contains_key(id) {
            self.counters.unknown_device += 1;
            if self.unknown_logged.len() < 10_000 && self.unknown_logged.insert(id.to_owned()) {
                tracing::warn!(
                    device = id,
                    "message from a device not in the inventory: counted and ignored"
                );
            }
            return;
        }
        let ts = match parsed.kind {
            MessageKind::Status => m.arrival_ms,
            _ => match event_time_ms(&m.payload) {
                Ok(ts) => ts,
                Err(e) => {
                    self.counters.invalid += 1;
                    tracing::debug!(device = id, "invalid payload: {e}");
                    // An invalid reading still proves the device is online.
                    self.observe(id, m.arrival_ms, &[], &[], batch);
                    return;
                }
            },
        };
        let Some(rec) = self.records.get_mut(id) else { return };
        if rec.seen_before(ts, digest(&m.payload)) {
            self.counters.duplicates += 1;
            return;
        }
        if parsed.kind == MessageKind::Status {
            let offline =
                m.payload.trim_ascii() == b"offline" || m.payload.trim_ascii() == b"\"offline\"";
            if offline {
                let meta = self.meta_fn(id);
                let settings = self.devices[id].settings;
                let Some(rec) = self.records.get_mut(id) else { return };
                let transitions = rec.alarms.status_offline(ts, &meta, &settings);
                self.emit(id, transitions, &[], batch);
            } else {
                self.observe(id, ts, &[], &[], batch);
            }
            return;
        }
        let message = Message {
            kind: parsed.kind,
            topic: m.topic.clone(),
            payload: m.payload.clone(),
            ts_ms: ts,
        };
        let ctx = &self.devices[id];
        let ty = ctx.inventory.equipment_type.clone();
        let Some(plugin) = self.plugins.get_mut(&ty) else { return };
        let state = self.states.get(id).map(Vec::as_slice);
        match plugin.evaluate_batch(&ctx.wit, std::slice::from_ref(&message), state, m.arrival_ms) {
            Ok(mut b) => {
                let new_state = std::mem::take(&mut b.state);
                batch.plugin_states.insert(id.to_owned(), new_state.clone());
                self.states.insert(id.to_owned(), new_state);
                let mut conditions = Vec::new();
                for r in b.outcomes {
                    match r {
                        Ok(o) => {
                            if let Some(rec) = self.records.get_mut(id) {
                                for mr in &o.meters {
                                    rec.meters.insert(mr.meter.clone(), mr.value);
                                }
                            }
                            conditions.extend(o.conditions);
                        }
                        Err(e) => {
                            self.counters.invalid += 1;
                            tracing::debug!(device = id, "plugin rejected the message: {e}");
                        }
                    }
                }
                let obs: Vec<(String, bool, u8)> =
                    conditions.iter().map(|c| (c.code.clone(), c.active, c.severity)).collect();
                self.observe(id, ts, &obs, &conditions, batch);
            }
            Err(e) => {
                self.counters.plugin_failures += 1;
                if let CallError::Quarantined { .. } = e {
                    tracing::debug!(device = id, "{e}");
                } else {
                    tracing::error!(device = id, "{e}");
                }
                let quarantined = self.plugins.get(&ty).is_some_and(|p| p.is_quarantined());
                let obs =
                    if quarantined { vec![(PLUGIN_FAILURE.to_owned(), true, 2)] } else { vec![] };
                let cond = Condition {
                    code: PLUGIN_FAILURE.into(),
                    active: true,
                    severity: 2,
                    summary: format!("The `{ty}` plugin is quarantined: {e}"),
                    evidence: vec![],
                    diagnosis: None,
                };
                self.observe(id, ts, &obs, &[cond], batch);
            }
        }
    }

    fn meta_fn(&self, id: &str) -> impl Fn(&str) -> FaultMeta + use<> {
        let interrupting: Vec<String> = self
            .devices
            .get(id)
            .and_then(|d| self.plugins.get(&d.inventory.equipment_type))
            .map(|p| {
                p.description()
                    .faults
                    .iter()
                    .filter(|f| f.interrupts_service)
                    .map(|f| f.code.clone())
                    .collect()
            })
            .unwrap_or_default();
        move |code: &str| FaultMeta { interrupts_service: interrupting.iter().any(|c| c == code) }
    }

    fn observe(
        &mut self,
        id: &str,
        ts: i64,
        obs: &[(String, bool, u8)],
        conditions: &[Condition],
        batch: &mut Batch,
    ) {
        let meta = self.meta_fn(id);
        let settings = self.devices[id].settings;
        let Some(rec) = self.records.get_mut(id) else { return };
        let observations: Vec<Observation<'_>> = obs
            .iter()
            .map(|(code, active, severity)| Observation {
                code,
                active: *active,
                severity: *severity,
            })
            .collect();
        let transitions = rec.alarms.observe(ts, &observations, &meta, &settings);
        self.emit(id, transitions, conditions, batch);
    }

    fn fire_timers(&mut self, now: i64, batch: &mut Batch) {
        while let Some((deadline, id)) = self.deadlines.first().cloned() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            self.deadline_of.remove(&id);
            let meta = self.meta_fn(&id);
            let Some(ctx) = self.devices.get(&id) else { continue };
            let settings = ctx.settings;
            let Some(rec) = self.records.get_mut(&id) else { continue };
            let transitions = rec.alarms.advance(now, &meta, &settings);
            self.emit(&id, transitions, &[], batch);
        }
    }

    /// Turns transitions into requests and records the device's new state.
    fn emit(
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
            let facts = DeviceFacts { inventory: &ctx.inventory, warranty: &ctx.warranty };
            let entry =
                builder::build(&self.site, &facts, &FaultFacts { title, component }, t, condition);
            if let Transition::Opened { episode, .. } = t {
                let ticket_id = builder::episode_ticket_id(&self.site.site, id, code, *episode);
                batch.tickets.push((
                    ticket_id.clone(),
                    Some(TicketRef {
                        device: id.to_owned(),
                        subject: TicketSubject::Fault { code: code.to_owned(), episode: *episode },
                        number: None,
                    }),
                ));
                if let Some(rec) = self.records.get_mut(id) {
                    rec.open_tickets.insert(code.to_owned(), (ticket_id, *episode));
                }
            }
            batch.outbox.push(entry);
        }
        if let Some(rec) = self.records.get(id) {
            batch.devices.insert(id.to_owned(), rec.clone());
        }
        self.reschedule(id);
    }

    fn reschedule(&mut self, id: &str) {
        if let Some(old) = self.deadline_of.remove(id) {
            self.deadlines.remove(&(old, id.to_owned()));
        }
        let (Some(rec), Some(ctx)) = (self.records.get(id), self.devices.get(id)) else { return };
        if let Some(d) = rec.alarms.next_deadline(&ctx.settings) {
            self.deadlines.insert((d, id.to_owned()));
            self.deadline_of.insert(id.to_owned(), d);
        }
    }
}
