//! Registers built from hand-made archives.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::date;

use super::model::{DeviceStatus, PlanState, SlaStatus};
use super::*;
use tend_agent::store::archive::{
    ArchiveEntry, ArchiveEvent, DeviceArchive, DeviceFacts, OpenFault, PlanStatus, SiteArchive,
    SlaTimes, WarrantyLine,
};

const H: i64 = 3_600_000;
const D: i64 = 24 * H;

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
}

fn device(id: &str) -> DeviceArchive {
    DeviceArchive {
        device: DeviceFacts {
            id: id.to_owned(),
            equipment_type: "solar-water-heater".to_owned(),
            model: "SWH-300".to_owned(),
            serial: format!("SN-{id}"),
            location: "Roof A".to_owned(),
            purpose: None,
            manufactured: None,
            commissioned: date(2024, 1, 10),
            contract_until: None,
        },
        last_seen_ms: Some(ms("2026-10-02T00:00:00Z")),
        offline_since_ms: None,
        open_faults: Vec::new(),
        meters: BTreeMap::new(),
        downtime_days: 0,
        warranty: Vec::new(),
        inspections: Vec::new(),
        history: Vec::new(),
        maintenance: None,
    }
}

fn site(tz: &str, generated: &str, devices: Vec<DeviceArchive>) -> SiteArchive {
    SiteArchive {
        site: "plant-7".to_owned(),
        timezone: tz.to_owned(),
        generated_ms: ms(generated),
        devices,
        site_history: Vec::new(),
    }
}

fn at(at_ms: i64, event: ArchiveEvent) -> ArchiveEntry {
    ArchiveEntry { at_ms, event }
}

fn opened(id: &str, severity: u8, sla: Option<SlaTimes>) -> ArchiveEvent {
    ArchiveEvent::FaultOpened {
        ticket_id: id.to_owned(),
        code: "pump_stalled".to_owned(),
        title: "Circulation pump stalled".to_owned(),
        severity,
        coverage: "warranty".to_owned(),
        occurrence: 1,
        replacement_recommended: false,
        sla,
    }
}

/// Due times `respond_min` minutes and `resolve_h` hours after `t`.
fn sla(t: i64, respond_min: i64, resolve_h: i64) -> Option<SlaTimes> {
    Some(SlaTimes {
        respond_by_ms: t + respond_min * 60_000,
        onsite_by_ms: t + 2 * H,
        resolve_by_ms: t + resolve_h * H,
    })
}

fn ack(id: &str) -> ArchiveEvent {
    ArchiveEvent::TicketAcknowledged { ticket_id: id.to_owned() }
}

fn closed(id: &str) -> ArchiveEvent {
    ArchiveEvent::TicketClosed { ticket_id: id.to_owned(), resolution: None }
}

fn q3() -> Period {
    Period::parse("2026-Q3").unwrap()
}

