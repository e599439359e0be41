//! Report periods as people write them: `2026-Q3`, `2026-09`, `2026`.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Serialize, Serializer};

/// How long a period is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    /// A calendar month (`2026-09`).
    Month,
    /// A calendar quarter (`2026-Q3`: July to September).
    Quarter,
    /// A calendar year (`2026`).
    Year,
}

/// A calendar period of the register: whole civil days, first day inclusive,
/// `end` exclusive. It becomes an instant range only in a time zone ([`Period::range`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Month, quarter or year.
    kind: PeriodKind,
    /// First day of the period.
    start: Date,
    /// First day after the period.
    end: Date,
}

/// A period that could not be parsed or does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// Not one of the accepted shapes.
    #[error(
        "`{0}` is not a report period: write a quarter (2026-Q3), a month (2026-09) or a year (2026)"
    )]
    Format(String),
    /// Year outside 1970..=9998.
    #[error("`{0}`: the year must be between 1970 and 9998")]
    Year(String),
    /// Month outside 1..=12.
    #[error("`{0}`: months are 01 to 12")]
    Month(String),
    /// Quarter outside 1..=4.
    #[error("`{0}`: quarters are Q1 to Q4")]
    Quarter(String),
}

/// A period's civil range could not be placed in the site's time zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("period {period} cannot be placed in time zone {zone}: {reason}")]
pub struct RangeError {
    /// The period label.
    pub period: String,
    /// The zone name.
    pub zone: String,
    /// What jiff said.
    pub reason: String,
}

impl Period {
    /// Parses `2026-Q3` (`q3` too), `2026-09` or `2026`; surrounding spaces are ignored.
    pub fn parse(text: &str) -> Result<Period, PeriodError> {
        let t = text.trim();
        let format = || PeriodError::Format(text.to_owned());
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let (year_text, rest) = match t.split_once('-') {
            Some((y, r)) => (y, Some(r)),
            None => (t, None),
        };
        if year_text.len() != 4 || !digits(year_text) {
            return Err(format());
        }
        let year: i16 = year_text.parse().map_err(|_| format())?;
        match rest {
            None => Period::year(year).map_err(|_| PeriodError::Year(text.to_owned())),
            Some(r) if r.len() == 2 && (r.starts_with('Q') || r.starts_with('q')) => {
                let q: i8 = r[1..].parse().map_err(|_| format())?;
                Period::quarter(year, q).map_err(|e| e.relabel(text))
            }
            Some(r) if r.len() == 2 && digits(r) => {
                let m: i8 = r.parse().map_err(|_| format())?;
                Period::month(year, m).map_err(|e| e.relabel(text))
            }
            Some(_) => Err(format()),
        }
    }

    /// A calendar month.
    pub fn month(year: i16, month: i8) -> Result<Period, PeriodError> {
        let label = format!("{year:04}-{month:02}");
        if !(1..=12).contains(&month) {
            return Err(PeriodError::Month(label));
        }
        let start = first_day(year, month).ok_or_else(|| PeriodError::Year(label.clone()))?;
        let end =
            start.checked_add(jiff::Span::new().months(1)).map_err(|_| PeriodError::Year(label))?;
        Ok(Period { kind: PeriodKind::Month, start, end })
    }

    /// A calendar quarter, 1..=4.
    pub fn quarter(year: i16, quarter: i8) -> Result<Period, PeriodError> {
        let label = format!("{year:04}-Q{quarter}");
        if !(1..=4).contains(&quarter) {
            return Err(PeriodError::Quarter(label));
        }
        let start = first_day(year, (quarter - 1) * 3 + 1)
            .ok_or_else(|| PeriodError::Year(label.clone()))?;
        let end =
            start.checked_add(jiff::Span::new().months(3)).map_err(|_| PeriodError::Year(label))?;
        Ok(Period { kind: PeriodKind::Quarter, start, end })
    }

    /// A calendar year.
    pub fn year(year: i16) -> Result<Period, PeriodError> {
        let label = format!("{year:04}");
        let start = first_day(year, 1).ok_or_else(|| PeriodError::Year(label.clone()))?;
        let end = first_day(year + 1, 1).ok_or(PeriodError::Year(label))?;
        Ok(Period { kind: PeriodKind::Year, start, end })
    }

    /// The period of `kind` that contains a civil day (e.g. today in the site's zone).
    pub fn containing(kind: PeriodKind, day: Date) -> Result<Period, PeriodError> {
        match kind {
            PeriodKind::Month => Period::month(day.year(), day.month()),
            PeriodKind::Quarter => Period::quarter(day.year(), (day.month() - 1) / 3 + 1),
            PeriodKind::Year => Period::year(day.year()),
        }
    }

    /// The period of the same kind just before this one (`2026-Q1` -> `2025-Q4`):
    /// the default a register run at the start of a period wants.
    pub fn previous(&self) -> Result<Period, PeriodError> {
        let day = self.start.yesterday().map_err(|_| PeriodError::Year(self.to_string()))?;
        Period::containing(self.kind, day)
    }

    /// Month, quarter or year.
    pub fn kind(&self) -> PeriodKind {
        self.kind
    }

    /// First day of the period.
    pub fn first_day(&self) -> Date {
        self.start
    }

    /// Last day of the period (inclusive).
    pub fn last_day(&self) -> Date {
        self.end.yesterday().unwrap_or(self.start)
    }

    /// First day after the period.
    pub fn end_day(&self) -> Date {
        self.end
    }

