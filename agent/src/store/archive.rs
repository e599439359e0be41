//! The device archive (maintenance.md section 4): what happened to every device, kept
//! in the store beside its inventory entry, and the snapshot the `tend device` and
//! `tend report` commands read.
//!
//! Entries are written in the same transaction as the state change they record, so
//! the archive never says a ticket opened that the outbox does not hold.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// One thing that happened to a device, at an event time (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveEntry {
    /// When it happened: event time for what the device reported, the central
    /// service's `closed_at` for closures, the stated time for local completions.
    pub at_ms: i64,
    /// What happened.
    #[serde(flatten)]
    pub event: ArchiveEvent,
}

/// SLA due times of a fault ticket (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaTimes {
    /// Respond (phone / remote) by.
    pub respond_by_ms: i64,
    /// Be on site by.
    pub onsite_by_ms: i64,
    /// Resolve by.
    pub resolve_by_ms: i64,
}

/// The kinds of archive entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ArchiveEvent {
    /// A fault ticket was opened.
    FaultOpened {
        /// The agent's ticket id.
        ticket_id: String,
        /// Fault code.
        code: String,
        /// Fault title.
        title: String,
        /// Severity at opening, 1..=4.
        severity: u8,
        /// `warranty`, `contract` or `billable`.
        coverage: String,
        /// Occurrence of this code on this device (1 for the first).
        occurrence: u32,
        /// The repeat-fault rule recommends replacing the unit.
        replacement_recommended: bool,
        /// Due times, when the SLA table gave them.
        sla: Option<SlaTimes>,
    },
    /// A fault ticket was raised to a worse severity.
    FaultEscalated {
        /// The ticket.
        ticket_id: String,
        /// Fault code.
        code: String,
        /// The new severity.
        severity: u8,
    },
    /// A fault's condition cleared (a person still closes the ticket).
    FaultRecovered {
        /// The ticket.
        ticket_id: String,
        /// Fault code.
        code: String,
    },
    /// A fault came back before its ticket was closed.
    FaultRecurred {
        /// The ticket.
        ticket_id: String,
        /// Fault code.
        code: String,
        /// Occurrences on the ticket so far.
        count: u32,
    },
    /// The central service showed the ticket acknowledged (or further along) for the
    /// first time; `at_ms` is when the sync saw it, an upper bound of the response.
    TicketAcknowledged {
        /// The ticket.
        ticket_id: String,
    },
    /// Staff closed a ticket (fault or inspection) at the central service.
    TicketClosed {
        /// The ticket.
        ticket_id: String,
        /// What staff wrote, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resolution: Option<String>,
    },
    /// An inspection ticket was opened (a lead time before it is due).
    InspectionOpened {
        /// The ticket.
        ticket_id: String,
        /// Plan id.
        plan: String,
        /// Plan title.
        title: String,
        /// When it is due.
        due_ms: i64,
        /// What called for it: `calendar` or `meter`.
        trigger: String,
    },
    /// An inspection passed its due time without being completed.
    InspectionOverdue {
        /// The inspection ticket.
        ticket_id: String,
        /// Plan id.
        plan: String,
        /// When it was due.
        due_ms: i64,
    },
    /// An inspection was completed; the plan's schedule restarts from `at_ms`.
    InspectionCompleted {
        /// Plan id.
        plan: String,
        /// The inspection ticket, when one was open.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket_id: Option<String>,
        /// `central` (ticket closed there) or `local` (`tend inspection complete`).
        source: String,
        /// A note from whoever recorded it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// Meter readings at completion.
        #[serde(default)]
        meters: BTreeMap<String, f64>,
    },
    /// The device went out of service: a level-1 fault became active.
    DowntimeStarted {
        /// The level-1 fault code.
        code: String,
    },
    /// The device is back in service: no level-1 fault is active any more.
    DowntimeEnded {
        /// Length of the downtime, ms.
        duration_ms: i64,
    },
    /// The device went offline as part of a site outage: the site's ticket covers
    /// it, and it gets no `device_offline` ticket of its own while the outage lasts.
    OutageJoined {
        /// The site's `site_outage` ticket.
        ticket_id: String,
    },
    /// (The site's own archive, under the site id.) A site outage opened.
    SiteOutageOpened {
        /// The `site_outage` ticket.
        ticket_id: String,
        /// The devices that went offline together.
        devices: Vec<String>,
    },
    /// (The site's own archive.) A site outage ended (`recovered` on its ticket).
    SiteOutageRecovered {
        /// The `site_outage` ticket.
        ticket_id: String,
        /// When it opened (ms).
        started_ms: i64,
        /// Every device that took part, the ones that joined included.
        devices: Vec<String>,
        /// The devices still offline when it ended (each got its own ticket).
        still_offline: Vec<String>,
    },
    /// A maintenance window began: the device's faults are judged and recorded but
    /// page nobody (maintenance.md section 8).
    MaintenanceStarted {
        /// `inspection` (an inspection ticket in progress at the central service) or
        /// `declared` (`tend maintenance start`).
        source: String,
        /// The inspection ticket, for `inspection` windows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ticket_id: Option<String>,
        /// When a declared window ends by itself (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until_ms: Option<i64>,
        /// What site staff wrote.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A maintenance window ended.
    MaintenanceEnded {
        /// `inspection` or `declared`.
        source: String,
    },
    /// A condition became active under maintenance: recorded, no ticket (yet).
    Suppressed {
        /// Fault code.
        code: String,
        /// Severity reported.
        severity: u8,
    },
}

