//! The desk's HTML, server-rendered with `maud` (every interpolated value is
//! HTML-escaped by the template engine; nothing from a ticket is ever emitted raw).
//! Pure: records and the clock in, markup out.

use jiff::Timestamp;
use maud::{DOCTYPE, Markup, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::board::{self, Commitment, Filter, STATUS_CHOICES, next_due, time_left};
use crate::record::TicketRecord;
use crate::store::Queue;
use tend_wire::model::{Coverage, EventKind, FaultCategory, Status, TicketKind, WireTime};

/// Characters kept as they are in a path segment or query value.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes one path segment or query value.
pub(crate) fn encode(value: &str) -> String {
    utf8_percent_encode(value, KEEP).to_string()
}

/// The desk URL of a ticket.
pub(crate) fn ticket_url(ticket_id: &str) -> String {
    format!("/desk/tickets/{}", encode(ticket_id))
}

/// A whole page: head with the desk's stylesheet and script, a top bar, `body`.
fn layout(title: &str, signed_in: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tend desk" }
                link rel="stylesheet" href="/desk/assets/desk.css";
                script src="/desk/assets/desk.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/desk" { "tend" span { "maintenance desk" } }
                    @if signed_in {
                        form.signout method="post" action="/desk/logout" {
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The colour class of a severity (1 most urgent) or an inspection.
fn tone(record: &TicketRecord) -> String {
    match (record.ticket.kind, record.severity) {
        (TicketKind::Inspection, _) => "insp".to_owned(),
        (_, Some(level)) => format!("sev{level}"),
        (_, None) => "sev4".to_owned(),
    }
}

/// The severity badge: `L1`…`L4`, or `INSP`.
fn badge(record: &TicketRecord) -> Markup {
    if crate::store::is_site_outage(&record.ticket) {
        return html! { span class="badge sev1 site-outage" title="The whole site is down" { "SITE" } };
    }
    let label = match (record.ticket.kind, record.severity) {
        (TicketKind::Inspection, _) => "INSP".to_owned(),
        (_, Some(level)) => format!("L{level}"),
        (_, None) => "L?".to_owned(),
    };
    let hint = match record.severity {
        Some(1) => "Level 1: critical",
        Some(2) => "Level 2: major",
        Some(3) => "Level 3: minor",
        Some(4) => "Level 4: warning",
        _ => "Preventive inspection",
    };
    html! { span class={ "badge " (tone(record)) } title=(hint) { (label) } }
}

fn status_label(status: Status) -> &'static str {
    match status {
        Status::Open => "Open",
        Status::Acknowledged => "Acknowledged",
        Status::InProgress => "In progress",
        Status::Resolved => "Resolved",
        Status::Closed => "Closed",
    }
}

fn status_pill(status: Status) -> Markup {
    html! { span class={ "status " (status.as_str()) } { (status_label(status)) } }
}

/// A due time with what is left (or how late it is), coloured: `overdue`,
/// `soon` (under an hour), `ok`.
fn due(at: &WireTime, now: Timestamp) -> Markup {
    let (class, text) = match time_left(at, now) {
        Err(late) => ("overdue", format!("OVERDUE {late}")),
        Ok(left) if at.timestamp().duration_since(now).as_secs() < 3600 => ("soon", left),
        Ok(left) => ("ok", left),
    };
    html! {
        span class={ "due " (class) } title=(at.as_str()) {
            strong { (text) }
            " "
            small { (board::local(at)) }
        }
    }
}

/// The response cell: when staff responded, or the time left to respond.
fn respond_cell(record: &TicketRecord, now: Timestamp) -> Markup {
    let respond_by = record.ticket.sla.as_ref().and_then(|s| s.respond_by.as_ref());
    html! {
        @if let Some(at) = &record.acknowledged_at {
            @let late = respond_by.is_some_and(|by| at.timestamp() > by.timestamp());
            span class={ "done" @if late { " late" } } title=(at.as_str()) {
                @if late { "responded late " } @else { "responded " }
                small { (board::local_in(at, site_offset(record))) }
            }
        } @else if record.status != Status::Open {
            span.muted { "—" }
        } @else if let Some(by) = respond_by {
            (due(by, now))
        } @else {
            span.muted { "—" }
        }
    }
}

/// The on-site cell: time left to be on site while nobody is there yet.
fn onsite_cell(record: &TicketRecord, now: Timestamp) -> Markup {
    let sla = record.ticket.sla.as_ref();
    let waiting = matches!(record.status, Status::Open | Status::Acknowledged);
    html! {
        @match (record.ticket.kind, sla.and_then(|s| s.onsite_by.as_ref())) {
            (TicketKind::Inspection, _) => {
                @if let Some(at) = &record.ticket.due_at {
                    @if waiting { "inspect by " (due(at, now)) } @else { span.muted { "—" } }
                } @else {
                    span.muted { "—" }
                }
            }
            (_, Some(at)) if waiting => (due(at, now)),
            (_, None) if record.severity == Some(4) => span.muted { "at next inspection" },
            _ => span.muted { "—" },
        }
    }
}

fn select(name: &str, label: &str, any: &str, values: &[(String, String)], chosen: &str) -> Markup {
    html! {
        label {
            span { (label) }
            select name=(name) {
                option value="" selected[chosen.is_empty()] { (any) }
                @for (value, text) in values {
                    option value=(value) selected[chosen == value] { (text) }
                }
            }
        }
    }
}

/// The queue: `view` holds the most urgent matching tickets, the filter choices
/// and the counts.
pub(crate) fn queue(view: &Queue, filter: &Filter, now: Timestamp) -> Markup {
    let as_pairs = |values: &[String]| -> Vec<(String, String)> {
        values.iter().map(|v| (v.clone(), v.clone())).collect()
    };
    let sites = as_pairs(&view.sites);
    let types = as_pairs(&view.device_types);
    let shown = &view.shown;
    let kinds = vec![
        ("fault".to_owned(), "Faults".to_owned()),
        ("inspection".to_owned(), "Inspections".to_owned()),
    ];
    let statuses: Vec<(String, String)> =
        STATUS_CHOICES.iter().skip(1).map(|(v, l)| ((*v).to_owned(), (*l).to_owned())).collect();
    let status_chosen = if filter.status == "active" { "" } else { filter.status.as_str() };
    let body = html! {
        form.filters method="get" action="/desk" {
            (select("site", "Site", "All sites", &sites, &filter.site))
            (select("type", "Equipment", "All equipment", &types, &filter.device_type))
            (select("kind", "Kind", "Faults and inspections", &kinds, &filter.kind))
            (select("status", "Status", "Not closed", &statuses, status_chosen))
            button type="submit" { "Apply" }
            @if filter.is_set() { a.clear href="/desk" { "Clear filters" } }
        }
        section #live data-refresh="15" {
            p.summary {
                span.count { strong { (view.active) } " open" }
                span class={ "count" @if view.overdue > 0 { " alarm" } } { strong { (view.overdue) } " overdue" }
                span.count { strong { (view.unacknowledged) } " not acknowledged" }
                @if view.matching > shown.len() as u64 {
                    span.count { "showing the " (shown.len()) " most urgent of " strong { (view.matching) } }
                }
                span.updated { "Updated " (now.strftime("%H:%M:%S")) " UTC · times are site-local" }
            }
            @if shown.is_empty() {
                p.empty {
                    @if filter.is_set() { "No ticket matches these filters." } @else { "No open tickets. All quiet." }
                }
            } @else {
                table.queue {
                    thead { tr {
                        th { "Sev" } th { "Ticket" } th { "Problem" } th { "Device" }
                        th { "Status" } th { "Respond" } th { "On site" } th { "Opened" }
                    } }
                    tbody {
                        @for record in shown {
                            (queue_row(record, now))
                        }
                    }
                }
            }
        }
    };
    layout("Queue", true, body)
}

fn queue_row(record: &TicketRecord, now: Timestamp) -> Markup {
    let ticket = &record.ticket;
    let overdue = next_due(record).is_some_and(|n| n.at.timestamp() < now);
    let url = ticket_url(&ticket.ticket_id);
    html! {
        tr class={ (tone(record)) @if overdue { " is-overdue" } @if crate::store::is_site_outage(&record.ticket) { " is-site-outage" } @if record.status == Status::Closed { " is-closed" } }
           data-ticket=(ticket.ticket_id) {
            td { (badge(record)) }
            td.number { a href=(url) { (record.number) } }
            td.problem {
                a href=(url) { (ticket.title) }
                div.sub {
                    code { (ticket.code) }
                    @if let Some(n) = ticket.occurrence.filter(|n| *n > 1) {
                        span.flag { "repeat ×" (n) }
                    }
                    @if ticket.replacement_recommended { span.flag.replace { "replace unit" } }
                    @if let Some(coverage) = ticket.coverage { span.cov { (coverage_label(coverage)) } }
                }
            }
            td.device {
                strong { (ticket.device.id) }
                div.sub { (ticket.device.device_type) }
                div.sub { (ticket.site) @if let Some(location) = &ticket.device.location { " · " (location) } }
            }
            td { (status_pill(record.status)) }
            td { (respond_cell(record, now)) }
            td { (onsite_cell(record, now)) }
            td.opened title=(ticket.opened_at.as_str()) {
                (board::local(&ticket.opened_at))
                @let age = now.duration_since(ticket.opened_at.timestamp());
                div.sub {
                    @if age.is_negative() { "in " (board::span(age)) " (clock ahead)" } @else { (board::span(age)) " ago" }
                }
            }
        }
    }
}

fn coverage_label(coverage: Coverage) -> &'static str {
    match coverage {
        Coverage::Warranty => "warranty",
        Coverage::Contract => "contract",
        Coverage::Billable => "billable",
    }
}

/// The site's UTC offset (from the agent's `opened_at`): every time on the desk
/// reads in the site's local time, including those the service wrote in UTC.
fn site_offset(record: &TicketRecord) -> jiff::tz::Offset {
    board::offset_of(&record.ticket.opened_at)
}

/// A notice on the detail page after an action, or an error for the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The action worked.
    Done(String),
    /// The action was refused; the form keeps what was typed.
    Refused {
        /// Why.
        message: String,
        /// The resolution text as typed, put back into the form.
        resolution: String,
    },
}