#[test]
fn faults_belong_to_the_local_period() {
    // 2026-09-30T23:30+08:00 is 15:30Z: Q3 in Shanghai. 2026-10-01T07:30+08:00 is
    // 2026-09-30T23:30Z: Q4 in Shanghai, but Q3 for a site on UTC.
    let mut d = device("swh-1");
    d.history = vec![
        at(ms("2026-09-30T23:30:00+08:00"), opened("t1", 3, None)),
        at(ms("2026-10-01T07:30:00+08:00"), opened("t2", 3, None)),
        at(ms("2026-07-01T00:00:00+08:00"), opened("t0", 2, None)),
        at(ms("2026-06-30T23:59:59+08:00"), opened("t-1", 2, None)),
    ];
    let shanghai =
        build(&site("Asia/Shanghai", "2026-10-05T00:00:00Z", vec![d.clone()]), &q3()).unwrap();
    let ids: Vec<&str> = shanghai.faults.iter().map(|f| f.ticket_id.as_str()).collect();
    assert_eq!(ids, ["t0", "t1"]);
    let q4 = build(
        &site("Asia/Shanghai", "2026-10-05T00:00:00Z", vec![d.clone()]),
        &Period::parse("2026-Q4").unwrap(),
    )
    .unwrap();
    assert_eq!(q4.faults.iter().map(|f| f.ticket_id.as_str()).collect::<Vec<_>>(), ["t2"]);
    let utc = build(&site("UTC", "2026-10-05T00:00:00Z", vec![d]), &q3()).unwrap();
    assert_eq!(utc.faults.iter().map(|f| f.ticket_id.as_str()).collect::<Vec<_>>(), ["t1", "t2"]);
    // The late Shanghai fault falls in the last ISO week of the quarter (W40 starts
    // on Monday 2026-09-28).
    let last = shanghai.weeks.last().unwrap();
    assert_eq!((last.week, last.monday, last.by_level), (40, date(2026, 9, 28), [0, 0, 1, 0]));
    assert_eq!(shanghai.weeks.first().unwrap().monday, date(2026, 6, 29));
    assert_eq!(shanghai.weeks.len(), 14);
    assert_eq!(shanghai.weeks.iter().map(|w| w.total()).sum::<u32>(), 2);
}

#[test]
fn sla_outcomes_are_counted_per_final_level() {
    let t = ms("2026-08-03T09:00:00+08:00");
    let generated = "2026-08-05T09:00:00+08:00";
    let mut d = device("swh-1");
    d.history = vec![
        // Met both: acknowledged after 5 min, closed after 20 h (L1: 10 min / 24 h).
        at(t, opened("met", 1, sla(t, 10, 24))),
        at(t + 5 * 60_000, ack("met")),
        at(t + 20 * H, closed("met")),
        // Escalated L2 -> L1; acknowledged late, closed late.
        at(t, opened("late", 2, sla(t, 10, 24))),
        at(
            t + 10 * 60_000,
            ArchiveEvent::FaultEscalated {
                ticket_id: "late".into(),
                code: "x".into(),
                severity: 1,
            },
        ),
        at(t + H, ack("late")),
        at(t + 30 * H, closed("late")),
        // L3 never seen acknowledged, open: respond unknown, resolve past due.
        at(t, opened("silent", 3, sla(t, 30, 24))),
        // L3 opened an hour before generation: both still within.
        at(ms(generated) - H, opened("fresh", 3, sla(ms(generated) - H, 120, 120))),
        // L3 closed before respond-by, never seen acknowledged: response met.
        at(t, opened("quick", 3, sla(t, 60, 120))),
        at(t + 30 * 60_000, closed("quick")),
        // No SLA table.
        at(t, opened("none", 4, None)),
    ];
    let r = build(&site("Asia/Shanghai", generated, vec![d]), &q3()).unwrap();
    let f = |id: &str| r.faults.iter().find(|f| f.ticket_id == id).unwrap();
    assert_eq!((f("met").respond, f("met").resolve), (SlaStatus::Met, SlaStatus::Met));
    assert_eq!((f("late").level, f("late").opened_level), (1, 2));
    assert_eq!((f("late").respond, f("late").resolve), (SlaStatus::Missed, SlaStatus::Missed));
    assert_eq!(
        (f("silent").respond, f("silent").resolve),
        (SlaStatus::Unknown, SlaStatus::OpenPastDue)
    );
    assert_eq!(
        (f("fresh").respond, f("fresh").resolve),
        (SlaStatus::OpenWithin, SlaStatus::OpenWithin)
    );
    assert_eq!((f("quick").respond, f("quick").resolve), (SlaStatus::Met, SlaStatus::Met));
    assert_eq!((f("none").respond, f("none").resolve), (SlaStatus::NoTarget, SlaStatus::NoTarget));

    let l1 = &r.levels[0];
    assert_eq!(
        (l1.opened, l1.respond.met, l1.respond.missed, l1.resolve.met, l1.resolve.missed),
        (2, 1, 1, 1, 1)
    );
    let l3 = &r.levels[2];
    assert_eq!(l3.opened, 3);
    assert_eq!((l3.respond.met, l3.respond.unknown, l3.respond.open_within), (1, 1, 1));
    assert_eq!((l3.resolve.met, l3.resolve.open_past_due, l3.resolve.open_within), (1, 1, 1));
    assert_eq!(l3.resolve.percent(), Some(50.0));
    assert_eq!(r.levels[1].opened, 0);
    assert_eq!(r.levels[3].respond.no_target, 1);
    // Judged: L1 4 (2 met), L3 respond 1 met, resolve 1 met + 1 past due.
    assert_eq!((r.summary.sla_met, r.summary.sla_judged), (4, 7));
    assert_eq!((r.summary.faults, r.summary.critical), (6, 2));
    assert!(
        r.summary_line().contains("6 faults (2 critical), SLA 57% met"),
        "{}",
        r.summary_line()
    );
}