/// The inventory facts of a device, as the archive shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceFacts {
    /// Device id.
    pub id: String,
    /// Equipment type.
    #[serde(rename = "type")]
    pub equipment_type: String,
    /// Model.
    pub model: String,
    /// Serial / device number.
    pub serial: String,
    /// Location.
    pub location: String,
    /// Purpose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Manufacture date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufactured: Option<Date>,
    /// Commissioning date.
    pub commissioned: Date,
    /// Maintenance contract end (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_until: Option<Date>,
}

/// A fault ticket open now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenFault {
    /// Fault code.
    pub code: String,
    /// The ticket.
    pub ticket_id: String,
    /// Current severity.
    pub severity: u8,
    /// When it opened (ms).
    pub opened_ms: i64,
    /// `active`, `clearing` or `recovered`.
    pub phase: String,
}

/// A component's warranty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarrantyLine {
    /// Component (`main_unit`, `pipes`, `*` for a contract-wide grant).
    pub component: String,
    /// Last day without the downtime extension.
    pub base_until: Date,
    /// Last day with the downtime extension (inclusive).
    pub until: Date,
}

/// One inspection plan of a device and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStatus {
    /// Plan id.
    pub plan: String,
    /// Plan title.
    pub title: String,
    /// Calendar cadence (`6m`, `90d`), when the plan has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// Meter trigger, readable (`pump_run_hours every 2000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<String>,
    /// Next calendar due time (ms), when the plan has a calendar cadence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_due_ms: Option<i64>,
    /// The open inspection ticket and its due time (ms), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<(String, i64)>,
    /// Whether the open inspection is overdue.
    #[serde(default)]
    pub overdue: bool,
    /// Last completion (ms), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_completed_ms: Option<i64>,
}

/// Everything known about one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceArchive {
    /// Inventory facts.
    pub device: DeviceFacts,
    /// Last message (event time, ms), if the device ever published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<i64>,
    /// Offline since (ms), when offline now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_since_ms: Option<i64>,
    /// Fault tickets open now.
    pub open_faults: Vec<OpenFault>,
    /// Latest meter readings.
    pub meters: BTreeMap<String, f64>,
    /// Whole days of level-1 downtime (partial days rounded up); each warranty line
    /// shows the extension it earned.
    pub downtime_days: u32,
    /// Warranty per component, extension included.
    pub warranty: Vec<WarrantyLine>,
    /// Inspection plans.
    pub inspections: Vec<PlanStatus>,
    /// Everything that happened, oldest first.
    pub history: Vec<ArchiveEntry>,
    /// The maintenance window the device is in now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceNow>,
}

/// A device's maintenance window now (maintenance.md section 8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceNow {
    /// When it started (ms).
    pub since_ms: i64,
    /// When the declared window ends by itself (ms), if one is declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    /// Inspection tickets in progress at the central service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inspections: Vec<String>,
    /// The declared window's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Fault codes active and suppressed now (their tickets open when it ends).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<String>,
}

/// The archive of a whole site, as of `generated_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteArchive {
    /// Site id.
    pub site: String,
    /// IANA time zone of the site.
    pub timezone: String,
    /// When the snapshot was taken (ms): the agent's clock.
    pub generated_ms: i64,
    /// The devices, in inventory order.
    pub devices: Vec<DeviceArchive>,
    /// The site's own history (site outages), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub site_history: Vec<ArchiveEntry>,
}
