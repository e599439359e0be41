//! Site staff's commands against the agent's own data: the device archive
//! (`tend device`, `tend report`), locally recorded inspections
//! (`tend inspection complete`) and declared maintenance windows
//! (`tend maintenance start|end`).
//!
//! The store belongs to one process at a time (the store locks it). While `tend run` is
//! running, the commands go through its local API (`GET /archive`,
//! `POST /inspections/complete`, `POST /maintenance`, loopback by default) and the
//! pipeline thread
//! applies them like any other input ([`LocalCommand`]); when it is stopped, they
//! open the store themselves with the same pipeline code.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::config::Config;
use crate::maintenance::rfc3339;
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::store::archive::SiteArchive;

/// A command for the pipeline thread of a running agent.
#[derive(Debug)]
pub enum LocalCommand {
    /// The archive of the site, or of one device.
    Archive {
        /// Only this device.
        device: Option<String>,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<SiteArchive, String>>,
    },
    /// An inspection done on site.
    Complete {
        /// What was done.
        completion: Completion,
        /// Number of requests queued for the central service, or why not.
        reply: oneshot::Sender<Result<usize, CompletionRefused>>,
    },
    /// A maintenance window declared or ended by site staff.
    Maintenance {
        /// What to do.
        request: MaintenanceRequest,
        /// What it did, or why not.
        reply: oneshot::Sender<Result<MaintenanceDone, CompletionRefused>>,
    },
}

/// `tend maintenance start|end` (`POST /maintenance`); the window starts or ends at
/// the agent's clock when it is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    /// Device id.
    pub device: String,
    /// `true`: start (or restart) a declared window; `false`: end it.
    pub start: bool,
    /// Length of the window (ms); the configured default when absent.
    #[serde(default)]
    pub length_ms: Option<i64>,
    /// A note for the archive.
    #[serde(default)]
    pub note: Option<String>,
}

/// What a maintenance command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceDone {
    /// When the window started or ended (ms).
    pub at_ms: i64,
    /// When a started window ends by itself (ms).
    #[serde(default)]
    pub until_ms: Option<i64>,
    /// False for an `end` when no window was declared.
    pub changed: bool,
    /// Requests queued (tickets of what was still active at the end).
    pub queued: usize,
}

/// A locally recorded inspection (`POST /inspections/complete`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Completion {
    /// Device id.
    pub device: String,
    /// Inspection plan id.
    pub plan: String,
    /// When it was done (ms since the epoch).
    pub at_ms: i64,
    /// A note for the record and the ticket's resolution.
    #[serde(default)]
    pub note: Option<String>,
}

/// The local token's file name in the data directory.
pub const TOKEN_FILE: &str = "api-token";

/// Writes a fresh random token to `{dir}/api-token`, readable and writable only by
/// this user, and returns it.
pub fn write_token(dir: &std::path::Path) -> std::io::Result<String> {
    use std::io::Write as _;
    let token = hex::encode(rand::random::<[u8; 32]>());
    let path = dir.join(TOKEN_FILE);
    let tmp = dir.join(format!("{TOKEN_FILE}.tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(token.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(token)
}

/// Reads the running agent's local token from `{dir}/api-token`.
pub fn read_token(dir: &std::path::Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(dir.join(TOKEN_FILE))?.trim().to_owned())
}

/// Why a completion was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct CompletionRefused {
    /// The request itself is wrong (unknown device or plan): not worth retrying.
    pub bad_request: bool,
    /// What is wrong.
    pub message: String,
}

/// An answer to a site staff's command, sent once what the command did is durable.
pub struct Reply {
    send: Box<dyn FnOnce() + Send>,
}

impl Reply {
    /// Sends the answer; `proof` shows the command's effects are on disk.
    pub fn send(self, _proof: &crate::store::Durable) {
        (self.send)();
    }
}

