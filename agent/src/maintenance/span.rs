//! Calendar spans as people write them in config: `"3y"`, `"18m"`, `"90d"`, `"2w"`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A calendar span: whole months (years are 12 months) or whole days.
///
/// Months are calendar months: 6 months after 2026-03-31 is 2026-09-30.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Span {
    /// Calendar days.
    Days(u32),
    /// Calendar months.
    Months(u32),
}

/// A span that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a calendar span: write a whole number and a unit, like 3y, 18m, 6w or 90d")]
pub struct SpanError(pub String);

impl FromStr for Span {
    type Err = SpanError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u32 = num.parse().map_err(|_| SpanError(s.to_owned()))?;
        let bad = || SpanError(s.to_owned());
        match unit.trim() {
            "y" | "year" | "years" => n.checked_mul(12).map(Span::Months).ok_or_else(bad),
            "m" | "mo" | "month" | "months" => Ok(Span::Months(n)),
            "w" | "week" | "weeks" => n.checked_mul(7).map(Span::Days).ok_or_else(bad),
            "d" | "day" | "days" => Ok(Span::Days(n)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Span::Months(m) if m % 12 == 0 && m > 0 => write!(f, "{}y", m / 12),
            Span::Months(m) => write!(f, "{m}m"),
            Span::Days(d) => write!(f, "{d}d"),
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Span {
    /// Adds this span to a civil date (month ends clamp: 01-31 + 1m = 02-28).
    pub fn after(self, date: jiff::civil::Date) -> Result<jiff::civil::Date, jiff::Error> {
        match self {
            Span::Days(d) => date.checked_add(jiff::Span::new().try_days(i64::from(d))?),
            Span::Months(m) => date.checked_add(jiff::Span::new().try_months(i64::from(m))?),
        }
    }
}

impl Span {
    /// Subtracts this span from a civil date (month ends clamp like [`Span::after`]).
    pub fn before(self, date: jiff::civil::Date) -> Result<jiff::civil::Date, jiff::Error> {
        match self {
            Span::Days(d) => date.checked_sub(jiff::Span::new().try_days(i64::from(d))?),
            Span::Months(m) => date.checked_sub(jiff::Span::new().try_months(i64::from(m))?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("3y".parse(), Ok(Span::Months(36)));
        assert_eq!("18m".parse(), Ok(Span::Months(18)));
        assert_eq!("2w".parse(), Ok(Span::Days(14)));
        assert_eq!(" 90 d".parse(), Ok(Span::Days(90)));
        assert!("y".parse::<Span>().is_err());
        assert!("3 fortnights".parse::<Span>().is_err());
        assert!("-1y".parse::<Span>().is_err());
    }

    #[test]
    fn month_arithmetic_clamps() {
        let d = jiff::civil::date(2026, 3, 31);
        assert_eq!(Span::Months(6).after(d).ok(), Some(jiff::civil::date(2026, 9, 30)));
        assert_eq!(Span::Days(1).after(d).ok(), Some(jiff::civil::date(2026, 4, 1)));
    }

    #[test]
    fn a_span_past_jiffs_range_is_an_error_not_a_panic() {
        let d = jiff::civil::date(2026, 3, 31);
        assert!(Span::Days(u32::MAX).after(d).is_err());
        assert!(Span::Months(u32::MAX).before(d).is_err());
    }
}