#[test]
fn downtime_is_clipped_to_the_period() {
    let start = ms("2026-07-01T00:00:00+08:00");
    let end = ms("2026-10-01T00:00:00+08:00");
    let down = |code: &str| ArchiveEvent::DowntimeStarted { code: code.into() };
    let up = |d: i64| ArchiveEvent::DowntimeEnded { duration_ms: d };
    let mut a = device("a");
    // 10 h before the period, 2 h inside it.
    a.history = vec![at(start - 10 * H, down("x")), at(start + 2 * H, up(12 * H))];
    let mut b = device("b");
    // 3 h inside; then from 6 h before the end, still open at generation (after the end).
    b.history = vec![
        at(start + D, down("x")),
        at(start + D + 3 * H, up(3 * H)),
        at(end - 6 * H, down("x")),
    ];
    let mut c = device("c");
    // Entirely after the period.
    c.history = vec![at(end + H, down("x")), at(end + 2 * H, up(H))];
    let mut e = device("e");
    // An end without its start: the stated duration places it.
    e.history = vec![at(start + 5 * H, up(4 * H))];
    let r = build(&site("Asia/Shanghai", "2026-10-03T00:00:00Z", vec![a, b, c, e]), &q3()).unwrap();
    let by: BTreeMap<&str, (u32, f64, bool)> =
        r.downtime.iter().map(|d| (d.device.as_str(), (d.outages, d.hours, d.ongoing))).collect();
    assert_eq!(by.get("a"), Some(&(1, 2.0, false)));
    assert_eq!(by.get("b"), Some(&(2, 9.0, true)));
    assert_eq!(by.get("c"), None);
    assert_eq!(by.get("e"), Some(&(1, 4.0, false)));
    assert_eq!(r.summary.downtime_hours, 15.0);
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    assert!(r.notes[0].contains("device e"));
    // 92 days = 2208 h; 2 h down.
    let avail = r.downtime.iter().find(|d| d.device == "a").unwrap().availability.unwrap();
    assert!((avail - 100.0 * (1.0 - 2.0 / 2208.0)).abs() < 1e-9);

    // While the period runs, an open outage counts to the generation time.
    let mut f = device("f");
    f.history = vec![at(start + D, down("x"))];
    let r = build(&site("Asia/Shanghai", "2026-07-03T00:00:00+08:00", vec![f]), &q3()).unwrap();
    assert_eq!(r.downtime[0].hours, 24.0);
    assert_eq!(r.downtime[0].availability, Some(50.0));
}

fn plan(id: &str) -> PlanStatus {
    PlanStatus {
        plan: id.to_owned(),
        title: format!("{id} inspection"),
        every: Some("6m".to_owned()),
        meter: None,
        next_due_ms: None,
        open: None,
        overdue: false,
        last_completed_ms: None,
    }
}

