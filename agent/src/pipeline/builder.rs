//! The ticket builder: alarm transitions -> central API requests, with SLA due times
//! on the site calendar, coverage, the repeat-fault rule, diagnosis and evidence.
//! Pure: everything it needs is passed in.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::alarms::Transition;
use crate::alarms::site::{SITE_OUTAGE, SITE_OUTAGE_SEVERITY};
use crate::ingest::event_time::{EARLIEST_MS, LATEST_MS};
use crate::maintenance::calendar::BusinessCalendar;
use crate::maintenance::inspection::{MeterRule, Occurrence, Plan, Trigger};
use crate::maintenance::sla::SlaTable;
use crate::maintenance::warranty::{self, WarrantyTerms};
use crate::plugins::bindings::{Category, Condition};
use crate::store::{OutboxEntry, Request};
use crate::tickets::model::{
    CloseRequest, Coverage, Device as WireDevice, Diagnosis, EventKind, Evidence, FaultCategory,
    NewTicket, Sla, TicketEvent, TicketKind, WireTime,
};

/// The site-wide facts every ticket needs.
pub struct SiteFacts {
    /// Site name.
    pub site: String,
    /// Business calendar (and time zone).
    pub calendar: BusinessCalendar,
    /// SLA targets.
    pub sla: SlaTable,
}

/// What the builder needs to know about a device.
pub struct DeviceFacts<'a> {
    /// Inventory entry.
    pub inventory: &'a crate::config::Device,
    /// Warranty terms (plugin defaults + inventory overrides).
    pub warranty: &'a WarrantyTerms,
    /// Level-1 periods (start, end) in ms so far, the current one included: the
    /// warranty's downtime extension.
    pub downtime: &'a [(i64, i64)],
    /// The device's next planned inspection (ms): level-4 faults are due then.
    pub next_inspection: Option<i64>,
}

impl DeviceFacts<'_> {
    /// Downtime days extending the warranty of `component`.
    pub fn downtime_days(&self, component: &str, tz: &TimeZone) -> u32 {
        let inv = self.inventory;
        self.warranty
            .end_for(component, inv.commissioned, 0)
            .map_or(0, |end| warranty::downtime_extension_days(self.downtime, end, tz))
    }
}

/// What the builder needs to know about a fault code.
pub struct FaultFacts<'a> {
    /// Ticket title.
    pub title: &'a str,
    /// Warranty component.
    pub component: &'a str,
}

/// The idempotency key of a fault episode: `{site}/{device}/{code}/{episode}`.
pub fn episode_key(site: &str, device: &str, code: &str, episode: u32) -> String {
    format!("{site}/{device}/{code}/{episode}")
}

/// The ticket id of a fault episode (stable across retries and restarts; unique
/// across sites): `{site}.{device}.{code}.{episode}`.
pub fn episode_ticket_id(site: &str, device: &str, code: &str, episode: u32) -> String {
    format!("{site}.{device}.{code}.{episode}")
}

/// Formats event time for the wire, in the site's zone.
pub fn wire_time(ms: i64, tz: &TimeZone) -> WireTime {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    WireTime::from_timestamp(ts, tz.to_offset(ts))
}

