//! Glue for the commands: plugins from config, `tend replay`, `tend check`.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::config::Config;
use crate::ingest::event_time::event_time_ms;
use crate::pipeline::{Clock, Counters, Incoming, Pipeline, plugin_limits};
use crate::plugins::{LoadError, PluginEngine, PluginSet, PluginSource};
use crate::store::{OutboxEntry, Store};
use crate::trace::read_trace_bytes;

/// The plugin files config names: pinned ones (with their digests), then every other
/// `*.wasm` in the plugin directory unless `only_pinned`.
pub fn plugin_sources(config: &Config) -> Result<Vec<PluginSource>, LoadError> {
    let p = &config.plugins;
    let mut sources: BTreeMap<PathBuf, Option<String>> = BTreeMap::new();
    for pin in &p.pins {
        sources.insert(pin.path.clone(), Some(pin.sha256.clone()));
    }
    if !p.only_pinned {
        for s in PluginSource::from_dir(&p.dir)? {
            sources.entry(s.path).or_insert(None);
        }
    }
    Ok(sources.into_iter().map(|(path, sha256)| PluginSource { path, sha256 }).collect())
}

/// Loads the plugin set config names (compiled artifacts cached in `cache_dir`).
pub fn load_plugins(
    config: &Config,
    cache_dir: Option<&Path>,
) -> Result<PluginSet, Vec<LoadError>> {
    let engine = PluginEngine::new(cache_dir.map(Path::to_owned)).map_err(|e| vec![e])?;
    let sources = plugin_sources(config).map_err(|e| vec![e])?;
    PluginSet::load(engine, &sources, plugin_limits(config))
}

/// One error listing every plugin that failed to load.
pub fn load_errors(errors: Vec<LoadError>) -> anyhow::Error {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    anyhow::anyhow!("plugins could not be loaded:\n  {}", lines.join("\n  "))
}

/// One line of `tend replay` output: a request the agent would send.
#[derive(Debug, Serialize)]
pub struct ReplayLine<'a> {
    /// Always POST (the agent only POSTs; GETs of the sync are not replayed).
    pub method: &'static str,
    /// Path relative to the central service's base URL.
    pub path: String,
    /// The request's idempotency key.
    pub idempotency_key: &'a str,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// Totals of a replay.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    /// Trace lines read.
    pub lines: u64,
    /// Lines that were not trace lines.
    pub bad_lines: u64,
    /// Requests printed.
    pub requests: u64,
    /// The pipeline's counters.
    pub counters: Counters,
}

/// `tend replay`: the live pipeline over a recorded trace, in event time ("now" is the
/// largest `ts` seen), with a throw-away store; prints every request as a JSON line
/// and sends nothing. The same trace always gives the same bytes.
///
/// The clock starts at the trace's first `ts` (interfaces.md, "Time in replay"): the
/// lines before it (typically each device's retained `status` "online") wait and take
/// effect at that first `ts`; no timer, schedule or offline check runs before it.
pub fn replay(
    config: &Config,
    trace: impl BufRead,
    out: &mut dyn Write,
) -> anyhow::Result<ReplaySummary> {
    let scratch = tempfile::tempdir().context("creating the replay's scratch store")?;
    let cache = config.plugins.cache_dir.clone();
    let plugins = load_plugins(config, Some(&cache)).map_err(load_errors)?;
    let store = Store::scratch(scratch.path()).context("opening the replay's scratch store")?;
    let mut parts = Some((plugins, store));
    let mut pipeline: Option<Pipeline> = None;
    // Lines read before the clock started, in order.
    let mut waiting: Vec<Incoming> = Vec::new();
    let mut watermark = i64::MIN;
    let mut summary = ReplaySummary::default();
    for item in read_trace_bytes(trace) {
        summary.lines += 1;
        let (_, topic, payload) = match item {
            Ok(x) => x,
            Err(e) => {
                summary.bad_lines += 1;
                tracing::warn!("{e}");
                continue;
            }
        };
        if let Ok(ts) = event_time_ms(&payload) {
            watermark = watermark.max(ts);
        }
        let line = Incoming { topic, payload, arrival_ms: watermark };
        if pipeline.is_none() {
            if watermark == i64::MIN {
                // The clock has not started.
                waiting.push(line);
                continue;
            }
            // The first `ts`: the clock starts. Devices that never publish go offline
            // `offline_after` after it (interfaces.md).
            let Some((plugins, store)) = parts.take() else { break };
            let p = pipeline.insert(Pipeline::with_clock(
                config,
                plugins,
                store,
                watermark,
                Clock::Replay,
            )?);
            for early in waiting.drain(..) {
                let early = Incoming { arrival_ms: watermark, ..early };
                summary.requests += replay_step(p, early, out)?;
            }
        }
        let Some(p) = pipeline.as_mut() else { break };
        summary.requests += replay_step(p, line, out)?;
    }
    if !waiting.is_empty() {
        tracing::warn!(
            lines = waiting.len(),
            "the trace has no `ts`: its clock never started, so none of its lines took effect"
        );
    }
    if let Some(p) = &pipeline {
        summary.counters = p.counters();
    }
    out.flush()?;
    Ok(summary)
}