#[test]
fn inspections_done_overdue_and_due_soon() {
    let t = |s: &str| ms(s);
    let opened_insp = |id: &str, plan: &str, due: i64| ArchiveEvent::InspectionOpened {
        ticket_id: id.into(),
        plan: plan.into(),
        title: "Semiannual".into(),
        due_ms: due,
        trigger: "calendar".into(),
    };
    let overdue = |id: &str, plan: &str, due: i64| ArchiveEvent::InspectionOverdue {
        ticket_id: id.into(),
        plan: plan.into(),
        due_ms: due,
    };
    let completed = |id: Option<&str>, plan: &str| ArchiveEvent::InspectionCompleted {
        plan: plan.into(),
        ticket_id: id.map(str::to_owned),
        source: "central".into(),
        note: None,
        meters: BTreeMap::new(),
    };
    let mut d = device("door-1");
    let due1 = t("2026-06-20T00:00:00+08:00");
    let due2 = t("2026-08-10T00:00:00+08:00");
    d.history = vec![
        // Overdue since June, completed in July (late): done 1, late 1, overdue 1.
        at(due1 - 7 * D, opened_insp("i1", "semi", due1)),
        at(due1, overdue("i1", "semi", due1)),
        at(t("2026-07-04T10:00:00+08:00"), completed(Some("i1"), "semi")),
        // Completed on time in August: done 1.
        at(due2 - 7 * D, opened_insp("i2", "semi", due2)),
        at(due2 - D, completed(Some("i2"), "semi")),
        // Yearly certification overdue since September, still open.
        at(t("2026-09-20T00:00:00+08:00"), overdue("c1", "cert", t("2026-09-20T00:00:00+08:00"))),
        // Overdue and completed before the period: not counted.
        at(t("2026-03-01T00:00:00+08:00"), overdue("c0", "cert", t("2026-03-01T00:00:00+08:00"))),
        at(t("2026-03-05T00:00:00+08:00"), completed(Some("c0"), "cert")),
        // A local completion of a plan the device no longer has.
        at(t("2026-07-15T00:00:00+08:00"), completed(None, "old")),
        // Local completions naming no ticket end the plan's overdue inspection:
        // the May one is not overdue in Q3, the July one is (and late).
        at(t("2026-05-01T00:00:00+08:00"), overdue("f0", "filter", t("2026-05-01T00:00:00+08:00"))),
        at(t("2026-05-10T00:00:00+08:00"), completed(None, "filter")),
        at(t("2026-07-02T00:00:00+08:00"), overdue("f1", "filter", t("2026-07-02T00:00:00+08:00"))),
        at(t("2026-07-10T00:00:00+08:00"), completed(None, "filter")),
    ];
    let generated = "2026-10-02T00:00:00+08:00";
    let mut semi = plan("semi");
    semi.next_due_ms = Some(t("2026-10-20T00:00:00+08:00"));
    semi.last_completed_ms = Some(due2 - D);
    let mut cert = plan("cert");
    cert.open = Some(("c1".into(), t("2026-09-20T00:00:00+08:00")));
    cert.overdue = true;
    let mut meter = plan("closer");
    meter.every = None;
    meter.meter = Some("door_cycles every 50000".into());
    let mut later = plan("later");
    later.next_due_ms = Some(t("2027-01-20T00:00:00+08:00"));
    d.inspections = vec![semi, cert, meter, later];
    let r = build(&site("Asia/Shanghai", generated, vec![d]), &q3()).unwrap();
    let row = |p: &str| r.inspections.iter().find(|i| i.plan == p).unwrap();
    assert_eq!((row("semi").done, row("semi").late, row("semi").overdue), (2, 1, 1));
    assert_eq!(row("semi").state, PlanState::DueSoon);
    assert_eq!(
        (row("cert").done, row("cert").overdue, row("cert").state),
        (0, 1, PlanState::Overdue)
    );
    assert_eq!(row("closer").state, PlanState::Unscheduled);
    assert_eq!(row("later").state, PlanState::Scheduled);
    assert_eq!((row("old").done, row("old").state), (1, PlanState::Unscheduled));
    assert_eq!((row("filter").done, row("filter").late, row("filter").overdue), (1, 1, 1));
    assert_eq!(
        (r.summary.inspections_done, r.summary.inspections_overdue, r.summary.inspections_due_soon),
        (4, 3, 1)
    );
}

