//! Preventive inspection schedules (maintenance.md section 3), pure: no clock, no
//! I/O. The pipeline hands in "now" (the wall clock live, the watermark in replay)
//! and the device's meters, and turns the [`Action`]s into tickets.
//!
//! Rules, and the readings taken where the spec is silent:
//! - A calendar plan is due `every` after its anchor: the commissioning date, then
//!   the local date of the last completion. A due date that is not a working day
//!   moves to the working day before it (a certification must not lapse over a
//!   holiday); it is due at the close of working hours that day, site time.
//! - The ticket opens `lead` before the due date, at the opening of working hours.
//! - A meter plan `every(x)` fires when the meter advanced `x` since the reading at
//!   the last completion; `reaches(x)` fires when the meter reaches `x`, and re-arms
//!   once it reads below `x` again (a replaced lamp). A meter-triggered inspection
//!   opens at once and is due `lead` later (or at the calendar due date if sooner).
//! - Calendar and meter triggers combine "whichever comes first"; one inspection is
//!   open per plan at a time. Completion resets both: the calendar counts from the
//!   completion date, the meter from its reading at completion.
//! - First start: the agent has no record of inspections before it was installed.
//!   It assumes past ones were done on schedule: the calendar anchor moves forward
//!   by whole periods to the current cycle (the first due moment, at the close of its
//!   working day, not before the schedule starts), and an `every` meter counts from the last whole multiple
//!   of `x` below its first reading. A `reaches` meter already past its threshold
//!   fires at once: the part needs replacing whatever the history.
//! - Past its due time, an open inspection is overdue: reported once.

use crate::vecmap::VecMap;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::calendar::{BusinessCalendar, CalendarError};
use super::span::Span;

/// How a meter calls for an inspection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MeterRule {
    /// Each time the meter advanced this much since the last completion.
    Every(f64),
    /// When the meter reaches this value (re-armed below it).
    Reaches(f64),
}

impl MeterRule {
    /// The rule's number.
    pub fn threshold(self) -> f64 {
        match self {
            MeterRule::Every(x) | MeterRule::Reaches(x) => x,
        }
    }

    /// The same rule with another number (a config override).
    pub fn with_threshold(self, x: f64) -> MeterRule {
        match self {
            MeterRule::Every(_) => MeterRule::Every(x),
            MeterRule::Reaches(_) => MeterRule::Reaches(x),
        }
    }
}

/// A meter trigger of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterTrigger {
    /// The plugin's meter name.
    pub meter: String,
    /// When it fires.
    pub rule: MeterRule,
}

/// One inspection plan of one device, plugin defaults and config overrides merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Stable id (`semiannual`).
    pub id: String,
    /// Title for people.
    pub title: String,
    /// Calendar cadence.
    pub every: Option<Span>,
    /// Usage trigger.
    pub meter: Option<MeterTrigger>,
    /// What the visit checks (shared by the devices of a type: sites have thousands).
    pub checklist: std::sync::Arc<[String]>,
}

/// What called for an inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The calendar cadence.
    Calendar,
    /// A usage meter.
    Meter,
}

impl Trigger {
    /// `calendar` or `meter`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Calendar => "calendar",
            Trigger::Meter => "meter",
        }
    }
}

/// An inspection that is open (its ticket opened, not yet completed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    /// Occurrence number of this plan on this device, from 1 (part of the ticket id).
    pub number: u32,
    /// When the ticket opened (ms).
    pub opened_ms: i64,
    /// When it is due (ms).
    pub due_ms: i64,
    /// What called for it.
    pub trigger: Trigger,
    /// The meter reading that triggered it, for a meter trigger.
    #[serde(default)]
    pub meter_value: Option<f64>,
    /// The calendar anchor it was counted from (for the ticket's description).
    pub anchor: Date,
    /// The anchor is the completion of the previous inspection (not commissioning,
    /// nor the first-start rule).
    #[serde(default)]
    pub after_completion: bool,
    /// Overdue was reported.
    #[serde(default)]
    pub overdue: bool,
}

