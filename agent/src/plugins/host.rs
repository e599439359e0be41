//! One loaded plugin: its instance, the calls into it, output validation, quarantine.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

use tend_plugin_sdk as sdk;
use wasmtime::component::{Component, ComponentExportIndex, Func, Linker, TypedFunc};
use wasmtime::{Engine, Store, Trap};

use super::bindings::{
    BatchEvaluation, Description, Device, Message, PackedBatchEvaluation, Plugin, PluginPre,
};
use super::engine::deadline_ticks;
use super::error::{CallError, LoadError};
use super::native;
use super::sandbox::{HostState, Limits};

/// Longest condition summary kept; longer ones are cut (a plugin cannot flood tickets).
pub const MAX_SUMMARY: usize = 512;
/// Most evidence readings kept per condition.
pub const MAX_EVIDENCE: usize = 32;
/// Largest per-device state a plugin may return.
pub const MAX_STATE: usize = 1 << 20;

/// What the pipeline needs from a plugin: the wasm host implements it, and so can
/// the same rule crates compiled natively (tests, benchmarks), so both run through
/// the same code.
pub trait Evaluate {
    /// The equipment type served.
    fn equipment_type(&self) -> &str;

    /// Evaluates one device's messages in order (see [`WasmPlugin::evaluate_batch`]).
    fn evaluate_batch(
        &mut self,
        device: &Device,
        messages: &[Message],
        state: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<BatchEvaluation, CallError>;
}

impl Evaluate for WasmPlugin {
    fn equipment_type(&self) -> &str {
        WasmPlugin::equipment_type(self)
    }

    fn evaluate_batch(
        &mut self,
        device: &Device,
        messages: &[Message],
        state: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<BatchEvaluation, CallError> {
        WasmPlugin::evaluate_batch(self, device, messages, state, now_ms)
    }
}

/// Counters for status and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginStats {
    /// Calls made.
    pub calls: u64,
    /// Messages evaluated.
    pub messages: u64,
    /// Calls that failed (trap, deadline, memory, bad output).
    pub failures: u64,
    /// Instances built (the first one included).
    pub instantiations: u64,
}

/// The export name of the `packed` interface (`wit/plugin.wit`, added in 0.1.x).
const PACKED_INTERFACE: &str = "tend:plugin/packed@0.1.0";

struct Live {
    store: Store<HostState>,
    bindings: Plugin,
    /// `packed.evaluate-batch`, when the plugin exports it (Rust SDK plugins do).
    packed: Option<Func>,
}

/// A loaded plugin. Not `Sync`: the pipeline owns it and calls it from one thread.
pub struct WasmPlugin {
    path: PathBuf,
    sha256: String,
    description: Description,
    declared: Declared,
    engine: Engine,
    pre: PluginPre<HostState>,
    /// Where `packed.evaluate-batch` is in the component, if it exports it.
    packed: Option<ComponentExportIndex>,
    limits: Limits,
    live: Option<Live>,
    /// Times (pipeline clock) of recent failures, for the quarantine window.
    recent_failures: VecDeque<i64>,
    quarantined: bool,
    stats: PluginStats,
}

impl WasmPlugin {
    /// Instantiates a compiled component, calls `describe` and validates it.
    pub fn new(
        engine: &Engine,
        path: &Path,
        sha256: String,
        component: &Component,
        limits: Limits,
    ) -> Result<Self, LoadError> {
        let inst_err = |reason: String| LoadError::Instantiate { path: path.to_owned(), reason };
        let mut linker = Linker::<HostState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| inst_err(e.to_string()))?;
        let pre = linker.instantiate_pre(component).map_err(|e| inst_err(format!("{e:#}")))?;
        let pre = PluginPre::new(pre).map_err(|e| inst_err(format!("{e:#}")))?;
        let packed = component
            .get_export_index(None, PACKED_INTERFACE)
            .and_then(|i| component.get_export_index(Some(&i), "evaluate-batch"));
        let mut live = instantiate(engine, &pre, packed.as_ref(), &limits).map_err(inst_err)?;
        live.store.set_epoch_deadline(deadline_ticks(limits.call_deadline));
        let description = live
            .bindings
            .call_describe(&mut live.store)
            .map_err(|e| inst_err(format!("`describe` failed: {e:#}")))?;
        let problems = validate_description(&description);
        if !problems.is_empty() {
            return Err(LoadError::Describe { path: path.to_owned(), problems });
        }
        Ok(Self {
            path: path.to_owned(),
            sha256,
            declared: Declared::new(&description),
            description,
            engine: engine.clone(),
            pre,
            packed,
            limits,
            live: Some(live),
            recent_failures: VecDeque::new(),
            quarantined: false,
            stats: PluginStats { instantiations: 1, ..PluginStats::default() },
        })
    }

    /// What the plugin declared.
    pub fn description(&self) -> &Description {
        &self.description
    }

    /// The equipment type it serves.
    pub fn equipment_type(&self) -> &str {
        &self.description.equipment_type
    }

    /// Where it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// sha256 of the component file (hex).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Call counters.
    pub fn stats(&self) -> PluginStats {
        self.stats
    }

