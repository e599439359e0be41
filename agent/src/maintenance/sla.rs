//! Response commitments: the due times a fault ticket carries (maintenance.md §2).
//!
//! Targets are elapsed time from the moment the ticket opens (a 24 h target across a
//! DST change is 24 real hours). The business calendar only decides which on-site
//! target applies: the working-day one when the fault opens during working time, the
//! holiday / off-hours one otherwise.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::calendar::BusinessCalendar;

/// A due-time rule: a fixed elapsed time, or "at the next inspection".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Due this long after the ticket opens.
    Within(SignedDuration),
    /// Due when the device's next inspection is due (level 4 warnings).
    NextInspection,
}

/// The four targets of one fault level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelTargets {
    /// First response (phone or remote).
    pub respond: Target,
    /// On site, when the fault opens during working time.
    pub onsite_working: Target,
    /// On site, when the fault opens on a holiday, weekend or outside working hours.
    pub onsite_off_hours: Target,
    /// Fault resolved.
    pub resolve: Target,
}

/// A table that cannot be built or a due time that cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum SlaError {
    /// Fault levels are 1 (critical) to 4 (warning).
    #[error("fault level {0} does not exist: levels are 1 (critical) to 4 (warning)")]
    UnknownLevel(u8),
    /// A target duration below zero.
    #[error("level {level} {target} target is negative")]
    NegativeTarget {
        /// The level whose target is wrong (0 for the inspection fallback).
        level: u8,
        /// Which target: `respond`, `onsite_working`, `onsite_off_hours`, `resolve`
        /// or `inspection_fallback`.
        target: &'static str,
    },
    /// The due time is outside the range jiff supports.
    #[error("due time out of range")]
    OutOfRange(#[source] jiff::Error),
}

/// Due times of one fault ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaDue {
    /// Respond (phone / remote) by.
    pub respond_by: Timestamp,
    /// Be on site by.
    pub onsite_by: Timestamp,
    /// Resolve by.
    pub resolve_by: Timestamp,
}

/// Whether a commitment was kept, for the register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlaOutcome {
    /// Done at or before the due time.
    Met,
    /// Done after the due time, or not done and the due time has passed.
    Missed,
    /// Not done yet and not yet due.
    Pending,
}

/// Default when a level-4 ticket's device has no known next inspection: 30 days.
///
/// Shorter than the shortest default inspection cadence (quarterly, §3), so a
/// warning never waits longer than an inspection round would have made it wait.
pub const DEFAULT_INSPECTION_FALLBACK: SignedDuration = SignedDuration::from_hours(30 * 24);

/// Per-level SLA targets (index 0 is level 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaTable {
    /// Targets of levels 1..=4.
    levels: [LevelTargets; 4],
    /// Used for `NextInspection` targets when the next inspection is unknown.
    inspection_fallback: SignedDuration,
}

const fn mins(m: i64) -> Target {
    Target::Within(SignedDuration::from_mins(m))
}

const fn hours(h: i64) -> Target {
    Target::Within(SignedDuration::from_hours(h))
}

impl Default for SlaTable {
    /// The table of maintenance.md §2 (taken from the seeds), with a 30-day
    /// fallback for level 4 without a known next inspection.
    fn default() -> Self {
        let next = Target::NextInspection;
        SlaTable {
            levels: [
                LevelTargets {
                    respond: mins(10),
                    onsite_working: hours(2),
                    onsite_off_hours: hours(4),
                    resolve: hours(24),
                },
                LevelTargets {
                    respond: mins(10),
                    onsite_working: hours(4),
                    onsite_off_hours: hours(8),
                    resolve: hours(48),
                },
                LevelTargets {
                    respond: mins(30),
                    onsite_working: hours(12),
                    onsite_off_hours: hours(24),
                    resolve: hours(5 * 24),
                },
                LevelTargets {
                    respond: mins(30),
                    onsite_working: next,
                    onsite_off_hours: next,
                    resolve: next,
                },
            ],
            inspection_fallback: DEFAULT_INSPECTION_FALLBACK,
        }
    }
}

