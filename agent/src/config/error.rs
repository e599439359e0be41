//! Problems found in configuration files, all reported at once.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a configuration or inventory file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in (as given, or as resolved from the config file).
    pub file: PathBuf,
    /// Where in the file: a dotted key path (`central.url`, `device[3].commissioned`),
    /// `line L:C` for a TOML syntax error, or empty for the file as a whole.
    pub key: String,
    /// What is wrong, for people; ends with `(line N)` when the key is in the file, or
    /// names the environment variable the value came from.
    pub message: String,
}

impl Problem {
    /// A problem in `file` at `key`.
    pub fn new(
        file: impl Into<PathBuf>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self { file: file.into(), key: key.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
        }
    }
}

/// Everything wrong with a configuration, one [`Problem`] per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines(.problems))]
pub struct ConfigErrors {
    /// The problems, in the order they were found (file by file, then by section).
    pub problems: Vec<Problem>,
}

impl ConfigErrors {
    /// The problems displayed one per line (`FILE: KEY: MESSAGE`), for tests and tools.
    pub fn lines(&self) -> Vec<String> {
        self.problems.iter().map(ToString::to_string).collect()
    }
}

impl From<Problem> for ConfigErrors {
    fn from(p: Problem) -> Self {
        Self { problems: vec![p] }
    }
}

fn lines(problems: &[Problem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}