/// One line of the ticket's timeline.
struct Line {
    at: WireTime,
    what: String,
    note: Option<String>,
}

fn timeline(record: &TicketRecord) -> Vec<Line> {
    let mut lines = vec![
        Line {
            at: record.ticket.opened_at.clone(),
            what: "Condition started (agent)".into(),
            note: None,
        },
        Line {
            at: record.received_at.clone(),
            what: format!("Received as {}", record.number),
            note: None,
        },
    ];
    for event in &record.events {
        let what = match event.event.kind {
            EventKind::Recurred { count } => format!("Recurred (×{count} in this episode)"),
            EventKind::Escalated { severity } => format!("Escalated to level {severity}"),
            EventKind::Recovered => "Recovered: condition cleared, please confirm".to_owned(),
            EventKind::Overdue => "Inspection overdue".to_owned(),
        };
        lines.push(Line { at: event.event.at.clone(), what, note: event.event.note.clone() });
    }
    if let Some(at) = &record.acknowledged_at {
        let what = match &record.acknowledged_by {
            Some(by) => format!("Acknowledged by {by}"),
            None => "Acknowledged".into(),
        };
        lines.push(Line { at: at.clone(), what, note: None });
    }
    if let Some(at) = &record.closed_at {
        let what = match &record.closed_by {
            Some(by) => format!("Closed by {by}"),
            None => "Closed".into(),
        };
        lines.push(Line { at: at.clone(), what, note: record.resolution.clone() });
    }
    lines.sort_by_key(|line| line.at.timestamp());
    lines
}

