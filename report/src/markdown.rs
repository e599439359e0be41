//! The register as Markdown: pipe tables, readable raw in a terminal and rendered on
//! a forge.

use std::fmt::Write;

use super::model::FAULT_COLUMNS;
use super::model::{DUE_SOON_DAYS, LEVEL_NAMES, Report, SlaCounts, WARRANTY_HORIZON_DAYS, hours};

/// Renders the register as Markdown.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Equipment and operation register: {}, {}\n", cell(&r.site), r.period);
    let _ = writeln!(
        s,
        "Period {} ({}). Generated {}.\n",
        r.period_days(),
        cell(&r.timezone),
        r.generated_local()
    );
    if r.generated_ms < r.end_ms {
        let _ = writeln!(s, "The period has not ended: figures run to the generation time.\n");
    }
    let _ = writeln!(s, "**{}**\n", r.summary_line());

    let _ = writeln!(s, "## Devices\n");
    table(
        &mut s,
        &[
            "Device",
            "Type",
            "Model",
            "Location",
            "Status",
            "Open faults",
            "Last seen",
            "Faults in period",
        ],
        r.devices.iter().map(|d| {
            let status = match d.offline_since_ms {
                Some(_) => format!("offline since {}", r.time(d.offline_since_ms)),
                None => d.status.label().to_owned(),
            };
            let open = match d.worst_open {
                Some(w) => format!("{} (worst L{w})", d.open_faults),
                None => d.open_faults.to_string(),
            };
            vec![
                d.id.clone(),
                d.equipment_type.clone(),
                d.model.clone(),
                d.location.clone(),
                status,
                open,
                r.time(d.last_seen_ms),
                d.faults_in_period.to_string(),
            ]
        }),
    );

    let _ = writeln!(s, "## Faults by level and SLA\n");
    table(
        &mut s,
        &["Level", "Opened", "Respond met", "Respond", "Resolve met", "Resolve"],
        r.levels.iter().map(|l| {
            vec![
                format!("L{} {}", l.level, l.name),
                l.opened.to_string(),
                pct(&l.respond),
                counts(&l.respond),
                pct(&l.resolve),
                counts(&l.resolve),
            ]
        }),
    );
    let _ = writeln!(
        s,
        "Respond is met when the sync saw the ticket acknowledged (or closed) by its respond-by time; \
         unknown when it never saw it acknowledged. Resolve compares the central `closed_at` with \
         resolve-by. Levels are final (after escalation).\n"
    );

    let _ = writeln!(s, "### Faults per ISO week\n");
    table(
        &mut s,
        &["Week", "From", "L1", "L2", "L3", "L4", "Total"],
        r.weeks.iter().map(|w| {
            let mut row = vec![format!("{}-W{:02}", w.iso_year, w.week), w.monday.to_string()];
            row.extend(w.by_level.iter().map(u32::to_string));
            row.push(w.total().to_string());
            row
        }),
    );

    let _ = writeln!(s, "### Fault tickets opened in the period\n");
    if r.faults.is_empty() {
        let _ = writeln!(s, "None.\n");
    } else {
        table(
            &mut s,
            &FAULT_COLUMNS,
            r.faults.iter().map(|f| {
                let level = if f.level == f.opened_level {
                    format!("L{}", f.level)
                } else {
                    format!("L{} (from L{})", f.level, f.opened_level)
                };
                let mut fault = format!("{}: {}", f.code, f.title);
                if f.occurrence > 1 {
                    let _ = write!(fault, " (occurrence {})", f.occurrence);
                }
                if f.replacement_recommended {
                    fault.push_str(", replacement recommended");
                }
                vec![
                    r.time(Some(f.opened_ms)),
                    f.device.clone(),
                    f.ticket_id.clone(),
                    fault,
                    level,
                    f.coverage.clone(),
                    r.time(f.acknowledged_ms),
                    r.time(f.closed_ms),
                    f.respond.label().to_owned(),
                    f.resolve.label().to_owned(),
                ]
            }),
        );
    }

    let _ = writeln!(s, "## Downtime (level-1 time out of service)\n");
    if r.downtime.is_empty() {
        let _ = writeln!(s, "None.\n");
    } else {
        table(
            &mut s,
            &["Device", "Outages", "Hours", "Availability", "Now"],
            r.downtime.iter().map(|d| {
                vec![
                    d.device.clone(),
                    d.outages.to_string(),
                    hours(d.hours),
                    d.availability.map_or_else(|| "-".to_owned(), |a| format!("{a:.2}%")),
                    if d.ongoing { "out of service".to_owned() } else { "in service".to_owned() },
                ]
            }),
        );
    }

    let _ = writeln!(s, "## Inspections\n");
    if r.inspections.is_empty() {
        let _ = writeln!(s, "No inspection plans.\n");
    } else {
        table(
            &mut s,
            &["Device", "Plan", "Done", "Late", "Overdue", "Last done", "Next due", "State"],
            r.inspections.iter().map(|i| {
                vec![
                    i.device.clone(),
                    format!("{} ({})", i.title, i.plan),
                    i.done.to_string(),
                    i.late.to_string(),
                    i.overdue.to_string(),
                    r.time(i.last_done_ms),
                    r.time(i.next_due_ms),
                    i.state.label().to_owned(),
                ]
            }),
        );
        let _ = writeln!(
            s,
            "Done and overdue count within the period; state and next due are as of generation \
             (due soon: within {DUE_SOON_DAYS} days).\n"
        );
    }

    let _ = writeln!(s, "## Warranty and contracts ending within {WARRANTY_HORIZON_DAYS} days\n");
    if r.warranty.is_empty() {
        let _ = writeln!(s, "None.\n");
    } else {
        table(
            &mut s,
            &["Device", "Component", "Covered until", "Days left", "Downtime extension"],
            r.warranty.iter().map(|w| {
                vec![
                    w.device.clone(),
                    w.component.clone(),
                    w.until.to_string(),
                    w.days_left.to_string(),
                    if w.extension_days > 0 {
                        format!("+{} d", w.extension_days)
                    } else {
                        "-".to_owned()
                    },
                ]
            }),
        );
    }

    let _ = writeln!(s, "## Repeat faults: replacement recommended\n");
    if r.repeats.is_empty() {
        let _ = writeln!(s, "None.\n");
    } else {
        table(
            &mut s,
            &["Device", "Fault", "Occurrence", "Ticket", "Opened", "Closed"],
            r.repeats.iter().map(|p| {
                vec![
                    p.device.clone(),
                    format!("{}: {}", p.code, p.title),
                    p.occurrence.to_string(),
                    p.ticket_id.clone(),
                    r.time(Some(p.opened_ms)),
                    r.time(p.closed_ms),
                ]
            }),
        );
    }

    let _ = writeln!(s, "## Site outages\n");
    if r.outages.is_empty() {
        let _ = writeln!(s, "None.\n");
    } else {
        table(
            &mut s,
            &["Started", "Ended", "Hours", "Devices", "Still offline at the end", "Ticket"],
            r.outages.iter().map(|o| {
                vec![
                    r.time(Some(o.started_ms)),
                    r.time(o.ended_ms),
                    format!("{:.1}", o.hours),
                    format!("{} ({})", o.devices.len(), o.devices.join(", ")),
                    o.still_offline.join(", "),
                    o.ticket_id.clone(),
                ]
            }),
        );
    }

    let _ = writeln!(s, "## Maintenance windows\n");
    if r.windows.is_empty() {
        let _ = writeln!(s, "None.\n");
    } else {
        table(
            &mut s,
            &["Device", "Source", "Started", "Ended", "Suppressed", "Note"],
            r.windows.iter().map(|w| {
                vec![
                    w.device.clone(),
                    w.source.clone(),
                    r.time(Some(w.started_ms)),
                    r.time(w.ended_ms),
                    w.suppressed.to_string(),
                    w.note.clone().unwrap_or_default(),
                ]
            }),
        );
    }

    if !r.notes.is_empty() {
        let _ = writeln!(s, "## Notes on the data\n");
        for n in &r.notes {
            let _ = writeln!(s, "- {}", cell(n));
        }
        s.push('\n');
    }
    // Level names are used by the HTML legend too; keep the Markdown key short.
    let _ = writeln!(
        s,
        "Levels: {}.",
        LEVEL_NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| format!("L{} {n}", i + 1))
            .collect::<Vec<_>>()
            .join(", ")
    );
    s
}

/// `75%` or `-`.
fn pct(c: &SlaCounts) -> String {
    c.percent().map_or_else(|| "-".to_owned(), |p| format!("{}%", p.floor()))
}

/// `3 met, 1 missed, 1 open` (only the non-zero outcomes).
pub(crate) fn counts(c: &SlaCounts) -> String {
    let parts = [
        (c.met, "met"),
        (c.missed, "missed"),
        (c.open_past_due, "open past due"),
        (c.open_within, "open within"),
        (c.unknown, "unknown"),
        (c.no_target, "no target"),
    ];
    let text: Vec<String> =
        parts.iter().filter(|(n, _)| *n > 0).map(|(n, w)| format!("{n} {w}")).collect();
    if text.is_empty() { "-".to_owned() } else { text.join(", ") }
}

/// A pipe table with a blank line after it.
fn table(s: &mut String, head: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let _ = writeln!(s, "| {} |", head.join(" | "));
    let _ = writeln!(s, "|{}", head.iter().map(|_| "---|").collect::<String>());
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    s.push('\n');
}

/// Table-safe text: pipes escaped, line breaks flattened, HTML-looking text inert.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '\n' | '\r' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}