#[test]
fn warranty_expiring_within_90_days_of_the_period_end() {
    let mut d = device("swh-1");
    let line = |c: &str, base: jiff::civil::Date, until: jiff::civil::Date| WarrantyLine {
        component: c.into(),
        base_until: base,
        until,
    };
    d.warranty = vec![
        line("pipes", date(2026, 9, 25), date(2026, 10, 5)), // +10 d extension, 5 days after Q3
        line("main_unit", date(2027, 1, 9), date(2027, 1, 9)), // 100 days: not listed
        line("bracket", date(2026, 9, 29), date(2026, 9, 29)), // ended in the period
        line("*", date(2026, 9, 30), date(2026, 9, 30)),     // last day of the period: listed
        line("tank", date(2026, 12, 29), date(2026, 12, 29)), // day 90: listed
    ];
    d.device.contract_until = Some(date(2026, 11, 30));
    let r = build(&site("Asia/Shanghai", "2026-10-10T00:00:00Z", vec![d]), &q3()).unwrap();
    let got: Vec<(&str, i64, i64)> =
        r.warranty.iter().map(|w| (w.component.as_str(), w.days_left, w.extension_days)).collect();
    assert_eq!(
        got,
        [
            ("all components", 0, 0),
            ("pipes", 5, 10),
            ("maintenance contract", 61, 0),
            ("tank", 90, 0)
        ]
    );
}

#[test]
fn device_status_and_repeat_faults() {
    let mut ok = device("ok");
    ok.history = vec![
        at(ms("2026-05-01T00:00:00Z"), opened("old", 3, None)),
        at(ms("2026-05-02T00:00:00Z"), closed("old")),
    ];
    let mut faulty = device("faulty");
    faulty.open_faults = vec![
        OpenFault {
            code: "a".into(),
            ticket_id: "r1".into(),
            severity: 2,
            opened_ms: 0,
            phase: "active".into(),
        },
        OpenFault {
            code: "b".into(),
            ticket_id: "x".into(),
            severity: 3,
            opened_ms: 0,
            phase: "active".into(),
        },
    ];
    let mut repeat = opened("r1", 2, None);
    if let ArchiveEvent::FaultOpened { replacement_recommended, occurrence, .. } = &mut repeat {
        *replacement_recommended = true;
        *occurrence = 4;
    }
    // Opened before the period and still open: listed as a repeat fault.
    faulty.history = vec![at(ms("2026-06-01T00:00:00Z"), repeat)];
    let mut off = device("off");
    off.offline_since_ms = Some(ms("2026-09-01T00:00:00Z"));
    let mut never = device("never");
    never.last_seen_ms = None;
    let r =
        build(&site("UTC", "2026-10-02T00:00:00Z", vec![ok, faulty, off, never]), &q3()).unwrap();
    let st: Vec<DeviceStatus> = r.devices.iter().map(|d| d.status).collect();
    assert_eq!(
        st,
        [DeviceStatus::Ok, DeviceStatus::Faults, DeviceStatus::Offline, DeviceStatus::NoData]
    );
    assert_eq!((r.devices[1].open_faults, r.devices[1].worst_open), (2, Some(2)));
    assert_eq!((r.summary.offline, r.summary.with_open_faults), (1, 1));
    assert_eq!(r.repeats.len(), 1);
    assert_eq!((r.repeats[0].ticket_id.as_str(), r.repeats[0].occurrence), ("r1", 4));
    assert!(r.faults.is_empty());
}

