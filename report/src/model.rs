//! The register's content, computed from a [`SiteArchive`] and a [`Period`]; pure.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::period::{Period, RangeError};
use tend_agent::store::archive::{ArchiveEvent, DeviceArchive, SiteArchive, SlaTimes};

/// Warranty lines and contracts ending within this many days of the report's as-of
/// day are listed.
pub const WARRANTY_HORIZON_DAYS: i64 = 90;

/// Inspections due within this many days of generation are "due soon".
pub const DUE_SOON_DAYS: i64 = 30;

/// Level names, index 0 is level 1 (maintenance.md section 1).
pub const LEVEL_NAMES: [&str; 4] = ["critical", "major", "minor", "warning"];

/// The report could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The archive names a time zone jiff does not know.
    #[error("site time zone `{zone}` is not a known IANA time zone: {reason}")]
    TimeZone {
        /// The zone as the archive states it.
        zone: String,
        /// What jiff said.
        reason: String,
    },
    /// The period does not fit in the zone (far-future years).
    #[error(transparent)]
    Range(#[from] RangeError),
}

/// The operations register of one site for one period.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Site id.
    pub site: String,
    /// IANA time zone of the site; every date and time shown is in it.
    pub timezone: String,
    /// The period.
    pub period: Period,
    /// First instant of the period (ms).
    pub start_ms: i64,
    /// First instant after the period (ms).
    pub end_ms: i64,
    /// When the archive snapshot was taken (ms).
    pub generated_ms: i64,
    /// The moment the report describes: the end of the period, or the generation time
    /// when the period has not ended yet. Downtime still open counts up to it;
    /// warranty expiry is looked ahead from its day.
    pub as_of_ms: i64,
    /// Headline counts.
    pub summary: Summary,
    /// Every device, in inventory order, with its status now.
    pub devices: Vec<DeviceRow>,
    /// Fault tickets opened in the period, oldest first.
    pub faults: Vec<FaultRow>,
    /// Faults and SLA compliance per level 1..=4 (index 0 is level 1).
    pub levels: Vec<LevelStats>,
    /// Faults opened per ISO week (weeks overlapping the period), by level.
    pub weeks: Vec<WeekBucket>,
    /// Downtime per device in the period (devices with any).
    pub downtime: Vec<DowntimeRow>,
    /// Inspections per device and plan.
    pub inspections: Vec<InspectionRow>,
    /// Warranty lines and maintenance contracts ending soon.
    pub warranty: Vec<WarrantyRow>,
    /// Fault tickets recommending replacement: opened in the period, or still open.
    pub repeats: Vec<RepeatRow>,
    /// Site outages overlapping the period, oldest first (maintenance.md section 8).
    pub outages: Vec<OutageRow>,
    /// Maintenance windows overlapping the period, per device in inventory order.
    pub windows: Vec<WindowRow>,
    /// Oddities found in the archive (kept, counted as stated here).
    pub notes: Vec<String>,
    /// The site's zone, for formatting.
    #[serde(skip)]
    tz: TimeZone,
}

/// Headline counts of the register.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Devices in the inventory.
    pub devices: usize,
    /// Devices offline now.
    pub offline: usize,
    /// Devices with open fault tickets now.
    pub with_open_faults: usize,
    /// Fault tickets opened in the period.
    pub faults: usize,
    /// Of those, level 1 (final severity).
    pub critical: usize,
    /// SLA targets met (respond and resolve together).
    pub sla_met: u32,
    /// SLA targets judged: met, missed, or open past due (unknown and open-within
    /// are not judged yet).
    pub sla_judged: u32,
    /// Inspections completed in the period.
    pub inspections_done: u32,
    /// Inspections that were overdue at some time in the period.
    pub inspections_overdue: u32,
    /// Inspections due within [`DUE_SOON_DAYS`] of generation.
    pub inspections_due_soon: u32,
    /// Level-1 downtime in the period, all devices, hours.
    pub downtime_hours: f64,
}

impl Summary {
    /// Share of judged SLA targets that were met, 0..=100, if any was judged.
    pub fn sla_percent(&self) -> Option<f64> {
        percent(self.sla_met, self.sla_judged)
    }
}

/// Where a device stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Reporting, no open fault ticket.
    Ok,
    /// Reporting, with open fault tickets.
    Faults,
    /// Not reporting (the offline rule fired).
    Offline,
    /// Never published a message.
    NoData,
}

impl DeviceStatus {
    /// Short word for tables.
    pub fn label(self) -> &'static str {
        match self {
            DeviceStatus::Ok => "ok",
            DeviceStatus::Faults => "open faults",
            DeviceStatus::Offline => "offline",
            DeviceStatus::NoData => "no data",
        }
    }
}

