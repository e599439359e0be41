use crate::vecmap::VecMap;

use jiff::civil::{Date, date};

use super::*;
use crate::maintenance::calendar::CalendarRules;

fn calendar(tz: &str, holidays: Vec<Date>) -> BusinessCalendar {
    BusinessCalendar::new(tz, CalendarRules { holidays, ..CalendarRules::default() }).unwrap()
}

fn shanghai() -> BusinessCalendar {
    // National Day golden week 2026.
    let holidays = (1..=7).map(|d| date(2026, 10, d)).collect();
    calendar("Asia/Shanghai", holidays)
}

/// Milliseconds of an RFC 3339 time.
fn t(s: &str) -> i64 {
    s.parse::<Timestamp>().unwrap().as_millisecond()
}

/// RFC 3339 in the calendar's zone, for readable assertions.
fn show(cal: &BusinessCalendar, ms: i64) -> String {
    crate::maintenance::rfc3339(Timestamp::from_millisecond(ms).unwrap(), cal.time_zone())
}

fn plan(every: Option<Span>, meter: Option<(&str, MeterRule)>) -> Plan {
    Plan {
        id: "p".into(),
        title: "P".into(),
        every,
        meter: meter.map(|(m, rule)| MeterTrigger { meter: m.into(), rule }),
        checklist: vec!["look".to_owned()].into(),
    }
}

fn meters(v: f64) -> VecMap<String, f64> {
    VecMap::from_iter([("hours".to_owned(), v)])
}

fn opened(a: Option<Action>) -> Occurrence {
    match a {
        Some(Action::Open(o)) => o,
        other => panic!("expected an opening, got {other:?}"),
    }
}

#[test]
fn calendar_only_opens_a_lead_time_before_the_due_date_at_opening_time() {
    let cal = shanghai();
    let s = Scheduling { calendar: &cal, lead: Span::Days(7) };
    let p = plan(Some(Span::Months(6)), None);
    let mut st = s.start(&p, date(2026, 3, 2), t("2026-03-02T10:00:00+08:00")).unwrap();
    let none = VecMap::new();
    let wake = s.next_wake(&p, &st).unwrap();
    assert_eq!(show(&cal, wake), "2026-08-26T09:00:00+08:00");
    assert_eq!(s.advance(&p, &mut st, &none, wake - 1).unwrap(), None);
    let o = opened(s.advance(&p, &mut st, &none, wake + 5_000).unwrap());
    assert_eq!(
        show(&cal, o.opened_ms),
        "2026-08-26T09:00:00+08:00",
        "dated when it was due to open"
    );
    assert_eq!(show(&cal, o.due_ms), "2026-09-02T18:00:00+08:00");
    assert_eq!((o.number, o.trigger), (1, Trigger::Calendar));
    assert_eq!(s.advance(&p, &mut st, &none, wake + 10_000).unwrap(), None, "one open at a time");
}

#[test]
fn a_due_date_on_a_holiday_or_weekend_moves_to_the_working_day_before() {
    let cal = shanghai();
    let s = Scheduling { calendar: &cal, lead: Span::Days(7) };
    let p = plan(Some(Span::Months(6)), None);
    // 2026-04-01 + 6 months = 2026-10-01, National Day: due on Wednesday 09-30.
    let st = s.start(&p, date(2026, 4, 1), t("2026-04-01T10:00:00+08:00")).unwrap();
    assert_eq!(show(&cal, s.next_due(&p, &st).unwrap()), "2026-09-30T18:00:00+08:00");
    assert_eq!(show(&cal, s.next_wake(&p, &st).unwrap()), "2026-09-23T09:00:00+08:00");
    // 2026-05-02 + 6 months = Monday 11-02; 2026-05-07 + 6m = Saturday 11-07 -> Friday.
    let st = s.start(&p, date(2026, 5, 7), t("2026-05-07T10:00:00+08:00")).unwrap();
    assert_eq!(show(&cal, s.next_due(&p, &st).unwrap()), "2026-11-06T18:00:00+08:00");
}

#[test]
fn completion_dates_are_taken_in_the_site_time_zone() {
    let cal = shanghai();
    let s = Scheduling { calendar: &cal, lead: Span::Days(7) };
    let p = plan(Some(Span::Months(6)), None);
    let mut st = s.start(&p, date(2026, 1, 5), t("2026-01-05T10:00:00+08:00")).unwrap();
    // 01:00 on 1 July in Shanghai is still 30 June in UTC.
    let done = t("2026-07-01T01:00:00+08:00");
    s.complete(&p, &mut st, &VecMap::new(), done).unwrap();
    assert_eq!(st.anchor, date(2026, 7, 1));
    assert_eq!(show(&cal, s.next_due(&p, &st).unwrap()), "2027-01-01T18:00:00+08:00");
}