#[test]
fn bad_time_zone_and_bad_severity() {
    let e = build(&site("Mars/Olympus", "2026-10-02T00:00:00Z", vec![]), &q3()).unwrap_err();
    assert!(matches!(e, ReportError::TimeZone { .. }));
    assert!(e.to_string().contains("Mars/Olympus"), "{e}");
    let mut d = device("d");
    d.history = vec![at(ms("2026-08-01T00:00:00Z"), opened("t", 9, None))];
    let r = build(&site("UTC", "2026-10-02T00:00:00Z", vec![d]), &q3()).unwrap();
    assert_eq!(r.faults[0].level, 4);
    assert!(r.notes[0].contains("severity 9"), "{:?}", r.notes);
    assert!(r.to_markdown().contains("## Notes on the data"));
}

/// One device named like markup, one fault, used by the rendering tests.
fn small() -> Report {
    let mut d = device("<script>alert(1)</script>");
    d.device.location = "Hall | B & C".into();
    let t = ms("2026-08-03T09:00:00+08:00");
    d.history = vec![
        at(t, opened("t-1", 1, sla(t, 10, 24))),
        at(t + 60_000, ack("t-1")),
        at(t + 2 * H, closed("t-1")),
        at(t, ArchiveEvent::DowntimeStarted { code: "pump_stalled".into() }),
        at(t + 90 * 60_000, ArchiveEvent::DowntimeEnded { duration_ms: 90 * 60_000 }),
    ];
    d.warranty = vec![WarrantyLine {
        component: "pipes".into(),
        base_until: date(2026, 11, 1),
        until: date(2026, 11, 3),
    }];
    build(&site("Asia/Shanghai", "2026-10-01T08:00:00+08:00", vec![d, device("swh-2")]), &q3())
        .unwrap()
}

#[test]
fn markdown_key_lines() {
    let md = small().to_markdown();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines[0], "# Equipment and operation register: plant-7, 2026-Q3");
    assert!(md.contains("Period 2026-07-01 to 2026-09-30 (Asia/Shanghai). Generated 2026-10-01 08:00 +08:00 Asia/Shanghai."));
    assert!(
        md.contains("**2 devices, 1 fault (1 critical), SLA 100% met, 0 inspections done, 0 overdue, 1.5 h downtime**"),
        "{md}"
    );
    assert!(lines.contains(&"| L1 critical | 1 | 100% | 1 met | 100% | 1 met |"), "{md}");
    assert!(lines.contains(&"| 2026-W32 | 2026-08-03 | 1 | 0 | 0 | 0 | 1 |"), "{md}");
    assert!(md.contains("| &lt;script&gt;alert(1)&lt;/script&gt; | solar-water-heater | SWH-300 | Hall \\| B & C | ok |"), "{md}");
    assert!(md.contains("| 2026-08-03 09:00 | &lt;script&gt;alert(1)&lt;/script&gt; | t-1 | pump_stalled: Circulation pump stalled | L1 | warranty | 2026-08-03 09:01 | 2026-08-03 11:00 | met | met |"), "{md}");
    assert!(md.contains("| pipes | 2026-11-03 | 34 | +2 d |"), "{md}");
    assert!(!md.contains("<script>"));
    // Every table row has as many cells as its header.
    let mut width = None;
    for l in md.lines() {
        if !l.starts_with('|') {
            width = None;
            continue;
        }
        let cells = l.replace("\\|", "").matches('|').count();
        assert_eq!(cells, *width.get_or_insert(cells), "{l}");
    }
}

#[test]
fn html_is_escaped_and_balanced() {
    let html = small().to_html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(!html.contains("<script"), "markup from the archive must be escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("Hall | B &amp; C"));
    assert!(!html.contains("http://") || !html.contains("src=\"http"), "no external resources");
    assert!(!html.contains("<link") && !html.contains("src="));
    for tag in [
        "html", "head", "body", "main", "table", "tbody", "thead", "tr", "svg", "figure",
        "section", "p",
    ] {
        let open =
            html.matches(&format!("<{tag}>")).count() + html.matches(&format!("<{tag} ")).count();
        let close = html.matches(&format!("</{tag}>")).count();
        assert_eq!(open, close, "<{tag}> opened {open} times, closed {close}");
    }
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains("id=\"chart-faults-per-week\"") && html.contains("id=\"chart-sla\""));
    assert!(html.contains("2 devices, 1 fault (1 critical), SLA 100% met"));
    assert!(html.contains("generated 2026-10-01 08:00 +08:00 Asia/Shanghai"));
}

