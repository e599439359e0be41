//! The maintenance domain, pure (no I/O): calendar spans, business calendar and SLA
//! due times, inspection schedules, warranty and coverage.

pub mod calendar;
pub mod inspection;
pub mod sla;
pub mod span;
pub mod warranty;

pub use calendar::{BusinessCalendar, CalendarError, CalendarRules, rfc3339};
pub use sla::{LevelTargets, SlaDue, SlaError, SlaOutcome, SlaTable, Target, met};
pub use span::Span;
pub use warranty::{Coverage, WarrantyTerms, coverage};
