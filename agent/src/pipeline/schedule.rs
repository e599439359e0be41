//! The pipeline's preventive side: inspection schedules (the pure scheduler in
//! `maintenance::inspection`, driven by the pipeline's clock and meters), level-1
//! downtime for the warranty extension, and the device archive.

use std::sync::Arc;

use crate::alarms::{Phase, Transition};
use crate::config::{Config, Device};
use crate::maintenance::Span;
use crate::maintenance::inspection::{
    Action, MeterRule, MeterTrigger, Occurrence, Plan, PlanState, Scheduling,
};
use crate::maintenance::warranty;
use crate::plugins::bindings::{self, InspectionPlan, Period};
use crate::store::archive::{
    DeviceArchive, DeviceFacts as ArchiveFacts, OpenFault, PlanStatus, SiteArchive, SlaTimes,
    WarrantyLine,
};
use crate::store::{
    ArchiveEntry, ArchiveEvent, Batch, DeviceRecord, OutboxEntry, Request, StoreError, TicketRef,
    TicketSubject,
};
use crate::tickets::model::{NewTicket, WireTime};

use super::builder::{self, DeviceFacts};
use super::{Commit, Core, mark};

/// A local completion that cannot be recorded.
#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    /// The device is not in the inventory.
    #[error("device `{0}` is not in the inventory")]
    UnknownDevice(String),
    /// The device has no such plan.
    #[error("device `{device}` has no inspection plan `{plan}` (its plans: {known})")]
    UnknownPlan {
        /// Device id.
        device: String,
        /// The plan asked for.
        plan: String,
        /// The device's plans, comma-separated.
        known: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checklists by (equipment type, plan id), shared by the devices of a type.
pub(super) type Checklists = std::collections::HashMap<(String, String), Arc<[String]>>;

/// A device's inspection plans: its plugin's, merged with config overrides (type,
/// then device); disabled plans and plans for a setting the device does not have
/// are left out.
pub(super) fn plans(
    config: &Config,
    d: &Device,
    declared: &[InspectionPlan],
    checklists: &mut Checklists,
) -> Vec<Plan> {
    if !config.inspections.enabled {
        return Vec::new();
    }
    declared
        .iter()
        .filter(|p| {
            p.only_if_setting.as_ref().is_none_or(|key| {
                d.settings.get(key).is_some_and(|v| v == &serde_json::Value::Bool(true))
            })
        })
        .filter_map(|p| {
            let over = config.inspections.plan_override(&d.id, &d.equipment_type, &p.id);
            if over.enabled == Some(false) {
                return None;
            }
            let every = over.every.or(p.every.map(|e| match e {
                Period::Days(n) => Span::Days(n),
                Period::Months(n) => Span::Months(n),
            }));
            let meter = p.meter.as_ref().map(|t| {
                let rule = match t.rule {
                    bindings::MeterRule::Every(x) => MeterRule::Every(x),
                    bindings::MeterRule::Reaches(x) => MeterRule::Reaches(x),
                };
                let rule = over.meter_threshold.map_or(rule, |x| rule.with_threshold(x));
                MeterTrigger { meter: t.meter.clone(), rule }
            });
            Some(Plan {
                id: p.id.clone(),
                title: p.title.clone(),
                every,
                meter,
                checklist: checklists
                    .entry((d.equipment_type.clone(), p.id.clone()))
                    .or_insert_with(|| p.checklist.clone().into())
                    .clone(),
            })
        })
        .collect()
}

/// The archive's record of a fault ticket that opened.
fn fault_opened(ticket: &NewTicket, severity: u8) -> ArchiveEvent {
    let ms = |w: &Option<WireTime>| w.as_ref().map(|w| w.timestamp().as_millisecond());
    let sla = ticket.sla.as_ref().and_then(|s| {
        Some(SlaTimes {
            respond_by_ms: ms(&s.respond_by)?,
            onsite_by_ms: ms(&s.onsite_by)?,
            resolve_by_ms: ms(&s.resolve_by)?,
        })
    });
    ArchiveEvent::FaultOpened {
        ticket_id: ticket.ticket_id.clone(),
        code: ticket.code.clone(),
        title: ticket.title.clone(),
        severity,
        coverage: ticket
            .coverage
            .and_then(|c| serde_json::to_value(c).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        occurrence: ticket.occurrence.unwrap_or(1),
        replacement_recommended: ticket.replacement_recommended,
        sla,
    }
}

/// The archive entry of a fault transition; `entry` is the request built for it.
pub(super) fn archive_fault(t: &Transition, entry: &OutboxEntry) -> ArchiveEntry {
    let ticket_id = entry.ticket_id().to_owned();
    let event = match (t, &entry.request) {
        (Transition::Opened { severity, .. }, Request::Open { ticket }) => {
            fault_opened(ticket, *severity)
        }
        (Transition::Escalated { code, severity, .. }, _) => {
            ArchiveEvent::FaultEscalated { ticket_id, code: code.clone(), severity: *severity }
        }
        (Transition::Recurred { code, count, .. }, _) => {
            ArchiveEvent::FaultRecurred { ticket_id, code: code.clone(), count: *count }
        }
        (t, _) => ArchiveEvent::FaultRecovered { ticket_id, code: t.code().to_owned() },
    };
    ArchiveEntry { at_ms: t.at(), event }
}

fn opened_entry(entry: &OutboxEntry, plan: &Plan, occ: &Occurrence) -> ArchiveEntry {
    ArchiveEntry {
        at_ms: occ.opened_ms,
        event: ArchiveEvent::InspectionOpened {
            ticket_id: entry.ticket_id().to_owned(),
            plan: plan.id.clone(),
            title: plan.title.clone(),
            due_ms: occ.due_ms,
            trigger: occ.trigger.as_str().to_owned(),
        },
    }
}

impl Core {
    fn scheduling(&self) -> Scheduling<'_> {
        Scheduling { calendar: &self.site.calendar, lead: self.lead }
    }

    /// Sets up the schedules of plans the device has no state for yet (first start,
    /// or a plan added by a new plugin version or config).
    pub(super) fn start_schedules(&mut self, id: &str, start_ms: i64) {
        let (Some(ctx), Some(rec)) = (self.devices.get(id), self.records.get_mut(id)) else {
            return;
        };
        let s = Scheduling { calendar: &self.site.calendar, lead: self.lead };
        for plan in &ctx.plans {
            if rec.inspections.contains_key(&plan.id) {
                continue;
            }
            match s.start(plan, ctx.inventory.commissioned, start_ms) {
                Ok(state) => {
                    rec.inspections.insert(plan.id.clone(), state);
                    mark(&mut self.dirty, id);
                }
                Err(e) => tracing::error!(device = id, plan = %plan.id, "{e}"),
            }
        }
    }

    /// Brings the device's inspection schedules up to `now`: opens inspection
    /// tickets and reports overdue ones.
    pub(super) fn inspect(&mut self, id: &str, now: i64, batch: &mut Batch) {
        let Some(ctx) = self.devices.get(id) else { return };
        let mut actions: Vec<(usize, Action, Option<f64>)> = Vec::new();
        if let Some(rec) = self.records.get_mut(id) {
            let s = Scheduling { calendar: &self.site.calendar, lead: self.lead };
            for (i, plan) in ctx.plans.iter().enumerate() {
                let Some(state) = rec.inspections.get_mut(&plan.id) else { continue };
                // An opening can be overdue at once (a long gap): at most two steps.
                for _ in 0..2 {
                    match s.advance(plan, state, &rec.meters, now) {
                        Ok(Some(a)) => actions.push((i, a, state.meter_base)),
                        Ok(None) => break,
                        Err(e) => {
                            tracing::error!(device = id, plan = %plan.id, "{e}");
                            break;
                        }
                    }
                }
            }
        }
        if actions.is_empty() {
            return;
        }
        mark(&mut self.dirty, id);
        let downtime = self.records.get(id).map(|r| r.downtime_until(now)).unwrap_or_default();
        let facts = DeviceFacts {
            inventory: &ctx.inventory,
            warranty: &ctx.warranty,
            downtime: &downtime,
            next_inspection: None,
        };
        for (i, action, base) in actions {
            let Some(plan) = ctx.plans.get(i) else { continue };
            match action {
                Action::Open(occ) => {
                    let entry = builder::inspection_opened(&self.site, &facts, plan, &occ, base);
                    tracing::info!(device = id, plan = %plan.id, ticket = entry.ticket_id(), "inspection due");
                    batch.archive.push((id.to_owned(), opened_entry(&entry, plan, &occ)));
                    let subject = TicketSubject::Inspection { plan: plan.id.clone() };
                    let held = TicketRef {
                        device: id.to_owned(),
                        subject,
                        number: None,
                        delivered: false,
                    };
                    batch.tickets.push((entry.ticket_id().to_owned(), Some(held)));
                    batch.outbox.push(entry);
                }
                Action::Overdue(occ) => {
                    let [event, report] =
                        builder::inspection_overdue(&self.site, &facts, plan, &occ);
                    tracing::warn!(device = id, plan = %plan.id, ticket = event.ticket_id(), "inspection overdue");
                    batch.archive.push((
                        id.to_owned(),
                        ArchiveEntry {
                            at_ms: occ.due_ms,
                            event: ArchiveEvent::InspectionOverdue {
                                ticket_id: event.ticket_id().to_owned(),
                                plan: plan.id.clone(),
                                due_ms: occ.due_ms,
                            },
                        },
                    ));
                    if let Request::Open { ticket } = &report.request {
                        let fault = fault_opened(ticket, builder::OVERDUE_SEVERITY);
                        let entry = ArchiveEntry { at_ms: occ.due_ms, event: fault };
                        batch.archive.push((id.to_owned(), entry));
                        let subject = TicketSubject::InspectionOverdue { plan: plan.id.clone() };
                        let held = TicketRef {
                            device: id.to_owned(),
                            subject,
                            number: None,
                            delivered: false,
                        };
                        batch.tickets.push((ticket.ticket_id.clone(), Some(held)));
                    }
                    batch.outbox.push(event);
                    batch.outbox.push(report);
                }
            }
        }
    }

    /// Records a completed inspection of `plan` at `at_ms`: the schedule restarts,
    /// an overdue report is cleared, the archive notes it. `ticket_id`: the ticket
    /// staff closed (the central sync); `None` for a local completion, which closes
    /// the open inspection ticket, if any, at the central service.
    pub(super) fn complete(
        &mut self,
        device: &str,
        plan_id: &str,
        at_ms: i64,
        ticket_id: Option<&str>,
        note: Option<&str>,
        batch: &mut Batch,
    ) -> bool {
        let Some(ctx) = self.devices.get(device) else { return false };
        let Some(plan) = ctx.plans.iter().find(|p| p.id == plan_id) else { return false };
        let Some(rec) = self.records.get_mut(device) else { return false };
        let Some(state) = rec.inspections.get_mut(plan_id) else { return false };
        let s = Scheduling { calendar: &self.site.calendar, lead: self.lead };
        if let (Some(closed), Some(open)) = (ticket_id, &state.open) {
            let current =
                builder::inspection_ticket_id(&self.site.site, device, plan_id, open.number);
            if closed != current {
                // A ticket of an earlier occurrence: its completion was recorded already.
                return false;
            }
        }
        let open = match s.complete(plan, state, &rec.meters, at_ms) {
            Ok(open) => open,
            Err(e) => {
                tracing::error!(device, plan = plan_id, "{e}");
                return false;
            }
        };
        mark(&mut self.dirty, device);
        let local = ticket_id.is_none();
        let ticket = open
            .as_ref()
            .map(|o| builder::inspection_ticket_id(&self.site.site, device, plan_id, o.number));
        batch.archive.push((
            device.to_owned(),
            ArchiveEntry {
                at_ms,
                event: ArchiveEvent::InspectionCompleted {
                    plan: plan_id.to_owned(),
                    ticket_id: ticket.clone(),
                    source: if local { "local" } else { "central" }.to_owned(),
                    note: note.map(str::to_owned),
                    meters: rec.meters.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                },
            },
        ));
        if let Some(o) = &open {
            if o.overdue {
                batch.outbox.push(builder::overdue_cleared(&self.site, device, plan_id, o, at_ms));
            }
            if local && let Some(t) = ticket {
                let close =
                    builder::inspection_closed_locally(&self.site, device, plan_id, o, at_ms, note);
                batch.outbox.push(close);
                batch.tickets.push((t, None));
            }
        }
        true
    }

    /// `tend inspection complete`: site staff recorded a visit locally. Closes the
    /// open inspection ticket at the central service and restarts the schedule.
    pub fn inspection_completed(
        &mut self,
        device: &str,
        plan: &str,
        at_ms: i64,
        note: Option<&str>,
        out: &mut dyn Commit,
    ) -> Result<(), CompleteError> {
        let ctx =
            self.devices.get(device).ok_or_else(|| CompleteError::UnknownDevice(device.into()))?;
        if !ctx.plans.iter().any(|p| p.id == plan) {
            let known = ctx.plans.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ");
            return Err(CompleteError::UnknownPlan {
                device: device.into(),
                plan: plan.into(),
                known,
            });
        }
        let mut batch = Batch::default();
        self.complete(device, plan, at_ms, None, note, &mut batch);
        self.reschedule(device);
        Ok(self.finish(batch, out)?)
    }

    /// The device's next planned inspection (ms), for level-4 SLA targets.
    pub(super) fn next_inspection(&self, id: &str) -> Option<i64> {
        let (ctx, rec) = (self.devices.get(id)?, self.records.get(id)?);
        let s = self.scheduling();
        ctx.plans.iter().filter_map(|p| s.next_due(p, rec.inspections.get(&p.id)?)).min()
    }

    /// The device archive of the site (or of one device), as of `now_ms`; `history`
    /// reads a device's archive entries from the store.
    pub fn archive(
        &self,
        device: Option<&str>,
        now_ms: i64,
        history: &dyn Fn(&str) -> Result<Vec<ArchiveEntry>, StoreError>,
    ) -> Result<SiteArchive, StoreError> {
        let s = self.scheduling();
        let tz = self.site.calendar.time_zone();
        let mut devices = Vec::new();
        for inv in &self.inventory_order {
            if device.is_some_and(|d| d != inv) {
                continue;
            }
            let (Some(ctx), Some(rec)) = (self.devices.get(inv), self.records.get(inv)) else {
                continue;
            };
            let d = &ctx.inventory;
            let downtime = rec.downtime_until(now_ms);
            let base = warranty::expiring_within(
                jiff::civil::Date::MIN,
                u32::MAX,
                d.commissioned,
                &ctx.warranty,
                0,
            );
            let warranty = base
                .into_iter()
                .map(|e| {
                    let days = warranty::downtime_extension_days(&downtime, e.ends, tz);
                    WarrantyLine {
                        until: Span::Days(days).after(e.ends).unwrap_or(e.ends),
                        base_until: e.ends,
                        component: e.component,
                    }
                })
                .collect();
            // All level-1 time, whole days rounded up (what extends a warranty that
            // is still running; each component's line shows its own extension).
            let down_ms: i64 = downtime.iter().map(|(a, b)| (b - a).max(0)).sum();
            let downtime_days =
                u32::try_from((down_ms + 86_399_999) / 86_400_000).unwrap_or(u32::MAX);
            let inspections = ctx
                .plans
                .iter()
                .map(|p| {
                    let st: Option<&PlanState> = rec.inspections.get(&p.id);
                    PlanStatus {
                        plan: p.id.clone(),
                        title: p.title.clone(),
                        every: p.every.map(|e| e.to_string()),
                        meter: p.meter.as_ref().map(|t| match t.rule {
                            MeterRule::Every(x) => format!("{} every {x}", t.meter),
                            MeterRule::Reaches(x) => format!("{} reaches {x}", t.meter),
                        }),
                        next_due_ms: st.and_then(|st| s.next_due(p, st)),
                        open: st.and_then(|st| {
                            let o = st.open.as_ref()?;
                            let id = builder::inspection_ticket_id(
                                &self.site.site,
                                inv,
                                &p.id,
                                o.number,
                            );
                            Some((id, o.due_ms))
                        }),
                        overdue: st.and_then(|st| st.open.as_ref()).is_some_and(|o| o.overdue),
                        last_completed_ms: st.and_then(|st| st.last_completed_ms),
                    }
                })
                .collect();
            let open_faults = rec
                .alarms
                .open_episodes()
                .map(|(code, e)| OpenFault {
                    code: code.to_owned(),
                    ticket_id: rec.open_tickets.get(code).map(|(t, _)| t.clone()).unwrap_or_else(
                        || builder::episode_ticket_id(&self.site.site, inv, code, e.number()),
                    ),
                    severity: e.severity(),
                    opened_ms: e.opened_at(),
                    phase: match e.phase() {
                        Phase::Active { .. } => "active",
                        Phase::Clearing { .. } => "clearing",
                        Phase::Recovered { .. } => "recovered",
                    }
                    .to_owned(),
                })
                .collect();
            let seen = rec.alarms.last_seen();
            devices.push(DeviceArchive {
                device: ArchiveFacts {
                    id: d.id.clone(),
                    equipment_type: d.equipment_type.clone(),
                    model: d.model.clone(),
                    serial: d.serial.clone(),
                    location: d.location.clone(),
                    purpose: d.purpose.clone(),
                    manufactured: d.manufactured,
                    commissioned: d.commissioned,
                    contract_until: d.contract_until,
                },
                last_seen_ms: (!rec.recent.is_empty()).then_some(seen),
                offline_since_ms: rec.alarms.offline_since(),
                open_faults,
                meters: rec.meters.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                downtime_days,
                warranty,
                inspections,
                history: history(inv)?,
                maintenance: self
                    .site_alarms
                    .windows
                    .get(inv)
                    .filter(|_| self.site_alarms.windows.under(inv))
                    .map(|w| crate::store::archive::MaintenanceNow {
                        since_ms: w.since,
                        until_ms: w.declared.as_ref().map(|d| d.until),
                        inspections: w.inspections.iter().cloned().collect(),
                        note: w.declared.as_ref().and_then(|d| d.note.clone()),
                        suppressed: w.held.keys().cloned().collect(),
                    }),
            });
        }
        Ok(SiteArchive {
            site: self.site.site.clone(),
            timezone: tz.iana_name().unwrap_or("UTC").to_owned(),
            generated_ms: now_ms,
            devices,
            site_history: if device.is_none() { history(&self.site.site)? } else { Vec::new() },
        })
    }
}

/// Follows whether the device is out of service (a level-1 fault active or
/// clearing), transition by transition, and records the periods: the warranty's
/// downtime extension. `closed`: a fault ticket closed at that time.
pub(super) fn track_downtime(
    rec: &mut DeviceRecord,
    id: &str,
    transitions: &[Transition],
    closed: Option<(&str, i64)>,
    batch: &mut Batch,
) {
    let critical =
        |code: &str| rec.alarms.open_episodes().any(|(c, e)| c == code && e.severity() == 1);
    let mut changes: Vec<(&str, bool, i64)> = Vec::new();
    for t in transitions {
        match t {
            Transition::Opened { code, severity: 1, at, .. }
            | Transition::Escalated { code, severity: 1, at, .. } => {
                changes.push((code, true, *at))
            }
            Transition::Recurred { code, at, .. } if critical(code) => {
                changes.push((code, true, *at))
            }
            Transition::Recovered { code, at, .. } => changes.push((code, false, *at)),
            _ => {}
        }
    }
    if let Some((code, at)) = closed {
        changes.push((code, false, at));
    }
    for (code, down, at) in changes {
        let was_down = !rec.down_codes.is_empty();
        if down {
            rec.down_codes.insert(code.to_owned());
        } else {
            rec.down_codes.remove(code);
        }
        match (was_down, rec.down_codes.is_empty()) {
            (false, false) => {
                rec.down_since = Some(at);
                let event = ArchiveEvent::DowntimeStarted { code: code.to_owned() };
                batch.archive.push((id.to_owned(), ArchiveEntry { at_ms: at, event }));
            }
            (true, true) => {
                let since = rec.down_since.take().unwrap_or(at);
                let end = at.max(since);
                rec.downtime.push((since, end));
                let event = ArchiveEvent::DowntimeEnded { duration_ms: end - since };
                batch.archive.push((id.to_owned(), ArchiveEntry { at_ms: end, event }));
            }
            _ => {}
        }
    }
}
