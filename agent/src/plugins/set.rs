//! Loading a set of plugins (a directory and/or a pinned list), keyed by the
//! equipment type each one declares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::engine::PluginEngine;
use super::error::LoadError;
use super::host::WasmPlugin;
use super::sandbox::Limits;

/// Where a plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSource {
    /// The component file.
    pub path: PathBuf,
    /// Expected sha256 (hex), when the config pins one.
    pub sha256: Option<String>,
}

impl PluginSource {
    /// Every `*.wasm` file in `dir`, sorted by name (no pins).
    pub fn from_dir(dir: &Path) -> Result<Vec<PluginSource>, LoadError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|source| LoadError::Dir { dir: dir.to_owned(), source })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
            .collect();
        paths.sort();
        Ok(paths.into_iter().map(|path| PluginSource { path, sha256: None }).collect())
    }
}

/// The loaded plugins, by equipment type.
pub struct PluginSet {
    plugins: BTreeMap<String, WasmPlugin>,
    engine: PluginEngine,
}

impl PluginSet {
    /// Loads every source; reports every plugin that failed, not just the first.
    pub fn load(
        engine: PluginEngine,
        sources: &[PluginSource],
        limits: Limits,
    ) -> Result<Self, Vec<LoadError>> {
        let mut plugins: BTreeMap<String, WasmPlugin> = BTreeMap::new();
        let mut errors = Vec::new();
        for src in sources {
            match load_one(&engine, src, limits) {
                Ok(p) => {
                    let ty = p.equipment_type().to_owned();
                    if let Some(first) = plugins.get(&ty) {
                        errors.push(LoadError::Duplicate {
                            equipment_type: ty,
                            first: first.path().to_owned(),
                            second: src.path.clone(),
                        });
                    } else {
                        tracing::info!(
                            plugin = %ty,
                            version = %p.description().plugin_version,
                            path = %src.path.display(),
                            "plugin loaded"
                        );
                        plugins.insert(ty, p);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() { Ok(Self { plugins, engine }) } else { Err(errors) }
    }

    /// The plugin serving `equipment_type`.
    pub fn get_mut(&mut self, equipment_type: &str) -> Option<&mut WasmPlugin> {
        self.plugins.get_mut(equipment_type)
    }

    /// The plugin serving `equipment_type`.
    pub fn get(&self, equipment_type: &str) -> Option<&WasmPlugin> {
        self.plugins.get(equipment_type)
    }

    /// All plugins, by equipment type.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &WasmPlugin)> {
        self.plugins.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The engine they run on.
    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }
}

/// Reads, verifies, compiles (or loads from cache) and instantiates one plugin.
pub fn load_one(
    engine: &PluginEngine,
    src: &PluginSource,
    limits: Limits,
) -> Result<WasmPlugin, LoadError> {
    let bytes = std::fs::read(&src.path)
        .map_err(|source| LoadError::Read { path: src.path.clone(), source })?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if let Some(expected) = &src.sha256
        && !expected.eq_ignore_ascii_case(&actual)
    {
        return Err(LoadError::Checksum {
            path: src.path.clone(),
            expected: expected.clone(),
            actual,
        });
    }
    let component = engine.compile(&src.path, &bytes)?;
    WasmPlugin::new(engine.engine(), &src.path, actual, &component, limits)
}
