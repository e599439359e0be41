//! The ticket builder: alarm transitions -> central API requests, with SLA due times
//! on the site calendar, coverage, the repeat-fault rule, diagnosis and evidence.
//! Pure: everything it needs is passed in.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::alarms::Transition;
use crate::maintenance::calendar::BusinessCalendar;
use crate::maintenance::sla::SlaTable;
use crate::maintenance::warranty::{self, WarrantyTerms};
use crate::plugins::bindings::{Category, Condition};
use crate::store::{OutboxEntry, Request};
use crate::tickets::model::{
    Coverage, Device as WireDevice, Diagnosis, EventKind, Evidence, FaultCategory, NewTicket, Sla,
    TicketEvent, TicketKind, WireTime,
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
            let in_warranty =
                warranty::in_warranty(date, inv.commissioned, fault.component, device.warranty, 0);
            let coverage = warranty::coverage(
                date,
                inv.commissioned,
                fault.component,
                device.warranty,
                inv.contract_until,
                0,
            );
            let occurrence = closed_before + 1;
            let replace =
                warranty::replacement_recommended(occurrence, *closed_before, in_warranty);
            let mut description = condition
                .map(|c| c.summary.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| fault.title.to_owned());
            if replace {
                let until = device
                    .warranty
                    .end_for(fault.component, inv.commissioned, 0)
                    .unwrap_or(inv.commissioned);
                description.push_str("\n\n");
                description.push_str(&warranty::replacement_reason(code, *closed_before, until));
            }
            let sla = site.sla.due(*severity, opened, &site.calendar, None).ok().map(|d| Sla {
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
                device: WireDevice {
                    id: inv.id.clone(),
                    device_type: inv.equipment_type.clone(),
                    model: Some(inv.model.clone()),
                    serial: Some(inv.serial.clone()),
                    location: Some(inv.location.clone()),
                },
                code: code.to_owned(),
                severity: Some(*severity),
                title: fault.title.to_owned(),
                description: Some(description),
                opened_at: wire_time(*at, tz),
                sla,
                coverage: Some(match coverage {
                    warranty::Coverage::Warranty => Coverage::Warranty,
                    warranty::Coverage::Contract => Coverage::Contract,
                    warranty::Coverage::Billable => Coverage::Billable,
                }),
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
                        c.evidence
                            .iter()
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