/// One device's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceRow {
    /// Device id.
    pub id: String,
    /// Equipment type.
    pub equipment_type: String,
    /// Model.
    pub model: String,
    /// Location.
    pub location: String,
    /// Status now.
    pub status: DeviceStatus,
    /// Fault tickets open now.
    pub open_faults: usize,
    /// Worst severity among them.
    pub worst_open: Option<u8>,
    /// Last message (ms).
    pub last_seen_ms: Option<i64>,
    /// Offline since (ms).
    pub offline_since_ms: Option<i64>,
    /// Fault tickets opened in the period.
    pub faults_in_period: usize,
}

/// Outcome of one SLA target of one ticket, judged at generation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaStatus {
    /// Done at or before the due time.
    Met,
    /// Done after the due time.
    Missed,
    /// Not done, not yet due.
    OpenWithin,
    /// Not done and past due.
    OpenPastDue,
    /// The agent cannot tell (a response never observed by the sync).
    Unknown,
    /// The ticket carries no due time.
    NoTarget,
}

impl SlaStatus {
    /// Short words for tables.
    pub fn label(self) -> &'static str {
        match self {
            SlaStatus::Met => "met",
            SlaStatus::Missed => "missed",
            SlaStatus::OpenWithin => "open, within",
            SlaStatus::OpenPastDue => "open, past due",
            SlaStatus::Unknown => "unknown",
            SlaStatus::NoTarget => "no target",
        }
    }
}

/// Counts of SLA outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SlaCounts {
    /// Met.
    pub met: u32,
    /// Missed.
    pub missed: u32,
    /// Open, not yet due.
    pub open_within: u32,
    /// Open, past due.
    pub open_past_due: u32,
    /// Not observable.
    pub unknown: u32,
    /// No due time.
    pub no_target: u32,
}

impl SlaCounts {
    fn add(&mut self, s: SlaStatus) {
        match s {
            SlaStatus::Met => self.met += 1,
            SlaStatus::Missed => self.missed += 1,
            SlaStatus::OpenWithin => self.open_within += 1,
            SlaStatus::OpenPastDue => self.open_past_due += 1,
            SlaStatus::Unknown => self.unknown += 1,
            SlaStatus::NoTarget => self.no_target += 1,
        }
    }

    /// Targets with a verdict: met, missed, or open past due.
    pub fn judged(&self) -> u32 {
        self.met + self.missed + self.open_past_due
    }

    /// All tickets counted.
    pub fn total(&self) -> u32 {
        self.judged() + self.open_within + self.unknown + self.no_target
    }

    /// Share met among judged, 0..=100.
    pub fn percent(&self) -> Option<f64> {
        percent(self.met, self.judged())
    }
}

/// Faults and SLA of one level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LevelStats {
    /// 1..=4.
    pub level: u8,
    /// `critical`, `major`, `minor`, `warning`.
    pub name: &'static str,
    /// Fault tickets opened in the period with this final level.
    pub opened: u32,
    /// Respond target outcomes.
    pub respond: SlaCounts,
    /// Resolve target outcomes.
    pub resolve: SlaCounts,
}

/// One fault ticket opened in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRow {
    /// Device id.
    pub device: String,
    /// Ticket id.
    pub ticket_id: String,
    /// Fault code.
    pub code: String,
    /// Fault title.
    pub title: String,
    /// Final severity (after escalations), 1..=4.
    pub level: u8,
    /// Severity at opening.
    pub opened_level: u8,
    /// `warranty`, `contract` or `billable`.
    pub coverage: String,
    /// Occurrence of this code on this device.
    pub occurrence: u32,
    /// Replacement recommended.
    pub replacement_recommended: bool,
    /// Opened (ms).
    pub opened_ms: i64,
    /// First seen acknowledged by the sync (ms).
    pub acknowledged_ms: Option<i64>,
    /// Condition cleared (ms, last time).
    pub recovered_ms: Option<i64>,
    /// Closed at the central service (ms).
    pub closed_ms: Option<i64>,
    /// Due times.
    pub sla: Option<SlaTimes>,
    /// Respond outcome.
    pub respond: SlaStatus,
    /// Resolve outcome.
    pub resolve: SlaStatus,
}

/// Faults opened in one ISO week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeekBucket {
    /// ISO week-numbering year.
    pub iso_year: i16,
    /// ISO week 1..=53.
    pub week: i8,
    /// Monday of the week.
    pub monday: Date,
    /// Faults by final level (index 0 is level 1).
    pub by_level: [u32; 4],
}