    /// True once repeated failures stopped the plugin from being called.
    pub fn is_quarantined(&self) -> bool {
        self.quarantined
    }

    /// Evaluates one device's messages in order. `now_ms` is the pipeline's clock
    /// (wall time live, the watermark in replay) for the quarantine window.
    pub fn evaluate_batch(
        &mut self,
        device: &Device,
        messages: &[Message],
        state: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<BatchEvaluation, CallError> {
        if self.quarantined {
            return Err(CallError::Quarantined {
                plugin: self.description.equipment_type.clone(),
                device: device.id.clone(),
                failures: self.limits.max_failures,
            });
        }
        let result = self.call(device, messages, state).and_then(|mut b| {
            self.declared.check(&mut b, messages.len()).map(|()| b).map_err(|reason| {
                CallError::BadOutput {
                    plugin: self.description.equipment_type.clone(),
                    device: device.id.clone(),
                    reason,
                }
            })
        });
        self.stats.calls += 1;
        match result {
            Ok(b) => {
                self.stats.messages += messages.len() as u64;
                Ok(b)
            }
            Err(e) => {
                self.fail(now_ms);
                Err(e)
            }
        }
    }

    fn call(
        &mut self,
        device: &Device,
        messages: &[Message],
        state: Option<&[u8]>,
    ) -> Result<BatchEvaluation, CallError> {
        let mut live = match self.live.take() {
            Some(l) => l,
            None => {
                self.stats.instantiations += 1;
                instantiate(&self.engine, &self.pre, self.packed.as_ref(), &self.limits).map_err(
                    |reason| CallError::Restart {
                        plugin: self.description.equipment_type.clone(),
                        reason,
                    },
                )?
            }
        };
        live.store.set_epoch_deadline(deadline_ticks(self.limits.call_deadline));
        // Ok(Err(..)): the plugin answered, but with packed outcomes that do not decode.
        let called = match live.packed {
            Some(func) => call_packed(func, &mut live.store, device, messages, state),
            None => {
                live.bindings.call_evaluate_batch(&mut live.store, device, messages, state).map(Ok)
            }
        };
        match called {
            Ok(Ok(b)) => {
                self.live = Some(live);
                Ok(b)
            }
            // The plugin's fault, not the instance's state: keep the instance.
            Ok(Err(reason)) => {
                self.live = Some(live);
                Err(CallError::BadOutput {
                    plugin: self.description.equipment_type.clone(),
                    device: device.id.clone(),
                    reason,
                })
            }
            // The instance is dropped: after a trap its memory may be inconsistent.
            Err(e) => Err(self.classify(e, &live.store, device)),
        }
    }

    fn classify(&self, e: wasmtime::Error, store: &Store<HostState>, device: &Device) -> CallError {
        let plugin = self.description.equipment_type.clone();
        let device = device.id.clone();
        let host = store.data();
        if host.hit_memory_limit {
            return CallError::MemoryLimit {
                plugin,
                device,
                limit_mib: self.limits.memory_bytes >> 20,
            };
        }
        if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            return CallError::Deadline {
                plugin,
                device,
                deadline_ms: self.limits.call_deadline.as_millis() as u64,
            };
        }
        let stderr = host.stderr_tail();
        let mut reason = format!("{e}");
        if !stderr.is_empty() {
            reason.push_str(": ");
            reason.push_str(&stderr);
        }
        CallError::Trap { plugin, device, reason }
    }

    fn fail(&mut self, now_ms: i64) {
        self.stats.failures += 1;
        self.live = None;
        self.recent_failures.push_back(now_ms);
        let cutoff = now_ms - self.limits.failure_window_ms;
        while self.recent_failures.front().is_some_and(|t| *t <= cutoff) {
            self.recent_failures.pop_front();
        }
        if self.recent_failures.len() >= self.limits.max_failures as usize {
            self.quarantined = true;
            tracing::error!(
                plugin = %self.description.equipment_type,
                path = %self.path.display(),
                failures = self.recent_failures.len(),
                "plugin quarantined after repeated failures; its devices raise plugin_failure \
                 until the plugin is replaced or the agent restarts"
            );
        }
    }
}

/// What a plugin declared, to hold its output to: every code and meter it reports
/// must be declared, severities in 1..=4, state and text bounded. Shared by the wasm
/// host and the native adapter so both apply the same contract.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    codes: HashSet<String>,
    meters: HashSet<String>,
}

impl Declared {
    /// The codes and meters of a description.
    pub fn new(d: &Description) -> Self {
        Self {
            codes: d.faults.iter().map(|f| f.code.clone()).collect(),
            meters: d.meters.iter().map(|m| m.name.clone()).collect(),
        }
    }

