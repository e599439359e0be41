//! The pipeline's side of maintenance windows (maintenance.md section 8): staff
//! commands and inspection tickets in progress start and end them
//! ([`crate::alarms::window`] decides), and their effects become archive entries and,
//! when a window ends, tickets.

use serde::{Deserialize, Serialize};

use crate::alarms::Transition;
use crate::alarms::site::SiteAlarms;
use crate::alarms::window::{WindowEffect, Windows};
use crate::plugins::bindings::Condition;
use crate::store::{ArchiveEntry, ArchiveEvent, Batch, StoreError};

use super::{Commit, Core, builder, mark};

/// The site-wide alarm state the store keeps beside the device records: site
/// outages and maintenance windows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteState {
    /// Site outages.
    #[serde(default)]
    pub outages: SiteAlarms,
    /// Maintenance windows.
    #[serde(default)]
    pub windows: Windows,
}

/// Why a maintenance command was refused.
#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    /// No such device in the inventory.
    #[error("no device `{0}` in the site inventory")]
    UnknownDevice(String),
    /// The window asked for is longer than allowed.
    #[error(
        "a maintenance window lasts at most {max_h} h (maintenance.max_window); {asked_min} min asked"
    )]
    TooLong {
        /// The limit, hours.
        max_h: i64,
        /// What was asked, minutes.
        asked_min: i64,
    },
    /// A window of no length.
    #[error("a maintenance window must last more than 0")]
    Empty,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Core {
    /// `tend maintenance start`: `device` is under maintenance from `at_ms` for
    /// `length_ms` (the configured default when `None`). Returns when it ends.
    pub fn maintenance_start(
        &mut self,
        device: &str,
        at_ms: i64,
        length_ms: Option<i64>,
        note: Option<&str>,
        out: &mut dyn Commit,
    ) -> Result<i64, MaintenanceError> {
        if !self.devices.contains_key(device) {
            return Err(MaintenanceError::UnknownDevice(device.to_owned()));
        }
        let length = length_ms.unwrap_or(self.windows.default_ms);
        if length <= 0 {
            return Err(MaintenanceError::Empty);
        }
        if length > self.windows.max_ms {
            return Err(MaintenanceError::TooLong {
                max_h: self.windows.max_ms / 3_600_000,
                asked_min: length / 60_000,
            });
        }
        let until = at_ms.saturating_add(length);
        let mut batch = Batch::default();
        let effects =
            self.site_alarms.windows.declare(device, at_ms, until, note.map(str::to_owned));
        self.apply_windows(device, effects, &mut batch);
        self.reschedule(device);
        self.finish(batch, out)?;
        Ok(until)
    }

    /// `tend maintenance end`: the declared window of `device` ends at `at_ms`; what
    /// is still active opens. `false` when there was no declared window.
    pub fn maintenance_end(
        &mut self,
        device: &str,
        at_ms: i64,
        out: &mut dyn Commit,
    ) -> Result<bool, MaintenanceError> {
        if !self.devices.contains_key(device) {
            return Err(MaintenanceError::UnknownDevice(device.to_owned()));
        }
        let effects = self.site_alarms.windows.end_declared(device, at_ms);
        let ended = !effects.is_empty();
        let mut batch = Batch::default();
        self.apply_windows(device, effects, &mut batch);
        self.reschedule(device);
        self.finish(batch, out)?;
        Ok(ended)
    }

    /// The ticket sync saw an inspection ticket of `device` `in_progress` (or no
    /// longer) at `at_ms`: a maintenance window starts (or ends). `false` when that
    /// changed nothing.
    pub fn inspection_in_progress(
        &mut self,
        device: &str,
        ticket_id: &str,
        in_progress: bool,
        at_ms: i64,
        out: &mut dyn Commit,
    ) -> Result<bool, StoreError> {
        if !self.devices.contains_key(device) {
            return Ok(false);
        }
        let effects = self.site_alarms.windows.inspection(device, ticket_id, in_progress, at_ms);
        if effects.is_empty() {
            return Ok(false);
        }
        let mut batch = Batch::default();
        self.apply_windows(device, effects, &mut batch);
        self.reschedule(device);
        self.finish(batch, out)?;
        Ok(true)
    }

    /// Ends the declared windows that ran out by `now`.
    pub(super) fn expire_windows(&mut self, now: i64, batch: &mut Batch) {
        for (device, effects) in self.site_alarms.windows.expire(now) {
            self.apply_windows(&device, effects, batch);
            self.reschedule(&device);
        }
    }

    /// Carries out what the window rule decided for `device`.
    pub(super) fn apply_windows(
        &mut self,
        device: &str,
        effects: Vec<WindowEffect>,
        batch: &mut Batch,
    ) {
        let archive = |batch: &mut Batch, at_ms: i64, event: ArchiveEvent| {
            batch.archive.push((device.to_owned(), ArchiveEntry { at_ms, event }));
        };
        for e in effects {
            match e {
                WindowEffect::Started { source, ticket_id, until, note, at } => {
                    let event = ArchiveEvent::MaintenanceStarted {
                        source: source.to_owned(),
                        ticket_id,
                        until_ms: until,
                        note,
                    };
                    archive(batch, at, event);
                }
                WindowEffect::Ended { source, at } => {
                    archive(
                        batch,
                        at,
                        ArchiveEvent::MaintenanceEnded { source: source.to_owned() },
                    );
                }
                WindowEffect::Suppressed { code, severity, at } => {
                    self.counters.suppressed += 1;
                    archive(batch, at, ArchiveEvent::Suppressed { code, severity });
                }
                WindowEffect::Discard { code, episode } => {
                    if let Some(rec) = self.records.get_mut(device) {
                        rec.alarms.discard_episode(&code, episode);
                        mark(&mut self.dirty, device);
                    }
                }
                WindowEffect::Open { code, episode, first_seen, at } => {
                    let Some(rec) = self.records.get(device) else { continue };
                    let Some(severity) = rec
                        .alarms
                        .open_episodes()
                        .find(|(c, e)| *c == code && e.number() == episode)
                        .map(|(_, e)| e.severity())
                    else {
                        continue;
                    };
                    let t = Transition::Opened {
                        code: code.clone(),
                        episode,
                        severity,
                        at,
                        closed_before: rec.alarms.closed_episodes(&code),
                    };
                    let tz = self.site.calendar.time_zone();
                    let note = Condition {
                        code: code.clone(),
                        active: true,
                        severity,
                        summary: format!(
                            "First seen during maintenance at {}; still active when the \
                             maintenance window ended.",
                            builder::wire_time(first_seen, tz).as_str()
                        ),
                        evidence: vec![],
                        diagnosis: None,
                    };
                    self.emit_device(device, vec![t], std::slice::from_ref(&note), batch);
                }
            }
        }
    }
}
