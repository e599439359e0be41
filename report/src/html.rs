//! The register as one standalone HTML page, written with maud (every splice is
//! escaped): inline CSS, the inline SVG charts of [`chart`], no script and no external
//! resource, so it can be mailed, archived and printed.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::chart::{self, LEVEL_COLOURS};
use super::markdown::counts;
use super::model::FAULT_COLUMNS;
use super::model::{
    DUE_SOON_DAYS, DeviceStatus, PlanState, Report, SlaStatus, WARRANTY_HORIZON_DAYS, hours,
};

/// The page's style sheet: a constant, so it goes in unescaped.
const CSS: &str = r#"
:root { --ink: #1d1d1f; --muted: #5f6368; --line: #dadce0; --band: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header { border-bottom: 3px solid var(--ink); padding-bottom: 10px; margin-bottom: 16px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: var(--muted); margin: 0; }
.summary { font-size: 16px; font-weight: 600; background: var(--band); border-left: 5px solid #3b5b92;
  padding: 10px 14px; margin: 14px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin: 12px 0 6px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.card .n { font-size: 24px; font-weight: 700; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 10px; break-inside: avoid; }
figcaption { font-weight: 600; margin-bottom: 6px; }
svg.chart { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.nw { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) td { background: #fbfbfc; }
.none { color: var(--muted); font-style: italic; }
.note { color: var(--muted); font-size: 12px; margin: 2px 0 8px; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px; font-weight: 600;
  white-space: nowrap; border: 1px solid transparent; }
.st-ok, .sla-met { background: #e6f4ea; color: #1e6b2f; }
.st-faults, .sla-within, .st-soon { background: #fff4e0; color: #8a4b00; }
.st-offline, .sla-missed, .sla-pastdue, .st-overdue { background: #fde7e7; color: #a11; }
.st-nodata, .sla-unknown, .sla-none, .st-sched, .st-meter { background: #eef0f3; color: #444; }
.lvl { display: inline-block; min-width: 26px; text-align: center; border-radius: 4px; color: #fff;
  font-weight: 700; font-size: 12px; padding: 0 4px; }
.lvl-3 { color: #222; }
footer { margin-top: 30px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
@media (max-width: 900px) { .charts { grid-template-columns: 1fr; } }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { font-size: 10.5px; }
  main { max-width: none; padding: 0; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h1 { font-size: 19px; }
  h2 { font-size: 14px; margin-top: 18px; break-after: avoid; }
  .summary { font-size: 13px; }
  .cards { grid-template-columns: repeat(7, 1fr); gap: 6px; }
  .card { padding: 4px 6px; }
  .card .n { font-size: 17px; }
  .card .k { font-size: 8.5px; }
  .charts { grid-template-columns: 1fr; }
  figure { width: 100%; max-width: 160mm; justify-self: center; }
  table { font-size: 9px; }
  th, td { padding: 2px 4px; }
  .badge { font-size: 8.5px; padding: 0 4px; white-space: normal; }
  .lvl { font-size: 8.5px; min-width: 18px; }
  td.nw { white-space: normal; }
  tr, figure, .cards { break-inside: avoid; }
  thead { display: table-header-group; }
}
"#;
/// Renders the register as a standalone HTML page.
pub fn render(r: &Report) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Operation register " (r.site) " " (r.period) }
                style { (PreEscaped(CSS)) }
            }
            body {
                main {
                    header {
                        h1 { "Equipment and operation register" }
                        p.meta {
                            "Site " strong { (r.site) } " · period " strong { (r.period) }
                            " (" (r.period_days()) ", " (r.timezone) ") · generated "
                            (r.generated_local())
                        }
                    }
                    @if r.generated_ms < r.end_ms {
                        p.note { "The period has not ended: figures run to the generation time." }
                    }
                    p.summary #summary { (r.summary_line()) }
                    (cards(r))
                    section.charts {
                        figure {
                            figcaption { "Faults opened per week" }
                            (chart::faults_per_week(&r.weeks))
                        }
                        figure {
                            figcaption { "SLA compliance per level" }
                            (chart::sla_compliance(&r.levels))
                        }
                    }
                    (devices(r))
                    (levels(r))
                    (faults(r))
                    (downtime(r))
                    (inspections(r))
                    (warranty(r))
                    (repeats(r))
                    @if !r.notes.is_empty() {
                        h2 { "Notes on the data" }
                        ul {
                            @for n in &r.notes {
                                li { (n) }
                            }
                        }
                    }
                    footer {
                        "Produced by tend from the site's device archive. Times are local to "
                        (r.timezone) ". Respond is met when the ticket was seen acknowledged (or \
                        closed) by its respond-by time; resolve compares the central closing time \
                        with resolve-by."
                    }
                }
            }
        }
    };
    let mut page = page.into_string();
    page.push('\n');
    page
}

fn cards(r: &Report) -> Markup {
    let m = &r.summary;
    let sla = m.sla_percent().map_or_else(|| "n/a".to_owned(), |p| format!("{}%", p.floor()));
    let items = [
        (m.devices.to_string(), "devices".to_owned()),
        (m.offline.to_string(), "offline now".to_owned()),
        (m.faults.to_string(), format!("faults ({} critical)", m.critical)),
        (sla, "SLA targets met".to_owned()),
        (m.inspections_done.to_string(), "inspections done".to_owned()),
        (m.inspections_overdue.to_string(), "inspections overdue".to_owned()),
        (hours(m.downtime_hours), "hours of downtime".to_owned()),
    ];
    html! {
        div.cards {
            @for (n, k) in &items {
                div.card {
                    div.n { (n) }
                    div.k { (k) }
                }
            }
        }
    }
}

/// A table with its header row; names ending in `#` are numeric columns.
fn table(id: &str, cols: &[&str], rows: Markup) -> Markup {
    html! {
        table id=(id) {
            thead {
                tr {
                    @for c in cols {
                        @match c.strip_suffix('#') {
                            Some(c) => th.num { (c) },
                            None => th { (c) },
                        }
                    }
                }
            }
            tbody { (rows) }
        }
    }
}

fn badge(class: &str, text: &str) -> Markup {
    html! { span class={ "badge " (class) } { (text) } }
}

fn level(l: u8) -> Markup {
    let colour = LEVEL_COLOURS[usize::from(l.clamp(1, 4) - 1)];
    html! { span class={ "lvl lvl-" (l) } style={ "background:" (colour) } { "L" (l) } }
}

fn none(text: &str) -> Markup {
    html! { p.none { (text) } }
}

/// A percentage without decimals, `-` when nothing was judged.
fn percent(p: Option<f64>) -> String {
    p.map_or_else(|| "-".to_owned(), |p| format!("{}%", p.floor()))
}

fn devices(r: &Report) -> Markup {
    let cols = [
        "Device",
        "Type",
        "Model",
        "Location",
        "Status",
        "Open faults#",
        "Last seen",
        "Faults in period#",
    ];
    let rows = html! {
        @for d in &r.devices {
            tr {
                td { (d.id) }
                td { (d.equipment_type) }
                td { (d.model) }
                td { (d.location) }
                td {
                    @let class = match d.status {
                        DeviceStatus::Ok => "st-ok",
                        DeviceStatus::Faults => "st-faults",
                        DeviceStatus::Offline => "st-offline",
                        DeviceStatus::NoData => "st-nodata",
                    };
                    @match d.offline_since_ms {
                        Some(_) => {
                            (badge(class, &format!("offline since {}", r.time(d.offline_since_ms))))
                        }
                        None => (badge(class, d.status.label())),
                    }
                }
                td.num {
                    (d.open_faults)
                    @if let Some(w) = d.worst_open {
                        " " (level(w))
                    }
                }
                td.nw { (r.time(d.last_seen_ms)) }
                td.num { (d.faults_in_period) }
            }
        }
    };
    html! {
        h2 { "Devices" }
        (table("devices", &cols, rows))
    }
}

fn levels(r: &Report) -> Markup {
    let rows = html! {
        @for l in &r.levels {
            tr {
                td { (level(l.level)) " " (l.name) }
                td.num { (l.opened) }
                td.num { (percent(l.respond.percent())) }
                td { (counts(&l.respond)) }
                td.num { (percent(l.resolve.percent())) }
                td { (counts(&l.resolve)) }
            }
        }
    };
    html! {
        h2 { "Faults by level and SLA" }
        (table(
            "levels",
            &["Level", "Opened#", "Respond met#", "Respond", "Resolve met#", "Resolve"],
            rows,
        ))
    }
}

fn sla_badge(st: SlaStatus) -> Markup {
    let class = match st {
        SlaStatus::Met => "sla-met",
        SlaStatus::Missed => "sla-missed",
        SlaStatus::OpenWithin => "sla-within",
        SlaStatus::OpenPastDue => "sla-pastdue",
        SlaStatus::Unknown => "sla-unknown",
        SlaStatus::NoTarget => "sla-none",
    };
    badge(class, st.label())
}

fn faults(r: &Report) -> Markup {
    let rows = html! {
        @for f in &r.faults {
            tr {
                td.nw { (r.time(Some(f.opened_ms))) }
                td { (f.device) }
                td.nw { (f.ticket_id) }
                td {
                    (f.code) ": " (f.title)
                    @if f.occurrence > 1 {
                        " (occurrence " (f.occurrence) ")"
                    }
                    @if f.replacement_recommended {
                        ", replacement recommended"
                    }
                }
                td.nw {
                    (level(f.level))
                    @if f.opened_level != f.level {
                        " from L" (f.opened_level)
                    }
                }
                td { (f.coverage) }
                td.nw { (r.time(f.acknowledged_ms)) }
                td.nw { (r.time(f.closed_ms)) }
                td { (sla_badge(f.respond)) }
                td { (sla_badge(f.resolve)) }
            }
        }
    };
    html! {
        h3 { "Fault tickets opened in the period" }
        @if r.faults.is_empty() {
            (none("None."))
        } @else {
            (table("faults", &FAULT_COLUMNS, rows))
        }
    }
}

fn downtime(r: &Report) -> Markup {
    let rows = html! {
        @for d in &r.downtime {
            tr {
                td { (d.device) }
                td.num { (d.outages) }
                td.num { (hours(d.hours)) }
                td.num { (d.availability.map_or_else(|| "-".to_owned(), |a| format!("{a:.2}%"))) }
                td {
                    @if d.ongoing {
                        (badge("st-offline", "out of service"))
                    } @else {
                        (badge("st-ok", "in service"))
                    }
                }
            }
        }
    };
    html! {
        h2 { "Downtime" }
        p.note { "Time with a level-1 fault active, within the period." }
        @if r.downtime.is_empty() {
            (none("No downtime in the period."))
        } @else {
            (table("downtime", &["Device", "Outages#", "Hours#", "Availability#", "Now"], rows))
        }
    }
}

fn inspections(r: &Report) -> Markup {
    let cols = ["Device", "Plan", "Done#", "Late#", "Overdue#", "Last done", "Next due", "State"];
    let rows = html! {
        @for i in &r.inspections {
            tr {
                td { (i.device) }
                td { (i.title) " (" (i.plan) ")" }
                td.num { (i.done) }
                td.num { (i.late) }
                td.num { (i.overdue) }
                td.nw { (r.time(i.last_done_ms)) }
                td.nw { (r.time(i.next_due_ms)) }
                td {
                    @let class = match i.state {
                        PlanState::Overdue => "st-overdue",
                        PlanState::DueSoon => "st-soon",
                        PlanState::Scheduled => "st-sched",
                        PlanState::Unscheduled => "st-meter",
                    };
                    (badge(class, i.state.label()))
                }
            }
        }
    };
    html! {
        h2 { "Inspections" }
        @if r.inspections.is_empty() {
            (none("No inspection plans."))
        } @else {
            p.note {
                "Done and overdue count within the period; state and next due are as of \
                generation (due soon: within " (DUE_SOON_DAYS) " days)."
            }
            (table("inspections", &cols, rows))
        }
    }
}

fn warranty(r: &Report) -> Markup {
    let cols = ["Device", "Component", "Covered until", "Days left#", "Downtime extension#"];
    let rows = html! {
        @for w in &r.warranty {
            tr {
                td { (w.device) }
                td { (w.component) }
                td { (w.until) }
                td.num { (w.days_left) }
                td.num {
                    @if w.extension_days > 0 {
                        "+" (w.extension_days) " d"
                    } @else {
                        "-"
                    }
                }
            }
        }
    };
    html! {
        h2 { "Warranty and contracts ending within " (WARRANTY_HORIZON_DAYS) " days" }
        @if r.warranty.is_empty() {
            (none("Nothing ends within the horizon."))
        } @else {
            (table("warranty", &cols, rows))
        }
    }
}

fn repeats(r: &Report) -> Markup {
    let cols = ["Device", "Fault", "Occurrence#", "Ticket", "Opened", "Closed"];
    let rows = html! {
        @for p in &r.repeats {
            tr {
                td { (p.device) }
                td { (p.code) ": " (p.title) }
                td.num { (p.occurrence) }
                td.nw { (p.ticket_id) }
                td.nw { (r.time(Some(p.opened_ms))) }
                td.nw { (r.time(p.closed_ms)) }
            }
        }
    };
    html! {
        h2 { "Repeat faults: replacement recommended" }
        @if r.repeats.is_empty() {
            (none("None."))
        } @else {
            (table("repeats", &cols, rows))
        }
    }
}