    /// The instants `[start, end)` of the period in a time zone: from midnight of the
    /// first day to midnight after the last day, local time (the first instant of
    /// the day when a time change skips midnight).
    pub fn range(&self, tz: &TimeZone) -> Result<(Timestamp, Timestamp), RangeError> {
        let at = |d: Date| {
            d.to_zoned_datetime(tz.clone()).map(|z| z.timestamp()).map_err(|e| RangeError {
                period: self.to_string(),
                zone: tz.iana_name().unwrap_or("?").to_owned(),
                reason: e.to_string(),
            })
        };
        Ok((at(self.start)?, at(self.end)?))
    }
}

/// The first day of a month, within the years a report can cover.
fn first_day(year: i16, month: i8) -> Option<Date> {
    if !(1970..=9999).contains(&year) {
        return None;
    }
    Date::new(year, month, 1).ok()
}

impl PeriodError {
    /// The same error, naming what the user wrote.
    fn relabel(self, text: &str) -> PeriodError {
        let t = text.to_owned();
        match self {
            PeriodError::Format(_) => PeriodError::Format(t),
            PeriodError::Year(_) => PeriodError::Year(t),
            PeriodError::Month(_) => PeriodError::Month(t),
            PeriodError::Quarter(_) => PeriodError::Quarter(t),
        }
    }
}

impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Period::parse(s)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let y = self.start.year();
        match self.kind {
            PeriodKind::Month => write!(f, "{y:04}-{:02}", self.start.month()),
            PeriodKind::Quarter => write!(f, "{y:04}-Q{}", (self.start.month() - 1) / 3 + 1),
            PeriodKind::Year => write!(f, "{y:04}"),
        }
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn quarters_months_and_years() {
        let q = Period::parse("2026-Q3").unwrap();
        assert_eq!((q.first_day(), q.last_day()), (date(2026, 7, 1), date(2026, 9, 30)));
        assert_eq!(q.kind(), PeriodKind::Quarter);
        assert_eq!(q.to_string(), "2026-Q3");
        let q4 = Period::parse(" 2026-q4 ").unwrap();
        assert_eq!((q4.first_day(), q4.end_day()), (date(2026, 10, 1), date(2027, 1, 1)));
        let m = Period::parse("2028-02").unwrap();
        assert_eq!((m.first_day(), m.last_day()), (date(2028, 2, 1), date(2028, 2, 29)));
        assert_eq!(m.to_string(), "2028-02");
        let y = Period::parse("2026").unwrap();
        assert_eq!((y.first_day(), y.last_day()), (date(2026, 1, 1), date(2026, 12, 31)));
        assert_eq!(y.to_string(), "2026");
    }

    #[test]
    fn bad_input_says_what_is_wrong() {
        for bad in [
            "",
            "Q3",
            "2026-Q",
            "2026-Q10",
            "2026-9",
            "26-09",
            "2026/09",
            "2026-09-01",
            "2026-Qx",
            "2026-H1",
            "+2026",
        ] {
            let e = Period::parse(bad).unwrap_err();
            assert!(matches!(e, PeriodError::Format(_)), "{bad}: {e:?}");
            assert!(e.to_string().contains("2026-Q3"), "{e}");
        }
        assert_eq!(Period::parse("2026-13").unwrap_err(), PeriodError::Month("2026-13".into()));
        assert_eq!(Period::parse("2026-00").unwrap_err(), PeriodError::Month("2026-00".into()));
        assert_eq!(Period::parse("2026-Q5").unwrap_err(), PeriodError::Quarter("2026-Q5".into()));
        assert_eq!(Period::parse("2026-Q0").unwrap_err(), PeriodError::Quarter("2026-Q0".into()));
        assert_eq!(Period::parse("1969").unwrap_err(), PeriodError::Year("1969".into()));
        assert!(Period::parse("9999-Q4").is_err());
    }

    #[test]
    fn containing_and_previous() {
        let p = |s: &str| Period::parse(s).unwrap();
        assert_eq!(
            Period::containing(PeriodKind::Quarter, date(2026, 9, 30)).unwrap(),
            p("2026-Q3")
        );
        assert_eq!(Period::containing(PeriodKind::Month, date(2026, 2, 28)).unwrap(), p("2026-02"));
        assert_eq!(Period::containing(PeriodKind::Year, date(2026, 2, 28)).unwrap(), p("2026"));
        assert_eq!(p("2026-Q1").previous().unwrap(), p("2025-Q4"));
        assert_eq!(p("2026-01").previous().unwrap(), p("2025-12"));
        assert_eq!(p("2026").previous().unwrap(), p("2025"));
        assert!(p("1970-01").previous().is_err());
    }

    #[test]
    fn range_is_local_midnights() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        let (start, end) = Period::parse("2026-Q3").unwrap().range(&tz).unwrap();
        assert_eq!(start.to_string(), "2026-06-30T16:00:00Z");
        assert_eq!(end.to_string(), "2026-09-30T16:00:00Z");
        // 2026-09-30T23:30+08:00 is 15:30Z: inside Q3 in Shanghai.
        let late: Timestamp = "2026-09-30T15:30:00Z".parse().unwrap();
        assert!(start <= late && late < end);
        // Daylight saving: October 2026 in Berlin has 31 days and 745 hours.
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let (s, e) = Period::parse("2026-10").unwrap().range(&berlin).unwrap();
        assert_eq!(e.duration_since(s).as_hours(), 31 * 24 + 1);
    }
}
