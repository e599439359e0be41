//! One loaded plugin: its instance, the calls into it, output validation, quarantine.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use tend_plugin_sdk as sdk;
use wasmtime::component::{Component, ComponentExportIndex, Func, Linker, TypedFunc};
use wasmtime::{Engine, Store, Trap};

use super::Evaluate;
use super::bindings::{
    BatchEvaluation, Description, Device, Message, PackedBatchEvaluation, Plugin, PluginPre,
};
use super::contract::{Declared, validate_description};
use super::engine::deadline_ticks;
use super::error::{CallError, LoadError};
use super::native;
use super::sandbox::{HostState, Limits};

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

/// The plugin state a plugin holds, per device and in total, against
/// [`Limits::state_budget_bytes`].
#[derive(Debug, Default)]
struct StateHeld {
    per_device: HashMap<String, usize>,
    total: usize,
}

impl StateHeld {
    /// `device` holds `bytes` now (called on every successful call: the device's
    /// id is copied only the first time).
    fn hold(&mut self, device: &str, bytes: usize) {
        let old = match self.per_device.get_mut(device) {
            Some(held) => std::mem::replace(held, bytes),
            None => {
                self.per_device.insert(device.to_owned(), bytes);
                0
            }
        };
        self.total = self.total - old + bytes;
    }

    /// The total if `device` held `bytes` instead of what it holds now.
    fn total_with(&self, device: &str, bytes: usize) -> usize {
        self.total - self.per_device.get(device).copied().unwrap_or(0) + bytes
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
    /// Recent failures (pipeline clock, device), for the quarantine window.
    recent_failures: VecDeque<(i64, String)>,
    /// Devices whose own messages failed `max_failures` times within the window:
    /// device -> until when (pipeline clock) its calls are refused. One device's bad
    /// input must not switch detection off for every device of the type.
    suspended: HashMap<String, i64>,
    quarantined: bool,
    stats: PluginStats,
    state_held: StateHeld,
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
        let refused = super::sandbox::refused_imports(engine, component);
        if !refused.is_empty() {
            return Err(LoadError::Capabilities { path: path.to_owned(), imports: refused });
        }
        let mut linker = Linker::<HostState>::new(engine);
        super::sandbox::link(&mut linker).map_err(|e| inst_err(format!("{e:#}")))?;
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
            suspended: HashMap::new(),
            quarantined: false,
            stats: PluginStats { instantiations: 1, ..PluginStats::default() },
            state_held: StateHeld::default(),
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
        if let Some(&until_ms) = self.suspended.get(&device.id) {
            if now_ms < until_ms {
                return Err(CallError::Suspended {
                    plugin: self.description.equipment_type.clone(),
                    device: device.id.clone(),
                    failures: self.limits.max_failures,
                    until_ms,
                });
            }
            self.suspended.remove(&device.id);
        }
        let current = state.map_or(0, <[u8]>::len);
        let result = self.call(device, messages, state).and_then(|mut b| {
            self.declared
                .check(&mut b, messages.len())
                .and_then(|()| self.within_budget(&device.id, current, b.state.len()))
                .map(|()| b)
                .map_err(|reason| CallError::BadOutput {
                    plugin: self.description.equipment_type.clone(),
                    device: device.id.clone(),
                    reason,
                })
        });
        self.stats.calls += 1;
        match result {
            Ok(b) => {
                self.stats.messages += messages.len() as u64;
                self.state_held.hold(&device.id, b.state.len());
                Ok(b)
            }
            Err(e) => {
                self.fail(now_ms, &device.id);
                Err(e)
            }
        }
    }

    /// Whether the plugin may hold `bytes` of state for `device` (which holds
    /// `current` now): a state that does not grow is always accepted; one that grows
    /// must keep the plugin's total within [`Limits::state_budget_bytes`].
    fn within_budget(&self, device: &str, current: usize, bytes: usize) -> Result<(), String> {
        let total = self.state_held.total_with(device, bytes);
        let budget = self.limits.state_budget_bytes;
        if bytes <= current || total <= budget {
            return Ok(());
        }
        Err(format!(
            "its state would total {total} bytes over {} devices, beyond its budget of \
             {budget} (plugins.state_budget_mib); this device's state would be {bytes} bytes",
            self.state_held.per_device.len().max(1)
        ))
    }

    /// Counts a device's stored state (read from the store at start) toward the
    /// plugin's state budget, before the plugin returns a new one for it.
    pub fn hold_state(&mut self, device: &str, bytes: usize) {
        self.state_held.hold(device, bytes);
    }

    /// Plugin state held across devices, in bytes.
    pub fn state_bytes(&self) -> usize {
        self.state_held.total
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

    /// Whether the device's calls are refused at `now_ms` (see [`CallError::Suspended`]).
    pub fn is_suspended(&self, device: &str, now_ms: i64) -> bool {
        self.suspended.get(device).is_some_and(|until| now_ms < *until)
    }

    /// Counts a failure on `device`: `max_failures` of one device within the window
    /// suspend that device; failures of `max_failures` different devices within the
    /// window quarantine the plugin (its fault, not one device's input).
    fn fail(&mut self, now_ms: i64, device: &str) {
        self.stats.failures += 1;
        self.live = None;
        self.recent_failures.push_back((now_ms, device.to_owned()));
        let cutoff = now_ms - self.limits.failure_window_ms;
        while self.recent_failures.front().is_some_and(|(t, _)| *t <= cutoff) {
            self.recent_failures.pop_front();
        }
        self.suspended.retain(|_, until| now_ms < *until);
        let max = self.limits.max_failures as usize;
        let own = self.recent_failures.iter().filter(|(_, d)| d == device).count();
        if own >= max && !self.suspended.contains_key(device) {
            let until_ms = now_ms.saturating_add(self.limits.failure_window_ms.max(1));
            self.suspended.insert(device.to_owned(), until_ms);
            // Its failures are accounted for by the suspension.
            self.recent_failures.retain(|(_, d)| d != device);
            self.recent_failures.push_back((now_ms, device.to_owned()));
            tracing::error!(
                plugin = %self.description.equipment_type,
                device,
                failures = own,
                "plugin failed repeatedly on one device: the device raises plugin_failure \
                 and its messages are skipped for the quarantine window; the plugin keeps \
                 serving the other devices"
            );
        }
        let devices: HashSet<&str> = self.recent_failures.iter().map(|(_, d)| d.as_str()).collect();
        if devices.len() >= max {
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
