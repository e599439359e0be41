//! Conversions between the generated WIT types and the SDK's plain types.
//!
//! Used by [`crate::export_plugin!`]; values are moved, not copied.

use crate::Plugin;
use crate::bindings::tend::plugin::types as wit;
use crate::runner;
use crate::types::*;

/// `describe` export.
pub fn describe<P: Plugin>() -> wit::Description {
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
                    Period::Days(n) => wit::Period::Days(n),
                    Period::Months(n) => wit::Period::Months(n),
                }),
                meter: p.meter.map(|t| wit::MeterTrigger {
                    meter: t.meter,
                    rule: match t.rule {
                        MeterRule::Every(x) => wit::MeterRule::Every(x),
                        MeterRule::Reaches(x) => wit::MeterRule::Reaches(x),
                    },
                }),
                checklist: p.checklist,
                only_if_setting: p.only_if_setting,
            })
            .collect(),
        offline_timeout_s: d.offline_timeout_s,
    }
}

/// `evaluate` export.
pub fn evaluate<P: Plugin>(
    device: wit::Device,
    message: wit::Message,
    state: Option<Vec<u8>>,
) -> Result<wit::Evaluation, wit::EvalError> {
    let device = device_in(device);
    let message = message_in(message);
    runner::evaluate::<P>(&device, &message, state.as_deref())
        .map(|e| wit::Evaluation { outcome: outcome_out(e.outcome), state: e.state })
        .map_err(error_out)
}

/// `evaluate-batch` export.
pub fn evaluate_batch<P: Plugin>(
    device: wit::Device,
    messages: Vec<wit::Message>,
    state: Option<Vec<u8>>,
) -> wit::BatchEvaluation {
    let device = device_in(device);
    let messages: Vec<Message> = messages.into_iter().map(message_in).collect();
    let b = runner::evaluate_batch::<P>(&device, &messages, state.as_deref());
    wit::BatchEvaluation {
        outcomes: b.outcomes.into_iter().map(|r| r.map(outcome_out).map_err(error_out)).collect(),
        state: b.state,
    }
}

/// `packed.evaluate-batch` export: [`evaluate_batch`] with the outcomes in the
/// [`crate::packed`] encoding.
pub fn evaluate_batch_packed<P: Plugin>(
    device: wit::Device,
    messages: Vec<wit::Message>,
    state: Option<Vec<u8>>,
) -> wit::PackedBatchEvaluation {
    let device = device_in(device);
    let messages: Vec<Message> = messages.into_iter().map(message_in).collect();
    let b = runner::evaluate_batch::<P>(&device, &messages, state.as_deref());
    wit::PackedBatchEvaluation { outcomes: crate::packed::encode(&b.outcomes), state: b.state }
}

fn device_in(d: wit::Device) -> Device {
    Device { id: d.id, model: d.model, settings: d.settings }
}

fn message_in(m: wit::Message) -> Message {
    Message {
        kind: match m.kind {
            wit::MessageKind::Telemetry => MessageKind::Telemetry,
            wit::MessageKind::Event => MessageKind::Event,
            wit::MessageKind::Status => MessageKind::Status,
        },
        topic: m.topic,
        payload: m.payload,
        ts_ms: m.ts_ms,
    }
}

fn outcome_out(o: Outcome) -> wit::Outcome {
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
                        Category::Hardware => wit::Category::Hardware,
                        Category::Software => wit::Category::Software,
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

fn error_out(e: EvalError) -> wit::EvalError {
    match e {
        EvalError::BadPayload(m) => wit::EvalError::BadPayload(m),
        EvalError::BadSettings(m) => wit::EvalError::BadSettings(m),
        EvalError::BadState(m) => wit::EvalError::BadState(m),
    }
}