/// The schedule of one plan on one device; kept in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanState {
    /// The date the calendar period counts from.
    pub anchor: Date,
    /// When this schedule (re)started: set up or last completed (ms). A ticket is
    /// never dated before it.
    pub since_ms: i64,
    /// `every` meters: the reading the advance counts from (set at the first reading).
    #[serde(default)]
    pub meter_base: Option<f64>,
    /// `reaches` meters: armed (fires when the meter reaches the threshold).
    #[serde(default = "armed")]
    pub armed: bool,
    /// Occurrences opened so far.
    #[serde(default)]
    pub occurrences: u32,
    /// The open inspection.
    #[serde(default)]
    pub open: Option<Occurrence>,
    /// The last completion (ms).
    #[serde(default)]
    pub last_completed_ms: Option<i64>,
}

fn armed() -> bool {
    true
}

/// What the schedule asks of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open an inspection ticket.
    Open(Occurrence),
    /// The open inspection passed its due time.
    Overdue(Occurrence),
}

/// A schedule could not be computed (a date out of range).
#[derive(Debug, thiserror::Error)]
#[error("inspection schedule: {0}")]
pub struct ScheduleError(#[from] CalendarError);

fn range(e: jiff::Error) -> ScheduleError {
    ScheduleError(CalendarError::OutOfRange(e))
}

/// Site-wide scheduling facts.
#[derive(Debug, Clone, Copy)]
pub struct Scheduling<'a> {
    /// The site calendar (time zone, working days).
    pub calendar: &'a BusinessCalendar,
    /// How long before its due date an inspection ticket opens.
    pub lead: Span,
}

