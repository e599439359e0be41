//! The register as one standalone HTML page: inline CSS, inline SVG charts, no
//! script and no external resource, so it can be mailed, archived and printed.

use std::fmt::Write;

use super::chart::{self, LEVEL_COLOURS};
use super::markdown::counts;
use super::model::FAULT_COLUMNS;
use super::model::{
    DUE_SOON_DAYS, DeviceStatus, PlanState, Report, SlaStatus, WARRANTY_HORIZON_DAYS, hours,
};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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
    let mut s = String::with_capacity(32 * 1024);
    let title = format!("Operation register {} {}", r.site, r.period);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        escape(&title)
    );
    let _ = writeln!(
        s,
        "<header><h1>Equipment and operation register</h1>\
         <p class=\"meta\">Site <strong>{}</strong> · period <strong>{}</strong> ({}, {}) · generated {}</p></header>",
        escape(&r.site),
        escape(&r.period.to_string()),
        escape(&r.period_days()),
        escape(&r.timezone),
        escape(&r.generated_local())
    );
    if r.generated_ms < r.end_ms {
        s.push_str(
            "<p class=\"note\">The period has not ended: figures run to the generation time.</p>\n",
        );
    }
    let _ = writeln!(s, "<p class=\"summary\" id=\"summary\">{}</p>", escape(&r.summary_line()));
    cards(&mut s, r);

    s.push_str("<section class=\"charts\">\n");
    let _ = writeln!(
        s,
        "<figure><figcaption>Faults opened per week</figcaption>{}</figure>",
        chart::faults_per_week(&r.weeks)
    );
    let _ = writeln!(
        s,
        "<figure><figcaption>SLA compliance per level</figcaption>{}</figure>",
        chart::sla_compliance(&r.levels)
    );
    s.push_str("</section>\n");

    devices(&mut s, r);
    levels(&mut s, r);
    faults(&mut s, r);
    downtime(&mut s, r);
    inspections(&mut s, r);
    warranty(&mut s, r);
    repeats(&mut s, r);
    if !r.notes.is_empty() {
        s.push_str("<h2>Notes on the data</h2>\n<ul>\n");
        for n in &r.notes {
            let _ = writeln!(s, "<li>{}</li>", escape(n));
        }
        s.push_str("</ul>\n");
    }
    let _ = write!(
        s,
        "<footer>Produced by tend from the site's device archive. Times are local to {}. \
         Respond is met when the ticket was seen acknowledged (or closed) by its respond-by time; \
         resolve compares the central closing time with resolve-by.</footer>\n</main>\n</body>\n</html>\n",
        escape(&r.timezone)
    );
    s
}

fn cards(s: &mut String, r: &Report) {
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
    s.push_str("<div class=\"cards\">");
    for (n, k) in items {
        let _ = write!(
            s,
            "<div class=\"card\"><div class=\"n\">{}</div><div class=\"k\">{}</div></div>",
            escape(&n),
            escape(&k)
        );
    }
    s.push_str("</div>\n");
}

/// Table start with headers; names ending in `#` are numeric columns.
fn head(s: &mut String, id: &str, cols: &[&str]) {
    let _ = write!(s, "<table id=\"{id}\"><thead><tr>");
    for c in cols {
        match c.strip_suffix('#') {
            Some(c) => {
                let _ = write!(s, "<th class=\"num\">{}</th>", escape(c));
            }
            None => {
                let _ = write!(s, "<th>{}</th>", escape(c));
            }
        }
    }
    s.push_str("</tr></thead><tbody>\n");
}

fn td(s: &mut String, text: &str) {
    let _ = write!(s, "<td>{}</td>", escape(text));
}

/// A cell that does not wrap (times, ids).
fn nowrap(s: &mut String, text: &str) {
    let _ = write!(s, "<td class=\"nw\">{}</td>", escape(text));
}

fn num(s: &mut String, n: impl std::fmt::Display) {
    let _ = write!(s, "<td class=\"num\">{}</td>", escape(&n.to_string()));
}

fn badge(class: &str, text: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", escape(text))
}

fn level(l: u8) -> String {
    let i = usize::from(l.clamp(1, 4) - 1);
    format!("<span class=\"lvl lvl-{l}\" style=\"background:{}\">L{l}</span>", LEVEL_COLOURS[i])
}

fn none(s: &mut String, text: &str) {
    let _ = writeln!(s, "<p class=\"none\">{}</p>", escape(text));
}