/// The ticket detail page.
pub(crate) fn detail(record: &TicketRecord, notice: Option<&Notice>, now: Timestamp) -> Markup {
    let ticket = &record.ticket;
    let url = ticket_url(&ticket.ticket_id);
    let sla = ticket.sla.clone().unwrap_or_default();
    let next = next_due(record);
    let offset = site_offset(record);
    let typed = match notice {
        Some(Notice::Refused { resolution, .. }) => resolution.as_str(),
        _ => "",
    };
    let body = html! {
        p.back { a href="/desk" { "← Queue" } }
        section #live class={ "ticket " (tone(record)) } data-refresh="15" {
            header.ticket-head {
                (badge(record))
                h1 { span.number { (record.number) } " " (ticket.title) }
                div.sub {
                    (status_pill(record.status)) " "
                    @match ticket.kind { TicketKind::Fault => "Fault ", TicketKind::Inspection => "Inspection " }
                    code { (ticket.code) } " · site " strong { (ticket.site) }
                    @if let Some(next) = &next {
                        " · next: " (next.commitment.label()) " " (due(&next.at, now))
                    }
                }
            }
            @match notice {
                Some(Notice::Done(message)) => p.notice.ok role="status" { (message) },
                Some(Notice::Refused { message, .. }) => p.notice.error role="alert" { (message) },
                None => {},
            }
            @if ticket.replacement_recommended {
                p.notice.warn {
                    "Replacement recommended: this device had this fault "
                    (ticket.occurrence.unwrap_or(0)) " times. Plan a unit replacement rather than another repair."
                }
            }
            section.actions {
                @if record.status == Status::Closed {
                    p.closed {
                        "Closed " (record.closed_at.as_ref().map(|at| board::local_in(at, offset)).unwrap_or_default())
                        @if let Some(resolution) = &record.resolution { ". Resolution: " span.pre { (resolution) } }
                    }
                } @else {
                    @if record.status == Status::Open {
                        form.ack method="post" action={ (url) "/acknowledge" } {
                            button.primary type="submit" { "Acknowledge" }
                            span.hint { "Take the ticket: the response commitment is met." }
                        }
                    }
                    @if matches!(record.status, Status::Open | Status::Acknowledged) {
                        form.start method="post" action={ (url) "/start" } {
                            button type="submit" { "Start work" }
                            span.hint { "A technician is on site: in progress. During an inspection the agent holds the device's alarms until the ticket is closed." }
                        }
                    }
                    form.close method="post" action={ (url) "/close" } {
                        label for="resolution" { "Resolution (what was done)" }
                        textarea #resolution name="resolution" rows="3" required
                            placeholder="e.g. Tank gasket replaced, level holds for 2 h" { (typed) }
                        button.danger type="submit" { "Close ticket" }
                        span.hint { "Closing ends the fault episode at the agent (an inspection restarts its schedule from now)." }
                    }
                }
            }
            div.grid {
                section.card {
                    h2 { "Device" }
                    dl {
                        dt { "Device" } dd { strong { (ticket.device.id) } }
                        dt { "Type" } dd { (ticket.device.device_type) }
                        @if let Some(model) = &ticket.device.model { dt { "Model" } dd { (model) } }
                        @if let Some(serial) = &ticket.device.serial { dt { "Serial" } dd { (serial) } }
                        @if let Some(location) = &ticket.device.location { dt { "Location" } dd { (location) } }
                        dt { "Site" } dd { (ticket.site) }
                    }
                }
                section.card {
                    h2 { "Commitments" }
                    dl {
                        @if let Some(at) = &sla.respond_by {
                            dt { "Respond by" }
                            dd { @if let Some(done) = &record.acknowledged_at { "responded " (board::local_in(done, offset)) " (due " (board::local(at)) ")" } @else { (due(at, now)) } }
                        }
                        @if let Some(at) = &sla.onsite_by {
                            dt { "On site by" } dd { (commitment(record, Commitment::Onsite, at, now)) }
                        } @else if ticket.kind == TicketKind::Fault && ticket.severity == Some(4) {
                            dt { "On site by" } dd { "at the next inspection" }
                        }
                        @if let Some(at) = &sla.resolve_by {
                            dt { "Resolve by" } dd { (commitment(record, Commitment::Resolve, at, now)) }
                        }
                        @if let Some(at) = &ticket.due_at {
                            dt { "Inspection due" } dd { (commitment(record, Commitment::Inspect, at, now)) }
                        }
                        dt { "Coverage" }
                        dd { @if let Some(c) = ticket.coverage { (coverage_label(c)) } @else { span.muted { "not stated" } } }
                        @if let Some(n) = ticket.occurrence {
                            dt { "Occurrence" }
                            dd { "#" (n) " of this fault on this device" @if ticket.replacement_recommended { " · " strong { "replace unit" } } }
                        }
                    }
                }
                @if let Some(diagnosis) = &ticket.diagnosis {
                    section.card {
                        h2 { "Diagnosis" }
                        dl {
                            @if let Some(cause) = &diagnosis.probable_cause { dt { "Probable cause" } dd { (cause) } }
                            @if let Some(category) = diagnosis.category {
                                dt { "Category" }
                                dd { @match category { FaultCategory::Hardware => "hardware: repair or replace", FaultCategory::Software => "software: adjust configuration" } }
                            }
                            @if !diagnosis.suggested_parts.is_empty() {
                                dt { "Bring" } dd { ul { @for part in &diagnosis.suggested_parts { li { (part) } } } }
                            }
                        }
                    }
                }
                @if let Some(description) = &ticket.description {
                    section.card.wide { h2 { "Description" } p.pre { (description) } }
                }
                @if !ticket.checklist.is_empty() {
                    section.card {
                        h2 { "Checklist" }
                        ol.checklist { @for item in &ticket.checklist { li { (item) } } }
                    }
                }
                @if !ticket.evidence.is_empty() {
                    section.card.wide {
                        h2 { "Evidence" }
                        table.evidence {
                            thead { tr { th { "Time" } th { "Field" } th { "Value" } } }
                            tbody {
                                @for e in &ticket.evidence {
                                    tr { td title=(e.ts.as_str()) { (board::local(&e.ts)) } td { code { (e.field) } } td { (value_text(&e.value)) } }
                                }
                            }
                        }
                    }
                }
                section.card.wide {
                    h2 { "Timeline" }
                    ol.timeline {
                        @for line in timeline(record) {
                            li {
                                time datetime=(line.at.as_str()) title=(line.at.as_str()) { (board::local_in(&line.at, offset)) }
                                " " (line.what)
                                @if let Some(note) = &line.note { div.note { (note) } }
                            }
                        }
                    }
                }
                section.card.wide.ids {
                    dl {
                        dt { "Ticket id" } dd { code { (ticket.ticket_id) } }
                        dt { "Idempotency key" } dd { code { (record.idempotency_key) } }
                        dt { "Received" } dd title=(record.received_at.as_str()) { (board::local_in(&record.received_at, offset)) }
                    }
                }
            }
        }
    };
    layout(&format!("{} {}", record.number, ticket.title), true, body)
}