/// Applies a command to the pipeline (on the pipeline thread). A command that changed
/// something returns what it committed and the answer to send once that is durable;
/// any other is answered at once.
pub fn apply(
    pipeline: &mut Pipeline,
    command: LocalCommand,
    now_ms: i64,
) -> Option<(crate::pipeline::Applied, Reply)> {
    match command {
        LocalCommand::Archive { device, reply } => {
            let _ =
                reply.send(pipeline.archive(device.as_deref(), now_ms).map_err(|e| e.to_string()));
            None
        }
        LocalCommand::Complete { completion: c, reply } => {
            match pipeline.inspection_completed(&c.device, &c.plan, c.at_ms, c.note.as_deref()) {
                Ok(applied) => {
                    let queued = applied.queued;
                    let send = Box::new(move || {
                        let _ = reply.send(Ok(queued));
                    });
                    Some((applied, Reply { send }))
                }
                Err(e) => {
                    let bad_request = !matches!(e, crate::pipeline::CompleteError::Store(_));
                    let _ =
                        reply.send(Err(CompletionRefused { bad_request, message: e.to_string() }));
                    None
                }
            }
        }
        LocalCommand::Maintenance { request, reply } => {
            match maintenance_apply(pipeline, &request, now_ms) {
                Ok((done, applied)) => {
                    let send = Box::new(move || {
                        let _ = reply.send(Ok(done));
                    });
                    Some((applied, Reply { send }))
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                    None
                }
            }
        }
    }
}

/// Applies a maintenance command to the pipeline at `now_ms`.
fn maintenance_apply(
    pipeline: &mut Pipeline,
    m: &MaintenanceRequest,
    now_ms: i64,
) -> Result<(MaintenanceDone, crate::pipeline::Applied), CompletionRefused> {
    let refused = |e: crate::pipeline::MaintenanceError| CompletionRefused {
        bad_request: !matches!(e, crate::pipeline::MaintenanceError::Store(_)),
        message: e.to_string(),
    };
    if m.start {
        let (until, applied) = pipeline
            .maintenance_start(&m.device, now_ms, m.length_ms, m.note.as_deref())
            .map_err(refused)?;
        let done =
            MaintenanceDone { at_ms: now_ms, until_ms: Some(until), changed: true, queued: 0 };
        Ok((done, applied))
    } else {
        let (changed, applied) = pipeline.maintenance_end(&m.device, now_ms).map_err(refused)?;
        let done =
            MaintenanceDone { at_ms: now_ms, until_ms: None, changed, queued: applied.queued };
        Ok((done, applied))
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Starts or ends a declared maintenance window; returns a line for the person.
pub async fn maintenance(config: &Config, request: MaintenanceRequest) -> anyhow::Result<String> {
    if config.inventory.device(&request.device).is_none() {
        bail!(
            "device `{}` is not in the inventory {}",
            request.device,
            config.inventory.path.display()
        );
    }
    let tz = config.inventory.timezone.clone();
    let device = request.device.clone();
    let say = move |d: &MaintenanceDone, by: &str| {
        let at = |ms: i64| {
            jiff::Timestamp::from_millisecond(ms).map(|t| rfc3339(t, &tz)).unwrap_or_default()
        };
        match (d.until_ms, d.changed) {
            (Some(until), _) => format!(
                "`{}` is under maintenance from {} until {} ({by}): its faults are recorded \
                 but page nobody, except the codes that always page",
                device,
                at(d.at_ms),
                at(until)
            ),
            (None, true) => format!(
                "maintenance of `{}` ended at {} ({by}); {} ticket(s) opened for what is \
                 still active",
                device,
                at(d.at_ms),
                d.queued
            ),
            (None, false) => format!("`{}` had no declared maintenance window", device),
        }
    };
    if let Some(base) = running_agent(config).await {
        let body = post_to_agent(config, &base, "/maintenance", &request).await?;
        let done: MaintenanceDone =
            serde_json::from_str(&body).context("the agent's answer is unreadable")?;
        return Ok(say(&done, "by the running agent"));
    }
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let mut pipeline = offline_pipeline(&config)?;
        let (done, applied) =
            maintenance_apply(&mut pipeline, &request, now_ms()).map_err(|e| anyhow!("{e}"))?;
        applied.sync(pipeline.store()).context("flushing the store")?;
        Ok(say(&done, "in the agent's store; the agent is not running"))
    })
    .await
    .context("recording the maintenance window")?
}