fn devices(s: &mut String, r: &Report) {
    s.push_str("<h2>Devices</h2>\n");
    head(
        s,
        "devices",
        &[
            "Device",
            "Type",
            "Model",
            "Location",
            "Status",
            "Open faults#",
            "Last seen",
            "Faults in period#",
        ],
    );
    for d in &r.devices {
        s.push_str("<tr>");
        td(s, &d.id);
        td(s, &d.equipment_type);
        td(s, &d.model);
        td(s, &d.location);
        let class = match d.status {
            DeviceStatus::Ok => "st-ok",
            DeviceStatus::Faults => "st-faults",
            DeviceStatus::Offline => "st-offline",
            DeviceStatus::NoData => "st-nodata",
        };
        let text = match d.offline_since_ms {
            Some(_) => format!("offline since {}", r.time(d.offline_since_ms)),
            None => d.status.label().to_owned(),
        };
        let _ = write!(s, "<td>{}</td>", badge(class, &text));
        match d.worst_open {
            Some(w) => {
                let _ = write!(s, "<td class=\"num\">{} {}</td>", d.open_faults, level(w));
            }
            None => num(s, d.open_faults),
        }
        nowrap(s, &r.time(d.last_seen_ms));
        num(s, d.faults_in_period);
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
}

fn levels(s: &mut String, r: &Report) {
    s.push_str("<h2>Faults by level and SLA</h2>\n");
    head(s, "levels", &["Level", "Opened#", "Respond met#", "Respond", "Resolve met#", "Resolve"]);
    for l in &r.levels {
        let pct = |p: Option<f64>| p.map_or_else(|| "-".to_owned(), |p| format!("{}%", p.floor()));
        let _ = write!(s, "<tr><td>{} {}</td>", level(l.level), escape(l.name));
        num(s, l.opened);
        num(s, pct(l.respond.percent()));
        td(s, &counts(&l.respond));
        num(s, pct(l.resolve.percent()));
        td(s, &counts(&l.resolve));
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
}

fn sla_badge(st: SlaStatus) -> String {
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

fn faults(s: &mut String, r: &Report) {
    s.push_str("<h3>Fault tickets opened in the period</h3>\n");
    if r.faults.is_empty() {
        none(s, "None.");
        return;
    }
    head(s, "faults", &FAULT_COLUMNS);
    for f in &r.faults {
        s.push_str("<tr>");
        nowrap(s, &r.time(Some(f.opened_ms)));
        td(s, &f.device);
        nowrap(s, &f.ticket_id);
        let mut fault = format!("{}: {}", f.code, f.title);
        if f.occurrence > 1 {
            let _ = write!(fault, " (occurrence {})", f.occurrence);
        }
        if f.replacement_recommended {
            fault.push_str(", replacement recommended");
        }
        td(s, &fault);
        let from = if f.opened_level == f.level {
            String::new()
        } else {
            format!(" from L{}", f.opened_level)
        };
        let _ = write!(s, "<td class=\"nw\">{}{}</td>", level(f.level), escape(&from));
        td(s, &f.coverage);
        nowrap(s, &r.time(f.acknowledged_ms));
        nowrap(s, &r.time(f.closed_ms));
        let _ = write!(s, "<td>{}</td><td>{}</td>", sla_badge(f.respond), sla_badge(f.resolve));
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
}

fn downtime(s: &mut String, r: &Report) {
    s.push_str("<h2>Downtime</h2>\n<p class=\"note\">Time with a level-1 fault active, within the period.</p>\n");
    if r.downtime.is_empty() {
        none(s, "No downtime in the period.");
        return;
    }
    head(s, "downtime", &["Device", "Outages#", "Hours#", "Availability#", "Now"]);
    for d in &r.downtime {
        s.push_str("<tr>");
        td(s, &d.device);
        num(s, d.outages);
        num(s, hours(d.hours));
        num(s, d.availability.map_or_else(|| "-".to_owned(), |a| format!("{a:.2}%")));
        let now = if d.ongoing {
            badge("st-offline", "out of service")
        } else {
            badge("st-ok", "in service")
        };
        let _ = writeln!(s, "<td>{now}</td></tr>");
    }
    s.push_str("</tbody></table>\n");
}

fn inspections(s: &mut String, r: &Report) {
    s.push_str("<h2>Inspections</h2>\n");
    if r.inspections.is_empty() {
        none(s, "No inspection plans.");
        return;
    }
    let _ = writeln!(
        s,
        "<p class=\"note\">Done and overdue count within the period; state and next due are as of generation (due soon: within {DUE_SOON_DAYS} days).</p>"
    );
    head(
        s,
        "inspections",
        &["Device", "Plan", "Done#", "Late#", "Overdue#", "Last done", "Next due", "State"],
    );
    for i in &r.inspections {
        s.push_str("<tr>");
        td(s, &i.device);
        td(s, &format!("{} ({})", i.title, i.plan));
        num(s, i.done);
        num(s, i.late);
        num(s, i.overdue);
        nowrap(s, &r.time(i.last_done_ms));
        nowrap(s, &r.time(i.next_due_ms));
        let class = match i.state {
            PlanState::Overdue => "st-overdue",
            PlanState::DueSoon => "st-soon",
            PlanState::Scheduled => "st-sched",
            PlanState::Unscheduled => "st-meter",
        };
        let _ = writeln!(s, "<td>{}</td></tr>", badge(class, i.state.label()));
    }
    s.push_str("</tbody></table>\n");
}

fn warranty(s: &mut String, r: &Report) {
    let _ =
        writeln!(s, "<h2>Warranty and contracts ending within {WARRANTY_HORIZON_DAYS} days</h2>");
    if r.warranty.is_empty() {
        none(s, "Nothing ends within the horizon.");
        return;
    }
    head(
        s,
        "warranty",
        &["Device", "Component", "Covered until", "Days left#", "Downtime extension#"],
    );
    for w in &r.warranty {
        s.push_str("<tr>");
        td(s, &w.device);
        td(s, &w.component);
        td(s, &w.until.to_string());
        num(s, w.days_left);
        num(
            s,
            if w.extension_days > 0 { format!("+{} d", w.extension_days) } else { "-".to_owned() },
        );
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
}

fn repeats(s: &mut String, r: &Report) {
    s.push_str("<h2>Repeat faults: replacement recommended</h2>\n");
    if r.repeats.is_empty() {
        none(s, "None.");
        return;
    }
    head(s, "repeats", &["Device", "Fault", "Occurrence#", "Ticket", "Opened", "Closed"]);
    for p in &r.repeats {
        s.push_str("<tr>");
        td(s, &p.device);
        td(s, &format!("{}: {}", p.code, p.title));
        num(s, p.occurrence);
        nowrap(s, &p.ticket_id);
        nowrap(s, &r.time(Some(p.opened_ms)));
        nowrap(s, &r.time(p.closed_ms));
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
}
