//! The output contract every plugin is held to, wasm or native: its self-description
//! checked at load, its results checked against what it declared.

use std::collections::HashSet;

use super::bindings::{BatchEvaluation, Description};

/// Longest condition summary kept; longer ones are cut (a plugin cannot flood tickets).
pub const MAX_SUMMARY: usize = 512;
/// Most evidence readings kept per condition.
pub const MAX_EVIDENCE: usize = 32;
/// Longest evidence field name or suggested part kept (a ticket must stay small
/// enough for the central service to accept it).
pub const MAX_NAME: usize = 128;
/// Most suggested parts kept per diagnosis.
pub const MAX_PARTS: usize = 16;
/// Ends every text the host cut (the same marker as requests cut to fit the central
/// service).
pub use tend_wire::fit::CUT;
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
                cap(&mut c.summary, MAX_SUMMARY);
                c.evidence.truncate(MAX_EVIDENCE);
                for e in &mut c.evidence {
                    cap(&mut e.field, MAX_NAME);
                }
                if let Some(d) = &mut c.diagnosis {
                    cap(&mut d.probable_cause, MAX_SUMMARY);
                    d.suggested_parts.truncate(MAX_PARTS);
                    for part in &mut d.suggested_parts {
                        cap(part, MAX_NAME);
                    }
                }
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

/// Cuts `s` to at most `max` bytes, ending with [`CUT`], when it is longer.
fn cap(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = truncate(s, max.saturating_sub(CUT.len())).to_owned();
        cut.push_str(CUT);
        *s = cut;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::bindings::{
        BatchEvaluation, Category, Condition, Description, Diagnosis, Evidence, FaultSpec, Outcome,
    };

    fn declared() -> Declared {
        Declared::new(&Description {
            equipment_type: "t".into(),
            plugin_version: "1".into(),
            faults: vec![FaultSpec {
                code: "bad".into(),
                title: "Bad".into(),
                default_severity: 3,
                component: "main_unit".into(),
                interrupts_service: false,
            }],
            meters: vec![],
            warranty: vec![],
            inspections: vec![],
            offline_timeout_s: 300,
        })
    }

    /// Issue 15, finding 8: only the summary was cut; a plugin could put megabytes in
    /// a diagnosis or an evidence name, and the ticket carrying them was refused by
    /// the central service (413) and dropped.
    #[test]
    fn huge_diagnosis_texts_and_evidence_names_are_cut_with_a_marker() {
        let huge = "é".repeat(1 << 20);
        let mut b = BatchEvaluation {
            outcomes: vec![Ok(Outcome {
                conditions: vec![Condition {
                    code: "bad".into(),
                    active: true,
                    severity: 3,
                    summary: huge.clone(),
                    evidence: vec![Evidence { ts_ms: 1, field: huge.clone(), value: 1.0 }; 100],
                    diagnosis: Some(Diagnosis {
                        probable_cause: huge.clone(),
                        category: Category::Hardware,
                        suggested_parts: vec![huge.clone(); 1000],
                    }),
                }],
                meters: vec![],
            })],
            state: vec![],
        };
        declared().check(&mut b, 1).unwrap();
        let Ok(o) = &b.outcomes[0] else { panic!("outcome rejected") };
        let c = &o.conditions[0];
        assert!(c.summary.len() <= MAX_SUMMARY && c.summary.ends_with(CUT), "{}", c.summary.len());
        assert_eq!(c.evidence.len(), MAX_EVIDENCE);
        assert!(c.evidence.iter().all(|e| e.field.len() <= MAX_NAME && e.field.ends_with(CUT)));
        let d = c.diagnosis.as_ref().unwrap();
        assert!(d.probable_cause.len() <= MAX_SUMMARY && d.probable_cause.ends_with(CUT));
        assert!(d.suggested_parts.len() <= MAX_PARTS);
        assert!(d.suggested_parts.iter().all(|p| p.len() <= MAX_NAME && p.ends_with(CUT)));
    }
}