/// Processes one line of a replay and prints its requests; returns how many.
fn replay_step(p: &mut Pipeline, line: Incoming, out: &mut dyn Write) -> anyhow::Result<u64> {
    let entries = p.process(vec![line])?;
    write_requests(&entries, out)?;
    Ok(entries.len() as u64)
}

/// Prints requests as replay lines.
pub fn write_requests(entries: &[OutboxEntry], out: &mut dyn Write) -> std::io::Result<()> {
    for e in entries {
        let line =
            ReplayLine { method: "POST", path: e.path(), idempotency_key: &e.key, body: e.body() };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// `tend check`: config, inventory and plugins, every problem at once. Returns the
/// problems as lines (empty: all good) plus a short report of what was found.
pub fn check(config_path: &Path) -> (Vec<String>, Vec<String>) {
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => return (e.to_string().lines().map(str::to_owned).collect(), vec![]),
    };
    let mut problems = Vec::new();
    let mut report = vec![format!(
        "site {} ({}), {} devices",
        config.inventory.site,
        config.inventory.timezone_name(),
        config.inventory.devices.len()
    )];
    if config.api.enabled && !config.api.listen.ip().is_loopback() {
        report.push(format!(
            "warning: {}: api.listen = {} is not a loopback address: anyone who can reach it \
             can read the site's status and archive (commands still need the local token)",
            config.path.display(),
            config.api.listen
        ));
    }
    if config.broker.enabled {
        let who = match &config.broker.auth {
            Some(auth) => format!("{} logins from {}", auth.users.len(), auth.file.display()),
            None => "no logins (loopback only)".to_owned(),
        };
        report.push(format!("embedded MQTT broker on {}: {who}", config.broker.listen));
    }
    for warning in config.secret_file_warnings() {
        report.push(format!("warning: {warning}"));
    }
    let scratch_cache = config.plugins.cache_dir.clone();
    match load_plugins(&config, Some(&scratch_cache)) {
        Ok(set) => {
            for (ty, p) in set.iter() {
                report.push(format!(
                    "plugin {ty} {} ({}), {} fault codes",
                    p.description().plugin_version,
                    p.path().display(),
                    p.description().faults.len()
                ));
            }
            for d in &config.inventory.devices {
                if set.get(&d.equipment_type).is_none() {
                    problems.push(format!(
                        "{}: device `{}`: no plugin serves type `{}` (plugins dir {})",
                        config.inventory.path.display(),
                        d.id,
                        d.equipment_type,
                        config.plugins.dir.display()
                    ));
                }
            }
        }
        Err(errors) => {
            for e in errors {
                problems.push(format!("{}: plugins: {e}", config.path.display()));
            }
        }
    }
    (problems, report)
}