#[test]
fn opening_time_is_local_across_a_daylight_saving_change() {
    let cal = calendar("Europe/Berlin", vec![]);
    let s = Scheduling { calendar: &cal, lead: Span::Days(7) };
    let p = plan(Some(Span::Months(3)), None);
    // Due Wednesday 2026-04-01 (CEST); opens Wednesday 03-25 (CET) at 09:00 local.
    let st = s.start(&p, date(2026, 1, 1), t("2026-01-01T10:00:00+01:00")).unwrap();
    assert_eq!(show(&cal, s.next_due(&p, &st).unwrap()), "2026-04-01T18:00:00+02:00");
    assert_eq!(show(&cal, s.next_wake(&p, &st).unwrap()), "2026-03-25T09:00:00+01:00");
}

#[test]
fn meter_only_every_fires_each_time_the_meter_advanced_the_step_since_completion() {
    let cal = shanghai();
    let s = Scheduling { calendar: &cal, lead: Span::Days(7) };
    let p = plan(None, Some(("hours", MeterRule::Every(2000.0))));
    let now = t("2026-03-02T10:00:00+08:00");
    let mut st = s.start(&p, date(2025, 1, 1), now).unwrap();
    assert_eq!(s.next_wake(&p, &st), None, "no calendar: only readings wake it");
    // First reading 5,300 h: the previous services are assumed done at 4,000 h.
    assert_eq!(s.advance(&p, &mut st, &meters(5300.0), now).unwrap(), None);
    assert_eq!(st.meter_base, Some(4000.0));
    assert_eq!(s.advance(&p, &mut st, &meters(5999.0), now + 1).unwrap(), None);
    let o = opened(s.advance(&p, &mut st, &meters(6000.0), now + 2).unwrap());
    assert_eq!((o.trigger, o.meter_value, o.opened_ms), (Trigger::Meter, Some(6000.0), now + 2));
    assert_eq!(show(&cal, o.due_ms), "2026-03-09T10:00:00+08:00", "due a lead time later");
    let done = now + 3_600_000;
    assert_eq!(s.complete(&p, &mut st, &meters(6100.0), done).unwrap(), Some(o));
    assert_eq!(s.advance(&p, &mut st, &meters(8099.0), done + 1).unwrap(), None);
    let o = opened(s.advance(&p, &mut st, &meters(8100.0), done + 2).unwrap());
    assert_eq!(o.number, 2);
}

#[test]
fn meter_reaches_fires_once_and_rearms_after_the_part_is_replaced() {
    let cal = shanghai();
    let s = Scheduling { calendar: &cal, lead: Span::Days(7) };
    let p = plan(None, Some(("hours", MeterRule::Reaches(90.0))));
    let now = t("2026-03-02T10:00:00+08:00");
    let mut st = s.start(&p, date(2025, 1, 1), now).unwrap();
    assert_eq!(s.advance(&p, &mut st, &meters(50.0), now).unwrap(), None);
    opened(s.advance(&p, &mut st, &meters(90.0), now + 1).unwrap());
    // Completed without replacing the lamp: no new ticket while it stays above.
    s.complete(&p, &mut st, &meters(91.0), now + 2).unwrap();
    assert_eq!(s.advance(&p, &mut st, &meters(95.0), now + 3).unwrap(), None);
    // New lamp, then it wears out again.
    assert_eq!(s.advance(&p, &mut st, &meters(1.0), now + 4).unwrap(), None);
    assert_eq!(opened(s.advance(&p, &mut st, &meters(90.5), now + 5).unwrap()).number, 2);
}

