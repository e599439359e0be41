//! The site business calendar: which instants are working time (maintenance.md §2).
//!
//! A site works on some weekdays between an opening and a closing time in its own
//! time zone, except on public holidays, and also on "extra" working days: China
//! moves working days onto weekends around long holidays (调休), so a Saturday can
//! be a normal working day. Everything here is pure: the caller passes the instants.

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;

/// A calendar that cannot be built or an instant that it cannot place.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The time zone name is not in the time zone database.
    #[error("unknown time zone `{name}`: use an IANA name such as Asia/Shanghai")]
    UnknownTimeZone {
        /// The name as configured.
        name: String,
        /// Why jiff rejected it.
        #[source]
        source: jiff::Error,
    },
    /// Closing time is not after opening time (overnight shifts are not supported).
    #[error("working hours close at {close} but open at {open}: closing must be after opening")]
    HoursOutOfOrder {
        /// Configured opening time.
        open: Time,
        /// Configured closing time.
        close: Time,
    },
    /// No weekday is a working weekday.
    #[error("the business calendar needs at least one working weekday")]
    NoWorkingWeekday,
    /// A date is listed both as a holiday and as an extra working day.
    #[error("{0} is listed both as a holiday and as an extra working day")]
    HolidayAndWorkingDay(Date),
    /// Date arithmetic left the range jiff supports (years -9999..=9999).
    #[error("date or time out of range")]
    OutOfRange(#[source] jiff::Error),
}

/// Working weekdays, hours and special days of a site, before validation.
///
/// `Default` is Monday to Friday, 09:00 to 18:00, no holidays. The seeds (the
/// service plans in `shared/seeds/`) state no office hours of their own — the only
/// "9:00-18:30" in them is the document website's help-desk boilerplate — so the
/// default is the usual Chinese office day, 09:00-18:00; a site overrides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarRules {
    /// Weekdays that are working days unless they are holidays.
    pub weekdays: Vec<Weekday>,
    /// Start of working hours, local time (inclusive).
    pub open: Time,
    /// End of working hours, local time (exclusive).
    pub close: Time,
    /// Days off that would otherwise be working days (public holidays).
    pub holidays: Vec<Date>,
    /// Days worked that would otherwise be days off (make-up working weekends, 调休).
    pub extra_working_days: Vec<Date>,
}

impl Default for CalendarRules {
    fn default() -> Self {
        CalendarRules {
            weekdays: vec![
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
            ],
            open: Time::constant(9, 0, 0, 0),
            close: Time::constant(18, 0, 0, 0),
            holidays: Vec::new(),
            extra_working_days: Vec::new(),
        }
    }
}

/// A validated site business calendar in the site's time zone.
#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    /// The site's zone: working hours and dates are local to the building.
    tz: TimeZone,
    /// Working weekdays, indexed Monday = 0.
    weekdays: [bool; 7],
    /// Opening time (inclusive).
    open: Time,
    /// Closing time (exclusive).
    close: Time,
    /// Holidays win over the weekday rule.
    holidays: BTreeSet<Date>,
    /// Make-up working days win over the weekday rule.
    extra: BTreeSet<Date>,
}

impl BusinessCalendar {
    /// Builds a calendar for the IANA time zone `time_zone` (e.g. `Asia/Shanghai`).
    pub fn new(time_zone: &str, rules: CalendarRules) -> Result<Self, CalendarError> {
        let tz = TimeZone::get(time_zone).map_err(|source| CalendarError::UnknownTimeZone {
            name: time_zone.to_owned(),
            source,
        })?;
        Self::with_time_zone(tz, rules)
    }

    /// Builds a calendar for an already resolved time zone.
    pub fn with_time_zone(tz: TimeZone, rules: CalendarRules) -> Result<Self, CalendarError> {
        if rules.close <= rules.open {
            return Err(CalendarError::HoursOutOfOrder { open: rules.open, close: rules.close });
        }
        let mut weekdays = [false; 7];
        for day in &rules.weekdays {
            weekdays[weekday_index(*day)] = true;
        }
        if !weekdays.contains(&true) {
            return Err(CalendarError::NoWorkingWeekday);
        }
        let holidays: BTreeSet<Date> = rules.holidays.into_iter().collect();
        let extra: BTreeSet<Date> = rules.extra_working_days.into_iter().collect();
        if let Some(both) = holidays.intersection(&extra).next() {
            return Err(CalendarError::HolidayAndWorkingDay(*both));
        }
        Ok(BusinessCalendar { tz, weekdays, open: rules.open, close: rules.close, holidays, extra })
    }

    /// The site's time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The local calendar date at the site for an instant.
    pub fn local_date(&self, ts: Timestamp) -> Date {
        self.tz.to_datetime(ts).date()
    }

