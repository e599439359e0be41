//! The rule crates compiled natively behind the host's `Evaluate` trait, so the same
//! trace can be run through the wasm host and natively and the results compared.

use std::marker::PhantomData;

use tend::plugins::bindings as wit;
use tend::plugins::{CallError, Evaluate};
use tend_plugin_sdk as sdk;

/// A native plugin.
pub struct Native<P: sdk::Plugin> {
    equipment_type: String,
    _p: PhantomData<P>,
}

impl<P: sdk::Plugin> Native<P> {
    pub fn new() -> Self {
        Self { equipment_type: P::describe().equipment_type, _p: PhantomData }
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
        Ok(wit::BatchEvaluation {
            outcomes: b.outcomes.into_iter().map(|r| r.map(outcome).map_err(error)).collect(),
            state: b.state,
        })
    }
}

fn outcome(o: sdk::Outcome) -> wit::Outcome {
    wit::Outcome {
        conditions: o
            .conditions
            .into_iter()
            .map(|c| wit::Condition {
                code: c.code,
                active: c.active,
                severity: c.severity,
                // The host cuts long summaries; do the same so the two compare equal.
                summary: c.summary.chars().take(512).collect(),
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

fn error(e: sdk::EvalError) -> wit::EvalError {
    match e {
        sdk::EvalError::BadPayload(m) => wit::EvalError::BadPayload(m),
        sdk::EvalError::BadSettings(m) => wit::EvalError::BadSettings(m),
        sdk::EvalError::BadState(m) => wit::EvalError::BadState(m),
    }
}
