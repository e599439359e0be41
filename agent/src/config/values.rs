//! Values people write in config files: durations (`"2m"`, `"10 min"`, `"7d"`), dates,
//! weekdays, working hours, SLA due times. Each parses from a string with an error
//! message that says what to write instead.
//!
//! Each type derives `Deserialize` through `#[serde(try_from = …)]` from a text proxy:
//! serde reads the proxy (whose `expecting` says what to write when the value is not
//! text at all: `timeout = 10`), the `TryFrom` conversion parses it.

use std::fmt;

use jiff::civil::{Date, Time, Weekday};
use jiff::{SignedDuration, SpanRelativeTo};
use serde::Deserialize;

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

/// Declares a text proxy: a string, or any other TOML value, which is refused with
/// what to write instead and what was found.
macro_rules! text {
    ($name:ident, $expecting:literal) => {
        #[doc = concat!("Config text read for ", $expecting, ".")]
        #[derive(Deserialize)]
        #[serde(untagged)]
        pub(crate) enum $name {
            /// The text as written.
            Text(String),
            /// Anything else (refused).
            Other(toml::Value),
        }

        impl $name {
            fn text(self) -> Result<String, String> {
                match self {
                    $name::Text(s) => Ok(s),
                    $name::Other(v) => Err(format!("{}, found {}", $expecting, describe(&v))),
                }
            }
        }
    };
}

text!(DurText, "expected a duration like \"30s\", \"10m\" or \"7d\"");
text!(LimitText, "expected a duration like \"5m\", or \"off\"");
text!(DueText, "expected a duration like \"4h\" or \"next-inspection\"");
text!(WeekdayText, "expected a weekday like \"mon\"");
text!(HoursText, "expected working hours like \"09:00-18:00\"");

/// A date as TOML has it: a bare local date (`2025-03-01`) or a string; any other
/// value is refused with what was found.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum DateText {
    /// `"2025-03-01"`.
    Text(String),
    /// `2025-03-01`, or anything else (a time or offset is refused).
    Other(toml::Value),
}

impl DateText {
    fn text(self) -> Result<String, String> {
        match self {
            DateText::Text(s) => Ok(s),
            DateText::Other(toml::Value::Datetime(dt))
                if dt.time.is_none() && dt.offset.is_none() =>
            {
                Ok(dt.to_string())
            }
            DateText::Other(v) => {
                Err(format!("expected a date like 2025-03-01, found {}", describe(&v)))
            }
        }
    }
}

/// A duration as written in config (see [`parse_duration`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DurText")]
pub(crate) struct Dur(pub SignedDuration);

impl TryFrom<DurText> for Dur {
    type Error = String;
    fn try_from(t: DurText) -> Result<Self, String> {
        parse_duration(&t.text()?).map(Dur)
    }
}

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

/// A limit as written in config: a duration (see [`parse_duration`]) or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "LimitText")]
pub(crate) struct Limit(pub Option<Dur>);

impl TryFrom<LimitText> for Limit {
    type Error = String;
    fn try_from(t: LimitText) -> Result<Self, String> {
        let s = t.text()?;
        if s.trim() == "off" {
            return Ok(Limit(None));
        }
        parse_duration(&s).map(|d| Limit(Some(Dur(d)))).map_err(|e| format!("{e}, or \"off\""))
    }
}

/// An SLA due time: a duration, or `"next-inspection"` (level 4 faults wait for the
/// next planned inspection visit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DueText")]
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

impl TryFrom<DueText> for Due {
    type Error = String;
    fn try_from(t: DueText) -> Result<Self, String> {
        let s = t.text()?;
        if s.trim() == "next-inspection" {
            return Ok(Due::NextInspection);
        }
        parse_duration(&s).map(Due::After).map_err(|e| format!("{e}, or \"next-inspection\""))
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DateText")]
pub(crate) struct DateValue(pub Date);

impl TryFrom<DateText> for DateValue {
    type Error = String;
    fn try_from(t: DateText) -> Result<Self, String> {
        parse_date(&t.text()?).map(DateValue)
    }
}

/// A holiday: one date, or an inclusive range `"2026-10-01..2026-10-07"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DateText")]
pub(crate) struct Holiday {
    pub first: Date,
    pub last: Date,
}

impl TryFrom<DateText> for Holiday {
    type Error = String;
    fn try_from(t: DateText) -> Result<Self, String> {
        let s = t.text()?;
        match s.split_once("..") {
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
        }
    }
}

/// A weekday name: `mon`, `tue`, … (full English names accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "WeekdayText")]
pub(crate) struct WeekdayName(pub Weekday);

impl TryFrom<WeekdayText> for WeekdayName {
    type Error = String;
    fn try_from(t: WeekdayText) -> Result<Self, String> {
        let s = t.text()?;
        let day = match s.trim().to_ascii_lowercase().as_str() {
            "mon" | "monday" => Weekday::Monday,
            "tue" | "tuesday" => Weekday::Tuesday,
            "wed" | "wednesday" => Weekday::Wednesday,
            "thu" | "thursday" => Weekday::Thursday,
            "fri" | "friday" => Weekday::Friday,
            "sat" | "saturday" => Weekday::Saturday,
            "sun" | "sunday" => Weekday::Sunday,
            _ => {
                return Err(format!(
                    "`{s}` is not a weekday: write mon, tue, wed, thu, fri, sat or sun"
                ));
            }
        };
        Ok(WeekdayName(day))
    }
}

/// Working hours `"09:00-18:00"`; the end may be `24:00` (end of day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "HoursText")]
pub(crate) struct HoursValue {
    pub start: Time,
    pub end: Time,
}

impl TryFrom<HoursText> for HoursValue {
    type Error = String;
    fn try_from(t: HoursText) -> Result<Self, String> {
        parse_hours(&t.text()?)
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

/// "the string \"x\"", "the integer 5": how a TOML value is named in messages.
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