    /// Whether `date` is a working day: an extra working day, or a working weekday
    /// that is not a holiday.
    pub fn is_working_day(&self, date: Date) -> bool {
        if self.holidays.contains(&date) {
            return false;
        }
        self.extra.contains(&date) || self.weekdays[weekday_index(date.weekday())]
    }

    /// Whether `ts` is working time: a working day, local time in `[open, close)`.
    pub fn is_working_time(&self, ts: Timestamp) -> bool {
        let local = self.tz.to_datetime(ts);
        let t = local.time();
        self.is_working_day(local.date()) && self.open <= t && t < self.close
    }

    /// The first working instant at or after `ts`: `ts` itself during working time,
    /// otherwise the opening time of the next working day (possibly later today).
    pub fn next_working_start(&self, ts: Timestamp) -> Result<Timestamp, CalendarError> {
        if self.is_working_time(ts) {
            return Ok(ts);
        }
        let local = self.tz.to_datetime(ts);
        let mut day = local.date();
        if !(self.is_working_day(day) && local.time() < self.open) {
            day = self.next_working_day(day)?;
        }
        self.opening(day)
    }

    /// The opening instant of `date` at the site (whether or not it is a working
    /// day). An opening time skipped by a DST gap resolves to the instant after it.
    pub fn opening(&self, date: Date) -> Result<Timestamp, CalendarError> {
        self.tz.to_timestamp(date.to_datetime(self.open)).map_err(CalendarError::OutOfRange)
    }

    /// The closing instant of `date` at the site (end of working hours, whether or
    /// not it is a working day): when something "due on `date`" is due.
    pub fn closing(&self, date: Date) -> Result<Timestamp, CalendarError> {
        self.tz.to_timestamp(date.to_datetime(self.close)).map_err(CalendarError::OutOfRange)
    }

    /// `date` when it is a working day, else the last working day before it.
    /// Terminates like [`BusinessCalendar::add_working_days`].
    pub fn working_day_on_or_before(&self, date: Date) -> Result<Date, CalendarError> {
        let mut day = date;
        while !self.is_working_day(day) {
            day = day.yesterday().map_err(CalendarError::OutOfRange)?;
        }
        Ok(day)
    }

    /// The `n`-th working day after `date` (`date` itself is not counted; `n = 0`
    /// returns `date`). "A report within 3 working days" is `add_working_days(d, 3)`.
    pub fn add_working_days(&self, date: Date, n: u32) -> Result<Date, CalendarError> {
        let mut day = date;
        for _ in 0..n {
            day = self.next_working_day(day)?;
        }
        Ok(day)
    }

    /// The first working day strictly after `date`. Terminates: every run of seven
    /// days holds a working weekday, so only the finitely many holidays can delay it.
    fn next_working_day(&self, date: Date) -> Result<Date, CalendarError> {
        let mut day = date;
        loop {
            day = day.tomorrow().map_err(CalendarError::OutOfRange)?;
            if self.is_working_day(day) {
                return Ok(day);
            }
        }
    }
}

/// Formats `ts` as RFC 3339 in the site zone with seconds precision, e.g.
/// `2026-11-22T10:04:00+08:00`: the form tickets carry (central-api.md).
/// Fractional seconds are dropped (truncated).
pub fn rfc3339(ts: Timestamp, tz: &TimeZone) -> String {
    let whole = Timestamp::from_second(ts.as_second()).unwrap_or(ts);
    whole.display_with_offset(tz.to_offset(whole)).to_string()
}