impl SlaTable {
    /// Builds a table from the targets of levels 1..=4 (in that order) and the
    /// fallback for `NextInspection` when no inspection is scheduled.
    pub fn new(
        levels: [LevelTargets; 4],
        inspection_fallback: SignedDuration,
    ) -> Result<Self, SlaError> {
        if inspection_fallback.is_negative() {
            return Err(SlaError::NegativeTarget { level: 0, target: "inspection_fallback" });
        }
        for (level, targets) in (1u8..).zip(&levels) {
            check(level, targets)?;
        }
        Ok(SlaTable { levels, inspection_fallback })
    }

    /// Replaces the targets of one level (a site override).
    pub fn with_targets(mut self, level: u8, targets: LevelTargets) -> Result<Self, SlaError> {
        check(level, &targets)?;
        let slot = self.levels.get_mut(index(level)?).ok_or(SlaError::UnknownLevel(level))?;
        *slot = targets;
        Ok(self)
    }

    /// The targets of `level` (1..=4).
    pub fn targets(&self, level: u8) -> Result<&LevelTargets, SlaError> {
        self.levels.get(index(level)?).ok_or(SlaError::UnknownLevel(level))
    }

    /// The fallback used for `NextInspection` when no inspection is known.
    pub fn inspection_fallback(&self) -> SignedDuration {
        self.inspection_fallback
    }

    /// Due times of a level-`level` fault opened at `opened`.
    ///
    /// On site: the working-day target if `opened` is working time in `cal`, else
    /// the holiday / off-hours target. `NextInspection` targets take
    /// `next_inspection`, never earlier than `opened` (an overdue inspection makes
    /// the warning due at once), or `opened` + the fallback when it is unknown.
    pub fn due(
        &self,
        level: u8,
        opened: Timestamp,
        cal: &BusinessCalendar,
        next_inspection: Option<Timestamp>,
    ) -> Result<SlaDue, SlaError> {
        let t = self.targets(level)?;
        let onsite =
            if cal.is_working_time(opened) { t.onsite_working } else { t.onsite_off_hours };
        let at = |target: Target| -> Result<Timestamp, SlaError> {
            match (target, next_inspection) {
                (Target::Within(d), _) => opened.checked_add(d).map_err(SlaError::OutOfRange),
                (Target::NextInspection, Some(next)) => Ok(next.max(opened)),
                (Target::NextInspection, None) => {
                    opened.checked_add(self.inspection_fallback).map_err(SlaError::OutOfRange)
                }
            }
        };
        Ok(SlaDue {
            respond_by: at(t.respond)?,
            onsite_by: at(onsite)?,
            resolve_by: at(t.resolve)?,
        })
    }
}

/// Outcome of one commitment: `Met` when `done` is at or before `due`, `Missed` when
/// it is after, or when nothing is done and `now` is past `due`; else `Pending`.
pub fn met(due: Timestamp, done: Option<Timestamp>, now: Timestamp) -> SlaOutcome {
    match done {
        Some(done) if done <= due => SlaOutcome::Met,
        Some(_) => SlaOutcome::Missed,
        None if now > due => SlaOutcome::Missed,
        None => SlaOutcome::Pending,
    }
}

/// Array index of a level, or `UnknownLevel`.
fn index(level: u8) -> Result<usize, SlaError> {
    match level {
        1..=4 => Ok(usize::from(level - 1)),
        _ => Err(SlaError::UnknownLevel(level)),
    }
}