impl WeekBucket {
    /// All faults of the week.
    pub fn total(&self) -> u32 {
        self.by_level.iter().sum()
    }
}

/// Downtime of one device in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DowntimeRow {
    /// Device id.
    pub device: String,
    /// Outages overlapping the period.
    pub outages: u32,
    /// Hours out of service within the period.
    pub hours: f64,
    /// Share of the elapsed period in service, 0..=100.
    pub availability: Option<f64>,
    /// Still out of service at the as-of moment.
    pub ongoing: bool,
}

/// Where an inspection plan stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanState {
    /// An open inspection is past due.
    Overdue,
    /// Due within [`DUE_SOON_DAYS`] of generation.
    DueSoon,
    /// Due later.
    Scheduled,
    /// No calendar due date known (meter-only plan with nothing open).
    Unscheduled,
}

impl PlanState {
    /// Short words for tables.
    pub fn label(self) -> &'static str {
        match self {
            PlanState::Overdue => "overdue",
            PlanState::DueSoon => "due soon",
            PlanState::Scheduled => "scheduled",
            PlanState::Unscheduled => "on meter",
        }
    }
}

/// One inspection plan of one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectionRow {
    /// Device id.
    pub device: String,
    /// Plan id.
    pub plan: String,
    /// Plan title.
    pub title: String,
    /// Completed in the period.
    pub done: u32,
    /// Of those, completed after their due time.
    pub late: u32,
    /// Inspections overdue at some time in the period.
    pub overdue: u32,
    /// Last completion (ms), any time.
    pub last_done_ms: Option<i64>,
    /// Next due (ms): the open inspection's, else the calendar's.
    pub next_due_ms: Option<i64>,
    /// State now.
    pub state: PlanState,
}

/// A warranty line or contract ending soon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WarrantyRow {
    /// Device id.
    pub device: String,
    /// Component, `all components` for a contract-wide grant, or
    /// `maintenance contract`.
    pub component: String,
    /// Last covered day (with the downtime extension).
    pub until: Date,
    /// Days the downtime extension added.
    pub extension_days: i64,
    /// Days from the as-of day to `until`.
    pub days_left: i64,
}

/// A fault ticket recommending replacement of the unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepeatRow {
    /// Device id.
    pub device: String,
    /// Ticket id.
    pub ticket_id: String,
    /// Fault code.
    pub code: String,
    /// Fault title.
    pub title: String,
    /// Occurrence of this code on this device.
    pub occurrence: u32,
    /// Opened (ms).
    pub opened_ms: i64,
    /// Closed (ms), if closed.
    pub closed_ms: Option<i64>,
}