    /// Checks a batch result for `expected` messages against the contract and the
    /// declaration; cuts what is merely too long (summaries, evidence lists).
    pub fn check(&self, b: &mut BatchEvaluation, expected: usize) -> Result<(), String> {
        if b.outcomes.len() != expected {
            return Err(format!("{} outcomes for {expected} messages", b.outcomes.len()));
        }
        if b.state.len() > MAX_STATE {
            return Err(format!("state of {} bytes exceeds {MAX_STATE}", b.state.len()));
        }
        for outcome in b.outcomes.iter_mut().flatten() {
            for c in &mut outcome.conditions {
                if !self.codes.contains(&c.code) {
                    return Err(format!("undeclared fault code `{}`", truncate(&c.code, 64)));
                }
                if c.active && !(1..=4).contains(&c.severity) {
                    return Err(format!("severity {} for `{}` is not 1..=4", c.severity, c.code));
                }
                if c.summary.len() > MAX_SUMMARY {
                    c.summary = truncate(&c.summary, MAX_SUMMARY).to_owned();
                }
                c.evidence.truncate(MAX_EVIDENCE);
            }
            for m in &outcome.meters {
                if !self.meters.contains(&m.meter) {
                    return Err(format!("undeclared meter `{}`", truncate(&m.meter, 64)));
                }
                if !m.value.is_finite() {
                    return Err(format!("meter `{}` is not a finite number", m.meter));
                }
            }
        }
        Ok(())
    }
}

fn instantiate(
    engine: &Engine,
    pre: &PluginPre<HostState>,
    packed: Option<&ComponentExportIndex>,
    limits: &Limits,
) -> Result<Live, String> {
    let mut store = Store::new(engine, HostState::new(limits));
    store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
    store.set_epoch_deadline(deadline_ticks(limits.call_deadline));
    store.epoch_deadline_trap();
    let instance = pre.instance_pre().instantiate(&mut store).map_err(|e| format!("{e:#}"))?;
    let bindings = Plugin::new(&mut store, &instance).map_err(|e| format!("{e:#}"))?;
    let packed = packed.and_then(|i| instance.get_func(&mut store, i));
    if let Some(func) = packed {
        // A plugin whose `packed` interface does not match the contract is refused at
        // load, not at its first message.
        packed_typed(func, &store)
            .map_err(|e| format!("`{PACKED_INTERFACE}#evaluate-batch`: {e:#}"))?;
    }
    Ok(Live { store, bindings, packed })
}

/// `packed.evaluate-batch`'s signature.
type PackedFn<'a> =
    TypedFunc<(&'a Device, &'a [Message], Option<&'a [u8]>), (PackedBatchEvaluation,)>;

fn packed_typed<'a>(func: Func, store: &Store<HostState>) -> wasmtime::Result<PackedFn<'a>> {
    func.typed(store)
}

/// Calls `packed.evaluate-batch` and unpacks its outcomes into the contract's types
/// (`Err(reason)` inside: outcomes that do not decode).
fn call_packed(
    func: Func,
    store: &mut Store<HostState>,
    device: &Device,
    messages: &[Message],
    state: Option<&[u8]>,
) -> wasmtime::Result<Result<BatchEvaluation, String>> {
    let (packed,) = packed_typed(func, store)?.call(&mut *store, (device, messages, state))?;
    Ok(sdk::packed::decode(&packed.outcomes).map(|outcomes| BatchEvaluation {
        outcomes: outcomes
            .into_iter()
            .map(|r| r.map(native::outcome).map_err(native::error))
            .collect(),
        state: packed.state,
    }))
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Everything wrong with a plugin's self-description.
pub fn validate_description(d: &Description) -> Vec<String> {
    let mut problems = Vec::new();
    let ident = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    if !ident(&d.equipment_type) {
        problems
            .push(format!("equipment type `{}` must be lowercase [a-z0-9_-]", d.equipment_type));
    }
    let mut codes = HashSet::new();
    for f in &d.faults {
        if !ident(&f.code) {
            problems.push(format!("fault code `{}` must be lowercase [a-z0-9_-]", f.code));
        }
        if !codes.insert(f.code.as_str()) {
            problems.push(format!("fault code `{}` declared twice", f.code));
        }
        if !(1..=4).contains(&f.default_severity) {
            problems.push(format!(
                "fault `{}`: default severity {} is not 1..=4",
                f.code, f.default_severity
            ));
        }
        if crate::plugins::host::RESERVED_CODES.contains(&f.code.as_str()) {
            problems.push(format!("fault code `{}` is reserved for the host", f.code));
        }
    }
    let meters: HashSet<&str> = d.meters.iter().map(|m| m.name.as_str()).collect();
    if meters.len() != d.meters.len() {
        problems.push("a meter is declared twice".into());
    }
    let mut plans = HashSet::new();
    for p in &d.inspections {
        if !plans.insert(p.id.as_str()) {
            problems.push(format!("inspection plan `{}` declared twice", p.id));
        }
        if p.every.is_none() && p.meter.is_none() {
            problems.push(format!("inspection plan `{}` has neither a period nor a meter", p.id));
        }
        if let Some(t) = &p.meter
            && !meters.contains(t.meter.as_str())
        {
            problems
                .push(format!("inspection plan `{}` uses undeclared meter `{}`", p.id, t.meter));
        }
    }
    if d.offline_timeout_s == 0 {
        problems.push("offline timeout must be more than 0 s".into());
    }
    problems
}

/// Codes the host raises itself; a plugin may not declare them.
pub const RESERVED_CODES: &[&str] = &["device_offline", "plugin_failure"];