#[test]
fn calendar_and_meter_whichever_comes_first() {
    let cal = shanghai();
    let s = Scheduling { calendar: &cal, lead: Span::Days(7) };
    let p = plan(Some(Span::Months(6)), Some(("hours", MeterRule::Every(2000.0))));
    let start = t("2026-03-02T10:00:00+08:00");
    // Meter first: heavy use reaches 2,000 h in May.
    let mut st = s.start(&p, date(2026, 3, 2), start).unwrap();
    assert_eq!(s.advance(&p, &mut st, &meters(0.0), start).unwrap(), None);
    let may = t("2026-05-10T12:00:00+08:00");
    let o = opened(s.advance(&p, &mut st, &meters(2000.0), may).unwrap());
    assert_eq!(o.trigger, Trigger::Meter);
    assert_eq!(show(&cal, o.due_ms), "2026-05-17T12:00:00+08:00");
    // Completion resets both: the calendar now counts from 2026-05-12.
    s.complete(&p, &mut st, &meters(2010.0), t("2026-05-12T15:00:00+08:00")).unwrap();
    assert_eq!(show(&cal, s.next_due(&p, &st).unwrap()), "2026-11-12T18:00:00+08:00");

    // Calendar first: light use; a meter crossing while it is open adds nothing.
    let mut st = s.start(&p, date(2026, 3, 2), start).unwrap();
    assert_eq!(s.advance(&p, &mut st, &meters(0.0), start).unwrap(), None);
    let aug = t("2026-08-26T09:00:00+08:00");
    let o = opened(s.advance(&p, &mut st, &meters(300.0), aug).unwrap());
    assert_eq!(o.trigger, Trigger::Calendar);
    assert_eq!(s.advance(&p, &mut st, &meters(2500.0), aug + 1).unwrap(), None);
}

#[test]
fn a_meter_trigger_near_the_calendar_due_date_keeps_the_earlier_due_date() {
    let cal = shanghai();
    let s = Scheduling { calendar: &cal, lead: Span::Days(30) };
    let p = plan(Some(Span::Months(6)), Some(("hours", MeterRule::Every(2000.0))));
    let start = t("2026-03-02T10:00:00+08:00");
    let mut st = s.start(&p, date(2026, 3, 2), start).unwrap();
    s.advance(&p, &mut st, &meters(0.0), start).unwrap();
    // Calendar ticket would open 2026-08-03; the meter fires on 07-31: due 09-02.
    let o =
        opened(s.advance(&p, &mut st, &meters(2001.0), t("2026-07-31T10:00:00+08:00")).unwrap());
    assert_eq!(o.trigger, Trigger::Meter);
    assert_eq!(show(&cal, o.due_ms), "2026-08-30T10:00:00+08:00");
}

#[test]
fn overdue_is_reported_once_and_late_completion_restarts_from_the_completion() {
    let cal = shanghai();
    let s = Scheduling { calendar: &cal, lead: Span::Days(7) };
    let p = plan(Some(Span::Months(6)), None);
    let mut st = s.start(&p, date(2026, 3, 2), t("2026-03-02T10:00:00+08:00")).unwrap();
    let none = VecMap::new();
    let o = opened(s.advance(&p, &mut st, &none, t("2026-08-26T09:00:00+08:00")).unwrap());
    assert_eq!(s.next_wake(&p, &st), Some(o.due_ms));
    assert_eq!(s.advance(&p, &mut st, &none, o.due_ms - 1).unwrap(), None);
    match s.advance(&p, &mut st, &none, o.due_ms).unwrap() {
        Some(Action::Overdue(d)) => assert_eq!((d.number, d.overdue), (1, true)),
        other => panic!("expected overdue, got {other:?}"),
    }
    assert_eq!(s.advance(&p, &mut st, &none, o.due_ms + 86_400_000).unwrap(), None);
    assert_eq!(s.next_wake(&p, &st), None, "nothing to wake for until it is completed");
    let done = t("2026-09-20T11:00:00+08:00");
    let closed = s.complete(&p, &mut st, &none, done).unwrap().unwrap();
    assert!(closed.overdue);
    assert_eq!(show(&cal, s.next_due(&p, &st).unwrap()), "2027-03-19T18:00:00+08:00");
    assert_eq!(st.last_completed_ms, Some(done));
}

#[test]
fn early_completion_before_the_ticket_opened_restarts_the_cycle() {
    let cal = shanghai();
    let s = Scheduling { calendar: &cal, lead: Span::Days(7) };
    let p = plan(Some(Span::Months(6)), None);
    let mut st = s.start(&p, date(2026, 3, 2), t("2026-03-02T10:00:00+08:00")).unwrap();
    let none = VecMap::new();
    // A technician on site for a fault does the inspection in July.
    assert_eq!(s.complete(&p, &mut st, &none, t("2026-07-15T14:00:00+08:00")).unwrap(), None);
    assert_eq!(s.advance(&p, &mut st, &none, t("2026-08-26T09:00:00+08:00")).unwrap(), None);
    assert_eq!(show(&cal, s.next_due(&p, &st).unwrap()), "2027-01-15T18:00:00+08:00");
}

