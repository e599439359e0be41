//! Errors at the plugin host's boundary.

use std::path::PathBuf;

/// A plugin that could not be loaded (the agent reports it and refuses to start
/// with a broken plugin set, so `tend check` shows it first).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read plugin {}: {source}", path.display())]
    Read {
        /// The plugin file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The plugin directory could not be listed.
    #[error("cannot list plugin directory {}: {source}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file's sha256 differs from the one the config pins.
    #[error("plugin {}: sha256 is {actual} but the config pins {expected}", path.display())]
    Checksum {
        /// The plugin file.
        path: PathBuf,
        /// Pinned digest.
        expected: String,
        /// Actual digest.
        actual: String,
    },
    /// Not a valid component, or compilation failed.
    #[error("cannot compile plugin {}: {reason}", path.display())]
    Compile {
        /// The plugin file.
        path: PathBuf,
        /// Compiler message.
        reason: String,
    },
    /// The component does not fit the `tend:plugin` world, or `describe` failed.
    #[error("plugin {} cannot be instantiated as a tend:plugin component: {reason}", path.display())]
    Instantiate {
        /// The plugin file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The component imports WASI capabilities plugins are not granted (files,
    /// sockets, ...): typically a Python plugin built without `--stub-wasi`.
    #[error(
        "plugin {} imports {}, which tend does not grant: plugins get no files, network or environment. \
         Build it without those imports (Python: `tend-py component`, or `componentize-py ... componentize --stub-wasi`; \
         Rust: do not use std::fs or std::net)",
        path.display(),
        imports.join(", ")
    )]
    Capabilities {
        /// The plugin file.
        path: PathBuf,
        /// The refused imports, by full interface name.
        imports: Vec<String>,
    },
    /// `describe` returned something the host cannot use.
    #[error("plugin {} describes itself wrongly: {}", path.display(), problems.join("; "))]
    Describe {
        /// The plugin file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// Two plugins claim the same equipment type.
    #[error("plugins {} and {} both serve equipment type `{equipment_type}`", first.display(), second.display())]
    Duplicate {
        /// The type.
        equipment_type: String,
        /// The plugin loaded first.
        first: PathBuf,
        /// The other one.
        second: PathBuf,
    },
    /// The wasm engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
}

/// A plugin call that failed. Every kind but `Quarantined` and `Suspended` (calls
/// refused without running) counts toward quarantine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The call ran past its deadline and was interrupted.
    #[error(
        "plugin `{plugin}` ran past its {deadline_ms} ms deadline on device {device}; instance restarted"
    )]
    Deadline {
        /// Equipment type of the plugin.
        plugin: String,
        /// Device being evaluated.
        device: String,
        /// The deadline.
        deadline_ms: u64,
    },
    /// The instance asked for more memory than allowed.
    #[error(
        "plugin `{plugin}` hit its memory limit of {limit_mib} MiB on device {device}; instance restarted"
    )]
    MemoryLimit {
        /// Equipment type of the plugin.
        plugin: String,
        /// Device being evaluated.
        device: String,
        /// The limit.
        limit_mib: usize,
    },
    /// The guest trapped (a panic, an `unreachable`, a bad memory access ...).
    #[error("plugin `{plugin}` trapped on device {device}: {reason}; instance restarted")]
    Trap {
        /// Equipment type of the plugin.
        plugin: String,
        /// Device being evaluated.
        device: String,
        /// Trap kind and the guest's last stderr lines.
        reason: String,
    },
    /// The guest returned something that breaks the contract.
    #[error("plugin `{plugin}` returned invalid output for device {device}: {reason}")]
    BadOutput {
        /// Equipment type of the plugin.
        plugin: String,
        /// Device being evaluated.
        device: String,
        /// What was wrong.
        reason: String,
    },
    /// A fresh instance could not be created.
    #[error("plugin `{plugin}` could not be restarted: {reason}")]
    Restart {
        /// Equipment type of the plugin.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The plugin failed too often on this device: the device's messages are not
    /// judged until `until_ms` (pipeline clock); the plugin keeps serving the others.
    #[error(
        "plugin `{plugin}` failed {failures} times on device {device}; its messages are \
         skipped until {until_ms} (ms)"
    )]
    Suspended {
        /// Equipment type of the plugin.
        plugin: String,
        /// Device that was not evaluated.
        device: String,
        /// Failures on this device that led to the suspension.
        failures: u32,
        /// When the device is called again (pipeline clock, ms).
        until_ms: i64,
    },
    /// The plugin failed too often and is no longer called.
    #[error(
        "plugin `{plugin}` is quarantined after {failures} failures; device {device} not evaluated"
    )]
    Quarantined {
        /// Equipment type of the plugin.
        plugin: String,
        /// Device that was not evaluated.
        device: String,
        /// Failures that led to the quarantine.
        failures: u32,
    },
}

impl CallError {
    /// Whether this failure counts toward quarantine.
    pub fn is_failure(&self) -> bool {
        !matches!(self, CallError::Quarantined { .. } | CallError::Suspended { .. })
    }
}