#[test]
fn no_downtime_reads_zero_not_minus_zero() {
    let empty: f64 = std::iter::empty::<f64>().sum();
    assert_eq!(super::model::hours(empty), "0.0");
    assert_eq!(super::model::hours(-0.01), "0.0");
    assert_eq!(super::model::hours(1.25), "1.2");
}

#[test]
fn archive_text_is_escaped_in_the_html_and_its_charts() {
    let name = "<script>alert(\"x\")</script> & co";
    let mut d = device(name);
    d.device.location = "<script>boom()</script> Hall & foyer".into();
    let t = ms("2026-08-03T09:00:00+08:00");
    let mut fault = opened("<b>t-1</b>", 9, sla(t, 10, 24)); // severity 9: a note naming the device
    if let ArchiveEvent::FaultOpened { title, occurrence, replacement_recommended, .. } = &mut fault
    {
        *title = "Pump <script>x()</script> & valve".into();
        *occurrence = 3;
        *replacement_recommended = true;
    }
    d.history = vec![at(t, fault)];
    let mut p = plan("semi");
    p.title = "Check <i>&</i>".into();
    d.inspections = vec![p];
    let mut archive = site("UTC", "2026-10-02T00:00:00Z", vec![d]);
    archive.site = "<script>site</script> & sons".into();
    let mut r = build(&archive, &q3()).unwrap();
    // No archive text reaches the charts today; a level name stands in for one.
    r.levels[3].name = "<script>level</script> & co";
    let html = r.to_html();

    assert!(!html.contains("<script") && !html.contains("<b>") && !html.contains("<i>"), "{html}");
    // Every `&` starts one of the entities maud writes.
    for (i, _) in html.match_indices('&') {
        let rest = &html[i..];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;"].iter().any(|e| rest.starts_with(e)),
            "bare & at {:?}",
            rest.chars().take(20).collect::<String>()
        );
    }
    let id = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co";
    let site = "&lt;script&gt;site&lt;/script&gt; &amp; sons";
    for expected in [
        format!("<title>Operation register {site} 2026-Q3</title>"),
        format!("Site <strong>{site}</strong>"),
        format!("<td>{id}</td>"),
        "<td>&lt;script&gt;boom()&lt;/script&gt; Hall &amp; foyer</td>".to_owned(),
        "<td class=\"nw\">&lt;b&gt;t-1&lt;/b&gt;</td>".to_owned(),
        "pump_stalled: Pump &lt;script&gt;x()&lt;/script&gt; &amp; valve (occurrence 3), replacement recommended</td>".to_owned(),
        "<td>Check &lt;i&gt;&amp;&lt;/i&gt; (semi)</td>".to_owned(),
        format!("<li>device {id}, ticket &lt;b&gt;t-1&lt;/b&gt;: severity 9"),
    ] {
        assert!(html.contains(&expected), "{expected} missing from {html}");
    }
    // The charts: the level label and the bars' titles.
    let svgs: Vec<&str> =
        html.split("<svg").skip(1).map(|s| s.split("</svg>").next().unwrap()).collect();
    assert_eq!(svgs.len(), 2);
    assert!(
        svgs[1].contains(">L4 &lt;script&gt;level&lt;/script&gt; &amp; co</text>"),
        "{}",
        svgs[1]
    );
    assert!(svgs[0].contains("<title>W32 (from 2026-08-03): 1 warning</title>"), "{}", svgs[0]);
    assert!(svgs[1].contains("<title>L4 resolve: 1 open, past due</title>"), "{}", svgs[1]);
}