#[test]
fn first_start_assumes_past_inspections_were_done_and_joins_the_current_cycle() {
    let cal = shanghai();
    let s = Scheduling { calendar: &cal, lead: Span::Days(7) };
    let p = plan(Some(Span::Months(6)), None);
    let st = s.start(&p, date(2024, 1, 15), t("2026-11-24T10:00:00+08:00")).unwrap();
    assert_eq!(st.anchor, date(2026, 7, 15));
    assert_eq!(show(&cal, s.next_due(&p, &st).unwrap()), "2027-01-15T18:00:00+08:00");
    // Due within the lead time of the start: opens at once, dated at the start.
    let start = t("2026-11-24T10:00:00+08:00");
    let mut st = s.start(&p, date(2024, 5, 26), start).unwrap();
    let o = opened(s.advance(&p, &mut st, &VecMap::new(), start).unwrap());
    assert_eq!(show(&cal, o.due_ms), "2026-11-26T18:00:00+08:00");
    assert_eq!(o.opened_ms, start, "never dated before the schedule existed");
}

/// Issue 15 (found while fixing replay's clock): a schedule started on an
/// inspection's due day after working hours reported it overdue at once, dated at
/// that day's close, before the schedule existed. A due moment already past at the
/// start is assumed done, like every earlier one.
#[test]
fn a_schedule_started_after_the_due_days_close_is_not_overdue_at_once() {
    let cal = shanghai();
    let s = Scheduling { calendar: &cal, lead: Span::Days(7) };
    let p = plan(Some(Span::Months(6)), None);
    // Due 2026-11-24 at 18:00; the agent starts at 20:00 that day.
    let start = t("2026-11-24T20:00:00+08:00");
    let mut st = s.start(&p, date(2024, 5, 24), start).unwrap();
    assert_eq!(show(&cal, s.next_due(&p, &st).unwrap()), "2027-05-24T18:00:00+08:00");
    assert_eq!(s.advance(&p, &mut st, &VecMap::new(), start).unwrap(), None);
    // Due on a Sunday (2026-11-29), moved to Friday 11-27: started on Saturday.
    let start = t("2026-11-28T10:00:00+08:00");
    let mut st = s.start(&p, date(2024, 5, 29), start).unwrap();
    assert_eq!(show(&cal, s.next_due(&p, &st).unwrap()), "2027-05-28T18:00:00+08:00");
    assert_eq!(s.advance(&p, &mut st, &VecMap::new(), start).unwrap(), None);
    // Before the close it is still today's: open at once, due tonight.
    let start = t("2026-11-24T10:00:00+08:00");
    let mut st = s.start(&p, date(2024, 5, 24), start).unwrap();
    let o = opened(s.advance(&p, &mut st, &VecMap::new(), start).unwrap());
    assert_eq!(show(&cal, o.due_ms), "2026-11-24T18:00:00+08:00");
}

#[test]
fn a_restart_in_the_middle_continues_the_same_schedule() {
    let cal = shanghai();
    let s = Scheduling { calendar: &cal, lead: Span::Days(7) };
    let p = plan(Some(Span::Months(3)), Some(("hours", MeterRule::Every(500.0))));
    let start = t("2026-01-05T10:00:00+08:00");
    let steps: Vec<(i64, f64)> = (0..400_i64)
        .map(|i| {
            (start + i * 86_400_000, if i < 200 { 2 * i } else { 400 + 10 * (i - 200) } as f64)
        })
        .collect();
    let run = |restart_at: Option<usize>| {
        let mut st = s.start(&p, date(2026, 1, 5), start).unwrap();
        let mut out = Vec::new();
        for (i, &(now, v)) in steps.iter().enumerate() {
            if Some(i) == restart_at {
                let saved = serde_json::to_vec(&st).unwrap();
                st = serde_json::from_slice(&saved).unwrap();
            }
            if let Some(a) = s.advance(&p, &mut st, &meters(v), now).unwrap() {
                out.push(a.clone());
                if let Action::Overdue(o) = a {
                    // Completed two days late.
                    s.complete(&p, &mut st, &meters(v), o.due_ms + 2 * 86_400_000).unwrap();
                }
            }
        }
        out
    };
    let straight = run(None);
    assert!(straight.len() >= 6, "{straight:?}");
    assert!(straight.iter().any(|a| matches!(a, Action::Open(o) if o.trigger == Trigger::Meter)));
    assert_eq!(run(Some(137)), straight);
    assert_eq!(run(Some(250)), straight);
}