/// A commitment line on the detail page: met, pending (with time left), or not
/// the current stage.
fn commitment(record: &TicketRecord, which: Commitment, at: &WireTime, now: Timestamp) -> Markup {
    let current = next_due(record).is_some_and(|n| n.commitment == which);
    html! {
        @if current { (due(at, now)) } @else { span title=(at.as_str()) { (board::local(at)) } }
    }
}

/// An evidence value for people: strings bare, numbers and booleans as JSON.
fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The sign-in page; `next` is where to go after, `problem` what went wrong;
/// `token_hint`: the service has a desk token (sign in with it and no user name).
pub(crate) fn login(next: &str, problem: Option<&str>, token_hint: bool) -> Markup {
    let body = html! {
        section.login {
            h1 { "Sign in to the maintenance desk" }
            @if let Some(problem) = problem { p.notice.error role="alert" { (problem) } }
            form method="post" action="/desk/login" {
                input type="hidden" name="next" value=(next);
                label for="user" { "User" }
                input #user type="text" name="user" autocomplete="username" autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button.primary type="submit" { "Sign in" }
            }
            p.hint {
                "Desk users are added with tend central user add NAME."
                @if token_hint { " The desk token (--desk-token, or the API token) signs in with an empty user." }
            }
        }
    };
    layout("Sign in", false, body)
}

/// An error page: what went wrong and a way back.
pub(crate) fn error(status: u16, title: &str, message: &str, back: &str) -> Markup {
    let body = html! {
        section.error-page {
            h1 { (status) " · " (title) }
            p.notice.error role="alert" { (message) }
            p { a href=(back) { "← Back" } }
        }
    };
    layout(title, true, body)
}
