//! `tend plugin new`: a plugin project to start from, in Rust or Python, that builds
//! and passes `tend plugin test` as generated: a manifest, one rule (`over_limit`: a
//! reading's `value` at or above a limit for 5 minutes, the limit a per-device
//! setting), its unit test, a trace that raises and clears it with the output
//! `tend plugin test` must print, and `build.sh` (unit tests, build, trace check).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tend_agent::ingest::event_time::rfc3339_utc;
use tend_agent::plugins::trial::ChangeLine;

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with the SDK of plugins/sdk.
    Rust,
    /// Python with the SDK of plugins/sdk-python (componentize-py).
    Python,
}

/// `tend plugin new`'s arguments.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The project directory to create; its name is the plugin's name.
    pub dir: PathBuf,
    /// The equipment type the plugin serves (the inventory's `type`).
    #[arg(long = "type")]
    pub equipment_type: String,
    /// The language.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// The tend source tree holding plugins/sdk and plugins/sdk-python (default: the
    /// tree this `tend` was built from).
    #[arg(long)]
    pub sdk_root: Option<PathBuf>,
}

/// The fault code of the generated rule.
const CODE: &str = "over_limit";
/// 2026-07-01T08:00:00+08:00, the generated trace's first reading.
const TRACE_START_MS: i64 = 1_782_864_000_000;
/// Readings a minute apart: `value` 50, from minute 10 on 120, from minute 25 on 50.
const TRACE_MINUTES: i64 = 40;

/// Creates the project; prints what to run next.
pub fn run(args: &NewArgs) -> anyhow::Result<()> {
    let name = args
        .dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("the project directory needs a name")?
        .to_owned();
    check_name("plugin name", &name)?;
    check_name("--type", &args.equipment_type)?;
    if args.dir.exists() {
        bail!("{} already exists", args.dir.display());
    }
    let root = match &args.sdk_root {
        Some(r) => r.clone(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    };
    let root = root
        .canonicalize()
        .with_context(|| format!("the tend source tree {} (--sdk-root)", root.display()))?;
    let sdk = match args.lang {
        Lang::Rust => root.join("plugins/sdk"),
        Lang::Python => root.join("plugins/sdk-python"),
    };
    if !sdk.is_dir() {
        bail!("no SDK at {} (pass --sdk-root, the tend source tree)", sdk.display());
    }
    let vars = Vars {
        name: &name,
        module: &name.replace('-', "_"),
        ty: &args.equipment_type,
        device: &format!("{}-1", args.equipment_type),
        sdk: &sdk.display().to_string(),
    };
    let files: Vec<(&str, String)> = match args.lang {
        Lang::Rust => vec![
            ("Cargo.toml", vars.fill(RUST_MANIFEST)),
            ("src/lib.rs", vars.fill(RUST_LIB)),
            ("build.sh", vars.fill(RUST_BUILD)),
            (".gitignore", "target/\n*.wasm\n*.out\n".into()),
        ],
        Lang::Python => vec![
            ("pyproject.toml", vars.fill(PY_MANIFEST)),
            ("app.py", vars.fill(PY_APP)),
            ("rules.py", vars.fill(PY_RULES)),
            ("tests/__init__.py", String::new()),
            ("tests/test_rules.py", vars.fill(PY_TEST)),
            ("build.sh", vars.fill(PY_BUILD)),
            (".gitignore", "__pycache__/\n*.wasm\n*.out\n".into()),
        ],
    };
    let mut files: Vec<(String, String)> =
        files.into_iter().map(|(p, t)| (p.to_owned(), t)).collect();
    files.push((format!("traces/{CODE}.jsonl"), trace(vars.device)));
    files.push((format!("traces/{CODE}.expected.jsonl"), expected(vars.device)));
    for (path, text) in &files {
        write(&args.dir.join(path), text)?;
    }
    if args.lang == Lang::Rust {
        // The dependency versions the SDK is built and tested with.
        let lock = root.join("Cargo.lock");
        if lock.is_file() {
            std::fs::copy(&lock, args.dir.join("Cargo.lock"))
                .with_context(|| format!("copying {}", lock.display()))?;
        }
    }
    make_executable(&args.dir.join("build.sh"))?;
    println!(
        "created {} ({:?} plugin for `{}`); build and check it with {}/build.sh",
        args.dir.display(),
        args.lang,
        args.equipment_type,
        args.dir.display()
    );
    Ok(())
}

fn check_name(what: &str, s: &str) -> anyhow::Result<()> {
    let ok = s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!("{what} `{s}`: use lowercase letters, digits and `-`, starting with a letter");
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(path)?.permissions();
    perm.set_mode(0o755);
    std::fs::set_permissions(path, perm).with_context(|| format!("chmod {}", path.display()))
}

/// The values templates refer to as `{{name}}`, `{{module}}`, `{{type}}`,
/// `{{device}}`, `{{sdk}}`.
struct Vars<'a> {
    name: &'a str,
    module: &'a str,
    ty: &'a str,
    device: &'a str,
    sdk: &'a str,
}