/// POSTs a command to the running agent's local API at `base` with the local token:
/// the answer's body, or the agent's `error` message as the error.
async fn post_to_agent(
    config: &Config,
    base: &str,
    path: &str,
    command: &impl Serialize,
) -> anyhow::Result<String> {
    let url = format!("{base}{path}");
    let dir = &config.store.data_dir;
    let token = read_token(dir).with_context(|| {
        format!(
            "reading the running agent's local token {} (run this as the agent's user)",
            dir.join(TOKEN_FILE).display()
        )
    })?;
    let answer = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .json(command)
        .send()
        .await
        .with_context(|| format!("asking the agent at {url}"))?;
    let status = answer.status();
    let body = answer.text().await.context("reading the agent's answer")?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str().map(str::to_owned)))
            .unwrap_or(body);
        bail!("{message}");
    }
    Ok(body)
}

/// The base URL of a running agent's local API, if it answers.
async fn running_agent(config: &Config) -> Option<String> {
    if !config.api.enabled {
        return None;
    }
    let base = format!("http://{}", config.api.listen);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().ok()?;
    http.get(format!("{base}/health")).send().await.ok()?;
    Some(base)
}

/// Opens the agent's store and pipeline when the agent is not running.
fn offline_pipeline(config: &Config) -> anyhow::Result<Pipeline> {
    let dir = &config.store.data_dir;
    let store = Store::open(dir, config.store.cache_capacity_bytes()).map_err(|e| {
        anyhow!(
            "{e}\n(is `tend run` using it? With [api] enabled, these commands go through \
             the running agent)"
        )
    })?;
    let plugins = crate::app::load_plugins(config, Some(&config.plugins.cache_dir))
        .map_err(crate::app::load_errors)?;
    Pipeline::new(config, plugins, store, now_ms()).context("opening the agent's data")
}

/// The site's archive (or one device's): from the running agent, else from the store.
pub async fn archive(config: &Config, device: Option<&str>) -> anyhow::Result<SiteArchive> {
    if let Some(device) = device
        && config.inventory.device(device).is_none()
    {
        bail!("device `{device}` is not in the inventory {}", config.inventory.path.display());
    }
    if let Some(base) = running_agent(config).await {
        let mut url = format!("{base}/archive");
        if let Some(d) = device {
            url.push_str("?device=");
            url.push_str(d);
        }
        let answer =
            reqwest::get(&url).await.with_context(|| format!("asking the agent at {url}"))?;
        let status = answer.status();
        let body = answer.text().await.context("reading the agent's answer")?;
        if !status.is_success() {
            bail!("the agent at {base} answered {status}: {body}");
        }
        return serde_json::from_str(&body).context("the agent's archive is unreadable");
    }
    let config = config.clone();
    let device = device.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let pipeline = offline_pipeline(&config)?;
        Ok(pipeline.archive(device.as_deref(), now_ms())?)
    })
    .await
    .context("reading the archive")?
}

/// Records an inspection done on site; returns a line for the person.
pub async fn complete(config: &Config, completion: Completion) -> anyhow::Result<String> {
    let when = jiff::Timestamp::from_millisecond(completion.at_ms)
        .map(|t| rfc3339(t, &config.inventory.timezone))
        .unwrap_or_default();
    let done = format!(
        "inspection `{}` of `{}` recorded as done at {when}",
        completion.plan, completion.device
    );
    if let Some(base) = running_agent(config).await {
        post_to_agent(config, &base, "/inspections/complete", &completion).await?;
        return Ok(format!(
            "{done} (by the running agent; the ticket is closed at the central service)"
        ));
    }
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let mut pipeline = offline_pipeline(&config)?;
        let applied = pipeline
            .inspection_completed(
                &completion.device,
                &completion.plan,
                completion.at_ms,
                completion.note.as_deref(),
            )
            .map_err(|e| anyhow!("{e}"))?;
        let queued = applied.queued;
        applied.sync(pipeline.store()).context("flushing the store")?;
        let tail = if queued == 0 {
            String::new()
        } else {
            " (the open ticket is closed at the central service when the agent next runs)"
                .to_owned()
        };
        Ok(format!("{done}{tail}"))
    })
    .await
    .context("recording the inspection")?
}

