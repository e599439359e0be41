//! The wasmtime engine shared by all plugins: epoch interruption driven by a ticker
//! thread, and an on-disk cache of compiled components so restarts skip compilation.
//!
//! A cache entry is bound to what it was compiled from: it starts with a header
//! holding the sha256 of the source component, of the engine's compatibility hash
//! and of the artifact that follows. All three are checked before the artifact is
//! loaded; an entry that does not match (another plugin's artifact copied over it, a
//! different engine, a truncated file) is compiled again and rewritten, with a
//! warning naming the file.

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
        let source: [u8; 32] = Sha256::digest(bytes).into();
        let engine = self.engine_digest();
        let cached =
            dir.join(format!("{}-{}.cwasm", hex::encode(source), &hex::encode(engine)[..16]));
        if cached.is_file() {
            match std::fs::read(&cached)
                .map_err(|e| e.to_string())
                .and_then(|file| artifact(&file, &source, &engine).map(<[u8]>::to_vec))
            {
                Ok(artifact) => {
                    // SAFETY: the artifact's sha256 is the one its header records, and
                    // the header binds it to the sha256 of these source bytes and this
                    // engine's compatibility hash: it is a serialized component of
                    // exactly this plugin, written by this agent for this wasmtime.
                    #[allow(unsafe_code)]
                    let loaded = unsafe { Component::deserialize(&self.engine, &artifact) };
                    match loaded {
                        Ok(c) => return Ok(c),
                        Err(e) => tracing::warn!(
                            cache = %cached.display(),
                            "compiled plugin cache unreadable, recompiling: {e:#}"
                        ),
                    }
                }
                Err(why) => tracing::warn!(
                    cache = %cached.display(),
                    "compiled plugin cache entry refused ({why}), recompiling"
                ),
            }
        }
        let component = compile()?;
        if let Err(e) = self.store_in_cache(dir, &cached, &component, &source, &engine) {
            tracing::warn!(cache = %cached.display(), "cannot cache compiled plugin: {e}");
        }
        Ok(component)
    }

    fn store_in_cache(
        &self,
        dir: &Path,
        file: &Path,
        c: &Component,
        source: &[u8; 32],
        engine: &[u8; 32],
    ) -> std::io::Result<()> {
        let artifact = c.serialize().map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut bytes = Vec::with_capacity(HEADER_LEN + artifact.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(source);
        bytes.extend_from_slice(engine);
        bytes.extend_from_slice(&Sha256::digest(&artifact));
        bytes.extend_from_slice(&artifact);
        std::fs::create_dir_all(dir)?;
        // Write then rename: a crash never leaves a half-written artifact behind.
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, file)
    }

    /// sha256 of the engine's compatibility hash (what compiled code depends on).
    fn engine_digest(&self) -> [u8; 32] {
        let mut h = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        Sha256::digest(h.finish().to_le_bytes()).into()
    }
}

/// The first bytes of a cache entry.
const MAGIC: &[u8; 8] = b"tendcw1\n";
/// Magic, then the sha256 of the source, of the engine and of the artifact.
const HEADER_LEN: usize = MAGIC.len() + 3 * 32;

/// The artifact of a cache entry, if its header binds it to `source` and `engine`
/// and its digest matches.
fn artifact<'a>(file: &'a [u8], source: &[u8; 32], engine: &[u8; 32]) -> Result<&'a [u8], String> {
    if file.len() < HEADER_LEN || &file[..MAGIC.len()] != MAGIC {
        return Err("not a tend cache entry".into());
    }
    let (header, artifact) = file.split_at(HEADER_LEN);
    let fields = &header[MAGIC.len()..];
    if &fields[..32] != source {
        return Err("compiled from another component".into());
    }
    if &fields[32..64] != engine {
        return Err("compiled by another engine configuration".into());
    }
    if fields[64..96] != Sha256::digest(artifact)[..] {
        return Err("the artifact does not match its digest".into());
    }
    Ok(artifact)
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
