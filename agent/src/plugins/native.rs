//! A rule crate compiled natively, behind the same [`Evaluate`] trait as the wasm
//! host: the same SDK runner, the same output contract ([`Declared`]), minus the
//! component boundary. Tests compare the two; the benchmark measures the difference.

use std::marker::PhantomData;

use tend_plugin_sdk as sdk;

use super::Evaluate;
use super::bindings as wit;
use super::contract::Declared;
use super::error::CallError;

/// The rule crate `P` behind [`Evaluate`].
pub struct Native<P: sdk::Plugin> {
    equipment_type: String,
    declared: Declared,
    _p: PhantomData<P>,
}

impl<P: sdk::Plugin> Default for Native<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: sdk::Plugin> Native<P> {
    /// The adapter for `P`.
    pub fn new() -> Self {
        let d = describe::<P>();
        Self {
            equipment_type: d.equipment_type.clone(),
            declared: Declared::new(&d),
            _p: PhantomData,
        }
    }
}

impl<P: sdk::Plugin> Evaluate for Native<P> {
    fn equipment_type(&self) -> &str {
        &self.equipment_type
    }

    fn evaluate_batch(
        &mut self,
        device: &wit::Device,
        messages: &[wit::Message],
        state: Option<&[u8]>,
        _now_ms: i64,
    ) -> Result<wit::BatchEvaluation, CallError> {
        let device = sdk::Device {
            id: device.id.clone(),
            model: device.model.clone(),
            settings: device.settings.clone(),
        };
        let messages: Vec<sdk::Message> = messages
            .iter()
            .map(|m| sdk::Message {
                kind: match m.kind {
                    wit::MessageKind::Telemetry => sdk::MessageKind::Telemetry,
                    wit::MessageKind::Event => sdk::MessageKind::Event,
                    wit::MessageKind::Status => sdk::MessageKind::Status,
                },
                topic: m.topic.clone(),
                payload: m.payload.clone(),
                ts_ms: m.ts_ms,
            })
            .collect();
        let b = sdk::runner::evaluate_batch::<P>(&device, &messages, state);
        let mut out = wit::BatchEvaluation {
            outcomes: b.outcomes.into_iter().map(|r| r.map(outcome).map_err(error)).collect(),
            state: b.state,
        };
        self.declared.check(&mut out, messages.len()).map_err(|reason| CallError::BadOutput {
            plugin: self.equipment_type.clone(),
            device: device.id.clone(),
            reason,
        })?;
        Ok(out)
    }
}

/// The description of `P` in the host's types (fault codes and meters are all the
/// output check needs; the rest is carried over for completeness).
pub fn describe<P: sdk::Plugin>() -> wit::Description {
    let d = P::describe();
    wit::Description {
        equipment_type: d.equipment_type,
        plugin_version: d.plugin_version,
        faults: d
            .faults
            .into_iter()
            .map(|f| wit::FaultSpec {
                code: f.code,
                title: f.title,
                default_severity: f.default_severity,
                interrupts_service: f.interrupts_service,
                component: f.component,
            })
            .collect(),
        meters: d
            .meters
            .into_iter()
            .map(|m| wit::MeterSpec { name: m.name, unit: m.unit })
            .collect(),
        warranty: d
            .warranty
            .into_iter()
            .map(|w| wit::WarrantyDefault { component: w.component, months: w.months })
            .collect(),
        inspections: d
            .inspections
            .into_iter()
            .map(|p| wit::InspectionPlan {
                id: p.id,
                title: p.title,
                every: p.every.map(|e| match e {
                    sdk::Period::Days(n) => wit::Period::Days(n),
                    sdk::Period::Months(n) => wit::Period::Months(n),
                }),
                meter: p.meter.map(|t| wit::MeterTrigger {
                    meter: t.meter,
                    rule: match t.rule {
                        sdk::MeterRule::Every(x) => wit::MeterRule::Every(x),
                        sdk::MeterRule::Reaches(x) => wit::MeterRule::Reaches(x),
                    },
                }),
                checklist: p.checklist,
                only_if_setting: p.only_if_setting,
            })
            .collect(),
        offline_timeout_s: d.offline_timeout_s,
    }
}

/// An outcome in the host's types (moved, not copied); also used for the wasm
/// host's packed outcomes.
pub(crate) fn outcome(o: sdk::Outcome) -> wit::Outcome {
    wit::Outcome {
        conditions: o
            .conditions
            .into_iter()
            .map(|c| wit::Condition {
                code: c.code,
                active: c.active,
                severity: c.severity,
                summary: c.summary,
                evidence: c
                    .evidence
                    .into_iter()
                    .map(|e| wit::Evidence { ts_ms: e.ts_ms, field: e.field, value: e.value })
                    .collect(),
                diagnosis: c.diagnosis.map(|d| wit::Diagnosis {
                    probable_cause: d.probable_cause,
                    category: match d.category {
                        sdk::Category::Hardware => wit::Category::Hardware,
                        sdk::Category::Software => wit::Category::Software,
                    },
                    suggested_parts: d.suggested_parts,
                }),
            })
            .collect(),
        meters: o
            .meters
            .into_iter()
            .map(|m| wit::MeterReading { meter: m.meter, value: m.value })
            .collect(),
    }
}

/// An evaluation error in the host's types.
pub(crate) fn error(e: sdk::EvalError) -> wit::EvalError {
    match e {
        sdk::EvalError::BadPayload(m) => wit::EvalError::BadPayload(m),
        sdk::EvalError::BadSettings(m) => wit::EvalError::BadSettings(m),
        sdk::EvalError::BadState(m) => wit::EvalError::BadState(m),
    }
}