/// Builds the register of `period` from a site archive.
///
/// Fault tickets belong to the period they opened in; their SLA outcome and final
/// severity use everything the archive knows at `generated_ms` (a Q3 ticket closed
/// in October counts as closed). Device status and plan states are as of generation.
pub fn build(archive: &SiteArchive, period: &Period) -> Result<Report, ReportError> {
    let tz = TimeZone::get(&archive.timezone).map_err(|e| ReportError::TimeZone {
        zone: archive.timezone.clone(),
        reason: e.to_string(),
    })?;
    let (start, end) = period.range(&tz)?;
    let (start_ms, end_ms) = (start.as_millisecond(), end.as_millisecond());
    let generated_ms = archive.generated_ms;
    let as_of_ms = end_ms.min(generated_ms);
    let mut notes = Vec::new();

    let mut faults = Vec::new();
    let mut repeats = Vec::new();
    let mut downtime = Vec::new();
    let mut inspections = Vec::new();
    let mut warranty = Vec::new();
    let outages = site_outages(archive, start_ms, end_ms, as_of_ms);
    let mut windows = Vec::new();
    for dev in &archive.devices {
        windows.extend(device_windows(dev, start_ms, end_ms));
        let tickets = fault_tickets(dev, generated_ms, &mut notes);
        for t in &tickets {
            let in_period = (start_ms..end_ms).contains(&t.opened_ms);
            if t.replacement_recommended && (in_period || t.closed_ms.is_none()) {
                repeats.push(RepeatRow {
                    device: t.device.clone(),
                    ticket_id: t.ticket_id.clone(),
                    code: t.code.clone(),
                    title: t.title.clone(),
                    occurrence: t.occurrence,
                    opened_ms: t.opened_ms,
                    closed_ms: t.closed_ms,
                });
            }
        }
        faults.extend(tickets.into_iter().filter(|t| (start_ms..end_ms).contains(&t.opened_ms)));
        if let Some(row) = device_downtime(dev, start_ms, end_ms, generated_ms, &mut notes) {
            downtime.push(row);
        }
        inspections.extend(device_inspections(dev, start_ms, end_ms, generated_ms));
        warranty.extend(device_warranty(dev, local_date(&tz, as_of_ms - 1)));
    }
    faults.sort_by(|a, b| (a.opened_ms, &a.device).cmp(&(b.opened_ms, &b.device)));
    repeats.sort_by(|a, b| (a.opened_ms, &a.device).cmp(&(b.opened_ms, &b.device)));
    warranty.sort_by(|a, b| (a.until, &a.device).cmp(&(b.until, &b.device)));

    let devices: Vec<DeviceRow> = archive
        .devices
        .iter()
        .map(|d| device_row(d, faults.iter().filter(|f| f.device == d.device.id).count()))
        .collect();
    let mut levels: Vec<LevelStats> = (1..=4u8)
        .map(|level| LevelStats {
            level,
            name: LEVEL_NAMES[usize::from(level - 1)],
            opened: 0,
            respond: SlaCounts::default(),
            resolve: SlaCounts::default(),
        })
        .collect();
    for f in &faults {
        let l = &mut levels[usize::from(f.level - 1)];
        l.opened += 1;
        l.respond.add(f.respond);
        l.resolve.add(f.resolve);
    }
    let weeks = week_buckets(&tz, period, &faults);

    let summary = Summary {
        devices: devices.len(),
        offline: devices.iter().filter(|d| d.status == DeviceStatus::Offline).count(),
        with_open_faults: devices.iter().filter(|d| d.open_faults > 0).count(),
        faults: faults.len(),
        critical: faults.iter().filter(|f| f.level == 1).count(),
        sla_met: levels.iter().map(|l| l.respond.met + l.resolve.met).sum(),
        sla_judged: levels.iter().map(|l| l.respond.judged() + l.resolve.judged()).sum(),
        inspections_done: inspections.iter().map(|i| i.done).sum(),
        inspections_overdue: inspections.iter().map(|i| i.overdue).sum(),
        inspections_due_soon: inspections
            .iter()
            .filter(|i| i.state == PlanState::DueSoon)
            .count()
            .try_into()
            .unwrap_or(u32::MAX),
        downtime_hours: downtime.iter().map(|d| d.hours).sum(),
    };

    Ok(Report {
        site: archive.site.clone(),
        timezone: archive.timezone.clone(),
        period: *period,
        start_ms,
        end_ms,
        generated_ms,
        as_of_ms,
        summary,
        devices,
        faults,
        levels,
        weeks,
        downtime,
        inspections,
        warranty,
        repeats,
        outages,
        windows,
        notes,
        tz,
    })
}

/// One site outage: one `site_outage` ticket for many devices offline at once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutageRow {
    /// The `site_outage` ticket.
    pub ticket_id: String,
    /// When it opened (ms).
    pub started_ms: i64,
    /// When it recovered (ms); `None` while it lasts.
    pub ended_ms: Option<i64>,
    /// Its length up to its end or the report's moment, hours.
    pub hours: f64,
    /// The devices in it (the ones that joined included).
    pub devices: Vec<String>,
    /// The devices still offline when it ended.
    pub still_offline: Vec<String>,
}

/// One maintenance window of a device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowRow {
    /// Device id.
    pub device: String,
    /// `declared` (site staff) or `inspection` (an inspection ticket in progress).
    pub source: String,
    /// When it started (ms).
    pub started_ms: i64,
    /// When it ended (ms); `None` while it lasts.
    pub ended_ms: Option<i64>,
    /// Staff's note or the inspection ticket.
    pub note: Option<String>,
    /// Conditions suppressed during it.
    pub suppressed: u32,
}

/// The site outages of the site's own history overlapping `[start, end)`.
fn site_outages(archive: &SiteArchive, start: i64, end: i64, as_of: i64) -> Vec<OutageRow> {
    let mut rows: Vec<OutageRow> = Vec::new();
    for e in &archive.site_history {
        match &e.event {
            ArchiveEvent::SiteOutageOpened { ticket_id, devices } => rows.push(OutageRow {
                ticket_id: ticket_id.clone(),
                started_ms: e.at_ms,
                ended_ms: None,
                hours: 0.0,
                devices: devices.clone(),
                still_offline: Vec::new(),
            }),
            ArchiveEvent::SiteOutageRecovered { ticket_id, devices, still_offline, .. } => {
                if let Some(r) = rows.iter_mut().rev().find(|r| &r.ticket_id == ticket_id) {
                    r.ended_ms = Some(e.at_ms);
                    r.devices = devices.clone();
                    r.still_offline = still_offline.clone();
                }
            }
            _ => {}
        }
    }
    rows.retain(|r| r.started_ms < end && r.ended_ms.is_none_or(|t| t >= start));
    for r in &mut rows {
        let until = r.ended_ms.unwrap_or(as_of).max(r.started_ms);
        r.hours = (until - r.started_ms) as f64 / 3_600_000.0;
    }
    rows
}

