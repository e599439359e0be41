//! Configuration: `agent.toml` and the site inventory, parsed, overridden from the
//! environment, and validated into [`Config`].
//!
//! Two layers. The raw layer (`raw.rs`, and the raw half of `inventory.rs`) is the
//! files as written: serde structs that refuse unknown keys, every default a named
//! function. [`Config::from_str`] parses, applies the environment overrides
//! ([`ENV_OVERRIDES`]), then validates into plain typed data; it keeps going after a
//! problem, so one run reports every problem, each naming its file and key
//! ([`ConfigErrors`], one `FILE: KEY: MESSAGE` per line).
//!
//! Validation is pure: the environment, the file reader and today's date come in
//! through [`Sources`]; [`Config::load`] is the thin layer that uses the real ones.
//!
//! Paths written in `agent.toml` are relative to its directory; paths given through
//! environment variables are used as given (relative to the current directory).
//!
//! The commented example files are `configs/agent.toml` and `configs/site.toml`
//! ([`EXAMPLE_CONFIG`], [`EXAMPLE_INVENTORY`]); tests parse both.

mod doc;
mod error;
mod inventory;
mod model;
mod raw;
mod topic;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::path::Path;

use jiff::civil::Date;

pub use error::{ConfigErrors, Problem};
pub use inventory::{Device, Inventory, is_valid_id};
pub use model::{
    Alarms, Api, Broker, BrokerAuth, Calendar, Central, ClientAuth, Config, DEFAULT_MAX_CLOCK_SKEW,
    DEFAULT_OFFLINE_AFTER, Due, Ingest, Inspections, LevelSla, Log, LogFormat, Mqtt, Offline, Pin,
    PlanOverride, Plugins, Protocol, Secret, Sla, Store, Warranty,
};
pub use topic::MqttUrl;
pub use validate::ENV_OVERRIDES;
pub use values::{format_duration, parse_duration};

/// The commented example config (`configs/agent.toml`), e.g. for `tend` to print.
pub const EXAMPLE_CONFIG: &str = include_str!("../../../configs/agent.toml");

/// The example site inventory (`configs/site.toml`).
pub const EXAMPLE_INVENTORY: &str = include_str!("../../../configs/site.toml");

/// What configuration reads besides the config text: the environment, other files
/// (inventory, password and token files) and today's date (dates more than a year
/// ahead are refused as typos). Tests pass their own, so nothing global is touched.
pub struct Sources<'a> {
    /// Looks up an environment variable.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Reads a file as text.
    pub read: &'a dyn Fn(&Path) -> std::io::Result<String>,
    /// Today, in the agent's local calendar.
    pub today: Date,
}

impl Sources<'static> {
    /// The process environment, the file system and the system clock.
    pub fn system() -> Self {
        Sources { env: &process_env, read: &read_file, today: jiff::ZonedDateTime::now().date() }
    }
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn read_file(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

impl Config {
    /// Reads `path` and the inventory it names, applies the process environment's
    /// overrides, validates. For `tend run`, `tend replay` and `tend check`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Self::load_with(path, &Sources::system())
    }

    /// [`Config::load`] with the given environment, files and date.
    pub fn load_with(path: &Path, sources: &Sources<'_>) -> Result<Config, ConfigErrors> {
        let text = (sources.read)(path)
            .map_err(|e| Problem::new(path, "", format!("cannot read the config file: {e}")))?;
        Self::from_str(&text, path, sources)
    }

    /// The files secrets were read from, each with the key that names it.
    pub fn secret_files(&self) -> Vec<(&'static str, &Path)> {
        let mut files = Vec::new();
        if let Some(f) = self.mqtt.password.as_ref().and_then(Secret::file) {
            files.push(("mqtt.password_file", f));
        }
        if let Some(f) = self.central.token.file() {
            files.push(("central.token_file", f));
        }
        if let Some(auth) = &self.broker.auth {
            files.push(("broker.password_file", auth.file.as_path()));
        }
        files
    }

    /// Warnings (`FILE: KEY: MESSAGE`) about secret files other users may read or
    /// change: not errors (the file may sit in a directory only `tend` can enter),
    /// but worth a look. Unix permission bits only.
    pub fn secret_file_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        #[cfg(unix)]
        for (key, file) in self.secret_files() {
            use std::os::unix::fs::PermissionsExt;
            let Ok(meta) = std::fs::metadata(file) else { continue };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o007 != 0 {
                warnings.push(format!(
                    "{}: {key}: other users have access to `{}` (mode {mode:03o}): \
                     chmod o-rwx it",
                    self.path.display(),
                    file.display()
                ));
            }
        }
        warnings
    }

    /// Parses and validates config text; `path` names it in problems and anchors its
    /// relative paths. The inventory and secret files are read through `sources`.
    pub fn from_str(
        text: &str,
        path: &Path,
        sources: &Sources<'_>,
    ) -> Result<Config, ConfigErrors> {
        let doc = doc::parse(text, path).map_err(|problems| ConfigErrors { problems })?;
        let mut problems = Vec::new();
        let raw: Option<raw::RawConfig> = doc::deserialize(&doc, text, path, &mut problems);
        let Some(mut raw) = raw else { return Err(ConfigErrors { problems }) };
        let mut r = doc::Reporter::new(path, text, Some(doc.get_ref()));
        r.problems = problems;
        validate::apply_env(&mut raw, sources.env, &mut r);

        let dir = path.parent().unwrap_or(Path::new(""));
        let inventory_path = validate::resolve(&r, dir, "inventory", &raw.inventory);
        let mut inventory_problems = Vec::new();
        let inventory = match (sources.read)(&inventory_path) {
            Ok(text) => {
                let (inventory, problems) = inventory::parse(&text, &inventory_path, sources.today);
                inventory_problems = problems;
                inventory
            }
            Err(e) => {
                r.push(
                    "inventory",
                    format!("cannot read the inventory `{}`: {e}", inventory_path.display()),
                );
                None
            }
        };
        let config = validate::validate(raw, &mut r, dir, inventory, sources);
        let mut problems = r.problems;
        problems.extend(inventory_problems);
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(ConfigErrors { problems }),
        }
    }
}
