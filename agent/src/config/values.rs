//! Values people write in config files: durations (`"2m"`, `"10 min"`, `"7d"`), dates,
//! weekdays, working hours, SLA due times. Each parses from a string with an error
//! message that says what to write instead.

use std::fmt;

use jiff::civil::{Date, Time, Weekday};
use jiff::{SignedDuration, SpanRelativeTo};
use serde::{Deserialize, Deserializer};

/// Parses a human duration: `"30s"`, `"2m"`, `"10 min"`, `"1h30m"`, `"7d"`, `"2w"`,
/// `"100ms"` (jiff's friendly format; a day is 24 hours, a week 7 days). Negative
/// durations and months or years (not a fixed length) are refused.
pub fn parse_duration(s: &str) -> Result<SignedDuration, String> {
    let t = s.trim();
    let hint = "write a number and a unit, like 30s, 10m, 2h or 7d";
    if t.is_empty() {
        return Err(format!("an empty string is not a duration: {hint}"));
    }
    let d = match t.parse::<SignedDuration>() {
        Ok(d) => d,
        Err(_) => {
            let span: jiff::Span =
                t.parse().map_err(|_| format!("`{s}` is not a duration: {hint}"))?;
            if span.get_years() != 0 || span.get_months() != 0 {
                return Err(format!(
                    "`{s}` is not a fixed duration (months and years vary in length): {hint}"
                ));
            }
            span.to_duration(SpanRelativeTo::days_are_24_hours())
                .map_err(|e| format!("`{s}` is not a duration: {e}"))?
        }
    };
    if d.is_negative() {
        return Err(format!("`{s}` is negative: durations count forward"));
    }
    Ok(d)
}

/// Formats a duration the way people write it in config (`10m`, `1h 30m`).
pub fn format_duration(d: SignedDuration) -> String {
    format!("{d:#}")
}

/// A duration as written in config (see [`parse_duration`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dur(pub SignedDuration);

impl Dur {
    pub const fn secs(s: i64) -> Self {
        Self(SignedDuration::from_secs(s))
    }
    pub const fn mins(m: i64) -> Self {
        Self(SignedDuration::from_mins(m))
    }
    pub const fn hours(h: i64) -> Self {
        Self(SignedDuration::from_hours(h))
    }
    pub const fn millis(ms: i64) -> Self {
        Self(SignedDuration::from_millis(ms))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = expect_string(d, "a duration like \"30s\", \"10m\" or \"7d\"")?;
        parse_duration(&s).map(Dur).map_err(serde::de::Error::custom)
    }
}

/// A limit as written in config: a duration (see [`parse_duration`]) or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(pub Option<Dur>);

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = expect_string(d, "a duration like \"5m\", or \"off\"")?;
        if s.trim() == "off" {
            return Ok(Limit(None));
        }
        parse_duration(&s)
            .map(|d| Limit(Some(Dur(d))))
            .map_err(|e| serde::de::Error::custom(format!("{e}, or \"off\"")))
    }
}

/// An SLA due time: a duration, or `"next-inspection"` (level 4 faults wait for the
/// next planned inspection visit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Due this long after the ticket opens.
    After(SignedDuration),
    /// Due at the device's next planned inspection.
    NextInspection,
}

impl fmt::Display for Due {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Due::After(d) => write!(f, "{d:#}"),
            Due::NextInspection => f.write_str("next-inspection"),
        }
    }
}

impl<'de> Deserialize<'de> for Due {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = expect_string(d, "a duration like \"4h\" or \"next-inspection\"")?;
        if s.trim() == "next-inspection" {
            return Ok(Due::NextInspection);
        }
        parse_duration(&s)
            .map(Due::After)
            .map_err(|e| serde::de::Error::custom(format!("{e}, or \"next-inspection\"")))
    }
}

/// Parses a date `YYYY-MM-DD`.
pub(crate) fn parse_date(s: &str) -> Result<Date, String> {
    s.trim()
        .parse::<Date>()
        .map_err(|_| format!("`{s}` is not a date: write YYYY-MM-DD, like 2025-03-01"))
}

/// A date as written in TOML: a bare local date (`2025-03-01`) or a string
/// (`"2025-03-01"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateValue(pub Date);

impl<'de> Deserialize<'de> for DateValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = date_text(d)?;
        parse_date(&s).map(DateValue).map_err(serde::de::Error::custom)
    }
}

/// A holiday: one date, or an inclusive range `"2026-10-01..2026-10-07"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Holiday {
    pub first: Date,
    pub last: Date,
}