/// A device's maintenance windows overlapping `[start, end)`.
fn device_windows(d: &DeviceArchive, start: i64, end: i64) -> Vec<WindowRow> {
    let mut rows: Vec<WindowRow> = Vec::new();
    for e in &d.history {
        match &e.event {
            ArchiveEvent::MaintenanceStarted { source, ticket_id, note, .. } => {
                rows.push(WindowRow {
                    device: d.device.id.clone(),
                    source: source.clone(),
                    started_ms: e.at_ms,
                    ended_ms: None,
                    note: note.clone().or_else(|| ticket_id.clone()),
                    suppressed: 0,
                });
            }
            ArchiveEvent::MaintenanceEnded { source } => {
                let open =
                    rows.iter_mut().rev().find(|r| &r.source == source && r.ended_ms.is_none());
                if let Some(r) = open {
                    r.ended_ms = Some(e.at_ms);
                }
            }
            ArchiveEvent::Suppressed { .. } => {
                if let Some(r) = rows.iter_mut().rev().find(|r| r.ended_ms.is_none()) {
                    r.suppressed += 1;
                }
            }
            _ => {}
        }
    }
    rows.retain(|r| r.started_ms < end && r.ended_ms.is_none_or(|t| t >= start));
    rows
}

/// Columns of the list of fault tickets, in both renderings.
pub(crate) const FAULT_COLUMNS: [&str; 10] = [
    "Opened",
    "Device",
    "Ticket",
    "Fault",
    "Level",
    "Coverage",
    "Acknowledged",
    "Closed",
    "Respond",
    "Resolve",
];

impl Report {
    /// The one-line summary: `9 devices, 3 faults (1 critical), SLA 92% met, 4
    /// inspections done, 1 overdue, 5.5 h downtime`.
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let sla = match s.sla_percent() {
            Some(p) => format!("SLA {}% met", p.floor()),
            None => "SLA n/a".to_owned(),
        };
        format!(
            "{}, {} ({} critical), {sla}, {} done, {} overdue, {} h downtime",
            plural(s.devices, "device", "devices"),
            plural(s.faults, "fault", "faults"),
            s.critical,
            plural(s.inspections_done as usize, "inspection", "inspections"),
            s.inspections_overdue,
            hours(s.downtime_hours),
        )
    }

    /// A time of the site, `2026-09-30 23:30`; `-` for none.
    pub fn time(&self, ms: Option<i64>) -> String {
        match ms.and_then(|ms| Timestamp::from_millisecond(ms).ok()) {
            Some(t) => t.to_zoned_datetime(self.tz.clone()).strftime("%Y-%m-%d %H:%M").to_string(),
            None => "-".to_owned(),
        }
    }

    /// The generation time with offset and zone: `2026-10-01 08:00 +08:00 Asia/Shanghai`.
    pub fn generated_local(&self) -> String {
        match Timestamp::from_millisecond(self.generated_ms) {
            Ok(t) => format!(
                "{} {}",
                t.to_zoned_datetime(self.tz.clone()).strftime("%Y-%m-%d %H:%M %:z"),
                self.timezone
            ),
            Err(_) => format!("{} ms", self.generated_ms),
        }
    }

    /// `2026-07-01 to 2026-09-30`.
    pub fn period_days(&self) -> String {
        format!("{} to {}", self.period.first_day(), self.period.last_day())
    }
}

/// Hours with one decimal.
pub(crate) fn hours(h: f64) -> String {
    // `+ 0.0` turns the -0.0 of an empty float sum into 0.0, and so does rounding.
    let h = if h.abs() < 0.05 { 0.0 } else { h + 0.0 };
    format!("{h:.1}")
}

/// `1 device`, `3 devices`.
fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

fn percent(part: u32, whole: u32) -> Option<f64> {
    (whole > 0).then(|| f64::from(part) * 100.0 / f64::from(whole))
}

/// The civil date of an instant in the zone (the epoch day for absurd values).
fn local_date(tz: &TimeZone, ms: i64) -> Date {
    Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned_datetime(tz.clone()).date())
        .unwrap_or(Date::constant(1970, 1, 1))
}