/// Index of a weekday with Monday = 0 .. Sunday = 6.
fn weekday_index(day: Weekday) -> usize {
    // `to_monday_zero_offset` is always in 0..=6.
    usize::try_from(day.to_monday_zero_offset()).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn shanghai() -> BusinessCalendar {
        BusinessCalendar::new(
            "Asia/Shanghai",
            CalendarRules {
                // Illustrative: National Day on a Thursday and a make-up Saturday.
                holidays: vec![date(2026, 10, 1), date(2026, 10, 2)],
                extra_working_days: vec![date(2026, 10, 10)],
                ..CalendarRules::default()
            },
        )
        .unwrap()
    }

    fn berlin() -> BusinessCalendar {
        BusinessCalendar::new("Europe/Berlin", CalendarRules::default()).unwrap()
    }

    #[test]
    fn working_hours_edges_are_open_inclusive_close_exclusive() {
        let cal = shanghai();
        // Monday 2026-11-23, local times (+08:00).
        assert!(!cal.is_working_time(ts("2026-11-23T08:59:00+08:00")));
        assert!(!cal.is_working_time(ts("2026-11-23T08:59:59.999+08:00")));
        assert!(cal.is_working_time(ts("2026-11-23T09:00:00+08:00")));
        assert!(cal.is_working_time(ts("2026-11-23T17:59:00+08:00")));
        assert!(cal.is_working_time(ts("2026-11-23T17:59:59+08:00")));
        assert!(!cal.is_working_time(ts("2026-11-23T18:00:00+08:00")));
    }

    #[test]
    fn weekend_holiday_and_make_up_saturday() {
        let cal = shanghai();
        assert!(cal.is_working_day(date(2026, 11, 20))); // Friday
        assert!(!cal.is_working_day(date(2026, 11, 21))); // Saturday
        assert!(!cal.is_working_day(date(2026, 11, 22))); // Sunday
        assert!(!cal.is_working_day(date(2026, 10, 1))); // Thursday, holiday
        assert!(!cal.is_working_time(ts("2026-10-01T10:00:00+08:00")));
        assert!(cal.is_working_day(date(2026, 10, 10))); // make-up Saturday
        assert!(cal.is_working_time(ts("2026-10-10T10:00:00+08:00")));
        assert!(!cal.is_working_time(ts("2026-10-10T18:00:00+08:00")));
        assert!(!cal.is_working_day(date(2026, 10, 17))); // ordinary Saturday
    }

    #[test]
    fn local_monday_while_utc_is_still_sunday() {
        let cal = shanghai();
        // 2026-11-22T23:30Z is Sunday in UTC but Monday 07:30 in Shanghai.
        let t = ts("2026-11-22T23:30:00Z");
        assert_eq!(cal.local_date(t), date(2026, 11, 23));
        assert!(!cal.is_working_time(t));
        assert_eq!(cal.next_working_start(t).unwrap(), ts("2026-11-23T01:00:00Z"));
        // 01:00Z Monday is 09:00 local: working time, though UTC says 01:00.
        assert!(cal.is_working_time(ts("2026-11-23T01:00:00Z")));
        // A UTC calendar sees Sunday at the same instant.
        let utc = BusinessCalendar::new("UTC", CalendarRules::default()).unwrap();
        assert!(!utc.is_working_day(utc.local_date(t)));
    }

    #[test]
    fn next_working_start_cases() {
        let cal = shanghai();
        // During working time: itself.
        let t = ts("2026-11-23T10:04:00+08:00");
        assert_eq!(cal.next_working_start(t).unwrap(), t);
        // Before opening on a working day: same day's opening.
        assert_eq!(
            cal.next_working_start(ts("2026-11-23T06:00:00+08:00")).unwrap(),
            ts("2026-11-23T09:00:00+08:00")
        );
        // Friday after closing: Monday's opening.
        assert_eq!(
            cal.next_working_start(ts("2026-11-20T18:00:00+08:00")).unwrap(),
            ts("2026-11-23T09:00:00+08:00")
        );
        // Wednesday evening before the holidays: skips Thu/Fri holidays and the
        // weekend, lands on Monday 2026-10-05.
        assert_eq!(
            cal.next_working_start(ts("2026-09-30T19:00:00+08:00")).unwrap(),
            ts("2026-10-05T09:00:00+08:00")
        );
        // Friday evening before a make-up Saturday: Saturday's opening.
        assert_eq!(
            cal.next_working_start(ts("2026-10-09T20:00:00+08:00")).unwrap(),
            ts("2026-10-10T09:00:00+08:00")
        );
    }

    #[test]
    fn dst_change_in_berlin() {
        let cal = berlin();
        // Friday 2026-03-27 is CET (+01:00): 09:00 local is 08:00Z.
        assert!(cal.is_working_time(ts("2026-03-27T08:00:00Z")));
        assert!(!cal.is_working_time(ts("2026-03-27T07:59:59Z")));
        // Clocks go forward on Sunday 2026-03-29; Monday is CEST (+02:00).
        assert!(cal.is_working_time(ts("2026-03-30T07:00:00Z")));
        assert!(!cal.is_working_time(ts("2026-03-30T06:59:59Z")));
        let next = cal.next_working_start(ts("2026-03-27T18:30:00+01:00")).unwrap();
        assert_eq!(next, ts("2026-03-30T07:00:00Z"));
        assert_eq!(rfc3339(next, cal.time_zone()), "2026-03-30T09:00:00+02:00");
        // Friday 18:30 CET to Monday 09:00 CEST: 62.5 h on the wall clock, but the
        // skipped hour makes it 61.5 h of elapsed time.
        let gap = next.duration_since(ts("2026-03-27T18:30:00+01:00"));
        assert_eq!(gap, jiff::SignedDuration::from_mins(61 * 60 + 30));
        // Back to CET on Sunday 2026-10-25.
        let next = cal.next_working_start(ts("2026-10-23T18:00:00+02:00")).unwrap();
        assert_eq!(rfc3339(next, cal.time_zone()), "2026-10-26T09:00:00+01:00");
    }

    #[test]
    fn add_working_days_skips_weekends_and_holidays() {
        let cal = shanghai();
        assert_eq!(cal.add_working_days(date(2026, 11, 20), 0).unwrap(), date(2026, 11, 20));
        assert_eq!(cal.add_working_days(date(2026, 11, 20), 1).unwrap(), date(2026, 11, 23));
        assert_eq!(cal.add_working_days(date(2026, 11, 18), 3).unwrap(), date(2026, 11, 23));
        // From a Saturday: Monday is the first.
        assert_eq!(cal.add_working_days(date(2026, 11, 21), 1).unwrap(), date(2026, 11, 23));
        // Tue 2026-09-29 + 3: Wed 30, (Thu/Fri holidays, weekend) Mon 5, Tue 6.
        assert_eq!(cal.add_working_days(date(2026, 9, 29), 3).unwrap(), date(2026, 10, 6));
        // Fri 2026-10-09 + 1 is the make-up Saturday.
        assert_eq!(cal.add_working_days(date(2026, 10, 9), 1).unwrap(), date(2026, 10, 10));
    }

    #[test]
    fn constructor_validates() {
        let bad_tz = BusinessCalendar::new("Mars/Olympus_Mons", CalendarRules::default());
        assert!(
            matches!(bad_tz, Err(CalendarError::UnknownTimeZone { name, .. }) if name == "Mars/Olympus_Mons")
        );
        let rules = CalendarRules {
            open: Time::constant(18, 0, 0, 0),
            close: Time::constant(9, 0, 0, 0),
            ..CalendarRules::default()
        };
        assert!(matches!(
            BusinessCalendar::new("UTC", rules),
            Err(CalendarError::HoursOutOfOrder { .. })
        ));
        let rules = CalendarRules { close: Time::constant(9, 0, 0, 0), ..CalendarRules::default() };
        assert!(matches!(
            BusinessCalendar::new("UTC", rules),
            Err(CalendarError::HoursOutOfOrder { .. })
        ));
        let rules = CalendarRules { weekdays: vec![], ..CalendarRules::default() };
        assert!(matches!(
            BusinessCalendar::new("UTC", rules),
            Err(CalendarError::NoWorkingWeekday)
        ));
        let rules = CalendarRules {
            holidays: vec![date(2026, 10, 10)],
            extra_working_days: vec![date(2026, 10, 10)],
            ..CalendarRules::default()
        };
        assert!(matches!(
            BusinessCalendar::new("UTC", rules),
            Err(CalendarError::HolidayAndWorkingDay(d)) if d == date(2026, 10, 10)
        ));
    }

    #[test]
    fn custom_weekdays_and_hours() {
        let rules = CalendarRules {
            weekdays: vec![Weekday::Saturday, Weekday::Sunday],
            open: Time::constant(8, 30, 0, 0),
            close: Time::constant(12, 0, 0, 0),
            ..CalendarRules::default()
        };
        let cal = BusinessCalendar::new("Asia/Shanghai", rules).unwrap();
        assert!(cal.is_working_time(ts("2026-11-21T08:30:00+08:00")));
        assert!(!cal.is_working_time(ts("2026-11-21T12:00:00+08:00")));
        assert!(!cal.is_working_time(ts("2026-11-23T10:00:00+08:00")));
        assert_eq!(
            cal.next_working_start(ts("2026-11-22T12:00:00+08:00")).unwrap(),
            ts("2026-11-28T08:30:00+08:00")
        );
    }

    #[test]
    fn rfc3339_uses_site_offset_and_whole_seconds() {
        let sh = TimeZone::get("Asia/Shanghai").unwrap();
        assert_eq!(rfc3339(ts("2026-11-22T02:04:00Z"), &sh), "2026-11-22T10:04:00+08:00");
        assert_eq!(rfc3339(ts("2026-11-22T02:04:05.987Z"), &sh), "2026-11-22T10:04:05+08:00");
        assert_eq!(
            rfc3339(ts("2026-11-22T02:04:00Z"), &TimeZone::UTC),
            "2026-11-22T02:04:00+00:00"
        );
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(rfc3339(ts("2026-07-01T12:00:00Z"), &berlin), "2026-07-01T14:00:00+02:00");
        assert_eq!(rfc3339(ts("2026-01-01T12:00:00Z"), &berlin), "2026-01-01T13:00:00+01:00");
    }
}
