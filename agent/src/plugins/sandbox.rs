//! What a plugin instance may use: memory and time limits, and a WASI context that
//! grants nothing (no files, network, environment; clocks frozen at zero; no timers:
//! a plugin cannot wait, so it cannot block the pipeline thread in a host call the
//! epoch deadline does not interrupt).

use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::{Component, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    Deterministic, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView,
};

/// How much a plugin instance may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory per instance, in bytes: all its linear memories and tables together.
    pub memory_bytes: usize,
    /// Wall time one call may take before it is interrupted.
    pub call_deadline: Duration,
    /// Failures within `failure_window` that quarantine the plugin.
    pub max_failures: u32,
    /// The window for `max_failures`, in the pipeline's clock (event time in replay).
    pub failure_window_ms: i64,
    /// Plugin state the plugin may hold across all its devices, in bytes (each
    /// device's state is also capped at [`MAX_STATE`](super::contract::MAX_STATE)).
    pub state_budget_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            // Rules are a few comparisons per reading: a batch of hundreds of messages
            // takes well under a millisecond. 250 ms tolerates a loaded machine and
            // still stops a runaway plugin before it stalls ingest.
            call_deadline: Duration::from_millis(250),
            max_failures: 3,
            failure_window_ms: 10 * 60 * 1000,
            // Rules keep a few hundred bytes per device: 64 MiB is 10,000 devices at
            // 6 KiB each, and stops a plugin whose state only grows.
            state_budget_bytes: 64 << 20,
        }
    }
}

/// The `wasi:clocks/monotonic-clock` version the linker provides (semver-compatible
/// imports of earlier 0.2 versions resolve to it).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// The WASI interface families a plugin may import: streams and errors (`wasi:io`),
/// the command-line world's empty environment, exit and standard streams
/// (`wasi:cli`; Rust's std imports them), frozen clocks and deterministic random.
/// Anything else (`wasi:filesystem`, `wasi:sockets`, `wasi:http`, ...) asks for a
/// capability tend never grants.
const GRANTED_WASI: [&str; 4] = ["wasi:io/", "wasi:cli/", "wasi:clocks/", "wasi:random/"];

/// The imports of `component` that ask for a capability plugins do not get: every
/// `wasi:` interface outside [`GRANTED_WASI`], by full name. Linking would satisfy
/// some of them with an empty context (no preopened directory, sockets refused), but
/// a plugin that imports them was built to use them and would fail at its first
/// message instead of at load; refusing it at load says what and how to fix it.
pub fn refused_imports(engine: &wasmtime::Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name)
        .filter(|name| {
            name.starts_with("wasi:") && !GRANTED_WASI.iter().any(|p| name.starts_with(p))
        })
        .map(str::to_owned)
        .collect()
}

/// Links WASI for a plugin: the WASI 0.2 interfaces a component may import, backed by
/// the empty context of [`HostState`], with the monotonic clock's timers
/// (`subscribe-duration`, `subscribe-instant`) replaced by a trap. A timer is the
/// only pollable that can stay pending (streams are in-memory and always ready), so
/// no `poll` or `block` can wait either.
pub fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |_, (_,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> { Err(no_waiting()) },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |_, (_,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> { Err(no_waiting()) },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn no_waiting() -> wasmtime::Error {
    wasmtime::Error::msg("plugins may not wait: a WASI timer was requested (sleep, poll)")
}

/// How much panic text from a plugin's stderr is kept for the error report.
const STDERR_CAPACITY: usize = 16 * 1024;

/// The host side of one plugin instance's `Store`.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory_limit: usize,
    /// Bytes the instance's memories and tables hold so far: the limit is per
    /// instance, not per memory (a component may have several).
    in_use: usize,
    /// Set when the guest asked for more memory than allowed, so a trap that
    /// follows (the guest aborting on allocation failure) is reported as the
    /// memory limit rather than as a plain trap.
    pub(crate) hit_memory_limit: bool,
    /// The guest's stderr (panic messages end up here).
    pub(crate) stderr: MemoryOutputPipe,
}

impl HostState {
    /// A state granting nothing but frozen clocks and a small stderr buffer.
    pub fn new(limits: &Limits) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            // Same answers every run, so replay stays deterministic.
            .secure_random(Deterministic::new(vec![0x5a; 64]))
            .insecure_random(Deterministic::new(vec![0xa5; 64]))
            .insecure_random_seed(0)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            memory_limit: limits.memory_bytes,
            in_use: 0,
            hit_memory_limit: false,
            stderr,
        }
    }

    /// The last lines the guest wrote to stderr (its panic message, usually).
    pub fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = &lines[lines.len().saturating_sub(3)..];
        tail.join(" | ")
    }
}

/// What a table element costs the host (a function reference), for the instance's
/// memory total.
const TABLE_ELEMENT_BYTES: usize = 16;

impl HostState {
    /// Takes `more` bytes for a memory or table if the instance's total allows.
    fn grow(&mut self, more: usize) -> bool {
        let total = self.in_use.saturating_add(more);
        if total > self.memory_limit {
            self.hit_memory_limit = true;
            return false;
        }
        self.in_use = total;
        true
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(desired.saturating_sub(current)))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let more = desired.saturating_sub(current).saturating_mul(TABLE_ELEMENT_BYTES);
        Ok(desired <= 100_000 && self.grow(more))
    }
}

/// Plugins run in event time: the host's clocks are not theirs to read.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15, finding 8: the limit was checked per linear memory, so an instance
    /// with several memories (or big tables) could take the limit once per memory.
    #[test]
    fn several_memories_and_tables_share_one_instance_limit() {
        let limits = Limits { memory_bytes: 16 << 20, ..Limits::default() };
        let mut h = HostState::new(&limits);
        assert!(h.memory_growing(0, 10 << 20, None).unwrap(), "first memory within the limit");
        assert!(!h.memory_growing(0, 10 << 20, None).unwrap(), "a second memory takes the rest");
        assert!(h.hit_memory_limit);
        assert!(h.memory_growing(0, 4 << 20, None).unwrap(), "what is left");
        assert!(
            h.memory_growing(10 << 20, 11 << 20, None).unwrap(),
            "growth counts the difference"
        );
        let mut h = HostState::new(&limits);
        assert!(h.memory_growing(0, 8 << 20, None).unwrap());
        assert!(!h.table_growing(0, 1 << 20, None).unwrap(), "tables count toward the same total");
        assert!(h.table_growing(0, 1_000, None).unwrap());
    }
}