fn device_row(d: &DeviceArchive, faults_in_period: usize) -> DeviceRow {
    let status = if d.offline_since_ms.is_some() {
        DeviceStatus::Offline
    } else if !d.open_faults.is_empty() {
        DeviceStatus::Faults
    } else if d.last_seen_ms.is_none() {
        DeviceStatus::NoData
    } else {
        DeviceStatus::Ok
    };
    DeviceRow {
        id: d.device.id.clone(),
        equipment_type: d.device.equipment_type.clone(),
        model: d.device.model.clone(),
        location: d.device.location.clone(),
        status,
        open_faults: d.open_faults.len(),
        worst_open: d.open_faults.iter().map(|f| f.severity).min(),
        last_seen_ms: d.last_seen_ms,
        offline_since_ms: d.offline_since_ms,
        faults_in_period,
    }
}

/// Every fault ticket of a device, with its SLA outcomes at `now`.
fn fault_tickets(d: &DeviceArchive, now: i64, notes: &mut Vec<String>) -> Vec<FaultRow> {
    let mut rows: Vec<FaultRow> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let id = &d.device.id;
    for e in &d.history {
        match &e.event {
            ArchiveEvent::FaultOpened {
                ticket_id,
                code,
                title,
                severity,
                coverage,
                occurrence,
                replacement_recommended,
                sla,
            } => {
                let level = checked_level(*severity, id, ticket_id, notes);
                index.insert(ticket_id, rows.len());
                rows.push(FaultRow {
                    device: id.clone(),
                    ticket_id: ticket_id.clone(),
                    code: code.clone(),
                    title: title.clone(),
                    level,
                    opened_level: level,
                    coverage: coverage.clone(),
                    occurrence: *occurrence,
                    replacement_recommended: *replacement_recommended,
                    opened_ms: e.at_ms,
                    acknowledged_ms: None,
                    recovered_ms: None,
                    closed_ms: None,
                    sla: *sla,
                    respond: SlaStatus::NoTarget,
                    resolve: SlaStatus::NoTarget,
                });
            }
            ArchiveEvent::FaultEscalated { ticket_id, severity, .. } => {
                if let Some(&i) = index.get(ticket_id.as_str()) {
                    rows[i].level = checked_level(*severity, id, ticket_id, notes);
                }
            }
            ArchiveEvent::FaultRecovered { ticket_id, .. } => {
                if let Some(&i) = index.get(ticket_id.as_str()) {
                    rows[i].recovered_ms = Some(e.at_ms);
                }
            }
            ArchiveEvent::TicketAcknowledged { ticket_id } => {
                if let Some(&i) = index.get(ticket_id.as_str()) {
                    rows[i].acknowledged_ms.get_or_insert(e.at_ms);
                }
            }
            ArchiveEvent::TicketClosed { ticket_id, .. } => {
                if let Some(&i) = index.get(ticket_id.as_str()) {
                    rows[i].closed_ms.get_or_insert(e.at_ms);
                }
            }
            _ => {}
        }
    }
    for r in &mut rows {
        r.respond = respond_status(r.sla, r.acknowledged_ms, r.closed_ms, now);
        r.resolve = resolve_status(r.sla, r.closed_ms, now);
    }
    rows
}

/// A severity in 1..=4; anything else is noted and clamped into range.
fn checked_level(severity: u8, device: &str, ticket: &str, notes: &mut Vec<String>) -> u8 {
    let level = severity.clamp(1, 4);
    if level != severity {
        notes.push(format!(
            "device {device}, ticket {ticket}: severity {severity} is outside 1..4; counted as level {level}"
        ));
    }
    level
}

/// Respond: the sync's first sight of the ticket acknowledged is an upper bound of
/// the response, so it meets the target when it is not later than `respond_by`
/// and misses it otherwise. A ticket closed before `respond_by` was responded to in
/// time. With neither seen, the outcome is open while not due, then unknown: the
/// agent cannot tell a phone call it never heard of from no response.
pub fn respond_status(
    sla: Option<SlaTimes>,
    acknowledged_ms: Option<i64>,
    closed_ms: Option<i64>,
    now: i64,
) -> SlaStatus {
    let Some(sla) = sla else { return SlaStatus::NoTarget };
    let due = sla.respond_by_ms;
    match (acknowledged_ms, closed_ms) {
        (Some(a), _) if a <= due => SlaStatus::Met,
        (Some(_), _) => SlaStatus::Missed,
        (None, Some(c)) if c <= due => SlaStatus::Met,
        (None, _) if now <= due => SlaStatus::OpenWithin,
        (None, _) => SlaStatus::Unknown,
    }
}

/// Resolve: the central service's `closed_at` against `resolve_by`.
pub fn resolve_status(sla: Option<SlaTimes>, closed_ms: Option<i64>, now: i64) -> SlaStatus {
    let Some(sla) = sla else { return SlaStatus::NoTarget };
    let due = sla.resolve_by_ms;
    match closed_ms {
        Some(c) if c <= due => SlaStatus::Met,
        Some(_) => SlaStatus::Missed,
        None if now <= due => SlaStatus::OpenWithin,
        None => SlaStatus::OpenPastDue,
    }
}