/// Rejects negative durations in one level's targets.
fn check(level: u8, t: &LevelTargets) -> Result<(), SlaError> {
    index(level)?;
    let named = [
        ("respond", t.respond),
        ("onsite_working", t.onsite_working),
        ("onsite_off_hours", t.onsite_off_hours),
        ("resolve", t.resolve),
    ];
    for (target, value) in named {
        if matches!(value, Target::Within(d) if d.is_negative()) {
            return Err(SlaError::NegativeTarget { level, target });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::maintenance::calendar::{CalendarRules, rfc3339};
    use jiff::civil::date;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn shanghai() -> BusinessCalendar {
        let rules = CalendarRules { holidays: vec![date(2026, 10, 1)], ..CalendarRules::default() };
        BusinessCalendar::new("Asia/Shanghai", rules).unwrap()
    }

    /// Due times as site-local strings, for readable assertions.
    fn due(level: u8, opened: &str, next: Option<&str>) -> [String; 3] {
        let cal = shanghai();
        let d = SlaTable::default().due(level, ts(opened), &cal, next.map(ts)).unwrap();
        let tz = cal.time_zone();
        [rfc3339(d.respond_by, tz), rfc3339(d.onsite_by, tz), rfc3339(d.resolve_by, tz)]
    }

    // Monday 10:04, working time.
    const MON: &str = "2026-11-23T10:04:00+08:00";
    // Saturday 10:04.
    const SAT: &str = "2026-11-21T10:04:00+08:00";

    #[test]
    fn level_1_in_and_out_of_working_time() {
        assert_eq!(
            due(1, MON, None),
            ["2026-11-23T10:14:00+08:00", "2026-11-23T12:04:00+08:00", "2026-11-24T10:04:00+08:00"]
        );
        assert_eq!(
            due(1, SAT, None),
            ["2026-11-21T10:14:00+08:00", "2026-11-21T14:04:00+08:00", "2026-11-22T10:04:00+08:00"]
        );
    }

    #[test]
    fn level_2_saturday_gets_the_holiday_onsite_target() {
        assert_eq!(
            due(2, MON, None),
            ["2026-11-23T10:14:00+08:00", "2026-11-23T14:04:00+08:00", "2026-11-25T10:04:00+08:00"]
        );
        // "A level-2 fault raised on Saturday gets the holiday on-site target": 8 h.
        assert_eq!(
            due(2, SAT, None),
            ["2026-11-21T10:14:00+08:00", "2026-11-21T18:04:00+08:00", "2026-11-23T10:04:00+08:00"]
        );
        // A public holiday on a Thursday counts as off hours too.
        assert_eq!(due(2, "2026-10-01T10:00:00+08:00", None)[1], "2026-10-01T18:00:00+08:00");
    }

    #[test]
    fn working_hours_edges_choose_the_onsite_target() {
        assert_eq!(due(2, "2026-11-23T08:59:00+08:00", None)[1], "2026-11-23T16:59:00+08:00");
        assert_eq!(due(2, "2026-11-23T09:00:00+08:00", None)[1], "2026-11-23T13:00:00+08:00");
        assert_eq!(due(2, "2026-11-23T17:59:00+08:00", None)[1], "2026-11-23T21:59:00+08:00");
        assert_eq!(due(2, "2026-11-23T18:00:00+08:00", None)[1], "2026-11-24T02:00:00+08:00");
    }

    #[test]
    fn level_3_in_and_out_of_working_time() {
        assert_eq!(
            due(3, MON, None),
            ["2026-11-23T10:34:00+08:00", "2026-11-23T22:04:00+08:00", "2026-11-28T10:04:00+08:00"]
        );
        assert_eq!(
            due(3, SAT, None),
            ["2026-11-21T10:34:00+08:00", "2026-11-22T10:04:00+08:00", "2026-11-26T10:04:00+08:00"]
        );
    }

    #[test]
    fn level_4_uses_the_next_inspection() {
        let next = "2026-12-01T09:00:00+08:00";
        assert_eq!(due(4, MON, Some(next)), ["2026-11-23T10:34:00+08:00", next, next]);
        assert_eq!(due(4, SAT, Some(next)), ["2026-11-21T10:34:00+08:00", next, next]);
        // An overdue inspection: due at opening, never before it.
        let overdue = due(4, MON, Some("2026-11-20T09:00:00+08:00"));
        assert_eq!(overdue, ["2026-11-23T10:34:00+08:00", MON, MON]);
    }

    #[test]
    fn level_4_without_inspection_falls_back_to_30_days() {
        assert_eq!(
            due(4, MON, None),
            ["2026-11-23T10:34:00+08:00", "2026-12-23T10:04:00+08:00", "2026-12-23T10:04:00+08:00"]
        );
        assert_eq!(
            due(4, SAT, None),
            ["2026-11-21T10:34:00+08:00", "2026-12-21T10:04:00+08:00", "2026-12-21T10:04:00+08:00"]
        );
    }

    #[test]
    fn targets_are_elapsed_time_across_dst() {
        let cal = BusinessCalendar::new("Europe/Berlin", CalendarRules::default()).unwrap();
        // Saturday 2026-03-28 10:00 CET, level 3 (off hours: 24 h on site). Clocks go
        // forward that night, so 24 h later reads 11:00 CEST.
        let d = SlaTable::default().due(3, ts("2026-03-28T10:00:00+01:00"), &cal, None).unwrap();
        assert_eq!(rfc3339(d.onsite_by, cal.time_zone()), "2026-03-29T11:00:00+02:00");
        assert_eq!(rfc3339(d.resolve_by, cal.time_zone()), "2026-04-02T11:00:00+02:00");
        // Friday 2026-03-27 09:30 CET is working time: level 1 on site in 2 h.
        let d = SlaTable::default().due(1, ts("2026-03-27T09:30:00+01:00"), &cal, None).unwrap();
        assert_eq!(rfc3339(d.onsite_by, cal.time_zone()), "2026-03-27T11:30:00+01:00");
    }

    #[test]
    fn unknown_levels_are_errors() {
        let cal = shanghai();
        let table = SlaTable::default();
        assert!(matches!(table.due(0, ts(MON), &cal, None), Err(SlaError::UnknownLevel(0))));
        assert!(matches!(table.due(5, ts(MON), &cal, None), Err(SlaError::UnknownLevel(5))));
    }

    #[test]
    fn overrides_and_validation() {
        let fast = LevelTargets {
            respond: mins(5),
            onsite_working: hours(1),
            onsite_off_hours: hours(2),
            resolve: hours(12),
        };
        let table = SlaTable::default().with_targets(1, fast).unwrap();
        assert_eq!(table.targets(1).unwrap(), &fast);
        assert_eq!(table.targets(2).unwrap(), SlaTable::default().targets(2).unwrap());
        assert!(matches!(
            SlaTable::default().with_targets(7, fast),
            Err(SlaError::UnknownLevel(7))
        ));
        let negative = LevelTargets { resolve: hours(-1), ..fast };
        assert!(matches!(
            SlaTable::default().with_targets(2, negative),
            Err(SlaError::NegativeTarget { level: 2, target: "resolve" })
        ));
        let levels = SlaTable::default().levels;
        assert!(SlaTable::new(levels, SignedDuration::from_hours(-1)).is_err());
        let table = SlaTable::new(levels, SignedDuration::from_hours(24 * 7)).unwrap();
        let d = table.due(4, ts(MON), &shanghai(), None).unwrap();
        assert_eq!(d.resolve_by, ts("2026-11-30T10:04:00+08:00"));
    }

    #[test]
    fn met_missed_pending() {
        let due = ts("2026-11-23T12:04:00+08:00");
        let before = ts("2026-11-23T12:00:00+08:00");
        let after = ts("2026-11-23T12:05:00+08:00");
        assert_eq!(met(due, Some(before), after), SlaOutcome::Met);
        assert_eq!(met(due, Some(due), after), SlaOutcome::Met);
        assert_eq!(met(due, Some(after), after), SlaOutcome::Missed);
        assert_eq!(met(due, None, before), SlaOutcome::Pending);
        assert_eq!(met(due, None, due), SlaOutcome::Pending);
        assert_eq!(met(due, None, after), SlaOutcome::Missed);
        assert_eq!(serde_json::to_string(&SlaOutcome::Pending).unwrap(), "\"pending\"");
    }
}