/// Readable text for people: tables of the archive.
pub mod text {
    use std::fmt::Write as _;

    use jiff::tz::TimeZone;

    use crate::store::archive::{ArchiveEvent, DeviceArchive, SiteArchive};

    fn tz(a: &SiteArchive) -> TimeZone {
        TimeZone::get(&a.timezone).unwrap_or(TimeZone::UTC)
    }

    fn when(ms: i64, tz: &TimeZone) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| tz.to_datetime(t).strftime("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|_| "?".into())
    }

    fn day(ms: i64, tz: &TimeZone) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| tz.to_datetime(t).date().to_string())
            .unwrap_or_else(|_| "?".into())
    }

    /// A meter reading for people: whole numbers as they are, others to 0.1.
    fn reading(v: f64) -> String {
        if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.1}") }
    }

    /// One word on the device's state.
    pub fn status(d: &DeviceArchive) -> String {
        if d.maintenance.is_some() {
            return "MAINTENANCE".into();
        }
        if d.offline_since_ms.is_some() {
            return "OFFLINE".into();
        }
        let active: Vec<&_> = d.open_faults.iter().filter(|f| f.phase != "recovered").collect();
        match active.iter().map(|f| f.severity).min() {
            Some(worst) => format!("FAULT L{worst} ({})", active.len()),
            None if !d.open_faults.is_empty() => "recovered, ticket open".into(),
            None if d.inspections.iter().any(|p| p.overdue) => "inspection overdue".into(),
            None => "ok".into(),
        }
    }

    /// Pads a table's columns to their widest cell.
    fn table(rows: &[Vec<String>]) -> String {
        let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
        let width: Vec<usize> = (0..cols)
            .map(|c| {
                rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for r in rows {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, cell)| format!("{cell:<w$}", w = width.get(i).copied().unwrap_or(0)))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        out
    }

    /// `tend device list`.
    pub fn list(a: &SiteArchive) -> String {
        let tz = tz(a);
        let mut rows = vec![
            [
                "DEVICE",
                "TYPE",
                "LOCATION",
                "STATUS",
                "NEXT INSPECTION",
                "WARRANTY UNTIL",
                "DOWNTIME",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for d in &a.devices {
            let next = d
                .inspections
                .iter()
                .filter_map(|p| Some((p.open.as_ref().map(|o| o.1).or(p.next_due_ms)?, p)))
                .min_by_key(|(due, _)| *due)
                .map(|(due, p)| {
                    format!(
                        "{} {}{}",
                        day(due, &tz),
                        p.plan,
                        if p.overdue { " OVERDUE" } else { "" }
                    )
                })
                .unwrap_or_else(|| "-".into());
            let warranty = d
                .warranty
                .iter()
                .map(|w| w.until)
                .max()
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into());
            rows.push(vec![
                d.device.id.clone(),
                d.device.equipment_type.clone(),
                d.device.location.clone(),
                status(d),
                next,
                warranty,
                format!("{} d", d.downtime_days),
            ]);
        }
        format!("site {} ({})\n{}", a.site, a.timezone, table(&rows))
    }

    /// `tend device show ID`.
    pub fn show(a: &SiteArchive, d: &DeviceArchive) -> String {
        let tz = tz(a);
        let f = &d.device;
        let mut o = String::new();
        let _ = writeln!(o, "{}  {} {} (serial {})", f.id, f.equipment_type, f.model, f.serial);
        let _ = writeln!(o, "location      {}", f.location);
        if let Some(p) = &f.purpose {
            let _ = writeln!(o, "purpose       {p}");
        }
        if let Some(m) = f.manufactured {
            let _ = writeln!(o, "manufactured  {m}");
        }
        let _ = writeln!(o, "commissioned  {}", f.commissioned);
        if let Some(c) = f.contract_until {
            let _ = writeln!(o, "contract      until {c}");
        }
        let _ = writeln!(o, "status        {}", status(d));
        if let Some(m) = &d.maintenance {
            let mut line = format!("since {}", when(m.since_ms, &tz));
            if let Some(u) = m.until_ms {
                line.push_str(&format!(", declared until {}", when(u, &tz)));
            }
            if !m.inspections.is_empty() {
                line.push_str(&format!(", inspection in progress ({})", m.inspections.join(", ")));
            }
            if let Some(n) = &m.note {
                line.push_str(&format!(", note: {n}"));
            }
            if !m.suppressed.is_empty() {
                line.push_str(&format!(", suppressed now: {}", m.suppressed.join(", ")));
            }
            let _ = writeln!(o, "maintenance   {line}");
        }
        if let Some(seen) = d.last_seen_ms {
            let _ = writeln!(o, "last seen     {}", when(seen, &tz));
        }
        if !d.meters.is_empty() {
            let m: Vec<String> =
                d.meters.iter().map(|(k, v)| format!("{k} {}", reading(*v))).collect();
            let _ = writeln!(o, "meters        {}", m.join(", "));
        }
        let _ = writeln!(o, "downtime      {} d (extends the warranty)", d.downtime_days);
        let _ = writeln!(o, "\nWARRANTY");
        let mut rows = vec![["COMPONENT", "UNTIL", "WITHOUT DOWNTIME"].map(String::from).to_vec()];
        for w in &d.warranty {
            rows.push(vec![w.component.clone(), w.until.to_string(), w.base_until.to_string()]);
        }
        o.push_str(&table(&rows));
        let _ = writeln!(o, "\nINSPECTIONS");
        let mut rows = vec![
            ["PLAN", "EVERY", "METER", "NEXT DUE", "OPEN TICKET", "LAST DONE"]
                .map(String::from)
                .to_vec(),
        ];
        for p in &d.inspections {
            rows.push(vec![
                p.plan.clone(),
                p.every.clone().unwrap_or_else(|| "-".into()),
                p.meter.clone().unwrap_or_else(|| "-".into()),
                p.open
                    .as_ref()
                    .map(|o| o.1)
                    .or(p.next_due_ms)
                    .map(|ms| day(ms, &tz))
                    .unwrap_or_else(|| "-".into()),
                p.open
                    .as_ref()
                    .map(|o| format!("{}{}", o.0, if p.overdue { " OVERDUE" } else { "" }))
                    .unwrap_or_else(|| "-".into()),
                p.last_completed_ms.map(|ms| day(ms, &tz)).unwrap_or_else(|| "-".into()),
            ]);
        }
        o.push_str(&table(&rows));
        if !d.open_faults.is_empty() {
            let _ = writeln!(o, "\nOPEN FAULTS");
            let mut rows =
                vec![["CODE", "LEVEL", "SINCE", "PHASE", "TICKET"].map(String::from).to_vec()];
            for f in &d.open_faults {
                rows.push(vec![
                    f.code.clone(),
                    f.severity.to_string(),
                    when(f.opened_ms, &tz),
                    f.phase.clone(),
                    f.ticket_id.clone(),
                ]);
            }
            o.push_str(&table(&rows));
        }
        let _ = writeln!(o, "\nHISTORY");
        let mut rows = vec![["WHEN", "WHAT", "DETAIL"].map(String::from).to_vec()];
        for e in &d.history {
            let (what, detail) = describe(&e.event, &tz);
            rows.push(vec![when(e.at_ms, &tz), what.into(), detail]);
        }
        if d.history.is_empty() {
            rows.push(vec!["-".into(), "nothing recorded yet".into(), String::new()]);
        }
        o.push_str(&table(&rows));
        o
    }

    fn describe(e: &ArchiveEvent, tz: &TimeZone) -> (&'static str, String) {
        match e {
            ArchiveEvent::FaultOpened {
                code,
                severity,
                coverage,
                occurrence,
                replacement_recommended,
                ticket_id,
                ..
            } => (
                "fault opened",
                format!(
                    "{code} L{severity}, {coverage}, occurrence {occurrence}{} ({ticket_id})",
                    if *replacement_recommended { ", REPLACEMENT RECOMMENDED" } else { "" }
                ),
            ),
            ArchiveEvent::FaultEscalated { code, severity, .. } => {
                ("escalated", format!("{code} to L{severity}"))
            }
            ArchiveEvent::FaultRecovered { code, .. } => ("recovered", code.clone()),
            ArchiveEvent::FaultRecurred { code, count, .. } => {
                ("recurred", format!("{code} (x{count})"))
            }
            ArchiveEvent::TicketAcknowledged { ticket_id } => ("acknowledged", ticket_id.clone()),
            ArchiveEvent::TicketClosed { ticket_id, resolution } => (
                "ticket closed",
                match resolution {
                    Some(r) => format!("{ticket_id}: {r}"),
                    None => ticket_id.clone(),
                },
            ),
            ArchiveEvent::InspectionOpened { plan, due_ms, trigger, .. } => {
                ("inspection due", format!("{plan} by {} ({trigger})", when(*due_ms, tz)))
            }
            ArchiveEvent::InspectionOverdue { plan, due_ms, .. } => {
                ("inspection OVERDUE", format!("{plan} was due {}", when(*due_ms, tz)))
            }
            ArchiveEvent::InspectionCompleted { plan, source, note, meters, .. } => {
                let m: Vec<String> =
                    meters.iter().map(|(k, v)| format!("{k} {}", reading(*v))).collect();
                let mut s = format!("{plan} ({source})");
                if !m.is_empty() {
                    s.push_str(&format!(", meters: {}", m.join(", ")));
                }
                if let Some(n) = note {
                    s.push_str(&format!(", note: {n}"));
                }
                ("inspection done", s)
            }
            ArchiveEvent::DowntimeStarted { code } => ("out of service", format!("level-1 {code}")),
            ArchiveEvent::DowntimeEnded { duration_ms } => {
                ("back in service", format!("after {:.1} h", *duration_ms as f64 / 3_600_000.0))
            }
            ArchiveEvent::OutageJoined { ticket_id } => {
                ("offline: site outage", format!("covered by {ticket_id}, no ticket of its own"))
            }
            ArchiveEvent::SiteOutageOpened { ticket_id, devices } => (
                "site outage",
                format!(
                    "{} devices offline at once: {} ({ticket_id})",
                    devices.len(),
                    devices.join(", ")
                ),
            ),
            ArchiveEvent::SiteOutageRecovered { ticket_id, started_ms, devices, still_offline } => {
                (
                    "site outage over",
                    format!(
                        "since {}, {} devices{} ({ticket_id})",
                        when(*started_ms, tz),
                        devices.len(),
                        if still_offline.is_empty() {
                            String::new()
                        } else {
                            format!(", still offline: {}", still_offline.join(", "))
                        }
                    ),
                )
            }
            ArchiveEvent::MaintenanceStarted { source, ticket_id, until_ms, note } => {
                let mut s = source.clone();
                if let Some(t) = ticket_id {
                    s.push_str(&format!(" {t}"));
                }
                if let Some(u) = until_ms {
                    s.push_str(&format!(", until {}", when(*u, tz)));
                }
                if let Some(n) = note {
                    s.push_str(&format!(", note: {n}"));
                }
                ("maintenance started", s)
            }
            ArchiveEvent::MaintenanceEnded { source } => ("maintenance ended", source.clone()),
            ArchiveEvent::Suppressed { code, severity } => {
                ("suppressed (maintenance)", format!("{code} L{severity}"))
            }
        }
    }
}
