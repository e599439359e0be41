//! The output contract every plugin is held to, wasm or native: its self-description
//! checked at load, its results checked against what it declared.

use std::collections::HashSet;

use super::bindings::{BatchEvaluation, Description};

/// Longest condition summary kept; longer ones are cut (a plugin cannot flood tickets).
pub const MAX_SUMMARY: usize = 512;
/// Most evidence readings kept per condition.
pub const MAX_EVIDENCE: usize = 32;
/// Largest per-device state a plugin may return.
pub const MAX_STATE: usize = 1 << 20;

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
        if RESERVED_CODES.contains(&f.code.as_str()) {
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