impl Scheduling<'_> {
    /// Due instant of a calendar plan counted from `anchor`.
    pub fn due(&self, anchor: Date, every: Span) -> Result<i64, ScheduleError> {
        let date = every.after(anchor).map_err(range)?;
        let date = self.calendar.working_day_on_or_before(date)?;
        Ok(self.calendar.closing(date)?.as_millisecond())
    }

    /// When the ticket of an inspection due at `due_ms` opens.
    pub fn opens(&self, due_ms: i64) -> Result<i64, ScheduleError> {
        let due = Timestamp::from_millisecond(due_ms).map_err(range)?;
        let date = self.lead.before(self.calendar.local_date(due)).map_err(range)?;
        Ok(self.calendar.opening(date)?.as_millisecond().min(due_ms))
    }

    /// `at + lead`, as an instant.
    fn after_lead(&self, at_ms: i64) -> Result<i64, ScheduleError> {
        let at = Timestamp::from_millisecond(at_ms).map_err(range)?;
        let tz = self.calendar.time_zone();
        let local = at.to_zoned_datetime(tz.clone());
        let span = match self.lead {
            Span::Days(d) => jiff::Span::new().try_days(i64::from(d)),
            Span::Months(m) => jiff::Span::new().try_months(i64::from(m)),
        }
        .map_err(range)?;
        Ok(local.checked_add(span).map_err(range)?.timestamp().as_millisecond())
    }

    fn local_date(&self, ms: i64) -> Result<Date, ScheduleError> {
        Ok(self.calendar.local_date(Timestamp::from_millisecond(ms).map_err(range)?))
    }

    /// A new schedule for a plan, started at `now_ms` for a device commissioned on
    /// `commissioned` (see the module docs for the first-start rule).
    pub fn start(
        &self,
        plan: &Plan,
        commissioned: Date,
        now_ms: i64,
    ) -> Result<PlanState, ScheduleError> {
        let mut anchor = commissioned;
        if let Some(every) = plan.every {
            // The due moment, not the due date: an inspection due today whose
            // working hours are over (or due on a weekend, moved to the Friday
            // before) is past, and assumed done like the earlier ones. Bounded: a
            // period is at least a day, and dates end in year 9999.
            while self.due(anchor, every)? < now_ms {
                anchor = every.after(anchor).map_err(range)?;
            }
        }
        Ok(PlanState {
            anchor,
            since_ms: now_ms,
            meter_base: None,
            armed: true,
            occurrences: 0,
            open: None,
            last_completed_ms: None,
        })
    }

    /// Brings a plan's schedule up to `now_ms` with the device's current `meters`.
    pub fn advance(
        &self,
        plan: &Plan,
        state: &mut PlanState,
        meters: &VecMap<String, f64>,
        now_ms: i64,
    ) -> Result<Option<Action>, ScheduleError> {
        let reading = plan.meter.as_ref().and_then(|t| Some((t.rule, *meters.get(&t.meter)?)));
        if let Some((rule, value)) = reading {
            match rule {
                MeterRule::Every(x) if state.meter_base.is_none() => {
                    state.meter_base = Some(if x > 0.0 { (value / x).floor() * x } else { value });
                }
                MeterRule::Reaches(x) if value < x => state.armed = true,
                _ => {}
            }
        }
        if let Some(open) = &mut state.open {
            if !open.overdue && now_ms >= open.due_ms {
                open.overdue = true;
                return Ok(Some(Action::Overdue(open.clone())));
            }
            return Ok(None);
        }
        let calendar_due = plan.every.map(|every| self.due(state.anchor, every)).transpose()?;
        if let Some(due) = calendar_due {
            let opens = self.opens(due)?;
            if now_ms >= opens {
                return Ok(Some(self.open(state, Trigger::Calendar, opens, due, None)));
            }
        }
        let fired = reading.filter(|&(rule, value)| match rule {
            MeterRule::Every(x) => state.meter_base.is_some_and(|base| value - base >= x),
            MeterRule::Reaches(x) => state.armed && value >= x,
        });
        if let Some((rule, value)) = fired {
            if let MeterRule::Reaches(_) = rule {
                state.armed = false;
            }
            let mut due = self.after_lead(now_ms)?;
            if let Some(c) = calendar_due {
                due = due.min(c);
            }
            return Ok(Some(self.open(state, Trigger::Meter, now_ms, due, Some(value))));
        }
        Ok(None)
    }

    fn open(
        &self,
        state: &mut PlanState,
        trigger: Trigger,
        at_ms: i64,
        due_ms: i64,
        meter_value: Option<f64>,
    ) -> Action {
        state.occurrences += 1;
        let occurrence = Occurrence {
            number: state.occurrences,
            opened_ms: at_ms.max(state.since_ms),
            due_ms,
            trigger,
            meter_value,
            anchor: state.anchor,
            after_completion: state.last_completed_ms.is_some(),
            overdue: false,
        };
        state.open = Some(occurrence.clone());
        Action::Open(occurrence)
    }

    /// The inspection was done at `at_ms`: the schedule restarts from there (calendar
    /// from the local date, meters from their readings). Returns the inspection that
    /// was open, if any.
    pub fn complete(
        &self,
        plan: &Plan,
        state: &mut PlanState,
        meters: &VecMap<String, f64>,
        at_ms: i64,
    ) -> Result<Option<Occurrence>, ScheduleError> {
        state.anchor = self.local_date(at_ms)?;
        state.since_ms = at_ms;
        state.last_completed_ms = Some(at_ms);
        if let Some(t) = &plan.meter
            && let Some(&value) = meters.get(&t.meter)
        {
            match t.rule {
                MeterRule::Every(_) => state.meter_base = Some(value),
                // Still past the threshold: the part was not replaced; wait until it
                // reads below again rather than firing at once.
                MeterRule::Reaches(x) => state.armed = value < x,
            }
        }
        Ok(state.open.take())
    }

    /// The next instant `advance` has something to do without a new meter reading:
    /// the open inspection's due time (until reported overdue), or when the next
    /// calendar inspection opens.
    pub fn next_wake(&self, plan: &Plan, state: &PlanState) -> Option<i64> {
        match &state.open {
            Some(o) if !o.overdue => Some(o.due_ms),
            Some(_) => None,
            None => {
                let due = self.due(state.anchor, plan.every?).ok()?;
                self.opens(due).ok()
            }
        }
    }

    /// The next due time of a plan: the open inspection's, else the calendar's.
    pub fn next_due(&self, plan: &Plan, state: &PlanState) -> Option<i64> {
        match &state.open {
            Some(o) => Some(o.due_ms),
            None => self.due(state.anchor, plan.every?).ok(),
        }
    }
}

#[cfg(test)]
mod tests;