/// Level-1 downtime of a device clipped to `[start, min(end, generated))`; an
/// outage still open counts up to that bound. `None` when there was none.
fn device_downtime(
    d: &DeviceArchive,
    start_ms: i64,
    end_ms: i64,
    generated_ms: i64,
    notes: &mut Vec<String>,
) -> Option<DowntimeRow> {
    let bound = end_ms.min(generated_ms);
    let mut intervals = Vec::new();
    let mut open: Option<i64> = None;
    for e in &d.history {
        match &e.event {
            ArchiveEvent::DowntimeStarted { .. } => {
                open.get_or_insert(e.at_ms);
            }
            ArchiveEvent::DowntimeEnded { duration_ms } => {
                let from = match open.take() {
                    Some(s) => s,
                    None => {
                        notes.push(format!(
                            "device {}: downtime ended at {} without a recorded start; its stated length ({} min) is used",
                            d.device.id,
                            e.at_ms,
                            duration_ms / 60_000
                        ));
                        e.at_ms - duration_ms
                    }
                };
                intervals.push((from, e.at_ms));
            }
            _ => {}
        }
    }
    let ongoing_from = open;
    if let Some(s) = open {
        intervals.push((s, bound.max(s)));
    }
    let mut outages = 0;
    let mut total_ms = 0i64;
    for (a, b) in intervals {
        let (a, b) = (a.max(start_ms), b.min(bound));
        if b > a {
            outages += 1;
            total_ms += b - a;
        }
    }
    if outages == 0 {
        return None;
    }
    let elapsed = bound - start_ms;
    let hours = SignedDuration::from_millis(total_ms).as_secs_f64() / 3600.0;
    Some(DowntimeRow {
        device: d.device.id.clone(),
        outages,
        hours,
        availability: (elapsed > 0).then(|| 100.0 * (1.0 - total_ms as f64 / elapsed as f64)),
        ongoing: ongoing_from.is_some_and(|s| s < bound),
    })
}

