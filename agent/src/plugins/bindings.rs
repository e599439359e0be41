//! The single `bindgen!` over `wit/`: every other module uses these types.

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "plugin",
    path: "../wit",
    additional_derives: [serde::Serialize, PartialEq],
});

// The world `use`s these, so bindgen already re-exports the world-level ones
// (Description, Device, Message, Evaluation, BatchEvaluation, EvalError) here.
pub use self::tend::plugin::types::{
    Category, Condition, Diagnosis, Evidence, FaultSpec, InspectionPlan, MessageKind, MeterReading,
    MeterRule, MeterSpec, MeterTrigger, Outcome, PackedBatchEvaluation, Period, WarrantyDefault,
};

impl From<crate::ingest::topic::MessageKind> for MessageKind {
    fn from(kind: crate::ingest::topic::MessageKind) -> Self {
        use crate::ingest::topic::MessageKind as Topic;
        match kind {
            Topic::Telemetry => MessageKind::Telemetry,
            Topic::Event => MessageKind::Event,
            Topic::Status => MessageKind::Status,
        }
    }
}