/// The request(s) for one alarm transition. `condition` is what the plugin said about
/// the code on the message that caused it (absent for timer-driven transitions).
pub fn build(
    site: &SiteFacts,
    device: &DeviceFacts<'_>,
    fault: &FaultFacts<'_>,
    transition: &Transition,
    condition: Option<&Condition>,
) -> OutboxEntry {
    let tz = site.calendar.time_zone();
    let inv = device.inventory;
    let code = transition.code();
    let episode = transition.episode();
    let key = episode_key(&site.site, &inv.id, code, episode);
    let ticket_id = episode_ticket_id(&site.site, &inv.id, code, episode);
    let event = |kind: EventKind, suffix: String, at: i64, note: Option<String>| OutboxEntry {
        key: format!("{key}/{suffix}"),
        request: Request::Event {
            ticket_id: ticket_id.clone(),
            event: TicketEvent { kind, at: wire_time(at, tz), note },
        },
    };
    match transition {
        Transition::Opened { severity, at, closed_before, .. } => {
            let opened = Timestamp::from_millisecond(*at).unwrap_or(Timestamp::UNIX_EPOCH);
            let date = site.calendar.local_date(opened);
            let downtime = device.downtime_days(fault.component, tz);
            let in_warranty = warranty::in_warranty(
                date,
                inv.commissioned,
                fault.component,
                device.warranty,
                downtime,
            );
            let coverage = warranty::coverage(
                date,
                inv.commissioned,
                fault.component,
                device.warranty,
                inv.contract_until,
                downtime,
            );
            let occurrence = closed_before.saturating_add(1);
            let replace =
                warranty::replacement_recommended(occurrence, *closed_before, in_warranty);
            let mut description = condition
                .map(|c| c.summary.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| fault.title.to_owned());
            if replace {
                let until = device
                    .warranty
                    .end_for(fault.component, inv.commissioned, downtime)
                    .unwrap_or(inv.commissioned);
                description.push_str("\n\n");
                description.push_str(&warranty::replacement_reason(code, *closed_before, until));
            }
            let next = device.next_inspection.and_then(|ms| Timestamp::from_millisecond(ms).ok());
            let sla = site.sla.due(*severity, opened, &site.calendar, next).ok().map(|d| Sla {
                respond_by: Some(WireTime::from_timestamp(
                    d.respond_by,
                    tz.to_offset(d.respond_by),
                )),
                onsite_by: Some(WireTime::from_timestamp(d.onsite_by, tz.to_offset(d.onsite_by))),
                resolve_by: Some(WireTime::from_timestamp(
                    d.resolve_by,
                    tz.to_offset(d.resolve_by),
                )),
            });
            let ticket = NewTicket {
                ticket_id,
                kind: TicketKind::Fault,
                site: site.site.clone(),
                device: wire_device(inv),
                code: code.to_owned(),
                severity: Some(*severity),
                title: fault.title.to_owned(),
                description: Some(description),
                opened_at: wire_time(*at, tz),
                sla,
                coverage: Some(wire_coverage(coverage)),
                diagnosis: condition.and_then(|c| c.diagnosis.as_ref()).map(|d| Diagnosis {
                    probable_cause: Some(d.probable_cause.clone()),
                    category: Some(match d.category {
                        Category::Hardware => FaultCategory::Hardware,
                        Category::Software => FaultCategory::Software,
                    }),
                    suggested_parts: d.suggested_parts.clone(),
                }),
                checklist: vec![],
                due_at: None,
                evidence: condition
                    .map(|c| {
                        // A plugin's evidence time the wire cannot carry is dropped
                        // (the ticket still goes out; see `event_time::LATEST_MS`).
                        c.evidence
                            .iter()
                            .filter(|e| (EARLIEST_MS..=LATEST_MS).contains(&e.ts_ms))
                            .map(|e| Evidence {
                                ts: wire_time(e.ts_ms, tz),
                                field: e.field.clone(),
                                value: serde_json::Number::from_f64(e.value)
                                    .map(serde_json::Value::Number)
                                    .unwrap_or(serde_json::Value::Null),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                occurrence: Some(occurrence),
                replacement_recommended: replace,
            };
            OutboxEntry { key, request: Request::Open { ticket: Box::new(ticket) } }
        }
        Transition::Escalated { severity, at, .. } => event(
            EventKind::Escalated { severity: *severity },
            format!("escalated/{severity}"),
            *at,
            condition.map(|c| c.summary.clone()).filter(|s| !s.is_empty()),
        ),
        Transition::Recovered { at, .. } => {
            event(EventKind::Recovered, format!("recovered/{at}"), *at, None)
        }
        Transition::Recurred { count, at, .. } => event(
            EventKind::Recurred { count: *count },
            format!("recurred/{count}"),
            *at,
            condition.map(|c| c.summary.clone()).filter(|s| !s.is_empty()),
        ),
    }
}

/// The site's own ticket id for outage `number`: `{site}.{site}.site_outage.{number}`
/// (the site stands where a device would).
pub fn outage_ticket_id(site: &str, number: u32) -> String {
    episode_ticket_id(site, site, SITE_OUTAGE, number)
}

/// Local clock time of an event time, for ticket texts (`14:03`).
fn clock_time(ms: i64, tz: &TimeZone) -> String {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    tz.to_datetime(ts).strftime("%H:%M").to_string()
}

/// The `site_outage` ticket (maintenance.md section 8): level 1, interrupts service,
/// the site itself as the device, the devices affected as evidence.
/// `devices`: each device and when it went offline; `window_ms`: the rule's window.
pub fn outage_opened(
    site: &SiteFacts,
    number: u32,
    at: i64,
    devices: &[(String, i64)],
    site_devices: u32,
    window_ms: i64,
) -> OutboxEntry {
    let tz = site.calendar.time_zone();
    let key = episode_key(&site.site, &site.site, SITE_OUTAGE, number);
    let opened = Timestamp::from_millisecond(at).unwrap_or(Timestamp::UNIX_EPOCH);
    let sla = site.sla.due(SITE_OUTAGE_SEVERITY, opened, &site.calendar, None).ok().map(|d| Sla {
        respond_by: Some(WireTime::from_timestamp(d.respond_by, tz.to_offset(d.respond_by))),
        onsite_by: Some(WireTime::from_timestamp(d.onsite_by, tz.to_offset(d.onsite_by))),
        resolve_by: Some(WireTime::from_timestamp(d.resolve_by, tz.to_offset(d.resolve_by))),
    });
    let names: Vec<String> = devices
        .iter()
        .map(|(d, since)| format!("{d} (since {})", clock_time(*since, tz)))
        .collect();
    let description = format!(
        "{} of the site's {site_devices} devices went offline within {} s: {}. One cause, \
         one ticket: these devices get no device_offline ticket of their own while the \
         outage lasts (devices that go offline meanwhile join it). Probable cause: power, \
         network or the site's broker. The ticket gets `recovered` when fewer than the \
         threshold remain offline; a device still offline then gets its own ticket.",
        devices.len(),
        window_ms / 1000,
        names.join(", ")
    );
    let ticket = NewTicket {
        ticket_id: outage_ticket_id(&site.site, number),
        kind: TicketKind::Fault,
        site: site.site.clone(),
        device: WireDevice {
            id: site.site.clone(),
            device_type: "site".to_owned(),
            model: None,
            serial: None,
            location: None,
        },
        code: SITE_OUTAGE.to_owned(),
        severity: Some(SITE_OUTAGE_SEVERITY),
        title: format!("Site outage: {} devices offline at once", devices.len()),
        description: Some(description),
        opened_at: wire_time(at, tz),
        sla,
        coverage: None,
        diagnosis: Some(Diagnosis {
            probable_cause: Some(
                "many devices silent at once: power cut, network or broker failure".to_owned(),
            ),
            category: Some(FaultCategory::Hardware),
            suggested_parts: vec![],
        }),
        checklist: vec![],
        due_at: None,
        evidence: devices
            .iter()
            .filter(|(_, since)| (EARLIEST_MS..=LATEST_MS).contains(since))
            .map(|(d, since)| Evidence {
                ts: wire_time(*since, tz),
                field: "device_offline".to_owned(),
                value: serde_json::Value::String(d.clone()),
            })
            .collect(),
        occurrence: Some(number),
        replacement_recommended: false,
    };
    OutboxEntry { key, request: Request::Open { ticket: Box::new(ticket) } }
}

/// `recovered` on the site's outage ticket, the note naming the devices still offline.
pub fn outage_recovered(
    site: &SiteFacts,
    number: u32,
    at: i64,
    devices: usize,
    still_offline: &[String],
) -> OutboxEntry {
    let tz = site.calendar.time_zone();
    let key = episode_key(&site.site, &site.site, SITE_OUTAGE, number);
    let note = if still_offline.is_empty() {
        format!("All {devices} devices of the outage are back online.")
    } else {
        format!(
            "{} of the outage's {devices} devices are back online; still offline: {} (each \
             now gets its own device_offline ticket).",
            devices.saturating_sub(still_offline.len()),
            still_offline.join(", ")
        )
    };
    OutboxEntry {
        key: format!("{key}/recovered/{at}"),
        request: Request::Event {
            ticket_id: outage_ticket_id(&site.site, number),
            event: TicketEvent {
                kind: EventKind::Recovered,
                at: wire_time(at, tz),
                note: Some(note),
            },
        },
    }
}

/// The host's code for the level-3 report of an overdue inspection.
pub const INSPECTION_OVERDUE: &str = "inspection_overdue";

/// Severity of an overdue inspection (maintenance.md section 3).
pub const OVERDUE_SEVERITY: u8 = 3;

/// The ticket id of an inspection occurrence: `{site}.{device}.inspection.{plan}.{n}`.
pub fn inspection_ticket_id(site: &str, device: &str, plan: &str, n: u32) -> String {
    format!("{site}.{device}.inspection.{plan}.{n}")
}

/// The ticket id of an overdue inspection's report:
/// `{site}.{device}.inspection_overdue.{plan}.{n}`.
pub fn overdue_ticket_id(site: &str, device: &str, plan: &str, n: u32) -> String {
    format!("{site}.{device}.{INSPECTION_OVERDUE}.{plan}.{n}")
}

fn inspection_key(site: &str, device: &str, plan: &str, n: u32) -> String {
    format!("{site}/{device}/inspection/{plan}/{n}")
}

fn wire_device(inv: &crate::config::Device) -> WireDevice {
    WireDevice {
        id: inv.id.clone(),
        device_type: inv.equipment_type.clone(),
        model: Some(inv.model.clone()),
        serial: Some(inv.serial.clone()),
        location: Some(inv.location.clone()),
    }
}

fn local_date(ms: i64, tz: &TimeZone) -> jiff::civil::Date {
    let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
    tz.to_datetime(ts).date()
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x:.1}") }
}

/// Why an inspection is called for, for the ticket's description.
fn inspection_reason(
    device: &DeviceFacts<'_>,
    plan: &Plan,
    occ: &Occurrence,
    meter_base: Option<f64>,
    tz: &TimeZone,
) -> String {
    let due = local_date(occ.due_ms, tz);
    match (occ.trigger, &plan.meter, occ.meter_value) {
        (Trigger::Meter, Some(t), Some(value)) => {
            let rule = match (t.rule, meter_base) {
                (MeterRule::Every(x), Some(base)) => format!(
                    "an inspection every {} since the last one (counted from {})",
                    number(x),
                    number(base)
                ),
                (MeterRule::Every(x), None) => format!("an inspection every {}", number(x)),
                (MeterRule::Reaches(x), _) => {
                    format!("an inspection when it reaches {}", number(x))
                }
            };
            format!(
                "Meter `{}` reads {}: the plan calls for {rule}. Due {due}.",
                t.meter,
                number(value)
            )
        }
        _ => {
            let commissioned = device.inventory.commissioned;
            let from = if occ.after_completion {
                format!("the last inspection on {}", occ.anchor)
            } else if occ.anchor == commissioned {
                format!("commissioning on {commissioned}")
            } else {
                // The first-start rule: earlier cycles are assumed done on schedule.
                format!("{} (commissioned {commissioned}, earlier cycles assumed done)", occ.anchor)
            };
            let every = plan.every.map(|s| s.to_string()).unwrap_or_default();
            format!("Due {due}: every {every}, counted from {from}.")
        }
    }
}

/// The ticket of an inspection that opened.
pub fn inspection_opened(
    site: &SiteFacts,
    device: &DeviceFacts<'_>,
    plan: &Plan,
    occ: &Occurrence,
    meter_base: Option<f64>,
) -> OutboxEntry {
    let tz = site.calendar.time_zone();
    let inv = device.inventory;
    let ticket = NewTicket {
        ticket_id: inspection_ticket_id(&site.site, &inv.id, &plan.id, occ.number),
        kind: TicketKind::Inspection,
        site: site.site.clone(),
        device: wire_device(inv),
        code: plan.id.clone(),
        severity: None,
        title: plan.title.clone(),
        description: Some(inspection_reason(device, plan, occ, meter_base, tz)),
        opened_at: wire_time(occ.opened_ms, tz),
        sla: None,
        coverage: None,
        diagnosis: None,
        checklist: plan.checklist.to_vec(),
        due_at: Some(wire_time(occ.due_ms, tz)),
        evidence: vec![],
        occurrence: None,
        replacement_recommended: false,
    };
    OutboxEntry {
        key: inspection_key(&site.site, &inv.id, &plan.id, occ.number),
        request: Request::Open { ticket: Box::new(ticket) },
    }
}

/// An inspection past due: an `overdue` event on its ticket, and a level-3 fault
/// ticket that reports it (maintenance.md section 3: "an overdue inspection is
/// itself reported (level 3)"), so it gets a response time of its own. Both are
/// dated at the due time.
pub fn inspection_overdue(
    site: &SiteFacts,
    device: &DeviceFacts<'_>,
    plan: &Plan,
    occ: &Occurrence,
) -> [OutboxEntry; 2] {
    let tz = site.calendar.time_zone();
    let inv = device.inventory;
    let ticket_id = inspection_ticket_id(&site.site, &inv.id, &plan.id, occ.number);
    let key = inspection_key(&site.site, &inv.id, &plan.id, occ.number);
    let due = wire_time(occ.due_ms, tz);
    let note = format!("Not completed by its due time {due}.");
    let event = OutboxEntry {
        key: format!("{key}/overdue"),
        request: Request::Event {
            ticket_id: ticket_id.clone(),
            event: TicketEvent { kind: EventKind::Overdue, at: due.clone(), note: Some(note) },
        },
    };
    let at = Timestamp::from_millisecond(occ.due_ms).unwrap_or(Timestamp::UNIX_EPOCH);
    let sla = site.sla.due(OVERDUE_SEVERITY, at, &site.calendar, None).ok().map(|d| Sla {
        respond_by: Some(WireTime::from_timestamp(d.respond_by, tz.to_offset(d.respond_by))),
        onsite_by: Some(WireTime::from_timestamp(d.onsite_by, tz.to_offset(d.onsite_by))),
        resolve_by: Some(WireTime::from_timestamp(d.resolve_by, tz.to_offset(d.resolve_by))),
    });
    // The device as a whole: under warranty while any of its components is (the
    // visit is owed free then), else under its contract, else billable.
    let date = site.calendar.local_date(at);
    let components: Vec<&str> = device.warranty.components().map(|(c, _)| c).collect();
    let component = components
        .iter()
        .copied()
        .chain([warranty::ALL])
        .max_by_key(|c| device.warranty.end_for(c, inv.commissioned, device.downtime_days(c, tz)))
        .unwrap_or(warranty::MAIN_UNIT);
    let downtime = device.downtime_days(component, tz);
    let coverage = warranty::coverage(
        date,
        inv.commissioned,
        component,
        device.warranty,
        inv.contract_until,
        downtime,
    );
    let report = NewTicket {
        ticket_id: overdue_ticket_id(&site.site, &inv.id, &plan.id, occ.number),
        kind: TicketKind::Fault,
        site: site.site.clone(),
        device: wire_device(inv),
        code: INSPECTION_OVERDUE.to_owned(),
        severity: Some(OVERDUE_SEVERITY),
        title: format!("Inspection overdue: {}", plan.title),
        description: Some(format!(
            "The inspection `{}` (ticket {ticket_id}) was due {due} and has not been completed. \
             {}",
            plan.id,
            inspection_reason(device, plan, occ, None, tz)
        )),
        opened_at: due,
        sla,
        coverage: Some(wire_coverage(coverage)),
        diagnosis: None,
        checklist: plan.checklist.to_vec(),
        due_at: None,
        evidence: vec![],
        occurrence: Some(1),
        replacement_recommended: false,
    };
    let open = OutboxEntry {
        key: format!("{key}/overdue-report"),
        request: Request::Open { ticket: Box::new(report) },
    };
    [event, open]
}

/// The overdue report's condition cleared: the inspection was completed.
pub fn overdue_cleared(
    site: &SiteFacts,
    device: &str,
    plan: &str,
    occ: &Occurrence,
    at_ms: i64,
) -> OutboxEntry {
    let tz = site.calendar.time_zone();
    OutboxEntry {
        key: format!(
            "{}/overdue-report/recovered",
            inspection_key(&site.site, device, plan, occ.number)
        ),
        request: Request::Event {
            ticket_id: overdue_ticket_id(&site.site, device, plan, occ.number),
            event: TicketEvent {
                kind: EventKind::Recovered,
                at: wire_time(at_ms, tz),
                note: Some("The inspection was completed.".into()),
            },
        },
    }
}

/// Closes an inspection's ticket for work recorded at the site.
pub fn inspection_closed_locally(
    site: &SiteFacts,
    device: &str,
    plan: &str,
    occ: &Occurrence,
    at_ms: i64,
    note: Option<&str>,
) -> OutboxEntry {
    let tz = site.calendar.time_zone();
    let mut resolution =
        "Inspection completed on site (recorded with `tend inspection complete`)".to_owned();
    if let Some(note) = note.filter(|n| !n.trim().is_empty()) {
        resolution.push_str(": ");
        resolution.push_str(note.trim());
    }
    OutboxEntry {
        key: format!("{}/close", inspection_key(&site.site, device, plan, occ.number)),
        request: Request::Close {
            ticket_id: inspection_ticket_id(&site.site, device, plan, occ.number),
            close: CloseRequest { resolution, closed_at: wire_time(at_ms, tz) },
        },
    }
}

fn wire_coverage(c: warranty::Coverage) -> Coverage {
    match c {
        warranty::Coverage::Warranty => Coverage::Warranty,
        warranty::Coverage::Contract => Coverage::Contract,
        warranty::Coverage::Billable => Coverage::Billable,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Found by the `ticket_builder` fuzz target (an event in year -4651 was written
    /// as `-004651-11-24T17:36:56.28+08:06`): every time the ingest accepts, plus the
    /// longest hold after it, goes on the wire as RFC 3339 that reads back.
    #[test]
    fn wire_time_of_any_accepted_event_time_reads_back() {
        for zone in ["Asia/Shanghai", "America/Los_Angeles", "Pacific/Kiritimati", "UTC"] {
            let tz = TimeZone::get(zone).unwrap();
            for ms in [EARLIEST_MS, 1, LATEST_MS, LATEST_MS + 12 * 3_600_000] {
                let wire = serde_json::to_value(wire_time(ms, &tz)).unwrap();
                let back: WireTime = serde_json::from_value(wire.clone())
                    .unwrap_or_else(|e| panic!("{zone} {ms}: {wire} does not read back: {e}"));
                assert_eq!(back.as_str(), wire.as_str().unwrap());
            }
        }
    }

    /// Found by the `ticket_builder` fuzz target: `closed_before + 1` overflowed
    /// (a panic in debug builds, occurrence 0 in release).
    #[test]
    fn an_opening_after_u32_max_closed_episodes_is_built() {
        let read = |_: &std::path::Path| Ok(crate::config::EXAMPLE_INVENTORY.to_owned());
        let env = |_: &str| None;
        let sources = crate::config::Sources {
            env: &env,
            read: &read,
            today: jiff::civil::date(2026, 11, 24),
        };
        let text = include_str!("../../../configs/agent.toml");
        let config = crate::config::Config::from_str(
            text,
            std::path::Path::new("/site/agent.toml"),
            &sources,
        )
        .unwrap();
        let site = crate::pipeline::site_facts(&config).unwrap();
        let device = &config.inventory.devices[0];
        let warranty = WarrantyTerms::default();
        let facts = DeviceFacts {
            inventory: device,
            warranty: &warranty,
            downtime: &[],
            next_inspection: None,
        };
        let fault = FaultFacts { title: "Fault", component: "main_unit" };
        let opened = Transition::Opened {
            code: "overheat".into(),
            episode: 1,
            severity: 2,
            at: 1_795_312_800_000,
            closed_before: u32::MAX,
        };
        let entry = build(&site, &facts, &fault, &opened, None);
        assert_eq!(entry.body()["occurrence"], u32::MAX);
    }
}