impl<'de> Deserialize<'de> for Holiday {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = date_text(d)?;
        let parsed = match s.split_once("..") {
            Some((a, b)) => parse_date(a).and_then(|first| {
                let last = parse_date(b)?;
                if last < first {
                    return Err(format!("`{s}`: the range ends before it starts"));
                }
                if first.until(last).map_or(true, |sp| sp.get_days() > 366) {
                    return Err(format!("`{s}`: a holiday range is at most a year"));
                }
                Ok(Holiday { first, last })
            }),
            None => parse_date(&s).map(|d| Holiday { first: d, last: d }),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

/// A weekday name: `mon`, `tue`, … (full English names accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WeekdayName(pub Weekday);

impl<'de> Deserialize<'de> for WeekdayName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = expect_string(d, "a weekday like \"mon\"")?;
        let day = match s.trim().to_ascii_lowercase().as_str() {
            "mon" | "monday" => Weekday::Monday,
            "tue" | "tuesday" => Weekday::Tuesday,
            "wed" | "wednesday" => Weekday::Wednesday,
            "thu" | "thursday" => Weekday::Thursday,
            "fri" | "friday" => Weekday::Friday,
            "sat" | "saturday" => Weekday::Saturday,
            "sun" | "sunday" => Weekday::Sunday,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "`{s}` is not a weekday: write mon, tue, wed, thu, fri, sat or sun"
                )));
            }
        };
        Ok(WeekdayName(day))
    }
}

/// Working hours `"09:00-18:00"`; the end may be `24:00` (end of day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HoursValue {
    pub start: Time,
    pub end: Time,
}

impl<'de> Deserialize<'de> for HoursValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = expect_string(d, "working hours like \"09:00-18:00\"")?;
        parse_hours(&s).map_err(serde::de::Error::custom)
    }
}

fn parse_hours(s: &str) -> Result<HoursValue, String> {
    let bad = |why: &str| format!("`{s}` is not working hours like \"09:00-18:00\": {why}");
    let (a, b) = s.split_once('-').ok_or_else(|| bad("write start-end"))?;
    let time = |t: &str, end: bool| -> Result<Time, String> {
        let t = t.trim();
        if end && t == "24:00" {
            return Ok(Time::MAX);
        }
        let (h, m) = t.split_once(':').ok_or_else(|| bad("write times as HH:MM"))?;
        let h: i8 = h.parse().map_err(|_| bad("write times as HH:MM"))?;
        let m: i8 = m.parse().map_err(|_| bad("write times as HH:MM"))?;
        Time::new(h, m, 0, 0).map_err(|_| bad("hours are 00..23 and minutes 00..59"))
    };
    let start = time(a, false)?;
    let end = time(b, true)?;
    if end <= start {
        return Err(bad("the end must be after the start"));
    }
    Ok(HoursValue { start, end })
}

/// Reads a TOML value that should be a string, with `what` in the error.
fn expect_string<'de, D: Deserializer<'de>>(d: D, what: &'static str) -> Result<String, D::Error> {
    struct V(&'static str);
    impl serde::de::Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
    }
    d.deserialize_str(V(what))
}

/// Reads a TOML date (bare or quoted) as text.
fn date_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match toml::Value::deserialize(d)? {
        toml::Value::String(s) => Ok(s),
        toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => Ok(dt.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a date like 2025-03-01, found {}",
            describe(&other)
        ))),
    }
}

/// "a string `x`", "an integer 5": how a TOML value is named in messages.
pub(crate) fn describe(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("the string \"{s}\""),
        toml::Value::Integer(i) => format!("the integer {i}"),
        toml::Value::Float(f) => format!("the number {f}"),
        toml::Value::Boolean(b) => format!("the boolean {b}"),
        toml::Value::Datetime(d) => format!("the date-time {d}"),
        toml::Value::Array(_) => "an array".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        let ok = |s: &str| parse_duration(s).map_err(|e| e.to_string());
        assert_eq!(ok("2m"), Ok(SignedDuration::from_mins(2)));
        assert_eq!(ok("10 min"), Ok(SignedDuration::from_mins(10)));
        assert_eq!(ok("10 minutes"), Ok(SignedDuration::from_mins(10)));
        assert_eq!(ok("30s"), Ok(SignedDuration::from_secs(30)));
        assert_eq!(ok("100ms"), Ok(SignedDuration::from_millis(100)));
        assert_eq!(ok("1h30m"), Ok(SignedDuration::from_mins(90)));
        assert_eq!(ok("7d"), Ok(SignedDuration::from_hours(168)));
        assert_eq!(ok("5 days"), Ok(SignedDuration::from_hours(120)));
        assert_eq!(ok("2w"), Ok(SignedDuration::from_hours(336)));
        assert_eq!(ok(" 0s "), Ok(SignedDuration::ZERO));
        for bad in ["", "5", "abc", "-5m", "1 fortnight", "3 months", "1y"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(parse_duration("3 months").is_err_and(|e| e.contains("months and years")));
        assert_eq!(format_duration(SignedDuration::from_mins(90)), "1h 30m");
    }

    #[test]
    fn hours_parse() {
        let h = parse_hours("09:00-18:30").ok();
        assert_eq!(
            h,
            Some(HoursValue {
                start: jiff::civil::time(9, 0, 0, 0),
                end: jiff::civil::time(18, 30, 0, 0)
            })
        );
        assert_eq!(parse_hours("00:00-24:00").ok().map(|h| h.end), Some(Time::MAX));
        for bad in ["9-18", "18:00-09:00", "09:00", "25:00-26:00", "09:00-09:00"] {
            assert!(parse_hours(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
