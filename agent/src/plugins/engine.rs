//! The wasmtime engine shared by all plugins: epoch interruption driven by a ticker
//! thread, and an on-disk cache of compiled components so restarts skip compilation.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use super::error::LoadError;

/// How often the ticker advances the engine's epoch; a call's deadline is a whole
/// number of ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The engine plus its epoch ticker. The ticker holds only a weak reference and
/// ends when the last clone of the engine (plugins hold clones) is dropped.
pub struct PluginEngine {
    engine: Engine,
    cache_dir: Option<PathBuf>,
}

impl PluginEngine {
    /// Builds the engine. `cache_dir`: where compiled components are kept across
    /// restarts (`None`: compile every time).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, LoadError> {
        let engine = Engine::new(&config()).map_err(|e| LoadError::Engine(e.to_string()))?;
        let ticker_engine = engine.weak();
        std::thread::Builder::new()
            .name("tend-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| LoadError::Engine(format!("cannot start the epoch thread: {e}")))?;
        Ok(Self { engine, cache_dir })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a component, or loads it from the cache when the same bytes were
    /// compiled by a compatible engine before.
    pub fn compile(&self, path: &Path, bytes: &[u8]) -> Result<Component, LoadError> {
        let compile = || {
            Component::new(&self.engine, bytes)
                .map_err(|e| LoadError::Compile { path: path.to_owned(), reason: format!("{e:#}") })
        };
        let Some(dir) = &self.cache_dir else { return compile() };
        let cached = dir.join(format!("{}.cwasm", self.cache_key(bytes)));
        if cached.is_file() {
            // SAFETY: the file is one this agent wrote into its own cache directory,
            // named after the sha256 of the source component and this engine's
            // compatibility hash, so it is a serialized component of exactly these
            // bytes made by a compatible wasmtime.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize_file(&self.engine, &cached) };
            match loaded {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!(
                    cache = %cached.display(),
                    "compiled plugin cache unreadable, recompiling: {e:#}"
                ),
            }
        }
        let component = compile()?;
        if let Err(e) = self.store_in_cache(dir, &cached, &component) {
            tracing::warn!(cache = %cached.display(), "cannot cache compiled plugin: {e}");
        }
        Ok(component)
    }

    fn store_in_cache(&self, dir: &Path, file: &Path, c: &Component) -> std::io::Result<()> {
        let bytes = c.serialize().map_err(|e| std::io::Error::other(e.to_string()))?;
        std::fs::create_dir_all(dir)?;
        // Write then rename: a crash never leaves a half-written artifact behind.
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, file)
    }

    fn cache_key(&self, bytes: &[u8]) -> String {
        let mut h = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        format!("{}-{:016x}", hex::encode(Sha256::digest(bytes)), h.finish())
    }
}

/// The engine configuration of every plugin: components, epoch interruption (the
/// call deadline), optimised code. Public so that a profiling run can start from the
/// same settings (adding a perf map, say).
pub fn config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // A check per loop and call: far cheaper than fuel, and enough for a deadline.
    config.epoch_interruption(true);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    // A trapping guest's backtrace costs time and says little to an operator.
    config.wasm_backtrace_max_frames(None);
    config
}

/// Epoch ticks for a deadline (at least one).
pub fn deadline_ticks(deadline: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    (deadline.as_micros().div_ceil(tick)).max(1) as u64
}