impl Vars<'_> {
    fn fill(&self, template: &str) -> String {
        template
            .replace("{{name}}", self.name)
            .replace("{{module}}", self.module)
            .replace("{{type}}", self.ty)
            .replace("{{device}}", self.device)
            .replace("{{sdk}}", self.sdk)
    }
}

fn value_at(minute: i64) -> f64 {
    if (10..25).contains(&minute) { 120.0 } else { 50.0 }
}

fn trace(device: &str) -> String {
    let mut out = String::new();
    for m in 0..TRACE_MINUTES {
        let line = serde_json::json!({
            "topic": format!("tend/test-site/{device}/telemetry"),
            "payload": { "ts": TRACE_START_MS + m * 60_000, "value": value_at(m) },
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// What `tend plugin test` prints over the trace: active 5 minutes into the high
/// readings, inactive at the first normal one.
fn expected(device: &str) -> String {
    let change = |minute: i64, active: bool| {
        let ts_ms = TRACE_START_MS + minute * 60_000;
        let c = ChangeLine {
            ts: rfc3339_utc(ts_ms),
            ts_ms,
            line: minute as usize + 1,
            device: device.to_owned(),
            code: CODE.to_owned(),
            active,
            severity: active.then_some(3),
            summary: active.then(|| "value 120 at or above 100 for 5 min".to_owned()),
        };
        serde_json::to_string(&c).unwrap_or_default() + "\n"
    };
    change(15, true) + &change(25, false)
}

const RUST_MANIFEST: &str = r#"[package]
name = "{{name}}"
description = "tend equipment plugin: {{type}}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
tend-plugin-sdk = { path = "{{sdk}}" }
serde = { version = "1", features = ["derive"] }

# A project of its own, not a member of an enclosing workspace.
[workspace]

# `cargo build --profile plugin --target wasm32-wasip2`: release plus whole-program
# LTO, as tend's own plugins are built.
[profile.plugin]
inherits = "release"
lto = "fat"
codegen-units = 1
"#;

const RUST_LIB: &str = r##"//! tend equipment plugin for `{{type}}`.
//!
//! Raises `over_limit` when a reading's `value` stays at or above the device's
//! `limit` setting (default 100) for 5 minutes.

use tend_plugin_sdk::prelude::*;

/// What the plugin remembers about one device between messages.
#[derive(Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct State {
    high: Held,
}

/// The plugin.
pub struct Plugin;

impl tend_plugin_sdk::Plugin for Plugin {
    type State = State;

    fn describe() -> Description {
        Description {
            equipment_type: "{{type}}".into(),
            plugin_version: "0.1.0".into(),
            faults: vec![FaultSpec::new("over_limit", "Value over its limit", 3, "main_unit")],
            meters: vec![],
            warranty: vec![WarrantyDefault { component: "main_unit".into(), months: 24 }],
            inspections: vec![InspectionPlan {
                id: "yearly".into(),
                title: "Yearly inspection".into(),
                every: Some(Period::Months(12)),
                meter: None,
                checklist: vec!["Check the unit and its readings".into()],
                only_if_setting: None,
            }],
            offline_timeout_s: 300,
        }
    }

    fn evaluate(device: &Device, msg: &Message, state: &mut State) -> Result<Outcome, EvalError> {
        if msg.kind != MessageKind::Telemetry {
            return Ok(Outcome::default());
        }
        let limit = device.settings()?.f64_or("limit", 100.0)?;
        let p = Payload::parse(&msg.payload)?;
        let mut out = Outcome::default();
        match p.f64("value") {
            Field::Value(v) => {
                let held = state.high.update(v >= limit, msg.ts_ms);
                out.conditions.push(if held.is_some_and(|ms| ms >= minutes(5)) {
                    Condition::active(
                        "over_limit",
                        3,
                        format!("value {v} at or above {limit} for 5 min"),
                    )
                    .evidence(msg.ts_ms, "value", v)
                    .diagnosis(Diagnosis::hardware("Describe the likely cause here", &["part"]))
                } else {
                    Condition::inactive("over_limit")
                });
            }
            Field::Missing => {}
            Field::Invalid => return Err(EvalError::BadPayload("`value` is not a number".into())),
        }
        Ok(out)
    }
}

export_plugin!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use tend_plugin_sdk::runner;

    fn reading(value: f64, ts_ms: i64) -> Message {
        Message {
            kind: MessageKind::Telemetry,
            topic: "tend/site/{{device}}/telemetry".into(),
            payload: format!(r#"{{"ts":{ts_ms},"value":{value}}}"#).into_bytes(),
            ts_ms,
        }
    }

    #[test]
    fn over_limit_after_5_minutes_and_clears() {
        let device = Device::new("{{device}}", "M");
        let msgs: Vec<Message> = [120.0, 120.0, 120.0, 50.0]
            .iter()
            .zip([0, minutes(4), minutes(5), minutes(6)])
            .map(|(v, t)| reading(*v, t))
            .collect();
        let b = runner::evaluate_batch::<Plugin>(&device, &msgs, None);
        let active: Vec<bool> = b
            .outcomes
            .iter()
            .map(|o| o.as_ref().unwrap().condition("over_limit").unwrap().active)
            .collect();
        assert_eq!(active, [false, false, true, false]);
    }
}
"##;

const RUST_BUILD: &str = r#"#!/usr/bin/env bash
# Unit tests, the component ({{name}}.wasm), then `tend plugin test` over the trace
# must print exactly traces/over_limit.expected.jsonl. `tend` from $TEND or PATH.
set -euo pipefail
cd "$(dirname "$0")"
cargo test --quiet
cargo build --quiet --profile plugin --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/plugin/{{module}}.wasm" {{name}}.wasm
"${TEND:-tend}" plugin test {{name}}.wasm --device-type {{type}} traces/over_limit.jsonl >over_limit.out
diff -u traces/over_limit.expected.jsonl over_limit.out
echo "{{name}}.wasm: built, unit tests and trace check passed"
"#;

const PY_MANIFEST: &str = r#"[project]
name = "{{name}}"
version = "0.1.0"
description = "tend equipment plugin: {{type}}"
requires-python = ">=3.11"

# Built with the tend Python SDK ({{sdk}}): `tend-py component . -o {{name}}.wasm`
# runs componentize-py over the module `app` (see build.sh).
[tool.tend]
equipment-type = "{{type}}"
app = "app"
"#;

const PY_APP: &str = r#""""The module componentize-py builds into the component."""

from rules import Plugin
from tend_plugin import export

WitWorld = export(Plugin())
"#;

const PY_RULES: &str = r#""""tend equipment plugin for `{{type}}`.

Raises `over_limit` when a reading's `value` stays at or above the device's `limit`
setting (default 100) for 5 minutes.
"""

from dataclasses import dataclass, field

from tend_plugin import (
    Description,
    Device,
    Held,
    Message,
    MessageKind,
    Months,
    Outcome,
    Payload,
    active,
    description,
    evidence,
    fault,
    hardware,
    inactive,
    inspection,
    minutes,
    num,
    outcome,
    settings,
    warranty,
)
from tend_plugin import Plugin as Base


@dataclass
class State:
    """What the plugin remembers about one device between messages."""

    high: Held = field(default_factory=Held)


class Plugin(Base[State]):
    state_type = State

    def describe(self) -> Description:
        return description(
            "{{type}}",
            "0.1.0",
            faults=[fault("over_limit", "Value over its limit", 3, "main_unit")],
            warranty=[warranty("main_unit", 24)],
            inspections=[
                inspection(
                    "yearly",
                    "Yearly inspection",
                    ["Check the unit and its readings"],
                    every=Months(12),
                )
            ],
        )

    def evaluate(self, device: Device, message: Message, state: State) -> Outcome:
        if message.kind != MessageKind.TELEMETRY:
            return outcome()
        limit = settings(device).number_or("limit", 100.0)
        v = Payload.parse(message.payload).number("value").optional()
        if v is None:
            return outcome()
        if state.high.held(v >= limit, message.ts_ms, minutes(5)):
            return outcome([
                active(
                    "over_limit",
                    3,
                    f"value {num(v)} at or above {num(limit)} for 5 min",
                    [evidence(message.ts_ms, "value", v)],
                    hardware("Describe the likely cause here", ["part"]),
                )
            ])
        return outcome([inactive("over_limit")])
"#;

const PY_TEST: &str = r#""""Unit tests of the rules, natively (`tend-py check .`)."""

import unittest

from rules import Plugin
from tend_plugin import Device, Message, MessageKind, minutes, run_batch
from componentize_py_types import Ok


def reading(value: float, ts_ms: int) -> Message:
    payload = f'{{"ts":{ts_ms},"value":{value}}}'.encode()
    return Message(MessageKind.TELEMETRY, "tend/site/{{device}}/telemetry", payload, ts_ms)


class RuleTests(unittest.TestCase):
    def test_over_limit_after_5_minutes_and_clears(self) -> None:
        device = Device("{{device}}", "M", "{}")
        times = [0, minutes(4), minutes(5), minutes(6)]
        msgs = [reading(v, t) for v, t in zip([120.0, 120.0, 120.0, 50.0], times)]
        b = run_batch(Plugin(), device, msgs, None)
        active = []
        for o in b.outcomes:
            assert isinstance(o, Ok)
            active.append(o.value.conditions[0].active)
        self.assertEqual(active, [False, False, True, False])


if __name__ == "__main__":
    unittest.main()
"#;

const PY_BUILD: &str = r#"#!/usr/bin/env bash
# Type check and unit tests, the component ({{name}}.wasm), then `tend plugin test`
# over the trace must print exactly traces/over_limit.expected.jsonl. `tend` from
# $TEND or PATH; the toolchain (componentize-py, mypy) is installed by tend-py.
set -euo pipefail
cd "$(dirname "$0")"
tend_py="{{sdk}}/tend-py"
"$tend_py" check .
"$tend_py" component . -o {{name}}.wasm
"${TEND:-tend}" plugin test {{name}}.wasm --device-type {{type}} traces/over_limit.jsonl >over_limit.out
diff -u traces/over_limit.expected.jsonl over_limit.out
echo "{{name}}.wasm: built, type-checked, unit tests and trace check passed"
"#;