/// Inspections per plan: the plans the device has now, then plans only its history
/// names (removed since), if they did anything in the period.
fn device_inspections(
    d: &DeviceArchive,
    start_ms: i64,
    end_ms: i64,
    generated_ms: i64,
) -> Vec<InspectionRow> {
    let in_period = |t: i64| (start_ms..end_ms).contains(&t);
    // Per inspection ticket: due time, overdue since, done at.
    #[derive(Default)]
    struct Ticket {
        plan: String,
        due: Option<i64>,
        overdue_at: Option<i64>,
        done_at: Option<i64>,
    }
    let mut tickets: BTreeMap<&str, Ticket> = BTreeMap::new();
    let mut done: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    let mut last_done: BTreeMap<&str, i64> = BTreeMap::new();
    let mut titles: BTreeMap<&str, &str> = BTreeMap::new();
    for e in &d.history {
        match &e.event {
            ArchiveEvent::InspectionOpened { ticket_id, plan, title, due_ms, .. } => {
                let t = tickets.entry(ticket_id).or_default();
                t.plan = plan.clone();
                t.due = Some(*due_ms);
                titles.entry(plan).or_insert(title);
            }
            ArchiveEvent::InspectionOverdue { ticket_id, plan, due_ms } => {
                let t = tickets.entry(ticket_id).or_default();
                t.plan = plan.clone();
                t.due.get_or_insert(*due_ms);
                t.overdue_at.get_or_insert(e.at_ms);
            }
            ArchiveEvent::InspectionCompleted { plan, ticket_id, .. } => {
                let mut late = false;
                if let Some(t) = ticket_id.as_deref().and_then(|id| tickets.get_mut(id)) {
                    t.done_at.get_or_insert(e.at_ms);
                    late = t.due.is_some_and(|due| e.at_ms > due);
                } else {
                    // A completion naming no ticket (recorded locally) completes
                    // whatever inspection of that plan was still open.
                    for t in tickets.values_mut().filter(|t| t.plan == *plan && t.done_at.is_none())
                    {
                        t.done_at = Some(e.at_ms);
                        late |= t.due.is_some_and(|due| e.at_ms > due);
                    }
                }
                last_done.insert(plan, e.at_ms);
                if in_period(e.at_ms) {
                    let c = done.entry(plan).or_default();
                    c.0 += 1;
                    c.1 += u32::from(late);
                }
            }
            ArchiveEvent::TicketClosed { ticket_id, .. } => {
                // A closure without a completion entry still ends the overdue time.
                if let Some(t) = tickets.get_mut(ticket_id.as_str()) {
                    t.done_at.get_or_insert(e.at_ms);
                }
            }
            _ => {}
        }
    }
    let mut overdue: BTreeMap<&str, u32> = BTreeMap::new();
    for t in tickets.values() {
        if let Some(o) = t.overdue_at
            && o < end_ms
            && t.done_at.is_none_or(|c| c > start_ms)
        {
            *overdue.entry(t.plan.as_str()).or_default() += 1;
        }
    }

    let soon = generated_ms + DUE_SOON_DAYS * 86_400_000;
    let mut rows: Vec<InspectionRow> = d
        .inspections
        .iter()
        .map(|p| {
            let next_due_ms = p.open.as_ref().map(|(_, due)| *due).or(p.next_due_ms);
            let state = match next_due_ms {
                _ if p.overdue => PlanState::Overdue,
                Some(due) if due <= soon => PlanState::DueSoon,
                Some(_) => PlanState::Scheduled,
                None => PlanState::Unscheduled,
            };
            let (done, late) = done.get(p.plan.as_str()).copied().unwrap_or_default();
            InspectionRow {
                device: d.device.id.clone(),
                plan: p.plan.clone(),
                title: p.title.clone(),
                done,
                late,
                overdue: overdue.get(p.plan.as_str()).copied().unwrap_or_default(),
                last_done_ms: p.last_completed_ms.or(last_done.get(p.plan.as_str()).copied()),
                next_due_ms,
                state,
            }
        })
        .collect();
    let known: Vec<String> = rows.iter().map(|r| r.plan.clone()).collect();
    let mut gone: Vec<&str> = done.keys().chain(overdue.keys()).copied().collect();
    gone.sort_unstable();
    gone.dedup();
    for plan in gone.into_iter().filter(|p| !known.iter().any(|k| k == p)) {
        let (d_count, late) = done.get(plan).copied().unwrap_or_default();
        rows.push(InspectionRow {
            device: d.device.id.clone(),
            plan: plan.to_owned(),
            title: titles.get(plan).map_or_else(|| plan.to_owned(), |t| (*t).to_owned()),
            done: d_count,
            late,
            overdue: overdue.get(plan).copied().unwrap_or_default(),
            last_done_ms: last_done.get(plan).copied(),
            next_due_ms: None,
            state: PlanState::Unscheduled,
        });
    }
    rows
}

/// Warranty lines and the maintenance contract ending within
/// [`WARRANTY_HORIZON_DAYS`] from `as_of` (inclusive both ends).
fn device_warranty(d: &DeviceArchive, as_of: Date) -> Vec<WarrantyRow> {
    let horizon =
        as_of.checked_add(jiff::Span::new().days(WARRANTY_HORIZON_DAYS)).unwrap_or(Date::MAX);
    let days = |a: Date, b: Date| a.until(b).map_or(0, |s| i64::from(s.get_days()));
    let lines = d.warranty.iter().map(|w| {
        let component =
            if w.component == "*" { "all components".to_owned() } else { w.component.clone() };
        (component, w.until, days(w.base_until, w.until))
    });
    let contract = d.device.contract_until.map(|c| ("maintenance contract".to_owned(), c, 0));
    lines
        .chain(contract)
        .filter(|(_, until, _)| (as_of..=horizon).contains(until))
        .map(|(component, until, extension_days)| WarrantyRow {
            device: d.device.id.clone(),
            component,
            until,
            extension_days,
            days_left: days(as_of, until),
        })
        .collect()
}

/// One bucket per ISO week overlapping the period; faults by their local date.
fn week_buckets(tz: &TimeZone, period: &Period, faults: &[FaultRow]) -> Vec<WeekBucket> {
    let monday = |d: Date| {
        d.checked_sub(jiff::Span::new().days(d.weekday().to_monday_zero_offset())).unwrap_or(d)
    };
    let mut weeks = Vec::new();
    let mut m = monday(period.first_day());
    while m <= period.last_day() {
        let iso = m.iso_week_date();
        weeks.push(WeekBucket {
            iso_year: iso.year(),
            week: iso.week(),
            monday: m,
            by_level: [0; 4],
        });
        match m.checked_add(jiff::Span::new().days(7)) {
            Ok(next) => m = next,
            Err(_) => break,
        }
    }
    for f in faults {
        let mon = monday(local_date(tz, f.opened_ms));
        if let Some(w) = weeks.iter_mut().find(|w| w.monday == mon) {
            w.by_level[usize::from(f.level - 1)] += 1;
        }
    }
    weeks
}
