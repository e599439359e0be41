//! The operations register (maintenance.md section 4: the periodic "equipment and
//! operation register"), built from a [`SiteArchive`] for a month, quarter or year.
//! Pure: no clock, no files; the caller passes the archive (with its `generated_ms`)
//! and writes the output.
//!
//! # Use
//! ```
//! # use tend_report::{self as report, Period};
//! # use tend_agent::store::archive::SiteArchive;
//! # fn demo(archive: &SiteArchive) -> Result<(), Box<dyn std::error::Error>> {
//! let period = Period::parse("2026-Q3")?; // also `2026-09` and `2026`
//! let register = report::build(archive, &period)?; // fails only on an unknown time zone
//! let markdown: String = register.to_markdown();
//! let html: String = register.to_html(); // one standalone page, inline SVG charts
//! println!("{}", register.summary_line());
//! # Ok(()) }
//! ```
//! [`Report`] is also `Serialize` (for `--json`). With no period given, a caller can
//! take `Period::containing(PeriodKind::Quarter, today)?.previous()?`.
//!
//! # Readings
//! - Periods are civil days in the site's time zone: `2026-Q3` runs from
//!   2026-07-01 00:00 to 2026-10-01 00:00 local time.
//! - A fault ticket belongs to the period it opened in. Its level is the final one
//!   (after escalations); its SLA outcomes use all the archive knows at generation,
//!   so a Q3 ticket closed in October counts as closed ([`model::respond_status`],
//!   [`model::resolve_status`] state the rules).
//! - Downtime is level-1 time, clipped to the period; an outage still open counts
//!   to the end of the period or the generation time, whichever is first.
//! - Warranty and contracts ending are looked ahead [`model::WARRANTY_HORIZON_DAYS`]
//!   from the report's as-of day: the last day of the period, or the generation day
//!   when the period has not ended. A register is about its period, and is usually
//!   produced days after it; "as of the period end" keeps re-runs identical.
//! - Device status and inspection plan states (overdue, due soon) are as of
//!   generation: the archive keeps no earlier snapshot of them.
//!
//! # Layout
//! - [`period`]: `2026-Q3` / `2026-09` / `2026` and their instant ranges in a zone.
//! - [`model`]: the register's content and [`build`].
//! - `markdown`, `html`: the renderers; `html` writes its page with maud and takes its
//!   inline SVG charts from `chart`.

mod chart;
mod html;
mod markdown;
pub mod model;
pub mod period;

pub use model::{Report, ReportError, build};
pub use period::{Period, PeriodError, PeriodKind, RangeError};

#[cfg(doc)]
use tend_agent::store::archive::SiteArchive;

impl Report {
    /// The register as Markdown.
    pub fn to_markdown(&self) -> String {
        markdown::render(self)
    }

    /// The register as a standalone HTML page.
    pub fn to_html(&self) -> String {
        html::render(self)
    }
}

#[cfg(test)]
mod tests;
